//! The nightly job: back up, verify, ship, prune here and there, and scan
//! (or clean up) the lab's files, in one run for cron.
//!
//! [`NightlyPlan::from_settings`] reads and checks every setting before
//! anything runs, so a typo fails at once; [`lock`] makes sure only one run
//! works on a destination; [`run`] runs every step the rules in
//! [`schedule`] allow and returns a [`NightlySummary`], typed per step
//! ([`StepDetail`]). The caller renders the summary, stores it with
//! [`write_summary`] and passes it to [`notify`].

pub mod account;
pub mod history;
pub mod schedule;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use spyglass_backup::compress::Compression;
use spyglass_backup::dump::{self, DumpOptions, DumpSummary};
use spyglass_backup::lock::{Lock, LockError};
use spyglass_backup::names;
use spyglass_backup::progress::Progress;
use spyglass_backup::prune::{self, PruneReport};
use spyglass_backup::retention::Policy;
use spyglass_backup::ship::{self, ShipOptions, ShipReport, Target, Transport};
use spyglass_backup::verify::{self, VerifyReport};

pub use schedule::{Decision, Shape, SkipReason, Step, StepStatus};

use crate::cleanup::{self, ApplySummary, Connection, ScanOverrides, ScanSummary};
use crate::lifecycle::{self, KeepOverrides};
use crate::settings::{CleanupMode, CompressMethod, NotifyOn, Settings};
use crate::{human_bytes, JobError};

/// The lock file inside the backup destination.
pub const LOCK_FILE: &str = ".spyglass-nightly.lock";
/// The last run's summary inside the backup destination.
pub const SUMMARY_FILE: &str = "spyglass-nightly.json";
/// One summary per line, every run, inside the backup destination.
pub const LOG_FILE: &str = "spyglass-nightly.log";
/// How long `notify_command` may run before it is stopped.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(120);
/// The set name prefix when `[backup] label` is not set.
pub const DEFAULT_LABEL: &str = "nightly";
/// With calendar rules (`keep_daily`, `keep_weekly`, ...) nightly keeps at
/// least this many newest sets too, so a manual run in the day never pushes
/// last night's set out (the daily rule keeps only the newest of a day).
pub const MIN_KEEP_LAST: u32 = 3;
/// The restore drill restores into `<prefix><schema>` and drops them.
pub const DRILL_PREFIX: &str = "drill_";
/// Inside the backup destination while a restore drill runs: the scratch
/// schemas it is creating. A drill that was killed leaves it; the next one
/// drops exactly those schemas before it starts.
pub const DRILL_LEDGER: &str = ".spyglass-drill-schemas";
/// Weekday names of `[nightly] restore_drill`, Sunday first (UTC days).
pub const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// The UTC weekday of Unix seconds `secs`, 0 = Sunday.
pub fn weekday(secs: i64) -> usize {
    // 1970-01-01 was a Thursday.
    (secs.div_euclid(86_400) + 4).rem_euclid(7) as usize
}

fn drill_days(v: Option<&crate::settings::OneOrMany>) -> Result<[bool; 7], JobError> {
    let mut days = [false; 7];
    for item in v.map(|v| v.items()).unwrap_or_default() {
        match item.as_str() {
            "daily" | "always" => days = [true; 7],
            "never" | "off" => {}
            d => {
                const FULL: [&str; 7] = [
                    "sunday",
                    "monday",
                    "tuesday",
                    "wednesday",
                    "thursday",
                    "friday",
                    "saturday",
                ];
                let i = (0..7)
                    .find(|&i| d == WEEKDAYS[i] || d == FULL[i])
                    .ok_or_else(|| JobError::Invalid {
                        section: "nightly",
                        key: "restore_drill",
                        message: format!(
                            "'{d}' is not a weekday; write e.g. \"sun\", \"mon,thu\" or \"daily\""
                        ),
                    })?;
                days[i] = true;
            }
        }
    }
    Ok(days)
}

/// `notify_command` and when it runs.
#[derive(Debug, Clone)]
pub struct Notify {
    /// Run with `sh -c`; gets the summary on stdin.
    pub command: String,
    /// The least severe result that runs it.
    pub on: NotifyOn,
}

/// One more ship target of the nightly and the retention it is pruned by.
#[derive(Debug, Clone)]
pub struct ShipTo {
    /// Where.
    pub target: Target,
    /// Its own policy (its `keep_*`, else `[backup] keep_*`).
    pub policy: Policy,
}

/// Everything one nightly run does, checked.
#[derive(Debug)]
pub struct NightlyPlan {
    /// Where sets are written (and the lock, summary and log).
    pub dest: PathBuf,
    /// Set name prefix.
    pub label: String,
    /// Backup worker connections.
    pub threads: usize,
    /// Compression of the set's files.
    pub compression: Compression,
    /// Schemas to back up (globs; empty = all).
    pub schemas: Vec<String>,
    /// Schemas left out (globs).
    pub exclude: Vec<String>,
    /// Retention, here and on the target.
    pub policy: Policy,
    /// Where the set is shipped.
    pub target: Option<Target>,
    /// `[[nightly.targets]]`: more targets, each with its own retention.
    pub more_targets: Vec<ShipTo>,
    /// How.
    pub ship: ShipOptions,
    /// Skip shipping in this run.
    pub no_ship: bool,
    /// Delete the local set once its shipped copy verified.
    pub remove_after_ship: bool,
    /// Apply the policy on the target too.
    pub prune_remote: bool,
    /// The cleanup step.
    pub cleanup: CleanupMode,
    /// Run after the summary is written.
    pub notify: Option<Notify>,
    /// UTC weekdays (0 = Sunday) whose verify is a restore drill.
    pub drill_days: [bool; 7],
    /// The dead man's switch's bounds (`doctor`).
    pub bounds: history::Bounds,
    /// The settings (the cleanup step reads `[cleanup]`; the summary names the file).
    pub settings: Settings,
    /// The database, or why it could not be resolved (the backup and cleanup
    /// steps then fail with that message, the others still run).
    pub connection: Result<Connection, String>,
    /// Set it (from a signal handler) to stop the backup cleanly.
    pub interrupt: Arc<AtomicBool>,
}

