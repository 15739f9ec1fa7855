//! The nightly's history: `spyglass-nightly.log` (one JSON summary per
//! line, capped in size) and the dead man's switch read from it.
//!
//! The log lines are what the caller serialized; this module reads only
//! the documented fields `finished` (RFC 3339), `status`, and `steps[]`
//! with `name` and `status`, and skips a line it cannot read.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::LOG_FILE;

/// The log is cut when it grows past this many bytes...
pub const LOG_MAX_BYTES: u64 = 4 * 1024 * 1024;
/// ... to its newest whole lines that fit in this many.
pub const LOG_KEEP_BYTES: u64 = 2 * 1024 * 1024;
/// `[nightly] stale_after` and `offsite_stale_after` when not set.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(26 * 3600);

/// Appends `line` to `<dest>/spyglass-nightly.log`; when the log is then
/// larger than [`LOG_MAX_BYTES`], keeps only its newest lines that fit in
/// [`LOG_KEEP_BYTES`] (rewritten through a temporary file and a rename, so
/// a crash leaves the old or the new log, never half of one).
pub fn append_log(dest: &Path, line: &str) -> std::io::Result<()> {
    append_capped(&dest.join(LOG_FILE), line, LOG_MAX_BYTES, LOG_KEEP_BYTES)
}

fn append_capped(path: &Path, line: &str, max: u64, keep: u64) -> std::io::Result<()> {
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(log, "{}", line.replace('\n', " "))?;
    drop(log);
    if std::fs::metadata(path)?.len() <= max {
        return Ok(());
    }
    let text = std::fs::read_to_string(path)?;
    let mut kept: Vec<&str> = Vec::new();
    let mut size = 0u64;
    for l in text.lines().rev() {
        size += l.len() as u64 + 1;
        // The newest line always stays, however long.
        if size > keep && !kept.is_empty() {
            break;
        }
        kept.push(l);
    }
    kept.reverse();
    let tmp = path.with_extension("log.tmp");
    std::fs::write(&tmp, kept.join("\n") + "\n")?;
    std::fs::rename(&tmp, path)
}

#[derive(Debug, Deserialize)]
struct Entry {
    finished: String,
    #[serde(default)]
    steps: Vec<EntryStep>,
}

#[derive(Debug, Deserialize)]
struct EntryStep {
    name: String,
    status: String,
}

fn step_done(e: &Entry, name: &str) -> bool {
    e.steps
        .iter()
        .any(|s| s.name == name && matches!(s.status.as_str(), "ok" | "warning" | "attention"))
}

/// The bounds of the dead man's switch.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// The newest successful nightly may be this old.
    pub nightly: Duration,
    /// The newest verified off-site copy may be this old; `None`: nothing
    /// is shipped (`[backup] ship_to` not set).
    pub offsite: Option<Duration>,
}

impl Bounds {
    /// `[nightly] stale_after` and `offsite_stale_after` (default
    /// [`DEFAULT_STALE_AFTER`]); the off-site bound only with `[backup] ship_to`.
    pub fn from_settings(s: &crate::settings::Settings) -> Bounds {
        let n = &s.nightly;
        let stale =
            |d: Option<crate::settings::HumanDuration>| d.map_or(DEFAULT_STALE_AFTER, |d| d.0);
        Bounds {
            nightly: stale(n.stale_after),
            offsite: s
                .backup
                .ship_to
                .as_ref()
                .map(|_| stale(n.offsite_stale_after)),
        }
    }
}

/// What the history says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Health {
    /// Runs in the log (a started run always leaves a line).
    pub runs: usize,
    /// When the newest run finished (RFC 3339).
    pub last_run: Option<String>,
    /// When the newest successful run (backup and verify done) finished.
    pub last_success: Option<String>,
    /// When the newest run that shipped a verified copy finished.
    pub last_offsite: Option<String>,
    /// Not a problem: e.g. no nightly has run yet.
    pub notes: Vec<String>,
    /// Each is a problem: the nightly or the off-site copy is stale.
    pub problems: Vec<String>,
}

fn parse_time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp())
}

fn age(now: i64, t: i64) -> String {
    let secs = (now - t).max(0) as u64;
    humantime::format_duration(Duration::from_secs(secs - secs % 60)).to_string()
}

