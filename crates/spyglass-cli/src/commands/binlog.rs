//! `spyglass-admin binlog archive`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use spyglass_backup::restore::{self, ReplayStop};
use spyglass_binlog::archive::{self, ArchiveOptions};
use spyglass_binlog::replay::Point;

use crate::args::{ArchiveArgs, BinlogArgs, BinlogCommand, GlobalOpts};
use crate::output::{self, ExitStatus, UserError};

pub fn run(global: &GlobalOpts, args: &BinlogArgs) -> anyhow::Result<ExitStatus> {
    match &args.command {
        BinlogCommand::Archive(a) => run_archive(global, a),
    }
}

fn time_text(t: u32) -> String {
    chrono::DateTime::from_timestamp(i64::from(t), 0).map_or_else(
        || t.to_string(),
        |d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

fn run_archive(global: &GlobalOpts, a: &ArchiveArgs) -> anyhow::Result<ExitStatus> {
    let dest = super::backup::dest_or_settings(global, a.dest.as_ref())?;
    let opts = super::backup::connect_options(global)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&stop));
    }
    let quiet = global.quiet || global.json;
    let retry = |e: &str, wait: Duration| {
        if !quiet {
            eprintln!("warning: {e}; reconnecting in {}s", wait.as_secs());
        }
    };
    let mut o = ArchiveOptions::new(dest.join("binlog"));
    o.until_now = a.until_now;
    o.server_id = a.server_id;
    o.heartbeat = Duration::from_secs(a.heartbeat.max(1));
    o.stop = Some(&stop);
    o.on_retry = Some(&retry);
    let r = archive::archive(&opts, &o)?;
    if global.json {
        output::print_json(&r)?;
    } else if !global.quiet {
        eprintln!(
            "archived {} events ({}) into {}; {} file(s) closed; now at {}:{}{}",
            r.events,
            output::human_bytes(r.bytes),
            o.dir.display(),
            r.closed.len(),
            r.file.as_deref().unwrap_or("-"),
            r.pos,
            r.last_time
                .map(|t| format!(" (last event {})", time_text(t)))
                .unwrap_or_default()
        );
    }
    for g in &r.gaps {
        eprintln!(
            "warning: gap: the server purged the binary log from {}:{} to the start of {} before the archive had it{}; no point-in-time restore can cross it: restore a backup set taken after it",
            g.from_file,
            g.from_pos,
            g.to_file,
            g.from_time
                .map(|t| format!(" (events after {} are lost)", time_text(t)))
                .unwrap_or_default()
        );
    }
    Ok(if r.gaps.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Findings
    })
}

/// `backup restore --until/--until-position/--latest`: the archive and where
/// to stop, checked against the set before the target changes.
pub(super) fn point_in_time(
    set: &std::path::Path,
    a: &crate::args::PointInTimeArgs,
) -> anyhow::Result<Option<(std::path::PathBuf, ReplayStop)>> {
    let stop = if let Some(t) = &a.until {
        ReplayStop::Time(parse_local_time(t)?)
    } else if let Some(p) = &a.until_position {
        let (file, pos) = p
            .rsplit_once(':')
            .and_then(|(f, n)| Some((f, n.parse::<u64>().ok()?)))
            .filter(|(f, _)| !f.is_empty())
            .ok_or_else(|| {
                UserError::new(format!(
                    "--until-position '{p}' is not FILE:POS (e.g. mysql-bin.000042:1234)"
                ))
            })?;
        ReplayStop::Position(Point {
            file: file.to_owned(),
            pos,
        })
    } else if a.latest {
        ReplayStop::Latest
    } else {
        if a.binlog_dir.is_some() {
            return Err(
                UserError::new("--binlog-dir needs --until, --until-position or --latest").into(),
            );
        }
        return Ok(None);
    };
    let archive = match &a.binlog_dir {
        Some(d) => d.clone(),
        None => set
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("binlog")))
            .unwrap_or_else(|| std::path::PathBuf::from("binlog")),
    };
    restore::check_replay(set, &archive, &stop)
        .map_err(|e| anyhow::Error::new(UserError::new(e.to_string())))?;
    Ok(Some((archive, stop)))
}