impl NightlyPlan {
    /// Reads and checks every setting. The connection is not resolved yet
    /// (set [`NightlyPlan::connection`] before [`run`]).
    pub fn from_settings(settings: Settings) -> Result<NightlyPlan, JobError> {
        let dest = settings
            .backup
            .destination
            .clone()
            .ok_or(JobError::Missing {
                job: "nightly",
                section: "backup",
                key: "destination",
            })?;
        // The nightly dumps into a local directory and ships from there;
        // an off-site target belongs in [nightly] ship_to.
        if let Some(scheme) = dest.to_str().and_then(spyglass_backup::ship::scheme_of) {
            return Err(JobError::Invalid {
                section: "backup",
                key: "destination",
                message: format!(
                    "nightly writes its sets to a local directory, not to a {scheme}:// target; \
                     set destination to a local directory and put the target in [nightly] ship_to"
                ),
            });
        }
        let n = &settings.nightly;
        let compression = n
            .compress
            .unwrap_or(CompressMethod::Gzip)
            .with_level(n.level)
            .map_err(|message| JobError::Invalid {
                section: "nightly",
                key: "level",
                message,
            })?;
        let label = settings
            .backup
            .label
            .clone()
            .unwrap_or_else(|| DEFAULT_LABEL.into());
        if label.is_empty() || label.contains('/') || label.starts_with('.') {
            return Err(JobError::Invalid {
                section: "backup",
                key: "label",
                message: format!("'{label}' is not usable in a directory name"),
            });
        }
        let target = settings
            .backup
            .ship_to
            .as_deref()
            .map(Target::parse)
            .transpose()?
            .map(|t| lifecycle::s3_config(&settings).map(|c| t.with_s3_config(&c)))
            .transpose()?;
        let drill_days = drill_days(n.restore_drill.as_ref())?;
        let mut policy = lifecycle::policy(&KeepOverrides::default(), &settings.backup);
        if policy.keep_daily + policy.keep_weekly + policy.keep_monthly + policy.keep_yearly > 0 {
            policy.keep_last = policy.keep_last.max(MIN_KEEP_LAST);
        }
        let main = settings
            .backup
            .ship_to
            .as_deref()
            .map(Target::parse)
            .transpose()?;
        let mut more_targets = Vec::new();
        for t in &n.targets {
            let target = Target::parse(&t.to)?;
            let target = match target {
                Target::S3 { .. } => target.with_s3_config(&lifecycle::s3_config(&settings)?),
                t => t,
            };
            let own = KeepOverrides {
                keep_last: t.keep_last,
                keep_daily: t.keep_daily,
                keep_weekly: t.keep_weekly,
                keep_monthly: t.keep_monthly,
                keep_yearly: t.keep_yearly,
                keep_within: t.keep_within,
            };
            let given = [
                t.keep_last,
                t.keep_daily,
                t.keep_weekly,
                t.keep_monthly,
                t.keep_yearly,
            ]
            .iter()
            .any(Option::is_some)
                || t.keep_within.is_some();
            let policy = if given {
                lifecycle::policy(&own, &crate::settings::BackupSettings::default())
            } else {
                policy
            };
            let same = |t: &Target| t.to_string() == target.to_string();
            if more_targets.iter().any(|m: &ShipTo| same(&m.target)) || main.iter().any(same) {
                return Err(JobError::Invalid {
                    section: "nightly.targets",
                    key: "to",
                    message: format!("{target} is named twice; every target is shipped to once"),
                });
            }
            more_targets.push(ShipTo { target, policy });
        }
        let bounds = history::Bounds::from_settings(&settings);
        Ok(NightlyPlan {
            label,
            threads: n
                .threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
                .max(1),
            compression,
            schemas: n.schemas.clone(),
            exclude: n.exclude.clone(),
            policy,
            target,
            more_targets,
            drill_days,
            bounds,
            ship: ShipOptions {
                ssh: lifecycle::ssh_options(None, None, &settings),
                transport: Transport::Auto,
                bwlimit_kib: settings.backup.bwlimit_kib.unwrap_or(0),
                ..ShipOptions::default()
            },
            no_ship: false,
            remove_after_ship: n.remove_after_ship.unwrap_or(false),
            prune_remote: n.prune_remote.unwrap_or(true),
            cleanup: n.cleanup.unwrap_or_default(),
            notify: n
                .notify_command
                .clone()
                .filter(|c| !c.trim().is_empty())
                .map(|command| Notify {
                    command,
                    on: n.notify_on.unwrap_or_default(),
                }),
            connection: Err("the connection was not resolved".into()),
            interrupt: Arc::new(AtomicBool::new(false)),
            dest,
            settings,
        })
    }

    /// Whether a run starting at Unix seconds `now` is a restore drill.
    pub fn drill_on(&self, now: i64) -> bool {
        self.drill_days[weekday(now)]
    }

    /// Every ship target with the policy it is pruned by: `[backup]
    /// ship_to` (by `[backup] keep_*`) first, then `[[nightly.targets]]`.
    pub fn ship_targets(&self) -> Vec<(&Target, &Policy)> {
        self.target
            .iter()
            .map(|t| (t, &self.policy))
            .chain(self.more_targets.iter().map(|m| (&m.target, &m.policy)))
            .collect()
    }

    /// What the step rules need to know.
    pub fn shape(&self) -> Shape {
        Shape {
            ship_to: self.target.is_some() || !self.more_targets.is_empty(),
            no_ship: self.no_ship,
            policy: !self.policy.is_empty(),
            prune_remote: self.prune_remote,
            cleanup: self.cleanup,
        }
    }
}

/// The held lock of a run; released on drop.
#[derive(Debug)]
pub struct NightlyLock {
    lock: Lock,
}

impl NightlyLock {
    /// The pid of a dead run whose lock was recovered.
    pub fn recovered_from(&self) -> Option<u32> {
        self.lock.recovered_from
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        self.lock.path()
    }
}

