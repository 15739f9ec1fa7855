//! Desired state vs live state -> an ordered list of [`Step`]s. Pure: the
//! live state comes in as a [`LiveState`], nothing is read or run here.
//!
//! Every planner only emits what differs, so applying a plan and planning
//! again gives an empty plan (idempotence).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use spyglass_db::{Flavor, Secret};

use crate::capability::{self, Family};
use crate::live::LiveState;
use crate::model::{validate_prefix, Account, Grantee, PrivilegeSet, SchemaPattern};
use crate::policy::{Policy, PolicyConfig, ReadScope, RoleDef, Target};
use crate::sql::Step;
use crate::Error;

/// What `ALL PRIVILEGES` on a schema means on a server of `flavor` (MariaDB
/// adds `DELETE HISTORY`), for planning without a server.
pub fn schema_all(flavor: Flavor) -> BTreeSet<String> {
    crate::model::SCHEMA_PRIVILEGES
        .iter()
        .filter(|p| flavor == Flavor::Mariadb || **p != "DELETE HISTORY")
        .map(|s| s.to_string())
        .collect()
}

/// The server an offline plan (`users sql --flavor F ...`) is made against:
/// no accounts, and the policy's roles as `roles init` leaves them, so
/// planning `roles init` prints everything and planning `add` prints what
/// adding a user to a set-up server runs.
pub fn offline_state(policy: &Policy, flavor: Flavor) -> LiveState {
    let mut live = LiveState {
        schema_all: schema_all(flavor),
        ..LiveState::default()
    };
    for role in &policy.roles {
        live.roles.insert(role.name.clone());
        let (schema, global) = split_for_flavor(policy.role_grants(role, &BTreeSet::new()), flavor);
        live.role_schema.insert(
            role.name.clone(),
            schema
                .into_iter()
                .map(|(p, s)| (p.stored(), s.expand(&live.schema_all)))
                .collect(),
        );
        if !global.is_empty() {
            live.role_global.insert(role.name.clone(), global);
        }
    }
    live
}

/// A plan: statements in order, and the passwords of accounts it creates
/// (to show once).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Statements, in order.
    pub steps: Vec<Step>,
    /// New accounts and their first passwords.
    pub new_passwords: Vec<(Account, Secret)>,
}

impl Plan {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// How a planner gets the first password of an account it has to create.
pub struct NewPassword<'a> {
    /// Called once per new account.
    pub make: &'a mut dyn FnMut(&Account) -> Secret,
    /// Add `PASSWORD EXPIRE`.
    pub expire: bool,
}

impl std::fmt::Debug for NewPassword<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewPassword")
            .field("expire", &self.expire)
            .finish_non_exhaustive()
    }
}

/// Prefixes the server's roles already hold exactly as their `shared`
/// grants prescribe, beyond the policy's list: modules added with
/// `add-module`. They count as shared, so `roles init` keeps them.
pub fn modules_on_server(policy: &Policy, live: &LiveState) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for role in &policy.roles {
        let Some(held) = live.role_schema.get(&role.name) else {
            continue;
        };
        for g in role.grants.iter().filter(|g| g.on == Target::Shared) {
            let want = g.privileges.expand(&live.schema_all);
            for (stored, have) in held {
                if let SchemaPattern::Prefix(p) = SchemaPattern::from_stored(stored) {
                    if *have == want && !policy.shared_prefixes.contains(&p) {
                        out.insert(p);
                    }
                }
            }
        }
    }
    out
}

/// Grants and revokes that turn `have` into `want` for one grantee.
fn diff_schema(
    grantee: &Grantee,
    want: &BTreeMap<String, BTreeSet<String>>,
    have: &BTreeMap<String, BTreeSet<String>>,
    schema_all: &BTreeSet<String>,
    out: &mut Vec<Step>,
) {
    for (stored, w) in want {
        let h = have.get(stored).cloned().unwrap_or_default();
        let missing: BTreeSet<String> = w.difference(&h).cloned().collect();
        if missing.is_empty() {
            continue;
        }
        let privileges = if h.is_empty() && *w == *schema_all {
            PrivilegeSet::All
        } else {
            PrivilegeSet::Some(missing)
        };
        out.push(Step::Grant {
            privileges,
            on: SchemaPattern::from_stored(stored),
            to: grantee.clone(),
        });
    }
    for (stored, h) in have {
        let w = want.get(stored).cloned().unwrap_or_default();
        let extra: BTreeSet<String> = h.difference(&w).cloned().collect();
        if extra.is_empty() {
            continue;
        }
        let privileges = if w.is_empty() && extra.is_superset(schema_all) {
            PrivilegeSet::All
        } else {
            PrivilegeSet::Some(extra)
        };
        out.push(Step::Revoke {
            privileges,
            on: SchemaPattern::from_stored(stored),
            from: grantee.clone(),
        });
    }
}

fn expand(
    grants: Vec<(SchemaPattern, PrivilegeSet)>,
    schema_all: &BTreeSet<String>,
) -> BTreeMap<String, BTreeSet<String>> {
    grants
        .into_iter()
        .map(|(p, s)| (p.stored(), s.expand(schema_all)))
        .collect()
}

