//! `spyglass-admin cleanup` against real servers and the Spyglass-shaped fixture.
//!
//! The shared fixture (`$SPYGLASS_IT_FIXTURE`) is only read here. Tests that
//! apply build a private copy: schemas under their own namespace, files in
//! their own temp dir, and a seed of their own so their file names never
//! coincide with another copy's (rows of every schema protect files).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use spyglass_db::mysql::prelude::Queryable;
use spyglass_fixture::{FixtureOptions, Planted, Summary};

use spyglass_db::Session;

use crate::support::{admin, fixture_root, server, sql, Sandbox};

/// A private fixture copy, dropped at the end.
struct Private {
    ns: String,
    root: tempfile::TempDir,
    summary: Summary,
}

impl Private {
    fn new(test: &str, seed: u64) -> Private {
        let ns = format!("cl_{test}_");
        let root = tempfile::tempdir().expect("tempdir");
        let s = server();
        let mut a = admin();
        let opts = FixtureOptions {
            seed,
            blob_mb: 0,
            root: root.path().to_owned(),
        };
        let summary =
            spyglass_fixture::create_namespaced(&mut a, &opts, &ns, (&s.host, s.port, &s.user))
                .unwrap_or_else(|e| {
                    panic!(
                        "private fixture {ns}: {e}: {:?}",
                        std::error::Error::source(&e)
                    )
                });
        Private { ns, root, summary }
    }

    fn base(&self) -> PathBuf {
        self.summary.base_dir.clone()
    }

    fn quarantine(&self) -> PathBuf {
        self.root.path().join("quarantine")
    }

    /// A sandbox in the copy's root's sibling, with its DataJoint config and
    /// settings scoping cleanup to the copy's schemas.
    fn sandbox(&self, extra_settings: &str) -> Sandbox {
        let mut sb = Sandbox::new();
        let cfg = std::fs::read_to_string(&self.summary.dj_config).expect("dj config");
        sb.write("dj_local_conf.json", &cfg, 0o600);
        sb.write(
            "spyglass-admin.toml",
            &format!(
                "[cleanup]\nschemas = [\"{}*\"]\nquarantine = \"{}\"\n{extra_settings}",
                self.ns,
                self.quarantine().display()
            ),
            0o644,
        );
        sb.env("DJ_PASS", "");
        sb
    }

    fn db(&self, name: &str) -> String {
        format!("{}{name}", self.ns)
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        let mut a = admin();
        let _ = spyglass_fixture::drop_namespaced(&mut a, &self.ns);
    }
}

/// Every file and symlink under `dir`: relative path -> contents (or link target).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("test helper") {
            let e = e.expect("test helper");
            let p = e.path();
            let rel = p
                .strip_prefix(dir)
                .expect("test helper")
                .display()
                .to_string();
            let ft = e.file_type().expect("test helper");
            if ft.is_symlink() {
                out.insert(
                    rel,
                    std::fs::read_link(&p)
                        .expect("test helper")
                        .display()
                        .to_string()
                        .into_bytes(),
                );
            } else if ft.is_dir() {
                stack.push(p);
            } else {
                out.insert(rel, std::fs::read(&p).expect("test helper"));
            }
        }
    }
    out
}

fn count(v: &Value, class: &str) -> u64 {
    v["classes"][class]["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("class {class} missing: {v:#}"))
}

/// Scan counts equal to what the fixture planted, class by class.
fn assert_counts_match(v: &Value, p: &Planted) {
    let want = [
        ("untracked", p.untracked),
        ("empty", p.empty),
        ("unused_external", p.unused_external),
        ("dangling", p.dangling),
        ("untracked_dir", p.untracked_dir),
        ("stale_temp", p.stale_temp),
        ("orphan_row", p.orphan_row),
    ];
    for (class, n) in want {
        assert_eq!(count(v, class), n, "class {class}: {v:#}");
    }
    assert_eq!(
        v["classes"].as_object().expect("test helper").len(),
        7,
        "every class present"
    );
    assert_eq!(
        v["young"]["count"].as_u64().expect("test helper"),
        p.untracked_young + p.fresh_temp,
        "young untracked file and fresh temp files are left alone"
    );
    assert_eq!(
        v["symlinks_outside"].as_array().expect("test helper").len() as u64,
        p.symlink_outside
    );
}

#[test]
fn scan_finds_every_planted_class_on_the_shared_fixture() {
    let root = fixture_root();
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join(spyglass_fixture::SUMMARY_FILE)).unwrap(),
    )
    .unwrap();
    let planted: Planted = serde_json::from_value(summary["planted"].clone()).unwrap();
    let before = snapshot(&root.join("spyglass"));
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
        &format!("[cleanup]\nschemas = [{}]\n", schemas.join(", ")),
        0o644,
    );
    sb.env("DJ_PASS", "");

    let out = sb.run(&["cleanup", "scan", "--json"]);
    out.assert_code(1);
    let v = out.json();
    assert_counts_match(&v, &planted);
    assert!(
        v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["guard"].is_null()),
        "{v:#}"
    );
    let link = root.join("spyglass/analysis/links/escape.nwb");
    assert_eq!(v["symlinks_outside"][0], link.display().to_string());
    let analysis = v["roots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["label"] == "store analysis")
        .unwrap();
    assert_eq!(analysis["classes"]["untracked"]["count"], 5, "{analysis:#}");

    // --list: one path per line, of the classes asked for.
    let list = sb.run(&["cleanup", "scan", "--list", "--only", "untracked_dir"]);
    list.assert_code(1);
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines.len() as u64, planted.untracked_dir, "{}", list.stdout);
    assert!(lines
        .iter()
        .any(|l| l.ends_with("spikesorting/tonks20211103_sort_failed")));
    assert!(lines.iter().all(|l| !l.contains('\t')), "{}", list.stdout);

    // --list --with-class: the class, a tab, the path; the same paths in the same order.
    let all = sb.run(&["cleanup", "scan", "--list"]);
    let labelled = sb.run(&["cleanup", "scan", "--list", "--with-class"]);
    labelled.assert_code(1);
    let plain: Vec<&str> = all.stdout.lines().collect();
    let pairs: Vec<(&str, &str)> = labelled
        .stdout
        .lines()
        .map(|l| {
            l.split_once('\t')
                .unwrap_or_else(|| panic!("no tab in {l:?}"))
        })
        .collect();
    // Plain --list: absolute paths only (a script that removes them never
    // resolves a store-relative name against its own directory); rows with
    // no file of their own are only in the labelled form, described.
    assert!(
        plain.iter().all(|l| Path::new(l).is_absolute()),
        "{}",
        all.stdout
    );
    assert_eq!(
        pairs
            .iter()
            .filter(|(_, p)| Path::new(p).is_absolute())
            .map(|(_, p)| *p)
            .collect::<Vec<_>>(),
        plain,
        "{}",
        labelled.stdout
    );
    let rows: Vec<&(&str, &str)> = pairs
        .iter()
        .filter(|(_, p)| !Path::new(p).is_absolute())
        .collect();
    assert!(rows.iter().all(|(_, p)| p.starts_with("row ")), "{rows:?}");
    assert_eq!(
        rows.iter().filter(|(c, _)| *c == "unused_external").count() as u64,
        planted.unused_external - planted.unused_external_with_file,
        "{}",
        labelled.stdout
    );
    assert_eq!(
        rows.iter().filter(|(c, _)| *c == "orphan_row").count() as u64,
        planted.orphan_row,
        "{}",
        labelled.stdout
    );
    let mut per_class: BTreeMap<&str, u64> = BTreeMap::new();
    for (c, _) in &pairs {
        *per_class.entry(c).or_default() += 1;
    }
    for (class, n) in [
        ("untracked", planted.untracked),
        ("untracked_dir", planted.untracked_dir),
        ("stale_temp", planted.stale_temp),
    ] {
        assert_eq!(
            per_class.get(class).copied().unwrap_or(0),
            n,
            "{class}: {per_class:?}"
        );
    }
    assert!(pairs.iter().any(
        |(c, p)| *c == "untracked_dir" && p.ends_with("spikesorting/tonks20211103_sort_failed")
    ));
    // --with-class alone is a usage error.
    sb.run(&["cleanup", "scan", "--with-class"]).assert_code(2);

    // Human table names every class.
    let human = sb.run(&["cleanup", "scan"]);
    human.assert_code(1);
    for c in [
        "untracked",
        "empty",
        "unused_external",
        "dangling",
        "untracked_dir",
        "stale_temp",
        "orphan_row",
    ] {
        assert!(human.stdout.contains(c), "{}", human.stdout);
    }
    assert!(human.stdout.contains("not followed"), "{}", human.stdout);

    // Nothing moved, the symlink's target untouched.
    assert_eq!(snapshot(&root.join("spyglass")), before);
    assert!(root.join("outside/not_yours.nwb").is_file());

    // A bad class name is a clean usage error.
    sb.run(&["cleanup", "scan", "--only", "untracked,bogus"])
        .assert_code(2)
        .assert_clean_error();
}

