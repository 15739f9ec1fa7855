//! The tool's own settings file, `spyglass-admin.toml`. Unknown keys are
//! errors naming the key, the file and the line, so a typo never silently
//! falls back to a default.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::output::UserError;

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
    pub keep_within: Option<String>,
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
}

/// `[nightly]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NightlySettings {
    /// Backup worker connections (default: number of cores).
    pub threads: Option<usize>,
    /// Only schemas matching these globs (default: all).
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Leave out schemas matching these globs.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// "gzip" (default) or "zstd".
    pub compress: Option<String>,
    /// Compression level.
    pub level: Option<i32>,
    /// Delete the local set once its shipped copy verified (default false).
    pub remove_after_ship: Option<bool>,
    /// Apply the retention policy on the ship target too (default true).
    pub prune_remote: Option<bool>,
    /// "scan" (default), "apply" (quarantine what scan finds) or "off".
    pub cleanup: Option<String>,
    /// A shell command that receives the JSON summary on stdin (mail, Slack webhook, ...).
    pub notify_command: Option<String>,
    /// When to run notify_command: "always" (default), "warnings" or "errors".
    pub notify_on: Option<String>,
}

/// `[cleanup]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanupSettings {
    /// Where quarantine runs go (default `<spyglass base>/spyglass-admin-quarantine`).
    pub quarantine: Option<PathBuf>,
    /// Grace period, e.g. "24h".
    pub min_age: Option<String>,
    /// Age of stale temp entries, e.g. "7d".
    pub temp_age: Option<String>,
    /// Refuse when more than this fraction of a store would go.
    pub max_fraction: Option<f64>,
    /// Schemas whose rows cleanup may act on (`*` wildcard); default all.
    /// Rows of every schema still protect files.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// More columns holding folder paths, besides sorting_path and recording_path.
    #[serde(default)]
    pub tracked_dirs: Vec<TrackedDirSetting>,
}

/// `[[cleanup.tracked_dirs]]`: a column whose values are folders in a Spyglass directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackedDirSetting {
    /// Column name, e.g. "waveform_path".
    pub column: String,
    /// The Spyglass directory key: sorting, recording, waveforms, video, export.
    pub dir: String,
    /// Optional "schema.table" (`*` wildcard); default any table with that column.
    pub table: Option<String>,
}

/// Finds and reads the settings file: `explicit` (from `--config` or
/// `SPYGLASS_ADMIN_CONFIG`, which must exist), else `./spyglass-admin.toml`,
/// else `/etc/spyglass-admin.toml`, else defaults.
pub fn load(explicit: Option<&Path>) -> anyhow::Result<Settings> {
    let path = match explicit {
        Some(p) => {
            if !p.is_file() {
                return Err(UserError::new(format!(
                    "settings file {} does not exist",
                    p.display()
                ))
                .hint("check --config or SPYGLASS_ADMIN_CONFIG")
                .into());
            }
            Some(p.to_owned())
        }
        None => ["spyglass-admin.toml", "/etc/spyglass-admin.toml"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .map(|p| std::path::absolute(&p).unwrap_or(p)),
    };
    let Some(path) = path else {
        return Ok(Settings::default());
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        UserError::new(format!("cannot read settings file {}: {e}", path.display()))
    })?;
    let mut s = parse(&text, &path)?;
    s.path = Some(path);
    Ok(s)
}

/// Parses settings text; errors read `FILE:LINE:COL: message`.
pub fn parse(text: &str, path: &Path) -> Result<Settings, UserError> {
    toml::from_str(text).map_err(|e| {
        let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        let msg = e.message().replace("unknown field", "unknown key");
        UserError::new(format!("{}:{line}:{col}: {msg}", path.display()))
            .hint("remove or correct that key; the README lists every setting")
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

    #[test]
    fn unknown_key_names_key_file_and_line() {
        let e = parse("[backup]\ndestinaton = \"/x\"\n", Path::new("/etc/s.toml")).unwrap_err();
        assert!(
            e.message
                .starts_with("/etc/s.toml:2:1: unknown key `destinaton`"),
            "{}",
            e.message
        );
        let e = parse("[bakup]\n", Path::new("s.toml")).unwrap_err();
        assert!(
            e.message.contains("s.toml:1:") && e.message.contains("bakup"),
            "{}",
            e.message
        );
    }

    #[test]
    fn reads_cleanup_section() {
        let s = parse(
            "[cleanup]\nquarantine = \"/q\"\nmin_age = \"2d\"\nschemas = [\"lab_*\"]\n[[cleanup.tracked_dirs]]\ncolumn = \"waveform_path\"\ndir = \"waveforms\"\n",
            Path::new("s.toml"),
        )
        .unwrap();
        assert_eq!(s.cleanup.quarantine.as_deref(), Some(Path::new("/q")));
        assert_eq!(s.cleanup.tracked_dirs[0].dir, "waveforms");
        let e = parse("[cleanup]\nmin_agee = \"1d\"\n", Path::new("s.toml")).unwrap_err();
        assert!(e.message.contains("min_agee"), "{}", e.message);
    }

    #[test]
    fn reads_lifecycle_keys() {
        let s = parse(
            "[backup]\ndestination = \"/b\"\nkeep_last = 3\nkeep_daily = 7\nkeep_within = \"2d\"\nship_to = \"ssh://u@nas/b\"\nidentity = \"/k\"\n[nightly]\ncleanup = \"off\"\nnotify_command = \"mail x\"\n",
            Path::new("s.toml"),
        )
        .unwrap();
        assert_eq!(
            (s.backup.keep_last, s.backup.keep_daily),
            (Some(3), Some(7))
        );
        assert_eq!(s.backup.ship_to.as_deref(), Some("ssh://u@nas/b"));
        assert_eq!(s.nightly.notify_command.as_deref(), Some("mail x"));
        let e = parse("[nightly]\nnotify = \"x\"\n", Path::new("s.toml")).unwrap_err();
        assert!(
            e.message.starts_with("s.toml:2:1: unknown key `notify`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn reads_destination() {
        let s = parse("[backup]\ndestination = \"/data/b\"\n", Path::new("s.toml")).unwrap();
        assert_eq!(s.backup.destination.as_deref(), Some(Path::new("/data/b")));
    }
}
