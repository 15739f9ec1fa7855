//! itest, demo and ci.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::sandbox::{self, Flavor, Sandbox};
use crate::util::{self, cargo, target_dir};

fn flavors(args: &[String]) -> Result<Vec<Flavor>, String> {
    match util::opt_value(args, "--flavor")?.as_deref() {
        None | Some("all") => Ok(vec![Flavor::Mariadb, Flavor::Mysql]),
        Some(f) => Ok(vec![Flavor::parse(f)?]),
    }
}

fn admin_bin() -> PathBuf {
    target_dir().join("debug/spyglass-admin")
}

fn build_bin() -> Result<(), String> {
    util::run(cargo().args(["build", "--quiet", "-p", "spyglass-cli"]))
}

/// Runs the server tests against one flavor on a fresh sandbox, and always stops it.
/// `filter` (after `--`) is passed to the test binary, e.g. a module name.
fn itest_one(flavor: Flavor, filter: &[String], python: &Path) -> Result<(), String> {
    // A fresh server for every run: tests must not depend on leftovers.
    sandbox::stop(flavor)?;
    let started = Instant::now();
    let s = sandbox::start(flavor)?;
    eprintln!(
        "xtask: {} sandbox up in {:.1}s on port {}",
        flavor.name(),
        started.elapsed().as_secs_f64(),
        s.port
    );
    // A second, empty server of the same flavor: restore tests load into it.
    let target = sandbox::Instance::target(flavor);
    let _ = sandbox::stop(target);
    // The TLS server (private CA, require_secure_transport=ON) only when TLS tests run.
    let tls = sandbox::Instance::tls(flavor);
    let want_tls =
        filter.iter().all(|f| f.starts_with('-')) || filter.iter().any(|f| f.contains("tls"));
    let _ = sandbox::stop(tls);
    // The 3-node Garage cluster only when S3 tests run.
    let want_s3 =
        filter.iter().all(|f| f.starts_with('-')) || filter.iter().any(|f| f.contains("s3"));
    let result = (|| {
        let t = sandbox::start(target)?;
        let garage = if want_s3 { Some(start_garage()?) } else { None };
        let tls_server = if want_tls {
            Some(sandbox::start(tls)?)
        } else {
            None
        };
        let fixture_root = sandbox::sandbox_dir(flavor).join("fixture");
        sandbox::fixture(&s, &fixture_root, 4, 1)?;
        let mut c = cargo();
        c.args([
            "test",
            "--quiet",
            "-p",
            "spyglass-e2e",
            "--features",
            "server-tests",
        ]);
        if !filter.is_empty() {
            c.arg("--").args(filter);
        }
        set_test_env(&mut c, &s, &fixture_root);
        if let Some(ts) = &tls_server {
            let tls_fixture = sandbox::sandbox_dir(tls).join("fixture");
            sandbox::fixture(ts, &tls_fixture, 1, 1)?;
            c.env("SPYGLASS_IT_TLS_PORT", ts.port.to_string())
                .env("SPYGLASS_IT_TLS_FIXTURE", &tls_fixture)
                .env("SPYGLASS_IT_TLS_CERTS", sandbox::tls_dir(tls))
                .env(
                    "SPYGLASS_IT_TLS_SERVER_CERTS",
                    sandbox::tls_server_dir(tls).unwrap_or_default(),
                );
        }
        if let Some(g) = &garage {
            c.env("SPYGLASS_IT_S3", g.env_file());
        }
        c.env("SPYGLASS_IT_TARGET_PORT", t.port.to_string())
            .env("SPYGLASS_IT_PYTHON", python)
            // pitr tests: the server's binlog files, and the chroot's mysqlbinlog.
            .env("SPYGLASS_IT_DATADIR", &s.datadir);
        if flavor == Flavor::Mysql {
            c.env("SPYGLASS_IT_MYSQL_CHROOT", sandbox::chroot_dir());
        }
        if flavor == Flavor::Mysql {
            // Debian 12's mysqldump is MariaDB's, which cannot dump MySQL 9; use the
            // chroot's through a wrapper (its temp files must live inside the chroot).
            let (wrapper, tmp) = sandbox::mysqldump_wrapper()?;
            c.env("SPYGLASS_IT_MYSQLDUMP", wrapper)
                .env("SPYGLASS_IT_MYSQLDUMP_TMPDIR", tmp);
        }
        util::run(&mut c)
    })();
    let stopped = sandbox::stop(flavor);
    let _ = sandbox::stop(target);
    let _ = sandbox::stop(tls);
    result.and(stopped)
}

