//! The fixture's schemas, tables and rows.

use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::mysql::{Conn, Params, Value};
use spyglass_db::Session;

use crate::disk::{Downstream, Layout, PlannedFile, Role, RECORDINGS, SESSIONS, SORTINGS};
use crate::{FixtureError, Planted, Rng, SCHEMAS};

pub(crate) struct Built {
    pub tables: u64,
    pub blob_bytes: u64,
}

thread_local! {
    /// Prefix for every fixture schema name while [`build`] runs (see [`crate::create_namespaced`]).
    static NAMESPACE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// `sql` with every fixture schema name (always written backquoted) prefixed
/// by the namespace in force.
pub(crate) fn ns(sql: &str) -> String {
    NAMESPACE.with(|n| {
        let n = n.borrow();
        if n.is_empty() {
            return sql.to_owned();
        }
        let mut out = sql.to_owned();
        for db in SCHEMAS {
            out = out.replace(&format!("`{db}`"), &format!("`{n}{db}`"));
        }
        out
    })
}

pub(crate) fn with_namespace<T>(namespace: &str, f: impl FnOnce() -> T) -> T {
    NAMESPACE.with(|n| *n.borrow_mut() = namespace.to_owned());
    let out = f();
    NAMESPACE.with(|n| n.borrow_mut().clear());
    out
}

fn run(conn: &mut Conn, sql: &str) -> Result<(), FixtureError> {
    let sql = &ns(sql);
    conn.query_drop(sql).map_err(|source| FixtureError::Sql {
        statement: sql.to_owned(),
        source,
    })
}

fn exec<P: Into<Params>>(conn: &mut Conn, sql: &str, params: P) -> Result<(), FixtureError> {
    let sql = &ns(sql);
    conn.exec_drop(sql, params)
        .map_err(|source| FixtureError::Sql {
            statement: sql.to_owned(),
            source,
        })
}

/// DataJoint's `~external_<store>` declaration (datajoint-python 0.14 `external.py`).
fn external_table(db: &str, store: &str) -> String {
    format!(
        "CREATE TABLE `{db}`.`~external_{store}` (
  `hash` binary(16) NOT NULL COMMENT ':uuid:hash of contents (blob), of filename + contents (attach), or relative filepath (filepath)',
  `size` bigint unsigned NOT NULL COMMENT 'size of object in bytes',
  `attachment_name` varchar(255) DEFAULT NULL COMMENT 'the filename of an attachment',
  `filepath` varchar(1000) DEFAULT NULL COMMENT 'relative filepath or attachment filename',
  `contents_hash` binary(16) DEFAULT NULL COMMENT ':uuid:used for the filepath datatype',
  `timestamp` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP COMMENT 'automatic timestamp',
  PRIMARY KEY (`hash`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='external storage tracking'"
    )
}

fn log_table(db: &str) -> String {
    format!(
        "CREATE TABLE `{db}`.`~log` (
  `timestamp` timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  `version` varchar(12) NOT NULL COMMENT 'datajoint version',
  `user` varchar(255) NOT NULL COMMENT 'user@host',
  `host` varchar(255) NOT NULL DEFAULT '' COMMENT 'system hostname',
  `event` varchar(255) NOT NULL DEFAULT '' COMMENT 'event message',
  PRIMARY KEY (`timestamp`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='event logging table for `{db}`'"
    )
}

fn insert_external(
    conn: &mut Conn,
    db: &str,
    store: &str,
    f: &PlannedFile,
) -> Result<(), FixtureError> {
    exec(
        conn,
        &format!("INSERT INTO `{db}`.`~external_{store}` (hash, size, filepath, contents_hash) VALUES (?, ?, ?, ?)"),
        (f.hash.to_vec(), f.size, f.rel.clone(), f.hash.to_vec()),
    )
}

fn analysis_name(f: &PlannedFile) -> String {
    f.rel.rsplit('/').next().unwrap_or(&f.rel).to_owned()
}

pub(crate) fn build(
    session: &mut Session,
    rng: &mut Rng,
    blob_mb: u32,
    files: &[PlannedFile],
    layout: &Layout,
    planted: &mut Planted,
) -> Result<Built, FixtureError> {
    let conn = session.conn();
    run(conn, "SET SESSION foreign_key_checks = 0")?;
    for db in SCHEMAS {
        run(conn, &format!("DROP DATABASE IF EXISTS `{db}`"))?;
    }
    run(conn, "SET SESSION foreign_key_checks = 1")?;
    for db in SCHEMAS {
        run(
            conn,
            &format!("CREATE DATABASE `{db}` CHARACTER SET utf8mb4"),
        )?;
    }
    let mut tables = 0u64;
    let mut ddl = |conn: &mut Conn, sql: &str| -> Result<(), FixtureError> {
        if sql.starts_with("CREATE TABLE") {
            tables += 1;
        }
        run(conn, sql)
    };

    // common_nwbfile: raw files, analysis files, their stores.
    ddl(conn, &external_table("common_nwbfile", "raw"))?;
    ddl(conn, &external_table("common_nwbfile", "analysis"))?;
    ddl(conn, &log_table("common_nwbfile"))?;
    ddl(conn, "CREATE TABLE `common_nwbfile`.`nwbfile` (
  `nwb_file_name` varchar(64) NOT NULL COMMENT 'name of the NWB file',
  `nwb_file_abs_path` binary(16) NOT NULL COMMENT ':filepath@raw:',
  PRIMARY KEY (`nwb_file_name`),
  FOREIGN KEY (`nwb_file_abs_path`) REFERENCES `common_nwbfile`.`~external_raw` (`hash`) ON UPDATE RESTRICT ON DELETE RESTRICT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Table for holding the NWB files.'")?;
    ddl(conn, "CREATE TABLE `common_nwbfile`.`analysis_nwbfile` (
  `analysis_file_name` varchar(64) NOT NULL COMMENT 'name of the file',
  `nwb_file_name` varchar(64) NOT NULL COMMENT 'name of the NWB file',
  `analysis_file_abs_path` binary(16) NOT NULL COMMENT ':filepath@analysis:the full path to the file',
  `analysis_file_description` varchar(2000) NOT NULL DEFAULT '' COMMENT 'an optional description of this analysis',
  `analysis_parameters` longblob COMMENT 'additional relevant parameters',
  PRIMARY KEY (`analysis_file_name`),
  FOREIGN KEY (`nwb_file_name`) REFERENCES `common_nwbfile`.`nwbfile` (`nwb_file_name`) ON UPDATE CASCADE ON DELETE RESTRICT,
  FOREIGN KEY (`analysis_file_abs_path`) REFERENCES `common_nwbfile`.`~external_analysis` (`hash`) ON UPDATE RESTRICT ON DELETE RESTRICT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Table for holding the NWB files that contain results of analysis.'")?;

    // Shared module tables downstream of analysis files.
    ddl(conn, "CREATE TABLE `common_session`.`session` (
  `nwb_file_name` varchar(64) NOT NULL,
  `session_description` varchar(2000) NOT NULL,
  `session_start_time` datetime(6) NOT NULL,
  PRIMARY KEY (`nwb_file_name`),
  FOREIGN KEY (`nwb_file_name`) REFERENCES `common_nwbfile`.`nwbfile` (`nwb_file_name`) ON UPDATE CASCADE ON DELETE RESTRICT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")?;
    ddl(
        conn,
        "CREATE TABLE `common_lab`.`#lab_team` (
  `team_name` varchar(80) NOT NULL,
  `team_description` varchar(2000) NOT NULL DEFAULT '',
  PRIMARY KEY (`team_name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    )?;
    ddl(
        conn,
        "CREATE TABLE `common_lab`.`lab_member` (
  `lab_member_name` varchar(80) NOT NULL,
  `first_name` varchar(200) DEFAULT NULL,
  `last_name` varchar(200) DEFAULT NULL,
  `team_name` varchar(80) DEFAULT NULL,
  PRIMARY KEY (`lab_member_name`),
  FOREIGN KEY (`team_name`) REFERENCES `common_lab`.`#lab_team` (`team_name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    )?;
    ddl(conn, "CREATE TABLE `lfp_v1`.`__l_f_p_v1` (
  `lfp_id` int NOT NULL,
  `analysis_file_name` varchar(64) NOT NULL,
  `lfp_sampling_rate` float NOT NULL,
  `lfp` longblob NOT NULL COMMENT ':blob:int16 samples x channels',
  PRIMARY KEY (`lfp_id`),
  FOREIGN KEY (`analysis_file_name`) REFERENCES `common_nwbfile`.`analysis_nwbfile` (`analysis_file_name`) ON UPDATE CASCADE ON DELETE RESTRICT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")?;
    ddl(conn, &log_table("lfp_v1"))?;
    ddl(
        conn,
        "CREATE TABLE `position_v1`.`#position_params` (
  `params_name` varchar(80) NOT NULL,
  `params` json NOT NULL,
  PRIMARY KEY (`params_name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    )?;
    ddl(conn, "CREATE TABLE `position_v1`.`_position_info` (
  `pos_id` int NOT NULL,
  `analysis_file_name` varchar(64) NOT NULL,
  `params_name` varchar(80) NOT NULL,
  PRIMARY KEY (`pos_id`),
  FOREIGN KEY (`analysis_file_name`) REFERENCES `common_nwbfile`.`analysis_nwbfile` (`analysis_file_name`) ON UPDATE CASCADE ON DELETE RESTRICT,
  FOREIGN KEY (`params_name`) REFERENCES `position_v1`.`#position_params` (`params_name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")?;
    ddl(
        conn,
        "CREATE TABLE `spikesorting_recording`.`__spike_sorting_recording` (
  `recording_id` varchar(64) NOT NULL,
  `recording_path` varchar(1000) NOT NULL,
  PRIMARY KEY (`recording_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    )?;
    ddl(conn, "CREATE TABLE `spikesorting_sorting`.`__spike_sorting` (
  `sorting_id` varchar(64) NOT NULL,
  `recording_id` varchar(64) NOT NULL,
  `sorting_path` varchar(1000) NOT NULL,
  `time_of_sort` int NOT NULL,
  PRIMARY KEY (`sorting_id`),
  FOREIGN KEY (`recording_id`) REFERENCES `spikesorting_recording`.`__spike_sorting_recording` (`recording_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")?;
    ddl(conn, &external_table("decoding_v1", "analysis"))?;
    ddl(conn, "CREATE TABLE `decoding_v1`.`__decoding_output` (
  `decoding_id` int NOT NULL,
  `results_path` binary(16) NOT NULL COMMENT ':filepath@analysis:',
  PRIMARY KEY (`decoding_id`),
  FOREIGN KEY (`results_path`) REFERENCES `decoding_v1`.`~external_analysis` (`hash`) ON UPDATE RESTRICT ON DELETE RESTRICT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")?;

    // A user's custom AnalysisNwbfile (`<prefix>_nwbfile`) and a table downstream of it.
    ddl(conn, &external_table("alice_nwbfile", "analysis"))?;
    ddl(conn, "CREATE TABLE `alice_nwbfile`.`analysis_nwbfile` (
  `analysis_file_name` varchar(64) NOT NULL,
  `nwb_file_name` varchar(64) NOT NULL,
  `analysis_file_abs_path` binary(16) NOT NULL COMMENT ':filepath@analysis:',
  PRIMARY KEY (`analysis_file_name`),
  FOREIGN KEY (`nwb_file_name`) REFERENCES `common_nwbfile`.`nwbfile` (`nwb_file_name`),
  FOREIGN KEY (`analysis_file_abs_path`) REFERENCES `alice_nwbfile`.`~external_analysis` (`hash`) ON UPDATE RESTRICT ON DELETE RESTRICT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")?;
    ddl(conn, "CREATE TABLE `alice_scratch`.`_my_result` (
  `result_id` int NOT NULL,
  `analysis_file_name` varchar(64) NOT NULL,
  PRIMARY KEY (`result_id`),
  FOREIGN KEY (`analysis_file_name`) REFERENCES `alice_nwbfile`.`analysis_nwbfile` (`analysis_file_name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")?;

    // Values that break naive dumpers.
    ddl(
        conn,
        "CREATE TABLE `alice_scratch`.`hard_values` (
  `id` int NOT NULL,
  `txt` varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL,
  `bin` longblob,
  `doc` json DEFAULT NULL,
  `amount` decimal(30,10) DEFAULT NULL,
  `at` datetime(6) DEFAULT NULL,
  `flags` bit(10) DEFAULT NULL,
  `kind` enum('a','b','it''s') DEFAULT NULL,
  `f` float DEFAULT NULL,
  `d` double DEFAULT NULL,
  `big` bigint unsigned DEFAULT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    )?;

    // Awkward names, a cross-schema FK, a view, a trigger, a non-InnoDB table.
    ddl(
        conn,
        "CREATE TABLE `bob_analysis`.`my table` (
  `nwb_file_name` varchar(64) NOT NULL,
  `note` varchar(255) NOT NULL DEFAULT '',
  `n_edits` int NOT NULL DEFAULT 0,
  PRIMARY KEY (`nwb_file_name`),
  FOREIGN KEY (`nwb_file_name`) REFERENCES `common_session`.`session` (`nwb_file_name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    )?;
    ddl(conn, "CREATE TABLE `bob_analysis`.`#weird table` (`k` int NOT NULL, `v` varchar(20) NOT NULL, PRIMARY KEY (`k`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")?;
    ddl(
        conn,
        "CREATE TABLE `bob_analysis`.`~tilde` (`k` int NOT NULL, PRIMARY KEY (`k`)) ENGINE=InnoDB",
    )?;
    ddl(conn, "CREATE TABLE `bob_analysis`.`back``tick` (`we``ird col` int NOT NULL, PRIMARY KEY (`we``ird col`)) ENGINE=InnoDB")?;
    ddl(conn, "CREATE TABLE `bob_analysis`.`legacy_myisam` (`k` int NOT NULL, `v` text, PRIMARY KEY (`k`)) ENGINE=MyISAM DEFAULT CHARSET=utf8mb4")?;
    ddl(conn, "CREATE TABLE `bob_analysis`.`no_pk_log` (`at` datetime NOT NULL, `msg` varchar(255) NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")?;
    run(conn, "CREATE VIEW `bob_analysis`.`v_sessions` AS SELECT s.nwb_file_name, s.session_description, t.note FROM `common_session`.`session` s LEFT JOIN `bob_analysis`.`my table` t USING (nwb_file_name)")?;
    run(conn, "CREATE TRIGGER `bob_analysis`.`count_edits` BEFORE UPDATE ON `bob_analysis`.`my table` FOR EACH ROW SET NEW.n_edits = OLD.n_edits + 1")?;

    // Rows.
    let ext = |f: &PlannedFile| f.hash.to_vec();
    for f in files.iter().filter(|f| matches!(f.role, Role::Raw(_))) {
        insert_external(conn, "common_nwbfile", "raw", f)?;
        exec(
            conn,
            "INSERT INTO `common_nwbfile`.`nwbfile` VALUES (?, ?)",
            (f.rel.clone(), ext(f)),
        )?;
        exec(
            conn,
            "INSERT INTO `common_session`.`session` VALUES (?, ?, ?)",
            (
                f.rel.clone(),
                format!("session of {}", f.rel),
                "2021-07-10 09:15:00.123456",
            ),
        )?;
    }
    let session_of = |f: &PlannedFile| {
        let stem = f.rel.split('/').next().unwrap_or("");
        SESSIONS
            .iter()
            .find(|s| s.trim_end_matches(".nwb") == stem)
            .unwrap_or(&SESSIONS[0])
            .to_string()
    };
    let mut lfp_files = Vec::new();
    let mut pos_files = Vec::new();
    for f in files {
        match f.role {
            Role::Common(down) => {
                insert_external(conn, "common_nwbfile", "analysis", f)?;
                exec(conn, "INSERT INTO `common_nwbfile`.`analysis_nwbfile` (analysis_file_name, nwb_file_name, analysis_file_abs_path, analysis_file_description, analysis_parameters) VALUES (?, ?, ?, ?, ?)",
                    (analysis_name(f), session_of(f), ext(f), "", rng.neural_blob(64)))?;
                match down {
                    Downstream::Lfp => lfp_files.push(analysis_name(f)),
                    Downstream::Position => pos_files.push(analysis_name(f)),
                    Downstream::None => planted.orphan_row += 1,
                }
            }
            Role::CommonUnused => insert_external(conn, "common_nwbfile", "analysis", f)?,
            Role::Alice { downstream } => {
                insert_external(conn, "alice_nwbfile", "analysis", f)?;
                exec(
                    conn,
                    "INSERT INTO `alice_nwbfile`.`analysis_nwbfile` VALUES (?, ?, ?)",
                    (analysis_name(f), session_of(f), ext(f)),
                )?;
                if downstream {
                    let id: u64 = conn
                        .query_first(ns("SELECT COUNT(*) FROM `alice_scratch`.`_my_result`"))
                        .map_err(|source| FixtureError::Sql {
                            statement: "count".into(),
                            source,
                        })?
                        .unwrap_or(0);
                    exec(
                        conn,
                        "INSERT INTO `alice_scratch`.`_my_result` VALUES (?, ?)",
                        (id + 1, analysis_name(f)),
                    )?;
                } else {
                    planted.orphan_row += 1;
                }
            }
            Role::Decoding => {
                insert_external(conn, "decoding_v1", "analysis", f)?;
                let id: u64 = conn
                    .query_first(ns("SELECT COUNT(*) FROM `decoding_v1`.`__decoding_output`"))
                    .map_err(|source| FixtureError::Sql {
                        statement: "count".into(),
                        source,
                    })?
                    .unwrap_or(0);
                exec(
                    conn,
                    "INSERT INTO `decoding_v1`.`__decoding_output` VALUES (?, ?)",
                    (id + 1, ext(f)),
                )?;
            }
            Role::Raw(_) | Role::Untracked => {}
        }
    }

    // LFP: the large longblob rows, 256 KiB each, spread over the LFP analysis files.
    const ROW: usize = 256 * 1024;
    let rows = (blob_mb as usize * 4).max(4);
    let mut blob_bytes = 0u64;
    for i in 0..rows {
        let blob = rng.neural_blob(ROW);
        blob_bytes += blob.len() as u64;
        exec(
            conn,
            "INSERT INTO `lfp_v1`.`__l_f_p_v1` VALUES (?, ?, ?, ?)",
            (
                i as u64 + 1,
                lfp_files[i % lfp_files.len()].clone(),
                1000.0f32,
                blob,
            ),
        )?;
    }
    run(conn, "INSERT INTO `position_v1`.`#position_params` VALUES ('default', '{\"smooth\": true, \"sigma\": 0.5, \"name\": \"d\\u00e9faut \\ud83d\\udc2d\"}')")?;
    for (i, name) in pos_files.iter().enumerate() {
        exec(
            conn,
            "INSERT INTO `position_v1`.`_position_info` VALUES (?, ?, 'default')",
            (i as u64 + 1, name.clone()),
        )?;
    }
    let rec_dir = layout.recording();
    for (name, named) in RECORDINGS.iter().filter(|(_, n)| *n) {
        let _ = named;
        exec(
            conn,
            "INSERT INTO `spikesorting_recording`.`__spike_sorting_recording` VALUES (?, ?)",
            (name.to_string(), rec_dir.join(name).display().to_string()),
        )?;
    }
    let sort_dir = layout.sorting();
    for (i, (name, _)) in SORTINGS.iter().filter(|(_, n)| *n).enumerate() {
        exec(
            conn,
            "INSERT INTO `spikesorting_sorting`.`__spike_sorting` VALUES (?, ?, ?, ?)",
            (
                name.to_string(),
                RECORDINGS[i].0.to_string(),
                sort_dir.join(name).display().to_string(),
                1_700_000_000 + i as i64,
            ),
        )?;
    }
    for db in ["common_nwbfile", "lfp_v1"] {
        exec(conn, &format!("INSERT INTO `{db}`.`~log` (`timestamp`, version, user, host, event) VALUES (?, '0.14.6', 'alice@10.0.0.5', 'ws1', ?)"), ("2024-01-02 03:04:05.678901", format!("Declared `{db}`")))?;
    }
    run(
        conn,
        "INSERT INTO `common_lab`.`#lab_team` VALUES ('LorenFrank', 'Frank lab'), ('Guests', '')",
    )?;
    run(conn, "INSERT INTO `common_lab`.`lab_member` VALUES ('Alice Ng', 'Alice', 'Ng', 'LorenFrank'), ('Zoë O''Brien', 'Zoë', 'O''Brien', 'LorenFrank'), ('Guest', NULL, NULL, NULL)")?;

    // Hard values, each row a different trap.
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    // One tuple per row: (id, txt, bin, doc, amount, at, flags, kind, f, d, big).
    #[allow(clippy::type_complexity)]
    let hard: Vec<(
        i64,
        Value,
        Value,
        Value,
        Value,
        Value,
        Value,
        Value,
        Value,
        Value,
        Value,
    )> = vec![
        (
            1,
            "it's a \"quote\"".into(),
            b"plain".to_vec().into(),
            r#"{"a": [1, 2, {"b": null}]}"#.into(),
            "12345678901234567890.0123456789".into(),
            "2024-02-29 23:59:59.999999".into(),
            Value::Bytes(vec![0x02, 0x01]),
            "it's".into(),
            1.5f32.into(),
            1e-300f64.into(),
            u64::MAX.into(),
        ),
        (
            2,
            "back\\slash \\n not a newline; \\\\ double".into(),
            all_bytes.into(),
            r#"{"emoji": "🐭", "esc": "\"\\"}"#.into(),
            "-0.0000000001".into(),
            "1000-01-01 00:00:00.000000".into(),
            Value::Bytes(vec![0x03, 0xff]),
            "a".into(),
            (-0.0f32).into(),
            std::f64::consts::PI.into(),
            0u64.into(),
        ),
        (
            3,
            "nul\0inside and 4-byte 🐭🧠 and 'NULL'".into(),
            vec![0u8, 0, 0, b'\\', b'\'', 0x1a, b'\n', b'\r'].into(),
            "[]".into(),
            "0".into(),
            "9999-12-31 23:59:59.000000".into(),
            Value::Bytes(vec![0, 0]),
            "b".into(),
            3.4e38f32.into(),
            (-1.7976931348623157e308f64).into(),
            1u64.into(),
        ),
        (
            4,
            "".into(),
            Vec::<u8>::new().into(),
            "null".into(),
            Value::NULL,
            Value::NULL,
            Value::NULL,
            Value::NULL,
            Value::NULL,
            Value::NULL,
            Value::NULL,
        ),
        (
            5,
            "NULL".into(),
            Value::NULL,
            Value::NULL,
            Value::NULL,
            Value::NULL,
            Value::NULL,
            Value::NULL,
            Value::NULL,
            Value::NULL,
            Value::NULL,
        ),
        (
            6,
            Value::NULL,
            Value::NULL,
            Value::NULL,
            Value::NULL,
            Value::NULL,
            Value::NULL,
            Value::NULL,
            Value::NULL,
            Value::NULL,
            Value::NULL,
        ),
        (
            7,
            "line1\nline2\r\nend\ttab".into(),
            rng.neural_blob(300_000).into(),
            r#"{"nested": {"deep": [true, false, 1.25e10]}}"#.into(),
            "99999999999999999999.9999999999".into(),
            "2038-01-19 03:14:08.000001".into(),
            Value::Bytes(vec![0x03, 0xff]),
            "it's".into(),
            f32::MIN_POSITIVE.into(),
            2.2250738585072014e-308f64.into(),
            18446744073709551614u64.into(),
        ),
    ];
    for row in hard {
        let (id, txt, bin, doc, amount, at, flags, kind, f, d, big) = row;
        exec(
            conn,
            "INSERT INTO `alice_scratch`.`hard_values` VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![id.into(), txt, bin, doc, amount, at, flags, kind, f, d, big],
        )?;
    }
    for s in SESSIONS.iter().take(2) {
        exec(
            conn,
            "INSERT INTO `bob_analysis`.`my table` (nwb_file_name, note) VALUES (?, ?)",
            (s.to_string(), format!("bob's note on {s}")),
        )?;
    }
    run(conn, "UPDATE `bob_analysis`.`my table` SET note = CONCAT(note, ' (edited)') WHERE nwb_file_name LIKE 'j16%'")?;
    run(
        conn,
        "INSERT INTO `bob_analysis`.`#weird table` VALUES (1, 'one'), (2, 'two')",
    )?;
    run(
        conn,
        "INSERT INTO `bob_analysis`.`~tilde` VALUES (1), (2), (3)",
    )?;
    run(conn, "INSERT INTO `bob_analysis`.`back``tick` VALUES (42)")?;
    run(
        conn,
        "INSERT INTO `bob_analysis`.`legacy_myisam` VALUES (1, 'not transactional')",
    )?;
    run(conn, "INSERT INTO `bob_analysis`.`no_pk_log` VALUES ('2024-01-01 00:00:00', 'dup'), ('2024-01-01 00:00:00', 'dup')")?;
    Ok(Built { tables, blob_bytes })
}
