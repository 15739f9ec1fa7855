//! `s3://` targets on a real 3-node Garage cluster (replication factor 3)
//! that `cargo xtask itest` starts on 127.0.0.1: ship, list, verify,
//! restore into the second server (every table's CHECKSUM equal), a damaged
//! object, wrong credentials and a missing bucket, multipart uploads, prune
//! with made-up dates, nodes killed mid-upload, and `nightly`.
//!
//! Every test works under its own prefix of the one bucket. What is on the
//! store is checked from outside with `rclone` (another S3 client).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::{quote, ConnectOptions, Secret, Session};

use crate::support::{self, admin, server, Sandbox};

/// Taken for writing by the test that stops nodes; every other test reads.
static NODES: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    NODES.read().unwrap_or_else(|p| p.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    NODES.write().unwrap_or_else(|p| p.into_inner())
}

/// The cluster, from the 0600 file `cargo xtask itest` wrote.
struct Store {
    endpoints: Vec<String>,
    bucket: String,
    region: String,
    key_id: String,
    secret: String,
    bin: PathBuf,
    nodes: Vec<PathBuf>,
    /// `https://127.0.0.1:PORT`: socat terminating TLS in front of node 1.
    tls_endpoint: String,
    /// The private CA that signed the proxy's certificate.
    tls_ca: PathBuf,
    /// A CA that did not.
    tls_other_ca: PathBuf,
}

fn store() -> Store {
    let path = std::env::var("SPYGLASS_IT_S3").unwrap_or_else(|_| {
        panic!("SPYGLASS_IT_S3 is not set: the S3 tests run through `cargo xtask itest`, which builds Garage and starts a 3-node cluster")
    });
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let kv: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| {
        kv.get(k)
            .unwrap_or_else(|| panic!("{path} has no {k}"))
            .to_string()
    };
    Store {
        endpoints: get("endpoints").split(',').map(str::to_owned).collect(),
        bucket: get("bucket"),
        region: get("region"),
        key_id: get("access_key_id"),
        secret: get("secret_access_key"),
        bin: PathBuf::from(get("bin")),
        nodes: (1..=3)
            .map(|n| PathBuf::from(get(&format!("node{n}"))))
            .collect(),
        tls_endpoint: get("tls_endpoint"),
        tls_ca: PathBuf::from(get("tls_ca")),
        tls_other_ca: PathBuf::from(get("tls_other_ca")),
    }
}

impl Store {
    /// `s3://bucket/prefix`.
    fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// The binary, with the cluster in its environment (never its argv).
    fn sandbox(&self, on_target: bool) -> Sandbox {
        let mut sb = Sandbox::as_root();
        if on_target {
            sb.env("DJ_PORT", &target_port().to_string());
        }
        sb.env("AWS_ENDPOINT_URL", &self.endpoints[0])
            .env("AWS_REGION", &self.region)
            .env("AWS_ACCESS_KEY_ID", &self.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret);
        sb
    }

    /// rclone against node 1 (`g:` is the store), configured through its
    /// environment; `AWS_CA_BUNDLE` is unset, as rclone refuses it for http.
    fn rclone(&self, args: &[&str]) -> Output {
        Command::new("rclone")
            .args(args)
            .env_remove("AWS_CA_BUNDLE")
            .env("RCLONE_CONFIG_G_TYPE", "s3")
            .env("RCLONE_CONFIG_G_PROVIDER", "Other")
            .env("RCLONE_CONFIG_G_ENDPOINT", &self.endpoints[0])
            .env("RCLONE_CONFIG_G_REGION", &self.region)
            .env("RCLONE_CONFIG_G_ACCESS_KEY_ID", &self.key_id)
            .env("RCLONE_CONFIG_G_SECRET_ACCESS_KEY", &self.secret)
            .env("RCLONE_CONFIG_G_FORCE_PATH_STYLE", "true")
            .stdin(Stdio::null())
            .output()
            .expect("rclone runs (cargo xtask itest installs it)")
    }

