//! Reading: the server, the stores, the backup destination, the quarantine.
//! Nothing here writes except [`crate::history::append`], which the caller runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use spyglass_backup::manifest::Manifest;
use spyglass_backup::{list, names};
use spyglass_cleanup::inventory::{self, StoreRows};
use spyglass_cleanup::scan::Scan;
use spyglass_cleanup::Class;
use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::{DbError, Endpoint, Session};
use spyglass_jobs::cleanup::{self as job, Connection, Context, ScanOverrides};
use spyglass_jobs::settings::Settings;
use spyglass_privileges::audit::{self, Fix};
use spyglass_privileges::live::{self, LiveState};
use spyglass_privileges::{Account, Policy};

use crate::aggregate::{self, FileRef, TableSize};
use crate::model::*;
use crate::{history, ReportError};

/// What [`gather`] needs.
pub struct Inputs<'a> {
    /// The tool's settings (`[backup] destination`, `[cleanup]`, `[users]`).
    pub settings: &'a Settings,
    /// The database and the DataJoint config.
    pub connection: &'a Connection,
    /// The backup destination (default `[backup] destination`).
    pub destination: Option<PathBuf>,
    /// Renders an audit finding's fix as the line to run (the CLI's words).
    pub render_fix: &'a dyn Fn(&Fix) -> String,
    /// Try the policy's temporary passwords (once per account, only where a
    /// failed login cannot lock it), as `users audit` does.
    pub login_check: bool,
}

impl std::fmt::Debug for Inputs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inputs")
            .field("destination", &self.destination)
            .field("login_check", &self.login_check)
            .finish_non_exhaustive()
    }
}

/// The name of the history file under the backup destination.
pub const HISTORY_FILE: &str = "spyglass-report-history.jsonl";

/// An error and its causes on one line, `a: b: c`.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        // The driver's errors in plain words, not its struct form.
        match c.downcast_ref::<spyglass_db::mysql::Error>() {
            Some(m) => s.push_str(&format!(": {}", spyglass_db::driver_error_text(m))),
            None => s.push_str(&format!(": {c}")),
        }
        cause = c.source();
    }
    s
}

fn now() -> String {
    names::rfc3339(names::now_unix())
}

fn section<T>(t: Instant, r: Result<T, String>) -> Section<T> {
    match r {
        Ok(data) => Section::Gathered {
            at: now(),
            seconds: t.elapsed().as_secs_f64(),
            data,
        },
        Err(reason) => Section::Unavailable { reason },
    }
}

/// Free and total bytes of the file system holding `path`.
pub fn volume(path: &Path) -> Option<Volume> {
    let s = rustix::fs::statvfs(path).ok()?;
    Some(Volume {
        path: path.display().to_string(),
        free_bytes: s.f_bavail.saturating_mul(s.f_frsize),
        total_bytes: s.f_blocks.saturating_mul(s.f_frsize),
    })
}

/// What the history file of the current state would hold: data + index
/// bytes per schema, file bytes per store.
pub fn record_of(storage: &Storage, unix: i64) -> HistoryRecord {
    HistoryRecord {
        at: names::rfc3339(unix),
        unix,
        source: "report".into(),
        schema_bytes: storage
            .schemas
            .iter()
            .map(|s| (s.schema.clone(), s.data_bytes + s.index_bytes))
            .collect(),
        store_bytes: storage
            .stores
            .iter()
            .map(|s| (s.store.clone(), s.file_bytes))
            .collect(),
    }
}

fn table_sizes(session: &mut Session) -> Result<Vec<TableSize>, DbError> {
    let sql = format!(
        "SELECT TABLE_SCHEMA, TABLE_NAME, COALESCE(TABLE_ROWS, 0), COALESCE(DATA_LENGTH, 0), \
         COALESCE(INDEX_LENGTH, 0) FROM information_schema.TABLES \
         WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN {}",
        spyglass_db::schemas::system_schemas_sql()
    );
    let rows: Vec<(String, String, u64, u64, u64)> = session
        .conn()
        .query(sql)
        .map_err(|e| DbError::query("reading table sizes from information_schema.TABLES", e))?;
    Ok(rows
        .into_iter()
        .map(|(schema, table, rows, data_bytes, index_bytes)| TableSize {
            schema,
            table,
            rows,
            data_bytes,
            index_bytes,
        })
        .collect())
}

