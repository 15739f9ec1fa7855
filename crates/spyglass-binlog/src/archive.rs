//! The archiver: a replica (its own server_id, `COM_BINLOG_DUMP`) that
//! writes every event the server sends into `<dir>/<server file name>`,
//! byte for byte as the server's own file, then compresses each file the
//! server closed (`<name>.gz`) and lists it in the index.
//!
//! Only events that sit in the server's file are written: an event is
//! written when its end position (`log_pos`) equals the archive file's
//! length plus its size; what the server makes up for the stream (the rotate
//! naming the file, the format description repeated on a resume, MariaDB's
//! artificial GTID list, heartbeats) is not. A resume continues from the
//! last complete event on disk, so a kill loses nothing and duplicates
//! nothing.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mysql::binlog::BinlogVersion;
use mysql::prelude::Queryable;
use mysql::{BinlogDumpFlags, BinlogRequest, Conn};
use spyglass_db::{ConnectOptions, DbError, Flavor};

use crate::format::{self, types};
use crate::index::{self, Archive, FileEntry, Gap, Index};
use crate::Error;

/// Called when a connection failed: the error text and the wait before the next try.
pub type RetryHook<'a> = dyn Fn(&str, Duration) + 'a;

/// How to archive.
pub struct ArchiveOptions<'a> {
    /// The archive directory (`<destination>/binlog`).
    pub dir: PathBuf,
    /// Our server_id as a replica (must differ from the server's and every replica's).
    pub server_id: u32,
    /// Fetch up to the server's current position, then return (cron mode).
    /// Otherwise follow the server until `stop` is set, reconnecting with backoff.
    pub until_now: bool,
    /// Set it to stop a following archiver (checked at least every heartbeat).
    pub stop: Option<&'a AtomicBool>,
    /// Heartbeat period asked of the server while following.
    pub heartbeat: Duration,
    /// Longest wait between reconnect attempts.
    pub max_backoff: Duration,
    /// Write buffered events to the file at least this often.
    pub flush_every: Duration,
    /// Called after each reconnect attempt fails (error text, next wait).
    pub on_retry: Option<&'a RetryHook<'a>>,
}

impl std::fmt::Debug for ArchiveOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveOptions")
            .field("dir", &self.dir)
            .field("server_id", &self.server_id)
            .field("until_now", &self.until_now)
            .finish_non_exhaustive()
    }
}

impl ArchiveOptions<'_> {
    /// Defaults: server_id 4005, follow mode, 5 s heartbeat, 60 s backoff cap, 1 s flush.
    pub fn new(dir: PathBuf) -> Self {
        ArchiveOptions {
            dir,
            server_id: 4005,
            until_now: false,
            stop: None,
            heartbeat: Duration::from_secs(5),
            max_backoff: Duration::from_secs(60),
            flush_every: Duration::from_secs(1),
            on_retry: None,
        }
    }
}

/// What one archive run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ArchiveReport {
    /// Events written.
    pub events: u64,
    /// Bytes written (uncompressed).
    pub bytes: u64,
    /// Files closed and compressed in this run.
    pub closed: Vec<String>,
    /// Gaps found in this run (each a finding: that range is lost).
    pub gaps: Vec<Gap>,
    /// Where the archive ends now: file and position.
    pub file: Option<String>,
    /// Position in `file`.
    pub pos: u64,
    /// Header time of the last archived event.
    pub last_time: Option<u32>,
    /// Connections made.
    pub connections: u32,
}

struct Active {
    name: String,
    path: PathBuf,
    out: BufWriter<File>,
    len: u64,
    first_pos: u64,
    first_time: Option<u32>,
    last_time: u32,
}

struct Writer<'a> {
    dir: &'a Path,
    index: Index,
    active: Option<Active>,
    last_flush: Instant,
}

fn lock(dir: &Path) -> Result<File, Error> {
    let p = dir.join(".lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(Error::io("opening", &p))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|_| {
        Error::Archive {
            dir: dir.to_path_buf(),
            detail: "another `binlog archive` is writing it (its .lock is held)".into(),
        }
    })?;
    Ok(f)
}

