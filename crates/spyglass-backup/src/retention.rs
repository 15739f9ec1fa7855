//! Which sets to keep: grandfather-father-son retention, like restic's
//! `forget` (<https://restic.readthedocs.io/en/stable/060_forget.html>).
//!
//! [`plan`] is a pure function of the sets, the [`Policy`] and the time; it
//! never touches the disk, so every rule has a table-driven test with made-up
//! dates. Rules, applied to complete sets newest first:
//!
//! - `keep_last N`: the N newest.
//! - `keep_daily N`, `keep_weekly N`, `keep_monthly N`, `keep_yearly N`: the
//!   newest set of each of the last N UTC days (ISO weeks, months, years)
//!   that have a set. Days are UTC days, as in set names.
//! - `keep_within D`: every set started less than D seconds before `now`.
//!
//! Whatever the policy says: the newest complete set is always kept; a
//! `.partial` set whose writer is alive (or unknown: a transfer on a remote)
//! is never touched; a `.partial` set is removed only once its writer is gone
//! and it started at least [`PARTIAL_GRACE`] ago (so a run that just created
//! its directory and has not yet written `writer.pid` is safe); a set that
//! looks corrupt is kept and reported, since it needs a person's look.

use std::fmt;

use chrono::Datelike;
use serde::Serialize;

use crate::list::{SetInfo, Status};
use crate::names;

/// A `.partial` set with a dead writer is removed only when it started at
/// least this long ago (seconds).
pub const PARTIAL_GRACE: i64 = 15 * 60;

/// On a ship target nobody records the writer of a `.partial` copy (it is
/// an interrupted transfer the next ship resumes); it is removed only when
/// it started at least this long ago (seconds), or a complete copy exists.
pub const REMOTE_PARTIAL_GRACE: i64 = 7 * 86_400;

/// How many sets each rule keeps; 0 means the rule is off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// The N newest sets.
    pub keep_last: u32,
    /// The newest set of each of the last N days that have one.
    pub keep_daily: u32,
    /// The newest set of each of the last N ISO weeks that have one.
    pub keep_weekly: u32,
    /// The newest set of each of the last N months that have one.
    pub keep_monthly: u32,
    /// The newest set of each of the last N years that have one.
    pub keep_yearly: u32,
    /// Every set younger than this many seconds.
    pub keep_within: u64,
}

impl Policy {
    /// True when no rule is on: [`plan`] would then keep only the newest set,
    /// so callers refuse to prune with an empty policy.
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }

    /// `last 7, daily 14, weekly 8, monthly 12`, for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (n, what) in [
            (self.keep_last, "last"),
            (self.keep_daily, "daily"),
            (self.keep_weekly, "weekly"),
            (self.keep_monthly, "monthly"),
            (self.keep_yearly, "yearly"),
        ] {
            if n > 0 {
                parts.push(format!("{what} {n}"));
            }
        }
        if self.keep_within > 0 {
            parts.push(format!("within {}d", self.keep_within.div_ceil(86_400)));
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Who writes a `.partial` set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Writer {
    /// Its process is running.
    Alive,
    /// Its process is gone (or never wrote its pid).
    Dead,
    /// Nobody knows (a copy on a ship target).
    Unknown,
}

/// What [`plan`] needs to know about one set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Directory name.
    pub name: String,
    /// Start time from the name (Unix seconds); sets without one are kept.
    pub created: Option<i64>,
    /// Complete, partial or corrupt.
    pub status: Status,
    /// For partial sets.
    pub writer: Writer,
}

impl From<&SetInfo> for Item {
    fn from(s: &SetInfo) -> Self {
        Item {
            name: s.name.clone(),
            created: s.created,
            status: s.status,
            writer: match s.writer_alive {
                Some(true) => Writer::Alive,
                Some(false) => Writer::Dead,
                None => Writer::Unknown,
            },
        }
    }
}

impl Item {
    /// A set on a ship target, known only by its name: complete unless it
    /// ends in `.partial` (ship renames a copy into place only after it verified).
    pub fn on_target(name: &str) -> Item {
        let partial = name.ends_with(".partial");
        Item {
            name: name.to_owned(),
            created: names::parse_stamp(name),
            status: if partial {
                Status::Partial
            } else {
                Status::Complete
            },
            writer: Writer::Unknown,
        }
    }
}

/// The verdict on one set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Directory name.
    pub name: String,
    /// Keep it?
    pub keep: bool,
    /// Why: every rule that keeps it (`daily 2026-11-26`, `last 1`, ...),
    /// or why it goes. Serialized as their [`Display`](fmt::Display) text.
    pub reasons: Vec<Reason>,
}

/// A calendar rule of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `keep_daily`: one set per UTC day.
    Daily,
    /// `keep_weekly`: one set per ISO 8601 week.
    Weekly,
    /// `keep_monthly`: one set per month.
    Monthly,
    /// `keep_yearly`: one set per year.
    Yearly,
}