/// Every file each schema's `~external_<store>` rows name, with its size
/// on disk. The rows of the stores the cleanup scan walked are the scan's
/// own (each path with every table naming it); a table of any other local
/// store is read here (the cleanup inventory's bulk read). Then one `stat`
/// per distinct path, the distinct paths stat'ed in parallel.
fn file_refs(ctx: &mut Context, scan: &Scan) -> Result<(Vec<FileRef>, Vec<String>), String> {
    use rayon::prelude::*;
    let mut refs = Vec::new();
    let mut notes = Vec::new();
    // Index of each ref's store location, for the stat below.
    let mut locations: Vec<PathBuf> = Vec::new();
    let mut store_of: Vec<usize> = Vec::new();
    let externals = &scan.catalog.externals;
    let mut read_by_scan: Vec<&str> = Vec::new();
    for (name, rows) in &scan.store_rows {
        let Some(store) = ctx
            .setup
            .stores
            .iter()
            .find(|s| s.name == *name && s.is_file())
        else {
            continue;
        };
        read_by_scan.push(name);
        let loc = location_index(&mut locations, &store.location);
        for track in &rows.tracks {
            let rel = String::from_utf8_lossy(rows.path_of(track));
            for table in rows.tables_of(track) {
                let Some(t) = externals.get(table as usize) else {
                    continue;
                };
                refs.push(FileRef {
                    store: store.name.clone(),
                    rel: rel.clone().into_owned(),
                    schema: t.schema.clone(),
                    size: None,
                });
                store_of.push(loc);
            }
        }
    }
    let conn = ctx.session.conn();
    let max_packet = inventory::prepare_bulk(conn).map_err(|e| chain(&e))?;
    for (i, t) in externals.iter().enumerate() {
        if read_by_scan.contains(&t.store.as_str()) {
            continue;
        }
        let Some(store) = ctx.setup.stores.iter().find(|s| s.name == t.store) else {
            notes.push(format!(
                "{}: no store {} is configured, its files are not counted",
                t.qualified(),
                t.store
            ));
            continue;
        };
        if !store.is_file() {
            notes.push(format!(
                "{}: store {} is {}, not a local directory; its files are not counted",
                t.qualified(),
                t.store,
                store.protocol
            ));
            continue;
        }
        let loc = location_index(&mut locations, &store.location);
        // Out of scope: the paths only, no used/unused bookkeeping.
        let mut table = t.clone();
        table.in_scope = false;
        let mut rows = StoreRows::default();
        for range in inventory::chunks(&table, max_packet) {
            inventory::table_rows(conn, i, &table, store, range, &mut rows)
                .map_err(|e| chain(&e))?;
        }
        rows.seal();
        for track in &rows.tracks {
            refs.push(FileRef {
                store: store.name.clone(),
                rel: String::from_utf8_lossy(rows.path_of(track)).into_owned(),
                schema: t.schema.clone(),
                size: None,
            });
            store_of.push(loc);
        }
    }
    // One stat per distinct (location, path).
    let mut order: Vec<usize> = (0..refs.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        (store_of[a], refs[a].rel.as_str()).cmp(&(store_of[b], refs[b].rel.as_str()))
    });
    let mut firsts: Vec<usize> = Vec::new();
    for (k, &r) in order.iter().enumerate() {
        if k == 0 || {
            let p = order[k - 1];
            store_of[p] != store_of[r] || refs[p].rel != refs[r].rel
        } {
            firsts.push(k);
        }
    }
    let sizes: Vec<Option<u64>> = firsts
        .par_iter()
        .map(|&k| {
            let r = order[k];
            std::fs::metadata(locations[store_of[r]].join(&refs[r].rel))
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len())
        })
        .collect();
    for (g, &k) in firsts.iter().enumerate() {
        let end = firsts.get(g + 1).copied().unwrap_or(order.len());
        for &r in &order[k..end] {
            refs[r].size = sizes[g];
        }
    }
    Ok((refs, notes))
}

/// The index of `location` in `locations`, added if new: stores that share
/// a directory share its files, which are then stat'ed and counted once.
fn location_index(locations: &mut Vec<PathBuf>, location: &Path) -> usize {
    match locations.iter().position(|l| l == location) {
        Some(k) => k,
        None => {
            locations.push(location.to_owned());
            locations.len() - 1
        }
    }
}

