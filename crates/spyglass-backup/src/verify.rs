//! Checking a set: every file present, with the manifest's size and sha256,
//! every compressed stream complete; optionally restored and compared.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::{quote, ConnectOptions};

use crate::compress::{file_sha256, open_sql};
use crate::manifest::Manifest;
use crate::progress::Progress;
use crate::restore::{self, RestoreOptions};
use crate::Error;

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
}

/// Checks every file of `set`. Never stops at the first bad file: the report names them all.
/// `set` may also be a packed set (a `.tar` file from [`crate::pack::pack`]).
pub fn verify(set: &Path, progress: &dyn Progress) -> Result<VerifyReport, Error> {
    if set.is_file() {
        return crate::pack::verify_tar(set, progress);
    }
    let manifest = restore::open_set(set)?;
    let mut report = VerifyReport {
        set: set.to_owned(),
        files: 0,
        bytes: 0,
        tables_compared: 0,
        problems: Vec::new(),
    };
    progress.start("verify", manifest.total_bytes());
    for f in &manifest.files {
        let path = set.join(&f.path);
        report.files += 1;
        let bad = |detail: String| Problem {
            path: path.clone(),
            detail,
        };
        match file_sha256(&path) {
            Err(e) => {
                report.problems.push(bad(format!("cannot read: {e}")));
                continue;
            }
            Ok((size, sum)) => {
                report.bytes += size;
                progress.advance(size, 0);
                if size != f.bytes {
                    report.problems.push(bad(format!(
                        "size {size} does not match the manifest's {}",
                        f.bytes
                    )));
                    continue;
                }
                if sum != f.sha256 {
                    report
                        .problems
                        .push(bad("sha256 does not match the manifest".into()));
                    continue;
                }
            }
        }
        // The decompressors check their stream's own checksum at its end.
        let mut raw = 0u64;
        let r = open_sql(&path).and_then(|mut r| {
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = r.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                raw += n as u64;
            }
        });
        match r {
            Err(e) => report.problems.push(bad(format!(
                "compressed stream is damaged or incomplete: {e}"
            ))),
            Ok(()) if raw != f.raw_bytes => report.problems.push(bad(format!(
                "holds {raw} bytes of SQL, the manifest says {}",
                f.raw_bytes
            ))),
            Ok(()) => {}
        }
    }
    // Files in the set that the manifest does not know are suspicious too.
    progress.finish();
    Ok(report)
}

/// Restores `set` into schemas `<prefix><schema>` on `connect`, compares row
/// counts (and checksums, when the manifest has them) with the manifest,
/// then drops those schemas.
pub fn verify_by_restoring(
    connect: &ConnectOptions,
    set: &Path,
    prefix: &str,
    threads: usize,
    report: &mut VerifyReport,
    progress: &dyn Progress,
) -> Result<(), Error> {
    let manifest: Manifest = restore::open_set(set)?;
    let renames = restore::prefix_renames(&manifest, prefix);
    let opts = RestoreOptions {
        schemas: Vec::new(),
        rename: renames.clone(),
        threads,
        force: true,
        with_accounts: false,
        binlog: false,
    };
    let result = restore::restore(connect, set, &opts, progress);
    let mut s = spyglass_db::connect(connect)?;
    if let Err(e) = &result {
        report.problems.push(Problem {
            path: set.to_owned(),
            detail: format!("restore failed: {e}"),
        });
    } else {
        for t in &manifest.tables {
            let schema = restore::target_name(&renames, &t.schema);
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
    for (_, new) in &renames {
        let _ = s
            .conn()
            .query_drop(format!("DROP DATABASE IF EXISTS {}", quote::ident(new)));
    }
    result.map(|_| ())
}
