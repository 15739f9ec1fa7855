//! The binary-log archive and point-in-time replay of spyglass-admin.
//!
//! [`archive::archive`] connects to the server as a replica and writes its
//! binary log into `<destination>/binlog/` in the server's own file format
//! (so `mysqlbinlog` and `mariadb-binlog` read the archive): one file per
//! server file, closed files gzip-compressed and listed in `index.json`
//! ([`index`]) with sha256, first/last event time and position, gaps where
//! the server purged a file before the archive had it.
//!
//! [`replay::replay`] applies archived transactions to a server from a
//! position up to a point in time or position: row events through the
//! server's own `BINLOG` statement (exact values, decoded by the server),
//! statements (DDL) as text, with schema filters and renames.
//!
//! [`recover`] undoes a delete: the rows archived transactions deleted (or
//! updated), decoded for listing and conflict checks, put back through the
//! same `BINLOG` statement into side schemas or the live tables.
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod archive;
mod error;
pub mod format;
pub mod index;
pub mod recover;
pub mod replay;

pub use error::Error;
