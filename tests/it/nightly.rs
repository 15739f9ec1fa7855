//! `nightly` that cannot fail silently: a run that cannot start still logs
//! and notifies, exit codes separate "needs attention" from
//! "informational", `--quiet` is quiet when all is well, a manual run in the
//! day never prunes last night's set (here or off-site), the restore drill
//! restores, compares and drops, `doctor`'s dead man's switch, and the
//! systemd failure unit.
//!
//! The ship target is a directory (no sshd needed: the ssh transport is
//! lifecycle.rs's business).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{admin, Sandbox};

/// The fixture's DataJoint config in cwd and settings for a nightly of the
/// fixture's schemas into `dest`; `extra_backup` and `extra_nightly` are
/// added to those sections.
fn settings(sb: &Sandbox, dest: &Path, extra_backup: &str, extra_nightly: &str) {
    let root = crate::support::fixture_root();
    sb.write(
        "dj_local_conf.json",
        &std::fs::read_to_string(root.join("dj_local_conf.json")).expect("fixture dj config"),
        0o600,
    );
    let schemas: Vec<String> = spyglass_fixture::SCHEMAS
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect();
    sb.write(
        "spyglass-admin.toml",
        &format!(
            "[backup]\ndestination = \"{dest}\"\n{extra_backup}\n\n\
             [nightly]\nthreads = 2\nschemas = [{schemas}]\nnotify_command = \"cat > {notified}\"\n{extra_nightly}\n\n\
             [cleanup]\nschemas = [{schemas}]\n",
            dest = dest.display(),
            schemas = schemas.join(", "),
            notified = notified(sb).display(),
        ),
        0o644,
    );
}

fn notified(sb: &Sandbox) -> PathBuf {
    sb.cwd().join("notified.json")
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

fn log_lines(dest: &Path) -> Vec<Value> {
    std::fs::read_to_string(dest.join("spyglass-nightly.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a log line is JSON"))
        .collect()
}

fn step<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {v:#}"))
}

/// Unix seconds now.
fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// `secs` formatted by date(1) in UTC.
fn utc(secs: i64, format: &str) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), &format!("+{format}")])
        .output()
        .expect("date");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned()
}

/// A set with a minimal valid manifest (no files), named for `secs`.
fn made_up_set(dest: &Path, secs: i64) -> String {
    let name = format!("nightly-{}", utc(secs, "%Y%m%d-%H%M%S"));
    let d = dest.join(&name);
    std::fs::create_dir_all(&d).expect("mkdir");
    let m = serde_json::json!({
        "format": 1, "tool_version": "test", "engine": "native", "label": "nightly",
        "server": {"flavor": "mariadb", "version": "10.11", "address": "127.0.0.1:3306"},
        "snapshot": {"method": "none", "ddl_lock": "none", "binlog_file": null, "binlog_position": null, "gtid": null, "workers": 1},
        "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:00:01Z",
        "compression": {"method": "gzip", "level": 1}, "encoding": "escaped", "max_statement_bytes": 0,
        "schemas": [], "tables": [], "files": [], "notes": []
    });
    std::fs::write(d.join("manifest.json"), m.to_string()).expect("manifest");
    name
}

/// Issue 19: a settings file that does not parse, or a lock held by another
/// run, used to exit 2 with no log line and no notify call.
#[test]
fn a_run_that_cannot_start_still_logs_and_notifies() {
    let sb = Sandbox::as_root();
    let dest = sb.cwd().join("backups");
    std::fs::create_dir_all(&dest).expect("mkdir");
    // Valid TOML with a typo: the plan refuses, notify_command is still read.
    settings(&sb, &dest, "keep_dayly = 7", "");
    let out = sb.run(&["nightly"]);
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains("unknown key `keep_dayly`"),
        "{}",
        out.stderr
    );
    let n = read_json(&notified(&sb));
    assert_eq!(n["status"], "failed", "{n:#}");
    assert_eq!(n["exit_code"], 2);
    assert!(
        n["error"]
            .as_str()
            .expect("error")
            .starts_with("nightly did not start: ")
            && n["error"].as_str().expect("e").contains("keep_dayly"),
        "{n:#}"
    );
    let log = log_lines(&dest);
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["error"], n["error"]);
    assert_eq!(
        read_json(&dest.join("spyglass-nightly.json"))["error"],
        n["error"]
    );

    // Not TOML at all: read line by line.
    std::fs::remove_file(notified(&sb)).expect("rm");
    let text = std::fs::read_to_string(sb.cwd().join("spyglass-admin.toml")).expect("read");
    sb.write(
        "spyglass-admin.toml",
        &text.replace("keep_dayly = 7", "keep_daily = = 7\n[broken"),
        0o644,
    );
    let out = sb.run(&["nightly"]);
    out.assert_code(2).assert_clean_error();
    let n = read_json(&notified(&sb));
    assert_eq!(n["status"], "failed", "{n:#}");
    assert_eq!(log_lines(&dest).len(), 2);

    // A lock held by another run: logged and notified, the other run's
    // summary left alone.
    settings(&sb, &dest, "keep_last = 3", "cleanup = \"off\"");
    std::fs::remove_file(notified(&sb)).expect("rm");
    std::fs::write(dest.join("spyglass-nightly.json"), "{\"other\": 1}").expect("write");
    let lock = dest.join(".spyglass-nightly.lock");
    let ready = sb.cwd().join("holding");
    let mut holder = Command::new("flock")
        .arg("-x")
        .arg(&lock)
        .arg("-c")
        .arg(format!("touch '{}'; sleep 60", ready.display()))
        .stdout(Stdio::null())
        .spawn()
        .expect("flock (util-linux) is needed for this test");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "flock never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = sb.run(&["nightly"]);
    let _ = holder.kill();
    let _ = holder.wait();
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains("another nightly run is in progress"),
        "{}",
        out.stderr
    );
    let n = read_json(&notified(&sb));
    assert!(
        n["error"]
            .as_str()
            .expect("error")
            .contains("another nightly run is in progress"),
        "{n:#}"
    );
    assert_eq!(log_lines(&dest).len(), 3);
    assert_eq!(
        std::fs::read_to_string(dest.join("spyglass-nightly.json")).expect("read"),
        "{\"other\": 1}"
    );

    // The systemd failure unit: a killed run is logged and notified; a run
    // that exited 2 by itself already did both.
    std::fs::remove_file(notified(&sb)).expect("rm");
    let out: crate::support::Outcome = sb
        .command(&["nightly", "--notify-failure"])
        .env("MONITOR_SERVICE_RESULT", "exit-code")
        .env("MONITOR_EXIT_STATUS", "2")
        .output()
        .expect("run")
        .into();
    out.assert_code(0);
    assert!(!notified(&sb).exists(), "notified twice");
    assert_eq!(log_lines(&dest).len(), 3);
    let out: crate::support::Outcome = sb
        .command(&["nightly", "--notify-failure"])
        .env("MONITOR_SERVICE_RESULT", "signal")
        .env("MONITOR_EXIT_STATUS", "KILL")
        .env("MONITOR_UNIT", "spyglass-nightly.service")
        .output()
        .expect("run")
        .into();
    out.assert_code(0);
    let n = read_json(&notified(&sb));
    assert_eq!(
        n["error"],
        "spyglass-nightly.service failed (signal, status KILL) before it could report; see journalctl -u spyglass-nightly.service"
    );
    assert_eq!(log_lines(&dest).len(), 4);
}

