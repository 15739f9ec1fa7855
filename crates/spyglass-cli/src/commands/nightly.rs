//! `spyglass-admin nightly`: the one command for cron.
//!
//! Steps and what each depends on (a step whose dependency failed is
//! skipped; the others still run):
//!
//! ```text
//! backup -> verify -> ship -> prune-remote
//!              \-> prune (local; also runs when backup itself failed)
//! cleanup (independent)
//! ```
//!
//! Local prune waits for verify because a new set that does not verify must
//! not count as the newest good one when older sets are removed.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use spyglass_backup::compress::Compression;
use spyglass_backup::dump::{self, DumpOptions};
use spyglass_backup::lock::{Lock, LockError};
use spyglass_backup::names;
use spyglass_backup::ship::{self, ShipOptions, Transport};
use spyglass_backup::verify;

use super::lifecycle::{self, human_ship, prune_status};
use crate::args::{GlobalOpts, KeepOpts, NightlyArgs};
use crate::connection::{self, Environment};
use crate::output::human_bytes as human;
use crate::output::{self, ExitStatus, UserError};
use crate::progress::Bar;
use crate::settings::{self, Settings};

/// The lock file inside the backup destination.
pub const LOCK_FILE: &str = ".spyglass-nightly.lock";
/// The last run's JSON summary inside the backup destination.
pub const SUMMARY_FILE: &str = "spyglass-nightly.json";
/// One JSON summary per line, every run, inside the backup destination.
pub const LOG_FILE: &str = "spyglass-nightly.log";

/// Outcome of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum StepStatus {
    Ok,
    Warning,
    Failed,
    Skipped,
}

/// One step in the JSON summary.
#[derive(Debug, Serialize)]
struct Step {
    /// `backup`, `verify`, `ship`, `prune`, `prune-remote`, `cleanup`.
    name: &'static str,
    status: StepStatus,
    seconds: f64,
    /// One line for people.
    message: String,
    /// Step-specific details (the command's own JSON report), or null.
    detail: serde_json::Value,
}

