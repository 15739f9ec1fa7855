//! Loading a set into a server: schema files first, data files in parallel,
//! then views, triggers, routines and events. Each file's sha256 is checked
//! against the manifest before any of it is loaded.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
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
}

/// Applies the rename rules to a schema name.
pub fn target_name(rename: &[(String, String)], schema: &str) -> String {
    for (old, new) in rename {
        if let (Some(op), Some(np)) = (old.strip_suffix('*'), new.strip_suffix('*')) {
            if let Some(rest) = schema.strip_prefix(op) {
                return format!("{np}{rest}");
            }
        } else if old == schema {
            return new.clone();
        }
    }
    schema.to_owned()
}

/// The set must be complete: not `.partial`, manifest present.
pub fn open_set(set: &Path) -> Result<Manifest, Error> {
    if set.extension().is_some_and(|e| e == "partial") {
        return Err(Error::BadSet {
            set: set.to_owned(),
            detail: "this set is partial (its backup did not finish); it cannot be restored".into(),
        });
    }
    if !set.is_dir() {
        return Err(Error::BadSet {
            set: set.to_owned(),
            detail: "not a directory".into(),
        });
    }
    Manifest::load(set)
}

/// Restores `set` into the server `connect` points at.
pub fn restore(
    connect: &ConnectOptions,
    set: &Path,
    options: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreSummary, Error> {
    let manifest = open_set(set)?;
    let threads = options.threads.max(1);
    let selected: Vec<String> = manifest
        .schemas
        .iter()
        .filter(|s| options.schemas.is_empty() || options.schemas.iter().any(|g| glob_match(g, s)))
        .cloned()
        .collect();
    if selected.is_empty() {
        return Err(Error::Invalid(format!(
            "no schema in {} matches --schemas",
            set.display()
        )));
    }
    let renames: BTreeMap<String, String> = selected
        .iter()
        .map(|s| (s.clone(), target_name(&options.rename, s)))
        .collect();
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
        return Err(Error::SchemasExist(clash));
    }
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
    setup_load_session(conn, options.binlog)?;
    for t in &clash {
        conn.query_drop(format!("DROP DATABASE {}", quote::ident(t)))
            .map_err(|e| {
                Error::Db(DbError::query(
                    format!("dropping existing schema {t} (--force)"),
                    e,
                ))
            })?;
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
    let mut summary = RestoreSummary {
        schemas: renames.values().cloned().collect(),
        files: 0,
        rows: 0,
        raw_bytes: 0,
    };
    for f in files_of(FileKind::Schema) {
        load_script(conn, set, f, &renames)?;
        summary.files += 1;
        summary.raw_bytes += f.raw_bytes;
    }
    let data = files_of(FileKind::Data);
    let total: u64 = data.iter().map(|f| f.raw_bytes).sum();
    progress.start("restore", total);
    let queue: Mutex<VecDeque<&FileRecord>> = Mutex::new({
        let mut d = data.clone();
        d.sort_by_key(|f| std::cmp::Reverse(f.raw_bytes));
        d.into()
    });
    let cancel = AtomicBool::new(false);
    let failure = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.min(data.len().max(1)))
            .map(|_| {
                scope.spawn(|| -> Result<(), Error> {
                    let mut s = spyglass_db::connect(connect)?;
                    let c = s.conn();
                    setup_load_session(c, options.binlog)?;
                    loop {
                        if cancel.load(Ordering::SeqCst) {
                            return Err(Error::Cancelled);
                        }
                        let next = queue.lock().map_err(|_| Error::Cancelled)?.pop_front();
                        let Some(f) = next else { return Ok(()) };
                        if let Err(e) = load_data(c, set, f, &renames, progress) {
                            cancel.store(true, Ordering::SeqCst);
                            return Err(e);
                        }
                    }
                })
            })
            .collect();
        crate::error::first_failure(handles.into_iter().map(|h| h.join()), "restore")
    });
    progress.finish();
    if let Some(e) = failure {
        return Err(e);
    }
    summary.files += data.len();
    summary.rows += data.iter().map(|f| f.rows).sum::<u64>();
    summary.raw_bytes += total;
    let conn = admin.conn();
    for f in files_of(FileKind::Post) {
        load_script(conn, set, f, &renames)?;
        summary.files += 1;
        summary.raw_bytes += f.raw_bytes;
    }
    if options.with_accounts {
        for f in manifest
            .files
            .iter()
            .filter(|f| f.kind == FileKind::Accounts)
        {
            load_script(conn, set, f, &renames)?;
            summary.files += 1;
        }
    }
    Ok(summary)
}

