//! One `.tar` per set, for media that want a single file (tape, object
//! stores, a USB disk formatted FAT): [`pack`], [`unpack`], and
//! [`verify_tar`] (in [`crate::verify`]), which checks a packed set in one
//! pass without unpacking.
//!
//! Layout: every entry lives under `<set name>/`, `manifest.json` first
//! (so a reader knows every file's size and sha256 before it meets them),
//! then `RESTORE.txt`, then the manifest's files in restore order. The set's
//! files are already compressed, so the tar is not. A packed file is written
//! as `<file>.partial` and renamed when complete, like a set.

use std::fs::File;
use std::io::{self, BufReader, BufWriter};
use std::path::{Path, PathBuf};

use crate::progress::Progress;
use crate::verify::{split_entry, verify_tar};
use crate::Error;

/// Packs the complete set `set` into `out` (default `<set>.tar` beside it).
/// Returns the tar's path and size.
pub fn pack(
    set: &Path,
    out: Option<&Path>,
    progress: &dyn Progress,
) -> Result<(PathBuf, u64), Error> {
    let manifest = crate::set::open(set)?;
    let name = set_name(set)?;
    let out = out
        .map(Path::to_owned)
        .unwrap_or_else(|| set.with_file_name(format!("{name}.tar")));
    if out.exists() {
        return Err(Error::Invalid(format!("{} already exists", out.display())));
    }
    let tmp = PathBuf::from(format!("{}.partial", out.display()));
    let files = crate::set::files(set, &manifest)?;
    progress.start("pack", manifest.total_bytes());
    let result = (|| -> Result<u64, Error> {
        let f = File::create(&tmp).map_err(Error::io("creating", &tmp))?;
        let mut b = tar::Builder::new(BufWriter::with_capacity(1 << 20, f));
        b.mode(tar::HeaderMode::Deterministic);
        let mut dirs_done = std::collections::BTreeSet::new();
        for rel in &files {
            // Directory entries first, so unpack keeps their (private) mode.
            let mut parent = Path::new(rel).parent();
            let mut chain = Vec::new();
            while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
                chain.push(p.to_owned());
                parent = p.parent();
            }
            for d in chain.into_iter().rev() {
                if dirs_done.insert(d.clone()) {
                    let mut h = tar::Header::new_gnu();
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(0o700);
                    h.set_size(0);
                    b.append_data(&mut h, Path::new(&name).join(&d), io::empty())
                        .map_err(Error::io("writing", &tmp))?;
                }
            }
            let src = set.join(rel);
            let mut file = File::open(&src).map_err(Error::io("reading", &src))?;
            let len = file.metadata().map_err(Error::io("reading", &src))?.len();
            let mut h = tar::Header::new_gnu();
            h.set_size(len);
            h.set_mode(0o600);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, Path::new(&name).join(rel), &mut file)
                .map_err(Error::io("writing", &tmp))?;
            progress.advance(len, 0);
        }
        let w = b.into_inner().map_err(Error::io("writing", &tmp))?;
        let f = w.into_inner().map_err(|e| Error::Io {
            what: "writing",
            path: tmp.clone(),
            source: e.into_error(),
        })?;
        f.sync_all().map_err(Error::io("syncing", &tmp))?;
        Ok(f.metadata().map_err(Error::io("reading", &tmp))?.len())
    })();
    progress.finish();
    match result {
        Ok(size) => {
            std::fs::rename(&tmp, &out).map_err(Error::io("renaming into place", &out))?;
            Ok((out, size))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn set_name(set: &Path) -> Result<String, Error> {
    set.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Error::BadSet {
            set: set.to_owned(),
            detail: "has no directory name".into(),
        })
}

/// Unpacks a packed set into `dest` (default: the tar's directory): checks it
/// first with [`verify_tar`], extracts into `<name>.partial/`, and renames it
/// into place. Returns the set's path.
pub fn unpack(
    tar_path: &Path,
    dest: Option<&Path>,
    progress: &dyn Progress,
) -> Result<PathBuf, Error> {
    let report = verify_tar(tar_path, progress)?;
    if let Some(p) = report.problems.first() {
        return Err(Error::BadFile {
            path: p.path.clone(),
            detail: format!(
                "{} (and {} more problem(s)); nothing was unpacked",
                p.detail,
                report.problems.len() - 1
            ),
        });
    }
    let dest = dest.map(Path::to_owned).unwrap_or_else(|| {
        tar_path
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("."))
    });
    let f = File::open(tar_path).map_err(Error::io("reading", tar_path))?;
    let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 20, f));
    let mut name: Option<String> = None;
    let mut partial = PathBuf::new();
    for entry in archive.entries().map_err(Error::io("reading", tar_path))? {
        let mut entry = entry.map_err(Error::io("reading", tar_path))?;
        let path = entry
            .path()
            .map_err(Error::io("reading", tar_path))?
            .into_owned();
        let Some((n, rel)) = split_entry(&path) else {
            continue;
        };
        if name.is_none() {
            let final_path = dest.join(&n);
            partial = dest.join(format!("{n}.partial"));
            if final_path.exists() {
                return Err(Error::Invalid(format!(
                    "{} already exists",
                    final_path.display()
                )));
            }
            if partial.exists() {
                std::fs::remove_dir_all(&partial).map_err(Error::io("removing", &partial))?;
            }
            std::fs::create_dir_all(&partial).map_err(Error::io("creating", &partial))?;
            name = Some(n.clone());
        }
        if name.as_deref() != Some(n.as_str()) || rel.is_empty() {
            continue;
        }
        let out = partial.join(&rel);
        if entry.header().entry_type().is_dir() {
            std::fs::create_dir_all(&out).map_err(Error::io("creating", &out))?;
            continue;
        }
        if let Some(p) = out.parent() {
            std::fs::create_dir_all(p).map_err(Error::io("creating", p))?;
        }
        let mut w = File::create(&out).map_err(Error::io("writing", &out))?;
        io::copy(&mut entry, &mut w).map_err(Error::io("writing", &out))?;
        w.sync_all().map_err(Error::io("syncing", &out))?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o600));
        }
    }
    let name = name.ok_or_else(|| Error::BadSet {
        set: tar_path.to_owned(),
        detail: "empty tar".into(),
    })?;
    let final_path = dest.join(&name);
    std::fs::rename(&partial, &final_path)
        .map_err(Error::io("renaming into place", &final_path))?;
    Ok(final_path)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::compress::{Compression, SetFileWriter};
    use crate::manifest::{FileKind, FileRecord, Manifest};
    use crate::set::MANIFEST;

    /// A small complete set with a real manifest.
    pub(crate) fn fake_set(dest: &Path, name: &str) -> PathBuf {
        let set = dest.join(name);
        std::fs::create_dir_all(set.join("2-data/lab")).unwrap();
        let mut files = Vec::new();
        for (i, rel) in ["2-data/lab/t.0.sql.gz", "2-data/lab/t.1.sql.gz"]
            .iter()
            .enumerate()
        {
            let mut w = SetFileWriter::create(&set.join(rel), Compression::Gzip(1)).unwrap();
            w.write_all(
                format!("INSERT INTO t VALUES ({i});\n")
                    .repeat(1000)
                    .as_bytes(),
            )
            .unwrap();
            let wr = w.finish().unwrap();
            files.push(FileRecord {
                path: rel.to_string(),
                kind: FileKind::Data,
                schema: Some("lab".into()),
                table: Some("t".into()),
                chunk: Some(i as u32),
                rows: 1000,
                raw_bytes: wr.raw_bytes,
                bytes: wr.bytes,
                sha256: wr.sha256,
            });
        }
        let m = serde_json::json!({
            "format": 1, "tool_version": "test", "engine": "native", "label": "nightly",
            "server": {"flavor": "mariadb", "version": "10.11", "address": "127.0.0.1:3306"},
            "snapshot": {"method": "none", "ddl_lock": "none", "binlog_file": null, "binlog_position": null, "gtid": null, "workers": 1},
            "started": "2026-11-26T02:00:00Z", "finished": "2026-11-26T02:00:01Z",
            "compression": {"method": "gzip", "level": 1}, "encoding": "escaped", "max_statement_bytes": 100,
            "schemas": ["lab"], "tables": [], "files": files, "notes": []
        });
        std::fs::write(
            set.join(MANIFEST),
            serde_json::to_string_pretty(&m).unwrap(),
        )
        .unwrap();
        std::fs::write(set.join("RESTORE.txt"), "gunzip and mysql\n").unwrap();
        Manifest::load(&set).unwrap();
        set
    }

    #[test]
    fn pack_verify_unpack_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let set = fake_set(dir.path(), "nightly-20261126-020000");
        let silent = crate::progress::Silent;
        let (tar_path, size) = pack(&set, None, &silent).unwrap();
        assert_eq!(tar_path, dir.path().join("nightly-20261126-020000.tar"));
        assert!(size > 0);
        let r = verify_tar(&tar_path, &silent).unwrap();
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(r.files, 3);
        // verify() takes the tar form too.
        assert!(crate::verify::verify(&tar_path, &silent)
            .unwrap()
            .problems
            .is_empty());

        let out = tempfile::tempdir().unwrap();
        let back = unpack(&tar_path, Some(out.path()), &silent).unwrap();
        assert_eq!(back, out.path().join("nightly-20261126-020000"));
        for rel in [
            "manifest.json",
            "RESTORE.txt",
            "2-data/lab/t.0.sql.gz",
            "2-data/lab/t.1.sql.gz",
        ] {
            assert_eq!(
                std::fs::read(set.join(rel)).unwrap(),
                std::fs::read(back.join(rel)).unwrap(),
                "{rel}"
            );
        }
        assert!(crate::verify::verify(&back, &silent)
            .unwrap()
            .problems
            .is_empty());
        // Unpacking again refuses to overwrite.
        assert!(unpack(&tar_path, Some(out.path()), &silent).is_err());
    }

    #[test]
    fn damaged_tar_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let set = fake_set(dir.path(), "nightly-20261126-020000");
        let silent = crate::progress::Silent;
        let (tar_path, _) = pack(&set, None, &silent).unwrap();
        let mut bytes = std::fs::read(&tar_path).unwrap();
        // Flip one byte in the last data file's contents (after the two headers of t.1).
        let needle = b"2-data/lab/t.1.sql.gz";
        let at = bytes
            .windows(needle.len())
            .rposition(|w| w == needle)
            .unwrap();
        let data_start = (at / 512 + 1) * 512;
        bytes[data_start + 20] ^= 0xff;
        std::fs::write(&tar_path, &bytes).unwrap();
        let r = verify_tar(&tar_path, &silent).unwrap();
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(r.problems[0].path.ends_with("2-data/lab/t.1.sql.gz"));
        assert!(r.problems[0].detail.contains("sha256"));
        let out = tempfile::tempdir().unwrap();
        assert!(unpack(&tar_path, Some(out.path()), &silent).is_err());
        assert_eq!(
            std::fs::read_dir(out.path()).unwrap().count(),
            0,
            "nothing unpacked"
        );
    }
}