/// 'YYYY-MM-DD HH:MM:SS[.ffffff]' in the machine's time zone, as microseconds since the epoch.
fn parse_local_time(t: &str) -> anyhow::Result<i64> {
    use chrono::TimeZone;
    let naive =
        chrono::NaiveDateTime::parse_from_str(t.trim(), "%Y-%m-%d %H:%M:%S%.f").map_err(|_| {
            UserError::new(format!(
                "--until '{t}' is not 'YYYY-MM-DD HH:MM:SS[.ffffff]' (local time)"
            ))
        })?;
    let local = chrono::Local
        .from_local_datetime(&naive)
        .earliest()
        .ok_or_else(|| {
            UserError::new(format!(
                "--until '{t}' does not exist in the local time zone (a DST gap)"
            ))
        })?;
    Ok(local.timestamp_micros())
}

/// The replay step of a point-in-time restore; prints the exact point reached.
pub(super) fn replay_after_restore(
    global: &GlobalOpts,
    opts: &spyglass_db::ConnectOptions,
    set: &std::path::Path,
    archive: &std::path::Path,
    ro: &restore::RestoreOptions,
    stop: ReplayStop,
) -> anyhow::Result<restore::ReplayReport> {
    let t = std::time::Instant::now();
    let r = restore::replay_binlog(opts, set, archive, ro, stop)?;
    if !global.quiet && !global.json {
        let last = r.last.as_ref().map_or_else(String::new, |l| {
            format!(
                ", last transaction committed {}{}",
                time_text_us(l.commit_us),
                l.gtid
                    .as_ref()
                    .map(|g| format!(" (GTID {g})"))
                    .unwrap_or_default()
            )
        });
        eprintln!(
            "replayed {} transactions ({} row events, {} statements; {} transactions of other schemas left out) from the binlog archive in {:.1}s; reached {}{}",
            r.transactions,
            r.row_events,
            r.statements,
            r.skipped_transactions,
            t.elapsed().as_secs_f64(),
            r.reached,
            last
        );
        match &r.next {
            Some(n) => eprintln!(
                "stopped before the transaction at {} committed {}",
                n.start,
                time_text_us(n.commit_us)
            ),
            None => eprintln!("that is the end of the archive"),
        }
        for s in &r.skipped_statements {
            eprintln!("note: not replayed (accounts, server, or no selected schema): {s}");
        }
    }
    Ok(r)
}

fn time_text_us(us: i64) -> String {
    use chrono::TimeZone;
    chrono::Local.timestamp_micros(us).single().map_or_else(
        || us.to_string(),
        |d| d.format("%Y-%m-%d %H:%M:%S%.6f %:z").to_string(),
    )
}

/// One `doctor` finding about point-in-time restores: what is wrong, how to fix it.
pub(super) struct BinlogProblem {
    pub message: String,
    pub hint: String,
}

