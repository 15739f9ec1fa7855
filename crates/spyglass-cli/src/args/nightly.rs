use clap::Args;

/// `nightly`: everything it does comes from spyglass-admin.toml (`--config`).
#[derive(Debug, Args)]
pub struct NightlyArgs {
    /// Do not ship, even when [backup] ship_to is set.
    #[arg(long)]
    pub no_ship: bool,
    /// Log and notify a nightly that was killed or crashed (run by the
    /// systemd unit's OnFailure=; reads MONITOR_SERVICE_RESULT and
    /// MONITOR_EXIT_STATUS).
    #[arg(long, hide = true)]
    pub notify_failure: bool,
}
