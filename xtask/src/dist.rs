//! `cargo xtask dist [--check]`: the Debian package, built by hand with
//! `dpkg-deb` (see ARCHITECTURE.md "Packaging" for why not cargo-deb), and with
//! `--check` installed into a throwaway root and tried from the outside.
//!
//! Everything generated (man pages, completions, systemd units) comes from the
//! binary itself (`spyglass-admin dist-files`), so the package, `--help`,
//! `completions SHELL` and `schedule --print --systemd` cannot disagree.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::sandbox::{self, Flavor};
use crate::util::{self, cargo, project_root};

const PACKAGE: &str = "spyglass-admin";
const MAINTAINER: &str = "spyglass-admin developers <spyglass-admin@users.noreply.github.com>";
/// Debian revision of the package (the upstream version is the workspace's).
const REVISION: &str = "1";
/// The systemd units `dist-files` writes and the package installs.
const UNITS: [&str; 3] = [
    "spyglass-nightly.service",
    "spyglass-nightly.timer",
    "spyglass-nightly-failure.service",
];

pub fn cmd(args: &[String]) -> Result<(), String> {
    let check = util::has_flag(args, "--check");
    let bin = build_release(check)?;
    let out = util::target_dir().join("dist");
    let deb = assemble(&bin, &format!("{}-{REVISION}", upstream_version()), &out)?;
    let size = fs::metadata(&deb).map(|m| m.len()).unwrap_or(0);
    println!(
        "xtask: package {} ({:.1} MiB; stripped binary {:.1} MiB, debug symbols kept beside it in {})",
        deb.display(),
        size as f64 / 1048576.0,
        fs::metadata(out.join("stage/usr/bin/spyglass-admin"))
            .map(|m| m.len())
            .unwrap_or(0) as f64
            / 1048576.0,
        out.join("spyglass-admin.debug").display()
    );
    if check {
        check_package(&bin, &deb, &out)?;
        println!("xtask: package checks passed");
    }
    Ok(())
}

fn upstream_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// `cargo build --release`. Under `--check` (CI on a clean clone) the release
/// target lives in the machine cache, so only our crates rebuild each run.
fn build_release(cached: bool) -> Result<PathBuf, String> {
    let mut c = cargo();
    c.args([
        "build",
        "--quiet",
        "--release",
        "--locked",
        "-p",
        "spyglass-cli",
    ]);
    let (target, _lock) = if cached && std::env::var_os("CARGO_TARGET_DIR").is_none() {
        let dir = sandbox::cache_dir().join("release-target");
        let lock = util::cache_lock(&sandbox::cache_dir(), "release-target")?;
        c.env("CARGO_TARGET_DIR", &dir);
        (dir, Some(lock))
    } else {
        (util::target_dir(), None)
    };
    eprintln!(
        "xtask: building spyglass-admin (release) in {}",
        target.display()
    );
    util::run(&mut c)?;
    Ok(target.join("release/spyglass-admin"))
}

fn io(what: &str, p: &Path, e: std::io::Error) -> String {
    format!("cannot {what} {}: {e}", p.display())
}

/// Removes a directory left by an earlier run (none is fine).
fn remove_dir(p: &Path) -> Result<(), String> {
    match fs::remove_dir_all(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", p, e)),
        _ => Ok(()),
    }
}

fn mkdir(p: &Path) -> Result<(), String> {
    fs::create_dir_all(p).map_err(|e| io("create", p, e))
}

