//! The small traits the engine drives. `ferry-aws` implements them over the AWS
//! SDK; tests implement them in memory. Every method is one AWS round trip (or a
//! fan-out of independent calls), so the engine's structure is its latency budget.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use crate::image::{ContainerImage, ImageChange, ReleaseTags};
use crate::names::PushTime;
use crate::release::{Guard, ReleaseId, ReleaseState, Transition};

/// One failed call to AWS, with what the caller needs to decide what to do next.
/// The SDK error is kept as the source, never flattened to a string.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
pub struct PortError {
    /// The API operation, e.g. `ecs:RegisterTaskDefinition`.
    pub operation: &'static str,
    /// The service's error code, e.g. `ThrottlingException`, when there is one.
    pub code: Option<String>,
    /// Whether running the same invocation again can succeed (throttling, 5xx, timeouts).
    pub retryable: bool,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl PortError {
    pub fn new(operation: &'static str, message: impl Into<String>) -> Self {
        PortError {
            operation,
            code: None,
            retryable: false,
            message: message.into(),
            source: None,
        }
    }

    pub fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
}

pub type PortResult<T> = Result<T, PortError>;

/// Releases are serialised per lane: one repository's services in one environment.
/// With one image per environment (the common shape) a lane is the environment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lane {
    pub app: String,
    pub env: String,
    pub repository: String,
}

impl std::fmt::Display for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} ({})", self.app, self.env, self.repository)
    }
}

/// A release ferry refers to from the lane head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasePointer {
    pub id: ReleaseId,
    pub tag: String,
    pub digest: String,
}

/// A rollback recorded on the lane head before its services are touched, so
/// that a retry or a duplicate finishes it (same target) instead of choosing again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackInProgress {
    /// The release rolled back.
    pub release: ReleasePointer,
    /// The known-good release the lane goes back to.
    pub target: ReleaseId,
    pub reason: String,
    /// Its invocation failed part-way (a retryable failure): the next rollback
    /// delivery finishes it. Unmarked, another invocation is still at it.
    pub interrupted: bool,
}

/// The lane's head item: what is in flight, what is known-good, and the version
/// every claim is conditional on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaneHead {
    pub version: u64,
    pub in_flight: Option<ReleasePointer>,
    pub known_good: Option<ReleasePointer>,
    /// The newest push time ferry acted on in this lane; an older push is stale.
    pub latest_pushed_at: Option<PushTime>,
    pub frozen: bool,
    /// Releases that succeeded, newest first: the only rollback targets. Kept on
    /// the head so a rollback needs one read before it can act.
    pub history: Vec<KnownGoodRelease>,
    /// Releases that were rolled back. A release id derives from the image
    /// digest, so this marks the digest bad in this environment: it is never
    /// deployed again, by a re-delivered push or as a rollback target.
    pub bad_releases: BTreeSet<ReleaseId>,
    /// A push that arrived while the lane was frozen, deployed on unfreeze.
    pub held: Option<HeldPush>,
    /// A rollback whose services are not all back yet.
    pub rolling_back: Option<RollbackInProgress>,
    /// The lane's latest release that FAILED: what an operator's retry retries
    /// when it names no digest.
    pub last_failed: Option<ReleasePointer>,
}

/// A release that completed on every service, with what a rollback needs to
/// return to it without registering anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownGoodRelease {
    pub id: ReleaseId,
    pub tag: String,
    pub digest: String,
    /// service → task-definition ARN the release runs
    pub task_definitions: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldPush {
    pub tag: String,
    pub digest: String,
    pub pushed_at: Option<PushTime>,
}

