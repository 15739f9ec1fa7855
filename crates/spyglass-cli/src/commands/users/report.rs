//! `users list` and `users audit`: read-only reports.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;
use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::{DbError, Secret};
use spyglass_privileges::audit::{self, Fix, RoleChoice, Scope};
use spyglass_privileges::live::LiveState;
use spyglass_privileges::{Account, Policy, SchemaPattern};

use super::Ctx;
use crate::args::{AuditArgs, GlobalOpts};
use crate::output::{self, ExitStatus};

/// One row of `users list --json`. Fields are only ever added.
#[derive(Debug, Serialize)]
struct ListEntry {
    user: String,
    host: String,
    /// Roles granted (all roles, managed or not).
    roles: Vec<String>,
    /// Roles active at login (default roles, or all with activate_all_roles_on_login).
    active_at_login: Vec<String>,
    /// Holds ALL PRIVILEGES on `<user>\_%`.
    own_prefix: bool,
    /// Days since the password was set; null when the server does not record it.
    password_age_days: Option<i64>,
    /// The password has expired (must be changed at next login).
    password_expired: bool,
    locked: bool,
    /// A server administrator outside the lab's roles: CREATE USER, GRANT
    /// OPTION or SUPER globally and no role of the policy (a lab member
    /// holding those is an audit finding, not an administrator).
    administrator: bool,
}

fn entries(policy: &Policy, live: &LiveState) -> Vec<ListEntry> {
    let admins = audit::administrators(policy, live);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    live.accounts
        .values()
        .filter(|a| !a.is_system())
        .map(|a| {
            let own = SchemaPattern::Prefix(a.account.user.clone()).stored();
            ListEntry {
                user: a.account.user.clone(),
                host: a.account.host.clone(),
                roles: live
                    .members
                    .get(&a.account)
                    .map(|r| r.iter().cloned().collect())
                    .unwrap_or_default(),
                active_at_login: live.active_at_login(&a.account).into_iter().collect(),
                own_prefix: live
                    .account_schema
                    .get(&a.account)
                    .and_then(|m| m.get(&own))
                    .is_some_and(|p| p.is_superset(&live.schema_all)),
                password_age_days: a.password_last_changed.map(|t| (now - t).max(0) / 86_400),
                password_expired: a.password_expired,
                locked: a.locked,
                administrator: admins.contains(&a.account),
            }
        })
        .collect()
}

pub(super) fn list(
    global: &GlobalOpts,
    policy: &Policy,
    live: &LiveState,
) -> anyhow::Result<ExitStatus> {
    let rows = entries(policy, live);
    if global.json {
        output::print_json(&rows)?;
        return Ok(ExitStatus::Success);
    }
    let yn = |b: bool| if b { "yes" } else { "no" };
    let table: Vec<[String; 7]> = rows
        .iter()
        .map(|e| {
            let account = format!("{}@{}", e.user, e.host);
            let roles = if e.roles.is_empty() {
                "-".to_owned()
            } else {
                e.roles.join(",")
            };
            let active = if e.roles.is_empty() {
                "-".to_owned()
            } else if e.active_at_login.len() == e.roles.len() {
                "yes".to_owned()
            } else if e.active_at_login.is_empty() {
                "NO".to_owned()
            } else {
                format!("only {}", e.active_at_login.join(","))
            };
            let pw = if e.password_expired {
                "expired".to_owned()
            } else {
                e.password_age_days
                    .map_or("-".to_owned(), |d| format!("{d} d"))
            };
            let role_col = if e.administrator && e.roles.is_empty() {
                "(administrator)".to_owned()
            } else {
                roles
            };
            [
                account,
                role_col,
                active,
                yn(e.own_prefix).to_owned(),
                pw,
                yn(e.locked).to_owned(),
                String::new(),
            ]
        })
        .collect();
    let head = [
        "ACCOUNT",
        "ROLES",
        "ACTIVE AT LOGIN",
        "OWN PREFIX",
        "PASSWORD AGE",
        "LOCKED",
    ];
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &table {
        for (i, w) in widths.iter_mut().enumerate() {
            *w = (*w).max(r[i].len());
        }
    }
    let mut s = String::new();
    let line = |cells: Vec<&str>, s: &mut String| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        let _ = writeln!(s, "{}", parts.join("  ").trim_end());
    };
    line(head.to_vec(), &mut s);
    for r in &table {
        line(r[..6].iter().map(String::as_str).collect(), &mut s);
    }
    output::print_out(&s)?;
    Ok(ExitStatus::Success)
}

