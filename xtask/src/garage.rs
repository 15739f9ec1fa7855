//! A real distributed object store for the S3 tests, the demo and the ship
//! bench: Garage (an S3-compatible store; AGPL, run only as an external test
//! server, never linked), built once per machine into the cache directory
//! and started as a 3-node cluster on 127.0.0.1 with replication factor 3.
//! See ../shared/docs/SERVERS.md, "Garage".
//!
//! Each node has its own data and metadata directory and config under
//! `DIR/nN/`; the bucket and key are made with the garage CLI, and the key
//! goes to the tests in `DIR/s3.env` (mode 0600), never on a command line
//! of ours.
//!
//! Garage serves plain HTTP; for the https tests `socat` (with openssl)
//! terminates TLS in front of node 1 with a certificate of a private CA made
//! by [`crate::tls::make_certs`] (`DIR/tls/ca.pem`; `other-ca.pem` did not
//! sign it).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util;

pub const VERSION: &str = "2.5.0";
/// The bucket the tests, the demo and the bench use.
pub const BUCKET: &str = "spyglass-it";
/// Garage's default region name.
pub const REGION: &str = "garage";

/// Where the built Garage lives: `CACHE/garage-VERSION/bin/garage`.
pub fn cache_root() -> PathBuf {
    crate::sandbox::cache_dir().join(format!("garage-{VERSION}"))
}

/// True when `pid`'s command line mentions `needle`.
fn cmdline_has(pid: &str, needle: &str) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(needle))
        .unwrap_or(false)
}

/// A `cargo install` into `partial` that is running right now (started by
/// another checkout, or by hand).
fn build_running(partial: &Path) -> bool {
    let needle = partial.display().to_string();
    fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten().any(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.chars().all(|c| c.is_ascii_digit()) && cmdline_has(&n, &needle)
            })
        })
        .unwrap_or(false)
}

/// The garage binary: the cached one, else built now (about 9 minutes on 2
/// cores) with `cargo install` into `garage-VERSION.partial`, renamed when
/// done, under a cache lock.
pub fn ensure_built() -> Result<PathBuf, String> {
    let root = cache_root();
    let bin = root.join("bin/garage");
    if bin.is_file() {
        return Ok(bin);
    }
    let cache = crate::sandbox::cache_dir();
    let partial = cache.join(format!("garage-{VERSION}.partial"));
    // A build started outside this lock (by hand): wait for it instead of starting a second.
    let mut said = false;
    while build_running(&partial) {
        if !said {
            eprintln!(
                "xtask: Garage is being built into {} (log {}); waiting for it",
                partial.display(),
                cache.join("garage-build.log").display()
            );
            said = true;
        }
        std::thread::sleep(Duration::from_secs(10));
        if bin.is_file() {
            return Ok(bin);
        }
    }
    let _lock = util::cache_lock(&cache, &format!("garage-{VERSION}"))?;
    if bin.is_file() {
        return Ok(bin);
    }
    if partial.exists() {
        fs::remove_dir_all(&partial)
            .map_err(|e| format!("cannot remove {}: {e}", partial.display()))?;
    }
    let log = cache.join("garage-build.log");
    eprintln!(
        "xtask: building Garage {VERSION} once for this machine into {} (about 9 minutes on 2 cores; log {})",
        root.display(),
        log.display()
    );
    let out = fs::File::create(&log).map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "install",
            "garage",
            "--version",
            VERSION,
            "--no-default-features",
            "--features",
            "bundled-libs,lmdb",
            "--locked",
            "--root",
        ])
        .arg(&partial)
        // Not this checkout's target dir: cargo install builds in a temp dir of its own.
        .env_remove("CARGO_TARGET_DIR")
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| format!("cannot run cargo install: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building Garage failed ({status}); the end of {}:\n{}",
            log.display(),
            util::tail(&log, 20)
        ));
    }
    fs::rename(&partial, &root).map_err(|e| format!("cannot rename {}: {e}", partial.display()))?;
    Ok(bin)
}

/// One node of a running cluster.
pub struct Node {
    pub config: PathBuf,
    pub s3_port: u16,
    pid_file: PathBuf,
}

