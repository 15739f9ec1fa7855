//! Writing a backup set: one consistent snapshot shared by parallel workers,
//! big tables split into primary-key ranges, compression inside the workers.
//!
//! Consistency: the coordinator takes `FLUSH TABLES WITH READ LOCK` briefly,
//! every worker opens `START TRANSACTION WITH CONSISTENT SNAPSHOT` (REPEATABLE
//! READ) while it is held, the binary log position is read, and the lock is
//! released. DDL is kept out for the rest of the dump with `LOCK INSTANCE FOR
//! BACKUP` (MySQL) or `BACKUP STAGE BLOCK_DDL` (MariaDB) where allowed.
//! Workers keep their connection for the whole dump. Without the privilege
//! for the global lock the dump still runs, says so, and records
//! `snapshot.method = "none"` in the manifest.
//! <https://dev.mysql.com/doc/refman/8.0/en/flush.html#flush-tables-with-read-lock>
//!
//! Here: the coordinator ([`run`]) and what both engines write (schema and
//! post files, data file headers). `native` holds the workers of the native
//! engine, `mysqldump` the engine that drives the system dump tool.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::mysql::Conn;
use spyglass_db::{quote, ConnectOptions, DbError, Flavor, Session};

use crate::catalog::{self, TableInfo};
use crate::compress::{Compression, SetFileWriter};
use crate::manifest::{FileKind, FileRecord, Manifest, ServerRecord, Snapshot, TableRecord};
use crate::names::{self, file_name};
use crate::progress::Progress;
use crate::set;
use crate::Error;

mod mysqldump;
mod native;

use native::{binlog_position, chunk_ranges, start_snapshot, worker, Job, JobResult, Shared};

/// What to back up and how.
#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// Destination directory; the set is created inside it.
    pub dest: PathBuf,
    /// Set name prefix.
    pub label: String,
    /// Schema globs to include (empty: all).
    pub schemas: Vec<String>,
    /// Schema globs to exclude.
    pub exclude: Vec<String>,
    /// Worker connections.
    pub threads: usize,
    /// Compression.
    pub compression: Compression,
    /// Record `CHECKSUM TABLE` for every table.
    pub checksum: bool,
    /// Target uncompressed size of a data chunk.
    pub chunk_bytes: u64,
    /// Upper bound of one INSERT statement.
    pub statement_bytes: usize,
    /// Dump accounts, roles and grants.
    pub accounts: bool,
    /// Set from outside (e.g. on SIGINT) to stop the dump; the set stays `.partial`.
    pub interrupt: Arc<AtomicBool>,
    /// Which engine writes the set.
    pub engine: Engine,
    /// How long to wait for other sessions' long statements to end before
    /// taking the global read lock (and the lock's own timeout).
    pub long_query_guard: std::time::Duration,
    /// `KILL QUERY` statements still running at the guard instead of failing.
    pub kill_long_queries: bool,
    /// Without a global read lock (long statements, or it failed although
    /// the account holds RELOAD), dump anyway without a shared snapshot:
    /// the set is complete but not consistent, and [`DumpSummary::findings`] says so.
    pub allow_inconsistent: bool,
    /// With gzip, the level for tables with BLOB columns (`None`: the
    /// compression's own level). Neural arrays have few repeated strings, so a
    /// low level keeps nearly all the compression at a fraction of the time.
    pub blob_level: Option<u32>,
}

/// Who produces the SQL of a set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Engine {
    /// Our parallel engine.
    #[default]
    Native,
    /// The system `mysqldump`/`mariadb-dump` (or `program`), orchestrated into
    /// the same layout and manifest; one transaction for all data.
    Mysqldump {
        /// The dump program; found on PATH when `None`.
        program: Option<PathBuf>,
    },
}

/// The default gzip level of files without BLOB columns (libdeflate's; see
/// ARCHITECTURE.md, Dependencies, libdeflater, and the README backup bench
/// for the measurements behind both levels).
pub const GZIP_LEVEL: u32 = 6;

