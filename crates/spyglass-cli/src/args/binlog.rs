use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `binlog`: the binary-log archive (point-in-time recovery).
#[derive(Debug, Args)]
pub struct BinlogArgs {
    #[command(subcommand)]
    pub command: BinlogCommand,
}

#[derive(Debug, Subcommand)]
pub enum BinlogCommand {
    /// Copy the server's binary log into DEST/binlog/ as a replica (its own server_id).
    ///
    /// Without --until-now it follows the server until stopped (SIGTERM),
    /// reconnecting with backoff; with it, it fetches up to the current
    /// position and exits (cron). Exit 0 done, 1 a gap was found (the server
    /// purged a binlog the archive had not copied), 2 error.
    Archive(ArchiveArgs),
}

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// Fetch up to the server's current position, then exit.
    #[arg(long)]
    pub until_now: bool,
    /// Backup destination; the archive is DEST/binlog (default: [backup] destination).
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// The archiver's server_id as a replica (unique among the server's replicas).
    #[arg(long, default_value_t = 4005, value_name = "N")]
    pub server_id: u32,
    /// Heartbeat period while following, in seconds.
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    pub heartbeat: u64,
}
