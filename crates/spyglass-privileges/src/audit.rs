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
    pub fix: String,
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
        } else if a.account.host != "%" && a.account.host != client_host {
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

fn sev(kind: Kind) -> Severity {
    match kind {
        Kind::RoleMissing
        | Kind::RoleNotActive
        | Kind::TemporaryPassword
        | Kind::AnonymousAccount
        | Kind::NoPassword => Severity::High,
        Kind::RoleGrantsDiffer | Kind::DirectGrants | Kind::NoRole => Severity::Medium,
        Kind::SeveralRoles | Kind::OwnPrefixMissing | Kind::PasswordNeverChanged => Severity::Low,
    }
}

fn finding(kind: Kind, subject: impl Into<String>, message: String, fix: String) -> Finding {
    Finding {
        kind,
        severity: sev(kind),
        subject: subject.into(),
        message,
        fix,
    }
}

fn name_arg(a: &Account) -> String {
    if a.host == "%" {
        a.user.clone()
    } else {
        format!("{}@{}", a.user, a.host)
    }
}

/// Runs every check. `temp_accepted` lists the accounts that accepted a
/// temporary password (from the logins the caller made).
pub fn audit(
    policy: &Policy,
    live: &LiveState,
    flavor: Flavor,
    scope: &Scope,
    temp_accepted: &BTreeSet<Account>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for role in &policy.roles {
        let subject = format!("role {}", role.name);
        for step in role_steps(policy, live, role, flavor) {
            let (kind, message) = match &step {
                Step::CreateRole { .. } => (
                    Kind::RoleMissing,
                    format!("role {} does not exist", role.name),
                ),
                Step::Grant { privileges, on, .. } => (
                    Kind::RoleGrantsDiffer,
                    format!(
                        "role {} lacks {} on {}",
                        role.name,
                        privileges.sql(),
                        on.sql()
                    ),
                ),
                Step::Revoke { privileges, on, .. } => (
                    Kind::RoleGrantsDiffer,
                    format!(
                        "role {} holds {} on {} beyond the policy",
                        role.name,
                        privileges.sql(),
                        on.sql()
                    ),
                ),
                Step::GrantGlobal { privileges, .. } => (
                    Kind::RoleGrantsDiffer,
                    format!("role {} lacks {} on *.*", role.name, privileges.join(", ")),
                ),
                Step::RevokeGlobal { privileges, .. } => (
                    Kind::RoleGrantsDiffer,
                    format!(
                        "role {} holds {} on *.* beyond the policy",
                        role.name,
                        privileges.join(", ")
                    ),
                ),
                _ => continue,
            };
            out.push(finding(
                kind,
                subject.clone(),
                message,
                "spyglass-admin users roles init".into(),
            ));
        }
    }

    let managed = policy.role_names();
    for a in live.accounts.values().filter(|a| scope.includes(policy, a)) {
        let acc = &a.account;
        let subject = acc.to_string();
        if acc.user.is_empty() {
            out.push(finding(
                Kind::AnonymousAccount,
                &subject,
                format!("anonymous account {acc} lets anyone connect (and shadows named accounts from that host)"),
                format!("DROP USER {}", acc.sql()),
            ));
            continue;
        }
        if !a.has_password && !a.locked {
            out.push(finding(
                Kind::NoPassword,
                &subject,
                format!("{acc} needs no password to log in"),
                format!(
                    "spyglass-admin users set-password {} (or users lock {})",
                    name_arg(acc),
                    name_arg(acc)
                ),
            ));
        }
        if temp_accepted.contains(acc) {
            out.push(finding(
                Kind::TemporaryPassword,
                &subject,
                format!("{acc} still accepts a well-known temporary password"),
                format!(
                    "spyglass-admin users set-password {} --expire (or users lock {})",
                    name_arg(acc),
                    name_arg(acc)
                ),
            ));
        }
        if a.password_expired && !a.locked {
            out.push(finding(
                Kind::PasswordNeverChanged,
                &subject,
                format!("{acc} has never replaced its first password (it is still expired)"),
                format!("ask {} to run: spyglass-admin users set-password", acc.user),
            ));
        }
        if a.is_administrator() {
            // Server administrators are outside the lab's role scheme.
            continue;
        }
        let held: BTreeSet<String> = live
            .members
            .get(acc)
            .map(|m| m.intersection(&managed).cloned().collect())
            .unwrap_or_default();
        let role = match held.len() {
            0 => {
                out.push(finding(
                    Kind::NoRole,
                    &subject,
                    format!("{acc} holds none of the roles {}", join(&managed)),
                    format!("spyglass-admin users set-role {} <role>", name_arg(acc)),
                ));
                None
            }
            1 => held.iter().next().and_then(|r| policy.role(r)),
            _ => {
                out.push(finding(
                    Kind::SeveralRoles,
                    &subject,
                    format!("{acc} holds several roles: {}", join(&held)),
                    format!("spyglass-admin users set-role {} <role>", name_arg(acc)),
                ));
                None
            }
        };
        let active = live.active_at_login(acc);
        for r in &held {
            if !active.contains(r) {
                let fix_sql = Step::SetDefaultRole {
                    role: r.clone(),
                    account: acc.clone(),
                }
                .sql(flavor, Reveal::Redacted);
                out.push(finding(
                    Kind::RoleNotActive,
                    &subject,
                    format!("{acc} holds {r} but it is not active at login (not a default role): its privileges do not apply until SET ROLE"),
                    format!("spyglass-admin users set-role {} {} (runs {fix_sql})", name_arg(acc), r),
                ));
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
                revoke,
            ));
        }
        let global: Vec<&String> = a.global.iter().filter(|p| *p != "USAGE").collect();
        if !global.is_empty() {
            out.push(finding(
                Kind::DirectGrants,
                &subject,
                format!(
                    "{acc} holds {} on *.* directly",
                    global
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                format!(
                    "REVOKE {} ON *.* FROM {}",
                    global
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    acc.sql()
                ),
            ));
        }
        if let Some(tables) = live.account_tables.get(acc) {
            for (db, t) in tables {
                out.push(finding(
                    Kind::DirectGrants,
                    &subject,
                    format!(
                        "{acc} holds table privileges on {} directly",
                        spyglass_db::quote::qualified(db, t)
                    ),
                    format!(
                        "REVOKE ALL PRIVILEGES ON {} FROM {}",
                        spyglass_db::quote::qualified(db, t),
                        acc.sql()
                    ),
                ));
            }
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
                    format!(
                        "spyglass-admin users set-role {} {}",
                        name_arg(acc),
                        role.map_or("<role>", |r| r.key.as_str())
                    ),
                ));
            }
        }
    }
    out.sort_by(|a, b| (a.severity, &a.subject, a.kind).cmp(&(b.severity, &b.subject, b.kind)));
    out
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
        let policy = Policy::spyglass();
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
            );
            assert!(kinds(&f).contains(&kind), "{kind:?}: {f:#?}");
            assert!(f.iter().all(|x| !x.fix.is_empty()));
        }
        let (policy, live) = clean();
        let f = audit(
            &policy,
            &live,
            Flavor::Mariadb,
            &Scope::default(),
            &BTreeSet::from([alice]),
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
            &BTreeSet::new()
        )
        .is_empty());
        policy.audit_ignore.push("bob@%".into());
        assert!(audit(
            &policy,
            &live,
            Flavor::Mariadb,
            &Scope::default(),
            &BTreeSet::new()
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
}
