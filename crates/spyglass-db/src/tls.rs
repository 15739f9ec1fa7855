//! TLS policy: the modes, the files, how they become the driver's options,
//! why a handshake failed, and a probe that reports the server's certificate.
//!
//! Soundness rests on the patched `mysql` crate (vendor/mysql, see
//! ARCHITECTURE.md "TLS"): with a CA given, only that CA is trusted. The
//! probe ([`probe`]) is for reporting only (doctor); it never sends
//! credentials, and the connection that does is verified by the driver
//! itself during its own handshake.

use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mysql::{ClientIdentity, SslOpts};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::DbError;

/// How to use TLS, like the MySQL clients' `--ssl-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Never use TLS (`use_tls: false`, `ssl-mode=DISABLED`).
    Disable,
    /// Try TLS and fall back to plain text when the server offers none;
    /// the certificate is not verified (DataJoint's `use_tls: null`).
    #[default]
    Prefer,
    /// Fail unless TLS is established; the certificate is NOT verified.
    Require,
    /// TLS, and the server's certificate must chain to the configured CA;
    /// the host name is not checked.
    VerifyCa,
    /// Like `VerifyCa`, and the certificate must name the host we connect to.
    VerifyIdentity,
}

impl TlsMode {
    /// The spelling used by `--tls-mode` and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyIdentity => "verify-identity",
        }
    }

    /// Parses our spelling or MySQL's `ssl-mode` values (`DISABLED`,
    /// `PREFERRED`, `REQUIRED`, `VERIFY_CA`, `VERIFY_IDENTITY`), any case.
    pub fn parse(value: &str) -> Option<TlsMode> {
        match value.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "disable" | "disabled" => Some(TlsMode::Disable),
            "prefer" | "preferred" => Some(TlsMode::Prefer),
            "require" | "required" => Some(TlsMode::Require),
            "verify-ca" => Some(TlsMode::VerifyCa),
            "verify-identity" | "verify-full" => Some(TlsMode::VerifyIdentity),
            _ => None,
        }
    }

    /// True for the modes that check the server's certificate.
    pub fn verifies(self) -> bool {
        matches!(self, TlsMode::VerifyCa | TlsMode::VerifyIdentity)
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The TLS policy of a connection: the mode and the files it uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// The mode.
    pub mode: TlsMode,
    /// CA certificate(s) in PEM: with `VerifyCa`/`VerifyIdentity` the only
    /// roots trusted. Without one, `VerifyIdentity` trusts the public web roots.
    pub ca: Option<PathBuf>,
    /// Client certificate chain (PEM), for accounts created `REQUIRE X509`.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub key: Option<PathBuf>,
}

impl TlsOptions {
    /// Options with just a mode.
    pub fn mode(mode: TlsMode) -> Self {
        TlsOptions {
            mode,
            ..TlsOptions::default()
        }
    }

    /// The driver's TLS options for a TCP connection, or `None` for plain text.
    pub fn ssl_opts(&self) -> Option<SslOpts> {
        let mut o = SslOpts::default();
        match self.mode {
            TlsMode::Disable => return None,
            // Encrypt without verifying: only in the modes that say so.
            TlsMode::Prefer | TlsMode::Require => {
                o = o
                    .with_danger_accept_invalid_certs(true)
                    .with_danger_skip_domain_validation(true);
            }
            TlsMode::VerifyCa => o = o.with_danger_skip_domain_validation(true),
            TlsMode::VerifyIdentity => {}
        }
        if self.mode.verifies() {
            if let Some(ca) = &self.ca {
                o = o.with_root_cert_path(Some(ca.clone()));
            }
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            o = o.with_client_identity(Some(ClientIdentity::new(cert.clone(), key.clone())));
        }
        Some(o)
    }

    /// Checks the combination and the files before any connection: a
    /// verifying mode needs a readable CA (`VerifyCa` always; `VerifyIdentity`
    /// may use the public roots), a certificate needs its key, and a key must
    /// not be readable by other users. `origin` names where the settings came from.
    pub fn check(&self, origin: &str) -> Result<(), DbError> {
        let bad = |detail: String| DbError::Setting { detail };
        if self.mode == TlsMode::VerifyCa && self.ca.is_none() {
            return Err(bad(format!(
                "TLS mode verify-ca ({origin}) needs a CA certificate (--tls-ca, ssl-ca in ~/.my.cnf, or \"ca\" in database.use_tls)"
            )));
        }
        for (what, p) in [
            ("CA certificate", &self.ca),
            ("client certificate", &self.cert),
        ] {
            if let Some(p) = p {
                std::fs::File::open(p)
                    .map_err(|e| bad(format!("cannot read the TLS {what} {}: {e}", p.display())))?;
            }
        }
        match (&self.cert, &self.key) {
            (Some(_), None) => {
                return Err(bad(
                    "a TLS client certificate is set but no key (--tls-key, ssl-key, or \"key\")"
                        .into(),
                ))
            }
            (None, Some(_)) => return Err(bad(
                "a TLS client key is set but no certificate (--tls-cert, ssl-cert, or \"cert\")"
                    .into(),
            )),
            _ => {}
        }
        if let Some(key) = &self.key {
            check_key_file(key)?;
        }
        Ok(())
    }
}

