//! `spyglass-admin binlog archive` and `backup restore --until`: the archive
//! equals the server's binary log byte for byte and the stock readers read
//! it; a kill loses and repeats nothing; a purged binlog is a gap; a
//! restore to T gives every table the CHECKSUM it had at T.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::{quote, ConnectOptions, Secret, Session};

use crate::support::{admin, server, sql, Sandbox};

/// The tests here flush and purge the source server's binary logs: one at a time.
static BINLOG: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub(crate) fn binlog_lock() -> std::sync::MutexGuard<'static, ()> {
    BINLOG.lock().unwrap_or_else(|e| e.into_inner())
}

fn mysql() -> bool {
    server().flavor == "mysql"
}

/// The source server's data directory (its binlog files).
fn datadir() -> PathBuf {
    PathBuf::from(
        std::env::var("SPYGLASS_IT_DATADIR").expect(
            "SPYGLASS_IT_DATADIR is set by cargo xtask itest (the server's data directory)",
        ),
    )
}

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

fn archive(dest: &Path, extra: &[&str]) -> crate::support::Outcome {
    let d = dest.display().to_string();
    let mut args = vec!["binlog", "archive", "--dest", d.as_str()];
    args.extend_from_slice(extra);
    Sandbox::as_root().run(&args)
}

fn gunzip(p: &Path) -> Vec<u8> {
    let out = Command::new("gzip")
        .arg("-dc")
        .arg(p)
        .output()
        .expect("run gzip -dc");
    assert!(out.status.success(), "gzip -dc {}", p.display());
    out.stdout
}

fn index(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index.json"))
        .expect("index is JSON")
}

/// Every archived file as (name, bytes), oldest first: closed ones from the
/// index (decompressed, sha256 as listed), then the open one.
fn archived(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let idx = index(dir);
    let mut out = Vec::new();
    for f in idx["files"].as_array().expect("files") {
        let name = f["file"].as_str().unwrap().to_owned();
        let bytes = gunzip(&dir.join(f["archive"].as_str().unwrap()));
        assert_eq!(
            bytes.len() as u64,
            f["size"].as_u64().unwrap(),
            "{name} size"
        );
        out.push((name, bytes));
    }
    let mut open: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            n.rsplit_once('.')
                .is_some_and(|(_, x)| x.len() == 6 && x.bytes().all(|c| c.is_ascii_digit()))
        })
        .collect();
    open.sort();
    assert!(open.len() <= 1, "at most one open file: {open:?}");
    for n in open {
        let b = std::fs::read(dir.join(&n)).unwrap();
        out.push((n, b));
    }
    out
}

/// The archive's files equal the server's: closed ones byte for byte, the
/// open one as a prefix (its format description differs only in the
/// "in use" flag and that event's checksum, which the server sets in its
/// open file and clears in what it sends).
fn assert_archive_equals_server(dir: &Path) -> usize {
    let files = archived(dir);
    assert!(!files.is_empty());
    let n = files.len();
    let mut events = 0;
    for (i, (name, bytes)) in files.iter().enumerate() {
        let server = std::fs::read(datadir().join(name))
            .unwrap_or_else(|e| panic!("the server's {name}: {e}"));
        assert_eq!(&bytes[..4], b"\xfebin", "{name} magic");
        let fde = u32::from_le_bytes(bytes[4 + 9..4 + 13].try_into().unwrap()) as usize;
        let fde_end = 4 + fde;
        if i + 1 < n {
            assert_eq!(bytes.len(), server.len(), "{name}: closed file length");
            assert!(
                bytes == &server,
                "{name}: closed file differs from the server's"
            );
        } else {
            assert!(
                bytes.len() <= server.len(),
                "{name}: longer than the server's"
            );
            assert_eq!(bytes[4..21], server[4..21], "{name}: FDE header");
            assert_eq!(
                bytes[23..fde_end - 4],
                server[23..fde_end - 4],
                "{name}: FDE body"
            );
            assert!(
                bytes[fde_end..] == server[fde_end..bytes.len()],
                "{name}: events differ from the server's"
            );
        }
        // Count events by walking their sizes: every byte is in a complete event.
        let mut at = 4;
        while at < bytes.len() {
            let size = u32::from_le_bytes(bytes[at + 9..at + 13].try_into().unwrap()) as usize;
            assert!(
                size >= 19 && at + size <= bytes.len(),
                "{name}: torn event at {at}"
            );
            at += size;
            events += 1;
        }
    }
    events
}

