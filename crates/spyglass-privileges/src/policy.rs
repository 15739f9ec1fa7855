//! The policy: which roles exist, what each gets on which schemas, and the
//! shared module prefixes. [`Policy::spyglass`] reproduces Spyglass's
//! `DatabaseSettings` (see ../shared/docs/DATAJOINT.md, "Roles in Spyglass
//! today"); [`PolicyConfig`] is the `[users]` section of
//! `spyglass-admin.toml` and the `[policy]` table of `users.toml`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::model::{validate_prefix, validate_role_name, PrivilegeSet, SchemaPattern};
use crate::Error;

/// Spyglass 0.6.0's shared module prefixes (`SHARED_MODULES` in
/// `spyglass/utils/database_settings.py`; `figurl` holds
/// `figurl_view_spike_sorting_recording`).
pub const SPYGLASS_SHARED_PREFIXES: &[&str] = &[
    "behavior",
    "common",
    "decoding",
    "figurl",
    "lfp",
    "linearization",
    "mua",
    "position",
    "ripple",
    "sharing",
    "spikesorting",
];

/// The temporary password Spyglass gives new accounts.
pub const SPYGLASS_TEMP_PASSWORD: &str = "temppass";

/// Where a role's grant applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Target {
    /// `` `%`.* ``
    All,
    /// Every shared module prefix (the policy's list plus modules added with `add-module`).
    Shared,
    /// One prefix.
    Prefix(String),
}

/// One grant of a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleGrant {
    /// Where.
    pub on: Target,
    /// What.
    pub privileges: PrivilegeSet,
}

/// A role of the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleDef {
    /// What admins type: `guest`, `collab`, `user`, `admin`, or a custom role's name.
    pub key: String,
    /// The role on the server: `dj_guest`, ...
    pub name: String,
    /// Its grants.
    pub grants: Vec<RoleGrant>,
    /// Members also get ALL on their own prefix (`<name>_...`), granted directly.
    pub own_prefix: bool,
}

/// What the roles that "read every schema" (a SELECT-only grant on `%`)
/// read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadScope {
    /// Every schema, `mysql` included (Spyglass's behaviour).
    #[default]
    All,
    /// The shared prefixes and each lab member's own prefix, as schema
    /// grants: `mysql`, `sys` and schemas outside the lab's naming are not
    /// readable.
    Lab,
}

/// Roles, their grants and the shared prefixes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Shared module prefixes.
    pub shared_prefixes: Vec<String>,
    /// Roles, built-in ones first.
    pub roles: Vec<RoleDef>,
    /// Temporary passwords audit tries (once per account).
    pub temp_passwords: Vec<String>,
    /// Accounts (`user@host`) audit leaves alone, e.g. service accounts.
    pub audit_ignore: Vec<String>,
    /// What "SELECT on every schema" covers.
    pub read_scope: ReadScope,
    /// `read_scope` was set in the settings: an explicit `"all"` is the
    /// admin's informed choice, and audit does not report it.
    pub read_scope_chosen: bool,
}

impl Policy {
    /// Spyglass's policy: guest SELECT on `%`; collab the same plus its own
    /// prefix; user SELECT on `%`, ALL on every shared prefix, plus its own
    /// prefix; admin ALL on `%` plus its own prefix.
    pub fn spyglass() -> Self {
        let select = || PrivilegeSet::named(["SELECT"]);
        let role = |key: &str, grants: Vec<RoleGrant>, own_prefix| RoleDef {
            key: key.into(),
            name: format!("dj_{key}"),
            grants,
            own_prefix,
        };
        let on_all = |privileges| RoleGrant {
            on: Target::All,
            privileges,
        };
        Policy {
            shared_prefixes: SPYGLASS_SHARED_PREFIXES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            roles: vec![
                role("guest", vec![on_all(select())], false),
                role("collab", vec![on_all(select())], true),
                role(
                    "user",
                    vec![
                        on_all(select()),
                        RoleGrant {
                            on: Target::Shared,
                            privileges: PrivilegeSet::All,
                        },
                    ],
                    true,
                ),
                role("admin", vec![on_all(PrivilegeSet::All)], true),
            ],
            temp_passwords: vec![SPYGLASS_TEMP_PASSWORD.into()],
            audit_ignore: Vec::new(),
            read_scope: ReadScope::All,
            read_scope_chosen: false,
        }
    }

    /// The Spyglass policy with `config` applied.
    pub fn from_config(config: &PolicyConfig) -> Result<Self, Error> {
        let mut p = Policy::spyglass();
        p.apply(config)?;
        Ok(p)
    }

