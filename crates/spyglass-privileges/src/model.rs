//! The typed model: accounts, schema patterns, privilege sets, grants, and
//! the validation every name goes through before any SQL is rendered.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;
use spyglass_db::{quote, Flavor};

use crate::Error;

/// A server account, `'user'@'host'`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Account {
    /// User name.
    pub user: String,
    /// Host pattern (`%` = any host).
    pub host: String,
}

impl Account {
    /// An account; no validation (see [`Account::parse`] for user input).
    pub fn new(user: impl Into<String>, host: impl Into<String>) -> Self {
        Account {
            user: user.into(),
            host: host.into(),
        }
    }

    /// Validates a user name typed by an admin, with `NAME` or `NAME@HOST`
    /// (host defaults to `default_host`).
    pub fn parse(text: &str, default_host: &str, flavor: Option<Flavor>) -> Result<Account, Error> {
        let (user, host) = match text.split_once('@') {
            Some((u, h)) => (u, h),
            None => (text, default_host),
        };
        validate_user(user, flavor)?;
        validate_host(host)?;
        Ok(Account::new(user, host))
    }

    /// `'user'@'host'`, as GRANT and CREATE USER write it.
    pub fn sql(&self) -> String {
        quote::account(&self.user, &self.host)
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}'@'{}'", self.user, self.host)
    }
}

/// Longest user name the server accepts: MySQL 8+ 32 characters, MariaDB 80.
/// <https://dev.mysql.com/doc/refman/8.0/en/user-names.html>,
/// <https://mariadb.com/kb/en/create-user/#user-name-component>
pub fn max_user_len(flavor: Option<Flavor>) -> usize {
    match flavor {
        Some(Flavor::Mariadb) => 80,
        // Unknown flavor: the stricter limit, so a name valid offline is valid on both.
        _ => 32,
    }
}

fn bad(what: &'static str, value: &str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        what,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// A user name: ASCII letters, digits, `_`, `.`, `-`; not empty; within the
/// flavor's length limit. It also names the user's own schemas
/// (`<name>_...`), so anything a schema name or LIKE pattern would choke on
/// (quotes, backticks, `@`, `%`, spaces) is refused.
pub fn validate_user(user: &str, flavor: Option<Flavor>) -> Result<(), Error> {
    if user.is_empty() {
        return Err(bad("user name", user, "it is empty"));
    }
    if let Some(c) = user
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(bad(
            "user name",
            user,
            format!(
                "it contains {}; use letters, digits, '_', '.' and '-'",
                describe_char(c)
            ),
        ));
    }
    let max = max_user_len(flavor);
    if user.chars().count() > max {
        return Err(bad(
            "user name",
            user,
            format!(
                "it is {} characters long; {} allows at most {max}",
                user.chars().count(),
                flavor.map_or("MySQL".to_owned(), |f| f.to_string())
            ),
        ));
    }
    Ok(())
}

/// A host pattern: not empty, at most 255 characters, no quotes, backticks,
/// `@`, spaces or backslashes.
pub fn validate_host(host: &str) -> Result<(), Error> {
    if host.is_empty() {
        return Err(bad(
            "account host",
            host,
            "it is empty (use % for any host)",
        ));
    }
    if host.len() > 255 {
        return Err(bad(
            "account host",
            host,
            "it is longer than 255 characters",
        ));
    }
    if let Some(c) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '%' | '_' | '.' | '-' | ':' | '/')))
    {
        return Err(bad(
            "account host",
            host,
            format!("it contains {}", describe_char(c)),
        ));
    }
    Ok(())
}

