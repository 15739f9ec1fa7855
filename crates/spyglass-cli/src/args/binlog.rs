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
    /// Copy the archive (DEST/binlog) to a ship target's binlog/: closed
    /// files the target lacks, the open file's complete events as a
    /// segment, then the index; every file's sha256 checked there.
    ///
    /// `backup ship` and `nightly` do this after each set; the archive
    /// service does it every [binlog] ship_every.
    Ship(BinlogShipArgs),
}

#[derive(Debug, Args)]
pub struct BinlogShipArgs {
    /// Backup destination; the archive is DEST/binlog (default: [backup] destination).
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// ssh://[user@]host[:port]/path, s3://bucket/prefix or a directory
    /// (default: [backup] ship_to).
    #[arg(long, value_name = "TARGET")]
    pub to: Option<String>,
    #[command(flatten)]
    pub ssh: super::SshArgs,
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
    /// While following, ship the archive to [backup] ship_to this often
    /// (default: [binlog] ship_every, else 15m; 0s: never).
    #[arg(long, value_name = "DURATION")]
    pub ship_every: Option<String>,
}