impl<'a> Writer<'a> {
    fn open(dir: &'a Path) -> Result<Self, Error> {
        let archive = Archive::open(dir)?;
        // A raw file already listed as closed: the run stopped between the
        // index and the delete.
        for e in &archive.index.files {
            let raw = dir.join(&e.file);
            if raw.exists() && dir.join(&e.archive).exists() {
                let _ = std::fs::remove_file(&raw);
            }
        }
        let mut w = Writer {
            dir,
            index: archive.index,
            active: None,
            last_flush: Instant::now(),
        };
        if !dir.join(index::INDEX).exists() {
            w.index.save(dir)?;
        }
        if let Some(name) = archive.active {
            w.resume(&name)?;
        }
        Ok(w)
    }

    fn resume(&mut self, name: &str) -> Result<(), Error> {
        let path = self.dir.join(name);
        let bytes = std::fs::read(&path).map_err(Error::io("reading", &path))?;
        let keep = format::complete_prefix(&bytes).unwrap_or(0);
        let mut first_time = None;
        let mut last_time = 0;
        for (_, h, _) in format::events(&bytes[..keep.max(4).min(bytes.len())]) {
            if h.type_code != types::FORMAT_DESCRIPTION {
                first_time.get_or_insert(h.timestamp);
            }
            last_time = h.timestamp;
        }
        let f = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(Error::io("opening", &path))?;
        // Drop a torn last event (a kill mid-write); no magic: start the file over.
        let keep = if keep < 4 { 0 } else { keep };
        f.set_len(keep as u64)
            .map_err(Error::io("truncating", &path))?;
        let mut out = BufWriter::with_capacity(1 << 20, f);
        use std::io::Seek;
        out.seek(std::io::SeekFrom::End(0))
            .map_err(Error::io("opening", &path))?;
        if keep == 0 {
            out.write_all(&format::MAGIC)
                .map_err(Error::io("writing", &path))?;
        }
        self.active = Some(Active {
            name: name.to_owned(),
            path,
            out,
            len: keep.max(4) as u64,
            first_pos: 4,
            first_time,
            last_time,
        });
        Ok(())
    }

    fn create(&mut self, name: &str) -> Result<(), Error> {
        let path = self.dir.join(name);
        let f = File::create(&path).map_err(Error::io("creating", &path))?;
        let mut out = BufWriter::with_capacity(1 << 20, f);
        out.write_all(&format::MAGIC)
            .map_err(Error::io("writing", &path))?;
        self.active = Some(Active {
            name: name.to_owned(),
            path,
            out,
            len: 4,
            first_pos: 4,
            first_time: None,
            last_time: 0,
        });
        Ok(())
    }

    fn flush(&mut self, sync: bool) -> Result<(), Error> {
        if let Some(a) = &mut self.active {
            a.out.flush().map_err(Error::io("writing", &a.path))?;
            if sync {
                a.out
                    .get_ref()
                    .sync_data()
                    .map_err(Error::io("syncing", &a.path))?;
            }
        }
        self.last_flush = Instant::now();
        Ok(())
    }

