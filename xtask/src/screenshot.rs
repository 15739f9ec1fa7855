//! `cargo xtask screenshot`: the README's picture of the report. Runs the
//! demo (which writes its report), then photographs that page with the same
//! headless Chromium the browser tests use, with no network (`unshare -n`).

use std::path::Path;
use std::process::Command;

use crate::sandbox::{self, Flavor};
use crate::util;

/// Width and height of docs/report.png.
const WINDOW: &str = "1400,4600";

/// Installs Chromium when it is missing (the report's browser tests and this task need it).
pub fn ensure_chromium() -> Result<(), String> {
    if Path::new("/usr/bin/chromium").is_file() {
        return Ok(());
    }
    util::apt_install_missing(&[("chromium", "chromium")], "the report's browser tests")
}

/// Writes a PNG of `page` to `png` with headless Chromium and no network.
pub fn photograph(page: &Path, png: &Path) -> Result<(), String> {
    ensure_chromium()?;
    let profile = std::env::temp_dir().join(format!("xtask-chromium-{}", std::process::id()));
    let result = util::run(
        Command::new("unshare")
            .arg("-n")
            .arg("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--window-size={WINDOW}"))
            .arg(format!("--screenshot={}", png.display()))
            .arg(format!("file://{}", page.display()))
            .env("HOME", &profile)
            .stderr(std::process::Stdio::null()),
    );
    let _ = std::fs::remove_dir_all(&profile);
    result?;
    if !png.is_file() {
        return Err(format!("chromium wrote no {}", png.display()));
    }
    Ok(())
}

pub fn cmd(args: &[String]) -> Result<(), String> {
    let flavor = crate::flavor_arg(args, Flavor::Mariadb)?;
    crate::ci::demo_cmd(&["--flavor".into(), flavor.name().into()])?;
    let page = sandbox::sandbox_dir(flavor)
        .join("demo")
        .join("report.html");
    let png = util::project_root().join("docs/report.png");
    std::fs::create_dir_all(util::project_root().join("docs")).map_err(|e| e.to_string())?;
    photograph(&page, &png)?;
    println!("{}", png.display());
    Ok(())
}