/// The default gzip level of tables with BLOB columns.
pub const BLOB_GZIP_LEVEL: u32 = 2;

impl DumpOptions {
    /// The compression of a data file, by whether its table has BLOB columns.
    pub fn compression_for(&self, blobs: bool) -> Compression {
        match (self.compression, self.blob_level) {
            (Compression::Gzip(_), Some(level)) if blobs => Compression::Gzip(level),
            (c, _) => c,
        }
    }

    /// Defaults: label `backup`, all schemas, one worker per core, gzip at
    /// [`GZIP_LEVEL`] ([`BLOB_GZIP_LEVEL`] for BLOB tables),
    /// 64 MB chunks, 16 MB statements, accounts included.
    pub fn new(dest: PathBuf) -> Self {
        DumpOptions {
            dest,
            label: "backup".into(),
            schemas: Vec::new(),
            exclude: Vec::new(),
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            compression: Compression::Gzip(GZIP_LEVEL),
            checksum: false,
            chunk_bytes: 64 << 20,
            statement_bytes: 16 << 20,
            accounts: true,
            interrupt: Arc::new(AtomicBool::new(false)),
            engine: Engine::Native,
            blob_level: Some(BLOB_GZIP_LEVEL),
            long_query_guard: std::time::Duration::from_secs(60),
            kill_long_queries: false,
            allow_inconsistent: false,
        }
    }
}

/// What [`run`] wrote.
#[derive(Debug, Clone)]
pub struct DumpSummary {
    /// The complete set's directory.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Why the set is not what was asked for (exit 1): a snapshot given up
    /// under `--allow-inconsistent`.
    pub findings: Vec<String>,
}

fn db(what: &str) -> impl FnOnce(spyglass_db::mysql::Error) -> Error + '_ {
    move |e| Error::Db(DbError::query(what.to_owned(), e))
}

