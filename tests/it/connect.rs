//! The connection library against the real server.

use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::{quote, ConnectOptions, DbError, Flavor, Secret, TlsMode};

use crate::support::{self, admin, closed_port, create_user, server};

#[test]
fn detects_the_flavor_the_xtask_started() {
    let s = server();
    let mut session = admin();
    let info = session.server().clone();
    let want = match s.flavor.as_str() {
        "mariadb" => Flavor::Mariadb,
        "mysql" => Flavor::Mysql,
        other => panic!("unknown flavor {other}"),
    };
    assert_eq!(info.flavor, want, "{info:?}");
    // The version we parsed matches what the server says, read independently.
    let v: String = session
        .conn()
        .query_first("SELECT VERSION()")
        .unwrap()
        .unwrap();
    assert!(
        v.starts_with(&info.version.to_string()),
        "{v} vs {}",
        info.version
    );
    assert!(info.has_roles());
    // Sessions talk utf8mb4.
    let cs: String = session
        .conn()
        .query_first("SELECT @@character_set_client")
        .unwrap()
        .unwrap();
    assert_eq!(cs, "utf8mb4");
}

#[test]
fn tls_reported_matches_the_session_status() {
    let s = server();
    let opts = ConnectOptions::tcp(&s.host, s.port, &s.user).password(Secret::new(""));
    let mut session = spyglass_db::connect(&opts).unwrap();
    let cipher: Option<(String, String)> = session
        .conn()
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .unwrap();
    let encrypted = cipher.is_some_and(|(_, c)| !c.is_empty());
    assert_eq!(session.tls(), encrypted);
    // Disable never encrypts.
    let mut plain = spyglass_db::connect(&opts.clone().tls(TlsMode::Disable)).unwrap();
    assert!(!plain.tls());
    let cipher: Option<(String, String)> = plain
        .conn()
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .unwrap();
    assert!(cipher.is_none_or(|(_, c)| c.is_empty()));
    // Require fails clearly on a server without TLS, and encrypts on one with it.
    match spyglass_db::connect(&opts.clone().tls(TlsMode::Require)) {
        Ok(s) => assert!(s.tls(), "Require must not give a plain connection"),
        Err(DbError::TlsRequired { server, .. }) => assert!(server.contains(&s.port.to_string())),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[test]
fn wrong_password_is_access_denied_naming_user_and_server() {
    create_user("it_conn_pw", "right-pw-1", &[]);
    let s = server();
    let opts =
        ConnectOptions::tcp(&s.host, s.port, "it_conn_pw").password(Secret::new("wrong-pw-1"));
    let err = spyglass_db::connect(&opts).unwrap_err();
    assert!(matches!(err, DbError::AccessDenied { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("it_conn_pw") && msg.contains(&format!("{}:{}", s.host, s.port)),
        "{msg}"
    );
    assert!(!format!("{err:?}").contains("wrong-pw-1"));
    let ok = ConnectOptions::tcp(&s.host, s.port, "it_conn_pw").password(Secret::new("right-pw-1"));
    let mut session = spyglass_db::connect(&ok).unwrap();
    assert_eq!(session.current_user().unwrap(), "it_conn_pw@%");
}

#[test]
fn unreachable_port_is_named() {
    let s = server();
    let port = closed_port();
    let err = spyglass_db::connect(&ConnectOptions::tcp(&s.host, port, "root")).unwrap_err();
    assert!(matches!(err, DbError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("{}:{port}", s.host)));
}

#[test]
fn quoting_round_trips_through_the_server() {
    let mut a = admin();
    let db = "it_quote `odd` db#~";
    support::sql(
        &mut a,
        &format!("DROP DATABASE IF EXISTS {}", quote::ident(db)),
    );
    support::sql(&mut a, &format!("CREATE DATABASE {}", quote::ident(db)));
    support::sql(
        &mut a,
        &format!(
            "CREATE TABLE {} (v varchar(100) CHARACTER SET utf8mb4)",
            quote::qualified(db, "t`1 ~x")
        ),
    );
    let nasty = "it's \\ \"q\" \0 nul \n\r\x1a 🐭";
    support::sql(
        &mut a,
        &format!(
            "INSERT INTO {} VALUES ({})",
            quote::qualified(db, "t`1 ~x"),
            quote::string(nasty)
        ),
    );
    let back: String = a
        .conn()
        .query_first(format!("SELECT v FROM {}", quote::qualified(db, "t`1 ~x")))
        .unwrap()
        .unwrap();
    assert_eq!(back, nasty);
    let names: Vec<String> = a.conn().query("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'it\\_quote%'").unwrap();
    assert_eq!(names, vec![db.to_owned()]);
    support::sql(&mut a, &format!("DROP DATABASE {}", quote::ident(db)));
}

/// `DJ_PASS` silently overriding the DataJoint file was the trap: a refused
/// login names where its password came from (and what that overrode),
/// never the password, and `doctor` shows every setting's source although
/// the login failed.
#[test]
fn a_refused_login_names_where_the_password_came_from() {
    use crate::support::{create_user, dj_config, Sandbox};
    create_user("it_conn_src", "Right-pw-7", &[]);
    let mut sb = Sandbox::new();
    let cfg = sb.write(
        "dj_local_conf.json",
        &dj_config("it_conn_src", Some("Right-pw-7"), serde_json::json!({})),
        0o600,
    );
    let cfg = std::fs::canonicalize(&cfg).unwrap();
    // The file alone logs in (doctor then reports the account's missing privileges: exit 1).
    let out = sb.run(&["doctor", "--json"]);
    assert!(out.code == 0 || out.code == 1, "{out:?}");
    assert_eq!(out.json()["connection"]["account"], "it_conn_src@%");
    // A stale DJ_PASS in the environment wins over the file's right password.
    sb.env("DJ_PASS", "Stale-pw-3");
    for args in [&["users", "list"][..], &["doctor"][..]] {
        let out = sb.run(args);
        out.assert_code(2).assert_clean_error();
        assert!(
            out.stderr
                .contains("the password came from DJ_PASS, which overrides")
                && out
                    .stderr
                    .contains("dj_local_conf.json (database.password)"),
            "{args:?}: {}",
            out.stderr
        );
        for text in [&out.stdout, &out.stderr] {
            assert!(
                !text.contains("Stale-pw-3") && !text.contains("Right-pw-7"),
                "{text}"
            );
        }
    }
    let out = sb.run(&["doctor"]);
    assert!(
        out.stdout.contains("FAIL")
            && out
                .stdout
                .contains("password from DJ_PASS, which overrides"),
        "{}",
        out.stdout
    );
    let out = sb.run(&["doctor", "--json"]);
    out.assert_code(2);
    let v = out.json();
    assert_eq!(v["healthy"], false, "{v:#}");
    let from = |k: &str| -> String {
        v["connection"]["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["setting"] == k)
            .map(|s| s["from"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no source for {k}: {v:#}"))
    };
    assert!(from("password").starts_with("DJ_PASS"), "{v:#}");
    assert!(
        from("user").contains(&*cfg.to_string_lossy())
            || from("user").contains("dj_local_conf.json"),
        "{v:#}"
    );
    assert!(!out.stdout.contains("Stale-pw-3"));
    // No password at all is said as such.
    let mut none = Sandbox::new();
    none.env("DJ_HOST", &server().host)
        .env("DJ_PORT", &server().port.to_string())
        .env("DJ_USER", "it_conn_src");
    let out = none.run(&["users", "list"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("no password was given"),
        "{}",
        out.stderr
    );
}
