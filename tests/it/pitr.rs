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

/// The sequence numbers of the closed files a shipped index lists.
fn shipped_files(binlog: &Path) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(
        &std::fs::read(binlog.join("index/index.json")).expect("the shipped index"),
    )
    .expect("JSON");
    v["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["file"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_shipped_archive_restores_to_t_from_a_directory_and_an_ssh_target() {
    let _g = binlog_lock();
    let mut a = admin();
    fresh_schema(&mut a, "pitr_ship");
    sql(
        &mut a,
        "CREATE TABLE pitr_ship.t (id INT PRIMARY KEY, v VARCHAR(40), n DOUBLE)",
    );
    for i in 0..30 {
        sql(
            &mut a,
            &format!("INSERT INTO pitr_ship.t VALUES ({i}, 'before {i}', {i}.25)"),
        );
    }
    let sb = Sandbox::as_root();
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().display().to_string();
    let out = sb.run(&["backup", "run", "--dest", &d, "--schemas", "pitr_ship"]);
    out.assert_code(0);
    let set = PathBuf::from(out.stdout.trim());
    let name = set.file_name().unwrap().to_string_lossy().into_owned();
    // In the window: a closed binlog file, then more in the open one.
    sql(&mut a, "UPDATE pitr_ship.t SET v = 'updated' WHERE id < 10");
    sql(&mut a, "FLUSH BINARY LOGS");
    sql(
        &mut a,
        "CREATE TABLE pitr_ship.declared_later (k INT PRIMARY KEY, s TEXT)",
    );
    for i in 0..15 {
        sql(
            &mut a,
            &format!("INSERT INTO pitr_ship.declared_later VALUES ({i}, 'row {i}')"),
        );
    }
    sql(&mut a, "DELETE FROM pitr_ship.t WHERE id >= 25");
    let t = next_second(200);
    let at_t = checksums(&mut a, "pitr_ship");
    assert_eq!(at_t.len(), 2, "{at_t:?}");
    next_second(100);
    sql(&mut a, "DELETE FROM pitr_ship.t");
    sql(
        &mut a,
        "INSERT INTO pitr_ship.declared_later VALUES (99, 'after T')",
    );
    archive(dest.path(), &["--until-now"]).assert_code(0);
    let until = local_text(t);

    // 1. A directory target: backup ship sends the set and the archive.
    let nas = tempfile::tempdir().unwrap();
    let to = nas.path().join("off").display().to_string();
    let out = sb.run(&["backup", "ship", set.to_str().unwrap(), "--to", &to]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("binlog archive shipped to"),
        "{}",
        out.stdout
    );
    let shipped = nas.path().join("off/binlog");
    let files = shipped_files(&shipped);
    assert!(!files.is_empty(), "the closed file is listed");
    for f in &files {
        // Byte for byte the local archive's closed file.
        assert_eq!(
            std::fs::read(shipped.join(f).join(format!("{f}.gz"))).unwrap(),
            std::fs::read(dest.path().join("binlog").join(format!("{f}.gz"))).unwrap(),
            "{f}"
        );
    }
    // The events after the flush are only in the open file: shipped as a segment.
    let seg: Vec<String> = std::fs::read_dir(shipped.join("open"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(seg.len(), 1, "{seg:?}");
    let segment = gunzip(&shipped.join("open").join(&seg[0]));
    assert!(
        String::from_utf8_lossy(&segment).contains("declared_later"),
        "the segment holds the open file's events"
    );
    // Again: nothing new to send.
    let out = sb.run(&["binlog", "ship", "--dest", &d, "--to", &to, "--json"]);
    out.assert_code(0);
    let v = out.json();
    assert_eq!(v["sent"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(v["already_there"].as_u64().unwrap(), files.len() as u64);

    // 2. An ssh target (the real sshd): the set and the archive.
    let sshd = crate::lifecycle::Sshd::start();
    let ssh = sshd.ssh_args();
    let ssh: Vec<&str> = ssh.iter().map(String::as_str).collect();
    let remote = sshd.target("off");
    let mut args = vec!["backup", "ship", set.to_str().unwrap(), "--to", &remote];
    args.extend(&ssh);
    sb.run(&args).assert_code(0);
    assert_eq!(shipped_files(&sshd.remote().join("off/binlog")), files);

    // The local destination is gone: only the shipped copies are left.
    drop(dest);

    // Restore from the directory target: the archive next to the set there.
    drop_on_target(&["pitr_ship"]);
    let there = nas.path().join("off").join(&name);
    let out = Sandbox::as_root()
        .env("DJ_PORT", &target_port().to_string())
        .run(&[
            "backup",
            "restore",
            there.to_str().unwrap(),
            "--until",
            &until,
        ]);
    out.assert_code(0);
    assert!(
        out.stderr.contains("fetched the binlog archive"),
        "{}",
        out.stderr
    );
    assert_eq!(
        checksums(&mut target_admin(), "pitr_ship"),
        at_t,
        "restored from the directory target, at T"
    );

    // Restore from the ssh target: set and archive fetched, sha256 checked.
    drop_on_target(&["pitr_ship"]);
    let url = format!("{remote}/{name}");
    let mut args = vec!["backup", "restore", url.as_str(), "--until", until.as_str()];
    args.extend(&ssh);
    let out = Sandbox::as_root()
        .env("DJ_PORT", &target_port().to_string())
        .run(&args);
    out.assert_code(0);
    assert!(
        out.stderr.contains("fetched the binlog archive"),
        "{}",
        out.stderr
    );
    assert_eq!(
        checksums(&mut target_admin(), "pitr_ship"),
        at_t,
        "restored from the ssh target, at T"
    );

    // A damaged shipped file is refused before the target changes.
    drop_on_target(&["pitr_ship"]);
    // The set's own file (the last closed one): a replay reads it.
    let needed = files.last().unwrap().clone();
    let f = sshd
        .remote()
        .join("off/binlog")
        .join(&needed)
        .join(format!("{needed}.gz"));
    let mut bytes = std::fs::read(&f).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&f, &bytes).unwrap();
    let out = Sandbox::as_root()
        .env("DJ_PORT", &target_port().to_string())
        .run(&args);
    // The set's fetch line comes first; then one clean error.
    out.assert_code(2);
    assert!(
        out.stderr.contains("\nerror: cannot fetch"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(out.stderr.contains("sha256"), "{}", out.stderr);
    assert!(out.stderr.contains(&needed), "{}", out.stderr);
    assert!(
        tables(&mut target_admin(), "pitr_ship").is_empty(),
        "refused before restoring"
    );
}

#[test]
fn prune_on_a_target_keeps_the_binlogs_the_oldest_kept_set_needs() {
    let _g = binlog_lock();
    let mut a = admin();
    fresh_schema(&mut a, "pitr_prune");
    sql(&mut a, "CREATE TABLE pitr_prune.t (id INT PRIMARY KEY)");
    let sb = Sandbox::as_root();
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().display().to_string();
    let nas = tempfile::tempdir().unwrap();
    let to = nas.path().join("off").display().to_string();
    let mut sets = Vec::new();
    for round in 0..3 {
        sql(
            &mut a,
            &format!("INSERT INTO pitr_prune.t VALUES ({round})"),
        );
        sql(&mut a, "FLUSH BINARY LOGS");
        let out = sb.run(&["backup", "run", "--dest", &d, "--schemas", "pitr_prune"]);
        out.assert_code(0);
        sets.push(PathBuf::from(out.stdout.trim()));
        sql(
            &mut a,
            &format!("INSERT INTO pitr_prune.t VALUES ({})", round + 10),
        );
        sql(&mut a, "FLUSH BINARY LOGS");
        archive(dest.path(), &["--until-now"]).assert_code(0);
        sb.run(&["backup", "ship", sets[round].to_str().unwrap(), "--to", &to])
            .assert_code(0);
        // Set names have a one-second resolution.
        std::thread::sleep(Duration::from_millis(1100));
    }
    let needs = |set: &Path| -> String {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(set.join("manifest.json")).unwrap()).unwrap();
        m["snapshot"]["binlog_file"].as_str().unwrap().to_owned()
    };
    let seq = |n: &str| n.rsplit_once('.').unwrap().1.parse::<u64>().unwrap();
    let keep_from = needs(&sets[1]);
    let shipped = nas.path().join("off/binlog");
    let before = shipped_files(&shipped);
    assert!(
        before.iter().any(|f| seq(f) < seq(&keep_from)),
        "older files were shipped: {before:?} (kept set needs {keep_from})"
    );
    let out = sb.run(&["backup", "prune", &to, "--keep-last", "2"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("binlog archive: removed"),
        "{}",
        out.stdout
    );
    let after = shipped_files(&shipped);
    let expect: Vec<String> = before
        .iter()
        .filter(|f| seq(f) >= seq(&keep_from))
        .cloned()
        .collect();
    assert_eq!(after, expect, "exactly the files from {keep_from} on stay");
    for f in &before {
        let p = shipped.join(f).join(format!("{f}.gz"));
        assert_eq!(p.exists(), seq(f) >= seq(&keep_from), "{}", p.display());
    }
    // The oldest kept set still restores to the end of the shipped archive.
    drop_on_target(&["pitr_prune"]);
    let kept = nas.path().join("off").join(sets[1].file_name().unwrap());
    Sandbox::as_root()
        .env("DJ_PORT", &target_port().to_string())
        .run(&["backup", "restore", kept.to_str().unwrap(), "--latest"])
        .assert_code(0);
    let n: u64 = target_admin()
        .conn()
        .query_first("SELECT COUNT(*) FROM pitr_prune.t")
        .unwrap()
        .unwrap();
    assert_eq!(n, 6, "every insert, replayed from the shipped archive");
    drop_on_target(&["pitr_prune"]);
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Settings for a nightly of `schema` into `dest` (cleanup off), shipping
/// to `offsite`, with `[binlog] max_lag` when given.
fn nightly_settings(
    sb: &Sandbox,
    dest: &Path,
    offsite: &Path,
    schema: &str,
    max_lag: Option<&str>,
) {
    sb.write(
        "spyglass-admin.toml",
        &format!(
            "[backup]\ndestination = \"{}\"\nkeep_last = 5\nship_to = \"{}\"\n\n\
             [nightly]\nthreads = 1\nschemas = [\"{schema}\"]\ncleanup = \"off\"\n\n{}",
            dest.display(),
            offsite.display(),
            max_lag
                .map(|m| format!("[binlog]\nmax_lag = \"{m}\"\n"))
                .unwrap_or_default()
        ),
        0o644,
    );
}

/// Issue 14: `nightly` reports how far the binlog archive is behind the
/// server (in the summary and --json), ships the archive with the set, and
/// needs attention (exit 2) when the lag is above `[binlog] max_lag`.
#[test]
fn nightly_reports_the_archive_lag_and_needs_attention_above_max_lag() {
    let _g = binlog_lock();
    let mut a = admin();
    fresh_schema(&mut a, "pitr_lag");
    sql(
        &mut a,
        "CREATE TABLE pitr_lag.t (id INT PRIMARY KEY, v TEXT)",
    );
    sql(&mut a, "INSERT INTO pitr_lag.t VALUES (1, 'one')");
    let sb = Sandbox::as_root();
    let dest = sb.cwd().join("backups");
    let offsite = sb.cwd().join("offsite");
    std::fs::create_dir_all(&dest).unwrap();
    archive(&dest, &["--until-now"]).assert_code(0);

    // 1. A fresh archive, the default max_lag (1h): ok, the lag reported.
    nightly_settings(&sb, &dest, &offsite, "pitr_lag", None);
    let out = sb.run(&["nightly", "--json"]);
    let v = out.json();
    assert_eq!(out.code, 0, "{v:#}\n{}", out.stderr);
    assert_eq!(v["status"], "ok", "{v:#}");
    let b = &v["binlog"];
    assert_eq!(b["max_lag_seconds"], 3600, "{v:#}");
    assert_eq!(b["attention"], false, "{v:#}");
    assert!(b["error"].is_null(), "{v:#}");
    let lag = &b["lag"];
    assert!(lag["seconds"].as_u64().expect("seconds") < 3600, "{v:#}");
    let last = lag["last_event"].as_i64().expect("last_event");
    assert!(
        (now_unix() - last).abs() < 600,
        "the last archived event is from this test: {v:#}"
    );
    // The server's position is FILE:POS of a binlog the server lists.
    let logs: Vec<(String, u64)> = a
        .conn()
        .query_map("SHOW BINARY LOGS", |r: spyglass_db::mysql::Row| {
            (r.get::<String, _>(0).unwrap(), r.get::<u64, _>(1).unwrap())
        })
        .unwrap();
    let server_file = lag["server"]
        .as_str()
        .expect("server")
        .rsplit_once(':')
        .expect("FILE:POS")
        .0
        .to_owned();
    assert!(
        logs.iter().any(|(f, _)| *f == server_file),
        "{v:#} {logs:?}"
    );
    // The nightly shipped the archive with the set.
    assert!(
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "ship"
                && s["message"].as_str().unwrap().contains("binlog archive:")
                && s["message"].as_str().unwrap().contains("open file up to")),
        "{v:#}"
    );
    assert!(
        offsite.join("binlog/index/index.json").is_file(),
        "the archive's index on the ship target"
    );

    // 2. Changes the archive does not have, older than max_lag: attention.
    nightly_settings(&sb, &dest, &offsite, "pitr_lag", Some("2s"));
    sql(
        &mut a,
        "INSERT INTO pitr_lag.t VALUES (2, REPEAT('x', 5000))",
    );
    std::thread::sleep(Duration::from_secs(4));
    let files = archived(&dest.join("binlog"));
    let (open, bytes) = files.last().expect("an archived file");
    // Set names have whole seconds.
    std::thread::sleep(Duration::from_millis(1100));
    let out = sb.run(&["nightly", "--json"]);
    let v = out.json();
    assert_eq!(out.code, 2, "{v:#}\n{}", out.stderr);
    assert_eq!(v["status"], "attention", "{v:#}");
    let b = &v["binlog"];
    assert_eq!(b["attention"], true, "{v:#}");
    assert_eq!(b["max_lag_seconds"], 2, "{v:#}");
    let lag = &b["lag"];
    assert!(lag["seconds"].as_u64().unwrap() >= 4, "{v:#}");
    assert!(lag["bytes_behind"].as_u64().unwrap() >= 5000, "{v:#}");
    assert_eq!(
        lag["archived"].as_str().unwrap(),
        format!("{open}:{}", bytes.len()),
        "where the archive ends: {v:#}"
    );
    for s in v["steps"].as_array().unwrap() {
        assert!(
            s["status"] == "ok" || (s["name"] == "cleanup" && s["status"] == "skipped"),
            "only the lag needs attention: {v:#}"
        );
    }
    assert!(
        v["attention"].as_array().unwrap().iter().any(|l| l
            .as_str()
            .unwrap()
            .starts_with("binlog: ")
            && l.as_str().unwrap().contains("max_lag")),
        "{v:#}"
    );
    // The summary for people says it too.
    std::thread::sleep(Duration::from_millis(1100));
    let out = sb.run(&["nightly"]);
    out.assert_code(2);
    assert!(
        out.stdout.contains("binlog lag    ATTENTION") && out.stdout.contains("behind the server"),
        "{}",
        out.stdout
    );

    // 3. Archived again: back within max_lag (the archive has caught up
    // with what this test wrote; others may write meanwhile, so only the
    // bound is checked with a generous max_lag).
    archive(&dest, &["--until-now"]).assert_code(0);
    nightly_settings(&sb, &dest, &offsite, "pitr_lag", Some("10m"));
    std::thread::sleep(Duration::from_millis(1100));
    let out = sb.run(&["nightly", "--json"]);
    let v = out.json();
    assert_eq!(out.code, 0, "{v:#}\n{}", out.stderr);
    assert_eq!(v["binlog"]["attention"], false, "{v:#}");
    sql(&mut a, "DROP DATABASE pitr_lag");
}

fn ids(s: &mut Session, table: &str) -> Vec<u64> {
    s.conn()
        .query(format!("SELECT id FROM {table} ORDER BY id"))
        .unwrap()
}

/// Inserts `(i, v)` into pitr_gtid.t in a transaction of its own; returns
/// its GTID (MariaDB's @@last_gtid; on MySQL one given with gtid_next, so
/// other tests' writes do not matter).
fn insert_with_gtid(a: &mut Session, uuid: &str, i: u64, v: &str) -> String {
    let row = format!("INSERT INTO pitr_gtid.t VALUES ({i}, '{v}')");
    if mysql() {
        let g = format!("{uuid}:{}", i + 1);
        sql(a, &format!("SET SESSION gtid_next = '{g}'"));
        sql(a, &row);
        sql(a, "SET SESSION gtid_next = 'AUTOMATIC'");
        g
    } else {
        sql(a, &row);
        a.conn()
            .query_first("SELECT @@last_gtid")
            .unwrap()
            .expect("@@last_gtid")
    }
}

/// `--until-gtid` (both sandboxes log GTIDs: MariaDB always, the MySQL
/// sandbox has gtid_mode=ON): the replay stops right after the transaction
/// with that GTID and says so; a GTID the archive does not have after the
/// set, or one the set already contains, is refused before the target
/// changes.
#[test]
fn restore_until_gtid_stops_right_after_that_transaction() {
    let _g = binlog_lock();
    let mut a = admin();
    if mysql() {
        let mode: String = a.conn().query_first("SELECT @@gtid_mode").unwrap().unwrap();
        assert_eq!(mode, "ON", "the MySQL sandbox runs with GTIDs");
    }
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    let uuid = format!("5a5a5a5a-1414-4000-8000-{:012x}", micros & 0xffff_ffff_ffff);
    fresh_schema(&mut a, "pitr_gtid");
    sql(
        &mut a,
        "CREATE TABLE pitr_gtid.t (id INT PRIMARY KEY, v TEXT)",
    );
    let before_set = insert_with_gtid(&mut a, &uuid, 0, "in the set");
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().display().to_string();
    let out = Sandbox::as_root().run(&["backup", "run", "--dest", &d, "--schemas", "pitr_gtid"]);
    out.assert_code(0);
    let set = out.stdout.trim().to_owned();
    let gtids: Vec<String> = (1..=5)
        .map(|i| insert_with_gtid(&mut a, &uuid, i, &format!("row {i}")))
        .collect();
    archive(dest.path(), &["--until-now"]).assert_code(0);
    drop_on_target(&["pitr_gtid"]);
    let restore = |gtid: &str| {
        Sandbox::as_root()
            .env("DJ_PORT", &target_port().to_string())
            .run(&["backup", "restore", &set, "--until-gtid", gtid])
    };
    // Not a GTID at all.
    let out = restore("mysql-bin.000001:4");
    out.assert_code(2).assert_clean_error();
    assert!(out.stderr.contains("is not a GTID"), "{}", out.stderr);

    // Up to and including the third insert.
    let out = restore(&gtids[2]);
    out.assert_code(0);
    assert_eq!(ids(&mut target_admin(), "pitr_gtid.t"), vec![0, 1, 2, 3]);
    assert!(
        out.stderr.contains(&format!("(GTID {})", gtids[2])),
        "the point reached names the GTID: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("(GTID {})", gtids[3])),
        "and the next one, not replayed: {}",
        out.stderr
    );
    // The last one: everything.
    drop_on_target(&["pitr_gtid"]);
    restore(&gtids[4]).assert_code(0);
    assert_eq!(
        ids(&mut target_admin(), "pitr_gtid.t"),
        vec![0, 1, 2, 3, 4, 5]
    );
    // Not in the archive after the set: refused, nothing restored.
    drop_on_target(&["pitr_gtid"]);
    let absent = match gtids[4].rsplit_once(if mysql() { ':' } else { '-' }) {
        Some((head, _)) => format!("{head}{}999999999", if mysql() { ':' } else { '-' }),
        None => unreachable!("a GTID: {}", gtids[4]),
    };
    let out = restore(&absent);
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains("no transaction with that GTID"),
        "{}",
        out.stderr
    );
    assert!(tables(&mut target_admin(), "pitr_gtid").is_empty());
    // One the set already contains.
    let out = restore(&before_set);
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains("the set already contains it"),
        "{}",
        out.stderr
    );
    assert!(tables(&mut target_admin(), "pitr_gtid").is_empty());
    sql(&mut a, "DROP DATABASE pitr_gtid");
}

/// DataJoint 0.14.10 on either server: `declare` declares two schemas (a
/// cross-schema foreign key, a blob, a uuid) and inserts batch A; `more`
/// inserts batch B and deletes a subject (DataJoint's own cascade);
/// `fetch` only reads (no schema or table is created). Each prints every row.
const DJ_PITR: &str = r#"
import json, sys
import datajoint as dj
dj.config["database.use_tls"] = False
dj.config["safemode"] = False
dj.config["loglevel"] = "WARNING"
mode = sys.argv[1]
make = mode != "fetch"
a = dj.Schema("itpitr_dj_subject", create_schema=make, create_tables=make)
b = dj.Schema("itpitr_dj_session", create_schema=make, create_tables=make)

@a
class Subject(dj.Manual):
    definition = """
    subject_id: int
    ---
    name: varchar(32)
    born: datetime(3)
    """

@b
class Session(dj.Manual):
    definition = """
    -> Subject
    session_id: smallint unsigned
    ---
    data: longblob
    uid: uuid
    """

def everything():
    def norm(rows):
        return [{k: (v.tolist() if hasattr(v, "tolist") else str(v)) for k, v in r.items()} for r in rows]
    return {"subject": norm(Subject.fetch(as_dict=True, order_by="KEY")),
            "session": norm(Session.fetch(as_dict=True, order_by="KEY"))}

import numpy as np, uuid
def batch(ids):
    Subject.insert([(i, "mouse-%d é" % i, "2026-11-0%d 08:00:00.%03d" % (i % 9 + 1, i)) for i in ids])
    Session.insert([(i, s, np.arange(i * 7 + s, dtype=np.float64) / 3, uuid.uuid5(uuid.NAMESPACE_DNS, "%d-%d" % (i, s)))
                    for i in ids for s in (1, 2)])
if mode == "declare":
    batch((1, 2, 3))
elif mode == "more":
    batch((4, 5))
    (Subject & "subject_id = 2").delete()
print(json.dumps(everything(), sort_keys=True))
"#;

fn dj_pitr(mode: &str, port: u16) -> serde_json::Value {
    crate::support::datajoint_script(DJ_PITR, &[mode], port)
}

/// A lab's real sequence: the nightly set has only an older schema; the next
/// morning DataJoint declares two new schemas and inserts batch A; at T
/// nothing happens; then batch B and a cascading delete. The restore of the
/// set to T (new schemas follow a glob) is fetched through DataJoint on the
/// target and gives exactly batch A.
#[test]
fn datajoint_declares_and_inserts_after_the_backup_and_restore_until_t_fetches_batch_a() {
    let _g = binlog_lock();
    let names = ["itpitr_base", "itpitr_dj_subject", "itpitr_dj_session"];
    let mut a = admin();
    for n in names.iter().rev() {
        sql(
            &mut a,
            &format!("DROP DATABASE IF EXISTS {}", quote::ident(n)),
        );
    }
    drop_on_target(&["itpitr_dj_session", "itpitr_dj_subject", "itpitr_base"]);
    fresh_schema(&mut a, "itpitr_base");
    sql(
        &mut a,
        "CREATE TABLE itpitr_base.lab (id INT PRIMARY KEY, name VARCHAR(20))",
    );
    sql(
        &mut a,
        "INSERT INTO itpitr_base.lab VALUES (1, 'frank lab')",
    );
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().display().to_string();
    let out = Sandbox::as_root().run(&["backup", "run", "--dest", &d, "--schemas", "itpitr_base"]);
    out.assert_code(0);
    let set = out.stdout.trim().to_owned();

    let batch_a = dj_pitr("declare", server().port);
    assert_eq!(batch_a["session"].as_array().unwrap().len(), 6, "{batch_a}");
    let t = next_second(200);
    next_second(100);
    let now = dj_pitr("more", server().port);
    assert_eq!(now["subject"].as_array().unwrap().len(), 4, "{now}");
    assert_ne!(now, batch_a);
    archive(dest.path(), &["--until-now"]).assert_code(0);

    let out = Sandbox::as_root()
        .env("DJ_PORT", &target_port().to_string())
        .run(&[
            "backup",
            "restore",
            &set,
            "--schemas",
            "itpitr_base,itpitr_dj_*",
            "--until",
            &local_text(t),
        ]);
    out.assert_code(0);
    let restored = dj_pitr("fetch", target_port());
    assert_eq!(restored, batch_a, "DataJoint on the target fetches batch A");
    let lab: Vec<(i32, String)> = target_admin()
        .conn()
        .query("SELECT id, name FROM itpitr_base.lab")
        .unwrap();
    assert_eq!(lab, vec![(1, "frank lab".to_owned())]);
    drop_on_target(&["itpitr_dj_session", "itpitr_dj_subject", "itpitr_base"]);
    for n in names.iter().rev() {
        sql(
            &mut a,
            &format!("DROP DATABASE IF EXISTS {}", quote::ident(n)),
        );
    }
}

/// One byte of an archived (closed, compressed) binlog file changed on disk:
/// the restore refuses before it creates anything on the target, naming the
/// file; `--latest` needs every file, so every one is checked first.
#[test]
fn a_damaged_archived_binlog_is_refused_before_the_target_changes() {
    let _g = binlog_lock();
    let mut a = admin();
    fresh_schema(&mut a, "itpitr_dmg");
    drop_on_target(&["itpitr_dmg"]);
    sql(
        &mut a,
        "CREATE TABLE itpitr_dmg.t (id INT PRIMARY KEY, v VARCHAR(200))",
    );
    sql(&mut a, "INSERT INTO itpitr_dmg.t VALUES (1, 'in the set')");
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().display().to_string();
    let out = Sandbox::as_root().run(&["backup", "run", "--dest", &d, "--schemas", "itpitr_dmg"]);
    out.assert_code(0);
    let set = out.stdout.trim().to_owned();
    for i in 2..200 {
        sql(
            &mut a,
            &format!("INSERT INTO itpitr_dmg.t VALUES ({i}, REPEAT('after the set ', 10))"),
        );
    }
    sql(&mut a, "FLUSH BINARY LOGS");
    sql(
        &mut a,
        "INSERT INTO itpitr_dmg.t VALUES (1000, 'in the open file')",
    );
    archive(dest.path(), &["--until-now"]).assert_code(0);
    let binlog = dest.path().join("binlog");
    let idx = index(&binlog);
    let last = idx["files"]
        .as_array()
        .and_then(|f| f.last())
        .expect("a closed file in the index")
        .clone();
    let gz = binlog.join(last["archive"].as_str().unwrap());
    let mut bytes = std::fs::read(&gz).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&gz, &bytes).unwrap();

    let out = Sandbox::as_root()
        .env("DJ_PORT", &target_port().to_string())
        .run(&[
            "backup",
            "restore",
            &set,
            "--latest",
            "--schemas",
            "itpitr_dmg",
        ]);
    out.assert_code(2).assert_clean_error();
    let name = last["archive"].as_str().unwrap();
    assert!(
        out.stderr.contains(name) && out.stderr.contains("sha256"),
        "names the damaged file: {}",
        out.stderr
    );
    assert!(
        tables(&mut target_admin(), "itpitr_dmg").is_empty(),
        "nothing was restored before the refusal"
    );
    // The file put back: the same restore goes through, every row.
    bytes[mid] ^= 0x01;
    std::fs::write(&gz, &bytes).unwrap();
    let out = Sandbox::as_root()
        .env("DJ_PORT", &target_port().to_string())
        .run(&[
            "backup",
            "restore",
            &set,
            "--latest",
            "--schemas",
            "itpitr_dmg",
        ]);
    out.assert_code(0);
    let n: Option<u64> = target_admin()
        .conn()
        .query_first("SELECT COUNT(*) FROM itpitr_dmg.t")
        .unwrap();
    assert_eq!(n, Some(200));
    drop_on_target(&["itpitr_dmg"]);
    sql(&mut a, "DROP DATABASE itpitr_dmg");
}

fn restored_ids(table: &str) -> Vec<u64> {
    target_admin()
        .conn()
        .query(format!("SELECT id FROM {table} ORDER BY id"))
        .unwrap()
}

/// MySQL's `binlog_transaction_compression=ON` writes a transaction as one
/// compressed event the replay cannot read: a restore that needs it is
/// refused before the target changes (from the open file, and from the
/// index once the file is closed); a restore to a time before it goes on.
/// MariaDB has no such compression (the variable does not exist there).
#[test]
fn a_compressed_transaction_is_refused_before_the_target_changes() {
    let mut a = admin();
    if !mysql() {
        let e = a
            .conn()
            .query_drop("SET SESSION binlog_transaction_compression = ON")
            .expect_err("MariaDB has no binlog_transaction_compression");
        assert!(
            e.to_string().contains("binlog_transaction_compression"),
            "{e}"
        );
        return;
    }
    let _g = binlog_lock();
    fresh_schema(&mut a, "itpitr_zst");
    drop_on_target(&["itpitr_zst"]);
    sql(
        &mut a,
        "CREATE TABLE itpitr_zst.t (id BIGINT PRIMARY KEY, v TEXT)",
    );
    sql(&mut a, "INSERT INTO itpitr_zst.t VALUES (1, 'in the set')");
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().display().to_string();
    let out = Sandbox::as_root().run(&["backup", "run", "--dest", &d, "--schemas", "itpitr_zst"]);
    out.assert_code(0);
    let set = out.stdout.trim().to_owned();
    sql(
        &mut a,
        "INSERT INTO itpitr_zst.t VALUES (2, 'plain, after the set')",
    );
    let t = next_second(200);
    next_second(100);
    let mut z = admin();
    sql(&mut z, "SET SESSION binlog_transaction_compression = ON");
    sql(
        &mut z,
        "INSERT INTO itpitr_zst.t VALUES (3, REPEAT('compressed ', 500))",
    );
    drop(z);
    archive(dest.path(), &["--until-now"]).assert_code(0);
    let refused = |why: &str| {
        let out = Sandbox::as_root()
            .env("DJ_PORT", &target_port().to_string())
            .run(&[
                "backup",
                "restore",
                &set,
                "--latest",
                "--schemas",
                "itpitr_zst",
            ]);
        out.assert_code(2).assert_clean_error();
        assert!(
            out.stderr.contains("compressed transaction")
                && out.stderr.contains("binlog_transaction_compression"),
            "{why}: {}",
            out.stderr
        );
        assert!(
            tables(&mut target_admin(), "itpitr_zst").is_empty(),
            "{why}: refused before the target changed"
        );
    };
    refused("in the open file");
    sql(&mut a, "FLUSH BINARY LOGS");
    archive(dest.path(), &["--until-now"]).assert_code(0);
    let idx = index(&dest.path().join("binlog"));
    assert!(
        idx["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["first_compressed"]["pos"].as_u64().is_some()),
        "the index records it: {idx:#}"
    );
    refused("in a closed file");
    let out = Sandbox::as_root()
        .env("DJ_PORT", &target_port().to_string())
        .run(&[
            "backup",
            "restore",
            &set,
            "--until",
            &local_text(t),
            "--schemas",
            "itpitr_zst",
        ]);
    out.assert_code(0);
    assert_eq!(restored_ids("itpitr_zst.t"), vec![1, 2]);
    drop_on_target(&["itpitr_zst"]);
    sql(&mut a, "DROP DATABASE itpitr_zst");
}

/// A MySQL source with gtid_mode=OFF (the restore-target sandbox runs so)
/// logs no GTIDs: `--until-gtid` is refused before the target changes, and
/// says what to use instead. MariaDB always logs GTIDs (checked here).
#[test]
fn until_gtid_from_a_server_without_gtids_is_refused_before_the_target_changes() {
    let mut t = target_admin();
    if !mysql() {
        sql(&mut t, "CREATE DATABASE IF NOT EXISTS itpitr_nogtid_probe");
        sql(&mut t, "DROP DATABASE itpitr_nogtid_probe");
        let pos: String = t
            .conn()
            .query_first("SELECT @@gtid_binlog_pos")
            .unwrap()
            .unwrap();
        assert!(!pos.is_empty(), "MariaDB logs a GTID for every transaction");
        return;
    }
    let mode: String = t.conn().query_first("SELECT @@gtid_mode").unwrap().unwrap();
    assert_eq!(
        mode, "OFF",
        "the MySQL restore-target sandbox runs without GTIDs"
    );
    // It restores into the main server: not inside another test's window.
    let _g = binlog_lock();
    // Only this test reads the target's binary log: start it afresh.
    sql(&mut t, "FLUSH BINARY LOGS");
    sql(&mut t, "PURGE BINARY LOGS BEFORE NOW() + INTERVAL 1 DAY");
    sql(&mut t, "DROP DATABASE IF EXISTS itpitr_nogtid");
    sql(&mut t, "CREATE DATABASE itpitr_nogtid");
    sql(&mut t, "CREATE TABLE itpitr_nogtid.t (id INT PRIMARY KEY)");
    sql(&mut t, "INSERT INTO itpitr_nogtid.t VALUES (1)");
    let mut a = admin();
    sql(&mut a, "DROP DATABASE IF EXISTS itpitr_nogtid");
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().display().to_string();
    let on_target = || {
        let mut sb = Sandbox::as_root();
        sb.env("DJ_PORT", &target_port().to_string());
        sb
    };
    let out = on_target().run(&["backup", "run", "--dest", &d, "--schemas", "itpitr_nogtid"]);
    out.assert_code(0);
    let set = out.stdout.trim().to_owned();
    sql(&mut t, "INSERT INTO itpitr_nogtid.t VALUES (2)");
    on_target()
        .run(&["binlog", "archive", "--dest", &d, "--until-now"])
        .assert_code(0);
    // Restored into the main server: refused, nothing created there.
    let out = Sandbox::as_root().run(&[
        "backup",
        "restore",
        &set,
        "--until-gtid",
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:5",
        "--schemas",
        "itpitr_nogtid",
    ]);
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains("gtid_mode is OFF") && out.stderr.contains("--until TIME"),
        "{}",
        out.stderr
    );
    assert!(
        tables(&mut a, "itpitr_nogtid").is_empty(),
        "refused before the main server changed"
    );
    // The same archive without a GTID stop replays.
    let out = Sandbox::as_root().run(&[
        "backup",
        "restore",
        &set,
        "--latest",
        "--schemas",
        "itpitr_nogtid",
    ]);
    out.assert_code(0);
    assert_eq!(ids(&mut a, "itpitr_nogtid.t"), vec![1, 2]);
    sql(&mut a, "DROP DATABASE itpitr_nogtid");
    sql(&mut t, "DROP DATABASE itpitr_nogtid");
}
