//! Before a plan runs: does the connected account hold what every statement
//! of it needs? A plan that would fail halfway (a `dj_admin`, who may write
//! the `mysql` schema and so create accounts, but has no `GRANT OPTION`)
//! is refused before its first statement, naming what is missing.
//!
//! What each statement needs (MySQL and MariaDB manuals, `CREATE USER`,
//! `GRANT`, `SET DEFAULT ROLE`):
//!
//! | statement | needs |
//! |---|---|
//! | `CREATE USER`, `CREATE ROLE` | `CREATE USER` on `*.*`, or `INSERT` on `mysql` (MySQL: also `CREATE ROLE` for a role) |
//! | `DROP USER` | `CREATE USER`, or `DELETE` on `mysql` (MySQL: also `DROP ROLE` for a role) |
//! | `ALTER USER` (password, lock), `SET DEFAULT ROLE ... FOR` | `CREATE USER`, or `UPDATE` on `mysql` |
//! | `GRANT`/`REVOKE` privileges | `GRANT OPTION` there, and every privilege granted or revoked |
//! | `GRANT`/`REVOKE` a role | the role `WITH ADMIN OPTION` (MySQL: or `ROLE_ADMIN`; both: or `SUPER`) |
//!
//! The check errs on the side of letting a plan run: what it cannot see (a
//! table-level grant, a privilege through a role not active now) is not
//! counted against the account, and a statement that still fails is undone
//! by [`crate::apply::apply_per_account`].

use std::collections::BTreeSet;

use serde::Serialize;
use spyglass_db::Flavor;

use crate::grants::HeldPrivileges;
use crate::model::{PrivilegeSet, SchemaPattern};
use crate::sql::{Reveal, Step};

/// One privilege the account lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Missing {
    /// What is lacking, as GRANT names it (`GRANT OPTION`, `CREATE USER`,
    /// `ADMIN OPTION on dj_user`), alternatives joined with ` or `.
    pub privilege: String,
    /// Where: `*.*`, `` `erin\_%`.* ``, `mysql.*`, or the role.
    pub on: String,
    /// The first statement that needs it (passwords redacted).
    pub statement: String,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} on {} (for `{}`)",
            self.privilege, self.on, self.statement
        )
    }
}

/// What `held` lacks to run every one of `steps` on `flavor`, in plan
/// order, each privilege once. `schema_all` is what `ALL PRIVILEGES` on a
/// schema means on this server ([`crate::live::LiveState::schema_all`]).
/// Pure.
pub fn missing(
    steps: &[Step],
    held: &HeldPrivileges,
    flavor: Flavor,
    schema_all: &BTreeSet<String>,
) -> Vec<Missing> {
    let mut out: Vec<Missing> = Vec::new();
    let mut push = |privilege: String, on: String, step: &Step| {
        if !out.iter().any(|m| m.privilege == privilege && m.on == on) {
            out.push(Missing {
                privilege,
                on,
                statement: step.sql(flavor, Reveal::Redacted),
            });
        }
    };
    let account_admin = |mysql_privilege: &str| {
        held.has_global("CREATE USER") || held.has_on_mysql_schema(mysql_privilege)
    };
    // MariaDB gives the creator of a role that role WITH ADMIN OPTION.
    let mut created_roles: BTreeSet<&str> = BTreeSet::new();
    for step in steps {
        match step {
            Step::CreateUser { .. } => {
                if !account_admin("INSERT") {
                    push(
                        "CREATE USER or INSERT on mysql.*".into(),
                        "*.*".into(),
                        step,
                    );
                }
            }
            Step::CreateRole { role } => {
                if flavor == Flavor::Mariadb {
                    created_roles.insert(role);
                }
                let role_priv = flavor == Flavor::Mysql && held.has_global("CREATE ROLE");
                if !account_admin("INSERT") && !role_priv {
                    push(
                        "CREATE USER or INSERT on mysql.*".into(),
                        "*.*".into(),
                        step,
                    );
                }
            }
            Step::DropUser { .. } => {
                let role_priv = flavor == Flavor::Mysql && held.has_global("DROP ROLE");
                if !account_admin("DELETE") && !role_priv {
                    push(
                        "CREATE USER or DELETE on mysql.*".into(),
                        "*.*".into(),
                        step,
                    );
                }
            }
            Step::SetPassword { .. }
            | Step::Lock { .. }
            | Step::SetDefaultRole { .. }
            | Step::RestoreDefaultRoles { .. } => {
                if !account_admin("UPDATE") {
                    push(
                        "CREATE USER or UPDATE on mysql.*".into(),
                        "*.*".into(),
                        step,
                    );
                }
            }
            Step::Grant { privileges, on, .. } | Step::Revoke { privileges, on, .. } => {
                schema_level(held, privileges, on, schema_all, &mut |p, w| {
                    push(p, w, step)
                });
            }
            Step::GrantGlobal { privileges, .. } | Step::RevokeGlobal { privileges, .. } => {
                if !held.has_global("GRANT OPTION") {
                    push("GRANT OPTION".into(), "*.*".into(), step);
                }
                for p in privileges {
                    if !held.has_global(p) {
                        push(p.clone(), "*.*".into(), step);
                    }
                }
            }
            Step::GrantObject { grant, .. } | Step::RevokeObject { grant, .. } => {
                let on = SchemaPattern::Raw(grant.schema.clone());
                let privileges = PrivilegeSet::Some(
                    grant
                        .privileges
                        .iter()
                        .filter(|p| *p != "GRANT OPTION")
                        .cloned()
                        .collect(),
                );
                schema_level(held, &privileges, &on, schema_all, &mut |p, w| {
                    push(p, w, step)
                });
            }
            Step::GrantRole { role, .. } | Step::RevokeRole { role, .. } => {
                let any_role = held.has_global("SUPER")
                    || (flavor == Flavor::Mysql && held.has_global("ROLE_ADMIN"));
                if !any_role
                    && !held.admin_roles.contains(role)
                    && !created_roles.contains(role.as_str())
                {
                    let alt = match flavor {
                        Flavor::Mysql => " (or ROLE_ADMIN on *.*)",
                        Flavor::Mariadb => "",
                    };
                    push(format!("ADMIN OPTION{alt}"), format!("role {role}"), step);
                }
            }
        }
    }
    out
}

