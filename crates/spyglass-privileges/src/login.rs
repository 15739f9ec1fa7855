//! Logging in as someone: does an account accept a password (audit), and
//! changing one's own password, also when it has expired.
//!
//! These open their own connections instead of [`spyglass_db::connect`]:
//! an account with an expired password may only change it (MySQL "sandbox
//! mode", <https://dev.mysql.com/doc/refman/8.0/en/expired-password-handling.html>),
//! so no other statement may run first, and the client must say it can
//! handle expired passwords or MySQL refuses the login outright.

use std::time::Duration;

use spyglass_db::mysql::consts::CapabilityFlags;
use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::mysql::{Conn, OptsBuilder};
use spyglass_db::{quote, ConnectOptions, DbError, Secret, TlsMode};

use crate::model::Account;
use crate::Error;

/// ER_MUST_CHANGE_PASSWORD, ER_MUST_CHANGE_PASSWORD_LOGIN: the password was right but has expired.
const EXPIRED: [u16; 2] = [1820, 1862];
/// ER_ACCESS_DENIED_ERROR.
const DENIED: u16 = 1045;
/// ER_PARSE_ERROR.
const PARSE: u16 = 1064;

/// The answer to "does this account accept this password?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginResult {
    /// Logged in.
    Accepted,
    /// Accepted, but the password has expired and must be changed.
    AcceptedExpired,
    /// Refused.
    Refused,
}

fn opts(base: &ConnectOptions, user: &str, password: &Secret, tls: bool) -> OptsBuilder {
    let b = OptsBuilder::new()
        .user(Some(user.to_owned()))
        .pass(Some(password.expose().to_owned()))
        .tcp_connect_timeout(Some(base.connect_timeout))
        .read_timeout(Some(Duration::from_secs(30)))
        .prefer_socket(false)
        // Skips the driver's `SELECT @@max_allowed_packet`, which sandbox mode refuses.
        .max_allowed_packet(Some(16 * 1024 * 1024))
        .additional_capabilities(CapabilityFlags::CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS);
    // The same endpoint and TLS policy as every other connection.
    base.apply_endpoint(b, tls)
}

/// A failed login attempt: a TLS failure (named reason) or the driver's error.
enum Failed {
    Tls(DbError),
    Driver(spyglass_db::mysql::Error),
}

fn raw_connect(base: &ConnectOptions, user: &str, password: &Secret) -> Result<Conn, Failed> {
    base.tls
        .check("the connection settings")
        .map_err(Failed::Tls)?;
    let tls = base.tls_first();
    match Conn::new(opts(base, user, password, tls)) {
        Ok(c) => Ok(c),
        Err(spyglass_db::mysql::Error::DriverError(
            spyglass_db::mysql::DriverError::TlsNotSupported,
        )) if tls && base.tls.mode == TlsMode::Prefer => {
            Conn::new(opts(base, user, password, false)).map_err(Failed::Driver)
        }
        Err(e) if tls => match base.tls_failure(e) {
            Ok(t) => Err(Failed::Tls(t)),
            Err(e) => Err(Failed::Driver(e)),
        },
        Err(e) => Err(Failed::Driver(e)),
    }
}

fn code(e: &spyglass_db::mysql::Error) -> Option<u16> {
    match e {
        spyglass_db::mysql::Error::MySqlError(m) => Some(m.code),
        _ => None,
    }
}

/// Tries one login as `user` with `password` at `base`'s server. One
/// attempt, no retry.
pub fn try_login(
    base: &ConnectOptions,
    user: &str,
    password: &Secret,
) -> Result<LoginResult, Error> {
    match raw_connect(base, user, password) {
        Ok(_) => Ok(LoginResult::Accepted),
        Err(Failed::Driver(e)) if code(&e).is_some_and(|c| EXPIRED.contains(&c)) => {
            Ok(LoginResult::AcceptedExpired)
        }
        Err(Failed::Driver(e)) if code(&e) == Some(DENIED) => Ok(LoginResult::Refused),
        Err(Failed::Tls(e)) => Err(Error::Db(e)),
        Err(Failed::Driver(e)) => Err(Error::Db(DbError::Connect {
            user: user.to_owned(),
            server: base.endpoint.to_string(),
            source: e,
        })),
    }
}

/// For each account, whether it accepts any of `passwords` (the index of the
/// first accepted one). Each (account, password) pair is tried exactly once;
/// `threads` logins run at a time.
pub fn check_passwords(
    base: &ConnectOptions,
    accounts: &[Account],
    passwords: &[Secret],
    threads: usize,
) -> Vec<(Account, Result<Option<usize>, String>)> {
    let threads = threads.clamp(1, 16);
    let chunk = accounts.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = accounts
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|a| {
                            let mut found = Ok(None);
                            for (i, p) in passwords.iter().enumerate() {
                                match try_login(base, &a.user, p) {
                                    Ok(LoginResult::Refused) => {}
                                    Ok(_) => {
                                        found = Ok(Some(i));
                                        break;
                                    }
                                    Err(e) => {
                                        found = Err(crate::error_chain(&e));
                                        break;
                                    }
                                }
                            }
                            (a.clone(), found)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// Changes the password of the account `base` logs in as, from `current` to
/// `new`. Works without any privilege and with an expired password:
/// MariaDB takes `SET PASSWORD = PASSWORD(...)`, MySQL `ALTER USER
/// CURRENT_USER() IDENTIFIED BY ...` (it has no `PASSWORD()`).
pub fn change_own_password(
    base: &ConnectOptions,
    current: &Secret,
    new: &Secret,
) -> Result<(), Error> {
    let mut conn = raw_connect(base, &base.user, current).map_err(|f| match f {
        Failed::Tls(e) => Error::Db(e),
        Failed::Driver(e) => Error::Db(DbError::Connect {
            user: base.user.clone(),
            server: base.endpoint.to_string(),
            source: e,
        }),
    })?;
    // Escaped literals assume backslash escapes; best effort (sandbox mode may refuse SET).
    let _ = conn.query_drop(
        "SET SESSION sql_mode = REPLACE(@@SESSION.sql_mode, 'NO_BACKSLASH_ESCAPES', '')",
    );
    let lit = quote::string(new.expose());
    let scrubbed = |e: spyglass_db::mysql::Error| Error::PasswordChange {
        user: base.user.clone(),
        reason: e.to_string().replace(new.expose(), "***"),
    };
    match conn.query_drop(format!("SET PASSWORD = PASSWORD({lit})")) {
        Ok(()) => Ok(()),
        Err(e) if code(&e) == Some(PARSE) => conn
            .query_drop(format!("ALTER USER CURRENT_USER() IDENTIFIED BY {lit}"))
            .map_err(scrubbed),
        Err(e) => Err(scrubbed(e)),
    }
}