/// Runs a backup into a new set under `options.dest`.
pub fn run(
    connect: &ConnectOptions,
    options: &DumpOptions,
    progress: &dyn Progress,
) -> Result<DumpSummary, Error> {
    if options.threads == 0 {
        return Err(Error::Invalid(
            "the number of worker connections must be at least 1".into(),
        ));
    }
    let started = names::now_unix();
    let mut coord = spyglass_db::connect(connect)?;
    let flavor = coord.server().flavor;
    let version = coord.server().version_string.clone();
    let mut notes = Vec::new();
    setup_session(coord.conn(), flavor)?;
    let sql_mode: Option<String> = coord
        .conn()
        .query_first("SELECT @@GLOBAL.sql_mode")
        .map_err(db("reading the server's sql_mode"))?;

    // Which schemas (before anything is written, so a bad selection leaves no trace).
    let schemas = select_schemas(coord.conn(), options)?;

    crate::destination::require_dir(&options.dest)?;
    let mut findings = Vec::new();
    let native = options.engine == Engine::Native;
    let privs = crate::guard::privileges(coord.conn())?;
    let try_lock = native
        && long_query_guard(
            coord.conn(),
            options,
            &privs,
            progress,
            &mut notes,
            &mut findings,
        )?;
    let name = format!("{}-{}", options.label, names::stamp(started));
    let final_path = options.dest.join(&name);
    if final_path.exists()
        || options
            .dest
            .join(format!("{name}{}", set::PARTIAL))
            .exists()
    {
        return Err(Error::Invalid(format!(
            "{} already exists; wait a second and run again",
            final_path.display()
        )));
    }
    let partial = set::create_partial(&options.dest, &name)?;
    let head = set::Header {
        label: options.label.clone(),
        server: ServerRecord {
            flavor: format!("{flavor:?}").to_ascii_lowercase(),
            version,
            address: connect.endpoint.to_string(),
        },
        started,
        compression: options.compression,
        sql_mode,
        schemas: schemas.clone(),
    };

    if let Engine::Mysqldump { program } = &options.engine {
        let out = mysqldump::dump(
            connect,
            &mut coord,
            &schemas,
            &partial,
            options,
            program.as_deref(),
            progress,
        )?;
        let written = set::Written {
            engine: "mysqldump",
            encoding: "mysqldump --hex-blob",
            snapshot: out.snapshot,
            max_statement_bytes: out.max_statement,
            tables: out.tables,
            files: out.files,
            notes: out.notes,
        };
        return commit(&partial, final_path, head, written, Vec::new());
    }

    // The snapshot: the global read lock (when it may be taken) while every
    // worker opens its snapshot, the binary log position, the DDL lock.
    let locked = if try_lock {
        global_read_lock(
            coord.conn(),
            options,
            &privs,
            progress,
            &mut notes,
            &mut findings,
        )?
    } else {
        None
    };
    let mut workers: Vec<Conn> = Vec::with_capacity(options.threads);
    let opened = open_workers(coord.conn(), connect, flavor, options.threads, &mut workers);
    let (binlog_file, binlog_position, gtid) = if locked.is_some() {
        binlog_position(coord.conn(), flavor)
    } else {
        (None, None, None)
    };
    let (ddl_lock, ddl_guard) = if opened.is_ok() {
        block_ddl(&mut coord, connect, flavor)
    } else {
        ("none".to_owned(), None)
    };
    let mut writers_blocked_ms = None;
    if let Some(lock) = &locked {
        coord
            .conn()
            .query_drop("UNLOCK TABLES")
            .map_err(db("releasing the global read lock"))?;
        let held = lock.started.elapsed();
        writers_blocked_ms = Some(held.as_millis() as u64);
        notes.push(format!(
            "writers could have been blocked for {:.3} s by the global read lock ({:.3} s of it waiting for running statements)",
            held.as_secs_f64(),
            lock.wait_ms as f64 / 1000.0
        ));
    }
    opened?;
    if let (Some(b), Compression::Gzip(l)) = (options.blob_level, options.compression) {
        if b != l {
            notes.push(format!(
                "gzip: tables with BLOB columns at level {b}, other files at level {l}"
            ));
        }
    }
    if ddl_lock == "none" {
        notes.push(
            "DDL was not blocked during the dump (needs BACKUP_ADMIN on MySQL, RELOAD on MariaDB)"
                .into(),
        );
    }

    // What to dump, read inside the coordinator's snapshot.
    let tables = catalog::tables(coord.conn(), &schemas)?;
    for t in tables.iter().filter(|t| !t.is_view && !t.transactional()) {
        notes.push(format!(
            "`{}`.`{}` uses {}: not snapshot-consistent",
            t.schema, t.name, t.engine
        ));
    }
    // Plan the data jobs: big tables split by primary-key ranges, largest first.
    let JobPlan {
        jobs,
        chunks_of,
        total_estimate,
    } = plan_jobs(coord.conn(), &tables, options)?;
    progress.start("dump", total_estimate);

    let shared = Arc::new(Shared {
        jobs: Mutex::new(jobs.into()),
        cancel: AtomicBool::new(false),
        results: Mutex::new(Vec::new()),
    });
    let tables = Arc::new(tables);
    // While the workers dump rows, the coordinator writes, in its own
    // snapshot (DDL is blocked), each schema's definitions and its views,
    // triggers, routines and events (restored after the data); with many
    // small tables these catalog reads are a good part of the work.
    let mut files: Vec<FileRecord> = Vec::new();
    let mut post: Vec<FileRecord> = Vec::new();
    let failure = run_workers(
        workers,
        &shared,
        &tables,
        &partial,
        options,
        progress,
        || {
            for s in &schemas {
                files.push(write_schema_file(
                    coord.conn(),
                    &partial,
                    s,
                    &tables,
                    options.compression,
                )?);
            }
            for s in &schemas {
                post.push(write_post_file(
                    coord.conn(),
                    &partial,
                    s,
                    &tables,
                    options.compression,
                )?);
            }
            Ok(())
        },
    );
    progress.finish();
    if let Some(e) = failure {
        return Err(e);
    }
    if options.interrupt.load(Ordering::SeqCst) {
        return Err(Error::Interrupted { partial });
    }
    files.extend(post);
    if options.accounts {
        if let Some(f) = write_accounts(coord.conn(), flavor, &partial, options.compression)? {
            files.push(f);
        } else {
            notes.push("accounts were not dumped: this account may not read mysql.user".into());
        }
    }
    if ddl_lock == "lock_instance_for_backup" {
        let _ = coord.conn().query_drop("UNLOCK INSTANCE");
    }
    if let Some(mut g) = ddl_guard {
        let _ = g.conn().query_drop("BACKUP STAGE END");
    }
    let _ = coord.conn().query_drop("COMMIT");

    // Results into the manifest.
    let (records, max_statement) = collect_results(&shared, &tables, &chunks_of, &mut files)?;
    let written = set::Written {
        engine: "native",
        encoding: "escaped",
        snapshot: Snapshot {
            method: if locked.is_some() {
                "flush_tables_with_read_lock".into()
            } else {
                "none".into()
            },
            ddl_lock,
            binlog_file,
            binlog_position,
            gtid,
            workers: options.threads,
            lock_wait_ms: locked.map(|l| l.wait_ms),
            writers_blocked_ms,
        },
        max_statement_bytes: max_statement as u64,
        tables: records,
        files,
        notes,
    };
    commit(&partial, final_path, head, written, findings)
}