fn database_volume(session: &mut Session, endpoint: &Endpoint) -> (Option<Volume>, Option<String>) {
    let local = match endpoint {
        Endpoint::Socket(_) => true,
        Endpoint::Tcp { host, .. } => {
            matches!(host.as_str(), "localhost" | "::1") || host.starts_with("127.")
        }
    };
    if !local {
        return (
            None,
            Some("the server is on another machine: its data directory's free space is not known here".into()),
        );
    }
    let dir: Option<String> = session
        .conn()
        .query_first("SELECT @@datadir")
        .ok()
        .flatten();
    match dir {
        Some(d) => match volume(Path::new(&d)) {
            Some(v) => (Some(v), None),
            None => (
                None,
                Some(format!(
                    "the data directory {d} cannot be measured from here"
                )),
            ),
        },
        None => (None, Some("@@datadir could not be read".into())),
    }
}

fn cleanup_section(settings: &Settings, ctx: &Context, scan: &Scan, now_unix: i64) -> Cleanup {
    let sum = job::summarize(scan, &[], ctx.opts.min_age);
    let dangling: Vec<String> = scan
        .items
        .iter()
        .filter(|i| i.class == Class::Dangling)
        .map(|i| {
            let root = &scan.root_of(i).label;
            match &i.path {
                Some(p) => format!("{root}: {} ({})", i.rel, p.display()),
                None => format!("{root}: {}", i.rel),
            }
        })
        .collect();
    let classes: Vec<ClassTally> = sum
        .classes
        .iter()
        .map(|(c, t)| ClassTally {
            name: c.name().to_owned(),
            count: t.count,
            bytes: t.bytes,
        })
        .collect();
    let reclaimable_bytes = sum
        .classes
        .iter()
        .filter(|(c, _)| c.actionable())
        .map(|(_, t)| t.bytes)
        .sum();
    let mut top: Vec<ClassTally> = sum
        .top_folders
        .iter()
        .map(|f| ClassTally {
            name: format!("{}: {}", f.root, f.folder),
            count: f.tally.count,
            bytes: f.tally.bytes,
        })
        .collect();
    top.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.name.cmp(&b.name)));
    top.truncate(10);
    let mut notes: Vec<String> = sum.problems.iter().map(|p| p.message.clone()).collect();
    notes.extend(
        sum.not_scanned
            .iter()
            .map(|(s, why)| format!("store {s} not scanned: {why}")),
    );
    notes.extend(
        sum.dirs_not_scanned
            .iter()
            .map(|d| format!("{} not scanned: {}", d.dir.key(), d.reason)),
    );
    let q = job::quarantine_dir(None, settings, ctx.base.as_deref()).ok();
    let mut runs = Vec::new();
    if let Some(q) = &q {
        if q.is_dir() {
            match spyglass_cleanup::quarantine::runs(q) {
                Ok(rs) => {
                    for r in rs {
                        let age =
                            (now_unix - r.header.created_unix as i64).max(0) as f64 / 86_400.0;
                        runs.push(QuarantineRun {
                            run: r.header.run.clone(),
                            created: r.header.created.clone(),
                            age_days: age,
                            items: r.entries.len() as u64,
                            bytes: r.bytes(),
                        });
                    }
                }
                Err(e) => notes.push(format!("quarantine {}: {}", q.display(), chain(&e))),
            }
        }
    }
    Cleanup {
        dangling,
        reclaimable_bytes,
        classes,
        top_folders: top,
        young: ClassTally {
            name: "young".into(),
            count: sum.young.count,
            bytes: sum.young.bytes,
        },
        quarantine: q.map(|q| q.display().to_string()),
        quarantine_runs: runs,
        notes,
    }
}

