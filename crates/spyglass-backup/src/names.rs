//! File names for schemas and tables, schema globs, and UTC timestamps.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

/// A file-system-safe name for a schema or table: ASCII letters, digits,
/// `_` and `-` are kept; every other byte becomes `@xx` (lowercase hex), so
/// distinct names never collide and the name stays readable.
/// `#weird table` -> `@23weird@20table`.
pub fn file_name(name: &str) -> String {
    let mut s = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            s.push(b as char);
        } else {
            s.push_str(&format!("@{b:02x}"));
        }
    }
    if s.is_empty() {
        s.push('@');
    }
    s
}

// One glob syntax and one list of system schemas for every command.
pub use spyglass_db::schemas::{glob_match, is_system_schema, SYSTEM_SCHEMAS};

/// Which schemas to dump: include globs (empty = all) minus exclude globs,
/// never the system schemas.
pub fn schema_selected(name: &str, include: &[String], exclude: &[String]) -> bool {
    if is_system_schema(name) {
        return false;
    }
    let inc = include.is_empty() || include.iter().any(|g| glob_match(g, name));
    inc && !exclude.iter().any(|g| glob_match(g, name))
}

/// The UTC date and time of Unix seconds `secs` (the epoch for a time
/// chrono cannot represent, hundreds of thousands of years away).
pub fn utc(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

/// Seconds since the epoch, now.
pub fn now_unix() -> i64 {
    Utc::now().timestamp()
}

/// `YYYYMMDD-HHMMSS` (UTC), the stamp in set names.
pub fn stamp(secs: i64) -> String {
    utc(secs).format(STAMP).to_string()
}

/// RFC 3339 UTC with whole seconds and `Z`, for manifests.
pub fn rfc3339(secs: i64) -> String {
    utc(secs).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The stamp's format (chrono's strftime syntax).
const STAMP: &str = "%Y%m%d-%H%M%S";

/// Parses the trailing `YYYYMMDD-HHMMSS` of a set name (a `.partial`
/// suffix is ignored). A date that does not exist (`20260231`) is no stamp.
pub fn parse_stamp(name: &str) -> Option<i64> {
    let name = name.strip_suffix(".partial").unwrap_or(name);
    let tail = name.get(name.len().checked_sub(15)?..)?;
    // chrono alone would also take a sign or fewer digits in a field.
    if !tail.bytes().enumerate().all(|(i, b)| {
        if i == 8 {
            b == b'-'
        } else {
            b.is_ascii_digit()
        }
    }) {
        return None;
    }
    NaiveDateTime::parse_from_str(tail, STAMP)
        .ok()
        .map(|t| t.and_utc().timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe_and_distinct() {
        assert_eq!(file_name("common_lab"), "common_lab");
        assert_eq!(file_name("#weird table"), "@23weird@20table");
        assert_eq!(file_name("back`tick"), "back@60tick");
        assert_eq!(file_name("~tilde"), "@7etilde");
        assert_eq!(file_name("a/b"), "a@2fb");
        assert_ne!(file_name("a b"), file_name("a_b"));
        assert_eq!(file_name("zoë"), "zo@c3@ab");
    }

    #[test]
    fn globs() {
        assert!(glob_match("common_*", "common_lab"));
        assert!(!glob_match("common_*", "lfp_v1"));
        assert!(glob_match("*_v?", "lfp_v1"));
        assert!(glob_match("*", ""));
        assert!(schema_selected("lfp_v1", &[], &[]));
        assert!(!schema_selected("mysql", &[], &[]));
        assert!(!schema_selected("Performance_Schema", &[], &[]));
        assert!(is_system_schema("SYS") && !is_system_schema("sysadmin"));
        assert!(!schema_selected("lfp_v1", &["common_*".into()], &[]));
        assert!(!schema_selected(
            "common_tmp",
            &["common_*".into()],
            &["*_tmp".into()]
        ));
    }

    /// Unix seconds of a UTC date and time, for tests.
    pub(crate) fn at(y: i32, m: u32, d: u32, hh: u32, mm: u32, ss: u32) -> i64 {
        chrono::NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|d| d.and_hms_opt(hh, mm, ss))
            .expect("a valid date in a test")
            .and_utc()
            .timestamp()
    }

    /// Kept from the hand-written civil-date code chrono replaced: the same
    /// instants must give the same names and RFC 3339 text.
    #[test]
    fn time_round_trips() {
        assert_eq!(stamp(0), "19700101-000000");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(2000, 2, 29, 0, 0, 0), 951_782_400);
        assert_eq!(at(2099, 12, 31, 23, 59, 59), 4_102_444_799);
        for t in [0i64, 951_782_400, 1_700_000_000, 4_102_444_799] {
            assert_eq!(parse_stamp(&format!("x-{}", stamp(t))), Some(t));
        }
        assert_eq!(stamp(1_700_000_000), "20231114-221320");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(
            parse_stamp("nightly-20261126-083000"),
            Some(at(2026, 11, 26, 8, 30, 0))
        );
        assert_eq!(
            parse_stamp("nightly-20261126-083000.partial"),
            parse_stamp("x-20261126-083000")
        );
        assert_eq!(parse_stamp("nightly-2026112-083000"), None);
        assert_eq!(parse_stamp("nightly-20261326-083000"), None);
        assert_eq!(parse_stamp("nightly-2026112+-083000"), None);
        assert_eq!(parse_stamp("nightly-20260231-083000"), None);
    }
}
