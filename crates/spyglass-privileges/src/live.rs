//! The server's accounts, roles and grants as they are now, read through the
//! protocol from the grant tables (never by parsing client output).
//!
//! | what | MySQL 8+/9 | MariaDB 10.4+ |
//! |---|---|---|
//! | accounts, lock, password state | `mysql.user` | `mysql.global_priv` (JSON) |
//! | global privileges | `mysql.user` `*_priv`, `mysql.global_grants` | `mysql.user` (a view) `*_priv` |
//! | role membership | `mysql.role_edges` | `mysql.roles_mapping` |
//! | default roles | `mysql.default_roles` | `global_priv` `$.default_role` |
//! | schema privileges | `mysql.db` | `mysql.db` (roles with `Host = ''`) |
//! | table privileges | `mysql.tables_priv` | `mysql.tables_priv` |
//!
//! One query per table, whatever the number of accounts. MariaDB privileges
//! that have no column in the `mysql.user` view (e.g. `SLAVE MONITOR`) are not
//! seen.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::mysql::{from_value_opt, Row, Value};
use spyglass_db::{DbError, Flavor, Session};

use crate::model::Account;
use crate::Error;

/// One login account (roles are kept apart in [`LiveState::roles`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveAccount {
    /// Who.
    pub account: Account,
    /// `ACCOUNT LOCK`.
    pub locked: bool,
    /// The password must be changed at the next login.
    pub password_expired: bool,
    /// When the password was last set (Unix seconds), if the server records it.
    pub password_last_changed: Option<i64>,
    /// Some credential is required to log in (a password hash, or a
    /// socket/PAM/GSSAPI plugin).
    pub has_password: bool,
    /// Authentication plugin.
    pub plugin: String,
    /// MySQL `FAILED_LOGIN_ATTEMPTS` (0 = never locks).
    pub failed_login_attempts: u64,
    /// Privileges on `*.*` (GRANT OPTION included as `GRANT OPTION`).
    pub global: BTreeSet<String>,
}

impl LiveAccount {
    /// An account taken to exist, unlocked and with a password, for offline
    /// plans (`users sql --flavor F lock NAME`).
    pub fn assumed(account: &Account) -> LiveAccount {
        LiveAccount {
            account: account.clone(),
            locked: false,
            password_expired: false,
            password_last_changed: None,
            has_password: true,
            plugin: String::new(),
            failed_login_attempts: 0,
            global: BTreeSet::new(),
        }
    }

    /// A server administrator: may create accounts or grant anything.
    pub fn is_administrator(&self) -> bool {
        self.global.contains("CREATE USER")
            || self.global.contains("GRANT OPTION")
            || self.global.contains("SUPER")
    }

    /// Accounts the server itself owns (`mysql.sys`, `mariadb.sys`, ...).
    pub fn is_system(&self) -> bool {
        let u = self.account.user.as_str();
        u.starts_with("mysql.") || u == "mariadb.sys" || u == "debian-sys-maint" || u == "PUBLIC"
    }
}

/// What a grant below schema level is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    /// `mysql.tables_priv`.
    Table,
    /// `mysql.columns_priv`.
    Column,
    /// `mysql.procs_priv`, a procedure.
    Procedure,
    /// `mysql.procs_priv`, a function.
    Function,
}

/// A table, column or routine grant (none of which the policy ever gives).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ObjectGrant {
    /// What it is on.
    pub kind: ObjectKind,
    /// Schema.
    pub schema: String,
    /// Table or routine name.
    pub name: String,
    /// The column, for column grants.
    pub column: Option<String>,
    /// Privileges as GRANT names (`SELECT`, `EXECUTE`, `GRANT OPTION`).
    pub privileges: BTreeSet<String>,
}

impl ObjectGrant {
    /// `table `db`.`t``, `column `c` of `db`.`t``, `procedure `db`.`p``.
    pub fn describe(&self) -> String {
        let q = spyglass_db::quote::qualified(&self.schema, &self.name);
        match (self.kind, &self.column) {
            (ObjectKind::Column, Some(c)) => {
                format!("column {} of {q}", spyglass_db::quote::ident(c))
            }
            (ObjectKind::Procedure, _) => format!("procedure {q}"),
            (ObjectKind::Function, _) => format!("function {q}"),
            _ => format!("table {q}"),
        }
    }
}