/// Creates the destination and takes its lock without waiting.
pub fn lock(plan: &NightlyPlan) -> Result<NightlyLock, JobError> {
    std::fs::create_dir_all(&plan.dest).map_err(|source| JobError::Destination {
        path: plan.dest.clone(),
        source,
    })?;
    let path = plan.dest.join(LOCK_FILE);
    match Lock::acquire(&path) {
        Ok(lock) => Ok(NightlyLock { lock }),
        Err(LockError::Held { pid, since, .. }) => Err(JobError::Busy {
            lock: path,
            pid,
            since,
        }),
        Err(e) => Err(JobError::Lock(e)),
    }
}

/// What the backup step wrote.
#[derive(Debug, Clone)]
pub struct BackupDetail {
    /// The set.
    pub path: PathBuf,
    /// Schemas in it.
    pub schemas: usize,
    /// Tables.
    pub tables: usize,
    /// Files.
    pub files: usize,
    /// Rows.
    pub rows: u64,
    /// Uncompressed bytes.
    pub raw_bytes: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// The engine's notes: standing facts of the server (a MyISAM table, no
    /// privilege for the global lock), shown but not a warning.
    pub notes: Vec<String>,
    /// Why the set is not what was asked for (the dump's findings): a warning.
    pub findings: Vec<String>,
}

impl BackupDetail {
    /// The detail of a finished dump.
    pub fn of(sum: &DumpSummary) -> BackupDetail {
        let m = &sum.manifest;
        BackupDetail {
            path: sum.path.clone(),
            schemas: m.schemas.len(),
            tables: m.tables.len(),
            files: m.files.len(),
            rows: m.tables.iter().map(|t| t.rows).sum(),
            raw_bytes: m.total_raw_bytes(),
            bytes: m.total_bytes(),
            notes: m.notes.clone(),
            findings: sum.findings.clone(),
        }
    }

    /// The step's status and line: a warning when the dump has findings.
    pub fn outcome(&self) -> (StepStatus, String) {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut msg = format!(
            "{name}: {} schemas, {} tables, {} on disk",
            self.schemas,
            self.tables,
            human_bytes(self.bytes)
        );
        for f in &self.findings {
            msg.push_str(&format!("; warning: {f}"));
        }
        // A finding is usually also a note; say it once.
        for n in self.notes.iter().filter(|n| !self.findings.contains(n)) {
            msg.push_str(&format!("; note: {n}"));
        }
        // The set is not what was asked for (no consistent snapshot, ...):
        // that needs attention, not a glance.
        let status = if self.findings.is_empty() {
            StepStatus::Ok
        } else {
            StepStatus::Attention
        };
        (status, msg)
    }
}

/// The nightly cleanup step's detail.
#[derive(Debug, Clone)]
pub enum CleanupDetail {
    /// `[nightly] cleanup = "scan"`.
    Scan(Box<ScanSummary>),
    /// `[nightly] cleanup = "apply"`, with the scan's dangling references
    /// (never acted on, always reported).
    Apply(Box<ApplySummary>, Vec<spyglass_cleanup::scan::Item>),
}

/// What a step produced, by step.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StepDetail {
    /// Skipped, or failed before producing anything.
    None,
    /// The new set.
    Backup(BackupDetail),
    /// The set's verification.
    Verify(VerifyReport),
    /// The shipped copy.
    Ship(ShipReport),
    /// A prune, here or on the target.
    Prune(PruneReport),
    /// The cleanup scan or apply.
    Cleanup(CleanupDetail),
}

/// One step of the summary.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// Which.
    pub step: Step,
    /// How it ended.
    pub status: StepStatus,
    /// How long it took.
    pub seconds: f64,
    /// One line for people.
    pub message: String,
    /// What it produced.
    pub detail: StepDetail,
}

/// The result of a whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Overall {
    /// Every step did its job.
    Ok,
    /// Informational only: cleanup found files to quarantine, a set could
    /// not be pruned, no retention policy.
    Warnings,
    /// Needs attention although every step ran: possible data loss
    /// (dangling references), a set that is not what was asked for.
    Attention,
    /// A step failed (a set was not made, did not verify, was not shipped),
    /// or the run could not start.
    Failed,
}

