//! The database side: which files and folders the schemas track.
//!
//! Every schema that uses store `s` has its own `` `<db>`.`~external_s` ``;
//! columns of type `blob@s`, `attach@s` and `filepath@s` reference it by a
//! foreign key, which `information_schema.KEY_COLUMN_USAGE` lists. A row is
//! *used* when some referencing column holds its hash. A file is live when
//! any schema's row names it, so rows of every schema on the server protect
//! files, while only schemas in [`Scope`] have their rows cleaned or reported.
//!
//! This module only reads, except for the two deletes apply needs
//! ([`delete_external_row`], [`delete_analysis_row`]) and the re-inserts of
//! restore.

use std::collections::{HashMap, HashSet};

use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::mysql::{Conn, Row, Value};
use spyglass_db::quote::{ident, qualified, string};
use spyglass_db::DbError;

use crate::paths;
use crate::store::Store;
use crate::CleanupError;

/// Which schemas' rows cleanup may act on and report. Rows of schemas out of
/// scope still protect the files they name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    patterns: Vec<String>,
}

impl Scope {
    /// Every schema.
    pub fn all() -> Self {
        Scope::default()
    }
    /// Schemas matching any of `patterns` (`spyglass_db::schemas` globs: `*` and `?`).
    pub fn patterns(patterns: Vec<String>) -> Self {
        Scope { patterns }
    }
    /// True when `schema` is in scope.
    pub fn contains(&self, schema: &str) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|p| glob(p, schema))
    }
}

/// The one schema glob syntax (`*` and `?`) every setting shares.
pub(crate) use spyglass_db::schemas::glob_match as glob;

/// `('mysql', 'information_schema', ...)` for `NOT IN` in catalog queries.
fn system_schemas() -> String {
    spyglass_db::schemas::system_schemas_sql()
}

/// A foreign key from `schema.table (columns)` to some table's `(referenced)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    /// Referencing schema.
    pub schema: String,
    /// Referencing table.
    pub table: String,
    /// (referencing column, referenced column) pairs.
    pub columns: Vec<(String, String)>,
}

/// One `` `<db>`.`~external_<store>` `` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalTable {
    /// The schema.
    pub schema: String,
    /// The store name (after `~external_`).
    pub store: String,
    /// Columns referencing it.
    pub refs: Vec<ForeignKey>,
    /// Whether the schema is in scope.
    pub in_scope: bool,
    /// The server's row estimate (`information_schema.TABLES.table_rows`), for sizing.
    pub rows_estimate: u64,
    /// `filepath` and `attachment_name` hold UTF-8 bytes as stored
    /// (utf8mb4, utf8mb3, ascii or binary): bulk reads need no conversion.
    pub utf8_stored: bool,
}

impl ExternalTable {
    /// `` `db`.`~external_store` ``.
    pub fn qualified(&self) -> String {
        qualified(&self.schema, &format!("~external_{}", self.store))
    }
    /// SQL that is 1 when the row aliased `e` is referenced.
    fn used_expr(&self) -> String {
        if self.refs.is_empty() {
            return "0".into();
        }
        let parts: Vec<String> = self
            .refs
            .iter()
            .map(|fk| {
                let on: Vec<String> = fk
                    .columns
                    .iter()
                    .map(|(c, r)| format!("r.{} = e.{}", ident(c), ident(r)))
                    .collect();
                format!(
                    "EXISTS (SELECT 1 FROM {} r WHERE {})",
                    qualified(&fk.schema, &fk.table),
                    on.join(" AND ")
                )
            })
            .collect();
        format!("({})", parts.join(" OR "))
    }
}

/// A Spyglass `analysis_nwbfile` table (`common_nwbfile` or a custom `<prefix>_nwbfile`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalysisTable {
    /// The schema.
    pub schema: String,
    /// Tables downstream of it.
    pub downstream: Vec<ForeignKey>,
    /// The server's row estimate, for ordering the scan's reads.
    pub rows_estimate: u64,
}

impl AnalysisTable {
    fn orphan_condition(&self) -> String {
        let mut parts = vec!["1".to_owned()];
        for fk in &self.downstream {
            let on: Vec<String> = fk
                .columns
                .iter()
                .map(|(c, r)| format!("r.{} = a.{}", ident(c), ident(r)))
                .collect();
            parts.push(format!(
                "NOT EXISTS (SELECT 1 FROM {} r WHERE {})",
                qualified(&fk.schema, &fk.table),
                on.join(" AND ")
            ));
        }
        parts.join(" AND ")
    }
}

/// A column that holds absolute folder paths (e.g. `sorting_path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirColumn {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Column.
    pub column: String,
}

/// What the server holds that cleanup needs, found through `information_schema`.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Every `~external_*` table on the server.
    pub externals: Vec<ExternalTable>,
    /// `analysis_nwbfile` tables in scope.
    pub analysis: Vec<AnalysisTable>,
}

fn q(what: &str) -> impl FnOnce(spyglass_db::mysql::Error) -> CleanupError + '_ {
    move |e| CleanupError::Db(DbError::query(what, e))
}

fn text(v: Value) -> String {
    match v {
        Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
        Value::NULL => String::new(),
        other => other.as_sql(true),
    }
}

fn texts(row: Row) -> Vec<String> {
    row.unwrap().into_iter().map(text).collect()
}

/// True when the error says the schema or table is gone (dropped while we
/// scan: its rows no longer protect anything, so skipping it is right).
fn is_gone(e: &spyglass_db::mysql::Error) -> bool {
    // ER_BAD_DB_ERROR, ER_NO_SUCH_TABLE
    matches!(e, spyglass_db::mysql::Error::MySqlError(m) if m.code == 1049 || m.code == 1146)
}

/// Runs a query; `Ok(None)` when its table was dropped meanwhile.
fn query_opt<T: spyglass_db::mysql::prelude::FromRow>(
    conn: &mut Conn,
    sql: String,
    what: impl FnOnce() -> String,
) -> Result<Option<Vec<T>>, CleanupError> {
    match spyglass_db::retrying!(conn.query(&sql)) {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_gone(&e) => Ok(None),
        Err(e) => Err(CleanupError::Db(DbError::query(what(), e))),
    }
}

/// True for Spyglass's analysis file schemas: `common_nwbfile` and custom `<prefix>_nwbfile`.
pub fn is_nwbfile_schema(schema: &str) -> bool {
    schema == "common_nwbfile" || schema.ends_with("_nwbfile")
}

/// Reads the catalog.
pub fn catalog(conn: &mut Conn, scope: &Scope) -> Result<Catalog, CleanupError> {
    let system = system_schemas();
    // MySQL 8+ caches information_schema row counts for a day; the bulk
    // reads size their slices from them. Fresh ones, where the server has
    // the setting (MariaDB does not: the error is ignored).
    let _ = conn.query_drop("SET SESSION information_schema_stats_expiry = 0");
    let tables: Vec<Row> = conn
        .query(format!(
            "SELECT table_schema, table_name, COALESCE(table_rows, 0) FROM information_schema.TABLES \
             WHERE table_type = 'BASE TABLE' AND table_schema NOT IN {system} \
             AND (table_name LIKE '~external\\_%' OR table_name = 'analysis_nwbfile')"
        ))
        .map_err(q("listing ~external and analysis_nwbfile tables"))?;
    let fk_rows: Vec<Row> = conn
        .query(
            "SELECT constraint_schema, constraint_name, table_schema, table_name, column_name, \
             referenced_table_schema, referenced_table_name, referenced_column_name \
             FROM information_schema.KEY_COLUMN_USAGE \
             WHERE referenced_table_name IS NOT NULL \
             AND (referenced_table_name LIKE '~external\\_%' OR referenced_table_name = 'analysis_nwbfile') \
             ORDER BY constraint_schema, table_schema, table_name, constraint_name, ordinal_position",
        )
        .map_err(q("reading foreign keys from information_schema.KEY_COLUMN_USAGE"))?;
    // (referenced schema, referenced table) -> foreign keys
    let mut fks: HashMap<(String, String), Vec<ForeignKey>> = HashMap::new();
    let mut last: Option<(String, String, String, String)> = None;
    for row in fk_rows {
        let v = texts(row);
        let [cs, cn, ts, tn, col, rs, rt, rc] = <[String; 8]>::try_from(v).map_err(|_| {
            CleanupError::Db(DbError::Protocol {
                what: "reading foreign keys".into(),
                detail: "wrong column count".into(),
            })
        })?;
        let key = (cs.clone(), cn.clone(), ts.clone(), tn.clone());
        let list = fks.entry((rs, rt)).or_default();
        if last.as_ref() == Some(&key) {
            if let Some(fk) = list.last_mut() {
                fk.columns.push((col, rc));
                continue;
            }
        }
        list.push(ForeignKey {
            schema: ts,
            table: tn,
            columns: vec![(col, rc)],
        });
        last = Some(key);
    }
    // Tables whose path columns are stored in another character set (e.g.
    // latin1, MariaDB's old default) are converted to UTF-8 in bulk reads.
    let charset_rows: Vec<Row> = conn
        .query(format!(
            "SELECT table_schema, table_name, character_set_name FROM information_schema.COLUMNS \
             WHERE table_schema NOT IN {system} AND table_name LIKE '~external\\_%' \
             AND column_name IN ('filepath', 'attachment_name')"
        ))
        .map_err(q("reading the character sets of ~external columns"))?;
    // (schema, table) -> every path column seen is UTF-8. A table missing
    // here (created since, or columns this login cannot see) is converted.
    let mut utf8: HashMap<(String, String), bool> = HashMap::new();
    for row in charset_rows {
        let v = texts(row);
        let ok = matches!(
            v.get(2).map(|c| c.to_ascii_lowercase()).as_deref(),
            None | Some("" | "utf8mb4" | "utf8mb3" | "utf8" | "ascii" | "binary")
        );
        *utf8.entry((v[0].clone(), v[1].clone())).or_insert(true) &= ok;
    }
    let mut cat = Catalog::default();
    for row in tables {
        let v = texts(row);
        let (schema, table) = (v[0].clone(), v[1].clone());
        let rows_estimate = v.get(2).and_then(|n| n.parse().ok()).unwrap_or(0);
        if let Some(store) = table.strip_prefix("~external_") {
            cat.externals.push(ExternalTable {
                refs: fks
                    .get(&(schema.clone(), table.clone()))
                    .cloned()
                    .unwrap_or_default(),
                in_scope: scope.contains(&schema),
                rows_estimate,
                utf8_stored: utf8
                    .get(&(schema.clone(), table.clone()))
                    .copied()
                    .unwrap_or(false),
                schema,
                store: store.to_owned(),
            });
        } else if is_nwbfile_schema(&schema) && scope.contains(&schema) {
            let downstream = fks
                .get(&(schema.clone(), table.clone()))
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|fk| !(fk.schema == schema && fk.table == table))
                .collect();
            cat.analysis.push(AnalysisTable {
                schema,
                downstream,
                rows_estimate,
            });
        }
    }
    cat.externals
        .sort_by(|a, b| (&a.store, &a.schema).cmp(&(&b.store, &b.schema)));
    cat.analysis.sort_by(|a, b| a.schema.cmp(&b.schema));
    Ok(cat)
}