/// `Select,Show view,Grant` (a grant table's SET column) as GRANT names.
fn set_privileges(set: &str) -> BTreeSet<String> {
    set.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p {
            "Grant" => "GRANT OPTION".to_owned(),
            "Delete versioning rows" => "DELETE HISTORY".to_owned(),
            p => p.to_ascii_uppercase(),
        })
        .collect()
}

/// Everything the planner and the audit need to know about the server.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LiveState {
    /// Login accounts.
    pub accounts: BTreeMap<Account, LiveAccount>,
    /// Role names.
    pub roles: BTreeSet<String>,
    /// Roles granted to each account (not counting MariaDB's creator-admin rows).
    pub members: BTreeMap<Account, BTreeSet<String>>,
    /// Roles active at login for each account.
    pub default_roles: BTreeMap<Account, BTreeSet<String>>,
    /// Schema privileges of roles: role -> stored pattern -> privileges.
    pub role_schema: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    /// Global privileges of roles.
    pub role_global: BTreeMap<String, BTreeSet<String>>,
    /// Schema privileges granted directly to accounts.
    pub account_schema: BTreeMap<Account, BTreeMap<String, BTreeSet<String>>>,
    /// Table-, column- and routine-level grants held directly by accounts.
    pub account_objects: BTreeMap<Account, Vec<ObjectGrant>>,
    /// Table-, column- and routine-level grants held by roles.
    pub role_objects: BTreeMap<String, Vec<ObjectGrant>>,
    /// What `ALL PRIVILEGES` on a schema means on this server.
    pub schema_all: BTreeSet<String>,
    /// MySQL's `activate_all_roles_on_login`.
    pub activate_all_roles_on_login: bool,
    /// MariaDB's `max_password_errors` (None on MySQL).
    pub max_password_errors: Option<u64>,
}

impl LiveState {
    /// The roles active when `account` logs in.
    pub fn active_at_login(&self, account: &Account) -> BTreeSet<String> {
        let granted = self.members.get(account).cloned().unwrap_or_default();
        if self.activate_all_roles_on_login {
            return granted;
        }
        let defaults = self.default_roles.get(account).cloned().unwrap_or_default();
        granted.intersection(&defaults).cloned().collect()
    }

    /// Schema privileges held directly by `account`.
    pub fn direct_schema(&self, account: &Account) -> BTreeMap<String, BTreeSet<String>> {
        self.account_schema
            .get(account)
            .cloned()
            .unwrap_or_default()
    }
}

/// Maps a grant-table column (`Create_tmp_table_priv`) to the privilege GRANT names.
pub fn privilege_of_column(column: &str, flavor: Flavor) -> Option<String> {
    let base = column.strip_suffix("_priv")?;
    Some(match base {
        "Grant" => "GRANT OPTION".into(),
        "Create_tmp_table" => "CREATE TEMPORARY TABLES".into(),
        "Show_db" => "SHOW DATABASES".into(),
        "Repl_slave" => "REPLICATION SLAVE".into(),
        // MariaDB 10.5 renamed REPLICATION CLIENT to BINLOG MONITOR.
        "Repl_client" if flavor == Flavor::Mariadb => "BINLOG MONITOR".into(),
        "Repl_client" => "REPLICATION CLIENT".into(),
        other => other.replace('_', " ").to_ascii_uppercase(),
    })
}

fn q(what: &str) -> impl FnOnce(spyglass_db::mysql::Error) -> Error + '_ {
    move |e| Error::Db(DbError::query(format!("reading {what}"), e))
}

fn text(row: &Row, i: usize) -> String {
    match row.as_ref(i) {
        Some(Value::NULL) | None => String::new(),
        Some(v) => from_value_opt::<String>(v.clone()).unwrap_or_default(),
    }
}

fn yes(row: &Row, i: usize) -> bool {
    matches!(text(row, i).as_str(), "Y" | "y")
}

/// Columns ending in `_priv` of a `mysql` table, in order.
fn priv_columns(session: &mut Session, table: &str) -> Result<Vec<String>, Error> {
    session
        .conn()
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = 'mysql' AND TABLE_NAME = ? AND COLUMN_NAME LIKE '%\\_priv' \
             ORDER BY ORDINAL_POSITION",
            (table,),
        )
        .map_err(q("the grant table columns"))
}

