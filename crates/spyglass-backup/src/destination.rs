//! Checking a backup destination directory before writing to it.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// What was found at a backup destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestinationStatus {
    /// The directory.
    pub path: PathBuf,
    /// It exists and is a directory.
    pub exists: bool,
    /// A file could be created in it.
    pub writable: bool,
    /// Bytes available to this user on its filesystem (of the nearest existing
    /// ancestor when the directory does not exist yet).
    pub free_bytes: Option<u64>,
}

/// Probes `path`: existence, writability (by creating and removing a file),
/// free space.
pub fn probe(path: &Path) -> DestinationStatus {
    let exists = path.is_dir();
    let writable = exists
        && tempfile_in(path)
            .map(|p| std::fs::remove_file(p).is_ok())
            .unwrap_or(false);
    let mut probe_at = Some(path);
    let mut free_bytes = None;
    while let Some(p) = probe_at {
        if p.exists() {
            free_bytes = rustix::fs::statvfs(p)
                .ok()
                .map(|s| s.f_bavail.saturating_mul(s.f_frsize));
            break;
        }
        probe_at = p.parent();
    }
    DestinationStatus {
        path: path.to_owned(),
        exists,
        writable,
        free_bytes,
    }
}

/// A destination that exists must be a directory (one that does not is
/// created by the caller): a clear sentence naming it, instead of the
/// system's "File exists" from creating a set inside a file.
pub fn require_dir(path: &Path) -> Result<(), crate::Error> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_dir() => Err(crate::Error::Invalid(format!(
            "the backup destination {} is a file, not a directory; give a directory (it is created when missing)",
            path.display()
        ))),
        _ => Ok(()),
    }
}

fn tempfile_in(dir: &Path) -> std::io::Result<PathBuf> {
    let p = dir.join(format!(".spyglass-admin-probe-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&p)?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_existing_and_missing() {
        let dir = std::env::temp_dir();
        let s = probe(&dir);
        assert!(s.exists && s.writable);
        assert!(s.free_bytes.is_some_and(|b| b > 0));
        let missing = dir.join("spyglass-admin-no-such-dir/x");
        let s = probe(&missing);
        assert!(!s.exists && !s.writable);
        assert!(
            s.free_bytes.is_some(),
            "free space comes from the nearest existing parent"
        );
    }
}
