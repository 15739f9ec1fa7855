//! Acting on a scan: guards first, then every item re-checked right before
//! it is moved or deleted.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use spyglass_db::quote::qualified;
use spyglass_db::Session;

use crate::classify::Class;
use crate::inventory;
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
                    "{} of the {} entries of {} ({}) would go ({:.0}%), more than --max-fraction {}",
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
    /// `quarantined`, `deleted`, or `skipped`.
    pub action: &'static str,
    /// For skipped items, why (the re-check that failed).
    pub reason: Option<String>,
}

/// What [`apply`] did.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    /// The quarantine run, when one was written.
    pub run: Option<PathBuf>,
    /// One entry per selected item.
    pub outcomes: Vec<Outcome>,
}

impl ApplyReport {
    /// Items acted on.
    pub fn done(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| o.action != "skipped")
    }
    /// Items skipped by a re-check.
    pub fn skipped(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| o.action == "skipped")
    }
}

const BATCH: usize = 500;

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

/// Acts on the selected items of `scan`. Guards must have passed
/// ([`check_guards`]). Each item is re-checked right before it is acted on:
/// still untracked or unused (the database is asked again, in batches), same
/// size and mtime as scanned, older than `min_age`. `progress(done, total)`
/// is called as items are handled.
pub fn apply(
    session: &mut Session,
    scan: &Scan,
    setup: &Setup,
    opts: &ApplyOptions,
    selected: &[usize],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ApplyReport, CleanupError> {
    let mut run = match &opts.disposal {
        Disposal::Quarantine(q) if !selected.is_empty() => Some(Run::create(q, SystemTime::now())?),
        _ => None,
    };
    let mut outcomes = Vec::with_capacity(selected.len());
    let total = selected.len();
    let result = (|| -> Result<(), CleanupError> {
        for chunk in selected.chunks(BATCH) {
            // Batch re-check of files against the database, per store.
            let mut now_tracked: std::collections::HashSet<(usize, String)> =
                std::collections::HashSet::new();
            let mut by_root: HashMap<usize, Vec<&str>> = HashMap::new();
            for &n in chunk {
                let i = &scan.items[n];
                if matches!(i.class, Class::Untracked | Class::Empty) {
                    by_root.entry(i.root).or_default().push(&i.rel);
                }
            }
            for (root, rels) in by_root {
                let RootKind::Store(name) = &scan.roots[root].kind else {
                    continue;
                };
                let Some(store) = setup.stores.iter().find(|s| &s.name == name) else {
                    continue;
                };
                for hit in inventory::tracked_now(session.conn(), store, &rels)? {
                    now_tracked.insert((root, hit));
                }
            }
            for &n in chunk {
                let item = &scan.items[n];
                let skip = |reason: String| Outcome {
                    class: item.class,
                    what: describe(item),
                    size: item.size,
                    action: "skipped",
                    reason: Some(reason),
                };
                if now_tracked.contains(&(item.root, item.rel.clone())) {
                    outcomes.push(skip("a row names it now".into()));
                    continue;
                }
                match act(session, scan, setup, opts, item, run.as_mut())? {
                    Ok(action) => outcomes.push(Outcome {
                        class: item.class,
                        what: describe(item),
                        size: item.size,
                        action,
                        reason: None,
                    }),
                    Err(reason) => outcomes.push(skip(reason)),
                }
                progress(outcomes.len(), total);
            }
        }
        Ok(())
    })();
    let run_dir = match run {
        Some(r) => Some(r.finish()?),
        None => None,
    };
    result?;
    Ok(ApplyReport {
        run: run_dir,
        outcomes,
    })
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
            "younger than --min-age {}",
            humantime::format_duration(min_age)
        )));
    }
    Ok(Ok(()))
}

type Acted = Result<&'static str, String>;

