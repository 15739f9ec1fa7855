//! Pure aggregation: from table sizes, file references and history points
//! to the report's numbers. No I/O; the tests below are the specification.

use std::collections::{BTreeMap, BTreeSet};

use spyglass_backup::manifest::{FileKind, Manifest};

use crate::model::{
    GroupKind, GroupUsage, HistoryRecord, Runway, SchemaUsage, Sharing, Storage, StoreUsage,
    TableUsage,
};

/// One table's size, from `information_schema.TABLES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSize {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// `TABLE_ROWS`.
    pub rows: u64,
    /// `DATA_LENGTH`.
    pub data_bytes: u64,
    /// `INDEX_LENGTH`.
    pub index_bytes: u64,
}

/// A file a schema's `~external_<store>` rows name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// Store.
    pub store: String,
    /// Path relative to the store.
    pub rel: String,
    /// The schema whose rows name it.
    pub schema: String,
    /// Its size on disk; `None` when it is missing.
    pub size: Option<u64>,
}

/// How many of the largest tables the report lists.
pub const TOP_TABLES: usize = 15;

/// The group a schema belongs to: the first shared prefix `p` with the
/// schema named `p_...` (a module), else the text before the first `_` (a
/// user's own prefix, as DataJoint/Spyglass name them), else the schema.
pub fn group_of(schema: &str, shared_prefixes: &[String]) -> (GroupKind, String) {
    if let Some(p) = shared_prefixes.iter().find(|p| {
        schema.len() > p.len() + 1
            && schema.starts_with(p.as_str())
            && schema.as_bytes()[p.len()] == b'_'
    }) {
        return (GroupKind::Module, p.clone());
    }
    match schema.split_once('_') {
        Some((user, _)) if !user.is_empty() => (GroupKind::User, user.to_owned()),
        _ => (GroupKind::Other, schema.to_owned()),
    }
}

