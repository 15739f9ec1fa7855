//! The native engine's workers: each keeps one connection inside the shared
//! consistent snapshot, pulls [`Job`]s (a table, a primary-key range of a big
//! table, or a `CHECKSUM TABLE`) largest first, and streams rows through
//! `encode` into compressed files. The coordinator ([`super::run`]) plans the
//! jobs with [`chunk_ranges`] and collects the [`JobResult`]s.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::mysql::{Conn, Row, Value};
use spyglass_db::{quote, Flavor};

use super::{db, DumpOptions, DATA_HEADER, HISTORY_HEADER};
use crate::catalog::TableInfo;
use crate::compress::SetFileWriter;
use crate::encode::{kind_of, push_value, InsertBuilder, ValueKind};
use crate::manifest::{FileKind, FileRecord};
use crate::names::file_name;
use crate::progress::Progress;
use crate::Error;

/// A unit of work for a worker.
#[derive(Debug, Clone)]
pub(super) enum Job {
    Data {
        table: usize,
        chunk: u32,
        /// SQL condition (with literals) selecting the chunk's rows, or None for all.
        range: Option<String>,
        estimate: u64,
    },
    Checksum {
        table: usize,
    },
}

pub(super) struct Shared {
    pub(super) jobs: Mutex<VecDeque<Job>>,
    pub(super) cancel: AtomicBool,
    pub(super) results: Mutex<Vec<JobResult>>,
}

pub(super) enum JobResult {
    Data {
        table: usize,
        file: FileRecord,
        max_statement: usize,
        /// A versioned table's history rows in the file (besides current ones).
        history: Option<u64>,
    },
    Checksum {
        table: usize,
        value: Option<u64>,
    },
}

