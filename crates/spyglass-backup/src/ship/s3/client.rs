//! The few S3 requests a ship target needs, over a synchronous HTTP client
//! (ureq, rustls with ring) with SigV4 signing ([`super::sign`]): list,
//! head, get, put, copy, delete and the multipart calls. Connection errors,
//! 5xx and 429 are retried with exponential backoff; a 4xx is an error
//! naming the bucket and key with the store's code and message.

use std::io::Read;
use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::sign::{self, Signer, EMPTY_SHA256};
use super::Resolved;
use crate::compress::hex;
use crate::ship::ShipError;

/// Attempts for one request (the first and the retries).
const ATTEMPTS: u32 = 5;
/// The first retry waits this long; every next one twice as long.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// A bucket on an S3 endpoint, with credentials.
pub(super) struct Client {
    agent: ureq::Agent,
    r: Resolved,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.r.endpoint_host)
            .field("bucket", &self.r.bucket)
            .finish_non_exhaustive()
    }
}

/// One response, body read.
pub(super) struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A request before signing.
pub(super) struct Req<'a> {
    pub method: &'static str,
    /// Object key (empty: the bucket itself).
    pub key: &'a str,
    pub query: Vec<(&'a str, String)>,
    /// Extra headers; `x-amz-*` ones are signed.
    pub headers: Vec<(&'static str, String)>,
    pub body: &'a [u8],
    /// What the request does, for errors ("uploading", "listing"...).
    pub what: &'static str,
}

impl<'a> Req<'a> {
    pub fn new(method: &'static str, key: &'a str, what: &'static str) -> Self {
        Req {
            method,
            key,
            query: Vec::new(),
            headers: Vec::new(),
            body: &[],
            what,
        }
    }
}

/// The rustls error behind a failed request, if the TLS handshake failed:
/// ureq hands it over as its own variant, or (during the handshake, as
/// ureq 3 does) wrapped in an I/O error.
fn tls_error(e: &ureq::Error) -> Option<&rustls::Error> {
    match e {
        ureq::Error::Rustls(r) => Some(r),
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>(),
        _ => None,
    }
}

/// What went wrong on one attempt.
enum Failure {
    /// No answer: connection refused, reset, timed out.
    Transport(String),
    /// The TLS handshake failed (a certificate not trusted, or not the
    /// host's): trying again changes nothing. True: not trusted.
    Tls(String, bool),
    /// An answer with an error status.
    Status(Resp),
}

impl Client {
    pub(super) fn new(r: Resolved) -> Result<Client, ShipError> {
        let mut cfg = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(300)))
            .max_idle_connections_per_host(64)
            .user_agent(concat!("spyglass-admin/", env!("CARGO_PKG_VERSION")));
        if r.https {
            if let Some(ca) = &r.ca_file {
                let pem = std::fs::read(ca).map_err(super::super::io_err("reading", ca))?;
                let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
                    .filter_map(|i| match i {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                        _ => None,
                    })
                    .collect();
                if certs.is_empty() {
                    return Err(ShipError::BadTarget {
                        target: format!("s3://{}", r.bucket),
                        detail: format!("the CA file {} holds no certificate", ca.display()),
                    });
                }
                cfg = cfg.tls_config(
                    ureq::tls::TlsConfig::builder()
                        .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                        .build(),
                );
            }
        } else {
            // Plain http: no TLS settings apply.
            cfg = cfg.https_only(false);
        }
        Ok(Client {
            agent: cfg.build().new_agent(),
            r,
        })
    }

    /// The endpoint, for messages.
    pub(super) fn host(&self) -> String {
        self.r.endpoint_host.clone()
    }

    fn path_and_host(&self, key: &str) -> (String, String) {
        let k = sign::uri_encode(key, true);
        if self.r.path_style {
            (
                format!("{}/{}/{k}", self.r.base_path, self.r.bucket),
                self.r.endpoint_host.clone(),
            )
        } else {
            (
                format!("{}/{k}", self.r.base_path),
                format!("{}.{}", self.r.bucket, self.r.endpoint_host),
            )
        }
    }

    fn store_err(&self, req: &Req<'_>, resp: &Resp) -> ShipError {
        let text = String::from_utf8_lossy(&resp.body);
        let code = xml_value(&text, "Code").unwrap_or_else(|| match resp.status {
            403 => "AccessDenied".into(),
            404 if req.key.is_empty() => "NoSuchBucket".into(),
            404 => "NoSuchKey".into(),
            s => format!("HTTP {s}"),
        });
        let message = xml_value(&text, "Message").unwrap_or_default();
        ShipError::Store {
            host: self.host(),
            what: format!("{} s3://{}/{}", req.what, self.r.bucket, req.key),
            status: resp.status,
            detail: if message.is_empty() {
                code.clone()
            } else {
                format!("{code}: {message}")
            },
            code,
        }
    }

    /// Sends `req` once; the body of a good answer is handed to `read`.
    fn attempt<T>(
        &self,
        req: &Req<'_>,
        read: &mut dyn FnMut(&mut dyn Read) -> std::io::Result<T>,
    ) -> Result<(Resp, Option<T>), Failure> {
        let (path, host) = self.path_and_host(req.key);
        let query: Vec<(&str, &str)> = req.query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let query = sign::canonical_query(&query);
        let payload = if req.body.is_empty() {
            EMPTY_SHA256.to_owned()
        } else {
            hex(&Sha256::digest(req.body))
        };
        let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let mut signed: Vec<(String, String)> = vec![
            ("host".into(), host.clone()),
            ("x-amz-content-sha256".into(), payload.clone()),
            ("x-amz-date".into(), amz_date.clone()),
        ];
        if let Some(t) = &self.r.session_token {
            signed.push(("x-amz-security-token".into(), t.clone()));
        }
        for (k, v) in &req.headers {
            if k.starts_with("x-amz-") {
                signed.push(((*k).into(), v.clone()));
            }
        }
        let auth = Signer {
            access_key_id: &self.r.access_key_id,
            secret: &self.r.secret,
            region: &self.r.region,
        }
        .authorization(req.method, &path, &query, &signed, &payload, &amz_date);
        let url = format!(
            "{}://{host}{path}{}{query}",
            if self.r.https { "https" } else { "http" },
            if query.is_empty() { "" } else { "?" }
        );
        let mut b = ureq::http::Request::builder()
            .method(req.method)
            .uri(&url)
            .header("authorization", auth);
        for (k, v) in signed.iter().filter(|(k, _)| k != "host") {
            b = b.header(k.as_str(), v.as_str());
        }
        for (k, v) in req.headers.iter().filter(|(k, _)| !k.starts_with("x-amz-")) {
            b = b.header(*k, v.as_str());
        }
        let request = b
            .body(req.body)
            .map_err(|e| Failure::Transport(e.to_string()))?;
        let mut resp = self.agent.run(request).map_err(|e| match tls_error(&e) {
            Some(r) => {
                let untrusted = matches!(
                    r,
                    rustls::Error::InvalidCertificate(
                        rustls::CertificateError::UnknownIssuer
                            | rustls::CertificateError::BadSignature
                    )
                );
                Failure::Tls(r.to_string(), untrusted)
            }
            None => Failure::Transport(e.to_string()),
        })?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
        if (200..300).contains(&status) {
            let got = read(&mut reader).map_err(|e| Failure::Transport(e.to_string()))?;
            Ok((
                Resp {
                    status,
                    headers,
                    body: Vec::new(),
                },
                Some(got),
            ))
        } else {
            let mut body = Vec::new();
            let _ = reader.take(1 << 20).read_to_end(&mut body);
            let r = Resp {
                status,
                headers,
                body,
            };
            Err(Failure::Status(r))
        }
    }

    /// Sends `req` with retries; a good answer's body goes through `read`.
    pub(super) fn call_with<T>(
        &self,
        req: &Req<'_>,
        mut read: impl FnMut(&mut dyn Read) -> std::io::Result<T>,
    ) -> Result<(Resp, T), ShipError> {
        let mut wait = FIRST_BACKOFF;
        let mut last = String::new();
        for n in 0..ATTEMPTS {
            if n > 0 {
                std::thread::sleep(wait);
                wait *= 2;
            }
            match self.attempt(req, &mut read) {
                Ok((r, Some(t))) => return Ok((r, t)),
                Ok((_, None)) => unreachable!(),
                Err(Failure::Transport(e)) => last = e,
                Err(Failure::Tls(detail, untrusted)) => {
                    return Err(ShipError::Tls {
                        host: self.host(),
                        detail: format!(
                            "{} s3://{}/{}: {detail}",
                            req.what, self.r.bucket, req.key
                        ),
                        untrusted,
                    })
                }
                Err(Failure::Status(r)) if r.status >= 500 || r.status == 429 => {
                    if n + 1 == ATTEMPTS {
                        return Err(self.store_err(req, &r));
                    }
                }
                Err(Failure::Status(r)) => return Err(self.store_err(req, &r)),
            }
        }
        Err(ShipError::Unreachable {
            host: self.host(),
            detail: format!(
                "{} s3://{}/{}: {last} (after {ATTEMPTS} attempts)",
                req.what, self.r.bucket, req.key
            ),
        })
    }

    /// Sends `req`; the whole body in memory (small answers only).
    pub(super) fn call(&self, req: &Req<'_>) -> Result<Resp, ShipError> {
        let (mut r, body) = self.call_with(req, |rd| {
            let mut v = Vec::new();
            rd.read_to_end(&mut v)?;
            Ok(v)
        })?;
        r.body = body;
        Ok(r)
    }

    /// `(key, size)` of every object under `prefix`.
    pub(super) fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, ShipError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = Req::new("GET", "", "listing");
            req.query = vec![("list-type", "2".into()), ("prefix", prefix.into())];
            if let Some(t) = &token {
                req.query.push(("continuation-token", t.clone()));
            }
            let r = self.call(&req)?;
            let text = String::from_utf8_lossy(&r.body);
            for c in xml_blocks(&text, "Contents") {
                if let Some(k) = xml_value(c, "Key") {
                    let size = xml_value(c, "Size")
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    out.push((k, size));
                }
            }
            token = xml_value(&text, "NextContinuationToken");
            if xml_value(&text, "IsTruncated").as_deref() != Some("true") || token.is_none() {
                return Ok(out);
            }
        }
    }

    /// Uploads `body` as the object `key` with its sha256 as a stored
    /// whole-object checksum (the store checks the bytes against it).
    pub(super) fn put(&self, key: &str, body: &[u8], sha: &[u8]) -> Result<(), ShipError> {
        let mut req = Req::new("PUT", key, "uploading");
        req.body = body;
        req.headers.push((
            "x-amz-checksum-sha256",
            base64::engine::general_purpose::STANDARD.encode(sha),
        ));
        self.call(&req).map(drop)
    }

    /// The stored whole-object sha256 (hex) of `key`, when the store kept one
    /// (objects sent by one PUT with a checksum; not multipart uploads).
    pub(super) fn stored_sha256(&self, key: &str) -> Result<Option<String>, ShipError> {
        let mut req = Req::new("HEAD", key, "checking");
        req.headers.push(("x-amz-checksum-mode", "ENABLED".into()));
        let r = self.call(&req)?;
        let composite = r
            .header("x-amz-checksum-type")
            .is_some_and(|t| t.eq_ignore_ascii_case("COMPOSITE"));
        Ok(r.header("x-amz-checksum-sha256")
            .filter(|v| !composite && !v.contains('-'))
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .filter(|b| b.len() == 32)
            .map(|b| hex(&b)))
    }

    /// Reads the object `key` through `read`.
    pub(super) fn get_with<T>(
        &self,
        key: &str,
        read: impl FnMut(&mut dyn Read) -> std::io::Result<T>,
    ) -> Result<T, ShipError> {
        self.call_with(&Req::new("GET", key, "reading"), read)
            .map(|(_, t)| t)
    }

    /// True when the object `key` exists.
    pub(super) fn exists(&self, key: &str) -> Result<bool, ShipError> {
        match self.call(&Req::new("HEAD", key, "checking")) {
            Ok(_) => Ok(true),
            Err(ShipError::Store { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Server-side copy of `from` to `to` in the bucket.
    pub(super) fn copy(&self, from: &str, to: &str) -> Result<(), ShipError> {
        let mut req = Req::new("PUT", to, "copying");
        req.headers.push((
            "x-amz-copy-source",
            format!("/{}/{}", self.r.bucket, sign::uri_encode(from, true)),
        ));
        let r = self.call(&req)?;
        // A copy can fail after the 200 status line: the error is in the body.
        let text = String::from_utf8_lossy(&r.body);
        if text.contains("<Error>") {
            return Err(self.store_err(
                &req,
                &Resp {
                    status: 500,
                    headers: Vec::new(),
                    body: r.body.clone(),
                },
            ));
        }
        Ok(())
    }

    pub(super) fn delete(&self, key: &str) -> Result<(), ShipError> {
        match self.call(&Req::new("DELETE", key, "removing")) {
            Ok(_) | Err(ShipError::Store { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Starts a multipart upload of `key`; its upload id.
    pub(super) fn create_multipart(&self, key: &str) -> Result<String, ShipError> {
        let mut req = Req::new("POST", key, "starting a multipart upload of");
        req.query = vec![("uploads", String::new())];
        let r = self.call(&req)?;
        xml_value(&String::from_utf8_lossy(&r.body), "UploadId").ok_or_else(|| {
            self.store_err(
                &req,
                &Resp {
                    status: 500,
                    headers: Vec::new(),
                    body: b"<Code>NoUploadId</Code>".to_vec(),
                },
            )
        })
    }

    /// Uploads part `number` of an upload; its ETag.
    pub(super) fn upload_part(
        &self,
        key: &str,
        upload: &str,
        number: u32,
        body: &[u8],
    ) -> Result<String, ShipError> {
        let mut req = Req::new("PUT", key, "uploading a part of");
        req.query = vec![
            ("partNumber", number.to_string()),
            ("uploadId", upload.into()),
        ];
        req.body = body;
        let r = self.call(&req)?;
        Ok(r.header("etag").unwrap_or_default().to_owned())
    }

    pub(super) fn complete_multipart(
        &self,
        key: &str,
        upload: &str,
        parts: &[(u32, String)],
    ) -> Result<(), ShipError> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (n, etag) in parts {
            xml.push_str(&format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag></Part>",
                xml_escape(etag)
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let mut req = Req::new("POST", key, "completing the multipart upload of");
        req.query = vec![("uploadId", upload.into())];
        req.body = xml.as_bytes();
        let r = self.call(&req)?;
        if String::from_utf8_lossy(&r.body).contains("<Error>") {
            return Err(self.store_err(
                &req,
                &Resp {
                    status: 500,
                    headers: Vec::new(),
                    body: r.body.clone(),
                },
            ));
        }
        Ok(())
    }

    pub(super) fn abort_multipart(&self, key: &str, upload: &str) -> Result<(), ShipError> {
        let mut req = Req::new("DELETE", key, "aborting the multipart upload of");
        req.query = vec![("uploadId", upload.into())];
        match self.call(&req) {
            Ok(_) | Err(ShipError::Store { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `(key, upload id)` of the unfinished multipart uploads under `prefix`.
    pub(super) fn list_multipart(&self, prefix: &str) -> Result<Vec<(String, String)>, ShipError> {
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut req = Req::new("GET", "", "listing the unfinished uploads in");
            req.query = vec![("uploads", String::new()), ("prefix", prefix.into())];
            if let Some((k, u)) = &markers {
                req.query.push(("key-marker", k.clone()));
                req.query.push(("upload-id-marker", u.clone()));
            }
            let r = self.call(&req)?;
            let text = String::from_utf8_lossy(&r.body);
            for u in xml_blocks(&text, "Upload") {
                if let (Some(k), Some(id)) = (xml_value(u, "Key"), xml_value(u, "UploadId")) {
                    out.push((k, id));
                }
            }
            let next = (
                xml_value(&text, "NextKeyMarker"),
                xml_value(&text, "NextUploadIdMarker"),
            );
            match (xml_value(&text, "IsTruncated").as_deref(), next) {
                (Some("true"), (Some(k), Some(u))) => markers = Some((k, u)),
                _ => return Ok(out),
            }
        }
    }
}

/// The text of every `<tag>...</tag>` in `xml` (not nested in itself).
pub(super) fn xml_blocks<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(&after[..j]);
        rest = &after[j + close.len()..];
    }
    out
}

/// The first `<tag>` value in `xml`, unescaped.
pub(super) fn xml_value(xml: &str, tag: &str) -> Option<String> {
    xml_blocks(xml, tag).first().map(|v| xml_unescape(v))
}

fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(end) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let ent = &tail[1..end];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => out.push(c),
            None => out.push_str(&tail[..=end]),
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_list_answers() {
        let x = "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a/b&amp;c</Key><Size>3</Size></Contents>\
                 <Contents><Key>d</Key><Size>10</Size></Contents><NextContinuationToken>t&#x2F;1</NextContinuationToken></ListBucketResult>";
        let keys: Vec<(String, String)> = xml_blocks(x, "Contents")
            .iter()
            .map(|c| (xml_value(c, "Key").unwrap(), xml_value(c, "Size").unwrap()))
            .collect();
        assert_eq!(
            keys,
            [("a/b&c".into(), "3".into()), ("d".into(), "10".into())]
        );
        assert_eq!(xml_value(x, "NextContinuationToken").unwrap(), "t/1");
        assert_eq!(xml_escape("\"e&t\""), "&quot;e&amp;t&quot;");
    }
}
