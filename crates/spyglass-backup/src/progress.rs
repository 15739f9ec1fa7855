//! Progress reporting without printing: the binary turns these calls into
//! progress bars; libraries only call them.

/// Receives progress from long operations. Implementations must be cheap and thread-safe.
pub trait Progress: Send + Sync {
    /// The total amount of work is known (uncompressed bytes, estimated).
    fn start(&self, _phase: &str, _total_bytes: u64) {}
    /// Some bytes and rows were processed.
    fn advance(&self, _bytes: u64, _rows: u64) {}
    /// The phase ended.
    fn finish(&self) {}
    /// A one-line note for the user (fallbacks taken, and the like).
    fn note(&self, _message: &str) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {}
