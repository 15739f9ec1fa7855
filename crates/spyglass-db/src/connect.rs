use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder, SslOpts};

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

/// How to use TLS, mirroring DataJoint's `database.use_tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// `use_tls: null` (DataJoint's default): try TLS, fall back to plain text
    /// when the server does not offer it. Certificates are not verified, like
    /// the mysql client's `--ssl-mode=PREFERRED`.
    #[default]
    Prefer,
    /// `use_tls: true`: fail unless TLS is established.
    Require,
    /// `use_tls: false`: never use TLS.
    Disable,
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
    /// TLS policy.
    pub tls: TlsMode,
    /// Limit for establishing the TCP connection.
    pub connect_timeout: Duration,
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
            tls: TlsMode::Prefer,
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// Sets the password.
    pub fn password(mut self, password: Secret) -> Self {
        self.password = Some(password);
        self
    }

    /// Sets the TLS policy.
    pub fn tls(mut self, tls: TlsMode) -> Self {
        self.tls = tls;
        self
    }

    fn builder(&self, with_tls: bool) -> OptsBuilder {
        let mut b = OptsBuilder::new()
            .user(Some(self.user.clone()))
            .pass(self.password.as_ref().map(|p| p.expose().to_owned()))
            .tcp_connect_timeout(Some(self.connect_timeout))
            .read_timeout(None)
            .prefer_socket(false)
            // DataJoint and every dump we write are utf8mb4; collation is the server's default.
            .init(vec!["SET NAMES utf8mb4".to_owned()]);
        match &self.endpoint {
            Endpoint::Tcp { host, port } => {
                b = b.ip_or_hostname(Some(host.clone())).tcp_port(*port);
                if with_tls {
                    // Like `--ssl-mode=PREFERRED/REQUIRED`: encrypt, do not verify
                    // (lab servers use self-signed certificates).
                    b = b.ssl_opts(Some(
                        SslOpts::default()
                            .with_danger_accept_invalid_certs(true)
                            .with_danger_skip_domain_validation(true),
                    ));
                }
            }
            Endpoint::Socket(path) => {
                b = b.socket(Some(path.to_string_lossy().into_owned()));
            }
        }
        b
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
    let use_tls_first = matches!(opts.endpoint, Endpoint::Tcp { .. })
        && matches!(opts.tls, TlsMode::Prefer | TlsMode::Require);
    let conn = match Conn::new(opts.builder(use_tls_first)) {
        Ok(c) => c,
        Err(e) if use_tls_first && opts.tls == TlsMode::Prefer && is_tls_failure(&e) => {
            Conn::new(opts.builder(false)).map_err(|e| classify(opts, e))?
        }
        Err(e) if use_tls_first && opts.tls == TlsMode::Require && is_tls_failure(&e) => {
            return Err(DbError::TlsRequired {
                server: opts.endpoint.to_string(),
                source: e,
            })
        }
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

fn is_tls_failure(e: &mysql::Error) -> bool {
    match e {
        mysql::Error::DriverError(mysql::DriverError::TlsNotSupported) => true,
        mysql::Error::TlsError(_) => true,
        mysql::Error::IoError(io) => {
            let s = io.to_string().to_ascii_lowercase();
            s.contains("tls") || s.contains("ssl") || s.contains("certificate")
        }
        _ => false,
    }
}

fn classify(opts: &ConnectOptions, e: mysql::Error) -> DbError {
    let server = opts.endpoint.to_string();
    match &e {
        // ER_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR (the account may not use the default db).
        mysql::Error::MySqlError(m) if m.code == 1045 || m.code == 1044 => DbError::AccessDenied {
            user: opts.user.clone(),
            server,
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
