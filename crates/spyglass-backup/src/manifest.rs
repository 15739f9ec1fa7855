//! `manifest.json`: what a set holds. Fields are only ever added, so older
//! tools keep reading newer manifests (unknown fields are ignored).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::compress::Compression;
use crate::Error;

/// Current manifest format. A manifest with a higher (or zero) format is
/// refused, naming it: its files may mean something this version does not know.
pub const FORMAT: u32 = 1;
use crate::set::MANIFEST;

/// Everything about a set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version.
    pub format: u32,
    /// `spyglass-admin` version that wrote it.
    pub tool_version: String,
    /// `native` or `mysqldump`.
    pub engine: String,
    /// The set's label.
    pub label: String,
    /// Server it was taken from.
    pub server: ServerRecord,
    /// How the snapshot was made.
    pub snapshot: Snapshot,
    /// RFC 3339 UTC start and end.
    pub started: String,
    /// End time.
    pub finished: String,
    /// Compression of every file.
    pub compression: Compression,
    /// Literal encoding of binary values: `escaped` (`_binary'...'`).
    pub encoding: String,
    /// The source's `sql_mode` when the set was made (absent in older sets);
    /// restore loads with it, minus the modes that reject stored values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_mode: Option<String>,
    /// Longest statement in any file; the target's `max_allowed_packet` must be at least this.
    pub max_statement_bytes: u64,
    /// Schemas in restore order.
    pub schemas: Vec<String>,
    /// Every table dumped.
    pub tables: Vec<TableRecord>,
    /// Every file, in restore order within each kind.
    pub files: Vec<FileRecord>,
    /// Notes for the reader: fallbacks taken, tables not snapshot-consistent.
    pub notes: Vec<String>,
}

/// Server identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerRecord {
    /// `mysql` or `mariadb`.
    pub flavor: String,
    /// `VERSION()`.
    pub version: String,
    /// `host:port`.
    pub address: String,
}

/// How the consistent snapshot was taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// `flush_tables_with_read_lock`, or `none` (each worker's snapshot began at a slightly different moment).
    pub method: String,
    /// Lock that kept DDL out during the dump: `lock_instance_for_backup`, `backup_stage_block_ddl` or `none`.
    pub ddl_lock: String,
    /// Binary log file at the snapshot, when the server logs and we may read it.
    pub binlog_file: Option<String>,
    /// Position in it.
    pub binlog_position: Option<u64>,
    /// GTID set / position at the snapshot.
    pub gtid: Option<String>,
    /// Number of worker connections sharing the snapshot.
    pub workers: usize,
    /// Milliseconds `FLUSH TABLES WITH READ LOCK` waited for running statements
    /// (writers wait behind it meanwhile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_wait_ms: Option<u64>,
    /// Milliseconds the global read lock was held, wait included: how long a
    /// writer could have been blocked by the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writers_blocked_ms: Option<u64>,
}

/// One table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableRecord {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Storage engine.
    pub engine: String,
    /// False for non-transactional engines (MyISAM, ...): not snapshot-consistent.
    pub consistent: bool,
    /// Rows, as `SELECT COUNT(*)` counts them (a versioned table's current rows).
    pub rows: u64,
    /// A MariaDB system-versioned table's history rows, written besides
    /// `rows` (its files hold both; absent for other tables and older sets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_rows: Option<u64>,
    /// `CHECKSUM TABLE` at snapshot time, when `--checksum` was given.
    pub checksum: Option<u64>,
    /// Data files of this table.
    pub chunks: u32,
}

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// Database and table definitions.
    Schema,
    /// Rows.
    Data,
    /// Views, triggers, routines, events.
    Post,
    /// Accounts, roles and grants.
    Accounts,
}

/// One file of the set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path relative to the set directory.
    pub path: String,
    /// Kind.
    pub kind: FileKind,
    /// Schema, except for accounts.
    pub schema: Option<String>,
    /// Table, for data files.
    pub table: Option<String>,
    /// Chunk number, for data files.
    pub chunk: Option<u32>,
    /// Rows, for data files.
    pub rows: u64,
    /// Uncompressed bytes.
    pub raw_bytes: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// sha256 of the bytes on disk.
    pub sha256: String,
}

impl FileRecord {
    /// The record of a file just written.
    pub fn written(
        path: String,
        kind: FileKind,
        schema: Option<&str>,
        table: Option<&str>,
        rows: u64,
        w: crate::compress::Written,
    ) -> Self {
        FileRecord {
            path,
            kind,
            schema: schema.map(str::to_owned),
            table: table.map(str::to_owned),
            chunk: table.map(|_| 1),
            rows,
            raw_bytes: w.raw_bytes,
            bytes: w.bytes,
            sha256: w.sha256,
        }
    }
}

impl Manifest {
    /// Reads `<set>/manifest.json`.
    pub fn load(set: &Path) -> Result<Manifest, Error> {
        let path = set.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::BadSet {
            set: set.to_owned(),
            detail: format!("cannot read {MANIFEST}: {e}"),
        })?;
        Manifest::from_json(&text).map_err(|detail| Error::BadSet {
            set: set.to_owned(),
            detail,
        })
    }

    /// Parses a manifest's text, refusing a format this version does not
    /// know (named, before any other field is looked at).
    pub fn from_json(text: &str) -> Result<Manifest, String> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| format!("{MANIFEST} is not a valid manifest: {e}"))?;
        match value.get("format").and_then(serde_json::Value::as_u64) {
            Some(f) if (1..=u64::from(FORMAT)).contains(&f) => {}
            Some(f) => {
                return Err(format!(
                    "{MANIFEST} has format {f}, which this spyglass-admin ({}) does not know (it reads format 1 to {FORMAT}); use the spyglass-admin that wrote the set, or a newer one",
                    env!("CARGO_PKG_VERSION")
                ))
            }
            None => return Err(format!("{MANIFEST} is not a valid manifest: no numeric \"format\"")),
        }
        serde_json::from_value(value)
            .map_err(|e| format!("{MANIFEST} is not a valid manifest: {e}"))
    }

    /// Total bytes on disk.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// Total uncompressed bytes.
    pub fn total_raw_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.raw_bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_formats_are_refused_by_number() {
        for f in [0, 2, 99] {
            let e = Manifest::from_json(&format!("{{\"format\": {f}}}")).unwrap_err();
            assert!(e.contains(&format!("format {f}")), "{e}");
        }
        let e = Manifest::from_json("{\"format\": 1}").unwrap_err();
        assert!(e.contains("not a valid manifest"), "{e}");
    }
}
