//! The DataJoint client the server tests log in with: `datajoint==0.14.10`
//! (the version Spyglass 0.6.0 pins) in a Python virtual environment made once
//! per machine, next to the MySQL chroot in `sandbox::cache_dir()`.
//!
//! It is built in a `.partial.<pid>` directory and renamed into place only
//! after DataJoint imports and reports the right version, so an install that
//! was killed half-way is simply redone, and two checkouts installing at the
//! same time do not step on each other.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::sandbox::cache_dir;
use crate::util;

/// The DataJoint release Spyglass 0.6.0 pins.
pub const DATAJOINT_VERSION: &str = "0.14.10";

/// Written into a finished environment; its content names what was installed.
const MARKER: &str = ".spyglass-admin-venv";

fn venv_dir() -> PathBuf {
    cache_dir().join(format!("dj-venv-{DATAJOINT_VERSION}"))
}

fn marker_text() -> String {
    format!("datajoint=={DATAJOINT_VERSION}\n")
}

/// The interpreter of the environment (a symlink to the base interpreter;
/// it finds the environment through `pyvenv.cfg` next to it, so the
/// environment still works after being renamed into place).
fn python_in(dir: &Path) -> PathBuf {
    dir.join("bin/python")
}

/// Makes sure the environment exists and works; returns its interpreter.
pub fn ensure_datajoint() -> Result<PathBuf, String> {
    let dir = venv_dir();
    let python = python_in(&dir);
    remove_stale_partials();
    if dir.exists() {
        let marked = fs::read_to_string(dir.join(MARKER)).ok() == Some(marker_text());
        match check(&python) {
            Ok(()) if marked => return Ok(python),
            Ok(()) => eprintln!(
                "xtask: {} has no marker, reinstalling DataJoint",
                dir.display()
            ),
            Err(e) => eprintln!(
                "xtask: the DataJoint environment in {} does not work ({e}), reinstalling",
                dir.display()
            ),
        }
        fs::remove_dir_all(&dir).map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    }
    let base = base_python()?;
    fs::create_dir_all(cache_dir())
        .map_err(|e| format!("cannot create {}: {e}", cache_dir().display()))?;
    let partial = cache_dir().join(format!(
        "dj-venv-{DATAJOINT_VERSION}.partial.{}",
        std::process::id()
    ));
    if partial.exists() {
        fs::remove_dir_all(&partial)
            .map_err(|e| format!("cannot remove {}: {e}", partial.display()))?;
    }
    eprintln!(
        "xtask: installing DataJoint {DATAJOINT_VERSION} from PyPI into {} (once per machine)",
        dir.display()
    );
    let started = Instant::now();
    let log = cache_dir().join(format!("dj-venv-{DATAJOINT_VERSION}.log"));
    let result = install(&base, &partial, &log);
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&partial);
        return Err(format!(
            "installing DataJoint {DATAJOINT_VERSION} for the server tests failed: {e}\n\
             (the server tests log in through DataJoint and cannot run without it; \
             they need PyPI to be reachable once per machine)"
        ));
    }
    match fs::rename(&partial, &dir) {
        Ok(()) => {}
        // Another checkout finished first: use its environment.
        Err(_) if dir.join(MARKER).is_file() => {
            let _ = fs::remove_dir_all(&partial);
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&partial);
            return Err(format!(
                "cannot move the DataJoint environment into {}: {e}",
                dir.display()
            ));
        }
    }
    check(&python).map_err(|e| format!("the DataJoint environment in {}: {e}", dir.display()))?;
    eprintln!(
        "xtask: DataJoint {DATAJOINT_VERSION} installed in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(python)
}

/// Debian's own interpreter: a virtual environment is bound to the
/// interpreter it was made with, so a machine-wide one should not hang on a
/// user's pyenv or conda.
fn base_python() -> Result<PathBuf, String> {
    let debian = PathBuf::from("/usr/bin/python3");
    let has_venv = |p: &Path| {
        Command::new(p)
            .args(["-c", "import venv, ensurepip"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if debian.is_file() && has_venv(&debian) {
        return Ok(debian);
    }
    util::apt_install(
        &["python3", "python3-venv"],
        "the DataJoint client of the server tests",
    )?;
    if has_venv(&debian) {
        Ok(debian)
    } else {
        Err(format!(
            "{} cannot make virtual environments even after installing python3-venv",
            debian.display()
        ))
    }
}

fn install(base: &Path, partial: &Path, log: &Path) -> Result<(), String> {
    let logf = fs::File::create(log).map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    let step = |cmd: &mut Command| -> Result<(), String> {
        let status = cmd
            .stdin(Stdio::null())
            .stdout(logf.try_clone().map_err(|e| e.to_string())?)
            .stderr(logf.try_clone().map_err(|e| e.to_string())?)
            .status()
            .map_err(|e| format!("cannot run {}: {e}", util::describe(cmd)))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed ({status}); last lines of {}:\n{}",
                util::describe(cmd),
                log.display(),
                util::tail(log, 15)
            ))
        }
    };
    step(Command::new(base).args(["-m", "venv"]).arg(partial))?;
    // `python -m pip`, never bin/pip: console scripts carry the .partial path
    // in their #! line and break once the directory is renamed.
    step(
        Command::new(python_in(partial))
            .args([
                "-m",
                "pip",
                "install",
                "--no-input",
                "--disable-pip-version-check",
            ])
            .arg(format!("datajoint=={DATAJOINT_VERSION}")),
    )?;
    check(&python_in(partial))?;
    fs::write(partial.join(MARKER), marker_text())
        .map_err(|e| format!("cannot write {}: {e}", partial.join(MARKER).display()))
}

/// DataJoint imports and is the pinned version.
fn check(python: &Path) -> Result<(), String> {
    let out = Command::new(python)
        .args(["-c", "import datajoint; print(datajoint.__version__)"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() {
        return Err(format!(
            "import datajoint failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if version != DATAJOINT_VERSION {
        return Err(format!(
            "datajoint is {version}, expected {DATAJOINT_VERSION}"
        ));
    }
    Ok(())
}

/// `.partial.<pid>` directories whose installer is gone (killed half-way).
fn remove_stale_partials() {
    let prefix = format!("dj-venv-{DATAJOINT_VERSION}.partial.");
    let Ok(entries) = fs::read_dir(cache_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(&prefix) else {
            continue;
        };
        if pid.parse().is_ok_and(|p: u32| !util::pid_alive(p)) {
            eprintln!(
                "xtask: removing {} (an install that did not finish)",
                e.path().display()
            );
            let _ = fs::remove_dir_all(e.path());
        }
    }
}