/// The schemas `options` selects, or an error when none is.
fn select_schemas(conn: &mut Conn, options: &DumpOptions) -> Result<Vec<String>, Error> {
    let all = catalog::schemas(conn)?;
    let schemas: Vec<String> = all
        .into_iter()
        .filter(|s| names::schema_selected(s, &options.schemas, &options.exclude))
        .collect();
    if schemas.is_empty() {
        return Err(Error::NothingSelected(
            "no schema matches the schema selection (include and exclude globs); nothing to back up"
                .into(),
        ));
    }
    Ok(schemas)
}

/// The long-query guard; whether the global read lock may be tried.
fn long_query_guard(
    conn: &mut Conn,
    options: &DumpOptions,
    privs: &crate::guard::Privileges,
    progress: &dyn Progress,
    notes: &mut Vec<String>,
    findings: &mut Vec<String>,
) -> Result<bool, Error> {
    if !privs.process {
        notes.push(format!("this account lacks PROCESS: the long-query guard sees only its own statements, so FLUSH TABLES WITH READ LOCK may wait on another session's (up to {} s, with writers waiting behind it)", options.long_query_guard.as_secs().max(1)));
    }
    let g = crate::guard::wait_for_long_queries(
        conn,
        options.long_query_guard,
        options.kill_long_queries,
    )?;
    if !g.long.is_empty() {
        let list: Vec<String> = g.long.iter().map(ToString::to_string).collect();
        let cause = format!(
            "{} statement(s) still ran after the long-query guard's {:.0} s",
            g.long.len(),
            g.waited.as_secs_f64()
        );
        if options.kill_long_queries {
            notes.push(format!("--kill-long-queries: killed {}", list.join("; ")));
        } else if options.allow_inconsistent {
            let msg = format!("no consistent snapshot (--allow-inconsistent): {cause}: {}; workers' snapshots start at slightly different moments", list.join("; "));
            progress.note(&msg);
            findings.push(msg.clone());
            notes.push(msg);
            return Ok(false);
        } else {
            return Err(Error::LongQueries {
                cause: format!("long-running statements would hold up FLUSH TABLES WITH READ LOCK and every writer behind it: {cause}"),
                queries: list,
            });
        }
    }
    Ok(true)
}

/// The global read lock, held: when its last attempt began, and how long it
/// waited for running statements.
struct GlobalLock {
    started: std::time::Instant,
    wait_ms: u64,
}

