//! `spyglass-admin backup`: fixture -> backup -> restore into a fresh server,
//! compared table by table; RESTORE.txt followed literally; faults.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::{quote, ConnectOptions, Secret, Session};

use crate::support::{self, admin, server, Sandbox};

/// Held by the tests that run statements of a second or more on the source
/// server, and by the long-query guard test, which kills such statements:
/// they must not meet.
static LONG_STATEMENTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub(crate) fn long_statements() -> std::sync::MutexGuard<'static, ()> {
    LONG_STATEMENTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The second, empty server `cargo xtask itest` started for restores.
pub(crate) fn target_port() -> u16 {
    std::env::var("SPYGLASS_IT_TARGET_PORT")
        .expect("SPYGLASS_IT_TARGET_PORT is set by cargo xtask itest")
        .parse()
        .expect("port")
}

pub(crate) fn target_admin() -> Session {
    let s = server();
    spyglass_db::connect(
        &ConnectOptions::tcp(&s.host, target_port(), &s.user).password(Secret::new("")),
    )
    .expect("connect to the restore target")
}

/// Runs the binary against the source server (or the target, with `on_target`).
fn cli(on_target: bool) -> Sandbox {
    let mut sb = Sandbox::as_root();
    if on_target {
        sb.env("DJ_PORT", &target_port().to_string());
    }
    sb
}

fn tables_of(s: &mut Session, schemas: &[&str]) -> Vec<(String, String)> {
    let list = schemas
        .iter()
        .map(|s| quote::string(s))
        .collect::<Vec<_>>()
        .join(",");
    s.conn()
        .query(format!("SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema IN ({list}) AND table_type = 'BASE TABLE' ORDER BY 1, 2"))
        .unwrap()
}

fn checksum(s: &mut Session, schema: &str, table: &str) -> (u64, Option<u64>) {
    let q = quote::qualified(schema, table);
    let n: u64 = s
        .conn()
        .query_first(format!("SELECT COUNT(*) FROM {q}"))
        .unwrap()
        .unwrap();
    let c: Option<(String, Option<u64>)> =
        s.conn().query_first(format!("CHECKSUM TABLE {q}")).unwrap();
    (n, c.and_then(|c| c.1))
}

/// Every base table, view, trigger and foreign key of `schemas` is the same on both servers.
pub(crate) fn assert_same(src: &mut Session, dst: &mut Session, schemas: &[&str]) {
    let tables = tables_of(src, schemas);
    assert!(tables.len() > 20, "{tables:?}");
    assert_eq!(tables, tables_of(dst, schemas), "same tables");
    for (schema, table) in &tables {
        assert_eq!(
            checksum(src, schema, table),
            checksum(dst, schema, table),
            "`{schema}`.`{table}` rows and CHECKSUM TABLE"
        );
    }
    // Every hard value bit-exact, column by column.
    let hex_row = "SELECT id, HEX(txt), HEX(bin), doc, amount, HEX(at), HEX(flags), kind, CAST(CAST(f AS DOUBLE) AS CHAR), CAST(d AS CHAR), big FROM alice_scratch.hard_values ORDER BY id";
    type R = (
        i32,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<u64>,
    );
    let a: Vec<R> = src.conn().query(hex_row).unwrap();
    let b: Vec<R> = dst.conn().query(hex_row).unwrap();
    assert_eq!(a.len(), 7);
    assert_eq!(a, b, "hard values");
    let list = schemas
        .iter()
        .map(|s| quote::string(s))
        .collect::<Vec<_>>()
        .join(",");
    for sql in [
        format!("SELECT table_schema, table_name, view_definition FROM information_schema.views WHERE table_schema IN ({list}) ORDER BY 1, 2"),
        format!("SELECT trigger_schema, trigger_name, action_statement FROM information_schema.triggers WHERE trigger_schema IN ({list}) ORDER BY 1, 2"),
        format!(
            "SELECT table_schema, CONCAT(table_name, '.', column_name), CONCAT(referenced_table_schema, '.', referenced_table_name) \
             FROM information_schema.key_column_usage WHERE table_schema IN ({list}) AND referenced_table_name IS NOT NULL ORDER BY 1, 2, 3"
        ),
    ] {
        let x: Vec<(String, String, String)> = src.conn().query(&sql).unwrap();
        let y: Vec<(String, String, String)> = dst.conn().query(&sql).unwrap();
        assert!(!x.is_empty(), "{sql}");
        assert_eq!(x, y, "{sql}");
    }
    // The view and the trigger work on the restored server.
    let v: Vec<(String, Option<String>)> = dst
        .conn()
        .query("SELECT nwb_file_name, note FROM bob_analysis.v_sessions ORDER BY 1")
        .unwrap();
    assert_eq!(v.len(), 3);
    let before: i64 = dst
        .conn()
        .query_first("SELECT n_edits FROM bob_analysis.`my table` ORDER BY nwb_file_name LIMIT 1")
        .unwrap()
        .unwrap();
    dst.conn()
        .query_drop("UPDATE bob_analysis.`my table` SET note = 'x' ORDER BY nwb_file_name LIMIT 1")
        .unwrap();
    let after: i64 = dst
        .conn()
        .query_first("SELECT n_edits FROM bob_analysis.`my table` ORDER BY nwb_file_name LIMIT 1")
        .unwrap()
        .unwrap();
    assert_eq!(after, before + 1, "the trigger was restored and fires");
    // Cross-schema foreign keys are enforced after the restore.
    dst.conn()
        .query_drop("SET SESSION foreign_key_checks = 1")
        .unwrap();
    let err = dst.conn().query_drop(
        "INSERT INTO bob_analysis.`my table` (nwb_file_name) VALUES ('no-such-session')",
    );
    assert!(
        err.is_err(),
        "foreign key to common_session.session is enforced"
    );
}

pub(crate) fn drop_schemas(s: &mut Session, schemas: &[&str]) {
    s.conn()
        .query_drop("SET SESSION foreign_key_checks = 0")
        .unwrap();
    for d in schemas {
        s.conn()
            .query_drop(format!("DROP DATABASE IF EXISTS {}", quote::ident(d)))
            .unwrap();
    }
}

fn only_set(dest: &Path) -> PathBuf {
    let sets: Vec<PathBuf> = std::fs::read_dir(dest)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(sets.len(), 1, "{sets:?}");
    sets[0].clone()
}

#[test]
fn fixture_round_trips_into_a_fresh_server_natively_and_with_stock_tools() {
    let _exclusive = long_statements();
    let schemas = spyglass_fixture::SCHEMAS;
    let dest = tempfile::tempdir().unwrap();
    let out = cli(false).run(&[
        "backup",
        "run",
        "--json",
        "--dest",
        dest.path().to_str().unwrap(),
        "--label",
        "itest",
        "--checksum",
        "--threads",
        "2",
        "--chunk-mb",
        "1",
        "--statement-mb",
        "1",
        "--schemas",
        &schemas.join(","),
    ]);
    out.assert_code(0);
    let report = out.json();
    let set = PathBuf::from(report["path"].as_str().unwrap());
    assert_eq!(set, only_set(dest.path()));
    assert!(set
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("itest-"));
    assert_eq!(report["snapshot"]["method"], "flush_tables_with_read_lock");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(set.join("manifest.json")).unwrap()).unwrap();
    let lfp = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "__l_f_p_v1")
        .unwrap();
    assert!(
        lfp["chunks"].as_u64().unwrap() >= 3,
        "the blob table is split into key ranges: {lfp}"
    );
    let mut src = admin();
    for t in manifest["tables"].as_array().unwrap() {
        let (rows, sum) = checksum(
            &mut src,
            t["schema"].as_str().unwrap(),
            t["table"].as_str().unwrap(),
        );
        assert_eq!(t["rows"].as_u64(), Some(rows), "{t}");
        assert_eq!(t["checksum"].as_u64(), sum, "{t}");
    }
    assert!(
        manifest["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("legacy_myisam")),
        "non-InnoDB tables are named"
    );
    cli(false)
        .run(&["backup", "verify", set.to_str().unwrap()])
        .assert_code(0);

    // 1. Our restore into the fresh server, original names.
    let mut dst = target_admin();
    drop_schemas(&mut dst, schemas);
    cli(true)
        .run(&["backup", "restore", set.to_str().unwrap(), "--threads", "2"])
        .assert_code(0);
    assert_same(&mut src, &mut dst, schemas);
    // Again without --force: refused, nothing touched.
    let again = cli(true).run(&["backup", "restore", set.to_str().unwrap()]);
    again.assert_code(2).assert_clean_error();
    assert!(
        again.stderr.contains("already exist") && again.stderr.contains("--force"),
        "{}",
        again.stderr
    );

    // 2. RESTORE.txt, followed literally with the stock client.
    drop_schemas(&mut dst, schemas);
    let text = std::fs::read_to_string(set.join("RESTORE.txt")).unwrap();
    let script = text
        .split("# --- restore script ---")
        .nth(1)
        .and_then(|r| r.split("# --- end ---").next())
        .expect("RESTORE.txt has the marked script");
    let cnf = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        cnf.path(),
        format!(
            "[client]\nhost={}\nport={}\nuser={}\npassword=\n",
            server().host,
            target_port(),
            server().user
        ),
    )
    .unwrap();
    let status = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(&set)
        .env("RESTORE_CNF", cnf.path())
        .env_remove("MYSQL")
        .status()
        .unwrap();
    assert!(status.success(), "RESTORE.txt script failed");
    let mut dst = target_admin();
    assert_same(&mut src, &mut dst, schemas);
    drop_schemas(&mut dst, schemas);
}

fn make_schema(name: &str, ddl: &str, fill: &[&str]) {
    let mut a = admin();
    drop_schemas(&mut a, &[name]);
    support::sql(&mut a, &format!("CREATE DATABASE {}", quote::ident(name)));
    support::sql(
        &mut a,
        &format!("CREATE TABLE {}.t {ddl}", quote::ident(name)),
    );
    for f in fill {
        support::sql(
            &mut a,
            &f.replace("@t", &format!("{}.t", quote::ident(name))),
        );
    }
}