/// Garage built (or reused) and a fresh 3-node cluster in
/// `target/sandbox/garage`, plus the tools the S3 tests use beside it.
pub(crate) fn start_garage() -> Result<crate::garage::Cluster, String> {
    util::apt_install_missing(&[("rclone", "rclone"), ("socat", "socat")], "the S3 tests")?;
    let started = Instant::now();
    let g = crate::garage::start(&util::target_dir().join("sandbox/garage"))?;
    eprintln!(
        "xtask: Garage cluster up in {:.1}s at {}",
        started.elapsed().as_secs_f64(),
        g.endpoints().join(", ")
    );
    Ok(g)
}

fn set_test_env(c: &mut Command, s: &Sandbox, fixture_root: &std::path::Path) {
    c.env("SPYGLASS_IT_FLAVOR", s.flavor.name())
        .env("SPYGLASS_IT_HOST", s.host())
        .env("SPYGLASS_IT_PORT", s.port.to_string())
        .env("SPYGLASS_IT_USER", s.user())
        .env("SPYGLASS_IT_FIXTURE", fixture_root)
        .env("SPYGLASS_ADMIN_BIN", admin_bin())
        // Keep the developer's own connection settings out of the tests.
        .env_remove("DJ_HOST")
        .env_remove("DJ_USER")
        .env_remove("DJ_PASS")
        .env_remove("DJ_PORT")
        .env_remove("SPYGLASS_BASE_DIR");
}

pub fn itest_cmd(args: &[String]) -> Result<(), String> {
    let (args, filter) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[][..]),
    };
    build_bin()?;
    // The backup ship tests run their own sshd and rsync on 127.0.0.1.
    crate::sshd::ensure_installed()?;
    // The report tests open the page in headless Chromium.
    crate::screenshot::ensure_chromium()?;
    // The DataJoint tests log in through DataJoint itself.
    let python = crate::venv::ensure_datajoint()?;
    let mut failed = Vec::new();
    for f in flavors(args)? {
        eprintln!("xtask: ==> server tests on {}", f.name());
        if let Err(e) = itest_one(f, filter, &python) {
            eprintln!("xtask: {} server tests failed: {e}", f.name());
            failed.push(f.name());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("server tests failed on: {}", failed.join(", ")))
    }
}

pub fn ci_cmd(_args: &[String]) -> Result<(), String> {
    let t = Instant::now();
    let step = |name: &str| {
        eprintln!(
            "xtask: ==> {name} ({:.0}s elapsed)",
            t.elapsed().as_secs_f64()
        )
    };
    step("cargo fmt --check");
    util::run(cargo().args(["fmt", "--all", "--check"]))?;
    step("cargo clippy --all-targets -D warnings");
    util::run(cargo().args([
        "clippy",
        "--quiet",
        "--workspace",
        "--all-targets",
        "--features",
        "spyglass-e2e/server-tests",
        "--",
        "-D",
        "warnings",
    ]))?;
    step("unit tests");
    util::run(cargo().args(["test", "--quiet", "--workspace"]))?;
    step("server tests, MariaDB and MySQL");
    itest_cmd(&["--flavor".into(), "all".into()])?;
    step("the Debian package, installed into a throwaway root (dist --check)");
    crate::dist::cmd(&["--check".into()])?;
    eprintln!("xtask: ci passed in {:.0}s", t.elapsed().as_secs_f64());
    Ok(())
}

