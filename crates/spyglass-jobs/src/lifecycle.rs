//! From `[backup]` settings (and a command line's overrides) to the backup
//! library's retention and shipping options, shared by `backup prune`,
//! `backup ship` and the nightly job.

use std::path::Path;

use spyglass_backup::prune::PruneReport;
use spyglass_backup::retention::Policy;
use spyglass_backup::ship::s3::{Addressing, S3Config};
use spyglass_backup::ship::SshOptions;

use crate::settings::{BackupSettings, HumanDuration, Settings};
use crate::JobError;

/// Seconds ssh waits for a connection when shipping or pruning.
pub const SSH_CONNECT_TIMEOUT: u32 = 15;

/// Retention rules given for one run (a command line's `--keep-*`); a rule
/// left `None` comes from `[backup] keep_*`.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeepOverrides {
    /// Keep the N newest sets.
    pub keep_last: Option<u32>,
    /// Daily sets.
    pub keep_daily: Option<u32>,
    /// Weekly sets.
    pub keep_weekly: Option<u32>,
    /// Monthly sets.
    pub keep_monthly: Option<u32>,
    /// Yearly sets.
    pub keep_yearly: Option<u32>,
    /// Every set younger than this.
    pub keep_within: Option<HumanDuration>,
}

/// The retention policy: overrides first, then `[backup] keep_*`.
pub fn policy(over: &KeepOverrides, b: &BackupSettings) -> Policy {
    Policy {
        keep_last: over.keep_last.or(b.keep_last).unwrap_or(0),
        keep_daily: over.keep_daily.or(b.keep_daily).unwrap_or(0),
        keep_weekly: over.keep_weekly.or(b.keep_weekly).unwrap_or(0),
        keep_monthly: over.keep_monthly.or(b.keep_monthly).unwrap_or(0),
        keep_yearly: over.keep_yearly.or(b.keep_yearly).unwrap_or(0),
        keep_within: over
            .keep_within
            .or(b.keep_within)
            .map_or(0, |d| d.0.as_secs()),
    }
}

/// ssh settings: the given key and config file first, then `[backup]`.
pub fn ssh_options(identity: Option<&Path>, config: Option<&Path>, s: &Settings) -> SshOptions {
    SshOptions {
        identity: identity
            .map(Path::to_owned)
            .or_else(|| s.backup.identity.clone()),
        config: config
            .map(Path::to_owned)
            .or_else(|| s.backup.ssh_config.clone()),
        connect_timeout: SSH_CONNECT_TIMEOUT,
    }
}

/// The `[s3]` settings as the ship layer's [`S3Config`]. A secret key in a
/// settings file that others can read is refused.
pub fn s3_config(s: &Settings) -> Result<S3Config, JobError> {
    use crate::settings::S3Addressing;
    let c = &s.s3;
    if c.secret_access_key.is_some() {
        if let Some(p) = &s.path {
            use std::os::unix::fs::PermissionsExt;
            if std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
                return Err(JobError::Invalid {
                    section: "s3",
                    key: "secret_access_key",
                    message: format!(
                        "{} holds a secret key but others may read it: chmod 600 it, or move the key to ~/.aws/credentials",
                        p.display()
                    ),
                });
            }
        }
    }
    if c.part_size_mb == Some(0) || c.parallel == Some(0) {
        return Err(JobError::Invalid {
            section: "s3",
            key: if c.parallel == Some(0) {
                "parallel"
            } else {
                "part_size_mb"
            },
            message: "must be at least 1".into(),
        });
    }
    Ok(S3Config {
        endpoint: c.endpoint.clone(),
        region: c.region.clone(),
        addressing: match c.addressing {
            None | Some(S3Addressing::Auto) => Addressing::Auto,
            Some(S3Addressing::Path) => Addressing::Path,
            Some(S3Addressing::Virtual) => Addressing::Virtual,
        },
        profile: c.profile.clone(),
        access_key_id: c.access_key_id.clone(),
        secret_access_key: c.secret_access_key.clone(),
        ca_file: c.ca_file.clone(),
        part_size: c.part_size_mb.map(|m| m << 20),
        parallel: c.parallel,
    })
}

/// True when a prune left something to look at: a set it could not remove,
/// or one that looks corrupt.
pub fn prune_has_findings(r: &PruneReport) -> bool {
    !r.failed.is_empty()
        || r.sets.iter().any(|d| {
            d.reasons
                .contains(&spyglass_backup::retention::Reason::Corrupt)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn overrides_win_over_settings() {
        let b = BackupSettings {
            keep_last: Some(3),
            keep_daily: Some(7),
            keep_within: Some(HumanDuration(Duration::from_secs(3600))),
            ..BackupSettings::default()
        };
        let p = policy(
            &KeepOverrides {
                keep_last: Some(1),
                ..KeepOverrides::default()
            },
            &b,
        );
        assert_eq!((p.keep_last, p.keep_daily, p.keep_within), (1, 7, 3600));
        assert!(policy(&KeepOverrides::default(), &BackupSettings::default()).is_empty());
    }
}
