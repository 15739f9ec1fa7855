//! Resolving connection settings: this module reads the files (DataJoint
//! config, `~/.my.cnf`, a password file) and prompts; the precedence (flags,
//! environment, DataJoint file, `~/.my.cnf`) is [`spyglass_db::resolve`]'s.
//! A password is never a flag value.

use std::io::IsTerminal;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use spyglass_db::dj_config::{self, DjConfig};
use spyglass_db::resolve::{Flags, Inputs, MyCnf};
use spyglass_db::{ConnectOptions, DbError, Endpoint, Secret, Session};

use crate::args::{ConnectOpts, TlsModeArg};
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

/// Resolves connection settings: reads the files, then applies the
/// precedence in [`spyglass_db::resolve`].
pub fn resolve(flags: &ConnectOpts, env: &Environment) -> anyhow::Result<Resolved> {
    let mut files = Vec::new();
    let dj = load_dj_config(env, &mut files)?;
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
            Some(MyCnf {
                path: p.clone(),
                values: spyglass_db::mycnf::parse_client_section(&text),
            })
        }
        Some(p) => {
            files.push(FileNote {
                kind: "my.cnf",
                path: p.clone(),
                status: "not found",
            });
            None
        }
        None => None,
    };
    let mut warnings = Vec::new();
    let mut password = None;
    if let Some(path) = &flags.password_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            UserError::new(format!("cannot read password file {}: {e}", path.display()))
        })?;
        warn_if_readable(path, &mut warnings);
        password = Some((
            Secret::new(text.lines().next().unwrap_or("").to_owned()),
            format!("--password-file {}", path.display()),
        ));
    }
    let lib_flags = Flags {
        host: flags.host.clone(),
        port: flags.port,
        user: flags.user.clone(),
        socket: flags.socket.clone(),
        password,
        tls_mode: flags.tls_mode.map(TlsModeArg::mode),
        tls_ca: flags.tls_ca.clone(),
        tls_cert: flags.tls_cert.clone(),
        tls_key: flags.tls_key.clone(),
    };
    let r = spyglass_db::resolve::resolve(&Inputs {
        flags: &lib_flags,
        env: &*env.var,
        dj: dj.as_ref(),
        mycnf: mycnf.as_ref(),
    })?;
    let mut origins = r.origins;
    let mut options = r.options;
    let mut password_given = r.password_given;
    warnings.extend(r.warnings);
    if flags.password_file.is_none() && flags.ask_password {
        let host = match &options.endpoint {
            Endpoint::Tcp { host, .. } => host.clone(),
            Endpoint::Socket(p) => p.display().to_string(),
        };
        options.password = Some(prompt(&options.user, &host)?);
        options.password_source = Some("the prompt (--ask-password)".into());
        password_given = true;
        origins.retain(|(k, _)| *k != "password");
        origins.push(("password", "prompt".into()));
    }
    // Files named by the settings are checked before anything connects.
    options.tls.check(
        &origins
            .iter()
            .find(|(k, _)| *k == "tls mode")
            .map(|(_, o)| o.clone())
            .unwrap_or_default(),
    )?;
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
            resolved.options.password_source = Some("the prompt".into());
            resolved.password_given = true;
            Ok(spyglass_db::connect(&resolved.options)?)
        }
        Err(e) => Err(e.into()),
    }
}
