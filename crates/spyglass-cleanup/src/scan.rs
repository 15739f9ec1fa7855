//! A full scan: the database inventory and the disk walk, run side by side,
//! then classified.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use spyglass_db::Session;

use crate::classify::{self, Class, FileVerdict, FolderVerdict};
use crate::dirs::{DirKey, SpyglassDirs};
use crate::inventory::{self, Catalog, DirColumn, DirRule, OrphanRow, Scope, StoreRows};
use crate::store::{same_dir, Store};
use crate::walk::{self, Listing};
use crate::{CleanupError, Guard};

/// Where stores and directories are.
#[derive(Debug, Clone)]
pub struct Setup {
    /// From [`crate::store::stores`].
    pub stores: Vec<Store>,
    /// From [`crate::dirs::resolve`]; `None` when Spyglass's base is not configured.
    pub dirs: Option<SpyglassDirs>,
}

/// How to scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Schemas whose rows may be cleaned (rows of all schemas protect files).
    pub scope: Scope,
    /// Grace period: untracked things younger than this are reported as young, not as candidates.
    pub min_age: Duration,
    /// Temp entries older than this are stale.
    pub temp_age: Duration,
    /// Columns holding folder paths, per directory.
    pub dir_rules: Vec<(DirKey, DirRule)>,
    /// Walker threads.
    pub threads: usize,
    /// Folders never to enter (the quarantine).
    pub skip: Vec<PathBuf>,
    /// When set, `~external` tables are read on this many connections at
    /// once (opened with these options) besides the session passed to [`scan`].
    pub connect: Option<spyglass_db::ConnectOptions>,
    /// Extra connections to open when `connect` is set.
    pub extra_connections: usize,
    /// Rules for single stores, by store name (`[cleanup.stores.NAME]`).
    pub stores: BTreeMap<String, StoreRule>,
    /// Keep each store's tracked paths in [`Scan::store_rows`] (the report
    /// wants them); otherwise they are freed once the store is classified.
    pub keep_rows: bool,
}

/// How one store is treated, overriding the scan's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreRule {
    /// Never walked, nothing in it (files or `~external` rows) is ever an
    /// item; reported under [`Scan::not_scanned`].
    pub exclude: bool,
    /// Its own grace period (e.g. raw NWB files waiting days to be ingested).
    pub min_age: Option<Duration>,
}

impl ScanOptions {
    /// The grace period for files of `store`: its own, else [`Self::min_age`].
    pub fn min_age_for(&self, store: &str) -> Duration {
        self.stores
            .get(store)
            .and_then(|r| r.min_age)
            .unwrap_or(self.min_age)
    }

    /// Spyglass's folder-tracking columns: spike sorting v0 `sorting_path` for
    /// the sorting directory and `recording_path` for the recording directory.
    pub fn default_dir_rules() -> Vec<(DirKey, DirRule)> {
        vec![
            (
                DirKey::Sorting,
                DirRule {
                    column: "sorting_path".into(),
                    table: None,
                },
            ),
            (
                DirKey::Recording,
                DirRule {
                    column: "recording_path".into(),
                    table: None,
                },
            ),
        ]
    }
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            scope: Scope::all(),
            min_age: Duration::from_secs(24 * 3600),
            temp_age: Duration::from_secs(7 * 24 * 3600),
            dir_rules: Self::default_dir_rules(),
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            skip: Vec::new(),
            connect: None,
            extra_connections: 1,
            stores: BTreeMap::new(),
            keep_rows: false,
        }
    }
}

/// What kind of place a root is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum RootKind {
    /// A DataJoint store.
    Store(String),
    /// A directory whose folders rows name (sorting, recording, ...).
    Folders(DirKey),
    /// Spyglass's temp directory.
    Temp,
    /// `analysis_nwbfile` rows (no directory).
    Rows,
}

/// What a cleanup item is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Subject {
    /// A file in a store.
    File,
    /// A folder (or a temp entry, file or folder).
    Entry,
    /// An `~external` row, and whether its file goes with it.
    ExternalRow {
        /// Schema.
        schema: String,
        /// Store.
        store: String,
        /// Hash, 32 hex digits.
        hash: String,
        /// True when the file exists and no used row names it.
        with_file: bool,
    },
    /// An `analysis_nwbfile` row.
    AnalysisRow {
        /// Schema.
        schema: String,
        /// `analysis_file_name`.
        key: String,
    },
}