#[test]
fn a_single_200_mb_row_round_trips() {
    let _exclusive = long_statements();
    make_schema(
        "itbk_big",
        "(id int PRIMARY KEY, b longblob)",
        // Every awkward byte: NUL, 0xFF (not UTF-8), backslash, quote.
        &["INSERT INTO @t VALUES (1, REPEAT(UNHEX('00FF5C27'), 50 * 1024 * 1024)), (2, 'small')"],
    );
    let dest = tempfile::tempdir().unwrap();
    let out = cli(false).run(&[
        "backup",
        "run",
        "--dest",
        dest.path().to_str().unwrap(),
        "--schemas",
        "itbk_big",
        "--no-accounts",
    ]);
    out.assert_code(0);
    let set = only_set(dest.path());
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(set.join("manifest.json")).unwrap()).unwrap();
    assert!(
        m["max_statement_bytes"].as_u64().unwrap() > 200 << 20,
        "the manifest records the packet size a restore needs"
    );
    let mut dst = target_admin();
    drop_schemas(&mut dst, &["itbk_big"]);
    cli(true)
        .run(&["backup", "restore", set.to_str().unwrap()])
        .assert_code(0);
    let q = "SELECT id, LENGTH(b), SHA2(b, 256) FROM itbk_big.t ORDER BY id";
    let a: Vec<(i32, u64, String)> = admin().conn().query(q).unwrap();
    let b: Vec<(i32, u64, String)> = dst.conn().query(q).unwrap();
    assert_eq!(a[0].1, 200 << 20);
    assert_eq!(a, b);
    drop_schemas(&mut dst, &["itbk_big"]);
    drop_schemas(&mut admin(), &["itbk_big"]);
}

#[test]
fn a_flipped_byte_is_named_by_verify_and_restore() {
    make_schema(
        "itbk_flip",
        "(id int PRIMARY KEY, v varchar(100))",
        &["INSERT INTO @t VALUES (1, 'one'), (2, 'two')"],
    );
    let dest = tempfile::tempdir().unwrap();
    cli(false)
        .run(&[
            "backup",
            "run",
            "--dest",
            dest.path().to_str().unwrap(),
            "--schemas",
            "itbk_flip",
            "--no-accounts",
        ])
        .assert_code(0);
    let set = only_set(dest.path());
    let data = set.join("2-data/itbk_flip/t.00001.sql.gz");
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&data, bytes).unwrap();
    let v = cli(false).run(&["backup", "verify", set.to_str().unwrap()]);
    v.assert_code(1);
    assert!(
        v.stdout.contains(&format!("BAD  {}", data.display())),
        "{}",
        v.stdout
    );
    assert_eq!(
        v.stdout.matches("BAD").count(),
        1,
        "only the damaged file: {}",
        v.stdout
    );
    let mut dst = target_admin();
    drop_schemas(&mut dst, &["itbk_flip"]);
    let r = cli(true).run(&["backup", "restore", set.to_str().unwrap()]);
    r.assert_code(2).assert_clean_error();
    assert!(
        r.stderr.contains(&data.display().to_string()) && r.stderr.contains("sha256"),
        "{}",
        r.stderr
    );
    assert!(
        schema_names(&mut dst).iter().all(|s| s != "itbk_flip"),
        "every file is checked before anything is created on the target"
    );
    drop_schemas(&mut dst, &["itbk_flip"]);
    drop_schemas(&mut admin(), &["itbk_flip"]);
}

/// A schema big enough (60 MB of random bytes in 1 KB rows) that a dump at
/// gzip -9 with one worker takes a few seconds.
fn slow_schema(name: &str) {
    make_schema(
        name,
        "(id int PRIMARY KEY, b blob)",
        &[
            "CREATE TABLE @t_digits (n int PRIMARY KEY)",
            "INSERT INTO @t_digits WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < 255) SELECT n FROM s",
            "INSERT INTO @t SELECT a.n * 256 + b.n, RANDOM_BYTES(1024) FROM @t_digits a, @t_digits b WHERE a.n < 240",
        ],
    );
}

fn start_slow_dump(sb: &Sandbox, name: &str, dest: &Path, prefix: &str) -> std::process::Child {
    let mut c = sb.command(&[
        "backup",
        "run",
        "--dest",
        dest.to_str().unwrap(),
        "--schemas",
        name,
        "--threads",
        "1",
        "--level",
        "9",
        "--chunk-mb",
        "1",
        "--statement-mb",
        "1",
        "--no-accounts",
    ]);
    if !prefix.is_empty() {
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg(format!("{prefix}; exec \"$0\" \"$@\""))
            .arg(c.get_program())
            .args(c.get_args());
        for (k, v) in c.get_envs() {
            match v {
                Some(v) => sh.env(k, v),
                None => sh.env_remove(k),
            };
        }
        sh.current_dir(sb.cwd());
        c = sh;
    }
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn assert_left_partial(dest: &Path, out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.starts_with("error: ") || stderr.contains("\nerror: "),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty(), "no set path is printed");
    let set = only_set(dest);
    assert!(
        set.to_str().unwrap().ends_with(".partial"),
        "{}",
        set.display()
    );
    assert!(!set.join("manifest.json").exists());
    let list = cli(false).run(&["backup", "list", "--json", dest.to_str().unwrap()]);
    list.assert_code(0);
    assert_eq!(list.json()[0]["status"], "partial", "{}", list.stdout);
    assert_eq!(list.json()[0]["writer_alive"], false);
}

