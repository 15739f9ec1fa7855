//! `cargo xtask bench backup [--blob-mb N] [--threads N]`: our backup and
//! restore next to mariadb-dump | pigz, mydumper -c, gunzip | mariadb and
//! myloader, on the same fixture on the same MariaDB sandbox, in one run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::sandbox::{self, Flavor, Instance, Sandbox};
use crate::util::{self, cargo, target_dir};

struct Measured {
    secs: f64,
    peak_kib: u64,
}

/// Runs `sh -c script` under /usr/bin/time, returning wall time and peak RSS of the tool.
fn measure(script: &str) -> Result<Measured, String> {
    let tf = target_dir().join("bench/time.out");
    let t = Instant::now();
    let status = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&tf)
        .arg("sh")
        .arg("-c")
        .arg(script)
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(target_dir().join("bench/stderr.log"))
                .map_err(|e| e.to_string())?,
        )
        .status()
        .map_err(|e| format!("cannot run /usr/bin/time: {e}"))?;
    let secs = t.elapsed().as_secs_f64();
    if !status.success() {
        let err = std::fs::read(target_dir().join("bench/stderr.log")).unwrap_or_default();
        let err = String::from_utf8_lossy(&err).replace('\0', "");
        let tail: Vec<&str> = err
            .lines()
            .filter(|l| !l.trim().is_empty())
            .rev()
            .take(5)
            .collect();
        return Err(format!(
            "benchmark step failed ({status}): {script}\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    let peak_kib = std::fs::read_to_string(&tf)
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0);
    Ok(Measured { secs, peak_kib })
}

fn ensure_tools() -> Result<(), String> {
    let mut missing = Vec::new();
    for (bin, pkg) in [
        ("mydumper", "mydumper"),
        ("myloader", "mydumper"),
        ("pigz", "pigz"),
        ("mariadb-dump", "mariadb-client"),
    ] {
        if util::which(bin).is_none() && !missing.contains(&pkg) {
            missing.push(pkg);
        }
    }
    if !Path::new("/usr/bin/time").is_file() {
        missing.push("time");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        util::apt_install(&missing, "the backup benchmark's reference tools")
    }
}

fn drop_all(t: &Sandbox, schemas: &[&str]) -> Result<(), String> {
    use spyglass_db::mysql::prelude::Queryable;
    let mut s = t.connect()?;
    s.conn()
        .query_drop("SET SESSION foreign_key_checks = 0")
        .map_err(|e| e.to_string())?;
    for d in schemas {
        s.conn()
            .query_drop(format!("DROP DATABASE IF EXISTS `{d}`"))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn du(p: &Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                n += du(&path);
            } else {
                n += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    n
}

pub fn cmd(args: &[String]) -> Result<(), String> {
    let blob_mb: u32 = util::opt_value(args, "--blob-mb")?
        .map(|v| v.parse().map_err(|_| "--blob-mb takes a number".to_owned()))
        .transpose()?
        .unwrap_or(1000);
    let threads: u32 = util::opt_value(args, "--threads")?
        .map(|v| v.parse().map_err(|_| "--threads takes a number".to_owned()))
        .transpose()?
        .unwrap_or(2);
    let only = util::opt_value(args, "--only")?;
    let (do_blob, do_many) = match only.as_deref() {
        None => (true, true),
        Some("blob") => (true, false),
        Some("many") => (false, true),
        Some(o) => return Err(format!("--only takes blob or many, not '{o}'")),
    };
    let num = |name: &str, default: usize| -> Result<usize, String> {
        util::opt_value(args, name)?
            .map(|v| v.parse().map_err(|_| format!("{name} takes a number")))
            .transpose()
            .map(|v| v.unwrap_or(default))
    };
    let many = spyglass_fixture::ManyOptions {
        seed: 1,
        prefix: "mt".into(),
        schemas: num("--many-schemas", 40)?,
        tables: num("--many-tables", 30)?,
        rows: num("--many-rows", 1500)?,
    };
    ensure_tools()?;
    eprintln!("xtask: building spyglass-admin (release)");
    util::run(cargo().args(["build", "--quiet", "--release", "-p", "spyglass-cli"]))?;
    let bin = target_dir().join("release/spyglass-admin");
    let backend = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "tree",
            "-q",
            "-p",
            "spyglass-backup",
            "-e",
            "features",
            "-i",
            "flate2",
        ])
        .current_dir(util::project_root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let backend = if backend.contains("zlib-rs") {
        "zlib-rs"
    } else if backend.contains("\"zlib\"") {
        "C zlib"
    } else {
        "miniz_oxide"
    };

    let src = sandbox::start(Flavor::Mariadb)?;
    let dst = sandbox::start(Instance::target(Flavor::Mariadb))?;
    let work = target_dir().join("bench/backup");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let tools = Tools {
        bin: &bin,
        src: &src,
        dst: &dst,
        src_cnf: cnf(&work, &src)?,
        dst_cnf: cnf(&work, &dst)?,
        threads,
    };
    if do_blob {
        blob_fixture(&tools, &work, blob_mb, backend)?;
    }
    if do_many {
        many_tables(&tools, &work, &many)?;
    }
    println!(
        "\nreproduce: cargo xtask bench backup --blob-mb {blob_mb} --threads {threads} --many-schemas {} --many-tables {} --many-rows {}{}",
        many.schemas,
        many.tables,
        many.rows,
        only.map(|o| format!(" --only {o}")).unwrap_or_default()
    );
    Ok(())
}

/// The binary, the two servers and their client option files.
struct Tools<'a> {
    bin: &'a Path,
    src: &'a Sandbox,
    dst: &'a Sandbox,
    src_cnf: PathBuf,
    dst_cnf: PathBuf,
    threads: u32,
}

impl Tools<'_> {
    fn env(&self, s: &Sandbox) -> String {
        format!("DJ_HOST=127.0.0.1 DJ_PORT={} DJ_USER=root DJ_PASS=", s.port)
    }
}

