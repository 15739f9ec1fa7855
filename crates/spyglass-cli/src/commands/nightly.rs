//! `spyglass-admin nightly`: the one command for cron. The job itself (its
//! plan, step rules, lock, steps and notify call) is
//! `spyglass_jobs::nightly`; this file resolves the connection, renders the
//! summary (human or JSON) and picks the exit code.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use spyglass_backup::names;
use spyglass_jobs::cleanup::{Connection, DirEnv};
use spyglass_jobs::nightly::{
    self, CleanupDetail, NightlyPlan, NightlySummary, Overall, StepDetail, StepReport, StepStatus,
};

use super::cleanup::{ApplyJson, ScanReport};
use super::lifecycle;
use crate::args::{GlobalOpts, NightlyArgs};
use crate::connection::{self, Environment};
use crate::output::{self, ExitStatus};
use crate::progress::Bar;
use crate::settings;

/// One step in the JSON summary.
#[derive(Debug, Serialize)]
struct StepJson {
    /// `backup`, `verify`, `ship`, `prune`, `prune-remote`, `cleanup`.
    name: &'static str,
    /// `ok`, `warning`, `failed` or `skipped`.
    status: &'static str,
    seconds: f64,
    /// One line for people.
    message: String,
    /// Step-specific details (what the matching command's `--json` prints), or null.
    /// The backup step's: path, schemas, tables, files, rows, raw_bytes,
    /// bytes, notes, findings.
    detail: serde_json::Value,
}

/// The JSON summary: printed with `--json`, written to
/// `<destination>/spyglass-nightly.json`, appended to `spyglass-nightly.log`,
/// and piped to `notify_command`. Fields are only ever added.
#[derive(Debug, Serialize)]
struct SummaryJson {
    tool_version: &'static str,
    host: String,
    started: String,
    finished: String,
    seconds: f64,
    /// `ok`, `warnings` or `failed`.
    status: &'static str,
    /// The process's exit code: 0, 1 or 2.
    exit_code: u8,
    config: Option<PathBuf>,
    destination: PathBuf,
    /// The set this run wrote, if any.
    set: Option<PathBuf>,
    /// A dead run's pid found in the lock file (its lock was recovered).
    lock_recovered_from: Option<u32>,
    steps: Vec<StepJson>,
}

fn detail_json(d: &StepDetail) -> serde_json::Value {
    let v = match d {
        StepDetail::Backup(b) => Ok(serde_json::json!({
            "path": b.path, "schemas": b.schemas, "tables": b.tables, "files": b.files,
            "rows": b.rows, "raw_bytes": b.raw_bytes, "bytes": b.bytes,
            "notes": b.notes, "findings": b.findings,
        })),
        StepDetail::Verify(r) => serde_json::to_value(r),
        StepDetail::Ship(r) => serde_json::to_value(r),
        StepDetail::Prune(r) => serde_json::to_value(r),
        StepDetail::Cleanup(CleanupDetail::Scan(s)) => {
            serde_json::to_value(ScanReport::of(s, None))
        }
        StepDetail::Cleanup(CleanupDetail::Apply(a)) => {
            serde_json::to_value(ApplyJson::of(a, false))
        }
        _ => Ok(serde_json::Value::Null),
    };
    v.unwrap_or_default()
}

fn step_json(s: &StepReport) -> StepJson {
    StepJson {
        name: s.step.name(),
        status: s.status.name(),
        seconds: s.seconds,
        message: s.message.clone(),
        detail: detail_json(&s.detail),
    }
}

fn summary_json(s: &NightlySummary) -> SummaryJson {
    let overall = s.overall();
    SummaryJson {
        tool_version: env!("CARGO_PKG_VERSION"),
        host: s.host.clone(),
        started: names::rfc3339(s.started),
        finished: names::rfc3339(s.finished),
        seconds: s.seconds,
        status: overall.name(),
        exit_code: overall.exit_code(),
        config: s.config.clone(),
        destination: s.destination.clone(),
        set: s.set.clone(),
        lock_recovered_from: s.lock_recovered_from,
        steps: s.steps.iter().map(step_json).collect(),
    }
}