impl Overall {
    /// `ok`, `warnings`, `attention`, `failed`.
    pub fn name(self) -> &'static str {
        match self {
            Overall::Ok => "ok",
            Overall::Warnings => "warnings",
            Overall::Attention => "attention",
            Overall::Failed => "failed",
        }
    }

    /// The process exit code it maps to: 0 ok, 1 informational, 2 needs
    /// attention (attention or failed).
    pub fn exit_code(self) -> u8 {
        match self {
            Overall::Ok => 0,
            Overall::Warnings => 1,
            Overall::Attention | Overall::Failed => 2,
        }
    }

    /// The result a step's status contributes.
    pub fn of(status: StepStatus) -> Overall {
        match status {
            StepStatus::Ok | StepStatus::Skipped => Overall::Ok,
            StepStatus::Warning => Overall::Warnings,
            StepStatus::Attention => Overall::Attention,
            StepStatus::Failed => Overall::Failed,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct NightlySummary {
    /// This machine's host name ("" when unknown).
    pub host: String,
    /// Unix seconds.
    pub started: i64,
    /// Unix seconds.
    pub finished: i64,
    /// Wall time.
    pub seconds: f64,
    /// The settings file.
    pub config: Option<PathBuf>,
    /// The backup destination.
    pub destination: PathBuf,
    /// The set this run wrote, if any.
    pub set: Option<PathBuf>,
    /// A dead run's pid found in the lock file.
    pub lock_recovered_from: Option<u32>,
    /// Every step, in order.
    pub steps: Vec<StepReport>,
    /// The binlog archive's lag, when the destination holds one.
    pub binlog: Option<BinlogLag>,
}

/// How far the binlog archive (`DEST/binlog`) is behind the server, as
/// the nightly found it after its steps.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BinlogLag {
    /// The measurement, or None when it could not be made (see `error`).
    pub lag: Option<spyglass_binlog::archive::Lag>,
    /// Why it could not be measured.
    pub error: Option<String>,
    /// `[binlog] max_lag` in seconds.
    pub max_lag_seconds: u64,
    /// True when the lag is above `max_lag` (or could not be measured).
    pub attention: bool,
    /// One line for people.
    pub message: String,
}

/// The default `[binlog] max_lag`.
pub const DEFAULT_MAX_LAG: Duration = Duration::from_secs(3600);

/// Measures the archive's lag (None without an archive in `DEST/binlog`).
pub fn binlog_lag(plan: &NightlyPlan, now: i64) -> Option<BinlogLag> {
    let dir = plan.dest.join("binlog");
    if !dir.is_dir() {
        return None;
    }
    let max = plan
        .settings
        .binlog
        .max_lag
        .as_ref()
        .map_or(DEFAULT_MAX_LAG, |d| d.0);
    let measured = match &plan.connection {
        Err(why) => Err(why.clone()),
        Ok(c) => spyglass_db::connect(&c.options)
            .map_err(|e| chain(&e))
            .and_then(|mut s| {
                spyglass_binlog::archive::lag(s.conn(), &dir, now).map_err(|e| chain(&e))
            }),
    };
    let max_s = max.as_secs();
    Some(match measured {
        Ok(l) => {
            let over = l.seconds > max_s;
            let message = if l.bytes_behind == 0 {
                format!("binlog archive up to date with the server ({})", l.server)
            } else {
                format!(
                    "binlog archive {} behind the server ({} not archived; archive at {}, server at {}){}",
                    humantime::format_duration(Duration::from_secs(l.seconds)),
                    human_bytes(l.bytes_behind),
                    l.archived.as_deref().unwrap_or("nothing"),
                    l.server,
                    if over {
                        format!(
                            ", more than [binlog] max_lag = {}: is `spyglass-admin binlog archive` running?",
                            humantime::format_duration(max)
                        )
                    } else {
                        String::new()
                    }
                )
            };
            BinlogLag {
                lag: Some(l),
                error: None,
                max_lag_seconds: max_s,
                attention: over,
                message,
            }
        }
        Err(e) => BinlogLag {
            lag: None,
            message: format!("binlog archive lag could not be measured: {e}"),
            error: Some(e),
            max_lag_seconds: max_s,
            attention: true,
        },
    })
}

impl NightlySummary {
    /// The worst step decides (and an archive lag above `[binlog] max_lag`
    /// needs attention).
    pub fn overall(&self) -> Overall {
        let lag = if self.binlog.as_ref().is_some_and(|b| b.attention) {
            Overall::Attention
        } else {
            Overall::Ok
        };
        self.steps
            .iter()
            .map(|s| Overall::of(s.status))
            .max()
            .unwrap_or(Overall::Ok)
            .max(lag)
    }

    /// One line per step that needs attention (failed, or attention):
    /// `step: message` (and `binlog: message` for the archive's lag).
    pub fn attention(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .steps
            .iter()
            .filter(|s| Overall::of(s.status) >= Overall::Attention)
            .map(|s| format!("{}: {}", s.step, s.message))
            .collect();
        if let Some(b) = self.binlog.as_ref().filter(|b| b.attention) {
            v.push(format!("binlog: {}", b.message));
        }
        v
    }
}

/// An error and its causes on one line, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(&format!(": {c}"));
        cause = c.source();
    }
    s
}

fn report(
    step: Step,
    t: Instant,
    status: StepStatus,
    message: String,
    detail: StepDetail,
) -> StepReport {
    StepReport {
        step,
        status,
        seconds: t.elapsed().as_secs_f64(),
        message,
        detail,
    }
}

fn failed(step: Step, t: Instant, message: String) -> StepReport {
    report(step, t, StepStatus::Failed, message, StepDetail::None)
}

/// Runs every step the rules allow. A failing step is recorded in the
/// summary, never returned as an error; the steps that depend on it are
/// skipped and the others still run.
pub fn run(plan: &NightlyPlan, lock: &NightlyLock, progress: &dyn Progress) -> NightlySummary {
    let started_unix = names::now_unix();
    let started = Instant::now();
    let shape = plan.shape();
    let mut done = schedule::Outcomes::default();
    let mut steps = Vec::new();
    let mut set: Option<PathBuf> = None;
    // The targets a verified copy reached this run (pruned afterwards).
    let mut shipped: Vec<bool> = Vec::new();
    for step in Step::ALL {
        // Ship and prune-remote run once per target. With more than one
        // target, each is pruned when its own ship succeeded and it has a
        // policy (its own or [backup]'s), whatever the others did.
        let decision = schedule::next(step, &shape, &done);
        let per_target = match (&decision, step) {
            (Decision::Run, Step::Ship | Step::PruneRemote) => true,
            (
                Decision::Skip(SkipReason::NoPolicyRemote | SkipReason::NotShipped),
                Step::PruneRemote,
            ) => !plan.more_targets.is_empty() && shipped.iter().any(|s| *s),
            _ => false,
        };
        if per_target {
            let reports = match step {
                Step::Ship => {
                    let r = ship_steps(plan, set.as_deref());
                    shipped = r.iter().map(|r| r.status != StepStatus::Failed).collect();
                    r
                }
                _ => prune_remote_steps(plan, &shipped),
            };
            let worst = reports
                .iter()
                .map(|r| r.status)
                .filter(|s| *s != StepStatus::Skipped)
                .max()
                .unwrap_or(StepStatus::Skipped);
            done.set(step, worst);
            steps.extend(reports);
            continue;
        }
        let r = match decision {
            Decision::Skip(why) => StepReport {
                step,
                status: why.status(),
                seconds: 0.0,
                message: why.to_string(),
                detail: StepDetail::None,
            },
            Decision::Run => match step {
                Step::Backup => backup_step(plan, progress, &mut set),
                Step::Verify => {
                    verify_step(plan, set.as_deref(), plan.drill_on(started_unix), progress)
                }
                Step::Ship | Step::PruneRemote => unreachable!("run per target above"),
                Step::Prune => prune_step(plan),
                Step::Cleanup => cleanup_step(plan),
            },
        };
        done.set(step, r.status);
        steps.push(r);
    }
    NightlySummary {
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default(),
        started: started_unix,
        finished: names::now_unix(),
        seconds: started.elapsed().as_secs_f64(),
        config: plan.settings.path.clone(),
        destination: plan.dest.clone(),
        set,
        lock_recovered_from: lock.recovered_from(),
        steps,
        binlog: binlog_lag(plan, names::now_unix()),
    }
}

