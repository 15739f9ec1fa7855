//! `spyglass-admin binlog archive`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use spyglass_backup::restore::{self, ReplayStop};
use spyglass_binlog::archive::{self, ArchiveOptions};
use spyglass_binlog::replay::Point;

use spyglass_backup::ship::binlog::{self as shipped, BinlogShipReport, FetchedArchive};
use spyglass_backup::ship::{ShipOptions, Target};

use crate::args::{ArchiveArgs, BinlogArgs, BinlogCommand, BinlogShipArgs, GlobalOpts};
use crate::output::{self, ExitStatus, UserError};
use crate::settings;

pub fn run(global: &GlobalOpts, args: &BinlogArgs) -> anyhow::Result<ExitStatus> {
    match &args.command {
        BinlogCommand::Archive(a) => run_archive(global, a),
        BinlogCommand::Ship(a) => run_ship(global, a),
    }
}

/// The local binlog archive of the destination a set is in (`DEST/binlog`),
/// when there is one written by `binlog archive` (not a shipped copy).
pub(crate) fn archive_beside(set: &std::path::Path) -> Option<std::path::PathBuf> {
    let dir = set.canonicalize().ok()?.parent()?.join("binlog");
    (dir.is_dir() && !is_shipped_layout(&dir)).then_some(dir)
}

/// A directory holding a shipped archive (`binlog/index/index.json`), e.g.
/// the `binlog/` of a directory ship target.
fn is_shipped_layout(dir: &std::path::Path) -> bool {
    dir.join("index").join("index.json").is_file()
}

/// One line for a binlog ship report.
pub(crate) fn ship_line(r: &BinlogShipReport) -> String {
    format!(
        "binlog archive shipped to {}: {} closed file(s) sent, {} already there{}; {} in {:.1}s{}",
        r.target,
        r.sent.len(),
        r.already_there,
        r.segment
            .as_ref()
            .map(|s| format!(", open file up to {s}"))
            .unwrap_or_default(),
        output::human_bytes(r.bytes),
        r.seconds,
        r.last_time
            .map(|t| format!("; last event there {}", time_text(t)))
            .unwrap_or_default()
    )
}

/// The ship target and options for the binlog archive: `to`, else `[backup] ship_to`.
fn ship_target(
    s: &spyglass_jobs::settings::Settings,
    to: Option<&str>,
    ssh: &crate::args::SshArgs,
) -> anyhow::Result<Option<(Target, ShipOptions)>> {
    let Some(to) = to.map(str::to_owned).or_else(|| s.backup.ship_to.clone()) else {
        return Ok(None);
    };
    let t = Target::parse(&to)?.with_s3_config(&spyglass_jobs::lifecycle::s3_config(s)?);
    let opts = ShipOptions {
        ssh: super::lifecycle::ssh_options(ssh, s),
        bwlimit_kib: s.backup.bwlimit_kib.unwrap_or(0),
        ..ShipOptions::default()
    };
    Ok(Some((t, opts)))
}

fn run_ship(global: &GlobalOpts, a: &BinlogShipArgs) -> anyhow::Result<ExitStatus> {
    let s = settings::load(global.config.as_deref())?;
    let dest = super::backup::dest_or_settings(global, a.dest.as_ref())?;
    let dir = dest.join("binlog");
    let (t, opts) = ship_target(&s, a.to.as_deref(), &a.ssh)?
    .ok_or_else(|| {
        UserError::new("no ship target given")
            .hint("pass --to ssh://user@host/path (or s3://bucket/prefix, or a directory), or set [backup] ship_to")
    })?;
    let r = shipped::ship(&dir, &t, &opts)?;
    if global.json {
        output::print_json(&r)?;
    } else if !global.quiet {
        output::print_out(&format!("{}\n", ship_line(&r)))?;
    }
    Ok(ExitStatus::Success)
}