/// The database for the backup and cleanup steps, or why there is none
/// (then those steps fail and the others run).
fn connection(global: &GlobalOpts) -> Result<Connection, String> {
    let env = Environment::from_process();
    let mut resolved = connection::resolve(&global.connect, &env).map_err(|e| format!("{e:#}"))?;
    for w in &resolved.warnings {
        eprintln!("warning: {w}");
    }
    // Connects once now, so a password prompt (on a terminal) comes first.
    drop(connection::connect(&mut resolved).map_err(|e| format!("{e:#}"))?);
    Ok(Connection {
        options: resolved.options,
        dj: resolved.dj,
        env: DirEnv::capture(|k| std::env::var(k).ok()),
    })
}

pub fn run(global: &GlobalOpts, a: &NightlyArgs) -> anyhow::Result<ExitStatus> {
    let s = settings::load(global.config.as_deref())?;
    let mut plan = NightlyPlan::from_settings(s)?;
    plan.no_ship = a.no_ship;
    let lock = nightly::lock(&plan)?;
    if let Some(pid) = lock.recovered_from() {
        if !global.quiet {
            eprintln!(
                "note: recovered the lock {} left by pid {pid}, which is no longer running",
                lock.path().display()
            );
        }
    }
    plan.connection = connection(global);
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, std::sync::Arc::clone(&plan.interrupt));
    }
    let summary = nightly::run(&plan, &lock, &Bar::new(!global.json && !global.quiet));
    let wire = summary_json(&summary);
    let json = serde_json::to_string_pretty(&wire)?;
    let mut extra = Vec::new();
    if let Err(e) = nightly::write_summary(&plan.dest, &json, &serde_json::to_string(&wire)?) {
        extra.push(format!(
            "warning: could not write the summary into {}: {e}",
            plan.dest.display()
        ));
    }
    if global.json {
        output::print_json(&wire)?;
    } else {
        output::print_out(&render(&wire, &plan.dest))?;
    }
    let overall = summary.overall();
    let mut result = match overall {
        Overall::Ok => ExitStatus::Success,
        Overall::Warnings => ExitStatus::Findings,
        _ => ExitStatus::Error,
    };
    if let Some(n) = &plan.notify {
        if n.on.notifies(overall.exit_code()) {
            if let Err(e) = nightly::notify(&n.command, &json, nightly::NOTIFY_TIMEOUT) {
                extra.push(format!(
                    "warning: notify_command failed: {:#}",
                    anyhow::Error::from(e)
                ));
                if result == ExitStatus::Success {
                    result = ExitStatus::Findings;
                }
            }
        }
    }
    for e in extra {
        eprintln!("{e}");
    }
    drop(lock);
    Ok(result)
}

fn render(s: &SummaryJson, dest: &Path) -> String {
    let mut out = format!(
        "spyglass-admin nightly on {}, started {}\n",
        if s.host.is_empty() { "?" } else { &s.host },
        s.started
    );
    for st in &s.steps {
        let status = match st.status {
            "ok" => "ok",
            "warning" => "WARNING",
            "failed" => "FAILED",
            _ => "skipped",
        };
        let time = if st.status == StepStatus::Skipped.name() {
            String::new()
        } else {
            format!(
                " ({})",
                lifecycle::secs(Duration::from_secs_f64(st.seconds))
            )
        };
        out.push_str(&format!(
            "  {:<13} {:<8} {}{time}\n",
            st.name, status, st.message
        ));
    }
    out.push_str(&format!(
        "result: {} (exit {}) in {:.1}s; summary in {}\n",
        s.status,
        s.exit_code,
        s.seconds,
        dest.join(nightly::SUMMARY_FILE).display()
    ));
    out
}
