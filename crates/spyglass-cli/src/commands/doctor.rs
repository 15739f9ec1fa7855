//! `spyglass-admin doctor`: is this setup ready for each command family?

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::ServerInfo;
use spyglass_privileges::capability::{self, Scope};

use crate::args::{DoctorArgs, GlobalOpts};
use crate::connection::{self, Environment, FileNote};
use crate::output::{self, ExitStatus};
use crate::settings;

/// `--json` output of `doctor`. Fields are only ever added.
#[derive(Debug, Serialize)]
struct Report {
    /// True when `problems` is empty (exit 0).
    healthy: bool,
    /// Every configuration file looked for, read or not.
    config_files: Vec<FileNote>,
    /// The spyglass-admin settings file, if one was read.
    settings_file: Option<PathBuf>,
    connection: ConnectionReport,
    server: ServerInfo,
    /// One entry per command family.
    privileges: Vec<FamilyReport>,
    /// Spyglass directories; empty when none are configured.
    directories: Vec<DirReport>,
    backup_destination: Option<DestReport>,
    /// The backup destination when it is a target (`ssh://`, `s3://`):
    /// checked like the ship target (then `backup_destination` is null).
    backup_destination_target: Option<super::doctor_target::TargetReport>,
    /// `[backup] ship_to`: reachable, host key, login, programs, free space.
    ship_target: Option<super::doctor_target::TargetReport>,
    /// Bytes of data and indexes in user schemas (information_schema estimate).
    database_bytes: u64,
    /// Schemas holding the `~restore_incomplete` table: a restore left them
    /// unfinished (killed or stopped by an error: each is a problem), or one
    /// is loading them now (`running`: reported only).
    unfinished_restores: Vec<spyglass_backup::restore::UnfinishedRestore>,
    /// The nightly's dead man's switch, from `<destination>/spyglass-nightly.log`
    /// (null without a destination).
    nightly: Option<spyglass_jobs::nightly::history::Health>,
    /// The account `nightly` connects as (`[backup] account` with
    /// `password_file`) and what it lacks for the enabled steps; null when
    /// nightly uses the same connection as this doctor run.
    nightly_account: Option<NightlyAccount>,
    problems: Vec<Problem>,
}

#[derive(Debug, Serialize)]
struct NightlyAccount {
    /// `CURRENT_USER()` of the nightly's login, or the name it tried.
    account: String,
    /// Logged in.
    login: bool,
    /// What each enabled step needs that it does not hold, `step: PRIVILEGE on WHAT`.
    missing: Vec<String>,
    /// With a restore drill enabled: the triggers and stored functions it
    /// cannot restore as this account (the binary log is on, the account
    /// lacks SUPER, `log_bin_trust_function_creators` is off), null when
    /// none. A note, not a problem: the drill says so in its result.
    drill_leaves_out: Option<spyglass_jobs::nightly::account::DrillGap>,
}

#[derive(Debug, Serialize)]
struct ConnectionReport {
    /// `host:port` or `socket PATH`.
    server: String,
    user: String,
    /// `CURRENT_USER()`: the account the server matched.
    account: String,
    tls: bool,
    /// The TLS mode in force (`disable` ... `verify-identity`).
    tls_mode: &'static str,
    /// How the server's certificate was verified: `chain+hostname`,
    /// `chain`, or `unverified`; `none` without TLS.
    tls_verified: &'static str,
    /// The CA the chain was checked against (verifying modes).
    tls_ca: Option<std::path::PathBuf>,
    /// What the server presented, from a separate probe that sends no credentials.
    tls_details: Option<spyglass_db::tls::TlsReport>,
    /// Why the probe could not report, if it failed.
    tls_probe_error: Option<String>,
    /// Where each setting came from.
    sources: Vec<Source>,
}

#[derive(Debug, Serialize)]
struct Source {
    setting: &'static str,
    from: String,
}