impl Rule {
    /// The bucket of UTC time `t`: `2026-11-26`, `2026-W48`, `2026-11`, `2026`.
    fn bucket(self, t: i64) -> String {
        let t = names::utc(t);
        match self {
            Rule::Daily => t.format("%Y-%m-%d").to_string(),
            Rule::Weekly => {
                let w = t.iso_week();
                format!("{:04}-W{:02}", w.year(), w.week())
            }
            Rule::Monthly => t.format("%Y-%m").to_string(),
            Rule::Yearly => t.format("%Y").to_string(),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
            Rule::Yearly => "yearly",
        })
    }
}

/// Why a `.partial` set is kept or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PartialState {
    /// Its writer is running (kept).
    BeingWritten,
    /// Its writer is gone and it is older than [`PARTIAL_GRACE`] (removed).
    Leftover,
    /// Its writer is gone but it started less than [`PARTIAL_GRACE`] ago (kept).
    Young,
    /// A staged copy on a target of a set complete there (removed).
    CopyOfComplete,
    /// A transfer interrupted more than [`REMOTE_PARTIAL_GRACE`] ago (removed).
    StaleTransfer,
    /// A transfer interrupted or running; the next ship resumes it (kept).
    Transfer,
}

/// One reason in a [`Decision`]. `Display` gives the words `backup prune`
/// prints and its `--json` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The newest complete set, kept whatever the policy says.
    Newest,
    /// `keep_last`: the n-th newest complete set.
    Last(usize),
    /// A calendar rule keeps it as the newest of its bucket.
    Bucket {
        /// The rule.
        rule: Rule,
        /// The day, week, month or year: `2026-11-26`, `2026-W48`...
        key: String,
    },
    /// `keep_within`: younger than this many days.
    Within(u64),
    /// No rule keeps it (it goes).
    NotKept(Policy),
    /// No date in its name: not counted by the policy, kept.
    NoDate,
    /// It looks corrupt: not counted, kept for a person to look at.
    Corrupt,
    /// It is a `.partial` set.
    Partial(PartialState),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Newest => f.write_str("newest complete set"),
            Reason::Last(n) => write!(f, "last {n}"),
            Reason::Bucket { rule, key } => write!(f, "{rule} {key}"),
            Reason::Within(days) => write!(f, "within {days}d"),
            Reason::NotKept(p) => write!(f, "not kept by the policy ({})", p.describe()),
            Reason::NoDate => f.write_str("no date in its name; not counted by the policy"),
            Reason::Corrupt => f.write_str(
                "looks corrupt (backup list says why); not counted, left for a person to look at",
            ),
            Reason::Partial(s) => f.write_str(match s {
                PartialState::BeingWritten => "being written (its writer is running)",
                PartialState::Leftover => "unfinished leftover; its writer is gone",
                PartialState::Young => {
                    "unfinished and its writer is gone, but it started less than 15 minutes ago"
                }
                PartialState::CopyOfComplete => "unfinished copy of a set that is complete here",
                PartialState::StaleTransfer => "interrupted transfer older than 7 days",
                PartialState::Transfer => {
                    "interrupted or running transfer; the next ship resumes it"
                }
            }),
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Decides, for every set, keep or remove, with reasons. Sets come back in
/// the order given.
pub fn plan(items: &[Item], policy: &Policy, now: i64) -> Vec<Decision> {
    let mut out: Vec<Decision> = items
        .iter()
        .map(|i| Decision {
            name: i.name.clone(),
            keep: true,
            reasons: Vec::new(),
        })
        .collect();
    // Complete sets with a date, newest first.
    let mut order: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].status == Status::Complete && items[i].created.is_some())
        .collect();
    order.sort_by(|&a, &b| {
        items[b]
            .created
            .cmp(&items[a].created)
            .then(items[b].name.cmp(&items[a].name))
    });

    let rules = [
        (policy.keep_daily, Rule::Daily),
        (policy.keep_weekly, Rule::Weekly),
        (policy.keep_monthly, Rule::Monthly),
        (policy.keep_yearly, Rule::Yearly),
    ];
    let mut left: Vec<u32> = rules.iter().map(|r| r.0).collect();
    let mut last: Vec<Option<String>> = vec![None; rules.len()];
    for (rank, &i) in order.iter().enumerate() {
        let t = items[i].created.unwrap_or_default();
        let reasons = &mut out[i].reasons;
        if rank == 0 {
            reasons.push(Reason::Newest);
        }
        if (rank as u64) < u64::from(policy.keep_last) {
            reasons.push(Reason::Last(rank + 1));
        }
        if policy.keep_within > 0 && now.saturating_sub(t) < policy.keep_within as i64 {
            reasons.push(Reason::Within(policy.keep_within.div_ceil(86_400)));
        }
        for (r, &(_, rule)) in rules.iter().enumerate() {
            if left[r] == 0 {
                continue;
            }
            let key = rule.bucket(t);
            if last[r].as_deref() != Some(key.as_str()) {
                left[r] -= 1;
                last[r] = Some(key.clone());
                reasons.push(Reason::Bucket { rule, key });
            }
        }
        if reasons.is_empty() {
            reasons.push(Reason::NotKept(*policy));
            out[i].keep = false;
        }
    }
    let complete_names: std::collections::HashSet<&str> = items
        .iter()
        .filter(|i| i.status == Status::Complete)
        .map(|i| i.name.as_str())
        .collect();
    for (i, item) in items.iter().enumerate() {
        let d = &mut out[i];
        match item.status {
            Status::Complete if item.created.is_none() => d.reasons.push(Reason::NoDate),
            Status::Complete => {}
            Status::Corrupt => d.reasons.push(Reason::Corrupt),
            Status::Partial => {
                let age = item.created.map(|c| now.saturating_sub(c));
                let base = item.name.strip_suffix(".partial").unwrap_or(&item.name);
                use PartialState as P;
                let (remove, why) = match item.writer {
                    Writer::Alive => (false, P::BeingWritten),
                    Writer::Dead if age.is_some_and(|a| a >= PARTIAL_GRACE) => (true, P::Leftover),
                    Writer::Dead => (false, P::Young),
                    Writer::Unknown if complete_names.contains(base) => (true, P::CopyOfComplete),
                    Writer::Unknown if age.is_some_and(|a| a >= REMOTE_PARTIAL_GRACE) => {
                        (true, P::StaleTransfer)
                    }
                    Writer::Unknown => (false, P::Transfer),
                };
                d.keep = !remove;
                d.reasons.push(Reason::Partial(why));
            }
        }
    }
    out
}