/// Everything the ledger records about one release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRecord {
    pub id: ReleaseId,
    pub lane: Lane,
    pub tag: String,
    pub digest: String,
    pub state: ReleaseState,
    /// The image tag to restore in the SSM parameter if this release fails.
    pub previous_tag: Option<String>,
    pub pushed_at: Option<PushTime>,
    pub cluster: String,
    pub services: Vec<String>,
    /// service → task-definition ARN registered for this release
    pub task_definitions: BTreeMap<String, String>,
    pub migration_task_definition: Option<String>,
    pub migration_essential_containers: Vec<String>,
    pub migration_task: Option<String>,
    /// epoch seconds by which the migration must have stopped
    pub migration_deadline: Option<u64>,
    /// The smoke-test revision (pinned to the digest when it runs the repository).
    pub verify_task_definition: Option<String>,
    pub verify_essential_containers: Vec<String>,
    pub verify_task: Option<String>,
    /// epoch seconds by which the smoke test must have stopped
    pub verify_deadline: Option<u64>,
    /// epoch seconds: when the release entered DEPLOYING, before its first
    /// UpdateService was sent. An alarm whose state changed after this judges
    /// the release; a deployment ECS began after this is the rollout's or one
    /// that overtook it.
    pub rollout_started_at: Option<u64>,
    /// epoch seconds: when the bake ends.
    pub bake_ends_at: Option<u64>,
    pub parameter_version: Option<i64>,
    /// service → ECS deployment id started by this release
    pub deployments: BTreeMap<String, String>,
    pub completed_services: BTreeSet<String>,
    pub reason: Option<String>,
    /// A step failed in a way a retry can fix: the redelivered event resumes the
    /// release from its recorded state (the first redelivery to clear this wins).
    pub interrupted: Option<String>,
    /// The state a rollback took the release from.
    pub rolled_back_from: Option<ReleaseState>,
    /// The next generation an operator's retry deployed this digest as: set by
    /// that retry's claim, once, so a release is retried at most once and the
    /// latest generation is found by following the links.
    pub retried_as: Option<ReleaseId>,
    /// epoch seconds: when the approval request of a release AWAITING_APPROVAL
    /// expires (approve refuses it from then on; the reconcile pass rejects it).
    pub approval_expires_at: Option<u64>,
    pub created_at: u64,
    pub updated_at: u64,
}

