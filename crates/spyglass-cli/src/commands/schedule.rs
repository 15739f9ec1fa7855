//! `spyglass-admin schedule --print [--cron|--systemd]`: how to run `nightly`
//! every night, with absolute paths so cron's bare environment finds them.

use std::path::{Path, PathBuf};

use crate::args::{GlobalOpts, ScheduleArgs};
use crate::output::{self, ExitStatus, UserError};
use crate::settings;

/// Quotes a path for a shell line when it needs it.
fn sh(p: &Path) -> String {
    spyglass_db::quote::shell(&p.display().to_string())
}

/// Quotes a path for a systemd unit line (systemd.syntax(7) double-quote rules).
fn unit(p: &Path) -> String {
    let s = p.display().to_string();
    if s.chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\\')
    {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s
    }
}

fn parse_at(at: &str) -> anyhow::Result<(u32, u32)> {
    at.split_once(':')
        .and_then(|(h, m)| Some((h.parse::<u32>().ok()?, m.parse::<u32>().ok()?)))
        .filter(|(h, m)| *h < 24 && *m < 60)
        .ok_or_else(|| UserError::new(format!("--at '{at}' is not a time of day HH:MM")).into())
}

pub fn run(global: &GlobalOpts, a: &ScheduleArgs) -> anyhow::Result<ExitStatus> {
    let (hh, mm) = parse_at(&a.at)?;
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| UserError::new(format!("cannot find the path of this program: {e}")))?;
    let s = settings::load(global.config.as_deref())?;
    let config: PathBuf = s.path.clone().ok_or_else(|| {
        UserError::new(
            "no settings file found: nightly needs one ([backup] destination and friends)",
        )
        .hint("write spyglass-admin.toml (see the README) and pass --config FILE")
    })?;
    let config = config.canonicalize().unwrap_or(config);
    s.backup.destination.as_ref().ok_or_else(|| {
        UserError::new(format!(
            "{} has no [backup] destination; nightly would refuse to run",
            config.display()
        ))
    })?;
    // DataJoint reads ./dj_local_conf.json: run where it is, as the user does now.
    let cwd = std::env::current_dir()
        .ok()
        .filter(|d| d.join("dj_local_conf.json").is_file());
    let text = if a.systemd {
        let wd = cwd
            .as_deref()
            .map(|d| format!("WorkingDirectory={}\n", unit(d)))
            .unwrap_or_default();
        format!(
            "# /etc/systemd/system/spyglass-nightly.service\n\
             [Unit]\n\
             Description=spyglass-admin nightly: backup, verify, ship, prune, cleanup scan\n\
             Wants=network-online.target\n\
             After=network-online.target\n\
             \n\
             [Service]\n\
             Type=oneshot\n\
             {wd}ExecStart={} nightly --config {}\n\
             # Exit 1 means warnings: the run finished; do not mark the unit failed for it.\n\
             SuccessExitStatus=1\n\
             \n\
             # /etc/systemd/system/spyglass-nightly.timer\n\
             [Unit]\n\
             Description=Run spyglass-admin nightly every day at {hh:02}:{mm:02}\n\
             \n\
             [Timer]\n\
             OnCalendar=*-*-* {hh:02}:{mm:02}:00\n\
             Persistent=true\n\
             \n\
             [Install]\n\
             WantedBy=timers.target\n\
             \n\
             # then: systemctl daemon-reload && systemctl enable --now spyglass-nightly.timer\n",
            unit(&exe),
            unit(&config)
        )
    } else {
        let cd = cwd
            .as_deref()
            .map(|d| format!("cd {} && ", sh(d)))
            .unwrap_or_default();
        format!(
            "# spyglass-admin nightly at {hh:02}:{mm:02} every day (crontab -e); the summary lands in [backup] destination\n\
             {mm} {hh} * * * {cd}{} nightly --config {} --quiet\n",
            sh(&exe),
            sh(&config)
        )
    };
    if global.json {
        output::print_json(&serde_json::json!({
            "kind": if a.systemd { "systemd" } else { "cron" },
            "binary": exe,
            "config": config,
            "working_directory": cwd,
            "text": text,
        }))?;
    } else {
        output::print_out(&text)?;
    }
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_times() {
        assert_eq!(
            sh(Path::new("/usr/local/bin/spyglass-admin")),
            "/usr/local/bin/spyglass-admin"
        );
        assert_eq!(sh(Path::new("/data/my lab/x")), "'/data/my lab/x'");
        assert_eq!(unit(Path::new("/data/my lab/x")), "\"/data/my lab/x\"");
        assert_eq!(parse_at("02:30").unwrap(), (2, 30));
        assert!(parse_at("24:00").is_err());
        assert!(parse_at("2").is_err());
    }
}