pub fn demo_cmd(args: &[String]) -> Result<(), String> {
    let flavor = crate::flavor_arg(args, Flavor::Mariadb)?;
    let keep = util::has_flag(args, "--keep");
    let s3 = util::has_flag(args, "--s3");
    say("1. Build spyglass-admin");
    build_bin()?;
    say(&format!(
        "2. Start a throwaway {} server (cargo xtask sandbox start --flavor {})",
        flavor.name(),
        flavor.name()
    ));
    let s = sandbox::start(flavor)?;
    print!("{}", s.env_lines());
    let result = (|| {
        let root = sandbox::sandbox_dir(flavor).join("demo");
        say("3. Create a Spyglass-shaped database and data directory (cargo xtask fixture)");
        let summary = sandbox::fixture(&s, &root, 8, 1)?;
        println!(
            "   {} schemas, {} tables, {:.1} MiB of longblob; base dir {}",
            summary.schemas.len(),
            summary.tables,
            summary.blob_bytes as f64 / 1048576.0,
            summary.base_dir.display()
        );
        println!(
            "   DataJoint config written to {}",
            summary.dj_config.display()
        );
        say("4. spyglass-admin doctor (run where dj_local_conf.json is, like DataJoint)");
        let status = Command::new(admin_bin())
            .arg("doctor")
            .current_dir(&root)
            .env("DJ_PASS", "")
            .env_remove("DJ_HOST")
            .env_remove("DJ_PORT")
            .env_remove("DJ_USER")
            .status()
            .map_err(|e| format!("cannot run spyglass-admin: {e}"))?;
        if !status.success() {
            return Err(format!("doctor reported problems ({status})"));
        }
        say("5. The same check for scripts: spyglass-admin doctor --json | head");
        let out = Command::new(admin_bin())
            .args(["doctor", "--json"])
            .current_dir(&root)
            .env("DJ_PASS", "")
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        for line in text.lines().take(12) {
            println!("   {line}");
        }
        println!("   ...");
        say("Cleanup: spyglass-admin cleanup scan (reads only; exit 1 = something to clean)");
        let status = Command::new(admin_bin())
            .args(["cleanup", "scan"])
            .current_dir(&root)
            .env("DJ_PASS", "")
            .status()
            .map_err(|e| format!("cannot run spyglass-admin: {e}"))?;
        if !matches!(status.code(), Some(0 | 1)) {
            return Err(format!("cleanup scan failed ({status})"));
        }
        println!(
            "   (apply quarantines them after guards and a re-check: spyglass-admin cleanup apply)"
        );
        // Users: roles, one lab member, and the audit (which finds the sandbox's
        // password-less root and alice's still-unchanged first password).
        let users = |args: &[&str], ok: &[i32]| -> Result<(), String> {
            let status = Command::new(admin_bin())
                .args(args)
                .current_dir(&root)
                .env("DJ_PASS", "")
                .status()
                .map_err(|e| format!("cannot run spyglass-admin: {e}"))?;
            match status.code() {
                Some(c) if ok.contains(&c) => Ok(()),
                _ => Err(format!(
                    "spyglass-admin {} failed ({status})",
                    args.join(" ")
                )),
            }
        };
        say("Users: spyglass-admin users roles init (dj_guest, dj_collab, dj_user, dj_admin)");
        users(&["users", "roles", "init"], &[0])?;
        say("Users: spyglass-admin users add alice --role user --expire (password shown once)");
        users(
            &["users", "add", "alice", "--role", "user", "--expire"],
            &[0],
        )?;
        say("Users: spyglass-admin users add root --role guest (refused before any statement: a reserved name; exit 2)");
        users(&["users", "add", "root", "--role", "guest"], &[2])?;
        say("Users: spyglass-admin users list");
        users(&["users", "list"], &[0])?;
        say("Users: spyglass-admin users audit (exit 1 = findings, each with its fix)");
        users(&["users", "audit"], &[0, 1])?;
        let dest = root.join("backups");
        let dest_s = dest.to_string_lossy().into_owned();
        say("Backup: spyglass-admin backup run --dest DEST --checksum (one snapshot, parallel workers, gzip, sha256)");
        users(&["backup", "run", "--dest", &dest_s, "--checksum"], &[0])?;
        say("Backup: spyglass-admin backup list DEST");
        users(&["backup", "list", &dest_s], &[0])?;
        let set = std::fs::read_dir(&dest)
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("manifest.json").is_file())
            .ok_or("no backup set was written")?;
        let set_s = set.to_string_lossy().into_owned();
        say("Backup: spyglass-admin backup verify SET --restore (restores into verify_* schemas, compares rows and checksums, drops them)");
        users(&["backup", "verify", &set_s, "--restore"], &[0])?;
        println!(
            "   restore by hand with only gunzip and mysql: see {}/RESTORE.txt",
            set_s
        );
        pitr_demo(&s, &root)?;
        nightly_demo(&root)?;
        report_demo(&root)?;
        if s3 {
            s3_demo(&root)?;
        }
        Ok(())
    })();
    if keep {
        say(&format!(
            "The sandbox keeps running; stop it with: cargo xtask sandbox stop --flavor {}",
            flavor.name()
        ));
    } else {
        sandbox::stop(flavor)?;
    }
    result?;
    say("Demo finished.");
    Ok(())
}