fn backup_step(
    plan: &NightlyPlan,
    progress: &dyn Progress,
    set: &mut Option<PathBuf>,
) -> StepReport {
    let t = Instant::now();
    let conn = match &plan.connection {
        Ok(c) => c,
        Err(why) => return failed(Step::Backup, t, why.clone()),
    };
    let mut o = DumpOptions::new(plan.dest.clone());
    o.label = plan.label.clone();
    o.threads = plan.threads;
    o.compression = plan.compression;
    o.schemas = plan.schemas.clone();
    o.exclude = plan.exclude.clone();
    o.interrupt = Arc::clone(&plan.interrupt);
    match dump::run(&conn.options, &o, progress) {
        Ok(sum) => {
            let d = BackupDetail::of(&sum);
            let (status, msg) = d.outcome();
            *set = Some(sum.path);
            report(Step::Backup, t, status, msg, StepDetail::Backup(d))
        }
        Err(e) => failed(Step::Backup, t, chain(&e)),
    }
}

fn verify_step(
    plan: &NightlyPlan,
    set: Option<&Path>,
    drill: bool,
    progress: &dyn Progress,
) -> StepReport {
    let t = Instant::now();
    let Some(path) = set else {
        return failed(Step::Verify, t, SkipReason::NoSet.to_string());
    };
    let mut r = match verify::verify(path, progress) {
        Ok(r) => r,
        Err(e) => return failed(Step::Verify, t, e.to_string()),
    };
    let mut drilled = None;
    // Scratch schemas that were there before the drill and no ledger of
    // ours names: the drill did not run, but the set's checksums are good.
    let mut not_ours = None;
    if drill && r.problems.is_empty() {
        // The restore drill: restore into scratch schemas, compare every
        // table, drop them (the library drops them whatever happens).
        drilled = Some(match &plan.connection {
            Ok(c) => match verify::verify_by_restoring(
                &c.options,
                path,
                DRILL_PREFIX,
                plan.threads,
                Some(&plan.dest.join(DRILL_LEDGER)),
                &mut r,
                progress,
            ) {
                Err(spyglass_backup::Error::SchemasExist { schemas, .. }) => {
                    not_ours = Some(schemas);
                    Err(String::new())
                }
                other => other.map_err(|e| chain(&e)),
            },
            Err(why) => Err(why.clone()),
        });
    }
    let restored = matches!(drilled, Some(Ok(())));
    // Only `backup list` reads the record; the summary has the result.
    let unrecorded = verify::record(path, &r, restored)
        .err()
        .map(|e| format!("; note: the result could not be recorded beside the manifest: {e}"))
        .unwrap_or_default();
    let (status, mut msg) = match (r.problems.first(), &drilled) {
        (None, Some(Err(_))) if not_ours.is_some() => {
            let schemas = not_ours.unwrap_or_default();
            let drops: Vec<String> = schemas
                .iter()
                .map(|s| format!("DROP DATABASE {};", spyglass_db::quote::ident(s)))
                .collect();
            // Needs attention (no drill tonight), but the set's every sha256
            // is good, so it is still shipped and pruning goes on.
            (
                StepStatus::Attention,
                format!(
                    "{} files, {} read, every sha256 and stream good; restore drill did not run: its scratch schema(s) {} already exist and no drill of this destination made them (a manual restore, or a drill of another destination?); if nothing needs them, drop them: SET foreign_key_checks = 0; {}",
                    r.files,
                    human_bytes(r.bytes),
                    schemas.join(", "),
                    drops.join(" ")
                ),
            )
        }
        (_, Some(Err(e))) => (StepStatus::Failed, format!("restore drill failed: {e}")),
        (None, _) => (
            StepStatus::Ok,
            format!(
                "{} files, {} read, every sha256 and stream good{}",
                r.files,
                human_bytes(r.bytes),
                if restored {
                    format!(
                        "; restore drill: restored into {DRILL_PREFIX}* schemas, {} tables compared, dropped",
                        r.tables_compared
                    )
                } else {
                    String::new()
                }
            ),
        ),
        (Some(first), _) => (
            StepStatus::Failed,
            format!(
                "{} problem(s){}, first: {}: {}",
                r.problems.len(),
                if drilled.is_some() {
                    " (restore drill)"
                } else {
                    ""
                },
                first.path.display(),
                first.detail
            ),
        ),
    };
    if !r.leftovers_dropped.is_empty() {
        msg.push_str(&format!(
            "; dropped first the scratch schema(s) a killed drill left: {}",
            r.leftovers_dropped.join(", ")
        ));
    }
    if let Some(text) = verify::not_restored_text(&r.not_restored).filter(|_| restored) {
        // Never weakened silently: the drill says what it could not check.
        msg.push_str("; ");
        msg.push_str(&text);
    }
    msg.push_str(&unrecorded);
    report(Step::Verify, t, status, msg, StepDetail::Verify(r))
}

/// One line for a ship report.
pub fn ship_line(r: &ShipReport) -> String {
    if r.already_there {
        format!(
            "{}: a verified copy is already at {} ({} files, {})",
            r.set,
            r.target,
            r.files,
            human_bytes(r.bytes)
        )
    } else {
        format!(
            "{} -> {}: {} files, {}, sent by {}, verified by {}{} in {:.1}s",
            r.set,
            r.target,
            r.files,
            human_bytes(r.bytes),
            r.transport,
            r.verified_by,
            if r.resent.is_empty() {
                String::new()
            } else {
                format!(" ({} file(s) sent again after a mismatch)", r.resent.len())
            },
            r.seconds
        )
    }
}

/// The set shipped to every target, one report each; the local set is
/// removed (with `remove_after_ship`) only once every copy verified.
fn ship_steps(plan: &NightlyPlan, set: Option<&Path>) -> Vec<StepReport> {
    let targets = plan.ship_targets();
    let mut out: Vec<StepReport> = targets
        .iter()
        .map(|(target, _)| ship_step(plan, target, set))
        .collect();
    let all_ok = out.iter().all(|r| r.status == StepStatus::Ok);
    if let (true, true, Some(path), Some(last)) =
        (plan.remove_after_ship, all_ok, set, out.last_mut())
    {
        match std::fs::remove_dir_all(path) {
            Ok(()) => last.message.push_str("; local set removed"),
            Err(e) => {
                last.status = StepStatus::Warning;
                last.message
                    .push_str(&format!("; removing the local set failed: {e}"));
            }
        }
    }
    out
}

