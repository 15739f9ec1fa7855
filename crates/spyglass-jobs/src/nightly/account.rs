//! What nightly's own account (`[backup] account`, made by `users
//! add-backup-user`) needs beyond the backup's global privileges, from the
//! settings: the same answer for `add-backup-user` (which grants it),
//! `doctor` (which checks it), `users audit` and the report (which must
//! not call it drift).
//!
//! - A restore drill (`[nightly] restore_drill`) creates and drops its
//!   scratch schemas `drill_*`: ALL on `` `drill\_%`.* `` only.
//! - `cleanup = "apply"` deletes unused `~external` rows and inserts them
//!   again when a file is put back: DELETE and INSERT on the schemas in
//!   scope. A `[cleanup] schemas` glob becomes the grant pattern matching
//!   the same names; one that would also match the server's own schemas
//!   (`*` matches `mysql`, where DELETE and INSERT could rewrite accounts),
//!   and no globs at all, become the schemas holding `~external` tables
//!   now, each by its exact name.

use spyglass_db::mysql::prelude::Queryable;
use spyglass_db::{DbError, Session};
use spyglass_privileges::audit::ServiceAccount;
use spyglass_privileges::plan::{
    self, cleanup_need, drill_need, glob_pattern, like_escape, BackupFeatures, SchemaNeed,
};
use spyglass_privileges::{Account, SchemaPattern};

use crate::settings::{CleanupMode, Settings};
use crate::JobError;

/// Which steps ask for more than the backup's privileges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Steps {
    /// A restore drill on some weekday.
    pub drill: bool,
    /// `cleanup = "apply"`.
    pub cleanup_apply: bool,
}

impl Steps {
    /// The steps `settings` enable. A `restore_drill` that does not parse
    /// counts as enabled (nightly refuses it anyway, naming the key).
    pub fn of(settings: &Settings) -> Steps {
        let n = &settings.nightly;
        Steps {
            drill: match super::drill_days(n.restore_drill.as_ref()) {
                Ok(days) => days.contains(&true),
                Err(_) => true,
            },
            cleanup_apply: n.cleanup == Some(CleanupMode::Apply),
        }
    }
}

/// The schemas holding DataJoint `~external_*` tables (the rows cleanup
/// apply deletes), in name order, the server's own schemas left out.
pub fn external_schemas(session: &mut Session) -> Result<Vec<String>, DbError> {
    let sql = format!(
        "SELECT DISTINCT table_schema FROM information_schema.tables \
         WHERE LEFT(table_name, 10) = '~external_' AND table_schema NOT IN {} ORDER BY 1",
        spyglass_db::schemas::system_schemas_sql()
    );
    session
        .conn()
        .query(sql)
        .map_err(|e| DbError::query("listing the schemas with ~external tables", e))
}

/// The schema grants `steps` need under `settings`; `external` lists the
/// schemas with `~external` tables (asked only when a cleanup glob cannot
/// be a grant pattern, or there are none; [`external_schemas`]).
pub fn schema_needs(
    settings: &Settings,
    steps: Steps,
    external: &mut dyn FnMut() -> Result<Vec<String>, DbError>,
) -> Result<Vec<SchemaNeed>, JobError> {
    let mut out = Vec::new();
    if steps.drill {
        out.push(drill_need(super::DRILL_PREFIX));
    }
    if steps.cleanup_apply {
        let globs = &settings.cleanup.schemas;
        let mut exact: Vec<&String> = Vec::new();
        let mut names: Option<Vec<String>> = None;
        let mut by_name = |glob: Option<&str>, out: &mut Vec<SchemaNeed>| {
            if names.is_none() {
                names = Some(external().map_err(JobError::Db)?);
            }
            for n in names.iter().flatten() {
                if glob.is_none_or(|g| spyglass_db::schemas::glob_match(g, n)) {
                    out.push(cleanup_need(
                        SchemaPattern::Raw(like_escape(n)),
                        Some(n.clone()),
                    ));
                }
            }
            Ok::<(), JobError>(())
        };
        if globs.is_empty() {
            by_name(None, &mut out)?;
        }
        for g in globs {
            match glob_pattern(g) {
                Some(p) => out.push(cleanup_need(p, None)),
                None => exact.push(g),
            }
        }
        for g in exact {
            by_name(Some(g), &mut out)?;
        }
        out.dedup_by(|a, b| a.on == b.on);
    }
    Ok(out)
}

/// What a restore drill run by an account without SUPER leaves out: with
/// the binary log on and `log_bin_trust_function_creators` off, creating a
/// trigger or a stored function needs SUPER (error 1419 on MariaDB 10.11
/// and MySQL 9.x alike; no finer privilege and no `sql_log_bin = 0` lifts
/// it). The drill then restores every table and compares it, leaves these
/// out and says so; granting SUPER to the backup account would be far more
/// than it needs, so the fix is the server setting, the admin's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DrillGap {
    /// Triggers on the server (outside its own schemas).
    pub triggers: u64,
    /// Stored functions on the server (outside its own schemas).
    pub functions: u64,
}

impl DrillGap {
    /// One sentence for doctor: what the drill will leave out, why, and the
    /// setting that lets it restore them.
    pub fn text(&self, account: &str) -> String {
        format!(
            "the restore drill cannot restore the server's {} trigger(s) and {} stored function(s) as {account}: the binary log is on and the account lacks SUPER, so the drill restores and compares every table, leaves those out and says so in its result; `SET GLOBAL log_bin_trust_function_creators = 1` (and `log_bin_trust_function_creators = 1` in the server's configuration) lets it restore them (granting SUPER would too, but is far more than a backup account needs)",
            self.triggers, self.functions
        )
    }
}

