//! Drift and hygiene findings: pure, from the policy and the live state
//! (plus the outcome of the temporary-password logins, which the caller
//! runs with [`crate::login::check_passwords`] on [`login_candidates`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use spyglass_db::Flavor;

use crate::live::{LiveAccount, LiveState};
use crate::model::{Account, Grantee, PrivilegeSet, SchemaPattern};
use crate::plan::role_steps;
use crate::policy::Policy;
use crate::sql::{Reveal, Step};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Anyone could get in, or a role does not work.
    High,
    /// Privileges differ from the policy.
    Medium,
    /// Hygiene.
    Low,
}

/// What kind of finding (stable names, used in `--json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A role of the policy does not exist.
    RoleMissing,
    /// A role's grants differ from the policy.
    RoleGrantsDiffer,
    /// An account holds privileges directly beyond its role and own prefix.
    DirectGrants,
    /// An account holds none of the policy's roles.
    NoRole,
    /// An account holds more than one of the policy's roles.
    SeveralRoles,
    /// A role is granted but not active at login.
    RoleNotActive,
    /// The account lacks ALL on its own prefix.
    OwnPrefixMissing,
    /// The account accepts a well-known temporary password.
    TemporaryPassword,
    /// An account with an empty user name.
    AnonymousAccount,
    /// An account that needs no password.
    NoPassword,
    /// The first (expired) password was never replaced.
    PasswordNeverChanged,
    /// An account with a lab role also holds CREATE USER, GRANT OPTION or
    /// SUPER: it can give itself or anyone anything.
    AdministratorPrivileges,
    /// Roles that read every schema let their members read `mysql.*`,
    /// password hashes included (Spyglass's default).
    SystemSchemaReadable,
    /// The dedicated backup account lacks or exceeds what the enabled
    /// backup features need.
    BackupAccountPrivileges,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Kind.
    pub kind: Kind,
    /// Severity.
    pub severity: Severity,
    /// The role or account concerned, e.g. `role dj_user` or `'alice'@'%'`.
    pub subject: String,
    /// What is wrong.
    pub message: String,
    /// What to run to fix it.
    pub fix: Fix,
}

/// What to run to fix a finding: which command with which arguments, or
/// which SQL statement. The library says what; the caller renders it (the
/// CLI as its own command line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Fix {
    /// Apply the policy's roles again (`users roles init`).
    RolesInit,
    /// Give `account` exactly `role` (`users set-role`).
    SetRole {
        /// Who.
        account: Account,
        /// Which role.
        role: RoleChoice,
        /// The statement it runs, when only that is missing (redacted SQL).
        runs: Option<String>,
    },
    /// Give `account` a new password, or lock it (`users set-password`,
    /// `users lock`); `expire`: the new one must be changed at first login.
    SetPassword {
        /// Who.
        account: Account,
        /// Expire the new password.
        expire: bool,
    },
    /// The account's owner replaces their first password themselves
    /// (`users set-password`, run as them).
    OwnerSetsPassword {
        /// The user name, to ask.
        user: String,
    },
    /// Give the backup account exactly what it needs (`users add-backup-user`).
    AddBackupUser {
        /// The backup account.
        account: Account,
    },
    /// Run this statement as an administrator (passwords redacted).
    Sql {
        /// The statement.
        statement: String,
    },
    /// Choose `read_scope` under `[users]` in the settings, then apply the roles.
    ChooseReadScope,
}

/// The role a [`Fix::SetRole`] gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RoleChoice {
    /// This policy role key.
    Key(String),
    /// Not known: the admin picks one of the policy's roles.
    Any,
    /// One of these keys, the admin chooses.
    OneOf(Vec<String>),
}

impl Fix {
    fn sql(statement: String) -> Fix {
        Fix::Sql { statement }
    }
}

/// Which accounts to audit.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only these user names (all when empty). Roles and anonymous accounts
    /// are always checked.
    pub users: Vec<String>,
}

impl Scope {
    fn includes(&self, policy: &Policy, a: &LiveAccount) -> bool {
        if a.is_system() {
            return false;
        }
        let key = format!("{}@{}", a.account.user, a.account.host);
        if policy
            .audit_ignore
            .iter()
            .any(|i| *i == key || *i == a.account.user)
        {
            return false;
        }
        // Anonymous accounts shadow everyone's logins: always in scope.
        self.users.is_empty() || a.account.user.is_empty() || self.users.contains(&a.account.user)
    }
}