    /// Compresses the open file, lists it, removes the raw copy.
    fn close(
        &mut self,
        next_file: Option<String>,
        complete: bool,
    ) -> Result<Option<String>, Error> {
        self.flush(true)?;
        let Some(a) = self.active.take() else {
            return Ok(None);
        };
        drop(a.out);
        let mut bytes = std::fs::read(&a.path).map_err(Error::io("reading", &a.path))?;
        let keep = format::complete_prefix(&bytes).unwrap_or(0);
        bytes.truncate(keep);
        // The server clears "in use" in the FDE when it closes the file: so do we.
        if let Some(h) = format::header(bytes.get(4..).unwrap_or(&[])) {
            if h.type_code == types::FORMAT_DESCRIPTION
                && h.flags & format::LOG_EVENT_BINLOG_IN_USE_F != 0
            {
                let end = 4 + h.size as usize;
                let ev = &mut bytes[4..end];
                let crc = format::fde_checksum_alg(ev) == 1;
                format::set_flags(ev, h.flags & !format::LOG_EVENT_BINLOG_IN_USE_F, crc);
            }
        }
        let gz_name = format!("{}.gz", a.name);
        let gz_path = self.dir.join(&gz_name);
        let tmp = self.dir.join(format!("{gz_name}.tmp"));
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        enc.write_all(&bytes)
            .map_err(Error::io("compressing", &a.path))?;
        let gz = enc.finish().map_err(Error::io("compressing", &a.path))?;
        {
            let mut f = File::create(&tmp).map_err(Error::io("writing", &tmp))?;
            f.write_all(&gz)
                .and_then(|_| f.sync_all())
                .map_err(Error::io("writing", &tmp))?;
        }
        std::fs::rename(&tmp, &gz_path).map_err(Error::io("renaming", &tmp))?;
        // `backup prune` may have removed old entries meanwhile: start from the file.
        self.index = Index::load(self.dir)?;
        self.index.files.push(FileEntry {
            file: a.name.clone(),
            archive: gz_name,
            size: bytes.len() as u64,
            sha256: index::sha256_hex(&gz),
            raw_sha256: index::sha256_hex(&bytes),
            first_pos: a.first_pos,
            first_time: a.first_time.unwrap_or(a.last_time),
            last_time: a.last_time,
            next_file,
            complete,
            first_compressed: index::first_compressed(&bytes, 4),
        });
        self.index.save(self.dir)?;
        std::fs::remove_file(&a.path).map_err(Error::io("removing", &a.path))?;
        Ok(Some(a.name))
    }

    fn write_event(&mut self, ev: &[u8], h: &format::Header) -> Result<(), Error> {
        let a = self.active.as_mut().ok_or_else(|| Error::Event {
            file: "?".into(),
            pos: u64::from(h.log_pos),
            detail: "an event before the server named its file".into(),
        })?;
        a.out.write_all(ev).map_err(Error::io("writing", &a.path))?;
        a.len += ev.len() as u64;
        if h.type_code != types::FORMAT_DESCRIPTION {
            a.first_time.get_or_insert(h.timestamp);
        }
        a.last_time = h.timestamp;
        Ok(())
    }

