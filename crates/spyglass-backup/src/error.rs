use std::path::PathBuf;

/// Errors from backing up, restoring and verifying.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Connecting or a statement failed.
    #[error(transparent)]
    Db(#[from] spyglass_db::DbError),
    /// A statement on a specific table failed.
    #[error("{what} `{schema}`.`{table}`")]
    Table {
        /// What we were doing.
        what: &'static str,
        /// Schema.
        schema: String,
        /// Table.
        table: String,
        /// Driver error.
        #[source]
        source: Box<spyglass_db::mysql::Error>,
    },
    /// Reading or writing a file failed.
    #[error("{what} {}", path.display())]
    Io {
        /// What we were doing ("writing", "reading", ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A backup set is not usable.
    #[error("backup set {}: {detail}", set.display())]
    BadSet {
        /// The set directory.
        set: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A file of a set does not match its manifest.
    #[error("{}: {detail}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (size, sha256, truncated stream).
        detail: String,
    },
    /// Invalid options.
    #[error("{0}")]
    Invalid(String),
    /// The schema selection (include and exclude globs) matches nothing.
    #[error("{0}")]
    NothingSelected(String),
    /// A rename rule is unusable (matches nothing, merges two schemas, or
    /// names a system schema).
    #[error("{0}")]
    Rename(String),
    /// A worker thread panicked (a bug): the run stopped.
    #[error("a {what} worker stopped unexpectedly (a bug in spyglass-admin; please report it with the command line)")]
    WorkerPanicked {
        /// Which kind of worker (dump, restore, ...).
        what: String,
    },
    /// Restoring would overwrite schemas that exist.
    #[error("schema(s) already exist on the target server: {}", .schemas.join(", "))]
    SchemasExist {
        /// Every target schema that exists.
        schemas: Vec<String>,
        /// Those of them an earlier restore left unfinished (they hold the
        /// marker table [`crate::restore::MARKER_TABLE`]).
        unfinished: Vec<String>,
    },
    /// `verify --restore` could not drop schemas it restored into.
    #[error("verify could not drop the schema(s) it restored into: {} ({detail}); drop them by hand (SET foreign_key_checks = 0; DROP DATABASE ...)", .schemas.join(", "))]
    NotDropped {
        /// The schemas still on the server.
        schemas: Vec<String>,
        /// What the server said.
        detail: String,
    },
    /// Long statements would hold up the snapshot's global read lock (and every writer behind it).
    #[error("{cause}; still running: {}; no set was written. Wait for them, pass --kill-long-queries to kill them, or --allow-inconsistent for a set without a consistent snapshot", .queries.join("; "))]
    LongQueries {
        /// What happened (the guard's wait, or the lock's timeout).
        cause: String,
        /// Each statement: id, user, seconds, start of text.
        queries: Vec<String>,
    },
    /// Loading a restore file failed.
    #[error("loading {} (statement {statement})", path.display())]
    Load {
        /// The file.
        path: PathBuf,
        /// 1-based statement number in it.
        statement: usize,
        /// Driver error.
        #[source]
        source: Box<spyglass_db::mysql::Error>,
    },
    /// Interrupted from outside (SIGINT/SIGTERM); the set was left unfinished.
    #[error("interrupted; the unfinished set {} was left as it is (backup list shows it as partial)", partial.display())]
    Interrupted {
        /// The `.partial` directory.
        partial: PathBuf,
    },
    /// Stopped because another worker failed or the run was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The point-in-time replay from the binary-log archive failed.
    #[error(transparent)]
    Binlog(Box<spyglass_binlog::Error>),
}

impl From<spyglass_binlog::Error> for Error {
    fn from(e: spyglass_binlog::Error) -> Self {
        Error::Binlog(Box::new(e))
    }
}

impl Error {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { what, path, source }
    }
}

/// The first real failure among joined worker threads: `Cancelled` only means
/// a worker stopped because another failed, and a panic becomes an error.
pub(crate) fn first_failure(
    results: impl IntoIterator<Item = std::thread::Result<Result<(), Error>>>,
    what: &str,
) -> Option<Error> {
    results
        .into_iter()
        .filter_map(|r| match r {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(Error::WorkerPanicked { what: what.into() }),
        })
        .find(|e| !matches!(e, Error::Cancelled))
}
