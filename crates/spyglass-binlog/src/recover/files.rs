//! The files the recovered rows name: DataJoint external attributes
//! (`filepath@store`, `attach@store`, `blob@store`: a `binary(16)` column
//! whose comment starts with `:filepath@`, `:attach@` or `:blob@`, with a
//! foreign key to `~external_<store>`). Each hash resolves through the live
//! `~external_<store>` row, or, when cleanup removed that row, through the
//! cleanup quarantine runs' manifests; the file is then in place, in a
//! quarantine run, or missing. [`restore`] puts quarantined ones back with
//! cleanup's own restore of each item (the `~external` row inserted again
//! from the manifest, the file moved back, never over an existing file).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mysql::prelude::Queryable;
use mysql::{Conn, Value};
use spyglass_cleanup::store::Store;
use spyglass_cleanup::{paths, quarantine};

use super::{wanted, Transaction};
use crate::Error;

/// Where a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// At its path in the store.
    InPlace,
    /// In a cleanup quarantine run.
    Quarantined,
    /// Neither.
    Missing,
}

/// Where the `~external` row of a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowPlace {
    /// In the live `~external_<store>` table.
    Live,
    /// Deleted by cleanup, saved in a quarantine run's manifest.
    Quarantined,
    /// Deleted, with no record in any quarantine run.
    Gone,
}

/// One file the recovered rows name.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileRef {
    /// `filepath`, `attach` or `blob`.
    pub kind: String,
    /// The store.
    pub store: String,
    /// The schema of the `~external_<store>` table.
    pub external_schema: String,
    /// The `~external` row's hash (hex).
    pub hash: String,
    /// The recovered rows naming it, as `` `schema`.`table`.column ``.
    pub named_by: Vec<String>,
    /// The file's path (unknown when the row and every record of it are gone,
    /// or the store is not configured here).
    pub path: Option<PathBuf>,
    /// Where the file is.
    pub place: Place,
    /// Where its `~external` row is.
    pub external_row: RowPlace,
    /// The quarantine run holding it (its name), if any.
    pub run: Option<String>,
    /// Whether `--restore-files` put it (and its row) back just now.
    pub restored: bool,
    /// Why it is missing or was not restored, when known.
    pub detail: Option<String>,
    #[serde(skip)]
    run_dir: Option<PathBuf>,
    #[serde(skip)]
    entry: Option<u64>,
}

/// One external attribute of a table: column index, name, kind, store,
/// schema of its `~external` table.
struct ExtColumn {
    index: usize,
    name: String,
    kind: &'static str,
    store: String,
    schema: String,
}

fn ext_columns(conn: &mut Conn, schema: &str, table: &str) -> Result<Vec<ExtColumn>, Error> {
    let rows: Vec<(String, u64, String, String, String)> = conn
        .exec(
            "SELECT c.COLUMN_NAME, c.ORDINAL_POSITION, c.COLUMN_COMMENT, \
                    k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME \
             FROM information_schema.COLUMNS c JOIN information_schema.KEY_COLUMN_USAGE k \
               ON k.TABLE_SCHEMA = c.TABLE_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME \
              AND k.COLUMN_NAME = c.COLUMN_NAME \
             WHERE c.TABLE_SCHEMA = ? AND c.TABLE_NAME = ? \
               AND k.REFERENCED_TABLE_NAME LIKE '~external\\_%' \
             ORDER BY c.ORDINAL_POSITION",
            (schema, table),
        )
        .map_err(|e| {
            Error::Db(spyglass_db::DbError::query(
                format!("reading the external attributes of `{schema}`.`{table}`"),
                e,
            ))
        })?;
    let mut out = Vec::new();
    for (name, pos, comment, ref_schema, ref_table) in rows {
        let Some((kind, rest)) = [
            ("filepath", ":filepath@"),
            ("attach", ":attach@"),
            ("blob", ":blob@"),
        ]
        .iter()
        .find_map(|(k, p)| comment.strip_prefix(p).map(|r| (*k, r))) else {
            continue;
        };
        let store = rest.split(':').next().unwrap_or_default().to_owned();
        if ref_table != format!("~external_{store}") || pos == 0 {
            continue;
        }
        out.push(ExtColumn {
            index: pos as usize - 1,
            name,
            kind,
            store,
            schema: ref_schema,
        });
    }
    Ok(out)
}