/// A private key must be a file only its owner can read.
fn check_key_file(path: &Path) -> Result<(), DbError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| DbError::Setting {
        detail: format!("cannot read the TLS client key {}: {e}", path.display()),
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(DbError::Setting {
            detail: format!(
                "the TLS client key {} is readable by other users (mode {mode:04o}); run: chmod 600 {}",
                path.display(),
                path.display()
            ),
        });
    }
    Ok(())
}

/// The rustls error inside a driver error, if the failure was TLS's.
pub(crate) fn rustls_error(e: &mysql::Error) -> Option<&rustls::Error> {
    match e {
        mysql::Error::TlsError(t) => {
            let mut src: Option<&(dyn std::error::Error + 'static)> = Some(t);
            while let Some(s) = src {
                if let Some(r) = s.downcast_ref::<rustls::Error>() {
                    return Some(r);
                }
                src = s.source();
            }
            None
        }
        mysql::Error::IoError(io) => io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
        // The handshake runs inside the first packet write: the codec's I/O error.
        mysql::Error::CodecError(c) => std::error::Error::source(c)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<rustls::Error>()),
        _ => None,
    }
}

/// Why a TLS handshake failed, in words an admin can act on.
pub(crate) fn describe(e: &rustls::Error, tls: &TlsOptions, host: &str) -> String {
    use rustls::AlertDescription as A;
    let ca = tls
        .ca
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the public web roots".into());
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => format!(
                "unknown CA: the server's certificate is not signed by the configured CA ({ca})"
            ),
            CertificateError::NotValidForNameContext { presented, .. } => format!(
                "name mismatch: expected '{host}', the certificate holds {}",
                names_list(presented)
            ),
            CertificateError::NotValidForName => {
                format!("name mismatch: the certificate is not valid for '{host}'")
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet (check the clocks)".into()
            }
            CertificateError::Revoked => "the server's certificate is revoked".into(),
            CertificateError::BadSignature => "the server's certificate has a bad signature".into(),
            other => format!("the server's certificate was refused: {other:?}"),
        },
        rustls::Error::AlertReceived(A::CertificateRequired)
        | rustls::Error::AlertReceived(A::HandshakeFailure)
            if tls.cert.is_none() =>
        {
            "the server requires a client certificate and none is configured (--tls-cert/--tls-key)"
                .into()
        }
        rustls::Error::AlertReceived(
            a @ (A::UnknownCA | A::BadCertificate | A::CertificateUnknown),
        ) => {
            format!("the server refused our client certificate ({a:?})")
        }
        other => other.to_string(),
    }
}

