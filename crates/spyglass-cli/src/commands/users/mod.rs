//! `spyglass-admin users ...`: glue between the clap types, the connection,
//! and `spyglass_privileges` (which plans, renders, applies and audits).

pub(super) mod report;

use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal};

use serde::Serialize;
use spyglass_db::{Flavor, Secret, Session};
use spyglass_privileges::live::{self, LiveState};
use spyglass_privileges::plan::{self, NewPassword, Plan, UsersFile};
use spyglass_privileges::sql::{self, Reveal, Step};
use spyglass_privileges::{Account, Policy, PolicyConfig};

use crate::args::{AccountHost, GlobalOpts, NewPasswordArgs, SqlFlavor, UsersArgs, UsersCommand};
use crate::connection::{self, Environment, Resolved};
use crate::output::{self, ExitStatus, UserError};
use crate::settings;
use spyglass_jobs::nightly::account as nightly_account;

/// Length of generated passwords (~118 bits).
const PASSWORD_LEN: usize = 20;

/// Print the SQL, or run it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Run,
    /// `users sql ...`; `Some(flavor)` = offline.
    Print(Option<Flavor>),
}

pub fn run(global: &GlobalOpts, args: UsersArgs) -> anyhow::Result<ExitStatus> {
    let settings = settings::load(global.config.as_deref())?;
    let policy = Policy::from_config(&settings.users).map_err(|e| {
        let file = settings
            .path
            .as_ref()
            .map_or("spyglass-admin.toml".to_owned(), |p| {
                p.display().to_string()
            });
        lib_error(e).context(format!("in [users] of {file}"))
    })?;
    let backup_account = match &settings.backup.account {
        None => None,
        Some(text) => Some(
            Account::parse(text, "%", Some(Flavor::Mariadb)).map_err(|e| {
                let file = settings
                    .path
                    .as_ref()
                    .map_or("spyglass-admin.toml".to_owned(), |p| {
                        p.display().to_string()
                    });
                lib_error(e).context(format!("in account of [backup] of {file}"))
            })?,
        ),
    };
    let ctx_settings = UserSettings {
        backup_account,
        settings,
    };
    match args.command {
        UsersCommand::Sql(sql) => {
            let flavor = sql.flavor.map(|f| match f {
                SqlFlavor::Mysql => Flavor::Mysql,
                SqlFlavor::Mariadb => Flavor::Mariadb,
            });
            dispatch(
                global,
                policy,
                &ctx_settings,
                sql.command.into(),
                Mode::Print(flavor),
            )
        }
        cmd => dispatch(global, policy, &ctx_settings, cmd, Mode::Run),
    }
}

/// What the users commands take from `spyglass-admin.toml` besides the policy.
pub(crate) struct UserSettings {
    /// `[backup] account`.
    pub backup_account: Option<Account>,
    /// The whole file: which nightly steps need more of the backup account.
    pub settings: settings::Settings,
}

/// The backup features switched on for this lab: the binary-log archive is
/// asked for per command (`add-backup-user --binlog`), and killing long
/// queries is a one-off flag of `backup run` (`--kill-long-queries`), never
/// a setting of the nightly job: both off here.
fn backup_features() -> plan::BackupFeatures {
    plan::BackupFeatures::default()
}

/// A library input error; its hint is chosen in `output::hint_for`.
fn lib_error(e: spyglass_privileges::Error) -> anyhow::Error {
    e.into()
}

/// A connection and what the commands need from it.
struct Ctx {
    resolved: Option<Resolved>,
    session: Option<Session>,
    flavor: Flavor,
    live: LiveState,
    /// The executing account, `CURRENT_USER()`.
    me: Option<Account>,
}

fn connect(global: &GlobalOpts) -> anyhow::Result<(Resolved, Session)> {
    let env = Environment::from_process();
    let mut resolved = connection::resolve(&global.connect, &env)?;
    if !global.quiet {
        for w in &resolved.warnings {
            eprintln!("warning: {w}");
        }
    }
    let session = connection::connect(&mut resolved)?;
    Ok((resolved, session))
}

fn parse_current_user(s: &str) -> Option<Account> {
    let (u, h) = s.rsplit_once('@')?;
    Some(Account::new(u, h))
}

