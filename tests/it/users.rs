//! `spyglass-admin users ...` against the real server: roles and one user of
//! each kind created by the binary, then proven by logging in as each user.
//!
//! The roles (`dj_guest`, ...) are server-wide: every test that creates,
//! drops, drifts or converges them holds `support::roles_lock()`.
//! Accounts and schemas of this module start with `it`.

use serde_json::Value;
use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::{ConnectOptions, Secret, Session};

use crate::support::{admin, as_user, closed_port, roles_lock, run_stdin, server, sql, Sandbox};

fn is_mysql() -> bool {
    server().flavor == "mysql"
}

fn login(user: &str, password: &str) -> Session {
    let s = server();
    let opts = ConnectOptions::tcp(&s.host, s.port, user).password(Secret::new(password));
    spyglass_db::connect(&opts).unwrap_or_else(|e| panic!("{user} logs in: {e}"))
}

/// Runs `statement` as `session`; Ok or the server's error code.
fn try_sql(session: &mut Session, statement: &str) -> Result<(), u16> {
    session.conn().query_drop(statement).map_err(|e| match e {
        spyglass_db::mysql::Error::MySqlError(m) => m.code,
        other => panic!("{statement}: {other}"),
    })
}

#[track_caller]
fn allowed(session: &mut Session, statement: &str) {
    if let Err(code) = try_sql(session, statement) {
        panic!(
            "{} should be allowed: {statement} -> error {code}",
            session.user()
        );
    }
}

/// ER_DBACCESS_DENIED_ERROR, ER_TABLEACCESS_DENIED_ERROR.
#[track_caller]
fn denied(session: &mut Session, statement: &str) {
    match try_sql(session, statement) {
        Err(1044) | Err(1142) => {}
        other => panic!(
            "{} should be denied: {statement} -> {other:?}",
            session.user()
        ),
    }
}

fn drop_user(name: &str) {
    let mut a = admin();
    sql(&mut a, &format!("DROP USER IF EXISTS '{name}'@'%'"));
}

fn drop_role(role: &str) {
    let mut a = admin();
    sql(&mut a, &format!("DROP ROLE IF EXISTS {role}"));
}

fn role_to(role: &str) -> String {
    if is_mysql() {
        format!("'{role}'@'%'")
    } else {
        format!("`{role}`")
    }
}

