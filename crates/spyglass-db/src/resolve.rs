//! Resolving connection settings from the places a lab keeps them. For each
//! setting the first source that has it wins: flags, environment (`DJ_HOST`,
//! `DJ_USER`, `DJ_PASS`, `DJ_PORT`, `SPYGLASS_TLS_*`), the DataJoint config
//! file, `~/.my.cnf` `[client]`.
//!
//! This module does no environment or file reading of its own: the caller
//! reads the files and passes the environment as a lookup function, so the
//! precedence is unit-tested here. (It only looks at file modes, to warn
//! about a password file others can read.)
//!
//! TLS follows the same order field by field (mode, CA, certificate, key),
//! with one rule on top: a CA is checked. When no source chose a mode
//! explicitly (`--tls-mode`, `ssl-mode`, `ssl-verify-server-cert`, a
//! `use_tls` object or `false`), a CA from any source selects the verifying
//! mode that source implies (PyMySQL and our flags: verify-identity; a
//! `~/.my.cnf` `ssl-ca` alone: verify-ca, as the MySQL client does).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::dj_config::{self, DjConfig};
use crate::{ConnectOptions, DbError, Endpoint, Secret, TlsMode, TlsOptions};

/// TLS settings as one source gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSource {
    /// The mode, if the source says one.
    pub mode: Option<TlsMode>,
    /// True when the mode was chosen on purpose (`--tls-mode`, `ssl-mode`, a
    /// `use_tls` object); false for defaults such as DataJoint's
    /// `use_tls: true`, which a CA from another source upgrades to verifying.
    pub explicit: bool,
    /// The mode a CA from this source implies when no mode was chosen.
    pub ca_mode: Option<TlsMode>,
    /// CA file.
    pub ca: Option<PathBuf>,
    /// Client certificate.
    pub cert: Option<PathBuf>,
    /// Client key.
    pub key: Option<PathBuf>,
}

impl TlsSource {
    /// A mode that is only a default.
    pub fn implied(mode: TlsMode) -> Self {
        TlsSource {
            mode: Some(mode),
            ..TlsSource::default()
        }
    }
    /// A mode chosen on purpose.
    pub fn explicit(mode: TlsMode) -> Self {
        TlsSource {
            mode: Some(mode),
            explicit: true,
            ..TlsSource::default()
        }
    }

    /// The TLS options of a `~/.my.cnf` `[client]` section (keys normalised
    /// to `_`): MySQL's `ssl-mode`, MariaDB's `ssl-verify-server-cert` and
    /// `ssl`/`skip-ssl`, and `ssl-ca`, `ssl-cert`, `ssl-key`.
    pub fn from_mycnf(values: &BTreeMap<String, String>) -> Result<TlsSource, String> {
        let mut s = TlsSource {
            ca_mode: Some(TlsMode::VerifyCa),
            ..TlsSource::default()
        };
        let on = |v: &str| matches!(v.to_ascii_lowercase().as_str(), "" | "1" | "on" | "true");
        if let Some(v) = values.get("ssl_mode") {
            s.mode = Some(
                TlsMode::parse(v)
                    .ok_or_else(|| format!("ssl-mode '{v}' is not DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY"))?,
            );
            s.explicit = true;
        } else if values.get("ssl_verify_server_cert").is_some_and(|v| on(v)) {
            s.mode = Some(TlsMode::VerifyIdentity);
            s.explicit = true;
        } else if values.contains_key("skip_ssl") || values.get("ssl").is_some_and(|v| !on(v)) {
            s.mode = Some(TlsMode::Disable);
            s.explicit = true;
        }
        if values.contains_key("ssl_capath") && !values.contains_key("ssl_ca") {
            return Err("ssl-capath (a directory of CAs) is not read by spyglass-admin: name the CA file with ssl-ca".into());
        }
        let path = |k: &str| values.get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        s.ca = path("ssl_ca");
        s.cert = path("ssl_cert");
        s.key = path("ssl_key");
        Ok(s)
    }
}

