//! The binary-log archive on a ship target, through [`Remote`] only (so a
//! directory, `ssh://` and `s3://` all hold it the same way).
//!
//! Layout under the target's base, next to the sets:
//!
//! ```text
//! binlog/README.txt                      what this is
//! binlog/<file>/<file>.gz                one closed server file, as in the local archive
//! binlog/open/<file>.gz                  the open file's complete events (a segment, replaced each ship)
//! binlog/index/index.json                the shipped index (written last)
//! ```
//!
//! Each closed file and the segment is its own unit (a name for
//! [`Remote::send`]) so a transport that mirrors a whole directory (rsync
//! `--delete`) never removes what an earlier ship left. Every unit is
//! checked against its sha256 on the target before the index that lists it
//! is written, so a file the shipped index lists is a verified copy.
//! [`fetch`] reads it back into a local directory that
//! [`spyglass_binlog::index::Archive`] opens, every sha256 checked again.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use spyglass_binlog::index::{self, FileEntry, Gap, Index};

use super::{io_err, Remote, ShipError, ShipOptions, SshOptions, Target};

/// The directory on the target.
pub const DIR: &str = "binlog";
const INDEX_UNIT: &str = "binlog/index";
const OPEN_UNIT: &str = "binlog/open";
const INDEX_FILE: &str = "index.json";
const README: &str = "README.txt";

/// The open file's complete events, as last shipped.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Segment {
    /// The server's file name.
    pub file: String,
    /// The compressed copy (`<file>.gz` in `binlog/open/`).
    pub archive: String,
    /// Uncompressed size: the end of its last complete event.
    pub size: u64,
    /// sha256 of the compressed copy.
    pub sha256: String,
    /// Header time of its last event (seconds, UTC).
    pub last_time: u32,
}

/// `binlog/index/index.json` on a target.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShippedIndex {
    /// Format version (1).
    pub version: u32,
    /// Closed files there, oldest first (entries as in the local index).
    pub files: Vec<FileEntry>,
    /// Gaps, as the local archive recorded them.
    pub gaps: Vec<Gap>,
    /// The open file's segment, if one was shipped.
    pub open: Option<Segment>,
    /// When this index was written (RFC 3339, UTC).
    pub shipped: String,
}

impl ShippedIndex {
    /// Time of the last event the target holds (seconds, UTC).
    pub fn last_time(&self) -> Option<u32> {
        let closed = self.files.last().map(|e| e.last_time);
        match (&self.open, closed) {
            (Some(s), Some(c)) => Some(s.last_time.max(c)),
            (Some(s), None) => Some(s.last_time),
            (None, c) => c,
        }
    }
}

/// What [`ship`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BinlogShipReport {
    /// Where the archive went (`<target>/binlog`).
    pub target: String,
    /// Closed files sent (and verified) in this run.
    pub sent: Vec<String>,
    /// Closed files the target had already.
    pub already_there: usize,
    /// The open file's segment sent in this run (`file:size`), if any.
    pub segment: Option<String>,
    /// Bytes sent.
    pub bytes: u64,
    /// Time of the last event the target holds after this run.
    pub last_time: Option<u32>,
    /// Seconds taken.
    pub seconds: f64,
}

