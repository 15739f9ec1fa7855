//! Consistent, parallel, compressed, checksummed logical backups of a Spyglass
//! database, restorable with nothing but `gunzip` and the `mysql` client.
//!
//! A backup *set* is a directory `DEST/<label>-YYYYMMDD-HHMMSS/` (UTC):
//!
//! ```text
//! manifest.json        every file with sha256, sizes, rows; tables; snapshot position
//! RESTORE.txt          how to restore with gunzip/zstd and the mysql client only
//! accounts.sql.gz      CREATE USER / GRANT statements (mode 0600)
//! 1-schema/<db>.sql.gz database and tables, foreign-key-safe order
//! 2-data/<db>/<table>.<chunk>.sql.gz   INSERT statements, one per line
//! 3-post/<db>.sql.gz   views, triggers, routines, events
//! ```
//!
//! It is written as `<name>.partial/` and renamed only when every file is
//! written and synced, so a set without `.partial` and with a manifest is
//! complete ([`set`] holds the layout and that protocol). [`dump::run`]
//! writes a set, [`restore::restore`] loads one, [`verify::verify`] checks
//! one, [`list::list`] describes a destination.
//!
//! ```no_run
//! # fn demo(opts: &spyglass_db::ConnectOptions) -> Result<(), spyglass_backup::Error> {
//! use spyglass_backup::dump::{self, DumpOptions};
//! let options = DumpOptions::new("/data/mysql-backups".into());
//! let summary = dump::run(opts, &options, &spyglass_backup::progress::Silent)?;
//! println!("{}", summary.path.display());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod accounts;
mod catalog;
pub mod compress;
pub mod destination;
pub mod dump;
pub mod encode;
mod error;
pub mod guard;
pub mod list;
pub mod lock;
pub mod manifest;
pub mod names;
pub mod pack;
pub mod progress;
pub mod prune;
pub mod restore;
pub mod retention;
mod script;
pub mod set;
pub mod ship;
pub mod verify;

pub use error::Error;
