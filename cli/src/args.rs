//! The command line: every verb, its arguments and its help.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ferry_core::config::{is_valid_name, parse_duration};

pub const EXIT_CODES: &str = "\
Exit codes:
  0  done: the request was taken, or the release is known-good
  1  refused, or the release ended badly (FAILED, ROLLED_BACK, preflight failed, ...)
  2  usage error: bad arguments, nothing was asked of AWS
  3  timed out waiting (--wait, ferry wait)
  4  AWS or configuration error (credentials, missing stack, invalid config, ...)";

const ABOUT: &str = "Operate ferry: see what runs where, plan a release, and ask ferry's functions to deploy, roll back, promote or approve.";

const LONG_ABOUT: &str = "\
Operate ferry: see what runs where, plan a release, and ask ferry's functions to deploy, roll back, promote or approve.

Reads (status, history, plan, wait, config check) use the ledger table, ECS, ECR, SSM, Secrets Manager and CloudWatch with your credentials. Every verb that changes something is a Lambda Invoke of the function that takes that request (<stack>-deploy, <stack>-rollback, <stack>-reconcile): ferry's functions stay the only writers.

The ledger table and config parameter are read from <stack>-deploy's configuration (FERRY_LEDGER_TABLE, FERRY_CONFIG_PARAMETER) unless --table / --config-parameter name them. Endpoints: AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE> (e.g. AWS_ENDPOINT_URL_LAMBDA) or --endpoint-url.";

#[derive(Debug, Parser)]
#[command(name = "ferry", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The CloudFormation stack ferry is deployed as: its functions are <stack>-deploy, <stack>-rollback, ...
    #[arg(long, env = "FERRY_STACK", default_value = "ferry", global = true, value_parser = stack_name)]
    pub stack: String,
    /// Endpoint for every AWS service (AWS_ENDPOINT_URL_<SERVICE> still wins for its service).
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// AWS region (default: AWS_REGION or the profile's).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// The ledger table (default: <stack>-deploy's FERRY_LEDGER_TABLE).
    #[arg(long, global = true, value_name = "TABLE")]
    pub table: Option<String>,
    /// The SSM parameter holding ferry's config (default: <stack>-deploy's FERRY_CONFIG_PARAMETER).
    #[arg(long, global = true, value_name = "NAME")]
    pub config_parameter: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// What runs in each lane: tag, digest, since when; the release in flight and its step; known-good history; frozen, held and bad releases.
    Status(StatusArgs),
    /// The releases of one environment, newest first: state, times, duration, cause.
    History(HistoryArgs),
    /// A dry run that changes nothing: tag policy, preflight, the task-definition diff per family, the SSM change and the migration.
    Plan(PlanArgs),
    /// Deploy a tag or digest to an environment (invokes <stack>-deploy).
    #[command(after_help = EXIT_CODES)]
    Deploy(DeployArgs),
    /// Roll an environment back to its previous known-good release, or to --to (invokes <stack>-rollback). The lane stays frozen until `ferry unfreeze`.
    #[command(after_help = EXIT_CODES)]
    Rollback(RollbackArgs),
    /// Lift an environment's freeze after a rollback; a held push goes out (invokes <stack>-rollback).
    #[command(after_help = EXIT_CODES)]
    Unfreeze(LaneVerbArgs),
    /// Deploy again a digest whose release failed: the lane's last failed one, or --tag/--digest (invokes <stack>-deploy).
    #[command(after_help = EXIT_CODES)]
    Retry(RetryArgs),
    /// Deploy FROM's known-good digest to TO (invokes <stack>-deploy).
    #[command(after_help = EXIT_CODES)]
    Promote(PromoteArgs),
    /// Let a release waiting for approval go on (invokes <stack>-deploy).
    #[command(after_help = EXIT_CODES)]
    Approve(LaneVerbArgs),
    /// Refuse a release waiting for approval (invokes <stack>-deploy).
    #[command(after_help = EXIT_CODES)]
    Reject(RejectArgs),
    /// Block until the release of a digest is known-good (exit 0) or ended badly (exit 1), or --timeout passes (exit 3). For CI, after `docker push`.
    #[command(after_help = EXIT_CODES)]
    Wait(WaitArgs),
    /// Run the reconcile pass now, for every lane or the ones named (invokes <stack>-reconcile).
    #[command(after_help = EXIT_CODES)]
    Reconcile(ReconcileArgs),
    /// ferry's configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the TOML (a file, or the config parameter), then check it against the account: clusters, services, task-definition families, parameters and alarms exist.
    #[command(after_help = EXIT_CODES)]
    Check(ConfigCheckArgs),
}

/// `APP/ENV`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneArg {
    pub app: String,
    pub env: String,
}

impl std::fmt::Display for LaneArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.app, self.env)
    }
}

/// `APP` or `APP/ENV`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub app: String,
    pub env: Option<String>,
}

fn name(kind: &str, value: &str) -> Result<String, String> {
    if is_valid_name(value) {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "`{value}` is not a valid {kind} name (1 to 64 letters, digits, `_` or `-`)"
        ))
    }
}

pub fn lane(value: &str) -> Result<LaneArg, String> {
    match value.split_once('/') {
        Some((app, env)) => Ok(LaneArg {
            app: name("app", app)?,
            env: name("environment", env)?,
        }),
        None => Err(format!(
            "`{value}` names no environment; write APP/ENV, e.g. shop/prod"
        )),
    }
}