    /// Where to ask the server to start, given its binlog list; records a gap
    /// when the server no longer has what the archive needs next.
    fn plan_start(
        &mut self,
        server: &[(String, u64)],
        report: &mut ArchiveReport,
    ) -> Result<(String, u64), Error> {
        let Some(first) = server.first() else {
            return Err(Error::Server(
                "the server lists no binary logs (SHOW BINARY LOGS is empty)".into(),
            ));
        };
        let have = |n: &str| server.iter().any(|(s, _)| s == n);
        let seq = |n: &str| index::sequence(n).unwrap_or(0);
        // (the file and position the archive needs next, time of the last event it has)
        let need: Option<(String, u64, Option<u32>)> = if let Some(a) = &self.active {
            Some((a.name.clone(), a.len, Some(a.last_time).filter(|t| *t > 0)))
        } else if let Some(last) = self.index.files.last() {
            let next = last.next_file.clone().or_else(|| {
                server
                    .iter()
                    .find(|(s, _)| seq(s) > seq(&last.file))
                    .map(|(s, _)| s.clone())
            });
            match next {
                Some(n) => Some((n, 4, Some(last.last_time))),
                // Nothing newer on the server yet: the stop event ended the last file.
                None => return Ok((last.file.clone(), last.size)),
            }
        } else {
            None
        };
        let Some((file, pos, last_time)) = need else {
            return Ok((first.0.clone(), 4));
        };
        if have(&file) {
            let size = server
                .iter()
                .find(|(s, _)| *s == file)
                .map_or(0, |(_, z)| *z);
            if size < pos {
                return Err(Error::Archive {
                    dir: self.dir.to_path_buf(),
                    detail: format!(
                        "the archive has {file} up to {pos} but the server's {file} has only {size} bytes: the archive belongs to another server (or its binary log was reset); use a new archive directory"
                    ),
                });
            }
            return Ok((file, pos));
        }
        if seq(&file) > seq(&server.last().map_or(String::new(), |l| l.0.clone())) {
            return Err(Error::Archive {
                dir: self.dir.to_path_buf(),
                detail: format!("the archive expects {file}, newer than every binary log on the server: the archive belongs to another server (or its binary log was reset)"),
            });
        }
        // Purged before we had it: a gap from (file, pos) to the first file the server has.
        let (from_file, from_pos) = match &self.active {
            Some(a) => (a.name.clone(), a.len),
            None => (file.clone(), pos),
        };
        if self.active.is_some() {
            self.close(None, false)?;
        }
        let gap = Gap {
            from_file,
            from_pos,
            from_time: last_time,
            to_file: first.0.clone(),
            found: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        self.index = Index::load(self.dir)?;
        self.index.gaps.push(gap.clone());
        self.index.save(self.dir)?;
        report.gaps.push(gap);
        Ok((first.0.clone(), 4))
    }
}

/// The server's binary logs: name and size (`SHOW BINARY LOGS`).
pub fn server_binlogs(conn: &mut Conn) -> Result<Vec<(String, u64)>, Error> {
    let rows: Vec<mysql::Row> = conn.query("SHOW BINARY LOGS").map_err(|e| {
        Error::Db(DbError::query(
            "listing binary logs (SHOW BINARY LOGS; needs REPLICATION CLIENT or BINLOG MONITOR)",
            e,
        ))
    })?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let name: String = r.get_opt(0)?.ok()?;
            let size: u64 = r.get_opt(1)?.ok()?;
            Some((name, size))
        })
        .collect())
}

fn check_server(conn: &mut Conn, server_id: u32) -> Result<(), Error> {
    let (log_bin, id): (Option<u64>, Option<u32>) = conn
        .query_first("SELECT @@log_bin, @@server_id")
        .map_err(|e| Error::Db(DbError::query("reading @@log_bin", e)))?
        .unwrap_or((None, None));
    if log_bin != Some(1) {
        return Err(Error::Server(
            "the binary log is off on the server: start it with --log-bin=mysql-bin --server-id=1 --binlog-format=ROW".into(),
        ));
    }
    if id == Some(server_id) {
        return Err(Error::Server(format!(
            "the server's own server_id is {server_id}: give the archiver another one (--server-id)"
        )));
    }
    Ok(())
}

/// Archives the server's binary log into `options.dir` (see the module docs).
pub fn archive(
    connect: &ConnectOptions,
    options: &ArchiveOptions<'_>,
) -> Result<ArchiveReport, Error> {
    let dir = options.dir.as_path();
    std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
    let _lock = lock(dir)?;
    let mut w = Writer::open(dir)?;
    let mut report = ArchiveReport::default();
    let mut backoff = Duration::from_secs(1);
    let stopped = || options.stop.is_some_and(|s| s.load(Ordering::Relaxed));
    loop {
        let before = report.events;
        let result = stream_once(connect, options, &mut w, &mut report);
        w.flush(true)?;
        match result {
            Ok(()) if options.until_now => break,
            Ok(()) => {}
            Err(e) if options.until_now => {
                // One retry when the server ended the stream early (a purge
                // raced us): the next plan records the gap.
                if report.events == before && report.connections > 1 {
                    return Err(e);
                }
                if !matches!(e, Error::Stream { .. }) {
                    return Err(e);
                }
            }
            Err(e @ (Error::Archive { .. } | Error::Io { .. } | Error::Event { .. })) => {
                return Err(e)
            }
            Err(e) => {
                if stopped() {
                    break;
                }
                if report.events > before {
                    backoff = Duration::from_secs(1);
                }
                if let Some(cb) = options.on_retry {
                    cb(&e.to_string(), backoff);
                }
                let until = Instant::now() + backoff;
                while Instant::now() < until && !stopped() {
                    std::thread::sleep(Duration::from_millis(100));
                }
                backoff = (backoff * 2).min(options.max_backoff);
            }
        }
        if stopped() {
            break;
        }
    }
    if let Some(a) = &w.active {
        report.file = Some(a.name.clone());
        report.pos = a.len;
        report.last_time = Some(a.last_time);
    } else if let Some(l) = w.index.files.last() {
        report.file = Some(l.file.clone());
        report.pos = l.size;
        report.last_time = Some(l.last_time);
    }
    Ok(report)
}

