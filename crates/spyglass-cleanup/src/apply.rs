//! Acting on a scan: guards first, then every item re-checked right before
//! its batch of moves, and asked about again after it: an item a row names
//! by then is put back (`returned`) before the run ends.
//!
//! The window: a writer that checked a file and then inserts its row while
//! the file is away finds it absent for at most the time from the move to
//! the check after its batch ([`ApplyReport::window_ms`], a few ms; batches
//! are at most [`BATCH`] items and [`BATCH_TIME`] long). The session reads
//! uncommitted rows, so a row inside a writer's open transaction protects its
//! file too. [`SETTLE`] after the last move every moved item is asked about
//! once more, so a writer that checked the file before its move but inserted
//! only after its batch's check is caught as well. With `--delete`, files
//! wait under a hidden name beside themselves until that last check.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::mysql::Conn;
use spyglass_db::quote::qualified;
use spyglass_db::{DbError, Session};

use crate::classify::Class;
use crate::inventory::{self, Probe, RowValues};
use crate::quarantine::{self, Entry, Run};
use crate::scan::{Item, RootKind, Scan, Setup, Subject};
use crate::walk;
use crate::{CleanupError, Guard};

/// What happens to what is removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposal {
    /// Moved into a new run under this directory (same file system as the data).
    Quarantine(PathBuf),
    /// Deleted at once (rows are still deleted only after their re-check).
    Delete,
}

/// How to apply.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Classes to act on; empty means every actionable class (orphan rows only with `include_rows`).
    pub only: Vec<Class>,
    /// Grace period, re-checked per item.
    pub min_age: Duration,
    /// Quarantine or delete.
    pub disposal: Disposal,
    /// Refuse when more than this fraction of a store's (or directory's) entries would go.
    pub max_fraction: f64,
    /// Act on `orphan_row` (deletes `analysis_nwbfile` rows).
    pub include_rows: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            only: Vec::new(),
            min_age: Duration::from_secs(24 * 3600),
            disposal: Disposal::Delete,
            max_fraction: 0.5,
            include_rows: false,
        }
    }
}

/// Indexes into [`Scan::items`] that `opts` selects.
pub fn select(scan: &Scan, opts: &ApplyOptions) -> Vec<usize> {
    scan.items
        .iter()
        .enumerate()
        .filter(|(_, i)| {
            i.class.actionable()
                && (opts.only.is_empty() || opts.only.contains(&i.class))
                && (i.class != Class::OrphanRow || opts.include_rows)
        })
        .map(|(n, _)| n)
        .collect()
}

