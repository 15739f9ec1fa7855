use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};

use crate::tls::{self, TlsMode, TlsOptions};
use crate::{DbError, ServerInfo};

/// A password. Its `Debug` and `Display` never show the value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The password itself: only for handing to the driver or a 0600 file.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// True for the empty password.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// TCP host and port.
    Tcp {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A Unix socket on this machine.
    Socket(PathBuf),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Endpoint::Tcp { host, port } => write!(f, "{host}:{port}"),
            Endpoint::Socket(p) => write!(f, "socket {}", p.display()),
        }
    }
}

/// Everything needed to open a connection. Resolving these from flags,
/// environment and files is the binary's job; libraries only consume them.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Server address.
    pub endpoint: Endpoint,
    /// Account name.
    pub user: String,
    /// Password, if any (`None` sends no password).
    pub password: Option<Secret>,
    /// TLS policy (mode, CA, client certificate).
    pub tls: TlsOptions,
    /// Limit for establishing the TCP connection.
    pub connect_timeout: Duration,
    /// Where the password came from (`DJ_PASS`, a file's path and key, a
    /// flag), for a refused login's message; never the password itself.
    pub password_source: Option<String>,
}

impl ConnectOptions {
    /// TCP options with no password, TLS preferred, 10 s connect timeout.
    pub fn tcp(host: impl Into<String>, port: u16, user: impl Into<String>) -> Self {
        ConnectOptions {
            endpoint: Endpoint::Tcp {
                host: host.into(),
                port,
            },
            user: user.into(),
            password: None,
            tls: TlsOptions::default(),
            connect_timeout: Duration::from_secs(10),
            password_source: None,
        }
    }

    /// Sets the password.
    pub fn password(mut self, password: Secret) -> Self {
        self.password = Some(password);
        self.password_source = None;
        self
    }

    /// Sets the TLS mode (keeping any CA and client certificate).
    pub fn tls(mut self, mode: TlsMode) -> Self {
        self.tls.mode = mode;
        self
    }

    /// Sets the whole TLS policy.
    pub fn tls_options(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    /// Whether the first attempt uses TLS (TCP only: a Unix socket is local).
    pub fn tls_first(&self) -> bool {
        matches!(self.endpoint, Endpoint::Tcp { .. }) && self.tls.mode != TlsMode::Disable
    }

    /// Applies the endpoint and the TLS policy (with TLS or plain) to a driver
    /// builder: the one place every connection of the tool gets its TLS options.
    pub fn apply_endpoint(&self, mut b: OptsBuilder, with_tls: bool) -> OptsBuilder {
        match &self.endpoint {
            Endpoint::Tcp { host, port } => {
                b = b.ip_or_hostname(Some(host.clone())).tcp_port(*port);
                if with_tls {
                    b = b.ssl_opts(self.tls.ssl_opts());
                }
            }
            Endpoint::Socket(path) => {
                b = b.socket(Some(path.to_string_lossy().into_owned()));
            }
        }
        b
    }

    /// Turns a failed connection attempt into the error to show: a TLS failure
    /// names its reason (unknown CA, name mismatch, expired, no TLS offered).
    /// `None` when `e` is not a TLS failure.
    pub fn tls_failure(&self, e: mysql::Error) -> Result<DbError, mysql::Error> {
        let server = self.endpoint.to_string();
        let host = match &self.endpoint {
            Endpoint::Tcp { host, .. } => host.as_str(),
            Endpoint::Socket(_) => "localhost",
        };
        if matches!(
            e,
            mysql::Error::DriverError(mysql::DriverError::TlsNotSupported)
        ) {
            return Ok(DbError::TlsRequired {
                server,
                mode: self.tls.mode,
                source: e,
            });
        }
        if let Some(r) = tls::rustls_error(&e) {
            let reason = tls::describe(r, &self.tls, host);
            return Ok(DbError::Tls {
                server,
                mode: self.tls.mode,
                reason,
                source: e,
            });
        }
        Err(e)
    }

    fn builder(&self, with_tls: bool) -> OptsBuilder {
        let b = OptsBuilder::new()
            .user(Some(self.user.clone()))
            .pass(self.password.as_ref().map(|p| p.expose().to_owned()))
            .tcp_connect_timeout(Some(self.connect_timeout))
            .read_timeout(None)
            .prefer_socket(false)
            // DataJoint and every dump we write are utf8mb4; collation is the server's default.
            .init(vec!["SET NAMES utf8mb4".to_owned()]);
        self.apply_endpoint(b, with_tls)
    }
}

/// An open connection and what was learned when it was opened.
pub struct Session {
    conn: Conn,
    server: ServerInfo,
    tls: bool,
    endpoint: Endpoint,
    user: String,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("server", &self.server)
            .field("tls", &self.tls)
            .field("endpoint", &self.endpoint)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The driver connection, for running statements.
    pub fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }
    /// Flavor and version of the server.
    pub fn server(&self) -> &ServerInfo {
        &self.server
    }
    /// Whether the connection is encrypted.
    pub fn tls(&self) -> bool {
        self.tls
    }
    /// Where we are connected.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
    /// The user name we logged in with.
    pub fn user(&self) -> &str {
        &self.user
    }
    /// Gives up the metadata and keeps the connection (for worker threads).
    pub fn into_conn(self) -> Conn {
        self.conn
    }
    /// The account the server matched, `CURRENT_USER()`, e.g. `root@localhost`.
    pub fn current_user(&mut self) -> Result<String, DbError> {
        let v: Option<String> = self
            .conn
            .query_first("SELECT CURRENT_USER()")
            .map_err(|e| DbError::query("reading CURRENT_USER()", e))?;
        Ok(v.unwrap_or_default())
    }
}

