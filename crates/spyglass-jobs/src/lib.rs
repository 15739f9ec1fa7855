//! spyglass-admin's jobs: what runs the libraries together, from the
//! settings file to a typed summary. Another lab tool can run the same
//! nightly job, or read the same settings, without the `spyglass-admin`
//! binary.
//!
//! - [`settings`]: `spyglass-admin.toml`, typed (enums, durations,
//!   directory keys), errors with file:line:col.
//! - [`lifecycle`]: `[backup]` to retention and ssh options.
//! - [`cleanup`]: `[cleanup]` and the DataJoint config to the cleanup
//!   library's inputs, and the aggregates of a scan or an apply.
//! - [`nightly`]: the nightly job: its plan, its step rules
//!   ([`nightly::schedule`], pure), the lock, the run, the summary, notify.
//!
//! No printing, no process exit codes: the caller renders the summary.
//!
//! ```no_run
//! use spyglass_jobs::{nightly, settings};
//! let s = settings::parse(
//!     "[backup]\ndestination = \"/data/backups\"\nkeep_daily = 7\n",
//!     std::path::Path::new("spyglass-admin.toml"),
//! )?;
//! let mut plan = nightly::NightlyPlan::from_settings(s)?;
//! plan.connection = Ok(spyglass_jobs::cleanup::Connection {
//!     options: spyglass_db::ConnectOptions::tcp("127.0.0.1", 3306, "backup"),
//!     dj: None,
//!     env: Default::default(),
//! });
//! let lock = nightly::lock(&plan)?;
//! let summary = nightly::run(&plan, &lock, &spyglass_backup::progress::Silent);
//! println!("{}", summary.overall().name());
//! # Ok::<(), spyglass_jobs::JobError>(())
//! ```
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod cleanup;
mod error;
pub mod lifecycle;
pub mod nightly;
pub mod settings;

pub use error::JobError;

pub use spyglass_backup::ship::human_bytes;
