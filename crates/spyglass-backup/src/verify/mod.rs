//! Checking a set: every file present, with the manifest's size and sha256,
//! every compressed stream complete; optionally restored and compared.

use std::path::{Path, PathBuf};

use serde::Serialize;
use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::{quote, ConnectOptions};

use crate::manifest::Manifest;
use crate::progress::Progress;
use crate::restore::{self, RestoreOptions};
use crate::set::{MANIFEST, VERIFY_RECORD, VERIFY_RECORD_TMP};
use crate::Error;

mod dir;
mod tar;

pub(crate) use tar::split_entry;
pub use tar::verify_tar;

/// One problem found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// The file (or the set, for set-level problems).
    pub path: PathBuf,
    /// What is wrong.
    pub detail: String,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The set.
    pub set: PathBuf,
    /// Files checked.
    pub files: usize,
    /// Bytes read.
    pub bytes: u64,
    /// Tables compared after a restore (with `restore_into`).
    pub tables_compared: usize,
    /// Everything wrong; empty means the set is good.
    pub problems: Vec<Problem>,
    /// After a restore: the triggers and stored functions it could not
    /// create, because the binary log is on and the account lacks SUPER
    /// (see [`crate::restore::RestoreSummary::skipped`]): the restore
    /// checked everything else, not these.
    pub not_restored: Vec<String>,
    /// Scratch schemas an earlier, killed restore drill left (listed in its
    /// ledger) that this one dropped before it started.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub leftovers_dropped: Vec<String>,
}

/// One sentence for [`VerifyReport::not_restored`] when it is not empty:
/// what the restore left out, why, and the server setting that lets it in.
pub fn not_restored_text(not_restored: &[String]) -> Option<String> {
    if not_restored.is_empty() {
        return None;
    }
    Some(format!(
        "{} trigger(s)/stored function(s) not restored, so not checked ({}): the binary log is on and the restoring account lacks SUPER; \
         `SET GLOBAL log_bin_trust_function_creators = 1` (and the same in the server's configuration) lets it create them",
        not_restored.len(),
        not_restored.join(", ")
    ))
}

/// What verify says about a file the set holds but its manifest does not list.
pub(crate) const UNLISTED: &str =
    "not listed in the manifest (a set holds only the manifest's files, manifest.json, RESTORE.txt and verify.json)";

/// Problems of the manifest itself, found without reading any file.
pub(crate) fn manifest_problems(m: &Manifest, set: &Path) -> Vec<Problem> {
    let mut out = Vec::new();
    if m.files.is_empty() {
        out.push(Problem {
            path: set.join(MANIFEST),
            detail: "lists no files: nothing in this set can be checked or restored".into(),
        });
    }
    for s in &m.schemas {
        if !m.files.iter().any(|f| f.schema.as_ref() == Some(s)) {
            out.push(Problem {
                path: set.join(MANIFEST),
                detail: format!("lists schema `{s}` but no file of it"),
            });
        }
    }
    out
}

/// Checks every file of `set`. Never stops at the first bad file: the report names them all.
/// `set` may also be a packed set (a `.tar` file from [`crate::pack::pack`]).
pub fn verify(set: &Path, progress: &dyn Progress) -> Result<VerifyReport, Error> {
    if set.is_file() {
        return verify_tar(set, progress);
    }
    dir::verify_dir(set, progress)
}

/// The result of the last `backup verify` of a set, kept in
/// [`VERIFY_RECORD`] beside the manifest (never in it: every verify rewrites
/// it, and pack and ship leave it out, since it describes this copy).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct VerifyRecord {
    /// When the verify finished, RFC 3339 UTC.
    pub verified: String,
    /// No problem found.
    pub good: bool,
    /// Problems found.
    pub problems: usize,
    /// The first problem, for `backup list`.
    pub first_problem: Option<String>,
    /// Files checked.
    pub files: usize,
    /// Whether the set was also restored and compared (`--restore`).
    pub restored: bool,
    /// Tables compared after the restore.
    pub tables_compared: usize,
    /// `spyglass-admin` version that verified it.
    pub tool_version: String,
}