/// A schema prefix (`common`, `lfp`): letters, digits and `_`, not empty,
/// short enough to leave room for `_<name>` within MySQL's 64-character
/// schema names. Wildcards are refused: the prefix is escaped into a pattern.
pub fn validate_prefix(prefix: &str) -> Result<(), Error> {
    if prefix.is_empty() {
        return Err(bad("schema prefix", prefix, "it is empty"));
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        let why = if matches!(c, '%' | '_' | '*' | '?') {
            format!("it contains the wildcard {}", describe_char(c))
        } else {
            format!("it contains {}", describe_char(c))
        };
        return Err(bad(
            "schema prefix",
            prefix,
            format!("{why}; use letters, digits and '_'"),
        ));
    }
    let stored = SchemaPattern::Prefix(prefix.to_owned()).stored();
    if stored.chars().count() > MAX_PATTERN_LEN {
        return Err(bad(
            "schema prefix",
            prefix,
            format!(
                "its grant pattern {stored} is {} characters long; the server allows at most {MAX_PATTERN_LEN} (a database name)",
                stored.chars().count()
            ),
        ));
    }
    Ok(())
}

/// Longest schema name, and so longest grant pattern such as `name\_%`
/// (escapes count), on MySQL and MariaDB: a longer one fails with
/// ERROR 1102 (identifier too long).
pub const MAX_PATTERN_LEN: usize = 64;

/// Account names the server or the lab's scheme already uses: never a new
/// lab member. `None` when `user` is free of them.
pub fn reserved_user_reason(user: &str) -> Option<&'static str> {
    let lower = user.to_ascii_lowercase();
    if lower == "root" {
        return Some("it is the server's superuser account name");
    }
    if lower == "public" {
        return Some("PUBLIC is the server's name for every account (MariaDB's PUBLIC role)");
    }
    if lower == "debian-sys-maint" {
        return Some("it is Debian's maintenance account");
    }
    if lower.starts_with("mysql.") || lower.starts_with("mariadb.") {
        return Some(
            "names starting with mysql. or mariadb. belong to the server's system accounts",
        );
    }
    None
}

/// Checks `user` as the name of a new lab member: [`validate_user`], not a
/// reserved name ([`reserved_user_reason`]), and, when the role gives an own
/// prefix, a grant pattern `user\_%` within [`MAX_PATTERN_LEN`].
pub fn validate_member_name(
    user: &str,
    flavor: Option<Flavor>,
    own_prefix: bool,
) -> Result<(), Error> {
    validate_user(user, flavor)?;
    if let Some(why) = reserved_user_reason(user) {
        return Err(bad(
            "user name",
            user,
            format!("{why}; choose another name"),
        ));
    }
    if own_prefix {
        let stored = SchemaPattern::Prefix(user.to_owned()).stored();
        let n = stored.chars().count();
        if n > MAX_PATTERN_LEN {
            return Err(bad(
                "user name",
                user,
                format!(
                    "its own-schema grant pattern {stored} is {n} characters long; the server allows at most {MAX_PATTERN_LEN} (a database name); shorten the name by {} characters (each '_' counts twice)",
                    n - MAX_PATTERN_LEN
                ),
            ));
        }
    }
    Ok(())
}

/// A role name: letters, digits and `_`, not empty, at most 32 characters.
pub fn validate_role_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(bad("role name", name, "it is empty"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(bad(
            "role name",
            name,
            format!("it contains {}", describe_char(c)),
        ));
    }
    if name.len() > 32 {
        return Err(bad("role name", name, "it is longer than 32 characters"));
    }
    Ok(())
}

fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".into(),
        '\'' => "a quote (')".into(),
        '"' => "a double quote (\")".into(),
        '`' => "a backtick (`)".into(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c => format!("'{c}'"),
    }
}

/// The schemas a grant applies to, as a `LIKE` pattern on the schema name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum SchemaPattern {
    /// Every schema: `` `%`.* ``.
    All,
    /// Schemas named `<prefix>_...`: `` `prefix\_%`.* ``.
    Prefix(String),
    /// Any other pattern exactly as the server stores it (read from live state).
    Raw(String),
}

impl SchemaPattern {
    /// A validated prefix pattern.
    pub fn prefix(prefix: &str) -> Result<Self, Error> {
        validate_prefix(prefix)?;
        Ok(SchemaPattern::Prefix(prefix.to_owned()))
    }