/// A running 3-node cluster; stopped on drop.
pub struct Cluster {
    pub dir: PathBuf,
    pub bin: PathBuf,
    pub nodes: Vec<Node>,
    pub key_id: String,
    secret: String,
    /// The TLS proxy in front of node 1: `https://127.0.0.1:PORT`, its CA
    /// file, and the pid file of socat.
    pub tls: Option<(String, PathBuf, PathBuf)>,
}

/// Starts `socat` terminating TLS on a free 127.0.0.1 port in front of
/// `127.0.0.1:to`, with a server certificate of a private CA made in
/// `dir`; returns the https endpoint, the CA file and socat's pid file.
fn start_tls_proxy(dir: &Path, to: u16) -> Result<(String, PathBuf, PathBuf), String> {
    if util::which("socat").is_none() {
        util::apt_install(&["socat"], "the S3 https tests")?;
    }
    let certs = crate::tls::make_certs(dir)?;
    let port = util::free_port()?;
    let log = dir.join("socat.log");
    let out = fs::File::create(&log).map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    let child = Command::new("socat")
        .arg(format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
            certs.join("server.pem").display(),
            certs.join("server.key").display()
        ))
        .arg(format!("TCP:127.0.0.1:{to}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .map_err(|e| format!("cannot start socat: {e}"))?;
    let pid_file = dir.join("socat.pid");
    write(&pid_file, &child.id().to_string())?;
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t.elapsed() > Duration::from_secs(20) {
            return Err(format!(
                "socat did not listen on 127.0.0.1:{port}:\n{}",
                util::tail(&log, 20)
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((
        format!("https://127.0.0.1:{port}"),
        certs.join("ca.pem"),
        pid_file,
    ))
}

fn random_hex(bytes: usize) -> Result<String, String> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Stops the node whose pid is in `pid_file` (a node this xtask, or a test
/// of this checkout, started there).
fn stop_pid_file(pid_file: &Path) {
    if let Some(pid) = fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    {
        if util::pid_alive(pid) {
            util::kill(pid, "TERM");
            let t = Instant::now();
            while util::pid_alive(pid) && t.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(100));
            }
            if util::pid_alive(pid) {
                util::kill(pid, "KILL");
            }
        }
    }
    let _ = fs::remove_file(pid_file);
}

impl Cluster {
    /// The garage CLI against node 1, output captured; an error names the command.
    fn cli(&self, args: &[&str]) -> Result<String, String> {
        garage_cli(&self.bin, &self.nodes[0].config, args)
    }

    /// `http://127.0.0.1:PORT` of every node.
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("http://127.0.0.1:{}", n.s3_port))
            .collect()
    }

    /// The secret access key (for the 0600 env file and child environments only).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Sets the AWS variables (endpoint of node 1, region, key) in `c`'s
    /// environment (never its argv). `AWS_CA_BUNDLE` is left as it is: our
    /// client ignores it for http.
    pub fn set_env(&self, c: &mut Command) {
        c.env("AWS_ENDPOINT_URL", &self.endpoints()[0])
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", &self.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN");
    }

    /// The file (mode 0600) that tells tests how to reach the cluster.
    pub fn env_file(&self) -> PathBuf {
        self.dir.join("s3.env")
    }
}

