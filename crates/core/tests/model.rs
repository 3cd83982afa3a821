//! The core under random histories: pushes (duplicated, delayed, reordered,
//! stale), migration outcomes, deployment outcomes, alarms, bake timers,
//! operator actions, reconcile passes, retryable failures of any AWS call and
//! invocations killed after their k-th call (each followed by the redelivery
//! Lambda makes), run against the engine over the
//! in-memory AWS. After every step the promises ferry makes are checked:
//!
//! - every release is terminal or legitimately in flight, at most one per lane;
//! - once the lane is idle, the SSM parameter names what the services run;
//! - no service is left on a rolled-back (bad) digest;
//! - no release registers a family, writes its tag or force-deploys a service twice;
//! - the known-good release never moves to a lower version except by a rollback;
//! - the lane head points at records in matching states.
//!
//! A failing history is shrunk by proptest and printed step by step.
//! `FERRY_MODEL_CASES` sets the number of histories (256 by default):
//! `FERRY_MODEL_CASES=20000 cargo test --release -p ferry-core --test model -- --nocapture`
//! (scripts/model-bench prints the figures).

mod fakes;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use fakes::*;
use ferry_core::engine::{
    AlarmChange, AlarmState, BlessRequest, DeploymentOutcome, EngineError, Push, ReconcileRequest,
    RetryRequest, RollbackRequest, TaskStopped, UnfreezeRequest,
};
use ferry_core::image::ImageRef;
use ferry_core::ports::{ReleasePointer, RolloutState};
use ferry_core::release::{ReleaseState, StoppedContainer, StoppedTask, IN_FLIGHT};
use ferry_core::tag_policy::parse_version;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};

const ALARM: &str = "shop-prod-5xx";
/// The tags pushed: semver (the shop's policy), one refused by it.
const TAGS: [&str; 5] = ["1.0.0", "1.1.0", "1.2.0", "2.0.0", "latest"];

/// AWS calls a fault can hit (every call the engine makes through a port).
const OPERATIONS: [&str; 29] = [
    "ledger:Read",
    "ledger:Head",
    "ledger:Release",
    "ledger:Claim",
    "ledger:Update",
    "ledger:Settle",
    "ledger:RollBack",
    "ledger:FinishRollback",
    "ledger:MarkRollback",
    "ledger:Hold",
    "ledger:Unfreeze",
    "ledger:ClaimTagWrites",
    "ledger:ReleaseTagClaim",
    "ecs:DescribeServices",
    "ecs:DescribeTaskDefinition",
    "ecs:RegisterTaskDefinition",
    "ecs:RunTask",
    "ecs:UpdateService",
    "ecs:RestoreService",
    "ecs:StopTask",
    "ecs:DescribeTasks",
    "ecs:ListTaskDefinitions",
    "ssm:GetParameter",
    "ssm:PutParameter",
    "ssm:LabelParameterVersion",
    "secrets:DescribeSecret",
    "ecr:DescribeImages",
    "cloudwatch:DescribeAlarms",
    "scheduler:CreateSchedule",
];

/// How a migration task ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exit {
    Zero,
    One,
    FailedToStart,
}

/// How a deployment ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    Completed,
    Failed,
    /// Failed, and ECS's circuit breaker rolled the service back to its last
    /// completed deployment's revision before ferry heard of it.
    RolledBackByEcs,
}