/// The accounts whose temporary password may be tried, and why others are
/// not. An account is tried only when one failed attempt cannot lock it
/// (no MySQL `FAILED_LOGIN_ATTEMPTS`, no MariaDB `max_password_errors`),
/// it is not locked, and its host part matches `client_host` (where we
/// connect from) or is `%`.
pub fn login_candidates(
    policy: &Policy,
    live: &LiveState,
    scope: &Scope,
    client_host: &str,
) -> (Vec<Account>, Vec<String>) {
    let mut ok = Vec::new();
    let mut skipped = Vec::new();
    if policy.temp_passwords.is_empty() {
        return (ok, skipped);
    }
    let mariadb_limit = live
        .max_password_errors
        .filter(|n| *n < u64::from(u32::MAX));
    for a in live.accounts.values().filter(|a| scope.includes(policy, a)) {
        if a.locked || a.account.user.is_empty() || !a.has_password {
            continue;
        }
        if a.failed_login_attempts > 0 {
            skipped.push(format!(
                "{}: not tried with the temporary password, it locks after {} failed logins",
                a.account, a.failed_login_attempts
            ));
        } else if let Some(n) = mariadb_limit {
            skipped.push(format!(
                "{}: not tried with the temporary password, max_password_errors = {n} could block it",
                a.account
            ));
        } else if a.account.host != "%" && !same_machine(&a.account.host, client_host) {
            skipped.push(format!(
                "{}: not tried with the temporary password, its host does not match this machine ({client_host})",
                a.account
            ));
        } else {
            ok.push(a.account.clone());
        }
    }
    (ok, skipped)
}

/// Whether an account's host part names the machine we connect from:
/// the same text, or both a name of the loopback interface (`localhost`,
/// `127.0.0.1` and the rest of 127.0.0.0/8, `::1`): the server reports a
/// local TCP client as `localhost`, while an account may be `'bob'@'127.0.0.1'`.
pub fn same_machine(account_host: &str, client_host: &str) -> bool {
    fn loopback(h: &str) -> bool {
        let h = h.trim_start_matches('[').trim_end_matches(']');
        h.eq_ignore_ascii_case("localhost")
            || h.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
    account_host.eq_ignore_ascii_case(client_host)
        || (loopback(account_host) && loopback(client_host))
}

fn sev(kind: Kind) -> Severity {
    match kind {
        Kind::RoleMissing
        | Kind::RoleNotActive
        | Kind::TemporaryPassword
        | Kind::AnonymousAccount
        | Kind::NoPassword
        | Kind::AdministratorPrivileges => Severity::High,
        Kind::RoleGrantsDiffer
        | Kind::DirectGrants
        | Kind::NoRole
        | Kind::SeveralRoles
        | Kind::SystemSchemaReadable
        | Kind::BackupAccountPrivileges => Severity::Medium,
        Kind::OwnPrefixMissing | Kind::PasswordNeverChanged => Severity::Low,
    }
}

/// The role an account with several of the policy's roles is meant to have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intended {
    /// Only built-in roles: the least privileged of them (guest < collab <
    /// user < admin), never a promotion.
    Least(String),
    /// Custom roles are involved: no order is known, the admin chooses.
    Choices(Vec<String>),
}

const BUILT_IN_ORDER: [&str; 4] = ["guest", "collab", "user", "admin"];

/// For an account holding several roles (`held`: server names), which one
/// to fix it to.
pub fn intended_role(policy: &Policy, held: &BTreeSet<String>) -> Intended {
    let keys: Vec<&str> = held
        .iter()
        .filter_map(|r| policy.role(r))
        .map(|r| r.key.as_str())
        .collect();
    if keys.iter().all(|k| BUILT_IN_ORDER.contains(k)) {
        if let Some(k) = BUILT_IN_ORDER.iter().find(|k| keys.contains(k)) {
            return Intended::Least((*k).to_owned());
        }
    }
    Intended::Choices(keys.iter().map(|k| (*k).to_owned()).collect())
}

/// Accounts outside the lab's role scheme that may administer the server:
/// CREATE USER, GRANT OPTION or SUPER, and none of the policy's roles.
pub fn administrators(policy: &Policy, live: &LiveState) -> Vec<Account> {
    live.accounts
        .values()
        .filter(|a| !a.is_system() && a.is_administrator() && !holds_lab_role(policy, live, a))
        .map(|a| a.account.clone())
        .collect()
}

fn holds_lab_role(policy: &Policy, live: &LiveState, a: &LiveAccount) -> bool {
    let managed = policy.role_names();
    live.members
        .get(&a.account)
        .is_some_and(|m| m.iter().any(|r| managed.contains(r)))
}

/// The dedicated backup account named in the settings, with the global
/// privileges it holds (from `SHOW GRANTS`, which sees every privilege on
/// both flavors) and those the enabled backup features need.
#[derive(Debug, Clone)]
pub struct ServiceAccount {
    /// Who.
    pub account: Account,
    /// Global privileges held; `None` when the account does not exist.
    pub held: Option<BTreeSet<String>>,
    /// What the enabled features need ([`crate::plan::backup_account_privileges`]).
    pub needs: Vec<String>,
    /// The schema grants the enabled nightly steps need (the restore
    /// drill's scratch schemas, the schemas `cleanup apply` acts on): held,
    /// they are no drift; missing, a finding.
    pub schema_needs: Vec<crate::plan::SchemaNeed>,
}

