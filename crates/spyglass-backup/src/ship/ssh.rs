//! `ssh://[user@]host[:port]/path`: the [`Remote`] on a host reached with
//! the system's `ssh`, files sent with rsync (`--partial`, so an interrupted
//! transfer resumes from the bytes already there) or, when either end lacks
//! it, sftp in batch mode (resumes per file: files already there with the
//! right sha256 are not sent again).
//!
//! ssh always runs with `BatchMode=yes`, so nothing ever prompts in cron; the
//! user's own ssh setup (`~/.ssh/config`, agent, `known_hosts`) is used, plus
//! an identity file or ssh_config file when given. Only the identity file's
//! *path* is passed to ssh; no key or password passes through this crate. An
//! unknown host key is an error, never accepted silently.
//!
//! A staged copy is the directory `<base>/<name>.partial`; committing it is a
//! `mv` that refuses to replace an existing set.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use super::{
    refuse_unless_set_name, Method, Remote, ShipError, ShipOptions, SshOptions, Target, Transport,
};
use crate::compress::hex;

/// Characters a remote path may not hold: they would need quoting in a
/// remote shell, an rsync `-e` string or an sftp batch line.
pub(super) const UNSAFE: &[char] = &['\'', '"', '\\', '\n', '\r', '*', '?', '[', ']', '`', '$'];

/// Parses the part after `ssh://` of `s` into a [`Target::Ssh`].
pub(super) fn parse(s: &str, rest: &str) -> Result<Target, ShipError> {
    let bad = |detail: &str| ShipError::BadTarget {
        target: s.to_owned(),
        detail: detail.to_owned(),
    };
    let (authority, path) = rest
        .split_once('/')
        .ok_or_else(|| bad("needs a path: ssh://user@host[:port]/path"))?;
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_owned()), h),
        None => (None, authority),
    };
    let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
        let (h, tail) = h
            .split_once(']')
            .ok_or_else(|| bad("unclosed [ in the host"))?;
        (h.to_owned(), tail.strip_prefix(':'))
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (hostport.to_owned(), None),
        }
    };
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| bad("the port is not a number from 1 to 65535"))
        })
        .transpose()?;
    if host.is_empty()
        || host.starts_with('-')
        || host.contains(|c: char| c.is_whitespace() || c == '/')
    {
        return Err(bad("the host name is missing or not valid"));
    }
    if user.as_deref().is_some_and(|u| {
        u.is_empty()
            || u.starts_with('-')
            || u.contains(|c: char| c.is_whitespace() || UNSAFE.contains(&c))
    }) {
        return Err(bad("the user name is not valid"));
    }
    let path = match path.strip_prefix("~/") {
        Some(rel) => rel.to_owned(),
        None if path == "~" || path.is_empty() => ".".to_owned(),
        None => format!("/{path}"),
    };
    if path.contains(UNSAFE) {
        return Err(bad("the path holds a quote, backslash, glob or $ character; choose a plainer directory name"));
    }
    let path = match path.trim_end_matches('/') {
        "" => "/".to_owned(),
        p => p.to_owned(),
    };
    Ok(Target::Ssh {
        user,
        host,
        port,
        path,
    })
}

/// A directory on a host, over ssh.
#[derive(Debug)]
pub struct Ssh<'a> {
    user: Option<&'a str>,
    host: &'a str,
    port: Option<u16>,
    base: &'a str,
    ssh: &'a SshOptions,
    transport: Transport,
    read_back: bool,
    bwlimit_kib: u32,
    show_transfer: bool,
    /// What [`Remote::probe`] found: rsync and sha256sum on the host.
    rsync: bool,
    sha256sum: bool,
}

impl<'a> Ssh<'a> {
    /// The host `user@host:port` with its directory `base`; `opts` says how
    /// files travel and are checked.
    pub(super) fn new(
        user: Option<&'a str>,
        host: &'a str,
        port: Option<u16>,
        base: &'a str,
        opts: &'a ShipOptions,
    ) -> Self {
        Ssh {
            user,
            host,
            port,
            base,
            ssh: &opts.ssh,
            transport: opts.transport,
            read_back: opts.read_back,
            bwlimit_kib: opts.bwlimit_kib,
            show_transfer: opts.show_transfer,
            rsync: false,
            sha256sum: false,
        }
    }

    /// Like [`Ssh::new`] for listing and removing only (prune).
    pub(super) fn for_listing(
        user: Option<&'a str>,
        host: &'a str,
        port: Option<u16>,
        base: &'a str,
        ssh: &'a SshOptions,
    ) -> Self {
        Ssh {
            user,
            host,
            port,
            base,
            ssh,
            transport: Transport::Auto,
            read_back: false,
            bwlimit_kib: 0,
            show_transfer: false,
            rsync: false,
            sha256sum: false,
        }
    }