/// Splits a role's grants into schema-level ones and global ones for `flavor`.
///
/// On MySQL, grants on every schema other than ALL go to `*.*`: MySQL does
/// not merge the privileges of several schema patterns that match the same
/// schema when they come from roles (it uses one of them), so `SELECT` on
/// `` `%`.* `` from `dj_user` hides its `ALL` on `` `lfp\_%`.* ``, and a
/// collab's own `ALL` on `` `name\_%`.* `` (verified on MySQL 9.7 by the
/// server tests). Global privileges always add to schema ones. MariaDB
/// merges them, so it keeps Spyglass's `` `%`.* ``.
pub fn split_for_flavor(
    grants: Vec<(SchemaPattern, PrivilegeSet)>,
    flavor: Flavor,
) -> (Vec<(SchemaPattern, PrivilegeSet)>, BTreeSet<String>) {
    let mut global = BTreeSet::new();
    let mut schema = Vec::new();
    for (pattern, privileges) in grants {
        match (&pattern, &privileges, flavor) {
            (SchemaPattern::All, PrivilegeSet::Some(set), Flavor::Mysql) => {
                global.extend(set.iter().cloned());
            }
            _ => schema.push((pattern, privileges)),
        }
    }
    (schema, global)
}

/// User names of the accounts holding a role of the policy that gives an
/// own prefix: whose schemas [`ReadScope::Lab`] roles read.
pub fn lab_members(policy: &Policy, live: &LiveState) -> BTreeSet<String> {
    let own: BTreeSet<&str> = policy
        .roles
        .iter()
        .filter(|r| r.own_prefix)
        .map(|r| r.name.as_str())
        .collect();
    live.members
        .iter()
        .filter(|(a, roles)| !a.user.is_empty() && roles.iter().any(|r| own.contains(r.as_str())))
        .map(|(a, _)| a.user.clone())
        .collect()
}

/// The steps that make one role match the policy.
pub fn role_steps(policy: &Policy, live: &LiveState, role: &RoleDef, flavor: Flavor) -> Vec<Step> {
    role_steps_with(policy, live, role, flavor, &lab_members(policy, live))
}

/// With [`ReadScope::Lab`], the grants that let the read roles read a new
/// member's own prefix (`user\_%`), which [`user_steps`] adds when it gives
/// `account` a role with an own prefix.
fn member_read_steps(
    policy: &Policy,
    live: &LiveState,
    flavor: Flavor,
    user: &str,
    already: &[Step],
) -> Vec<Step> {
    if policy.read_scope != ReadScope::Lab {
        return Vec::new();
    }
    let mut members = lab_members(policy, live);
    if !members.insert(user.to_owned()) {
        return Vec::new();
    }
    let own = SchemaPattern::Prefix(user.to_owned());
    policy
        .roles
        .iter()
        .flat_map(|r| role_steps_with(policy, live, r, flavor, &members))
        .filter(|s| matches!(s, Step::Grant { on, .. } if *on == own))
        .filter(|s| !already.contains(s))
        .collect()
}

fn role_steps_with(
    policy: &Policy,
    live: &LiveState,
    role: &RoleDef,
    flavor: Flavor,
    members: &BTreeSet<String>,
) -> Vec<Step> {
    let mut out = Vec::new();
    if !live.roles.contains(&role.name) {
        out.push(Step::CreateRole {
            role: role.name.clone(),
        });
    }
    let modules = modules_on_server(policy, live);
    let (schema, want_global) =
        split_for_flavor(policy.role_grants_with(role, &modules, members), flavor);
    let want = expand(schema, &live.schema_all);
    let have = live
        .role_schema
        .get(&role.name)
        .cloned()
        .unwrap_or_default();
    diff_schema(
        &Grantee::Role(role.name.clone()),
        &want,
        &have,
        &live.schema_all,
        &mut out,
    );
    let have_global = live
        .role_global
        .get(&role.name)
        .cloned()
        .unwrap_or_default();
    let missing: Vec<String> = want_global.difference(&have_global).cloned().collect();
    if !missing.is_empty() {
        out.push(Step::GrantGlobal {
            privileges: missing,
            to: Grantee::Role(role.name.clone()),
        });
    }
    let extra: Vec<String> = have_global
        .iter()
        .filter(|p| *p != "USAGE" && !want_global.contains(*p))
        .cloned()
        .collect();
    if !extra.is_empty() {
        out.push(Step::RevokeGlobal {
            privileges: extra,
            from: Grantee::Role(role.name.clone()),
        });
    }
    for g in live.role_objects.get(&role.name).into_iter().flatten() {
        out.push(Step::RevokeObject {
            grant: g.clone(),
            from: Grantee::Role(role.name.clone()),
        });
    }
    // Grant before revoking, so members never lose access in between.
    let (removes, mut adds): (Vec<Step>, Vec<Step>) = out.into_iter().partition(Step::removes);
    adds.extend(removes);
    adds
}

/// `users roles init`: create every role of the policy and make its grants
/// match (missing ones granted, extra ones revoked).
pub fn roles_init(policy: &Policy, live: &LiveState, flavor: Flavor) -> Plan {
    Plan {
        steps: policy
            .roles
            .iter()
            .flat_map(|r| role_steps(policy, live, r, flavor))
            .collect(),
        new_passwords: Vec::new(),
    }
}

fn require_roles_exist<'a>(
    live: &LiveState,
    roles: impl IntoIterator<Item = &'a RoleDef>,
) -> Result<(), Error> {
    for r in roles {
        if !live.roles.contains(&r.name) {
            return Err(Error::RoleMissing {
                role: r.name.clone(),
            });
        }
    }
    Ok(())
}