fn finding_kinds(v: &Value, subject: &str) -> Vec<String> {
    v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["subject"] == subject)
        .map(|f| f["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A fixture table in common_lab (read-only for us: only SELECTed, inserts must fail).
fn a_common_table() -> String {
    let mut a = admin();
    let t: Option<String> = a
        .conn()
        .query_first(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'common_lab' \
             AND TABLE_NAME NOT LIKE '~%' ORDER BY TABLE_NAME LIMIT 1",
        )
        .unwrap_or_else(|e| panic!("listing common_lab: {e}"));
    t.expect("the fixture has a table in common_lab")
}

const USERS: [(&str, &str, &str); 4] = [
    ("itusr_guest", "guest", "Guest-pw-1x"),
    ("itusr_collab", "collab", "Collab-pw-2x"),
    ("itusr_user", "user", "User-pw-3x"),
    ("itusr_admin", "admin", "Admin-pw-4x"),
];

const ALL_ACCOUNTS: [&str; 11] = [
    "itusr_guest",
    "itusr_collab",
    "itusr_user",
    "itusr_admin",
    "itusr_file_a",
    "itusr_file_b",
    "itusr_norole",
    "itusr_nopw",
    "itusr_temp",
    "itusr_exp",
    "itusr_gen",
];

fn audit(sb: &Sandbox) -> (i32, Value) {
    let mut args = vec!["users", "audit", "--json"];
    args.extend(ALL_ACCOUNTS);
    let out = sb.run(&args);
    assert!(out.code == 0 || out.code == 1, "{out:?}");
    (out.code, out.json())
}

#[test]
fn roles_users_logins_and_audit() {
    let _roles = roles_lock();
    let sb = Sandbox::as_root();
    // A clean slate: earlier runs on a kept sandbox may have left these behind.
    for u in ALL_ACCOUNTS {
        drop_user(u);
    }
    {
        let mut a = admin();
        sql(&mut a, "DROP USER IF EXISTS ''@'itusr.invalid'");
        for db in [
            "lfp_itusr",
            "itusr_collab_work",
            "itusr_user_work",
            "itusr_admin_any",
        ] {
            sql(&mut a, &format!("DROP DATABASE IF EXISTS `{db}`"));
        }
    }
    for r in ["dj_guest", "dj_collab", "dj_user", "dj_admin"] {
        drop_role(r);
    }

    // roles init creates the four roles; a second run changes nothing.
    let out = sb.run(&["users", "roles", "init", "--json"]);
    out.assert_code(0);
    let v = out.json();
    // 4 roles; guest, collab, admin one grant each; user one plus 11 shared prefixes.
    assert_eq!(v["applied"].as_array().unwrap().len(), 19, "{v:#}");
    assert!(v["failed"].is_null());
    let again = sb.run(&["users", "roles", "init", "--json"]);
    again.assert_code(0);
    assert_eq!(again.json()["planned"], serde_json::json!([]));

    // One user of each kind, with a known first password from stdin.
    for (name, role, pw) in USERS {
        let out = run_stdin(
            &sb,
            &["users", "add", name, "--role", role, "--password-stdin"],
            &format!("{pw}\n"),
        );
        out.assert_code(0);
        assert!(
            out.stdout.contains(&format!("'{name}'@'%'")),
            "{}",
            out.stdout
        );
        // Adding again changes nothing and shows no new password.
        let out = sb.run(&["users", "add", name, "--role", role]);
        out.assert_code(0);
        assert!(out.stdout.contains("nothing to change"), "{}", out.stdout);
        assert!(!out.stdout.contains("password for"), "{}", out.stdout);
    }
    // A random password is generated and shown once.
    let out = sb.run(&["users", "add", "itusr_gen", "--role", "guest", "--json"]);
    out.assert_code(0);
    let gen = out.json()["new_passwords"][0]["password"]
        .as_str()
        .expect("generated password")
        .to_owned();
    assert!(gen.len() >= 20, "{gen}");
    login("itusr_gen", &gen);

    // Writable schemas of our own (the fixture's are shared and read-only for tests).
    let table = a_common_table();
    {
        let mut a = admin();
        sql(&mut a, "CREATE DATABASE lfp_itusr");
        sql(&mut a, "CREATE TABLE lfp_itusr.t (id INT PRIMARY KEY)");
    }

    // Every role is active at login: no SET ROLE, no activate_all_roles_on_login.
    for (name, role, pw) in USERS {
        let mut s = login(name, pw);
        let current: Option<String> = s.conn().query_first("SELECT CURRENT_ROLE()").unwrap();
        let want = format!("dj_{role}");
        assert!(
            current.as_deref().is_some_and(|c| c.contains(&want)),
            "{name}: CURRENT_ROLE() = {current:?}"
        );
    }

    // guest reads common_* but cannot insert or create.
    let mut guest = login("itusr_guest", "Guest-pw-1x");
    allowed(
        &mut guest,
        &format!("SELECT COUNT(*) FROM common_lab.`{table}`"),
    );
    denied(
        &mut guest,
        &format!("INSERT INTO common_lab.`{table}` () VALUES ()"),
    );
    denied(&mut guest, "INSERT INTO lfp_itusr.t VALUES (1)");
    denied(&mut guest, "CREATE DATABASE itusr_guest_work");

    // collab creates tables in its own prefix, not in common_* or lfp_*.
    let mut collab = login("itusr_collab", "Collab-pw-2x");
    allowed(&mut collab, "CREATE DATABASE itusr_collab_work");
    allowed(
        &mut collab,
        "CREATE TABLE itusr_collab_work.t (id INT PRIMARY KEY)",
    );
    allowed(&mut collab, "INSERT INTO itusr_collab_work.t VALUES (1)");
    denied(&mut collab, "CREATE TABLE common_lab.itusr_probe (id INT)");
    denied(&mut collab, "INSERT INTO lfp_itusr.t VALUES (2)");
    allowed(
        &mut collab,
        &format!("SELECT COUNT(*) FROM common_lab.`{table}`"),
    );

    // user inserts into lfp_* (a shared prefix) and creates in its own prefix.
    let mut user = login("itusr_user", "User-pw-3x");
    allowed(&mut user, "INSERT INTO lfp_itusr.t VALUES (3)");
    allowed(&mut user, "CREATE DATABASE itusr_user_work");
    allowed(&mut user, "CREATE TABLE itusr_user_work.t (id INT)");
    denied(&mut user, "INSERT INTO itusr_collab_work.t VALUES (4)");
    denied(&mut user, "CREATE DATABASE itusr_other_work");

    // admin does anything on any schema.
    let mut adm = login("itusr_admin", "Admin-pw-4x");
    allowed(&mut adm, "CREATE DATABASE itusr_admin_any");
    allowed(&mut adm, "CREATE TABLE itusr_admin_any.t (id INT)");
    allowed(&mut adm, "INSERT INTO itusr_collab_work.t VALUES (5)");
    allowed(&mut adm, "INSERT INTO lfp_itusr.t VALUES (6)");
    allowed(
        &mut adm,
        &format!("SELECT COUNT(*) FROM common_lab.`{table}`"),
    );
    drop((guest, collab, user, adm));

    // A users file: plan shows pending changes (exit 1), apply makes them, plan is then empty.
    sb.write(
        "users.toml",
        "expire = true\n[[users]]\nname = \"itusr_file_a\"\nrole = \"user\"\n\n[[users]]\nname = \"itusr_file_b\"\nrole = \"dj_guest\"\nhost = \"%\"\n",
        0o600,
    );
    let out = sb.run(&["users", "plan", "-f", "users.toml"]);
    out.assert_code(1);
    assert!(
        out.stdout
            .contains("CREATE USER 'itusr_file_a'@'%' IDENTIFIED BY <password> PASSWORD EXPIRE"),
        "{}",
        out.stdout
    );
    let out = sb.run(&["users", "apply", "-f", "users.toml", "--json"]);
    out.assert_code(0);
    assert_eq!(out.json()["new_passwords"].as_array().unwrap().len(), 2);
    sb.run(&["users", "plan", "-f", "users.toml"])
        .assert_code(0);

    // list shows roles, active at login, own prefix.
    let out = sb.run(&["users", "list", "--json"]);
    out.assert_code(0);
    let rows = out.json();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["user"] == "itusr_user")
        .expect("itusr_user listed")
        .clone();
    assert_eq!(row["roles"], serde_json::json!(["dj_user"]));
    assert_eq!(row["active_at_login"], serde_json::json!(["dj_user"]));
    assert_eq!(row["own_prefix"], true);
    assert_eq!(row["locked"], false);

    // Freshly initialised: audit reports nothing. (itusr_file_* have expired
    // first passwords, which is a finding: give them their own one first.)
    for u in ["itusr_file_a", "itusr_file_b"] {
        let out = run_stdin(&sb, &["users", "set-password", u], "Changed-pw-9x\n");
        out.assert_code(0);
    }
    // Spyglass's policy lets every role read mysql.*: a finding until the
    // admin chooses (read_scope), then clean.
    let (code, v) = audit(&sb);
    assert_eq!(code, 1, "{v:#}");
    let kinds: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["system-schema-readable"], "{v:#}");
    sb.write(
        "spyglass-admin.toml",
        "[users]\nread_scope = \"all\"\n",
        0o600,
    );
    let (code, v) = audit(&sb);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["clean"], true);

    // Plant each kind of drift by hand.
    {
        let mut a = admin();
        sql(
            &mut a,
            &format!("GRANT INSERT ON `%`.* TO {}", role_to("dj_guest")),
        );
        sql(&mut a, &format!("DROP ROLE {}", role_to("dj_collab")));
        sql(&mut a, "GRANT DROP ON `lfp\\_%`.* TO 'itusr_user'@'%'");
        sql(
            &mut a,
            "REVOKE ALL PRIVILEGES ON `itusr\\_admin\\_%`.* FROM 'itusr_admin'@'%'",
        );
        sql(
            &mut a,
            "CREATE USER 'itusr_norole'@'%' IDENTIFIED BY 'Norole-pw-5x'",
        );
        sql(&mut a, "CREATE USER 'itusr_nopw'@'%'");
        sql(
            &mut a,
            "CREATE USER ''@'itusr.invalid' IDENTIFIED BY 'Anon-pw-6x'",
        );
        if is_mysql() {
            sql(&mut a, "SET DEFAULT ROLE NONE TO 'itusr_guest'@'%'");
        } else {
            sql(&mut a, "SET DEFAULT ROLE NONE FOR 'itusr_guest'@'%'");
        }
    }
    // Spyglass's convention, and a first password never changed.
    sb.run(&[
        "users",
        "add",
        "itusr_temp",
        "--role",
        "guest",
        "--temp-password",
        "temppass",
    ])
    .assert_code(0);
    let out = run_stdin(
        &sb,
        &[
            "users",
            "add",
            "itusr_exp",
            "--role",
            "guest",
            "--expire",
            "--password-stdin",
        ],
        "Expire-pw-7x\n",
    );
    out.assert_code(0);
    assert!(
        out.stderr
            .contains("DataJoint (and Spyglass) cannot log in as itusr_exp"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("spyglass-admin users set-password"),
        "{}",
        out.stdout
    );

    let (code, v) = audit(&sb);
    assert_eq!(code, 1, "{v:#}");
    let expect = [
        ("role dj_guest", "role-grants-differ"),
        ("role dj_collab", "role-missing"),
        ("'itusr_collab'@'%'", "no-role"),
        ("'itusr_user'@'%'", "direct-grants"),
        ("'itusr_admin'@'%'", "own-prefix-missing"),
        ("'itusr_norole'@'%'", "no-role"),
        ("'itusr_nopw'@'%'", "no-password"),
        ("''@'itusr.invalid'", "anonymous-account"),
        ("'itusr_guest'@'%'", "role-not-active"),
        ("'itusr_temp'@'%'", "temporary-password"),
        ("'itusr_exp'@'%'", "password-never-changed"),
    ];
    for (subject, kind) in expect {
        assert!(
            finding_kinds(&v, subject).iter().any(|k| k == kind),
            "expected {kind} for {subject} in {v:#}"
        );
    }
    for f in v["findings"].as_array().unwrap() {
        assert!(
            ["high", "medium", "low"].contains(&f["severity"].as_str().unwrap()),
            "{f}"
        );
        assert!(!f["fix"].as_str().unwrap().is_empty(), "{f}");
    }
    // Human output says the same, with the fix.
    let out = sb.run(&["users", "audit", "itusr_guest", "--no-login-check"]);
    out.assert_code(1);
    assert!(
        out.stdout.contains("[high] role-not-active"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "fix: spyglass-admin users set-role itusr_guest guest (runs SET DEFAULT ROLE"
        ),
        "{}",
        out.stdout
    );

    // The tool's own fixes make the audit clean again.
    sb.run(&["users", "roles", "init"]).assert_code(0);
    for (name, role) in [
        ("itusr_collab", "collab"),
        ("itusr_user", "user"),
        ("itusr_admin", "admin"),
        ("itusr_guest", "guest"),
    ] {
        sb.run(&["users", "set-role", name, role]).assert_code(0);
    }
    for name in ["itusr_norole", "itusr_nopw", "itusr_temp", "itusr_exp"] {
        sb.run(&["users", "remove", name]).assert_code(0);
        // Removing again is a no-op, not an error.
        sb.run(&["users", "remove", name]).assert_code(0);
    }
    {
        let mut a = admin();
        sql(&mut a, "DROP USER ''@'itusr.invalid'");
    }
    let (code, v) = audit(&sb);
    assert_eq!(code, 0, "{v:#}");

    // lock: the account keeps its grants but cannot log in.
    sb.run(&["users", "lock", "itusr_gen"]).assert_code(0);
    let s = server();
    let opts = ConnectOptions::tcp(&s.host, s.port, "itusr_gen").password(Secret::new(&gen));
    assert!(
        spyglass_db::connect(&opts).is_err(),
        "a locked account cannot log in"
    );
    sb.run(&["users", "lock", "itusr_gen", "--json"])
        .assert_code(0);

    // add-module: dj_user gets the new prefix; roles init keeps it.
    let out = sb.run(&["users", "add-module", "itusrmod"]);
    out.assert_code(0);
    assert!(out.stdout.contains("itusrmod\\_%"), "{}", out.stdout);
    let out = sb.run(&["users", "roles", "init"]);
    out.assert_code(0);
    assert!(out.stdout.contains("nothing to change"), "{}", out.stdout);
    {
        let mut a = admin();
        sql(&mut a, "CREATE DATABASE IF NOT EXISTS itusrmod_x");
    }
    let mut user = login("itusr_user", "User-pw-3x");
    allowed(&mut user, "CREATE TABLE itusrmod_x.t (id INT)");
    drop(user);

    // Clean up what this test made (roles stay: they are what a lab has).
    {
        let mut a = admin();
        sql(
            &mut a,
            &format!(
                "REVOKE ALL PRIVILEGES ON `itusrmod\\_%`.* FROM {}",
                role_to("dj_user")
            ),
        );
        for db in [
            "lfp_itusr",
            "itusr_collab_work",
            "itusr_user_work",
            "itusr_admin_any",
            "itusrmod_x",
        ] {
            sql(&mut a, &format!("DROP DATABASE IF EXISTS `{db}`"));
        }
    }
    for u in ALL_ACCOUNTS {
        drop_user(u);
    }
}

