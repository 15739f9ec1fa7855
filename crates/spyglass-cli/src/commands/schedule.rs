//! `spyglass-admin schedule --print [--cron|--systemd]`: how to run `nightly`
//! every night, with absolute paths so cron's bare environment finds them.

use std::path::{Path, PathBuf};

use clap::ValueEnum as _;

use crate::args::{ConnectOpts, GlobalOpts, ScheduleArgs};
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

/// Where the packaged units run: the admin puts `dj_local_conf.json` here, or
/// points `WorkingDirectory=` elsewhere with `systemctl edit`.
pub const PACKAGED_WORKDIR: &str = "/var/lib/spyglass-admin";
/// Per-site environment of the units (DJ_HOST, DJ_USER, SPYGLASS_ADMIN_CONFIG, ...).
pub const ENVIRONMENT_FILE: &str = "/etc/default/spyglass-admin";
/// Where the packaged binary lives.
pub const PACKAGED_EXE: &str = "/usr/bin/spyglass-admin";

/// What differs per site in the nightly units; everything else is one template
/// for both `schedule --print --systemd` and the Debian package.
pub struct UnitSite<'a> {
    /// The program.
    pub exe: &'a Path,
    /// `WorkingDirectory=` value (already quoted for a unit file), if any.
    pub working_dir: Option<String>,
    /// `--config FILE` for ExecStart; `None` leaves it to SPYGLASS_ADMIN_CONFIG
    /// in the environment file, else /etc/spyglass-admin.toml.
    pub config: Option<&'a Path>,
    /// Time of day the timer fires.
    pub at: (u32, u32),
    /// Connection arguments for ExecStart (`--user U --password-file F`,
    /// already quoted for a unit file; never a password).
    pub connect: Vec<String>,
}

/// The unit `OnFailure=` of the nightly service starts: it logs and
/// notifies for a run that was killed, crashed or timed out.
pub const FAILURE_UNIT: &str = "spyglass-nightly-failure.service";

impl UnitSite<'_> {
    /// The `WorkingDirectory=` line (or nothing) and the arguments after
    /// the subcommand (`--config FILE` and the connection flags), shared by
    /// every unit that runs the tool.
    fn exec_parts(&self) -> (String, String) {
        let wd = self
            .working_dir
            .as_deref()
            .map(|d| format!("WorkingDirectory={d}\n"))
            .unwrap_or_default();
        let mut args = self
            .config
            .map(|c| format!(" --config {}", unit(c)))
            .unwrap_or_default();
        for a in &self.connect {
            args.push(' ');
            args.push_str(a);
        }
        (wd, args)
    }
}

/// The nightly service, its timer and its failure unit, as (file name, contents).
pub fn systemd_units(site: &UnitSite<'_>) -> [(&'static str, String); 3] {
    let (wd, config) = site.exec_parts();
    let (hh, mm) = site.at;
    let service = format!(
        "[Unit]\n\
         Description=spyglass-admin nightly: backup, verify, ship, prune, cleanup scan\n\
         Documentation=man:spyglass-admin-nightly(1)\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         # A run that needs attention (exit 2), was killed or crashed marks the unit\n\
         # failed; this logs and notifies for the runs that could not do it themselves.\n\
         OnFailure={FAILURE_UNIT}\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         # Per-site settings (DJ_HOST, DJ_USER, SPYGLASS_ADMIN_CONFIG, ...); keep it mode 0600.\n\
         EnvironmentFile=-{ENVIRONMENT_FILE}\n\
         {wd}ExecStart={exe} nightly{config}\n\
         # Exit 1 is informational (cleanup found files to quarantine): the run\n\
         # did its job; exit 2 needs attention and fails the unit.\n\
         SuccessExitStatus=1\n",
        exe = unit(site.exe)
    );
    let failure = format!(
        "[Unit]\n\
         Description=spyglass-admin nightly failed: log it and run notify_command\n\
         Documentation=man:spyglass-admin-nightly(1)\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         EnvironmentFile=-{ENVIRONMENT_FILE}\n\
         {wd}ExecStart={exe} nightly --notify-failure{config}\n",
        exe = unit(site.exe)
    );
    let timer = format!(
        "[Unit]\n\
         Description=Run spyglass-admin nightly every day at {hh:02}:{mm:02}\n\
         Documentation=man:spyglass-admin-nightly(1)\n\
         \n\
         [Timer]\n\
         OnCalendar=*-*-* {hh:02}:{mm:02}:00\n\
         Persistent=true\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n"
    );
    [
        ("spyglass-nightly.service", service),
        ("spyglass-nightly.timer", timer),
        (FAILURE_UNIT, failure),
    ]
}