impl Ctx {
    fn open(global: &GlobalOpts, mode: Mode, policy: &Policy) -> anyhow::Result<Ctx> {
        if let Mode::Print(Some(flavor)) = mode {
            return Ok(Ctx {
                resolved: None,
                session: None,
                flavor,
                live: plan::offline_state(policy, flavor),
                me: None,
            });
        }
        let (resolved, mut session) = connect(global)?;
        let flavor = session.server().flavor;
        let me = parse_current_user(&session.current_user()?);
        Ok(Ctx {
            resolved: Some(resolved),
            session: Some(session),
            flavor,
            live: LiveState::default(),
            me,
        })
    }

    /// Offline (`users sql --flavor F lock NAME`), NAME is taken to exist.
    fn assume_offline(&mut self, account: &Account, mode: Mode) {
        if let Mode::Print(Some(_)) = mode {
            self.live
                .accounts
                .insert(account.clone(), live::LiveAccount::assumed(account));
        }
    }

    fn read_live(&mut self) -> anyhow::Result<()> {
        if let Some(s) = self.session.as_mut() {
            self.live = live::read(s)?;
        }
        Ok(())
    }
}

/// `NAME`, `NAME@HOST` or `NAME --account-host HOST`, validated.
fn account_arg(name: &str, host: &AccountHost, flavor: Option<Flavor>) -> anyhow::Result<Account> {
    if name.contains('@') && host.account_host.is_some() {
        return Err(UserError::new(format!(
            "'{name}' already names a host; drop --account-host or the @HOST part"
        ))
        .into());
    }
    let default_host = host.account_host.as_deref().unwrap_or("%");
    Account::parse(name, default_host, flavor).map_err(lib_error)
}

/// Reads one line from stdin (without the newline).
fn stdin_line(what: &str) -> anyhow::Result<Secret> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let p = line.trim_end_matches(['\n', '\r']).to_owned();
    if p.is_empty() {
        return Err(UserError::new(format!("no {what} on stdin"))
            .hint("pipe the password as the first line of stdin")
            .into());
    }
    Ok(Secret::new(p))
}

/// A new password: prompted twice without echo on a terminal, else one line of stdin.
fn read_new_password() -> anyhow::Result<Secret> {
    if !std::io::stdin().is_terminal() {
        return stdin_line("password");
    }
    let a = rpassword::prompt_password("New password: ")?;
    let b = rpassword::prompt_password("New password again: ")?;
    if a != b {
        return Err(UserError::new("the two passwords differ; nothing was changed").into());
    }
    if a.is_empty() {
        return Err(UserError::new("an empty password is not allowed").into());
    }
    Ok(Secret::new(a))
}

/// How the first password of new accounts is chosen.
enum FirstPassword {
    Random,
    Given(Secret),
}

fn first_password(args: &NewPasswordArgs, mode: Mode) -> anyhow::Result<FirstPassword> {
    if mode != Mode::Run {
        return Ok(FirstPassword::Random);
    }
    if let Some(p) = &args.temp_password {
        if p.is_empty() {
            return Err(UserError::new("--temp-password is empty").into());
        }
        return Ok(FirstPassword::Given(Secret::new(p.clone())));
    }
    if args.password_stdin {
        return Ok(FirstPassword::Given(stdin_line("password")?));
    }
    Ok(FirstPassword::Random)
}

/// Makes first passwords; a failing random generator sets `failed` (the
/// plan is then discarded before anything runs).
fn password_maker(
    first: FirstPassword,
    failed: &std::cell::Cell<bool>,
) -> impl FnMut(&Account) -> Secret + '_ {
    move |_| match &first {
        FirstPassword::Given(p) => p.clone(),
        FirstPassword::Random => spyglass_privileges::password::generate(PASSWORD_LEN)
            .unwrap_or_else(|_| {
                failed.set(true);
                Secret::default()
            }),
    }
}

fn check_random(failed: &std::cell::Cell<bool>) -> anyhow::Result<()> {
    if failed.get() {
        return Err(UserError::new(
            "the operating system's random generator failed: no password could be made; nothing was changed",
        )
        .into());
    }
    Ok(())
}

