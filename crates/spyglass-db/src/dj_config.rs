//! DataJoint's configuration file, read the way datajoint-python 0.14 reads it.
//!
//! The file is JSON with flat dotted keys (`"database.host"`), plus nested
//! `stores` and `custom` objects. A `host:port` value in `database.host`
//! overrides `database.port`. Which file to read (`./dj_local_conf.json`, else
//! `~/.datajoint_config.json`, never merged) is the caller's decision: this
//! module parses text, so it stays free of I/O.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::resolve::TlsSource;
use crate::{Secret, TlsMode};

/// The settings spyglass-admin uses from a DataJoint config file.
#[derive(Debug, Clone, Default)]
pub struct DjConfig {
    /// The file this came from.
    pub path: PathBuf,
    /// `database.host` without any `:port` suffix.
    pub host: Option<String>,
    /// `database.port`, or the port from `database.host`.
    pub port: Option<u16>,
    /// `database.user`.
    pub user: Option<String>,
    /// `database.password`.
    pub password: Option<Secret>,
    /// `database.use_tls`, with the files of its `ssl` object; `None` when
    /// the key is absent.
    pub use_tls: Option<TlsSource>,
    /// The `stores` object (`{name: {protocol, location, ...}}`).
    pub stores: Map<String, Value>,
    /// The `custom` object (Spyglass keeps `spyglass_dirs` here).
    pub custom: Map<String, Value>,
}

/// A DataJoint config file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DjConfigError {
    /// Not valid JSON.
    #[error("{}:{line}:{column}: invalid JSON in DataJoint config: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// Valid JSON with a value of the wrong kind.
    #[error("{}: key '{key}' {detail}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The dotted key.
        key: String,
        /// What is wrong with it.
        detail: String,
    },
}

/// Parses the text of a DataJoint config file. `path` is used in errors.
pub fn parse(text: &str, path: &Path) -> Result<DjConfig, DjConfigError> {
    let root: Value = serde_json::from_str(text).map_err(|e| DjConfigError::Syntax {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })?;
    let Value::Object(root) = root else {
        return Err(DjConfigError::Invalid {
            path: path.to_owned(),
            key: "(top level)".into(),
            detail: "must be a JSON object".into(),
        });
    };
    let invalid = |key: &str, detail: &str| DjConfigError::Invalid {
        path: path.to_owned(),
        key: key.to_owned(),
        detail: detail.to_owned(),
    };
    // Flat dotted keys win; a nested {"database": {...}} object is accepted too.
    let get = |key: &str| -> Option<&Value> {
        root.get(key).or_else(|| {
            let (section, rest) = key.split_once('.')?;
            root.get(section)?.as_object()?.get(rest)
        })
    };
    let string = |key: &str| -> Result<Option<String>, DjConfigError> {
        match get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(key, "must be a string")),
        }
    };

    let mut cfg = DjConfig {
        path: path.to_owned(),
        ..DjConfig::default()
    };
    cfg.port = match get("database.port") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| invalid("database.port", "must be a port number (1-65535)"))?,
        ),
        Some(Value::String(s)) => Some(
            s.parse()
                .map_err(|_| invalid("database.port", "must be a port number (1-65535)"))?,
        ),
        Some(_) => return Err(invalid("database.port", "must be a port number (1-65535)")),
    };
    if let Some(host) = string("database.host")? {
        let (h, p) = split_host_port(&host).map_err(|d| invalid("database.host", &d))?;
        cfg.host = Some(h);
        if p.is_some() {
            cfg.port = p;
        }
    }
    cfg.user = string("database.user")?;
    cfg.password = string("database.password")?.map(Secret::new);
    cfg.use_tls = match get("database.use_tls") {
        None => None,
        // DataJoint's null: try TLS, then plain (no verification).
        Some(Value::Null) => Some(TlsSource::implied(TlsMode::Prefer)),
        // true: PyMySQL with `ssl={}`, encrypted and not verified.
        Some(Value::Bool(true)) => Some(TlsSource::implied(TlsMode::Require)),
        Some(Value::Bool(false)) => Some(TlsSource::explicit(TlsMode::Disable)),
        Some(Value::Object(ssl)) => {
            Some(ssl_object(ssl).map_err(|d| invalid("database.use_tls", &d))?)
        }
        Some(_) => {
            return Err(invalid(
                "database.use_tls",
                "must be null, true, false or an object of ssl parameters",
            ))
        }
    };
    cfg.stores = match root.get("stores") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(invalid("stores", "must be an object")),
    };
    cfg.custom = match root.get("custom") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(invalid("custom", "must be an object")),
    };
    Ok(cfg)
}

