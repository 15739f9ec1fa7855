//! Loading a set into a server: schema files first (databases, tables,
//! routines and a stand-in for every view), data files in parallel, then
//! views (each replacing its stand-in), triggers and events. Each file's sha256 is checked
//! against the manifest before any of it is loaded.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::mysql::{Conn, Value};
use spyglass_db::{quote, ConnectOptions, DbError};

use crate::compress::{hex, open_sql_bytes};
use crate::manifest::{FileKind, FileRecord, Manifest};
use crate::names::glob_match;
use crate::progress::Progress;
use crate::script;
use crate::Error;

/// What to restore and how.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Schema globs to restore (empty: all in the set).
    pub schemas: Vec<String>,
    /// `OLD=NEW` renames; a name ending in `*` on both sides renames by prefix
    /// (`common_*=test_common_*`).
    pub rename: Vec<(String, String)>,
    /// Loader connections.
    pub threads: usize,
    /// Drop schemas that already exist on the target.
    pub force: bool,
    /// Also create the set's accounts, roles and grants.
    pub with_accounts: bool,
    /// Write the restored rows to the binary log (replicas see them). Off by
    /// default, like myloader: a restore rebuilds a server, and logging every
    /// row doubles the writes.
    pub binlog: bool,
    /// For scratch restores (`verify --restore`, the nightly's restore
    /// drill): when the account may not create a view, trigger, routine or
    /// event with the set's DEFINER (error 1227: it lacks SUPER, `SET USER`
    /// on MariaDB, `SET_ANY_DEFINER` on MySQL), create it with
    /// `DEFINER=CURRENT_USER` instead and say so in the notes; and when the
    /// binary log is on and it lacks SUPER (error 1419, triggers and stored
    /// functions), leave the object out and list it in
    /// [`RestoreSummary::skipped`]. Never for a real restore: there the
    /// object must keep its definer, and every object must be there.
    pub definer_fallback: bool,
    /// What the unfinished-restore marker names as the set (default: its
    /// path): the `ssh://` or `s3://` address a fetched copy came from, so
    /// a restore that stops names what to restore again, not a temporary
    /// directory that is gone by then.
    pub source: Option<String>,
}

/// What [`restore`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreSummary {
    /// Schemas created, as named on the target.
    pub schemas: Vec<String>,
    /// Files loaded.
    pub files: usize,
    /// Rows loaded (from the manifest).
    pub rows: u64,
    /// Uncompressed bytes of SQL executed.
    pub raw_bytes: u64,
    /// Bytes of the set checked against the manifest before the target changed.
    pub checked_bytes: u64,
    /// The session `sql_mode` the rows were loaded with.
    pub sql_mode: String,
    /// Files the server gave warnings for (values it changed): each is a finding.
    pub warnings: Vec<FileWarnings>,
    /// Views, triggers, routines and events whose DEFINER is no account on
    /// the target: each loaded with its definer kept (as mysqldump does),
    /// and each is a finding: using it fails until the account exists.
    pub missing_definers: Vec<MissingDefiner>,
    /// What the reader should know (an older set without a recorded sql_mode).
    pub notes: Vec<String>,
    /// Scratch restores only ([`RestoreOptions::definer_fallback`]): the
    /// triggers and stored functions left out because the binary log is on
    /// and the account lacks SUPER ([`ER_BINLOG_CREATE_ROUTINE_NEED_SUPER`]),
    /// each as `` trigger `schema`.`name` ``. A real restore stops there.
    pub skipped: Vec<String>,
}

/// Warnings the server gave while one file loaded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileWarnings {
    /// The file.
    pub path: PathBuf,
    /// How many (notes are not counted).
    pub count: u64,
    /// The first one: level, code and message.
    pub first: String,
}

/// An object loaded with a DEFINER the target has no account for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MissingDefiner {
    /// `view`, `trigger`, `procedure`, `function` or `event`.
    pub kind: String,
    /// `` `schema`.`name` `` on the target.
    pub object: String,
    /// The definer as the server names it: `'user'@'host'`.
    pub definer: String,
    /// The file it came from.
    pub path: PathBuf,
}

