//! Consistent, parallel, compressed, checksummed logical backups of a Spyglass
//! database, and their lifecycle.
//!
//! The dump engine is being built (see the backup engine issue); today the
//! crate owns the part `doctor` needs: checking a backup destination
//! ([`destination::probe`]).
//!
//! ```no_run
//! let status = spyglass_backup::destination::probe(std::path::Path::new("/data/mysql-backups"));
//! if let Some(free) = status.free_bytes { println!("{free} bytes free"); }
//! ```
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod destination;