    /// Path on the host of `rel` (relative to the base directory).
    fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.base)
    }

    fn user_for_messages(&self) -> &str {
        self.user.unwrap_or("(ssh default user)")
    }

    /// `ssh` options shared by ssh, rsync's `-e` and sftp (port flag aside).
    fn ssh_options(opts: &SshOptions) -> Vec<String> {
        let mut v = vec![
            "-o".into(),
            "BatchMode=yes".into(),
            // Never accept a key by itself, whatever ssh_config says.
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            format!("ConnectTimeout={}", opts.connect_timeout.max(1)),
        ];
        v.extend([
            "-o".into(),
            "ServerAliveInterval=15".into(),
            "-o".into(),
            "ServerAliveCountMax=4".into(),
        ]);
        if let Some(c) = &opts.config {
            v.extend(["-F".into(), c.display().to_string()]);
        }
        if let Some(i) = &opts.identity {
            v.extend([
                "-i".into(),
                i.display().to_string(),
                "-o".into(),
                "IdentitiesOnly=yes".into(),
            ]);
        }
        v
    }

    fn destination(user: Option<&str>, host: &str) -> String {
        match user {
            Some(u) => format!("{u}@{host}"),
            None => host.to_owned(),
        }
    }

    /// `user@host`, with an IPv6 address in brackets (rsync and sftp).
    fn bracketed_destination(&self) -> String {
        let host_part = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.to_string()
        };
        Self::destination(self.user, &host_part)
    }

    fn ssh_command(&self, script: &str) -> Command {
        let mut c = Command::new("ssh");
        c.args(Self::ssh_options(self.ssh));
        if let Some(p) = self.port {
            c.args(["-p", &p.to_string()]);
        }
        c.arg("--")
            .arg(Self::destination(self.user, self.host))
            .arg(script);
        c
    }

    /// Runs `script` with `sh -c` on the host; exit 255 is ssh's own failure.
    fn remote(&self, what: &str, script: &str) -> Result<std::process::Output, ShipError> {
        let out = self
            .ssh_command(script)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| ShipError::Remote {
                host: self.host(),
                what: what.into(),
                detail: format!("cannot run ssh: {e}"),
            })?;
        if out.status.code() == Some(255) {
            return Err(self.explain(classify(
                &self.host(),
                self.user_for_messages(),
                what,
                &String::from_utf8_lossy(&out.stderr),
            )));
        }
        Ok(out)
    }

    /// Adds what only a second look can tell to an error: for an unknown
    /// or changed host key, the key the host presents and the exact command
    /// that records it; for a full disk, the free space there.
    fn explain(&self, e: ShipError) -> ShipError {
        match e {
            ShipError::HostKey {
                host,
                detail,
                fix: None,
            } => ShipError::HostKey {
                fix: host_key_fix(self.ssh, self.host, self.port),
                host,
                detail,
            },
            ShipError::DiskFull {
                host,
                file,
                free_bytes: None,
            } => {
                let free_bytes = self.free_bytes(&file);
                ShipError::DiskFull {
                    host,
                    file,
                    free_bytes,
                }
            }
            e => e,
        }
    }

    /// Bytes free on the file system holding `path` (or its nearest
    /// existing parent) on the host, from `df -Pk`; `None` when it cannot say.
    fn free_bytes(&self, path: &str) -> Option<u64> {
        let out = self
            .remote(
                "measuring free space",
                &format!(
                    "d={}; while [ ! -d \"$d\" ] && [ \"$d\" != / ] && [ \"$d\" != . ]; do d=$(dirname -- \"$d\"); done; df -Pk -- \"$d\"",
                    sh_quote(path)
                ),
            )
            .ok()?;
        parse_df(&String::from_utf8_lossy(&out.stdout))
    }

    /// A transfer failed with nothing recognisable in the tool's words
    /// (sftp says just "Failure", rsync sometimes nothing): when the host
    /// has less space left than the file being written (or none), it is a
    /// full disk, named as such.
    fn disk_full_or(
        &self,
        e: ShipError,
        file: Option<String>,
        needed: u64,
        dir: &str,
    ) -> ShipError {
        if !matches!(e, ShipError::Remote { .. }) {
            return e;
        }
        let at = file.clone().unwrap_or_else(|| self.path(dir));
        match self.free_bytes(&at) {
            Some(free) if free < needed.max(1) || free == 0 => ShipError::DiskFull {
                host: self.host(),
                file: at,
                free_bytes: Some(free),
            },
            _ => e,
        }
    }

    fn remote_ok(&self, what: &str, script: &str) -> Result<Vec<u8>, ShipError> {
        let out = self.remote(what, script)?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(classify(&self.host(), "", what, &err));
        }
        Ok(out.stdout)
    }

    /// sha256sum on the host, one per core there (each prints its few
    /// lines in one write, so lines never interleave).
    fn hashes_there(&self, dir: &str) -> Result<BTreeMap<String, String>, ShipError> {
        let d = sh_quote(&self.path(dir));
        let out = self.remote_ok(
            &format!("checking {}", self.path(dir)),
            &format!(
                "cd -- {d} && P=$(nproc 2>/dev/null || echo 2) && find . -type f -print0 | xargs -0 -n 4 -P \"$P\" sha256sum --"
            ),
        )?;
        let mut map = BTreeMap::new();
        for line in String::from_utf8_lossy(&out).lines() {
            if let Some((sum, path)) = line.split_once("  ") {
                map.insert(path.trim_start_matches("./").to_owned(), sum.to_owned());
            }
        }
        Ok(map)
    }

    /// Read back: the host streams the files as a tar, we hash them here.
    fn hashes_read_back(&self, dir: &str) -> Result<BTreeMap<String, String>, ShipError> {
        let d = sh_quote(&self.path(dir));
        let what = format!("reading back {}", self.path(dir));
        let mut child = self
            .ssh_command(&format!("cd -- {d} && tar cf - ."))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ShipError::Remote {
                host: self.host(),
                what: what.clone(),
                detail: format!("cannot run ssh: {e}"),
            })?;
        let mut map = BTreeMap::new();
        let read = (|| -> std::io::Result<()> {
            let Some(stdout) = child.stdout.take() else {
                return Ok(());
            };
            let mut a = tar::Archive::new(std::io::BufReader::with_capacity(1 << 20, stdout));
            for e in a.entries()? {
                let mut e = e?;
                if !e.header().entry_type().is_file() {
                    continue;
                }
                let path = e
                    .path()?
                    .to_string_lossy()
                    .trim_start_matches("./")
                    .to_owned();
                let mut h = Sha256::new();
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = e.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                map.insert(path, hex(&h.finalize()));
            }
            Ok(())
        })();
        let out = child.wait_with_output().map_err(|e| ShipError::Remote {
            host: self.host(),
            what: what.clone(),
            detail: e.to_string(),
        })?;
        if !out.status.success() || read.is_err() {
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            let detail = if err.trim().is_empty() {
                read.err().map(|e| e.to_string()).unwrap_or_default()
            } else {
                err
            };
            return Err(classify(
                &self.host(),
                self.user.unwrap_or(""),
                &what,
                &detail,
            ));
        }
        Ok(map)
    }

    /// `mv` of one directory onto a name that must not exist yet.
    fn rename(&self, from: &str, to: &str) -> Result<(), ShipError> {
        let (f, t) = (sh_quote(&self.path(from)), sh_quote(&self.path(to)));
        self.remote_ok(
            &format!("renaming {} into place", self.path(to)),
            &format!("if [ -e {t} ]; then echo 'already exists' >&2; exit 1; fi; mv -- {f} {t}"),
        )?;
        Ok(())
    }

    /// rsync's `-e`: ssh with our options.
    fn rsync_shell(&self) -> String {
        let mut e = vec!["ssh".to_owned()];
        e.extend(Self::ssh_options(self.ssh).into_iter().map(|a| {
            if a.contains(' ') {
                format!("'{a}'")
            } else {
                a
            }
        }));
        if let Some(p) = self.port {
            e.extend(["-p".into(), p.to_string()]);
        }
        e.join(" ")
    }

    fn send_rsync(&self, set: &Path, dir: &str) -> Result<(), ShipError> {
        let mut c = Command::new("rsync");
        // -s: the remote path is not split by a shell; --partial keeps a
        // half-sent file so the next run resumes from it.
        c.args(["-rtps", "--partial", "--delete", "--chmod=go-rwx", "-e"])
            .arg(self.rsync_shell());
        if self.bwlimit_kib > 0 {
            c.arg(format!("--bwlimit={}", self.bwlimit_kib));
        }
        if self.show_transfer {
            c.arg("--info=progress2");
        }
        c.arg("--").arg(format!("{}/", set.display())).arg(format!(
            "{}:{}/",
            self.bracketed_destination(),
            self.path(dir)
        ));
        c.stdin(Stdio::null())
            .stdout(transfer_stdout(self.show_transfer));
        let out = c.output().map_err(|e| ShipError::Remote {
            host: self.host(),
            what: "rsync".into(),
            detail: format!("cannot run rsync: {e}"),
        })?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let e = self.explain(classify(
                &self.host(),
                self.user_for_messages(),
                "rsync",
                &err,
            ));
            // The file rsync names, else the largest one (the one most
            // likely not to fit).
            let file = quoted_path(&err);
            let needed = largest_file(set);
            return Err(self.disk_full_or(e, file, needed, dir));
        }
        Ok(())
    }

    fn send_sftp(&self, set: &Path, dir: &str, files: &[String]) -> Result<(), ShipError> {
        if set.display().to_string().contains(UNSAFE) {
            return Err(ShipError::BadTarget {
                target: set.display().to_string(),
                detail: "sftp cannot send from a path with quotes, globs or $; rename the directory or use rsync".into(),
            });
        }
        let mut batch = String::new();
        let mut made = std::collections::BTreeSet::new();
        made.insert(String::new());
        batch.push_str(&format!("-mkdir \"{}\"\n", self.path(dir)));
        for rel in files {
            let mut parent = String::new();
            for comp in rel
                .split('/')
                .collect::<Vec<_>>()
                .split_last()
                .map(|(_, d)| d.to_vec())
                .unwrap_or_default()
            {
                parent = if parent.is_empty() {
                    comp.to_owned()
                } else {
                    format!("{parent}/{comp}")
                };
                if made.insert(parent.clone()) {
                    batch.push_str(&format!("-mkdir \"{}/{parent}\"\n", self.path(dir)));
                }
            }
            batch.push_str(&format!(
                "put -p \"{}\" \"{}/{rel}\"\n",
                set.join(rel).display(),
                self.path(dir)
            ));
        }
        let Some(err) = self.sftp_run("sftp", &batch)? else {
            return Ok(());
        };
        let e = self.explain(classify(
            &self.host(),
            self.user_for_messages(),
            "sftp",
            &err,
        ));
        // sftp names the remote file it could not write; its size here
        // is what did not fit.
        let file = quoted_path(&err);
        let needed = file
            .as_deref()
            .and_then(|f| f.strip_prefix(&format!("{}/", self.path(dir))))
            .and_then(|rel| std::fs::metadata(set.join(rel)).ok())
            .map_or_else(|| largest_file(set), |m| m.len());
        Err(self.disk_full_or(e, file, needed, dir))
    }

    /// Runs sftp with `batch` on its stdin: `None` when it succeeded, else
    /// its error output.
    fn sftp_run(&self, what: &str, batch: &str) -> Result<Option<String>, ShipError> {
        let mut c = Command::new("sftp");
        c.args(["-b", "-"]).args(Self::ssh_options(self.ssh));
        if let Some(p) = self.port {
            c.args(["-P", &p.to_string()]);
        }
        if self.bwlimit_kib > 0 {
            c.args(["-l", &(u64::from(self.bwlimit_kib) * 8).to_string()]);
        }
        c.arg("--").arg(self.bracketed_destination());
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ShipError::Remote {
                host: self.host(),
                what: what.into(),
                detail: format!("cannot run sftp: {e}"),
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            // A write error means sftp exited early; its status and stderr below say why.
            let _ = stdin.write_all(batch.as_bytes());
        }
        let out = child.wait_with_output().map_err(|e| ShipError::Remote {
            host: self.host(),
            what: what.into(),
            detail: e.to_string(),
        })?;
        Ok((!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned()))
    }

    fn fetch_rsync(&self, name: &str, files: &[String], dest: &Path) -> Result<(), ShipError> {
        let what = format!("fetching {}", self.path(name));
        let mut c = Command::new("rsync");
        c.args([
            "-rtps",
            "--partial",
            "--chmod=go-rwx",
            "--from0",
            "--files-from=-",
            "-e",
        ])
        .arg(self.rsync_shell());
        if self.bwlimit_kib > 0 {
            c.arg(format!("--bwlimit={}", self.bwlimit_kib));
        }
        c.arg("--")
            .arg(format!(
                "{}:{}/",
                self.bracketed_destination(),
                self.path(name)
            ))
            .arg(format!("{}/", dest.display()));
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ShipError::Remote {
                host: self.host(),
                what: what.clone(),
                detail: format!("cannot run rsync: {e}"),
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            let mut list = Vec::new();
            for f in files {
                list.extend_from_slice(f.as_bytes());
                list.push(0);
            }
            let _ = stdin.write_all(&list);
        }
        let out = child.wait_with_output().map_err(|e| ShipError::Remote {
            host: self.host(),
            what: what.clone(),
            detail: e.to_string(),
        })?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("No space left on device") {
                // The full disk is this machine's.
                return Err(ShipError::DiskFull {
                    host: "local".into(),
                    file: quoted_path(&err).unwrap_or_else(|| dest.display().to_string()),
                    free_bytes: crate::destination::probe(dest).free_bytes,
                });
            }
            return Err(self.explain(classify(
                &self.host(),
                self.user_for_messages(),
                &what,
                &err,
            )));
        }
        Ok(())
    }

    fn fetch_sftp(&self, name: &str, files: &[String], dest: &Path) -> Result<(), ShipError> {
        if dest.display().to_string().contains(UNSAFE) {
            return Err(ShipError::BadTarget {
                target: dest.display().to_string(),
                detail: "sftp cannot write to a path with quotes, globs or $; set TMPDIR to a plainer directory or use rsync".into(),
            });
        }
        let mut batch = String::new();
        for rel in files {
            if rel.contains(UNSAFE) {
                return Err(ShipError::Remote {
                    host: self.host(),
                    what: format!("fetching {}", self.path(name)),
                    detail: format!("{rel}: a file name sftp cannot quote"),
                });
            }
            let local = dest.join(rel);
            if let Some(p) = local.parent() {
                std::fs::create_dir_all(p).map_err(super::io_err("creating", p))?;
            }
            batch.push_str(&format!(
                "get -p \"{}/{rel}\" \"{}\"\n",
                self.path(name),
                local.display()
            ));
        }
        let what = format!("fetching {}", self.path(name));
        match self.sftp_run(&what, &batch)? {
            None => Ok(()),
            Some(err) => Err(self.explain(classify(
                &self.host(),
                self.user_for_messages(),
                &what,
                &err,
            ))),
        }
    }

    fn uses_rsync(&self) -> bool {
        match self.transport {
            Transport::Sftp => false,
            Transport::Rsync => true,
            Transport::Auto => self.rsync && which("rsync"),
        }
    }
}