/// Findings for the backup account: what it lacks or holds beyond its needs.
pub fn service_findings(s: &ServiceAccount) -> Vec<Finding> {
    let subject = s.account.to_string();
    let fix = Fix::AddBackupUser {
        account: s.account.clone(),
    };
    let Some(held) = &s.held else {
        return vec![finding(
            Kind::BackupAccountPrivileges,
            subject,
            format!(
                "the backup account {} named in the settings does not exist",
                s.account
            ),
            fix,
        )];
    };
    let same = |p: &str, q: &str| {
        p == q
            || matches!(
                (p, q),
                ("BINLOG MONITOR", "REPLICATION CLIENT") | ("REPLICATION CLIENT", "BINLOG MONITOR")
            )
    };
    let missing: Vec<&str> = s
        .needs
        .iter()
        .filter(|n| !held.iter().any(|h| same(h, n)) && !held.contains("ALL PRIVILEGES"))
        .map(String::as_str)
        .collect();
    let extra: Vec<&str> = held
        .iter()
        .filter(|h| *h != "USAGE" && !s.needs.iter().any(|n| same(h, n)))
        .map(String::as_str)
        .collect();
    let mut out = Vec::new();
    if !missing.is_empty() {
        out.push(finding(
            Kind::BackupAccountPrivileges,
            &subject,
            format!(
                "the backup account {} lacks {} (needed by the enabled backup features)",
                s.account,
                missing.join(", ")
            ),
            fix.clone(),
        ));
    }
    if !extra.is_empty() {
        out.push(finding(
            Kind::BackupAccountPrivileges,
            &subject,
            format!(
                "the backup account {} holds {} beyond what the enabled backup features need",
                s.account,
                extra.join(", ")
            ),
            fix,
        ));
    }
    out
}

fn finding(kind: Kind, subject: impl Into<String>, message: String, fix: Fix) -> Finding {
    Finding {
        kind,
        severity: sev(kind),
        subject: subject.into(),
        message,
        fix,
    }
}

/// A role's grant that differs from the policy, rated by what it breaks:
/// a missing grant means members cannot do what the policy gives them
/// (high); on MySQL a schema-level grant on `%` from a role hides the
/// members' own-prefix and shared-prefix grants (high: a dj_user cannot
/// create its own schema); other extra grants give more than the policy
/// (medium).
fn role_grant_severity(
    step: &Step,
    flavor: Flavor,
    held_on_all: Option<&BTreeSet<String>>,
) -> (Severity, &'static str) {
    match step {
        Step::GrantGlobal { privileges, .. }
            if held_on_all.is_some_and(|h| privileges.iter().all(|p| h.contains(p))) =>
        {
            (
                Severity::Medium,
                "members hold it on `%`.* instead (see the finding on `%`.*)",
            )
        }
        Step::Grant { .. } | Step::GrantGlobal { .. } => (
            Severity::High,
            "members cannot do what the policy gives them",
        ),
        Step::Revoke {
            on: SchemaPattern::All,
            privileges,
            ..
        } if flavor == Flavor::Mysql && *privileges != PrivilegeSet::All => (
            Severity::High,
            "on MySQL a role's grant on `%`.* hides its members' own-prefix and shared-prefix grants: they cannot create or write their schemas",
        ),
        _ => (Severity::Medium, "members can do more than the policy gives them"),
    }
}

