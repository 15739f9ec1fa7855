//! `nightly` that cannot fail silently: a run that cannot start still logs
//! and notifies, exit codes separate "needs attention" from
//! "informational", `--quiet` is quiet when all is well, a manual run in the
//! day never prunes last night's set (here or off-site), the restore drill
//! restores, compares and drops, `doctor`'s dead man's switch, and the
//! systemd failure unit.
//!
//! The ship target is a directory (no sshd needed: the ssh transport is
//! lifecycle.rs's business).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{admin, Sandbox};

/// The fixture's DataJoint config in cwd and settings for a nightly of the
/// fixture's schemas into `dest`; `extra_backup` and `extra_nightly` are
/// added to those sections.
fn settings(sb: &Sandbox, dest: &Path, extra_backup: &str, extra_nightly: &str) {
    let root = crate::support::fixture_root();
    sb.write(
        "dj_local_conf.json",
        &std::fs::read_to_string(root.join("dj_local_conf.json")).expect("fixture dj config"),
        0o600,
    );
    let schemas: Vec<String> = spyglass_fixture::SCHEMAS
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect();
    sb.write(
        "spyglass-admin.toml",
        &format!(
            "[backup]\ndestination = \"{dest}\"\n{extra_backup}\n\n\
             [nightly]\nthreads = 2\nschemas = [{schemas}]\nnotify_command = \"cat > {notified}\"\n{extra_nightly}\n\n\
             [cleanup]\nschemas = [{schemas}]\n",
            dest = dest.display(),
            schemas = schemas.join(", "),
            notified = notified(sb).display(),
        ),
        0o644,
    );
}

fn notified(sb: &Sandbox) -> PathBuf {
    sb.cwd().join("notified.json")
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

fn log_lines(dest: &Path) -> Vec<Value> {
    std::fs::read_to_string(dest.join("spyglass-nightly.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a log line is JSON"))
        .collect()
}

fn step<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {v:#}"))
}

/// Unix seconds now.
fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// `secs` formatted by date(1) in UTC.
fn utc(secs: i64, format: &str) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), &format!("+{format}")])
        .output()
        .expect("date");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned()
}

/// A set with a minimal valid manifest (no files), named for `secs`.
fn made_up_set(dest: &Path, secs: i64) -> String {
    let name = format!("nightly-{}", utc(secs, "%Y%m%d-%H%M%S"));
    let d = dest.join(&name);
    std::fs::create_dir_all(&d).expect("mkdir");
    let m = serde_json::json!({
        "format": 1, "tool_version": "test", "engine": "native", "label": "nightly",
        "server": {"flavor": "mariadb", "version": "10.11", "address": "127.0.0.1:3306"},
        "snapshot": {"method": "none", "ddl_lock": "none", "binlog_file": null, "binlog_position": null, "gtid": null, "workers": 1},
        "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:00:01Z",
        "compression": {"method": "gzip", "level": 1}, "encoding": "escaped", "max_statement_bytes": 0,
        "schemas": [], "tables": [], "files": [], "notes": []
    });
    std::fs::write(d.join("manifest.json"), m.to_string()).expect("manifest");
    name
}

