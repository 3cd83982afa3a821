//! ferry's configuration: one TOML document describing apps → environments → cluster,
//! services and the repositories they run, tag policy, migration, guarding alarms and
//! the SSM image-tag parameter. It is validated on load; every error names the key
//! (e.g. `apps.shop.environments.prod.cluster`) and says what to do.
//!
//! ```toml
//! mutable_tags = ["main"]            # optional, refused everywhere ("latest" always is)
//!
//! [apps.shop]
//! repository = "shop"                # optional default for services and the migration
//!
//! [apps.shop.environments.prod]
//! cluster = "shop-prod"
//! services = ["api", "worker", { name = "web", repository = "shop-web" }]
//! tags = { semver = ">=1.0.0" }      # exactly one of glob / regex / semver
//! mutable_tags = ["stable"]          # optional
//! image_tag_parameter = "/shop/prod/{repository}/currentImageTag"
//! migration = { task_family = "shop-migrate", timeout = "15m" }   # optional
//! alarms = ["shop-prod-5xx"]         # optional
//! bake = "10m"                       # optional; default derived from the alarms, "0s" opts out
//! verify = { task_family = "shop-smoke", timeout = "5m" }         # optional smoke test
//! unfreeze_on_new_digest = false     # optional
//! heal_drift = false                 # optional: the reconcile pass puts drifted services back
//! restart_on_secret_change = false   # optional: a referenced secret's new value restarts the services
//! keep = 5                           # optional: revisions of the last 5 known-good releases kept
//! promote_from = "staging"           # optional: only digests known-good in staging are deployed
//! approval = true                    # optional: a release waits for an operator's approve
//! approval_expires_after = "24h"     # optional (with approval): an unanswered request ends
//! ```
//!
//! **One image-tag parameter per lane.** Releases are serialised per lane (one
//! repository's services in one environment), and each lane records the tag it
//! runs in its own SSM parameter. `image_tag_parameter` may contain `{repository}`,
//! which ferry replaces with the lane's repository: above, `shop` and `shop-web`
//! write `/shop/prod/shop/currentImageTag` and `/shop/prod/shop-web/currentImageTag`.
//! An environment that runs one repository may name a fixed parameter; one that
//! runs several must use the placeholder (a fixed name would be overwritten by
//! every lane), and no two lanes of the document may resolve to the same name.
//! [`Environment::image_tag_parameter`] gives a lane's name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::image::validate_repository_name;
pub use crate::names::{is_valid_name, MAX_NAME_LEN};
use crate::names::{DIGEST_PREFIX_LEN, MAX_RELEASE_ID_LEN};
use crate::tag_policy::{validate_tag, TagPolicy, ALWAYS_MUTABLE};

/// The longest app and environment names together, so a release id
/// (`<app>/<env>/<16 hex>`) fits ECS's 128-character `startedBy` as `ferry/<id>`.
pub const MAX_APP_AND_ENV_LEN: usize = MAX_RELEASE_ID_LEN - DIGEST_PREFIX_LEN - 2;
/// The longest SSM parameter name (a full path).
pub const MAX_PARAMETER_NAME_LEN: usize = 1011;
/// The deepest SSM parameter hierarchy.
pub const MAX_PARAMETER_DEPTH: usize = 15;
/// The longest CloudWatch alarm name.
pub const MAX_ALARM_NAME_LEN: usize = 255;
/// The migration timeout when none is configured.
pub const DEFAULT_MIGRATION_TIMEOUT: Duration = Duration::from_secs(15 * 60);
pub const MIN_MIGRATION_TIMEOUT: Duration = Duration::from_secs(1);
pub const MAX_MIGRATION_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// The whole configuration, keyed by app name.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub apps: BTreeMap<String, App>,
}

/// An app and its environments, keyed by environment name.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    pub name: String,
    pub environments: BTreeMap<String, Environment>,
}

/// One environment of an app: where it runs, what it runs, and what it accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    pub app: String,
    pub name: String,
    pub cluster: String,
    pub services: Vec<Service>,
    pub tag_policy: TagPolicy,
    /// Always contains `latest`, plus the configured extras (global, then this
    /// environment's), de-duplicated ignoring case.
    pub mutable_tags: Vec<String>,
    /// The SSM image-tag parameter of each lane, by repository: the configured
    /// `image_tag_parameter` with `{repository}` replaced (see the module doc).
    pub image_tag_parameters: BTreeMap<String, String>,
    pub migration: Option<Migration>,
    pub alarms: Vec<String>,
    /// How long the guarding alarms are watched after every service completed.
    pub bake: Bake,
    /// The smoke-test task run once every service completed, before the bake.
    pub verify: Option<Migration>,
    pub unfreeze_on_new_digest: bool,
    /// The reconcile pass puts a service that drifted (runs an image no release
    /// of ferry's put there) back on the known-good revision; otherwise it reports.
    pub heal_drift: bool,
    /// A Secrets Manager secret that the known-good task definitions reference
    /// gets a new current value: the services restart on their revisions.
    pub restart_on_secret_change: bool,
    /// `keep = N`: the task-definition revisions of the lane's families older than
    /// those of its last N known-good releases may be deregistered (never one of a
    /// known-good release ferry remembers). `None`: ferry deregisters nothing.
    pub keep: Option<usize>,
    /// `promote_from = "staging"`: this environment takes only digests known-good
    /// in that environment's lane (same app, same repositories); any other push
    /// or deploy is refused, and `{"promote": ...}` deploys the known-good one.
    pub promote_from: Option<String>,
    /// `approval = true`: a release is prepared (claim, preflight, registration)
    /// and waits in AWAITING_APPROVAL for an operator's approve or reject.
    pub approval: Option<Approval>,
}

/// The approval gate of an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Approval {
    /// An approval request unanswered for this long ends the release (REJECTED).
    pub expires_after: Duration,
}

/// How long an approval request waits when `approval_expires_after` is not set.
pub const DEFAULT_APPROVAL_EXPIRY: Duration = Duration::from_secs(24 * 60 * 60);
/// The longest an approval request may wait.
pub const MAX_APPROVAL_EXPIRY: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The bake window of an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bake {
    /// No `bake` key: derived from the guarding alarms when the bake starts
    /// (see `decide::bake::bake_window`); none without alarms.
    FromAlarms,
    /// `bake = "10m"`; `"0s"` opts out.
    Fixed(Duration),
}

/// An ECS service and the ECR repository whose image it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub repository: String,
}

/// A one-off task of a release: the migration before the services roll out, or
/// the smoke test (`verify`) after they completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub task_family: String,
    pub repository: String,
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config is not valid TOML or has an unknown/misspelled key: {0}")]
    Parse(String),
    #[error("config key `{key}`: {problem}")]
    Invalid { key: String, problem: String },
}

impl ConfigError {
    /// The key path an [`ConfigError::Invalid`] names.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Parse(_) => None,
            ConfigError::Invalid { key, .. } => Some(key),
        }
    }
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

impl Config {
    /// Parses and validates a configuration document.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        raw.validate()
    }

    /// Every environment with at least one service or a migration that runs
    /// `repository`, sorted by (app, environment).
    pub fn environments_tracking(&self, repository: &str) -> Vec<&Environment> {
        self.environments()
            .filter(|env| {
                !env.services_running(repository).is_empty()
                    || env.migration_for(repository).is_some()
            })
            .collect()
    }

    pub fn environment(&self, app: &str, env: &str) -> Option<&Environment> {
        self.apps.get(app)?.environments.get(env)
    }

    /// The environment a CloudWatch alarm guards (the config allows at most one).
    pub fn environment_guarded_by(&self, alarm: &str) -> Option<&Environment> {
        self.environments()
            .find(|env| env.alarms.iter().any(|a| a == alarm))
    }

    /// Every environment, sorted by (app, environment).
    pub fn environments(&self) -> impl Iterator<Item = &Environment> {
        self.apps.values().flat_map(|app| app.environments.values())
    }
}

impl Environment {
    /// The services that run `repository`.
    pub fn services_running(&self, repository: &str) -> Vec<&Service> {
        self.services
            .iter()
            .filter(|s| s.repository == repository)
            .collect()
    }

    /// The migration, if it runs `repository`.
    pub fn migration_for(&self, repository: &str) -> Option<&Migration> {
        self.migration
            .as_ref()
            .filter(|m| m.repository == repository)
    }

    /// Every repository this environment runs (services and migration).
    pub fn repositories(&self) -> BTreeSet<&str> {
        self.services
            .iter()
            .map(|s| s.repository.as_str())
            .chain(self.migration.iter().map(|m| m.repository.as_str()))
            .collect()
    }

    /// The SSM image-tag parameter of the lane that runs `repository` (`None`:
    /// the environment runs no such repository).
    pub fn image_tag_parameter(&self, repository: &str) -> Option<&str> {
        self.image_tag_parameters
            .get(repository)
            .map(String::as_str)
    }

