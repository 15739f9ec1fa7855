//! Command-line definition (clap types only, no behaviour). One file per
//! command family; `Command` lists them.

mod backup;
mod cleanup;
mod doctor;
mod lifecycle;
mod nightly;
mod schedule;
mod users;

pub use backup::*;
pub use cleanup::*;
pub use doctor::DoctorArgs;
pub use lifecycle::*;
pub use nightly::NightlyArgs;
pub use schedule::ScheduleArgs;
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
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Less output on stderr (no progress, no notes).
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

/// Where and as whom to connect.
#[derive(Debug, Args)]
pub struct ConnectOpts {
    /// Server host name or address (host:port accepted).
    #[arg(long, short = 'H', global = true, value_name = "HOST")]
    pub host: Option<String>,
    /// Server TCP port.
    #[arg(long, short = 'P', global = true, value_name = "PORT")]
    pub port: Option<u16>,
    /// Account name.
    #[arg(long, short, global = true, value_name = "USER")]
    pub user: Option<String>,
    /// Unix socket of a server on this machine.
    #[arg(long, short = 'S', global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Read the password from the first line of FILE (keep it mode 0600).
    #[arg(long, global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Prompt for the password (no echo) on the terminal.
    #[arg(long, short = 'p', global = true)]
    pub ask_password: bool,
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
    /// Print a crontab line or systemd units that run `nightly`.
    Schedule(ScheduleArgs),
}