fn dispatch(
    global: &GlobalOpts,
    mut policy: Policy,
    settings: &UserSettings,
    cmd: UsersCommand,
    mode: Mode,
) -> anyhow::Result<ExitStatus> {
    // Input that needs no server is checked before connecting. Names are held
    // to the longest limit any flavor allows (MariaDB's 80); the server's own
    // limit is checked right after connecting, before anything is read or run.
    match &cmd {
        UsersCommand::Add(a) => {
            let account = account_arg(&a.name, &a.host, Some(Flavor::Mariadb))?;
            let role = policy.require_role(&a.role).map_err(lib_error)?;
            // Reserved names and role names need no server to refuse.
            spyglass_privileges::model::validate_member_name(
                &account.user,
                Some(Flavor::Mariadb),
                role.own_prefix,
            )
            .map_err(lib_error)?;
            if policy.roles.iter().any(|r| r.name == account.user) {
                return Err(lib_error(spyglass_privileges::Error::Invalid {
                    what: "user name",
                    value: account.user.clone(),
                    reason: "it is the name of a role of the policy".into(),
                }));
            }
        }
        UsersCommand::SetRole(a) => {
            account_arg(&a.name, &a.host, Some(Flavor::Mariadb))?;
            policy.require_role(&a.role).map_err(lib_error)?;
        }
        UsersCommand::AddModule(a) => {
            spyglass_privileges::model::validate_prefix(&a.prefix).map_err(lib_error)?;
        }
        UsersCommand::Lock(a) | UsersCommand::Remove(a) => {
            account_arg(&a.name, &a.host, Some(Flavor::Mariadb))?;
        }
        UsersCommand::AddBackupUser(a) => {
            account_arg(&a.name, &a.host, Some(Flavor::Mariadb))?;
        }
        UsersCommand::SetPassword(a) => {
            if let Some(n) = &a.name {
                account_arg(n, &a.host, Some(Flavor::Mariadb))?;
            }
        }
        _ => {}
    }
    let users_file = match &cmd {
        UsersCommand::Plan(f) => Some(load_users_file(&f.file, &mut policy)?),
        UsersCommand::Apply(a) => Some(load_users_file(&a.file.file, &mut policy)?),
        _ => None,
    };
    if let Some(f) = &users_file {
        plan::validate_users_file(f, &policy, Some(Flavor::Mariadb)).map_err(lib_error)?;
    }

    let (is_plan, dry_run) = match &cmd {
        UsersCommand::Plan(_) => (true, true),
        UsersCommand::Apply(a) => (false, a.dry_run),
        _ => (false, false),
    };
    match cmd {
        UsersCommand::List => {
            let mut ctx = Ctx::open(global, mode, &policy)?;
            ctx.read_live()?;
            report::list(global, &policy, &ctx.live)
        }
        UsersCommand::Audit(a) => {
            let mut ctx = Ctx::open(global, mode, &policy)?;
            ctx.read_live()?;
            let service = match ctx.session.as_mut() {
                Some(session) => {
                    spyglass_jobs::nightly::account::service_account(&settings.settings, session)?
                }
                None => None,
            };
            report::audit(global, &policy, &mut ctx, &a, service.as_ref())
        }
        UsersCommand::SetPassword(a) if a.name.is_none() => set_own_password(global, mode),
        cmd => {
            let mut ctx = Ctx::open(global, mode, &policy)?;
            let flavor = Some(ctx.flavor);
            let quiet = global.quiet || global.json;
            let mut next_step: Option<String> = None;
            let (plan, what) = match cmd {
                UsersCommand::Roles(_) => {
                    ctx.read_live()?;
                    if let Mode::Print(Some(f)) = mode {
                        // Offline: everything roles init does on a fresh server.
                        ctx.live = LiveState {
                            schema_all: plan::schema_all(f),
                            ..LiveState::default()
                        };
                    }
                    (
                        plan::roles_init(&policy, &ctx.live, ctx.flavor),
                        "roles init".to_owned(),
                    )
                }
                UsersCommand::Add(a) => {
                    let account = account_arg(&a.name, &a.host, flavor)?;
                    let first = first_password(&a.password, mode)?;
                    // Only a generated password is shown; the admin knows a given one.
                    let generated = matches!(first, FirstPassword::Random);
                    ctx.read_live()?;
                    let rng_failed = std::cell::Cell::new(false);
                    let mut make = password_maker(first, &rng_failed);
                    let mut new = NewPassword {
                        make: &mut make,
                        expire: a.password.expire,
                    };
                    let mut p =
                        plan::add_user(&policy, &ctx.live, ctx.flavor, &account, &a.role, &mut new)
                            .map_err(lib_error)?;
                    check_random(&rng_failed)?;
                    if !generated {
                        p.new_passwords.clear();
                    }
                    if !quiet && mode == Mode::Run && !p.is_empty() {
                        if a.password.temp_password.is_some() && !a.password.expire {
                            eprintln!("warning: --temp-password is visible to other users of this machine and is known to everyone in the lab; add --expire so it must be changed at first login");
                        }
                        for anon in plan::shadowing_anonymous(&ctx.live, &account) {
                            eprintln!(
                                "warning: the anonymous account {anon} shadows {account} for logins from '{}': {}'s login from there will fail with \"Access denied\"; drop it (DROP USER {}) unless it is needed",
                                anon.host,
                                account.user,
                                anon.sql()
                            );
                        }
                        if a.password.expire {
                            eprintln!(
                                "warning: with --expire, DataJoint (and Spyglass) cannot log in as {} until the password is changed: PyMySQL gets error {} and dj.set_password() cannot connect",
                                account.user,
                                if ctx.flavor == Flavor::Mysql { "1862 (password expired)" } else { "1820 (must SET PASSWORD)" }
                            );
                        }
                    }
                    if mode == Mode::Run && !p.is_empty() {
                        next_step = Some(first_login_hint(
                            &account,
                            ctx.flavor,
                            ctx.resolved.as_ref(),
                        ));
                    }
                    (p, format!("add {account}"))
                }
                UsersCommand::SetRole(a) => {
                    let account = account_arg(&a.name, &a.host, flavor)?;
                    ctx.read_live()?;
                    let p = plan::set_role(&policy, &ctx.live, ctx.flavor, &account, &a.role)
                        .map_err(lib_error)?;
                    (p, format!("set-role {account} {}", a.role))
                }
                UsersCommand::AddModule(a) => {
                    ctx.read_live()?;
                    let p = plan::add_module(&policy, &ctx.live, &a.prefix).map_err(lib_error)?;
                    (p, format!("add-module {}", a.prefix))
                }
                UsersCommand::Lock(a) => {
                    let account = account_arg(&a.name, &a.host, flavor)?;
                    ctx.read_live()?;
                    ctx.assume_offline(&account, mode);
                    let p = plan::lock(&ctx.live, &account).map_err(lib_error)?;
                    (p, format!("lock {account}"))
                }
                UsersCommand::Remove(a) => {
                    let account = account_arg(&a.name, &a.host, flavor)?;
                    ctx.read_live()?;
                    ctx.assume_offline(&account, mode);
                    (
                        plan::remove(&ctx.live, &account),
                        format!("remove {account}"),
                    )
                }
                UsersCommand::AddBackupUser(a) => {
                    let account = account_arg(&a.name, &a.host, flavor)?;
                    let first = if a.password_stdin && mode == Mode::Run {
                        FirstPassword::Given(stdin_line("password")?)
                    } else {
                        FirstPassword::Random
                    };
                    let generated = matches!(first, FirstPassword::Random);
                    ctx.read_live()?;
                    let held = match ctx.session.as_mut() {
                        Some(session) => {
                            spyglass_privileges::grants::account_global(session, &account)?
                        }
                        None => ctx.live.accounts.get(&account).map(|a| a.global.clone()),
                    };
                    let mut features = backup_features();
                    // `--binlog`: also what `binlog archive` needs (a replica's privileges).
                    features.binlog_archive |= a.binlog;
                    let want = plan::backup_account_privileges(ctx.flavor, features);
                    // What the enabled nightly steps need on schemas (the
                    // settings' restore drill and cleanup apply, or the flags).
                    let mut steps = nightly_account::Steps::of(&settings.settings);
                    steps.drill |= a.restore_drill;
                    steps.cleanup_apply |= a.cleanup_apply;
                    let schema_want = {
                        let mut session = ctx.session.as_mut();
                        nightly_account::schema_needs(&settings.settings, steps, &mut || {
                            match session.as_deref_mut() {
                                Some(s) => nightly_account::external_schemas(s),
                                None => Ok(Vec::new()),
                            }
                        })?
                    };
                    let rng_failed = std::cell::Cell::new(false);
                    let mut make = password_maker(first, &rng_failed);
                    let mut new = NewPassword {
                        make: &mut make,
                        expire: false,
                    };
                    let mut p = plan::add_backup_user(
                        &policy,
                        &ctx.live,
                        held,
                        &want,
                        &schema_want,
                        &account,
                        &mut new,
                    )
                    .map_err(lib_error)?;
                    if mode == Mode::Run
                        && !quiet
                        && settings.backup_account.as_ref() != Some(&account)
                    {
                        eprintln!(
                            "note: add account = \"{}@{}\" to [backup] of spyglass-admin.toml so users audit checks it as the backup account",
                            account.user, account.host
                        );
                    }
                    check_random(&rng_failed)?;
                    if !generated {
                        p.new_passwords.clear();
                    }
                    (p, format!("add-backup-user {account}"))
                }
                UsersCommand::SetPassword(a) => {
                    let name = a.name.as_deref().unwrap_or_default();
                    let account = account_arg(name, &a.host, flavor)?;
                    ctx.read_live()?;
                    if mode == Mode::Run && !ctx.live.accounts.contains_key(&account) {
                        return Err(lib_error(spyglass_privileges::Error::NoSuchAccount {
                            account,
                        }));
                    }
                    let password = if mode == Mode::Run {
                        read_new_password()?
                    } else {
                        Secret::default()
                    };
                    let p = Plan {
                        steps: vec![Step::SetPassword {
                            account: account.clone(),
                            password,
                            expire: a.expire,
                        }],
                        ..Plan::default()
                    };
                    (p, format!("set-password {account}"))
                }
                UsersCommand::Plan(_) | UsersCommand::Apply(_) => {
                    let file = users_file.unwrap_or_default();
                    let users =
                        plan::validate_users_file(&file, &policy, flavor).map_err(lib_error)?;
                    ctx.read_live()?;
                    let rng_failed = std::cell::Cell::new(false);
                    let mut make = password_maker(FirstPassword::Random, &rng_failed);
                    let mut new = NewPassword {
                        make: &mut make,
                        expire: file.expire,
                    };
                    let p = plan::from_file(&policy, &ctx.live, ctx.flavor, &users, &mut new)
                        .map_err(lib_error)?;
                    check_random(&rng_failed)?;
                    if let Some(me) = &ctx.me {
                        plan::refuse_self_harm(&p, me).map_err(lib_error)?;
                    }
                    if dry_run || mode != Mode::Run {
                        let pending = !p.is_empty();
                        print_plan(global, &ctx, &p, "plan")?;
                        return Ok(if is_plan && pending && mode == Mode::Run {
                            ExitStatus::Findings
                        } else {
                            ExitStatus::Success
                        });
                    }
                    (p, "apply".to_owned())
                }
                UsersCommand::List | UsersCommand::Audit(_) | UsersCommand::Sql(_) => {
                    unreachable!("handled above")
                }
            };
            match mode {
                Mode::Print(_) => {
                    print_plan(global, &ctx, &plan, &what)?;
                    Ok(ExitStatus::Success)
                }
                Mode::Run => {
                    let status = execute(global, &mut ctx, &plan, &what)?;
                    if let Some(hint) = next_step.filter(|_| !global.quiet && !global.json) {
                        output::print_out(&hint)?;
                    }
                    Ok(status)
                }
            }
        }
    }
}

