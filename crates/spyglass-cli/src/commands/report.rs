//! `spyglass-admin report`: gathers with `spyglass_report::gather`, writes
//! the HTML page (`--out`) and prints the same report as JSON (`--json`, the
//! library's `Report` type is the wire format: fields are only ever added),
//! records tonight's point in the history under the backup destination.

use std::path::Path;

use spyglass_jobs::cleanup::{Connection, DirEnv};
use spyglass_report::gather::{self, HISTORY_FILE};
use spyglass_report::{history, html, Report, Section, Severity};

use crate::args::{GlobalOpts, ReportArgs};
use crate::connection::{self, Environment};
use crate::output::{self, ExitStatus};
use crate::settings;

fn connection(global: &GlobalOpts) -> anyhow::Result<Connection> {
    let env = Environment::from_process();
    let mut resolved = connection::resolve(&global.connect, &env)?;
    if !global.quiet {
        for w in &resolved.warnings {
            eprintln!("warning: {w}");
        }
    }
    // Connects once now, so a password prompt (on a terminal) comes first.
    drop(connection::connect(&mut resolved)?);
    Ok(Connection {
        options: resolved.options,
        dj: resolved.dj,
        env: DirEnv::capture(|k| std::env::var(k).ok()),
    })
}

/// Writes `text` to `out` through a temporary file in the same directory,
/// mode 0600: the page names accounts with temporary passwords and every
/// audit finding, which is not for every local user to read (share it by
/// copying it, or `chmod` it).
pub(crate) fn write_page(out: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report.html".into());
    let tmp = out.with_file_name(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| anyhow::anyhow!(e).context(format!("cannot write {}", tmp.display())))?;
    std::fs::rename(&tmp, out).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!(e).context(format!("cannot write {}", out.display()))
    })
}

/// Gathers the report; `dest` overrides `[backup] destination`.
pub(crate) fn make(
    global: &GlobalOpts,
    settings: &settings::Settings,
    dest: Option<&Path>,
    login_check: bool,
    record_history: bool,
) -> anyhow::Result<(Report, Vec<String>)> {
    let conn = connection(global)?;
    let render_fix = super::users::report::render_fix;
    let inputs = gather::Inputs {
        settings,
        connection: &conn,
        destination: dest.map(Path::to_owned),
        render_fix: &render_fix,
        login_check,
    };
    let report = spyglass_report::gather(&inputs)?;
    let mut warnings = Vec::new();
    let dest = dest
        .map(Path::to_owned)
        .or_else(|| settings.backup.destination.clone());
    if let (true, Some(d), Some(s)) = (record_history, &dest, report.storage.data()) {
        if d.is_dir() {
            let rec = gather::record_of(s, spyglass_backup::names::now_unix());
            if let Err(e) = history::append(&d.join(HISTORY_FILE), rec) {
                warnings.push(format!("{:#}", anyhow::Error::from(e)));
            }
        }
    }
    Ok((report, warnings))
}

pub fn run(global: &GlobalOpts, a: &ReportArgs) -> anyhow::Result<ExitStatus> {
    let s = settings::load(global.config.as_deref())?;
    let (report, warnings) = make(
        global,
        &s,
        a.dest.as_deref(),
        !a.no_login_check,
        !a.no_history,
    )?;
    if let Some(out) = &a.out {
        write_page(out, &html::render(&report))?;
    }
    if global.json {
        output::print_json(&report)?;
    } else if let Some(out) = &a.out {
        output::print_out(&summary_line(&report, out))?;
    }
    for w in warnings {
        eprintln!("warning: {w}");
    }
    Ok(
        if report
            .problems
            .iter()
            .any(|p| p.severity <= Severity::Medium)
        {
            ExitStatus::Findings
        } else {
            ExitStatus::Success
        },
    )
}

fn summary_line(r: &Report, out: &Path) -> String {
    let count = |sev| r.problems.iter().filter(|p| p.severity == sev).count();
    let missing: Vec<&str> = [
        ("storage", matches!(r.storage, Section::Unavailable { .. })),
        ("growth", matches!(r.growth, Section::Unavailable { .. })),
        ("backups", matches!(r.backups, Section::Unavailable { .. })),
        ("cleanup", matches!(r.cleanup, Section::Unavailable { .. })),
        ("users", matches!(r.users, Section::Unavailable { .. })),
    ]
    .into_iter()
    .filter(|x| x.1)
    .map(|x| x.0)
    .collect();
    let mut line = format!(
        "report written to {}: {} high, {} medium, {} low problem(s)",
        out.display(),
        count(Severity::High),
        count(Severity::Medium),
        count(Severity::Low)
    );
    if !missing.is_empty() {
        line.push_str(&format!("; not available: {}", missing.join(", ")));
    }
    line.push('\n');
    line
}