#[test]
fn apply_quarantines_exactly_the_candidates_and_restore_puts_them_back() {
    let p = Private::new("apply", 101);
    let sb = p.sandbox("");
    let before = snapshot(&p.base());
    let outside = snapshot(&p.root.path().join("outside"));

    let scan = sb.run(&["cleanup", "scan", "--json", "--list"]);
    scan.assert_code(1);
    let v = scan.json();
    assert_counts_match(&v, &p.summary.planted);

    let out = sb.run(&["cleanup", "apply", "--yes", "--json"]);
    out.assert_code(0);
    let a = out.json();
    let done = |c: &str| a["done"][c]["count"].as_u64().unwrap();
    let pl = &p.summary.planted;
    assert_eq!(done("untracked"), pl.untracked);
    assert_eq!(done("empty"), pl.empty);
    assert_eq!(done("unused_external"), pl.unused_external);
    assert_eq!(done("untracked_dir"), pl.untracked_dir);
    assert_eq!(done("stale_temp"), pl.stale_temp);
    assert_eq!(
        done("orphan_row"),
        0,
        "orphan rows only with --include-rows"
    );
    assert_eq!(done("dangling"), 0, "dangling is never acted on");
    assert!(a["skipped"].as_array().unwrap().is_empty(), "{a:#}");
    let run = PathBuf::from(a["run"].as_str().unwrap());
    assert!(run.starts_with(p.quarantine()));

    // Nothing referenced moved: every row's file that existed is still there.
    let mut adm = admin();
    let rows: Vec<String> = adm
        .conn()
        .query(format!(
            "SELECT filepath FROM `{0}`.`~external_analysis` UNION ALL SELECT filepath FROM `{1}`.`~external_analysis` UNION ALL SELECT filepath FROM `{2}`.`~external_analysis`",
            p.db("common_nwbfile"),
            p.db("alice_nwbfile"),
            p.db("decoding_v1")
        ))
        .unwrap();
    let after = snapshot(&p.base());
    for f in &rows {
        let rel = format!("analysis/{f}");
        if before.contains_key(&rel) {
            assert_eq!(
                after.get(&rel),
                before.get(&rel),
                "{rel} was tracked and must stay"
            );
        }
    }
    for raw in [
        "raw/j1620210710_.nwb",
        "raw/minirec20230622_.nwb",
        "raw/tonks20211103_.nwb",
    ] {
        assert!(after.contains_key(raw), "{raw}");
    }
    // The unused rows are gone from the database, the referenced ones are not.
    let unused_left: u64 = adm
        .conn()
        .query_first(format!(
            "SELECT COUNT(*) FROM `{0}`.`~external_analysis` e WHERE NOT EXISTS (SELECT 1 FROM `{0}`.analysis_nwbfile a WHERE a.analysis_file_abs_path = e.hash)",
            p.db("common_nwbfile")
        ))
        .unwrap()
        .unwrap();
    assert_eq!(unused_left, 0);
    assert_eq!(rows.len(), 15 - pl.unused_external as usize);
    // Young file, fresh temp files, tracked folders, the symlink and its target stay.
    let kept_young = before
        .keys()
        .filter(|k| {
            k.starts_with("tmp/running_job") || k.starts_with("recording/j1620210710_rec_0001")
        })
        .all(|k| after.contains_key(k));
    assert!(kept_young);
    assert_eq!(
        after.get("analysis/links/escape.nwb"),
        before.get("analysis/links/escape.nwb")
    );
    assert_eq!(
        snapshot(&p.root.path().join("outside")),
        outside,
        "the symlink was not followed"
    );
    let moved = before.len() - after.len();
    assert_eq!(
        moved as u64,
        pl.untracked
            + pl.empty
            + pl.unused_external_with_file
            + 2 * pl.untracked_dir
            + pl.stale_temp,
        "exactly the candidates' files left (two files per planted folder)"
    );

    // A second scan finds nothing more to clean but the report-only and kept things.
    let again = sb.run(&["cleanup", "scan", "--json"]).json();
    for c in [
        "untracked",
        "empty",
        "unused_external",
        "untracked_dir",
        "stale_temp",
    ] {
        assert_eq!(count(&again, c), 0, "{c}: {again:#}");
    }
    assert_eq!(count(&again, "dangling"), pl.dangling);

    // Restore puts everything back byte for byte, rows included.
    let r = sb.run(&["cleanup", "restore", run.to_str().unwrap(), "--json"]);
    r.assert_code(0);
    assert_eq!(r.json()["not_restored"], 0, "{}", r.stdout);
    assert_eq!(snapshot(&p.base()), before, "restore is byte-identical");
    // The run stays as the audit trail: its manifest, marked restored, until purge.
    let info = spyglass_cleanup::quarantine::read_run(&run).unwrap();
    assert!(info.restored.is_some(), "marked restored");
    assert!(info.entries.is_empty(), "nothing left in it");
    assert_eq!(
        info.restored_entries.len() as u64,
        pl.untracked + pl.empty + pl.unused_external + pl.untracked_dir + pl.stale_temp
    );
    assert!(
        !run.join("files").exists(),
        "its emptied files folder is gone"
    );
    let again = sb.run(&["cleanup", "restore", run.to_str().unwrap()]);
    again.assert_code(2).assert_clean_error();
    assert!(
        again.stderr.contains("restored already"),
        "{}",
        again.stderr
    );
    let v2 = sb.run(&["cleanup", "scan", "--json"]).json();
    assert_counts_match(&v2, pl);

    // Purge of a run younger than 30 days does nothing; of older ones it deletes.
    sb.run(&["cleanup", "apply", "--yes", "--only", "stale_temp"])
        .assert_code(0);
    let purge = sb.run(&["cleanup", "purge", "--yes", "--json"]);
    purge.assert_code(0);
    assert_eq!(purge.json()["purged"].as_array().unwrap().len(), 0);
    let purge = sb.run(&["cleanup", "purge", "--older-than", "0s", "--yes", "--json"]);
    purge.assert_code(0);
    assert_eq!(
        purge.json()["purged"].as_array().unwrap().len(),
        2,
        "the restored run and the new one"
    );
    assert_eq!(std::fs::read_dir(p.quarantine()).unwrap().count(), 0);
}

#[test]
fn include_rows_deletes_orphan_rows_and_restore_inserts_them() {
    let p = Private::new("rows", 102);
    let sb = p.sandbox("");
    let out = sb.run(&[
        "cleanup",
        "apply",
        "--yes",
        "--include-rows",
        "--only",
        "orphan_row",
        "--json",
    ]);
    out.assert_code(0);
    let a = out.json();
    assert_eq!(
        a["done"]["orphan_row"]["count"].as_u64().unwrap(),
        p.summary.planted.orphan_row
    );
    let n = |p: &Private| -> u64 {
        let mut adm = admin();
        let c: u64 = adm
            .conn()
            .query_first(format!(
                "SELECT (SELECT COUNT(*) FROM `{}`.analysis_nwbfile) + (SELECT COUNT(*) FROM `{}`.analysis_nwbfile)",
                p.db("common_nwbfile"),
                p.db("alice_nwbfile")
            ))
            .unwrap()
            .unwrap();
        c
    };
    assert_eq!(n(&p), 8 + 3 - p.summary.planted.orphan_row);
    let run = a["run"].as_str().unwrap().to_owned();
    sb.run(&["cleanup", "restore", &run]).assert_code(0);
    assert_eq!(n(&p), 11, "orphan rows inserted again");
    let v = sb.run(&["cleanup", "scan", "--json"]).json();
    assert_eq!(count(&v, "orphan_row"), p.summary.planted.orphan_row);
}

#[test]
fn a_row_inserted_or_a_file_touched_after_the_scan_keeps_the_file() {
    use spyglass_cleanup::apply::{self, ApplyOptions, Disposal};
    use spyglass_cleanup::scan::{self, ScanOptions, Setup};

    let p = Private::new("race", 103);
    let cfg_text = std::fs::read_to_string(&p.summary.dj_config).unwrap();
    let cfg = spyglass_db::dj_config::parse(&cfg_text, &p.summary.dj_config).unwrap();
    let dirs = spyglass_cleanup::dirs::resolve(&cfg.custom, |_| None).unwrap();
    let stores = spyglass_cleanup::store::stores(&cfg.stores, dirs.as_ref()).unwrap();
    let setup = Setup { stores, dirs };
    let opts = ScanOptions {
        scope: spyglass_cleanup::inventory::Scope::patterns(vec![format!("{}*", p.ns)]),
        ..ScanOptions::default()
    };
    let mut session = admin();
    let s = scan::scan(&mut session, &setup, &opts).unwrap();
    let untracked: Vec<&scan::Item> = s
        .items
        .iter()
        .filter(|i| i.class == spyglass_cleanup::Class::Untracked && i.rel.contains('/'))
        .collect();
    assert!(untracked.len() >= 2);
    let (raced, touched) = (untracked[0].clone(), untracked[1].clone());

    // An analysis finishes: its row is inserted after the scan.
    sql(
        &mut session,
        &format!(
            // (MySQL 9 has no MD5(): a literal hash.)
            "INSERT INTO `{}`.`~external_analysis` (hash, size, filepath, contents_hash) VALUES (X'0123456789abcdef0123456789abcdef', 1, '{}', NULL)",
            p.db("common_nwbfile"),
            raced.rel
        ),
    );
    // Another file is written to again.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(touched.path.as_ref().unwrap())
        .unwrap();
    f.set_modified(std::time::SystemTime::now()).unwrap();
    drop(f);

    let aopts = ApplyOptions {
        only: vec![spyglass_cleanup::Class::Untracked],
        disposal: Disposal::Quarantine(p.quarantine()),
        ..ApplyOptions::default()
    };
    let selected = apply::select(&s, &aopts);
    apply::check_guards(&s, &aopts, &selected).unwrap();
    let rep = apply::apply(&mut session, &s, &setup, &aopts, &selected, &mut |_, _| {}).unwrap();
    let outcome = |i: &scan::Item| {
        rep.outcomes
            .iter()
            .find(|o| o.what == i.path.as_ref().unwrap().display().to_string())
            .unwrap()
            .clone()
    };
    let o = outcome(&raced);
    assert_eq!(
        (o.action, o.reason.as_deref()),
        ("skipped", Some("a row names it now"))
    );
    assert!(
        raced.path.as_ref().unwrap().is_file(),
        "the file whose row arrived stays"
    );
    let o = outcome(&touched);
    assert_eq!(o.action, "skipped");
    assert!(
        o.reason
            .as_deref()
            .unwrap()
            .contains("changed since the scan"),
        "{o:?}"
    );
    assert!(
        touched.path.as_ref().unwrap().is_file(),
        "the file written to stays"
    );
    assert_eq!(rep.done().count() as u64, p.summary.planted.untracked - 2);

    // The file planted as still being written was never a candidate (24 h grace period).
    assert!(s
        .young
        .iter()
        .any(|i| i.class == spyglass_cleanup::Class::Untracked));
    for y in &s.young {
        if let Some(path) = &y.path {
            assert!(
                std::fs::symlink_metadata(path).is_ok(),
                "young {} stays",
                path.display()
            );
        }
    }
}