/// Takes `FLUSH TABLES WITH READ LOCK`; `None` when it could not be taken and
/// the dump goes on without a shared snapshot (said in `notes`, and in
/// `findings` when the account holds RELOAD).
///
/// A statement that began just after the guard looked would make FTWRL wait
/// for it with every writer queued behind: so each attempt waits at most
/// 2 s, writers run between attempts, and the attempts stop at the guard's
/// bound.
fn global_read_lock(
    conn: &mut Conn,
    options: &DumpOptions,
    privs: &crate::guard::Privileges,
    progress: &dyn Progress,
    notes: &mut Vec<String>,
    findings: &mut Vec<String>,
) -> Result<Option<GlobalLock>, Error> {
    let attempt = options.long_query_guard.as_secs().clamp(1, 2);
    let mut lock_started = std::time::Instant::now();
    let ftwrl = |c: &mut Conn, started: &mut std::time::Instant| {
        let deadline = std::time::Instant::now() + options.long_query_guard;
        c.query_drop(format!("SET SESSION lock_wait_timeout = {attempt}"))?;
        loop {
            *started = std::time::Instant::now();
            match c.query_drop("FLUSH TABLES WITH READ LOCK") {
                Err(spyglass_db::mysql::Error::MySqlError(e))
                    if e.code == 1205 && std::time::Instant::now() < deadline =>
                {
                    let _ = c.query_drop("UNLOCK TABLES");
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                r => return r,
            }
        }
    };
    match ftwrl(conn, &mut lock_started) {
        Ok(()) => Ok(Some(GlobalLock {
            started: lock_started,
            wait_ms: lock_started.elapsed().as_millis() as u64,
        })),
        Err(e) => {
            let _ = conn.query_drop("UNLOCK TABLES");
            let running: Vec<String> = crate::guard::long_queries(conn, 0)
                .unwrap_or_default()
                .iter()
                .map(ToString::to_string)
                .collect();
            let cause = if privs.reload {
                format!("FLUSH TABLES WITH READ LOCK failed after {:.1} s although this account holds RELOAD: {e}", lock_started.elapsed().as_secs_f64())
            } else {
                format!("could not take FLUSH TABLES WITH READ LOCK (needs RELOAD, which this account lacks): {e}")
            };
            if privs.reload && !options.allow_inconsistent {
                return Err(Error::LongQueries {
                    cause,
                    queries: if running.is_empty() {
                        vec!["none now".into()]
                    } else {
                        running
                    },
                });
            }
            let msg = format!("{cause}; no consistent snapshot: workers' snapshots start at slightly different moments");
            progress.note(&msg);
            if privs.reload {
                findings.push(msg.clone());
            }
            notes.push(msg);
            Ok(None)
        }
    }
}

/// Starts the coordinator's snapshot and opens `threads` worker connections
/// into `workers`, each inside its own snapshot.
fn open_workers(
    coord: &mut Conn,
    connect: &ConnectOptions,
    flavor: Flavor,
    threads: usize,
    workers: &mut Vec<Conn>,
) -> Result<(), Error> {
    start_snapshot(coord)?;
    for _ in 0..threads {
        let mut s = spyglass_db::connect(connect)?;
        setup_session(s.conn(), flavor)?;
        start_snapshot(s.conn())?;
        workers.push(s.into_conn());
    }
    Ok(())
}

/// Keeps DDL out for the rest of the dump where the account may: the lock's
/// name for the manifest (`none` when not taken), and on MariaDB the session
/// holding it.
fn block_ddl(
    coord: &mut Session,
    connect: &ConnectOptions,
    flavor: Flavor,
) -> (String, Option<Session>) {
    match flavor {
        Flavor::Mysql => {
            if coord.conn().query_drop("LOCK INSTANCE FOR BACKUP").is_ok() {
                return ("lock_instance_for_backup".into(), None);
            }
        }
        Flavor::Mariadb => {
            if let Ok(mut g) = spyglass_db::connect(connect) {
                if g.conn()
                    .query_drop("BACKUP STAGE START")
                    .and_then(|_| g.conn().query_drop("BACKUP STAGE BLOCK_DDL"))
                    .is_ok()
                {
                    return ("backup_stage_block_ddl".into(), Some(g));
                }
                let _ = g.conn().query_drop("BACKUP STAGE END");
            }
        }
    }
    ("none".to_owned(), None)
}

/// The data jobs, largest first, with each table's chunk count and the
/// total size estimate (for progress).
struct JobPlan {
    jobs: Vec<Job>,
    chunks_of: BTreeMap<usize, u32>,
    total_estimate: u64,
}

/// Plans the data jobs: tables over 1.5 chunks with a primary key split into
/// primary-key ranges, a checksum job per table when asked for.
fn plan_jobs(
    conn: &mut Conn,
    tables: &[TableInfo],
    options: &DumpOptions,
) -> Result<JobPlan, Error> {
    let mut jobs: Vec<Job> = Vec::new();
    let mut chunks_of: BTreeMap<usize, u32> = BTreeMap::new();
    let mut total_estimate = 0u64;
    for (i, t) in tables
        .iter()
        .enumerate()
        .filter(|(_, t)| !t.is_view && !t.columns.is_empty())
    {
        let ranges = if t.data_length > options.chunk_bytes + options.chunk_bytes / 2
            && !t.primary_key.is_empty()
        {
            chunk_ranges(conn, t, options.chunk_bytes)?
        } else {
            vec![None]
        };
        let per = t.data_length / ranges.len() as u64;
        chunks_of.insert(i, ranges.len() as u32);
        for (c, range) in ranges.into_iter().enumerate() {
            jobs.push(Job::Data {
                table: i,
                chunk: c as u32 + 1,
                range,
                estimate: per,
            });
            total_estimate += per;
        }
        if options.checksum {
            jobs.push(Job::Checksum { table: i });
        }
    }
    jobs.sort_by_key(|j| {
        std::cmp::Reverse(match j {
            Job::Data { estimate, .. } => *estimate,
            Job::Checksum { table } => tables[*table].data_length,
        })
    });
    Ok(JobPlan {
        jobs,
        chunks_of,
        total_estimate,
    })
}

/// Runs one worker thread per connection until the jobs are done; the first
/// failure (a failing worker cancels the others).
fn run_workers(
    workers: Vec<Conn>,
    shared: &Arc<Shared>,
    tables: &Arc<Vec<TableInfo>>,
    partial: &Path,
    options: &DumpOptions,
    progress: &dyn Progress,
    alongside: impl FnOnce() -> Result<(), Error>,
) -> Option<Error> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = workers
            .into_iter()
            .map(|conn| {
                let shared = Arc::clone(shared);
                let tables = Arc::clone(tables);
                let partial = partial.to_owned();
                scope.spawn(move || {
                    let r = worker(conn, &shared, &tables, &partial, options, progress);
                    if r.is_err() {
                        shared.cancel.store(true, Ordering::SeqCst);
                    }
                    r
                })
            })
            .collect();
        let mine = alongside();
        if mine.is_err() {
            shared.cancel.store(true, Ordering::SeqCst);
        }
        let theirs = crate::error::first_failure(handles.into_iter().map(|h| h.join()), "backup");
        // The coordinator's own error first: the workers' is then Cancelled.
        mine.err().or(theirs)
    })
}

