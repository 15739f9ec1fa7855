use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Backup destination to check for free space (default: [backup] destination in the settings).
    #[arg(long, value_name = "DIR")]
    pub backup_dest: Option<PathBuf>,
}
