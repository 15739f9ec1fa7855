//! `cargo xtask bench cleanup [--files N]`: `spyglass-admin cleanup scan` on a
//! store of N files (default 1,000,000) tracked by N `~external_analysis` rows
//! over three schemas, plus 1% untracked files, next to (a) `find STORE -type f
//! | wc -l` plus fetching the rows with the mariadb client, and (b) Spyglass's
//! approach written as a Python baseline (rows through PyMySQL, DataJoint's
//! driver; rglob; set difference). One run,
//! same warm caches, ratios and peak memory printed.
//!
//! The tree and the rows are kept under `target/bench/cleanup/` and in the
//! sandbox between runs when their counts still match.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use spyglass_db::mysql::prelude::Queryable;

use crate::sandbox::{self, Flavor, Sandbox};
use crate::util::{self, cargo, target_dir};

const SCHEMAS: [&str; 3] = ["bench_cleanup_1", "bench_cleanup_2", "bench_cleanup_3"];
const FOLDERS: usize = 1000;

/// Spyglass's way, as labs run it today: the tracked paths fetched through
/// DataJoint's driver (PyMySQL, what `Table.fetch` uses), every file under the
/// analysis directory listed with `rglob`, and the difference taken as Python
/// sets.
const PYTHON_BASELINE: &str = r#"
import sys
from pathlib import Path
import pymysql
store, port = Path(sys.argv[1]), int(sys.argv[2])
conn = pymysql.connect(host="127.0.0.1", port=port, user="root", password="")
tracked = set()
with conn.cursor() as cur:
    for schema in sys.argv[3:]:
        cur.execute("SELECT hash, filepath FROM `%s`.`~external_analysis`" % schema)
        tracked.update(str(store / fp) for _, fp in cur.fetchall())
on_disk = {str(p) for p in store.rglob("*") if p.is_file()}
untracked = on_disk - tracked
print(len(untracked))
"#;

struct Measured {
    secs: f64,
    peak_mib: f64,
}

/// Wall time and peak RSS (GNU time `%M`) of `sh -c script`; exit codes in `ok` count as success.
fn timed(script: &str, cwd: &Path, ok: &[i32]) -> Result<Measured, String> {
    let out_file = target_dir().join("bench/cleanup/time.out");
    let started = Instant::now();
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&out_file)
        .args(["sh", "-c", script])
        .current_dir(cwd)
        .env("DJ_PASS", "")
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run /usr/bin/time: {e}"))?;
    let secs = started.elapsed().as_secs_f64();
    if !status.code().is_some_and(|c| ok.contains(&c)) {
        return Err(format!("bench step failed ({status}): {script}"));
    }
    let kib: f64 = std::fs::read_to_string(&out_file)
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0.0);
    Ok(Measured {
        secs,
        peak_mib: kib / 1024.0,
    })
}

fn median(mut v: Vec<Measured>) -> Measured {
    v.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    let m = v.len() / 2;
    v.swap_remove(m)
}

fn hash(i: usize) -> [u8; 16] {
    // An odd multiplier is a bijection mod 2^128: distinct, scattered hashes.
    ((i as u128 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)).to_be_bytes()
}

fn rel(i: usize) -> String {
    format!("sess_{:04}/sess_{:04}_{i:07}.nwb", i % FOLDERS, i % FOLDERS)
}