/// Writes the accounts file; `None` when this account may not read the
/// accounts.
fn write_accounts(
    conn: &mut Conn,
    flavor: Flavor,
    partial: &Path,
    c: Compression,
) -> Result<Option<FileRecord>, Error> {
    let Some((script, _)) = crate::accounts::dump(conn, flavor)? else {
        return Ok(None);
    };
    let rel = format!("accounts{}", c.suffix());
    let w = write_whole(&partial.join(&rel), c, script.as_bytes())?;
    Ok(Some(FileRecord {
        path: rel,
        kind: FileKind::Accounts,
        schema: None,
        table: None,
        chunk: None,
        rows: 0,
        raw_bytes: w.raw_bytes,
        bytes: w.bytes,
        sha256: w.sha256,
    }))
}

/// The workers' results: the data files go into `files` after the schema
/// files (sorted by path); returns the table records and the longest statement.
fn collect_results(
    shared: &Shared,
    tables: &[TableInfo],
    chunks_of: &BTreeMap<usize, u32>,
    files: &mut Vec<FileRecord>,
) -> Result<(Vec<TableRecord>, usize), Error> {
    let mut records: Vec<TableRecord> = Vec::new();
    let mut rows_of: BTreeMap<usize, u64> = BTreeMap::new();
    let mut checksum_of: BTreeMap<usize, Option<u64>> = BTreeMap::new();
    let mut history_of: BTreeMap<usize, u64> = BTreeMap::new();
    let mut data_files = Vec::new();
    let mut max_statement = 0usize;
    let results = std::mem::take(
        &mut *shared
            .results
            .lock()
            .map_err(|_| Error::Invalid("worker results poisoned".into()))?,
    );
    for r in results {
        match r {
            JobResult::Data {
                table,
                file,
                max_statement: m,
                history,
            } => {
                *rows_of.entry(table).or_default() += file.rows - history.unwrap_or(0);
                if let Some(h) = history {
                    *history_of.entry(table).or_default() += h;
                }
                max_statement = max_statement.max(m);
                data_files.push(file);
            }
            JobResult::Checksum { table, value } => {
                checksum_of.insert(table, value);
            }
        }
    }
    data_files.sort_by(|a, b| a.path.cmp(&b.path));
    let schema_count = files.iter().filter(|f| f.kind == FileKind::Schema).count();
    files.splice(schema_count..schema_count, data_files);
    for (i, t) in tables.iter().enumerate().filter(|(_, t)| !t.is_view) {
        records.push(TableRecord {
            schema: t.schema.clone(),
            table: t.name.clone(),
            engine: t.engine.clone(),
            consistent: t.transactional(),
            rows: rows_of.get(&i).copied().unwrap_or(0),
            history_rows: t
                .versioned
                .then(|| history_of.get(&i).copied().unwrap_or(0)),
            checksum: checksum_of.get(&i).copied().flatten(),
            chunks: chunks_of.get(&i).copied().unwrap_or(0),
        });
    }
    Ok((records, max_statement))
}