/// Records `report` as the set's last verify result ([`VERIFY_RECORD`],
/// written to a temporary name and renamed over the old one).
pub fn record(set: &Path, report: &VerifyReport, restored: bool) -> Result<VerifyRecord, Error> {
    let rec = VerifyRecord {
        verified: crate::names::rfc3339(crate::names::now_unix()),
        good: report.problems.is_empty(),
        problems: report.problems.len(),
        first_problem: report
            .problems
            .first()
            .map(|p| format!("{}: {}", p.path.display(), p.detail)),
        files: report.files,
        restored,
        tables_compared: report.tables_compared,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let text = serde_json::to_string_pretty(&rec)
        .map_err(|e| Error::Invalid(format!("serializing the verify record: {e}")))?;
    let tmp = set.join(VERIFY_RECORD_TMP);
    std::fs::write(&tmp, text + "\n").map_err(Error::io("writing", &tmp))?;
    let path = set.join(VERIFY_RECORD);
    std::fs::rename(&tmp, &path).map_err(Error::io("renaming into place", &path))?;
    Ok(rec)
}

/// The set's last verify result, when it has a readable one.
pub fn last_record(set: &Path) -> Option<VerifyRecord> {
    let text = std::fs::read_to_string(set.join(VERIFY_RECORD)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Restores `set` into schemas `<prefix><schema>` on `connect`, compares row
/// counts (and checksums, when the manifest has them) with the manifest,
/// then drops those schemas, whatever happened: an error names any it could
/// not drop. Schemas of those names that exist before it starts are never
/// touched: it refuses to run.
///
/// `ledger`, when given, is a file that lists the schemas this drill is
/// about to create, written before the first one is and removed once they
/// are dropped. A run that was killed in between (power loss, SIGKILL) leaves
/// it behind; the next run drops the schemas it lists that still exist (and
/// only those whose names start with `prefix`: they are provably ours), says
/// so in [`VerifyReport::leftovers_dropped`], then goes on. A schema of a
/// target name that no ledger lists is still never touched.
pub fn verify_by_restoring(
    connect: &ConnectOptions,
    set: &Path,
    prefix: &str,
    threads: usize,
    ledger: Option<&Path>,
    report: &mut VerifyReport,
    progress: &dyn Progress,
) -> Result<(), Error> {
    let manifest: Manifest = crate::set::open(set)?;
    let renames = restore::prefix_renames(&manifest, prefix);
    let opts = RestoreOptions {
        schemas: Vec::new(),
        rename: renames.clone(),
        threads,
        force: false,
        with_accounts: false,
        binlog: false,
        // Scratch schemas: an account that may not set other definers
        // (the nightly's own) still restores every view and trigger.
        definer_fallback: true,
        source: None,
    };
    // Connected first, so the schemas it makes can always be dropped; and
    // only those: a schema of that name that is already there is not ours
    // (the restore refuses to run then).
    let mut s = spyglass_db::connect(connect)?;
    if let Some(ledger) = ledger {
        report.leftovers_dropped = drop_ledger_leftovers(&mut s, ledger, prefix)?;
    }
    let before = schema_names(&mut s)?;
    // A bad plan (a system schema as a target, two onto one) stops here.
    restore::plan(&manifest, set, &opts)?;
    if let Some(ledger) = ledger {
        let mine: Vec<&str> = renames
            .iter()
            .map(|(_, new)| new.as_str())
            .filter(|t| !before.iter().any(|b| b == t))
            .collect();
        write_ledger(ledger, &mine)?;
    }
    let result = restore::restore(connect, set, &opts, progress);
    if let Err(e @ Error::SchemasExist { .. }) = result {
        // Refused before anything was created: there is nothing of ours to drop.
        return Err(e);
    }
    if let Err(e) = &result {
        report.problems.push(Problem {
            path: set.to_owned(),
            detail: format!("restore failed: {e}"),
        });
    } else {
        compare(&mut s, &manifest, &renames, set, report);
    }
    if let Ok(summary) = &result {
        report.not_restored.clone_from(&summary.skipped);
    }
    let targets: Vec<String> = renames
        .into_iter()
        .map(|(_, new)| new)
        .filter(|t| !before.contains(t))
        .collect();
    drop_verify_schemas(&mut s, &targets)?;
    if let Some(ledger) = ledger {
        remove_ledger(ledger)?;
    }
    result.map(|_| ())
}

/// Drops the schemas a killed run's ledger lists that still exist and start
/// with `prefix`, then removes the ledger. Returns the dropped names.
fn drop_ledger_leftovers(
    s: &mut spyglass_db::Session,
    ledger: &Path,
    prefix: &str,
) -> Result<Vec<String>, Error> {
    let text = match std::fs::read_to_string(ledger) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("reading", ledger)(e)),
    };
    let existing = schema_names(s)?;
    let ours: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && l.starts_with(prefix) && l.len() > prefix.len())
        .filter(|l| existing.iter().any(|e| e == l))
        .map(str::to_owned)
        .collect();
    drop_verify_schemas(s, &ours)?;
    remove_ledger(ledger)?;
    Ok(ours)
}

