//! The disk side: a parallel, metadata-only walk.
//!
//! Listing ([`list`]) reads folders in parallel with `getdents64` and takes
//! the file type the directory entry already carries, so tracked files cost
//! no `stat`; only candidates are `lstat`ed afterwards ([`stat`]). Contents
//! are never read. Symlinks are never followed: a link whose target lies
//! outside the store is reported, one inside is left alone.

use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::SystemTime;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, ResolveFlags};

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
///
/// `threads` workers share a queue of folders. Each reads its folder with
/// `getdents64` into a buffer of its own (rustix's `RawDir`: no allocation
/// per entry) and takes the file type the entry carries; only an entry of
/// unknown type (some file systems leave it out) costs an `lstat`. Folders
/// are opened relative to the root without following symlinks
/// ([`open_beneath`]), so a symlink is never entered. Per file this is one `getdents64` slot and one append to the
/// worker's path arena: on a million files it takes about two thirds of the
/// processor time of the general-purpose walker used before (`ignore`),
/// whose per-entry path and entry allocations dominated the scan.
pub fn list(root: &Path, skip: &[PathBuf], threads: usize) -> Result<Listing, CleanupError> {
    let root =
        std::fs::canonicalize(root).map_err(CleanupError::io("cannot open directory", root))?;
    let root_fd = rustix::fs::open(
        &root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| CleanupError::io("cannot open directory", &root)(e.into()))?;
    let root_bytes = root.as_os_str().as_bytes();
    // Folders not to enter, as paths relative to the root.
    let skip: Vec<Vec<u8>> = skip
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .filter_map(|p| {
            p.as_os_str()
                .as_bytes()
                .strip_prefix(root_bytes)
                .and_then(|r| {
                    if root_bytes.ends_with(b"/") {
                        Some(r)
                    } else {
                        r.strip_prefix(b"/")
                    }
                })
                .filter(|r| !r.is_empty())
                .map(<[u8]>::to_vec)
        })
        .collect();
    let queue = Mutex::new(Queue {
        dirs: vec![Vec::new()],
        busy: 0,
    });
    let wake = Condvar::new();
    let results: Mutex<Vec<Worker>> = Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for _ in 0..threads.max(1) {
            sc.spawn(|| {
                let mut w = Worker::default();
                let mut buf = vec![MaybeUninit::<u8>::uninit(); 64 << 10];
                while let Some(mut job) = Job::next(&queue, &wake) {
                    job.found = w.read_dir(&root_fd, &root, &job.rel, &skip, &mut buf);
                }
                w.files.entries.sort_unstable_by_key(|e| e.fp);
                lock(&results).push(w);
            });
        }
    });
    let mut out = Listing {
        root,
        ..Listing::default()
    };
    for w in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        if !w.files.entries.is_empty() {
            out.runs.push(w.files);
        }
        out.symlinks.extend(w.links);
        out.errors.extend(w.errors);
    }
    out.errors.sort();
    Ok(out)
}

/// Opens folder `rel` below the root without following any symlink on the
/// way, not only the last one (`openat2` with `RESOLVE_NO_SYMLINKS`): a
/// folder swapped for a symlink after its parent was read is not entered.
/// Kernels before 5.6 lack `openat2`; there only the last part is checked
/// (`O_NOFOLLOW`), as general-purpose walkers do.
fn open_beneath(root_fd: &OwnedFd, rel: &[u8]) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    match rustix::fs::openat2(
        root_fd,
        rel,
        flags,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    ) {
        Err(rustix::io::Errno::NOSYS) => rustix::fs::openat(root_fd, rel, flags, Mode::empty()),
        r => r,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Folders waiting to be read, and how many are being read.
struct Queue {
    dirs: Vec<Vec<u8>>,
    busy: usize,
}

/// One folder taken from the queue. Dropping it (also when a worker
/// unwinds) hands back the subfolders found and wakes the others, so the
/// walk always ends.
struct Job<'a> {
    rel: Vec<u8>,
    found: Vec<Vec<u8>>,
    queue: &'a Mutex<Queue>,
    wake: &'a Condvar,
}