/// What the rows say about one path in a store.
#[derive(Debug, Default)]
pub struct Track {
    /// [`fingerprint`] of the path.
    pub fp: u64,
    /// Where its path is: buffer number (high 24 bits) and offset in it
    /// (low 40 bits); see [`StoreRows::path_of`].
    pub loc: u64,
    /// Length of its path.
    pub len: u32,
    /// Index into [`Catalog::externals`] of a table naming it (an in-scope
    /// one when there is one).
    pub table: u32,
    /// In-scope rows naming it (one per table at most).
    pub in_scope_rows: u16,
    /// Of those, rows nothing references (counted by [`StoreRows::finish`]).
    pub unused_rows: u16,
    /// A row of a schema out of scope names it (such rows always protect it).
    pub out_of_scope: bool,
    /// Set by classification (from several threads) when the file is found on disk.
    pub seen: std::sync::atomic::AtomicBool,
}

/// Bits of [`Track::loc`] that hold the offset.
const LOC_BITS: u32 = 40;

impl Track {
    /// Whether classification found the file.
    pub fn seen(&self) -> bool {
        self.seen.load(std::sync::atomic::Ordering::Relaxed)
    }
    /// Marks the file as found.
    pub fn mark_seen(&self) {
        self.seen.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    /// Some row naming it is referenced, or belongs to a schema out of scope.
    pub fn used(&self) -> bool {
        self.out_of_scope || self.in_scope_used()
    }
    /// Some in-scope, referenced row names it (missing file = dangling).
    pub fn in_scope_used(&self) -> bool {
        self.unused_rows < self.in_scope_rows
    }
    /// Takes in what other rows naming the same path say; returns the table
    /// of the two it does not keep in [`Track::table`].
    fn fold(&mut self, other: &Track) -> u32 {
        let mut dropped = other.table;
        if self.in_scope_rows == 0 && other.in_scope_rows > 0 {
            dropped = self.table;
            self.table = other.table;
        }
        self.in_scope_rows = self.in_scope_rows.saturating_add(other.in_scope_rows);
        self.unused_rows = self.unused_rows.saturating_add(other.unused_rows);
        self.out_of_scope |= other.out_of_scope;
        if other.seen() {
            self.mark_seen();
        }
        dropped
    }
}

/// An in-scope `~external` row that nothing references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusedRow {
    /// Index into [`Catalog::externals`].
    pub table: u32,
    /// The row's hash.
    pub hash: [u8; 16],
    /// Its file, relative to the store.
    pub rel: String,
}

/// A fast, non-cryptographic hasher for paths (the multiply-add scheme of
/// rustc's FxHash, 8 bytes at a time). Paths come from the lab's own database
/// and disk, so hash flooding is not a concern; a million lookups are.
#[derive(Debug, Default, Clone, Copy)]
pub struct PathHasher(u64);

impl PathHasher {
    #[inline]
    fn add(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for PathHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            self.add(u64::from_le_bytes(b));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
    }
    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.add(v as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A 64-bit fingerprint of a relative path, the key tracked paths and
/// walked files are sorted and matched by.
///
/// Keys are fingerprints, not strings, so a million tracked paths cost one
/// allocation (the arena) instead of a million, and matching compares
/// integers. Two paths sharing a fingerprint (about 1 in 10^7 for a
/// million paths) would only make an untracked file look tracked, which
/// keeps it: the safe direction. Apply re-checks every item by exact path.
pub fn fingerprint(path: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = PathHasher(0x243f_6a88_85a3_08d3);
    h.write(path);
    h.add(path.len() as u64);
    // Final avalanche (splitmix64), so every bit depends on every byte.
    let mut z = h.0;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Tracked paths of one store.
///
/// Rows are collected unsorted while they are read; [`StoreRows::seal`]
/// sorts them by fingerprint and folds rows naming the same path into one
/// [`Track`], and [`StoreRows::merge`] joins sealed parts read on different
/// connections. Sorted fingerprints let a whole walker run be matched in one
/// linear merge instead of a million hash-table probes.
#[derive(Debug, Default)]
pub struct StoreRows {
    /// One per tracked path once sealed, sorted by [`Track::fp`].
    pub tracks: Vec<Track>,
    /// Paths that had to be built or normalized, back to back (buffer 0).
    spill: Vec<u8>,
    /// Bulk results kept whole, paths in place (buffers 1, 2, ...): the
    /// paths of a million rows are never copied.
    bufs: Vec<Vec<u8>>,
    /// Rows (any scope) for this store.
    pub rows: u64,
    /// Rows in scope.
    pub rows_in_scope: u64,
    /// In-scope rows nothing references.
    pub unused: Vec<UnusedRow>,
    /// (fingerprint, table) for each further table naming a path besides its
    /// [`Track::table`]: which schemas share a file (the report counts it
    /// once and shows the sharing). Sorted by [`StoreRows::finish`].
    pub also: Vec<(u64, u32)>,
    /// [`StoreRows::finish`] ran (it counts the unused rows once).
    finished: bool,
}

/// Fetches every row of every `~external_<store>` table for `store`.
pub fn store_rows(
    conn: &mut Conn,
    cat: &Catalog,
    store: &Store,
) -> Result<StoreRows, CleanupError> {
    let max_packet = prepare_bulk(conn)?;
    store_rows_capped(conn, cat, store, max_packet / 4)
}

/// [`store_rows`] with every bulk result capped at `cap` bytes
/// (`group_concat_max_len`): slices whose result would be longer are split,
/// and a single row longer than the cap is read on its own. The scan uses
/// a quarter of `max_allowed_packet`; a small cap exercises every fallback.
pub fn store_rows_capped(
    conn: &mut Conn,
    cat: &Catalog,
    store: &Store,
    cap: u64,
) -> Result<StoreRows, CleanupError> {
    let max_packet = prepare_bulk(conn)?;
    conn.query_drop(format!("SET SESSION group_concat_max_len = {}", cap.max(4)))
        .map_err(q("setting group_concat_max_len for this session"))?;
    let mut out = StoreRows::default();
    for (i, t) in cat.externals.iter().enumerate() {
        if t.store == store.name {
            for range in chunks(t, max_packet) {
                table_rows(conn, i, t, store, range, &mut out)?;
            }
        }
    }
    out.seal();
    out.finish();
    Ok(out)
}

impl StoreRows {
    /// The path of a tracked entry.
    pub fn path_of(&self, t: &Track) -> &[u8] {
        let buf = (t.loc >> LOC_BITS) as usize;
        let start = (t.loc & ((1 << LOC_BITS) - 1)) as usize;
        let b = match buf {
            0 => &self.spill,
            n => &self.bufs[n - 1],
        };
        &b[start..start + t.len as usize]
    }

    /// What tracks `rel`, if anything (after [`StoreRows::seal`]).
    pub fn get(&self, rel: &[u8]) -> Option<&Track> {
        let fp = fingerprint(rel);
        self.tracks
            .binary_search_by_key(&fp, |t| t.fp)
            .ok()
            .map(|i| &self.tracks[i])
    }

    /// Sorts the tracks by fingerprint and folds tracks of the same path
    /// into one.
    pub fn seal(&mut self) {
        self.tracks.sort_unstable_by_key(|t| t.fp);
        let also = &mut self.also;
        self.tracks.dedup_by(|later, kept| {
            if later.fp != kept.fp {
                return false;
            }
            let dropped = kept.fold(later);
            if dropped != kept.table {
                also.push((kept.fp, dropped));
            }
            true
        });
    }

    /// The tables naming the path of `t` (indices into
    /// [`Catalog::externals`]): its own, then the others (after
    /// [`StoreRows::finish`]).
    pub fn tables_of(&self, t: &Track) -> impl Iterator<Item = u32> + '_ {
        let (fp, own) = (t.fp, t.table);
        let from = self.also.partition_point(|&(f, _)| f < fp);
        std::iter::once(own).chain(
            self.also[from..]
                .iter()
                .take_while(move |&&(f, _)| f == fp)
                .map(|&(_, table)| table)
                .filter(move |&table| table != own),
        )
    }

    /// Counts the unused rows against the paths they name, once every part
    /// is merged: a path stays used while any other row naming it is.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.also.sort_unstable();
        self.also.dedup();
        let unused = std::mem::take(&mut self.unused);
        for u in &unused {
            let fp = fingerprint(u.rel.as_bytes());
            if let Ok(i) = self.tracks.binary_search_by_key(&fp, |t| t.fp) {
                let t = &mut self.tracks[i];
                t.unused_rows = t.unused_rows.saturating_add(1).min(t.in_scope_rows);
            }
        }
        self.unused = unused;
    }

    /// Joins sealed parts into one sealed whole.
    pub fn merge(parts: Vec<StoreRows>) -> StoreRows {
        let mut parts = parts.into_iter();
        let Some(mut out) = parts.next() else {
            return StoreRows::default();
        };
        for mut other in parts {
            out.rows += other.rows;
            out.rows_in_scope += other.rows_in_scope;
            out.unused.append(&mut other.unused);
            out.also.append(&mut other.also);
            let spill_base = out.spill.len() as u64;
            out.spill.append(&mut other.spill);
            let buf_base = (out.bufs.len() as u64) << LOC_BITS;
            out.bufs.append(&mut other.bufs);
            let mine = std::mem::take(&mut out.tracks);
            let mut merged = Vec::with_capacity(mine.len() + other.tracks.len());
            let mut a = mine.into_iter().peekable();
            let mut b = other
                .tracks
                .into_iter()
                .map(|mut t| {
                    t.loc += if t.loc >> LOC_BITS == 0 {
                        spill_base
                    } else {
                        buf_base
                    };
                    t
                })
                .peekable();
            loop {
                let next = match (a.peek(), b.peek()) {
                    (Some(x), Some(y)) if x.fp == y.fp => {
                        let (Some(mut x), Some(y)) = (a.next(), b.next()) else {
                            break;
                        };
                        let dropped = x.fold(&y);
                        if dropped != x.table {
                            out.also.push((x.fp, dropped));
                        }
                        x
                    }
                    (Some(x), Some(y)) if x.fp < y.fp => match a.next() {
                        Some(x) => x,
                        None => break,
                    },
                    (_, Some(_)) => match b.next() {
                        Some(y) => y,
                        None => break,
                    },
                    (Some(_), None) => match a.next() {
                        Some(x) => x,
                        None => break,
                    },
                    (None, None) => break,
                };
                merged.push(next);
            }
            out.tracks = merged;
        }
        out
    }
}

/// A slice `[lo, hi)` of a table's hash space, on the first two bytes of
/// the hash (DataJoint's hashes are MD5-based UUIDs, so slices of equal
/// width hold about equal numbers of rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashRange {
    lo: u32,
    hi: u32,
}

