//! `spyglass-admin cleanup scan | apply | restore RUN | purge`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use spyglass_cleanup::apply::{self, ApplyOptions, Disposal};
use spyglass_cleanup::quarantine;
use spyglass_cleanup::scan::{self, Scan, Tally};
use spyglass_cleanup::{Class, CleanupError};
use spyglass_jobs::cleanup::{
    self as job, ApplySummary, Connection, Context, DirEnv, ScanOverrides, ScanSummary,
};
use spyglass_jobs::JobError;

use crate::args::{CleanupArgs, CleanupCommand, CleanupScanOpts, GlobalOpts};
use crate::connection::{self, Environment};
use crate::output::{self, ExitStatus, UserError};
use crate::settings::{self, Settings};

pub fn run(global: &GlobalOpts, args: &CleanupArgs) -> anyhow::Result<ExitStatus> {
    let settings = settings::load(global.config.as_deref())?;
    match &args.command {
        CleanupCommand::Scan(a) => scan_cmd(global, &settings, &a.scan),
        CleanupCommand::Apply(a) => apply_cmd(global, &settings, a),
        CleanupCommand::Restore(a) => restore_cmd(global, &settings, a),
        CleanupCommand::Purge(a) => purge_cmd(global, &settings, a),
    }
}

fn classes(only: &[String]) -> anyhow::Result<Vec<Class>> {
    only.iter()
        .map(|s| {
            Class::parse(s.trim()).ok_or_else(|| {
                UserError::new(format!("unknown class '{s}'"))
                    .hint(format!(
                        "use one or more of: {}",
                        Class::ALL.map(|c| c.name()).join(", ")
                    ))
                    .into()
            })
        })
        .collect()
}

fn overrides(scan: &CleanupScanOpts) -> ScanOverrides {
    ScanOverrides {
        min_age: scan.min_age,
        temp_age: scan.temp_age,
    }
}

/// Resolves the connection (flags, environment, DataJoint config) for the
/// cleanup job code.
fn connection(global: &GlobalOpts) -> anyhow::Result<Connection> {
    let env = Environment::from_process();
    let mut resolved = connection::resolve(&global.connect, &env)?;
    // Connects once now, so a password prompt (on a terminal) comes first.
    drop(connection::connect(&mut resolved)?);
    Ok(Connection {
        options: resolved.options,
        dj: resolved.dj,
        env: DirEnv::capture(|k| std::env::var(k).ok()),
    })
}

/// The Spyglass base from the DataJoint config and the environment, without connecting.
fn base_from_env() -> anyhow::Result<Option<PathBuf>> {
    let env = Environment::from_process();
    let mut files = Vec::new();
    let dj = connection::load_dj_config(&env, &mut files)?;
    Ok(job::base_dir(
        dj.as_ref(),
        &DirEnv::capture(|k| std::env::var(k).ok()),
    )?)
}

fn progress_on(global: &GlobalOpts) -> bool {
    !global.quiet && !global.json && std::io::stderr().is_terminal()
}

// ---- JSON wire format ----

/// `cleanup scan --json`. Fields are only ever added.
#[derive(Debug, Serialize)]
pub(crate) struct ScanReport {
    /// Every class, always present: {"count": N, "bytes": B}.
    classes: BTreeMap<&'static str, Tally>,
    /// Untracked things left alone because they are younger than min_age (or temp_age).
    young: Tally,
    /// Grace period used, seconds.
    min_age_seconds: u64,
    /// Per store or directory, with its own class counts.
    roots: Vec<RootReport>,
    /// Per first folder inside a root.
    top_folders: Vec<FolderReport>,
    /// Untracked symlinks inside a store pointing outside it (never followed).
    symlinks_outside: Vec<PathBuf>,
    /// Untracked symlinks inside a store pointing at a tracked file (never acted on).
    symlinks_to_tracked: Vec<SymlinkReport>,
    /// Spyglass directories not scanned, and why; `located: false` is a problem.
    dirs_not_scanned: Vec<scan::DirNotScanned>,
    /// Guards that will refuse apply, and other notes.
    problems: Vec<scan::Problem>,
    /// Configured stores that were not scanned, and why.
    not_scanned: Vec<NotScanned>,
    /// Only with --list.
    #[serde(skip_serializing_if = "Option::is_none")]
    items: Option<Vec<ItemReport>>,
}