/// Point in time: a backup, writes, a mistaken delete; the binlog archive
/// brings the schema back to just before the delete, under another name,
/// next to the live one.
fn pitr_demo(s: &Sandbox, root: &Path) -> Result<(), String> {
    use spyglass_db::mysql::prelude::Queryable;
    let mut session = s.connect()?;
    let mut q = |stmt: &str| -> Result<(), String> {
        session
            .conn()
            .query_drop(stmt)
            .map_err(|e| format!("{stmt}: {e}"))
    };
    let run = |args: &[&str], ok: &[i32]| -> Result<String, String> {
        let out = Command::new(admin_bin())
            .args(args)
            .current_dir(root)
            .env("DJ_PASS", "")
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run spyglass-admin: {e}"))?;
        match out.status.code() {
            Some(c) if ok.contains(&c) => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            _ => Err(format!(
                "spyglass-admin {} failed ({})",
                args.join(" "),
                out.status
            )),
        }
    };
    let dest = root.join("pitr-backups");
    // An archive of an earlier demo's server belongs to another server now.
    let _ = std::fs::remove_dir_all(&dest);
    let dest_s = dest.to_string_lossy().into_owned();
    say("Point in time: a schema demo_lab with 100 sessions, and last night's backup of it");
    q("DROP DATABASE IF EXISTS demo_lab")?;
    q("DROP DATABASE IF EXISTS demo_lab_before")?;
    q("CREATE DATABASE demo_lab")?;
    q("CREATE TABLE demo_lab.`session` (id INT PRIMARY KEY, note VARCHAR(40))")?;
    q("INSERT INTO demo_lab.`session` SELECT seq, CONCAT('night ', seq) FROM (SELECT a.n * 10 + b.n + 1 AS seq FROM (SELECT 0 n UNION SELECT 1 UNION SELECT 2 UNION SELECT 3 UNION SELECT 4 UNION SELECT 5 UNION SELECT 6 UNION SELECT 7 UNION SELECT 8 UNION SELECT 9) a, (SELECT 0 n UNION SELECT 1 UNION SELECT 2 UNION SELECT 3 UNION SELECT 4 UNION SELECT 5 UNION SELECT 6 UNION SELECT 7 UNION SELECT 8 UNION SELECT 9) b) x")?;
    // A child table, declared the way DataJoint declares one.
    q("CREATE TABLE demo_lab.`trial` (id INT, trial INT, PRIMARY KEY (id, trial), FOREIGN KEY (id) REFERENCES demo_lab.`session` (id) ON UPDATE CASCADE ON DELETE RESTRICT)")?;
    q("INSERT INTO demo_lab.`trial` SELECT id, 1 FROM demo_lab.`session`")?;
    let set = run(
        &["backup", "run", "--dest", &dest_s, "--schemas", "demo_lab"],
        &[0],
    )?;
    let set = set.trim().to_owned();
    say("Point in time: spyglass-admin binlog archive --until-now --dest DEST (cron; or the systemd service)");
    run(
        &["binlog", "archive", "--until-now", "--dest", &dest_s],
        &[0],
    )?;
    say("Point in time: the day's work (20 new sessions), then at T a mistaken cascade delete of everything (DataJoint's way: trials, then sessions, in one transaction)");
    q("INSERT INTO demo_lab.`session` SELECT id + 100, 'during the day' FROM demo_lab.`session` WHERE id <= 20")?;
    q("INSERT INTO demo_lab.`trial` SELECT id, 1 FROM demo_lab.`session` WHERE id > 100")?;
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let before = chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    q("START TRANSACTION")?;
    q("DELETE FROM demo_lab.`trial`")?;
    q("DELETE FROM demo_lab.`session`")?;
    q("COMMIT")?;
    run(
        &["binlog", "archive", "--until-now", "--dest", &dest_s],
        &[0],
    )?;
    println!("   the delete came after {before}; demo_lab now has 0 rows");
    say(&format!("Point in time: spyglass-admin backup restore SET --rename demo_lab=demo_lab_before --until '{before}'"));
    run(
        &[
            "backup",
            "restore",
            &set,
            "--rename",
            "demo_lab=demo_lab_before",
            "--until",
            &before,
        ],
        &[0],
    )?;
    let n: Option<u64> = session
        .conn()
        .query_first("SELECT COUNT(*) FROM demo_lab_before.`session`")
        .map_err(|e| e.to_string())?;
    println!("   demo_lab_before.session has {} rows (100 from the backup + 20 from the day), next to the emptied demo_lab", n.unwrap_or(0));
    if n != Some(120) {
        return Err(format!(
            "the point-in-time restore gave {n:?} rows, not 120"
        ));
    }
    say("Point in time: spyglass-admin backup list DEST (each set's restorable window)");
    print!("{}", run(&["backup", "list", &dest_s], &[0])?);
    let archive = dest.join("binlog");
    let archive_s = archive.to_string_lossy().into_owned();
    say(&format!("Undo a delete: spyglass-admin recover --list --since '{before}' --schemas demo_lab --binlog-dir DEST/binlog"));
    print!(
        "{}",
        run(
            &[
                "recover",
                "--list",
                "--since",
                &before,
                "--schemas",
                "demo_lab",
                "--binlog-dir",
                &archive_s
            ],
            &[0],
        )?
    );
    let listed: serde_json::Value = serde_json::from_str(&run(
        &[
            "recover",
            "--list",
            "--since",
            &before,
            "--schemas",
            "demo_lab",
            "--binlog-dir",
            &archive_s,
            "--json",
        ],
        &[0],
    )?)
    .map_err(|e| format!("recover --list --json: {e}"))?;
    let txn = listed["transactions"]
        .as_array()
        .and_then(|t| t.first())
        .and_then(|t| t["id"].as_str())
        .ok_or("recover --list found no transaction that deleted rows of demo_lab")?
        .to_owned();
    say(&format!("Undo a delete: spyglass-admin recover {txn} --in-place --binlog-dir DEST/binlog (a dry run, then the rows back in one transaction)"));
    print!(
        "{}",
        run(
            &["recover", &txn, "--in-place", "--binlog-dir", &archive_s],
            &[0]
        )?
    );
    let n: Option<u64> = session
        .conn()
        .query_first("SELECT COUNT(*) FROM demo_lab.`session`")
        .map_err(|e| e.to_string())?;
    let trials: Option<u64> = session
        .conn()
        .query_first("SELECT COUNT(*) FROM demo_lab.`trial`")
        .map_err(|e| e.to_string())?;
    println!(
        "   demo_lab.session has {} rows again, demo_lab.trial {}",
        n.unwrap_or(0),
        trials.unwrap_or(0)
    );
    if n != Some(120) || trials != Some(120) {
        return Err(format!(
            "recover --in-place gave {n:?} sessions and {trials:?} trials, not 120 and 120"
        ));
    }
    Ok(())
}