/// Issue 19: a manual run in the day pruned last night's set under
/// `keep_daily`, here and on the ship target. With calendar rules nightly
/// keeps the 3 newest too; the summary names what prune removed. The same
/// run is a restore drill (`restore_drill = "daily"`), and its exit code
/// says the fixture's dangling references need attention.
#[test]
fn same_day_runs_keep_last_nights_set_and_the_drill_restores() {
    let sb = Sandbox::as_root();
    let dest = sb.cwd().join("backups");
    let offsite = sb.cwd().join("offsite");
    let now = now_unix();
    let day = 86_400;
    let today = now - now.rem_euclid(day);
    // Last night's scheduled set (earlier today, or yesterday just after
    // midnight UTC), the night before, and one far outside the policy.
    let last_night = (now - 60).max(today);
    let mut names = Vec::new();
    for d in [&dest, &offsite] {
        names = vec![
            made_up_set(d, last_night),
            made_up_set(d, today - day + 9000),
            made_up_set(d, today - 40 * day),
        ];
    }
    settings(
        &sb,
        &dest,
        // Two days with sets count: today's newest and yesterday's.
        &format!("keep_daily = 2\nship_to = \"{}\"", offsite.display()),
        "restore_drill = \"daily\"",
    );
    let out = sb.run(&["nightly", "--json"]);
    let v = out.json();
    // The fixture has dangling references: possible data loss needs attention.
    assert_eq!(out.code, 2, "{v:#}\n{}", out.stderr);
    assert_eq!(v["status"], "attention", "{v:#}");
    assert_eq!(step(&v, "cleanup")["status"], "attention", "{v:#}");
    assert!(
        v["attention"]
            .as_array()
            .expect("attention")
            .iter()
            .any(|a| a.as_str().expect("s").contains("dangling reference")),
        "{v:#}"
    );
    for s in ["backup", "verify", "ship", "prune", "prune-remote"] {
        assert_eq!(step(&v, s)["status"], "ok", "{s}: {v:#}");
    }
    // Last night's set and the night before survive, here and off-site;
    // the old one goes, and the summary says so.
    for d in [&dest, &offsite] {
        assert!(
            d.join(&names[0]).is_dir(),
            "{} lost last night's set",
            d.display()
        );
        assert!(d.join(&names[1]).is_dir(), "{}", d.display());
        assert!(!d.join(&names[2]).exists(), "{}: {v:#}", d.display());
    }
    for s in ["prune", "prune-remote"] {
        let msg = step(&v, s)["message"].as_str().expect("message");
        assert!(
            msg.contains(&format!("removed 1 ({})", names[2])),
            "{s}: {msg}"
        );
    }
    assert!(
        step(&v, "prune")["message"]
            .as_str()
            .expect("m")
            .contains("policy: last 3, daily 2"),
        "{v:#}"
    );
    // The drill restored every table, compared it, and dropped its schemas.
    let verify = step(&v, "verify");
    assert!(
        verify["message"]
            .as_str()
            .expect("m")
            .contains("restore drill: restored into drill_* schemas"),
        "{verify:#}"
    );
    let tables = step(&v, "backup")["detail"]["tables"]
        .as_u64()
        .expect("tables");
    assert!(tables > 0);
    assert_eq!(
        verify["detail"]["tables_compared"].as_u64(),
        Some(tables),
        "{verify:#}"
    );
    let left: Vec<String> = spyglass_db::mysql::prelude::Queryable::query(
        admin().conn(),
        "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'drill\\_%'",
    )
    .expect("query");
    assert!(left.is_empty(), "the drill left {left:?}");
    let n = read_json(&notified(&sb));
    assert_eq!(n["status"], "attention");
}

