use std::path::PathBuf;

/// Everything that can go wrong before or around a job (a failing step is not
/// an error: it is a [`crate::nightly::StepStatus::Failed`] in the summary).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The settings file named explicitly is not there.
    #[error("settings file {} does not exist", path.display())]
    SettingsMissing {
        /// The file.
        path: PathBuf,
    },
    /// The settings file could not be read.
    #[error("cannot read settings file {}", path.display())]
    SettingsRead {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A key or value in the settings file is wrong.
    #[error("{}:{line}:{col}: {message}", path.display())]
    Settings {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong (for an unknown key, the valid ones).
        message: String,
    },
    /// A setting's value is wrong in a way the file's syntax cannot say.
    #[error("[{section}] {key}: {message}")]
    Invalid {
        /// The section, e.g. `nightly`.
        section: &'static str,
        /// The key, e.g. `level`.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A setting a job needs is not set.
    #[error("{job} needs [{section}] {key} in spyglass-admin.toml")]
    Missing {
        /// The job or command, e.g. `nightly`.
        job: &'static str,
        /// The section.
        section: &'static str,
        /// The key.
        key: &'static str,
    },
    /// The backup destination could not be created.
    #[error("cannot create the backup destination {}", path.display())]
    Destination {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another run of the same job holds its lock.
    #[error("another nightly run is in progress: {} holds {}{}; this run exits without doing anything",
        pid.map_or("another process".to_owned(), |p| format!("pid {p}")),
        lock.display(),
        since.as_deref().map(|s| format!(" since {s}")).unwrap_or_default())]
    Busy {
        /// The lock file.
        lock: PathBuf,
        /// The holder.
        pid: Option<u32>,
        /// When it took the lock.
        since: Option<String>,
    },
    /// The job's lock file could not be used.
    #[error(transparent)]
    Lock(spyglass_backup::lock::LockError),
    /// Cleanup has nothing to look at.
    #[error("no DataJoint stores and no Spyglass directories are configured")]
    NoStores,
    /// No quarantine directory is set and there is no Spyglass base to put one under.
    #[error("no quarantine directory")]
    NoQuarantine,
    /// The cleanup fraction limit is out of range.
    #[error("the fraction limit {0} is not between 0 and 1")]
    MaxFraction(f64),
    /// A backup library error.
    #[error(transparent)]
    Backup(#[from] spyglass_backup::Error),
    /// A ship/prune target error.
    #[error(transparent)]
    Ship(#[from] spyglass_backup::ship::ShipError),
    /// A cleanup library error.
    #[error(transparent)]
    Cleanup(#[from] spyglass_cleanup::CleanupError),
    /// The Spyglass directories in the DataJoint config are wrong.
    #[error(transparent)]
    Dirs(#[from] spyglass_cleanup::dirs::DirsError),
    /// A connection error.
    #[error(transparent)]
    Db(#[from] spyglass_db::DbError),
}