/// `nightly` end to end: backup, verify, ship to an sshd on 127.0.0.1 that
/// the demo starts, prune here and there, cleanup scan; then `schedule --print`.
fn nightly_demo(root: &std::path::Path) -> Result<(), String> {
    say("Nightly: start a throwaway sshd on 127.0.0.1 to ship to (stands in for the lab's server X)");
    let sshd = crate::sshd::Sshd::start(&root.join("sshd"))?;
    println!(
        "   {} (key {})",
        sshd.target("offsite"),
        sshd.identity().display()
    );
    let dest = root.join("nightly-backups");
    let settings = root.join("spyglass-admin-nightly.toml");
    let text = format!(
        "[backup]\ndestination = \"{}\"\nkeep_daily = 7\nkeep_weekly = 4\nkeep_monthly = 6\n\
         ship_to = \"{}\"\nidentity = \"{}\"\nssh_config = \"{}\"\n\n[nightly]\ncleanup = \"scan\"\n",
        dest.display(),
        sshd.target("offsite"),
        sshd.identity().display(),
        sshd.ssh_config().display()
    );
    std::fs::write(&settings, &text).map_err(|e| format!("writing {}: {e}", settings.display()))?;
    println!("   {}:", settings.display());
    for line in text.lines() {
        println!("     {line}");
    }
    let run = |args: &[&str], ok: &[i32]| -> Result<(), String> {
        let status = Command::new(admin_bin())
            .arg("--config")
            .arg(&settings)
            .args(args)
            .current_dir(root)
            .env("DJ_PASS", "")
            .status()
            .map_err(|e| format!("cannot run spyglass-admin: {e}"))?;
        match status.code() {
            Some(c) if ok.contains(&c) => Ok(()),
            _ => Err(format!(
                "spyglass-admin {} failed ({status})",
                args.join(" ")
            )),
        }
    };
    say("Nightly: spyglass-admin nightly --config FILE (exit 1 = informational: cleanup found files to quarantine; exit 2 = needs attention: the demo's fixture plants dangling references)");
    run(&["nightly"], &[0, 1, 2])?;
    // Exit 2 is fine here only for the planted dangling references: every
    // step must have done its job ("attention", never "failed").
    let summary = std::fs::read_to_string(dest.join("spyglass-nightly.json"))
        .map_err(|e| format!("reading the nightly summary: {e}"))?;
    if summary.contains("\"status\": \"failed\"") {
        return Err(format!("the demo's nightly had a failed step:\n{summary}"));
    }
    say("Nightly: the copy on the other side, pruned by the same policy: spyglass-admin backup prune ssh://... --dry-run");
    run(
        &["backup", "prune", &sshd.target("offsite"), "--dry-run"],
        &[0],
    )?;
    say("Nightly: spyglass-admin schedule --print (paste into crontab -e)");
    run(&["schedule", "--print"], &[0])?;
    say("Install: spyglass-admin schedule --print --systemd (the units the Debian package installs, with this machine's paths; cargo xtask dist builds the package)");
    run(&["schedule", "--print", "--systemd"], &[0])?;
    drop(sshd);
    Ok(())
}