    /// `<app>/<env>`
    pub fn qualified_name(&self) -> String {
        format!("{}/{}", self.app, self.name)
    }
}

/// Parses a duration such as `90s`, `15m`, `1h` or `1h30m`: whole numbers with units
/// `h`, `m`, `s`, largest first, each at most once.
pub fn parse_duration(text: &str) -> Option<Duration> {
    if text.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    // Units must come in this order; each may appear once.
    let mut units_left: &[(char, u64)] = &[('h', 3600), ('m', 60), ('s', 1)];
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        if number.is_empty() {
            return None;
        }
        let position = units_left.iter().position(|(u, _)| *u == c)?;
        let seconds_per_unit = units_left[position].1;
        units_left = &units_left[position + 1..];
        let value: u64 = number.parse().ok()?;
        total = total.checked_add(value.checked_mul(seconds_per_unit)?)?;
        number.clear();
    }
    if !number.is_empty() {
        return None;
    }
    Some(Duration::from_secs(total))
}

fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

// ---------------------------------------------------------------------------------
// The document as written, before validation.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    mutable_tags: Vec<String>,
    #[serde(default)]
    apps: BTreeMap<String, RawApp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    repository: Option<String>,
    #[serde(default)]
    environments: BTreeMap<String, RawEnvironment>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvironment {
    cluster: Option<String>,
    services: Option<Vec<RawService>>,
    tags: Option<RawTags>,
    #[serde(default)]
    mutable_tags: Vec<String>,
    image_tag_parameter: Option<String>,
    migration: Option<RawMigration>,
    #[serde(default)]
    alarms: Vec<String>,
    bake: Option<String>,
    verify: Option<RawMigration>,
    #[serde(default)]
    unfreeze_on_new_digest: bool,
    #[serde(default)]
    heal_drift: bool,
    #[serde(default)]
    restart_on_secret_change: bool,
    keep: Option<i64>,
    promote_from: Option<String>,
    #[serde(default)]
    approval: bool,
    approval_expires_after: Option<String>,
}

/// `"api"` or `{ name = "web", repository = "blog-web" }`.
enum RawService {
    Name(String),
    Table(RawServiceTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServiceTable {
    name: Option<String>,
    repository: Option<String>,
}

impl<'de> Deserialize<'de> for RawService {
    // Hand-written rather than `#[serde(untagged)]` so that a misspelled key inside a
    // service table keeps toml's precise "unknown field" message.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ServiceVisitor;
        impl<'de> Visitor<'de> for ServiceVisitor {
            type Value = RawService;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a service name like \"api\", or a table like { name = \"web\", repository = \"blog-web\" }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawService, E> {
                Ok(RawService::Name(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawService, A::Error> {
                RawServiceTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawService::Table)
            }
        }
        deserializer.deserialize_any(ServiceVisitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTags {
    glob: Option<String>,
    regex: Option<String>,
    semver: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMigration {
    task_family: Option<String>,
    repository: Option<String>,
    timeout: Option<String>,
}

// ---------------------------------------------------------------------------------
// Validation.

/// A key path segment, quoted as TOML would need it when it is not a bare key.
fn segment(name: &str) -> String {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

fn check_name(key: &str, name: &str, what: &str) -> Result<(), ConfigError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!(
                "{what} name `{name}` is not allowed; use 1 to {MAX_NAME_LEN} letters, digits, `_` or `-` \
                 (the name appears in ARNs, ids and ECS `startedBy`)"
            ),
        ))
    }
}

fn check_repository(key: &str, repository: &str) -> Result<(), ConfigError> {
    validate_repository_name(repository).map_err(|why| {
        invalid(
            key,
            format!("`{repository}` is not a valid ECR repository name: {why}"),
        )
    })
}

fn check_mutable_tags(
    key: &str,
    tags: &[String],
    into: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for (i, tag) in tags.iter().enumerate() {
        validate_tag(tag).map_err(|why| {
            invalid(
                format!("{key}[{i}]"),
                format!("`{tag}` is not a valid image tag ({why}), so it can never be pushed; remove it or fix it"),
            )
        })?;
        if !into.iter().any(|t| t.eq_ignore_ascii_case(tag)) {
            into.push(tag.clone());
        }
    }
    Ok(())
}

/// Checks an SSM parameter name; returns what is wrong.
fn ssm_parameter_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is empty; name the SSM parameter that records the current image tag, e.g. \"/shop/prod/compute/currentImageTag\"".to_owned());
    }
    if name.len() > MAX_PARAMETER_NAME_LEN {
        return Some(format!(
            "is {} characters long; SSM parameter names are at most {MAX_PARAMETER_NAME_LEN}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')))
    {
        return Some(format!(
            "`{name}` contains `{c}`; SSM parameter names may contain only letters, digits, `_`, `.`, `-` and `/`"
        ));
    }
    let hierarchical = name.contains('/');
    if hierarchical {
        if !name.starts_with('/') {
            return Some(format!(
                "`{name}` is a path but does not start with `/`; write \"/{name}\""
            ));
        }
        let segments: Vec<&str> = name[1..].split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Some(format!(
                "`{name}` has an empty path segment (a doubled or trailing `/`); remove it"
            ));
        }
        if segments.len() > MAX_PARAMETER_DEPTH {
            return Some(format!(
                "`{name}` is {} levels deep; SSM allows at most {MAX_PARAMETER_DEPTH}",
                segments.len()
            ));
        }
    }
    // SSM reserves names prefixed with `aws` or `ssm`, and the `/aws` and `/ssm` trees.
    let lowered = name.to_ascii_lowercase();
    let reserved = if hierarchical {
        let first = lowered[1..].split('/').next().unwrap_or("");
        first == "aws" || first == "ssm"
    } else {
        lowered.starts_with("aws") || lowered.starts_with("ssm")
    };
    if reserved {
        return Some(format!(
            "`{name}` starts with `aws` or `ssm`, which SSM reserves; choose another name"
        ));
    }
    None
}

fn check_alarm(key: &str, alarm: &str) -> Result<(), ConfigError> {
    if alarm.trim().is_empty() {
        return Err(invalid(
            key,
            "is empty; name the CloudWatch alarm that guards this environment, or remove the entry",
        ));
    }
    if alarm.len() > MAX_ALARM_NAME_LEN {
        return Err(invalid(
            key,
            format!(
                "is {} characters long; CloudWatch alarm names are at most {MAX_ALARM_NAME_LEN}",
                alarm.len()
            ),
        ));
    }
    Ok(())
}

/// What the whole document has seen so far, for checks across environments.
#[derive(Default)]
struct Seen {
    parameters: BTreeMap<String, String>,
    alarms: BTreeMap<String, String>,
}

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        if self.apps.is_empty() {
            return Err(invalid(
                "apps",
                "no app is configured; add at least one, e.g. [apps.shop] with [apps.shop.environments.prod]",
            ));
        }
        let mut global_mutable = vec![ALWAYS_MUTABLE.to_owned()];
        check_mutable_tags("mutable_tags", &self.mutable_tags, &mut global_mutable)?;

        let mut seen = Seen::default();
        let mut apps = BTreeMap::new();
        for (app_name, raw_app) in self.apps {
            let app_key = format!("apps.{}", segment(&app_name));
            check_name(&app_key, &app_name, "app")?;
            if let Some(repository) = &raw_app.repository {
                check_repository(&format!("{app_key}.repository"), repository)?;
            }
            if raw_app.environments.is_empty() {
                return Err(invalid(
                    format!("{app_key}.environments"),
                    format!("app `{app_name}` has no environment; add one, e.g. [{app_key}.environments.prod]"),
                ));
            }
            let mut environments = BTreeMap::new();
            for (env_name, raw_env) in raw_app.environments {
                let env = raw_env.validate(
                    &app_name,
                    &env_name,
                    raw_app.repository.as_deref(),
                    &global_mutable,
                    &mut seen,
                )?;
                environments.insert(env_name, env);
            }
            check_promotions(&app_key, &environments)?;
            apps.insert(
                app_name.clone(),
                App {
                    name: app_name,
                    environments,
                },
            );
        }
        Ok(Config { apps })
    }
}

