//! A throwaway sshd on 127.0.0.1 for shipping backups (demo), and the
//! packages the ship tests need (openssh-server, rsync).
//!
//! The server has its own host key, lets in one key generated for it, listens
//! on a free high port of 127.0.0.1 only, and writes everything under its
//! directory. See ../shared/docs/SERVERS.md, "sshd on loopback".

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util;

const SSHD: &str = "/usr/sbin/sshd";

/// Installs openssh-server, openssh-client and rsync when one is missing.
/// Debian's postinst would start a system sshd on port 22; a temporary
/// policy-rc.d keeps it from starting (only ours runs, on 127.0.0.1).
pub fn ensure_installed() -> Result<(), String> {
    let missing = !Path::new(SSHD).is_file()
        || util::which("rsync").is_none()
        || util::which("ssh-keygen").is_none()
        || util::which("sftp").is_none();
    if missing {
        if !util::is_root() {
            return Err("the ship tests need Debian packages; run as root:\n  apt-get update && apt-get install -y openssh-server openssh-client rsync".into());
        }
        eprintln!(
            "xtask: installing openssh-server openssh-client rsync (backup ship tests and demo)"
        );
        let policy = Path::new("/usr/sbin/policy-rc.d");
        let ours = !policy.exists();
        if ours {
            std::fs::write(policy, "#!/bin/sh\nexit 101\n")
                .map_err(|e| format!("writing {}: {e}", policy.display()))?;
            util::run(Command::new("chmod").args(["755", "/usr/sbin/policy-rc.d"]))?;
        }
        let r = util::run(Command::new("sh").arg("-c").arg(
            "apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y openssh-server openssh-client rsync >/dev/null",
        ));
        if ours {
            let _ = std::fs::remove_file(policy);
        }
        r?;
    }
    // sshd refuses to start without its privilege separation directory.
    match std::fs::create_dir_all("/run/sshd") {
        Err(e) if util::is_root() => Err(format!("creating /run/sshd: {e}")),
        Err(e) => {
            eprintln!("xtask: warning: cannot create /run/sshd ({e}); the ship tests need it (run as root)");
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}

/// A running sshd.
pub struct Sshd {
    pub dir: PathBuf,
    pub port: u16,
    pub user: String,
    pid: u32,
}

fn keygen(path: &Path) -> Result<(), String> {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    util::run(
        Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "spyglass-xtask",
                "-f",
            ])
            .arg(path)
            .stdin(Stdio::null()),
    )
}

impl Sshd {
    /// Starts one in `dir` (created), with `dir/remote` as the place to ship to.
    pub fn start(dir: &Path) -> Result<Sshd, String> {
        ensure_installed()?;
        std::fs::create_dir_all(dir.join("remote"))
            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let d = dir.display();
        keygen(&dir.join("host_key"))?;
        keygen(&dir.join("client_key"))?;
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys"))
            .map_err(|e| e.to_string())?;
        let port = util::free_port()?;
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\n\
                 StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                 PermitRootLogin prohibit-password\nUsePAM no\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let host_pub =
            std::fs::read_to_string(dir.join("host_key.pub")).map_err(|e| e.to_string())?;
        std::fs::write(
            dir.join("known_hosts"),
            format!("[127.0.0.1]:{port} {host_pub}"),
        )
        .map_err(|e| e.to_string())?;
        std::fs::write(
            dir.join("ssh_config"),
            format!("Host *\n  UserKnownHostsFile {d}/known_hosts\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n"),
        )
        .map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("sshd.log")).map_err(|e| e.to_string())?;
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-f")
            .arg(dir.join("sshd_config"))
            .arg("-e")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {SSHD}: {e}"))?;
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || !util::pid_alive(pid) {
                util::kill(pid, "TERM");
                return Err(format!(
                    "sshd did not start on 127.0.0.1:{port}:\n{}",
                    util::tail(&dir.join("sshd.log"), 10)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let user = Command::new("id")
            .arg("-un")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "root".into());
        Ok(Sshd {
            dir: dir.to_owned(),
            port,
            user,
            pid,
        })
    }

    /// `ssh://user@127.0.0.1:PORT/<dir>/remote/<sub>`.
    pub fn target(&self, sub: &str) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}/{sub}",
            self.user,
            self.port,
            self.dir.join("remote").display()
        )
    }

    pub fn identity(&self) -> PathBuf {
        self.dir.join("client_key")
    }

    pub fn ssh_config(&self) -> PathBuf {
        self.dir.join("ssh_config")
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        util::kill(self.pid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while util::pid_alive(self.pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
