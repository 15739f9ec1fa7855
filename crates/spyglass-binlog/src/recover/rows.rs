//! Reading the archive for `recover`: events grouped into transactions,
//! table maps and row events decoded (mysql_common's binlog types) into
//! typed row images, each image with its byte range inside the event, so
//! the events can be rewritten (DELETE -> WRITE, UPDATE images swapped) and
//! applied by the server itself.

use std::ops::Range;
use std::path::Path;

use mysql_common::binlog::consts::BinlogVersion;
use mysql_common::binlog::events::{EventData, RowsEventData, TableMapEvent};
use mysql_common::binlog::row::BinlogRow;
use mysql_common::binlog::value::BinlogValue;
use mysql_common::binlog::EventStreamReader;
use mysql_common::constants::ColumnType;
use mysql_common::io::ParseBuf;
use mysql_common::Value;

use crate::format::{self, types};
use crate::index::Archive;
use crate::replay::Point;
use crate::Error;

/// What a row event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// WRITE_ROWS.
    Insert,
    /// UPDATE_ROWS.
    Update,
    /// DELETE_ROWS.
    Delete,
}

/// One row of a row event.
#[derive(Debug, Clone)]
pub struct Row {
    /// The first image's bytes in the event (the before-image of a delete or
    /// update, the after-image of an insert).
    pub first: Range<usize>,
    /// An update's after-image bytes.
    pub second: Option<Range<usize>>,
    /// The first image's values (column order; None: column not in the image).
    pub values: Vec<Option<Value>>,
    /// An update's after-image values.
    pub after: Option<Vec<Option<Value>>>,
}

/// One row event with its table map, as archived.
#[derive(Debug, Clone)]
pub struct Change {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Insert, update or delete.
    pub kind: Kind,
    /// The table map event (raw bytes).
    pub table_map: Vec<u8>,
    /// The row event (raw bytes).
    pub event: Vec<u8>,
    /// Where the row images start in `event` (after the column bitmaps).
    pub rows_at: usize,
    /// Where the first column bitmap starts in `event`.
    pub bitmap_at: usize,
    /// The column count of the table map.
    pub columns: usize,
    /// Column types as the table map gives them.
    pub column_types: Vec<Option<ColumnType>>,
    /// The rows.
    pub rows: Vec<Row>,
}

/// A transaction of the archive.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// Where it starts (its id: `file:pos`).
    pub start: Point,
    /// Where it ends.
    pub end: Point,
    /// Commit time, microseconds since the epoch (UTC; MariaDB: whole seconds).
    pub commit_us: i64,
    /// Its GTID where the server gave one.
    pub gtid: Option<String>,
    /// The connection that ran it (from its BEGIN).
    pub thread_id: Option<u32>,
    /// Statement texts the server logged (annotate rows / rows query events).
    pub statements: Vec<String>,
    /// Row events in order.
    pub changes: Vec<Change>,
    /// The format description event of its file (for `BINLOG`).
    pub fde: Vec<u8>,
    /// Whether events carry CRC32 footers.
    pub checksum: bool,
}

impl Transaction {
    /// `file:pos` of its start.
    pub fn id(&self) -> String {
        self.start.to_string()
    }
}

fn bad(file: &str, pos: usize, detail: impl Into<String>) -> Error {
    Error::Event {
        file: file.to_owned(),
        pos: pos as u64,
        detail: detail.into(),
    }
}

/// A decoded binlog value as a plain value (JSON as its text).
fn plain(v: BinlogValue<'_>) -> Value {
    match v {
        BinlogValue::Value(v) => v,
        BinlogValue::Jsonb(j) => match serde_json::Value::try_from(j) {
            Ok(j) => Value::Bytes(j.to_string().into_bytes()),
            Err(_) => Value::NULL,
        },
        BinlogValue::JsonDiff(_) => Value::NULL,
    }
}

/// The transactions of archive files from `first_file` on (all when None)
/// whose commit time is within `[since, until]` (microseconds, inclusive;
/// MariaDB's whole seconds compared at whole seconds). Only transactions with
/// row events are returned.
pub fn read_transactions(
    dir: &Path,
    since_us: Option<i64>,
    until_us: Option<i64>,
) -> Result<Vec<Transaction>, Error> {
    read_transactions_in(dir, None, since_us, until_us)
}