/// What the new user must run first, shown after `users add`: DataJoint's
/// own `dj.set_password()` cannot change an expired password, and on
/// MariaDB it fails on the server's version string, so it is our command.
fn first_login_hint(account: &Account, flavor: Flavor, resolved: Option<&Resolved>) -> String {
    let host = match resolved.map(|r| &r.options.endpoint) {
        Some(spyglass_db::Endpoint::Tcp { host, port }) if *port == 3306 => host.clone(),
        Some(spyglass_db::Endpoint::Tcp { host, port }) => format!("{host}:{port}"),
        _ => "<server>".to_owned(),
    };
    format!(
        "next: {user} sets a password of their own (works with an expired password; DataJoint's dj.set_password() does not{maria}):\n  DJ_HOST={host} DJ_USER={user} spyglass-admin users set-password\n  (asks for the first password, then the new one twice)\n",
        user = account.user,
        maria = if flavor == Flavor::Mariadb {
            ", and on MariaDB it fails on the server's version string"
        } else {
            ""
        },
    )
}

fn load_users_file(path: &std::path::Path, policy: &mut Policy) -> anyhow::Result<UsersFile> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UserError::new(format!("cannot read {}: {e}", path.display())))?;
    let file: UsersFile = toml::from_str(&text).map_err(|e| {
        let (line, col) = e
            .span()
            .map(|s| {
                let before = &text[..s.start.min(text.len())];
                (
                    before.matches('\n').count() + 1,
                    before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1,
                )
            })
            .unwrap_or((1, 1));
        UserError::new(format!(
            "{}:{line}:{col}: {}",
            path.display(),
            e.message().replace("unknown field", "unknown key")
        ))
        .hint("keys: expire, [policy] (as [users] in spyglass-admin.toml), [[users]] with name, role, host")
    })?;
    if file.policy != PolicyConfig::default() {
        policy
            .apply(&file.policy)
            .map_err(|e| lib_error(e).context(format!("in [policy] of {}", path.display())))?;
    }
    Ok(file)
}

