//! `backup prune | ship | pack | unpack`: what happens to sets after they are written.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use spyglass_jobs::settings::HumanDuration;

/// Retention rules; unset ones come from `[backup]` in spyglass-admin.toml.
#[derive(Debug, Args, Clone, Default)]
pub struct KeepOpts {
    /// Keep the N newest sets.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest set of each of the last D days that have one (UTC days).
    #[arg(long, value_name = "D")]
    pub keep_daily: Option<u32>,
    /// Keep the newest set of each of the last W ISO weeks that have one.
    #[arg(long, value_name = "W")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest set of each of the last M months that have one.
    #[arg(long, value_name = "M")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest set of each of the last Y years that have one.
    #[arg(long, value_name = "Y")]
    pub keep_yearly: Option<u32>,
    /// Keep every set younger than this (e.g. 10d, 36h).
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<HumanDuration>,
}

/// ssh settings for a command that reads or writes an `ssh://` target;
/// unset ones come from `[backup] identity` and `ssh_config`.
#[derive(Debug, Args, Clone, Default)]
pub struct SshArgs {
    /// Private key for an ssh:// target (default: [backup] identity; else your ssh setup decides).
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// An ssh_config file to use instead of ~/.ssh/config (default: [backup] ssh_config).
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Destination directory (default: [backup] destination), or an ssh:// ship target.
    pub dest: Option<String>,
    #[command(flatten)]
    pub keep: KeepOpts,
    /// Print what would be kept and removed, remove nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    #[command(flatten)]
    pub ssh: SshArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum TransportArg {
    /// rsync when both ends have it, else sftp.
    Auto,
    /// rsync over ssh.
    Rsync,
    /// sftp in batch mode.
    Sftp,
}

#[derive(Debug, Args)]
pub struct ShipArgs {
    /// The set directory.
    pub set: PathBuf,
    /// ssh://[user@]host[:port]/path, or a local directory (default: [backup] ship_to).
    #[arg(long, value_name = "TARGET")]
    pub to: Option<String>,
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Delete the local set once the copy on the target verified.
    #[arg(long)]
    pub remove_source: bool,
    /// Then apply the retention policy ([backup] keep_*) on the target.
    #[arg(long)]
    pub prune: bool,
    /// How to send the files.
    #[arg(long, value_enum, default_value = "auto")]
    pub transport: TransportArg,
    /// Verify by reading every file back instead of running sha256sum on the host.
    #[arg(long)]
    pub read_back: bool,
    /// If a copy already on the target is damaged, send the damaged files again.
    #[arg(long)]
    pub repair: bool,
    /// Bandwidth limit in KiB/s (default: [backup] bwlimit_kib, else none).
    #[arg(long, value_name = "KIB")]
    pub bwlimit: Option<u32>,
}

#[derive(Debug, Args)]
pub struct PackArgs {
    /// The set directory.
    pub set: PathBuf,
    /// Output file (default: <set>.tar beside the set).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct UnpackArgs {
    /// A .tar made by `backup pack`.
    pub file: PathBuf,
    /// Directory to unpack into (default: the file's directory).
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
}