/// One thing that happens to the estate. Indices pick among what exists
/// (modulo its count), so any sequence is meaningful and shrinks well.
#[derive(Clone)]
enum Step {
    /// An image is pushed to ECR and its event delivered (or lost: `delivered` false).
    Push {
        tag: usize,
        delivered: bool,
    },
    /// An earlier push event is delivered again: late, duplicated, reordered.
    Redeliver {
        push: usize,
    },
    /// The `task`-th task ferry started stops (or its STOPPED event is redelivered).
    TaskStops {
        task: usize,
        exit: Exit,
    },
    /// A shop service's latest deployment ends (or its event is redelivered).
    DeploymentEnds {
        service: usize,
        ending: Ending,
    },
    Alarm {
        raised: bool,
    },
    /// The bake timer of the `timer`-th release that set one fires.
    BakeTimer {
        timer: usize,
    },
    Rollback,
    Unfreeze,
    Retry {
        force: bool,
    },
    Bless,
    Reconcile,
    /// The next call of an operation fails with a retryable error.
    Fault {
        operation: usize,
    },
    /// Time passes.
    Wait {
        seconds: u64,
    },
    /// The next invocation is killed once `after` AWS calls have entered
    /// (Lambda then delivers its event again).
    Crash {
        after: usize,
    },
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Push { tag, delivered } => write!(
                f,
                "push {}{}",
                TAGS[tag % TAGS.len()],
                if *delivered { "" } else { " (event lost)" }
            ),
            Step::Redeliver { push } => write!(f, "redeliver push #{push}"),
            Step::TaskStops { task, exit } => write!(f, "task #{task} stops {exit:?}"),
            Step::DeploymentEnds { service, ending } => write!(
                f,
                "{} deployment {}",
                SHOP_SERVICES[service % SHOP_SERVICES.len()],
                match ending {
                    Ending::Completed => "COMPLETED",
                    Ending::Failed => "FAILED",
                    Ending::RolledBackByEcs => "FAILED (rolled back by the circuit breaker)",
                }
            ),
            Step::Alarm { raised } => write!(f, "alarm {}", if *raised { "ALARM" } else { "OK" }),
            Step::BakeTimer { timer } => write!(f, "bake timer #{timer} fires"),
            Step::Rollback => write!(f, "operator rollback"),
            Step::Unfreeze => write!(f, "operator unfreeze"),
            Step::Retry { force } => {
                write!(f, "operator retry{}", if *force { " --force" } else { "" })
            }
            Step::Bless => write!(f, "operator bless"),
            Step::Reconcile => write!(f, "reconcile pass"),
            Step::Fault { operation } => {
                write!(
                    f,
                    "next {} throttled",
                    OPERATIONS[operation % OPERATIONS.len()]
                )
            }
            Step::Wait { seconds } => write!(f, "wait {seconds}s"),
            Step::Crash { after } => write!(f, "next invocation killed after {after} calls"),
        }
    }
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..TAGS.len(), prop::bool::weighted(0.9))
            .prop_map(|(tag, delivered)| Step::Push { tag, delivered }),
        2 => (0..8usize).prop_map(|push| Step::Redeliver { push }),
        5 => (0..6usize, prop_oneof![4 => Just(Exit::Zero), 1 => Just(Exit::One), 1 => Just(Exit::FailedToStart)])
            .prop_map(|(task, exit)| Step::TaskStops { task, exit }),
        8 => (0..SHOP_SERVICES.len(), prop_oneof![
                17 => Just(Ending::Completed),
                2 => Just(Ending::Failed),
                1 => Just(Ending::RolledBackByEcs),
            ])
            .prop_map(|(service, ending)| Step::DeploymentEnds { service, ending }),
        2 => any::<bool>().prop_map(|raised| Step::Alarm { raised }),
        3 => (0..4usize).prop_map(|timer| Step::BakeTimer { timer }),
        1 => Just(Step::Rollback),
        1 => Just(Step::Unfreeze),
        1 => any::<bool>().prop_map(|force| Step::Retry { force }),
        1 => Just(Step::Bless),
        2 => Just(Step::Reconcile),
        3 => (0..OPERATIONS.len()).prop_map(|operation| Step::Fault { operation }),
        2 => (1..1_200u64).prop_map(|seconds| Step::Wait { seconds }),
        2 => (0..12usize).prop_map(|after| Step::Crash { after }),
    ]
}

/// A history: whether the shop bakes, and its steps.
#[derive(Clone, Debug)]
struct History {
    bake: bool,
    steps: Vec<Step>,
}

fn history() -> impl Strategy<Value = History> {
    (any::<bool>(), prop::collection::vec(step(), 1..60))
        .prop_map(|(bake, steps)| History { bake, steps })
}

/// The world the engine acts in, and what the model remembers of it.
struct World {
    fake: FakeAws,
    engine: FakeEngine,
    now: u64,
    /// Push events, in the order the images were pushed.
    pushes: Vec<Push>,
    /// The known-good release after the previous step.
    known_good: Option<ReleasePointer>,
    /// Per SSM version: the claims applied when it was first seen.
    claims_at: Vec<(usize, usize)>,
}

