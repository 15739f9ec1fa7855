//! `backup prune | ship | pack | unpack`, and the pieces `nightly` shares
//! with them (policy and ship options from flags and settings).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use spyglass_backup::pack;
use spyglass_backup::prune::{self, PruneReport};
use spyglass_backup::retention::{Policy, Reason};
use spyglass_backup::ship::{
    self, ShipError, ShipOptions, ShipReport, SshOptions, Target, Transport,
};

use crate::args::{GlobalOpts, KeepOpts, PackArgs, PruneArgs, ShipArgs, TransportArg, UnpackArgs};
use crate::output::human_bytes as human;
use crate::output::{self, ExitStatus, UserError};
use crate::progress::Bar;
use crate::settings::{self, Settings};

/// The retention policy: flags first, then `[backup] keep_*`.
pub(crate) fn policy(keep: &KeepOpts, s: &Settings) -> anyhow::Result<Policy> {
    let b = &s.backup;
    let within = match keep.keep_within.as_deref().or(b.keep_within.as_deref()) {
        None => 0,
        Some(v) => humantime::parse_duration(v)
            .map_err(|e| {
                UserError::new(format!("keep_within '{v}' is not a duration: {e}"))
                    .hint("write it like 10d, 36h or 2weeks")
            })?
            .as_secs(),
    };
    Ok(Policy {
        keep_last: keep.keep_last.or(b.keep_last).unwrap_or(0),
        keep_daily: keep.keep_daily.or(b.keep_daily).unwrap_or(0),
        keep_weekly: keep.keep_weekly.or(b.keep_weekly).unwrap_or(0),
        keep_monthly: keep.keep_monthly.or(b.keep_monthly).unwrap_or(0),
        keep_yearly: keep.keep_yearly.or(b.keep_yearly).unwrap_or(0),
        keep_within: within,
    })
}

fn no_policy() -> anyhow::Error {
    UserError::new("no retention policy: nothing would be kept but the newest set")
        .hint("give --keep-last/--keep-daily/--keep-weekly/--keep-monthly, or set keep_* under [backup] in spyglass-admin.toml")
        .into()
}

/// ssh settings: flags first, then `[backup]`.
pub(crate) fn ssh_options(
    identity: Option<&PathBuf>,
    config: Option<&PathBuf>,
    s: &Settings,
) -> SshOptions {
    SshOptions {
        identity: identity.cloned().or_else(|| s.backup.identity.clone()),
        config: config.cloned().or_else(|| s.backup.ssh_config.clone()),
        connect_timeout: 15,
    }
}

/// Parses a ship target into a user error with a hint.
pub(crate) fn target(s: &str) -> anyhow::Result<Target> {
    Target::parse(s).map_err(|e| UserError::new(e.to_string()).hint("targets look like ssh://backup@nas.lab:22/srv/mysql-backups or /mnt/nas/mysql-backups").into())
}

/// A ship error with the advice that fits it.
pub(crate) fn ship_error(e: ShipError) -> anyhow::Error {
    let hint = match &e {
        ShipError::Unreachable { .. } => "is the host up and sshd listening on that port? Try: ssh -p PORT user@host true",
        ShipError::AuthFailed { .. } => "check --identity (or [backup] identity) and that its public key is in the remote account's ~/.ssh/authorized_keys",
        ShipError::HostKey { .. } => "connect once by hand (ssh -p PORT user@host) to check and accept the host key; ship never accepts one by itself",
        ShipError::DiskFull { .. } => "free space on the target (backup prune ssh://... with a policy) and ship again; the transfer resumes",
        ShipError::Mismatch { .. } => "the target stores different bytes than were sent: check its disk; the partial copy was left there and the local set kept",
        ShipError::TargetDamaged { .. } => "ship again with --repair to send the damaged files again, after checking the target's disk",
        ShipError::BadTarget { .. } => "targets look like ssh://backup@nas.lab:22/srv/mysql-backups or /mnt/nas/mysql-backups",
        _ => "",
    };
    if hint.is_empty() {
        anyhow::Error::new(e)
    } else {
        UserError::new(e.to_string()).hint(hint).into()
    }
}

/// Human lines for a prune report.
pub(crate) fn render_prune(r: &PruneReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} (policy: {}{})",
        r.location,
        r.policy.describe(),
        if r.dry_run {
            "; dry run, nothing removed"
        } else {
            ""
        }
    );
    for d in &r.sets {
        let verb = match (d.keep, r.dry_run) {
            (true, _) => "keep",
            (false, true) => "would remove",
            (false, false) if r.removed.contains(&d.name) => "remove",
            (false, false) => "FAILED",
        };
        let reasons: Vec<String> = d.reasons.iter().map(Reason::to_string).collect();
        let _ = writeln!(s, "  {verb:<12} {:<40} {}", d.name, reasons.join("; "));
    }
    for (name, why) in &r.failed {
        let _ = writeln!(s, "  could not remove {name}: {why}");
    }
    let kept = r.sets.iter().filter(|d| d.keep).count();
    let _ = writeln!(
        s,
        "kept {kept}, {} {}",
        if r.dry_run { "would remove" } else { "removed" },
        if r.dry_run {
            r.sets.len() - kept
        } else {
            r.removed.len()
        }
    );
    s
}

/// Exit status of a prune: 1 when something could not be removed or a set looks corrupt.
pub(crate) fn prune_status(r: &PruneReport) -> ExitStatus {
    if !r.failed.is_empty() || r.sets.iter().any(|d| d.reasons.contains(&Reason::Corrupt)) {
        ExitStatus::Findings
    } else {
        ExitStatus::Success
    }
}