impl ReleaseRecord {
    /// A release as its claim records it: nothing registered, run or deployed yet.
    pub fn claimed(
        id: ReleaseId,
        lane: Lane,
        tag: String,
        digest: String,
        cluster: String,
        services: Vec<String>,
        now: u64,
    ) -> ReleaseRecord {
        ReleaseRecord {
            id,
            lane,
            tag,
            digest,
            state: ReleaseState::Claimed,
            previous_tag: None,
            pushed_at: None,
            cluster,
            services,
            task_definitions: BTreeMap::new(),
            migration_task_definition: None,
            migration_essential_containers: Vec::new(),
            migration_task: None,
            migration_deadline: None,
            verify_task_definition: None,
            verify_essential_containers: Vec::new(),
            verify_task: None,
            verify_deadline: None,
            rollout_started_at: None,
            bake_ends_at: None,
            parameter_version: None,
            deployments: BTreeMap::new(),
            completed_services: BTreeSet::new(),
            reason: None,
            interrupted: None,
            rolled_back_from: None,
            retried_as: None,
            approval_expires_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// A `shop/prod` release of `shop:1.0.0` for the decisions' unit tests.
    #[cfg(test)]
    pub(crate) fn example(state: ReleaseState) -> ReleaseRecord {
        let lane = Lane {
            app: "shop".into(),
            env: "prod".into(),
            repository: "shop".into(),
        };
        ReleaseRecord {
            state,
            ..ReleaseRecord::claimed(
                ReleaseId::derive("shop", "prod", "sha256:ab"),
                lane,
                "1.0.0".into(),
                "sha256:ab".into(),
                "shop-prod".into(),
                vec!["api".into()],
                1,
            )
        }
    }
}

/// Changes to a release record made together with its [`Guard`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseUpdate {
    pub previous_tag: Option<String>,
    pub task_definitions: Option<BTreeMap<String, String>>,
    pub migration_task_definition: Option<String>,
    pub migration_essential_containers: Option<Vec<String>>,
    pub migration_task: Option<String>,
    pub migration_deadline: Option<u64>,
    pub verify_task_definition: Option<String>,
    pub verify_essential_containers: Option<Vec<String>>,
    pub verify_task: Option<String>,
    pub verify_deadline: Option<u64>,
    pub rollout_started_at: Option<u64>,
    pub bake_ends_at: Option<u64>,
    pub parameter_version: Option<i64>,
    pub deployments: Option<BTreeMap<String, String>>,
    pub completed_service: Option<String>,
    pub reason: Option<String>,
    /// A further condition: the release recorded this deployment id for this service.
    pub if_deployment: Option<(String, String)>,
    /// Marks the release interrupted by a retryable failure. (A write that
    /// moves the release to another state clears the mark.)
    pub interrupted: Option<String>,
    /// A further condition: the release is interrupted; the write clears the mark
    /// (the one redelivery that wins it resumes the release).
    pub resume: bool,
    /// epoch seconds: when the approval request expires.
    pub approval_expires_at: Option<u64>,
}

impl ReleaseUpdate {
    /// The update of the write that makes `transition` at `now`. Entering
    /// DEPLOYING marks when the rollout began, before any UpdateService is
    /// sent: a rollout resumed after a crash tells the deployments ECS began
    /// since (its own, or one that overtook it) from those it found there
    /// (`decide::deployment::resumed_rollout`).
    pub fn entering(mut self, transition: Transition, now: u64) -> Self {
        if transition.to() == ReleaseState::Deploying {
            self.rollout_started_at = Some(now);
        }
        self
    }
}

/// What a settling transition does to the lane head, in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadChange {
    /// The release left flight without becoming known-good (failed): the head
    /// records it as the lane's last failed release.
    ClearInFlight,
    /// The release succeeded: it is the lane's known-good release now, and
    /// `history` the lane's known-good list (newest first, already trimmed).
    KnownGood {
        pointer: ReleasePointer,
        history: Vec<KnownGoodRelease>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    Claimed,
    /// A release with this id exists already: a duplicate delivery.
    AlreadyClaimed,
    /// The lane head moved since it was read: another release claimed concurrently.
    HeadMoved,
}

/// A new claim, applied atomically: the release record is created, the head
/// points at it, and the release it supersedes (if any) is marked superseded.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    pub release: &'a ReleaseRecord,
    pub expected_head_version: Option<u64>,
    pub supersedes: Option<&'a ReleaseId>,
    /// The newest push time the lane has acted on, after this claim.
    pub latest_pushed_at: Option<PushTime>,
    /// The claim lifts the lane's freeze (a new digest, when the config says so).
    pub unfreeze: bool,
    /// An operator's retry: the release it deploys again, linked to the new one
    /// in the same transaction.
    pub retries: Option<&'a Retried>,
}

/// The cause a claim records on the release it supersedes.
pub fn superseded_reason(by: &ReleaseId) -> String {
    format!("superseded by the newer release {by}")
}

/// The release an operator's retry deploys again under the next generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retried {
    pub id: ReleaseId,
    /// The state it was read in: the claim's condition on it (with no
    /// `retried_as` yet), so two retries of one release claim once.
    pub state: ReleaseState,
    /// A forced retry of a rolled-back release: the claim takes it off the
    /// lane's bad releases.
    pub unmark_bad: bool,
}

/// The start of a rollback, applied atomically: the lane head (conditional on
/// its version) frozen, pointing at the target and recording the rollback in
/// progress; the release left takes [`crate::release::Transition::BeginRollback`].
#[derive(Debug, Clone)]
pub struct RollbackWrite<'a> {
    pub lane: &'a Lane,
    pub expected_head_version: u64,
    pub target: &'a KnownGoodRelease,
    /// The history after the rollback (target first, the rolled-back release gone).
    pub history: Vec<KnownGoodRelease>,
    pub rolling_back: &'a RollbackInProgress,
    pub guard: Guard,
}

