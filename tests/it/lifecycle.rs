//! Backup lifecycle: ship to a real sshd on 127.0.0.1 (rsync and sftp),
//! resume after a killed transfer, damaged copies reported, prune with
//! made-up dates, pack/unpack, and two concurrent `nightly` runs.
//!
//! Every test starts its own sshd (own host key, own authorized key, a free
//! port on 127.0.0.1) and stops it when it ends; the "remote" directory is a
//! temp dir on this machine reached through that sshd.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{closed_port, Sandbox};

/// A throwaway sshd on 127.0.0.1 that lets in one generated key (pitr.rs and
/// the S3 tests ship to one too).
pub(crate) struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
    user: String,
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "spyglass-it", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen runs (apt-get install openssh-client)");
    assert!(st.success(), "ssh-keygen {}", path.display());
}

impl Sshd {
    pub(crate) fn start() -> Sshd {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(
            sshd.is_file(),
            "/usr/sbin/sshd is missing: cargo xtask itest installs openssh-server and rsync"
        );
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd (sshd's privilege separation dir)");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        keygen(&d.join("wrong_key"));
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys"))
            .expect("authorized_keys");
        std::fs::create_dir(d.join("remote")).expect("remote dir");
        let port = closed_port();
        let cfg = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
             UsePAM no\nSubsystem sftp internal-sftp\nLogLevel ERROR\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), cfg).expect("sshd_config");
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).expect("host key");
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {host_pub}"),
        )
        .expect("known_hosts");
        // The client side: this sshd's host key only, never prompt.
        std::fs::write(
            d.join("ssh_config"),
            format!(
                "Host *\n  UserKnownHostsFile {d}/known_hosts\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n",
                d = d.display()
            ),
        )
        .expect("ssh_config");
        std::fs::write(
            d.join("ssh_config_unknown_host"),
            format!(
                "Host *\n  UserKnownHostsFile {d}/empty_known_hosts\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n",
                d = d.display()
            ),
        )
        .expect("ssh_config");
        let log = std::fs::File::create(d.join("sshd.log")).expect("log");
        let child = Command::new(sshd)
            .arg("-D")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .arg("-e")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not listen on 127.0.0.1:{port}: {}",
                std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let user = String::from_utf8(Command::new("id").arg("-un").output().expect("id").stdout)
            .expect("utf8")
            .trim()
            .to_owned();
        Sshd {
            dir,
            port,
            child,
            user,
        }
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The remote directory as seen from this machine.
    pub(crate) fn remote(&self) -> PathBuf {
        self.path("remote")
    }

    pub(crate) fn target(&self, sub: &str) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}/{sub}",
            self.user,
            self.port,
            self.remote().display()
        )
    }

    /// `--identity` and `--ssh-config` for this server.
    pub(crate) fn ssh_args(&self) -> Vec<String> {
        vec![
            "--identity".into(),
            self.path("client_key").display().to_string(),
            "--ssh-config".into(),
            self.path("ssh_config").display().to_string(),
        ]
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real backup of the fixture's schemas into `dest`; returns the set's path.
fn fixture_set(sb: &Sandbox, dest: &Path, extra: &[&str]) -> PathBuf {
    let schemas = spyglass_fixture::SCHEMAS.join(",");
    let mut args = vec![
        "backup",
        "run",
        "--dest",
        dest.to_str().expect("utf8"),
        "--label",
        "lc",
        "--schemas",
        &schemas,
        "-t",
        "2",
    ];
    args.extend_from_slice(extra);
    let out = sb.run(&args);
    out.assert_code(0);
    PathBuf::from(out.stdout.trim())
}

fn files_under(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).expect("prefix").display().to_string());
            }
        }
    }
    let mut v = Vec::new();
    walk(root, root, &mut v);
    v.sort();
    v
}

/// Same file names, same bytes.
#[track_caller]
fn assert_same_tree(a: &Path, b: &Path) {
    let fa = files_under(a);
    assert!(fa.len() > 10, "{fa:?}");
    assert_eq!(
        fa,
        files_under(b),
        "same files in {} and {}",
        a.display(),
        b.display()
    );
    for f in &fa {
        assert!(
            std::fs::read(a.join(f)).expect("read") == std::fs::read(b.join(f)).expect("read"),
            "{f} differs"
        );
    }
}

