//! `s3://bucket/prefix`: the [`Remote`] on an S3-compatible object store
//! (AWS S3, a campus Ceph/MinIO, Garage).
//!
//! A set is the objects `<prefix>/<name>/<file>`. It is complete only when
//! its `manifest.json` object exists, and that object is written last, by
//! [`Remote::commit`], after every other object verified: while a set is
//! staged its manifest is kept as `manifest.json.partial`, so an interrupted
//! upload never looks complete (it is listed as `<name>.partial`) and the
//! next run resumes it (objects already there intact are not sent again;
//! unfinished multipart uploads under the set are aborted first).
//!
//! Files up to the part size go up in one PUT with an
//! `x-amz-checksum-sha256` the store checks the bytes against and keeps;
//! bigger ones as multipart uploads, each part's sha256 signed. A file is
//! verified from that stored whole-object checksum where there is one, and
//! by reading it back otherwise (a multipart object's checksum is one of its
//! parts' checksums, not of the whole object).
//!
//! Settings ([`S3Config`]) come first, then the standard AWS environment
//! (`AWS_ENDPOINT_URL[_S3]`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_PROFILE`,
//! `AWS_CA_BUNDLE`), then `~/.aws/credentials` and `~/.aws/config`. No
//! secret is ever put in an error, a log line or the set.

mod client;
mod sign;

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::{io_err, refuse_unless_set_name, Method, Remote, ShipError, Target};
use crate::compress::hex;
use crate::set::MANIFEST;
use client::Client;

/// The staged copy's manifest object (renamed to `manifest.json` on commit).
const STAGED_MANIFEST: &str = "manifest.json.partial";
/// Default part size of a multipart upload (AWS needs at least 5 MiB).
pub const DEFAULT_PART_SIZE: u64 = 16 << 20;
/// Default number of objects (or parts) in flight at once.
pub const DEFAULT_PARALLEL: usize = 4;

/// Virtual-host (`bucket.host`) or path-style (`host/bucket`) addressing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Addressing {
    /// Virtual-host on AWS, path-style on any other endpoint.
    #[default]
    Auto,
    /// `https://host/bucket/key`.
    Path,
    /// `https://bucket.host/key`.
    Virtual,
}

/// How to reach the store; every field is optional (see the module docs
/// for what fills the rest).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Config {
    /// `https://host[:port]` (default: AWS's endpoint of the region).
    pub endpoint: Option<String>,
    /// Region (signing scope); Garage's default is `garage`.
    pub region: Option<String>,
    /// Addressing style.
    pub addressing: Addressing,
    /// The profile in `~/.aws/credentials` and `~/.aws/config`.
    pub profile: Option<String>,
    /// Access key id (with [`S3Config::secret_access_key`]).
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// CA certificates (PEM) that replace the public roots for an https endpoint.
    pub ca_file: Option<PathBuf>,
    /// Bytes per multipart part, and the largest file sent in one PUT.
    pub part_size: Option<u64>,
    /// Objects or parts in flight at once.
    pub parallel: Option<usize>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("addressing", &self.addressing)
            .field("profile", &self.profile)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "(hidden)"),
            )
            .field("ca_file", &self.ca_file)
            .field("part_size", &self.part_size)
            .field("parallel", &self.parallel)
            .finish()
    }
}

impl S3Config {
    /// `self`, with every unset field taken from `other`.
    pub fn or(mut self, other: &S3Config) -> S3Config {
        let o = other.clone();
        self.endpoint = self.endpoint.or(o.endpoint);
        self.region = self.region.or(o.region);
        if self.addressing == Addressing::Auto {
            self.addressing = o.addressing;
        }
        self.profile = self.profile.or(o.profile);
        if self.access_key_id.is_none() {
            self.access_key_id = o.access_key_id;
            self.secret_access_key = o.secret_access_key;
        }
        self.ca_file = self.ca_file.or(o.ca_file);
        self.part_size = self.part_size.or(o.part_size);
        self.parallel = self.parallel.or(o.parallel);
        self
    }
}