#[test]
fn killed_connection_sigint_and_full_disk_leave_only_a_partial_set() {
    let _exclusive = long_statements();
    slow_schema("itbk_slow");
    // 1. The server drops the dump's connection mid-table.
    let dest = tempfile::tempdir().unwrap();
    let sb = cli(false);
    let child = start_slow_dump(&sb, "itbk_slow", dest.path(), "");
    let mut a = admin();
    let mut killed = false;
    wait_for("the dump's SELECT", || {
        let ids: Vec<u64> = a.conn().query("SELECT id FROM information_schema.processlist WHERE info LIKE 'SELECT `id`,`b` FROM `itbk\\_slow`.`t`%'").unwrap();
        for id in &ids {
            killed |= a.conn().query_drop(format!("KILL {id}")).is_ok();
        }
        killed
    });
    let out = child.wait_with_output().unwrap();
    assert_left_partial(dest.path(), &out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("itbk_slow"),
        "names the table: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 2. SIGINT while it runs.
    let dest = tempfile::tempdir().unwrap();
    let sb = cli(false);
    let child = start_slow_dump(&sb, "itbk_slow", dest.path(), "");
    wait_for("the data file", || {
        std::fs::read_dir(dest.path())
            .unwrap()
            .any(|e| e.unwrap().path().join("2-data/itbk_slow").is_dir())
    });
    Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_left_partial(dest.path(), &out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("interrupted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 3. The disk fills up (a 2 MB file size limit; SIGXFSZ ignored so writes fail with EFBIG).
    let dest = tempfile::tempdir().unwrap();
    let child = start_slow_dump(
        &sb,
        "itbk_slow",
        dest.path(),
        "trap '' XFSZ; ulimit -f 4096",
    );
    let out = child.wait_with_output().unwrap();
    assert_left_partial(dest.path(), &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(dest.path().to_str().unwrap()) && stderr.contains("File too large"),
        "names the file: {stderr}"
    );
    drop_schemas(&mut admin(), &["itbk_slow"]);
}

#[test]
fn bad_input_is_refused_clearly() {
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().to_str().unwrap();
    let sb = cli(false);
    let out = sb.run(&[
        "backup",
        "run",
        "--dest",
        d,
        "--schemas",
        "no_such_schema_*",
    ]);
    out.assert_code(2).assert_clean_error();
    assert!(out.stderr.contains("no schema matches"), "{}", out.stderr);
    sb.run(&["backup", "run", "--dest", d, "--threads", "0"])
        .assert_code(2)
        .assert_clean_error();
    let out = sb.run(&[
        "backup",
        "run",
        "--dest",
        d,
        "--compress",
        "gzip",
        "--level",
        "13",
    ]);
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains("0-12"),
        "names the range: {}",
        out.stderr
    );
    let out = sb.run(&["backup", "run"]);
    out.assert_code(2).assert_clean_error();
    assert!(out.stderr.contains("--dest"), "{}", out.stderr);
    let partial = dest.path().join("x-20260101-000000.partial");
    std::fs::create_dir(&partial).unwrap();
    let out = sb.run(&["backup", "restore", partial.to_str().unwrap()]);
    out.assert_code(2).assert_clean_error();
    assert!(out.stderr.contains("partial"), "{}", out.stderr);
    let out = sb.run(&["backup", "verify", d]);
    out.assert_code(2).assert_clean_error();
    assert!(out.stderr.contains("manifest.json"), "{}", out.stderr);
    let out = sb.run(&[
        "backup",
        "restore",
        partial.to_str().unwrap(),
        "--rename",
        "nonsense",
    ]);
    out.assert_code(2).assert_clean_error();
    let list = sb.run(&["backup", "list", d]);
    list.assert_code(0);
    assert!(
        list.stdout.contains("x-20260101-000000.partial") && list.stdout.contains("partial"),
        "{}",
        list.stdout
    );
}

#[test]
fn mysqldump_engine_writes_the_same_layout_and_restores() {
    let _exclusive = long_statements();
    let schemas = [
        "common_lab",
        "common_nwbfile",
        "common_session",
        "lfp_v1",
        "bob_analysis",
    ];
    let dest = tempfile::tempdir().unwrap();
    let mut sb = cli(false);
    let mut args = vec![
        "backup",
        "run",
        "--json",
        "--engine",
        "mysqldump",
        "--no-accounts",
        "--dest",
        dest.path().to_str().unwrap(),
    ];
    let joined = schemas.join(",");
    args.extend(["--schemas", joined.as_str()]);
    // On MySQL 9 the tests use the chroot's mysqldump (Debian 12's is MariaDB's).
    let program = std::env::var("SPYGLASS_IT_MYSQLDUMP").ok();
    if let Some(p) = &program {
        args.extend(["--dump-program", p.as_str()]);
        sb.env(
            "TMPDIR",
            &std::env::var("SPYGLASS_IT_MYSQLDUMP_TMPDIR").unwrap(),
        );
    }
    let out = sb.run(&args);
    out.assert_code(0);
    let set = PathBuf::from(out.json()["path"].as_str().unwrap());
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(set.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["engine"], "mysqldump");
    assert_eq!(m["snapshot"]["method"], "mysqldump_single_transaction");
    // The password never reached the child's command line: the defaults file is gone, too.
    let tmp = std::env::var("SPYGLASS_IT_MYSQLDUMP_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    assert!(
        !std::fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .any(|e| e.path().join("client.cnf").exists()),
        "the 0600 defaults file was removed"
    );
    let mut src = admin();
    for t in m["tables"].as_array().unwrap() {
        let (rows, _) = checksum(
            &mut src,
            t["schema"].as_str().unwrap(),
            t["table"].as_str().unwrap(),
        );
        assert_eq!(t["rows"].as_u64(), Some(rows), "{t}");
    }
    cli(false)
        .run(&["backup", "verify", set.to_str().unwrap()])
        .assert_code(0);
    let mut dst = target_admin();
    drop_schemas(&mut dst, &schemas);
    cli(true)
        .run(&["backup", "restore", set.to_str().unwrap()])
        .assert_code(0);
    let mut dst = target_admin();
    for (schema, table) in tables_of(&mut src, &schemas) {
        assert_eq!(
            checksum(&mut src, &schema, &table),
            checksum(&mut dst, &schema, &table),
            "`{schema}`.`{table}`"
        );
    }
    drop_schemas(&mut dst, &schemas);
}

#[test]
fn accounts_and_grants_restore_with_with_accounts() {
    support::create_user("itbk_acct", "Acct-Pw-9", &["SELECT ON `itbk_acct_db`.*"]);
    make_schema(
        "itbk_acct_db",
        "(id int PRIMARY KEY)",
        &["INSERT INTO @t VALUES (1), (2)"],
    );
    let dest = tempfile::tempdir().unwrap();
    cli(false)
        .run(&[
            "backup",
            "run",
            "--dest",
            dest.path().to_str().unwrap(),
            "--schemas",
            "itbk_acct_db",
        ])
        .assert_code(0);
    let set = only_set(dest.path());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(set.join("accounts.sql.gz"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(
        mode & 0o077,
        0,
        "password hashes are readable by the owner only"
    );
    let mut dst = target_admin();
    drop_schemas(&mut dst, &["itbk_acct_db"]);
    dst.conn()
        .query_drop("DROP USER IF EXISTS 'itbk_acct'@'%'")
        .unwrap();
    cli(true)
        .run(&[
            "backup",
            "restore",
            set.to_str().unwrap(),
            "--with-accounts",
        ])
        .assert_code(0);
    // Log in to the restored server as the restored account, with its password.
    let s = server();
    let mut user = spyglass_db::connect(
        &ConnectOptions::tcp(&s.host, target_port(), "itbk_acct")
            .password(Secret::new("Acct-Pw-9")),
    )
    .expect("the restored account logs in");
    let n: u64 = user
        .conn()
        .query_first("SELECT COUNT(*) FROM itbk_acct_db.t")
        .unwrap()
        .unwrap();
    assert_eq!(n, 2);
    assert!(
        user.conn()
            .query_drop("INSERT INTO itbk_acct_db.t VALUES (3)")
            .is_err(),
        "only SELECT was granted"
    );
    drop_schemas(&mut dst, &["itbk_acct_db"]);
    drop_schemas(&mut admin(), &["itbk_acct_db"]);
}

#[test]
fn without_reload_the_dump_falls_back_and_says_so() {
    make_schema(
        "itbk_norel",
        "(id int PRIMARY KEY, v varchar(10))",
        &["INSERT INTO @t VALUES (1, 'a')"],
    );
    support::create_user(
        "itbk_noreload",
        "NoReload-Pw-4",
        &["SELECT, SHOW VIEW, TRIGGER, EVENT ON *.*"],
    );
    let dest = tempfile::tempdir().unwrap();
    let mut sb = cli(false);
    sb.env("DJ_USER", "itbk_noreload")
        .env("DJ_PASS", "NoReload-Pw-4");
    let out = sb.run(&[
        "backup",
        "run",
        "--json",
        "--dest",
        dest.path().to_str().unwrap(),
        "--schemas",
        "itbk_norel",
    ]);
    out.assert_code(0);
    let v = out.json();
    assert_eq!(v["snapshot"]["method"], "none", "{v}");
    assert!(
        out.stderr.contains("FLUSH TABLES WITH READ LOCK") && out.stderr.contains("RELOAD"),
        "says so: {}",
        out.stderr
    );
    let set = PathBuf::from(v["path"].as_str().unwrap());
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(set.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["snapshot"]["method"], "none");
    assert!(m["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n.as_str().unwrap().contains("RELOAD")));
    assert_eq!(m["tables"][0]["rows"], 1);
    drop_schemas(&mut admin(), &["itbk_norel"]);
}

fn schema_names(s: &mut Session) -> Vec<String> {
    s.conn()
        .query("SELECT schema_name FROM information_schema.schemata ORDER BY 1")
        .unwrap()
}

/// Backs up `schemas` (comma-separated) from the source server into a new
/// destination; returns it and the set.
fn backup_of(schemas: &str) -> (tempfile::TempDir, PathBuf) {
    let dest = tempfile::tempdir().unwrap();
    let out = cli(false).run(&[
        "backup",
        "run",
        "--dest",
        dest.path().to_str().unwrap(),
        "--schemas",
        schemas,
        "--no-accounts",
        "--threads",
        "2",
    ]);
    out.assert_code(0);
    let set = only_set(dest.path());
    (dest, set)
}

/// No error is printed in Rust's Debug form.
fn assert_sentences(stderr: &str) {
    for debug in ["Os {", "kind: ", "Custom {"] {
        assert!(!stderr.contains(debug), "Debug-formatted error: {stderr}");
    }
}

/// Rows and CHECKSUM TABLE of every table in `schema`.
fn fingerprint(s: &mut Session, schema: &str) -> Vec<(String, (u64, Option<u64>))> {
    tables_of(s, &[schema])
        .into_iter()
        .map(|(sc, t)| {
            let c = checksum(s, &sc, &t);
            (t, c)
        })
        .collect()
}

fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_flipped_byte_restored_with_force_leaves_the_targets_schemas_intact() {
    for (name, n) in [("itbk_keep_a", 900), ("itbk_keep_b", 300)] {
        make_schema(
            name,
            "(id int PRIMARY KEY, v varchar(100))",
            &[&format!("INSERT INTO @t WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n}) SELECT n, CONCAT('row ', n) FROM s")],
        );
    }
    support::sql(
        &mut admin(),
        "CREATE VIEW itbk_keep_b.v AS SELECT id FROM itbk_keep_b.t",
    );
    let (_dest, set) = backup_of("itbk_keep_a,itbk_keep_b");
    // A good copy on the target.
    let mut dst = target_admin();
    drop_schemas(&mut dst, &["itbk_keep_a", "itbk_keep_b"]);
    cli(true)
        .run(&["backup", "restore", set.to_str().unwrap()])
        .assert_code(0);
    let good_a = fingerprint(&mut dst, "itbk_keep_a");
    let good_b = fingerprint(&mut dst, "itbk_keep_b");
    assert_eq!(good_a, fingerprint(&mut admin(), "itbk_keep_a"));
    assert_eq!(good_a[0].1 .0, 900);
    let marker: Vec<String> = dst
        .conn()
        .query("SELECT table_schema FROM information_schema.tables WHERE table_name = '~restore_incomplete' AND table_schema LIKE 'itbk\\_keep\\_%'")
        .unwrap();
    assert!(
        marker.is_empty(),
        "a finished restore leaves no marker: {marker:?}"
    );
    // One flipped byte, in the last file a restore reads (the second schema's
    // post file) and then in a data file: --force must not drop anything.
    for rel in [
        "3-post/itbk_keep_b.sql.gz",
        "2-data/itbk_keep_a/t.00001.sql.gz",
    ] {
        let file = set.join(rel);
        let original = std::fs::read(&file).unwrap();
        flip_a_byte(&file);
        let r = cli(true).run(&["backup", "restore", set.to_str().unwrap(), "--force"]);
        r.assert_code(2).assert_clean_error();
        assert_sentences(&r.stderr);
        assert!(
            r.stderr.contains(&file.display().to_string())
                && r.stderr.contains("sha256")
                && r.stderr.contains("nothing on the target changed"),
            "{}",
            r.stderr
        );
        let mut dst = target_admin();
        assert_eq!(fingerprint(&mut dst, "itbk_keep_a"), good_a, "{rel}");
        assert_eq!(fingerprint(&mut dst, "itbk_keep_b"), good_b, "{rel}");
        let v: u64 = dst
            .conn()
            .query_first("SELECT COUNT(*) FROM itbk_keep_b.v")
            .unwrap()
            .unwrap();
        assert_eq!(v, 300, "the view is still there");
        std::fs::write(&file, original).unwrap();
    }
    // Two bad files: both named.
    let a = set.join("2-data/itbk_keep_a/t.00001.sql.gz");
    let b = set.join("1-schema/itbk_keep_b.sql.gz");
    flip_a_byte(&a);
    std::fs::write(&b, b"short").unwrap();
    let r = cli(true).run(&["backup", "restore", set.to_str().unwrap(), "--force"]);
    r.assert_code(2).assert_clean_error();
    assert!(
        r.stderr.contains(&a.display().to_string()) && r.stderr.contains(&b.display().to_string()),
        "{}",
        r.stderr
    );
    assert_eq!(fingerprint(&mut target_admin(), "itbk_keep_a"), good_a);
    drop_schemas(&mut target_admin(), &["itbk_keep_a", "itbk_keep_b"]);
    drop_schemas(&mut admin(), &["itbk_keep_a", "itbk_keep_b"]);
}

#[test]
fn system_schemas_are_never_restored_into_replaced_or_dropped() {
    make_schema(
        "itbk_sysx",
        "(id int PRIMARY KEY)",
        &["INSERT INTO @t VALUES (1)"],
    );
    let (_dest, set) = backup_of("itbk_sysx");
    let mut dst = target_admin();
    let census = |s: &mut Session| -> Vec<(String, u64)> {
        s.conn()
            .query("SELECT table_schema, COUNT(*) FROM information_schema.tables WHERE table_schema IN ('mysql', 'sys', 'performance_schema') GROUP BY 1 ORDER BY 1")
            .unwrap()
    };
    let before = census(&mut dst);
    assert!(
        before.iter().any(|(s, n)| s == "sys" && *n > 0),
        "the target has a sys schema: {before:?}"
    );
    for target in [
        "sys",
        "mysql",
        "MySQL",
        "information_schema",
        "performance_schema",
    ] {
        let r = cli(true).run(&[
            "backup",
            "restore",
            set.to_str().unwrap(),
            "--rename",
            &format!("itbk_sysx={target}"),
            "--force",
        ]);
        r.assert_code(2).assert_clean_error();
        assert!(
            r.stderr.contains(&format!("`{target}`")) && r.stderr.contains("server's own schemas"),
            "{}",
            r.stderr
        );
        assert!(
            !r.stderr.contains("--force"),
            "never suggests --force for a system schema: {}",
            r.stderr
        );
        // The prefix form, too.
        let r = cli(true).run(&[
            "backup",
            "restore",
            set.to_str().unwrap(),
            "--rename",
            &format!("itbk_sysx*={target}*"),
        ]);
        // `itbk_sysx*` -> `<target>` exactly (the rest is empty).
        r.assert_code(2).assert_clean_error();
        assert!(r.stderr.contains("server's own schemas"), "{}", r.stderr);
    }
    // verify --restore with an empty prefix would restore onto the source's own
    // schema: refused, and the schema is untouched.
    let v = cli(false).run(&[
        "backup",
        "verify",
        set.to_str().unwrap(),
        "--restore",
        "--prefix",
        "",
    ]);
    v.assert_code(2).assert_clean_error();
    assert!(v.stderr.contains("itbk_sysx"), "{}", v.stderr);
    let n: u64 = admin()
        .conn()
        .query_first("SELECT COUNT(*) FROM itbk_sysx.t")
        .unwrap()
        .unwrap();
    assert_eq!(n, 1);
    let mut dst = target_admin();
    assert_eq!(census(&mut dst), before, "system schemas unchanged");
    assert!(!schema_names(&mut dst).contains(&"itbk_sysx".to_owned()));
    drop_schemas(&mut admin(), &["itbk_sysx"]);
}

#[test]
fn a_failed_restore_leaves_its_schemas_marked_unfinished() {
    make_schema(
        "itbk_half_b",
        "(id int PRIMARY KEY)",
        &["INSERT INTO @t VALUES (1), (2)"],
    );
    make_schema(
        "itbk_half_a",
        "(id int PRIMARY KEY, v varchar(10))",
        &["INSERT INTO @t VALUES (1, 'x'), (2, 'y'), (3, 'z')"],
    );
    // A view on the other schema: restoring itbk_half_a alone fails at its post file.
    support::sql(
        &mut admin(),
        "CREATE VIEW itbk_half_a.v AS SELECT a.id FROM itbk_half_a.t a JOIN itbk_half_b.t b USING (id)",
    );
    let (_dest, set) = backup_of("itbk_half_a,itbk_half_b");
    let mut dst = target_admin();
    drop_schemas(&mut dst, &["itbk_half_a", "itbk_half_b"]);
    let r = cli(true).run(&[
        "backup",
        "restore",
        set.to_str().unwrap(),
        "--schemas",
        "itbk_half_a",
    ]);
    r.assert_code(2).assert_clean_error();
    assert!(r.stderr.contains("3-post/itbk_half_a"), "{}", r.stderr);
    // The rows are in, but the schema says it is unfinished.
    let n: u64 = dst
        .conn()
        .query_first("SELECT COUNT(*) FROM itbk_half_a.t")
        .unwrap()
        .unwrap();
    assert_eq!(n, 3);
    let marker: Vec<(String, String)> = dst
        .conn()
        .query("SELECT set_path, started FROM itbk_half_a.`~restore_incomplete`")
        .unwrap();
    assert_eq!(marker.len(), 1, "{marker:?}");
    assert_eq!(marker[0].0, set.display().to_string());
    // doctor names it, with what to do next: a problem (exit 1), in --json too.
    let doc = cli(true).run(&["doctor", "--json"]);
    doc.assert_code(1);
    let v = doc.json();
    let mine: Vec<&serde_json::Value> = v["unfinished_restores"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["schema"].as_str().unwrap().starts_with("itbk_half_"))
        .collect();
    assert_eq!(mine.len(), 1, "{v:#}");
    assert_eq!(mine[0]["schema"], "itbk_half_a");
    assert_eq!(mine[0]["set"], set.display().to_string().as_str());
    assert_eq!(mine[0]["running"], false, "its restore has ended");
    let problem = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["message"].as_str().unwrap().contains("`itbk_half_a`"))
        .unwrap_or_else(|| panic!("no problem names itbk_half_a: {v:#}"));
    assert_eq!(problem["check"], "restore");
    assert!(
        problem["message"]
            .as_str()
            .unwrap()
            .contains("unfinished restore")
            && problem["hint"].as_str().unwrap().contains("--force")
            && problem["hint"]
                .as_str()
                .unwrap()
                .contains("DROP DATABASE `itbk_half_a`"),
        "{problem}"
    );
    let human = cli(true).run(&["doctor"]);
    human.assert_code(1);
    assert!(
        human.stdout.contains("FAIL itbk_half_a unfinished"),
        "{}",
        human.stdout
    );
    // The next restore says so.
    let again = cli(true).run(&["backup", "restore", set.to_str().unwrap()]);
    again.assert_code(2).assert_clean_error();
    assert!(
        again
            .stderr
            .contains("itbk_half_a is an unfinished restore"),
        "{}",
        again.stderr
    );
    // A whole restore with --force replaces it and removes the marker.
    cli(true)
        .run(&["backup", "restore", set.to_str().unwrap(), "--force"])
        .assert_code(0);
    let mut dst = target_admin();
    let left: Vec<String> = dst
        .conn()
        .query("SELECT table_schema FROM information_schema.tables WHERE table_name = '~restore_incomplete' AND table_schema LIKE 'itbk\\_half\\_%'")
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    let doc = cli(true).run(&["doctor", "--json"]).json();
    assert!(
        !doc["unfinished_restores"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["schema"] == "itbk_half_a"),
        "{doc:#}"
    );
    let v: u64 = dst
        .conn()
        .query_first("SELECT COUNT(*) FROM itbk_half_a.v")
        .unwrap()
        .unwrap();
    assert_eq!(v, 2);
    drop_schemas(&mut dst, &["itbk_half_a", "itbk_half_b"]);
    drop_schemas(&mut admin(), &["itbk_half_a", "itbk_half_b"]);
}

#[test]
fn rename_mistakes_are_refused_before_anything_runs() {
    for name in ["itbk_rn_a", "itbk_rn_b"] {
        make_schema(name, "(id int PRIMARY KEY)", &["INSERT INTO @t VALUES (1)"]);
    }
    let (_dest, set) = backup_of("itbk_rn_a,itbk_rn_b");
    let mut dst = target_admin();
    drop_schemas(
        &mut dst,
        &["itbk_rn_a", "itbk_rn_b", "itbk_rn_same", "itbk_rn_x"],
    );
    let s = set.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--rename", "itbk_rn_nope=itbk_rn_x"],
            "itbk_rn_nope=itbk_rn_x matches no schema",
        ),
        (
            &["--rename", "nope_*=itbk_rn_x_*"],
            "nope_*=itbk_rn_x_* matches no schema",
        ),
        // Shadowed by an earlier rule: it renames nothing either.
        (
            &[
                "--rename",
                "itbk_rn_*=itbk_rn_x_*",
                "--rename",
                "itbk_rn_a=itbk_rn_x",
            ],
            "itbk_rn_a=itbk_rn_x matches no schema",
        ),
        (
            &[
                "--rename",
                "itbk_rn_a=itbk_rn_same",
                "--rename",
                "itbk_rn_b=itbk_rn_same",
            ],
            "would both be restored as `itbk_rn_same`",
        ),
        (
            &["--rename", "itbk_rn_a=itbk_rn_b"],
            "would both be restored as `itbk_rn_b`",
        ),
        (
            &["--schemas", "itbk_rn_b", "--rename", "itbk_rn_a=itbk_rn_x"],
            "matches no schema",
        ),
    ];
    for (args, want) in cases {
        let mut a = vec!["backup", "restore", s, "--force"];
        a.extend_from_slice(args);
        let r = cli(true).run(&a);
        r.assert_code(2).assert_clean_error();
        assert!(r.stderr.contains(want), "{args:?}: {}", r.stderr);
    }
    let after = schema_names(&mut target_admin());
    for n in ["itbk_rn_a", "itbk_rn_b", "itbk_rn_same", "itbk_rn_x"] {
        assert!(!after.contains(&n.to_owned()), "{n} was created: {after:?}");
    }
    drop_schemas(&mut admin(), &["itbk_rn_a", "itbk_rn_b"]);
}

fn edit_manifest(set: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = set.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut m);
    std::fs::write(&p, serde_json::to_string_pretty(&m).unwrap()).unwrap();
}

#[test]
fn verify_refuses_unknown_formats_and_reports_empty_and_unlisted_files() {
    make_schema(
        "itbk_fmt",
        "(id int PRIMARY KEY)",
        &["INSERT INTO @t VALUES (1)"],
    );
    let (dest, set) = backup_of("itbk_fmt");
    let s = set.to_str().unwrap();
    let original = std::fs::read(set.join("manifest.json")).unwrap();
    // A newer format: refused by every command, naming it.
    edit_manifest(&set, |m| m["format"] = 99.into());
    for args in [vec!["backup", "verify", s], vec!["backup", "restore", s]] {
        let r = cli(true).run(&args);
        r.assert_code(2).assert_clean_error();
        assert!(r.stderr.contains("format 99"), "{args:?}: {}", r.stderr);
    }
    let l = cli(false).run(&["backup", "list", "--json", dest.path().to_str().unwrap()]);
    l.assert_code(1);
    assert_eq!(l.json()[0]["status"], "corrupt", "{}", l.stdout);
    assert!(l.json()[0]["detail"]
        .as_str()
        .unwrap()
        .contains("format 99"));
    assert!(!schema_names(&mut target_admin()).contains(&"itbk_fmt".to_owned()));
    // No files at all: not good.
    edit_manifest(&set, |m| {
        m["format"] = 1.into();
        m["files"] = serde_json::json!([]);
    });
    let v = cli(false).run(&["backup", "verify", s]);
    v.assert_code(1);
    assert!(v.stdout.contains("lists no files"), "{}", v.stdout);
    // Files the manifest does not list are named; verify's own record is not one.
    std::fs::write(set.join("manifest.json"), &original).unwrap();
    let stray = set.join("2-data/itbk_fmt/t.00002.sql.gz");
    std::fs::write(&stray, b"x").unwrap();
    std::fs::write(set.join("notes.txt"), b"x").unwrap();
    let v = cli(false).run(&["backup", "verify", s]);
    v.assert_code(1);
    assert!(
        v.stdout.contains(&format!(
            "BAD  {}: not listed in the manifest",
            stray.display()
        )) && v.stdout.contains("notes.txt: not listed"),
        "{}",
        v.stdout
    );
    assert_eq!(v.stdout.matches("BAD").count(), 2, "{}", v.stdout);
    std::fs::remove_file(&stray).unwrap();
    std::fs::remove_file(set.join("notes.txt")).unwrap();
    let v = cli(false).run(&["backup", "verify", s]);
    v.assert_code(0);
    assert!(set.join("verify.json").is_file());
    let v = cli(false).run(&["backup", "verify", s]);
    v.assert_code(0);
    assert!(!v.stdout.contains("BAD"), "{}", v.stdout);
    // A packed set is checked the same way, and does not carry the record.
    let p = cli(false).run(&["backup", "pack", s, "--json"]);
    p.assert_code(0);
    let tar = PathBuf::from(p.json()["path"].as_str().unwrap());
    let listing = Command::new("tar").arg("tf").arg(&tar).output().unwrap();
    assert!(!String::from_utf8_lossy(&listing.stdout).contains("verify.json"));
    cli(false)
        .run(&["backup", "verify", tar.to_str().unwrap()])
        .assert_code(0);
    drop_schemas(&mut admin(), &["itbk_fmt"]);
}

#[test]
fn list_says_what_verify_found_and_when() {
    make_schema(
        "itbk_lst",
        "(id int PRIMARY KEY)",
        &["INSERT INTO @t VALUES (1), (2)"],
    );
    let (dest, set) = backup_of("itbk_lst");
    let d = dest.path().to_str().unwrap();
    let l = cli(false).run(&["backup", "list", d]);
    l.assert_code(0);
    assert!(
        l.stdout.contains("complete, not verified") && l.stdout.contains("never verified"),
        "{}",
        l.stdout
    );
    assert!(cli(false).run(&["backup", "list", "--json", d]).json()[0]["verified"].is_null());
    cli(false)
        .run(&["backup", "verify", set.to_str().unwrap()])
        .assert_code(0);
    let l = cli(false).run(&["backup", "list", d]);
    l.assert_code(0);
    assert!(
        l.stdout.contains("complete, verified") && l.stdout.contains("verified 20"),
        "{}",
        l.stdout
    );
    let j = cli(false).run(&["backup", "list", "--json", d]).json();
    assert_eq!(j[0]["verified"]["good"], true);
    assert_eq!(j[0]["status"], "complete");
    // A flipped byte: list reads no data and still says complete by size, but
    // after a verify it says what verify found.
    let data = set.join("2-data/itbk_lst/t.00001.sql.gz");
    flip_a_byte(&data);
    cli(false)
        .run(&["backup", "verify", set.to_str().unwrap()])
        .assert_code(1);
    let l = cli(false).run(&["backup", "list", d]);
    l.assert_code(1);
    assert!(
        l.stdout.contains("complete, verify failed")
            && l.stdout.contains("1 problem(s) at verify")
            && l.stdout.contains(&data.display().to_string()),
        "{}",
        l.stdout
    );
    drop_schemas(&mut admin(), &["itbk_lst"]);
}

#[test]
fn restore_txt_keeps_the_password_file_outside_the_set() {
    make_schema(
        "itbk_cnf",
        "(id int PRIMARY KEY)",
        &["INSERT INTO @t VALUES (1)"],
    );
    let (_dest, set) = backup_of("itbk_cnf");
    let text = std::fs::read_to_string(set.join("RESTORE.txt")).unwrap();
    // Follow the instructions literally: the indented lines that make the file.
    let lines: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("umask"))
        .take(2)
        .map(str::trim)
        .collect();
    assert!(lines.len() == 2 && lines[1].starts_with("printf"), "{text}");
    let before: Vec<String> = walk(&set);
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{}\n{}\necho \"$RESTORE_CNF\"", lines[0], lines[1]))
        .current_dir(&set)
        .output()
        .unwrap();
    assert!(out.status.success());
    let cnf = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(cnf.is_file(), "{}", cnf.display());
    assert!(
        !cnf.starts_with(&set),
        "{} is inside the set",
        cnf.display()
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&cnf).unwrap().permissions());
    assert_eq!(mode & 0o077, 0, "readable by its owner only");
    assert!(std::fs::read_to_string(&cnf)
        .unwrap()
        .contains("password=PASSWORD"));
    std::fs::remove_file(&cnf).unwrap();
    assert_eq!(walk(&set), before, "nothing was written into the set");
    assert!(!text.contains("> restore.cnf"), "{text}");
    drop_schemas(&mut admin(), &["itbk_cnf"]);
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out.sort();
    out
}