/// The kind and `` `schema`.`name` `` of a `CREATE ... DEFINER=... VIEW|TRIGGER|...`
/// statement (ours or mysqldump's, whose clauses sit in `/*!50003 */` comments);
/// `db` qualifies an unqualified name.
pub(crate) fn created_object(stmt: &str, db: Option<&str>) -> Option<(String, String)> {
    let upper = stmt.to_ascii_uppercase();
    let after = upper.find("DEFINER=")?;
    let (at, kind) = ["VIEW", "TRIGGER", "PROCEDURE", "FUNCTION", "EVENT"]
        .iter()
        .filter_map(|k| {
            upper[after..]
                .match_indices(k)
                .find(|(i, _)| {
                    let i = after + i;
                    let before = upper.as_bytes().get(i.wrapping_sub(1)).copied();
                    let next = upper.as_bytes().get(i + k.len()).copied();
                    matches!(before, Some(b' ' | b'/' | b'\n'))
                        && matches!(next, Some(b' ' | b'\n'))
                })
                .map(|(i, _)| (after + i + k.len(), *k))
        })
        .min()?;
    // The name: one or two identifiers, backquoted or bare.
    let b = stmt.as_bytes();
    let mut i = at;
    while b.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
        i += 1;
    }
    let mut parts: Vec<String> = Vec::new();
    loop {
        let start = i;
        if b.get(i) == Some(&b'`') {
            i += 1;
            while i < b.len() {
                if b[i] == b'`' {
                    if b.get(i + 1) == Some(&b'`') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i = (i + 1).min(b.len());
            parts.push(stmt.get(start..i)?.to_owned());
        } else {
            while b
                .get(i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'$')
            {
                i += 1;
            }
            if i == start {
                return None;
            }
            parts.push(quote::ident(stmt.get(start..i)?));
        }
        if b.get(i) == Some(&b'.') && parts.len() == 1 {
            i += 1;
        } else {
            break;
        }
    }
    let object = match (parts.len(), db) {
        (1, Some(db)) => format!("{}.{}", quote::ident(db), parts[0]),
        _ => parts.join("."),
    };
    Some((kind.to_ascii_lowercase(), object))
}

/// Counts the warnings of each statement of one file.
#[derive(Default)]
struct Tally {
    count: u64,
    first: Option<String>,
}

impl Tally {
    fn after(&mut self, conn: &mut Conn) {
        let w = conn.warnings();
        if w == 0 {
            return;
        }
        self.count += u64::from(w);
        if self.first.is_none() {
            self.first = conn
                .query_first::<(String, u32, String), _>("SHOW WARNINGS LIMIT 1")
                .ok()
                .flatten()
                .map(|(level, code, msg)| format!("{level} {code}: {msg}"));
        }
    }

    /// After a statement run with `sql_notes = 1`: counts its warnings (not
    /// its notes) and returns the definers the server says do not exist
    /// (note 1449).
    fn after_with_notes(&mut self, conn: &mut Conn) -> Vec<String> {
        if conn.warnings() == 0 {
            return Vec::new();
        }
        let all: Vec<(String, u32, String)> = conn.query("SHOW WARNINGS").unwrap_or_default();
        let mut definers = Vec::new();
        for (level, code, msg) in all {
            if code == ER_NO_SUCH_USER {
                let who = msg
                    .split_once('(')
                    .and_then(|(_, r)| r.rsplit_once(')'))
                    .map_or(msg.as_str(), |(w, _)| w);
                definers.push(who.to_owned());
            } else if !level.eq_ignore_ascii_case("Note") {
                self.count += 1;
                if self.first.is_none() {
                    self.first = Some(format!("{level} {code}: {msg}"));
                }
            }
        }
        definers
    }

    fn into_warnings(self, path: PathBuf) -> Option<FileWarnings> {
        (self.count > 0).then(|| FileWarnings {
            path,
            count: self.count,
            first: self.first.unwrap_or_default(),
        })
    }
}

/// "The user specified as a definer (...) does not exist" (a note when an
/// object is created, an error when it is used).
const ER_NO_SUCH_USER: u32 = 1449;

/// "Access denied; you need (at least one of) the SUPER ... privilege(s)":
/// what creating an object with another account as DEFINER gives an
/// account that may not set definers.
const ER_SPECIFIC_ACCESS_DENIED: u16 = 1227;

/// Definers while loading: those with no account on the target, and (with
/// [`RestoreOptions::definer_fallback`]) the objects created with the
/// restoring account as definer instead.
#[derive(Debug, Default)]
struct Definers {
    missing: Vec<MissingDefiner>,
    fallback: bool,
    replaced: Vec<String>,
    skipped: Vec<String>,
}

/// "You do not have the SUPER privilege and binary logging is enabled":
/// with the binary log on, creating a trigger or a stored function needs
/// SUPER unless `log_bin_trust_function_creators` is on (MariaDB 10.11 and
/// MySQL 9.x alike; no finer privilege lifts it, and `sql_log_bin = 0`
/// does not either).
pub const ER_BINLOG_CREATE_ROUTINE_NEED_SUPER: u16 = 1419;

impl Definers {
    /// Adds what another worker found, keeping each list sorted, so the
    /// summary does not depend on which worker loaded which schema.
    fn absorb(&mut self, other: Definers) {
        self.missing.extend(other.missing);
        // Stable: a file's findings keep their statement order.
        self.missing.sort_by(|a, b| a.path.cmp(&b.path));
        self.replaced.extend(other.replaced);
        self.replaced.sort();
        self.skipped.extend(other.skipped);
        self.skipped.sort();
    }

    /// In a scratch restore ([`RestoreOptions::definer_fallback`]), whether
    /// `outcome` is error 1419 for the object `stmt` creates: then it is
    /// left out and listed in [`RestoreSummary::skipped`] instead of
    /// stopping the restore.
    fn skip_if_needs_super(
        &mut self,
        outcome: &Result<(), spyglass_db::mysql::Error>,
        stmt: &str,
        db: Option<&str>,
        n: usize,
    ) -> bool {
        let Err(spyglass_db::mysql::Error::MySqlError(e)) = outcome else {
            return false;
        };
        if !self.fallback || e.code != ER_BINLOG_CREATE_ROUTINE_NEED_SUPER {
            return false;
        }
        let (kind, object) = created_object(stmt, db)
            .unwrap_or_else(|| ("object".into(), format!("(statement {})", n + 1)));
        self.skipped.push(format!("{kind} {object}"));
        true
    }
}

/// `stmt` with its `DEFINER=account` clause replaced by
/// `DEFINER=CURRENT_USER`; the account is quoted (backticks, quotes) or
/// bare, `user@host` or a role.
fn own_definer(stmt: &str) -> Option<String> {
    let upper = stmt.to_ascii_uppercase();
    upper
        .match_indices("DEFINER")
        .find_map(|(start, _)| definer_at(stmt, start))
}

fn definer_at(stmt: &str, start: usize) -> Option<String> {
    let b = stmt.as_bytes();
    let mut i = start + "DEFINER".len();
    let skip_ws = |i: &mut usize| {
        while b.get(*i).is_some_and(|c| c.is_ascii_whitespace()) {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    if b.get(i) != Some(&b'=') {
        return None;
    }
    i += 1;
    skip_ws(&mut i);
    let token = |i: &mut usize| -> bool {
        match b.get(*i) {
            Some(&q @ (b'`' | b'\'' | b'"')) => {
                *i += 1;
                while *i < b.len() {
                    if b[*i] == q {
                        if b.get(*i + 1) == Some(&q) {
                            *i += 2;
                            continue;
                        }
                        *i += 1;
                        return true;
                    }
                    if b[*i] == b'\\' && q != b'`' {
                        *i += 1;
                    }
                    *i += 1;
                }
                false
            }
            Some(_) => {
                let s = *i;
                while b.get(*i).is_some_and(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | b'.' | b'%' | b'-')
                }) {
                    *i += 1;
                }
                *i > s
            }
            None => false,
        }
    };
    if !token(&mut i) {
        return None;
    }
    if b.get(i) == Some(&b'@') {
        i += 1;
        if !token(&mut i) {
            return None;
        }
    }
    let mut out = String::with_capacity(stmt.len());
    out.push_str(&stmt[..start]);
    out.push_str("DEFINER=CURRENT_USER");
    out.push_str(&stmt[i..]);
    Some(out)
}

/// Modes that turn a value the set holds into an error: the source stored it,
/// so the restore accepts it (and counts a warning if the server changes it).
const LOOSENED_MODES: &[&str] = &[
    "STRICT_TRANS_TABLES",
    "STRICT_ALL_TABLES",
    "NO_ZERO_DATE",
    "NO_ZERO_IN_DATE",
    "TRADITIONAL",
    "ERROR_FOR_DIVISION_BY_ZERO",
];

/// The session `sql_mode` to load a set with: the source's (recorded in the
/// manifest), without the modes that reject stored values, with
/// `NO_AUTO_VALUE_ON_ZERO` (a stored 0 in an AUTO_INCREMENT column stays 0).
/// Older sets without a recorded mode: `NO_AUTO_VALUE_ON_ZERO` alone, as before.
pub fn load_sql_mode(m: &Manifest) -> String {
    let Some(mode) = &m.sql_mode else {
        return "NO_AUTO_VALUE_ON_ZERO".into();
    };
    let mut parts: Vec<&str> = mode
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty() && !LOOSENED_MODES.iter().any(|l| l.eq_ignore_ascii_case(p)))
        .collect();
    if !parts
        .iter()
        .any(|p| p.eq_ignore_ascii_case("NO_AUTO_VALUE_ON_ZERO"))
    {
        parts.push("NO_AUTO_VALUE_ON_ZERO");
    }
    parts.join(",")
}

/// Applies the rename rules to a schema name.
pub fn target_name(rename: &[(String, String)], schema: &str) -> String {
    rule_for(rename, schema).map_or_else(|| schema.to_owned(), |(_, t)| t)
}

/// The first rename rule that applies to `schema`, and the name it gives.
fn rule_for(rename: &[(String, String)], schema: &str) -> Option<(usize, String)> {
    for (i, (old, new)) in rename.iter().enumerate() {
        if let (Some(op), Some(np)) = (old.strip_suffix('*'), new.strip_suffix('*')) {
            if let Some(rest) = schema.strip_prefix(op) {
                return Some((i, format!("{np}{rest}")));
            }
        } else if old == schema {
            return Some((i, new.clone()));
        }
    }
    None
}

/// The table a restore creates in each schema as soon as the schema exists,
/// and drops only when every file of the set is loaded: a schema holding it
/// is an unfinished restore (killed, or stopped by an error), and the next
/// restore, [`unfinished_restores`] and `doctor` say so. Its name starts with
/// `~`, like DataJoint's own `~log` and `~jobs`, so DataJoint ignores it.
pub const MARKER_TABLE: &str = "~restore_incomplete";

/// A schema an earlier restore left unfinished.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnfinishedRestore {
    /// The schema on the server.
    pub schema: String,
    /// The set it was being restored from.
    pub set: String,
    /// When that restore started, RFC 3339 UTC.
    pub started: String,
    /// The restore's session is still connected: it is loading now (not a
    /// problem yet). False when it was killed or stopped, or when this
    /// account cannot see that session (without PROCESS).
    pub running: bool,
}