/// Parses the part after `s3://` of `s` into a [`Target::S3`].
pub(super) fn parse(s: &str, rest: &str) -> Result<Target, ShipError> {
    let bad = |detail: &str| ShipError::BadTarget {
        target: s.to_owned(),
        detail: detail.to_owned(),
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    // S3's bucket naming rules, loosely: what a DNS label allows, and dots.
    if bucket.len() < 3
        || bucket.len() > 63
        || !bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        || bucket.starts_with(['-', '.'])
    {
        return Err(bad("the bucket name must be 3-63 lowercase letters, digits, dots or hyphens: s3://bucket/prefix"));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|c| c == "." || c == "..")
        || prefix.contains("//")
        || prefix.contains(|c: char| c.is_control())
    {
        return Err(bad("the prefix holds an empty, . or .. component"));
    }
    Ok(Target::S3 {
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
        config: S3Config::default(),
    })
}

/// Everything a request needs, resolved from settings, environment and files.
#[derive(Clone)]
pub(super) struct Resolved {
    https: bool,
    /// `host[:port]` (no default port).
    endpoint_host: String,
    /// A path below the endpoint's root ("" usually).
    base_path: String,
    bucket: String,
    path_style: bool,
    region: String,
    access_key_id: String,
    secret: String,
    session_token: Option<String>,
    ca_file: Option<PathBuf>,
}

/// Reads an INI file (`~/.aws/credentials` style) into sections of keys.
fn read_ini(path: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(path) else {
        return out;
    };
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with(['#', ';']) || line.is_empty() {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.trim().to_owned();
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.entry(section.clone())
                .or_default()
                .insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    out
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn aws_file(var: &str, name: &str) -> Option<PathBuf> {
    env(var)
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".aws").join(name)))
}

/// Resolves `config` for `bucket`: settings, then environment, then files.
pub(super) fn resolve(
    target: &str,
    bucket: &str,
    config: &S3Config,
) -> Result<Resolved, ShipError> {
    let bad = |detail: String| ShipError::BadTarget {
        target: target.to_owned(),
        detail,
    };
    let profile = config
        .profile
        .clone()
        .or_else(|| env("AWS_PROFILE"))
        .unwrap_or_else(|| "default".into());
    let cfg_file = aws_file("AWS_CONFIG_FILE", "config")
        .map(|p| read_ini(&p))
        .unwrap_or_default();
    let cfg_section = cfg_file
        .get(&format!("profile {profile}"))
        .or_else(|| cfg_file.get(&profile))
        .cloned()
        .unwrap_or_default();
    let region = config
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .or_else(|| cfg_section.get("region").cloned())
        .unwrap_or_else(|| "us-east-1".into());
    let endpoint = config
        .endpoint
        .clone()
        .or_else(|| env("AWS_ENDPOINT_URL_S3"))
        .or_else(|| env("AWS_ENDPOINT_URL"))
        .or_else(|| cfg_section.get("endpoint_url").cloned());
    let custom = endpoint.is_some();
    let endpoint = endpoint.unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
    let (https, rest) = if let Some(r) = endpoint.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = endpoint.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad(format!(
            "the endpoint '{endpoint}' must start with https:// or http://"
        )));
    };
    let (authority, base_path) = match rest.split_once('/') {
        Some((a, p)) => (a, format!("/{}", p.trim_matches('/'))),
        None => (rest, String::new()),
    };
    let base_path = if base_path == "/" {
        String::new()
    } else {
        base_path
    };
    let authority = match (https, authority.rsplit_once(':')) {
        (true, Some((h, "443"))) | (false, Some((h, "80"))) => h.to_owned(),
        _ => authority.to_owned(),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(bad(format!(
            "the endpoint '{endpoint}' needs a host (and no user name)"
        )));
    }
    let path_style = match config.addressing {
        Addressing::Path => true,
        Addressing::Virtual => false,
        // A bucket with dots breaks the certificate of bucket.host.
        Addressing::Auto => custom || bucket.contains('.'),
    };
    // Credentials: settings; an explicit profile's file entry; the environment; the default profile.
    let creds_file = aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials")
        .map(|p| read_ini(&p))
        .unwrap_or_default();
    let from_files = || -> Option<(String, String, Option<String>)> {
        for sec in [creds_file.get(&profile), Some(&cfg_section)]
            .into_iter()
            .flatten()
        {
            if let (Some(k), Some(s)) = (
                sec.get("aws_access_key_id"),
                sec.get("aws_secret_access_key"),
            ) {
                return Some((k.clone(), s.clone(), sec.get("aws_session_token").cloned()));
            }
        }
        None
    };
    let from_env = || -> Option<(String, String, Option<String>)> {
        Some((
            env("AWS_ACCESS_KEY_ID")?,
            env("AWS_SECRET_ACCESS_KEY")?,
            env("AWS_SESSION_TOKEN"),
        ))
    };
    let creds = match (&config.access_key_id, &config.secret_access_key) {
        (Some(k), Some(s)) => Some((k.clone(), s.clone(), None)),
        (Some(_), None) | (None, Some(_)) => {
            return Err(bad(
                "the settings give only one of access_key_id and secret_access_key".into(),
            ))
        }
        (None, None) if config.profile.is_some() => from_files().or_else(from_env),
        (None, None) => from_env().or_else(from_files),
    };
    let (access_key_id, secret, session_token) = creds.ok_or_else(|| bad(format!(
        "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, put profile [{profile}] in ~/.aws/credentials, or set access_key_id/secret_access_key under [s3] in spyglass-admin.toml"
    )))?;
    // A CA bundle is for TLS: it means nothing to a plain-http endpoint.
    let ca_file = if https {
        config
            .ca_file
            .clone()
            .or_else(|| env("AWS_CA_BUNDLE").map(PathBuf::from))
    } else {
        None
    };
    Ok(Resolved {
        https,
        endpoint_host: authority,
        base_path,
        bucket: bucket.to_owned(),
        path_style,
        region,
        access_key_id,
        secret,
        session_token,
        ca_file,
    })
}