fn ship_step(plan: &NightlyPlan, target: &Target, set: Option<&Path>) -> StepReport {
    let t = Instant::now();
    let Some(path) = set else {
        return failed(Step::Ship, t, SkipReason::NoSet.to_string());
    };
    match ship::ship(path, target, &plan.ship) {
        Ok(r) => {
            let mut msg = ship_line(&r);
            let mut status = StepStatus::Ok;
            // The binlog archive goes with the set, to every target.
            let archive = plan.dest.join("binlog");
            if archive.is_dir() {
                match ship::binlog::ship(&archive, target, &plan.ship) {
                    Ok(b) => msg.push_str(&format!(
                        "; binlog archive: {} file(s) sent, {} already there{}",
                        b.sent.len(),
                        b.already_there,
                        b.segment
                            .map(|s| format!(", open file up to {s}"))
                            .unwrap_or_default()
                    )),
                    Err(e) => {
                        status = StepStatus::Attention;
                        msg.push_str(&format!(
                            "; the binlog archive was not shipped: {}",
                            chain(&e)
                        ));
                    }
                }
            }
            report(Step::Ship, t, status, msg, StepDetail::Ship(r))
        }
        Err(e) => failed(
            Step::Ship,
            t,
            format!("{target}: {e} (the local set is kept)"),
        ),
    }
}

fn prune_status(r: &PruneReport) -> StepStatus {
    if lifecycle::prune_has_findings(r) {
        StepStatus::Warning
    } else {
        StepStatus::Ok
    }
}

/// ` (NAME, NAME)` for the sets a prune removed, or nothing.
fn removed_names(r: &PruneReport) -> String {
    if r.removed.is_empty() {
        String::new()
    } else {
        format!(" ({})", r.removed.join(", "))
    }
}

fn prune_step(plan: &NightlyPlan) -> StepReport {
    let t = Instant::now();
    match prune::prune_local(&plan.dest, &plan.policy, names::now_unix(), false) {
        Ok(r) => {
            let kept = r.sets.iter().filter(|d| d.keep).count();
            let mut msg = format!(
                "{}: kept {kept}, removed {}{} (policy: {})",
                plan.dest.display(),
                r.removed.len(),
                removed_names(&r),
                plan.policy.describe()
            );
            for (n, why) in &r.failed {
                msg.push_str(&format!("; could not remove {n}: {why}"));
            }
            report(Step::Prune, t, prune_status(&r), msg, StepDetail::Prune(r))
        }
        Err(e) => failed(Step::Prune, t, e.to_string()),
    }
}

/// Every target that got this run's copy pruned by its own policy; one
/// whose ship failed is left as it is.
fn prune_remote_steps(plan: &NightlyPlan, shipped: &[bool]) -> Vec<StepReport> {
    plan.ship_targets()
        .into_iter()
        .enumerate()
        .map(|(i, (target, policy))| {
            if !shipped.get(i).copied().unwrap_or(false) {
                StepReport {
                    step: Step::PruneRemote,
                    status: StepStatus::Skipped,
                    seconds: 0.0,
                    message: format!("{target}: {}", SkipReason::NotShipped),
                    detail: StepDetail::None,
                }
            } else if policy.is_empty() {
                StepReport {
                    step: Step::PruneRemote,
                    status: StepStatus::Skipped,
                    seconds: 0.0,
                    message: format!("{target}: {}", SkipReason::NoPolicyRemote),
                    detail: StepDetail::None,
                }
            } else {
                prune_remote_step(plan, target, policy)
            }
        })
        .collect()
}

fn prune_remote_step(plan: &NightlyPlan, target: &Target, policy: &Policy) -> StepReport {
    let t = Instant::now();
    match prune::prune_target(target, &plan.ship.ssh, policy, names::now_unix(), false) {
        Ok(r) => {
            let kept = r.sets.iter().filter(|d| d.keep).count();
            let mut msg = format!(
                "{target}: kept {kept}, removed {}{}",
                r.removed.len(),
                removed_names(&r)
            );
            for (n, why) in &r.failed {
                msg.push_str(&format!("; could not remove {n}: {why}"));
            }
            report(
                Step::PruneRemote,
                t,
                prune_status(&r),
                msg,
                StepDetail::Prune(r),
            )
        }
        Err(e) => failed(Step::PruneRemote, t, e.to_string()),
    }
}

