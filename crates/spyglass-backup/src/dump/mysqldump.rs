//! `--engine mysqldump`: the system `mysqldump`/`mariadb-dump` produces the
//! SQL; we lay it out, compress, checksum and describe it exactly like a
//! native set. Credentials reach the child through a 0600 defaults file in a
//! private temporary directory, never its argv or environment.
//!
//! All data comes from one `--single-transaction` run over every schema (one
//! consistent snapshot), split into per-table files at mysqldump's
//! `-- Dumping data for table` markers. Binary values use `--hex-blob`.
//! Known limit, the dump tool's own: MariaDB's dump prints FLOAT with six
//! significant digits.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use spyglass_db::mysql::Conn;
use spyglass_db::{quote, ConnectOptions, Endpoint, Flavor, Session, TlsMode};

use super::{write_whole, DumpOptions, DATA_HEADER, HISTORY_HEADER};
use crate::catalog;
use crate::compress::SetFileWriter;
use crate::manifest::{FileKind, FileRecord, Snapshot, TableRecord};
use crate::names::file_name;
use crate::progress::Progress;
use crate::Error;

pub(crate) struct Output {
    pub files: Vec<FileRecord>,
    pub tables: Vec<TableRecord>,
    pub notes: Vec<String>,
    pub snapshot: Snapshot,
    pub max_statement: u64,
}

fn find_program(flavor: Flavor) -> Option<PathBuf> {
    let names: &[&str] = match flavor {
        Flavor::Mariadb => &["mariadb-dump", "mysqldump"],
        Flavor::Mysql => &["mysqldump", "mariadb-dump"],
    };
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

/// A value for an option file: double-quoted with `\` and `"` escaped.
fn opt_value(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The `[client]` options the dump tool gets: account, endpoint and the same
/// TLS policy as our own connections. `oracle` selects the dialect: Oracle's
/// mysqldump takes `ssl-mode`; MariaDB's dump rejects it and takes `ssl` and
/// `ssl-verify-server-cert` (which checks chain and host name: our verify-ca
/// becomes the stricter verify-identity there). `coordinator_tls` is whether
/// our own connection got TLS, which settles `prefer`.
fn client_options(connect: &ConnectOptions, oracle: bool, coordinator_tls: bool) -> String {
    let mut text = format!("[client]\nuser={}\n", opt_value(&connect.user));
    if let Some(p) = &connect.password {
        text.push_str(&format!("password={}\n", opt_value(p.expose())));
    }
    match &connect.endpoint {
        Endpoint::Tcp { host, port } => text.push_str(&format!(
            "host={}\nport={port}\nprotocol=TCP\n",
            opt_value(host)
        )),
        Endpoint::Socket(s) => {
            text.push_str(&format!("socket={}\n", opt_value(&s.to_string_lossy())));
            return text;
        }
    }
    let tls = &connect.tls;
    let mode = match tls.mode {
        TlsMode::Prefer if coordinator_tls => TlsMode::Require,
        TlsMode::Prefer => TlsMode::Disable,
        m => m,
    };
    let mut line = |k: &str, v: &str| text.push_str(&format!("{k}={v}\n"));
    if oracle {
        let m = match mode {
            TlsMode::Disable => "DISABLED",
            TlsMode::Prefer => "PREFERRED",
            TlsMode::Require => "REQUIRED",
            TlsMode::VerifyCa => "VERIFY_CA",
            TlsMode::VerifyIdentity => "VERIFY_IDENTITY",
        };
        line("ssl-mode", m);
    } else {
        match mode {
            TlsMode::Disable => line("skip-ssl", "1"),
            TlsMode::Prefer | TlsMode::Require => line("ssl", "1"),
            TlsMode::VerifyCa | TlsMode::VerifyIdentity => {
                line("ssl", "1");
                line("ssl-verify-server-cert", "1");
            }
        }
    }
    if mode.verifies() {
        if let Some(ca) = &tls.ca {
            line("ssl-ca", &opt_value(&ca.to_string_lossy()));
        }
    }
    if mode != TlsMode::Disable {
        if let (Some(c), Some(k)) = (&tls.cert, &tls.key) {
            line("ssl-cert", &opt_value(&c.to_string_lossy()));
            line("ssl-key", &opt_value(&k.to_string_lossy()));
        }
    }
    text
}

fn defaults_file(
    dir: &Path,
    connect: &ConnectOptions,
    oracle: bool,
    coordinator_tls: bool,
) -> Result<PathBuf, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let text = client_options(connect, oracle, coordinator_tls);
    let path = dir.join("client.cnf");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(Error::io("creating", &path))?;
    f.write_all(text.as_bytes())
        .map_err(Error::io("writing", &path))?;
    Ok(path)
}

struct Dumper {
    program: PathBuf,
    cnf: PathBuf,
    /// Oracle's mysqldump (not MariaDB's): writes GTID_PURGED unless told not to.
    oracle: bool,
}

impl Dumper {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.program);
        // --defaults-file must come first; it holds the password. Only this
        // file is read (not ~/.my.cnf, whose ssl options may be in the other
        // dialect): it carries everything we resolved.
        c.arg(format!("--defaults-file={}", self.cnf.display()))
            .args(["--max-allowed-packet=1G", "--default-character-set=utf8mb4"])
            // A restore must never change the target's GTID state.
            .args(if self.oracle {
                &["--set-gtid-purged=OFF"][..]
            } else {
                &[][..]
            })
            .args(args)
            .env_remove("MYSQL_PWD")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs to completion and returns stdout.
    fn run(&self, args: &[&str]) -> Result<Vec<u8>, Error> {
        let out = self
            .command(args)
            .output()
            .map_err(Error::io("running", &self.program))?;
        if !out.status.success() {
            return Err(self.failed(&out.stderr, out.status));
        }
        Ok(out.stdout)
    }

    fn failed(&self, stderr: &[u8], status: std::process::ExitStatus) -> Error {
        let text = String::from_utf8_lossy(stderr);
        let tail: Vec<&str> = text.lines().rev().take(3).collect();
        Error::Invalid(format!(
            "{} failed ({status}): {}",
            self.program.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ))
    }
}