/// A prefix in a bucket as a ship target.
#[derive(Debug)]
pub struct S3 {
    client: Result<Client, String>,
    /// The target as written, for messages.
    display: String,
    bucket: String,
    /// `""` or `dir/` (ends in a slash).
    prefix: String,
    part_size: u64,
    parallel: usize,
    config_error: Option<ShipError>,
}

impl S3 {
    pub(super) fn new(bucket: &str, prefix: &str, config: &S3Config) -> S3 {
        let display = if prefix.is_empty() {
            format!("s3://{bucket}")
        } else {
            format!("s3://{bucket}/{prefix}")
        };
        let (client, config_error) = match resolve(&display, bucket, config).and_then(Client::new) {
            Ok(c) => (Ok(c), None),
            Err(e) => (Err(e.to_string()), Some(e)),
        };
        S3 {
            client,
            display,
            bucket: bucket.to_owned(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            part_size: config.part_size.unwrap_or(DEFAULT_PART_SIZE).max(1),
            parallel: config.parallel.unwrap_or(DEFAULT_PARALLEL).max(1),
            config_error,
        }
    }

    fn client(&self) -> Result<&Client, ShipError> {
        match &self.client {
            Ok(c) => Ok(c),
            Err(detail) => Err(ShipError::BadTarget {
                target: self.display.clone(),
                detail: match &self.config_error {
                    Some(ShipError::BadTarget { detail, .. }) => detail.clone(),
                    _ => detail.clone(),
                },
            }),
        }
    }

    /// The object key prefix of the set (or staged copy) `name`.
    fn set_prefix(&self, name: &str) -> String {
        let dir = name.strip_suffix(crate::set::PARTIAL).unwrap_or(name);
        format!("{}{dir}/", self.prefix)
    }

    /// The key of `rel` in the set or staged copy `name`.
    fn key(&self, name: &str, rel: &str) -> String {
        let staged = name.ends_with(crate::set::PARTIAL);
        let rel = if staged && rel == MANIFEST {
            STAGED_MANIFEST
        } else {
            rel
        };
        format!("{}{rel}", self.set_prefix(name))
    }

    /// `(relative path, size)` of the files of `name` (a committed set or a staged copy).
    fn files(&self, name: &str) -> Result<Vec<(String, u64)>, ShipError> {
        let staged = name.ends_with(crate::set::PARTIAL);
        let p = self.set_prefix(name);
        let mut out = Vec::new();
        for (k, size) in self.client()?.list(&p)? {
            let Some(rel) = k.strip_prefix(&p) else {
                continue;
            };
            let rel = match (staged, rel) {
                (true, MANIFEST) => continue,
                (true, STAGED_MANIFEST) => MANIFEST,
                (false, STAGED_MANIFEST) => continue,
                (_, r) => r,
            };
            out.push((rel.to_owned(), size));
        }
        Ok(out)
    }

    /// Runs `work(i)` for `0..n` on up to [`S3::parallel`] threads; the first error stops the rest.
    fn in_parallel(
        &self,
        n: usize,
        work: impl Fn(usize) -> Result<(), ShipError> + Sync,
    ) -> Result<(), ShipError> {
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let first: Mutex<Option<ShipError>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..self.parallel.min(n) {
                s.spawn(|| loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    if let Err(e) = work(i) {
                        stop.store(true, Ordering::Relaxed);
                        let mut f = first.lock().unwrap_or_else(|p| p.into_inner());
                        f.get_or_insert(e);
                        return;
                    }
                });
            }
        });
        match first.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Reads `len` bytes at `offset` of `path`.
    fn read_part(path: &Path, offset: u64, len: u64) -> Result<Vec<u8>, ShipError> {
        let mut f = std::fs::File::open(path).map_err(io_err("reading", path))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(io_err("reading", path))?;
        let mut buf = vec![0u8; len as usize];
        f.read_exact(&mut buf).map_err(io_err("reading", path))?;
        Ok(buf)
    }

    /// Aborts the unfinished multipart uploads under the set `name` (ours:
    /// nothing else writes there).
    fn abort_unfinished(&self, name: &str) -> Result<(), ShipError> {
        let c = self.client()?;
        for (key, id) in c.list_multipart(&self.set_prefix(name))? {
            c.abort_multipart(&key, &id)?;
        }
        Ok(())
    }

    /// Aborts every unfinished multipart upload under a set's (or staged
    /// copy's) prefix of this target: uploads of a run that was interrupted.
    /// Only set prefixes are touched; one writer ships to a target at a
    /// time (nightly holds its lock; a second writer's upload would be
    /// aborted and that run fail cleanly, its set staged).
    fn abort_leftovers(&self) -> Result<usize, ShipError> {
        let c = self.client()?;
        let mut n = 0;
        for (key, id) in c.list_multipart(&self.prefix)? {
            let in_set = key
                .strip_prefix(&self.prefix)
                .and_then(|r| r.split_once('/'))
                .is_some_and(|(dir, _)| super::is_set_name(dir));
            if in_set {
                c.abort_multipart(&key, &id)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// The sets and staged copies there, each with its files' total size
    /// and number of objects.
    fn names_and_sizes(&self) -> Result<BTreeMap<String, (u64, usize)>, ShipError> {
        let mut dirs: BTreeMap<String, (bool, u64, usize)> = BTreeMap::new();
        for (k, size) in self.client()?.list(&self.prefix)? {
            let Some(rest) = k.strip_prefix(&self.prefix) else {
                continue;
            };
            let Some((dir, rel)) = rest.split_once('/') else {
                continue;
            };
            let e = dirs.entry(dir.to_owned()).or_default();
            if rel == MANIFEST {
                e.0 = true;
            }
            if rel != STAGED_MANIFEST || !e.0 {
                e.1 += size;
                e.2 += 1;
            }
        }
        Ok(dirs
            .into_iter()
            .map(|(d, (complete, bytes, n))| {
                (
                    if complete {
                        d
                    } else {
                        format!("{d}{}", crate::set::PARTIAL)
                    },
                    (bytes, n),
                )
            })
            .collect())
    }
}

impl Remote for S3 {
    fn host(&self) -> String {
        match &self.client {
            Ok(c) => c.host(),
            Err(_) => self.display.clone(),
        }
    }

    fn location(&self, name: &str) -> String {
        format!("s3://{}/{}{name}", self.bucket, self.prefix)
    }

    fn probe(&mut self, create: bool) -> Result<Vec<String>, ShipError> {
        // The bucket is the store administrator's to create; a missing one is an error.
        let names: Vec<String> = self.names_and_sizes()?.into_keys().collect();
        if create {
            // A run about to write: first abort what interrupted runs left
            // (a node failure, a killed process), under every set here, so
            // no run leaves them to pile up even when it fails itself.
            self.abort_leftovers()?;
        }
        Ok(names)
    }

    fn method(&self) -> Result<Method, ShipError> {
        Ok(Method {
            transport: "s3",
            verified_by: "stored sha256 or read-back",
            sends_whole_set: false,
        })
    }

    fn hashes(&self, name: &str) -> Result<BTreeMap<String, String>, ShipError> {
        let c = self.client()?;
        let files = self.files(name)?;
        let out: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
        self.in_parallel(files.len(), |i| {
            let (rel, _) = &files[i];
            let key = self.key(name, rel);
            let sum = match c.stored_sha256(&key)? {
                Some(s) => s,
                None => c.get_with(&key, |r| {
                    let mut h = Sha256::new();
                    std::io::copy(r, &mut h)?;
                    Ok(hex(&h.finalize()))
                })?,
            };
            out.lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(rel.clone(), sum);
            Ok(())
        })?;
        Ok(out.into_inner().unwrap_or_else(|p| p.into_inner()))
    }

    fn send(&self, set: &Path, staging: &str, files: &[String]) -> Result<(), ShipError> {
        let c = self.client()?;
        // An earlier run's unfinished uploads: started by us, never completed.
        self.abort_unfinished(staging)?;
        struct Upload {
            rel: usize,
            id: String,
            parts: Mutex<Vec<(u32, String)>>,
        }
        // (file index, part number (0: a single PUT), offset, length)
        let mut jobs: Vec<(usize, u32, u64, u64)> = Vec::new();
        let mut uploads: Vec<Upload> = Vec::new();
        let mut upload_of: BTreeMap<usize, usize> = BTreeMap::new();
        for (i, rel) in files.iter().enumerate() {
            let p = set.join(rel);
            let len = std::fs::metadata(&p).map_err(io_err("reading", &p))?.len();
            if len <= self.part_size {
                jobs.push((i, 0, 0, len));
                continue;
            }
            let id = c.create_multipart(&self.key(staging, rel))?;
            upload_of.insert(i, uploads.len());
            uploads.push(Upload {
                rel: i,
                id,
                parts: Mutex::new(Vec::new()),
            });
            let mut off = 0;
            let mut n = 1;
            while off < len {
                let l = self.part_size.min(len - off);
                jobs.push((i, n, off, l));
                off += l;
                n += 1;
            }
        }
        let sent = self.in_parallel(jobs.len(), |j| {
            let (i, n, off, len) = jobs[j];
            let rel = &files[i];
            let body = Self::read_part(&set.join(rel), off, len)?;
            let key = self.key(staging, rel);
            if n == 0 {
                c.put(&key, &body, &Sha256::digest(&body))
            } else {
                let u = &uploads[upload_of[&i]];
                let etag = c.upload_part(&key, &u.id, n, &body)?;
                u.parts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((n, etag));
                Ok(())
            }
        });
        let completed = sent.and_then(|()| {
            self.in_parallel(uploads.len(), |u| {
                let up = &uploads[u];
                let mut parts = up.parts.lock().unwrap_or_else(|p| p.into_inner()).clone();
                parts.sort();
                c.complete_multipart(&self.key(staging, &files[up.rel]), &up.id, &parts)
            })
        });
        if completed.is_err() {
            // Best effort: the next run aborts what is left anyway.
            for up in &uploads {
                let _ = c.abort_multipart(&self.key(staging, &files[up.rel]), &up.id);
            }
            return completed;
        }
        // Every upload of ours is complete: one still listed is an orphan of a
        // retried request whose first try the store did carry out.
        self.abort_unfinished(staging)
    }

    fn remove_files(&self, staging: &str, files: &[String]) -> Result<(), ShipError> {
        let c = self.client()?;
        self.in_parallel(files.len(), |i| c.delete(&self.key(staging, &files[i])))
    }

    fn commit(&self, staging: &str, name: &str) -> Result<(), ShipError> {
        let c = self.client()?;
        let (from, to) = (self.key(staging, MANIFEST), self.key(name, MANIFEST));
        if c.exists(&to)? {
            return Err(ShipError::Remote {
                host: self.host(),
                what: format!("committing {}", self.location(name)),
                detail: "a complete set of that name is there already".into(),
            });
        }
        // The manifest object appears last: from here on the set is complete.
        c.copy(&from, &to)?;
        c.delete(&from)?;
        // A delete retried while a node fails can leave the staged manifest
        // listed; it is harmless beside the committed one (readers ignore
        // it), but ask once more so the store stays tidy.
        if c.exists(&from)? {
            c.delete(&from)?;
        }
        Ok(())
    }

    fn reopen(&self, name: &str, staging: &str) -> Result<(), ShipError> {
        let c = self.client()?;
        let (from, to) = (self.key(name, MANIFEST), self.key(staging, MANIFEST));
        c.copy(&from, &to)?;
        c.delete(&from)
    }

    fn remove_set(&self, name: &str) -> Result<(), ShipError> {
        refuse_unless_set_name(&self.host(), name)?;
        let c = self.client()?;
        let p = self.set_prefix(name);
        // A staged copy and a complete set share their objects' prefix: a
        // staged name never removes a set that is complete.
        if name.ends_with(crate::set::PARTIAL) && c.exists(&format!("{p}{MANIFEST}"))? {
            return Err(ShipError::Remote {
                host: self.host(),
                what: format!("removing {}", self.location(name)),
                detail: "the set is complete there (it has its manifest object)".into(),
            });
        }
        self.abort_unfinished(name)?;
        let mut keys: Vec<String> = c.list(&p)?.into_iter().map(|(k, _)| k).collect();
        // The manifest goes first: a half-removed set must not look complete.
        keys.sort_by_key(|k| !k.ends_with(&format!("/{MANIFEST}")));
        if let Some(m) = keys
            .first()
            .filter(|k| k.ends_with(&format!("/{MANIFEST}")))
        {
            c.delete(m)?;
        }
        self.in_parallel(keys.len(), |i| c.delete(&keys[i]))
    }

    fn sizes(&self, name: &str) -> Result<BTreeMap<String, u64>, ShipError> {
        Ok(self.files(name)?.into_iter().collect())
    }

    fn fetch(&self, name: &str, files: &[String], dest: &Path) -> Result<(), ShipError> {
        let c = self.client()?;
        self.in_parallel(files.len(), |i| {
            let rel = &files[i];
            let dst = dest.join(rel);
            if let Some(p) = dst.parent() {
                std::fs::create_dir_all(p).map_err(io_err("creating", p))?;
            }
            c.get_with(&self.key(name, rel), |r| {
                let mut f = std::fs::File::create(&dst)?;
                std::io::copy(r, &mut f)?;
                f.flush()
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_targets() {
        let t = Target::parse("s3://lab-backups/mysql/nightly/").unwrap();
        assert_eq!(
            t,
            Target::S3 {
                bucket: "lab-backups".into(),
                prefix: "mysql/nightly".into(),
                config: S3Config::default()
            }
        );
        assert_eq!(t.to_string(), "s3://lab-backups/mysql/nightly");
        assert_eq!(
            Target::parse("s3://lab-backups").unwrap().to_string(),
            "s3://lab-backups"
        );
        for bad in [
            "s3://",
            "s3://A_b/x",
            "s3://ab",
            "s3://lab/../x",
            "s3://lab/a//b",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolves_settings_before_environment() {
        let cfg = S3Config {
            endpoint: Some("http://127.0.0.1:3900/".into()),
            region: Some("garage".into()),
            access_key_id: Some("GK1".into()),
            secret_access_key: Some("s3cret".into()),
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..S3Config::default()
        };
        let r = resolve("s3://b", "bucket", &cfg).unwrap();
        assert!(!r.https && r.path_style);
        assert_eq!(r.endpoint_host, "127.0.0.1:3900");
        assert_eq!(
            (r.region.as_str(), r.access_key_id.as_str()),
            ("garage", "GK1")
        );
        // A CA bundle is for https only.
        assert!(r.ca_file.is_none());
        let r = resolve(
            "s3://b",
            "bucket",
            &S3Config {
                endpoint: Some("https://s3.campus.example:443".into()),
                ..cfg.clone()
            },
        )
        .unwrap();
        assert_eq!(r.endpoint_host, "s3.campus.example");
        assert!(r.https && r.ca_file.is_some());
        assert!(!format!("{cfg:?}").contains("s3cret"));
        let Err(e) = resolve(
            "s3://b",
            "bucket",
            &S3Config {
                endpoint: Some("ftp://x".into()),
                ..cfg
            },
        ) else {
            panic!("an ftp:// endpoint is refused")
        };
        assert!(e.to_string().contains("https://"), "{e}");
    }
}