/// `orphan 3, untracked 2` for the classes with something in them.
fn class_counts(
    classes: &std::collections::BTreeMap<spyglass_cleanup::Class, spyglass_cleanup::scan::Tally>,
) -> String {
    let mut named: Vec<(&str, u64)> = classes
        .iter()
        .filter(|(_, t)| t.count > 0)
        .map(|(c, t)| (c.name(), t.count))
        .collect();
    named.sort();
    named
        .iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn cleanup_step(plan: &NightlyPlan) -> StepReport {
    let t = Instant::now();
    let apply = plan.cleanup == CleanupMode::Apply;
    let what = if apply {
        "cleanup apply"
    } else {
        "cleanup scan"
    };
    let conn = match &plan.connection {
        Ok(c) => c,
        Err(why) => return failed(Step::Cleanup, t, format!("{what} failed: {why}")),
    };
    let result = (|| -> Result<(bool, u64, String, CleanupDetail), JobError> {
        let s = &plan.settings;
        if apply {
            let min_age = cleanup::scan_options(s, &ScanOverrides::default()).min_age;
            let opts = cleanup::apply_options(s, conn, min_age)?;
            let qdir = match &opts.disposal {
                spyglass_cleanup::apply::Disposal::Quarantine(q) => Some(q.clone()),
                _ => None,
            };
            let mut ctx =
                cleanup::Context::open(s, conn, &ScanOverrides::default(), qdir.as_deref())?;
            let prepared = cleanup::prepare(&mut ctx, opts)?;
            let sum = cleanup::execute(&mut ctx, &prepared, &mut |_, _| {})?;
            let dangling: Vec<spyglass_cleanup::scan::Item> = prepared
                .scan
                .items
                .iter()
                .filter(|i| i.class == spyglass_cleanup::Class::Dangling)
                .cloned()
                .collect();
            Ok((
                sum.findings(),
                dangling.len() as u64,
                class_counts(&sum.done),
                CleanupDetail::Apply(Box::new(sum), dangling),
            ))
        } else {
            let mut ctx = cleanup::open_for_scan(s, conn, &ScanOverrides::default())?;
            let scan = ctx.scan()?;
            let sum = cleanup::summarize(&scan, &[], ctx.opts.min_age);
            let dangling = sum
                .classes
                .get(&spyglass_cleanup::Class::Dangling)
                .map_or(0, |t| t.count);
            // Dangling is counted in its own sentence below.
            let mut others = sum.classes.clone();
            others.remove(&spyglass_cleanup::Class::Dangling);
            Ok((
                sum.findings,
                dangling,
                class_counts(&others),
                CleanupDetail::Scan(Box::new(sum)),
            ))
        }
    })();
    match result {
        Ok((findings, dangling, counts, detail)) => {
            let (mut status, empty) = if findings {
                (StepStatus::Warning, "findings (see detail)")
            } else {
                (StepStatus::Ok, "nothing to clean")
            };
            let mut counts = if counts.is_empty() {
                empty.to_owned()
            } else {
                counts
            };
            // Possible data loss is never informational, and never dropped
            // (apply does not act on it, but reports it).
            if dangling > 0 {
                status = StepStatus::Attention;
                counts.push_str(&format!(
                    "; ATTENTION: {dangling} dangling reference(s): rows name files that are missing (possible data loss; `spyglass-admin cleanup scan --only dangling --list`)"
                ));
            }
            report(
                Step::Cleanup,
                t,
                status,
                format!("{what}: {counts}"),
                StepDetail::Cleanup(detail),
            )
        }
        Err(e) => failed(Step::Cleanup, t, format!("{what} failed: {}", chain(&e))),
    }
}

/// Writes `text` (the summary, as the caller serialized it) to
/// `<dest>/spyglass-nightly.json` (atomically) and appends `line` (the same
/// summary on one line) to `<dest>/spyglass-nightly.log`, capped by
/// [`history::append_log`]. The log is written first: it is the history
/// the dead man's switch reads.
pub fn write_summary(dest: &Path, text: &str, line: &str) -> std::io::Result<()> {
    let logged = history::append_log(dest, line);
    let tmp = dest.join(format!(".{SUMMARY_FILE}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dest.join(SUMMARY_FILE))?;
    logged
}

/// Why `notify_command` did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// `sh` could not be started.
    #[error("cannot run sh")]
    Spawn(#[source] std::io::Error),
    /// Waiting for it failed.
    #[error("cannot wait for it")]
    Wait(#[source] std::io::Error),
    /// It exited unsuccessfully.
    #[error("exited with {0}")]
    Exit(std::process::ExitStatus),
    /// It ran too long and was stopped.
    #[error("still running after {}s; stopped", .0.as_secs())]
    Timeout(Duration),
}

/// Pipes `text` into `sh -c COMMAND` and waits at most `timeout` for it to
/// exit; a command still running then is killed. The wait blocks in
/// `waitpid` on a helper thread (no polling); the timeout is a channel
/// receive with a deadline.
pub fn notify(command: &str, text: &str, timeout: Duration) -> Result<(), NotifyError> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(NotifyError::Spawn)?;
    let pid = child.id();
    let stdin = child.stdin.take();
    let text = text.to_owned();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Writing is in the thread too: a command that never reads its
        // stdin must not block us past the timeout. A command that exits
        // without reading makes this fail with EPIPE, which is its business.
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(text.as_bytes());
        }
        let _ = tx.send(child.wait());
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(st)) if st.success() => Ok(()),
        Ok(Ok(st)) => Err(NotifyError::Exit(st)),
        Ok(Err(e)) => Err(NotifyError::Wait(e)),
        Err(_) => {
            // The child is still ours (the thread's wait has not reaped it),
            // so its pid names it and nothing else.
            kill(pid);
            let _ = rx.recv();
            Err(NotifyError::Timeout(timeout))
        }
    }
}

