//! The tool's own settings file, `spyglass-admin.toml`, typed where it is
//! read: enums for every choice, [`HumanDuration`] for every duration,
//! [`DirKey`] for directory keys. A wrong value or an unknown key is a
//! [`JobError::Settings`] naming the file, line and column (and, for an
//! unknown key, the valid ones), so a typo never falls back to a default.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use spyglass_cleanup::dirs::DirKey;

use crate::JobError;

/// The default settings file names, looked for in this order.
pub const DEFAULT_PATHS: [&str; 2] = ["spyglass-admin.toml", "/etc/spyglass-admin.toml"];

/// Everything `spyglass-admin.toml` may contain.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `[backup]`
    #[serde(default)]
    pub backup: BackupSettings,
    /// `[users]`: policy overrides and custom roles (see `spyglass_privileges::PolicyConfig`).
    #[serde(default)]
    pub users: spyglass_privileges::PolicyConfig,
    /// `[cleanup]`
    #[serde(default)]
    pub cleanup: CleanupSettings,
    /// `[nightly]`
    #[serde(default)]
    pub nightly: NightlySettings,
    /// `[s3]`: how `s3://` ship targets are reached.
    #[serde(default)]
    pub s3: S3Settings,
    /// `[binlog]`: the binary-log archive (point-in-time restores).
    #[serde(default)]
    pub binlog: BinlogSettings,
    /// The file these came from, if any.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

/// `[backup]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSettings {
    /// Where backup sets are written.
    pub destination: Option<PathBuf>,
    /// Set name prefix for `nightly` (default "nightly").
    pub label: Option<String>,
    /// Retention (`backup prune`, `nightly`, `ship --prune`): keep the N newest sets.
    pub keep_last: Option<u32>,
    /// Keep the newest set of each of the last N days that have one.
    pub keep_daily: Option<u32>,
    /// Keep the newest set of each of the last N ISO weeks that have one.
    pub keep_weekly: Option<u32>,
    /// Keep the newest set of each of the last N months that have one.
    pub keep_monthly: Option<u32>,
    /// Keep the newest set of each of the last N years that have one.
    pub keep_yearly: Option<u32>,
    /// Keep every set younger than this, e.g. "10d".
    pub keep_within: Option<HumanDuration>,
    /// Where `nightly` ships each set: `ssh://user@host[:port]/path` or a directory.
    pub ship_to: Option<String>,
    /// Private key for shipping (only its path is ever passed to ssh).
    pub identity: Option<PathBuf>,
    /// An ssh_config file used instead of ~/.ssh/config when shipping.
    pub ssh_config: Option<PathBuf>,
    /// Shipping bandwidth limit, KiB/s.
    pub bwlimit_kib: Option<u32>,
    /// The dedicated backup account (`NAME@HOST`, made by `users
    /// add-backup-user`): `users audit` checks it against what the enabled
    /// backup features need instead of treating it as a lab member.
    pub account: Option<String>,
    /// The password of `account` (first line; keep it mode 0600). With it,
    /// `nightly` connects as `account`'s name instead of the DataJoint
    /// config's account.
    pub password_file: Option<PathBuf>,
    /// The server `nightly` (and the units `schedule` prints) connect to,
    /// `HOST` or `HOST:PORT`, when it is not the one the DataJoint config
    /// names; with `port` and `socket`, used only when the command line
    /// gives none of `--host`, `--port`, `--socket`.
    pub host: Option<String>,
    /// The port on `host` (default 3306, or the DataJoint config's).
    pub port: Option<u16>,
    /// A Unix socket instead of `host` (a server on this machine).
    pub socket: Option<PathBuf>,
}

impl BackupSettings {
    /// The name part of `account` (`NAME@HOST`, quotes allowed).
    pub fn account_name(&self) -> Option<String> {
        let a = self.account.as_deref()?.trim();
        let name = a.rsplit_once('@').map_or(a, |(n, _)| n);
        let name = name.trim_matches(|c| c == '\'' || c == '"' || c == '`');
        (!name.is_empty()).then(|| name.to_owned())
    }
}