/// The ledger writes that rollback and freezing need.
pub trait RollbackLedger: Send + Sync {
    /// Returns false if the head or the release moved since they were read.
    fn roll_back(&self, write: RollbackWrite<'_>) -> impl Future<Output = PortResult<bool>> + Send;

    /// Ends a rollback whose services are back: the head forgets it, the release
    /// takes `guard` (FinishRollback). False if another invocation finished it.
    fn finish_rollback(
        &self,
        lane: &Lane,
        rollback: &RollbackInProgress,
        guard: Guard,
    ) -> impl Future<Output = PortResult<bool>> + Send;

    /// Marks the rollback in progress interrupted (`true`), or takes the
    /// resumption of an interrupted one (`false`, conditional on the mark):
    /// false if the head records no such rollback, or another delivery took it.
    fn mark_rollback(
        &self,
        lane: &Lane,
        release: &ReleaseId,
        interrupted: bool,
    ) -> impl Future<Output = PortResult<bool>> + Send;

    /// Records a push that arrived while the lane was frozen.
    fn hold(
        &self,
        lane: &Lane,
        expected_head_version: u64,
        push: &HeldPush,
    ) -> impl Future<Output = PortResult<bool>> + Send;

    /// Lifts the freeze; clears the held push.
    fn unfreeze(
        &self,
        lane: &Lane,
        expected_head_version: u64,
    ) -> impl Future<Output = PortResult<bool>> + Send;
}

/// How long a claim on the writes of a lane's image-tag parameter holds
/// (seconds): as long as the claimed PutParameter may take (the SDK's operation
/// timeout, crates/aws clients.rs), and short enough for a writer that waits
/// for the claim to wait it out inside one invocation (60 s). Past it the claim
/// has lapsed: its writer died or gave up.
pub const TAG_CLAIM_LEASE: u64 = 20;

/// The claim on the writes of one lane's image-tag parameter
/// ([`Ledger::claim_tag_writes`]): held by one invocation at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagClaim {
    /// Tells this claim from the next holder's.
    pub token: String,
    /// The version the last holder wrote, if it wrote: a read older than it
    /// missed that write.
    pub last_written: Option<i64>,
}

pub trait Ledger: Send + Sync {
    /// Consistent read of the lane head and one release.
    fn read(
        &self,
        lane: &Lane,
        release: &ReleaseId,
    ) -> impl Future<Output = PortResult<(Option<LaneHead>, Option<ReleaseRecord>)>> + Send;

    fn head(&self, lane: &Lane) -> impl Future<Output = PortResult<Option<LaneHead>>> + Send;

    fn release(
        &self,
        id: &ReleaseId,
    ) -> impl Future<Output = PortResult<Option<ReleaseRecord>>> + Send;

    fn claim(&self, claim: Claim<'_>) -> impl Future<Output = PortResult<ClaimOutcome>> + Send;

    /// Conditional update: applies only if the release is in a state `guard`
    /// admits, and moves it to the guard's state. Returns the record after the
    /// update, or `None` if the condition failed.
    fn update(
        &self,
        id: &ReleaseId,
        guard: Guard,
        update: ReleaseUpdate,
    ) -> impl Future<Output = PortResult<Option<ReleaseRecord>>> + Send;

    /// Like [`Ledger::update`], and in the same transaction changes the lane head,
    /// conditional on the head still pointing at this release. Returns whether it applied.
    fn settle(
        &self,
        release: &ReleaseRecord,
        guard: Guard,
        update: ReleaseUpdate,
        head: HeadChange,
    ) -> impl Future<Output = PortResult<bool>> + Send;

    /// Claims the writes of the lane's image-tag parameter, waiting while
    /// another invocation holds them (up to [`TAG_CLAIM_LEASE`], after which
    /// its claim has lapsed): `None` if they stayed held. PutParameter has no
    /// condition and no idempotency token; this is what keeps two invocations
    /// that both read another value from both writing it.
    fn claim_tag_writes(
        &self,
        lane: &Lane,
    ) -> impl Future<Output = PortResult<Option<TagClaim>>> + Send;

    /// Gives the claim back, with the version written under it if any
    /// (conditional on the claim still being this one).
    fn release_tag_claim(
        &self,
        lane: &Lane,
        claim: &TagClaim,
        written: Option<i64>,
    ) -> impl Future<Output = PortResult<()>> + Send;
}

/// How ferry sees a task definition: enough to plan a release, while the adapter
/// keeps the full definition so the copy it registers loses nothing.
pub trait TaskDefinitionView {
    fn arn(&self) -> &str;
    fn family(&self) -> &str;
    fn containers(&self) -> Vec<ContainerImage>;
    fn essential_containers(&self) -> Vec<String>;
    /// Every `secrets[].valueFrom` and `repositoryCredentials.credentialsParameter`.
    fn secret_refs(&self) -> Vec<String>;
    fn tags(&self) -> Vec<(String, String)>;
    /// ACTIVE: it can run tasks and services. A deregistered (INACTIVE) revision
    /// can still be described, but ECS refuses it to UpdateService and RunTask.
    fn is_active(&self) -> bool;
}

pub trait ServiceView {
    fn name(&self) -> &str;
    fn task_definition(&self) -> &str;
    /// The service's deployments as DescribeServices lists them (PRIMARY first).
    fn deployments(&self) -> Vec<DeploymentStatus>;
}

/// Where a deployment's rollout stands (`deployments[].rolloutState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutState {
    InProgress,
    Completed,
    Failed,
}