pub fn prune(global: &GlobalOpts, a: &PruneArgs) -> anyhow::Result<ExitStatus> {
    let s = settings::load(global.config.as_deref())?;
    let policy = policy(&a.keep, &s)?;
    if policy.is_empty() {
        return Err(no_policy());
    }
    let dest = match &a.dest {
        Some(d) => d.clone(),
        None => s
            .backup
            .destination
            .as_ref()
            .map(|p| p.display().to_string())
            .ok_or_else(|| {
                UserError::new("no backup destination given")
                    .hint("pass DEST, or set [backup] destination in spyglass-admin.toml")
            })?,
    };
    let now = spyglass_backup::names::now_unix();
    let report = if dest.starts_with("ssh://") {
        let t = target(&dest)?;
        prune::prune_target(
            &t,
            &ssh_options(a.identity.as_ref(), a.ssh_config.as_ref(), &s),
            &policy,
            now,
            a.dry_run,
        )
        .map_err(ship_error)?
    } else {
        let p = Path::new(&dest);
        if !p.is_dir() {
            return Err(UserError::new(format!("{dest} is not a directory")).into());
        }
        prune::prune_local(p, &policy, now, a.dry_run)?
    };
    if global.json {
        output::print_json(&report)?;
    } else {
        output::print_out(&render_prune(&report))?;
    }
    Ok(prune_status(&report))
}

pub(crate) fn transport(t: TransportArg) -> Transport {
    match t {
        TransportArg::Auto => Transport::Auto,
        TransportArg::Rsync => Transport::Rsync,
        TransportArg::Sftp => Transport::Sftp,
    }
}

/// `--json` output of `backup ship`.
#[derive(Serialize)]
struct ShipJson<'a> {
    #[serde(flatten)]
    ship: &'a ShipReport,
    /// True when --remove-source deleted the local set.
    source_removed: bool,
    /// With --prune.
    prune: Option<&'a PruneReport>,
}

pub(crate) fn human_ship(r: &ShipReport) -> String {
    if r.already_there {
        format!(
            "{}: a verified copy is already at {} ({} files, {})",
            r.set,
            r.target,
            r.files,
            human(r.bytes)
        )
    } else {
        format!(
            "{} -> {}: {} files, {}, sent by {}, verified by {}{} in {:.1}s",
            r.set,
            r.target,
            r.files,
            human(r.bytes),
            r.transport,
            r.verified_by,
            if r.resent.is_empty() {
                String::new()
            } else {
                format!(" ({} file(s) sent again after a mismatch)", r.resent.len())
            },
            r.seconds
        )
    }
}

pub fn ship(global: &GlobalOpts, a: &ShipArgs) -> anyhow::Result<ExitStatus> {
    let s = settings::load(global.config.as_deref())?;
    let to = a
        .to
        .clone()
        .or_else(|| s.backup.ship_to.clone())
        .ok_or_else(|| {
            UserError::new("no ship target given")
                .hint("pass --to ssh://user@host/path (or a directory), or set [backup] ship_to")
        })?;
    let t = target(&to)?;
    let policy = policy(&KeepOpts::default(), &s)?;
    if a.prune && policy.is_empty() {
        return Err(no_policy());
    }
    let opts = ShipOptions {
        ssh: ssh_options(a.identity.as_ref(), a.ssh_config.as_ref(), &s),
        transport: transport(a.transport),
        read_back: a.read_back,
        repair: a.repair,
        bwlimit_kib: a.bwlimit.or(s.backup.bwlimit_kib).unwrap_or(0),
        show_transfer: !global.json
            && !global.quiet
            && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let report = ship::ship(&a.set, &t, &opts).map_err(ship_error)?;
    let mut removed = false;
    if a.remove_source {
        std::fs::remove_dir_all(&a.set).map_err(|e| {
            UserError::new(format!(
                "the copy verified, but removing {} failed: {e}",
                a.set.display()
            ))
        })?;
        removed = true;
    }
    let pruned = if a.prune {
        Some(
            prune::prune_target(
                &t,
                &opts.ssh,
                &policy,
                spyglass_backup::names::now_unix(),
                false,
            )
            .map_err(ship_error)?,
        )
    } else {
        None
    };
    if global.json {
        output::print_json(&ShipJson {
            ship: &report,
            source_removed: removed,
            prune: pruned.as_ref(),
        })?;
    } else {
        let mut out = human_ship(&report);
        out.push('\n');
        if removed {
            let _ = writeln!(out, "removed the local set {}", a.set.display());
        }
        if let Some(p) = &pruned {
            out.push_str(&render_prune(p));
        }
        output::print_out(&out)?;
    }
    Ok(pruned.as_ref().map_or(ExitStatus::Success, prune_status))
}

pub fn pack(global: &GlobalOpts, a: &PackArgs) -> anyhow::Result<ExitStatus> {
    let bar = Bar::new(!global.json && !global.quiet);
    let (path, size) = pack::pack(&a.set, a.output.as_deref(), &bar)?;
    if global.json {
        output::print_json(&serde_json::json!({ "path": path, "bytes": size }))?;
    } else {
        if !global.quiet {
            eprintln!(
                "packed {} into {} ({})",
                a.set.display(),
                path.display(),
                human(size)
            );
        }
        output::print_out(&format!("{}\n", path.display()))?;
    }
    Ok(ExitStatus::Success)
}

pub fn unpack(global: &GlobalOpts, a: &UnpackArgs) -> anyhow::Result<ExitStatus> {
    let bar = Bar::new(!global.json && !global.quiet);
    let path = pack::unpack(&a.file, a.dest.as_deref(), &bar)?;
    if global.json {
        output::print_json(&serde_json::json!({ "path": path }))?;
    } else {
        output::print_out(&format!("{}\n", path.display()))?;
    }
    Ok(ExitStatus::Success)
}

/// Seconds as `1.2s`.
pub(crate) fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