    /// Applies overrides (later calls win over earlier ones).
    pub fn apply(&mut self, c: &PolicyConfig) -> Result<(), Error> {
        if let Some(prefixes) = &c.shared_prefixes {
            for p in prefixes {
                validate_prefix(p)?;
            }
            self.shared_prefixes = prefixes.clone();
        }
        for p in &c.extra_shared_prefixes {
            validate_prefix(p)?;
            if !self.shared_prefixes.contains(p) {
                self.shared_prefixes.push(p.clone());
            }
        }
        if let Some(privs) = &c.user_shared_privileges {
            let set = PrivilegeSet::schema_level(privs)?;
            if let Some(user) = self.roles.iter_mut().find(|r| r.key == "user") {
                for g in &mut user.grants {
                    if g.on == Target::Shared {
                        g.privileges = set.clone();
                    }
                }
            }
        }
        for r in &c.roles {
            validate_role_name(&r.name)?;
            if self.role(&r.name).is_some() {
                return Err(Error::Invalid {
                    what: "role name",
                    value: r.name.clone(),
                    reason: "a role of that name is already defined".into(),
                });
            }
            let mut grants = Vec::new();
            for g in &r.grants {
                let on = match g.on.as_str() {
                    "%" => Target::All,
                    "shared" => Target::Shared,
                    p => {
                        validate_prefix(p)?;
                        Target::Prefix(p.to_owned())
                    }
                };
                grants.push(RoleGrant {
                    on,
                    privileges: PrivilegeSet::schema_level(&g.privileges)?,
                });
            }
            self.roles.push(RoleDef {
                key: r.name.clone(),
                name: r.name.clone(),
                grants,
                own_prefix: r.own_prefix,
            });
        }
        if let Some(t) = &c.temp_passwords {
            self.temp_passwords = t.clone();
        }
        self.audit_ignore.extend(c.audit_ignore.iter().cloned());
        match c.read_scope.as_deref() {
            None => {}
            Some("all") => {
                self.read_scope = ReadScope::All;
                self.read_scope_chosen = true;
            }
            Some("lab") => {
                self.read_scope = ReadScope::Lab;
                self.read_scope_chosen = true;
            }
            Some(o) => {
                return Err(Error::Invalid {
                    what: "read_scope",
                    value: o.to_owned(),
                    reason: "expected \"all\" (every schema, Spyglass's default) or \"lab\" (shared and own prefixes only)".into(),
                })
            }
        }
        Ok(())
    }

    /// A role by key (`user`) or server name (`dj_user`).
    pub fn role(&self, key_or_name: &str) -> Option<&RoleDef> {
        self.roles
            .iter()
            .find(|r| r.key == key_or_name || r.name == key_or_name)
    }

