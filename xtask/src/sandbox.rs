//! Throwaway MariaDB and MySQL servers for tests and the demo.
//!
//! MariaDB comes from Debian's packages. MySQL 9.x comes from Debian unstable
//! in a debootstrap chroot kept in one machine-wide cache directory (it is
//! ~600 MB: never in the work tree, reused by every checkout). See
//! ../shared/docs/SERVERS.md for the commands this automates.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, project_root, target_dir};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Mariadb,
    Mysql,
}

impl Flavor {
    pub fn parse(s: &str) -> Result<Flavor, String> {
        match s {
            "mariadb" => Ok(Flavor::Mariadb),
            "mysql" => Ok(Flavor::Mysql),
            o => Err(format!("unknown flavor '{o}' (expected mariadb or mysql)")),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Mariadb => "mariadb",
            Flavor::Mysql => "mysql",
        }
    }
}

/// One sandbox server: a flavor, and which of its instances (the main one,
/// or a second "target" server that restore tests load into).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance {
    pub flavor: Flavor,
    pub target: bool,
    /// The TLS server: private CA certificates, `require_secure_transport=ON`,
    /// general log in a table (the TLS tests read it).
    pub tls: bool,
}

impl Instance {
    pub fn main(flavor: Flavor) -> Self {
        Instance {
            flavor,
            target: false,
            tls: false,
        }
    }
    pub fn target(flavor: Flavor) -> Self {
        Instance {
            flavor,
            target: true,
            tls: false,
        }
    }
    pub fn tls(flavor: Flavor) -> Self {
        Instance {
            flavor,
            target: false,
            tls: true,
        }
    }
    pub fn name(self) -> String {
        if self.tls {
            format!("{}-tls", self.flavor.name())
        } else if self.target {
            format!("{}-target", self.flavor.name())
        } else {
            self.flavor.name().to_owned()
        }
    }
}

impl From<Flavor> for Instance {
    fn from(f: Flavor) -> Self {
        Instance::main(f)
    }
}

/// A running sandbox as recorded in `target/sandbox/<instance>/state.env`.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub flavor: Flavor,
    pub inst: Instance,
    pub port: u16,
    pub pid: u32,
    /// Data directory as seen from the host.
    pub datadir: PathBuf,
}

impl Sandbox {
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }
    pub fn user(&self) -> &'static str {
        "root"
    }
    pub fn env_lines(&self) -> String {
        format!(
            "DJ_HOST={}\nDJ_PORT={}\nDJ_USER={}\nDJ_PASS=\n",
            self.host(),
            self.port,
            self.user()
        )
    }
    pub fn connect_options(&self) -> spyglass_db::ConnectOptions {
        spyglass_db::ConnectOptions::tcp(self.host(), self.port, self.user())
            .password(spyglass_db::Secret::new(""))
    }
    pub fn connect(&self) -> Result<spyglass_db::Session, String> {
        spyglass_db::connect(&self.connect_options()).map_err(|e| {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(c) = src {
                s.push_str(&format!(": {c}"));
                src = c.source();
            }
            s
        })
    }
}

pub fn sandbox_dir(inst: impl Into<Instance>) -> PathBuf {
    target_dir().join("sandbox").join(inst.into().name())
}

/// The TLS sandbox's certificates (CA, other CA, server, other name, client).
pub fn tls_dir(inst: Instance) -> PathBuf {
    sandbox_dir(inst).join("certs")
}

/// Where the TLS sandbox server reads its own certificate files (host path).
pub fn tls_server_dir(inst: Instance) -> Option<PathBuf> {
    fs::read_to_string(sandbox_dir(inst).join("server-tls-dir"))
        .ok()
        .map(PathBuf::from)
}

fn state_file(inst: Instance) -> PathBuf {
    sandbox_dir(inst).join("state.env")
}

/// Machine-wide cache for the MySQL chroot.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SPYGLASS_SANDBOX_CACHE") {
        return PathBuf::from(d);
    }
    if util::is_root() {
        PathBuf::from("/var/cache/spyglass-admin")
    } else {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"))
            .join(".cache/spyglass-admin")
    }
}

pub fn chroot_dir() -> PathBuf {
    cache_dir().join("mysql-sid")
}