/// The archived files, decoded by the stock reader (`mariadb-binlog` on the
/// host, the MySQL chroot's `mysqlbinlog`), with row values (`-vv`).
fn stock_decode(files: &[(String, Vec<u8>)]) -> String {
    let mut text = String::new();
    if mysql() {
        let root = PathBuf::from(std::env::var("SPYGLASS_IT_MYSQL_CHROOT").expect(
            "SPYGLASS_IT_MYSQL_CHROOT is set by cargo xtask itest (the chroot with mysqlbinlog)",
        ));
        let rel = format!("tmp/pitr-{}", std::process::id());
        let inside = root.join(&rel);
        std::fs::create_dir_all(&inside).unwrap();
        for (name, bytes) in files {
            std::fs::write(inside.join(name), bytes).unwrap();
            let out = Command::new("chroot")
                .arg(&root)
                .args(["/usr/bin/mysqlbinlog", "-vv"])
                .arg(format!("/{rel}/{name}"))
                .output()
                .expect("run the chroot's mysqlbinlog");
            assert!(
                out.status.success(),
                "mysqlbinlog {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            text.push_str(&String::from_utf8_lossy(&out.stdout));
        }
        let _ = std::fs::remove_dir_all(&inside);
    } else {
        let tmp = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            let p = tmp.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            let out = Command::new("mariadb-binlog")
                .arg("-vv")
                .arg(&p)
                .output()
                .expect("run mariadb-binlog (mariadb-client)");
            assert!(
                out.status.success(),
                "mariadb-binlog {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            text.push_str(&String::from_utf8_lossy(&out.stdout));
        }
    }
    text
}

fn fresh_schema(s: &mut Session, name: &str) {
    sql(
        s,
        &format!("DROP DATABASE IF EXISTS {}", quote::ident(name)),
    );
    sql(s, &format!("CREATE DATABASE {}", quote::ident(name)));
}

#[test]
fn archive_equals_the_servers_binlog_and_the_stock_reader_reads_it() {
    let _g = binlog_lock();
    let mut a = admin();
    fresh_schema(&mut a, "pitr_arch");
    sql(
        &mut a,
        "CREATE TABLE pitr_arch.t (id INT PRIMARY KEY, v VARCHAR(40), b BLOB)",
    );
    sql(
        &mut a,
        "INSERT INTO pitr_arch.t VALUES (1, 'first', x'00ff10'), (2, 'zweite ü', NULL)",
    );
    sql(&mut a, "FLUSH BINARY LOGS");
    sql(
        &mut a,
        "UPDATE pitr_arch.t SET v = 'marker-after-flush' WHERE id = 1",
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = archive(tmp.path(), &["--until-now"]);
    out.assert_code(0);
    assert!(out.stderr.contains("archived"), "{}", out.stderr);
    let dir = tmp.path().join("binlog");
    let events = assert_archive_equals_server(&dir);
    assert!(events > 5, "{events}");
    let idx = index(&dir);
    let closed = idx["files"].as_array().unwrap();
    assert!(!closed.is_empty(), "FLUSH BINARY LOGS closed a file: {idx}");
    for f in closed {
        assert_eq!(f["complete"], true);
        assert!(f["first_time"].as_u64().unwrap() <= f["last_time"].as_u64().unwrap());
        assert_eq!(f["sha256"].as_str().unwrap().len(), 64);
        assert!(f["next_file"].is_string(), "{f}");
    }
    // The stock reader decodes the archive, rows and all.
    let text = stock_decode(&archived(&dir));
    assert!(
        text.contains("INSERT INTO `pitr_arch`.`t`"),
        "{}",
        &text[text.len().saturating_sub(3000)..]
    );
    assert!(
        text.contains("marker-after-flush"),
        "the update after the flush is in the open file"
    );
    // A second run with nothing new writes nothing and changes nothing.
    let before = archived(&dir);
    let again = archive(tmp.path(), &["--until-now", "--json"]);
    again.assert_code(0);
    let after = archived(&dir);
    assert_eq!(before.len(), after.len());
    assert!(after
        .last()
        .unwrap()
        .1
        .starts_with(&before.last().unwrap().1));
}

#[test]
fn archive_resumes_after_a_kill_without_losing_or_repeating_an_event() {
    let _g = binlog_lock();
    let mut a = admin();
    fresh_schema(&mut a, "pitr_kill");
    sql(
        &mut a,
        "CREATE TABLE pitr_kill.t (id INT PRIMARY KEY, v VARCHAR(200))",
    );
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display().to_string();
    let sb = Sandbox::as_root();
    let mut child = sb
        .command(&["binlog", "archive", "--dest", &d, "--heartbeat", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the archiver");
    let pad = "x".repeat(150);
    let start = Instant::now();
    let insert = |a: &mut Session, i: i32| {
        sql(a, &format!("INSERT INTO pitr_kill.t VALUES ({i}, '{pad}')"));
        if i == 300 {
            sql(a, "FLUSH BINARY LOGS");
        }
    };
    for i in 0..450 {
        insert(&mut a, i);
    }
    // Mid-stream: the archiver is writing what the inserts log.
    let _ = child.kill();
    let _ = child.wait();
    for i in 450..600 {
        insert(&mut a, i);
    }
    assert!(start.elapsed() < Duration::from_secs(120));
    let out = archive(tmp.path(), &["--until-now"]);
    out.assert_code(0);
    assert_archive_equals_server(&tmp.path().join("binlog"));
    let text = stock_decode(&archived(&tmp.path().join("binlog")));
    // Every insert is archived exactly once.
    let rows = text.matches("INSERT INTO `pitr_kill`.`t`").count();
    assert_eq!(rows, 600, "row events of the 600 inserts");

    // A following archiver stops cleanly on SIGTERM.
    let mut child = sb
        .command(&["binlog", "archive", "--dest", &d, "--heartbeat", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the archiver");
    std::thread::sleep(Duration::from_millis(1500));
    sql(
        &mut a,
        "INSERT INTO pitr_kill.t VALUES (1000, 'while following')",
    );
    std::thread::sleep(Duration::from_millis(1500));
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the archiver did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    let files = archived(&tmp.path().join("binlog"));
    let last = String::from_utf8_lossy(&files.last().unwrap().1).into_owned();
    assert!(
        last.contains("while following"),
        "the followed insert is archived"
    );
    assert_archive_equals_server(&tmp.path().join("binlog"));
}

#[test]
fn a_purged_binlog_is_reported_as_a_gap() {
    let _g = binlog_lock();
    let mut a = admin();
    fresh_schema(&mut a, "pitr_gap");
    sql(&mut a, "CREATE TABLE pitr_gap.t (id INT PRIMARY KEY)");
    let tmp = tempfile::tempdir().unwrap();
    archive(tmp.path(), &["--until-now"]).assert_code(0);
    sql(&mut a, "INSERT INTO pitr_gap.t VALUES (1)");
    sql(&mut a, "FLUSH BINARY LOGS");
    sql(&mut a, "INSERT INTO pitr_gap.t VALUES (2)");
    sql(&mut a, "FLUSH BINARY LOGS");
    // Purge up to the newest file. MariaDB keeps a file until its binlog
    // checkpoint is written, so purge again until the archive's file is gone.
    let archived_file = archived(&tmp.path().join("binlog"))
        .last()
        .unwrap()
        .0
        .clone();
    let seq = |n: &str| n.rsplit_once('.').unwrap().1.parse::<u64>().unwrap();
    let mut first = String::new();
    for _ in 0..50 {
        let rows: Vec<spyglass_db::mysql::Row> = a.conn().query("SHOW BINARY LOGS").unwrap();
        let last: String = rows.last().unwrap().get(0).unwrap();
        sql(&mut a, &format!("PURGE BINARY LOGS TO '{last}'"));
        let rows: Vec<spyglass_db::mysql::Row> = a.conn().query("SHOW BINARY LOGS").unwrap();
        first = rows[0].get(0).unwrap();
        if seq(&first) > seq(&archived_file) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        seq(&first) > seq(&archived_file),
        "the server still has {archived_file}"
    );
    let last = first;
    let out = archive(tmp.path(), &["--until-now"]);
    out.assert_code(1);
    assert!(out.stderr.contains("gap"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&last),
        "names the first file the server still has: {}",
        out.stderr
    );
    let idx = index(&tmp.path().join("binlog"));
    let gaps = idx["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{idx}");
    assert_eq!(gaps[0]["to_file"], last.as_str());
    // The file the gap cut short is closed as incomplete; archiving goes on
    // from the first file the server has (and may close it and more).
    let files = idx["files"].as_array().unwrap();
    let cut = files.iter().find(|f| f["file"] == gaps[0]["from_file"]);
    if let Some(cut) = cut {
        assert_eq!(cut["complete"], false, "{idx}");
        assert_eq!(cut["size"], gaps[0]["from_pos"], "{idx}");
    } else {
        // The archive had stopped right after a rotate: the gap starts at
        // the beginning of the next file.
        assert_eq!(
            files.last().unwrap()["next_file"],
            gaps[0]["from_file"],
            "{idx}"
        );
        assert_eq!(gaps[0]["from_pos"], 4, "{idx}");
    }
    sql(&mut a, "INSERT INTO pitr_gap.t VALUES (3)");
    archive(tmp.path(), &["--until-now"]).assert_code(0);
    assert_eq!(
        index(&tmp.path().join("binlog"))["gaps"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

fn tables(s: &mut Session, schema: &str) -> Vec<String> {
    s.conn()
        .query(format!(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = {} AND table_type = 'BASE TABLE' ORDER BY 1",
            quote::string(schema)
        ))
        .unwrap()
}

/// (table, rows, CHECKSUM TABLE) of every base table of `schema`.
fn checksums(s: &mut Session, schema: &str) -> Vec<(String, u64, Option<u64>)> {
    tables(s, schema)
        .into_iter()
        .map(|t| {
            let q = quote::qualified(schema, &t);
            let n: u64 = s
                .conn()
                .query_first(format!("SELECT COUNT(*) FROM {q}"))
                .unwrap()
                .unwrap();
            let c: Option<(String, Option<u64>)> =
                s.conn().query_first(format!("CHECKSUM TABLE {q}")).unwrap();
            (t, n, c.and_then(|c| c.1))
        })
        .collect()
}

/// Sleeps to the start of the next whole second plus `ms`; returns that second (epoch).
fn next_second(ms: u64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let next = now.as_secs() + 1;
    std::thread::sleep(Duration::from_secs(next) + Duration::from_millis(ms) - now);
    next as i64
}

fn local_text(epoch: i64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_opt(epoch, 0)
        .single()
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn drop_on_target(names: &[&str]) {
    let mut t = target_admin();
    for n in names {
        sql(
            &mut t,
            &format!("DROP DATABASE IF EXISTS {}", quote::ident(n)),
        );
    }
}

#[test]
fn restore_until_t_gives_every_table_the_checksum_it_had_at_t() {
    let _g = binlog_lock();
    let mut a = admin();
    for s in ["pitr_lab", "pitr_other"] {
        fresh_schema(&mut a, s);
    }
    sql(&mut a, "CREATE TABLE pitr_lab.subject (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, weight DECIMAL(8,3), born DATETIME(6), notes JSON, data LONGBLOB, ts TIMESTAMP(6) NULL) ENGINE=InnoDB");
    sql(&mut a, "CREATE TABLE pitr_other.log (id BIGINT AUTO_INCREMENT PRIMARY KEY, msg TEXT, f DOUBLE) ENGINE=InnoDB");
    for i in 0..50 {
        sql(&mut a, &format!("INSERT INTO pitr_lab.subject VALUES ({i}, 'subject {i} é', {i}.125, '2020-01-02 03:04:05.{i:06}', '{{\"k\": {i}}}', REPEAT(x'00ff', {}), NULL)", i * 10));
        sql(
            &mut a,
            &format!("INSERT INTO pitr_other.log (msg, f) VALUES ('before {i}', {i}.5e-3)"),
        );
    }
    // The nightly backup.
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().display().to_string();
    let out = Sandbox::as_root().run(&[
        "backup",
        "run",
        "--dest",
        &d,
        "--schemas",
        "pitr_lab,pitr_other",
    ]);
    out.assert_code(0);
    let set = out.stdout.trim().to_owned();
    // The window: writes, a DataJoint-style table declared, updates, deletes.
    sql(&mut a, "CREATE TABLE `pitr_lab`.`#session` (`id` int NOT NULL, `session` int NOT NULL, `start` datetime(3) NOT NULL, `comment` varchar(255) NOT NULL DEFAULT '' COMMENT 'free text', PRIMARY KEY (`id`,`session`), FOREIGN KEY (`id`) REFERENCES `pitr_lab`.`subject` (`id`) ON UPDATE CASCADE ON DELETE RESTRICT) ENGINE=InnoDB COMMENT='sessions of a subject'");
    for i in 0..20 {
        sql(&mut a, &format!("INSERT INTO `pitr_lab`.`#session` VALUES ({}, {i}, '2026-01-01 10:00:00.{i:03}', 'c{i}')", i % 5));
    }
    sql(&mut a, "UPDATE pitr_lab.subject SET weight = weight * 2, notes = JSON_SET(notes, '$.w', 'two'), ts = '2026-06-01 00:00:00.5' WHERE id < 10");
    sql(&mut a, "DELETE FROM pitr_lab.subject WHERE id >= 45");
    sql(&mut a, "START TRANSACTION");
    sql(
        &mut a,
        "INSERT INTO pitr_other.log (msg, f) VALUES ('in a transaction', -1)",
    );
    sql(
        &mut a,
        "UPDATE pitr_lab.subject SET name = 'renamed in txn' WHERE id = 20",
    );
    sql(&mut a, "COMMIT");
    // T: a whole second nothing committed in.
    let t = next_second(200);
    let at_t_lab = checksums(&mut a, "pitr_lab");
    let at_t_other = checksums(&mut a, "pitr_other");
    assert!(
        at_t_lab
            .iter()
            .any(|(n, rows, _)| n == "#session" && *rows == 20),
        "{at_t_lab:?}"
    );
    next_second(100);
    // After T: the mistake and more.
    sql(&mut a, "DELETE FROM `pitr_lab`.`#session`");
    sql(&mut a, "DELETE FROM pitr_lab.subject WHERE id < 30");
    sql(
        &mut a,
        "INSERT INTO pitr_other.log (msg, f) VALUES ('after T', 0)",
    );
    sql(&mut a, "CREATE TABLE pitr_lab.after_t (id INT PRIMARY KEY)");
    archive(dest.path(), &["--until-now"]).assert_code(0);

    // The whole set to T.
    drop_on_target(&["pitr_lab", "pitr_other", "pitr_lab_back"]);
    let until = local_text(t);
    let out = Sandbox::as_root()
        .env("DJ_PORT", &target_port().to_string())
        .run(&["backup", "restore", &set, "--until", &until]);
    out.assert_code(0);
    assert!(out.stderr.contains("reached mysql-bin."), "{}", out.stderr);
    assert!(
        out.stderr.contains("stopped before the transaction at"),
        "{}",
        out.stderr
    );
    let mut tgt = target_admin();
    assert_eq!(checksums(&mut tgt, "pitr_lab"), at_t_lab, "pitr_lab at T");
    assert_eq!(
        checksums(&mut tgt, "pitr_other"),
        at_t_other,
        "pitr_other at T"
    );
    assert!(!tables(&mut tgt, "pitr_lab").contains(&"after_t".to_owned()));

    // One schema to T under another name, nothing else touched.
    drop_on_target(&["pitr_lab", "pitr_other", "pitr_lab_back"]);
    let out = Sandbox::as_root()
        .env("DJ_PORT", &target_port().to_string())
        .run(&[
            "backup",
            "restore",
            &set,
            "--schemas",
            "pitr_lab",
            "--rename",
            "pitr_lab=pitr_lab_back",
            "--until",
            &until,
        ]);
    out.assert_code(0);
    let mut tgt = target_admin();
    assert_eq!(
        checksums(&mut tgt, "pitr_lab_back"),
        at_t_lab,
        "pitr_lab_back at T"
    );
    assert!(
        tables(&mut tgt, "pitr_lab").is_empty(),
        "the old name is not created"
    );
    assert!(
        tables(&mut tgt, "pitr_other").is_empty(),
        "other schemas are not replayed"
    );
    let fk: Vec<String> = tgt
        .conn()
        .query("SELECT unique_constraint_schema FROM information_schema.referential_constraints WHERE constraint_schema = 'pitr_lab_back'")
        .unwrap();
    assert_eq!(
        fk,
        vec!["pitr_lab_back".to_owned()],
        "the new table's foreign key follows the rename"
    );

    // --latest replays everything; a time after the archive's end is refused first.
    drop_on_target(&["pitr_lab", "pitr_other", "pitr_lab_back"]);
    let out = Sandbox::as_root()
        .env("DJ_PORT", &target_port().to_string())
        .run(&["backup", "restore", &set, "--until", "2999-01-01 00:00:00"]);
    out.assert_code(2).assert_clean_error();
    assert!(out.stderr.contains("archive ends at"), "{}", out.stderr);
    assert!(
        tables(&mut target_admin(), "pitr_lab").is_empty(),
        "refused before restoring"
    );
    let out = Sandbox::as_root()
        .env("DJ_PORT", &target_port().to_string())
        .run(&["backup", "restore", &set, "--latest"]);
    out.assert_code(0);
    let mut tgt = target_admin();
    assert_eq!(
        checksums(&mut tgt, "pitr_lab"),
        checksums(&mut a, "pitr_lab"),
        "pitr_lab now"
    );
    assert_eq!(
        checksums(&mut tgt, "pitr_other"),
        checksums(&mut a, "pitr_other"),
        "pitr_other now"
    );
    drop_on_target(&["pitr_lab", "pitr_other", "pitr_lab_back"]);
}
