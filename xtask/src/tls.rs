//! Certificates for the TLS sandbox, made with the `openssl` CLI: a private
//! CA, a server certificate for 127.0.0.1/localhost, a second unrelated CA,
//! a certificate (from the right CA) for another name, and a client
//! certificate. Written once per sandbox start into `target/sandbox/tls-certs`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util;

/// Makes the certificates in `dir` (replacing old ones) and returns `dir`.
pub fn make_certs(dir: &Path) -> Result<PathBuf, String> {
    if util::which("openssl").is_none() {
        util::apt_install(&["openssl"], "the TLS test certificates")?;
    }
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    }
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let ossl = |args: &[&str]| -> Result<(), String> {
        util::run(
            Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
    };
    for (ca, cn) in [
        ("ca", "spyglass test CA"),
        ("other-ca", "unrelated test CA"),
    ] {
        ossl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "3650",
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])?;
    }
    // (name, CA, subject, extensions)
    let leaves = [
        (
            "server",
            "ca",
            "/CN=localhost",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        ),
        // Signed by the unrelated CA, for the right names: only the CA differs.
        (
            "other-ca-server",
            "other-ca",
            "/CN=localhost",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        ),
        (
            "other-name",
            "ca",
            "/CN=db.elsewhere.example",
            "subjectAltName=DNS:db.elsewhere.example\nextendedKeyUsage=serverAuth\n",
        ),
        (
            "client",
            "ca",
            "/CN=spyglass-client",
            "extendedKeyUsage=clientAuth\n",
        ),
    ];
    for (name, ca, subj, ext) in leaves {
        let extfile = dir.join(format!("{name}.ext"));
        fs::write(&extfile, format!("basicConstraints=CA:FALSE\n{ext}"))
            .map_err(|e| e.to_string())?;
        ossl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            subj,
        ])?;
        ossl(&[
            "x509",
            "-req",
            "-sha256",
            "-days",
            "825",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-extfile",
            &format!("{name}.ext"),
        ])?;
    }
    use std::os::unix::fs::PermissionsExt;
    for e in fs::read_dir(dir).map_err(|e| e.to_string())?.flatten() {
        let p = e.path();
        let mode = if p.extension().is_some_and(|x| x == "key") {
            0o600
        } else {
            0o644
        };
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())?;
    }
    Ok(dir.to_owned())
}
