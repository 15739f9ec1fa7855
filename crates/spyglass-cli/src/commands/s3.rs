//! `s3://` sets in `backup list | verify | restore`: a set on a store is
//! read into a temporary directory (removed afterwards) and checked there
//! with the same code as a local set; every problem names the object.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use spyglass_backup::compress::file_sha256;
use spyglass_backup::ship::s3::{self, S3Config};
use spyglass_backup::ship::{ShipError, ShipOptions, Target};
use spyglass_backup::verify::VerifyReport;
use spyglass_jobs::lifecycle;

use crate::args::GlobalOpts;
use crate::output::{self, ExitStatus, UserError};
use crate::settings;

/// True when `p` is written `s3://...`.
pub(crate) fn is_s3(p: &Path) -> bool {
    p.to_str().is_some_and(|s| s.starts_with("s3://"))
}

fn config(global: &GlobalOpts) -> anyhow::Result<S3Config> {
    let s = settings::load(global.config.as_deref())?;
    Ok(lifecycle::s3_config(&s)?)
}

/// A set read from a store into a temporary directory (removed on drop).
pub(crate) struct Fetched {
    _dir: tempfile::TempDir,
    /// The local copy (named like the set).
    pub path: PathBuf,
    /// `s3://bucket/prefix/name`.
    pub location: String,
}

impl Fetched {
    /// `problem`'s path as the object it came from.
    fn object(&self, p: &Path) -> String {
        match p.strip_prefix(&self.path) {
            Ok(rel) if rel.as_os_str().is_empty() => self.location.clone(),
            Ok(rel) => format!("{}/{}", self.location, rel.display()),
            Err(_) => p.display().to_string(),
        }
    }

    /// The objects whose bytes do not match the manifest's sha256.
    fn damaged(&self) -> anyhow::Result<Vec<String>> {
        let m = spyglass_backup::set::open(&self.path)?;
        let mut bad = Vec::new();
        for f in &m.files {
            let p = self.path.join(&f.path);
            match file_sha256(&p) {
                Ok((n, sum)) if n == f.bytes && sum == f.sha256 => {}
                _ => bad.push(format!("{}/{}", self.location, f.path)),
            }
        }
        Ok(bad)
    }
}

/// Reads the set `s3://bucket/prefix/NAME` into a temporary directory.
pub(crate) fn fetch(global: &GlobalOpts, set: &Path) -> anyhow::Result<Fetched> {
    let text = set.to_str().unwrap_or_default().trim_end_matches('/');
    let (target, name) = text
        .rsplit_once('/')
        .filter(|(t, n)| t.len() > "s3:/".len() && spyglass_backup::names::parse_stamp(n).is_some())
        .ok_or_else(|| {
            UserError::new(format!("{text} does not name a set"))
                .hint("write s3://bucket/prefix/LABEL-YYYYMMDD-HHMMSS (backup list s3://bucket/prefix shows them)")
        })?;
    let t = Target::parse(target)?.with_s3_config(&config(global)?);
    let opts = ShipOptions::default();
    let mut remote = t.remote(&opts);
    let there = remote.probe(false)?;
    if !there.iter().any(|n| n == name) {
        let msg = if there.iter().any(|n| *n == format!("{name}.partial")) {
            format!("{text} is not complete: it has no manifest object (an interrupted upload; ship it again to finish it)")
        } else {
            format!("no set {name} in {target}")
        };
        return Err(UserError::new(msg).into());
    }
    let dir = tempfile::Builder::new()
        .prefix("spyglass-s3-")
        .tempdir()
        .map_err(|e| UserError::new(format!("cannot make a temporary directory: {e}")))?;
    let path = dir.path().join(name);
    let manifest = spyglass_backup::set::MANIFEST.to_owned();
    remote.fetch(name, std::slice::from_ref(&manifest), &path)?;
    let m = spyglass_backup::set::open(&path)?;
    let files: Vec<String> = m.files.iter().map(|f| f.path.clone()).collect();
    remote.fetch(name, &files, &path)?;
    let restore_txt = spyglass_backup::set::RESTORE_TXT.to_owned();
    match remote.fetch(name, std::slice::from_ref(&restore_txt), &path) {
        Ok(()) | Err(ShipError::Store { status: 404, .. }) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Fetched {
        _dir: dir,
        path,
        location: remote.location(name),
    })
}

