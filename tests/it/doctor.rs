//! `spyglass-admin doctor` on a healthy setup and on each kind of bad input.

use serde_json::{json, Value};

use crate::support::{closed_port, create_user, dj_config, fixture_root, server, Sandbox};

fn problems(v: &Value) -> Vec<String> {
    v["problems"]
        .as_array()
        .expect("problems array")
        .iter()
        .map(|p| p["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn healthy_on_the_fixture_with_datajoint_config() {
    // Run where the fixture's dj_local_conf.json is, exactly as a lab member would.
    let sb = Sandbox::new();
    let cfg = std::fs::read_to_string(fixture_root().join("dj_local_conf.json")).unwrap();
    sb.write("dj_local_conf.json", &cfg, 0o600);
    let mut sb = sb;
    sb.env("DJ_PASS", "");
    let backup = tempfile::tempdir().unwrap();
    let out = sb.run(&[
        "doctor",
        "--json",
        "--backup-dest",
        backup.path().to_str().unwrap(),
    ]);
    out.assert_code(0);
    let v = out.json();
    assert_eq!(v["healthy"], true, "{v:#}");
    assert_eq!(v["server"]["flavor"], server().flavor);
    assert_eq!(
        v["connection"]["server"],
        format!("{}:{}", server().host, server().port)
    );
    assert_eq!(
        v["connection"]["tls"],
        server().flavor == "mysql",
        "MySQL 9 offers TLS with generated certs; the MariaDB sandbox offers none"
    );
    assert_eq!(v["directories"].as_array().unwrap().len(), 9);
    assert!(v["directories"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["exists"] == true && d["writable"] == true));
    for f in v["privileges"].as_array().unwrap() {
        assert_eq!(f["status"], "ok", "{f}");
    }
    assert!(v["backup_destination"]["free_bytes"].as_u64().unwrap() > 0);
    assert!(
        v["database_bytes"].as_u64().unwrap() > 1_000_000,
        "the fixture holds megabytes of blobs"
    );
    let files = v["config_files"].as_array().unwrap();
    assert!(files
        .iter()
        .any(|f| f["kind"] == "datajoint" && f["status"] == "read"));
    assert!(files
        .iter()
        .any(|f| f["kind"] == "my.cnf" && f["status"] == "not found"));

    // Human output says the same.
    let human = sb.run(&["doctor", "--backup-dest", backup.path().to_str().unwrap()]);
    human.assert_code(0);
    assert!(
        human.stdout.contains("healthy: no problems found"),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("dj_local_conf.json"));
}

#[test]
fn wrong_password_names_user_and_host_never_the_password() {
    create_user("it_doc_wrongpw", "Correct-Horse-1", &[]);
    let mut sb = Sandbox::new();
    sb.env("DJ_HOST", &server().host)
        .env("DJ_PORT", &server().port.to_string())
        .env("DJ_USER", "it_doc_wrongpw")
        .env("DJ_PASS", "Battery-Staple-9");
    let out = sb.run(&["doctor"]);
    out.assert_code(2).assert_clean_error();
    assert!(out.stderr.contains("it_doc_wrongpw"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("{}:{}", server().host, server().port)),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint:"), "{}", out.stderr);
    assert!(!out.stderr.contains("Battery-Staple-9") && !out.stdout.contains("Battery-Staple-9"));
}

#[test]
fn unreachable_server_is_exit_2() {
    let port = closed_port();
    let mut sb = Sandbox::new();
    sb.env("DJ_HOST", "127.0.0.1")
        .env("DJ_PORT", &port.to_string())
        .env("DJ_USER", "root")
        .env("DJ_PASS", "");
    let out = sb.run(&["doctor"]);
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains(&format!("127.0.0.1:{port}")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("is the server running"),
        "{}",
        out.stderr
    );
}

#[test]
fn malformed_datajoint_config_names_file_line_column() {
    let sb = Sandbox::new();
    let path = sb.write("dj_local_conf.json", "{\n  \"database.host\": \"127.0.0.1\",\n  \"database.user\": \"root\"\n  \"database.port\": 1\n}\n", 0o600);
    let out = sb.run(&["doctor"]);
    out.assert_code(2).assert_clean_error();
    let want = format!("{}:4:3", path.display());
    assert!(
        out.stderr.contains(&want),
        "want {want} in:\n{}",
        out.stderr
    );
}

#[test]
fn datajoint_config_in_home_is_used_when_no_local_one() {
    let sb = Sandbox::new();
    sb.write_home(
        ".datajoint_config.json",
        &dj_config("root", Some(""), json!({})),
        0o600,
    );
    let out = sb.run(&["doctor", "--json"]);
    out.assert_code(0);
    let v = out.json();
    let read: Vec<&Value> = v["config_files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "read")
        .collect();
    assert_eq!(read.len(), 1, "{read:?}");
    assert!(read[0]["path"]
        .as_str()
        .unwrap()
        .ends_with(".datajoint_config.json"));
}

#[test]
fn precedence_flags_then_env_then_datajoint_then_mycnf() {
    let s = server();
    let sb = Sandbox::new();
    // The DataJoint file points at a dead port; DJ_PORT fixes it; --port would beat both.
    sb.write(
        "dj_local_conf.json",
        &dj_config("root", Some(""), json!({"database.port": closed_port()})),
        0o600,
    );
    sb.write_home(
        ".my.cnf",
        &format!("[client]\nport={}\nuser=nobody\n", closed_port()),
        0o600,
    );
    let mut env_sb = sb;
    env_sb.env("DJ_PORT", &s.port.to_string());
    let out = env_sb.run(&["doctor", "--json"]);
    out.assert_code(0);
    let sources = out.json()["connection"]["sources"].clone();
    assert!(
        sources
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["setting"] == "port" && x["from"] == "DJ_PORT"),
        "{sources}"
    );
    assert!(
        sources.as_array().unwrap().iter().any(
            |x| x["setting"] == "user" && x["from"].as_str().unwrap().contains("database.user")
        ),
        "{sources}"
    );
    // A flag beats the environment: a dead --port must now fail.
    let dead = closed_port();
    let out = env_sb.run(&["doctor", "--port", &dead.to_string()]);
    out.assert_code(2);
    assert!(out.stderr.contains(&format!(":{dead}")), "{}", out.stderr);
}

#[test]
fn mycnf_client_section_is_the_last_resort() {
    let s = server();
    create_user("it_doc_mycnf", "My-Cnf-Pw-7", &["SELECT ON *.*"]);
    let sb = Sandbox::new();
    sb.write_home(".my.cnf", &format!("[mysqld]\nport=1\n[client]\nhost={}\nport={}\nuser=it_doc_mycnf\npassword=\"My-Cnf-Pw-7\"\n", s.host, s.port), 0o600);
    let out = sb.run(&["doctor", "--json"]);
    // Connected (exit 1: this account lacks admin privileges, which doctor reports).
    out.assert_code(1);
    let v = out.json();
    assert_eq!(v["connection"]["account"], "it_doc_mycnf@%");
    assert!(v["connection"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["setting"] == "password" && x["from"].as_str().unwrap().contains(".my.cnf")));
    assert!(
        !problems(&v)
            .iter()
            .any(|p| p.contains("readable by other users")),
        "0600 is fine"
    );
}

#[test]
fn readable_password_file_is_a_problem_with_the_fix() {
    create_user("it_doc_perm", "Perm-Pw-3", &["ALL ON *.*"]);
    let sb = Sandbox::new();
    let path = sb.write(
        "dj_local_conf.json",
        &dj_config("it_doc_perm", Some("Perm-Pw-3"), json!({})),
        0o644,
    );
    let out = sb.run(&["doctor", "--json"]);
    out.assert_code(1);
    let p = problems(&out.json());
    let want = format!("chmod 600 {}", path.display());
    assert!(
        p.iter()
            .any(|m| m.contains("readable by other users") && m.contains(&want)),
        "{p:?}"
    );
    assert!(!out.stdout.contains("Perm-Pw-3") && !out.stderr.contains("Perm-Pw-3"));
}

#[test]
fn password_file_works_and_password_flag_does_not_exist() {
    create_user("it_doc_pwfile", "File-Pw-5", &["SELECT ON *.*"]);
    let mut sb = Sandbox::new();
    sb.env("DJ_HOST", &server().host)
        .env("DJ_PORT", &server().port.to_string())
        .env("DJ_USER", "it_doc_pwfile");
    let pw = sb.write("pw", "File-Pw-5\n", 0o600);
    let out = sb.run(&["doctor", "--json", "--password-file", pw.to_str().unwrap()]);
    out.assert_code(1);
    assert_eq!(out.json()["connection"]["account"], "it_doc_pwfile@%");
    let out = sb.run(&["doctor", "--password", "File-Pw-5"]);
    out.assert_code(2);
    assert!(out.stderr.contains("--password"), "{}", out.stderr);
    // No terminal, no password anywhere, server refuses: a clear error, no hang.
    let out = sb.run(&["doctor"]);
    out.assert_code(2).assert_clean_error();
}

#[test]
fn limited_account_gets_one_problem_per_missing_privilege() {
    create_user("it_doc_guest", "Guest-Pw-2", &["SELECT ON `%`.*"]);
    let mut sb = Sandbox::new();
    sb.env("DJ_HOST", &server().host)
        .env("DJ_PORT", &server().port.to_string())
        .env("DJ_USER", "it_doc_guest")
        .env("DJ_PASS", "Guest-Pw-2");
    let out = sb.run(&["doctor", "--json"]);
    out.assert_code(1);
    let v = out.json();
    let fam = |name: &str| {
        v["privileges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["family"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(fam("user_admin")["status"], "missing");
    assert_eq!(
        fam("cleanup")["status"],
        "degraded",
        "SELECT on `%`.* is enough to scan; DELETE is missing"
    );
    assert_eq!(fam("backup")["status"], "missing");
    let p = problems(&v);
    assert!(p.iter().any(|m| m.contains("CREATE USER")), "{p:?}");
    assert!(
        p.iter()
            .any(|m| m.starts_with("cleanup:") && m.contains("DELETE")),
        "{p:?}"
    );
    for prob in v["problems"].as_array().unwrap() {
        assert!(!prob["hint"].as_str().unwrap().is_empty());
    }
    let human = sb.run(&["doctor"]);
    human.assert_code(1);
    assert!(
        human
            .stdout
            .contains("problem: user admin: it_doc_guest@% lacks CREATE USER"),
        "{}",
        human.stdout
    );
}

/// Spyglass makes its own directories (every one but the base, under an
/// existing parent) when it loads its settings: a missing one is reported,
/// not a problem. A missing base, or a directory whose parent is missing, is.
#[test]
fn missing_spyglass_directory_is_named() {
    let base = tempfile::tempdir().unwrap();
    std::fs::create_dir(base.path().join("raw")).unwrap();
    let sb = Sandbox::new();
    sb.write(
        "dj_local_conf.json",
        &dj_config(
            "root",
            Some(""),
            json!({"custom": {"spyglass_dirs": {"base": base.path()}}}),
        ),
        0o600,
    );
    let out = sb.run(&["doctor", "--json"]);
    let v = out.json();
    let p = problems(&v);
    assert!(
        !p.iter().any(|m| m.contains("Spyglass")),
        "directories Spyglass creates are no problem: {p:?}"
    );
    out.assert_code(0);
    let analysis = base.path().join("analysis");
    let dir = |v: &Value, key: &str| {
        v["directories"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["key"] == key)
            .unwrap_or_else(|| panic!("{key} listed: {v:#}"))
            .clone()
    };
    let a = dir(&v, "analysis");
    assert_eq!(a["path"], analysis.display().to_string());
    assert_eq!(
        (a["exists"].clone(), a["spyglass_creates"].clone()),
        (json!(false), json!(true))
    );
    assert_eq!(dir(&v, "raw")["spyglass_creates"], false, "raw exists");
    let human = sb.run(&["doctor"]);
    human.assert_code(0);
    assert!(
        human.stdout.contains(&format!(
            "analysis   {} (missing; Spyglass creates it when it loads its settings)",
            analysis.display()
        )),
        "{}",
        human.stdout
    );
    // A directory elsewhere whose parent is missing: Spyglass cannot make it.
    let mut sb = sb;
    let far = base.path().join("no/such/parent/analysis");
    sb.env("SPYGLASS_ANALYSIS_DIR", far.to_str().unwrap());
    let out = sb.run(&["doctor", "--json"]);
    out.assert_code(1);
    let p = problems(&out.json());
    assert!(
        p.iter().any(|m| m
            == &format!(
                "Spyglass analysis directory {} does not exist",
                far.display()
            )),
        "{p:?}"
    );
    // A missing base is a problem (Spyglass makes no parents).
    let gone = base.path().join("gone");
    let sb = Sandbox::new();
    sb.write(
        "dj_local_conf.json",
        &dj_config(
            "root",
            Some(""),
            json!({"custom": {"spyglass_dirs": {"base": gone}}}),
        ),
        0o600,
    );
    let out = sb.run(&["doctor", "--json"]);
    out.assert_code(1);
    let p = problems(&out.json());
    assert!(
        p.iter()
            .any(|m| m == &format!("Spyglass base directory {} does not exist", gone.display())),
        "{p:?}"
    );
}

#[test]
fn settings_file_unknown_key_names_key_file_line() {
    let mut sb = Sandbox::as_root();
    let path = sb.write(
        "spyglass-admin.toml",
        "[backup]\ndestination = \"/tmp\"\nkeep_dayly = 7\n",
        0o644,
    );
    let out = sb.run(&["doctor"]);
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains(&format!("{}:3:1", path.display()))
            && out.stderr.contains("keep_dayly"),
        "{}",
        out.stderr
    );
    // --config to a missing file is an error too, not a silent default.
    sb.env("SPYGLASS_ADMIN_CONFIG", "/nonexistent/spyglass-admin.toml");
    std::fs::remove_file(&path).unwrap();
    let out = sb.run(&["doctor"]);
    out.assert_code(2).assert_clean_error();
    assert!(out.stderr.contains("/nonexistent/spyglass-admin.toml"));
}

#[test]
fn backup_destination_from_settings_checked_for_space_and_existence() {
    let sb = Sandbox::as_root();
    let missing = sb.cwd().join("no-such-backups");
    sb.write(
        "spyglass-admin.toml",
        &format!("[backup]\ndestination = \"{}\"\n", missing.display()),
        0o644,
    );
    let out = sb.run(&["doctor", "--json"]);
    out.assert_code(1);
    let v = out.json();
    assert_eq!(v["backup_destination"]["exists"], false);
    assert!(problems(&v)
        .iter()
        .any(|m| m.contains("no-such-backups") && m.contains("does not exist")));
    std::fs::create_dir(&missing).unwrap();
    let out = sb.run(&["doctor", "--json"]);
    out.assert_code(0);
    assert!(
        out.json()["backup_destination"]["free_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
}
