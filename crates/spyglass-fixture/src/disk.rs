//! The fixture's data directory: what files exist, and where.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::{io_err, FixtureError, Planted, Rng, OLD};

/// Which store a planned file lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Store {
    Raw,
    Analysis,
}

/// Why a planned file is there; decides which rows point at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Raw NWB file of session `n`, tracked by `common_nwbfile.~external_raw`.
    Raw(usize),
    /// Common analysis file: tracked and referenced by `common_nwbfile.analysis_nwbfile`.
    /// The downstream table referencing it, if any.
    Common(Downstream),
    /// A `common_nwbfile.~external_analysis` row nothing references.
    CommonUnused,
    /// Custom analysis file in `alice_nwbfile`; referenced downstream or not.
    Alice { downstream: bool },
    /// Tracked by `decoding_v1.~external_analysis` and referenced by its output table.
    Decoding,
    /// No row names it.
    Untracked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Downstream {
    Lfp,
    Position,
    None,
}

#[derive(Debug, Clone)]
pub(crate) struct PlannedFile {
    pub store: Store,
    /// Path relative to the store's location (a DataJoint `filepath` value).
    pub rel: String,
    pub size: u64,
    pub exists: bool,
    pub young: bool,
    pub role: Role,
    pub hash: [u8; 16],
}

/// Sessions of the fixture (raw NWB file names).
pub(crate) const SESSIONS: [&str; 3] = [
    "j1620210710_.nwb",
    "minirec20230622_.nwb",
    "tonks20211103_.nwb",
];

pub(crate) fn plan_files(rng: &mut Rng) -> Vec<PlannedFile> {
    let mut files = Vec::new();
    let mut add =
        |rng: &mut Rng, store, rel: String, role, exists: bool, young: bool, empty: bool| {
            let size = if empty { 0 } else { 512 + rng.below(32 * 1024) };
            let hash = rng.hash16();
            files.push(PlannedFile {
                store,
                rel,
                size,
                exists,
                young,
                role,
                hash,
            });
        };
    for (i, s) in SESSIONS.iter().enumerate() {
        add(
            rng,
            Store::Raw,
            (*s).to_owned(),
            Role::Raw(i),
            true,
            false,
            false,
        );
    }
    let stem = |i: usize| {
        SESSIONS[i % SESSIONS.len()]
            .trim_end_matches(".nwb")
            .to_owned()
    };
    let name = |rng: &mut Rng, i: usize| {
        let st = stem(i);
        format!("{st}/{st}_{:06X}.nwb", rng.below(0xFF_FFFF))
    };
    // Common analysis files 0..8: lfp references 0,1,2,6; position 3,4,7; 5 is an orphan row.
    // Files 6 and 7 are missing from disk: dangling references.
    for i in 0..8 {
        let downstream = match i {
            0 | 1 | 2 | 6 => Downstream::Lfp,
            3 | 4 | 7 => Downstream::Position,
            _ => Downstream::None,
        };
        let rel = name(rng, i);
        add(
            rng,
            Store::Analysis,
            rel,
            Role::Common(downstream),
            i < 6,
            false,
            false,
        );
    }
    let rel = name(rng, 8);
    add(
        rng,
        Store::Analysis,
        rel,
        Role::CommonUnused,
        true,
        false,
        false,
    );
    let rel = name(rng, 9);
    add(
        rng,
        Store::Analysis,
        rel,
        Role::CommonUnused,
        false,
        false,
        false,
    );
    for i in 0..3 {
        let rel = name(rng, 10 + i);
        add(
            rng,
            Store::Analysis,
            rel,
            Role::Alice { downstream: i < 2 },
            true,
            false,
            false,
        );
    }
    for i in 0..2 {
        let rel = format!("decoding/{}_{i}.nc", stem(i));
        add(
            rng,
            Store::Analysis,
            rel,
            Role::Decoding,
            true,
            false,
            false,
        );
    }
    // Untracked: five ordinary, one young (an analysis still writing), two empty; one in raw.
    for i in 0..5 {
        let rel = name(rng, 20 + i);
        add(
            rng,
            Store::Analysis,
            rel,
            Role::Untracked,
            true,
            false,
            false,
        );
    }
    let rel = name(rng, 30);
    add(
        rng,
        Store::Analysis,
        rel,
        Role::Untracked,
        true,
        true,
        false,
    );
    for i in 0..2 {
        let rel = format!("{}/empty_{i}.nwb", stem(i));
        add(
            rng,
            Store::Analysis,
            rel,
            Role::Untracked,
            true,
            false,
            true,
        );
    }
    add(
        rng,
        Store::Raw,
        "stray_copy_of_j16.nwb".to_owned(),
        Role::Untracked,
        true,
        false,
        false,
    );
    files
}

/// Where everything goes under the fixture root.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub base: PathBuf,
    pub outside: PathBuf,
}

pub(crate) const SUBDIRS: [&str; 8] = [
    "raw",
    "analysis",
    "recording",
    "spikesorting",
    "waveforms",
    "tmp",
    "video",
    "export",
];