/// Runs every check. `temp_accepted` lists the accounts that accepted a
/// temporary password (from the logins the caller made); `service` is the
/// dedicated backup account, if the settings name one (it is audited
/// against its needs, not as a lab member).
///
/// Findings come in fix order: the roles first (their fix, `roles init`,
/// must run before any account's `set-role`), then accounts; within each,
/// by severity and subject.
pub fn audit(
    policy: &Policy,
    live: &LiveState,
    flavor: Flavor,
    scope: &Scope,
    temp_accepted: &BTreeSet<Account>,
    service: Option<&ServiceAccount>,
) -> Vec<Finding> {
    let mut roles_out = Vec::new();
    for role in &policy.roles {
        let subject = format!("role {}", role.name);
        for step in role_steps(policy, live, role, flavor) {
            let on_all = live.role_schema.get(&role.name).and_then(|m| m.get("%"));
            let (sev, breaks) = role_grant_severity(&step, flavor, on_all);
            let (kind, message) = match &step {
                Step::CreateRole { .. } => (
                    Kind::RoleMissing,
                    format!("role {} does not exist", role.name),
                ),
                Step::Grant { privileges, on, .. } => (
                    Kind::RoleGrantsDiffer,
                    format!(
                        "role {} lacks {} on {}: {breaks}",
                        role.name,
                        privileges.sql(),
                        on.sql()
                    ),
                ),
                Step::Revoke { privileges, on, .. } => (
                    Kind::RoleGrantsDiffer,
                    format!(
                        "role {} holds {} on {} beyond the policy: {breaks}",
                        role.name,
                        privileges.sql(),
                        on.sql()
                    ),
                ),
                Step::GrantGlobal { privileges, .. } => (
                    Kind::RoleGrantsDiffer,
                    format!(
                        "role {} lacks {} on *.*: {breaks}",
                        role.name,
                        privileges.join(", ")
                    ),
                ),
                Step::RevokeGlobal { privileges, .. } => (
                    Kind::RoleGrantsDiffer,
                    format!(
                        "role {} holds {} on *.* beyond the policy: {breaks}",
                        role.name,
                        privileges.join(", ")
                    ),
                ),
                Step::RevokeObject { grant, .. } => (
                    Kind::RoleGrantsDiffer,
                    format!(
                        "role {} holds {} on {} beyond the policy (the policy grants nothing below schema level)",
                        role.name,
                        join(&grant.privileges),
                        grant.describe()
                    ),
                ),
                _ => continue,
            };
            let mut f = finding(kind, subject.clone(), message, Fix::RolesInit);
            if kind == Kind::RoleGrantsDiffer {
                f.severity = sev;
            }
            roles_out.push(f);
        }
    }
    if let Some(f) = system_schema_finding(policy, live, flavor) {
        roles_out.push(f);
    }

    let mut out = Vec::new();
    let managed = policy.role_names();
    for a in live.accounts.values().filter(|a| scope.includes(policy, a)) {
        let acc = &a.account;
        let subject = acc.to_string();
        if service.is_some_and(|s| s.account == *acc) {
            continue;
        }
        if acc.user.is_empty() {
            out.push(finding(
                Kind::AnonymousAccount,
                &subject,
                format!("anonymous account {acc} lets anyone connect, and it blocks named accounts: every login from host '{}' meant for a '%' account (e.g. 'alice'@'%') is taken by it and fails with \"Access denied\"", acc.host),
                Fix::sql(format!("DROP USER {}", acc.sql())),
            ));
            continue;
        }
        if !a.has_password && !a.locked {
            out.push(finding(
                Kind::NoPassword,
                &subject,
                format!("{acc} needs no password to log in"),
                Fix::SetPassword {
                    account: acc.clone(),
                    expire: false,
                },
            ));
        }
        if temp_accepted.contains(acc) {
            out.push(finding(
                Kind::TemporaryPassword,
                &subject,
                format!("{acc} still accepts a well-known temporary password"),
                Fix::SetPassword {
                    account: acc.clone(),
                    expire: true,
                },
            ));
        }
        if a.password_expired && !a.locked {
            out.push(finding(
                Kind::PasswordNeverChanged,
                &subject,
                format!("{acc} has never replaced its first password (it is still expired)"),
                Fix::OwnerSetsPassword {
                    user: acc.user.clone(),
                },
            ));
        }
        let held: BTreeSet<String> = live
            .members
            .get(acc)
            .map(|m| m.intersection(&managed).cloned().collect())
            .unwrap_or_default();
        if held.is_empty() && a.is_administrator() {
            // Server administrators (no lab role) are outside the lab's role scheme.
            continue;
        }
        let role = match held.len() {
            0 => {
                out.push(finding(
                    Kind::NoRole,
                    &subject,
                    format!("{acc} holds none of the roles {}", join(&managed)),
                    Fix::SetRole {
                        account: acc.clone(),
                        role: RoleChoice::Any,
                        runs: None,
                    },
                ));
                None
            }
            1 => held.iter().next().and_then(|r| policy.role(r)),
            _ => {
                let active = live.active_at_login(acc);
                let inactive: BTreeSet<String> = held.difference(&active).cloned().collect();
                let (why, fix) = match intended_role(policy, &held) {
                    Intended::Least(k) => (
                        format!("the least privileged of them is {k}; the fix keeps only that one (grant another with set-role only if {} should have it)", acc.user),
                        Fix::SetRole {
                            account: acc.clone(),
                            role: RoleChoice::Key(k),
                            runs: None,
                        },
                    ),
                    Intended::Choices(keys) => (
                        "custom roles are involved, so none is picked for you".to_owned(),
                        Fix::SetRole {
                            account: acc.clone(),
                            role: RoleChoice::OneOf(keys),
                            runs: None,
                        },
                    ),
                };
                out.push(finding(
                    Kind::SeveralRoles,
                    &subject,
                    format!(
                        "{acc} holds several roles: {}{}; its intended role is ambiguous: {why}",
                        join(&held),
                        if inactive.is_empty() {
                            String::new()
                        } else {
                            format!(" ({} not active at login)", join(&inactive))
                        }
                    ),
                    fix,
                ));
                None
            }
        };
        if held.len() == 1 {
            let active = live.active_at_login(acc);
            for r in &held {
                if !active.contains(r) {
                    let fix_sql = Step::SetDefaultRole {
                        role: r.clone(),
                        account: acc.clone(),
                    }
                    .sql(flavor, Reveal::Redacted);
                    let key = policy.role(r).map_or(r.as_str(), |d| d.key.as_str());
                    out.push(finding(
                        Kind::RoleNotActive,
                        &subject,
                        format!("{acc} holds {r} but it is not active at login (not a default role): its privileges do not apply until SET ROLE"),
                        Fix::SetRole {
                            account: acc.clone(),
                            role: RoleChoice::Key(key.to_owned()),
                            runs: Some(fix_sql),
                        },
                    ));
                }
            }
        }
        // Direct grants: everything but the own prefix (when the role has one).
        let own = SchemaPattern::Prefix(acc.user.clone()).stored();
        let own_expected = role.is_some_and(|r| r.own_prefix);
        let direct = live.direct_schema(acc);
        let mut extra: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (pat, privs) in &direct {
            if *pat == own && (own_expected || role.is_none()) {
                continue;
            }
            extra.insert(pat.clone(), privs.clone());
        }
        for (pat, privs) in extra {
            let revoke = Step::Revoke {
                privileges: PrivilegeSet::Some(privs.clone()),
                on: SchemaPattern::from_stored(&pat),
                from: Grantee::Account(acc.clone()),
            }
            .sql(flavor, Reveal::Redacted);
            out.push(finding(
                Kind::DirectGrants,
                &subject,
                format!(
                    "{acc} holds {} on {} directly, beyond its role and own prefix",
                    join(&privs),
                    SchemaPattern::from_stored(&pat).sql()
                ),
                Fix::sql(revoke),
            ));
        }
        let global: Vec<&String> = a.global.iter().filter(|p| *p != "USAGE").collect();
        if !global.is_empty() {
            let list = global
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let revoke = Fix::sql(format!("REVOKE {list} ON *.* FROM {}", acc.sql()));
            if a.is_administrator() {
                out.push(finding(
                    Kind::AdministratorPrivileges,
                    &subject,
                    format!(
                        "{acc} holds the lab role {} and also {list} on *.*: with CREATE USER, GRANT OPTION or SUPER it can give itself or anyone any privilege",
                        join(&held)
                    ),
                    revoke,
                ));
            } else {
                out.push(finding(
                    Kind::DirectGrants,
                    &subject,
                    format!("{acc} holds {list} on *.* directly"),
                    revoke,
                ));
            }
        }
        for g in live.account_objects.get(acc).into_iter().flatten() {
            out.push(finding(
                Kind::DirectGrants,
                &subject,
                format!(
                    "{acc} holds {} on {} directly (the policy grants nothing below schema level)",
                    join(&g.privileges),
                    g.describe()
                ),
                Fix::sql(
                    Step::RevokeObject {
                        grant: g.clone(),
                        from: Grantee::Account(acc.clone()),
                    }
                    .sql(flavor, Reveal::Redacted),
                ),
            ));
        }
        if own_expected {
            let have = direct.get(&own).cloned().unwrap_or_default();
            if !have.is_superset(&live.schema_all) {
                out.push(finding(
                    Kind::OwnPrefixMissing,
                    &subject,
                    format!(
                        "{acc} lacks ALL PRIVILEGES on its own prefix {}",
                        SchemaPattern::Prefix(acc.user.clone()).sql()
                    ),
                    Fix::SetRole {
                        account: acc.clone(),
                        role: role.map_or(RoleChoice::Any, |r| RoleChoice::Key(r.key.clone())),
                        runs: None,
                    },
                ));
            }
        }
    }
    if let Some(s) = service {
        out.extend(service_findings(s));
        let subject = s.account.to_string();
        let fix = Fix::AddBackupUser {
            account: s.account.clone(),
        };
        if let Some(roles) = live.members.get(&s.account).filter(|r| !r.is_empty()) {
            out.push(finding(
                Kind::BackupAccountPrivileges,
                &subject,
                format!(
                    "the backup account {} holds the roles {} (it needs none)",
                    s.account,
                    join(roles)
                ),
                fix.clone(),
            ));
        }
        // A missing schema grant only matters for an account that exists
        // (one that does not is a finding already).
        let exists = s.held.is_some();
        for step in crate::plan::backup_account_extras(live, &s.account, &s.schema_needs) {
            let sql = step.sql(flavor, Reveal::Redacted);
            let message = match &step {
                Step::Grant { .. } if !exists => continue,
                Step::Grant { .. } => format!(
                    "the backup account {} lacks what an enabled nightly step needs: {}",
                    s.account,
                    sql.replacen("GRANT", "", 1).trim()
                ),
                _ => format!(
                    "the backup account {} holds a grant it does not need: {}",
                    s.account,
                    sql.replacen("REVOKE", "", 1).trim()
                ),
            };
            out.push(finding(
                Kind::BackupAccountPrivileges,
                &subject,
                message,
                fix.clone(),
            ));
        }
    }
    let key = |f: &Finding| (f.severity, f.subject.clone(), f.kind);
    roles_out.sort_by_key(key);
    out.sort_by_key(key);
    roles_out.extend(out);
    roles_out
}

