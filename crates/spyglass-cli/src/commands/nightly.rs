//! `spyglass-admin nightly`: the one command for cron. The job itself (its
//! plan, step rules, lock, steps and notify call) is
//! `spyglass_jobs::nightly`; this file resolves the connection, renders the
//! summary (human or JSON) and picks the exit code.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use spyglass_backup::names;
use spyglass_jobs::cleanup::{Connection, DirEnv};
use spyglass_jobs::nightly::{
    self, CleanupDetail, NightlyLock, NightlyPlan, NightlySummary, Overall, StepDetail, StepReport,
    StepStatus,
};

use super::cleanup::{ApplyJson, ScanReport};
use super::lifecycle;
use crate::args::{ConnectOpts, GlobalOpts, NightlyArgs};
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
    /// `ok`, `warnings` (informational only), `attention` (possible data
    /// loss, though every step ran) or `failed` (a step failed, or the run
    /// could not start).
    status: &'static str,
    /// The process's exit code: 0 ok, 1 informational, 2 needs attention.
    exit_code: u8,
    /// Each step that needs attention, `step: message` (empty when none).
    attention: Vec<String>,
    /// Why the run stopped before its first step (then `steps` is empty).
    error: Option<String>,
    config: Option<PathBuf>,
    /// Null only when a run that could not start could not read it either.
    destination: Option<PathBuf>,
    /// The set this run wrote, if any.
    set: Option<PathBuf>,
    /// A dead run's pid found in the lock file (its lock was recovered).
    lock_recovered_from: Option<u32>,
    steps: Vec<StepJson>,
    /// The binlog archive's lag behind the server (absent without DEST/binlog).
    #[serde(skip_serializing_if = "Option::is_none")]
    binlog: Option<nightly::BinlogLag>,
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
        StepDetail::Cleanup(CleanupDetail::Apply(a, dangling)) => {
            serde_json::to_value(ApplyJson::of(a, false)).map(|mut v| {
                // Apply never acts on dangling references; they are still reported.
                if let Some(o) = v.as_object_mut() {
                    o.insert("dangling".into(), serde_json::json!(dangling));
                }
                v
            })
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
        attention: s.attention(),
        error: None,
        config: s.config.clone(),
        destination: Some(s.destination.clone()),
        set: s.set.clone(),
        lock_recovered_from: s.lock_recovered_from,
        steps: s.steps.iter().map(step_json).collect(),
        binlog: s.binlog.clone(),
    }
}

/// The connection flags nightly uses: the command line's, else the backup
/// account of the settings (`[backup] account` with `[backup]
/// password_file`: both, or the DataJoint config's account as before), and
/// the server of `[backup] host`, `port`, `socket` when the command line
/// names none of them.
pub fn nightly_flags(cli: &ConnectOpts, b: &settings::BackupSettings) -> ConnectOpts {
    let mut f = cli.clone();
    if f.user.is_none() && f.password_file.is_none() && !f.ask_password {
        if let (Some(name), Some(pw)) = (b.account_name(), &b.password_file) {
            f.user = Some(name);
            f.password_file = Some(pw.clone());
        }
    }
    if f.host.is_none() && f.port.is_none() && f.socket.is_none() {
        f.host = b.host.clone();
        f.port = b.port;
        f.socket = b.socket.clone();
    }
    f
}

/// The database for the backup and cleanup steps, or why there is none
/// (then those steps fail and the others run).
fn connection(global: &GlobalOpts, s: &settings::Settings) -> Result<Connection, String> {
    let env = Environment::from_process();
    let flags = nightly_flags(&global.connect, &s.backup);
    let mut resolved = connection::resolve(&flags, &env).map_err(|e| format!("{e:#}"))?;
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
    let started = names::now_unix();
    let t = Instant::now();
    if a.notify_failure {
        return notify_failure(global, started);
    }
    // Whatever stops the run before its first step (a settings file that
    // does not parse, a lock held by another run, a destination that cannot
    // be made) still leaves a line in the log and calls the notifier.
    let (mut plan, lock) = match start(global, a) {
        Ok(v) => v,
        Err(e) => {
            let busy = e
                .chain()
                .any(|c| matches!(c.downcast_ref(), Some(spyglass_jobs::JobError::Busy { .. })));
            let mut msg = format!("nightly did not start: {e:#}");
            if let Some(h) = output::hint_for(&e) {
                msg.push_str(&format!(" (hint: {h})"));
            }
            // A held lock means another run is working: its summary stays.
            report_not_started(global, started, t, msg, !busy);
            return Err(e);
        }
    };
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_plan(global, &mut plan, &lock)
    }));
    drop(lock);
    match run {
        Ok(r) => r,
        Err(_) => {
            // The panic's message is on stderr already.
            report_not_started(
                global,
                started,
                t,
                "nightly crashed (a bug: please report it with the message above); the run did not finish".into(),
                true,
            );
            Ok(ExitStatus::Error)
        }
    }
}

/// Settings, plan and lock: everything before the first step.
fn start(global: &GlobalOpts, a: &NightlyArgs) -> anyhow::Result<(NightlyPlan, NightlyLock)> {
    let s = settings::load(global.config.as_deref())?;
    let mut plan = NightlyPlan::from_settings(s)?;
    plan.no_ship = a.no_ship;
    let lock = nightly::lock(&plan)?;
    Ok((plan, lock))
}

/// What can be read of the settings file however broken it is.
fn salvaged(global: &GlobalOpts) -> (Option<PathBuf>, settings::Salvaged) {
    let path = settings::locate(global.config.as_deref()).ok().flatten();
    let text = path
        .as_deref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    (path, settings::salvage(&text))
}

