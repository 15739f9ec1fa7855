//! `spyglass-admin backup run | restore | verify | list`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use spyglass_backup::dump::{self, DumpOptions};
use spyglass_backup::list::{self, Status};
use spyglass_backup::restore::{self, RestoreOptions};
use spyglass_backup::ship::{self, FetchedSet, ShipOptions, ShipReport, Target};
use spyglass_backup::verify;

use crate::args::{
    BackupArgs, BackupCommand, EngineArg, GlobalOpts, ListArgs, RestoreArgs, RunArgs, SshArgs,
    VerifyArgs,
};
use crate::connection::{self, Environment};
use crate::output::{self, ExitStatus, UserError};
use crate::progress::Bar;
use crate::settings;

pub fn run(global: &GlobalOpts, args: BackupArgs) -> anyhow::Result<ExitStatus> {
    match args.command {
        BackupCommand::Run(a) => run_backup(global, &a),
        BackupCommand::Restore(a) => run_restore(global, &a),
        BackupCommand::Verify(a) => run_verify(global, &a),
        BackupCommand::List(a) => run_list(global, &a),
        BackupCommand::Prune(a) => super::lifecycle::prune(global, &a),
        BackupCommand::Ship(a) => super::lifecycle::ship(global, &a),
        BackupCommand::Pack(a) => super::lifecycle::pack(global, &a),
        BackupCommand::Unpack(a) => super::lifecycle::unpack(global, &a),
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

pub(super) fn dest_or_settings(
    global: &GlobalOpts,
    dest: Option<&PathBuf>,
) -> anyhow::Result<PathBuf> {
    if let Some(d) = dest {
        return Ok(d.clone());
    }
    let s = settings::load(global.config.as_deref())?;
    s.backup.destination.ok_or_else(|| {
        UserError::new("no backup destination given")
            .hint("pass --dest DIR, or set [backup] destination in spyglass-admin.toml")
            .into()
    })
}

/// A destination or set argument with a scheme (`ssh://...`,
/// `s3://...`) as a [`Target`]; `None` for a local directory. An `s3://`
/// target gets the `[s3]` settings.
fn target_of(global: &GlobalOpts, p: &Path) -> anyhow::Result<Option<Target>> {
    match p.to_str().filter(|s| ship::scheme_of(s).is_some()) {
        Some(s) => {
            let t = Target::parse(s)?;
            Ok(Some(match t {
                Target::S3 { .. } => t.with_s3_config(&s3_settings(global)?),
                t => t,
            }))
        }
        None => Ok(None),
    }
}

/// The `[s3]` settings (a secret in a file others can read is refused).
fn s3_settings(global: &GlobalOpts) -> anyhow::Result<spyglass_backup::ship::s3::S3Config> {
    let s = settings::load(global.config.as_deref())?;
    Ok(spyglass_jobs::lifecycle::s3_config(&s)?)
}

/// True when `p` is written `s3://...`.
fn is_s3(p: &Path) -> bool {
    p.to_str().is_some_and(|s| s.starts_with("s3://"))
}

/// ssh settings of a command: its flags, then `[backup]`.
fn ssh_of(global: &GlobalOpts, a: &SshArgs) -> anyhow::Result<spyglass_backup::ship::SshOptions> {
    let s = settings::load(global.config.as_deref())?;
    Ok(super::lifecycle::ssh_options(a, &s))
}

/// The set a verify or restore works on: a local set directory as given,
/// or a set on a ship target (`ssh://.../NAME`, `s3://.../NAME`) fetched
/// into a private temporary directory (removed when the [`FetchedSet`] is
/// dropped).
fn local_set(
    global: &GlobalOpts,
    set: &Path,
    ssh: &SshArgs,
) -> anyhow::Result<(PathBuf, Option<FetchedSet>)> {
    if target_of(global, set)?.is_none() {
        return Ok((set.to_owned(), None));
    }
    let opts = ssh_of(global, ssh)?;
    let s3 = if is_s3(set) {
        s3_settings(global)?
    } else {
        Default::default()
    };
    Ok(ship::open_set_on(set, &opts, &s3)?)
}

/// Says where a fetched set was copied to (on stderr, unless quiet or JSON).
fn say_fetched(global: &GlobalOpts, fetched: Option<&FetchedSet>) {
    if let Some(f) = fetched {
        if !global.quiet && !global.json {
            eprintln!(
                "fetched {} ({}) into {}",
                f.url,
                output::human_bytes(f.bytes),
                f.path.display()
            );
        }
    }
}

pub(super) fn connect_options(global: &GlobalOpts) -> anyhow::Result<spyglass_db::ConnectOptions> {
    let env = Environment::from_process();
    let mut resolved = connection::resolve(&global.connect, &env)?;
    for w in &resolved.warnings {
        eprintln!("warning: {w}");
    }
    // Connect once here, so a bad password or host fails early with the usual
    // message (and a prompt on a terminal), before any file is written.
    drop(connection::connect(&mut resolved)?);
    Ok(resolved.options)
}

/// `--json` output of `backup run`.
#[derive(Serialize)]
struct RunReport<'a> {
    /// The set: a directory, or `TARGET/NAME` when it was shipped.
    path: &'a std::path::Path,
    /// With an ssh:// (or other target) destination: the shipping.
    shipped: Option<&'a ShipReport>,
    schemas: usize,
    tables: usize,
    files: usize,
    rows: u64,
    raw_bytes: u64,
    bytes: u64,
    seconds: f64,
    snapshot: &'a spyglass_backup::manifest::Snapshot,
    notes: &'a [String],
}

fn run_backup(global: &GlobalOpts, a: &RunArgs) -> anyhow::Result<ExitStatus> {
    let dest = dest_or_settings(global, a.dest.as_ref())?;
    // A target destination (ssh://, s3://): dump into a private temporary
    // directory, ship from there, remove it once the copy there verified.
    // A scheme that is not supported stops here, before anything is written.
    let target = target_of(global, &dest)?;
    let compression = a
        .compress
        .with_level(a.level)
        .map_err(|m| UserError::new(m).hint("gzip takes --level 0-12, zstd 1-19"))?;
    if a.label.is_empty() || a.label.contains('/') || a.label.starts_with('.') {
        return Err(UserError::new(format!(
            "label '{}' is not usable in a directory name",
            a.label
        ))
        .into());
    }
    let threads = a.threads.unwrap_or_else(cores);
    if threads == 0 {
        return Err(UserError::new("--threads must be at least 1").into());
    }
    let opts = connect_options(global)?;
    let ship_opts = match &target {
        Some(t) => {
            let so = run_ship_options(global, &a.ssh)?;
            // Reach the target (credentials, a missing bucket, an unknown
            // host key) before the dump starts.
            t.remote(&so).probe(true)?;
            Some(so)
        }
        None => None,
    };
    let staging = match &target {
        Some(_) => Some(ship::private_tempdir("spyglass-admin-run-")?),
        None => None,
    };
    let mut o = DumpOptions::new(match &staging {
        Some(t) => t.path().to_owned(),
        None => dest.clone(),
    });
    o.label = a.label.clone();
    o.schemas = a.schemas.clone();
    o.exclude = a.exclude.clone();
    o.threads = threads;
    o.compression = compression;
    o.checksum = a.checksum;
    o.accounts = !a.no_accounts;
    o.chunk_bytes = a.chunk_mb.max(1) << 20;
    o.statement_bytes = (a.statement_mb.max(1) << 20) as usize;
    o.long_query_guard = std::time::Duration::from_secs(a.long_query_guard);
    o.kill_long_queries = a.kill_long_queries;
    o.allow_inconsistent = a.allow_inconsistent;
    // An explicit --level means that level everywhere.
    if a.level.is_some() {
        o.blob_level = None;
    }
    o.engine = match a.engine {
        EngineArg::Native => dump::Engine::Native,
        EngineArg::Mysqldump => dump::Engine::Mysqldump {
            program: a.dump_program.clone(),
        },
    };
    // Ctrl-C / SIGTERM stop the workers cleanly; the set stays .partial.
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, std::sync::Arc::clone(&o.interrupt));
    }
    let bar = Bar::new(!global.json && !global.quiet);
    let t = std::time::Instant::now();
    let summary = dump::run(&opts, &o, &bar)?;
    let m = &summary.manifest;
    let mut shipped = None;
    let mut path = summary.path.clone();
    if let (Some(t), Some(so), Some(staging)) = (&target, &ship_opts, staging) {
        match ship::ship(&summary.path, t, so) {
            Ok(r) => {
                path = PathBuf::from(t.set_url(&r.set));
                shipped = Some(r);
                drop(staging);
            }
            Err(e) => {
                // Keep the set: it is complete, only the shipping failed.
                let kept = staging.keep();
                let set = kept.join(summary.path.file_name().unwrap_or_default());
                return Err(anyhow::Error::new(e).context(format!(
                    "the set was written but not shipped to {t}; it is kept at {} (ship it with: spyglass-admin backup ship {} --to {t}, then remove {})",
                    set.display(),
                    set.display(),
                    kept.display()
                )));
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    if global.json {
        output::print_json(&RunReport {
            path: &path,
            shipped: shipped.as_ref(),
            schemas: m.schemas.len(),
            tables: m.tables.len(),
            files: m.files.len(),
            rows: m.tables.iter().map(|t| t.rows).sum(),
            raw_bytes: m.total_raw_bytes(),
            bytes: m.total_bytes(),
            seconds: secs,
            snapshot: &m.snapshot,
            notes: &m.notes,
        })?;
    } else {
        if !global.quiet {
            eprintln!(
                "backed up {} schemas, {} tables, {} rows: {} of SQL in {} on disk, {:.1}s (snapshot: {})",
                m.schemas.len(),
                m.tables.len(),
                m.tables.iter().map(|t| t.rows).sum::<u64>(),
                output::human_bytes(m.total_raw_bytes()),
                output::human_bytes(m.total_bytes()),
                secs,
                m.snapshot.method
            );
            for n in &m.notes {
                eprintln!("note: {n}");
            }
            if let Some(r) = &shipped {
                eprintln!("shipped {}", spyglass_jobs::nightly::ship_line(r));
            }
        }
        output::print_out(&format!("{}\n", path.display()))?;
    }
    for f in &summary.findings {
        eprintln!("warning: {f}");
    }
    Ok(if summary.findings.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Findings
    })
}

/// How `backup run --dest ssh://...` ships: `[backup]` settings, the
/// command's ssh flags.
fn run_ship_options(global: &GlobalOpts, a: &SshArgs) -> anyhow::Result<ShipOptions> {
    let s = settings::load(global.config.as_deref())?;
    Ok(ShipOptions {
        ssh: super::lifecycle::ssh_options(a, &s),
        bwlimit_kib: s.backup.bwlimit_kib.unwrap_or(0),
        show_transfer: !global.json
            && !global.quiet
            && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ..ShipOptions::default()
    })
}

/// Refuses, naming the privilege, when the connected account may not run
/// what a restore runs on each target schema: `CREATE DATABASE` and its
/// tables (on MySQL with REFERENCES for their foreign keys), the rows'
/// `INSERT`s, and the `DROP` of the schema (`--force`) and of the
/// unfinished-restore marker; `--with-accounts` also needs
/// `CREATE USER`. What it cannot see (a definer, a privilege through a
/// role not active) is left to the restore itself, which stops at the
/// first statement the server refuses.
fn check_restore_privileges(
    opts: &spyglass_db::ConnectOptions,
    set: &Path,
    ro: &RestoreOptions,
) -> anyhow::Result<()> {
    use spyglass_privileges::preflight::{self, SchemaPrivilege};
    let manifest = spyglass_backup::set::open(set)?;
    let renames = restore::plan(&manifest, set, ro)?;
    let mut session = spyglass_db::connect(opts)?;
    let held = spyglass_privileges::grants::current_privileges(&mut session)?;
    // MySQL also checks REFERENCES for each FOREIGN KEY a CREATE TABLE
    // declares (MariaDB does not); DataJoint tables nearly all have one.
    let mysql = session.server().flavor == spyglass_db::Flavor::Mysql;
    let mut needs = Vec::new();
    for target in renames.values() {
        let q = spyglass_db::quote::ident(target);
        let mut each = vec![
            ("CREATE", format!("CREATE DATABASE {q}")),
            ("INSERT", format!("INSERT INTO {q}.<table>")),
            ("DROP", format!("DROP TABLE {q}.`~restore_incomplete`")),
        ];
        if mysql {
            each.push((
                "REFERENCES",
                format!("CREATE TABLE {q}.<table> (... FOREIGN KEY ... REFERENCES ...)"),
            ));
        }
        for (privilege, statement) in each {
            needs.push(SchemaPrivilege {
                schema: target.clone(),
                privilege: privilege.into(),
                statement,
            });
        }
    }
    let mut missing = preflight::missing_on_schemas(&held, &needs);
    if ro.with_accounts && !held.has_global("CREATE USER") {
        missing.push(preflight::Missing {
            privilege: "CREATE USER".into(),
            on: "*.*".into(),
            statement: "CREATE USER ... (--with-accounts)".into(),
        });
    }
    super::refuse_unless_held(
        held.account.clone(),
        missing,
        "restore as an account that holds these on the target schemas (root, or one granted them there), or restore under names it may create (--rename)",
    )
}

fn run_restore(global: &GlobalOpts, a: &RestoreArgs) -> anyhow::Result<ExitStatus> {
    let mut rename = Vec::new();
    for r in &a.rename {
        let (old, new) = r
            .split_once('=')
            .filter(|(o, n)| !o.is_empty() && !n.is_empty())
            .ok_or_else(|| UserError::new(format!("--rename '{r}' is not OLD=NEW")))?;
        if old.ends_with('*') != new.ends_with('*') {
            return Err(UserError::new(format!(
                "--rename '{r}': use a trailing * on both sides or on neither"
            ))
            .into());
        }
        rename.push((old.to_owned(), new.to_owned()));
    }
    let (set, fetched) = local_set(global, &a.set, &a.ssh)?;
    // A set from a target: every file fetched is checked before connecting,
    // and a damaged one is named by where it is.
    if let Some(f) = &fetched {
        let bad = f.damaged()?;
        if !bad.is_empty() {
            return Err(UserError::new(format!(
                "{} file(s) of {} do not match the manifest, nothing was restored: {}",
                bad.len(),
                f.url,
                bad.join(", ")
            ))
            .hint("the copy on the target is damaged: restore another set, or ship this one again from a good local copy with --repair")
            .into());
        }
    }
    // Said only once it checked, so an error is the first line on stderr.
    say_fetched(global, fetched.as_ref());
    // Fail on a bad set before connecting.
    spyglass_backup::set::open(&set)?;
    // Point in time: the archive must cover it before the target changes.
    let pitr =
        super::binlog::point_in_time(global, &a.set, &set, &ssh_of(global, &a.ssh)?, &a.pitr)?;
    let opts = connect_options(global)?;
    let ro = RestoreOptions {
        schemas: a.schemas.clone(),
        rename,
        threads: a.threads.unwrap_or_else(cores),
        force: a.force,
        with_accounts: a.with_accounts,
        binlog: a.enable_binlog,
        definer_fallback: false,
        // A fetched copy is gone after the run: a restore that stops names
        // the set's address there, so it can be run again as it was.
        source: fetched.as_ref().map(|f| f.url.clone()),
    };
    // Before the target changes: the account may create and fill every
    // target schema (issue 19: every command that changes the server checks first).
    check_restore_privileges(&opts, &set, &ro)?;
    let bar = Bar::new(!global.json && !global.quiet);
    let t = std::time::Instant::now();
    let s = restore::restore(&opts, &set, &ro, &bar).map_err(|e| match e {
        spyglass_backup::Error::SchemasExist { schemas, unfinished } => {
            let mut msg = format!(
                "schema(s) already exist on {}: {}",
                opts.endpoint,
                schemas.join(", ")
            );
            if !unfinished.is_empty() {
                let _ = write!(
                    msg,
                    "; {} {} an unfinished restore (it holds the table `{}`)",
                    unfinished.join(", "),
                    if unfinished.len() == 1 { "is" } else { "are" },
                    restore::MARKER_TABLE
                );
            }
            anyhow::Error::new(UserError::new(msg).hint(
                "restore under other names with --rename OLD=NEW, or replace them with --force (drops them, after every file of the set is checked)",
            ))
        }
        e => e.into(),
    })?;
    if global.json && pitr.is_none() {
        output::print_json(&s)?;
    } else if !global.quiet {
        eprintln!(
            "restored {} schemas ({} files, {} rows) into {} in {:.1}s (every file checked first: {}; sql_mode {})",
            s.schemas.len(),
            s.files,
            s.rows,
            opts.endpoint,
            t.elapsed().as_secs_f64(),
            output::human_bytes(s.checked_bytes),
            s.sql_mode
        );
        for n in &s.notes {
            eprintln!("note: {n}");
        }
    }
    // A warning means the server changed a value: a finding, even with --json.
    if !global.json {
        for w in &s.warnings {
            eprintln!(
                "warning: {}: {} warning(s) while loading; the first: {}",
                w.path.display(),
                w.count,
                w.first
            );
        }
    }
    // An object whose definer has no account here loaded, but fails when used.
    if !global.json {
        for d in &s.missing_definers {
            eprintln!(
                "warning: {} {}: its definer {} has no account on {}; it was restored with that definer (as mysqldump does) and fails when used until the account exists (restore with --with-accounts, or create it)",
                d.kind, d.object, d.definer, opts.endpoint
            );
        }
    }
    if let Some((archive, stop, _fetched_archive)) = pitr {
        let r = super::binlog::replay_after_restore(global, &opts, &set, &archive, &ro, stop)?;
        if global.json {
            output::print_json(&serde_json::json!({ "restore": s, "replay": r }))?;
        }
    }
    Ok(if s.warnings.is_empty() && s.missing_definers.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Findings
    })
}

