//! Quarantine runs: each `apply` moves what it removes under
//! `<quarantine>/<run>/files/<root>/<relative path>` and writes
//! `<run>/manifest.jsonl`: a header line, then one line per item written
//! *before* the item is moved (an `undone` line follows when the move was
//! rolled back, a `returned` line when apply put it back because a row named
//! it after the move), so a crash never leaves a moved file without a record.
//! [`restore`] puts a run back and marks it restored (the manifest stays as
//! the audit trail); [`purge`] deletes old runs, restored or not.

use std::fs;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use spyglass_db::mysql::Conn;

use crate::classify::Class;
use crate::{inventory, CleanupError};

/// The manifest's first line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    /// Format version (1).
    pub spyglass_admin_cleanup_run: u32,
    /// The run's name (its folder).
    pub run: String,
    /// RFC 3339, UTC.
    pub created: String,
    /// Seconds since the epoch.
    pub created_unix: u64,
}

/// A row saved before it was deleted, so restore can insert it again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SavedRow {
    /// `` `db`.`table` ``.
    pub table: String,
    /// (column, value as lowercase hex, or null).
    pub values: Vec<(String, Option<String>)>,
}

/// One manifest line per item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// Sequence number within the run.
    pub id: u64,
    /// Class (`untracked`, ...).
    pub class: Class,
    /// The original absolute path, when a file or folder moved.
    pub original: Option<PathBuf>,
    /// Where it is now, relative to the run directory.
    pub stored: Option<PathBuf>,
    /// Bytes.
    pub size: u64,
    /// Modification time (seconds since the epoch) when scanned.
    pub mtime_unix: Option<u64>,
    /// Why it was removed.
    pub reason: String,
    /// The row deleted with it, if any.
    pub row: Option<SavedRow>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Undone {
    undone: u64,
}

/// A manifest line: apply put item `returned` back before the run ended,
/// because a row named it after it was moved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Returned {
    /// The entry's id.
    pub returned: u64,
    /// Why.
    pub reason: String,
    /// How long the item was away from its path, milliseconds.
    pub absent_ms: f64,
}

/// A manifest line: restore put entry `restored_entry` back.
#[derive(Debug, Serialize, Deserialize)]
struct RestoredEntry {
    restored_entry: u64,
}

/// A manifest line: every entry of the run was restored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RestoredMark {
    /// RFC 3339, UTC.
    restored: String,
}

/// An open run being written.
#[derive(Debug)]
pub struct Run {
    /// The run directory.
    pub dir: PathBuf,
    file: fs::File,
    next: u64,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Run {
    /// Creates `<quarantine>/<UTC timestamp>` and its manifest.
    pub fn create(quarantine: &Path, now: SystemTime) -> Result<Run, CleanupError> {
        fs::create_dir_all(quarantine).map_err(CleanupError::io(
            "cannot create quarantine directory",
            quarantine,
        ))?;
        let stamp = humantime::format_rfc3339_seconds(now).to_string();
        let base: String = stamp.chars().filter(|c| *c != '-' && *c != ':').collect();
        let mut name = base.clone();
        let mut n = 1;
        let dir = loop {
            let d = quarantine.join(&name);
            match fs::create_dir(&d) {
                Ok(()) => break d,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    n += 1;
                    name = format!("{base}-{n}");
                }
                Err(e) => {
                    return Err(CleanupError::Io {
                        what: "cannot create quarantine run",
                        path: d,
                        source: e,
                    })
                }
            }
        };
        let mpath = dir.join("manifest.jsonl");
        let mut file = fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&mpath)
            .map_err(CleanupError::io("cannot create manifest", &mpath))?;
        let h = Header {
            spyglass_admin_cleanup_run: 1,
            run: name,
            created: stamp,
            created_unix: unix(now),
        };
        write_line(&mut file, &h, &mpath)?;
        Ok(Run { dir, file, next: 1 })
    }

    /// Records an item before it is acted on; returns its id.
    pub fn record(&mut self, mut e: Entry) -> Result<u64, CleanupError> {
        e.id = self.next;
        self.next += 1;
        let p = self.dir.join("manifest.jsonl");
        write_line(&mut self.file, &e, &p)?;
        Ok(e.id)
    }

    /// Records that item `id` was rolled back.
    pub fn undo(&mut self, id: u64) -> Result<(), CleanupError> {
        let p = self.dir.join("manifest.jsonl");
        write_line(&mut self.file, &Undone { undone: id }, &p)
    }

    /// Records that item `id` was put back (a row named it after its move).
    pub fn returned(
        &mut self,
        id: u64,
        reason: &str,
        absent: Duration,
    ) -> Result<(), CleanupError> {
        let p = self.dir.join("manifest.jsonl");
        let r = Returned {
            returned: id,
            reason: reason.to_owned(),
            absent_ms: absent.as_secs_f64() * 1000.0,
        };
        write_line(&mut self.file, &r, &p)
    }

    /// Flushes the manifest to disk.
    pub fn finish(self) -> Result<PathBuf, CleanupError> {
        let p = self.dir.join("manifest.jsonl");
        self.file
            .sync_all()
            .map_err(CleanupError::io("cannot sync manifest", &p))?;
        Ok(self.dir)
    }
}

