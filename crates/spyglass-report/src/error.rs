use std::path::PathBuf;

/// Why a report could not be made. A section whose source is missing is not
/// an error: it is reported as unavailable, with the reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// Connecting or a statement failed.
    #[error(transparent)]
    Db(#[from] spyglass_db::DbError),
    /// A file could not be read or written.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done, e.g. `writing`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl ReportError {
    pub(crate) fn io(
        action: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> ReportError {
        let path = path.to_owned();
        move |source| ReportError::Io {
            action,
            path,
            source,
        }
    }
}
