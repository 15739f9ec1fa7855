//! `cargo xtask bench ship [--blob-mb N] [--parallel N]`: upload of the
//! fixture's set to a 3-node Garage cluster on this machine by ours and by
//! `rclone copy` with the same parallelism and part size; restore from the
//! store against download-then-restore; `backup run --dest s3://` against a
//! local backup plus rclone. Credentials reach both tools through their
//! environment only.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::garage::Cluster;
use crate::sandbox::{self, Flavor, Instance};
use crate::util::{self, cargo, target_dir};

/// Runs `cmd` (env set by the caller), returning its wall time.
fn timed(what: &str, cmd: &mut Command) -> Result<f64, String> {
    let t = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(t.elapsed().as_secs_f64())
}

fn rclone(g: &Cluster, parallel: u32, part_mb: u32) -> Command {
    let mut c = Command::new("rclone");
    c.env_remove("AWS_CA_BUNDLE")
        .env("RCLONE_CONFIG_G_TYPE", "s3")
        .env("RCLONE_CONFIG_G_PROVIDER", "Other")
        .env("RCLONE_CONFIG_G_ENDPOINT", &g.endpoints()[0])
        .env("RCLONE_CONFIG_G_REGION", crate::garage::REGION)
        .env("RCLONE_CONFIG_G_ACCESS_KEY_ID", &g.key_id)
        .env("RCLONE_CONFIG_G_SECRET_ACCESS_KEY", g.secret())
        .env("RCLONE_CONFIG_G_FORCE_PATH_STYLE", "true")
        .args([
            "--transfers",
            &parallel.to_string(),
            "--s3-upload-concurrency",
            &parallel.to_string(),
            "--s3-chunk-size",
            &format!("{part_mb}M"),
            "--s3-upload-cutoff",
            &format!("{part_mb}M"),
        ]);
    c
}

