//! Removing old sets by a retention [`Policy`]: [`prune_local`] in a
//! backup destination on this machine, [`prune_target`] on a ship target
//! (any [`Remote`]). Which sets go is decided by the pure
//! [`retention::plan`]; this module only lists and removes.

use std::path::Path;

use serde::Serialize;

use crate::list::{self, Status};
use crate::names;
use crate::retention::{self, Decision, Item, Policy};
use crate::ship::{is_set_name, ShipError, SshOptions, Target};

/// What a prune did, on this machine or on a target.
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    /// The directory (or `ssh://...` target).
    pub location: String,
    /// The policy applied.
    pub policy: Policy,
    /// Every set, oldest first, with the verdict and its reasons.
    pub sets: Vec<Decision>,
    /// Sets removed (empty on a dry run).
    pub removed: Vec<String>,
    /// True when nothing was removed on purpose.
    pub dry_run: bool,
    /// Sets that should have gone but could not be removed, with why.
    pub failed: Vec<(String, String)>,
    /// Closed binlog files removed from `DEST/binlog` (or a target's `binlog/`):
    /// those older than the oldest kept set's binlog coordinates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binlog_removed: Vec<String>,
}

/// Applies `policy` to the sets on a ship target (see [`retention::plan`];
/// staged copies there have no known writer).
pub fn prune_target(
    target: &Target,
    ssh: &SshOptions,
    policy: &Policy,
    now: i64,
    dry_run: bool,
) -> Result<PruneReport, ShipError> {
    let mut remote = target.lister(ssh);
    let there = remote.probe(false)?;
    let mut names: Vec<String> = there.into_iter().filter(|d| is_set_name(d)).collect();
    names.sort_by(|a, b| {
        names::parse_stamp(a)
            .cmp(&names::parse_stamp(b))
            .then(a.cmp(b))
    });
    let items: Vec<Item> = names.iter().map(|n| Item::on_target(n)).collect();
    let sets = retention::plan(&items, policy, now);
    let mut report = PruneReport {
        location: target.to_string(),
        policy: *policy,
        sets,
        removed: Vec::new(),
        dry_run,
        failed: Vec::new(),
        binlog_removed: Vec::new(),
    };
    if !dry_run {
        for d in report.sets.iter().filter(|d| !d.keep) {
            match remote.remove_set(&d.name) {
                Ok(()) => report.removed.push(d.name.clone()),
                Err(e) => report.failed.push((d.name.clone(), e.to_string())),
            }
        }
    }
    // The shipped binlog archive: keep what the oldest kept set there needs.
    if there_has_binlog(&names_listed(remote.as_mut())?) {
        let kept: Vec<String> = report
            .sets
            .iter()
            .filter(|d| d.keep && !d.name.ends_with(crate::set::PARTIAL))
            .map(|d| d.name.clone())
            .collect();
        if let Some(keep_from) = oldest_binlog_on_target(remote.as_ref(), &kept)? {
            report.binlog_removed =
                crate::ship::binlog::remove_before(target, ssh, &keep_from, dry_run)?;
        }
    }
    Ok(report)
}

fn names_listed(remote: &mut dyn crate::ship::Remote) -> Result<Vec<String>, ShipError> {
    remote.probe(false)
}

fn there_has_binlog(names: &[String]) -> bool {
    names.iter().any(|n| n == crate::ship::binlog::DIR)
}

/// The binlog file of the oldest kept set on a target (by sequence), or
/// None when a kept set has no coordinates (then nothing may go).
fn oldest_binlog_on_target(
    remote: &dyn crate::ship::Remote,
    kept: &[String],
) -> Result<Option<String>, ShipError> {
    let tmp = crate::ship::private_tempdir("spyglass-admin-prune-")?;
    let mut oldest: Option<String> = None;
    for name in kept {
        let dest = tmp.path().join(name);
        remote.fetch(name, &[crate::set::MANIFEST.to_owned()], &dest)?;
        let Some(f) = crate::manifest::Manifest::load(&dest)
            .ok()
            .and_then(|m| m.snapshot.binlog_file)
        else {
            return Ok(None);
        };
        if oldest.as_ref().is_none_or(|o| {
            spyglass_binlog::index::sequence(&f) < spyglass_binlog::index::sequence(o)
        }) {
            oldest = Some(f);
        }
    }
    Ok(oldest)
}