/// Counts the rows of an `INSERT ... VALUES (..),(..)` statement: top-level
/// parentheses after VALUES, outside quotes.
fn count_rows(stmt: &[u8]) -> u64 {
    let start = match stmt
        .windows(7)
        .position(|w| w.eq_ignore_ascii_case(b" VALUES"))
    {
        Some(i) => i + 7,
        None => return 0,
    };
    let (mut depth, mut rows, mut quote, mut i) = (0i32, 0u64, 0u8, start);
    while i < stmt.len() {
        let c = stmt[i];
        if quote != 0 {
            if c == b'\\' {
                i += 1;
            } else if c == quote {
                quote = 0;
            }
        } else {
            match c {
                b'\'' | b'"' => quote = c,
                b'(' => {
                    if depth == 0 {
                        rows += 1;
                    }
                    depth += 1;
                }
                b')' => depth -= 1,
                _ => {}
            }
        }
        i += 1;
    }
    rows
}

/// The backquoted name at the end of a mysqldump comment line.
fn marker_name(line: &str, prefix: &str) -> Option<String> {
    let rest = line.strip_prefix(prefix)?.trim_end();
    let inner = rest.strip_prefix('`')?.strip_suffix('`')?;
    Some(inner.replace("``", "`"))
}

pub(crate) fn dump(
    connect: &ConnectOptions,
    coord: &mut Session,
    schemas: &[String],
    set: &Path,
    options: &DumpOptions,
    program: Option<&Path>,
    progress: &dyn Progress,
) -> Result<Output, Error> {
    let flavor = coord.server().flavor;
    let program = match program {
        Some(p) => p.to_owned(),
        None => find_program(flavor).ok_or_else(|| Error::Invalid("--engine mysqldump: neither mysqldump nor mariadb-dump is on PATH (install mariadb-client or mysql-client)".into()))?,
    };
    let private = tempfile::Builder::new()
        .prefix("spyglass-admin-")
        .tempdir()
        .map_err(Error::io(
            "creating a temporary directory in",
            std::env::temp_dir(),
        ))?;
    let version = Command::new(&program)
        .arg("--version")
        .output()
        .map_err(Error::io("running", &program))?;
    let oracle = !String::from_utf8_lossy(&version.stdout).contains("MariaDB");
    let dumper = Dumper {
        cnf: defaults_file(private.path(), connect, oracle, coord.tls())?,
        program,
        oracle,
    };
    let c = options.compression;
    let mut files = Vec::new();
    let mut notes = vec![format!(
        "written by {} (--engine mysqldump)",
        dumper.program.display()
    )];
    if flavor == Flavor::Mariadb {
        notes.push("mysqldump engine: FLOAT columns are as precise as the dump tool prints them (6 significant digits on MariaDB)".into());
    }
    let tables = catalog::tables(coord.conn(), schemas)?;

    for s in schemas {
        // Views go to the post file (ours, in dependency order, after every
        // schema's tables exist): mysqldump would create them here, where a
        // view on another schema's table fails.
        // Routines with the tables, as in a native set: a view may call one.
        let mut args: Vec<String> = [
            "--no-data",
            "--skip-triggers",
            "--routines",
            "--skip-events",
        ]
        .map(String::from)
        .to_vec();
        for v in tables.iter().filter(|t| t.is_view && t.schema == *s) {
            args.push(format!("--ignore-table={}.{}", s, v.name));
        }
        args.push("--databases".into());
        args.push(s.clone());
        let sql = dumper.run(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
        // Our stand-ins for the views, after mysqldump's tables and routines.
        let mut stand_ins = String::from("\n");
        super::push_stand_ins(&mut stand_ins, s, &tables);
        let rel = format!("1-schema/{}{}", file_name(s), c.suffix());
        let w = write_whole(
            &set.join(&rel),
            c,
            &[DATA_HEADER.as_bytes(), &sql, stand_ins.as_bytes()].concat(),
        )?;
        files.push(FileRecord::written(
            rel,
            FileKind::Schema,
            Some(s),
            None,
            0,
            w,
        ));
    }

    // All rows, one transaction.
    let mut args = vec![
        "--no-create-info",
        "--no-create-db",
        "--skip-triggers",
        "--single-transaction",
        "--quick",
        "--hex-blob",
        "--tz-utc",
        "--skip-add-locks",
        "--skip-disable-keys",
        "--databases",
    ];
    // History of system-versioned tables (MariaDB): mariadb-dump's
    // --dump-history reads them FOR SYSTEM_TIME ALL with row start and end;
    // each such data file sets system_versioning_insert_history (below).
    let versioned = tables.iter().any(|t| t.versioned);
    if versioned && !dumper.oracle {
        args.push("--dump-history");
    } else if versioned {
        notes.push(format!(
            "{} cannot dump the history of system-versioned tables (mariadb-dump --dump-history can): only their current rows are in this set",
            dumper.program.display()
        ));
    }
    args.extend(schemas.iter().map(String::as_str));
    let mut child = dumper
        .command(&args)
        .spawn()
        .map_err(Error::io("running", &dumper.program))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::Invalid("no stdout from the dump program".into()))?;
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| Error::Invalid("no stderr from the dump program".into()))?;
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let mut reader = BufReader::with_capacity(1 << 20, stdout);
    let mut line = Vec::new();
    let mut stmt: Vec<u8> = Vec::new();
    let mut current_db: Option<String> = None;
    struct Open {
        rel: String,
        schema: String,
        table: String,
        w: SetFileWriter,
        rows: u64,
    }
    let mut open: Option<Open> = None;
    let mut data_files: Vec<(String, String, u64, FileRecord)> = Vec::new();
    let mut max_statement = 0u64;
    let close =
        |o: Open, data_files: &mut Vec<(String, String, u64, FileRecord)>| -> Result<(), Error> {
            let path = set.join(&o.rel);
            let w = o.w.finish().map_err(Error::io("writing", &path))?;
            let rec = FileRecord::written(
                o.rel,
                FileKind::Data,
                Some(&o.schema),
                Some(&o.table),
                o.rows,
                w,
            );
            data_files.push((o.schema, o.table, o.rows, rec));
            Ok(())
        };
    progress.start("mysqldump", tables.iter().map(|t| t.data_length).sum());
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(Error::io("reading the output of", &dumper.program))?;
        if n == 0 {
            break;
        }
        let trimmed = line.strip_suffix(b"\n").unwrap_or(&line);
        if !stmt.is_empty() || trimmed.starts_with(b"INSERT INTO") {
            // mariadb-dump puts each row on its own line; strings never hold a raw newline.
            stmt.extend_from_slice(trimmed);
            if stmt.ends_with(b";") {
                let o = open.as_mut().ok_or_else(|| {
                    Error::Invalid("the dump program wrote rows before naming their table".into())
                })?;
                o.rows += count_rows(&stmt);
                stmt.push(b'\n');
                max_statement = max_statement.max(stmt.len() as u64);
                o.w.write_all(&stmt)
                    .map_err(Error::io("writing", set.join(&o.rel)))?;
                progress.advance(stmt.len() as u64, 0);
                stmt.clear();
            }
            continue;
        }
        let text = String::from_utf8_lossy(trimmed);
        if let Some(db) = marker_name(&text, "-- Current Database: ") {
            current_db = Some(db);
        } else if let Some(table) = marker_name(&text, "-- Dumping data for table ") {
            if let Some(o) = open.take() {
                close(o, &mut data_files)?;
            }
            let schema = current_db.clone().ok_or_else(|| {
                Error::Invalid("the dump program named a table before its database".into())
            })?;
            let dir = set.join("2-data").join(file_name(&schema));
            if !dir.is_dir() {
                std::fs::create_dir(&dir).map_err(Error::io("creating", &dir))?;
            }
            let rel = format!(
                "2-data/{}/{}.00001{}",
                file_name(&schema),
                file_name(&table),
                c.suffix()
            );
            let path = set.join(&rel);
            let mut w = SetFileWriter::create(&path, c).map_err(Error::io("creating", &path))?;
            let history = !dumper.oracle
                && tables
                    .iter()
                    .any(|t| t.versioned && t.schema == schema && t.name == table);
            let header = format!(
                "-- spyglass-admin data (mysqldump): {}\n{DATA_HEADER}{}USE {};\n",
                quote::qualified(&schema, &table),
                if history { HISTORY_HEADER } else { "" },
                quote::ident(&schema)
            );
            w.write_all(header.as_bytes())
                .map_err(Error::io("writing", &path))?;
            open = Some(Open {
                rel,
                schema,
                table,
                w,
                rows: 0,
            });
        }
    }
    if let Some(o) = open.take() {
        close(o, &mut data_files)?;
    }
    let status = child
        .wait()
        .map_err(Error::io("waiting for", &dumper.program))?;
    let err = err_reader.join().unwrap_or_default();
    progress.finish();
    if !status.success() {
        return Err(dumper.failed(&err, status));
    }
    data_files.sort_by(|a, b| a.3.path.cmp(&b.3.path));

    for s in schemas {
        let sql = dumper.run(&[
            "--no-data",
            "--no-create-info",
            "--no-create-db",
            "--triggers",
            "--skip-routines",
            "--events",
            "--skip-opt",
            "--databases",
            s,
        ])?;
        let views: Vec<(String, String)> = tables
            .iter()
            .filter(|t| t.is_view && t.schema == *s)
            .map(|t| {
                Ok((
                    t.name.clone(),
                    catalog::create_view(coord.conn(), s, &t.name)?,
                ))
            })
            .collect::<Result<_, Error>>()?;
        let mut head = format!("{DATA_HEADER}USE {};\n", quote::ident(s));
        // Each replaces its stand-in from the schema file.
        for i in catalog::view_order(s, &views) {
            head.push_str(&catalog::replacing(&views[i].1));
            head.push_str(";\n");
        }
        let rel = format!("3-post/{}{}", file_name(s), c.suffix());
        let w = write_whole(&set.join(&rel), c, &[head.as_bytes(), &sql].concat())?;
        files.push(FileRecord::written(
            rel,
            FileKind::Post,
            Some(s),
            None,
            0,
            w,
        ));
    }
    if options.accounts {
        if let Some((script, _)) = crate::accounts::dump(coord.conn(), flavor)? {
            let rel = format!("accounts{}", c.suffix());
            let w = write_whole(&set.join(&rel), c, script.as_bytes())?;
            files.push(FileRecord::written(
                rel,
                FileKind::Accounts,
                None,
                None,
                0,
                w,
            ));
        }
    }
    let schema_count = files.iter().filter(|f| f.kind == FileKind::Schema).count();
    let mut records = Vec::new();
    for t in tables.iter().filter(|t| !t.is_view) {
        let (rows, chunks) = data_files
            .iter()
            .filter(|(s, n, _, _)| *s == t.schema && *n == t.name)
            .fold((0, 0), |(r, c), (_, _, rows, _)| (r + rows, c + 1));
        let checksum = if options.checksum {
            checksum_table(coord.conn(), &t.schema, &t.name)
        } else {
            None
        };
        // A versioned table's files hold its history too: the current rows
        // are counted after the dump (not inside its snapshot).
        let (rows, history_rows) = match t.versioned && !dumper.oracle {
            true => {
                let current = count_current(coord.conn(), &t.schema, &t.name).unwrap_or(rows);
                (current.min(rows), Some(rows.saturating_sub(current)))
            }
            false => (rows, None),
        };
        records.push(TableRecord {
            schema: t.schema.clone(),
            table: t.name.clone(),
            engine: t.engine.clone(),
            consistent: t.transactional(),
            rows,
            history_rows,
            checksum,
            chunks,
        });
    }
    if options.checksum {
        notes.push("mysqldump engine: CHECKSUM TABLE values were read after the dump, not inside its snapshot".into());
    }
    files.splice(
        schema_count..schema_count,
        data_files.into_iter().map(|d| d.3),
    );
    let _ = connect;
    Ok(Output {
        files,
        tables: records,
        notes,
        snapshot: Snapshot {
            method: "mysqldump_single_transaction".into(),
            ddl_lock: "none".into(),
            binlog_file: None,
            binlog_position: None,
            gtid: None,
            workers: 1,
            lock_wait_ms: None,
            writers_blocked_ms: None,
        },
        max_statement,
    })
}

