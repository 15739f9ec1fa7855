//! One module per command; each returns the exit status.

mod backup;
mod binlog;
mod cleanup;
mod dist;
mod doctor;
mod doctor_target;
pub(crate) mod lifecycle;
mod nightly;
mod recover;
mod report;
mod schedule;
mod users;

use crate::args::{Cli, Command};
use crate::output::ExitStatus;

pub fn run(cli: Cli) -> anyhow::Result<ExitStatus> {
    match cli.command {
        Command::Doctor(args) => doctor::run(&cli.global, &args),
        Command::Cleanup(args) => cleanup::run(&cli.global, &args),
        Command::Users(args) => users::run(&cli.global, args),
        Command::Backup(args) => backup::run(&cli.global, args),
        Command::Binlog(args) => binlog::run(&cli.global, &args),
        Command::Recover(args) => recover::run(&cli.global, &args),
        Command::Nightly(args) => nightly::run(&cli.global, &args),
        Command::Report(args) => report::run(&cli.global, &args),
        Command::Schedule(args) => schedule::run(&cli.global, &args),
        Command::Completions(args) => dist::completions(&args),
        Command::DistFiles(args) => dist::files(&args),
    }
}

/// `Ok` when nothing is `missing`; otherwise the refusal that names the
/// account and every missing privilege, with `hint` (what to do instead),
/// for a command that checks before its first statement.
fn refuse_unless_held(
    account: String,
    missing: Vec<spyglass_privileges::preflight::Missing>,
    hint: &str,
) -> anyhow::Result<()> {
    if missing.is_empty() {
        return Ok(());
    }
    let e = spyglass_privileges::Error::Insufficient { account, missing };
    Err(crate::output::UserError::new(e.to_string())
        .hint(hint)
        .into())
}