/// One thing to clean (or, for `dangling`, to look at).
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// Its class.
    pub class: Class,
    /// Index into [`Scan::roots`].
    pub root: usize,
    /// The file or folder, if there is one on disk (for dangling: where it should be).
    pub path: Option<PathBuf>,
    /// Path relative to the root, or a row description.
    pub rel: String,
    /// Bytes on disk.
    pub size: u64,
    /// Modification time when scanned (newest inside, for folders).
    #[serde(skip)]
    pub mtime: Option<SystemTime>,
    /// What it is.
    pub subject: Subject,
    /// Why it is in this class, in words.
    pub reason: String,
}

/// A store or directory that was scanned.
#[derive(Debug, Clone, Serialize)]
pub struct Root {
    /// e.g. `store analysis`, `sorting`, `temp`.
    pub label: String,
    /// Kind.
    #[serde(flatten)]
    pub kind: RootKind,
    /// Its directory.
    pub path: PathBuf,
    /// Files (stores) or entries (directories) on disk.
    pub entries: u64,
    /// Rows naming things here, all schemas.
    pub rows: u64,
    /// Of those, in scope.
    pub rows_in_scope: u64,
    /// A store's own grace period (`[cleanup.stores.NAME] min_age`), seconds;
    /// `None` when the scan's applies.
    pub min_age_seconds: Option<u64>,
}

impl Root {
    /// The grace period for this root's items: its own, else `default`.
    pub fn min_age(&self, default: Duration) -> Duration {
        self.min_age_seconds.map_or(default, Duration::from_secs)
    }
}

/// Something the scan noticed that is not an item; those with a guard make apply refuse.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The guard that will refuse apply, if any.
    pub guard: Option<Guard>,
    /// What was seen.
    pub message: String,
}

/// The outcome of [`scan`].
#[derive(Debug)]
pub struct Scan {
    /// When it started.
    pub started: SystemTime,
    /// Tables found.
    pub catalog: Catalog,
    /// Folder-path columns found, per directory.
    pub dir_columns: HashMap<DirKey, Vec<DirColumn>>,
    /// Roots scanned.
    pub roots: Vec<Root>,
    /// Items, by class then path.
    pub items: Vec<Item>,
    /// Things that would be items but are younger than the grace period.
    pub young: Vec<Item>,
    /// Symlinks inside a store that point outside it: reported, never followed.
    pub symlinks_outside: Vec<PathBuf>,
    /// Problems.
    pub problems: Vec<Problem>,
    /// Stores that were configured but not scanned, and why.
    pub not_scanned: Vec<(String, String)>,
    /// Spyglass directories cleanup looks into (sorting, recording, temp,
    /// and those with folder rules) that were not scanned, and why.
    pub dirs_not_scanned: Vec<DirNotScanned>,
    /// Untracked symlinks inside a store that point at a tracked file: reported, never acted on.
    pub symlinks_to_tracked: Vec<(PathBuf, PathBuf)>,
    /// When each phase ended, counted from the start of the scan.
    pub timings: Vec<(String, Duration)>,
    /// With [`ScanOptions::keep_rows`], each walked store's tracked paths as
    /// the scan read them, by store name: the report counts each schema's
    /// files from these instead of reading every `~external` row again.
    pub store_rows: Vec<(String, StoreRows)>,
}

/// A Spyglass directory that was not scanned.
#[derive(Debug, Clone, Serialize)]
pub struct DirNotScanned {
    /// Which (`sorting`, `recording`, `temp`, ...).
    pub dir: DirKey,
    /// Where it would be, when known.
    pub path: Option<PathBuf>,
    /// Why.
    pub reason: String,
    /// False when the directory cannot be located at all (no Spyglass base
    /// configured): a problem, since its untracked folders go unseen.
    pub located: bool,
}

/// Count and bytes of a class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Items.
    pub count: u64,
    /// Bytes on disk.
    pub bytes: u64,
}

impl Scan {
    /// Count and bytes for every class (all present).
    pub fn tallies(&self) -> BTreeMap<Class, Tally> {
        let mut m: BTreeMap<Class, Tally> = Class::ALL
            .into_iter()
            .map(|c| (c, Tally::default()))
            .collect();
        for i in &self.items {
            let t = m.entry(i.class).or_default();
            t.count += 1;
            t.bytes += i.size;
        }
        m
    }
    /// True when some actionable item exists.
    pub fn has_work(&self) -> bool {
        self.items.iter().any(|i| i.class.actionable())
    }
    /// The root of an item.
    pub fn root_of(&self, item: &Item) -> &Root {
        &self.roots[item.root]
    }
}