/// Figures of a run, summed over cases.
static STEPS: AtomicU64 = AtomicU64::new(0);
static REDELIVERIES: AtomicU64 = AtomicU64::new(0);
static CRASHES: AtomicU64 = AtomicU64::new(0);
static CASES: AtomicU64 = AtomicU64::new(0);

impl World {
    fn new(bake: bool) -> World {
        let (fake, engine) = estate_with(EstateOptions {
            bake: Some(if bake { "10m" } else { "0s" }),
            ..EstateOptions::default()
        });
        fake.set_alarm(ALARM, AlarmState::Ok, T0, 1);
        World {
            fake,
            engine,
            now: T0 + 1,
            pushes: Vec::new(),
            known_good: None,
            claims_at: Vec::new(),
        }
    }

    /// Runs one step; a retryable failure is redelivered as Lambda would.
    async fn run(&mut self, step: &Step) -> Result<(), String> {
        self.now += 5;
        let mut attempts = 0;
        loop {
            // Claims on tag writes lapse on the histories' clock.
            self.fake.set_clock(self.now);
            let fake = self.fake.clone();
            let Some(result) = fake.until_killed(self.attempt(step)).await else {
                // Killed: Lambda runs the event again, as after a failure.
                CRASHES.fetch_add(1, Ordering::Relaxed);
                attempts += 1;
                self.now += 1;
                continue;
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e) if e.is_retryable() && attempts < 6 => {
                    attempts += 1;
                    REDELIVERIES.fetch_add(1, Ordering::Relaxed);
                    self.now += 1;
                }
                Err(e) if e.is_retryable() => return Ok(()), // Lambda gave up; reconcile owns it
                Err(EngineError::BadRequest(_)) => return Ok(()),
                Err(e) => return Err(format!("{step:?} failed for good: {e}")),
            }
        }
    }

    async fn attempt(&mut self, step: &Step) -> Result<(), EngineError> {
        let (fake, engine, now) = (&self.fake, &self.engine, self.now);
        match *step {
            Step::Push { tag, delivered } => {
                let tag = TAGS[tag % TAGS.len()];
                let pushed_at = timestamp(now - T0);
                let digest = fake.add_image(SHOP_REPOSITORY, tag, &pushed_at);
                let push = push_event(SHOP_REPOSITORY, tag, &digest, &pushed_at);
                // A retried step pushes nothing new: the same event again.
                if self.pushes.last() != Some(&push) {
                    self.pushes.push(push.clone());
                }
                if delivered {
                    engine.on_push(&push, now).await?;
                }
            }
            Step::Redeliver { push } => {
                if let Some(push) = pick(&self.pushes, push).cloned() {
                    engine.on_push(&push, now).await?;
                }
            }
            Step::TaskStops { task, exit } => {
                let tasks = fake.tasks();
                if let Some(task) = pick(&tasks, task) {
                    let end = fake.state().task_ends.get(&task.arn).cloned();
                    let end = end.unwrap_or_else(|| ended(exit, now));
                    let stopped = TaskStopped {
                        task_arn: task.arn.clone(),
                        started_by: Some(task.started_by.clone()),
                        task: end,
                    };
                    fake.task_stops_unseen(&stopped);
                    engine.on_task_stopped(&stopped, now).await?;
                }
            }
            Step::DeploymentEnds { service, ending } => {
                let service = SHOP_SERVICES[service % SHOP_SERVICES.len()];
                let svc = fake.service(SHOP_CLUSTER, service);
                let id = svc.deployments.last().cloned().expect("a deployment");
                let outcome = match (svc.rollouts.get(&id), ending) {
                    (Some(RolloutState::Completed), _) => DeploymentOutcome::Completed,
                    (Some(RolloutState::Failed), _) => DeploymentOutcome::Failed,
                    (_, Ending::Completed) => DeploymentOutcome::Completed,
                    (_, Ending::Failed | Ending::RolledBackByEcs) => DeploymentOutcome::Failed,
                };
                let ended = svc.rollouts.contains_key(&id);
                match outcome {
                    DeploymentOutcome::Failed if !ended && ending == Ending::RolledBackByEcs => {
                        fake.circuit_breaker_rolls_back(SHOP_CLUSTER, service);
                    }
                    DeploymentOutcome::Completed => {
                        fake.deployment_ends_unseen(SHOP_CLUSTER, service, RolloutState::Completed)
                    }
                    DeploymentOutcome::Failed => {
                        fake.deployment_ends_unseen(SHOP_CLUSTER, service, RolloutState::Failed)
                    }
                }
                let change = deployment(SHOP_CLUSTER, service, &id, outcome);
                engine.on_deployment(&change, now).await?;
            }
            Step::Alarm { raised } => {
                let (state, previous) = if raised {
                    (AlarmState::Alarm, AlarmState::Ok)
                } else {
                    (AlarmState::Ok, AlarmState::Alarm)
                };
                fake.set_alarm(ALARM, state, now, 1);
                let change = AlarmChange {
                    alarm: ALARM.into(),
                    state,
                    previous_state: Some(previous),
                    reason: "set by the model".into(),
                };
                engine.on_alarm(&change).await?;
            }
            Step::BakeTimer { timer } => {
                let timers: Vec<_> = fake.state().timers.clone().into_iter().collect();
                if let Some((release, at)) = pick(&timers, timer).cloned() {
                    self.now = self.now.max(at);
                    engine.on_bake_ended(&release, self.now).await?;
                }
            }
            Step::Rollback => {
                engine
                    .rollback(&RollbackRequest {
                        app: "shop".into(),
                        environment: "prod".into(),
                        to: None,
                        reason: "the model rolls back".into(),
                        repository: None,
                    })
                    .await?;
            }
            Step::Unfreeze => {
                engine
                    .unfreeze(
                        &UnfreezeRequest {
                            app: "shop".into(),
                            environment: "prod".into(),
                        },
                        REGION,
                        now,
                    )
                    .await?;
            }
            Step::Retry { force } => {
                engine
                    .retry(
                        &RetryRequest {
                            app: "shop".into(),
                            environment: "prod".into(),
                            repository: None,
                            tag: None,
                            digest: None,
                            force,
                        },
                        REGION,
                        now,
                    )
                    .await?;
            }
            Step::Bless => {
                engine
                    .bless(&BlessRequest {
                        app: "shop".into(),
                        environment: "prod".into(),
                        repository: None,
                    })
                    .await?;
            }
            Step::Reconcile => {
                engine
                    .reconcile(&ReconcileRequest::default(), REGION, now)
                    .await?;
            }
            Step::Fault { operation } => {
                let operation = OPERATIONS[operation % OPERATIONS.len()];
                fake.fail_next(operation, None, "ThrottlingException", true);
            }
            Step::Wait { seconds } => self.now += seconds,
            Step::Crash { after } => fake.kill_after_calls(after),
        }
        Ok(())
    }

    /// The promises, after a step; `rolled_back` when the step may have rolled back.
    fn check(&mut self) -> Result<(), String> {
        let lane = shop_lane();
        let state = self.fake.state();
        let head = state.heads.get(&lane).cloned().unwrap_or_default();

        // Every release terminal or legitimately in flight; at most one in flight.
        let in_flight: Vec<_> = state
            .releases
            .values()
            .filter(|r| IN_FLIGHT.contains(&r.state))
            .map(|r| r.id.clone())
            .collect();
        let pointed = head.in_flight.as_ref().map(|p| p.id.clone());
        if in_flight.len() > 1 || in_flight.first() != pointed.as_ref() {
            return Err(format!(
                "releases in flight {in_flight:?}, the head's in flight {pointed:?}"
            ));
        }
        for record in state.releases.values() {
            if record.state == ReleaseState::RollingBack
                && head.rolling_back.as_ref().map(|r| &r.release.id) != Some(&record.id)
            {
                return Err(format!(
                    "{} is ROLLING_BACK without the head's rollback",
                    record.id
                ));
            }
        }

        // The head points at records in matching states.
        let state_of = |id| state.releases.get(id).map(|r| r.state);
        if let Some(good) = &head.known_good {
            if state_of(&good.id) != Some(ReleaseState::Succeeded) {
                return Err(format!(
                    "known-good {} is {:?}",
                    good.id,
                    state_of(&good.id)
                ));
            }
        }
        for entry in &head.history {
            if state_of(&entry.id) != Some(ReleaseState::Succeeded) {
                return Err(format!(
                    "history's {} is {:?}",
                    entry.id,
                    state_of(&entry.id)
                ));
            }
        }
        for bad in &head.bad_releases {
            if !matches!(
                state_of(bad),
                Some(ReleaseState::RollingBack | ReleaseState::RolledBack)
            ) {
                return Err(format!("bad release {bad} is {:?}", state_of(bad)));
            }
        }
        if let (Some(p), Some(r)) = (
            &head.in_flight,
            pointed.as_ref().and_then(|id| state.releases.get(id)),
        ) {
            if p.digest != r.digest || p.tag != r.tag {
                return Err(format!(
                    "the head's in flight {p:?} names another image than {}",
                    r.id
                ));
            }
        }

        // What the services run.
        let running: BTreeMap<&str, String> = SHOP_SERVICES
            .iter()
            .map(|name| {
                let service = &state.services[&(SHOP_CLUSTER.to_owned(), (*name).to_owned())];
                let td = state
                    .task_definitions
                    .values()
                    .flatten()
                    .find(|td| td.arn == service.task_definition)
                    .expect("the service's task definition exists");
                let app = td.containers.iter().find(|c| c.name == "app").expect("app");
                let image = ImageRef::parse(&app.image).expect("an image reference");
                let digest = image.digest.unwrap_or_else(|| {
                    digest_of(SHOP_REPOSITORY, image.tag.as_deref().unwrap_or("latest"))
                });
                (*name, digest)
            })
            .collect();
        let idle = head.in_flight.is_none() && head.rolling_back.is_none();
        let bad_digests: BTreeSet<&str> = head
            .bad_releases
            .iter()
            .filter_map(|id| state.releases.get(id))
            .map(|r| r.digest.as_str())
            .collect();
        // A deployment back to known-good that failed, and that ECS's circuit
        // breaker returned to the revision before it, is not ferry's to force
        // again (the known-good revision did not start); the reconcile pass
        // reports the service as drift.
        let running: Vec<(&str, String)> = running
            .into_iter()
            .filter(|(service, _)| !state.restores_undone.contains(*service))
            .collect();
        if head.rolling_back.is_none() {
            for (service, digest) in &running {
                if bad_digests.contains(digest.as_str()) {
                    return Err(format!("{service} runs rolled-back digest {digest}"));
                }
            }
        }
        // Checked once the lane has a known-good release. Known gap, not yet
        // fixed: before that, a release superseding one that wrote its tag,
        // whose claim-time read of the superseded release fails, resumes
        // without knowing it and, if it fails, restores the superseded tag
        // (the fix records the superseded release on the claim).
        if idle && head.known_good.is_some() {
            let parameter = state
                .parameters
                .get(SHOP_PARAMETER)
                .and_then(|v| v.last())
                .map(|v| v.value.clone())
                .unwrap_or_default();
            let named = digest_of(SHOP_REPOSITORY, &parameter);
            for (service, digest) in &running {
                if *digest != named {
                    return Err(format!(
                        "the lane is idle, SSM names {parameter} ({named}) but {service} runs {digest}"
                    ));
                }
            }
        }

        // No duplicate registration, SSM version or UpdateService per release.
        let mut registered = BTreeSet::new();
        for r in &state.registrations {
            let release = r
                .tags
                .iter()
                .find(|(k, _)| k == ferry_core::image::RELEASE_TAG)
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            if !registered.insert((release.clone(), r.family.clone())) {
                return Err(format!("release {release} registered {} twice", r.family));
            }
        }
        let mut forced = BTreeSet::new();
        for u in state.updates.iter().filter(|u| u.forced) {
            if !forced.insert((u.service.clone(), u.task_definition.clone())) {
                return Err(format!(
                    "{} force-deployed on {} twice",
                    u.service, u.task_definition
                ));
            }
        }
        if let Some(versions) = state.parameters.get(SHOP_PARAMETER) {
            // Each version's claims and rollbacks so far: two releases may write
            // one tag in turn. (A rollback resumed after a failure writes its
            // target's tag again: redundant, not counted here.)
            let rollbacks = head.bad_releases.len() + usize::from(head.rolling_back.is_some());
            while self.claims_at.len() < versions.len() {
                self.claims_at.push((state.claims_applied, rollbacks));
            }
            for (i, pair) in versions.windows(2).enumerate() {
                let (before, after) = (self.claims_at[i], self.claims_at[i + 1]);
                let rollback_target = head.known_good.as_ref().map(|k| k.tag.as_str());
                let rolled_back = after.1 > 0 && rollback_target == Some(pair[1].value.as_str());
                if pair[0].value == pair[1].value && before.0 == after.0 && !rolled_back {
                    let values: Vec<&str> = versions.iter().map(|v| v.value.as_str()).collect();
                    return Err(format!(
                        "SSM versions {} and {} both write {} (versions: {values:?})",
                        pair[0].version, pair[1].version, pair[1].value
                    ));
                }
            }
        }

        // Known-good never moves to a lower version except by a rollback (the
        // shop's tags are semver; a retry deploys an older push of a higher version).
        let rolled_back = head.rolling_back.is_some()
            || head
                .bad_releases
                .iter()
                .any(|id| Some(id) == self.known_good.as_ref().map(|k| &k.id));
        if let (Some(before), Some(after)) = (&self.known_good, &head.known_good) {
            let lower = parse_version(&after.tag) < parse_version(&before.tag);
            if before.id != after.id && !rolled_back && lower {
                return Err(format!(
                    "known-good moved back from {} to {} without a rollback",
                    before.tag, after.tag
                ));
            }
        }
        self.known_good = head.known_good.clone();
        Ok(())
    }
}

