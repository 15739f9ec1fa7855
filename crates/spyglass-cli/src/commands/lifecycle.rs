//! `backup prune | ship | pack | unpack`, and the pieces `nightly` shares
//! with them (policy and ship options from flags and settings).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use spyglass_backup::pack;
use spyglass_backup::prune::{self, PruneReport};
use spyglass_backup::retention::Policy;
use spyglass_backup::ship::{self, ShipOptions, ShipReport, SshOptions, Target, Transport};
use spyglass_jobs::lifecycle::{self, KeepOverrides};
use spyglass_jobs::nightly;

use crate::args::{GlobalOpts, KeepOpts, PackArgs, PruneArgs, ShipArgs, TransportArg, UnpackArgs};
use crate::output::human_bytes as human;
use crate::output::{self, ExitStatus, UserError};
use crate::progress::Bar;
use crate::settings::{self, Settings};

/// The retention policy: flags first, then `[backup] keep_*`.
pub(crate) fn policy(keep: &KeepOpts, s: &Settings) -> Policy {
    lifecycle::policy(
        &KeepOverrides {
            keep_last: keep.keep_last,
            keep_daily: keep.keep_daily,
            keep_weekly: keep.keep_weekly,
            keep_monthly: keep.keep_monthly,
            keep_yearly: keep.keep_yearly,
            keep_within: keep.keep_within,
        },
        &s.backup,
    )
}

fn no_policy() -> anyhow::Error {
    UserError::new("no retention policy: nothing would be kept but the newest set")
        .hint("give --keep-last/--keep-daily/--keep-weekly/--keep-monthly, or set keep_* under [backup] in spyglass-admin.toml")
        .into()
}

/// ssh options: the `--identity`/`--ssh-config` flags, then `[backup]`.
pub(crate) fn ssh_options(a: &crate::args::SshArgs, s: &Settings) -> SshOptions {
    lifecycle::ssh_options(a.identity.as_deref(), a.ssh_config.as_deref(), s)
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
        let reasons: Vec<String> = d.reasons.iter().map(ToString::to_string).collect();
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
    if !r.binlog_removed.is_empty() {
        let _ = writeln!(
            s,
            "binlog archive: {} {} closed file(s) no kept set needs ({} .. {})",
            if r.dry_run { "would remove" } else { "removed" },
            r.binlog_removed.len(),
            r.binlog_removed[0],
            r.binlog_removed[r.binlog_removed.len() - 1]
        );
    }
    s
}

/// Exit status of a prune: 1 when something could not be removed or a set looks corrupt.
pub(crate) fn prune_status(r: &PruneReport) -> ExitStatus {
    if lifecycle::prune_has_findings(r) {
        ExitStatus::Findings
    } else {
        ExitStatus::Success
    }
}

pub fn prune(global: &GlobalOpts, a: &PruneArgs) -> anyhow::Result<ExitStatus> {
    let s = settings::load(global.config.as_deref())?;
    let policy = policy(&a.keep, &s);
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
    let report = if ship::scheme_of(&dest).is_some() {
        let t = Target::parse(&dest)?.with_s3_config(&lifecycle::s3_config(&s)?);
        prune::prune_target(&t, &ssh_options(&a.ssh, &s), &policy, now, a.dry_run)?
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
    /// The binlog archive next to the set (`DEST/binlog`), shipped after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    binlog: Option<&'a spyglass_backup::ship::binlog::BinlogShipReport>,
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
    let t = Target::parse(&to)?.with_s3_config(&lifecycle::s3_config(&s)?);
    ship::local_only(&a.set, "backup ship SET")?;
    let policy = policy(&KeepOpts::default(), &s);
    if a.prune && policy.is_empty() {
        return Err(no_policy());
    }
    let opts = ShipOptions {
        ssh: ssh_options(&a.ssh, &s),
        transport: transport(a.transport),
        read_back: a.read_back,
        repair: a.repair,
        bwlimit_kib: a.bwlimit.or(s.backup.bwlimit_kib).unwrap_or(0),
        show_transfer: !global.json
            && !global.quiet
            && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let report = ship::ship(&a.set, &t, &opts)?;
    // The binlog archive of the set's destination goes with it.
    let archive = super::binlog::archive_beside(&a.set);
    let binlog = match &archive {
        Some(dir) => Some(ship::binlog::ship(dir, &t, &opts)?),
        None => None,
    };
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
        Some(prune::prune_target(
            &t,
            &opts.ssh,
            &policy,
            spyglass_backup::names::now_unix(),
            false,
        )?)
    } else {
        None
    };
    if global.json {
        output::print_json(&ShipJson {
            ship: &report,
            source_removed: removed,
            prune: pruned.as_ref(),
            binlog: binlog.as_ref(),
        })?;
    } else {
        let mut out = nightly::ship_line(&report);
        out.push('\n');
        if let Some(b) = &binlog {
            out.push_str(&super::binlog::ship_line(b));
            out.push('\n');
        }
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
    ship::local_only(&a.set, "backup pack")?;
    if let Some(o) = &a.output {
        ship::local_only(o, "backup pack --output")?;
    }
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
    ship::local_only(&a.file, "backup unpack")?;
    if let Some(d) = &a.dest {
        ship::local_only(d, "backup unpack --dest")?;
    }
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
