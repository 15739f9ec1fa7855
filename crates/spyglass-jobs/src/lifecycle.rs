//! From `[backup]` settings (and a command line's overrides) to the backup
//! library's retention and shipping options, shared by `backup prune`,
//! `backup ship` and the nightly job.

use std::path::Path;

use spyglass_backup::prune::PruneReport;
use spyglass_backup::retention::Policy;
use spyglass_backup::ship::SshOptions;

use crate::settings::{BackupSettings, HumanDuration, Settings};

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