#[test]
fn every_guard_refuses_and_changes_nothing() {
    let p = Private::new("guards", 104);
    let before = snapshot(&p.base());
    let refused = |sb: &Sandbox, args: &[&str], guard: &str| {
        let out = sb.run(args);
        out.assert_code(2).assert_clean_error();
        assert!(out.stderr.contains(guard), "{guard}: {}", out.stderr);
        assert!(out.stderr.contains("hint:"), "{}", out.stderr);
        assert_eq!(snapshot(&p.base()), before, "{guard}: nothing may change");
    };

    // No terminal and no --yes: nothing done, and it says so.
    let sb = p.sandbox("");
    let out = sb.run(&["cleanup", "apply"]);
    out.assert_code(2).assert_clean_error();
    assert!(out.stderr.contains("nothing done"), "{}", out.stderr);
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
    assert_eq!(snapshot(&p.base()), before);

    // More than --max-fraction of a store would go.
    refused(
        &sb,
        &["cleanup", "apply", "--yes", "--max-fraction", "0.1"],
        "max_fraction",
    );

    // Empty tracked set: the schemas in scope track nothing (a new or test database).
    let mut sb2 = Sandbox::new();
    sb2.write(
        "dj_local_conf.json",
        &std::fs::read_to_string(&p.summary.dj_config).unwrap(),
        0o600,
    );
    sb2.write(
        "spyglass-admin.toml",
        &format!(
            "[cleanup]\nschemas = [\"cl_nothing_here_*\"]\nquarantine = \"{}\"\n",
            p.quarantine().display()
        ),
        0o644,
    );
    sb2.env("DJ_PASS", "");
    refused(&sb2, &["cleanup", "apply", "--yes"], "empty_tracked_set");

    // The store directory differs from the configured one.
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(&p.summary.dj_config).unwrap()).unwrap();
    let other = p.root.path().join("elsewhere");
    std::fs::create_dir_all(&other).unwrap();
    cfg["stores"]["analysis"]["location"] = other.display().to_string().into();
    let sb3 = p.sandbox("");
    sb3.write(
        "dj_local_conf.json",
        &serde_json::to_string_pretty(&cfg).unwrap(),
        0o600,
    );
    refused(&sb3, &["cleanup", "apply", "--yes"], "store_dir_mismatch");
    let scan = sb3.run(&["cleanup", "scan", "--json"]);
    scan.assert_code(1);
    assert!(scan.stdout.contains("store_dir_mismatch"));

    // A quarantine inside a store.
    let inside = p.base().join("analysis/q");
    refused(
        &sb,
        &[
            "cleanup",
            "apply",
            "--yes",
            "--quarantine",
            inside.to_str().unwrap(),
        ],
        "quarantine_placement",
    );

    // A schema in scope uses a store the config does not define.
    let mut adm = admin();
    sql(
        &mut adm,
        &format!(
            "CREATE TABLE `{}`.`~external_video` (hash binary(16) NOT NULL, size bigint unsigned NOT NULL, attachment_name varchar(255), filepath varchar(1000), contents_hash binary(16), timestamp timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (hash))",
            p.db("alice_nwbfile")
        ),
    );
    refused(&sb, &["cleanup", "apply", "--yes"], "store_not_configured");
    assert!(
        p.quarantine()
            .read_dir()
            .map(|mut d| d.next().is_none())
            .unwrap_or(true),
        "no run was created"
    );
}

