//! Off-site copies: [`ship`] a complete set to a [`Target`] (today
//! `ssh://[user@]host[:port]/path` or a local directory, a mounted NAS),
//! verified on arrival.
//!
//! Every kind of target is one module implementing [`Remote`], the small
//! interface [`ship`] and [`crate::prune::prune_target`] are written against
//! (like restic's backend interface: a new kind of storage is a new module;
//! nothing else learns its name): [`local`] for a directory, [`ssh`] for a
//! host reached with ssh (rsync or sftp).
//!
//! The contract: a set is first *staged* as `<name>.partial`, every file's
//! sha256 is checked against the local manifest on the target (by the
//! target, or by reading every file back), and only then is it *committed*
//! under `<name>`. So a set listed on a target without `.partial` is a
//! verified copy, which is what pruning a target relies on. Nothing in the
//! interface assumes a POSIX file system: staging, committing and removing
//! are the target's own operations (a rename for a directory; an object store
//! would write or delete a marker object), and the names the target lists
//! are the only state [`ship`] looks at.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use camino::Utf8PathBuf;
use serde::Serialize;

use crate::compress::file_sha256;
use crate::list::{self, Status};
use crate::manifest::Manifest;
use crate::names;

pub mod binlog;
pub mod local;
mod read;
pub mod s3;
pub mod ssh;

pub use read::{fetch_set, list_target, open_set, open_set_on, private_tempdir, FetchedSet};

pub use ssh::classify;