/// `users audit --json`. Fields are only ever added.
#[derive(Debug, Serialize)]
struct AuditReport {
    /// No findings (exit 0).
    clean: bool,
    /// In fix order: roles first (their fix, `roles init`, comes before any
    /// account's), then accounts; each part by severity (`high`, `medium`,
    /// `low`), then subject.
    findings: Vec<FindingJson>,
    /// Checks that were not made, and why (e.g. a login that could lock an account).
    notes: Vec<String>,
}

#[derive(Debug, Serialize)]
struct FindingJson {
    /// Stable kebab-case name, e.g. `role-not-active`.
    kind: serde_json::Value,
    /// `high`, `medium` or `low`.
    severity: serde_json::Value,
    /// `role dj_user` or `'alice'@'%'`.
    subject: String,
    message: String,
    /// A command or SQL statement that fixes it.
    fix: String,
}

pub(super) fn audit(
    global: &GlobalOpts,
    policy: &Policy,
    ctx: &mut Ctx,
    args: &AuditArgs,
    service: Option<&audit::ServiceAccount>,
) -> anyhow::Result<ExitStatus> {
    let scope = Scope {
        users: args.names.clone(),
    };
    let mut notes = Vec::new();
    let mut accepted: BTreeSet<Account> = BTreeSet::new();
    if !args.no_login_check && !policy.temp_passwords.is_empty() {
        let session = ctx
            .session
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("no connection"))?;
        let client: Option<String> = session
            .conn()
            .query_first("SELECT SUBSTRING_INDEX(USER(), '@', -1)")
            .map_err(|e| DbError::query("reading USER()", e))?;
        let (candidates, skipped) =
            audit::login_candidates(policy, &ctx.live, &scope, client.as_deref().unwrap_or(""));
        notes.extend(skipped);
        if let Some(resolved) = &ctx.resolved {
            let passwords: Vec<Secret> = policy
                .temp_passwords
                .iter()
                .map(|p| Secret::new(p.clone()))
                .collect();
            for (a, r) in spyglass_privileges::login::check_passwords(
                &resolved.options,
                &candidates,
                &passwords,
                4,
            ) {
                match r {
                    Ok(Some(_)) => {
                        accepted.insert(a);
                    }
                    Ok(None) => {}
                    Err(e) => notes.push(format!("{a}: temporary password not checked: {e}")),
                }
            }
        }
    }
    let findings = audit::audit(policy, &ctx.live, ctx.flavor, &scope, &accepted, service);
    let admins = audit::administrators(policy, &ctx.live);
    if !admins.is_empty() {
        notes.push(format!(
            "server administrators (no lab role; outside the role checks): {}",
            admins
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let status = if findings.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Findings
    };
    if global.json {
        output::print_json(&AuditReport {
            clean: findings.is_empty(),
            findings: findings
                .iter()
                .map(|f| FindingJson {
                    kind: serde_json::to_value(f.kind).unwrap_or_default(),
                    severity: serde_json::to_value(f.severity).unwrap_or_default(),
                    subject: f.subject.clone(),
                    message: f.message.clone(),
                    fix: render_fix(&f.fix),
                })
                .collect(),
            notes,
        })?;
        return Ok(status);
    }
    let mut s = String::new();
    for f in &findings {
        let sev = serde_json::to_value(f.severity)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let kind = serde_json::to_value(f.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(s, "[{sev}] {kind}: {}", f.message);
        let _ = writeln!(s, "    fix: {}", render_fix(&f.fix));
    }
    if findings.is_empty() {
        let _ = writeln!(s, "audit: clean, no findings");
    } else {
        let _ = writeln!(s, "audit: {} finding(s)", findings.len());
    }
    output::print_out(&s)?;
    if !global.quiet {
        for n in &notes {
            eprintln!("note: {n}");
        }
    }
    Ok(status)
}

/// An account as a command argument: `alice` for `'alice'@'%'`, else `alice@host`.
fn name_arg(a: &Account) -> String {
    if a.host == "%" {
        a.user.clone()
    } else {
        format!("{}@{}", a.user, a.host)
    }
}

/// A finding's fix as the line to run: our own command, or the SQL.
pub(crate) fn render_fix(f: &Fix) -> String {
    match f {
        Fix::RolesInit => "spyglass-admin users roles init".into(),
        Fix::SetRole {
            account,
            role,
            runs,
        } => {
            let role = match role {
                RoleChoice::Key(k) => k.clone(),
                RoleChoice::Any => "<role>".into(),
                RoleChoice::OneOf(keys) => format!("<{}> (choose one)", keys.join("|")),
                _ => "<role>".into(),
            };
            let mut line = format!("spyglass-admin users set-role {} {role}", name_arg(account));
            if let Some(sql) = runs {
                let _ = write!(line, " (runs {sql})");
            }
            line
        }
        Fix::SetPassword { account, expire } => format!(
            "spyglass-admin users set-password {}{} (or users lock {})",
            name_arg(account),
            if *expire { " --expire" } else { "" },
            name_arg(account)
        ),
        Fix::OwnerSetsPassword { user } => {
            format!("ask {user} to run: spyglass-admin users set-password")
        }
        Fix::AddBackupUser { account } => format!(
            "spyglass-admin users add-backup-user {}@{}",
            account.user, account.host
        ),
        Fix::Sql { statement } => statement.clone(),
        Fix::ChooseReadScope => "set read_scope = \"lab\" in [users] of spyglass-admin.toml, then spyglass-admin users roles init (members then read only the shared prefixes and the members' own prefixes); or read_scope = \"all\" to keep it knowingly".into(),
        _ => "see the message above".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines are what `users audit` printed when the library built them,
    /// and what the server tests run (`run_fix`).
    #[test]
    fn fixes_render_as_the_command_lines_they_were() {
        let alice = Account::new("alice", "%");
        let bob = Account::new("bob", "10.0.0.%");
        let cases = [
            (Fix::RolesInit, "spyglass-admin users roles init"),
            (
                Fix::SetRole { account: alice.clone(), role: RoleChoice::Key("collab".into()), runs: None },
                "spyglass-admin users set-role alice collab",
            ),
            (
                Fix::SetRole { account: bob.clone(), role: RoleChoice::Any, runs: None },
                "spyglass-admin users set-role bob@10.0.0.% <role>",
            ),
            (
                Fix::SetRole {
                    account: alice.clone(),
                    role: RoleChoice::OneOf(vec!["admin".into(), "dj_analyst".into()]),
                    runs: None,
                },
                "spyglass-admin users set-role alice <admin|dj_analyst> (choose one)",
            ),
            (
                Fix::SetRole {
                    account: alice.clone(),
                    role: RoleChoice::Key("guest".into()),
                    runs: Some("SET DEFAULT ROLE `dj_guest` FOR 'alice'@'%'".into()),
                },
                "spyglass-admin users set-role alice guest (runs SET DEFAULT ROLE `dj_guest` FOR 'alice'@'%')",
            ),
            (
                Fix::SetPassword { account: alice.clone(), expire: false },
                "spyglass-admin users set-password alice (or users lock alice)",
            ),
            (
                Fix::SetPassword { account: bob.clone(), expire: true },
                "spyglass-admin users set-password bob@10.0.0.% --expire (or users lock bob@10.0.0.%)",
            ),
            (
                Fix::OwnerSetsPassword { user: "alice".into() },
                "ask alice to run: spyglass-admin users set-password",
            ),
            (
                Fix::AddBackupUser { account: Account::new("bk", "%") },
                "spyglass-admin users add-backup-user bk@%",
            ),
            (
                Fix::Sql { statement: "DROP USER ''@'localhost'".into() },
                "DROP USER ''@'localhost'",
            ),
        ];
        for (fix, want) in cases {
            assert_eq!(render_fix(&fix), want);
        }
        assert!(
            render_fix(&Fix::ChooseReadScope).starts_with("set read_scope = \"lab\" in [users]")
        );
    }
}