/// The dead man's switch: reads `<dest>/spyglass-nightly.log` and flags a
/// newest successful nightly (backup and verify done) older than
/// `bounds.nightly`, or a newest verified off-site copy older than
/// `bounds.offsite`. No log (no nightly has run yet) is a note, not a
/// problem, so a fresh install stays healthy.
pub fn health(dest: &Path, now: i64, bounds: &Bounds) -> Health {
    let text = std::fs::read_to_string(dest.join(LOG_FILE)).unwrap_or_default();
    let entries: Vec<(i64, Entry)> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
        .filter_map(|e| Some((parse_time(&e.finished)?, e)))
        .collect();
    let newest =
        |f: &dyn Fn(&Entry) -> bool| entries.iter().filter(|(_, e)| f(e)).map(|(t, _)| *t).max();
    let last_run = newest(&|_| true);
    let last_success = newest(&|e| step_done(e, "backup") && step_done(e, "verify"));
    let last_offsite = newest(&|e| step_done(e, "ship"));
    let mut h = Health {
        runs: entries.len(),
        last_run: last_run.map(spyglass_backup::names::rfc3339),
        last_success: last_success.map(spyglass_backup::names::rfc3339),
        last_offsite: last_offsite.map(spyglass_backup::names::rfc3339),
        notes: Vec::new(),
        problems: Vec::new(),
    };
    let log = dest.join(LOG_FILE);
    if last_run.is_none() {
        h.notes.push(format!(
            "no nightly has run yet ({} has no runs); the staleness checks start after the first",
            log.display()
        ));
        return h;
    }
    let bound = bounds.nightly.as_secs() as i64;
    match last_success {
        Some(t) if now - t <= bound => {}
        Some(t) => h.problems.push(format!(
            "the newest successful nightly (backup and verify) finished {} ago ({}), more than [nightly] stale_after = {}",
            age(now, t),
            spyglass_backup::names::rfc3339(t),
            humantime::format_duration(bounds.nightly)
        )),
        None => h.problems.push(format!(
            "none of the {} nightly run(s) in {} made and verified a set",
            h.runs,
            log.display()
        )),
    }
    if let Some(b) = bounds.offsite {
        match last_offsite {
            Some(t) if now - t <= b.as_secs() as i64 => {}
            Some(t) => h.problems.push(format!(
                "the newest verified off-site copy was shipped {} ago ({}), more than [nightly] offsite_stale_after = {}",
                age(now, t),
                spyglass_backup::names::rfc3339(t),
                humantime::format_duration(b)
            )),
            None => h.problems.push(format!(
                "none of the {} nightly run(s) in {} shipped a verified off-site copy",
                h.runs,
                log.display()
            )),
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(finished: &str, steps: &[(&str, &str)]) -> String {
        let steps: Vec<_> = steps
            .iter()
            .map(|(n, s)| serde_json::json!({"name": n, "status": s}))
            .collect();
        serde_json::json!({"finished": finished, "status": "x", "steps": steps}).to_string()
    }

    #[test]
    fn the_log_is_capped_to_its_newest_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        for i in 0..100 {
            append_capped(&p, &format!("{i:09}"), 100, 50).unwrap();
            assert!(std::fs::metadata(&p).unwrap().len() <= 100);
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.last(), Some(&"000000099"));
        // Cut to 5 lines (50 bytes) whenever it passes 100 bytes (10 lines).
        assert!((5..=10).contains(&lines.len()), "{text}");
        assert!(lines.windows(2).all(|w| w[0] < w[1]), "{text}");
        // A line longer than the cap is kept alone.
        let long = "y".repeat(300);
        append_capped(&p, &long, 100, 50).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), format!("{long}\n"));
    }

    #[test]
    fn dead_mans_switch() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let bounds = Bounds {
            nightly: DEFAULT_STALE_AFTER,
            offsite: Some(DEFAULT_STALE_AFTER),
        };
        let now = parse_time("2026-12-02T03:00:00Z").unwrap();
        // No history: a note, healthy.
        let h = health(d, now, &bounds);
        assert!(h.problems.is_empty() && h.notes[0].contains("no nightly has run yet"));
        // A good night yesterday: healthy.
        let good = [("backup", "ok"), ("verify", "ok"), ("ship", "ok")];
        append_log(d, &line("2026-12-01T02:40:00Z", &good)).unwrap();
        let h = health(d, now, &bounds);
        assert!(h.problems.is_empty(), "{h:?}");
        assert_eq!(h.last_offsite.as_deref(), Some("2026-12-01T02:40:00Z"));
        // Two days later, with a failed run since (and a broken line): stale.
        append_log(d, "not json").unwrap();
        append_log(
            d,
            &line(
                "2026-12-03T02:40:00Z",
                &[("backup", "failed"), ("verify", "skipped")],
            ),
        )
        .unwrap();
        let later = parse_time("2026-12-03T05:00:00Z").unwrap();
        let h = health(d, later, &bounds);
        assert_eq!(h.runs, 2);
        assert_eq!(h.problems.len(), 2, "{h:?}");
        assert!(
            h.problems[0].starts_with(
                "the newest successful nightly (backup and verify) finished 2days 2h 20m ago"
            ),
            "{h:?}"
        );
        assert!(h.problems[1].contains("off-site"), "{h:?}");
        // Shipped copies fresh, not shipping at all: only the nightly bound.
        let h = health(
            d,
            later,
            &Bounds {
                nightly: Duration::from_secs(3 * 86400),
                offsite: None,
            },
        );
        assert!(h.problems.is_empty(), "{h:?}");
        // A log with runs but never a success.
        let other = tempfile::tempdir().unwrap();
        append_log(
            other.path(),
            &line("2026-12-02T02:40:00Z", &[("backup", "failed")]),
        )
        .unwrap();
        let h = health(other.path(), now, &bounds);
        assert!(
            h.problems[0].starts_with("none of the 1 nightly run(s)"),
            "{h:?}"
        );
    }
}