fn stream_once(
    connect: &ConnectOptions,
    options: &ArchiveOptions<'_>,
    w: &mut Writer<'_>,
    report: &mut ArchiveReport,
) -> Result<(), Error> {
    let mut session = spyglass_db::connect(connect)?;
    report.connections += 1;
    let flavor = session.server().flavor;
    let conn = session.conn();
    check_server(conn, options.server_id)?;
    let list = server_binlogs(conn)?;
    let (file, pos) = w.plan_start(&list, report)?;
    let mut setup = vec!["SET @master_binlog_checksum = @@global.binlog_checksum".to_owned()];
    if flavor == Flavor::Mariadb {
        // Without it a MariaDB primary rewrites GTID and annotate events
        // into stand-ins for an old replica: the archive would not equal its file.
        setup.push("SET @mariadb_slave_capability = 4".into());
    }
    if !options.until_now {
        setup.push(format!(
            "SET @master_heartbeat_period = {}",
            options.heartbeat.as_nanos().max(1_000_000)
        ));
    }
    for s in &setup {
        conn.query_drop(s).map_err(|e| {
            Error::Db(DbError::query(
                format!("preparing the replication stream ({s})"),
                e,
            ))
        })?;
    }
    let mut req = BinlogRequest::new(options.server_id)
        .with_filename(file.as_bytes().to_vec())
        .with_pos(pos);
    let mut flags = BinlogDumpFlags::empty();
    if options.until_now {
        flags |= BinlogDumpFlags::BINLOG_DUMP_NON_BLOCK;
    }
    if flavor == Flavor::Mariadb {
        // MariaDB's BINLOG_SEND_ANNOTATE_ROWS_EVENT (the same bit as MySQL's
        // unused BINLOG_THROUGH_POSITION): without it the annotate events
        // are left out of the stream.
        flags |= BinlogDumpFlags::BINLOG_THROUGH_POSITION;
    }
    req = req.with_flags(flags);
    let conn: Conn = session.into_conn();
    let stream = conn.get_binlog_stream(req).map_err(Error::stream(format!(
        "requesting the binary log from {file}:{pos}"
    )))?;
    // The file the stream is in (named by the server's rotate events).
    let mut current = file.clone();
    let mut buf = Vec::with_capacity(64 * 1024);
    for ev in stream {
        let ev = ev.map_err(Error::stream(format!(
            "reading the binary log ({current} at {})",
            w.active.as_ref().map_or(4, |a| a.len)
        )))?;
        buf.clear();
        ev.write(BinlogVersion::Version4, &mut buf)
            .map_err(|e| Error::Event {
                file: current.clone(),
                pos: 0,
                detail: format!("cannot encode an event: {e}"),
            })?;
        let Some(h) = format::header(&buf) else {
            continue;
        };
        if options.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            break;
        }
        if matches!(h.type_code, types::HEARTBEAT | types::HEARTBEAT_V2) {
            if w.last_flush.elapsed() >= options.flush_every {
                w.flush(false)?;
            }
            continue;
        }
        let artificial = h.flags & format::LOG_EVENT_ARTIFICIAL_F != 0 || h.log_pos == 0;
        if h.type_code == types::ROTATE && artificial {
            let crc = has_crc(&buf);
            if let Some((next, _)) = format::rotate_target(&buf, crc) {
                if w.active.as_ref().is_some_and(|a| a.name != next) {
                    // The file ended without a rotate (a stop event): close it as is.
                    if let Some(n) = w.close(None, true)? {
                        report.closed.push(n);
                    }
                }
                current = next;
            }
            continue;
        }
        let open_len = match &w.active {
            Some(a) if a.name == current => Some(a.len),
            _ => None,
        };
        let len = open_len.unwrap_or(4);
        if u64::from(h.log_pos) != len + u64::from(h.size) {
            if h.type_code == types::FORMAT_DESCRIPTION || artificial {
                continue;
            }
            return Err(Error::Event {
                file: current.clone(),
                pos: len,
                detail: format!(
                    "event type {} ends at {} but the archive is at {len}: the stream does not match the file",
                    h.type_code, h.log_pos
                ),
            });
        }
        if open_len.is_none() {
            w.create(&current)?;
        }
        w.write_event(&buf, &h)?;
        report.events += 1;
        report.bytes += buf.len() as u64;
        if h.type_code == types::ROTATE {
            let crc = has_crc(&buf);
            let next = format::rotate_target(&buf, crc).map(|(n, _)| n);
            if let Some(n) = w.close(next.clone(), true)? {
                report.closed.push(n);
            }
            if let Some(n) = next {
                current = n;
            }
        } else if w.last_flush.elapsed() >= options.flush_every {
            w.flush(false)?;
        }
    }
    Ok(())
}

