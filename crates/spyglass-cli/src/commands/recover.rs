//! `spyglass-admin recover`: list archived deletes, rebuild their rows into
//! side schemas, or put them back into the live tables.

use std::fmt::Write as _;
use std::path::PathBuf;

use spyglass_binlog::recover::{self, list, Plan, Transaction};
use spyglass_db::mysql::prelude::Queryable;

use crate::args::{GlobalOpts, RecoverArgs};
use crate::output::{self, ExitStatus, UserError};

pub fn run(global: &GlobalOpts, a: &RecoverArgs) -> anyhow::Result<ExitStatus> {
    if a.restore_files || a.quarantine.is_some() {
        return Err(UserError::new(
            "--restore-files and --quarantine are not implemented yet: recover does not report or restore the analysis files the rows name",
        )
        .hint("restore the files with `spyglass-admin cleanup restore RUN` for now")
        .into());
    }
    let dir = archive_dir(global, a)?;
    if a.list {
        return run_list(global, a, &dir);
    }
    if a.into.is_none() && !a.in_place {
        return Err(UserError::new("recover TXN... needs --into PREFIX or --in-place")
            .hint("`recover --list --since TIME` shows the transactions; then `recover TXN --into PREFIX` to look at the rows aside, or `--in-place` to put them back")
            .into());
    }
    if !a.schemas.is_empty() {
        return Err(UserError::new("--schemas only filters --list").into());
    }
    // Only the archive files the ids name (a GTID: every file).
    let files: Option<Vec<String>> = a
        .txns
        .iter()
        .map(|t| {
            t.rsplit_once(':')
                .filter(|(_, p)| p.parse::<u64>().is_ok())
                .map(|(f, _)| f.to_owned())
        })
        .collect();
    let all = recover::rows::read_transactions_in(&dir, files.as_deref(), None, None)?;
    let txns = recover::select(&all, &a.txns)?;
    let opts = super::backup::connect_options(global)?;
    let mut session = spyglass_db::connect(&opts)?;
    let conn = session.conn();
    let plan = if let Some(prefix) = &a.into {
        let p = recover::into(conn, &txns, prefix, a.include_updates)?;
        if !global.json && !global.quiet {
            eprint!("{}", plan_text(&p, "rebuilt"));
        }
        p
    } else {
        let dry = recover::plan_in_place(conn, &txns, a.include_updates)?;
        if !dry.conflicts.is_empty() {
            if global.json {
                output::print_json(&dry)?;
            }
            let list: Vec<String> = dry
                .conflicts
                .iter()
                .take(20)
                .map(|c| format!("`{}`.`{}` ({}): {}", c.schema, c.table, c.key, c.detail))
                .collect();
            return Err(UserError::new(format!(
                "{} conflict(s) in the live tables, nothing was recovered: {}{}",
                dry.conflicts.len(),
                list.join("; "),
                if dry.conflicts.len() > 20 { "; ..." } else { "" }
            ))
            .hint("those rows exist again (or changed since): remove them first, or look at the archived rows aside with --into PREFIX")
            .into());
        }
        if !global.json && !global.quiet {
            eprint!("{}", plan_text(&dry, "dry run: would put back"));
        }
        if a.dry_run {
            if global.json {
                output::print_json(&dry)?;
            }
            return Ok(ExitStatus::Success);
        }
        let p = recover::in_place(conn, &txns, a.include_updates)?;
        if !global.json && !global.quiet {
            eprint!("{}", plan_text(&p, "put back"));
        }
        p
    };
    if global.json {
        output::print_json(&plan)?;
    }
    Ok(ExitStatus::Success)
}

fn archive_dir(global: &GlobalOpts, a: &RecoverArgs) -> anyhow::Result<PathBuf> {
    if let Some(d) = &a.binlog_dir {
        return Ok(d.clone());
    }
    let dest = super::backup::dest_or_settings(global, None).map_err(|_| {
        UserError::new("no binlog archive given").hint(
            "pass --binlog-dir DIR (the archive `binlog archive` writes, DEST/binlog), or set [backup] destination",
        )
    })?;
    Ok(dest.join("binlog"))
}

fn plan_text(p: &Plan, verb: &str) -> String {
    let mut s = String::new();
    let rows: u64 = p.tables.iter().map(|t| t.deleted + t.updated).sum();
    let _ = writeln!(
        s,
        "{verb} {rows} row(s) of {} transaction(s) ({}):",
        p.transactions.len(),
        p.transactions.join(", ")
    );
    for t in &p.tables {
        let mut what = format!("{} deleted", t.deleted);
        if t.updated > 0 {
            let _ = write!(what, ", {} updated", t.updated);
        }
        let _ = writeln!(s, "  `{}`.`{}`: {what}", t.target_schema, t.table);
    }
    s
}

