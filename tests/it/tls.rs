//! TLS that verifies, against the TLS sandbox `cargo xtask itest` starts:
//! the server's certificate is signed by a private CA and the server runs
//! with `require_secure_transport=ON` and the general log in a table.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::{ConnectOptions, DbError, Secret, Session, TlsMode, TlsOptions};

use crate::support::{server, Outcome, Sandbox};

/// The tests that swap the server's certificate take this exclusively; the
/// others take it too, so none sees the swapped certificate.
static CERT: Mutex<()> = Mutex::new(());

fn cert_lock() -> MutexGuard<'static, ()> {
    CERT.lock().unwrap_or_else(|p| p.into_inner())
}

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: the TLS tests run through `cargo xtask itest`, which starts the TLS sandbox")
    })
}

fn tls_port() -> u16 {
    required("SPYGLASS_IT_TLS_PORT").parse().expect("port")
}

fn certs() -> PathBuf {
    PathBuf::from(required("SPYGLASS_IT_TLS_CERTS"))
}

fn cert(name: &str) -> String {
    let p = certs().join(name);
    assert!(p.is_file(), "{} is missing", p.display());
    p.display().to_string()
}

/// Root on the TLS server, encrypted but unverified (setup only).
fn tls_admin() -> Session {
    let s = server();
    let opts = ConnectOptions::tcp(&s.host, tls_port(), &s.user)
        .password(Secret::new(""))
        .tls(TlsMode::Require);
    spyglass_db::connect(&opts).expect("root connects to the TLS server")
}

fn sql(s: &mut Session, q: &str) {
    s.conn()
        .query_drop(q)
        .unwrap_or_else(|e| panic!("{q}: {e}"));
}

fn create_user(name: &str, password: &str, require: &str) {
    let mut a = tls_admin();
    sql(&mut a, &format!("DROP USER IF EXISTS '{name}'@'%'"));
    sql(
        &mut a,
        &format!("CREATE USER '{name}'@'%' IDENTIFIED BY '{password}' {require}"),
    );
    sql(&mut a, &format!("GRANT SELECT ON *.* TO '{name}'@'%'"));
}

/// The binary as `user` on the TLS server through the DJ_* environment.
fn as_user(user: &str, password: &str) -> Sandbox {
    let s = server();
    let mut sb = Sandbox::new();
    sb.env("DJ_HOST", &s.host)
        .env("DJ_PORT", &tls_port().to_string())
        .env("DJ_USER", user)
        .env("DJ_PASS", password);
    sb
}

/// General-log `Connect` records that name `user`: a login attempt reached
/// the authentication stage. (The query itself never contains the name.)
fn connect_records(user: &str) -> u64 {
    let mut a = tls_admin();
    let half = user.len() / 2;
    let q = format!(
        "SELECT COUNT(*) FROM mysql.general_log WHERE command_type = 'Connect' AND CONVERT(argument USING utf8mb4) LIKE CONCAT('%', '{}', '{}', '%')",
        &user[..half],
        &user[half..]
    );
    a.conn()
        .query_first::<u64, _>(q.as_str())
        .unwrap_or_else(|e| panic!("{q}: {e}"))
        .unwrap_or(0)
}

fn doctor_json(sb: &Sandbox, extra: &[&str]) -> (Outcome, serde_json::Value) {
    let mut args = vec!["doctor", "--json"];
    args.extend_from_slice(extra);
    let out = sb.run(&args);
    assert!(
        out.code == 0 || out.code == 1,
        "doctor connects\n--- stdout\n{}\n--- stderr\n{}",
        out.stdout,
        out.stderr
    );
    let v = out.json();
    (out, v)
}