/// Flag values (already parsed by the binary's argument parser).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `--host` (`host:port` accepted).
    pub host: Option<String>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--user`.
    pub user: Option<String>,
    /// `--socket`.
    pub socket: Option<PathBuf>,
    /// A password the binary obtained (password file, prompt), and where from.
    pub password: Option<(Secret, String)>,
    /// `--tls-mode`.
    pub tls_mode: Option<TlsMode>,
    /// `--tls-ca`.
    pub tls_ca: Option<PathBuf>,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
}

/// A parsed `~/.my.cnf`.
#[derive(Debug, Clone, Default)]
pub struct MyCnf {
    /// The file.
    pub path: PathBuf,
    /// Its `[client]` section ([`crate::mycnf::parse_client_section`]).
    pub values: BTreeMap<String, String>,
}

/// Everything resolution looks at.
pub struct Inputs<'a> {
    /// Flag values.
    pub flags: &'a Flags,
    /// Environment lookup (`|k| std::env::var(k).ok()` in the binary).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The DataJoint config, if one was found.
    pub dj: Option<&'a DjConfig>,
    /// `~/.my.cnf`, if found.
    pub mycnf: Option<&'a MyCnf>,
}

impl std::fmt::Debug for Inputs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inputs")
            .field("flags", self.flags)
            .field("dj", &self.dj)
            .field("mycnf", &self.mycnf.map(|m| &m.path))
            .finish_non_exhaustive()
    }
}

/// The outcome.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// Options to connect with.
    pub options: ConnectOptions,
    /// Where each setting came from: (setting, source).
    pub origins: Vec<(&'static str, String)>,
    /// Problems that do not stop us (a readable password file, a CA that
    /// an unverified mode does not check).
    pub warnings: Vec<String>,
    /// True when some source supplied a password (even an empty one).
    pub password_given: bool,
}

fn setting(detail: String) -> DbError {
    DbError::Setting { detail }
}

/// Resolves connection settings; see the module documentation for the order.
pub fn resolve(inp: &Inputs<'_>) -> Result<Resolution, DbError> {
    let flags = inp.flags;
    let env = |k: &str| (inp.env)(k).filter(|v| !v.is_empty());
    let mut origins: Vec<(&'static str, String)> = Vec::new();
    let mut warnings = Vec::new();
    let dj = inp.dj;
    let dj_name = |what: &str| {
        format!(
            "{} ({what})",
            dj.map(|d| d.path.display().to_string()).unwrap_or_default()
        )
    };
    let empty = BTreeMap::new();
    let cnf = inp.mycnf.map(|m| &m.values).unwrap_or(&empty);
    let cnf_name = |k: &str| {
        format!(
            "{} [client] {k}",
            inp.mycnf
                .map(|m| m.path.display().to_string())
                .unwrap_or_default()
        )
    };

    // Host (and a port it may carry).
    let mut host_port: Option<u16> = None;
    let mut pick_host =
        |value: String, origin: String, origins: &mut Vec<(&'static str, String)>| {
            let (h, p) = dj_config::split_host_port(&value)
                .map_err(|d| setting(format!("host '{value}' from {origin} {d}")))?;
            if p.is_some() {
                host_port = p;
            }
            origins.push(("host", origin));
            Ok::<_, DbError>(h)
        };
    let host = if let Some(h) = &flags.host {
        pick_host(h.clone(), "--host".into(), &mut origins)?
    } else if let Some(h) = env("DJ_HOST") {
        pick_host(h, "DJ_HOST".into(), &mut origins)?
    } else if let Some(h) = dj.and_then(|d| d.host.clone()) {
        // The DataJoint parser already split host:port into host and port.
        origins.push(("host", dj_name("database.host")));
        h
    } else if let Some(h) = cnf.get("host") {
        pick_host(h.clone(), cnf_name("host"), &mut origins)?
    } else {
        origins.push(("host", "default".into()));
        "localhost".into()
    };

    let parse_port = |v: &str, origin: &str| -> Result<u16, DbError> {
        v.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                setting(format!(
                    "port '{v}' from {origin} is not a number from 1 to 65535"
                ))
            })
    };
    let port = if let Some(p) = flags.port {
        origins.push(("port", "--port".into()));
        p
    } else if let Some(p) = host_port {
        origins.push(("port", "host:port".into()));
        p
    } else if let Some(p) = env("DJ_PORT") {
        origins.push(("port", "DJ_PORT".into()));
        parse_port(&p, "DJ_PORT")?
    } else if let Some(p) = dj.and_then(|d| d.port) {
        origins.push(("port", dj_name("database.port")));
        p
    } else if let Some(p) = cnf.get("port") {
        origins.push(("port", cnf_name("port")));
        parse_port(p, &cnf_name("port"))?
    } else {
        origins.push(("port", "default".into()));
        3306
    };

    let user = if let Some(u) = &flags.user {
        origins.push(("user", "--user".into()));
        u.clone()
    } else if let Some(u) = env("DJ_USER") {
        origins.push(("user", "DJ_USER".into()));
        u
    } else if let Some(u) = dj.and_then(|d| d.user.clone()) {
        origins.push(("user", dj_name("database.user")));
        u
    } else if let Some(u) = cnf.get("user") {
        origins.push(("user", cnf_name("user")));
        u.clone()
    } else if let Some(u) = env("USER") {
        origins.push(("user", "login name".into()));
        u
    } else {
        return Err(setting(
            "no user name given: pass --user, set DJ_USER, or set database.user in the DataJoint config".into(),
        ));
    };

    let socket = match (&flags.socket, cnf.get("socket")) {
        (Some(s), _) => Some(s.clone()),
        // A my.cnf socket only applies when nothing chose a TCP host explicitly.
        (None, Some(s)) if origins.iter().any(|(k, o)| *k == "host" && o == "default") => {
            Some(PathBuf::from(s))
        }
        _ => None,
    };

    let mut password = None;
    // Lower sources a chosen password overrides, named so a refused login
    // says that, e.g., DJ_PASS won over database.password in the DataJoint file.
    // `level`: 0 flag, 1 DJ_PASS, 2 DataJoint file, 3 ~/.my.cnf.
    let overridden = |above: &str, level: u8| -> String {
        let mut lower = Vec::new();
        if level < 1 && (inp.env)("DJ_PASS").is_some() {
            lower.push("DJ_PASS".to_owned());
        }
        if level < 2 && dj.is_some_and(|d| d.password.is_some()) {
            lower.push(dj_name("database.password"));
        }
        if level < 3 && cnf.contains_key("password") {
            lower.push(cnf_name("password"));
        }
        if lower.is_empty() {
            above.to_owned()
        } else {
            format!("{above}, which overrides {}", lower.join(" and "))
        }
    };
    if let Some((p, origin)) = &flags.password {
        password = Some(p.clone());
        origins.push(("password", overridden(origin, 0)));
    } else if let Some(p) = (inp.env)("DJ_PASS") {
        password = Some(Secret::new(p));
        origins.push(("password", overridden("DJ_PASS", 1)));
    } else if let Some(p) = dj.and_then(|d| d.password.clone()) {
        if let Some(d) = dj {
            warn_if_readable(&d.path, &mut warnings);
        }
        password = Some(p);
        origins.push(("password", overridden(&dj_name("database.password"), 2)));
    } else if let Some(p) = cnf.get("password") {
        if let Some(m) = inp.mycnf {
            warn_if_readable(&m.path, &mut warnings);
        }
        password = Some(Secret::new(p.clone()));
        origins.push(("password", cnf_name("password")));
    }
    let password_given = password.is_some();
    let password_source = origins
        .iter()
        .find(|(k, _)| *k == "password")
        .map(|(_, o)| o.clone());

    let tls = resolve_tls(inp, &mut origins, &mut warnings)?;
    let mut options = ConnectOptions::tcp(host, port, user).tls_options(tls);
    options.password = password;
    options.password_source = password_source;
    if let Some(s) = socket {
        options.endpoint = Endpoint::Socket(s);
        origins.push(("socket", "--socket or my.cnf".into()));
    }
    Ok(Resolution {
        options,
        origins,
        warnings,
        password_given,
    })
}

fn resolve_tls(
    inp: &Inputs<'_>,
    origins: &mut Vec<(&'static str, String)>,
    warnings: &mut Vec<String>,
) -> Result<TlsOptions, DbError> {
    let flags = inp.flags;
    let env = |k: &str| (inp.env)(k).filter(|v| !v.is_empty());
    let flag_src = TlsSource {
        mode: flags.tls_mode,
        explicit: flags.tls_mode.is_some(),
        ca_mode: Some(TlsMode::VerifyIdentity),
        ca: flags.tls_ca.clone(),
        cert: flags.tls_cert.clone(),
        key: flags.tls_key.clone(),
    };
    let env_mode = match env("SPYGLASS_TLS_MODE") {
        Some(v) => Some(TlsMode::parse(&v).ok_or_else(|| {
            setting(format!(
                "SPYGLASS_TLS_MODE '{v}' is not disable, prefer, require, verify-ca or verify-identity"
            ))
        })?),
        None => None,
    };
    let env_src = TlsSource {
        mode: env_mode,
        explicit: env_mode.is_some(),
        ca_mode: Some(TlsMode::VerifyIdentity),
        ca: env("SPYGLASS_TLS_CA").map(PathBuf::from),
        cert: env("SPYGLASS_TLS_CERT").map(PathBuf::from),
        key: env("SPYGLASS_TLS_KEY").map(PathBuf::from),
    };
    let dj_src = inp.dj.and_then(|d| d.use_tls.clone()).map(|mut s| {
        s.ca_mode = Some(TlsMode::VerifyIdentity);
        s
    });
    let cnf_src = match inp.mycnf {
        Some(m) => Some(
            TlsSource::from_mycnf(&m.values)
                .map_err(|d| setting(format!("{} [client]: {d}", m.path.display())))?,
        ),
        None => None,
    };
    let dj_name = |k: &str| {
        format!(
            "{} (database.use_tls{k})",
            inp.dj
                .map(|d| d.path.display().to_string())
                .unwrap_or_default()
        )
    };
    let cnf_name = |k: &str| {
        format!(
            "{} [client] {k}",
            inp.mycnf
                .map(|m| m.path.display().to_string())
                .unwrap_or_default()
        )
    };
    // (source, names for mode/ca/cert/key) in precedence order.
    let sources: Vec<(TlsSource, [String; 4])> = [
        Some((
            flag_src,
            ["--tls-mode", "--tls-ca", "--tls-cert", "--tls-key"].map(String::from),
        )),
        Some((
            env_src,
            [
                "SPYGLASS_TLS_MODE",
                "SPYGLASS_TLS_CA",
                "SPYGLASS_TLS_CERT",
                "SPYGLASS_TLS_KEY",
            ]
            .map(String::from),
        )),
        dj_src.map(|s| {
            (
                s,
                [
                    dj_name(""),
                    dj_name(".ca"),
                    dj_name(".cert"),
                    dj_name(".key"),
                ],
            )
        }),
        cnf_src.map(|s| {
            (
                s,
                [
                    cnf_name("ssl-mode"),
                    cnf_name("ssl-ca"),
                    cnf_name("ssl-cert"),
                    cnf_name("ssl-key"),
                ],
            )
        }),
    ]
    .into_iter()
    .flatten()
    .collect();

    let mut out = TlsOptions::default();
    let mut pick = |get: &dyn Fn(&TlsSource) -> Option<PathBuf>, i: usize, what: &'static str| {
        sources
            .iter()
            .find_map(|(s, names)| get(s).inspect(|_| origins.push((what, names[i].clone()))))
    };
    out.ca = pick(&|s| s.ca.clone(), 1, "tls ca");
    out.cert = pick(&|s| s.cert.clone(), 2, "tls cert");
    out.key = pick(&|s| s.key.clone(), 3, "tls key");
    let explicit = sources.iter().find(|(s, _)| s.explicit && s.mode.is_some());
    let ca_source = sources.iter().find(|(s, _)| s.ca.is_some());
    let implied = sources.iter().find(|(s, _)| s.mode.is_some());
    let (mode, origin) = match (explicit, ca_source, implied) {
        (Some((s, n)), _, _) => (s.mode.unwrap_or_default(), n[0].clone()),
        (None, Some((s, n)), _) => (
            s.ca_mode.unwrap_or(TlsMode::VerifyIdentity),
            format!("{} given", n[1]),
        ),
        (None, None, Some((s, n))) => (s.mode.unwrap_or_default(), n[0].clone()),
        (None, None, None) => (TlsMode::Prefer, "default".into()),
    };
    out.mode = mode;
    origins.push(("tls mode", origin.clone()));
    if let Some(ca) = &out.ca {
        if !mode.verifies() && mode != TlsMode::Disable {
            warnings.push(format!(
                "TLS mode {mode} ({origin}) does not check the server's certificate: the CA {} is not used; choose --tls-mode verify-identity to check it",
                ca.display()
            ));
        }
    }
    Ok(out)
}

fn warn_if_readable(path: &Path, warnings: &mut Vec<String>) {
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o044 != 0 {
            warnings.push(format!(
                "{} holds a password and is readable by other users (mode {mode:04o}); run: chmod 600 {}",
                path.display(),
                path.display()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn dj(text: &str) -> DjConfig {
        dj_config::parse(text, Path::new("/lab/dj_local_conf.json")).unwrap()
    }

    fn cnf(text: &str) -> MyCnf {
        MyCnf {
            path: PathBuf::from("/home/u/.my.cnf"),
            values: crate::mycnf::parse_client_section(text),
        }
    }

    fn run(
        flags: &Flags,
        env: &dyn Fn(&str) -> Option<String>,
        d: Option<&DjConfig>,
        m: Option<&MyCnf>,
    ) -> Resolution {
        resolve(&Inputs {
            flags,
            env,
            dj: d,
            mycnf: m,
        })
        .unwrap()
    }

    fn origin<'a>(r: &'a Resolution, k: &str) -> &'a str {
        r.origins
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, o)| o.as_str())
            .unwrap_or("")
    }

    #[test]
    fn flags_beat_env_beat_datajoint_beat_mycnf() {
        let d = dj(
            r#"{"database.host": "dj.lab", "database.port": 3307, "database.user": "djuser", "database.password": "djpw"}"#,
        );
        let m = cnf("[client]\nhost=cnf.lab\nport=3308\nuser=cnfuser\npassword=cnfpw\n");
        let none = env_of(&[]);
        // my.cnf alone
        let r = run(&Flags::default(), &none, None, Some(&m));
        assert_eq!(
            r.options.endpoint,
            Endpoint::Tcp {
                host: "cnf.lab".into(),
                port: 3308
            }
        );
        assert_eq!(r.options.user, "cnfuser");
        assert_eq!(
            r.options.password.as_ref().map(Secret::expose),
            Some("cnfpw")
        );
        // DataJoint over my.cnf
        let r = run(&Flags::default(), &none, Some(&d), Some(&m));
        assert_eq!(
            r.options.endpoint,
            Endpoint::Tcp {
                host: "dj.lab".into(),
                port: 3307
            }
        );
        assert_eq!(r.options.user, "djuser");
        assert_eq!(
            r.options.password.as_ref().map(Secret::expose),
            Some("djpw")
        );
        assert!(origin(&r, "host").contains("database.host"));
        // environment over DataJoint
        let e = env_of(&[
            ("DJ_HOST", "env.lab"),
            ("DJ_PORT", "3309"),
            ("DJ_USER", "envuser"),
            ("DJ_PASS", ""),
        ]);
        let r = run(&Flags::default(), &e, Some(&d), Some(&m));
        assert_eq!(
            r.options.endpoint,
            Endpoint::Tcp {
                host: "env.lab".into(),
                port: 3309
            }
        );
        assert_eq!(r.options.user, "envuser");
        assert_eq!(
            r.options.password.as_ref().map(Secret::expose),
            Some(""),
            "an empty DJ_PASS is a password"
        );
        // flags over everything
        let f = Flags {
            host: Some("flag.lab:3310".into()),
            user: Some("flaguser".into()),
            password: Some((Secret::new("filepw"), "--password-file /p".into())),
            ..Flags::default()
        };
        let r = run(&f, &e, Some(&d), Some(&m));
        assert_eq!(
            r.options.endpoint,
            Endpoint::Tcp {
                host: "flag.lab".into(),
                port: 3310
            }
        );
        assert_eq!(origin(&r, "port"), "host:port");
        assert_eq!(r.options.user, "flaguser");
        assert_eq!(
            r.options.password.as_ref().map(Secret::expose),
            Some("filepw")
        );
        // defaults
        let r = run(&Flags::default(), &env_of(&[("USER", "login")]), None, None);
        assert_eq!(
            r.options.endpoint,
            Endpoint::Tcp {
                host: "localhost".into(),
                port: 3306
            }
        );
        assert_eq!(r.options.user, "login");
        assert!(!r.password_given);
        assert_eq!(r.options.tls.mode, TlsMode::Prefer);
    }

    #[test]
    fn the_password_source_names_what_it_overrides_never_the_password() {
        let d = dj(r#"{"database.user": "u", "database.password": "djpw"}"#);
        let m = cnf("[client]\npassword=cnfpw\n");
        let e = env_of(&[("DJ_PASS", "envpw")]);
        let r = run(&Flags::default(), &e, Some(&d), Some(&m));
        let src = r.options.password_source.clone().unwrap();
        assert_eq!(
            src,
            "DJ_PASS, which overrides /lab/dj_local_conf.json (database.password) and /home/u/.my.cnf [client] password"
        );
        assert_eq!(origin(&r, "password"), src);
        assert!(!src.contains("envpw") && !src.contains("djpw") && !src.contains("cnfpw"));
        let r = run(&Flags::default(), &env_of(&[]), Some(&d), None);
        assert_eq!(
            r.options.password_source.as_deref(),
            Some("/lab/dj_local_conf.json (database.password)")
        );
        let r = run(&Flags::default(), &env_of(&[("USER", "x")]), None, Some(&m));
        assert_eq!(
            r.options.password_source.as_deref(),
            Some("/home/u/.my.cnf [client] password")
        );
        let f = Flags {
            password: Some((Secret::new("filepw"), "--password-file /p".into())),
            ..Flags::default()
        };
        let r = run(&f, &env_of(&[("USER", "x")]), None, None);
        assert_eq!(
            r.options.password_source.as_deref(),
            Some("--password-file /p")
        );
        let r = run(&Flags::default(), &env_of(&[("USER", "x")]), None, None);
        assert_eq!(r.options.password_source, None);
    }

    #[test]
    fn bad_values_name_their_source() {
        let e = resolve(&Inputs {
            flags: &Flags::default(),
            env: &env_of(&[("DJ_PORT", "x"), ("USER", "u")]),
            dj: None,
            mycnf: None,
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("DJ_PORT"), "{e}");
        let m = cnf("[client]\nssl-mode=SOMETIMES\n");
        let e = resolve(&Inputs {
            flags: &Flags::default(),
            env: &env_of(&[("USER", "u")]),
            dj: None,
            mycnf: Some(&m),
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains(".my.cnf") && e.contains("ssl-mode"), "{e}");
    }

    #[test]
    fn tls_from_each_source() {
        let u = env_of(&[("USER", "u")]);
        // DataJoint ssl object: CA means verify-identity.
        let d = dj(
            r#"{"database.use_tls": {"ca": "/lab/ca.pem", "cert": "/lab/c.pem", "key": "/lab/k.pem"}}"#,
        );
        let r = run(&Flags::default(), &u, Some(&d), None);
        assert_eq!(r.options.tls.mode, TlsMode::VerifyIdentity);
        assert_eq!(r.options.tls.ca.as_deref(), Some(Path::new("/lab/ca.pem")));
        assert_eq!(r.options.tls.key.as_deref(), Some(Path::new("/lab/k.pem")));
        // my.cnf: MySQL spelling, and MariaDB's verify flag.
        let m = cnf("[client]\nssl-ca=/etc/ca.pem\nssl-mode=VERIFY_CA\n");
        assert_eq!(
            run(&Flags::default(), &u, None, Some(&m)).options.tls.mode,
            TlsMode::VerifyCa
        );
        let m = cnf("[client]\nssl-ca=/etc/ca.pem\nssl-verify-server-cert\n");
        assert_eq!(
            run(&Flags::default(), &u, None, Some(&m)).options.tls.mode,
            TlsMode::VerifyIdentity
        );
        // ssl-ca alone: verify-ca, as the MySQL client does.
        let m = cnf("[client]\nssl-ca=/etc/ca.pem\n");
        let r = run(&Flags::default(), &u, None, Some(&m));
        assert_eq!(r.options.tls.mode, TlsMode::VerifyCa);
        assert!(origin(&r, "tls mode").contains("ssl-ca"), "{:?}", r.origins);
        // env over files
        let e = env_of(&[
            ("USER", "u"),
            ("SPYGLASS_TLS_MODE", "verify-identity"),
            ("SPYGLASS_TLS_CA", "/env/ca.pem"),
        ]);
        let r = run(&Flags::default(), &e, Some(&d), Some(&m));
        assert_eq!(r.options.tls.mode, TlsMode::VerifyIdentity);
        assert_eq!(r.options.tls.ca.as_deref(), Some(Path::new("/env/ca.pem")));
        assert_eq!(origin(&r, "tls ca"), "SPYGLASS_TLS_CA");
        // flags over env
        let f = Flags {
            tls_mode: Some(TlsMode::VerifyCa),
            tls_ca: Some("/flag/ca.pem".into()),
            ..Flags::default()
        };
        let r = run(&f, &e, Some(&d), Some(&m));
        assert_eq!(r.options.tls.mode, TlsMode::VerifyCa);
        assert_eq!(r.options.tls.ca.as_deref(), Some(Path::new("/flag/ca.pem")));
        assert_eq!(origin(&r, "tls mode"), "--tls-mode");
    }

    #[test]
    fn a_ca_upgrades_an_implied_mode_but_not_an_explicit_one() {
        let u = env_of(&[("USER", "u")]);
        // use_tls: true is PyMySQL's unverified default; a CA flag makes it verify.
        let d = dj(r#"{"database.use_tls": true}"#);
        let f = Flags {
            tls_ca: Some("/ca.pem".into()),
            ..Flags::default()
        };
        let r = run(&f, &u, Some(&d), None);
        assert_eq!(r.options.tls.mode, TlsMode::VerifyIdentity);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        // An explicit require keeps the CA unchecked, and says so.
        let f = Flags {
            tls_mode: Some(TlsMode::Require),
            tls_ca: Some("/ca.pem".into()),
            ..Flags::default()
        };
        let r = run(&f, &u, None, None);
        assert_eq!(r.options.tls.mode, TlsMode::Require);
        assert!(
            r.warnings.iter().any(|w| w.contains("does not check")),
            "{:?}",
            r.warnings
        );
        // use_tls: false wins over a lower my.cnf CA.
        let d = dj(r#"{"database.use_tls": false}"#);
        let m = cnf("[client]\nssl-ca=/etc/ca.pem\n");
        assert_eq!(
            run(&Flags::default(), &u, Some(&d), Some(&m))
                .options
                .tls
                .mode,
            TlsMode::Disable
        );
    }
}
