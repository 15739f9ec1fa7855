use std::path::PathBuf;

/// Errors from archiving and replaying the binary log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Connecting or a statement failed.
    #[error(transparent)]
    Db(#[from] spyglass_db::DbError),
    /// The replication stream failed.
    #[error("{what}: {}", spyglass_db::driver_error_text(source))]
    Stream {
        /// What we were doing.
        what: String,
        /// Driver error.
        #[source]
        source: Box<mysql::Error>,
    },
    /// Reading or writing a file failed.
    #[error("{what} {}", path.display())]
    Io {
        /// What we were doing.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The archive directory is not usable (corrupt index, foreign file, locked).
    #[error("binlog archive {}: {detail}", dir.display())]
    Archive {
        /// The archive directory.
        dir: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The server is not set up for archiving (binary log off, no privilege).
    #[error("{0}")]
    Server(String),
    /// An event could not be parsed or does not fit where it is.
    #[error("{file} at {pos}: {detail}")]
    Event {
        /// Binlog file name.
        file: String,
        /// Position of the event in the file.
        pos: u64,
        /// What is wrong.
        detail: String,
    },
    /// A replay cannot reach the asked point (gap, archive too short, bad option).
    #[error("{0}")]
    Replay(String),
    /// `recover` cannot put the rows back (conflict, altered table, bad target); nothing was written.
    #[error("{0}")]
    Recover(String),
    /// A replayed statement failed on the target.
    #[error(
        "replaying {file}:{pos} on the target: {}",
        spyglass_db::driver_error_text(source)
    )]
    Apply {
        /// Binlog file of the transaction.
        file: String,
        /// Its position.
        pos: u64,
        /// Driver error.
        #[source]
        source: Box<mysql::Error>,
    },
}

impl Error {
    pub(crate) fn io(
        what: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.to_path_buf();
        move |source| Error::Io { what, path, source }
    }
    pub(crate) fn stream(what: impl Into<String>) -> impl FnOnce(mysql::Error) -> Error {
        let what = what.into();
        move |source| Error::Stream {
            what,
            source: Box::new(source),
        }
    }
}