fn write_ledger(ledger: &Path, schemas: &[&str]) -> Result<(), Error> {
    use std::io::Write;
    let mut text = String::new();
    for t in schemas {
        text.push_str(t);
        text.push('\n');
    }
    let tmp = ledger.with_extension("partial");
    let mut f = std::fs::File::create(&tmp).map_err(Error::io("writing", &tmp))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(Error::io("writing", &tmp))?;
    std::fs::rename(&tmp, ledger).map_err(Error::io("renaming into place", ledger))
}

fn remove_ledger(ledger: &Path) -> Result<(), Error> {
    match std::fs::remove_file(ledger) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("removing", ledger)(e)),
        _ => Ok(()),
    }
}

fn compare(
    s: &mut spyglass_db::Session,
    manifest: &Manifest,
    renames: &[(String, String)],
    set: &Path,
    report: &mut VerifyReport,
) {
    for t in &manifest.tables {
        let schema = restore::target_name(renames, &t.schema);
        let q = quote::qualified(&schema, &t.table);
        let rows: Option<u64> = s
            .conn()
            .query_first(format!("SELECT COUNT(*) FROM {q}"))
            .ok()
            .flatten();
        report.tables_compared += 1;
        if rows != Some(t.rows) {
            report.problems.push(Problem {
                path: set.to_owned(),
                detail: format!(
                    "`{}`.`{}`: {} rows after restore, manifest says {}",
                    t.schema,
                    t.table,
                    rows.map_or("no".into(), |r| r.to_string()),
                    t.rows
                ),
            });
            continue;
        }
        if let Some(want) = t.checksum {
            let got: Option<(String, Option<u64>)> = s
                .conn()
                .query_first(format!("CHECKSUM TABLE {q}"))
                .ok()
                .flatten();
            let got = got.and_then(|g| g.1);
            if got != Some(want) {
                report.problems.push(Problem {
                    path: set.to_owned(),
                    detail: format!(
                        "`{}`.`{}`: CHECKSUM TABLE {} after restore, manifest says {want}",
                        t.schema,
                        t.table,
                        got.map_or("none".into(), |g| g.to_string())
                    ),
                });
            }
        }
    }
}

fn schema_names(s: &mut spyglass_db::Session) -> Result<Vec<String>, Error> {
    s.conn()
        .query("SELECT schema_name FROM information_schema.schemata")
        .map_err(|e| Error::Db(spyglass_db::DbError::query("listing schemas", e)))
}

/// Drops the schemas verify made, children before parents and with foreign
/// key checks off (a parent with a child in another schema would otherwise
/// stop `DROP DATABASE` half-way), then checks that none is left.
fn drop_verify_schemas(s: &mut spyglass_db::Session, targets: &[String]) -> Result<(), Error> {
    let mut failed = Vec::new();
    let c = s.conn();
    if let Err(e) = c.query_drop("SET SESSION foreign_key_checks = 0") {
        failed.push(format!("SET foreign_key_checks = 0: {e}"));
    }
    for t in targets.iter().rev() {
        if let Err(e) = c.query_drop(format!("DROP DATABASE IF EXISTS {}", quote::ident(t))) {
            failed.push(format!("`{t}`: {e}"));
        }
    }
    let left = schema_names(s)?;
    let left: Vec<&String> = targets.iter().filter(|t| left.contains(t)).collect();
    if left.is_empty() {
        return Ok(());
    }
    Err(Error::NotDropped {
        schemas: left.iter().map(|t| format!("`{t}`")).collect(),
        detail: if failed.is_empty() {
            "they are still there after DROP DATABASE".to_owned()
        } else {
            failed.join("; ")
        },
    })
}
