//! Resolving connection settings, first wins: flags, environment
//! (`DJ_HOST`, `DJ_USER`, `DJ_PASS`, `DJ_PORT`), the DataJoint config file,
//! `~/.my.cnf` `[client]`. A password is never a flag value.

use std::io::IsTerminal;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use spyglass_db::dj_config::{self, DjConfig};
use spyglass_db::{ConnectOptions, DbError, Endpoint, Secret, Session, TlsMode};

use crate::args::ConnectOpts;
use crate::output::UserError;

/// A configuration file we looked for.
#[derive(Debug, Clone, Serialize)]
pub struct FileNote {
    /// What kind of file.
    pub kind: &'static str,
    /// Where.
    pub path: PathBuf,
    /// `read` or `not found`.
    pub status: &'static str,
}

/// The outcome of resolution.
#[derive(Debug)]
pub struct Resolved {
    pub options: ConnectOptions,
    /// Where each setting came from: (setting, source).
    pub origins: Vec<(&'static str, String)>,
    pub files: Vec<FileNote>,
    pub dj: Option<DjConfig>,
    /// Problems that do not stop us (e.g. a readable password file).
    pub warnings: Vec<String>,
    /// True when some source supplied a password (even an empty one).
    pub password_given: bool,
}

/// Looks up an environment variable.
pub type EnvLookup = Box<dyn Fn(&str) -> Option<String>>;

/// Inputs to resolution other than flags; the real ones come from the process.
pub struct Environment {
    pub var: EnvLookup,
    pub cwd: PathBuf,
    pub home: Option<PathBuf>,
}

impl Environment {
    pub fn from_process() -> Self {
        Environment {
            var: Box::new(|k| std::env::var(k).ok()),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            home: std::env::var_os("HOME").map(PathBuf::from),
        }
    }
}

/// Reads the DataJoint config the way DataJoint does: `./dj_local_conf.json`,
/// else `~/.datajoint_config.json`; the first that exists, not merged.
pub fn load_dj_config(
    env: &Environment,
    files: &mut Vec<FileNote>,
) -> anyhow::Result<Option<DjConfig>> {
    let mut candidates = vec![env.cwd.join("dj_local_conf.json")];
    if let Some(home) = &env.home {
        candidates.push(home.join(".datajoint_config.json"));
    }
    for path in candidates {
        if !path.is_file() {
            files.push(FileNote {
                kind: "datajoint",
                path,
                status: "not found",
            });
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| {
            UserError::new(format!(
                "cannot read DataJoint config {}: {e}",
                path.display()
            ))
        })?;
        let cfg = dj_config::parse(&text, &path)?;
        files.push(FileNote {
            kind: "datajoint",
            path,
            status: "read",
        });
        return Ok(Some(cfg));
    }
    Ok(None)
}

/// Resolves connection settings.
pub fn resolve(flags: &ConnectOpts, env: &Environment) -> anyhow::Result<Resolved> {
    let mut files = Vec::new();
    let mut warnings = Vec::new();
    let mut origins: Vec<(&'static str, String)> = Vec::new();
    let dj = load_dj_config(env, &mut files)?;
    let dj_name = |what: &str| {
        format!(
            "{} ({what})",
            dj.as_ref()
                .map(|d| d.path.display().to_string())
                .unwrap_or_default()
        )
    };

    let mycnf_path = env.home.as_ref().map(|h| h.join(".my.cnf"));
    let mycnf = match &mycnf_path {
        Some(p) if p.is_file() => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| UserError::new(format!("cannot read {}: {e}", p.display())))?;
            files.push(FileNote {
                kind: "my.cnf",
                path: p.clone(),
                status: "read",
            });
            crate::mycnf::parse_client_section(&text)
        }
        Some(p) => {
            files.push(FileNote {
                kind: "my.cnf",
                path: p.clone(),
                status: "not found",
            });
            Default::default()
        }
        None => Default::default(),
    };
    let cnf_name = |k: &str| {
        format!(
            "{} [client] {k}",
            mycnf_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )
    };