fn run_verify(global: &GlobalOpts, a: &VerifyArgs) -> anyhow::Result<ExitStatus> {
    let bar = Bar::new(!global.json && !global.quiet);
    let (set, fetched) = local_set(global, &a.set, &a.ssh)?;
    say_fetched(global, fetched.as_ref());
    let mut report = verify::verify(&set, &bar)?;
    let restored = a.restore && report.problems.is_empty();
    if restored {
        let opts = connect_options(global)?;
        verify::verify_by_restoring(
            &opts,
            &set,
            &a.prefix,
            a.threads.unwrap_or_else(cores),
            None,
            &mut report,
            &bar,
        )
        .or_else(|e| match e {
            // Leaving schemas behind, or not being able to start, is always an error.
            e @ (spyglass_backup::Error::NotDropped { .. }
            | spyglass_backup::Error::SchemasExist { .. }) => Err(e),
            e if report.problems.is_empty() => Err(e),
            _ => Ok(()),
        })
        .map_err(|e| match e {
            spyglass_backup::Error::SchemasExist { schemas, .. } => anyhow::Error::new(
                UserError::new(format!(
                    "verify --restore restores into {}, which already exist on {}",
                    schemas.join(", "),
                    opts.endpoint
                ))
                .hint("use another --prefix, or drop those schemas if a verify left them"),
            ),
            e => e.into(),
        })?;
    }
    // The result goes beside the manifest, for `backup list` (not for a
    // packed set, nor for a fetched copy: a committed set on a target is
    // never written to).
    if let Some(f) = &fetched {
        // Name what was checked by where it is, not by the temporary copy.
        report.set = PathBuf::from(&f.url);
        for p in &mut report.problems {
            p.path = f.origin_of(&p.path);
        }
    } else if set.is_dir() {
        if let Err(e) = verify::record(&set, &report, restored) {
            eprintln!("warning: the result was not recorded: {e}");
        }
    }
    if global.json {
        output::print_json(&report)?;
    } else {
        let mut s = String::new();
        for p in &report.problems {
            let _ = writeln!(s, "BAD  {}: {}", p.path.display(), p.detail);
        }
        let _ = writeln!(
            s,
            "{}: {} files, {} checked{}; {}",
            report.set.display(),
            report.files,
            output::human_bytes(report.bytes),
            if a.restore {
                format!(
                    ", {} tables compared after restoring",
                    report.tables_compared
                )
            } else {
                String::new()
            },
            if report.problems.is_empty() {
                "good".to_owned()
            } else {
                format!("{} problem(s)", report.problems.len())
            }
        );
        if let Some(t) = verify::not_restored_text(&report.not_restored) {
            let _ = writeln!(s, "NOTE {t}");
        }
        output::print_out(&s)?;
    }
    Ok(if report.problems.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Findings
    })
}