    /// Every object key under `prefix/`, relative to it.
    fn keys(&self, prefix: &str) -> Vec<String> {
        let out = self.rclone(&["lsf", "-R", "--files-only", &self.remote(prefix)]);
        assert!(
            out.status.success(),
            "rclone lsf: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    }

    /// `keys`, asked again for up to 20 s until it equals `want` (a node
    /// just restarted can list a deleted object until it has caught up).
    fn keys_settled(&self, prefix: &str, want: &[String]) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let k = self.keys(prefix);
            if k == want || Instant::now() > deadline {
                return k;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn remote(&self, path: &str) -> String {
        format!("g:{}/{path}", self.bucket)
    }

    /// The bytes of one object, read by rclone.
    fn cat(&self, key: &str) -> Vec<u8> {
        let out = self.rclone(&["cat", &self.remote(key)]);
        assert!(
            out.status.success(),
            "rclone cat {key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Writes `bytes` as the object `key` (rclone, not us).
    fn put(&self, key: &str, bytes: &[u8]) {
        let f = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(f.path(), bytes).expect("write");
        let out = self.rclone(&[
            "copyto",
            f.path().to_str().expect("utf8"),
            &self.remote(key),
        ]);
        assert!(
            out.status.success(),
            "rclone copyto {key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The unfinished multipart uploads under `prefix/` (keys), by rclone.
    fn uploads(&self, prefix: &str) -> Vec<String> {
        let mp = self.rclone(&["backend", "list-multipart-uploads", &self.remote("")]);
        assert!(
            mp.status.success(),
            "rclone backend list-multipart-uploads: {}",
            String::from_utf8_lossy(&mp.stderr)
        );
        let v: Value = serde_json::from_slice(&mp.stdout).expect("rclone prints JSON");
        let mut keys: Vec<String> = v
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .flat_map(|u| u.as_array().into_iter().flatten())
            .filter_map(|u| u["Key"].as_str())
            .filter(|k| k.starts_with(&format!("{prefix}/")))
            .map(str::to_owned)
            .collect();
        keys.sort();
        keys
    }

    fn pid_file(&self, node: usize) -> PathBuf {
        self.nodes[node].join("pid")
    }

    /// Stops node `node` (0-based) hard, as a crash would.
    fn kill_node(&self, node: usize) {
        let pid = std::fs::read_to_string(self.pid_file(node))
            .expect("node pid file")
            .trim()
            .to_owned();
        let st = Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .expect("kill");
        assert!(st.success(), "kill node {}", node + 1);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}")).exists() {
            // Reap it if it is a zombie of the xtask; otherwise wait.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                == Some("Z")
            {
                break;
            }
            assert!(Instant::now() < deadline, "node {} did not stop", node + 1);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts node `node` again on its data; its pid goes into the pid file
    /// the xtask stops it by.
    // The node outlives this test on purpose: the xtask stops it by its pid file.
    #[allow(clippy::zombie_processes)]
    fn start_node(&self, node: usize) {
        let d = &self.nodes[node];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("garage.log"))
            .expect("log");
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(d.join("garage.toml"))
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start garage");
        std::fs::write(self.pid_file(node), child.id().to_string()).expect("pid file");
    }

    /// Waits until a write through node 1 succeeds (all nodes back in the cluster).
    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = Command::new(&self.bin)
                .arg("-c")
                .arg(self.nodes[0].join("garage.toml"))
                .arg("status")
                .output()
                .expect("garage status");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            // `status` lists failed nodes under a heading of their own.
            if out.status.success() && !text.to_ascii_lowercase().contains("failed nodes") {
                let o = self.rclone(&["lsf", &self.remote("")]);
                if o.status.success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not become healthy: {text}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn target_port() -> u16 {
    std::env::var("SPYGLASS_IT_TARGET_PORT")
        .expect("SPYGLASS_IT_TARGET_PORT is set by cargo xtask itest")
        .parse()
        .expect("port")
}

fn target_admin() -> Session {
    let s = server();
    spyglass_db::connect(
        &ConnectOptions::tcp(&s.host, target_port(), &s.user).password(Secret::new("")),
    )
    .expect("connect to the restore target")
}

fn drop_schemas(s: &mut Session, schemas: &[&str]) {
    for d in schemas {
        support::sql(s, &format!("DROP DATABASE IF EXISTS {}", quote::ident(d)));
    }
}

/// A schema `name` with a few tables; with `big_mb`, a table of that many
/// MiB of random (incompressible) bytes, so its data file needs several
/// multipart parts.
fn make_lab(name: &str, big_mb: usize) {
    let mut a = admin();
    drop_schemas(&mut a, &[name]);
    let q = quote::ident(name);
    for sql in [
        format!("CREATE DATABASE {q} CHARACTER SET utf8mb4"),
        format!("CREATE TABLE {q}.session (id INT PRIMARY KEY, name VARCHAR(64), at DATETIME(6), note TEXT)"),
        format!("INSERT INTO {q}.session VALUES (1, 'rat-1', '2026-01-02 03:04:05.123456', 'first'), (2, 'rat''s \\\\ 2', NULL, 'émoji 🐀'), (3, '', '2026-12-31 23:59:59', NULL)"),
        format!("CREATE TABLE {q}.spikes (session INT, n INT, v DOUBLE, PRIMARY KEY (session, n), FOREIGN KEY (session) REFERENCES {q}.session (id))"),
        format!("CREATE TABLE {q}.digits (d INT PRIMARY KEY)"),
        format!("INSERT INTO {q}.digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)"),
        format!("INSERT INTO {q}.spikes SELECT 1 + a.d % 3, a.d * 100 + b.d * 10 + c.d, (a.d * 100 + b.d * 10 + c.d) / 7.0 FROM {q}.digits a, {q}.digits b, {q}.digits c"),
        format!("CREATE TABLE {q}.raw (id INT AUTO_INCREMENT PRIMARY KEY, b VARBINARY(1024))"),
    ] {
        support::sql(&mut a, &sql);
    }
    if big_mb > 0 {
        // 1 KiB rows: 1000 per round.
        for _ in 0..big_mb * 1024 / 1000 + 1 {
            support::sql(
                &mut a,
                &format!("INSERT INTO {q}.raw (b) SELECT RANDOM_BYTES(1024) FROM {q}.digits x, {q}.digits y, {q}.digits z"),
            );
        }
    }
}

/// A local backup of `schemas`; returns the temp dir and the set.
fn backup_of(schemas: &str) -> (tempfile::TempDir, PathBuf) {
    let dest = tempfile::tempdir().expect("tempdir");
    let out = Sandbox::as_root().run(&[
        "backup",
        "run",
        "--dest",
        dest.path().to_str().expect("utf8"),
        "--label",
        "s3",
        "--schemas",
        schemas,
        "--no-accounts",
        "--threads",
        "2",
    ]);
    out.assert_code(0);
    let set = PathBuf::from(out.stdout.trim());
    (dest, set)
}

fn set_name(set: &Path) -> String {
    set.file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned()
}

/// Relative paths of every file in a local set.
fn local_files(set: &Path) -> Vec<String> {
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
    walk(set, set, &mut v);
    v.sort();
    v
}

fn tables(s: &mut Session, schema: &str) -> Vec<String> {
    s.conn()
        .query(format!(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = {} AND table_type = 'BASE TABLE' ORDER BY 1",
            quote::string(schema)
        ))
        .expect("tables")
}

/// Rows and CHECKSUM TABLE of every table of `schema`.
fn fingerprint(s: &mut Session, schema: &str) -> Vec<(String, u64, Option<u64>)> {
    tables(s, schema)
        .into_iter()
        .map(|t| {
            let q = quote::qualified(schema, &t);
            let n: u64 = s
                .conn()
                .query_first(format!("SELECT COUNT(*) FROM {q}"))
                .expect("count")
                .expect("row");
            let c: Option<(String, Option<u64>)> = s
                .conn()
                .query_first(format!("CHECKSUM TABLE {q}"))
                .expect("checksum");
            (t, n, c.and_then(|c| c.1))
        })
        .collect()
}

fn ship(sb: &Sandbox, set: &Path, to: &str, extra: &[&str]) -> support::Outcome {
    let mut args = vec![
        "backup",
        "ship",
        set.to_str().expect("utf8"),
        "--to",
        to,
        "--json",
    ];
    args.extend_from_slice(extra);
    sb.run(&args)
}

/// `[s3] part_size_mb = 5` (the smallest AWS allows) in the sandbox's settings.
fn small_parts(sb: &Sandbox) {
    sb.write("spyglass-admin.toml", "[s3]\npart_size_mb = 5\n", 0o644);
}

#[test]
fn s3_ship_list_verify_and_restore_into_a_fresh_server() {
    let _nodes = shared();
    let st = store();
    let schema = "s3_round_trip";
    make_lab(schema, 12);
    let (_dir, set) = backup_of(schema);
    let name = set_name(&set);
    let sb = st.sandbox(false);
    small_parts(&sb);
    let to = st.url("round-trip");
    let out = ship(&sb, &set, &to, &[]);
    out.assert_code(0);
    let j = out.json();
    assert_eq!(j["transport"], "s3", "{j}");
    assert_eq!(j["already_there"], false);
    // From outside: the same files, byte for byte, and the manifest there.
    let keys = st.keys(&format!("round-trip/{name}"));
    assert_eq!(keys, local_files(&set), "objects on the store");
    for k in &keys {
        assert!(
            st.cat(&format!("round-trip/{name}/{k}")) == std::fs::read(set.join(k)).expect("read"),
            "{k} differs on the store"
        );
    }
    // The random table's data file is bigger than one part: it went up in parts.
    let biggest = keys
        .iter()
        .map(|k| std::fs::metadata(set.join(k)).expect("size").len())
        .max()
        .expect("files");
    assert!(
        biggest > 2 * (5 << 20),
        "a file of {biggest} bytes needs three parts"
    );
    // Again: already there, nothing sent.
    let again = ship(&sb, &set, &to, &[]);
    again.assert_code(0);
    assert_eq!(again.json()["already_there"], true);
    // list
    let l = sb.run(&["backup", "list", &to, "--json"]);
    l.assert_code(0);
    let sets = l.json();
    let sets = sets.as_array().expect("array");
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert_eq!(sets[0]["name"], name.as_str());
    assert_eq!(sets[0]["complete"], true);
    assert_eq!(sets[0]["schemas"], serde_json::json!([schema]));
    assert!(sets[0]["problem"].is_null(), "{sets:?}");
    let human = sb.run(&["backup", "list", &to]);
    human.assert_code(0);
    assert!(
        human.stdout.contains(&name) && human.stdout.contains("complete"),
        "{}",
        human.stdout
    );
    // verify reads every object back.
    let v = sb.run(&["backup", "verify", &format!("{to}/{name}")]);
    v.assert_code(0);
    assert!(v.stdout.contains("good"), "{}", v.stdout);
    // restore into the second server: every table the same.
    let mut dst = target_admin();
    drop_schemas(&mut dst, &[schema]);
    let r = st
        .sandbox(true)
        .run(&["backup", "restore", &format!("{to}/{name}")]);
    r.assert_code(0);
    let mut src = admin();
    let a = fingerprint(&mut src, schema);
    assert_eq!(a.len(), 4, "{a:?}");
    assert!(a.iter().any(|(t, n, _)| t == "raw" && *n > 10_000), "{a:?}");
    assert_eq!(a, fingerprint(&mut dst, schema), "rows and CHECKSUM TABLE");
    drop_schemas(&mut dst, &[schema]);
}

#[test]
fn s3_a_damaged_object_is_named_by_verify_and_restore_and_repaired() {
    let _nodes = shared();
    let st = store();
    let schema = "s3_damaged";
    make_lab(schema, 0);
    let (_dir, set) = backup_of(schema);
    let name = set_name(&set);
    let sb = st.sandbox(false);
    let to = st.url("damaged");
    ship(&sb, &set, &to, &[]).assert_code(0);
    let data = local_files(&set)
        .into_iter()
        .find(|f| f.starts_with("2-data/") && f.contains("spikes"))
        .expect("a data file of spikes");
    let key = format!("damaged/{name}/{data}");
    // Other bytes, the same length: only the sha256 can tell.
    let mut bytes = st.cat(&key);
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    st.put(&key, &bytes);
    let object = format!("{to}/{name}/{data}");
    let v = sb.run(&["backup", "verify", &format!("{to}/{name}")]);
    v.assert_code(1);
    assert!(v.stdout.contains(&format!("BAD  {object}")), "{}", v.stdout);
    let mut dst = target_admin();
    drop_schemas(&mut dst, &[schema]);
    let r = st
        .sandbox(true)
        .run(&["backup", "restore", &format!("{to}/{name}")]);
    r.assert_code(2).assert_clean_error();
    assert!(r.stderr.contains(&object), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was restored"), "{}", r.stderr);
    let exists: Option<String> = dst
        .conn()
        .query_first(format!(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name = {}",
            quote::string(schema)
        ))
        .expect("query");
    assert_eq!(exists, None, "nothing was loaded");
    // ship names the damaged copy, and --repair sends it again.
    let s = ship(&sb, &set, &to, &[]);
    s.assert_code(2).assert_clean_error();
    assert!(s.stderr.contains(&data), "{}", s.stderr);
    ship(&sb, &set, &to, &["--repair"]).assert_code(0);
    assert!(st.cat(&key) == std::fs::read(set.join(&data)).expect("read"));
    sb.run(&["backup", "verify", &format!("{to}/{name}")])
        .assert_code(0);
}

#[test]
fn s3_wrong_credentials_missing_bucket_and_no_store_are_clear_errors() {
    let _nodes = shared();
    let st = store();
    let schema = "s3_errors";
    make_lab(schema, 0);
    let (_dir, set) = backup_of(schema);
    // A wrong secret.
    let mut sb = st.sandbox(false);
    sb.env("AWS_SECRET_ACCESS_KEY", "not-the-secret-0123456789");
    let o = ship(&sb, &set, &st.url("errors"), &[]);
    o.assert_code(2).assert_clean_error();
    assert!(o.stderr.contains(&st.bucket), "{}", o.stderr);
    assert!(
        o.stderr.contains("SignatureDoesNotMatch")
            || o.stderr.contains("AccessDenied")
            || o.stderr.contains("InvalidSignature"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("credentials"), "hint: {}", o.stderr);
    assert!(!o.stderr.contains("not-the-secret"), "{}", o.stderr);
    // An unknown key id.
    let mut sb = st.sandbox(false);
    sb.env("AWS_ACCESS_KEY_ID", "GK00000000000000000000000");
    let o = ship(&sb, &set, &st.url("errors"), &[]);
    o.assert_code(2).assert_clean_error();
    assert!(!o.stderr.contains(&st.secret), "{}", o.stderr);
    // A bucket that is not there.
    let sb = st.sandbox(false);
    let o = ship(&sb, &set, "s3://no-such-bucket-here/x", &[]);
    o.assert_code(2).assert_clean_error();
    assert!(o.stderr.contains("no-such-bucket-here"), "{}", o.stderr);
    assert!(o.stderr.contains("NoSuchBucket"), "{}", o.stderr);
    // No credentials at all.
    let mut sb = Sandbox::as_root();
    sb.env("AWS_ENDPOINT_URL", &st.endpoints[0]);
    let o = sb.run(&["backup", "list", &st.url("errors")]);
    o.assert_code(2).assert_clean_error();
    assert!(o.stderr.contains("no S3 credentials"), "{}", o.stderr);
    // Nobody listening: retried, then a clear error.
    let mut sb = st.sandbox(false);
    sb.env(
        "AWS_ENDPOINT_URL",
        &format!("http://127.0.0.1:{}", support::closed_port()),
    );
    let o = sb.run(&["backup", "list", &st.url("errors")]);
    o.assert_code(2).assert_clean_error();
    assert!(o.stderr.contains("cannot reach 127.0.0.1:"), "{}", o.stderr);
    // A profile in ~/.aws/credentials, and [s3] settings, instead of the environment.
    let mut sb = Sandbox::as_root();
    sb.env("AWS_PROFILE", "lab");
    std::fs::create_dir_all(sb.home.path().join(".aws")).expect("mkdir");
    sb.write_home(
        ".aws/credentials",
        &format!(
            "[default]\naws_access_key_id = GKwrong\naws_secret_access_key = wrong\n\n[lab]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            st.key_id, st.secret
        ),
        0o600,
    );
    sb.write(
        "spyglass-admin.toml",
        &format!(
            "[s3]\nendpoint = \"{}\"\nregion = \"{}\"\n",
            st.endpoints[1], st.region
        ),
        0o644,
    );
    ship(&sb, &set, &st.url("errors"), &[]).assert_code(0);
    // A secret in a settings file others can read is refused.
    let sb = Sandbox::as_root();
    sb.write(
        "spyglass-admin.toml",
        &format!(
            "[s3]\nendpoint = \"{}\"\nregion = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
            st.endpoints[0], st.region, st.key_id, st.secret
        ),
        0o644,
    );
    let o = sb.run(&["backup", "list", &st.url("errors")]);
    o.assert_code(2).assert_clean_error();
    assert!(o.stderr.contains("chmod 600"), "{}", o.stderr);
    assert!(!o.stderr.contains(&st.secret), "{}", o.stderr);
    std::fs::set_permissions(
        sb.cwd().join("spyglass-admin.toml"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    let o = sb.run(&["backup", "list", &st.url("errors"), "--json"]);
    o.assert_code(0);
    assert_eq!(o.json().as_array().expect("array").len(), 1);
}

/// A made-up set on the store: just a manifest object (and a staged one:
/// no manifest, its staged manifest and one file).
fn made_up(st: &Store, prefix: &str, stamp: &str, complete: bool) {
    let m = serde_json::json!({
        "format": 1, "tool_version": "test", "engine": "native", "label": "nightly",
        "server": {"flavor": "mariadb", "version": "10.11", "address": "127.0.0.1:3306"},
        "snapshot": {"method": "none", "ddl_lock": "none", "binlog_file": null, "binlog_position": null, "gtid": null, "workers": 1},
        "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:00:01Z",
        "compression": {"method": "gzip", "level": 1}, "encoding": "escaped", "max_statement_bytes": 0,
        "schemas": [], "tables": [], "files": [], "notes": []
    });
    let dir = format!("{prefix}/nightly-{stamp}");
    if complete {
        st.put(&format!("{dir}/manifest.json"), m.to_string().as_bytes());
    } else {
        st.put(
            &format!("{dir}/manifest.json.partial"),
            m.to_string().as_bytes(),
        );
        st.put(&format!("{dir}/2-data/x.sql.gz"), b"half");
    }
}

#[test]
fn s3_prune_keeps_what_the_policy_says() {
    let _nodes = shared();
    let st = store();
    let p = "prune";
    for d in 1..=9 {
        made_up(&st, p, &format!("202611{d:02}-020000"), true);
    }
    made_up(&st, p, "20261109-140000", true);
    made_up(&st, p, "20261108-030000", false);
    let sb = st.sandbox(false);
    let to = st.url(p);
    let l = sb.run(&["backup", "list", &to, "--json"]);
    l.assert_code(0);
    let listed: Vec<(String, bool)> = l
        .json()
        .as_array()
        .expect("array")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().expect("name").to_owned(),
                s["complete"].as_bool().expect("bool"),
            )
        })
        .collect();
    assert_eq!(listed.len(), 11, "{listed:?}");
    assert!(
        listed.contains(&("nightly-20261108-030000.partial".into(), false)),
        "{listed:?}"
    );
    let dry = sb.run(&[
        "backup",
        "prune",
        &to,
        "--keep-daily",
        "3",
        "--dry-run",
        "--json",
    ]);
    dry.assert_code(0);
    let before = st.keys(p);
    assert_eq!(before.len(), 12, "a dry run removes nothing: {before:?}");
    let o = sb.run(&["backup", "prune", &to, "--keep-daily", "3", "--json"]);
    o.assert_code(0);
    let j = o.json();
    let kept: Vec<&str> = j["sets"]
        .as_array()
        .expect("sets")
        .iter()
        .filter(|d| d["keep"] == true)
        .map(|d| d["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        kept,
        [
            "nightly-20261107-020000",
            "nightly-20261108-020000",
            "nightly-20261109-140000"
        ],
        "{j}"
    );
    let mut dirs: Vec<String> = st
        .keys(p)
        .iter()
        .map(|k| k.split('/').next().expect("dir").to_owned())
        .collect();
    dirs.dedup();
    assert_eq!(
        dirs,
        [
            "nightly-20261107-020000",
            "nightly-20261108-020000",
            "nightly-20261109-140000"
        ],
        "on the store, seen by rclone"
    );
}

/// Runs `backup ship` in the background.
fn ship_in_background(
    st: &Store,
    set: &Path,
    to: &str,
    settings: &str,
) -> (Sandbox, std::process::Child) {
    let sb = st.sandbox(false);
    sb.write("spyglass-admin.toml", settings, 0o644);
    let child = sb
        .command(&[
            "backup",
            "ship",
            set.to_str().expect("utf8"),
            "--to",
            to,
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    (sb, child)
}

#[test]
fn s3_one_node_down_completes_two_down_fails_cleanly_and_resumes() {
    let _nodes = exclusive();
    let st = store();
    let schema = "s3_nodes";
    make_lab(schema, 24);
    let (_dir, set) = backup_of(schema);
    let name = set_name(&set);
    let files = local_files(&set);
    // One node killed mid-upload: quorum (2 of 3) carries on.
    let to = st.url("one-down");
    let (sb, child) = ship_in_background(&st, &set, &to, "[s3]\npart_size_mb = 5\nparallel = 2\n");
    std::thread::sleep(Duration::from_millis(700));
    st.kill_node(2);
    let out = support::Outcome::from(child.wait_with_output().expect("wait"));
    st.start_node(2);
    out.assert_code(0);
    st.wait_healthy();
    // The node that was down catches up by anti-entropy, and a listing just
    // after its restart may merge its stale entries: wait up to 20 s. Garage
    // 2.5.0 can still list the staged manifest deleted while a node was dying
    // (seen in 2 of about 6 runs, longer than 20 s); a staged manifest beside
    // the committed one is ignored by every reader (the set is complete:
    // `list` says so and verify below checks every object), so only that
    // object may differ. Anything else missing or extra fails.
    let mut keys = st.keys_settled(&format!("one-down/{name}"), &files);
    if keys != files {
        eprintln!("one-down: the store still lists {keys:?}");
        keys.retain(|k| k != "manifest.json.partial");
    }
    assert_eq!(keys, files);
    let l = sb.run(&["backup", "list", &to, "--json"]);
    l.assert_code(0);
    let listed = l.json();
    let sets = listed.as_array().expect("array");
    assert_eq!(sets.len(), 1, "{listed}");
    assert_eq!(sets[0]["complete"], true, "{listed}");
    sb.run(&["backup", "verify", &format!("{to}/{name}")])
        .assert_code(0);
    // Two nodes down: no quorum; the ship fails cleanly and the set is not complete.
    let to = st.url("two-down");
    st.kill_node(1);
    st.kill_node(2);
    let sb = st.sandbox(false);
    small_parts(&sb);
    let o = ship(&sb, &set, &to, &[]);
    o.assert_code(2).assert_clean_error();
    assert!(set.is_dir(), "the local set is kept");
    st.start_node(1);
    st.start_node(2);
    st.wait_healthy();
    assert!(
        !st.keys(&format!("two-down/{name}"))
            .contains(&"manifest.json".to_owned()),
        "no manifest: the set is not complete on the store"
    );
    let l = sb.run(&["backup", "list", &to, "--json"]);
    l.assert_code(0);
    for s in l.json().as_array().expect("array") {
        assert_eq!(s["complete"], false, "{s}");
    }
    // The nodes are back: the next run completes it.
    let o = ship(&sb, &set, &to, &[]);
    o.assert_code(0);
    assert_eq!(st.keys(&format!("two-down/{name}")), files);
    sb.run(&["backup", "verify", &format!("{to}/{name}")])
        .assert_code(0);
    // No unfinished multipart upload is left behind by the resumed run.
    // (Under one-down/ Garage 2.5.0 can still list an upload created while
    // the third node was being killed; not checked there.)
    let mp = st.rclone(&["backend", "list-multipart-uploads", &st.remote("")]);
    if mp.status.success() {
        let v: Value = serde_json::from_slice(&mp.stdout).unwrap_or(Value::Null);
        let left: Vec<&Value> = v
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .flat_map(|u| u.as_array().into_iter().flatten())
            .filter(|u| {
                u["Key"]
                    .as_str()
                    .is_some_and(|k| k.starts_with("two-down/"))
            })
            .collect();
        assert!(left.is_empty(), "unfinished uploads: {left:?}");
    }
}

#[test]
fn s3_nightly_ships_to_the_store() {
    let _nodes = shared();
    let st = store();
    let schema = "s3_nightly";
    make_lab(schema, 0);
    let sb = st.sandbox(false);
    let dest = sb.cwd().join("backups");
    // The key in the settings file (0600), not the environment.
    let mut sb = Sandbox::as_root();
    sb.env("AWS_CA_BUNDLE", "/nonexistent/ca.pem");
    sb.write(
        "spyglass-admin.toml",
        &format!(
            "[backup]\ndestination = \"{}\"\nkeep_last = 2\nship_to = \"{}\"\n\n[nightly]\nthreads = 2\nschemas = [\"{schema}\"]\ncleanup = \"off\"\n\n\
             [s3]\nendpoint = \"{}\"\nregion = \"{}\"\naddressing = \"path\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
            dest.display(),
            st.url("nightly"),
            st.endpoints[2],
            st.region,
            st.key_id,
            st.secret
        ),
        0o600,
    );
    let o = sb.run(&["nightly", "--json"]);
    assert!(o.code == 0 || o.code == 1, "{}\n{}", o.stdout, o.stderr);
    assert!(!o.stdout.contains(&st.secret) && !o.stderr.contains(&st.secret));
    let l = sb.run(&["backup", "list", &st.url("nightly"), "--json"]);
    l.assert_code(0);
    let sets = l.json();
    let sets = sets.as_array().expect("array");
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert_eq!(sets[0]["complete"], true);
    let name = sets[0]["name"].as_str().expect("name");
    sb.run(&["backup", "verify", &format!("{}/{name}", st.url("nightly"))])
        .assert_code(0);
}

#[test]
fn s3_https_through_a_tls_proxy_needs_its_ca() {
    let _nodes = shared();
    let st = store();
    let schema = "s3_https";
    make_lab(schema, 0);
    let (_dir, set) = backup_of(schema);
    let name = set_name(&set);
    let to = st.url("https");
    // The private CA from the environment: ship, list and verify over https.
    let mut sb = st.sandbox(false);
    sb.env("AWS_ENDPOINT_URL", &st.tls_endpoint)
        .env("AWS_CA_BUNDLE", st.tls_ca.to_str().expect("utf8"));
    let o = ship(&sb, &set, &to, &[]);
    o.assert_code(0);
    assert_eq!(o.json()["already_there"], false);
    assert_eq!(st.keys(&format!("https/{name}")), local_files(&set));
    sb.run(&["backup", "verify", &format!("{to}/{name}")])
        .assert_code(0);
    // The CA from [s3] ca_file, the endpoint from [s3] endpoint.
    let mut sb = Sandbox::as_root();
    sb.env("AWS_REGION", &st.region)
        .env("AWS_ACCESS_KEY_ID", &st.key_id)
        .env("AWS_SECRET_ACCESS_KEY", &st.secret);
    sb.write(
        "spyglass-admin.toml",
        &format!(
            "[s3]\nendpoint = \"{}\"\nca_file = \"{}\"\n",
            st.tls_endpoint,
            st.tls_ca.display()
        ),
        0o644,
    );
    let l = sb.run(&["backup", "list", &to, "--json"]);
    l.assert_code(0);
    assert_eq!(l.json()[0]["name"], name.as_str());
    assert_eq!(l.json()[0]["complete"], true);
    // No CA configured: the public roots do not know the private CA; a
    // clear certificate error at once (not retried as if the store were down).
    let mut sb = st.sandbox(false);
    sb.env("AWS_ENDPOINT_URL", &st.tls_endpoint);
    let t = Instant::now();
    let o = sb.run(&["backup", "list", &to]);
    o.assert_code(2).assert_clean_error();
    assert!(
        o.stderr.contains("TLS") && o.stderr.to_lowercase().contains("certificate"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("ca_file"), "hint: {}", o.stderr);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "a certificate error is not retried"
    );
    // A CA that did not sign the proxy's certificate: the same.
    sb.env("AWS_CA_BUNDLE", st.tls_other_ca.to_str().expect("utf8"));
    let o = ship(&sb, &set, &st.url("https-other-ca"), &[]);
    o.assert_code(2).assert_clean_error();
    assert!(
        o.stderr.to_lowercase().contains("certificate"),
        "{}",
        o.stderr
    );
    assert!(st.keys("https-other-ca").is_empty(), "nothing was written");
}

#[test]
fn s3_leftover_uploads_of_an_interrupted_run_are_aborted_by_the_next_run_even_when_it_fails() {
    let _nodes = shared();
    let st = store();
    let p = "leftovers";
    let to = st.url(p);
    make_lab("s3_leftovers", 24);
    let (_dir, set) = backup_of("s3_leftovers");
    // A ship stopped hard mid-upload (as a crash, or the machine losing
    // the store, stops it): multipart uploads are left on the store.
    let (_sb, mut child) =
        ship_in_background(&st, &set, &to, "[s3]\npart_size_mb = 5\nparallel = 2\n");
    let deadline = Instant::now() + Duration::from_secs(60);
    let left = loop {
        let u = st.uploads(p);
        if !u.is_empty() {
            break u;
        }
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the ship ended before any multipart upload was seen"
        );
        assert!(Instant::now() < deadline, "no multipart upload started");
        std::thread::sleep(Duration::from_millis(100));
    };
    child.kill().expect("kill");
    let _ = child.wait();
    assert!(
        !st.keys(p).iter().any(|k| k.ends_with("/manifest.json")),
        "the interrupted set is not complete"
    );
    // The next run ships another set, and fails: its local copy is damaged.
    make_lab("s3_leftovers_2", 0);
    // Set names carry the snapshot time to the second, and the kill above
    // can come within the first set's second: the second set must be named
    // apart from it, as the next night's is.
    std::thread::sleep(Duration::from_millis(1100));
    let (_dir2, other) = backup_of("s3_leftovers_2");
    assert_ne!(set_name(&other), set_name(&set));
    let data = local_files(&other)
        .into_iter()
        .find(|f| f.starts_with("2-data/") && f.contains("spikes"))
        .expect("a data file");
    let f = other.join(&data);
    let mut bytes = std::fs::read(&f).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&f, &bytes).expect("write");
    let sb = st.sandbox(false);
    let o = ship(&sb, &other, &to, &[]);
    o.assert_code(2).assert_clean_error();
    assert!(o.stderr.contains(&data), "{}", o.stderr);
    // The interrupted run's uploads are gone all the same.
    assert_eq!(st.uploads(p), Vec::<String>::new(), "left before: {left:?}");
    // And the interrupted set resumes to a complete, verified copy.
    small_parts(&sb);
    ship(&sb, &set, &to, &[]).assert_code(0);
    sb.run(&["backup", "verify", &format!("{to}/{}", set_name(&set))])
        .assert_code(0);
    assert!(st.uploads(p).is_empty());
}

#[test]
fn s3_nightly_ships_to_an_ssh_host_and_a_bucket_each_pruned_by_its_own_policy() {
    let _nodes = shared();
    let st = store();
    let schema = "s3_two_targets";
    make_lab(schema, 0);
    let sshd = crate::lifecycle::Sshd::start();
    let ssh_to = sshd.target("two-targets");
    let s3_to = st.url("two-targets");
    let mut sb = Sandbox::as_root();
    let dest = sb.cwd().join("backups");
    // [backup] ship_to (the ssh host) keeps 2 by [backup] keep_last; the
    // bucket, a [[nightly.targets]] entry, keeps only the newest.
    sb.env("AWS_ENDPOINT_URL", &st.endpoints[1])
        .env("AWS_REGION", &st.region)
        .env("AWS_ACCESS_KEY_ID", &st.key_id)
        .env("AWS_SECRET_ACCESS_KEY", &st.secret);
    sb.write(
        "spyglass-admin.toml",
        &format!(
            "[backup]\ndestination = \"{}\"\nkeep_last = 2\nship_to = \"{ssh_to}\"\nidentity = \"{}\"\nssh_config = \"{}\"\n\n\
             [nightly]\nthreads = 2\nschemas = [\"{schema}\"]\ncleanup = \"off\"\n\n\
             [[nightly.targets]]\nto = \"{s3_to}\"\nkeep_last = 1\n",
            dest.display(),
            sshd.path("client_key").display(),
            sshd.path("ssh_config").display(),
        ),
        0o644,
    );
    let mut names = Vec::new();
    for run in 0..3 {
        if run > 0 {
            // Set names have one-second resolution.
            std::thread::sleep(Duration::from_millis(1100));
        }
        let o = sb.run(&["nightly", "--json"]);
        assert!(o.code == 0 || o.code == 1, "{}\n{}", o.stdout, o.stderr);
        let j = o.json();
        let steps = j["steps"].as_array().expect("steps");
        let of =
            |name: &str| -> Vec<&Value> { steps.iter().filter(|s| s["name"] == name).collect() };
        let ships = of("ship");
        assert_eq!(ships.len(), 2, "one ship per target: {j}");
        for s in &ships {
            assert_eq!(s["status"], "ok", "{s}");
        }
        let host_dir = sshd.remote().join("two-targets").display().to_string();
        assert!(
            ships[0]["message"]
                .as_str()
                .expect("msg")
                .contains(&host_dir),
            "{j}"
        );
        assert!(
            ships[1]["message"].as_str().expect("msg").contains("s3://"),
            "{j}"
        );
        let prunes = of("prune-remote");
        assert_eq!(prunes.len(), 2, "one prune per target: {j}");
        for s in &prunes {
            assert!(s["status"] == "ok", "{s}");
        }
        names.push(
            Path::new(j["set"].as_str().expect("set"))
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned(),
        );
    }
    // The ssh host: the 2 newest (seen on its disk).
    let mut on_host: Vec<String> = std::fs::read_dir(sshd.remote().join("two-targets"))
        .expect("remote dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    on_host.sort();
    assert_eq!(on_host, names[1..].to_vec(), "the ssh host keeps 2");
    // The bucket: the newest only (seen by rclone), and it verifies.
    let mut dirs: Vec<String> = st
        .keys("two-targets")
        .iter()
        .map(|k| k.split('/').next().expect("dir").to_owned())
        .collect();
    dirs.dedup();
    assert_eq!(dirs, names[2..].to_vec(), "the bucket keeps 1");
    sb.run(&["backup", "verify", &format!("{s3_to}/{}", names[2])])
        .assert_code(0);
}