#[test]
fn a_destination_that_is_a_file_is_named_in_a_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let f = file.to_str().unwrap();
    for args in [
        vec!["backup", "run", "--dest", f, "--schemas", "common_lab"],
        vec!["backup", "list", f],
    ] {
        let r = cli(false).run(&args);
        r.assert_code(2).assert_clean_error();
        assert_sentences(&r.stderr);
        assert!(
            r.stderr.contains(&format!(
                "the backup destination {f} is a file, not a directory"
            )),
            "{args:?}: {}",
            r.stderr
        );
    }
    let r = cli(false).run(&[
        "backup",
        "run",
        "--dest",
        &format!("{f}/sub"),
        "--schemas",
        "common_lab",
    ]);
    r.assert_code(2).assert_clean_error();
    assert_sentences(&r.stderr);
    assert!(r.stderr.contains(&format!("{f}/sub")), "{}", r.stderr);
}

#[test]
fn verify_restore_always_drops_its_schemas() {
    // A parent and a child in another schema (as every DataJoint pipeline has).
    make_schema(
        "itbk_vp",
        "(id int PRIMARY KEY)",
        &["INSERT INTO @t VALUES (1), (2)"],
    );
    make_schema(
        "itbk_vc",
        "(id int PRIMARY KEY, FOREIGN KEY (id) REFERENCES itbk_vp.t (id))",
        &["INSERT INTO @t VALUES (1)"],
    );
    let (_dest, set) = backup_of("itbk_vp,itbk_vc");
    let verify_left = || -> Vec<String> {
        schema_names(&mut admin())
            .into_iter()
            .filter(|s| s.starts_with("verify_itbk_v"))
            .collect()
    };
    let v = cli(false).run(&["backup", "verify", set.to_str().unwrap(), "--restore"]);
    v.assert_code(0);
    assert!(
        v.stdout.contains("2 tables compared") && v.stdout.contains("good"),
        "{}",
        v.stdout
    );
    assert_eq!(verify_left(), Vec::<String>::new(), "after a good run");
    // A restore that fails half-way: the view's other schema is gone.
    support::sql(&mut admin(), "CREATE DATABASE itbk_vx");
    support::sql(&mut admin(), "CREATE TABLE itbk_vx.t (id int PRIMARY KEY)");
    support::sql(
        &mut admin(),
        "CREATE VIEW itbk_vc.v AS SELECT id FROM itbk_vx.t",
    );
    let (_dest2, set2) = backup_of("itbk_vp,itbk_vc");
    drop_schemas(&mut admin(), &["itbk_vx"]);
    let v = cli(false).run(&["backup", "verify", set2.to_str().unwrap(), "--restore"]);
    v.assert_code(1);
    assert!(v.stdout.contains("restore failed"), "{}", v.stdout);
    assert_eq!(verify_left(), Vec::<String>::new(), "after a failed run");
    // An account that may create but not drop: verify fails loudly, naming what it left.
    support::create_user(
        "itbk_nodrop",
        "NoDrop-Pw-7",
        &["SELECT, CREATE, INSERT, INDEX, ALTER, REFERENCES, CREATE VIEW, SHOW VIEW, TRIGGER ON *.*"],
    );
    let mut sb = cli(false);
    sb.env("DJ_USER", "itbk_nodrop")
        .env("DJ_PASS", "NoDrop-Pw-7");
    let v = sb.run(&["backup", "verify", set.to_str().unwrap(), "--restore"]);
    v.assert_code(2).assert_clean_error();
    assert!(
        v.stderr.contains("could not drop") && v.stderr.contains("`verify_itbk_vp`"),
        "{}",
        v.stderr
    );
    drop_schemas(
        &mut admin(),
        &["verify_itbk_vp", "verify_itbk_vc", "itbk_vc", "itbk_vp"],
    );
}