/// `--json` output of every changing command. Fields are only ever added.
#[derive(Debug, Serialize)]
struct ChangeReport {
    /// The command, e.g. `add 'alice'@'%'`.
    command: String,
    /// `mysql` or `mariadb`.
    flavor: Flavor,
    /// True when the plan was printed, not run.
    dry_run: bool,
    /// Statements planned (passwords shown as `<password>`).
    planned: Vec<String>,
    /// Statements that ran, in order.
    applied: Vec<String>,
    /// The statement that failed and the server's message.
    failed: Option<spyglass_privileges::apply::Failure>,
    /// Statements not run because of the failure.
    not_applied: Vec<String>,
    /// After a failure: statements run to take back what this command had
    /// done to the failing statement's account.
    undone: Vec<String>,
    /// First passwords of accounts created by this run (shown once).
    new_passwords: Vec<NewPasswordJson>,
}

#[derive(Debug, Serialize)]
struct NewPasswordJson {
    user: String,
    host: String,
    password: String,
}

fn print_plan(global: &GlobalOpts, ctx: &Ctx, plan: &Plan, what: &str) -> anyhow::Result<()> {
    if global.json {
        return output::print_json(&ChangeReport {
            command: what.to_owned(),
            flavor: ctx.flavor,
            dry_run: true,
            planned: plan
                .steps
                .iter()
                .map(|s| s.sql(ctx.flavor, Reveal::Redacted))
                .collect(),
            applied: vec![],
            failed: None,
            not_applied: vec![],
            undone: vec![],
            new_passwords: vec![],
        });
    }
    if plan.is_empty() {
        output::print_out(&format!("-- {what}: nothing to change\n"))
    } else {
        output::print_out(&format!(
            "-- {what} ({})\n{}",
            ctx.flavor,
            sql::script(&plan.steps, ctx.flavor)
        ))
    }
}