fn write_line<T: Serialize>(f: &mut fs::File, v: &T, path: &Path) -> Result<(), CleanupError> {
    let mut line = serde_json::to_string(v).map_err(|e| CleanupError::Run {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    line.push('\n');
    f.write_all(line.as_bytes())
        .map_err(CleanupError::io("cannot write manifest", path))
}

/// Hex of saved row values.
pub fn save_row(table: &str, row: Vec<(String, Option<Vec<u8>>)>) -> SavedRow {
    SavedRow {
        table: table.to_owned(),
        values: row
            .into_iter()
            .map(|(c, v)| (c, v.map(|b| crate::paths::hex(&b))))
            .collect(),
    }
}

fn unhex_any(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// A run read back.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// Its directory.
    pub dir: PathBuf,
    /// Its header.
    pub header: Header,
    /// Items not rolled back, returned or restored: what is in the quarantine.
    pub entries: Vec<Entry>,
    /// Items apply put back before the run ended, with their entries.
    pub returned: Vec<(Entry, Returned)>,
    /// Items restore put back.
    pub restored_entries: Vec<Entry>,
    /// When the whole run was restored (RFC 3339), if it was.
    pub restored: Option<String>,
}

impl RunInfo {
    /// Bytes of the items.
    pub fn bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

/// Reads a run's manifest.
pub fn read_run(dir: &Path) -> Result<RunInfo, CleanupError> {
    let mpath = dir.join("manifest.jsonl");
    let f = fs::File::open(&mpath).map_err(|e| CleanupError::Run {
        path: dir.to_owned(),
        detail: format!("no readable manifest.jsonl ({e})"),
    })?;
    let bad = |d: String| CleanupError::Run {
        path: dir.to_owned(),
        detail: d,
    };
    let mut lines = std::io::BufReader::new(f).lines();
    let first = lines
        .next()
        .ok_or_else(|| bad("empty manifest".into()))?
        .map_err(|e| bad(e.to_string()))?;
    let header: Header =
        serde_json::from_str(&first).map_err(|e| bad(format!("bad header: {e}")))?;
    let mut entries: Vec<Entry> = Vec::new();
    let mut returned = Vec::new();
    let mut restored_entries = Vec::new();
    let mut restored = None;
    let take = |entries: &mut Vec<Entry>, id: u64| -> Option<Entry> {
        let i = entries.iter().position(|e| e.id == id)?;
        Some(entries.remove(i))
    };
    for (n, line) in lines.enumerate() {
        let line = line.map_err(|e| bad(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        if let Ok(u) = serde_json::from_str::<Undone>(&line) {
            take(&mut entries, u.undone);
            continue;
        }
        if let Ok(r) = serde_json::from_str::<Returned>(&line) {
            if let Some(e) = take(&mut entries, r.returned) {
                returned.push((e, r));
            }
            continue;
        }
        if let Ok(r) = serde_json::from_str::<RestoredEntry>(&line) {
            if let Some(e) = take(&mut entries, r.restored_entry) {
                restored_entries.push(e);
            }
            continue;
        }
        if let Ok(r) = serde_json::from_str::<RestoredMark>(&line) {
            restored = Some(r.restored);
            continue;
        }
        let e: Entry =
            serde_json::from_str(&line).map_err(|e| bad(format!("line {}: {e}", n + 2)))?;
        entries.push(e);
    }
    Ok(RunInfo {
        dir: dir.to_owned(),
        header,
        entries,
        returned,
        restored_entries,
        restored,
    })
}

/// Every run under `quarantine`, oldest first (folders without a manifest are skipped).
pub fn runs(quarantine: &Path) -> Result<Vec<RunInfo>, CleanupError> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(quarantine) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(CleanupError::Io {
                what: "cannot read quarantine directory",
                path: quarantine.to_owned(),
                source: e,
            })
        }
    };
    for e in rd.flatten() {
        if e.path().join("manifest.jsonl").is_file() {
            out.push(read_run(&e.path())?);
        }
    }
    out.sort_by(|a, b| {
        (a.header.created_unix, &a.header.run).cmp(&(b.header.created_unix, &b.header.run))
    });
    Ok(out)
}

/// What restore did with one entry.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    /// The entry's id.
    pub id: u64,
    /// Class.
    pub class: Class,
    /// Where it went back to (or the row's table).
    pub target: String,
    /// `restored`, or why not.
    pub outcome: String,
}

/// Puts every item of a run back: files and folders to their original paths
/// (never over something that exists there now), deleted rows inserted again.
/// Each item put back gets a `restored_entry` line (a second restore only
/// tries the rest); when everything is back the run is marked restored and its
/// emptied `files` folder removed, while the manifest stays, as the audit
/// trail, until [`purge`]. A run already restored is an error.
pub fn restore(dir: &Path, conn: Option<&mut Conn>) -> Result<Vec<Restored>, CleanupError> {
    restore_entries(dir, None, conn)
}

/// [`restore`] for some entries of a run (`only`: their ids; `None`: all),
/// each exactly as restore puts it back; the run is marked restored when
/// nothing is left in it.
pub fn restore_entries(
    dir: &Path,
    only: Option<&[u64]>,
    mut conn: Option<&mut Conn>,
) -> Result<Vec<Restored>, CleanupError> {
    let run = read_run(dir)?;
    if let Some(when) = &run.restored {
        return Err(CleanupError::Run {
            path: dir.to_owned(),
            detail: format!("was restored already ({when}); nothing is left in it"),
        });
    }
    let mpath = dir.join("manifest.jsonl");
    let mut manifest = fs::OpenOptions::new()
        .append(true)
        .open(&mpath)
        .map_err(CleanupError::io("cannot open manifest", &mpath))?;
    let mut out = Vec::new();
    // Rows first (a row must exist before... nothing references it, order is free),
    // then files, newest item first.
    let picked = |e: &Entry| only.is_none_or(|ids| ids.contains(&e.id));
    let mut all_ok = run.entries.iter().all(picked);
    for e in run.entries.iter().rev().filter(|e| picked(e)) {
        let mut outcome = "restored".to_owned();
        let mut target = String::new();
        if let Some(row) = &e.row {
            target = row.table.clone();
            match conn.as_deref_mut() {
                None => outcome = "row not restored: no database connection".into(),
                Some(c) => {
                    let values: Vec<(String, Option<Vec<u8>>)> = row
                        .values
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_deref().and_then(unhex_any)))
                        .collect();
                    if let Err(err) = inventory::insert_row(c, &row.table, &values) {
                        outcome = format!("row not restored: {}", chain(&err));
                    }
                }
            }
        }
        if let (Some(orig), Some(stored)) = (&e.original, &e.stored) {
            target = orig.display().to_string();
            let from = dir.join(stored);
            if std::fs::symlink_metadata(orig).is_ok() {
                outcome = "not restored: something exists at the original path".into();
            } else if std::fs::symlink_metadata(&from).is_err() {
                outcome = "not restored: missing from the quarantine".into();
            } else {
                if let Some(parent) = orig.parent() {
                    fs::create_dir_all(parent)
                        .map_err(CleanupError::io("cannot create directory", parent))?;
                }
                fs::rename(&from, orig).map_err(CleanupError::io("cannot move back", &from))?;
            }
        }
        if outcome == "restored" {
            write_line(
                &mut manifest,
                &RestoredEntry {
                    restored_entry: e.id,
                },
                &mpath,
            )?;
        } else {
            all_ok = false;
        }
        out.push(Restored {
            id: e.id,
            class: e.class,
            target,
            outcome,
        });
    }
    if all_ok {
        let mark = RestoredMark {
            restored: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        };
        write_line(&mut manifest, &mark, &mpath)?;
        manifest
            .sync_all()
            .map_err(CleanupError::io("cannot sync manifest", &mpath))?;
        remove_empty_dirs(&dir.join("files"));
    }
    Ok(out)
}