/// A writer inserting into `itbk_lq.w` until stopped; returns its slowest INSERT.
fn start_writer(
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Duration> {
    std::thread::spawn(move || {
        let mut s = admin();
        let mut worst = Duration::ZERO;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let t = Instant::now();
            s.conn()
                .query_drop("INSERT INTO itbk_lq.w (at) VALUES (NOW(6))")
                .unwrap();
            worst = worst.max(t.elapsed());
            std::thread::sleep(Duration::from_millis(20));
        }
        worst
    })
}

/// An 8-second UPDATE on `itbk_lq.t` in another session; returns its
/// connection id once it has run for a second, and the thread (its result).
fn start_long_update() -> (u64, std::thread::JoinHandle<Result<(), String>>) {
    let mut s = admin();
    let id: u64 = s
        .conn()
        .query_first("SELECT CONNECTION_ID()")
        .unwrap()
        .unwrap();
    let h = std::thread::spawn(move || {
        s.conn()
            .query_drop("UPDATE itbk_lq.t SET n = n + SLEEP(8) WHERE id = 1")
            .map_err(|e| e.to_string())
    });
    let mut a = admin();
    wait_for("the long UPDATE", || {
        a.conn()
            .query_first::<u64, _>(format!(
                "SELECT time FROM information_schema.processlist WHERE id = {id} AND info LIKE 'UPDATE itbk_lq.t%'"
            ))
            .unwrap()
            .is_some_and(|t| t >= 1)
    });
    (id, h)
}

