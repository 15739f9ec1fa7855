//! The disk side: a parallel, metadata-only walk.
//!
//! Listing uses ripgrep's parallel walker (`ignore`, every filter off) and the
//! file type the directory entry already carries, so tracked files cost no
//! `stat`; only candidates are `lstat`ed afterwards ([`stat`]). Contents are
//! never read. Symlinks are never followed: a link whose target lies outside
//! the store is reported, one inside is left alone.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use ignore::{WalkBuilder, WalkState};

use crate::inventory::fingerprint;
use crate::CleanupError;

/// One regular file a walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileEntry {
    /// [`fingerprint`] of its relative path.
    pub fp: u64,
    /// Where its path is in [`FileRun::arena`].
    pub start: usize,
    /// Length of its path.
    pub len: u32,
}

/// The files one walker thread found: their relative paths back to back
/// (one allocation per thread, not one per file) and an entry per file,
/// sorted by fingerprint so a whole run is matched against the tracked
/// paths in one linear merge.
#[derive(Debug, Default)]
pub struct FileRun {
    /// Relative, `/`-separated paths back to back.
    pub arena: Vec<u8>,
    /// The files, sorted by [`FileEntry::fp`].
    pub entries: Vec<FileEntry>,
}

impl FileRun {
    /// The relative path of `e`.
    pub fn path(&self, e: &FileEntry) -> &[u8] {
        &self.arena[e.start..e.start + e.len as usize]
    }
}

/// What a walk of one store found.
#[derive(Debug, Default)]
pub struct Listing {
    /// The root as walked (symlinks in it resolved).
    pub root: PathBuf,
    /// Regular files, one run per walker thread.
    pub runs: Vec<FileRun>,
    /// Symlinks, relative to the root, and whether they point outside it.
    pub symlinks: Vec<(Box<[u8]>, bool)>,
    /// Entries that could not be read (path: error).
    pub errors: Vec<String>,
}

impl Listing {
    /// Number of regular files.
    pub fn file_count(&self) -> usize {
        self.runs.iter().map(|r| r.entries.len()).sum()
    }

    /// Every regular file's relative path, in no particular order.
    pub fn files(&self) -> impl Iterator<Item = &[u8]> {
        self.runs
            .iter()
            .flat_map(|r| r.entries.iter().map(move |e| r.path(e)))
    }
}

/// Lists `root` in parallel. Folders in `skip` (e.g. another store nested
/// inside, or the quarantine) are not entered.
pub fn list(root: &Path, skip: &[PathBuf], threads: usize) -> Result<Listing, CleanupError> {
    let root =
        std::fs::canonicalize(root).map_err(CleanupError::io("cannot open directory", root))?;
    let skip: Vec<PathBuf> = skip
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .filter(|p| p != &root)
        .collect();
    let prefix = root.as_os_str().len() + 1;
    let files = Mutex::new(Vec::new());
    let links = Mutex::new(Vec::new());
    let errors = Mutex::new(Vec::new());
    let mut builder = WalkBuilder::new(&root);
    builder
        .standard_filters(false)
        .hidden(false)
        .parents(false)
        .ignore(false)
        .git_ignore(false)
        .git_global(false)
        .git_exclude(false)
        .follow_links(false)
        .threads(threads.max(1));
    if !skip.is_empty() {
        // Only folders can be skipped; files pass without a comparison, and
        // paths compare as bytes (the walker builds them by joining, so they
        // are already in the canonical form of `root`).
        let skip: Vec<Vec<u8>> = skip
            .iter()
            .map(|p| p.as_os_str().as_bytes().to_vec())
            .collect();
        builder.filter_entry(move |e| {
            !(e.file_type().is_some_and(|t| t.is_dir())
                && skip
                    .iter()
                    .any(|s| s.as_slice() == e.path().as_os_str().as_bytes()))
        });
    }
    builder.build_parallel().run(|| {
        let mut mine = FileRun::default();
        let mut my_links = Vec::new();
        let files = &files;
        let links = &links;
        let errors = &errors;
        let root = &root;
        Box::new(FlushOnDrop {
            f: Box::new(
                move |entry: Option<Result<ignore::DirEntry, ignore::Error>>| {
                    match entry {
                        None => {
                            let mut run = std::mem::take(&mut mine);
                            run.entries.sort_unstable_by_key(|e| e.fp);
                            if let Ok(mut f) = files.lock() {
                                f.push(run);
                            }
                            if let Ok(mut l) = links.lock() {
                                l.append(&mut my_links);
                            }
                        }
                        Some(Ok(e)) => {
                            let Some(ft) = e.file_type() else {
                                return WalkState::Continue;
                            };
                            let p = e.path().as_os_str().as_bytes();
                            if p.len() <= prefix {
                                return WalkState::Continue;
                            }
                            if ft.is_file() {
                                let rel = &p[prefix..];
                                mine.entries.push(FileEntry {
                                    fp: fingerprint(rel),
                                    start: mine.arena.len(),
                                    len: rel.len() as u32,
                                });
                                mine.arena.extend_from_slice(rel);
                            } else if ft.is_symlink() {
                                let outside = points_outside(e.path(), root);
                                my_links.push((p[prefix..].into(), outside));
                            }
                        }
                        Some(Err(err)) => {
                            if let Ok(mut v) = errors.lock() {
                                v.push(err.to_string());
                            }
                        }
                    }
                    WalkState::Continue
                },
            ),
        })
        .into_visitor()
    });
    let mut out = Listing {
        root,
        ..Listing::default()
    };
    out.runs = files.into_inner().unwrap_or_default();
    out.runs.retain(|r| !r.entries.is_empty());
    out.symlinks = links.into_inner().unwrap_or_default();
    out.errors = errors.into_inner().unwrap_or_default();
    Ok(out)
}

