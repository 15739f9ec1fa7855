use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// `users ...`
#[derive(Debug, Args)]
pub struct UsersArgs {
    #[command(subcommand)]
    pub command: UsersCommand,
}

/// Accounts are `NAME` (host `%`) or `NAME@HOST`. `--host` names the
/// server (a global connection flag), so an account's host part is given
/// with `NAME@HOST` or `--account-host`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Roles of the policy: `roles init` creates them and makes their grants match.
    #[command(subcommand)]
    Roles(RolesCommand),
    /// Create an account with a role (active at login) and its own prefix.
    ///
    /// A random temporary password is generated and shown once, unless
    /// --password-stdin or --temp-password is given. An existing account is
    /// never changed: if it already holds ROLE with nothing missing this does
    /// nothing, otherwise it is refused (use set-role). Reserved names (root,
    /// PUBLIC, mysql.*, mariadb.*, debian-sys-maint), role names, and names
    /// whose own-schema pattern would exceed 64 characters are refused.
    /// Prints the command the new user runs to choose a password.
    Add(AddArgs),
    /// Give an existing account exactly one role of the policy (active at
    /// login), its own prefix if the role has one, and no other direct grants.
    SetRole(SetRoleArgs),
    /// Grant the roles with shared-prefix privileges (dj_user) on PREFIX_*.
    AddModule(AddModuleArgs),
    /// Accounts with their roles, active-at-login, own-prefix grant, password age, lock.
    List,
    /// Findings with severity and fix. Exit 0 clean, 1 findings, 2 error.
    Audit(AuditArgs),
    /// What `apply -f FILE` would run. Exit 0 nothing to change, 1 changes pending.
    Plan(FileArgs),
    /// Make the server match FILE (roles of the policy and the listed users).
    Apply(ApplyArgs),
    /// Change a password: your own (no admin privilege needed, also when
    /// expired), or NAME's as an admin. Prompts twice without echo; reads
    /// one line from stdin when stdin is not a terminal.
    SetPassword(SetPasswordArgs),
    /// Lock an account (ACCOUNT LOCK); it keeps its grants.
    Lock(NameArgs),
    /// Drop an account.
    Remove(NameArgs),
    /// The dedicated backup account, with exactly what `backup run` needs on this flavor.
    AddBackupUser(BackupUserArgs),
    /// Print the SQL a command would run, without running it.
    ///
    /// With --flavor, works offline against an empty server; otherwise it
    /// connects and prints only what differs.
    Sql(SqlArgs),
}

#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// Create the policy's roles and make their grants match it (missing granted, extra revoked).
    Init,
}

/// Where an account may connect from.
#[derive(Debug, Args)]
pub struct AccountHost {
    /// Host part of the account (default `%`; `NAME@HOST` also works).
    #[arg(long, value_name = "HOST")]
    pub account_host: Option<String>,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// User name (`NAME` or `NAME@HOST`).
    pub name: String,
    /// guest, collab, user, admin, or a custom role from the settings.
    #[arg(long, short)]
    pub role: String,
    #[command(flatten)]
    pub host: AccountHost,
    #[command(flatten)]
    pub password: NewPasswordArgs,
}

#[derive(Debug, Args)]
pub struct NewPasswordArgs {
    /// Use this well-known temporary password (Spyglass: temppass) instead
    /// of a random one. It is visible in the process list: pair it with --expire.
    #[arg(long, value_name = "PASSWORD", conflicts_with = "password_stdin")]
    pub temp_password: Option<String>,
    /// Read the first password from the first line of stdin.
    #[arg(long)]
    pub password_stdin: bool,
    /// The user must choose a new password at first login. DataJoint cannot
    /// log in until then: the user runs `spyglass-admin users set-password`.
    #[arg(long)]
    pub expire: bool,
}

#[derive(Debug, Args)]
pub struct SetRoleArgs {
    /// User name (`NAME` or `NAME@HOST`).
    pub name: String,
    /// The role.
    pub role: String,
    #[command(flatten)]
    pub host: AccountHost,
}

