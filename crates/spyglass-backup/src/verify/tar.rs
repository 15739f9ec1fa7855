//! Checking a packed set (a `.tar` from [`crate::pack::pack`]) in one pass,
//! without unpacking it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path};

use sha2::{Digest, Sha256};

use super::{Problem, VerifyReport};
use crate::compress::hex;
use crate::manifest::Manifest;
use crate::progress::Progress;
use crate::set::{MANIFEST, OUTSIDE_MANIFEST};
use crate::Error;

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// The entry's path split into `(set name, path inside the set)`, refusing
/// anything that could land outside the set (absolute paths, `..`).
pub(crate) fn split_entry(path: &Path) -> Option<(String, String)> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if parts.is_empty() {
        return None;
    }
    let name = parts.remove(0);
    Some((name, parts.join("/")))
}

/// Checks a packed set in one pass: the manifest comes first, then every
/// file's size, sha256 and complete compressed stream; files the manifest
/// lists but the tar lacks are reported too.
pub fn verify_tar(tar_path: &Path, progress: &dyn Progress) -> Result<VerifyReport, Error> {
    let f = File::open(tar_path).map_err(Error::io("reading", tar_path))?;
    let total = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 20, f));
    let mut report = VerifyReport {
        set: tar_path.to_owned(),
        files: 0,
        bytes: 0,
        tables_compared: 0,
        problems: Vec::new(),
        not_restored: Vec::new(),
        leftovers_dropped: Vec::new(),
    };
    let bad_set = |detail: String| Error::BadSet {
        set: tar_path.to_owned(),
        detail,
    };
    let mut manifest: Option<Manifest> = None;
    let mut expected: BTreeMap<String, (u64, String, u64)> = BTreeMap::new();
    let mut set_name: Option<String> = None;
    progress.start("verify", total);
    let entries = archive.entries().map_err(Error::io("reading", tar_path))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad_set(format!("not a readable tar: {e}")))?;
        if entry.header().entry_type().is_dir() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| bad_set(format!("bad entry name: {e}")))?
            .into_owned();
        let Some((name, rel)) = split_entry(&path) else {
            report.problems.push(Problem {
                path: path.clone(),
                detail: "entry outside the set directory".into(),
            });
            continue;
        };
        if set_name.get_or_insert_with(|| name.clone()) != &name {
            report.problems.push(Problem {
                path: path.clone(),
                detail: "entry of another set".into(),
            });
            continue;
        }
        let shown = tar_path.join(&rel);
        if manifest.is_none() {
            if rel != MANIFEST {
                return Err(bad_set(format!(
                    "the first file is {rel}, not {MANIFEST}: not a packed backup set"
                )));
            }
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .map_err(|e| bad_set(format!("cannot read {MANIFEST}: {e}")))?;
            let m = Manifest::from_json(&text).map_err(bad_set)?;
            report
                .problems
                .extend(super::manifest_problems(&m, tar_path));
            for f in &m.files {
                expected.insert(f.path.clone(), (f.bytes, f.sha256.clone(), f.raw_bytes));
            }
            report.files += 1;
            manifest = Some(m);
            continue;
        }
        let Some((bytes, sha, raw)) = expected.remove(&rel) else {
            // RESTORE.txt and the other companions are not in the manifest by design.
            if !OUTSIDE_MANIFEST.contains(&rel.as_str()) {
                report.problems.push(Problem {
                    path: shown,
                    detail: super::UNLISTED.into(),
                });
            }
            continue;
        };
        report.files += 1;
        let mut h = Hashing {
            inner: &mut entry,
            hash: Sha256::new(),
            bytes: 0,
        };
        let mut raw_seen = 0u64;
        let decoded = decoder(&rel, &mut h).and_then(|mut d| {
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = d.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                raw_seen += n as u64;
            }
        });
        // Hash whatever the decoder left unread (a damaged stream stops early).
        let _ = io::copy(&mut h, &mut io::sink());
        report.bytes += h.bytes;
        progress.advance(h.bytes, 0);
        if h.bytes != bytes {
            report.problems.push(Problem {
                path: shown,
                detail: format!("size {} does not match the manifest's {bytes}", h.bytes),
            });
        } else if hex(&h.hash.finalize()) != sha {
            report.problems.push(Problem {
                path: shown,
                detail: "sha256 does not match the manifest".into(),
            });
        } else if let Err(e) = decoded {
            report.problems.push(Problem {
                path: shown,
                detail: format!("compressed stream is damaged or incomplete: {e}"),
            });
        } else if raw_seen != raw {
            report.problems.push(Problem {
                path: shown,
                detail: format!("holds {raw_seen} bytes of SQL, the manifest says {raw}"),
            });
        }
    }
    progress.finish();
    if manifest.is_none() {
        return Err(bad_set(format!(
            "no {MANIFEST} in it: not a packed backup set"
        )));
    }
    for rel in expected.into_keys() {
        report.problems.push(Problem {
            path: tar_path.join(&rel),
            detail: "missing from the tar".into(),
        });
    }
    Ok(report)
}

fn decoder<'a, R: Read + 'a>(name: &str, r: R) -> io::Result<Box<dyn Read + 'a>> {
    Ok(if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else if name.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::new(r)?)
    } else {
        Box::new(r)
    })
}