/// Runs every guard; `Err(Refused)` names the first that fires. Nothing is changed.
pub fn check_guards(
    scan: &Scan,
    opts: &ApplyOptions,
    selected: &[usize],
) -> Result<(), CleanupError> {
    for p in &scan.problems {
        if let Some(guard) = p.guard {
            return Err(CleanupError::Refused {
                guard,
                detail: p.message.clone(),
            });
        }
    }
    let tracked: u64 = scan
        .roots
        .iter()
        .filter(|r| matches!(r.kind, RootKind::Store(_)))
        .map(|r| r.rows_in_scope)
        .sum();
    let store_files: u64 = scan
        .roots
        .iter()
        .filter(|r| matches!(r.kind, RootKind::Store(_)))
        .map(|r| r.entries)
        .sum();
    if tracked == 0 && store_files > 0 {
        return Err(CleanupError::Refused {
            guard: Guard::EmptyTrackedSet,
            detail: format!("no ~external row tracks any of the {store_files} files in the stores"),
        });
    }
    let mut per_root: HashMap<usize, u64> = HashMap::new();
    for &n in selected {
        let i = &scan.items[n];
        if i.path.is_some()
            && matches!(
                i.class,
                Class::Untracked | Class::Empty | Class::UnusedExternal | Class::UntrackedDir
            )
        {
            *per_root.entry(i.root).or_default() += 1;
        }
    }
    let mut roots: Vec<_> = per_root.into_iter().collect();
    roots.sort();
    for (root, going) in roots {
        let r = &scan.roots[root];
        let frac = going as f64 / r.entries.max(1) as f64;
        if frac > opts.max_fraction {
            return Err(CleanupError::Refused {
                guard: Guard::MaxFraction,
                detail: format!(
                    "{} of the {} entries of {} ({}) would go ({:.0}%), more than the allowed fraction {}",
                    going,
                    r.entries,
                    r.label,
                    r.path.display(),
                    frac * 100.0,
                    opts.max_fraction
                ),
            });
        }
    }
    if let Disposal::Quarantine(q) = &opts.disposal {
        let q = absolute(q);
        for &n in selected {
            let i = &scan.items[n];
            let r = &scan.roots[i.root];
            if i.path.is_none() || r.path.as_os_str().is_empty() {
                continue;
            }
            let root = std::fs::canonicalize(&r.path).unwrap_or_else(|_| r.path.clone());
            let qc = canonical_prefix(&q);
            if qc.starts_with(&root) {
                return Err(CleanupError::Refused {
                    guard: Guard::QuarantinePlacement,
                    detail: format!(
                        "quarantine {} is inside {} ({})",
                        q.display(),
                        r.label,
                        r.path.display()
                    ),
                });
            }
            let qdev = existing_ancestor(&q)
                .and_then(|p| std::fs::metadata(p).ok())
                .map(|m| m.dev());
            let rdev = std::fs::metadata(&root).ok().map(|m| m.dev());
            if qdev.is_some() && rdev.is_some() && qdev != rdev {
                return Err(CleanupError::Refused {
                    guard: Guard::QuarantinePlacement,
                    detail: format!(
                        "quarantine {} is on another file system than {} ({}); moving would copy",
                        q.display(),
                        r.label,
                        r.path.display()
                    ),
                });
            }
        }
    }
    Ok(())
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

fn existing_ancestor(p: &Path) -> Option<&Path> {
    p.ancestors().find(|a| a.exists())
}

fn canonical_prefix(p: &Path) -> PathBuf {
    match existing_ancestor(p) {
        Some(a) => {
            let rest = p.strip_prefix(a).unwrap_or(Path::new(""));
            std::fs::canonicalize(a)
                .unwrap_or_else(|_| a.to_owned())
                .join(rest)
        }
        None => p.to_owned(),
    }
}

/// What happened to one item.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Class.
    pub class: Class,
    /// Path, or row description.
    pub what: String,
    /// Bytes.
    pub size: u64,
    /// `quarantined`, `deleted`, `skipped`, or `returned` (moved, then put
    /// back, with its row, because a row named it after the move).
    pub action: &'static str,
    /// For skipped and returned items, why (the re-check that failed).
    pub reason: Option<String>,
    /// For returned items, how long it was away from its path, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub absent_ms: Option<f64>,
}

/// What [`apply`] did.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    /// The quarantine run, when one was written.
    pub run: Option<PathBuf>,
    /// One entry per selected item.
    pub outcomes: Vec<Outcome>,
    /// The longest time from a move to the database check after its batch,
    /// milliseconds: how long a row committed right after a move could name
    /// a missing file before the item is put back.
    pub window_ms: f64,
    /// Batches of moves (each checked after).
    pub batches: u64,
}

impl ApplyReport {
    /// Items acted on (and not put back).
    pub fn done(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes
            .iter()
            .filter(|o| o.action == "quarantined" || o.action == "deleted")
    }
    /// Items skipped by a re-check.
    pub fn skipped(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| o.action == "skipped")
    }
    /// Items moved and put back because a row named them after the move.
    pub fn returned(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| o.action == "returned")
    }
}

/// Most items moved between two checks of the database.
pub const BATCH: usize = 256;
/// Longest a batch of moves runs before its items are asked about again.
pub const BATCH_TIME: Duration = Duration::from_millis(50);
/// How long after the last move every moved item is asked about once more.
pub const SETTLE: Duration = Duration::from_secs(1);
/// Items per query of that last check.
const SWEEP: usize = 4096;

fn age(now: SystemTime, t: SystemTime) -> Duration {
    now.duration_since(t).unwrap_or(Duration::ZERO)
}

fn secs(t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
}