/// `[s3]`: endpoint, region, addressing and credentials of `s3://`
/// targets; what is not set here comes from the standard AWS environment
/// variables, then `~/.aws/credentials` and `~/.aws/config`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// `https://host[:port]` of a store other than AWS (campus S3, Garage, MinIO).
    pub endpoint: Option<String>,
    /// Region (AWS: e.g. `eu-central-1`; Garage: `garage`).
    pub region: Option<String>,
    /// `path` (`host/bucket/key`), `virtual` (`bucket.host/key`) or `auto`
    /// (default: virtual on AWS, path on any other endpoint).
    pub addressing: Option<S3Addressing>,
    /// The profile in `~/.aws/credentials` / `~/.aws/config`.
    pub profile: Option<String>,
    /// Access key id (with `secret_access_key`; the file must then be
    /// readable by its owner only).
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// CA certificates (PEM) for an https endpoint with a private CA.
    pub ca_file: Option<PathBuf>,
    /// Multipart part size in MiB (default 16; AWS needs at least 5).
    pub part_size_mb: Option<u64>,
    /// Objects or parts in flight at once (default 4).
    pub parallel: Option<usize>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("profile", &self.profile)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "(hidden)"),
            )
            .finish_non_exhaustive()
    }
}

/// `[s3] addressing`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum S3Addressing {
    /// Virtual-host on AWS, path-style elsewhere.
    Auto,
    /// `host/bucket/key`.
    Path,
    /// `bucket.host/key`.
    Virtual,
}

/// `[nightly]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NightlySettings {
    /// Backup worker connections (default: number of cores).
    pub threads: Option<usize>,
    /// Only schemas matching these globs (default: all); see [`spyglass_db::schemas`].
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Leave out schemas matching these globs.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// gzip (default) or zstd.
    pub compress: Option<CompressMethod>,
    /// Compression level.
    pub level: Option<i32>,
    /// Delete the local set once its shipped copy verified (default false).
    pub remove_after_ship: Option<bool>,
    /// Apply the retention policy on the ship target too (default true).
    pub prune_remote: Option<bool>,
    /// What the cleanup step does (default scan).
    pub cleanup: Option<CleanupMode>,
    /// A shell command that receives the JSON summary on stdin (mail, Slack webhook, ...).
    pub notify_command: Option<String>,
    /// When to run notify_command (default always).
    pub notify_on: Option<NotifyOn>,
    /// Weekday(s) whose verify also restores the new set into scratch
    /// schemas, compares every table and drops them: `"sun"`, `"mon,thu"`,
    /// `["sat", "sun"]`, `"daily"` (UTC days, as in set names).
    pub restore_drill: Option<OneOrMany>,
    /// Write `spyglass-admin report`'s HTML page here after each run (a
    /// relative path is under `[backup] destination`).
    pub report: Option<PathBuf>,
    /// `doctor` flags the nightly as stale when its newest successful run
    /// (backup and verify done) is older than this (default 26h).
    pub stale_after: Option<HumanDuration>,
    /// `doctor` flags the off-site copy as stale when the newest verified
    /// ship is older than this (default 26h; only with `[backup] ship_to`).
    pub offsite_stale_after: Option<HumanDuration>,
    /// `[[nightly.targets]]`: more places each set is shipped to, each
    /// with its own retention (besides `[backup] ship_to`).
    #[serde(default)]
    pub targets: Vec<ShipTargetSettings>,
}

/// `[[nightly.targets]]`: one more ship target of the nightly (like one of
/// pgBackRest's repositories). When it sets no `keep_*` rule it is pruned
/// by `[backup] keep_*`; when it sets any, those are its whole policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipTargetSettings {
    /// `ssh://user@host[:port]/path`, `s3://bucket/prefix` or a directory.
    pub to: String,
    /// Keep the N newest sets there.
    pub keep_last: Option<u32>,
    /// Keep the newest set of each of the last N days there.
    pub keep_daily: Option<u32>,
    /// Keep the newest set of each of the last N ISO weeks there.
    pub keep_weekly: Option<u32>,
    /// Keep the newest set of each of the last N months there.
    pub keep_monthly: Option<u32>,
    /// Keep the newest set of each of the last N years there.
    pub keep_yearly: Option<u32>,
    /// Keep every set younger than this there.
    pub keep_within: Option<HumanDuration>,
}

/// `[binlog]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinlogSettings {
    /// The archive service (`binlog archive` without `--until-now`) ships
    /// the archive to `[backup] ship_to` this often, so the off-site copy
    /// lags by at most this much (default 15m; `0s`: only with the nightly).
    pub ship_every: Option<HumanDuration>,
    /// `nightly` asks for attention when the archive is further behind the
    /// server than this (default 1h).
    pub max_lag: Option<HumanDuration>,
}