/// Calls `f(None)` when the walker drops a thread's visitor, so each thread
/// hands over its batch once instead of locking per file.
struct FlushOnDrop<'a> {
    #[allow(clippy::type_complexity)]
    f: Box<dyn FnMut(Option<Result<ignore::DirEntry, ignore::Error>>) -> WalkState + Send + 'a>,
}

impl<'a> FlushOnDrop<'a> {
    fn into_visitor(
        self,
    ) -> Box<dyn FnMut(Result<ignore::DirEntry, ignore::Error>) -> WalkState + Send + 'a> {
        let mut me = self;
        let f: Box<dyn FnMut(Result<ignore::DirEntry, ignore::Error>) -> WalkState + Send + 'a> =
            Box::new(move |r| (me.f)(Some(r)));
        f
    }
}

impl Drop for FlushOnDrop<'_> {
    fn drop(&mut self) {
        (self.f)(None);
    }
}

/// Whether the symlink at `link` resolves outside `root` (a dangling link
/// is judged by its target as written).
pub fn points_outside(link: &Path, root: &Path) -> bool {
    match std::fs::canonicalize(link) {
        Ok(t) => !t.starts_with(root),
        Err(_) => match std::fs::read_link(link) {
            Ok(t) => {
                let abs = if t.is_absolute() {
                    t
                } else {
                    link.parent().unwrap_or(root).join(t)
                };
                !lexical(&abs).starts_with(root)
            }
            Err(_) => true,
        },
    }
}

fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Size and mtime from `lstat` (never follows a link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Bytes.
    pub size: u64,
    /// Modification time.
    pub mtime: SystemTime,
    /// A directory.
    pub is_dir: bool,
    /// A regular file.
    pub is_file: bool,
}

/// `lstat` of one path; `None` when it is gone.
pub fn stat(path: &Path) -> Result<Option<Meta>, CleanupError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(Meta {
            size: m.len(),
            mtime: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            is_dir: m.is_dir(),
            is_file: m.is_file(),
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CleanupError::Io {
            what: "cannot stat",
            path: path.to_owned(),
            source: e,
        }),
    }
}

/// Total bytes and newest mtime of a folder's tree, without following links.
/// A folder is as young as its newest file; folders' own mtimes count only
/// when there is no file at all (creating the folder's files touches them,
/// and the fixture, like real data, may have old files in a newer folder).
pub fn tree_meta(dir: &Path) -> Result<(u64, SystemTime), CleanupError> {
    let top = std::fs::symlink_metadata(dir).map_err(CleanupError::io("cannot stat", dir))?;
    let own = top.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    if !top.is_dir() {
        return Ok((top.len(), own));
    }
    let mut bytes = 0;
    let mut newest: Option<SystemTime> = None;
    let mut newest_dir = own;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(CleanupError::io("cannot read directory", &d))?;
        for e in rd {
            let e = e.map_err(CleanupError::io("cannot read directory", &d))?;
            let m = std::fs::symlink_metadata(e.path())
                .map_err(CleanupError::io("cannot stat", e.path()))?;
            let t = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if m.is_dir() {
                newest_dir = newest_dir.max(t);
                stack.push(e.path());
            } else {
                bytes += m.len();
                newest = Some(newest.map_or(t, |n| n.max(t)));
            }
        }
    }
    Ok((bytes, newest.unwrap_or(newest_dir)))
}

/// Top-level entries of a directory: (name, is a directory), sorted.
pub fn top_entries(dir: &Path) -> Result<Vec<(String, bool)>, CleanupError> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(CleanupError::Io {
                what: "cannot read directory",
                path: dir.to_owned(),
                source: e,
            })
        }
    };
    for e in rd {
        let e = e.map_err(CleanupError::io("cannot read directory", dir))?;
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        out.push((e.file_name().to_string_lossy().into_owned(), is_dir));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_files_reports_escaping_links_and_skips() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("store");
        let out = t.path().join("outside");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(root.join("nested_store")).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(root.join("a/b/f.nwb"), b"x").unwrap();
        std::fs::write(root.join("top"), b"").unwrap();
        std::fs::write(root.join("nested_store/n"), b"").unwrap();
        std::fs::write(out.join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(out.join("secret"), root.join("a/esc")).unwrap();
        std::os::unix::fs::symlink(&out, root.join("dirlink")).unwrap();
        std::os::unix::fs::symlink("b/f.nwb", root.join("a/inside")).unwrap();
        let l = list(&root, &[root.join("nested_store")], 2).unwrap();
        let mut files: Vec<String> = l
            .files()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        assert_eq!(l.file_count(), 2);
        for run in &l.runs {
            assert!(run.entries.windows(2).all(|w| w[0].fp <= w[1].fp));
            assert!(run.entries.iter().all(|e| e.fp == fingerprint(run.path(e))));
        }
        files.sort();
        assert_eq!(files, ["a/b/f.nwb", "top"]);
        let mut links: Vec<(String, bool)> = l
            .symlinks
            .iter()
            .map(|(p, o)| (String::from_utf8_lossy(p).into_owned(), *o))
            .collect();
        links.sort();
        assert_eq!(
            links,
            [
                ("a/esc".into(), true),
                ("a/inside".into(), false),
                ("dirlink".into(), true)
            ]
        );
        let (bytes, _) = tree_meta(&root.join("a")).unwrap();
        assert_eq!(
            bytes,
            1 + std::fs::symlink_metadata(root.join("a/esc")).unwrap().len()
                + std::fs::symlink_metadata(root.join("a/inside"))
                    .unwrap()
                    .len()
        );
    }
}
