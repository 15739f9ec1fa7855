//! The read side of a target, through [`Remote`] only (so every kind of
//! target that can [`Remote::fetch`] gets it): [`list_target`] for `backup
//! list`, [`fetch_set`] for `backup verify` and `backup restore`, which then
//! run on the fetched copy with exactly the checks of a local set.
//!
//! A fetched copy lives in a private (0700) temporary directory under
//! `$TMPDIR` (default `/tmp`), removed when the [`FetchedSet`] is dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{io_err, is_set_name, Remote, ShipError, SshOptions, Target};
use crate::list::{self, SetInfo, Status};
use crate::manifest::Manifest;
use crate::names;
use crate::set::{MANIFEST, PARTIAL, VERIFY_RECORD, VERIFY_RECORD_TMP};

/// A set fetched from a target into a private temporary directory,
/// removed when this is dropped.
#[derive(Debug)]
pub struct FetchedSet {
    /// The local copy: a set directory named like the set.
    pub path: PathBuf,
    /// Where it came from (`ssh://.../<name>`), for messages.
    pub url: String,
    /// Bytes fetched.
    pub bytes: u64,
    _dir: tempfile::TempDir,
}

impl FetchedSet {
    /// Where the fetched file `rel` came from: `TARGET/NAME/rel`.
    pub fn url_of(&self, rel: &str) -> String {
        format!("{}/{rel}", self.url)
    }

    /// A path in the local copy as where it came from (`TARGET/NAME/...`);
    /// any other path as it is.
    pub fn origin_of(&self, p: &Path) -> PathBuf {
        match p.strip_prefix(&self.path) {
            Ok(rel) if rel.as_os_str().is_empty() => PathBuf::from(&self.url),
            Ok(rel) => PathBuf::from(self.url_of(&rel.to_string_lossy())),
            Err(_) => p.to_owned(),
        }
    }

    /// The files of the manifest whose fetched bytes are missing or do not
    /// match its size and sha256, each as `TARGET/NAME/<file>`: what a
    /// restore from a target checks before anything on the server changes
    /// (so the damaged copy is named by where it is).
    pub fn damaged(&self) -> Result<Vec<String>, ShipError> {
        use rayon::prelude::*;
        let m = Manifest::load(&self.path)?;
        let mut bad: Vec<String> = m
            .files
            .par_iter()
            .filter(|f| {
                !matches!(crate::compress::file_sha256(&self.path.join(&f.path)),
                    Ok((n, sum)) if n == f.bytes && sum == f.sha256)
            })
            .map(|f| self.url_of(&f.path))
            .collect();
        bad.sort();
        Ok(bad)
    }
}

/// A new private (0700) directory under `$TMPDIR`, removed when dropped:
/// where a fetched set goes, and where `backup run --dest ssh://...`
/// writes the set it ships.
pub fn private_tempdir(prefix: &str) -> Result<tempfile::TempDir, ShipError> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = std::env::temp_dir();
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&tmp)
        .map_err(io_err("creating a temporary directory in", &tmp))?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .map_err(io_err("securing", dir.path()))?;
    Ok(dir)
}

