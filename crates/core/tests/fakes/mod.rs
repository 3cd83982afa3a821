//! One in-memory AWS for the engine's tests: every port (`Ledger`, `Ecs`,
//! `Parameters`, `SecretsCheck`, `Registry`, `EventSink`) over shared state, with
//! the semantics of the adapters in `crates/aws/src/`:
//!
//! - the ledger's claim is one transaction: `AlreadyClaimed` if the release exists,
//!   `HeadMoved` if the head's version differs or the superseded release is not
//!   CLAIMED/MIGRATING/DEPLOYING; `update` is conditional on the state; `settle` is
//!   conditional on the state *and* on the head still pointing at the release;
//! - ECS keeps task-definition revisions per family, services with their
//!   deployments, the tasks it started and stopped;
//! - SSM keeps a version history with labels (a label moves between versions);
//! - ECR keeps images per repository (a tag moves to the newest image).
//!
//! Every call is counted per operation ([`FakeAws::calls`]), yields once to the
//! executor (so concurrent invocations really interleave), can be paused
//! ([`FakeAws::pause`]) to observe what is in flight, and can be made to fail
//! ([`FakeAws::fail_next`]).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use ferry_core::config::Config;
use ferry_core::engine::{
    Decision, DeploymentChange, DeploymentOutcome, Engine, Ports, Push, TaskStopped,
};
use ferry_core::image::{ContainerImage, ImageChange, ReleaseTags};
use ferry_core::metrics::Measurement;
use ferry_core::names::PushTime;
use ferry_core::ports::{
    superseded_reason, AlarmState, AlarmStatus, Alarms, Claim, ClaimOutcome, DeploymentStatus, Ecs,
    EventSink, HeadChange, HeldPush, ImageSelector, Lane, LaneHead, Ledger, Metrics, Notice,
    Parameters, PortError, PortResult, Registry, ReleaseEvent, ReleasePointer, ReleaseRecord,
    ReleaseUpdate, ResolvedImage, RollbackInProgress, RollbackLedger, RollbackWrite, RolloutState,
    SecretsCheck, ServiceLookup, ServiceView, TagClaim, TaskDefinitionView, TaskPhase, TaskStatus,
    Timers, TAG_CLAIM_LEASE,
};
use ferry_core::release::{
    Guard, ReleaseId, ReleaseState, StoppedContainer, StoppedTask, Transition,
};

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "eu-west-1";
pub const REGISTRY: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

pub const SHOP_CLUSTER: &str = "shop-prod";
pub const SHOP_PARAMETER: &str = "/shop/prod/compute/currentImageTag";
pub const SHOP_STAGING_CLUSTER: &str = "shop-staging";
pub const SHOP_STAGING_PARAMETER: &str = "/shop/staging/compute/currentImageTag";
pub const SHOP_REPOSITORY: &str = "shop";
pub const SHOP_SERVICES: [&str; 3] = ["api", "worker", "scheduler"];
pub const MIGRATION_FAMILY: &str = "shop-migrate";
pub const MIGRATION_CONTAINER: &str = "migrate";
pub const SMOKE_FAMILY: &str = "shop-smoke";
/// The sidecar of `api`: from another registry, never touched by a release.
pub const SIDECAR_IMAGE: &str = "public.ecr.aws/datadog/agent:7";

pub const BLOG_CLUSTER: &str = "blog-prod";
/// Each blog lane records its tag in its own parameter (`{repository}` in the config).
pub const BLOG_WEB_PARAMETER: &str = "/blog/prod/blog-web/currentImageTag";
pub const BLOG_JOBS_PARAMETER: &str = "/blog/prod/blog-jobs/currentImageTag";

/// 2026-01-01T00:00:00Z, the tests' clock.
pub const T0: u64 = 1_767_225_600;
/// The migration timeout of the shop estate (15m).
pub const MIGRATION_TIMEOUT: u64 = 15 * 60;

/// `2026-01-01T00:MM:SSZ`, `seconds` after [`T0`] (under an hour).
pub fn at(seconds: u64) -> String {
    assert!(seconds < 3600);
    format!("2026-01-01T00:{:02}:{:02}Z", seconds / 60, seconds % 60)
}

pub fn task_definition_arn(family: &str, revision: usize) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{revision}")
}

pub fn image(repository: &str, tag: &str) -> String {
    format!("{REGISTRY}/{repository}:{tag}")
}

pub fn pinned(repository: &str, digest: &str) -> String {
    format!("{REGISTRY}/{repository}@{digest}")
}

pub fn secret_arn(name: &str) -> String {
    format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-AbCdEf")
}

