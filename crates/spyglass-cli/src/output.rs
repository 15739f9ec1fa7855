//! Exit codes, error reports and JSON printing.

use std::io::Write;

use spyglass_backup::ship::ShipError;
use spyglass_cleanup::{CleanupError, Guard};
use spyglass_db::DbError;
use spyglass_jobs::JobError;

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

/// The advice for a cleanup guard's refusal.
pub fn guard_hint(g: Guard) -> &'static str {
    match g {
        Guard::EmptyTrackedSet => "check that the DataJoint config points at the lab's database and the right directories; nothing tracked next to files usually means a test or new database against a production directory",
        Guard::StoreNotConfigured => "add the store to stores in the DataJoint config (or narrow [cleanup] schemas); without its location its files cannot be protected",
        Guard::MaxFraction => "look at `spyglass-admin cleanup scan --list`; if that much really should go, raise --max-fraction (or [cleanup] max_fraction) or use --only",
        Guard::StoreDirMismatch => "make stores.<name>.location in the DataJoint config equal the Spyglass directory (custom.spyglass_dirs / SPYGLASS_<KEY>_DIR)",
        Guard::QuarantinePlacement => "choose a --quarantine directory outside the stores but on the same file system (e.g. under the Spyglass base)",
        Guard::Privileges => "run as an account with DELETE (and INSERT, for restore) on those schemas, or leave the row classes out (--only untracked,empty,untracked_dir,stale_temp)",
        _ => "see the README section on cleanup guards",
    }
}