/// Storage per schema, group, sharing set and store. `stores` are the
/// stores' (name, location) pairs; `users` the login accounts' user names.
/// A file several schemas name counts once in every total above the
/// schema (group, store, overall) and shows in [`Storage::sharing`].
pub fn storage(
    tables: &[TableSize],
    files: &[FileRef],
    shared_prefixes: &[String],
    users: &BTreeSet<String>,
    stores: &[(String, String)],
) -> Storage {
    let mut schemas: BTreeMap<String, SchemaUsage> = BTreeMap::new();
    let entry = |schemas: &mut BTreeMap<String, SchemaUsage>, s: &str| -> () {
        if !schemas.contains_key(s) {
            let (group_kind, group) = group_of(s, shared_prefixes);
            schemas.insert(
                s.to_owned(),
                SchemaUsage {
                    schema: s.to_owned(),
                    group_kind,
                    group,
                    tables: 0,
                    data_bytes: 0,
                    index_bytes: 0,
                    files: 0,
                    file_bytes: 0,
                    shared_file_bytes: 0,
                    missing_files: 0,
                },
            );
        }
    };
    for t in tables {
        entry(&mut schemas, &t.schema);
        if let Some(s) = schemas.get_mut(&t.schema) {
            s.tables += 1;
            s.data_bytes += t.data_bytes;
            s.index_bytes += t.index_bytes;
        }
    }
    // Each distinct file: its size and the schemas naming it.
    // (store, path) -> (size, schemas naming it)
    // (Only sums are taken over it, so its order does not matter: hashed.
    // Names are a sorted, deduplicated Vec: almost always one.)
    type Distinct<'a> = std::collections::HashMap<(&'a str, &'a str), (Option<u64>, Vec<&'a str>)>;
    let mut distinct: Distinct = Distinct::with_capacity(files.len());
    for f in files {
        let e = distinct
            .entry((f.store.as_str(), f.rel.as_str()))
            .or_insert((f.size, Vec::new()));
        if let Err(at) = e.1.binary_search(&f.schema.as_str()) {
            e.1.insert(at, f.schema.as_str());
        }
    }
    let mut store_usage: BTreeMap<String, StoreUsage> = stores
        .iter()
        .map(|(name, loc)| {
            (
                name.clone(),
                StoreUsage {
                    store: name.clone(),
                    location: loc.clone(),
                    files: 0,
                    file_bytes: 0,
                    missing_files: 0,
                    volume: None,
                },
            )
        })
        .collect();
    let mut sharing: BTreeMap<Vec<String>, (u64, u64)> = BTreeMap::new();
    let mut group_files: BTreeMap<(GroupKind, String), (u64, u64)> = BTreeMap::new();
    let (mut total_files, mut total_bytes) = (0u64, 0u64);
    // Files only one schema names (nearly all): (files, bytes) per schema.
    let mut solo_files: std::collections::HashMap<&str, (u64, u64)> =
        std::collections::HashMap::new();
    for ((store, _), (size, names)) in &distinct {
        let su = store_usage
            .entry((*store).to_owned())
            .or_insert_with(|| StoreUsage {
                store: (*store).to_owned(),
                location: String::new(),
                files: 0,
                file_bytes: 0,
                missing_files: 0,
                volume: None,
            });
        let Some(size) = *size else {
            su.missing_files += 1;
            for n in names {
                entry(&mut schemas, n);
                if let Some(s) = schemas.get_mut(*n) {
                    s.missing_files += 1;
                }
            }
            continue;
        };
        su.files += 1;
        su.file_bytes += size;
        total_files += 1;
        total_bytes += size;
        if let [only] = names.as_slice() {
            // One schema names it: its and its group's counts, folded in below.
            let e = solo_files.entry(*only).or_default();
            e.0 += 1;
            e.1 += size;
            continue;
        }
        let mut groups: Vec<(GroupKind, &str)> = Vec::new();
        for n in names {
            entry(&mut schemas, n);
            if let Some(s) = schemas.get_mut(*n) {
                s.files += 1;
                s.file_bytes += size;
                if names.len() > 1 {
                    s.shared_file_bytes += size;
                }
            }
        }
        for n in names {
            if let Some(s) = schemas.get(*n) {
                let g = (s.group_kind, s.group.as_str());
                if !groups.contains(&g) {
                    groups.push(g);
                }
            }
        }
        for (kind, name) in groups {
            let key = (kind, name.to_owned());
            match group_files.get_mut(&key) {
                Some(e) => {
                    e.0 += 1;
                    e.1 += size;
                }
                None => {
                    group_files.insert(key, (1, size));
                }
            }
        }
        if names.len() > 1 {
            let e = sharing
                .entry(names.iter().map(|s| (*s).to_owned()).collect())
                .or_default();
            e.0 += 1;
            e.1 += size;
        }
    }
    for (n, (count, bytes)) in solo_files {
        entry(&mut schemas, n);
        if let Some(s) = schemas.get_mut(n) {
            s.files += count;
            s.file_bytes += bytes;
            let e = group_files
                .entry((s.group_kind, s.group.clone()))
                .or_default();
            e.0 += count;
            e.1 += bytes;
        }
    }
    let mut groups: BTreeMap<(GroupKind, String), GroupUsage> = BTreeMap::new();
    for s in schemas.values() {
        let key = (s.group_kind, s.group.clone());
        let g = groups.entry(key.clone()).or_insert_with(|| GroupUsage {
            kind: s.group_kind,
            name: s.group.clone(),
            schemas: 0,
            db_bytes: 0,
            files: 0,
            file_bytes: 0,
            account_exists: s.group_kind == GroupKind::User && users.contains(&s.group),
        });
        g.schemas += 1;
        g.db_bytes += s.data_bytes + s.index_bytes;
    }
    for (k, (n, b)) in group_files {
        if let Some(g) = groups.get_mut(&k) {
            g.files = n;
            g.file_bytes = b;
        }
    }
    let mut schemas: Vec<SchemaUsage> = schemas.into_values().collect();
    schemas.sort_by(|a, b| {
        let ta = a.data_bytes + a.index_bytes + a.file_bytes;
        let tb = b.data_bytes + b.index_bytes + b.file_bytes;
        tb.cmp(&ta).then(a.schema.cmp(&b.schema))
    });
    let mut groups: Vec<GroupUsage> = groups.into_values().collect();
    groups.sort_by(|a, b| {
        (b.db_bytes + b.file_bytes)
            .cmp(&(a.db_bytes + a.file_bytes))
            .then(a.kind.cmp(&b.kind))
            .then(a.name.cmp(&b.name))
    });
    let mut sharing: Vec<Sharing> = sharing
        .into_iter()
        .map(|(schemas, (files, bytes))| Sharing {
            schemas,
            files,
            bytes,
        })
        .collect();
    sharing.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.schemas.cmp(&b.schemas)));
    let mut top: Vec<TableUsage> = tables
        .iter()
        .map(|t| TableUsage {
            schema: t.schema.clone(),
            table: t.table.clone(),
            rows: t.rows,
            data_bytes: t.data_bytes,
            index_bytes: t.index_bytes,
        })
        .collect();
    top.sort_by(|a, b| {
        (b.data_bytes + b.index_bytes)
            .cmp(&(a.data_bytes + a.index_bytes))
            .then((&a.schema, &a.table).cmp(&(&b.schema, &b.table)))
    });
    top.truncate(TOP_TABLES);
    Storage {
        db_bytes: schemas.iter().map(|s| s.data_bytes + s.index_bytes).sum(),
        files: total_files,
        file_bytes: total_bytes,
        schemas,
        groups,
        sharing,
        stores: store_usage.into_values().collect(),
        top_tables: top,
        database_volume: None,
        database_volume_note: None,
        notes: Vec::new(),
    }
}

