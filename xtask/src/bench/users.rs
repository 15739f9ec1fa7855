//! `cargo xtask bench users [--flavor mariadb|mysql] [--accounts N] [--apply N]`:
//! `users apply` creating N users (default 500) and `users audit` over the
//! resulting accounts (default 1,000 in all), on a sandbox, next to the
//! anchors: Spyglass's way (the same statements piped to the `mariadb`
//! client, nothing checked) and `pt-show-grants` (what DBAs diff by eye).

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::Instant;

use spyglass_db::mysql::prelude::Queryable;

use crate::sandbox::{self, Flavor, Sandbox};
use crate::util::{self, cargo, target_dir};

fn num(args: &[String], name: &str, default: usize) -> Result<usize, String> {
    match util::opt_value(args, name)? {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("{name} wants a number, got '{v}'")),
    }
}

/// Runs the binary with the sandbox's DJ_* settings; returns seconds and the exit code.
fn time_ours(bin: &std::path::Path, s: &Sandbox, args: &[&str]) -> Result<(f64, i32), String> {
    let t = Instant::now();
    let out = Command::new(bin)
        .args(args)
        .env("DJ_HOST", s.host())
        .env("DJ_PORT", s.port.to_string())
        .env("DJ_USER", s.user())
        .env("DJ_PASS", "")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run spyglass-admin: {e}"))?;
    let secs = t.elapsed().as_secs_f64();
    let code = out.status.code().unwrap_or(-1);
    if code == 2 {
        return Err(format!(
            "spyglass-admin {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok((secs, code))
}

fn time_shell(script: &str) -> Result<f64, String> {
    let t = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run sh: {e}"))?;
    if !status.success() {
        return Err(format!("reference step failed ({status}): {script}"));
    }
    Ok(t.elapsed().as_secs_f64())
}

fn users_file(prefix: &str, n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        let role = ["guest", "collab", "user", "user"][i % 4];
        let _ = writeln!(s, "[[users]]\nname = \"{prefix}{i}\"\nrole = \"{role}\"\n");
    }
    s
}

/// Spyglass `DatabaseSettings` statements for the same users (temppass, no checks).
fn spyglass_sql(prefix: &str, n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        let role = ["dj_guest", "dj_collab", "dj_user", "dj_user"][i % 4];
        let u = format!("{prefix}{i}");
        let _ = writeln!(
            s,
            "CREATE USER IF NOT EXISTS '{u}'@'%' IDENTIFIED BY 'temppass';"
        );
        let _ = writeln!(s, "GRANT {role} TO '{u}'@'%';");
        if role != "dj_guest" {
            let _ = writeln!(s, "GRANT ALL PRIVILEGES ON `{u}\\_%`.* TO '{u}'@'%';");
        }
    }
    s
}

pub fn cmd(args: &[String]) -> Result<(), String> {
    let flavor = crate::flavor_arg(args, Flavor::Mariadb)?;
    let total = num(args, "--accounts", 1000)?;
    let apply_n = num(args, "--apply", 500)?.min(total);
    eprintln!("xtask: building spyglass-admin (release)");
    util::run(cargo().args(["build", "--quiet", "--release", "-p", "spyglass-cli"]))?;
    let bin = target_dir().join("release/spyglass-admin");
    let work = target_dir().join("bench/users");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;

    // A fresh server: nothing but root.
    sandbox::stop(flavor)?;
    let s = sandbox::start(flavor)?;
    let result = run(&bin, &s, flavor, total, apply_n, &work);
    let stopped = sandbox::stop(flavor);
    result.and(stopped)
}

fn run(
    bin: &std::path::Path,
    s: &Sandbox,
    flavor: Flavor,
    total: usize,
    apply_n: usize,
    work: &std::path::Path,
) -> Result<(), String> {
    let (init, _) = time_ours(bin, s, &["users", "roles", "init"])?;

    // Accounts that exist before the measured apply (set up by the tool too, not timed).
    let pre = total - apply_n;
    let pre_file = work.join("pre.toml");
    std::fs::write(&pre_file, users_file("bench_pre", pre)).map_err(|e| e.to_string())?;
    time_ours(
        bin,
        s,
        &[
            "users",
            "apply",
            "-f",
            pre_file.to_str().unwrap_or_default(),
        ],
    )?;

    let file = work.join("users.toml");
    std::fs::write(&file, users_file("bench_u", apply_n)).map_err(|e| e.to_string())?;
    let f = file.to_str().unwrap_or_default();
    let (plan_cold, _) = time_ours(bin, s, &["users", "plan", "-f", f])?;
    let (apply, _) = time_ours(bin, s, &["users", "apply", "-f", f])?;
    let (apply_again, _) = time_ours(bin, s, &["users", "apply", "-f", f])?;
    let (audit_nologin, code) = time_ours(bin, s, &["users", "audit", "--no-login-check"])?;
    let (audit_login, _) = time_ours(bin, s, &["users", "audit"])?;
    let (list, _) = time_ours(bin, s, &["users", "list"])?;
    let accounts: u64 = s
        .connect()?
        .conn()
        .query_first("SELECT COUNT(*) FROM mysql.user")
        .map_err(|e| e.to_string())?
        .unwrap_or(0);

    // Anchors (MariaDB only: its client is on the host).
    let mut refs = Vec::new();
    if flavor == Flavor::Mariadb {
        let cnf = work.join("root.cnf");
        std::fs::write(
            &cnf,
            format!(
                "[client]\nhost=127.0.0.1\nport={}\nuser=root\npassword=\n",
                s.port
            ),
        )
        .map_err(|e| e.to_string())?;
        let sql = work.join("spyglass.sql");
        std::fs::write(&sql, spyglass_sql("bench_sg", apply_n)).map_err(|e| e.to_string())?;
        let t = time_shell(&format!(
            "mariadb --defaults-extra-file={} < {}",
            cnf.display(),
            sql.display()
        ))?;
        refs.push((
            format!("Spyglass-style SQL piped to mariadb, {apply_n} users (no checks)"),
            t,
        ));
        if util::which("pt-show-grants").is_none() {
            let _ = util::apt_install(&["percona-toolkit"], "the users benchmark's reference");
        }
        if util::which("pt-show-grants").is_some() {
            let t = time_shell(&format!(
                "pt-show-grants --defaults-file={} > /dev/null",
                cnf.display()
            ))?;
            refs.push((
                format!(
                    "pt-show-grants over {} accounts (no findings, diff by eye)",
                    accounts + apply_n as u64
                ),
                t,
            ));
        } else {
            refs.push(("pt-show-grants: not installed, skipped".into(), f64::NAN));
        }
    }

    println!(
        "\nusers benchmark on {} ({accounts} accounts in mysql.user)\n",
        flavor.name()
    );
    println!("| step | seconds |");
    println!("|---|---|");
    println!("| `users roles init` (4 roles, 18 grants) | {init:.2} |");
    println!(
        "| `users plan -f` for {apply_n} new users (reads live state, plans) | {plan_cold:.2} |"
    );
    println!(
        "| `users apply -f` creating {apply_n} users (~{} statements, each checked) | {apply:.2} |",
        apply_n * 4
    );
    println!("| `users apply -f` again (nothing to change) | {apply_again:.2} |");
    println!("| `users audit --no-login-check` over {total} accounts (exit {code}) | {audit_nologin:.2} |");
    println!("| `users audit` over {total} accounts, one temppass login each | {audit_login:.2} |");
    println!("| `users list` | {list:.2} |");
    for (what, t) in refs {
        if t.is_nan() {
            println!("| {what} | - |");
        } else {
            println!("| {what} | {t:.2} |");
        }
    }
    Ok(())
}
