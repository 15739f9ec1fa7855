use std::path::PathBuf;

use clap::Args;

/// `recover`: undo a delete from the binary-log archive.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// Transactions to undo, as `recover --list` prints them (FILE:POS, or a GTID).
    #[arg(value_name = "TXN", required_unless_present = "list")]
    pub txns: Vec<String>,
    /// List the archived transactions that deleted or updated rows.
    #[arg(long, conflicts_with_all = ["into", "in_place"])]
    pub list: bool,
    /// With --list: from this commit time on ('YYYY-MM-DD HH:MM:SS[.ffffff]', local time).
    #[arg(long, value_name = "TIME", requires = "list")]
    pub since: Option<String>,
    /// With --list: up to this commit time (local time).
    #[arg(long, value_name = "TIME", requires = "list")]
    pub until: Option<String>,
    /// With --list: only these schemas (globs with * and ?, comma separated).
    #[arg(long, value_name = "GLOBS", value_delimiter = ',')]
    pub schemas: Vec<String>,
    /// The binlog archive (default: DEST/binlog of [backup] destination).
    #[arg(long, value_name = "DIR")]
    pub binlog_dir: Option<PathBuf>,
    /// Rebuild the rows into side schemas PREFIX<schema> (same table definitions, no foreign keys).
    #[arg(long, value_name = "PREFIX", conflicts_with = "in_place")]
    pub into: Option<String>,
    /// Re-insert the rows into the live tables, parents first, in one transaction.
    ///
    /// A dry run (rows per table, conflicts) comes first; any conflict (a
    /// deleted row's key exists again, an updated row changed since) stops
    /// it with nothing applied.
    #[arg(long)]
    pub in_place: bool,
    /// With --in-place: show the dry run only.
    #[arg(long, requires = "in_place")]
    pub dry_run: bool,
    /// Also put back the before-images of rows the transactions updated.
    #[arg(long)]
    pub include_updates: bool,
    /// Move the analysis files the recovered rows name back from the cleanup quarantine.
    #[arg(long)]
    pub restore_files: bool,
    /// The cleanup quarantine to look in (default: as cleanup finds it).
    #[arg(long, value_name = "DIR")]
    pub quarantine: Option<PathBuf>,
}