/// Spyglass's "SELECT on every schema" also covers `mysql`: every member
/// of such a role reads `mysql.user` / `mysql.global_priv`, password hashes
/// included. A finding unless the policy reads only the lab's schemas.
fn system_schema_finding(policy: &Policy, live: &LiveState, flavor: Flavor) -> Option<Finding> {
    if policy.read_scope_chosen && policy.read_scope == crate::policy::ReadScope::All {
        return None;
    }
    let readers: Vec<&str> = policy
        .roles
        .iter()
        .filter(|r| r.key != "admin" && live.roles.contains(&r.name))
        .filter(|r| {
            let held = live.role_schema.get(&r.name);
            let on_all = held
                .and_then(|m| m.get("%"))
                .is_some_and(|p| p.contains("SELECT"));
            let global = live
                .role_global
                .get(&r.name)
                .is_some_and(|p| p.contains("SELECT"));
            on_all || global
        })
        .map(|r| r.name.as_str())
        .collect();
    if readers.is_empty() {
        return None;
    }
    let hashes = match flavor {
        Flavor::Mysql => "mysql.user.authentication_string",
        Flavor::Mariadb => "mysql.global_priv",
    };
    Some(finding(
        Kind::SystemSchemaReadable,
        format!("role {}", readers.join(", role ")),
        format!(
            "{} read every schema, the mysql system schema included: every member (every dj_guest too) can read the password hashes in {hashes} and guess passwords offline (Spyglass's default policy)",
            readers.join(", ")
        ),
        Fix::ChooseReadScope,
    ))
}

