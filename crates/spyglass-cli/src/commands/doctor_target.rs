//! `doctor`'s look at the ship target (`[backup] ship_to`, with `[backup]
//! identity` and `ssh_config`), before the first nightly needs it: reachable,
//! host key known in the known_hosts file that configuration uses, key
//! accepted, rsync and sha256sum there, room for the newest local set.
//! Everything goes through the target layer ([`Target::lister`] and
//! [`spyglass_backup::ship::Remote::health`]), so a new kind of target is
//! checked the same way.

use std::fmt::Write as _;

use serde::Serialize;
use spyglass_backup::list::{self, Status};
use spyglass_backup::ship::{self, ShipError, Target};

use crate::output;
use crate::settings::Settings;

/// `--json` `ship_target` of `doctor`. Fields are only ever added.
#[derive(Debug, Serialize)]
pub(crate) struct TargetReport {
    /// As configured.
    pub target: String,
    /// A connection was made (`None`: the target string is not usable).
    pub reachable: Option<bool>,
    /// `known`, `unknown`, `changed`, or `none` (not an ssh target, or not reached).
    pub host_key: &'static str,
    /// The known_hosts file the ssh configuration records keys in (ssh targets).
    pub known_hosts: Option<String>,
    /// The login was accepted (`None`: not tried that far).
    pub login: Option<bool>,
    /// The directory exists there (shipping creates it when it does not).
    pub exists: bool,
    /// A file can be created there (or in its nearest existing parent).
    pub writable: Option<bool>,
    /// Bytes free there.
    pub free_bytes: Option<u64>,
    /// Committed sets there.
    pub sets: usize,
    /// The newest complete local set, which the next ship sends.
    pub newest_local_set: Option<String>,
    /// Its size.
    pub newest_local_bytes: Option<u64>,
    /// Programs shipping uses that are missing there, with what that means.
    pub missing: Vec<String>,
    /// The error that stopped the check, if one did.
    pub error: Option<String>,
}

/// One problem: message and hint.
pub(crate) type Finding = (String, String);

/// Checks `[backup] ship_to`; `None` when none is configured.
pub(crate) fn check(settings: &Settings) -> Option<(TargetReport, Vec<Finding>)> {
    let to = settings.backup.ship_to.as_deref()?;
    Some(check_target(
        to,
        "[backup] ship_to",
        "ship target",
        settings,
    ))
}

/// Checks the target `to` (named `setting` where it came from, and `what`
/// in messages: `ship target`, `backup destination`) the way ship reaches
/// it, with `[backup] identity` and `ssh_config`.
pub(crate) fn check_target(
    to: &str,
    setting: &str,
    what: &str,
    settings: &Settings,
) -> (TargetReport, Vec<Finding>) {
    let mut problems = Vec::new();
    let mut r = TargetReport {
        target: to.to_owned(),
        reachable: None,
        host_key: "none",
        known_hosts: None,
        login: None,
        exists: false,
        writable: None,
        free_bytes: None,
        sets: 0,
        newest_local_set: None,
        newest_local_bytes: None,
        missing: Vec::new(),
        error: None,
    };
    let t = match Target::parse(to) {
        Ok(t) => t,
        Err(e) => {
            r.error = Some(e.to_string());
            problems.push((
                format!("{setting}: {e}"),
                "targets look like ssh://backup@nas.lab:22/srv/mysql-backups or /mnt/nas/mysql-backups".into(),
            ));
            return (r, problems);
        }
    };
    let ssh = super::lifecycle::ssh_options(&crate::args::SshArgs::default(), settings);
    if let Target::Ssh { host, port, .. } = &t {
        let st = ship::ssh::host_key_status(&ssh, host, *port);
        r.known_hosts = Some(st.known_hosts);
    }
    // The newest complete local set: what the next ship sends.
    if let Some(dest) = settings.backup.destination.as_deref() {
        if ship::scheme_of(&dest.to_string_lossy()).is_none() && dest.is_dir() {
            if let Some(newest) = list::list(dest)
                .unwrap_or_default()
                .into_iter()
                .filter(|s| s.status == Status::Complete)
                .max_by_key(|s| s.created)
            {
                r.newest_local_set = Some(newest.name);
                r.newest_local_bytes = Some(newest.bytes);
            }
        }
    }
    let mut remote = t.lister(&ssh);
    match remote.health() {
        Ok(h) => {
            r.reachable = Some(true);
            r.login = Some(true);
            if matches!(t, Target::Ssh { .. }) {
                r.host_key = "known";
            }
            r.exists = h.exists;
            r.writable = h.writable;
            r.free_bytes = h.free_bytes;
            r.sets = h
                .sets
                .iter()
                .filter(|n| {
                    spyglass_backup::names::parse_stamp(n).is_some() && !n.ends_with(".partial")
                })
                .count();
            r.missing = h.missing.clone();
            if h.writable == Some(false) {
                problems.push((
                    format!("{what} {t}: {} is not writable there", if h.exists { "the directory" } else { "the nearest existing parent of the directory" }),
                    "fix the permissions there for the account in ship_to, or choose another directory".into(),
                ));
            }
            for m in &h.missing {
                problems.push((
                    format!("{what} {t}: {m}"),
                    format!(
                        "install it there (Debian: apt-get install rsync coreutils); {}",
                        if m.contains("this machine") {
                            "and here"
                        } else {
                            "shipping still works, more slowly"
                        }
                    ),
                ));
            }
            if let (Some(free), Some(need)) = (r.free_bytes, r.newest_local_bytes) {
                if free < need {
                    problems.push((
                        format!(
                            "{what} {t} has {} free, but the newest local set ({}) is {}: the next ship fails with no space left",
                            output::human_bytes(free),
                            r.newest_local_set.as_deref().unwrap_or("?"),
                            output::human_bytes(need)
                        ),
                        format!("free space there, or prune old copies: spyglass-admin backup prune {t} --dry-run shows what the policy removes"),
                    ));
                }
            }
        }
        Err(e) => {
            r.error = Some(e.to_string());
            let hint = match &e {
                ShipError::Unreachable { .. } => {
                    r.reachable = Some(false);
                    "is the host up and sshd listening on that port? Check the host and port in ship_to, and the network (ssh -p PORT user@host true)".to_owned()
                }
                ShipError::HostKey { .. } => {
                    r.reachable = Some(true);
                    r.host_key =
                        if ship::ssh::host_key_status(&ssh, &t_host(&t), t_port(&t)).recorded {
                            "changed"
                        } else {
                            "unknown"
                        };
                    "compare the fingerprint with the server's own before running that command; ship never accepts a host key by itself".to_owned()
                }
                ShipError::AuthFailed { .. } => {
                    r.reachable = Some(true);
                    r.host_key = "known";
                    r.login = Some(false);
                    "check [backup] identity and that its public key is in the remote account's ~/.ssh/authorized_keys".to_owned()
                }
                _ => "see the message; spyglass-admin backup list TARGET tries the same connection"
                    .to_owned(),
            };
            problems.push((format!("{what} {t}: {e}"), hint));
        }
    }
    (r, problems)
}

