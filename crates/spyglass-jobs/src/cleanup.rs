//! From `[cleanup]` settings and the DataJoint config to the cleanup
//! library's inputs (stores, Spyglass directories, scan and apply options),
//! and the aggregates a scan or an apply is reported with. Shared by the
//! `cleanup` commands and the nightly job's cleanup step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};
use spyglass_cleanup::apply::{self, ApplyOptions, ApplyReport, Disposal, Outcome};
use spyglass_cleanup::dirs::{self, DirKey, SpyglassDirs};
use spyglass_cleanup::inventory::{DirRule, Scope};
use spyglass_cleanup::scan::{self, Scan, ScanOptions, Setup, Tally};
use spyglass_cleanup::{store, Class};
use spyglass_db::dj_config::DjConfig;
use spyglass_db::{ConnectOptions, Session};

use crate::settings::{HumanDuration, Settings};
use crate::JobError;

/// The quarantine directory's name under the Spyglass base, when
/// `[cleanup] quarantine` is not set.
pub const DEFAULT_QUARANTINE: &str = "spyglass-admin-quarantine";

/// The fraction limit when neither a command line nor `[cleanup]
/// max_fraction` gives one.
pub const DEFAULT_MAX_FRACTION: f64 = 0.5;

/// The `SPYGLASS_<KEY>_DIR` variables of an environment (and only those, so
/// it never holds a password).
#[derive(Debug, Clone, Default)]
pub struct DirEnv(BTreeMap<String, String>);

