//! Schema names: the one glob syntax every setting that takes schema globs
//! uses (`[nightly] schemas`/`exclude`, `[cleanup] schemas`, tracked-folder
//! `table` patterns, `backup restore --schemas`), and the server's own
//! schemas no command touches.
//!
//! The rules: `*` matches any run of characters (also none), `?` exactly one
//! character, everything else itself, case-sensitively (schema names are
//! case-sensitive on Linux servers unless `lower_case_table_names` is set).
//! There are no character classes and no escapes: `[`, `]` and `\` are
//! literal, since DataJoint schema names never hold them.
//!
//! ```
//! use spyglass_db::schemas;
//! assert!(schemas::glob_match("lfp_v?", "lfp_v1"));
//! assert!(schemas::selected("common_lab", &["common_*".into()], &[]));
//! assert!(!schemas::selected("mysql", &[], &[]));
//! ```

/// The server's own schemas: never dumped, scanned, restored onto or dropped.
/// MySQL and MariaDB have the same four.
pub const SYSTEM_SCHEMAS: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

/// Whether `name` is one of [`SYSTEM_SCHEMAS`], in any letter case
/// (`information_schema` is case-insensitive everywhere, and `MYSQL` is
/// `mysql` where `lower_case_table_names` is set).
pub fn is_system_schema(name: &str) -> bool {
    SYSTEM_SCHEMAS.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// `('mysql', 'information_schema', 'performance_schema', 'sys')`, for
/// `table_schema NOT IN ...` in catalog queries.
pub fn system_schemas_sql() -> String {
    let quoted: Vec<String> = SYSTEM_SCHEMAS
        .iter()
        .map(|s| crate::quote::string(s))
        .collect();
    format!("({})", quoted.join(", "))
}

/// Glob match of `text` against `pattern` with `*` and `?` (see the module
/// docs). Linear in practice: a failed match after a `*` backtracks only to
/// the last `*`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// True when `name` matches any of `patterns`, or `patterns` is empty
/// (no patterns = every schema).
pub fn any_match(patterns: &[String], name: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|g| glob_match(g, name))
}

/// A schema selection: include globs (empty = all) minus exclude globs,
/// never a system schema.
pub fn selected(name: &str, include: &[String], exclude: &[String]) -> bool {
    !is_system_schema(name)
        && any_match(include, name)
        && !exclude.iter().any(|g| glob_match(g, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_rules() {
        for (p, t, want) in [
            ("common_*", "common_nwbfile", true),
            ("common_*", "xcommon_nwbfile", false),
            ("*_nwbfile", "alice_nwbfile", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "acb", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("exact", "Exact", false),
            ("*", "", true),
            ("", "", true),
            ("", "x", false),
            ("?", "", false),
            ("?", "é", true),
            ("*_v?", "lfp_v1", true),
            ("*_v?", "lfp_v12", false),
            ("lab_??_*", "lab_01_lfp", true),
            ("lab_??_*", "lab_1_lfp", false),
            ("**a", "a", true),
            ("*a*", "bab", true),
            ("[ab]", "a", false),
            ("[ab]", "[ab]", true),
        ] {
            assert_eq!(glob_match(p, t), want, "{p:?} {t:?}");
        }
    }

    #[test]
    fn system_schemas_in_any_case() {
        assert!(is_system_schema("SYS") && is_system_schema("Performance_Schema"));
        assert!(!is_system_schema("sysadmin") && !is_system_schema("mysql_lab"));
        assert_eq!(
            system_schemas_sql(),
            "('mysql', 'information_schema', 'performance_schema', 'sys')"
        );
    }

    #[test]
    fn selections() {
        assert!(selected("lfp_v1", &[], &[]));
        assert!(!selected("mysql", &[], &[]));
        assert!(!selected("mysql", &["*".into()], &[]));
        assert!(!selected("lfp_v1", &["common_*".into()], &[]));
        assert!(selected("lfp_v1", &["lfp_v?".into()], &[]));
        assert!(!selected("lfp_v1", &[], &["lfp_*".into()]));
        assert!(any_match(&[], "anything"));
        assert!(!any_match(&["t1_*".into()], "t2_lfp"));
    }
}