/// Every schema on the server that holds [`MARKER_TABLE`].
pub fn unfinished_restores(conn: &mut Conn) -> Result<Vec<UnfinishedRestore>, Error> {
    let schemas: Vec<String> = conn
        .exec(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = ? ORDER BY 1",
            (MARKER_TABLE,),
        )
        .map_err(|e| Error::Db(DbError::query("looking for unfinished restores", e)))?;
    let mut out = Vec::new();
    for schema in schemas {
        let row: Option<(String, String)> = conn
            .query_first(format!(
                "SELECT set_path, started FROM {} LIMIT 1",
                quote::qualified(&schema, MARKER_TABLE)
            ))
            .unwrap_or(None);
        let (set, started) = row.unwrap_or_else(|| ("?".into(), "?".into()));
        // Older markers have no connection_id column: not running, then.
        let session: Option<u64> = conn
            .query_first(format!(
                "SELECT connection_id FROM {} LIMIT 1",
                quote::qualified(&schema, MARKER_TABLE)
            ))
            .unwrap_or(None)
            .flatten();
        let running = match session {
            Some(id) => crate::guard::session_connected(conn, id),
            None => false,
        };
        out.push(UnfinishedRestore {
            schema,
            set,
            started,
            running,
        });
    }
    Ok(out)
}

fn create_marker(conn: &mut Conn, schema: &str, source: &str, started: &str) -> Result<(), Error> {
    let t = quote::qualified(schema, MARKER_TABLE);
    conn.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS {t} (set_path varchar(4096) NOT NULL, started varchar(32) NOT NULL, connection_id bigint unsigned NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT 'spyglass-admin: this schema is an unfinished restore'"
    ))
    .and_then(|_| {
        conn.exec_drop(
            format!("INSERT INTO {t} VALUES (?, ?, CONNECTION_ID())"),
            (source, started),
        )
    })
    .map_err(|e| {
        Error::Db(DbError::query(
            format!("marking `{schema}` as being restored ({MARKER_TABLE})"),
            e,
        ))
    })
}

/// Which schemas of the set a restore loads, and each one's name on the
/// target. Refuses, before anything runs: a selection matching nothing, a
/// `--rename` rule that renames nothing, two schemas onto one name, and any
/// of the server's own schemas as a target.
pub fn plan(
    manifest: &Manifest,
    set: &Path,
    options: &RestoreOptions,
) -> Result<BTreeMap<String, String>, Error> {
    let selected: Vec<&String> = manifest
        .schemas
        .iter()
        .filter(|s| options.schemas.is_empty() || options.schemas.iter().any(|g| glob_match(g, s)))
        .collect();
    if selected.is_empty() {
        return Err(Error::NothingSelected(format!(
            "no schema in {} matches the schema selection {} (the set holds: {})",
            set.display(),
            options.schemas.join(","),
            manifest.schemas.join(", ")
        )));
    }
    let mut used = vec![false; options.rename.len()];
    let mut renames = BTreeMap::new();
    let mut onto: BTreeMap<String, &str> = BTreeMap::new();
    for s in selected {
        let (rule, target) = match rule_for(&options.rename, s) {
            Some((i, t)) => (Some(i), t),
            None => (None, s.clone()),
        };
        if let Some(i) = rule {
            used[i] = true;
        }
        if crate::names::is_system_schema(&target) {
            return Err(Error::Rename(format!(
                "refusing to restore `{s}` as `{target}`: that is one of the server's own schemas (mysql, sys, information_schema, performance_schema), which a restore never creates, replaces or drops; choose another name"
            )));
        }
        if let Some(other) = onto.insert(target.clone(), s) {
            return Err(Error::Rename(format!(
                "rename rules: `{other}` and `{s}` would both be restored as `{target}`; give each its own name"
            )));
        }
        renames.insert(s.clone(), target);
    }
    let unused: Vec<String> = options
        .rename
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|((o, n), _)| format!("{o}={n}"))
        .collect();
    if !unused.is_empty() {
        return Err(Error::Rename(format!(
            "rename rule {} matches no schema being restored (restoring: {})",
            unused.join(", "),
            renames.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(renames)
}

/// Checks every file a restore will read against the manifest (size and
/// sha256), in parallel, and names every bad one; nothing is loaded.
fn check_files(
    set: &Path,
    files: &[&FileRecord],
    threads: usize,
    progress: &dyn Progress,
) -> Result<u64, Error> {
    for f in files {
        let p = Path::new(&f.path);
        if p.is_absolute()
            || p.components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(Error::BadSet {
                set: set.to_owned(),
                detail: format!("the manifest names a file outside the set: {}", f.path),
            });
        }
    }
    let total: u64 = files.iter().map(|f| f.bytes).sum();
    progress.start("check", total);
    let queue: Mutex<VecDeque<&FileRecord>> = Mutex::new(files.iter().copied().collect());
    let bad: Mutex<Vec<(PathBuf, String)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, files.len().max(1)) {
            scope.spawn(|| loop {
                let Some(f) = queue.lock().ok().and_then(|mut q| q.pop_front()) else {
                    return;
                };
                let path = set.join(&f.path);
                let problem = match crate::compress::file_sha256(&path) {
                    Err(e) => Some(format!("cannot read: {e}")),
                    Ok((size, _)) if size != f.bytes => Some(format!(
                        "size {size} does not match the manifest's {}",
                        f.bytes
                    )),
                    Ok((_, sum)) if sum != f.sha256 => {
                        Some("sha256 does not match the manifest; the file is corrupt".into())
                    }
                    Ok(_) => None,
                };
                progress.advance(f.bytes, 0);
                if let Some(p) = problem {
                    if let Ok(mut b) = bad.lock() {
                        b.push((path, p));
                    }
                }
            });
        }
    });
    progress.finish();
    let mut bad = bad.into_inner().unwrap_or_default();
    bad.sort();
    match bad.len() {
        0 => Ok(total),
        1 => {
            let (path, detail) = bad.remove(0);
            Err(Error::BadFile {
                path,
                detail: format!("{detail}; nothing was restored and nothing on the target changed"),
            })
        }
        n => Err(Error::BadSet {
            set: set.to_owned(),
            detail: format!(
                "{n} files do not match the manifest: {}; nothing was restored and nothing on the target changed",
                bad.iter()
                    .map(|(p, d)| format!("{}: {d}", p.display()))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        }),
    }
}