#[derive(Debug, Serialize)]
struct FamilyReport {
    family: capability::Family,
    /// `ok`, `degraded` (recommended privileges missing) or `missing` (cannot run).
    status: &'static str,
    missing: Vec<capability::Requirement>,
}

#[derive(Debug, Serialize)]
struct DirReport {
    key: spyglass_cleanup::dirs::DirKey,
    path: PathBuf,
    source: spyglass_cleanup::dirs::DirSource,
    exists: bool,
    readable: bool,
    writable: bool,
    /// Missing, but Spyglass creates it itself when it loads its settings
    /// (its parent exists): reported, not a problem.
    spyglass_creates: bool,
}

#[derive(Debug, Serialize)]
struct DestReport {
    path: PathBuf,
    exists: bool,
    writable: bool,
    free_bytes: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Problem {
    /// `config`, `privileges`, `directories`, `backup_destination`, `ship_target` or `restore`.
    check: &'static str,
    message: String,
    hint: String,
}

pub fn run(global: &GlobalOpts, args: &DoctorArgs) -> anyhow::Result<ExitStatus> {
    let settings = settings::load(global.config.as_deref())?;
    let env = Environment::from_process();
    let mut resolved = connection::resolve(&global.connect, &env)?;
    let mut problems = Vec::new();
    for w in &resolved.warnings {
        problems.push(Problem {
            check: "config",
            message: w.clone(),
            hint: "a password file must be readable by its owner only".into(),
        });
    }
    let mut session = match connection::connect(&mut resolved) {
        Ok(s) => s,
        Err(e) => {
            login_failed(global, &resolved, &e)?;
            return Err(e);
        }
    };
    let account = session.current_user()?;
    let tls_opts = resolved.options.tls.clone();
    let tls_verified = match (session.tls(), tls_opts.mode) {
        (false, _) => "none",
        (true, spyglass_db::TlsMode::VerifyIdentity) => "chain+hostname",
        (true, spyglass_db::TlsMode::VerifyCa) => "chain",
        (true, _) => "unverified",
    };
    let (tls_details, tls_probe_error) = match session.endpoint() {
        spyglass_db::Endpoint::Tcp { host, port } if session.tls() => {
            match spyglass_db::tls::probe(host, *port, &tls_opts, resolved.options.connect_timeout)
            {
                Ok(d) => (d, None),
                Err(e) => (None, Some(e)),
            }
        }
        _ => (None, None),
    };
    if let Some(d) = &tls_details {
        if d.days_left < 30 {
            problems.push(Problem {
                check: "tls",
                message: format!(
                    "the server's TLS certificate ({}) expires {} ({} days)",
                    d.subject, d.not_after, d.days_left
                ),
                hint: "renew the server certificate (ssl_cert) before it expires; clients that verify will refuse it then".into(),
            });
        }
    }
    let server = session.server().clone();
    let flavor = server.flavor;

    let held = spyglass_privileges::grants::current_privileges(&mut session)?;
    let mut privileges = Vec::new();
    for check in capability::check_all(&held, flavor) {
        let required: Vec<_> = check.missing_required().collect();
        let recommended: Vec<_> = check.missing_recommended().collect();
        let status = if !required.is_empty() {
            "missing"
        } else if !recommended.is_empty() {
            "degraded"
        } else {
            "ok"
        };
        for r in check.missing.iter() {
            let on = match r.scope {
                Scope::Global => "*.*",
                Scope::AllSchemas => "*.* (or `%`.*)",
                Scope::MysqlSchema => "mysql.*",
            };
            problems.push(Problem {
                check: "privileges",
                message: format!(
                    "{}: {account} lacks {} on {on}, needed to {}{}",
                    check.family.name(),
                    r.privilege,
                    r.why,
                    if r.required {
                        ""
                    } else {
                        " (works without it, degraded)"
                    }
                ),
                hint: format!("as an admin: GRANT {} ON *.* TO {account}", r.privilege),
            });
        }
        privileges.push(FamilyReport {
            family: check.family,
            status,
            missing: check.missing,
        });
    }

    let custom = resolved
        .dj
        .as_ref()
        .map(|d| d.custom.clone())
        .unwrap_or_default();
    let dirs = spyglass_cleanup::dirs::resolve(&custom, |k| std::env::var(k).ok())?;
    let mut directories = Vec::new();
    if let Some(dirs) = &dirs {
        for d in &dirs.dirs {
            let exists = d.path.is_dir();
            let readable = exists && std::fs::read_dir(&d.path).is_ok();
            let writable = exists && can_write(&d.path);
            // Spyglass's settings make every directory but the base
            // (`Path(dir).mkdir(exist_ok=True)`, no parents) when loaded.
            let spyglass_creates = !exists
                && d.key != spyglass_cleanup::dirs::DirKey::Base
                && d.path.parent().is_some_and(|p| {
                    p.is_dir()
                        || dirs
                            .get(spyglass_cleanup::dirs::DirKey::Base)
                            .is_some_and(|b| b.path == p)
                });
            if spyglass_creates {
                // Reported in the directory list; Spyglass makes it on first use.
            } else if !exists {
                problems.push(Problem {
                    check: "directories",
                    message: format!(
                        "Spyglass {} directory {} does not exist",
                        d.key.key(),
                        d.path.display()
                    ),
                    hint: format!(
                        "create it (mkdir -p {}) or correct custom.spyglass_dirs.{} / {}",
                        d.path.display(),
                        d.key.key(),
                        d.key.env_var()
                    ),
                });
            } else if !readable || !writable {
                problems.push(Problem {
                    check: "directories",
                    message: format!(
                        "Spyglass {} directory {} is not {}",
                        d.key.key(),
                        d.path.display(),
                        if !readable { "readable" } else { "writable" }
                    ),
                    hint: "run spyglass-admin as a user that owns the Spyglass data, or fix the permissions".into(),
                });
            }
            directories.push(DirReport {
                key: d.key,
                path: d.path.clone(),
                source: d.source.clone(),
                exists,
                readable,
                writable,
                spyglass_creates,
            });
        }
    }

    let database_bytes: u64 = session
        .conn()
        .query_first(format!(
            "SELECT CAST(COALESCE(SUM(data_length + index_length), 0) AS UNSIGNED) FROM information_schema.TABLES \
             WHERE table_schema NOT IN {}",
            spyglass_db::schemas::system_schemas_sql()
        ))
        .map_err(|e| spyglass_db::DbError::query("measuring the database size", e))?
        .unwrap_or(0);

    let dest_path = args
        .backup_dest
        .clone()
        .or_else(|| settings.backup.destination.clone());
    // An off-site destination (`--backup-dest ssh://...`, `backup run
    // --dest` writes a temporary set and ships it) is checked the way ship
    // reaches it, not as a local directory.
    let remote_dest = dest_path
        .as_deref()
        .and_then(|p| p.to_str())
        .filter(|p| spyglass_backup::ship::scheme_of(p).is_some())
        .map(str::to_owned);
    let backup_destination_target = remote_dest.as_deref().map(|to| {
        let setting = if args.backup_dest.is_some() {
            "--backup-dest"
        } else {
            "[backup] destination"
        };
        let (r, found) =
            super::doctor_target::check_target(to, setting, "backup destination", &settings);
        for (message, hint) in found {
            problems.push(Problem {
                check: "backup_destination",
                message,
                hint,
            });
        }
        r
    });
    let dest_path = dest_path.filter(|_| remote_dest.is_none());
    let backup_destination = dest_path.as_deref().map(|p| {
        let s = spyglass_backup::destination::probe(p);
        if !s.exists {
            problems.push(Problem {
                check: "backup_destination",
                message: format!("backup destination {} does not exist", p.display()),
                hint: format!("create it: mkdir -p {} (and chmod 700 it)", p.display()),
            });
        } else if !s.writable {
            problems.push(Problem {
                check: "backup_destination",
                message: format!("backup destination {} is not writable", p.display()),
                hint: "fix its permissions or choose another destination".into(),
            });
        }
        if let Some(free) = s.free_bytes {
            if free < database_bytes {
                problems.push(Problem {
                    check: "backup_destination",
                    message: format!(
                        "backup destination {} has {} free but the database holds {}",
                        p.display(),
                        output::human_bytes(free),
                        output::human_bytes(database_bytes)
                    ),
                    hint: "free space there or prune old backup sets".into(),
                });
            }
        }
        DestReport {
            path: s.path,
            exists: s.exists,
            writable: s.writable,
            free_bytes: s.free_bytes,
        }
    });

    let ship_target = super::doctor_target::check(&settings).map(|(r, found)| {
        for (message, hint) in found {
            problems.push(Problem {
                check: "ship_target",
                message,
                hint,
            });
        }
        r
    });
    // Point-in-time restores: checked when the destination holds a binlog archive.
    if let Some(dest) = dest_path.as_deref().filter(|d| d.join("binlog").is_dir()) {
        for b in super::binlog::doctor_checks(&mut session, dest) {
            problems.push(Problem {
                check: "binlog",
                message: b.message,
                hint: b.hint,
            });
        }
    }

    // Restores that did not finish: their schemas are half loaded.
    let unfinished_restores = spyglass_backup::restore::unfinished_restores(session.conn())?;
    for u in unfinished_restores.iter().filter(|u| !u.running) {
        problems.push(Problem {
            check: "restore",
            message: format!(
                "schema `{}` is an unfinished restore (of {}, started {}): it may lack rows, views, triggers or routines",
                u.schema, u.set, u.started
            ),
            hint: format!(
                "run the restore again with --force (`spyglass-admin backup restore {} --force`, with the same --schemas and --rename), which replaces it, or drop it (DROP DATABASE {}) if it is not needed",
                u.set,
                spyglass_db::quote::ident(&u.schema)
            ),
        });
    }

    // The dead man's switch: is the nightly still running, and shipping?
    let nightly = dest_path.as_deref().map(|d| {
        let h = spyglass_jobs::nightly::history::health(
            d,
            spyglass_backup::names::now_unix(),
            &spyglass_jobs::nightly::history::Bounds::from_settings(&settings),
        );
        for p in &h.problems {
            problems.push(Problem {
                check: "nightly",
                message: p.clone(),
                hint: "look at the newest lines of spyglass-nightly.log in the backup destination and at the scheduler (systemctl status spyglass-nightly.timer, or cron's mail); run `spyglass-admin nightly` by hand to see it fail".into(),
            });
        }
        h
    });

    let nightly_account = nightly_account(global, &settings, &mut problems);

    let mut config_files = resolved.files.clone();
    if let Some(p) = &settings.path {
        config_files.push(FileNote {
            kind: "settings",
            path: p.clone(),
            status: "read",
        });
    }
    let report = Report {
        healthy: problems.is_empty(),
        config_files,
        settings_file: settings.path.clone(),
        connection: ConnectionReport {
            server: session.endpoint().to_string(),
            user: session.user().to_owned(),
            account,
            tls: session.tls(),
            tls_mode: tls_opts.mode.as_str(),
            tls_verified,
            tls_ca: tls_opts.ca.clone().filter(|_| tls_opts.mode.verifies()),
            tls_details,
            tls_probe_error,
            sources: resolved
                .origins
                .iter()
                .map(|(s, f)| Source {
                    setting: s,
                    from: f.clone(),
                })
                .collect(),
        },
        server,
        privileges,
        directories,
        backup_destination,
        backup_destination_target,
        ship_target,
        database_bytes,
        unfinished_restores,
        nightly,
        nightly_account,
        problems,
    };
    if global.json {
        output::print_json(&report)?;
    } else {
        output::print_out(&render(&report, dest_path.is_none(), dirs.is_none()))?;
    }
    Ok(if report.healthy {
        ExitStatus::Success
    } else {
        ExitStatus::Findings
    })
}

/// Logs in as nightly's own account (`[backup] account` + `password_file`)
/// and checks what the enabled steps need: the backup privileges, and the
/// schema grants of `spyglass_jobs::nightly::account` (DELETE and INSERT on
/// the schemas in scope for `cleanup = "apply"`, ALL on `drill\_%` for a
/// restore drill).
fn nightly_account(
    global: &GlobalOpts,
    settings: &settings::Settings,
    problems: &mut Vec<Problem>,
) -> Option<NightlyAccount> {
    let (name, _) = (
        settings.backup.account_name()?,
        settings.backup.password_file.as_ref()?,
    );
    if global.connect.user.is_some() || global.connect.password_file.is_some() {
        return None;
    }
    let flags = super::nightly::nightly_flags(&global.connect, &settings.backup);
    let env = Environment::from_process();
    let steps = spyglass_jobs::nightly::account::Steps::of(settings);
    let login = connection::resolve(&flags, &env)
        .and_then(|mut r| connection::connect(&mut r))
        .and_then(|mut s| {
            let held = spyglass_privileges::grants::current_privileges(&mut s)?;
            // Which schemas cleanup apply would delete rows in, as this
            // account sees them (nightly sees the same).
            let needs =
                spyglass_jobs::nightly::account::schema_needs(settings, steps, &mut || {
                    spyglass_jobs::nightly::account::external_schemas(&mut s)
                })?;
            let gap = if steps.drill {
                spyglass_jobs::nightly::account::drill_gap(&mut s, &held)?
            } else {
                None
            };
            Ok((s.server().flavor, held, needs, gap))
        });
    let (flavor, held, needs, drill_leaves_out) = match login {
        Ok(v) => v,
        Err(e) => {
            problems.push(Problem {
                check: "nightly",
                message: format!("nightly cannot log in as {name} ([backup] account and password_file): {e:#}"),
                hint: "check the password file (first line, mode 0600) and the account's host; `spyglass-admin users add-backup-user` makes the account".into(),
            });
            return Some(NightlyAccount {
                account: name,
                login: false,
                missing: Vec::new(),
                drill_leaves_out: None,
            });
        }
    };
    let mut missing = Vec::new();
    for check in capability::check_all(&held, flavor)
        .into_iter()
        .filter(|c| c.family == capability::Family::Backup)
    {
        for r in check.missing_required() {
            missing.push(format!("backup: {} on *.*", r.privilege));
        }
    }
    let mut schema_missing = false;
    for n in &needs {
        for p in n.lacking(&held) {
            schema_missing = true;
            missing.push(format!("{}: {p} on {}", n.step, n.on.sql()));
        }
    }
    let fix = match settings.backup.account.as_deref() {
        Some(a) if schema_missing => format!(
            "run `spyglass-admin users add-backup-user {a}` as an administrator: it grants what the enabled steps need (read from this settings file), on those schemas only"
        ),
        _ => "grant it (`spyglass-admin users add-backup-user` grants what the backup and the enabled steps need), or switch the step off".into(),
    };
    for m in &missing {
        problems.push(Problem {
            check: "nightly",
            message: format!(
                "nightly's account {} lacks what an enabled step needs: {m}",
                held.account
            ),
            hint: fix.clone(),
        });
    }
    Some(NightlyAccount {
        account: held.account.clone(),
        login: true,
        missing,
        drill_leaves_out,
    })
}

/// `doctor --json` when the login fails: where each setting came from, so
/// the admin sees which password was used (e.g. `DJ_PASS` over the
/// DataJoint file). Fields are only ever added.
#[derive(Debug, Serialize)]
struct FailedReport<'a> {
    healthy: bool,
    config_files: &'a [FileNote],
    connection: FailedConnection,
}