fn names_list(names: &[String]) -> String {
    if names.is_empty() {
        "no names".into()
    } else {
        names
            .iter()
            .map(|n| {
                // rustls renders them as `DnsName("x")` / `IpAddress(V4(Ipv4Addr([127, 0, 0, 1])))`.
                let inner = n
                    .strip_prefix("DnsName(\"")
                    .and_then(|r| r.strip_suffix("\")"))
                    .map(str::to_owned)
                    .or_else(|| {
                        let digits: Vec<&str> = n
                            .split(|c: char| !c.is_ascii_digit())
                            .filter(|d| !d.is_empty())
                            .collect();
                        (n.starts_with("IpAddress(V4") && digits.len() >= 4)
                            .then(|| digits[digits.len() - 4..].join("."))
                    })
                    .unwrap_or_else(|| n.clone());
                format!("'{inner}'")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What the server's TLS looks like, from [`probe`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct TlsReport {
    /// Negotiated protocol, e.g. `TLSv1.3`.
    pub version: String,
    /// Negotiated cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// The certificate's subject, e.g. `CN=db.lab`.
    pub subject: String,
    /// The certificate's issuer.
    pub issuer: String,
    /// DNS names and IP addresses the certificate holds (subjectAltName).
    pub names: Vec<String>,
    /// Expiry, `YYYY-MM-DD HH:MM:SS UTC`.
    pub not_after: String,
    /// Days until expiry (negative when expired).
    pub days_left: i64,
    /// Chain verified against the configured roots: `Ok` or why not.
    /// In JSON: `{"ok": true, "error": null}` or `{"ok": false, "error": "..."}`.
    #[serde(serialize_with = "check_json")]
    pub chain: Result<(), String>,
    /// Host name verified: `Ok` or why not (JSON as for `chain`).
    #[serde(serialize_with = "check_json")]
    pub hostname: Result<(), String>,
}

fn check_json<S: serde::Serializer>(r: &Result<(), String>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut st = s.serialize_struct("Check", 2)?;
    st.serialize_field("ok", &r.is_ok())?;
    st.serialize_field("error", &r.as_ref().err())?;
    st.end()
}

/// Opens a TCP connection, asks for TLS the way a MySQL client does
/// (SSLRequest), completes the handshake, records the certificate and
/// closes. No credentials are sent. `Ok(None)` when the server offers no TLS.
pub fn probe(
    host: &str,
    port: u16,
    tls: &TlsOptions,
    timeout: Duration,
) -> Result<Option<TlsReport>, String> {
    use std::net::ToSocketAddrs;
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {host}"))?;
    let mut tcp = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 4];
    tcp.read_exact(&mut head).map_err(|e| e.to_string())?;
    let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
    let mut hello = vec![0u8; len];
    tcp.read_exact(&mut hello).map_err(|e| e.to_string())?;
    if hello.first() == Some(&0xff) {
        return Err(format!(
            "the server refused the connection: {}",
            String::from_utf8_lossy(hello.get(9..).unwrap_or_default())
        ));
    }
    // protocol version, NUL-terminated server version, thread id (4),
    // auth data part 1 (8), filler (1), capability flags (lower 2 bytes).
    let nul = hello
        .iter()
        .skip(1)
        .position(|b| *b == 0)
        .ok_or("malformed server greeting")?
        + 1;
    let caps_at = nul + 1 + 4 + 8 + 1;
    let caps = hello
        .get(caps_at..caps_at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or("malformed server greeting")?;
    const CLIENT_SSL: u32 = 0x800;
    if u32::from(caps) & CLIENT_SSL == 0 {
        return Ok(None);
    }
    // SSLRequest: capabilities, max packet, charset (utf8mb4), 23 zero bytes; sequence 1.
    let flags: u32 = 0x1 | 0x200 | CLIENT_SSL | 0x8000; // LONG_PASSWORD, PROTOCOL_41, SSL, SECURE_CONNECTION
    let mut req = vec![32u8, 0, 0, 1];
    req.extend_from_slice(&flags.to_le_bytes());
    req.extend_from_slice(&(16u32 << 20).to_le_bytes());
    req.push(45);
    req.extend_from_slice(&[0u8; 23]);
    tcp.write_all(&req).map_err(|e| e.to_string())?;

    let seen = Arc::new(Recorder::default());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .dangerous()
    .with_custom_certificate_verifier(seen.clone())
    .with_no_client_auth();
    let name = ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name.clone()).map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
    }
    let version = conn
        .protocol_version()
        .map(|v| match v {
            rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
            rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
            o => format!("{o:?}"),
        })
        .unwrap_or_default();
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|c| format!("{:?}", c.suite()))
        .unwrap_or_default();
    conn.send_close_notify();
    let _ = conn.complete_io(&mut tcp);
    let chain = seen
        .chain
        .lock()
        .map_err(|_| "internal error: poisoned lock")?
        .clone();
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err("the server presented no certificate".into());
    };
    let cert = parse_certificate(leaf).ok_or("cannot parse the server's certificate")?;
    let (chain_ok, host_ok) = verify_chain(tls, leaf, intermediates, &name, host);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    Ok(Some(TlsReport {
        version,
        cipher,
        subject: cert.subject,
        issuer: cert.issuer,
        names: cert.names,
        not_after: format_time(cert.not_after),
        days_left: (cert.not_after - now).div_euclid(86_400),
        chain: chain_ok,
        hostname: host_ok,
    }))
}