fn ship(
    sb: &Sandbox,
    sshd: &Sshd,
    set: &Path,
    to: &str,
    extra: &[&str],
) -> crate::support::Outcome {
    let mut args: Vec<String> = vec![
        "backup".into(),
        "ship".into(),
        set.display().to_string(),
        "--to".into(),
        to.into(),
    ];
    args.extend(sshd.ssh_args());
    args.extend(extra.iter().map(|s| s.to_string()));
    sb.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn ship_over_rsync_and_sftp_arrives_byte_for_byte() {
    let sshd = Sshd::start();
    let sb = Sandbox::as_root();
    let set = fixture_set(&sb, &sb.cwd().join("backups"), &[]);
    let name = set
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();

    let out = ship(&sb, &sshd, &set, &sshd.target("rsync"), &["--json"]);
    out.assert_code(0);
    let v = out.json();
    assert_eq!(v["transport"], "rsync", "{v:#}");
    assert_eq!(v["verified_by"], "sha256sum");
    assert_eq!(v["already_there"], false);
    assert_same_tree(&set, &sshd.remote().join("rsync").join(&name));
    assert!(!sshd
        .remote()
        .join("rsync")
        .join(format!("{name}.partial"))
        .exists());

    // Again: the verified copy is recognised, nothing is sent.
    let v = ship(&sb, &sshd, &set, &sshd.target("rsync"), &["--json"])
        .assert_code(0)
        .json();
    assert_eq!(v["already_there"], true, "{v:#}");

    // sftp, verified by reading every file back; then the source is removed.
    let out = ship(
        &sb,
        &sshd,
        &set,
        &sshd.target("sftp"),
        &["--transport", "sftp", "--read-back"],
    );
    out.assert_code(0);
    assert!(
        out.stdout.contains("sent by sftp, verified by read-back"),
        "{}",
        out.stdout
    );
    assert_same_tree(&set, &sshd.remote().join("sftp").join(&name));

    // A local directory target (a mounted NAS).
    let nas = sb.cwd().join("nas");
    sb.run(&[
        "backup",
        "ship",
        set.to_str().expect("utf8"),
        "--to",
        nas.to_str().expect("utf8"),
    ])
    .assert_code(0);
    assert_same_tree(&set, &nas.join(&name));
    // The shipped copy verifies with the tool too.
    sb.run(&["backup", "verify", nas.join(&name).to_str().expect("utf8")])
        .assert_code(0);

    // --prune: the [backup] policy applied on the target after the ship.
    made_up_set(&sshd.remote().join("rsync"), "20250101-020000");
    sb.write("spyglass-admin.toml", "[backup]\nkeep_last = 1\n", 0o644);
    let out = ship(&sb, &sshd, &set, &sshd.target("rsync"), &["--prune"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("remove       nightly-20250101-020000"),
        "{}",
        out.stdout
    );
    assert!(!sshd.remote().join("rsync/nightly-20250101-020000").exists());
    assert!(sshd.remote().join("rsync").join(&name).is_dir());

    let out = ship(
        &sb,
        &sshd,
        &set,
        &sshd.target("rsync2"),
        &["--remove-source"],
    );
    out.assert_code(0);
    assert!(
        !set.exists(),
        "--remove-source removed the local set after verification"
    );
    assert!(
        out.stdout.contains("removed the local set"),
        "{}",
        out.stdout
    );
    assert_same_tree(
        &sshd.remote().join("rsync").join(&name),
        &sshd.remote().join("rsync2").join(&name),
    );
}

#[test]
fn killed_transfer_resumes_and_verifies() {
    let sshd = Sshd::start();
    let sb = Sandbox::as_root();
    // Uncompressed, so there is enough to send for the kill to land mid-transfer.
    let set = fixture_set(&sb, &sb.cwd().join("backups"), &["--compress", "none"]);
    let name = set
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let total: u64 = files_under(&set)
        .iter()
        .map(|f| std::fs::metadata(set.join(f)).expect("meta").len())
        .sum();
    assert!(total > 2 << 20, "set is {total} bytes");
    let partial = sshd.remote().join("b").join(format!("{name}.partial"));

    // 256 KiB/s: several seconds for the set. Kill the whole process group
    // (the tool, rsync and ssh) once some bytes have arrived.
    let mut args: Vec<String> = vec![
        "backup".into(),
        "ship".into(),
        set.display().to_string(),
        "--to".into(),
        sshd.target("b"),
    ];
    args.extend(sshd.ssh_args());
    args.extend(["--bwlimit".into(), "256".into()]);
    let mut c = sb.command(&args.iter().map(String::as_str).collect::<Vec<_>>());
    std::os::unix::process::CommandExt::process_group(&mut c, 0);
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ship");
    let deadline = Instant::now() + Duration::from_secs(60);
    let arrived = || {
        if partial.is_dir() {
            files_under(&partial)
                .iter()
                .map(|f| {
                    std::fs::metadata(partial.join(f))
                        .map(|m| m.len())
                        .unwrap_or(0)
                })
                .sum::<u64>()
        } else {
            0
        }
    };
    while arrived() < 300 << 10 {
        assert!(Instant::now() < deadline, "nothing arrived");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "ship finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status()
        .expect("kill");
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(300));
    let got = arrived();
    assert!(got < total, "killed halfway: {got} of {total} bytes there");
    assert!(
        !sshd.remote().join("b").join(&name).exists(),
        "an unverified copy is never renamed into place"
    );
    assert!(set.is_dir(), "the local set is kept");

    let out = ship(&sb, &sshd, &set, &sshd.target("b"), &["--json"]);
    out.assert_code(0);
    assert_eq!(out.json()["already_there"], false);
    assert_same_tree(&set, &sshd.remote().join("b").join(&name));
    assert!(!partial.exists());
}

#[test]
fn damaged_copies_are_reported_and_repaired() {
    let sshd = Sshd::start();
    let sb = Sandbox::as_root();
    let set = fixture_set(&sb, &sb.cwd().join("backups"), &[]);
    let name = set
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    ship(&sb, &sshd, &set, &sshd.target("b"), &[]).assert_code(0);
    let copy = sshd.remote().join("b").join(&name);
    let victim = files_under(&copy)
        .into_iter()
        .find(|f| f.starts_with("2-data/"))
        .expect("a data file");
    let flip = |p: &Path| {
        let mut bytes = std::fs::read(p).expect("read");
        let i = bytes.len() / 2;
        bytes[i] ^= 0x55;
        // Same size and the same mtime: rsync's quick check cannot see it.
        let mtime = std::fs::metadata(p)
            .expect("meta")
            .modified()
            .expect("mtime");
        std::fs::write(p, &bytes).expect("write");
        std::fs::File::options()
            .write(true)
            .open(p)
            .expect("open")
            .set_modified(mtime)
            .expect("set mtime");
    };

    // A damaged complete copy: reported with host and file, exit 2, local kept.
    flip(&copy.join(&victim));
    let out = ship(&sb, &sshd, &set, &sshd.target("b"), &[]);
    out.assert_code(2).assert_clean_error();
    assert!(out.stderr.contains(&sshd.host()), "{}", out.stderr);
    assert!(out.stderr.contains(&victim), "{}", out.stderr);
    assert!(out.stderr.contains("damaged"), "{}", out.stderr);
    assert!(
        out.stderr.contains("hint: ship again with --repair"),
        "{}",
        out.stderr
    );
    assert!(set.is_dir());
    let v = ship(&sb, &sshd, &set, &sshd.target("b"), &["--repair", "--json"])
        .assert_code(0)
        .json();
    assert_eq!(v["resent"], serde_json::json!([victim]), "{v:#}");
    assert_same_tree(&set, &copy);

    // A damaged file in an interrupted copy: found on arrival and sent again.
    let partial = sshd.remote().join("b").join(format!("{name}.partial"));
    std::fs::rename(&copy, &partial).expect("rename");
    flip(&partial.join(&victim));
    let v = ship(&sb, &sshd, &set, &sshd.target("b"), &["--json"])
        .assert_code(0)
        .json();
    assert_eq!(v["resent"], serde_json::json!([victim]), "{v:#}");
    assert_same_tree(&set, &copy);
    // The same through the tool's own verify on the arrived copy.
    sb.run(&["backup", "verify", copy.to_str().expect("utf8")])
        .assert_code(0);
}

#[test]
fn ship_failures_name_the_host_and_keep_the_set() {
    let sshd = Sshd::start();
    let sb = Sandbox::as_root();
    let set = fixture_set(&sb, &sb.cwd().join("backups"), &[]);
    let s = set.to_str().expect("utf8");
    let cfg = sshd.path("ssh_config").display().to_string();
    let key = sshd.path("client_key").display().to_string();
    let wrong = sshd.path("wrong_key").display().to_string();

    let closed = closed_port();
    let to = format!("ssh://{}@127.0.0.1:{closed}/tmp/x", sshd.user);
    let out = sb.run(&[
        "backup",
        "ship",
        s,
        "--to",
        &to,
        "--identity",
        &key,
        "--ssh-config",
        &cfg,
    ]);
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr
            .contains(&format!("cannot reach 127.0.0.1:{closed}")),
        "{}",
        out.stderr
    );

    let out = sb.run(&[
        "backup",
        "ship",
        s,
        "--to",
        &sshd.target("b"),
        "--identity",
        &wrong,
        "--ssh-config",
        &cfg,
    ]);
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains(&format!(
            "{} refused the login of {}",
            sshd.host(),
            sshd.user
        )),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("PRIVATE KEY"),
        "no key material in messages"
    );

    let unknown = sshd.path("ssh_config_unknown_host").display().to_string();
    let out = sb.run(&[
        "backup",
        "ship",
        s,
        "--to",
        &sshd.target("b"),
        "--identity",
        &key,
        "--ssh-config",
        &unknown,
    ]);
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr
            .contains(&format!("the host key of {}", sshd.host())),
        "{}",
        out.stderr
    );
    assert_host_key_advice(&sshd, &out.stderr);

    let out = sb.run(&["backup", "ship", s, "--to", "backup@nas:/srv"]);
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains("ssh://user@host/path"),
        "{}",
        out.stderr
    );

    assert!(set.is_dir(), "the local set is kept");
    sb.run(&["backup", "verify", s]).assert_code(0);
    assert!(!sshd.remote().join("b").exists() || files_under(&sshd.remote().join("b")).is_empty());
}