#[derive(Debug, Serialize)]
struct RootReport {
    /// label, kind, name, path, entries, rows, rows_in_scope.
    #[serde(flatten)]
    root: scan::Root,
    classes: BTreeMap<&'static str, Tally>,
}

#[derive(Debug, Serialize)]
struct FolderReport {
    root: String,
    folder: String,
    count: u64,
    bytes: u64,
}

#[derive(Debug, Serialize)]
struct SymlinkReport {
    link: PathBuf,
    target: PathBuf,
}

#[derive(Debug, Serialize)]
struct NotScanned {
    store: String,
    reason: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct ItemReport {
    class: Class,
    root: String,
    path: Option<PathBuf>,
    rel: String,
    size: u64,
    reason: String,
    subject: scan::Subject,
}

fn by_name(m: &BTreeMap<Class, Tally>) -> BTreeMap<&'static str, Tally> {
    m.iter().map(|(c, t)| (c.name(), *t)).collect()
}

impl ScanReport {
    /// The wire form of a scan summary; `items` only with --list.
    pub(crate) fn of(s: &ScanSummary, items: Option<Vec<ItemReport>>) -> ScanReport {
        ScanReport {
            classes: by_name(&s.classes),
            young: s.young,
            min_age_seconds: s.min_age.as_secs(),
            roots: s
                .roots
                .iter()
                .map(|(root, classes)| RootReport {
                    root: root.clone(),
                    classes: by_name(classes),
                })
                .collect(),
            top_folders: s
                .top_folders
                .iter()
                .map(|f| FolderReport {
                    root: f.root.clone(),
                    folder: f.folder.clone(),
                    count: f.tally.count,
                    bytes: f.tally.bytes,
                })
                .collect(),
            symlinks_outside: s.symlinks_outside.clone(),
            symlinks_to_tracked: s
                .symlinks_to_tracked
                .iter()
                .map(|(link, target)| SymlinkReport {
                    link: link.clone(),
                    target: target.clone(),
                })
                .collect(),
            dirs_not_scanned: s.dirs_not_scanned.clone(),
            problems: s.problems.clone(),
            not_scanned: s
                .not_scanned
                .iter()
                .map(|(store, reason)| NotScanned {
                    store: store.clone(),
                    reason: reason.clone(),
                })
                .collect(),
            items,
        }
    }
}

fn items(s: &Scan, only: &[Class]) -> Vec<ItemReport> {
    s.items
        .iter()
        .filter(|i| only.is_empty() || only.contains(&i.class))
        .map(|i| ItemReport {
            class: i.class,
            root: s.roots[i.root].label.clone(),
            path: i.path.clone(),
            rel: i.rel.clone(),
            size: i.size,
            reason: i.reason.clone(),
            subject: i.subject.clone(),
        })
        .collect()
}