fn root_dir_name(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The session settings apply needs, and the ones it found, to put back.
struct SessionMode {
    isolation: Option<String>,
    lock_wait: Option<u64>,
}

impl SessionMode {
    /// Reads uncommitted rows (a row inside a writer's open transaction
    /// protects its file) and waits at most a few seconds for a row lock.
    fn enter(conn: &mut Conn) -> Result<SessionMode, CleanupError> {
        let isolation: Option<String> = conn
            .query_first("SELECT @@SESSION.transaction_isolation")
            .or_else(|_| conn.query_first("SELECT @@SESSION.tx_isolation"))
            .ok()
            .flatten();
        let lock_wait: Option<u64> = conn
            .query_first("SELECT @@SESSION.innodb_lock_wait_timeout")
            .ok()
            .flatten();
        for sql in [
            "SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED",
            "SET SESSION innodb_lock_wait_timeout = 5",
        ] {
            conn.query_drop(sql)
                .map_err(|e| CleanupError::Db(DbError::query("setting up the apply session", e)))?;
        }
        Ok(SessionMode {
            isolation,
            lock_wait,
        })
    }

    fn leave(self, conn: &mut Conn) -> Result<(), CleanupError> {
        let level = self
            .isolation
            .map(|i| i.replace('-', " ").to_ascii_uppercase())
            .filter(|i| {
                [
                    "READ UNCOMMITTED",
                    "READ COMMITTED",
                    "REPEATABLE READ",
                    "SERIALIZABLE",
                ]
                .contains(&i.as_str())
            })
            .unwrap_or_else(|| "REPEATABLE READ".into());
        let mut sqls = vec![format!("SET SESSION TRANSACTION ISOLATION LEVEL {level}")];
        if let Some(w) = self.lock_wait {
            sqls.push(format!("SET SESSION innodb_lock_wait_timeout = {w}"));
        }
        for sql in sqls {
            conn.query_drop(sql)
                .map_err(|e| CleanupError::Db(DbError::query("resetting the apply session", e)))?;
        }
        Ok(())
    }
}

/// Acts on the selected items of `scan`. Guards must have passed
/// ([`check_guards`]). Items go in batches: each batch is asked about right
/// before its moves (still untracked or unused, in bulk), each item re-checked
/// on disk right before its own move (same size and mtime as scanned, older
/// than `min_age`), and every moved item asked about again right after the
/// batch; one a row names by then is put back (with its row) and recorded as
/// `returned`. [`SETTLE`] after the last move all moved items are asked about
/// once more. `progress(done, total)` is called as items are handled.
pub fn apply(
    session: &mut Session,
    scan: &Scan,
    setup: &Setup,
    opts: &ApplyOptions,
    selected: &[usize],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ApplyReport, CleanupError> {
    let run = match &opts.disposal {
        Disposal::Quarantine(q) if !selected.is_empty() => Some(Run::create(q, SystemTime::now())?),
        _ => None,
    };
    let conn = session.conn();
    let mode = SessionMode::enter(conn)?;
    let mut a = Applier {
        scan,
        setup,
        opts,
        run,
        outcomes: Vec::with_capacity(selected.len()),
        moved: Vec::new(),
        window: Duration::ZERO,
        batches: 0,
        seq: 0,
        schemas: HashMap::new(),
    };
    let result = a.all(conn, selected, progress);
    if result.is_err() {
        // `--delete` files still waiting under their hidden names go back
        // rather than stay hidden (best effort: the error is what is reported).
        for m in a.moved.iter().filter(|m| m.staged && !m.returned) {
            if let Some(orig) = &scan.items[m.item].path {
                if std::fs::symlink_metadata(orig).is_err() {
                    let _ = std::fs::rename(&m.now_at, orig);
                }
            }
        }
    }
    let reset = mode.leave(conn);
    let run_dir = match a.run.take() {
        Some(r) => Some(r.finish()?),
        None => None,
    };
    result?;
    reset?;
    Ok(ApplyReport {
        run: run_dir,
        outcomes: a.outcomes,
        window_ms: a.window.as_secs_f64() * 1000.0,
        batches: a.batches,
    })
}

/// An item moved away and watched until the run ends.
struct Moved {
    /// Index into the outcomes.
    out: usize,
    /// Index into the scan's items.
    item: usize,
    /// Manifest id (quarantine).
    id: Option<u64>,
    /// Where it is now.
    now_at: PathBuf,
    /// When it was moved.
    at: Instant,
    /// The row deleted with it (table, values), inserted again when it goes back.
    row: Option<(String, RowValues)>,
    /// `--delete`: waiting under a hidden name, deleted when the run ends.
    staged: bool,
    /// Put back already.
    returned: bool,
}

struct Applier<'a> {
    scan: &'a Scan,
    setup: &'a Setup,
    opts: &'a ApplyOptions,
    run: Option<Run>,
    outcomes: Vec<Outcome>,
    moved: Vec<Moved>,
    window: Duration,
    batches: u64,
    seq: u64,
    /// Per store, the schemas with `~external_<store>`: listed afresh before
    /// each batch and for the final check, reused by the check right after a
    /// batch (a schema created meanwhile is seen by the next ones).
    schemas: HashMap<String, Vec<String>>,
}

impl<'a> Applier<'a> {
    /// The schemas with `~external_<store>`, listed again when `fresh`.
    fn schemas_of(
        &mut self,
        conn: &mut Conn,
        store: &str,
        fresh: bool,
    ) -> Result<Vec<String>, CleanupError> {
        if fresh || !self.schemas.contains_key(store) {
            let list = inventory::external_schemas(conn, store)?;
            self.schemas.insert(store.to_owned(), list);
        }
        Ok(self.schemas.get(store).cloned().unwrap_or_default())
    }

    fn all(
        &mut self,
        conn: &mut Conn,
        selected: &[usize],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(), CleanupError> {
        let scan = self.scan;
        let total = selected.len();
        let (unused, others): (Vec<usize>, Vec<usize>) = selected
            .iter()
            .partition(|&&n| scan.items[n].class == Class::UnusedExternal);
        let mut i = 0;
        while i < others.len() {
            let batch = &others[i..(i + BATCH).min(others.len())];
            let named = self.named_files(conn, batch, true, true)?;
            let started = Instant::now();
            let first = self.moved.len();
            let mut k = 0;
            while k < batch.len() && (k == 0 || started.elapsed() < BATCH_TIME) {
                if named[k] {
                    self.skip(batch[k], "a row names it now".into());
                } else {
                    self.act(conn, batch[k])?;
                }
                k += 1;
                progress(self.outcomes.len(), total);
            }
            self.check_moved(conn, first, false)?;
            i += k;
        }
        let mut groups: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
        for n in unused {
            if let Subject::ExternalRow { schema, store, .. } = &scan.items[n].subject {
                groups.entry((schema, store)).or_default().push(n);
            }
        }
        for ((schema, store), items) in groups {
            for chunk in items.chunks(BATCH) {
                let first = self.moved.len();
                self.unused_rows(conn, schema, store, chunk)?;
                progress(self.outcomes.len(), total);
                self.check_moved(conn, first, false)?;
            }
        }
        if let Some(last) = self.moved.iter().map(|m| m.at).max() {
            std::thread::sleep(SETTLE.saturating_sub(last.elapsed()));
            self.check_moved(conn, 0, true)?;
        }
        for m in &self.moved {
            if m.staged && !m.returned {
                delete_path(&m.now_at)?;
            }
        }
        Ok(())
    }

    fn disposed(&self) -> &'static str {
        match self.opts.disposal {
            Disposal::Delete => "deleted",
            Disposal::Quarantine(_) => "quarantined",
        }
    }

    fn push(&mut self, n: usize, action: &'static str, reason: Option<String>) -> usize {
        let item = &self.scan.items[n];
        self.outcomes.push(Outcome {
            class: item.class,
            what: describe(item),
            size: item.size,
            action,
            reason,
            absent_ms: None,
        });
        self.outcomes.len() - 1
    }

    fn skip(&mut self, n: usize, why: String) {
        self.push(n, "skipped", Some(why));
    }

    fn store_of(&self, root: usize) -> Option<&'a crate::store::Store> {
        let setup = self.setup;
        match &self.scan.roots[root].kind {
            RootKind::Store(name) => setup.stores.iter().find(|s| &s.name == name),
            _ => None,
        }
    }

    /// For each of `items`, whether a row names its file in a store now
    /// (false for items that are not store files).
    fn named_files(
        &mut self,
        conn: &mut Conn,
        items: &[usize],
        by_filepath: bool,
        fresh: bool,
    ) -> Result<Vec<bool>, CleanupError> {
        let scan = self.scan;
        let mut out = vec![false; items.len()];
        let mut by_root: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (p, &n) in items.iter().enumerate() {
            let i = &scan.items[n];
            if i.path.is_some()
                && matches!(
                    i.class,
                    Class::Untracked | Class::Empty | Class::UnusedExternal
                )
            {
                by_root.entry(i.root).or_default().push(p);
            }
        }
        for (root, ps) in by_root {
            let Some(store) = self.store_of(root) else {
                continue;
            };
            let schemas = self.schemas_of(conn, &store.name, fresh)?;
            let per = if by_filepath { SWEEP } else { BATCH };
            for chunk in ps.chunks(per) {
                let probes: Vec<Probe> = chunk
                    .iter()
                    .map(|&p| Probe {
                        rel: &scan.items[items[p]].rel,
                        own: None,
                    })
                    .collect();
                let named = inventory::named_now(conn, store, &schemas, &probes, by_filepath)?;
                for (&p, hit) in chunk.iter().zip(named) {
                    out[p] = hit;
                }
            }
        }
        Ok(out)
    }

    /// Asks about every item moved since `first` (not put back yet) and puts
    /// back those a row names now. `last` is the run's final check (it
    /// compares `filepath` columns too).
    fn check_moved(
        &mut self,
        conn: &mut Conn,
        first: usize,
        last: bool,
    ) -> Result<(), CleanupError> {
        let scan = self.scan;
        let js: Vec<usize> = (first..self.moved.len())
            .filter(|&j| !self.moved[j].returned)
            .collect();
        if js.is_empty() {
            return Ok(());
        }
        let items: Vec<usize> = js.iter().map(|&j| self.moved[j].item).collect();
        let mut named = self.named_files(conn, &items, last, last)?;
        for (p, &n) in items.iter().enumerate() {
            let item = &scan.items[n];
            if item.class != Class::UntrackedDir {
                continue;
            }
            let RootKind::Folders(key) = scan.roots[item.root].kind else {
                continue;
            };
            let cols = scan.dir_columns.get(&key).cloned().unwrap_or_default();
            let path = item.path.as_deref().unwrap_or(Path::new(""));
            named[p] = inventory::dir_tracked_now(conn, &cols, &path.to_string_lossy(), &item.rel)?;
        }
        if !last {
            let earliest = js.iter().map(|&j| self.moved[j].at).min();
            if let Some(t) = earliest {
                self.window = self.window.max(t.elapsed());
            }
            self.batches += 1;
        }
        for (p, &j) in js.iter().enumerate() {
            if named[p] {
                self.put_back(conn, j)?;
            }
        }
        Ok(())
    }

    /// Puts a moved item back (and its row), records it as returned.
    fn put_back(&mut self, conn: &mut Conn, j: usize) -> Result<(), CleanupError> {
        let scan = self.scan;
        let m = &mut self.moved[j];
        let item = &scan.items[m.item];
        let Some(orig) = &item.path else {
            return Ok(());
        };
        let reason = "a row names it now";
        if std::fs::symlink_metadata(orig).is_ok() {
            // Something else is at its path now: never overwritten; a staged
            // file is kept (not deleted) and reported.
            m.staged = false;
            self.outcomes[m.out].reason = Some(format!(
                "{reason}, but something else is at its path now: left at {}",
                m.now_at.display()
            ));
            return Ok(());
        }
        std::fs::rename(&m.now_at, orig)
            .map_err(CleanupError::io("cannot move back", &m.now_at))?;
        let absent = m.at.elapsed();
        m.returned = true;
        if let Some((table, values)) = &m.row {
            inventory::insert_row_ignore(conn, table, values)?;
        }
        if let (Some(run), Some(id)) = (self.run.as_mut(), m.id) {
            run.returned(id, reason, absent)?;
        }
        let o = &mut self.outcomes[m.out];
        o.action = "returned";
        o.reason = Some(reason.into());
        o.absent_ms = Some(absent.as_secs_f64() * 1000.0);
        Ok(())
    }

    /// The manifest entry, written before the item is acted on.
    fn record(
        &mut self,
        n: usize,
        with_file: bool,
        row: Option<quarantine::SavedRow>,
    ) -> Result<Option<u64>, CleanupError> {
        let item = &self.scan.items[n];
        let stored = with_file.then(|| stored_path(&self.scan.roots[item.root].label, item));
        match (&self.opts.disposal, self.run.as_mut()) {
            (Disposal::Quarantine(_), Some(run)) => Ok(Some(run.record(entry(item, stored, row))?)),
            _ => Ok(None),
        }
    }

    /// Moves a recorded item's file or folder away: into the run, or with
    /// `--delete` under a hidden name beside itself (deleted at the end), or
    /// (`watch` false) deleted at once. Watched items are asked about again.
    fn move_away(
        &mut self,
        conn: &mut Conn,
        n: usize,
        id: Option<u64>,
        row: Option<(String, RowValues)>,
        watch: bool,
    ) -> Result<(), CleanupError> {
        let item = &self.scan.items[n];
        let action = self.disposed();
        let Some(path) = item.path.clone() else {
            self.push(n, action, None);
            return Ok(());
        };
        let (dest, staged) = match (&self.opts.disposal, self.run.as_ref()) {
            (Disposal::Quarantine(_), Some(run)) => (
                Some(
                    run.dir
                        .join(stored_path(&self.scan.roots[item.root].label, item)),
                ),
                false,
            ),
            _ if watch => {
                self.seq += 1;
                let name = format!(
                    ".spyglass-admin-{}-{}.deleting",
                    std::process::id(),
                    self.seq
                );
                (Some(path.with_file_name(name)), true)
            }
            _ => (None, false),
        };
        let moved = match &dest {
            Some(d) => {
                let made = match d.parent() {
                    Some(p) => std::fs::create_dir_all(p),
                    None => Ok(()),
                };
                made.and_then(|()| std::fs::rename(&path, d))
            }
            None => {
                delete_path(&path)?;
                Ok(())
            }
        };
        if let Err(e) = moved {
            if let Some((table, values)) = &row {
                inventory::insert_row_ignore(conn, table, values)?;
            }
            if let (Some(run), Some(id)) = (self.run.as_mut(), id) {
                run.undo(id)?;
            }
            return Err(CleanupError::Io {
                what: "cannot move into quarantine",
                path,
                source: e,
            });
        }
        let at = Instant::now();
        let out = self.push(n, action, None);
        if let (true, Some(now_at)) = (watch, dest) {
            self.moved.push(Moved {
                out,
                item: n,
                id,
                now_at,
                at,
                row,
                staged,
                returned: false,
            });
        }
        Ok(())
    }

    /// One item that is not an `~external` row, right before it is acted on.
    fn act(&mut self, conn: &mut Conn, n: usize) -> Result<(), CleanupError> {
        let scan = self.scan;
        let item = &scan.items[n];
        let min_age = scan.roots[item.root].min_age(self.opts.min_age);
        if let Err(why) = recheck_disk(item, min_age, SystemTime::now())? {
            self.skip(n, why);
            return Ok(());
        }
        let root = &scan.roots[item.root];
        match (&item.class, &item.subject) {
            (Class::UntrackedDir, _) => {
                let RootKind::Folders(key) = root.kind else {
                    self.skip(n, "not in a folder directory".into());
                    return Ok(());
                };
                let cols = scan.dir_columns.get(&key).cloned().unwrap_or_default();
                let path = item.path.as_deref().unwrap_or(Path::new(""));
                if inventory::dir_tracked_now(conn, &cols, &path.to_string_lossy(), &item.rel)? {
                    self.skip(n, "a row names it now".into());
                    return Ok(());
                }
                let id = self.record(n, true, None)?;
                self.move_away(conn, n, id, None, true)
            }
            (Class::Untracked | Class::Empty, _) => {
                let id = self.record(n, true, None)?;
                self.move_away(conn, n, id, None, true)
            }
            // No row names a temp entry: nothing to ask about afterwards.
            (Class::StaleTemp, _) => {
                let id = self.record(n, true, None)?;
                self.move_away(conn, n, id, None, false)
            }
            (Class::OrphanRow, Subject::AnalysisRow { schema, key }) => {
                let Some(table) = scan.catalog.analysis.iter().find(|t| &t.schema == schema) else {
                    self.skip(n, "table gone".into());
                    return Ok(());
                };
                if !inventory::still_orphan(conn, table, key)? {
                    self.skip(n, "referenced downstream now (or gone)".into());
                    return Ok(());
                }
                let t = qualified(schema, "analysis_nwbfile");
                let saved = inventory::read_row(
                    conn,
                    &t,
                    &format!("analysis_file_name = {}", spyglass_db::quote::string(key)),
                )?
                .map(|r| quarantine::save_row(&t, r));
                let id = self.record(n, false, saved)?;
                match inventory::delete_analysis_row(conn, schema, key) {
                    Ok(1) => {
                        self.push(n, self.disposed(), None);
                    }
                    other => {
                        if let (Some(r), Some(id)) = (self.run.as_mut(), id) {
                            r.undo(id)?;
                        }
                        self.skip(
                            n,
                            match other {
                                Err(e) => format!("deleting the row failed: {e}"),
                                _ => "the row was gone".into(),
                            },
                        );
                    }
                }
                Ok(())
            }
            _ => {
                self.skip(n, "nothing to do".into());
                Ok(())
            }
        }
    }

    /// Unused `~external` rows of one table, in one batch: asked about in
    /// bulk (still unused, no other row naming their files), saved, deleted
    /// in one transaction (one by one when that fails: a row became
    /// referenced), then their files moved.
    fn unused_rows(
        &mut self,
        conn: &mut Conn,
        schema: &str,
        store: &str,
        chunk: &[usize],
    ) -> Result<(), CleanupError> {
        let scan = self.scan;
        let Some(table) = scan
            .catalog
            .externals
            .iter()
            .find(|t| t.schema == schema && t.store == store)
        else {
            for &n in chunk {
                self.skip(n, "table gone".into());
            }
            return Ok(());
        };
        let key = |n: usize| -> ([u8; 16], bool) {
            match &scan.items[n].subject {
                Subject::ExternalRow {
                    hash, with_file, ..
                } => (crate::paths::unhex(hash).unwrap_or([0; 16]), *with_file),
                _ => ([0; 16], false),
            }
        };
        let hashes: Vec<[u8; 16]> = chunk.iter().map(|&n| key(n).0).collect();
        let unused = inventory::unused_now(conn, table, &hashes)?;
        let now = SystemTime::now();
        let mut keep = Vec::new();
        for &n in chunk {
            if !unused.contains(&key(n).0) {
                self.skip(n, "the row is referenced now (or gone)".into());
            } else if let Err(why) = recheck_disk(
                &scan.items[n],
                scan.roots[scan.items[n].root].min_age(self.opts.min_age),
                now,
            )? {
                self.skip(n, why);
            } else {
                keep.push(n);
            }
        }
        let with_file: Vec<usize> = keep.iter().copied().filter(|&n| key(n).1).collect();
        if !with_file.is_empty() {
            let Some(st) = self.setup.stores.iter().find(|s| s.name == store) else {
                for n in with_file {
                    self.skip(n, "store gone".into());
                }
                return Ok(());
            };
            let probes: Vec<Probe> = with_file
                .iter()
                .map(|&n| Probe {
                    rel: &scan.items[n].rel,
                    own: Some((schema, key(n).0)),
                })
                .collect();
            let schemas = self.schemas_of(conn, store, true)?;
            let named = inventory::named_now(conn, st, &schemas, &probes, true)?;
            for (&n, hit) in with_file.iter().zip(named) {
                if hit {
                    keep.retain(|&k| k != n);
                    self.skip(n, "another row names its file now".into());
                }
            }
        }
        let keep_hashes: Vec<[u8; 16]> = keep.iter().map(|&n| key(n).0).collect();
        let mut rows = inventory::read_rows(conn, table, &keep_hashes)?;
        let t = table.qualified();
        let mut ready: Vec<(usize, Option<u64>, RowValues)> = Vec::new();
        for n in keep {
            let Some(values) = rows.remove(&key(n).0) else {
                self.skip(n, "the row was gone".into());
                continue;
            };
            let id = self.record(n, key(n).1, Some(quarantine::save_row(&t, values.clone())))?;
            ready.push((n, id, values));
        }
        let hashes: Vec<[u8; 16]> = ready.iter().map(|(n, _, _)| key(*n).0).collect();
        let mut deleted = Vec::new();
        if inventory::delete_external_rows(conn, table, &hashes)? {
            deleted = ready;
        } else {
            for (n, id, values) in ready {
                match inventory::delete_external_row(conn, table, &key(n).0) {
                    Ok(1) => deleted.push((n, id, values)),
                    other => {
                        if let (Some(r), Some(id)) = (self.run.as_mut(), id) {
                            r.undo(id)?;
                        }
                        self.skip(
                            n,
                            match other {
                                Err(e) => format!("deleting the row failed, file kept: {e}"),
                                _ => "the row was gone".into(),
                            },
                        );
                    }
                }
            }
        }
        for (n, id, values) in deleted {
            if key(n).1 {
                self.move_away(conn, n, id, Some((t.clone(), values)), true)?;
            } else {
                self.push(n, self.disposed(), None);
            }
        }
        Ok(())
    }
}