fn setup_load_session(c: &mut Conn, binlog: bool) -> Result<(), Error> {
    if !binlog {
        // Needs SUPER/SYSTEM_VARIABLES_ADMIN; without it the rows are logged as usual.
        let _ = c.query_drop("SET SESSION sql_log_bin = 0");
    }
    c.query_drop("SET SESSION time_zone = '+00:00', sql_mode = 'NO_AUTO_VALUE_ON_ZERO', foreign_key_checks = 0, unique_checks = 0")
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
                match renames.get(&name) {
                    Some(new) if b.get(i) == Some(&b'.') => out.push_str(&quote::ident(new)),
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

fn load_script(
    conn: &mut Conn,
    set: &Path,
    f: &FileRecord,
    renames: &BTreeMap<String, String>,
) -> Result<(), Error> {
    let path = set.join(&f.path);
    let mut text = String::new();
    checked(set, f)?
        .read_to_string(&mut text)
        .map_err(Error::io("decompressing", &path))?;
    for (n, stmt) in script::split(&text).into_iter().enumerate() {
        let stmt = rename_statement(&stmt, renames).unwrap_or(stmt);
        let stmt = requalify(&stmt, renames);
        conn.query_drop(&stmt).map_err(|source| Error::Load {
            path: path.clone(),
            statement: n + 1,
            source: Box::new(source),
        })?;
    }
    Ok(())
}

fn load_data(
    conn: &mut Conn,
    set: &Path,
    f: &FileRecord,
    renames: &BTreeMap<String, String>,
    progress: &dyn Progress,
) -> Result<(), Error> {
    let path = set.join(&f.path);
    let mut reader = BufReader::with_capacity(1 << 20, checked(set, f)?);
    let mut line = Vec::new();
    let mut n = 0usize;
    // Prepared statements keep the schema they were prepared in, so rows are
    // inserted into `db`.`table` with the schema of the file's USE line.
    let mut current_db: Option<String> = None;
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
        if line.starts_with(b"INSERT INTO ") {
            // Rows go through a prepared statement: values travel as raw
            // bytes, nothing is escaped, hex-encoded or parsed by the server.
            if let (Some(parsed), Some(db)) = (parse_insert(&line), current_db.as_deref()) {
                exec_insert(conn, db, parsed).map_err(|source| Error::Load {
                    path: path.clone(),
                    statement: n,
                    source: Box::new(source),
                })?;
                progress.advance(read as u64, 0);
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
        if stmt.starts_with("INSERT") {
            progress.advance(read as u64, 0);
        }
    }
    conn.query_drop("COMMIT").map_err(|source| Error::Load {
        path: path.clone(),
        statement: n,
        source: Box::new(source),
    })?;
    progress.advance(0, f.rows);
    Ok(())
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
Connection settings go in a defaults file readable only by you, never on
the command line:

    umask 077; printf '[client]\\nhost=HOST\\nport=3306\\nuser=USER\\npassword=PASSWORD\\n' > restore.cnf

The largest statement is {max} bytes: the server's max_allowed_packet must
be at least {packet} (SET GLOBAL max_allowed_packet = {packet}; then reconnect).
Each schema below must not exist yet on the target server.

Run, from inside this directory (lines between the markers are a POSIX sh script;
set MYSQL to your client command):

# --- restore script ---
set -e
MYSQL=\"${{MYSQL:-mysql --defaults-extra-file=restore.cnf}}\"
# 1. databases and tables
for f in 1-schema/*{ext}; do {cat} \"$f\" | $MYSQL; done
# 2. rows (any order; several at once is fine)
for f in 2-data/*/*{ext}; do [ -e \"$f\" ] || continue; {cat} \"$f\" | $MYSQL; done
# 3. views, triggers, routines, events (after the rows, so triggers do not fire on them)
for f in 3-post/*{ext}; do {cat} \"$f\" | $MYSQL; done
# --- end ---

Optionally, accounts, roles and grants: {cat} accounts{ext} | $MYSQL

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