fn cnf(work: &Path, s: &Sandbox) -> Result<PathBuf, String> {
    let p = work.join(format!("{}.cnf", s.inst.name()));
    std::fs::write(
        &p,
        format!(
            "[client]\nhost=127.0.0.1\nport={}\nuser=root\npassword=\n",
            s.port
        ),
    )
    .map_err(|e| e.to_string())?;
    Ok(p)
}

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

fn row(step: &str, tool: &str, m: &Measured, out: Option<u64>, ratio: Option<(f64, &str)>) {
    println!(
        "| {step} | {tool} | {:.1} | {:.0} | {} | {} | {} |",
        m.secs,
        m.peak_kib as f64 / 1024.0,
        out.map(|b| format!("{:.0}", mib(b)))
            .unwrap_or_else(|| "-".into()),
        ratio
            .map(|(r, _)| format!("{r:.2}"))
            .unwrap_or_else(|| "-".into()),
        ratio.map(|(_, t)| t).unwrap_or("")
    );
}

/// The only set directory under `dest`.
fn the_set(dest: &Path) -> Result<PathBuf, String> {
    std::fs::read_dir(dest)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .next()
        .ok_or_else(|| format!("no set written under {}", dest.display()))
}

/// Rows of every base table in `schemas`, counted on the server.
fn count_rows(s: &Sandbox, schemas: &[String]) -> Result<u64, String> {
    use spyglass_db::mysql::prelude::Queryable;
    let mut sess = s.connect()?;
    let c = sess.conn();
    let mut n = 0u64;
    for db in schemas {
        let tables: Vec<String> = c
            .query(format!(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = '{db}' AND table_type = 'BASE TABLE'"
            ))
            .map_err(|e| e.to_string())?;
        for t in tables {
            let k: Option<u64> = c
                .query_first(format!("SELECT COUNT(*) FROM `{db}`.`{t}`"))
                .map_err(|e| e.to_string())?;
            n += k.unwrap_or(0);
        }
    }
    Ok(n)
}