/// Restores `set` into the server `connect` points at.
///
/// Before anything on the target changes, it checks the plan ([`plan`]),
/// that no target schema exists (or `force`), and every file it will read
/// against the manifest. Each schema holds [`MARKER_TABLE`] from its
/// creation until the whole set is loaded.
pub fn restore(
    connect: &ConnectOptions,
    set: &Path,
    options: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreSummary, Error> {
    let manifest = crate::set::open(set)?;
    let threads = options.threads.max(1);
    let renames = plan(&manifest, set, options)?;
    let mut admin = spyglass_db::connect(connect)?;
    let conn = admin.conn();
    let existing: Vec<String> = conn
        .query("SELECT schema_name FROM information_schema.schemata")
        .map_err(|e| Error::Db(DbError::query("listing schemas on the target", e)))?;
    let clash: Vec<String> = renames
        .values()
        .filter(|t| existing.contains(t))
        .cloned()
        .collect();
    if !clash.is_empty() && !options.force {
        let unfinished = unfinished_restores(conn)?
            .into_iter()
            .map(|u| u.schema)
            .filter(|s| clash.contains(s))
            .collect();
        return Err(Error::SchemasExist {
            schemas: clash,
            unfinished,
        });
    }
    let files_of = |kind: FileKind| -> Vec<&FileRecord> {
        manifest
            .files
            .iter()
            .filter(|f| {
                f.kind == kind && f.schema.as_ref().is_some_and(|s| renames.contains_key(s))
            })
            .collect()
    };
    // Every file this restore reads, checked before the target changes.
    let mut to_read: Vec<&FileRecord> = [FileKind::Schema, FileKind::Data, FileKind::Post]
        .into_iter()
        .flat_map(files_of)
        .collect();
    if options.with_accounts {
        to_read.extend(
            manifest
                .files
                .iter()
                .filter(|f| f.kind == FileKind::Accounts),
        );
    }
    let checked_bytes = check_files(set, &to_read, threads, progress)?;
    // Large rows need a large packet; raise it where allowed (global, needs SUPER/SYSTEM_VARIABLES_ADMIN).
    let need = manifest.max_statement_bytes + 1024;
    let have: u64 = conn
        .query_first("SELECT @@global.max_allowed_packet")
        .ok()
        .flatten()
        .unwrap_or(0);
    if have < need {
        let _ = conn.query_drop(format!(
            "SET GLOBAL max_allowed_packet = {}",
            need.next_power_of_two().min(1 << 30)
        ));
        let have: u64 = conn
            .query_first("SELECT @@global.max_allowed_packet")
            .ok()
            .flatten()
            .unwrap_or(0);
        if have < need {
            return Err(Error::Invalid(format!(
                "the set has a statement of {need} bytes but the server's max_allowed_packet is {have}; raise it (SET GLOBAL max_allowed_packet = {})",
                need.next_power_of_two()
            )));
        }
        // The new global value applies to new connections only.
        admin = spyglass_db::connect(connect)?;
    }
    let conn = admin.conn();
    let mode = load_sql_mode(&manifest);
    setup_load_session(conn, options.binlog, &mode)?;
    for t in &clash {
        conn.query_drop(format!("DROP DATABASE {}", quote::ident(t)))
            .map_err(|e| {
                Error::Db(DbError::query(
                    format!("dropping existing schema {t} (--force)"),
                    e,
                ))
            })?;
    }
    let mut summary = RestoreSummary {
        schemas: renames.values().cloned().collect(),
        files: 0,
        rows: 0,
        raw_bytes: 0,
        checked_bytes,
        sql_mode: mode.clone(),
        warnings: Vec::new(),
        missing_definers: Vec::new(),
        notes: Vec::new(),
        skipped: Vec::new(),
    };
    if manifest.sql_mode.is_none() {
        summary.notes.push(format!(
            "the set records no sql_mode (an older spyglass-admin wrote it): loaded with {mode}, as before"
        ));
    }
    let warnings: Mutex<Vec<FileWarnings>> = Mutex::new(Vec::new());
    let mut definers = Definers {
        fallback: options.definer_fallback,
        ..Definers::default()
    };
    let started = crate::names::rfc3339(crate::names::now_unix());
    let source = options
        .source
        .clone()
        .unwrap_or_else(|| set.display().to_string());
    // Schema files in parallel (each schema's tables, stand-ins and
    // routines; nothing in one checks another's, foreign keys are not
    // checked while loading), then, once every schema file is in, the data
    // files, largest first.
    let scripts = files_of(FileKind::Schema);
    let ddl: Mutex<VecDeque<&FileRecord>> = Mutex::new({
        let mut d = scripts.clone();
        d.sort_by_key(|f| std::cmp::Reverse(f.raw_bytes));
        d.into()
    });
    let ddl_done = AtomicUsize::new(0);
    let found: Mutex<Definers> = Mutex::new(Definers::default());
    let data = files_of(FileKind::Data);
    let total: u64 = data.iter().map(|f| f.raw_bytes).sum();
    let queue: Mutex<VecDeque<&FileRecord>> = Mutex::new({
        let mut d = data.clone();
        d.sort_by_key(|f| std::cmp::Reverse(f.raw_bytes));
        d.into()
    });
    let cancel = AtomicBool::new(false);
    let workers = threads.min(data.len().max(scripts.len()).max(1));
    let schemas_in = |c: &mut Conn| -> Result<(), Error> {
        let mut mine = Definers {
            fallback: options.definer_fallback,
            ..Definers::default()
        };
        loop {
            if cancel.load(Ordering::SeqCst) {
                return Err(Error::Cancelled);
            }
            let next = ddl.lock().map_err(|_| Error::Cancelled)?.pop_front();
            let Some(f) = next else { break };
            let target = f.schema.as_ref().and_then(|s| renames.get(s));
            let marked = load_script(
                c,
                set,
                f,
                &renames,
                target.map(|t| (t.as_str(), started.as_str(), source.as_str())),
                &warnings,
                &mut mine,
            )?;
            if let (Some(t), false) = (target, marked) {
                create_marker(c, t, &source, &started)?;
            }
            ddl_done.fetch_add(1, Ordering::SeqCst);
        }
        found.lock().map_err(|_| Error::Cancelled)?.absorb(mine);
        while ddl_done.load(Ordering::SeqCst) < scripts.len() {
            if cancel.load(Ordering::SeqCst) {
                return Err(Error::Cancelled);
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Ok(())
    };
    let mut progress_started = false;
    let failure = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<(), Error> {
                    let fail = |e: Error| {
                        cancel.store(true, Ordering::SeqCst);
                        e
                    };
                    let mut s = spyglass_db::connect(connect).map_err(|e| fail(e.into()))?;
                    let c = s.conn();
                    setup_load_session(c, options.binlog, &mode).map_err(fail)?;
                    schemas_in(c).map_err(fail)?;
                    // The schema files' SET statements are behind us.
                    setup_load_session(c, options.binlog, &mode).map_err(fail)?;
                    loop {
                        if cancel.load(Ordering::SeqCst) {
                            return Err(Error::Cancelled);
                        }
                        let next = queue.lock().map_err(|_| Error::Cancelled)?.pop_front();
                        let Some(f) = next else { return Ok(()) };
                        match load_data(c, set, f, &renames, progress) {
                            Err(e) => return Err(fail(e)),
                            Ok(Some(w)) => warnings.lock().map_err(|_| Error::Cancelled)?.push(w),
                            Ok(None) => {}
                        }
                    }
                })
            })
            .collect();
        // Data progress starts when the schemas are in.
        while ddl_done.load(Ordering::SeqCst) < scripts.len() && !cancel.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        progress.start("restore", total);
        progress_started = true;
        crate::error::first_failure(handles.into_iter().map(|h| h.join()), "restore")
    });
    if progress_started {
        progress.finish();
    }
    if let Some(e) = failure {
        return Err(e);
    }
    definers.absorb(found.into_inner().unwrap_or_default());
    summary.files += scripts.len();
    summary.raw_bytes += scripts.iter().map(|f| f.raw_bytes).sum::<u64>();

    summary.files += data.len();
    summary.rows += data.iter().map(|f| f.rows).sum::<u64>();
    summary.raw_bytes += total;
    let conn = admin.conn();
    for f in files_of(FileKind::Post) {
        load_script(conn, set, f, &renames, None, &warnings, &mut definers)?;
        summary.files += 1;
        summary.raw_bytes += f.raw_bytes;
    }
    if options.with_accounts {
        for f in manifest
            .files
            .iter()
            .filter(|f| f.kind == FileKind::Accounts)
        {
            load_script(conn, set, f, &renames, None, &warnings, &mut definers)?;
            summary.files += 1;
        }
    }
    summary.missing_definers = definers.missing;
    summary.skipped = definers.skipped;
    if !definers.replaced.is_empty() {
        summary.notes.push(format!(
            "{} object(s) created with the restoring account as DEFINER (it may not set other definers; a scratch restore only): {}",
            definers.replaced.len(),
            definers.replaced.join(", ")
        ));
    }
    summary.warnings = warnings.into_inner().unwrap_or_default();
    summary.warnings.sort_by(|a, b| a.path.cmp(&b.path));
    // Everything is in: the schemas are no longer unfinished.
    for t in renames.values() {
        conn.query_drop(format!(
            "DROP TABLE IF EXISTS {}",
            quote::qualified(t, MARKER_TABLE)
        ))
        .map_err(|e| {
            Error::Db(DbError::query(
                format!("removing the unfinished-restore marker from `{t}`"),
                e,
            ))
        })?;
    }
    Ok(summary)
}