impl RolloutState {
    /// ECS's spelling: `IN_PROGRESS`, `COMPLETED`, `FAILED`.
    pub fn parse(value: &str) -> Option<RolloutState> {
        match value {
            "IN_PROGRESS" => Some(RolloutState::InProgress),
            "COMPLETED" => Some(RolloutState::Completed),
            "FAILED" => Some(RolloutState::Failed),
            _ => None,
        }
    }
}

/// One deployment of a service, as DescribeServices reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentStatus {
    pub id: String,
    /// The PRIMARY deployment: the one the service is moving to.
    pub primary: bool,
    pub task_definition: String,
    /// `None` when ECS reports no rollout state (not the ECS deployment controller).
    pub rollout: Option<RolloutState>,
    /// epoch seconds: when ECS began the deployment (`createdAt`): an
    /// UpdateService, or a circuit breaker rolling a failed one back.
    pub created_at: Option<u64>,
}

/// A task as DescribeTasks reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStatus {
    pub arn: String,
    pub started_by: Option<String>,
    pub phase: TaskPhase,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskPhase {
    /// Any `lastStatus` before STOPPED (PROVISIONING … RUNNING … DEPROVISIONING).
    Running,
    /// STOPPED, with what the gate judges.
    Stopped(crate::release::StoppedTask),
    /// DescribeTasks reports it under `failures` (MISSING): ECS forgets a
    /// stopped task about an hour after it stopped.
    Missing,
}

#[derive(Debug, Clone)]
pub struct ServiceLookup<S> {
    pub found: Vec<S>,
    /// Names that do not exist, or exist but are not ACTIVE.
    pub missing: Vec<String>,
}

pub trait Ecs: Send + Sync {
    type TaskDefinition: TaskDefinitionView + Clone + Send + Sync;
    type Service: ServiceView + Clone + Send + Sync;

    fn describe_services(
        &self,
        cluster: &str,
        services: &[String],
    ) -> impl Future<Output = PortResult<ServiceLookup<Self::Service>>> + Send;

    /// With tags. `reference` is an ARN or a family (its latest ACTIVE revision).
    fn describe_task_definition(
        &self,
        reference: &str,
    ) -> impl Future<Output = PortResult<Self::TaskDefinition>> + Send;

    /// Registers a copy of `base` with every field kept, only `changes` applied to
    /// container images, and `tags.tags` as the revision's tags (`tags.dropped`: the
    /// base's reserved `aws:` keys left out, for the log). Returns the new ARN.
    fn register_copy(
        &self,
        base: &Self::TaskDefinition,
        changes: &[ImageChange],
        tags: &ReleaseTags,
    ) -> impl Future<Output = PortResult<String>> + Send;