/// Whether an event ends in a valid CRC32 of the rest.
fn has_crc(ev: &[u8]) -> bool {
    let n = ev.len();
    n >= format::HEADER_LEN + 4 && format::crc32(&ev[..n - 4]).to_le_bytes() == ev[n - 4..]
}

/// How far the archive is behind the server (`nightly`'s check).
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct Lag {
    /// The server's current binlog file and position.
    pub server: String,
    /// Where the archive ends (`FILE:POS`), None when it holds nothing.
    pub archived: Option<String>,
    /// Header time of the last archived event (seconds, UTC).
    pub last_event: Option<u32>,
    /// Bytes of the server's binary log the archive does not have yet.
    pub bytes_behind: u64,
    /// Seconds of changes at risk: 0 when the archive has everything the
    /// server logged, else the time since the last archived event.
    pub seconds: u64,
}

/// The archive in `dir` against the server's current position (`SHOW
/// BINARY LOGS`: the last file's size is where the server writes next), at
/// Unix time `now`.
pub fn lag(conn: &mut Conn, dir: &Path, now: i64) -> Result<Lag, Error> {
    let server = server_binlogs(conn)?;
    let Some((sfile, spos)) = server.last().cloned() else {
        return Err(Error::Server(
            "the server lists no binary logs (is log_bin on?)".into(),
        ));
    };
    let a = Archive::open(dir)?;
    // The archive's end: the open file's complete events, else the file
    // after the last closed one (from its start).
    let end: Option<(String, u64)> = match &a.active {
        Some(f) => Some((f.clone(), a.read(f)?.len() as u64)),
        None => a.index.files.last().map(|e| match &e.next_file {
            Some(n) => (n.clone(), 4),
            None => (e.file.clone(), e.size),
        }),
    };
    let last_event = a.window()?.map(|(_, l)| l);
    let bytes_behind = match &end {
        None => server.iter().map(|(_, s)| *s).sum(),
        Some((f, p)) => {
            let n = index::sequence(f);
            server
                .iter()
                .map(|(name, size)| match index::sequence(name).cmp(&n) {
                    std::cmp::Ordering::Less => 0,
                    std::cmp::Ordering::Equal => size.saturating_sub(*p),
                    std::cmp::Ordering::Greater => size.saturating_sub(4),
                })
                .sum()
        }
    };
    let seconds = if bytes_behind == 0 {
        0
    } else {
        let since = last_event.map_or(0, i64::from);
        (now - since).max(0) as u64
    };
    Ok(Lag {
        server: format!("{sfile}:{spos}"),
        archived: end.map(|(f, p)| format!("{f}:{p}")),
        last_event,
        bytes_behind,
        seconds,
    })
}
