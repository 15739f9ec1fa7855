//! `cargo xtask bench binlog [--flavor mariadb|mysql] [--mb N]`: archiving
//! N MB of row events (default 200) with `spyglass-admin binlog archive
//! --until-now` next to the stock `mysqlbinlog --read-from-remote-server
//! --raw --to-last-log` (`mariadb-binlog` on MariaDB, the chroot's
//! `mysqlbinlog` on MySQL), from the same server, into empty directories.

use std::process::{Command, Stdio};
use std::time::Instant;

use spyglass_db::mysql::prelude::Queryable;

use crate::sandbox::{self, Flavor, Sandbox};
use crate::util::{self, cargo, target_dir};

fn dir_bytes(d: &std::path::Path) -> u64 {
    std::fs::read_dir(d)
        .map(|r| {
            r.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

pub fn cmd(args: &[String]) -> Result<(), String> {
    let flavor = crate::flavor_arg(args, Flavor::Mariadb)?;
    let mb: u64 = match util::opt_value(args, "--mb")? {
        None => 200,
        Some(v) => v
            .parse()
            .map_err(|_| format!("--mb wants a number, got '{v}'"))?,
    };
    eprintln!("xtask: building spyglass-admin (release)");
    util::run(cargo().args(["build", "--quiet", "--release", "-p", "spyglass-cli"]))?;
    let bin = target_dir().join("release/spyglass-admin");
    let work = target_dir().join("bench/binlog");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    sandbox::stop(flavor)?;
    let s = sandbox::start(flavor)?;
    let result = run(&bin, &s, flavor, mb, &work);
    let stopped = sandbox::stop(flavor);
    result.and(stopped)
}

fn run(
    bin: &std::path::Path,
    s: &Sandbox,
    flavor: Flavor,
    mb: u64,
    work: &std::path::Path,
) -> Result<(), String> {
    let mut session = s.connect()?;
    let c = session.conn();
    let q = |c: &mut spyglass_db::mysql::Conn, stmt: &str| {
        c.query_drop(stmt).map_err(|e| format!("{stmt}: {e}"))
    };
    eprintln!("xtask: writing {mb} MB of row events");
    q(c, "CREATE DATABASE bench_binlog")?;
    q(
        c,
        "CREATE TABLE bench_binlog.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(1000))",
    )?;
    // 1,000 rows of ~1 kB per transaction.
    let batch: String = (0..1000)
        .map(|i| {
            format!(
                "(NULL, REPEAT('{}', 1000))",
                (b'a' + (i % 26) as u8) as char
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    for _ in 0..mb {
        q(c, &format!("INSERT INTO bench_binlog.t VALUES {batch}"))?;
    }
    let rows: Vec<spyglass_db::mysql::Row> =
        c.query("SHOW BINARY LOGS").map_err(|e| e.to_string())?;
    let first: String = rows
        .first()
        .and_then(|r| r.get(0))
        .ok_or("no binary logs")?;
    let ours = work.join("ours");
    let t = Instant::now();
    let out = Command::new(bin)
        .args(["binlog", "archive", "--until-now", "--dest"])
        .arg(&ours)
        .env("DJ_HOST", s.host())
        .env("DJ_PORT", s.port.to_string())
        .env("DJ_USER", s.user())
        .env("DJ_PASS", "")
        .stdout(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let ours_s = t.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "binlog archive failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stock = work.join("stock");
    std::fs::create_dir_all(&stock).map_err(|e| e.to_string())?;
    let (mut cmd, tool) = match flavor {
        Flavor::Mariadb => {
            let mut c = Command::new("mariadb-binlog");
            c.arg(format!("--result-file={}/", stock.display()));
            (c, "mariadb-binlog")
        }
        Flavor::Mysql => {
            let root = sandbox::chroot_dir();
            let inside = format!("/tmp/bench-binlog-{}", std::process::id());
            let host = root.join(inside.trim_start_matches('/'));
            let _ = std::fs::remove_dir_all(&host);
            std::fs::create_dir_all(&host).map_err(|e| e.to_string())?;
            let mut c = Command::new("chroot");
            c.arg(&root)
                .arg("/usr/bin/mysqlbinlog")
                .arg(format!("--result-file={inside}/"));
            (c, "mysqlbinlog (chroot)")
        }
    };
    cmd.args([
        "--read-from-remote-server",
        "--raw",
        "--to-last-log",
        "-h",
        s.host(),
        "-u",
        s.user(),
    ])
    .arg(format!("--port={}", s.port))
    .arg(&first)
    .stdout(Stdio::null());
    let t = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {tool}: {e}"))?;
    let stock_s = t.elapsed().as_secs_f64();
    if !status.success() {
        return Err(format!("{tool} failed ({status})"));
    }
    let stock_bytes = match flavor {
        Flavor::Mariadb => dir_bytes(&stock),
        Flavor::Mysql => {
            let root = sandbox::chroot_dir();
            let host = root.join(format!("tmp/bench-binlog-{}", std::process::id()));
            let b = dir_bytes(&host);
            let _ = std::fs::remove_dir_all(&host);
            b
        }
    };
    let raw = ours.join("binlog");
    let idx: serde_json::Value = std::fs::read(raw.join("index.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let closed: u64 = idx["files"]
        .as_array()
        .map_or(0, |f| f.iter().filter_map(|e| e["size"].as_u64()).sum());
    let open: u64 = std::fs::read_dir(&raw)
        .map(|r| {
            r.flatten()
                .filter(|e| {
                    !e.file_name().to_string_lossy().contains('.')
                        || e.file_name()
                            .to_string_lossy()
                            .rsplit('.')
                            .next()
                            .is_some_and(|x| x.len() == 6 && x.bytes().all(|c| c.is_ascii_digit()))
                })
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let ours_bytes = closed + open;
    let mib = |b: u64| b as f64 / 1048576.0;
    println!(
        "binlog archive, {} {}, {:.0} MiB of binary log",
        flavor.name(),
        s.port,
        mib(stock_bytes)
    );
    println!("| tool | seconds | MiB/s | bytes |");
    println!("|---|---|---|---|");
    println!("| spyglass-admin binlog archive --until-now (gzip on close) | {ours_s:.2} | {:.0} | {ours_bytes} |", mib(ours_bytes) / ours_s);
    println!(
        "| {tool} --read-from-remote-server --raw | {stock_s:.2} | {:.0} | {stock_bytes} |",
        mib(stock_bytes) / stock_s
    );
    println!("ratio ours/stock: {:.2}x the time", ours_s / stock_s);
    Ok(())
}
