use clap::Args;

/// `schedule --print [--cron|--systemd]`.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// Print the schedule (nothing is installed; paste it where it belongs).
    #[arg(long, required = true)]
    pub print: bool,
    /// A crontab line (default).
    #[arg(long, conflicts_with = "systemd")]
    pub cron: bool,
    /// A systemd service and timer pair.
    #[arg(long)]
    pub systemd: bool,
    /// Time of day, local time of the machine, HH:MM.
    #[arg(long, default_value = "02:30", value_name = "HH:MM")]
    pub at: String,
}

/// `completions SHELL`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to print a completion script for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// `dist-files --out DIR` (hidden): what the Debian package installs.
#[derive(Debug, Args)]
pub struct DistFilesArgs {
    /// Directory to write man/, completions/ and systemd/ into (created).
    #[arg(long, value_name = "DIR")]
    pub out: std::path::PathBuf,
}