impl Layout {
    pub fn new(root: &Path) -> Self {
        Layout {
            base: root.join("spyglass"),
            outside: root.join("outside"),
        }
    }
    pub fn store(&self, s: Store) -> PathBuf {
        self.base.join(match s {
            Store::Raw => "raw",
            Store::Analysis => "analysis",
        })
    }
    pub fn recording(&self) -> PathBuf {
        self.base.join("recording")
    }
    pub fn sorting(&self) -> PathBuf {
        self.base.join("spikesorting")
    }
    /// Removes what a previous run left and creates the directory skeleton.
    pub fn reset(&self) -> Result<(), FixtureError> {
        for d in [&self.base, &self.outside] {
            if d.exists() {
                fs::remove_dir_all(d).map_err(io_err(d))?;
            }
        }
        for sub in SUBDIRS {
            let d = self.base.join(sub);
            fs::create_dir_all(&d).map_err(io_err(&d))?;
        }
        fs::create_dir_all(&self.outside).map_err(io_err(&self.outside))?;
        Ok(())
    }
}

/// Recording and sorting folders: (name, named by a row).
pub(crate) const RECORDINGS: [(&str, bool); 4] = [
    ("j1620210710_rec_0001", true),
    ("j1620210710_rec_0002", true),
    ("tonks20211103_rec_0001", true),
    ("minirec20230622_rec_abandoned", false),
];
pub(crate) const SORTINGS: [(&str, bool); 5] = [
    ("j1620210710_sort_0001", true),
    ("j1620210710_sort_0002", true),
    ("tonks20211103_sort_0001", true),
    ("tonks20211103_sort_failed", false),
    ("leftover_kilosort_tmp", false),
];

fn write_file(
    path: &Path,
    size: u64,
    rng: &mut Rng,
    mtime: SystemTime,
) -> Result<(), FixtureError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let bytes = rng.neural_blob(size as usize);
    fs::write(path, &bytes).map_err(io_err(path))?;
    set_mtime(path, mtime)
}

fn set_mtime(path: &Path, mtime: SystemTime) -> Result<(), FixtureError> {
    let f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    f.set_modified(mtime).map_err(io_err(path))
}

pub(crate) fn write(
    layout: &Layout,
    files: &[PlannedFile],
    rng: &mut Rng,
    planted: &mut Planted,
) -> Result<(), FixtureError> {
    let now = SystemTime::now();
    let old = now - OLD;
    for f in files {
        let tracked = f.role != Role::Untracked;
        match (f.role, f.exists) {
            (Role::CommonUnused, exists) => {
                planted.unused_external += 1;
                if exists {
                    planted.unused_external_with_file += 1;
                }
            }
            (Role::Untracked, _) if f.size == 0 => planted.empty += 1,
            (Role::Untracked, _) if f.young => planted.untracked_young += 1,
            (Role::Untracked, _) => planted.untracked += 1,
            (_, false) => planted.dangling += 1,
            (_, true) => {}
        }
        if tracked && f.exists {
            planted.tracked_files += 1;
        }
        if f.exists {
            let path = layout.store(f.store).join(&f.rel);
            write_file(&path, f.size, rng, if f.young { now } else { old })?;
        }
    }
    // A symlink inside the analysis store pointing outside it: must be reported, never followed.
    let target = layout.outside.join("not_yours.nwb");
    write_file(&target, 4096, rng, old)?;
    let link = layout.store(Store::Analysis).join("links/escape.nwb");
    fs::create_dir_all(link.parent().unwrap_or(&layout.base)).map_err(io_err(&link))?;
    std::os::unix::fs::symlink(&target, &link).map_err(io_err(&link))?;
    planted.symlink_outside += 1;

    for (dir, list) in [
        (layout.recording(), &RECORDINGS[..]),
        (layout.sorting(), &SORTINGS[..]),
    ] {
        for (name, named) in list {
            let d = dir.join(name);
            for part in ["provenance.json", "traces_cached_seg0.raw"] {
                write_file(&d.join(part), 256 + rng.below(8192), rng, old)?;
            }
            if *named {
                planted.tracked_dir += 1;
            } else {
                planted.untracked_dir += 1;
            }
        }
    }

    let tmp = layout.base.join("tmp");
    let stale = now - Duration::from_secs(30 * 24 * 3600);
    let fresh = now - Duration::from_secs(3600);
    for (name, when, is_stale) in [
        ("spikeinterface_cache_1.dat", stale, true),
        ("spikeinterface_cache_2.dat", stale, true),
        ("export_scratch.json", stale, true),
        ("running_job.dat", fresh, false),
        ("running_job.log", fresh, false),
    ] {
        write_file(&tmp.join(name), 128 + rng.below(4096), rng, when)?;
        if is_stale {
            planted.stale_temp += 1;
        } else {
            planted.fresh_temp += 1;
        }
    }
    Ok(())
}

pub(crate) fn write_dj_config(
    path: &Path,
    layout: &Layout,
    (host, port, user): (&str, u16, &str),
) -> Result<(), FixtureError> {
    let base = layout.base.display().to_string();
    let store = |s: Store| {
        let loc = layout.store(s).display().to_string();
        serde_json::json!({"protocol": "file", "location": loc, "stage": loc})
    };
    let cfg = serde_json::json!({
        "database.host": host,
        "database.port": port,
        "database.user": user,
        "database.use_tls": null,
        "stores": {"raw": store(Store::Raw), "analysis": store(Store::Analysis)},
        "custom": {"spyglass_dirs": {"base": base}},
    });
    let text = serde_json::to_string_pretty(&cfg).unwrap_or_default();
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = fs::remove_file(path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(text.as_bytes()).map_err(io_err(path))?;
    Ok(())
}