/// PyMySQL's `ssl` parameters, read the way PyMySQL 1.x reads them: a `ca`
/// means the chain and the host name are verified (`check_hostname` defaults
/// to true when a CA is given; false means verify-ca); `verify_mode` "none"
/// turns verification off; without a CA nothing is verified.
fn ssl_object(ssl: &Map<String, Value>) -> Result<TlsSource, String> {
    let path = |k: &str| -> Result<Option<PathBuf>, String> {
        match ssl.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(PathBuf::from(s))),
            Some(_) => Err(format!("has \"{k}\", which must be a file path")),
        }
    };
    if path("capath")?.is_some() && path("ca")?.is_none() {
        return Err("has \"capath\" (a directory of CAs), which spyglass-admin does not read: name the CA file in \"ca\"".into());
    }
    let ca = path("ca")?;
    let check_hostname = match ssl.get("check_hostname") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("has \"check_hostname\", which must be true or false".into()),
    };
    let verify = match ssl.get("verify_mode") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::Number(n)) => Some(n.as_u64() != Some(0)),
        Some(Value::String(v)) => match v.to_ascii_lowercase().as_str() {
            "none" | "0" | "false" | "no" | "cert_none" => Some(false),
            "required" | "1" | "2" | "true" | "yes" | "cert_required" | "optional"
            | "cert_optional" => Some(true),
            _ => {
                return Err(format!(
                    "has \"verify_mode\" '{v}' (expected none or required)"
                ))
            }
        },
        Some(_) => {
            return Err("has \"verify_mode\", which must be \"none\" or \"required\"".into())
        }
    };
    let mut src = match (&ca, verify) {
        (_, Some(false)) => TlsSource::explicit(TlsMode::Require),
        (Some(_), _) if check_hostname => TlsSource::explicit(TlsMode::VerifyIdentity),
        (Some(_), _) => TlsSource::explicit(TlsMode::VerifyCa),
        (None, Some(true)) => {
            return Err("asks to verify (\"verify_mode\") but names no \"ca\"".into())
        }
        (None, None) => TlsSource::implied(TlsMode::Require),
    };
    src.ca = ca;
    src.cert = path("cert")?;
    src.key = path("key")?;
    if src.key.is_none() && src.cert.is_some() {
        // PyMySQL: the key may be in the certificate file.
        src.key = src.cert.clone();
    }
    Ok(src)
}

/// Splits `host`, `host:port`, `[v6]:port`. A bare IPv6 address has no port.
pub fn split_host_port(value: &str) -> Result<(String, Option<u16>), String> {
    let bad_port = |p: &str| format!("has port '{p}', which is not a number from 1 to 65535");
    if let Some(rest) = value.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| "has an unclosed '['".to_owned())?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((h.to_owned(), Some(p.parse().map_err(|_| bad_port(p))?))),
            None => Ok((h.to_owned(), None)),
        };
    }
    match value.matches(':').count() {
        1 => {
            let (h, p) = value.split_once(':').unwrap_or((value, ""));
            let port: u16 = p.parse().map_err(|_| bad_port(p))?;
            if port == 0 {
                return Err(bad_port(p));
            }
            Ok((h.to_owned(), Some(port)))
        }
        _ => Ok((value.to_owned(), None)),
    }
}

