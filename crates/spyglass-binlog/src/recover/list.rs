//! `recover --list`: the archived transactions that deleted or updated rows,
//! with Spyglass's `common_usage.cautious_delete` record next to the delete
//! it describes.

use mysql::Value;

use super::rows::{Kind, Transaction};

/// Rows a transaction changed in one table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableCount {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Rows deleted.
    pub deleted: u64,
    /// Rows updated.
    pub updated: u64,
    /// Rows inserted.
    pub inserted: u64,
}

/// One transaction of the listing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    /// Its id for `recover TXN` (`file:pos` of its start).
    pub id: String,
    /// Commit time, microseconds since the epoch (UTC).
    pub commit_us: i64,
    /// GTID where the server gave one.
    pub gtid: Option<String>,
    /// Connection id that ran it.
    pub thread_id: Option<u32>,
    /// The statements the server logged with the row events.
    pub statements: Vec<String>,
    /// Rows per table, in the order first changed.
    pub tables: Vec<TableCount>,
    /// The `common_usage.cautious_delete` row Spyglass inserted right after
    /// it (same connection, the next transaction): (column, value).
    pub cautious_delete: Option<Vec<(String, Option<String>)>>,
}

/// A value for people: text as is, other bytes as hex, dates as ISO text.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::NULL => "NULL".into(),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') => s.to_owned(),
            _ => {
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                format!("0x{hex}")
            }
        },
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Double(d) => d.to_string(),
        Value::Date(y, mo, d, h, mi, s, us) => {
            if *us > 0 {
                format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}")
            } else {
                format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
            }
        }
        Value::Time(neg, d, h, mi, s, us) => {
            let sign = if *neg { "-" } else { "" };
            let h = u32::from(*h) + d * 24;
            if *us > 0 {
                format!("{sign}{h:02}:{mi:02}:{s:02}.{us:06}")
            } else {
                format!("{sign}{h:02}:{mi:02}:{s:02}")
            }
        }
    }
}

fn is_cautious_delete(schema: &str, table: &str) -> bool {
    schema == "common_usage" && table == "cautious_delete"
}

/// The transactions among `txns` that deleted (or updated) rows of a
/// schema `keep` accepts. `columns` names a live table's columns (None:
/// unknown; values are then shown as `@1`, `@2`, ...).
pub fn list(
    txns: &[Transaction],
    keep: &dyn Fn(&str) -> bool,
    columns: &mut dyn FnMut(&str, &str) -> Option<Vec<String>>,
) -> Vec<Listed> {
    let mut out = Vec::new();
    for (i, t) in txns.iter().enumerate() {
        let relevant = t.changes.iter().any(|c| {
            matches!(c.kind, Kind::Delete | Kind::Update)
                && keep(&c.schema)
                && !is_cautious_delete(&c.schema, &c.table)
        });
        if !relevant {
            continue;
        }
        let mut tables: Vec<TableCount> = Vec::new();
        for c in &t.changes {
            let n = c.rows.len() as u64;
            let e = match tables
                .iter_mut()
                .position(|x| x.schema == c.schema && x.table == c.table)
            {
                Some(p) => &mut tables[p],
                None => {
                    tables.push(TableCount {
                        schema: c.schema.clone(),
                        table: c.table.clone(),
                        deleted: 0,
                        updated: 0,
                        inserted: 0,
                    });
                    let l = tables.len() - 1;
                    &mut tables[l]
                }
            };
            match c.kind {
                Kind::Delete => e.deleted += n,
                Kind::Update => e.updated += n,
                Kind::Insert => e.inserted += n,
            }
        }
        // Spyglass logs the delete in its own transaction right after it, on the same connection.
        let mut cautious = None;
        for next in txns.iter().skip(i + 1).take(3) {
            if next.thread_id != t.thread_id {
                continue;
            }
            if let Some(c) = next
                .changes
                .iter()
                .find(|c| c.kind == Kind::Insert && is_cautious_delete(&c.schema, &c.table))
            {
                if let Some(r) = c.rows.first() {
                    let names = columns(&c.schema, &c.table);
                    cautious = Some(
                        r.values
                            .iter()
                            .enumerate()
                            .map(|(k, v)| {
                                let name = names
                                    .as_ref()
                                    .and_then(|n| n.get(k).cloned())
                                    .unwrap_or_else(|| format!("@{}", k + 1));
                                (
                                    name,
                                    v.as_ref().filter(|v| **v != Value::NULL).map(value_text),
                                )
                            })
                            .collect(),
                    );
                }
                break;
            }
            if next.changes.iter().any(|c| c.kind == Kind::Delete) {
                break;
            }
        }
        out.push(Listed {
            id: t.id(),
            commit_us: t.commit_us,
            gtid: t.gtid.clone(),
            thread_id: t.thread_id,
            statements: t.statements.clone(),
            tables,
            cautious_delete: cautious,
        });
    }
    out
}