#[test]
fn tls_right_ca_connects_and_doctor_says_verified() {
    let _g = cert_lock();
    let sb = as_user(&server().user, "");
    let (_, v) = doctor_json(&sb, &["--tls-ca", &cert("ca.pem")]);
    let c = &v["connection"];
    assert_eq!(c["tls"], true, "{c:#}");
    assert_eq!(
        c["tls_mode"], "verify-identity",
        "a CA means chain and host name"
    );
    assert_eq!(c["tls_verified"], "chain+hostname", "{c:#}");
    let d = &c["tls_details"];
    assert!(
        d["version"].as_str().unwrap().starts_with("TLSv1."),
        "{d:#}"
    );
    assert!(!d["cipher"].as_str().unwrap().is_empty(), "{d:#}");
    assert_eq!(d["subject"], "CN=localhost", "{d:#}");
    assert!(
        d["names"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "127.0.0.1"),
        "{d:#}"
    );
    assert!(d["days_left"].as_i64().unwrap() > 800, "{d:#}");
    // The human report says how it was verified.
    let human = sb.run(&["doctor", "--tls-ca", &cert("ca.pem")]);
    assert!(
        human.stdout.contains("verified: chain (CA ") && human.stdout.contains("and host name"),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("expires "), "{}", human.stdout);
    // Unverified only when asked for, and doctor says so.
    let (out, v) = doctor_json(&sb, &["--tls-mode", "require"]);
    assert_eq!(
        v["connection"]["tls_verified"], "unverified",
        "{}",
        out.stdout
    );
    let human = sb.run(&["doctor", "--tls-mode", "require"]);
    assert!(
        human.stdout.contains("unverified (mode require)"),
        "{}",
        human.stdout
    );
    // verify-ca checks the chain only.
    let (_, v) = doctor_json(
        &sb,
        &["--tls-mode", "verify-ca", "--tls-ca", &cert("ca.pem")],
    );
    assert_eq!(v["connection"]["tls_verified"], "chain");
}

#[test]
fn tls_other_ca_is_refused_before_any_password_is_sent() {
    let _g = cert_lock();
    let user = "tls_wrong_ca_probe";
    create_user(user, "right-pw", "");
    let sb = as_user(user, "right-pw");
    let out = sb.run(&["doctor", "--tls-ca", &cert("other-ca.pem")]);
    out.assert_code(2).assert_clean_error();
    assert!(out.stderr.contains("unknown CA"), "{}", out.stderr);
    assert!(
        out.stderr.contains("other-ca.pem"),
        "names the CA: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("no password was sent"),
        "{}",
        out.stderr
    );
    // The server never saw a login attempt for this account ...
    assert_eq!(
        connect_records(user),
        0,
        "the refused connection reached authentication"
    );
    // ... while a wrong password with the right CA does show up there
    // (the check can see login attempts).
    let control = as_user(user, "wrong-pw").run(&["doctor", "--tls-ca", &cert("ca.pem")]);
    control.assert_code(2);
    assert!(
        control.stderr.contains("access denied"),
        "{}",
        control.stderr
    );
    assert!(
        connect_records(user) > 0,
        "the general log records login attempts"
    );

    // The library says the same, also for the users login checks.
    let s = server();
    let opts = ConnectOptions::tcp(&s.host, tls_port(), user)
        .password(Secret::new("right-pw"))
        .tls_options(TlsOptions {
            mode: TlsMode::VerifyCa,
            ca: Some(cert("other-ca.pem").into()),
            ..TlsOptions::default()
        });
    match spyglass_db::connect(&opts) {
        Err(DbError::Tls { reason, .. }) => assert!(reason.contains("unknown CA"), "{reason}"),
        other => panic!("expected a TLS refusal, got {other:?}"),
    }
    let e = spyglass_privileges::login::try_login(&opts, user, &Secret::new("right-pw"))
        .expect_err("login checks use the same policy");
    assert!(e.to_string().contains("unknown CA"), "{e}");
    // A server certificate from the unrelated CA is refused by the lab's CA too
    // (both directions of "wrong CA").
    swap_server_cert("other-ca-server", "other-ca.pem", || {
        let out = as_user(&server().user, "").run(&["doctor", "--tls-ca", &cert("ca.pem")]);
        out.assert_code(2);
        assert!(out.stderr.contains("unknown CA"), "{}", out.stderr);
    });
}