    /// Recognises a stored pattern: `%` is [`SchemaPattern::All`], `x\_%`
    /// (with every `_` in `x` escaped) is a prefix, anything else is raw.
    pub fn from_stored(text: &str) -> Self {
        if text == "%" {
            return SchemaPattern::All;
        }
        if let Some(body) = text.strip_suffix("\\_%") {
            // Every '_' in the body must be escaped, and nothing else may be a wildcard.
            let mut out = String::new();
            let mut chars = body.chars();
            let mut ok = !body.is_empty();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('_') => out.push('_'),
                        _ => {
                            ok = false;
                            break;
                        }
                    },
                    '_' | '%' => {
                        ok = false;
                        break;
                    }
                    c => out.push(c),
                }
            }
            if ok && validate_prefix(&out).is_ok() {
                return SchemaPattern::Prefix(out);
            }
        }
        SchemaPattern::Raw(text.to_owned())
    }

    /// The pattern as stored in `mysql.db.Db`: `common\_%`.
    pub fn stored(&self) -> String {
        match self {
            SchemaPattern::All => "%".into(),
            SchemaPattern::Prefix(p) => format!("{}\\_%", p.replace('_', "\\_")),
            SchemaPattern::Raw(r) => r.clone(),
        }
    }

    /// The grant target: `` `common\_%`.* ``.
    pub fn sql(&self) -> String {
        format!("{}.*", quote::ident(&self.stored()))
    }
}

impl fmt::Display for SchemaPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sql())
    }
}

/// Privileges that may be granted on a schema pattern, as GRANT spells them.
/// <https://dev.mysql.com/doc/refman/8.0/en/privileges-provided.html#privileges-provided-summary>
pub const SCHEMA_PRIVILEGES: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "DROP",
    "REFERENCES",
    "INDEX",
    "ALTER",
    "CREATE TEMPORARY TABLES",
    "LOCK TABLES",
    "CREATE VIEW",
    "SHOW VIEW",
    "CREATE ROUTINE",
    "ALTER ROUTINE",
    "EXECUTE",
    "EVENT",
    "TRIGGER",
    // MariaDB only (10.3.4+).
    "DELETE HISTORY",
];

/// A set of privileges: everything (`ALL PRIVILEGES`) or named ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrivilegeSet {
    /// `ALL PRIVILEGES` at the level it is granted on (never GRANT OPTION).
    All,
    /// Named privileges, upper case.
    Some(BTreeSet<String>),
}

impl PrivilegeSet {
    /// Named privileges, normalised to upper case and checked against
    /// [`SCHEMA_PRIVILEGES`]; `ALL`/`ALL PRIVILEGES` gives [`PrivilegeSet::All`].
    pub fn schema_level<S: AsRef<str>>(names: &[S]) -> Result<Self, Error> {
        let mut set = BTreeSet::new();
        for n in names {
            let p = n
                .as_ref()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_ascii_uppercase();
            if p == "ALL" || p == "ALL PRIVILEGES" {
                return Ok(PrivilegeSet::All);
            }
            if !SCHEMA_PRIVILEGES.contains(&p.as_str()) {
                return Err(bad(
                    "privilege",
                    n.as_ref(),
                    format!(
                        "it is not a schema-level privilege; known: {}",
                        SCHEMA_PRIVILEGES.join(", ")
                    ),
                ));
            }
            set.insert(p);
        }
        if set.is_empty() {
            return Err(bad("privilege list", "", "it is empty"));
        }
        Ok(PrivilegeSet::Some(set))
    }

    /// Named privileges without validation (e.g. global ones).
    pub fn named<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        PrivilegeSet::Some(names.into_iter().map(Into::into).collect())
    }

    /// The concrete set, `ALL` expanded to `all` (what the server has at this level).
    pub fn expand(&self, all: &BTreeSet<String>) -> BTreeSet<String> {
        match self {
            PrivilegeSet::All => all.clone(),
            PrivilegeSet::Some(s) => s.clone(),
        }
    }

    /// `SELECT, INSERT` or `ALL PRIVILEGES`.
    pub fn sql(&self) -> String {
        match self {
            PrivilegeSet::All => "ALL PRIVILEGES".into(),
            PrivilegeSet::Some(s) => s.iter().map(String::as_str).collect::<Vec<_>>().join(", "),
        }
    }
}