/// [`read_transactions`] of the named archive files only (None: all).
pub fn read_transactions_in(
    dir: &Path,
    only: Option<&[String]>,
    since_us: Option<i64>,
    until_us: Option<i64>,
) -> Result<Vec<Transaction>, Error> {
    let archive = Archive::open(dir)?;
    let mut out = Vec::new();
    for file in archive.files() {
        if only.is_some_and(|o| !o.contains(&file)) {
            continue;
        }
        // Skip closed files that end before `since`.
        if let (Some(s), Some(e)) = (since_us, archive.index.entry(&file)) {
            if e.complete && i64::from(e.last_time) * 1_000_000 + 999_999 < s {
                continue;
            }
        }
        let bytes = archive.read(&file)?;
        read_file(&file, &bytes, &mut |t| {
            let sec = t.commit_us.div_euclid(1_000_000) * 1_000_000;
            let whole = t.commit_us == sec;
            let ok_since = since_us.is_none_or(|s| {
                t.commit_us >= s || (whole && sec >= s.div_euclid(1_000_000) * 1_000_000)
            });
            let ok_until = until_us.is_none_or(|u| t.commit_us <= u);
            if ok_since && ok_until && !t.changes.is_empty() {
                out.push(t);
            }
        })?;
    }
    Ok(out)
}

struct Open {
    start: usize,
    commit_us: Option<i64>,
    last_ts: u32,
    gtid: Option<String>,
    thread_id: Option<u32>,
    statements: Vec<String>,
    changes: Vec<Change>,
    in_begin: bool,
    standalone: bool,
}