/// The long-running binary-log archiver (point-in-time restores), as
/// (file name, contents): restarts on failure; it reconnects by itself too.
pub fn archive_unit(site: &UnitSite<'_>) -> (&'static str, String) {
    let (wd, config) = site.exec_parts();
    (
        "spyglass-binlog-archive.service",
        format!(
            "[Unit]\n\
             Description=spyglass-admin binlog archive: copy the binary log for point-in-time restores\n\
             Wants=network-online.target\n\
             After=network-online.target\n\
             \n\
             [Service]\n\
             Type=simple\n\
             EnvironmentFile=-{ENVIRONMENT_FILE}\n\
             {wd}ExecStart={} binlog archive{config}\n\
             # SIGTERM: it writes what it has and exits 0.\n\
             Restart=on-failure\n\
             RestartSec=30\n\
             \n\
             [Install]\n\
             WantedBy=multi-user.target\n",
            unit(site.exe)
        ),
    )
}

/// The units as the Debian package installs them.
pub fn packaged_units() -> [(&'static str, String); 3] {
    systemd_units(&UnitSite {
        exe: Path::new(PACKAGED_EXE),
        working_dir: Some(format!("-{PACKAGED_WORKDIR}")),
        config: None,
        at: (2, 30),
        connect: Vec::new(),
    })
}

/// The connection options given to `schedule` that `nightly` must get too
/// (flag, value), with paths made absolute; a password is only ever a file.
fn connect_args(c: &ConnectOpts) -> anyhow::Result<Vec<(&'static str, String)>> {
    if c.ask_password {
        return Err(UserError::new(
            "--ask-password cannot be scheduled: nobody is there to type it at night",
        )
        .hint("put the password in a file (mode 0600) and pass --password-file FILE, or set [backup] account and password_file in the settings")
        .into());
    }
    let abs = |p: &Path, what: &str| -> anyhow::Result<String> {
        let a = p
            .canonicalize()
            .map_err(|e| UserError::new(format!("{what} {}: {e}", p.display())))?;
        Ok(a.display().to_string())
    };
    let mut v = Vec::new();
    if let Some(h) = &c.host {
        v.push(("--host", h.clone()));
    }
    if let Some(p) = c.port {
        v.push(("--port", p.to_string()));
    }
    if let Some(u) = &c.user {
        v.push(("--user", u.clone()));
    }
    if let Some(s) = &c.socket {
        v.push(("--socket", abs(s, "the socket")?));
    }
    if let Some(f) = &c.password_file {
        v.push(("--password-file", abs(f, "cannot find the password file")?));
    }
    if let Some(m) = c.tls_mode {
        v.push((
            "--tls-mode",
            m.to_possible_value()
                .map(|p| p.get_name().to_owned())
                .unwrap_or_default(),
        ));
    }
    for (flag, p) in [
        ("--tls-ca", &c.tls_ca),
        ("--tls-cert", &c.tls_cert),
        ("--tls-key", &c.tls_key),
    ] {
        if let Some(p) = p {
            v.push((flag, abs(p, "cannot find")?));
        }
    }
    Ok(v)
}

/// The crontab line (with its comment) that runs `nightly` at `at`.
fn cron_line(
    exe: &Path,
    config: &Path,
    cwd: Option<&Path>,
    conn: &[(&'static str, String)],
    (hh, mm): (u32, u32),
) -> String {
    let cd = cwd.map(|d| format!("cd {} && ", sh(d))).unwrap_or_default();
    let connect: String = conn
        .iter()
        .map(|(f, v)| format!(" {f} {}", sh(Path::new(v))))
        .collect();
    format!(
        "# spyglass-admin nightly at {hh:02}:{mm:02} every day (crontab -e); the summary lands in [backup] destination\n\
         {mm} {hh} * * * {cd}{} nightly --config {}{connect} --quiet\n",
        sh(exe),
        sh(config)
    )
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
    // The login nightly would use ([backup] account, password_file, host,
    // port, socket, unless flags given here say otherwise), so the units
    // (and the binlog archiver) log in the same way; never a password.
    let conn = connect_args(&super::nightly::nightly_flags(&global.connect, &s.backup))?;
    let text = if a.systemd {
        let units = systemd_units(&UnitSite {
            exe: &exe,
            working_dir: cwd.as_deref().map(unit),
            config: Some(&config),
            at: (hh, mm),
            connect: conn
                .iter()
                .map(|(f, v)| format!("{f} {}", unit(Path::new(v))))
                .collect(),
        });
        let mut text = String::new();
        for (name, body) in &units {
            text.push_str(&format!("# /etc/systemd/system/{name}\n{body}\n"));
        }
        text.push_str(
            "# then: systemctl daemon-reload && systemctl enable --now spyglass-nightly.timer\n",
        );
        // The archiver logs in the same way nightly does.
        let (name, body) = archive_unit(&UnitSite {
            exe: &exe,
            working_dir: cwd.as_deref().map(unit),
            config: Some(&config),
            at: (hh, mm),
            connect: conn
                .iter()
                .map(|(f, v)| format!("{f} {}", unit(Path::new(v))))
                .collect(),
        });
        text.push_str(&format!(
            "\n# Point-in-time restores (optional): the binary-log archiver, running all the time.\n\
             # It needs the server's binary log on (binlog_format = ROW) and an account with the\n\
             # replication grants: `spyglass-admin users add-backup-user ACCOUNT --binlog`; without\n\
             # them the unit fails at its first login. Skip it if you do not want these restores.\n\
             # /etc/systemd/system/{name}\n{body}\n# then: systemctl daemon-reload && systemctl enable --now {name}\n"
        ));
        text
    } else {
        cron_line(&exe, &config, cwd.as_deref(), &conn, (hh, mm))
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

    /// `[backup] host`, `port`, `socket`, `account` and `password_file`
    /// reach the printed line as flags (the file's path, never a
    /// password); flags given to `schedule` win.
    #[test]
    fn the_settings_connection_is_carried_into_the_cron_line() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("backup.pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let sock = dir.path().join("my sql.sock");
        std::fs::write(&sock, "").unwrap();
        let b = settings::BackupSettings {
            account: Some("spyglass_backup@localhost".into()),
            password_file: Some(pw.clone()),
            host: Some("db.lab".into()),
            port: Some(3307),
            ..settings::BackupSettings::default()
        };
        let flags = super::super::nightly::nightly_flags(&ConnectOpts::default(), &b);
        let conn = connect_args(&flags).unwrap();
        let line = cron_line(
            Path::new("/usr/bin/spyglass-admin"),
            Path::new("/etc/spyglass-admin.toml"),
            Some(Path::new("/home/lab/spyglass")),
            &conn,
            (2, 30),
        );
        let pw = pw.canonicalize().unwrap();
        assert_eq!(
            line.lines().nth(1).unwrap(),
            format!(
                "30 2 * * * cd /home/lab/spyglass && /usr/bin/spyglass-admin nightly --config /etc/spyglass-admin.toml --host db.lab --port 3307 --user spyglass_backup --password-file {} --quiet",
                pw.display()
            )
        );
        assert!(!line.contains("s3cret"));
        // A socket instead, quoted; a --host given to schedule wins over all three.
        let b = settings::BackupSettings {
            socket: Some(sock.clone()),
            ..settings::BackupSettings::default()
        };
        let conn = connect_args(&super::super::nightly::nightly_flags(
            &ConnectOpts::default(),
            &b,
        ))
        .unwrap();
        assert_eq!(
            conn,
            [(
                "--socket",
                sock.canonicalize().unwrap().display().to_string()
            )]
        );
        let cli = ConnectOpts {
            host: Some("127.0.0.1".into()),
            ..ConnectOpts::default()
        };
        let conn = connect_args(&super::super::nightly::nightly_flags(&cli, &b)).unwrap();
        assert_eq!(conn, [("--host", "127.0.0.1".to_owned())]);
    }

    /// The packaged units and the printed ones come from one template: only
    /// the site's lines (binary, working directory, settings file) differ.
    #[test]
    fn packaged_and_printed_units_share_one_template() {
        let packaged = packaged_units();
        let printed = systemd_units(&UnitSite {
            exe: Path::new("/opt/sa/bin/spyglass-admin"),
            working_dir: Some("/home/lab/spyglass".into()),
            config: Some(Path::new("/home/lab/my settings.toml")),
            at: (2, 30),
            connect: Vec::new(),
        });
        assert_eq!(packaged[1], printed[1], "timers are identical");
        let site = |l: &&str| l.starts_with("ExecStart=") || l.starts_with("WorkingDirectory=");
        let a: Vec<&str> = packaged[0].1.lines().filter(|l| !site(l)).collect();
        let b: Vec<&str> = printed[0].1.lines().filter(|l| !site(l)).collect();
        assert_eq!(a, b);
        // Every failure of the nightly reaches the notifier.
        assert!(printed[0]
            .1
            .contains("OnFailure=spyglass-nightly-failure.service\n"));
        assert_eq!(printed[2].0, FAILURE_UNIT);
        assert!(printed[2].1.contains(
            "ExecStart=/opt/sa/bin/spyglass-admin nightly --notify-failure --config \"/home/lab/my settings.toml\"\n"
        ));
        assert!(packaged[2]
            .1
            .contains("ExecStart=/usr/bin/spyglass-admin nightly --notify-failure\n"));
        assert!(packaged[0]
            .1
            .contains("ExecStart=/usr/bin/spyglass-admin nightly\n"));
        assert!(packaged[0]
            .1
            .contains("WorkingDirectory=-/var/lib/spyglass-admin\n"));
        assert!(packaged[0]
            .1
            .contains("EnvironmentFile=-/etc/default/spyglass-admin\n"));
        assert!(printed[0].1.contains(
            "ExecStart=/opt/sa/bin/spyglass-admin nightly --config \"/home/lab/my settings.toml\"\n"
        ));
        assert!(printed[0]
            .1
            .contains("WorkingDirectory=/home/lab/spyglass\n"));
    }
}
