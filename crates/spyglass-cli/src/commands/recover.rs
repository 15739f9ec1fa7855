//! `spyglass-admin recover`: list archived deletes, rebuild their rows into
//! side schemas, or put them back into the live tables.

use std::fmt::Write as _;
use std::path::PathBuf;

use spyglass_binlog::recover::{self, files, list, Plan, Transaction};
use spyglass_cleanup::store::Store;
use spyglass_db::mysql::prelude::Queryable;
use spyglass_jobs::cleanup::{self as job, DirEnv};

use crate::args::{GlobalOpts, RecoverArgs};
use crate::connection::{self, Environment};
use crate::output::{self, ExitStatus, UserError};
use crate::settings;

pub fn run(global: &GlobalOpts, a: &RecoverArgs) -> anyhow::Result<ExitStatus> {
    let dir = archive_dir(global, a)?;
    if a.list {
        if a.restore_files || a.quarantine.is_some() {
            return Err(UserError::new(
                "--restore-files and --quarantine go with TXN..., not --list",
            )
            .into());
        }
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
    let (stores, qdir, setup_problem) = file_setup(global, a)?;
    let opts = super::backup::connect_options(global)?;
    let mut session = spyglass_db::connect(&opts)?;
    let conn = session.conn();
    let quiet = global.json || global.quiet;
    let (plan, refs) = if let Some(prefix) = &a.into {
        let p = recover::into(conn, &txns, prefix, a.include_updates)?;
        if !quiet {
            eprint!("{}", plan_text(&p, "rebuilt"));
        }
        let mut refs = files::referenced(conn, &txns, a.include_updates, &stores, qdir.as_deref())?;
        if a.restore_files {
            files::restore(conn, &mut refs)?;
        }
        (p, refs)
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
        let mut refs = files::referenced(conn, &txns, a.include_updates, &stores, qdir.as_deref())?;
        if !quiet {
            eprint!("{}", plan_text(&dry, "dry run: would put back"));
        }
        if a.dry_run {
            if !quiet {
                eprint!("{}", files_text(&refs, setup_problem.as_deref()));
            }
            if global.json {
                output::print_json(&Out {
                    plan: &dry,
                    files: &refs,
                })?;
            }
            return Ok(status(&refs, global.quiet));
        }
        if a.restore_files {
            files::restore(conn, &mut refs)?;
        }
        let absent: Vec<&files::FileRef> = refs
            .iter()
            .filter(|f| f.external_row != files::RowPlace::Live)
            .collect();
        if !absent.is_empty() {
            if !quiet {
                eprint!("{}", files_text(&refs, setup_problem.as_deref()));
            }
            let quarantined = absent
                .iter()
                .any(|f| f.external_row == files::RowPlace::Quarantined);
            let names: Vec<String> = absent
                .iter()
                .take(10)
                .map(|f| format!("`{}`.`~external_{}` {}", f.external_schema, f.store, f.hash))
                .collect();
            return Err(UserError::new(format!(
                "{} `~external` row(s) the recovered rows name are not in the live tables, nothing was recovered: {}{}",
                absent.len(),
                names.join(", "),
                if absent.len() > 10 { ", ..." } else { "" }
            ))
            .hint(if quarantined && !a.restore_files {
                "cleanup quarantined them: add --restore-files to put them (and their files) back first"
            } else {
                "no quarantine run holds them: restore the `~external` rows from a backup (`backup restore`), or look at the rows aside with --into PREFIX"
            })
            .into());
        }
        let p = recover::in_place(conn, &txns, a.include_updates)?;
        if !quiet {
            eprint!("{}", plan_text(&p, "put back"));
        }
        (p, refs)
    };
    if !quiet {
        eprint!("{}", files_text(&refs, setup_problem.as_deref()));
    }
    if global.json {
        output::print_json(&Out {
            plan: &plan,
            files: &refs,
        })?;
    }
    Ok(status(&refs, global.quiet))
}

/// `recover TXN... --json`: the plan and the files its rows name.
#[derive(serde::Serialize)]
struct Out<'a> {
    #[serde(flatten)]
    plan: &'a Plan,
    files: &'a [files::FileRef],
}

