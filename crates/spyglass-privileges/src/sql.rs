//! Statements and their SQL for each flavor. Pure: no server involved.
//!
//! Differences that matter (../shared/docs/SERVERS.md): MySQL roles are
//! accounts (`'r'@'%'`), MariaDB roles have no host; default roles are set
//! with `SET DEFAULT ROLE ALL TO` on MySQL
//! (<https://dev.mysql.com/doc/refman/8.0/en/set-default-role.html>) and
//! `SET DEFAULT ROLE r FOR` on MariaDB, one role per account
//! (<https://mariadb.com/kb/en/set-default-role/>).

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;
use spyglass_db::{quote, Flavor, Secret};

use crate::live::{ObjectGrant, ObjectKind};
use crate::model::{role_sql, Account, Grantee, PrivilegeSet, SchemaPattern};

/// One change to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// `CREATE ROLE`.
    CreateRole {
        /// Role name.
        role: String,
    },
    /// `CREATE USER ... IDENTIFIED BY ...` (optionally `PASSWORD EXPIRE`).
    CreateUser {
        /// The new account.
        account: Account,
        /// Its first password.
        password: Secret,
        /// Force a change at first login.
        expire: bool,
    },
    /// `ALTER USER ... IDENTIFIED BY` (an admin setting someone's password).
    SetPassword {
        /// Whose.
        account: Account,
        /// New password.
        password: Secret,
        /// Force a change at next login.
        expire: bool,
    },
    /// `GRANT privileges ON pattern TO grantee`.
    Grant {
        /// What.
        privileges: PrivilegeSet,
        /// Where.
        on: SchemaPattern,
        /// To whom.
        to: Grantee,
    },
    /// `GRANT privileges ON *.* TO grantee` (global).
    GrantGlobal {
        /// What.
        privileges: Vec<String>,
        /// To whom.
        to: Grantee,
    },
    /// `REVOKE privileges ON pattern FROM grantee`.
    Revoke {
        /// What.
        privileges: PrivilegeSet,
        /// Where.
        on: SchemaPattern,
        /// From whom.
        from: Grantee,
    },
    /// `REVOKE privileges ON *.* FROM grantee`.
    RevokeGlobal {
        /// What.
        privileges: Vec<String>,
        /// From whom.
        from: Grantee,
    },
    /// `GRANT role TO account`.
    GrantRole {
        /// Role name.
        role: String,
        /// Member.
        to: Account,
    },
    /// `REVOKE role FROM account`.
    RevokeRole {
        /// Role name.
        role: String,
        /// Member.
        from: Account,
    },
    /// Make `role` active at login for `account`.
    SetDefaultRole {
        /// Role name.
        role: String,
        /// Member.
        account: Account,
    },
    /// Put an account's default roles back as they were (the undo of
    /// [`Step::SetDefaultRole`]); empty = `NONE`.
    RestoreDefaultRoles {
        /// Roles active at login before.
        roles: BTreeSet<String>,
        /// Whose.
        account: Account,
    },
    /// `GRANT privileges ON [PROCEDURE|FUNCTION] db.object TO grantee`
    /// (the undo of [`Step::RevokeObject`]).
    GrantObject {
        /// What and where.
        grant: ObjectGrant,
        /// To whom.
        to: Grantee,
    },
    /// `REVOKE privileges ON [PROCEDURE|FUNCTION] db.object FROM grantee`:
    /// a table, column or routine grant, which the policy never gives.
    RevokeObject {
        /// What and where.
        grant: ObjectGrant,
        /// From whom.
        from: Grantee,
    },
    /// `ALTER USER ... ACCOUNT LOCK`.
    Lock {
        /// Whose.
        account: Account,
    },
    /// `DROP USER`.
    DropUser {
        /// Whose.
        account: Account,
    },
}

/// Whether rendered SQL shows passwords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reveal {
    /// `IDENTIFIED BY <password>`: for printing. Not valid SQL on purpose, so
    /// a printed script cannot silently give an account a known password.
    Redacted,
    /// The real, escaped password: only for sending to the server.
    Secrets,
}

const REDACTED: &str = "<password>";