fn count_current(conn: &mut Conn, schema: &str, table: &str) -> Option<u64> {
    use spyglass_db::mysql::prelude::Queryable;
    conn.query_first(format!(
        "SELECT COUNT(*) FROM {}",
        quote::qualified(schema, table)
    ))
    .ok()
    .flatten()
}

fn checksum_table(conn: &mut Conn, schema: &str, table: &str) -> Option<u64> {
    use spyglass_db::mysql::prelude::Queryable;
    let row: Option<(String, Option<u64>)> = conn
        .query_first(format!(
            "CHECKSUM TABLE {}",
            quote::qualified(schema, table)
        ))
        .ok()
        .flatten();
    row.and_then(|r| r.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_rows_outside_quotes() {
        assert_eq!(
            count_rows(b"INSERT INTO `t` VALUES (1,'a(b'),(2,'c\\')d'),(3,0x28);"),
            3
        );
        assert_eq!(
            count_rows(b"INSERT INTO `t` VALUES(1,NULL),(2,'x');"),
            2,
            "mariadb-dump's rows joined from separate lines"
        );
        assert_eq!(count_rows(b"INSERT INTO `t` VALUES (1,NULL);"), 1);
        assert_eq!(
            marker_name(
                "-- Dumping data for table `we``ird`",
                "-- Dumping data for table "
            )
            .as_deref(),
            Some("we`ird")
        );
    }

    #[test]
    fn tls_reaches_the_dump_tool_in_its_dialect() {
        let mut c = ConnectOptions::tcp("db.lab", 3306, "u").tls_options(spyglass_db::TlsOptions {
            mode: TlsMode::VerifyIdentity,
            ca: Some("/lab/ca.pem".into()),
            cert: Some("/lab/c.pem".into()),
            key: Some("/lab/k.pem".into()),
        });
        let mysql = client_options(&c, true, true);
        assert!(mysql.contains("ssl-mode=VERIFY_IDENTITY\n"), "{mysql}");
        assert!(
            mysql.contains("ssl-ca=\"/lab/ca.pem\"\n")
                && mysql.contains("ssl-key=\"/lab/k.pem\"\n"),
            "{mysql}"
        );
        let maria = client_options(&c, false, true);
        assert!(
            !maria.contains("ssl-mode"),
            "MariaDB's dump rejects ssl-mode: {maria}"
        );
        assert!(
            maria.contains("ssl-verify-server-cert=1\n") && maria.contains("ssl-ca="),
            "{maria}"
        );
        c.tls.mode = TlsMode::VerifyCa;
        assert!(client_options(&c, true, true).contains("ssl-mode=VERIFY_CA\n"));
        assert!(client_options(&c, false, true).contains("ssl-verify-server-cert=1\n"));
        c.tls.mode = TlsMode::Prefer;
        assert!(client_options(&c, true, false).contains("ssl-mode=DISABLED\n"));
        assert!(client_options(&c, true, true).contains("ssl-mode=REQUIRED\n"));
        assert!(
            !client_options(&c, true, true).contains("ssl-ca"),
            "an unverified mode passes no CA"
        );
    }

    #[test]
    fn option_values_are_quoted() {
        assert_eq!(opt_value(r#"p"w\d"#), r#""p\"w\\d""#);
    }
}
