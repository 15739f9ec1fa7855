//! Parsing `SHOW GRANTS` output rows and collecting the privileges an account holds.
//!
//! `SHOW GRANTS` rows look like
//! ``GRANT SELECT, RELOAD ON *.* TO `u`@`%` WITH GRANT OPTION`` (MySQL),
//! ``GRANT ALL PRIVILEGES ON `common\_%`.* TO `u`@`%` `` (both), and role
//! membership rows ``GRANT `dj_user`@`%` TO `u`@`%` `` (MySQL) or
//! ``GRANT `dj_user` TO `u`@`%` `` (MariaDB).

use std::collections::BTreeSet;

use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::{DbError, Flavor, Session};

use crate::Error;

/// What a grant row applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantTarget {
    /// `*.*`
    Global,
    /// `` `pattern`.* ``: a schema name or LIKE pattern, unescaped as written.
    Schema(String),
    /// `` `db`.`table` ``, or a routine/proxy grant: not used for capability checks.
    Other(String),
}

/// One parsed `SHOW GRANTS` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantRow {
    /// A privilege grant.
    Privileges {
        /// Upper-case privilege names, `ALL PRIVILEGES` expanded to `ALL`.
        privileges: BTreeSet<String>,
        /// Where they apply.
        target: GrantTarget,
        /// `WITH GRANT OPTION`.
        grant_option: bool,
    },
    /// Membership in roles (`GRANT role[, role] TO ...`).
    Roles(Vec<String>),
    /// Anything else (`GRANT PROXY`, column privileges, ...).
    Other,
}

/// Parses one `SHOW GRANTS` row. Pure.
pub fn parse_grant_row(row: &str) -> GrantRow {
    let Some(rest) = row.trim().strip_prefix("GRANT ") else {
        return GrantRow::Other;
    };
    if rest.starts_with("PROXY ") {
        return GrantRow::Other;
    }
    let grant_option = row.trim_end().ends_with("WITH GRANT OPTION");
    // Privilege rows have " ON " before " TO "; role rows do not.
    let on = find_outside_quotes(rest, " ON ");
    let to = find_outside_quotes(rest, " TO ");
    match (on, to) {
        (Some(on), Some(to)) if on < to => {
            let privs = &rest[..on];
            if privs.contains('(') {
                // Column-level privileges: not relevant to capability checks.
                return GrantRow::Other;
            }
            let privileges = privs
                .split(',')
                .map(|p| p.trim().to_ascii_uppercase())
                .map(|p| {
                    if p == "ALL PRIVILEGES" {
                        "ALL".to_owned()
                    } else {
                        p
                    }
                })
                .filter(|p| !p.is_empty())
                .collect();
            let target_text = rest[on + 4..to].trim();
            let target_text = target_text.strip_prefix("TABLE ").unwrap_or(target_text);
            let target = if target_text == "*.*" {
                GrantTarget::Global
            } else if let Some(db) = target_text.strip_suffix(".*") {
                GrantTarget::Schema(unquote(db))
            } else {
                GrantTarget::Other(target_text.to_owned())
            };
            GrantRow::Privileges {
                privileges,
                target,
                grant_option,
            }
        }
        (None, Some(to)) => {
            let roles = split_outside_quotes(&rest[..to], ',')
                .into_iter()
                .map(|r| {
                    let r = r.trim();
                    // MySQL writes `role`@`host`; keep only the name.
                    let name = match find_outside_quotes(r, "@") {
                        Some(i) => &r[..i],
                        None => r,
                    };
                    unquote(name)
                })
                .collect();
            GrantRow::Roles(roles)
        }
        _ => GrantRow::Other,
    }
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    for q in ['`', '\'', '"'] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            let inner = &s[1..s.len() - 1];
            let doubled: String = [q, q].iter().collect();
            return inner.replace(&doubled, &q.to_string());
        }
    }
    s.to_owned()
}