    // Host (and a port it may carry).
    let mut host_port: Option<u16> = None;
    let mut pick_host = |value: String,
                         origin: String,
                         origins: &mut Vec<(&'static str, String)>|
     -> anyhow::Result<String> {
        let (h, p) = dj_config::split_host_port(&value)
            .map_err(|d| UserError::new(format!("host '{value}' from {origin} {d}")))?;
        if p.is_some() {
            host_port = p;
        }
        origins.push(("host", origin));
        Ok(h)
    };
    let host = if let Some(h) = &flags.host {
        pick_host(h.clone(), "--host".into(), &mut origins)?
    } else if let Some(h) = (env.var)("DJ_HOST").filter(|v| !v.is_empty()) {
        pick_host(h, "DJ_HOST".into(), &mut origins)?
    } else if let Some(h) = dj.as_ref().and_then(|d| d.host.clone()) {
        // The DataJoint parser already split host:port into host and port.
        origins.push(("host", dj_name("database.host")));
        h
    } else if let Some(h) = mycnf.get("host") {
        pick_host(h.clone(), cnf_name("host"), &mut origins)?
    } else {
        origins.push(("host", "default".into()));
        "localhost".into()
    };

    let parse_port = |v: &str, origin: &str| -> anyhow::Result<u16> {
        v.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                UserError::new(format!(
                    "port '{v}' from {origin} is not a number from 1 to 65535"
                ))
                .into()
            })
    };
    let port = if let Some(p) = flags.port {
        origins.push(("port", "--port".into()));
        p
    } else if let Some(p) = host_port {
        origins.push(("port", "host:port".into()));
        p
    } else if let Some(p) = (env.var)("DJ_PORT").filter(|v| !v.is_empty()) {
        origins.push(("port", "DJ_PORT".into()));
        parse_port(&p, "DJ_PORT")?
    } else if let Some(p) = dj.as_ref().and_then(|d| d.port) {
        origins.push(("port", dj_name("database.port")));
        p
    } else if let Some(p) = mycnf.get("port") {
        origins.push(("port", cnf_name("port")));
        parse_port(p, &cnf_name("port"))?
    } else {
        origins.push(("port", "default".into()));
        3306
    };

    let user = if let Some(u) = &flags.user {
        origins.push(("user", "--user".into()));
        u.clone()
    } else if let Some(u) = (env.var)("DJ_USER").filter(|v| !v.is_empty()) {
        origins.push(("user", "DJ_USER".into()));
        u
    } else if let Some(u) = dj.as_ref().and_then(|d| d.user.clone()) {
        origins.push(("user", dj_name("database.user")));
        u
    } else if let Some(u) = mycnf.get("user") {
        origins.push(("user", cnf_name("user")));
        u.clone()
    } else if let Some(u) = (env.var)("USER").filter(|v| !v.is_empty()) {
        origins.push(("user", "login name".into()));
        u
    } else {
        return Err(UserError::new("no user name given")
            .hint("pass --user, set DJ_USER, or set database.user in the DataJoint config")
            .into());
    };

    let socket = match (&flags.socket, mycnf.get("socket")) {
        (Some(s), _) => Some(s.clone()),
        // A my.cnf socket only applies when nothing chose a TCP host explicitly.
        (None, Some(s)) if origins.iter().any(|(k, o)| *k == "host" && o == "default") => {
            Some(PathBuf::from(s))
        }
        _ => None,
    };

    let mut password = None;
    if let Some(path) = &flags.password_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            UserError::new(format!("cannot read password file {}: {e}", path.display()))
        })?;
        warn_if_readable(path, &mut warnings);
        password = Some(Secret::new(text.lines().next().unwrap_or("").to_owned()));
        origins.push(("password", format!("--password-file {}", path.display())));
    } else if flags.ask_password {
        password = Some(prompt(&user, &host)?);
        origins.push(("password", "prompt".into()));
    } else if let Some(p) = (env.var)("DJ_PASS") {
        password = Some(Secret::new(p));
        origins.push(("password", "DJ_PASS".into()));
    } else if let Some(p) = dj.as_ref().and_then(|d| d.password.clone()) {
        if let Some(d) = &dj {
            warn_if_readable(&d.path, &mut warnings);
        }
        password = Some(p);
        origins.push(("password", dj_name("database.password")));
    } else if let Some(p) = mycnf.get("password") {
        if let Some(path) = &mycnf_path {
            warn_if_readable(path, &mut warnings);
        }
        password = Some(Secret::new(p.clone()));
        origins.push(("password", cnf_name("password")));
    }
    let password_given = password.is_some();

    let tls = dj
        .as_ref()
        .and_then(|d| d.use_tls)
        .unwrap_or(TlsMode::Prefer);
    let mut options = ConnectOptions::tcp(host, port, user).tls(tls);
    options.password = password;
    if let Some(s) = socket {
        options.endpoint = Endpoint::Socket(s);
        origins.push(("socket", "--socket or my.cnf".into()));
    }
    Ok(Resolved {
        options,
        origins,
        files,
        dj,
        warnings,
        password_given,
    })
}

fn warn_if_readable(path: &Path, warnings: &mut Vec<String>) {
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o044 != 0 {
            warnings.push(format!(
                "{} holds a password and is readable by other users (mode {mode:04o}); run: chmod 600 {}",
                path.display(),
                path.display()
            ));
        }
    }
}

fn prompt(user: &str, host: &str) -> anyhow::Result<Secret> {
    if !std::io::stdin().is_terminal() {
        return Err(UserError::new("cannot prompt for a password: no terminal")
            .hint("set DJ_PASS, database.password in the DataJoint config, or use --password-file FILE")
            .into());
    }
    let p = rpassword::prompt_password(format!("Password for {user}@{host}: "))?;
    Ok(Secret::new(p))
}

/// Connects; when no password was given and the server refuses, asks for one
/// on a terminal and tries once more.
pub fn connect(resolved: &mut Resolved) -> anyhow::Result<Session> {
    match spyglass_db::connect(&resolved.options) {
        Ok(s) => Ok(s),
        Err(DbError::AccessDenied { .. })
            if !resolved.password_given && std::io::stdin().is_terminal() =>
        {
            let host = resolved.options.endpoint.to_string();
            let p = prompt(&resolved.options.user, &host)?;
            resolved.options.password = Some(p);
            resolved.password_given = true;
            Ok(spyglass_db::connect(&resolved.options)?)
        }
        Err(e) => Err(e.into()),
    }
}
