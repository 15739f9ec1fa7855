//! A backup set on disk: its layout, how one is opened, walked, written and
//! committed. Both dump engines write a set through this module, and pack,
//! verify, list and ship read one through it.
//!
//! A set is written as `<name>.partial/` (holding [`WRITER_PID`] while its
//! writer runs), then [`finalize`]d: manifest and [`RESTORE_TXT`] written and
//! synced, the directory synced, renamed to `<name>`, the parent synced.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::compress::Compression;
use crate::manifest::{FileRecord, Manifest, ServerRecord, Snapshot, TableRecord};
use crate::Error;

/// The manifest's file name inside a set.
pub const MANIFEST: &str = "manifest.json";
/// How to restore with the stock client; written beside the manifest.
pub const RESTORE_TXT: &str = "RESTORE.txt";
/// The last `backup verify` result (see [`crate::verify::VerifyRecord`]),
/// rewritten by every verify, so it is not in the manifest.
pub const VERIFY_RECORD: &str = "verify.json";
/// [`VERIFY_RECORD`]'s name while it is written (renamed over it when complete).
pub const VERIFY_RECORD_TMP: &str = "verify.json.tmp";
/// The files of a set directory that the manifest does not list, by design:
/// the manifest itself, [`RESTORE_TXT`] and [`VERIFY_RECORD`] (plus its
/// temporary name while it is written). Anything else not in the manifest is
/// reported by verify.
pub const OUTSIDE_MANIFEST: &[&str] = &[MANIFEST, RESTORE_TXT, VERIFY_RECORD, VERIFY_RECORD_TMP];
/// The suffix of a set (or packed tar) while it is written.
pub const PARTIAL: &str = ".partial";
/// The extension a partial set's directory has ([`PARTIAL`] without the dot).
const PARTIAL_EXT: &str = "partial";
/// In a partial set: the pid of the process writing it.
pub const WRITER_PID: &str = "writer.pid";
/// The subdirectories of a set, in restore order.
pub const SUBDIRS: [&str; 3] = ["1-schema", "2-data", "3-post"];

/// Opens a complete set: not `.partial`, a directory, its manifest readable.
pub fn open(set: &Path) -> Result<Manifest, Error> {
    if set.extension().is_some_and(|e| e == PARTIAL_EXT) {
        return Err(Error::BadSet {
            set: set.to_owned(),
            detail: "this set is partial (its backup did not finish); it cannot be restored".into(),
        });
    }
    if !set.is_dir() {
        return Err(Error::BadSet {
            set: set.to_owned(),
            detail: "not a directory".into(),
        });
    }
    Manifest::load(set)
}

/// Every file of a set, relative to it, in pack order: manifest, RESTORE.txt,
/// the manifest's files, then anything else the set holds (sorted).
pub fn files(set: &Path, manifest: &Manifest) -> Result<Vec<String>, Error> {
    let mut files = vec![MANIFEST.to_owned()];
    if set.join(RESTORE_TXT).is_file() {
        files.push(RESTORE_TXT.into());
    }
    files.extend(manifest.files.iter().map(|f| f.path.clone()));
    let mut rest = Vec::new();
    walk(set, set, &mut rest)?;
    rest.sort();
    for r in rest {
        // The verify record describes this copy, not the one it is packed or shipped to.
        if !files.contains(&r) && ![VERIFY_RECORD, VERIFY_RECORD_TMP].contains(&r.as_str()) {
            files.push(r);
        }
    }
    Ok(files)
}

/// Appends every file under `dir` to `out`, relative to `root`.
pub(crate) fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), Error> {
    for e in std::fs::read_dir(dir).map_err(Error::io("reading", dir))? {
        let e = e.map_err(Error::io("reading", dir))?;
        let p = e.path();
        if e.file_type().map_err(Error::io("reading", &p))?.is_dir() {
            walk(root, &p, out)?;
        } else if let Ok(rel) = p.strip_prefix(root) {
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

/// Creates `<dest>/<name>.partial/` with its subdirectories (mode 0700) and
/// [`WRITER_PID`]; returns its path.
pub(crate) fn create_partial(dest: &Path, name: &str) -> Result<PathBuf, Error> {
    let partial = dest.join(format!("{name}{PARTIAL}"));
    std::fs::create_dir_all(dest).map_err(Error::io("creating", dest))?;
    create_private_dir(&partial)?;
    for sub in SUBDIRS {
        create_private_dir(&partial.join(sub))?;
    }
    // Who is writing, for `backup list` and prune (a dead writer's leftover is partial).
    std::fs::write(
        partial.join(WRITER_PID),
        format!("{}\n", std::process::id()),
    )
    .map_err(Error::io("writing", partial.join(WRITER_PID)))?;
    Ok(partial)
}

/// Whether the process named in a partial set's [`WRITER_PID`] is alive.
pub fn writer_alive(set: &Path) -> bool {
    std::fs::read_to_string(set.join(WRITER_PID))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .is_some_and(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit(')')
                        .next()
                        .and_then(|r| r.split_whitespace().next())
                        .map(|st| st != "Z")
                })
                .unwrap_or(false)
        })
}

pub(crate) fn create_private_dir(p: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(p)
        .map_err(Error::io("creating", p))
}

/// What every manifest of one dump records, whichever engine wrote the files.
pub(crate) struct Header {
    pub label: String,
    pub server: ServerRecord,
    /// Unix seconds.
    pub started: i64,
    pub compression: Compression,
    pub sql_mode: Option<String>,
    pub schemas: Vec<String>,
}

/// What the engine wrote.
pub(crate) struct Written {
    pub engine: &'static str,
    pub encoding: &'static str,
    pub snapshot: Snapshot,
    pub max_statement_bytes: u64,
    pub tables: Vec<TableRecord>,
    pub files: Vec<FileRecord>,
    pub notes: Vec<String>,
}

/// The one place a manifest is built; `finished` is now.
pub(crate) fn manifest(head: Header, written: Written) -> Manifest {
    Manifest {
        format: crate::manifest::FORMAT,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        engine: written.engine.into(),
        label: head.label,
        server: head.server,
        snapshot: written.snapshot,
        started: crate::names::rfc3339(head.started),
        finished: crate::names::rfc3339(crate::names::now_unix()),
        compression: head.compression,
        encoding: written.encoding.into(),
        max_statement_bytes: written.max_statement_bytes,
        sql_mode: head.sql_mode,
        schemas: head.schemas,
        tables: written.tables,
        files: written.files,
        notes: written.notes,
    }
}

/// Writes the manifest and `restore_txt` (as [`RESTORE_TXT`]), syncs, and
/// renames the set into place.
pub(crate) fn finalize(
    partial: &Path,
    final_path: &Path,
    manifest: &Manifest,
    restore_txt: &str,
) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(manifest)
        .map_err(|e| Error::Invalid(format!("serializing the manifest: {e}")))?;
    write_synced(&partial.join(MANIFEST), text.as_bytes())?;
    write_synced(&partial.join(RESTORE_TXT), restore_txt.as_bytes())?;
    let _ = std::fs::remove_file(partial.join(WRITER_PID));
    sync_dir(partial)?;
    std::fs::rename(partial, final_path).map_err(Error::io("renaming into place", final_path))?;
    if let Some(parent) = final_path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(Error::io("creating", path))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(Error::io("writing", path))
}

/// Syncs a directory, so the names in it (a rename, a new file) are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("syncing", dir))
}
