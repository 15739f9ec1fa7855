//! The fixture the xtask built holds what it promises (checked from outside, with SQL and the disk).

use spyglass_db::mysql::prelude::Queryable;

use crate::support::{admin, fixture_root};

#[test]
fn hard_values_and_awkward_objects_exist() {
    let mut a = admin();
    let c = a.conn();
    let txt: Option<String> = c
        .query_first("SELECT txt FROM alice_scratch.hard_values WHERE id = 3")
        .unwrap()
        .flatten();
    let txt = txt.unwrap();
    assert!(txt.contains('\0') && txt.contains('🐭'), "{txt:?}");
    let nulls: Vec<(i32, Option<String>)> = c
        .query("SELECT id, txt FROM alice_scratch.hard_values WHERE id IN (4, 5, 6) ORDER BY id")
        .unwrap();
    assert_eq!(
        nulls,
        vec![
            (4, Some(String::new())),
            (5, Some("NULL".into())),
            (6, None)
        ]
    );
    let bin: Vec<u8> = c
        .query_first("SELECT bin FROM alice_scratch.hard_values WHERE id = 2")
        .unwrap()
        .unwrap();
    assert_eq!(bin, (0..=255u8).collect::<Vec<_>>());
    let tables: Vec<String> = c.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'bob_analysis' ORDER BY table_name").unwrap();
    for t in [
        "#weird table",
        "~tilde",
        "back`tick",
        "my table",
        "v_sessions",
        "legacy_myisam",
    ] {
        assert!(tables.iter().any(|x| x == t), "{t} missing from {tables:?}");
    }
    let triggers: u64 = c.query_first("SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = 'bob_analysis'").unwrap().unwrap();
    assert_eq!(triggers, 1);
    let cross_fk: u64 = c.query_first("SELECT COUNT(*) FROM information_schema.key_column_usage WHERE table_schema = 'bob_analysis' AND referenced_table_schema = 'common_session'").unwrap().unwrap();
    assert_eq!(cross_fk, 1);
    // Only the fixture's schemas: other tests build private copies on the same server.
    let ext_fks: u64 = c.query_first("SELECT COUNT(*) FROM information_schema.key_column_usage WHERE referenced_table_name LIKE '~external\\_%' AND table_schema IN ('common_nwbfile', 'alice_nwbfile', 'decoding_v1')").unwrap().unwrap();
    assert_eq!(
        ext_fks, 4,
        "nwbfile->raw, analysis_nwbfile->analysis (common, alice), decoding output->analysis"
    );
}

#[test]
fn planted_files_match_the_rows() {
    let mut a = admin();
    let root = fixture_root().join("spyglass");
    let rows: Vec<(String, String)> = a
        .conn()
        .query(
            "SELECT 'common_nwbfile', filepath FROM common_nwbfile.`~external_analysis` \
         UNION ALL SELECT 'alice_nwbfile', filepath FROM alice_nwbfile.`~external_analysis` \
         UNION ALL SELECT 'decoding_v1', filepath FROM decoding_v1.`~external_analysis`",
        )
        .unwrap();
    let present = rows
        .iter()
        .filter(|(_, p)| root.join("analysis").join(p).is_file())
        .count();
    let missing = rows.len() - present;
    // 8 common + 2 unused + 3 custom + 2 decoding; 2 dangling and 1 unused row have no file.
    assert_eq!((rows.len(), missing), (15, 3), "{rows:?}");
    let link = root.join("analysis/links/escape.nwb");
    let target = std::fs::read_link(&link).unwrap();
    assert!(
        !target.starts_with(&root),
        "the symlink escapes the store: {}",
        target.display()
    );
    let named: Vec<String> = a
        .conn()
        .query("SELECT sorting_path FROM spikesorting_sorting.__spike_sorting")
        .unwrap();
    assert!(named.iter().all(|p| std::path::Path::new(p).is_dir()));
    let on_disk = std::fs::read_dir(root.join("spikesorting"))
        .unwrap()
        .count();
    assert_eq!(on_disk, named.len() + 2, "two sorting folders no row names");
}