fn strip_position(msg: &str) -> String {
    // serde_json appends " at line L column C"; we print the position ourselves.
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<DjConfig, DjConfigError> {
        parse(text, Path::new("/x/dj_local_conf.json"))
    }

    #[test]
    fn flat_keys_and_host_port() {
        let c = p(
            r#"{"database.host": "db.lab:3307", "database.user": "alice",
                     "database.password": "pw", "database.port": 3306,
                     "database.use_tls": false,
                     "stores": {"raw": {"protocol": "file", "location": "/d/raw"}},
                     "custom": {"spyglass_dirs": {"base": "/d"}}}"#,
        )
        .unwrap();
        assert_eq!(c.host.as_deref(), Some("db.lab"));
        assert_eq!(c.port, Some(3307), "host:port overrides database.port");
        assert_eq!(c.user.as_deref(), Some("alice"));
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("pw"));
        assert_eq!(c.use_tls.and_then(|t| t.mode), Some(TlsMode::Disable));
        assert!(c.stores.contains_key("raw"));
        assert!(c.custom.contains_key("spyglass_dirs"));
    }

    #[test]
    fn use_tls_values() {
        let mode = |t: &str| p(t).unwrap().use_tls.and_then(|s| s.mode);
        assert_eq!(mode(r#"{"database.use_tls": null}"#), Some(TlsMode::Prefer));
        assert_eq!(
            mode(r#"{"database.use_tls": true}"#),
            Some(TlsMode::Require)
        );
        assert_eq!(
            mode(r#"{"database.use_tls": false}"#),
            Some(TlsMode::Disable)
        );
        assert_eq!(mode(r#"{"database.use_tls": {}}"#), Some(TlsMode::Require));
        assert!(p("{}").unwrap().use_tls.is_none());
        assert!(p(r#"{"database.use_tls": "yes"}"#).is_err());
    }

    #[test]
    fn use_tls_object_is_read_like_pymysql() {
        let tls = |t: &str| p(t).unwrap().use_tls.unwrap();
        let s =
            tls(r#"{"database.use_tls": {"ca": "/ca.pem", "cert": "/c.pem", "key": "/k.pem"}}"#);
        assert_eq!(
            s.mode,
            Some(TlsMode::VerifyIdentity),
            "a CA verifies chain and host name"
        );
        assert_eq!(s.ca.as_deref(), Some(Path::new("/ca.pem")));
        assert_eq!(s.cert.as_deref(), Some(Path::new("/c.pem")));
        assert_eq!(s.key.as_deref(), Some(Path::new("/k.pem")));
        let s = tls(r#"{"database.use_tls": {"ca": "/ca.pem", "check_hostname": false}}"#);
        assert_eq!(s.mode, Some(TlsMode::VerifyCa));
        let s = tls(
            r#"{"database.use_tls": {"ca": "/ca.pem", "verify_mode": "none", "check_hostname": false}}"#,
        );
        assert_eq!(s.mode, Some(TlsMode::Require));
        let e = p(r#"{"database.use_tls": {"capath": "/etc/cas"}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("capath") && e.contains("database.use_tls"),
            "{e}"
        );
        let e = p(r#"{"database.use_tls": {"verify_mode": "required"}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no \"ca\""), "{e}");
    }

    #[test]
    fn syntax_error_names_file_line_column() {
        let e = p("{\n  \"database.host\": \"x\",\n  oops\n}").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("/x/dj_local_conf.json:3:3: invalid JSON"),
            "{msg}"
        );
    }

    #[test]
    fn bad_port_named() {
        let e = p(r#"{"database.host": "h:99999"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("database.host") && e.contains("99999"), "{e}");
        let e = p(r#"{"database.port": "abc"}"#).unwrap_err().to_string();
        assert!(e.contains("database.port"), "{e}");
    }

    #[test]
    fn ipv6_hosts() {
        assert_eq!(split_host_port("::1").unwrap(), ("::1".into(), None));
        assert_eq!(
            split_host_port("[::1]:3307").unwrap(),
            ("::1".into(), Some(3307))
        );
    }
}