fn setup_load_session(c: &mut Conn, binlog: bool, mode: &str) -> Result<(), Error> {
    if !binlog {
        // Needs SUPER/SYSTEM_VARIABLES_ADMIN; without it the rows are logged as usual.
        let _ = c.query_drop("SET SESSION sql_log_bin = 0");
    }
    // Notes (an IF EXISTS that found nothing) are not warnings about values.
    c.query_drop(format!("SET SESSION time_zone = '+00:00', sql_mode = {}, sql_notes = 0, foreign_key_checks = 0, unique_checks = 0", quote::string(mode)))
        .map_err(|e| Error::Db(DbError::query("setting up the restore session", e)))
}

/// Reads a file, checks it against the manifest, and returns its SQL reader.
fn checked(set: &Path, f: &FileRecord) -> Result<Box<dyn Read + Send>, Error> {
    let path = set.join(&f.path);
    let bytes = std::fs::read(&path).map_err(Error::io("reading", &path))?;
    if bytes.len() as u64 != f.bytes {
        return Err(Error::BadFile {
            path,
            detail: format!(
                "size {} does not match the manifest's {}; not loaded",
                bytes.len(),
                f.bytes
            ),
        });
    }
    let sum = hex(&Sha256::digest(&bytes));
    if sum != f.sha256 {
        return Err(Error::BadFile {
            path,
            detail: "sha256 does not match the manifest; the file is corrupt; not loaded".into(),
        });
    }
    open_sql_bytes(&f.path, bytes).map_err(Error::io("decompressing", &path))
}

fn rename_statement(stmt: &str, renames: &BTreeMap<String, String>) -> Option<String> {
    for (old, new) in renames {
        if old == new {
            continue;
        }
        let q_old = quote::ident(old);
        if stmt == format!("USE {q_old}") {
            return Some(format!("USE {}", quote::ident(new)));
        }
        if stmt.starts_with("CREATE DATABASE") {
            if let Some(i) = stmt.find(&q_old) {
                return Some(format!(
                    "{}{}{}",
                    &stmt[..i],
                    quote::ident(new),
                    &stmt[i + q_old.len()..]
                ));
            }
        }
    }
    None
}

/// Rewrites `` `old`.x `` qualifiers to `` `new`.x `` outside string
/// literals, so views, triggers and cross-schema foreign keys follow a rename.
fn requalify(stmt: &str, renames: &BTreeMap<String, String>) -> String {
    if renames.iter().all(|(o, n)| o == n) {
        return stmt.to_owned();
    }
    requalify_by(stmt, &|name| renames.get(name).cloned())
}