fn run_with_guard(dest: &Path, extra: &[&str]) -> (support::Outcome, Duration) {
    let mut args = vec![
        "backup",
        "run",
        "--json",
        "--dest",
        dest.to_str().unwrap(),
        "--schemas",
        "itbk_lq",
        "--no-accounts",
        "--long-query-guard",
        "2",
    ];
    args.extend_from_slice(extra);
    let t = Instant::now();
    let out = cli(false).run(&args);
    (out, t.elapsed())
}

#[test]
fn long_queries_stop_the_snapshot_instead_of_blocking_writers() {
    let _exclusive = long_statements();
    make_schema(
        "itbk_lq",
        "(id int PRIMARY KEY, n int)",
        &[
            "INSERT INTO @t VALUES (1, 0), (2, 0)",
            "CREATE TABLE itbk_lq.w (id int AUTO_INCREMENT PRIMARY KEY, at datetime(6))",
        ],
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    // 1. By default: wait the guard (2 s), then fail naming the statement; writers never wait.
    let writer = start_writer(stop.clone());
    let (id, long) = start_long_update();
    let dest = tempfile::tempdir().unwrap();
    let (out, took) = run_with_guard(dest.path(), &[]);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let worst = writer.join().unwrap();
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains(&format!("id {id} by "))
            && out.stderr.contains("UPDATE itbk_lq.t SET n = n + SLEEP(8)")
            && out.stderr.contains("running for ")
            && out.stderr.contains("--kill-long-queries"),
        "{}",
        out.stderr
    );
    assert!(
        took < Duration::from_secs(6),
        "gave up at the guard: {took:?}"
    );
    // Without the guard, FTWRL waits out the UPDATE (6 s more) with the writer
    // queued behind it. Another test's backup may hold the writer for one
    // lock attempt (at most 2 s), never more.
    assert!(
        worst < Duration::from_millis(3000),
        "a writer waited {worst:?} behind the backup"
    );
    assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0, "no set");
    assert!(
        long.join().unwrap().is_ok(),
        "the long UPDATE was left alone"
    );

    // 2. --kill-long-queries: killed, then a consistent snapshot.
    stop.store(false, std::sync::atomic::Ordering::SeqCst);
    let writer = start_writer(stop.clone());
    let (id, long) = start_long_update();
    let dest = tempfile::tempdir().unwrap();
    let (out, _) = run_with_guard(dest.path(), &["--kill-long-queries"]);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let worst = writer.join().unwrap();
    out.assert_code(0);
    let v = out.json();
    assert_eq!(
        v["snapshot"]["method"], "flush_tables_with_read_lock",
        "{v}"
    );
    assert!(v["snapshot"]["writers_blocked_ms"].is_u64(), "{v}");
    assert!(
        v["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains(&format!("killed id {id} by "))),
        "{v}"
    );
    assert!(long.join().unwrap().is_err(), "the long UPDATE was killed");
    assert!(
        worst < Duration::from_millis(3000),
        "a writer waited {worst:?}"
    );

    // 3. --allow-inconsistent: a set without the shared snapshot, exit 1, saying why.
    let (_id, long) = start_long_update();
    let dest = tempfile::tempdir().unwrap();
    let (out, _) = run_with_guard(dest.path(), &["--allow-inconsistent"]);
    out.assert_code(1);
    assert_eq!(out.json()["snapshot"]["method"], "none");
    assert!(
        out.stderr
            .contains("warning: no consistent snapshot (--allow-inconsistent)")
            && out.stderr.contains("UPDATE itbk_lq.t"),
        "{}",
        out.stderr
    );
    let _ = long.join().unwrap();
    drop_schemas(&mut admin(), &["itbk_lq"]);
}

/// Replaces a file of a set with `sql` (gzip), and its manifest record, as if written so.
fn rewrite_set_file(set: &Path, rel: &str, sql: &str) {
    let path = set.join(rel);
    let mut gz = Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut gz.stdin.take().unwrap(), sql.as_bytes()).unwrap();
    let out = gz.wait_with_output().unwrap();
    std::fs::write(&path, &out.stdout).unwrap();
    let sum = Command::new("sha256sum").arg(&path).output().unwrap();
    let sum = String::from_utf8(sum.stdout).unwrap();
    let sum = sum.split_whitespace().next().unwrap().to_owned();
    edit_manifest(set, |m| {
        for f in m["files"].as_array_mut().unwrap() {
            if f["path"] == rel {
                f["sha256"] = sum.clone().into();
                f["bytes"] = (out.stdout.len() as u64).into();
                f["raw_bytes"] = (sql.len() as u64).into();
            }
        }
    });
}

fn gunzip(path: &Path) -> String {
    String::from_utf8(
        Command::new("gzip")
            .arg("-dc")
            .arg(path)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
}

#[test]
fn sql_mode_is_recorded_zero_dates_restore_and_warnings_are_findings() {
    make_schema(
        "itbk_mode",
        "(id int PRIMARY KEY, d date, v varchar(20))",
        &[
            "SET SESSION sql_mode = ''",
            "INSERT INTO @t VALUES (0, '0000-00-00', 'zero'), (1, '2026-12-01', 'a long value')",
        ],
    );
    let (_dest, set) = backup_of("itbk_mode");
    let global: String = admin()
        .conn()
        .query_first("SELECT @@GLOBAL.sql_mode")
        .unwrap()
        .unwrap();
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(set.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        m["sql_mode"],
        global.as_str(),
        "the source's sql_mode is recorded"
    );
    // The zero date and the 0 key come back under a strict target, with no warning.
    let mut dst = target_admin();
    drop_schemas(&mut dst, &["itbk_mode"]);
    let r = cli(true).run(&["backup", "restore", set.to_str().unwrap(), "--json"]);
    r.assert_code(0);
    assert_eq!(r.json()["warnings"], serde_json::json!([]), "{}", r.stdout);
    let rows: Vec<(i32, String, String)> = dst
        .conn()
        .query("SELECT id, CAST(d AS CHAR), v FROM itbk_mode.t ORDER BY id")
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (0, "0000-00-00".to_owned(), "zero".to_owned()),
            (1, "2026-12-01".to_owned(), "a long value".to_owned())
        ]
    );
    // A value the target changes (a narrower column) is a warning, named by file: exit 1.
    let schema_rel = "1-schema/itbk_mode.sql.gz";
    let narrowed = gunzip(&set.join(schema_rel)).replace("varchar(20)", "varchar(4)");
    assert!(narrowed.contains("varchar(4)"));
    rewrite_set_file(&set, schema_rel, &narrowed);
    let r = cli(true).run(&["backup", "restore", set.to_str().unwrap(), "--force"]);
    r.assert_code(1);
    let data = set.join("2-data/itbk_mode/t.00001.sql.gz");
    assert!(
        r.stderr
            .contains(&format!("warning: {}: 1 warning(s)", data.display()))
            && r.stderr.contains("1265"),
        "{}",
        r.stderr
    );
    // An older set, without a recorded mode: today's behaviour, and it says so.
    edit_manifest(&set, |m| {
        m.as_object_mut().unwrap().remove("sql_mode");
    });
    let r = cli(true).run(&["backup", "restore", set.to_str().unwrap(), "--force"]);
    assert!(r.stderr.contains("records no sql_mode"), "{}", r.stderr);
    drop_schemas(&mut target_admin(), &["itbk_mode"]);
    drop_schemas(&mut admin(), &["itbk_mode"]);
}

/// Runs RESTORE.txt's marked script with the stock client against the target.
fn restore_with_stock_client(set: &Path) {
    let text = std::fs::read_to_string(set.join("RESTORE.txt")).unwrap();
    let script = text
        .split("# --- restore script ---")
        .nth(1)
        .and_then(|r| r.split("# --- end ---").next())
        .expect("RESTORE.txt has the marked script");
    let cnf = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        cnf.path(),
        format!(
            "[client]\nhost={}\nport={}\nuser={}\npassword=\n",
            server().host,
            target_port(),
            server().user
        ),
    )
    .unwrap();
    let status = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(set)
        .env("RESTORE_CNF", cnf.path())
        .env_remove("MYSQL")
        .status()
        .unwrap();
    assert!(status.success(), "RESTORE.txt script failed");
}