impl RawEnvironment {
    fn validate(
        self,
        app: &str,
        name: &str,
        app_repository: Option<&str>,
        global_mutable: &[String],
        seen: &mut Seen,
    ) -> Result<Environment, ConfigError> {
        let app_key = format!("apps.{}", segment(app));
        let key = format!("{app_key}.environments.{}", segment(name));
        check_name(&key, name, "environment")?;
        if app.len() + name.len() > MAX_APP_AND_ENV_LEN {
            return Err(invalid(
                &key,
                format!(
                    "app and environment names together are {} characters; at most {MAX_APP_AND_ENV_LEN} fit in \
                     the release id ferry writes to ECS's 128-character `startedBy`; shorten one of them",
                    app.len() + name.len()
                ),
            ));
        }

        let cluster = self.cluster.unwrap_or_default();
        if cluster.trim().is_empty() {
            return Err(invalid(
                format!("{key}.cluster"),
                "is missing or empty; set it to the name or ARN of the ECS cluster this environment runs on",
            ));
        }

        let services = validate_services(&key, self.services, app_repository, &app_key)?;

        let tag_policy = validate_tags(&key, self.tags)?;

        let mut mutable_tags = global_mutable.to_vec();
        check_mutable_tags(
            &format!("{key}.mutable_tags"),
            &self.mutable_tags,
            &mut mutable_tags,
        )?;

        let migration = self
            .migration
            .map(|m| validate_one_off(&key, OneOff::Migration, m, app_repository, &app_key))
            .transpose()?;
        let verify = self
            .verify
            .map(|m| validate_one_off(&key, OneOff::Verify, m, app_repository, &app_key))
            .transpose()?;
        let bake = validate_bake(&key, self.bake.as_deref())?;
        let keep = validate_keep(&key, self.keep)?;
        let approval =
            validate_approval(&key, self.approval, self.approval_expires_after.as_deref())?;

        let qualified = format!("{app}/{name}");
        let repositories: BTreeSet<&str> = services
            .iter()
            .map(|s| s.repository.as_str())
            .chain(migration.iter().map(|m| m.repository.as_str()))
            .collect();
        let image_tag_parameters = resolve_image_tag_parameters(
            &format!("{key}.image_tag_parameter"),
            &qualified,
            self.image_tag_parameter.unwrap_or_default(),
            &repositories,
            seen,
        )?;

        let mut alarms = Vec::with_capacity(self.alarms.len());
        for (i, alarm) in self.alarms.into_iter().enumerate() {
            let alarm_key = format!("{key}.alarms[{i}]");
            check_alarm(&alarm_key, &alarm)?;
            if let Some(other) = seen.alarms.insert(alarm.clone(), qualified.clone()) {
                let problem = if other == qualified {
                    format!("alarm `{alarm}` is listed twice; remove the duplicate")
                } else {
                    format!(
                        "alarm `{alarm}` already guards environment {other}; an alarm can guard only one \
                         environment (its ALARM rolls that environment back), so create one alarm per environment"
                    )
                };
                return Err(invalid(alarm_key, problem));
            }
            alarms.push(alarm);
        }

        Ok(Environment {
            app: app.to_owned(),
            name: name.to_owned(),
            cluster,
            services,
            tag_policy,
            mutable_tags,
            image_tag_parameters,
            migration,
            alarms,
            bake,
            verify,
            unfreeze_on_new_digest: self.unfreeze_on_new_digest,
            heal_drift: self.heal_drift,
            restart_on_secret_change: self.restart_on_secret_change,
            keep,
            promote_from: self.promote_from,
            approval,
        })
    }
}

/// The placeholder `image_tag_parameter` may contain: the lane's repository.
pub const REPOSITORY_PLACEHOLDER: &str = "{repository}";

/// Each lane's image-tag parameter (repository → name), checked as SSM names
/// and against every lane seen so far.
fn resolve_image_tag_parameters(
    key: &str,
    environment: &str,
    template: String,
    repositories: &BTreeSet<&str>,
    seen: &mut Seen,
) -> Result<BTreeMap<String, String>, ConfigError> {
    if let Some(problem) = ssm_parameter_problem(&template) {
        if template.is_empty() || !template.contains(REPOSITORY_PLACEHOLDER) {
            return Err(invalid(key, problem));
        }
    }
    if template
        .replace(REPOSITORY_PLACEHOLDER, "")
        .contains(['{', '}'])
    {
        return Err(invalid(
            key,
            format!(
                "`{template}` has a placeholder other than `{REPOSITORY_PLACEHOLDER}`, the only one ferry fills in; \
                 write e.g. \"/shop/prod/{REPOSITORY_PLACEHOLDER}/currentImageTag\""
            ),
        ));
    }
    let per_lane = template.contains(REPOSITORY_PLACEHOLDER);
    if !per_lane && repositories.len() > 1 {
        let listed: Vec<String> = repositories.iter().map(|r| format!("`{r}`")).collect();
        return Err(invalid(
            key,
            format!(
                "`{template}` is one parameter, but environment {environment} runs {} repositories ({}), each its own \
                 lane with its own image tag: every lane would overwrite the others' value; write \
                 `{REPOSITORY_PLACEHOLDER}` into the name, e.g. \"/{}/{REPOSITORY_PLACEHOLDER}/currentImageTag\"",
                repositories.len(),
                listed.join(", "),
                environment,
            ),
        ));
    }
    let mut parameters = BTreeMap::new();
    for repository in repositories {
        let name = template.replace(REPOSITORY_PLACEHOLDER, repository);
        if let Some(problem) = ssm_parameter_problem(&name) {
            return Err(invalid(
                key,
                format!("for repository `{repository}` the name becomes `{name}`, which {problem}"),
            ));
        }
        let lane = format!("{environment} (repository {repository})");
        if let Some(other) = seen.parameters.insert(name.clone(), lane) {
            return Err(invalid(
                key,
                format!(
                    "`{name}` is also the image tag parameter of {other}; two lanes cannot record their image \
                     in the same parameter, give each its own (e.g. with `{REPOSITORY_PLACEHOLDER}` in the name)"
                ),
            ));
        }
        parameters.insert((*repository).to_owned(), name);
    }
    Ok(parameters)
}

fn validate_keep(key: &str, keep: Option<i64>) -> Result<Option<usize>, ConfigError> {
    let Some(keep) = keep else {
        return Ok(None);
    };
    let limit = crate::decide::HISTORY_KEPT;
    match usize::try_from(keep) {
        Ok(n) if (1..=limit).contains(&n) => Ok(Some(n)),
        _ => Err(invalid(
            format!("{key}.keep"),
            format!(
                "is {keep}; keep the revisions of 1 to {limit} known-good releases (ferry remembers the last \
                 {limit}), or leave `keep` out to deregister nothing"
            ),
        )),
    }
}

fn validate_services(
    key: &str,
    raw: Option<Vec<RawService>>,
    app_repository: Option<&str>,
    app_key: &str,
) -> Result<Vec<Service>, ConfigError> {
    let services_key = format!("{key}.services");
    let raw = raw.unwrap_or_default();
    if raw.is_empty() {
        return Err(invalid(
            &services_key,
            "is missing or empty; list the ECS services of this environment, e.g. services = [\"api\", \"worker\"]",
        ));
    }
    let mut services: Vec<Service> = Vec::with_capacity(raw.len());
    for (i, entry) in raw.into_iter().enumerate() {
        let entry_key = format!("{services_key}[{i}]");
        let (name, own_repository, name_key, repository_key) = match entry {
            RawService::Name(name) => (name, None, entry_key.clone(), entry_key.clone()),
            RawService::Table(table) => {
                let Some(name) = table.name else {
                    return Err(invalid(
                        format!("{entry_key}.name"),
                        "is missing; name the ECS service, e.g. { name = \"web\", repository = \"blog-web\" }",
                    ));
                };
                (
                    name,
                    table.repository,
                    format!("{entry_key}.name"),
                    format!("{entry_key}.repository"),
                )
            }
        };
        check_name(&name_key, &name, "service")?;
        if services.iter().any(|s| s.name == name) {
            return Err(invalid(
                &name_key,
                format!(
                    "service `{name}` is listed twice in this environment; list each service once"
                ),
            ));
        }
        let repository = match (own_repository, app_repository) {
            (Some(own), _) => {
                check_repository(&repository_key, &own)?;
                own
            }
            (None, Some(app)) => app.to_owned(),
            (None, None) => {
                return Err(invalid(
                    &entry_key,
                    format!(
                        "service `{name}` has no repository; set `repository = \"...\"` on [{app_key}] for all \
                         its services, or write this one as {{ name = \"{name}\", repository = \"...\" }}"
                    ),
                ))
            }
        };
        services.push(Service { name, repository });
    }
    Ok(services)
}