/// A run that stopped before (or crashed during) its steps: a failed summary
/// with `error`, appended to the log in `[backup] destination` (also written
/// as the last summary when `write_json`), and piped to `notify_command`,
/// both read leniently from the settings file. Problems doing so go to
/// stderr: the caller reports the run's own error.
fn report_not_started(
    global: &GlobalOpts,
    started: i64,
    t: Instant,
    error: String,
    write_json: bool,
) {
    let (config, salvage) = salvaged(global);
    let wire = SummaryJson {
        tool_version: env!("CARGO_PKG_VERSION"),
        host: hostname(),
        started: names::rfc3339(started),
        finished: names::rfc3339(names::now_unix()),
        seconds: t.elapsed().as_secs_f64(),
        status: Overall::Failed.name(),
        exit_code: Overall::Failed.exit_code(),
        attention: vec![error.clone()],
        error: Some(error),
        config,
        destination: salvage.destination.clone(),
        set: None,
        lock_recovered_from: None,
        steps: Vec::new(),
        binlog: None,
    };
    let (Ok(json), Ok(line)) = (
        serde_json::to_string_pretty(&wire),
        serde_json::to_string(&wire),
    ) else {
        return;
    };
    match &salvage.destination {
        Some(dest) => {
            let written = if write_json && dest.is_dir() {
                nightly::write_summary(dest, &json, &line)
            } else {
                nightly::history::append_log(dest, &line)
            };
            if let Err(e) = written {
                eprintln!(
                    "warning: could not log this run in {}: {e}",
                    dest.join(nightly::LOG_FILE).display()
                );
            }
        }
        None => eprintln!(
            "warning: this run is not logged: no [backup] destination could be read from the settings file"
        ),
    }
    match &salvage.notify_command {
        Some(cmd) => {
            if let Err(e) = nightly::notify(cmd, &json, nightly::NOTIFY_TIMEOUT) {
                eprintln!(
                    "warning: notify_command failed: {:#}",
                    anyhow::Error::from(e)
                );
            }
        }
        None => eprintln!(
            "warning: nobody was notified: no [nightly] notify_command could be read from the settings file"
        ),
    }
}

/// `nightly --notify-failure`, run by `spyglass-nightly-failure.service`
/// (`OnFailure=` of the nightly unit): a run that was killed, crashed or
/// timed out could not report itself, so this logs and notifies for it. A
/// run that exited 2 by itself has already done both; then nothing is sent.
fn notify_failure(global: &GlobalOpts, started: i64) -> anyhow::Result<ExitStatus> {
    let result = std::env::var("MONITOR_SERVICE_RESULT").unwrap_or_default();
    let status = std::env::var("MONITOR_EXIT_STATUS").unwrap_or_default();
    if result == "exit-code" && status == "2" {
        if !global.quiet {
            eprintln!(
                "the nightly exited 2 and has logged and notified by itself; nothing more to send"
            );
        }
        return Ok(ExitStatus::Success);
    }
    let unit = std::env::var("MONITOR_UNIT").unwrap_or_else(|_| "spyglass-nightly.service".into());
    let how = match (result.as_str(), status.as_str()) {
        ("", _) => "failed".to_owned(),
        (r, "") => format!("failed ({r})"),
        (r, s) => format!("failed ({r}, status {s})"),
    };
    report_not_started(
        global,
        started,
        Instant::now(),
        format!("{unit} {how} before it could report; see journalctl -u {unit}"),
        false,
    );
    Ok(ExitStatus::Success)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

fn run_plan(
    global: &GlobalOpts,
    plan: &mut NightlyPlan,
    lock: &NightlyLock,
) -> anyhow::Result<ExitStatus> {
    if let Some(pid) = lock.recovered_from() {
        if !global.quiet {
            eprintln!(
                "note: recovered the lock {} left by pid {pid}, which is no longer running",
                lock.path().display()
            );
        }
    }
    plan.connection = connection(global, &plan.settings);
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, std::sync::Arc::clone(&plan.interrupt));
    }
    let summary = nightly::run(plan, lock, &Bar::new(!global.json && !global.quiet));
    let wire = summary_json(&summary);
    let json = serde_json::to_string_pretty(&wire)?;
    let mut extra = Vec::new();
    if let Err(e) = nightly::write_summary(&plan.dest, &json, &serde_json::to_string(&wire)?) {
        extra.push(format!(
            "warning: could not write the summary into {}: {e}",
            plan.dest.display()
        ));
    }
    if let Some(page) = &plan.settings.nightly.report {
        let page = plan.dest.join(page);
        let written = super::report::make(global, &plan.settings, Some(&plan.dest), true, true)
            .and_then(|(report, warnings)| {
                super::report::write_page(&page, &spyglass_report::html::render(&report))?;
                Ok(warnings)
            });
        match written {
            Ok(warnings) => extra.extend(warnings.into_iter().map(|w| format!("warning: {w}"))),
            Err(e) => extra.push(format!(
                "warning: could not write the report {}: {e:#}",
                page.display()
            )),
        }
    }
    let overall = summary.overall();
    if global.json {
        output::print_json(&wire)?;
    } else if !global.quiet || overall >= Overall::Attention {
        // --quiet: nothing when all is well (informational findings are in
        // the summary file and the log), the whole summary otherwise.
        output::print_out(&render(&wire, &plan.dest))?;
    }
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
            "attention" => "ATTENTION",
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
            "  {:<13} {:<9} {}{time}\n",
            st.name, status, st.message
        ));
    }
    if let Some(b) = &s.binlog {
        out.push_str(&format!(
            "  {:<13} {:<9} {}\n",
            "binlog lag",
            if b.attention { "ATTENTION" } else { "ok" },
            b.message
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