fn users_section(
    inputs: &Inputs<'_>,
    policy: &Policy,
    live: &LiveState,
    session: &mut Session,
) -> Users {
    let scope = audit::Scope::default();
    let mut notes = Vec::new();
    let mut accepted: BTreeSet<Account> = BTreeSet::new();
    if inputs.login_check && !policy.temp_passwords.is_empty() {
        let client: Option<String> = session
            .conn()
            .query_first("SELECT SUBSTRING_INDEX(USER(), '@', -1)")
            .ok()
            .flatten();
        let (candidates, skipped) =
            audit::login_candidates(policy, live, &scope, client.as_deref().unwrap_or(""));
        notes.extend(skipped);
        let passwords: Vec<spyglass_db::Secret> = policy
            .temp_passwords
            .iter()
            .map(|p| spyglass_db::Secret::new(p.clone()))
            .collect();
        for (a, r) in spyglass_privileges::login::check_passwords(
            &inputs.connection.options,
            &candidates,
            &passwords,
            4,
        ) {
            match r {
                Ok(Some(_)) => {
                    accepted.insert(a);
                }
                Ok(None) => {}
                Err(e) => notes.push(format!("{a}: temporary password not checked: {e}")),
            }
        }
    } else {
        notes.push("temporary passwords were not tried (--no-login-check)".into());
    }
    let flavor = session.server().flavor;
    // The nightly's own account is audited against what the backup and the
    // enabled steps need, as `users audit` does, not as a lab member.
    let service = match spyglass_jobs::nightly::account::service_account(inputs.settings, session) {
        Ok(s) => s,
        Err(e) => {
            notes.push(format!(
                "the backup account of [backup] account was not checked: {}",
                chain(&e)
            ));
            None
        }
    };
    if let Some(s) = &service {
        notes.push(format!(
            "{} is the backup account ([backup] account): not a lab member, checked against what the backup and the enabled nightly steps need",
            s.account
        ));
    }
    let findings = audit::audit(policy, live, flavor, &scope, &accepted, service.as_ref());
    let roles: Vec<String> = policy.roles.iter().map(|r| r.name.clone()).collect();
    let now_unix = names::now_unix();
    let accounts: Vec<AccountRow> = live
        .accounts
        .values()
        .filter(|a| !a.is_system())
        .filter(|a| service.as_ref().is_none_or(|s| s.account != a.account))
        .map(|a| {
            let granted = live.members.get(&a.account).cloned().unwrap_or_default();
            let active = live.active_at_login(&a.account);
            AccountRow {
                account: a.account.to_string(),
                cells: roles
                    .iter()
                    .map(|r| {
                        if active.contains(r) {
                            "active".into()
                        } else if granted.contains(r) {
                            "granted".into()
                        } else {
                            String::new()
                        }
                    })
                    .collect(),
                password_age_days: a
                    .password_last_changed
                    .map(|t| (now_unix - t).max(0) / 86_400),
                password_expired: a.password_expired,
                temporary_password: accepted.contains(&a.account),
                locked: a.locked,
            }
        })
        .collect();
    let weak_passwords = accounts
        .iter()
        .filter(|a| a.temporary_password || a.password_expired)
        .map(|a| {
            let why = match (a.temporary_password, a.password_expired) {
                (true, true) => "temporary password, never changed",
                (true, false) => "accepts the temporary password",
                _ => "first password never changed (expired)",
            };
            format!("{}: {why}", a.account)
        })
        .collect();
    let mut inactive_roles = Vec::new();
    for r in &roles {
        let holders = live.members.values().filter(|m| m.contains(r)).count();
        if !live.roles.contains(r) {
            inactive_roles.push(format!("{r}: does not exist on the server"));
        } else if holders == 0 {
            inactive_roles.push(format!("{r}: no account holds it"));
        }
    }
    for a in &accounts {
        for (r, c) in roles.iter().zip(&a.cells) {
            if c == "granted" {
                inactive_roles.push(format!(
                    "{r}: granted to {} but not active at login",
                    a.account
                ));
            }
        }
    }
    let findings = findings
        .iter()
        .map(|f| AuditFinding {
            severity: json_name(&f.severity),
            kind: json_name(&f.kind),
            subject: f.subject.clone(),
            message: f.message.clone(),
            fix: (inputs.render_fix)(&f.fix),
        })
        .collect();
    Users {
        roles,
        accounts,
        weak_passwords,
        inactive_roles,
        findings,
        notes,
    }
}

fn json_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `spyglass-nightly.log` lines, oldest first (unreadable lines skipped).
fn nightly_log(dest: &Path) -> Vec<serde_json::Value> {
    let Ok(text) = std::fs::read_to_string(dest.join(spyglass_jobs::nightly::LOG_FILE)) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}

