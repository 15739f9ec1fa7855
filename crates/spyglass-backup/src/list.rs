//! Describing the sets in a destination directory.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::manifest::Manifest;
use crate::names;
use crate::set::MANIFEST;
use crate::Error;

/// The state of a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Renamed into place with a manifest, every file present with its size.
    Complete,
    /// A `.partial` directory: its writer is still running (`writer_alive`) or died.
    Partial,
    /// Looks finished but the manifest is missing or unreadable, or files are missing or the wrong size.
    Corrupt,
}

/// One set.
#[derive(Debug, Clone, Serialize)]
pub struct SetInfo {
    /// Directory name.
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    /// State.
    pub status: Status,
    /// Why it is corrupt, if it is.
    pub detail: Option<String>,
    /// For partial sets: whether the process that writes it is still alive.
    pub writer_alive: Option<bool>,
    /// Bytes on disk.
    pub bytes: u64,
    /// When it was started (from its name), Unix seconds.
    pub created: Option<i64>,
    /// Schemas (complete sets).
    pub schemas: Vec<String>,
    /// Label from the manifest.
    pub label: Option<String>,
    /// The last `backup verify` result recorded in the set ([`crate::set::VERIFY_RECORD`]);
    /// `None`: never verified. `list` itself reads file sizes only, never data.
    pub verified: Option<crate::verify::VerifyRecord>,
    /// A committed copy on a ship target (`backup list ssh://...`): every
    /// file's sha256 matched the manifest there before it was committed.
    pub on_target: bool,
    /// Point-in-time restores: from the set's snapshot to the binlog
    /// archive's last event (`DEST/binlog`); absent without an archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restorable: Option<RestorableWindow>,
}

/// The first file of `m` that is missing or not the size the manifest
/// says, by `size_of` (a file's size, `None` when missing), in words.
pub(crate) fn size_problem(m: &Manifest, size_of: impl Fn(&str) -> Option<u64>) -> Option<String> {
    m.files.iter().find_map(|f| match size_of(&f.path) {
        Some(n) if n == f.bytes => None,
        Some(n) => Some(format!(
            "{} is {n} bytes, the manifest says {}",
            f.path, f.bytes
        )),
        None => Some(format!("{} is missing", f.path)),
    })
}

/// The times a set can be restored to with `backup restore --until`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestorableWindow {
    /// The set's binlog coordinates (`FILE:POS`), where a replay starts.
    pub from_position: String,
    /// The snapshot's time (the set's start), Unix seconds.
    pub from: Option<i64>,
    /// The archive's last event, Unix seconds: restorable up to here.
    pub until: Option<i64>,
    /// Why no point in time after the set can be reached, if none can
    /// (the archive lacks the set's binlog file, or a gap follows it).
    pub problem: Option<String>,
}

/// The set's restorable window given the binlog archive at `archive`.
fn restorable(m: &Manifest, created: Option<i64>, archive: &Path) -> Option<RestorableWindow> {
    if !archive.is_dir() {
        return None;
    }
    let file = m.snapshot.binlog_file.clone()?;
    let pos = m.snapshot.binlog_position?;
    let mut w = RestorableWindow {
        from_position: format!("{file}:{pos}"),
        from: created,
        until: None,
        problem: None,
    };
    let start = spyglass_binlog::replay::Point { file, pos };
    match spyglass_binlog::replay::check(archive, &start, &spyglass_binlog::replay::Stop::Latest) {
        Err(e) => w.problem = Some(e.to_string()),
        Ok(()) => {
            w.until = spyglass_binlog::index::Archive::open(archive)
                .ok()
                .and_then(|a| a.window().ok().flatten())
                .map(|(_, last)| i64::from(last));
        }
    }
    Some(w)
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => total += dir_size(&e.path()),
                Ok(_) => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                Err(_) => {}
            }
        }
    }
    total
}

use crate::set::writer_alive;

/// Describes one set directory.
pub fn inspect(path: &Path) -> SetInfo {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut info = SetInfo {
        created: names::parse_stamp(&name),
        name: name.clone(),
        path: path.to_owned(),
        status: Status::Complete,
        detail: None,
        writer_alive: None,
        bytes: dir_size(path),
        schemas: Vec::new(),
        label: None,
        verified: None,
        on_target: false,
        restorable: None,
    };
    if name.ends_with(crate::set::PARTIAL) {
        info.status = Status::Partial;
        info.writer_alive = Some(writer_alive(path));
        return info;
    }
    match Manifest::load(path) {
        Err(e) => {
            info.status = Status::Corrupt;
            info.detail = Some(match e {
                Error::BadSet { detail, .. } => detail,
                e => e.to_string(),
            });
        }
        Ok(m) => {
            info.schemas = m.schemas.clone();
            info.label = Some(m.label.clone());
            info.verified = crate::verify::last_record(path);
            if let Some(dest) = path.parent() {
                info.restorable = restorable(&m, info.created, &dest.join("binlog"));
            }
            if let Some(d) = size_problem(&m, |rel| {
                std::fs::metadata(path.join(rel)).ok().map(|md| md.len())
            }) {
                info.status = Status::Corrupt;
                info.detail = Some(d);
            }
        }
    }
    info
}

/// Every set in `dest`, oldest first. A directory counts as a set when its
/// name ends in `-YYYYMMDD-HHMMSS` (optionally `.partial`) or it holds a manifest.
pub fn list(dest: &Path) -> Result<Vec<SetInfo>, Error> {
    crate::destination::require_dir(dest)?;
    let rd = std::fs::read_dir(dest).map_err(Error::io("reading", dest))?;
    let mut sets: Vec<SetInfo> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .filter(|p| {
            // Set names are UTF-8 (this tool makes them); another name is
            // a set only when it holds a manifest.
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| names::parse_stamp(n).is_some())
                || p.join(MANIFEST).is_file()
        })
        .map(|p| inspect(&p))
        .collect();
    sets.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
    Ok(sets)
}
