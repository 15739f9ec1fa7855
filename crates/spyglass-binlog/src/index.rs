//! `<destination>/binlog/index.json`: the closed (compressed) files with
//! their sha256, first/last event time and position, and the gaps (ranges
//! the server purged before the archive had them).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::format;
use crate::Error;

/// Name of the index file in the archive directory.
pub const INDEX: &str = "index.json";

/// One closed, compressed binlog file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// The server's file name (`mysql-bin.000003`).
    pub file: String,
    /// The compressed copy in the archive directory (`mysql-bin.000003.gz`).
    pub archive: String,
    /// Uncompressed size = the end position of its last event.
    pub size: u64,
    /// sha256 of the compressed copy.
    pub sha256: String,
    /// sha256 of the uncompressed file (equal to the server's closed file).
    pub raw_sha256: String,
    /// Position of the first event after the magic (4), or where the archive started.
    pub first_pos: u64,
    /// Header time of the first event (seconds since the epoch, UTC).
    pub first_time: u32,
    /// Header time of the last event.
    pub last_time: u32,
    /// The file the server rotated to (None: the file ended without a rotate,
    /// e.g. a stop event, or a gap cut it short).
    pub next_file: Option<String>,
    /// False when a gap cut the file short (its tail is lost).
    pub complete: bool,
    /// Where the file's first compressed transaction is (MySQL's
    /// `binlog_transaction_compression=ON`), which replay cannot read:
    /// position and header time. Absent in indexes written before it was
    /// recorded (replay then finds out when it gets there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_compressed: Option<Compressed>,
}

/// A compressed transaction's place in a binlog file.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Compressed {
    /// Position of its `Transaction_payload` event.
    pub pos: u64,
    /// Header time of that event (seconds since the epoch, UTC).
    pub time: u32,
}

/// The first compressed transaction (`Transaction_payload` event) in a
/// binlog file's bytes at or after `from`.
pub fn first_compressed(bytes: &[u8], from: u64) -> Option<Compressed> {
    format::events(bytes)
        .find(|(at, h, _)| *at as u64 >= from && h.type_code == format::types::TRANSACTION_PAYLOAD)
        .map(|(at, h, _)| Compressed {
            pos: at as u64,
            time: h.timestamp,
        })
}

/// A range of the binary log the archive does not have.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Gap {
    /// Last file the archive has (or where it would have started).
    pub from_file: String,
    /// Position in it up to which the archive has events.
    pub from_pos: u64,
    /// Time of the last archived event before the gap (None: nothing archived).
    pub from_time: Option<u32>,
    /// First file the server still had.
    pub to_file: String,
    /// When the gap was found (RFC 3339, UTC).
    pub found: String,
}

/// The index file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Index {
    /// Format version (1).
    pub version: u32,
    /// Closed files, oldest first.
    pub files: Vec<FileEntry>,
    /// Gaps, oldest first.
    pub gaps: Vec<Gap>,
}

impl Index {
    /// Reads `dir/index.json` (an empty index when absent).
    pub fn load(dir: &Path) -> Result<Index, Error> {
        let p = dir.join(INDEX);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::Archive {
                dir: dir.to_path_buf(),
                detail: format!("{INDEX} is not valid: {e}"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index {
                version: 1,
                ..Index::default()
            }),
            Err(e) => Err(Error::io("reading", &p)(e)),
        }
    }

    /// Writes it atomically (temporary file, fsync, rename).
    pub fn save(&self, dir: &Path) -> Result<(), Error> {
        let p = dir.join(INDEX);
        let tmp = dir.join(format!("{INDEX}.tmp"));
        let body = serde_json::to_vec_pretty(self).map_err(|e| Error::Archive {
            dir: dir.to_path_buf(),
            detail: format!("cannot encode the index: {e}"),
        })?;
        let mut f = std::fs::File::create(&tmp).map_err(Error::io("writing", &tmp))?;
        f.write_all(&body)
            .and_then(|_| f.sync_all())
            .map_err(Error::io("writing", &tmp))?;
        std::fs::rename(&tmp, &p).map_err(Error::io("renaming", &tmp))?;
        sync_dir(dir);
        Ok(())
    }