/// `--quiet` prints nothing when all is well (cron mails nothing), and the
/// whole summary when something needs attention.
#[test]
fn quiet_is_quiet_when_all_is_well() {
    let sb = Sandbox::as_root();
    let dest = sb.cwd().join("backups");
    settings(&sb, &dest, "keep_last = 3", "cleanup = \"off\"");
    let out = sb.run(&["nightly", "--quiet"]);
    out.assert_code(0);
    assert_eq!(out.stdout, "", "stdout");
    assert_eq!(out.stderr, "", "stderr");
    assert_eq!(read_json(&notified(&sb))["status"], "ok");
    // Cleanup on: the fixture's dangling references need attention.
    settings(&sb, &dest, "keep_last = 3", "cleanup = \"scan\"");
    // Set names have whole seconds.
    std::thread::sleep(Duration::from_millis(1100));
    let out = sb.run(&["nightly", "--quiet"]);
    out.assert_code(2);
    assert!(
        out.stdout.contains("cleanup       ATTENTION")
            && out.stdout.contains("result: attention (exit 2)"),
        "{}",
        out.stdout
    );
}

/// The dead man's switch: no history is a note (a fresh install is
/// healthy); a newest successful nightly older than `stale_after` is a
/// problem.
#[test]
fn doctor_flags_a_stale_nightly() {
    let sb = Sandbox::as_root();
    let dest = sb.cwd().join("backups");
    std::fs::create_dir_all(&dest).expect("mkdir");
    settings(&sb, &dest, "", "stale_after = \"2h\"");
    let nightly_problems = |v: &Value| -> Vec<String> {
        v["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .filter(|p| p["check"] == "nightly")
            .map(|p| p["message"].as_str().expect("m").to_owned())
            .collect()
    };
    let v = sb.run(&["doctor", "--json"]).json();
    assert!(nightly_problems(&v).is_empty(), "{v:#}");
    assert!(
        v["nightly"]["notes"][0]
            .as_str()
            .expect("note")
            .starts_with("no nightly has run yet"),
        "{v:#}"
    );
    let old = utc(now_unix() - 3 * 3600, "%Y-%m-%dT%H:%M:%SZ");
    std::fs::write(
        dest.join("spyglass-nightly.log"),
        format!(
            "{}\n",
            serde_json::json!({"finished": old, "status": "ok", "steps": [
                {"name": "backup", "status": "ok"}, {"name": "verify", "status": "ok"}]})
        ),
    )
    .expect("write");
    let out = sb.run(&["doctor", "--json"]);
    out.assert_code(1);
    let p = nightly_problems(&out.json());
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("the newest successful nightly (backup and verify) finished 3h ago")
            && p[0].contains("stale_after = 2h"),
        "{p:?}"
    );
}

/// Issue 19: `schedule --print -u backup --password-file F` dropped both,
/// so nightly ran as the DataJoint config's account. They are carried into
/// the cron line and the unit (the file's path, never the password), and
/// the unit has a failure unit that notifies.
#[test]
fn schedule_carries_the_account_and_the_failure_unit() {
    let sb = Sandbox::new();
    sb.write(
        "spyglass-admin.toml",
        "[backup]\ndestination = \"/data/mysql-backups\"\n",
        0o644,
    );
    let pw = sb.write("backup.pw", "s3cret-of-the-backup-account\n", 0o600);
    let pw = pw.canonicalize().expect("pw");
    let args = ["--user", "spyglass_backup", "--password-file", "backup.pw"];
    let out = sb.run(&[&["schedule", "--print"][..], &args].concat());
    out.assert_code(0);
    assert!(
        out.stdout.contains(&format!(
            " nightly --config {} --user spyglass_backup --password-file {} --quiet\n",
            sb.cwd()
                .join("spyglass-admin.toml")
                .canonicalize()
                .expect("c")
                .display(),
            pw.display()
        )),
        "{}",
        out.stdout
    );
    let out = sb.run(&[&["schedule", "--print", "--systemd"][..], &args].concat());
    out.assert_code(0);
    assert!(
        out.stdout.lines().any(|l| l.starts_with("ExecStart=")
            && l.ends_with(&format!(
                " --user spyglass_backup --password-file {}",
                pw.display()
            ))),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("OnFailure=spyglass-nightly-failure.service\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("# /etc/systemd/system/spyglass-nightly-failure.service\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(" nightly --notify-failure --config "),
        "{}",
        out.stdout
    );
    for o in [&out.stdout, &out.stderr] {
        assert!(!o.contains("s3cret"), "{o}");
    }
    // Nobody can type a password at night.
    let out = sb.run(&["schedule", "--print", "--ask-password"]);
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains("--ask-password cannot be scheduled"),
        "{}",
        out.stderr
    );
}

