//! Connecting to the Spyglass database server, shared by every spyglass-admin library.
//!
//! This crate owns three small things the other crates must agree on:
//!
//! - [`ConnectOptions`]: where and as whom to connect. The password is a
//!   [`Secret`] that never prints, so options can be logged and put in errors.
//! - [`Session`]: an open connection plus what was learned at connect time, the
//!   [`ServerInfo`] (flavor and version) and whether TLS is in use. Other crates
//!   choose SQL by [`Flavor`].
//! - [`quote`]: identifier and string quoting that is correct for both MySQL
//!   and MariaDB whatever the session's `sql_mode`, and single-quoting for a
//!   POSIX shell line ([`quote::shell`]).
//! - [`schemas`]: the one schema-glob matcher and the server's own schemas.
//!
//! It also parses DataJoint's configuration file ([`dj_config`]), because both
//! the binary (connection settings) and the cleanup crate (stores) read it.
//!
//! ```no_run
//! use spyglass_db::{ConnectOptions, Secret};
//! let opts = ConnectOptions::tcp("127.0.0.1", 3306, "root").password(Secret::new(""));
//! let session = spyglass_db::connect(&opts)?;
//! println!("{}", session.server());
//! # Ok::<(), spyglass_db::DbError>(())
//! ```
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod connect;
pub mod dj_config;
mod error;
mod flavor;
pub mod mycnf;
pub mod quote;
pub mod resolve;
pub mod schemas;
pub mod tls;

pub use connect::{connect, ConnectOptions, Endpoint, Secret, Session};
pub use error::{
    driver_error_text, is_transient, retry_transient, transient_pause, DbError, Login,
    TRANSIENT_TRIES,
};
pub use flavor::{Flavor, ServerInfo, Version};
pub use tls::{TlsMode, TlsOptions};

/// Re-export of the protocol crate, so dependants use the same version.
pub use mysql;