fn put(path: &Path, body: &[u8], mode: u32) -> Result<(), String> {
    if let Some(d) = path.parent() {
        mkdir(d)?;
    }
    fs::write(path, body).map_err(|e| io("write", path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| io("chmod", path, e))
}

fn copy(from: &Path, to: &Path, mode: u32) -> Result<(), String> {
    let body = fs::read(from).map_err(|e| io("read", from, e))?;
    put(to, &body, mode)
}

/// `gzip -9n` (no name, no time stamp: lintian and reproducibility want that).
fn gzip(from: &Path, to: &Path) -> Result<(), String> {
    let out = Command::new("gzip")
        .args(["-9nc"])
        .arg(from)
        .output()
        .map_err(|e| format!("cannot run gzip: {e}"))?;
    if !out.status.success() {
        return Err(format!("gzip {} failed", from.display()));
    }
    put(to, &out.stdout, 0o644)
}

/// The commit time of HEAD (RFC 2822), so the changelog date is reproducible.
fn commit_date() -> String {
    Command::new("git")
        .args(["log", "-1", "--format=%cD"])
        .current_dir(project_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "Tue, 01 Dec 2026 00:00:00 +0000".into())
}

/// The highest GLIBC_x.y symbol version the binary needs: its libc6 dependency.
fn glibc_needed(bin: &Path) -> Result<String, String> {
    let out = Command::new("objdump")
        .arg("-T")
        .arg(bin)
        .output()
        .map_err(|e| format!("cannot run objdump (binutils): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut best: Option<(u32, u32)> = None;
    for word in text.split_whitespace() {
        let v = word.trim_start_matches('(').trim_end_matches(')');
        if let Some(rest) = v.strip_prefix("GLIBC_") {
            let mut it = rest.split('.').map(|n| n.parse::<u32>().ok());
            if let (Some(Some(a)), Some(Some(b))) = (it.next(), it.next()) {
                best = best.max(Some((a, b)));
            }
        }
    }
    let (a, b) = best.ok_or_else(|| format!("{} needs no GLIBC symbol?", bin.display()))?;
    Ok(format!("libc6 (>= {a}.{b})"))
}

/// Lays out the package tree under `out/stage` and builds the `.deb`.
pub fn assemble(bin: &Path, version: &str, out: &Path) -> Result<PathBuf, String> {
    let stage = out.join("stage");
    remove_dir(&stage)?;
    mkdir(&stage)?;
    let gen = out.join("generated");
    remove_dir(&gen)?;
    util::run(Command::new(bin).args(["dist-files", "--out"]).arg(&gen))?;

    // The binary, stripped; its debug symbols beside the package.
    let usr_bin = stage.join("usr/bin/spyglass-admin");
    copy(bin, &usr_bin, 0o755)?;
    let debug = out.join("spyglass-admin.debug");
    util::run(
        Command::new("objcopy")
            .arg("--only-keep-debug")
            .arg(&usr_bin)
            .arg(&debug),
    )?;
    util::run(
        Command::new("strip")
            .args([
                "--strip-unneeded",
                "--remove-section=.comment",
                "--remove-section=.note",
            ])
            .arg(&usr_bin),
    )?;

    let man_dir = stage.join("usr/share/man/man1");
    let mut pages: Vec<PathBuf> = fs::read_dir(gen.join("man"))
        .map_err(|e| io("read", &gen.join("man"), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    pages.sort();
    for page in &pages {
        let name = page
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        gzip(page, &man_dir.join(format!("{name}.gz")))?;
    }
    let comp = gen.join("completions");
    copy(
        &comp.join("spyglass-admin"),
        &stage.join("usr/share/bash-completion/completions/spyglass-admin"),
        0o644,
    )?;
    copy(
        &comp.join("_spyglass-admin"),
        &stage.join("usr/share/zsh/vendor-completions/_spyglass-admin"),
        0o644,
    )?;
    copy(
        &comp.join("spyglass-admin.fish"),
        &stage.join("usr/share/fish/vendor_completions.d/spyglass-admin.fish"),
        0o644,
    )?;
    // Debian 12 keeps packaged units in /lib/systemd/system.
    for unit in UNITS {
        copy(
            &gen.join("systemd").join(unit),
            &stage.join("lib/systemd/system").join(unit),
            0o644,
        )?;
    }
    let root = project_root();
    copy(
        &root.join("dist/spyglass-admin.toml"),
        &stage.join("etc/spyglass-admin.toml"),
        0o600,
    )?;
    copy(
        &root.join("dist/default"),
        &stage.join("etc/default/spyglass-admin"),
        0o600,
    )?;
    let state = stage.join("var/lib/spyglass-admin");
    mkdir(&state)?;
    fs::set_permissions(&state, fs::Permissions::from_mode(0o750))
        .map_err(|e| io("chmod", &state, e))?;

    let doc = stage.join("usr/share/doc").join(PACKAGE);
    gzip(&root.join("README.md"), &doc.join("README.md.gz"))?;
    gzip(
        &root.join("ARCHITECTURE.md"),
        &doc.join("ARCHITECTURE.md.gz"),
    )?;
    put(
        &doc.join("copyright"),
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
             Upstream-Name: spyglass-admin\n\
             Source: https://github.com/spyglass-admin/spyglass-admin\n\
             \n\
             Files: *\n\
             Copyright: 2026 spyglass-admin developers\n\
             License: MIT or Apache-2.0\n \
             Licensed under either of the Apache License, Version 2.0 or the MIT\n \
             license, at your option. On Debian systems the Apache License 2.0 is in\n \
             /usr/share/common-licenses/Apache-2.0.\n"
            .as_bytes(),
        0o644,
    )?;
    let changelog = out.join("changelog.Debian");
    put(
        &changelog,
        format!(
            "{PACKAGE} ({version}) unstable; urgency=medium\n\n  \
             * Built by cargo xtask dist.\n\n \
             -- {MAINTAINER}  {}\n",
            commit_date()
        )
        .as_bytes(),
        0o644,
    )?;
    gzip(&changelog, &doc.join("changelog.Debian.gz"))?;

    // Control files.
    let installed_kib = du_kib(&stage)?;
    let control = format!(
        "Package: {PACKAGE}\n\
         Version: {version}\n\
         Section: database\n\
         Priority: optional\n\
         Architecture: amd64\n\
         Maintainer: {MAINTAINER}\n\
         Installed-Size: {installed_kib}\n\
         Depends: {}\n\
         Suggests: mariadb-client | default-mysql-client, openssh-client, rsync\n\
         Homepage: https://github.com/spyglass-admin/spyglass-admin\n\
         Description: users, backups and file cleanup for a Spyglass lab database\n \
         spyglass-admin runs the database side of a Spyglass (DataJoint) lab on its\n \
         MySQL or MariaDB server: accounts and privileges by schema prefix, nightly\n \
         consistent compressed backups that are verified, shipped off-site and\n \
         pruned, and removal of analysis files that no table tracks any more.\n",
        glibc_needed(bin)?
    );
    let debian = stage.join("DEBIAN");
    put(&debian.join("control"), control.as_bytes(), 0o644)?;
    put(
        &debian.join("conffiles"),
        b"/etc/spyglass-admin.toml\n/etc/default/spyglass-admin\n",
        0o644,
    )?;
    put(&debian.join("md5sums"), md5sums(&stage)?.as_bytes(), 0o644)?;

    let deb = out.join(format!("{PACKAGE}_{version}_amd64.deb"));
    let built = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&stage)
        .arg(&deb)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run dpkg-deb: {e}"))?;
    if !built.success() {
        return Err(format!("dpkg-deb --build {} failed", stage.display()));
    }
    Ok(deb)
}

fn du_kib(dir: &Path) -> Result<u64, String> {
    let out = Command::new("du")
        .args(["-sk", "--apparent-size"])
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run du: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("du -sk {} gave no size", dir.display()))
}

/// `DEBIAN/md5sums`: every regular file but the conffiles, as dpkg writes it.
fn md5sums(stage: &Path) -> Result<String, String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg("find usr lib var -type f -print0 | sort -z | xargs -0 md5sum")
        .current_dir(stage)
        .output()
        .map_err(|e| format!("cannot run md5sum: {e}"))?;
    if !out.status.success() {
        return Err("md5sum over the package tree failed".into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

// ---------------------------------------------------------------------------
// --check: the package tried from the outside, in a throwaway root.

fn output(cmd: &mut Command) -> Result<(i32, String, String), String> {
    let o = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", util::describe(cmd)))?;
    Ok((
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    ))
}

fn expect(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("package check failed: {}", what()))
    }
}

/// An empty dpkg database under `root`: `dpkg --root` installs there and never
/// into this machine's own /etc (the tool reads /etc/spyglass-admin.toml).
fn fresh_root(root: &Path) -> Result<(), String> {
    remove_dir(root)?;
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
    ] {
        mkdir(&root.join(d))?;
    }
    put(&root.join("var/lib/dpkg/status"), b"", 0o644)
}

fn dpkg(root: &Path, args: &[&str], what: &str) -> Result<(), String> {
    // libc6 is on this machine, not in the throwaway root's database.
    let (code, out, err) = output(
        Command::new("dpkg")
            .arg(format!("--root={}", root.display()))
            .arg("--force-depends")
            .args(args),
    )?;
    expect(code == 0, || {
        format!("dpkg {what} exited {code}:\n{out}{err}")
    })
}

fn check_package(bin: &Path, deb: &Path, out: &Path) -> Result<(), String> {
    util::apt_install_missing(
        &[
            ("lintian", "lintian"),
            ("zsh", "zsh"),
            ("fish", "fish"),
            ("man", "man-db"),
            ("systemd-analyze", "systemd"),
        ],
        "the package checks",
    )?;
    let root = out.join("root");
    fresh_root(&root)?;

    eprintln!("xtask: dist check: lintian");
    let (code, o, e) = output(
        Command::new("lintian")
            .args(["--fail-on", "error", "--tag-display-limit", "0"])
            .arg(deb),
    )?;
    let errors: Vec<&str> = o
        .lines()
        .chain(e.lines())
        .filter(|l| l.starts_with("E: "))
        .collect();
    expect(code == 0 && errors.is_empty(), || {
        format!("lintian reports errors (exit {code}):\n{o}{e}")
    })?;
    let warnings = o.lines().filter(|l| l.starts_with("W: ")).count();
    eprintln!("xtask: lintian: no errors, {warnings} warnings");

    // An older build first, with a local change to the settings, then the upgrade.
    eprintln!("xtask: dist check: install an older build, change its settings, upgrade");
    let old = assemble(bin, &format!("{}-0", upstream_version()), &out.join("old"))?;
    dpkg(
        &root,
        &["-i", &old.display().to_string()],
        "-i (older build)",
    )?;
    let conf = root.join("etc/spyglass-admin.toml");
    let meta = fs::metadata(&conf).map_err(|e| io("stat", &conf, e))?;
    expect(meta.permissions().mode() & 0o777 == 0o600, || {
        format!(
            "{} is mode {:o}, not 0600",
            conf.display(),
            meta.permissions().mode() & 0o777
        )
    })?;
    let local = "\n# local change: kept across upgrades\n";
    let mut text = fs::read_to_string(&conf).map_err(|e| io("read", &conf, e))?;
    text.push_str(local);
    fs::write(&conf, &text).map_err(|e| io("write", &conf, e))?;
    dpkg(&root, &["-i", &deb.display().to_string()], "-i (upgrade)")?;
    let after = fs::read_to_string(&conf).map_err(|e| io("read", &conf, e))?;
    expect(after.ends_with(local), || {
        format!(
            "the upgrade overwrote the local change to {}",
            conf.display()
        )
    })?;

    let installed = root.join("usr/bin/spyglass-admin");
    let (code, v, _) = output(Command::new(&installed).arg("--version"))?;
    expect(code == 0 && v.contains(upstream_version()), || {
        format!("--version printed {v:?}")
    })?;
    let (_, sections, _) = output(Command::new("readelf").arg("-S").arg(&installed))?;
    expect(
        sections.contains(".text")
            && !sections.contains(".symtab")
            && !sections.contains(".debug_info")
            && !sections.contains(".debug_line"),
        || format!("the installed binary is not stripped:\n{sections}"),
    )?;

    // The example settings parse, every commented key switched on.
    let all_on: String = after
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.contains(" = ") && !rest.starts_with(' ') => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    // The example's password file does not exist here; `schedule` rightly
    // refuses a missing one, so it gets one of its own (mode 0600).
    let pw = out.join("backup.pw");
    put(&pw, b"not-a-real-password\n", 0o600)?;
    let all_on = all_on.replace(
        "\"/etc/spyglass-admin/backup.pass\"",
        &format!("\"{}\"", pw.display()),
    );
    expect(!all_on.contains("/etc/spyglass-admin/backup.pass"), || {
        "the example's password_file line changed: update the dist check".into()
    })?;
    let all_on_path = out.join("all-keys.toml");
    put(&all_on_path, all_on.as_bytes(), 0o600)?;
    let (code, o, e) = output(
        Command::new(&installed)
            .args(["schedule", "--print", "--systemd", "--config"])
            .arg(&all_on_path),
    )?;
    expect(code == 0, || {
        format!(
            "the example settings with every key switched on do not load (exit {code}):\n{o}{e}"
        )
    })?;

    eprintln!("xtask: dist check: doctor --json against a sandbox MariaDB");
    let was_running = sandbox::running(Flavor::Mariadb).is_some();
    let s = sandbox::start(Flavor::Mariadb)?;
    let work = out.join("work");
    mkdir(&work)?;
    let doctor = output(
        Command::new(&installed)
            .args(["doctor", "--json", "--config"])
            .arg(&conf)
            .current_dir(&work)
            .env("DJ_HOST", format!("{}:{}", s.host(), s.port))
            .env("DJ_USER", s.user())
            .env("DJ_PASS", "")
            .env("HOME", &work),
    );
    if !was_running {
        sandbox::stop(Flavor::Mariadb)?;
    }
    let (code, o, e) = doctor?;
    expect(code == 0 || code == 1, || {
        format!("installed doctor exited {code}:\n{o}{e}")
    })?;
    expect(
        o.contains("\"server\"") && o.contains(&s.port.to_string()),
        || format!("installed doctor --json does not describe the sandbox server:\n{o}"),
    )?;

    eprintln!("xtask: dist check: man pages render");
    let man_dir = root.join("usr/share/man/man1");
    let mut n = 0;
    for page in fs::read_dir(&man_dir).map_err(|e| io("read", &man_dir, e))? {
        let page = page.map_err(|e| io("read", &man_dir, e))?.path();
        let (code, o, e) = output(
            Command::new("man")
                .args(["--warnings", "-l"])
                .arg(&page)
                .env("MANWIDTH", "80"),
        )?;
        let name = page
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .trim_end_matches(".1.gz")
            .to_string();
        expect(
            code == 0 && e.trim().is_empty() && o.contains("NAME") && o.contains(&name),
            || format!("man -l {} (exit {code}):\n{e}", page.display()),
        )?;
        n += 1;
    }
    expect(n > 10, || format!("only {n} man pages installed"))?;

    eprintln!("xtask: dist check: completions load in bash, zsh and fish");
    let bash = root.join("usr/share/bash-completion/completions/spyglass-admin");
    let (code, o, e) = output(Command::new("bash").arg("-c").arg(format!(
        "source '{}' && complete -p spyglass-admin",
        bash.display()
    )))?;
    expect(code == 0 && o.contains("spyglass-admin"), || {
        format!("bash completion: exit {code}\n{o}{e}")
    })?;
    let zsh = root.join("usr/share/zsh/vendor-completions/_spyglass-admin");
    let (code, o, e) = output(Command::new("zsh").arg("-fc").arg(format!(
        "autoload -U compinit && compinit -u -d '{}' && source '{}' && print -r -- $_comps[spyglass-admin]",
        out.join("zcompdump").display(),
        zsh.display()
    )))?;
    expect(code == 0 && o.trim() == "_spyglass-admin", || {
        format!("zsh completion: exit {code}\n{o}{e}")
    })?;
    let fish = root.join("usr/share/fish/vendor_completions.d/spyglass-admin.fish");
    let (code, o, e) = output(Command::new("fish").arg("-c").arg(format!(
        "source '{}'; complete -C'spyglass-admin '",
        fish.display()
    )))?;
    expect(
        code == 0 && o.contains("backup") && o.contains("cleanup"),
        || format!("fish completion: exit {code}\n{o}{e}"),
    )?;

    eprintln!("xtask: dist check: systemd-analyze verify");
    // A separate root with the host's own units (for sysinit.target and friends)
    // plus ours and our binary, so verify can follow every dependency.
    let vroot = out.join("verify-root");
    remove_dir(&vroot)?;
    mkdir(&vroot.join("lib/systemd/system"))?;
    util::run(
        Command::new("cp")
            .args(["-a", "/lib/systemd/system/."])
            .arg(vroot.join("lib/systemd/system")),
    )?;
    for unit in UNITS {
        copy(
            &root.join("lib/systemd/system").join(unit),
            &vroot.join("lib/systemd/system").join(unit),
            0o644,
        )?;
    }
    copy(&installed, &vroot.join("usr/bin/spyglass-admin"), 0o755)?;
    let (code, o, e) = output(
        Command::new("systemd-analyze")
            .arg(format!("--root={}", vroot.display()))
            .args([
                "verify",
                "/lib/systemd/system/spyglass-nightly.service",
                "/lib/systemd/system/spyglass-nightly.timer",
                "/lib/systemd/system/spyglass-nightly-failure.service",
            ])
            .env("MANPATH", root.join("usr/share/man")),
    )?;
    expect(
        code == 0 && e.trim().is_empty() && o.trim().is_empty(),
        || format!("systemd-analyze verify (exit {code}):\n{o}{e}"),
    )?;
    // What `schedule --print --systemd` prints is the packaged service with the site filled in.
    let (_, printed, _) = output(
        Command::new(&installed)
            .args(["schedule", "--print", "--systemd", "--config"])
            .arg(&all_on_path),
    )?;
    let packaged = fs::read_to_string(root.join("lib/systemd/system/spyglass-nightly.service"))
        .map_err(|e| io("read", &root, e))?;
    for line in packaged
        .lines()
        .filter(|l| !l.starts_with("ExecStart=") && !l.starts_with("WorkingDirectory="))
    {
        expect(printed.lines().any(|p| p == line), || {
            format!("schedule --print --systemd lacks the packaged line {line:?}:\n{printed}")
        })?;
    }

    eprintln!("xtask: dist check: remove keeps the settings, purge removes them");
    dpkg(&root, &["-r", PACKAGE], "-r")?;
    expect(!installed.exists(), || {
        "dpkg -r left /usr/bin/spyglass-admin".into()
    })?;
    expect(conf.exists(), || {
        "dpkg -r removed /etc/spyglass-admin.toml".into()
    })?;
    dpkg(&root, &["--purge", PACKAGE], "--purge")?;
    expect(!conf.exists(), || {
        "dpkg --purge kept /etc/spyglass-admin.toml".into()
    })?;
    expect(!root.join("etc/default/spyglass-admin").exists(), || {
        "dpkg --purge kept /etc/default/spyglass-admin".into()
    })?;
    Ok(())
}