fn execute(
    global: &GlobalOpts,
    ctx: &mut Ctx,
    plan: &Plan,
    what: &str,
) -> anyhow::Result<ExitStatus> {
    if let Some(me) = &ctx.me {
        plan::refuse_self_harm(plan, me).map_err(lib_error)?;
    }
    let session = ctx
        .session
        .as_mut()
        .ok_or_else(|| anyhow::anyhow!("no connection"))?;
    preflight(session, plan, &ctx.live, ctx.me.as_ref())?;
    let report = spyglass_privileges::apply::apply_per_account(session, &plan.steps, &ctx.live)?;
    // Passwords of accounts whose CREATE USER ran, even if a later statement failed.
    let created: Vec<&(Account, Secret)> = plan
        .new_passwords
        .iter()
        .filter(|(a, _)| {
            let create = plan
                .steps
                .iter()
                .position(|s| matches!(s, Step::CreateUser { account, .. } if account == a));
            let dropped = report
                .undone
                .iter()
                .any(|u| *u == format!("DROP USER {}", a.sql()));
            create.is_some_and(|i| i < report.applied.len()) && !dropped
        })
        .collect();
    if global.json {
        output::print_json(&ChangeReport {
            command: what.to_owned(),
            flavor: ctx.flavor,
            dry_run: false,
            planned: plan
                .steps
                .iter()
                .map(|s| s.sql(ctx.flavor, Reveal::Redacted))
                .collect(),
            applied: report.applied.clone(),
            failed: report.failed.clone(),
            not_applied: report.not_applied.clone(),
            undone: report.undone.clone(),
            new_passwords: created
                .iter()
                .map(|(a, p)| NewPasswordJson {
                    user: a.user.clone(),
                    host: a.host.clone(),
                    password: p.expose().to_owned(),
                })
                .collect(),
        })?;
    } else {
        let mut s = String::new();
        if plan.is_empty() {
            let _ = writeln!(s, "{what}: nothing to change");
        } else {
            for a in &report.applied {
                let _ = writeln!(s, "applied: {a}");
            }
        }
        for (a, p) in &created {
            let _ = writeln!(
                s,
                "password for {a} (shown once; give it to the user): {}",
                p.expose()
            );
        }
        if !report.applied.is_empty() {
            let _ = writeln!(s, "{what}: {} statement(s) applied", report.applied.len());
        }
        output::print_out(&s)?;
    }
    if let Some(f) = &report.failed {
        if !global.json {
            eprintln!("failed:  {}", f.sql);
            for n in &report.not_applied {
                eprintln!("not applied: {n}");
            }
            for u in &report.undone {
                eprintln!("undone:  {u}");
            }
        }
        let account = plan
            .steps
            .get(report.applied.len())
            .and_then(Step::account)
            .map(|a| a.to_string());
        let mut msg = format!(
            "{what}: statement {} of {} failed: {}",
            report.applied.len() + 1,
            plan.steps.len(),
            f.error
        );
        if let Some(u) = &report.undo_failed {
            msg.push_str(&format!(
                "; undoing it failed too at {}: {} (the account is left as the undone: lines show)",
                u.sql, u.error
            ));
        } else if let (Some(a), false) = (&account, report.undone.is_empty()) {
            msg.push_str(&format!(
                "; what this command had done to {a} was undone ({} statement(s))",
                report.undone.len()
            ));
        }
        return Err(UserError::new(msg)
        .hint("fix the cause (e.g. the privileges of the account running this) and run the same command again (it only does what is still missing)")
        .into());
    }
    Ok(ExitStatus::Success)
}

