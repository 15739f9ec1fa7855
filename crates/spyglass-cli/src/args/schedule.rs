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
