//! `spyglass-admin`: parse the command line, run, exit with a documented code.
//!
//! Exit codes: 0 success; 1 findings or warnings (doctor problems, audit
//! findings, verify failures, cleanup candidates); 2 error (could not run).

mod args;
mod commands;
mod connection;
mod output;
mod progress;
mod settings;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = args::Cli::parse();
    let code = match commands::run(args) {
        Ok(status) => status,
        Err(err) => {
            output::print_error(&err);
            output::ExitStatus::Error
        }
    };
    code.into()
}