    /// The entry of a closed file.
    pub fn entry(&self, file: &str) -> Option<&FileEntry> {
        self.files.iter().find(|e| e.file == file)
    }
}

pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The hex sha256 of bytes.
pub fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Removes the closed files older than `keep_from` (by sequence number) from
/// the archive and its index: what no kept backup set needs to reach any
/// point up to now. The open file and `keep_from` itself always stay.
/// Returns the files removed (or that would be, with `dry_run`).
pub fn remove_before(dir: &Path, keep_from: &str, dry_run: bool) -> Result<Vec<String>, Error> {
    let Some(limit) = sequence(keep_from) else {
        return Ok(Vec::new());
    };
    let mut idx = Index::load(dir)?;
    let (gone, kept): (Vec<FileEntry>, Vec<FileEntry>) = idx
        .files
        .drain(..)
        .partition(|e| sequence(&e.file).is_some_and(|n| n < limit));
    idx.files = kept;
    let names: Vec<String> = gone.iter().map(|e| e.file.clone()).collect();
    if dry_run || gone.is_empty() {
        return Ok(names);
    }
    idx.gaps
        .retain(|g| sequence(&g.to_file).is_some_and(|n| n > limit));
    idx.save(dir)?;
    for e in &gone {
        let p = dir.join(&e.archive);
        std::fs::remove_file(&p).map_err(Error::io("removing", &p))?;
    }
    Ok(names)
}

/// What the archive directory holds, for readers (replay, `backup list`).
#[derive(Debug, Clone)]
pub struct Archive {
    /// The directory.
    pub dir: PathBuf,
    /// Its index.
    pub index: Index,
    /// The open file (uncompressed, still being written), if any.
    pub active: Option<String>,
}

/// Whether a name looks like a server binlog file (`base.NNNNNN`).
pub fn is_binlog_name(name: &str) -> bool {
    name.rsplit_once('.').is_some_and(|(base, n)| {
        !base.is_empty() && n.len() >= 6 && n.bytes().all(|c| c.is_ascii_digit())
    })
}

/// The sequence number of a binlog file name.
pub fn sequence(name: &str) -> Option<u64> {
    name.rsplit_once('.').and_then(|(_, n)| n.parse().ok())
}

impl Archive {
    /// Opens an archive directory for reading.
    pub fn open(dir: &Path) -> Result<Archive, Error> {
        if !dir.is_dir() {
            return Err(Error::Archive {
                dir: dir.to_path_buf(),
                detail: "no such directory (run `spyglass-admin binlog archive` first)".into(),
            });
        }
        let index = Index::load(dir)?;
        let mut active: Vec<String> = std::fs::read_dir(dir)
            .map_err(Error::io("listing", dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_binlog_name(n) && index.entry(n).is_none())
            .collect();
        active.sort_by_key(|n| sequence(n));
        Ok(Archive {
            dir: dir.to_path_buf(),
            index,
            active: active.pop(),
        })
    }

    /// Every file the archive has, oldest first (closed ones, then the open one).
    pub fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = self.index.files.iter().map(|e| e.file.clone()).collect();
        if let Some(a) = &self.active {
            v.push(a.clone());
        }
        v
    }

    /// Checks one closed file's compressed copy against the sha256 in the
    /// index (the open file has no sum yet: nothing to check).
    pub fn verify(&self, file: &str) -> Result<(), Error> {
        let Some(e) = self.index.entry(file) else {
            return Ok(());
        };
        let p = self.dir.join(&e.archive);
        let mut f = std::fs::File::open(&p).map_err(Error::io("reading", &p))?;
        let mut h = Sha256::new();
        std::io::copy(&mut f, &mut h).map_err(Error::io("reading", &p))?;
        let sum: String = h.finalize().iter().map(|x| format!("{x:02x}")).collect();
        if sum != e.sha256 {
            return Err(Error::Archive {
                dir: self.dir.clone(),
                detail: format!(
                    "{} (archived {}): sha256 does not match the index; the file is damaged, so nothing was changed on the target",
                    e.archive, e.file
                ),
            });
        }
        Ok(())
    }