/// Where an item goes in a run, relative to the run directory.
fn stored_path(label: &str, item: &Item) -> PathBuf {
    PathBuf::from("files")
        .join(root_dir_name(label))
        .join(&item.rel)
}

fn delete_path(path: &Path) -> Result<(), CleanupError> {
    let meta = std::fs::symlink_metadata(path).map_err(CleanupError::io("cannot stat", path))?;
    if meta.is_dir() {
        std::fs::remove_dir_all(path).map_err(CleanupError::io("cannot delete", path))
    } else {
        std::fs::remove_file(path).map_err(CleanupError::io("cannot delete", path))
    }
}

fn describe(i: &Item) -> String {
    match (&i.path, &i.subject) {
        (_, Subject::AnalysisRow { .. }) => i.rel.clone(),
        (Some(p), _) => p.display().to_string(),
        (
            None,
            Subject::ExternalRow {
                schema,
                store,
                hash,
                ..
            },
        ) => format!("{schema}.~external_{store} row {hash} ({})", i.rel),
        (None, _) => i.rel.clone(),
    }
}

/// Unchanged since the scan and old enough, else why not.
fn recheck_disk(
    item: &Item,
    min_age: Duration,
    now: SystemTime,
) -> Result<Result<(), String>, CleanupError> {
    let Some(path) = &item.path else {
        return Ok(Ok(()));
    };
    let (size, mtime) = match item.subject {
        Subject::Entry => {
            if std::fs::symlink_metadata(path).is_err() {
                return Ok(Err("gone since the scan".into()));
            }
            let (b, t) = walk::tree_meta(path)?;
            (b, Some(t))
        }
        _ => match walk::stat(path)? {
            None => return Ok(Err("gone since the scan".into())),
            Some(m) if !m.is_file => return Ok(Err("no longer a regular file".into())),
            Some(m) => (m.size, Some(m.mtime)),
        },
    };
    if size != item.size || mtime != item.mtime {
        return Ok(Err(
            "changed since the scan (size or modification time)".into()
        ));
    }
    if mtime.is_some_and(|t| age(now, t) < min_age) {
        return Ok(Err(format!(
            "younger than the grace period ({})",
            humantime::format_duration(min_age)
        )));
    }
    Ok(Ok(()))
}

fn entry(item: &Item, stored: Option<PathBuf>, row: Option<quarantine::SavedRow>) -> Entry {
    Entry {
        id: 0,
        class: item.class,
        original: if stored.is_some() {
            item.path.clone()
        } else {
            None
        },
        stored,
        size: item.size,
        mtime_unix: secs(item.mtime),
        reason: item.reason.clone(),
        row,
    }
}