/// The unknown-host-key message gives the fingerprint the server presents
/// (the one of its host key) and the exact command that records it in the
/// known_hosts file `ssh_config_unknown_host` uses.
#[track_caller]
fn assert_host_key_advice(sshd: &Sshd, text: &str) {
    let fp = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(sshd.path("host_key.pub"))
        .output()
        .expect("ssh-keygen -lf");
    let fp = String::from_utf8_lossy(&fp.stdout);
    let sha = fp.split_whitespace().nth(1).expect("fingerprint");
    assert!(sha.starts_with("SHA256:"), "{fp}");
    assert!(text.contains(sha), "the fingerprint {sha} is shown: {text}");
    let cmd = format!(
        "ssh-keyscan -p {} 127.0.0.1 >> {}",
        sshd.port,
        sshd.path("empty_known_hosts").display()
    );
    assert!(text.contains(&cmd), "the command `{cmd}` is shown: {text}");
    // Run as shown, it makes the key known: the next connection works.
    let st = Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .stderr(Stdio::null())
        .status()
        .expect("sh");
    assert!(st.success());
    let ok = Command::new("ssh")
        .args(["-F"])
        .arg(sshd.path("ssh_config_unknown_host"))
        .arg("-i")
        .arg(sshd.path("client_key"))
        .args(["-o", "BatchMode=yes", "-p", &sshd.port.to_string()])
        .arg(format!("{}@127.0.0.1", sshd.user))
        .arg("true")
        .stdin(Stdio::null())
        .status()
        .expect("ssh");
    assert!(ok.success(), "the command added the right key");
    std::fs::remove_file(sshd.path("empty_known_hosts")).expect("reset");
}

/// A set directory with a minimal valid manifest (no files), named for `stamp`.
fn made_up_set(dest: &Path, stamp: &str) {
    let d = dest.join(format!("nightly-{stamp}"));
    std::fs::create_dir_all(&d).expect("mkdir");
    let m = serde_json::json!({
        "format": 1, "tool_version": "test", "engine": "native", "label": "nightly",
        "server": {"flavor": "mariadb", "version": "10.11", "address": "127.0.0.1:3306"},
        "snapshot": {"method": "none", "ddl_lock": "none", "binlog_file": null, "binlog_position": null, "gtid": null, "workers": 1},
        "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:00:01Z",
        "compression": {"method": "gzip", "level": 1}, "encoding": "escaped", "max_statement_bytes": 0,
        "schemas": [], "tables": [], "files": [], "notes": []
    });
    std::fs::write(d.join("manifest.json"), m.to_string()).expect("manifest");
}

/// Every night at 02:00 UTC from 2026-08-01 to 2026-11-20, two sets on
/// 2026-11-20, a crashed run's leftover and a run still writing.
fn made_up_history(dest: &Path) {
    std::fs::create_dir_all(dest).expect("mkdir");
    let (mut y, mut m, mut d) = (2026, 8, 1);
    let days = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    while (y, m, d) <= (2026, 11, 20) {
        made_up_set(dest, &format!("{y:04}{m:02}{d:02}-020000"));
        d += 1;
        if d > days[m as usize] {
            d = 1;
            m += 1;
            if m > 12 {
                m = 1;
                y += 1;
            }
        }
    }
    made_up_set(dest, "20261120-140000");
    let dead = dest.join("nightly-20261119-030000.partial");
    std::fs::create_dir_all(&dead).expect("mkdir");
    std::fs::write(dead.join("writer.pid"), "4000000\n").expect("pid");
    let alive = dest.join("nightly-20261118-030000.partial");
    std::fs::create_dir_all(&alive).expect("mkdir");
    std::fs::write(
        alive.join("writer.pid"),
        format!("{}\n", std::process::id()),
    )
    .expect("pid");
}

fn dirs(dest: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dest)
        .expect("read")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("nightly-"))
        .map(|n| n.trim_start_matches("nightly-2026").to_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn prune_keeps_exactly_what_each_policy_says() {
    let sb = Sandbox::new();
    // Survivors are named MMDD-HHMMSS; the writing set and the newest are always there.
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--keep-last", "3"],
            &[
                "1118-030000.partial",
                "1119-020000",
                "1120-020000",
                "1120-140000",
            ],
        ),
        (
            &["--keep-daily", "3"],
            &[
                "1118-020000",
                "1118-030000.partial",
                "1119-020000",
                "1120-140000",
            ],
        ),
        // ISO weeks: 11-20 is in week 47 (from Mon 11-16), 11-15 ends week 46, 11-08 week 45.
        (
            &["--keep-weekly", "3"],
            &[
                "1108-020000",
                "1115-020000",
                "1118-030000.partial",
                "1120-140000",
            ],
        ),
        (
            &["--keep-monthly", "6"],
            &[
                "0831-020000",
                "0930-020000",
                "1031-020000",
                "1118-030000.partial",
                "1120-140000",
            ],
        ),
        (
            &[
                "--keep-last",
                "1",
                "--keep-daily",
                "2",
                "--keep-weekly",
                "2",
                "--keep-monthly",
                "2",
            ],
            &[
                "1031-020000",
                "1115-020000",
                "1118-030000.partial",
                "1119-020000",
                "1120-140000",
            ],
        ),
    ];
    for (i, (flags, want)) in cases.iter().enumerate() {
        let dest = sb.cwd().join(format!("case{i}"));
        made_up_history(&dest);
        let before = dirs(&dest).len();
        let d = dest.to_str().expect("utf8");
        // A dry run removes nothing and says what it would do.
        let mut args = vec!["backup", "prune", d, "--dry-run"];
        args.extend_from_slice(flags);
        let out = sb.run(&args);
        out.assert_code(0);
        assert!(out.stdout.contains("would remove"), "{}", out.stdout);
        assert_eq!(dirs(&dest).len(), before);

        let mut args = vec!["backup", "prune", d, "--json"];
        args.extend_from_slice(flags);
        let out = sb.run(&args);
        out.assert_code(0);
        assert_eq!(dirs(&dest), *want, "{flags:?}");
        let v = out.json();
        let leftover = v["sets"]
            .as_array()
            .expect("sets")
            .iter()
            .find(|s| s["name"] == "nightly-20261119-030000.partial")
            .expect("leftover");
        assert_eq!(leftover["keep"], false);
        assert_eq!(
            leftover["reasons"][0],
            "unfinished leftover; its writer is gone"
        );
        let writing = v["sets"]
            .as_array()
            .expect("sets")
            .iter()
            .find(|s| s["name"] == "nightly-20261118-030000.partial")
            .expect("writing");
        assert_eq!(writing["keep"], true);
    }
    // The policy from spyglass-admin.toml; a typo there is an error naming the line.
    let dest = sb.cwd().join("from-settings");
    made_up_history(&dest);
    sb.write(
        "spyglass-admin.toml",
        &format!(
            "[backup]\ndestination = \"{}\"\nkeep_last = 2\n",
            dest.display()
        ),
        0o644,
    );
    sb.run(&["backup", "prune"]).assert_code(0);
    assert_eq!(
        dirs(&dest),
        ["1118-030000.partial", "1120-020000", "1120-140000"]
    );
    sb.write("spyglass-admin.toml", "[backup]\nkeep_lats = 2\n", 0o644);
    let out = sb.run(&["backup", "prune", dest.to_str().expect("utf8")]);
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr
            .contains("spyglass-admin.toml:2:1: unknown key `keep_lats`"),
        "{}",
        out.stderr
    );
    // No policy at all: refused.
    std::fs::remove_file(sb.cwd().join("spyglass-admin.toml")).expect("rm");
    sb.run(&["backup", "prune", dest.to_str().expect("utf8")])
        .assert_code(2)
        .assert_clean_error();
}