/// The JSON summary: printed with `--json`, written to
/// `<destination>/spyglass-nightly.json`, appended to `spyglass-nightly.log`,
/// and piped to `notify_command`.
#[derive(Debug, Serialize)]
struct Summary {
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
    steps: Vec<Step>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CleanupMode {
    Off,
    Scan,
    Apply,
}

struct Plan {
    dest: PathBuf,
    label: String,
    threads: usize,
    compression: Compression,
    policy: spyglass_backup::retention::Policy,
    target: Option<ship::Target>,
    ship: ShipOptions,
    remove_after_ship: bool,
    prune_remote: bool,
    cleanup: CleanupMode,
    notify: Option<(String, u8)>,
}

/// Reads and checks every setting before anything runs, so a typo fails at once.
fn plan(s: &Settings) -> anyhow::Result<Plan> {
    let dest = s
        .backup
        .destination
        .clone()
        .ok_or_else(|| UserError::new("nightly needs [backup] destination in spyglass-admin.toml").hint("add [backup] destination = \"/data/mysql-backups\" (and keep_*, ship_to) to the settings file"))?;
    let n = &s.nightly;
    let compression = Compression::parse(n.compress.as_deref().unwrap_or("gzip"), n.level)
        .map_err(|m| UserError::new(format!("[nightly] compress/level: {m}")))?;
    let label = s.backup.label.clone().unwrap_or_else(|| "nightly".into());
    if label.is_empty() || label.contains('/') || label.starts_with('.') {
        return Err(UserError::new(format!(
            "[backup] label '{label}' is not usable in a directory name"
        ))
        .into());
    }
    let cleanup = match n.cleanup.as_deref().unwrap_or("scan") {
        "off" => CleanupMode::Off,
        "scan" => CleanupMode::Scan,
        "apply" => CleanupMode::Apply,
        other => {
            return Err(UserError::new(format!(
                "[nightly] cleanup = '{other}': use \"scan\", \"apply\" or \"off\""
            ))
            .into())
        }
    };
    let notify_level = match n.notify_on.as_deref().unwrap_or("always") {
        "always" => 0,
        "warnings" => 1,
        "errors" => 2,
        other => {
            return Err(UserError::new(format!(
                "[nightly] notify_on = '{other}': use \"always\", \"warnings\" or \"errors\""
            ))
            .into())
        }
    };
    Ok(Plan {
        label,
        threads: n
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(1),
        compression,
        policy: lifecycle::policy(&KeepOpts::default(), s)?,
        target: s
            .backup
            .ship_to
            .as_deref()
            .map(lifecycle::target)
            .transpose()?,
        ship: ShipOptions {
            ssh: lifecycle::ssh_options(None, None, s),
            transport: Transport::Auto,
            bwlimit_kib: s.backup.bwlimit_kib.unwrap_or(0),
            ..ShipOptions::default()
        },
        remove_after_ship: n.remove_after_ship.unwrap_or(false),
        prune_remote: n.prune_remote.unwrap_or(true),
        cleanup,
        notify: n
            .notify_command
            .clone()
            .filter(|c| !c.trim().is_empty())
            .map(|c| (c, notify_level)),
        dest,
    })
}

fn step(
    name: &'static str,
    status: StepStatus,
    t: Instant,
    message: impl Into<String>,
    detail: serde_json::Value,
) -> Step {
    Step {
        name,
        status,
        seconds: t.elapsed().as_secs_f64(),
        message: message.into(),
        detail,
    }
}

fn skipped(name: &'static str, why: &str) -> Step {
    Step {
        name,
        status: StepStatus::Skipped,
        seconds: 0.0,
        message: why.to_owned(),
        detail: serde_json::Value::Null,
    }
}

fn chain(e: &anyhow::Error) -> String {
    format!("{e:#}")
}

pub fn run(global: &GlobalOpts, a: &NightlyArgs) -> anyhow::Result<ExitStatus> {
    let s = settings::load(global.config.as_deref())?;
    let p = plan(&s)?;
    std::fs::create_dir_all(&p.dest).map_err(|e| {
        UserError::new(format!(
            "cannot create the backup destination {}: {e}",
            p.dest.display()
        ))
    })?;
    let lock_path = p.dest.join(LOCK_FILE);
    let lock = match Lock::acquire(&lock_path) {
        Ok(l) => l,
        Err(LockError::Held { pid, since, .. }) => {
            let who = pid.map_or("another process".to_owned(), |p| format!("pid {p}"));
            return Err(UserError::new(format!(
                "another nightly run is in progress: {who} holds {}{}; this run exits without doing anything",
                lock_path.display(),
                since.map(|s| format!(" since {s}")).unwrap_or_default()
            ))
            .hint("let it finish (cron can overlap when a run takes longer than the interval)")
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(pid) = lock.recovered_from {
        if !global.quiet {
            eprintln!(
                "note: recovered the lock {} left by pid {pid}, which is no longer running",
                lock_path.display()
            );
        }
    }
    let started_unix = names::now_unix();
    let started = Instant::now();
    let progress = !global.json && !global.quiet;
    let mut steps = Vec::new();

    // backup
    let t = Instant::now();
    let mut set: Option<PathBuf> = None;
    let mut connect: Option<spyglass_db::ConnectOptions> = None;
    let backup = (|| -> anyhow::Result<dump::DumpSummary> {
        let env = Environment::from_process();
        let mut resolved = connection::resolve(&global.connect, &env)?;
        for w in &resolved.warnings {
            eprintln!("warning: {w}");
        }
        drop(connection::connect(&mut resolved)?);
        connect = Some(resolved.options.clone());
        let mut o = DumpOptions::new(p.dest.clone());
        o.label = p.label.clone();
        o.threads = p.threads;
        o.compression = p.compression;
        o.schemas = s.nightly.schemas.clone();
        o.exclude = s.nightly.exclude.clone();
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            let _ = signal_hook::flag::register(sig, std::sync::Arc::clone(&o.interrupt));
        }
        Ok(dump::run(&resolved.options, &o, &Bar::new(progress))?)
    })();
    match backup {
        Ok(sum) => {
            let m = &sum.manifest;
            let detail = serde_json::json!({
                "path": sum.path, "schemas": m.schemas.len(), "tables": m.tables.len(), "files": m.files.len(),
                "rows": m.tables.iter().map(|t| t.rows).sum::<u64>(), "raw_bytes": m.total_raw_bytes(), "bytes": m.total_bytes(),
                "notes": m.notes,
            });
            let name = sum
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let msg = format!(
                "{name}: {} schemas, {} tables, {} on disk",
                m.schemas.len(),
                m.tables.len(),
                human(m.total_bytes())
            );
            // The engine's notes (a MyISAM table, no privilege for the global
            // lock) are standing facts of the server: shown every night, but
            // not a warning exit every night.
            let msg = if m.notes.is_empty() {
                msg
            } else {
                format!("{msg}; note: {}", m.notes.join("; note: "))
            };
            steps.push(step("backup", StepStatus::Ok, t, msg, detail));
            set = Some(sum.path);
        }
        Err(e) => steps.push(step(
            "backup",
            StepStatus::Failed,
            t,
            chain(&e),
            serde_json::Value::Null,
        )),
    }

    // verify
    let mut verified = false;
    match &set {
        None => steps.push(skipped("verify", "no set: backup failed")),
        Some(path) => {
            let t = Instant::now();
            match verify::verify(path, &Bar::new(progress)) {
                Ok(r) if r.problems.is_empty() => {
                    verified = true;
                    steps.push(step(
                        "verify",
                        StepStatus::Ok,
                        t,
                        format!(
                            "{} files, {} read, every sha256 and stream good",
                            r.files,
                            human(r.bytes)
                        ),
                        serde_json::to_value(&r).unwrap_or_default(),
                    ));
                }
                Ok(r) => {
                    let first = &r.problems[0];
                    let msg = format!(
                        "{} problem(s), first: {}: {}",
                        r.problems.len(),
                        first.path.display(),
                        first.detail
                    );
                    steps.push(step(
                        "verify",
                        StepStatus::Failed,
                        t,
                        msg,
                        serde_json::to_value(&r).unwrap_or_default(),
                    ));
                }
                Err(e) => steps.push(step(
                    "verify",
                    StepStatus::Failed,
                    t,
                    e.to_string(),
                    serde_json::Value::Null,
                )),
            }
        }
    }
    let backup_failed = set.is_none();

    // ship
    let mut shipped = false;
    match (&p.target, &set) {
        (None, _) => steps.push(skipped("ship", "no [backup] ship_to")),
        (Some(_), _) if a.no_ship => steps.push(skipped("ship", "--no-ship")),
        (Some(_), None) => steps.push(skipped("ship", "no set: backup failed")),
        (Some(_), Some(_)) if !verified => {
            steps.push(skipped("ship", "the set did not verify; it is not shipped"))
        }
        (Some(target), Some(path)) => {
            let t = Instant::now();
            match ship::ship(path, target, &p.ship) {
                Ok(r) => {
                    shipped = true;
                    let mut msg = human_ship(&r);
                    let mut status = StepStatus::Ok;
                    if p.remove_after_ship {
                        match std::fs::remove_dir_all(path) {
                            Ok(()) => msg.push_str("; local set removed"),
                            Err(e) => {
                                status = StepStatus::Warning;
                                msg.push_str(&format!("; removing the local set failed: {e}"));
                            }
                        }
                    }
                    steps.push(step(
                        "ship",
                        status,
                        t,
                        msg,
                        serde_json::to_value(&r).unwrap_or_default(),
                    ));
                }
                Err(e) => steps.push(step(
                    "ship",
                    StepStatus::Failed,
                    t,
                    format!("{e} (the local set is kept)"),
                    serde_json::Value::Null,
                )),
            }
        }
    }

    // prune, here
    let now = names::now_unix();
    if p.policy.is_empty() {
        steps.push(step(
            "prune",
            StepStatus::Warning,
            Instant::now(),
            "no retention policy ([backup] keep_*): sets accumulate",
            serde_json::Value::Null,
        ));
    } else if !backup_failed && !verified {
        steps.push(skipped(
            "prune",
            "the new set did not verify; older sets are all kept",
        ));
    } else {
        let t = Instant::now();
        match ship::prune_local(&p.dest, &p.policy, now, false) {
            Ok(r) => {
                let status = if prune_status(&r) == ExitStatus::Success {
                    StepStatus::Ok
                } else {
                    StepStatus::Warning
                };
                let kept = r.sets.iter().filter(|d| d.keep).count();
                let mut msg = format!(
                    "{}: kept {kept}, removed {} (policy: {})",
                    p.dest.display(),
                    r.removed.len(),
                    p.policy.describe()
                );
                for (n, why) in &r.failed {
                    msg.push_str(&format!("; could not remove {n}: {why}"));
                }
                steps.push(step(
                    "prune",
                    status,
                    t,
                    msg,
                    serde_json::to_value(&r).unwrap_or_default(),
                ));
            }
            Err(e) => steps.push(step(
                "prune",
                StepStatus::Failed,
                t,
                e.to_string(),
                serde_json::Value::Null,
            )),
        }
    }

    // prune, on the target
    match &p.target {
        None => steps.push(skipped("prune-remote", "no [backup] ship_to")),
        Some(_) if !p.prune_remote => {
            steps.push(skipped("prune-remote", "[nightly] prune_remote = false"))
        }
        Some(_) if p.policy.is_empty() => steps.push(skipped(
            "prune-remote",
            "no retention policy ([backup] keep_*)",
        )),
        Some(_) if !shipped => steps.push(skipped(
            "prune-remote",
            "ship did not succeed; the target is left as it is",
        )),
        Some(target) => {
            let t = Instant::now();
            match ship::prune_target(target, &p.ship.ssh, &p.policy, now, false) {
                Ok(r) => {
                    let status = if prune_status(&r) == ExitStatus::Success {
                        StepStatus::Ok
                    } else {
                        StepStatus::Warning
                    };
                    let kept = r.sets.iter().filter(|d| d.keep).count();
                    let msg = format!("{target}: kept {kept}, removed {}", r.removed.len());
                    steps.push(step(
                        "prune-remote",
                        status,
                        t,
                        msg,
                        serde_json::to_value(&r).unwrap_or_default(),
                    ));
                }
                Err(e) => steps.push(step(
                    "prune-remote",
                    StepStatus::Failed,
                    t,
                    e.to_string(),
                    serde_json::Value::Null,
                )),
            }
        }
    }

    // cleanup
    steps.push(match p.cleanup {
        CleanupMode::Off => skipped("cleanup", "[nightly] cleanup = \"off\""),
        mode => cleanup_step(global, &s, connect.as_ref(), mode),
    });

    let worst = steps
        .iter()
        .map(|s| s.status)
        .fold(ExitStatus::Success, |acc, st| match (acc, st) {
            (ExitStatus::Error, _) | (_, StepStatus::Failed) => ExitStatus::Error,
            (ExitStatus::Findings, _) | (_, StepStatus::Warning) => ExitStatus::Findings,
            _ => ExitStatus::Success,
        });
    let (status, code) = match worst {
        ExitStatus::Success => ("ok", 0u8),
        ExitStatus::Findings => ("warnings", 1),
        ExitStatus::Error => ("failed", 2),
    };
    let summary = Summary {
        tool_version: env!("CARGO_PKG_VERSION"),
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default(),
        started: names::rfc3339(started_unix),
        finished: names::rfc3339(names::now_unix()),
        seconds: started.elapsed().as_secs_f64(),
        status,
        exit_code: code,
        config: s.path.clone(),
        destination: p.dest.clone(),
        set,
        lock_recovered_from: lock.recovered_from,
        steps,
    };
    let json = serde_json::to_string_pretty(&summary)?;
    let mut extra = Vec::new();
    if let Err(e) = write_summary(&p.dest, &json) {
        extra.push(format!(
            "warning: could not write the summary into {}: {e}",
            p.dest.display()
        ));
    }
    if global.json {
        output::print_json(&summary)?;
    } else {
        output::print_out(&render(&summary, &p.dest))?;
    }
    let mut result = worst;
    if let Some((cmd, level)) = &p.notify {
        if code >= *level {
            if let Err(e) = notify(cmd, &json) {
                extra.push(format!("warning: notify_command failed: {e}"));
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

fn write_summary(dest: &Path, json: &str) -> std::io::Result<()> {
    let tmp = dest.join(format!(".{SUMMARY_FILE}.tmp"));
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, dest.join(SUMMARY_FILE))?;
    let line: serde_json::Value = serde_json::from_str(json)?;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dest.join(LOG_FILE))?;
    writeln!(log, "{line}")
}

fn render(s: &Summary, dest: &Path) -> String {
    let mut out = format!(
        "spyglass-admin nightly on {}, started {}\n",
        if s.host.is_empty() { "?" } else { &s.host },
        s.started
    );
    for st in &s.steps {
        let status = match st.status {
            StepStatus::Ok => "ok",
            StepStatus::Warning => "WARNING",
            StepStatus::Failed => "FAILED",
            StepStatus::Skipped => "skipped",
        };
        let time = if st.status == StepStatus::Skipped {
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
        dest.join(SUMMARY_FILE).display()
    ));
    out
}

/// Runs `cleanup scan` (or `apply --yes`) as a child of this binary, with the
/// same settings and connection, and reads its JSON.
fn cleanup_step(
    global: &GlobalOpts,
    s: &Settings,
    connect: Option<&spyglass_db::ConnectOptions>,
    mode: CleanupMode,
) -> Step {
    let t = Instant::now();
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            return step(
                "cleanup",
                StepStatus::Failed,
                t,
                format!("cannot find this program: {e}"),
                serde_json::Value::Null,
            )
        }
    };
    let mut c = Command::new(exe);
    if let Some(p) = &s.path {
        c.arg("--config").arg(p);
    }
    let g = &global.connect;
    if let Some(h) = &g.host {
        c.args(["--host", h]);
    }
    if let Some(p) = g.port {
        c.args(["--port", &p.to_string()]);
    }
    if let Some(u) = &g.user {
        c.args(["--user", u]);
    }
    if let Some(sock) = &g.socket {
        c.arg("--socket").arg(sock);
    }
    if let Some(f) = &g.password_file {
        c.arg("--password-file").arg(f);
    }
    // A password typed at the prompt reaches the child through its
    // environment, never its argv.
    if g.ask_password {
        if let Some(pw) = connect.and_then(|o| o.password.as_ref()) {
            c.env("DJ_PASS", pw.expose());
        }
    }
    c.args(["--quiet", "cleanup"]);
    match mode {
        CleanupMode::Apply => c.args(["apply", "--yes", "--json"]),
        _ => c.args(["scan", "--json"]),
    };
    let out = match c.stdin(Stdio::null()).output() {
        Ok(o) => o,
        Err(e) => {
            return step(
                "cleanup",
                StepStatus::Failed,
                t,
                format!("cannot run cleanup: {e}"),
                serde_json::Value::Null,
            )
        }
    };
    let detail: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    let what = if mode == CleanupMode::Apply {
        "cleanup apply"
    } else {
        "cleanup scan"
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let err_line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or("")
        .trim_start_matches("error: ")
        .to_owned();
    let counts = detail
        .get("classes")
        .or_else(|| detail.get("done"))
        .and_then(|c| c.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    v.get("count")
                        .and_then(|n| n.as_u64())
                        .filter(|n| *n > 0)
                        .map(|n| format!("{k} {n}"))
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    match out.status.code() {
        Some(0) => step(
            "cleanup",
            StepStatus::Ok,
            t,
            format!(
                "{what}: {}",
                if counts.is_empty() {
                    "nothing to clean".into()
                } else {
                    counts
                }
            ),
            detail,
        ),
        Some(1) => step(
            "cleanup",
            StepStatus::Warning,
            t,
            format!(
                "{what}: {}",
                if counts.is_empty() {
                    "findings (see detail)".into()
                } else {
                    counts
                }
            ),
            detail,
        ),
        _ => step(
            "cleanup",
            StepStatus::Failed,
            t,
            format!(
                "{what} failed: {}",
                if err_line.is_empty() {
                    stderr.trim().to_owned()
                } else {
                    err_line
                }
            ),
            detail,
        ),
    }
}

/// Pipes the summary into `sh -c COMMAND`; gives it two minutes.
fn notify(cmd: &str, json: &str) -> Result<(), String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run sh: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(json.as_bytes());
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return Ok(()),
            Ok(Some(st)) => return Err(format!("exited with {st}")),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("still running after 120s; stopped".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(e.to_string()),
        }
    }
}