/// Creates the tree: `files` empty tracked files and 1% untracked files of
/// 64 bytes dated three days back, over 1000 session folders.
fn build_tree(store: &Path, files: usize) -> Result<(), String> {
    let marker = store.join(format!(".bench-complete-{files}"));
    if marker.is_file() {
        eprintln!("xtask: reusing the tree in {}", store.display());
        return Ok(());
    }
    if store.exists() {
        std::fs::remove_dir_all(store)
            .map_err(|e| format!("cannot clear {}: {e}", store.display()))?;
    }
    eprintln!(
        "xtask: creating {files} tracked + {} untracked files in {}",
        files / 100,
        store.display()
    );
    for k in 0..FOLDERS {
        let d = store.join(format!("sess_{k:04}"));
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let old = SystemTime::now() - Duration::from_secs(3 * 86400);
    let threads = 2;
    std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                sc.spawn(move || -> Result<(), String> {
                    let mut i = t;
                    while i < files {
                        let p = store.join(rel(i));
                        std::fs::File::create(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                        i += threads;
                    }
                    let mut j = t;
                    while j < files / 100 {
                        let p = store.join(format!("sess_{:04}/untracked_{j:06}.nwb", j % FOLDERS));
                        std::fs::write(&p, [7u8; 64])
                            .map_err(|e| format!("{}: {e}", p.display()))?;
                        let f = std::fs::OpenOptions::new()
                            .write(true)
                            .open(&p)
                            .map_err(|e| e.to_string())?;
                        f.set_modified(old).map_err(|e| e.to_string())?;
                        j += threads;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("file creator panicked".into()))
            })
            .collect::<Result<Vec<()>, String>>()
    })?;
    std::fs::write(&marker, b"").map_err(|e| e.to_string())
}