fn act(
    session: &mut Session,
    scan: &Scan,
    setup: &Setup,
    opts: &ApplyOptions,
    item: &Item,
    run: Option<&mut Run>,
) -> Result<Acted, CleanupError> {
    let now = SystemTime::now();
    if let Err(why) = recheck_disk(item, opts.min_age, now)? {
        return Ok(Err(why));
    }
    let root = &scan.roots[item.root];
    match (&item.class, &item.subject) {
        (Class::UntrackedDir, _) => {
            let RootKind::Folders(key) = root.kind else {
                return Ok(Err("not in a folder directory".into()));
            };
            let cols = scan.dir_columns.get(&key).cloned().unwrap_or_default();
            let path = item.path.as_deref().unwrap_or(Path::new(""));
            if inventory::dir_tracked_now(
                session.conn(),
                &cols,
                &path.to_string_lossy(),
                &item.rel,
            )? {
                return Ok(Err("a row names it now".into()));
            }
            remove(item, root.label.as_str(), opts, run, None).map(Ok)
        }
        (Class::Untracked | Class::Empty | Class::StaleTemp, _) => {
            remove(item, &root.label, opts, run, None).map(Ok)
        }
        (
            Class::UnusedExternal,
            Subject::ExternalRow {
                schema,
                store,
                hash,
                with_file,
            },
        ) => {
            let Some(table) = scan
                .catalog
                .externals
                .iter()
                .find(|t| &t.schema == schema && &t.store == store)
            else {
                return Ok(Err("table gone".into()));
            };
            let h = crate::paths::unhex(hash).unwrap_or([0; 16]);
            if !inventory::still_unused(session.conn(), table, &h)? {
                return Ok(Err("the row is referenced now (or gone)".into()));
            }
            if *with_file {
                let Some(st) = setup.stores.iter().find(|s| &s.name == store) else {
                    return Ok(Err("store gone".into()));
                };
                let others = inventory::rows_naming(session.conn(), st, &item.rel)?;
                if others
                    .iter()
                    .any(|(s, hh)| !(s == schema && hh.as_slice() == h.as_slice()))
                {
                    return Ok(Err("another row names its file now".into()));
                }
            }
            let saved = inventory::read_row(
                session.conn(),
                &table.qualified(),
                &format!("hash = X'{hash}'"),
            )?
            .map(|r| quarantine::save_row(&table.qualified(), r));
            if opts.disposal == Disposal::Delete {
                // Nothing to put back with --delete: the row goes first (its foreign
                // keys refuse if it became referenced), then the file.
                return match inventory::delete_external_row(session.conn(), table, &h) {
                    Ok(1) => {
                        if *with_file {
                            remove_keep(item, &root.label, opts, None, None)?;
                        }
                        Ok(Ok("deleted"))
                    }
                    Ok(_) => Ok(Err("the row was gone".into())),
                    Err(e) => Ok(Err(format!("deleting the row failed, file kept: {e}"))),
                };
            }
            let mut run = run;
            let moved = if *with_file {
                Some(remove_keep(
                    item,
                    &root.label,
                    opts,
                    run.as_deref_mut(),
                    saved.clone(),
                )?)
            } else {
                None
            };
            if moved.is_none() {
                if let Some(r) = run.as_deref_mut() {
                    r.record(entry(item, None, saved.clone()))?;
                }
            }
            let deleted = inventory::delete_external_row(session.conn(), table, &h);
            match deleted {
                Ok(1) => Ok(Ok(if matches!(opts.disposal, Disposal::Delete) {
                    "deleted"
                } else {
                    "quarantined"
                })),
                other => {
                    // Put the file back; the row stays.
                    if let Some(Some((id, from))) = moved {
                        if let Some(p) = &item.path {
                            std::fs::rename(&from, p)
                                .map_err(CleanupError::io("cannot move back", &from))?;
                        }
                        if let Some(r) = run {
                            r.undo(id)?;
                        }
                    }
                    let why = match other {
                        Err(e) => format!("deleting the row failed, file put back: {e}"),
                        _ => "the row was gone".into(),
                    };
                    Ok(Err(why))
                }
            }
        }
        (Class::OrphanRow, Subject::AnalysisRow { schema, key }) => {
            let Some(table) = scan.catalog.analysis.iter().find(|t| &t.schema == schema) else {
                return Ok(Err("table gone".into()));
            };
            if !inventory::still_orphan(session.conn(), table, key)? {
                return Ok(Err("referenced downstream now (or gone)".into()));
            }
            let t = qualified(schema, "analysis_nwbfile");
            let saved = inventory::read_row(
                session.conn(),
                &t,
                &format!("analysis_file_name = {}", spyglass_db::quote::string(key)),
            )?
            .map(|r| quarantine::save_row(&t, r));
            let mut run = run;
            let id = match run.as_deref_mut() {
                Some(r) => Some(r.record(entry(item, None, saved))?),
                None => None,
            };
            match inventory::delete_analysis_row(session.conn(), schema, key) {
                Ok(1) => Ok(Ok(if matches!(opts.disposal, Disposal::Delete) {
                    "deleted"
                } else {
                    "quarantined"
                })),
                other => {
                    if let (Some(r), Some(id)) = (run, id) {
                        r.undo(id)?;
                    }
                    Ok(Err(match other {
                        Err(e) => format!("deleting the row failed: {e}"),
                        _ => "the row was gone".into(),
                    }))
                }
            }
        }
        _ => Ok(Err("nothing to do".into())),
    }
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

fn remove(
    item: &Item,
    label: &str,
    opts: &ApplyOptions,
    run: Option<&mut Run>,
    row: Option<quarantine::SavedRow>,
) -> Result<&'static str, CleanupError> {
    remove_keep(item, label, opts, run, row)?;
    Ok(if matches!(opts.disposal, Disposal::Delete) {
        "deleted"
    } else {
        "quarantined"
    })
}

/// Moves (or deletes) the item's file or folder; returns the manifest id and
/// where it went when quarantined.
fn remove_keep(
    item: &Item,
    label: &str,
    opts: &ApplyOptions,
    run: Option<&mut Run>,
    row: Option<quarantine::SavedRow>,
) -> Result<Option<(u64, PathBuf)>, CleanupError> {
    let Some(path) = &item.path else {
        return Ok(None);
    };
    match (&opts.disposal, run) {
        (Disposal::Quarantine(_), Some(run)) => {
            let stored = PathBuf::from("files")
                .join(root_dir_name(label))
                .join(&item.rel);
            let dest = run.dir.join(&stored);
            let id = run.record(entry(item, Some(stored), row))?;
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(CleanupError::io("cannot create directory", parent))?;
            }
            if let Err(e) = std::fs::rename(path, &dest) {
                run.undo(id)?;
                return Err(CleanupError::Io {
                    what: "cannot move into quarantine",
                    path: path.clone(),
                    source: e,
                });
            }
            Ok(Some((id, dest)))
        }
        _ => {
            let meta =
                std::fs::symlink_metadata(path).map_err(CleanupError::io("cannot stat", path))?;
            if meta.is_dir() {
                std::fs::remove_dir_all(path).map_err(CleanupError::io("cannot delete", path))?;
            } else {
                std::fs::remove_file(path).map_err(CleanupError::io("cannot delete", path))?;
            }
            Ok(None)
        }
    }
}