/// Opens a connection, detects the server flavor and whether TLS is in use.
pub fn connect(opts: &ConnectOptions) -> Result<Session, DbError> {
    opts.tls.check("the connection settings")?;
    let use_tls_first = opts.tls_first();
    let conn = match Conn::new(opts.builder(use_tls_first)) {
        Ok(c) => c,
        // Only `prefer` falls back, and only when the server offers no TLS:
        // a failed verification never does (verifying modes do not get here).
        Err(mysql::Error::DriverError(mysql::DriverError::TlsNotSupported))
            if use_tls_first && opts.tls.mode == TlsMode::Prefer =>
        {
            Conn::new(opts.builder(false)).map_err(|e| classify(opts, e))?
        }
        Err(e) if use_tls_first => match opts.tls_failure(e) {
            Ok(tls_error) => return Err(tls_error),
            Err(e) => return Err(classify(opts, e)),
        },
        Err(e) => return Err(classify(opts, e)),
    };
    let mut conn = conn;
    let server = ServerInfo::detect(&mut conn)?;
    let cipher: Option<(String, String)> = conn
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .map_err(|e| DbError::query("reading the session's TLS status", e))?;
    let tls = cipher.is_some_and(|(_, v)| !v.is_empty());
    Ok(Session {
        conn,
        server,
        tls,
        endpoint: opts.endpoint.clone(),
        user: opts.user.clone(),
    })
}

fn classify(opts: &ConnectOptions, e: mysql::Error) -> DbError {
    let server = opts.endpoint.to_string();
    match &e {
        // ER_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR (the account may not use the default db).
        mysql::Error::MySqlError(m) if m.code == 1045 || m.code == 1044 => DbError::AccessDenied {
            login: Box::new(crate::error::Login {
                user: opts.user.clone(),
                server,
                password_from: match (&opts.password, &opts.password_source) {
                    (None, _) => "no password was given".into(),
                    (Some(_), Some(src)) => format!("the password came from {src}"),
                    (Some(_), None) => "a password was given".into(),
                },
            }),
            source: e,
        },
        mysql::Error::IoError(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            DbError::Timeout {
                server,
                timeout: opts.connect_timeout,
            }
        }
        mysql::Error::IoError(_)
        | mysql::Error::DriverError(mysql::DriverError::CouldNotConnect(_)) => {
            DbError::Unreachable { server, source: e }
        }
        _ => DbError::Connect {
            user: opts.user.clone(),
            server,
            source: e,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s}"), "***");
        assert!(!format!("{s:?}").contains("hunter2"));
        let opts = ConnectOptions::tcp("h", 1, "u").password(s);
        assert!(!format!("{opts:?}").contains("hunter2"));
    }

    #[test]
    fn endpoint_display() {
        let e = Endpoint::Tcp {
            host: "::1".into(),
            port: 3306,
        };
        assert_eq!(e.to_string(), "[::1]:3306");
        assert_eq!(
            Endpoint::Socket("/run/m.sock".into()).to_string(),
            "socket /run/m.sock"
        );
    }
}
