//! `cargo xtask bench cleanup [--files N]`: `spyglass-admin cleanup scan` on a
//! store of N files (default 1,000,000) tracked by N `~external_analysis` rows
//! over three `*_nwbfile` schemas, each file named by an `analysis_nwbfile`
//! row, plus 1% untracked files, in two shapes:
//!
//! - `referenced`: a downstream table per schema references 99% of the
//!   `analysis_nwbfile` rows (1% orphans), a second downstream table is empty;
//! - `orphaned`: the worst case, every `analysis_nwbfile` row orphaned (the
//!   populated downstream table's foreign key is dropped for this shape, so
//!   only the empty one is downstream).
//!
//! Each shape runs next to (a) `find STORE -type f | wc -l` plus the mariadb
//! client reading every `~external` row and the `analysis_nwbfile` names with
//! the downstream key columns, and (b, `referenced` only) Spyglass's approach
//! written as a Python baseline (rows through PyMySQL, DataJoint's driver;
//! rglob; set difference). One run, same warm caches, ratios and peak memory
//! printed.
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

const SCHEMAS: [&str; 3] = [
    "bench_cleanup_1_nwbfile",
    "bench_cleanup_2_nwbfile",
    "bench_cleanup_3_nwbfile",
];
/// The schema holding the downstream tables of `SCHEMAS[k]`.
fn downstream_schema(db: &str) -> String {
    format!("{}_v1", db.trim_end_matches("_nwbfile"))
}
/// Every `ORPHAN_EVERY`th `analysis_nwbfile` row is not referenced downstream (1%).
const ORPHAN_EVERY: usize = 100;
/// The foreign key the `orphaned` shape drops and `referenced` puts back.
const RESULT_FK: &str = "bench_result_fk";
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
    format!("sess_{:04}/{}", i % FOLDERS, name(i))
}