#[derive(Debug, Args)]
pub struct AddModuleArgs {
    /// Schema prefix, e.g. `waveform` for `waveform_*` schemas.
    pub prefix: String,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only these user names (default: every account). Roles are always checked.
    pub names: Vec<String>,
    /// Do not try logging in with the temporary passwords.
    #[arg(long)]
    pub no_login_check: bool,
}

#[derive(Debug, Args)]
pub struct FileArgs {
    /// users.toml: roles, users with role and host, policy overrides.
    #[arg(long, short, value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Print the plan and run nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct SetPasswordArgs {
    /// Whose password (default: your own).
    pub name: Option<String>,
    #[command(flatten)]
    pub host: AccountHost,
    /// The user must change it at next login (only with NAME).
    #[arg(long, requires = "name")]
    pub expire: bool,
}

#[derive(Debug, Args)]
pub struct NameArgs {
    /// User name (`NAME` or `NAME@HOST`).
    pub name: String,
    #[command(flatten)]
    pub host: AccountHost,
}

#[derive(Debug, Args)]
pub struct BackupUserArgs {
    /// User name (`NAME` or `NAME@HOST`; give the backup host, e.g. `backup@localhost`).
    pub name: String,
    #[command(flatten)]
    pub host: AccountHost,
    /// Read the password from the first line of stdin (default: a random one, shown once).
    #[arg(long)]
    pub password_stdin: bool,
    /// Also grant what `binlog archive` needs (MySQL: REPLICATION SLAVE,
    /// REPLICATION CLIENT; MariaDB: REPLICATION SLAVE, BINLOG MONITOR).
    #[arg(long)]
    pub binlog: bool,
    /// Also grant what a restore drill needs (ALL on `drill\_%`.*), as
    /// when [nightly] restore_drill is set.
    #[arg(long)]
    pub restore_drill: bool,
    /// Also grant what cleanup apply needs (DELETE, INSERT on the schemas
    /// in [cleanup] schemas), as when [nightly] cleanup = "apply".
    #[arg(long)]
    pub cleanup_apply: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqlFlavor {
    Mysql,
    Mariadb,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// Render for this flavor against an empty server, without connecting.
    #[arg(long, value_enum)]
    pub flavor: Option<SqlFlavor>,
    #[command(subcommand)]
    pub command: SqlCommand,
}

/// The commands `users sql` can print (the changing ones).
#[derive(Debug, Subcommand)]
pub enum SqlCommand {
    /// `roles init`
    #[command(subcommand)]
    Roles(RolesCommand),
    /// `add NAME --role R`
    Add(AddArgs),
    /// `set-role NAME R`
    SetRole(SetRoleArgs),
    /// `add-module PREFIX`
    AddModule(AddModuleArgs),
    /// `apply -f FILE`
    Apply(ApplyArgs),
    /// `set-password [NAME]`
    SetPassword(SetPasswordArgs),
    /// `lock NAME`
    Lock(NameArgs),
    /// `remove NAME`
    Remove(NameArgs),
    /// `add-backup-user NAME`
    AddBackupUser(BackupUserArgs),
}

impl From<SqlCommand> for UsersCommand {
    fn from(c: SqlCommand) -> Self {
        match c {
            SqlCommand::Roles(x) => UsersCommand::Roles(x),
            SqlCommand::Add(x) => UsersCommand::Add(x),
            SqlCommand::SetRole(x) => UsersCommand::SetRole(x),
            SqlCommand::AddModule(x) => UsersCommand::AddModule(x),
            SqlCommand::Apply(x) => UsersCommand::Apply(x),
            SqlCommand::SetPassword(x) => UsersCommand::SetPassword(x),
            SqlCommand::Lock(x) => UsersCommand::Lock(x),
            SqlCommand::Remove(x) => UsersCommand::Remove(x),
            SqlCommand::AddBackupUser(x) => UsersCommand::AddBackupUser(x),
        }
    }
}
