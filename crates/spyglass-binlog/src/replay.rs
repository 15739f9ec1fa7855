//! Point-in-time replay: archived transactions applied to a server from a
//! position (a backup set's snapshot coordinates) up to, and not including,
//! the first transaction committed after a time, or up to a position, or to
//! the end of the archive.
//!
//! Row events go through the server's own `BINLOG` statement, built from
//! the archived event bytes (the format description first, then per
//! statement its table maps and row events): the server decodes its own row
//! format, so every value (DECIMAL, JSON, BLOB, TIMESTAMP fractions, charsets)
//! comes back exactly, as with `mysqlbinlog | mysql`, without a second
//! program. A schema rename rewrites the schema name inside the table map
//! event (and its CRC32); a schema filter drops the table maps and row
//! events of other schemas. Statements (DDL) are sent as text with the
//! session state the server logged with them (sql_mode, charsets, time
//! zone, foreign_key_checks, timestamp), with their schema qualifiers
//! rewritten by the caller's rename rule.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use mysql::prelude::Queryable;
use mysql::Conn;

use crate::format::{self, types};
use crate::index::{self, Archive};
use crate::Error;

/// A binlog position.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Point {
    /// File name.
    pub file: String,
    /// Byte offset in it.
    pub pos: u64,
}

impl std::fmt::Display for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

/// Where the replay stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Before the first transaction committed after this time (microseconds
    /// since the epoch, UTC). MariaDB logs whole seconds: a transaction
    /// committed in the same second as the time counts as before it.
    Time(i64),
    /// Before the first transaction that ends after this position.
    Position(Point),
    /// Up to and including the transaction with this GTID (MySQL
    /// `uuid:n` with gtid_mode=ON; MariaDB `domain-server-seq`), before
    /// the first one after it.
    Gtid(String),
    /// Everything archived.
    Latest,
}

/// How to replay.
pub struct ReplayOptions<'a> {
    /// Where to start (a transaction boundary: a backup set's coordinates).
    pub start: Point,
    /// Where to stop.
    pub stop: Stop,
    /// The target schema for a source schema; None leaves its events out.
    pub map_schema: &'a dyn Fn(&str) -> Option<String>,
    /// Rewrites a statement's schema qualifiers for the renames.
    pub rewrite: &'a dyn Fn(&str) -> String,
    /// Write the replayed changes to the target's binary log.
    pub log_bin: bool,
}

impl std::fmt::Debug for ReplayOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayOptions")
            .field("start", &self.start)
            .field("stop", &self.stop)
            .field("log_bin", &self.log_bin)
            .finish_non_exhaustive()
    }
}

/// A transaction as the archive has it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TxnPoint {
    /// Where it starts.
    pub start: Point,
    /// Where it ends (the next transaction's start).
    pub end: Point,
    /// Commit time, microseconds since the epoch (UTC).
    pub commit_us: i64,
    /// Its GTID, where the server gave it one.
    pub gtid: Option<String>,
}

/// What a replay did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplayReport {
    /// Transactions applied (with at least one selected change).
    pub transactions: u64,
    /// Transactions read but left out (nothing in the selected schemas).
    pub skipped_transactions: u64,
    /// Row events applied.
    pub row_events: u64,
    /// Statements (DDL) applied.
    pub statements: u64,
    /// Statements left out because they name no selected schema or change
    /// accounts (GRANT, CREATE USER, ...): the first few.
    pub skipped_statements: Vec<String>,
    /// The exact point reached: the end of the last transaction read and
    /// within the stop (applied or left out); the start when none.
    pub reached: Point,
    /// The last transaction within the stop.
    pub last: Option<TxnPoint>,
    /// The first transaction not replayed (after the stop), if the archive has one.
    pub next: Option<TxnPoint>,
}

struct Txn {
    file: String,
    start: u64,
    end: u64,
    events: Vec<(usize, usize)>,
    commit_us: Option<i64>,
    last_ts: u32,
    gtid: Option<String>,
    in_begin: bool,
    standalone: bool,
}

