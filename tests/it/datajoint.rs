//! DataJoint 0.14.10 itself (the client Spyglass 0.6.0 pins) logged in as
//! one account of each role made by `spyglass-admin users add`, trying what
//! the role may and may not do. The attempts run in `tests/dj/capability.py`
//! under the interpreter of the virtual environment `cargo xtask itest`
//! makes (`SPYGLASS_IT_PYTHON`); passwords reach it through the environment.
//!
//! Accounts and schemas of this module start with `itdj` (and `lfp_itdj`,
//! `figurl_itdj`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use spyglass_db::mysql::prelude::Queryable;

use crate::support::{admin, as_user, python, roles_lock, run_stdin, server, sql, Sandbox};

/// The accounts of the matrix, in the order they run.
const ROLES: [(&str, &str); 4] = [
    ("itdj_guest", "guest"),
    ("itdj_collab", "collab"),
    ("itdj_user", "user"),
    ("itdj_admin", "admin"),
];

/// Whose schema the others try to create: a dj_user nobody logs in as.
const OTHER: &str = "itdj_other";

const EXPIRED: &str = "itdj_exp";

fn is_mysql() -> bool {
    server().flavor == "mysql"
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dj/capability.py")
}

/// The attempt that logs in. MariaDB 10.11 has no TLS out of the box, and
/// with PyMySQL 1.2 DataJoint 0.14's default (`use_tls=None`) asks for TLS and
/// does not fall back (see `datajoint_default_tls`): users of such a server
/// set `database.use_tls: false`, and so does the test there.
fn login_kind() -> &'static str {
    if is_mysql() {
        "login"
    } else {
        "login_plain"
    }
}

/// Runs capability.py as `user`; `password` is DJ_PASS, `new_password`
/// DJ_NEW_PASS. Returns its JSON object (one entry per attempt).
fn datajoint(user: &str, password: &str, new_password: Option<&str>, attempts: &[String]) -> Value {
    let s = server();
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut c = Command::new(python());
    c.arg(script())
        .args(attempts)
        .current_dir(cwd.path())
        // Nothing of the developer's: no ~/.datajoint_config.json, no DJ_* of theirs.
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", cwd.path())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("DJ_HOST", &s.host)
        .env("DJ_PORT", s.port.to_string())
        .env("DJ_USER", user)
        .env("DJ_PASS", password);
    if let Some(p) = new_password {
        c.env("DJ_NEW_PASS", p);
    }
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python().display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "capability.py as {user} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("capability.py as {user}: stdout is not JSON ({e}):\n{stdout}\n{stderr}")
    });
    for a in attempts {
        let label = a.split('=').next().unwrap_or_default();
        assert!(v.get(label).is_some(), "no outcome for {a} in {v}");
    }
    v
}

fn ok(v: &Value, label: &str) -> bool {
    v[label]["ok"] == true
}

fn code(v: &Value, label: &str) -> Option<i64> {
    v[label]["code"].as_i64()
}

/// A refusal for lack of privileges, not some other failure:
/// ER_DBACCESS_DENIED_ERROR or ER_TABLEACCESS_DENIED_ERROR.
fn denied_problem(v: &Value, user: &str, label: &str) -> Option<String> {
    if matches!(code(v, label), Some(1044 | 1142)) {
        None
    } else {
        Some(format!(
            "{user}: {label} failed, but not with access denied (1044/1142): {}",
            v[label]
        ))
    }
}

/// ER_ACCESS_DENIED_ERROR: wrong password.
#[track_caller]
fn assert_bad_password(v: &Value, user: &str, label: &str) {
    assert_eq!(
        code(v, label),
        Some(1045),
        "{user}: {label} should be refused (wrong password): {}",
        v[label]
    );
}

/// A `common_*` table of the fixture and its row count, as the admin sees it.
fn a_common_table() -> (String, String, u64) {
    let mut a = admin();
    let t: Option<(String, String)> = a
        .conn()
        .query_first(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA LIKE 'common\\_%' AND TABLE_TYPE = 'BASE TABLE' \
             AND TABLE_NAME NOT LIKE '~%' ORDER BY TABLE_SCHEMA, TABLE_NAME LIMIT 1",
        )
        .unwrap_or_else(|e| panic!("listing common_* tables: {e}"));
    let (db, table) = t.expect("the fixture has a common_* table");
    let rows: Option<u64> = a
        .conn()
        .query_first(format!("SELECT COUNT(*) FROM `{db}`.`{table}`"))
        .unwrap_or_else(|e| panic!("counting {db}.{table}: {e}"));
    (db, table, rows.unwrap_or(0))
}

/// The row capability.py wrote into `db`, read back by the admin.
fn probe_note(db: &str, owner: &str) -> Option<String> {
    let mut a = admin();
    a.conn()
        .exec_first(
            format!("SELECT note FROM `{db}`.`probe` WHERE owner = ?"),
            (owner,),
        )
        .unwrap_or_else(|e| panic!("reading {db}.probe: {e}"))
}