impl DirEnv {
    /// Reads every Spyglass directory variable through `lookup` (e.g.
    /// `|k| std::env::var(k).ok()`).
    pub fn capture(lookup: impl Fn(&str) -> Option<String>) -> DirEnv {
        DirEnv(
            std::iter::once(DirKey::Base)
                .chain(DirKey::SUBDIRS)
                .filter_map(|k| {
                    let var = k.env_var();
                    lookup(&var).map(|v| (var, v))
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
}

/// Where the database is and what the DataJoint config says about stores
/// and directories: what cleanup needs from the caller's connection
/// resolution.
#[derive(Debug, Clone)]
pub struct Connection {
    /// How to connect (the password already resolved).
    pub options: ConnectOptions,
    /// The DataJoint config, if one was found.
    pub dj: Option<DjConfig>,
    /// The Spyglass directory variables.
    pub env: DirEnv,
}

/// The Spyglass directories from a DataJoint config's `custom` and the
/// environment.
pub fn spyglass_dirs(
    dj: Option<&DjConfig>,
    env: &DirEnv,
) -> Result<Option<SpyglassDirs>, JobError> {
    let empty = Map::<String, Value>::new();
    let custom = dj.map_or(&empty, |d| &d.custom);
    Ok(dirs::resolve(custom, |k| env.get(k))?)
}

/// The Spyglass base directory, if configured.
pub fn base_dir(dj: Option<&DjConfig>, env: &DirEnv) -> Result<Option<PathBuf>, JobError> {
    Ok(spyglass_dirs(dj, env)?.and_then(|d| d.get(DirKey::Base).map(|b| b.path.clone())))
}

/// The quarantine directory: `flag`, else `[cleanup] quarantine`, else
/// `<base>/spyglass-admin-quarantine`.
pub fn quarantine_dir(
    flag: Option<&Path>,
    settings: &Settings,
    base: Option<&Path>,
) -> Result<PathBuf, JobError> {
    if let Some(q) = flag.or(settings.cleanup.quarantine.as_deref()) {
        return Ok(std::path::absolute(q).unwrap_or_else(|_| q.to_owned()));
    }
    base.map(|b| b.join(DEFAULT_QUARANTINE))
        .ok_or(JobError::NoQuarantine)
}

/// The fraction limit: `flag`, else `[cleanup] max_fraction`, else 0.5; it
/// must lie in 0..=1.
pub fn max_fraction(flag: Option<f64>, settings: &Settings) -> Result<f64, JobError> {
    let f = flag
        .or(settings.cleanup.max_fraction)
        .unwrap_or(DEFAULT_MAX_FRACTION);
    if (0.0..=1.0).contains(&f) {
        Ok(f)
    } else {
        Err(JobError::MaxFraction(f))
    }
}

/// Durations given for one run (a command line's `--min-age`, `--temp-age`);
/// `None` comes from `[cleanup]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScanOverrides {
    /// Grace period.
    pub min_age: Option<HumanDuration>,
    /// Age of stale temp entries.
    pub temp_age: Option<HumanDuration>,
}

/// The scan options `[cleanup]` and `over` give (no connection yet).
pub fn scan_options(settings: &Settings, over: &ScanOverrides) -> ScanOptions {
    let c = &settings.cleanup;
    let mut opts = ScanOptions::default();
    if !c.schemas.is_empty() {
        opts.scope = Scope::patterns(c.schemas.clone());
    }
    if let Some(d) = over.min_age.or(c.min_age) {
        opts.min_age = d.0;
    }
    if let Some(d) = over.temp_age.or(c.temp_age) {
        opts.temp_age = d.0;
    }
    for (name, rule) in &c.stores {
        opts.stores.insert(
            name.clone(),
            spyglass_cleanup::scan::StoreRule {
                exclude: rule.exclude,
                min_age: rule.min_age.map(|d| d.0),
            },
        );
    }
    for t in &c.tracked_dirs {
        opts.dir_rules.push((
            t.dir,
            DirRule {
                column: t.column.clone(),
                table: t.table.clone(),
            },
        ));
    }
    opts
}

/// An open connection, the stores and directories, and the scan options.
pub struct Context {
    /// The connection the scan reads the inventory with.
    pub session: Session,
    /// Stores and directories.
    pub setup: Setup,
    /// Scan options.
    pub opts: ScanOptions,
    /// The Spyglass base, if configured.
    pub base: Option<PathBuf>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("setup", &self.setup)
            .field("opts", &self.opts)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// Resolves stores and directories, connects, and builds the scan
    /// options; `skip` (a quarantine directory) is never scanned.
    pub fn open(
        settings: &Settings,
        conn: &Connection,
        over: &ScanOverrides,
        skip: Option<&Path>,
    ) -> Result<Context, JobError> {
        let dirs = spyglass_dirs(conn.dj.as_ref(), &conn.env)?;
        let empty = Map::new();
        let cfg_stores = conn.dj.as_ref().map_or(&empty, |d| &d.stores);
        let stores = store::stores(cfg_stores, dirs.as_ref())?;
        if stores.is_empty() {
            return Err(JobError::NoStores);
        }
        let mut opts = scan_options(settings, over);
        if let Some(q) = skip {
            opts.skip.push(q.to_owned());
        }
        let base = dirs
            .as_ref()
            .and_then(|d| d.get(DirKey::Base))
            .map(|d| d.path.clone());
        let session = spyglass_db::connect(&conn.options)?;
        // One more connection reads `~external` tables in parallel.
        opts.connect = Some(conn.options.clone());
        Ok(Context {
            session,
            setup: Setup { stores, dirs },
            opts,
            base,
        })
    }

    /// Scans.
    pub fn scan(&mut self) -> Result<Scan, JobError> {
        Ok(scan::scan(&mut self.session, &self.setup, &self.opts)?)
    }
}

/// Every class with an empty tally.
pub fn empty_classes() -> BTreeMap<Class, Tally> {
    Class::ALL
        .into_iter()
        .map(|c| (c, Tally::default()))
        .collect()
}

/// Counts per first folder inside a root.
#[derive(Debug, Clone)]
pub struct FolderTally {
    /// The root's label.
    pub root: String,
    /// The folder (`.` for files directly in the root).
    pub folder: String,
    /// Items and bytes.
    pub tally: Tally,
}

/// What a scan found, aggregated: what `cleanup scan` reports and the
/// nightly cleanup step's detail.
#[derive(Debug, Clone)]
pub struct ScanSummary {
    /// Every class.
    pub classes: BTreeMap<Class, Tally>,
    /// Left alone because younger than the grace period (or fresh temp files).
    pub young: Tally,
    /// The grace period used.
    pub min_age: Duration,
    /// Every root, with its own class counts.
    pub roots: Vec<(scan::Root, BTreeMap<Class, Tally>)>,
    /// Per first folder inside a root (items on disk only).
    pub top_folders: Vec<FolderTally>,
    /// Untracked symlinks inside a store pointing outside it (never followed).
    pub symlinks_outside: Vec<PathBuf>,
    /// Untracked symlinks pointing at a tracked file (link, target); never acted on.
    pub symlinks_to_tracked: Vec<(PathBuf, PathBuf)>,
    /// Spyglass directories not scanned, and why.
    pub dirs_not_scanned: Vec<scan::DirNotScanned>,
    /// Guards that will refuse apply, and other notes.
    pub problems: Vec<scan::Problem>,
    /// Configured stores that were not scanned (store, why).
    pub not_scanned: Vec<(String, String)>,
    /// True when the scan leaves something to do or to look at: items of
    /// the classes asked for, a guard that will refuse apply, a directory
    /// that could not be located.
    pub findings: bool,
}

/// Aggregates `s`; `only` (empty = all) selects the classes that count as findings.
pub fn summarize(s: &Scan, only: &[Class], min_age: Duration) -> ScanSummary {
    let mut roots: Vec<(scan::Root, BTreeMap<Class, Tally>)> = s
        .roots
        .iter()
        .map(|r| (r.clone(), empty_classes()))
        .collect();
    let mut folders: BTreeMap<(String, String), Tally> = BTreeMap::new();
    for i in &s.items {
        let t = roots[i.root].1.entry(i.class).or_default();
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
            e.count += 1;
            e.bytes += i.size;
        }
    }
    let young = s.young.iter().fold(Tally::default(), |mut t, i| {
        t.count += 1;
        t.bytes += i.size;
        t
    });
    let mut classes = empty_classes();
    classes.extend(s.tallies());
    ScanSummary {
        classes,
        young,
        min_age,
        roots,
        top_folders: folders
            .into_iter()
            .map(|((root, folder), tally)| FolderTally {
                root,
                folder,
                tally,
            })
            .collect(),
        symlinks_outside: s.symlinks_outside.clone(),
        symlinks_to_tracked: s.symlinks_to_tracked.clone(),
        dirs_not_scanned: s.dirs_not_scanned.clone(),
        problems: s.problems.clone(),
        not_scanned: s.not_scanned.clone(),
        findings: s
            .items
            .iter()
            .any(|i| only.is_empty() || only.contains(&i.class))
            || s.problems.iter().any(|p| p.guard.is_some())
            || s.dirs_not_scanned.iter().any(|d| !d.located),
    }
}

/// What an apply did, aggregated.
#[derive(Debug, Clone)]
pub struct ApplySummary {
    /// The quarantine run directory, or `None` for delete / nothing done.
    pub run: Option<PathBuf>,
    /// What was acted on, per class (every class present).
    pub done: BTreeMap<Class, Tally>,
    /// Items a re-check kept, with the reason.
    pub skipped: Vec<Outcome>,
    /// Items moved, then put back because a row named them after the move.
    pub returned: Vec<Outcome>,
    /// The longest time from a move to the database check after its batch, ms.
    pub window_ms: f64,
    /// Every item.
    pub outcomes: Vec<Outcome>,
}

impl ApplySummary {
    /// Nothing was selected.
    pub fn nothing() -> ApplySummary {
        ApplySummary {
            run: None,
            done: empty_classes(),
            skipped: Vec::new(),
            returned: Vec::new(),
            window_ms: 0.0,
            outcomes: Vec::new(),
        }
    }

    /// Aggregates a report.
    pub fn of(rep: ApplyReport) -> ApplySummary {
        let mut done = empty_classes();
        for o in rep.done() {
            let t = done.entry(o.class).or_default();
            t.count += 1;
            t.bytes += o.size;
        }
        ApplySummary {
            skipped: rep.skipped().cloned().collect(),
            returned: rep.returned().cloned().collect(),
            run: rep.run,
            done,
            window_ms: rep.window_ms,
            outcomes: rep.outcomes,
        }
    }

    /// True when a re-check kept something or something was put back.
    pub fn findings(&self) -> bool {
        !self.skipped.is_empty() || !self.returned.is_empty()
    }
}

/// A scan, the items an apply would act on, and its options: what a caller
/// confirms before [`execute`].
#[derive(Debug)]
pub struct Prepared {
    /// The scan.
    pub scan: Scan,
    /// Indexes into `scan.items`.
    pub selected: Vec<usize>,
    /// The options the guards were checked with.
    pub opts: ApplyOptions,
}

/// Scans and checks every guard; nothing is changed yet.
pub fn prepare(ctx: &mut Context, opts: ApplyOptions) -> Result<Prepared, JobError> {
    let scan = ctx.scan()?;
    let selected = apply::select(&scan, &opts);
    apply::check_guards(&scan, &opts, &selected)?;
    check_delete_privileges(&mut ctx.session, &scan, &selected)?;
    Ok(Prepared {
        scan,
        selected,
        opts,
    })
}

/// The schemas whose rows the selected items delete (`unused_external`,
/// `orphan_row`), in order, each once.
fn row_schemas(scan: &Scan, selected: &[usize]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for &n in selected {
        let schema = match &scan.items[n].subject {
            scan::Subject::ExternalRow { schema, .. }
            | scan::Subject::AnalysisRow { schema, .. } => schema,
            _ => continue,
        };
        if !out.contains(schema) {
            out.push(schema.clone());
        }
    }
    out
}

/// Refuses (the privileges guard) when the connected account may not
/// delete rows the run would delete: checked before the first move, so a
/// run never quarantines a row's file and then fails at its DELETE.
fn check_delete_privileges(
    session: &mut Session,
    scan: &Scan,
    selected: &[usize],
) -> Result<(), JobError> {
    let schemas = row_schemas(scan, selected);
    if schemas.is_empty() {
        return Ok(());
    }
    let held = spyglass_privileges::grants::current_privileges(session).map_err(|e| match e {
        spyglass_privileges::Error::Db(d) => JobError::Db(d),
        other => JobError::Cleanup(spyglass_cleanup::CleanupError::Config(other.to_string())),
    })?;
    let lacking: Vec<String> = schemas
        .iter()
        .filter(|s| !held.has_on_schema(s, "DELETE"))
        .map(|s| spyglass_db::quote::ident(s))
        .collect();
    if lacking.is_empty() {
        return Ok(());
    }
    Err(JobError::Cleanup(spyglass_cleanup::CleanupError::Refused {
        guard: spyglass_cleanup::Guard::Privileges,
        detail: format!(
            "{} lacks DELETE on {} (rows this run would delete)",
            held.account,
            lacking.join(", ")
        ),
    }))
}

/// Acts on the prepared items (`progress(done, total)` after each).
pub fn execute(
    ctx: &mut Context,
    p: &Prepared,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ApplySummary, JobError> {
    if p.selected.is_empty() {
        return Ok(ApplySummary::nothing());
    }
    let rep = apply::apply(
        &mut ctx.session,
        &p.scan,
        &ctx.setup,
        &p.opts,
        &p.selected,
        progress,
    )?;
    Ok(ApplySummary::of(rep))
}

/// The quarantine to skip when only scanning: `[cleanup] quarantine`, or
/// the default one under the base (which is known only once the context is open).
pub fn open_for_scan(
    settings: &Settings,
    conn: &Connection,
    over: &ScanOverrides,
) -> Result<Context, JobError> {
    let q = settings.cleanup.quarantine.clone();
    let mut ctx = Context::open(settings, conn, over, q.as_deref())?;
    if q.is_none() {
        if let Some(b) = &ctx.base {
            ctx.opts.skip.push(b.join(DEFAULT_QUARANTINE));
        }
    }
    Ok(ctx)
}

/// Apply options from settings: every actionable class, quarantine (never
/// delete), no rows, the configured fraction limit.
pub fn apply_options(
    settings: &Settings,
    conn: &Connection,
    min_age: Duration,
) -> Result<ApplyOptions, JobError> {
    let base = base_dir(conn.dj.as_ref(), &conn.env)?;
    Ok(ApplyOptions {
        only: Vec::new(),
        min_age,
        disposal: Disposal::Quarantine(quarantine_dir(None, settings, base.as_deref())?),
        max_fraction: max_fraction(None, settings)?,
        include_rows: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_env_keeps_only_directory_variables() {
        let env = DirEnv::capture(|k| match k {
            "SPYGLASS_BASE_DIR" => Some("/b".into()),
            "DJ_PASS" => Some("secret".into()),
            _ => None,
        });
        assert_eq!(env.get("SPYGLASS_BASE_DIR").as_deref(), Some("/b"));
        assert!(!format!("{env:?}").contains("secret"));
    }

    #[test]
    fn fraction_limit() {
        let s = Settings::default();
        assert_eq!(max_fraction(None, &s).unwrap(), 0.5);
        assert_eq!(max_fraction(Some(0.1), &s).unwrap(), 0.1);
        assert_eq!(
            max_fraction(Some(1.5), &s).unwrap_err().to_string(),
            "the fraction limit 1.5 is not between 0 and 1"
        );
    }

    #[test]
    fn quarantine_defaults_under_the_base() {
        let s = Settings::default();
        assert_eq!(
            quarantine_dir(None, &s, Some(Path::new("/base"))).unwrap(),
            Path::new("/base/spyglass-admin-quarantine")
        );
        assert!(matches!(
            quarantine_dir(None, &s, None),
            Err(JobError::NoQuarantine)
        ));
    }
}