/// Through `session` (the drill's account, whose privileges are `held`):
/// what a restore drill would leave out ([`DrillGap`]); `None` when it can
/// create triggers and functions, or there are none.
pub fn drill_gap(
    session: &mut Session,
    held: &spyglass_privileges::grants::HeldPrivileges,
) -> Result<Option<DrillGap>, JobError> {
    let q = |e| {
        JobError::Db(DbError::query(
            "reading log_bin and log_bin_trust_function_creators",
            e,
        ))
    };
    let vars: Option<(Option<u64>, Option<u64>)> = session
        .conn()
        .query_first("SELECT @@global.log_bin, @@global.log_bin_trust_function_creators")
        .map_err(q)?;
    let (log_bin, trusted) = vars.unwrap_or_default();
    if log_bin != Some(1) || trusted == Some(1) || held.has_global("SUPER") {
        return Ok(None);
    }
    let sys = spyglass_db::schemas::system_schemas_sql();
    let counts: Option<(u64, u64)> = session
        .conn()
        .query_first(format!(
            "SELECT (SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema NOT IN {sys}), \
             (SELECT COUNT(*) FROM information_schema.routines WHERE routine_type = 'FUNCTION' AND routine_schema NOT IN {sys})"
        ))
        .map_err(|e| JobError::Db(DbError::query("counting the server's triggers and stored functions", e)))?;
    let (triggers, functions) = counts.unwrap_or_default();
    Ok((triggers + functions > 0).then_some(DrillGap {
        triggers,
        functions,
    }))
}

/// `[backup] account` as an account (`NAME@HOST`, host `%` when left
/// out); `None` when not set. The error names the value.
pub fn configured(settings: &Settings) -> Result<Option<Account>, JobError> {
    let Some(text) = &settings.backup.account else {
        return Ok(None);
    };
    Account::parse(text, "%", Some(spyglass_db::Flavor::Mariadb))
        .map(Some)
        .map_err(|e| JobError::Invalid {
            section: "backup",
            key: "account",
            message: e.to_string(),
        })
}

/// The backup features this lab uses, as far as the settings show: the
/// binary-log archive once `<destination>/binlog` exists (killing long
/// queries is a one-off flag of `backup run`, never a setting).
pub fn features(settings: &Settings) -> BackupFeatures {
    BackupFeatures {
        binlog_archive: settings
            .backup
            .destination
            .as_ref()
            .is_some_and(|d| d.join("binlog").is_dir()),
        kill_long_queries: false,
    }
}

/// The dedicated backup account of the settings as `users audit` and the
/// report check it: its global privileges read with `SHOW GRANTS FOR`
/// (through `session`, an administrator's), against what the backup, the
/// enabled features and the enabled nightly steps need. `None` when the
/// settings name no account.
pub fn service_account(
    settings: &Settings,
    session: &mut Session,
) -> Result<Option<ServiceAccount>, JobError> {
    let Some(account) = configured(settings)? else {
        return Ok(None);
    };
    let flavor = session.server().flavor;
    let held =
        spyglass_privileges::grants::account_global(session, &account).map_err(|e| match e {
            spyglass_privileges::Error::Db(d) => JobError::Db(d),
            other => JobError::Invalid {
                section: "backup",
                key: "account",
                message: other.to_string(),
            },
        })?;
    let schema_needs = schema_needs(settings, Steps::of(settings), &mut || {
        external_schemas(session)
    })?;
    Ok(Some(ServiceAccount {
        account,
        held,
        needs: plan::backup_account_privileges(flavor, features(settings)),
        schema_needs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Settings {
        crate::settings::parse(text, std::path::Path::new("s.toml")).unwrap()
    }

    fn stored(needs: &[SchemaNeed]) -> Vec<(String, &'static str)> {
        needs.iter().map(|n| (n.on.stored(), n.step)).collect()
    }

    #[test]
    fn the_drill_and_cleanup_apply_need_their_schemas_only() {
        let s = settings("[nightly]\nrestore_drill = \"sun\"\ncleanup = \"apply\"\n[cleanup]\nschemas = [\"common_*\", \"lfp_v?\", \"*\"]\n");
        let steps = Steps::of(&s);
        assert_eq!(
            steps,
            Steps {
                drill: true,
                cleanup_apply: true
            }
        );
        let mut asked = 0;
        let needs = schema_needs(&s, steps, &mut || {
            asked += 1;
            Ok(vec!["common_session".into(), "alice_x".into()])
        })
        .unwrap();
        // `*` would match mysql: the schemas with ~external tables instead, by name.
        assert_eq!(
            stored(&needs),
            [
                (r"drill\_%".to_owned(), "restore drill"),
                (r"common\_%".to_owned(), "cleanup apply"),
                (r"lfp\_v_".to_owned(), "cleanup apply"),
                (r"common\_session".to_owned(), "cleanup apply"),
                (r"alice\_x".to_owned(), "cleanup apply"),
            ]
        );
        assert_eq!(asked, 1);
        assert_eq!(needs[3].schema.as_deref(), Some("common_session"));
        // Nothing enabled: nothing needed, nothing asked.
        let s = settings("[nightly]\ncleanup = \"scan\"\nrestore_drill = \"never\"\n");
        assert_eq!(Steps::of(&s), Steps::default());
        let needs = schema_needs(&s, Steps::of(&s), &mut || panic!("not asked")).unwrap();
        assert!(needs.is_empty());
        // No globs: every schema with ~external tables.
        let s = settings("[nightly]\ncleanup = \"apply\"\n");
        let needs = schema_needs(&s, Steps::of(&s), &mut || Ok(vec!["a_b".into()])).unwrap();
        assert_eq!(stored(&needs), [(r"a\_b".to_owned(), "cleanup apply")]);
    }
}