pub fn scope(value: &str) -> Result<Scope, String> {
    match value.split_once('/') {
        Some(_) => lane(value).map(|l| Scope {
            app: l.app,
            env: Some(l.env),
        }),
        None => Ok(Scope {
            app: name("app", value)?,
            env: None,
        }),
    }
}

fn stack_name(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value.starts_with(|c: char| c.is_ascii_alphabetic())
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(value.to_owned())
    } else {
        Err(format!("`{value}` is not a CloudFormation stack name (letters, digits and `-`, starting with a letter)"))
    }
}

pub fn duration(value: &str) -> Result<Duration, String> {
    parse_duration(value)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{value}` is not a duration; write e.g. 90s, 15m or 1h"))
}

fn digest(value: &str) -> Result<String, String> {
    let hex = value.strip_prefix("sha256:").unwrap_or("");
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(format!(
            "`{value}` is not an image digest; write sha256: and 64 hex characters"
        ))
    }
}

fn limit(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{value}` is not a positive number")),
    }
}

/// Exactly one of --tag / --digest.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct ImageArg {
    /// The image tag.
    #[arg(long)]
    pub tag: Option<String>,
    /// The image digest (sha256:...).
    #[arg(long, value_parser = digest)]
    pub digest: Option<String>,
}

/// At most one of --tag / --digest.
#[derive(Debug, Clone, Args)]
#[group(required = false, multiple = false)]
pub struct OptionalImageArg {
    /// The image tag.
    #[arg(long)]
    pub tag: Option<String>,
    /// The image digest (sha256:...).
    #[arg(long, value_parser = digest)]
    pub digest: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct Follow {
    /// Follow the release to its end with a live progress line; exit as `ferry wait` does.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, value_parser = duration, default_value = "30m", requires = "wait")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// APP or APP/ENV (default: every lane of the config).
    #[arg(value_parser = scope, value_name = "APP[/ENV]")]
    pub scope: Option<Scope>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    #[arg(value_parser = lane, value_name = "APP/ENV")]
    pub lane: LaneArg,
    /// At most this many releases, newest first.
    #[arg(long, value_parser = limit, default_value = "20")]
    pub limit: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    #[arg(value_parser = lane, value_name = "APP/ENV")]
    pub lane: LaneArg,
    #[command(flatten)]
    pub image: ImageArg,
    /// Which repository of the environment, when it runs more than one.
    #[arg(long)]
    pub repository: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    #[arg(value_parser = lane, value_name = "APP/ENV")]
    pub lane: LaneArg,
    #[command(flatten)]
    pub image: ImageArg,
    /// Which repository of the environment, when it runs more than one.
    #[arg(long)]
    pub repository: Option<String>,
    #[command(flatten)]
    pub follow: Follow,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    #[arg(value_parser = lane, value_name = "APP/ENV")]
    pub lane: LaneArg,
    /// A known-good tag or release id to roll back to (default: the previous known-good release).
    #[arg(long, value_name = "TAG|RELEASE")]
    pub to: Option<String>,
    /// Why: recorded on the release and in its events.
    #[arg(long, default_value = "rolled back by an operator (ferry rollback)")]
    pub reason: String,
    /// Which repository of the environment, when it runs more than one.
    #[arg(long)]
    pub repository: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct LaneVerbArgs {
    #[arg(value_parser = lane, value_name = "APP/ENV")]
    pub lane: LaneArg,
    #[command(flatten)]
    pub follow: Follow,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RetryArgs {
    #[arg(value_parser = lane, value_name = "APP/ENV")]
    pub lane: LaneArg,
    #[command(flatten)]
    pub image: OptionalImageArg,
    /// Deploy again a digest that was rolled back (marked bad).
    #[arg(long)]
    pub force: bool,
    /// Which repository of the environment, when it runs more than one.
    #[arg(long)]
    pub repository: Option<String>,
    #[command(flatten)]
    pub follow: Follow,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct PromoteArgs {
    #[arg(value_parser = |v: &str| name("app", v))]
    pub app: String,
    /// The environment whose known-good digest is promoted.
    #[arg(value_parser = |v: &str| name("environment", v))]
    pub from: String,
    /// The environment it goes to.
    #[arg(value_parser = |v: &str| name("environment", v))]
    pub to: String,
    #[command(flatten)]
    pub follow: Follow,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RejectArgs {
    #[arg(value_parser = lane, value_name = "APP/ENV")]
    pub lane: LaneArg,
    /// Why: recorded on the release.
    #[arg(long, default_value = "rejected by an operator (ferry reject)")]
    pub reason: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    #[arg(value_parser = lane, value_name = "APP/ENV")]
    pub lane: LaneArg,
    /// The pushed image's digest (sha256:...): its newest release is followed.
    #[arg(long, value_parser = digest)]
    pub digest: String,
    /// Give up (exit 3) after this long.
    #[arg(long, value_parser = duration, default_value = "30m")]
    pub timeout: Duration,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ReconcileArgs {
    /// APP or APP/ENV (default: every lane).
    #[arg(value_parser = scope, value_name = "APP[/ENV]")]
    pub scope: Option<Scope>,
    /// Only the lane of this repository.
    #[arg(long)]
    pub repository: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ConfigCheckArgs {
    /// A TOML file (default: the config parameter).
    pub file: Option<PathBuf>,
    /// Validate the TOML only; do not check it against the account.
    #[arg(long)]
    pub offline: bool,
}