/// A string or a list of strings in the settings file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// `"sun"` or `"mon,thu"`.
    One(String),
    /// `["sat", "sun"]`.
    Many(Vec<String>),
}

impl OneOrMany {
    /// Every item, a string split at commas.
    pub fn items(&self) -> Vec<String> {
        let all: Vec<&str> = match self {
            OneOrMany::One(s) => s.split(',').collect(),
            OneOrMany::Many(v) => v.iter().flat_map(|s| s.split(',')).collect(),
        };
        all.into_iter()
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// `[cleanup]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanupSettings {
    /// Where quarantine runs go (default `<spyglass base>/spyglass-admin-quarantine`).
    pub quarantine: Option<PathBuf>,
    /// Grace period, e.g. "24h".
    pub min_age: Option<HumanDuration>,
    /// Age of stale temp entries, e.g. "7d".
    pub temp_age: Option<HumanDuration>,
    /// Refuse when more than this fraction of a store would go.
    pub max_fraction: Option<f64>,
    /// Schemas whose rows cleanup may act on (globs, see
    /// [`spyglass_db::schemas`]); default all. Rows of every schema still
    /// protect files.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// More columns holding folder paths, besides sorting_path and recording_path.
    #[serde(default)]
    pub tracked_dirs: Vec<TrackedDirSetting>,
    /// `[cleanup.stores.NAME]`: rules for one DataJoint store.
    #[serde(default)]
    pub stores: std::collections::BTreeMap<String, CleanupStoreSettings>,
}

/// `[cleanup.stores.NAME]`, e.g. `[cleanup.stores.raw]`: how cleanup treats
/// one store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanupStoreSettings {
    /// Leave the store alone entirely: not scanned, nothing in it touched.
    #[serde(default)]
    pub exclude: bool,
    /// The store's own grace period (e.g. "30d" for raw files waiting to
    /// be ingested); `--min-age` and `[cleanup] min_age` do not change it.
    pub min_age: Option<HumanDuration>,
}

/// `[[cleanup.tracked_dirs]]`: a column whose values are folders in a Spyglass directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackedDirSetting {
    /// Column name, e.g. "waveform_path".
    pub column: String,
    /// The Spyglass directory: sorting, recording, waveforms, video, export.
    #[serde(deserialize_with = "dir_key")]
    pub dir: DirKey,
    /// Optional "schema.table" glob; default any table with that column.
    pub table: Option<String>,
}

/// A compression method, in settings (`[nightly] compress`) and on the
/// command line (`backup run --compress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum CompressMethod {
    /// gzip (`gunzip` reads it).
    #[serde(alias = "gz")]
    Gzip,
    /// zstd (`zstd -d` reads it).
    #[serde(alias = "zst")]
    Zstd,
    /// Plain SQL.
    None,
}

impl CompressMethod {
    /// The library's compression with `level` (default: gzip 6, zstd 3);
    /// the error says which range the level must be in.
    pub fn with_level(
        self,
        level: Option<i32>,
    ) -> Result<spyglass_backup::compress::Compression, String> {
        let name = match self {
            CompressMethod::Gzip => "gzip",
            CompressMethod::Zstd => "zstd",
            CompressMethod::None => "none",
        };
        spyglass_backup::compress::Compression::parse(name, level)
    }
}

/// `[nightly] cleanup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CleanupMode {
    /// No cleanup step.
    Off,
    /// Report what cleanup would do (reads only).
    #[default]
    Scan,
    /// Quarantine what the scan finds (undo with `cleanup restore`).
    Apply,
}

/// `[nightly] notify_on`: the least severe result that runs `notify_command`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyOn {
    /// Every run.
    #[default]
    Always,
    /// Runs with warnings or failures.
    Warnings,
    /// Runs that need attention (a step failed, possible data loss) only.
    #[serde(alias = "attention")]
    Errors,
}

impl NotifyOn {
    /// Whether a run that exits with `exit_code` (0, 1, 2) notifies.
    pub fn notifies(self, exit_code: u8) -> bool {
        let level = match self {
            NotifyOn::Always => 0,
            NotifyOn::Warnings => 1,
            NotifyOn::Errors => 2,
        };
        exit_code >= level
    }
}