/// Before a restore from a store: every object read back matches the
/// manifest, or nothing is loaded and the damaged objects are named.
pub(crate) fn check_before_restore(f: &Fetched) -> anyhow::Result<()> {
    let bad = f.damaged()?;
    if bad.is_empty() {
        return Ok(());
    }
    Err(UserError::new(format!(
        "{} object(s) of {} do not match the manifest, nothing was restored: {}",
        bad.len(),
        f.location,
        bad.join(", ")
    ))
    .hint("the copy on the store is damaged: restore another set, or ship this one again from a good local copy with --repair")
    .into())
}

/// A verify report of the local copy, its paths turned back into objects.
pub(crate) fn report_objects(f: &Fetched, report: &mut VerifyReport) {
    report.set = PathBuf::from(&f.location);
    for p in &mut report.problems {
        p.path = PathBuf::from(f.object(&p.path));
    }
}

/// `backup run --dest s3://...`: the set is written into a temporary
/// directory, then shipped (verified on the store, committed by its
/// manifest object) and the local copy removed.
pub(crate) struct Upload {
    dir: tempfile::TempDir,
    target: Target,
}

impl Upload {
    pub(crate) fn new(global: &GlobalOpts, dest: &Path) -> anyhow::Result<Upload> {
        let target =
            Target::parse(dest.to_str().unwrap_or_default())?.with_s3_config(&config(global)?);
        // Fail on credentials or a missing bucket before the dump starts.
        target.remote(&ShipOptions::default()).probe(false)?;
        let dir = tempfile::Builder::new()
            .prefix("spyglass-s3-")
            .tempdir()
            .map_err(|e| UserError::new(format!("cannot make a temporary directory: {e}")))?;
        Ok(Upload { dir, target })
    }

    /// Where the dump writes.
    pub(crate) fn local_dest(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// Ships `set`; its location on the store. When shipping fails the
    /// local set is kept (and named), so the next `backup ship` resumes.
    pub(crate) fn ship(self, set: &Path) -> anyhow::Result<PathBuf> {
        match spyglass_backup::ship::ship(set, &self.target, &ShipOptions::default()) {
            Ok(r) => {
                let _ = std::fs::remove_dir_all(set);
                Ok(PathBuf::from(r.target))
            }
            Err(e) => {
                let _ = self.dir.keep();
                Err(anyhow::Error::new(e).context(format!(
                    "the set was written but not shipped; it is kept in {} (ship it with: spyglass-admin backup ship {} --to {})",
                    set.display(),
                    set.display(),
                    self.target
                )))
            }
        }
    }
}

/// `backup list s3://bucket/prefix`.
pub(crate) fn list(global: &GlobalOpts, dest: &Path) -> anyhow::Result<ExitStatus> {
    let text = dest.to_str().unwrap_or_default();
    let Target::S3 { bucket, prefix, .. } = Target::parse(text)? else {
        return Err(UserError::new(format!("{text} is not an s3:// target")).into());
    };
    let sets = s3::list_sets(&bucket, &prefix, &config(global)?)?;
    if global.json {
        output::print_json(&sets)?;
    } else {
        let now = spyglass_backup::names::now_unix();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<36} {:<24} {:>10} {:>8}  {:>7}",
            "set", "status", "size", "age", "schemas"
        );
        for i in &sets {
            let status = match (i.complete, &i.problem) {
                (false, _) => "partial (no manifest)",
                (true, None) => "complete",
                (true, Some(_)) => "corrupt",
            };
            let _ = writeln!(
                s,
                "{:<36} {:<24} {:>10} {:>8}  {:>7}",
                i.name,
                status,
                output::human_bytes(i.bytes),
                i.created
                    .map(|c| age(now - c))
                    .unwrap_or_else(|| "?".into()),
                i.schemas.len()
            );
            if let Some(p) = &i.problem {
                let _ = writeln!(s, "    {p}");
            }
        }
        if sets.is_empty() {
            let _ = writeln!(s, "(no backup sets in {text})");
        }
        output::print_out(&s)?;
    }
    Ok(if sets.iter().any(|s| s.problem.is_some()) {
        ExitStatus::Findings
    } else {
        ExitStatus::Success
    })
}

fn age(secs: i64) -> String {
    match secs {
        s if s < 3600 => format!("{}m", s.max(0) / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