impl HashRange {
    /// Every hash.
    pub const ALL: HashRange = HashRange { lo: 0, hi: 1 << 16 };

    /// SQL that is true for the values of `col` in this range.
    fn condition(&self, col: &str) -> String {
        let bound = |v: u32| format!("X'{v:04x}{}'", "0".repeat(28));
        match (self.lo > 0, self.hi < 1 << 16) {
            (false, false) => "1".into(),
            (true, false) => format!("{col} >= {}", bound(self.lo)),
            (false, true) => format!("{col} < {}", bound(self.hi)),
            (true, true) => format!("{col} >= {} AND {col} < {}", bound(self.lo), bound(self.hi)),
        }
    }

    /// Up to `n` slices of about equal width covering this one.
    fn split(&self, n: u32) -> Vec<HashRange> {
        let width = self.hi - self.lo;
        let n = n.clamp(1, width.max(1));
        (0..n)
            .map(|k| HashRange {
                lo: self.lo + width * k / n,
                hi: self.lo + width * (k + 1) / n,
            })
            .collect()
    }
}

/// Bytes one row takes in a bulk read, for sizing slices (hash, markers,
/// lengths and a typical relative path).
const BULK_ROW_BYTES: u64 = 80;

/// Sets the connection up for [`table_rows`]' bulk reads and returns the
/// server's `max_allowed_packet`, which bounds one bulk result.
pub fn prepare_bulk(conn: &mut Conn) -> Result<u64, CleanupError> {
    let max: Option<u64> = conn
        .query_first("SELECT @@max_allowed_packet")
        .map_err(q("reading @@max_allowed_packet"))?;
    // A result row carries up to two packed values: each gets a quarter of
    // the packet, so the row always fits.
    let max = max.unwrap_or(1 << 24).max(1024);
    conn.query_drop(format!("SET SESSION group_concat_max_len = {}", max / 4))
        .map_err(q("setting group_concat_max_len for this session"))?;
    Ok(max)
}

/// The slices [`table_rows`] reads `t` in: small enough that each bulk
/// result stays well under `max_packet`, from the server's row estimate. A
/// wrong estimate costs only time: a slice whose result does not fit is split.
pub fn chunks(t: &ExternalTable, max_packet: u64) -> Vec<HashRange> {
    let per_slice = (max_packet / 8).clamp(256 << 10, 2 << 20);
    let n = (t.rows_estimate * BULK_ROW_BYTES)
        .div_ceil(per_slice)
        .clamp(1, 4096);
    HashRange::ALL.split(n as u32)
}

/// One `~external` row as read.
struct RawRow<'a> {
    hash: [u8; 16],
    attachment: Option<&'a [u8]>,
    filepath: Option<&'a [u8]>,
    /// Referenced, when the server said so (`None`: look it up).
    used: Option<bool>,
}