fn render(r: &ScanReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{:<16} {:>9} {:>12}", "class", "count", "size");
    for c in Class::ALL {
        let t = r.classes.get(c.name()).copied().unwrap_or_default();
        let note = if c == Class::Dangling && t.count > 0 {
            "  (files lost? report only)"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "{:<16} {:>9} {:>12}{note}",
            c.name(),
            t.count,
            output::human_bytes(t.bytes)
        );
    }
    if r.young.count > 0 {
        let _ = writeln!(
            s,
            "\n{} item(s), {}, left alone: modified within the grace period (--min-age {}) or fresh temp files",
            r.young.count,
            output::human_bytes(r.young.bytes),
            humantime::format_duration(Duration::from_secs(r.min_age_seconds))
        );
    }
    let _ = writeln!(s, "\nscanned");
    for root in &r.roots {
        let own = root
            .root
            .min_age_seconds
            .map(|m| {
                format!(
                    "  (grace period {}, [cleanup.stores] min_age)",
                    humantime::format_duration(Duration::from_secs(m))
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  {:<24} {:>9} entries {:>9} rows  {}{own}",
            root.root.label,
            root.root.entries,
            root.root.rows,
            root.root.path.display()
        );
    }
    for n in &r.not_scanned {
        let _ = writeln!(s, "  store {:<18} not scanned: {}", n.store, n.reason);
    }
    for d in &r.dirs_not_scanned {
        let _ = writeln!(
            s,
            "  {:<24} not scanned: {}{}",
            format!("{} directory", d.dir.key()),
            d.reason,
            d.path
                .as_ref()
                .map(|p| format!(" ({})", p.display()))
                .unwrap_or_default()
        );
    }
    for l in &r.symlinks_to_tracked {
        let _ = writeln!(
            s,
            "note: untracked symlink points at a tracked file (left alone): {} -> {}",
            l.link.display(),
            l.target.display()
        );
    }
    for l in &r.symlinks_outside {
        let _ = writeln!(
            s,
            "note: untracked symlink points outside its store (not followed): {}",
            l.display()
        );
    }
    for p in &r.problems {
        match p.guard {
            Some(g) => {
                let _ = writeln!(
                    s,
                    "problem: {} (apply will refuse: {})",
                    p.message,
                    g.name()
                );
            }
            None => {
                let _ = writeln!(s, "note: {}", p.message);
            }
        }
    }
    s
}

/// `--list`: one absolute path per line (for scripts), for every item with
/// a place on disk; `with_class`: the class, a tab, then the path, and also
/// the items that are rows only (an `~external` row whose file is gone or
/// still named by a used row, an orphan `analysis_nwbfile` row), described,
/// never as a path: a script that removes what `--list` prints must not
/// reach a file another row still names, nor resolve a store-relative name
/// against its own working directory.
fn list_lines(r: &ScanReport, with_class: bool) -> String {
    let mut s = String::new();
    for i in r.items.iter().flatten() {
        match &i.path {
            Some(p) => {
                if with_class {
                    s.push_str(i.class.name());
                    s.push('\t');
                }
                let _ = writeln!(s, "{}", p.display());
            }
            None if with_class => {
                let what = match &i.subject {
                    scan::Subject::ExternalRow { schema, store, .. } => {
                        format!(
                            "row of `{schema}`.`~external_{store}` for {} (no file of its own)",
                            i.rel
                        )
                    }
                    _ => format!("row {}", i.rel),
                };
                let _ = writeln!(s, "{}\t{what}", i.class.name());
            }
            None => {}
        }
    }
    s
}

fn do_scan(ctx: &mut Context, global: &GlobalOpts) -> anyhow::Result<Scan> {
    if progress_on(global) {
        eprintln!("scanning stores and directories ...");
    }
    let s = ctx.scan()?;
    timings(&s);
    Ok(s)
}

/// For profiling a scan of a real lab's stores.
fn timings(s: &Scan) {
    if std::env::var_os("SPYGLASS_ADMIN_TIMINGS").is_some() {
        for (phase, at) in &s.timings {
            eprintln!("timing: {:>8.3} s  {phase}", at.as_secs_f64());
        }
    }
}

fn scan_cmd(
    global: &GlobalOpts,
    settings: &Settings,
    a: &CleanupScanOpts,
) -> anyhow::Result<ExitStatus> {
    let only = classes(&a.only)?;
    let conn = connection(global)?;
    let mut ctx = job::open_for_scan(settings, &conn, &overrides(a))?;
    let s = do_scan(&mut ctx, global)?;
    let sum = job::summarize(&s, &only, ctx.opts.min_age);
    let r = ScanReport::of(&sum, a.list.then(|| items(&s, &only)));
    if global.json {
        output::print_json(&r)?;
    } else if a.list {
        output::print_out(&list_lines(&r, a.with_class))?;
    } else {
        output::print_out(&render(&r))?;
    }
    Ok(if sum.findings {
        ExitStatus::Findings
    } else {
        ExitStatus::Success
    })
}

fn refused(e: JobError) -> anyhow::Error {
    match e {
        JobError::Cleanup(CleanupError::Refused { guard, detail }) => UserError::new(format!(
            "cleanup refused by the {} guard, nothing was changed: {detail}",
            guard.name()
        ))
        .hint(output::guard_hint(guard))
        .into(),
        other => other.into(),
    }
}

/// Asks on the terminal; `Ok(None)` when there is no terminal.
fn confirm(question: &str) -> anyhow::Result<Option<bool>> {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Ok(None);
    }
    let mut err = std::io::stderr().lock();
    write!(err, "{question} [y/N] ")?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(Some(matches!(
        line.trim(),
        "y" | "Y" | "yes" | "YES" | "Yes"
    )))
}

fn no_terminal(what: &str) -> anyhow::Error {
    UserError::new(format!(
        "nothing done: {what} needs confirmation and there is no terminal to ask on"
    ))
    .hint("pass --yes to confirm non-interactively (for cron jobs and scripts)")
    .into()
}

/// `cleanup apply --json`. Fields are only ever added.
#[derive(Debug, Serialize)]
pub(crate) struct ApplyJson {
    /// The quarantine run directory, or null for --delete / nothing done.
    run: Option<PathBuf>,
    /// What was acted on, per class (every class present).
    done: BTreeMap<&'static str, Tally>,
    /// Items a re-check kept, with the reason.
    skipped: Vec<apply::Outcome>,
    /// Items moved, then put back (with their rows) before the run ended,
    /// because a row named them after the move; with absent_ms.
    returned: Vec<apply::Outcome>,
    /// The longest time from a move to the database check after its batch, ms.
    window_ms: f64,
    /// Every item (only with --list).
    #[serde(skip_serializing_if = "Option::is_none")]
    items: Option<Vec<apply::Outcome>>,
}

impl ApplyJson {
    /// The wire form of an apply summary; every item only with --list.
    pub(crate) fn of(a: &ApplySummary, list: bool) -> ApplyJson {
        ApplyJson {
            run: a.run.clone(),
            done: by_name(&a.done),
            skipped: a.skipped.clone(),
            returned: a.returned.clone(),
            window_ms: a.window_ms,
            items: list.then(|| a.outcomes.clone()),
        }
    }
}

fn apply_cmd(
    global: &GlobalOpts,
    settings: &Settings,
    a: &crate::args::CleanupApplyArgs,
) -> anyhow::Result<ExitStatus> {
    let only = classes(&a.scan.only)?;
    let disposal = if a.delete {
        Disposal::Delete
    } else {
        let base = base_from_env()?;
        Disposal::Quarantine(job::quarantine_dir(
            a.quarantine.as_deref(),
            settings,
            base.as_deref(),
        )?)
    };
    let qdir = match &disposal {
        Disposal::Quarantine(q) => Some(q.clone()),
        Disposal::Delete => None,
    };
    let max_fraction = job::max_fraction(a.max_fraction, settings)?;
    let conn = connection(global)?;
    let mut ctx = Context::open(settings, &conn, &overrides(&a.scan), qdir.as_deref())?;
    let opts = ApplyOptions {
        only: only.clone(),
        min_age: ctx.opts.min_age,
        disposal: disposal.clone(),
        max_fraction,
        include_rows: a.include_rows,
    };
    if progress_on(global) {
        eprintln!("scanning stores and directories ...");
    }
    let prepared = job::prepare(&mut ctx, opts).map_err(refused)?;
    timings(&prepared.scan);
    if prepared.selected.is_empty() {
        if global.json {
            output::print_json(&ApplyJson::of(&ApplySummary::nothing(), a.scan.list))?;
        } else {
            output::print_out("nothing to clean\n")?;
        }
        return Ok(ExitStatus::Success);
    }
    let s = &prepared.scan;
    let bytes: u64 = prepared.selected.iter().map(|&n| s.items[n].size).sum();
    if !a.yes {
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for &n in &prepared.selected {
            *counts.entry(s.items[n].class.name()).or_default() += 1;
        }
        let what = counts
            .iter()
            .map(|(c, n)| format!("{n} {c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let question = match &disposal {
            Disposal::Quarantine(q) => format!(
                "Move {what} ({}) to quarantine under {}?",
                output::human_bytes(bytes),
                q.display()
            ),
            Disposal::Delete => format!("DELETE {what} ({}) for good?", output::human_bytes(bytes)),
        };
        match confirm(&question)? {
            None => return Err(no_terminal("cleanup apply")),
            Some(false) => {
                eprintln!("nothing done");
                return Ok(ExitStatus::Findings);
            }
            Some(true) => {}
        }
    }
    let show = progress_on(global);
    let mut progress = |done: usize, total: usize| {
        if show && (done % 1000 == 0 || done == total) {
            eprint!("\r{done}/{total} items");
            if done == total {
                eprintln!();
            }
        }
    };
    let rep = job::execute(&mut ctx, &prepared, &mut progress)?;
    if global.json {
        output::print_json(&ApplyJson::of(&rep, a.scan.list))?;
    } else {
        let mut out = String::new();
        if a.scan.list {
            for o in &rep.outcomes {
                let _ = writeln!(out, "{:<11} {:<15} {}", o.action, o.class.name(), o.what);
            }
        }
        let n: u64 = rep.done.values().map(|t| t.count).sum();
        let b: u64 = rep.done.values().map(|t| t.bytes).sum();
        match &rep.run {
            Some(r) => {
                let _ = writeln!(
                    out,
                    "quarantined {n} item(s), {} in {}",
                    output::human_bytes(b),
                    r.display()
                );
                let _ = writeln!(
                    out,
                    "undo with: spyglass-admin cleanup restore {}",
                    r.display()
                );
            }
            None => {
                let _ = writeln!(out, "deleted {n} item(s), {}", output::human_bytes(b));
            }
        }
        for o in &rep.skipped {
            let _ = writeln!(
                out,
                "kept {} {}: {}",
                o.class.name(),
                o.what,
                o.reason.as_deref().unwrap_or("")
            );
        }
        for o in &rep.returned {
            let _ = writeln!(
                out,
                "put back {} {} after {:.1} ms: {}",
                o.class.name(),
                o.what,
                o.absent_ms.unwrap_or(0.0),
                o.reason.as_deref().unwrap_or("")
            );
        }
        output::print_out(&out)?;
    }
    Ok(if rep.findings() {
        ExitStatus::Findings
    } else {
        ExitStatus::Success
    })
}

fn resolve_run(run: &Path, flag: Option<&Path>, settings: &Settings) -> anyhow::Result<PathBuf> {
    if run.join("manifest.jsonl").is_file() {
        return Ok(run.to_owned());
    }
    let base = base_from_env()?;
    let q = job::quarantine_dir(flag, settings, base.as_deref())?;
    let p = q.join(run);
    if p.join("manifest.jsonl").is_file() {
        return Ok(p);
    }
    Err(UserError::new(format!(
        "no quarantine run '{}' (looked in {})",
        run.display(),
        q.display()
    ))
    .hint("pass the run directory printed by cleanup apply, or its name with --quarantine DIR")
    .into())
}

#[derive(Debug, Serialize)]
struct RestoreJson {
    run: PathBuf,
    restored: u64,
    not_restored: u64,
    items: Vec<quarantine::Restored>,
}

/// The schema of a saved row's `` `db`.`table` `` (backticks doubled inside).
fn schema_of(qualified: &str) -> Option<String> {
    let rest = qualified.strip_prefix('`')?;
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '`' {
            if chars.peek() == Some(&'`') {
                chars.next();
                out.push('`');
                continue;
            }
            return (chars.next() == Some('.')).then_some(out);
        }
        out.push(c);
    }
    None
}

/// Refuses, naming the privilege, before anything goes back when the
/// account may not INSERT the run's rows again (a restore that put the
/// files back and then failed at a row would leave them untracked).
fn check_restore_privileges(
    session: &mut spyglass_db::Session,
    info: &quarantine::RunInfo,
) -> anyhow::Result<()> {
    use spyglass_privileges::preflight::{self, SchemaPrivilege};
    let needs: Vec<SchemaPrivilege> = info
        .entries
        .iter()
        .filter_map(|e| e.row.as_ref())
        .filter_map(|r| {
            let schema = schema_of(&r.table)?;
            Some(SchemaPrivilege {
                schema,
                privilege: "INSERT".into(),
                statement: format!("INSERT INTO {}", r.table),
            })
        })
        .collect();
    let held = spyglass_privileges::grants::current_privileges(session)?;
    super::refuse_unless_held(
        held.account.clone(),
        preflight::missing_on_schemas(&held, &needs),
        "restore the run as an account that may INSERT there (the one that applied it, or root); nothing was put back",
    )
}

fn restore_cmd(
    global: &GlobalOpts,
    settings: &Settings,
    a: &crate::args::CleanupRestoreArgs,
) -> anyhow::Result<ExitStatus> {
    let dir = resolve_run(&a.run, a.quarantine.as_deref(), settings)?;
    let info = quarantine::read_run(&dir)?;
    if let Some(when) = &info.restored {
        return Err(UserError::new(format!(
            "quarantine run {} was restored already ({when}); nothing is left in it",
            dir.display()
        ))
        .hint("its manifest stays as the record; cleanup purge removes it with the other old runs")
        .into());
    }
    let mut session = if info.entries.iter().any(|e| e.row.is_some()) {
        let env = Environment::from_process();
        let mut resolved = connection::resolve(&global.connect, &env)?;
        Some(connection::connect(&mut resolved)?)
    } else {
        None
    };
    if let Some(s) = session.as_mut() {
        check_restore_privileges(s, &info)?;
    }
    let items = quarantine::restore(&dir, session.as_mut().map(|s| s.conn()))?;
    let ok = items.iter().filter(|i| i.outcome == "restored").count() as u64;
    let bad = items.len() as u64 - ok;
    if global.json {
        output::print_json(&RestoreJson {
            run: dir.clone(),
            restored: ok,
            not_restored: bad,
            items,
        })?;
    } else {
        let mut out = String::new();
        for i in items.iter().filter(|i| i.outcome != "restored") {
            let _ = writeln!(
                out,
                "kept in quarantine: {} {}: {}",
                i.class.name(),
                i.target,
                i.outcome
            );
        }
        let _ = writeln!(out, "restored {ok} item(s) from {}", dir.display());
        if bad == 0 {
            let _ = writeln!(
                out,
                "the run's manifest stays, marked restored, until cleanup purge removes it"
            );
        }
        output::print_out(&out)?;
    }
    Ok(if bad == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::Findings
    })
}