/// Puts `name`.pem/.key in place of the server's certificate (and `ca` in
/// place of its CA: MySQL refuses to load a certificate its own CA did not
/// sign), reloads TLS on the server, runs `f`, and puts the originals back.
fn swap_server_cert(name: &str, ca: &str, f: impl FnOnce()) {
    let dir = PathBuf::from(required("SPYGLASS_IT_TLS_SERVER_CERTS"));
    let reload = || {
        let q = if server().flavor == "mysql" {
            "ALTER INSTANCE RELOAD TLS"
        } else {
            "FLUSH SSL"
        };
        sql(&mut tls_admin(), q);
    };
    let files = ["server.pem", "server.key", "ca.pem"];
    let orig: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        std::fs::copy(certs().join(format!("{name}.pem")), dir.join("server.pem")).unwrap();
        std::fs::copy(certs().join(format!("{name}.key")), dir.join("server.key")).unwrap();
        std::fs::copy(certs().join(ca), dir.join("ca.pem")).unwrap();
        reload();
        f()
    }));
    for (f, text) in files.iter().zip(orig) {
        std::fs::write(dir.join(f), text).unwrap();
    }
    reload();
    if let Err(p) = r {
        std::panic::resume_unwind(p);
    }
}

#[test]
fn tls_verify_identity_refuses_a_certificate_for_another_name() {
    let _g = cert_lock();
    swap_server_cert("other-name", "ca.pem", || {
        let sb = as_user(&server().user, "");
        let out = sb.run(&["doctor", "--tls-ca", &cert("ca.pem")]);
        out.assert_code(2).assert_clean_error();
        assert!(
            out.stderr.contains("name mismatch")
                && out.stderr.contains("expected '127.0.0.1'")
                && out.stderr.contains("'db.elsewhere.example'"),
            "{}",
            out.stderr
        );
        // verify-ca accepts it: right chain, host name not checked.
        let (_, v) = doctor_json(
            &sb,
            &["--tls-mode", "verify-ca", "--tls-ca", &cert("ca.pem")],
        );
        assert_eq!(v["connection"]["tls_verified"], "chain");
        assert_eq!(
            v["connection"]["tls_details"]["subject"],
            "CN=db.elsewhere.example"
        );
    });
}

#[test]
fn tls_x509_account_needs_its_client_certificate() {
    let _g = cert_lock();
    let user = "tls_x509_user";
    create_user(user, "x509-pw", "REQUIRE X509");
    let sb = as_user(user, "x509-pw");
    let key = sb.write(
        "client.key",
        &std::fs::read_to_string(cert("client.key")).unwrap(),
        0o600,
    );
    let key = key.display().to_string();
    let (_, v) = doctor_json(
        &sb,
        &[
            "--tls-ca",
            &cert("ca.pem"),
            "--tls-cert",
            &cert("client.pem"),
            "--tls-key",
            &key,
        ],
    );
    assert!(
        v["connection"]["account"]
            .as_str()
            .unwrap()
            .starts_with(user),
        "{v:#}"
    );
    assert_eq!(v["connection"]["tls_verified"], "chain+hostname");
    // Without the certificate: refused by the server.
    let out = sb.run(&["doctor", "--tls-ca", &cert("ca.pem")]);
    out.assert_code(2).assert_clean_error();
    assert!(out.stderr.contains("access denied"), "{}", out.stderr);
    // A key others can read is refused before connecting.
    let loose = sb.write(
        "loose.key",
        &std::fs::read_to_string(cert("client.key")).unwrap(),
        0o644,
    );
    let out = sb.run(&[
        "doctor",
        "--tls-ca",
        &cert("ca.pem"),
        "--tls-cert",
        &cert("client.pem"),
        "--tls-key",
        loose.to_str().unwrap(),
    ]);
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains("readable by other users"),
        "{}",
        out.stderr
    );
}

#[test]
fn tls_datajoint_ssl_object_and_my_cnf_behave_like_the_flags() {
    let _g = cert_lock();
    let s = server();
    for (ca, ok) in [("ca.pem", true), ("other-ca.pem", false)] {
        // DataJoint: database.use_tls as PyMySQL ssl parameters.
        let sb = Sandbox::new();
        let conf = serde_json::json!({
            "database.host": s.host, "database.port": tls_port(), "database.user": s.user,
            "database.password": "", "database.use_tls": {"ca": cert(ca)},
        });
        sb.write("dj_local_conf.json", &conf.to_string(), 0o600);
        check_source(&sb, ok, "chain+hostname", "DataJoint ssl object");
        // ~/.my.cnf in both dialects.
        for tls_lines in [
            format!("ssl-ca={}\nssl-mode=VERIFY_IDENTITY\n", cert(ca)),
            format!("ssl-ca={}\nssl-verify-server-cert\n", cert(ca)),
        ] {
            let sb = Sandbox::new();
            sb.write_home(
                ".my.cnf",
                &format!(
                    "[client]\nhost={}\nport={}\nuser={}\npassword=\n{tls_lines}",
                    s.host,
                    tls_port(),
                    s.user
                ),
                0o600,
            );
            check_source(&sb, ok, "chain+hostname", &tls_lines);
        }
    }
    // check_hostname false: verify-ca.
    let sb = Sandbox::new();
    let conf = serde_json::json!({
        "database.host": s.host, "database.port": tls_port(), "database.user": s.user,
        "database.password": "", "database.use_tls": {"ca": cert("ca.pem"), "check_hostname": false},
    });
    sb.write("dj_local_conf.json", &conf.to_string(), 0o600);
    check_source(&sb, true, "chain", "check_hostname false");
}