/// Reads the rows of one `~external` table (index `i` in the catalog) whose
/// hash is in `range` into `out`.
///
/// Rows go into `out` unsorted; [`StoreRows::seal`] it once every slice is
/// in, and [`StoreRows::finish`] once every part is merged.
///
/// A slice is read in bulk: the server packs it into a few `GROUP_CONCAT`
/// values, so a hundred thousand rows cost one result row instead of a
/// hundred thousand. A slice of `filepath` rows (Spyglass's raw and analysis
/// stores) comes as its paths, NUL-separated ([`paths_in`]); which of its
/// rows are unused is settled by counting first ([`unused_in`]). Anything
/// else comes as packed rows ([`rows_in`]). Every packing is checked before
/// anything is used: row counts and byte lengths must agree, or the slice is
/// split and read again (down to a plain row-by-row read). A truncated or
/// odd result can therefore only cost time, never drop a tracked path.
/// Needs [`prepare_bulk`] on `conn` first.
pub fn table_rows(
    conn: &mut Conn,
    i: usize,
    t: &ExternalTable,
    store: &Store,
    range: HashRange,
    out: &mut StoreRows,
) -> Result<(), CleanupError> {
    let simple = t.refs.iter().all(|fk| fk.columns.len() == 1);
    let mut force_used = false;
    let mut todo = vec![range];
    while let Some(range) = todo.pop() {
        let mut result = Bulk::Other;
        if simple || !t.in_scope {
            result = match paths_in(conn, t, range)? {
                Paths::Empty => Bulk::Done,
                Paths::Read { packed, hashes } => {
                    let unused = if t.in_scope {
                        unused_in(conn, t, range, &hashes)?
                    } else {
                        Vec::new()
                    };
                    // The paths stay in `packed`; tracks point into it.
                    let buf = out.bufs.len() as u64 + 1;
                    let mut start = 0u64;
                    for p in packed.split(|&c| c == 0) {
                        if fast_normal(p) {
                            push_track_at(out, i, t, p, (buf << LOC_BITS) | start);
                        } else {
                            add_path(out, i, t, p);
                        }
                        start += p.len() as u64 + 1;
                    }
                    out.bufs.push(packed);
                    match unused_rows(conn, i, t, store, &unused, out)? {
                        Bulk::Gone => return Ok(()),
                        _ => Bulk::Done,
                    }
                }
                Paths::Not(b) => b,
            };
        }
        if matches!(result, Bulk::Other) {
            // Packed rows; with plain references, which are used is looked up
            // in the referencing columns' values.
            let mut referenced: Vec<[u8; 16]> = Vec::new();
            if t.in_scope && simple {
                for fk in &t.refs {
                    match referenced_in(conn, fk, range, &mut referenced)? {
                        // A referencing table dropped meanwhile references nothing.
                        Bulk::Done | Bulk::Gone => {}
                        other => {
                            result = other;
                            break;
                        }
                    }
                }
                referenced.sort_unstable();
                referenced.dedup();
            }
            if matches!(result, Bulk::Other) {
                let mut add = |row: RawRow<'_>| {
                    let used = row
                        .used
                        .unwrap_or_else(|| referenced.binary_search(&row.hash).is_ok());
                    add_row(out, i, t, store, &row, used);
                };
                result = rows_in(conn, t, simple, force_used, range, &mut add)?;
            }
        }
        if matches!(result, Bulk::Gone) && t.in_scope && !simple && !force_used {
            // The used test joins the referencing tables: one of them may be
            // what is gone. Then read the rows again, all counted as used
            // (which keeps their files).
            if table_exists(conn, t)? {
                force_used = true;
                todo.push(range);
                continue;
            }
        }
        match result {
            Bulk::Done => {}
            Bulk::Gone => return Ok(()),
            Bulk::Split | Bulk::Other if range.hi - range.lo > 1 => todo.extend(range.split(8)),
            Bulk::Split | Bulk::Other => {
                match rows_one_by_one(conn, i, t, store, simple, force_used, range, out)? {
                    Bulk::Gone
                        if t.in_scope && !simple && !force_used && table_exists(conn, t)? =>
                    {
                        force_used = true;
                        todo.push(range);
                    }
                    Bulk::Gone => return Ok(()),
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// `e.<col>` as UTF-8 bytes, as the row-by-row reads (connection in
/// utf8mb4) and the file names on disk have it: converted only when the
/// column is stored in another character set (the conversion costs the
/// server half as much again).
fn utf8_col(t: &ExternalTable, col: &str) -> String {
    if t.utf8_stored {
        format!("e.{col}")
    } else {
        format!("CONVERT(e.{col} USING utf8mb4)")
    }
}

/// Whether `t` itself still exists (a "no such table" error may come from a
/// referencing table instead).
fn table_exists(conn: &mut Conn, t: &ExternalTable) -> Result<bool, CleanupError> {
    let sql = format!("SELECT 1 FROM {} LIMIT 0", t.qualified());
    match spyglass_db::retrying!(conn.query_drop(&sql)) {
        Ok(()) => Ok(true),
        Err(e) if is_gone(&e) => Ok(false),
        Err(e) => Err(CleanupError::Db(DbError::query(
            format!("checking {}", t.qualified()),
            e,
        ))),
    }
}

/// What [`paths_in`] read.
enum Paths {
    /// No rows in the slice.
    Empty,
    /// The paths, NUL-separated, each checked non-empty, and the rows'
    /// hashes, 16 bytes each (in no particular order).
    Read { packed: Vec<u8>, hashes: Vec<u8> },
    /// Nothing usable: [`Bulk::Other`], [`Bulk::Split`] or [`Bulk::Gone`].
    Not(Bulk),
}

/// Reads a slice of `filepath` rows as two values: the paths, NUL-separated
/// (a path cannot hold a NUL), and the hashes. [`Bulk::Other`] when the
/// slice holds attachment or blob rows.
fn paths_in(conn: &mut Conn, t: &ExternalTable, range: HashRange) -> Result<Paths, CleanupError> {
    let sql = format!(
        "SELECT COUNT(*), COUNT(e.filepath), COUNT(e.attachment_name), SUM(LENGTH({fp})), \
         CAST(GROUP_CONCAT({fp} SEPARATOR X'00') AS BINARY), GROUP_CONCAT(e.hash SEPARATOR '') \
         FROM {} e WHERE {}",
        t.qualified(),
        range.condition("e.hash"),
        fp = utf8_col(t, "filepath"),
    );
    let Some(mut vals) = bulk_query(conn, &sql, &format!("reading {}", t.qualified()))? else {
        return Ok(Paths::Not(Bulk::Gone));
    };
    let n = |k: usize| as_u64(vals.get(k));
    let (Some(count), Some(with_path), Some(with_name), Some(path_bytes)) =
        (n(0), n(1), n(2), n(3))
    else {
        return Ok(Paths::Not(Bulk::Split));
    };
    if count == 0 {
        return Ok(Paths::Empty);
    }
    if with_path != count || with_name != 0 {
        return Ok(Paths::Not(Bulk::Other));
    }
    let (Some(Value::Bytes(hashes)), Some(Value::Bytes(packed))) = (vals.pop(), vals.pop()) else {
        return Ok(Paths::Not(Bulk::Split));
    };
    // Complete and unambiguous, or read smaller slices: every path present
    // and whole (the byte total), none holding a NUL (the split count), and
    // every hash 16 bytes.
    if packed.len() as u64 != path_bytes + count - 1 || hashes.len() as u64 != 16 * count {
        return Ok(Paths::Not(Bulk::Split));
    }
    let separators = packed.iter().filter(|&&c| c == 0).count() as u64;
    if separators + 1 != count {
        return Ok(Paths::Not(Bulk::Split));
    }
    if packed.split(|&c| c == 0).any(<[u8]>::is_empty) {
        // An empty filepath names a blob-style path: the packed rows handle it.
        return Ok(Paths::Not(Bulk::Other));
    }
    Ok(Paths::Read { packed, hashes })
}

/// Which of `hashes` (16 bytes each, the rows of `t` in `range`) no column
/// references, sorted. Both sides come sorted from their indexes as a rule,
/// so this is a linear merge. A referencing table dropped meanwhile
/// references nothing.
fn unused_in(
    conn: &mut Conn,
    t: &ExternalTable,
    range: HashRange,
    hashes: &[u8],
) -> Result<Vec<[u8; 16]>, CleanupError> {
    let mut referenced: Vec<[u8; 16]> = Vec::new();
    for fk in &t.refs {
        let before = referenced.len();
        match referenced_in(conn, fk, range, &mut referenced)? {
            Bulk::Done | Bulk::Gone => {}
            _ => {
                referenced.truncate(before);
                distinct_values(conn, fk, range, &mut referenced)?;
            }
        }
    }
    if !referenced.is_sorted() {
        referenced.sort_unstable();
    }
    let mut rows: Vec<[u8; 16]> = hashes.chunks_exact(16).map(hash16).collect();
    if !rows.is_sorted() {
        rows.sort_unstable();
    }
    let mut unused = Vec::new();
    let mut j = 0;
    for h in rows {
        while j < referenced.len() && referenced[j] < h {
            j += 1;
        }
        if referenced.get(j) != Some(&h) {
            unused.push(h);
        }
    }
    Ok(unused)
}

/// Appends the distinct values of `fk`'s column in `range` to `out`, one
/// result row each; false when the table is gone.
fn distinct_values(
    conn: &mut Conn,
    fk: &ForeignKey,
    range: HashRange,
    out: &mut Vec<[u8; 16]>,
) -> Result<bool, CleanupError> {
    let (col, _) = &fk.columns[0];
    let c = format!("r.{}", ident(col));
    let sql = format!(
        "SELECT DISTINCT {c} FROM {} r WHERE {c} IS NOT NULL AND {}",
        qualified(&fk.schema, &fk.table),
        range.condition(&c)
    );
    let what = format!("reading references {}.{}.{col}", fk.schema, fk.table);
    let result = match spyglass_db::retrying!(conn.query_iter(&sql)) {
        Ok(r) => r,
        Err(e) if is_gone(&e) => return Ok(false),
        Err(e) => return Err(CleanupError::Db(DbError::query(what, e))),
    };
    for row in result {
        let row = row.map_err(|e| CleanupError::Db(DbError::query(what.clone(), e)))?;
        if let Some(Value::Bytes(b)) = row.unwrap().into_iter().next() {
            out.push(hash16(&b));
        }
    }
    Ok(true)
}

/// Reads the rows with the `unused` hashes of `t` again, for their exact
/// paths, and lists them in `out` (their paths are already counted).
fn unused_rows(
    conn: &mut Conn,
    i: usize,
    t: &ExternalTable,
    store: &Store,
    unused: &[[u8; 16]],
    out: &mut StoreRows,
) -> Result<Bulk, CleanupError> {
    for batch in unused.chunks(1000) {
        let list: Vec<String> = batch
            .iter()
            .map(|h| format!("X'{}'", paths::hex(h)))
            .collect();
        let sql = format!(
            "SELECT e.hash, e.attachment_name, e.filepath FROM {} e WHERE e.hash IN ({})",
            t.qualified(),
            list.join(",")
        );
        let rows: Vec<Row> = match spyglass_db::retrying!(conn.query(&sql)) {
            Ok(r) => r,
            Err(e) if is_gone(&e) => return Ok(Bulk::Gone),
            Err(e) => {
                return Err(CleanupError::Db(DbError::query(
                    format!("reading unused rows of {}", t.qualified()),
                    e,
                )))
            }
        };
        for row in rows {
            let mut vals = row.unwrap().into_iter();
            let bytes = |v: Option<Value>| match v {
                Some(Value::Bytes(b)) => Some(b),
                _ => None,
            };
            let (h, att, fp) = (bytes(vals.next()), bytes(vals.next()), bytes(vals.next()));
            let row = RawRow {
                hash: hash16(h.as_deref().unwrap_or_default()),
                attachment: att.as_deref(),
                filepath: fp.as_deref(),
                used: Some(false),
            };
            let rel = row_rel(t, store, &row);
            out.unused.push(UnusedRow {
                table: i as u32,
                hash: row.hash,
                rel: String::from_utf8_lossy(&rel).into_owned(),
            });
        }
    }
    Ok(Bulk::Done)
}

/// How a bulk read of one slice went.
enum Bulk {
    Done,
    /// The slice holds rows other than plain `filepath` rows: read packed rows.
    Other,
    /// The table or schema was dropped meanwhile: its rows protect nothing.
    Gone,
    /// The result did not fit or did not check out: read smaller slices.
    Split,
}

/// Runs a query whose single row is (count, [max length,] packed bytes).
fn bulk_query(conn: &mut Conn, sql: &str, what: &str) -> Result<Option<Vec<Value>>, CleanupError> {
    match spyglass_db::retrying!(conn.query_first::<Row, _>(sql)) {
        Ok(r) => Ok(Some(r.map(Row::unwrap).unwrap_or_default())),
        Err(e) if is_gone(&e) => Ok(None),
        Err(e) => Err(CleanupError::Db(DbError::query(what, e))),
    }
}

fn as_u64(v: Option<&Value>) -> Option<u64> {
    match v {
        Some(Value::Bytes(b)) => std::str::from_utf8(b).ok()?.parse().ok(),
        Some(Value::Int(n)) => u64::try_from(*n).ok(),
        Some(Value::UInt(n)) => Some(*n),
        Some(Value::NULL) => Some(0),
        _ => None,
    }
}

/// Appends the hashes `fk`'s column holds in `range` to `out`.
fn referenced_in(
    conn: &mut Conn,
    fk: &ForeignKey,
    range: HashRange,
    out: &mut Vec<[u8; 16]>,
) -> Result<Bulk, CleanupError> {
    let (col, _) = &fk.columns[0];
    let c = format!("r.{}", ident(col));
    let sql = format!(
        "SELECT COUNT({c}), GROUP_CONCAT({c} SEPARATOR '') FROM {} r WHERE {}",
        qualified(&fk.schema, &fk.table),
        range.condition(&c)
    );
    let what = format!("reading references {}.{}.{col}", fk.schema, fk.table);
    let Some(vals) = bulk_query(conn, &sql, &what)? else {
        return Ok(Bulk::Gone);
    };
    let count = as_u64(vals.first());
    let packed: &[u8] = match vals.get(1) {
        Some(Value::Bytes(b)) => b,
        _ => &[],
    };
    // Every value a 16-byte hash, none missing: otherwise read smaller slices.
    if count != Some(packed.len() as u64 / 16) || packed.len() % 16 != 0 {
        return Ok(Bulk::Split);
    }
    out.extend(packed.chunks_exact(16).map(hash16));
    Ok(Bulk::Done)
}

/// Reads the rows of `t` in `range` in one packed result.
///
/// Each row is packed as its 16-byte hash, a `1`/`0` when the server says
/// whether it is used, then `a` (attachment name), `f` (filepath) or `b`
/// (neither), and for `a` and `f` the value's byte length in decimal, `:`,
/// and the value.
fn rows_in(
    conn: &mut Conn,
    t: &ExternalTable,
    simple: bool,
    force_used: bool,
    range: HashRange,
    add: &mut dyn FnMut(RawRow<'_>),
) -> Result<Bulk, CleanupError> {
    let marked = t.in_scope && !simple && !force_used;
    let used = if marked {
        format!("IF({}, '1', '0'), ", t.used_expr())
    } else {
        String::new()
    };
    let sql = format!(
        "SELECT COUNT(*), GROUP_CONCAT(e.hash, {used}COALESCE(\
         CONCAT('a', LENGTH({att}), ':', {att}), CONCAT('f', LENGTH({fp}), ':', {fp}), 'b') SEPARATOR '') \
         FROM {} e WHERE {}",
        t.qualified(),
        range.condition("e.hash"),
        att = utf8_col(t, "attachment_name"),
        fp = utf8_col(t, "filepath"),
    );
    let Some(vals) = bulk_query(conn, &sql, &format!("reading {}", t.qualified()))? else {
        return Ok(Bulk::Gone);
    };
    let Some(count) = as_u64(vals.first()) else {
        return Ok(Bulk::Split);
    };
    if count == 0 {
        return Ok(Bulk::Done);
    }
    let Some(Value::Bytes(packed)) = vals.get(1) else {
        return Ok(Bulk::Split);
    };
    // Check the whole packing before using any of it.
    let default_used = (!t.in_scope || force_used).then_some(true);
    let Some(rows) = unpack(packed, marked, default_used) else {
        return Ok(Bulk::Split);
    };
    if rows.len() as u64 != count {
        return Ok(Bulk::Split);
    }
    for row in rows {
        add(row);
    }
    Ok(Bulk::Done)
}

/// Splits a packed result ([`rows_in`]) into rows; `None` unless it parses
/// exactly to its end.
fn unpack(mut b: &[u8], marked: bool, default_used: Option<bool>) -> Option<Vec<RawRow<'_>>> {
    let mut rows = Vec::with_capacity(b.len() / 48);
    while !b.is_empty() {
        let hash = hash16(b.get(..16)?);
        b = &b[16..];
        let used = if marked {
            let (&m, rest) = b.split_first()?;
            b = rest;
            match m {
                b'1' => Some(true),
                b'0' => Some(false),
                _ => return None,
            }
        } else {
            default_used
        };
        let (&kind, rest) = b.split_first()?;
        b = rest;
        let value = if kind == b'b' {
            &[][..]
        } else {
            let colon = b.iter().take(11).position(|&c| c == b':')?;
            let digits = &b[..colon];
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let n: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
            let v = b.get(colon + 1..colon + 1 + n)?;
            b = &b[colon + 1 + n..];
            v
        };
        let (attachment, filepath) = match kind {
            // An empty attachment name leaves the filepath deciding, and it was not sent.
            b'a' if value.is_empty() => return None,
            b'a' => (Some(value), None),
            b'f' => (None, Some(value)),
            b'b' => (None, None),
            _ => return None,
        };
        rows.push(RawRow {
            hash,
            attachment,
            filepath,
            used,
        });
    }
    Some(rows)
}

/// Reads the rows of `t` in `range` one result row at a time (the fallback
/// when a slice cannot be packed, e.g. a value longer than the packing allows).
#[allow(clippy::too_many_arguments)]
fn rows_one_by_one(
    conn: &mut Conn,
    i: usize,
    t: &ExternalTable,
    store: &Store,
    simple: bool,
    force_used: bool,
    range: HashRange,
    out: &mut StoreRows,
) -> Result<Bulk, CleanupError> {
    let mut referenced: Vec<[u8; 16]> = Vec::new();
    if t.in_scope && simple {
        for fk in &t.refs {
            // A referencing table dropped meanwhile references nothing.
            distinct_values(conn, fk, range, &mut referenced)?;
        }
        referenced.sort_unstable();
        referenced.dedup();
    }
    let used_col = match (t.in_scope && !force_used, simple) {
        (false, _) => ", 1".to_owned(),
        (true, true) => String::new(),
        (true, false) => format!(", {}", t.used_expr()),
    };
    let sql = format!(
        "SELECT e.hash, e.attachment_name, e.filepath{used_col} FROM {} e WHERE {}",
        t.qualified(),
        range.condition("e.hash")
    );
    let what = format!("reading {}", t.qualified());
    let result = match spyglass_db::retrying!(conn.query_iter(&sql)) {
        Ok(r) => r,
        Err(e) if is_gone(&e) => return Ok(Bulk::Gone),
        Err(e) => return Err(CleanupError::Db(DbError::query(what, e))),
    };
    for row in result {
        let row = row.map_err(|e| CleanupError::Db(DbError::query(what.clone(), e)))?;
        let mut vals = row.unwrap().into_iter();
        let hash = match vals.next() {
            Some(Value::Bytes(b)) => hash16(&b),
            _ => [0u8; 16],
        };
        let att = match vals.next() {
            Some(Value::Bytes(b)) => Some(b),
            _ => None,
        };
        let fp = match vals.next() {
            Some(Value::Bytes(b)) => Some(b),
            _ => None,
        };
        let used = match vals.next() {
            Some(v) => !matches!(text(v).as_str(), "0"),
            None => referenced.binary_search(&hash).is_ok(),
        };
        let row = RawRow {
            hash,
            attachment: att.as_deref(),
            filepath: fp.as_deref(),
            used: Some(used),
        };
        add_row(out, i, t, store, &row, used);
    }
    Ok(Bulk::Done)
}

/// The path, relative to the store, of the file a row stands for.
fn row_rel<'a>(t: &ExternalTable, store: &Store, row: &RawRow<'a>) -> std::borrow::Cow<'a, [u8]> {
    match (row.attachment, row.filepath) {
        (None, Some(fp)) if !fp.is_empty() && fast_normal(fp) => std::borrow::Cow::Borrowed(fp),
        (att, fp) => {
            let att = att.map(String::from_utf8_lossy);
            let fp = fp.map(String::from_utf8_lossy);
            std::borrow::Cow::Owned(
                paths::row_path(
                    &t.schema,
                    &row.hash,
                    att.as_deref(),
                    fp.as_deref(),
                    &store.subfolding,
                )
                .into_bytes(),
            )
        }
    }
}

/// Records that a row of table `i` names the `filepath` `fp` (used or not:
/// unused rows are counted by [`StoreRows::finish`]).
fn add_path(out: &mut StoreRows, i: usize, t: &ExternalTable, fp: &[u8]) {
    if fast_normal(fp) {
        push_track(out, i, t, fp);
    } else {
        let rel = paths::normalize(&String::from_utf8_lossy(fp));
        push_track(out, i, t, rel.as_bytes());
    }
}

/// Records a path, copied into the spill buffer.
fn push_track(out: &mut StoreRows, i: usize, t: &ExternalTable, rel: &[u8]) {
    let loc = out.spill.len() as u64;
    out.spill.extend_from_slice(rel);
    push_track_at(out, i, t, rel, loc);
}

/// Records a path already stored at `loc`.
fn push_track_at(out: &mut StoreRows, i: usize, t: &ExternalTable, rel: &[u8], loc: u64) {
    out.rows += 1;
    if t.in_scope {
        out.rows_in_scope += 1;
    }
    out.tracks.push(Track {
        fp: fingerprint(rel),
        loc,
        len: rel.len() as u32,
        table: i as u32,
        in_scope_rows: u16::from(t.in_scope),
        unused_rows: 0,
        out_of_scope: !t.in_scope,
        seen: Default::default(),
    });
}

/// Records one row of table `i`.
fn add_row(
    out: &mut StoreRows,
    i: usize,
    t: &ExternalTable,
    store: &Store,
    row: &RawRow<'_>,
    is_used: bool,
) {
    let rel = row_rel(t, store, row);
    push_track(out, i, t, &rel);
    if t.in_scope && !is_used {
        out.unused.push(UnusedRow {
            table: i as u32,
            hash: row.hash,
            rel: String::from_utf8_lossy(&rel).into_owned(),
        });
    }
}

/// The first 16 bytes (DataJoint hashes are `binary(16)`).
fn hash16(b: &[u8]) -> [u8; 16] {
    let mut h = [0u8; 16];
    let n = b.len().min(16);
    h[..n].copy_from_slice(&b[..n]);
    h
}

/// True when a `filepath` value is already in [`paths::normalize`]d form.
fn fast_normal(fp: &[u8]) -> bool {
    let (Some(&first), Some(&last)) = (fp.first(), fp.last()) else {
        return false;
    };
    first != b'/'
        && last != b'/'
        && !fp.windows(2).any(|w| w == b"//")
        && !fp.starts_with(b"./")
        && !fp.windows(3).any(|w| w == b"/./")
        && !fp.ends_with(b"/.")
        && fp != b"."
}

/// An in-scope `analysis_nwbfile` row nothing downstream references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanRow {
    /// Schema of its `analysis_nwbfile`.
    pub schema: String,
    /// `analysis_file_name`.
    pub key: String,
}

/// Orphan `analysis_nwbfile` rows of every in-scope analysis table
/// ([`orphans_of`] each).
pub fn orphan_rows(conn: &mut Conn, cat: &Catalog) -> Result<Vec<OrphanRow>, CleanupError> {
    let mut out = Vec::new();
    for t in &cat.analysis {
        out.extend(orphans_of(conn, t)?);
    }
    Ok(out)
}

/// The orphan rows of one `analysis_nwbfile` table, sorted by name.
///
/// Read in bulk, not with an `EXISTS` per row: one streamed query per
/// downstream table for its key column, kept as sorted 64-bit
/// [`fingerprint`]s (8 bytes a value, nothing else), then one streamed
/// query for the names, each looked up there; only the names found nowhere
/// are kept. Both reads see one snapshot.
///
/// The answer is exact when every downstream value matched some name: the
/// primary key is unique under the column's collation, so a value equal in
/// bytes to a name references that name and no other. A value that matches
/// no name by bytes (one equal only under the collation, `'A.nwb'` for
/// `'a.nwb'` or a trailing space, or one the foreign key checks let in) makes
/// the table be read again the exact way, with the server's comparison. Two
/// names sharing a fingerprint (about 1 in 10^7 at a million) can only hide
/// an orphan, never report a referenced row; apply re-checks every row
/// anyway. A table dropped meanwhile reports nothing.
pub fn orphans_of(conn: &mut Conn, t: &AnalysisTable) -> Result<Vec<OrphanRow>, CleanupError> {
    let plain = t
        .downstream
        .iter()
        .all(|fk| fk.columns.len() == 1 && fk.columns[0].1 == "analysis_file_name");
    if !plain {
        return orphans_exact(conn, t);
    }
    let mut tries = 1;
    let found = loop {
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            .map_err(q("starting a read-only snapshot for the orphan rows"))?;
        let result = orphans_bulk(conn, t);
        let end = conn
            .query_drop("COMMIT")
            .map_err(q("ending the orphan rows' snapshot"));
        match result {
            // A deadlock with concurrent DDL: the server undid the read; read again.
            Err(CleanupError::Db(e))
                if e.is_transient() && tries < spyglass_db::TRANSIENT_TRIES =>
            {
                std::thread::sleep(spyglass_db::transient_pause(tries));
                tries += 1;
            }
            result => {
                let found = result?;
                end?;
                break found;
            }
        }
    };
    match found {
        Some(Some(keys)) => Ok(keys
            .into_iter()
            .map(|key| OrphanRow {
                schema: t.schema.clone(),
                key,
            })
            .collect()),
        Some(None) => orphans_exact(conn, t),
        None => Ok(Vec::new()),
    }
}

/// [`orphans_of`]'s bulk read: `None` when a table is gone, `Some(None)`
/// when some downstream value matched no name (read the exact way).
fn orphans_bulk(
    conn: &mut Conn,
    t: &AnalysisTable,
) -> Result<Option<Option<Vec<String>>>, CleanupError> {
    let mut refs: Vec<u64> = Vec::new();
    for fk in &t.downstream {
        let col = ident(&fk.columns[0].0);
        let sql = format!(
            "SELECT {col} FROM {} WHERE {col} IS NOT NULL",
            qualified(&fk.schema, &fk.table)
        );
        let what = format!(
            "reading {}.{}.{} (downstream of {}.analysis_nwbfile)",
            fk.schema, fk.table, fk.columns[0].0, t.schema
        );
        if !stream_values(conn, &sql, &what, |v| refs.push(fingerprint(v)))? {
            return Ok(None);
        }
    }
    refs.sort_unstable();
    refs.dedup();
    let mut matched = vec![false; refs.len()];
    let mut orphans = Vec::new();
    let sql = format!(
        "SELECT analysis_file_name FROM {} ORDER BY analysis_file_name",
        qualified(&t.schema, "analysis_nwbfile")
    );
    let what = format!("reading {}.analysis_nwbfile", t.schema);
    let read = stream_values(conn, &sql, &what, |name| {
        match refs.binary_search(&fingerprint(name)) {
            Ok(i) => matched[i] = true,
            Err(_) => orphans.push(String::from_utf8_lossy(name).into_owned()),
        }
    })?;
    if !read {
        return Ok(None);
    }
    if matched.iter().all(|&m| m) {
        Ok(Some(Some(orphans)))
    } else {
        Ok(Some(None))
    }
}

/// Runs `sql` (one column) streamed, calling `each` with every non-NULL
/// value's bytes; false when its table is gone.
fn stream_values(
    conn: &mut Conn,
    sql: &str,
    what: &str,
    mut each: impl FnMut(&[u8]),
) -> Result<bool, CleanupError> {
    let result = match spyglass_db::retrying!(conn.query_iter(sql)) {
        Ok(r) => r,
        Err(e) if is_gone(&e) => return Ok(false),
        Err(e) => return Err(CleanupError::Db(DbError::query(what, e))),
    };
    for row in result {
        let row = row.map_err(|e| CleanupError::Db(DbError::query(what, e)))?;
        if let Some(Value::Bytes(b)) = row.unwrap().first() {
            each(b);
        }
    }
    Ok(true)
}

/// [`orphans_of`] with the server comparing: a `NOT EXISTS` per row.
fn orphans_exact(conn: &mut Conn, t: &AnalysisTable) -> Result<Vec<OrphanRow>, CleanupError> {
    let sql = format!(
        "SELECT a.analysis_file_name FROM {} a WHERE {} ORDER BY a.analysis_file_name",
        qualified(&t.schema, "analysis_nwbfile"),
        t.orphan_condition()
    );
    let Some(keys) = query_opt::<String>(conn, sql, || {
        format!("reading orphan rows of {}.analysis_nwbfile", t.schema)
    })?
    else {
        return Ok(Vec::new());
    };
    Ok(keys
        .into_iter()
        .map(|key| OrphanRow {
            schema: t.schema.clone(),
            key,
        })
        .collect())
}

/// A rule naming columns that hold folder paths in one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirRule {
    /// Column name, e.g. `sorting_path`.
    pub column: String,
    /// Optional `schema.table` glob (`*` wildcard); any table when `None`.
    pub table: Option<String>,
}

