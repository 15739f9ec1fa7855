//! `spyglass-admin report` on the shared fixture, read back through a real
//! browser: headless Chromium opens the page from disk inside a network
//! namespace with no interfaces (`unshare -n`), so the page can only show
//! what is in the file. Every number the DOM carries (`data-k` pointer,
//! `data-v` value, the visible text) is checked against `--json` of the
//! same run; a screenshot is decoded and must not be blank.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use spyglass_fixture::Planted;

use crate::support::{fixture_root, Sandbox};

/// Where this test leaves its page and screenshot (kept for people to look at).
fn artifacts() -> PathBuf {
    let flavor = crate::support::server().flavor;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/report-test")
        .join(flavor);
    std::fs::create_dir_all(&dir).expect("artifact dir under target/");
    dir
}

/// The browser: `chromium` on PATH or /usr/bin/chromium. Missing is a failure.
fn chromium() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("chromium"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    candidates
        .into_iter()
        .chain([PathBuf::from("/usr/bin/chromium")])
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "chromium is missing: the report tests open the page in headless Chromium \
                 (Debian package `chromium`; `cargo xtask itest` installs it)"
            )
        })
}

/// Runs headless Chromium on `page` with no network at all; returns stdout.
fn browser(page: &Path, args: &[&str]) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let out = Command::new("unshare")
        .arg("-n")
        .arg(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .env("HOME", profile.path())
        .output()
        .expect("run unshare -n chromium");
    assert!(
        out.status.success(),
        "chromium failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The same units the page promises (written again here, not imported).
fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

/// Every element carrying `data-v`: (its tag, its text up to the next tag).
fn numbers(dom: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = dom[at..].find(" data-v=\"") {
        let pos = at + i;
        let open = dom[..pos].rfind('<').expect("tag start");
        let close = pos + dom[pos..].find('>').expect("tag end");
        let text_end = close + dom[close..].find('<').unwrap_or(dom.len() - close);
        out.push((
            dom[open..=close].to_owned(),
            unescape(&dom[close + 1..text_end]),
        ));
        at = close;
    }
    out
}

/// Checks one number against the JSON: its pointer's value (or the sum of
/// the object it points at, or the array's length) and its visible text.
fn check_number(json: &Value, tag: &str, text: &str) -> String {
    let v = attr(tag, "data-v").expect("data-v");
    let f = attr(tag, "data-f").unwrap_or_else(|| panic!("{tag}: no data-f"));
    let (ptr, expected) = match (attr(tag, "data-k"), attr(tag, "data-sum")) {
        (Some(k), _) => {
            let j = json
                .pointer(&k)
                .unwrap_or_else(|| panic!("{k}: the page shows it, --json has no such value"));
            (k, j.clone())
        }
        (None, Some(k)) => {
            let obj = json
                .pointer(&k)
                .and_then(Value::as_object)
                .unwrap_or_else(|| panic!("{k}: not an object in --json"));
            let sum: u64 = obj.values().map(|x| x.as_u64().expect("bytes")).sum();
            (k, Value::from(sum))
        }
        (None, None) => panic!("{tag}: a number with neither data-k nor data-sum"),
    };
    match f.as_str() {
        "len" => {
            let n = expected
                .as_array()
                .unwrap_or_else(|| panic!("{ptr}: not an array"))
                .len();
            assert_eq!(v, n.to_string(), "{ptr}");
            assert_eq!(text.trim(), n.to_string(), "{ptr}: shown");
        }
        "b" | "c" => {
            // A rate is shown rounded to whole bytes.
            let n = expected
                .as_u64()
                .or_else(|| expected.as_f64().map(|x| x.round() as u64))
                .unwrap_or_else(|| panic!("{ptr}: {expected} is not a number"));
            assert_eq!(v, n.to_string(), "{ptr}");
            let shown = if f == "b" {
                human_bytes(n)
            } else {
                n.to_string()
            };
            assert_eq!(text.trim(), shown, "{ptr}: shown");
        }
        "d" => {
            let x = expected
                .as_f64()
                .unwrap_or_else(|| panic!("{ptr}: {expected} is not a number"));
            let got: f64 = v.parse().expect("data-v is a number");
            assert!(
                (got - x).abs() <= 1e-9 * x.abs().max(1.0),
                "{ptr}: {got} vs {x}"
            );
            assert_eq!(text.trim(), format!("{x:.1}"), "{ptr}: shown");
        }
        other => panic!("{ptr}: unknown format {other}"),
    }
    ptr
}

/// A minimal PNG reader for Chromium's screenshots (8-bit RGB or RGBA, not
/// interlaced): width, height and RGB pixels.
fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<[u8; 3]>) {
    use std::io::Read;
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG signature");
    let (mut w, mut h, mut channels) = (0u32, 0u32, 0usize);
    let mut idat = Vec::new();
    let mut i = 8;
    while i + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
        let kind = &bytes[i + 4..i + 8];
        let data = &bytes[i + 8..i + 8 + len];
        match kind {
            b"IHDR" => {
                w = u32::from_be_bytes(data[0..4].try_into().unwrap());
                h = u32::from_be_bytes(data[4..8].try_into().unwrap());
                assert_eq!(data[8], 8, "8-bit samples");
                channels = match data[9] {
                    2 => 3,
                    6 => 4,
                    t => panic!("PNG color type {t}"),
                };
                assert_eq!(data[12], 0, "not interlaced");
            }
            b"IDAT" => idat.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
        i += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .expect("PNG data inflates");
    let stride = w as usize * channels;
    let mut prev = vec![0u8; stride];
    let mut px = Vec::with_capacity((w * h) as usize);
    for row in 0..h as usize {
        let line = &raw[row * (stride + 1)..(row + 1) * (stride + 1)];
        let mut cur = line[1..].to_vec();
        for x in 0..stride {
            let a = if x >= channels { cur[x - channels] } else { 0 } as i16;
            let b = prev[x] as i16;
            let c = if x >= channels { prev[x - channels] } else { 0 } as i16;
            let add = match line[0] {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) / 2,
                4 => {
                    let p = a + b - c;
                    let (pa, pb, pc) = ((p - a).abs(), (p - b).abs(), (p - c).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => panic!("PNG filter {f}"),
            };
            cur[x] = cur[x].wrapping_add(add as u8);
        }
        for p in cur.chunks(channels) {
            px.push([p[0], p[1], p[2]]);
        }
        prev = cur;
    }
    (w, h, px)
}

#[test]
fn the_report_opens_offline_in_chromium_and_shows_the_json_numbers() {
    let root = fixture_root();
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join(spyglass_fixture::SUMMARY_FILE)).unwrap(),
    )
    .unwrap();
    let planted: Planted = serde_json::from_value(summary["planted"].clone()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("backups");
    let offsite = work.path().join("offsite");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::create_dir_all(&offsite).unwrap();
    let mut sb = Sandbox::new();
    sb.write(
        "dj_local_conf.json",
        &std::fs::read_to_string(root.join("dj_local_conf.json")).unwrap(),
        0o600,
    );
    let schemas: Vec<String> = spyglass_fixture::SCHEMAS
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect();
    sb.write(
        "spyglass-admin.toml",
        &format!(
            "[backup]\ndestination = \"{}\"\nkeep_last = 3\nship_to = \"{}\"\n\n\
             [nightly]\nthreads = 2\nschemas = [{s}]\ncleanup = \"scan\"\nreport = \"nightly-report.html\"\n\n[cleanup]\nschemas = [{s}]\n",
            dest.display(),
            offsite.display(),
            s = schemas.join(", ")
        ),
        0o644,
    );
    sb.env("DJ_PASS", "");
    // One real night: backup, verify, ship (to a directory), cleanup scan.
    let night = sb.run(&["nightly", "--json"]);
    // The fixture plants dangling references: cleanup's step needs
    // attention (exit 2), but no step may have failed.
    assert!(
        matches!(night.code, 0..=2),
        "{}\n{}",
        night.stdout,
        night.stderr
    );
    let night = night.json();
    for step in night["steps"].as_array().expect("steps") {
        assert_ne!(step["status"], "failed", "{night:#}");
    }
    // [nightly] report: the night wrote its page next to its summary.
    let nightly_page = std::fs::read_to_string(dest.join("nightly-report.html"))
        .expect("nightly wrote [nightly] report under the destination");
    assert!(
        nightly_page.contains("<html")
            && nightly_page.contains(&spyglass_fixture::SCHEMAS[0].to_string()),
        "the nightly's report does not look like a report"
    );
    let set = Path::new(night["set"].as_str().expect("the nightly wrote a set"))
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    let page = artifacts().join("report.html");
    let _ = std::fs::remove_file(&page);
    let out = sb.run(&["report", "--out", page.to_str().unwrap(), "--json"]);
    // Dangling references are planted: problems, exit 1.
    out.assert_code(1);
    let json = out.json();
    let html = std::fs::read_to_string(&page).expect("the page was written");
    // It names accounts with temporary passwords: not world-readable.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&page).expect("page").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "report.html is mode {mode:o}");

    // Nothing in the file can fetch anything.
    for needle in [
        "<script", " src=", " href=", "url(", "@import", "<link", "<iframe",
    ] {
        assert!(!html.contains(needle), "the page contains {needle}");
    }

    // The DOM as Chromium built it, with no network.
    let dom = browser(&page, &["--dump-dom"]);
    let ids = [
        "header", "problems", "storage", "growth", "backups", "cleanup", "users",
    ];
    let mut last = 0;
    for id in ids {
        let at = dom
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("section {id} missing from the DOM"));
        assert!(
            at > last,
            "{id} out of order (problems come before information)"
        );
        last = at;
        if id != "header" && id != "problems" {
            assert_eq!(json[id]["state"], "gathered", "{id}: {:#}", json[id]);
        }
    }
    let checked: Vec<String> = numbers(&dom)
        .iter()
        .map(|(tag, text)| check_number(&json, tag, text))
        .collect();
    assert!(
        checked.len() > 60,
        "only {} numbers on the page",
        checked.len()
    );
    let classes = json["cleanup"]["data"]["classes"].as_array().unwrap();
    let mut must = vec![
        "/problems".to_string(),
        "/storage/data/db_bytes".into(),
        "/storage/data/file_bytes".into(),
        "/storage/data/files".into(),
        "/cleanup/data/reclaimable_bytes".into(),
        "/cleanup/data/dangling".into(),
        "/backups/data/sets".into(),
        "/users/data/findings".into(),
    ];
    for (i, _) in classes.iter().enumerate() {
        must.push(format!("/cleanup/data/classes/{i}/bytes"));
        must.push(format!("/cleanup/data/classes/{i}/count"));
    }
    for (i, _) in json["storage"]["data"]["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        must.push(format!("/storage/data/schemas/{i}/data_bytes"));
        must.push(format!("/storage/data/schemas/{i}/file_bytes"));
    }
    for (i, _) in json["storage"]["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        must.push(format!("/storage/data/groups/{i}/db_bytes"));
    }
    for m in &must {
        assert!(checked.contains(m), "{m} is not shown on the page");
    }

    // The numbers are the fixture's.
    let class = |n: &str| {
        classes
            .iter()
            .find(|c| c["name"] == n)
            .unwrap_or_else(|| panic!("class {n}"))
            .clone()
    };
    assert_eq!(class("dangling")["count"], planted.dangling);
    assert_eq!(
        json["cleanup"]["data"]["dangling"]
            .as_array()
            .unwrap()
            .len() as u64,
        planted.dangling
    );
    assert_eq!(class("untracked_dir")["count"], planted.untracked_dir);
    assert_eq!(json["problems"][0]["severity"], "high");
    let storage = &json["storage"]["data"];
    let group = |n: &str| {
        storage["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == n)
            .unwrap_or_else(|| panic!("group {n}: {storage:#}"))
            .clone()
    };
    assert_eq!(group("common")["kind"], "module");
    assert_eq!(group("common")["schemas"], 3);
    assert_eq!(group("alice")["kind"], "user");
    assert_eq!(group("alice")["schemas"], 2);
    assert_eq!(group("bob")["kind"], "user");
    // The stores' bytes are the files on disk that rows name, each once.
    let analysis = storage["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["store"] == "analysis")
        .unwrap();
    assert!(analysis["files"].as_u64().unwrap() > 0, "{analysis:#}");
    let backups = &json["backups"]["data"];
    assert_eq!(backups["newest_verified"], set.as_str());
    assert_eq!(backups["newest_offsite_verified"], set.as_str());
    assert_eq!(backups["nightly"].as_array().unwrap().len(), 1);
    let run = backups["sets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == set.as_str())
        .unwrap();
    assert_eq!(run["verify"], "good");
    assert_eq!(run["ship"], "ok");
    assert!(dom.contains("binary-log archive"), "the RPO line is there");
    assert!(
        backups["binlog_archive"]
            .as_str()
            .unwrap()
            .starts_with("not configured"),
        "no made-up RPO"
    );
    // Tonight's record went into the history under the destination.
    let hist = std::fs::read_to_string(dest.join("spyglass-report-history.jsonl")).unwrap();
    assert_eq!(hist.lines().count(), 1, "{hist}");
    let g = &json["growth"]["data"];
    assert!(!g["runway"].as_array().unwrap().is_empty());
    let users = &json["users"]["data"];
    assert!(users["roles"].as_array().unwrap().len() >= 4);
    assert!(dom.contains("Role by account"));

    // A screenshot at a set width, not blank.
    let png = artifacts().join("report.png");
    let _ = std::fs::remove_file(&png);
    browser(
        &page,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1400,2000",
        ],
    );
    let (w, h, px) = decode_png(&std::fs::read(&png).expect("screenshot written"));
    assert_eq!((w, h), (1400, 2000));
    let white = px.iter().filter(|p| p.iter().all(|c| *c > 245)).count();
    let mean: f64 = px
        .iter()
        .map(|p| p.iter().map(|c| *c as f64).sum::<f64>() / 3.0)
        .sum::<f64>()
        / px.len() as f64;
    let var: f64 = px
        .iter()
        .map(|p| {
            let l = p.iter().map(|c| *c as f64).sum::<f64>() / 3.0;
            (l - mean) * (l - mean)
        })
        .sum::<f64>()
        / px.len() as f64;
    let colors: std::collections::BTreeSet<[u8; 3]> = px.iter().copied().collect();
    assert!(
        var > 100.0,
        "screenshot looks blank: luminance variance {var:.1}"
    );
    assert!(
        white < px.len() * 97 / 100,
        "screenshot is {}% white",
        white * 100 / px.len()
    );
    assert!(colors.len() > 50, "only {} colours", colors.len());
    // The problems box is drawn red.
    assert!(
        px.iter().any(|p| p[0] > 150 && p[1] < 80 && p[2] < 80),
        "no red on the page"
    );
}