/// The history point of a backup set: its uncompressed dump bytes per
/// schema (data files only). All an old night left behind when the
/// report's own history does not reach back that far.
pub fn manifest_record(m: &Manifest) -> Option<HistoryRecord> {
    let unix = parse_rfc3339(&m.started)?;
    let mut schema_bytes: BTreeMap<String, u64> =
        m.schemas.iter().map(|s| (s.clone(), 0)).collect();
    for f in &m.files {
        if f.kind == FileKind::Data {
            if let Some(s) = &f.schema {
                *schema_bytes.entry(s.clone()).or_default() += f.raw_bytes;
            }
        }
    }
    Some(HistoryRecord {
        at: m.started.clone(),
        unix,
        source: "manifest".into(),
        schema_bytes,
        store_bytes: BTreeMap::new(),
    })
}

/// `YYYY-MM-DDTHH:MM:SSZ` (what the tool writes) to Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, se) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

/// The UTC day of Unix seconds.
pub fn day_of(unix: i64) -> i64 {
    unix.div_euclid(86_400)
}

/// The series the page draws: every history record, plus a manifest point
/// for each night (UTC day) no history record covers. Oldest first.
pub fn series(history: &[HistoryRecord], manifests: &[HistoryRecord]) -> Vec<HistoryRecord> {
    let days: BTreeSet<i64> = history.iter().map(|r| day_of(r.unix)).collect();
    let mut out: Vec<HistoryRecord> = history.to_vec();
    let mut seen = BTreeSet::new();
    // The newest set of a night stands for it.
    let mut ms: Vec<&HistoryRecord> = manifests.iter().collect();
    ms.sort_by_key(|r| std::cmp::Reverse(r.unix));
    for m in ms {
        let d = day_of(m.unix);
        if !days.contains(&d) && seen.insert(d) {
            out.push(m.clone());
        }
    }
    out.sort_by(|a, b| a.unix.cmp(&b.unix).then(a.source.cmp(&b.source)));
    out
}