/// Folder paths named by rows, for one directory.
#[derive(Debug, Clone, Default)]
pub struct DirRows {
    /// Normalized absolute paths.
    pub paths: HashSet<String>,
    /// Final path components (a folder whose name a row names is kept, even if
    /// the base directory has moved since).
    pub names: HashSet<String>,
    /// The columns read.
    pub columns: Vec<DirColumn>,
}

/// Reads every column the rules name (all schemas: rows anywhere protect folders).
pub fn dir_rows(conn: &mut Conn, rules: &[DirRule]) -> Result<DirRows, CleanupError> {
    let system = system_schemas();
    let mut out = DirRows::default();
    if rules.is_empty() {
        return Ok(out);
    }
    let names: Vec<String> = rules.iter().map(|r| string(&r.column)).collect();
    let cols: Vec<Row> = conn
        .query(format!(
            "SELECT table_schema, table_name, column_name FROM information_schema.COLUMNS \
             WHERE table_schema NOT IN {system} AND column_name IN ({}) ORDER BY 1, 2, 3",
            names.join(", ")
        ))
        .map_err(q("listing folder-path columns"))?;
    for row in cols {
        let v = texts(row);
        let (schema, table, column) = (v[0].clone(), v[1].clone(), v[2].clone());
        let full = format!("{schema}.{table}");
        if !rules
            .iter()
            .any(|r| r.column == column && r.table.as_deref().is_none_or(|g| glob(g, &full)))
        {
            continue;
        }
        let sql = format!(
            "SELECT DISTINCT {} FROM {}",
            ident(&column),
            qualified(&schema, &table)
        );
        let Some(values) =
            query_opt::<Option<String>>(conn, sql, || format!("reading {full}.{column}"))?
        else {
            continue;
        };
        for v in values.into_iter().flatten() {
            let n = paths::normalize(&v);
            if let Some(name) = n.rsplit('/').next().filter(|s| !s.is_empty()) {
                out.names.insert(name.to_owned());
            }
            out.paths.insert(format!("/{n}"));
        }
        out.columns.push(DirColumn {
            schema,
            table,
            column,
        });
    }
    Ok(out)
}