/// Exit 1 (with what to do) when a file the rows name is missing.
fn status(refs: &[files::FileRef], quiet: bool) -> ExitStatus {
    let missing = refs
        .iter()
        .filter(|f| f.place == files::Place::Missing)
        .count();
    if missing == 0 {
        return ExitStatus::Success;
    }
    if !quiet {
        eprintln!(
            "{missing} file(s) the recovered rows name are missing (not in the store, not in any cleanup quarantine run): \
             copy them back from a backup of the store to the path shown (or re-run the analysis that wrote them); \
             until then DataJoint cannot fetch those attributes"
        );
    }
    ExitStatus::Findings
}

fn files_text(refs: &[files::FileRef], setup_problem: Option<&str>) -> String {
    let mut s = String::new();
    if refs.is_empty() {
        return s;
    }
    let _ = writeln!(s, "{} file(s) named by the recovered rows:", refs.len());
    for f in refs {
        let place = match f.place {
            files::Place::InPlace => "in_place",
            files::Place::Quarantined => "quarantined",
            files::Place::Missing => "missing",
        };
        let path = f
            .path
            .as_ref()
            .map_or_else(|| format!("(hash {})", f.hash), |p| p.display().to_string());
        let mut extra = vec![format!("{}@{}", f.kind, f.store)];
        if let Some(r) = &f.run {
            if f.place == files::Place::Quarantined || f.restored {
                extra.push(format!("run {r}"));
            }
        }
        match f.external_row {
            files::RowPlace::Live => {}
            files::RowPlace::Quarantined => extra.push("~external row quarantined".into()),
            files::RowPlace::Gone => extra.push("~external row gone".into()),
        }
        if f.restored {
            extra.push("restored from the quarantine".into());
        }
        let _ = write!(s, "  {place:<11}  {path} ({})", extra.join(", "));
        if let Some(d) = &f.detail {
            let _ = write!(s, ": {d}");
        }
        s.push('\n');
    }
    if refs
        .iter()
        .any(|f| f.place == files::Place::Quarantined && !f.restored)
    {
        s.push_str(
            "  --restore-files moves the quarantined ones (and their ~external rows) back\n",
        );
    }
    if let Some(p) = setup_problem {
        let _ = writeln!(s, "  note: {p}");
    }
    s
}

/// The stores (DataJoint config, Spyglass directories) and the cleanup
/// quarantine, found as cleanup finds them. A problem only matters when
/// files are asked for: with --restore-files or --quarantine it is an
/// error, else it is shown next to the files.
fn file_setup(
    global: &GlobalOpts,
    a: &RecoverArgs,
) -> anyhow::Result<(Vec<Store>, Option<PathBuf>, Option<String>)> {
    let found = (|| -> anyhow::Result<(Vec<Store>, PathBuf)> {
        let settings = settings::load(global.config.as_deref())?;
        let env = Environment::from_process();
        let mut notes = Vec::new();
        let dj = connection::load_dj_config(&env, &mut notes)?;
        let dirs = job::spyglass_dirs(dj.as_ref(), &DirEnv::capture(|k| std::env::var(k).ok()))?;
        let empty = serde_json::Map::new();
        let stores = spyglass_cleanup::store::stores(
            dj.as_ref().map_or(&empty, |d| &d.stores),
            dirs.as_ref(),
        )?;
        let base = dirs
            .as_ref()
            .and_then(|d| d.get(spyglass_cleanup::dirs::DirKey::Base))
            .map(|d| d.path.clone());
        let q = job::quarantine_dir(a.quarantine.as_deref(), &settings, base.as_deref())?;
        Ok((stores, q))
    })();
    match found {
        Ok((stores, q)) => {
            if a.quarantine.is_some() && !q.is_dir() {
                return Err(UserError::new(format!(
                    "--quarantine {}: no such directory",
                    q.display()
                ))
                .hint("pass the quarantine directory cleanup apply moved things into")
                .into());
            }
            Ok((stores, Some(q), None))
        }
        Err(e) if a.restore_files || a.quarantine.is_some() => Err(e),
        Err(e) => Ok((
            Vec::new(),
            None,
            Some(format!(
                "files not checked against the stores or the cleanup quarantine: {}",
                e.chain()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(": ")
            )),
        )),
    }
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
