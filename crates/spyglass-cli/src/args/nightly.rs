use clap::Args;

/// `nightly`: everything it does comes from spyglass-admin.toml (`--config`).
#[derive(Debug, Args)]
pub struct NightlyArgs {
    /// Do not ship, even when [backup] ship_to is set.
    #[arg(long)]
    pub no_ship: bool,
}