fn check_source(sb: &Sandbox, ok: bool, verified: &str, what: &str) {
    if ok {
        let (_, v) = doctor_json(sb, &[]);
        assert_eq!(v["connection"]["tls_verified"], verified, "{what}: {v:#}");
    } else {
        let out = sb.run(&["doctor"]);
        out.assert_code(2).assert_clean_error();
        assert!(out.stderr.contains("unknown CA"), "{what}: {}", out.stderr);
    }
}

#[test]
fn tls_required_but_not_offered_is_named() {
    // The main sandbox: MariaDB 10.11 has no TLS unless configured; MySQL
    // makes its own self-signed certificate at initialisation.
    let s = server();
    let mut sb = Sandbox::as_root();
    sb.env("DJ_PORT", &s.port.to_string());
    let out = sb.run(&["doctor", "--tls-mode", "require"]);
    if s.flavor == "mariadb" {
        out.assert_code(2).assert_clean_error();
        assert!(out.stderr.contains("does not offer it"), "{}", out.stderr);
    } else {
        assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
        assert!(out.stdout.contains("unverified"), "{}", out.stdout);
        // Its self-signed certificate is refused by the lab's CA.
        let out = sb.run(&["doctor", "--tls-ca", &cert("ca.pem")]);
        out.assert_code(2);
        assert!(out.stderr.contains("unknown CA"), "{}", out.stderr);
    }
}

fn root_on_tls(ca: &str) -> Sandbox {
    let s = server();
    let mut sb = as_user(&s.user, "");
    sb.env("SPYGLASS_TLS_CA", &cert(ca));
    sb
}

fn rows(s: &mut Session, q: &str) -> u64 {
    s.conn().query_first::<u64, _>(q).unwrap().unwrap_or(0)
}