/// The `analysis_file_name` of file `i` (its file name, as Spyglass has it).
fn name(i: usize) -> String {
    format!("sess_{:04}_{i:07}.nwb", i % FOLDERS)
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
/// `analysis_nwbfile` row through DataJoint's foreign key, and 99% of those
/// referenced by a downstream table (`<schema>_v1.__result`; `__empty`
/// references nothing).
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
            .query_first(format!(
                "SELECT (SELECT COUNT(*) FROM `{db}`.`analysis_nwbfile`) \
                 + (SELECT COUNT(*) FROM `{}`.`__result`)",
                downstream_schema(db)
            ))
            .unwrap_or(None);
        have += n.unwrap_or(0);
    }
    let want = files
        + (0..files)
            .filter(|i| i % ORPHAN_EVERY != ORPHAN_EVERY / 2)
            .count();
    if have == want as u64 {
        eprintln!("xtask: reusing {files} rows in {}", SCHEMAS.join(", "));
        return Ok(());
    }
    eprintln!(
        "xtask: loading {files} ~external_analysis rows, {files} analysis_nwbfile rows and {} downstream rows",
        want - files
    );
    q(
        conn,
        "SET SESSION foreign_key_checks = 0, unique_checks = 0",
    )?;
    for old in ["bench_cleanup_1", "bench_cleanup_2", "bench_cleanup_3"] {
        q(conn, &format!("DROP DATABASE IF EXISTS `{old}`"))?;
    }
    for db in SCHEMAS {
        let down = downstream_schema(db);
        q(conn, &format!("DROP DATABASE IF EXISTS `{down}`"))?;
        q(conn, &format!("DROP DATABASE IF EXISTS `{db}`"))?;
        q(conn, &format!("CREATE DATABASE `{db}`"))?;
        q(conn, &format!("CREATE DATABASE `{down}`"))?;
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
        for (table, fk) in [("__result", RESULT_FK), ("__empty", "bench_empty_fk")] {
            q(conn, &format!(
                "CREATE TABLE `{down}`.`{table}` (result_id int NOT NULL, analysis_file_name varchar(64) NOT NULL, \
                 PRIMARY KEY (result_id), CONSTRAINT `{fk}` FOREIGN KEY (analysis_file_name) \
                 REFERENCES `{db}`.`analysis_nwbfile` (analysis_file_name) ON UPDATE CASCADE ON DELETE RESTRICT) \
                 ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            ))?;
        }
    }
    const BATCH: usize = 5000;
    for (si, db) in SCHEMAS.iter().enumerate() {
        let ids: Vec<usize> = (si..files).step_by(SCHEMAS.len()).collect();
        for chunk in ids.chunks(BATCH) {
            let mut ext =
                format!("INSERT INTO `{db}`.`~external_analysis` (hash, size, filepath) VALUES ");
            let mut refs = format!("INSERT INTO `{db}`.`analysis_nwbfile` VALUES ");
            let mut down = format!("INSERT INTO `{}`.`__result` VALUES ", downstream_schema(db));
            let mut first_down = true;
            for (n, &i) in chunk.iter().enumerate() {
                let h: String = hash(i).iter().map(|b| format!("{b:02x}")).collect();
                let sep = if n == 0 { "" } else { "," };
                let _ = write!(ext, "{sep}(X'{h}',0,'{}')", rel(i));
                let _ = write!(refs, "{sep}('{}',X'{h}')", name(i));
                if i % ORPHAN_EVERY != ORPHAN_EVERY / 2 {
                    let sep = if first_down { "" } else { "," };
                    first_down = false;
                    let _ = write!(down, "{sep}({i},'{}')", name(i));
                }
            }
            q(conn, &ext)?;
            q(conn, &refs)?;
            if !first_down {
                q(conn, &down)?;
            }
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
        .flat_map(|d| [format!("'{d}'"), format!("'{}'", downstream_schema(d))])
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
    let python = format!(
        "/usr/bin/python3 {} {} {} {} > /dev/null",
        py.display(),
        store.display(),
        s.port,
        SCHEMAS.join(" ")
    );
    let mut results = Vec::new();
    let mut report_rows = Vec::new();
    for shape in [Shape::Referenced, Shape::Orphaned] {
        set_shape(s, shape)?;
        let client = client_script(s, shape);
        eprintln!(
            "xtask: shape {}: warming caches (one run of each)",
            shape.label()
        );
        timed(&find, &dir, &[0])?;
        timed(&client, &dir, &[0])?;
        timed(&ours, &dir, &[0, 1])?;
        let mut o = Vec::new();
        let mut f = Vec::new();
        let mut c = Vec::new();
        for round in 1..=3 {
            eprintln!("xtask: shape {}: round {round}/3", shape.label());
            o.push(timed(&ours, &dir, &[0, 1])?);
            f.push(timed(&find, &dir, &[0])?);
            c.push(timed(&client, &dir, &[0])?);
        }
        if shape == Shape::Referenced {
            report_rows.push(report_cost(bin, &dir)?);
        }
        let p = if shape == Shape::Referenced {
            eprintln!("xtask: the Python baseline (rglob + set difference; takes a while)");
            Some(timed(&python, &dir, &[0])?)
        } else {
            None
        };
        results.push((shape, median(o), median(f), median(c), p));
    }
    // Leave the rows as a rerun expects them.
    set_shape(s, Shape::Referenced)?;

    println!(
        "\ncleanup scan: {files} files tracked by {files} ~external rows and {files} analysis_nwbfile rows \
         over 3 schemas, +{} untracked (median of 3; Python once)\n",
        files / 100
    );
    println!("| shape | tool | wall | peak memory | ours / reference | target |");
    println!("|---|---|---:|---:|---:|---|");
    let mark = |ok: bool| if ok { "ok" } else { "MISSED" };
    let mut verdicts = Vec::new();
    for (shape, o, f, c, p) in &results {
        let fc = f.secs + c.secs;
        let vs_ref = o.secs / fc;
        let l = shape.label();
        println!(
            "| {l} | `spyglass-admin cleanup scan --json` | {:.2} s | {:.0} MiB | {vs_ref:.2} | <= 0.6, <= 400 MB |",
            o.secs, o.peak_mib
        );
        println!(
            "| {l} | `find STORE -type f \\| wc -l` | {:.2} s | {:.0} MiB | | |",
            f.secs, f.peak_mib
        );
        println!(
            "| {l} | `mariadb -e` (every `~external` row; names and downstream keys) | {:.2} s | {:.0} MiB | | |",
            c.secs, c.peak_mib
        );
        println!("| {l} | reference: find + client | {fc:.2} s | | | |");
        if let Some(p) = p {
            println!(
                "| {l} | Python: PyMySQL fetch + rglob + set difference (Spyglass's way) | {:.2} s | {:.0} MiB | {:.3} | Python / ours >= 20 |",
                p.secs,
                p.peak_mib,
                o.secs / p.secs
            );
            verdicts.push(format!(
                "{l}: Python / ours = {:.1}x (target >= 20x: {})",
                p.secs / o.secs,
                mark(p.secs / o.secs >= 20.0)
            ));
        }
        verdicts.push(format!(
            "{l}: ours / (find + client) = {vs_ref:.2}x (target <= 0.6x: {}); peak {:.0} MiB (target <= 400 MB: {})",
            mark(vs_ref <= 0.6),
            o.peak_mib,
            mark(o.peak_mib * 1.048_576 <= 400.0)
        ));
    }
    for r in &report_rows {
        print_report_row(r, &results);
    }
    println!();
    for v in verdicts {
        println!("{v}");
    }
    println!("\nreproduce: cargo xtask bench cleanup --files {files}");
    Ok(())
}

/// Issue 16: what `report` costs on the same store (the cleanup scan's
/// inventory, plus the `~external` sizes and one `stat` per tracked file),
/// median of 3 after one warm run, in the 1% orphans shape; the page and
/// `--json` both written.
fn report_cost(bin: &Path, dir: &Path) -> Result<Measured, String> {
    let script = format!(
        "{} report --no-login-check --no-history --out {} --json > {}",
        bin.display(),
        dir.join("report.html").display(),
        dir.join("report.json").display()
    );
    eprintln!("xtask: report on the same store (warm run, then 3 rounds)");
    timed(&script, dir, &[0, 1])?;
    let mut r = Vec::new();
    for _ in 0..3 {
        r.push(timed(&script, dir, &[0, 1])?);
    }
    // Where the time went, from the last run's own account of each section.
    let json: serde_json::Value = std::fs::read(dir.join("report.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if let Some(o) = json.as_object() {
        let parts: Vec<String> = o
            .iter()
            .filter_map(|(k, v)| Some(format!("{k} {:.2} s", v.get("seconds")?.as_f64()?)))
            .collect();
        eprintln!("xtask: report sections (last run): {}", parts.join(", "));
    }
    Ok(median(r))
}

/// The report's row, next to the scan's of the same shape.
fn print_report_row(
    r: &Measured,
    results: &[(Shape, Measured, Measured, Measured, Option<Measured>)],
) {
    let scan = results
        .iter()
        .find(|x| x.0 == Shape::Referenced)
        .map(|x| x.1.secs);
    println!(
        "| {} | `spyglass-admin report --out F --json` (issue 16) | {:.2} s | {:.0} MiB | {} | |",
        Shape::Referenced.label(),
        r.secs,
        r.peak_mib,
        scan.map(|s| format!("{:.2} x scan", r.secs / s))
            .unwrap_or_default()
    );
}

/// The two row shapes the bench measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// 99% of the `analysis_nwbfile` rows referenced downstream.
    Referenced,
    /// None referenced: every `analysis_nwbfile` row is an orphan.
    Orphaned,
}

impl Shape {
    fn label(self) -> &'static str {
        match self {
            Shape::Referenced => "1% orphans",
            Shape::Orphaned => "all orphaned",
        }
    }
}

/// Puts the populated downstream tables' foreign key in place (`Referenced`)
/// or drops it (`Orphaned`: only the empty downstream tables remain).
fn set_shape(s: &Sandbox, shape: Shape) -> Result<(), String> {
    let mut session = s.connect()?;
    let conn = session.conn();
    conn.query_drop("SET SESSION foreign_key_checks = 0")
        .map_err(|e| e.to_string())?;
    for db in SCHEMAS {
        let down = downstream_schema(db);
        let has: Option<u64> = conn
            .query_first(format!(
                "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS \
                 WHERE constraint_schema = '{down}' AND constraint_name = '{RESULT_FK}'"
            ))
            .map_err(|e| e.to_string())?;
        let has = has.unwrap_or(0) > 0;
        let sql = match (shape, has) {
            (Shape::Referenced, false) => format!(
                "ALTER TABLE `{down}`.`__result` ADD CONSTRAINT `{RESULT_FK}` FOREIGN KEY (analysis_file_name) \
                 REFERENCES `{db}`.`analysis_nwbfile` (analysis_file_name) ON UPDATE CASCADE ON DELETE RESTRICT"
            ),
            (Shape::Orphaned, true) => {
                format!("ALTER TABLE `{down}`.`__result` DROP FOREIGN KEY `{RESULT_FK}`")
            }
            _ => continue,
        };
        conn.query_drop(&sql)
            .map_err(|e| format!("switching the bench to shape {}: {e}", shape.label()))?;
    }
    Ok(())
}

/// The stock client reading what the scan needs from the database: every
/// `~external` row, the `analysis_nwbfile` names and the key columns of the
/// tables downstream of them in this shape.
fn client_script(s: &Sandbox, shape: Shape) -> String {
    let mut selects: Vec<String> = Vec::new();
    for d in SCHEMAS {
        let down = downstream_schema(d);
        selects.push(format!(
            "SELECT hash, filepath FROM \\`{d}\\`.\\`~external_analysis\\`"
        ));
        selects.push(format!(
            "SELECT analysis_file_name FROM \\`{d}\\`.\\`analysis_nwbfile\\`"
        ));
        if shape == Shape::Referenced {
            selects.push(format!(
                "SELECT analysis_file_name FROM \\`{down}\\`.\\`__result\\`"
            ));
        }
        selects.push(format!(
            "SELECT analysis_file_name FROM \\`{down}\\`.\\`__empty\\`"
        ));
    }
    format!(
        "mariadb -h{} -P{} -u{} -N -B -e \"{}\" > /dev/null",
        s.host(),
        s.port,
        s.user(),
        selects.join("; ")
    )
}
