//! Command-line definition (clap types only, no behaviour). One file per
//! command family; `Command` lists them.

mod backup;
mod binlog;
mod cleanup;
mod doctor;
mod lifecycle;
mod nightly;
mod recover;
mod report;
mod schedule;
mod users;

pub use backup::*;
pub use binlog::*;
pub use cleanup::*;
pub use doctor::DoctorArgs;
pub use lifecycle::*;
pub use nightly::NightlyArgs;
pub use recover::RecoverArgs;
pub use report::ReportArgs;
pub use schedule::{CompletionsArgs, DistFilesArgs, ScheduleArgs};
pub use users::*;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Users, backups and file cleanup for a Spyglass (DataJoint) lab database.
///
/// Connection settings come from, first wins: these flags; DJ_HOST, DJ_USER,
/// DJ_PASS, DJ_PORT; the DataJoint config (./dj_local_conf.json, else
/// ~/.datajoint_config.json); ~/.my.cnf [client]. A password is never a flag
/// value: use DJ_PASS, a config file, --password-file or --ask-password.
#[derive(Debug, Parser)]
#[command(name = "spyglass-admin", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

/// Help heading of the options every command accepts besides the connection.
pub const GLOBAL_HEADING: &str = "Global options (every command)";
/// Help heading of the connection options every command accepts.
pub const CONNECTION_HEADING: &str = "Connection (every command)";

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct GlobalOpts {
    #[command(flatten)]
    pub connect: ConnectOpts,
    /// The tool's settings file (default: ./spyglass-admin.toml, then /etc/spyglass-admin.toml).
    #[arg(
        long,
        global = true,
        env = "SPYGLASS_ADMIN_CONFIG",
        value_name = "FILE",
        help_heading = GLOBAL_HEADING
    )]
    pub config: Option<PathBuf>,
    /// Machine-readable output on stdout.
    #[arg(long, global = true, help_heading = GLOBAL_HEADING)]
    pub json: bool,
    /// Less output on stderr (no progress, no notes).
    #[arg(long, short, global = true, help_heading = GLOBAL_HEADING)]
    pub quiet: bool,
}

/// Where and as whom to connect.
#[derive(Debug, Clone, Args)]
pub struct ConnectOpts {
    /// Server host name or address (host:port accepted).
    #[arg(long, short = 'H', global = true, help_heading = CONNECTION_HEADING, value_name = "HOST")]
    pub host: Option<String>,
    /// Server TCP port.
    #[arg(long, short = 'P', global = true, help_heading = CONNECTION_HEADING, value_name = "PORT")]
    pub port: Option<u16>,
    /// Account name.
    #[arg(long, short, global = true, help_heading = CONNECTION_HEADING, value_name = "USER")]
    pub user: Option<String>,
    /// Unix socket of a server on this machine.
    #[arg(long, short = 'S', global = true, help_heading = CONNECTION_HEADING, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Read the password from the first line of FILE (keep it mode 0600).
    #[arg(long, global = true, help_heading = CONNECTION_HEADING, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Prompt for the password (no echo) on the terminal.
    #[arg(long, short = 'p', global = true, help_heading = CONNECTION_HEADING)]
    pub ask_password: bool,
    /// TLS: disable, prefer (default, unverified), require (unverified),
    /// verify-ca, verify-identity. Also SPYGLASS_TLS_MODE, database.use_tls, ssl-mode.
    #[arg(long, global = true, help_heading = CONNECTION_HEADING, value_name = "MODE")]
    pub tls_mode: Option<TlsModeArg>,
    /// CA certificate (PEM) the server's certificate must chain to; with it
    /// the default mode is verify-identity. Also SPYGLASS_TLS_CA, ssl-ca.
    #[arg(long, global = true, help_heading = CONNECTION_HEADING, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM), for accounts created REQUIRE X509. Also SPYGLASS_TLS_CERT, ssl-cert.
    #[arg(long, global = true, help_heading = CONNECTION_HEADING, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's key (PEM, mode 0600). Also SPYGLASS_TLS_KEY, ssl-key.
    #[arg(long, global = true, help_heading = CONNECTION_HEADING, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
}

/// `--tls-mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsModeArg {
    /// Never use TLS.
    Disable,
    /// TLS if the server offers it, else plain; not verified.
    Prefer,
    /// TLS or fail; the certificate is NOT verified.
    Require,
    /// TLS; the certificate must chain to --tls-ca (host name not checked).
    VerifyCa,
    /// TLS; chain and host name checked.
    VerifyIdentity,
}