/// What a lab member should hold directly: ALL on their own prefix when
/// their role says so.
fn own_grants(
    role: &RoleDef,
    account: &Account,
    schema_all: &BTreeSet<String>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut m = BTreeMap::new();
    if role.own_prefix {
        m.insert(
            SchemaPattern::Prefix(account.user.clone()).stored(),
            schema_all.clone(),
        );
    }
    m
}

/// The steps that make `account` a member of exactly `role` (among the
/// policy's roles), active at login, with its own-prefix grant and no other
/// direct grants. Creates the account when missing, using `new`; without
/// `new` a missing account is an error.
pub fn user_steps(
    policy: &Policy,
    live: &LiveState,
    flavor: Flavor,
    account: &Account,
    role: &RoleDef,
    new: Option<&mut NewPassword<'_>>,
    plan: &mut Plan,
) -> Result<(), Error> {
    let exists = live.accounts.contains_key(account);
    let role_exists = live.roles.contains(&role.name)
        || plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::CreateRole { role: r } if *r == role.name));
    if !role_exists {
        return Err(Error::RoleMissing {
            role: role.name.clone(),
        });
    }
    if exists || new.is_some() {
        check_member(policy, live, flavor, account, role, !exists)?;
    }
    let out = &mut plan.steps;
    if !exists {
        let Some(new) = new else {
            return Err(Error::NoSuchAccount {
                account: account.clone(),
            });
        };
        let password = (new.make)(account);
        plan.new_passwords.push((account.clone(), password.clone()));
        out.push(Step::CreateUser {
            account: account.clone(),
            password,
            expire: new.expire,
        });
    }
    let managed = policy.role_names();
    let held: BTreeSet<String> = live
        .members
        .get(account)
        .map(|m| m.intersection(&managed).cloned().collect())
        .unwrap_or_default();
    for r in held.iter().filter(|r| **r != role.name) {
        out.push(Step::RevokeRole {
            role: r.clone(),
            from: account.clone(),
        });
    }
    if role.own_prefix {
        let reads = member_read_steps(policy, live, flavor, &account.user, out);
        out.extend(reads);
    }
    let granting = !held.contains(&role.name);
    if granting {
        out.push(Step::GrantRole {
            role: role.name.clone(),
            to: account.clone(),
        });
    }
    let defaults = live.default_roles.get(account).cloned().unwrap_or_default();
    let default_ok = match flavor {
        // SET DEFAULT ROLE ALL covers every granted role; redo it after any change.
        Flavor::Mysql => defaults.contains(&role.name) && !granting && held.len() <= 1,
        Flavor::Mariadb => defaults.len() == 1 && defaults.contains(&role.name),
    };
    if !default_ok {
        out.push(Step::SetDefaultRole {
            role: role.name.clone(),
            account: account.clone(),
        });
    }
    let want = own_grants(role, account, &live.schema_all);
    let have = live.direct_schema(account);
    diff_schema(
        &Grantee::Account(account.clone()),
        &want,
        &have,
        &live.schema_all,
        out,
    );
    if let Some(a) = live.accounts.get(account) {
        let extra: Vec<String> = a.global.iter().filter(|p| *p != "USAGE").cloned().collect();
        if !extra.is_empty() {
            out.push(Step::RevokeGlobal {
                privileges: extra,
                from: Grantee::Account(account.clone()),
            });
        }
    }
    for g in live.account_objects.get(account).into_iter().flatten() {
        out.push(Step::RevokeObject {
            grant: g.clone(),
            from: Grantee::Account(account.clone()),
        });
    }
    Ok(())
}

/// Refuses a lab member's name before any statement: invalid or reserved
/// names, names too long for the flavor or for the own-prefix grant
/// pattern, and the name of a role; for a new account (`new`) also a name
/// an account of another kind (an administrator or service account, no lab
/// role) already has at another host.
pub fn check_member(
    policy: &Policy,
    live: &LiveState,
    flavor: Flavor,
    account: &Account,
    role: &RoleDef,
    new: bool,
) -> Result<(), Error> {
    let invalid = |reason: String| Error::Invalid {
        what: "user name",
        value: account.user.clone(),
        reason,
    };
    if new {
        crate::model::validate_member_name(&account.user, Some(flavor), role.own_prefix)?;
        crate::model::validate_host(&account.host)?;
    } else {
        if let Some(why) = crate::model::reserved_user_reason(&account.user) {
            return Err(invalid(format!("{why}; it is not a lab member")));
        }
        crate::model::validate_member_name(&account.user, Some(flavor), role.own_prefix)?;
    }
    if is_role_name(policy, live, &account.user) {
        return Err(invalid(
            "it is the name of a role; an account of that name would be mistaken for the role (MariaDB lets a user and a role share a name)".into(),
        ));
    }
    if !new {
        return Ok(());
    }
    let managed = policy.role_names();
    for other in live
        .accounts
        .values()
        .filter(|a| a.account.user == account.user && a.account.host != account.host)
    {
        let lab = live
            .members
            .get(&other.account)
            .is_some_and(|m| m.iter().any(|r| managed.contains(r)));
        if !lab {
            return Err(invalid(format!(
                "{} exists and is not a lab member (no role of the policy{}); a lab account of the same name would shadow it or be shadowed by it",
                other.account,
                if other.is_administrator() {
                    ", a server administrator"
                } else {
                    ""
                }
            )));
        }
    }
    Ok(())
}

/// A role's server name (not a policy key such as `user`), of the policy or on the server.
pub fn is_role_name(policy: &Policy, live: &LiveState, name: &str) -> bool {
    policy.roles.iter().any(|r| r.name == name) || live.roles.contains(name)
}

