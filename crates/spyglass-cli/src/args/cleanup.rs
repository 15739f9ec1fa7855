use std::path::PathBuf;

use clap::{Args, Subcommand};
use spyglass_jobs::settings::HumanDuration;

/// `cleanup scan | apply | restore RUN | purge`.
#[derive(Debug, Args)]
pub struct CleanupArgs {
    #[command(subcommand)]
    pub command: CleanupCommand,
}

#[derive(Debug, Subcommand)]
pub enum CleanupCommand {
    /// Report untracked, empty and unused files, dangling references, untracked
    /// folders, stale temp files and orphan rows. Reads only.
    ///
    /// Exit 0 nothing to clean, 1 something to clean (or a problem to look at), 2 error.
    Scan(CleanupScanArgs),
    /// Quarantine (or delete) what scan finds, after guards and a re-check of every item.
    ///
    /// Exit 0 done (or nothing to do), 1 some items skipped by their re-check, 2 refused or error.
    Apply(CleanupApplyArgs),
    /// Put a quarantine run back: files to their paths, deleted rows inserted again.
    Restore(CleanupRestoreArgs),
    /// Delete quarantine runs older than --older-than.
    Purge(CleanupPurgeArgs),
}

/// Options scan and apply share.
#[derive(Debug, Args)]
pub struct CleanupScanOpts {
    /// Only these classes: untracked, empty, unused_external, dangling,
    /// untracked_dir, stale_temp, orphan_row (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "CLASS,...")]
    pub only: Vec<String>,
    /// Grace period: untracked things modified more recently are left alone
    /// (default: [cleanup] min_age, else 24h).
    #[arg(long, value_name = "DURATION")]
    pub min_age: Option<HumanDuration>,
    /// Temp entries untouched this long are stale (default: [cleanup] temp_age, else 7d).
    #[arg(long, value_name = "DURATION")]
    pub temp_age: Option<HumanDuration>,
    /// Print the absolute path of every item with a place on disk, one per
    /// line (with --json, every item in an "items" list).
    #[arg(long)]
    pub list: bool,
    /// With --list: each line is the class, a tab, and the path
    /// (`untracked<TAB>/data/raw/x.nwb`); rows with no file of their own
    /// are listed too, as `row ...` descriptions.
    #[arg(long, requires = "list")]
    pub with_class: bool,
}

#[derive(Debug, Args)]
pub struct CleanupScanArgs {
    #[command(flatten)]
    pub scan: CleanupScanOpts,
}

#[derive(Debug, Args)]
pub struct CleanupApplyArgs {
    #[command(flatten)]
    pub scan: CleanupScanOpts,
    /// Move items into a new run under DIR (default: [cleanup] quarantine,
    /// else <spyglass base>/spyglass-admin-quarantine).
    #[arg(long, value_name = "DIR", conflicts_with = "delete")]
    pub quarantine: Option<PathBuf>,
    /// Delete at once instead of quarantining (cannot be undone).
    #[arg(long)]
    pub delete: bool,
    /// Refuse when more than this fraction of a store's or directory's entries
    /// would go (default: [cleanup] max_fraction, else 0.5).
    #[arg(long, value_name = "F")]
    pub max_fraction: Option<f64>,
    /// Also delete orphan analysis_nwbfile rows.
    #[arg(long)]
    pub include_rows: bool,
    /// Do not ask; required when there is no terminal.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct CleanupRestoreArgs {
    /// The run: its directory, or its name under the quarantine directory.
    #[arg(value_name = "RUN")]
    pub run: PathBuf,
    /// The quarantine directory (default: [cleanup] quarantine, else <spyglass base>/spyglass-admin-quarantine).
    #[arg(long, value_name = "DIR")]
    pub quarantine: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CleanupPurgeArgs {
    /// Delete runs created longer ago than this.
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    pub older_than: HumanDuration,
    /// The quarantine directory (default: [cleanup] quarantine, else <spyglass base>/spyglass-admin-quarantine).
    #[arg(long, value_name = "DIR")]
    pub quarantine: Option<PathBuf>,
    /// Do not ask; required when there is no terminal.
    #[arg(long, short = 'y')]
    pub yes: bool,
}