fn validate_tags(key: &str, raw: Option<RawTags>) -> Result<TagPolicy, ConfigError> {
    let tags_key = format!("{key}.tags");
    let example = "e.g. tags = { semver = \">=1.0.0\" }, tags = { glob = \"sha-*\" } or tags = { regex = \"^v[0-9]+$\" }";
    let Some(raw) = raw else {
        return Err(invalid(
            &tags_key,
            format!("is missing; say which tags this environment deploys with exactly one of glob, regex or semver, {example}"),
        ));
    };
    let given: Vec<&str> = [
        raw.glob.as_ref().map(|_| "glob"),
        raw.regex.as_ref().map(|_| "regex"),
        raw.semver.as_ref().map(|_| "semver"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let (kind, pattern) = match (raw.glob, raw.regex, raw.semver) {
        (Some(p), None, None) => ("glob", p),
        (None, Some(p), None) => ("regex", p),
        (None, None, Some(p)) => ("semver", p),
        (None, None, None) => {
            return Err(invalid(
                &tags_key,
                format!("is empty; set exactly one of glob, regex or semver, {example}"),
            ))
        }
        _ => {
            return Err(invalid(
                &tags_key,
                format!(
                    "sets {}; set exactly one of glob, regex or semver",
                    given.join(" and ")
                ),
            ))
        }
    };
    let policy = match kind {
        "glob" => TagPolicy::glob(&pattern),
        "regex" => TagPolicy::regex(&pattern),
        _ => TagPolicy::semver(&pattern),
    };
    policy.map_err(|e| invalid(format!("{tags_key}.{kind}"), e.to_string()))
}

/// `approval = true` and its expiry; `approval_expires_after` alone is a mistake.
fn validate_approval(
    key: &str,
    approval: bool,
    expires_after: Option<&str>,
) -> Result<Option<Approval>, ConfigError> {
    let expiry_key = format!("{key}.approval_expires_after");
    let Some(text) = expires_after else {
        return Ok(approval.then_some(Approval {
            expires_after: DEFAULT_APPROVAL_EXPIRY,
        }));
    };
    if !approval {
        return Err(invalid(
            expiry_key,
            "is set but `approval` is not true; add `approval = true` or remove the expiry",
        ));
    }
    let expires_after = parse_duration(text)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            invalid(
                &expiry_key,
                format!("`{text}` is not a duration above zero; write it like \"24h\" or \"30m\""),
            )
        })?;
    if expires_after > MAX_APPROVAL_EXPIRY {
        return Err(invalid(
            &expiry_key,
            format!(
                "`{text}` is longer than {}; a release waiting for approval holds its lane",
                format_duration(MAX_APPROVAL_EXPIRY)
            ),
        ));
    }
    Ok(Some(Approval { expires_after }))
}

/// Every `promote_from` names another environment of the same app that runs
/// the same repositories, and following them never comes back (no cycle).
fn check_promotions(
    app_key: &str,
    environments: &BTreeMap<String, Environment>,
) -> Result<(), ConfigError> {
    for (name, env) in environments {
        let Some(from) = &env.promote_from else {
            continue;
        };
        let key = format!("{app_key}.environments.{}.promote_from", segment(name));
        if from == name {
            return Err(invalid(
                key,
                format!("`{from}` is this environment itself; name the environment releases are promoted from, e.g. \"staging\""),
            ));
        }
        let Some(source) = environments.get(from) else {
            let known: Vec<&str> = environments.keys().map(String::as_str).collect();
            return Err(invalid(
                key,
                format!(
                    "`{from}` is not an environment of app `{}` (it has: {}); promotion happens within one app",
                    env.app,
                    known.join(", ")
                ),
            ));
        };
        if source.repositories() != env.repositories() {
            let list =
                |e: &Environment| e.repositories().into_iter().collect::<Vec<_>>().join(", ");
            return Err(invalid(
                key,
                format!(
                    "`{from}` runs repositories [{}] and this environment [{}]; a promoted digest is known-good per \
                     repository, so both must run the same ones",
                    list(source),
                    list(env)
                ),
            ));
        }
        let mut chain = vec![name.as_str()];
        let mut next = Some(from.as_str());
        while let Some(step) = next {
            if chain.contains(&step) {
                chain.push(step);
                return Err(invalid(
                    key,
                    format!(
                        "promotions go round in a circle ({}); one environment must take pushes",
                        chain.join(" ← ")
                    ),
                ));
            }
            chain.push(step);
            next = environments
                .get(step)
                .and_then(|e| e.promote_from.as_deref());
        }
    }
    Ok(())
}

/// The longest bake a config may ask for.
pub const MAX_BAKE: Duration = Duration::from_secs(24 * 60 * 60);
/// The smoke test's timeout when none is configured.
pub const DEFAULT_VERIFY_TIMEOUT: Duration = Duration::from_secs(5 * 60);

fn validate_bake(key: &str, text: Option<&str>) -> Result<Bake, ConfigError> {
    let Some(text) = text else {
        return Ok(Bake::FromAlarms);
    };
    let key = format!("{key}.bake");
    let bake = parse_duration(text).ok_or_else(|| {
        invalid(
            &key,
            format!(
                "`{text}` is not a duration; write it like \"10m\", \"90s\" or \"0s\" (no bake)"
            ),
        )
    })?;
    if bake > MAX_BAKE {
        return Err(invalid(
            &key,
            format!(
                "`{text}` is longer than {}; a release would hold its lane for that long",
                format_duration(MAX_BAKE)
            ),
        ));
    }
    Ok(Bake::Fixed(bake))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OneOff {
    Migration,
    Verify,
}

impl OneOff {
    fn key(self) -> &'static str {
        match self {
            OneOff::Migration => "migration",
            OneOff::Verify => "verify",
        }
    }

    fn what(self) -> &'static str {
        match self {
            OneOff::Migration => "the migration",
            OneOff::Verify => "the smoke test",
        }
    }

    fn default_timeout(self) -> Duration {
        match self {
            OneOff::Migration => DEFAULT_MIGRATION_TIMEOUT,
            OneOff::Verify => DEFAULT_VERIFY_TIMEOUT,
        }
    }
}

