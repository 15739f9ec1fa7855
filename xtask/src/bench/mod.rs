//! `cargo xtask bench [backup|binlog|cleanup|users|ship]`: ours and the reference tools,
//! side by side on the same data in one run, with ratios. Each family lives in
//! its own module and registers one arm below.

mod backup;
mod binlog;
mod cleanup;
mod ship;
mod users;

pub fn cmd(args: &[String]) -> Result<(), String> {
    let which = args.first().map(String::as_str).unwrap_or("all");
    let rest = if args.is_empty() { args } else { &args[1..] };
    let _ = rest;
    match which {
        "backup" => backup::cmd(rest),
        "binlog" => binlog::cmd(rest),
        "cleanup" => cleanup::cmd(rest),
        "users" => users::cmd(rest),
        "ship" => ship::cmd(rest),
        other => Err(format!("unknown benchmark '{other}'")),
    }
}