/// Issue 19: nothing wired `users add-backup-user`'s account to nightly.
/// With `[backup] account` and `password_file` nightly logs in as that
/// account (a backup it may not make fails naming it), and doctor says what
/// it lacks for the enabled steps.
#[test]
fn nightly_runs_as_the_backup_account_and_doctor_checks_it() {
    let name = "nightly_bk19";
    crate::support::create_user(name, "pw-nightly-bk19", &["PROCESS ON *.*"]);
    let sb = Sandbox::as_root();
    let dest = sb.cwd().join("backups");
    let pw = sb.write("backup.pw", "pw-nightly-bk19\n", 0o600);
    settings(
        &sb,
        &dest,
        &format!(
            "keep_last = 3\naccount = \"{name}@%\"\npassword_file = \"{}\"",
            pw.display()
        ),
        "cleanup = \"off\"\nrestore_drill = \"daily\"",
    );
    // Only PROCESS: the backup is refused as that account, not done as root.
    let out = sb.run(&["nightly", "--json"]);
    out.assert_code(2);
    let v = out.json();
    let backup = step(&v, "backup");
    assert_eq!(backup["status"], "failed", "{v:#}");
    // Root sees the fixture's schemas; this account sees none.
    assert!(
        backup["message"]
            .as_str()
            .expect("m")
            .starts_with("no schema matches the schema selection"),
        "{backup:#}"
    );
    let missing = |v: &Value| -> Vec<String> {
        v["nightly_account"]["missing"]
            .as_array()
            .unwrap_or_else(|| panic!("{v:#}"))
            .iter()
            .map(|m| m.as_str().expect("s").to_owned())
            .collect()
    };
    let v = sb.run(&["doctor", "--json"]).json();
    assert_eq!(v["nightly_account"]["login"], true, "{v:#}");
    let m = missing(&v);
    assert!(m.iter().any(|m| m.starts_with("backup: SELECT")), "{m:?}");
    assert!(
        m.contains(&"restore drill: CREATE on `drill\\_%`.*".to_owned()),
        "{m:?}"
    );
    let mut a = admin();
    crate::support::sql(
        &mut a,
        &format!("GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON *.* TO '{name}'@'%'"),
    );
    crate::support::sql(
        &mut a,
        &format!("GRANT ALL PRIVILEGES ON `drill\\_%`.* TO '{name}'@'%'"),
    );
    let v = sb.run(&["doctor", "--json"]).json();
    let m = missing(&v);
    assert!(!m.iter().any(|m| m.starts_with("restore drill")), "{m:?}");
    crate::support::sql(&mut a, &format!("DROP USER '{name}'@'%'"));
}

/// A private, namespaced copy of the fixture (its own schemas, stores and
/// files), for nights whose cleanup applies: the shared fixture must stay
/// as it is for the other tests. Dropped at the end, with any `drill_*`
/// schema of it a failed drill left.
pub(crate) struct Lab {
    pub(crate) ns: String,
    pub(crate) root: tempfile::TempDir,
    pub(crate) summary: spyglass_fixture::Summary,
}

impl Lab {
    pub(crate) fn new(ns: &str, seed: u64) -> Lab {
        let root = tempfile::tempdir().expect("tempdir");
        let s = crate::support::server();
        let opts = spyglass_fixture::FixtureOptions {
            seed,
            blob_mb: 0,
            root: root.path().to_owned(),
        };
        let summary = spyglass_fixture::create_namespaced(
            &mut admin(),
            &opts,
            ns,
            (&s.host, s.port, &s.user),
        )
        .unwrap_or_else(|e| panic!("private fixture {ns}: {e}"));
        Lab {
            ns: ns.to_owned(),
            root,
            summary,
        }
    }

    fn dest(&self) -> PathBuf {
        self.root.path().join("backups")
    }

    /// A sandbox with the copy's DataJoint config (root, no password, as
    /// `DJ_PASS=""`) and settings for a nightly of the copy's schemas, its
    /// cleanup scoped to them.
    pub(crate) fn sandbox(
        &self,
        extra_backup: &str,
        extra_nightly: &str,
    ) -> crate::support::Sandbox {
        let mut sb = crate::support::Sandbox::new();
        let cfg = std::fs::read_to_string(&self.summary.dj_config).expect("dj config");
        sb.write("dj_local_conf.json", &cfg, 0o600);
        sb.env("DJ_PASS", "");
        sb.write(
            "spyglass-admin.toml",
            &format!(
                "[backup]\ndestination = \"{dest}\"\nkeep_last = 3\n{extra_backup}\n\n\
                 [nightly]\nthreads = 2\nschemas = [\"{ns}*\"]\nnotify_command = \"cat > {notified}\"\n{extra_nightly}\n\n\
                 [cleanup]\nschemas = [\"{ns}*\"]\nquarantine = \"{q}\"\n",
                dest = self.dest().display(),
                ns = self.ns,
                notified = notified(&sb).display(),
                q = self.root.path().join("quarantine").display(),
            ),
            0o644,
        );
        sb
    }

    /// The paths `cleanup scan` reports as dangling (rows naming missing files).
    fn dangling(&self, sb: &crate::support::Sandbox) -> Vec<PathBuf> {
        let out = sb.run(&["cleanup", "scan", "--list", "--only", "dangling"]);
        assert!(out.code == 0 || out.code == 1, "{out:?}");
        out.stdout.lines().map(PathBuf::from).collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let mut a = admin();
        let _ = spyglass_fixture::drop_namespaced(&mut a, &self.ns);
        let left: Vec<String> = spyglass_db::mysql::prelude::Queryable::query(
            a.conn(),
            format!(
                "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'drill\\_{}%'",
                self.ns.replace('_', "\\_")
            ),
        )
        .unwrap_or_default();
        for s in left {
            let _ = spyglass_db::mysql::prelude::Queryable::query_drop(
                a.conn(),
                format!("DROP DATABASE `{s}`"),
            );
        }
    }
}

