//! Checking a set directory: every file the manifest lists, on every core,
//! and every file it holds that the manifest does not list.

use std::io::Read;
use std::path::Path;

use rayon::prelude::*;

use super::{manifest_problems, Problem, VerifyReport, UNLISTED};
use crate::compress::{file_sha256, open_sql};
use crate::manifest::FileRecord;
use crate::progress::Progress;
use crate::set::OUTSIDE_MANIFEST;
use crate::Error;

/// [`super::verify`] of a directory.
pub(super) fn verify_dir(set: &Path, progress: &dyn Progress) -> Result<VerifyReport, Error> {
    let manifest = crate::set::open(set)?;
    let mut report = VerifyReport {
        set: set.to_owned(),
        files: 0,
        bytes: 0,
        tables_compared: 0,
        problems: Vec::new(),
        not_restored: Vec::new(),
        leftovers_dropped: Vec::new(),
    };
    report.problems.extend(manifest_problems(&manifest, set));
    progress.start("verify", manifest.total_bytes());
    // One file per task on every core: hashing and decompressing are CPU
    // work that needs no connection, and files are independent. `collect`
    // keeps the manifest's order, so the report reads the same on any
    // number of cores.
    let checked: Vec<(u64, Option<Problem>)> = manifest
        .files
        .par_iter()
        .map(|f| check_file(set, f, progress))
        .collect();
    for (bytes, problem) in checked {
        report.files += 1;
        report.bytes += bytes;
        report.problems.extend(problem);
    }
    progress.finish();
    // Files in the set that the manifest does not know are suspicious too.
    let mut present = Vec::new();
    crate::set::walk(set, set, &mut present)?;
    present.sort();
    for rel in present {
        if !OUTSIDE_MANIFEST.contains(&rel.as_str())
            && !manifest.files.iter().any(|f| f.path == rel)
        {
            report.problems.push(Problem {
                path: set.join(&rel),
                detail: UNLISTED.into(),
            });
        }
    }
    Ok(report)
}

/// Checks one file of a set against its manifest entry: size, sha256, then
/// the whole compressed stream (the decompressors check their stream's own
/// checksum at its end) and its SQL byte count. Returns the bytes read and
/// the first problem found.
fn check_file(set: &Path, f: &FileRecord, progress: &dyn Progress) -> (u64, Option<Problem>) {
    let path = set.join(&f.path);
    let bad = |detail: String| {
        Some(Problem {
            path: path.clone(),
            detail,
        })
    };
    let size = match file_sha256(&path) {
        Err(e) => return (0, bad(format!("cannot read: {e}"))),
        Ok((size, sum)) => {
            progress.advance(size, 0);
            if size != f.bytes {
                return (
                    size,
                    bad(format!(
                        "size {size} does not match the manifest's {}",
                        f.bytes
                    )),
                );
            }
            if sum != f.sha256 {
                return (size, bad("sha256 does not match the manifest".into()));
            }
            size
        }
    };
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
    let problem = match r {
        Err(e) => bad(format!("compressed stream is damaged or incomplete: {e}")),
        Ok(()) if raw != f.raw_bytes => bad(format!(
            "holds {raw} bytes of SQL, the manifest says {}",
            f.raw_bytes
        )),
        Ok(()) => None,
    };
    (size, problem)
}