/// A hint for well-known library errors, so every command gives the same
/// advice. The one place hints for library errors are chosen: the libraries
/// name concepts (`[cleanup] max_fraction`, "the thread count"), and the hint
/// adds the command-line flag. Errors the CLI makes itself (a missing
/// argument) carry their hint in their [`UserError`].
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
        if let Some(j) = cause.downcast_ref::<JobError>() {
            let hint = match j {
                JobError::SettingsMissing { .. } => "check --config or SPYGLASS_ADMIN_CONFIG",
                JobError::Settings { .. } => "remove or correct that key; the README lists every setting",
                JobError::Missing { job: "nightly", .. } => "add [backup] destination = \"/data/mysql-backups\" (and keep_*, ship_to) to the settings file",
                JobError::Invalid { key: "level", .. } => "gzip takes level 0-12, zstd 1-19",
                JobError::Busy { .. } => "let it finish (cron can overlap when a run takes longer than the interval)",
                JobError::NoStores => "run where dj_local_conf.json is (or set ~/.datajoint_config.json), with custom.spyglass_dirs.base or SPYGLASS_BASE_DIR set",
                JobError::NoQuarantine => "pass --quarantine DIR or set [cleanup] quarantine in spyglass-admin.toml",
                JobError::MaxFraction(_) => "give --max-fraction (or [cleanup] max_fraction) between 0 and 1",
                _ => continue,
            };
            return Some(hint.into());
        }
        if let Some(e) = cause.downcast_ref::<spyglass_privileges::Error>() {
            use spyglass_privileges::Error as E;
            return Some(match e {
                E::Invalid { .. } => "nothing was changed; correct the value and run again".into(),
                E::RoleMissing { role } => format!(
                    "create the roles first: spyglass-admin users roles init (creates {role})"
                ),
                E::SelfHarm { .. } => "nothing was changed; run it as another admin account, or leave this account out".into(),
                E::AccountExists { account, .. } => format!(
                    "nothing was changed; to change its role run: spyglass-admin users set-role {} ROLE",
                    if account.host == "%" {
                        account.user.clone()
                    } else {
                        format!("{}@{}", account.user, account.host)
                    }
                ),
                E::Insufficient { .. } => "run it as an account that holds these (a server administrator such as root, or one granted them WITH GRANT OPTION); dj_admin is a DataJoint administrator, not a server administrator: see the README, \"What dj_admin can and cannot do\"".into(),
                E::NoSuchAccount { .. } => "spyglass-admin users list shows the accounts; create one with users add NAME --role ROLE".into(),
                _ => continue,
            });
        }
        if let Some(e) = cause.downcast_ref::<spyglass_backup::Error>() {
            use spyglass_backup::Error as E;
            let hint = match e {
                E::NothingSelected(_) => "check --schemas and --exclude (or [nightly] schemas and exclude); backup list SET shows what a set holds",
                E::Rename(_) => "each --rename FROM=TO must match a schema being restored and give it a name of its own (not mysql, sys, information_schema or performance_schema)",
                _ => continue,
            };
            return Some(hint.into());
        }
        if let Some(CleanupError::Refused { guard, .. }) = cause.downcast_ref::<CleanupError>() {
            return Some(guard_hint(*guard).into());
        }
        if let Some(e) = cause.downcast_ref::<ShipError>() {
            let hint = match e {
                ShipError::Unreachable { detail, .. } if detail.contains(" s3://") => "is the endpoint right ([s3] endpoint or AWS_ENDPOINT_URL) and the store up?",
                ShipError::Unreachable { .. } => "is the host up and sshd listening on that port? Try: ssh -p PORT user@host true",
                ShipError::AuthFailed { .. } => "check --identity (or [backup] identity) and that its public key is in the remote account's ~/.ssh/authorized_keys",
                ShipError::HostKey { fix: Some(_), .. } => "compare the fingerprint with the server's own before running that command; ship never accepts a host key by itself",
                ShipError::HostKey { .. } => "connect once by hand (ssh -p PORT user@host) to check and accept the host key; ship never accepts one by itself",
                ShipError::Tls { untrusted: true, .. } => "the endpoint's certificate is signed by a CA this machine does not trust: set [s3] ca_file (or AWS_CA_BUNDLE) to that CA's PEM file",
                ShipError::Tls { .. } => "check that the endpoint's certificate names the host in [s3] endpoint and is valid today",
                ShipError::Fetch { .. } => "backup list TARGET shows the sets there and their state",
                ShipError::DiskFull { .. } => "free space on the target (backup prune ssh://... with a policy) and ship again; the transfer resumes",
                ShipError::Mismatch { .. } => "the target stores different bytes than were sent: check its disk; the partial copy was left there and the local set kept",
                ShipError::TargetDamaged { .. } => "ship again with --repair to send the damaged files again, after checking the target's disk",
                ShipError::BadTarget { .. } => "targets look like ssh://backup@nas.lab:22/srv/mysql-backups or /mnt/nas/mysql-backups",
                ShipError::Store { code, .. } => match code.as_str() {
                    "NoSuchBucket" => "the bucket must exist (the store's administrator creates it); check the name in s3://BUCKET/prefix",
                    "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied" | "InvalidClientTokenId" => "check the S3 credentials ([s3] in spyglass-admin.toml, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or the ~/.aws/credentials profile) and that the key may read and write the bucket",
                    "AuthorizationHeaderMalformed" => "check the region ([s3] region or AWS_REGION)",
                    _ => continue,
                },
                _ => continue,
            };
            return Some(hint.into());
        }
    }
    None
}

/// One `Caused by:` line. The driver prints a server error as
/// `MySqlError { ERROR 1146 (42S02): ... }`, a Rust struct form: print the
/// plain words instead.
fn cause_text(cause: &(dyn std::error::Error + 'static)) -> String {
    // Also boxed, as a restore's `Load` error holds it.
    let driver = cause
        .downcast_ref::<spyglass_db::mysql::Error>()
        .or_else(|| {
            cause
                .downcast_ref::<Box<spyglass_db::mysql::Error>>()
                .map(|b| &**b)
        });
    match driver {
        Some(spyglass_db::mysql::Error::MySqlError(m)) => {
            format!(
                "the server said: ERROR {} ({}): {}",
                m.code, m.state, m.message
            )
        }
        _ => cause.to_string(),
    }
}

/// Prints `error: ...`, the causes, and a hint to stderr.
pub fn print_error(err: &anyhow::Error) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {err}");
    let causes: Vec<String> = err.chain().skip(1).map(cause_text).collect();
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
pub use spyglass_jobs::human_bytes;