/// [`requalify`] with the new name of each qualifier from `rename` (None: kept).
fn requalify_by(stmt: &str, rename: &dyn Fn(&str) -> Option<String>) -> String {
    let b = stmt.as_bytes();
    let mut out = String::with_capacity(stmt.len() + 16);
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(b.len());
                out.push_str(&stmt[start..i]);
            }
            b'`' => {
                let start = i;
                let mut name = String::new();
                i += 1;
                while i < b.len() {
                    if b[i] == b'`' {
                        if i + 1 < b.len() && b[i + 1] == b'`' {
                            name.push('`');
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    let ch = stmt[i..].chars().next().unwrap_or(' ');
                    name.push(ch);
                    i += ch.len_utf8();
                }
                i = (i + 1).min(b.len());
                match rename(&name) {
                    Some(new) if b.get(i) == Some(&b'.') => out.push_str(&quote::ident(&new)),
                    _ => out.push_str(&stmt[start..i]),
                }
            }
            _ => {
                let ch = stmt[i..].chars().next().unwrap_or(' ');
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

/// Where a point-in-time replay after [`restore`] stops.
pub use spyglass_binlog::replay::{ReplayReport, Stop as ReplayStop};

/// The set's snapshot coordinates: where a replay of the binary log starts.
pub fn replay_start(set: &Path) -> Result<spyglass_binlog::replay::Point, Error> {
    let m = crate::set::open(set)?;
    match (&m.snapshot.binlog_file, m.snapshot.binlog_position) {
        (Some(file), Some(pos)) => Ok(spyglass_binlog::replay::Point {
            file: file.clone(),
            pos,
        }),
        _ => Err(Error::BadSet {
            set: set.to_path_buf(),
            detail: "the set records no binary-log coordinates (the server had no binary log, or the backup account could not read them, or the set has no consistent snapshot): a point-in-time restore needs them".into(),
        }),
    }
}

/// Before anything on the target changes: the archive covers the set's
/// coordinates to `stop` (no gap, not too short).
pub fn check_replay(set: &Path, archive: &Path, stop: &ReplayStop) -> Result<(), Error> {
    let start = replay_start(set)?;
    spyglass_binlog::replay::check(archive, &start, stop)?;
    Ok(())
}

/// The second step of a point-in-time restore, after [`restore`] loaded the
/// set: replays the archived binary log from the set's coordinates to
/// `stop`, with the same schema selection and renames (schemas created after
/// the set follow them too; the server's own schemas never replay).
pub fn replay_binlog(
    connect: &ConnectOptions,
    set: &Path,
    archive: &Path,
    options: &RestoreOptions,
    stop: ReplayStop,
) -> Result<ReplayReport, Error> {
    let manifest = crate::set::open(set)?;
    let start = replay_start(set)?;
    let renames = plan(&manifest, set, options)?;
    let map_schema = |s: &str| -> Option<String> {
        if manifest.schemas.iter().any(|m| m == s) {
            return renames.get(s).cloned();
        }
        if crate::names::is_system_schema(s) {
            return None;
        }
        let selected =
            options.schemas.is_empty() || options.schemas.iter().any(|g| glob_match(g, s));
        selected.then(|| target_name(&options.rename, s))
    };
    let rewrite = |stmt: &str| requalify_by(stmt, &|name| map_schema(name).filter(|t| t != name));
    let mut session = spyglass_db::connect(connect)?;
    let report = spyglass_binlog::replay::replay(
        session.conn(),
        archive,
        &spyglass_binlog::replay::ReplayOptions {
            start,
            stop,
            map_schema: &map_schema,
            rewrite: &rewrite,
            log_bin: options.binlog,
        },
    )?;
    Ok(report)
}

/// Loads a schema or post file. With `marker` (target schema, start time,
/// the set as the marker names it),
/// marks the schema unfinished right after its `CREATE DATABASE`; returns
/// whether it did.
fn load_script(
    conn: &mut Conn,
    set: &Path,
    f: &FileRecord,
    renames: &BTreeMap<String, String>,
    marker: Option<(&str, &str, &str)>,
    warnings: &Mutex<Vec<FileWarnings>>,
    definers: &mut Definers,
) -> Result<bool, Error> {
    let mut marked = false;
    let mut tally = Tally::default();
    let path = set.join(&f.path);
    let mut text = String::new();
    checked(set, f)?
        .read_to_string(&mut text)
        .map_err(Error::io("decompressing", &path))?;
    let mut db: Option<String> = None;
    for (n, stmt) in script::split(&text).into_iter().enumerate() {
        let stmt = rename_statement(&stmt, renames).unwrap_or(stmt);
        let stmt = requalify(&stmt, renames);
        if let Some(d) = stmt.strip_prefix("USE `") {
            db = d.strip_suffix('`').map(|d| d.replace("``", "`"));
        }
        let load_err = |source| Error::Load {
            path: path.clone(),
            statement: n + 1,
            source: Box::new(source),
        };
        // An object with a DEFINER: the server says in a note when that
        // account does not exist; it still loads, and the note is a finding.
        // (mysqldump writes `/*!50003 CREATE*/ /*!50017 DEFINER=...*/ ...`.)
        let create = stmt.get(..20).unwrap_or(&stmt).contains("CREATE");
        if create && stmt.contains("DEFINER=") {
            conn.query_drop("SET @spyglass_sql_notes = @@session.sql_notes, SESSION sql_notes = 1")
                .map_err(load_err)?;
            let outcome = match conn.query_drop(&stmt) {
                Err(spyglass_db::mysql::Error::MySqlError(e))
                    if e.code == ER_SPECIFIC_ACCESS_DENIED && definers.fallback =>
                {
                    // A scratch restore by an account that may not set
                    // other definers: the object is ours instead.
                    let own = own_definer(&stmt).ok_or_else(|| {
                        load_err(spyglass_db::mysql::Error::MySqlError(e.clone()))
                    })?;
                    let r = conn.query_drop(&own);
                    if r.is_ok() {
                        let (kind, object) = created_object(&stmt, db.as_deref())
                            .unwrap_or_else(|| ("object".into(), format!("(statement {})", n + 1)));
                        definers.replaced.push(format!("{kind} {object}"));
                    }
                    r
                }
                r => r,
            };
            if definers.skip_if_needs_super(&outcome, &stmt, db.as_deref(), n) {
                conn.query_drop("SET SESSION sql_notes = @spyglass_sql_notes")
                    .map_err(load_err)?;
                continue;
            }
            outcome.map_err(load_err)?;
            let missing = tally.after_with_notes(conn);
            conn.query_drop("SET SESSION sql_notes = @spyglass_sql_notes")
                .map_err(load_err)?;
            if !missing.is_empty() {
                let (kind, object) = created_object(&stmt, db.as_deref())
                    .unwrap_or_else(|| ("object".into(), format!("(statement {})", n + 1)));
                for who in missing {
                    definers.missing.push(MissingDefiner {
                        kind: kind.clone(),
                        object: object.clone(),
                        definer: who,
                        path: path.clone(),
                    });
                }
            }
            continue;
        }
        let outcome = conn.query_drop(&stmt);
        if definers.skip_if_needs_super(&outcome, &stmt, db.as_deref(), n) {
            continue;
        }
        outcome.map_err(load_err)?;
        tally.after(conn);
        if let Some((schema, started, source)) =
            marker.filter(|_| stmt.starts_with("CREATE DATABASE"))
        {
            create_marker(conn, schema, source, started)?;
            marked = true;
        }
    }
    if let Some(w) = tally.into_warnings(path) {
        if let Ok(mut all) = warnings.lock() {
            all.push(w);
        }
    }
    Ok(marked)
}

/// Average row size (raw bytes of a data file per row) from which its rows
/// are loaded as prepared statements rather than as text. On MariaDB 10.11,
/// text costs the server about half the CPU of prepared statements for
/// 150-byte rows, and prepared statements half of text for 1 MB BLOB rows
/// (`cargo xtask bench backup`, both fixtures).
const PREPARED_ROW_BYTES: u64 = 8 << 10;

/// Loads a data file in one transaction. A deadlock or lock wait timeout
/// (parallel loads into one table with secondary indexes or foreign keys can
/// meet in InnoDB's gap locks) rolls the whole file back and loads it again,
/// as the server asks; nothing of a failed try stays.
fn load_data(
    conn: &mut Conn,
    set: &Path,
    f: &FileRecord,
    renames: &BTreeMap<String, String>,
    progress: &dyn Progress,
) -> Result<Option<FileWarnings>, Error> {
    let mut reported = 0u64;
    let mut tries = 1;
    loop {
        match load_data_once(conn, set, f, renames, progress, &mut reported) {
            Err(Error::Load { source, .. })
                if spyglass_db::is_transient(&source) && tries < spyglass_db::TRANSIENT_TRIES =>
            {
                // The server has undone the statement (a deadlock: the whole
                // transaction); undo the rest of the file.
                conn.query_drop("ROLLBACK").map_err(|source| Error::Load {
                    path: set.join(&f.path),
                    statement: 0,
                    source: Box::new(source),
                })?;
                std::thread::sleep(spyglass_db::transient_pause(tries));
                tries += 1;
            }
            r => return r,
        }
    }
}

/// One try of [`load_data`]. `reported` is how far into the file progress
/// has been reported, so a second try does not count bytes twice.
fn load_data_once(
    conn: &mut Conn,
    set: &Path,
    f: &FileRecord,
    renames: &BTreeMap<String, String>,
    progress: &dyn Progress,
    reported: &mut u64,
) -> Result<Option<FileWarnings>, Error> {
    let mut pos = 0u64;
    let mut advance = |read: usize| {
        pos += read as u64;
        if pos > *reported {
            progress.advance(pos - *reported, 0);
            *reported = pos;
        }
    };
    let path = set.join(&f.path);
    let mut tally = Tally::default();
    let mut reader = BufReader::with_capacity(1 << 20, checked(set, f)?);
    let mut line = Vec::new();
    let mut n = 0usize;
    // Prepared statements keep the schema they were prepared in, so rows are
    // inserted into `db`.`table` with the schema of the file's USE line.
    let mut current_db: Option<String> = None;
    // How rows travel (ARCHITECTURE.md, "Restore"): small rows as the text
    // INSERT they are written as (the server parses one statement per
    // thousands of rows), large ones, BLOBs of kilobytes and more, as
    // prepared statements (the server would lex every escaped byte).
    let prepared = f.rows > 0 && f.raw_bytes / f.rows >= PREPARED_ROW_BYTES;
    conn.query_drop("START TRANSACTION")
        .map_err(|source| Error::Load {
            path: path.clone(),
            statement: 0,
            source: Box::new(source),
        })?;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(Error::io("decompressing", &path))?;
        if read == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.is_empty() || line.starts_with(b"-- ") {
            continue;
        }
        n += 1;
        if line.starts_with(b"INSERT INTO ") && !prepared {
            conn.query_drop_bytes(&line).map_err(|source| Error::Load {
                path: path.clone(),
                statement: n,
                source: Box::new(source),
            })?;
            tally.after(conn);
            advance(read);
            continue;
        }
        if line.starts_with(b"INSERT INTO ") {
            // Large rows go through a prepared statement: values travel as
            // raw bytes, nothing is escaped, hex-encoded or parsed by the
            // server.
            if let (Some(parsed), Some(db)) = (parse_insert(&line), current_db.as_deref()) {
                exec_insert(conn, db, parsed, &mut tally).map_err(|source| Error::Load {
                    path: path.clone(),
                    statement: n,
                    source: Box::new(source),
                })?;
                advance(read);
                continue;
            }
        }
        let stmt = to_utf8_statement(&line);
        let stmt = stmt.trim_end_matches(';');
        let renamed = rename_statement(stmt, renames);
        if let Some(db) = renamed.as_deref().unwrap_or(stmt).strip_prefix("USE `") {
            current_db = db.strip_suffix('`').map(|d| d.replace("``", "`"));
        }
        conn.query_drop(renamed.as_deref().unwrap_or(stmt))
            .map_err(|source| Error::Load {
                path: path.clone(),
                statement: n,
                source: Box::new(source),
            })?;
        tally.after(conn);
        if stmt.starts_with("INSERT") {
            advance(read);
        }
    }
    conn.query_drop("COMMIT").map_err(|source| Error::Load {
        path: path.clone(),
        statement: n,
        source: Box::new(source),
    })?;
    progress.advance(0, f.rows);
    Ok(tally.into_warnings(path))
}

/// An INSERT split into its head (`INSERT INTO `t` (`a`,`b`)`) and rows of values.
#[derive(Debug, PartialEq)]
pub(crate) struct ParsedInsert<'a> {
    pub head: &'a str,
    pub columns: usize,
    pub values: Vec<Value>,
}

/// Parses the INSERTs our data files hold (and mysqldump's): values are
/// `NULL`, numbers, `'..'`, `_binary'..'`, `0x..`. `None` for anything else,
/// which is then sent as text.
pub(crate) fn parse_insert(line: &[u8]) -> Option<ParsedInsert<'_>> {
    let at = line
        .windows(8)
        .position(|w| w == b" VALUES ")
        .map(|i| (i, i + 8))
        .or_else(|| {
            line.windows(8)
                .position(|w| w == b" VALUES(")
                .map(|i| (i, i + 7))
        })?;
    let head = std::str::from_utf8(&line[..at.0]).ok()?;
    let b = line;
    let mut i = at.1;
    let mut values = Vec::new();
    let mut columns = 0usize;
    loop {
        if b.get(i) != Some(&b'(') {
            return None;
        }
        i += 1;
        let mut n = 0;
        loop {
            let (v, next) = parse_value(b, i)?;
            values.push(v);
            n += 1;
            i = next;
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b')') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
        if columns == 0 {
            columns = n;
        } else if columns != n {
            return None;
        }
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b';') if i + 1 == b.len() => break,
            None => break,
            _ => return None,
        }
    }
    Some(ParsedInsert {
        head,
        columns,
        values,
    })
}