/// Checks that the archive covers `start` to `stop` (no gap, the start file
/// present, a time not after the last archived event) before anything on
/// the target changes.
pub fn check(dir: &Path, start: &Point, stop: &Stop) -> Result<(), Error> {
    let a = Archive::open(dir)?;
    let files = a.files();
    let Some(i) = files.iter().position(|f| *f == start.file) else {
        return Err(Error::Replay(format!(
            "the binlog archive {} does not have {} (the set's coordinates {start}); it has {}",
            dir.display(),
            start.file,
            match (files.first(), files.last()) {
                (Some(f), Some(l)) => format!("{f} to {l}"),
                _ => "nothing yet (run `spyglass-admin binlog archive`)".into(),
            }
        )));
    };
    let gtid_before = match stop {
        Stop::Gtid(g) => Some(find_gtid(&a, &files[i..], start, g, dir)?),
        _ => None,
    };
    for f in &files[i..] {
        if let Some(e) = a.index.entry(f) {
            if !e.complete {
                let stops_before = match stop {
                    Stop::Position(p) => index::sequence(&p.file) <= index::sequence(f),
                    Stop::Time(t) => i64::from(e.last_time) * 1_000_000 >= *t,
                    // Where the GTID is was checked above: found before the gap.
                    Stop::Gtid(_) => gtid_before.is_some_and(|s| s <= index::sequence(f)),
                    Stop::Latest => false,
                };
                if !stops_before {
                    return Err(Error::Replay(format!(
                        "the binlog archive has a gap after {f}:{} (the server purged the rest before it was archived, {}): no point-in-time restore can cross it; restore a set taken after the gap",
                        e.size,
                        time_text(i64::from(e.last_time) * 1_000_000)
                    )));
                }
            }
        }
    }
    // Every archived file the replay may read is checked against its sha256
    // now, before the target changes, not when the replay reaches it.
    for (n, f) in files[i..].iter().enumerate() {
        a.verify(f)?;
        let from = if n == 0 { start.pos } else { 4 };
        let compressed = match a.index.entry(f) {
            Some(e) => e.first_compressed.filter(|c| c.pos >= from),
            None => index::first_compressed(&a.read(f)?, from),
        };
        if let Some(c) = compressed {
            let needed = match stop {
                Stop::Position(p) => {
                    index::sequence(&p.file) > index::sequence(f) || (p.file == *f && p.pos > c.pos)
                }
                // Its commit is at or after its header time: after T, the
                // replay stops before it.
                Stop::Time(t) => i64::from(c.time) * 1_000_000 <= *t,
                Stop::Gtid(_) => gtid_before.is_none_or(|s| s >= index::sequence(f)),
                Stop::Latest => true,
            };
            if needed {
                return Err(Error::Replay(format!(
                    "the binlog archive's {f} has a compressed transaction at {} ({}; the server writes them with binlog_transaction_compression=ON), which the replay cannot read yet; nothing was changed on the target. Stop before it (--until an earlier time or position), or turn compression off on the server (SET PERSIST binlog_transaction_compression = OFF) so later transactions can be replayed",
                    c.pos,
                    time_text(i64::from(c.time) * 1_000_000)
                )));
            }
        }
        let past_stop = match stop {
            Stop::Position(p) => index::sequence(&p.file) <= index::sequence(f),
            Stop::Time(t) => a
                .index
                .entry(f)
                .is_some_and(|e| i64::from(e.last_time) * 1_000_000 > *t),
            Stop::Gtid(_) => gtid_before.is_some_and(|s| s <= index::sequence(f)),
            Stop::Latest => false,
        };
        if past_stop {
            break;
        }
    }
    if let Stop::Time(t) = stop {
        if let Some((_, last)) = a.window()? {
            if i64::from(last) * 1_000_000 + 999_999 < *t {
                return Err(Error::Replay(format!(
                    "the binlog archive ends at {} (its last event); {} is after it: archive first (`spyglass-admin binlog archive --until-now`), or use --latest",
                    time_text(i64::from(last) * 1_000_000),
                    time_text(*t)
                )));
            }
        }
    }
    Ok(())
}