fn kill(pid: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(findings: &[&str], notes: &[&str]) -> BackupDetail {
        BackupDetail {
            path: PathBuf::from("/b/nightly-20261202-023000"),
            schemas: 3,
            tables: 12,
            files: 20,
            rows: 1000,
            raw_bytes: 4096,
            bytes: 2048,
            notes: notes.iter().map(|s| s.to_string()).collect(),
            findings: findings.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn backup_notes_are_shown_but_not_a_warning() {
        let (st, msg) = detail(&[], &["table a.b is MyISAM"]).outcome();
        assert_eq!(st, StepStatus::Ok);
        assert_eq!(
            msg,
            "nightly-20261202-023000: 3 schemas, 12 tables, 2.0 KiB on disk; note: table a.b is MyISAM"
        );
    }

    /// Issue 12 leftover: the dump's findings (the long-query guard giving
    /// up the snapshot, a sql_mode the restore must change) were dropped by
    /// nightly. They are a warning, in the line and in the detail.
    #[test]
    fn r12_backup_findings_are_a_warning_in_the_summary() {
        let guard =
            "2 statement(s) still ran after the long-query guard's 60 s; no consistent snapshot";
        let (st, msg) = detail(&[guard], &[guard, "table a.b is MyISAM"]).outcome();
        assert_eq!(st, StepStatus::Attention);
        assert!(msg.contains(&format!("; warning: {guard}")), "{msg}");
        assert_eq!(msg.matches(guard).count(), 1, "{msg}");
        assert!(msg.ends_with("; note: table a.b is MyISAM"), "{msg}");
    }

    fn summary(statuses: &[StepStatus]) -> NightlySummary {
        NightlySummary {
            host: String::new(),
            started: 0,
            finished: 0,
            seconds: 0.0,
            config: None,
            destination: PathBuf::new(),
            set: None,
            lock_recovered_from: None,
            binlog: None,
            steps: statuses
                .iter()
                .zip(Step::ALL)
                .map(|(&status, step)| StepReport {
                    step,
                    status,
                    seconds: 0.0,
                    message: String::new(),
                    detail: StepDetail::None,
                })
                .collect(),
        }
    }

    #[test]
    fn worst_step_decides() {
        use StepStatus::*;
        assert_eq!(summary(&[Ok, Ok, Skipped]).overall(), Overall::Ok);
        assert_eq!(
            summary(&[Ok, Warning, Skipped]).overall(),
            Overall::Warnings
        );
        assert_eq!(summary(&[Failed, Warning, Ok]).overall(), Overall::Failed);
        assert_eq!(Overall::Warnings.exit_code(), 1);
    }

    /// Issue 19: informational findings (exit 1) and what needs attention
    /// (exit 2) are apart; notify_on follows the exit code.
    #[test]
    fn attention_is_not_informational() {
        use StepStatus::*;
        assert_eq!(summary(&[Ok, Ok, Warning]).overall(), Overall::Warnings);
        let s = summary(&[Ok, Ok, Skipped, Ok, Skipped, Attention]);
        assert_eq!(s.overall(), Overall::Attention);
        assert_eq!(s.overall().exit_code(), 2);
        assert_eq!(s.attention(), ["cleanup: "]);
        assert_eq!(summary(&[Ok, Failed, Attention]).overall(), Overall::Failed);
        assert!(NotifyOn::Errors.notifies(Overall::Attention.exit_code()));
        assert!(!NotifyOn::Errors.notifies(Overall::Warnings.exit_code()));
        assert!(Attention.succeeded());
    }

    #[test]
    fn drill_days_and_the_keep_last_floor() {
        let plan = |t: &str| {
            crate::settings::parse(
                &format!("[backup]\ndestination = \"/b\"\n{t}"),
                Path::new("s.toml"),
            )
            .map_err(|e| e.to_string())
            .and_then(|s| NightlyPlan::from_settings(s).map_err(|e| e.to_string()))
        };
        // 2026-12-06 is a Sunday.
        let sunday = 1_796_515_200 + 3 * 3600;
        assert_eq!(names::rfc3339(sunday), "2026-12-06T03:00:00Z");
        assert_eq!(weekday(sunday), 0);
        assert_eq!(weekday(sunday + 86_400), 1);
        let p = plan("[nightly]\nrestore_drill = \"sun,Thursday\"\n").unwrap();
        assert!(p.drill_on(sunday) && !p.drill_on(sunday + 86_400));
        assert!(p.drill_on(sunday + 4 * 86_400));
        assert!(plan("[nightly]\nrestore_drill = \"daily\"\n")
            .unwrap()
            .drill_days
            .iter()
            .all(|d| *d));
        assert!(!plan("").unwrap().drill_on(sunday));
        assert_eq!(
            plan("[nightly]\nrestore_drill = \"sundays\"\n").unwrap_err(),
            "[nightly] restore_drill: 'sundays' is not a weekday; write e.g. \"sun\", \"mon,thu\" or \"daily\""
        );
        // Calendar rules: at least the 3 newest are kept too.
        assert_eq!(
            plan("keep_daily = 7\n").unwrap().policy.keep_last,
            MIN_KEEP_LAST
        );
        assert_eq!(
            plan("keep_weekly = 2\nkeep_last = 5\n")
                .unwrap()
                .policy
                .keep_last,
            5
        );
        // keep_last alone is taken as written.
        assert_eq!(plan("keep_last = 2\n").unwrap().policy.keep_last, 2);
        assert_eq!(plan("").unwrap().bounds.offsite, None);
        assert_eq!(
            plan("ship_to = \"/off\"\n[nightly]\noffsite_stale_after = \"3d\"\n")
                .unwrap()
                .bounds
                .offsite,
            Some(Duration::from_secs(3 * 86_400))
        );
    }

    #[test]
    fn notify_pipes_the_text_and_reports_exit() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("got");
        notify(
            &format!("cat > '{}'", out.display()),
            "{\"a\":1}",
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"a\":1}");
        let e = notify("exit 3", "", Duration::from_secs(10)).unwrap_err();
        assert_eq!(e.to_string(), "exited with exit status: 3");
    }

    #[test]
    fn notify_stops_a_hung_command_at_the_timeout() {
        let t = Instant::now();
        let e = notify("sleep 30", "x", Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, NotifyError::Timeout(_)), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }

    #[test]
    fn plan_checks_settings_before_anything_runs() {
        let parse = |t: &str| {
            crate::settings::parse(t, Path::new("s.toml"))
                .map_err(|e| e.to_string())
                .and_then(|s| NightlyPlan::from_settings(s).map_err(|e| e.to_string()))
        };
        assert_eq!(
            parse("").unwrap_err(),
            "nightly needs [backup] destination in spyglass-admin.toml"
        );
        let e = parse("[backup]\ndestination = \"ssh://nas/b\"\n").unwrap_err();
        assert!(
            e.starts_with("[backup] destination: nightly writes its sets to a local directory, not to a ssh:// target"),
            "{e}"
        );
        assert_eq!(
            parse("[backup]\ndestination = \"/b\"\nlabel = \".x\"\n").unwrap_err(),
            "[backup] label: '.x' is not usable in a directory name"
        );
        assert!(
            parse("[backup]\ndestination = \"/b\"\n[nightly]\nlevel = 13\n")
                .unwrap_err()
                .starts_with("[nightly] level: gzip level 13")
        );
        let p = parse("[backup]\ndestination = \"/b\"\nkeep_last = 2\n[nightly]\ncleanup = \"apply\"\nnotify_command = \"  \"\n").unwrap();
        assert_eq!(p.label, "nightly");
        assert_eq!(p.cleanup, CleanupMode::Apply);
        assert!(p.notify.is_none());
        assert_eq!(
            p.shape(),
            Shape {
                ship_to: false,
                no_ship: false,
                policy: true,
                prune_remote: true,
                cleanup: CleanupMode::Apply
            }
        );
    }
}