fn find_outside_quotes(s: &str, needle: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '`' || c == '\'' || c == '"' => quote = Some(c),
            None if s[i..].starts_with(needle) => return Some(i),
            None => {}
        }
    }
    None
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '`' || c == '\'' || c == '"' => quote = Some(c),
            None if c == sep => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            None => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// The privileges an account holds where spyglass-admin needs them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldPrivileges {
    /// `CURRENT_USER()`.
    pub account: String,
    /// Active roles.
    pub roles: Vec<String>,
    /// Privileges on `*.*`.
    pub global: BTreeSet<String>,
    /// Privileges on every schema through the `%` pattern (`` `%`.* ``).
    pub all_schemas: BTreeSet<String>,
    /// Privileges on the `mysql` schema.
    pub mysql_schema: BTreeSet<String>,
    /// `WITH GRANT OPTION` on `*.*`.
    pub global_grant_option: bool,
    /// `WITH GRANT OPTION` on `` `%`.* ``.
    pub all_schemas_grant_option: bool,
    /// Privileges on other schema patterns, as stored (`erin\_%`);
    /// `GRANT OPTION` included when granted with it.
    pub schemas: std::collections::BTreeMap<String, BTreeSet<String>>,
    /// Roles held `WITH ADMIN OPTION` (which may be handed out).
    pub admin_roles: BTreeSet<String>,
}

impl HeldPrivileges {
    /// Adds the rows of one `SHOW GRANTS` result.
    pub fn add_rows<'a>(&mut self, rows: impl IntoIterator<Item = &'a str>) {
        for row in rows {
            match parse_grant_row(row) {
                GrantRow::Privileges {
                    privileges,
                    target,
                    grant_option,
                } => match target {
                    GrantTarget::Global => {
                        self.global.extend(privileges);
                        self.global_grant_option |= grant_option;
                    }
                    GrantTarget::Schema(p) if p == "%" => {
                        self.all_schemas.extend(privileges);
                        self.all_schemas_grant_option |= grant_option;
                    }
                    GrantTarget::Schema(p) if p == "mysql" => self.mysql_schema.extend(privileges),
                    GrantTarget::Schema(p) => {
                        let e = self.schemas.entry(p).or_default();
                        e.extend(privileges);
                        if grant_option {
                            e.insert("GRANT OPTION".into());
                        }
                    }
                    GrantTarget::Other(_) => {}
                },
                GrantRow::Roles(roles) if row.trim_end().ends_with("WITH ADMIN OPTION") => {
                    self.admin_roles.extend(roles)
                }
                _ => {}
            }
        }
    }

    /// Holds `privilege` on `*.*` (directly or through `ALL`).
    pub fn has_global(&self, privilege: &str) -> bool {
        if privilege == "GRANT OPTION" {
            return self.global_grant_option || self.global.contains("GRANT OPTION");
        }
        self.global.contains(privilege) || (self.global.contains("ALL") && !is_dynamic(privilege))
    }

    /// Holds `privilege` on every schema (globally or on `` `%`.* ``).
    pub fn has_on_all_schemas(&self, privilege: &str) -> bool {
        self.has_global(privilege)
            || self.all_schemas.contains(privilege)
            || self.all_schemas.contains("ALL")
    }

    /// Holds `privilege` on the schemas matching the stored pattern
    /// `pattern` (`%`, `erin\_%`): on every schema, or granted on exactly
    /// that pattern. `GRANT OPTION` is asked for by that name.
    pub fn has_on_pattern(&self, pattern: &str, privilege: &str) -> bool {
        if privilege == "GRANT OPTION" {
            return self.has_global("GRANT OPTION")
                || self.all_schemas_grant_option
                || self
                    .schemas
                    .get(pattern)
                    .is_some_and(|p| p.contains("GRANT OPTION"));
        }
        self.has_on_all_schemas(privilege)
            || self
                .schemas
                .get(pattern)
                .is_some_and(|p| p.contains(privilege) || p.contains("ALL"))
    }

    /// Holds `privilege` on the schema named `schema`: on every schema, or
    /// through a schema grant whose pattern matches the name (`LIKE`
    /// semantics: `%`, `_`, `\` escapes).
    pub fn has_on_schema(&self, schema: &str, privilege: &str) -> bool {
        if schema == "mysql" && self.has_on_mysql_schema(privilege) {
            return true;
        }
        self.has_on_all_schemas(privilege)
            || self.schemas.iter().any(|(pattern, privs)| {
                (privs.contains(privilege) || privs.contains("ALL")) && like(pattern, schema)
            })
    }

    /// Holds `privilege` on the `mysql` schema.
    pub fn has_on_mysql_schema(&self, privilege: &str) -> bool {
        self.has_on_all_schemas(privilege)
            || self.mysql_schema.contains(privilege)
            || self.mysql_schema.contains("ALL")
    }
}