/// Why shipping (or pruning a target) failed. Every variant names the host
/// (or directory) and, where there is one, the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShipError {
    /// The target string is not usable.
    #[error("target '{target}': {detail}")]
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
    #[error("the host key of {host} is not known here or has changed ({detail}){}", fix.as_deref().map(|f| format!("; {f}")).unwrap_or_default())]
    HostKey {
        /// Host.
        host: String,
        /// ssh's words.
        detail: String,
        /// What the host presents and the exact command that records it
        /// (or removes a changed one), when they could be found out.
        fix: Option<String>,
    },
    /// The target ran out of space.
    #[error("no space left on {}{}", if host == "local" { file.clone() } else { format!("{host}:{file}") }, free_bytes.map(|b| format!(" ({} free there)", human_bytes(b))).unwrap_or_default())]
    DiskFull {
        /// Host, or `local` for a directory target.
        host: String,
        /// The file being written.
        file: String,
        /// Bytes free there afterwards, when the target could say.
        free_bytes: Option<u64>,
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
    /// A set cannot be read from a target.
    #[error("cannot fetch {location}: {detail}")]
    Fetch {
        /// `TARGET/NAME`.
        location: String,
        /// Why.
        detail: String,
    },
    /// The target cannot do this (yet).
    #[error("{host}: {what} is not supported on this kind of target")]
    NotSupported {
        /// Host, or `local`.
        host: String,
        /// What was asked.
        what: &'static str,
    },
    /// An object store refused a request (or kept failing).
    #[error("{host}: {what}: {detail}")]
    Store {
        /// The endpoint.
        host: String,
        /// What we were doing, with the object: `uploading s3://bucket/key`.
        what: String,
        /// HTTP status.
        status: u16,
        /// The store's error code (`NoSuchBucket`, `InvalidAccessKeyId`...).
        code: String,
        /// The store's code and message.
        detail: String,
    },
    /// The TLS handshake with an https endpoint failed (an untrusted or
    /// wrong certificate); not retried.
    #[error("{host}: the TLS connection failed: {detail}")]
    Tls {
        /// The endpoint.
        host: String,
        /// What was being done, and rustls's words.
        detail: String,
        /// True when the certificate is not trusted (no CA configured signed it).
        untrusted: bool,
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

/// Bytes in binary units for people: `512 B`, `1.5 MiB` (the one
/// formatter every crate's messages use).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

pub(crate) fn io_err(
    what: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> ShipError {
    let path = path.into();
    move |source| {
        if source.raw_os_error() == Some(28) || source.raw_os_error() == Some(122) {
            return ShipError::DiskFull {
                host: "local".into(),
                file: path.display().to_string(),
                free_bytes: crate::destination::probe(&path).free_bytes,
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
    Local(Utf8PathBuf),
    /// `s3://bucket/prefix` on an S3-compatible store.
    S3 {
        /// Bucket.
        bucket: String,
        /// Key prefix, without leading or trailing `/` (may be empty).
        prefix: String,
        /// Endpoint, credentials and tuning (from settings; see [`Target::with_s3_config`]).
        config: s3::S3Config,
    },
}
impl Target {
    /// Parses `ssh://[user@]host[:port]/path` (a path starting `/~/` is
    /// relative to the account's home) or a local directory.
    pub fn parse(s: &str) -> Result<Target, ShipError> {
        let bad = |detail: &str| ShipError::BadTarget {
            target: s.to_owned(),
            detail: detail.to_owned(),
        };
        if let Some(rest) = s.strip_prefix("ssh://") {
            return ssh::parse(s, rest);
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            return s3::parse(s, rest);
        }
        if let Some(scheme) = scheme_of(s) {
            return Err(bad(&format!(
                "{scheme}:// targets are not supported; give a directory, ssh://user@host[:port]/path or s3://bucket/prefix"
            )));
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
        Ok(Target::Local(Utf8PathBuf::from(s)))
    }

    /// The [`Remote`] that ships to this target with `opts`.
    pub fn remote<'a>(&'a self, opts: &'a ShipOptions) -> Box<dyn Remote + 'a> {
        match self {
            Target::Ssh {
                user,
                host,
                port,
                path,
            } => Box::new(ssh::Ssh::new(user.as_deref(), host, *port, path, opts)),
            Target::Local(p) => Box::new(local::Local::new(p)),
            Target::S3 {
                bucket,
                prefix,
                config,
            } => Box::new(s3::S3::new(bucket, prefix, config)),
        }
    }

    /// Splits `TARGET/NAME` (a set on a target, as `backup run` and `ship`
    /// print it) into the target and the set name; the name must be a
    /// set's (`<label>-YYYYMMDD-HHMMSS`).
    pub fn parse_set(s: &str) -> Result<(Target, String), ShipError> {
        let trimmed = s.trim_end_matches('/');
        let (base, name) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
        if !is_set_name(name) || name.ends_with(crate::set::PARTIAL) {
            return Err(ShipError::BadTarget {
                target: s.to_owned(),
                detail: "name a set on the target: TARGET/<label>-YYYYMMDD-HHMMSS (backup list TARGET shows them)".into(),
            });
        }
        Ok((Target::parse(base)?, name.to_owned()))
    }

    /// The set `name` on this target, as a string [`Target::parse_set`] reads.
    pub fn set_url(&self, name: &str) -> String {
        let base = self.to_string();
        format!("{}/{name}", base.trim_end_matches('/'))
    }

    /// The [`Remote`] for listing and removing sets only (pruning).
    pub fn lister<'a>(&'a self, ssh: &'a SshOptions) -> Box<dyn Remote + 'a> {
        match self {
            Target::Ssh {
                user,
                host,
                port,
                path,
            } => Box::new(ssh::Ssh::for_listing(
                user.as_deref(),
                host,
                *port,
                path,
                ssh,
            )),
            Target::Local(p) => Box::new(local::Local::new(p)),
            Target::S3 {
                bucket,
                prefix,
                config,
            } => Box::new(s3::S3::new(bucket, prefix, config)),
        }
    }

    /// An `s3://` target with `config` filling what its own config leaves
    /// unset (settings); any other target unchanged.
    pub fn with_s3_config(self, settings: &s3::S3Config) -> Target {
        match self {
            Target::S3 {
                bucket,
                prefix,
                config,
            } => Target::S3 {
                bucket,
                prefix,
                config: config.or(settings),
            },
            t => t,
        }
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
            Target::S3 { bucket, .. } => format!("s3://{bucket}"),
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
            Target::Local(p) => write!(f, "{p}"),
            Target::S3 { bucket, prefix, .. } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Target::S3 { bucket, prefix, .. } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// The scheme of a target string (`ssh` of `ssh://...`), if it has one: a
/// letter, then letters, digits, `+`, `-` or `.`, then `://`. A string with
/// a scheme is never a local directory: every command that takes a target
/// or a destination refuses a scheme it does not support rather than
/// writing a local folder named `ssh:`.
pub fn scheme_of(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once("://")?;
    let mut chars = scheme.chars();
    (chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
    .then_some(scheme)
}

/// `path` as a local directory for `command`, which works on local
/// directories only: an error naming the scheme when `path` has one.
pub fn local_only<'p>(path: &'p Path, command: &str) -> Result<&'p Path, ShipError> {
    match path.to_str().and_then(scheme_of) {
        Some(scheme) => Err(ShipError::BadTarget {
            target: path.display().to_string(),
            detail: format!(
                "{command} works on local directories only, not on {scheme}:// targets"
            ),
        }),
        None => Ok(path),
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

/// How a [`Remote`] moves and checks files, known once it was probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Method {
    /// For reports: `rsync`, `sftp`, `copy`...
    pub transport: &'static str,
    /// For reports: `sha256sum` (on the host), `read-back`, `local`...
    pub verified_by: &'static str,
    /// True when [`Remote::send`] always brings the whole staged copy in
    /// line with the local set (rsync): [`ship`] then hands it every file
    /// and lets it skip the intact ones; otherwise [`ship`] sends only the
    /// files that are missing or do not match.
    pub sends_whole_set: bool,
}

/// One place sets are shipped to. Names are set names
/// (`<label>-YYYYMMDD-HHMMSS`) or staging names (the same plus `.partial`);
/// file paths are relative to the set, `/`-separated. Every error names
/// the host (or `local`) and, where there is one, the file.
///
/// An implementation must list a staged copy as `<name>.partial` and a
/// committed one as `<name>`, and must never let a commit replace a
/// committed set.
pub trait Remote {
    /// The host (with port), or `local`, for messages.
    fn host(&self) -> String;
    /// Where the set (or staged copy) `name` is, for messages and reports.
    fn location(&self, name: &str) -> String;
    /// First contact: creates the base location when `create`, learns what
    /// the far end can do, and lists the names of the sets and staged copies
    /// there (anything else may be listed too; callers pick set names).
    fn probe(&mut self, create: bool) -> Result<Vec<String>, ShipError>;
    /// How files will travel and be checked (after [`Remote::probe`]); an
    /// error when the transport asked for is not there.
    fn method(&self) -> Result<Method, ShipError>;
    /// sha256 (lowercase hex) of every file stored under the set or staged
    /// copy `name`, by relative path.
    fn hashes(&self, name: &str) -> Result<BTreeMap<String, String>, ShipError>;
    /// Sends `files` of the local set directory `set` into the staged copy
    /// `staging` (creating it when missing).
    fn send(&self, set: &Path, staging: &str, files: &[String]) -> Result<(), ShipError>;
    /// Removes `files` from the staged copy `staging` (missing ones are fine).
    fn remove_files(&self, staging: &str, files: &[String]) -> Result<(), ShipError>;
    /// Makes the verified staged copy `staging` the set `name`; fails when
    /// `name` exists already.
    fn commit(&self, staging: &str, name: &str) -> Result<(), ShipError>;
    /// Turns the committed set `name` back into the staged copy `staging`
    /// (to repair it); fails when `staging` exists already.
    fn reopen(&self, name: &str, staging: &str) -> Result<(), ShipError>;
    /// Removes the set or staged copy `name` with everything in it; refuses
    /// a name that is not a set's.
    fn remove_set(&self, name: &str) -> Result<(), ShipError>;
    /// The read side: copies `files` (relative paths) of the committed set
    /// `name` into the local directory `dest` (created when missing), each
    /// as `dest/<file>`, so `backup list`, `verify` and `restore` can work
    /// on the copy with the same checks as on a local set. Callers check
    /// the copies against the manifest; an implementation need not.
    fn fetch(&self, name: &str, files: &[String], dest: &Path) -> Result<(), ShipError> {
        let _ = (name, files, dest);
        Err(ShipError::NotSupported {
            host: self.host(),
            what: "reading a set back",
        })
    }
    /// Size in bytes of every file stored under the set or staged copy
    /// `name`, by relative path (a listing, no data read), so `backup list`
    /// can tell a complete copy from a damaged one as it does locally.
    fn sizes(&self, name: &str) -> Result<BTreeMap<String, u64>, ShipError> {
        let _ = name;
        Err(ShipError::NotSupported {
            host: self.host(),
            what: "listing a set's files",
        })
    }
    /// For `doctor`: reaches the target without creating anything and says
    /// what it found (the sets there, free space, missing programs). The
    /// default lists the sets and knows nothing else.
    fn health(&mut self) -> Result<Health, ShipError> {
        Ok(Health {
            sets: self.probe(false)?,
            exists: true,
            writable: None,
            free_bytes: None,
            missing: Vec::new(),
        })
    }
}

/// What [`Remote::health`] found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    /// Names listed there (sets, staged copies, anything else).
    pub sets: Vec<String>,
    /// The base location exists (shipping creates it when it does not).
    pub exists: bool,
    /// A file can be created there (or in the nearest existing parent), when known.
    pub writable: Option<bool>,
    /// Bytes free where sets go, when the target can say.
    pub free_bytes: Option<u64>,
    /// Programs shipping uses that are missing, each with what that means.
    pub missing: Vec<String>,
}

/// The name of the staged copy of the set `name`.
fn staging(name: &str) -> String {
    format!("{name}.partial")
}

/// A name prune may remove: `<label>-YYYYMMDD-HHMMSS[.partial]`,
/// one path component.
pub(crate) fn is_set_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('/')
        && !name.starts_with('.')
        && names::parse_stamp(name).is_some()
}

/// The guard every [`Remote::remove_set`] runs first: only a set's (or its
/// staged copy's) name may be removed, whatever the caller passes.
pub(crate) fn refuse_unless_set_name(host: &str, name: &str) -> Result<(), ShipError> {
    if is_set_name(name) {
        Ok(())
    } else {
        Err(ShipError::Remote {
            host: host.to_owned(),
            what: format!("removing {name}"),
            detail: "not a backup set name".into(),
        })
    }
}

/// Sends the complete set `set` to `target`, verifies every file there
/// against the manifest, and commits it. On any error the local set is
/// untouched and a staged copy stays on the target for the next run to
/// resume.
pub fn ship(set: &Path, target: &Target, opts: &ShipOptions) -> Result<ShipReport, ShipError> {
    let started = std::time::Instant::now();
    let manifest: Manifest = crate::set::open(set)?;
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
    let files = crate::set::files(set, &manifest)?;
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
    let mut remote = target.remote(opts);
    let there = remote.probe(true)?;
    let method = remote.method()?;
    let partial = staging(&name);
    let mut report = ShipReport {
        set: name.clone(),
        target: remote.location(&name),
        transport: method.transport.into(),
        verified_by: method.verified_by.into(),
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

    if there.contains(&name) {
        let bad = mismatched(&remote.hashes(&name)?);
        if bad.is_empty() {
            report.already_there = true;
            report.transport = "none".into();
            report.seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        }
        if !opts.repair {
            return Err(ShipError::TargetDamaged {
                host: remote.host(),
                files: bad
                    .iter()
                    .map(|f| format!("{}/{f}", remote.location(&name)))
                    .collect(),
            });
        }
        if there.contains(&partial) {
            remote.remove_set(&partial)?;
        }
        remote.reopen(&name, &partial)?;
    }
    // Resume: unless the remote syncs the whole set itself, send only what
    // is not already there intact.
    let partial_exists = there.contains(&partial) || there.contains(&name);
    let to_send: Vec<String> = if method.sends_whole_set || !partial_exists {
        files.clone()
    } else {
        mismatched(&remote.hashes(&partial)?)
    };
    if !to_send.is_empty() {
        remote.send(set, &partial, &to_send)?;
    }
    let mut bad = mismatched(&remote.hashes(&partial)?);
    if !bad.is_empty() {
        // A damaged file with the right size and time fools rsync's quick
        // check; remove the damaged ones and send them again, once.
        remote.remove_files(&partial, &bad)?;
        remote.send(
            set,
            &partial,
            if method.sends_whole_set { &files } else { &bad },
        )?;
        report.resent = bad.clone();
        bad = mismatched(&remote.hashes(&partial)?);
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
                host: remote.host(),
                files: bad
                    .iter()
                    .map(|f| format!("{}/{f}", remote.location(&partial)))
                    .collect(),
            });
        }
    }
    remote.commit(&partial, &name)?;
    report.seconds = started.elapsed().as_secs_f64();
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
    fn schemes_and_sets_on_targets() {
        assert_eq!(scheme_of("ssh://nas/b"), Some("ssh"));
        assert_eq!(scheme_of("webdav+https://x/y"), Some("webdav+https"));
        assert_eq!(scheme_of("/data/backups"), None);
        assert_eq!(scheme_of("./a://b"), None);
        assert_eq!(scheme_of("1x://b"), None);
        let e = Target::parse("ftp://nas/b").unwrap_err().to_string();
        assert!(e.contains("ftp:// targets are not supported"), "{e}");
        let (t, name) =
            Target::parse_set("ssh://u@nas:2222/srv/b/nightly-20261201-020000/").unwrap();
        assert_eq!(name, "nightly-20261201-020000");
        assert_eq!(t.to_string(), "ssh://u@nas:2222/srv/b");
        assert_eq!(
            t.set_url(&name),
            "ssh://u@nas:2222/srv/b/nightly-20261201-020000"
        );
        assert!(Target::parse_set("ssh://nas/srv/b").is_err());
        assert!(Target::parse_set("ssh://nas/srv/b/nightly-20261201-020000.partial").is_err());
        let e = local_only(Path::new("ssh://nas/x"), "backup pack").unwrap_err();
        assert!(e.to_string().contains("not on ssh:// targets"), "{e}");
        assert!(local_only(Path::new("/x/y"), "backup pack").is_ok());
        let full = ShipError::DiskFull {
            host: "nas:22".into(),
            file: "/srv/b/x".into(),
            free_bytes: Some(4096),
        };
        assert_eq!(
            full.to_string(),
            "no space left on nas:22:/srv/b/x (4.0 KiB free there)"
        );
    }

    #[test]
    fn ships_to_a_local_directory_resumes_and_repairs() {
        let src = tempfile::tempdir().unwrap();
        let set = crate::pack::tests::fake_set(src.path(), "nightly-20261126-020000");
        let nas = tempfile::tempdir().unwrap();
        let target = Target::Local(Utf8PathBuf::try_from(nas.path().join("backups")).unwrap());
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
}