pub(super) fn start_snapshot(conn: &mut Conn) -> Result<(), Error> {
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .and_then(|_| conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT"))
        .map_err(db("starting a consistent snapshot"))
}

pub(super) fn binlog_position(
    conn: &mut Conn,
    flavor: Flavor,
) -> (Option<String>, Option<u64>, Option<String>) {
    let stmts: &[&str] = match flavor {
        Flavor::Mysql => &["SHOW BINARY LOG STATUS", "SHOW MASTER STATUS"],
        Flavor::Mariadb => &["SHOW MASTER STATUS"],
    };
    for s in stmts {
        if let Ok(Some(row)) = conn.query_first::<Row, _>(*s) {
            let file: Option<String> = row.get_opt(0).and_then(|r| r.ok());
            let pos: Option<u64> = row.get_opt(1).and_then(|r| r.ok());
            let mut gtid: Option<String> = row
                .get_opt(4)
                .and_then(|r| r.ok())
                .filter(|g: &String| !g.is_empty());
            if flavor == Flavor::Mariadb {
                gtid = conn
                    .query_first::<String, _>("SELECT @@gtid_binlog_pos")
                    .ok()
                    .flatten()
                    .filter(|g| !g.is_empty());
            }
            return (file, pos, gtid);
        }
    }
    (None, None, None)
}

/// Splits a table into primary-key ranges of about `chunk_bytes`, walking the
/// key in the snapshot. Boundaries are written as SQL literals.
pub(super) fn chunk_ranges(
    conn: &mut Conn,
    t: &TableInfo,
    chunk_bytes: u64,
) -> Result<Vec<Option<String>>, Error> {
    let n = t.data_length.div_ceil(chunk_bytes).max(1);
    let rows_per = (t.rows_estimate / n).max(1);
    let pk = &t.primary_key;
    let cols = pk
        .iter()
        .map(|c| quote::ident(c))
        .collect::<Vec<_>>()
        .join(",");
    let table = rows_source(t);
    let mut bounds: Vec<Vec<String>> = Vec::new();
    loop {
        let cond = bounds
            .last()
            .map(|b| format!("WHERE {}", tuple_cmp(pk, b, ">")));
        let sql = format!(
            "SELECT {cols} FROM {table} {} ORDER BY {cols} LIMIT 1 OFFSET {}",
            cond.unwrap_or_default(),
            rows_per - 1
        );
        let row: Option<Row> = conn.query_first(&sql).map_err(|source| Error::Table {
            what: "planning chunks of",
            schema: t.schema.clone(),
            table: t.name.clone(),
            source: Box::new(source),
        })?;
        let Some(row) = row else { break };
        let lits: Vec<String> = (0..pk.len())
            .map(|i| {
                let col = &row.columns_ref()[i];
                let kind = kind_of(col.column_type(), col.character_set());
                let mut out = Vec::new();
                match row.as_ref(i) {
                    Some(Value::Bytes(b)) => push_value(&mut out, kind, Some(b)),
                    _ => push_value(&mut out, ValueKind::Number, None),
                }
                String::from_utf8_lossy(&out).into_owned()
            })
            .collect();
        bounds.push(lits);
        if bounds.len() as u64 > n * 4 {
            break;
        }
    }
    if bounds.is_empty() {
        return Ok(vec![None]);
    }
    let mut ranges = Vec::with_capacity(bounds.len() + 1);
    for i in 0..=bounds.len() {
        let lower = (i > 0).then(|| tuple_cmp(pk, &bounds[i - 1], ">"));
        let upper = (i < bounds.len()).then(|| tuple_cmp(pk, &bounds[i], "<="));
        ranges.push(Some(match (lower, upper) {
            (Some(l), Some(u)) => format!("({l}) AND ({u})"),
            (Some(l), None) => l,
            (None, Some(u)) => u,
            (None, None) => "1".into(),
        }));
    }
    Ok(ranges)
}

/// `(a, b) OP (x, y)` written out so both servers use a range scan:
/// `a > x OR (a = x AND b > y)`; `<=` ends with `b <= y`.
fn tuple_cmp(cols: &[String], vals: &[String], op: &str) -> String {
    let strict = if op == ">" { ">" } else { "<" };
    let mut terms = Vec::new();
    for i in 0..cols.len() {
        let mut t: Vec<String> = (0..i)
            .map(|j| format!("{} = {}", quote::ident(&cols[j]), vals[j]))
            .collect();
        let last_op = if i + 1 == cols.len() { op } else { strict };
        t.push(format!("{} {last_op} {}", quote::ident(&cols[i]), vals[i]));
        terms.push(format!("({})", t.join(" AND ")));
    }
    terms.join(" OR ")
}

/// Where a table's rows are read from: a versioned table `FOR SYSTEM_TIME
/// ALL`, so its history is written too.
fn rows_source(t: &TableInfo) -> String {
    let q = quote::qualified(&t.schema, &t.name);
    if t.versioned {
        format!("{q} FOR SYSTEM_TIME ALL")
    } else {
        q
    }
}

pub(super) fn worker(
    mut conn: Conn,
    shared: &Shared,
    tables: &[TableInfo],
    set: &Path,
    options: &DumpOptions,
    progress: &dyn Progress,
) -> Result<(), Error> {
    loop {
        if shared.cancel.load(Ordering::SeqCst) || options.interrupt.load(Ordering::SeqCst) {
            return Err(Error::Cancelled);
        }
        let job = match shared.jobs.lock() {
            Ok(mut q) => q.pop_front(),
            Err(_) => return Err(Error::Cancelled),
        };
        let Some(job) = job else { break };
        let result = match job {
            Job::Data {
                table,
                chunk,
                range,
                ..
            } => dump_chunk(
                &mut conn,
                &tables[table],
                table,
                chunk,
                range.as_deref(),
                set,
                options,
                progress,
                shared,
            )?,
            Job::Checksum { table } => {
                let t = &tables[table];
                let row: Option<(String, Option<u64>)> = conn
                    .query_first(format!(
                        "CHECKSUM TABLE {}",
                        quote::qualified(&t.schema, &t.name)
                    ))
                    .map_err(|source| Error::Table {
                        what: "checksumming",
                        schema: t.schema.clone(),
                        table: t.name.clone(),
                        source: Box::new(source),
                    })?;
                JobResult::Checksum {
                    table,
                    value: row.and_then(|r| r.1),
                }
            }
        };
        if let Ok(mut r) = shared.results.lock() {
            r.push(result);
        }
    }
    let _ = conn.query_drop("COMMIT");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn dump_chunk(
    conn: &mut Conn,
    t: &TableInfo,
    index: usize,
    chunk: u32,
    range: Option<&str>,
    set: &Path,
    options: &DumpOptions,
    progress: &dyn Progress,
    shared: &Shared,
) -> Result<JobResult, Error> {
    let dir = set.join("2-data").join(file_name(&t.schema));
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("creating", &dir)(e)),
    }
    let rel = format!(
        "2-data/{}/{}.{chunk:05}{}",
        file_name(&t.schema),
        file_name(&t.name),
        options.compression.suffix()
    );
    let path = set.join(&rel);
    let blobs = t.column_types.iter().any(|ty| ty.ends_with("blob"));
    let mut w = SetFileWriter::create(&path, options.compression_for(blobs))
        .map_err(Error::io("creating", &path))?;
    let io = |e| Error::io("writing", &path)(e);
    let header = format!(
        "-- spyglass-admin data: {} chunk {chunk}\n{DATA_HEADER}{}USE {};\n",
        quote::qualified(&t.schema, &t.name),
        if t.versioned { HISTORY_HEADER } else { "" },
        quote::ident(&t.schema)
    );
    w.write_all(header.as_bytes()).map_err(io)?;
    // FLOAT is printed with 6 significant digits by MariaDB's text protocol,
    // which loses bits; as DOUBLE it prints exactly, and converts back exactly.
    let cols = t
        .columns
        .iter()
        .zip(&t.column_types)
        .map(|(c, ty)| {
            if ty == "float" {
                format!("CAST({} AS DOUBLE)", quote::ident(c))
            } else {
                quote::ident(c)
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!(
        "SELECT {cols} FROM {}{}",
        rows_source(t),
        range.map(|r| format!(" WHERE {r}")).unwrap_or_default()
    );
    let table_err = |source| Error::Table {
        what: "reading rows of",
        schema: t.schema.clone(),
        table: t.name.clone(),
        source: Box::new(source),
    };
    let mut result = conn.query_iter(&sql).map_err(table_err)?;
    let mut builder = InsertBuilder::new(&t.name, &t.columns, options.statement_bytes);
    let mut kinds: Option<Vec<ValueKind>> = None;
    let mut rows = 0u64;
    let mut pending_bytes = 0u64;
    let mut pending_rows = 0u64;
    if let Some(set_result) = result.iter() {
        for row in set_result {
            let row = row.map_err(table_err)?;
            let kinds = kinds.get_or_insert_with(|| {
                row.columns_ref()
                    .iter()
                    .map(|c| kind_of(c.column_type(), c.character_set()))
                    .collect()
            });
            builder.begin_row();
            for (i, kind) in kinds.iter().enumerate() {
                match row.as_ref(i) {
                    Some(Value::Bytes(b)) => builder.value(i == 0, *kind, Some(b)),
                    Some(Value::NULL) | None => builder.value(i == 0, *kind, None),
                    Some(other) => {
                        // The text protocol only sends bytes or NULL.
                        let text = other.as_sql(false);
                        builder.value(i == 0, ValueKind::Number, Some(text.as_bytes()))
                    }
                }
            }
            rows += 1;
            pending_rows += 1;
            if let Some(stmt) = builder.end_row() {
                pending_bytes += stmt.len() as u64;
                w.write_all(&stmt).map_err(io)?;
                progress.advance(pending_bytes, pending_rows);
                pending_bytes = 0;
                pending_rows = 0;
                if shared.cancel.load(Ordering::SeqCst) || options.interrupt.load(Ordering::SeqCst)
                {
                    return Err(Error::Cancelled);
                }
            }
        }
    }
    drop(result);
    if let Some(stmt) = builder.finish() {
        pending_bytes += stmt.len() as u64;
        w.write_all(&stmt).map_err(io)?;
    }
    progress.advance(pending_bytes, pending_rows);
    let written = w.finish().map_err(io)?;
    // A versioned table: how many of the rows are current, in the same snapshot.
    let history = if t.versioned {
        let current: Option<u64> = conn
            .query_first(format!(
                "SELECT COUNT(*) FROM {}{}",
                quote::qualified(&t.schema, &t.name),
                range.map(|r| format!(" WHERE {r}")).unwrap_or_default()
            ))
            .map_err(table_err)?;
        Some(rows.saturating_sub(current.unwrap_or(0)))
    } else {
        None
    };
    Ok(JobResult::Data {
        table: index,
        file: FileRecord {
            path: rel,
            kind: FileKind::Data,
            schema: Some(t.schema.clone()),
            table: Some(t.name.clone()),
            chunk: Some(chunk),
            rows,
            raw_bytes: written.raw_bytes,
            bytes: written.bytes,
            sha256: written.sha256,
        },
        max_statement: builder.max_statement(),
        history,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuple_comparisons_expand_for_range_scans() {
        let cols = vec!["a".to_owned(), "b".to_owned()];
        let vals = vec!["1".to_owned(), "'x'".to_owned()];
        assert_eq!(
            tuple_cmp(&cols, &vals, ">"),
            "(`a` > 1) OR (`a` = 1 AND `b` > 'x')"
        );
        assert_eq!(
            tuple_cmp(&cols, &vals, "<="),
            "(`a` < 1) OR (`a` = 1 AND `b` <= 'x')"
        );
        assert_eq!(tuple_cmp(&cols[..1], &vals[..1], "<="), "(`a` <= 1)");
    }
}
