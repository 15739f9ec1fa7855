//! File names for schemas and tables, schema globs, and UTC timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

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

/// Shell-style glob match with `*` and `?` (no character classes).
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

/// Schemas never dumped: the server's own.
pub const SYSTEM_SCHEMAS: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

/// Whether `name` is one of the server's own schemas (any letter case:
/// `information_schema` is case-insensitive everywhere, and `MYSQL` is
/// `mysql` where `lower_case_table_names` is set). MySQL and MariaDB have the
/// same four. No command creates, replaces, renames onto or drops one.
pub fn is_system_schema(name: &str) -> bool {
    SYSTEM_SCHEMAS.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// Which schemas to dump: include globs (empty = all) minus exclude globs,
/// never the system schemas.
pub fn schema_selected(name: &str, include: &[String], exclude: &[String]) -> bool {
    if is_system_schema(name) {
        return false;
    }
    let inc = include.is_empty() || include.iter().any(|g| glob_match(g, name));
    inc && !exclude.iter().any(|g| glob_match(g, name))
}

/// Civil date and time (UTC) of a Unix timestamp: (y, m, d, H, M, S).
pub fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days_from_civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

/// Unix seconds of a civil UTC date and time.
pub fn unix_from_civil(y: i64, m: u32, d: u32, hh: u32, mm: u32, ss: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + (hh * 3600 + mm * 60 + ss) as i64
}

/// Seconds since the epoch, now.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `YYYYMMDD-HHMMSS` (UTC), the stamp in set names.
pub fn stamp(secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil(secs);
    format!("{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}")
}

/// RFC 3339 UTC, for manifests.
pub fn rfc3339(secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil(secs);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// Parses the trailing `YYYYMMDD-HHMMSS` of a set name.
pub fn parse_stamp(name: &str) -> Option<i64> {
    let name = name.strip_suffix(".partial").unwrap_or(name);
    let tail = name.get(name.len().checked_sub(15)?..)?;
    let (date, time) = tail.split_once('-')?;
    if date.len() != 8
        || time.len() != 6
        || !date.bytes().chain(time.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let n = |s: &str| s.parse::<u32>().ok();
    let (y, m, d) = (
        date[..4].parse::<i64>().ok()?,
        n(&date[4..6])?,
        n(&date[6..8])?,
    );
    let (hh, mm, ss) = (n(&time[..2])?, n(&time[2..4])?, n(&time[4..6])?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    Some(unix_from_civil(y, m, d, hh, mm, ss))
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

    #[test]
    fn time_round_trips() {
        assert_eq!(stamp(0), "19700101-000000");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        for t in [0i64, 951_782_400, 1_700_000_000, 4_102_444_799] {
            let (y, m, d, hh, mm, ss) = civil(t);
            assert_eq!(unix_from_civil(y, m, d, hh, mm, ss), t);
        }
        assert_eq!(
            parse_stamp("nightly-20261126-083000"),
            Some(unix_from_civil(2026, 11, 26, 8, 30, 0))
        );
        assert_eq!(
            parse_stamp("nightly-20261126-083000.partial"),
            parse_stamp("x-20261126-083000")
        );
        assert_eq!(parse_stamp("nightly-2026112-083000"), None);
    }
}
