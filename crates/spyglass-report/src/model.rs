//! The report's types. They are also `spyglass-admin report --json`'s wire
//! format: fields are only ever added. Bytes are plain integers, times RFC
//! 3339 UTC strings, rates bytes per day.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Format of [`Report`] (`format` in the JSON).
pub const FORMAT: u32 = 1;

/// Everything the page shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// [`FORMAT`].
    pub format: u32,
    /// `spyglass-admin` version that made it.
    pub tool_version: String,
    /// When the report was made.
    pub generated: String,
    /// The server.
    pub server: ServerInfo,
    /// Problems from every section, worst first: the page shows them before anything else.
    pub problems: Vec<Problem>,
    /// Database and file bytes per schema, prefix, module and store.
    pub storage: Section<Storage>,
    /// Growth over time and the runway to a full disk.
    pub growth: Section<Growth>,
    /// Backup sets and nightly runs.
    pub backups: Section<Backups>,
    /// What cleanup could free, quarantine runs, dangling references.
    pub cleanup: Section<Cleanup>,
    /// Roles, accounts, passwords and audit findings.
    pub users: Section<Users>,
}

/// A section: gathered (when, how long it took, the data), or why not.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Section<T> {
    /// The data.
    Gathered {
        /// When gathering finished.
        at: String,
        /// Seconds it took.
        seconds: f64,
        /// The section's data.
        data: T,
    },
    /// Not available: not configured, or its source failed.
    Unavailable {
        /// Why, in words.
        reason: String,
    },
}

impl<T> Section<T> {
    /// The data, when gathered.
    pub fn data(&self) -> Option<&T> {
        match self {
            Section::Gathered { data, .. } => Some(data),
            Section::Unavailable { .. } => None,
        }
    }
}

/// The server the report is about.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerInfo {
    /// `host:port` or the socket.
    pub address: String,
    /// `mysql` or `mariadb`.
    pub flavor: String,
    /// `VERSION()`.
    pub version: String,
    /// When it was read.
    pub gathered: String,
}

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Possible data loss, anyone could log in, no good backup.
    High,
    /// Needs attention.
    Medium,
    /// Hygiene.
    Low,
}

/// One problem, shown in red at the top.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Problem {
    /// Severity.
    pub severity: Severity,
    /// `storage`, `growth`, `backups`, `cleanup` or `users`.
    pub section: String,
    /// What is wrong.
    pub message: String,
}

/// How a schema's name groups it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupKind {
    /// A shared module prefix of the policy (`common_*`, `lfp_*`, ...).
    Module,
    /// A user's own prefix (`alice_*`).
    User,
    /// Neither (no `_` in the name).
    Other,
}

/// Storage of one schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaUsage {
    /// Schema.
    pub schema: String,
    /// Its group's kind.
    pub group_kind: GroupKind,
    /// Its group: the module or user prefix, or the schema itself.
    pub group: String,
    /// Tables.
    pub tables: u64,
    /// `information_schema.TABLES.DATA_LENGTH`, summed.
    pub data_bytes: u64,
    /// `INDEX_LENGTH`, summed.
    pub index_bytes: u64,
    /// Files its `~external` rows name that exist on disk.
    pub files: u64,
    /// Their bytes (a file this schema shares with others counted in full here).
    pub file_bytes: u64,
    /// Of those, bytes of files other schemas' rows name too.
    pub shared_file_bytes: u64,
    /// Files its rows name that are not on disk.
    pub missing_files: u64,
}

/// Storage of a module or user prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupUsage {
    /// Kind.
    pub kind: GroupKind,
    /// Prefix (or schema, for `other`).
    pub name: String,
    /// Schemas in it.
    pub schemas: u64,
    /// Data + index bytes.
    pub db_bytes: u64,
    /// Distinct files its schemas' rows name (a file two of its schemas share counted once).
    pub files: u64,
    /// Their bytes.
    pub file_bytes: u64,
    /// The prefix is a login account's user name (user prefixes only).
    pub account_exists: bool,
}

/// Files several schemas reference: one line per set of schemas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sharing {
    /// The schemas whose rows name these files.
    pub schemas: Vec<String>,
    /// Files.
    pub files: u64,
    /// Bytes (counted once).
    pub bytes: u64,
}