fn t_host(t: &Target) -> String {
    match t {
        Target::Ssh { host, .. } => host.clone(),
        _ => String::new(),
    }
}

fn t_port(t: &Target) -> Option<u16> {
    match t {
        Target::Ssh { port, .. } => *port,
        _ => None,
    }
}

/// The human section of `doctor` for the ship target.
pub(crate) fn render(s: &mut String, r: Option<&TargetReport>) {
    let _ = writeln!(s, "ship target");
    let Some(r) = r else {
        let _ = writeln!(
            s,
            "  --   not configured ([backup] ship_to in spyglass-admin.toml)"
        );
        return;
    };
    render_report(s, r);
}

/// The lines for one checked target, under its section's title.
pub(crate) fn render_report(s: &mut String, r: &TargetReport) {
    let mark = |ok: bool| if ok { "ok  " } else { "FAIL" };
    let _ = writeln!(
        s,
        "  {} {} {}",
        mark(r.reachable == Some(true)),
        r.target,
        match r.reachable {
            Some(true) => "reachable",
            Some(false) => "not reachable",
            None => "not usable",
        }
    );
    if r.host_key != "none" {
        let _ = writeln!(
            s,
            "  {} host key {}{}",
            mark(r.host_key == "known"),
            r.host_key,
            r.known_hosts
                .as_deref()
                .map(|k| format!(" (known_hosts: {k})"))
                .unwrap_or_default()
        );
    }
    if let Some(l) = r.login {
        let _ = writeln!(
            s,
            "  {} login {}",
            mark(l),
            if l { "accepted" } else { "refused" }
        );
    }
    if r.error.is_none() && r.reachable == Some(true) {
        let room = match (r.free_bytes, r.newest_local_bytes) {
            (Some(f), Some(n)) => f >= n,
            _ => true,
        };
        let _ = writeln!(
            s,
            "  {} {} free there{}; {} set(s) there{}",
            mark(room && r.writable != Some(false)),
            r.free_bytes
                .map(output::human_bytes)
                .unwrap_or_else(|| "unknown".into()),
            match (&r.newest_local_set, r.newest_local_bytes) {
                (Some(n), Some(b)) =>
                    format!(" (newest local set {n}: {})", output::human_bytes(b)),
                _ => String::new(),
            },
            r.sets,
            if r.exists {
                ""
            } else {
                " (the directory does not exist yet; the first ship creates it)"
            }
        );
        for m in &r.missing {
            let _ = writeln!(s, "  WARN {m}");
        }
        if r.missing.is_empty() && r.host_key != "none" {
            let _ = writeln!(s, "  ok   rsync and sha256sum there");
        }
    }
}