#[derive(Debug, Serialize)]
struct FailedConnection {
    server: String,
    user: String,
    /// The error, as printed on stderr.
    error: String,
    sources: Vec<Source>,
}

/// Prints the files read and where each setting came from; the error
/// itself goes to stderr as usual (exit 2).
fn login_failed(
    global: &GlobalOpts,
    resolved: &connection::Resolved,
    err: &anyhow::Error,
) -> anyhow::Result<()> {
    let sources: Vec<Source> = resolved
        .origins
        .iter()
        .map(|(s, f)| Source {
            setting: s,
            from: f.clone(),
        })
        .collect();
    let server = resolved.options.endpoint.to_string();
    if global.json {
        return output::print_json(&FailedReport {
            healthy: false,
            config_files: &resolved.files,
            connection: FailedConnection {
                server,
                user: resolved.options.user.clone(),
                error: err.to_string(),
                sources,
            },
        });
    }
    let mut s = String::new();
    let _ = writeln!(s, "config files");
    for f in &resolved.files {
        let _ = writeln!(s, "  {:<10} {:<9} {}", f.kind, f.status, f.path.display());
    }
    let _ = writeln!(s, "connection");
    let _ = writeln!(
        s,
        "  FAIL {server} as {}: login failed",
        resolved.options.user
    );
    for src in &sources {
        let _ = writeln!(s, "       {:<8} from {}", src.setting, src.from);
    }
    if !resolved.origins.iter().any(|(k, _)| *k == "password") {
        let _ = writeln!(s, "       password none given");
    }
    output::print_out(&s)
}

