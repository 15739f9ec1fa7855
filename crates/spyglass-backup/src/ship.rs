//! Off-site copies: [`ship`] a complete set to `ssh://[user@]host[:port]/path`
//! or to a local directory (a mounted NAS), verified on arrival.
//!
//! The copy is written into `<path>/<name>.partial/`, every file's sha256 is
//! checked against the local manifest on the target (`sha256sum` run over
//! ssh, or, with `read_back`, by streaming the files back through `tar` and
//! hashing them here), and only then is it renamed to `<path>/<name>`. So a
//! set on a target without `.partial` is a verified copy, which is what
//! [`prune_target`] relies on.
//!
//! Transport: rsync over ssh when both ends have it (`--partial`, so an
//! interrupted transfer resumes from the bytes already there), else sftp in
//! batch mode (resumes per file: files already on the target with the right
//! sha256 are not sent again). ssh always runs with `BatchMode=yes`, so
//! nothing ever prompts in cron; the user's own ssh setup (`~/.ssh/config`,
//! agent, `known_hosts`) is used, plus an identity file or ssh_config file
//! when given. Only the identity file's *path* is passed to ssh; no key or
//! password passes through this crate. An unknown host key is an error,
//! never accepted silently.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::compress::{file_sha256, hex};
use crate::list::{self, Status};
use crate::manifest::Manifest;
use crate::names;
use crate::pack::set_files;
use crate::restore;
use crate::retention::{self, Decision, Item, Policy};

/// Why shipping (or pruning a target) failed. Every variant names the host
/// (or directory) and, where there is one, the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShipError {
    /// The target string is not usable.
    #[error("ship target '{target}': {detail}")]
    BadTarget {
        /// As given.
        target: String,
        /// What is wrong.
        detail: String,
    },
    /// The local set cannot be shipped.
    #[error(transparent)]
    Set(Box<crate::Error>),
    /// No connection.
    #[error("cannot reach {host}: {detail}")]
    Unreachable {
        /// Host (and port).
        host: String,
        /// ssh's words.
        detail: String,
    },
    /// The key (or agent) was refused.
    #[error("{host} refused the login of {user}: {detail}")]
    AuthFailed {
        /// Host.
        host: String,
        /// Remote account.
        user: String,
        /// ssh's words.
        detail: String,
    },
    /// The host key is unknown or changed.
    #[error("the host key of {host} is not known here or has changed ({detail})")]
    HostKey {
        /// Host.
        host: String,
        /// ssh's words.
        detail: String,
    },
    /// The target ran out of space.
    #[error("{host}: no space left writing {file}")]
    DiskFull {
        /// Host, or `local` for a directory target.
        host: String,
        /// The file being written.
        file: String,
    },
    /// Files that arrived do not match the manifest, even after sending them again.
    #[error("{host}: {} does not match the manifest after transfer{}", files[0], if files.len() > 1 { format!(" (and {} more file(s))", files.len() - 1) } else { String::new() })]
    Mismatch {
        /// Host.
        host: String,
        /// Remote paths that did not verify.
        files: Vec<String>,
    },
    /// A complete copy already on the target does not verify.
    #[error("{host}: the copy already there is damaged: {}{}", files[0], if files.len() > 1 { format!(" (and {} more file(s))", files.len() - 1) } else { String::new() })]
    TargetDamaged {
        /// Host.
        host: String,
        /// Remote paths that did not verify.
        files: Vec<String>,
    },
    /// A remote command failed for another reason.
    #[error("{host}: {what} failed: {detail}")]
    Remote {
        /// Host.
        host: String,
        /// What we were doing.
        what: String,
        /// Its error output.
        detail: String,
    },
    /// A local file operation failed.
    #[error("{what} {}", path.display())]
    Io {
        /// What we were doing.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl From<crate::Error> for ShipError {
    fn from(e: crate::Error) -> Self {
        ShipError::Set(Box::new(e))
    }
}

fn io_err(
    what: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> ShipError {
    let path = path.into();
    move |source| {
        if source.raw_os_error() == Some(28) || source.raw_os_error() == Some(122) {
            return ShipError::DiskFull {
                host: "local".into(),
                file: path.display().to_string(),
            };
        }
        ShipError::Io { what, path, source }
    }
}

/// Where sets go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `ssh://[user@]host[:port]/path`.
    Ssh {
        /// Remote account (default: ssh's choice).
        user: Option<String>,
        /// Host name or address.
        host: String,
        /// Port (default: ssh's choice).
        port: Option<u16>,
        /// Directory on the host; relative paths are under the account's home.
        path: String,
    },
    /// A directory on this machine.
    Local(PathBuf),
}

/// Characters a remote path may not hold: they would need quoting in a
/// remote shell, an rsync `-e` string or an sftp batch line.
const UNSAFE: &[char] = &['\'', '"', '\\', '\n', '\r', '*', '?', '[', ']', '`', '$'];

