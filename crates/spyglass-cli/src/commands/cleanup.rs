//! `spyglass-admin cleanup scan | apply | restore RUN | purge`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use spyglass_cleanup::apply::{self, ApplyOptions, Disposal};
use spyglass_cleanup::dirs::{self, DirKey};
use spyglass_cleanup::inventory::{DirRule, Scope};
use spyglass_cleanup::quarantine;
use spyglass_cleanup::scan::{self, Scan, ScanOptions, Setup, Tally};
use spyglass_cleanup::{store, Class, CleanupError, Guard};

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

fn duration(value: &str, what: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(value).map_err(|e| {
        UserError::new(format!("{what} '{value}' is not a duration: {e}"))
            .hint("write it like 24h, 36h, 7d or 30d")
            .into()
    })
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

/// Connection, stores and directories, scan options.
struct Context {
    session: spyglass_db::Session,
    setup: Setup,
    opts: ScanOptions,
    base: Option<PathBuf>,
}

fn context(
    global: &GlobalOpts,
    settings: &Settings,
    scan: &CleanupScanOpts,
    skip: Option<&Path>,
) -> anyhow::Result<Context> {
    let env = Environment::from_process();
    let mut resolved = connection::resolve(&global.connect, &env)?;
    let custom = resolved
        .dj
        .as_ref()
        .map(|d| d.custom.clone())
        .unwrap_or_default();
    let dirs = dirs::resolve(&custom, |k| std::env::var(k).ok())?;
    let cfg_stores = resolved
        .dj
        .as_ref()
        .map(|d| d.stores.clone())
        .unwrap_or_default();
    let stores = store::stores(&cfg_stores, dirs.as_ref())?;
    if stores.is_empty() {
        return Err(UserError::new("no DataJoint stores and no Spyglass directories are configured")
            .hint("run where dj_local_conf.json is (or set ~/.datajoint_config.json), with custom.spyglass_dirs.base or SPYGLASS_BASE_DIR set")
            .into());
    }
    let c = &settings.cleanup;
    let mut opts = ScanOptions::default();
    if !c.schemas.is_empty() {
        opts.scope = Scope::patterns(c.schemas.clone());
    }
    if let Some(v) = scan.min_age.as_deref().or(c.min_age.as_deref()) {
        opts.min_age = duration(v, "--min-age")?;
    }
    if let Some(v) = scan.temp_age.as_deref().or(c.temp_age.as_deref()) {
        opts.temp_age = duration(v, "--temp-age")?;
    }
    for t in &c.tracked_dirs {
        let key = DirKey::SUBDIRS
            .into_iter()
            .find(|k| k.key() == t.dir)
            .ok_or_else(|| {
                UserError::new(format!(
                    "[cleanup] tracked_dirs: unknown directory '{}'",
                    t.dir
                ))
                .hint("use a Spyglass directory key: sorting, recording, waveforms, video, export")
            })?;
        opts.dir_rules.push((
            key,
            DirRule {
                column: t.column.clone(),
                table: t.table.clone(),
            },
        ));
    }
    if let Some(q) = skip {
        opts.skip.push(q.to_owned());
    }
    let base = dirs
        .as_ref()
        .and_then(|d| d.get(DirKey::Base))
        .map(|d| d.path.clone());
    let session = connection::connect(&mut resolved)?;
    // One more connection reads `~external` tables in parallel.
    opts.connect = Some(resolved.options.clone());
    Ok(Context {
        session,
        setup: Setup { stores, dirs },
        opts,
        base,
    })
}

fn quarantine_dir(
    flag: Option<&Path>,
    settings: &Settings,
    base: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    if let Some(q) = flag.or(settings.cleanup.quarantine.as_deref()) {
        return Ok(std::path::absolute(q).unwrap_or_else(|_| q.to_owned()));
    }
    match base {
        Some(b) => Ok(b.join("spyglass-admin-quarantine")),
        None => Err(UserError::new("no quarantine directory")
            .hint("pass --quarantine DIR or set [cleanup] quarantine in spyglass-admin.toml")
            .into()),
    }
}

fn base_from_env(global: &GlobalOpts) -> anyhow::Result<Option<PathBuf>> {
    let env = Environment::from_process();
    let mut files = Vec::new();
    let dj = connection::load_dj_config(&env, &mut files)?;
    let custom = dj.map(|d| d.custom).unwrap_or_default();
    let _ = global;
    Ok(dirs::resolve(&custom, |k| std::env::var(k).ok())?
        .and_then(|d| d.get(DirKey::Base).map(|b| b.path.clone())))
}

fn progress_on(global: &GlobalOpts) -> bool {
    !global.quiet && !global.json && std::io::stderr().is_terminal()
}

// ---- JSON wire format ----

/// `cleanup scan --json`. Fields are only ever added.
#[derive(Debug, Serialize)]
struct ScanReport {
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
struct ItemReport {
    class: Class,
    root: String,
    path: Option<PathBuf>,
    rel: String,
    size: u64,
    reason: String,
    subject: scan::Subject,
}

fn empty_classes() -> BTreeMap<&'static str, Tally> {
    Class::ALL
        .into_iter()
        .map(|c| (c.name(), Tally::default()))
        .collect()
}

fn report(s: &Scan, only: &[Class], list: bool, min_age: Duration) -> ScanReport {
    let mut classes = empty_classes();
    for (c, t) in s.tallies() {
        classes.insert(c.name(), t);
    }
    let mut roots: Vec<RootReport> = s
        .roots
        .iter()
        .map(|r| RootReport {
            root: r.clone(),
            classes: empty_classes(),
        })
        .collect();
    let mut folders: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for i in &s.items {
        let t = roots[i.root].classes.entry(i.class.name()).or_default();
        t.count += 1;
        t.bytes += i.size;
        let top = match i.rel.split_once('/') {
            Some((f, _)) => f.to_owned(),
            None => ".".to_owned(),
        };
        if i.path.is_some() {
            let e = folders
                .entry((s.roots[i.root].label.clone(), top))
                .or_default();
            e.0 += 1;
            e.1 += i.size;
        }
    }
    let young = s.young.iter().fold(Tally::default(), |mut t, i| {
        t.count += 1;
        t.bytes += i.size;
        t
    });
    let items = list.then(|| {
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
    });
    ScanReport {
        classes,
        young,
        min_age_seconds: min_age.as_secs(),
        roots,
        top_folders: folders
            .into_iter()
            .map(|((root, folder), (count, bytes))| FolderReport {
                root,
                folder,
                count,
                bytes,
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
        let _ = writeln!(
            s,
            "  {:<24} {:>9} entries {:>9} rows  {}",
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

fn list_lines(r: &ScanReport) -> String {
    let mut s = String::new();
    for i in r.items.iter().flatten() {
        match &i.path {
            Some(p) => {
                let _ = writeln!(s, "{}", p.display());
            }
            None => {
                let _ = writeln!(s, "{}", i.rel);
            }
        }
    }
    s
}

fn do_scan(ctx: &mut Context, global: &GlobalOpts) -> anyhow::Result<Scan> {
    if progress_on(global) {
        eprintln!("scanning stores and directories ...");
    }
    let s = scan::scan(&mut ctx.session, &ctx.setup, &ctx.opts)?;
    // For profiling a scan of a real lab's stores.
    if std::env::var_os("SPYGLASS_ADMIN_TIMINGS").is_some() {
        for (phase, at) in &s.timings {
            eprintln!("timing: {:>8.3} s  {phase}", at.as_secs_f64());
        }
    }
    Ok(s)
}

fn scan_cmd(
    global: &GlobalOpts,
    settings: &Settings,
    a: &CleanupScanOpts,
) -> anyhow::Result<ExitStatus> {
    let only = classes(&a.only)?;
    let q = settings.cleanup.quarantine.clone();
    let mut ctx = context(global, settings, a, q.as_deref())?;
    if q.is_none() {
        if let Some(b) = &ctx.base {
            ctx.opts.skip.push(b.join("spyglass-admin-quarantine"));
        }
    }
    let s = do_scan(&mut ctx, global)?;
    let r = report(&s, &only, a.list, ctx.opts.min_age);
    if global.json {
        output::print_json(&r)?;
    } else if a.list {
        output::print_out(&list_lines(&r))?;
    } else {
        output::print_out(&render(&r))?;
    }
    let findings = s
        .items
        .iter()
        .any(|i| only.is_empty() || only.contains(&i.class))
        || s.problems.iter().any(|p| p.guard.is_some())
        || s.dirs_not_scanned.iter().any(|d| !d.located);
    Ok(if findings {
        ExitStatus::Findings
    } else {
        ExitStatus::Success
    })
}

fn guard_hint(g: Guard) -> &'static str {
    match g {
        Guard::EmptyTrackedSet => "check that the DataJoint config points at the lab's database and the right directories; nothing tracked next to files usually means a test or new database against a production directory",
        Guard::StoreNotConfigured => "add the store to stores in the DataJoint config (or narrow [cleanup] schemas); without its location its files cannot be protected",
        Guard::MaxFraction => "look at `spyglass-admin cleanup scan --list`; if that much really should go, raise --max-fraction or use --only",
        Guard::StoreDirMismatch => "make stores.<name>.location in the DataJoint config equal the Spyglass directory (custom.spyglass_dirs / SPYGLASS_<KEY>_DIR)",
        Guard::QuarantinePlacement => "choose a --quarantine directory outside the stores but on the same file system (e.g. under the Spyglass base)",
        _ => "see the README section on cleanup guards",
    }
}

fn refused(e: CleanupError) -> anyhow::Error {
    match e {
        CleanupError::Refused { guard, detail } => UserError::new(format!(
            "cleanup refused by the {} guard, nothing was changed: {detail}",
            guard.name()
        ))
        .hint(guard_hint(guard))
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
struct ApplyJson {
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

fn apply_cmd(
    global: &GlobalOpts,
    settings: &Settings,
    a: &crate::args::CleanupApplyArgs,
) -> anyhow::Result<ExitStatus> {
    let only = classes(&a.scan.only)?;
    let base = base_from_env(global)?;
    let disposal = if a.delete {
        Disposal::Delete
    } else {
        Disposal::Quarantine(quarantine_dir(
            a.quarantine.as_deref(),
            settings,
            base.as_deref(),
        )?)
    };
    let qdir = match &disposal {
        Disposal::Quarantine(q) => Some(q.clone()),
        Disposal::Delete => None,
    };
    let mut ctx = context(global, settings, &a.scan, qdir.as_deref())?;
    let max_fraction = a
        .max_fraction
        .or(settings.cleanup.max_fraction)
        .unwrap_or(0.5);
    if !(0.0..=1.0).contains(&max_fraction) {
        return Err(UserError::new(format!(
            "--max-fraction {max_fraction} is not between 0 and 1"
        ))
        .into());
    }
    let opts = ApplyOptions {
        only: only.clone(),
        min_age: ctx.opts.min_age,
        disposal: disposal.clone(),
        max_fraction,
        include_rows: a.include_rows,
    };
    let s = do_scan(&mut ctx, global)?;
    let selected = apply::select(&s, &opts);
    apply::check_guards(&s, &opts, &selected).map_err(refused)?;
    if selected.is_empty() {
        if global.json {
            output::print_json(&ApplyJson {
                run: None,
                done: empty_classes(),
                skipped: vec![],
                returned: vec![],
                window_ms: 0.0,
                items: a.scan.list.then(Vec::new),
            })?;
        } else {
            output::print_out("nothing to clean\n")?;
        }
        return Ok(ExitStatus::Success);
    }
    let bytes: u64 = selected.iter().map(|&n| s.items[n].size).sum();
    if !a.yes {
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for &n in &selected {
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
    let rep = apply::apply(
        &mut ctx.session,
        &s,
        &ctx.setup,
        &opts,
        &selected,
        &mut progress,
    )?;
    let mut done = empty_classes();
    for o in rep.done() {
        let t = done.entry(o.class.name()).or_default();
        t.count += 1;
        t.bytes += o.size;
    }
    let skipped: Vec<apply::Outcome> = rep.skipped().cloned().collect();
    let returned: Vec<apply::Outcome> = rep.returned().cloned().collect();
    if global.json {
        output::print_json(&ApplyJson {
            run: rep.run.clone(),
            done,
            skipped: skipped.clone(),
            returned: returned.clone(),
            window_ms: rep.window_ms,
            items: a.scan.list.then(|| rep.outcomes.clone()),
        })?;
    } else {
        let mut out = String::new();
        if a.scan.list {
            for o in &rep.outcomes {
                let _ = writeln!(out, "{:<11} {:<15} {}", o.action, o.class.name(), o.what);
            }
        }
        let n: u64 = done.values().map(|t| t.count).sum();
        let b: u64 = done.values().map(|t| t.bytes).sum();
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
        for o in &skipped {
            let _ = writeln!(
                out,
                "kept {} {}: {}",
                o.class.name(),
                o.what,
                o.reason.as_deref().unwrap_or("")
            );
        }
        for o in &returned {
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
    Ok(if skipped.is_empty() && returned.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Findings
    })
}

fn resolve_run(
    run: &Path,
    flag: Option<&Path>,
    settings: &Settings,
    global: &GlobalOpts,
) -> anyhow::Result<PathBuf> {
    if run.join("manifest.jsonl").is_file() {
        return Ok(run.to_owned());
    }
    let base = base_from_env(global)?;
    let q = quarantine_dir(flag, settings, base.as_deref())?;
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

fn restore_cmd(
    global: &GlobalOpts,
    settings: &Settings,
    a: &crate::args::CleanupRestoreArgs,
) -> anyhow::Result<ExitStatus> {
    let dir = resolve_run(&a.run, a.quarantine.as_deref(), settings, global)?;
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
    let older = duration(&a.older_than, "--older-than")?;
    let base = base_from_env(global)?;
    let q = quarantine_dir(a.quarantine.as_deref(), settings, base.as_deref())?;
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