// ---- re-checks and writes used by apply and restore ----
//
// Crate-private on purpose: only `apply` (after its guards) and `quarantine`
// (restore) may delete or write rows.

/// DataJoint's key for a `filepath` row: the MD5 of its path relative to the
/// store (datajoint-python's `uuid_from_buffer(init_string=relative_filepath)`).
pub fn filepath_hash(rel: &str) -> [u8; 16] {
    use md5::{Digest, Md5};
    Md5::digest(rel.as_bytes()).into()
}

/// The schemas that have `~external_<store>` now (listed afresh, so a schema
/// created since the scan counts too).
pub(crate) fn external_schemas(conn: &mut Conn, store: &str) -> Result<Vec<String>, CleanupError> {
    let system = system_schemas();
    let sql = format!(
        "SELECT table_schema FROM information_schema.TABLES WHERE table_name = {} \
         AND table_schema NOT IN {system} ORDER BY 1",
        string(&format!("~external_{store}"))
    );
    spyglass_db::retrying!(conn.query(&sql)).map_err(q("listing ~external tables"))
}

/// A file of a store to ask about: its path relative to the store, and the
/// one row (schema, hash) that does not count (the row being deleted with it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe<'a> {
    /// Path relative to the store.
    pub rel: &'a str,
    /// A row that does not count.
    pub own: Option<(&'a str, [u8; 16])>,
}

/// For each probe, whether some `~external_<store>` row of any schema names
/// its file now. Rows are found by primary key: DataJoint keys a filepath row
/// by the MD5 of the path ([`filepath_hash`]) and a blob or attachment by the
/// hash in its file name. With `by_filepath` the `filepath` column is compared
/// too (rows written by other tools with another key; a full scan of each
/// table). Uncommitted rows count when the session reads uncommitted.
/// `schemas` are those with `~external_<store>` ([`external_schemas`]).
pub(crate) fn named_now(
    conn: &mut Conn,
    store: &Store,
    schemas: &[String],
    probes: &[Probe<'_>],
    by_filepath: bool,
) -> Result<Vec<bool>, CleanupError> {
    let mut named = vec![false; probes.len()];
    if probes.is_empty() {
        return Ok(named);
    }
    let mut by_md5: HashMap<[u8; 16], Vec<usize>> = HashMap::new();
    let mut by_uuid: HashMap<(String, [u8; 16]), Vec<usize>> = HashMap::new();
    let mut by_rel: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, p) in probes.iter().enumerate() {
        by_md5.entry(filepath_hash(p.rel)).or_default().push(i);
        if let Some(k) = paths::parse_uuid_path(p.rel, &store.subfolding) {
            by_uuid.entry(k).or_default().push(i);
        }
        by_rel.entry(p.rel).or_default().push(i);
    }
    let md5_list: Vec<String> = by_md5
        .keys()
        .map(|h| format!("X'{}'", paths::hex(h)))
        .collect();
    let rel_list: Vec<String> = by_rel.keys().map(|r| string(r)).collect();
    let hit = |schema: &str, hash: &[u8], rel: Option<&str>, named: &mut Vec<bool>| {
        let Ok(h) = <[u8; 16]>::try_from(hash) else {
            return;
        };
        let mut mark = |idx: &Vec<usize>| {
            for &i in idx {
                if probes[i].own != Some((schema, h)) {
                    named[i] = true;
                }
            }
        };
        match rel {
            Some(r) => {
                if let Some(idx) = by_rel.get(paths::normalize(r).as_str()) {
                    mark(idx);
                }
            }
            None => {
                if let Some(idx) = by_md5.get(&h) {
                    mark(idx);
                }
                if let Some(idx) = by_uuid.get(&(schema.to_owned(), h)) {
                    mark(idx);
                }
            }
        }
    };
    // One round trip for every schema: `SELECT k, hash, filepath ... UNION ALL ...`;
    // a table dropped meanwhile makes it fail, then each is asked alone.
    let parts: Vec<(usize, String)> = schemas
        .iter()
        .enumerate()
        .flat_map(|(k, schema)| {
            let t = qualified(schema, &format!("~external_{}", store.name));
            let mut keys = md5_list.clone();
            keys.extend(
                by_uuid
                    .keys()
                    .filter(|(db, _)| db == schema)
                    .map(|(_, h)| format!("X'{}'", paths::hex(h))),
            );
            let mut v = vec![(
                k,
                format!(
                    "SELECT {k}, hash, NULL FROM {t} WHERE hash IN ({})",
                    keys.join(", ")
                ),
            )];
            if by_filepath {
                v.push((
                    k,
                    format!(
                        "SELECT {k}, hash, filepath FROM {t} WHERE filepath IN ({})",
                        rel_list.join(", ")
                    ),
                ));
            }
            v
        })
        .collect();
    if parts.is_empty() {
        return Ok(named);
    }
    type Hit = (usize, Vec<u8>, Option<String>);
    let all = parts
        .iter()
        .map(|(_, q)| q.as_str())
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let hits: Vec<Hit> = match spyglass_db::retrying!(conn.query(&all)) {
        Ok(h) => h,
        Err(e) if is_gone(&e) => {
            let mut h = Vec::new();
            for (k, sql) in &parts {
                let rows: Vec<Hit> = query_opt(conn, sql.clone(), || {
                    format!("re-checking {}.~external_{}", schemas[*k], store.name)
                })?
                .unwrap_or_default();
                h.extend(rows);
            }
            h
        }
        Err(e) => {
            return Err(CleanupError::Db(DbError::query(
                format!("re-checking the ~external_{} tables", store.name),
                e,
            )))
        }
    };
    for (k, h, fp) in hits {
        if let Some(schema) = schemas.get(k) {
            hit(schema, &h, fp.as_deref(), &mut named);
        }
    }
    Ok(named)
}