/// Anonymous accounts (`''@host`) that win over `account` when someone
/// logs in from their host: the server picks the account with the most
/// specific host first, so `''@'localhost'` takes every login from
/// localhost meant for `'name'@'%'`, and that login fails with "Access
/// denied".
pub fn shadowing_anonymous(live: &LiveState, account: &Account) -> Vec<Account> {
    let wild = |h: &str| h.contains('%') || h.contains('_');
    live.accounts
        .keys()
        .filter(|a| a.user.is_empty() && a.host != account.host)
        .filter(|a| {
            (account.host == "%" && a.host != "%") || (wild(&account.host) && !wild(&a.host))
        })
        .cloned()
        .collect()
}

/// `users add NAME --role R`: create the account. An existing account is
/// never changed: when it already holds exactly R with nothing missing the
/// plan is empty, otherwise [`Error::AccountExists`] (use [`set_role`]).
pub fn add_user(
    policy: &Policy,
    live: &LiveState,
    flavor: Flavor,
    account: &Account,
    role: &str,
    new: &mut NewPassword<'_>,
) -> Result<Plan, Error> {
    let role = policy.require_role(role)?;
    let mut plan = Plan::default();
    let exists = live.accounts.contains_key(account);
    user_steps(policy, live, flavor, account, role, Some(new), &mut plan)?;
    if exists && !plan.is_empty() {
        let managed = policy.role_names();
        let held: Vec<String> = live
            .members
            .get(account)
            .map(|m| m.intersection(&managed).cloned().collect())
            .unwrap_or_default();
        return Err(Error::AccountExists {
            account: account.clone(),
            detail: if held.is_empty() {
                format!("it holds none of the policy's roles, and users add never changes an existing account (it would become {})", role.name)
            } else {
                format!(
                    "it holds {} and differs from what {} gives; users add never changes an existing account",
                    held.join(", "),
                    role.name
                )
            },
        });
    }
    Ok(plan)
}

/// `users set-role NAME R`: the account must exist.
pub fn set_role(
    policy: &Policy,
    live: &LiveState,
    flavor: Flavor,
    account: &Account,
    role: &str,
) -> Result<Plan, Error> {
    let role = policy.require_role(role)?;
    let mut plan = Plan::default();
    user_steps(policy, live, flavor, account, role, None, &mut plan)?;
    Ok(plan)
}

/// `users add-module PREFIX`: every role with `shared` grants gets them on
/// `PREFIX` too (Spyglass: ALL on `` `prefix\_%`.* `` to dj_user).
pub fn add_module(policy: &Policy, live: &LiveState, prefix: &str) -> Result<Plan, Error> {
    validate_prefix(prefix)?;
    let roles: Vec<&RoleDef> = policy
        .roles
        .iter()
        .filter(|r| r.grants.iter().any(|g| g.on == Target::Shared))
        .collect();
    require_roles_exist(live, roles.iter().copied())?;
    let mut steps = Vec::new();
    let stored = SchemaPattern::Prefix(prefix.to_owned()).stored();
    for r in roles {
        let mut want = BTreeSet::new();
        for g in r.grants.iter().filter(|g| g.on == Target::Shared) {
            want.extend(g.privileges.expand(&live.schema_all));
        }
        let have = live
            .role_schema
            .get(&r.name)
            .and_then(|m| m.get(&stored))
            .cloned()
            .unwrap_or_default();
        // Only add: a module already granted more widely by hand stays as it is.
        let mut w = BTreeMap::new();
        w.insert(stored.clone(), want);
        let mut h = BTreeMap::new();
        h.insert(stored.clone(), have);
        let mut s = Vec::new();
        diff_schema(
            &Grantee::Role(r.name.clone()),
            &w,
            &h,
            &live.schema_all,
            &mut s,
        );
        steps.extend(s.into_iter().filter(|s| !s.removes()));
    }
    Ok(Plan {
        steps,
        new_passwords: Vec::new(),
    })
}

/// The global privileges of the dedicated backup account on `flavor`: every
/// privilege the backup family needs or recommends
/// ([`capability::requirements`]), granted on `*.*` (which also covers
/// "every schema" and the `mysql` schema).
pub fn backup_privileges(flavor: Flavor) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for r in capability::requirements(Family::Backup, flavor) {
        if !v.iter().any(|p| p == r.privilege) {
            v.push(r.privilege.to_owned());
        }
    }
    v
}

/// Backup features a lab has switched on, each needing more of the backup account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupFeatures {
    /// The binary-log archive (reads the binary log as a replica does).
    pub binlog_archive: bool,
    /// Killing long queries that would block the snapshot.
    pub kill_long_queries: bool,
}

/// What the dedicated backup account needs for `features`:
/// [`backup_privileges`], PROCESS (the long-query guard looks at other
/// sessions' statements), the replication privileges for the binary-log
/// archive, and the right to kill other sessions' queries when enabled.
pub fn backup_account_privileges(flavor: Flavor, features: BackupFeatures) -> Vec<String> {
    let mut v = backup_privileges(flavor);
    let mut add = |p: &str| {
        if !v.iter().any(|x| x == p) {
            v.push(p.to_owned());
        }
    };
    add("PROCESS");
    if features.binlog_archive {
        add("REPLICATION SLAVE");
        add(match flavor {
            Flavor::Mysql => "REPLICATION CLIENT",
            Flavor::Mariadb => "BINLOG MONITOR",
        });
    }
    if features.kill_long_queries {
        add(match flavor {
            Flavor::Mysql => "CONNECTION_ADMIN",
            Flavor::Mariadb => "CONNECTION ADMIN",
        });
    }
    v
}

