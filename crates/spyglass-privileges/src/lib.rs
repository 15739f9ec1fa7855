//! Roles, accounts and privileges of a Spyglass database server.
//!
//! Today this crate answers one question for `spyglass-admin doctor`: which
//! privileges does the connected account hold, and are they enough for each
//! command family ([`capability`])? Grants are read through the protocol with
//! `SHOW GRANTS` ([`grants`]), never by parsing client output.
//!
//! ```no_run
//! # fn demo(session: &mut spyglass_db::Session) -> Result<(), spyglass_privileges::Error> {
//! let held = spyglass_privileges::grants::current_privileges(session)?;
//! for check in spyglass_privileges::capability::check_all(&held, session.server().flavor) {
//!     assert!(check.missing_required().count() == 0, "{:?} lacks privileges", check.family);
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod capability;
pub mod grants;

/// Errors from reading privileges.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A statement failed.
    #[error(transparent)]
    Db(#[from] spyglass_db::DbError),
}