fn validate_one_off(
    key: &str,
    kind: OneOff,
    raw: RawMigration,
    app_repository: Option<&str>,
    app_key: &str,
) -> Result<Migration, ConfigError> {
    let key = format!("{key}.{}", kind.key());
    let task_family = raw.task_family.unwrap_or_default();
    if task_family.is_empty() {
        return Err(invalid(
            format!("{key}.task_family"),
            format!(
                "is missing or empty; name the ECS task definition family that runs {}",
                kind.what()
            ),
        ));
    }
    if task_family.len() > 255
        || !task_family
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(invalid(
            format!("{key}.task_family"),
            format!(
                "`{task_family}` is not a task definition family name; use up to 255 letters, digits, `_` or `-` \
                 (the family, not an ARN or `family:revision`)"
            ),
        ));
    }
    let repository = match (raw.repository, app_repository) {
        (Some(own), _) => {
            check_repository(&format!("{key}.repository"), &own)?;
            own
        }
        (None, Some(app)) => app.to_owned(),
        (None, None) => {
            return Err(invalid(
                format!("{key}.repository"),
                format!(
                    "{} has no repository; set `repository = \"...\"` here or on [{app_key}]",
                    kind.what()
                ),
            ))
        }
    };
    let timeout = match raw.timeout {
        None => kind.default_timeout(),
        Some(text) => {
            let timeout = parse_duration(&text).ok_or_else(|| {
                invalid(
                    format!("{key}.timeout"),
                    format!("`{text}` is not a duration; write it like \"90s\", \"15m\", \"1h\" or \"1h30m\""),
                )
            })?;
            if !(MIN_MIGRATION_TIMEOUT..=MAX_MIGRATION_TIMEOUT).contains(&timeout) {
                return Err(invalid(
                    format!("{key}.timeout"),
                    format!(
                        "`{text}` ({}) is out of range; a task timeout must be between {} and {}",
                        format_duration(timeout),
                        format_duration(MIN_MIGRATION_TIMEOUT),
                        format_duration(MAX_MIGRATION_TIMEOUT)
                    ),
                ));
            }
            timeout
        }
    };
    Ok(Migration {
        task_family,
        repository,
        timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One image shared by api, worker, scheduler and the migration.
    const SHARED: &str = r#"
mutable_tags = ["main"]

[apps.shop]
repository = "shop"

[apps.shop.environments.prod]
cluster = "shop-prod"
services = ["api", "worker", "scheduler"]
tags = { semver = ">=1.0.0" }
mutable_tags = ["stable"]
image_tag_parameter = "/shop/prod/compute/currentImageTag"
migration = { task_family = "shop-migrate", timeout = "20m" }
alarms = ["shop-prod-5xx", "shop-prod-latency"]

[apps.shop.environments.staging]
cluster = "shop-staging"
services = ["api", "worker", "scheduler"]
tags = { glob = "sha-*" }
image_tag_parameter = "/shop/staging/compute/currentImageTag"
migration = { task_family = "shop-migrate-staging" }
unfreeze_on_new_digest = true
"#;

    /// One repository per service.
    const PER_SERVICE: &str = r#"
[apps.blog.environments.prod]
cluster = "blog-prod"
services = [{ name = "web", repository = "blog-web" }, { name = "jobs", repository = "blog-jobs" }]
tags = { regex = "v[0-9]+" }
image_tag_parameter = "/blog/prod/{repository}/image"
"#;

    /// An environment, valid but for what `tweak` adds, to try one error at a time.
    fn env_with(extra: &str) -> String {
        format!(
            r#"
[apps.shop]
repository = "shop"

[apps.shop.environments.prod]
{extra}
"#
        )
    }

    fn base_fields(except: &str) -> String {
        [
            ("cluster", "cluster = \"shop-prod\""),
            ("services", "services = [\"api\"]"),
            ("tags", "tags = { semver = \">=1.0.0\" }"),
            (
                "image_tag_parameter",
                "image_tag_parameter = \"/shop/prod/{repository}/image\"",
            ),
        ]
        .into_iter()
        .filter(|(k, _)| *k != except)
        .map(|(_, line)| line)
        .collect::<Vec<_>>()
        .join("\n")
    }

    fn error_of(text: &str) -> ConfigError {
        match Config::from_toml(text) {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(e) => e,
        }
    }

    fn assert_invalid(text: &str, key: &str, says: &str) {
        let err = error_of(text);
        let message = err.to_string();
        assert_eq!(err.key(), Some(key), "{message}");
        assert!(message.contains(&format!("`{key}`")), "{message}");
        assert!(message.contains(says), "expected {says:?} in: {message}");
    }

    #[test]
    fn shared_repository_shape_gives_every_service_and_the_migration_the_app_repository() {
        let config = Config::from_toml(SHARED).unwrap();
        let prod = config.environment("shop", "prod").unwrap();
        assert_eq!(prod.cluster, "shop-prod");
        let services: Vec<(&str, &str)> = prod
            .services
            .iter()
            .map(|s| (s.name.as_str(), s.repository.as_str()))
            .collect();
        assert_eq!(
            services,
            [("api", "shop"), ("worker", "shop"), ("scheduler", "shop")]
        );
        assert_eq!(
            prod.migration,
            Some(Migration {
                task_family: "shop-migrate".into(),
                repository: "shop".into(),
                timeout: Duration::from_secs(20 * 60),
            })
        );
        assert_eq!(prod.services_running("shop").len(), 3);
        assert!(prod.migration_for("shop").is_some());
        assert_eq!(prod.repositories(), BTreeSet::from(["shop"]));
        assert_eq!(prod.tag_policy, TagPolicy::semver(">=1.0.0").unwrap());
        assert_eq!(prod.alarms, ["shop-prod-5xx", "shop-prod-latency"]);
        assert!(!prod.unfreeze_on_new_digest);
        assert_eq!(prod.qualified_name(), "shop/prod");
    }

    #[test]
    fn per_service_repository_shape_keeps_each_service_repository() {
        let config = Config::from_toml(PER_SERVICE).unwrap();
        let prod = config.environment("blog", "prod").unwrap();
        assert_eq!(
            prod.services,
            [
                Service {
                    name: "web".into(),
                    repository: "blog-web".into()
                },
                Service {
                    name: "jobs".into(),
                    repository: "blog-jobs".into()
                },
            ]
        );
        assert_eq!(prod.services_running("blog-web")[0].name, "web");
        assert_eq!(prod.services_running("blog-jobs")[0].name, "jobs");
        assert!(prod.services_running("blog").is_empty());
        assert_eq!(prod.migration, None);
        assert_eq!(
            prod.repositories(),
            BTreeSet::from(["blog-jobs", "blog-web"])
        );
        assert_eq!(
            prod.image_tag_parameter("blog-web"),
            Some("/blog/prod/blog-web/image")
        );
        assert_eq!(
            prod.image_tag_parameter("blog-jobs"),
            Some("/blog/prod/blog-jobs/image")
        );
        assert_eq!(prod.image_tag_parameter("shop"), None);
    }

    #[test]
    fn string_and_table_services_can_be_mixed() {
        let config = Config::from_toml(&env_with(&format!(
            "{}\n{}",
            base_fields("services"),
            r#"services = ["api", { name = "web", repository = "shop-web" }, { name = "cron" }]"#
        )))
        .unwrap();
        let prod = config.environment("shop", "prod").unwrap();
        let services: Vec<(&str, &str)> = prod
            .services
            .iter()
            .map(|s| (s.name.as_str(), s.repository.as_str()))
            .collect();
        assert_eq!(
            services,
            [("api", "shop"), ("web", "shop-web"), ("cron", "shop")]
        );
    }

    #[test]
    fn migration_can_run_its_own_repository() {
        let config = Config::from_toml(&env_with(&format!(
            "{}\nmigration = {{ task_family = \"shop-migrate\", repository = \"shop-migrations\" }}",
            base_fields("")
        )))
        .unwrap();
        let prod = config.environment("shop", "prod").unwrap();
        assert!(prod.migration_for("shop").is_none());
        assert_eq!(
            prod.migration_for("shop-migrations")
                .map(|m| m.task_family.as_str()),
            Some("shop-migrate")
        );
        assert_eq!(
            config
                .environments_tracking("shop-migrations")
                .iter()
                .map(|e| e.qualified_name())
                .collect::<Vec<_>>(),
            ["shop/prod"]
        );
    }

    #[test]
    fn migration_timeout_defaults_to_fifteen_minutes() {
        let config = Config::from_toml(SHARED).unwrap();
        let staging = config.environment("shop", "staging").unwrap();
        assert_eq!(
            staging.migration.as_ref().map(|m| m.timeout),
            Some(Duration::from_secs(900))
        );
    }

    #[test]
    fn mutable_tags_always_contain_latest_plus_extras_deduplicated() {
        let config = Config::from_toml(SHARED).unwrap();
        assert_eq!(
            config.environment("shop", "prod").unwrap().mutable_tags,
            ["latest", "main", "stable"]
        );
        assert_eq!(
            config.environment("shop", "staging").unwrap().mutable_tags,
            ["latest", "main"]
        );
        let config = Config::from_toml(&env_with(&format!(
            "{}\nmutable_tags = [\"LATEST\", \"dev\", \"Dev\"]",
            base_fields("")
        )))
        .unwrap();
        assert_eq!(
            config.environment("shop", "prod").unwrap().mutable_tags,
            ["latest", "dev"]
        );
    }

    #[test]
    fn mutable_tags_default_to_latest_alone() {
        let config = Config::from_toml(PER_SERVICE).unwrap();
        assert_eq!(
            config.environment("blog", "prod").unwrap().mutable_tags,
            ["latest"]
        );
    }

    #[test]
    fn environments_tracking_a_shared_repository_are_sorted_by_app_and_env() {
        let config = Config::from_toml(SHARED).unwrap();
        let tracking: Vec<String> = config
            .environments_tracking("shop")
            .iter()
            .map(|e| e.qualified_name())
            .collect();
        assert_eq!(tracking, ["shop/prod", "shop/staging"]);
        assert!(config.environments_tracking("blog-web").is_empty());
    }

    #[test]
    fn environments_tracking_finds_each_per_service_repository() {
        let config = Config::from_toml(PER_SERVICE).unwrap();
        for repository in ["blog-web", "blog-jobs"] {
            let tracking = config.environments_tracking(repository);
            assert_eq!(tracking.len(), 1, "{repository}");
            assert_eq!(tracking[0].qualified_name(), "blog/prod");
        }
        assert!(config.environments_tracking("blog").is_empty());
    }

    #[test]
    fn environments_tracking_spans_apps() {
        let config = Config::from_toml(&format!(
            "{SHARED}\n{}",
            PER_SERVICE.replace("blog-jobs", "shop")
        ))
        .unwrap();
        let tracking: Vec<String> = config
            .environments_tracking("shop")
            .iter()
            .map(|e| e.qualified_name())
            .collect();
        assert_eq!(tracking, ["blog/prod", "shop/prod", "shop/staging"]);
    }

    #[test]
    fn unknown_environment_is_none() {
        let config = Config::from_toml(SHARED).unwrap();
        assert!(config.environment("shop", "qa").is_none());
        assert!(config.environment("nope", "prod").is_none());
    }

    #[test]
    fn alarm_maps_to_the_environment_it_guards() {
        let config = Config::from_toml(SHARED).unwrap();
        assert_eq!(
            config
                .environment_guarded_by("shop-prod-latency")
                .map(|e| e.qualified_name()),
            Some("shop/prod".into())
        );
        assert!(config
            .environment_guarded_by("someone-elses-alarm")
            .is_none());
    }

    #[test]
    fn misspelled_key_is_a_parse_error_naming_the_key() {
        let text = env_with(&format!(
            "clustr = \"shop-prod\"\n{}",
            base_fields("cluster")
        ));
        let err = error_of(&text);
        assert!(matches!(err, ConfigError::Parse(_)));
        let message = err.to_string();
        assert!(message.contains("clustr"), "{message}");
        assert!(message.contains("unknown/misspelled key"), "{message}");
    }

    #[test]
    fn misspelled_key_inside_a_service_table_is_named() {
        let text = env_with(&format!(
            "{}\nservices = [{{ name = \"web\", repo = \"shop-web\" }}]",
            base_fields("services")
        ));
        let message = error_of(&text).to_string();
        assert!(message.contains("repo"), "{message}");
    }

    #[test]
    fn misspelled_key_in_tags_migration_app_or_top_level_is_a_parse_error() {
        for text in [
            env_with(&base_fields("tags")) + "\ntags = { semvar = \">=1\" }",
            env_with(&base_fields("")) + "\nmigration = { task_family = \"m\", timout = \"1m\" }",
            SHARED.replace("repository = \"shop\"", "repo = \"shop\""),
            format!("mutable_tag = [\"x\"]\n{SHARED}"),
        ] {
            let err = error_of(&text);
            assert!(matches!(err, ConfigError::Parse(_)), "{err}");
        }
    }

    #[test]
    fn invalid_toml_is_a_parse_error() {
        assert!(matches!(
            error_of("[apps.shop\ncluster = "),
            ConfigError::Parse(_)
        ));
    }

    #[test]
    fn a_config_without_apps_is_refused() {
        assert_invalid("", "apps", "add at least one");
        assert_invalid("mutable_tags = [\"main\"]", "apps", "no app");
    }

    #[test]
    fn an_app_without_environments_is_refused() {
        assert_invalid(
            "[apps.shop]\nrepository = \"shop\"",
            "apps.shop.environments",
            "has no environment",
        );
    }

    #[test]
    fn app_environment_and_service_names_must_be_id_safe() {
        assert_invalid(
            &SHARED.replace("[apps.shop", "[apps.\"my shop\""),
            "apps.\"my shop\"",
            "appears in ARNs",
        );
        assert_invalid(
            &env_with(&base_fields("")).replace("environments.prod", "environments.\"prod.eu\""),
            "apps.shop.environments.\"prod.eu\"",
            "environment name `prod.eu`",
        );
        assert_invalid(
            &env_with(&format!(
                "{}\nservices = [\"api/v2\"]",
                base_fields("services")
            )),
            "apps.shop.environments.prod.services[0]",
            "service name `api/v2`",
        );
        let long = "a".repeat(65);
        assert_invalid(
            &env_with(&format!(
                "{}\nservices = [\"{long}\"]",
                base_fields("services")
            )),
            "apps.shop.environments.prod.services[0]",
            "1 to 64",
        );
    }

    #[test]
    fn app_and_environment_names_must_fit_the_release_id_in_started_by() {
        let app = "a".repeat(64);
        let env = "e".repeat(41);
        let text = env_with(&base_fields(""))
            .replace("apps.shop", &format!("apps.{app}"))
            .replace("environments.prod", &format!("environments.{env}"));
        assert_invalid(
            &text,
            &format!("apps.{app}.environments.{env}"),
            "startedBy",
        );
        let fits = text.replace(&env, &"e".repeat(40));
        assert!(Config::from_toml(&fits).is_ok());
    }

    #[test]
    fn cluster_is_required_and_non_empty() {
        assert_invalid(
            &env_with(&base_fields("cluster")),
            "apps.shop.environments.prod.cluster",
            "ECS cluster",
        );
        assert_invalid(
            &env_with(&format!("{}\ncluster = \" \"", base_fields("cluster"))),
            "apps.shop.environments.prod.cluster",
            "empty",
        );
    }

    #[test]
    fn services_are_required_and_non_empty() {
        assert_invalid(
            &env_with(&base_fields("services")),
            "apps.shop.environments.prod.services",
            "list the ECS services",
        );
        assert_invalid(
            &env_with(&format!("{}\nservices = []", base_fields("services"))),
            "apps.shop.environments.prod.services",
            "empty",
        );
    }

    #[test]
    fn duplicate_service_names_are_refused() {
        assert_invalid(
            &env_with(&format!(
                "{}\nservices = [\"api\", {{ name = \"api\", repository = \"other\" }}]",
                base_fields("services")
            )),
            "apps.shop.environments.prod.services[1].name",
            "listed twice",
        );
    }

    #[test]
    fn a_service_table_needs_a_name() {
        assert_invalid(
            &env_with(&format!(
                "{}\nservices = [{{ repository = \"shop\" }}]",
                base_fields("services")
            )),
            "apps.shop.environments.prod.services[0].name",
            "is missing",
        );
    }

    #[test]
    fn a_service_without_any_repository_suggests_one_on_the_app() {
        let text = env_with(&base_fields("")).replace("repository = \"shop\"\n", "");
        assert_invalid(
            &text,
            "apps.shop.environments.prod.services[0]",
            "set `repository = \"...\"` on [apps.shop]",
        );
    }

    #[test]
    fn repository_names_must_be_valid_ecr_names() {
        assert_invalid(
            &SHARED.replace("repository = \"shop\"", "repository = \"Shop\""),
            "apps.shop.repository",
            "not a valid ECR repository name",
        );
        assert_invalid(
            &env_with(&format!(
                "{}\nservices = [{{ name = \"web\", repository = \"x\" }}]",
                base_fields("services")
            )),
            "apps.shop.environments.prod.services[0].repository",
            "2 to 256",
        );
        assert_invalid(
            &env_with(&format!(
                "{}\nmigration = {{ task_family = \"m\", repository = \"bad repo\" }}",
                base_fields("")
            )),
            "apps.shop.environments.prod.migration.repository",
            "contains ` `",
        );
    }

    #[test]
    fn tags_are_required() {
        assert_invalid(
            &env_with(&base_fields("tags")),
            "apps.shop.environments.prod.tags",
            "exactly one of glob, regex or semver",
        );
        assert_invalid(
            &env_with(&format!("{}\ntags = {{}}", base_fields("tags"))),
            "apps.shop.environments.prod.tags",
            "exactly one of",
        );
    }

    #[test]
    fn tags_with_two_kinds_are_refused() {
        assert_invalid(
            &env_with(&format!(
                "{}\ntags = {{ glob = \"v*\", semver = \">=1\" }}",
                base_fields("tags")
            )),
            "apps.shop.environments.prod.tags",
            "sets glob and semver",
        );
    }

    #[test]
    fn tag_patterns_must_compile() {
        assert_invalid(
            &env_with(&format!(
                "{}\ntags = {{ regex = \"v[0-9\" }}",
                base_fields("tags")
            )),
            "apps.shop.environments.prod.tags.regex",
            "does not compile",
        );
        assert_invalid(
            &env_with(&format!(
                "{}\ntags = {{ semver = \"one\" }}",
                base_fields("tags")
            )),
            "apps.shop.environments.prod.tags.semver",
            "does not parse",
        );
        assert_invalid(
            &env_with(&format!(
                "{}\ntags = {{ glob = \"\" }}",
                base_fields("tags")
            )),
            "apps.shop.environments.prod.tags.glob",
            "empty",
        );
    }

    #[test]
    fn mutable_tags_must_be_valid_tags() {
        assert_invalid(
            &SHARED.replace(
                "mutable_tags = [\"main\"]",
                "mutable_tags = [\"ok\", \"not ok\"]",
            ),
            "mutable_tags[1]",
            "not a valid image tag",
        );
        assert_invalid(
            &env_with(&format!("{}\nmutable_tags = [\"\"]", base_fields(""))),
            "apps.shop.environments.prod.mutable_tags[0]",
            "not a valid image tag",
        );
    }

    #[test]
    fn image_tag_parameter_is_required() {
        assert_invalid(
            &env_with(&base_fields("image_tag_parameter")),
            "apps.shop.environments.prod.image_tag_parameter",
            "SSM parameter",
        );
    }

    #[test]
    fn image_tag_parameter_must_be_a_valid_ssm_name() {
        let key = "apps.shop.environments.prod.image_tag_parameter";
        for (name, says) in [
            ("/shop/prod/image tag", "contains ` `"),
            ("shop/prod/image", "does not start with `/`"),
            ("/shop//image", "empty path segment"),
            ("/shop/image/", "empty path segment"),
            ("/aws/reference/x", "reserves"),
            ("ssm-image", "reserves"),
            (&format!("/{}", "a".repeat(1011)), "at most 1011"),
            (&"/a".repeat(16), "at most 15"),
        ] {
            let text = env_with(&format!(
                "{}\nimage_tag_parameter = \"{name}\"",
                base_fields("image_tag_parameter")
            ));
            assert_invalid(&text, key, says);
        }
    }

    #[test]
    fn image_tag_parameter_plain_name_and_deep_path_are_accepted() {
        for name in [
            "shop-prod-image",
            "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o",
            "/shop/prod/compute/currentImageTag",
        ] {
            let text = env_with(&format!(
                "{}\nimage_tag_parameter = \"{name}\"",
                base_fields("image_tag_parameter")
            ));
            let config = Config::from_toml(&text).unwrap();
            assert_eq!(
                config
                    .environment("shop", "prod")
                    .unwrap()
                    .image_tag_parameter("shop"),
                Some(name)
            );
        }
    }

    #[test]
    fn two_environments_cannot_write_the_same_parameter() {
        let text = SHARED.replace(
            "/shop/staging/compute/currentImageTag",
            "/shop/prod/compute/currentImageTag",
        );
        assert_invalid(
            &text,
            "apps.shop.environments.staging.image_tag_parameter",
            "also the image tag parameter of shop/prod (repository shop)",
        );
    }

    /// The blog environment (web on `blog-web`, jobs on `blog-jobs`) with `line`.
    fn blog_with(parameter_line: &str) -> String {
        format!(
            r#"
[apps.blog.environments.prod]
cluster = "blog-prod"
services = [{{ name = "web", repository = "blog-web" }}, {{ name = "jobs", repository = "blog-jobs" }}]
tags = {{ glob = "sha-*" }}
{parameter_line}
"#
        )
    }

    #[test]
    fn each_lane_gets_its_own_parameter_from_the_repository_placeholder() {
        let config = Config::from_toml(&blog_with(
            r#"image_tag_parameter = "/blog/prod/{repository}/currentImageTag""#,
        ))
        .unwrap();
        let prod = config.environment("blog", "prod").unwrap();
        assert_eq!(
            prod.image_tag_parameters,
            BTreeMap::from([
                (
                    "blog-jobs".to_owned(),
                    "/blog/prod/blog-jobs/currentImageTag".to_owned()
                ),
                (
                    "blog-web".to_owned(),
                    "/blog/prod/blog-web/currentImageTag".to_owned()
                ),
            ])
        );
    }

    #[test]
    fn a_migration_repository_is_a_lane_with_its_own_parameter() {
        let text = env_with(
            r#"cluster = "shop-prod"
services = ["api"]
tags = { semver = ">=1.0.0" }
image_tag_parameter = "/shop/prod/{repository}/tag"
migration = { task_family = "shop-migrate", repository = "shop-migrations" }"#,
        );
        let config = Config::from_toml(&text).unwrap();
        let prod = config.environment("shop", "prod").unwrap();
        assert_eq!(
            prod.image_tag_parameter("shop-migrations"),
            Some("/shop/prod/shop-migrations/tag")
        );
        assert_eq!(
            prod.image_tag_parameter("shop"),
            Some("/shop/prod/shop/tag")
        );
    }

    #[test]
    fn a_fixed_parameter_for_an_environment_of_several_repositories_is_refused() {
        assert_invalid(
            &blog_with(r#"image_tag_parameter = "/blog/prod/compute/currentImageTag""#),
            "apps.blog.environments.prod.image_tag_parameter",
            "runs 2 repositories (`blog-jobs`, `blog-web`), each its own lane with its own image tag: every \
             lane would overwrite the others' value; write `{repository}` into the name, e.g. \
             \"/blog/prod/{repository}/currentImageTag\"",
        );
    }

    #[test]
    fn two_lanes_of_two_environments_resolving_to_one_parameter_are_refused() {
        let text = format!(
            "{}\n[apps.blog.environments.staging]\ncluster = \"blog-staging\"\nservices = [\"web\"]\n\
             tags = {{ glob = \"sha-*\" }}\nimage_tag_parameter = \"/blog/prod/blog-web/currentImageTag\"\n\
             [apps.blog]\nrepository = \"blog-web\"\n",
            blog_with(r#"image_tag_parameter = "/blog/prod/{repository}/currentImageTag""#)
        );
        assert_invalid(
            &text,
            "apps.blog.environments.staging.image_tag_parameter",
            "`/blog/prod/blog-web/currentImageTag` is also the image tag parameter of blog/prod (repository blog-web)",
        );
    }

    #[test]
    fn a_placeholder_other_than_repository_is_refused() {
        assert_invalid(
            &blog_with(r#"image_tag_parameter = "/blog/{env}/{repository}/tag""#),
            "apps.blog.environments.prod.image_tag_parameter",
            "has a placeholder other than `{repository}`",
        );
    }

    #[test]
    fn a_placeholder_that_makes_an_invalid_name_names_the_repository() {
        assert_invalid(
            &blog_with(r#"image_tag_parameter = "blog-{repository}/tag""#),
            "apps.blog.environments.prod.image_tag_parameter",
            "for repository `blog-jobs` the name becomes `blog-blog-jobs/tag`, which",
        );
    }

    #[test]
    fn keep_is_read_and_absent_by_default() {
        let config = with_prod_line("keep = 3").unwrap();
        assert_eq!(config.environment("shop", "prod").unwrap().keep, Some(3));
        let config = with_prod_line("").unwrap();
        assert_eq!(config.environment("shop", "prod").unwrap().keep, None);
    }

    #[test]
    fn keep_must_be_between_one_and_the_history_ferry_remembers() {
        for keep in ["0", "-1", "11"] {
            let err = with_prod_line(&format!("keep = {keep}")).unwrap_err();
            assert_eq!(err.key(), Some("apps.shop.environments.prod.keep"), "{err}");
            assert!(
                err.to_string().contains("1 to 10 known-good releases"),
                "{err}"
            );
        }
    }

    #[test]
    fn migration_needs_a_task_family() {
        assert_invalid(
            &env_with(&format!(
                "{}\nmigration = {{ timeout = \"1m\" }}",
                base_fields("")
            )),
            "apps.shop.environments.prod.migration.task_family",
            "task definition family",
        );
        assert_invalid(
            &env_with(&format!(
                "{}\nmigration = {{ task_family = \"shop-migrate:3\" }}",
                base_fields("")
            )),
            "apps.shop.environments.prod.migration.task_family",
            "not an ARN or `family:revision`",
        );
    }

    #[test]
    fn migration_without_any_repository_is_refused() {
        let text = env_with(&format!(
            "{}\nmigration = {{ task_family = \"m\" }}",
            base_fields("services")
        ))
        .replace("repository = \"shop\"\n", "")
            + "\nservices = [{ name = \"api\", repository = \"shop\" }]";
        assert_invalid(
            &text,
            "apps.shop.environments.prod.migration.repository",
            "set `repository = \"...\"` here or on [apps.shop]",
        );
    }

    #[test]
    fn migration_timeout_must_parse() {
        for bad in ["15", "15 m", "m", "1m1h", "1h1h", "1.5h", "", "15min"] {
            assert_invalid(
                &env_with(&format!(
                    "{}\nmigration = {{ task_family = \"m\", timeout = \"{bad}\" }}",
                    base_fields("")
                )),
                "apps.shop.environments.prod.migration.timeout",
                "not a duration",
            );
        }
    }

    #[test]
    fn migration_timeout_must_be_between_one_second_and_a_day() {
        for bad in ["0s", "24h1s", "25h"] {
            assert_invalid(
                &env_with(&format!(
                    "{}\nmigration = {{ task_family = \"m\", timeout = \"{bad}\" }}",
                    base_fields("")
                )),
                "apps.shop.environments.prod.migration.timeout",
                "between 1s and 24h",
            );
        }
        for good in ["1s", "24h"] {
            assert!(Config::from_toml(&env_with(&format!(
                "{}\nmigration = {{ task_family = \"m\", timeout = \"{good}\" }}",
                base_fields("")
            )))
            .is_ok());
        }
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h0m5s"), Some(Duration::from_secs(3605)));
        assert_eq!(parse_duration("99999999999999999999h"), None);
        assert_eq!(format_duration(Duration::from_secs(5405)), "1h30m5s");
    }

    #[test]
    fn alarm_names_must_not_be_empty() {
        assert_invalid(
            &env_with(&format!("{}\nalarms = [\"ok\", \"\"]", base_fields(""))),
            "apps.shop.environments.prod.alarms[1]",
            "is empty",
        );
    }

    #[test]
    fn an_alarm_guards_at_most_one_environment() {
        let text = SHARED.replace(
            "unfreeze_on_new_digest = true",
            "unfreeze_on_new_digest = true\nalarms = [\"shop-prod-5xx\"]",
        );
        assert_invalid(
            &text,
            "apps.shop.environments.staging.alarms[0]",
            "already guards environment shop/prod",
        );
        assert_invalid(
            &env_with(&format!("{}\nalarms = [\"a\", \"a\"]", base_fields(""))),
            "apps.shop.environments.prod.alarms[1]",
            "listed twice",
        );
    }

    #[test]
    fn unfreeze_on_new_digest_is_read_and_defaults_to_false() {
        let config = Config::from_toml(SHARED).unwrap();
        assert!(
            config
                .environment("shop", "staging")
                .unwrap()
                .unfreeze_on_new_digest
        );
        assert!(
            !config
                .environment("shop", "prod")
                .unwrap()
                .unfreeze_on_new_digest
        );
    }

    #[test]
    fn wrong_value_type_is_a_parse_error_naming_the_key() {
        let text = env_with(&format!("{}\ncluster = 42", base_fields("cluster")));
        let message = error_of(&text).to_string();
        assert!(message.contains("cluster"), "{message}");
    }

    #[test]
    fn durations_are_written_back_in_the_units_they_were_given() {
        for (seconds, written) in [
            (0, "0s"),
            (45, "45s"),
            (90, "1m30s"),
            (900, "15m"),
            (3_600, "1h"),
            (5_430, "1h30m30s"),
        ] {
            assert_eq!(format_duration(Duration::from_secs(seconds)), written);
        }
    }

    #[test]
    fn a_service_that_is_neither_a_name_nor_a_table_says_what_is_expected() {
        let text = SHARED.replace(
            r#"services = ["api", "worker", "scheduler"]"#,
            r#"services = ["api", 7]"#,
        );
        let err = Config::from_toml(&text).expect_err("7 is not a service");
        assert!(
            err.to_string().contains("a service name like \"api\""),
            "{err}"
        );
    }

    #[test]
    fn key_segments_are_quoted_only_when_toml_needs_it() {
        assert_eq!(segment("shop"), "shop");
        assert_eq!(segment("shop_v2-eu"), "shop_v2-eu");
        assert_eq!(segment("shop v2"), "\"shop v2\"");
        assert_eq!(segment("shop.eu"), "\"shop.eu\"");
        assert_eq!(segment(""), "\"\"");
    }

    #[test]
    fn names_at_the_aws_length_limits_are_accepted_and_one_more_is_refused() {
        let longest = format!("/{}", "p".repeat(MAX_PARAMETER_NAME_LEN - 1));
        assert_eq!(ssm_parameter_problem(&longest), None);
        let too_long = format!("{longest}p");
        assert!(ssm_parameter_problem(&too_long).is_some_and(|p| p.contains("at most 1011")));

        let alarm = "a".repeat(MAX_ALARM_NAME_LEN);
        assert!(check_alarm("alarms", &alarm).is_ok());
        let err = check_alarm("alarms", &format!("{alarm}a")).expect_err("256 characters");
        assert!(err.to_string().contains("at most 255"), "{err}");
    }

    fn with_prod_line(line: &str) -> Result<Config, ConfigError> {
        Config::from_toml(&SHARED.replace(
            "cluster = \"shop-prod\"",
            &format!("cluster = \"shop-prod\"\n{line}"),
        ))
    }

    #[test]
    fn an_empty_tags_table_asks_for_one_of_the_three_kinds() {
        let text = SHARED.replace(r#"tags = { semver = ">=1.0.0" }"#, "tags = {}");
        assert_ne!(text, SHARED, "the fixture names its tag policy");
        let err = Config::from_toml(&text).expect_err("no kind");
        assert!(
            err.to_string().contains("is empty; set exactly one"),
            "{err}"
        );
    }

    #[test]
    fn approval_defaults_to_off_and_its_expiry_to_a_day() {
        let plain = with_prod_line("").expect("valid");
        assert_eq!(
            plain.environment("shop", "prod").and_then(|e| e.approval),
            None
        );
        let gated = with_prod_line("approval = true").expect("valid");
        assert_eq!(
            gated.environment("shop", "prod").and_then(|e| e.approval),
            Some(Approval {
                expires_after: DEFAULT_APPROVAL_EXPIRY
            })
        );
        let short =
            with_prod_line("approval = true\napproval_expires_after = \"30m\"").expect("valid");
        assert_eq!(
            short.environment("shop", "prod").and_then(|e| e.approval),
            Some(Approval {
                expires_after: Duration::from_secs(1800)
            })
        );
    }

    #[test]
    fn an_approval_expiry_without_approval_or_out_of_range_is_refused_naming_the_key() {
        let key = "apps.shop.environments.prod.approval_expires_after";
        for (line, says) in [
            ("approval_expires_after = \"1h\"", "`approval` is not true"),
            (
                "approval = true\napproval_expires_after = \"soon\"",
                "not a duration",
            ),
            (
                "approval = true\napproval_expires_after = \"0s\"",
                "above zero",
            ),
            (
                "approval = true\napproval_expires_after = \"169h\"",
                "longer than",
            ),
        ] {
            let err = with_prod_line(line).expect_err(line);
            assert_eq!(err.key(), Some(key), "{err}");
            assert!(err.to_string().contains(says), "{says:?} in {err}");
        }
    }

    const PROMOTING: &str = r#"
[apps.shop]
repository = "shop"

[apps.shop.environments.staging]
cluster = "shop-staging"
services = ["api"]
tags = { semver = ">=0.1.0" }
image_tag_parameter = "/shop/staging/image"
STAGING

[apps.shop.environments.prod]
cluster = "shop-prod"
services = ["api"]
tags = { semver = ">=0.1.0" }
image_tag_parameter = "/shop/prod/image"
PROD
"#;

    fn promoting(staging: &str, prod: &str) -> Result<Config, ConfigError> {
        Config::from_toml(&PROMOTING.replace("STAGING", staging).replace("PROD", prod))
    }

    #[test]
    fn promote_from_names_another_environment_of_the_app_with_the_same_repositories() {
        let config = promoting("", "promote_from = \"staging\"").expect("valid");
        assert_eq!(
            config
                .environment("shop", "prod")
                .and_then(|e| e.promote_from.as_deref()),
            Some("staging")
        );
        let key = "apps.shop.environments.prod.promote_from";
        let extra_repository = PROMOTING.replace(
            "services = [\"api\"]\ntags = { semver = \">=0.1.0\" }\nimage_tag_parameter = \"/shop/prod/image\"",
            "services = [\"api\", { name = \"web\", repository = \"shop-web\" }]\ntags = { semver = \">=0.1.0\" }\nimage_tag_parameter = \"/shop/prod/{repository}\"",
        );
        assert_ne!(extra_repository, PROMOTING, "prod runs a second repository");
        for (text, says) in [
            (
                PROMOTING
                    .replace("STAGING", "")
                    .replace("PROD", "promote_from = \"qa\""),
                "not an environment of app `shop`",
            ),
            (
                PROMOTING
                    .replace("STAGING", "")
                    .replace("PROD", "promote_from = \"prod\""),
                "this environment itself",
            ),
            (
                extra_repository
                    .replace("STAGING", "")
                    .replace("PROD", "promote_from = \"staging\""),
                "same ones",
            ),
        ] {
            let err = Config::from_toml(&text).expect_err(says);
            assert_eq!(err.key(), Some(key), "{err}");
            assert!(err.to_string().contains(says), "{says:?} in {err}");
        }
    }

    #[test]
    fn promotions_that_go_round_in_a_circle_are_refused() {
        let err = promoting("promote_from = \"prod\"", "promote_from = \"staging\"")
            .expect_err("a cycle");
        assert!(err.to_string().contains("circle"), "{err}");
        assert!(
            err.key().is_some_and(|k| k.ends_with(".promote_from")),
            "{err}"
        );
    }

    #[test]
    fn a_bake_of_a_day_is_the_longest_accepted() {
        let day = with_prod_line("bake = \"24h\"").expect("a day is accepted");
        assert_eq!(
            day.environment("shop", "prod").map(|e| e.bake),
            Some(Bake::Fixed(Duration::from_secs(86_400)))
        );
        let err = with_prod_line("bake = \"86401s\"").expect_err("over a day");
        assert!(err.to_string().contains("longer than 24h"), "{err}");
    }

    #[test]
    fn a_smoke_test_without_a_timeout_gets_five_minutes() {
        let config = with_prod_line("verify = { task_family = \"shop-smoke\" }").expect("valid");
        let verify = config
            .environment("shop", "prod")
            .and_then(|e| e.verify.clone())
            .expect("a smoke test");
        assert_eq!(verify.timeout, Duration::from_secs(300));
    }

    #[test]
    fn a_smoke_test_without_a_family_says_it_names_the_smoke_test() {
        let err = with_prod_line("verify = { timeout = \"5m\" }").expect_err("no family");
        assert!(
            err.to_string().contains("verify.task_family")
                && err.to_string().contains("runs the smoke test"),
            "{err}"
        );
    }

    #[test]
    fn a_task_family_of_255_characters_is_accepted_and_256_refused() {
        let longest = "m".repeat(255);
        assert!(with_prod_line(&format!("verify = {{ task_family = \"{longest}\" }}")).is_ok());
        let err = with_prod_line(&format!("verify = {{ task_family = \"{longest}m\" }}"))
            .expect_err("256 characters");
        assert!(err.to_string().contains("up to 255"), "{err}");
    }
}