/// Reads one archived file's transactions.
pub fn read_file(file: &str, bytes: &[u8], sink: &mut dyn FnMut(Transaction)) -> Result<(), Error> {
    let Some((_, fh, fde)) = format::events(bytes).next() else {
        return Ok(());
    };
    if fh.type_code != types::FORMAT_DESCRIPTION {
        return Err(bad(file, 4, "the first event is not a format description"));
    }
    let crc = format::fde_checksum_alg(fde) == 1;
    let mut reader = EventStreamReader::new(BinlogVersion::Version4);
    let mut maps: std::collections::HashMap<u64, Vec<u8>> = Default::default();
    let mut cur: Option<Open> = None;
    for (at, h, ev) in format::events(bytes) {
        let t = h.type_code;
        let end = at + ev.len();
        if t == types::TRANSACTION_PAYLOAD {
            return Err(bad(
                file,
                at,
                "a compressed transaction (binlog_transaction_compression=ON) cannot be recovered; turn it off on the server",
            ));
        }
        if (types::MARIA_ROWS_COMPRESSED_FIRST..=types::MARIA_ROWS_COMPRESSED_LAST).contains(&t) {
            return Err(bad(
                file,
                at,
                "a compressed row event (log_bin_compress=ON) cannot be recovered; turn it off on the server",
            ));
        }
        // Only the events mysql_common knows go through its reader.
        let known = t < 160;
        let event = if known {
            Some(
                reader
                    .read(ev)
                    .map_err(|e| bad(file, at, format!("cannot decode the event: {e}")))?
                    .ok_or_else(|| bad(file, at, "an empty event"))?,
            )
        } else {
            None
        };
        match t {
            t if format::is_bookkeeping(t) => continue,
            types::GTID | types::ANONYMOUS_GTID | types::MARIA_GTID => {
                let (commit_us, gtid, standalone) = format::gtid_event(t, ev, crc);
                cur = Some(Open {
                    start: at,
                    commit_us,
                    last_ts: h.timestamp,
                    gtid,
                    thread_id: None,
                    statements: Vec::new(),
                    changes: Vec::new(),
                    in_begin: t == types::MARIA_GTID && !standalone,
                    standalone,
                });
                continue;
            }
            _ => {}
        }
        let txn = cur.get_or_insert_with(|| Open {
            start: at,
            commit_us: None,
            last_ts: h.timestamp,
            gtid: None,
            thread_id: None,
            statements: Vec::new(),
            changes: Vec::new(),
            in_begin: false,
            standalone: false,
        });
        txn.last_ts = h.timestamp;
        let mut done = false;
        match t {
            types::XID => done = true,
            types::QUERY => {
                let q = format::query(ev, crc)
                    .ok_or_else(|| bad(file, at, "a query event that does not parse"))?;
                if txn.thread_id.is_none() {
                    txn.thread_id = Some(q.thread_id);
                }
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
            types::MARIA_ANNOTATE_ROWS => {
                let e = ev.len() - if crc { 4 } else { 0 };
                if let Some(b) = ev.get(format::HEADER_LEN..e) {
                    txn.statements.push(String::from_utf8_lossy(b).into_owned());
                }
            }
            types::ROWS_QUERY => {
                // 1 byte length (ignored: may be truncated), then the text to the end.
                let e = ev.len() - if crc { 4 } else { 0 };
                if let Some(b) = ev.get(format::HEADER_LEN + 1..e) {
                    txn.statements.push(String::from_utf8_lossy(b).into_owned());
                }
            }
            types::TABLE_MAP => {
                if let Some((id, _, _)) = format::table_map(ev) {
                    maps.insert(id, ev.to_vec());
                }
            }
            _ if format::is_rows(t) => {
                let Some(event) = &event else { continue };
                let change = decode_rows(file, at, ev, event, &reader, &maps)?;
                txn.changes.push(change);
            }
            _ => {}
        }
        if !done {
            continue;
        }
        let Some(o) = cur.take() else { continue };
        let commit_us = o.commit_us.unwrap_or(i64::from(o.last_ts) * 1_000_000);
        sink(Transaction {
            start: Point {
                file: file.to_owned(),
                pos: o.start as u64,
            },
            end: Point {
                file: file.to_owned(),
                pos: end as u64,
            },
            commit_us,
            gtid: o.gtid,
            thread_id: o.thread_id,
            statements: o.statements,
            changes: o.changes,
            fde: fde.to_vec(),
            checksum: crc,
        });
    }
    Ok(())
}

fn decode_rows(
    file: &str,
    at: usize,
    ev: &[u8],
    event: &mysql_common::binlog::events::Event,
    reader: &EventStreamReader,
    maps: &std::collections::HashMap<u64, Vec<u8>>,
) -> Result<Change, Error> {
    let data = event
        .read_data()
        .map_err(|e| bad(file, at, format!("cannot decode the row event: {e}")))?;
    let Some(EventData::RowsEvent(rows)) = data else {
        return Err(bad(file, at, "a row event mysql_common does not know"));
    };
    let kind = match &rows {
        RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => Kind::Insert,
        RowsEventData::UpdateRowsEventV1(_) | RowsEventData::UpdateRowsEvent(_) => Kind::Update,
        RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => Kind::Delete,
        RowsEventData::PartialUpdateRowsEvent(_) => {
            return Err(bad(
                file,
                at,
                "a partial JSON update (binlog_row_value_options=PARTIAL_JSON) has no full before-image; turn it off on the server",
            ))
        }
    };
    let id = rows.table_id();
    let tme: &TableMapEvent<'_> = reader.get_tme(id).ok_or_else(|| {
        bad(
            file,
            at,
            format!("a row event for table id {id} without its table map"),
        )
    })?;
    let table_map = maps
        .get(&id)
        .cloned()
        .ok_or_else(|| bad(file, at, format!("no table map for table id {id}")))?;
    let n = rows.num_columns() as usize;
    let rows_data = rows.rows_data();
    let data_len = event.data().len();
    let rows_at = format::HEADER_LEN + data_len - rows_data.len();
    let bitmap_len = n.div_ceil(8);
    let nbitmaps = if kind == Kind::Update { 2 } else { 1 };
    let bitmap_at = rows_at - nbitmaps * bitmap_len;
    let first_cols = rows
        .columns_before_image()
        .or_else(|| rows.columns_after_image())
        .ok_or_else(|| bad(file, at, "a row event without a column bitmap"))?;
    if first_cols.count_ones() != n {
        return Err(bad(
            file,
            at,
            format!(
                "the row event of {}.{} does not hold every column (binlog_row_image is not FULL): its rows cannot be recovered",
                tme.database_name(),
                tme.table_name()
            ),
        ));
    }
    let after_cols = if kind == Kind::Update {
        rows.columns_after_image()
    } else {
        None
    };
    let mut buf = ParseBuf(rows_data);
    let mut out = Vec::new();
    let total = rows_data.len();
    while !buf.is_empty() {
        let from = total - buf.len();
        let row: BinlogRow = buf
            .parse((n as u64, first_cols, false, tme))
            .map_err(|e| bad(file, at, format!("cannot decode a row image: {e}")))?;
        let first = rows_at + from..rows_at + total - buf.len();
        let values: Vec<Option<Value>> = row.unwrap().into_iter().map(|v| Some(plain(v))).collect();
        let (second, after) = match after_cols {
            Some(c) => {
                let from = total - buf.len();
                let row: BinlogRow = buf
                    .parse((n as u64, c, false, tme))
                    .map_err(|e| bad(file, at, format!("cannot decode a row image: {e}")))?;
                let r = rows_at + from..rows_at + total - buf.len();
                let v: Vec<Option<Value>> =
                    row.unwrap().into_iter().map(|v| Some(plain(v))).collect();
                (Some(r), Some(v))
            }
            None => (None, None),
        };
        out.push(Row {
            first,
            second,
            values,
            after,
        });
    }
    let column_types = (0..n)
        .map(|i| tme.get_column_type(i).ok().flatten())
        .collect();
    Ok(Change {
        schema: tme.database_name().into_owned(),
        table: tme.table_name().into_owned(),
        kind,
        table_map,
        event: ev.to_vec(),
        rows_at,
        bitmap_at,
        columns: n,
        column_types,
        rows: out,
    })
}