/// A schema-level grant the dedicated backup account needs for an
/// enabled nightly step, on top of its global privileges: the restore
/// drill's scratch schemas ([`drill_need`]), the rows `cleanup apply`
/// deletes and puts back ([`cleanup_need`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaNeed {
    /// The step that needs it: `restore drill`, `cleanup apply`.
    pub step: &'static str,
    /// Where.
    pub on: SchemaPattern,
    /// The one schema `on` names, when it names exactly one (then a grant
    /// on any pattern matching it counts too).
    pub schema: Option<String>,
    /// What is granted.
    pub privileges: PrivilegeSet,
}

/// What a restore into scratch schemas does there (tables, keys, views,
/// triggers; dropping them again): the privileges a drill's grant is
/// checked for.
pub const DRILL_PRIVILEGES: &[&str] = &[
    "CREATE",
    "DROP",
    "INSERT",
    "ALTER",
    "INDEX",
    "REFERENCES",
    "CREATE VIEW",
    "TRIGGER",
];

/// What `cleanup apply` does to the `~external` rows of a schema in scope:
/// deletes unused ones, and inserts them again when a file is put back
/// (`cleanup restore`, a row that arrived during the run).
pub const CLEANUP_PRIVILEGES: &[&str] = &["DELETE", "INSERT"];

/// The restore drill's scratch schemas `<prefix>...` (`drill_`): ALL there,
/// on that pattern only (never `%`, which covers the `mysql` schema).
pub fn drill_need(prefix: &str) -> SchemaNeed {
    SchemaNeed {
        step: "restore drill",
        on: SchemaPattern::Raw(format!("{}%", like_escape(prefix))),
        schema: None,
        privileges: PrivilegeSet::All,
    }
}

/// `cleanup apply` on the schemas `on`; `schema` when it is exactly one.
pub fn cleanup_need(on: SchemaPattern, schema: Option<String>) -> SchemaNeed {
    SchemaNeed {
        step: "cleanup apply",
        on,
        schema,
        privileges: PrivilegeSet::named(CLEANUP_PRIVILEGES.iter().copied()),
    }
}

