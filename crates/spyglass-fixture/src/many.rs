//! Many small DataJoint-shaped tables over dozens of schemas: the shape of a
//! lab with years of pipelines, where per-table and per-file costs, not
//! bytes, decide how long a backup or a restore takes.

use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::mysql::{Conn, Value};
use spyglass_db::Session;

use crate::{FixtureError, Rng};

/// What [`create_many`] builds.
#[derive(Debug, Clone)]
pub struct ManyOptions {
    /// Seed for every generated value.
    pub seed: u64,
    /// Schema names are `<prefix>NN_<module>`.
    pub prefix: String,
    /// How many schemas.
    pub schemas: usize,
    /// Tables per schema (at least 1).
    pub tables: usize,
    /// Rows per table.
    pub rows: usize,
}

/// What [`create_many`] built.
#[derive(Debug, Clone)]
pub struct ManySummary {
    /// The schemas, in creation order.
    pub schemas: Vec<String>,
    /// Tables in all.
    pub tables: usize,
    /// Rows in all.
    pub rows: u64,
}

const MODULES: &[&str] = &["common", "lfp", "spikesorting", "position", "decoding"];
const TIERS: &[&str] = &["", "#", "_", "__"];

fn run(conn: &mut Conn, sql: String) -> Result<(), FixtureError> {
    conn.query_drop(&sql).map_err(|source| FixtureError::Sql {
        statement: sql.chars().take(300).collect(),
        source,
    })
}

/// Table `i` of a schema: its name, its parent (tables form a binary tree
/// rooted at table 0, as DataJoint pipelines nest under a session), and its
/// depth (how many primary-key columns it inherits).
fn table(i: usize) -> (String, Option<usize>, usize) {
    let tier = TIERS[i % TIERS.len()];
    let parent = (i > 0).then(|| (i - 1) / 2);
    let mut depth = 0;
    let mut j = i;
    while j > 0 {
        j = (j - 1) / 2;
        depth += 1;
    }
    (format!("{tier}table_{i:02}"), parent, depth)
}

fn key_columns(depth: usize) -> Vec<String> {
    let mut k = vec!["`subject_id`".to_owned()];
    k.extend((1..=depth).map(|d| format!("`k{d}`")));
    k
}

/// Drops `<prefix>*` schemas of an earlier run and builds the database: each
/// table has DataJoint's composite primary key (the parent's key plus its
/// own), a foreign key to its parent `ON UPDATE CASCADE ON DELETE RESTRICT`,
/// a secondary index on every fourth table, and a `longblob` of parameters,
/// a float, a varchar and a timestamp per row; row `j` of a child names row
/// `j` of its parent.
pub fn create_many(session: &mut Session, opts: &ManyOptions) -> Result<ManySummary, FixtureError> {
    let conn = session.conn();
    let mut rng = Rng::new(opts.seed);
    let tables = opts.tables.max(1);
    run(conn, "SET SESSION foreign_key_checks = 0".into())?;
    let old: Vec<String> = conn
        .query(format!(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE '{}%'",
            opts.prefix.replace('_', "\\_")
        ))
        .map_err(|source| FixtureError::Sql {
            statement: "listing old schemas".into(),
            source,
        })?;
    for s in old {
        run(conn, format!("DROP DATABASE `{s}`"))?;
    }
    let mut summary = ManySummary {
        schemas: Vec::new(),
        tables: 0,
        rows: 0,
    };
    for s in 0..opts.schemas {
        let db = format!("{}{s:02}_{}", opts.prefix, MODULES[s % MODULES.len()]);
        run(conn, format!("CREATE DATABASE `{db}`"))?;
        for i in 0..tables {
            let (name, parent, depth) = table(i);
            let keys = key_columns(depth);
            let mut cols = vec!["`subject_id` varchar(32) NOT NULL COMMENT 'subject'".to_owned()];
            cols.extend((1..=depth).map(|d| format!("`k{d}` int NOT NULL")));
            cols.push("`value` float NOT NULL COMMENT 'a measurement'".into());
            cols.push("`note` varchar(64) NOT NULL DEFAULT ''".into());
            cols.push("`params` longblob COMMENT ':<blob>'".into());
            cols.push("`entered` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP".into());
            cols.push(format!("PRIMARY KEY ({})", keys.join(",")));
            if let Some(p) = parent {
                let (pname, _, pdepth) = table(p);
                let pk = key_columns(pdepth).join(",");
                cols.push(format!(
                    "FOREIGN KEY ({pk}) REFERENCES `{db}`.`{pname}` ({pk}) ON UPDATE CASCADE ON DELETE RESTRICT"
                ));
            }
            if i % 4 == 3 {
                cols.push("INDEX (`note`)".into());
            }
            run(
                conn,
                format!(
                    "CREATE TABLE `{db}`.`{name}` (\n{}\n) ENGINE=InnoDB DEFAULT CHARSET=latin1 COMMENT 'table {i}'",
                    cols.join(",\n")
                ),
            )?;
            let mut j = 0;
            while j < opts.rows {
                let end = (j + 500).min(opts.rows);
                let mut sql = format!("INSERT INTO `{db}`.`{name}` VALUES ");
                let mut params: Vec<Value> = Vec::new();
                for r in j..end {
                    if r > j {
                        sql.push(',');
                    }
                    sql.push('(');
                    sql.push_str(&"?,".repeat(depth + 1));
                    sql.push_str("?,?,?,?)");
                    params.push(Value::from(format!("subj{r:05}")));
                    params.extend((1..=depth).map(|_| Value::from(r as i64)));
                    params.push(Value::from(rng.below(1_000_000) as f32 / 1000.0));
                    params.push(Value::from(format!("note {}", rng.below(50))));
                    let blob: Vec<u8> = (0..40 + rng.below(40))
                        .map(|_| rng.below(256) as u8)
                        .collect();
                    params.push(Value::from(blob));
                    params.push(Value::from(format!(
                        "2026-0{}-{:02} 12:00:00",
                        1 + rng.below(9),
                        1 + rng.below(28)
                    )));
                }
                conn.exec_drop(&sql, params)
                    .map_err(|source| FixtureError::Sql {
                        statement: format!("inserting rows into `{db}`.`{name}`"),
                        source,
                    })?;
                j = end;
            }
            summary.tables += 1;
            summary.rows += opts.rows as u64;
        }
        summary.schemas.push(db);
    }
    run(conn, "SET SESSION foreign_key_checks = 1".into())?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_form_a_tree_whose_keys_extend_the_parents() {
        assert_eq!(table(0), ("table_00".into(), None, 0));
        assert_eq!(table(1), ("#table_01".into(), Some(0), 1));
        assert_eq!(table(7), ("__table_07".into(), Some(3), 3));
        assert_eq!(table(29).1, Some(14));
        assert_eq!(table(29).2, 4);
        // A child's key starts with its parent's whole key.
        for i in 1..30 {
            let (_, p, d) = table(i);
            let (_, _, pd) = table(p.unwrap());
            assert_eq!(d, pd + 1);
            assert!(key_columns(d).starts_with(&key_columns(pd)));
        }
    }
}