#[test]
fn tls_backup_run_restore_and_mysqldump_engine_over_verified_tls() {
    let _g = cert_lock();
    let mut a = tls_admin();
    sql(&mut a, "DROP DATABASE IF EXISTS tls_bk");
    sql(&mut a, "CREATE DATABASE tls_bk");
    sql(
        &mut a,
        "CREATE TABLE tls_bk.t (id INT PRIMARY KEY, v VARCHAR(20))",
    );
    sql(
        &mut a,
        "INSERT INTO tls_bk.t VALUES (1,'a'),(2,'b'),(3,'c')",
    );
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().to_str().unwrap();
    // A wrong CA: nothing is dumped.
    let out =
        root_on_tls("other-ca.pem").run(&["backup", "run", "--dest", d, "--schemas", "tls_bk"]);
    out.assert_code(2);
    assert!(out.stderr.contains("unknown CA"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_dir(d).unwrap().count(),
        0,
        "no set was written"
    );
    // The right CA (from SPYGLASS_TLS_CA): native engine, then restore.
    let sb = root_on_tls("ca.pem");
    let out = sb.run(&[
        "backup",
        "run",
        "--json",
        "--dest",
        d,
        "--schemas",
        "tls_bk",
        "--threads",
        "2",
    ]);
    out.assert_code(0);
    let set = out.json()["path"].as_str().unwrap().to_owned();
    sql(&mut a, "DROP DATABASE tls_bk");
    sb.run(&["backup", "restore", &set, "--threads", "2"])
        .assert_code(0);
    assert_eq!(rows(&mut tls_admin(), "SELECT COUNT(*) FROM tls_bk.t"), 3);

    // The mysqldump engine gets the TLS policy through its defaults file.
    let (program, tmp) = recording_dump_program();
    let ca_for_dump = match std::env::var("SPYGLASS_IT_MYSQLDUMP_TMPDIR") {
        // MySQL: the chroot's mysqldump sees files under its root only.
        Ok(t) => {
            let p = Path::new(&t).join("spyglass-tls-ca.pem");
            std::fs::copy(cert("ca.pem"), &p).unwrap();
            p.display().to_string()
        }
        Err(_) => cert("ca.pem"),
    };
    let mut sb = as_user(&server().user, "");
    sb.env("SPYGLASS_TLS_CA", &ca_for_dump);
    if let Ok(t) = std::env::var("SPYGLASS_IT_MYSQLDUMP_TMPDIR") {
        sb.env("TMPDIR", &t);
    }
    let dest2 = tempfile::tempdir().unwrap();
    let out = sb.run(&[
        "backup",
        "run",
        "--json",
        "--engine",
        "mysqldump",
        "--no-accounts",
        "--dest",
        dest2.path().to_str().unwrap(),
        "--schemas",
        "tls_bk",
        "--dump-program",
        program.to_str().unwrap(),
    ]);
    out.assert_code(0);
    let argv = std::fs::read_to_string(tmp.path().join("argv")).unwrap();
    let ssl = std::fs::read_to_string(tmp.path().join("ssl-lines")).unwrap();
    assert!(argv.contains("--defaults-file="), "{argv}");
    assert!(
        !argv.contains("ssl") && !argv.contains("password"),
        "argv carries no TLS or password options: {argv}"
    );
    assert!(ssl.contains(&format!("ssl-ca=\"{ca_for_dump}\"")), "{ssl}");
    if server().flavor == "mysql" {
        assert!(ssl.contains("ssl-mode=VERIFY_IDENTITY"), "{ssl}");
    } else {
        assert!(
            ssl.contains("ssl-verify-server-cert=1") && !ssl.contains("ssl-mode"),
            "{ssl}"
        );
    }
    let set2 = out.json()["path"].as_str().unwrap().to_owned();
    sql(&mut tls_admin(), "DROP DATABASE tls_bk");
    sb.run(&["backup", "restore", &set2]).assert_code(0);
    assert_eq!(rows(&mut tls_admin(), "SELECT COUNT(*) FROM tls_bk.t"), 3);
    sql(&mut tls_admin(), "DROP DATABASE tls_bk");
}

/// A dump program that records its argv and the ssl lines of its defaults
/// file (never the password), then runs the real one.
fn recording_dump_program() -> (PathBuf, tempfile::TempDir) {
    let real = std::env::var("SPYGLASS_IT_MYSQLDUMP").unwrap_or_else(|_| "mariadb-dump".into());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("dump-recorder");
    let d = dir.path().display();
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >> {d}/argv\nfor a in \"$@\"; do case \"$a\" in --defaults-file=*) grep '^ssl' \"${{a#--defaults-file=}}\" >> {d}/ssl-lines;; esac; done\nexec {real} \"$@\"\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    (p, dir)
}

#[test]
fn tls_cleanup_scan_over_verified_tls() {
    let _g = cert_lock();
    let root = PathBuf::from(required("SPYGLASS_IT_TLS_FIXTURE"));
    let text = std::fs::read_to_string(root.join("dj_local_conf.json")).unwrap();
    for (ca, ok) in [("ca.pem", true), ("other-ca.pem", false)] {
        let mut conf: serde_json::Value = serde_json::from_str(&text).unwrap();
        conf["database.use_tls"] = serde_json::json!({"ca": cert(ca)});
        let mut sb = Sandbox::new();
        sb.write("dj_local_conf.json", &conf.to_string(), 0o600);
        let schemas: Vec<String> = spyglass_fixture::SCHEMAS
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect();
        sb.write(
            "spyglass-admin.toml",
            &format!("[cleanup]\nschemas = [{}]\n", schemas.join(", ")),
            0o644,
        );
        sb.env("DJ_PASS", "");
        let out = sb.run(&["cleanup", "scan", "--json"]);
        if ok {
            assert_eq!(
                out.code, 1,
                "the fixture plants files to clean\n{}",
                out.stderr
            );
            assert!(out.json()["roots"]
                .as_array()
                .is_some_and(|r| !r.is_empty()));
        } else {
            out.assert_code(2);
            assert!(out.stderr.contains("unknown CA"), "{}", out.stderr);
        }
    }
}