/// `report` on what the demo made: one HTML page of everything above.
fn report_demo(root: &std::path::Path) -> Result<(), String> {
    say("Report: spyglass-admin report --out report.html (storage, growth, backups, cleanup, users; exit 1 = problems shown first)");
    let page = root.join("report.html");
    let status = Command::new(admin_bin())
        .arg("--config")
        .arg(root.join("spyglass-admin-nightly.toml"))
        .args(["report", "--out"])
        .arg(&page)
        .current_dir(root)
        .env("DJ_PASS", "")
        .status()
        .map_err(|e| format!("cannot run spyglass-admin: {e}"))?;
    if !matches!(status.code(), Some(0 | 1)) {
        return Err(format!("spyglass-admin report failed ({status})"));
    }
    println!(
        "   open it in a browser (no network needed): {}",
        page.display()
    );
    Ok(())
}

/// `nightly` shipping to a 3-node Garage cluster on 127.0.0.1 (built once
/// per machine, or reused), then the set listed and verified on the store.
fn s3_demo(root: &std::path::Path) -> Result<(), String> {
    say("S3: build (once per machine) or reuse Garage, start a 3-node cluster on 127.0.0.1 (replication factor 3)");
    let g = start_garage()?;
    let dest = root.join("nightly-s3-backups");
    let settings = root.join("spyglass-admin-s3.toml");
    let to = format!("s3://{}/demo", crate::garage::BUCKET);
    let text = format!(
        "[backup]\ndestination = \"{}\"\nkeep_daily = 7\nship_to = \"{to}\"\n\n[nightly]\ncleanup = \"off\"\n\n         [s3]\nendpoint = \"{}\"\nregion = \"{}\"\n# the key: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment\n",
        dest.display(),
        g.endpoints()[0],
        crate::garage::REGION
    );
    std::fs::write(&settings, &text).map_err(|e| format!("writing {}: {e}", settings.display()))?;
    println!("   {}:", settings.display());
    for line in text.lines() {
        println!("     {line}");
    }
    let run = |args: &[&str], ok: &[i32]| -> Result<(), String> {
        let mut c = Command::new(admin_bin());
        c.arg("--config")
            .arg(&settings)
            .args(args)
            .current_dir(root)
            .env("DJ_PASS", "");
        g.set_env(&mut c);
        let status = c
            .status()
            .map_err(|e| format!("cannot run spyglass-admin: {e}"))?;
        match status.code() {
            Some(code) if ok.contains(&code) => Ok(()),
            _ => Err(format!(
                "spyglass-admin {} failed ({status})",
                args.join(" ")
            )),
        }
    };
    say("S3: spyglass-admin nightly (ship_to = s3://...)");
    run(&["nightly"], &[0, 1])?;
    say(&format!("S3: spyglass-admin backup list {to}"));
    run(&["backup", "list", &to], &[0])?;
    drop(g);
    Ok(())
}

fn say(s: &str) {
    println!("\n== {s}");
}