impl<'a> Job<'a> {
    /// The next folder, or `None` when the queue is empty and nobody can add to it.
    fn next(queue: &'a Mutex<Queue>, wake: &'a Condvar) -> Option<Job<'a>> {
        let mut q = lock(queue);
        loop {
            if let Some(rel) = q.dirs.pop() {
                q.busy += 1;
                return Some(Job {
                    rel,
                    found: Vec::new(),
                    queue,
                    wake,
                });
            }
            if q.busy == 0 {
                return None;
            }
            q = wake.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for Job<'_> {
    fn drop(&mut self) {
        let mut q = lock(self.queue);
        q.dirs.append(&mut self.found);
        q.busy -= 1;
        drop(q);
        self.wake.notify_all();
    }
}

/// What one worker found.
#[derive(Default)]
struct Worker {
    files: FileRun,
    links: Vec<(Box<[u8]>, bool)>,
    errors: Vec<String>,
}

impl Worker {
    /// Reads folder `rel` (relative to the root; empty for the root itself)
    /// and returns its subfolders to read.
    fn read_dir(
        &mut self,
        root_fd: &OwnedFd,
        root: &Path,
        rel: &[u8],
        skip: &[Vec<u8>],
        buf: &mut [MaybeUninit<u8>],
    ) -> Vec<Vec<u8>> {
        let mut subdirs = Vec::new();
        let shown = |rel: &[u8]| {
            root.join(std::ffi::OsStr::from_bytes(rel))
                .display()
                .to_string()
        };
        let name = if rel.is_empty() { &b"."[..] } else { rel };
        let fd = match open_beneath(root_fd, name) {
            Ok(fd) => fd,
            Err(e) => {
                self.errors
                    .push(format!("{}: {}", shown(rel), std::io::Error::from(e)));
                return subdirs;
            }
        };
        let mut entries = RawDir::new(&fd, buf);
        while let Some(entry) = entries.next() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    self.errors
                        .push(format!("{}: {}", shown(rel), std::io::Error::from(e)));
                    break;
                }
            };
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let mut kind = entry.file_type();
            if kind == FileType::Unknown {
                kind = match rustix::fs::statat(&fd, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => FileType::from_raw_mode(st.st_mode),
                    // Gone meanwhile.
                    Err(rustix::io::Errno::NOENT) => continue,
                    Err(e) => {
                        let mut child = rel.to_vec();
                        if !child.is_empty() {
                            child.push(b'/');
                        }
                        child.extend_from_slice(name);
                        self.errors
                            .push(format!("{}: {}", shown(&child), std::io::Error::from(e)));
                        continue;
                    }
                };
            }
            match kind {
                FileType::RegularFile => {
                    let arena = &mut self.files.arena;
                    let start = arena.len();
                    if !rel.is_empty() {
                        arena.extend_from_slice(rel);
                        arena.push(b'/');
                    }
                    arena.extend_from_slice(name);
                    let path = &arena[start..];
                    self.files.entries.push(FileEntry {
                        fp: fingerprint(path),
                        start,
                        len: path.len() as u32,
                    });
                }
                FileType::Directory | FileType::Symlink => {
                    let mut child = Vec::with_capacity(rel.len() + 1 + name.len());
                    if !rel.is_empty() {
                        child.extend_from_slice(rel);
                        child.push(b'/');
                    }
                    child.extend_from_slice(name);
                    if kind == FileType::Symlink {
                        let link = root.join(std::ffi::OsStr::from_bytes(&child));
                        let outside = points_outside(&link, root);
                        self.links.push((child.into_boxed_slice(), outside));
                    } else if !skip.contains(&child) {
                        subdirs.push(child);
                    }
                }
                // Sockets, pipes and devices are neither tracked nor cleaned.
                _ => {}
            }
        }
        subdirs
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

    #[test]
    fn many_threads_list_a_nested_tree_completely_once() {
        let t = tempfile::tempdir().unwrap();
        let mut want = Vec::new();
        for a in 0..12 {
            for b in 0..5 {
                let d = t.path().join(format!("a{a}/b{b}"));
                std::fs::create_dir_all(&d).unwrap();
                for f in 0..7 {
                    std::fs::write(d.join(format!("f{f}.nwb")), b"").unwrap();
                    want.push(format!("a{a}/b{b}/f{f}.nwb"));
                }
            }
            std::fs::create_dir_all(t.path().join(format!("a{a}/empty"))).unwrap();
        }
        want.sort();
        for threads in [1, 3, 8] {
            let l = list(t.path(), &[], threads).unwrap();
            let mut got: Vec<String> = l
                .files()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            got.sort();
            assert_eq!(got, want, "{threads} threads");
            assert!(l.errors.is_empty(), "{:?}", l.errors);
        }
    }

    #[test]
    fn odd_names_fifos_and_linked_folders() {
        use std::os::unix::ffi::OsStrExt;
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("store");
        let elsewhere = t.path().join("elsewhere");
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("secret.nwb"), b"s").unwrap();
        let odd = std::ffi::OsStr::from_bytes(b"caf\xe9.nwb");
        std::fs::write(root.join("d").join(odd), b"x").unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.join("d/linked")).unwrap();
        let fifo = root.join("d/pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        let l = list(&root, &[], 2).unwrap();
        let files: Vec<Vec<u8>> = l.files().map(<[u8]>::to_vec).collect();
        assert_eq!(
            files,
            vec![b"d/caf\xe9.nwb".to_vec()],
            "byte for byte; no pipe"
        );
        assert!(made.is_ok_and(|s| s.success()), "mkfifo ran");
        let links: Vec<&[u8]> = l.symlinks.iter().map(|(p, _)| &p[..]).collect();
        assert_eq!(links, [&b"d/linked"[..]], "reported, not entered");
        assert!(l.errors.is_empty(), "{:?}", l.errors);
    }
}