/// A short stable id for this checkout and target dir, so several checkouts
/// (and several target dirs of one checkout) can share the chroot.
fn checkout_id() -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    let key = format!("{}|{}", project_root().display(), target_dir().display());
    for b in key.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// Path of the sandbox's files inside the chroot (MySQL only).
fn chroot_rel(inst: Instance) -> String {
    format!(
        "/var/lib/spyglass-sandbox/{}-{}",
        checkout_id(),
        inst.name()
    )
}

pub fn read_state(inst: impl Into<Instance>) -> Option<Sandbox> {
    let inst = inst.into();
    let flavor = inst.flavor;
    let text = fs::read_to_string(state_file(inst)).ok()?;
    let kv: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    Some(Sandbox {
        flavor,
        inst,
        port: kv.get("DJ_PORT")?.parse().ok()?,
        pid: kv.get("PID")?.parse().ok()?,
        datadir: PathBuf::from(kv.get("DATADIR")?),
    })
}

fn write_state(s: &Sandbox) -> Result<(), String> {
    let text = format!(
        "{}PID={}\nDATADIR={}\n",
        s.env_lines(),
        s.pid,
        s.datadir.display()
    );
    fs::write(state_file(s.inst), text).map_err(|e| format!("cannot write sandbox state: {e}"))
}

pub fn cmd(args: &[String]) -> Result<(), String> {
    let flavor = crate::flavor_arg(args, Flavor::Mariadb)?;
    match args.first().map(String::as_str) {
        Some("start") => {
            let s = start(flavor)?;
            print!("{}", s.env_lines());
            eprintln!(
                "xtask: {} sandbox ready on 127.0.0.1:{} (pid {}); `export` the lines above to use it",
                flavor.name(),
                s.port,
                s.pid
            );
            Ok(())
        }
        Some("stop") => stop(flavor),
        Some("status") => match running(flavor) {
            Some(s) => {
                print!("{}", s.env_lines());
                eprintln!("xtask: {} sandbox running (pid {})", flavor.name(), s.pid);
                Ok(())
            }
            None => Err(format!("no {} sandbox running", flavor.name())),
        },
        _ => Err("usage: cargo xtask sandbox start|stop|status [--flavor mariadb|mysql]".into()),
    }
}

/// The running sandbox, if its process is alive and answers.
pub fn running(inst: impl Into<Instance>) -> Option<Sandbox> {
    let s = read_state(inst)?;
    if util::pid_alive(s.pid) && s.connect().is_ok() {
        Some(s)
    } else {
        None
    }
}

/// Starts the sandbox, or returns the one already running.
pub fn start(inst: impl Into<Instance>) -> Result<Sandbox, String> {
    let inst = inst.into();
    let flavor = inst.flavor;
    if let Some(s) = running(inst) {
        return Ok(s);
    }
    // A stale state from a crashed run: clean it up first.
    let _ = stop(inst);
    let dir = sandbox_dir(inst);
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let port = util::free_port()?;
    let (mut cmd, datadir, errlog) = match flavor {
        Flavor::Mariadb => mariadb_command(&dir, port)?,
        Flavor::Mysql => mysql_command(&dir, port, inst)?,
    };
    if inst.tls {
        // Certificates next to the data (inside the chroot for MySQL).
        let certs = crate::tls::make_certs(&tls_dir(inst))?;
        // The server's own copies, apart from the ones clients use (tests swap them).
        let server_dir = match flavor {
            Flavor::Mariadb => dir.join("server-certs"),
            Flavor::Mysql => datadir.parent().unwrap_or(&datadir).join("tls"),
        };
        let _ = fs::remove_dir_all(&server_dir);
        fs::create_dir_all(&server_dir).map_err(|e| e.to_string())?;
        for f in ["ca.pem", "server.pem", "server.key"] {
            fs::copy(certs.join(f), server_dir.join(f)).map_err(|e| e.to_string())?;
        }
        let seen = match flavor {
            Flavor::Mariadb => server_dir.display().to_string(),
            Flavor::Mysql => format!("{}/tls", chroot_rel(inst)),
        };
        cmd.arg(format!("--ssl-ca={seen}/ca.pem"))
            .arg(format!("--ssl-cert={seen}/server.pem"))
            .arg(format!("--ssl-key={seen}/server.key"))
            .arg("--require-secure-transport=ON")
            .arg("--general-log=ON")
            .arg("--log-output=TABLE");
        fs::write(dir.join("server-tls-dir"), server_dir.display().to_string())
            .map_err(|e| e.to_string())?;
    }
    let log = fs::File::create(dir.join("server.out")).map_err(|e| e.to_string())?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        // Own process group: Ctrl-C in the terminal that started it does not kill it.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", util::describe(&cmd)))?;
    let s = Sandbox {
        flavor,
        inst,
        port,
        pid: child.id(),
        datadir,
    };
    write_state(&s)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut wait = Duration::from_millis(100);
    loop {
        if !util::pid_alive(s.pid) {
            return Err(format!(
                "{} exited during start-up; last lines of {}:\n{}",
                flavor.name(),
                errlog.display(),
                util::tail(&errlog, 20)
            ));
        }
        match s.connect() {
            Ok(_) => break,
            Err(e) if Instant::now() > deadline => {
                return Err(format!(
                    "{} did not become ready in 120 s: {e}",
                    flavor.name()
                ))
            }
            Err(_) => {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(1));
            }
        }
    }
    Ok(s)
}