impl Step {
    /// The SQL for `flavor`.
    pub fn sql(&self, flavor: Flavor, reveal: Reveal) -> String {
        let pw = |p: &Secret| match reveal {
            Reveal::Redacted => REDACTED.to_owned(),
            Reveal::Secrets => quote::string(p.expose()),
        };
        match self {
            Step::CreateRole { role } => format!("CREATE ROLE {}", role_sql(role, flavor)),
            Step::CreateUser {
                account,
                password,
                expire,
            } => format!(
                "CREATE USER {} IDENTIFIED BY {}{}",
                account.sql(),
                pw(password),
                if *expire { " PASSWORD EXPIRE" } else { "" }
            ),
            Step::SetPassword {
                account,
                password,
                expire,
            } => format!(
                "ALTER USER {} IDENTIFIED BY {}{}",
                account.sql(),
                pw(password),
                if *expire { " PASSWORD EXPIRE" } else { "" }
            ),
            Step::Grant { privileges, on, to } => format!(
                "GRANT {} ON {} TO {}",
                privileges.sql(),
                on.sql(),
                to.sql(flavor)
            ),
            Step::GrantGlobal { privileges, to } => format!(
                "GRANT {} ON *.* TO {}",
                privileges.join(", "),
                to.sql(flavor)
            ),
            Step::Revoke {
                privileges,
                on,
                from,
            } => format!(
                "REVOKE {} ON {} FROM {}",
                privileges.sql(),
                on.sql(),
                from.sql(flavor)
            ),
            Step::RevokeGlobal { privileges, from } => format!(
                "REVOKE {} ON *.* FROM {}",
                privileges.join(", "),
                from.sql(flavor)
            ),
            Step::GrantRole { role, to } => {
                format!("GRANT {} TO {}", role_sql(role, flavor), to.sql())
            }
            Step::RevokeRole { role, from } => {
                format!("REVOKE {} FROM {}", role_sql(role, flavor), from.sql())
            }
            Step::SetDefaultRole { role, account } => match flavor {
                // ALL = every role granted to the account; we grant exactly one managed role.
                Flavor::Mysql => format!("SET DEFAULT ROLE ALL TO {}", account.sql()),
                Flavor::Mariadb => format!(
                    "SET DEFAULT ROLE {} FOR {}",
                    role_sql(role, flavor),
                    account.sql()
                ),
            },
            Step::RestoreDefaultRoles { roles, account } => {
                let list = if roles.is_empty() {
                    "NONE".to_owned()
                } else {
                    roles
                        .iter()
                        .map(|r| role_sql(r, flavor))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                match flavor {
                    Flavor::Mysql => format!("SET DEFAULT ROLE {list} TO {}", account.sql()),
                    // MariaDB keeps one default role.
                    Flavor::Mariadb => format!("SET DEFAULT ROLE {list} FOR {}", account.sql()),
                }
            }
            Step::GrantObject { grant, to } => {
                let plain: BTreeSet<String> = grant
                    .privileges
                    .iter()
                    .filter(|p| *p != "GRANT OPTION")
                    .cloned()
                    .collect();
                format!(
                    "GRANT {} ON {} TO {}{}",
                    object_privileges(grant, &plain),
                    object_target(grant),
                    to.sql(flavor),
                    if grant.privileges.contains("GRANT OPTION") {
                        " WITH GRANT OPTION"
                    } else {
                        ""
                    }
                )
            }
            Step::RevokeObject { grant, from } => format!(
                "REVOKE {} ON {} FROM {}",
                object_privileges(grant, &grant.privileges),
                object_target(grant),
                from.sql(flavor)
            ),
            Step::Lock { account } => format!("ALTER USER {} ACCOUNT LOCK", account.sql()),
            Step::DropUser { account } => format!("DROP USER {}", account.sql()),
        }
    }

    /// The step that takes this one back, for undoing a failed command:
    /// `None` for steps that cannot be undone (passwords, locks, drops).
    /// `before` is the server as it was before the command ran.
    pub fn inverse(&self, before: &crate::live::LiveState) -> Option<Step> {
        Some(match self.clone() {
            Step::CreateRole { .. } | Step::SetPassword { .. } => return None,
            Step::Lock { .. } | Step::DropUser { .. } => return None,
            Step::CreateUser { account, .. } => Step::DropUser { account },
            Step::Grant { privileges, on, to } => Step::Revoke {
                privileges,
                on,
                from: to,
            },
            Step::Revoke {
                privileges,
                on,
                from,
            } => Step::Grant {
                privileges,
                on,
                to: from,
            },
            Step::GrantGlobal { privileges, to } => Step::RevokeGlobal {
                privileges,
                from: to,
            },
            Step::RevokeGlobal { privileges, from } => Step::GrantGlobal {
                privileges,
                to: from,
            },
            Step::GrantRole { role, to } => Step::RevokeRole { role, from: to },
            Step::RevokeRole { role, from } => Step::GrantRole { role, to: from },
            Step::SetDefaultRole { account, .. } | Step::RestoreDefaultRoles { account, .. } => {
                Step::RestoreDefaultRoles {
                    roles: before
                        .default_roles
                        .get(&account)
                        .cloned()
                        .unwrap_or_default(),
                    account,
                }
            }
            Step::GrantObject { grant, to } => Step::RevokeObject { grant, from: to },
            Step::RevokeObject { grant, from } => Step::GrantObject { grant, to: from },
        })
    }

    /// The account this step changes, if it changes one (not a role).
    pub fn account(&self) -> Option<&Account> {
        match self {
            Step::CreateUser { account, .. }
            | Step::SetPassword { account, .. }
            | Step::SetDefaultRole { account, .. }
            | Step::RestoreDefaultRoles { account, .. }
            | Step::Lock { account }
            | Step::DropUser { account } => Some(account),
            Step::GrantRole { to, .. } => Some(to),
            Step::RevokeRole { from, .. } => Some(from),
            Step::Grant {
                to: Grantee::Account(a),
                ..
            }
            | Step::GrantGlobal {
                to: Grantee::Account(a),
                ..
            }
            | Step::GrantObject {
                to: Grantee::Account(a),
                ..
            } => Some(a),
            Step::Revoke {
                from: Grantee::Account(a),
                ..
            }
            | Step::RevokeGlobal {
                from: Grantee::Account(a),
                ..
            }
            | Step::RevokeObject {
                from: Grantee::Account(a),
                ..
            } => Some(a),
            _ => None,
        }
    }

    /// True for steps that take something away from an account or role.
    pub fn removes(&self) -> bool {
        matches!(
            self,
            Step::Revoke { .. }
                | Step::RevokeGlobal { .. }
                | Step::RevokeObject { .. }
                | Step::RevokeRole { .. }
                | Step::Lock { .. }
                | Step::DropUser { .. }
        )
    }
}

/// `SELECT, INSERT` for a table or routine grant, `SELECT (`c`), INSERT (`c`)` for a column.
fn object_privileges(grant: &ObjectGrant, privileges: &BTreeSet<String>) -> String {
    let list: Vec<String> = match &grant.column {
        Some(c) if grant.kind == ObjectKind::Column => privileges
            .iter()
            .map(|p| format!("{p} ({})", quote::ident(c)))
            .collect(),
        _ => privileges.iter().cloned().collect(),
    };
    list.join(", ")
}

/// `` `db`.`t` `` or `` PROCEDURE `db`.`p` ``.
fn object_target(grant: &ObjectGrant) -> String {
    let q = quote::qualified(&grant.schema, &grant.name);
    match grant.kind {
        ObjectKind::Procedure => format!("PROCEDURE {q}"),
        ObjectKind::Function => format!("FUNCTION {q}"),
        ObjectKind::Table | ObjectKind::Column => q,
    }
}

impl fmt::Display for Step {
    /// MySQL-flavored, passwords redacted: for messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sql(Flavor::Mysql, Reveal::Redacted))
    }
}