/// The bulk reads the scan uses (paths and hashes packed by `GROUP_CONCAT`)
/// against every kind of `~external` row, and against the same rows read with
/// a result cap so small that every slice is split and the longest rows are
/// read one by one: both must say exactly the same, and say what was planted.
#[test]
fn bulk_reads_agree_with_split_and_row_by_row_reads_for_every_kind_of_row() {
    use spyglass_cleanup::inventory::{self, Scope, StoreRows};
    use spyglass_cleanup::store::{Store, StoreSource};

    let (a, b) = ("cl_bulk_a", "cl_bulk_b");
    let mut s = admin();
    let ext = |db: &str| {
        format!(
            "CREATE TABLE `{db}`.`~external_bulkmix` (hash binary(16) NOT NULL, size bigint unsigned NOT NULL, \
             attachment_name varchar(255) DEFAULT NULL, filepath varchar(1000) DEFAULT NULL, \
             contents_hash binary(16) DEFAULT NULL, timestamp timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP, \
             PRIMARY KEY (hash)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        )
    };
    for db in [a, b] {
        sql(&mut s, &format!("DROP DATABASE IF EXISTS `{db}`"));
        sql(&mut s, &format!("CREATE DATABASE `{db}`"));
        sql(&mut s, &ext(db));
    }
    for (t, col) in [("ref_one", "f"), ("ref_two", "g")] {
        sql(
            &mut s,
            &format!(
                "CREATE TABLE `{a}`.`{t}` (id int NOT NULL, {col} binary(16) DEFAULT NULL, PRIMARY KEY (id), \
                 FOREIGN KEY ({col}) REFERENCES `{a}`.`~external_bulkmix` (hash))"
            ),
        );
    }
    let hash = |i: u128| {
        let h = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
        h.to_be_bytes()
    };
    let hex = |h: [u8; 16]| h.iter().map(|b| format!("{b:02x}")).collect::<String>();
    // 0..1000 filepath rows (every 7th written with a doubled slash), one of
    // 900 bytes; 1000..1500 attachments; 1500..2000 blobs; 2000 an empty filepath.
    let long = format!("deep/{}", "d".repeat(895));
    let mut values = Vec::new();
    for i in 0..2001u128 {
        let (att, fp) = match i {
            5 => ("NULL".to_owned(), format!("'{long}'")),
            0..1000 if i % 7 == 0 => ("NULL".to_owned(), format!("'s{}//f{i}.nwb'", i % 10)),
            0..1000 => ("NULL".to_owned(), format!("'s{}/f{i}.nwb'", i % 10)),
            1000..1500 => (format!("'a{i}.dat'"), "NULL".to_owned()),
            1500..2000 => ("NULL".to_owned(), "NULL".to_owned()),
            _ => ("NULL".to_owned(), "''".to_owned()),
        };
        values.push(format!("(X'{}', 0, {att}, {fp})", hex(hash(i))));
    }
    for chunk in values.chunks(500) {
        sql(
            &mut s,
            &format!(
                "INSERT INTO `{a}`.`~external_bulkmix` (hash, size, attachment_name, filepath) VALUES {}",
                chunk.join(",")
            ),
        );
    }
    // Referenced: filepaths 0..800 by ref_one; filepaths 700..900, attachments
    // 1000..1300 and blobs 1500..1600 by ref_two (two rows for some). Unused:
    // filepaths 900..1000, attachments 1300..1500, blobs 1600..2000, the empty one.
    let refs = |t: &str, col: &str, ids: Vec<u128>| {
        let v: Vec<String> = ids
            .iter()
            .enumerate()
            .map(|(n, i)| format!("({n}, X'{}')", hex(hash(*i))))
            .collect();
        format!("INSERT INTO `{a}`.`{t}` (id, {col}) VALUES {}", v.join(","))
    };
    sql(&mut s, &refs("ref_one", "f", (0..800).collect()));
    let two: Vec<u128> = (700..900)
        .chain(1000..1300)
        .chain(1500..1600)
        .chain(1500..1550)
        .collect();
    sql(&mut s, &refs("ref_two", "g", two));
    // Out of scope: schema b names unused filepath 950 too, which keeps its file.
    sql(
        &mut s,
        &format!(
            "INSERT INTO `{b}`.`~external_bulkmix` (hash, size, filepath) VALUES (X'{}', 0, 's0/f950.nwb')",
            hex(hash(950))
        ),
    );

    let store = Store {
        name: "bulkmix".into(),
        protocol: "file".into(),
        location: std::env::temp_dir(),
        subfolding: vec![2, 2],
        source: StoreSource::Config,
        conflict: None,
    };
    let conn = s.conn();
    let cat = inventory::catalog(conn, &Scope::patterns(vec![a.into()])).unwrap();
    let bulk = inventory::store_rows(conn, &cat, &store).unwrap();
    let small = inventory::store_rows_capped(conn, &cat, &store, 600).unwrap();

    /// (path, in-scope rows, unused rows, out of scope) per path; (path, hash) per unused row; row counts.
    type Summary = (
        Vec<(String, u16, u16, bool)>,
        Vec<(String, String)>,
        u64,
        u64,
    );
    fn summary(r: &StoreRows) -> Summary {
        let mut tracks: Vec<_> = r
            .tracks
            .iter()
            .map(|t| {
                (
                    String::from_utf8_lossy(r.path_of(t)).into_owned(),
                    t.in_scope_rows,
                    t.unused_rows,
                    t.out_of_scope,
                )
            })
            .collect();
        tracks.sort();
        let mut unused: Vec<_> = r
            .unused
            .iter()
            .map(|u| {
                (
                    u.rel.clone(),
                    u.hash.iter().map(|b| format!("{b:02x}")).collect(),
                )
            })
            .collect();
        unused.sort();
        (tracks, unused, r.rows, r.rows_in_scope)
    }
    let (tracks, unused, rows, in_scope) = summary(&bulk);
    assert_eq!(
        summary(&small),
        summary(&bulk),
        "a capped read says the same"
    );
    assert_eq!((rows, in_scope), (2002, 2001));
    assert_eq!(
        tracks.len(),
        2001,
        "schema b's row names a path schema a names too"
    );
    assert_eq!(unused.len(), 100 + 200 + 400 + 1, "{unused:?}");
    let track = |p: &str| {
        tracks
            .iter()
            .find(|t| t.0 == p)
            .unwrap_or_else(|| panic!("{p} tracked"))
    };
    assert_eq!(track("s0/f70.nwb").2, 0, "doubled slash normalized; used");
    assert_eq!(track(&long).2, 0, "the 900-byte path is read whole");
    assert_eq!(track("s0/f990.nwb").2, 1, "unused filepath row");
    let f950 = track("s0/f950.nwb");
    assert_eq!((f950.1, f950.2, f950.3), (1, 1, true), "kept by schema b");
    let att = format!(
        "{a}/{}/{}/{}.a1400.dat",
        &hex(hash(1400))[..2],
        &hex(hash(1400))[2..4],
        hex(hash(1400))
    );
    assert_eq!(track(&att).2, 1, "unused attachment, subfolded path");
    let blob = format!(
        "{a}/{}/{}/{}",
        &hex(hash(1550))[..2],
        &hex(hash(1550))[2..4],
        hex(hash(1550))
    );
    assert_eq!(track(&blob).2, 0, "blob referenced twice: used");
    let empty = hex(hash(2000));
    assert!(
        unused
            .iter()
            .any(|(rel, h)| h == &empty && rel.ends_with(&empty)),
        "the empty filepath stands for a blob-style path"
    );
    for db in [a, b] {
        sql(&mut s, &format!("DROP DATABASE `{db}`"));
    }
}

/// The cases a review found: a latin1 `~external` table (its paths must come
/// out as the UTF-8 names on disk, in bulk and row by row alike), a table
/// whose only row has an empty filepath (no panic: a blob-style path), and
/// a referencing table dropped after the catalog was read (its rows turn
/// unused; their paths stay tracked).
#[test]
fn bulk_reads_handle_latin1_lone_empty_rows_and_dropped_references() {
    use spyglass_cleanup::inventory::{self, Scope};
    use spyglass_cleanup::store::{Store, StoreSource};

    let (c, d) = ("cl_bulk_c", "cl_bulk_d");
    let mut s = admin();
    let ext = |db: &str, charset: &str| {
        format!(
            "CREATE TABLE `{db}`.`~external_bulkcs` (hash binary(16) NOT NULL, size bigint unsigned NOT NULL, \
             attachment_name varchar(255) DEFAULT NULL, filepath varchar(1000) DEFAULT NULL, \
             contents_hash binary(16) DEFAULT NULL, timestamp timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP, \
             PRIMARY KEY (hash)) ENGINE=InnoDB DEFAULT CHARSET={charset}"
        )
    };
    for (db, cs) in [(c, "latin1"), (d, "utf8mb4")] {
        sql(&mut s, &format!("DROP DATABASE IF EXISTS `{db}`"));
        sql(&mut s, &format!("CREATE DATABASE `{db}`"));
        sql(&mut s, &ext(db, cs));
    }
    sql(
        &mut s,
        &format!(
            "CREATE TABLE `{c}`.`ref_gone` (id int NOT NULL, f binary(16) DEFAULT NULL, PRIMARY KEY (id), \
             FOREIGN KEY (f) REFERENCES `{c}`.`~external_bulkcs` (hash))"
        ),
    );
    let h = |i: u8| format!("X'{}'", format!("{i:02x}").repeat(16));
    sql(
        &mut s,
        &format!(
            "INSERT INTO `{c}`.`~external_bulkcs` (hash, size, attachment_name, filepath) VALUES \
             ({}, 0, NULL, 'café/x.nwb'), ({}, 0, NULL, 'naïve//y.nwb'), ({}, 0, 'résumé.dat', NULL)",
            h(1),
            h(2),
            h(3)
        ),
    );
    sql(
        &mut s,
        &format!(
            "INSERT INTO `{c}`.`ref_gone` VALUES (1, {}), (2, {})",
            h(1),
            h(3)
        ),
    );
    sql(
        &mut s,
        &format!(
            "INSERT INTO `{d}`.`~external_bulkcs` (hash, size, filepath) VALUES ({}, 0, '')",
            h(4)
        ),
    );
    let store = Store {
        name: "bulkcs".into(),
        protocol: "file".into(),
        location: std::env::temp_dir(),
        subfolding: vec![],
        source: StoreSource::Config,
        conflict: None,
    };
    let scope = Scope::patterns(vec![c.into(), d.into()]);
    let paths = |r: &inventory::StoreRows| {
        let mut v: Vec<(String, bool)> = r
            .tracks
            .iter()
            .map(|t| {
                (
                    String::from_utf8(r.path_of(t).to_vec()).expect("UTF-8"),
                    t.used(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let hex = |i: u8| format!("{i:02x}").repeat(16);
    let conn = s.conn();
    let cat = inventory::catalog(conn, &scope).unwrap();
    let want = vec![
        ("café/x.nwb".to_owned(), true),
        (format!("{c}/{}.résumé.dat", hex(3)), true),
        (format!("{d}/{}", hex(4)), false),
        ("naïve/y.nwb".to_owned(), false),
    ];
    for cap in [None, Some(40)] {
        let rows = match cap {
            None => inventory::store_rows(conn, &cat, &store).unwrap(),
            Some(cap) => inventory::store_rows_capped(conn, &cat, &store, cap).unwrap(),
        };
        assert_eq!(paths(&rows), want, "cap {cap:?}");
    }
    // The referencing table goes after the catalog was read: every row is
    // unused now, and every path is still tracked.
    sql(&mut s, &format!("DROP TABLE `{c}`.`ref_gone`"));
    let conn = s.conn();
    let rows = inventory::store_rows(conn, &cat, &store).unwrap();
    let got = paths(&rows);
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got.iter().all(|(_, used)| !used), "{got:?}");
    assert_eq!(rows.unused.len(), 4);
    for db in [c, d] {
        sql(&mut s, &format!("DROP DATABASE `{db}`"));
    }
}

/// The orphan-row phase reads names and downstream keys in bulk: a row no
/// downstream table references is reported, one any of them references
/// (also through a nullable column, twice, or only under the collation) is
/// not, and a downstream value matching no name leaves the answer exact.
#[test]
fn orphan_rows_read_in_bulk_agree_with_the_server() {
    use spyglass_cleanup::inventory::{self, Scope};

    let (a, d) = ("cl_orph_nwbfile", "cl_orph_v1");
    let mut s = admin();
    for db in [d, a] {
        sql(&mut s, &format!("DROP DATABASE IF EXISTS `{db}`"));
    }
    for db in [a, d] {
        sql(&mut s, &format!("CREATE DATABASE `{db}`"));
    }
    sql(
        &mut s,
        &format!(
            "CREATE TABLE `{a}`.`analysis_nwbfile` (analysis_file_name varchar(64) NOT NULL, \
             PRIMARY KEY (analysis_file_name)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        ),
    );
    let fk = |table: &str, null: &str| {
        format!(
            "CREATE TABLE `{d}`.`{table}` (id int NOT NULL, analysis_file_name varchar(64) {null}, \
             PRIMARY KEY (id), FOREIGN KEY (analysis_file_name) REFERENCES `{a}`.`analysis_nwbfile` \
             (analysis_file_name)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        )
    };
    sql(&mut s, &fk("evens", "NOT NULL"));
    sql(&mut s, &fk("thirds", "NOT NULL"));
    sql(&mut s, &fk("maybe", "DEFAULT NULL"));
    let n = 3000;
    let name = |i: usize| format!("sess_{:02}_{i:05}.nwb", i % 7);
    let values = |ids: &mut dyn Iterator<Item = usize>| -> String {
        ids.map(|i| format!("({i}, '{}')", name(i)))
            .collect::<Vec<_>>()
            .join(",")
    };
    let names: Vec<String> = (0..n).map(|i| format!("('{}')", name(i))).collect();
    sql(
        &mut s,
        &format!(
            "INSERT INTO `{a}`.`analysis_nwbfile` VALUES {}, ('Case.nwb')",
            names.join(",")
        ),
    );
    sql(
        &mut s,
        &format!(
            "INSERT INTO `{d}`.`evens` VALUES {}",
            values(&mut (0..n).step_by(2))
        ),
    );
    // Twice each, under two ids.
    sql(
        &mut s,
        &format!(
            "INSERT INTO `{d}`.`thirds` VALUES {}, {}",
            values(&mut (0..n).step_by(3)),
            (0..n)
                .step_by(3)
                .map(|i| format!("({}, '{}')", n + i, name(i)))
                .collect::<Vec<_>>()
                .join(",")
        ),
    );
    sql(
        &mut s,
        &format!(
            "INSERT INTO `{d}`.`maybe` VALUES {}, (100000, NULL), (100001, NULL)",
            values(&mut (0..n).filter(|i| i % 10 == 1))
        ),
    );
    let referenced = |i: usize| i % 2 == 0 || i % 3 == 0 || i % 10 == 1;
    let mut want: Vec<String> = (0..n).filter(|&i| !referenced(i)).map(name).collect();
    want.push("Case.nwb".into());
    want.sort();
    let scope = Scope::patterns(vec![a.into()]);
    let orphans = |s: &mut Session| -> Vec<String> {
        let conn = s.conn();
        let cat = inventory::catalog(conn, &scope).unwrap();
        assert_eq!(cat.analysis.len(), 1, "{:?}", cat.analysis);
        assert_eq!(cat.analysis[0].downstream.len(), 3);
        let mut got: Vec<String> = inventory::orphan_rows(conn, &cat)
            .unwrap()
            .into_iter()
            .map(|o| {
                assert_eq!(o.schema, a);
                o.key
            })
            .collect();
        got.sort();
        got
    };
    let server = |s: &mut Session| -> Vec<String> {
        let mut v: Vec<String> = s
            .conn()
            .query(format!(
                "SELECT x.analysis_file_name FROM `{a}`.`analysis_nwbfile` x WHERE \
                 NOT EXISTS (SELECT 1 FROM `{d}`.`evens` r WHERE r.analysis_file_name = x.analysis_file_name) AND \
                 NOT EXISTS (SELECT 1 FROM `{d}`.`thirds` r WHERE r.analysis_file_name = x.analysis_file_name) AND \
                 NOT EXISTS (SELECT 1 FROM `{d}`.`maybe` r WHERE r.analysis_file_name = x.analysis_file_name)"
            ))
            .unwrap();
        v.sort();
        v
    };
    assert_eq!(server(&mut s), want);
    let got = orphans(&mut s);
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want, "bulk read");

    // A row referenced only under the column's collation (case differs):
    // referenced, as the server sees it.
    sql(
        &mut s,
        &format!("INSERT INTO `{d}`.`maybe` VALUES (100002, 'CASE.nwb')"),
    );
    want.retain(|k| k != "Case.nwb");
    assert_eq!(server(&mut s), want);
    assert_eq!(orphans(&mut s), want, "collation-equal reference");

    // A downstream value that names no row (foreign key checks were off).
    sql(&mut s, "SET SESSION foreign_key_checks = 0");
    sql(
        &mut s,
        &format!("INSERT INTO `{d}`.`evens` VALUES (100003, 'gone.nwb')"),
    );
    sql(&mut s, "SET SESSION foreign_key_checks = 1");
    assert_eq!(orphans(&mut s), want, "dangling downstream value");

    for db in [d, a] {
        sql(&mut s, &format!("DROP DATABASE `{db}`"));
    }
}

/// A file whose name is not UTF-8 (no DataJoint row can name one) is
/// reported as a problem and never moved, by scan or apply.
#[test]
fn a_file_whose_name_is_not_utf8_is_reported_and_left_alone() {
    use std::os::unix::ffi::OsStrExt;
    let p = Private::new("odd", 105);
    let sb = p.sandbox("");
    let odd = p
        .base()
        .join("analysis")
        .join(std::ffi::OsStr::from_bytes(b"caf\xe9_old.nwb"));
    std::fs::write(&odd, b"odd").unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&odd).unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(5 * 86400))
        .unwrap();
    drop(f);

    let scan = sb.run(&["cleanup", "scan", "--json"]);
    scan.assert_code(1);
    let v = scan.json();
    assert_counts_match(&v, &p.summary.planted);
    let problems = v["problems"].to_string();
    assert!(problems.contains("not UTF-8"), "{problems}");

    let out = sb.run(&["cleanup", "apply", "--yes", "--json"]);
    out.assert_code(0);
    assert_eq!(std::fs::read(&odd).unwrap(), b"odd", "left where it was");
}

/// A DataJoint-shaped lab for the race: `~external_analysis` and an
/// `analysis_nwbfile` referencing it in three `*_nwbfile` schemas, a
/// `sorting_path` table, and files already on disk, old enough to clean.
struct RaceLab {
    root: tempfile::TempDir,
    schemas: Vec<String>,
    /// Every file planted: path relative to the analysis store -> bytes.
    files: BTreeMap<String, Vec<u8>>,
    /// Untracked files (candidates).
    untracked: Vec<String>,
    /// Files whose only row is an unused `~external` row (candidates with it).
    unused: Vec<(usize, String)>,
    /// Untracked sorting folders (candidates).
    folders: Vec<String>,
    sorting_db: String,
}

/// DataJoint's `~external_<store>` declaration (datajoint-python 0.14 `external.py`).
const RACE_DJ_EXTERNAL: &str = "(`hash` binary(16) NOT NULL COMMENT ':uuid:hash of contents (blob), of filename + contents (attach), or relative filepath (filepath)', \
    `size` bigint unsigned NOT NULL COMMENT 'size of object in bytes', \
    `attachment_name` varchar(255) DEFAULT NULL COMMENT 'the filename of an attachment', \
    `filepath` varchar(1000) DEFAULT NULL COMMENT 'relative filepath or attachment filename', \
    `contents_hash` binary(16) DEFAULT NULL COMMENT ':uuid:used for the filepath datatype', \
    `timestamp` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP COMMENT 'automatic timestamp', \
    PRIMARY KEY (`hash`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='external storage tracking'";

fn race_bytes(rel: &str) -> Vec<u8> {
    format!("{rel} written by an analysis\n")
        .repeat(3)
        .into_bytes()
}

fn hex16(h: [u8; 16]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn set_old(path: &Path) {
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86400);
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(old).unwrap();
}

impl RaceLab {
    fn new(ns: &str, untracked: usize, unused: usize, folders: usize) -> RaceLab {
        let root = tempfile::tempdir().unwrap();
        let base = root.path().join("spyglass");
        let store = base.join("analysis");
        // Rows of every schema protect files and folders by path and name:
        // each lab's names are its own, as tests share the server.
        let tag = ns.trim_end_matches('_');
        let schemas: Vec<String> = ["a", "b", "c"]
            .iter()
            .map(|s| format!("{ns}{s}_nwbfile"))
            .collect();
        let sorting_db = format!("{ns}spikesorting");
        let mut s = admin();
        for db in schemas.iter().chain([&sorting_db]) {
            sql(&mut s, &format!("DROP DATABASE IF EXISTS `{db}`"));
            sql(&mut s, &format!("CREATE DATABASE `{db}`"));
        }
        for db in &schemas {
            sql(
                &mut s,
                &format!("CREATE TABLE `{db}`.`~external_analysis` {RACE_DJ_EXTERNAL}"),
            );
            sql(
                &mut s,
                &format!(
                    "CREATE TABLE `{db}`.`analysis_nwbfile` (`analysis_file_name` varchar(64) NOT NULL, \
                     `analysis_file_abs_path` binary(16) NOT NULL COMMENT ':filepath@analysis:', \
                     PRIMARY KEY (`analysis_file_name`), FOREIGN KEY (`analysis_file_abs_path`) \
                     REFERENCES `{db}`.`~external_analysis` (`hash`) ON UPDATE RESTRICT ON DELETE RESTRICT) \
                     ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
                ),
            );
        }
        sql(
            &mut s,
            &format!(
                "CREATE TABLE `{sorting_db}`.`__spike_sorting` (`id` int NOT NULL AUTO_INCREMENT, \
                 `sorting_path` varchar(1000) NOT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            ),
        );
        let mut files = BTreeMap::new();
        let mut write = |rel: &str| {
            let p = store.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            let b = race_bytes(rel);
            std::fs::write(&p, &b).unwrap();
            set_old(&p);
            files.insert(rel.to_owned(), b);
        };
        // Tracked before the run: 100 files per schema, referenced.
        let mut tracked_rows: Vec<Vec<String>> = vec![Vec::new(); schemas.len()];
        for i in 0..300 {
            let rel = format!("{tag}/kept{:02}/k{i:05}.nwb", i % 10);
            write(&rel);
            tracked_rows[i % schemas.len()].push(rel);
        }
        let untracked: Vec<String> = (0..untracked)
            .map(|i| format!("{tag}/run{:02}/u{i:05}.nwb", i % 40))
            .collect();
        for rel in &untracked {
            write(rel);
        }
        let unused: Vec<(usize, String)> = (0..unused)
            .map(|i| {
                (
                    i % schemas.len(),
                    format!("{tag}/old{:02}/x{i:05}.nwb", i % 10),
                )
            })
            .collect();
        for (_, rel) in &unused {
            write(rel);
        }
        let ext_insert = |s: &mut Session, db: &str, rels: &[&String]| {
            for chunk in rels.chunks(500) {
                let v: Vec<String> = chunk
                    .iter()
                    .map(|rel| {
                        let h = hex16(spyglass_cleanup::inventory::filepath_hash(rel));
                        // DataJoint's contents_hash: the MD5 of the bytes.
                        let c = hex16(spyglass_cleanup::inventory::filepath_hash(
                            &String::from_utf8(race_bytes(rel)).unwrap(),
                        ));
                        format!("(X'{h}', {}, '{rel}', X'{c}')", race_bytes(rel).len())
                    })
                    .collect();
                sql(
                    s,
                    &format!(
                        "INSERT INTO `{db}`.`~external_analysis` (hash, size, filepath, contents_hash) VALUES {}",
                        v.join(",")
                    ),
                );
            }
        };
        for (k, db) in schemas.iter().enumerate() {
            let rels: Vec<&String> = tracked_rows[k].iter().collect();
            ext_insert(&mut s, db, &rels);
            for chunk in rels.chunks(500) {
                let v: Vec<String> = chunk
                    .iter()
                    .map(|rel| {
                        let h = hex16(spyglass_cleanup::inventory::filepath_hash(rel));
                        format!("('{}', X'{h}')", rel.replace('/', "_"))
                    })
                    .collect();
                sql(
                    &mut s,
                    &format!(
                        "INSERT INTO `{db}`.`analysis_nwbfile` VALUES {}",
                        v.join(",")
                    ),
                );
            }
            let rels: Vec<&String> = unused
                .iter()
                .filter(|(u, _)| *u == k)
                .map(|(_, r)| r)
                .collect();
            ext_insert(&mut s, db, &rels);
        }
        // Sorting folders: 10 named by rows, `folders` not.
        let sorting = base.join("spikesorting");
        let mut names = Vec::new();
        for i in 0..10 + folders {
            let name = format!("{tag}_sort{i:04}");
            let d = sorting.join(&name);
            std::fs::create_dir_all(&d).unwrap();
            let f = d.join("units.npy");
            std::fs::write(&f, name.as_bytes()).unwrap();
            set_old(&f);
            if i < 10 {
                sql(
                    &mut s,
                    &format!(
                        "INSERT INTO `{sorting_db}`.`__spike_sorting` (sorting_path) VALUES ('{}')",
                        d.display()
                    ),
                );
            } else {
                names.push(name);
            }
        }
        RaceLab {
            root,
            schemas,
            files,
            untracked,
            unused,
            folders: names,
            sorting_db,
        }
    }

    fn base(&self) -> PathBuf {
        self.root.path().join("spyglass")
    }

    /// Stores, directories and scan options, for the library calls.
    fn setup(
        &self,
        ns: &str,
    ) -> (
        spyglass_cleanup::scan::Setup,
        spyglass_cleanup::scan::ScanOptions,
    ) {
        let mut cfg_map = serde_json::Map::new();
        for d in ["analysis", "raw"] {
            let loc = self.base().join(d).display().to_string();
            cfg_map.insert(
                d.into(),
                serde_json::json!({"protocol": "file", "location": loc, "stage": loc}),
            );
        }
        let custom =
            serde_json::json!({"spyglass_dirs": {"base": self.base().display().to_string()}});
        let dirs = spyglass_cleanup::dirs::resolve(custom.as_object().unwrap(), |_| None).unwrap();
        let stores = spyglass_cleanup::store::stores(&cfg_map, dirs.as_ref()).unwrap();
        let opts = spyglass_cleanup::scan::ScanOptions {
            scope: spyglass_cleanup::inventory::Scope::patterns(vec![format!("{ns}*")]),
            min_age: std::time::Duration::ZERO,
            ..spyglass_cleanup::scan::ScanOptions::default()
        };
        (spyglass_cleanup::scan::Setup { stores, dirs }, opts)
    }

    fn store(&self) -> PathBuf {
        self.base().join("analysis")
    }

    fn quarantine(&self) -> PathBuf {
        self.root.path().join("quarantine")
    }

    fn sandbox(&self, ns: &str) -> Sandbox {
        let s = server();
        let loc = |d: &str| self.base().join(d).display().to_string();
        let cfg = serde_json::json!({
            "database.host": s.host,
            "database.port": s.port,
            "database.user": s.user,
            "stores": {
                "analysis": {"protocol": "file", "location": loc("analysis"), "stage": loc("analysis")},
                "raw": {"protocol": "file", "location": loc("raw"), "stage": loc("raw")},
            },
            "custom": {"spyglass_dirs": {"base": self.base().display().to_string()}},
        });
        let mut sb = Sandbox::new();
        sb.write(
            "dj_local_conf.json",
            &serde_json::to_string_pretty(&cfg).unwrap(),
            0o600,
        );
        sb.write(
            "spyglass-admin.toml",
            &format!(
                "[cleanup]\nschemas = [\"{ns}*\"]\nquarantine = \"{}\"\n",
                self.quarantine().display()
            ),
            0o644,
        );
        sb.env("DJ_PASS", "");
        sb
    }

    /// Rows that name a file or folder that is not in place with its bytes.
    fn damaged(&self) -> Vec<String> {
        let mut a = admin();
        let mut bad = Vec::new();
        for db in &self.schemas {
            let rows: Vec<String> = a
                .conn()
                .query(format!("SELECT filepath FROM `{db}`.`~external_analysis`"))
                .unwrap();
            for rel in rows {
                let want = self
                    .files
                    .get(&rel)
                    .unwrap_or_else(|| panic!("unplanted {rel}"));
                match std::fs::read(self.store().join(&rel)) {
                    Ok(b) if &b == want => {}
                    Ok(_) => bad.push(format!("{db}: {rel} has other bytes")),
                    Err(e) => bad.push(format!("{db}: {rel}: {e}")),
                }
            }
        }
        let paths: Vec<String> = a
            .conn()
            .query(format!(
                "SELECT sorting_path FROM `{}`.`__spike_sorting`",
                self.sorting_db
            ))
            .unwrap();
        for p in paths {
            let name = Path::new(&p)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            match std::fs::read(Path::new(&p).join("units.npy")) {
                Ok(b) if b == name.as_bytes() => {}
                _ => bad.push(format!("sorting folder {p} is not in place")),
            }
        }
        bad
    }

    /// Every planted file is at its path or in the run's manifest (with its
    /// bytes in the quarantine); returns the number in the quarantine.
    fn accounted(&self, run: Option<&Path>) -> usize {
        let info = run.map(|r| spyglass_cleanup::quarantine::read_run(r).unwrap());
        let mut in_q: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
        if let Some(info) = &info {
            for e in &info.entries {
                if let (Some(o), Some(st)) = (&e.original, &e.stored) {
                    in_q.insert(o.clone(), info.dir.join(st));
                }
            }
            for (e, r) in &info.returned {
                let o = e.original.as_ref().expect("a returned entry has a path");
                assert!(
                    std::fs::symlink_metadata(o).is_ok(),
                    "returned {} is back ({r:?})",
                    o.display()
                );
            }
        }
        let mut quarantined = 0;
        for (rel, want) in &self.files {
            let p = self.store().join(rel);
            match std::fs::read(&p) {
                Ok(b) => assert_eq!(&b, want, "{rel}"),
                Err(_) => {
                    let q = in_q
                        .get(&p)
                        .unwrap_or_else(|| panic!("{rel} is gone and not in the manifest"));
                    assert_eq!(&std::fs::read(q).unwrap(), want, "{rel} in the quarantine");
                    quarantined += 1;
                }
            }
        }
        quarantined
    }

    fn drop_schemas(&self) {
        let mut a = admin();
        for db in self.schemas.iter().chain([&self.sorting_db]) {
            sql(&mut a, &format!("DROP DATABASE IF EXISTS `{db}`"));
        }
    }
}

/// DataJoint's insert of a `filepath@analysis` attribute, step by step as
/// datajoint-python 0.14.10 does it: read the file (its checksum), look for
/// the `~external` row by the MD5 of the path, insert it if missing (after
/// checking the file is there), then insert the referencing row. `Ok(false)`
/// when DataJoint would have raised (file missing, row gone).
fn dj_insert(
    conn: &mut spyglass_db::mysql::Conn,
    store: &Path,
    db: &str,
    rel: &str,
    name: &str,
) -> bool {
    let path = store.join(rel);
    let Ok(bytes) = std::fs::read(&path) else {
        return false;
    };
    let h = hex16(spyglass_cleanup::inventory::filepath_hash(rel));
    let have: Option<u64> = conn
        .query_first(format!(
            "SELECT size FROM `{db}`.`~external_analysis` WHERE hash = X'{h}'"
        ))
        .unwrap();
    if have.is_none() {
        if !path.is_file() {
            return false;
        }
        let r = conn.query_drop(format!(
            "INSERT INTO `{db}`.`~external_analysis` (hash, size, filepath, contents_hash) VALUES (X'{h}', {}, '{rel}', X'{h}')",
            bytes.len()
        ));
        if r.is_err() {
            return false;
        }
    }
    conn.query_drop(format!(
        "INSERT INTO `{db}`.`analysis_nwbfile` VALUES ('{name}', X'{h}')"
    ))
    .is_ok()
}

/// The race of issue 11: writers insert DataJoint rows for files already on
/// disk (older than --min-age) in three schemas, and rows naming untracked
/// sorting folders, while `cleanup apply` runs. Afterwards no row names a
/// file or folder that is not in place with its bytes, every file is at its
/// path or in the manifest, and items put back are recorded as returned.
#[test]
fn rows_committed_while_apply_runs_never_name_a_moved_file() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let ns = "cl_race2_";
    let lab = Arc::new(RaceLab::new(ns, 6000, 600, 150));
    let sb = lab.sandbox(ns);
    let stop = Arc::new(AtomicBool::new(false));
    let started = std::time::Instant::now();
    let writers: Vec<_> = (0..6u64)
        .map(|w| {
            let lab = Arc::clone(&lab);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut rng = spyglass_fixture::Rng::new(1000 + w);
                let mut s = admin();
                let store = lab.store();
                let sorting = lab.base().join("spikesorting");
                // (when, what) of each commit.
                let mut commits: Vec<(std::time::Duration, String)> = Vec::new();
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let pick = rng.below(100);
                    let ok = if pick < 80 {
                        let rel = &lab.untracked[rng.below(lab.untracked.len() as u64) as usize];
                        let db = &lab.schemas[rng.below(3) as usize];
                        dj_insert(s.conn(), &store, db, rel, &format!("w{w}_{seq}"))
                            .then(|| format!("{db} {rel}"))
                    } else if pick < 95 {
                        let (k, rel) = &lab.unused[rng.below(lab.unused.len() as u64) as usize];
                        let db = &lab.schemas[*k];
                        dj_insert(s.conn(), &store, db, rel, &format!("w{w}_{seq}"))
                            .then(|| format!("{db} {rel} (was unused)"))
                    } else {
                        let name = &lab.folders[rng.below(lab.folders.len() as u64) as usize];
                        let d = sorting.join(name);
                        (d.is_dir()
                            && s.conn()
                                .query_drop(format!(
                                    "INSERT INTO `{}`.`__spike_sorting` (sorting_path) VALUES ('{}')",
                                    lab.sorting_db,
                                    d.display()
                                ))
                                .is_ok())
                        .then(|| format!("folder {name}"))
                    };
                    if let Some(what) = ok {
                        commits.push((started.elapsed(), what));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(4));
                }
                commits
            })
        })
        .collect();
    let t0 = started.elapsed();
    let out = sb.run(&[
        "cleanup",
        "apply",
        "--yes",
        "--min-age",
        "0s",
        "--max-fraction",
        "1",
        "--json",
    ]);
    let t1 = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let commits: Vec<(std::time::Duration, String)> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(
        out.code == 0 || out.code == 1,
        "apply ran: {}\n{}",
        out.stdout,
        out.stderr
    );
    let a = out.json();
    let during = commits.iter().filter(|(t, _)| *t >= t0 && *t <= t1).count();
    let returned = a["returned"].as_array().unwrap().len();
    let run = a["run"].as_str().map(PathBuf::from);
    let damaged = lab.damaged();
    let quarantined = lab.accounted(run.as_deref());
    let info = run
        .as_deref()
        .map(|r| spyglass_cleanup::quarantine::read_run(r).unwrap());
    let recorded = info.as_ref().map(|i| i.returned.len()).unwrap_or(0);
    let max_absent = a["returned"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["absent_ms"].as_f64())
        .fold(0.0, f64::max);
    eprintln!(
        "race [{}]: apply {:.2} s, rows committed during apply {during}, items moved {quarantined}, \
         returned {returned} (longest away {max_absent:.1} ms), batch window {:.1} ms, rows damaged {}",
        server().flavor,
        (t1 - t0).as_secs_f64(),
        a["window_ms"].as_f64().unwrap_or(-1.0),
        damaged.len()
    );
    assert!(damaged.is_empty(), "rows name missing files: {damaged:#?}");
    assert!(during > 0, "the writers overlapped the run");
    assert!(quarantined > 1000, "apply moved files: {quarantined}");
    assert_eq!(recorded, returned, "every returned item is in the manifest");
    for o in a["returned"].as_array().unwrap() {
        let what = o["what"].as_str().unwrap();
        assert!(
            std::fs::symlink_metadata(what).is_ok() || what.contains("~external_analysis row"),
            "{what} was put back"
        );
    }
    lab.drop_schemas();
}

/// Rows inserted right after an item's move (from the progress callback,
/// between two moves of one batch) make apply put the item back before the
/// run ends: an untracked file, an unused row's file that DataJoint
/// registered again (its row too), and a sorting folder.
#[test]
fn an_item_a_row_names_after_its_move_is_put_back_and_recorded() {
    use spyglass_cleanup::apply::{self, ApplyOptions, Disposal};
    use spyglass_cleanup::scan;
    let ns = "cl_ret_";
    let lab = RaceLab::new(ns, 40, 6, 4);
    let (setup, opts) = lab.setup(ns);
    let mut session = admin();
    let s = scan::scan(&mut session, &setup, &opts).unwrap();
    let aopts = ApplyOptions {
        min_age: std::time::Duration::ZERO,
        disposal: Disposal::Quarantine(lab.quarantine()),
        max_fraction: 1.0,
        ..ApplyOptions::default()
    };
    let selected = apply::select(&s, &aopts);
    let pick = |class: spyglass_cleanup::Class| {
        selected
            .iter()
            .position(|&n| s.items[n].class == class && s.items[n].path.is_some())
            .unwrap_or_else(|| panic!("a selected {class:?} item"))
    };
    let untracked = pick(spyglass_cleanup::Class::Untracked);
    let folder = pick(spyglass_cleanup::Class::UntrackedDir);
    let unused = pick(spyglass_cleanup::Class::UnusedExternal);
    let mut writer = admin();
    let mut wrote = Vec::new();
    // Items are handled in this order: files and folders, then unused rows.
    let mut handled = 0;
    let order: Vec<usize> = {
        let (mut u, o): (Vec<usize>, Vec<usize>) = (0..selected.len())
            .partition(|&p| s.items[selected[p]].class == spyglass_cleanup::Class::UnusedExternal);
        // Unused rows go per table.
        u.sort_by_key(|&p| match &s.items[selected[p]].subject {
            scan::Subject::ExternalRow { schema, store, .. } => (schema.clone(), store.clone()),
            _ => Default::default(),
        });
        o.into_iter().chain(u).collect()
    };
    let mut progress = |done: usize, _total: usize| {
        while handled < done {
            let p = order[handled];
            handled += 1;
            if p != untracked && p != folder && p != unused {
                continue;
            }
            let item = &s.items[selected[p]];
            let path = item.path.clone().unwrap();
            assert!(
                std::fs::symlink_metadata(&path).is_err(),
                "{} was moved before the callback",
                path.display()
            );
            if p == folder {
                sql(
                    &mut writer,
                    &format!(
                        "INSERT INTO `{}`.`__spike_sorting` (sorting_path) VALUES ('{}')",
                        lab.sorting_db,
                        path.display()
                    ),
                );
            } else {
                // DataJoint registering the file it checked before the move.
                let db = &lab.schemas[0];
                let h = hex16(spyglass_cleanup::inventory::filepath_hash(&item.rel));
                sql(
                    &mut writer,
                    &format!(
                        "INSERT INTO `{db}`.`~external_analysis` (hash, size, filepath, contents_hash) VALUES (X'{h}', 1, '{}', NULL)",
                        item.rel
                    ),
                );
                sql(
                    &mut writer,
                    &format!("INSERT INTO `{db}`.`analysis_nwbfile` VALUES ('late_{p}', X'{h}')"),
                );
            }
            wrote.push(path);
        }
    };
    let rep = apply::apply(&mut session, &s, &setup, &aopts, &selected, &mut progress).unwrap();
    assert_eq!(wrote.len(), 3, "the callback saw the three items moved");
    let returned: Vec<&apply::Outcome> = rep.returned().collect();
    assert_eq!(returned.len(), 3, "{returned:#?}");
    for p in &wrote {
        assert!(
            std::fs::symlink_metadata(p).is_ok(),
            "{} is back at its path",
            p.display()
        );
    }
    for o in &returned {
        assert_eq!(o.reason.as_deref(), Some("a row names it now"));
        let ms = o.absent_ms.unwrap();
        assert!(ms < 1000.0, "put back within its batch: {ms} ms");
    }
    let info = spyglass_cleanup::quarantine::read_run(rep.run.as_ref().unwrap()).unwrap();
    assert_eq!(
        info.returned.len(),
        3,
        "recorded as returned in the manifest"
    );
    assert!(info
        .returned
        .iter()
        .all(|(e, r)| r.absent_ms >= 0.0 && e.original.is_some()));
    assert!(lab.damaged().is_empty(), "{:#?}", lab.damaged());
    lab.accounted(rep.run.as_deref());
    assert_eq!(
        rep.done().count() + 3 + rep.skipped().count(),
        selected.len()
    );
    lab.drop_schemas();
}

/// Without Spyglass's base directory the sorting, recording and temp folders
/// cannot be located: scan names them, says why, and exits 1.
#[test]
fn scan_names_the_spyglass_directories_it_could_not_locate() {
    let p = Private::new("nobase", 106);
    let sb = p.sandbox("");
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(&p.summary.dj_config).unwrap()).unwrap();
    cfg.as_object_mut().unwrap().remove("custom");
    sb.write(
        "dj_local_conf.json",
        &serde_json::to_string_pretty(&cfg).unwrap(),
        0o600,
    );
    // No untracked_dir can be found without the folders: exit 1 comes from them alone.
    let out = sb.run(&["cleanup", "scan", "--json", "--only", "untracked_dir"]);
    let v = out.json();
    let missing: Vec<(String, bool)> = v["dirs_not_scanned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["dir"].as_str().unwrap().to_owned(),
                d["located"].as_bool().unwrap(),
            )
        })
        .collect();
    for dir in ["sorting", "recording", "temp"] {
        assert!(
            missing.contains(&(dir.to_owned(), false)),
            "{dir} named: {missing:?}"
        );
    }
    assert!(
        v["dirs_not_scanned"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("SPYGLASS_BASE_DIR"),
        "{v:#}"
    );
    assert_eq!(count(&v, "untracked_dir"), 0, "not scanned, so none found");
    out.assert_code(1);
    let human = sb.run(&["cleanup", "scan", "--only", "untracked_dir"]);
    human.assert_code(1);
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.trim_start().starts_with("sorting directory")
                && l.contains("not scanned: Spyglass's base directory is not configured")),
        "{}",
        human.stdout
    );
    // With the base configured they are scanned, and a missing one is a note only.
    let sb = p.sandbox("");
    std::fs::remove_dir_all(p.base().join("recording")).unwrap();
    let v = sb.run(&["cleanup", "scan", "--json"]).json();
    let notes = v["dirs_not_scanned"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["dir"], "recording");
    assert_eq!(notes[0]["located"], true);
}