/// A duration written for people: `24h`, `7d`, `2weeks`, `1h 30m`
/// (humantime's syntax). Reads from settings and, through [`FromStr`], from
/// the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s)
            .map(HumanDuration)
            .map_err(|e| format!("'{s}' is not a duration ({e}); write it like 36h, 7d or 2weeks"))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

fn dir_key<'de, D: Deserializer<'de>>(d: D) -> Result<DirKey, D::Error> {
    let s = String::deserialize(d)?;
    DirKey::SUBDIRS
        .into_iter()
        .find(|k| k.key() == s)
        .ok_or_else(|| {
            let keys: Vec<&str> = DirKey::SUBDIRS.iter().map(|k| k.key()).collect();
            serde::de::Error::custom(format!(
                "unknown Spyglass directory '{s}', expected one of {}",
                keys.join(", ")
            ))
        })
}

/// Finds and reads the settings file: `explicit` (which must exist), else
/// the first of [`DEFAULT_PATHS`] that exists, else defaults.
pub fn load(explicit: Option<&Path>) -> Result<Settings, JobError> {
    let path = locate(explicit)?;
    let Some(path) = path else {
        return Ok(Settings::default());
    };
    let text = std::fs::read_to_string(&path).map_err(|source| JobError::SettingsRead {
        path: path.clone(),
        source,
    })?;
    let mut s = parse(&text, &path)?;
    s.path = Some(path);
    Ok(s)
}

/// The settings file [`load`] reads: `explicit` (which must exist), else
/// the first of [`DEFAULT_PATHS`] that exists, else none.
pub fn locate(explicit: Option<&Path>) -> Result<Option<PathBuf>, JobError> {
    Ok(match explicit {
        Some(p) => {
            if !p.is_file() {
                return Err(JobError::SettingsMissing { path: p.to_owned() });
            }
            Some(p.to_owned())
        }
        None => DEFAULT_PATHS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .map(|p| std::path::absolute(&p).unwrap_or(p)),
    })
}

/// What can still be read from a settings file that does not parse, so a
/// nightly that cannot start still logs and notifies: see [`salvage`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Salvaged {
    /// `[backup] destination`.
    pub destination: Option<PathBuf>,
    /// `[nightly] notify_command` (blank is none).
    pub notify_command: Option<String>,
}