fn mariadb_command(dir: &Path, port: u16) -> Result<(Command, PathBuf, PathBuf), String> {
    if util::which("mariadbd").is_none() || util::which("mariadb-install-db").is_none() {
        util::apt_install(&["mariadb-server", "mariadb-client"], "the MariaDB sandbox")?;
    }
    let datadir = dir.join("data");
    if datadir.exists() {
        fs::remove_dir_all(&datadir)
            .map_err(|e| format!("cannot remove {}: {e}", datadir.display()))?;
    }
    let user = if util::is_root() {
        "root".to_owned()
    } else {
        std::env::var("USER").unwrap_or_default()
    };
    util::run(
        Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", datadir.display()))
            .arg(format!("--user={user}"))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .stdout(Stdio::null()),
    )?;
    let errlog = dir.join("err.log");
    let mut c = Command::new(util::which("mariadbd").unwrap_or_else(|| "mariadbd".into()));
    c.arg("--no-defaults")
        .arg(format!("--datadir={}", datadir.display()))
        .arg(format!("--user={user}"))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--socket={}", dir.join("mysql.sock").display()))
        .arg(format!("--pid-file={}", dir.join("mariadbd.pid").display()))
        .arg("--max-allowed-packet=1G")
        .arg("--log-bin=mysql-bin")
        .arg("--server-id=1")
        // Point-in-time recovery (spyglass-binlog): row events with full images.
        .arg("--binlog-format=ROW")
        .arg("--binlog-row-image=FULL")
        .arg("--binlog-annotate-row-events=ON")
        .arg(format!("--log-error={}", errlog.display()));
    Ok((c, datadir, errlog))
}

/// Makes sure the MySQL chroot exists in the cache, building it once.
pub fn ensure_mysql_chroot() -> Result<PathBuf, String> {
    let root = chroot_dir();
    if root.join("usr/sbin/mysqld").is_file() {
        return Ok(root);
    }
    if !util::is_root() {
        return Err(format!(
            "the MySQL sandbox needs a Debian unstable chroot at {}; build it as root:\n  \
             apt-get install -y debootstrap && debootstrap --variant=minbase --include=mysql-server-core,mysql-client-core sid {}",
            root.display(),
            root.display()
        ));
    }
    let _lock = util::cache_lock(&cache_dir(), "mysql-sid")?;
    if root.join("usr/sbin/mysqld").is_file() {
        // Another checkout built it while we waited.
        return Ok(root);
    }
    if util::which("debootstrap").is_none() {
        util::apt_install(&["debootstrap"], "building the MySQL chroot")?;
    }
    let tmp = cache_dir().join("mysql-sid.partial");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| format!("cannot remove {}: {e}", tmp.display()))?;
    }
    fs::create_dir_all(cache_dir()).map_err(|e| e.to_string())?;
    eprintln!(
        "xtask: building the MySQL chroot in {} (once per machine, ~1 min)",
        root.display()
    );
    let log = cache_dir().join("debootstrap.log");
    let logf = fs::File::create(&log).map_err(|e| e.to_string())?;
    let status = Command::new("debootstrap")
        .args([
            "--variant=minbase",
            "--include=mysql-server-core,mysql-client-core",
            "sid",
        ])
        .arg(&tmp)
        .stdout(logf.try_clone().map_err(|e| e.to_string())?)
        .stderr(logf)
        .status()
        .map_err(|e| format!("cannot run debootstrap: {e}"))?;
    if !status.success() {
        return Err(format!(
            "debootstrap failed ({status}); last lines of {}:\n{}",
            log.display(),
            util::tail(&log, 15)
        ));
    }
    fs::rename(&tmp, &root).map_err(|e| format!("cannot move the chroot into place: {e}"))?;
    Ok(root)
}