/// `doctor`'s binary-log checks (run when the backup destination holds a
/// binlog archive): binary log on, ROW format, FULL row images, a
/// server_id, retention longer than the archive's lag, and the account's
/// replication privileges.
pub(super) fn doctor_checks(
    session: &mut spyglass_db::Session,
    dest: &std::path::Path,
) -> Vec<BinlogProblem> {
    use spyglass_db::mysql::prelude::Queryable;
    let mut out = Vec::new();
    let mut p = |message: String, hint: &str| {
        out.push(BinlogProblem {
            message,
            hint: hint.to_owned(),
        })
    };
    let flavor = session.server().flavor;
    let conn = session.conn();
    type Vars = (Option<u64>, Option<String>, Option<String>, Option<u64>);
    let vars: Option<Vars> = conn
        .query_first("SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@server_id")
        .ok()
        .flatten();
    let (log_bin, format, image, server_id) = vars.unwrap_or((None, None, None, None));
    if log_bin != Some(1) {
        p(
            "the binary log is off: point-in-time restores need it".into(),
            "in the server's configuration ([mysqld]): log_bin = mysql-bin, server_id = 1, binlog_format = ROW; then restart the server",
        );
    }
    if format.as_deref() != Some("ROW") {
        p(
            format!(
                "binlog_format is {} (MariaDB's default is MIXED): a point-in-time restore needs every change as a row event",
                format.as_deref().unwrap_or("unknown")
            ),
            "set binlog_format = ROW in the server's configuration and SET GLOBAL binlog_format = 'ROW' (sessions opened before keep the old format)",
        );
    }
    if image.as_deref() != Some("FULL") {
        p(
            format!(
                "binlog_row_image is {}: row events then lack columns a restore (and `recover`) needs",
                image.as_deref().unwrap_or("unknown")
            ),
            "set binlog_row_image = FULL in the server's configuration and SET GLOBAL binlog_row_image = 'FULL'",
        );
    }
    if server_id.unwrap_or(0) == 0 {
        p(
            "server_id is 0: the server refuses replicas, so the archive cannot connect".into(),
            "set server_id = 1 (any number unique among your servers) in the server's configuration",
        );
    }
    // Privileges of this account as the archiver.
    let grants: Vec<String> = conn.query("SHOW GRANTS").unwrap_or_default();
    let g = grants.join("\n").to_ascii_uppercase();
    let all = g.contains("GRANT ALL PRIVILEGES ON *.*");
    let needs: &[(&[&str], &str)] = match flavor {
        spyglass_db::Flavor::Mysql => &[
            (
                &["REPLICATION SLAVE", "REPLICATION REPLICA"],
                "REPLICATION SLAVE",
            ),
            (&["REPLICATION CLIENT"], "REPLICATION CLIENT"),
        ],
        spyglass_db::Flavor::Mariadb => &[
            (
                &["REPLICATION SLAVE", "REPLICATION REPLICA"],
                "REPLICATION SLAVE",
            ),
            (&["BINLOG MONITOR", "REPLICATION CLIENT"], "BINLOG MONITOR"),
        ],
    };
    for (names, grant) in needs {
        if !all && !names.iter().any(|n| g.contains(n)) {
            p(
                format!("this account lacks {grant}, which `binlog archive` needs"),
                &format!(
                    "as an admin: GRANT {grant} ON *.* TO <this account> (or `spyglass-admin users add-backup-user --binlog`)"
                ),
            );
        }
    }
    // Retention against the archive's lag.
    let dir = dest.join("binlog");
    if let Ok(a) = spyglass_binlog::index::Archive::open(&dir) {
        for gap in &a.index.gaps {
            p(
                format!(
                    "the binlog archive has a gap: {}:{} to the start of {} was purged before it was archived",
                    gap.from_file, gap.from_pos, gap.to_file
                ),
                "no point-in-time restore crosses it; take a backup now so restores after it are possible, and archive more often than the server purges",
            );
        }
        let retention: Option<u64> = conn
            .query_first("SELECT @@binlog_expire_logs_seconds")
            .ok()
            .flatten();
        let server_end = spyglass_binlog::archive::server_binlogs(conn)
            .ok()
            .and_then(|l| l.last().cloned());
        let archived_end = a.files().last().cloned();
        let behind = server_end.as_ref().map(|(f, _)| f) != archived_end.as_ref();
        if let (Some(ret), true, Ok(Some((_, last)))) = (retention, behind, a.window()) {
            let now = chrono::Utc::now().timestamp().max(0) as u64;
            let lag = now.saturating_sub(u64::from(last));
            if ret > 0 && lag * 2 > ret {
                p(
                    format!(
                        "the binlog archive is {} behind (last archived event {}), more than half the server's binlog retention ({}): the server may purge what it has not copied",
                        humantime::format_duration(std::time::Duration::from_secs(lag)),
                        time_text(last),
                        humantime::format_duration(std::time::Duration::from_secs(ret))
                    ),
                    "run `spyglass-admin binlog archive` as a service (`spyglass-admin schedule --print --systemd` prints its unit), or raise binlog_expire_logs_seconds",
                );
            }
        }
    }
    out
}