#[test]
fn mariadb_sequences_round_trip_with_their_state() {
    let mut a = admin();
    drop_schemas(&mut a, &["itbk_seq"]);
    support::sql(&mut a, "CREATE DATABASE itbk_seq");
    if server().flavor != "mariadb" {
        // MySQL has no sequences: nothing to dump, and the statement is refused.
        assert!(a
            .conn()
            .query_drop("CREATE SEQUENCE itbk_seq.s START WITH 100")
            .is_err());
        drop_schemas(&mut a, &["itbk_seq"]);
        return;
    }
    support::sql(
        &mut a,
        "CREATE SEQUENCE itbk_seq.s START WITH 100 INCREMENT BY 5 MAXVALUE 100000 NOCACHE",
    );
    support::sql(
        &mut a,
        "CREATE TABLE itbk_seq.t (id int PRIMARY KEY DEFAULT NEXTVAL(itbk_seq.s), v varchar(10))",
    );
    support::sql(
        &mut a,
        "INSERT INTO itbk_seq.t (v) VALUES ('a'), ('b'), ('c')",
    );
    let (_dest, set) = backup_of("itbk_seq");
    let state = "SELECT next_not_cached_value, minimum_value, maximum_value, start_value, increment, cache_size FROM itbk_seq.s";
    type S = (i64, i64, i64, i64, i64, u64);
    let want: S = a.conn().query_first(state).unwrap().unwrap();
    assert_eq!(want.0, 115);
    let check = |how: &str| {
        let mut dst = target_admin();
        let got: Option<S> = dst.conn().query_first(state).unwrap_or(None);
        assert_eq!(got, Some(want), "{how}: the sequence and its state");
        dst.conn()
            .query_drop("INSERT INTO itbk_seq.t (v) VALUES ('d')")
            .unwrap();
        let ids: Vec<i32> = dst
            .conn()
            .query("SELECT id FROM itbk_seq.t ORDER BY id")
            .unwrap();
        assert_eq!(
            ids,
            vec![100, 105, 110, 115],
            "{how}: the next value continues"
        );
        drop_schemas(&mut dst, &["itbk_seq"]);
    };
    drop_schemas(&mut target_admin(), &["itbk_seq"]);
    cli(true)
        .run(&["backup", "restore", set.to_str().unwrap()])
        .assert_code(0);
    check("backup restore");
    restore_with_stock_client(&set);
    check("RESTORE.txt");
    drop_schemas(&mut admin(), &["itbk_seq"]);
}

/// Post objects across schemas (issue 12 items 6 and 8). `itbk_pa` sorts
/// before `itbk_pb`, and its view selects from a view of `itbk_pb` and calls
/// `itbk_pb`'s function; `itbk_pb`'s trigger writes into `itbk_pa`, and a
/// procedure of `itbk_pa` inserts into `itbk_pb`; `itbk_pa.orphan`'s DEFINER
/// is no account anywhere. On MariaDB, two system-versioned tables (implicit
/// and explicit row start/end) hold history rows. MySQL has no system
/// versioning: there the history part is left out (the statement is refused).
fn make_post_objects() -> bool {
    let mut a = admin();
    drop_schemas(&mut a, &["itbk_pa", "itbk_pb"]);
    for sql in [
        "CREATE DATABASE itbk_pa",
        "CREATE DATABASE itbk_pb",
        "CREATE TABLE itbk_pb.t (id int PRIMARY KEY, v varchar(20), amount double)",
        "INSERT INTO itbk_pb.t VALUES (1, 'one', 1.5), (2, 'two', 2.25), (3, 'three', 3.5)",
        "CREATE FUNCTION itbk_pb.twice(x double) RETURNS double DETERMINISTIC RETURN x * 2",
        "CREATE VIEW itbk_pb.vb AS SELECT id, v, amount FROM itbk_pb.t WHERE id < 3",
        "CREATE VIEW itbk_pa.va AS SELECT vb.id, vb.v, itbk_pb.twice(vb.amount) AS doubled FROM itbk_pb.vb vb",
        "CREATE VIEW itbk_pa.vaa AS SELECT id, doubled FROM itbk_pa.va WHERE doubled > 4",
        "CREATE TABLE itbk_pa.log (id int AUTO_INCREMENT PRIMARY KEY, what varchar(40))",
        "CREATE TRIGGER itbk_pb.t_ai AFTER INSERT ON itbk_pb.t FOR EACH ROW INSERT INTO itbk_pa.log (what) VALUES (CONCAT('t ', NEW.id))",
        "CREATE PROCEDURE itbk_pa.add_t(i int) INSERT INTO itbk_pb.t VALUES (i, 'proc', 0)",
        "CREATE DEFINER = 'nobody_itbk'@'%' SQL SECURITY DEFINER VIEW itbk_pa.orphan AS SELECT id FROM itbk_pb.t",
        "CREATE EVENT itbk_pb.prune_log ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM itbk_pa.log WHERE id < 0",
    ] {
        support::sql(&mut a, sql);
    }
    let versioning = server().flavor == "mariadb";
    if !versioning {
        assert!(a
            .conn()
            .query_drop("CREATE TABLE itbk_pa.hist (id int PRIMARY KEY) WITH SYSTEM VERSIONING")
            .is_err());
        return false;
    }
    for sql in [
        "CREATE TABLE itbk_pa.hist (id int PRIMARY KEY, a int) WITH SYSTEM VERSIONING",
        "INSERT INTO itbk_pa.hist VALUES (1, 1), (2, 10)",
        "UPDATE itbk_pa.hist SET a = 2 WHERE id = 1",
        "UPDATE itbk_pa.hist SET a = 3 WHERE id = 1",
        "CREATE TABLE itbk_pa.hist2 (id int PRIMARY KEY, a varchar(5), s timestamp(6) GENERATED ALWAYS AS ROW START, e timestamp(6) GENERATED ALWAYS AS ROW END, PERIOD FOR SYSTEM_TIME (s, e)) WITH SYSTEM VERSIONING",
        "INSERT INTO itbk_pa.hist2 (id, a) VALUES (1, 'x')",
        "UPDATE itbk_pa.hist2 SET a = 'y'",
        "DELETE FROM itbk_pa.hist2",
    ] {
        support::sql(&mut a, sql);
    }
    true
}

/// Everything of [`make_post_objects`] is on the target as on the source, and works.
fn assert_post_objects(src: &mut Session, how: &str, versioning: bool) {
    let mut dst = target_admin();
    let both = "('itbk_pa', 'itbk_pb')";
    for sql in [
        format!("SELECT CONCAT(table_schema, '.', table_name), CONCAT(definer, ' ', security_type), view_definition FROM information_schema.views WHERE table_schema IN {both} ORDER BY 1"),
        format!("SELECT CONCAT(table_schema, '.', table_name, '.', column_name), column_type, CAST(ordinal_position AS CHAR) FROM information_schema.columns WHERE table_schema IN {both} AND table_name IN (SELECT table_name FROM information_schema.views WHERE table_schema IN {both}) ORDER BY 1"),
        format!("SELECT CONCAT(trigger_schema, '.', trigger_name), definer, action_statement FROM information_schema.triggers WHERE trigger_schema IN {both} ORDER BY 1"),
        format!("SELECT CONCAT(routine_schema, '.', routine_name), definer, routine_definition FROM information_schema.routines WHERE routine_schema IN {both} ORDER BY 1"),
        format!("SELECT CONCAT(event_schema, '.', event_name), CONCAT(definer, ' ', status, ' ', interval_value, ' ', interval_field), event_definition FROM information_schema.events WHERE event_schema IN {both} ORDER BY 1"),
    ] {
        let x: Vec<(String, String, String)> = src.conn().query(&sql).unwrap();
        let y: Vec<(String, String, String)> = dst.conn().query(&sql).unwrap();
        assert!(!x.is_empty(), "{sql}");
        assert_eq!(x, y, "{how}: {sql}");
    }
    let views = "SELECT CONCAT(table_schema, '.', table_name) FROM information_schema.views WHERE table_schema IN ('itbk_pa', 'itbk_pb') ORDER BY 1";
    let names: Vec<String> = dst.conn().query(views).unwrap();
    assert_eq!(
        names,
        ["itbk_pa.orphan", "itbk_pa.va", "itbk_pa.vaa", "itbk_pb.vb"],
        "{how}: every view"
    );
    let rows = "SELECT id, v, CAST(doubled AS CHAR) FROM itbk_pa.va ORDER BY id";
    let want: Vec<(i32, String, String)> = src.conn().query(rows).unwrap();
    assert_eq!(want.len(), 2);
    assert_eq!(
        dst.conn().query::<(i32, String, String), _>(rows).unwrap(),
        want,
        "{how}: the view on the other schema's view and function"
    );
    let n: u64 = dst
        .conn()
        .query_first("SELECT COUNT(*) FROM itbk_pa.vaa")
        .unwrap()
        .unwrap();
    assert_eq!(n, 1, "{how}: the view on the view on the view");
    // The orphan view is there with its definer kept, and using it says why it fails.
    let err = dst
        .conn()
        .query_drop("SELECT * FROM itbk_pa.orphan")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("1449") && err.contains("nobody_itbk"),
        "{how}: {err}"
    );
    // The procedure (into the other schema) and the trigger (back into this one) work.
    dst.conn().query_drop("CALL itbk_pa.add_t(7)").unwrap();
    let log: Vec<String> = dst
        .conn()
        .query("SELECT what FROM itbk_pa.log ORDER BY id")
        .unwrap();
    assert_eq!(
        log,
        ["t 7"],
        "{how}: procedure and cross-schema trigger fire"
    );
    if versioning {
        for (table, cols) in [
            ("hist", "id, a, row_start, row_end"),
            ("hist2", "id, a, s, e"),
        ] {
            let sql = format!(
                "SELECT CONCAT_WS(',', {cols}) FROM itbk_pa.{table} FOR SYSTEM_TIME ALL ORDER BY 1"
            );
            let x: Vec<String> = src.conn().query(&sql).unwrap();
            let y: Vec<String> = dst.conn().query(&sql).unwrap();
            assert_eq!(x, y, "{how}: {sql}");
            let want = if table == "hist" { 4 } else { 2 };
            assert_eq!(y.len(), want, "{how}: history rows of {table}: {y:?}");
        }
        let id1: u64 = dst
            .conn()
            .query_first("SELECT COUNT(*) FROM itbk_pa.hist FOR SYSTEM_TIME ALL WHERE id = 1")
            .unwrap()
            .unwrap();
        assert_eq!(id1, 3, "{how}: id 1 with its 2 history rows");
        let current: Vec<(i32, i32)> = dst
            .conn()
            .query("SELECT id, a FROM itbk_pa.hist ORDER BY id")
            .unwrap();
        assert_eq!(current, [(1, 3), (2, 10)], "{how}: current rows");
    }
    drop_schemas(&mut dst, &["itbk_pa", "itbk_pb"]);
}