fn set_name(v: &serde_json::Value) -> Option<String> {
    v.as_str()
        .map(Path::new)
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
}

fn step<'v>(run: &'v serde_json::Value, name: &str) -> Option<&'v serde_json::Value> {
    run["steps"]
        .as_array()?
        .iter()
        .find(|s| s["name"].as_str() == Some(name))
}

fn backups_section(dest: &Path) -> Result<(Backups, Vec<HistoryRecord>), String> {
    let sets = list::list(dest).map_err(|e| chain(&e))?;
    let log = nightly_log(dest);
    let mut by_set: BTreeMap<String, &serde_json::Value> = BTreeMap::new();
    for run in &log {
        if let Some(n) = set_name(&run["set"]) {
            by_set.insert(n, run);
        }
    }
    let mut out = Vec::new();
    let mut manifests = Vec::new();
    for s in &sets {
        let m = if s.status == list::Status::Complete {
            Manifest::load(&s.path).ok()
        } else {
            None
        };
        if let Some(rec) = m.as_ref().and_then(aggregate::manifest_record) {
            manifests.push(rec);
        }
        let started_unix = m
            .as_ref()
            .and_then(|m| aggregate::parse_rfc3339(&m.started))
            .or(s.created);
        let seconds = m.as_ref().and_then(|m| {
            Some(
                (aggregate::parse_rfc3339(&m.finished)? - aggregate::parse_rfc3339(&m.started)?)
                    as f64,
            )
        });
        let compression = m.as_ref().map(|m| {
            let v = serde_json::to_value(m.compression).unwrap_or_default();
            match (v["method"].as_str(), v["level"].as_i64()) {
                (Some(method), Some(l)) => format!("{method} {l}"),
                (Some(method), None) => method.to_owned(),
                _ => String::new(),
            }
        });
        let run = by_set.get(&s.name);
        // `backup verify` records its result in the set; nightly's verify step
        // is in the log only.
        let logged = run.and_then(|r| {
            let st = step(r, "verify")?;
            let when = r["started"].as_str().unwrap_or("?");
            let msg = st["message"].as_str().unwrap_or("");
            match st["status"].as_str()? {
                "ok" => Some(("good".to_owned(), Some(format!("by nightly {when}: {msg}")))),
                "failed" | "warning" => {
                    Some(("bad".to_owned(), Some(format!("by nightly {when}: {msg}"))))
                }
                _ => None,
            }
        });
        let (verify, verify_detail) = match &s.verified {
            None => logged.unwrap_or(("never".to_owned(), None)),
            Some(r) if r.good => (
                "good".to_owned(),
                Some(format!(
                    "{}{}",
                    r.verified,
                    if r.restored {
                        ", restored and compared"
                    } else {
                        ""
                    }
                )),
            ),
            Some(r) => (
                "bad".to_owned(),
                Some(format!(
                    "{}: {} problem(s){}",
                    r.verified,
                    r.problems,
                    r.first_problem
                        .as_ref()
                        .map(|p| format!(", first: {p}"))
                        .unwrap_or_default()
                )),
            ),
        };
        let mut warnings = Vec::new();
        if let Some(d) = &s.detail {
            warnings.push(d.clone());
        }
        let (ship, ship_detail) = match run.and_then(|r| step(r, "ship")) {
            Some(st) => (
                st["status"].as_str().map(str::to_owned),
                st["message"].as_str().map(str::to_owned),
            ),
            None => (None, None),
        };
        if let Some(r) = run {
            // The steps about this set (cleanup's findings are the cleanup section's).
            for st in r["steps"].as_array().into_iter().flatten() {
                let about_set = matches!(st["name"].as_str(), Some("backup" | "verify" | "ship"));
                if about_set && matches!(st["status"].as_str(), Some("warning" | "failed")) {
                    warnings.push(format!(
                        "nightly {} {}: {}",
                        st["name"].as_str().unwrap_or("?"),
                        st["status"].as_str().unwrap_or("?"),
                        st["message"].as_str().unwrap_or("")
                    ));
                }
            }
        }
        out.push(BackupRun {
            name: s.name.clone(),
            status: json_name(&s.status),
            started: started_unix.map(names::rfc3339),
            started_unix,
            seconds,
            bytes: s.bytes,
            raw_bytes: m.as_ref().map(|m| m.total_raw_bytes()),
            compression,
            verify,
            verify_detail,
            ship,
            ship_detail,
            warnings,
            notes: m.as_ref().map(|m| m.notes.clone()).unwrap_or_default(),
        });
    }
    let newest_verified = out
        .iter()
        .rev()
        .find(|r| r.status == "complete" && r.verify == "good")
        .map(|r| r.name.clone());
    let newest_offsite_verified = out
        .iter()
        .rev()
        .find(|r| r.verify == "good" && r.ship.as_deref() == Some("ok"))
        .map(|r| r.name.clone())
        .or_else(|| {
            // The local copy may be gone (remove_after_ship): the log still says.
            log.iter().rev().find_map(|r| {
                let ok = |n| step(r, n).and_then(|s| s["status"].as_str()) == Some("ok");
                (ok("verify") && ok("ship"))
                    .then(|| set_name(&r["set"]))
                    .flatten()
            })
        });
    let nightly: Vec<NightlyRun> = log
        .iter()
        .rev()
        .take(60)
        .rev()
        .map(|r| NightlyRun {
            started: r["started"].as_str().unwrap_or("").to_owned(),
            status: r["status"].as_str().unwrap_or("").to_owned(),
            seconds: r["seconds"].as_f64().unwrap_or(0.0),
            set: set_name(&r["set"]),
            steps: r["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap_or("?").to_owned(),
                        s["status"].as_str().unwrap_or("?").to_owned(),
                    )
                })
                .collect(),
        })
        .collect();
    Ok((
        Backups {
            destination: dest.display().to_string(),
            sets: out,
            nightly,
            newest_offsite_verified,
            newest_verified,
            binlog_archive: "not configured: this version has no binary-log archive, so no restorable window or archive lag (RPO) is shown".into(),
        },
        manifests,
    ))
}