fn mysql_command(
    dir: &Path,
    port: u16,
    inst: Instance,
) -> Result<(Command, PathBuf, PathBuf), String> {
    if !util::is_root() {
        return Err("the MySQL sandbox runs mysqld in a chroot, which needs root".into());
    }
    let root = ensure_mysql_chroot()?;
    let rel = chroot_rel(inst);
    let host_dir = root.join(rel.trim_start_matches('/'));
    if host_dir.exists() {
        fs::remove_dir_all(&host_dir)
            .map_err(|e| format!("cannot remove {}: {e}", host_dir.display()))?;
    }
    fs::create_dir_all(&host_dir).map_err(|e| e.to_string())?;
    // Let target/sandbox/mysql/data show the data directory.
    let link = dir.join("data");
    let _ = fs::remove_file(&link);
    let _ = std::os::unix::fs::symlink(host_dir.join("data"), &link);
    let init_log = dir.join("initialize.log");
    let status = Command::new("chroot")
        .arg(&root)
        .args([
            "/usr/sbin/mysqld",
            "--no-defaults",
            "--initialize-insecure",
            "--user=root",
        ])
        .arg(format!("--datadir={rel}/data"))
        .stdout(fs::File::create(&init_log).map_err(|e| e.to_string())?)
        .stderr(fs::File::create(dir.join("initialize.err")).map_err(|e| e.to_string())?)
        .status()
        .map_err(|e| format!("cannot run chroot: {e}"))?;
    if !status.success() {
        return Err(format!(
            "mysqld --initialize-insecure failed ({status}):\n{}",
            util::tail(&dir.join("initialize.err"), 15)
        ));
    }
    let errlog = host_dir.join("err.log");
    let mut c = Command::new("chroot");
    c.arg(&root)
        .args([
            "/usr/sbin/mysqld",
            "--no-defaults",
            "--user=root",
            "--bind-address=127.0.0.1",
            "--mysqlx=OFF",
            "--secure-file-priv=",
        ])
        .arg(format!("--datadir={rel}/data"))
        .arg(format!("--port={port}"))
        .arg(format!("--socket={rel}/mysqld.sock"))
        .arg(format!("--pid-file={rel}/mysqld.pid"))
        .arg("--max-allowed-packet=1G")
        // Point-in-time recovery (spyglass-binlog): MySQL logs rows by
        // default; the statement text too for `recover --list`.
        .arg("--log-bin=mysql-bin")
        .arg(format!("--server-id={}", if inst.target { 2 } else { 1 }))
        .arg("--binlog-format=ROW")
        .arg("--binlog-row-image=FULL")
        .arg("--binlog-rows-query-log-events=ON")
        .arg(format!("--log-error={rel}/err.log"));
    if inst.target {
        // The restore target logs no GTIDs (MySQL 9 turns them on by
        // default): the point-in-time tests use it as a gtid_mode=OFF
        // source, where --until-gtid must be refused clearly.
        c.args(["--gtid-mode=OFF", "--enforce-gtid-consistency=OFF"]);
    }
    Ok((c, host_dir.join("data"), errlog))
}