/// A tracked symlink (a raw file linked in from a data drive) is no warning;
/// an untracked symlink pointing at a tracked file is reported; apply acts on
/// neither.
#[test]
fn tracked_symlinks_are_quiet_and_an_untracked_one_to_a_tracked_file_is_reported() {
    let p = Private::new("links", 107);
    let sb = p.sandbox("");
    let raw = p.base().join("raw");
    // The lab layout: the NWB file on a data drive, linked into raw, with its rows.
    let drive = p.root.path().join("outside/drive.nwb");
    std::fs::write(&drive, b"raw data on another drive").unwrap();
    let link = raw.join("drive20240101_.nwb");
    std::os::unix::fs::symlink(&drive, &link).unwrap();
    let h = hex16(spyglass_cleanup::inventory::filepath_hash(
        "drive20240101_.nwb",
    ));
    let mut a = admin();
    sql(
        &mut a,
        &format!(
            "INSERT INTO `{}`.`~external_raw` (hash, size, filepath, contents_hash) VALUES (X'{h}', 25, 'drive20240101_.nwb', NULL)",
            p.db("common_nwbfile")
        ),
    );
    sql(
        &mut a,
        &format!(
            "INSERT INTO `{}`.`nwbfile` VALUES ('drive20240101_.nwb', X'{h}')",
            p.db("common_nwbfile")
        ),
    );
    // An untracked alias of a tracked raw file, inside the store.
    let alias = raw.join("alias_of_j16.nwb");
    std::os::unix::fs::symlink("j1620210710_.nwb", &alias).unwrap();
    let scan = sb.run(&["cleanup", "scan", "--json"]);
    scan.assert_code(1);
    let v = scan.json();
    let outside: Vec<&str> = v["symlinks_outside"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        !outside.iter().any(|l| l.ends_with("drive20240101_.nwb")),
        "a tracked symlink is no warning: {outside:?}"
    );
    assert!(
        outside.iter().any(|l| l.ends_with("links/escape.nwb")),
        "the untracked one pointing outside still is: {outside:?}"
    );
    let to_tracked = v["symlinks_to_tracked"].as_array().unwrap();
    assert_eq!(to_tracked.len(), 1, "{v:#}");
    assert_eq!(to_tracked[0]["link"], alias.display().to_string());
    assert!(to_tracked[0]["target"]
        .as_str()
        .unwrap()
        .ends_with("raw/j1620210710_.nwb"));
    assert_eq!(
        count(&v, "dangling"),
        p.summary.planted.dangling,
        "the link counts as present"
    );
    let human = sb.run(&["cleanup", "scan"]);
    assert!(
        human
            .stdout
            .contains("untracked symlink points at a tracked file (left alone)"),
        "{}",
        human.stdout
    );
    assert!(!human.stdout.contains("drive20240101_"), "{}", human.stdout);
    sb.run(&["cleanup", "apply", "--yes", "--json"])
        .assert_code(0);
    assert_eq!(
        std::fs::read_link(&alias).unwrap(),
        Path::new("j1620210710_.nwb")
    );
    assert_eq!(std::fs::read_link(&link).unwrap(), drive);
    assert_eq!(std::fs::read(&drive).unwrap(), b"raw data on another drive");
}