/// (schema of the `~external` table, store, hash).
type ExtKey = (String, String, [u8; 16]);

fn hash16(v: &Value) -> Option<[u8; 16]> {
    let Value::Bytes(b) = v else { return None };
    // A BINARY(16) may come without its trailing zero bytes.
    if b.len() > 16 {
        return None;
    }
    let mut h = [0u8; 16];
    h[..b.len()].copy_from_slice(b);
    Some(h)
}

fn text_of(hex: Option<&str>) -> Option<String> {
    let h = hex?;
    let bytes: Option<Vec<u8>> = (0..h.len() / 2)
        .map(|i| u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    bytes.and_then(|b| String::from_utf8(b).ok())
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// The files the rows the transactions deleted (and, with
/// `include_updates`, the before-images of rows they updated) name, and
/// where each is. `stores` come from the DataJoint config; `quarantine` is
/// the cleanup quarantine directory (absent: no run is looked at).
pub fn referenced(
    conn: &mut Conn,
    txns: &[&Transaction],
    include_updates: bool,
    stores: &[Store],
    quarantine: Option<&Path>,
) -> Result<Vec<FileRef>, Error> {
    let (tables, changes) = wanted(txns, include_updates);
    // (external schema, store, hash) -> kind, named by.
    let mut found: BTreeMap<ExtKey, (&'static str, Vec<String>)> = BTreeMap::new();
    for (s, t) in &tables {
        let cols = ext_columns(conn, s, t)?;
        if cols.is_empty() {
            continue;
        }
        for (_, c) in changes
            .iter()
            .filter(|(_, c)| c.schema == *s && c.table == *t)
        {
            for r in &c.rows {
                for col in &cols {
                    let Some(h) = r
                        .values
                        .get(col.index)
                        .and_then(|v| v.as_ref())
                        .and_then(hash16)
                    else {
                        continue;
                    };
                    let by = format!("`{s}`.`{t}`.{}", col.name);
                    let e = found
                        .entry((col.schema.clone(), col.store.clone(), h))
                        .or_insert((col.kind, Vec::new()));
                    if !e.1.contains(&by) {
                        e.1.push(by);
                    }
                }
            }
        }
    }
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let runs = match quarantine {
        Some(q) => quarantine::runs(q).map_err(Error::Cleanup)?,
        None => Vec::new(),
    };
    let mut out = Vec::new();
    for ((xs, store_name, h), (kind, named_by)) in found {
        let hex = paths::hex(&h);
        let xt = format!("~external_{store_name}");
        let xq = spyglass_db::quote::qualified(&xs, &xt);
        let live: Option<(Option<String>, Option<String>)> = match conn.exec_first(
            format!("SELECT attachment_name, filepath FROM {xq} WHERE hash = ?"),
            (Value::Bytes(h.to_vec()),),
        ) {
            Ok(r) => r,
            Err(mysql::Error::MySqlError(m)) if m.code == 1146 => None,
            Err(e) => {
                return Err(Error::Db(spyglass_db::DbError::query(
                    format!("looking up {hex} in `{xs}`.`{xt}`"),
                    e,
                )))
            }
        };
        // The newest quarantine entry that saved this row.
        let saved = runs.iter().rev().find_map(|r| {
            r.entries
                .iter()
                .rev()
                .find(|e| {
                    e.row.as_ref().is_some_and(|row| {
                        row.table == xq
                            && row
                                .values
                                .iter()
                                .any(|(k, v)| k == "hash" && v.as_deref() == Some(hex.as_str()))
                    })
                })
                .map(|e| (r, e))
        });
        let store = stores.iter().find(|s| s.name == store_name && s.is_file());
        let names = match (&live, saved) {
            (Some((a, f)), _) => Some((a.clone(), f.clone())),
            (None, Some((_, e))) => {
                let v = |k: &str| {
                    e.row
                        .as_ref()
                        .and_then(|r| r.values.iter().find(|(c, _)| c == k))
                        .and_then(|(_, v)| v.as_deref())
                };
                Some((text_of(v("attachment_name")), text_of(v("filepath"))))
            }
            (None, None) => None,
        };
        let path = match (store, &names) {
            (Some(st), Some((a, f))) => Some(st.location.join(paths::row_path(
                &xs,
                &h,
                a.as_deref(),
                f.as_deref(),
                &st.subfolding,
            ))),
            _ => None,
        };
        let mut f = FileRef {
            kind: kind.to_owned(),
            store: store_name.clone(),
            external_schema: xs.clone(),
            hash: hex.clone(),
            named_by,
            path: path.clone(),
            place: Place::Missing,
            external_row: if live.is_some() {
                RowPlace::Live
            } else if saved.is_some() {
                RowPlace::Quarantined
            } else {
                RowPlace::Gone
            },
            run: None,
            restored: false,
            detail: None,
            run_dir: None,
            entry: None,
        };
        // A quarantine entry holding the file: the row's own (when cleanup
        // removed the row), else one that moved the file from its path.
        let holding = saved
            .filter(|(_, e)| live.is_none() || e.original.as_deref() == path.as_deref())
            .or_else(|| {
                let p = path.as_deref()?;
                runs.iter().rev().find_map(|r| {
                    r.entries
                        .iter()
                        .rev()
                        .find(|e| e.original.as_deref() == Some(p))
                        .map(|e| (r, e))
                })
            });
        if let Some((r, e)) = holding {
            f.run = Some(r.header.run.clone());
            f.run_dir = Some(r.dir.clone());
            f.entry = Some(e.id);
        }
        if store.is_none() {
            f.detail = Some(format!(
                "the store '{store_name}' is not a file store in the DataJoint config here"
            ));
        } else if path.as_deref().is_some_and(exists) {
            f.place = Place::InPlace;
            if f.external_row != RowPlace::Live {
                f.detail = Some(format!("the file is in place but its `{xt}` row is not"));
            }
        } else if let Some((r, e)) = holding {
            if e.stored.as_ref().is_some_and(|s| exists(&r.dir.join(s))) {
                f.place = Place::Quarantined;
            } else if e.stored.is_none() {
                f.detail = Some(format!(
                    "not on disk, and already gone when cleanup ran (run {} saved only its `{xt}` row)",
                    r.header.run
                ));
            } else {
                f.detail = Some(format!(
                    "quarantine run {} has no copy of the file",
                    r.header.run
                ));
            }
        } else if path.is_none() {
            f.detail = Some(format!(
                "its `{xt}` row is gone and no quarantine run saved it"
            ));
        }
        out.push(f);
    }
    Ok(out)
}

/// Puts the quarantined files of `refs` back (and their `~external` rows,
/// when cleanup removed them) with cleanup's restore of each item; a file is
/// never moved over something at its path. Updates `refs`.
pub fn restore(conn: &mut Conn, refs: &mut [FileRef]) -> Result<(), Error> {
    let mut by_run: BTreeMap<PathBuf, Vec<u64>> = BTreeMap::new();
    for f in refs.iter() {
        let wanted = f.place == Place::Quarantined || f.external_row == RowPlace::Quarantined;
        if let (true, Some(d), Some(id)) = (wanted, &f.run_dir, f.entry) {
            let ids = by_run.entry(d.clone()).or_default();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    for (dir, ids) in by_run {
        let done = quarantine::restore_entries(&dir, Some(&ids), Some(&mut *conn))
            .map_err(Error::Cleanup)?;
        for d in done {
            for f in refs
                .iter_mut()
                .filter(|f| f.entry == Some(d.id) && f.run_dir.as_deref() == Some(&dir))
            {
                if d.outcome == "restored" {
                    f.restored = true;
                    if f.path.as_deref().is_some_and(exists) {
                        f.place = Place::InPlace;
                    }
                    if f.external_row == RowPlace::Quarantined {
                        f.external_row = RowPlace::Live;
                    }
                    f.detail = None;
                } else {
                    f.detail = Some(d.outcome.clone());
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_binary_values_are_padded_and_hex_text_decodes() {
        assert_eq!(
            hash16(&Value::Bytes(vec![1, 2])),
            Some([1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        );
        assert_eq!(hash16(&Value::Bytes(vec![0; 17])), None);
        assert_eq!(hash16(&Value::Int(3)), None);
        assert_eq!(text_of(Some("612f622e6e7762")), Some("a/b.nwb".to_owned()));
        assert_eq!(text_of(None), None);
    }
}