/// One store's files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreUsage {
    /// Store name.
    pub store: String,
    /// Its directory.
    pub location: String,
    /// Distinct files rows name that exist.
    pub files: u64,
    /// Their bytes, each file once.
    pub file_bytes: u64,
    /// Files rows name that are missing.
    pub missing_files: u64,
    /// The file system holding it.
    pub volume: Option<Volume>,
}

/// A file system's space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// The directory measured.
    pub path: String,
    /// Bytes available to unprivileged users.
    pub free_bytes: u64,
    /// Size.
    pub total_bytes: u64,
}

/// One table among the largest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableUsage {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// `TABLE_ROWS` (an estimate for InnoDB).
    pub rows: u64,
    /// Data bytes.
    pub data_bytes: u64,
    /// Index bytes.
    pub index_bytes: u64,
}

/// The storage section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Storage {
    /// Data + index bytes of every schema (system schemas left out).
    pub db_bytes: u64,
    /// Distinct files named by any row, each once.
    pub files: u64,
    /// Their bytes.
    pub file_bytes: u64,
    /// Per schema, largest first (database + file bytes).
    pub schemas: Vec<SchemaUsage>,
    /// Per module and user prefix, largest first.
    pub groups: Vec<GroupUsage>,
    /// Files shared by more than one schema.
    pub sharing: Vec<Sharing>,
    /// Per store.
    pub stores: Vec<StoreUsage>,
    /// The largest tables.
    pub top_tables: Vec<TableUsage>,
    /// The file system of the server's data directory, when it is on this machine.
    pub database_volume: Option<Volume>,
    /// Why `database_volume` is missing, when it is.
    pub database_volume_note: Option<String>,
    /// Stores that are not local directories, or were not measured, and why.
    pub notes: Vec<String>,
}

/// One point in time of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// When it was measured.
    pub at: String,
    /// Unix seconds of `at`.
    pub unix: i64,
    /// Where the numbers came from: `report` (information_schema and the
    /// stores, written by `report`, one per night) or `manifest` (a backup
    /// set's manifest: uncompressed dump bytes per schema, no files).
    pub source: String,
    /// Bytes per schema.
    pub schema_bytes: BTreeMap<String, u64>,
    /// File bytes per store (empty for manifests).
    pub store_bytes: BTreeMap<String, u64>,
}

impl HistoryRecord {
    /// Sum of [`HistoryRecord::schema_bytes`].
    pub fn db_bytes(&self) -> u64 {
        self.schema_bytes.values().sum()
    }
}

/// A growth rate and where the disk runs out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Runway {
    /// `database` or `store <name>`.
    pub what: String,
    /// The series the rate comes from (`report` or `manifest`).
    pub source: String,
    /// Points the rate was fitted to.
    pub points: u64,
    /// Bytes now (last point).
    pub bytes: u64,
    /// Least-squares growth, bytes per day (negative: shrinking).
    pub bytes_per_day: Option<f64>,
    /// Free bytes on its file system, when known.
    pub free_bytes: Option<u64>,
    /// Days until the free bytes are used up at this rate (none: not growing or unknown).
    pub days_left: Option<f64>,
    /// Why a number is missing, in words.
    pub note: Option<String>,
}

/// The growth section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Growth {
    /// The history file under the backup destination.
    pub history_file: String,
    /// Every point, oldest first (history records, and manifests of nights the history lacks).
    pub series: Vec<HistoryRecord>,
    /// Per volume.
    pub runway: Vec<Runway>,
}

