//! End-to-end tests of `spyglass-admin` against real servers.
//!
//! These run only with the `server-tests` feature, which `cargo xtask itest`
//! switches on after starting a real MariaDB or MySQL and pointing the
//! `SPYGLASS_IT_*` variables at it. With the feature on, a missing server is
//! a failure, never a skip. A plain `cargo test` compiles none of this.

// Test helpers may unwrap: a failure is a test failure with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "server-tests")]
mod support;

#[cfg(feature = "server-tests")]
mod backup;

#[cfg(feature = "server-tests")]
mod cleanup;

#[cfg(feature = "server-tests")]
mod connect;

#[cfg(feature = "server-tests")]
mod datajoint;

#[cfg(feature = "server-tests")]
mod doctor;

#[cfg(feature = "server-tests")]
mod fixture;

#[cfg(feature = "server-tests")]
mod lifecycle;

#[cfg(feature = "server-tests")]
mod recover;

#[cfg(feature = "server-tests")]
mod report;

#[cfg(feature = "server-tests")]
mod nightly;

#[cfg(feature = "server-tests")]
mod pitr;

#[cfg(feature = "server-tests")]
mod s3;

#[cfg(feature = "server-tests")]
mod tls;

#[cfg(feature = "server-tests")]
mod users;