impl TlsModeArg {
    /// The library's mode.
    pub fn mode(self) -> spyglass_db::TlsMode {
        use spyglass_db::TlsMode as M;
        match self {
            TlsModeArg::Disable => M::Disable,
            TlsModeArg::Prefer => M::Prefer,
            TlsModeArg::Require => M::Require,
            TlsModeArg::VerifyCa => M::VerifyCa,
            TlsModeArg::VerifyIdentity => M::VerifyIdentity,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check connection, server, privileges, Spyglass directories and backup space.
    ///
    /// Exit 0 healthy, 1 problems found (each with a hint), 2 could not run.
    Doctor(DoctorArgs),
    /// Roles, accounts and privileges by schema prefix: roles init, add, set-role, audit, apply, ...
    Users(UsersArgs),
    /// Consistent, parallel, compressed, checksummed backups: run, restore, verify, list, prune, ship, pack.
    Backup(BackupArgs),
    /// The binary-log archive for point-in-time restores: archive.
    Binlog(BinlogArgs),
    /// Undo a delete: list archived deletes, rebuild their rows aside or put them back.
    ///
    /// Reads the binary-log archive (`binlog archive`). Exit 0 done, 2 refused
    /// (a conflict, an altered table, a non-empty target): nothing written then.
    Recover(RecoverArgs),
    /// Find and remove files no table tracks: scan, apply (quarantine), restore, purge.
    ///
    /// Exit 0 nothing to clean, 1 something to clean or skipped, 2 error or refused.
    Cleanup(CleanupArgs),
    /// The one command for cron: backup, verify, ship, prune (here and there), cleanup scan.
    ///
    /// Takes a lock (a second run exits at once), prints a summary, writes it as
    /// JSON into the backup destination, and pipes it to [nightly] notify_command.
    /// Exit 0 all good, 1 warnings, 2 a step failed.
    Nightly(NightlyArgs),
    /// One HTML page of the lab's database: storage, growth and runway, backups, cleanup, users.
    ///
    /// Self-contained (inline SVG charts, no script, no network request); --json
    /// prints the same numbers. Reads only, except one history record per night
    /// under the backup destination. Exit 0 no problems, 1 problems shown, 2 error.
    Report(ReportArgs),
    /// Print a crontab line or systemd units that run `nightly`.
    Schedule(ScheduleArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// For example: `spyglass-admin completions bash > ~/.local/share/bash-completion/completions/spyglass-admin`.
    /// The Debian package installs the bash, zsh and fish scripts already.
    Completions(CompletionsArgs),
    /// Write the man pages, completion scripts and systemd units the package installs.
    #[command(hide = true)]
    DistFiles(DistFilesArgs),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command's help lists the global connection flags under their
    /// own heading, apart from the command's own options.
    #[test]
    fn every_command_groups_global_flags_under_their_headings() {
        fn walk(cmd: &mut clap::Command, path: String, seen: &mut usize) {
            let help = cmd.render_help().to_string();
            if cmd.get_subcommands().next().is_none() {
                *seen += 1;
                let conn = help
                    .find(&format!("{CONNECTION_HEADING}:"))
                    .unwrap_or_else(|| panic!("{path}: no connection heading:\n{help}"));
                let glob = help
                    .find(&format!("{GLOBAL_HEADING}:"))
                    .unwrap_or_else(|| panic!("{path}: no global heading:\n{help}"));
                let host = help.find("-H, --host").expect("--host listed");
                let json = help.find("\n      --json").expect("--json listed");
                assert!(
                    host > conn && (host < glob || conn > glob),
                    "{path}:\n{help}"
                );
                assert!(
                    json > glob && (json < conn || glob > conn),
                    "{path}:\n{help}"
                );
                if let Some(own) = help.find("\nOptions:") {
                    let end = [conn, glob].into_iter().filter(|&h| h > own).min();
                    let section = &help[own..end.unwrap_or(help.len())];
                    assert!(
                        !section.contains("-H, --host"),
                        "{path}: --host among own options:\n{help}"
                    );
                    assert!(
                        !section.contains("\n      --json"),
                        "{path}: --json among own options:\n{help}"
                    );
                }
            }
            let names: Vec<String> = cmd
                .get_subcommands()
                .map(|c| c.get_name().to_owned())
                .collect();
            for n in names {
                if n == "help" {
                    continue;
                }
                if let Some(sub) = cmd.find_subcommand_mut(&n) {
                    walk(sub, format!("{path} {n}"), seen);
                }
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut seen = 0;
        walk(&mut cmd, "spyglass-admin".into(), &mut seen);
        assert!(seen > 20, "every leaf command checked ({seen})");
        let apply = cmd
            .find_subcommand_mut("cleanup")
            .and_then(|c| c.find_subcommand_mut("apply"))
            .expect("cleanup apply")
            .render_help()
            .to_string();
        let own = apply.find("\nOptions:").expect("apply has its own options");
        assert!(apply[own..].contains("--quarantine"), "{apply}");
    }
}