/// Whether two GTIDs are the same (MySQL's uuid in any case).
fn same_gtid(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Looks for the transaction with GTID `want` in the archive from `start`
/// on; returns the sequence number of the file that has it. A clear
/// refusal when the archive has no GTIDs at all (MySQL gtid_mode=OFF), when
/// the set already contains it, or when it is not archived.
fn find_gtid(
    a: &Archive,
    files: &[String],
    start: &Point,
    want: &str,
    dir: &Path,
) -> Result<Option<u64>, Error> {
    let mut first: Option<String> = None;
    let mut last: Option<String> = None;
    for (n, f) in files.iter().enumerate() {
        let bytes = a.read(f)?;
        let crc = format::events(&bytes)
            .next()
            .filter(|(_, h, _)| h.type_code == types::FORMAT_DESCRIPTION)
            .is_some_and(|(_, _, fde)| format::fde_checksum_alg(fde) == 1);
        for (at, h, ev) in format::events(&bytes) {
            let g = match h.type_code {
                types::GTID => format::mysql_gtid(ev, crc).1,
                types::MARIA_GTID => format::mariadb_gtid(ev),
                _ => None,
            };
            let Some(g) = g else { continue };
            let before_start = n == 0 && (at as u64) < start.pos;
            if same_gtid(&g, want) {
                if before_start {
                    return Err(Error::Replay(format!(
                        "--until-gtid {want}: that transaction ({f}:{at}) is before the set's coordinates {start}, so the set already contains it; restore without --until-gtid, or from an older set"
                    )));
                }
                return Ok(index::sequence(f));
            }
            if !before_start {
                first.get_or_insert_with(|| g.clone());
                last = Some(g);
            }
        }
    }
    Err(Error::Replay(match (first, last) {
        (Some(f), Some(l)) => format!(
            "--until-gtid {want}: no transaction with that GTID in the binlog archive {} after the set's coordinates {start} (it has {f} to {l})",
            dir.display()
        ),
        _ => format!(
            "--until-gtid {want}: the binlog archive {} has no GTIDs after the set's coordinates {start} (the server logs none: MySQL's gtid_mode is OFF); use --until TIME or --until-position FILE:POS",
            dir.display()
        ),
    }))
}

/// Formats microseconds since the epoch as UTC text with microseconds.
pub fn time_text(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).map_or_else(
        || us.to_string(),
        |d| d.format("%Y-%m-%d %H:%M:%S%.6f UTC").to_string(),
    )
}

/// Statements that change accounts or the server, never replayed into a restore.
fn is_account_or_admin(sql: &str) -> bool {
    let u: String = sql
        .trim_start()
        .chars()
        .take(24)
        .collect::<String>()
        .to_ascii_uppercase();
    [
        "GRANT",
        "REVOKE",
        "CREATE USER",
        "DROP USER",
        "ALTER USER",
        "RENAME USER",
        "SET PASSWORD",
        "CREATE ROLE",
        "DROP ROLE",
        "SET DEFAULT ROLE",
        "FLUSH",
        "PURGE",
        "INSTALL",
        "UNINSTALL",
        "CREATE SERVER",
        "DROP SERVER",
        "ALTER SERVER",
        "XA ",
        "SAVEPOINT",
        "ROLLBACK TO",
        "RELEASE SAVEPOINT",
    ]
    .iter()
    .any(|k| u.starts_with(k))
}

/// The schema a statement acts on: the database of `CREATE|DROP|ALTER
/// DATABASE`, else the first `` `schema`. `` qualifier outside literals, else
/// the default schema it ran in.
pub fn statement_schema(sql: &str, default_db: &str) -> Option<String> {
    let b = sql.as_bytes();
    let words: Vec<String> = sql
        .split_whitespace()
        .take(6)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    if words.len() >= 3
        && matches!(words[0].as_str(), "CREATE" | "DROP" | "ALTER")
        && matches!(words[1].as_str(), "DATABASE" | "SCHEMA")
    {
        let mut k = 2;
        while k < words.len() && matches!(words[k].as_str(), "IF" | "NOT" | "EXISTS") {
            k += 1;
        }
        let w = sql.split_whitespace().nth(k)?;
        let w = w.trim_end_matches(';');
        let name = w
            .strip_prefix('`')
            .and_then(|x| x.strip_suffix('`'))
            .map(|x| x.replace("``", "`"))
            .unwrap_or_else(|| w.to_owned());
        return Some(name);
    }
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'`' => {
                let start = i + 1;
                let mut name = String::new();
                i += 1;
                while i < b.len() {
                    if b[i] == b'`' {
                        if b.get(i + 1) == Some(&b'`') {
                            name.push('`');
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    let ch = sql[i..].chars().next().unwrap_or(' ');
                    name.push(ch);
                    i += ch.len_utf8();
                }
                let _ = start;
                i += 1;
                if b.get(i) == Some(&b'.') {
                    return Some(name);
                }
            }
            _ => i += 1,
        }
    }
    if default_db.is_empty() {
        if let Some((name, _)) = bare_qualifiers(sql).into_iter().next() {
            return Some(name);
        }
    }
    (!default_db.is_empty()).then(|| default_db.to_owned())
}

