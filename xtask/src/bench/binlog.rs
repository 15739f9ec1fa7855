//! `cargo xtask bench binlog [--flavor mariadb|mysql] [--mb N]`: archiving
//! N MB of row events (default 200) with `spyglass-admin binlog archive
//! --until-now` next to the stock `mysqlbinlog --read-from-remote-server
//! --raw --to-last-log` (`mariadb-binlog` on MariaDB, the chroot's
//! `mysqlbinlog` on MySQL), from the same server, into empty directories.
//! Then the replay of those events into the second (target) sandbox:
//! `backup restore SET --latest` (a set of the empty table taken before
//! the writes, then our replay) next to the stock pipeline `mysqlbinlog
//! FILES | mysql` from the set's coordinates on the same loaded set; both
//! end with the table's CHECKSUM compared to the source's.

use std::process::{Command, Stdio};
use std::time::Instant;

use spyglass_db::mysql::prelude::Queryable;

use crate::sandbox::{self, Flavor, Instance, Sandbox};
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
    sandbox::stop(Instance::target(flavor))?;
    let s = sandbox::start(flavor)?;
    let result = sandbox::start(Instance::target(flavor))
        .and_then(|dst| run(&bin, &s, &dst, flavor, mb, &work));
    let stopped = sandbox::stop(flavor).and(sandbox::stop(Instance::target(flavor)));
    result.and(stopped)
}

fn run(
    bin: &std::path::Path,
    s: &Sandbox,
    dst: &Sandbox,
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
    // The set the replay starts from: the empty table, before the writes.
    let ours = work.join("ours");
    let out = Command::new(bin)
        .args([
            "backup",
            "run",
            "--no-accounts",
            "--schemas",
            "bench_binlog",
            "--dest",
        ])
        .arg(&ours)
        .env("DJ_HOST", s.host())
        .env("DJ_PORT", s.port.to_string())
        .env("DJ_USER", s.user())
        .env("DJ_PASS", "")
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "backup run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let set = String::from_utf8_lossy(&out.stdout).trim().to_owned();
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
    let stock_host = match flavor {
        Flavor::Mariadb => stock.clone(),
        Flavor::Mysql => {
            sandbox::chroot_dir().join(format!("tmp/bench-binlog-{}", std::process::id()))
        }
    };
    let stock_bytes = dir_bytes(&stock_host);
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
    let replayed = replay(bin, s, dst, flavor, &set, &stock_host);
    if flavor == Flavor::Mysql {
        let _ = std::fs::remove_dir_all(&stock_host);
    }
    replayed
}

/// `CHECKSUM TABLE bench_binlog.t` on a server.
fn checksum(sb: &Sandbox) -> Result<Option<u64>, String> {
    let mut s = sb.connect()?;
    let row: Option<(String, Option<u64>)> = s
        .conn()
        .query_first("CHECKSUM TABLE bench_binlog.t")
        .map_err(|e| format!("CHECKSUM TABLE on port {}: {e}", sb.port))?;
    Ok(row.and_then(|r| r.1))
}

fn drop_bench(sb: &Sandbox) -> Result<(), String> {
    let mut s = sb.connect()?;
    s.conn()
        .query_drop("DROP DATABASE IF EXISTS bench_binlog")
        .map_err(|e| e.to_string())
}

/// Runs `spyglass-admin` against the target sandbox; returns its seconds.
fn ours_on(bin: &std::path::Path, dst: &Sandbox, args: &[&str]) -> Result<f64, String> {
    let t = Instant::now();
    let out = Command::new(bin)
        .args(args)
        .env("DJ_HOST", dst.host())
        .env("DJ_PORT", dst.port.to_string())
        .env("DJ_USER", dst.user())
        .env("DJ_PASS", "")
        .stdout(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "spyglass-admin {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(t.elapsed().as_secs_f64())
}

fn replay(
    bin: &std::path::Path,
    s: &Sandbox,
    dst: &Sandbox,
    flavor: Flavor,
    set: &str,
    stock: &std::path::Path,
) -> Result<(), String> {
    let want = checksum(s)?;
    let manifest: serde_json::Value =
        std::fs::read(std::path::Path::new(set).join("manifest.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| format!("{set}/manifest.json is not readable"))?;
    let start_file = manifest["snapshot"]["binlog_file"]
        .as_str()
        .ok_or("the set records no binlog file")?
        .to_owned();
    let start_pos = manifest["snapshot"]["binlog_position"]
        .as_u64()
        .ok_or("the set records no binlog position")?;
    // Ours: the set (one empty table) and the replay.
    drop_bench(dst)?;
    let load_s = ours_on(bin, dst, &["backup", "restore", set])?;
    drop_bench(dst)?;
    let ours_s = ours_on(bin, dst, &["backup", "restore", set, "--latest"])?;
    let ours_ok = checksum(dst)? == want;
    // Stock: the same set loaded, then mysqlbinlog FILES | mysql.
    drop_bench(dst)?;
    ours_on(bin, dst, &["backup", "restore", set])?;
    let mut files: Vec<String> = std::fs::read_dir(stock)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.as_str() >= start_file.as_str())
        .collect();
    files.sort();
    let (tool, client, dir, prefix) = match flavor {
        Flavor::Mariadb => (
            "mariadb-binlog",
            "mariadb",
            stock.display().to_string(),
            None,
        ),
        Flavor::Mysql => (
            "/usr/bin/mysqlbinlog --skip-gtids",
            "/usr/bin/mysql",
            format!(
                "/tmp/{}",
                stock
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ),
            Some(sandbox::chroot_dir()),
        ),
    };
    let list: Vec<String> = files.iter().map(|f| format!("{dir}/{f}")).collect();
    let pipeline = format!(
        "{tool} --start-position={start_pos} {} | {client} -h {} -P {} -u {}",
        list.join(" "),
        dst.host(),
        dst.port,
        dst.user()
    );
    let mut cmd = match &prefix {
        Some(root) => {
            let mut c = Command::new("chroot");
            c.arg(root).args(["/bin/bash", "-c"]);
            c
        }
        None => {
            let mut c = Command::new("bash");
            c.arg("-c");
            c
        }
    };
    cmd.arg(format!("set -o pipefail; {pipeline}"));
    let t = Instant::now();
    let st = cmd
        .status()
        .map_err(|e| format!("cannot run {pipeline}: {e}"))?;
    let stock_s = t.elapsed().as_secs_f64();
    if !st.success() {
        return Err(format!("{pipeline} failed ({st})"));
    }
    let stock_ok = checksum(dst)? == want;
    drop_bench(dst)?;
    println!();
    println!(
        "binlog replay into the target sandbox ({} {}), from the set's coordinates {start_file}:{start_pos}; loading the set alone: {load_s:.2} s",
        flavor.name(),
        dst.port
    );
    println!("| tool | seconds (set + replay) | table CHECKSUM equals the source |");
    println!("|---|---|---|");
    println!("| spyglass-admin backup restore SET --latest | {ours_s:.2} | {ours_ok} |");
    println!(
        "| restore SET, then {tool} FILES \\| {client} | {:.2} | {stock_ok} |",
        load_s + stock_s
    );
    println!(
        "ratio ours/stock (replay only): {:.2}x the time",
        (ours_s - load_s).max(0.0) / stock_s
    );
    if !ours_ok {
        return Err("our replay did not give the source's CHECKSUM".into());
    }
    Ok(())
}