/// Reads the live state.
pub fn read(session: &mut Session) -> Result<LiveState, Error> {
    let flavor = session.server().flavor;
    let mut st = LiveState::default();
    let mut role_accounts: BTreeSet<Account> = BTreeSet::new();

    // Accounts.
    match flavor {
        Flavor::Mysql => {
            // User_attributes (FAILED_LOGIN_ATTEMPTS) arrived in MySQL 8.0.19.
            let has_attributes: Option<String> = session
                .conn()
                .query_first(
                    "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'mysql' \
                     AND TABLE_NAME = 'user' AND COLUMN_NAME = 'User_attributes'",
                )
                .map_err(q("the mysql.user columns"))?;
            let failed_logins = if has_attributes.is_some() {
                "CAST(COALESCE(JSON_EXTRACT(User_attributes, '$.Password_locking.failed_login_attempts'), 0) AS UNSIGNED)"
            } else {
                "0"
            };
            let rows: Vec<Row> = session
                .conn()
                .query(format!(
                    "SELECT User, Host, account_locked, password_expired, \
                     CAST(UNIX_TIMESTAMP(password_last_changed) AS SIGNED), \
                     IF(authentication_string <> '', 'Y', 'N'), plugin, {failed_logins} \
                     FROM mysql.user"
                ))
                .map_err(q("mysql.user"))?;
            let edges: Vec<(String, String, String, String)> = session
                .conn()
                .query("SELECT FROM_USER, FROM_HOST, TO_USER, TO_HOST FROM mysql.role_edges")
                .map_err(q("mysql.role_edges"))?;
            let from: BTreeSet<Account> = edges
                .iter()
                .map(|(u, h, _, _)| Account::new(u, h))
                .collect();
            for r in rows {
                let account = Account::new(text(&r, 0), text(&r, 1));
                let locked = yes(&r, 2);
                let expired = yes(&r, 3);
                let has_pw = yes(&r, 5);
                // CREATE ROLE makes a locked, expired account without a password.
                if from.contains(&account) || (locked && expired && !has_pw && account.host == "%")
                {
                    st.roles.insert(account.user.clone());
                    role_accounts.insert(account);
                    continue;
                }
                let plugin = text(&r, 6);
                st.accounts.insert(
                    account.clone(),
                    LiveAccount {
                        account,
                        locked,
                        password_expired: expired,
                        password_last_changed: text(&r, 4).parse().ok(),
                        has_password: has_pw || is_socket_plugin(&plugin),
                        plugin,
                        failed_login_attempts: text(&r, 7).parse().unwrap_or(0),
                        global: BTreeSet::new(),
                    },
                );
            }
            for (fu, fh, tu, th) in edges {
                let to = Account::new(tu, th);
                if st.accounts.contains_key(&to) {
                    let _ = fh;
                    st.members.entry(to).or_default().insert(fu);
                }
            }
            let defaults: Vec<(String, String, String)> = session
                .conn()
                .query("SELECT USER, HOST, DEFAULT_ROLE_USER FROM mysql.default_roles")
                .map_err(q("mysql.default_roles"))?;
            for (u, h, r) in defaults {
                st.default_roles
                    .entry(Account::new(u, h))
                    .or_default()
                    .insert(r);
            }
            let v: Option<String> = session
                .conn()
                .query_first("SELECT CAST(@@GLOBAL.activate_all_roles_on_login AS CHAR)")
                .map_err(q("activate_all_roles_on_login"))?;
            st.activate_all_roles_on_login = matches!(v.as_deref(), Some("1" | "ON"));
        }
        Flavor::Mariadb => {
            let rows: Vec<Row> = session
                .conn()
                .query(
                    "SELECT User, Host, \
                     COALESCE(JSON_VALUE(Priv, '$.account_locked'), 'false'), \
                     JSON_VALUE(Priv, '$.password_last_changed'), \
                     IF(COALESCE(JSON_VALUE(Priv, '$.authentication_string'), '') <> '' \
                        OR JSON_EXISTS(Priv, '$.auth_or'), 'Y', 'N'), \
                     COALESCE(JSON_VALUE(Priv, '$.plugin'), ''), \
                     COALESCE(JSON_VALUE(Priv, '$.is_role'), 'false'), \
                     COALESCE(JSON_VALUE(Priv, '$.default_role'), '') \
                     FROM mysql.global_priv",
                )
                .map_err(q("mysql.global_priv"))?;
            for r in rows {
                let account = Account::new(text(&r, 0), text(&r, 1));
                if is_true(&text(&r, 6)) {
                    st.roles.insert(account.user.clone());
                    role_accounts.insert(account);
                    continue;
                }
                let changed = text(&r, 3);
                // password_last_changed = 0 marks an expired password (PASSWORD EXPIRE).
                let expired = changed == "0";
                let plugin = text(&r, 5);
                let default_role = text(&r, 7);
                if !default_role.is_empty() {
                    st.default_roles
                        .entry(account.clone())
                        .or_default()
                        .insert(default_role);
                }
                st.accounts.insert(
                    account.clone(),
                    LiveAccount {
                        account,
                        locked: is_true(&text(&r, 2)),
                        password_expired: expired,
                        password_last_changed: changed.parse().ok().filter(|t| *t > 0),
                        has_password: yes(&r, 4) || is_socket_plugin(&plugin),
                        plugin,
                        failed_login_attempts: 0,
                        global: BTreeSet::new(),
                    },
                );
            }
            let maps: Vec<(String, String, String, String)> = session
                .conn()
                .query("SELECT User, Host, Role, Admin_option FROM mysql.roles_mapping")
                .map_err(q("mysql.roles_mapping"))?;
            for (u, h, role, admin) in maps {
                // CREATE ROLE grants the creator the role WITH ADMIN OPTION: that is
                // the right to hand the role out, not membership we manage.
                if admin == "Y" {
                    continue;
                }
                let to = Account::new(u, h);
                if st.accounts.contains_key(&to) {
                    st.members.entry(to).or_default().insert(role);
                }
            }
            let v: Option<u64> = session
                .conn()
                .query_first("SELECT @@GLOBAL.max_password_errors")
                .map_err(q("max_password_errors"))?;
            st.max_password_errors = v;
        }
    }

    // Global privileges (static, from the *_priv columns).
    let cols = priv_columns(session, "user")?;
    if !cols.is_empty() {
        let sql = format!(
            "SELECT User, Host, {} FROM mysql.user",
            cols.iter()
                .map(|c| spyglass_db::quote::ident(c))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rows: Vec<Row> = session.conn().query(sql).map_err(q("mysql.user"))?;
        for r in rows {
            let account = Account::new(text(&r, 0), text(&r, 1));
            let held: BTreeSet<String> = cols
                .iter()
                .enumerate()
                .filter(|(i, _)| yes(&r, i + 2))
                .filter_map(|(_, c)| privilege_of_column(c, flavor))
                .collect();
            put_global(&mut st, &role_accounts, account, held);
        }
    }
    if flavor == Flavor::Mysql {
        // Dynamic privileges (BACKUP_ADMIN, ...).
        let rows: Vec<(String, String, String, String)> = session
            .conn()
            .query("SELECT USER, HOST, PRIV, WITH_GRANT_OPTION FROM mysql.global_grants")
            .map_err(q("mysql.global_grants"))?;
        for (u, h, p, _) in rows {
            put_global(
                &mut st,
                &role_accounts,
                Account::new(u, h),
                BTreeSet::from([p]),
            );
        }
    }

    // Schema privileges.
    let cols = priv_columns(session, "db")?;
    st.schema_all = cols
        .iter()
        .filter(|c| *c != "Grant_priv")
        .filter_map(|c| privilege_of_column(c, flavor))
        .collect();
    if !cols.is_empty() {
        let sql = format!(
            "SELECT User, Host, Db, {} FROM mysql.db",
            cols.iter()
                .map(|c| spyglass_db::quote::ident(c))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rows: Vec<Row> = session.conn().query(sql).map_err(q("mysql.db"))?;
        for r in rows {
            let account = Account::new(text(&r, 0), text(&r, 1));
            let db = text(&r, 2);
            let held: BTreeSet<String> = cols
                .iter()
                .enumerate()
                .filter(|(i, _)| yes(&r, i + 3))
                .filter_map(|(_, c)| privilege_of_column(c, flavor))
                .collect();
            if held.is_empty() {
                continue;
            }
            if is_role(&st, &role_accounts, &account, flavor) {
                st.role_schema
                    .entry(account.user)
                    .or_default()
                    .entry(db)
                    .or_default()
                    .extend(held);
            } else if st.accounts.contains_key(&account) {
                st.account_schema
                    .entry(account)
                    .or_default()
                    .entry(db)
                    .or_default()
                    .extend(held);
            }
        }
    }
    // Below schema level: tables, columns, routines. Each query gives
    // user, host, schema, object, column (or ''), kind, privilege set.
    let mut objects: Vec<(Account, ObjectGrant)> = Vec::new();
    for (table, sql) in [
        (
            "mysql.tables_priv",
            "SELECT User, Host, Db, Table_name, '', 'TABLE', CAST(Table_priv AS CHAR) \
             FROM mysql.tables_priv",
        ),
        (
            "mysql.columns_priv",
            "SELECT User, Host, Db, Table_name, Column_name, 'COLUMN', CAST(Column_priv AS CHAR) \
             FROM mysql.columns_priv",
        ),
        (
            "mysql.procs_priv",
            "SELECT User, Host, Db, Routine_name, '', CAST(Routine_type AS CHAR), CAST(Proc_priv AS CHAR) \
             FROM mysql.procs_priv",
        ),
    ] {
        let rows: Vec<Row> = session.conn().query(sql).map_err(q(table))?;
        for r in rows {
            let privileges = set_privileges(&text(&r, 6));
            if privileges.is_empty() {
                // A tables_priv row holding only column privileges: columns_priv has them.
                continue;
            }
            let (kind, column) = match text(&r, 5).as_str() {
                "COLUMN" => (ObjectKind::Column, Some(text(&r, 4))),
                "FUNCTION" => (ObjectKind::Function, None),
                "PROCEDURE" => (ObjectKind::Procedure, None),
                _ => (ObjectKind::Table, None),
            };
            objects.push((
                Account::new(text(&r, 0), text(&r, 1)),
                ObjectGrant {
                    kind,
                    schema: text(&r, 2),
                    name: text(&r, 3),
                    column,
                    privileges,
                },
            ));
        }
    }
    objects.sort();
    for (a, g) in objects {
        if is_role(&st, &role_accounts, &a, flavor) {
            st.role_objects.entry(a.user).or_default().push(g);
        } else if st.accounts.contains_key(&a) {
            st.account_objects.entry(a).or_default().push(g);
        }
    }
    Ok(st)
}

fn is_role(st: &LiveState, role_accounts: &BTreeSet<Account>, a: &Account, f: Flavor) -> bool {
    match f {
        Flavor::Mysql => role_accounts.contains(a),
        Flavor::Mariadb => a.host.is_empty() && st.roles.contains(&a.user),
    }
}

fn put_global(
    st: &mut LiveState,
    role_accounts: &BTreeSet<Account>,
    account: Account,
    held: BTreeSet<String>,
) {
    if held.is_empty() {
        return;
    }
    if role_accounts.contains(&account) {
        st.role_global.entry(account.user).or_default().extend(held);
    } else if let Some(a) = st.accounts.get_mut(&account) {
        a.global.extend(held);
    }
}

/// MariaDB's JSON_VALUE gives `1` for JSON `true`.
fn is_true(v: &str) -> bool {
    matches!(v, "1" | "true")
}

fn is_socket_plugin(plugin: &str) -> bool {
    matches!(
        plugin,
        "unix_socket" | "auth_socket" | "gssapi" | "pam" | "auth_pam" | "authentication_pam"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_map_to_grant_names() {
        let cases = [
            ("Select_priv", Flavor::Mysql, "SELECT"),
            (
                "Create_tmp_table_priv",
                Flavor::Mysql,
                "CREATE TEMPORARY TABLES",
            ),
            ("Lock_tables_priv", Flavor::Mariadb, "LOCK TABLES"),
            ("Grant_priv", Flavor::Mysql, "GRANT OPTION"),
            ("Repl_client_priv", Flavor::Mysql, "REPLICATION CLIENT"),
            ("Repl_client_priv", Flavor::Mariadb, "BINLOG MONITOR"),
            ("Delete_history_priv", Flavor::Mariadb, "DELETE HISTORY"),
            ("Show_db_priv", Flavor::Mysql, "SHOW DATABASES"),
            ("Create_user_priv", Flavor::Mysql, "CREATE USER"),
        ];
        for (c, f, want) in cases {
            assert_eq!(privilege_of_column(c, f).as_deref(), Some(want), "{c}");
        }
        assert_eq!(privilege_of_column("max_questions", Flavor::Mysql), None);
    }

    #[test]
    fn active_at_login_follows_default_roles() {
        let a = Account::new("alice", "%");
        let mut st = LiveState::default();
        st.members
            .insert(a.clone(), BTreeSet::from(["dj_user".to_owned()]));
        assert!(st.active_at_login(&a).is_empty());
        st.activate_all_roles_on_login = true;
        assert_eq!(st.active_at_login(&a).len(), 1);
        st.activate_all_roles_on_login = false;
        st.default_roles
            .insert(a.clone(), BTreeSet::from(["dj_user".to_owned()]));
        assert_eq!(st.active_at_login(&a).len(), 1);
    }
}