/// 'YYYY-MM-DD HH:MM:SS[.ffffff]' in the machine's time zone, as microseconds since the epoch.
fn local_time(flag: &str, t: &str) -> anyhow::Result<i64> {
    use chrono::TimeZone;
    let naive = chrono::NaiveDateTime::parse_from_str(t.trim(), "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
        })
        .map_err(|_| {
            UserError::new(format!(
                "{flag} '{t}' is not 'YYYY-MM-DD HH:MM:SS[.ffffff]' (local time)"
            ))
        })?;
    let local = chrono::Local
        .from_local_datetime(&naive)
        .earliest()
        .ok_or_else(|| {
            UserError::new(format!(
                "{flag} '{t}' does not exist in the local time zone (a DST gap)"
            ))
        })?;
    Ok(local.timestamp_micros())
}

fn time_text(us: i64) -> String {
    use chrono::TimeZone;
    chrono::Local.timestamp_micros(us).single().map_or_else(
        || us.to_string(),
        |d| d.format("%Y-%m-%d %H:%M:%S%.6f %:z").to_string(),
    )
}

fn run_list(
    global: &GlobalOpts,
    a: &RecoverArgs,
    dir: &std::path::Path,
) -> anyhow::Result<ExitStatus> {
    let since = a
        .since
        .as_deref()
        .map(|t| local_time("--since", t))
        .transpose()?;
    let until = a
        .until
        .as_deref()
        .map(|t| local_time("--until", t))
        .transpose()?;
    if !a.txns.is_empty() {
        return Err(UserError::new("--list takes no TXN").into());
    }
    let txns: Vec<Transaction> = recover::read_transactions(dir, since, until)?;
    // Column names from the live server, when it answers (the listing works without it).
    let mut session = super::backup::connect_options(global)
        .ok()
        .and_then(|o| spyglass_db::connect(&o).ok());
    let mut names = |s: &str, t: &str| -> Option<Vec<String>> {
        let conn = session.as_mut()?.conn();
        conn.exec(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (s, t),
        )
        .ok()
        .filter(|v: &Vec<String>| !v.is_empty())
    };
    let globs = &a.schemas;
    let keep =
        |s: &str| globs.is_empty() || globs.iter().any(|g| spyglass_db::schemas::glob_match(g, s));
    let listed = list::list(&txns, &keep, &mut names);
    if global.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            archive: &'a std::path::Path,
            transactions: Vec<serde_json::Value>,
        }
        let transactions = listed
            .iter()
            .map(|l| {
                let mut v = serde_json::to_value(l).unwrap_or_default();
                v["commit"] = serde_json::Value::String(time_text(l.commit_us));
                v
            })
            .collect();
        output::print_json(&Out {
            archive: dir,
            transactions,
        })?;
        return Ok(ExitStatus::Success);
    }
    let mut s = String::new();
    for l in &listed {
        let _ = writeln!(
            s,
            "{}  committed {}{}{}",
            l.id,
            time_text(l.commit_us),
            l.thread_id
                .map(|t| format!("  thread {t}"))
                .unwrap_or_default(),
            l.gtid
                .as_ref()
                .map(|g| format!("  GTID {g}"))
                .unwrap_or_default()
        );
        for st in &l.statements {
            let one: String = st.split_whitespace().collect::<Vec<_>>().join(" ");
            let mut short: String = one.chars().take(200).collect();
            if short.len() < one.len() {
                short.push_str("...");
            }
            let _ = writeln!(s, "    statement: {short}");
        }
        for t in &l.tables {
            let mut parts = Vec::new();
            if t.deleted > 0 {
                parts.push(format!("{} deleted", t.deleted));
            }
            if t.updated > 0 {
                parts.push(format!("{} updated", t.updated));
            }
            if t.inserted > 0 {
                parts.push(format!("{} inserted", t.inserted));
            }
            let _ = writeln!(s, "    `{}`.`{}`: {}", t.schema, t.table, parts.join(", "));
        }
        if let Some(cd) = &l.cautious_delete {
            let v: Vec<String> = cd
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("NULL")))
                .collect();
            let _ = writeln!(s, "    cautious_delete: {}", v.join(", "));
        }
    }
    output::print_out(&s)?;
    if !global.quiet {
        eprintln!(
            "{} transaction(s) deleted or updated rows; undo one with `spyglass-admin recover TXN --into PREFIX` (aside) or `--in-place`",
            listed.len()
        );
    }
    Ok(ExitStatus::Success)
}
