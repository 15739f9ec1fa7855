//! `spyglass-admin recover`: a DataJoint-style cascade delete (child rows,
//! then parent rows, in another schema, one transaction) among other
//! traffic is listed, rebuilt aside exactly, put back in place so the
//! tables equal their pre-delete checksums while later writes survive; a
//! reinserted key stops it with nothing applied; an update is undone with
//! `--include-updates`; and the same through DataJoint 0.14.10 itself.
//!
//! Schemas of this module start with `itrec`.

use std::path::Path;

use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::mysql::{Row, Value};
use spyglass_db::Session;

use crate::support::{admin, server, sql, Outcome, Sandbox};

fn fresh(s: &mut Session, names: &[&str]) {
    for n in names {
        sql(s, &format!("DROP DATABASE IF EXISTS `{n}`"));
    }
}

fn rows(s: &mut Session, query: &str) -> Vec<Vec<Value>> {
    let r: Vec<Row> = s
        .conn()
        .query(query)
        .unwrap_or_else(|e| panic!("{query}: {e}"));
    r.into_iter().map(|r| r.unwrap()).collect()
}

fn checksum(s: &mut Session, table: &str) -> Option<u64> {
    let r: Option<(String, Option<u64>)> = s
        .conn()
        .query_first(format!("CHECKSUM TABLE {table}"))
        .unwrap_or_else(|e| panic!("CHECKSUM TABLE {table}: {e}"));
    r.and_then(|(_, c)| c)
}

fn count(s: &mut Session, table: &str) -> u64 {
    let n: Option<u64> = s
        .conn()
        .query_first(format!("SELECT COUNT(*) FROM {table}"))
        .unwrap_or_else(|e| panic!("COUNT {table}: {e}"));
    n.unwrap_or(0)
}

/// The server's clock, a few seconds ago, as local text for `--since`.
fn since(s: &mut Session) -> String {
    let t: Option<String> = s
        .conn()
        .query_first("SELECT DATE_FORMAT(NOW() - INTERVAL 3 SECOND, '%Y-%m-%d %H:%i:%s')")
        .unwrap();
    t.unwrap()
}

fn archive(dest: &Path) {
    let d = dest.display().to_string();
    let out = Sandbox::as_root().run(&["binlog", "archive", "--dest", &d, "--until-now"]);
    out.assert_code(0);
}

fn recover(dest: &Path, args: &[&str]) -> Outcome {
    let dir = dest.join("binlog").display().to_string();
    let mut v = vec!["recover", "--binlog-dir", dir.as_str()];
    v.extend_from_slice(args);
    Sandbox::as_root().run(&v)
}

/// The listed transaction that deleted from `table` (schema.table).
fn listed<'a>(
    list: &'a serde_json::Value,
    schema: &str,
    table: &str,
    kind: &str,
) -> &'a serde_json::Value {
    list["transactions"]
        .as_array()
        .expect("transactions")
        .iter()
        .find(|t| {
            t["tables"].as_array().unwrap().iter().any(|x| {
                x["schema"] == schema && x["table"] == table && x[kind].as_u64().unwrap_or(0) > 0
            })
        })
        .unwrap_or_else(|| panic!("no transaction with {kind} rows of {schema}.{table} in {list}"))
}

const TYPES: &str = "(
    session_id INT NOT NULL,
    trial SMALLINT UNSIGNED NOT NULL,
    big BIGINT UNSIGNED NOT NULL,
    neg INT NOT NULL,
    amount DECIMAL(12,4) NOT NULL,
    f FLOAT NOT NULL,
    d DOUBLE NOT NULL,
    label VARCHAR(64) CHARACTER SET utf8mb4 NOT NULL,
    code CHAR(4) NOT NULL,
    data LONGBLOB,
    at DATETIME(6) NOT NULL,
    ts TIMESTAMP(3) NULL DEFAULT NULL,
    day DATE,
    dur TIME(2),
    kind ENUM('go','nogo','catch') NOT NULL,
    doc JSON,
    uid BINARY(16) NOT NULL,
    PRIMARY KEY (session_id, trial),
    CONSTRAINT `itrec_trial_fk` FOREIGN KEY (session_id) REFERENCES `itrec_a`.`session` (session_id) ON UPDATE CASCADE ON DELETE RESTRICT
) ENGINE=InnoDB";

