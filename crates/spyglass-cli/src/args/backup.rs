use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::{PackArgs, PruneArgs, ShipArgs, SshArgs, UnpackArgs};

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: BackupCommand,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up every schema (or a selection) into a new set under DEST.
    ///
    /// Prints the set's path on stdout and exits 0 only when the set is
    /// complete; an interrupted run leaves DEST/<name>.partial, never a set
    /// that looks complete.
    Run(RunArgs),
    /// Restore a set into the server given by the connection settings.
    Restore(RestoreArgs),
    /// Check every file of a set (size, sha256, complete streams); exit 1 naming each bad file.
    Verify(VerifyArgs),
    /// List the sets in DEST with status, size, age and schemas.
    List(ListArgs),
    /// Apply a retention policy (GFS, like restic forget): print what is kept and why, remove the rest.
    ///
    /// Never removes the newest complete set or a set being written; removes a
    /// .partial leftover only when its writer is gone.
    Prune(PruneArgs),
    /// Copy a set to ssh://user@host[:port]/path or a directory, verified there by sha256.
    ///
    /// rsync when both ends have it (resumes), else sftp; renamed into place
    /// only after every file verified. Exit 2 naming host and file on failure;
    /// the local set is always kept then.
    Ship(ShipArgs),
    /// Pack a set into a single .tar file.
    Pack(PackArgs),
    /// Unpack a .tar made by pack (checked first) into a set directory.
    Unpack(UnpackArgs),
}

/// `--compress`: the same values as `[nightly] compress`.
pub use spyglass_jobs::settings::CompressMethod as CompressArg;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum EngineArg {
    /// Our parallel engine (default).
    Native,
    /// The system mysqldump/mariadb-dump, laid out, compressed and checksummed the same way.
    Mysqldump,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Destination directory, or ssh://[user@]host[:port]/path: the set is
    /// written under $TMPDIR, shipped there, verified, and the local copy
    /// removed (default: [backup] destination in the settings).
    #[arg(long, value_name = "DIR|TARGET")]
    pub dest: Option<PathBuf>,
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Set name prefix.
    #[arg(long, default_value = "backup")]
    pub label: String,
    /// Only schemas matching these globs (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "GLOB,...")]
    pub schemas: Vec<String>,
    /// Leave out schemas matching these globs (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "GLOB,...")]
    pub exclude: Vec<String>,
    /// Worker connections (default: number of cores).
    #[arg(long, short = 't', value_name = "N")]
    pub threads: Option<usize>,
    /// Compression of every file.
    #[arg(long, value_enum, default_value = "gzip")]
    pub compress: CompressArg,
    /// Compression level (gzip 0-12, zstd 1-19). Default: gzip 6, with BLOB tables at 2 (as
    /// small for neural arrays, much faster); zstd 3. A given level applies to every file.
    #[arg(long, value_name = "N")]
    pub level: Option<i32>,
    /// Record CHECKSUM TABLE of every table at snapshot time (reads every table twice).
    #[arg(long)]
    pub checksum: bool,
    /// Dump engine.
    #[arg(long, value_enum, default_value = "native")]
    pub engine: EngineArg,
    /// The dump program for --engine mysqldump (default: mysqldump or mariadb-dump on PATH).
    #[arg(long, value_name = "PATH", requires = "engine")]
    pub dump_program: Option<PathBuf>,
    /// Do not dump accounts, roles and grants.
    #[arg(long)]
    pub no_accounts: bool,
    /// Target uncompressed size of one data file, in MB.
    #[arg(long, default_value_t = 64, value_name = "MB")]
    pub chunk_mb: u64,
    /// Upper bound of one INSERT statement, in MB.
    #[arg(long, default_value_t = 16, value_name = "MB")]
    pub statement_mb: u64,
    /// Before the global read lock, wait at most this long for other sessions'
    /// statements that have run for a second or more (the lock would wait for
    /// them with every writer queued behind it); then fail naming them. The
    /// lock is then tried for at most 2 s at a time, up to the same bound.
    /// Seeing other sessions needs PROCESS.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub long_query_guard: u64,
    /// Kill (KILL QUERY) the statements still running at the guard instead of failing.
    #[arg(long)]
    pub kill_long_queries: bool,
    /// When no consistent snapshot can be had (long statements, or the lock
    /// fails although the account holds RELOAD), dump without one and exit 1.
    #[arg(long, conflicts_with = "kill_long_queries")]
    pub allow_inconsistent: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The set directory, or a set on a ship target: TARGET/NAME, e.g.
    /// ssh://nas/backups/nightly-20261201-020000 or s3://lab/nightly-20261201-020000
    /// (fetched into a private directory under $TMPDIR first, removed afterwards).
    pub set: PathBuf,
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Only schemas matching these globs (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "GLOB,...")]
    pub schemas: Vec<String>,
    /// Restore schema OLD as NEW; `old_*=new_*` renames by prefix. Repeatable.
    #[arg(long, value_name = "OLD=NEW")]
    pub rename: Vec<String>,
    /// Loader connections (default: number of cores).
    #[arg(long, short = 't', value_name = "N")]
    pub threads: Option<usize>,
    /// Drop target schemas that already exist. Without it, existing schemas stop the restore.
    #[arg(long)]
    pub force: bool,
    /// Also create the set's accounts, roles and grants.
    #[arg(long)]
    pub with_accounts: bool,
    /// Write the restored rows to the binary log, so replicas receive them
    /// (off by default, like myloader).
    #[arg(long)]
    pub enable_binlog: bool,
    #[command(flatten)]
    pub pitr: PointInTimeArgs,
}

/// Point-in-time restore: after the set, replay the binary-log archive.
#[derive(Debug, Args)]
pub struct PointInTimeArgs {
    /// Then replay the archived binary log up to, not including, the first
    /// transaction committed after this local time ('YYYY-MM-DD HH:MM:SS[.ffffff]').
    #[arg(long, value_name = "TIME", conflicts_with_all = ["until_position", "until_gtid", "latest"])]
    pub until: Option<String>,
    /// Then replay up to this binlog position (FILE:POS), not including the
    /// transaction that ends after it.
    #[arg(long, value_name = "FILE:POS", conflicts_with_all = ["until_gtid", "latest"])]
    pub until_position: Option<String>,
    /// Then replay up to and including the transaction with this GTID
    /// (MySQL uuid:n with gtid_mode=ON; MariaDB domain-server-seq).
    #[arg(long, value_name = "GTID", conflicts_with = "latest")]
    pub until_gtid: Option<String>,
    /// Then replay everything archived.
    #[arg(long)]
    pub latest: bool,
    /// The binary-log archive: a directory, or a ship target (ssh://...,
    /// s3://...) whose binlog/ is fetched and checked (default: binlog/
    /// next to the set, on the set's target when it is TARGET/NAME).
    #[arg(long, value_name = "DIR|TARGET")]
    pub binlog_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The set directory, or TARGET/NAME of a set on a ship target (fetched
    /// into a private directory under $TMPDIR, checked, removed).
    pub set: PathBuf,
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Also restore into schemas named PREFIX<schema> on the connected server,
    /// compare row counts (and checksums) with the manifest, then drop them.
    #[arg(long)]
    pub restore: bool,
    /// Schema name prefix for --restore.
    #[arg(long, default_value = "verify_", value_name = "PREFIX")]
    pub prefix: String,
    /// Loader connections for --restore.
    #[arg(long, short = 't', value_name = "N")]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Destination directory or ship target such as ssh://user@host/path
    /// (default: [backup] destination in the settings).
    pub dest: Option<PathBuf>,
    #[command(flatten)]
    pub ssh: SshArgs,
}