impl Target {
    /// Parses `ssh://[user@]host[:port]/path` (a path starting `/~/` is
    /// relative to the account's home) or a local directory.
    pub fn parse(s: &str) -> Result<Target, ShipError> {
        let bad = |detail: &str| ShipError::BadTarget {
            target: s.to_owned(),
            detail: detail.to_owned(),
        };
        if let Some(rest) = s.strip_prefix("ssh://") {
            let (authority, path) = rest
                .split_once('/')
                .ok_or_else(|| bad("needs a path: ssh://user@host[:port]/path"))?;
            let (user, hostport) = match authority.rsplit_once('@') {
                Some((u, h)) => (Some(u.to_owned()), h),
                None => (None, authority),
            };
            let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
                let (h, tail) = h
                    .split_once(']')
                    .ok_or_else(|| bad("unclosed [ in the host"))?;
                (h.to_owned(), tail.strip_prefix(':'))
            } else {
                match hostport.split_once(':') {
                    Some((h, p)) => (h.to_owned(), Some(p)),
                    None => (hostport.to_owned(), None),
                }
            };
            let port = port
                .map(|p| {
                    p.parse::<u16>()
                        .map_err(|_| bad("the port is not a number from 1 to 65535"))
                })
                .transpose()?;
            if host.is_empty()
                || host.starts_with('-')
                || host.contains(|c: char| c.is_whitespace() || c == '/')
            {
                return Err(bad("the host name is missing or not valid"));
            }
            if user.as_deref().is_some_and(|u| {
                u.is_empty()
                    || u.starts_with('-')
                    || u.contains(|c: char| c.is_whitespace() || UNSAFE.contains(&c))
            }) {
                return Err(bad("the user name is not valid"));
            }
            let path = match path.strip_prefix("~/") {
                Some(rel) => rel.to_owned(),
                None if path == "~" || path.is_empty() => ".".to_owned(),
                None => format!("/{path}"),
            };
            if path.contains(UNSAFE) {
                return Err(bad("the path holds a quote, backslash, glob or $ character; choose a plainer directory name"));
            }
            let path = match path.trim_end_matches('/') {
                "" => "/".to_owned(),
                p => p.to_owned(),
            };
            return Ok(Target::Ssh {
                user,
                host,
                port,
                path,
            });
        }
        if s.contains("://") {
            return Err(bad(
                "only ssh:// targets and local directories are supported",
            ));
        }
        // scp-style user@host:path is easy to type by habit and would become a
        // local directory of that name.
        if let Some((before, _)) = s.split_once(':') {
            if !before.contains('/') {
                return Err(bad("looks like scp's user@host:path; write ssh://user@host/path (or ./dir for a local directory)"));
            }
        }
        if s.is_empty() {
            return Err(bad("empty"));
        }
        Ok(Target::Local(PathBuf::from(s)))
    }

    /// The host (with port), or `local` for a directory target, for messages.
    pub fn host(&self) -> String {
        match self {
            Target::Ssh {
                host,
                port: Some(p),
                ..
            } => format!("{host}:{p}"),
            Target::Ssh { host, .. } => host.clone(),
            Target::Local(_) => "local".into(),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Ssh {
                user,
                host,
                port,
                path,
            } => {
                write!(f, "ssh://")?;
                if let Some(u) = user {
                    write!(f, "{u}@")?;
                }
                write!(f, "{host}")?;
                if let Some(p) = port {
                    write!(f, ":{p}")?;
                }
                if path.starts_with('/') {
                    write!(f, "{path}")
                } else {
                    write!(f, "/~/{path}")
                }
            }
            Target::Local(p) => write!(f, "{}", p.display()),
        }
    }
}

/// How files travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// rsync when both ends have it, else sftp.
    #[default]
    Auto,
    /// rsync over ssh (fails when either end lacks it).
    Rsync,
    /// sftp in batch mode.
    Sftp,
}

/// ssh settings for every connection.
#[derive(Debug, Clone, Default)]
pub struct SshOptions {
    /// Private key file (`ssh -i`, with `IdentitiesOnly=yes`).
    pub identity: Option<PathBuf>,
    /// An ssh_config file used instead of `~/.ssh/config` (`ssh -F`).
    pub config: Option<PathBuf>,
    /// Seconds to wait for a connection.
    pub connect_timeout: u32,
}

/// Options of [`ship`].
#[derive(Debug, Clone, Default)]
pub struct ShipOptions {
    /// ssh settings.
    pub ssh: SshOptions,
    /// rsync, sftp or whichever is there.
    pub transport: Transport,
    /// Verify by reading every file back instead of running `sha256sum` on the host.
    pub read_back: bool,
    /// When a complete copy on the target does not verify, send the damaged files again.
    pub repair: bool,
    /// Bandwidth limit in KiB/s (0: none).
    pub bwlimit_kib: u32,
    /// Let rsync draw its progress line on our stderr.
    pub show_transfer: bool,
}

/// What [`ship`] did. The JSON form is part of `backup ship --json`.
#[derive(Debug, Clone, Serialize)]
pub struct ShipReport {
    /// Set name.
    pub set: String,
    /// Where it went (the verified copy).
    pub target: String,
    /// `rsync`, `sftp` or `copy` (local directory); `none` when it was already there.
    pub transport: String,
    /// How the copy was verified: `sha256sum` on the host, `read-back`, or `local`.
    pub verified_by: String,
    /// Files verified.
    pub files: usize,
    /// Bytes verified.
    pub bytes: u64,
    /// True when a verified copy was already on the target (nothing sent).
    pub already_there: bool,
    /// Files that did not verify after the first transfer and were sent again.
    pub resent: Vec<String>,
    /// Seconds taken.
    pub seconds: f64,
}

/// One side we can ship to.
enum Side<'a> {
    Ssh {
        user: Option<&'a str>,
        host: &'a str,
        port: Option<u16>,
        base: &'a str,
        opts: &'a SshOptions,
    },
    Local {
        base: &'a Path,
    },
}

/// What a first look at the target found.
struct Probe {
    rsync: bool,
    sha256sum: bool,
    dirs: Vec<String>,
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Side<'_> {
    fn of<'a>(target: &'a Target, opts: &'a ShipOptions) -> Side<'a> {
        Side::of_ssh(target, &opts.ssh)
    }