fn garage_cli(bin: &Path, config: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(bin)
        .arg("-c")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "garage {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Starts node `config` (its `server`), logging to `log`, pid into `pid_file`.
pub fn start_node(bin: &Path, config: &Path, log: &Path, pid_file: &Path) -> Result<(), String> {
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let child = Command::new(bin)
        .arg("-c")
        .arg(config)
        .arg("server")
        .env("RUST_LOG", "garage=warn")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    write(pid_file, &child.id().to_string())
}

/// Builds (or reuses) Garage and starts a fresh 3-node cluster in `dir`
/// with bucket [`BUCKET`] and a key allowed to read and write it.
pub fn start(dir: &Path) -> Result<Cluster, String> {
    let bin = ensure_built()?;
    // An earlier run's nodes (this checkout's, from their pid files).
    for n in 1..=3 {
        stop_pid_file(&dir.join(format!("n{n}/pid")));
    }
    stop_pid_file(&dir.join("tls/socat.pid"));
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    }
    let secret = random_hex(32)?;
    let mut nodes = Vec::new();
    for n in 1..=3 {
        let nd = dir.join(format!("n{n}"));
        fs::create_dir_all(&nd).map_err(|e| format!("cannot create {}: {e}", nd.display()))?;
        let (rpc, s3, admin) = (util::free_port()?, util::free_port()?, util::free_port()?);
        let config = nd.join("garage.toml");
        write(
            &config,
            &format!(
                "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"lmdb\"\n\
                 replication_factor = 3\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\n\
                 [s3_api]\ns3_region = \"{REGION}\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n\
                 root_domain = \".s3.garage.localhost\"\n\n[admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\n",
                d = nd.display()
            ),
        )?;
        // It holds the RPC secret.
        fs::set_permissions(&config, fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("chmod {}: {e}", config.display()))?;
        let pid_file = nd.join("pid");
        start_node(&bin, &config, &nd.join("garage.log"), &pid_file)?;
        nodes.push(Node {
            config,
            s3_port: s3,
            pid_file,
        });
    }
    let mut cluster = Cluster {
        dir: dir.to_owned(),
        bin,
        nodes,
        key_id: String::new(),
        secret: String::new(),
        tls: None,
    };
    // Wait for every node to answer, and learn its id.
    let mut ids = Vec::new();
    for (i, n) in cluster.nodes.iter().enumerate() {
        let t = Instant::now();
        let id = loop {
            match garage_cli(&cluster.bin, &n.config, &["node", "id", "-q"]) {
                Ok(id) => break id.trim().to_owned(),
                Err(e) if t.elapsed() > Duration::from_secs(60) => {
                    return Err(format!(
                        "Garage node {} did not come up: {e}\n{}",
                        i + 1,
                        util::tail(&dir.join(format!("n{}/garage.log", i + 1)), 20)
                    ))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        ids.push(id);
    }
    // `node id` answers before a node's RPC port listens: retry the connect.
    for id in &ids[1..] {
        let t = Instant::now();
        loop {
            match cluster.cli(&["node", "connect", id]) {
                Ok(_) => break,
                Err(e) if t.elapsed() > Duration::from_secs(60) => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(300)),
            }
        }
    }
    for id in &ids {
        let short = id.split('@').next().unwrap_or(id);
        cluster.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", short])?;
    }
    cluster.cli(&["layout", "apply", "--version", "1"])?;
    // The layout takes a moment to reach every node.
    let t = Instant::now();
    loop {
        match cluster.cli(&["bucket", "create", BUCKET]) {
            Ok(_) => break,
            Err(e) if t.elapsed() > Duration::from_secs(60) => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
    let out = cluster.cli(&["key", "create", "spyglass-it-key"])?;
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_owned()))
            .ok_or_else(|| format!("garage key create printed no '{name}' line"))
    };
    cluster.key_id = field("Key ID:")?;
    cluster.secret = field("Secret key:")?;
    cluster.cli(&[
        "bucket",
        "allow",
        "--read",
        "--write",
        "--owner",
        BUCKET,
        "--key",
        "spyglass-it-key",
    ])?;
    cluster.tls = Some(start_tls_proxy(&dir.join("tls"), cluster.nodes[0].s3_port)?);
    let env = cluster.env_file();
    let mut text = format!(
        "endpoints={}\nbucket={BUCKET}\nregion={REGION}\naccess_key_id={}\nsecret_access_key={}\nbin={}\n",
        cluster.endpoints().join(","),
        cluster.key_id,
        cluster.secret,
        cluster.bin.display()
    );
    if let Some((url, ca, _)) = &cluster.tls {
        text.push_str(&format!(
            "tls_endpoint={url}\ntls_ca={}\ntls_other_ca={}\n",
            ca.display(),
            ca.with_file_name("other-ca.pem").display()
        ));
    }
    for (i, n) in cluster.nodes.iter().enumerate() {
        text.push_str(&format!(
            "node{}={}\n",
            i + 1,
            n.config.parent().unwrap_or(dir).display()
        ));
    }
    fs::write(&env, "").map_err(|e| format!("writing {}: {e}", env.display()))?;
    fs::set_permissions(&env, fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod {}: {e}", env.display()))?;
    write(&env, &text)?;
    Ok(cluster)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &self.nodes {
            stop_pid_file(&n.pid_file);
        }
        if let Some((_, _, pid)) = &self.tls {
            stop_pid_file(pid);
        }
    }
}