#[test]
fn bad_input_is_refused_before_any_sql_naming_the_value() {
    // A dead server: anything that got as far as connecting would fail differently.
    let mut dead = Sandbox::new();
    dead.env("DJ_HOST", "127.0.0.1")
        .env("DJ_PORT", &closed_port().to_string())
        .env("DJ_USER", "root")
        .env("DJ_PASS", "");
    let long = "a".repeat(81);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["users", "add", "o'brien", "--role", "user"], "o'brien"),
        (vec!["users", "add", "a`b", "--role", "user"], "a`b"),
        (vec!["users", "add", "a@b@c", "--role", "user"], "b@c"),
        (vec!["users", "add", "50%off", "--role", "user"], "50%off"),
        (vec!["users", "add", "al ice", "--role", "user"], "al ice"),
        (vec!["users", "add", "", "--role", "user"], "''"),
        (vec!["users", "add", &long, "--role", "user"], &long),
        (vec!["users", "add", "alice", "--role", "wizard"], "wizard"),
        (vec!["users", "set-role", "alice", "superuser"], "superuser"),
        (vec!["users", "add-module", "lfp%"], "lfp%"),
        (vec!["users", "add-module", "lf_%"], "lf_%"),
        (vec!["users", "add-module", ""], "''"),
        (vec!["users", "lock", "x y"], "x y"),
        (vec!["users", "add-backup-user", "bk\"up"], "bk\"up"),
    ];
    for (args, value) in cases {
        let out = dead.run(&args);
        out.assert_code(2).assert_clean_error();
        assert!(out.stderr.contains(value), "{args:?}: {}", out.stderr);
        assert!(
            !out.stderr.contains("cannot reach"),
            "{args:?} connected first: {}",
            out.stderr
        );
    }
    // A users file with a bad entry or an unknown key.
    dead.write(
        "bad.toml",
        "[[users]]\nname = \"ok\"\nrole = \"user\"\nhots = \"%\"\n",
        0o600,
    );
    let out = dead.run(&["users", "plan", "-f", "bad.toml"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("bad.toml:4:1") && out.stderr.contains("hots"),
        "{}",
        out.stderr
    );
    dead.write(
        "bad2.toml",
        "[[users]]\nname = \"b`d\"\nrole = \"user\"\n",
        0o600,
    );
    let out = dead.run(&["users", "apply", "-f", "bad2.toml"]);
    out.assert_code(2);
    assert!(out.stderr.contains("b`d"), "{}", out.stderr);
    // An unknown key in [users] of the settings file.
    dead.write(
        "spyglass-admin.toml",
        "[users]\nshared_prefix = [\"x\"]\n",
        0o600,
    );
    let out = dead.run(&["users", "list"]);
    out.assert_code(2);
    assert!(out.stderr.contains("shared_prefix"), "{}", out.stderr);

    // MySQL's 32-character limit needs the server's flavor: checked after
    // connecting, before reading or changing anything.
    if is_mysql() {
        let name = "b".repeat(33);
        let out = Sandbox::as_root().run(&["users", "add", &name, "--role", "guest"]);
        out.assert_code(2);
        assert!(
            out.stderr.contains(&name) && out.stderr.contains("32"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn a_plan_removing_the_runners_own_admin_rights_is_refused() {
    let _roles = roles_lock();
    drop_user("itusr_selfadm");
    {
        let mut a = admin();
        sql(
            &mut a,
            "CREATE USER 'itusr_selfadm'@'%' IDENTIFIED BY 'Self-adm-1x'",
        );
        sql(
            &mut a,
            "GRANT ALL PRIVILEGES ON *.* TO 'itusr_selfadm'@'%' WITH GRANT OPTION",
        );
    }
    let sb = as_user("itusr_selfadm", "Self-adm-1x");
    // Listed as a guest: converging would revoke its global privileges.
    sb.write(
        "users.toml",
        "[[users]]\nname = \"itusr_selfadm\"\nrole = \"guest\"\n",
        0o600,
    );
    for args in [
        vec!["users", "apply", "-f", "users.toml"],
        vec!["users", "apply", "-f", "users.toml", "--dry-run"],
        vec!["users", "plan", "-f", "users.toml"],
    ] {
        let out = sb.run(&args);
        out.assert_code(2).assert_clean_error();
        assert!(
            out.stderr.contains("'itusr_selfadm'@'%'")
                && out.stderr.contains("the account running this command"),
            "{}",
            out.stderr
        );
    }
    for args in [
        vec!["users", "lock", "itusr_selfadm"],
        vec!["users", "remove", "itusr_selfadm"],
    ] {
        let out = sb.run(&args);
        out.assert_code(2);
        assert!(
            out.stderr.contains("the account running this command"),
            "{}",
            out.stderr
        );
    }
    // Nothing changed: it still logs in and still holds its privileges.
    let mut me = login("itusr_selfadm", "Self-adm-1x");
    allowed(&mut me, "CREATE DATABASE IF NOT EXISTS itusr_selfadm_x");
    allowed(&mut me, "DROP DATABASE itusr_selfadm_x");
    drop(me);
    drop_user("itusr_selfadm");
}

#[test]
fn sql_prints_and_runs_nothing() {
    // Offline, for either flavor.
    let sb = Sandbox::new();
    let out = sb.run(&[
        "users",
        "sql",
        "--flavor",
        "mariadb",
        "add",
        "itusr_sql",
        "--role",
        "user",
    ]);
    out.assert_code(0);
    assert!(
        out.stdout
            .contains("SET DEFAULT ROLE `dj_user` FOR 'itusr_sql'@'%';"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("IDENTIFIED BY <password>"),
        "{}",
        out.stdout
    );
    let out = sb.run(&[
        "users",
        "sql",
        "--flavor",
        "mysql",
        "add",
        "itusr_sql",
        "--role",
        "user",
    ]);
    assert!(
        out.stdout
            .contains("SET DEFAULT ROLE ALL TO 'itusr_sql'@'%';"),
        "{}",
        out.stdout
    );
    let out = sb.run(&["users", "sql", "--flavor", "mysql", "roles", "init"]);
    assert!(
        out.stdout
            .contains("GRANT ALL PRIVILEGES ON `common\\_%`.* TO 'dj_user'@'%';"),
        "{}",
        out.stdout
    );
    let out = sb.run(&[
        "users",
        "sql",
        "--flavor",
        "mariadb",
        "add-backup-user",
        "itusr_bk@localhost",
    ]);
    assert!(
        out.stdout
            .contains("BINLOG MONITOR, PROCESS ON *.* TO 'itusr_bk'@'localhost'"),
        "{}",
        out.stdout
    );

    // Connected: prints what differs on this server, changes nothing.
    drop_user("itusr_sqlx");
    crate::support::create_user("itusr_sqlx", "Sqlx-pw-1x", &[]);
    let root = Sandbox::as_root();
    let out = root.run(&["users", "sql", "remove", "itusr_sqlx"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("DROP USER 'itusr_sqlx'@'%';"),
        "{}",
        out.stdout
    );
    let out = root.run(&["users", "sql", "lock", "itusr_sqlx"]);
    assert!(
        out.stdout
            .contains("ALTER USER 'itusr_sqlx'@'%' ACCOUNT LOCK;"),
        "{}",
        out.stdout
    );
    login("itusr_sqlx", "Sqlx-pw-1x");
    drop_user("itusr_sqlx");
}

#[test]
fn set_password_own_when_expired_and_by_an_admin() {
    drop_user("itusr_pw");
    {
        let mut a = admin();
        sql(
            &mut a,
            "CREATE USER 'itusr_pw'@'%' IDENTIFIED BY 'First-pw-1x' PASSWORD EXPIRE",
        );
    }
    let s = server();
    let me = as_user("itusr_pw", "First-pw-1x");
    // No privileges at all, password expired: it still works.
    let out = run_stdin(&me, &["users", "set-password"], "Second-pw-2x\n");
    out.assert_code(0);
    for text in [&out.stdout, &out.stderr] {
        assert!(
            !text.contains("Second-pw-2x") && !text.contains("First-pw-1x"),
            "{text}"
        );
    }
    login("itusr_pw", "Second-pw-2x");

    // An admin sets someone else's, forcing a change at next login.
    let out = run_stdin(
        &Sandbox::as_root(),
        &["users", "set-password", "itusr_pw", "--expire"],
        "Third-pw-3x\n",
    );
    out.assert_code(0);
    assert!(!out.stdout.contains("Third-pw-3x") && !out.stderr.contains("Third-pw-3x"));
    assert!(
        out.stdout
            .contains("IDENTIFIED BY <password> PASSWORD EXPIRE"),
        "{}",
        out.stdout
    );
    let opts =
        ConnectOptions::tcp(&s.host, s.port, "itusr_pw").password(Secret::new("Third-pw-3x"));
    // Expired: the server accepts the password but lets it do nothing else.
    assert!(spyglass_db::connect(&opts).is_err());
    let me2 = as_user("itusr_pw", "Third-pw-3x");
    run_stdin(&me2, &["users", "set-password"], "Fourth-pw-4x\n").assert_code(0);
    login("itusr_pw", "Fourth-pw-4x");
    // A password with a quote and a backslash is stored exactly.
    run_stdin(
        &Sandbox::as_root(),
        &["users", "set-password", "itusr_pw"],
        "it's\\odd-5x\n",
    )
    .assert_code(0);
    login("itusr_pw", "it's\\odd-5x");
    drop_user("itusr_pw");
}

#[test]
fn backup_user_holds_exactly_what_backup_needs() {
    drop_user("itusr_bk");
    let root = Sandbox::as_root();
    let out = run_stdin(
        &root,
        &["users", "add-backup-user", "itusr_bk", "--password-stdin"],
        "Backup-pw-1x\n",
    );
    out.assert_code(0);
    // Idempotent.
    let out = root.run(&["users", "add-backup-user", "itusr_bk"]);
    out.assert_code(0);
    assert!(out.stdout.contains("nothing to change"), "{}", out.stdout);
    // doctor, as that account, finds the backup family complete (nothing
    // missing, not even recommended privileges) and user admin missing.
    let sb = as_user("itusr_bk", "Backup-pw-1x");
    let out = sb.run(&["doctor", "--json"]);
    let v = out.json();
    let fam = |name: &str| {
        v["privileges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["family"] == name)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(fam("backup")["status"], "ok", "{v:#}");
    assert_eq!(fam("user_admin")["status"], "missing", "{v:#}");

    // Named in the settings, audit checks it against what backups need, not as a lab member.
    let audit_bk = |root: &Sandbox| {
        let out = root.run(&["users", "audit", "itusr_bk", "--json", "--no-login-check"]);
        assert!(out.code == 0 || out.code == 1, "{out:?}");
        out.json()["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["subject"] == "'itusr_bk'@'%'")
            .map(|f| {
                (
                    f["kind"].as_str().unwrap().to_owned(),
                    f["message"].as_str().unwrap().to_owned(),
                    f["fix"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    let unnamed = audit_bk(&root);
    assert!(
        unnamed.iter().any(|(k, _, _)| k == "no-role"),
        "{unnamed:?}"
    );
    root.write(
        "spyglass-admin.toml",
        "[users]\nread_scope = \"all\"\n[backup]\naccount = \"itusr_bk@%\"\n",
        0o600,
    );
    assert_eq!(audit_bk(&root), Vec::<(String, String, String)>::new());
    {
        let mut a = admin();
        sql(&mut a, "REVOKE PROCESS ON *.* FROM 'itusr_bk'@'%'");
        sql(&mut a, "GRANT FILE ON *.* TO 'itusr_bk'@'%'");
    }
    let f = audit_bk(&root);
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(
        f.iter().all(|(k, _, fix)| k == "backup-account-privileges"
            && fix == "spyglass-admin users add-backup-user itusr_bk@%"),
        "{f:?}"
    );
    assert!(
        f.iter().any(|(_, m, _)| m.contains("lacks PROCESS")),
        "{f:?}"
    );
    assert!(
        f.iter().any(|(_, m, _)| m.contains("holds FILE beyond")),
        "{f:?}"
    );
    root.run(&["users", "add-backup-user", "itusr_bk"])
        .assert_code(0);
    assert_eq!(audit_bk(&root), Vec::<(String, String, String)>::new());
    {
        let mut a = admin();
        sql(
            &mut a,
            "GRANT ALL PRIVILEGES ON `lfp\\_%`.* TO 'itusr_bk'@'%'",
        );
        sql(
            &mut a,
            &format!("GRANT {} TO 'itusr_bk'@'%'", role_to("dj_guest")),
        );
    }
    let f = audit_bk(&root);
    assert!(
        f.iter()
            .any(|(_, m, _)| m.contains("holds the roles dj_guest")),
        "{f:?}"
    );
    assert!(f.iter().any(|(_, m, _)| m.contains("lfp\\_%")), "{f:?}");
    root.run(&["users", "add-backup-user", "itusr_bk"])
        .assert_code(0);
    assert_eq!(audit_bk(&root), Vec::<(String, String, String)>::new());
    // Never the server's own accounts.
    let out = root.run(&["users", "add-backup-user", "root@localhost"]);
    out.assert_code(2).assert_clean_error();
    assert!(out.stderr.contains("'root'"), "{}", out.stderr);
    drop_user("itusr_bk");
}

fn account_exists(user: &str, host: &str) -> bool {
    let mut a = admin();
    let n: Option<u64> = a
        .conn()
        .exec_first(
            "SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = ?",
            (user, host),
        )
        .unwrap();
    n.unwrap_or(0) > 0
}

#[test]
fn dangerous_but_valid_names_are_refused_before_any_statement() {
    let _roles = roles_lock();
    let sb = Sandbox::as_root();
    sb.run(&["users", "roles", "init"]).assert_code(0);
    let mariadb = !is_mysql();
    let mut names: Vec<String> = [
        "root",
        "ROOT",
        "PUBLIC",
        "mysql.sys",
        "mysql.session",
        "mariadb.sys",
        "debian-sys-maint",
        "dj_admin",
        "dj_user",
        "dj_guest",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // One character past the limit: MariaDB's own-schema pattern `name\_%`
    // (64 characters), MySQL's 32-character user names.
    let limit = if mariadb { 61 } else { 32 };
    names.push("a".repeat(limit + 1));
    if !is_mysql() {
        // 40 characters with 20 underscores: `a\_a\_...\_%` is 63 + ... > 64.
        names.push("a_".repeat(21));
    } else {
        // 32 characters, 31 underscores: the pattern is 66 characters.
        names.push(format!("a{}", "_".repeat(31)));
    }
    for name in &names {
        let out = sb.run(&[
            "users",
            "add",
            name,
            "--role",
            "user",
            "--temp-password",
            "Not-used-1x",
        ]);
        out.assert_code(2).assert_clean_error();
        assert!(out.stderr.contains(name.as_str()), "{name}: {}", out.stderr);
        if name.starts_with("dj_") {
            // A role (on MySQL an account row itself): still no login with that password.
            let s = server();
            let opts = ConnectOptions::tcp(&s.host, s.port, name.as_str())
                .password(Secret::new("Not-used-1x"));
            assert!(spyglass_db::connect(&opts).is_err(), "{name} can log in");
        } else {
            assert!(!account_exists(name, "%"), "{name} was created");
        }
    }
    // Exactly at the limit works, and the user can create its own schema.
    let at_limit = format!("it{}", "a".repeat(limit - 2));
    drop_user(&at_limit);
    let out = sb.run(&[
        "users",
        "add",
        &at_limit,
        "--role",
        "user",
        "--temp-password",
        "Limit-pw-1x",
    ]);
    out.assert_code(0);
    // The new user's first command is printed.
    assert!(
        out.stdout.contains(&format!(
            "DJ_USER={at_limit} spyglass-admin users set-password"
        )),
        "{}",
        out.stdout
    );
    assert!(!out.stderr.contains("DataJoint"), "{}", out.stderr);
    let mut s = login(&at_limit, "Limit-pw-1x");
    let own = format!("{at_limit}_x");
    assert!(own.len() <= 64);
    allowed(&mut s, &format!("CREATE DATABASE `{own}`"));
    allowed(&mut s, &format!("CREATE TABLE `{own}`.t (id INT)"));
    drop(s);
    {
        let mut a = admin();
        sql(&mut a, &format!("DROP DATABASE `{own}`"));
    }
    drop_user(&at_limit);

    // set-role never makes the server's own accounts lab members.
    let out = sb.run(&["users", "set-role", "root@localhost", "guest"]);
    out.assert_code(2).assert_clean_error();
    assert!(out.stderr.contains("'root'"), "{}", out.stderr);
    let mut a = admin();
    allowed(&mut a, "SELECT COUNT(*) FROM mysql.user");
    drop(a);
    // A role's key is not a role's name: a user may be called "user".
    drop_user("user");
    sb.run(&[
        "users",
        "add",
        "user",
        "--role",
        "guest",
        "--temp-password",
        "Key-pw-1x",
    ])
    .assert_code(0);
    drop_user("user");
    // A name an account of another kind already has (a service account at localhost).
    {
        let mut a = admin();
        sql(&mut a, "DROP USER IF EXISTS 'itdng_svc'@'localhost'");
        sql(
            &mut a,
            "CREATE USER 'itdng_svc'@'localhost' IDENTIFIED BY 'Svc-pw-1x'",
        );
        sql(&mut a, "GRANT RELOAD ON *.* TO 'itdng_svc'@'localhost'");
    }
    let out = sb.run(&["users", "add", "itdng_svc", "--role", "guest"]);
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains("'itdng_svc'@'localhost'"),
        "{}",
        out.stderr
    );
    assert!(!account_exists("itdng_svc", "%"));
    {
        let mut a = admin();
        sql(&mut a, "DROP USER 'itdng_svc'@'localhost'");
    }

    // add never changes an existing account: a different role is refused, pointing to set-role.
    drop_user("itdng_guest");
    sb.run(&[
        "users",
        "add",
        "itdng_guest",
        "--role",
        "guest",
        "--temp-password",
        "Guest-pw-1x",
    ])
    .assert_code(0);
    let out = sb.run(&["users", "add", "itdng_guest", "--role", "admin"]);
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains("set-role itdng_guest"),
        "{}",
        out.stderr
    );
    let mut g = login("itdng_guest", "Guest-pw-1x");
    let role: Option<String> = g.conn().query_first("SELECT CURRENT_ROLE()").unwrap();
    assert!(role.unwrap_or_default().contains("dj_guest"));
    denied(&mut g, "CREATE DATABASE itdng_guest_x");
    drop(g);
    drop_user("itdng_guest");
}

/// Logs in from 127.0.0.2 (a loopback address of its own), so an anonymous
/// account for that host shadows only this test's logins.
fn login_from(ip: &str, user: &str, password: &str) -> Result<(), String> {
    use spyglass_db::mysql::{Conn, OptsBuilder};
    let s = server();
    let opts = OptsBuilder::new()
        .ip_or_hostname(Some(s.host.clone()))
        .tcp_port(s.port)
        .user(Some(user))
        .pass(Some(password))
        .bind_address(Some(std::net::SocketAddr::new(ip.parse().unwrap(), 0)));
    Conn::new(opts).map(|_| ()).map_err(|e| e.to_string())
}

#[test]
fn an_anonymous_account_that_shadows_a_new_user_is_named() {
    let _roles = roles_lock();
    let sb = Sandbox::as_root();
    drop_user("itanon_u");
    {
        let mut a = admin();
        sql(&mut a, "DROP USER IF EXISTS ''@'127.0.0.2'");
    }
    sb.run(&["users", "roles", "init"]).assert_code(0);
    {
        let mut a = admin();
        sql(&mut a, "CREATE USER ''@'127.0.0.2'");
    }
    let out = sb.run(&[
        "users",
        "add",
        "itanon_u",
        "--role",
        "guest",
        "--temp-password",
        "Anon-pw-1x",
    ]);
    out.assert_code(0);
    assert!(
        out.stderr
            .contains("anonymous account ''@'127.0.0.2' shadows 'itanon_u'@'%'"),
        "{}",
        out.stderr
    );
    // What the warning says is what happens.
    let e = login_from("127.0.0.2", "itanon_u", "Anon-pw-1x").unwrap_err();
    assert!(e.contains("Access denied"), "{e}");
    let out = sb.run(&["users", "audit", "--json", "--no-login-check"]);
    let v = out.json();
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["subject"] == "''@'127.0.0.2'")
        .cloned()
        .unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(f["kind"], "anonymous-account");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("blocks named accounts"),
        "{f}"
    );
    {
        let mut a = admin();
        sql(&mut a, "DROP USER ''@'127.0.0.2'");
    }
    login_from("127.0.0.2", "itanon_u", "Anon-pw-1x").unwrap();
    drop_user("itanon_u");
}

#[test]
fn audit_plan_and_apply_agree_on_every_drift() {
    let _roles = roles_lock();
    let sb = Sandbox::as_root();
    sb.write(
        "spyglass-admin.toml",
        "[users]\nread_scope = \"all\"\n",
        0o600,
    );
    for u in ["itdrift_a", "itdrift_b"] {
        drop_user(u);
    }
    {
        let mut a = admin();
        sql(&mut a, "DROP DATABASE IF EXISTS itdrift_a_s");
    }
    sb.write(
        "users.toml",
        "[[users]]\nname = \"itdrift_a\"\nrole = \"user\"\n\n[[users]]\nname = \"itdrift_b\"\nrole = \"collab\"\n",
        0o600,
    );
    sb.run(&["users", "apply", "-f", "users.toml"])
        .assert_code(0);
    sb.run(&["users", "plan", "-f", "users.toml"])
        .assert_code(0);
    let table = a_common_table();
    let mysql = is_mysql();
    {
        let mut a = admin();
        sql(&mut a, "CREATE DATABASE itdrift_a_s");
        sql(
            &mut a,
            "CREATE TABLE itdrift_a_s.t (id INT PRIMARY KEY, c INT)",
        );
        sql(&mut a, "CREATE PROCEDURE itdrift_a_s.p() SELECT 1");
        sql(&mut a, "GRANT DROP ON `lfp\\_%`.* TO 'itdrift_a'@'%'");
        sql(&mut a, "GRANT RELOAD ON *.* TO 'itdrift_a'@'%'");
        sql(
            &mut a,
            &format!("GRANT SELECT ON common_lab.`{table}` TO 'itdrift_a'@'%'"),
        );
        sql(&mut a, "GRANT CREATE USER ON *.* TO 'itdrift_b'@'%'");
        sql(
            &mut a,
            "GRANT UPDATE (c) ON itdrift_a_s.t TO 'itdrift_b'@'%'",
        );
        sql(
            &mut a,
            "GRANT EXECUTE ON PROCEDURE itdrift_a_s.p TO 'itdrift_b'@'%'",
        );
        sql(
            &mut a,
            &format!(
                "GRANT {} TO 'itdrift_a'@'%'",
                if mysql { "'dj_admin'@'%'" } else { "dj_admin" }
            ),
        );
        sql(
            &mut a,
            "REVOKE ALL PRIVILEGES ON `itdrift\\_b\\_%`.* FROM 'itdrift_b'@'%'",
        );
        // Role drift: a table grant to a role, and a role not active at login.
        sql(
            &mut a,
            &format!("GRANT SELECT ON itdrift_a_s.t TO {}", role_to("dj_guest")),
        );
        if mysql {
            sql(&mut a, "SET DEFAULT ROLE NONE TO 'itdrift_b'@'%'");
        } else {
            sql(&mut a, "SET DEFAULT ROLE NONE FOR 'itdrift_b'@'%'");
        }
    }
    let out = sb.run(&[
        "users",
        "audit",
        "itdrift_a",
        "itdrift_b",
        "--json",
        "--no-login-check",
    ]);
    out.assert_code(1);
    let v = out.json();
    let mine: Vec<Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            let s = f["subject"].as_str().unwrap();
            s.starts_with("'itdrift") || s == "role dj_guest"
        })
        .cloned()
        .collect();
    let has = |subject: &str, kind: &str, text: &str| {
        mine.iter().any(|f| {
            f["subject"] == subject
                && f["kind"] == kind
                && (f["message"].as_str().unwrap().contains(text)
                    || f["fix"].as_str().unwrap().contains(text))
        })
    };
    let a = "'itdrift_a'@'%'";
    let b = "'itdrift_b'@'%'";
    for (subject, kind, text) in [
        (a, "direct-grants", "lfp\\_%"),
        (a, "direct-grants", "RELOAD"),
        (a, "direct-grants", &format!("common_lab`.`{table}`")),
        (a, "several-roles", "set-role itdrift_a user"),
        (b, "administrator-privileges", "CREATE USER"),
        (b, "direct-grants", "UPDATE (`c`)"),
        (b, "direct-grants", "PROCEDURE `itdrift_a_s`.`p`"),
        (b, "own-prefix-missing", "set-role itdrift_b collab"),
        (b, "role-not-active", "set-role itdrift_b collab"),
        ("role dj_guest", "role-grants-differ", "`itdrift_a_s`.`t`"),
    ] {
        assert!(
            has(subject, kind, text),
            "expected {kind} on {subject} mentioning {text}: {mine:#?}"
        );
    }
    let high_b = mine
        .iter()
        .find(|f| f["kind"] == "administrator-privileges")
        .unwrap();
    assert_eq!(high_b["severity"], "high");
    // plan shows a statement for every finding; apply runs them; then all three agree: nothing left.
    let out = sb.run(&["users", "plan", "-f", "users.toml", "--json"]);
    let planned: Vec<String> = out.json()["planned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    for want in [
        "REVOKE DROP ON `lfp\\_%`.* FROM 'itdrift_a'@'%'",
        &format!("REVOKE SELECT ON `common_lab`.`{table}` FROM 'itdrift_a'@'%'"),
        "REVOKE UPDATE (`c`) ON `itdrift_a_s`.`t` FROM 'itdrift_b'@'%'",
        "REVOKE EXECUTE ON PROCEDURE `itdrift_a_s`.`p` FROM 'itdrift_b'@'%'",
        &format!(
            "REVOKE SELECT ON `itdrift_a_s`.`t` FROM {}",
            if mysql {
                "'dj_guest'@'%'"
            } else {
                "`dj_guest`"
            }
        ),
    ] {
        assert!(
            planned.iter().any(|p| p == want),
            "{want} not in {planned:#?}"
        );
    }
    assert!(
        planned
            .iter()
            .any(|p| p.starts_with("REVOKE") && p.contains("RELOAD") && p.contains("itdrift_a")),
        "{planned:#?}"
    );
    assert!(
        planned.iter().any(|p| p.starts_with("REVOKE")
            && p.contains("CREATE USER")
            && p.contains("itdrift_b")),
        "{planned:#?}"
    );
    assert!(
        planned
            .iter()
            .any(|p| p.starts_with("REVOKE") && p.contains("dj_admin") && p.contains("itdrift_a")),
        "{planned:#?}"
    );
    out.assert_code(1);
    sb.run(&["users", "apply", "-f", "users.toml"])
        .assert_code(0);
    sb.run(&["users", "plan", "-f", "users.toml"])
        .assert_code(0);
    let out = sb.run(&[
        "users",
        "audit",
        "itdrift_a",
        "itdrift_b",
        "--json",
        "--no-login-check",
    ]);
    let v = out.json();
    assert!(
        v["findings"].as_array().unwrap().iter().all(|f| {
            let s = f["subject"].as_str().unwrap();
            !s.starts_with("'itdrift") && s != "role dj_guest"
        }),
        "{v:#}"
    );
    // From the outside: b may no longer execute the procedure or create users.
    let mut admin_s = admin();
    sql(
        &mut admin_s,
        "ALTER USER 'itdrift_b'@'%' IDENTIFIED BY 'Drift-pw-1x'",
    );
    let mut bs = login("itdrift_b", "Drift-pw-1x");
    assert!(try_sql(&mut bs, "CALL itdrift_a_s.p()").is_err());
    assert!(try_sql(&mut bs, "CREATE USER 'itdrift_c'@'%'").is_err());
    allowed(&mut bs, "CREATE DATABASE itdrift_b_x");
    drop(bs);
    sql(&mut admin_s, "DROP DATABASE itdrift_b_x");
    sql(&mut admin_s, "DROP DATABASE itdrift_a_s");
    for u in ["itdrift_a", "itdrift_b"] {
        drop_user(u);
    }
}

/// `users add` as an account that cannot finish the plan: refused before the
/// first statement, the missing privilege named, no account and no password.
#[track_caller]
fn refused_before_any_statement(out: &crate::support::Outcome, lacks: &[&str], new_user: &str) {
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains("refusing to run:") && out.stderr.contains("nothing was changed"),
        "{}",
        out.stderr
    );
    for l in lacks {
        assert!(out.stderr.contains(l), "should name {l}:\n{}", out.stderr);
    }
    assert!(!out.stderr.contains("applied:"), "{}", out.stderr);
    assert!(!out.stdout.contains("applied:"), "{}", out.stdout);
    assert!(!out.stdout.contains("password for"), "{}", out.stdout);
    assert!(!out.stderr.contains("password for"), "{}", out.stderr);
    assert!(
        !account_exists(new_user, "%"),
        "{new_user} was created although the command was refused"
    );
}

#[test]
fn a_dj_admin_is_refused_before_any_statement() {
    let _roles = roles_lock();
    let root = Sandbox::as_root();
    root.run(&["users", "roles", "init"]).assert_code(0);
    for u in ["itpre_adm", "itpre_erin", "itpre_old"] {
        drop_user(u);
    }
    run_stdin(
        &root,
        &[
            "users",
            "add",
            "itpre_adm",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "Adm-pw-1x\n",
    )
    .assert_code(0);
    // dj_admin holds ALL on `%`.*: it may write the mysql schema (so CREATE
    // USER would run) but holds no GRANT OPTION and no role's ADMIN OPTION.
    let adm = as_user("itpre_adm", "Adm-pw-1x");
    let out = adm.run(&["users", "add", "itpre_erin", "--role", "user"]);
    refused_before_any_statement(
        &out,
        &["'itpre_adm'@'%' lacks", "GRANT OPTION", "dj_user"],
        "itpre_erin",
    );
    assert!(
        out.stderr.contains("not a server administrator"),
        "{}",
        out.stderr
    );
    // --json: the same refusal, nothing on stdout that looks like a report.
    let out = adm.run(&["users", "add", "itpre_erin", "--role", "guest", "--json"]);
    refused_before_any_statement(&out, &["GRANT OPTION"], "itpre_erin");
    assert!(!out.stdout.contains("new_passwords"), "{}", out.stdout);
    // A change the account can make entirely still runs: the check is not a blanket refusal.
    run_stdin(
        &root,
        &[
            "users",
            "add",
            "itpre_old",
            "--role",
            "guest",
            "--password-stdin",
        ],
        "Old-pw-1x\n",
    )
    .assert_code(0);
    adm.run(&["users", "lock", "itpre_old"]).assert_code(0);
    let mut a = admin();
    let locked: Option<String> = a
        .conn()
        .query_first(if is_mysql() {
            "SELECT account_locked FROM mysql.user WHERE User = 'itpre_old'"
        } else {
            "SELECT JSON_VALUE(Priv, '$.account_locked') FROM mysql.global_priv WHERE User = 'itpre_old'"
        })
        .unwrap();
    assert!(
        matches!(locked.as_deref(), Some("Y") | Some("true") | Some("1")),
        "{locked:?}"
    );
    // Root runs the same add to the end.
    root.run(&["users", "add", "itpre_erin", "--role", "user"])
        .assert_code(0);
    assert!(account_exists("itpre_erin", "%"));
    for u in ["itpre_adm", "itpre_erin", "itpre_old"] {
        drop_user(u);
    }
}

#[test]
fn an_account_manager_is_refused_for_a_role_it_cannot_hand_out() {
    let _roles = roles_lock();
    let root = Sandbox::as_root();
    root.run(&["users", "roles", "init"]).assert_code(0);
    for u in ["itundo_mgr", "itundo_new", "itundo_old", "itundo_ok"] {
        drop_user(u);
    }
    let mysql = is_mysql();
    let guest = if mysql { "'dj_guest'@'%'" } else { "dj_guest" };
    {
        // An account manager who may create accounts and hand out dj_guest, not dj_user.
        let mut a = admin();
        sql(
            &mut a,
            "CREATE USER 'itundo_mgr'@'%' IDENTIFIED BY 'Mgr-pw-1x'",
        );
        sql(&mut a, "GRANT CREATE USER ON *.* TO 'itundo_mgr'@'%'");
        sql(
            &mut a,
            "GRANT SELECT, UPDATE ON mysql.* TO 'itundo_mgr'@'%'",
        );
        sql(
            &mut a,
            &format!("GRANT {guest} TO 'itundo_mgr'@'%' WITH ADMIN OPTION"),
        );
    }
    let mgr = as_user("itundo_mgr", "Mgr-pw-1x");
    // add with dj_user: refused before CREATE USER, naming the role.
    let out = mgr.run(&["users", "add", "itundo_new", "--role", "user"]);
    refused_before_any_statement(&out, &["ADMIN OPTION", "role dj_user"], "itundo_new");
    // add with dj_guest (no own prefix): everything it needs is held, it runs.
    mgr.run(&["users", "add", "itundo_ok", "--role", "guest"])
        .assert_code(0);
    assert!(account_exists("itundo_ok", "%"));
    // set-role to dj_user: refused, the account keeps dj_guest active at login.
    run_stdin(
        &root,
        &[
            "users",
            "add",
            "itundo_old",
            "--role",
            "guest",
            "--password-stdin",
        ],
        "Old-pw-1x\n",
    )
    .assert_code(0);
    let out = mgr.run(&["users", "set-role", "itundo_old", "user"]);
    out.assert_code(2).assert_clean_error();
    assert!(out.stderr.contains("role dj_user"), "{}", out.stderr);
    assert!(!out.stdout.contains("applied:"), "{}", out.stdout);
    let mut s = login("itundo_old", "Old-pw-1x");
    let role: Option<String> = s.conn().query_first("SELECT CURRENT_ROLE()").unwrap();
    assert!(
        role.as_deref().unwrap_or_default().contains("dj_guest"),
        "{role:?}"
    );
    allowed(
        &mut s,
        &format!("SELECT COUNT(*) FROM common_lab.`{}`", a_common_table()),
    );
    drop(s);
    for u in ["itundo_mgr", "itundo_old", "itundo_ok"] {
        drop_user(u);
    }
}

#[test]
fn read_scope_lab_keeps_mysql_unreadable_and_members_working() {
    let _roles = roles_lock();
    let sb = Sandbox::as_root();
    sb.write(
        "spyglass-admin.toml",
        "[users]\nread_scope = \"lab\"\n",
        0o600,
    );
    for u in ["itlab_u", "itlab_g"] {
        drop_user(u);
    }
    {
        let mut a = admin();
        sql(&mut a, "DROP DATABASE IF EXISTS itlab_u_data");
        sql(&mut a, "DROP DATABASE IF EXISTS lfp_itlab");
        sql(&mut a, "CREATE DATABASE lfp_itlab");
        sql(&mut a, "CREATE TABLE lfp_itlab.t (id INT PRIMARY KEY)");
    }
    sb.run(&["users", "roles", "init"]).assert_code(0);
    sb.run(&[
        "users",
        "add",
        "itlab_u",
        "--role",
        "user",
        "--temp-password",
        "Lab-pw-1x",
    ])
    .assert_code(0);
    sb.run(&[
        "users",
        "add",
        "itlab_g",
        "--role",
        "guest",
        "--temp-password",
        "Lab-pw-2x",
    ])
    .assert_code(0);
    let table = a_common_table();
    // The member works as before: own schema, shared prefix.
    let mut u = login("itlab_u", "Lab-pw-1x");
    allowed(&mut u, "CREATE DATABASE itlab_u_data");
    allowed(&mut u, "CREATE TABLE itlab_u_data.t (id INT PRIMARY KEY)");
    allowed(&mut u, "INSERT INTO itlab_u_data.t VALUES (1)");
    allowed(&mut u, "INSERT INTO lfp_itlab.t VALUES (1)");
    allowed(
        &mut u,
        &format!("SELECT COUNT(*) FROM common_lab.`{table}`"),
    );
    drop(u);
    // The guest reads shared and members' schemas, not mysql.
    let mut g = login("itlab_g", "Lab-pw-2x");
    allowed(
        &mut g,
        &format!("SELECT COUNT(*) FROM common_lab.`{table}`"),
    );
    allowed(&mut g, "SELECT COUNT(*) FROM itlab_u_data.t");
    allowed(&mut g, "SELECT COUNT(*) FROM lfp_itlab.t");
    denied(&mut g, "SELECT COUNT(*) FROM mysql.user");
    denied(&mut g, "INSERT INTO lfp_itlab.t VALUES (2)");
    drop(g);
    let out = sb.run(&[
        "users",
        "audit",
        "itlab_u",
        "itlab_g",
        "--json",
        "--no-login-check",
    ]);
    let v = out.json();
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["kind"] != "system-schema-readable"
                && !f["subject"].as_str().unwrap().contains("itlab")),
        "{v:#}"
    );
    // Back to Spyglass's default for the other tests: every schema readable.
    sb.write(
        "spyglass-admin.toml",
        "[users]\nread_scope = \"all\"\n",
        0o600,
    );
    sb.run(&["users", "roles", "init"]).assert_code(0);
    let mut g = login("itlab_g", "Lab-pw-2x");
    allowed(&mut g, "SELECT COUNT(*) FROM mysql.user");
    drop(g);
    {
        let mut a = admin();
        sql(&mut a, "DROP DATABASE itlab_u_data");
        sql(&mut a, "DROP DATABASE lfp_itlab");
    }
    for u in ["itlab_u", "itlab_g"] {
        drop_user(u);
    }
}

/// Runs an audit fix as a lab admin would: our command, or the SQL as root.
fn run_fix(sb: &Sandbox, fix: &str) {
    if let Some(rest) = fix.strip_prefix("spyglass-admin ") {
        let cmd = rest.split(" (").next().unwrap();
        let args: Vec<&str> = cmd.split_whitespace().collect();
        sb.run(&args).assert_code(0);
    } else {
        let mut a = admin();
        sql(&mut a, fix);
    }
}

#[test]
fn a_spyglass_made_state_is_fixed_by_running_the_fixes_in_listed_order() {
    let _roles = roles_lock();
    let sb = Sandbox::as_root();
    sb.write(
        "spyglass-admin.toml",
        "[users]\nread_scope = \"all\"\n",
        0o600,
    );
    drop_user("itspy_u");
    for r in ["dj_guest", "dj_collab", "dj_user", "dj_admin"] {
        drop_role(r);
    }
    let mysql = is_mysql();
    let role = |r: &str| {
        if mysql {
            format!("'{r}'@'%'")
        } else {
            r.to_owned()
        }
    };
    {
        // What Spyglass 0.6.0's DatabaseSettings runs (abridged to two shared prefixes).
        let mut a = admin();
        for r in ["dj_guest", "dj_collab", "dj_user", "dj_admin"] {
            sql(&mut a, &format!("CREATE ROLE {}", role(r)));
        }
        sql(
            &mut a,
            &format!("GRANT SELECT ON `%`.* TO {}", role("dj_guest")),
        );
        sql(
            &mut a,
            &format!("GRANT SELECT ON `%`.* TO {}", role("dj_collab")),
        );
        sql(
            &mut a,
            &format!("GRANT SELECT ON `%`.* TO {}", role("dj_user")),
        );
        for p in ["common", "lfp"] {
            sql(
                &mut a,
                &format!("GRANT ALL PRIVILEGES ON `{p}\\_%`.* TO {}", role("dj_user")),
            );
        }
        sql(
            &mut a,
            &format!("GRANT ALL PRIVILEGES ON `%`.* TO {}", role("dj_admin")),
        );
        sql(&mut a, "CREATE USER 'itspy_u'@'%' IDENTIFIED BY 'temppass'");
        sql(
            &mut a,
            &format!("GRANT {} TO 'itspy_u'@'%'", role("dj_user")),
        );
        sql(
            &mut a,
            "GRANT ALL PRIVILEGES ON `itspy\\_u\\_%`.* TO 'itspy_u'@'%'",
        );
    }
    let out = sb.run(&["users", "audit", "itspy_u", "--json", "--no-login-check"]);
    out.assert_code(1);
    let v = out.json();
    let fixes: Vec<String> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fix"].as_str().unwrap().to_owned())
        .collect();
    let init = fixes
        .iter()
        .position(|f| f == "spyglass-admin users roles init")
        .expect("roles init is a fix");
    let set_role = fixes
        .iter()
        .position(|f| f.contains("set-role itspy_u"))
        .expect("set-role is a fix");
    assert!(init < set_role, "roles init must come first: {fixes:#?}");
    let first = &v["findings"][0];
    assert_eq!(first["severity"], "high", "{v:#}");
    let mut done = Vec::new();
    for f in &fixes {
        if !done.contains(f) {
            run_fix(&sb, f);
            done.push(f.clone());
        }
    }
    let mut u = login("itspy_u", "temppass");
    let r: Option<String> = u.conn().query_first("SELECT CURRENT_ROLE()").unwrap();
    assert!(r.unwrap_or_default().contains("dj_user"));
    allowed(&mut u, "CREATE DATABASE itspy_u_x");
    allowed(&mut u, "CREATE TABLE itspy_u_x.t (id INT)");
    allowed(&mut u, "CREATE DATABASE figurl_itspy");
    allowed(&mut u, "DROP DATABASE figurl_itspy");
    drop(u);
    let out = sb.run(&["users", "audit", "itspy_u", "--json", "--no-login-check"]);
    out.assert_code(0);
    {
        let mut a = admin();
        sql(&mut a, "DROP DATABASE itspy_u_x");
    }
    drop_user("itspy_u");
}

#[test]
fn an_account_at_127_0_0_1_is_this_machine_for_the_audit() {
    let _roles = roles_lock();
    let root = Sandbox::as_root();
    let mut a = admin();
    sql(&mut a, "DROP USER IF EXISTS 'itloop_bob'@'127.0.0.1'");
    sql(
        &mut a,
        "CREATE USER 'itloop_bob'@'127.0.0.1' IDENTIFIED BY 'temppass'",
    );
    // The test connects over TCP to 127.0.0.1: the server calls that client
    // `localhost` (or 127.0.0.1), and the account's host is this machine either way.
    let out = root.run(&["users", "audit", "itloop_bob", "--json"]);
    assert!(out.code == 0 || out.code == 1, "{out:?}");
    assert!(
        !out.stdout.contains("does not match this machine"),
        "{}",
        out.stdout
    );
    let v = out.json();
    assert!(
        finding_kinds(&v, "'itloop_bob'@'127.0.0.1'")
            .iter()
            .any(|k| k == "temporary-password"),
        "the temporary password of 'itloop_bob'@'127.0.0.1' is tried and found: {v:#}"
    );
    sql(&mut a, "DROP USER IF EXISTS 'itloop_bob'@'127.0.0.1'");
}