    fn of_ssh<'a>(target: &'a Target, ssh: &'a SshOptions) -> Side<'a> {
        match target {
            Target::Ssh {
                user,
                host,
                port,
                path,
            } => Side::Ssh {
                user: user.as_deref(),
                host,
                port: *port,
                base: path,
                opts: ssh,
            },
            Target::Local(p) => Side::Local { base: p },
        }
    }

    fn host(&self) -> String {
        match self {
            Side::Ssh {
                host,
                port: Some(p),
                ..
            } => format!("{host}:{p}"),
            Side::Ssh { host, .. } => host.to_string(),
            Side::Local { .. } => "local".into(),
        }
    }

    /// Path on the target of `rel` (relative to the base directory).
    fn path(&self, rel: &str) -> String {
        match self {
            Side::Ssh { base, .. } => format!("{base}/{rel}"),
            Side::Local { base } => base.join(rel).display().to_string(),
        }
    }

    /// `ssh` options shared by ssh, rsync's `-e` and sftp (port flag aside).
    fn ssh_options(opts: &SshOptions) -> Vec<String> {
        let mut v = vec![
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            format!("ConnectTimeout={}", opts.connect_timeout.max(1)),
        ];
        v.extend([
            "-o".into(),
            "ServerAliveInterval=15".into(),
            "-o".into(),
            "ServerAliveCountMax=4".into(),
        ]);
        if let Some(c) = &opts.config {
            v.extend(["-F".into(), c.display().to_string()]);
        }
        if let Some(i) = &opts.identity {
            v.extend([
                "-i".into(),
                i.display().to_string(),
                "-o".into(),
                "IdentitiesOnly=yes".into(),
            ]);
        }
        v
    }

    fn destination(user: Option<&str>, host: &str) -> String {
        match user {
            Some(u) => format!("{u}@{host}"),
            None => host.to_owned(),
        }
    }

    /// Runs `script` with `sh -c` on the host; exit 255 is ssh's own failure.
    fn remote(&self, what: &str, script: &str) -> Result<std::process::Output, ShipError> {
        let Side::Ssh {
            user,
            host,
            port,
            opts,
            ..
        } = self
        else {
            return Err(ShipError::Remote {
                host: self.host(),
                what: what.into(),
                detail: "not an ssh target".into(),
            });
        };
        let mut c = Command::new("ssh");
        c.args(Self::ssh_options(opts));
        if let Some(p) = port {
            c.args(["-p", &p.to_string()]);
        }
        c.arg("--").arg(Self::destination(*user, host)).arg(script);
        let out = c
            .stdin(Stdio::null())
            .output()
            .map_err(|e| ShipError::Remote {
                host: self.host(),
                what: what.into(),
                detail: format!("cannot run ssh: {e}"),
            })?;
        if out.status.code() == Some(255) {
            return Err(classify(
                &self.host(),
                user.unwrap_or("(ssh default user)"),
                what,
                &String::from_utf8_lossy(&out.stderr),
            ));
        }
        Ok(out)
    }