/// A backup set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupRun {
    /// Set name.
    pub name: String,
    /// `complete`, `partial` or `corrupt`.
    pub status: String,
    /// Start (from the manifest, else the name).
    pub started: Option<String>,
    /// Unix seconds of the start.
    pub started_unix: Option<i64>,
    /// Dump duration in seconds (manifest start to finish).
    pub seconds: Option<f64>,
    /// Bytes on disk.
    pub bytes: u64,
    /// Uncompressed bytes.
    pub raw_bytes: Option<u64>,
    /// `gzip`, `zstd`, ... with level.
    pub compression: Option<String>,
    /// `good`, `bad` or `never`.
    pub verify: String,
    /// When verified, and the first problem.
    pub verify_detail: Option<String>,
    /// Ship status per target from the nightly log: `ok`, `failed`, `skipped`, or none when unknown.
    pub ship: Option<String>,
    /// The nightly's ship line.
    pub ship_detail: Option<String>,
    /// Warnings: the nightly's failed or warning steps, why the set is corrupt.
    pub warnings: Vec<String>,
    /// The dump's notes: standing facts of the server (a MyISAM table, the
    /// time writers were blocked), shown but not warnings.
    pub notes: Vec<String>,
}

/// One line of `spyglass-nightly.log`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NightlyRun {
    /// Start.
    pub started: String,
    /// `ok`, `warnings` or `failed`.
    pub status: String,
    /// Wall time.
    pub seconds: f64,
    /// The set it wrote.
    pub set: Option<String>,
    /// `step: status` for every step.
    pub steps: Vec<(String, String)>,
}

/// The backups section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backups {
    /// The destination.
    pub destination: String,
    /// Sets, oldest first.
    pub sets: Vec<BackupRun>,
    /// Nightly runs from the log, oldest first (the last 60).
    pub nightly: Vec<NightlyRun>,
    /// The newest set that verified here and was shipped (nightly log).
    pub newest_offsite_verified: Option<String>,
    /// The newest set that verified here.
    pub newest_verified: Option<String>,
    /// The binary-log archive's restorable window and lag (current RPO), or why not shown.
    pub binlog_archive: String,
}

/// Count and bytes of a cleanup class or folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassTally {
    /// Class name (`untracked`, `dangling`, ...) or `root: folder`.
    pub name: String,
    /// Items.
    pub count: u64,
    /// Bytes.
    pub bytes: u64,
}

/// A quarantine run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineRun {
    /// Its folder name.
    pub run: String,
    /// When it was made.
    pub created: String,
    /// Age in days.
    pub age_days: f64,
    /// Items still in it.
    pub items: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// The cleanup section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cleanup {
    /// Dangling references: rows whose file is gone (possible data loss), listed first.
    pub dangling: Vec<String>,
    /// Bytes that apply could free (every actionable class).
    pub reclaimable_bytes: u64,
    /// Per class, every class.
    pub classes: Vec<ClassTally>,
    /// Largest first folders, by bytes (at most 10).
    pub top_folders: Vec<ClassTally>,
    /// Younger than the grace period, left alone.
    pub young: ClassTally,
    /// The quarantine folder.
    pub quarantine: Option<String>,
    /// Its runs, oldest first.
    pub quarantine_runs: Vec<QuarantineRun>,
    /// The scan's problems and what it did not scan.
    pub notes: Vec<String>,
}

/// One account in the role matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRow {
    /// `user@host`.
    pub account: String,
    /// One cell per [`Users::roles`]: `active`, `granted` (not active at login) or empty.
    pub cells: Vec<String>,
    /// Days since the password was set.
    pub password_age_days: Option<i64>,
    /// First password never changed (expired).
    pub password_expired: bool,
    /// Accepts a well-known temporary password.
    pub temporary_password: bool,
    /// Locked.
    pub locked: bool,
}

/// One audit finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFinding {
    /// `high`, `medium` or `low`.
    pub severity: String,
    /// Stable kebab-case kind.
    pub kind: String,
    /// The role or account.
    pub subject: String,
    /// What is wrong.
    pub message: String,
    /// What to run.
    pub fix: String,
}

/// The users section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Users {
    /// The policy's role names, the matrix's columns.
    pub roles: Vec<String>,
    /// Accounts (system accounts left out), the matrix's rows.
    pub accounts: Vec<AccountRow>,
    /// Accounts with a temporary or never-changed password.
    pub weak_passwords: Vec<String>,
    /// Policy roles no account holds, or held but not active at login.
    pub inactive_roles: Vec<String>,
    /// Every audit finding, in the audit's fix order.
    pub findings: Vec<AuditFinding>,
    /// Checks not made, and why.
    pub notes: Vec<String>,
}