/// Least-squares slope of `(unix seconds, bytes)`, in bytes per day; `None`
/// with fewer than two points or all at one time.
pub fn bytes_per_day(points: &[(i64, u64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let t0 = points[0].0 as f64;
    let xs: Vec<f64> = points
        .iter()
        .map(|p| (p.0 as f64 - t0) / 86_400.0)
        .collect();
    let ys: Vec<f64> = points.iter().map(|p| p.1 as f64).collect();
    let mx = xs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    if sxx <= f64::EPSILON {
        return None;
    }
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    Some(sxy / sxx)
}

/// The runway of one volume from a series of points: the rate, and the
/// days until `free` is used up when it grows.
pub fn runway(what: &str, source: &str, points: &[(i64, u64)], free: Option<u64>) -> Runway {
    let rate = bytes_per_day(points);
    let bytes = points.last().map(|p| p.1).unwrap_or(0);
    let (days_left, note) = match (rate, free) {
        (None, _) => (
            None,
            Some(format!(
                "{} point(s) in the history: at least two nights are needed for a rate",
                points.len()
            )),
        ),
        (Some(_), None) => (None, Some("free space not known on this machine".into())),
        (Some(r), Some(_)) if r <= 0.0 => (None, Some("not growing".into())),
        (Some(r), Some(f)) => (Some(f as f64 / r), None),
    };
    Runway {
        what: what.to_owned(),
        source: source.to_owned(),
        points: points.len() as u64,
        bytes,
        bytes_per_day: rate,
        free_bytes: free,
        days_left,
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes() -> Vec<String> {
        ["common", "lfp", "spikesorting", "position"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn t(schema: &str, table: &str, data: u64, index: u64) -> TableSize {
        TableSize {
            schema: schema.into(),
            table: table.into(),
            rows: 1,
            data_bytes: data,
            index_bytes: index,
        }
    }

    fn f(store: &str, rel: &str, schema: &str, size: Option<u64>) -> FileRef {
        FileRef {
            store: store.into(),
            rel: rel.into(),
            schema: schema.into(),
            size,
        }
    }

    #[test]
    fn prefixes_group_modules_users_and_others() {
        let p = prefixes();
        let cases = [
            ("common_lab", GroupKind::Module, "common"),
            ("common_nwbfile", GroupKind::Module, "common"),
            ("lfp_v1", GroupKind::Module, "lfp"),
            ("spikesorting_recording", GroupKind::Module, "spikesorting"),
            // `lfpx_` is not `lfp_`: a user named lfpx.
            ("lfpx_test", GroupKind::User, "lfpx"),
            // The prefix alone is not a schema of the module.
            ("common", GroupKind::Other, "common"),
            ("alice_nwbfile", GroupKind::User, "alice"),
            ("alice_scratch", GroupKind::User, "alice"),
            ("bob_analysis", GroupKind::User, "bob"),
            ("scratch", GroupKind::Other, "scratch"),
            ("_hidden", GroupKind::Other, "_hidden"),
        ];
        for (schema, kind, group) in cases {
            assert_eq!(group_of(schema, &p), (kind, group.to_owned()), "{schema}");
        }
    }

    #[test]
    fn a_file_shared_by_schemas_counts_once_above_the_schema() {
        let tables = vec![
            t("common_nwbfile", "nwbfile", 1000, 100),
            t("lfp_v1", "lfp", 500, 50),
            t("alice_nwbfile", "a", 10, 0),
            t("alice_scratch", "b", 20, 0),
        ];
        let files = vec![
            // Named by three schemas in two groups and by both of alice's.
            f("analysis", "x/shared.nwb", "common_nwbfile", Some(4000)),
            f("analysis", "x/shared.nwb", "lfp_v1", Some(4000)),
            f("analysis", "x/shared.nwb", "alice_nwbfile", Some(4000)),
            f("analysis", "x/shared.nwb", "alice_scratch", Some(4000)),
            f("analysis", "y/own.nwb", "lfp_v1", Some(300)),
            f("raw", "r.nwb", "common_nwbfile", Some(7)),
            // Two of alice's schemas share one; it counts once for alice.
            f("analysis", "a/mine.nwb", "alice_nwbfile", Some(50)),
            f("analysis", "a/mine.nwb", "alice_scratch", Some(50)),
            f("analysis", "gone.nwb", "lfp_v1", None),
        ];
        let users: BTreeSet<String> = ["alice".to_string()].into();
        let stores = vec![
            ("analysis".to_string(), "/a".to_string()),
            ("raw".to_string(), "/r".to_string()),
        ];
        let s = storage(&tables, &files, &prefixes(), &users, &stores);
        assert_eq!(s.files, 4);
        assert_eq!(s.file_bytes, 4000 + 300 + 7 + 50);
        assert_eq!(s.db_bytes, 1000 + 100 + 500 + 50 + 10 + 20);
        let schema = |n: &str| s.schemas.iter().find(|x| x.schema == n).unwrap();
        assert_eq!(schema("common_nwbfile").file_bytes, 4007);
        assert_eq!(schema("common_nwbfile").shared_file_bytes, 4000);
        assert_eq!(schema("lfp_v1").file_bytes, 4300);
        assert_eq!(schema("lfp_v1").missing_files, 1);
        assert_eq!(schema("alice_scratch").files, 2);
        let group = |n: &str| s.groups.iter().find(|g| g.name == n).unwrap();
        assert_eq!(group("alice").kind, GroupKind::User);
        assert_eq!(group("alice").schemas, 2);
        assert_eq!(
            group("alice").files,
            2,
            "shared by both of alice's schemas: once"
        );
        assert_eq!(group("alice").file_bytes, 4050);
        assert!(group("alice").account_exists);
        assert_eq!(group("common").file_bytes, 4007);
        assert_eq!(group("lfp").db_bytes, 550);
        let store = |n: &str| s.stores.iter().find(|x| x.store == n).unwrap();
        assert_eq!(store("analysis").files, 3);
        assert_eq!(store("analysis").file_bytes, 4350);
        assert_eq!(store("analysis").missing_files, 1);
        assert_eq!(store("raw").file_bytes, 7);
        assert_eq!(
            s.sharing,
            vec![
                Sharing {
                    schemas: vec![
                        "alice_nwbfile".into(),
                        "alice_scratch".into(),
                        "common_nwbfile".into(),
                        "lfp_v1".into()
                    ],
                    files: 1,
                    bytes: 4000
                },
                Sharing {
                    schemas: vec!["alice_nwbfile".into(), "alice_scratch".into()],
                    files: 1,
                    bytes: 50
                },
            ]
        );
        // Largest first: common_nwbfile (1100 + 4007) before lfp_v1 (550 + 4300).
        assert_eq!(s.schemas[0].schema, "common_nwbfile");
        assert_eq!(s.top_tables[0].table, "nwbfile");
    }

    fn manifest(started: &str, per_schema: &[(&str, u64)]) -> Manifest {
        let files: Vec<serde_json::Value> = per_schema
            .iter()
            .flat_map(|(s, b)| {
                [
                    serde_json::json!({"path": format!("2-data/{s}/t.1.sql.gz"), "kind": "data",
                        "schema": s, "table": "t", "chunk": 1, "bytes": b / 4, "raw_bytes": b / 2,
                        "sha256": "00", "rows": 1}),
                    serde_json::json!({"path": format!("2-data/{s}/u.1.sql.gz"), "kind": "data",
                        "schema": s, "table": "u", "chunk": 1, "bytes": b / 4, "raw_bytes": b - b / 2,
                        "sha256": "00", "rows": 1}),
                    serde_json::json!({"path": format!("1-schema/{s}.sql.gz"), "kind": "schema",
                        "schema": s, "bytes": 10, "raw_bytes": 999, "sha256": "00", "rows": 0}),
                ]
            })
            .collect();
        let v = serde_json::json!({
            "format": 1, "tool_version": "0", "engine": "native", "label": "nightly",
            "server": {"flavor": "mariadb", "version": "10.11", "address": "x"},
            "snapshot": {"method": "none", "ddl_lock": "none", "binlog_file": null,
                "binlog_position": null, "gtid": null, "workers": 1},
            "started": started, "finished": started, "compression": {"method": "gzip", "level": 6},
            "encoding": "escaped", "max_statement_bytes": 1,
            "schemas": per_schema.iter().map(|p| p.0).collect::<Vec<_>>(),
            "tables": [], "files": files, "notes": []
        });
        Manifest::from_json(&v.to_string()).unwrap()
    }

    #[test]
    fn growth_from_a_series_of_manifests() {
        let ms: Vec<HistoryRecord> = [
            ("2026-11-28T02:00:00Z", 1000u64),
            ("2026-11-29T02:00:00Z", 1100),
            ("2026-11-30T02:00:00Z", 1200),
            ("2026-12-01T02:00:00Z", 1300),
        ]
        .iter()
        .map(|(at, b)| {
            manifest_record(&manifest(at, &[("a_x", b - 100), ("common_y", 100)])).unwrap()
        })
        .collect();
        // Schema files are not data: only the data files' raw bytes count.
        assert_eq!(ms[0].db_bytes(), 1000);
        assert_eq!(ms[0].schema_bytes["common_y"], 100);
        let s = series(&[], &ms);
        let points: Vec<(i64, u64)> = s.iter().map(|r| (r.unix, r.db_bytes())).collect();
        let rate = bytes_per_day(&points).unwrap();
        assert!((rate - 100.0).abs() < 1e-6, "{rate}");
        let r = runway("database", "manifest", &points, Some(5000));
        assert_eq!(r.bytes, 1300);
        assert!((r.days_left.unwrap() - 50.0).abs() < 1e-6, "{r:?}");
        // Not growing: no runway, and it says why.
        let flat = runway("database", "manifest", &[(0, 5), (86_400, 5)], Some(10));
        assert_eq!(flat.days_left, None);
        assert_eq!(flat.note.as_deref(), Some("not growing"));
        let one = runway("database", "report", &points[..1], Some(10));
        assert_eq!(one.bytes_per_day, None);
    }

    #[test]
    fn history_records_win_over_manifests_of_the_same_night() {
        let rec = |at: &str, source: &str, b: u64| HistoryRecord {
            at: at.into(),
            unix: parse_rfc3339(at).unwrap(),
            source: source.into(),
            schema_bytes: [("s".to_string(), b)].into(),
            store_bytes: BTreeMap::new(),
        };
        let history = vec![rec("2026-12-01T03:00:00Z", "report", 50)];
        let manifests = vec![
            rec("2026-11-30T02:00:00Z", "manifest", 10),
            rec("2026-11-30T14:00:00Z", "manifest", 20),
            rec("2026-12-01T02:00:00Z", "manifest", 30),
        ];
        let s = series(&history, &manifests);
        let got: Vec<(&str, u64)> = s
            .iter()
            .map(|r| (r.source.as_str(), r.db_bytes()))
            .collect();
        // One point per night: the newest set of 11-30, the report's record of 12-01.
        assert_eq!(got, vec![("manifest", 20), ("report", 50)]);
    }

    #[test]
    fn rfc3339_parses_to_unix_seconds() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-12-02T03:25:01Z"), Some(1_796_181_901));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