/// Builds the manifest, finalizes the set and says what was written.
fn commit(
    partial: &Path,
    final_path: PathBuf,
    head: set::Header,
    written: set::Written,
    findings: Vec<String>,
) -> Result<DumpSummary, Error> {
    let manifest = set::manifest(head, written);
    set::finalize(
        partial,
        &final_path,
        &manifest,
        &crate::restore::restore_instructions(&manifest),
    )?;
    Ok(DumpSummary {
        path: final_path,
        manifest,
        findings,
    })
}

/// Session settings every dump connection uses.
pub(crate) fn setup_session(conn: &mut Conn, flavor: Flavor) -> Result<(), Error> {
    // UTC, so TIMESTAMP values are written and read back unchanged.
    conn.query_drop("SET SESSION time_zone = '+00:00', net_write_timeout = 3600, net_read_timeout = 3600, wait_timeout = 86400")
        .map_err(db("setting up the dump session"))?;
    if flavor == Flavor::Mysql {
        // Fresh statistics in information_schema for chunk planning (8.0 caches them for a day).
        let _ = conn.query_drop("SET SESSION information_schema_stats_expiry = 0");
    }
    Ok(())
}

/// Added to the header of a versioned table's data files: MariaDB 10.11+
/// then takes the row start and end as written, so history comes back.
pub(crate) const HISTORY_HEADER: &str = "SET SESSION system_versioning_insert_history = 1;\n";

pub(crate) const DATA_HEADER: &str = "SET NAMES utf8mb4;\nSET SESSION time_zone = '+00:00', sql_mode = 'NO_AUTO_VALUE_ON_ZERO', foreign_key_checks = 0, unique_checks = 0;\n";