/// A deterministic `sha256:<64 hex>` digest for an image, distinct per
/// (repository, tag) in its first 16 hex characters (the release id's part).
pub fn digest_of(repository: &str, tag: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in repository.bytes().chain([b':']).chain(tag.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("sha256:{}", format!("{hash:016x}").repeat(4))
}

pub fn shop_lane() -> Lane {
    Lane {
        app: "shop".into(),
        env: "prod".into(),
        repository: SHOP_REPOSITORY.into(),
    }
}

pub fn blog_lane(repository: &str) -> Lane {
    Lane {
        app: "blog".into(),
        env: "prod".into(),
        repository: repository.into(),
    }
}

pub fn shop_release(tag: &str) -> ReleaseId {
    ReleaseId::derive("shop", "prod", &digest_of(SHOP_REPOSITORY, tag))
}

/// Operations that change AWS or the ledger. `ecs:RestoreService` is UpdateService
/// without forceNewDeployment (a rollback putting a service back).
pub const MUTATIONS: [&str; 14] = [
    "ledger:Claim",
    "ledger:Update",
    "ledger:Settle",
    "ledger:RollBack",
    "ledger:Hold",
    "ledger:Unfreeze",
    "ecs:RegisterTaskDefinition",
    "ecs:DeregisterTaskDefinition",
    "ecs:RunTask",
    "ecs:UpdateService",
    "ecs:RestoreService",
    "ecs:StopTask",
    "ssm:PutParameter",
    "ssm:LabelParameterVersion",
];

// ---------------------------------------------------------------------------
// Configuration

/// How the estate's config is written.
#[derive(Debug, Clone, Copy)]
pub struct EstateOptions {
    /// `shop` runs `shop-migrate` before its services.
    pub migration: bool,
    pub unfreeze_on_new_digest: bool,
    /// `shop`'s `bake` key: `"0s"` unless a scenario is about the bake; `None`
    /// leaves it out (the window derives from the alarms).
    pub bake: Option<&'static str>,
    /// `shop` runs the `shop-smoke` smoke test after its services completed.
    pub verify: bool,
    /// The reconcile pass puts a drifted `shop` service back.
    pub heal_drift: bool,
    /// `shop` restarts when a secret its known-good revisions read changes.
    pub restart_on_secret_change: bool,
    /// `blog`'s `keep` key (revisions of the last N known-good releases kept).
    pub keep: Option<usize>,
    /// `shop/prod` asks for approval; its `approval_expires_after`.
    pub approval: Option<&'static str>,
    /// `shop/staging` (cluster `shop-staging`, the same services, no migration)
    /// exists and `shop/prod` takes only digests known-good there.
    pub staging: bool,
}

impl Default for EstateOptions {
    fn default() -> Self {
        EstateOptions {
            migration: true,
            unfreeze_on_new_digest: false,
            bake: Some("0s"),
            verify: false,
            heal_drift: false,
            restart_on_secret_change: false,
            keep: None,
            approval: None,
            staging: false,
        }
    }
}

/// The `shop` app (one image for api/worker/scheduler and the migration) and the
/// `blog` app (one repository per service), as in the README's "Configuration".
pub fn estate_toml(options: EstateOptions) -> String {
    let migration = if options.migration {
        "migration = { task_family = \"shop-migrate\", timeout = \"15m\" }\n"
    } else {
        ""
    };
    let bake = options
        .bake
        .map(|b| format!("bake = \"{b}\"\n"))
        .unwrap_or_default();
    let verify = if options.verify {
        "verify = { task_family = \"shop-smoke\", timeout = \"5m\" }\n"
    } else {
        ""
    };
    let keep = options
        .keep
        .map(|n| format!("keep = {n}\n"))
        .unwrap_or_default();
    let approval = options
        .approval
        .map(|expiry| format!("approval = true\napproval_expires_after = \"{expiry}\"\n"))
        .unwrap_or_default();
    let (promote_from, staging) = if options.staging {
        (
            "promote_from = \"staging\"\n",
            r#"
[apps.shop.environments.staging]
cluster = "shop-staging"
services = ["api", "worker", "scheduler"]
tags = { semver = ">=0.1.0" }
image_tag_parameter = "/shop/staging/compute/currentImageTag"
bake = "0s"
"#,
        )
    } else {
        ("", "")
    };
    format!(
        r#"
[apps.shop]
repository = "shop"

[apps.shop.environments.prod]
cluster = "shop-prod"
services = ["api", "worker", "scheduler"]
tags = {{ semver = ">=0.1.0" }}
image_tag_parameter = "/shop/prod/compute/currentImageTag"
{migration}{bake}{verify}{approval}{promote_from}alarms = ["shop-prod-5xx"]
unfreeze_on_new_digest = {unfreeze}
heal_drift = {heal_drift}
restart_on_secret_change = {restart}
{staging}
[apps.blog.environments.prod]
cluster = "blog-prod"
services = [{{ name = "web", repository = "blog-web" }}, {{ name = "jobs", repository = "blog-jobs" }}]
tags = {{ glob = "sha-*" }}
image_tag_parameter = "/blog/prod/{{repository}}/currentImageTag"
{keep}"#,
        unfreeze = options.unfreeze_on_new_digest,
        heal_drift = options.heal_drift,
        restart = options.restart_on_secret_change,
    )
}

/// Every port of the engine is the one in-memory AWS.
pub struct FakePorts;

impl Ports for FakePorts {
    type Ledger = FakeAws;
    type Ecs = FakeAws;
    type Parameters = FakeAws;
    type Secrets = FakeAws;
    type Registry = FakeAws;
    type Events = FakeAws;
    type Alarms = FakeAws;
    type Timers = FakeAws;
    type Metrics = FakeAws;
}

pub type FakeEngine = Engine<FakePorts>;

/// The estate with a migration: fake AWS seeded, and an engine over it.
pub fn estate() -> (FakeAws, FakeEngine) {
    estate_with(EstateOptions::default())
}

pub fn estate_with(options: EstateOptions) -> (FakeAws, FakeEngine) {
    let fake = FakeAws::default();
    fake.seed_shop();
    fake.seed_blog();
    if options.staging {
        fake.seed_shop_staging();
    }
    let config = Config::from_toml(&estate_toml(options)).expect("the estate's config is valid");
    let engine = fake.engine(config);
    (fake, engine)
}

// ---------------------------------------------------------------------------
// State

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeContainer {
    pub name: String,
    pub image: String,
    pub essential: bool,
    /// `secrets[].valueFrom`
    pub secrets: Vec<String>,
}

impl FakeContainer {
    pub fn new(name: &str, image: &str) -> Self {
        FakeContainer {
            name: name.into(),
            image: image.into(),
            essential: true,
            secrets: Vec::new(),
        }
    }

    pub fn with_secret(mut self, reference: &str) -> Self {
        self.secrets.push(reference.into());
        self
    }

    pub fn not_essential(mut self) -> Self {
        self.essential = false;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTaskDefinition {
    pub arn: String,
    pub family: String,
    pub revision: usize,
    pub containers: Vec<FakeContainer>,
    pub tags: Vec<(String, String)>,
    /// ACTIVE; false once deregistered (INACTIVE).
    pub active: bool,
}

impl FakeTaskDefinition {
    pub fn container(&self, name: &str) -> &FakeContainer {
        self.containers
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{} has no container {name}", self.arn))
    }
}

impl TaskDefinitionView for FakeTaskDefinition {
    fn arn(&self) -> &str {
        &self.arn
    }
    fn family(&self) -> &str {
        &self.family
    }
    fn containers(&self) -> Vec<ContainerImage> {
        self.containers
            .iter()
            .map(|c| ContainerImage {
                name: c.name.clone(),
                image: c.image.clone(),
            })
            .collect()
    }
    fn essential_containers(&self) -> Vec<String> {
        self.containers
            .iter()
            .filter(|c| c.essential)
            .map(|c| c.name.clone())
            .collect()
    }
    fn secret_refs(&self) -> Vec<String> {
        self.containers
            .iter()
            .flat_map(|c| c.secrets.iter().cloned())
            .collect()
    }
    fn tags(&self) -> Vec<(String, String)> {
        self.tags.clone()
    }
    fn is_active(&self) -> bool {
        self.active
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeService {
    pub cluster: String,
    pub name: String,
    pub task_definition: String,
    /// `ACTIVE`, `DRAINING` or `INACTIVE`.
    pub status: String,
    /// Deployment ids, oldest first; the last one is PRIMARY.
    pub deployments: Vec<String>,
    /// deployment id → its rollout state, once it ended (else IN_PROGRESS).
    pub rollouts: BTreeMap<String, RolloutState>,
    /// deployment id → the fake's clock when it began (`createdAt`), for
    /// deployments begun once a test set the clock.
    pub created: BTreeMap<String, u64>,
    /// deployment id → the task definition it deploys.
    pub revisions: BTreeMap<String, String>,
}

impl ServiceView for FakeService {
    fn name(&self) -> &str {
        &self.name
    }
    fn task_definition(&self) -> &str {
        &self.task_definition
    }
    /// ECS lists the PRIMARY deployment and the ACTIVE ones still draining;
    /// the fake lists the PRIMARY (on the service's task definition) and the one before.
    fn deployments(&self) -> Vec<DeploymentStatus> {
        self.deployments
            .iter()
            .rev()
            .take(2)
            .enumerate()
            .map(|(i, id)| DeploymentStatus {
                id: id.clone(),
                primary: i == 0,
                task_definition: if i == 0 {
                    self.task_definition.clone()
                } else {
                    String::new()
                },
                rollout: Some(
                    self.rollouts
                        .get(id)
                        .copied()
                        .unwrap_or(RolloutState::InProgress),
                ),
                created_at: self.created.get(id).copied(),
            })
            .collect()
    }
}

/// One RegisterTaskDefinition call that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub arn: String,
    pub family: String,
    pub base: String,
    pub changes: Vec<ImageChange>,
    pub tags: Vec<(String, String)>,
}

/// One RunTask that started a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTask {
    pub arn: String,
    pub cluster: String,
    pub task_definition: String,
    pub started_by: String,
    /// The service whose launch settings the task copied.
    pub like: String,
    pub tags: Vec<(String, String)>,
}

/// One UpdateService that started a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUpdate {
    pub cluster: String,
    pub service: String,
    pub task_definition: String,
    pub deployment: String,
    /// forceNewDeployment: a release's rollout (true) or a rollback's restore (false).
    pub forced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedByFerry {
    pub cluster: String,
    pub task: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterVersion {
    pub version: i64,
    pub value: String,
    pub labels: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeImage {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: String,
}

#[derive(Debug, Clone)]
struct Failure {
    operation: &'static str,
    key: Option<String>,
    code: String,
    retryable: bool,
}

/// The ledger's claim item of one lane: its holder (token, taken at) and the
/// version the last holder wrote.
#[derive(Debug, Default, Clone)]
pub struct FakeTagClaims {
    pub holder: Option<(String, u64)>,
    pub last_written: Option<i64>,
}

#[derive(Default)]
pub struct State {
    // ledger
    pub heads: BTreeMap<Lane, LaneHead>,
    pub releases: BTreeMap<ReleaseId, ReleaseRecord>,
    /// Claims that applied (the transaction committed).
    pub claims_applied: usize,
    /// Per lane, the claim on the image-tag writes.
    pub tag_claims: BTreeMap<Lane, FakeTagClaims>,
    pub tag_claims_taken: u64,
    /// The ledger's clock (epoch seconds) for claim leases; tests move it.
    pub clock: u64,
    /// Writers waiting for the claim on a lane's tag writes.
    pub awaiting_claim: usize,
    /// The next invocation dies once this many more calls have entered: the
    /// call after them never returns (`kill_after_calls`).
    pub kill_after: Option<usize>,
    /// An invocation died; its caller drops it.
    pub killed: bool,
    // ECS
    /// family → revisions, revision n at index n - 1
    pub task_definitions: BTreeMap<String, Vec<FakeTaskDefinition>>,
    pub registrations: Vec<Registration>,
    /// (cluster, name) → service
    pub services: BTreeMap<(String, String), FakeService>,
    pub tasks: Vec<FakeTask>,
    /// task ARN → how it stopped, as DescribeTasks reports it
    pub task_ends: BTreeMap<String, StoppedTask>,
    /// Tasks ECS no longer describes (it forgets a stopped task after about an hour).
    pub forgotten_tasks: BTreeSet<String>,
    pub stopped: Vec<StoppedByFerry>,
    pub updates: Vec<ServiceUpdate>,
    /// Services whose deployment back to known-good (a rollback's or a
    /// put-back's) failed and which ECS's circuit breaker then returned to the
    /// revision before it; until the next UpdateService of the service.
    pub restores_undone: BTreeSet<String>,
    // SSM
    pub parameters: BTreeMap<String, Vec<ParameterVersion>>,
    // Secrets Manager / SSM secure parameters: references that exist
    pub secrets: BTreeSet<String>,
    // ECR: repository → images
    pub images: BTreeMap<String, Vec<FakeImage>>,
    /// The reconcile pass's `Reconciled` and `Drift Detected` events.
    pub notices: Vec<Notice>,
    // EventBridge
    pub events: Vec<ReleaseEvent>,
    // CloudWatch embedded metrics, and the clock that ends their durations
    // (epoch seconds; unset: T0)
    pub metrics: Vec<Measurement>,
    pub metrics_clock: Option<u64>,
    // CloudWatch: alarm name → status
    pub alarms: BTreeMap<String, AlarmStatus>,
    // EventBridge Scheduler: bake timers, release → epoch seconds
    pub timers: BTreeMap<ReleaseId, u64>,
    // instrumentation
    pub calls: BTreeMap<&'static str, usize>,
    /// operation → calls held by a pause right now
    held: BTreeMap<&'static str, usize>,
    /// operation → the calls held: numbers (counted from 1) after `.0`, up to `.1`
    paused: BTreeMap<&'static str, (usize, Option<usize>)>,
    wakers: Vec<Waker>,
    failures: Vec<Failure>,
    next_id: u64,
}

/// In-memory AWS; clones share state.
#[derive(Clone, Default)]
pub struct FakeAws {
    inner: Arc<Mutex<State>>,
}

impl FakeAws {
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn engine(&self, config: Config) -> FakeEngine {
        Engine {
            config: Arc::new(config),
            ledger: self.clone(),
            ecs: self.clone(),
            params: self.clone(),
            secrets: self.clone(),
            registry: self.clone(),
            events: self.clone(),
            alarms: self.clone(),
            timers: self.clone(),
            metrics: self.clone(),
        }
    }

    // -- seeding ------------------------------------------------------------

    /// `shop-prod`: api (with a sidecar), worker and scheduler on `shop-<name>:1`
    /// and the migration on `shop-migrate:1`, all on `shop:0.9.0`, each referencing
    /// one secret; SSM at `0.9.0`; ECR holds `0.9.0`.
    pub fn seed_shop(&self) {
        for name in SHOP_SERVICES {
            let mut containers = vec![FakeContainer::new("app", &image(SHOP_REPOSITORY, "0.9.0"))
                .with_secret(&secret_arn(&format!("shop/prod/{name}")))];
            if name == "api" {
                containers.push(FakeContainer::new("datadog", SIDECAR_IMAGE).not_essential());
            }
            let arn = self.add_task_definition(&format!("shop-{name}"), containers);
            self.add_service(SHOP_CLUSTER, name, &arn);
            self.add_secret(&secret_arn(&format!("shop/prod/{name}")));
        }
        self.add_task_definition(
            MIGRATION_FAMILY,
            vec![
                FakeContainer::new(MIGRATION_CONTAINER, &image(SHOP_REPOSITORY, "0.9.0"))
                    .with_secret(&secret_arn("shop/prod/db")),
            ],
        );
        self.add_secret(&secret_arn("shop/prod/db"));
        // The smoke test runs the app's image: its copy follows the release.
        self.add_task_definition(
            SMOKE_FAMILY,
            vec![FakeContainer::new(
                "smoke",
                &image(SHOP_REPOSITORY, "0.9.0"),
            )],
        );
        self.set_parameter(SHOP_PARAMETER, "0.9.0");
        self.add_image(SHOP_REPOSITORY, "0.9.0", &at(0));
    }

    /// `shop-staging`: the shop services on the revisions prod runs.
    pub fn seed_shop_staging(&self) {
        for name in SHOP_SERVICES {
            let arn = task_definition_arn(&format!("shop-{name}"), 1);
            self.add_service(SHOP_STAGING_CLUSTER, name, &arn);
        }
        self.set_parameter(SHOP_STAGING_PARAMETER, "0.9.0");
    }

    /// `blog-prod`: web on `blog-web`, jobs on `blog-jobs`, both at `sha-0000000`.
    pub fn seed_blog(&self) {
        for (name, repository) in [("web", "blog-web"), ("jobs", "blog-jobs")] {
            let arn = self.add_task_definition(
                &format!("blog-{name}"),
                vec![FakeContainer::new(name, &image(repository, "sha-0000000"))],
            );
            self.add_service(BLOG_CLUSTER, name, &arn);
            self.add_image(repository, "sha-0000000", &at(0));
        }
        self.set_parameter(BLOG_WEB_PARAMETER, "sha-0000000");
        self.set_parameter(BLOG_JOBS_PARAMETER, "sha-0000000");
    }

    /// Registers revision n + 1 of `family` (outside ferry); returns its ARN.
    pub fn add_task_definition(&self, family: &str, containers: Vec<FakeContainer>) -> String {
        let mut state = self.state();
        let revisions = state.task_definitions.entry(family.into()).or_default();
        let revision = revisions.len() + 1;
        let arn = task_definition_arn(family, revision);
        revisions.push(FakeTaskDefinition {
            arn: arn.clone(),
            family: family.into(),
            revision,
            containers,
            tags: vec![("team".into(), "payments".into())],
            active: true,
        });
        arn
    }

    /// Deregisters a revision outside ferry (another tool; not counted as a call).
    pub fn deregister_outside(&self, arn: &str) {
        let mut state = self.state();
        let found = state
            .task_definitions
            .values_mut()
            .flatten()
            .find(|td| td.arn == arn);
        match found {
            Some(td) => td.active = false,
            None => panic!("no task definition {arn} to deregister"),
        }
    }

    /// The ACTIVE revisions of `family`, oldest first.
    pub fn active_revisions(&self, family: &str) -> Vec<String> {
        self.state()
            .task_definitions
            .get(family)
            .map(|revisions| {
                revisions
                    .iter()
                    .filter(|td| td.active)
                    .map(|td| td.arn.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn add_service(&self, cluster: &str, name: &str, task_definition: &str) {
        self.state().services.insert(
            (cluster.into(), name.into()),
            FakeService {
                cluster: cluster.into(),
                name: name.into(),
                task_definition: task_definition.into(),
                status: "ACTIVE".into(),
                deployments: vec![format!("ecs-svc/initial-{name}")],
                rollouts: BTreeMap::from([(
                    format!("ecs-svc/initial-{name}"),
                    RolloutState::Completed,
                )]),
                created: BTreeMap::new(),
                revisions: BTreeMap::from([(
                    format!("ecs-svc/initial-{name}"),
                    task_definition.to_owned(),
                )]),
            },
        );
    }

    pub fn delete_service(&self, cluster: &str, name: &str) {
        self.state()
            .services
            .remove(&(cluster.to_owned(), name.to_owned()));
    }

    pub fn add_secret(&self, reference: &str) {
        self.state().secrets.insert(reference.into());
    }

    pub fn delete_secret(&self, reference: &str) {
        self.state().secrets.remove(reference);
    }

    /// Writes the parameter outside ferry (not counted as a call).
    pub fn set_parameter(&self, name: &str, value: &str) -> i64 {
        let mut state = self.state();
        let versions = state.parameters.entry(name.into()).or_default();
        let version = versions.len() as i64 + 1;
        versions.push(ParameterVersion {
            version,
            value: value.into(),
            labels: BTreeSet::new(),
        });
        version
    }

    /// Pushes an image to ECR (the tag moves to it); returns its digest.
    pub fn add_image(&self, repository: &str, tag: &str, pushed_at: &str) -> String {
        let digest = digest_of(repository, tag);
        let mut state = self.state();
        let images = state.images.entry(repository.into()).or_default();
        for other in images.iter_mut() {
            other.tags.retain(|t| t != tag);
        }
        match images.iter_mut().find(|i| i.digest == digest) {
            Some(existing) => existing.tags.push(tag.into()),
            None => images.push(FakeImage {
                digest: digest.clone(),
                tags: vec![tag.into()],
                pushed_at: pushed_at.into(),
            }),
        }
        digest
    }

    /// An image is pushed to ECR and the ECR push event for it is returned.
    pub fn push(&self, repository: &str, tag: &str, pushed_at: &str) -> Push {
        let digest = self.add_image(repository, tag, pushed_at);
        push_event(repository, tag, &digest, pushed_at)
    }

    /// Sets the lane's frozen flag, as the rollback flow does (a conditional
    /// write on the head, so its version moves).
    pub fn freeze(&self, lane: &Lane) {
        let mut state = self.state();
        let head = state.heads.entry(lane.clone()).or_default();
        head.frozen = true;
        head.version += 1;
    }

    // -- instrumentation ----------------------------------------------------

    /// Calls per operation, including calls that failed or are paused.
    pub fn calls(&self) -> BTreeMap<&'static str, usize> {
        self.state().calls.clone()
    }

    pub fn count(&self, operation: &str) -> usize {
        self.state().calls.get(operation).copied().unwrap_or(0)
    }

    pub fn total_calls(&self) -> usize {
        self.state().calls.values().sum()
    }

    /// Calls to operations that change AWS or the ledger.
    pub fn mutation_calls(&self) -> BTreeMap<&'static str, usize> {
        self.state()
            .calls
            .iter()
            .filter(|(op, _)| MUTATIONS.contains(op))
            .map(|(op, n)| (*op, *n))
            .collect()
    }

    /// Holds every later call of `operation` (counted, not executed) until
    /// [`FakeAws::resume`].
    pub fn pause(&self, operation: &'static str) {
        let mut state = self.state();
        let made = state.calls.get(operation).copied().unwrap_or(0);
        state.paused.insert(operation, (made, None));
    }

    /// Lets the first `allowed` calls of `operation` (ever) through and holds the
    /// rest until [`FakeAws::resume`].
    pub fn pause_after(&self, operation: &'static str, allowed: usize) {
        self.state().paused.insert(operation, (allowed, None));
    }

    /// Holds only the `number`-th call of `operation` (counted from 1) until
    /// [`FakeAws::resume`]; the others pass.
    pub fn pause_call(&self, operation: &'static str, number: usize) {
        self.state()
            .paused
            .insert(operation, (number - 1, Some(number)));
    }

    pub fn resume(&self, operation: &'static str) {
        let wakers = {
            let mut state = self.state();
            state.paused.remove(operation);
            std::mem::take(&mut state.wakers)
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// How many calls of `operation` are held by a pause now.
    /// Writers waiting for the claim on a lane's tag writes.
    pub fn awaiting_claim(&self) -> usize {
        self.state().awaiting_claim
    }

    /// Whether an invocation holds the claim on some lane's tag writes.
    pub fn tag_writes_claimed(&self) -> bool {
        self.state().tag_claims.values().any(|c| c.holder.is_some())
    }

    /// The next invocation is killed (Lambda's runtime ends the process) once
    /// `calls` AWS calls have entered: the next call never returns and
    /// [`FakeAws::until_killed`] drops the invocation.
    pub fn kill_after_calls(&self, calls: usize) {
        let mut state = self.state();
        state.kill_after = Some(calls);
        state.killed = false;
    }

    /// Runs `invocation` until it ends or is killed (`None`).
    pub async fn until_killed<T>(&self, invocation: impl Future<Output = T>) -> Option<T> {
        let killed = std::future::poll_fn(|cx| {
            if std::mem::take(&mut self.state().killed) {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        });
        futures_util::pin_mut!(invocation);
        futures_util::pin_mut!(killed);
        match futures_util::future::select(invocation, killed).await {
            futures_util::future::Either::Left((done, _)) => Some(done),
            futures_util::future::Either::Right(((), _)) => None,
        }
    }

    /// Sets the ledger's clock (claim leases), epoch seconds.
    pub fn set_clock(&self, now: u64) {
        self.state().clock = now;
    }

    /// Moves the ledger's clock (claim leases) on.
    pub fn advance_clock(&self, seconds: u64) {
        self.state().clock += seconds;
    }

    pub fn waiting(&self, operation: &'static str) -> usize {
        self.state().held.get(operation).copied().unwrap_or(0)
    }

    /// The next call of `operation` (for `key`, e.g. a service or family name,
    /// when given) fails with the service error `code`.
    pub fn fail_next(
        &self,
        operation: &'static str,
        key: Option<&str>,
        code: &str,
        retryable: bool,
    ) {
        self.state().failures.push(Failure {
            operation,
            key: key.map(str::to_owned),
            code: code.into(),
            retryable,
        });
    }

    async fn enter(&self, operation: &'static str, key: &str) -> PortResult<()> {
        if self.dies_here() {
            std::future::pending::<()>().await;
        }
        let number = {
            let mut state = self.state();
            let calls = state.calls.entry(operation).or_default();
            *calls += 1;
            *calls
        };
        YieldOnce(false).await;
        Held {
            fake: self,
            operation,
            number,
            waiting: false,
        }
        .await;
        let mut state = self.state();
        let failure = state
            .failures
            .iter()
            .position(|f| f.operation == operation && f.key.as_deref().is_none_or(|k| k == key));
        if let Some(i) = failure {
            let failure = state.failures.remove(i);
            let error = PortError::new(operation, format!("injected {}", failure.code))
                .with_code(failure.code);
            return Err(if failure.retryable {
                error.retryable()
            } else {
                error
            });
        }
        Ok(())
    }

    fn dies_here(&self) -> bool {
        let mut state = self.state();
        match state.kill_after {
            Some(0) => {
                state.kill_after = None;
                state.killed = true;
                true
            }
            Some(ref mut left) => {
                *left -= 1;
                false
            }
            None => false,
        }
    }

    fn next_id(&self) -> u64 {
        let mut state = self.state();
        state.next_id += 1;
        state.next_id
    }

    // -- reading the state --------------------------------------------------

    pub fn lane_head(&self, lane: &Lane) -> LaneHead {
        self.state().heads.get(lane).cloned().unwrap_or_default()
    }

    pub fn record(&self, id: &ReleaseId) -> ReleaseRecord {
        self.state()
            .releases
            .get(id)
            .cloned()
            .unwrap_or_else(|| panic!("release {id} is not in the ledger"))
    }

    pub fn has_release(&self, id: &ReleaseId) -> bool {
        self.state().releases.contains_key(id)
    }

    pub fn release_count(&self) -> usize {
        self.state().releases.len()
    }

    pub fn parameter(&self, name: &str) -> Option<String> {
        self.state()
            .parameters
            .get(name)
            .and_then(|v| v.last())
            .map(|v| v.value.clone())
    }

    pub fn parameter_history(&self, name: &str) -> Vec<ParameterVersion> {
        self.state()
            .parameters
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    pub fn service(&self, cluster: &str, name: &str) -> FakeService {
        self.state()
            .services
            .get(&(cluster.to_owned(), name.to_owned()))
            .cloned()
            .unwrap_or_else(|| panic!("no service {cluster}/{name}"))
    }

    pub fn task_definition(&self, arn: &str) -> FakeTaskDefinition {
        let state = self.state();
        state
            .task_definitions
            .values()
            .flatten()
            .find(|td| td.arn == arn)
            .cloned()
            .unwrap_or_else(|| panic!("no task definition {arn}"))
    }

    pub fn registrations(&self) -> Vec<Registration> {
        self.state().registrations.clone()
    }

    pub fn tasks(&self) -> Vec<FakeTask> {
        self.state().tasks.clone()
    }

    pub fn updates(&self) -> Vec<ServiceUpdate> {
        self.state().updates.clone()
    }

    pub fn stopped(&self) -> Vec<StoppedByFerry> {
        self.state().stopped.clone()
    }

    pub fn events(&self) -> Vec<ReleaseEvent> {
        self.state().events.clone()
    }

    /// `(state, previous state)` of every event about `release`, in order.
    pub fn transitions(&self, release: &ReleaseId) -> Vec<(String, Option<String>)> {
        self.events()
            .into_iter()
            .filter(|e| e.release_id == release.as_str())
            .map(|e| {
                let previous = e.previous_state.map(|p| p.as_str().to_owned());
                (e.state.as_str().to_owned(), previous)
            })
            .collect()
    }

    /// The migration task ferry started for `release`.
    pub fn migration_task(&self, release: &ReleaseId) -> FakeTask {
        let started_by = release.started_by();
        let tasks: Vec<FakeTask> = self
            .tasks()
            .into_iter()
            .filter(|t| t.started_by == started_by)
            .collect();
        assert_eq!(tasks.len(), 1, "tasks started by {started_by}: {tasks:?}");
        tasks[0].clone()
    }

    /// What ECS reports of a task that stopped, without its STOPPED event
    /// reaching ferry (the router lost it).
    pub fn task_stops_unseen(&self, stopped: &TaskStopped) {
        self.state()
            .task_ends
            .insert(stopped.task_arn.clone(), stopped.task.clone());
    }

    /// The function rolling `release` out died after its UpdateService calls
    /// landed and before it recorded them; the reconcile pass found the step
    /// stalled and marked it interrupted.
    pub fn killed_after_update_service(&self, release: &ReleaseId) {
        let mut state = self.state();
        let record = state.releases.get_mut(release).expect("a release");
        record.deployments.clear();
        record.interrupted = Some("stalled: no write since the rollout began".into());
    }

    /// ECS forgets the task (about an hour after it stopped).
    pub fn forget_task(&self, arn: &str) {
        self.state().forgotten_tasks.insert(arn.to_owned());
    }

    /// `service`'s latest deployment ends with `outcome`, its event lost.
    pub fn deployment_ends_unseen(&self, cluster: &str, service: &str, outcome: RolloutState) {
        let mut state = self.state();
        let service = state
            .services
            .get_mut(&(cluster.to_owned(), service.to_owned()))
            .expect("a service");
        let primary = service.deployments.last().cloned().expect("a deployment");
        service.rollouts.insert(primary, outcome);
    }

    /// `service`'s latest deployment fails and ECS's circuit breaker rolls the
    /// service back to the revision of its last completed deployment, in a
    /// deployment of its own begun at the fake's clock (completed at once);
    /// no event delivered. Returns the rollback's deployment id, or `None`
    /// (only the failure) when no earlier deployment completed.
    pub fn circuit_breaker_rolls_back(&self, cluster: &str, service: &str) -> Option<String> {
        let id = self.next_id();
        let mut state = self.state();
        let clock = state.clock;
        let key = (cluster.to_owned(), service.to_owned());
        let svc = state.services.get_mut(&key).expect("a service");
        let (failed, earlier) = svc.deployments.split_last()?;
        let failed = failed.clone();
        let previous = earlier
            .iter()
            .rev()
            .find(|d| svc.rollouts.get(*d) == Some(&RolloutState::Completed))
            .and_then(|d| svc.revisions.get(d))?
            .clone();
        svc.rollouts.insert(failed.clone(), RolloutState::Failed);
        let rollback = format!("ecs-svc/{id:019}");
        svc.task_definition = previous.clone();
        svc.deployments.push(rollback.clone());
        svc.revisions.insert(rollback.clone(), previous);
        svc.created.insert(rollback.clone(), clock);
        svc.rollouts
            .insert(rollback.clone(), RolloutState::Completed);
        let undid_a_restore = state
            .updates
            .iter()
            .any(|u| u.deployment == failed && !u.forced);
        if undid_a_restore {
            state.restores_undone.insert(service.to_owned());
        }
        Some(rollback)
    }

    /// Someone runs `aws ecs update-service` by hand (no event to ferry).
    pub fn update_service_by_hand(&self, cluster: &str, service: &str, task_definition: &str) {
        self.apply_service_update(cluster, service, task_definition, true)
            .expect("an active service");
        self.state().updates.pop();
    }

    pub fn notices(&self) -> Vec<Notice> {
        self.state().notices.clone()
    }

    /// The deployment ferry's last UpdateService of `service` started.
    pub fn last_deployment(&self, cluster: &str, service: &str) -> String {
        self.service(cluster, service)
            .deployments
            .last()
            .cloned()
            .expect("a service has a deployment")
    }
}

impl FakeAws {
    /// UpdateService: with `force` (or a new task definition) a new PRIMARY
    /// deployment starts; without, a service already on `task_definition` keeps
    /// its PRIMARY deployment, as ECS does.
    fn apply_service_update(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
        force: bool,
    ) -> PortResult<String> {
        let id = self.next_id();
        let mut state = self.state();
        let clock = state.clock;
        // As ECS: "you can't update an existing service to reference an INACTIVE
        // task definition" (DeregisterTaskDefinition).
        let inactive = state
            .task_definitions
            .values()
            .flatten()
            .any(|td| td.arn == task_definition && !td.active);
        if inactive {
            return Err(
                PortError::new("ecs:UpdateService", "TaskDefinition is inactive")
                    .with_code("ClientException"),
            );
        }
        let Some(existing) = state
            .services
            .get_mut(&(cluster.to_owned(), service.to_owned()))
            .filter(|s| s.status == "ACTIVE")
        else {
            return Err(PortError::new("ecs:UpdateService", "Service not found.")
                .with_code("ServiceNotFoundException"));
        };
        if !force && existing.task_definition == task_definition {
            if let Some(primary) = existing.deployments.last() {
                return Ok(primary.clone());
            }
        }
        let deployment = format!("ecs-svc/{id:019}");
        existing.task_definition = task_definition.into();
        existing.deployments.push(deployment.clone());
        existing
            .revisions
            .insert(deployment.clone(), task_definition.to_owned());
        if clock > 0 {
            existing.created.insert(deployment.clone(), clock);
        }
        state.restores_undone.remove(service);
        state.updates.push(ServiceUpdate {
            cluster: cluster.into(),
            service: service.into(),
            task_definition: task_definition.into(),
            deployment: deployment.clone(),
            forced: force,
        });
        Ok(deployment)
    }
}

/// The ECR `PUSH`/`SUCCESS` event for an image.
pub fn push_event(repository: &str, tag: &str, digest: &str, pushed_at: &str) -> Push {
    Push {
        registry_id: ACCOUNT.into(),
        region: REGION.into(),
        repository: repository.into(),
        tag: tag.into(),
        digest: digest.into(),
        pushed_at: PushTime::parse_rfc3339(pushed_at).expect("an RFC 3339 test time"),
    }
}

/// Polls `future` until `condition` holds (the future must not finish first).
pub async fn drive_until<F: Future>(
    mut future: Pin<&mut F>,
    what: &str,
    condition: impl Fn() -> bool,
) {
    for _ in 0..1_000 {
        if condition() {
            return;
        }
        if futures_util::poll!(future.as_mut()).is_ready() {
            panic!("finished before {what}");
        }
    }
    panic!("never reached: {what}");
}

/// The STOPPED event of a migration task whose only container exited with `exit_code`
/// after running from `started_at` to `stopped_at` (epoch seconds).
pub fn migration_exited(
    task: &FakeTask,
    exit_code: i32,
    started_at: u64,
    stopped_at: u64,
) -> TaskStopped {
    TaskStopped {
        task_arn: task.arn.clone(),
        started_by: Some(task.started_by.clone()),
        task: StoppedTask {
            stop_code: Some("EssentialContainerExited".into()),
            stopped_reason: Some("Essential container in task exited".into()),
            containers: vec![StoppedContainer {
                name: MIGRATION_CONTAINER.into(),
                exit_code: Some(exit_code),
                reason: None,
            }],
            started_at: Some(started_at),
            stopped_at: Some(stopped_at),
        },
    }
}

/// The STOPPED event of a migration task that never started.
pub fn migration_failed_to_start(task: &FakeTask, stopped_at: u64) -> TaskStopped {
    TaskStopped {
        task_arn: task.arn.clone(),
        started_by: Some(task.started_by.clone()),
        task: StoppedTask {
            stop_code: Some("TaskFailedToStart".into()),
            stopped_reason: Some(
                "CannotPullContainerError: pull image manifest has been retried 1 time(s)".into(),
            ),
            containers: vec![StoppedContainer {
                name: MIGRATION_CONTAINER.into(),
                exit_code: None,
                reason: Some("CannotPullContainerError".into()),
            }],
            started_at: None,
            stopped_at: Some(stopped_at),
        },
    }
}

/// Every shop service's latest deployment completes, its event handled at
/// `now`; the decision on the last one.
pub async fn every_shop_service_completes(
    engine: &FakeEngine,
    fake: &FakeAws,
    now: u64,
) -> Decision {
    let mut last = None;
    for service in SHOP_SERVICES {
        let id = fake.last_deployment(SHOP_CLUSTER, service);
        fake.deployment_ends_unseen(SHOP_CLUSTER, service, RolloutState::Completed);
        let change = deployment(SHOP_CLUSTER, service, &id, DeploymentOutcome::Completed);
        last = Some(engine.on_deployment(&change, now).await.expect("handled"));
    }
    last.expect("three services")
}

pub fn deployment(
    cluster: &str,
    service: &str,
    deployment_id: &str,
    outcome: DeploymentOutcome,
) -> DeploymentChange {
    DeploymentChange {
        cluster: cluster.into(),
        service: service.into(),
        deployment_id: deployment_id.into(),
        outcome,
        reason: match outcome {
            DeploymentOutcome::Completed => None,
            DeploymentOutcome::Failed => {
                Some("ECS deployment circuit breaker: tasks failed to start.".into())
            }
        },
    }
}

// ---------------------------------------------------------------------------
// Futures the fake awaits

/// Pending once (waking itself), so concurrent invocations interleave at every call.
/// How many times the fake's `claim_tag_writes` looks before the lease is out.
const AWAIT_POLLS: usize = 200;

struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Pending while the operation is paused for this call (the `number`-th).
struct Held<'a> {
    fake: &'a FakeAws,
    operation: &'static str,
    number: usize,
    /// Counted in `State::held`.
    waiting: bool,
}

impl Future for Held<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let operation = self.operation;
        let fake = self.fake;
        let mut state = fake.state();
        let held = state.paused.get(operation).is_some_and(|(after, until)| {
            self.number > *after && until.is_none_or(|until| self.number <= until)
        });
        if held {
            state.wakers.push(cx.waker().clone());
            if !self.waiting {
                *state.held.entry(operation).or_default() += 1;
                drop(state);
                self.waiting = true;
            }
            Poll::Pending
        } else {
            if self.waiting {
                *state.held.entry(operation).or_default() -= 1;
                drop(state);
                self.waiting = false;
            }
            Poll::Ready(())
        }
    }
}

// ---------------------------------------------------------------------------
// The ledger (DynamoDB semantics, crates/aws/src/ledger.rs)

/// Applies a `ReleaseUpdate` as the DynamoDB `SET`/`ADD` expression does. The
/// update is destructured field by field so that a new field fails to compile here
/// instead of being silently dropped by the fake.
fn apply_update(record: &mut ReleaseRecord, update: ReleaseUpdate) {
    let ReleaseUpdate {
        previous_tag,
        task_definitions,
        migration_task_definition,
        migration_essential_containers,
        migration_task,
        migration_deadline,
        verify_task_definition,
        verify_essential_containers,
        verify_task,
        verify_deadline,
        rollout_started_at,
        bake_ends_at,
        parameter_version,
        deployments,
        completed_service,
        reason,
        if_deployment: _,
        interrupted,
        resume,
        approval_expires_at,
    } = update;
    if let Some(v) = approval_expires_at {
        record.approval_expires_at = Some(v);
    }
    if resume {
        record.interrupted = None;
    }
    if let Some(v) = interrupted {
        record.interrupted = Some(v);
    }
    if let Some(v) = previous_tag {
        record.previous_tag = Some(v);
    }
    if let Some(v) = task_definitions {
        record.task_definitions = v;
    }
    if let Some(v) = migration_task_definition {
        record.migration_task_definition = Some(v);
    }
    if let Some(v) = migration_essential_containers {
        record.migration_essential_containers = v;
    }
    if let Some(v) = migration_task {
        record.migration_task = Some(v);
    }
    if let Some(v) = migration_deadline {
        record.migration_deadline = Some(v);
    }
    if let Some(v) = verify_task_definition {
        record.verify_task_definition = Some(v);
    }
    if let Some(v) = verify_essential_containers {
        record.verify_essential_containers = v;
    }
    if let Some(v) = verify_task {
        record.verify_task = Some(v);
    }
    if let Some(v) = verify_deadline {
        record.verify_deadline = Some(v);
    }
    if let Some(v) = rollout_started_at {
        record.rollout_started_at = Some(v);
    }
    if let Some(v) = bake_ends_at {
        record.bake_ends_at = Some(v);
    }
    if let Some(v) = parameter_version {
        record.parameter_version = Some(v);
    }
    if let Some(v) = deployments {
        record.deployments = v;
    }
    if let Some(v) = completed_service {
        record.completed_services.insert(v);
    }
    if let Some(v) = reason {
        record.reason = Some(v);
    }
}

/// The head as the adapter decodes it.
fn decoded(head: Option<&LaneHead>) -> Option<LaneHead> {
    head.cloned()
}

/// The condition of a guarded release write: the state `guard` admits, the
/// recorded deployment `if_deployment` names, the mark `resume` takes.
fn conditions_hold(record: &ReleaseRecord, guard: Guard, update: &ReleaseUpdate) -> bool {
    guard.admits(record.state)
        && update
            .if_deployment
            .as_ref()
            .is_none_or(|(s, d)| record.deployments.get(s) == Some(d))
        && (!update.resume || record.interrupted.is_some())
}

/// Applies `guard` to a release record: its condition, then its state.
fn guarded(record: &mut ReleaseRecord, guard: Guard, update: ReleaseUpdate) -> bool {
    if !conditions_hold(record, guard, &update) {
        return false;
    }
    if let Some(to) = guard.to {
        record.state = to;
        // A transition means the interrupted step got done: the mark goes with it.
        if update.interrupted.is_none() {
            record.interrupted = None;
        }
    }
    apply_update(record, update);
    true
}

impl Ledger for FakeAws {
    async fn read(
        &self,
        lane: &Lane,
        release: &ReleaseId,
    ) -> PortResult<(Option<LaneHead>, Option<ReleaseRecord>)> {
        self.enter("ledger:Read", "").await?;
        let state = self.state();
        Ok((
            decoded(state.heads.get(lane)),
            state.releases.get(release).cloned(),
        ))
    }

    async fn head(&self, lane: &Lane) -> PortResult<Option<LaneHead>> {
        self.enter("ledger:Head", "").await?;
        Ok(decoded(self.state().heads.get(lane)))
    }

    async fn release(&self, id: &ReleaseId) -> PortResult<Option<ReleaseRecord>> {
        self.enter("ledger:Release", "").await?;
        Ok(self.state().releases.get(id).cloned())
    }

    async fn claim(&self, claim: Claim<'_>) -> PortResult<ClaimOutcome> {
        self.enter("ledger:Claim", "").await?;
        let Claim {
            release,
            expected_head_version,
            supersedes,
            latest_pushed_at,
            unfreeze,
            retries,
        } = claim;
        let mut state = self.state();
        // Item 1: put the release, if it does not exist.
        if state.releases.contains_key(&release.id) {
            return Ok(ClaimOutcome::AlreadyClaimed);
        }
        // Item 2: the head, if its version is the one read (or it does not exist).
        let expected = expected_head_version.unwrap_or(0);
        if let Some(head) = state.heads.get(&release.lane) {
            if head.version != expected {
                return Ok(ClaimOutcome::HeadMoved);
            }
        }
        // Item 3: the superseded release, if it is still in flight.
        if let Some(old) = supersedes {
            match state.releases.get(old) {
                Some(r) if Transition::Supersede.guard().admits(r.state) => {}
                _ => return Ok(ClaimOutcome::HeadMoved),
            }
        }
        // Item 4: the retried release, if it is in the state read and not retried yet.
        if let Some(retried) = retries {
            match state.releases.get(&retried.id) {
                Some(r) if r.state == retried.state && r.retried_as.is_none() => {}
                _ => return Ok(ClaimOutcome::HeadMoved),
            }
        }
        state.releases.insert(release.id.clone(), release.clone());
        let head = state.heads.entry(release.lane.clone()).or_default();
        head.version = expected + 1;
        head.in_flight = Some(ReleasePointer {
            id: release.id.clone(),
            tag: release.tag.clone(),
            digest: release.digest.clone(),
        });
        if let Some(pushed) = latest_pushed_at {
            head.latest_pushed_at = Some(pushed);
        }
        if unfreeze {
            head.frozen = false;
            head.held = None;
        }
        if let Some(retried) = retries {
            if retried.unmark_bad {
                head.bad_releases.remove(&retried.id);
            }
        }
        if let Some(old) = supersedes {
            if let Some(r) = state.releases.get_mut(old) {
                r.state = ReleaseState::Superseded;
                r.reason = Some(superseded_reason(&release.id));
            }
        }
        if let Some(retried) = retries {
            if let Some(r) = state.releases.get_mut(&retried.id) {
                r.retried_as = Some(release.id.clone());
            }
        }
        state.claims_applied += 1;
        Ok(ClaimOutcome::Claimed)
    }

    async fn update(
        &self,
        id: &ReleaseId,
        guard: Guard,
        update: ReleaseUpdate,
    ) -> PortResult<Option<ReleaseRecord>> {
        self.enter("ledger:Update", "").await?;
        let mut state = self.state();
        match state.releases.get_mut(id) {
            Some(record) => Ok(guarded(record, guard, update).then(|| record.clone())),
            None => Ok(None),
        }
    }

    async fn settle(
        &self,
        release: &ReleaseRecord,
        guard: Guard,
        update: ReleaseUpdate,
        head: HeadChange,
    ) -> PortResult<bool> {
        self.enter("ledger:Settle", "").await?;
        let mut state = self.state();
        // One transaction: the release's whole condition (state, deployment,
        // resumption) and the head's, or nothing is written.
        let release_ok = state
            .releases
            .get(&release.id)
            .is_some_and(|r| conditions_hold(r, guard, &update));
        let head_ok = state
            .heads
            .get(&release.lane)
            .and_then(|h| h.in_flight.as_ref())
            .is_some_and(|p| p.id == release.id);
        if !(release_ok && head_ok) {
            return Ok(false);
        }
        if let Some(record) = state.releases.get_mut(&release.id) {
            guarded(record, guard, update);
        }
        if let Some(lane_head) = state.heads.get_mut(&release.lane) {
            lane_head.version += 1;
            lane_head.in_flight = None;
            match head {
                HeadChange::KnownGood { pointer, history } => {
                    lane_head.known_good = Some(pointer);
                    lane_head.history = history;
                }
                HeadChange::ClearInFlight => {
                    lane_head.last_failed = Some(ReleasePointer {
                        id: release.id.clone(),
                        tag: release.tag.clone(),
                        digest: release.digest.clone(),
                    });
                }
            }
        }
        Ok(true)
    }

    async fn claim_tag_writes(&self, lane: &Lane) -> PortResult<Option<TagClaim>> {
        self.enter("ledger:ClaimTagWrites", "").await?;
        self.state().awaiting_claim += 1;
        // The lease, in polls: a holder a test holds lets go while this one
        // yields; one that never lets go makes it run out.
        let mut taken = None;
        for _ in 0..AWAIT_POLLS {
            taken = {
                let mut guard = self.state();
                let state = &mut *guard;
                let slot = state.tag_claims.entry(lane.clone()).or_default();
                let free = slot
                    .holder
                    .as_ref()
                    .is_none_or(|(_, at)| state.clock >= at + TAG_CLAIM_LEASE);
                free.then(|| {
                    state.tag_claims_taken += 1;
                    let token = format!("claim-{}", state.tag_claims_taken);
                    slot.holder = Some((token.clone(), state.clock));
                    TagClaim {
                        token,
                        last_written: slot.last_written,
                    }
                })
            };
            if taken.is_some() {
                break;
            }
            YieldOnce(false).await;
        }
        self.state().awaiting_claim -= 1;
        Ok(taken)
    }

    async fn release_tag_claim(
        &self,
        lane: &Lane,
        claim: &TagClaim,
        written: Option<i64>,
    ) -> PortResult<()> {
        self.enter("ledger:ReleaseTagClaim", "").await?;
        let mut state = self.state();
        let slot = state.tag_claims.entry(lane.clone()).or_default();
        if slot
            .holder
            .as_ref()
            .is_some_and(|(token, _)| *token == claim.token)
        {
            slot.holder = None;
            if written.is_some() {
                slot.last_written = written;
            }
        }
        Ok(())
    }
}

impl RollbackLedger for FakeAws {
    async fn roll_back(&self, write: RollbackWrite<'_>) -> PortResult<bool> {
        self.enter("ledger:RollBack", "").await?;
        let RollbackWrite {
            lane,
            expected_head_version,
            target,
            history,
            rolling_back,
            guard,
        } = write;
        let left = &rolling_back.release.id;
        let mut state = self.state();
        let release_ok = state
            .releases
            .get(left)
            .is_some_and(|r| guard.admits(r.state));
        let head_ok = state
            .heads
            .get(lane)
            .is_some_and(|h| h.version == expected_head_version && h.rolling_back.is_none());
        if !(release_ok && head_ok) {
            return Ok(false);
        }
        if let Some(record) = state.releases.get_mut(left) {
            record.rolled_back_from = Some(record.state);
            record.state = guard.to.unwrap_or(record.state);
            record.reason = Some(rolling_back.reason.clone());
            // The rollback takes the release over: an interruption recorded by
            // its own invocations no longer resumes it (`REMOVE interrupted`).
            record.interrupted = None;
        }
        if let Some(head) = state.heads.get_mut(lane) {
            head.version = expected_head_version + 1;
            head.frozen = true;
            head.history = history;
            head.known_good = Some(ReleasePointer {
                id: target.id.clone(),
                tag: target.tag.clone(),
                digest: target.digest.clone(),
            });
            head.rolling_back = Some(rolling_back.clone());
            head.in_flight = None;
            head.bad_releases.insert(left.clone());
        }
        Ok(true)
    }

    async fn finish_rollback(
        &self,
        lane: &Lane,
        rollback: &RollbackInProgress,
        guard: Guard,
    ) -> PortResult<bool> {
        self.enter("ledger:FinishRollback", "").await?;
        let mut state = self.state();
        let id = &rollback.release.id;
        let head_ok = state
            .heads
            .get(lane)
            .and_then(|h| h.rolling_back.as_ref())
            .is_some_and(|r| &r.release.id == id);
        let release_ok = state
            .releases
            .get(id)
            .is_some_and(|r| guard.admits(r.state));
        if !(head_ok && release_ok) {
            return Ok(false);
        }
        if let Some(record) = state.releases.get_mut(id) {
            record.state = guard.to.unwrap_or(record.state);
        }
        if let Some(head) = state.heads.get_mut(lane) {
            head.version += 1;
            head.rolling_back = None;
        }
        Ok(true)
    }

    async fn mark_rollback(
        &self,
        lane: &Lane,
        release: &ReleaseId,
        interrupted: bool,
    ) -> PortResult<bool> {
        self.enter("ledger:MarkRollback", "").await?;
        let mut state = self.state();
        let Some(head) = state.heads.get_mut(lane) else {
            return Ok(false);
        };
        match head.rolling_back.as_mut() {
            Some(r) if &r.release.id == release && (interrupted || r.interrupted) => {
                r.interrupted = interrupted;
                head.version += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn hold(&self, lane: &Lane, expected: u64, push: &HeldPush) -> PortResult<bool> {
        self.enter("ledger:Hold", "").await?;
        let mut state = self.state();
        match state.heads.get_mut(lane) {
            Some(head) if head.version == expected => {
                head.version = expected + 1;
                head.held = Some(push.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn unfreeze(&self, lane: &Lane, expected: u64) -> PortResult<bool> {
        self.enter("ledger:Unfreeze", "").await?;
        let mut state = self.state();
        match state.heads.get_mut(lane) {
            Some(head) if head.version == expected => {
                head.version = expected + 1;
                head.frozen = false;
                head.held = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

// ---------------------------------------------------------------------------
// ECS

impl Ecs for FakeAws {
    type TaskDefinition = FakeTaskDefinition;
    type Service = FakeService;

    async fn describe_services(
        &self,
        cluster: &str,
        services: &[String],
    ) -> PortResult<ServiceLookup<FakeService>> {
        self.enter("ecs:DescribeServices", cluster).await?;
        let state = self.state();
        let mut lookup = ServiceLookup {
            found: Vec::new(),
            missing: Vec::new(),
        };
        for name in services {
            match state.services.get(&(cluster.to_owned(), name.clone())) {
                Some(service) if service.status == "ACTIVE" => lookup.found.push(service.clone()),
                _ => lookup.missing.push(name.clone()),
            }
        }
        Ok(lookup)
    }

    async fn describe_task_definition(&self, reference: &str) -> PortResult<FakeTaskDefinition> {
        self.enter("ecs:DescribeTaskDefinition", reference).await?;
        let state = self.state();
        let found = if reference.starts_with("arn:") {
            state
                .task_definitions
                .values()
                .flatten()
                .find(|td| td.arn == reference)
        } else {
            // A family alone is its latest ACTIVE revision, as ECS resolves it.
            state
                .task_definitions
                .get(reference)
                .and_then(|revisions| revisions.iter().rev().find(|td| td.active))
        };
        found.cloned().ok_or_else(|| {
            PortError::new(
                "ecs:DescribeTaskDefinition",
                "Unable to describe task definition.",
            )
            .with_code("ClientException")
        })
    }

    async fn register_copy(
        &self,
        base: &FakeTaskDefinition,
        changes: &[ImageChange],
        tags: &ReleaseTags,
    ) -> PortResult<String> {
        let tags = &tags.tags;
        self.enter("ecs:RegisterTaskDefinition", &base.family)
            .await?;
        let mut containers = base.containers.clone();
        for container in &mut containers {
            if let Some(change) = changes.iter().find(|c| c.container == container.name) {
                container.image = change.to.clone();
            }
        }
        let mut state = self.state();
        let revisions = state
            .task_definitions
            .entry(base.family.clone())
            .or_default();
        let revision = revisions.len() + 1;
        let arn = task_definition_arn(&base.family, revision);
        revisions.push(FakeTaskDefinition {
            arn: arn.clone(),
            family: base.family.clone(),
            revision,
            containers,
            tags: tags.to_vec(),
            active: true,
        });
        state.registrations.push(Registration {
            arn: arn.clone(),
            family: base.family.clone(),
            base: base.arn.clone(),
            changes: changes.to_vec(),
            tags: tags.to_vec(),
        });
        Ok(arn)
    }

    async fn run_migration(
        &self,
        cluster: &str,
        task_definition: &str,
        like: &FakeService,
        started_by: &str,
        tags: &[(String, String)],
    ) -> PortResult<String> {
        self.enter("ecs:RunTask", cluster).await?;
        let id = self.next_id();
        let mut state = self.state();
        let Some(revision) = state
            .task_definitions
            .values()
            .flatten()
            .find(|td| td.arn == task_definition)
        else {
            return Err(PortError::new(
                "ecs:RunTask",
                format!("task definition {task_definition} does not exist"),
            )
            .with_code("ClientException"));
        };
        if !revision.active {
            return Err(PortError::new("ecs:RunTask", "TaskDefinition is inactive")
                .with_code("InvalidParameterException"));
        }
        let arn = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cluster}/{id:032x}");
        state.tasks.push(FakeTask {
            arn: arn.clone(),
            cluster: cluster.into(),
            task_definition: task_definition.into(),
            started_by: started_by.into(),
            like: like.name.clone(),
            tags: tags.to_vec(),
        });
        Ok(arn)
    }

    async fn update_service(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> PortResult<String> {
        self.enter("ecs:UpdateService", service).await?;
        self.apply_service_update(cluster, service, task_definition, true)
    }

    async fn restore_service(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> PortResult<String> {
        self.enter("ecs:RestoreService", service).await?;
        self.apply_service_update(cluster, service, task_definition, false)
    }

    async fn stop_task(&self, cluster: &str, task: &str, reason: &str) -> PortResult<()> {
        self.enter("ecs:StopTask", task).await?;
        let mut state = self.state();
        state.stopped.push(StoppedByFerry {
            cluster: cluster.into(),
            task: task.into(),
            reason: reason.into(),
        });
        // As ECS: the task stops (exit 137 after SIGTERM/SIGKILL), once.
        state
            .task_ends
            .entry(task.to_owned())
            .or_insert_with(|| StoppedTask {
                stop_code: Some("UserInitiated".into()),
                stopped_reason: Some(reason.to_owned()),
                containers: vec![StoppedContainer {
                    name: MIGRATION_CONTAINER.into(),
                    exit_code: Some(137),
                    reason: None,
                }],
                started_at: None,
                stopped_at: None,
            });
        Ok(())
    }

    async fn describe_tasks(&self, cluster: &str, tasks: &[String]) -> PortResult<Vec<TaskStatus>> {
        self.enter("ecs:DescribeTasks", cluster).await?;
        let state = self.state();
        Ok(tasks
            .iter()
            .map(|arn| {
                let known = state.tasks.iter().find(|t| &t.arn == arn);
                let phase = match (known, state.task_ends.get(arn)) {
                    _ if state.forgotten_tasks.contains(arn) => TaskPhase::Missing,
                    (None, _) => TaskPhase::Missing,
                    (Some(_), Some(end)) => TaskPhase::Stopped(end.clone()),
                    (Some(_), None) => TaskPhase::Running,
                };
                TaskStatus {
                    arn: arn.clone(),
                    started_by: known.map(|t| t.started_by.clone()),
                    phase,
                }
            })
            .collect())
    }

    async fn list_revisions(&self, family: &str) -> PortResult<Vec<String>> {
        self.enter("ecs:ListTaskDefinitions", family).await?;
        Ok(self.active_revisions(family))
    }

    async fn deregister(&self, task_definition: &str) -> PortResult<()> {
        self.enter("ecs:DeregisterTaskDefinition", task_definition)
            .await?;
        let mut state = self.state();
        match state
            .task_definitions
            .values_mut()
            .flatten()
            .find(|td| td.arn == task_definition)
        {
            Some(td) => {
                td.active = false;
                Ok(())
            }
            None => Err(PortError::new(
                "ecs:DeregisterTaskDefinition",
                "The specified task definition does not exist.",
            )
            .with_code("ClientException")),
        }
    }
}

// ---------------------------------------------------------------------------
// SSM, secrets, ECR, events

impl Parameters for FakeAws {
    async fn get(&self, name: &str) -> PortResult<Option<String>> {
        self.enter("ssm:GetParameter", name).await?;
        Ok(self.parameter(name))
    }

    async fn current(&self, name: &str) -> PortResult<Option<(String, i64)>> {
        self.enter("ssm:GetParameter", name).await?;
        let state = self.state();
        Ok(state
            .parameters
            .get(name)
            .and_then(|v| v.last())
            .map(|v| (v.value.clone(), v.version)))
    }

    async fn put(&self, name: &str, value: &str) -> PortResult<i64> {
        self.enter("ssm:PutParameter", name).await?;
        let mut state = self.state();
        let versions = state.parameters.entry(name.into()).or_default();
        let version = versions.len() as i64 + 1;
        versions.push(ParameterVersion {
            version,
            value: value.into(),
            labels: BTreeSet::new(),
        });
        Ok(version)
    }

    async fn label(&self, name: &str, version: i64, label: &str) -> PortResult<()> {
        self.enter("ssm:LabelParameterVersion", name).await?;
        let mut state = self.state();
        let Some(versions) = state.parameters.get_mut(name) else {
            return Err(
                PortError::new("ssm:LabelParameterVersion", "parameter not found")
                    .with_code("ParameterNotFound"),
            );
        };
        if !versions.iter().any(|v| v.version == version) {
            return Err(PortError::new(
                "ssm:LabelParameterVersion",
                format!("version {version} of {name} does not exist"),
            )
            .with_code("ParameterVersionNotFound"));
        }
        // A label names one version of a parameter: labelling another moves it.
        for v in versions.iter_mut() {
            if v.version == version {
                v.labels.insert(label.into());
            } else {
                v.labels.remove(label);
            }
        }
        Ok(())
    }
}

impl SecretsCheck for FakeAws {
    async fn missing(&self, references: &[String]) -> PortResult<Vec<String>> {
        self.enter("secrets:DescribeSecret", "").await?;
        let state = self.state();
        Ok(references
            .iter()
            .filter(|r| !state.secrets.contains(*r))
            .cloned()
            .collect())
    }
}

impl Registry for FakeAws {
    async fn resolve(
        &self,
        repository: &str,
        selector: &ImageSelector,
    ) -> PortResult<Option<ResolvedImage>> {
        self.enter("ecr:DescribeImages", repository).await?;
        let state = self.state();
        let found = state.images.get(repository).and_then(|images| {
            images.iter().find(|i| match selector {
                ImageSelector::Tag(tag) => i.tags.contains(tag),
                ImageSelector::Digest(digest) => &i.digest == digest,
            })
        });
        Ok(found.map(resolved))
    }

    async fn images(&self, repository: &str) -> PortResult<Vec<ResolvedImage>> {
        self.enter("ecr:DescribeImages", repository).await?;
        let state = self.state();
        Ok(state
            .images
            .get(repository)
            .map(|images| {
                images
                    .iter()
                    .filter(|i| !i.tags.is_empty())
                    .map(resolved)
                    .collect()
            })
            .unwrap_or_default())
    }
}

fn resolved(image: &FakeImage) -> ResolvedImage {
    ResolvedImage {
        registry_id: ACCOUNT.into(),
        digest: image.digest.clone(),
        tags: image.tags.clone(),
        pushed_at: PushTime::parse_rfc3339(&image.pushed_at).ok(),
    }
}

impl FakeAws {
    /// A guarding alarm (period 60 s × `evaluations`) in `state` since `since`.
    pub fn set_alarm(&self, name: &str, state: AlarmState, since: u64, evaluations: u64) {
        self.state().alarms.insert(
            name.to_owned(),
            AlarmStatus {
                name: name.to_owned(),
                state,
                state_updated_at: since,
                reason: format!("set to {} by the test", state.as_str()),
                period: Some(60),
                evaluation_periods: Some(evaluations),
            },
        );
    }

    /// The bake timer set for `release`, if any (epoch seconds).
    pub fn timer(&self, release: &ReleaseId) -> Option<u64> {
        self.state().timers.get(release).copied()
    }
}

impl Alarms for FakeAws {
    async fn describe(&self, names: &[String]) -> PortResult<Vec<AlarmStatus>> {
        self.enter("cloudwatch:DescribeAlarms", "").await?;
        let state = self.state();
        Ok(names
            .iter()
            .filter_map(|n| state.alarms.get(n).cloned())
            .collect())
    }
}

impl Timers for FakeAws {
    async fn end_bake_at(&self, release: &ReleaseId, at: u64) -> PortResult<()> {
        self.enter("scheduler:CreateSchedule", "").await?;
        // As Scheduler: a schedule of that name exists already → no new one.
        self.state().timers.entry(release.clone()).or_insert(at);
        Ok(())
    }
}

impl Metrics for FakeAws {
    fn now(&self) -> u64 {
        self.state().metrics_clock.unwrap_or(T0)
    }

    fn record(&self, measurements: &[Measurement]) {
        self.state().metrics.extend_from_slice(measurements);
    }
}

impl EventSink for FakeAws {
    async fn emit(&self, events: &[ReleaseEvent]) -> PortResult<()> {
        self.enter("events:PutEvents", "").await?;
        self.state().events.extend_from_slice(events);
        Ok(())
    }

    async fn notify(&self, notices: &[Notice]) -> PortResult<()> {
        self.enter("events:PutEvents", "").await?;
        self.state().notices.extend_from_slice(notices);
        Ok(())
    }
}