#[test]
fn prune_on_a_remote_target_over_ssh() {
    let sshd = Sshd::start();
    let sb = Sandbox::new();
    let dest = sshd.remote().join("b");
    made_up_history(&dest);
    // A transfer interrupted yesterday stays (the next ship resumes it).
    let yesterday = String::from_utf8(
        Command::new("date")
            .args(["-u", "-d", "1 day ago", "+%Y%m%d-%H%M%S"])
            .output()
            .expect("date")
            .stdout,
    )
    .expect("utf8");
    let fresh = format!("nightly-{}.partial", yesterday.trim());
    std::fs::create_dir_all(dest.join(&fresh)).expect("mkdir");
    sb.write(
        "spyglass-admin.toml",
        &format!(
            "[backup]\nkeep_daily = 2\nidentity = \"{}\"\nssh_config = \"{}\"\n",
            sshd.path("client_key").display(),
            sshd.path("ssh_config").display()
        ),
        0o644,
    );
    let out = sb.run(&["backup", "prune", &sshd.target("b")]);
    out.assert_code(0);
    assert!(out.stdout.contains("daily 2026-11-20"), "{}", out.stdout);
    // Remote partial copies have no known writer: kept unless older than 7 days.
    let mut left = dirs(&dest);
    left.retain(|n| !fresh.ends_with(n.as_str()));
    assert_eq!(left, ["1119-020000", "1120-140000"]);
    assert!(dest.join(&fresh).is_dir(), "{:?}", dirs(&dest));
}

#[test]
fn pack_unpack_and_verify_both_forms() {
    let sb = Sandbox::as_root();
    let set = fixture_set(&sb, &sb.cwd().join("backups"), &[]);
    let out = sb.run(&["backup", "pack", set.to_str().expect("utf8")]);
    out.assert_code(0);
    let tar = PathBuf::from(out.stdout.trim());
    assert_eq!(
        tar,
        set.with_file_name(format!(
            "{}.tar",
            set.file_name().expect("n").to_string_lossy()
        ))
    );
    sb.run(&["backup", "verify", tar.to_str().expect("utf8")])
        .assert_code(0);
    let into = sb.cwd().join("restored");
    std::fs::create_dir(&into).expect("mkdir");
    let out = sb.run(&[
        "backup",
        "unpack",
        tar.to_str().expect("utf8"),
        "--dest",
        into.to_str().expect("utf8"),
    ]);
    out.assert_code(0);
    let back = PathBuf::from(out.stdout.trim());
    assert_same_tree(&set, &back);
    sb.run(&["backup", "verify", back.to_str().expect("utf8")])
        .assert_code(0);

    // One flipped byte inside the biggest file in the tar: verify names the file, unpack refuses.
    let biggest = files_under(&set)
        .into_iter()
        .max_by_key(|f| std::fs::metadata(set.join(f)).expect("meta").len())
        .expect("files");
    let mut bytes = std::fs::read(&tar).expect("read");
    let at = bytes
        .windows(biggest.len())
        .rposition(|w| w == biggest.as_bytes())
        .expect("name in tar");
    bytes[(at / 512 + 1) * 512 + 100] ^= 0xff;
    std::fs::write(&tar, &bytes).expect("write");
    let out = sb.run(&["backup", "verify", tar.to_str().expect("utf8")]);
    out.assert_code(1);
    assert!(
        out.stdout
            .contains(&format!("BAD  {}", tar.join(&biggest).display())),
        "{}",
        out.stdout
    );
    sb.run(&[
        "backup",
        "unpack",
        tar.to_str().expect("utf8"),
        "--dest",
        sb.cwd().to_str().expect("utf8"),
    ])
    .assert_code(2)
    .assert_clean_error();
}

/// Settings for a nightly run shipping to `sshd`; cleanup scans the shared fixture.
fn nightly_settings(sb: &Sandbox, sshd: &Sshd, dest: &Path, bwlimit: u32) {
    let root = crate::support::fixture_root();
    sb.write(
        "dj_local_conf.json",
        &std::fs::read_to_string(root.join("dj_local_conf.json")).expect("fixture dj config"),
        0o600,
    );
    let schemas: Vec<String> = spyglass_fixture::SCHEMAS
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect();
    sb.write(
        "spyglass-admin.toml",
        &format!(
            "[backup]\ndestination = \"{dest}\"\nkeep_last = 2\nship_to = \"{to}\"\nidentity = \"{key}\"\nssh_config = \"{cfg}\"\nbwlimit_kib = {bwlimit}\n\n\
             [nightly]\nthreads = 2\nschemas = [{schemas}]\nnotify_command = \"cat > {notified}\"\n\n\
             [cleanup]\nschemas = [{schemas}]\n",
            dest = dest.display(),
            to = sshd.target("offsite"),
            key = sshd.path("client_key").display(),
            cfg = sshd.path("ssh_config").display(),
            schemas = schemas.join(", "),
            notified = sb.cwd().join("notified.json").display(),
        ),
        0o644,
    );
}