fn schemas() -> Vec<String> {
    let mut v: Vec<String> = ROLES
        .iter()
        .flat_map(|(name, role)| {
            [
                format!("{name}_x"),
                format!("lfp_itdj_{role}"),
                format!("figurl_itdj_{role}"),
            ]
        })
        .collect();
    v.push(format!("{OTHER}_x"));
    v.push(format!("{EXPIRED}_x"));
    v
}

/// Drops what this module makes (also what an earlier, failed run left).
fn clean(accounts: &[&str]) {
    let mut a = admin();
    for db in schemas() {
        sql(&mut a, &format!("DROP DATABASE IF EXISTS `{db}`"));
    }
    for u in accounts {
        sql(&mut a, &format!("DROP USER IF EXISTS '{u}'@'%'"));
    }
}

#[test]
fn each_role_through_datajoint() {
    let _roles = roles_lock();
    let mut accounts: Vec<&str> = ROLES.iter().map(|(n, _)| *n).collect();
    accounts.push(OTHER);
    clean(&accounts);
    let root = Sandbox::as_root();
    root.run(&["users", "roles", "init"]).assert_code(0);
    for (name, role) in ROLES.iter().copied().chain([(OTHER, "user")]) {
        root.run(&[
            "users",
            "add",
            name,
            "--role",
            role,
            "--temp-password",
            "temppass",
        ])
        .assert_code(0);
    }
    let (db, table, rows) = a_common_table();
    let login = login_kind();

    // role -> attempt -> allowed?, and everything else that was wrong on
    // the way (collected, so a failure shows the whole matrix).
    let mut seen: BTreeMap<&str, BTreeMap<&str, bool>> = BTreeMap::new();
    let mut problems: Vec<String> = Vec::new();
    for (name, role) in ROLES {
        let new_pw = format!("{role}-Changed-pw-1x");
        let mut attempts = vec![
            format!("login={login}:DJ_PASS"),
            format!("read=read:{db}.{table}"),
            format!("own=write:{name}_x"),
            format!("lfp=write:lfp_itdj_{role}"),
            format!("figurl=write:figurl_itdj_{role}"),
            format!("other=write:{OTHER}_x"),
            "set_password=set_password:DJ_NEW_PASS".to_owned(),
        ];
        if is_mysql() {
            attempts.push(format!("new={login}:DJ_NEW_PASS"));
            attempts.push(format!("old={login}:DJ_PASS"));
        }
        let v = datajoint(name, "temppass", Some(&new_pw), &attempts);
        assert!(ok(&v, "login"), "{name} logs in with temppass: {v}");

        let row = seen.entry(role).or_default();
        row.insert("read", ok(&v, "read"));
        if ok(&v, "read") {
            if v["read"]["rows"] != rows {
                problems.push(format!(
                    "{name} read {} rows of {db}.{table}, the admin counts {rows}",
                    v["read"]["rows"]
                ));
            }
        } else {
            problems.extend(denied_problem(&v, name, "read"));
        }
        for (label, schema) in [
            ("own", format!("{name}_x")),
            ("lfp", format!("lfp_itdj_{role}")),
            ("figurl", format!("figurl_itdj_{role}")),
            ("other", format!("{OTHER}_x")),
        ] {
            row.insert(label, ok(&v, label));
            if ok(&v, label) {
                // Proven from outside: the admin finds the row DataJoint wrote.
                let note = probe_note(&schema, name);
                if note.as_deref() != Some(format!("written by {name}").as_str()) {
                    problems.push(format!("{name}: {schema}.probe holds {note:?}"));
                }
            } else {
                problems.extend(denied_problem(&v, name, label));
            }
        }

        // Its own password: DataJoint's way on MySQL; on MariaDB that crashes
        // on the version string ('10.11.x-MariaDB-...'), so the tool's.
        let changed = if is_mysql() {
            if !ok(&v, "set_password") {
                problems.push(format!("{name}: dj.set_password: {}", v["set_password"]));
            }
            v
        } else {
            assert_eq!(
                v["set_password"]["error"], "InvalidVersion",
                "{name}: dj.set_password on MariaDB was expected to crash on the \
                 server's version string; if DataJoint fixed it, use it here too: {}",
                v["set_password"]
            );
            let out = run_stdin(
                &as_user(name, "temppass"),
                &["users", "set-password"],
                &format!("{new_pw}\n"),
            );
            out.assert_code(0);
            for text in [&out.stdout, &out.stderr] {
                assert!(!text.contains(&new_pw), "{name}: password echoed: {text}");
            }
            datajoint(
                name,
                "temppass",
                Some(&new_pw),
                &[
                    format!("new={login}:DJ_NEW_PASS"),
                    format!("old={login}:DJ_PASS"),
                ],
            )
        };
        // Changed means: the new one works and the old one no longer does.
        let old_refused = code(&changed, "old") == Some(1045);
        row.insert("password", ok(&changed, "new") && old_refused);
        if !old_refused {
            problems.push(format!(
                "{name}: the old password after the change: {}",
                changed["old"]
            ));
        }
    }

    let matrix = |m: &BTreeMap<&str, BTreeMap<&str, bool>>| -> String {
        let mut s = String::new();
        for (_, role) in ROLES {
            let r = &m[role];
            s.push_str(&format!("{role:>6}:"));
            for k in ["read", "own", "lfp", "figurl", "other", "password"] {
                let yes = r.get(k).copied().unwrap_or(false);
                s.push_str(&format!(" {k}={}", if yes { "yes" } else { "no" }));
            }
            s.push('\n');
        }
        s
    };
    let mut want: BTreeMap<&str, BTreeMap<&str, bool>> = BTreeMap::new();
    for (role, [read, own, lfp, figurl, other, password]) in [
        ("guest", [true, false, false, false, false, true]),
        ("collab", [true, true, false, false, false, true]),
        ("user", [true, true, true, true, false, true]),
        ("admin", [true, true, true, true, true, true]),
    ] {
        want.insert(
            role,
            BTreeMap::from([
                ("read", read),
                ("own", own),
                ("lfp", lfp),
                ("figurl", figurl),
                ("other", other),
                ("password", password),
            ]),
        );
    }
    eprintln!(
        "DataJoint capability matrix on {}:\n{}",
        server().flavor,
        matrix(&seen)
    );
    assert_eq!(
        matrix(&seen),
        matrix(&want),
        "capability matrix through DataJoint"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    clean(&accounts);
}

#[test]
fn expired_first_password_through_datajoint() {
    let _roles = roles_lock();
    clean(&[EXPIRED]);
    let root = Sandbox::as_root();
    root.run(&["users", "roles", "init"]).assert_code(0);
    root.run(&[
        "users",
        "add",
        EXPIRED,
        "--role",
        "user",
        "--temp-password",
        "temppass",
        "--expire",
    ])
    .assert_code(0);
    let login = login_kind();

    // DataJoint cannot even connect: PyMySQL does not tell the server it
    // handles expired passwords, so dj.set_password() is out of reach.
    let v = datajoint(
        EXPIRED,
        "temppass",
        None,
        &[format!("login={login}:DJ_PASS")],
    );
    let want = if is_mysql() { 1862 } else { 1820 };
    assert!(
        !ok(&v, "login"),
        "an expired password logs in through DataJoint: {v}"
    );
    assert_eq!(
        code(&v, "login"),
        Some(want),
        "DataJoint's error for an expired password: {}",
        v["login"]
    );

    // The tool's way, as that user with the old password in DJ_PASS.
    let new_pw = "Expired-Changed-pw-1x";
    let out = run_stdin(
        &as_user(EXPIRED, "temppass"),
        &["users", "set-password"],
        &format!("{new_pw}\n"),
    );
    out.assert_code(0);

    let schema = format!("{EXPIRED}_x");
    let v = datajoint(
        EXPIRED,
        "temppass",
        Some(new_pw),
        &[
            format!("login={login}:DJ_NEW_PASS"),
            format!("own=write:{schema}"),
            format!("old={login}:DJ_PASS"),
        ],
    );
    assert!(ok(&v, "login"), "logs in with the new password: {v}");
    assert!(ok(&v, "own"), "declares {schema}: {v}");
    assert_eq!(
        probe_note(&schema, EXPIRED).as_deref(),
        Some(format!("written by {EXPIRED}").as_str())
    );
    assert_bad_password(&v, EXPIRED, "old");

    clean(&[EXPIRED]);
}

/// DataJoint 0.14's default TLS setting against each sandbox: MySQL 9 makes
/// its own certificates, so it works there; MariaDB 10.11 has none, and with
/// PyMySQL 1.2 the default (`ssl={"ssl": {}}`) means "required" and DataJoint's
/// fallback (it only catches InternalError) does not run. If this starts to
/// pass on MariaDB, `login_kind` can use DataJoint's default everywhere.
#[test]
fn datajoint_default_tls() {
    let name = "itdj_tls";
    let mut a = admin();
    sql(&mut a, &format!("DROP USER IF EXISTS '{name}'@'%'"));
    sql(
        &mut a,
        &format!("CREATE USER '{name}'@'%' IDENTIFIED BY 'Tls-pw-1x'"),
    );
    let v = datajoint(
        name,
        "Tls-pw-1x",
        None,
        &[
            "default=login:DJ_PASS".to_owned(),
            "plain=login_plain:DJ_PASS".to_owned(),
        ],
    );
    assert!(ok(&v, "plain"), "use_tls=False logs in: {v}");
    if is_mysql() {
        assert!(ok(&v, "default"), "DataJoint's default TLS on MySQL: {v}");
    } else {
        assert_eq!(
            code(&v, "default"),
            Some(2026),
            "DataJoint's default TLS against a MariaDB without TLS: {}",
            v["default"]
        );
    }
    sql(&mut a, &format!("DROP USER IF EXISTS '{name}'@'%'"));
}