/// Refuses a plan the connected account cannot run to the end, before its
/// first statement (a dj_admin may create accounts but not grant roles).
fn preflight(
    session: &mut Session,
    plan: &Plan,
    live: &LiveState,
    me: Option<&Account>,
) -> anyhow::Result<()> {
    if plan.is_empty() {
        return Ok(());
    }
    let held = spyglass_privileges::grants::current_privileges(session)?;
    let missing = spyglass_privileges::preflight::missing(
        &plan.steps,
        &held,
        session.server().flavor,
        &live.schema_all,
    );
    if missing.is_empty() {
        return Ok(());
    }
    Err(lib_error(spyglass_privileges::Error::Insufficient {
        account: me.map_or(held.account, ToString::to_string),
        missing,
    }))
}

fn set_own_password(global: &GlobalOpts, mode: Mode) -> anyhow::Result<ExitStatus> {
    if let Mode::Print(flavor) = mode {
        let flavor = match flavor {
            Some(f) => f,
            None => {
                let (_, s) = connect(global)?;
                s.server().flavor
            }
        };
        let sql = match flavor {
            Flavor::Mariadb => "SET PASSWORD = PASSWORD(<password>);\n",
            Flavor::Mysql => "ALTER USER CURRENT_USER() IDENTIFIED BY <password>;\n",
        };
        output::print_out(sql)?;
        return Ok(ExitStatus::Success);
    }
    let env = Environment::from_process();
    let resolved = connection::resolve(&global.connect, &env)?;
    let current = match &resolved.options.password {
        Some(p) => p.clone(),
        None if std::io::stdin().is_terminal() => {
            Secret::new(rpassword::prompt_password("Current password: ")?)
        }
        None => Secret::default(),
    };
    let new = read_new_password()?;
    spyglass_privileges::login::change_own_password(&resolved.options, &current, &new)?;
    if !global.quiet {
        eprintln!(
            "password of '{}' changed; update DJ_PASS or database.password in your DataJoint config",
            resolved.options.user
        );
    }
    if global.json {
        output::print_json(&serde_json::json!({ "changed": true, "user": resolved.options.user }))?;
    }
    Ok(ExitStatus::Success)
}