/// Loads `files` rows over three schemas, each row referenced by an
/// `analysis_nwbfile` row through DataJoint's foreign key.
fn load_rows(s: &Sandbox, files: usize) -> Result<(), String> {
    let mut session = s.connect()?;
    let conn = session.conn();
    let q = |conn: &mut spyglass_db::mysql::Conn, sql: &str| {
        conn.query_drop(sql)
            .map_err(|e| format!("{e}: {}", &sql[..sql.len().min(200)]))
    };
    let mut have = 0u64;
    for db in SCHEMAS {
        let n: Option<u64> = conn
            .query_first(format!("SELECT COUNT(*) FROM `{db}`.`analysis_nwbfile`"))
            .unwrap_or(None);
        have += n.unwrap_or(0);
    }
    if have == files as u64 {
        eprintln!("xtask: reusing {files} rows in {}", SCHEMAS.join(", "));
        return Ok(());
    }
    eprintln!("xtask: loading {files} ~external_analysis rows and {files} referencing rows");
    q(
        conn,
        "SET SESSION foreign_key_checks = 0, unique_checks = 0",
    )?;
    for db in SCHEMAS {
        q(conn, &format!("DROP DATABASE IF EXISTS `{db}`"))?;
        q(conn, &format!("CREATE DATABASE `{db}`"))?;
        q(conn, &format!(
            "CREATE TABLE `{db}`.`~external_analysis` (hash binary(16) NOT NULL, size bigint unsigned NOT NULL, \
             attachment_name varchar(255) DEFAULT NULL, filepath varchar(1000) DEFAULT NULL, contents_hash binary(16) DEFAULT NULL, \
             timestamp timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (hash)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        ))?;
        q(conn, &format!(
            "CREATE TABLE `{db}`.`analysis_nwbfile` (analysis_file_name varchar(64) NOT NULL, analysis_file_abs_path binary(16) NOT NULL, \
             PRIMARY KEY (analysis_file_name), FOREIGN KEY (analysis_file_abs_path) REFERENCES `{db}`.`~external_analysis` (hash) \
             ON UPDATE RESTRICT ON DELETE RESTRICT) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        ))?;
    }
    const BATCH: usize = 5000;
    for (si, db) in SCHEMAS.iter().enumerate() {
        let ids: Vec<usize> = (si..files).step_by(SCHEMAS.len()).collect();
        for chunk in ids.chunks(BATCH) {
            let mut ext =
                format!("INSERT INTO `{db}`.`~external_analysis` (hash, size, filepath) VALUES ");
            let mut refs = format!("INSERT INTO `{db}`.`analysis_nwbfile` VALUES ");
            for (n, &i) in chunk.iter().enumerate() {
                let h: String = hash(i).iter().map(|b| format!("{b:02x}")).collect();
                let sep = if n == 0 { "" } else { "," };
                let _ = write!(ext, "{sep}(X'{h}',0,'{}')", rel(i));
                let _ = write!(refs, "{sep}('f{i}',X'{h}')");
            }
            q(conn, &ext)?;
            q(conn, &refs)?;
        }
    }
    Ok(())
}

/// Grows the sandbox's InnoDB buffer pool (128 MiB by default) to hold the
/// bench tables, as a production server holding them would be sized. With
/// the default, every reader (ours, the client, PyMySQL) rereads pages
/// through InnoDB's page cache misses, and concurrent readers serialize.
fn size_buffer_pool(s: &Sandbox) -> Result<(), String> {
    let mut session = s.connect()?;
    let conn = session.conn();
    let list = SCHEMAS
        .iter()
        .map(|d| format!("'{d}'"))
        .collect::<Vec<_>>()
        .join(",");
    let bytes: Option<u64> = conn
        .query_first(format!(
            "SELECT CAST(SUM(data_length + index_length) AS UNSIGNED) FROM information_schema.TABLES WHERE table_schema IN ({list})"
        ))
        .map_err(|e| format!("sizing the bench tables: {e}"))?;
    // Statistics lag right after the load: never less than 1 GiB.
    let want = (bytes.unwrap_or(0) * 2).div_ceil(256 << 20).max(4) * (256 << 20);
    let have: Option<u64> = conn
        .query_first("SELECT @@innodb_buffer_pool_size")
        .map_err(|e| e.to_string())?;
    if have.unwrap_or(0) >= want {
        return Ok(());
    }
    eprintln!(
        "xtask: innodb_buffer_pool_size {} MiB -> {} MiB (at least twice the bench tables)",
        have.unwrap_or(0) >> 20,
        want >> 20
    );
    conn.query_drop(format!("SET GLOBAL innodb_buffer_pool_size = {want}"))
        .map_err(|e| format!("growing the buffer pool: {e}"))?;
    // The resize runs in the background; wait for the new size to be in use.
    for _ in 0..100 {
        let status: Option<(String, String)> = conn
            .query_first("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_resize_status'")
            .map_err(|e| e.to_string())?;
        let done = status
            .is_none_or(|(_, v)| v.is_empty() || v.contains("Complete") || v.contains("complete"));
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn ensure_tools() -> Result<(), String> {
    let mut missing = Vec::new();
    if !Path::new("/usr/bin/time").is_file() {
        missing.push("time");
    }
    if util::which("mariadb").is_none() {
        missing.push("mariadb-client");
    }
    // Debian's python3 with Debian's PyMySQL (DataJoint's driver) for the baseline.
    let pymysql = Command::new("/usr/bin/python3")
        .args(["-c", "import pymysql"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !pymysql {
        missing.push("python3");
        missing.push("python3-pymysql");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        util::apt_install(&missing, "the cleanup benchmark")
    }
}

pub fn cmd(args: &[String]) -> Result<(), String> {
    let files: usize = util::opt_value(args, "--files")?
        .map(|v| {
            v.parse()
                .map_err(|_| format!("--files '{v}' is not a number"))
        })
        .transpose()?
        .unwrap_or(1_000_000);
    ensure_tools()?;
    eprintln!("xtask: building spyglass-admin (release)");
    util::run(cargo().args(["build", "--quiet", "--release", "-p", "spyglass-cli"]))?;
    let bin = target_dir().join("release/spyglass-admin");
    let started_here = sandbox::running(Flavor::Mariadb).is_none();
    let s = match sandbox::running(Flavor::Mariadb) {
        Some(s) => s,
        None => sandbox::start(Flavor::Mariadb)?,
    };
    let result = run(&s, files, &bin);
    if started_here {
        sandbox::stop(Flavor::Mariadb)?;
    }
    result
}

fn run(s: &Sandbox, files: usize, bin: &Path) -> Result<(), String> {
    let dir = target_dir().join("bench/cleanup");
    let base = dir.join("spyglass");
    let store = base.join("analysis");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    build_tree(&store, files)?;
    load_rows(s, files)?;
    size_buffer_pool(s)?;
    let cfg = format!(
        "{{\"database.host\": \"{}\", \"database.port\": {}, \"database.user\": \"{}\",\n \
         \"stores\": {{\"analysis\": {{\"protocol\": \"file\", \"location\": \"{}\"}}}},\n \
         \"custom\": {{\"spyglass_dirs\": {{\"base\": \"{}\"}}}}}}\n",
        s.host(),
        s.port,
        s.user(),
        store.display(),
        base.display()
    );
    std::fs::write(dir.join("dj_local_conf.json"), cfg).map_err(|e| e.to_string())?;
    let py = dir.join("spyglass_baseline.py");
    std::fs::write(&py, PYTHON_BASELINE).map_err(|e| e.to_string())?;

    let ours = format!("{} cleanup scan --json > /dev/null", bin.display());
    let find = format!("find {} -type f | wc -l > /dev/null", store.display());
    let selects: Vec<String> = SCHEMAS
        .iter()
        .map(|d| format!("SELECT hash, filepath FROM \\`{d}\\`.\\`~external_analysis\\`"))
        .collect();
    let client = format!(
        "mariadb -h{} -P{} -u{} -N -B -e \"{}\" > /dev/null",
        s.host(),
        s.port,
        s.user(),
        selects.join("; ")
    );
    let python = format!(
        "/usr/bin/python3 {} {} {} {} > /dev/null",
        py.display(),
        store.display(),
        s.port,
        SCHEMAS.join(" ")
    );

    eprintln!("xtask: warming caches (one run of each)");
    timed(&find, &dir, &[0])?;
    timed(&client, &dir, &[0])?;
    timed(&ours, &dir, &[0, 1])?;
    let mut o = Vec::new();
    let mut f = Vec::new();
    let mut c = Vec::new();
    for round in 1..=3 {
        eprintln!("xtask: round {round}/3");
        o.push(timed(&ours, &dir, &[0, 1])?);
        f.push(timed(&find, &dir, &[0])?);
        c.push(timed(&client, &dir, &[0])?);
    }
    eprintln!("xtask: the Python baseline (rglob + set difference; takes a while)");
    let p = timed(&python, &dir, &[0])?;
    let (o, f, c) = (median(o), median(f), median(c));
    let fc = f.secs + c.secs;
    let vs_ref = o.secs / fc;
    let vs_py = p.secs / o.secs;
    println!("\ncleanup scan: {files} files tracked by {files} rows over 3 schemas, +{} untracked (median of 3; Python once)\n", files / 100);
    println!("| tool | wall | peak memory |");
    println!("|---|---:|---:|");
    println!(
        "| `spyglass-admin cleanup scan --json` | {:.2} s | {:.0} MiB |",
        o.secs, o.peak_mib
    );
    println!(
        "| `find STORE -type f \\| wc -l` | {:.2} s | {:.0} MiB |",
        f.secs, f.peak_mib
    );
    println!(
        "| `mariadb -e 'SELECT hash, filepath ...'` (3 tables) | {:.2} s | {:.0} MiB |",
        c.secs, c.peak_mib
    );
    println!("| find + client | {fc:.2} s | |");
    println!(
        "| Python: PyMySQL fetch + rglob + set difference (Spyglass's way) | {:.2} s | {:.0} MiB |",
        p.secs, p.peak_mib
    );
    println!();
    let mark = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!(
        "ours / (find + client) = {vs_ref:.2}x   (target <= 1.5x: {})",
        mark(vs_ref <= 1.5)
    );
    println!(
        "Python / ours          = {vs_py:.1}x   (target >= 20x: {})",
        mark(vs_py >= 20.0)
    );
    println!(
        "our peak memory        = {:.0} MiB (target <= 400 MB: {})",
        o.peak_mib,
        mark(o.peak_mib * 1.048_576 <= 400.0)
    );
    Ok(())
}