/// Removes `dir` and the folders under it that are empty (bottom up); leaves
/// anything holding a file.
fn remove_empty_dirs(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_empty_dirs(&e.path());
        }
    }
    let _ = fs::remove_dir(dir);
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// Deletes runs created more than `older_than` before `now`; returns them.
pub fn purge(
    quarantine: &Path,
    older_than: Duration,
    now: SystemTime,
) -> Result<Vec<RunInfo>, CleanupError> {
    let cutoff = unix(now).saturating_sub(older_than.as_secs());
    let mut gone = Vec::new();
    for r in runs(quarantine)? {
        if r.header.created_unix <= cutoff {
            fs::remove_dir_all(&r.dir)
                .map_err(CleanupError::io("cannot remove quarantine run", &r.dir))?;
            gone.push(r);
        }
    }
    Ok(gone)
}

/// Runs to purge, without deleting.
pub fn purgeable(
    quarantine: &Path,
    older_than: Duration,
    now: SystemTime,
) -> Result<Vec<RunInfo>, CleanupError> {
    let cutoff = unix(now).saturating_sub(older_than.as_secs());
    Ok(runs(quarantine)?
        .into_iter()
        .filter(|r| r.header.created_unix <= cutoff)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trip_undo_restore_and_purge() {
        let t = tempfile::tempdir().unwrap();
        let q = t.path().join("q");
        let data = t.path().join("data");
        fs::create_dir_all(data.join("a")).unwrap();
        fs::write(data.join("a/f.nwb"), b"bytes").unwrap();
        let now = SystemTime::now();
        let mut run = Run::create(&q, now).unwrap();
        let stored = PathBuf::from("files/store-analysis/a/f.nwb");
        let id = run
            .record(Entry {
                id: 0,
                class: Class::Untracked,
                original: Some(data.join("a/f.nwb")),
                stored: Some(stored.clone()),
                size: 5,
                mtime_unix: Some(1),
                reason: "r".into(),
                row: None,
            })
            .unwrap();
        fs::create_dir_all(run.dir.join("files/store-analysis/a")).unwrap();
        fs::rename(data.join("a/f.nwb"), run.dir.join(&stored)).unwrap();
        let id2 = run
            .record(Entry {
                id: 0,
                class: Class::Empty,
                original: None,
                stored: None,
                size: 0,
                mtime_unix: None,
                reason: "x".into(),
                row: None,
            })
            .unwrap();
        run.undo(id2).unwrap();
        let id3 = run
            .record(Entry {
                id: 0,
                class: Class::Untracked,
                original: Some(data.join("a/g.nwb")),
                stored: Some(PathBuf::from("files/store-analysis/a/g.nwb")),
                size: 1,
                mtime_unix: Some(1),
                reason: "r".into(),
                row: None,
            })
            .unwrap();
        run.returned(id3, "a row names it now", Duration::from_millis(3))
            .unwrap();
        let dir = run.finish().unwrap();
        let info = read_run(&dir).unwrap();
        assert_eq!(info.entries.len(), 1);
        assert_eq!(info.entries[0].id, id);
        assert_eq!(
            info.returned.len(),
            1,
            "a returned item is not in the quarantine"
        );
        assert_eq!(info.returned[0].0.id, id3);
        assert_eq!(info.returned[0].1.reason, "a row names it now");
        assert!((info.returned[0].1.absent_ms - 3.0).abs() < 1e-9);
        assert_eq!(runs(&q).unwrap().len(), 1);
        assert!(purgeable(&q, Duration::from_secs(3600), now)
            .unwrap()
            .is_empty());
        let r = restore(&dir, None).unwrap();
        assert_eq!(r[0].outcome, "restored");
        assert_eq!(fs::read(data.join("a/f.nwb")).unwrap(), b"bytes");
        let info = read_run(&dir).unwrap();
        assert!(info.restored.is_some(), "marked restored");
        assert!(info.entries.is_empty());
        assert_eq!(info.restored_entries.len(), 1);
        assert!(!dir.join("files").exists(), "emptied files folder removed");
        assert!(
            restore(&dir, None).is_err(),
            "a restored run is not restored twice"
        );
        assert_eq!(runs(&q).unwrap().len(), 1, "kept until purge");
        fs::remove_dir_all(&dir).unwrap();
        let run = Run::create(&q, now - Duration::from_secs(40 * 86400)).unwrap();
        run.finish().unwrap();
        assert_eq!(
            purge(&q, Duration::from_secs(30 * 86400), now)
                .unwrap()
                .len(),
            1
        );
        assert!(runs(&q).unwrap().is_empty());
        assert_eq!(unhex_any("00ff10"), Some(vec![0, 255, 16]));
    }
}