/// Stops the sandbox (if any) and deletes its data.
pub fn stop(inst: impl Into<Instance>) -> Result<(), String> {
    let inst = inst.into();
    let flavor = inst.flavor;
    let Some(s) = read_state(inst) else {
        return Ok(());
    };
    if util::pid_alive(s.pid) {
        util::kill(s.pid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        while util::pid_alive(s.pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if util::pid_alive(s.pid) {
            util::kill(s.pid, "KILL");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let _ = fs::remove_file(state_file(inst));
    match flavor {
        Flavor::Mariadb => {
            let _ = fs::remove_dir_all(&s.datadir);
        }
        Flavor::Mysql => {
            let host_dir = chroot_dir().join(chroot_rel(inst).trim_start_matches('/'));
            let _ = fs::remove_dir_all(host_dir);
            let _ = fs::remove_file(sandbox_dir(inst).join("data"));
        }
    }
    eprintln!("xtask: {} sandbox stopped", inst.name());
    Ok(())
}

/// `cargo xtask fixture`.
pub fn fixture_cmd(args: &[String]) -> Result<(), String> {
    let flavor = crate::flavor_arg(args, Flavor::Mariadb)?;
    let blob_mb: u32 = util::opt_value(args, "--blob-mb")?
        .map(|v| {
            v.parse()
                .map_err(|_| format!("--blob-mb '{v}' is not a number"))
        })
        .transpose()?
        .unwrap_or(8);
    let seed: u64 = util::opt_value(args, "--seed")?
        .map(|v| {
            v.parse()
                .map_err(|_| format!("--seed '{v}' is not a number"))
        })
        .transpose()?
        .unwrap_or(1);
    let root = util::opt_value(args, "--root")?
        .map(PathBuf::from)
        .unwrap_or_else(|| sandbox_dir(flavor).join("fixture"));
    let s = running(flavor).ok_or_else(|| {
        format!(
            "no {0} sandbox running; start one with: cargo xtask sandbox start --flavor {0}",
            flavor.name()
        )
    })?;
    let summary = fixture(&s, &root, blob_mb, seed)?;
    println!("{}", serde_json_lite(&summary));
    Ok(())
}

pub fn fixture(
    s: &Sandbox,
    root: &Path,
    blob_mb: u32,
    seed: u64,
) -> Result<spyglass_fixture::Summary, String> {
    let mut session = s.connect()?;
    let opts = spyglass_fixture::FixtureOptions {
        seed,
        blob_mb,
        root: root.to_owned(),
    };
    spyglass_fixture::create(&mut session, &opts, (s.host(), s.port, s.user())).map_err(|e| {
        let mut m = e.to_string();
        if let Some(src) = std::error::Error::source(&e) {
            m.push_str(&format!(": {src}"));
        }
        m
    })
}

fn serde_json_lite(s: &spyglass_fixture::Summary) -> String {
    spyglass_fixture::summary_json(s)
}

/// A `mysqldump` that runs the chroot's MySQL client tools. Options files must
/// be under the returned temp dir (inside the chroot); their paths are
/// translated. Returns (wrapper, temp dir).
pub fn mysqldump_wrapper() -> Result<(PathBuf, PathBuf), String> {
    let root = ensure_mysql_chroot()?;
    let tmp = root.join("tmp");
    let wrapper = sandbox_dir(Flavor::Mysql).join("mysqldump-chroot");
    fs::create_dir_all(sandbox_dir(Flavor::Mysql)).map_err(|e| e.to_string())?;
    let script = format!(
        "#!/bin/sh\n# Runs MySQL's mysqldump from the sandbox chroot; paths under the chroot are translated.\nROOT='{root}'\nfor a in \"$@\"; do\n  shift\n  case \"$a\" in\n    --defaults-extra-file=\"$ROOT\"/*) a=\"--defaults-extra-file=${{a#--defaults-extra-file=$ROOT}}\" ;;\n    --defaults-file=\"$ROOT\"/*) f=\"${{a#--defaults-file=}}\"; (umask 077; sed \"s|$ROOT/|/|g\" \"$f\" > \"$f.chroot\"); a=\"--defaults-file=${{f#$ROOT}}.chroot\" ;;\n  esac\n  set -- \"$@\" \"$a\"\ndone\n# Paths inside the defaults file (TLS files under the chroot) are translated in a 0600 copy.\nexec chroot \"$ROOT\" /usr/bin/mysqldump \"$@\"\n",
        root = root.display()
    );
    fs::write(&wrapper, script).map_err(|e| e.to_string())?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    Ok((wrapper, tmp))
}