fn can_write(dir: &Path) -> bool {
    let probe = dir.join(format!(".spyglass-admin-doctor-{}", std::process::id()));
    let ok = std::fs::File::create(&probe).is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

fn render(r: &Report, no_dest: bool, no_dirs: bool) -> String {
    let mut s = String::new();
    let mark = |ok: bool| if ok { "ok  " } else { "FAIL" };
    let _ = writeln!(s, "config files");
    for f in &r.config_files {
        let _ = writeln!(s, "  {:<10} {:<9} {}", f.kind, f.status, f.path.display());
    }
    let _ = writeln!(s, "connection");
    let _ = writeln!(
        s,
        "  ok   {} as {} (account {}), TLS {}",
        r.connection.server,
        r.connection.user,
        r.connection.account,
        if r.connection.tls { "yes" } else { "no" }
    );
    let c = &r.connection;
    if c.tls {
        let how = match c.tls_verified {
            "chain+hostname" => format!(
                "verified: chain (CA {}) and host name",
                c.tls_ca.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "public web roots".into())
            ),
            "chain" => format!(
                "verified: chain (CA {}); host name not checked (verify-ca)",
                c.tls_ca.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
            ),
            _ => format!(
                "unverified (mode {}): the certificate is not checked; pass --tls-ca and --tls-mode verify-identity",
                c.tls_mode
            ),
        };
        let _ = writeln!(s, "       tls      {how}");
        if let Some(d) = &c.tls_details {
            let _ = writeln!(s, "       tls      {} {}", d.version, d.cipher);
            let _ = writeln!(
                s,
                "       cert     subject {}; names {}; issuer {}",
                d.subject,
                if d.names.is_empty() {
                    "(none)".to_owned()
                } else {
                    d.names.join(", ")
                },
                d.issuer
            );
            let _ = writeln!(
                s,
                "       cert     expires {} ({} days)",
                d.not_after, d.days_left
            );
        }
        if let Some(e) = &c.tls_probe_error {
            let _ = writeln!(s, "       tls      (could not read the certificate: {e})");
        }
    }
    for src in &r.connection.sources {
        let _ = writeln!(s, "       {:<8} from {}", src.setting, src.from);
    }
    let _ = writeln!(s, "  ok   {} ({})", r.server, r.server.version_string);
    let _ = writeln!(s, "privileges of {}", r.connection.account);
    for f in &r.privileges {
        let _ = writeln!(
            s,
            "  {} {:<10} {}",
            match f.status {
                "ok" => "ok  ",
                "degraded" => "WARN",
                _ => "FAIL",
            },
            f.family.name(),
            if f.missing.is_empty() {
                "all needed privileges held".to_owned()
            } else {
                format!(
                    "missing {}",
                    f.missing
                        .iter()
                        .map(|m| m.privilege)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
    }
    let _ = writeln!(s, "Spyglass directories");
    if no_dirs {
        let _ = writeln!(
            s,
            "  --   not configured (custom.spyglass_dirs.base in the DataJoint config or SPYGLASS_BASE_DIR); cleanup needs them"
        );
    }
    for d in &r.directories {
        let ok = d.exists && d.readable && d.writable;
        if d.spyglass_creates {
            let _ = writeln!(
                s,
                "  --   {:<10} {} (missing; Spyglass creates it when it loads its settings)",
                d.key.key(),
                d.path.display()
            );
            continue;
        }
        let state = if !d.exists {
            "missing"
        } else if !d.readable {
            "not readable"
        } else if !d.writable {
            "not writable"
        } else {
            "read/write"
        };
        let _ = writeln!(
            s,
            "  {} {:<10} {} ({state})",
            mark(ok),
            d.key.key(),
            d.path.display()
        );
    }
    let _ = writeln!(s, "backup destination");
    match &r.backup_destination {
        None if r.backup_destination_target.is_some() => {
            if let Some(t) = &r.backup_destination_target {
                super::doctor_target::render_report(&mut s, t);
            }
        }
        None if no_dest => {
            let _ = writeln!(s, "  --   not configured ([backup] destination in spyglass-admin.toml, or --backup-dest)");
        }
        None => {}
        Some(d) => {
            let ok = d.exists && d.writable && d.free_bytes.is_some_and(|f| f >= r.database_bytes);
            let _ = writeln!(
                s,
                "  {} {} ({} free; database holds {})",
                mark(ok),
                d.path.display(),
                d.free_bytes
                    .map(output::human_bytes)
                    .unwrap_or_else(|| "unknown".into()),
                output::human_bytes(r.database_bytes)
            );
        }
    }
    super::doctor_target::render(&mut s, r.ship_target.as_ref());
    if let Some(h) = &r.nightly {
        let _ = writeln!(s, "nightly");
        for n in &h.notes {
            let _ = writeln!(s, "  --   {n}");
        }
        if h.runs > 0 {
            let _ = writeln!(
                s,
                "  {} {} run(s) logged; newest successful {}{}",
                mark(h.problems.is_empty()),
                h.runs,
                h.last_success.as_deref().unwrap_or("never"),
                h.last_offsite
                    .as_deref()
                    .map(|t| format!("; newest verified off-site copy {t}"))
                    .unwrap_or_default()
            );
        }
    }
    if let Some(a) = &r.nightly_account {
        let _ = writeln!(
            s,
            "  {} nightly connects as {}{}",
            mark(a.login && a.missing.is_empty()),
            a.account,
            if !a.login {
                " (login failed)".to_owned()
            } else if a.missing.is_empty() {
                ": holds what the enabled steps need".to_owned()
            } else {
                format!(": lacks {}", a.missing.join("; "))
            }
        );
        if let Some(g) = &a.drill_leaves_out {
            let _ = writeln!(s, "  --   {}", g.text(&a.account));
        }
    }
    let _ = writeln!(s, "restores");
    if r.unfinished_restores.is_empty() {
        let _ = writeln!(s, "  ok   no unfinished restore on the server");
    }
    for u in &r.unfinished_restores {
        let _ = writeln!(
            s,
            "  {} {} {} (restore of {} started {})",
            if u.running { "--  " } else { "FAIL" },
            u.schema,
            if u.running {
                "being restored now"
            } else {
                "unfinished"
            },
            u.set,
            u.started
        );
    }
    if r.problems.is_empty() {
        let _ = writeln!(s, "\nhealthy: no problems found");
    } else {
        let _ = writeln!(s, "\n{} problem(s):", r.problems.len());
        for p in &r.problems {
            let _ = writeln!(s, "problem: {}\n  hint: {}", p.message, p.hint);
        }
    }
    s
}
