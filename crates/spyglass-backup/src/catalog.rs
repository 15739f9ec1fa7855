//! Reading what to dump: schemas, tables, columns, keys, and object definitions.

use std::collections::{BTreeMap, BTreeSet};

use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::mysql::{Conn, Row, Value};
use spyglass_db::quote;

use crate::names::SYSTEM_SCHEMAS;
use crate::Error;

#[derive(Debug, Clone)]
pub(crate) struct TableInfo {
    pub schema: String,
    pub name: String,
    pub is_view: bool,
    /// A MariaDB system-versioned table: its rows are read `FOR SYSTEM_TIME
    /// ALL` (history included) and `columns` ends with its row start and end.
    pub versioned: bool,
    pub engine: String,
    pub data_length: u64,
    pub rows_estimate: u64,
    /// Columns to select and insert, in order; generated columns are left out
    /// (but not a versioned table's row start and end: they are history).
    pub columns: Vec<String>,
    /// `information_schema.columns.data_type` of each of `columns`.
    pub column_types: Vec<String>,
    pub primary_key: Vec<String>,
    /// Tables in the same schema this one references by foreign key.
    pub depends_on: BTreeSet<String>,
}

impl TableInfo {
    pub fn transactional(&self) -> bool {
        matches!(
            self.engine.to_ascii_lowercase().as_str(),
            "innodb" | "rocksdb" | "tokudb"
        )
    }
}

fn q<T: spyglass_db::mysql::prelude::FromRow>(
    conn: &mut Conn,
    what: &str,
    sql: &str,
) -> Result<Vec<T>, Error> {
    conn.query(sql)
        .map_err(|e| Error::Db(spyglass_db::DbError::query(what.to_owned(), e)))
}

fn system_list() -> String {
    SYSTEM_SCHEMAS
        .iter()
        .map(|s| quote::string(s))
        .collect::<Vec<_>>()
        .join(",")
}

/// All non-system schemas, sorted.
pub(crate) fn schemas(conn: &mut Conn) -> Result<Vec<String>, Error> {
    q(
        conn,
        "listing schemas",
        &format!("SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT IN ({}) ORDER BY schema_name", system_list()),
    )
}

/// Tables and views of `schemas`, with columns, primary keys and FK dependencies.
pub(crate) fn tables(conn: &mut Conn, schemas: &[String]) -> Result<Vec<TableInfo>, Error> {
    if schemas.is_empty() {
        return Ok(Vec::new());
    }
    let list = schemas
        .iter()
        .map(|s| quote::string(s))
        .collect::<Vec<_>>()
        .join(",");
    // schema, table, type, engine, data_length, table_rows
    type TableRow = (
        String,
        String,
        String,
        Option<String>,
        Option<u64>,
        Option<u64>,
    );
    let rows: Vec<TableRow> = q(
        conn,
        "listing tables",
        &format!(
            "SELECT table_schema, table_name, table_type, engine, data_length, table_rows \
             FROM information_schema.tables WHERE table_schema IN ({list}) ORDER BY table_schema, table_name"
        ),
    )?;
    let mut out: BTreeMap<(String, String), TableInfo> = BTreeMap::new();
    for (schema, name, ty, engine, data_length, rows) in rows {
        let is_view = ty.eq_ignore_ascii_case("VIEW");
        let versioned = ty.eq_ignore_ascii_case("SYSTEM VERSIONED");
        if ty.eq_ignore_ascii_case("SEQUENCE") || ty.eq_ignore_ascii_case("SYSTEM VIEW") {
            continue;
        }
        out.insert(
            (schema.clone(), name.clone()),
            TableInfo {
                schema,
                name,
                is_view,
                versioned,
                engine: engine.unwrap_or_default(),
                data_length: data_length.unwrap_or(0),
                rows_estimate: rows.unwrap_or(0),
                columns: Vec::new(),
                column_types: Vec::new(),
                primary_key: Vec::new(),
                depends_on: BTreeSet::new(),
            },
        );
    }
    let cols: Vec<(String, String, String, Option<String>, String)> = q(
        conn,
        "listing columns",
        &format!(
            "SELECT table_schema, table_name, column_name, generation_expression, data_type \
             FROM information_schema.columns WHERE table_schema IN ({list}) ORDER BY table_schema, table_name, ordinal_position"
        ),
    )?;
    let mut explicit_period: BTreeSet<(String, String)> = BTreeSet::new();
    for (schema, table, column, generated, data_type) in cols {
        let key = (schema, table);
        let Some(t) = out.get_mut(&key) else {
            continue;
        };
        // MariaDB lists a versioned table's explicit row start and end as
        // generated `ROW START` / `ROW END`: they are kept (history).
        let period = generated.as_deref().is_some_and(|g| {
            g.eq_ignore_ascii_case("ROW START") || g.eq_ignore_ascii_case("ROW END")
        });
        if period && t.versioned {
            explicit_period.insert(key);
        } else if generated.is_some_and(|g| !g.is_empty()) {
            continue;
        }
        t.columns.push(column);
        t.column_types.push(data_type.to_ascii_lowercase());
    }
    // Implicit row start and end (`WITH SYSTEM VERSIONING` alone) are
    // invisible, and not in information_schema.columns; their names are fixed.
    for (key, t) in out.iter_mut().filter(|(_, t)| t.versioned) {
        if !explicit_period.contains(key) {
            for c in ["row_start", "row_end"] {
                t.columns.push(c.to_owned());
                t.column_types.push("timestamp".to_owned());
            }
        }
    }
    let pks: Vec<(String, String, String)> = q(
        conn,
        "listing primary keys",
        &format!(
            "SELECT table_schema, table_name, column_name FROM information_schema.statistics \
             WHERE table_schema IN ({list}) AND index_name = 'PRIMARY' ORDER BY table_schema, table_name, seq_in_index"
        ),
    )?;
    for (schema, table, column) in pks {
        if let Some(t) = out.get_mut(&(schema, table)) {
            t.primary_key.push(column);
        }
    }
    let fks: Vec<(String, String, String, String)> = q(
        conn,
        "listing foreign keys",
        &format!(
            "SELECT table_schema, table_name, referenced_table_schema, referenced_table_name \
             FROM information_schema.key_column_usage WHERE table_schema IN ({list}) AND referenced_table_name IS NOT NULL"
        ),
    )?;
    for (schema, table, rschema, rtable) in fks {
        if rschema == schema && rtable != table {
            if let Some(t) = out.get_mut(&(schema, table)) {
                t.depends_on.insert(rtable);
            }
        }
    }
    Ok(out.into_values().collect())
}