/// A signed value the table map could not mark unsigned (MariaDB logs no
/// signedness by default), read as unsigned of the column's width.
pub fn as_unsigned(v: &Value, t: Option<ColumnType>) -> Value {
    let bits = match t {
        Some(ColumnType::MYSQL_TYPE_TINY) => 8,
        Some(ColumnType::MYSQL_TYPE_SHORT) => 16,
        Some(ColumnType::MYSQL_TYPE_INT24) => 24,
        Some(ColumnType::MYSQL_TYPE_LONG) => 32,
        Some(ColumnType::MYSQL_TYPE_LONGLONG) => 64,
        _ => return v.clone(),
    };
    match v {
        Value::Int(i) if *i < 0 => {
            let u = *i as u64;
            Value::UInt(if bits == 64 {
                u
            } else {
                u & ((1u64 << bits) - 1)
            })
        }
        other => other.clone(),
    }
}

/// Rewrites a change's event type to its WRITE_ROWS counterpart of the same
/// version (DELETE_ROWS has the same body layout: one bitmap, one image per row).
pub fn write_type_for(t: u8) -> Option<u8> {
    match t {
        types::DELETE_ROWS_V1 | types::UPDATE_ROWS_V1 | types::WRITE_ROWS_V1 => {
            Some(types::WRITE_ROWS_V1)
        }
        types::DELETE_ROWS | types::UPDATE_ROWS | types::WRITE_ROWS => Some(types::WRITE_ROWS),
        _ => None,
    }
}

impl Change {
    /// A WRITE_ROWS event inserting the first image of the given rows (a
    /// delete's or update's before-images), flags `| STMT_END_F`.
    pub fn as_write(&self, rows: &[usize], checksum: bool) -> Vec<u8> {
        let t = self.event[4];
        let mut out = self.event[..self.bitmap_at].to_vec();
        out[4] = write_type_for(t).unwrap_or(t);
        let bitmap_len = self.columns.div_ceil(8);
        out.extend_from_slice(&self.event[self.bitmap_at..self.bitmap_at + bitmap_len]);
        for &i in rows {
            out.extend_from_slice(&self.event[self.rows[i].first.clone()]);
        }
        if checksum {
            out.extend_from_slice(&[0; 4]);
        }
        set_stmt_end(&mut out, checksum);
        out
    }

    /// An UPDATE_ROWS event that sets the given rows back to their
    /// before-images (each pair swapped), flags `| STMT_END_F`.
    pub fn as_reverse_update(&self, rows: &[usize], checksum: bool) -> Vec<u8> {
        let mut out = self.event[..self.rows_at].to_vec();
        for &i in rows {
            let r = &self.rows[i];
            if let Some(s) = &r.second {
                out.extend_from_slice(&self.event[s.clone()]);
                out.extend_from_slice(&self.event[r.first.clone()]);
            }
        }
        if checksum {
            out.extend_from_slice(&[0; 4]);
        }
        set_stmt_end(&mut out, checksum);
        out
    }
}

fn set_stmt_end(ev: &mut [u8], checksum: bool) {
    // log_pos 0: the event is no longer where the file put it.
    if let Some((_, flags)) = format::rows_table(ev) {
        format::set_rows_flags(ev, flags | format::STMT_END_F, checksum);
    } else {
        format::finish_event(ev, checksum);
    }
}