/// Verifies the recorded chain the way the driver would for `tls`.
fn verify_chain(
    tls: &TlsOptions,
    leaf: &CertificateDer<'static>,
    intermediates: &[CertificateDer<'static>],
    name: &ServerName<'static>,
    host: &str,
) -> (Result<(), String>, Result<(), String>) {
    let mut roots = RootCertStore::empty();
    match &tls.ca {
        Some(ca) => {
            let pem = match std::fs::read(ca) {
                Ok(p) => p,
                Err(e) => {
                    let m = format!("cannot read {}: {e}", ca.display());
                    return (Err(m.clone()), Err(m));
                }
            };
            for c in rustls_pemfile::certs(&mut &pem[..]).flatten() {
                let _ = roots.add(c);
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        match WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build() {
            Ok(v) => v,
            Err(e) => return (Err(e.to_string()), Err(e.to_string())),
        };
    match verifier.verify_server_cert(leaf, intermediates, name, &[], UnixTime::now()) {
        Ok(_) => (Ok(()), Ok(())),
        Err(
            e @ rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ),
        ) => (Ok(()), Err(describe(&e, tls, host))),
        Err(e) => {
            let m = describe(&e, tls, host);
            (Err(m), Err("not checked (the chain failed)".into()))
        }
    }
}

/// Accepts any certificate and keeps it: the probe reports, it does not trust.
#[derive(Debug, Default)]
struct Recorder {
    chain: Mutex<Vec<CertificateDer<'static>>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut c) = self.chain.lock() {
            c.clear();
            c.push(end_entity.clone().into_owned());
            c.extend(intermediates.iter().map(|i| i.clone().into_owned()));
        }
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The parts of an X.509 certificate the report shows.
#[derive(Debug, PartialEq, Eq)]
struct CertSummary {
    subject: String,
    issuer: String,
    names: Vec<String>,
    not_after: i64,
}

/// One DER element: (tag, contents, rest).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, b| a << 8 | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn parse_certificate(cert: &[u8]) -> Option<CertSummary> {
    let (_, body, _) = der(cert)?; // Certificate
    let (_, tbs, _) = der(body)?; // TBSCertificate
    let (mut tag, mut val, mut rest) = der(tbs)?;
    if tag == 0xa0 {
        (tag, val, rest) = der(rest)?; // version present: next is the serial
    }
    let _ = (tag, val);
    let (_, _sigalg, rest) = der(rest)?;
    let (_, issuer, rest) = der(rest)?;
    let (_, validity, rest) = der(rest)?;
    let (_, subject, rest) = der(rest)?;
    let (_, _spki, mut rest) = der(rest)?;
    let (_, _not_before, after) = der(validity)?;
    let (ttag, tval, _) = der(after)?;
    let not_after = parse_time(ttag, tval)?;
    let mut names = Vec::new();
    while let Some((tag, val, next)) = der(rest) {
        rest = next;
        if tag != 0xa3 {
            continue;
        }
        let (_, mut exts, _) = der(val)?;
        while let Some((_, ext, next)) = der(exts) {
            exts = next;
            let (_, oid, mut more) = der(ext)?;
            if oid != [0x55, 0x1d, 0x11] {
                continue; // not subjectAltName
            }
            let (mut t, mut v, m) = der(more)?;
            more = m;
            if t == 0x01 {
                (t, v, _) = der(more)?; // critical flag
            }
            let _ = t;
            let (_, mut gns, _) = der(v)?;
            while let Some((gt, gv, next)) = der(gns) {
                gns = next;
                match (gt, gv.len()) {
                    (0x82, _) => names.push(String::from_utf8_lossy(gv).into_owned()),
                    (0x87, 4) => names.push(format!("{}.{}.{}.{}", gv[0], gv[1], gv[2], gv[3])),
                    (0x87, 16) => {
                        let mut b = [0u8; 16];
                        b.copy_from_slice(gv);
                        names.push(std::net::Ipv6Addr::from(b).to_string());
                    }
                    _ => {}
                }
            }
        }
    }
    Some(CertSummary {
        subject: name_string(subject),
        issuer: name_string(issuer),
        names,
        not_after,
    })
}

/// `CN=x, O=y` from a DER Name.
fn name_string(mut name: &[u8]) -> String {
    let mut parts = Vec::new();
    while let Some((_, set, next)) = der(name) {
        name = next;
        let mut set = set;
        while let Some((_, atv, next)) = der(set) {
            set = next;
            let Some((_, oid, rest)) = der(atv) else {
                continue;
            };
            let Some((_, value, _)) = der(rest) else {
                continue;
            };
            let key = match oid {
                [0x55, 0x04, 0x03] => "CN".to_owned(),
                [0x55, 0x04, 0x06] => "C".to_owned(),
                [0x55, 0x04, 0x07] => "L".to_owned(),
                [0x55, 0x04, 0x08] => "ST".to_owned(),
                [0x55, 0x04, 0x0a] => "O".to_owned(),
                [0x55, 0x04, 0x0b] => "OU".to_owned(),
                other => other.iter().map(|b| format!("{b:02x}")).collect(),
            };
            parts.push(format!("{key}={}", String::from_utf8_lossy(value)));
        }
    }
    parts.join(", ")
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) to Unix seconds.
fn parse_time(tag: u8, v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let y: i64 = s.get(0..2)?.parse().ok()?;
            (if y < 50 { 2000 + y } else { 1900 + y }, s.get(2..)?)
        }
        0x18 => (s.get(0..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    let n = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (mo, d, h, mi, se) = (n(0)?, n(2)?, n(4)?, n(6)?, n(8)?);
    Some(days_from_civil(year, mo, d) * 86_400 + h * 3600 + mi * 60 + se)
}

/// Days since 1970-01-01 (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn format_time(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_both_spellings() {
        assert_eq!(
            TlsMode::parse("VERIFY_IDENTITY"),
            Some(TlsMode::VerifyIdentity)
        );
        assert_eq!(TlsMode::parse("verify-ca"), Some(TlsMode::VerifyCa));
        assert_eq!(TlsMode::parse("Required"), Some(TlsMode::Require));
        assert_eq!(TlsMode::parse("disabled"), Some(TlsMode::Disable));
        assert_eq!(TlsMode::parse("sometimes"), None);
    }

    #[test]
    fn only_unverified_modes_accept_invalid_certificates() {
        // SslOpts exposes its flags through getters.
        for mode in [TlsMode::VerifyCa, TlsMode::VerifyIdentity] {
            let o = TlsOptions {
                mode,
                ca: Some("/ca.pem".into()),
                ..TlsOptions::default()
            }
            .ssl_opts()
            .unwrap();
            assert!(!o.accept_invalid_certs(), "{mode}");
            assert_eq!(o.root_cert_path(), Some(Path::new("/ca.pem")));
            assert_eq!(o.skip_domain_validation(), mode == TlsMode::VerifyCa);
        }
        let o = TlsOptions::mode(TlsMode::Require).ssl_opts().unwrap();
        assert!(o.accept_invalid_certs());
        assert!(TlsOptions::mode(TlsMode::Disable).ssl_opts().is_none());
    }

    #[test]
    fn verify_ca_needs_a_ca_and_keys_must_be_private() {
        let e = TlsOptions::mode(TlsMode::VerifyCa)
            .check("--tls-mode")
            .unwrap_err();
        assert!(e.to_string().contains("needs a CA"), "{e}");
        let dir = tempfile_dir();
        let key = dir.join("client-key.pem");
        std::fs::write(&key, "k").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let o = TlsOptions {
            mode: TlsMode::Require,
            cert: Some(key.clone()),
            key: Some(key.clone()),
            ..TlsOptions::default()
        };
        let e = o.check("x").unwrap_err().to_string();
        assert!(
            e.contains("readable by other users") && e.contains("chmod 600"),
            "{e}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        o.check("x").unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("spyglass-db-tls-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn presented_names_read_plainly() {
        let n = names_list(&[
            "DnsName(\"db.lab\")".into(),
            "IpAddress(V4(Ipv4Addr([127, 0, 0, 1])))".into(),
        ]);
        assert_eq!(n, "'db.lab', '127.0.0.1'");
    }

    #[test]
    fn reads_subject_names_and_expiry_of_a_certificate() {
        // Made with: openssl req -x509 -newkey ec ... -subj "/O=Lab/CN=db.lab"
        //   -addext "subjectAltName=DNS:db.lab,IP:127.0.0.1" -days 1000
        let pem = include_bytes!("../testdata/cert-with-san.pem");
        let der = rustls_pemfile::certs(&mut &pem[..])
            .next()
            .unwrap()
            .unwrap();
        let c = parse_certificate(&der).unwrap();
        assert_eq!(c.subject, "O=Lab, CN=db.lab");
        assert_eq!(c.issuer, "O=Lab, CN=db.lab");
        assert_eq!(c.names, vec!["db.lab".to_owned(), "127.0.0.1".to_owned()]);
        assert_eq!(format_time(c.not_after), "2029-08-28 01:37:47 UTC");
    }

    #[test]
    fn times() {
        assert_eq!(parse_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(
            parse_time(0x18, b"20261202013000Z")
                .map(format_time)
                .as_deref(),
            Some("2026-12-02 01:30:00 UTC")
        );
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00:00 UTC");
    }
}