/// Who receives a grant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum Grantee {
    /// A role, by name.
    Role(String),
    /// An account.
    Account(Account),
}

impl Grantee {
    /// How GRANT/REVOKE name it on `flavor`: MySQL roles are accounts
    /// (`'r'@'%'`), MariaDB roles have no host (`` `r` ``).
    pub fn sql(&self, flavor: Flavor) -> String {
        match self {
            Grantee::Role(r) => role_sql(r, flavor),
            Grantee::Account(a) => a.sql(),
        }
    }
}

impl fmt::Display for Grantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grantee::Role(r) => write!(f, "role {r}"),
            Grantee::Account(a) => write!(f, "{a}"),
        }
    }
}

/// A role name as GRANT writes it on `flavor`.
pub fn role_sql(name: &str, flavor: Flavor) -> String {
    match flavor {
        Flavor::Mysql => quote::account(name, "%"),
        Flavor::Mariadb => quote::ident(name),
    }
}

/// A schema-level grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// What.
    pub privileges: PrivilegeSet,
    /// Where.
    pub on: SchemaPattern,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_render_escaped() {
        let cases = [
            (SchemaPattern::All, "`%`.*", "%"),
            (
                SchemaPattern::prefix("common").unwrap(),
                r"`common\_%`.*",
                r"common\_%",
            ),
            (
                SchemaPattern::prefix("my_lab").unwrap(),
                r"`my\_lab\_%`.*",
                r"my\_lab\_%",
            ),
        ];
        for (p, sql, stored) in cases {
            assert_eq!(p.sql(), sql);
            assert_eq!(p.stored(), stored);
            assert_eq!(SchemaPattern::from_stored(stored), p, "{stored}");
        }
        assert_eq!(
            SchemaPattern::from_stored("common_%"),
            SchemaPattern::Raw("common_%".into()),
            "an unescaped '_' matches any character: not our prefix pattern"
        );
        assert_eq!(
            SchemaPattern::from_stored("lfp_v1"),
            SchemaPattern::Raw("lfp_v1".into())
        );
    }

    #[test]
    fn bad_names_are_refused_naming_the_value() {
        let long33 = "a".repeat(33);
        let long81 = "a".repeat(81);
        for (name, flavor, why) in [
            ("", None, "empty"),
            ("o'brien", None, "quote"),
            ("a`b", None, "backtick"),
            ("a@b@c", None, "'@'"),
            ("50%", None, "'%'"),
            ("al ice", None, "space"),
            ("x\"y", None, "double quote"),
            (long33.as_str(), Some(Flavor::Mysql), "at most 32"),
            (long81.as_str(), Some(Flavor::Mariadb), "at most 80"),
        ] {
            let e = Account::parse(name, "%", flavor)
                .and_then(|a| validate_user(&a.user, flavor))
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{name:?}: {e}");
            let shown = name.split('@').next().unwrap_or(name);
            assert!(e.contains(shown), "{name:?}: {e}");
        }
        assert!(validate_user(&"a".repeat(40), Some(Flavor::Mariadb)).is_ok());
        for p in ["", "lfp%", "lfp_%", "a b", "x`y", "c*"] {
            let e = validate_prefix(p);
            if p == "lfp_%" || p == "lfp%" || p == "c*" {
                assert!(e.unwrap_err().to_string().contains("wildcard"), "{p}");
            } else {
                assert!(e.is_err(), "{p}");
            }
        }
        assert!(validate_prefix("position_v1").is_ok());
    }

    #[test]
    fn privilege_sets() {
        assert_eq!(
            PrivilegeSet::schema_level(&["all privileges"]).unwrap(),
            PrivilegeSet::All
        );
        let s = PrivilegeSet::schema_level(&["select", "lock  tables"]).unwrap();
        assert_eq!(s.sql(), "LOCK TABLES, SELECT");
        let e = PrivilegeSet::schema_level(&["SELEKT"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("SELEKT"), "{e}");
    }
}