fn trial_row(session: i32, trial: i32) -> String {
    format!(
        "({session}, {trial}, {big}, -{trial}7, {session}{trial}.5-0.0001, {trial}.25, 1e300/{trial}, 'séance {session}/{trial} ✓', 'c{trial}', \
         UNHEX(REPEAT('00FF{trial:02}', {len})), '2026-11-30 12:34:56.{trial:06}', '2026-11-30 01:02:03.{trial:03}', '2026-01-{day:02}', \
         '-{trial}:05:06.07', '{kind}', '{{\"trial\": {trial}, \"ok\": true, \"xs\": [1.5, null, \"a\"]}}', LEFT(UNHEX(SHA2('{session}-{trial}', 256)), 16))",
        big = 18_446_744_073_709_551_000u64 + trial as u64,
        len = 100 * trial,
        day = trial % 28 + 1,
        kind = ["go", "nogo", "catch"][trial as usize % 3],
    )
}

#[test]
fn a_cascade_delete_is_listed_rebuilt_aside_and_put_back_in_place() {
    let _g = crate::pitr::binlog_lock();
    let mut s = admin();
    fresh(
        &mut s,
        &[
            "itrec_b",
            "itrec_a",
            "itrec_saved",
            "undo_itrec_a",
            "undo_itrec_b",
            "common_usage",
        ],
    );
    sql(&mut s, "CREATE DATABASE itrec_a");
    sql(&mut s, "CREATE DATABASE itrec_b");
    sql(&mut s, "CREATE DATABASE itrec_saved");
    sql(&mut s, "CREATE DATABASE common_usage");
    sql(
        &mut s,
        "CREATE TABLE common_usage.cautious_delete (id INT AUTO_INCREMENT PRIMARY KEY, dj_user VARCHAR(64), duration FLOAT, origin VARCHAR(64), restriction VARCHAR(255), merge_deletes BLOB)",
    );
    sql(
        &mut s,
        "CREATE TABLE itrec_a.session (session_id INT NOT NULL PRIMARY KEY, subject VARCHAR(32) NOT NULL, started DATETIME(3) NOT NULL) ENGINE=InnoDB",
    );
    sql(&mut s, "CREATE TABLE itrec_a.other (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(32)) ENGINE=InnoDB");
    sql(&mut s, &format!("CREATE TABLE itrec_b.`#trial` {TYPES}"));
    sql(
        &mut s,
        "INSERT INTO itrec_a.session VALUES (1, 'mouse-a', '2026-11-30 09:00:00.125'), (2, 'mouse-b', '2026-11-30 10:00:00.000'), (3, 'mouse-c', '2026-11-30 11:00:00.999')",
    );
    let trials: Vec<String> = [
        (1, 1),
        (1, 2),
        (1, 3),
        (2, 1),
        (2, 2),
        (2, 3),
        (3, 1),
        (3, 2),
    ]
    .iter()
    .map(|(a, b)| trial_row(*a, *b))
    .collect();
    sql(
        &mut s,
        &format!("INSERT INTO itrec_b.`#trial` VALUES {}", trials.join(", ")),
    );
    // One NULL-heavy row too.
    sql(
        &mut s,
        "INSERT INTO itrec_b.`#trial` (session_id, trial, big, neg, amount, f, d, label, code, at, kind, uid) VALUES (2, 9, 0, 0, 0, 0, 0, '', '', '2026-11-30 00:00:00', 'go', LEFT(UNHEX(SHA2('x', 256)), 16))",
    );
    let since = since(&mut s);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // The rows the delete will take, saved aside for the comparison.
    sql(
        &mut s,
        "CREATE TABLE itrec_saved.session LIKE itrec_a.session",
    );
    sql(
        &mut s,
        "INSERT INTO itrec_saved.session SELECT * FROM itrec_a.session WHERE session_id IN (1, 2)",
    );
    sql(
        &mut s,
        "CREATE TABLE itrec_saved.`#trial` LIKE itrec_b.`#trial`",
    );
    sql(&mut s, "INSERT INTO itrec_saved.`#trial` SELECT * FROM itrec_b.`#trial` WHERE session_id IN (1, 2)");
    let before_session = checksum(&mut s, "itrec_a.session");
    let before_trial = checksum(&mut s, "itrec_b.`#trial`");
    // Other traffic before the delete.
    sql(&mut s, "INSERT INTO itrec_a.other (v) VALUES ('before')");
    // The DataJoint-style cascade: children first, then parents, one transaction.
    sql(&mut s, "BEGIN");
    sql(
        &mut s,
        "DELETE FROM itrec_b.`#trial` WHERE session_id IN (1, 2)",
    );
    sql(
        &mut s,
        "DELETE FROM itrec_a.session WHERE session_id IN (1, 2)",
    );
    sql(&mut s, "COMMIT");
    sql(
        &mut s,
        "INSERT INTO common_usage.cautious_delete (dj_user, duration, origin, restriction) VALUES ('itrec_user', 0.5, '`itrec_a`.`session`', 'session_id in (1,2)')",
    );
    // Later, unrelated writes that must survive the in-place recovery.
    sql(
        &mut s,
        "INSERT INTO itrec_a.other (v) VALUES ('after-1'), ('after-2')",
    );
    sql(
        &mut s,
        "UPDATE itrec_a.other SET v = 'before-edited' WHERE v = 'before'",
    );
    assert_eq!(count(&mut s, "itrec_b.`#trial`"), 2);

    let dest = tempfile::tempdir().unwrap();
    archive(dest.path());

    // --list names it: rows per table, the statement, Spyglass's record.
    let out = recover(
        dest.path(),
        &[
            "--list",
            "--since",
            &since,
            "--schemas",
            "itrec_*",
            "--json",
        ],
    );
    out.assert_code(0);
    let list = out.json();
    let t = listed(&list, "itrec_a", "session", "deleted");
    let tables = t["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 2, "{t}");
    assert_eq!(tables[0]["schema"], "itrec_b", "children first: {t}");
    assert_eq!(tables[0]["deleted"], 7, "{t}");
    assert_eq!(tables[1]["deleted"], 2, "{t}");
    let stmts = t["statements"].to_string();
    assert!(stmts.contains("DELETE FROM itrec_b.`#trial`"), "{t}");
    assert!(stmts.contains("DELETE FROM itrec_a.session"), "{t}");
    let cd = t["cautious_delete"].to_string();
    assert!(
        cd.contains("session_id in (1,2)") && cd.contains("itrec_user"),
        "{t}"
    );
    assert!(t["commit"].is_string() && t["id"].is_string(), "{t}");
    let id = t["id"].as_str().unwrap().to_owned();
    // Human output too.
    let human = recover(
        dest.path(),
        &["--list", "--since", &since, "--schemas", "itrec_*"],
    );
    human.assert_code(0);
    assert!(human.stdout.contains(&id), "{}", human.stdout);
    assert!(
        human.stdout.contains("`itrec_b`.`#trial`: 7 deleted"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("cautious_delete: "),
        "{}",
        human.stdout
    );
    // A schema filter that matches nothing lists nothing of ours.
    let none = recover(
        dest.path(),
        &[
            "--list",
            "--since",
            &since,
            "--schemas",
            "nomatch_*",
            "--json",
        ],
    );
    none.assert_code(0);
    assert_eq!(none.json()["transactions"].as_array().unwrap().len(), 0);

    // --into rebuilds exactly the deleted rows.
    let into = recover(dest.path(), &[&id, "--into", "undo_"]);
    into.assert_code(0);
    for (side, saved, order) in [
        ("undo_itrec_a.session", "itrec_saved.session", "session_id"),
        (
            "undo_itrec_b.`#trial`",
            "itrec_saved.`#trial`",
            "session_id, trial",
        ),
    ] {
        let a = rows(&mut s, &format!("SELECT * FROM {side} ORDER BY {order}"));
        let b = rows(&mut s, &format!("SELECT * FROM {saved} ORDER BY {order}"));
        assert!(!a.is_empty());
        assert_eq!(a, b, "{side} equals the rows saved before the delete");
        assert_eq!(checksum(&mut s, side), checksum(&mut s, saved), "{side}");
    }
    // A non-empty target is refused.
    let again = recover(dest.path(), &[&id, "--into", "undo_"]);
    again.assert_code(2).assert_clean_error();
    assert!(again.stderr.contains("not empty"), "{}", again.stderr);
    // System schemas are refused as targets... and unknown ids clearly.
    let bad = recover(dest.path(), &["nosuch-bin.000001:4", "--into", "x_"]);
    bad.assert_code(2).assert_clean_error();
    assert!(bad.stderr.contains("nosuch-bin.000001:4"), "{}", bad.stderr);

    // A key reinserted meanwhile stops --in-place with nothing applied.
    sql(
        &mut s,
        "INSERT INTO itrec_a.session VALUES (2, 'someone-else', '2026-12-01 00:00:00')",
    );
    let conflict = recover(dest.path(), &[&id, "--in-place"]);
    conflict.assert_code(2).assert_clean_error();
    assert!(
        conflict.stderr.contains("`itrec_a`.`session`") && conflict.stderr.contains("session_id=2"),
        "{}",
        conflict.stderr
    );
    assert_eq!(count(&mut s, "itrec_b.`#trial`"), 2, "nothing applied");
    assert_eq!(count(&mut s, "itrec_a.session"), 2, "nothing applied");
    sql(&mut s, "DELETE FROM itrec_a.session WHERE session_id = 2");

    // Dry run: counts, nothing written.
    let dry = recover(dest.path(), &[&id, "--in-place", "--dry-run", "--json"]);
    dry.assert_code(0);
    let p = dry.json();
    assert_eq!(p["applied"], false);
    assert_eq!(p["tables"][0]["table"], "session", "parents first: {p}");
    assert_eq!(p["tables"][0]["deleted"], 2);
    assert_eq!(p["tables"][1]["deleted"], 7);
    assert_eq!(count(&mut s, "itrec_a.session"), 1);

    // --in-place: the pre-delete checksums, and the later writes survive.
    let ok = recover(dest.path(), &[&id, "--in-place"]);
    ok.assert_code(0);
    assert!(ok.stderr.contains("put back 9 row(s)"), "{}", ok.stderr);
    assert_eq!(checksum(&mut s, "itrec_a.session"), before_session);
    assert_eq!(checksum(&mut s, "itrec_b.`#trial`"), before_trial);
    let other = rows(&mut s, "SELECT v FROM itrec_a.other ORDER BY id");
    assert_eq!(
        other,
        vec![
            vec![Value::Bytes(b"before-edited".to_vec())],
            vec![Value::Bytes(b"after-1".to_vec())],
            vec![Value::Bytes(b"after-2".to_vec())]
        ]
    );
    // Doing it twice is a conflict on every row, nothing applied.
    let twice = recover(dest.path(), &[&id, "--in-place"]);
    twice.assert_code(2).assert_clean_error();
    assert!(twice.stderr.contains("9 conflict(s)"), "{}", twice.stderr);

    // An update undone with --include-updates.
    let since2 = self::since(&mut s);
    let before_update = checksum(&mut s, "itrec_b.`#trial`");
    sql(
        &mut s,
        "UPDATE itrec_b.`#trial` SET label = 'oops', amount = -1, doc = JSON_OBJECT('x', 1), data = NULL WHERE session_id = 1",
    );
    sql(
        &mut s,
        "INSERT INTO itrec_a.other (v) VALUES ('after-update')",
    );
    assert_ne!(checksum(&mut s, "itrec_b.`#trial`"), before_update);
    archive(dest.path());
    let out = recover(
        dest.path(),
        &[
            "--list",
            "--since",
            &since2,
            "--schemas",
            "itrec_b",
            "--json",
        ],
    );
    out.assert_code(0);
    let list = out.json();
    let u = listed(&list, "itrec_b", "#trial", "updated");
    assert_eq!(u["tables"][0]["updated"], 3, "{u}");
    let uid = u["id"].as_str().unwrap().to_owned();
    let nothing = recover(dest.path(), &[&uid, "--in-place", "--json"]);
    nothing.assert_code(0);
    assert_eq!(
        nothing.json()["tables"].as_array().unwrap().len(),
        0,
        "updates only with --include-updates"
    );
    let undo = recover(dest.path(), &[&uid, "--in-place", "--include-updates"]);
    undo.assert_code(0);
    assert_eq!(checksum(&mut s, "itrec_b.`#trial`"), before_update);
    assert_eq!(count(&mut s, "itrec_a.other"), 4);
    // The row changed again after the recovery is a conflict for a second undo.
    let again = recover(dest.path(), &[&uid, "--in-place", "--include-updates"]);
    again.assert_code(2).assert_clean_error();
    assert!(again.stderr.contains("changed again"), "{}", again.stderr);

    fresh(
        &mut s,
        &[
            "itrec_b",
            "itrec_a",
            "itrec_saved",
            "undo_itrec_a",
            "undo_itrec_b",
            "common_usage",
        ],
    );
}

const DJ_SCRIPT: &str = r#"
import json, sys
import datajoint as dj
dj.config["database.use_tls"] = False
dj.config["safemode"] = False
dj.config["loglevel"] = "WARNING"
mode, prefix = sys.argv[1], sys.argv[2]
a = dj.Schema(prefix + "_subject")
b = dj.Schema(prefix + "_session")

@a
class Subject(dj.Manual):
    definition = """
    subject_id: int
    ---
    name: varchar(32)
    weight: decimal(6,2)
    born: datetime(3)
    """

@b
class Session(dj.Manual):
    definition = """
    -> Subject
    session_id: smallint unsigned
    ---
    note: varchar(255)
    data: longblob
    """

@b
class Trial(dj.Manual):
    definition = """
    -> Session
    trial: int
    ---
    t0: float
    kind: enum('go','nogo')
    uid: uuid
    """

def everything():
    def norm(rows):
        out = []
        for r in rows:
            out.append({k: (v.tolist() if hasattr(v, "tolist") else str(v)) for k, v in r.items()})
        return out
    return {
        "subject": norm(Subject.fetch(as_dict=True, order_by="KEY")),
        "session": norm(Session.fetch(as_dict=True, order_by="KEY")),
        "trial": norm(Trial.fetch(as_dict=True, order_by="KEY")),
    }

if mode == "insert":
    import numpy as np, uuid
    Subject.insert([(i, "mouse-%d" % i, 20.25 + i, "2026-11-0%d 08:00:00.%03d" % (i, i)) for i in (1, 2, 3)])
    Session.insert([(i, s, "note %d/%d" % (i, s), np.arange(i * 10 + s, dtype=np.float64)) for i in (1, 2, 3) for s in (1, 2)])
    Trial.insert([(i, s, t, t * 0.5, "go" if t % 2 else "nogo", uuid.uuid5(uuid.NAMESPACE_DNS, "%d-%d-%d" % (i, s, t)))
                  for i in (1, 2, 3) for s in (1, 2) for t in (1, 2, 3)])
elif mode == "delete":
    (Subject & "subject_id in (1, 2)").delete()
print(json.dumps(everything(), sort_keys=True))
"#;

fn dj(mode: &str, prefix: &str) -> serde_json::Value {
    crate::support::datajoint_script(DJ_SCRIPT, &[mode, prefix], server().port)
}

#[test]
fn datajoint_cascade_delete_is_put_back_and_fetched_again() {
    let _g = crate::pitr::binlog_lock();
    let mut s = admin();
    let prefix = "itrec_dj";
    fresh(&mut s, &["itrec_dj_session", "itrec_dj_subject"]);
    let before = dj("insert", prefix);
    assert_eq!(before["trial"].as_array().unwrap().len(), 18);
    let since = since(&mut s);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let after = dj("delete", prefix);
    assert_eq!(
        after["subject"].as_array().unwrap().len(),
        1,
        "the cascade ran"
    );
    assert_eq!(after["trial"].as_array().unwrap().len(), 6);
    let dest = tempfile::tempdir().unwrap();
    archive(dest.path());
    let out = recover(
        dest.path(),
        &[
            "--list",
            "--since",
            &since,
            "--schemas",
            "itrec_dj_*",
            "--json",
        ],
    );
    out.assert_code(0);
    let list = out.json();
    let t = listed(&list, "itrec_dj_subject", "subject", "deleted");
    let tables: Vec<(String, u64)> = t["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["deleted"].as_u64().unwrap() > 0)
        .map(|x| {
            (
                x["table"].as_str().unwrap().to_owned(),
                x["deleted"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tables,
        vec![
            ("trial".to_owned(), 12),
            ("session".to_owned(), 4),
            ("subject".to_owned(), 2)
        ],
        "DataJoint deletes children first in one transaction: {t}"
    );
    let id = t["id"].as_str().unwrap().to_owned();
    let ok = recover(dest.path(), &[&id, "--in-place"]);
    ok.assert_code(0);
    let fetched = dj("fetch", prefix);
    assert_eq!(fetched, before, "DataJoint fetches every row again");
    fresh(&mut s, &["itrec_dj_session", "itrec_dj_subject"]);
}

/// DataJoint's `~external_<store>` table (as datajoint 0.14.10 declares it).
const DJ_EXTERNAL: &str = "(`hash` binary(16) NOT NULL COMMENT ':uuid:hash of contents (blob), of filename + contents (attach), or relative filepath (filepath)', \
    `size` bigint unsigned NOT NULL COMMENT 'size of object in bytes', \
    `attachment_name` varchar(255) DEFAULT NULL COMMENT 'the filename of an attachment', \
    `filepath` varchar(1000) DEFAULT NULL COMMENT 'relative filepath or attachment filename', \
    `contents_hash` binary(16) DEFAULT NULL COMMENT ':uuid:used for the filepath datatype', \
    `timestamp` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP COMMENT 'automatic timestamp', \
    PRIMARY KEY (`hash`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='external storage tracking'";

fn hex16(h: [u8; 16]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// A Spyglass-like lab with a file store: its base, a sandbox that finds the
/// store (dj_local_conf.json) and the quarantine (spyglass-admin.toml).
struct FileLab {
    root: tempfile::TempDir,
}

impl FileLab {
    fn base(&self) -> std::path::PathBuf {
        self.root.path().join("spyglass")
    }
    fn store(&self) -> std::path::PathBuf {
        self.base().join("analysis")
    }
    fn quarantine(&self) -> std::path::PathBuf {
        self.root.path().join("quarantine")
    }
    fn sandbox(&self) -> Sandbox {
        let s = server();
        let loc = |d: &str| self.base().join(d).display().to_string();
        let cfg = serde_json::json!({
            "database.host": s.host,
            "database.port": s.port,
            "database.user": s.user,
            "stores": {
                "analysis": {"protocol": "file", "location": loc("analysis"), "stage": loc("analysis")},
                "raw": {"protocol": "file", "location": loc("raw"), "stage": loc("raw")},
            },
            "custom": {"spyglass_dirs": {"base": self.base().display().to_string()}},
        });
        let mut sb = Sandbox::new();
        sb.write(
            "dj_local_conf.json",
            &serde_json::to_string_pretty(&cfg).unwrap(),
            0o600,
        );
        sb.write(
            "spyglass-admin.toml",
            &format!(
                "[cleanup]\nschemas = [\"itrecf*\"]\nmax_fraction = 1.0\nquarantine = \"{}\"\n",
                self.quarantine().display()
            ),
            0o644,
        );
        sb.env("DJ_PASS", "");
        sb
    }
}

fn file_bytes(rel: &str) -> Vec<u8> {
    format!("{rel}: NWB bytes of an analysis\n")
        .repeat(50)
        .into_bytes()
}

/// Rows of an `analysis_nwbfile` table with a `filepath@analysis` attribute
/// (and their downstream rows in another schema) are deleted in one
/// transaction; `cleanup apply` then quarantines the now-unused `~external`
/// rows and their files (one file was already lost from disk). `recover`
/// reports each file (quarantined with its run, missing), refuses
/// `--in-place` without `--restore-files` with nothing applied, and
/// `--in-place --restore-files` puts rows, `~external` rows and files back
/// byte for byte, reporting the lost one missing with exit 1.
#[test]
fn files_the_deleted_rows_name_are_reported_and_restored_from_the_quarantine() {
    let _g = crate::pitr::binlog_lock();
    let mut s = admin();
    let nwb = "itrecf_nwbfile";
    let lfp = "itrecf_lfp";
    fresh(&mut s, &[lfp, nwb]);
    sql(&mut s, &format!("CREATE DATABASE `{nwb}`"));
    sql(&mut s, &format!("CREATE DATABASE `{lfp}`"));
    sql(
        &mut s,
        &format!("CREATE TABLE `{nwb}`.`~external_analysis` {DJ_EXTERNAL}"),
    );
    sql(
        &mut s,
        &format!(
            "CREATE TABLE `{nwb}`.`analysis_nwbfile` (`analysis_file_name` varchar(64) NOT NULL, \
             `analysis_file_abs_path` binary(16) NOT NULL COMMENT ':filepath@analysis:', \
             PRIMARY KEY (`analysis_file_name`), FOREIGN KEY (`analysis_file_abs_path`) \
             REFERENCES `{nwb}`.`~external_analysis` (`hash`) ON UPDATE CASCADE ON DELETE RESTRICT) \
             ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        ),
    );
    sql(
        &mut s,
        &format!(
            "CREATE TABLE `{lfp}`.`lfp` (`lfp_id` int NOT NULL, `analysis_file_name` varchar(64) NOT NULL, \
             PRIMARY KEY (`lfp_id`), FOREIGN KEY (`analysis_file_name`) \
             REFERENCES `{nwb}`.`analysis_nwbfile` (`analysis_file_name`) ON UPDATE CASCADE ON DELETE RESTRICT) \
             ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        ),
    );
    sql(
        &mut s,
        &format!("CREATE TABLE `{lfp}`.`later` (`id` int NOT NULL PRIMARY KEY) ENGINE=InnoDB"),
    );
    let lab = FileLab {
        root: tempfile::tempdir().unwrap(),
    };
    std::fs::create_dir_all(lab.base().join("raw")).unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86400);
    let rel = |i: usize| format!("itrecf/sess{}/f{i}.nwb", i % 2);
    let hash = |i: usize| hex16(spyglass_cleanup::inventory::filepath_hash(&rel(i)));
    for i in 1..=6 {
        let p = lab.store().join(rel(i));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, file_bytes(&rel(i))).unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(old).unwrap();
        sql(
            &mut s,
            &format!(
                "INSERT INTO `{nwb}`.`~external_analysis` (hash, size, filepath, contents_hash, timestamp) \
                 VALUES (X'{}', {}, '{}', X'{}', '2026-11-01 10:00:0{i}')",
                hash(i),
                file_bytes(&rel(i)).len(),
                rel(i),
                hex16(spyglass_cleanup::inventory::filepath_hash(&format!("c{i}"))),
            ),
        );
        sql(
            &mut s,
            &format!(
                "INSERT INTO `{nwb}`.`analysis_nwbfile` VALUES ('f{i}.nwb', X'{}')",
                hash(i)
            ),
        );
        sql(
            &mut s,
            &format!("INSERT INTO `{lfp}`.`lfp` VALUES ({i}, 'f{i}.nwb')"),
        );
    }
    let tables = [
        format!("`{nwb}`.`~external_analysis`"),
        format!("`{nwb}`.`analysis_nwbfile`"),
        format!("`{lfp}`.`lfp`"),
    ];
    let before: Vec<Option<u64>> = tables.iter().map(|t| checksum(&mut s, t)).collect();
    let since = since(&mut s);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // The cascade, children first, one transaction: files 1, 2, 3 lose their rows.
    sql(&mut s, "BEGIN");
    sql(
        &mut s,
        &format!(
            "DELETE FROM `{lfp}`.`lfp` WHERE analysis_file_name IN ('f1.nwb', 'f2.nwb', 'f3.nwb')"
        ),
    );
    sql(
        &mut s,
        &format!("DELETE FROM `{nwb}`.`analysis_nwbfile` WHERE analysis_file_name IN ('f1.nwb', 'f2.nwb', 'f3.nwb')"),
    );
    sql(&mut s, "COMMIT");
    // File 3 is lost from disk before cleanup runs.
    std::fs::remove_file(lab.store().join(rel(3))).unwrap();
    let sb = lab.sandbox();
    let out = sb.run(&["cleanup", "apply", "--yes", "--json"]);
    assert!(
        out.code == 0 || out.code == 1,
        "cleanup apply: {} {}",
        out.stdout,
        out.stderr
    );
    for i in 1..=3 {
        assert!(
            !lab.store().join(rel(i)).exists(),
            "cleanup moved or never had file {i}"
        );
    }
    assert!(lab.store().join(rel(4)).exists(), "a used file stays");
    assert_eq!(
        count(&mut s, &format!("`{nwb}`.`~external_analysis`")),
        3,
        "cleanup deleted the 3 unused ~external rows"
    );
    sql(&mut s, &format!("INSERT INTO `{lfp}`.`later` VALUES (1)"));
    let dest = tempfile::tempdir().unwrap();
    archive(dest.path());
    let dir = dest.path().join("binlog").display().to_string();
    let run = |args: &[&str]| {
        let mut v = vec!["recover", "--binlog-dir", dir.as_str()];
        v.extend_from_slice(args);
        sb.run(&v)
    };
    let out = run(&[
        "--list",
        "--since",
        &since,
        "--schemas",
        "itrecf*",
        "--json",
    ]);
    out.assert_code(0);
    let list = out.json();
    let id = listed(&list, nwb, "analysis_nwbfile", "deleted")["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The dry run reports every file the rows name, and where it is.
    let out = run(&[&id, "--in-place", "--dry-run", "--json"]);
    out.assert_code(1);
    let report = out.json();
    let files = report["files"].as_array().expect("files");
    assert_eq!(files.len(), 3, "{report}");
    let run_name = std::fs::read_dir(lab.quarantine())
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .file_name()
        .to_string_lossy()
        .into_owned();
    for i in 1..=3 {
        let f = files
            .iter()
            .find(|f| f["hash"] == hash(i))
            .unwrap_or_else(|| panic!("file {i} not reported: {report}"));
        assert_eq!(f["kind"], "filepath");
        assert_eq!(f["store"], "analysis");
        assert_eq!(f["external_row"], "quarantined", "{f}");
        assert_eq!(
            f["path"].as_str().unwrap(),
            lab.store().join(rel(i)).display().to_string()
        );
        assert_eq!(
            f["named_by"][0],
            format!("`{nwb}`.`analysis_nwbfile`.analysis_file_abs_path")
        );
        if i == 3 {
            assert_eq!(f["place"], "missing", "{f}");
        } else {
            assert_eq!(f["place"], "quarantined", "{f}");
            assert_eq!(f["run"], run_name.as_str());
        }
    }
    assert!(
        out.stderr.contains("missing") && out.stderr.contains("backup of the store"),
        "says what to do: {}",
        out.stderr
    );
    // Without --restore-files the rows cannot go back (their ~external rows are gone): nothing applied.
    let out = run(&[&id, "--in-place"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("\nerror: ") && !out.stderr.contains("panicked"),
        "one clean error after the report: {}",
        out.stderr
    );
    assert!(out.stderr.contains("--restore-files"), "{}", out.stderr);
    assert_eq!(count(&mut s, &format!("`{nwb}`.`analysis_nwbfile`")), 3);
    assert_eq!(count(&mut s, &format!("`{lfp}`.`lfp`")), 3);

    // Rows, ~external rows and files back; the lost file reported missing.
    let out = run(&[&id, "--in-place", "--restore-files", "--json"]);
    out.assert_code(1);
    let report = out.json();
    assert_eq!(report["applied"], true, "{report}");
    for f in report["files"].as_array().unwrap() {
        let lost = f["hash"] == hash(3);
        assert_eq!(f["place"], if lost { "missing" } else { "in_place" }, "{f}");
        assert_eq!(f["external_row"], "live", "{f}");
        assert_eq!(f["restored"], true, "{f}");
    }
    let after: Vec<Option<u64>> = tables.iter().map(|t| checksum(&mut s, t)).collect();
    assert_eq!(
        after, before,
        "rows and ~external rows as before the delete"
    );
    for i in [1, 2, 4, 5, 6] {
        assert_eq!(
            std::fs::read(lab.store().join(rel(i))).unwrap(),
            file_bytes(&rel(i)),
            "file {i} byte for byte"
        );
    }
    assert!(!lab.store().join(rel(3)).exists());
    assert_eq!(
        count(&mut s, &format!("`{lfp}`.`later`")),
        1,
        "the later write survives"
    );
    // Again: the rows exist now, so it stops on the conflict.
    run(&[&id, "--in-place", "--restore-files"]).assert_code(2);
    fresh(&mut s, &[lfp, nwb]);
}
