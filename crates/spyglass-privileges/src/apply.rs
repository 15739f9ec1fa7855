//! Running a plan: one statement at a time, each checked, stopping at the
//! first failure. The report says what was applied and what was not.

use serde::Serialize;
use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::{DbError, Session};

use crate::live::LiveState;
use crate::model::{Account, Grantee, SchemaPattern};
use crate::sql::{Reveal, Step};
use crate::Error;

/// A statement that failed.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The statement, passwords redacted.
    pub sql: String,
    /// The server's error, passwords scrubbed.
    pub error: String,
}

/// What [`apply`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    /// Statements that succeeded, in order (passwords redacted).
    pub applied: Vec<String>,
    /// The statement that failed, if one did.
    pub failed: Option<Failure>,
    /// Statements not run because an earlier one failed.
    pub not_applied: Vec<String>,
    /// After a failure, the statements run to take back what the plan had
    /// already done to the failing statement's account.
    pub undone: Vec<String>,
    /// An undo statement that failed too (the account is then left as
    /// `undone` shows, and the caller must say so).
    pub undo_failed: Option<Failure>,
}

impl ApplyReport {
    /// True when every statement ran.
    pub fn complete(&self) -> bool {
        self.failed.is_none()
    }
}

/// Runs `steps` in order on `session`. Stops at the first failure.
///
/// The session's `sql_mode` loses `NO_BACKSLASH_ESCAPES` first, so the
/// escaped string literals passwords are sent in mean what they say
/// (<https://dev.mysql.com/doc/refman/8.0/en/string-literals.html>).
pub fn apply(session: &mut Session, steps: &[Step]) -> Result<ApplyReport, Error> {
    let flavor = session.server().flavor;
    let conn = session.conn();
    conn.query_drop(
        "SET SESSION sql_mode = REPLACE(@@SESSION.sql_mode, 'NO_BACKSLASH_ESCAPES', '')",
    )
    .map_err(|e| DbError::query("preparing the session's sql_mode", e))?;
    let mut report = ApplyReport::default();
    for (i, step) in steps.iter().enumerate() {
        let shown = step.sql(flavor, Reveal::Redacted);
        match conn.query_drop(step.sql(flavor, Reveal::Secrets)) {
            Ok(()) => report.applied.push(shown),
            Err(e) => {
                report.failed = Some(Failure {
                    sql: shown,
                    error: scrub(&server_message(&e), step),
                });
                report.not_applied = steps[i + 1..]
                    .iter()
                    .map(|s| s.sql(flavor, Reveal::Redacted))
                    .collect();
                break;
            }
        }
    }
    Ok(report)
}

/// Whether `step` belongs to `account`'s part of a plan: it changes the
/// account, or grants a role the right to read the account's own prefix.
fn belongs_to(step: &Step, account: &Account) -> bool {
    match step {
        Step::Grant {
            on: SchemaPattern::Prefix(p),
            to: Grantee::Role(_),
            ..
        } => *p == account.user,
        s => s.account() == Some(account),
    }
}

/// [`apply`], all or nothing per account: when a statement that changes an
/// account fails, what this plan already did to that account is taken
/// back (an account the plan created is dropped; otherwise each applied
/// statement is inverted, newest first, using `before`, the state the plan
/// was made from). Other accounts' completed parts and role changes stay.
pub fn apply_per_account(
    session: &mut Session,
    steps: &[Step],
    before: &LiveState,
) -> Result<ApplyReport, Error> {
    let mut report = apply(session, steps)?;
    if report.failed.is_none() {
        return Ok(report);
    }
    let failed_at = report.applied.len();
    // The failing step's account; a read grant to a role on a member's own
    // prefix (`read_scope = "lab"`) belongs to that member.
    let owner = |s: &Step| -> Option<Account> {
        if let Some(a) = s.account() {
            return Some(a.clone());
        }
        let Step::Grant {
            on: SchemaPattern::Prefix(p),
            to: Grantee::Role(_),
            ..
        } = s
        else {
            return None;
        };
        steps
            .iter()
            .filter_map(Step::account)
            .find(|a| a.user == *p)
            .cloned()
    };
    let Some(account) = steps.get(failed_at).and_then(owner) else {
        return Ok(report);
    };
    let done: Vec<&Step> = steps[..failed_at]
        .iter()
        .filter(|s| belongs_to(s, &account))
        .collect();
    let created = done
        .iter()
        .any(|s| matches!(s, Step::CreateUser { account: a, .. } if *a == account));
    let mut undo: Vec<Step> = Vec::new();
    for s in done.iter().rev() {
        if created && s.account() == Some(&account) {
            continue;
        }
        if let Some(inv) = s.inverse(before) {
            undo.push(inv);
        }
    }
    if created {
        undo.push(Step::DropUser {
            account: account.clone(),
        });
    } else if done.iter().any(|s| {
        matches!(
            s,
            Step::GrantRole { .. } | Step::RevokeRole { .. } | Step::SetDefaultRole { .. }
        )
    }) {
        // Revoking a role also drops it from the default roles (MySQL): put them back.
        undo.retain(|s| !matches!(s, Step::RestoreDefaultRoles { .. }));
        undo.push(Step::RestoreDefaultRoles {
            roles: before
                .default_roles
                .get(&account)
                .cloned()
                .unwrap_or_default(),
            account: account.clone(),
        });
    }
    let flavor = session.server().flavor;
    let conn = session.conn();
    for s in &undo {
        let shown = s.sql(flavor, Reveal::Redacted);
        match conn.query_drop(s.sql(flavor, Reveal::Secrets)) {
            Ok(()) => report.undone.push(shown),
            Err(e) => {
                report.undo_failed = Some(Failure {
                    sql: shown,
                    error: server_message(&e),
                });
                break;
            }
        }
    }
    Ok(report)
}

/// `ERROR 1396 (HY000): Operation CREATE ROLE failed for ...`, without the driver's wrapping.
pub(crate) fn server_message(e: &spyglass_db::mysql::Error) -> String {
    match e {
        spyglass_db::mysql::Error::MySqlError(m) => {
            format!("ERROR {} ({}): {}", m.code, m.state, m.message)
        }
        e => e.to_string(),
    }
}

/// Removes a step's password from a server message (a syntax error quotes
/// the statement near the error).
fn scrub(message: &str, step: &Step) -> String {
    match step {
        Step::CreateUser { password, .. } | Step::SetPassword { password, .. }
            if !password.is_empty() =>
        {
            let escaped = spyglass_db::quote::string(password.expose());
            message
                .replace(&escaped[1..escaped.len() - 1], "***")
                .replace(password.expose(), "***")
        }
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spyglass_db::Secret;

    #[test]
    fn scrub_removes_passwords() {
        let step = Step::CreateUser {
            account: Account::new("a", "%"),
            password: Secret::new("s3cr'et"),
            expire: false,
        };
        let m = scrub(r"syntax error near 's3cr\'et' at line 1", &step);
        assert!(!m.contains("s3cr"), "{m}");
    }
}