fn unit(file: &str) -> String {
    format!("{DIR}/{file}")
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn binlog_err(e: spyglass_binlog::Error) -> ShipError {
    ShipError::Set(Box::new(crate::Error::from(e)))
}

/// Reads the shipped index of `remote` (None when nothing was shipped yet).
/// `names` is what [`Remote::probe`] listed.
fn read_index(remote: &dyn Remote, names: &[String]) -> Result<Option<ShippedIndex>, ShipError> {
    if !names.iter().any(|n| n == DIR) {
        return Ok(None);
    }
    let tmp = super::private_tempdir("spyglass-admin-binlog-")?;
    match remote.fetch(INDEX_UNIT, &[INDEX_FILE.to_owned()], tmp.path()) {
        Ok(()) => {}
        Err(e) => {
            // The directory is there but no index (a first ship stopped
            // before its end): nothing listed there counts.
            let has_index = remote
                .sizes(DIR)
                .ok()
                .map(|s| s.contains_key(&format!("index/{INDEX_FILE}")));
            if has_index == Some(false) {
                return Ok(None);
            }
            return Err(e);
        }
    }
    let p = tmp.path().join(INDEX_FILE);
    let b = std::fs::read(&p).map_err(io_err("reading", &p))?;
    serde_json::from_slice(&b)
        .map(Some)
        .map_err(|e| ShipError::Fetch {
            location: remote.location(INDEX_UNIT),
            detail: format!("{INDEX_FILE} is not valid: {e}"),
        })
}

/// Sends `files` of the local directory `src` as the unit `name`, then checks
/// their sha256 on the target (sending a mismatched file once more).
fn send_verified(
    remote: &dyn Remote,
    src: &Path,
    name: &str,
    expected: &BTreeMap<String, String>,
) -> Result<(), ShipError> {
    let files: Vec<String> = expected.keys().cloned().collect();
    remote.send(src, name, &files)?;
    let bad = |got: &BTreeMap<String, String>| -> Vec<String> {
        expected
            .iter()
            .filter(|(f, s)| got.get(*f) != Some(*s))
            .map(|(f, _)| format!("{}/{f}", remote.location(name)))
            .collect()
    };
    let mut b = bad(&remote.hashes(name)?);
    if !b.is_empty() {
        remote.remove_files(name, &files)?;
        remote.send(src, name, &files)?;
        b = bad(&remote.hashes(name)?);
    }
    if b.is_empty() {
        Ok(())
    } else {
        Err(ShipError::Mismatch {
            host: remote.host(),
            files: b,
        })
    }
}

/// Ships the local archive `archive` (`DEST/binlog`) to `target`: every
/// closed file the target lacks (sha256 checked locally first, then on the
/// target), the open file's complete events as a segment, then the index.
/// Files the target has but the local archive no longer has (pruned here)
/// stay listed there.
pub fn ship(
    archive: &Path,
    target: &Target,
    opts: &ShipOptions,
) -> Result<BinlogShipReport, ShipError> {
    let started = std::time::Instant::now();
    let local = index::Archive::open(archive).map_err(binlog_err)?;
    let mut remote = target.remote(opts);
    let names = remote.probe(true)?;
    let mut report = BinlogShipReport {
        target: remote.location(DIR),
        ..BinlogShipReport::default()
    };
    let stage = super::private_tempdir("spyglass-admin-binlog-")?;
    let there = match read_index(remote.as_ref(), &names)? {
        Some(i) => i,
        None => {
            // First ship: the directory, with a note on what it is.
            let d = stage.path().join("readme");
            std::fs::create_dir_all(&d).map_err(io_err("creating", &d))?;
            let p = d.join(README);
            std::fs::write(
                &p,
                "The binary-log archive of spyglass-admin: <file>/<file>.gz are closed server\n\
                 binlog files (gzip), open/ the open file's complete events, index/index.json\n\
                 lists them with sha256. `spyglass-admin backup restore TARGET/SET --until ...`\n\
                 reads it; do not edit by hand.\n",
            )
            .map_err(io_err("writing", &p))?;
            let sum = index::sha256_hex(&std::fs::read(&p).map_err(io_err("reading", &p))?);
            send_verified(
                remote.as_ref(),
                &d,
                DIR,
                &BTreeMap::from([(README.to_owned(), sum)]),
            )?;
            ShippedIndex {
                version: 1,
                ..ShippedIndex::default()
            }
        }
    };
    let mut shipped: BTreeMap<String, FileEntry> = there
        .files
        .iter()
        .map(|e| (e.file.clone(), e.clone()))
        .collect();
    for e in &local.index.files {
        if shipped.get(&e.file).is_some_and(|s| s.sha256 == e.sha256) {
            report.already_there += 1;
            continue;
        }
        let p = archive.join(&e.archive);
        let (n, sum) = crate::compress::file_sha256(&p).map_err(io_err("reading", &p))?;
        if sum != e.sha256 {
            return Err(crate::Error::BadFile {
                path: p,
                detail: "sha256 does not match the archive's index: the local copy is damaged"
                    .into(),
            }
            .into());
        }
        // A directory of its own, so a mirroring transport sends only it.
        let d = stage.path().join("files").join(&e.file);
        std::fs::create_dir_all(&d).map_err(io_err("creating", &d))?;
        let staged = d.join(&e.archive);
        if std::fs::hard_link(&p, &staged).is_err() {
            std::fs::copy(&p, &staged).map_err(io_err("copying", &p))?;
        }
        send_verified(
            remote.as_ref(),
            &d,
            &unit(&e.file),
            &BTreeMap::from([(e.archive.clone(), sum)]),
        )?;
        report.sent.push(e.file.clone());
        report.bytes += n;
        shipped.insert(e.file.clone(), e.clone());
    }
    // The open file: its complete events, compressed, replacing the last segment.
    let mut open = there.open.clone();
    if let Some(a) = &local.active {
        let bytes = local.read(a).map_err(binlog_err)?;
        let last_time = spyglass_binlog::format::events(&bytes)
            .last()
            .map(|(_, h, _)| h.timestamp);
        let same = open
            .as_ref()
            .is_some_and(|s| s.file == *a && s.size == bytes.len() as u64);
        if let (Some(last_time), false, false) = (last_time, same, shipped.contains_key(a)) {
            let d = stage.path().join("open");
            std::fs::create_dir_all(&d).map_err(io_err("creating", &d))?;
            let gz_name = format!("{a}.gz");
            let p = d.join(&gz_name);
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            enc.write_all(&bytes)
                .map_err(io_err("compressing", archive.join(a)))?;
            let gz = enc
                .finish()
                .map_err(io_err("compressing", archive.join(a)))?;
            std::fs::write(&p, &gz).map_err(io_err("writing", &p))?;
            let sum = index::sha256_hex(&gz);
            if let Some(old) = open.as_ref().filter(|s| s.archive != gz_name) {
                remote.remove_files(OPEN_UNIT, std::slice::from_ref(&old.archive))?;
            }
            send_verified(
                remote.as_ref(),
                &d,
                OPEN_UNIT,
                &BTreeMap::from([(gz_name.clone(), sum.clone())]),
            )?;
            report.bytes += gz.len() as u64;
            report.segment = Some(format!("{a}:{}", bytes.len()));
            open = Some(Segment {
                file: a.clone(),
                archive: gz_name,
                size: bytes.len() as u64,
                sha256: sum,
                last_time,
            });
        }
    }
    // A segment of a file that has closed since is superseded by the file.
    if open.as_ref().is_some_and(|s| shipped.contains_key(&s.file)) {
        open = None;
    }
    let mut files: Vec<FileEntry> = shipped.into_values().collect();
    files.sort_by_key(|e| index::sequence(&e.file));
    let mut gaps = there.gaps.clone();
    for g in &local.index.gaps {
        if !gaps.contains(g) {
            gaps.push(g.clone());
        }
    }
    let idx = ShippedIndex {
        version: 1,
        files,
        gaps,
        open,
        shipped: now_rfc3339(),
    };
    write_index(remote.as_ref(), stage.path(), &idx)?;
    report.last_time = idx.last_time();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn write_index(remote: &dyn Remote, stage: &Path, idx: &ShippedIndex) -> Result<(), ShipError> {
    let d = stage.join("index");
    std::fs::create_dir_all(&d).map_err(io_err("creating", &d))?;
    let p = d.join(INDEX_FILE);
    let body = serde_json::to_vec_pretty(idx).map_err(|e| ShipError::Remote {
        host: remote.host(),
        what: "writing the binlog index".into(),
        detail: e.to_string(),
    })?;
    std::fs::write(&p, &body).map_err(io_err("writing", &p))?;
    send_verified(
        remote,
        &d,
        INDEX_UNIT,
        &BTreeMap::from([(INDEX_FILE.to_owned(), index::sha256_hex(&body))]),
    )
}

/// The shipped index of `target`, or None when no archive was shipped there.
pub fn shipped_index(target: &Target, ssh: &SshOptions) -> Result<Option<ShippedIndex>, ShipError> {
    let mut remote = target.lister(ssh);
    let names = remote.probe(false)?;
    read_index(remote.as_ref(), &names)
}

/// A binlog archive fetched from a target into a private temporary
/// directory (removed when dropped).
#[derive(Debug)]
pub struct FetchedArchive {
    /// The local archive directory ([`spyglass_binlog::index::Archive::open`] reads it).
    pub path: PathBuf,
    /// Where it came from.
    pub url: String,
    /// Files fetched.
    pub files: usize,
    /// Bytes fetched.
    pub bytes: u64,
    _dir: tempfile::TempDir,
}

/// Fetches the archive shipped to `target` (the files from `from_file` on,
/// by sequence number; all with None) into a private temporary directory,
/// checking every file's sha256 against the shipped index; the open
/// segment is decompressed as the archive's open file.
pub fn fetch(
    target: &Target,
    ssh: &SshOptions,
    from_file: Option<&str>,
) -> Result<FetchedArchive, ShipError> {
    let mut remote = target.lister(ssh);
    let names = remote.probe(false)?;
    let url = remote.location(DIR);
    let idx = read_index(remote.as_ref(), &names)?.ok_or_else(|| ShipError::Fetch {
        location: url.clone(),
        detail: "no binlog archive was shipped there (spyglass-admin binlog ship, or backup ship of a set whose destination has binlog/)".into(),
    })?;
    let tmp = super::private_tempdir("spyglass-admin-binlog-")?;
    let dir = tmp.path().join(DIR);
    std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
    let from = from_file.and_then(index::sequence);
    let wanted = |f: &str| from.is_none_or(|n| index::sequence(f).is_some_and(|s| s >= n));
    let mut out = FetchedArchive {
        path: dir.clone(),
        url,
        files: 0,
        bytes: 0,
        _dir: tmp,
    };
    let check = |p: &Path, sha: &str, location: String| -> Result<u64, ShipError> {
        let (n, sum) = crate::compress::file_sha256(p).map_err(io_err("reading", p))?;
        if sum != sha {
            return Err(ShipError::Fetch {
                location,
                detail: "sha256 does not match the shipped index: the copy there is damaged".into(),
            });
        }
        Ok(n)
    };
    let mut local = Index {
        version: 1,
        files: Vec::new(),
        gaps: idx.gaps.clone(),
    };
    for e in idx.files.iter().filter(|e| wanted(&e.file)) {
        remote.fetch(&unit(&e.file), std::slice::from_ref(&e.archive), &dir)?;
        out.bytes += check(
            &dir.join(&e.archive),
            &e.sha256,
            format!("{}/{}", remote.location(&unit(&e.file)), e.archive),
        )?;
        out.files += 1;
        local.files.push(e.clone());
    }
    if let Some(s) = idx.open.as_ref().filter(|s| wanted(&s.file)) {
        let seg = tempfile::tempdir_in(out._dir.path()).map_err(io_err("creating", &dir))?;
        remote.fetch(OPEN_UNIT, std::slice::from_ref(&s.archive), seg.path())?;
        let p = seg.path().join(&s.archive);
        out.bytes += check(
            &p,
            &s.sha256,
            format!("{}/{}", remote.location(OPEN_UNIT), s.archive),
        )?;
        let gz = std::fs::read(&p).map_err(io_err("reading", &p))?;
        let mut raw = Vec::with_capacity(s.size as usize);
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw)
            .map_err(io_err("decompressing", &p))?;
        let dst = dir.join(&s.file);
        std::fs::write(&dst, &raw).map_err(io_err("writing", &dst))?;
        out.files += 1;
    }
    local.save(&dir).map_err(binlog_err)?;
    Ok(out)
}

/// Removes from the archive on `target` the closed files older than
/// `keep_from` (what no kept set there needs); returns their names (or
/// those that would go, with `dry_run`). The index is rewritten first, so
/// a file it lists is always there.
pub fn remove_before(
    target: &Target,
    ssh: &SshOptions,
    keep_from: &str,
    dry_run: bool,
) -> Result<Vec<String>, ShipError> {
    let Some(limit) = index::sequence(keep_from) else {
        return Ok(Vec::new());
    };
    let mut remote = target.lister(ssh);
    let names = remote.probe(false)?;
    let Some(mut idx) = read_index(remote.as_ref(), &names)? else {
        return Ok(Vec::new());
    };
    let (gone, kept): (Vec<FileEntry>, Vec<FileEntry>) = idx
        .files
        .drain(..)
        .partition(|e| index::sequence(&e.file).is_some_and(|n| n < limit));
    let removed: Vec<String> = gone.iter().map(|e| e.file.clone()).collect();
    if dry_run || gone.is_empty() {
        return Ok(removed);
    }
    idx.files = kept;
    idx.gaps
        .retain(|g| index::sequence(&g.to_file).is_some_and(|n| n > limit));
    idx.shipped = now_rfc3339();
    let stage = super::private_tempdir("spyglass-admin-binlog-")?;
    write_index(remote.as_ref(), stage.path(), &idx)?;
    for e in &gone {
        remote.remove_files(&unit(&e.file), std::slice::from_ref(&e.archive))?;
    }
    Ok(removed)
}