/// Unquoted `name.` qualifiers outside literals and backquotes (not
/// `@@session.x`, not numbers), with their byte offsets.
fn bare_qualifiers(sql: &str) -> Vec<(String, usize)> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$';
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' && q != b'`' { 2 } else { 1 };
                }
                i += 1;
            }
            c if word(c) => {
                let start = i;
                while i < b.len() && word(b[i]) {
                    i += 1;
                }
                let prev = start.checked_sub(1).map(|p| b[p]);
                let starts_ok = !b[start].is_ascii_digit() && !matches!(prev, Some(b'@' | b'.'));
                let next_ok = b.get(i + 1).is_some_and(|&n| word(n) || n == b'`');
                if starts_ok && b.get(i) == Some(&b'.') && next_ok {
                    out.push((sql[start..i].to_owned(), start));
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// Renames unquoted `schema.` qualifiers by `map` (backquoting the new name).
fn requalify_bare(sql: &str, map: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut last = 0;
    for (name, at) in bare_qualifiers(sql) {
        if let Some(new) = map(&name).filter(|n| *n != name) {
            out.push_str(&sql[last..at]);
            out.push_str(&spyglass_db::quote::ident(&new));
            last = at + name.len();
        }
    }
    out.push_str(&sql[last..]);
    out
}

fn session_prelude(q: &format::Query, ts: u32) -> Vec<String> {
    let mut v = vec![format!("SET TIMESTAMP={ts}")];
    if let Some(f) = q.flags2 {
        let fk = if f & (1 << 26) != 0 { 0 } else { 1 };
        let uc = if f & (1 << 27) != 0 { 0 } else { 1 };
        let ac = if f & (1 << 19) != 0 { 0 } else { 1 };
        v.push(format!(
            "SET @@session.foreign_key_checks={fk}, @@session.unique_checks={uc}, @@session.autocommit={ac}"
        ));
    }
    if let Some(m) = q.sql_mode {
        v.push(format!("SET @@session.sql_mode={m}"));
    }
    if let Some((c, cc, cs)) = q.charset {
        v.push(format!(
            "SET @@session.character_set_client={c}, @@session.collation_connection={cc}, @@session.collation_server={cs}"
        ));
    }
    if let Some(d) = q.charset_database {
        v.push(format!("SET @@session.collation_database={d}"));
    }
    if let Some(tz) = &q.time_zone {
        v.push(format!(
            "SET @@session.time_zone='{}'",
            tz.replace('\'', "''")
        ));
    }
    if let Some(l) = q.lc_time_names {
        v.push(format!("SET @@session.lc_time_names={l}"));
    }
    if let Some(e) = q.explicit_defaults_for_timestamp {
        v.push(format!(
            "SET @@session.explicit_defaults_for_timestamp={}",
            u8::from(e)
        ));
    }
    if let Some(c) = q.default_collation_for_utf8mb4 {
        v.push(format!("SET @@session.default_collation_for_utf8mb4={c}"));
    }
    v
}

/// Replays archived transactions into `conn` (see the module docs).
pub fn replay(
    conn: &mut Conn,
    dir: &Path,
    options: &ReplayOptions<'_>,
) -> Result<ReplayReport, Error> {
    check(dir, &options.start, &options.stop)?;
    let archive = Archive::open(dir)?;
    let files = archive.files();
    let first = files
        .iter()
        .position(|f| *f == options.start.file)
        .unwrap_or(files.len());
    if !options.log_bin {
        conn.query_drop("SET SESSION sql_log_bin = 0")
            .map_err(|e| {
                Error::Db(spyglass_db::DbError::query(
                    "turning the binary log off for the replay (SET sql_log_bin)",
                    e,
                ))
            })?;
    }
    let mut r = ReplayReport {
        transactions: 0,
        skipped_transactions: 0,
        row_events: 0,
        statements: 0,
        skipped_statements: Vec::new(),
        reached: options.start.clone(),
        last: None,
        next: None,
    };
    'files: for (n, file) in files[first..].iter().enumerate() {
        let bytes = archive.read(file)?;
        let Some((_, fh, fde)) = format::events(&bytes).next() else {
            continue;
        };
        if fh.type_code != types::FORMAT_DESCRIPTION {
            return Err(Error::Event {
                file: file.clone(),
                pos: 4,
                detail: "the first event is not a format description".into(),
            });
        }
        let crc = format::fde_checksum_alg(fde) == 1;
        let mut fde_sent = false;
        let from = if n == 0 {
            options.start.pos as usize
        } else {
            4
        };
        if from > bytes.len() {
            return Err(Error::Replay(format!(
                "the archive's {file} ends at {} before the start position {from}",
                bytes.len()
            )));
        }
        let mut cur: Option<Txn> = None;
        for (at, h, ev) in format::events(&bytes) {
            if at < from {
                continue;
            }
            let end = (at + ev.len()) as u64;
            let t = h.type_code;
            let mut done = false;
            match t {
                t if format::is_bookkeeping(t) => continue,
                types::GTID | types::ANONYMOUS_GTID | types::MARIA_GTID => {
                    let (commit_us, gtid, standalone) = format::gtid_event(t, ev, crc);
                    cur = Some(Txn {
                        file: file.clone(),
                        start: at as u64,
                        end,
                        events: Vec::new(),
                        commit_us,
                        last_ts: h.timestamp,
                        gtid,
                        in_begin: t == types::MARIA_GTID && !standalone,
                        standalone,
                    });
                    continue;
                }
                _ => {}
            }
            let txn = cur.get_or_insert_with(|| Txn {
                file: file.clone(),
                start: at as u64,
                end,
                events: Vec::new(),
                commit_us: None,
                last_ts: h.timestamp,
                gtid: None,
                in_begin: false,
                standalone: false,
            });
            txn.end = end;
            txn.last_ts = h.timestamp;
            txn.events.push((at, ev.len()));
            // A compressed transaction is one event holding the whole
            // transaction: complete, so a stop before it is found first.
            if t == types::XID || t == types::TRANSACTION_PAYLOAD {
                done = true;
            } else if t == types::QUERY {
                let q = format::query(ev, crc).ok_or_else(|| Error::Event {
                    file: file.clone(),
                    pos: at as u64,
                    detail: "a query event that does not parse".into(),
                })?;
                let text = String::from_utf8_lossy(&q.sql);
                let u = text.trim().to_ascii_uppercase();
                if u == "BEGIN" || u.starts_with("XA START") {
                    txn.in_begin = true;
                } else if u == "COMMIT"
                    || u == "ROLLBACK"
                    || u.starts_with("XA COMMIT")
                    || !txn.in_begin
                    || txn.standalone
                {
                    done = true;
                }
            }
            if !done {
                continue;
            }
            let Some(txn) = cur.take() else { continue };
            let commit_us = txn.commit_us.unwrap_or(i64::from(txn.last_ts) * 1_000_000);
            let point = TxnPoint {
                start: Point {
                    file: txn.file.clone(),
                    pos: txn.start,
                },
                end: Point {
                    file: txn.file.clone(),
                    pos: txn.end,
                },
                commit_us,
                gtid: txn.gtid.clone(),
            };
            let after = match &options.stop {
                Stop::Time(t) => {
                    // MariaDB's whole seconds: compare at the precision logged.
                    if txn.commit_us.is_some() {
                        commit_us > *t
                    } else {
                        commit_us > t.div_euclid(1_000_000) * 1_000_000
                    }
                }
                Stop::Position(p) => {
                    (index::sequence(&txn.file), txn.end) > (index::sequence(&p.file), p.pos)
                }
                // After the one with that GTID (check found it).
                Stop::Gtid(g) => r
                    .last
                    .as_ref()
                    .and_then(|l| l.gtid.as_deref())
                    .is_some_and(|l| same_gtid(l, g)),
                Stop::Latest => false,
            };
            if after {
                r.next = Some(point);
                break 'files;
            }
            if t == types::TRANSACTION_PAYLOAD {
                return Err(Error::Event {
                    file: file.clone(),
                    pos: at as u64,
                    detail: "a compressed transaction (binlog_transaction_compression=ON) cannot be replayed yet; turn it off on the server".into(),
                });
            }
            apply(conn, &bytes, fde, crc, &txn, options, &mut fde_sent, &mut r)?;
            r.reached = point.end.clone();
            r.last = Some(point);
        }
    }
    Ok(r)
}

