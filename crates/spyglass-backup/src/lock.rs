//! A lock file that says who holds it, for jobs that must not overlap (the
//! nightly job).
//!
//! The lock is an exclusive `flock(2)` on the file, so the kernel releases it
//! when its holder dies, however it dies; the file holds the holder's pid
//! for the message a second run prints. The file is never deleted (deleting
//! it would let two processes lock two different inodes), only emptied on
//! release; a pid still in it when we take the lock is a holder that died.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process holds it.
    #[error("{} is held by pid {}{}", path.display(), pid.map_or("?".to_owned(), |p| p.to_string()), since.as_deref().map(|s| format!(" (since {s})")).unwrap_or_default())]
    Held {
        /// The lock file.
        path: PathBuf,
        /// The holder, as written in the file.
        pid: Option<u32>,
        /// When it took the lock, as written in the file.
        since: Option<String>,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot use the lock file {}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A held lock; released on drop.
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
    /// The pid a dead holder left in the file, if any.
    pub recovered_from: Option<u32>,
}

impl Lock {
    /// Takes the lock at `path` without waiting, creating the file if needed.
    pub fn acquire(path: &Path) -> Result<Lock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let mut old = String::new();
        if let Err(e) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
            if e == rustix::io::Errno::WOULDBLOCK {
                let _ = file.read_to_string(&mut old);
                let (pid, since) = parse(&old);
                return Err(LockError::Held {
                    path: path.to_owned(),
                    pid,
                    since,
                });
            }
            return Err(io(e.into()));
        }
        let _ = file.read_to_string(&mut old);
        let recovered_from = parse(&old).0;
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(
            file,
            "pid {}\nsince {}",
            std::process::id(),
            crate::names::rfc3339(crate::names::now_unix())
        )
        .map_err(io)?;
        file.sync_data().map_err(io)?;
        Ok(Lock {
            file,
            path: path.to_owned(),
            recovered_from,
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Empty first, then unlock: a pid left in the file means a dead holder.
        let _ = self.file.set_len(0);
        let _ = flock(&self.file, FlockOperation::Unlock);
    }
}

fn parse(text: &str) -> (Option<u32>, Option<String>) {
    let mut pid = None;
    let mut since = None;
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("pid ") {
            pid = p.trim().parse().ok();
        } else if let Some(s) = line.strip_prefix("since ") {
            since = Some(s.trim().to_owned());
        }
    }
    (pid, since)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_and_told_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nightly.lock");
        let first = Lock::acquire(&p).unwrap();
        assert_eq!(first.recovered_from, None);
        // flock locks belong to the open file description: a second open in
        // the same process is refused just like another process would be.
        match Lock::acquire(&p) {
            Err(LockError::Held { pid, since, .. }) => {
                assert_eq!(pid, Some(std::process::id()));
                assert!(since.is_some());
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        let again = Lock::acquire(&p).unwrap();
        assert_eq!(
            again.recovered_from, None,
            "a clean release leaves no pid behind"
        );
    }

    #[test]
    fn stale_pid_is_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nightly.lock");
        std::fs::write(&p, "pid 4000000\nsince 2026-11-26T02:00:00Z\n").unwrap();
        let l = Lock::acquire(&p).unwrap();
        assert_eq!(l.recovered_from, Some(4_000_000));
        assert!(std::fs::read_to_string(&p)
            .unwrap()
            .starts_with(&format!("pid {}\n", std::process::id())));
    }
}