    /// Runs the migration once, launched like `like` (network, launch type or
    /// capacity providers, platform version). Returns the task ARN.
    fn run_migration(
        &self,
        cluster: &str,
        task_definition: &str,
        like: &Self::Service,
        started_by: &str,
        tags: &[(String, String)],
    ) -> impl Future<Output = PortResult<String>> + Send;

    /// Puts a service back on a task definition it ran before, without forcing a
    /// deployment: a service already on it is left alone. Returns the PRIMARY
    /// deployment's id.
    fn restore_service(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> impl Future<Output = PortResult<String>> + Send {
        self.update_service(cluster, service, task_definition)
    }

    /// UpdateService with forceNewDeployment; returns the new deployment's id.
    fn update_service(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> impl Future<Output = PortResult<String>> + Send;

    fn stop_task(
        &self,
        cluster: &str,
        task: &str,
        reason: &str,
    ) -> impl Future<Output = PortResult<()>> + Send;

    /// DescribeTasks: one status per requested task, in the order asked.
    fn describe_tasks(
        &self,
        cluster: &str,
        tasks: &[String],
    ) -> impl Future<Output = PortResult<Vec<TaskStatus>>> + Send;

    /// The ACTIVE revisions of exactly `family` (ARNs, any order), every page.
    fn list_revisions(&self, family: &str) -> impl Future<Output = PortResult<Vec<String>>> + Send;

    /// Deregisters one revision (it becomes INACTIVE: what runs it goes on, nothing
    /// new can be started on it).
    fn deregister(&self, task_definition: &str) -> impl Future<Output = PortResult<()>> + Send;
}

/// The SSM image-tag parameter: the public record of what an environment runs.
pub trait Parameters: Send + Sync {
    fn get(&self, name: &str) -> impl Future<Output = PortResult<Option<String>>> + Send;
    /// The value and its version: what a resumed step reads before writing, so
    /// an interrupted attempt's write is not made twice.
    fn current(&self, name: &str)
        -> impl Future<Output = PortResult<Option<(String, i64)>>> + Send;
    /// Overwrites the value and returns the new version.
    fn put(&self, name: &str, value: &str) -> impl Future<Output = PortResult<i64>> + Send;
    fn label(
        &self,
        name: &str,
        version: i64,
        label: &str,
    ) -> impl Future<Output = PortResult<()>> + Send;
}

/// Existence checks for secret references, never reading a value.
pub trait SecretsCheck: Send + Sync {
    /// Returns the references that do not exist.
    fn missing(
        &self,
        references: &[String],
    ) -> impl Future<Output = PortResult<Vec<String>>> + Send;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSelector {
    Tag(String),
    Digest(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    pub registry_id: String,
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: Option<PushTime>,
}

pub trait Registry: Send + Sync {
    fn resolve(
        &self,
        repository: &str,
        image: &ImageSelector,
    ) -> impl Future<Output = PortResult<Option<ResolvedImage>>> + Send;

    /// Every tagged image of the repository (DescribeImages, every page).
    fn images(
        &self,
        repository: &str,
    ) -> impl Future<Output = PortResult<Vec<ResolvedImage>>> + Send;
}

/// The audit trail: one `Release State Change` event per transition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseEvent {
    pub release_id: String,
    pub app: String,
    pub environment: String,
    pub repository: String,
    pub tag: String,
    pub digest: String,
    pub state: ReleaseState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_state: Option<ReleaseState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub services: Vec<String>,
    /// On the event of a release taking AWAITING_APPROVAL: what approving it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<ApprovalPlan>,
    /// When the release was claimed and last written, for the metrics
    /// ([`crate::metrics`]); not part of the event ferry puts on the bus.
    #[serde(skip)]
    pub timing: Option<ReleaseTiming>,
}

/// The ledger's timestamps of a release (epoch seconds) at a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseTiming {
    pub claimed_at: u64,
    /// The record's last write before this transition.
    pub updated_at: u64,
    pub migration_deadline: Option<u64>,
}

/// What a release awaiting approval would change once approved: the revisions
/// it registered, the SSM change, the migration that would run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApprovalPlan {
    /// service → the task-definition revision registered for it
    pub task_definitions: BTreeMap<String, String>,
    /// The lane's SSM image-tag parameter and the value it would take.
    pub parameter: ParameterChange,
    /// The migration task definition that would run first, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration: Option<String>,
    /// epoch seconds: the approval request expires then.
    pub expires_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParameterChange {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
}

/// A CloudWatch alarm's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl AlarmState {
    /// CloudWatch's spelling: `OK`, `ALARM`, `INSUFFICIENT_DATA`.
    pub fn parse(value: &str) -> Option<AlarmState> {
        match value {
            "OK" => Some(AlarmState::Ok),
            "ALARM" => Some(AlarmState::Alarm),
            "INSUFFICIENT_DATA" => Some(AlarmState::InsufficientData),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// A guarding alarm as DescribeAlarms reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmStatus {
    pub name: String,
    pub state: AlarmState,
    /// epoch seconds of the last state change
    pub state_updated_at: u64,
    pub reason: String,
    /// seconds; metric alarms only (a composite alarm has none)
    pub period: Option<u64>,
    pub evaluation_periods: Option<u64>,
}

/// CloudWatch alarms, read only.
pub trait Alarms: Send + Sync {
    /// The alarms of `names` that exist (a missing one is left out).
    fn describe(
        &self,
        names: &[String],
    ) -> impl Future<Output = PortResult<Vec<AlarmStatus>>> + Send;
}

/// The timer that ends a bake: one schedule per release, firing once at `at`
/// (epoch seconds) with the release id. Scheduling an existing one is a no-op.
pub trait Timers: Send + Sync {
    fn end_bake_at(
        &self,
        release: &ReleaseId,
        at: u64,
    ) -> impl Future<Output = PortResult<()>> + Send;
}

/// What the reconcile pass reports besides release transitions: one event per
/// finding, with what it found and what it did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    #[serde(skip)]
    pub kind: NoticeKind,
    pub app: String,
    pub environment: String,
    pub repository: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_id: Option<String>,
    /// What the pass found, e.g. "deployment ecs-svc/123 of api COMPLETED, its event never arrived".
    pub found: String,
    /// What it did about it.
    pub done: String,
    /// Drift only: the service, the revision ferry expects and the one it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// `Reconciled`: a lost event or unfinished step made good.
    Reconciled,
    /// `Drift Detected`: a service runs what no release of ferry's put there.
    DriftDetected,
}

impl NoticeKind {
    /// The EventBridge `detail-type`.
    pub fn detail_type(self) -> &'static str {
        match self {
            NoticeKind::Reconciled => "Reconciled",
            NoticeKind::DriftDetected => "Drift Detected",
        }
    }
}

/// Where ferry's release metrics go. Writing one never fails a release: the
/// adapter reports its own trouble, the engine does not wait on it.
pub trait Metrics: Send + Sync {
    /// Epoch seconds now: the end of the durations measured.
    fn now(&self) -> u64;
    fn record(&self, measurements: &[crate::metrics::Measurement]);
}

pub trait EventSink: Send + Sync {
    fn emit(&self, events: &[ReleaseEvent]) -> impl Future<Output = PortResult<()>> + Send;

    /// The reconcile pass's events (`Reconciled`, `Drift Detected`).
    fn notify(&self, notices: &[Notice]) -> impl Future<Output = PortResult<()>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_names_app_environment_and_repository() {
        let lane = Lane {
            app: "shop".into(),
            env: "prod".into(),
            repository: "shop-api".into(),
        };
        assert_eq!(lane.to_string(), "shop/prod (shop-api)");
    }

    #[test]
    fn alarm_states_use_cloudwatchs_spelling_both_ways() {
        for (text, state) in [
            ("OK", AlarmState::Ok),
            ("ALARM", AlarmState::Alarm),
            ("INSUFFICIENT_DATA", AlarmState::InsufficientData),
        ] {
            assert_eq!(AlarmState::parse(text), Some(state));
            assert_eq!(state.as_str(), text);
        }
        assert_eq!(AlarmState::parse("alarm"), None);
        assert_eq!(AlarmState::parse(""), None);
    }
}
