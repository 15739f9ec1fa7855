//! Accounts, roles and grants as portable statements (`CREATE USER`,
//! `CREATE ROLE`, `GRANT`), not a copy of the `mysql` schema, whose layout
//! differs between MySQL and MariaDB.

use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::mysql::Conn;
use spyglass_db::{quote, DbError, Flavor};

use crate::Error;

/// Accounts the server owns; never dumped.
fn is_system(user: &str) -> bool {
    user.is_empty()
        || user == "root"
        || user == "PUBLIC"
        || user.starts_with("mysql.")
        || user.starts_with("mariadb.")
        || user == "debian-sys-maint"
}

/// The accounts script, or `None` when the account may not read `mysql.user`.
pub(crate) fn dump(conn: &mut Conn, flavor: Flavor) -> Result<Option<(String, usize)>, Error> {
    let q = |e| Error::Db(DbError::query("reading accounts", e));
    let accounts: Vec<(String, String, bool)> = match flavor {
        Flavor::Mariadb => match conn.query::<(String, String, String), _>(
            "SELECT user, host, is_role FROM mysql.user ORDER BY is_role DESC, user, host",
        ) {
            Ok(v) => v.into_iter().map(|(u, h, r)| (u, h, r == "Y")).collect(),
            Err(_) => return Ok(None),
        },
        Flavor::Mysql => {
            // print_identified_with_as_hex keeps binary password hashes printable (8.0.17+).
            let _ = conn.query_drop("SET SESSION print_identified_with_as_hex = ON");
            match conn.query::<(String, String, String), _>(
                "SELECT user, host, IF(account_locked = 'Y' AND authentication_string = '', 'Y', 'N') FROM mysql.user ORDER BY 3 DESC, user, host",
            ) {
                Ok(v) => v.into_iter().map(|(u, h, r)| (u, h, r == "Y")).collect(),
                Err(_) => return Ok(None),
            }
        }
    };
    let mut creates = String::new();
    let mut grants = String::new();
    let mut n = 0;
    for (user, host, is_role) in accounts.iter().filter(|(u, _, _)| !is_system(u)) {
        let create = if flavor == Flavor::Mariadb && *is_role {
            format!("CREATE ROLE IF NOT EXISTS {}", quote::ident(user))
        } else {
            // An account dropped since we listed it (error 1396/1141) is skipped, not fatal.
            let row: Option<String> = match conn
                .query_first(format!("SHOW CREATE USER {}", quote::account(user, host)))
            {
                Ok(r) => r,
                Err(spyglass_db::mysql::Error::MySqlError(e))
                    if e.code == 1396 || e.code == 1141 =>
                {
                    continue
                }
                Err(e) => return Err(q(e)),
            };
            let c = row.unwrap_or_default();
            match c.strip_prefix("CREATE USER ") {
                Some(rest) => format!("CREATE USER IF NOT EXISTS {rest}"),
                None => c,
            }
        };
        let target = if flavor == Flavor::Mariadb && *is_role {
            quote::ident(user)
        } else {
            quote::account(user, host)
        };
        let rows: Vec<String> = match conn.query(format!("SHOW GRANTS FOR {target}")) {
            Ok(r) => r,
            Err(spyglass_db::mysql::Error::MySqlError(e)) if e.code == 1396 || e.code == 1141 => {
                continue
            }
            Err(e) => return Err(q(e)),
        };
        n += 1;
        creates.push_str(&create);
        creates.push_str(";\n");
        for g in rows {
            // MariaDB lists the role's own membership grant to its creator; harmless to replay.
            grants.push_str(&g);
            grants.push_str(";\n");
        }
    }
    let script = format!(
        "-- spyglass-admin accounts: roles first, then users, then grants\nSET NAMES utf8mb4;\n{creates}{grants}"
    );
    Ok(Some((script, n)))
}