/// `unused_external` rows go in bulk (per table and batch: one query asks
/// which are still unused, one saves them, one transaction deletes them),
/// not a round of catalog reads per row. Prints the rate.
#[test]
fn unused_external_rows_are_applied_in_bulk() {
    use spyglass_cleanup::apply::{self, ApplyOptions, Disposal};
    let ns = "cl_bulkdel_";
    let lab = RaceLab::new(ns, 0, 3000, 0);
    let (setup, opts) = lab.setup(ns);
    let mut session = admin();
    let s = spyglass_cleanup::scan::scan(&mut session, &setup, &opts).unwrap();
    let aopts = ApplyOptions {
        only: vec![spyglass_cleanup::Class::UnusedExternal],
        min_age: std::time::Duration::ZERO,
        disposal: Disposal::Quarantine(lab.quarantine()),
        max_fraction: 1.0,
        ..ApplyOptions::default()
    };
    let selected = apply::select(&s, &aopts);
    assert_eq!(selected.len(), 3000);
    let t = std::time::Instant::now();
    let rep = apply::apply(&mut session, &s, &setup, &aopts, &selected, &mut |_, _| {}).unwrap();
    let secs = t.elapsed().as_secs_f64();
    // The one second of the final check is not per item.
    let rate = 3000.0 / (secs - apply::SETTLE.as_secs_f64()).max(0.001);
    eprintln!(
        "unused_external [{}]: 3000 rows with their files in {secs:.2} s ({rate:.0} items/s besides the final check), window {:.1} ms",
        server().flavor,
        rep.window_ms
    );
    assert_eq!(rep.done().count(), 3000, "{:?}", rep.skipped().next());
    let mut a = admin();
    for db in &lab.schemas {
        let n: u64 = a
            .conn()
            .query_first(format!("SELECT COUNT(*) FROM `{db}`.`~external_analysis`"))
            .unwrap()
            .unwrap();
        assert_eq!(n, 100, "{db}: only the referenced rows are left");
    }
    assert_eq!(lab.accounted(rep.run.as_deref()), 3000);
    lab.drop_schemas();
}