fn unescape(b: &[u8], mut i: usize) -> Option<(Vec<u8>, usize)> {
    // b[i] is the opening quote.
    i += 1;
    let mut out = Vec::new();
    loop {
        let start = i;
        while i < b.len() && b[i] != b'\\' && b[i] != b'\'' {
            i += 1;
        }
        out.extend_from_slice(&b[start..i]);
        match b.get(i)? {
            b'\\' => {
                out.push(match *b.get(i + 1)? {
                    b'0' => 0,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b'Z' => 0x1a,
                    b't' => b'\t',
                    b'b' => 8,
                    c => c,
                });
                i += 2;
            }
            _ => {
                // A quote: doubled means a literal quote, else the end.
                if b.get(i + 1) == Some(&b'\'') {
                    out.push(b'\'');
                    i += 2;
                } else {
                    return Some((out, i + 1));
                }
            }
        }
    }
}

fn parse_value(b: &[u8], i: usize) -> Option<(Value, usize)> {
    let rest = &b[i..];
    if rest.starts_with(b"NULL") {
        return Some((Value::NULL, i + 4));
    }
    if rest.starts_with(b"_binary'") {
        let (v, next) = unescape(b, i + 7)?;
        return Some((Value::Bytes(v), next));
    }
    if rest.first() == Some(&b'\'') {
        let (v, next) = unescape(b, i)?;
        return Some((Value::Bytes(v), next));
    }
    if rest.starts_with(b"0x") {
        let end = rest[2..]
            .iter()
            .position(|c| !c.is_ascii_hexdigit())
            .map_or(rest.len(), |p| p + 2);
        let hex = &rest[2..end];
        if hex.len() % 2 != 0 {
            return None;
        }
        let nib = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut out = Vec::with_capacity(hex.len() / 2);
        for pair in hex.chunks(2) {
            out.push(nib(pair[0])? << 4 | nib(pair[1])?);
        }
        return Some((Value::Bytes(out), i + end));
    }
    // A number: up to the next , or ).
    let end = rest.iter().position(|&c| c == b',' || c == b')')?;
    let tok = &rest[..end];
    if tok.is_empty()
        || !tok
            .iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'))
    {
        return None;
    }
    Some((Value::Bytes(tok.to_vec()), i + end))
}

/// Executes a parsed INSERT as prepared statements of power-of-two row
/// counts (few distinct statements to prepare; at most 65,535 placeholders each).
fn exec_insert(
    conn: &mut Conn,
    db: &str,
    p: ParsedInsert<'_>,
    tally: &mut Tally,
) -> Result<(), spyglass_db::mysql::Error> {
    let head = match p.head.strip_prefix("INSERT INTO ") {
        Some(rest) => format!("INSERT INTO {}.{rest}", quote::ident(db)),
        None => p.head.to_owned(),
    };
    let cols = p.columns.max(1);
    let rows = p.values.len() / cols;
    let max_rows = (65_535 / cols).max(1);
    let mut done = 0;
    let mut values = p.values.into_iter();
    while done < rows {
        let left = rows - done;
        let mut batch = 1usize << (usize::BITS - 1 - left.leading_zeros());
        while batch > max_rows {
            batch /= 2;
        }
        let tuple = format!("({})", vec!["?"; cols].join(","));
        let sql = format!("{head} VALUES {}", vec![tuple.as_str(); batch].join(","));
        let params: Vec<Value> = values.by_ref().take(batch * cols).collect();
        conn.exec_drop(sql, params)?;
        tally.after(conn);
        done += batch;
    }
    Ok(())
}