/// Applies `policy` to the sets in the local directory `dest`, re-checking
/// right before removing a `.partial` set that its writer is still gone.
pub fn prune_local(
    dest: &Path,
    policy: &Policy,
    now: i64,
    dry_run: bool,
) -> Result<PruneReport, crate::Error> {
    let sets = list::list(dest)?;
    let items: Vec<Item> = sets.iter().map(Item::from).collect();
    let decisions = retention::plan(&items, policy, now);
    let mut report = PruneReport {
        location: dest.display().to_string(),
        policy: *policy,
        sets: decisions,
        removed: Vec::new(),
        dry_run,
        failed: Vec::new(),
        binlog_removed: Vec::new(),
    };
    if !dry_run {
        for (d, info) in report.sets.iter().zip(&sets) {
            if d.keep {
                continue;
            }
            if info.status == Status::Partial && crate::set::writer_alive(&info.path) {
                report.failed.push((
                    d.name.clone(),
                    "its writer started again; left alone".into(),
                ));
                continue;
            }
            match std::fs::remove_dir_all(&info.path) {
                Ok(()) => report.removed.push(d.name.clone()),
                Err(e) => report.failed.push((
                    d.name.clone(),
                    format!("cannot remove {}: {e}", info.path.display()),
                )),
            }
        }
    }
    // The binlog archive: keep what the oldest kept set needs to reach any
    // point up to now; nothing when a kept set has no coordinates.
    let archive = dest.join("binlog");
    if archive.is_dir() {
        let mut oldest: Option<String> = None;
        let mut unknown = false;
        for (d, info) in report.sets.iter().zip(&sets) {
            if !d.keep || info.status != Status::Complete {
                continue;
            }
            match crate::set::open(&info.path)
                .ok()
                .and_then(|m| m.snapshot.binlog_file)
            {
                Some(f) => {
                    let older = oldest.as_ref().is_none_or(|o| {
                        spyglass_binlog::index::sequence(&f) < spyglass_binlog::index::sequence(o)
                    });
                    if older {
                        oldest = Some(f);
                    }
                }
                None => unknown = true,
            }
        }
        if let (Some(keep_from), false) = (oldest, unknown) {
            if archive.join("index").join("index.json").is_file() {
                // A directory ship target: the shipped layout.
                match camino::Utf8PathBuf::try_from(dest.to_path_buf()) {
                    Ok(base) => match crate::ship::binlog::remove_before(
                        &Target::Local(base),
                        &SshOptions::default(),
                        &keep_from,
                        dry_run,
                    ) {
                        Ok(v) => report.binlog_removed = v,
                        Err(e) => report.failed.push(("binlog".into(), e.to_string())),
                    },
                    Err(_) => report.failed.push((
                        "binlog".into(),
                        "the directory's name is not UTF-8; its binlog archive is left alone"
                            .into(),
                    )),
                }
            } else {
                report.binlog_removed =
                    spyglass_binlog::index::remove_before(&archive, &keep_from, dry_run)?;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use camino::Utf8PathBuf;

    #[test]
    fn prunes_a_local_target_by_name() {
        let nas = tempfile::tempdir().unwrap();
        for n in [
            "nightly-20261101-020000",
            "nightly-20261125-020000",
            "nightly-20261126-020000",
            "nightly-20261126-020000.partial",
            "not-a-set",
        ] {
            std::fs::create_dir(nas.path().join(n)).unwrap();
        }
        let target = Target::Local(Utf8PathBuf::try_from(nas.path().to_owned()).unwrap());
        let policy = Policy {
            keep_last: 2,
            ..Policy::default()
        };
        let now = chrono::NaiveDate::from_ymd_opt(2026, 11, 26)
            .and_then(|d| d.and_hms_opt(12, 0, 0))
            .unwrap()
            .and_utc()
            .timestamp();
        let r = prune_target(&target, &SshOptions::default(), &policy, now, true).unwrap();
        assert!(r.removed.is_empty());
        let r = prune_target(&target, &SshOptions::default(), &policy, now, false).unwrap();
        assert_eq!(
            r.removed,
            ["nightly-20261101-020000", "nightly-20261126-020000.partial"]
        );
        let mut left: Vec<String> = std::fs::read_dir(nas.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "nightly-20261125-020000",
                "nightly-20261126-020000",
                "not-a-set"
            ]
        );
    }
}