/// `--delete` keeps the same promise: files wait under a hidden name beside
/// themselves until the run's last check, one a row names by then goes back,
/// the rest are deleted and no hidden name is left behind.
#[test]
fn delete_puts_back_what_a_row_names_and_leaves_no_staged_file() {
    use spyglass_cleanup::apply::{self, ApplyOptions, Disposal};
    let ns = "cl_del_";
    let lab = RaceLab::new(ns, 20, 3, 0);
    let (setup, opts) = lab.setup(ns);
    let mut session = admin();
    let s = spyglass_cleanup::scan::scan(&mut session, &setup, &opts).unwrap();
    let aopts = ApplyOptions {
        min_age: std::time::Duration::ZERO,
        disposal: Disposal::Delete,
        max_fraction: 1.0,
        ..ApplyOptions::default()
    };
    let selected = apply::select(&s, &aopts);
    let first = selected
        .iter()
        .position(|&n| s.items[n].class == spyglass_cleanup::Class::Untracked)
        .unwrap();
    let item = s.items[selected[first]].clone();
    let mut writer = admin();
    let mut inserted = false;
    let mut progress = |done: usize, _: usize| {
        if done > first && !inserted {
            inserted = true;
            assert!(!item.path.as_ref().unwrap().exists(), "staged away");
            let h = hex16(spyglass_cleanup::inventory::filepath_hash(&item.rel));
            sql(
                &mut writer,
                &format!(
                    "INSERT INTO `{}`.`~external_analysis` (hash, size, filepath) VALUES (X'{h}', 1, '{}')",
                    lab.schemas[1], item.rel
                ),
            );
        }
    };
    let rep = apply::apply(&mut session, &s, &setup, &aopts, &selected, &mut progress).unwrap();
    assert!(rep.run.is_none(), "no quarantine run with --delete");
    assert_eq!(rep.returned().count(), 1);
    assert_eq!(
        std::fs::read(item.path.as_ref().unwrap()).unwrap(),
        race_bytes(&item.rel),
        "put back with its bytes"
    );
    for rel in lab.untracked.iter().filter(|r| **r != item.rel) {
        assert!(!lab.store().join(rel).exists(), "{rel} deleted");
    }
    for (_, rel) in &lab.unused {
        assert!(
            !lab.store().join(rel).exists(),
            "{rel} deleted with its row"
        );
    }
    let left: Vec<String> = snapshot(&lab.store())
        .into_keys()
        .filter(|k| k.contains(".spyglass-admin-"))
        .collect();
    assert!(left.is_empty(), "staged files left: {left:?}");
    assert!(lab.damaged().is_empty(), "{:#?}", lab.damaged());
    lab.drop_schemas();
}