/// The driver sends statements as `str`; binary literals may hold any byte.
/// A statement that is not UTF-8 gets its `_binary'...'` literals rewritten
/// as `X'...'` hex literals, which mean the same bytes.
pub(crate) fn to_utf8_statement(stmt: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(stmt) {
        return Cow::Borrowed(s);
    }
    const HEXD: &[u8; 16] = b"0123456789ABCDEF";
    let mut out: Vec<u8> = Vec::with_capacity(stmt.len() * 2);
    let mut i = 0;
    while i < stmt.len() {
        if stmt[i..].starts_with(b"_binary'") {
            i += 8;
            out.extend_from_slice(b"X'");
            while i < stmt.len() && stmt[i] != b'\'' {
                let b = if stmt[i] == b'\\' && i + 1 < stmt.len() {
                    i += 1;
                    match stmt[i] {
                        b'0' => 0,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b'Z' => 0x1a,
                        b't' => b'\t',
                        b'b' => 8,
                        c => c,
                    }
                } else {
                    stmt[i]
                };
                out.push(HEXD[(b >> 4) as usize]);
                out.push(HEXD[(b & 15) as usize]);
                i += 1;
            }
            out.push(b'\'');
            i += 1;
        } else if stmt[i] == b'\'' {
            // A text literal: copy through, escapes included.
            out.push(b'\'');
            i += 1;
            while i < stmt.len() && stmt[i] != b'\'' {
                if stmt[i] == b'\\' && i + 1 < stmt.len() {
                    out.push(stmt[i]);
                    i += 1;
                }
                out.push(stmt[i]);
                i += 1;
            }
            out.push(b'\'');
            i += 1;
        } else {
            out.push(stmt[i]);
            i += 1;
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// RESTORE.txt: restoring with nothing but the decompressor and the mysql client.
pub fn restore_instructions(m: &Manifest) -> String {
    let cat = m.compression.cat_command();
    let ext = m.compression.suffix();
    let packet = (m.max_statement_bytes + 1024)
        .next_power_of_two()
        .max(64 << 20);
    format!(
        "How to restore this backup set without spyglass-admin
======================================================

Made by spyglass-admin {tool} on {started} from {flavor} {version}.
Schemas: {schemas}

You need: `{cat}` and the `mysql` (or `mariadb`) command-line client.
Connection settings go in a defaults file readable only by you, outside
this directory (so the password is never copied, shipped or packed with
the set), never on the command line:

    umask 077; RESTORE_CNF=$(mktemp); export RESTORE_CNF
    printf '[client]\\nhost=HOST\\nport=3306\\nuser=USER\\npassword=PASSWORD\\n' > \"$RESTORE_CNF\"

and when you are done: rm -f \"$RESTORE_CNF\"

The largest statement is {max} bytes: the server's max_allowed_packet must
be at least {packet} (SET GLOBAL max_allowed_packet = {packet}; then reconnect).
Each schema below must not exist yet on the target server.

Run, from inside this directory (lines between the markers are a POSIX sh script;
set MYSQL to your client command):

# --- restore script ---
set -e
MYSQL=\"${{MYSQL:-mysql --defaults-extra-file=$RESTORE_CNF}}\"
# 1. databases, tables, routines, and a stand-in for every view (so a view
#    on a view or function of any schema loads in step 3, in any order)
for f in 1-schema/*{ext}; do {cat} \"$f\" | $MYSQL; done
# 2. rows (any order; several at once is fine)
for f in 2-data/*/*{ext}; do [ -e \"$f\" ] || continue; {cat} \"$f\" | $MYSQL; done
# 3. views (each replaces its stand-in), triggers, events (after the rows,
#    so triggers do not fire on them)
for f in 3-post/*{ext}; do {cat} \"$f\" | $MYSQL; done
# --- end ---

Optionally, accounts, roles and grants: {cat} accounts{ext} | $MYSQL

Views, triggers, routines and events keep their DEFINER. One whose definer
has no account on the target still loads (the server only notes it), but
using it fails with error 1449 until the account exists: load accounts{ext}
as above, or create the account. A system-versioned table's data files set
system_versioning_insert_history (MariaDB 10.11 or later) to load its history.

To check files before restoring: sha256sum every file and compare with
manifest.json (`files[].sha256`), or run `spyglass-admin backup verify .`.
",
        tool = m.tool_version,
        started = m.started,
        flavor = m.server.flavor,
        version = m.server.version,
        schemas = m.schemas.join(", "),
        max = m.max_statement_bytes,
    )
}

/// Restores into fresh schemas named `<prefix><schema>` and returns the renames used.
pub fn prefix_renames(m: &Manifest, prefix: &str) -> Vec<(String, String)> {
    m.schemas
        .iter()
        .map(|s| (s.clone(), format!("{prefix}{s}")))
        .collect()
}

/// Files of a set on disk, for callers that report them.
pub fn file_path(set: &Path, f: &FileRecord) -> PathBuf {
    set.join(&f.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames() {
        let r = vec![
            ("common_*".to_owned(), "t_common_*".to_owned()),
            ("lfp_v1".to_owned(), "x".to_owned()),
        ];
        assert_eq!(target_name(&r, "common_lab"), "t_common_lab");
        assert_eq!(target_name(&r, "lfp_v1"), "x");
        assert_eq!(target_name(&r, "position_v1"), "position_v1");
        let m: BTreeMap<String, String> = [("a b".to_owned(), "c`d".to_owned())].into();
        assert_eq!(
            rename_statement("USE `a b`", &m).as_deref(),
            Some("USE `c``d`")
        );
        assert_eq!(
            rename_statement(
                "CREATE DATABASE `a b` /*!40100 DEFAULT CHARACTER SET utf8mb4 */",
                &m
            )
            .as_deref(),
            Some("CREATE DATABASE `c``d` /*!40100 DEFAULT CHARACTER SET utf8mb4 */")
        );
        assert_eq!(rename_statement("INSERT INTO `t` VALUES (1)", &m), None);
        assert_eq!(
            requalify("CREATE VIEW `a b`.`v` AS select `a b`.`t`.`x` AS `a b` from `a b`.`t` where y = '`a b`.'", &m),
            "CREATE VIEW `c``d`.`v` AS select `c``d`.`t`.`x` AS `a b` from `c``d`.`t` where y = '`a b`.'"
        );
    }

    #[test]
    fn own_definer_replaces_only_the_definer_clause() {
        assert_eq!(
            own_definer("CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW `v` AS select 1").as_deref(),
            Some("CREATE ALGORITHM=UNDEFINED DEFINER=CURRENT_USER SQL SECURITY DEFINER VIEW `v` AS select 1")
        );
        assert_eq!(
            own_definer("/*!50003 CREATE*/ /*!50017 DEFINER=`a``b`@`%`*/ /*!50003 TRIGGER `t` BEFORE INSERT ON `x` FOR EACH ROW SET NEW.a = 1 */").as_deref(),
            Some("/*!50003 CREATE*/ /*!50017 DEFINER=CURRENT_USER*/ /*!50003 TRIGGER `t` BEFORE INSERT ON `x` FOR EACH ROW SET NEW.a = 1 */")
        );
        assert_eq!(
            own_definer("CREATE DEFINER = 'nobody'@'%' FUNCTION f() RETURNS int RETURN 1")
                .as_deref(),
            Some("CREATE DEFINER=CURRENT_USER FUNCTION f() RETURNS int RETURN 1")
        );
        assert_eq!(
            own_definer("CREATE DEFINER=`dj_role` PROCEDURE p() SELECT 1").as_deref(),
            Some("CREATE DEFINER=CURRENT_USER PROCEDURE p() SELECT 1")
        );
        assert_eq!(own_definer("CREATE VIEW v AS SELECT 1"), None);
    }

    #[test]
    fn names_the_object_a_definer_statement_creates() {
        let v = "CREATE OR REPLACE ALGORITHM=UNDEFINED DEFINER=`nobody`@`%` SQL SECURITY DEFINER VIEW `v``1` AS select 1 AS `VIEW `";
        assert_eq!(
            created_object(v, Some("a b")),
            Some(("view".into(), "`a b`.`v``1`".into()))
        );
        let t = "/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER `s`.`tr` BEFORE INSERT ON `t` FOR EACH ROW SET NEW.x = 1 */";
        assert_eq!(
            created_object(t, Some("other")),
            Some(("trigger".into(), "`s`.`tr`".into()))
        );
        let f = "CREATE DEFINER=`x`@`%` FUNCTION f(a int) RETURNS int RETURN a";
        assert_eq!(
            created_object(f, Some("s")),
            Some(("function".into(), "`s`.`f`".into()))
        );
        assert_eq!(created_object("CREATE TABLE t (x int)", Some("s")), None);
    }

    #[test]
    fn parses_our_inserts_and_mysqldumps() {
        let p = parse_insert(b"INSERT INTO `t` (`a`,`b c`) VALUES (1,'it\\'s'),(NULL,_binary'\\0\xff'),(-0e0,0x00ff);").unwrap();
        assert_eq!(p.head, "INSERT INTO `t` (`a`,`b c`)");
        assert_eq!(p.columns, 2);
        assert_eq!(
            p.values,
            vec![
                Value::Bytes(b"1".to_vec()),
                Value::Bytes(b"it's".to_vec()),
                Value::NULL,
                Value::Bytes(vec![0, 0xff]),
                Value::Bytes(b"-0e0".to_vec()),
                Value::Bytes(vec![0, 0xff]),
            ]
        );
        let m = parse_insert(b"INSERT INTO `t` VALUES(1,'a''b\\\"'),(2,'');").unwrap();
        assert_eq!(m.values[1], Value::Bytes(b"a'b\"".to_vec()));
        assert_eq!(m.values[3], Value::Bytes(vec![]));
        assert!(
            parse_insert(b"INSERT INTO `t` VALUES (1,NOW());").is_none(),
            "anything else goes as text"
        );
        assert!(parse_insert(b"INSERT INTO `t` VALUES (1,2),(3);").is_none());
    }

    #[test]
    fn binary_literals_become_hex_only_when_needed() {
        assert!(matches!(
            to_utf8_statement(b"INSERT INTO t VALUES ('a',_binary'b')"),
            Cow::Borrowed(_)
        ));
        let stmt = b"INSERT INTO t VALUES ('it\\'s _binary\\'x',_binary'\xff\\0\\'\\\\z',NULL)";
        let s = to_utf8_statement(stmt);
        assert_eq!(
            s,
            "INSERT INTO t VALUES ('it\\'s _binary\\'x',X'FF00275C7A',NULL)"
        );
    }
}