/// Reads `[backup] destination` and `[nightly] notify_command` from
/// settings text however wrong the rest is: from the whole file when it is
/// valid TOML (unknown keys and bad values elsewhere do not matter), else
/// line by line (a `[section]` header, then `key = "value"` lines each read
/// on its own), so a syntax error elsewhere does not hide them.
pub fn salvage(text: &str) -> Salvaged {
    let pick = |t: &toml::Table, section: &str, key: &str| {
        t.get(section)
            .and_then(|s| s.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let (destination, notify) = match text.parse::<toml::Table>() {
        Ok(t) => (
            pick(&t, "backup", "destination"),
            pick(&t, "nightly", "notify_command"),
        ),
        Err(_) => {
            let (mut dest, mut notify) = (None, None);
            let mut section = String::new();
            for line in text.lines() {
                let l = line.trim();
                if let Some(h) = l.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
                    section = h.trim().to_owned();
                    continue;
                }
                let Ok(t) = l.parse::<toml::Table>() else {
                    continue;
                };
                let get = |k: &str| t.get(k).and_then(|v| v.as_str()).map(str::to_owned);
                match section.as_str() {
                    "backup" => dest = get("destination").or(dest),
                    "nightly" => notify = get("notify_command").or(notify),
                    _ => {}
                }
            }
            (dest, notify)
        }
    };
    Salvaged {
        destination: destination.filter(|d| !d.is_empty()).map(PathBuf::from),
        notify_command: notify.filter(|c| !c.trim().is_empty()),
    }
}

/// Parses settings text; errors read `FILE:LINE:COL: message`.
pub fn parse(text: &str, path: &Path) -> Result<Settings, JobError> {
    toml::from_str(text).map_err(|e| {
        let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        JobError::Settings {
            path: path.to_owned(),
            line,
            col,
            message: e.message().replace("unknown field", "unknown key"),
        }
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str, path: &str) -> String {
        parse(text, Path::new(path)).unwrap_err().to_string()
    }

    #[test]
    fn unknown_key_names_key_file_and_line() {
        let e = err("[backup]\ndestinaton = \"/x\"\n", "/etc/s.toml");
        assert!(
            e.starts_with("/etc/s.toml:2:1: unknown key `destinaton`"),
            "{e}"
        );
        // The valid keys are listed.
        assert!(e.contains("destination"), "{e}");
        let e = err("[bakup]\n", "s.toml");
        assert!(e.contains("s.toml:1:") && e.contains("bakup"), "{e}");
    }

    #[test]
    fn reads_cleanup_section() {
        let s = parse(
            "[cleanup]\nquarantine = \"/q\"\nmin_age = \"2d\"\nschemas = [\"lab_*\"]\n[[cleanup.tracked_dirs]]\ncolumn = \"waveform_path\"\ndir = \"waveforms\"\n",
            Path::new("s.toml"),
        )
        .unwrap();
        assert_eq!(s.cleanup.quarantine.as_deref(), Some(Path::new("/q")));
        assert_eq!(s.cleanup.tracked_dirs[0].dir, DirKey::Waveforms);
        assert_eq!(
            s.cleanup.min_age,
            Some(HumanDuration(Duration::from_secs(2 * 86_400)))
        );
        let e = err("[cleanup]\nmin_agee = \"1d\"\n", "s.toml");
        assert!(e.contains("min_agee"), "{e}");
    }

    #[test]
    fn reads_per_store_cleanup_rules() {
        let s = parse(
            "[cleanup.stores.raw]\nmin_age = \"30d\"\n[cleanup.stores.kachery]\nexclude = true\n",
            Path::new("s.toml"),
        )
        .unwrap();
        assert_eq!(
            s.cleanup.stores["raw"].min_age,
            Some(HumanDuration(Duration::from_secs(30 * 86_400)))
        );
        assert!(!s.cleanup.stores["raw"].exclude);
        assert!(s.cleanup.stores["kachery"].exclude);
        let e = err("[cleanup.stores.raw]\nexclued = true\n", "s.toml");
        assert!(e.contains("s.toml:2:") && e.contains("exclude"), "{e}");
        let e = err("[cleanup.stores.raw]\nmin_age = \"soon\"\n", "s.toml");
        assert!(e.contains("s.toml:2:"), "{e}");
    }

    #[test]
    fn reads_lifecycle_keys() {
        let s = parse(
            "[backup]\ndestination = \"/b\"\nkeep_last = 3\nkeep_daily = 7\nkeep_within = \"2d\"\nship_to = \"ssh://u@nas/b\"\nidentity = \"/k\"\n[nightly]\ncleanup = \"off\"\nnotify_command = \"mail x\"\nnotify_on = \"warnings\"\ncompress = \"zstd\"\n",
            Path::new("s.toml"),
        )
        .unwrap();
        assert_eq!(
            (s.backup.keep_last, s.backup.keep_daily),
            (Some(3), Some(7))
        );
        assert_eq!(s.backup.ship_to.as_deref(), Some("ssh://u@nas/b"));
        let b = BackupSettings {
            account: Some("'spyglass_backup'@'localhost'".into()),
            ..BackupSettings::default()
        };
        assert_eq!(b.account_name().as_deref(), Some("spyglass_backup"));
        assert_eq!(s.nightly.notify_command.as_deref(), Some("mail x"));
        assert_eq!(s.nightly.cleanup, Some(CleanupMode::Off));
        assert_eq!(s.nightly.notify_on, Some(NotifyOn::Warnings));
        assert_eq!(s.nightly.compress, Some(CompressMethod::Zstd));
        let e = err("[nightly]\nnotify = \"x\"\n", "s.toml");
        assert!(e.starts_with("s.toml:2:1: unknown key `notify`"), "{e}");
    }

    #[test]
    fn reads_the_nightly_connection() {
        let s = parse(
            "[backup]\naccount = \"bk@localhost\"\npassword_file = \"/etc/b.pw\"\nhost = \"db.lab\"\nport = 3307\nsocket = \"/run/mysqld/mysqld.sock\"\n",
            Path::new("s.toml"),
        )
        .unwrap();
        assert_eq!(s.backup.host.as_deref(), Some("db.lab"));
        assert_eq!(s.backup.port, Some(3307));
        assert_eq!(
            s.backup.socket.as_deref(),
            Some(Path::new("/run/mysqld/mysqld.sock"))
        );
        let e = err("[backup]\nport = \"x\"\n", "s.toml");
        assert!(e.starts_with("s.toml:2:8: "), "{e}");
    }

    #[test]
    fn reads_destination() {
        let s = parse("[backup]\ndestination = \"/data/b\"\n", Path::new("s.toml")).unwrap();
        assert_eq!(s.backup.destination.as_deref(), Some(Path::new("/data/b")));
    }

    #[test]
    fn bad_values_name_the_line_and_the_choices() {
        let e = err("[nightly]\ncleanup = \"sometimes\"\n", "s.toml");
        assert!(
            e.starts_with("s.toml:2:11: unknown variant `sometimes`"),
            "{e}"
        );
        assert!(e.contains("`off`, `scan`, `apply`"), "{e}");
        let e = err("[nightly]\nnotify_on = \"warning\"\n", "s.toml");
        assert!(
            e.starts_with("s.toml:2:") && e.contains("`warnings`"),
            "{e}"
        );
        let e = err("[nightly]\ncompress = \"xz\"\n", "s.toml");
        assert!(e.contains("`gzip`") && e.contains("`zstd`"), "{e}");
        let e = err("\n[backup]\nkeep_within = \"ten days\"\n", "s.toml");
        assert!(
            e.starts_with("s.toml:3:15: 'ten days' is not a duration"),
            "{e}"
        );
        let e = err(
            "[[cleanup.tracked_dirs]]\ncolumn = \"c\"\ndir = \"waveform\"\n",
            "s.toml",
        );
        assert!(
            e.starts_with("s.toml:3:7: unknown Spyglass directory 'waveform'")
                && e.contains("waveforms"),
            "{e}"
        );
    }

    #[test]
    fn salvage_reads_notify_and_destination_from_a_broken_file() {
        // Valid TOML, wrong keys and values elsewhere.
        let t = "[backup]\ndestination = \"/b\"\nkeep_dayly = 3\n[nightly]\ncleanup = \"sometimes\"\nnotify_command = \"mail x\"\n";
        assert!(parse(t, Path::new("s.toml")).is_err());
        let s = salvage(t);
        assert_eq!(s.destination.as_deref(), Some(Path::new("/b")));
        assert_eq!(s.notify_command.as_deref(), Some("mail x"));
        // Not TOML at all: line by line, in the right sections only.
        let t = "[cleanup]\nnotify_command = \"no\"\n[backup]\ndestination = \"/c\"\nthis is = = broken\n[nightly]\n notify_command = 'cat > /tmp/n'\n";
        assert!(t.parse::<toml::Table>().is_err());
        let s = salvage(t);
        assert_eq!(s.destination.as_deref(), Some(Path::new("/c")));
        assert_eq!(s.notify_command.as_deref(), Some("cat > /tmp/n"));
        assert_eq!(
            salvage("[nightly]\nnotify_command = \" \"\n"),
            Salvaged::default()
        );
    }

    #[test]
    fn reads_drill_and_staleness() {
        let s = parse(
            "[nightly]\nrestore_drill = \"sun, Wed\"\nstale_after = \"30h\"\n",
            Path::new("s.toml"),
        )
        .unwrap();
        assert_eq!(s.nightly.restore_drill.unwrap().items(), ["sun", "wed"]);
        assert_eq!(
            s.nightly.stale_after,
            Some(HumanDuration(Duration::from_secs(30 * 3600)))
        );
        let s = parse(
            "[nightly]\nrestore_drill = [\"sat\", \"sun\"]\nnotify_on = \"attention\"\n",
            Path::new("s.toml"),
        )
        .unwrap();
        assert_eq!(s.nightly.restore_drill.unwrap().items(), ["sat", "sun"]);
        assert_eq!(s.nightly.notify_on, Some(NotifyOn::Errors));
    }

    #[test]
    fn notify_levels() {
        assert!(NotifyOn::Always.notifies(0));
        assert!(!NotifyOn::Warnings.notifies(0) && NotifyOn::Warnings.notifies(1));
        assert!(!NotifyOn::Errors.notifies(1) && NotifyOn::Errors.notifies(2));
    }

    #[test]
    fn compression_levels() {
        use spyglass_backup::compress::Compression;
        assert_eq!(
            CompressMethod::Gzip.with_level(None),
            Ok(Compression::Gzip(6))
        );
        assert_eq!(
            CompressMethod::Zstd.with_level(Some(5)),
            Ok(Compression::Zstd(5))
        );
        assert!(CompressMethod::Gzip.with_level(Some(13)).is_err());
    }
}
