//! The lab's database at a glance: one typed [`Report`] gathered from the
//! other libraries, and one self-contained HTML page rendered from it.
//!
//! - [`gather`]: reads the server (`information_schema.TABLES`, the grant
//!   tables), the stores (the cleanup scan, and each `~external` table's
//!   paths through the cleanup inventory's bulk read), the backup
//!   destination (sets, manifests, verify records, `spyglass-nightly.log`)
//!   and the quarantine. A section whose source is missing is
//!   [`Section::Unavailable`] with the reason, never made-up numbers.
//! - [`aggregate`]: pure: storage per schema, per user prefix and per shared
//!   module (a file several schemas name counted once above the schema),
//!   growth rates and runway from a series of points.
//! - [`history`]: the small history kept under the backup destination, one
//!   record per night.
//! - [`html`]: the page: inline SVG charts drawn here, every number also in a
//!   table cell (with its JSON pointer in `data-k` and raw value in
//!   `data-v`), problems first, no script and no network request.
//!
//! No printing; the caller writes the page.
//!
//! ```
//! use std::collections::BTreeSet;
//! use spyglass_report::aggregate::{self, FileRef, TableSize};
//! let tables = vec![TableSize { schema: "lfp_v1".into(), table: "lfp".into(), rows: 1, data_bytes: 10, index_bytes: 0 }];
//! let file = |schema: &str| FileRef { store: "analysis".into(), rel: "a.nwb".into(), schema: schema.into(), size: Some(100) };
//! let s = aggregate::storage(&tables, &[file("lfp_v1"), file("alice_x")], &["lfp".into()], &BTreeSet::new(), &[]);
//! assert_eq!(s.file_bytes, 100); // one file, two schemas: counted once
//! assert_eq!(s.sharing[0].schemas, ["alice_x", "lfp_v1"]);
//! ```
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod aggregate;
mod error;
pub mod gather;
pub mod history;
pub mod html;
pub mod model;

pub use error::ReportError;
pub use gather::{gather, Inputs};
pub use model::{Report, Section, Severity};

use model::Problem;

/// Runway below this many days is a high-severity problem (below three times it, medium).
pub const RUNWAY_DAYS: f64 = 30.0;
/// The newest complete set older than this many hours is a problem.
pub const BACKUP_AGE_HOURS: i64 = 36;

/// Every problem the report's sections show, worst first (stable within a severity).
pub fn problems(r: &Report) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut add = |severity, section: &str, message: String| {
        out.push(Problem {
            severity,
            section: section.to_owned(),
            message,
        })
    };
    let now = aggregate::parse_rfc3339(&r.generated).unwrap_or(0);
    let sections: [(&str, Option<&str>); 5] = [
        ("storage", unavailable(&r.storage)),
        ("growth", unavailable(&r.growth)),
        ("backups", unavailable(&r.backups)),
        ("cleanup", unavailable(&r.cleanup)),
        ("users", unavailable(&r.users)),
    ];
    for (name, why) in sections {
        if let Some(why) = why {
            add(Severity::Low, name, format!("not available: {why}"));
        }
    }
    if let Some(c) = r.cleanup.data() {
        if !c.dangling.is_empty() {
            add(
                Severity::High,
                "cleanup",
                format!(
                    "{} dangling reference(s): rows whose file is missing (possible data loss), e.g. {}",
                    c.dangling.len(),
                    c.dangling[0]
                ),
            );
        }
        let old: Vec<&model::QuarantineRun> = c
            .quarantine_runs
            .iter()
            .filter(|q| q.items > 0 && q.age_days > 30.0)
            .collect();
        if !old.is_empty() {
            add(
                Severity::Low,
                "cleanup",
                format!(
                    "{} quarantine run(s) older than 30 days still hold files (cleanup purge)",
                    old.len()
                ),
            );
        }
    }
    if let Some(b) = r.backups.data() {
        let complete: Vec<&model::BackupRun> =
            b.sets.iter().filter(|s| s.status == "complete").collect();
        match complete.last() {
            None => add(
                Severity::High,
                "backups",
                format!("no complete backup set in {}", b.destination),
            ),
            Some(last) => {
                if let Some(t) = last.started_unix {
                    if now - t > BACKUP_AGE_HOURS * 3600 {
                        add(
                            Severity::High,
                            "backups",
                            format!(
                                "the newest complete set {} is {:.1} days old",
                                last.name,
                                (now - t) as f64 / 86_400.0
                            ),
                        );
                    }
                }
                match last.verify.as_str() {
                    "bad" => add(
                        Severity::High,
                        "backups",
                        format!("the newest set {} failed its verify", last.name),
                    ),
                    "never" => add(
                        Severity::Medium,
                        "backups",
                        format!("the newest set {} was never verified", last.name),
                    ),
                    _ => {}
                }
            }
        }
        for s in b.sets.iter().filter(|s| s.status == "corrupt") {
            add(
                Severity::Medium,
                "backups",
                format!("set {} is corrupt: {}", s.name, s.warnings.join("; ")),
            );
        }
        if b.newest_offsite_verified.is_none() {
            add(
                Severity::Medium,
                "backups",
                "no verified set is known to be off-site (shipped by nightly)".into(),
            );
        }
        if let Some(n) = b.nightly.last() {
            if n.status == "failed" {
                add(
                    Severity::High,
                    "backups",
                    format!("the last nightly run ({}) failed", n.started),
                );
            }
        }
    }
    if let Some(g) = r.growth.data() {
        for w in &g.runway {
            if let Some(d) = w.days_left {
                if d < RUNWAY_DAYS {
                    add(
                        Severity::High,
                        "growth",
                        format!(
                            "{} fills its disk in {d:.0} days at the current rate",
                            w.what
                        ),
                    );
                } else if d < 3.0 * RUNWAY_DAYS {
                    add(
                        Severity::Medium,
                        "growth",
                        format!(
                            "{} fills its disk in {d:.0} days at the current rate",
                            w.what
                        ),
                    );
                }
            }
        }
    }
    if let Some(u) = r.users.data() {
        // One line per kind and severity: a fresh server lacks every role, and
        // twenty lines of it would bury the other sections' problems.
        let mut kinds: Vec<((&str, &str), Vec<&model::AuditFinding>)> = Vec::new();
        for f in &u.findings {
            let key = (f.severity.as_str(), f.kind.as_str());
            match kinds.iter_mut().find(|k| k.0 == key) {
                Some(k) => k.1.push(f),
                None => kinds.push((key, vec![f])),
            }
        }
        let mut low = 0;
        for ((sev, kind), fs) in kinds {
            let severity = match sev {
                "high" => Severity::High,
                "medium" => Severity::Medium,
                _ => {
                    low += fs.len();
                    continue;
                }
            };
            let message = if fs.len() == 1 {
                format!("{kind}: {}", fs[0].message)
            } else {
                let mut subjects: Vec<&str> = fs.iter().map(|f| f.subject.as_str()).collect();
                subjects.dedup();
                format!(
                    "{kind}: {} findings ({}), each with its fix under Users",
                    fs.len(),
                    subjects.join(", ")
                )
            };
            add(severity, "users", message);
        }
        if low > 0 {
            add(
                Severity::Low,
                "users",
                format!("{low} low-severity audit finding(s) (hygiene), listed under Users"),
            );
        }
    }
    out.sort_by_key(|p| p.severity);
    out
}

fn unavailable<T>(s: &Section<T>) -> Option<&str> {
    match s {
        Section::Unavailable { reason } => Some(reason),
        Section::Gathered { .. } => None,
    }
}
