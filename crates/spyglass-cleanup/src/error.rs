//! The one error type of this crate.

use std::path::PathBuf;

/// A guard that refused to let `apply` act. Each names a failure seen in the
/// field (see the crate docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Guard {
    /// No row tracks anything in a store (or directory) that holds files:
    /// the configuration probably points at the wrong database or directory.
    EmptyTrackedSet,
    /// A schema in scope has `~external_<store>` but the store is not configured.
    StoreNotConfigured,
    /// More than `--max-fraction` of a store's files would go.
    MaxFraction,
    /// The store's directory is not the one Spyglass and DataJoint agree on.
    StoreDirMismatch,
    /// The quarantine directory is inside a scanned directory or on another file system.
    QuarantinePlacement,
    /// The connected account may not delete (or, for restore, insert) the
    /// rows the run would act on: refused before the first move.
    Privileges,
}

impl Guard {
    /// The name used in messages and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Guard::EmptyTrackedSet => "empty_tracked_set",
            Guard::StoreNotConfigured => "store_not_configured",
            Guard::MaxFraction => "max_fraction",
            Guard::StoreDirMismatch => "store_dir_mismatch",
            Guard::QuarantinePlacement => "quarantine_placement",
            Guard::Privileges => "privileges",
        }
    }
}

/// Errors from inventory, scan, apply, restore and purge.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CleanupError {
    /// Talking to the server failed.
    #[error(transparent)]
    Db(#[from] spyglass_db::DbError),
    /// A file operation failed.
    #[error("{what} {}", path.display())]
    Io {
        /// What we were doing, e.g. "cannot read directory".
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The DataJoint `stores` section or a cleanup setting cannot be used.
    #[error("{0}")]
    Config(String),
    /// A guard refused the run; nothing was changed.
    #[error("refused ({}): {detail}", guard.name())]
    Refused {
        /// Which guard.
        guard: Guard,
        /// What it saw, naming the store or directory.
        detail: String,
    },
    /// A quarantine run or its manifest is missing or unreadable.
    #[error("quarantine run {}: {detail}", path.display())]
    Run {
        /// The run directory.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

impl CleanupError {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| CleanupError::Io { what, path, source }
    }
}