/// Sizes of the files of `name` there, or `None` when the target cannot list them.
fn sizes_or_none(
    remote: &dyn Remote,
    name: &str,
) -> Result<Option<BTreeMap<String, u64>>, ShipError> {
    match remote.sizes(name) {
        Ok(s) => Ok(Some(s)),
        Err(ShipError::NotSupported { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every set on `target`, oldest first, described as [`list::list`]
/// describes a local directory: each manifest is fetched (nothing else)
/// and every file's size there is compared with it.
pub fn list_target(target: &Target, ssh: &SshOptions) -> Result<Vec<SetInfo>, ShipError> {
    let mut remote = target.lister(ssh);
    let names = remote.probe(false)?;
    let tmp = private_tempdir("spyglass-admin-fetch-")?;
    let mut sets = Vec::new();
    for name in names.iter().filter(|n| is_set_name(n)) {
        let mut info = SetInfo {
            name: name.clone(),
            path: PathBuf::from(target.set_url(name)),
            status: Status::Complete,
            detail: None,
            writer_alive: None,
            bytes: 0,
            created: names::parse_stamp(name),
            schemas: Vec::new(),
            label: None,
            verified: None,
            on_target: true,
            // The binlog archive is not shipped yet: no window on a target.
            restorable: None,
        };
        let sizes = sizes_or_none(remote.as_ref(), name)?;
        info.bytes = sizes.as_ref().map_or(0, |s| s.values().sum());
        if name.ends_with(PARTIAL) {
            info.status = Status::Partial;
            info.on_target = false;
            info.detail = Some(
                "a copy being shipped, or an interrupted one (the next ship resumes it)".into(),
            );
            sets.push(info);
            continue;
        }
        if sizes.as_ref().is_some_and(|s| !s.contains_key(MANIFEST)) {
            info.status = Status::Corrupt;
            info.detail = Some(format!("{MANIFEST} is missing"));
            sets.push(info);
            continue;
        }
        let dest = tmp.path().join(name);
        remote.fetch(name, &[MANIFEST.to_owned()], &dest)?;
        match Manifest::load(&dest) {
            Err(e) => {
                info.status = Status::Corrupt;
                info.detail = Some(match e {
                    crate::Error::BadSet { detail, .. } => detail,
                    e => e.to_string(),
                });
            }
            Ok(m) => {
                if sizes.is_none() {
                    info.bytes = m.total_bytes();
                }
                info.schemas = m.schemas.clone();
                info.label = Some(m.label.clone());
                if let Some(s) = &sizes {
                    if let Some(d) = list::size_problem(&m, |rel| s.get(rel).copied()) {
                        info.status = Status::Corrupt;
                        info.detail = Some(d);
                    }
                }
            }
        }
        sets.push(info);
    }
    sets.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
    Ok(sets)
}

/// Fetches the committed set `name` from `target` into a private temporary
/// directory: every file the set holds there (so verify also sees files the
/// manifest does not list). Refuses a name that is not there, a staged
/// copy, and a set larger than the free space of `$TMPDIR`.
pub fn fetch_set(target: &Target, name: &str, ssh: &SshOptions) -> Result<FetchedSet, ShipError> {
    let url = target.set_url(name);
    let mut remote = target.lister(ssh);
    let there = remote.probe(false)?;
    if !there.iter().any(|n| n == name) {
        let staged = format!("{name}{PARTIAL}");
        let detail = if there.contains(&staged) {
            format!("only the staged copy {staged} is there: a ship of it did not finish; ship the set again to complete it")
        } else {
            let mut sets: Vec<&String> = there
                .iter()
                .filter(|n| is_set_name(n) && !n.ends_with(PARTIAL))
                .collect();
            sets.sort();
            match sets.last() {
                Some(newest) => format!(
                    "no such set there ({} set(s); the newest is {newest}; backup list {target} shows them all)",
                    sets.len()
                ),
                None => "no such set there (no sets at all)".to_owned(),
            }
        };
        return Err(ShipError::Fetch {
            location: url,
            detail,
        });
    }
    let tmp = private_tempdir("spyglass-admin-fetch-")?;
    let dest = tmp.path().join(name);
    let sizes = sizes_or_none(remote.as_ref(), name)?;
    let bytes: u64 = sizes.as_ref().map_or(0, |s| s.values().sum());
    let files: Vec<String> = match sizes {
        Some(s) => s
            .into_keys()
            .filter(|f| f != VERIFY_RECORD && f != VERIFY_RECORD_TMP)
            .collect(),
        None => {
            // Without a listing: the manifest first, then what it lists.
            remote.fetch(name, &[MANIFEST.to_owned()], &dest)?;
            let m = Manifest::load(&dest)?;
            let mut f = vec![crate::set::RESTORE_TXT.to_owned()];
            f.extend(m.files.iter().map(|f| f.path.clone()));
            f
        }
    };
    if let Some(free) = crate::destination::probe(tmp.path()).free_bytes {
        if bytes > free {
            return Err(ShipError::Fetch {
                location: url,
                detail: format!(
                    "the set holds {} but {} has {} free; set TMPDIR to a directory with room for it",
                    super::human_bytes(bytes),
                    std::env::temp_dir().display(),
                    super::human_bytes(free)
                ),
            });
        }
    }
    remote.fetch(name, &files, &dest)?;
    Ok(FetchedSet {
        path: dest,
        url,
        bytes,
        _dir: tmp,
    })
}

/// The local copy of a set given as `s`: a set directory as it is, or
/// `TARGET/NAME` (a scheme such as `ssh://`) fetched with `ssh`. The
/// [`FetchedSet`], when there is one, must live as long as the copy is used.
/// An `s3://` set needs its store's settings: see [`open_set_on`].
pub fn open_set(s: &Path, ssh: &SshOptions) -> Result<(PathBuf, Option<FetchedSet>), ShipError> {
    open_set_on(s, ssh, &super::s3::S3Config::default())
}

/// [`open_set`] for every kind of target: `ssh` for `ssh://` sets, `s3`
/// (the `[s3]` settings; the AWS environment and files fill the rest) for
/// `s3://` ones.
pub fn open_set_on(
    s: &Path,
    ssh: &SshOptions,
    s3: &super::s3::S3Config,
) -> Result<(PathBuf, Option<FetchedSet>), ShipError> {
    match s.to_str().filter(|t| super::scheme_of(t).is_some()) {
        None => Ok((s.to_owned(), None)),
        Some(t) => {
            let (target, name) = Target::parse_set(t)?;
            let f = fetch_set(&target.with_s3_config(s3), &name, ssh)?;
            Ok((f.path.clone(), Some(f)))
        }
    }
}
