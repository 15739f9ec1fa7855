use std::path::PathBuf;

use clap::Args;

/// `report`: one HTML page (and `--json`) of storage, growth, backups, cleanup and users.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Write the HTML page here (written to a temporary name, then renamed).
    /// Required unless --json.
    #[arg(long, value_name = "FILE", required_unless_present = "json")]
    pub out: Option<PathBuf>,
    /// The backup destination to describe (default: [backup] destination).
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// Do not try the policy's temporary passwords (as `users audit --no-login-check`).
    #[arg(long)]
    pub no_login_check: bool,
    /// Do not add tonight's record to the history under the backup destination.
    #[arg(long)]
    pub no_history: bool,
}