/// How often the archive service ships: `--ship-every`, `[binlog] ship_every`, 15 minutes.
fn ship_every(
    s: &spyglass_jobs::settings::Settings,
    flag: Option<&str>,
) -> anyhow::Result<Duration> {
    match flag {
        Some(f) => humantime::parse_duration(f).map_err(|e| {
            UserError::new(format!(
                "--ship-every '{f}' is not a duration ({e}); write it like 15m or 1h"
            ))
            .into()
        }),
        None => Ok(s
            .binlog
            .ship_every
            .as_ref()
            .map_or(Duration::from_secs(15 * 60), |d| d.0)),
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
    // The service ships the archive off-site every so often, so the copy
    // there lags by at most that much even on a quiet server.
    let mut shipper = None;
    if !a.until_now {
        let s = settings::load(global.config.as_deref())?;
        let every = ship_every(&s, a.ship_every.as_deref())?;
        if let (Some((t, sopts)), false) = (
            ship_target(&s, None, &crate::args::SshArgs::default())?,
            every.is_zero(),
        ) {
            let (stop, dir) = (Arc::clone(&stop), o.dir.clone());
            shipper = Some(std::thread::spawn(move || {
                let ship_once = || match shipped::ship(&dir, &t, &sopts) {
                    Ok(r) if !quiet => eprintln!("{}", ship_line(&r)),
                    Ok(_) => {}
                    // Logged, and tried again at the next interval.
                    Err(e) => eprintln!("warning: shipping the binlog archive: {e}"),
                };
                let mut next = std::time::Instant::now() + every;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    if std::time::Instant::now() >= next {
                        if dir.is_dir() {
                            ship_once();
                        }
                        next = std::time::Instant::now() + every;
                    }
                }
                // What the service had at its end goes too.
                if dir.is_dir() {
                    ship_once();
                }
            }));
        }
    }
    let r = archive::archive(&opts, &o);
    if let Some(h) = shipper {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = h.join();
    }
    let r = r?;
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
/// The archive is `--binlog-dir` (a directory, or a ship target whose
/// `binlog/` is fetched), else the one shipped next to a set given as
/// TARGET/NAME, else `binlog/` next to the set (fetched when it is a
/// shipped copy, as on a directory ship target).
pub(super) fn point_in_time(
    global: &GlobalOpts,
    set_arg: &std::path::Path,
    set: &std::path::Path,
    ssh: &spyglass_backup::ship::SshOptions,
    a: &crate::args::PointInTimeArgs,
) -> anyhow::Result<Option<(std::path::PathBuf, ReplayStop, Option<FetchedArchive>)>> {
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
    } else if let Some(g) = &a.until_gtid {
        let ok = g.trim().split_once(':').is_some_and(|(u, n)| {
            u.len() == 36
                && u.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-')
                && n.parse::<u64>().is_ok()
        }) || {
            let p: Vec<&str> = g.trim().split('-').collect();
            p.len() == 3 && p.iter().all(|x| x.parse::<u64>().is_ok())
        };
        if !ok {
            return Err(UserError::new(format!(
                "--until-gtid '{g}' is not a GTID (MySQL: uuid:n, e.g. 3e11fa47-71ca-11e1-9e33-c80aa9429562:23; MariaDB: domain-server-seq, e.g. 0-1-42)"
            ))
            .into());
        }
        ReplayStop::Gtid(g.trim().to_owned())
    } else if a.latest {
        ReplayStop::Latest
    } else {
        if a.binlog_dir.is_some() {
            return Err(UserError::new(
                "--binlog-dir needs --until, --until-position, --until-gtid or --latest",
            )
            .into());
        }
        return Ok(None);
    };
    let as_target = |p: &std::path::Path| {
        p.to_str()
            .filter(|t| spyglass_backup::ship::scheme_of(t).is_some())
            .map(str::to_owned)
    };
    let target: Option<Target> = match &a.binlog_dir {
        Some(d) => match as_target(d) {
            Some(t) => Some(Target::parse(&t)?),
            None if is_shipped_layout(d) => Some(Target::parse(
                &d.canonicalize()?
                    .parent()
                    .unwrap_or(std::path::Path::new("/"))
                    .display()
                    .to_string(),
            )?),
            None => None,
        },
        None => match as_target(set_arg) {
            Some(t) => Some(Target::parse_set(&t)?.0),
            None => None,
        },
    };
    let local_default = set
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("binlog")))
        .unwrap_or_else(|| std::path::PathBuf::from("binlog"));
    let target = match target {
        Some(t) => Some(t),
        None if a.binlog_dir.is_none() && is_shipped_layout(&local_default) => local_default
            .parent()
            .map(|p| Target::parse(&p.display().to_string()))
            .transpose()?,
        None => None,
    };
    let (archive, fetched) = match target {
        Some(t) => {
            let s = settings::load(global.config.as_deref())?;
            let t = t.with_s3_config(&spyglass_jobs::lifecycle::s3_config(&s)?);
            // Only the files from the set's own on.
            let from = spyglass_backup::set::open(set)
                .ok()
                .and_then(|m| m.snapshot.binlog_file);
            let f = shipped::fetch(&t, ssh, from.as_deref())?;
            if !global.quiet && !global.json {
                eprintln!(
                    "fetched the binlog archive {} ({} file(s), {}, sha256 checked) into {}",
                    f.url,
                    f.files,
                    output::human_bytes(f.bytes),
                    f.path.display()
                );
            }
            (f.path.clone(), Some(f))
        }
        None => (a.binlog_dir.clone().unwrap_or(local_default), None),
    };
    restore::check_replay(set, &archive, &stop)
        .map_err(|e| anyhow::Error::new(UserError::new(e.to_string())))?;
    Ok(Some((archive, stop, fetched)))
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
                "stopped before the transaction at {} committed {}{}",
                n.start,
                time_text_us(n.commit_us),
                n.gtid
                    .as_ref()
                    .map(|g| format!(" (GTID {g})"))
                    .unwrap_or_default()
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