/// Of `hashes`, the rows of `table` that exist and that nothing references now.
pub(crate) fn unused_now(
    conn: &mut Conn,
    table: &ExternalTable,
    hashes: &[[u8; 16]],
) -> Result<HashSet<[u8; 16]>, CleanupError> {
    if hashes.is_empty() {
        return Ok(HashSet::new());
    }
    let list: Vec<String> = hashes
        .iter()
        .map(|h| format!("X'{}'", paths::hex(h)))
        .collect();
    let sql = format!(
        "SELECT e.hash FROM {} e WHERE e.hash IN ({}) AND NOT {}",
        table.qualified(),
        list.join(", "),
        table.used_expr()
    );
    // A table of the used test (or the rows' own) was dropped since the
    // scan: not provably unused now, so the items are left alone.
    let rows: Vec<Vec<u8>> = query_opt(conn, sql, || {
        format!("re-checking rows of {}", table.qualified())
    })?
    .unwrap_or_default();
    Ok(rows
        .into_iter()
        .filter_map(|h| <[u8; 16]>::try_from(h.as_slice()).ok())
        .collect())
}

/// Full rows of `table` by hash, so restore can put them back.
pub(crate) fn read_rows(
    conn: &mut Conn,
    table: &ExternalTable,
    hashes: &[[u8; 16]],
) -> Result<HashMap<[u8; 16], RowValues>, CleanupError> {
    let mut out = HashMap::new();
    if hashes.is_empty() {
        return Ok(out);
    }
    let list: Vec<String> = hashes
        .iter()
        .map(|h| format!("X'{}'", paths::hex(h)))
        .collect();
    let sql = format!(
        "SELECT * FROM {} WHERE hash IN ({})",
        table.qualified(),
        list.join(", ")
    );
    let rows: Vec<Row> = spyglass_db::retrying!(conn.query(&sql)).map_err(|e| {
        CleanupError::Db(DbError::query(
            format!("saving rows of {}", table.qualified()),
            e,
        ))
    })?;
    for row in rows {
        let values = row_values(row);
        let key = values
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case("hash"))
            .and_then(|(_, v)| v.as_deref())
            .and_then(|b| <[u8; 16]>::try_from(b).ok());
        if let Some(k) = key {
            out.insert(k, values);
        }
    }
    Ok(out)
}

/// Deletes the rows of `table` with these hashes in one transaction, all or
/// none: `Ok(false)` (nothing deleted) when one is gone or referenced now (the
/// foreign keys DataJoint declares are `ON DELETE RESTRICT`).
pub(crate) fn delete_external_rows(
    conn: &mut Conn,
    table: &ExternalTable,
    hashes: &[[u8; 16]],
) -> Result<bool, CleanupError> {
    if hashes.is_empty() {
        return Ok(true);
    }
    let list: Vec<String> = hashes
        .iter()
        .map(|h| format!("X'{}'", paths::hex(h)))
        .collect();
    let what = || format!("deleting rows of {}", table.qualified());
    conn.query_drop("START TRANSACTION")
        .map_err(|e| CleanupError::Db(DbError::query(what(), e)))?;
    let deleted = conn.query_drop(format!(
        "DELETE FROM {} WHERE hash IN ({})",
        table.qualified(),
        list.join(", ")
    ));
    let all = matches!(deleted, Ok(()) if conn.affected_rows() == hashes.len() as u64);
    let end = if all { "COMMIT" } else { "ROLLBACK" };
    conn.query_drop(end)
        .map_err(|e| CleanupError::Db(DbError::query(what(), e)))?;
    Ok(all)
}

/// A row as (column, raw value or NULL) pairs.
pub type RowValues = Vec<(String, Option<Vec<u8>>)>;

/// The full row, column names and values, so restore can put it back.
pub(crate) fn read_row(
    conn: &mut Conn,
    table_sql: &str,
    condition: &str,
) -> Result<Option<RowValues>, CleanupError> {
    let sql = format!("SELECT * FROM {table_sql} WHERE {condition}");
    let row: Option<Row> = conn
        .query_first(&sql)
        .map_err(|e| CleanupError::Db(DbError::query(format!("saving a row of {table_sql}"), e)))?;
    Ok(row.map(row_values))
}

fn row_values(row: Row) -> RowValues {
    let names: Vec<String> = row
        .columns_ref()
        .iter()
        .map(|c| c.name_str().into_owned())
        .collect();
    let vals = row.unwrap().into_iter().map(|v| match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(b),
        other => Some(other.as_sql(true).into_bytes()),
    });
    names.into_iter().zip(vals).collect()
}

/// Inserts a saved row again (restore).
pub(crate) fn insert_row(
    conn: &mut Conn,
    table_sql: &str,
    row: &[(String, Option<Vec<u8>>)],
) -> Result<(), CleanupError> {
    insert_row_as(conn, "INSERT", table_sql, row)
}

/// Inserts a saved row again unless a row with its key exists (apply putting
/// an item back).
pub(crate) fn insert_row_ignore(
    conn: &mut Conn,
    table_sql: &str,
    row: &[(String, Option<Vec<u8>>)],
) -> Result<(), CleanupError> {
    insert_row_as(conn, "INSERT IGNORE", table_sql, row)
}

fn insert_row_as(
    conn: &mut Conn,
    verb: &str,
    table_sql: &str,
    row: &[(String, Option<Vec<u8>>)],
) -> Result<(), CleanupError> {
    let cols: Vec<String> = row.iter().map(|(c, _)| ident(c)).collect();
    let marks = vec!["?"; row.len()].join(", ");
    let params: Vec<Value> = row
        .iter()
        .map(|(_, v)| v.clone().map(Value::Bytes).unwrap_or(Value::NULL))
        .collect();
    conn.exec_drop(
        format!(
            "{verb} INTO {table_sql} ({}) VALUES ({marks})",
            cols.join(", ")
        ),
        params,
    )
    .map_err(|e| CleanupError::Db(DbError::query(format!("restoring a row of {table_sql}"), e)))
}

/// Deletes an `~external` row. The foreign keys DataJoint declares
/// (`ON DELETE RESTRICT`) make this fail if the row became referenced.
pub(crate) fn delete_external_row(
    conn: &mut Conn,
    table: &ExternalTable,
    hash: &[u8; 16],
) -> Result<u64, CleanupError> {
    conn.query_drop(format!(
        "DELETE FROM {} WHERE hash = X'{}'",
        table.qualified(),
        paths::hex(hash)
    ))
    .map_err(|e| {
        CleanupError::Db(DbError::query(
            format!("deleting a row of {}", table.qualified()),
            e,
        ))
    })?;
    Ok(conn.affected_rows())
}

/// True when the `analysis_nwbfile` row still exists and nothing downstream references it.
pub(crate) fn still_orphan(
    conn: &mut Conn,
    table: &AnalysisTable,
    key: &str,
) -> Result<bool, CleanupError> {
    let sql = format!(
        "SELECT COUNT(*) FROM {} a WHERE a.analysis_file_name = {} AND {}",
        qualified(&table.schema, "analysis_nwbfile"),
        string(key),
        table.orphan_condition()
    );
    let n: Option<u64> = conn.query_first(sql).map_err(|e| {
        CleanupError::Db(DbError::query(
            format!("re-checking {}.analysis_nwbfile", table.schema),
            e,
        ))
    })?;
    Ok(n == Some(1))
}

/// Deletes an `analysis_nwbfile` row (restricted by downstream foreign keys).
pub(crate) fn delete_analysis_row(
    conn: &mut Conn,
    schema: &str,
    key: &str,
) -> Result<u64, CleanupError> {
    conn.query_drop(format!(
        "DELETE FROM {} WHERE analysis_file_name = {}",
        qualified(schema, "analysis_nwbfile"),
        string(key)
    ))
    .map_err(|e| {
        CleanupError::Db(DbError::query(
            format!("deleting a row of {schema}.analysis_nwbfile"),
            e,
        ))
    })?;
    Ok(conn.affected_rows())
}