/// A statement as printed or reported (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct RenderedStep {
    /// SQL with passwords redacted.
    pub sql: String,
}

/// Renders `steps` for printing: one statement a line, `;`-terminated.
pub fn script(steps: &[Step], flavor: Flavor) -> String {
    let mut s = String::new();
    for step in steps {
        s.push_str(&step.sql(flavor, Reveal::Redacted));
        s.push_str(";\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(u: &str) -> Account {
        Account::new(u, "%")
    }

    /// Golden SQL for every step on both flavors.
    #[test]
    fn golden_sql_both_flavors() {
        let pw = Secret::new("it's\\x");
        let steps = vec![
            Step::CreateRole {
                role: "dj_user".into(),
            },
            Step::Grant {
                privileges: PrivilegeSet::named(["SELECT"]),
                on: SchemaPattern::All,
                to: Grantee::Role("dj_user".into()),
            },
            Step::Grant {
                privileges: PrivilegeSet::All,
                on: SchemaPattern::Prefix("common".into()),
                to: Grantee::Role("dj_user".into()),
            },
            Step::CreateUser {
                account: acc("alice"),
                password: pw.clone(),
                expire: true,
            },
            Step::GrantRole {
                role: "dj_user".into(),
                to: acc("alice"),
            },
            Step::SetDefaultRole {
                role: "dj_user".into(),
                account: acc("alice"),
            },
            Step::Grant {
                privileges: PrivilegeSet::All,
                on: SchemaPattern::Prefix("alice".into()),
                to: Grantee::Account(acc("alice")),
            },
            Step::Revoke {
                privileges: PrivilegeSet::named(["CREATE", "DROP"]),
                on: SchemaPattern::Prefix("lfp".into()),
                from: Grantee::Role("dj_user".into()),
            },
            Step::RevokeRole {
                role: "dj_guest".into(),
                from: acc("alice"),
            },
            Step::GrantGlobal {
                privileges: vec!["SELECT".into(), "RELOAD".into()],
                to: Grantee::Account(Account::new("backup", "localhost")),
            },
            Step::SetPassword {
                account: acc("alice"),
                password: pw.clone(),
                expire: false,
            },
            Step::Lock {
                account: acc("alice"),
            },
            Step::DropUser {
                account: acc("alice"),
            },
        ];
        let mysql = r"CREATE ROLE 'dj_user'@'%';
GRANT SELECT ON `%`.* TO 'dj_user'@'%';
GRANT ALL PRIVILEGES ON `common\_%`.* TO 'dj_user'@'%';
CREATE USER 'alice'@'%' IDENTIFIED BY <password> PASSWORD EXPIRE;
GRANT 'dj_user'@'%' TO 'alice'@'%';
SET DEFAULT ROLE ALL TO 'alice'@'%';
GRANT ALL PRIVILEGES ON `alice\_%`.* TO 'alice'@'%';
REVOKE CREATE, DROP ON `lfp\_%`.* FROM 'dj_user'@'%';
REVOKE 'dj_guest'@'%' FROM 'alice'@'%';
GRANT SELECT, RELOAD ON *.* TO 'backup'@'localhost';
ALTER USER 'alice'@'%' IDENTIFIED BY <password>;
ALTER USER 'alice'@'%' ACCOUNT LOCK;
DROP USER 'alice'@'%';
";
        let mariadb = r"CREATE ROLE `dj_user`;
GRANT SELECT ON `%`.* TO `dj_user`;
GRANT ALL PRIVILEGES ON `common\_%`.* TO `dj_user`;
CREATE USER 'alice'@'%' IDENTIFIED BY <password> PASSWORD EXPIRE;
GRANT `dj_user` TO 'alice'@'%';
SET DEFAULT ROLE `dj_user` FOR 'alice'@'%';
GRANT ALL PRIVILEGES ON `alice\_%`.* TO 'alice'@'%';
REVOKE CREATE, DROP ON `lfp\_%`.* FROM `dj_user`;
REVOKE `dj_guest` FROM 'alice'@'%';
GRANT SELECT, RELOAD ON *.* TO 'backup'@'localhost';
ALTER USER 'alice'@'%' IDENTIFIED BY <password>;
ALTER USER 'alice'@'%' ACCOUNT LOCK;
DROP USER 'alice'@'%';
";
        assert_eq!(script(&steps, Flavor::Mysql), mysql);
        assert_eq!(script(&steps, Flavor::Mariadb), mariadb);
        // Only the executed form carries the password, escaped.
        assert_eq!(
            steps[3].sql(Flavor::Mariadb, Reveal::Secrets),
            r"CREATE USER 'alice'@'%' IDENTIFIED BY 'it\'s\\x' PASSWORD EXPIRE"
        );
        assert!(!format!("{:?}", steps[3]).contains("it's"));
    }

    #[test]
    fn odd_names_stay_quoted() {
        let s = Step::Grant {
            privileges: PrivilegeSet::All,
            on: SchemaPattern::Raw("we`ird".into()),
            to: Grantee::Account(Account::new("o'b", "%")),
        };
        assert_eq!(
            s.sql(Flavor::Mysql, Reveal::Redacted),
            r"GRANT ALL PRIVILEGES ON `we``ird`.* TO 'o\'b'@'%'"
        );
    }
}