/// A privilege a command that is not a privilege plan needs on one schema
/// (`backup restore`: CREATE, INSERT, DROP on each target schema; `cleanup
/// restore`: INSERT where it puts rows back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaPrivilege {
    /// The schema, by name.
    pub schema: String,
    /// The privilege, as GRANT names it.
    pub privilege: String,
    /// What needs it, e.g. `` INSERT INTO `lab`.`~external_raw` ``.
    pub statement: String,
}

/// What `held` lacks of `needs`, each schema and privilege once, in order.
/// Pure.
pub fn missing_on_schemas(held: &HeldPrivileges, needs: &[SchemaPrivilege]) -> Vec<Missing> {
    let mut out: Vec<Missing> = Vec::new();
    for n in needs {
        if held.has_on_schema(&n.schema, &n.privilege) {
            continue;
        }
        let on = format!("{}.*", spyglass_db::quote::ident(&n.schema));
        if !out.iter().any(|m| m.privilege == n.privilege && m.on == on) {
            out.push(Missing {
                privilege: n.privilege.clone(),
                on,
                statement: n.statement.clone(),
            });
        }
    }
    out
}

/// GRANT OPTION on `on` and every privilege of `privileges` there.
fn schema_level(
    held: &HeldPrivileges,
    privileges: &PrivilegeSet,
    on: &SchemaPattern,
    schema_all: &BTreeSet<String>,
    push: &mut dyn FnMut(String, String),
) {
    let pattern = on.stored();
    let where_ = on.sql();
    if !held.has_on_pattern(&pattern, "GRANT OPTION") {
        push("GRANT OPTION".into(), where_.clone());
    }
    let lacking: Vec<String> = privileges
        .expand(schema_all)
        .into_iter()
        .filter(|p| !held.has_on_pattern(&pattern, p))
        .collect();
    if !lacking.is_empty() {
        let what = match privileges {
            PrivilegeSet::All => format!("ALL PRIVILEGES (lacks {})", lacking.join(", ")),
            PrivilegeSet::Some(_) => lacking.join(", "),
        };
        push(what, where_);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Account, Grantee};
    use spyglass_db::Secret;

    fn held(rows: &[&str]) -> HeldPrivileges {
        let mut h = HeldPrivileges::default();
        h.add_rows(rows.iter().copied());
        h
    }

    fn schema_all() -> BTreeSet<String> {
        ["SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP"]
            .into_iter()
            .map(String::from)
            .collect()
    }

    fn add_erin() -> Vec<Step> {
        let erin = Account::new("erin", "%");
        vec![
            Step::CreateUser {
                account: erin.clone(),
                password: Secret::new("x"),
                expire: false,
            },
            Step::GrantRole {
                role: "dj_admin".into(),
                to: erin.clone(),
            },
            Step::SetDefaultRole {
                role: "dj_admin".into(),
                account: erin.clone(),
            },
            Step::Grant {
                privileges: PrivilegeSet::All,
                on: SchemaPattern::Prefix("erin".into()),
                to: Grantee::Account(erin),
            },
        ]
    }

    #[test]
    fn dj_admin_may_create_accounts_but_not_grant() {
        // ALL on `%`.* covers the mysql schema: CREATE USER works, GRANT does not.
        let h = held(&[
            "GRANT USAGE ON *.* TO `a`@`%`",
            "GRANT ALL PRIVILEGES ON `%`.* TO `dj_admin`",
        ]);
        let m = missing(&add_erin(), &h, Flavor::Mariadb, &schema_all());
        let names: Vec<(&str, &str)> = m
            .iter()
            .map(|m| (m.privilege.as_str(), m.on.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("ADMIN OPTION", "role dj_admin"),
                ("GRANT OPTION", r"`erin\_%`.*")
            ],
            "{m:?}"
        );
        assert_eq!(m[0].statement, "GRANT `dj_admin` TO 'erin'@'%'");
    }

    #[test]
    fn root_lacks_nothing_on_either_flavor() {
        let maria = held(&[
            "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION",
            "GRANT `dj_admin` TO `root`@`localhost` WITH ADMIN OPTION",
        ]);
        assert_eq!(
            missing(&add_erin(), &maria, Flavor::Mariadb, &schema_all()),
            []
        );
        // MySQL names every static privilege, and root holds ROLE_ADMIN.
        let mysql = held(&[
            "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, CREATE USER ON *.* TO `root`@`localhost` WITH GRANT OPTION",
            "GRANT ROLE_ADMIN ON *.* TO `root`@`localhost` WITH GRANT OPTION",
        ]);
        assert_eq!(
            missing(&add_erin(), &mysql, Flavor::Mysql, &schema_all()),
            []
        );
    }

    #[test]
    fn an_account_manager_with_one_role_to_hand_out() {
        let h = held(&[
            "GRANT CREATE USER ON *.* TO `m`@`%`",
            "GRANT SELECT, UPDATE ON `mysql`.* TO `m`@`%`",
            "GRANT `dj_guest`@`%` TO `m`@`%` WITH ADMIN OPTION",
        ]);
        let erin = Account::new("erin", "%");
        let guest = [Step::GrantRole {
            role: "dj_guest".into(),
            to: erin.clone(),
        }];
        assert_eq!(missing(&guest, &h, Flavor::Mysql, &schema_all()), []);
        let user = [Step::GrantRole {
            role: "dj_user".into(),
            to: erin,
        }];
        let m = missing(&user, &h, Flavor::Mysql, &schema_all());
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].on, "role dj_user");
    }

    #[test]
    fn schema_needs_accept_a_matching_pattern_and_name_the_rest() {
        let h = held(&[
            "GRANT USAGE ON *.* TO `r`@`%`",
            r"GRANT INSERT, CREATE ON `lab\_%`.* TO `r`@`%`",
        ]);
        let need = |schema: &str, privilege: &str| SchemaPrivilege {
            schema: schema.into(),
            privilege: privilege.into(),
            statement: format!("CREATE DATABASE `{schema}`"),
        };
        let m = missing_on_schemas(
            &h,
            &[
                need("lab_a", "INSERT"),
                need("lab_a", "CREATE"),
                need("lab_a", "DROP"),
                need("other", "INSERT"),
                need("other", "INSERT"),
            ],
        );
        assert_eq!(
            m.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
            [
                "DROP on `lab_a`.* (for `CREATE DATABASE `lab_a``)",
                "INSERT on `other`.* (for `CREATE DATABASE `other``)"
            ]
        );
        let e = crate::Error::Insufficient {
            account: "'r'@'%'".into(),
            missing: m[..1].to_vec(),
        };
        assert_eq!(
            e.to_string(),
            "refusing to run: 'r'@'%' lacks DROP on `lab_a`.* (for `CREATE DATABASE `lab_a``); nothing was changed"
        );
    }

    #[test]
    fn grant_option_on_the_exact_pattern_is_enough() {
        let h = held(&[
            "GRANT USAGE ON *.* TO `m`@`%`",
            r"GRANT ALL PRIVILEGES ON `erin\_%`.* TO `m`@`%` WITH GRANT OPTION",
        ]);
        let step = [Step::Grant {
            privileges: PrivilegeSet::named(["SELECT"]),
            on: SchemaPattern::Prefix("erin".into()),
            to: Grantee::Account(Account::new("erin", "%")),
        }];
        assert_eq!(missing(&step, &h, Flavor::Mariadb, &schema_all()), []);
        let other = [Step::Grant {
            privileges: PrivilegeSet::named(["SELECT"]),
            on: SchemaPattern::Prefix("bob".into()),
            to: Grantee::Account(Account::new("bob", "%")),
        }];
        let m = missing(&other, &h, Flavor::Mariadb, &schema_all());
        assert_eq!(
            m.iter().map(|m| m.privilege.as_str()).collect::<Vec<_>>(),
            ["GRANT OPTION", "SELECT"]
        );
    }
}