/// ISO 8601 week-numbering year and week of a Unix time (UTC).
pub fn iso_week(t: i64) -> (i64, u32) {
    let w = names::utc(t).iso_week();
    (i64::from(w.year()), w.week())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, m: u32, d: u32, hh: u32) -> i64 {
        at_min(y, m, d, hh, 0)
    }

    fn at_min(y: i32, m: u32, d: u32, hh: u32, mm: u32) -> i64 {
        chrono::NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|d| d.and_hms_opt(hh, mm, 0))
            .expect("a valid date in a test")
            .and_utc()
            .timestamp()
    }

    fn set(t: i64) -> Item {
        Item {
            name: format!("nightly-{}", names::stamp(t)),
            created: Some(t),
            status: Status::Complete,
            writer: Writer::Dead,
        }
    }

    /// Names of the kept sets, as `MMDD-HH`.
    fn kept(items: &[Item], policy: Policy, now: i64) -> Vec<String> {
        plan(items, &policy, now)
            .into_iter()
            .filter(|d| d.keep)
            .map(|d| d.name["nightly-2026".len()..].replace(".partial", "+p")[..7].to_owned())
            .collect()
    }

    /// One set a day at 02:00 from 2026-09-01 to 2026-11-26, plus a second one on 11-26 at 14:00.
    fn nightly() -> Vec<Item> {
        let mut v: Vec<Item> = (0..87)
            .map(|i| set(at(2026, 9, 1, 2) + i * 86_400))
            .collect();
        v.push(set(at(2026, 11, 26, 14)));
        v
    }

    #[test]
    fn iso_weeks() {
        for (y, m, d, want) in [
            (2026, 11, 26, (2026, 48)),
            (2021, 1, 3, (2020, 53)),
            (2021, 1, 4, (2021, 1)),
            (2024, 12, 30, (2025, 1)),
            (2026, 1, 1, (2026, 1)),
        ] {
            assert_eq!(iso_week(at(y, m, d, 12)), want, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn policies_on_made_up_dates() {
        let now = at(2026, 11, 26, 15);
        let p = |l, d, w, m| Policy {
            keep_last: l,
            keep_daily: d,
            keep_weekly: w,
            keep_monthly: m,
            ..Policy::default()
        };
        let table: Vec<(Policy, Vec<&str>)> = vec![
            (p(2, 0, 0, 0), vec!["1126-02", "1126-14"]),
            // Daily keeps the newest of each day: 11-26 14:00, not 02:00.
            (p(0, 3, 0, 0), vec!["1124-02", "1125-02", "1126-14"]),
            (p(1, 3, 0, 0), vec!["1124-02", "1125-02", "1126-14"]),
            // Weekly: newest of ISO weeks 48 (Thu 11-26), 47 (Sun 11-22), 46 (11-15).
            (p(0, 0, 3, 0), vec!["1115-02", "1122-02", "1126-14"]),
            // Monthly: newest of November, October, September.
            (p(0, 0, 0, 3), vec!["0930-02", "1031-02", "1126-14"]),
            (p(0, 0, 0, 12), vec!["0930-02", "1031-02", "1126-14"]),
            (
                p(0, 2, 2, 2),
                vec!["1031-02", "1122-02", "1125-02", "1126-14"],
            ),
        ];
        for (policy, want) in table {
            assert_eq!(kept(&nightly(), policy, now), want, "{policy:?}");
        }
        // keep_within: 2 days before now (15:00 on 11-26) reaches back to 11-24 15:00.
        let within = Policy {
            keep_within: 2 * 86_400,
            ..Policy::default()
        };
        assert_eq!(
            kept(&nightly(), within, now),
            vec!["1125-02", "1126-02", "1126-14"]
        );
    }

    #[test]
    fn reasons_name_every_rule() {
        let d = plan(
            &nightly(),
            &Policy {
                keep_last: 1,
                keep_daily: 1,
                keep_monthly: 1,
                ..Policy::default()
            },
            at(2026, 11, 27, 0),
        );
        let newest = d
            .iter()
            .find(|d| d.name.ends_with("20261126-140000"))
            .unwrap();
        assert_eq!(
            newest
                .reasons
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "newest complete set",
                "last 1",
                "daily 2026-11-26",
                "monthly 2026-11"
            ]
        );
        assert_eq!(
            newest.reasons[2],
            Reason::Bucket {
                rule: Rule::Daily,
                key: "2026-11-26".into()
            }
        );
        // The JSON of `backup prune --json` carries the words.
        assert_eq!(
            serde_json::to_value(&newest.reasons).unwrap(),
            serde_json::json!([
                "newest complete set",
                "last 1",
                "daily 2026-11-26",
                "monthly 2026-11"
            ])
        );
        let gone = d
            .iter()
            .find(|d| d.name.ends_with("20261001-020000"))
            .unwrap();
        assert!(!gone.keep);
        assert!(
            gone.reasons[0]
                .to_string()
                .starts_with("not kept by the policy (last 1, daily 1, monthly 1)"),
            "{:?}",
            gone.reasons
        );
    }

    #[test]
    fn never_removes_the_newest_complete_set() {
        let now = at(2026, 11, 26, 15);
        // An empty policy keeps the newest only.
        assert_eq!(kept(&nightly(), Policy::default(), now), vec!["1126-14"]);
        // A newer partial or corrupt set does not count as the newest complete one.
        let mut items = nightly();
        items.push(Item {
            name: "nightly-20261126-150000".into(),
            created: Some(at(2026, 11, 26, 15)),
            status: Status::Corrupt,
            writer: Writer::Dead,
        });
        let policy = Policy {
            keep_last: 1,
            ..Policy::default()
        };
        assert_eq!(kept(&items, policy, now), vec!["1126-14", "1126-15"]);
    }

    #[test]
    fn partial_sets() {
        let now = at(2026, 11, 26, 15);
        let partial = |hh: u32, mm: u32, writer| Item {
            name: format!(
                "nightly-{}.partial",
                names::stamp(at_min(2026, 11, 26, hh, mm))
            ),
            created: Some(at_min(2026, 11, 26, hh, mm)),
            status: Status::Partial,
            writer,
        };
        let items = vec![
            set(at(2026, 11, 25, 2)),
            set(at(2026, 11, 26, 2)),
            partial(3, 0, Writer::Dead),    // crashed last night: goes
            partial(14, 50, Writer::Dead),  // 10 minutes old, no pid yet: stays
            partial(14, 0, Writer::Alive),  // running: stays
            partial(2, 0, Writer::Unknown), // a copy of the complete 02:00 set: goes
            partial(1, 0, Writer::Unknown), // interrupted transfer: stays
        ];
        let d = plan(
            &items,
            &Policy {
                keep_last: 1,
                ..Policy::default()
            },
            now,
        );
        let keep: Vec<bool> = d.iter().map(|d| d.keep).collect();
        assert_eq!(
            keep,
            [false, true, false, true, true, false, true],
            "{d:#?}"
        );
        assert!(d[4].reasons[0].to_string().contains("being written"));
        assert_eq!(d[4].reasons[0], Reason::Partial(PartialState::BeingWritten));
        // A week later the interrupted transfer goes too.
        let d = plan(
            &items,
            &Policy {
                keep_last: 1,
                ..Policy::default()
            },
            now + 8 * 86_400,
        );
        assert!(!d[6].keep);
    }

    #[test]
    fn describes_policies() {
        assert_eq!(Policy::default().describe(), "none");
        assert!(Policy::default().is_empty());
        let p = Policy {
            keep_last: 7,
            keep_weekly: 4,
            ..Policy::default()
        };
        assert_eq!(p.describe(), "last 7, weekly 4");
    }
}
