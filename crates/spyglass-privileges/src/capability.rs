//! What each spyglass-admin command family needs from the executing account.
//!
//! Requirements are either *required* (the family cannot work without it)
//! or *recommended* (it works in a degraded way: e.g. a backup without the
//! backup lock falls back to a weaker consistency and says so).

use serde::Serialize;
use spyglass_db::Flavor;

use crate::grants::HeldPrivileges;

/// A command family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// `users ...`: roles, accounts, grants.
    UserAdmin,
    /// `backup run`.
    Backup,
    /// `cleanup ...`: reads every `~external` table, deletes unused rows.
    Cleanup,
}

impl Family {
    /// Every family, in display order.
    pub const ALL: [Family; 3] = [Family::UserAdmin, Family::Backup, Family::Cleanup];

    /// Human name.
    pub fn name(self) -> &'static str {
        match self {
            Family::UserAdmin => "user admin",
            Family::Backup => "backup",
            Family::Cleanup => "cleanup",
        }
    }
}

/// Where a privilege is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// On `*.*`.
    Global,
    /// On every schema (`*.*` or `` `%`.* ``).
    AllSchemas,
    /// On the `mysql` system schema.
    MysqlSchema,
}

/// One privilege a family needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requirement {
    /// Privilege name as in GRANT.
    pub privilege: &'static str,
    /// Where.
    pub scope: Scope,
    /// False when the family still works without it, degraded.
    pub required: bool,
    /// Why it is needed.
    pub why: &'static str,
}

/// The outcome for one family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FamilyCheck {
    /// Which family.
    pub family: Family,
    /// Requirements the account does not meet.
    pub missing: Vec<Requirement>,
}

impl FamilyCheck {
    /// Missing requirements without which the family cannot work.
    pub fn missing_required(&self) -> impl Iterator<Item = &Requirement> {
        self.missing.iter().filter(|r| r.required)
    }
    /// Missing requirements that only degrade the family.
    pub fn missing_recommended(&self) -> impl Iterator<Item = &Requirement> {
        self.missing.iter().filter(|r| !r.required)
    }
}

const fn req(
    privilege: &'static str,
    scope: Scope,
    required: bool,
    why: &'static str,
) -> Requirement {
    Requirement {
        privilege,
        scope,
        required,
        why,
    }
}

/// The privileges `family` needs on a server of `flavor`.
pub fn requirements(family: Family, flavor: Flavor) -> Vec<Requirement> {
    use Scope::*;
    match family {
        Family::UserAdmin => vec![
            req(
                "CREATE USER",
                Global,
                true,
                "create and drop accounts and roles",
            ),
            req(
                "GRANT OPTION",
                Global,
                true,
                "grant privileges and roles to others",
            ),
            req(
                "SELECT",
                MysqlSchema,
                true,
                "read accounts, roles and grants",
            ),
        ],
        Family::Backup => {
            let mut v = vec![
                req("SELECT", AllSchemas, true, "read every table"),
                req("SHOW VIEW", AllSchemas, true, "dump view definitions"),
                req("TRIGGER", AllSchemas, true, "dump triggers"),
                req("EVENT", AllSchemas, false, "dump scheduled events"),
                req("SELECT", MysqlSchema, false, "dump accounts and grants"),
                req(
                    "RELOAD",
                    Global,
                    false,
                    "take the global read lock for a consistent snapshot",
                ),
            ];
            match flavor {
                Flavor::Mysql => {
                    v.push(req(
                        "BACKUP_ADMIN",
                        Global,
                        false,
                        "LOCK INSTANCE FOR BACKUP during the snapshot",
                    ));
                    v.push(req(
                        "REPLICATION CLIENT",
                        Global,
                        false,
                        "record the binary log position",
                    ));
                }
                Flavor::Mariadb => {
                    v.push(req(
                        "BINLOG MONITOR",
                        Global,
                        false,
                        "record the binary log position",
                    ));
                }
            }
            v
        }
        Family::Cleanup => vec![
            req(
                "SELECT",
                AllSchemas,
                true,
                "read every ~external table and the columns that reference it",
            ),
            req(
                "DELETE",
                AllSchemas,
                false,
                "delete unused ~external rows and orphan rows (apply)",
            ),
        ],
    }
}

/// Compares what the account holds with what `family` needs.
pub fn check(held: &HeldPrivileges, family: Family, flavor: Flavor) -> FamilyCheck {
    let missing = requirements(family, flavor)
        .into_iter()
        .filter(|r| {
            let has = match r.scope {
                Scope::Global => {
                    held.has_global(r.privilege)
                    // MariaDB 10.5 renamed REPLICATION CLIENT to BINLOG MONITOR; accept either.
                    || (r.privilege == "BINLOG MONITOR" && held.has_global("REPLICATION CLIENT"))
                    || (r.privilege == "REPLICATION CLIENT" && held.has_global("BINLOG MONITOR"))
                }
                Scope::AllSchemas => held.has_on_all_schemas(r.privilege),
                Scope::MysqlSchema => held.has_on_mysql_schema(r.privilege),
            };
            !has
        })
        .collect();
    FamilyCheck { family, missing }
}

/// [`check`] for every family.
pub fn check_all(held: &HeldPrivileges, flavor: Flavor) -> Vec<FamilyCheck> {
    Family::ALL
        .iter()
        .map(|f| check(held, *f, flavor))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(rows: &[&str]) -> HeldPrivileges {
        let mut h = HeldPrivileges::default();
        h.add_rows(rows.iter().copied());
        h
    }

    #[test]
    fn root_has_everything_on_mariadb() {
        let h = held(&["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"]);
        for c in check_all(&h, Flavor::Mariadb) {
            assert!(c.missing.is_empty(), "{c:?}");
        }
    }

    #[test]
    fn mysql_root_needs_dynamic_privileges_by_name() {
        let h = held(&["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"]);
        let c = check(&h, Family::Backup, Flavor::Mysql);
        assert_eq!(c.missing_required().count(), 0);
        assert_eq!(
            c.missing_recommended()
                .map(|r| r.privilege)
                .collect::<Vec<_>>(),
            ["BACKUP_ADMIN"]
        );
        let h = held(&[
            "GRANT SELECT, RELOAD ON *.* TO `root`@`localhost` WITH GRANT OPTION",
            "GRANT BACKUP_ADMIN ON *.* TO `root`@`localhost`",
        ]);
        assert!(!check(&h, Family::Backup, Flavor::Mysql)
            .missing
            .iter()
            .any(|r| r.privilege == "BACKUP_ADMIN"));
    }

    #[test]
    fn guest_can_scan_but_not_administer() {
        let h = held(&[
            "GRANT USAGE ON *.* TO `g`@`%`",
            "GRANT SELECT ON `%`.* TO `g`@`%`",
        ]);
        let users = check(&h, Family::UserAdmin, Flavor::Mariadb);
        assert_eq!(
            users
                .missing_required()
                .map(|r| r.privilege)
                .collect::<Vec<_>>(),
            ["CREATE USER", "GRANT OPTION"]
        );
        let cleanup = check(&h, Family::Cleanup, Flavor::Mariadb);
        assert_eq!(cleanup.missing_required().count(), 0);
        assert_eq!(
            cleanup
                .missing_recommended()
                .map(|r| r.privilege)
                .collect::<Vec<_>>(),
            ["DELETE"]
        );
    }
}