/// SHOW GRANTS as the account itself, logged in from outside.
fn own_grants(user: &str, password: &str) -> Vec<String> {
    let s = crate::support::server();
    let opts = spyglass_db::ConnectOptions::tcp(&s.host, s.port, user)
        .password(spyglass_db::Secret::new(password));
    let mut session = spyglass_db::connect(&opts)
        .unwrap_or_else(|e| panic!("{user} logs in with its password: {e}"));
    spyglass_db::mysql::prelude::Queryable::query(session.conn(), "SHOW GRANTS").expect("grants")
}

/// Issue 19: `users add-backup-user` granted only the backup's own
/// privileges, so a nightly with a restore drill and `cleanup = "apply"`
/// failed as the account made for it. Now it grants ALL on `drill\_%`.*
/// (never on `%`) and DELETE, INSERT on the cleanup schemas; the nightly
/// runs both as that account; audit and the report see the account as the
/// backup account (no drift, not a lab member); and without those grants
/// doctor names what is missing.
#[test]
fn add_backup_user_grants_what_the_drill_and_cleanup_apply_need() {
    let lab = Lab::new("nbk19_", 1901);
    let name = "nbk19_backup";
    let password = "Nbk19-backup-pw";
    let mut a = admin();
    crate::support::sql(&mut a, &format!("DROP USER IF EXISTS '{name}'@'%'"));
    let dummy = tempfile::tempdir().expect("tempdir");
    let pw = dummy.path().join("backup.pw");
    std::fs::write(&pw, format!("{password}\n")).expect("pw");
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let sb = lab.sandbox(
        &format!(
            "account = \"{name}@%\"\npassword_file = \"{}\"",
            pw.display()
        ),
        "restore_drill = \"daily\"\ncleanup = \"apply\"",
    );
    let out = crate::support::run_stdin(
        &sb,
        &[
            "users",
            "add-backup-user",
            &format!("{name}@%"),
            "--password-stdin",
        ],
        &format!("{password}\n"),
    );
    out.assert_code(0);
    assert!(
        !out.stdout.contains(password) && !out.stderr.contains(password),
        "{out:?}"
    );
    // From outside, as the account: the drill's and cleanup's grants, on
    // their patterns only.
    let grants = own_grants(name, password);
    let on = |pattern: &str| -> Vec<&String> {
        grants
            .iter()
            .filter(|g| g.contains(&format!(" ON `{pattern}`.* TO ")))
            .collect()
    };
    assert!(
        on("drill\\_%")
            .iter()
            .any(|g| g.starts_with("GRANT ALL PRIVILEGES ON")),
        "{grants:#?}"
    );
    let cleanup = on("nbk19\\_%");
    assert!(
        cleanup.len() == 1 && cleanup[0].contains("DELETE") && cleanup[0].contains("INSERT"),
        "{grants:#?}"
    );
    assert!(on("%").is_empty(), "nothing on every schema: {grants:#?}");
    // Idempotent, and audit sees no drift: the extra grants are what the
    // enabled steps need.
    let out = sb.run(&["users", "add-backup-user", &format!("{name}@%")]);
    out.assert_code(0);
    assert!(out.stdout.contains("nothing to change"), "{}", out.stdout);
    let backup_findings = |sb: &crate::support::Sandbox| -> Vec<String> {
        let out = sb.run(&["users", "audit", "--json", "--no-login-check"]);
        assert!(out.code == 0 || out.code == 1, "{out:?}");
        out.json()["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .filter(|f| f["subject"] == format!("'{name}'@'%'"))
            .map(|f| f["message"].as_str().expect("m").to_owned())
            .collect()
    };
    assert_eq!(backup_findings(&sb), Vec::<String>::new());
    // doctor logs in as it and finds nothing missing for the enabled steps;
    // it says (a note, not a problem) that with the binary log on and no
    // SUPER the drill cannot restore triggers, and what lets it.
    let out = sb.run(&["doctor", "--json"]);
    let v = out.json();
    assert_eq!(v["nightly_account"]["login"], true, "{v:#}");
    assert_eq!(
        v["nightly_account"]["missing"],
        serde_json::json!([]),
        "{v:#}"
    );
    let gap = &v["nightly_account"]["drill_leaves_out"];
    assert!(gap["triggers"].as_u64().is_some_and(|n| n >= 1), "{v:#}");
    assert!(
        !v["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .any(|p| p["check"] == "nightly"
                && p["message"].as_str().is_some_and(|m| m.contains("trigger"))),
        "{v:#}"
    );
    let text = sb.run(&["doctor"]).stdout;
    assert!(
        text.contains("the restore drill cannot restore the server's")
            && text.contains("log_bin_trust_function_creators = 1"),
        "{text}"
    );

    // The night, as that account: the drill restores every table (views
    // whose DEFINER is root come back with the account as definer), leaves
    // out the trigger it may not create with the binary log on (error
    // 1419) and says so, and cleanup apply quarantines and deletes unused
    // rows.
    let out = sb.run(&["nightly", "--json"]);
    let v = out.json();
    // The copy has dangling references: attention, but every step did its job.
    assert_eq!(out.code, 2, "{v:#}\n{}", out.stderr);
    assert_eq!(v["status"], "attention", "{v:#}");
    for s in ["backup", "verify", "prune"] {
        assert_eq!(step(&v, s)["status"], "ok", "{s}: {v:#}");
    }
    let tables = step(&v, "backup")["detail"]["tables"]
        .as_u64()
        .expect("tables");
    assert_eq!(tables, lab.summary.tables, "{v:#}");
    let verify = step(&v, "verify");
    assert_eq!(
        verify["detail"]["tables_compared"].as_u64(),
        Some(tables),
        "{verify:#}"
    );
    assert!(
        verify["message"]
            .as_str()
            .expect("m")
            .contains("restore drill: restored into drill_* schemas"),
        "{verify:#}"
    );
    // Never weakened silently: the trigger it left out is named.
    let trigger = "trigger `drill_nbk19_bob_analysis`.`count_edits`";
    assert_eq!(
        verify["detail"]["not_restored"],
        serde_json::json!([trigger]),
        "{verify:#}"
    );
    let message = verify["message"].as_str().expect("m");
    assert!(
        message.contains("not restored, so not checked")
            && message.contains(trigger)
            && message.contains("log_bin_trust_function_creators"),
        "{verify:#}"
    );
    let set = step(&v, "backup")["detail"]["path"]
        .as_str()
        .expect("path")
        .to_owned();
    let cleanup = step(&v, "cleanup");
    assert_eq!(cleanup["status"], "attention", "{cleanup:#}");
    let done = &cleanup["detail"]["done"];
    let planted = &lab.summary.planted;
    assert_eq!(
        done["untracked"]["count"].as_u64(),
        Some(planted.untracked),
        "{cleanup:#}"
    );
    assert_eq!(
        done["unused_external"]["count"].as_u64(),
        Some(planted.unused_external),
        "{cleanup:#}"
    );
    assert_eq!(
        cleanup["detail"]["dangling"].as_array().map(Vec::len),
        Some(planted.dangling as usize),
        "{cleanup:#}"
    );
    // The unused rows are gone on the server (the account deleted them).
    let after = sb.run(&["cleanup", "scan", "--json"]).json();
    assert_eq!(after["classes"]["unused_external"]["count"], 0, "{after:#}");
    let left: Vec<String> = spyglass_db::mysql::prelude::Queryable::query(
        a.conn(),
        "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'drill\\_nbk19%'",
    )
    .expect("query");
    assert!(left.is_empty(), "the drill left {left:?}");

    // The report audits it as the backup account, not as a lab member.
    let out = sb.run(&["report", "--json", "--no-login-check", "--no-history"]);
    assert!(out.code == 0 || out.code == 1, "{out:?}");
    let r = out.json();
    let users = &r["users"]["data"];
    let accounts: Vec<&str> = users["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .map(|a| a["account"].as_str().expect("account"))
        .collect();
    assert!(!accounts.iter().any(|a| a.contains(name)), "{accounts:?}");
    assert!(
        !users["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .any(|f| f["subject"].as_str().expect("s").contains(name)),
        "{users:#}"
    );

    // With log_bin_trust_function_creators on (what doctor and the drill
    // suggest), the same account restores the trigger too, and doctor's
    // note is gone. The global is put back whatever happens.
    struct Trust<'a>(&'a mut spyglass_db::Session);
    impl Drop for Trust<'_> {
        fn drop(&mut self) {
            let _ = spyglass_db::mysql::prelude::Queryable::query_drop(
                self.0.conn(),
                "SET GLOBAL log_bin_trust_function_creators = 0",
            );
        }
    }
    let trust = Trust(&mut a);
    crate::support::sql(trust.0, "SET GLOBAL log_bin_trust_function_creators = 1");
    let pw_arg = pw.display().to_string();
    let out = sb.run(&[
        "--user",
        name,
        "--password-file",
        &pw_arg,
        "--json",
        "backup",
        "verify",
        "--restore",
        "--prefix",
        "drill_again_",
        &set,
    ]);
    let r = out.json();
    assert_eq!(out.code, 0, "{r:#}\n{}", out.stderr);
    assert_eq!(r["tables_compared"].as_u64(), Some(tables), "{r:#}");
    assert_eq!(r["not_restored"], serde_json::json!([]), "{r:#}");
    let v = sb.run(&["doctor", "--json"]).json();
    assert!(v["nightly_account"]["drill_leaves_out"].is_null(), "{v:#}");
    drop(trust);

    // Without the extra grants, doctor names each missing one, and the
    // nightly's cleanup is refused before anything moves, naming the account.
    crate::support::sql(
        &mut a,
        &format!("REVOKE ALL PRIVILEGES ON `drill\\_%`.* FROM '{name}'@'%'"),
    );
    crate::support::sql(
        &mut a,
        &format!("REVOKE DELETE, INSERT ON `nbk19\\_%`.* FROM '{name}'@'%'"),
    );
    let v = sb.run(&["doctor", "--json"]).json();
    let missing: Vec<String> = v["nightly_account"]["missing"]
        .as_array()
        .expect("missing")
        .iter()
        .map(|m| m.as_str().expect("s").to_owned())
        .collect();
    for m in [
        "restore drill: CREATE on `drill\\_%`.*",
        "restore drill: DROP on `drill\\_%`.*",
        "cleanup apply: DELETE on `nbk19\\_%`.*",
        "cleanup apply: INSERT on `nbk19\\_%`.*",
    ] {
        assert!(missing.contains(&m.to_owned()), "{m}: {missing:?}");
    }
    assert!(
        !missing.iter().any(|m| m.starts_with("backup:")),
        "{missing:?}"
    );
    let hints: Vec<&str> = v["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter(|p| p["check"] == "nightly")
        .map(|p| p["hint"].as_str().expect("h"))
        .collect();
    assert!(
        hints
            .iter()
            .all(|h| h.contains(&format!("users add-backup-user {name}@%"))),
        "{hints:?}"
    );
    // Audit says what it lacks, with the same fix.
    let f = backup_findings(&sb);
    assert!(
        f.iter()
            .any(|m| m.contains("lacks what an enabled nightly step needs")
                && m.contains("drill\\_%")),
        "{f:?}"
    );
    // add-backup-user again puts them back.
    sb.run(&["users", "add-backup-user", &format!("{name}@%")])
        .assert_code(0);
    assert_eq!(backup_findings(&sb), Vec::<String>::new());
    crate::support::sql(&mut a, &format!("DROP USER '{name}'@'%'"));
}

/// Issue 19: a night whose cleanup found only files to quarantine is
/// informational (exit 1; `notify_on = "attention"` sends nothing), while
/// dangling references (possible data loss) need attention (exit 2,
/// notified), also with `cleanup = "apply"`, which never acts on them and
/// still reports them.
#[test]
fn informational_nights_exit_1_and_dangling_references_need_attention() {
    let lab = Lab::new("ninf19_", 1902);
    let sb = lab.sandbox("", "cleanup = \"scan\"\nnotify_on = \"attention\"");
    // Put the missing files back: only informational findings remain.
    let dangling = lab.dangling(&sb);
    assert_eq!(dangling.len() as u64, lab.summary.planted.dangling);
    assert!(
        !dangling.is_empty(),
        "the fixture plants dangling references"
    );
    for p in &dangling {
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, b"back").expect("write");
    }
    let out = sb.run(&["nightly", "--json"]);
    let v = out.json();
    assert_eq!(out.code, 1, "{v:#}\n{}", out.stderr);
    assert_eq!(v["status"], "warnings", "{v:#}");
    assert_eq!(step(&v, "cleanup")["status"], "warning", "{v:#}");
    assert_eq!(v["attention"], serde_json::json!([]), "{v:#}");
    assert!(
        !notified(&sb).exists(),
        "notify_on = attention sent an informational night"
    );
    // Logged all the same.
    assert_eq!(log_lines(&lab.dest()).len(), 1);

    // The files go again: possible data loss, also when cleanup applies.
    for p in &dangling {
        std::fs::remove_file(p).expect("rm");
    }
    let sb = lab.sandbox("", "cleanup = \"apply\"\nnotify_on = \"attention\"");
    std::thread::sleep(Duration::from_millis(1100));
    let out = sb.run(&["nightly", "--json"]);
    let v = out.json();
    assert_eq!(out.code, 2, "{v:#}\n{}", out.stderr);
    assert_eq!(v["status"], "attention", "{v:#}");
    let cleanup = step(&v, "cleanup");
    assert_eq!(cleanup["status"], "attention", "{cleanup:#}");
    let reported: Vec<PathBuf> = cleanup["detail"]["dangling"]
        .as_array()
        .expect("dangling")
        .iter()
        .map(|d| {
            PathBuf::from(
                d.as_str()
                    .or_else(|| d["path"].as_str())
                    .unwrap_or_else(|| panic!("{d:#}")),
            )
        })
        .collect();
    let mut want = dangling.clone();
    want.sort();
    let mut got = reported.clone();
    got.sort();
    assert_eq!(got, want, "{cleanup:#}");
    // Apply did its job on the rest (and never on a dangling row).
    assert_eq!(
        cleanup["detail"]["done"]["untracked"]["count"].as_u64(),
        Some(lab.summary.planted.untracked),
        "{cleanup:#}"
    );
    assert!(
        v["attention"]
            .as_array()
            .expect("attention")
            .iter()
            .any(|a| a.as_str().expect("s").contains("dangling reference")),
        "{v:#}"
    );
    let n = read_json(&notified(&sb));
    assert_eq!(n["status"], "attention", "{n:#}");
    assert_eq!(n["exit_code"], 2);
    assert_eq!(lab.dangling(&sb), dangling, "dangling rows untouched");
}

/// Issue 19: nightly had no host, port or socket of its own. With
/// `[backup] host` and `port` it connects there, although the DataJoint
/// config in its directory names a port nothing listens on; `schedule
/// --print` carries them into the line as flags; a wrong port there makes
/// the backup fail naming that port.
#[test]
fn nightly_connects_to_the_settings_host_and_port() {
    let s = crate::support::server();
    let closed = crate::support::closed_port();
    let mut sb = crate::support::Sandbox::new();
    sb.env("DJ_PASS", "");
    let sb = sb;
    let dest = sb.cwd().join("backups");
    let write = |sb: &crate::support::Sandbox, port: u16| {
        let mut cfg: Value = serde_json::from_str(&crate::support::dj_config(
            &s.user,
            None,
            serde_json::json!({}),
        ))
        .expect("json");
        cfg["database.port"] = closed.into();
        sb.write("dj_local_conf.json", &cfg.to_string(), 0o600);
        sb.write(
            "spyglass-admin.toml",
            &format!(
                "[backup]\ndestination = \"{}\"\nkeep_last = 3\nhost = \"{}\"\nport = {port}\n\n[nightly]\nthreads = 2\nschemas = [\"common_lab\"]\ncleanup = \"off\"\n",
                dest.display(),
                s.host
            ),
            0o644,
        );
    };
    write(&sb, s.port);
    let out = sb.run(&["nightly", "--json"]);
    let v = out.json();
    assert_eq!(out.code, 0, "{v:#}\n{}", out.stderr);
    assert_eq!(step(&v, "backup")["status"], "ok", "{v:#}");
    let out = sb.run(&["schedule", "--print"]);
    out.assert_code(0);
    assert!(
        out.stdout
            .contains(&format!(" --host {} --port {} --quiet\n", s.host, s.port)),
        "{}",
        out.stdout
    );
    // A wrong port in the settings: the backup fails naming it.
    write(&sb, closed);
    std::thread::sleep(Duration::from_millis(1100));
    let out = sb.run(&["nightly", "--json"]);
    out.assert_code(2);
    let v = out.json();
    let backup = step(&v, "backup");
    assert_eq!(backup["status"], "failed", "{v:#}");
    assert!(
        backup["message"]
            .as_str()
            .expect("m")
            .contains(&closed.to_string()),
        "{backup:#}"
    );
}

/// Found trying the README as a lab admin: a `drill_*` schema left from an
/// earlier drill made every later drill refuse, so verify failed and the
/// set went unshipped, night after night. Now a schema that is not the
/// drill's own is never touched, but the night needs attention only: the
/// checksums are good, so the set is still shipped. A drill that was
/// killed leaves a ledger naming the schemas it made, and the next night
/// drops exactly those (never one without the prefix) before it drills.
#[test]
fn leftover_drill_schemas_never_stop_the_ship_and_a_killed_drill_is_cleaned() {
    let lab = Lab::new("ndl19_", 1904);
    let offsite = lab.root.path().join("offsite");
    let sb = lab.sandbox(
        &format!("ship_to = \"{}\"", offsite.display()),
        "cleanup = \"off\"\nrestore_drill = \"daily\"",
    );
    let real = lab.summary.schemas[0].clone();
    let scratch = format!("drill_{real}");
    let mut a = admin();
    // Someone's own schema of the drill's name (a manual restore drill).
    crate::support::sql(&mut a, &format!("CREATE DATABASE `{scratch}`"));
    crate::support::sql(
        &mut a,
        &format!("CREATE TABLE `{scratch}`.keep (id INT PRIMARY KEY)"),
    );
    crate::support::sql(&mut a, &format!("INSERT INTO `{scratch}`.keep VALUES (7)"));
    let out = sb.run(&["nightly", "--json"]);
    let v = out.json();
    assert_eq!(out.code, 2, "{v:#}\n{}", out.stderr);
    assert_eq!(v["status"], "attention", "{v:#}");
    let verify = step(&v, "verify");
    assert_eq!(verify["status"], "attention", "{verify:#}");
    let msg = verify["message"].as_str().expect("message");
    assert!(
        msg.contains("restore drill did not run")
            && msg.contains(&scratch)
            && msg.contains(&format!("DROP DATABASE `{scratch}`;")),
        "{msg}"
    );
    for s in ["backup", "ship", "prune"] {
        assert_eq!(step(&v, s)["status"], "ok", "{s}: {v:#}");
    }
    let set = step(&v, "backup")["detail"]["path"]
        .as_str()
        .map(PathBuf::from)
        .expect("set path");
    let name = set.file_name().expect("set name");
    assert!(
        offsite.join(name).join("manifest.json").is_file(),
        "the verified set was not shipped: {v:#}"
    );
    // Not ours: untouched, with its row.
    let kept: Vec<i32> = spyglass_db::mysql::prelude::Queryable::query(
        a.conn(),
        format!("SELECT id FROM `{scratch}`.keep"),
    )
    .expect("the schema that is not the drill's is still there");
    assert_eq!(kept, vec![7]);
    crate::support::sql(&mut a, &format!("DROP DATABASE `{scratch}`"));

    // A drill killed between restoring and dropping: its scratch schema and
    // its ledger. The ledger also names a real schema (never dropped: it
    // lacks the prefix) and one that is gone.
    crate::support::sql(&mut a, &format!("CREATE DATABASE `{scratch}`"));
    crate::support::sql(
        &mut a,
        &format!("CREATE TABLE `{scratch}`.half (id INT PRIMARY KEY)"),
    );
    let ledger = lab.dest().join(".spyglass-drill-schemas");
    std::fs::write(&ledger, format!("{scratch}\n{real}\ndrill_ndl19_gone\n")).expect("ledger");
    std::thread::sleep(Duration::from_millis(1100));
    let out = sb.run(&["nightly", "--json"]);
    let v = out.json();
    let verify = step(&v, "verify");
    assert_eq!(verify["status"], "ok", "{verify:#}\n{}", out.stderr);
    let msg = verify["message"].as_str().expect("message");
    assert!(
        msg.contains(&format!(
            "dropped first the scratch schema(s) a killed drill left: {scratch}"
        )) && msg.contains("restore drill: restored into drill_* schemas"),
        "{msg}"
    );
    assert!(
        verify["detail"]["tables_compared"].as_u64().unwrap_or(0) > 0,
        "{verify:#}"
    );
    assert!(!ledger.exists(), "the ledger outlived the drill");
    let schemas: Vec<String> = spyglass_db::mysql::prelude::Queryable::query(
        a.conn(),
        format!(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name IN ('{real}', '{scratch}')"
        ),
    )
    .expect("query");
    assert_eq!(
        schemas,
        vec![real.clone()],
        "the real schema stays, the scratch one goes"
    );
}