    fn remote_ok(&self, what: &str, script: &str) -> Result<Vec<u8>, ShipError> {
        let out = self.remote(what, script)?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(classify(&self.host(), "", what, &err));
        }
        Ok(out.stdout)
    }

    /// Creates the base directory and looks at what is there.
    fn probe(&self, create: bool) -> Result<Probe, ShipError> {
        match self {
            Side::Ssh { base, .. } => {
                let b = sh_quote(base);
                let prep = if create {
                    format!("mkdir -p -- {b} && ")
                } else {
                    String::new()
                };
                let script = format!(
                    "{prep}cd -- {b} && {{ command -v rsync >/dev/null 2>&1 && echo 'HAVE rsync'; command -v sha256sum >/dev/null 2>&1 && echo 'HAVE sha256sum'; for d in *; do [ -d \"$d\" ] && printf 'DIR %s\\n' \"$d\"; done; true; }}"
                );
                let out = self.remote_ok(&format!("looking at {base}"), &script)?;
                let text = String::from_utf8_lossy(&out);
                let mut p = Probe {
                    rsync: false,
                    sha256sum: false,
                    dirs: Vec::new(),
                };
                for line in text.lines() {
                    match line {
                        "HAVE rsync" => p.rsync = true,
                        "HAVE sha256sum" => p.sha256sum = true,
                        l => {
                            if let Some(d) = l.strip_prefix("DIR ") {
                                p.dirs.push(d.to_owned());
                            }
                        }
                    }
                }
                Ok(p)
            }
            Side::Local { base } => {
                if create {
                    std::fs::create_dir_all(base).map_err(io_err("creating", *base))?;
                }
                let mut dirs = Vec::new();
                for e in std::fs::read_dir(base)
                    .map_err(io_err("reading", *base))?
                    .flatten()
                {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        dirs.push(e.file_name().to_string_lossy().into_owned());
                    }
                }
                Ok(Probe {
                    rsync: false,
                    sha256sum: true,
                    dirs,
                })
            }
        }
    }

    /// sha256 of every file under `dir` (relative paths).
    fn hashes(&self, dir: &str, read_back: bool) -> Result<BTreeMap<String, String>, ShipError> {
        match self {
            Side::Ssh { .. } if !read_back => {
                let d = sh_quote(&self.path(dir));
                let out = self.remote_ok(
                    &format!("checking {}", self.path(dir)),
                    // One sha256sum per core on the host (each prints its few
                    // lines in one write, so lines never interleave).
                    &format!(
                        "cd -- {d} && P=$(nproc 2>/dev/null || echo 2) && find . -type f -print0 | xargs -0 -n 4 -P \"$P\" sha256sum --"
                    ),
                )?;
                let mut map = BTreeMap::new();
                for line in String::from_utf8_lossy(&out).lines() {
                    if let Some((sum, path)) = line.split_once("  ") {
                        map.insert(path.trim_start_matches("./").to_owned(), sum.to_owned());
                    }
                }
                Ok(map)
            }
            Side::Ssh {
                user,
                host,
                port,
                opts,
                ..
            } => {
                // Read back: the host streams the files as a tar, we hash them here.
                let d = sh_quote(&self.path(dir));
                let mut c = Command::new("ssh");
                c.args(Self::ssh_options(opts));
                if let Some(p) = port {
                    c.args(["-p", &p.to_string()]);
                }
                c.arg("--")
                    .arg(Self::destination(*user, host))
                    .arg(format!("cd -- {d} && tar cf - ."));
                let what = format!("reading back {}", self.path(dir));
                let mut child = c
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| ShipError::Remote {
                        host: self.host(),
                        what: what.clone(),
                        detail: format!("cannot run ssh: {e}"),
                    })?;
                let mut map = BTreeMap::new();
                let read = (|| -> std::io::Result<()> {
                    let Some(stdout) = child.stdout.take() else {
                        return Ok(());
                    };
                    let mut a =
                        tar::Archive::new(std::io::BufReader::with_capacity(1 << 20, stdout));
                    for e in a.entries()? {
                        let mut e = e?;
                        if !e.header().entry_type().is_file() {
                            continue;
                        }
                        let path = e
                            .path()?
                            .to_string_lossy()
                            .trim_start_matches("./")
                            .to_owned();
                        let mut h = Sha256::new();
                        let mut buf = vec![0u8; 1 << 20];
                        loop {
                            let n = e.read(&mut buf)?;
                            if n == 0 {
                                break;
                            }
                            h.update(&buf[..n]);
                        }
                        map.insert(path, hex(&h.finalize()));
                    }
                    Ok(())
                })();
                let out = child.wait_with_output().map_err(|e| ShipError::Remote {
                    host: self.host(),
                    what: what.clone(),
                    detail: e.to_string(),
                })?;
                if !out.status.success() || read.is_err() {
                    let err = String::from_utf8_lossy(&out.stderr).into_owned();
                    let detail = if err.trim().is_empty() {
                        read.err().map(|e| e.to_string()).unwrap_or_default()
                    } else {
                        err
                    };
                    return Err(classify(&self.host(), user.unwrap_or(""), &what, &detail));
                }
                Ok(map)
            }
            Side::Local { base } => {
                let root = base.join(dir);
                let mut files = Vec::new();
                walk_files(&root, &root, &mut files).map_err(io_err("reading", &root))?;
                let mut map = BTreeMap::new();
                for rel in files {
                    let (_, sum) = file_sha256(&root.join(&rel))
                        .map_err(io_err("reading", root.join(&rel)))?;
                    map.insert(rel, sum);
                }
                Ok(map)
            }
        }
    }

    /// Removes files inside `dir` (before sending them again).
    fn remove_files(&self, dir: &str, files: &[String]) -> Result<(), ShipError> {
        match self {
            Side::Ssh { .. } => {
                let d = sh_quote(&self.path(dir));
                let list: Vec<String> = files.iter().map(|f| sh_quote(f)).collect();
                self.remote_ok(
                    "removing damaged files",
                    &format!("cd -- {d} && rm -f -- {}", list.join(" ")),
                )?;
                Ok(())
            }
            Side::Local { base } => {
                for f in files {
                    let p = base.join(dir).join(f);
                    match std::fs::remove_file(&p) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(io_err("removing", p)(e))
                        }
                        _ => {}
                    }
                }
                Ok(())
            }
        }
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), ShipError> {
        match self {
            Side::Ssh { .. } => {
                let (f, t) = (sh_quote(&self.path(from)), sh_quote(&self.path(to)));
                self.remote_ok(
                    &format!("renaming {} into place", self.path(to)),
                    &format!(
                        "if [ -e {t} ]; then echo 'already exists' >&2; exit 1; fi; mv -- {f} {t}"
                    ),
                )?;
                Ok(())
            }
            Side::Local { base } => {
                let (f, t) = (base.join(from), base.join(to));
                if t.exists() {
                    return Err(ShipError::Remote {
                        host: "local".into(),
                        what: format!("renaming {} into place", t.display()),
                        detail: "already exists".into(),
                    });
                }
                std::fs::rename(&f, &t).map_err(io_err("renaming into place", &t))?;
                sync_dir(base);
                Ok(())
            }
        }
    }

    /// Removes a set directory (the name was checked to be a set's).
    fn remove_set(&self, name: &str) -> Result<(), ShipError> {
        if !is_set_name(name) {
            return Err(ShipError::Remote {
                host: self.host(),
                what: format!("removing {name}"),
                detail: "not a backup set name".into(),
            });
        }
        match self {
            Side::Ssh { .. } => {
                self.remote_ok(
                    &format!("removing {}", self.path(name)),
                    &format!("rm -rf -- {}", sh_quote(&self.path(name))),
                )?;
                Ok(())
            }
            Side::Local { base } => std::fs::remove_dir_all(base.join(name))
                .map_err(io_err("removing", base.join(name))),
        }
    }

    /// Sends `files` (all when None) of the local set into `dir` on the target.
    fn send(
        &self,
        set: &Path,
        dir: &str,
        files: &[String],
        transport: Transport,
        opts: &ShipOptions,
    ) -> Result<(), ShipError> {
        match (self, transport) {
            (Side::Local { base }, _) => {
                let root = base.join(dir);
                for rel in files {
                    let (src, dst) = (set.join(rel), root.join(rel));
                    if let Some(p) = dst.parent() {
                        std::fs::create_dir_all(p).map_err(io_err("creating", p))?;
                    }
                    let tmp = dst.with_extension("part");
                    {
                        let mut r = std::fs::File::open(&src).map_err(io_err("reading", &src))?;
                        let mut w = std::fs::File::create(&tmp).map_err(io_err("writing", &dst))?;
                        std::io::copy(&mut r, &mut w).map_err(io_err("writing", &dst))?;
                        w.sync_all().map_err(io_err("writing", &dst))?;
                    }
                    std::fs::rename(&tmp, &dst).map_err(io_err("writing", &dst))?;
                }
                Ok(())
            }
            (
                Side::Ssh {
                    user,
                    host,
                    port,
                    opts: ssh,
                    ..
                },
                Transport::Rsync | Transport::Auto,
            ) => {
                let mut e = vec!["ssh".to_owned()];
                e.extend(Self::ssh_options(ssh).into_iter().map(|a| {
                    if a.contains(' ') {
                        format!("'{a}'")
                    } else {
                        a
                    }
                }));
                if let Some(p) = port {
                    e.extend(["-p".into(), p.to_string()]);
                }
                let mut c = Command::new("rsync");
                // -s: the remote path is not split by a shell; --partial keeps a
                // half-sent file so the next run resumes from it.
                c.args(["-rtps", "--partial", "--delete", "--chmod=go-rwx", "-e"])
                    .arg(e.join(" "));
                if opts.bwlimit_kib > 0 {
                    c.arg(format!("--bwlimit={}", opts.bwlimit_kib));
                }
                if opts.show_transfer {
                    c.arg("--info=progress2");
                }
                let host_part = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.to_string()
                };
                c.arg("--").arg(format!("{}/", set.display())).arg(format!(
                    "{}:{}/",
                    Self::destination(*user, &host_part),
                    self.path(dir)
                ));
                c.stdin(Stdio::null())
                    .stdout(transfer_stdout(opts.show_transfer));
                let out = c.output().map_err(|e| ShipError::Remote {
                    host: self.host(),
                    what: "rsync".into(),
                    detail: format!("cannot run rsync: {e}"),
                })?;
                if !out.status.success() {
                    return Err(classify(
                        &self.host(),
                        user.unwrap_or("(ssh default user)"),
                        "rsync",
                        &String::from_utf8_lossy(&out.stderr),
                    ));
                }
                Ok(())
            }
            (
                Side::Ssh {
                    user,
                    host,
                    port,
                    opts: ssh,
                    ..
                },
                Transport::Sftp,
            ) => {
                if set.display().to_string().contains(UNSAFE) {
                    return Err(ShipError::BadTarget { target: set.display().to_string(), detail: "sftp cannot send from a path with quotes, globs or $; rename the directory or use rsync".into() });
                }
                let mut batch = String::new();
                let mut made = std::collections::BTreeSet::new();
                made.insert(String::new());
                batch.push_str(&format!("-mkdir \"{}\"\n", self.path(dir)));
                for rel in files {
                    let mut parent = String::new();
                    for comp in rel
                        .split('/')
                        .collect::<Vec<_>>()
                        .split_last()
                        .map(|(_, d)| d.to_vec())
                        .unwrap_or_default()
                    {
                        parent = if parent.is_empty() {
                            comp.to_owned()
                        } else {
                            format!("{parent}/{comp}")
                        };
                        if made.insert(parent.clone()) {
                            batch.push_str(&format!("-mkdir \"{}/{parent}\"\n", self.path(dir)));
                        }
                    }
                    batch.push_str(&format!(
                        "put -p \"{}\" \"{}/{rel}\"\n",
                        set.join(rel).display(),
                        self.path(dir)
                    ));
                }
                let mut c = Command::new("sftp");
                c.args(["-b", "-"]).args(Self::ssh_options(ssh));
                if let Some(p) = port {
                    c.args(["-P", &p.to_string()]);
                }
                if opts.bwlimit_kib > 0 {
                    c.args(["-l", &(u64::from(opts.bwlimit_kib) * 8).to_string()]);
                }
                let host_part = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.to_string()
                };
                c.arg("--").arg(Self::destination(*user, &host_part));
                let mut child = c
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| ShipError::Remote {
                        host: self.host(),
                        what: "sftp".into(),
                        detail: format!("cannot run sftp: {e}"),
                    })?;
                if let Some(mut stdin) = child.stdin.take() {
                    let _ = stdin.write_all(batch.as_bytes());
                }
                let out = child.wait_with_output().map_err(|e| ShipError::Remote {
                    host: self.host(),
                    what: "sftp".into(),
                    detail: e.to_string(),
                })?;
                if !out.status.success() {
                    return Err(classify(
                        &self.host(),
                        user.unwrap_or("(ssh default user)"),
                        "sftp",
                        &String::from_utf8_lossy(&out.stderr),
                    ));
                }
                Ok(())
            }
        }
    }
}