#[derive(Debug, Serialize)]
struct PurgeJson {
    quarantine: PathBuf,
    purged: Vec<PurgedRun>,
}

#[derive(Debug, Serialize)]
struct PurgedRun {
    run: String,
    created: String,
    items: usize,
    bytes: u64,
}

fn purge_cmd(
    global: &GlobalOpts,
    settings: &Settings,
    a: &crate::args::CleanupPurgeArgs,
) -> anyhow::Result<ExitStatus> {
    let older = a.older_than.0;
    let base = base_from_env()?;
    let q = job::quarantine_dir(a.quarantine.as_deref(), settings, base.as_deref())?;
    let now = SystemTime::now();
    let runs = quarantine::purgeable(&q, older, now)?;
    if !runs.is_empty() && !a.yes {
        let bytes: u64 = runs.iter().map(|r| r.bytes()).sum();
        match confirm(&format!(
            "Delete {} quarantine run(s), {}, for good?",
            runs.len(),
            output::human_bytes(bytes)
        ))? {
            None => return Err(no_terminal("cleanup purge")),
            Some(false) => {
                eprintln!("nothing done");
                return Ok(ExitStatus::Findings);
            }
            Some(true) => {}
        }
    }
    let gone = if runs.is_empty() {
        Vec::new()
    } else {
        quarantine::purge(&q, older, now)?
    };
    let purged: Vec<PurgedRun> = gone
        .iter()
        .map(|r| PurgedRun {
            run: r.header.run.clone(),
            created: r.header.created.clone(),
            items: r.entries.len(),
            bytes: r.bytes(),
        })
        .collect();
    if global.json {
        output::print_json(&PurgeJson {
            quarantine: q,
            purged,
        })?;
    } else {
        let mut out = String::new();
        for p in &purged {
            let _ = writeln!(
                out,
                "purged {} ({} items, {})",
                p.run,
                p.items,
                output::human_bytes(p.bytes)
            );
        }
        let _ = writeln!(out, "{} run(s) purged from {}", purged.len(), q.display());
        output::print_out(&out)?;
    }
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_of_a_saved_row() {
        assert_eq!(schema_of("`lab`.`~external_raw`").as_deref(), Some("lab"));
        assert_eq!(schema_of("`a``b`.`t`").as_deref(), Some("a`b"));
        assert_eq!(schema_of("lab.t"), None);
    }
}