/// Gathers every section. Only a failed connection is an error; a section
/// whose source is missing or fails is [`Section::Unavailable`] with the reason.
pub fn gather(inputs: &Inputs<'_>) -> Result<Report, ReportError> {
    let now_unix = names::now_unix();
    let mut session = spyglass_db::connect(&inputs.connection.options)?;
    let info = session.server().clone();
    let server = ServerInfo {
        address: inputs.connection.options.endpoint.to_string(),
        flavor: info.flavor.to_string().to_lowercase(),
        version: info.version_string.clone(),
        gathered: now(),
    };
    let policy = Policy::from_config(&inputs.settings.users);

    // Cleanup first: its scan's catalog is what storage reads rows from.
    let t = Instant::now();
    let opened = job::open_for_scan(
        inputs.settings,
        inputs.connection,
        &ScanOverrides::default(),
    )
    .map_err(|e| chain(&e))
    .and_then(|mut ctx| {
        // Storage counts each schema's files from the scan's own rows.
        ctx.opts.keep_rows = true;
        ctx.scan().map(|s| (ctx, s)).map_err(|e| chain(&e))
    });
    let (mut ctx_scan, cleanup) = match opened {
        Ok((ctx, scan)) => {
            let c = cleanup_section(inputs.settings, &ctx, &scan, now_unix);
            (Some((ctx, scan)), section(t, Ok(c)))
        }
        Err(e) => (None, section(t, Err(e))),
    };

    // Users: the live state also names the accounts whose prefixes group schemas.
    let t = Instant::now();
    let live = live::read(&mut session).map_err(|e| chain(&e));
    let users = match (&policy, &live) {
        (Ok(p), Ok(l)) => section(t, Ok(users_section(inputs, p, l, &mut session))),
        (Err(e), _) => section(t, Err(chain(e))),
        (_, Err(e)) => section(t, Err(e.clone())),
    };
    let user_names: BTreeSet<String> = live
        .as_ref()
        .map(|l| l.accounts.keys().map(|a| a.user.clone()).collect())
        .unwrap_or_default();

    let t = Instant::now();
    let storage = (|| -> Result<Storage, String> {
        let tables = table_sizes(&mut session).map_err(|e| chain(&e))?;
        let (refs, mut notes, stores) = match &mut ctx_scan {
            Some((ctx, scan)) => {
                let (refs, notes) = file_refs(ctx, scan)?;
                let stores: Vec<(String, String)> = ctx
                    .setup
                    .stores
                    .iter()
                    .filter(|s| s.is_file())
                    .map(|s| (s.name.clone(), s.location.display().to_string()))
                    .collect();
                (refs, notes, stores)
            }
            None => (
                Vec::new(),
                vec!["external files not counted: the stores could not be read (see the cleanup section)".into()],
                Vec::new(),
            ),
        };
        let prefixes = policy
            .as_ref()
            .map(|p| p.shared_prefixes.clone())
            .unwrap_or_default();
        let mut s = aggregate::storage(&tables, &refs, &prefixes, &user_names, &stores);
        for st in &mut s.stores {
            if !st.location.is_empty() {
                st.volume = volume(Path::new(&st.location));
            }
        }
        let (v, note) = database_volume(&mut session, &inputs.connection.options.endpoint);
        s.database_volume = v;
        s.database_volume_note = note;
        notes.sort();
        notes.dedup();
        s.notes = notes;
        Ok(s)
    })();
    let storage = section(t, storage);

    let t = Instant::now();
    let dest = inputs
        .destination
        .clone()
        .or_else(|| inputs.settings.backup.destination.clone());
    let (backups, growth) = match &dest {
        None => (
            Section::Unavailable {
                reason: "no backup destination: set [backup] destination in spyglass-admin.toml or pass --dest".into(),
            },
            Section::Unavailable {
                reason: "the history is kept under the backup destination, which is not configured".into(),
            },
        ),
        Some(d) => match backups_section(d) {
            Err(e) => (
                section(t, Err(e.clone())),
                Section::Unavailable { reason: e },
            ),
            Ok((b, manifests)) => {
                let backups = section(t, Ok(b));
                let t = Instant::now();
                let g = growth_section(d, storage.data(), &manifests, now_unix);
                (backups, section(t, g))
            }
        },
    };

    let mut report = Report {
        format: FORMAT,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        generated: names::rfc3339(now_unix),
        server,
        problems: Vec::new(),
        storage,
        growth,
        backups,
        cleanup,
        users,
    };
    report.problems = crate::problems(&report);
    Ok(report)
}