/// Backup and restore of many small DataJoint-shaped tables: ours against
/// mydumper -c and myloader, each restore's rows counted on the target.
fn many_tables(t: &Tools, work: &Path, opts: &spyglass_fixture::ManyOptions) -> Result<(), String> {
    let threads = t.threads;
    eprintln!(
        "xtask: many-table fixture: {} schemas x {} tables x {} rows",
        opts.schemas, opts.tables, opts.rows
    );
    let started = Instant::now();
    let mut sess = t.src.connect()?;
    let built = spyglass_fixture::create_many(&mut sess, opts).map_err(|e| {
        let mut m = e.to_string();
        if let Some(src) = std::error::Error::source(&e) {
            m.push_str(&format!(": {src}"));
        }
        m
    })?;
    drop(sess);
    eprintln!(
        "xtask: many-table fixture ready in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    let schemas = built.schemas.join(",");
    let names: Vec<&str> = built.schemas.iter().map(String::as_str).collect();
    let _ = Command::new("sync").status();
    let dest = work.join("many-ours");
    let ours = measure(&format!(
        "{} {} backup run -q --dest {} --threads {threads} --no-accounts --schemas {schemas}",
        t.env(t.src),
        t.bin.display(),
        dest.display(),
    ))?;
    let set = the_set(&dest)?;
    let ours_bytes = du(&set);
    let myd_dir = work.join("many-mydumper");
    let myd = measure(&format!(
        "mydumper --defaults-file={} -t {threads} -c --regex '^{}[0-9]+_' -o {}",
        t.src_cnf.display(),
        opts.prefix,
        myd_dir.display()
    ))?;
    let myd_bytes = du(&myd_dir);
    drop_all(t.dst, &names)?;
    let ours_r = measure(&format!(
        "{} {} backup restore -q --threads {threads} {}",
        t.env(t.dst),
        t.bin.display(),
        set.display()
    ))?;
    let ours_rows = count_rows(t.dst, &built.schemas)?;
    drop_all(t.dst, &names)?;
    let myl = measure(&format!(
        "myloader --defaults-file={} -t {threads} -o -d {}",
        t.dst_cnf.display(),
        myd_dir.display()
    ))?;
    let myl_rows = count_rows(t.dst, &built.schemas)?;
    drop_all(t.dst, &names)?;
    let floor = server_floor(t, work, &set, &built.schemas)?;
    let floor_rows = count_rows(t.dst, &built.schemas)?;
    drop_all(t.dst, &names)?;
    if floor_rows != built.rows {
        return Err(format!(
            "the LOAD DATA floor loaded {floor_rows} rows, not the fixture's {}",
            built.rows
        ));
    }
    if ours_rows != built.rows || myl_rows != built.rows {
        return Err(format!(
            "restored row counts differ from the fixture's {}: ours {ours_rows}, myloader {myl_rows}",
            built.rows
        ));
    }
    println!(
        "\nmany-table benchmark: MariaDB sandbox, {} schemas x {} tables ({} tables, {} rows, DataJoint foreign keys), {threads} threads; every restore's rows counted on the target",
        opts.schemas, opts.tables, built.tables, built.rows
    );
    println!("| step | tool | wall s | peak RSS MiB | output MiB | ours / tool | target |");
    println!("|---|---|---:|---:|---:|---:|---|");
    row(
        "backup",
        "spyglass-admin backup run",
        &ours,
        Some(ours_bytes),
        None,
    );
    row(
        "backup",
        &format!("mydumper -t {threads} -c"),
        &myd,
        Some(myd_bytes),
        Some((ours.secs / myd.secs, "<= 0.4")),
    );
    row(
        "restore",
        "spyglass-admin backup restore",
        &ours_r,
        None,
        None,
    );
    row(
        "restore",
        &format!("myloader -t {threads}"),
        &myl,
        None,
        Some((ours_r.secs / myl.secs, "<= 0.6")),
    );
    row(
        "restore",
        &format!("server floor: our schema files, then LOAD DATA INFILE of ready tab-separated files, {threads} clients"),
        &floor,
        None,
        Some((floor.secs / myl.secs, "the least any client can reach")),
    );
    Ok(())
}

/// What the server itself needs to take the set in: the schema files run by
/// `threads` mariadb clients in parallel, then every table's rows from a
/// tab-separated file the source server wrote beforehand (untimed), loaded
/// with server-side `LOAD DATA INFILE` (no client parsing, no network), one
/// transaction per table, by `threads` clients. No client restores faster
/// than this on the same server.
fn server_floor(
    t: &Tools,
    work: &Path,
    set: &Path,
    schemas: &[String],
) -> Result<Measured, String> {
    use spyglass_db::mysql::prelude::Queryable;
    let tsv = work.join("floor-tsv");
    let _ = std::fs::remove_dir_all(&tsv);
    std::fs::create_dir_all(&tsv).map_err(|e| e.to_string())?;
    let mut sess = t.src.connect()?;
    let c = sess.conn();
    let mut loads: Vec<String> = Vec::new();
    for db in schemas {
        let tables: Vec<String> = c
            .query(format!(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = '{db}' AND table_type = 'BASE TABLE'"
            ))
            .map_err(|e| e.to_string())?;
        for (i, tb) in tables.iter().enumerate() {
            let file = tsv.join(format!("{db}.{i}.tsv"));
            let q = format!("`{db}`.`{}`", tb.replace('`', "``"));
            // Generated columns are computed, not loaded.
            let cols: Vec<String> = c
                .exec(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? AND extra NOT LIKE '%GENERATED%' ORDER BY ordinal_position",
                    (db, tb),
                )
                .map_err(|e| e.to_string())?;
            let cols = cols
                .iter()
                .map(|c| format!("`{}`", c.replace('`', "``")))
                .collect::<Vec<_>>()
                .join(",");
            c.query_drop(format!(
                "SELECT {cols} FROM {q} INTO OUTFILE '{}' CHARACTER SET binary",
                file.display()
            ))
            .map_err(|e| format!("exporting {q}: {e}"))?;
            loads.push(format!(
                "START TRANSACTION; LOAD DATA INFILE '{}' INTO TABLE {q} CHARACTER SET binary ({cols}); COMMIT;",
                file.display()
            ));
        }
    }
    drop(sess);
    let threads = t.threads.max(1) as usize;
    let mut scripts = Vec::new();
    for k in 0..threads {
        let p = tsv.join(format!("load-{k}.sql"));
        let mine: Vec<&str> = loads
            .iter()
            .skip(k)
            .step_by(threads)
            .map(String::as_str)
            .collect();
        std::fs::write(&p, mine.join("\n")).map_err(|e| e.to_string())?;
        scripts.push(p);
    }
    let client = format!(
        "mariadb --defaults-extra-file={} --init-command='SET sql_log_bin = 0, foreign_key_checks = 0, unique_checks = 0'",
        t.dst_cnf.display()
    );
    // `threads` jobs in the background, then wait for each: any failure fails the step.
    let parallel = |jobs: Vec<String>| -> String {
        let start: Vec<String> = jobs
            .iter()
            .enumerate()
            .map(|(k, j)| format!("( {j} ) & p{k}=$!;"))
            .collect();
        let wait: Vec<String> = (0..jobs.len()).map(|k| format!("wait $p{k}")).collect();
        format!("{} {} || exit 1", start.join(" "), wait.join(" && "))
    };
    let ddl = parallel(
        (0..threads)
            .map(|k| {
                format!(
                    "ls {}/1-schema/* | awk 'NR % {threads} == {k}' | xargs cat | gunzip -c | {client}",
                    set.display()
                )
            })
            .collect(),
    );
    let rows = parallel(
        scripts
            .iter()
            .map(|p| format!("{client} < {}", p.display()))
            .collect(),
    );
    measure(&format!("{ddl}; {rows}"))
}

/// The 1 GB Spyglass-shaped fixture: ours against mariadb-dump | pigz,
/// mydumper -c, gunzip | mariadb and myloader.
fn blob_fixture(t: &Tools, work: &Path, blob_mb: u32, backend: &str) -> Result<(), String> {
    let (bin, src, dst, threads) = (t.bin, t.src, t.dst, t.threads);
    let (src_cnf, dst_cnf) = (&t.src_cnf, &t.dst_cnf);
    let env = |s: &Sandbox| t.env(s);
    eprintln!("xtask: fixture with {blob_mb} MB of longblob (this takes a while)");
    let started = Instant::now();
    let summary = sandbox::fixture(src, &work.join("fixture"), blob_mb, 1)?;
    eprintln!(
        "xtask: fixture ready in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    let schemas: Vec<&str> = spyglass_fixture::SCHEMAS.to_vec();
    {
        // mydumper 0.10 cannot dump a table whose name holds a backtick (ours can;
        // the server tests prove it). Drop it so every tool dumps the same data.
        use spyglass_db::mysql::prelude::Queryable;
        let mut s = src.connect()?;
        s.conn()
            .query_drop("DROP TABLE `bob_analysis`.`back``tick`")
            .map_err(|e| e.to_string())?;
    }
    let regex = format!("^({})\\.", schemas.join("|"));
    let _ = Command::new("sync").status();

    // Backups.
    let ours_dest = work.join("ours");
    let ours = measure(&format!(
        "{} {} backup run -q --dest {} --threads {threads} --no-accounts --schemas {}",
        env(src),
        bin.display(),
        ours_dest.display(),
        schemas.join(",")
    ))?;
    let l2_dest = work.join("ours-level2");
    let ours_l2 =
        measure(&format!(
        "{} {} backup run -q --dest {} --threads {threads} --no-accounts --level 2 --schemas {}",
        env(src), bin.display(), l2_dest.display(), schemas.join(",")
    ))?;
    let l2_bytes = du(&l2_dest);
    let zstd_dest = work.join("ours-zstd");
    let ours_zstd = measure(&format!(
        "{} {} backup run -q --dest {} --threads {threads} --no-accounts --compress zstd --schemas {}",
        env(src), bin.display(), zstd_dest.display(), schemas.join(",")
    ))?;
    let zstd_bytes = du(&zstd_dest);
    let set = the_set(&ours_dest)?;
    let ours_bytes = du(&set);
    let pigz_file = work.join("dump.sql.gz");
    let pigz = measure(&format!(
        "mariadb-dump --defaults-extra-file={} --single-transaction --max-allowed-packet=1G --databases {} | pigz -p {threads} > {}",
        src_cnf.display(), schemas.join(" "), pigz_file.display()
    ))?;
    let pigz_bytes = std::fs::metadata(&pigz_file).map(|m| m.len()).unwrap_or(0);
    let myd_dir = work.join("mydumper");
    let myd = measure(&format!(
        "mydumper --defaults-file={} -t {threads} -c --regex '{regex}' -o {}",
        src_cnf.display(),
        myd_dir.display()
    ))?;
    let myd_bytes = du(&myd_dir);
    // The same dump, gzip -6: our SQL recompressed at mysqldump-pipeline's usual level.
    let g6 = work.join("ours-gzip6.gz");
    util::run(Command::new("sh").arg("-c").arg(format!(
        "find {} -name '*.sql.gz' | sort | xargs cat | gunzip -c | gzip -6 > {}",
        set.display(),
        g6.display()
    )))?;
    let g6_bytes = std::fs::metadata(&g6).map(|m| m.len()).unwrap_or(0);

    // Restores into the empty target server.
    drop_all(dst, &schemas)?;
    let ours_r = measure(&format!(
        "{} {} backup restore -q --threads {threads} {}",
        env(dst),
        bin.display(),
        set.display()
    ))?;
    drop_all(dst, &schemas)?;
    let gun = measure(&format!(
        "gunzip -c {} | mariadb --defaults-extra-file={} --max-allowed-packet=1G",
        pigz_file.display(),
        dst_cnf.display()
    ))?;
    drop_all(dst, &schemas)?;
    let myl = measure(&format!(
        "myloader --defaults-file={} -t {threads} -o -d {}",
        dst_cnf.display(),
        myd_dir.display()
    ))?;
    drop_all(dst, &schemas)?;
    let owned: Vec<String> = schemas.iter().map(|s| s.to_string()).collect();
    let floor = server_floor(t, work, &set, &owned)?;
    drop_all(dst, &schemas)?;

    println!("\nbackup benchmark: MariaDB sandbox, fixture --blob-mb {blob_mb} ({:.0} MiB of longblob), {threads} threads, gzip written by libdeflate, read by flate2 on {backend}", mib(summary.blob_bytes));
    println!("| step | tool | wall s | peak RSS MiB | output MiB | ours / tool | target |");
    println!("|---|---|---:|---:|---:|---:|---|");
    row(
        "backup",
        "spyglass-admin backup run (default: gzip, BLOB tables -2, others -6)",
        &ours,
        Some(ours_bytes),
        None,
    );
    row(
        "backup",
        "spyglass-admin backup run --level 2 (every file)",
        &ours_l2,
        Some(l2_bytes),
        None,
    );
    row(
        "backup",
        "spyglass-admin backup run --compress zstd (-3)",
        &ours_zstd,
        Some(zstd_bytes),
        None,
    );
    row(
        "backup",
        &format!("mariadb-dump --single-transaction | pigz -p {threads}"),
        &pigz,
        Some(pigz_bytes),
        Some((ours.secs / pigz.secs, "<= 0.3")),
    );
    println!(
        "| size | ours / mariadb-dump \\| pigz | - | - | - | {:.2} | <= 1.00 |",
        ours_bytes as f64 / pigz_bytes.max(1) as f64
    );
    row(
        "backup",
        &format!("mydumper -t {threads} -c"),
        &myd,
        Some(myd_bytes),
        Some((ours.secs / myd.secs, "<= 0.4")),
    );
    println!(
        "| size | our SQL through gzip -6 | - | - | {:.0} | {:.2} | <= 1.10 |",
        mib(g6_bytes),
        ours_bytes as f64 / g6_bytes.max(1) as f64
    );
    row(
        "restore",
        "spyglass-admin backup restore",
        &ours_r,
        None,
        None,
    );
    row(
        "restore",
        "gunzip -c | mariadb",
        &gun,
        None,
        Some((ours_r.secs / gun.secs, "<= 0.5")),
    );
    row(
        "restore",
        &format!("myloader -t {threads}"),
        &myl,
        None,
        Some((ours_r.secs / myl.secs, "<= 0.6")),
    );
    row(
        "restore",
        &format!("server floor: our schema files, then LOAD DATA INFILE of ready tab-separated files, {threads} clients"),
        &floor,
        None,
        Some((floor.secs / myl.secs, "the least any client can reach")),
    );
    Ok(())
}
