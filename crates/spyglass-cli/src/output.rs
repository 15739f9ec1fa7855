//! Exit codes, error reports and JSON printing.

use std::io::Write;

use spyglass_db::DbError;

/// Documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: success, nothing to report.
    Success,
    /// 1: the command ran and found problems, findings or warnings.
    Findings,
    /// 2: the command could not do its job.
    Error,
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(s: ExitStatus) -> Self {
        std::process::ExitCode::from(match s {
            ExitStatus::Success => 0,
            ExitStatus::Findings => 1,
            ExitStatus::Error => 2,
        })
    }
}

/// An error of the user's making, with what to do about it.
#[derive(Debug)]
pub struct UserError {
    pub message: String,
    pub hint: Option<String>,
}

impl UserError {
    pub fn new(message: impl Into<String>) -> Self {
        UserError {
            message: message.into(),
            hint: None,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

/// A hint for well-known library errors, so every command gives the same advice.
pub fn hint_for(err: &anyhow::Error) -> Option<String> {
    for cause in err.chain() {
        if let Some(u) = cause.downcast_ref::<UserError>() {
            return u.hint.clone();
        }
        if let Some(db) = cause.downcast_ref::<DbError>() {
            return Some(match db {
                DbError::AccessDenied { .. } => "check the user and password: --user/DJ_USER/database.user, and DJ_PASS, database.password, --password-file or --ask-password".into(),
                DbError::Unreachable { .. } | DbError::Timeout { .. } => "is the server running and listening there? Check --host/--port, DJ_HOST/DJ_PORT or database.host in the DataJoint config".into(),
                DbError::TlsRequired { .. } => "the server does not offer TLS; set database.use_tls to null or false (or --tls-mode prefer), or enable TLS on the server".into(),
                DbError::Tls { .. } => "check the CA (--tls-ca, ssl-ca in ~/.my.cnf, \"ca\" in database.use_tls) and the host name you connect to; `spyglass-admin doctor` shows the certificate the server presents".into(),
                _ => return None,
            });
        }
        if cause
            .downcast_ref::<spyglass_db::dj_config::DjConfigError>()
            .is_some()
        {
            return Some("fix the DataJoint config file at the position shown (it must be a JSON object with flat dotted keys such as \"database.host\")".into());
        }
    }
    None
}

/// Prints `error: ...`, the causes, and a hint to stderr.
pub fn print_error(err: &anyhow::Error) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {err}");
    let causes: Vec<String> = err.chain().skip(1).map(|c| c.to_string()).collect();
    if !causes.is_empty() {
        let _ = writeln!(stderr, "  Caused by:");
        for c in causes {
            let _ = writeln!(stderr, "    {c}");
        }
    }
    if let Some(h) = hint_for(err) {
        let _ = writeln!(stderr, "hint: {h}");
    }
}

/// Writes `value` as pretty JSON to stdout; a closed pipe is not an error.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    // Buffered: stdout alone is line-buffered, one write per JSON line.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let r = serde_json::to_writer_pretty(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|_| writeln!(out))
        .and_then(|_| out.flush());
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// Writes text to stdout; a closed pipe is not an error.
pub fn print_out(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// Bytes in binary units for people: `512 B`, `1.5 MiB`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}