    /// Like [`Policy::role`], with an error naming the unknown role and the known ones.
    pub fn require_role(&self, key_or_name: &str) -> Result<&RoleDef, Error> {
        self.role(key_or_name).ok_or_else(|| Error::Invalid {
            what: "role",
            value: key_or_name.to_owned(),
            reason: format!(
                "it is not a role of the policy; known: {}",
                self.roles
                    .iter()
                    .map(|r| r.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    /// Server names of every role.
    pub fn role_names(&self) -> BTreeSet<String> {
        self.roles.iter().map(|r| r.name.clone()).collect()
    }

    /// The schema grants `role` should hold, with `extra_modules` (prefixes
    /// added on the server with `add-module`) counted as shared.
    pub fn role_grants(
        &self,
        role: &RoleDef,
        extra_modules: &BTreeSet<String>,
    ) -> Vec<(SchemaPattern, PrivilegeSet)> {
        self.role_grants_with(role, extra_modules, &BTreeSet::new())
    }

    /// [`Policy::role_grants`], where with [`ReadScope::Lab`] a read-only
    /// grant on every schema becomes the same grant on each shared prefix
    /// and on the own prefix of each of `members` (user names).
    pub fn role_grants_with(
        &self,
        role: &RoleDef,
        extra_modules: &BTreeSet<String>,
        members: &BTreeSet<String>,
    ) -> Vec<(SchemaPattern, PrivilegeSet)> {
        let mut out: Vec<(SchemaPattern, PrivilegeSet)> = Vec::new();
        let mut push = |pattern: SchemaPattern, privileges: &PrivilegeSet| match out
            .iter_mut()
            .find(|(p, _)| *p == pattern)
        {
            Some((_, existing)) => {
                *existing = merge(existing, privileges);
            }
            None => out.push((pattern, privileges.clone())),
        };
        let shared: BTreeSet<&String> = self.shared_prefixes.iter().chain(extra_modules).collect();
        for g in &role.grants {
            match &g.on {
                Target::All
                    if self.read_scope == ReadScope::Lab && g.privileges != PrivilegeSet::All =>
                {
                    for p in shared.iter().copied().chain(members) {
                        push(SchemaPattern::Prefix(p.clone()), &g.privileges);
                    }
                }
                Target::All => push(SchemaPattern::All, &g.privileges),
                Target::Prefix(p) => push(SchemaPattern::Prefix(p.clone()), &g.privileges),
                Target::Shared => {
                    for p in &shared {
                        push(SchemaPattern::Prefix((*p).clone()), &g.privileges);
                    }
                }
            }
        }
        out
    }
}

fn merge(a: &PrivilegeSet, b: &PrivilegeSet) -> PrivilegeSet {
    match (a, b) {
        (PrivilegeSet::Some(x), PrivilegeSet::Some(y)) => {
            PrivilegeSet::Some(x.union(y).cloned().collect())
        }
        _ => PrivilegeSet::All,
    }
}

/// Policy overrides: the `[users]` section of `spyglass-admin.toml`, and the
/// `[policy]` table of a `users.toml`. Unknown keys are errors.
///
/// ```toml
/// [users]
/// extra_shared_prefixes = ["waveform"]
/// # dj_user gets this on shared prefixes instead of ALL (no CREATE):
/// user_shared_privileges = ["SELECT", "INSERT", "UPDATE", "DELETE", "ALTER",
///                           "DROP", "INDEX", "REFERENCES", "LOCK TABLES"]
/// temp_passwords = ["temppass"]
/// audit_ignore = ["backup@localhost"]
/// read_scope = "lab"   # guests read shared and members' schemas, not mysql.*
///
/// [[users.roles]]
/// name = "dj_analyst"
/// own_prefix = true
/// grants = [{ on = "%", privileges = ["SELECT"] },
///           { on = "shared", privileges = ["SELECT", "INSERT"] }]
/// ```
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Replaces Spyglass's shared prefixes.
    pub shared_prefixes: Option<Vec<String>>,
    /// Added to the shared prefixes.
    #[serde(default)]
    pub extra_shared_prefixes: Vec<String>,
    /// What dj_user gets on each shared prefix (default: ALL).
    pub user_shared_privileges: Option<Vec<String>>,
    /// Custom roles.
    #[serde(default)]
    pub roles: Vec<CustomRoleConfig>,
    /// Temporary passwords audit checks (default: `["temppass"]`).
    pub temp_passwords: Option<Vec<String>>,
    /// Accounts (`user@host`) audit skips.
    #[serde(default)]
    pub audit_ignore: Vec<String>,
    /// `"all"` (default: roles that read everything read every schema, the
    /// `mysql` schema and its password hashes included, as in Spyglass) or
    /// `"lab"` (they read the shared prefixes and each member's own prefix).
    pub read_scope: Option<String>,
}

/// A custom role in [`PolicyConfig`].
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CustomRoleConfig {
    /// Role name on the server (also what admins type).
    pub name: String,
    /// Members get ALL on their own prefix.
    #[serde(default)]
    pub own_prefix: bool,
    /// Grants.
    #[serde(default)]
    pub grants: Vec<CustomGrantConfig>,
}

/// One grant of a custom role.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CustomGrantConfig {
    /// `%` (every schema), `shared` (every shared prefix) or a prefix.
    pub on: String,
    /// Schema-level privileges, or `["ALL"]`.
    pub privileges: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_reproduces_spyglass() {
        let p = Policy::spyglass();
        let user = p.require_role("user").unwrap();
        let grants = p.role_grants(user, &BTreeSet::new());
        assert_eq!(grants.len(), 1 + SPYGLASS_SHARED_PREFIXES.len());
        assert_eq!(grants[0].0, SchemaPattern::All);
        assert!(grants
            .iter()
            .any(|(pat, set)| pat.sql() == r"`common\_%`.*" && *set == PrivilegeSet::All));
        assert!(!p.require_role("guest").unwrap().own_prefix);
        assert_eq!(p.require_role("dj_admin").unwrap().key, "admin");
        let e = p.require_role("superuser").unwrap_err().to_string();
        assert!(
            e.contains("superuser") && e.contains("guest, collab, user, admin"),
            "{e}"
        );
    }

    #[test]
    fn narrower_user_set_and_custom_roles() {
        let cfg: PolicyConfig = toml::from_str(
            r#"
user_shared_privileges = ["SELECT", "INSERT", "UPDATE", "DELETE", "ALTER", "DROP", "INDEX", "REFERENCES", "LOCK TABLES"]
extra_shared_prefixes = ["waveform"]
[[roles]]
name = "dj_analyst"
own_prefix = true
grants = [{ on = "%", privileges = ["SELECT"] }, { on = "shared", privileges = ["select", "insert"] }]
"#,
        )
        .unwrap();
        let p = Policy::from_config(&cfg).unwrap();
        let user = p.require_role("user").unwrap();
        let g = p.role_grants(user, &BTreeSet::new());
        let (_, set) = g
            .iter()
            .find(|(pat, _)| pat.stored() == r"waveform\_%")
            .unwrap();
        assert!(
            matches!(set, PrivilegeSet::Some(s) if !s.contains("CREATE") && s.contains("LOCK TABLES"))
        );
        let a = p.require_role("dj_analyst").unwrap();
        assert_eq!(
            p.role_grants(a, &BTreeSet::new()).len(),
            1 + SPYGLASS_SHARED_PREFIXES.len() + 1
        );
        let bad: Result<PolicyConfig, _> = toml::from_str("shared_prefix = [\"x\"]");
        assert!(bad.unwrap_err().to_string().contains("shared_prefix"));
        let cfg = PolicyConfig {
            extra_shared_prefixes: vec!["lfp%".into()],
            ..Default::default()
        };
        assert!(Policy::from_config(&cfg)
            .unwrap_err()
            .to_string()
            .contains("lfp%"));
    }
}