/// `name LIKE pattern` as the grant tables match schema names: `%` any
/// run, `_` one character, `\` escapes the next character.
pub(crate) fn like(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('%', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('_', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some(('\\', rest)) if !rest.is_empty() => {
                n.first() == Some(&rest[0]) && go(&rest[1..], &n[1..])
            }
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// MySQL's dynamic privileges (`BACKUP_ADMIN`, ...) are named individually in
/// SHOW GRANTS, also for accounts granted `ALL ON *.*`, so `ALL` never stands
/// for them. MariaDB has none: its `ALL` covers every privilege it knows,
/// multi-word ones like `BINLOG MONITOR` included.
/// <https://dev.mysql.com/doc/refman/8.0/en/privileges-provided.html#privileges-provided-dynamic>
fn is_dynamic(privilege: &str) -> bool {
    privilege.contains('_')
}

/// The global privileges `account` holds directly, from `SHOW GRANTS FOR`
/// (which names every privilege, MariaDB's multi-word ones included);
/// `None` when the account does not exist.
pub fn account_global(
    session: &mut Session,
    account: &crate::Account,
) -> Result<Option<BTreeSet<String>>, Error> {
    let rows: Result<Vec<String>, _> = session
        .conn()
        .query(format!("SHOW GRANTS FOR {}", account.sql()));
    match rows {
        Ok(rows) => {
            let mut held = HeldPrivileges::default();
            held.add_rows(rows.iter().map(String::as_str));
            let mut g = held.global;
            if held.global_grant_option {
                g.insert("GRANT OPTION".into());
            }
            Ok(Some(g))
        }
        // ER_NONEXISTING_GRANT: no such account.
        Err(spyglass_db::mysql::Error::MySqlError(e)) if e.code == 1141 => Ok(None),
        Err(e) => Err(Error::Db(DbError::query(
            format!("reading SHOW GRANTS for {account}"),
            e,
        ))),
    }
}

/// Reads the privileges of the connected account, including those of its
/// active roles.
pub fn current_privileges(session: &mut Session) -> Result<HeldPrivileges, Error> {
    let account = session.current_user()?;
    let flavor = session.server().flavor;
    let conn = session.conn();
    let role: Option<Option<String>> = conn
        .query_first("SELECT CURRENT_ROLE()")
        .map_err(|e| DbError::query("reading CURRENT_ROLE()", e))?;
    let role = role.flatten().filter(|r| r != "NONE" && !r.is_empty());
    let mut held = HeldPrivileges {
        account,
        ..HeldPrivileges::default()
    };
    let rows: Vec<String> = match (flavor, &role) {
        // MySQL merges the privileges of the named active roles into the output.
        (Flavor::Mysql, Some(roles)) => {
            conn.query(format!("SHOW GRANTS FOR CURRENT_USER() USING {roles}"))
        }
        _ => conn.query("SHOW GRANTS"),
    }
    .map_err(|e| DbError::query("reading SHOW GRANTS for the current user", e))?;
    held.add_rows(rows.iter().map(String::as_str));
    if let (Flavor::Mariadb, Some(r)) = (flavor, &role) {
        held.roles = vec![r.clone()];
        let rows: Vec<String> = conn
            .query("SHOW GRANTS FOR CURRENT_ROLE")
            .map_err(|e| DbError::query(format!("reading SHOW GRANTS for role {r}"), e))?;
        held.add_rows(rows.iter().map(String::as_str));
    } else if let Some(r) = &role {
        held.roles = split_outside_quotes(r, ',')
            .into_iter()
            .map(|x| {
                let x = x.trim();
                unquote(find_outside_quotes(x, "@").map_or(x, |i| &x[..i]))
            })
            .collect();
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_rows_of_both_flavors() {
        let cases: Vec<(&str, GrantRow)> = vec![
            (
                "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION",
                GrantRow::Privileges {
                    privileges: set(&["ALL"]),
                    target: GrantTarget::Global,
                    grant_option: true,
                },
            ),
            (
                "GRANT SELECT, RELOAD, LOCK TABLES ON *.* TO `bk`@`%`",
                GrantRow::Privileges {
                    privileges: set(&["SELECT", "RELOAD", "LOCK TABLES"]),
                    target: GrantTarget::Global,
                    grant_option: false,
                },
            ),
            (
                r"GRANT ALL PRIVILEGES ON `common\_%`.* TO `dj_user`@`%`",
                GrantRow::Privileges {
                    privileges: set(&["ALL"]),
                    target: GrantTarget::Schema(r"common\_%".into()),
                    grant_option: false,
                },
            ),
            (
                "GRANT SELECT ON `%`.* TO `dj_guest`",
                GrantRow::Privileges {
                    privileges: set(&["SELECT"]),
                    target: GrantTarget::Schema("%".into()),
                    grant_option: false,
                },
            ),
            (
                "GRANT `dj_user`@`%`,`dj_admin`@`%` TO `x`@`%`",
                GrantRow::Roles(vec!["dj_user".into(), "dj_admin".into()]),
            ),
            (
                "GRANT `dj_user` TO `x`@`%`",
                GrantRow::Roles(vec!["dj_user".into()]),
            ),
            (
                "GRANT `we ird``r` TO `x`@`%`",
                GrantRow::Roles(vec!["we ird`r".into()]),
            ),
            (
                "GRANT PROXY ON ''@'%' TO 'root'@'localhost' WITH GRANT OPTION",
                GrantRow::Other,
            ),
            ("GRANT SELECT (a) ON `d`.`t` TO `x`@`%`", GrantRow::Other),
            (
                "GRANT SELECT ON `d`.`t` TO `x`@`%`",
                GrantRow::Privileges {
                    privileges: set(&["SELECT"]),
                    target: GrantTarget::Other("`d`.`t`".into()),
                    grant_option: false,
                },
            ),
        ];
        for (row, want) in cases {
            assert_eq!(parse_grant_row(row), want, "{row}");
        }
    }

    #[test]
    fn schema_grants_match_like_patterns() {
        let mut h = HeldPrivileges::default();
        h.add_rows([
            r"GRANT SELECT ON `%`.* TO `c`@`%`",
            r"GRANT ALL PRIVILEGES ON `alice\_%`.* TO `c`@`%`",
            r"GRANT DELETE ON `lab_a`.* TO `c`@`%`",
        ]);
        assert!(h.has_on_schema("alice_nwbfile", "DELETE"));
        assert!(!h.has_on_schema("alicex", "DELETE"), "\\_ is a literal _");
        assert!(h.has_on_schema("lab_a", "DELETE"));
        assert!(
            h.has_on_schema("labxa", "DELETE"),
            "an unescaped _ is a wildcard"
        );
        assert!(!h.has_on_schema("common_nwbfile", "DELETE"));
        assert!(h.has_on_schema("common_nwbfile", "SELECT"));
    }

    #[test]
    fn all_implies_static_not_dynamic() {
        let mut h = HeldPrivileges::default();
        h.add_rows(["GRANT ALL PRIVILEGES ON *.* TO `a`@`%`"]);
        assert!(h.has_global("RELOAD"));
        assert!(h.has_global("BINLOG MONITOR"));
        assert!(
            !h.has_global("BACKUP_ADMIN"),
            "MySQL lists dynamic privileges by name"
        );
        assert!(!h.has_global("GRANT OPTION"));
        let mut g = HeldPrivileges::default();
        g.add_rows(["GRANT SELECT ON `%`.* TO `g`@`%`"]);
        assert!(g.has_on_all_schemas("SELECT"));
        assert!(!g.has_on_all_schemas("DELETE"));
        assert!(g.has_on_mysql_schema("SELECT"));
    }
}
