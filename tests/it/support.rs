//! Test harness: the server under test, a sandboxed way to run the binary,
//! and throwaway accounts named after the test.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::{ConnectOptions, Secret, Session};

/// The server `cargo xtask itest` started.
#[derive(Debug, Clone)]
pub struct Server {
    pub flavor: String,
    pub host: String,
    pub port: u16,
    pub user: String,
}

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: server tests run through `cargo xtask itest`, which starts the server")
    })
}

pub fn server() -> Server {
    Server {
        flavor: required("SPYGLASS_IT_FLAVOR"),
        host: required("SPYGLASS_IT_HOST"),
        port: required("SPYGLASS_IT_PORT")
            .parse()
            .expect("SPYGLASS_IT_PORT is a port"),
        user: required("SPYGLASS_IT_USER"),
    }
}

pub fn fixture_root() -> PathBuf {
    PathBuf::from(required("SPYGLASS_IT_FIXTURE"))
}

pub fn bin() -> PathBuf {
    let p = PathBuf::from(required("SPYGLASS_ADMIN_BIN"));
    assert!(
        p.is_file(),
        "{} is missing: run through cargo xtask itest",
        p.display()
    );
    p
}

/// The Python interpreter of the DataJoint 0.14.10 virtual environment
/// `cargo xtask itest` makes (once per machine, in /var/cache/spyglass-admin).
pub fn python() -> PathBuf {
    let p = PathBuf::from(std::env::var("SPYGLASS_IT_PYTHON").unwrap_or_else(|_| {
        panic!(
            "SPYGLASS_IT_PYTHON is not set: the DataJoint tests run through `cargo xtask itest`, \
             which installs datajoint==0.14.10 into a virtual environment and points this at its python"
        )
    }));
    assert!(
        p.is_file(),
        "SPYGLASS_IT_PYTHON={} is missing: rerun cargo xtask itest to reinstall DataJoint",
        p.display()
    );
    p
}

/// An admin session on the server under test.
pub fn admin() -> Session {
    let s = server();
    let opts = ConnectOptions::tcp(&s.host, s.port, &s.user).password(Secret::new(""));
    spyglass_db::connect(&opts).expect("admin connects to the test server")
}

pub fn sql(session: &mut Session, statement: &str) {
    session
        .conn()
        .query_drop(statement)
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

/// A throwaway account `name@'%'`, dropped first if a previous run left it.
pub fn create_user(name: &str, password: &str, grants: &[&str]) {
    let mut a = admin();
    sql(&mut a, &format!("DROP USER IF EXISTS '{name}'@'%'"));
    sql(
        &mut a,
        &format!("CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'"),
    );
    for g in grants {
        sql(&mut a, &format!("GRANT {g} TO '{name}'@'%'"));
    }
}

/// A working directory and HOME of its own, and a clean environment, so the
/// binary reads only the config files a test puts there.
pub struct Sandbox {
    pub cwd: tempfile::TempDir,
    pub home: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Sandbox {
    pub fn new() -> Self {
        Sandbox {
            cwd: tempfile::tempdir().expect("tempdir"),
            home: tempfile::tempdir().expect("tempdir"),
            env: Vec::new(),
        }
    }

    /// Connection through the DJ_* environment, as root of the test server.
    pub fn as_root() -> Self {
        let s = server();
        let mut sb = Sandbox::new();
        sb.env("DJ_HOST", &s.host)
            .env("DJ_PORT", &s.port.to_string())
            .env("DJ_USER", &s.user)
            .env("DJ_PASS", "");
        sb
    }

    pub fn env(&mut self, k: &str, v: &str) -> &mut Self {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn cwd(&self) -> &Path {
        self.cwd.path()
    }

    /// Writes a file relative to cwd (or absolute) with the given mode.
    pub fn write(&self, rel: &str, text: &str, mode: u32) -> PathBuf {
        let p = self.cwd.path().join(rel);
        std::fs::write(&p, text).expect("write test file");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p
    }

    pub fn write_home(&self, rel: &str, text: &str, mode: u32) -> PathBuf {
        let p = self.home.path().join(rel);
        std::fs::write(&p, text).expect("write test file");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .current_dir(self.cwd.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("USER", "nobody-in-particular");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Outcome {
        let out = self.command(args).output().expect("run spyglass-admin");
        Outcome::from(out)
    }
}

/// Runs the binary with `stdin` piped in.
pub fn run_stdin(sb: &Sandbox, args: &[&str], stdin: &str) -> Outcome {
    let mut child = sb
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn spyglass-admin");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    Outcome::from(child.wait_with_output().expect("wait"))
}

/// The binary, connecting as `user` through the DJ_* environment.
pub fn as_user(user: &str, password: &str) -> Sandbox {
    let s = server();
    let mut sb = Sandbox::new();
    sb.env("DJ_HOST", &s.host)
        .env("DJ_PORT", &s.port.to_string())
        .env("DJ_USER", user)
        .env("DJ_PASS", password);
    sb
}

/// What a run of the binary produced.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Outcome {
    fn from(o: Output) -> Self {
        Outcome {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Outcome {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
    /// Errors are one `error:` line, optional causes and a hint, never a panic or backtrace.
    #[track_caller]
    pub fn assert_clean_error(&self) -> &Self {
        assert!(
            self.stderr.starts_with("error: "),
            "stderr:\n{}",
            self.stderr
        );
        assert!(
            !self.stderr.contains("panicked"),
            "stderr:\n{}",
            self.stderr
        );
        assert!(
            !self.stderr.contains("RUST_BACKTRACE"),
            "stderr:\n{}",
            self.stderr
        );
        self
    }
}

/// A DataJoint config pointing at the test server.
pub fn dj_config(user: &str, password: Option<&str>, extra: serde_json::Value) -> String {
    let s = server();
    let mut v = serde_json::json!({
        "database.host": s.host,
        "database.port": s.port,
        "database.user": user,
    });
    if let Some(p) = password {
        v["database.password"] = p.into();
    }
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, val) in e {
            o.insert(k.clone(), val.clone());
        }
    }
    serde_json::to_string_pretty(&v).expect("json")
}

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let p = l.local_addr().expect("addr").port();
    drop(l);
    p
}

/// Held by every test that creates, drifts or re-initialises the server-wide
/// roles (`dj_guest`, ...) or runs `users plan/apply` (which converges them):
/// tests run in parallel threads of one binary.
pub static ROLES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`ROLES`], also after another holder panicked.
pub fn roles_lock() -> std::sync::MutexGuard<'static, ()> {
    ROLES.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs a DataJoint script (its text) under the test venv's python as the
/// server's admin account on `port`, nothing of the developer's in its
/// environment; returns the JSON its last line prints.
pub fn datajoint_script(script: &str, args: &[&str], port: u16) -> serde_json::Value {
    let s = server();
    let cwd = tempfile::tempdir().expect("tempdir");
    let path = cwd.path().join("dj_script.py");
    std::fs::write(&path, script).expect("write the DataJoint script");
    let out = std::process::Command::new(python())
        .arg(&path)
        .args(args)
        .current_dir(cwd.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", cwd.path())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("DJ_HOST", format!("{}:{port}", s.host))
        .env("DJ_USER", &s.user)
        .env("DJ_PASS", "")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python().display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "DataJoint {args:?} on port {port}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim().lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("DataJoint {args:?} printed no JSON ({e}): {stdout}"))
}