impl Remote for Ssh<'_> {
    fn host(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.to_string(),
        }
    }

    fn location(&self, name: &str) -> String {
        self.path(name)
    }

    fn probe(&mut self, create: bool) -> Result<Vec<String>, ShipError> {
        let b = sh_quote(self.base);
        let prep = if create {
            format!("mkdir -p -- {b} && ")
        } else {
            String::new()
        };
        let script = format!(
            "{prep}cd -- {b} && {{ command -v rsync >/dev/null 2>&1 && echo 'HAVE rsync'; command -v sha256sum >/dev/null 2>&1 && echo 'HAVE sha256sum'; for d in *; do [ -d \"$d\" ] && printf 'DIR %s\\n' \"$d\"; done; true; }}"
        );
        let out = self.remote_ok(&format!("looking at {}", self.base), &script)?;
        let text = String::from_utf8_lossy(&out);
        let mut dirs = Vec::new();
        for line in text.lines() {
            match line {
                "HAVE rsync" => self.rsync = true,
                "HAVE sha256sum" => self.sha256sum = true,
                l => {
                    if let Some(d) = l.strip_prefix("DIR ") {
                        dirs.push(d.to_owned());
                    }
                }
            }
        }
        Ok(dirs)
    }

    fn method(&self) -> Result<Method, ShipError> {
        if self.transport == Transport::Rsync && !self.rsync {
            return Err(ShipError::Remote {
                host: self.host(),
                what: "rsync".into(),
                detail: "rsync is not installed there".into(),
            });
        }
        let rsync = self.uses_rsync();
        let read_back = self.read_back || !self.sha256sum;
        Ok(Method {
            transport: if rsync { "rsync" } else { "sftp" },
            verified_by: if read_back { "read-back" } else { "sha256sum" },
            sends_whole_set: rsync,
        })
    }

    fn hashes(&self, dir: &str) -> Result<BTreeMap<String, String>, ShipError> {
        if self.read_back || !self.sha256sum {
            self.hashes_read_back(dir)
        } else {
            self.hashes_there(dir)
        }
    }

    fn send(&self, set: &Path, staging: &str, files: &[String]) -> Result<(), ShipError> {
        if self.uses_rsync() {
            self.send_rsync(set, staging)
        } else {
            self.send_sftp(set, staging, files)
        }
    }

    fn remove_files(&self, staging: &str, files: &[String]) -> Result<(), ShipError> {
        let d = sh_quote(&self.path(staging));
        let list: Vec<String> = files.iter().map(|f| sh_quote(f)).collect();
        self.remote_ok(
            "removing damaged files",
            &format!("cd -- {d} && rm -f -- {}", list.join(" ")),
        )?;
        Ok(())
    }

    fn commit(&self, staging: &str, name: &str) -> Result<(), ShipError> {
        self.rename(staging, name)
    }

    fn reopen(&self, name: &str, staging: &str) -> Result<(), ShipError> {
        self.rename(name, staging)
    }

    fn remove_set(&self, name: &str) -> Result<(), ShipError> {
        refuse_unless_set_name(&self.host(), name)?;
        self.remote_ok(
            &format!("removing {}", self.path(name)),
            &format!("rm -rf -- {}", sh_quote(&self.path(name))),
        )?;
        Ok(())
    }

    fn fetch(&self, name: &str, files: &[String], dest: &Path) -> Result<(), ShipError> {
        std::fs::create_dir_all(dest).map_err(super::io_err("creating", dest))?;
        if files.is_empty() {
            return Ok(());
        }
        if self.uses_rsync() {
            self.fetch_rsync(name, files, dest)
        } else {
            self.fetch_sftp(name, files, dest)
        }
    }

    fn sizes(&self, name: &str) -> Result<BTreeMap<String, u64>, ShipError> {
        let d = sh_quote(&self.path(name));
        let out = self.remote_ok(
            &format!("listing {}", self.path(name)),
            &format!("cd -- {d} && find . -type f -printf '%s %P\\n'"),
        )?;
        Ok(String::from_utf8_lossy(&out)
            .lines()
            .filter_map(|l| {
                let (size, path) = l.split_once(' ')?;
                Some((path.to_owned(), size.parse().ok()?))
            })
            .collect())
    }

    fn health(&mut self) -> Result<super::Health, ShipError> {
        let b = sh_quote(self.base);
        let script = format!(
            "command -v rsync >/dev/null 2>&1 && echo 'HAVE rsync'; command -v sha256sum >/dev/null 2>&1 && echo 'HAVE sha256sum'; \
             d={b}; while [ ! -d \"$d\" ] && [ \"$d\" != / ] && [ \"$d\" != . ]; do d=$(dirname -- \"$d\"); done; \
             [ -d {b} ] && echo EXISTS; [ -w \"$d\" ] && echo WRITABLE; df -Pk -- \"$d\" 2>/dev/null; \
             if [ -d {b} ]; then cd -- {b} && for s in *; do [ -d \"$s\" ] && printf 'DIR %s\\n' \"$s\"; done; fi; true"
        );
        let out = self.remote_ok(&format!("looking at {}", self.base), &script)?;
        let text = String::from_utf8_lossy(&out);
        let mut h = super::Health {
            free_bytes: parse_df(&text),
            writable: Some(false),
            ..super::Health::default()
        };
        for line in text.lines() {
            match line {
                "HAVE rsync" => self.rsync = true,
                "HAVE sha256sum" => self.sha256sum = true,
                "EXISTS" => h.exists = true,
                "WRITABLE" => h.writable = Some(true),
                l => {
                    if let Some(d) = l.strip_prefix("DIR ") {
                        h.sets.push(d.to_owned());
                    }
                }
            }
        }
        if !self.rsync {
            h.missing.push("rsync is not installed there: files go by sftp, and an interrupted file is sent again from its start".into());
        } else if !which("rsync") {
            h.missing.push("rsync is not installed on this machine: files go by sftp, and an interrupted file is sent again from its start".into());
        }
        if !self.sha256sum {
            h.missing.push("sha256sum is not installed there: every shipped file is read back over the network to verify it".into());
        }
        Ok(h)
    }
}

