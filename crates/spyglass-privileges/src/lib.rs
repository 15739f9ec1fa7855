//! Roles, accounts and privileges of a Spyglass database server, for MySQL
//! and MariaDB.
//!
//! - [`model`]: [`Account`], [`SchemaPattern`] (a prefix rendered as an
//!   escaped `LIKE` pattern, `common` -> `` `common\_%`.* ``), [`PrivilegeSet`],
//!   [`Grantee`], and validation of every name before SQL is rendered.
//! - [`policy`]: the roles (`dj_guest`, `dj_collab`, `dj_user`, `dj_admin` and
//!   custom ones), what each gets where, and the shared module prefixes.
//!   [`Policy::spyglass`] reproduces Spyglass; [`PolicyConfig`] overrides it.
//! - [`sql`]: [`Step`]s and their SQL for each flavor (pure, golden-tested).
//! - [`live`]: the server's accounts, roles, default roles and grants, read
//!   from the grant tables through the protocol.
//! - [`plan`]: desired vs live -> ordered steps; [`apply`] runs them one by
//!   one and stops at the first failure.
//! - [`audit`]: findings with a severity and a fix; [`login`] tries
//!   temporary passwords (once each) and changes one's own password.
//! - [`grants`] and [`capability`]: what the connected account holds, and
//!   whether that is enough for each command family (used by `doctor`);
//!   [`preflight`]: whether it is enough for every statement of a plan
//!   (checked before the first one runs).
//!
//! ```no_run
//! use spyglass_privileges::{live, plan, policy::Policy};
//! # fn demo(session: &mut spyglass_db::Session) -> Result<(), spyglass_privileges::Error> {
//! let policy = Policy::spyglass();
//! let state = live::read(session)?;
//! let plan = plan::roles_init(&policy, &state, session.server().flavor);
//! let report = spyglass_privileges::apply::apply(session, &plan.steps)?;
//! assert!(report.complete());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod apply;
pub mod audit;
pub mod capability;
pub mod grants;
pub mod live;
pub mod login;
pub mod model;
pub mod password;
pub mod plan;
pub mod policy;
pub mod preflight;
pub mod sql;

pub use model::{Account, Grant, Grantee, PrivilegeSet, SchemaPattern};
pub use policy::{Policy, PolicyConfig, RoleDef};
pub use sql::Step;

/// Errors from this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A statement failed.
    #[error(transparent)]
    Db(#[from] spyglass_db::DbError),
    /// Bad input, refused before any SQL runs.
    #[error("invalid {what} '{value}': {reason}")]
    Invalid {
        /// What kind of value (`user name`, `schema prefix`, `role`, ...).
        what: &'static str,
        /// The offending value.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A role the command needs does not exist on the server.
    #[error("role {role} does not exist on the server")]
    RoleMissing {
        /// Role name.
        role: String,
    },
    /// The account does not exist.
    #[error("account {account} does not exist")]
    NoSuchAccount {
        /// Who.
        account: Account,
    },
    /// `users add` on an account that exists and differs from what was asked.
    #[error("account {account} already exists: {detail}")]
    AccountExists {
        /// Who.
        account: Account,
        /// What it holds now.
        detail: String,
    },
    /// Changing one's own password failed.
    #[error("could not change the password of '{user}': {reason}")]
    PasswordChange {
        /// Whose.
        user: String,
        /// The server's message, password scrubbed.
        reason: String,
    },
    /// The plan would take rights away from the account running it.
    #[error("refusing to run: `{step}` would take rights away from {account}, the account running this command")]
    SelfHarm {
        /// The executing account.
        account: Account,
        /// The statement (passwords redacted).
        step: String,
    },
    /// The executing account lacks what the plan needs; nothing ran.
    #[error("refusing to run: {account} lacks {}; nothing was changed", .missing.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Insufficient {
        /// The executing account.
        account: String,
        /// What it lacks, first need first.
        missing: Vec<preflight::Missing>,
    },
    /// The operating system's random generator failed.
    #[error("no randomness for a password: {0}")]
    Random(String),
}

/// An error and its causes on one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}
