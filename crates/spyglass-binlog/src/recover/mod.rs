//! Undoing a delete: the rows one or more archived transactions deleted
//! (and, when asked, the before-images of rows they updated) put back,
//! either into side schemas `PREFIX<schema>` or into the live tables.
//!
//! The rows are never turned into SQL text. The archived DELETE_ROWS
//! events are rewritten into WRITE_ROWS events (same row images, event type
//! changed; an UPDATE_ROWS event becomes a WRITE_ROWS of its before-images,
//! or, in place, an UPDATE_ROWS with each pair of images swapped) and
//! applied through the server's own `BINLOG` statement, as the
//! point-in-time replay does: the server decodes its own row format, so
//! every value comes back exactly. [`rows`] still decodes every image
//! (mysql_common's binlog types), for the listing, the row counts, the
//! conflict checks by primary key and the external files the rows name.

pub mod list;
pub mod rows;

use std::collections::{BTreeSet, HashMap};

use mysql::prelude::Queryable;
use mysql::{Conn, Value};
use mysql_common::constants::ColumnType;

use crate::format;
use crate::Error;
pub use rows::{read_transactions, Change, Kind, Transaction};

/// A table as `(schema, table)`.
pub type TableName = (String, String);

/// Rows to put back into one table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableRows {
    /// Source schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Where they go (`PREFIX<schema>` or the schema itself).
    pub target_schema: String,
    /// Deleted rows re-inserted.
    pub deleted: u64,
    /// Updated rows set back to (or, into a side schema, inserted as) their before-images.
    pub updated: u64,
}

/// A row that cannot go back as it was.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Conflict {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// The row's key (`col=value, ...`).
    pub key: String,
    /// What is in the way.
    pub detail: String,
}

/// What a recovery does or did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    /// The transactions, by id (`file:pos`).
    pub transactions: Vec<String>,
    /// Per table, in the order applied (parents first in place).
    pub tables: Vec<TableRows>,
    /// Conflicts found (in place): any stops the recovery.
    pub conflicts: Vec<Conflict>,
    /// Whether the rows were written.
    pub applied: bool,
}

/// The transactions named by `ids` (`file:pos` of their start, or their GTID).
pub fn select<'a>(all: &'a [Transaction], ids: &[String]) -> Result<Vec<&'a Transaction>, Error> {
    let mut out: Vec<&Transaction> = Vec::new();
    for id in ids {
        let t = all
            .iter()
            .find(|t| t.id() == *id || t.gtid.as_deref() == Some(id.as_str()))
            .ok_or_else(|| {
                Error::Recover(format!(
                    "no transaction {id} with row changes in the binlog archive (ids are FILE:POS as `recover --list` prints them, or a GTID)"
                ))
            })?;
        if !out.iter().any(|o| o.id() == t.id()) {
            out.push(t);
        }
    }
    out.sort_by_key(|t| (crate::index::sequence(&t.start.file), t.start.pos));
    Ok(out)
}

fn q(conn: &mut Conn, what: &str, sql: &str) -> Result<(), Error> {
    conn.query_drop(sql)
        .map_err(|e| Error::Db(spyglass_db::DbError::query(what.to_owned(), e)))
}

/// What the live server says about a table.
#[derive(Debug, Clone)]
struct Live {
    columns: Vec<(String, String)>,
    primary: Vec<usize>,
    parents: Vec<TableName>,
}