fn transfer_stdout(show: bool) -> Stdio {
    if show {
        if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
            return Stdio::from(fd);
        }
    }
    Stdio::null()
}

fn sync_dir(p: &Path) {
    if let Ok(d) = std::fs::File::open(p) {
        let _ = d.sync_all();
    }
}

fn walk_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        if e.file_type()?.is_dir() {
            walk_files(root, &p, out)?;
        } else if let Ok(rel) = p.strip_prefix(root) {
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

/// A directory name prune may remove: `<label>-YYYYMMDD-HHMMSS[.partial]`,
/// one path component.
fn is_set_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('/')
        && !name.starts_with('.')
        && names::parse_stamp(name).is_some()
}

/// Turns ssh/rsync/sftp error output into an error naming the host (and
/// the file, when the output names one).
pub fn classify(host: &str, user: &str, what: &str, stderr: &str) -> ShipError {
    let detail = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
        .collect::<Vec<_>>();
    let text = detail.join("; ");
    let has = |s: &str| stderr.contains(s);
    if has("No space left on device") || has("Disk quota exceeded") {
        // rsync: `write failed on "/path/file": No space left on device (28)`
        let file = stderr
            .lines()
            .find(|l| l.contains("No space left") || l.contains("quota"))
            .and_then(|l| l.split('"').nth(1))
            .map(str::to_owned)
            .unwrap_or_else(|| what.to_owned());
        return ShipError::DiskFull {
            host: host.to_owned(),
            file,
        };
    }
    if has("Host key verification failed")
        || has("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || has("No ED25519 host key is known")
        || has("host key for")
    {
        return ShipError::HostKey {
            host: host.to_owned(),
            detail: text,
        };
    }
    if has("Permission denied (") || has("Too many authentication failures") || has("Load key") {
        return ShipError::AuthFailed {
            host: host.to_owned(),
            user: user.to_owned(),
            detail: text,
        };
    }
    for s in [
        "Connection refused",
        "Could not resolve hostname",
        "Connection timed out",
        "No route to host",
        "Network is unreachable",
        "Connection closed by",
        "Connection reset",
        "kex_exchange_identification",
        "connection unexpectedly closed",
    ] {
        if has(s) {
            return ShipError::Unreachable {
                host: host.to_owned(),
                detail: text,
            };
        }
    }
    ShipError::Remote {
        host: host.to_owned(),
        what: what.to_owned(),
        detail: if text.is_empty() {
            "no error output".into()
        } else {
            text
        },
    }
}

/// Sends the complete set `set` to `target`, verifies every file there
/// against the manifest, and renames it into place. On any error the local
/// set is untouched and a partial copy stays on the target for the next run
/// to resume.
pub fn ship(set: &Path, target: &Target, opts: &ShipOptions) -> Result<ShipReport, ShipError> {
    let started = std::time::Instant::now();
    let manifest: Manifest = restore::open_set(set)?;
    let info = list::inspect(set);
    if info.status != Status::Complete {
        return Err(crate::Error::BadSet {
            set: set.to_owned(),
            detail: format!("not complete: {}", info.detail.unwrap_or_default()),
        }
        .into());
    }
    if let Some(i) = &opts.ssh.identity {
        if !i.is_file() {
            return Err(ShipError::BadTarget {
                target: target.to_string(),
                detail: format!("identity file {} does not exist", i.display()),
            });
        }
    }
    let name = info.name.clone();
    // What every file's sha256 must be: the manifest's, and for its companions
    // (manifest.json, RESTORE.txt) their bytes here.
    let mut expected: BTreeMap<String, String> = manifest
        .files
        .iter()
        .map(|f| (f.path.clone(), f.sha256.clone()))
        .collect();
    let files = set_files(set, &manifest)?;
    let mut total = 0u64;
    for rel in &files {
        if !expected.contains_key(rel) {
            let (_, sum) = file_sha256(&set.join(rel)).map_err(io_err("reading", set.join(rel)))?;
            expected.insert(rel.clone(), sum);
        }
        total += std::fs::metadata(set.join(rel))
            .map(|m| m.len())
            .unwrap_or(0);
    }
    let side = Side::of(target, opts);
    let probe = side.probe(true)?;
    let transport = match (&side, opts.transport) {
        (Side::Local { .. }, _) => "copy",
        (_, Transport::Sftp) => "sftp",
        (_, Transport::Rsync) if !probe.rsync => {
            return Err(ShipError::Remote {
                host: side.host(),
                what: "rsync".into(),
                detail: "rsync is not installed there".into(),
            });
        }
        (_, Transport::Rsync) => "rsync",
        (_, Transport::Auto) if probe.rsync && which("rsync") => "rsync",
        (_, Transport::Auto) => "sftp",
    };
    let read_back = opts.read_back || !probe.sha256sum;
    let verified_by = match (&side, read_back) {
        (Side::Local { .. }, _) => "local",
        (_, true) => "read-back",
        (_, false) => "sha256sum",
    };
    let partial = format!("{name}.partial");
    let mut report = ShipReport {
        set: name.clone(),
        target: side.path(&name),
        transport: transport.into(),
        verified_by: verified_by.into(),
        files: expected.len(),
        bytes: total,
        already_there: false,
        resent: Vec::new(),
        seconds: 0.0,
    };
    let mismatched = |got: &BTreeMap<String, String>| -> Vec<String> {
        expected
            .iter()
            .filter(|(rel, sum)| got.get(*rel) != Some(*sum))
            .map(|(rel, _)| rel.clone())
            .collect()
    };

    if probe.dirs.contains(&name) {
        let bad = mismatched(&side.hashes(&name, read_back)?);
        if bad.is_empty() {
            report.already_there = true;
            report.transport = "none".into();
            report.seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        }
        if !opts.repair {
            return Err(ShipError::TargetDamaged {
                host: side.host(),
                files: bad
                    .iter()
                    .map(|f| format!("{}/{f}", side.path(&name)))
                    .collect(),
            });
        }
        if probe.dirs.contains(&partial) {
            side.remove_set(&partial)?;
        }
        side.rename(&name, &partial)?;
    }
    let tr = if transport == "rsync" {
        Transport::Rsync
    } else {
        Transport::Sftp
    };
    // Resume: without rsync, send only what is not already there intact.
    let partial_exists =
        probe.dirs.contains(&partial) || report.already_there || probe.dirs.contains(&name);
    let to_send: Vec<String> = if transport == "rsync" || !partial_exists {
        files.clone()
    } else {
        mismatched(&side.hashes(&partial, read_back)?)
    };
    if !to_send.is_empty() {
        side.send(set, &partial, &to_send, tr, opts)?;
    }
    let mut bad = mismatched(&side.hashes(&partial, read_back)?);
    if !bad.is_empty() {
        // A damaged file with the right size and time fools rsync's quick
        // check; remove the damaged ones and send them again, once.
        side.remove_files(&partial, &bad)?;
        side.send(
            set,
            &partial,
            &if transport == "rsync" {
                files.clone()
            } else {
                bad.clone()
            },
            tr,
            opts,
        )?;
        report.resent = bad.clone();
        bad = mismatched(&side.hashes(&partial, read_back)?);
        if !bad.is_empty() {
            // Is the local file itself still what the manifest says?
            let local_bad: Vec<String> = bad
                .iter()
                .filter(|rel| {
                    file_sha256(&set.join(rel.as_str()))
                        .map(|(_, s)| Some(&s) != expected.get(rel.as_str()))
                        .unwrap_or(true)
                })
                .cloned()
                .collect();
            if !local_bad.is_empty() {
                return Err(crate::Error::BadFile { path: set.join(&local_bad[0]), detail: "does not match the manifest here either: the local set is damaged (run backup verify)".into() }.into());
            }
            return Err(ShipError::Mismatch {
                host: side.host(),
                files: bad
                    .iter()
                    .map(|f| format!("{}/{f}", side.path(&partial)))
                    .collect(),
            });
        }
    }
    side.rename(&partial, &name)?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn which(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// What a prune did, on this machine or on a target.
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    /// The directory (or `ssh://...` target).
    pub location: String,
    /// The policy applied.
    pub policy: Policy,
    /// Every set, oldest first, with the verdict and its reasons.
    pub sets: Vec<Decision>,
    /// Sets removed (empty on a dry run).
    pub removed: Vec<String>,
    /// True when nothing was removed on purpose.
    pub dry_run: bool,
    /// Sets that should have gone but could not be removed, with why.
    pub failed: Vec<(String, String)>,
}

/// Applies `policy` to the sets on a ship target (see [`retention::plan`];
/// partial copies there have no known writer).
pub fn prune_target(
    target: &Target,
    ssh: &SshOptions,
    policy: &Policy,
    now: i64,
    dry_run: bool,
) -> Result<PruneReport, ShipError> {
    let side = Side::of_ssh(target, ssh);
    let probe = side.probe(false)?;
    let mut names: Vec<String> = probe.dirs.into_iter().filter(|d| is_set_name(d)).collect();
    names.sort_by(|a, b| {
        names::parse_stamp(a)
            .cmp(&names::parse_stamp(b))
            .then(a.cmp(b))
    });
    let items: Vec<Item> = names.iter().map(|n| Item::on_target(n)).collect();
    let sets = retention::plan(&items, policy, now);
    let mut report = PruneReport {
        location: target.to_string(),
        policy: *policy,
        sets,
        removed: Vec::new(),
        dry_run,
        failed: Vec::new(),
    };
    if !dry_run {
        for d in report.sets.iter().filter(|d| !d.keep) {
            match side.remove_set(&d.name) {
                Ok(()) => report.removed.push(d.name.clone()),
                Err(e) => report.failed.push((d.name.clone(), e.to_string())),
            }
        }
    }
    Ok(report)
}

/// Applies `policy` to the sets in the local directory `dest`, re-checking
/// right before removing a `.partial` set that its writer is still gone.
pub fn prune_local(
    dest: &Path,
    policy: &Policy,
    now: i64,
    dry_run: bool,
) -> Result<PruneReport, crate::Error> {
    let sets = list::list(dest)?;
    let items: Vec<Item> = sets.iter().map(Item::from).collect();
    let decisions = retention::plan(&items, policy, now);
    let mut report = PruneReport {
        location: dest.display().to_string(),
        policy: *policy,
        sets: decisions,
        removed: Vec::new(),
        dry_run,
        failed: Vec::new(),
    };
    if !dry_run {
        for (d, info) in report.sets.iter().zip(&sets) {
            if d.keep {
                continue;
            }
            if info.status == Status::Partial && list::writer_alive(&info.path) {
                report.failed.push((
                    d.name.clone(),
                    "its writer started again; left alone".into(),
                ));
                continue;
            }
            match std::fs::remove_dir_all(&info.path) {
                Ok(()) => report.removed.push(d.name.clone()),
                Err(e) => report.failed.push((
                    d.name.clone(),
                    format!("cannot remove {}: {e}", info.path.display()),
                )),
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!(
            Target::parse("ssh://backup@nas.lab:2222/srv/mysql-backups/").unwrap(),
            Target::Ssh {
                user: Some("backup".into()),
                host: "nas.lab".into(),
                port: Some(2222),
                path: "/srv/mysql-backups".into()
            }
        );
        assert_eq!(
            Target::parse("ssh://nas/~/backups").unwrap(),
            Target::Ssh {
                user: None,
                host: "nas".into(),
                port: None,
                path: "backups".into()
            }
        );
        assert_eq!(
            Target::parse("ssh://u@[::1]:22/b").unwrap(),
            Target::Ssh {
                user: Some("u".into()),
                host: "::1".into(),
                port: Some(22),
                path: "/b".into()
            }
        );
        assert_eq!(
            Target::parse("/mnt/nas/backups").unwrap(),
            Target::Local("/mnt/nas/backups".into())
        );
        assert_eq!(
            Target::parse("ssh://backup@nas.lab:2222/srv/b")
                .unwrap()
                .to_string(),
            "ssh://backup@nas.lab:2222/srv/b"
        );
        assert_eq!(
            Target::parse("ssh://nas/~/b").unwrap().to_string(),
            "ssh://nas/~/b"
        );
        for bad in [
            "backup@nas:/srv",
            "ssh://nas",
            "ssh://nas:99999/x",
            "ssh://-oProxyCommand=x/y",
            "ssh://nas/it's",
            "ssh://nas/a*b",
            "sftp://nas/x",
            "",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        assert!(Target::parse("backup@nas:/srv")
            .unwrap_err()
            .to_string()
            .contains("ssh://user@host/path"));
    }

    #[test]
    fn classifies_errors_naming_host_and_file() {
        let e = classify("nas:22", "backup", "rsync", "rsync: [receiver] write failed on \"/srv/b/x.partial/2-data/lab/t.0.sql.gz\": No space left on device (28)\nrsync error: error in file IO (code 11)");
        assert_eq!(
            e.to_string(),
            "nas:22: no space left writing /srv/b/x.partial/2-data/lab/t.0.sql.gz"
        );
        let e = classify(
            "nas:22",
            "backup",
            "looking",
            "backup@127.0.0.1: Permission denied (publickey).",
        );
        assert!(matches!(e, ShipError::AuthFailed { .. }), "{e:?}");
        assert!(e
            .to_string()
            .starts_with("nas:22 refused the login of backup"));
        let e = classify(
            "nas:22",
            "backup",
            "looking",
            "ssh: connect to host nas port 22: Connection refused",
        );
        assert!(matches!(e, ShipError::Unreachable { .. }));
        assert!(e.to_string().starts_with("cannot reach nas:22"));
        let e = classify("nas", "backup", "looking", "No ED25519 host key is known for nas and you have requested strict checking.\nHost key verification failed.");
        assert!(matches!(e, ShipError::HostKey { .. }));
        let e = classify("nas", "b", "renaming", "mv: cannot move");
        assert_eq!(e.to_string(), "nas: renaming failed: mv: cannot move");
    }

    #[test]
    fn ships_to_a_local_directory_resumes_and_repairs() {
        let src = tempfile::tempdir().unwrap();
        let set = crate::pack::tests::fake_set(src.path(), "nightly-20261126-020000");
        let nas = tempfile::tempdir().unwrap();
        let target = Target::Local(nas.path().join("backups"));
        let opts = ShipOptions::default();
        let r = ship(&set, &target, &opts).unwrap();
        assert_eq!(
            (r.files, r.transport.as_str(), r.already_there),
            (4, "copy", false)
        );
        let copy = nas.path().join("backups/nightly-20261126-020000");
        assert!(crate::verify::verify(&copy, &crate::progress::Silent)
            .unwrap()
            .problems
            .is_empty());
        // Again: already there, nothing sent.
        assert!(ship(&set, &target, &opts).unwrap().already_there);
        // Damage the copy: reported, and repaired on request.
        let f = copy.join("2-data/lab/t.0.sql.gz");
        let mut bytes = std::fs::read(&f).unwrap();
        bytes[10] ^= 1;
        std::fs::write(&f, &bytes).unwrap();
        let e = ship(&set, &target, &opts).unwrap_err();
        assert!(matches!(e, ShipError::TargetDamaged { .. }), "{e}");
        assert!(e.to_string().contains("2-data/lab/t.0.sql.gz"), "{e}");
        let r = ship(
            &set,
            &target,
            &ShipOptions {
                repair: true,
                ..ShipOptions::default()
            },
        )
        .unwrap();
        assert!(!r.already_there);
        assert!(crate::verify::verify(&copy, &crate::progress::Silent)
            .unwrap()
            .problems
            .is_empty());
        // An interrupted copy (a partial with one damaged and one missing file) resumes.
        std::fs::rename(
            &copy,
            nas.path().join("backups/nightly-20261126-020000.partial"),
        )
        .unwrap();
        let p = nas.path().join("backups/nightly-20261126-020000.partial");
        std::fs::remove_file(p.join("2-data/lab/t.1.sql.gz")).unwrap();
        std::fs::write(p.join("RESTORE.txt"), "damaged").unwrap();
        let r = ship(&set, &target, &opts).unwrap();
        assert!(!r.already_there);
        assert!(crate::verify::verify(&copy, &crate::progress::Silent)
            .unwrap()
            .problems
            .is_empty());
        assert_eq!(
            std::fs::read(copy.join("RESTORE.txt")).unwrap(),
            std::fs::read(set.join("RESTORE.txt")).unwrap()
        );
        assert!(!p.exists());
    }

    #[test]
    fn prunes_a_local_target_by_name() {
        let nas = tempfile::tempdir().unwrap();
        for n in [
            "nightly-20261101-020000",
            "nightly-20261125-020000",
            "nightly-20261126-020000",
            "nightly-20261126-020000.partial",
            "not-a-set",
        ] {
            std::fs::create_dir(nas.path().join(n)).unwrap();
        }
        let target = Target::Local(nas.path().to_owned());
        let policy = Policy {
            keep_last: 2,
            ..Policy::default()
        };
        let now = names::unix_from_civil(2026, 11, 26, 12, 0, 0);
        let r = prune_target(&target, &SshOptions::default(), &policy, now, true).unwrap();
        assert!(r.removed.is_empty());
        let r = prune_target(&target, &SshOptions::default(), &policy, now, false).unwrap();
        assert_eq!(
            r.removed,
            ["nightly-20261101-020000", "nightly-20261126-020000.partial"]
        );
        let mut left: Vec<String> = std::fs::read_dir(nas.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "nightly-20261125-020000",
                "nightly-20261126-020000",
                "not-a-set"
            ]
        );
    }
}
