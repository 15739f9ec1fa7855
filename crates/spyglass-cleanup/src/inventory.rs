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
    /// Schemas matching any of `patterns` (`*` matches any run of characters).
    pub fn patterns(patterns: Vec<String>) -> Self {
        Scope { patterns }
    }
    /// True when `schema` is in scope.
    pub fn contains(&self, schema: &str) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|p| glob(p, schema))
    }
}

/// `*`-only glob match.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

const SYSTEM_SCHEMAS: &str = "('mysql', 'information_schema', 'performance_schema', 'sys')";

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
    match conn.query(sql) {
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
    let tables: Vec<Row> = conn
        .query(format!(
            "SELECT table_schema, table_name, COALESCE(table_rows, 0) FROM information_schema.TABLES \
             WHERE table_type = 'BASE TABLE' AND table_schema NOT IN {SYSTEM_SCHEMAS} \
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
            cat.analysis.push(AnalysisTable { schema, downstream });
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
    /// Index into [`Catalog::externals`] of the first table naming it.
    pub table: u32,
    /// Some row naming it is referenced (or belongs to a schema out of scope).
    pub used: bool,
    /// Some in-scope, referenced row names it (missing file = dangling).
    pub in_scope_used: bool,
    /// Set by classification (from several threads) when the file is found on disk.
    pub seen: std::sync::atomic::AtomicBool,
    /// Where its path is in [`StoreRows::arena`].
    pub start: u64,
    /// Length of its path.
    pub len: u32,
}

impl Track {
    /// Whether classification found the file.
    pub fn seen(&self) -> bool {
        self.seen.load(std::sync::atomic::Ordering::Relaxed)
    }
    /// Marks the file as found.
    pub fn mark_seen(&self) {
        self.seen.store(true, std::sync::atomic::Ordering::Relaxed);
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

/// Passes a [`fingerprint`] through: it is already well mixed.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A 64-bit fingerprint of a relative path, the key of [`PathMap`].
///
/// Keys are fingerprints, not strings, so a million tracked paths cost one
/// allocation (the arena) instead of a million, and a lookup touches one
/// table slot. Two paths sharing a fingerprint (about 1 in 10^7 for a
/// million paths) would only make an untracked file look tracked, which
/// keeps it: the safe direction. Apply re-checks every item by exact path.
pub fn fingerprint(path: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = PathHasher(0x243f_6a88_85a3_08d3);
    h.write(path);
    h.add(path.len() as u64);
    // Final avalanche (splitmix64), so the low bits hashbrown uses are mixed.
    let mut z = h.0;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Path fingerprint -> what tracks it.
pub type PathMap = HashMap<u64, Track, std::hash::BuildHasherDefault<IdHasher>>;

/// Tracked paths of one store.
#[derive(Debug, Default)]
pub struct StoreRows {
    /// Path fingerprint -> what tracks it.
    pub paths: PathMap,
    /// The tracked paths, back to back ([`Track::start`], [`Track::len`]).
    pub arena: Vec<u8>,
    /// Rows (any scope) for this store.
    pub rows: u64,
    /// Rows in scope.
    pub rows_in_scope: u64,
    /// In-scope rows nothing references.
    pub unused: Vec<UnusedRow>,
}

/// Fetches every row of every `~external_<store>` table for `store`.
pub fn store_rows(
    conn: &mut Conn,
    cat: &Catalog,
    store: &Store,
) -> Result<StoreRows, CleanupError> {
    let mut out = StoreRows::default();
    for (i, t) in cat.externals.iter().enumerate() {
        if t.store == store.name {
            table_rows(conn, i, t, store, &mut out, &mut |_| {})?;
        }
    }
    Ok(out)
}

impl StoreRows {
    /// The path of a tracked entry.
    pub fn path_of(&self, t: &Track) -> &[u8] {
        let s = t.start as usize;
        &self.arena[s..s + t.len as usize]
    }

    /// What tracks `rel`, if anything.
    pub fn get(&self, rel: &[u8]) -> Option<&Track> {
        self.paths.get(&fingerprint(rel))
    }

    /// Moves the rows of another partial result (e.g. a batch read on another
    /// connection) into this one; `other` is left empty.
    pub fn absorb(&mut self, other: &mut StoreRows) {
        self.rows += std::mem::take(&mut other.rows);
        self.rows_in_scope += std::mem::take(&mut other.rows_in_scope);
        self.unused.append(&mut other.unused);
        let base = self.arena.len() as u64;
        self.arena.extend_from_slice(&other.arena);
        other.arena.clear();
        for (k, mut t) in other.paths.drain() {
            match self.paths.entry(k) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    t.start += base;
                    v.insert(t);
                }
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    let e = o.get_mut();
                    e.used |= t.used;
                    if t.seen() {
                        e.mark_seen();
                    }
                    if t.in_scope_used && !e.in_scope_used {
                        e.in_scope_used = true;
                        e.table = t.table;
                    }
                }
            }
        }
    }
}

/// Reads one `~external` table (index `i` in the catalog) into `out`.
///
/// Rows go into `out`; every [`FLUSH_ROWS`] rows, and at the end, `flush(out)`
/// is called so a caller reading several tables at once can move them into a
/// shared result while this connection keeps reading.
pub fn table_rows(
    conn: &mut Conn,
    i: usize,
    t: &ExternalTable,
    store: &Store,
    out: &mut StoreRows,
    flush: &mut dyn FnMut(&mut StoreRows),
) -> Result<(), CleanupError> {
    {
        // Which hashes are referenced: the referencing columns' distinct values,
        // read in index order, then looked up by binary search. This is several
        // times cheaper for the server than a correlated EXISTS per row, and
        // needs no more than 16 bytes per referenced object here.
        let simple = t.refs.iter().all(|fk| fk.columns.len() == 1);
        let mut referenced: Vec<[u8; 16]> = Vec::new();
        let mut gone = false;
        if t.in_scope && simple {
            for fk in &t.refs {
                let (col, _) = &fk.columns[0];
                let sql = format!(
                    "SELECT DISTINCT {c} FROM {} WHERE {c} IS NOT NULL",
                    qualified(&fk.schema, &fk.table),
                    c = ident(col)
                );
                let what = format!("reading references {}.{}.{col}", fk.schema, fk.table);
                let result = match conn.query_iter(&sql) {
                    Ok(r) => r,
                    Err(e) if is_gone(&e) => {
                        gone = true;
                        break;
                    }
                    Err(e) => return Err(CleanupError::Db(DbError::query(what, e))),
                };
                for row in result {
                    let row = row.map_err(|e| CleanupError::Db(DbError::query(what.clone(), e)))?;
                    if let Some(Value::Bytes(b)) = row.unwrap().into_iter().next() {
                        referenced.push(hash16(&b));
                    }
                }
            }
            referenced.sort_unstable();
            referenced.dedup();
        }
        if gone {
            return Ok(());
        }
        let used_col = match (t.in_scope, simple) {
            (false, _) => ", 1".to_owned(),
            (true, true) => String::new(),
            (true, false) => format!(", {}", t.used_expr()),
        };
        let sql = format!(
            "SELECT e.hash, e.attachment_name, e.filepath{used_col} FROM {} e",
            t.qualified()
        );
        let what = format!("reading {}", t.qualified());
        let result = match conn.query_iter(&sql) {
            Ok(r) => r,
            Err(e) if is_gone(&e) => return Ok(()),
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
                Some(Value::Bytes(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
                _ => None,
            };
            let fp = match vals.next() {
                Some(Value::Bytes(b)) => Some(b),
                _ => None,
            };
            let is_used = match vals.next() {
                Some(v) => !matches!(text(v).as_str(), "0"),
                None => referenced.binary_search(&hash).is_ok(),
            };
            let rel: Vec<u8> = match (&att, fp) {
                (None, Some(fp)) if !fp.is_empty() && fast_normal(&fp) => fp,
                (_, fp) => {
                    let fp = fp.map(|b| String::from_utf8_lossy(&b).into_owned());
                    paths::row_path(
                        &t.schema,
                        &hash,
                        att.as_deref(),
                        fp.as_deref(),
                        &store.subfolding,
                    )
                    .into_bytes()
                }
            };
            out.rows += 1;
            if t.in_scope {
                out.rows_in_scope += 1;
            }
            let unused_rel =
                (t.in_scope && !is_used).then(|| String::from_utf8_lossy(&rel).into_owned());
            let start = out.arena.len() as u64;
            let entry = out.paths.entry(fingerprint(&rel)).or_insert_with(|| {
                out.arena.extend_from_slice(&rel);
                Track {
                    table: i as u32,
                    used: false,
                    in_scope_used: false,
                    seen: Default::default(),
                    start,
                    len: rel.len() as u32,
                }
            });
            entry.used |= is_used;
            if is_used && t.in_scope && !entry.in_scope_used {
                entry.in_scope_used = true;
                entry.table = i as u32;
            }
            if let Some(rel) = unused_rel {
                out.unused.push(UnusedRow {
                    table: i as u32,
                    hash,
                    rel,
                });
            }
            if out.paths.len() >= FLUSH_ROWS {
                flush(out);
            }
        }
    }
    flush(out);
    Ok(())
}

/// Rows [`table_rows`] reads between calls of its `flush`.
pub const FLUSH_ROWS: usize = 16384;

/// The first 16 bytes (DataJoint hashes are `binary(16)`).
fn hash16(b: &[u8]) -> [u8; 16] {
    let mut h = [0u8; 16];
    let n = b.len().min(16);
    h[..n].copy_from_slice(&b[..n]);
    h
}

/// True when a `filepath` value is already in [`paths::normalize`]d form.
fn fast_normal(fp: &[u8]) -> bool {
    fp[0] != b'/'
        && fp[fp.len() - 1] != b'/'
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

/// Orphan `analysis_nwbfile` rows of every in-scope analysis table.
pub fn orphan_rows(conn: &mut Conn, cat: &Catalog) -> Result<Vec<OrphanRow>, CleanupError> {
    let mut out = Vec::new();
    for t in &cat.analysis {
        let sql = format!(
            "SELECT a.analysis_file_name FROM {} a WHERE {} ORDER BY a.analysis_file_name",
            qualified(&t.schema, "analysis_nwbfile"),
            t.orphan_condition()
        );
        let Some(keys) = query_opt::<String>(conn, sql, || {
            format!("reading orphan rows of {}.analysis_nwbfile", t.schema)
        })?
        else {
            continue;
        };
        out.extend(keys.into_iter().map(|key| OrphanRow {
            schema: t.schema.clone(),
            key,
        }));
    }
    Ok(out)
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
    let mut out = DirRows::default();
    if rules.is_empty() {
        return Ok(out);
    }
    let names: Vec<String> = rules.iter().map(|r| string(&r.column)).collect();
    let cols: Vec<Row> = conn
        .query(format!(
            "SELECT table_schema, table_name, column_name FROM information_schema.COLUMNS \
             WHERE table_schema NOT IN {SYSTEM_SCHEMAS} AND column_name IN ({}) ORDER BY 1, 2, 3",
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

/// Of `rels` (paths relative to `store`), those some `~external` row names now.
/// Tables are listed afresh, so a schema created since the scan counts too.
pub fn tracked_now(
    conn: &mut Conn,
    store: &Store,
    rels: &[&str],
) -> Result<HashSet<String>, CleanupError> {
    let mut found = HashSet::new();
    if rels.is_empty() {
        return Ok(found);
    }
    let cat = catalog(conn, &Scope::all())?;
    let tables: Vec<&ExternalTable> = cat
        .externals
        .iter()
        .filter(|t| t.store == store.name)
        .collect();
    let mut by_hash: HashMap<(String, [u8; 16]), &str> = HashMap::new();
    for r in rels {
        if let Some(k) = paths::parse_uuid_path(r, &store.subfolding) {
            by_hash.insert(k, r);
        }
    }
    let list: Vec<String> = rels.iter().map(|r| string(r)).collect();
    for t in &tables {
        let sql = format!(
            "SELECT filepath FROM {} WHERE filepath IN ({})",
            t.qualified(),
            list.join(", ")
        );
        let Some(hits) =
            query_opt::<Option<String>>(conn, sql, || format!("re-checking {}", t.qualified()))?
        else {
            continue;
        };
        for h in hits.into_iter().flatten() {
            found.insert(paths::normalize(&h));
        }
        let hashes: Vec<(&[u8; 16], &str)> = by_hash
            .iter()
            .filter(|((db, _), _)| *db == t.schema)
            .map(|((_, h), r)| (h, *r))
            .collect();
        if !hashes.is_empty() {
            let hex: Vec<String> = hashes
                .iter()
                .map(|(h, _)| format!("X'{}'", paths::hex(*h)))
                .collect();
            let sql = format!(
                "SELECT hash FROM {} WHERE hash IN ({})",
                t.qualified(),
                hex.join(", ")
            );
            let hits: Vec<Vec<u8>> =
                query_opt(conn, sql, || format!("re-checking {}", t.qualified()))?
                    .unwrap_or_default();
            for h in hits {
                if let Some((_, r)) = hashes.iter().find(|(x, _)| x.as_slice() == h.as_slice()) {
                    found.insert((*r).to_owned());
                }
            }
        }
    }
    // A filepath row may be written un-normalized; compare normalized.
    Ok(rels
        .iter()
        .filter(|r| found.contains(**r))
        .map(|r| (*r).to_owned())
        .collect())
}

/// Every row (schema, hash) that names `rel` in `store` now.
pub fn rows_naming(
    conn: &mut Conn,
    store: &Store,
    rel: &str,
) -> Result<Vec<(String, Vec<u8>)>, CleanupError> {
    let cat = catalog(conn, &Scope::all())?;
    let uuid = paths::parse_uuid_path(rel, &store.subfolding);
    let mut out = Vec::new();
    for t in cat.externals.iter().filter(|t| t.store == store.name) {
        let mut cond = format!("filepath = {}", string(rel));
        if let Some((db, h)) = &uuid {
            if *db == t.schema {
                cond.push_str(&format!(" OR hash = X'{}'", paths::hex(h)));
            }
        }
        let sql = format!("SELECT hash FROM {} WHERE {cond}", t.qualified());
        let hits: Vec<Vec<u8>> =
            query_opt(conn, sql, || format!("re-checking {}", t.qualified()))?.unwrap_or_default();
        out.extend(hits.into_iter().map(|h| (t.schema.clone(), h)));
    }
    Ok(out)
}

/// True when the row still exists and nothing references it.
pub fn still_unused(
    conn: &mut Conn,
    table: &ExternalTable,
    hash: &[u8; 16],
) -> Result<bool, CleanupError> {
    let sql = format!(
        "SELECT {} FROM {} e WHERE e.hash = X'{}'",
        table.used_expr(),
        table.qualified(),
        paths::hex(hash)
    );
    let v: Option<i64> = conn.query_first(sql).map_err(|e| {
        CleanupError::Db(DbError::query(
            format!("re-checking a row of {}", table.qualified()),
            e,
        ))
    })?;
    Ok(v == Some(0))
}

/// A row as (column, raw value or NULL) pairs.
pub type RowValues = Vec<(String, Option<Vec<u8>>)>;

/// The full row, column names and values, so restore can put it back.
pub fn read_row(
    conn: &mut Conn,
    table_sql: &str,
    condition: &str,
) -> Result<Option<RowValues>, CleanupError> {
    let sql = format!("SELECT * FROM {table_sql} WHERE {condition}");
    let row: Option<Row> = conn
        .query_first(&sql)
        .map_err(|e| CleanupError::Db(DbError::query(format!("saving a row of {table_sql}"), e)))?;
    let Some(row) = row else { return Ok(None) };
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
    Ok(Some(names.into_iter().zip(vals).collect()))
}

/// Inserts a saved row again (restore).
pub fn insert_row(
    conn: &mut Conn,
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
            "INSERT INTO {table_sql} ({}) VALUES ({marks})",
            cols.join(", ")
        ),
        params,
    )
    .map_err(|e| CleanupError::Db(DbError::query(format!("restoring a row of {table_sql}"), e)))
}

/// Deletes an `~external` row. The foreign keys DataJoint declares
/// (`ON DELETE RESTRICT`) make this fail if the row became referenced.
pub fn delete_external_row(
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
pub fn still_orphan(
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
pub fn delete_analysis_row(conn: &mut Conn, schema: &str, key: &str) -> Result<u64, CleanupError> {
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
pub fn dir_tracked_now(
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

    #[test]
    fn fingerprints_differ_and_arena_round_trips() {
        fn add(rows: &mut StoreRows, p: &str, used: bool) {
            let start = rows.arena.len() as u64;
            rows.arena.extend_from_slice(p.as_bytes());
            rows.paths
                .entry(fingerprint(p.as_bytes()))
                .or_insert(Track {
                    used,
                    start,
                    len: p.len() as u32,
                    ..Track::default()
                });
        }
        let mut a = StoreRows::default();
        let mut b = StoreRows::default();
        add(&mut a, "x/1.nwb", true);
        add(&mut b, "x/2.nwb", false);
        add(&mut b, "x/1.nwb", false);
        a.absorb(&mut b);
        assert_eq!(a.paths.len(), 2);
        let t2 = a.get(b"x/2.nwb").unwrap();
        assert_eq!(a.path_of(t2), b"x/2.nwb");
        assert!(a.get(b"x/1.nwb").unwrap().used, "used by any row wins");
        assert!(a.get(b"x/3.nwb").is_none());
        assert_ne!(fingerprint(b"ab"), fingerprint(b"ba"));
        assert_ne!(fingerprint(b"a"), fingerprint(b"a\0"));
    }

    #[test]
    fn globs() {
        for (p, t, want) in [
            ("common_*", "common_nwbfile", true),
            ("common_*", "xcommon_nwbfile", false),
            ("*_nwbfile", "alice_nwbfile", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "acb", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("*", "", true),
        ] {
            assert_eq!(glob(p, t), want, "{p} {t}");
        }
        assert!(Scope::all().contains("anything"));
        let s = Scope::patterns(vec!["t1_*".into(), "common_nwbfile".into()]);
        assert!(s.contains("t1_lfp") && s.contains("common_nwbfile") && !s.contains("t2_lfp"));
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