fn live(conn: &mut Conn, schema: &str, table: &str) -> Result<Option<Live>, Error> {
    let err = |e| {
        Error::Db(spyglass_db::DbError::query(
            format!("reading the columns of `{schema}`.`{table}`"),
            e,
        ))
    };
    let columns: Vec<(String, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        .map_err(err)?;
    if columns.is_empty() {
        return Ok(None);
    }
    let pk: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
             ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        .map_err(err)?;
    let parents: Vec<(String, String)> = conn
        .exec(
            "SELECT DISTINCT REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME \
             FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND REFERENCED_TABLE_NAME IS NOT NULL",
            (schema, table),
        )
        .map_err(err)?;
    let primary = pk
        .iter()
        .filter_map(|c| columns.iter().position(|(n, _)| n == c))
        .collect();
    Ok(Some(Live {
        columns,
        primary,
        parents,
    }))
}

/// The changes a recovery puts back, per table in first-seen order.
fn wanted<'a>(
    txns: &[&'a Transaction],
    include_updates: bool,
) -> (Vec<TableName>, Vec<(&'a Transaction, &'a Change)>) {
    let mut tables: Vec<TableName> = Vec::new();
    let mut changes = Vec::new();
    for t in txns {
        for c in &t.changes {
            let take = match c.kind {
                Kind::Delete => true,
                Kind::Update => include_updates,
                Kind::Insert => false,
            };
            if !take {
                continue;
            }
            let name = (c.schema.clone(), c.table.clone());
            if !tables.contains(&name) {
                tables.push(name);
            }
            changes.push((*t, c));
        }
    }
    (tables, changes)
}

fn check_tables(
    conn: &mut Conn,
    tables: &[TableName],
    changes: &[(&Transaction, &Change)],
) -> Result<HashMap<TableName, Live>, Error> {
    let mut out = HashMap::new();
    for (s, t) in tables {
        if spyglass_db::schemas::is_system_schema(s) {
            return Err(Error::Recover(format!(
                "`{s}`.`{t}` is in a system schema: recover puts back DataJoint rows, never the server's own tables"
            )));
        }
        let l = live(conn, s, t)?.ok_or_else(|| {
            Error::Recover(format!(
                "`{s}`.`{t}` does not exist any more: recover copies its definition from the live table (restore the schema first, e.g. `backup restore --until`)"
            ))
        })?;
        for (_, c) in changes
            .iter()
            .filter(|(_, c)| c.schema == *s && c.table == *t)
        {
            if c.columns != l.columns.len() {
                return Err(Error::Recover(format!(
                    "`{s}`.`{t}` was altered since: the archived rows have {} columns, the live table {}; nothing recovered",
                    c.columns,
                    l.columns.len()
                )));
            }
        }
        out.insert((s.clone(), t.clone()), l);
    }
    Ok(out)
}

fn counts(
    tables: &[TableName],
    changes: &[(&Transaction, &Change)],
    target: &dyn Fn(&str) -> String,
) -> Vec<TableRows> {
    tables
        .iter()
        .map(|(s, t)| {
            let mut r = TableRows {
                schema: s.clone(),
                table: t.clone(),
                target_schema: target(s),
                deleted: 0,
                updated: 0,
            };
            for (_, c) in changes
                .iter()
                .filter(|(_, c)| c.schema == *s && c.table == *t)
            {
                match c.kind {
                    Kind::Delete => r.deleted += c.rows.len() as u64,
                    Kind::Update => r.updated += c.rows.len() as u64,
                    Kind::Insert => {}
                }
            }
            r
        })
        .collect()
}

/// Runs `BINLOG` statements in one transaction: all or nothing. On a failed
/// statement the transaction is rolled back and the error names its table.
fn apply_binlog(conn: &mut Conn, fde: &[u8], stmts: &[(TableName, String)]) -> Result<(), Error> {
    let fail = |(s, t): &TableName, e: mysql::Error| {
        let text = spyglass_db::driver_error_text(&e);
        let conflict = matches!(&e, mysql::Error::MySqlError(m) if m.code == 1062 || m.code == 1032 || m.code == 1452);
        Error::Recover(if conflict {
            format!("`{s}`.`{t}`: {text}; nothing was recovered (the transaction was rolled back)")
        } else {
            format!("writing the rows of `{s}`.`{t}`: {text}; nothing was recovered (the transaction was rolled back)")
        })
    };
    conn.query_drop(format!("BINLOG '{}'", format::base64(fde)))
        .map_err(|e| {
            Error::Db(spyglass_db::DbError::query(
                "sending the format description (BINLOG; needs SUPER or BINLOG_ADMIN on MySQL, BINLOG REPLAY on MariaDB)",
                e,
            ))
        })?;
    // MySQL: a format description through BINLOG sets GTID_NEXT to
    // NOT_YET_DETERMINED; back to AUTOMATIC (MariaDB has no GTID_NEXT).
    let _ = conn.query_drop("SET @@SESSION.GTID_NEXT = 'AUTOMATIC'");
    q(conn, "starting the recovery transaction", "BEGIN")?;
    for (name, s) in stmts {
        if let Err(e) = conn.query_drop(s) {
            let _ = conn.query_drop("ROLLBACK");
            return Err(fail(name, e));
        }
    }
    if let Err(e) = conn.query_drop("COMMIT") {
        let _ = conn.query_drop("ROLLBACK");
        return Err(Error::Db(spyglass_db::DbError::query(
            "committing the recovery",
            e,
        )));
    }
    Ok(())
}

fn binlog_stmt(table_map: &[u8], rows: &[u8]) -> String {
    let mut b = table_map.to_vec();
    b.extend_from_slice(rows);
    format!("BINLOG '{}'", format::base64(&b))
}

/// SHOW CREATE TABLE text for a side schema: the table qualified with the
/// target schema, foreign keys left out (the copy must not tie itself to,
/// or be refused by, the live tables).
fn side_definition(ddl: &str, target_schema: &str, table: &str) -> String {
    let body = ddl.find(" (\n").map_or(ddl, |i| &ddl[i..]);
    let mut lines: Vec<&str> = body.lines().collect();
    lines.retain(|l| {
        let t = l.trim_start();
        !(t.starts_with("CONSTRAINT") && t.contains("FOREIGN KEY"))
    });
    // The last column/key line before `) ENGINE...` must not end in a comma.
    if let Some(close) = lines.iter().rposition(|l| l.starts_with(')')) {
        if close > 0 {
            let prev = lines[close - 1].trim_end_matches(',');
            let mut out: Vec<String> = lines.iter().map(|s| (*s).to_owned()).collect();
            out[close - 1] = prev.to_owned();
            return format!(
                "CREATE TABLE {}{}",
                spyglass_db::quote::qualified(target_schema, table),
                out.join("\n")
            );
        }
    }
    format!(
        "CREATE TABLE {}{}",
        spyglass_db::quote::qualified(target_schema, table),
        lines.join("\n")
    )
}

/// Rebuilds the rows the transactions deleted (and, with `include_updates`,
/// the before-images of rows they updated) into `PREFIX<schema>` side
/// schemas: same table definitions (SHOW CREATE TABLE of the live table,
/// without foreign keys). Refuses system schemas and a target table that
/// exists and is not empty.
pub fn into(
    conn: &mut Conn,
    txns: &[&Transaction],
    prefix: &str,
    include_updates: bool,
) -> Result<Plan, Error> {
    if prefix.is_empty() {
        return Err(Error::Recover("the side-schema prefix is empty".into()));
    }
    let (tables, changes) = wanted(txns, include_updates);
    let target = |s: &str| format!("{prefix}{s}");
    let mut plan = Plan {
        transactions: txns.iter().map(|t| t.id()).collect(),
        tables: counts(&tables, &changes, &target),
        conflicts: Vec::new(),
        applied: false,
    };
    if changes.is_empty() {
        return Ok(plan);
    }
    check_tables(conn, &tables, &changes)?;
    for (s, t) in &tables {
        let ts = target(s);
        if ts.len() > 64 {
            return Err(Error::Recover(format!(
                "the side schema `{ts}` is longer than 64 characters; choose a shorter prefix"
            )));
        }
        if spyglass_db::schemas::is_system_schema(&ts) {
            return Err(Error::Recover(format!(
                "`{ts}` is a system schema; choose another prefix"
            )));
        }
        let exists: Option<String> = conn
            .exec_first(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&ts, t),
            )
            .map_err(|e| Error::Db(spyglass_db::DbError::query(format!("looking for `{ts}`.`{t}`"), e)))?;
        if exists.is_some() {
            let n: Option<u64> = conn
                .query_first(format!(
                    "SELECT COUNT(*) FROM {}",
                    spyglass_db::quote::qualified(&ts, t)
                ))
                .map_err(|e| {
                    Error::Db(spyglass_db::DbError::query(
                        format!("counting `{ts}`.`{t}`"),
                        e,
                    ))
                })?;
            if n.unwrap_or(0) > 0 {
                return Err(Error::Recover(format!(
                    "`{ts}`.`{t}` exists and is not empty: recover --into never writes over rows; choose another prefix or drop it"
                )));
            }
        }
    }
    for (s, t) in &tables {
        let ts = target(s);
        q(
            conn,
            &format!("creating the side schema `{ts}`"),
            &format!(
                "CREATE DATABASE IF NOT EXISTS {}",
                spyglass_db::quote::ident(&ts)
            ),
        )?;
        let ddl: Option<(String, String)> = conn
            .query_first(format!(
                "SHOW CREATE TABLE {}",
                spyglass_db::quote::qualified(s, t)
            ))
            .map_err(|e| {
                Error::Db(spyglass_db::DbError::query(
                    format!("SHOW CREATE TABLE `{s}`.`{t}`"),
                    e,
                ))
            })?;
        let (_, ddl) =
            ddl.ok_or_else(|| Error::Recover(format!("no definition for `{s}`.`{t}`")))?;
        let create =
            side_definition(&ddl, &ts, t).replacen("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1);
        q(conn, &format!("creating `{ts}`.`{t}`"), &create)?;
    }
    let fde = one_format(&changes)?;
    let mut stmts: Vec<(TableName, String)> = Vec::new();
    for (txn, c) in &changes {
        let ts = target(&c.schema);
        let tm = format::rename_table_map(&c.table_map, &ts, txn.checksum).ok_or_else(|| {
            Error::Recover(format!(
                "cannot rename the table map of `{}`.`{}`",
                c.schema, c.table
            ))
        })?;
        let all: Vec<usize> = (0..c.rows.len()).collect();
        let mut ev = c.as_write(&all, txn.checksum);
        // No foreign keys in the side copy; rows go in the order they were logged.
        let flags = format::rows_table(&ev).map_or(0, |(_, f)| f);
        format::set_rows_flags(&mut ev, flags | NO_FOREIGN_KEY_CHECKS_F, txn.checksum);
        stmts.push(((c.schema.clone(), c.table.clone()), binlog_stmt(&tm, &ev)));
    }
    apply_binlog(conn, &fde, &stmts)?;
    plan.applied = true;
    Ok(plan)
}

/// The format description to send: the first transaction's, after checking
/// that every file involved has the same format (server version, post-header
/// lengths, checksum algorithm; creation time and flags may differ).
fn one_format(changes: &[(&Transaction, &Change)]) -> Result<Vec<u8>, Error> {
    let body = |f: &[u8]| -> (Vec<u8>, Vec<u8>) {
        let h = format::HEADER_LEN;
        let a = f.get(h..h + 52).unwrap_or_default().to_vec();
        let b = f
            .get(h + 56..f.len().saturating_sub(4))
            .unwrap_or_default()
            .to_vec();
        (a, b)
    };
    let first = &changes[0].0.fde;
    if changes.iter().any(|(t, _)| body(&t.fde) != body(first)) {
        return Err(Error::Recover(
            "the transactions span archive files written by different server versions; recover them one at a time".into(),
        ));
    }
    Ok(first.clone())
}

/// Rows event flag: foreign keys not checked.
const NO_FOREIGN_KEY_CHECKS_F: u16 = 0x2;

fn key_text(live: &Live, cols: &[usize], values: &[Option<Value>]) -> String {
    cols.iter()
        .map(|&i| {
            format!(
                "{}={}",
                live.columns[i].0,
                values
                    .get(i)
                    .and_then(|v| v.as_ref())
                    .map_or("NULL".to_owned(), list::value_text)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn fixed(live: &Live, c: &Change, i: usize, v: &Value) -> Value {
    if live.columns[i].1.contains("unsigned") {
        rows::as_unsigned(v, c.column_types[i])
    } else {
        v.clone()
    }
}

/// `col <=> ?` for a column, NULL-safe; TIMESTAMP values come as epoch seconds.
fn cond(live: &Live, c: &Change, i: usize) -> Option<String> {
    let name = spyglass_db::quote::ident(&live.columns[i].0);
    match c.column_types[i] {
        Some(ColumnType::MYSQL_TYPE_TIMESTAMP | ColumnType::MYSQL_TYPE_TIMESTAMP2) => Some(
            format!("{name} <=> FROM_UNIXTIME(CAST(? AS DECIMAL(20,6)))"),
        ),
        Some(ColumnType::MYSQL_TYPE_NEWDECIMAL) => {
            Some(format!("{name} <=> CAST(? AS DECIMAL(65,30))"))
        }
        Some(
            ColumnType::MYSQL_TYPE_FLOAT
            | ColumnType::MYSQL_TYPE_DOUBLE
            | ColumnType::MYSQL_TYPE_JSON
            // mysql_common 0.37 decodes a negative TIME(1|2) with a fraction wrongly.
            | ColumnType::MYSQL_TYPE_TIME
            | ColumnType::MYSQL_TYPE_TIME2,
        ) => None,
        _ => Some(format!("{name} <=> ?")),
    }
}

fn exists_where(
    conn: &mut Conn,
    schema: &str,
    table: &str,
    live: &Live,
    c: &Change,
    cols: &[usize],
    values: &[Option<Value>],
) -> Result<bool, Error> {
    let mut conds = Vec::new();
    let mut params: Vec<Value> = Vec::new();
    for &i in cols {
        let Some(w) = cond(live, c, i) else { continue };
        conds.push(w);
        params.push(
            values
                .get(i)
                .and_then(|v| v.as_ref())
                .map_or(Value::NULL, |v| fixed(live, c, i, v)),
        );
    }
    if conds.is_empty() {
        return Ok(false);
    }
    let sql = format!(
        "SELECT 1 FROM {} WHERE {} LIMIT 1",
        spyglass_db::quote::qualified(schema, table),
        conds.join(" AND ")
    );
    let r: Option<u8> = conn.exec_first(&sql, params).map_err(|e| {
        Error::Db(spyglass_db::DbError::query(
            format!("looking for a row's key in `{schema}`.`{table}`"),
            e,
        ))
    })?;
    Ok(r.is_some())
}

/// Tables parents first (foreign keys among them); the order seen otherwise.
fn parents_first(tables: &[TableName], live: &HashMap<TableName, Live>) -> Vec<TableName> {
    let mut out: Vec<TableName> = Vec::new();
    let mut left: Vec<TableName> = tables.to_vec();
    while !left.is_empty() {
        let placed: BTreeSet<usize> = left
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                live.get(*t).is_none_or(|l| {
                    l.parents
                        .iter()
                        .all(|p| p == *t || out.contains(p) || !left.contains(p))
                })
            })
            .map(|(i, _)| i)
            .collect();
        if placed.is_empty() {
            // A cycle: the rest in reverse delete order (DataJoint deletes children first).
            out.extend(left.drain(..).rev());
            break;
        }
        let mut i = 0;
        left.retain(|t| {
            let keep = !placed.contains(&i);
            if !keep {
                out.push(t.clone());
            }
            i += 1;
            keep
        });
    }
    out
}

/// The dry run of an in-place recovery: counts per table (parents first)
/// and every conflict (a deleted row whose primary key exists again; an
/// updated row that is gone or changed since).
pub fn plan_in_place(
    conn: &mut Conn,
    txns: &[&Transaction],
    include_updates: bool,
) -> Result<Plan, Error> {
    let (tables, changes) = wanted(txns, include_updates);
    let live = check_tables(conn, &tables, &changes)?;
    let order = parents_first(&tables, &live);
    let same = |s: &str| s.to_owned();
    let mut plan = Plan {
        transactions: txns.iter().map(|t| t.id()).collect(),
        tables: counts(&order, &changes, &same),
        conflicts: Vec::new(),
        applied: false,
    };
    for (_, c) in &changes {
        let name = (c.schema.clone(), c.table.clone());
        let Some(l) = live.get(&name) else { continue };
        for r in &c.rows {
            match c.kind {
                Kind::Delete
                    if !l.primary.is_empty()
                        && exists_where(
                            conn, &c.schema, &c.table, l, c, &l.primary, &r.values,
                        )? =>
                {
                    plan.conflicts.push(Conflict {
                        schema: c.schema.clone(),
                        table: c.table.clone(),
                        key: key_text(l, &l.primary, &r.values),
                        detail: "a row with this key exists again".into(),
                    });
                }
                Kind::Update => {
                    let after = r.after.as_deref().unwrap_or(&[]);
                    let key: Vec<usize> = if l.primary.is_empty() {
                        (0..l.columns.len()).collect()
                    } else {
                        l.primary.clone()
                    };
                    let all: Vec<usize> = (0..l.columns.len()).collect();
                    if !exists_where(conn, &c.schema, &c.table, l, c, &key, after)? {
                        plan.conflicts.push(Conflict {
                            schema: c.schema.clone(),
                            table: c.table.clone(),
                            key: key_text(l, &key, after),
                            detail: "the updated row is gone".into(),
                        });
                    } else if !exists_where(conn, &c.schema, &c.table, l, c, &all, after)? {
                        plan.conflicts.push(Conflict {
                            schema: c.schema.clone(),
                            table: c.table.clone(),
                            key: key_text(l, &key, after),
                            detail: "the row was changed again after the update".into(),
                        });
                    }
                }
                _ => {}
            }
        }
    }
    Ok(plan)
}

/// Re-inserts the deleted rows into the live tables (and sets updated rows
/// back to their before-images), parents first, in one transaction, after
/// [`plan_in_place`] found no conflict. A conflict found then, or raised by
/// the server while applying (a key that appeared meanwhile), stops it with
/// nothing applied.
pub fn in_place(
    conn: &mut Conn,
    txns: &[&Transaction],
    include_updates: bool,
) -> Result<Plan, Error> {
    let mut plan = plan_in_place(conn, txns, include_updates)?;
    if !plan.conflicts.is_empty() {
        let list: Vec<String> = plan
            .conflicts
            .iter()
            .take(10)
            .map(|c| format!("`{}`.`{}` ({}): {}", c.schema, c.table, c.key, c.detail))
            .collect();
        return Err(Error::Recover(format!(
            "{} conflict(s), nothing recovered: {}{}",
            plan.conflicts.len(),
            list.join("; "),
            if plan.conflicts.len() > 10 {
                "; ..."
            } else {
                ""
            }
        )));
    }
    let (_, changes) = wanted(txns, include_updates);
    if changes.is_empty() {
        return Ok(plan);
    }
    let fde = one_format(&changes)?;
    let mut stmts: Vec<(TableName, String)> = Vec::new();
    for tr in &plan.tables {
        for (txn, c) in changes
            .iter()
            .filter(|(_, c)| c.kind == Kind::Delete && c.schema == tr.schema && c.table == tr.table)
        {
            let all: Vec<usize> = (0..c.rows.len()).collect();
            let ev = c.as_write(&all, txn.checksum);
            stmts.push((
                (c.schema.clone(), c.table.clone()),
                binlog_stmt(&c.table_map, &ev),
            ));
        }
    }
    // Updates last, newest first, so a row updated twice ends at its oldest image.
    for (txn, c) in changes.iter().rev().filter(|(_, c)| c.kind == Kind::Update) {
        let all: Vec<usize> = (0..c.rows.len()).rev().collect();
        let ev = c.as_reverse_update(&all, txn.checksum);
        stmts.push((
            (c.schema.clone(), c.table.clone()),
            binlog_stmt(&c.table_map, &ev),
        ));
    }
    apply_binlog(conn, &fde, &stmts)?;
    plan.applied = true;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_definitions_drop_foreign_keys_and_qualify_the_table() {
        let ddl = "CREATE TABLE `#trial` (\n  `id` int(11) NOT NULL,\n  `s` varchar(8) NOT NULL,\n  PRIMARY KEY (`id`,`s`),\n  CONSTRAINT `x_ibfk_1` FOREIGN KEY (`s`) REFERENCES `lab_a`.`session` (`s`) ON UPDATE CASCADE\n) ENGINE=InnoDB DEFAULT CHARSET=latin1";
        let s = side_definition(ddl, "undo_lab", "#trial");
        assert_eq!(
            s,
            "CREATE TABLE `undo_lab`.`#trial` (\n  `id` int(11) NOT NULL,\n  `s` varchar(8) NOT NULL,\n  PRIMARY KEY (`id`,`s`)\n) ENGINE=InnoDB DEFAULT CHARSET=latin1"
        );
    }

    #[test]
    fn parents_come_first() {
        let t = |a: &str| ("s".to_owned(), a.to_owned());
        let mut live = HashMap::new();
        let l = |p: Vec<TableName>| Live {
            columns: vec![],
            primary: vec![],
            parents: p,
        };
        live.insert(t("child"), l(vec![t("parent"), t("other")]));
        live.insert(t("grand"), l(vec![t("child")]));
        live.insert(t("parent"), l(vec![]));
        let order = parents_first(&[t("grand"), t("child"), t("parent")], &live);
        assert_eq!(order, vec![t("parent"), t("child"), t("grand")]);
    }
}