#[allow(clippy::too_many_arguments)]
fn apply(
    conn: &mut Conn,
    bytes: &[u8],
    fde: &[u8],
    crc: bool,
    txn: &Txn,
    options: &ReplayOptions<'_>,
    fde_sent: &mut bool,
    r: &mut ReplayReport,
) -> Result<(), Error> {
    let mut stmts: Vec<String> = Vec::new();
    let mut rows = 0u64;
    let mut ddl = 0u64;
    // table id -> the (renamed) table map, None when its schema is left out
    let mut maps: HashMap<u64, Option<Vec<u8>>> = HashMap::new();
    let mut group: Vec<u8> = Vec::new();
    let mut in_group: HashSet<u64> = HashSet::new();
    let mut last_rows: Option<(usize, usize)> = None;
    let mut transactional = false;
    let finish = |group: &mut Vec<u8>,
                  in_group: &mut HashSet<u64>,
                  last_rows: &mut Option<(usize, usize)>,
                  stmts: &mut Vec<String>| {
        if let Some((off, len)) = last_rows.take() {
            let ev = &mut group[off..off + len];
            if let Some((_, flags)) = format::rows_table(ev) {
                format::set_rows_flags(ev, flags | format::STMT_END_F, crc);
            }
            stmts.push(format!("BINLOG '{}'", format::base64(group)));
        }
        group.clear();
        in_group.clear();
    };
    for &(at, len) in &txn.events {
        let ev = &bytes[at..at + len];
        let Some(h) = format::header(ev) else {
            continue;
        };
        let t = h.type_code;
        if t == types::QUERY {
            let Some(q) = format::query(ev, crc) else {
                continue;
            };
            let text = String::from_utf8_lossy(&q.sql).into_owned();
            let u = text.trim().to_ascii_uppercase();
            if u == "BEGIN" {
                transactional = true;
                continue;
            }
            if u == "COMMIT" || u == "ROLLBACK" {
                continue;
            }
            let schema = statement_schema(&text, &q.schema);
            let target = schema.as_deref().and_then(|s| (options.map_schema)(s));
            if is_account_or_admin(&text) || target.is_none() {
                if r.skipped_statements.len() < 20 {
                    let mut s: String = text.chars().take(120).collect();
                    if s.len() < text.len() {
                        s.push_str("...");
                    }
                    r.skipped_statements.push(s);
                }
                continue;
            }
            stmts.extend(session_prelude(&q, h.timestamp));
            let default_target = (!q.schema.is_empty())
                .then(|| (options.map_schema)(&q.schema))
                .flatten();
            // The server logs `CREATE|DROP DATABASE x` with `x` as its
            // default schema, which may not exist (yet) on the target: no
            // `USE` before them (they name their schema).
            let creates_db = {
                let w: Vec<String> = text
                    .split_whitespace()
                    .take(2)
                    .map(|w| w.to_ascii_uppercase())
                    .collect();
                w.len() == 2
                    && matches!(w[0].as_str(), "CREATE" | "DROP")
                    && matches!(w[1].as_str(), "DATABASE" | "SCHEMA")
            };
            if let Some(d) = default_target.filter(|_| !creates_db) {
                stmts.push(format!("USE {}", spyglass_db::quote::ident(&d)));
            }
            let mut sql = requalify_bare(&(options.rewrite)(&text), options.map_schema);
            // `CREATE|DROP|ALTER DATABASE x`: the name itself follows the rename.
            if let (Some(s), Some(tg)) = (&schema, &target) {
                let w: Vec<String> = sql
                    .split_whitespace()
                    .take(2)
                    .map(|w| w.to_ascii_uppercase())
                    .collect();
                if w.len() == 2 && matches!(w[1].as_str(), "DATABASE" | "SCHEMA") && s != tg {
                    let q_old = spyglass_db::quote::ident(s);
                    if let Some(i) = sql.find(&q_old) {
                        sql = format!(
                            "{}{}{}",
                            &sql[..i],
                            spyglass_db::quote::ident(tg),
                            &sql[i + q_old.len()..]
                        );
                    } else if let Some(i) = sql.find(s.as_str()) {
                        sql = format!(
                            "{}{}{}",
                            &sql[..i],
                            spyglass_db::quote::ident(tg),
                            &sql[i + s.len()..]
                        );
                    }
                }
            }
            stmts.push(sql);
            ddl += 1;
        } else if t == types::TABLE_MAP {
            let Some((id, db, _)) = format::table_map(ev) else {
                continue;
            };
            let m = (options.map_schema)(&db).map(|tg| {
                if tg == db {
                    ev.to_vec()
                } else {
                    format::rename_table_map(ev, &tg, crc).unwrap_or_else(|| ev.to_vec())
                }
            });
            maps.insert(id, m);
        } else if format::is_rows(t) {
            transactional = true;
            let Some((id, flags)) = format::rows_table(ev) else {
                continue;
            };
            if let Some(Some(tm)) = maps.get(&id) {
                if in_group.insert(id) {
                    group.extend_from_slice(tm);
                }
                last_rows = Some((group.len(), ev.len()));
                group.extend_from_slice(ev);
                rows += 1;
            }
            if flags & format::STMT_END_F != 0 {
                finish(&mut group, &mut in_group, &mut last_rows, &mut stmts);
            }
        } else if t == types::XID {
            transactional = true;
        }
    }
    finish(&mut group, &mut in_group, &mut last_rows, &mut stmts);
    if stmts.is_empty() {
        r.skipped_transactions += 1;
        return Ok(());
    }
    let fail = |e: mysql::Error| Error::Apply {
        file: txn.file.clone(),
        pos: txn.start,
        source: Box::new(e),
    };
    if !*fde_sent && rows > 0 {
        conn.query_drop(format!("BINLOG '{}'", format::base64(fde)))
            .map_err(fail)?;
        // MySQL: a format description through BINLOG sets GTID_NEXT to
        // NOT_YET_DETERMINED; back to AUTOMATIC so the target gives each
        // replayed transaction its own GTID (MariaDB has no GTID_NEXT).
        let _ = conn.query_drop("SET @@SESSION.GTID_NEXT = 'AUTOMATIC'");
        *fde_sent = true;
    }
    let run = |conn: &mut Conn| -> Result<(), mysql::Error> {
        if transactional {
            conn.query_drop("BEGIN")?;
        }
        for s in &stmts {
            conn.query_drop(s)?;
        }
        if transactional {
            conn.query_drop("COMMIT")?;
        }
        Ok(())
    };
    if let Err(e) = run(conn) {
        let _ = conn.query_drop("ROLLBACK");
        return Err(fail(e));
    }
    r.transactions += 1;
    r.row_events += rows;
    r.statements += ddl;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_of_a_statement() {
        assert_eq!(
            statement_schema("CREATE DATABASE `lab`", "").as_deref(),
            Some("lab")
        );
        assert_eq!(
            statement_schema("DROP DATABASE IF EXISTS `a``b`", "x").as_deref(),
            Some("a`b")
        );
        assert_eq!(
            statement_schema(
                "CREATE TABLE IF NOT EXISTS `lab`.`#session` (c varchar(9) DEFAULT 'x.`y`.z')",
                ""
            )
            .as_deref(),
            Some("lab")
        );
        assert_eq!(
            statement_schema("ALTER TABLE t ADD c INT", "def").as_deref(),
            Some("def")
        );
        assert_eq!(statement_schema("ALTER TABLE t ADD c INT", ""), None);
        assert_eq!(
            statement_schema("CREATE TABLE lab.t (id INT)", "").as_deref(),
            Some("lab")
        );
        assert_eq!(statement_schema("SET @@session.x = 1.5", ""), None);
        let m = |s: &str| (s == "lab").then(|| "lab_back".to_owned());
        assert_eq!(
            requalify_bare(
                "CREATE TABLE lab.t (a INT DEFAULT 1.5, b VARCHAR(9) DEFAULT 'lab.x')",
                &m
            ),
            "CREATE TABLE `lab_back`.t (a INT DEFAULT 1.5, b VARCHAR(9) DEFAULT 'lab.x')"
        );
        assert!(is_account_or_admin("GRANT SELECT ON `lab`.* TO 'u'@'%'"));
        assert!(!is_account_or_admin("CREATE TABLE `lab`.`t` (a int)"));
    }
}