/// Orders tables so that each comes after the tables it references (cycles
/// keep their name order; foreign key checks are off while restoring anyway).
pub(crate) fn fk_order(tables: &[&TableInfo]) -> Vec<String> {
    let names: BTreeSet<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut order = Vec::new();
    while order.len() < tables.len() {
        let before = order.len();
        for t in tables {
            if done.contains(&t.name) {
                continue;
            }
            if t.depends_on
                .iter()
                .all(|d| done.contains(d) || !names.contains(d.as_str()))
            {
                done.insert(t.name.clone());
                order.push(t.name.clone());
            }
        }
        if order.len() == before {
            // A cycle: take the first remaining table and go on.
            if let Some(t) = tables.iter().find(|t| !done.contains(&t.name)) {
                done.insert(t.name.clone());
                order.push(t.name.clone());
            }
        }
    }
    order
}

fn show_create(
    conn: &mut Conn,
    sql: &str,
    col: usize,
    what: &str,
    schema: &str,
    name: &str,
) -> Result<String, Error> {
    let row: Option<Row> = conn.query_first(sql).map_err(|source| Error::Table {
        what: "reading the definition of",
        schema: schema.to_owned(),
        table: name.to_owned(),
        source: Box::new(source),
    })?;
    let row =
        row.ok_or_else(|| Error::Invalid(format!("{what} `{schema}`.`{name}` has no definition")))?;
    match row.as_ref(col) {
        Some(Value::Bytes(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
        _ => Err(Error::Invalid(format!(
            "{what} `{schema}`.`{name}`: unexpected SHOW CREATE answer"
        ))),
    }
}

pub(crate) fn create_database(conn: &mut Conn, schema: &str) -> Result<String, Error> {
    show_create(
        conn,
        &format!("SHOW CREATE DATABASE {}", quote::ident(schema)),
        1,
        "database",
        schema,
        "",
    )
}

pub(crate) fn create_table(conn: &mut Conn, schema: &str, table: &str) -> Result<String, Error> {
    show_create(
        conn,
        &format!("SHOW CREATE TABLE {}", quote::qualified(schema, table)),
        1,
        "table",
        schema,
        table,
    )
}

/// MariaDB SEQUENCEs of a schema (none on MySQL), each as its DDL and the
/// statement that puts its state back: `DO SETVAL(seq, next, 0)`, where next
/// is the first value not handed out nor cached (what a server restart would
/// give, as mariadb-dump does).
pub(crate) fn sequences(conn: &mut Conn, schema: &str) -> Result<Vec<(String, String)>, Error> {
    let names: Vec<String> = conn
        .exec(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'SEQUENCE' ORDER BY 1",
            (schema,),
        )
        .map_err(|e| Error::Db(spyglass_db::DbError::query(format!("listing the sequences of {schema}"), e)))?;
    let mut out = Vec::new();
    for name in names {
        let ddl = show_create(
            conn,
            &format!("SHOW CREATE SEQUENCE {}", quote::qualified(schema, &name)),
            1,
            "sequence",
            schema,
            &name,
        )?;
        let next: Option<String> = conn
            .query_first(format!(
                "SELECT CAST(next_not_cached_value AS CHAR) FROM {}",
                quote::qualified(schema, &name)
            ))
            .map_err(|source| Error::Table {
                what: "reading the state of sequence",
                schema: schema.to_owned(),
                table: name.clone(),
                source: Box::new(source),
            })?;
        let next = next.unwrap_or_else(|| "1".into());
        out.push((
            ddl,
            format!("DO SETVAL({}, {next}, 0)", quote::ident(&name)),
        ));
    }
    Ok(out)
}

pub(crate) fn create_view(conn: &mut Conn, schema: &str, view: &str) -> Result<String, Error> {
    show_create(
        conn,
        &format!("SHOW CREATE VIEW {}", quote::qualified(schema, view)),
        1,
        "view",
        schema,
        view,
    )
}

/// A stand-in for a view, written with the tables: a view of constants with
/// the view's column names (`SELECT 1 AS a, 1 AS b`), as mysqldump does.
/// Every view of every schema exists as a stand-in before any real
/// definition loads, so a view on a view (of any schema, in any order)
/// finds its columns; the post file then replaces each stand-in
/// ([`replacing`]). `None` for a view without columns (it is broken on the
/// source: its real definition fails to load and the restore says where).
pub(crate) fn view_stub(schema: &str, view: &str, columns: &[String]) -> Option<String> {
    if columns.is_empty() {
        return None;
    }
    Some(format!(
        "CREATE VIEW {} AS SELECT {}",
        quote::qualified(schema, view),
        columns
            .iter()
            .map(|c| format!("1 AS {}", quote::ident(c)))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// `SHOW CREATE VIEW`'s statement as `CREATE OR REPLACE ...`: it replaces
/// the view's stand-in ([`view_stub`]), or creates the view in an older set.
pub(crate) fn replacing(create_view: &str) -> String {
    match create_view.strip_prefix("CREATE ") {
        Some(rest) if !rest.starts_with("OR REPLACE ") => format!("CREATE OR REPLACE {rest}"),
        _ => create_view.to_owned(),
    }
}

/// Appends stored programs to a script: a `DELIMITER ;;` block, each
/// program under the sql_mode it was created with.
pub(crate) fn push_programs<'a>(sql: &mut String, programs: impl IntoIterator<Item = &'a Program>) {
    let mut any = false;
    for p in programs {
        if !any {
            sql.push_str("DELIMITER ;;\n");
            any = true;
        }
        sql.push_str(&format!("-- {}\n", p.name.replace('\n', " ")));
        sql.push_str(&format!(
            "SET SESSION sql_mode = {};;\n",
            quote::string(&p.sql_mode)
        ));
        sql.push_str(&p.create);
        sql.push_str(" ;;\n");
    }
    if any {
        sql.push_str("DELIMITER ;\n");
    }
}

/// A trigger, routine or event definition with the sql_mode it was created under.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    pub name: String,
    pub sql_mode: String,
    pub create: String,
}

pub(crate) fn triggers(conn: &mut Conn, schema: &str) -> Result<Vec<Program>, Error> {
    programs(
        conn,
        schema,
        "trigger",
        2,
        &format!(
            "SELECT trigger_name, 'TRIGGER', sql_mode FROM information_schema.triggers WHERE trigger_schema = {} ORDER BY event_object_table, action_order, trigger_name",
            quote::string(schema)
        ),
    )
}

pub(crate) fn routines(conn: &mut Conn, schema: &str) -> Result<Vec<Program>, Error> {
    programs(
        conn,
        schema,
        "routine",
        2,
        &format!(
            "SELECT routine_name, routine_type, sql_mode FROM information_schema.routines WHERE routine_schema = {} AND routine_type IN ('PROCEDURE', 'FUNCTION') ORDER BY routine_type, routine_name",
            quote::string(schema)
        ),
    )
}

pub(crate) fn events(conn: &mut Conn, schema: &str) -> Result<Vec<Program>, Error> {
    programs(
        conn,
        schema,
        "event",
        3,
        &format!(
            "SELECT event_name, 'EVENT', sql_mode FROM information_schema.events WHERE event_schema = {} ORDER BY event_name",
            quote::string(schema)
        ),
    )
}

/// The stored programs `listing` names, as (name, `SHOW CREATE` keyword,
/// sql_mode) rows, each with its `SHOW CREATE` text (column `column`).
fn programs(
    conn: &mut Conn,
    schema: &str,
    kind: &str,
    column: usize,
    listing: &str,
) -> Result<Vec<Program>, Error> {
    let names: Vec<(String, String, String)> = q(conn, &format!("listing {kind}s"), listing)?;
    names
        .into_iter()
        .map(|(name, keyword, sql_mode)| {
            let create = show_create(
                conn,
                &format!("SHOW CREATE {keyword} {}", quote::qualified(schema, &name)),
                column,
                kind,
                schema,
                &name,
            )?;
            Ok(Program {
                name,
                sql_mode,
                create,
            })
        })
        .collect()
}

/// Orders views so a view comes after the views it selects from (by looking
/// for their qualified names in its definition, which the server always
/// writes fully qualified).
pub(crate) fn view_order(schema: &str, views: &[(String, String)]) -> Vec<usize> {
    let refs = |def: &str, other: &str| def.contains(&quote::qualified(schema, other));
    let mut done = vec![false; views.len()];
    let mut order = Vec::new();
    while order.len() < views.len() {
        let before = order.len();
        for i in 0..views.len() {
            if done[i] {
                continue;
            }
            let ready =
                (0..views.len()).all(|j| j == i || done[j] || !refs(&views[i].1, &views[j].0));
            if ready {
                done[i] = true;
                order.push(i);
            }
        }
        if order.len() == before {
            if let Some(i) = (0..views.len()).find(|&i| !done[i]) {
                done[i] = true;
                order.push(i);
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, deps: &[&str]) -> TableInfo {
        TableInfo {
            schema: "s".into(),
            name: name.into(),
            is_view: false,
            versioned: false,
            engine: "InnoDB".into(),
            data_length: 0,
            rows_estimate: 0,
            columns: vec![],
            column_types: vec![],
            primary_key: vec![],
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn referenced_tables_come_first() {
        let ts = [
            t("analysis", &["nwbfile", "~external"]),
            t("nwbfile", &["~external"]),
            t("~external", &[]),
            t("other", &["elsewhere"]),
        ];
        let refs: Vec<&TableInfo> = ts.iter().collect();
        let order = fk_order(&refs);
        let pos = |n: &str| order.iter().position(|x| x == n).unwrap();
        assert!(pos("~external") < pos("nwbfile") && pos("nwbfile") < pos("analysis"));
        assert_eq!(order.len(), 4);
        let cyc = [t("a", &["b"]), t("b", &["a"])];
        assert_eq!(fk_order(&cyc.iter().collect::<Vec<_>>()).len(), 2);
    }

    #[test]
    fn views_after_the_views_they_use() {
        let views = vec![
            (
                "v2".to_owned(),
                "select `s`.`v1`.`x` from `s`.`v1`".to_owned(),
            ),
            (
                "v1".to_owned(),
                "select `s`.`t`.`x` from `s`.`t`".to_owned(),
            ),
        ];
        assert_eq!(view_order("s", &views), vec![1, 0]);
    }

    #[test]
    fn view_stand_ins_and_their_replacement() {
        assert_eq!(
            view_stub("a b", "v`1", &["x".into(), "y z".into()]).as_deref(),
            Some("CREATE VIEW `a b`.`v``1` AS SELECT 1 AS `x`, 1 AS `y z`")
        );
        assert_eq!(view_stub("s", "broken", &[]), None);
        let real = "CREATE ALGORITHM=UNDEFINED DEFINER=`nobody`@`%` SQL SECURITY DEFINER VIEW `v` AS select 1 AS `x`";
        assert_eq!(
            replacing(real),
            "CREATE OR REPLACE ALGORITHM=UNDEFINED DEFINER=`nobody`@`%` SQL SECURITY DEFINER VIEW `v` AS select 1 AS `x`"
        );
        assert_eq!(replacing(&replacing(real)), replacing(real));
    }
}