/// True when some row now names `path` (or a folder with its name).
pub(crate) fn dir_tracked_now(
    conn: &mut Conn,
    columns: &[DirColumn],
    path: &str,
    name: &str,
) -> Result<bool, CleanupError> {
    for c in columns {
        let col = ident(&c.column);
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE {col} = {} OR {col} = {} OR {col} LIKE {} OR {col} LIKE {}",
            qualified(&c.schema, &c.table),
            string(path),
            string(&format!("{path}/")),
            string(&format!("%/{}", like_escape(name))),
            string(&format!("%/{}/", like_escape(name))),
        );
        let n: Vec<u64> = query_opt(conn, sql, || {
            format!("re-checking {}.{}", c.schema, c.table)
        })?
        .unwrap_or_default();
        let n = n.first().copied();
        if n.unwrap_or(0) > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_agrees_with_normalize() {
        for p in [
            "a/b.nwb", "a//b", "/a/b", "a/b/", "./a", "a/./b", "a/.", ".", "a.b/c..d", "..a/b",
        ] {
            if fast_normal(p.as_bytes()) {
                assert_eq!(paths::normalize(p), p, "{p}");
            }
        }
        assert!(fast_normal(b"j16/j16_A.nwb"));
    }

    fn table(schema: &str, in_scope: bool) -> ExternalTable {
        ExternalTable {
            schema: schema.into(),
            store: "analysis".into(),
            refs: Vec::new(),
            in_scope,
            rows_estimate: 0,
            utf8_stored: true,
        }
    }

    fn unused(rows: &mut StoreRows, i: u32, rel: &str) {
        rows.unused.push(UnusedRow {
            table: i,
            hash: [0; 16],
            rel: rel.into(),
        });
    }

    #[test]
    fn parts_seal_merge_and_count_unused_rows() {
        let (a_t, b_t, out_t) = (table("a", true), table("b", true), table("o", false));
        // Reader 1: schema a names x/1 (unused) and x/2 (used).
        let mut r1 = StoreRows::default();
        add_path(&mut r1, 0, &a_t, b"x/2.nwb");
        add_path(&mut r1, 0, &a_t, b"x//1.nwb");
        unused(&mut r1, 0, "x/1.nwb");
        // Reader 2: schema b names x/1 too (used), x/3 (unused), x/4 (unused);
        // an out-of-scope schema names x/4.
        let mut r2 = StoreRows::default();
        add_path(&mut r2, 1, &b_t, b"x/3.nwb");
        add_path(&mut r2, 1, &b_t, b"x/1.nwb");
        add_path(&mut r2, 1, &b_t, b"x/4.nwb");
        add_path(&mut r2, 2, &out_t, b"x/4.nwb");
        unused(&mut r2, 1, "x/3.nwb");
        unused(&mut r2, 1, "x/4.nwb");
        r1.seal();
        r2.seal();
        assert_eq!(r2.tracks.len(), 3, "two rows naming x/4 fold into one");
        let mut all = StoreRows::merge(vec![r1, r2]);
        all.finish();
        assert_eq!((all.rows, all.rows_in_scope), (6, 5));
        assert_eq!(all.tracks.len(), 4);
        assert!(all.tracks.windows(2).all(|w| w[0].fp < w[1].fp));
        let get = |p: &str| all.get(p.as_bytes()).unwrap();
        assert_eq!(
            all.path_of(get("x/1.nwb")),
            b"x/1.nwb",
            "filepath normalized"
        );
        assert!(
            get("x/1.nwb").used(),
            "an unused row in a does not outvote b's used row"
        );
        assert!(get("x/2.nwb").used() && get("x/2.nwb").in_scope_used());
        assert!(!get("x/3.nwb").used() && !get("x/3.nwb").in_scope_used());
        assert!(get("x/4.nwb").used(), "out-of-scope rows protect");
        assert!(
            !get("x/4.nwb").in_scope_used(),
            "but do not make it dangling"
        );
        assert!(all.get(b"x/5.nwb").is_none());
        // Which tables name each path (the report's sharing), whichever part
        // and fold saw them: x/4 is named by b (in scope, kept) and o.
        let tables = |p: &str| {
            let mut t: Vec<u32> = all.tables_of(get(p)).collect();
            t.sort();
            t
        };
        assert_eq!(tables("x/1.nwb"), [0, 1], "merged across parts");
        assert_eq!(tables("x/2.nwb"), [0]);
        assert_eq!(tables("x/3.nwb"), [1]);
        assert_eq!(tables("x/4.nwb"), [1, 2], "folded within a part");
        assert_eq!(get("x/4.nwb").table, 1, "the in-scope table is kept");
        assert_ne!(fingerprint(b"ab"), fingerprint(b"ba"));
        assert_ne!(fingerprint(b"a"), fingerprint(b"a\0"));
    }

    #[test]
    fn tracks_point_into_kept_results_across_a_merge() {
        let (a_t, b_t) = (table("a", true), table("b", true));
        let part = |t: &ExternalTable, i: usize, packed: &[u8], spill: &[u8]| {
            let mut r = StoreRows::default();
            let buf = r.bufs.len() as u64 + 1;
            let mut start = 0u64;
            for p in packed.split(|&c| c == 0) {
                push_track_at(&mut r, i, t, p, (buf << LOC_BITS) | start);
                start += p.len() as u64 + 1;
            }
            r.bufs.push(packed.to_vec());
            add_path(&mut r, i, t, spill);
            r.seal();
            r
        };
        let r1 = part(&a_t, 0, b"a/1.nwb\0a/2.nwb\0a/3.nwb", b"x//s1.nwb");
        let r2 = part(&b_t, 1, b"b/1.nwb\0a/2.nwb", b"y/./s2.nwb");
        let r3 = part(&b_t, 1, b"c/1.nwb", b"z/s3.nwb");
        let all = StoreRows::merge(vec![r1, r2, r3]);
        let mut paths: Vec<String> = all
            .tracks
            .iter()
            .map(|t| String::from_utf8(all.path_of(t).to_vec()).unwrap())
            .collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "a/1.nwb", "a/2.nwb", "a/3.nwb", "b/1.nwb", "c/1.nwb", "x/s1.nwb", "y/s2.nwb",
                "z/s3.nwb"
            ]
        );
        assert_eq!(all.get(b"a/2.nwb").unwrap().in_scope_rows, 2);
        assert_eq!(all.rows, 9);
    }

    #[test]
    fn hash_ranges_cover_everything_once() {
        assert_eq!(HashRange::ALL.condition("h"), "1");
        let parts = HashRange::ALL.split(3);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].lo, 0);
        assert_eq!(parts[2].hi, 1 << 16);
        assert!(parts.windows(2).all(|w| w[0].hi == w[1].lo));
        assert_eq!(
            parts[0].condition("h"),
            format!("h < X'5555{}'", "0".repeat(28))
        );
        assert!(parts[1].condition("h").contains(" AND "));
        let one = HashRange { lo: 7, hi: 8 };
        assert_eq!(
            one.split(8),
            vec![one],
            "a single prefix cannot split further"
        );
        let t = ExternalTable {
            rows_estimate: 10_000_000,
            ..table("a", true)
        };
        assert!(chunks(&t, 1 << 24).len() > 100);
        assert_eq!(chunks(&table("a", true), 1 << 24), vec![HashRange::ALL]);
    }

    #[test]
    fn packed_rows_parse_exactly_or_not_at_all() {
        let h = [7u8; 16];
        let mut b = Vec::new();
        b.extend_from_slice(&h);
        b.extend_from_slice(b"f9:a/b/c.nwb");
        b.extend_from_slice(&h);
        b.extend_from_slice(b"a3:x.y");
        b.extend_from_slice(&h);
        b.push(b'b');
        let rows = unpack(&b, false, None).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].filepath, Some(&b"a/b/c.nwb"[..]));
        assert_eq!(rows[1].attachment, Some(&b"x.y"[..]));
        assert!(rows[2].attachment.is_none() && rows[2].filepath.is_none());
        // Cut short, a wrong length, or a stray byte: rejected.
        assert!(unpack(&b[..b.len() - 5], false, None).is_none());
        let mut wrong = b.clone();
        wrong[17] = b'8';
        assert!(unpack(&wrong, false, None).is_none());
        let mut extra = b.clone();
        extra.push(b'x');
        assert!(unpack(&extra, false, None).is_none());
        // With the server's used marks.
        let mut m = Vec::new();
        m.extend_from_slice(&h);
        m.extend_from_slice(b"0f1:z");
        let rows = unpack(&m, true, None).unwrap();
        assert_eq!(rows[0].used, Some(false));
        assert!(unpack(&m, false, None).is_none());
    }

    /// The glob rules themselves are `spyglass_db::schemas`' (tested there);
    /// here: the scope uses them.
    #[test]
    fn globs() {
        assert!(Scope::all().contains("anything"));
        let s = Scope::patterns(vec!["t1_*".into(), "common_nwbfile".into()]);
        assert!(s.contains("t1_lfp") && s.contains("common_nwbfile") && !s.contains("t2_lfp"));
        // `?` is one character here too, as in [nightly] schemas (it was literal before).
        let s = Scope::patterns(vec!["lfp_v?".into()]);
        assert!(s.contains("lfp_v1") && !s.contains("lfp_v10") && !s.contains("lfp_v?x"));
    }

    #[test]
    fn used_expression_names_every_reference() {
        let t = ExternalTable {
            schema: "db".into(),
            store: "analysis".into(),
            refs: vec![ForeignKey {
                schema: "db".into(),
                table: "a b".into(),
                columns: vec![("p".into(), "hash".into())],
            }],
            in_scope: true,
            rows_estimate: 0,
            utf8_stored: true,
        };
        assert_eq!(
            t.used_expr(),
            "(EXISTS (SELECT 1 FROM `db`.`a b` r WHERE r.`p` = e.`hash`))"
        );
        assert_eq!(t.qualified(), "`db`.`~external_analysis`");
        let none = ExternalTable { refs: vec![], ..t };
        assert_eq!(none.used_expr(), "0");
        assert!(
            is_nwbfile_schema("common_nwbfile")
                && is_nwbfile_schema("t_alice_nwbfile")
                && !is_nwbfile_schema("nwbfile")
        );
    }
}
