//! `spyglass-admin backup`: fixture -> backup -> restore into a fresh server,
//! compared table by table; RESTORE.txt followed literally; faults.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::{quote, ConnectOptions, Secret, Session};

use crate::support::{self, admin, server, Sandbox};

/// The second, empty server `cargo xtask itest` started for restores.
fn target_port() -> u16 {
    std::env::var("SPYGLASS_IT_TARGET_PORT")
        .expect("SPYGLASS_IT_TARGET_PORT is set by cargo xtask itest")
        .parse()
        .expect("port")
}

fn target_admin() -> Session {
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
fn assert_same(src: &mut Session, dst: &mut Session, schemas: &[&str]) {
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

fn drop_schemas(s: &mut Session, schemas: &[&str]) {
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
        .env(
            "MYSQL",
            format!("mysql --defaults-extra-file={}", cnf.path().display()),
        )
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
    let rows: Option<u64> = dst
        .conn()
        .query_first("SELECT COUNT(*) FROM itbk_flip.t")
        .ok()
        .flatten();
    assert_eq!(rows, Some(0), "no row from the corrupt file was loaded");
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
    sb.run(&[
        "backup",
        "run",
        "--dest",
        d,
        "--compress",
        "gzip",
        "--level",
        "12",
    ])
    .assert_code(2)
    .assert_clean_error();
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