fn du(p: &Path) -> u64 {
    let out = Command::new("du").arg("-sb").arg(p).output();
    out.ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

pub fn cmd(args: &[String]) -> Result<(), String> {
    let blob_mb: u32 = util::opt_value(args, "--blob-mb")?
        .map(|v| v.parse().map_err(|_| "--blob-mb takes a number".to_owned()))
        .transpose()?
        .unwrap_or(1000);
    let parallel: u32 = util::opt_value(args, "--parallel")?
        .map(|v| {
            v.parse()
                .map_err(|_| "--parallel takes a number".to_owned())
        })
        .transpose()?
        .unwrap_or(4);
    let part_mb = 16;
    eprintln!("xtask: building spyglass-admin (release)");
    util::run(cargo().args(["build", "--quiet", "--release", "-p", "spyglass-cli"]))?;
    let bin = target_dir().join("release/spyglass-admin");
    let g = crate::ci::start_garage()?;
    let src = sandbox::start(Flavor::Mariadb)?;
    let dst = sandbox::start(Instance::target(Flavor::Mariadb))?;
    let work = target_dir().join("bench/ship");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    eprintln!("xtask: fixture with {blob_mb} MB of longblob");
    sandbox::fixture(&src, &work.join("fixture"), blob_mb, 1)?;
    let schemas = spyglass_fixture::SCHEMAS.join(",");
    let settings = work.join("spyglass-admin.toml");
    std::fs::write(
        &settings,
        format!("[s3]\npart_size_mb = {part_mb}\nparallel = {parallel}\n"),
    )
    .map_err(|e| e.to_string())?;
    let ours = |args: &[&str], port: u16| {
        let mut c = Command::new(&bin);
        c.arg("--config").arg(&settings).arg("-q").args(args);
        c.env("DJ_HOST", "127.0.0.1")
            .env("DJ_PORT", port.to_string())
            .env("DJ_USER", "root")
            .env("DJ_PASS", "");
        g.set_env(&mut c);
        c
    };
    let local = work.join("local");
    let t_local = timed(
        "backup run",
        ours(
            &[
                "backup",
                "run",
                "--dest",
                local.to_str().unwrap_or_default(),
                "--no-accounts",
                "--threads",
                "2",
                "--schemas",
                &schemas,
            ],
            src.port,
        )
        .current_dir(&work),
    )?;
    let set = std::fs::read_dir(&local)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .next()
        .ok_or("no set written")?;
    let name = set
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bytes = du(&set);
    let bucket = crate::garage::BUCKET;
    let _ = Command::new("sync").status();
    let t_ours = timed(
        "backup ship",
        ours(
            &[
                "backup",
                "ship",
                set.to_str().unwrap_or_default(),
                "--to",
                &format!("s3://{bucket}/ours"),
            ],
            src.port,
        )
        .current_dir(&work),
    )?;
    let t_rclone = timed(
        "rclone copy",
        rclone(&g, parallel, part_mb)
            .arg("copy")
            .arg(&set)
            .arg(format!("g:{bucket}/rclone/{name}")),
    )?;
    // Restore from the store, against download-then-restore.
    let drop_all = || -> Result<(), String> {
        use spyglass_db::mysql::prelude::Queryable;
        let mut s = dst.connect()?;
        s.conn()
            .query_drop("SET SESSION foreign_key_checks = 0")
            .map_err(|e| e.to_string())?;
        for d in spyglass_fixture::SCHEMAS {
            s.conn()
                .query_drop(format!("DROP DATABASE IF EXISTS `{d}`"))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    drop_all()?;
    let t_restore_s3 = timed(
        "backup restore s3://",
        ours(
            &["backup", "restore", &format!("s3://{bucket}/ours/{name}")],
            dst.port,
        )
        .current_dir(&work),
    )?;
    drop_all()?;
    let down = work.join("down").join(&name);
    let t_down = timed(
        "rclone copy (download)",
        rclone(&g, parallel, part_mb)
            .arg("copy")
            .arg(format!("g:{bucket}/ours/{name}"))
            .arg(&down),
    )?;
    let t_restore_local = timed(
        "backup restore (local)",
        ours(
            &["backup", "restore", down.to_str().unwrap_or_default()],
            dst.port,
        )
        .current_dir(&work),
    )?;
    drop_all()?;
    let t_run_s3 = timed(
        "backup run --dest s3://",
        ours(
            &[
                "backup",
                "run",
                "--dest",
                &format!("s3://{bucket}/run"),
                "--no-accounts",
                "--threads",
                "2",
                "--schemas",
                &schemas,
            ],
            src.port,
        )
        .current_dir(&work),
    )?;
    let mb = bytes as f64 / 1e6;
    println!("\nship benchmark: {mb:.0} MB set ({blob_mb} MB fixture blobs), 3-node Garage on 127.0.0.1, parallel {parallel}, part {part_mb} MiB");
    println!(
        "{:<44} {:>8} {:>9} {:>7}",
        "step", "seconds", "MB/s", "ratio"
    );
    let row = |what: &str, s: f64, base: f64| {
        println!(
            "{what:<44} {s:>8.1} {:>9.1} {:>6.2}x",
            mb / s.max(1e-9),
            s / base.max(1e-9)
        );
    };
    row("upload: rclone copy", t_rclone, t_rclone);
    row("upload: spyglass-admin backup ship", t_ours, t_rclone);
    row(
        "restore: rclone download + backup restore",
        t_down + t_restore_local,
        t_down + t_restore_local,
    );
    row(
        "restore: backup restore s3://",
        t_restore_s3,
        t_down + t_restore_local,
    );
    row(
        "backup: local backup run + rclone copy",
        t_local + t_rclone,
        t_local + t_rclone,
    );
    row(
        "backup: backup run --dest s3://",
        t_run_s3,
        t_local + t_rclone,
    );
    println!("(goals: ship <= 0.8x rclone; backup run --dest s3:// <= 1.2x local + rclone)");
    drop(g);
    sandbox::stop(Instance::target(Flavor::Mariadb))?;
    Ok(())
}
