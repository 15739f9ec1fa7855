use std::fmt;

use mysql::prelude::Queryable;
use mysql::Conn;
use serde::Serialize;

use crate::DbError;

/// Which server family we talk to. The SQL for roles, default roles, account
/// storage and backup locks differs between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// Oracle MySQL (8.0, 8.4, 9.x) and Percona Server.
    Mysql,
    /// MariaDB (10.x, 11.x).
    Mariadb,
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavor::Mysql => "MySQL",
            Flavor::Mariadb => "MariaDB",
        })
    }
}

/// A server version, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Version {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch level.
    pub patch: u32,
}

impl Version {
    /// Builds a version.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Version {
            major,
            minor,
            patch,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Flavor and version of a server, read from `VERSION()` and `@@version_comment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerInfo {
    /// MySQL or MariaDB.
    pub flavor: Flavor,
    /// Parsed version.
    pub version: Version,
    /// `VERSION()` as the server reports it, e.g. `10.11.6-MariaDB-0+deb12u1`.
    pub version_string: String,
    /// `@@version_comment`, e.g. `Debian 12`.
    pub comment: String,
}

impl fmt::Display for ServerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.flavor, self.version)
    }
}

impl ServerInfo {
    /// Reads the server's version on an open connection.
    pub fn detect(conn: &mut Conn) -> Result<ServerInfo, DbError> {
        let row: Option<(String, Option<String>)> = conn
            .query_first("SELECT VERSION(), @@version_comment")
            .map_err(|e| DbError::query("reading the server version", e))?;
        let (version_string, comment) = row.ok_or_else(|| DbError::Protocol {
            what: "reading the server version".into(),
            detail: "no row returned".into(),
        })?;
        ServerInfo::parse(&version_string, comment.as_deref().unwrap_or("")).ok_or_else(|| {
            DbError::Protocol {
                what: "reading the server version".into(),
                detail: format!("cannot parse version '{version_string}'"),
            }
        })
    }

    /// Parses `VERSION()` and `@@version_comment`. Pure, for tests.
    pub fn parse(version_string: &str, comment: &str) -> Option<ServerInfo> {
        // MariaDB 10.x once reported "5.5.5-10.x.y-MariaDB" in the handshake; VERSION() does not,
        // but strip the prefix anyway in case a proxy forwards the handshake string.
        let lower = version_string.to_ascii_lowercase();
        let flavor =
            if lower.contains("mariadb") || comment.to_ascii_lowercase().contains("mariadb") {
                Flavor::Mariadb
            } else {
                Flavor::Mysql
            };
        let s = version_string
            .strip_prefix("5.5.5-")
            .unwrap_or(version_string);
        let numeric: String = s
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut parts = numeric.split('.').filter(|p| !p.is_empty());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(ServerInfo {
            flavor,
            version: Version::new(major, minor, patch),
            version_string: version_string.to_owned(),
            comment: comment.to_owned(),
        })
    }

    /// True when the server supports SQL roles (`CREATE ROLE`): MySQL 8.0+, MariaDB 10.0.5+.
    pub fn has_roles(&self) -> bool {
        match self.flavor {
            Flavor::Mysql => self.version >= Version::new(8, 0, 0),
            Flavor::Mariadb => self.version >= Version::new(10, 0, 5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        let cases = [
            (
                "10.11.6-MariaDB-0+deb12u1",
                "Debian 12",
                Flavor::Mariadb,
                (10, 11, 6),
            ),
            ("5.5.5-10.6.12-MariaDB", "", Flavor::Mariadb, (10, 6, 12)),
            (
                "8.0.36",
                "MySQL Community Server - GPL",
                Flavor::Mysql,
                (8, 0, 36),
            ),
            ("9.7.0", "(Debian)", Flavor::Mysql, (9, 7, 0)),
            (
                "8.0.35-27",
                "Percona Server (GPL)",
                Flavor::Mysql,
                (8, 0, 35),
            ),
            (
                "11.4.2-MariaDB-log",
                "mariadb.org binary distribution",
                Flavor::Mariadb,
                (11, 4, 2),
            ),
        ];
        for (v, c, flavor, (a, b, p)) in cases {
            let info = ServerInfo::parse(v, c).expect(v);
            assert_eq!(info.flavor, flavor, "{v}");
            assert_eq!(info.version, Version::new(a, b, p), "{v}");
        }
        assert!(ServerInfo::parse("garbage", "").is_none());
    }

    #[test]
    fn roles_support() {
        assert!(!ServerInfo::parse("5.7.44", "").unwrap().has_roles());
        assert!(ServerInfo::parse("8.0.1", "").unwrap().has_roles());
        assert!(ServerInfo::parse("10.3.1-MariaDB", "").unwrap().has_roles());
    }
}