/// The race with DataJoint itself as the writer: four Python processes
/// (datajoint==0.14.10, the virtual environment `cargo xtask itest` makes)
/// insert `AnalysisNwbfile` rows through a `filepath@analysis` attribute for
/// files already in the store, in three schemas, while `cleanup apply` runs.
#[test]
fn datajoint_inserting_while_apply_runs_never_names_a_moved_file() {
    use std::io::BufRead;
    let ns = "cl_djrace_";
    let lab = RaceLab::new(ns, 4000, 300, 0);
    let sb = lab.sandbox(ns);
    let list = lab.root.path().join("paths.txt");
    let mut rels: Vec<&str> = lab.untracked.iter().map(String::as_str).collect();
    rels.extend(lab.unused.iter().map(|(_, r)| r.as_str()));
    std::fs::write(&list, rels.join("\n")).unwrap();
    let stop = lab.root.path().join("stop");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("dj/race_writer.py");
    let home = tempfile::tempdir().unwrap();
    let s = server();
    let writers: Vec<std::process::Child> = (0..4)
        .map(|w| {
            std::process::Command::new(crate::support::python())
                .arg(&script)
                // Nothing of the developer's: no ~/.datajoint_config.json, no DJ_* of theirs.
                .current_dir(home.path())
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("HOME", home.path())
                .env("PYTHONDONTWRITEBYTECODE", "1")
                // As Spyglass sets it: DataJoint 0.14 gates filepath attributes behind it.
                .env("DJ_SUPPORT_FILEPATH_MANAGEMENT", "TRUE")
                .env(
                    "SPYGLASS_RACE_TLS",
                    if s.flavor == "mysql" {
                        "default"
                    } else {
                        "off"
                    },
                )
                .env("DJ_HOST", &s.host)
                .env("DJ_PORT", s.port.to_string())
                .env("DJ_USER", &s.user)
                .env("DJ_PASS", "")
                .env("SPYGLASS_RACE_STORE", lab.store())
                .env("SPYGLASS_RACE_SCHEMAS", lab.schemas.join(","))
                .env("SPYGLASS_RACE_PATHS", &list)
                .env("SPYGLASS_RACE_STOP", &stop)
                .env("SPYGLASS_RACE_SEED", (w + 1).to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start the DataJoint writer: {e}"))
        })
        .collect();
    let unix = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    // DataJoint takes a while to import and connect: apply starts once every
    // writer is inserting (some rows land before the run).
    let mut writers: Vec<(
        std::process::Child,
        std::io::BufReader<std::process::ChildStdout>,
    )> = writers
        .into_iter()
        .map(|mut w| {
            let mut r = std::io::BufReader::new(w.stdout.take().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            assert!(
                line.contains("ready"),
                "the DataJoint writer did not start: {line}"
            );
            (w, r)
        })
        .collect();
    // Their lines are read as they come (a full pipe would stall them).
    let writers: Vec<(std::process::Child, std::thread::JoinHandle<Vec<String>>)> = writers
        .drain(..)
        .map(|(w, r)| {
            (
                w,
                std::thread::spawn(move || r.lines().map(|l| l.unwrap()).collect()),
            )
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let t0 = unix();
    let out = sb.run(&[
        "cleanup",
        "apply",
        "--yes",
        "--min-age",
        "0s",
        "--max-fraction",
        "1",
        "--json",
    ]);
    let t1 = unix();
    std::fs::write(&stop, b"").unwrap();
    let mut during = 0;
    let mut total = 0;
    for (w, r) in writers {
        let lines: Vec<String> = r.join().unwrap();
        let o = w.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "the DataJoint writer failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        for line in lines {
            let v: Value = serde_json::from_str(&line).unwrap();
            if v.get("ok").is_some() {
                eprintln!("DataJoint writer: {v}");
            }
            if let Some(t) = v["t"].as_f64() {
                total += 1;
                if t >= t0 && t <= t1 {
                    during += 1;
                }
            }
        }
    }
    assert!(
        out.code == 0 || out.code == 1,
        "apply ran: {}\n{}",
        out.stdout,
        out.stderr
    );
    let a = out.json();
    let returned = a["returned"].as_array().unwrap().len();
    let run = a["run"].as_str().map(PathBuf::from);
    let damaged = lab.damaged();
    let moved = lab.accounted(run.as_deref());
    let recorded = run
        .as_deref()
        .map(|r| {
            spyglass_cleanup::quarantine::read_run(r)
                .unwrap()
                .returned
                .len()
        })
        .unwrap_or(0);
    eprintln!(
        "race, DataJoint writers [{}]: apply {:.2} s, DataJoint rows {total}, committed during apply {during}, \
         items moved {moved}, returned {returned}, batch window {:.1} ms, rows damaged {}",
        s.flavor,
        t1 - t0,
        a["window_ms"].as_f64().unwrap_or(-1.0),
        damaged.len()
    );
    assert!(damaged.is_empty(), "rows name missing files: {damaged:#?}");
    assert!(during > 0, "DataJoint inserted while apply ran");
    assert!(moved > 500, "apply moved files: {moved}");
    assert_eq!(recorded, returned, "every returned item is in the manifest");
    lab.drop_schemas();
}

/// `[cleanup.stores.NAME]`: a store's own grace period keeps raw files
/// waiting to be ingested out of quarantine; `exclude` leaves a store alone
/// entirely; a rule naming no configured store makes apply refuse. Proven
/// on disk: the raw files are still where they were.
#[test]
fn per_store_rules_keep_raw_files_waiting_to_be_ingested() {
    let p = Private::new("stores", 108);
    let raw = p.base().join("raw");
    // A raw file copied in three days ago, not ingested yet: no row names it.
    let waiting = raw.join("waiting_for_ingest_20261129.nwb");
    std::fs::write(&waiting, b"raw nwb bytes").unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&waiting)
        .unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86400))
        .unwrap();
    drop(f);
    let stray = raw.join("stray_copy_of_j16.nwb");
    assert!(stray.is_file(), "the fixture plants an untracked raw file");
    let raw_before = snapshot(&raw);
    let raw_listed = |out: &crate::support::Outcome| {
        out.stdout
            .lines()
            .filter(|l| l.contains(&*raw.to_string_lossy()))
            .count()
    };

    // Without a rule both raw files are untracked candidates (older than 24 h).
    let plain = p.sandbox("");
    let out = plain.run(&["cleanup", "scan", "--list"]);
    out.assert_code(1);
    assert_eq!(raw_listed(&out), 2, "{}", out.stdout);

    // A typo in the store's name: scan reports it, apply refuses, nothing moves.
    let typo = p.sandbox("[cleanup.stores.rwa]\nmin_age = \"30d\"\n");
    let out = typo.run(&["cleanup", "scan", "--json"]);
    out.assert_code(1);
    let problems = out.json()["problems"].to_string();
    assert!(
        problems.contains("[cleanup.stores.rwa] names no configured store"),
        "{problems}"
    );
    let out = typo.run(&["cleanup", "apply", "--yes"]);
    out.assert_code(2).assert_clean_error();
    assert!(out.stderr.contains("rwa"), "{}", out.stderr);
    assert_eq!(snapshot(&raw), raw_before);

    // min_age = "30d" for raw: both files are young there, shown in the report.
    let slow = p.sandbox("[cleanup.stores.raw]\nmin_age = \"30d\"\n");
    let out = slow.run(&["cleanup", "scan", "--json"]);
    out.assert_code(1);
    let v = out.json();
    let raw_root = v["roots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["label"] == "store raw")
        .unwrap_or_else(|| panic!("store raw scanned: {v:#}"))
        .clone();
    assert_eq!(raw_root["min_age_seconds"], 30 * 86400, "{raw_root:#}");
    assert_eq!(raw_root["classes"]["untracked"]["count"], 0, "{raw_root:#}");
    let analysis_root = v["roots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["label"] == "store analysis")
        .unwrap();
    assert!(
        analysis_root["min_age_seconds"].is_null(),
        "{analysis_root:#}"
    );
    assert_eq!(
        analysis_root["classes"]["untracked"]["count"],
        p.summary.planted.untracked - 1,
        "the analysis store keeps the default 24 h: {analysis_root:#}"
    );
    let human = slow.run(&["cleanup", "scan"]);
    assert!(
        human
            .stdout
            .contains("grace period 30days, [cleanup.stores] min_age"),
        "{}",
        human.stdout
    );
    // --min-age on the command line changes the default, not the store's own.
    let out = slow.run(&["cleanup", "scan", "--list", "--min-age", "1s"]);
    assert_eq!(raw_listed(&out), 0, "{}", out.stdout);

    // apply: the analysis store is cleaned, the raw files stay.
    let out = slow.run(&["cleanup", "apply", "--yes", "--json"]);
    out.assert_code(0);
    let a = out.json();
    assert_eq!(
        a["done"]["untracked"]["count"].as_u64().unwrap(),
        p.summary.planted.untracked - 1,
        "{a:#}"
    );
    assert!(waiting.is_file() && stray.is_file());
    assert_eq!(snapshot(&raw), raw_before);

    // exclude = true: raw is not scanned at all, and apply leaves it alone
    // even though its files are older than the default grace period.
    let hands_off = p.sandbox("[cleanup.stores.raw]\nexclude = true\n");
    let out = hands_off.run(&["cleanup", "scan", "--json", "--list"]);
    let v = out.json();
    assert!(
        v["roots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["label"] != "store raw"),
        "{v:#}"
    );
    let not_scanned = v["not_scanned"].to_string();
    assert!(
        not_scanned.contains("raw") && not_scanned.contains("exclude = true"),
        "{not_scanned}"
    );
    assert!(
        !v["items"].to_string().contains(&*raw.to_string_lossy()),
        "{:#}",
        v["items"]
    );
    let out = hands_off.run(&["cleanup", "apply", "--yes", "--json"]);
    assert!(out.code == 0 || out.code == 1, "{out:?}");
    assert!(waiting.is_file() && stray.is_file());
    assert_eq!(snapshot(&raw), raw_before);
}

/// An account that may read but not delete: apply refuses before the first
/// move when the run would delete rows (`unused_external`), naming the
/// privilege and the schemas; files-only classes still run.
#[test]
fn apply_without_delete_is_refused_before_anything_moves() {
    let p = Private::new("nodelete", 109);
    crate::support::create_user("itcl_ro", "Ro-pw-5x", &["SELECT ON `%`.*"]);
    let mut sb = p.sandbox("");
    sb.env("DJ_USER", "itcl_ro").env("DJ_PASS", "Ro-pw-5x");
    let before = snapshot(&p.base());
    let out = sb.run(&["cleanup", "apply", "--yes"]);
    out.assert_code(2).assert_clean_error();
    assert!(
        out.stderr.contains("privileges guard")
            && out.stderr.contains("lacks DELETE on")
            && out.stderr.contains(&p.db("")),
        "{}",
        out.stderr
    );
    assert_eq!(snapshot(&p.base()), before, "nothing moved");
    assert!(
        !p.quarantine().exists() || std::fs::read_dir(p.quarantine()).unwrap().next().is_none()
    );
    // Files only: no row is deleted, so the account may.
    let out = sb.run(&["cleanup", "apply", "--yes", "--json", "--only", "untracked"]);
    out.assert_code(0);
    assert_eq!(
        out.json()["done"]["untracked"]["count"].as_u64().unwrap(),
        p.summary.planted.untracked
    );
    let mut a = admin();
    sql(&mut a, "DROP USER IF EXISTS 'itcl_ro'@'%'");
}