#[test]
fn cross_schema_post_objects_orphan_definers_and_history_round_trip() {
    let versioning = make_post_objects();
    let mut src = admin();
    let mut dst = target_admin();
    for s in [&mut src, &mut dst] {
        let n: u64 = s
            .conn()
            .query_first("SELECT COUNT(*) FROM mysql.user WHERE user = 'nobody_itbk'")
            .unwrap()
            .unwrap();
        assert_eq!(n, 0, "the orphan view's definer must not exist");
    }
    drop_schemas(&mut dst, &["itbk_pa", "itbk_pb"]);
    let program = std::env::var("SPYGLASS_IT_MYSQLDUMP").ok();
    for engine in ["native", "mysqldump"] {
        let dest = tempfile::tempdir().unwrap();
        let mut sb = cli(false);
        let mut args = vec![
            "backup",
            "run",
            "--dest",
            dest.path().to_str().unwrap(),
            "--schemas",
            "itbk_pa,itbk_pb",
            "--no-accounts",
            "--engine",
            engine,
        ];
        if let (Some(p), "mysqldump") = (&program, engine) {
            args.extend(["--dump-program", p.as_str()]);
            sb.env(
                "TMPDIR",
                &std::env::var("SPYGLASS_IT_MYSQLDUMP_TMPDIR").unwrap(),
            );
        }
        sb.run(&args).assert_code(0);
        let set = only_set(dest.path());
        if versioning {
            let m: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(set.join("manifest.json")).unwrap())
                    .unwrap();
            let hist = m["tables"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["table"] == "hist")
                .unwrap();
            assert_eq!(
                (hist["rows"].as_u64(), hist["history_rows"].as_u64()),
                (Some(2), Some(2)),
                "{engine}: {hist}"
            );
        }
        // Ours: everything loads, and the orphan's definer is a finding (exit 1).
        let r = cli(true).run(&["backup", "restore", set.to_str().unwrap(), "--json"]);
        r.assert_code(1);
        let missing = &r.json()["missing_definers"];
        assert_eq!(
            missing.as_array().map(Vec::len),
            Some(1),
            "{engine}: {missing}"
        );
        assert_eq!(missing[0]["object"], "`itbk_pa`.`orphan`", "{missing}");
        assert_eq!(missing[0]["kind"], "view");
        assert_eq!(missing[0]["definer"], "'nobody_itbk'@'%'");
        assert_post_objects(&mut src, &format!("{engine}, backup restore"), versioning);
        let r = cli(true).run(&["backup", "restore", set.to_str().unwrap()]);
        r.assert_code(1);
        assert!(
            r.stderr.contains(
                "warning: view `itbk_pa`.`orphan`: its definer 'nobody_itbk'@'%' has no account"
            ),
            "{}",
            r.stderr
        );
        drop_schemas(&mut target_admin(), &["itbk_pa", "itbk_pb"]);
        // The stock client, following RESTORE.txt.
        restore_with_stock_client(&set);
        assert_post_objects(&mut src, &format!("{engine}, RESTORE.txt"), versioning);
    }
    drop_schemas(&mut admin(), &["itbk_pa", "itbk_pb"]);
}

/// Found by the clean-clone CI: on MySQL, `information_schema.processlist`
/// fails as a whole (error 3854, "Cannot convert string ... to utf8mb3")
/// while any session runs a statement holding a 4-byte character (an emoji
/// in a DataJoint comment) or binary bytes (a blob insert), so `backup run`
/// refused to start because of a lab's ordinary writers. The guard still
/// sees such a statement, and names it.
#[test]
fn the_long_query_guard_reads_statements_with_4_byte_characters() {
    let _exclusive = long_statements();
    make_schema(
        "itbk_lq4",
        "(id int PRIMARY KEY)",
        &["INSERT INTO @t VALUES (1)"],
    );
    let mut s = admin();
    let id: u64 = s
        .conn()
        .query_first("SELECT CONNECTION_ID()")
        .unwrap()
        .unwrap();
    let long = std::thread::spawn(move || {
        s.conn()
            .query_drop("SELECT SLEEP(6), '\u{1F600} lab notes'")
            .map_err(|e| e.to_string())
    });
    let mut a = admin();
    wait_for("the long SELECT", || {
        a.conn()
            .query_first::<u64, _>(format!(
                "SELECT processlist_time FROM performance_schema.threads WHERE processlist_id = {id} AND processlist_time >= 1"
            ))
            .ok()
            .flatten()
            .is_some()
            || a.conn()
                .query_first::<u64, _>(format!(
                    "SELECT time FROM information_schema.processlist WHERE id = {id} AND time >= 1"
                ))
                .ok()
                .flatten()
                .is_some()
    });
    let dest = tempfile::tempdir().unwrap();
    let out = cli(false).run(&[
        "backup",
        "run",
        "--json",
        "--dest",
        dest.path().to_str().unwrap(),
        "--schemas",
        "itbk_lq4",
        "--no-accounts",
        "--long-query-guard",
        "2",
    ]);
    out.assert_code(2).assert_clean_error();
    assert!(
        !out.stderr.contains("processlist"),
        "the processlist could not be read: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("id {id} by "))
            && out.stderr.contains("SELECT SLEEP(6), '")
            && out.stderr.contains("lab notes"),
        "{}",
        out.stderr
    );
    assert!(long.join().unwrap().is_ok(), "the SELECT was left alone");
    // Once it is over, the backup runs.
    let out = cli(false).run(&[
        "backup",
        "run",
        "--json",
        "--dest",
        dest.path().to_str().unwrap(),
        "--schemas",
        "itbk_lq4",
        "--no-accounts",
    ]);
    out.assert_code(0);
}

/// A restore that is loading blobs right now is running, not unfinished: on
/// MySQL `information_schema.processlist` fails while such a statement runs,
/// and doctor called every busy restore "unfinished" with advice to redo it.
/// The restore's session is played by one that holds the marker and runs a
/// long statement with blob bytes and a 4-byte character.
#[test]
fn doctor_counts_a_restore_loading_blobs_as_running_not_unfinished() {
    let _exclusive = long_statements();
    let mut a = admin();
    drop_schemas(&mut a, &["itbk_busy"]);
    crate::support::sql(&mut a, "CREATE DATABASE itbk_busy");
    let mut s = admin();
    crate::support::sql(&mut s, "CREATE TABLE itbk_busy.`~restore_incomplete` (set_path varchar(4096) NOT NULL, started varchar(32) NOT NULL, connection_id bigint unsigned NULL) ENGINE=InnoDB");
    crate::support::sql(&mut s, "INSERT INTO itbk_busy.`~restore_incomplete` VALUES ('/srv/backup/busy', '2026-12-03T10:00:00Z', CONNECTION_ID())");
    let id: u64 = s
        .conn()
        .query_first("SELECT CONNECTION_ID()")
        .unwrap()
        .unwrap();
    let long = std::thread::spawn(move || {
        s.conn()
            .query_drop("SELECT SLEEP(5), _binary x'00ff80fe1f8b0000c3', '\u{1F9EA} blob rows'")
            .map_err(|e| e.to_string())
    });
    wait_for("the long statement", || {
        a.conn()
            .query_first::<u64, _>(format!(
                "SELECT processlist_time FROM performance_schema.threads WHERE processlist_id = {id} AND processlist_time >= 1"
            ))
            .ok()
            .flatten()
            .is_some()
            || a.conn()
                .query_first::<u64, _>(format!(
                    "SELECT time FROM information_schema.processlist WHERE id = {id} AND time >= 1"
                ))
                .ok()
                .flatten()
                .is_some()
    });
    let mine = |v: &serde_json::Value| -> Vec<serde_json::Value> {
        v["unfinished_restores"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["schema"] == "itbk_busy")
            .cloned()
            .collect()
    };
    let names_it = |v: &serde_json::Value| {
        v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["message"].as_str().unwrap_or("").contains("`itbk_busy`"))
    };
    let busy = cli(false).run(&["doctor", "--json"]).json();
    let m = mine(&busy);
    assert_eq!(m.len(), 1, "{busy:#}");
    assert_eq!(m[0]["running"], true, "the restore is loading: {busy:#}");
    assert!(
        !names_it(&busy),
        "a running restore is no problem: {busy:#}"
    );
    long.join().unwrap().expect("the long statement");
    // Its session gone (the restore killed), the same schema is a problem.
    wait_for("the session to close", || {
        let v = cli(false).run(&["doctor", "--json"]).json();
        mine(&v).first().is_some_and(|u| u["running"] == false) && names_it(&v)
    });
    drop_schemas(&mut a, &["itbk_busy"]);
}