    /// The bytes of one archived file (decompressed, sha256 checked for closed files).
    pub fn read(&self, file: &str) -> Result<Vec<u8>, Error> {
        if let Some(e) = self.index.entry(file) {
            let p = self.dir.join(&e.archive);
            let gz = std::fs::read(&p).map_err(Error::io("reading", &p))?;
            if sha256_hex(&gz) != e.sha256 {
                return Err(Error::Archive {
                    dir: self.dir.clone(),
                    detail: format!(
                        "{}: sha256 does not match the index; the file is corrupt",
                        e.archive
                    ),
                });
            }
            let mut out = Vec::with_capacity(e.size as usize);
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut out)
                .map_err(Error::io("decompressing", &p))?;
            return Ok(out);
        }
        let p = self.dir.join(file);
        let b = std::fs::read(&p).map_err(Error::io("reading", &p))?;
        let n = format::complete_prefix(&b).ok_or_else(|| Error::Archive {
            dir: self.dir.clone(),
            detail: format!("{file} does not start with the binlog magic"),
        })?;
        let mut b = b;
        b.truncate(n);
        Ok(b)
    }

    /// Time of the first and last archived event (seconds, UTC).
    pub fn window(&self) -> Result<Option<(u32, u32)>, Error> {
        let first = self.index.files.first().map(|e| e.first_time);
        let mut last = self.index.files.last().map(|e| e.last_time);
        let mut first_active = None;
        if let Some(a) = &self.active {
            let b = self.read(a)?;
            for (_, h, _) in format::events(&b) {
                if h.type_code != format::types::FORMAT_DESCRIPTION || first_active.is_none() {
                    first_active.get_or_insert(h.timestamp);
                }
                last = Some(h.timestamp);
            }
        }
        Ok(match (first.or(first_active), last) {
            (Some(f), Some(l)) => Some((f, l)),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(file: &str, gz: &[u8]) -> FileEntry {
        FileEntry {
            file: file.into(),
            archive: format!("{file}.gz"),
            size: 4,
            sha256: sha256_hex(gz),
            raw_sha256: String::new(),
            first_pos: 4,
            first_time: 1,
            last_time: 2,
            next_file: None,
            complete: true,
            first_compressed: None,
        }
    }

    #[test]
    fn verify_names_the_damaged_file_and_passes_a_good_one() {
        let d = tempfile::tempdir().unwrap();
        let good = b"\x1f\x8b good bytes".to_vec();
        let bad = b"\x1f\x8b other bytes".to_vec();
        std::fs::write(d.path().join("lab-bin.000001.gz"), &good).unwrap();
        std::fs::write(d.path().join("lab-bin.000002.gz"), &bad).unwrap();
        Index {
            version: 1,
            files: vec![
                entry("lab-bin.000001", &good),
                entry("lab-bin.000002", &bad),
            ],
            gaps: Vec::new(),
        }
        .save(d.path())
        .unwrap();
        let a = Archive::open(d.path()).unwrap();
        a.verify("lab-bin.000001").unwrap();
        a.verify("lab-bin.000002").unwrap();
        // One byte flipped on disk after the index was written.
        let mut damaged = bad.clone();
        damaged[4] ^= 0x20;
        std::fs::write(d.path().join("lab-bin.000002.gz"), &damaged).unwrap();
        let e = a.verify("lab-bin.000002").unwrap_err().to_string();
        assert!(
            e.contains("lab-bin.000002.gz") && e.contains("sha256"),
            "{e}"
        );
        a.verify("lab-bin.000001").unwrap();
        // The open file (not in the index) has no sum to check.
        a.verify("lab-bin.000003").unwrap();
    }
}