pub(crate) fn write_whole(
    path: &Path,
    c: Compression,
    bytes: &[u8],
) -> Result<crate::compress::Written, Error> {
    let mut w = SetFileWriter::create(path, c).map_err(Error::io("creating", path))?;
    w.write_all(bytes).map_err(Error::io("writing", path))?;
    w.finish().map_err(Error::io("writing", path))
}

const DDL_HEADER: &str = "SET NAMES utf8mb4;\nSET SESSION time_zone = '+00:00', sql_mode = 'NO_AUTO_VALUE_ON_ZERO', foreign_key_checks = 0;\n";

fn write_schema_file(
    conn: &mut Conn,
    set: &Path,
    schema: &str,
    tables: &[TableInfo],
    c: Compression,
) -> Result<FileRecord, Error> {
    let mut sql = format!(
        "-- spyglass-admin schema: {}\n{DDL_HEADER}",
        quote::ident(schema)
    );
    sql.push_str(&catalog::create_database(conn, schema)?);
    sql.push_str(";\n");
    sql.push_str(&format!("USE {};\n", quote::ident(schema)));
    // Sequences first: a table's DEFAULT NEXTVAL(seq) needs its sequence.
    for (ddl, state) in catalog::sequences(conn, schema)? {
        sql.push_str(&ddl);
        sql.push_str(";\n");
        sql.push_str(&state);
        sql.push_str(";\n");
    }
    let mine: Vec<&TableInfo> = tables
        .iter()
        .filter(|t| t.schema == schema && !t.is_view)
        .collect();
    for name in catalog::fk_order(&mine) {
        sql.push_str(&catalog::create_table(conn, schema, &name)?);
        sql.push_str(";\n");
    }
    push_stand_ins(&mut sql, schema, tables);
    // Routines with the tables: a view may call a function of any schema, and
    // CREATE VIEW checks that it exists. A routine's body is not checked
    // when it is created, and nothing calls one while the rows load.
    catalog::push_programs(&mut sql, &catalog::routines(conn, schema)?);
    let rel = format!("1-schema/{}{}", file_name(schema), c.suffix());
    let w = write_whole(&set.join(&rel), c, sql.as_bytes())?;
    Ok(FileRecord::written(
        rel,
        FileKind::Schema,
        Some(schema),
        None,
        0,
        w,
    ))
}

/// The stand-ins of `schema`'s views ([`catalog::view_stub`]), for its schema file.
pub(crate) fn push_stand_ins(sql: &mut String, schema: &str, tables: &[TableInfo]) {
    for t in tables.iter().filter(|t| t.schema == schema && t.is_view) {
        if let Some(stub) = catalog::view_stub(schema, &t.name, &t.columns) {
            sql.push_str(&stub);
            sql.push_str(";\n");
        }
    }
}

fn write_post_file(
    conn: &mut Conn,
    set: &Path,
    schema: &str,
    tables: &[TableInfo],
    c: Compression,
) -> Result<FileRecord, Error> {
    let mut sql = format!(
        "-- spyglass-admin views, triggers, events: {}\n{DDL_HEADER}USE {};\n",
        quote::ident(schema),
        quote::ident(schema)
    );
    let views: Vec<(String, String)> = tables
        .iter()
        .filter(|t| t.schema == schema && t.is_view)
        .map(|t| Ok((t.name.clone(), catalog::create_view(conn, schema, &t.name)?)))
        .collect::<Result<_, Error>>()?;
    // Each replaces its stand-in from the schema file (so any order works).
    for i in catalog::view_order(schema, &views) {
        sql.push_str(&catalog::replacing(&views[i].1));
        sql.push_str(";\n");
    }
    let programs = [
        catalog::triggers(conn, schema)?,
        catalog::events(conn, schema)?,
    ];
    catalog::push_programs(&mut sql, programs.iter().flatten());
    let rel = format!("3-post/{}{}", file_name(schema), c.suffix());
    let w = write_whole(&set.join(&rel), c, sql.as_bytes())?;
    Ok(FileRecord::written(
        rel,
        FileKind::Post,
        Some(schema),
        None,
        0,
        w,
    ))
}