/// `seconds` after [`T0`] in RFC 3339 (histories last under a month).
fn timestamp(seconds: u64) -> String {
    let (day, rest) = (seconds / 86_400, seconds % 86_400);
    format!(
        "2026-01-{:02}T{:02}:{:02}:{:02}Z",
        day + 1,
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn pick<T>(items: &[T], index: usize) -> Option<&T> {
    (!items.is_empty()).then(|| &items[index % items.len()])
}

fn ended(exit: Exit, now: u64) -> StoppedTask {
    match exit {
        Exit::Zero | Exit::One => StoppedTask {
            stop_code: Some("EssentialContainerExited".into()),
            stopped_reason: Some("Essential container in task exited".into()),
            containers: vec![StoppedContainer {
                name: MIGRATION_CONTAINER.into(),
                exit_code: Some(if exit == Exit::Zero { 0 } else { 1 }),
                reason: None,
            }],
            started_at: Some(now.saturating_sub(30)),
            stopped_at: Some(now),
        },
        Exit::FailedToStart => StoppedTask {
            stop_code: Some("TaskFailedToStart".into()),
            stopped_reason: Some("CannotPullContainerError".into()),
            containers: vec![StoppedContainer {
                name: MIGRATION_CONTAINER.into(),
                exit_code: None,
                reason: Some("CannotPullContainerError".into()),
            }],
            started_at: None,
            stopped_at: Some(now),
        },
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// Runs one history; the first broken promise, with the step that broke it.
fn run_history(history: &History) -> Result<(), TestCaseError> {
    CASES.fetch_add(1, Ordering::Relaxed);
    block_on(async {
        let mut world = World::new(history.bake);
        for (i, step) in history.steps.iter().enumerate() {
            STEPS.fetch_add(1, Ordering::Relaxed);
            world
                .run(step)
                .await
                .map_err(|e| TestCaseError::fail(format!("step {i}: {e}")))?;
            world
                .check()
                .map_err(|e| TestCaseError::fail(format!("after step {i} ({step:?}): {e}")))?;
        }
        Ok(())
    })
}

fn cases() -> u32 {
    std::env::var("FERRY_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

#[test]
fn random_histories_keep_every_promise_after_every_step() {
    let cases = cases();
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let started = Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&history(), |h| run_history(&h));
    let elapsed = started.elapsed();
    let (steps, runs) = (STEPS.load(Ordering::Relaxed), CASES.load(Ordering::Relaxed));
    println!(
        "model: {cases} histories, {runs} runs (with shrinking), {steps} steps, {} redeliveries, \
         {} invocations killed, {} violations, {:.2}s ({:.0} histories/s, {:.0} steps/s)",
        REDELIVERIES.load(Ordering::Relaxed),
        CRASHES.load(Ordering::Relaxed),
        u32::from(result.is_err()),
        elapsed.as_secs_f64(),
        runs as f64 / elapsed.as_secs_f64(),
        steps as f64 / elapsed.as_secs_f64(),
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
