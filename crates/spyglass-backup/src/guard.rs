//! The long-query guard before `FLUSH TABLES WITH READ LOCK`, like
//! mydumper's: FTWRL waits for every running statement on a table, and
//! every writer waits behind FTWRL, so one long statement would stall the
//! whole server. The guard waits for long statements to end, up to a bound,
//! and then fails naming them, or kills them when asked.

use std::time::{Duration, Instant};

use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::mysql::Conn;
use spyglass_db::DbError;

use crate::Error;

/// A statement another session is running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningQuery {
    /// Connection id (`KILL QUERY` takes it).
    pub id: u64,
    /// Account.
    pub user: String,
    /// Seconds it has been running.
    pub seconds: u64,
    /// The start of its text.
    pub text: String,
}

impl std::fmt::Display for RunningQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "id {} by {} running for {} s: {}",
            self.id, self.user, self.seconds, self.text
        )
    }
}

/// Global privileges of the current account that the snapshot depends on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Privileges {
    /// RELOAD: `FLUSH TABLES WITH READ LOCK`.
    pub reload: bool,
    /// PROCESS: seeing other sessions' statements.
    pub process: bool,
    /// SUPER / CONNECTION_ADMIN: killing them.
    pub kill: bool,
}

/// The current account's global privileges (directly granted or through
/// `ALL PRIVILEGES`).
pub fn privileges(conn: &mut Conn) -> Result<Privileges, Error> {
    let have: Vec<String> = conn
        .query(
            "SELECT DISTINCT privilege_type FROM information_schema.user_privileges \
             WHERE grantee = CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')",
        )
        .map_err(|e| Error::Db(DbError::query("reading this account's privileges", e)))?;
    let has = |p: &str| have.iter().any(|h| h.eq_ignore_ascii_case(p));
    Ok(Privileges {
        reload: has("RELOAD"),
        process: has("PROCESS"),
        kill: has("SUPER") || has("CONNECTION_ADMIN"),
    })
}

/// Statements of other sessions that have run for at least `min_seconds`.
///
/// On MySQL, `information_schema.processlist` fails as a whole (error 3854,
/// "Cannot convert string ... to utf8mb3") while any session runs a
/// statement with binary bytes in it, such as a DataJoint insert of a blob:
/// a backup would then refuse to start because of the lab's own writers. So
/// where the server has it (MySQL 8.0.22+, with `performance_schema` on)
/// `performance_schema.processlist` is read instead, with the same columns,
/// same privilege (PROCESS) and no conversion; elsewhere (MariaDB, whose
/// `information_schema` converts such bytes to `?`) the classic table.
/// Statement text is read as bytes and shown lossily.
pub fn long_queries(conn: &mut Conn, min_seconds: u64) -> Result<Vec<RunningQuery>, Error> {
    if performance_schema_on(conn) {
        match processlist(conn, "performance_schema.processlist", min_seconds) {
            // 1146: no such table (before 8.0.22); 1142/1044: not readable.
            Err(spyglass_db::mysql::Error::MySqlError(e))
                if matches!(e.code, 1146 | 1142 | 1044) => {}
            other => {
                return other.map_err(|e| Error::Db(DbError::query("reading the processlist", e)))
            }
        }
    }
    processlist(conn, "information_schema.processlist", min_seconds)
        .map_err(|e| Error::Db(DbError::query("reading the processlist", e)))
}

/// Whether the session with this connection id is still connected. Reads
/// the same table as [`long_queries`], for the same reason: on MySQL,
/// `information_schema.processlist` fails while any session (a restore
/// loading blobs, say) runs a statement with bytes it cannot convert, which
/// made a running restore look dead. Unreadable (no PROCESS) counts as no.
pub fn session_connected(conn: &mut Conn, id: u64) -> bool {
    let q = |table: &str| format!("SELECT COUNT(*) FROM {table} WHERE id = ?");
    if performance_schema_on(conn) {
        if let Ok(Some(n)) =
            conn.exec_first::<u64, _, _>(q("performance_schema.processlist"), (id,))
        {
            return n > 0;
        }
    }
    conn.exec_first::<u64, _, _>(q("information_schema.processlist"), (id,))
        .ok()
        .flatten()
        .is_some_and(|n| n > 0)
}

/// Whether `performance_schema` is on (where MySQL has its processlist table).
fn performance_schema_on(conn: &mut Conn) -> bool {
    conn.query_first::<i64, _>("SELECT @@performance_schema")
        .ok()
        .flatten()
        == Some(1)
}

fn processlist(
    conn: &mut Conn,
    table: &str,
    min_seconds: u64,
) -> Result<Vec<RunningQuery>, spyglass_db::mysql::Error> {
    conn.exec_map(
        format!(
            "SELECT id, user, time, LEFT(REPLACE(REPLACE(info, '\\n', ' '), '\\r', ' '), 100) \
             FROM {table} \
             WHERE id <> CONNECTION_ID() AND info IS NOT NULL AND time >= ? \
             AND command NOT IN ('Sleep', 'Daemon', 'Binlog Dump', 'Binlog Dump GTID', 'Killed') \
             AND user NOT IN ('system user', 'event_scheduler') ORDER BY time DESC, id"
        ),
        (min_seconds,),
        |(id, user, seconds, text): (u64, Vec<u8>, u64, Vec<u8>)| RunningQuery {
            id,
            user: String::from_utf8_lossy(&user).into_owned(),
            seconds,
            text: String::from_utf8_lossy(&text).into_owned(),
        },
    )
}

/// What the guard found.
#[derive(Debug, Clone, Default)]
pub struct GuardOutcome {
    /// Statements still running at the bound (killed, when `kill`).
    pub long: Vec<RunningQuery>,
    /// How long it waited.
    pub waited: Duration,
}

/// Waits until no other session has a statement running for a second or
/// more (shorter ones end long before FTWRL would wait on them), at most
/// `bound`. With `kill`, `KILL QUERY` each one still running then.
pub fn wait_for_long_queries(
    conn: &mut Conn,
    bound: Duration,
    kill: bool,
) -> Result<GuardOutcome, Error> {
    let t = Instant::now();
    loop {
        let long = long_queries(conn, 1)?;
        if long.is_empty() {
            return Ok(GuardOutcome {
                long,
                waited: t.elapsed(),
            });
        }
        if t.elapsed() >= bound {
            if kill {
                for q in &long {
                    conn.query_drop(format!("KILL QUERY {}", q.id))
                        .map_err(|e| {
                            Error::Db(DbError::query(format!("killing long query {q}"), e))
                        })?;
                }
            }
            return Ok(GuardOutcome {
                long,
                waited: t.elapsed(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