fn age(now: SystemTime, t: SystemTime) -> Duration {
    now.duration_since(t).unwrap_or(Duration::ZERO)
}

/// Scans every store and directory. Reads only: nothing is moved or deleted.
pub fn scan(
    session: &mut Session,
    setup: &Setup,
    opts: &ScanOptions,
) -> Result<Scan, CleanupError> {
    let now = SystemTime::now();
    let timer = PhaseTimer::new();
    let conn = session.conn();
    let cat = inventory::catalog(conn, &opts.scope)?;
    timer.mark("catalog");
    let mut problems = Vec::new();
    let mut not_scanned = Vec::new();

    // Which stores to walk: every file store a table uses, plus Spyglass's own.
    let mut walk_stores: Vec<&Store> = Vec::new();
    for s in &setup.stores {
        if opts.stores.get(&s.name).is_some_and(|r| r.exclude) {
            not_scanned.push((
                s.name.clone(),
                format!(
                    "excluded by [cleanup.stores.{}] exclude = true: nothing in it is touched",
                    s.name
                ),
            ));
            continue;
        }
        let used = cat.externals.iter().any(|t| t.store == s.name);
        if !s.is_file() {
            if cat
                .externals
                .iter()
                .any(|t| t.store == s.name && t.in_scope)
            {
                not_scanned.push((
                    s.name.clone(),
                    format!("protocol {} is not a local file system", s.protocol),
                ));
            }
            continue;
        }
        if !used && s.source != crate::store::StoreSource::Spyglass {
            not_scanned.push((s.name.clone(), "no ~external table uses it".into()));
            continue;
        }
        if let Some(c) = &s.conflict {
            problems.push(Problem {
                guard: Some(Guard::StoreDirMismatch),
                message: format!(
                    "store {}: the DataJoint config says location {} but Spyglass uses {}",
                    s.name,
                    c.display(),
                    s.location.display()
                ),
            });
        }
        walk_stores.push(s);
    }
    // A rule for a store that is not configured is a typo that would leave
    // the store it meant unprotected: apply refuses.
    for name in opts.stores.keys() {
        if !setup.stores.iter().any(|s| s.name == *name) {
            problems.push(Problem {
                guard: Some(Guard::StoreNotConfigured),
                message: format!(
                    "[cleanup.stores.{name}] names no configured store (stores: {})",
                    setup
                        .stores
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    let mut missing: Vec<String> = cat
        .externals
        .iter()
        .filter(|t| t.in_scope && !setup.stores.iter().any(|s| s.name == t.store))
        .map(|t| format!("{}.~external_{}", t.schema, t.store))
        .collect();
    missing.sort();
    if !missing.is_empty() {
        problems.push(Problem {
            guard: Some(Guard::StoreNotConfigured),
            message: format!("no store is configured for {}", missing.join(", ")),
        });
    }

    // Folders never entered from a store walk: other roots nested in it, the quarantine.
    let mut skip: Vec<PathBuf> = opts.skip.clone();
    skip.extend(walk_stores.iter().map(|s| s.location.clone()));
    // An excluded store is not entered from another one that contains it either.
    skip.extend(
        setup
            .stores
            .iter()
            .filter(|s| opts.stores.get(&s.name).is_some_and(|r| r.exclude))
            .map(|s| s.location.clone()),
    );
    if let Some(d) = &setup.dirs {
        for key in [DirKey::Recording, DirKey::Sorting, DirKey::Temp] {
            if let Some(x) = d.get(key) {
                skip.push(x.path.clone());
            }
        }
    }

    // Walk all stores on a helper thread while this one reads the database.
    let threads = opts.threads;
    // Tables are read by the main connection and, if allowed, extra ones:
    // the server reads them in parallel and each connection parses its own.
    // Each table is read in slices of its hash space, so a big table spreads
    // over every connection; the largest tables go first.
    let max_packet = inventory::prepare_bulk(conn)?;
    let mut tasks: Vec<(u64, Read)> = walk_stores
        .iter()
        .enumerate()
        .flat_map(|(si, s)| {
            cat.externals
                .iter()
                .enumerate()
                .filter(move |(_, t)| t.store == s.name)
                .flat_map(move |(ti, t)| {
                    let slices = inventory::chunks(t, max_packet);
                    let size = t.rows_estimate / slices.len() as u64;
                    slices
                        .into_iter()
                        .map(move |r| (size, Read::Rows(si, ti, r)))
                })
        })
        .collect();
    // Each analysis table's orphan rows are one read (its names and its
    // downstream key columns, streamed), in the same queue: on another
    // connection it overlaps the `~external` reads and the walk.
    tasks.extend(cat.analysis.iter().enumerate().map(|(ai, t)| {
        let size = t.rows_estimate * (1 + t.downstream.len() as u64);
        (size, Read::Orphans(ai))
    }));
    // Popped from the end: smallest last.
    tasks.sort_by_key(|t| t.0);
    let queue = std::sync::Mutex::new(tasks);
    // Each reader keeps one part per store and seals it (sorts it) on its own
    // thread when the queue runs dry; the parts are merged once all are in.
    let parts: std::sync::Mutex<Vec<Vec<StoreRows>>> = std::sync::Mutex::new(Vec::new());
    let orphan_parts: std::sync::Mutex<Vec<(usize, Vec<OrphanRow>)>> =
        std::sync::Mutex::new(Vec::new());
    let work = |conn: &mut spyglass_db::mysql::Conn| -> Result<(), CleanupError> {
        let mut local: Vec<StoreRows> = walk_stores.iter().map(|_| StoreRows::default()).collect();
        loop {
            // A poisoned lock means another reader panicked; its join reports it.
            let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match next {
                None => break,
                Some((_, Read::Rows(si, ti, range))) => inventory::table_rows(
                    conn,
                    ti,
                    &cat.externals[ti],
                    walk_stores[si],
                    range,
                    &mut local[si],
                )?,
                Some((_, Read::Orphans(ai))) => {
                    let found = inventory::orphans_of(conn, &cat.analysis[ai])?;
                    orphan_parts
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((ai, found));
                }
            }
        }
        for part in &mut local {
            part.seal();
        }
        parts.lock().unwrap_or_else(|e| e.into_inner()).push(local);
        Ok(())
    };
    let (listings, db) = std::thread::scope(|sc| {
        let walker = sc.spawn(|| {
            walk_stores
                .iter()
                .map(|s| {
                    if !s.location.is_dir() {
                        return Ok(None);
                    }
                    walk::list(&s.location, &skip, threads).map(Some)
                })
                .collect::<Result<Vec<Option<Listing>>, CleanupError>>()
                .inspect(|_| timer.mark("walk"))
        });
        let helpers: Vec<_> = match &opts.connect {
            Some(c) => (0..opts.extra_connections)
                .map(|_| {
                    let work = &work;
                    sc.spawn(move || -> Result<(), CleanupError> {
                        let mut session = spyglass_db::connect(c)?;
                        inventory::prepare_bulk(session.conn())?;
                        work(session.conn())
                    })
                })
                .collect(),
            None => Vec::new(),
        };
        let db = (|| -> Result<_, CleanupError> {
            work(conn)?;
            timer.mark("rows read (this connection)");
            for h in helpers {
                h.join().unwrap_or_else(|_| {
                    Err(CleanupError::Config("a table reader panicked".into()))
                })?;
            }
            let mut per_store: Vec<Vec<StoreRows>> =
                walk_stores.iter().map(|_| Vec::new()).collect();
            let readers = std::mem::take(&mut *parts.lock().unwrap_or_else(|e| e.into_inner()));
            for reader in readers {
                for (si, part) in reader.into_iter().enumerate() {
                    per_store[si].push(part);
                }
            }
            let rows: Vec<StoreRows> = per_store
                .into_iter()
                .map(|parts| {
                    let mut r = StoreRows::merge(parts);
                    r.finish();
                    r
                })
                .collect();
            timer.mark("rows read (all connections)");
            let mut orphan_parts =
                std::mem::take(&mut *orphan_parts.lock().unwrap_or_else(|e| e.into_inner()));
            orphan_parts.sort_by_key(|(ai, _)| *ai);
            let orphans: Vec<OrphanRow> = orphan_parts.into_iter().flat_map(|(_, o)| o).collect();
            let mut dir_rows = Vec::new();
            for key in [
                DirKey::Sorting,
                DirKey::Recording,
                DirKey::Waveforms,
                DirKey::Video,
                DirKey::Export,
                DirKey::Raw,
                DirKey::Analysis,
            ] {
                let rules: Vec<DirRule> = opts
                    .dir_rules
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, r)| r.clone())
                    .collect();
                if !rules.is_empty() {
                    dir_rows.push((key, inventory::dir_rows(conn, &rules)?));
                }
            }
            Ok((rows, orphans, dir_rows))
        })();
        let listings = walker
            .join()
            .unwrap_or_else(|_| Err(CleanupError::Config("the directory walker panicked".into())));
        (listings, db)
    });
    let listings = listings?;
    let (store_rows, orphans, dir_rows) = db?;
    timer.mark("folder columns");

    let mut out = Scan {
        started: now,
        catalog: cat,
        dir_columns: HashMap::new(),
        roots: Vec::new(),
        items: Vec::new(),
        young: Vec::new(),
        symlinks_outside: Vec::new(),
        problems,
        not_scanned,
        dirs_not_scanned: Vec::new(),
        symlinks_to_tracked: Vec::new(),
        timings: Vec::new(),
        store_rows: Vec::new(),
    };

    for ((store, listing), mut rows) in walk_stores.iter().zip(listings).zip(store_rows) {
        let root_idx = out.roots.len();
        let Some(listing) = listing else {
            out.roots.push(Root {
                label: format!("store {}", store.name),
                kind: RootKind::Store(store.name.clone()),
                path: store.location.clone(),
                entries: 0,
                rows: rows.rows,
                rows_in_scope: rows.rows_in_scope,
                min_age_seconds: own_min_age(opts, &store.name),
            });
            if rows.rows_in_scope > 0 {
                out.problems.push(Problem {
                    guard: None,
                    message: format!(
                        "store {}: directory {} does not exist",
                        store.name,
                        store.location.display()
                    ),
                });
            }
            classify_store(
                &mut out,
                root_idx,
                store,
                &store.location,
                &mut rows,
                Vec::new(),
                now,
                opts,
            )?;
            if opts.keep_rows {
                out.store_rows.push((store.name.clone(), rows));
            }
            continue;
        };
        for e in &listing.errors {
            out.problems.push(Problem {
                guard: None,
                message: format!("store {}: {e}", store.name),
            });
        }
        let files = listing.file_count() as u64;
        out.roots.push(Root {
            label: format!("store {}", store.name),
            kind: RootKind::Store(store.name.clone()),
            path: store.location.clone(),
            entries: files,
            rows: rows.rows,
            rows_in_scope: rows.rows_in_scope,
            min_age_seconds: own_min_age(opts, &store.name),
        });
        // In scope: rows of other schemas protect files, but a scope that
        // tracks nothing next to files on disk is the misconfiguration seen in the field.
        if files > 0 && rows.rows_in_scope == 0 {
            out.problems.push(Problem {
                guard: Some(Guard::EmptyTrackedSet),
                message: format!(
                    "store {}: {} files on disk in {} but no ~external row of the schemas in scope tracks anything there",
                    store.name,
                    files,
                    store.location.display()
                ),
            });
        }
        // A tracked symlink (raw files linked in from a data drive) is fine
        // wherever it points. An untracked one is reported when it points
        // outside the store or at a tracked file; none is ever acted on.
        for (rel, outside) in &listing.symlinks {
            let link = store.location.join(String::from_utf8_lossy(rel).as_ref());
            if let Some(t) = rows.get(rel) {
                t.mark_seen();
                continue;
            }
            if *outside {
                out.symlinks_outside.push(link);
                continue;
            }
            let Ok(target) = std::fs::read_link(&link) else {
                continue;
            };
            let abs = if target.is_absolute() {
                target.clone()
            } else {
                link.parent().unwrap_or(&store.location).join(&target)
            };
            let root = std::fs::canonicalize(&store.location).unwrap_or(store.location.clone());
            let abs = std::fs::canonicalize(&abs).unwrap_or(abs);
            if let Ok(trel) = abs.strip_prefix(&root) {
                let trel = crate::paths::normalize(&trel.to_string_lossy());
                if rows.get(trel.as_bytes()).is_some() {
                    out.symlinks_to_tracked.push((link, abs.clone()));
                }
            }
        }
        // Each walker run and the tracked paths are both sorted by
        // fingerprint: one linear merge per run, the runs on their own threads.
        let tracks = &rows.tracks;
        // Candidates are `lstat`ed right there, on the same threads.
        let location = &store.location;
        #[allow(clippy::type_complexity)]
        let untracked: Result<(Vec<Untracked>, Vec<Vec<u8>>), CleanupError> =
            std::thread::scope(|sc| {
                let handles: Vec<_> = listing
                    .runs
                    .iter()
                    .map(|run| {
                        sc.spawn(move || {
                            let mut mine = Vec::new();
                            let mut odd: Vec<Vec<u8>> = Vec::new();
                            let mut j = 0;
                            for e in &run.entries {
                                while j < tracks.len() && tracks[j].fp < e.fp {
                                    j += 1;
                                }
                                match tracks.get(j) {
                                    Some(t) if t.fp == e.fp => t.mark_seen(),
                                    _ => match std::str::from_utf8(run.path(e)) {
                                        Ok(rel) => {
                                            let path = location.join(rel);
                                            let meta = walk::stat(&path);
                                            let rel = rel.to_owned();
                                            mine.push(Untracked { rel, path, meta });
                                        }
                                        // DataJoint's paths are UTF-8, so no row can
                                        // name it; but it is reported, never moved.
                                        Err(_) => odd.push(run.path(e).to_vec()),
                                    },
                                }
                            }
                            (mine, odd)
                        })
                    })
                    .collect();
                let mut all = Vec::new();
                let mut odd = Vec::new();
                for h in handles {
                    let (m, o) = h
                        .join()
                        .map_err(|_| CleanupError::Config("a file matcher panicked".into()))?;
                    all.extend(m);
                    odd.extend(o);
                }
                Ok((all, odd))
            });
        let (untracked, mut odd) = untracked?;
        if !odd.is_empty() {
            odd.sort();
            out.problems.push(Problem {
                guard: None,
                message: format!(
                    "store {}: {} file(s) whose names are not UTF-8 were left alone (no DataJoint row can name them), e.g. {}",
                    store.name,
                    odd.len(),
                    store
                        .location
                        .join(std::ffi::OsStr::from_bytes(&odd[0]))
                        .display()
                ),
            });
        }
        timer.mark("files matched");
        drop(listing.runs);
        classify_store(
            &mut out,
            root_idx,
            store,
            &store.location,
            &mut rows,
            untracked,
            now,
            opts,
        )?;
        if opts.keep_rows {
            out.store_rows.push((store.name.clone(), rows));
        }
    }

    timer.mark("stores classified");
    // Orphan analysis rows.
    if !orphans.is_empty() {
        let root_idx = out.roots.len();
        out.roots.push(Root {
            label: "analysis_nwbfile rows".into(),
            kind: RootKind::Rows,
            path: PathBuf::new(),
            entries: 0,
            rows: orphans.len() as u64,
            rows_in_scope: orphans.len() as u64,
            min_age_seconds: None,
        });
        for o in orphans {
            out.items.push(Item {
                class: Class::OrphanRow,
                root: root_idx,
                path: None,
                rel: format!("{}.analysis_nwbfile: {}", o.schema, o.key),
                size: 0,
                mtime: None,
                subject: Subject::AnalysisRow {
                    schema: o.schema,
                    key: o.key,
                },
                reason: "no downstream table references this analysis file".into(),
            });
        }
    }

    // Folder directories and temp.
    let mut looked: Vec<DirKey> = vec![DirKey::Sorting, DirKey::Recording, DirKey::Temp];
    for (k, _) in &dir_rows {
        if !looked.contains(k) {
            looked.push(*k);
        }
    }
    match &setup.dirs {
        None => {
            for key in &looked {
                out.dirs_not_scanned.push(DirNotScanned {
                    dir: *key,
                    path: None,
                    reason: "Spyglass's base directory is not configured (custom.spyglass_dirs.base in the DataJoint config, or SPYGLASS_BASE_DIR)".into(),
                    located: false,
                });
            }
        }
        Some(dirs) => {
            for key in &looked {
                match dirs.get(*key) {
                    None => out.dirs_not_scanned.push(DirNotScanned {
                        dir: *key,
                        path: None,
                        reason: "not configured".into(),
                        located: false,
                    }),
                    Some(d) if !d.path.is_dir() => out.dirs_not_scanned.push(DirNotScanned {
                        dir: *key,
                        path: Some(d.path.clone()),
                        reason: "does not exist (nothing to clean there)".into(),
                        located: true,
                    }),
                    Some(_) => {}
                }
            }
        }
    }
    if let Some(dirs) = &setup.dirs {
        for (key, rows) in dir_rows {
            let Some(dir) = dirs.get(key) else { continue };
            let entries = walk::top_entries(&dir.path)?;
            let folders: Vec<&String> =
                entries.iter().filter(|(_, d)| *d).map(|(n, _)| n).collect();
            let root_idx = out.roots.len();
            out.roots.push(Root {
                label: key.key().to_owned(),
                kind: RootKind::Folders(key),
                path: dir.path.clone(),
                entries: folders.len() as u64,
                rows: rows.paths.len() as u64,
                rows_in_scope: rows.paths.len() as u64,
                min_age_seconds: None,
            });
            if !folders.is_empty() && rows.paths.is_empty() {
                out.problems.push(Problem {
                    guard: Some(Guard::EmptyTrackedSet),
                    message: format!(
                        "{} directory {}: {} folders but no row names any (columns read: {})",
                        key.key(),
                        dir.path.display(),
                        folders.len(),
                        if rows.columns.is_empty() {
                            "none found".to_owned()
                        } else {
                            rows.columns
                                .iter()
                                .map(|c| format!("{}.{}.{}", c.schema, c.table, c.column))
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    ),
                });
            }
            for name in folders {
                let path = dir.path.join(name);
                let full = format!("/{}", crate::paths::normalize(&path.to_string_lossy()));
                let canon = std::fs::canonicalize(&path)
                    .map(|p| format!("/{}", crate::paths::normalize(&p.to_string_lossy())))
                    .unwrap_or_default();
                let named = rows.paths.contains(&full)
                    || rows.paths.contains(&canon)
                    || rows.names.contains(name.as_str());
                if named {
                    continue;
                }
                let (bytes, newest) = walk::tree_meta(&path)?;
                let item = Item {
                    class: Class::UntrackedDir,
                    root: root_idx,
                    path: Some(path),
                    rel: name.clone(),
                    size: bytes,
                    mtime: Some(newest),
                    subject: Subject::Entry,
                    reason: format!("no {} row names this folder", key.key()),
                };
                match classify::folder(false, age(now, newest), opts.min_age) {
                    FolderVerdict::Untracked => out.items.push(item),
                    FolderVerdict::Young => out.young.push(item),
                    FolderVerdict::Live => {}
                }
            }
            out.dir_columns.insert(key, rows.columns);
        }
        if let Some(tmp) = dirs.get(DirKey::Temp) {
            let name = tmp
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !classify::is_temp_name(&name) {
                out.dirs_not_scanned.push(DirNotScanned {
                    dir: DirKey::Temp,
                    path: Some(tmp.path.clone()),
                    reason: "not named tmp or temp".into(),
                    located: true,
                });
                out.problems.push(Problem {
                    guard: None,
                    message: format!(
                        "temp directory {} is not named tmp or temp: stale temp files are not looked for there",
                        tmp.path.display()
                    ),
                });
            } else {
                let entries = walk::top_entries(&tmp.path)?;
                let root_idx = out.roots.len();
                out.roots.push(Root {
                    label: "temp".into(),
                    kind: RootKind::Temp,
                    path: tmp.path.clone(),
                    entries: entries.len() as u64,
                    rows: 0,
                    rows_in_scope: 0,
                    min_age_seconds: None,
                });
                for (name, _) in entries {
                    let path = tmp.path.join(&name);
                    let (bytes, newest) = walk::tree_meta(&path)?;
                    let a = age(now, newest);
                    let item = Item {
                        class: Class::StaleTemp,
                        root: root_idx,
                        path: Some(path),
                        rel: name,
                        size: bytes,
                        mtime: Some(newest),
                        subject: Subject::Entry,
                        reason: format!("untouched for {}", human_age(a)),
                    };
                    if classify::temp_entry(a, opts.temp_age) {
                        out.items.push(item);
                    } else {
                        out.young.push(item);
                    }
                }
            }
        }
    }
    out.items
        .sort_by(|a, b| (a.class, &a.rel).cmp(&(b.class, &b.rel)));
    out.young.sort_by(|a, b| a.rel.cmp(&b.rel));
    out.symlinks_outside.sort();
    out.symlinks_to_tracked.sort();
    timer.mark("folders and temp");
    out.timings = timer.into_marks();
    Ok(out)
}

/// One read of the scan's database queue.
enum Read {
    /// A hash-range slice of `~external` table `.1` for walked store `.0`.
    Rows(usize, usize, inventory::HashRange),
    /// The orphan rows of analysis table `.0`.
    Orphans(usize),
}

/// When each phase of a scan ended, for profiling ([`Scan::timings`]).
struct PhaseTimer {
    start: std::time::Instant,
    marks: std::sync::Mutex<Vec<(String, Duration)>>,
}

impl PhaseTimer {
    fn new() -> Self {
        PhaseTimer {
            start: std::time::Instant::now(),
            marks: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn mark(&self, phase: &str) {
        let at = self.start.elapsed();
        if let Ok(mut m) = self.marks.lock() {
            m.push((phase.to_owned(), at));
        }
    }

    fn into_marks(self) -> Vec<(String, Duration)> {
        self.marks.into_inner().unwrap_or_default()
    }
}

/// A file on disk no row names, with its `lstat`.
struct Untracked {
    rel: String,
    path: PathBuf,
    meta: Result<Option<walk::Meta>, CleanupError>,
}

#[allow(clippy::too_many_arguments)]
fn classify_store(
    out: &mut Scan,
    root_idx: usize,
    store: &Store,
    location: &Path,
    rows: &mut StoreRows,
    untracked: Vec<Untracked>,
    now: SystemTime,
    opts: &ScanOptions,
) -> Result<(), CleanupError> {
    let min_age = opts.min_age_for(&store.name);
    for Untracked { rel, path, meta } in untracked {
        let Some(m) = meta? else {
            continue;
        };
        if !m.is_file {
            continue;
        }
        let verdict = classify::file(None, m.size, age(now, m.mtime), min_age);
        let (class, reason) = match verdict {
            FileVerdict::Candidate(c) => (c, format!("no ~external_{} row names it", store.name)),
            FileVerdict::Young => (
                if m.size == 0 {
                    Class::Empty
                } else {
                    Class::Untracked
                },
                format!(
                    "untracked but modified {} ago (grace period {})",
                    human_age(age(now, m.mtime)),
                    human_age(min_age)
                ),
            ),
            _ => continue,
        };
        let item = Item {
            class,
            root: root_idx,
            path: Some(path),
            rel,
            size: m.size,
            mtime: Some(m.mtime),
            subject: Subject::File,
            reason,
        };
        if verdict == FileVerdict::Young {
            out.young.push(item);
        } else {
            out.items.push(item);
        }
    }
    // Unused rows, with their file when nothing else keeps it.
    let mut moving: std::collections::HashSet<String> = std::collections::HashSet::new();
    for u in std::mem::take(&mut rows.unused) {
        let t = &out.catalog.externals[u.table as usize];
        let track = rows.get(u.rel.as_bytes());
        let exists = track.is_some_and(|t| t.seen());
        let path = location.join(&u.rel);
        // A symlink (or folder) the row names is never moved: the row alone goes.
        let meta = if exists && track.is_some_and(|t| !t.used()) && !moving.contains(&u.rel) {
            walk::stat(&path)?.filter(|m| m.is_file)
        } else {
            None
        };
        let with_file = meta.is_some() && moving.insert(u.rel.clone());
        let (size, mtime) = match meta {
            Some(m) => (m.size, Some(m.mtime)),
            None => (0, None),
        };
        let item = Item {
            class: Class::UnusedExternal,
            root: root_idx,
            path: with_file.then(|| path.clone()),
            rel: u.rel.clone(),
            size,
            mtime,
            subject: Subject::ExternalRow {
                schema: t.schema.clone(),
                store: t.store.clone(),
                hash: crate::paths::hex(&u.hash),
                with_file,
            },
            reason: format!(
                "no column references this row of {}{}",
                t.qualified(),
                if exists {
                    ""
                } else {
                    " (its file is already gone)"
                }
            ),
        };
        if mtime.is_some_and(|m| age(now, m) < min_age) {
            out.young.push(item);
        } else {
            out.items.push(item);
        }
    }
    // Dangling: referenced, in scope, not on disk.
    for t in &rows.tracks {
        if t.seen() {
            continue;
        }
        if let Some(class) = classify::missing(t.in_scope_used()) {
            let rel = String::from_utf8_lossy(rows.path_of(t)).into_owned();
            let table = &out.catalog.externals[t.table as usize];
            out.items.push(Item {
                class,
                root: root_idx,
                path: Some(location.join(&rel)),
                rel,
                size: 0,
                mtime: None,
                subject: Subject::File,
                reason: format!(
                    "referenced through {} but missing on disk: possible data loss",
                    table.qualified()
                ),
            });
        }
    }
    if !same_dir(location, &store.location) {
        out.problems.push(Problem {
            guard: Some(Guard::StoreDirMismatch),
            message: format!("store {} resolved to two directories", store.name),
        });
    }
    Ok(())
}

/// A store's own grace period in seconds, if it has one.
fn own_min_age(opts: &ScanOptions, store: &str) -> Option<u64> {
    opts.stores
        .get(store)
        .and_then(|r| r.min_age)
        .map(|d| d.as_secs())
}

/// `3d 4h`, `25m`, `12s`.
pub fn human_age(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86400 {
        format!("{}d {}h", s / 86400, (s % 86400) / 3600)
    } else if s >= 3600 {
        format!("{}h {}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}
