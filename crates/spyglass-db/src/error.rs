use std::time::Duration;

/// Errors from connecting and running statements.
///
/// Messages name the account and the server (never the password); the
/// underlying driver error, when there is one, is kept as the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The server rejected the credentials.
    #[error("access denied for user '{}' connecting to {} ({}): wrong password, or the account does not exist for this host", .login.user, .login.server, .login.password_from)]
    AccessDenied {
        /// Who tried, where, and where the password came from (boxed: it
        /// keeps every `Result<_, DbError>` small).
        login: Box<Login>,
        /// Driver error.
        #[source]
        source: mysql::Error,
    },
    /// Nothing answered at the address, or the connection broke during the handshake.
    #[error("cannot reach a MySQL server at {server}")]
    Unreachable {
        /// `host:port` or the socket path.
        server: String,
        /// Driver or I/O error.
        #[source]
        source: mysql::Error,
    },
    /// The connection was attempted but timed out.
    #[error("timed out after {}s connecting to {server}", timeout.as_secs())]
    Timeout {
        /// `host:port` or the socket path.
        server: String,
        /// The limit that was hit.
        timeout: Duration,
    },
    /// TLS was required but the server does not offer it.
    #[error("TLS mode {mode} needs TLS, but the server at {server} does not offer it (no ssl_cert configured on the server?)")]
    TlsRequired {
        /// `host:port`.
        server: String,
        /// The mode in force.
        mode: crate::TlsMode,
        /// Driver error.
        #[source]
        source: mysql::Error,
    },
    /// The TLS handshake failed; nothing (no password) was sent.
    #[error("TLS with {server} failed (mode {mode}): {reason}; no password was sent")]
    Tls {
        /// `host:port`.
        server: String,
        /// The mode in force.
        mode: crate::TlsMode,
        /// Why, in words: unknown CA, name mismatch (expected and present names), expired, ...
        reason: String,
        /// Driver error.
        #[source]
        source: mysql::Error,
    },
    /// Connection settings that cannot work (a TLS file missing or readable
    /// by others, a port that is not a number, ...). `detail` names the source.
    #[error("{detail}")]
    Setting {
        /// What is wrong and where it came from.
        detail: String,
    },
    /// Any other failure to connect.
    #[error("could not connect to {server} as '{user}'")]
    Connect {
        /// The user name that was tried.
        user: String,
        /// `host:port` or the socket path.
        server: String,
        /// Driver error.
        #[source]
        source: mysql::Error,
    },
    /// A statement failed. `what` says what we were doing, in words.
    #[error("{what}")]
    Query {
        /// What the statement was for, e.g. "reading the server version".
        what: String,
        /// Driver error.
        #[source]
        source: mysql::Error,
    },
    /// The server answered something this crate does not understand.
    #[error("unexpected answer from the server while {what}: {detail}")]
    Protocol {
        /// What we were doing.
        what: String,
        /// What was odd about the answer.
        detail: String,
    },
}

impl DbError {
    /// Wraps a driver error from a statement with a description of its purpose.
    pub fn query(what: impl Into<String>, source: mysql::Error) -> Self {
        DbError::Query {
            what: what.into(),
            source,
        }
    }

    /// True for a statement the server undid and asks to run again
    /// ([`is_transient`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, DbError::Query { source, .. } if is_transient(source))
    }
}

/// A driver error in plain words. The driver's own `Display` wraps each kind
/// in a Rust-looking frame (`MySqlError { ERROR 1146 (42S02): ... }`,
/// `CodecError { IO error: ... }`); this prints what is inside.
pub fn driver_error_text(e: &mysql::Error) -> String {
    use mysql::Error as E;
    match e {
        E::MySqlError(m) => format!(
            "the server said: ERROR {} ({}): {}",
            m.code, m.state, m.message
        ),
        E::IoError(io) => io.to_string(),
        E::CodecError(c) => c.to_string(),
        E::DriverError(d) => d.to_string(),
        E::UrlError(u) => u.to_string(),
        E::TlsError(t) => format!("TLS: {t}"),
        other => other.to_string(),
    }
}

/// The login a server refused ([`DbError::AccessDenied`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The user name that was tried.
    pub user: String,
    /// `host:port` or the socket path.
    pub server: String,
    /// Where the password came from, in words (`the password came from
    /// DJ_PASS`, `no password was given`); never the password.
    pub password_from: String,
}

/// True when the server rolled the statement (or its transaction) back and
/// asks to try again: a deadlock (`ER_LOCK_DEADLOCK`, 1213, InnoDB's or a
/// metadata-lock cycle with concurrent DDL) or a lock wait that timed out
/// (`ER_LOCK_WAIT_TIMEOUT`, 1205).
pub fn is_transient(e: &mysql::Error) -> bool {
    matches!(e, mysql::Error::MySqlError(m) if m.code == 1213 || m.code == 1205)
}

/// How many times [`retry_transient`] runs a statement before it gives up.
pub const TRANSIENT_TRIES: u32 = 6;

/// Runs one self-contained statement (autocommit, no open transaction of
/// ours), again after a short, growing pause while it fails with a
/// [`is_transient`] error: the server undid it, so running it again is what
/// the server asks for. Any other error, or the last try's, is returned.
pub fn retry_transient<T>(
    mut statement: impl FnMut() -> Result<T, mysql::Error>,
) -> Result<T, mysql::Error> {
    crate::retrying!(statement())
}

/// [`retry_transient`] for a statement expression whose result borrows the
/// connection (`conn.query_iter(..)`, which a closure cannot return):
/// `retrying!(conn.query_iter(&sql))` evaluates it again while it fails with
/// a [`is_transient`] error, pausing [`transient_pause`] between tries.
#[macro_export]
macro_rules! retrying {
    ($statement:expr) => {{
        let mut tries = 1;
        loop {
            match $statement {
                Err(e) if $crate::is_transient(&e) && tries < $crate::TRANSIENT_TRIES => {
                    ::std::thread::sleep($crate::transient_pause(tries));
                    tries += 1;
                }
                r => break r,
            }
        }
    }};
}

/// The pause before try `tries + 1`: 25 ms, 50 ms, ... up to 400 ms, so
/// the other side of a deadlock gets through first.
pub fn transient_pause(tries: u32) -> Duration {
    Duration::from_millis(25 << tries.min(4))
}

#[cfg(test)]
mod transient_tests {
    use super::*;

    fn server_error(code: u16) -> mysql::Error {
        mysql::Error::MySqlError(mysql::MySqlError {
            state: "40001".into(),
            message: "Deadlock found when trying to get lock; try restarting transaction".into(),
            code,
        })
    }

    #[test]
    fn a_deadlock_is_tried_again_and_other_errors_are_not() {
        let mut calls = 0;
        let r = retry_transient(|| {
            calls += 1;
            if calls < 3 {
                Err(server_error(1213))
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r.unwrap(), 3);
        let mut calls = 0;
        let r: Result<(), _> = retry_transient(|| {
            calls += 1;
            Err(server_error(1146))
        });
        assert!(r.is_err());
        assert_eq!(calls, 1, "a missing table is not retried");
        let mut calls = 0;
        let r: Result<(), _> = retry_transient(|| {
            calls += 1;
            Err(server_error(1205))
        });
        assert!(matches!(r, Err(mysql::Error::MySqlError(m)) if m.code == 1205));
        assert_eq!(
            calls, TRANSIENT_TRIES,
            "gives up after {TRANSIENT_TRIES} tries"
        );
    }
}