fn join(s: &BTreeSet<String>) -> String {
    s.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{add_user, roles_init, NewPassword};

    fn account(user: &str) -> LiveAccount {
        LiveAccount {
            account: Account::new(user, "%"),
            locked: false,
            password_expired: false,
            password_last_changed: Some(1),
            has_password: true,
            plugin: "caching_sha2_password".into(),
            failed_login_attempts: 0,
            global: BTreeSet::new(),
        }
    }

    /// A live state where the roles and alice (a `user`) are exactly as the policy says.
    fn clean() -> (Policy, LiveState) {
        let mut policy = Policy::spyglass();
        policy.read_scope_chosen = true;
        let mut live = LiveState {
            schema_all: crate::model::SCHEMA_PRIVILEGES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ..Default::default()
        };
        for step in roles_init(&policy, &live, Flavor::Mariadb).steps {
            match step {
                Step::CreateRole { role } => {
                    live.roles.insert(role);
                }
                Step::Grant {
                    privileges,
                    on,
                    to: Grantee::Role(r),
                } => {
                    let set = privileges.expand(&live.schema_all);
                    live.role_schema
                        .entry(r)
                        .or_default()
                        .insert(on.stored(), set);
                }
                _ => {}
            }
        }
        let alice = Account::new("alice", "%");
        let mut make = |_: &Account| spyglass_db::Secret::new("x");
        let mut new = NewPassword {
            make: &mut make,
            expire: false,
        };
        let plan = add_user(&policy, &live, Flavor::Mariadb, &alice, "user", &mut new).unwrap();
        assert_eq!(plan.steps.len(), 4);
        live.accounts.insert(alice.clone(), account("alice"));
        live.members
            .insert(alice.clone(), BTreeSet::from(["dj_user".to_owned()]));
        live.default_roles
            .insert(alice.clone(), BTreeSet::from(["dj_user".to_owned()]));
        live.account_schema.insert(
            alice,
            BTreeMap::from([(r"alice\_%".to_owned(), live.schema_all.clone())]),
        );
        (policy, live)
    }

    fn kinds(f: &[Finding]) -> Vec<Kind> {
        f.iter().map(|f| f.kind).collect()
    }

    #[test]
    fn clean_state_has_no_findings() {
        let (policy, live) = clean();
        let f = audit(
            &policy,
            &live,
            Flavor::Mariadb,
            &Scope::default(),
            &BTreeSet::new(),
            None,
        );
        assert!(f.is_empty(), "{f:#?}");
    }

    #[test]
    fn each_kind_of_drift_is_found() {
        let alice = Account::new("alice", "%");
        type Plant = Box<dyn Fn(&mut LiveState)>;
        let cases: Vec<(Kind, Plant)> = vec![
            (
                Kind::RoleMissing,
                Box::new(|l| {
                    l.roles.remove("dj_collab");
                    l.role_schema.remove("dj_collab");
                }),
            ),
            (
                Kind::RoleGrantsDiffer,
                Box::new(|l| {
                    l.role_schema
                        .get_mut("dj_guest")
                        .unwrap()
                        .get_mut("%")
                        .unwrap()
                        .insert("INSERT".into());
                }),
            ),
            (
                Kind::RoleNotActive,
                Box::new(|l| {
                    l.default_roles.clear();
                }),
            ),
            (
                Kind::DirectGrants,
                Box::new(|l| {
                    l.account_schema
                        .get_mut(&Account::new("alice", "%"))
                        .unwrap()
                        .insert(r"lfp\_%".into(), BTreeSet::from(["DROP".to_owned()]));
                }),
            ),
            (
                Kind::NoRole,
                Box::new(|l| {
                    l.accounts.insert(Account::new("bob", "%"), account("bob"));
                }),
            ),
            (
                Kind::OwnPrefixMissing,
                Box::new(|l| {
                    l.account_schema.clear();
                }),
            ),
            (
                Kind::AnonymousAccount,
                Box::new(|l| {
                    l.accounts.insert(
                        Account::new("", "localhost"),
                        LiveAccount {
                            account: Account::new("", "localhost"),
                            ..account("")
                        },
                    );
                }),
            ),
            (
                Kind::NoPassword,
                Box::new(|l| {
                    l.accounts
                        .get_mut(&Account::new("alice", "%"))
                        .unwrap()
                        .has_password = false;
                }),
            ),
            (
                Kind::PasswordNeverChanged,
                Box::new(|l| {
                    l.accounts
                        .get_mut(&Account::new("alice", "%"))
                        .unwrap()
                        .password_expired = true;
                }),
            ),
        ];
        for (kind, plant) in cases {
            let (policy, mut live) = clean();
            plant(&mut live);
            let f = audit(
                &policy,
                &live,
                Flavor::Mariadb,
                &Scope::default(),
                &BTreeSet::new(),
                None,
            );
            assert!(kinds(&f).contains(&kind), "{kind:?}: {f:#?}");
            // Every finding says what to run, naming the account or the SQL.
            assert!(f.iter().all(|x| match &x.fix {
                Fix::Sql { statement } => !statement.is_empty(),
                Fix::SetRole { account, .. } | Fix::SetPassword { account, .. } => {
                    !account.user.is_empty()
                }
                _ => true,
            }));
        }
        let (policy, live) = clean();
        let f = audit(
            &policy,
            &live,
            Flavor::Mariadb,
            &Scope::default(),
            &BTreeSet::from([alice]),
            None,
        );
        assert_eq!(kinds(&f), [Kind::TemporaryPassword]);
        assert_eq!(f[0].severity, Severity::High);
    }

    #[test]
    fn scope_and_ignore_limit_accounts_not_roles() {
        let (mut policy, mut live) = clean();
        live.accounts
            .insert(Account::new("bob", "%"), account("bob"));
        let only_alice = Scope {
            users: vec!["alice".into()],
        };
        assert!(audit(
            &policy,
            &live,
            Flavor::Mariadb,
            &only_alice,
            &BTreeSet::new(),
            None,
        )
        .is_empty());
        policy.audit_ignore.push("bob@%".into());
        assert!(audit(
            &policy,
            &live,
            Flavor::Mariadb,
            &Scope::default(),
            &BTreeSet::new(),
            None,
        )
        .is_empty());
        live.accounts
            .get_mut(&Account::new("bob", "%"))
            .unwrap()
            .failed_login_attempts = 3;
        policy.audit_ignore.clear();
        let (ok, skipped) = login_candidates(&policy, &live, &Scope::default(), "127.0.0.1");
        assert_eq!(ok, [Account::new("alice", "%")]);
        assert!(skipped[0].contains("locks after 3"), "{skipped:?}");
    }

    #[test]
    fn the_loopback_names_are_all_this_machine() {
        for (account, client) in [
            ("127.0.0.1", "localhost"),
            ("::1", "localhost"),
            ("localhost", "127.0.0.1"),
            ("LOCALHOST", "localhost"),
            ("127.0.0.2", "::1"),
            ("10.0.0.5", "10.0.0.5"),
        ] {
            assert!(same_machine(account, client), "{account} vs {client}");
        }
        for (account, client) in [
            ("10.0.0.5", "localhost"),
            ("127.0.0.1", "10.0.0.5"),
            ("lab-nas", "localhost"),
        ] {
            assert!(!same_machine(account, client), "{account} vs {client}");
        }
    }

    fn run(policy: &Policy, live: &LiveState, flavor: Flavor) -> Vec<Finding> {
        audit(
            policy,
            live,
            flavor,
            &Scope::default(),
            &BTreeSet::new(),
            None,
        )
    }

    #[test]
    fn a_stray_admin_role_is_never_the_fix() {
        let (policy, mut live) = clean();
        let alice = Account::new("alice", "%");
        live.members.insert(
            alice.clone(),
            BTreeSet::from(["dj_collab".to_owned(), "dj_admin".to_owned()]),
        );
        live.default_roles
            .insert(alice.clone(), BTreeSet::from(["dj_collab".to_owned()]));
        for flavor in [Flavor::Mariadb, Flavor::Mysql] {
            let f = run(&policy, &live, flavor);
            let several: Vec<&Finding> =
                f.iter().filter(|x| x.kind == Kind::SeveralRoles).collect();
            assert_eq!(several.len(), 1, "{f:#?}");
            assert_eq!(
                several[0].fix,
                Fix::SetRole {
                    account: Account::new("alice", "%"),
                    role: RoleChoice::Key("collab".into()),
                    runs: None
                }
            );
            assert!(several[0].message.contains("ambiguous"), "{f:#?}");
            assert!(
                f.iter().all(|x| !matches!(&x.fix, Fix::SetRole { role: RoleChoice::Key(k), .. } if k == "admin" || k == "dj_admin")),
                "a fix promotes: {f:#?}"
            );
        }
        // With a custom role involved, no role is picked.
        let mut policy = policy;
        policy
            .apply(&crate::policy::PolicyConfig {
                roles: vec![crate::policy::CustomRoleConfig {
                    name: "dj_analyst".into(),
                    own_prefix: true,
                    grants: vec![],
                }],
                ..Default::default()
            })
            .unwrap();
        live.roles.insert("dj_analyst".into());
        live.members.insert(
            alice.clone(),
            BTreeSet::from(["dj_admin".to_owned(), "dj_analyst".to_owned()]),
        );
        let f = run(&policy, &live, Flavor::Mariadb);
        let fix = &f.iter().find(|x| x.kind == Kind::SeveralRoles).unwrap().fix;
        assert_eq!(
            fix,
            &Fix::SetRole {
                account: alice,
                role: RoleChoice::OneOf(vec!["admin".into(), "dj_analyst".into()]),
                runs: None
            }
        );
    }

    #[test]
    fn role_fixes_come_before_account_fixes_and_rate_what_breaks() {
        let (policy, mut live) = clean();
        // A Spyglass-made MySQL state: SELECT on `%`.* as a schema grant, no default role.
        for r in ["dj_guest", "dj_collab", "dj_user"] {
            live.role_global.remove(r);
            live.role_schema
                .get_mut(r)
                .unwrap()
                .insert("%".into(), BTreeSet::from(["SELECT".to_owned()]));
        }
        live.default_roles.clear();
        let mut mysql_live = live.clone();
        mysql_live.role_schema.values_mut().for_each(|m| {
            m.remove("%");
        });
        for r in ["dj_guest", "dj_collab", "dj_user"] {
            mysql_live
                .role_schema
                .get_mut(r)
                .unwrap()
                .insert("%".into(), BTreeSet::from(["SELECT".to_owned()]));
        }
        let f = run(&policy, &mysql_live, Flavor::Mysql);
        let first_account = f
            .iter()
            .position(|x| !x.subject.starts_with("role "))
            .unwrap();
        assert!(
            f[..first_account]
                .iter()
                .all(|x| x.fix == Fix::RolesInit || x.kind == Kind::SystemSchemaReadable),
            "{f:#?}"
        );
        assert!(
            f[first_account..]
                .iter()
                .all(|x| !x.subject.starts_with("role ")),
            "{f:#?}"
        );
        let hides = f
            .iter()
            .find(|x| x.kind == Kind::RoleGrantsDiffer && x.message.contains("hides"))
            .unwrap_or_else(|| panic!("{f:#?}"));
        assert_eq!(hides.severity, Severity::High);
    }

    #[test]
    fn admin_privileges_on_a_lab_member_are_high_and_not_an_administrator() {
        let (policy, mut live) = clean();
        let alice = Account::new("alice", "%");
        live.accounts
            .get_mut(&alice)
            .unwrap()
            .global
            .insert("CREATE USER".into());
        let f = run(&policy, &live, Flavor::Mariadb);
        let k = f
            .iter()
            .find(|x| x.kind == Kind::AdministratorPrivileges)
            .unwrap();
        assert_eq!(k.severity, Severity::High);
        assert!(
            matches!(&k.fix, Fix::Sql { statement } if statement.contains("REVOKE CREATE USER ON *.*")),
            "{k:?}"
        );
        assert!(administrators(&policy, &live).is_empty());
        let mut root = account("root");
        root.account = Account::new("root", "localhost");
        root.global.insert("SUPER".into());
        live.accounts.insert(root.account.clone(), root);
        assert_eq!(
            administrators(&policy, &live),
            [Account::new("root", "localhost")]
        );
    }

    #[test]
    fn reading_every_schema_is_a_finding_unless_chosen_or_scoped_to_the_lab() {
        let (mut policy, live) = clean();
        policy.read_scope_chosen = false;
        let f = run(&policy, &live, Flavor::Mariadb);
        assert_eq!(kinds(&f), [Kind::SystemSchemaReadable], "{f:#?}");
        assert!(f[0].message.contains("password hashes"));
        policy.read_scope = crate::policy::ReadScope::Lab;
        policy.read_scope_chosen = true;
        // The live roles still read `%`: that differs from the policy now, and is still true.
        let f = run(&policy, &live, Flavor::Mariadb);
        assert!(kinds(&f).contains(&Kind::RoleGrantsDiffer), "{f:#?}");
        assert!(kinds(&f).contains(&Kind::SystemSchemaReadable), "{f:#?}");
        assert!(
            f.iter()
                .any(|x| x.message.contains(r"SELECT on `alice\_%`.*")),
            "{f:#?}"
        );
    }

    #[test]
    fn object_grants_are_found_and_planned_away() {
        use crate::live::{ObjectGrant, ObjectKind};
        let (policy, mut live) = clean();
        let alice = Account::new("alice", "%");
        let grants = vec![
            ObjectGrant {
                kind: ObjectKind::Table,
                schema: "common_x".into(),
                name: "t".into(),
                column: None,
                privileges: BTreeSet::from(["DELETE".to_owned()]),
            },
            ObjectGrant {
                kind: ObjectKind::Column,
                schema: "common_x".into(),
                name: "t".into(),
                column: Some("c".into()),
                privileges: BTreeSet::from(["UPDATE".to_owned()]),
            },
            ObjectGrant {
                kind: ObjectKind::Procedure,
                schema: "common_x".into(),
                name: "p".into(),
                column: None,
                privileges: BTreeSet::from(["EXECUTE".to_owned()]),
            },
        ];
        live.account_objects.insert(alice.clone(), grants);
        let f = run(&policy, &live, Flavor::Mariadb);
        let fixes: Vec<&str> = f
            .iter()
            .filter(|x| x.kind == Kind::DirectGrants)
            .filter_map(|x| match &x.fix {
                Fix::Sql { statement } => Some(statement.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            fixes,
            [
                "REVOKE DELETE ON `common_x`.`t` FROM 'alice'@'%'",
                "REVOKE UPDATE (`c`) ON `common_x`.`t` FROM 'alice'@'%'",
                "REVOKE EXECUTE ON PROCEDURE `common_x`.`p` FROM 'alice'@'%'",
            ]
        );
        let plan = crate::plan::set_role(&policy, &live, Flavor::Mariadb, &alice, "user").unwrap();
        let sql: Vec<String> = plan
            .steps
            .iter()
            .map(|s| s.sql(Flavor::Mariadb, Reveal::Redacted))
            .collect();
        for fix in fixes {
            assert!(sql.iter().any(|s| s == fix), "{sql:?}");
        }
    }
}