fn growth_section(
    dest: &Path,
    storage: Option<&Storage>,
    manifests: &[HistoryRecord],
    now_unix: i64,
) -> Result<Growth, String> {
    let file = dest.join(HISTORY_FILE);
    let mut hist = history::read(&file).map_err(|e| chain(&e))?;
    if let Some(s) = storage {
        history::upsert(&mut hist, record_of(s, now_unix));
    }
    let series = aggregate::series(&hist, manifests);
    let mut runway = Vec::new();
    let reports: Vec<&HistoryRecord> = series.iter().filter(|r| r.source == "report").collect();
    // The report's own points (data + index) when there are as many as
    // nights with a set; else the manifests' (uncompressed dump bytes), one per night.
    let report_points: Vec<(i64, u64)> = reports.iter().map(|r| (r.unix, r.db_bytes())).collect();
    let manifest_points: Vec<(i64, u64)> = aggregate::series(&[], manifests)
        .iter()
        .map(|r| (r.unix, r.db_bytes()))
        .collect();
    let (db_source, db_points) = if report_points.len() >= manifest_points.len() {
        ("report", report_points)
    } else {
        ("manifest", manifest_points)
    };
    let db_free = storage
        .and_then(|s| s.database_volume.as_ref())
        .map(|v| v.free_bytes);
    runway.push(aggregate::runway(
        "database", db_source, &db_points, db_free,
    ));
    for st in storage.map(|s| s.stores.as_slice()).unwrap_or_default() {
        let points: Vec<(i64, u64)> = reports
            .iter()
            .filter_map(|r| r.store_bytes.get(&st.store).map(|b| (r.unix, *b)))
            .collect();
        runway.push(aggregate::runway(
            &format!("store {}", st.store),
            "report",
            &points,
            st.volume.as_ref().map(|v| v.free_bytes),
        ));
    }
    Ok(Growth {
        history_file: file.display().to_string(),
        series,
        runway,
    })
}