/// `name` as a grant pattern matching only itself (`_`, `%`, `\` escaped).
pub fn like_escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if matches!(c, '_' | '%' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A schema glob of the settings (`common_*`, `lfp_v?`; see
/// `spyglass_db::schemas`) as the grant pattern matching the same names,
/// or `None` when that pattern would also match one of the server's own
/// schemas (`*` matches `mysql`: a DELETE there could rewrite accounts).
pub fn glob_pattern(glob: &str) -> Option<SchemaPattern> {
    let mut out = String::new();
    for c in glob.chars() {
        match c {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '_' | '%' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    let system = spyglass_db::schemas::SYSTEM_SCHEMAS.iter().any(|s| {
        crate::grants::like(&out, s) || crate::grants::like(&out, &s.to_ascii_uppercase())
    });
    (!system && !out.is_empty()).then(|| SchemaPattern::from_stored(&out))
}

impl SchemaNeed {
    /// What `held` lacks of this need, each privilege once, in
    /// [`DRILL_PRIVILEGES`] order for `ALL`.
    pub fn lacking(&self, held: &crate::grants::HeldPrivileges) -> Vec<String> {
        let names: Vec<String> = match &self.privileges {
            PrivilegeSet::All => DRILL_PRIVILEGES.iter().map(|p| p.to_string()).collect(),
            PrivilegeSet::Some(s) => s.iter().cloned().collect(),
        };
        let stored = self.on.stored();
        names
            .into_iter()
            .filter(|p| {
                !held.has_on_pattern(&stored, p)
                    && !self
                        .schema
                        .as_ref()
                        .is_some_and(|s| held.has_on_schema(s, p))
            })
            .collect()
    }
}

/// The schema grants `needs` ask for on this server, by stored pattern.
fn need_map(
    needs: &[SchemaNeed],
    schema_all: &BTreeSet<String>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for n in needs {
        out.entry(n.on.stored())
            .or_default()
            .extend(n.privileges.expand(schema_all));
    }
    out
}

/// `users add-backup-user NAME`: the account (created if missing) with
/// exactly `want` ([`backup_account_privileges`]) globally, and exactly
/// `schema_want` on schemas (what the enabled nightly steps need). `held`
/// is what it holds now, read with `SHOW GRANTS` (which, unlike the grant
/// tables' columns, shows every MariaDB privilege); `None` when it does
/// not exist.
pub fn add_backup_user(
    policy: &Policy,
    live: &LiveState,
    held: Option<BTreeSet<String>>,
    want: &[String],
    schema_want: &[SchemaNeed],
    account: &Account,
    new: &mut NewPassword<'_>,
) -> Result<Plan, Error> {
    let invalid = |reason: String| Error::Invalid {
        what: "user name",
        value: account.user.clone(),
        reason,
    };
    if let Some(why) = crate::model::reserved_user_reason(&account.user) {
        return Err(invalid(format!("{why}; it cannot be the backup account")));
    }
    if is_role_name(policy, live, &account.user) {
        return Err(invalid("it is the name of a role".into()));
    }
    let mut plan = Plan::default();
    let held = match held {
        Some(h) => h,
        None => {
            let password = (new.make)(account);
            plan.new_passwords.push((account.clone(), password.clone()));
            plan.steps.push(Step::CreateUser {
                account: account.clone(),
                password,
                expire: new.expire,
            });
            BTreeSet::new()
        }
    };
    // MariaDB 10.5 renamed REPLICATION CLIENT to BINLOG MONITOR: either counts.
    let alias = |p: &str| {
        match p {
            "BINLOG MONITOR" => "REPLICATION CLIENT",
            "REPLICATION CLIENT" => "BINLOG MONITOR",
            p => p,
        }
        .to_owned()
    };
    let missing: Vec<String> = want
        .iter()
        .filter(|p| !held.contains(*p) && !held.contains(&alias(p)))
        .cloned()
        .collect();
    if !missing.is_empty() {
        plan.steps.push(Step::GrantGlobal {
            privileges: missing,
            to: Grantee::Account(account.clone()),
        });
    }
    let extra: Vec<String> = held
        .iter()
        .filter(|p| !want.contains(p) && !want.contains(&alias(p)) && *p != "USAGE")
        .cloned()
        .collect();
    if !extra.is_empty() {
        plan.steps.push(Step::RevokeGlobal {
            privileges: extra,
            from: Grantee::Account(account.clone()),
        });
    }
    // Nothing else: no roles; the schema grants the enabled steps need and
    // no others; no table, column or routine grants.
    for r in live.members.get(account).into_iter().flatten() {
        plan.steps.push(Step::RevokeRole {
            role: r.clone(),
            from: account.clone(),
        });
    }
    let schema: Vec<Step> = backup_account_extras(live, account, schema_want);
    plan.steps.extend(schema);
    Ok(plan)
}

/// The backup account's grants below global level against `needs` (the
/// schema grants the enabled nightly steps need, [`SchemaNeed`]): a GRANT
/// for each missing one, a REVOKE for every other schema grant and every
/// table, column and routine grant.
pub fn backup_account_extras(
    live: &LiveState,
    account: &Account,
    needs: &[SchemaNeed],
) -> Vec<Step> {
    let mut out = Vec::new();
    diff_schema(
        &Grantee::Account(account.clone()),
        &need_map(needs, &live.schema_all),
        &live.direct_schema(account),
        &live.schema_all,
        &mut out,
    );
    for g in live.account_objects.get(account).into_iter().flatten() {
        out.push(Step::RevokeObject {
            grant: g.clone(),
            from: Grantee::Account(account.clone()),
        });
    }
    out
}

/// `users lock NAME`.
pub fn lock(live: &LiveState, account: &Account) -> Result<Plan, Error> {
    let a = live
        .accounts
        .get(account)
        .ok_or_else(|| Error::NoSuchAccount {
            account: account.clone(),
        })?;
    let mut plan = Plan::default();
    if !a.locked {
        plan.steps.push(Step::Lock {
            account: account.clone(),
        });
    }
    Ok(plan)
}

/// `users remove NAME`: drops the account; nothing to do when it is gone.
pub fn remove(live: &LiveState, account: &Account) -> Plan {
    let mut plan = Plan::default();
    if live.accounts.contains_key(account) {
        plan.steps.push(Step::DropUser {
            account: account.clone(),
        });
    }
    plan
}

/// `users.toml`: roles come from the policy; users are listed.
///
/// ```toml
/// expire = true                 # new accounts must change their password
/// [policy]                      # same keys as [users] in spyglass-admin.toml
/// user_shared_privileges = ["SELECT", "INSERT", "UPDATE", "DELETE"]
/// [[users]]
/// name = "alice"
/// role = "user"
/// host = "%"                    # optional
/// ```
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    /// New accounts get `PASSWORD EXPIRE`.
    #[serde(default)]
    pub expire: bool,
    /// Overrides of the policy.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// The accounts to manage.
    #[serde(default)]
    pub users: Vec<UserEntry>,
}

/// One account in `users.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// User name.
    pub name: String,
    /// Role key (`guest`, ...) or name (`dj_guest`, or a custom role).
    pub role: String,
    /// Host pattern (default `%`).
    #[serde(default = "any_host")]
    pub host: String,
}

fn any_host() -> String {
    "%".into()
}

/// Validates a users file against the policy and flavor: every name,
/// host and role, and no account listed twice. Runs before any SQL.
pub fn validate_users_file(
    file: &UsersFile,
    policy: &Policy,
    flavor: Option<Flavor>,
) -> Result<Vec<(Account, String)>, Error> {
    let mut out: Vec<(Account, String)> = Vec::new();
    for u in &file.users {
        let role = policy.require_role(&u.role)?;
        crate::model::validate_member_name(&u.name, flavor, role.own_prefix)?;
        crate::model::validate_host(&u.host)?;
        let a = Account::new(&u.name, &u.host);
        if out.iter().any(|(x, _)| *x == a) {
            return Err(Error::Invalid {
                what: "users file entry",
                value: a.to_string(),
                reason: "the account is listed twice".into(),
            });
        }
        out.push((a, role.key.clone()));
    }
    Ok(out)
}

/// `users plan/apply -f users.toml`: every role of the policy, then every
/// listed account.
pub fn from_file(
    policy: &Policy,
    live: &LiveState,
    flavor: Flavor,
    users: &[(Account, String)],
    new: &mut NewPassword<'_>,
) -> Result<Plan, Error> {
    let mut plan = roles_init(policy, live, flavor);
    for (account, role) in users {
        let role = policy.require_role(role)?;
        user_steps(policy, live, flavor, account, role, Some(new), &mut plan)?;
    }
    Ok(plan)
}

/// Refuses a plan that would take rights away from `me`, the account
/// running it (revoke, lock, drop): an admin must not lock themselves out.
pub fn refuse_self_harm(plan: &Plan, me: &Account) -> Result<(), Error> {
    for s in &plan.steps {
        if s.removes() && s.account() == Some(me) {
            return Err(Error::SelfHarm {
                account: me.clone(),
                step: s.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::LiveAccount;
    use crate::sql::script;

    fn schema_all() -> BTreeSet<String> {
        crate::model::SCHEMA_PRIVILEGES
            .iter()
            .filter(|p| **p != "DELETE HISTORY")
            .map(|s| s.to_string())
            .collect()
    }

    fn empty() -> LiveState {
        LiveState {
            schema_all: schema_all(),
            ..LiveState::default()
        }
    }

    /// Applies steps to a LiveState the way the server would (enough for idempotence tests).
    fn simulate(live: &mut LiveState, steps: &[Step], flavor: Flavor) {
        for s in steps {
            match s {
                Step::CreateRole { role } => {
                    live.roles.insert(role.clone());
                }
                Step::CreateUser { account, .. } => {
                    live.accounts.insert(
                        account.clone(),
                        LiveAccount {
                            account: account.clone(),
                            locked: false,
                            password_expired: false,
                            password_last_changed: None,
                            has_password: true,
                            plugin: String::new(),
                            failed_login_attempts: 0,
                            global: BTreeSet::new(),
                        },
                    );
                }
                Step::Grant { privileges, on, to } => {
                    let set = privileges.expand(&live.schema_all);
                    let m = match to {
                        Grantee::Role(r) => live.role_schema.entry(r.clone()).or_default(),
                        Grantee::Account(a) => live.account_schema.entry(a.clone()).or_default(),
                    };
                    m.entry(on.stored()).or_default().extend(set);
                }
                Step::Revoke {
                    privileges,
                    on,
                    from,
                } => {
                    let set = privileges.expand(&live.schema_all);
                    let m = match from {
                        Grantee::Role(r) => live.role_schema.entry(r.clone()).or_default(),
                        Grantee::Account(a) => live.account_schema.entry(a.clone()).or_default(),
                    };
                    if let Some(h) = m.get_mut(&on.stored()) {
                        h.retain(|p| !set.contains(p));
                    }
                    m.retain(|_, v| !v.is_empty());
                }
                Step::GrantGlobal { privileges, to } => match to {
                    Grantee::Account(a) => {
                        if let Some(a) = live.accounts.get_mut(a) {
                            a.global.extend(privileges.iter().cloned());
                        }
                    }
                    Grantee::Role(r) => {
                        live.role_global
                            .entry(r.clone())
                            .or_default()
                            .extend(privileges.iter().cloned());
                    }
                },
                Step::GrantRole { role, to } => {
                    live.members
                        .entry(to.clone())
                        .or_default()
                        .insert(role.clone());
                }
                Step::RevokeRole { role, from } => {
                    if let Some(m) = live.members.get_mut(from) {
                        m.remove(role);
                    }
                    if let Some(d) = live.default_roles.get_mut(from) {
                        d.remove(role);
                    }
                }
                Step::SetDefaultRole { role, account } => {
                    let d = match flavor {
                        Flavor::Mysql => live.members.get(account).cloned().unwrap_or_default(),
                        Flavor::Mariadb => BTreeSet::from([role.clone()]),
                    };
                    live.default_roles.insert(account.clone(), d);
                }
                _ => {}
            }
        }
    }

    #[test]
    fn roles_init_on_empty_server_then_nothing() {
        for flavor in [Flavor::Mysql, Flavor::Mariadb] {
            let policy = Policy::spyglass();
            let mut live = empty();
            let plan = roles_init(&policy, &live, flavor);
            assert_eq!(
                plan.steps
                    .iter()
                    .filter(|s| matches!(s, Step::CreateRole { .. }))
                    .count(),
                4
            );
            let sql = script(&plan.steps, flavor);
            assert!(sql.contains(r"ON `lfp\_%`.*"), "{sql}");
            simulate(&mut live, &plan.steps, flavor);
            assert!(roles_init(&policy, &live, flavor).is_empty());
        }
    }

    #[test]
    fn select_on_every_schema_is_global_on_mysql_only() {
        let policy = Policy::spyglass();
        let live = empty();
        let my = script(
            &roles_init(&policy, &live, Flavor::Mysql).steps,
            Flavor::Mysql,
        );
        assert!(
            my.contains("GRANT SELECT ON *.* TO 'dj_guest'@'%';"),
            "{my}"
        );
        assert!(
            my.contains("GRANT ALL PRIVILEGES ON `%`.* TO 'dj_admin'@'%';"),
            "{my}"
        );
        assert!(!my.contains("SELECT ON `%`"), "{my}");
        let maria = script(
            &roles_init(&policy, &live, Flavor::Mariadb).steps,
            Flavor::Mariadb,
        );
        assert!(
            maria.contains("GRANT SELECT ON `%`.* TO `dj_guest`;"),
            "{maria}"
        );
    }

    #[test]
    fn role_drift_is_repaired_both_ways() {
        let policy = Policy::spyglass();
        let mut live = empty();
        let steps = roles_init(&policy, &live, Flavor::Mariadb).steps;
        simulate(&mut live, &steps, Flavor::Mariadb);
        // Someone revoked CREATE on common and granted DELETE on % to dj_guest.
        live.role_schema
            .get_mut("dj_user")
            .unwrap()
            .get_mut(r"common\_%")
            .unwrap()
            .remove("CREATE");
        live.role_schema
            .get_mut("dj_guest")
            .unwrap()
            .get_mut("%")
            .unwrap()
            .insert("DELETE".into());
        let sql = script(
            &roles_init(&policy, &live, Flavor::Mariadb).steps,
            Flavor::Mariadb,
        );
        assert_eq!(
            sql,
            "REVOKE DELETE ON `%`.* FROM `dj_guest`;\n\
             GRANT CREATE ON `common\\_%`.* TO `dj_user`;\n"
        );
    }

    #[test]
    fn add_user_converges_and_is_idempotent() {
        for flavor in [Flavor::Mysql, Flavor::Mariadb] {
            let policy = Policy::spyglass();
            let mut live = empty();
            let steps = roles_init(&policy, &live, flavor).steps;
            simulate(&mut live, &steps, flavor);
            let alice = Account::new("alice", "%");
            let mut make = |_: &Account| Secret::new("pw");
            let mut new = NewPassword {
                make: &mut make,
                expire: false,
            };
            let plan = add_user(&policy, &live, flavor, &alice, "user", &mut new).unwrap();
            assert_eq!(plan.new_passwords.len(), 1);
            assert_eq!(plan.steps.len(), 4, "{:?}", plan.steps);
            simulate(&mut live, &plan.steps, flavor);
            let again = add_user(&policy, &live, flavor, &alice, "user", &mut new).unwrap();
            assert!(again.is_empty(), "{:?}", again.steps);
            // Switching to guest: revoke dj_user, grant dj_guest, default, drop own prefix.
            let plan = set_role(&policy, &live, flavor, &alice, "guest").unwrap();
            let sql = script(&plan.steps, flavor);
            assert!(sql.contains("REVOKE") && sql.contains("dj_guest"), "{sql}");
            assert!(
                sql.contains(r"REVOKE ALL PRIVILEGES ON `alice\_%`.*"),
                "{sql}"
            );
            simulate(&mut live, &plan.steps, flavor);
            assert!(set_role(&policy, &live, flavor, &alice, "guest")
                .unwrap()
                .is_empty());
        }
    }

    #[test]
    fn missing_role_and_account_are_errors() {
        let policy = Policy::spyglass();
        let live = empty();
        let bob = Account::new("bob", "%");
        let e = set_role(&policy, &live, Flavor::Mysql, &bob, "user").unwrap_err();
        assert!(e.to_string().contains("dj_user"), "{e}");
        let e = set_role(&policy, &live, Flavor::Mysql, &bob, "wizard").unwrap_err();
        assert!(e.to_string().contains("wizard"), "{e}");
    }

    #[test]
    fn add_module_then_roles_init_keeps_it() {
        let policy = Policy::spyglass();
        let mut live = empty();
        let steps = roles_init(&policy, &live, Flavor::Mariadb).steps;
        simulate(&mut live, &steps, Flavor::Mariadb);
        let plan = add_module(&policy, &live, "waveform").unwrap();
        assert_eq!(
            script(&plan.steps, Flavor::Mariadb),
            "GRANT ALL PRIVILEGES ON `waveform\\_%`.* TO `dj_user`;\n"
        );
        simulate(&mut live, &plan.steps, Flavor::Mariadb);
        assert!(add_module(&policy, &live, "waveform").unwrap().is_empty());
        assert!(roles_init(&policy, &live, Flavor::Mariadb).is_empty());
        assert!(add_module(&policy, &live, "wave%").is_err());
    }

    #[test]
    fn backup_user_privileges_match_the_capability_check() {
        for flavor in [Flavor::Mysql, Flavor::Mariadb] {
            let mut held = crate::grants::HeldPrivileges::default();
            let privs = backup_privileges(flavor);
            held.add_rows([format!("GRANT {} ON *.* TO `b`@`%`", privs.join(", ")).as_str()]);
            let c = capability::check(&held, Family::Backup, flavor);
            assert!(c.missing.is_empty(), "{flavor}: {c:?}");
        }
        assert!(backup_privileges(Flavor::Mysql).contains(&"BACKUP_ADMIN".to_owned()));
        assert!(backup_privileges(Flavor::Mariadb).contains(&"BINLOG MONITOR".to_owned()));
    }

    #[test]
    fn self_harm_is_refused() {
        let me = Account::new("root", "localhost");
        let plan = Plan {
            steps: vec![Step::RevokeGlobal {
                privileges: vec!["ALL PRIVILEGES".into()],
                from: Grantee::Account(me.clone()),
            }],
            new_passwords: vec![],
        };
        let e = refuse_self_harm(&plan, &me).unwrap_err().to_string();
        assert!(e.contains("'root'@'localhost'"), "{e}");
    }

    #[test]
    fn users_file_rejects_unknown_keys_and_bad_entries() {
        let e = toml::from_str::<UsersFile>("[[users]]\nname = \"a\"\nrole = \"user\"\nrloe = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rloe"), "{e}");
        let f: UsersFile = toml::from_str("[[users]]\nname = \"o'b\"\nrole = \"user\"\n").unwrap();
        let e = validate_users_file(&f, &Policy::spyglass(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("o'b"), "{e}");
    }
}