/// Issue 19: a settings file that does not parse, or a lock held by another
/// run, used to exit 2 with no log line and no notify call.
#[test]
fn a_run_that_cannot_start_still_logs_and_notifies() {
    let sb = Sandbox::as_root();
    let dest = sb.cwd().join("backups");
    std::fs::create_dir_all(&dest).expect("mkdir");
    // Valid TOML with a typo: the plan refuses, notify_command is still read.
    settings(&sb, &dest, "keep_dayly = 7", "");
    let out = sb.run(&["nightly"]);
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains("unknown key `keep_dayly`"),
        "{}",
        out.stderr
    );
    let n = read_json(&notified(&sb));
    assert_eq!(n["status"], "failed", "{n:#}");
    assert_eq!(n["exit_code"], 2);
    assert!(
        n["error"]
            .as_str()
            .expect("error")
            .starts_with("nightly did not start: ")
            && n["error"].as_str().expect("e").contains("keep_dayly"),
        "{n:#}"
    );
    let log = log_lines(&dest);
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["error"], n["error"]);
    assert_eq!(
        read_json(&dest.join("spyglass-nightly.json"))["error"],
        n["error"]
    );

    // Not TOML at all: read line by line.
    std::fs::remove_file(notified(&sb)).expect("rm");
    let text = std::fs::read_to_string(sb.cwd().join("spyglass-admin.toml")).expect("read");
    sb.write(
        "spyglass-admin.toml",
        &text.replace("keep_dayly = 7", "keep_daily = = 7\n[broken"),
        0o644,
    );
    let out = sb.run(&["nightly"]);
    out.assert_code(2).assert_clean_error();
    let n = read_json(&notified(&sb));
    assert_eq!(n["status"], "failed", "{n:#}");
    assert_eq!(log_lines(&dest).len(), 2);

    // A lock held by another run: logged and notified, the other run's
    // summary left alone.
    settings(&sb, &dest, "keep_last = 3", "cleanup = \"off\"");
    std::fs::remove_file(notified(&sb)).expect("rm");
    std::fs::write(dest.join("spyglass-nightly.json"), "{\"other\": 1}").expect("write");
    let lock = dest.join(".spyglass-nightly.lock");
    let ready = sb.cwd().join("holding");
    let mut holder = Command::new("flock")
        .arg("-x")
        .arg(&lock)
        .arg("-c")
        .arg(format!("touch '{}'; sleep 60", ready.display()))
        .stdout(Stdio::null())
        .spawn()
        .expect("flock (util-linux) is needed for this test");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "flock never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = sb.run(&["nightly"]);
    let _ = holder.kill();
    let _ = holder.wait();
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains("another nightly run is in progress"),
        "{}",
        out.stderr
    );
    let n = read_json(&notified(&sb));
    assert!(
        n["error"]
            .as_str()
            .expect("error")
            .contains("another nightly run is in progress"),
        "{n:#}"
    );
    assert_eq!(log_lines(&dest).len(), 3);
    assert_eq!(
        std::fs::read_to_string(dest.join("spyglass-nightly.json")).expect("read"),
        "{\"other\": 1}"
    );

    // The systemd failure unit: a killed run is logged and notified; a run
    // that exited 2 by itself already did both.
    std::fs::remove_file(notified(&sb)).expect("rm");
    let out: crate::support::Outcome = sb
        .command(&["nightly", "--notify-failure"])
        .env("MONITOR_SERVICE_RESULT", "exit-code")
        .env("MONITOR_EXIT_STATUS", "2")
        .output()
        .expect("run")
        .into();
    out.assert_code(0);
    assert!(!notified(&sb).exists(), "notified twice");
    assert_eq!(log_lines(&dest).len(), 3);
    let out: crate::support::Outcome = sb
        .command(&["nightly", "--notify-failure"])
        .env("MONITOR_SERVICE_RESULT", "signal")
        .env("MONITOR_EXIT_STATUS", "KILL")
        .env("MONITOR_UNIT", "spyglass-nightly.service")
        .output()
        .expect("run")
        .into();
    out.assert_code(0);
    let n = read_json(&notified(&sb));
    assert_eq!(
        n["error"],
        "spyglass-nightly.service failed (signal, status KILL) before it could report; see journalctl -u spyglass-nightly.service"
    );
    assert_eq!(log_lines(&dest).len(), 4);
}