fn utc_text(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map_or_else(
        || t.to_string(),
        |d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// One set in `backup list --json`: what the library lists, and two
/// summaries every target shares.
#[derive(Serialize)]
struct ListedSet<'a> {
    #[serde(flatten)]
    info: &'a list::SetInfo,
    /// Complete and intact as far as sizes tell (a staged copy, a set
    /// still being written or a corrupt one is not).
    complete: bool,
    /// Why a set looks corrupt, when it does.
    problem: Option<&'a str>,
}

fn run_list(global: &GlobalOpts, a: &ListArgs) -> anyhow::Result<ExitStatus> {
    let dest = dest_or_settings(global, a.dest.as_ref())?;
    let sets = match target_of(global, &dest)? {
        Some(t) => ship::list_target(&t, &ssh_of(global, &a.ssh)?)?,
        None => list::list(&dest)?,
    };
    if global.json {
        let listed: Vec<ListedSet> = sets
            .iter()
            .map(|info| ListedSet {
                complete: info.status == Status::Complete,
                problem: match info.status {
                    Status::Corrupt => info.detail.as_deref(),
                    _ => None,
                },
                info,
            })
            .collect();
        output::print_json(&listed)?;
    } else {
        let now = spyglass_backup::names::now_unix();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<36} {:<24} {:>10} {:>8}  {:>7}  checked",
            "set", "status", "size", "age", "schemas"
        );
        for i in &sets {
            let status = match (i.status, i.writer_alive, &i.verified) {
                (Status::Partial, Some(true), _) => "writing",
                (Status::Partial, _, _) => "partial",
                (Status::Complete, _, None) if i.on_target => "complete, verified",
                (Status::Complete, _, None) => "complete, not verified",
                (Status::Complete, _, Some(v)) if v.good => "complete, verified",
                (Status::Complete, _, Some(_)) => "complete, verify failed",
                (Status::Corrupt, _, _) => "corrupt",
            };
            // list reads sizes only; what verify found, and when, comes from its record.
            let checked = match &i.verified {
                None if i.on_target => "sha256 checked on arrival".to_owned(),
                None => "never verified".to_owned(),
                Some(v) if v.good => format!(
                    "verified {}{}",
                    v.verified,
                    if v.restored { " (restored)" } else { "" }
                ),
                Some(v) => format!("{} problem(s) at verify {}", v.problems, v.verified),
            };
            let age = i
                .created
                .map(|c| age(now - c))
                .unwrap_or_else(|| "?".into());
            let _ = writeln!(
                s,
                "{:<36} {:<24} {:>10} {:>8}  {:>7}  {}",
                i.name,
                status,
                output::human_bytes(i.bytes),
                age,
                i.schemas.len(),
                if i.status == Status::Complete {
                    checked.as_str()
                } else {
                    ""
                }
            );
            if let Some(d) = &i.detail {
                let _ = writeln!(s, "    {d}");
            }
            if let Some(w) = &i.restorable {
                let _ = match (&w.problem, w.until) {
                    (Some(p), _) => writeln!(s, "    point in time: none ({p})"),
                    (None, Some(u)) => writeln!(
                        s,
                        "    point in time: restorable from {} to {} (binlog archive from {})",
                        w.from.map_or_else(|| "?".into(), utc_text),
                        utc_text(u),
                        w.from_position
                    ),
                    (None, None) => writeln!(
                        s,
                        "    point in time: the archive holds no event after the set yet"
                    ),
                };
            }
            if let Some(p) = i.verified.as_ref().and_then(|v| v.first_problem.as_ref()) {
                if i.status == Status::Complete {
                    let _ = writeln!(s, "    {p}");
                }
            }
        }
        if sets.is_empty() {
            let _ = writeln!(s, "(no backup sets in {})", dest.display());
        }
        output::print_out(&s)?;
    }
    Ok(
        if sets
            .iter()
            .any(|s| s.status == Status::Corrupt || s.verified.as_ref().is_some_and(|v| !v.good))
        {
            ExitStatus::Findings
        } else {
            ExitStatus::Success
        },
    )
}

fn age(secs: i64) -> String {
    match secs {
        s if s < 3600 => format!("{}m", s.max(0) / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
