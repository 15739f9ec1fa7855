//! Project automation: `cargo xtask <task>`. See `cargo xtask help`.
//!
//! Few dependencies on purpose: std, plus the workspace's own `spyglass-db`
//! (to wait for a server) and `spyglass-fixture`.

mod bench;
mod ci;
mod dist;
mod garage;
mod sandbox;
mod screenshot;
mod sshd;
mod tls;
mod util;
mod venv;

use std::process::ExitCode;

use sandbox::Flavor;

const HELP: &str = "\
cargo xtask <task>

tasks:
  sandbox start|stop|status [--flavor mariadb|mysql]
                      a throwaway server in target/sandbox/<flavor>/ on a free
                      127.0.0.1 port; prints the DJ_* lines to use it
  fixture [--flavor F] [--blob-mb N] [--seed S] [--root DIR]
                      a Spyglass-shaped database on the running sandbox, plus its
                      data directory (default root: target/sandbox/<flavor>/fixture)
  itest [--flavor mariadb|mysql|all] [-- TEST-FILTER...]
                      start servers, run the server tests against each, stop them
                      (their DataJoint client: a venv made once per machine in
                      /var/cache/spyglass-admin)
  demo [--flavor F] [--keep] [--s3]
                      sandbox + fixture + the tool's main jobs, narrated; --s3
                      also ships the nightly to a 3-node Garage cluster
  screenshot [--flavor F]
                      the demo, then docs/report.png of its report (headless
                      Chromium, no network)
  bench [backup|binlog|cleanup|users|ship]
                      ours next to the reference tools on the same data, with ratios
                      (ship: upload to 3-node Garage vs rclone copy)
  dist [--check]      the Debian package (target/dist/); --check installs it into a
                      throwaway root and tries it: lintian, doctor, man, completions,
                      systemd-analyze, upgrade, remove, purge
  ci                  fmt --check, clippy -D warnings, unit tests, itest --flavor all
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("sandbox") => sandbox::cmd(&args[1..]),
        Some("fixture") => sandbox::fixture_cmd(&args[1..]),
        Some("itest") => ci::itest_cmd(&args[1..]),
        Some("demo") => ci::demo_cmd(&args[1..]),
        Some("ci") => ci::ci_cmd(&args[1..]),
        Some("bench") => bench::cmd(&args[1..]),
        Some("screenshot") => screenshot::cmd(&args[1..]),
        Some("dist") => dist::cmd(&args[1..]),
        Some("help") | Some("--help") | Some("-h") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task '{other}'\n\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--flavor X` from args, default `default`.
pub(crate) fn flavor_arg(args: &[String], default: Flavor) -> Result<Flavor, String> {
    match util::opt_value(args, "--flavor")? {
        None => Ok(default),
        Some(v) => Flavor::parse(&v),
    }
}