/// Issue 19: a manual run in the day pruned last night's set under
/// `keep_daily`, here and on the ship target. With calendar rules nightly
/// keeps the 3 newest too; the summary names what prune removed. The same
/// run is a restore drill (`restore_drill = "daily"`), and its exit code
/// says the fixture's dangling references need attention.
#[test]
fn same_day_runs_keep_last_nights_set_and_the_drill_restores() {
    let sb = Sandbox::as_root();
    let dest = sb.cwd().join("backups");
    let offsite = sb.cwd().join("offsite");
    let now = now_unix();
    let day = 86_400;
    let today = now - now.rem_euclid(day);
    // Last night's scheduled set (earlier today, or yesterday just after
    // midnight UTC), the night before, and one far outside the policy.
    let last_night = (now - 60).max(today);
    let mut names = Vec::new();
    for d in [&dest, &offsite] {
        names = vec![
            made_up_set(d, last_night),
            made_up_set(d, today - day + 9000),
            made_up_set(d, today - 40 * day),
        ];
    }
    settings(
        &sb,
        &dest,
        // Two days with sets count: today's newest and yesterday's.
        &format!("keep_daily = 2\nship_to = \"{}\"", offsite.display()),
        "restore_drill = \"daily\"",
    );
    let out = sb.run(&["nightly", "--json"]);
    let v = out.json();
    // The fixture has dangling references: possible data loss needs attention.
    assert_eq!(out.code, 2, "{v:#}\n{}", out.stderr);
    assert_eq!(v["status"], "attention", "{v:#}");
    assert_eq!(step(&v, "cleanup")["status"], "attention", "{v:#}");
    assert!(
        v["attention"]
            .as_array()
            .expect("attention")
            .iter()
            .any(|a| a.as_str().expect("s").contains("dangling reference")),
        "{v:#}"
    );
    for s in ["backup", "verify", "ship", "prune", "prune-remote"] {
        assert_eq!(step(&v, s)["status"], "ok", "{s}: {v:#}");
    }
    // Last night's set and the night before survive, here and off-site;
    // the old one goes, and the summary says so.
    for d in [&dest, &offsite] {
        assert!(
            d.join(&names[0]).is_dir(),
            "{} lost last night's set",
            d.display()
        );
        assert!(d.join(&names[1]).is_dir(), "{}", d.display());
        assert!(!d.join(&names[2]).exists(), "{}: {v:#}", d.display());
    }
    for s in ["prune", "prune-remote"] {
        let msg = step(&v, s)["message"].as_str().expect("message");
        assert!(
            msg.contains(&format!("removed 1 ({})", names[2])),
            "{s}: {msg}"
        );
    }
    assert!(
        step(&v, "prune")["message"]
            .as_str()
            .expect("m")
            .contains("policy: last 3, daily 2"),
        "{v:#}"
    );
    // The drill restored every table, compared it, and dropped its schemas.
    let verify = step(&v, "verify");
    assert!(
        verify["message"]
            .as_str()
            .expect("m")
            .contains("restore drill: restored into drill_* schemas"),
        "{verify:#}"
    );
    let tables = step(&v, "backup")["detail"]["tables"]
        .as_u64()
        .expect("tables");
    assert!(tables > 0);
    assert_eq!(
        verify["detail"]["tables_compared"].as_u64(),
        Some(tables),
        "{verify:#}"
    );
    let left: Vec<String> = spyglass_db::mysql::prelude::Queryable::query(
        admin().conn(),
        "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'drill\\_%'",
    )
    .expect("query");
    assert!(left.is_empty(), "the drill left {left:?}");
    let n = read_json(&notified(&sb));
    assert_eq!(n["status"], "attention");
}

/// `--quiet` prints nothing when all is well (cron mails nothing), and the
/// whole summary when something needs attention.
#[test]
fn quiet_is_quiet_when_all_is_well() {
    let sb = Sandbox::as_root();
    let dest = sb.cwd().join("backups");
    settings(&sb, &dest, "keep_last = 3", "cleanup = \"off\"");
    let out = sb.run(&["nightly", "--quiet"]);
    out.assert_code(0);
    assert_eq!(out.stdout, "", "stdout");
    assert_eq!(out.stderr, "", "stderr");
    assert_eq!(read_json(&notified(&sb))["status"], "ok");
    // Cleanup on: the fixture's dangling references need attention.
    settings(&sb, &dest, "keep_last = 3", "cleanup = \"scan\"");
    // Set names have whole seconds.
    std::thread::sleep(Duration::from_millis(1100));
    let out = sb.run(&["nightly", "--quiet"]);
    out.assert_code(2);
    assert!(
        out.stdout.contains("cleanup       ATTENTION")
            && out.stdout.contains("result: attention (exit 2)"),
        "{}",
        out.stdout
    );
}

/// The dead man's switch: no history is a note (a fresh install is
/// healthy); a newest successful nightly older than `stale_after` is a
/// problem.
#[test]
fn doctor_flags_a_stale_nightly() {
    let sb = Sandbox::as_root();
    let dest = sb.cwd().join("backups");
    std::fs::create_dir_all(&dest).expect("mkdir");
    settings(&sb, &dest, "", "stale_after = \"2h\"");
    let nightly_problems = |v: &Value| -> Vec<String> {
        v["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .filter(|p| p["check"] == "nightly")
            .map(|p| p["message"].as_str().expect("m").to_owned())
            .collect()
    };
    let v = sb.run(&["doctor", "--json"]).json();
    assert!(nightly_problems(&v).is_empty(), "{v:#}");
    assert!(
        v["nightly"]["notes"][0]
            .as_str()
            .expect("note")
            .starts_with("no nightly has run yet"),
        "{v:#}"
    );
    let old = utc(now_unix() - 3 * 3600, "%Y-%m-%dT%H:%M:%SZ");
    std::fs::write(
        dest.join("spyglass-nightly.log"),
        format!(
            "{}\n",
            serde_json::json!({"finished": old, "status": "ok", "steps": [
                {"name": "backup", "status": "ok"}, {"name": "verify", "status": "ok"}]})
        ),
    )
    .expect("write");
    let out = sb.run(&["doctor", "--json"]);
    out.assert_code(1);
    let p = nightly_problems(&out.json());
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("the newest successful nightly (backup and verify) finished 3h ago")
            && p[0].contains("stale_after = 2h"),
        "{p:?}"
    );
}

