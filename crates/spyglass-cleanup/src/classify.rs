//! Pure classification: what a file, row or folder is, given what the
//! database and the disk say. No I/O here; the table-driven tests below are
//! the specification.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What cleanup reports. Every class is always present in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// A file in a store that no `~external` row names.
    Untracked,
    /// A zero-byte file in a store that no row names.
    Empty,
    /// An `~external` row nothing references (with or without its file).
    UnusedExternal,
    /// Tracked and referenced, but the file is missing: possible data loss.
    /// Reported only, never acted on.
    Dangling,
    /// A sorting/recording folder no row names.
    UntrackedDir,
    /// A temp directory entry older than the temp age.
    StaleTemp,
    /// An `analysis_nwbfile` row nothing downstream references.
    OrphanRow,
}

impl Class {
    /// Every class, in report order.
    pub const ALL: [Class; 7] = [
        Class::Untracked,
        Class::Empty,
        Class::UnusedExternal,
        Class::Dangling,
        Class::UntrackedDir,
        Class::StaleTemp,
        Class::OrphanRow,
    ];

    /// The name in JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Class::Untracked => "untracked",
            Class::Empty => "empty",
            Class::UnusedExternal => "unused_external",
            Class::Dangling => "dangling",
            Class::UntrackedDir => "untracked_dir",
            Class::StaleTemp => "stale_temp",
            Class::OrphanRow => "orphan_row",
        }
    }

    /// Parses a name from [`Class::name`].
    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name() == s)
    }

    /// Whether apply may act on it (dangling never is: deleting cannot fix a lost file).
    pub fn actionable(self) -> bool {
        self != Class::Dangling
    }
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What to do with a file found in a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileVerdict {
    /// Some row names it and that row (or another naming it) is referenced.
    Live,
    /// Only unused rows name it: it goes with its row (class `unused_external`).
    UnusedRowFile,
    /// A cleanup candidate of this class.
    Candidate(Class),
    /// Untracked, but younger than the grace period: a running analysis may
    /// not have inserted its row yet.
    Young,
}

/// Decides a regular file. `tracked_used` is `None` when no row names the
/// file, else whether any naming row is referenced. `age` is now - mtime.
pub fn file(
    tracked_used: Option<bool>,
    size: u64,
    age: Duration,
    min_age: Duration,
) -> FileVerdict {
    match tracked_used {
        Some(true) => FileVerdict::Live,
        Some(false) => FileVerdict::UnusedRowFile,
        None if age < min_age => FileVerdict::Young,
        None if size == 0 => FileVerdict::Candidate(Class::Empty),
        None => FileVerdict::Candidate(Class::Untracked),
    }
}

/// What a tracked path whose file is missing is.
pub fn missing(in_scope_used: bool) -> Option<Class> {
    in_scope_used.then_some(Class::Dangling)
}

/// What to do with a folder in a directory-tracked directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderVerdict {
    /// A row names it (by path, or by name after a move of the base).
    Live,
    /// No row names it: class `untracked_dir`.
    Untracked,
    /// No row names it, but something in it is newer than the grace period.
    Young,
}

/// Decides a folder from whether a row names it and the age of its newest entry.
pub fn folder(named: bool, newest_age: Duration, min_age: Duration) -> FolderVerdict {
    match (named, newest_age < min_age) {
        (true, _) => FolderVerdict::Live,
        (false, true) => FolderVerdict::Young,
        (false, false) => FolderVerdict::Untracked,
    }
}

/// True when a directory may be treated as temporary: only a folder named
/// `tmp` or `temp` (a misconfigured temp dir pointing at data must not be emptied).
pub fn is_temp_name(dir_name: &str) -> bool {
    matches!(dir_name, "tmp" | "temp")
}

/// Whether a temp entry is stale.
pub fn temp_entry(newest_age: Duration, temp_age: Duration) -> bool {
    newest_age >= temp_age
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(3600);
    const DAY: Duration = Duration::from_secs(86400);

    #[test]
    fn files() {
        use FileVerdict::*;
        let cases = [
            // tracked_used, size, age, min_age, verdict
            (Some(true), 10, 3 * DAY, DAY, Live),
            (Some(true), 0, 3 * DAY, DAY, Live),
            (Some(true), 10, H, DAY, Live),
            (Some(false), 10, 3 * DAY, DAY, UnusedRowFile),
            (None, 10, 3 * DAY, DAY, Candidate(Class::Untracked)),
            (None, 0, 3 * DAY, DAY, Candidate(Class::Empty)),
            (None, 10, H, DAY, Young),
            (None, 0, H, DAY, Young),
            (None, 10, DAY, DAY, Candidate(Class::Untracked)),
            (None, 10, H, Duration::ZERO, Candidate(Class::Untracked)),
        ];
        for (t, size, age, min, want) in cases {
            assert_eq!(
                file(t, size, age, min),
                want,
                "{t:?} {size} {age:?} {min:?}"
            );
        }
    }

    #[test]
    fn rows_and_folders_and_temp() {
        assert_eq!(missing(true), Some(Class::Dangling));
        assert_eq!(missing(false), None);
        let cases = [
            (true, 3 * DAY, FolderVerdict::Live),
            (true, H, FolderVerdict::Live),
            (false, 3 * DAY, FolderVerdict::Untracked),
            (false, H, FolderVerdict::Young),
        ];
        for (named, age, want) in cases {
            assert_eq!(folder(named, age, DAY), want);
        }
        for (name, ok) in [
            ("tmp", true),
            ("temp", true),
            ("Temp", false),
            ("data", false),
            ("tmp2", false),
        ] {
            assert_eq!(is_temp_name(name), ok, "{name}");
        }
        assert!(temp_entry(8 * DAY, 7 * DAY));
        assert!(!temp_entry(H, 7 * DAY));
    }

    #[test]
    fn class_names_round_trip() {
        for c in Class::ALL {
            assert_eq!(Class::parse(c.name()), Some(c));
        }
        assert_eq!(Class::parse("nope"), None);
        assert!(!Class::Dangling.actionable() && Class::OrphanRow.actionable());
    }
}