#[test]
fn two_concurrent_nightly_runs_one_proceeds() {
    let sshd = Sshd::start();
    // The DataJoint config in cwd says where the files are.
    let sb = Sandbox::as_root();
    let dest = sb.cwd().join("backups");
    nightly_settings(&sb, &sshd, &dest, 512);
    // Two older nights, so local and remote prune have something to do.
    made_up_set(&dest, "20261001-020000");
    made_up_set(&dest, "20261002-020000");
    made_up_set(&sshd.remote().join("offsite"), "20261001-020000");

    let first = sb
        .command(&["nightly"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("first nightly");
    let lock = dest.join(".spyglass-nightly.lock");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&lock)
        .unwrap_or_default()
        .starts_with("pid ")
    {
        assert!(
            Instant::now() < deadline,
            "the first run never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = Instant::now();
    let second = sb.run(&["nightly"]);
    second.assert_code(2).assert_clean_error();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the second run exits at once"
    );
    assert!(
        second.stderr.contains(&format!(
            "another nightly run is in progress: pid {} holds",
            first.id()
        )),
        "{}",
        second.stderr
    );
    let out: crate::support::Outcome = first.wait_with_output().expect("first").into();
    // Cleanup finds the fixture's planted files, dangling references among
    // them: possible data loss needs attention, so exit 2.
    out.assert_code(2);
    for step in ["backup", "verify", "ship", "prune", "prune-remote"] {
        let line = out
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(step) && l.contains(' '))
            .unwrap_or_default();
        assert!(line.contains(" ok "), "{step}: {}", out.stdout);
    }
    assert!(
        out.stdout.contains("cleanup       ATTENTION cleanup scan:"),
        "{}",
        out.stdout
    );

    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(dest.join("spyglass-nightly.json")).expect("summary"),
    )
    .expect("json");
    assert_eq!(summary["status"], "attention");
    assert_eq!(summary["exit_code"], 2);
    let set = PathBuf::from(summary["set"].as_str().expect("set"));
    let name = set.file_name().expect("n").to_string_lossy().into_owned();
    assert_same_tree(&set, &sshd.remote().join("offsite").join(&name));
    // keep_last = 2 here and there: the new set and the newer made-up one locally;
    // the new set and the old made-up one remotely.
    assert!(set.is_dir() && set.starts_with(&dest));
    assert!(
        dest.join("nightly-20261002-020000").is_dir(),
        "{:?}",
        dirs(&dest)
    );
    assert!(
        !dest.join("nightly-20261001-020000").exists(),
        "{:?}",
        dirs(&dest)
    );
    assert_eq!(dirs(&dest).len(), 2, "{:?}", dirs(&dest));
    assert!(sshd
        .remote()
        .join("offsite/nightly-20261001-020000")
        .is_dir());
    // notify_command got the same summary on stdin.
    let notified: Value = serde_json::from_str(
        &std::fs::read_to_string(sb.cwd().join("notified.json")).expect("notified"),
    )
    .expect("json");
    assert_eq!(notified["set"], summary["set"]);
    // One line per run, the refused second one too.
    let log = std::fs::read_to_string(dest.join("spyglass-nightly.log")).expect("log");
    assert_eq!(log.lines().count(), 2, "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("another nightly run is in progress")),
        "{log}"
    );

    // A lock left by a dead run is recovered; its pid is reported.
    std::fs::write(&lock, "pid 4000000\nsince 2026-11-25T02:00:00Z\n").expect("stale lock");
    let out = sb.run(&["nightly", "--json", "--no-ship"]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["lock_recovered_from"], 4_000_000);
    let ship = v["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["name"] == "ship")
        .expect("ship");
    assert_eq!(ship["status"], "skipped");
    // The newest of the previous run's sets is still there (keep_last = 2).
    assert!(set.is_dir());
}

#[test]
fn nightly_step_failure_skips_dependents_and_exits_2() {
    let sshd = Sshd::start();
    let sb = Sandbox::as_root();
    let dest = sb.cwd().join("backups");
    nightly_settings(&sb, &sshd, &dest, 0);
    // The target refuses our key: ship fails, remote prune is skipped, the rest runs.
    std::fs::write(
        sshd.path("authorized_keys"),
        std::fs::read(sshd.path("wrong_key.pub")).expect("key"),
    )
    .expect("write");
    let out = sb.run(&["nightly", "--json"]);
    out.assert_code(2);
    let v = out.json();
    let status = |name: &str| {
        v["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .find(|s| s["name"] == name)
            .expect("step")["status"]
            .clone()
    };
    assert_eq!(status("backup"), "ok", "{v:#}");
    assert_eq!(status("verify"), "ok");
    assert_eq!(status("ship"), "failed");
    assert_eq!(status("prune"), "ok");
    assert_eq!(status("prune-remote"), "skipped");
    assert_eq!(status("cleanup"), "attention");
    let ship = v["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["name"] == "ship")
        .expect("ship");
    assert!(
        ship["message"]
            .as_str()
            .expect("msg")
            .contains(&format!("{} refused the login", sshd.host())),
        "{ship:#}"
    );
    assert!(
        PathBuf::from(v["set"].as_str().expect("set")).is_dir(),
        "the local set is kept"
    );
}

#[test]
fn schedule_prints_absolute_paths() {
    let sb = Sandbox::new();
    sb.write(
        "spyglass-admin.toml",
        "[backup]\ndestination = \"/data/mysql-backups\"\n",
        0o644,
    );
    let out = sb.run(&["schedule", "--print"]);
    out.assert_code(0);
    let bin = crate::support::bin().canonicalize().expect("bin");
    let cfg = sb
        .cwd()
        .join("spyglass-admin.toml")
        .canonicalize()
        .expect("cfg");
    assert!(
        out.stdout.contains(&format!(
            "30 2 * * * {} nightly --config {} --quiet",
            bin.display(),
            cfg.display()
        )),
        "{}",
        out.stdout
    );
    let out = sb.run(&["schedule", "--print", "--systemd", "--at", "01:05"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains(&format!(
            "ExecStart={} nightly --config {}",
            bin.display(),
            cfg.display()
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("OnCalendar=*-*-* 01:05:00"),
        "{}",
        out.stdout
    );
}

/// A 1 MiB tmpfs mounted on a directory for the length of a test.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path) -> SmallDisk {
        std::fs::create_dir_all(dir).expect("mkdir");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount");
        assert!(
            st.success(),
            "mount a 1 MiB tmpfs on {} (root needed)",
            dir.display()
        );
        SmallDisk(dir.to_owned())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_remote_disk_names_the_host_and_the_file() {
    let sshd = Sshd::start();
    let sb = Sandbox::as_root();
    let set = fixture_set(&sb, &sb.cwd().join("backups"), &[]);
    let name = set
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    // rsync says "No space left on device"; sftp says only "Failure", and
    // the free space there (df over ssh) tells what it was.
    for transport in ["rsync", "sftp"] {
        let sub = format!("full-{transport}");
        let _disk = SmallDisk::mount(&sshd.remote().join(&sub));
        let out = ship(
            &sb,
            &sshd,
            &set,
            &sshd.target(&sub),
            &["--transport", transport],
        );
        out.assert_code(2).assert_clean_error();
        let want = format!(
            "error: no space left on {}:{}/",
            sshd.host(),
            sshd.remote()
                .join(&sub)
                .join(format!("{name}.partial"))
                .display()
        );
        assert!(out.stderr.starts_with(&want), "{transport}: {}", out.stderr);
        let first = out.stderr.lines().next().unwrap_or_default();
        assert!(
            first.ends_with(" free there)"),
            "{transport}: the free space is given: {first}"
        );
        assert!(
            !out.stderr.contains("Failure") && !out.stderr.contains("no error output"),
            "{transport}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("hint: free space on the target"),
            "{}",
            out.stderr
        );
        assert!(set.is_dir(), "the local set is kept");
        assert!(!sshd.remote().join(&sub).join(&name).exists());
    }
}

/// The sandbox's `spyglass-admin.toml` for `sshd`: destination, ship_to
/// (under `sub`), identity and ssh_config.
fn target_settings(sb: &Sandbox, sshd: &Sshd, dest: &str, ship_to: &str, ssh_config: &str) {
    sb.write(
        "spyglass-admin.toml",
        &format!(
            "[backup]\ndestination = \"{dest}\"\nship_to = \"{ship_to}\"\nidentity = \"{key}\"\nssh_config = \"{cfg}\"\n",
            key = sshd.path("client_key").display(),
            cfg = sshd.path(ssh_config).display(),
        ),
        0o644,
    );
}

/// Names in a directory (empty when it does not exist).
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn backup_run_to_an_ssh_target_ships_and_writes_no_local_folder() {
    let sshd = Sshd::start();
    let mut sb = Sandbox::as_root();
    let tmp = tempfile::tempdir().expect("tmp");
    sb.env("TMPDIR", tmp.path().to_str().expect("utf8"));
    let schemas = spyglass_fixture::SCHEMAS.join(",");
    let to = sshd.target("run");
    let mut args = vec![
        "backup",
        "run",
        "--dest",
        &to,
        "--label",
        "lc",
        "--schemas",
        &schemas,
        "-t",
        "2",
    ];
    let ssh = sshd.ssh_args();
    args.extend(ssh.iter().map(String::as_str));
    let out = sb.run(&args);
    out.assert_code(0);
    let printed = out.stdout.trim();
    assert!(
        printed.starts_with(&format!("{to}/lc-")),
        "the real off-site location is printed: {printed}\n{}",
        out.stderr
    );
    let name = printed.rsplit('/').next().expect("name");
    let copy = sshd.remote().join("run").join(name);
    assert!(copy.join("manifest.json").is_file(), "{}", copy.display());
    sb.run(&["backup", "verify", copy.to_str().expect("utf8")])
        .assert_code(0);
    assert!(out.stderr.contains("verified by"), "{}", out.stderr);
    assert_eq!(
        entries(sb.cwd()),
        Vec::<String>::new(),
        "nothing written here"
    );
    assert_eq!(
        entries(tmp.path()),
        Vec::<String>::new(),
        "the local temporary set is removed"
    );

    // The same from `[backup] destination`, with the ssh settings there too.
    target_settings(
        &sb,
        &sshd,
        &sshd.target("run2"),
        &sshd.target("x"),
        "ssh_config",
    );
    let out = sb.run(&[
        "backup",
        "run",
        "--label",
        "lc",
        "--schemas",
        &schemas,
        "-t",
        "2",
        "--json",
    ]);
    out.assert_code(0);
    let v = out.json();
    let path = v["path"].as_str().expect("path");
    assert!(path.starts_with(&sshd.target("run2")), "{v}");
    assert_eq!(v["shipped"]["already_there"], false, "{v}");
    assert_eq!(entries(&sshd.remote().join("run2")).len(), 1);
    assert_eq!(entries(sb.cwd()), vec!["spyglass-admin.toml".to_owned()]);
    assert_eq!(entries(tmp.path()), Vec::<String>::new());

    // A scheme no command supports: refused naming it, nothing written, no connection made.
    for (args, scheme) in [
        (
            vec!["backup", "run", "--dest", "ftp://nas/backups"],
            "ftp://",
        ),
        (
            vec!["backup", "run", "--dest", "webdav+https://nas/b"],
            "webdav+https://",
        ),
        (vec!["backup", "list", "ftp://nas/backups"], "ftp://"),
        (
            vec!["backup", "verify", "ftp://nas/b/lc-20261201-020000"],
            "ftp://",
        ),
        (
            vec!["backup", "restore", "ftp://nas/b/lc-20261201-020000"],
            "ftp://",
        ),
        (
            vec!["backup", "prune", "ftp://nas/backups", "--keep-last", "2"],
            "ftp://",
        ),
        (
            vec!["backup", "pack", "ftp://nas/b/lc-20261201-020000"],
            "ftp://",
        ),
        (
            vec!["backup", "unpack", "x.tar", "--dest", "ftp://nas/b"],
            "ftp://",
        ),
    ] {
        let out = sb.run(&args);
        out.assert_code(2).assert_clean_error();
        assert!(out.stderr.contains(scheme), "{args:?}: {}", out.stderr);
    }
    // A command that does not work on targets refuses ssh:// by name.
    let out = sb.run(&["backup", "pack", &format!("{to}/{name}")]);
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr
            .contains("backup pack works on local directories only, not on ssh:// targets"),
        "{}",
        out.stderr
    );
    assert_eq!(entries(sb.cwd()), vec!["spyglass-admin.toml".to_owned()]);
    assert_eq!(entries(tmp.path()), Vec::<String>::new());
}

#[test]
fn list_verify_and_restore_from_an_ssh_target_into_a_fresh_server() {
    let _exclusive = crate::backup::long_statements();
    let sshd = Sshd::start();
    let sb = Sandbox::as_root();
    let set = fixture_set(&sb, &sb.cwd().join("backups"), &["--checksum"]);
    let name = set
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    ship(&sb, &sshd, &set, &sshd.target("off"), &[]).assert_code(0);
    // A staged copy of another set beside it: listed as partial, not restorable.
    made_up_set(&sshd.remote().join("off"), "20250101-020000");
    std::fs::rename(
        sshd.remote().join("off/nightly-20250101-020000"),
        sshd.remote().join("off/nightly-20250101-020000.partial"),
    )
    .expect("rename");
    let to = sshd.target("off");
    let url = format!("{to}/{name}");
    let ssh = sshd.ssh_args();
    let run = |sb: &Sandbox, args: &[&str]| {
        let mut v: Vec<&str> = args.to_vec();
        v.extend(ssh.iter().map(String::as_str));
        sb.run(&v)
    };

    // list: every set there, described from its manifest and file sizes.
    let out = run(&sb, &["backup", "list", &to, "--json"]);
    out.assert_code(0);
    let v = out.json();
    let sets = v.as_array().expect("array");
    assert_eq!(sets.len(), 2, "{v:#}");
    assert_eq!(sets[0]["status"], "partial", "{v:#}");
    assert_eq!(sets[1]["name"], name.as_str());
    assert_eq!(sets[1]["status"], "complete", "{v:#}");
    assert_eq!(sets[1]["on_target"], true);
    assert_eq!(sets[1]["path"], url.as_str());
    assert!(sets[1]["schemas"].as_array().expect("schemas").len() >= 3);
    let local_bytes: u64 = files_under(&set)
        .iter()
        .map(|f| std::fs::metadata(set.join(f)).expect("size").len())
        .sum();
    assert_eq!(sets[1]["bytes"].as_u64(), Some(local_bytes));
    let out = run(&sb, &["backup", "list", &to]);
    out.assert_code(0);
    assert!(
        out.stdout.contains(&name) && out.stdout.contains("sha256 checked on arrival"),
        "{}",
        out.stdout
    );

    // verify: fetched into a private temporary directory, checked, removed.
    let mut sb = sb;
    let tmp = tempfile::tempdir().expect("tmp");
    sb.env("TMPDIR", tmp.path().to_str().expect("utf8"));
    let out = run(&sb, &["backup", "verify", &url]);
    out.assert_code(0);
    assert!(
        out.stdout.contains(&format!("{url}: ")) && out.stdout.contains("good"),
        "{}",
        out.stdout
    );
    assert_eq!(
        entries(tmp.path()),
        Vec::<String>::new(),
        "fetched copy removed"
    );
    // A damaged byte there is found and named by its place on the target.
    let victim = files_under(&set)
        .into_iter()
        .find(|f| f.starts_with("2-data/"))
        .expect("a data file");
    let there = sshd.remote().join("off").join(&name).join(&victim);
    let original = std::fs::read(&there).expect("read");
    let mut bad = original.clone();
    bad[20] ^= 0x40;
    std::fs::write(&there, &bad).expect("write");
    let out = run(&sb, &["backup", "verify", &url]);
    out.assert_code(1);
    assert!(
        out.stdout.contains(&format!("BAD  {url}/{victim}")),
        "{}",
        out.stdout
    );
    std::fs::write(&there, &original).expect("write");
    // Not there, or only staged: clear refusals.
    let out = run(
        &sb,
        &["backup", "restore", &format!("{to}/lc-20200101-000000")],
    );
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains("no such set there") && out.stderr.contains(&name),
        "{}",
        out.stderr
    );
    let out = run(
        &sb,
        &["backup", "verify", &format!("{to}/nightly-20250101-020000")],
    );
    out.assert_code(2).assert_clean_error();
    assert!(out.stderr.contains("staged copy"), "{}", out.stderr);

    // restore into the fresh server: every table the same as the source.
    let schemas = spyglass_fixture::SCHEMAS;
    let mut dst = crate::backup::target_admin();
    crate::backup::drop_schemas(&mut dst, schemas);
    sb.env("DJ_PORT", &crate::backup::target_port().to_string());
    let out = run(&sb, &["backup", "restore", &url, "--threads", "2"]);
    out.assert_code(0);
    let fetched_into = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix(&format!("fetched {url} (")))
        .and_then(|l| l.split(" into ").nth(1))
        .expect("says where it fetched to");
    assert!(fetched_into.starts_with(tmp.path().to_str().expect("utf8")));
    assert!(!Path::new(fetched_into).exists(), "removed afterwards");
    assert_eq!(entries(tmp.path()), Vec::<String>::new());
    let mut src = crate::support::admin();
    crate::backup::assert_same(&mut src, &mut dst, schemas);
    crate::backup::drop_schemas(&mut dst, schemas);
}

/// `doctor --json`'s ship_target problems.
fn ship_target_problems(v: &Value) -> Vec<String> {
    v["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter(|p| p["check"] == "ship_target")
        .map(|p| {
            format!(
                "{} (hint: {})",
                p["message"].as_str().unwrap_or_default(),
                p["hint"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn doctor_checks_the_ship_target_before_the_first_nightly() {
    let sshd = Sshd::start();
    let sb = Sandbox::as_root();
    let dest = sb.cwd().join("backups");
    let set = fixture_set(&sb, &dest, &[]);
    let d = dest.display().to_string();

    // Healthy: reachable, key known, login accepted, tools there, room.
    target_settings(&sb, &sshd, &d, &sshd.target("ok"), "ssh_config");
    let out = sb.run(&["doctor", "--json"]);
    let v = out.json();
    let t = &v["ship_target"];
    assert_eq!(t["reachable"], true, "{t:#}");
    assert_eq!(t["host_key"], "known", "{t:#}");
    assert_eq!(t["login"], true, "{t:#}");
    assert_eq!(t["missing"], serde_json::json!([]), "{t:#}");
    assert_eq!(
        t["known_hosts"].as_str(),
        Some(sshd.path("known_hosts").to_str().expect("utf8")),
        "the known_hosts file of the configured ssh_config"
    );
    assert_eq!(
        t["newest_local_set"].as_str(),
        set.file_name().and_then(|n| n.to_str())
    );
    assert!(t["free_bytes"].as_u64().expect("free") > 0);
    assert_eq!(ship_target_problems(&v), Vec::<String>::new());
    let human = sb.run(&["doctor"]);
    assert!(
        human.stdout.contains("ship target") && human.stdout.contains("host key known"),
        "{}",
        human.stdout
    );

    // Unreachable: a closed port.
    let closed = format!(
        "ssh://{}@127.0.0.1:{}{}/x",
        sshd.user,
        closed_port(),
        sshd.remote().display()
    );
    target_settings(&sb, &sshd, &d, &closed, "ssh_config");
    let out = sb.run(&["doctor", "--json"]);
    out.assert_code(1);
    let v = out.json();
    assert_eq!(v["ship_target"]["reachable"], false, "{v:#}");
    let p = ship_target_problems(&v);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("cannot reach 127.0.0.1:"), "{p:?}");

    // Unknown host key: the fingerprint and the exact command.
    target_settings(
        &sb,
        &sshd,
        &d,
        &sshd.target("ok"),
        "ssh_config_unknown_host",
    );
    let out = sb.run(&["doctor", "--json"]);
    out.assert_code(1);
    let v = out.json();
    assert_eq!(v["ship_target"]["host_key"], "unknown", "{v:#}");
    assert_eq!(v["ship_target"]["reachable"], true, "{v:#}");
    let p = ship_target_problems(&v);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_host_key_advice(&sshd, &p[0]);
    // With the key recorded as that command did, but a different one: "changed".
    std::fs::write(
        sshd.path("empty_known_hosts"),
        format!(
            "[127.0.0.1]:{} {}",
            sshd.port,
            std::fs::read_to_string(sshd.path("wrong_key.pub")).expect("key")
        ),
    )
    .expect("write");
    let v = sb.run(&["doctor", "--json"]).json();
    assert_eq!(v["ship_target"]["host_key"], "changed", "{v:#}");
    let p = ship_target_problems(&v);
    assert!(p[0].contains("ssh-keygen -R"), "{p:?}");
    std::fs::remove_file(sshd.path("empty_known_hosts")).expect("reset");

    // Key refused.
    std::fs::write(
        sshd.path("authorized_keys"),
        std::fs::read(sshd.path("wrong_key.pub")).expect("key"),
    )
    .expect("write");
    target_settings(&sb, &sshd, &d, &sshd.target("ok"), "ssh_config");
    let v = sb.run(&["doctor", "--json"]).json();
    assert_eq!(v["ship_target"]["login"], false, "{v:#}");
    std::fs::copy(sshd.path("client_key.pub"), sshd.path("authorized_keys")).expect("restore");

    // Nearly full: less room there than the newest local set needs.
    let _disk = SmallDisk::mount(&sshd.remote().join("small"));
    target_settings(&sb, &sshd, &d, &sshd.target("small"), "ssh_config");
    let out = sb.run(&["doctor", "--json"]);
    out.assert_code(1);
    let v = out.json();
    let p = ship_target_problems(&v);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("free, but the newest local set") && p[0].contains("no space left"),
        "{p:?}"
    );
    assert!(v["ship_target"]["free_bytes"].as_u64().expect("free") <= 1 << 20);
}

/// Issue 19: every command that changes the server checks first.
/// `backup restore` as an account that may not create the target schemas
/// is refused before the first statement, naming the privilege, and the
/// server is unchanged; with CREATE and INSERT but not DROP it is refused
/// again, naming DROP.
#[test]
fn backup_restore_without_the_privileges_is_refused_before_anything_changes() {
    let root = Sandbox::as_root();
    let dest = root.cwd().join("backups");
    let out = root.run(&[
        "backup",
        "run",
        "--dest",
        dest.to_str().expect("utf8"),
        "--label",
        "pf",
        "--schemas",
        "common_lab",
    ]);
    out.assert_code(0);
    let set = out.stdout.trim().to_owned();
    let (user, pw) = ("itpf19_ro", "Pf19-ro-pw");
    crate::support::create_user(user, pw, &["SELECT ON *.*"]);
    let target = "itpf19_common_lab";
    let exists = || -> bool {
        let n: Option<u64> = spyglass_db::mysql::prelude::Queryable::query_first(
            crate::support::admin().conn(),
            format!(
                "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '{target}'"
            ),
        )
        .expect("query");
        n == Some(1)
    };
    let sb = crate::support::as_user(user, pw);
    let restore = || {
        sb.run(&[
            "backup",
            "restore",
            &set,
            "--rename",
            &format!("common_lab={target}"),
        ])
    };
    let out = restore();
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains("refusing to run: ")
            && out.stderr.contains(&format!(
                "lacks CREATE on `{target}`.* (for `CREATE DATABASE `{target}``)"
            ))
            && out.stderr.contains("nothing was changed"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: "), "{}", out.stderr);
    assert!(!exists(), "nothing was created");
    let mut a = crate::support::admin();
    crate::support::sql(
        &mut a,
        &format!("GRANT CREATE, INSERT ON `itpf19\\_%`.* TO '{user}'@'%'"),
    );
    let out = restore();
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains(&format!("lacks DROP on `{target}`.*"))
            && !out.stderr.contains("lacks CREATE"),
        "{}",
        out.stderr
    );
    // MySQL checks REFERENCES for every foreign key (MariaDB does not).
    let mysql = crate::support::server().flavor == "mysql";
    assert_eq!(
        out.stderr.contains(&format!("REFERENCES on `{target}`.*")),
        mysql,
        "{}",
        out.stderr
    );
    assert!(!exists(), "nothing was created");
    // With DROP (and REFERENCES) too it restores.
    crate::support::sql(
        &mut a,
        &format!("GRANT DROP, REFERENCES ON `itpf19\\_%`.* TO '{user}'@'%'"),
    );
    let out = restore();
    out.assert_code(0);
    assert!(exists());
    crate::support::sql(&mut a, &format!("DROP DATABASE `{target}`"));
    crate::support::sql(&mut a, &format!("DROP USER '{user}'@'%'"));
}

/// Issue 19: `cleanup restore` as an account that may not INSERT the run's
/// rows again is refused before anything goes back (files stay in the
/// quarantine, no row is inserted), naming the schema.
#[test]
fn cleanup_restore_without_insert_is_refused_before_anything_goes_back() {
    let lab = crate::nightly::Lab::new("cpf19_", 1903);
    let root = lab.sandbox("", "");
    let out = root.run(&["cleanup", "apply", "--yes", "--json"]);
    out.assert_code(0);
    let v = out.json();
    let run = v["run"].as_str().expect("run").to_owned();
    let unused = lab.summary.planted.unused_external;
    assert!(unused > 0);
    assert_eq!(v["done"]["unused_external"]["count"].as_u64(), Some(unused));
    let quarantined = files_under(Path::new(&run));
    let (user, pw) = ("itcpf19_ro", "Cpf19-ro-pw");
    crate::support::create_user(user, pw, &["SELECT ON *.*"]);
    let mut sb = lab.sandbox("", "");
    sb.env("DJ_USER", user).env("DJ_PASS", pw);
    let out = sb.run(&["cleanup", "restore", &run]);
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains("refusing to run: ")
            && out.stderr.contains("lacks INSERT on `cpf19_")
            && out.stderr.contains("(for `INSERT INTO `cpf19_"),
        "{}",
        out.stderr
    );
    assert_eq!(
        files_under(Path::new(&run)),
        quarantined,
        "nothing went back"
    );
    let scan = root.run(&["cleanup", "scan", "--json"]).json();
    assert_eq!(
        scan["classes"]["untracked"]["count"], 0,
        "no file went back: {scan:#}"
    );
    // As the account that applied it, everything goes back.
    root.run(&["cleanup", "restore", &run]).assert_code(0);
    let scan = root.run(&["cleanup", "scan", "--json"]).json();
    assert_eq!(
        scan["classes"]["unused_external"]["count"].as_u64(),
        Some(unused),
        "{scan:#}"
    );
    let mut a = crate::support::admin();
    crate::support::sql(&mut a, &format!("DROP USER '{user}'@'%'"));
}

/// Issue 19: `doctor --backup-dest ssh://...` ran the local-directory
/// check on the URL ("does not exist"); it checks the target the way ship
/// reaches it. And a restore from `ssh://` that stopped halfway left a
/// marker naming its temporary copy, so doctor's "restore again" hint named
/// a directory that was gone: it names the set's address there.
#[test]
fn doctor_checks_an_ssh_backup_dest_and_a_stopped_ssh_restore_names_its_url() {
    let sshd = Sshd::start();
    let sb = Sandbox::as_root();
    let dest = sb.cwd().join("backups");
    target_settings(
        &sb,
        &sshd,
        &dest.display().to_string(),
        &sshd.target("ok"),
        "ssh_config",
    );
    let v = sb
        .run(&["doctor", "--json", "--backup-dest", &sshd.target("bd")])
        .json();
    assert!(v["backup_destination"].is_null(), "{v:#}");
    let t = &v["backup_destination_target"];
    assert_eq!(t["reachable"], true, "{t:#}");
    assert_eq!(t["login"], true, "{t:#}");
    assert!(t["free_bytes"].as_u64().expect("free") > 0, "{t:#}");
    let dest_problems = |v: &Value| -> Vec<String> {
        v["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .filter(|p| p["check"] == "backup_destination")
            .map(|p| p["message"].as_str().expect("m").to_owned())
            .collect()
    };
    assert_eq!(dest_problems(&v), Vec::<String>::new(), "{v:#}");
    let human = sb.run(&["doctor", "--backup-dest", &sshd.target("bd")]);
    assert!(
        !human
            .stdout
            .contains("not configured ([backup] destination"),
        "{}",
        human.stdout
    );
    // A closed port: a problem naming the target, not "does not exist".
    let closed = format!(
        "ssh://{}@127.0.0.1:{}{}/x",
        sshd.user,
        closed_port(),
        sshd.remote().display()
    );
    let out = sb.run(&["doctor", "--json", "--backup-dest", &closed]);
    out.assert_code(1);
    let v = out.json();
    assert_eq!(v["backup_destination_target"]["reachable"], false, "{v:#}");
    let p = dest_problems(&v);
    assert!(
        p.len() == 1 && p[0].starts_with(&format!("backup destination {closed}")),
        "{p:?}"
    );
    assert!(!p[0].contains("does not exist"), "{p:?}");

    // A restore from ssh:// that stops at a post file (a view on a schema
    // not restored) leaves its schema marked with the set's address.
    let mut src = crate::support::admin();
    for s in ["itlc19_half_a", "itlc19_half_b"] {
        crate::support::sql(&mut src, &format!("DROP DATABASE IF EXISTS {s}"));
        crate::support::sql(&mut src, &format!("CREATE DATABASE {s}"));
        crate::support::sql(
            &mut src,
            &format!("CREATE TABLE {s}.t (id int PRIMARY KEY)"),
        );
        crate::support::sql(&mut src, &format!("INSERT INTO {s}.t VALUES (1), (2)"));
    }
    crate::support::sql(
        &mut src,
        "CREATE VIEW itlc19_half_a.v AS SELECT a.id FROM itlc19_half_a.t a JOIN itlc19_half_b.t b USING (id)",
    );
    let out = sb.run(&[
        "backup",
        "run",
        "--dest",
        dest.to_str().expect("utf8"),
        "--schemas",
        "itlc19_half_a,itlc19_half_b",
    ]);
    out.assert_code(0);
    let set = PathBuf::from(out.stdout.trim());
    let name = set
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    ship(&sb, &sshd, &set, &sshd.target("off"), &[]).assert_code(0);
    let url = format!("{}/{name}", sshd.target("off"));
    let mut dst = crate::backup::target_admin();
    crate::backup::drop_schemas(&mut dst, &["itlc19_half_a", "itlc19_half_b"]);
    let mut sb = sb;
    sb.env("DJ_PORT", &crate::backup::target_port().to_string());
    let mut args = vec![
        "backup",
        "restore",
        url.as_str(),
        "--schemas",
        "itlc19_half_a",
    ];
    let ssh = sshd.ssh_args();
    args.extend(ssh.iter().map(String::as_str));
    let out = sb.run(&args);
    out.assert_code(2);
    // After the "fetched ... into ..." line: one clean error, the server's
    // words in plain text (not the driver's `MySqlError { ... }`).
    let err = out
        .stderr
        .find("error: ")
        .map(|i| &out.stderr[i..])
        .unwrap_or_else(|| panic!("{}", out.stderr));
    assert!(
        err.starts_with("error: loading ")
            // 1146 no such table (MariaDB), 1049 no such schema (MySQL)
            && (err.contains("the server said: ERROR 1146")
                || err.contains("the server said: ERROR 1049"))
            && !err.contains("MySqlError {")
            && !err.contains("panicked"),
        "{}",
        out.stderr
    );
    let marker: Vec<String> = spyglass_db::mysql::prelude::Queryable::query(
        dst.conn(),
        "SELECT set_path FROM itlc19_half_a.`~restore_incomplete`",
    )
    .expect("marker");
    assert_eq!(marker, std::slice::from_ref(&url));
    let v = sb.run(&["doctor", "--json"]).json();
    let hint = v["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .find(|p| {
            p["check"] == "restore" && p["message"].as_str().expect("m").contains("itlc19_half_a")
        })
        .unwrap_or_else(|| panic!("{v:#}"))["hint"]
        .as_str()
        .expect("hint")
        .to_owned();
    assert!(
        hint.contains(&format!("spyglass-admin backup restore {url} --force")),
        "{hint}"
    );
    crate::backup::drop_schemas(&mut dst, &["itlc19_half_a", "itlc19_half_b"]);
    crate::backup::drop_schemas(&mut src, &["itlc19_half_a", "itlc19_half_b"]);
}