/// The `Available` column (KiB) of `df -Pk`'s data line, in bytes.
fn parse_df(text: &str) -> Option<u64> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with("Filesystem"));
    lines.next()?;
    let kib: u64 = lines.next()?.split_whitespace().nth(3)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// The first `"..."`-quoted absolute path in a tool's error output.
fn quoted_path(stderr: &str) -> Option<String> {
    stderr
        .split('"')
        .skip(1)
        .step_by(2)
        .find(|p| p.starts_with('/'))
        .map(str::to_owned)
}

/// The size of the largest file under `dir`.
fn largest_file(dir: &Path) -> u64 {
    let mut files = Vec::new();
    if crate::set::walk(dir, dir, &mut files).is_err() {
        return 0;
    }
    files
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(0)
}

/// What ssh itself makes of the options for `host`: `ssh -G`, one
/// `key value` per line (keys in lowercase).
fn ssh_settings(opts: &SshOptions, host: &str, port: Option<u16>) -> BTreeMap<String, String> {
    let mut c = Command::new("ssh");
    if let Some(cfg) = &opts.config {
        c.arg("-F").arg(cfg);
    }
    if let Some(p) = port {
        c.args(["-p", &p.to_string()]);
    }
    c.args(["-G", "--", host]).stdin(Stdio::null());
    let Ok(out) = c.output() else {
        return BTreeMap::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// How the host's key is known: the known_hosts file ssh uses for it (the
/// first `UserKnownHostsFile` of the configuration), the name it is
/// recorded under, and whether a key for that name is there already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeyStatus {
    /// The file new keys go into.
    pub known_hosts: String,
    /// `host` or `[host]:port`, as known_hosts records it.
    pub name: String,
    /// The real host name and port ssh connects to (after ssh_config).
    pub hostname: String,
    /// The port ssh connects to.
    pub port: u16,
    /// A key for `name` is in one of the known_hosts files.
    pub recorded: bool,
    /// Whether ssh_config asks for hashed names (`HashKnownHosts`).
    pub hashed: bool,
}

/// Where the key of `host` is (or would be) recorded, as the ssh
/// configuration `opts` sees it.
pub fn host_key_status(opts: &SshOptions, host: &str, port: Option<u16>) -> HostKeyStatus {
    let g = ssh_settings(opts, host, port);
    let hostname = g
        .get("hostname")
        .cloned()
        .unwrap_or_else(|| host.to_owned());
    let port = g
        .get("port")
        .and_then(|p| p.parse().ok())
        .or(port)
        .unwrap_or(22);
    let alias = g.get("hostkeyalias").cloned();
    let name = match (&alias, port) {
        (Some(a), _) => a.clone(),
        (None, 22) => hostname.clone(),
        (None, p) => format!("[{hostname}]:{p}"),
    };
    let files: Vec<String> = ["userknownhostsfile", "globalknownhostsfile"]
        .iter()
        .filter_map(|k| g.get(*k))
        .flat_map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let known_hosts = g
        .get("userknownhostsfile")
        .and_then(|v| v.split_whitespace().next())
        .map(str::to_owned)
        .unwrap_or_else(|| "~/.ssh/known_hosts".into());
    let recorded = files.iter().any(|f| {
        Path::new(f).is_file()
            && Command::new("ssh-keygen")
                .args(["-F", &name, "-f", f])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    });
    HostKeyStatus {
        known_hosts,
        name,
        hostname,
        port,
        recorded,
        hashed: g.get("hashknownhosts").is_some_and(|v| v == "yes"),
    }
}

/// The keys `host` presents now, as `ssh-keygen -lf` prints them
/// (`256 SHA256:... [host]:port (ED25519)`), from `ssh-keyscan`.
pub fn presented_fingerprints(hostname: &str, port: u16, timeout: u32) -> Vec<String> {
    let Ok(scan) = Command::new("ssh-keyscan")
        .args([
            "-T",
            &timeout.max(1).to_string(),
            "-p",
            &port.to_string(),
            "--",
            hostname,
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    let Ok(mut child) = Command::new("ssh-keygen")
        .args(["-l", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        return Vec::new();
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&scan.stdout);
    }
    child
        .wait_with_output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The exact commands that record the key of `host` for the ssh
/// configuration `opts` (or, for a changed key, remove the old one first),
/// with the fingerprints the host presents now, for the admin to compare
/// with the server's own (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`
/// there) before running them.
pub fn host_key_advice(opts: &SshOptions, host: &str, port: Option<u16>) -> String {
    let st = host_key_status(opts, host, port);
    let prints = presented_fingerprints(&st.hostname, st.port, opts.connect_timeout);
    let file = sh_quote(&st.known_hosts);
    // On a fresh account `~/.ssh` does not exist yet, and `>>` cannot create it.
    let mkdir = match std::path::Path::new(&st.known_hosts).parent() {
        Some(d) if !d.as_os_str().is_empty() && !d.exists() => {
            format!("install -d -m 700 {} && ", sh_quote(&d.to_string_lossy()))
        }
        _ => String::new(),
    };
    let add = format!(
        "{mkdir}ssh-keyscan{} -p {} {} >> {file}",
        if st.hashed { " -H" } else { "" },
        st.port,
        sh_quote(&st.hostname)
    );
    let presents = if prints.is_empty() {
        "it presents no key to ssh-keyscan now".to_owned()
    } else {
        format!("it presents {}", prints.join(", "))
    };
    if st.recorded {
        format!(
            "{presents}, which differs from the key recorded for {} (a reinstalled server, or someone in between); only when the server's own key (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on it) matches, replace it: ssh-keygen -R {} -f {file} && {add}",
            st.name,
            sh_quote(&st.name)
        )
    } else {
        format!(
            "{presents}; compare with the server's own key (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on it), then add it to {} with: {add}",
            st.known_hosts
        )
    }
}

fn host_key_fix(opts: &SshOptions, host: &str, port: Option<u16>) -> Option<String> {
    Some(host_key_advice(opts, host, port))
}

fn sh_quote(s: &str) -> String {
    spyglass_db::quote::shell(s)
}

fn transfer_stdout(show: bool) -> Stdio {
    if show {
        if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
            return Stdio::from(fd);
        }
    }
    Stdio::null()
}

fn which(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// Turns ssh/rsync/sftp error output into an error naming the host (and
/// the file, when the output names one).
pub fn classify(host: &str, user: &str, what: &str, stderr: &str) -> ShipError {
    let detail = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
        .collect::<Vec<_>>();
    let text = detail.join("; ");
    let has = |s: &str| stderr.contains(s);
    if has("No space left on device") || has("Disk quota exceeded") {
        // rsync: `write failed on "/path/file": No space left on device (28)`
        let file = stderr
            .lines()
            .find(|l| l.contains("No space left") || l.contains("quota"))
            .and_then(|l| l.split('"').nth(1))
            .map(str::to_owned)
            .unwrap_or_else(|| what.to_owned());
        return ShipError::DiskFull {
            host: host.to_owned(),
            file,
            free_bytes: None,
        };
    }
    if has("Host key verification failed")
        || has("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || has("No ED25519 host key is known")
        || has("host key for")
    {
        return ShipError::HostKey {
            host: host.to_owned(),
            detail: text,
            fix: None,
        };
    }
    if has("Permission denied (") || has("Too many authentication failures") || has("Load key") {
        return ShipError::AuthFailed {
            host: host.to_owned(),
            user: user.to_owned(),
            detail: text,
        };
    }
    for s in [
        "Connection refused",
        "Could not resolve hostname",
        "Connection timed out",
        "No route to host",
        "Network is unreachable",
        "Connection closed by",
        "Connection reset",
        "kex_exchange_identification",
        "connection unexpectedly closed",
    ] {
        if has(s) {
            return ShipError::Unreachable {
                host: host.to_owned(),
                detail: text,
            };
        }
    }
    ShipError::Remote {
        host: host.to_owned(),
        what: what.to_owned(),
        detail: if text.is_empty() {
            "no error output".into()
        } else {
            text
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_df_and_quoted_paths() {
        let df = "Filesystem     1024-blocks  Used Available Capacity Mounted on\ntmpfs                 1024  1020         4     100% /srv/b\n";
        assert_eq!(parse_df(df), Some(4096));
        assert_eq!(parse_df("sh: df: not found"), None);
        assert_eq!(
            quoted_path("write remote \"/srv/b/x.partial/t.gz\": Failure").as_deref(),
            Some("/srv/b/x.partial/t.gz")
        );
        assert_eq!(quoted_path("Failure"), None);
    }

    #[test]
    fn classifies_errors_naming_host_and_file() {
        let e = classify("nas:22", "backup", "rsync", "rsync: [receiver] write failed on \"/srv/b/x.partial/2-data/lab/t.0.sql.gz\": No space left on device (28)\nrsync error: error in file IO (code 11)");
        assert_eq!(
            e.to_string(),
            "no space left on nas:22:/srv/b/x.partial/2-data/lab/t.0.sql.gz"
        );
        let e = classify(
            "nas:22",
            "backup",
            "looking",
            "backup@127.0.0.1: Permission denied (publickey).",
        );
        assert!(matches!(e, ShipError::AuthFailed { .. }), "{e:?}");
        assert!(e
            .to_string()
            .starts_with("nas:22 refused the login of backup"));
        let e = classify(
            "nas:22",
            "backup",
            "looking",
            "ssh: connect to host nas port 22: Connection refused",
        );
        assert!(matches!(e, ShipError::Unreachable { .. }));
        assert!(e.to_string().starts_with("cannot reach nas:22"));
        let e = classify("nas", "backup", "looking", "No ED25519 host key is known for nas and you have requested strict checking.\nHost key verification failed.");
        assert!(matches!(e, ShipError::HostKey { .. }));
        let e = classify("nas", "b", "renaming", "mv: cannot move");
        assert_eq!(e.to_string(), "nas: renaming failed: mv: cannot move");
    }
}