/// Issue 19: `schedule --print -u backup --password-file F` dropped both,
/// so nightly ran as the DataJoint config's account. They are carried into
/// the cron line and the unit (the file's path, never the password), and
/// the unit has a failure unit that notifies.
#[test]
fn schedule_carries_the_account_and_the_failure_unit() {
    let sb = Sandbox::new();
    sb.write(
        "spyglass-admin.toml",
        "[backup]\ndestination = \"/data/mysql-backups\"\n",
        0o644,
    );
    let pw = sb.write("backup.pw", "s3cret-of-the-backup-account\n", 0o600);
    let pw = pw.canonicalize().expect("pw");
    let args = ["--user", "spyglass_backup", "--password-file", "backup.pw"];
    let out = sb.run(&[&["schedule", "--print"][..], &args].concat());
    out.assert_code(0);
    assert!(
        out.stdout.contains(&format!(
            " nightly --config {} --user spyglass_backup --password-file {} --quiet\n",
            sb.cwd()
                .join("spyglass-admin.toml")
                .canonicalize()
                .expect("c")
                .display(),
            pw.display()
        )),
        "{}",
        out.stdout
    );
    let out = sb.run(&[&["schedule", "--print", "--systemd"][..], &args].concat());
    out.assert_code(0);
    assert!(
        out.stdout.lines().any(|l| l.starts_with("ExecStart=")
            && l.ends_with(&format!(
                " --user spyglass_backup --password-file {}",
                pw.display()
            ))),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("OnFailure=spyglass-nightly-failure.service\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("# /etc/systemd/system/spyglass-nightly-failure.service\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(" nightly --notify-failure --config "),
        "{}",
        out.stdout
    );
    for o in [&out.stdout, &out.stderr] {
        assert!(!o.contains("s3cret"), "{o}");
    }
    // Nobody can type a password at night.
    let out = sb.run(&["schedule", "--print", "--ask-password"]);
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains("--ask-password cannot be scheduled"),
        "{}",
        out.stderr
    );
}

/// Issue 19: nothing wired `users add-backup-user`'s account to nightly.
/// With `[backup] account` and `password_file` nightly logs in as that
/// account (a backup it may not make fails naming it), and doctor says what
/// it lacks for the enabled steps.
#[test]
fn nightly_runs_as_the_backup_account_and_doctor_checks_it() {
    let name = "nightly_bk19";
    crate::support::create_user(name, "pw-nightly-bk19", &["PROCESS ON *.*"]);
    let sb = Sandbox::as_root();
    let dest = sb.cwd().join("backups");
    let pw = sb.write("backup.pw", "pw-nightly-bk19\n", 0o600);
    settings(
        &sb,
        &dest,
        &format!(
            "keep_last = 3\naccount = \"{name}@%\"\npassword_file = \"{}\"",
            pw.display()
        ),
        "cleanup = \"off\"\nrestore_drill = \"daily\"",
    );
    // Only PROCESS: the backup is refused as that account, not done as root.
    let out = sb.run(&["nightly", "--json"]);
    out.assert_code(2);
    let v = out.json();
    let backup = step(&v, "backup");
    assert_eq!(backup["status"], "failed", "{v:#}");
    // Root sees the fixture's schemas; this account sees none.
    assert!(
        backup["message"]
            .as_str()
            .expect("m")
            .starts_with("no schema matches the schema selection"),
        "{backup:#}"
    );
    let missing = |v: &Value| -> Vec<String> {
        v["nightly_account"]["missing"]
            .as_array()
            .unwrap_or_else(|| panic!("{v:#}"))
            .iter()
            .map(|m| m.as_str().expect("s").to_owned())
            .collect()
    };
    let v = sb.run(&["doctor", "--json"]).json();
    assert_eq!(v["nightly_account"]["login"], true, "{v:#}");
    let m = missing(&v);
    assert!(m.iter().any(|m| m.starts_with("backup: SELECT")), "{m:?}");
    assert!(
        m.contains(&"restore drill: CREATE on `drill\\_%`.*".to_owned()),
        "{m:?}"
    );
    let mut a = admin();
    crate::support::sql(
        &mut a,
        &format!("GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON *.* TO '{name}'@'%'"),
    );
    crate::support::sql(
        &mut a,
        &format!("GRANT ALL PRIVILEGES ON `drill\\_%`.* TO '{name}'@'%'"),
    );
    let v = sb.run(&["doctor", "--json"]).json();
    let m = missing(&v);
    assert!(!m.iter().any(|m| m.starts_with("restore drill")), "{m:?}");
    crate::support::sql(&mut a, &format!("DROP USER '{name}'@'%'"));
}
