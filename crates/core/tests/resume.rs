//! A transient AWS failure never ends a release or a rollback: the step fails
//! the invocation (so Lambda delivers the event again), the ledger keeps the
//! release where the redelivery resumes it, and a repeated step has no second
//! effect. Each scenario fails an AWS call past the SDK's retries once.

mod fakes;

use std::pin::pin;

use fakes::*;
use ferry_core::engine::{
    AlarmChange, AlarmState, Decision, DeploymentOutcome, EngineError, Outcome, Push,
    RollbackRequest, TaskStopped,
};
use ferry_core::release::{ReleaseId, ReleaseState};

fn only(decisions: Vec<Decision>) -> Decision {
    assert_eq!(decisions.len(), 1, "decisions: {decisions:?}");
    decisions.into_iter().next().unwrap()
}

async fn deliver(engine: &FakeEngine, push: &Push, seconds: u64) -> Result<Decision, EngineError> {
    engine.on_push(push, T0 + seconds).await.map(only)
}

/// The invocation failed, and Lambda will run it again.
fn assert_retried<T: std::fmt::Debug>(result: Result<T, EngineError>) {
    match result {
        Err(error) => assert!(error.is_retryable(), "not retryable: {error}"),
        Ok(value) => panic!("expected the invocation to fail for a retry: {value:?}"),
    }
}

/// The newest migration task of `tag` stops with exit 0 and its event is handled.
async fn migration_passes(engine: &FakeEngine, fake: &FakeAws, tag: &str) -> Decision {
    let started_by = shop_release(tag).started_by();
    let stopped_tasks: Vec<String> = fake.stopped().into_iter().map(|s| s.task).collect();
    let task = fake
        .tasks()
        .into_iter()
        .rfind(|t| t.started_by == started_by && !stopped_tasks.contains(&t.arn))
        .expect("a running migration task");
    let stopped = migration_exited(&task, 0, T0 + 300, T0 + 360);
    engine
        .on_task_stopped(&stopped, T0 + 360)
        .await
        .expect("the gate handles it")
}

async fn every_service_completes(engine: &FakeEngine, fake: &FakeAws) -> Decision {
    every_shop_service_completes(engine, fake, T0 + 600).await
}

/// What an operator checks after the dust settles: the release succeeded, every
/// service runs one of its revisions, SSM names its tag (labelled known-good),
/// and the interruption left no second copy of any family behind.
fn assert_released(fake: &FakeAws, tag: &str) {
    let id = shop_release(tag);
    let mut families: Vec<String> = fake
        .registrations()
        .into_iter()
        .filter(|r| {
            r.tags
                .iter()
                .any(|(k, v)| k == "ferry:release" && v == id.as_str())
        })
        .map(|r| r.family)
        .collect();
    let registered = families.len();
    families.sort();
    families.dedup();
    assert_eq!(
        registered,
        families.len(),
        "one copy per family: {families:?}"
    );
    let record = fake.record(&id);
    assert_eq!(record.state, ReleaseState::Succeeded, "{record:?}");
    assert_eq!(record.interrupted, None);
    for service in SHOP_SERVICES {
        assert_eq!(
            fake.service(SHOP_CLUSTER, service).task_definition,
            record.task_definitions[service],
            "{service} runs the release"
        );
    }
    let history = fake.parameter_history(SHOP_PARAMETER);
    for pair in history.windows(2) {
        assert_ne!(
            pair[0].value, pair[1].value,
            "one SSM version per write of a new value: {history:?}"
        );
    }
    let current = history.last().expect("a version");
    assert_eq!(current.value, tag);
    assert!(current.labels.contains("known-good"));
    let updates = fake.updates();
    for service in SHOP_SERVICES {
        let to_release = updates
            .iter()
            .filter(|u| {
                u.service == service && u.task_definition == record.task_definitions[service]
            })
            .count();
        assert_eq!(
            to_release, 1,
            "one UpdateService of {service} for the release"
        );
    }
}

async fn fails_once_then_resumes(operation: &'static str, key: Option<&str>) {
    let (fake, engine) = estate();
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    fake.fail_next(operation, key, "InternalServerError", true);

    assert_retried(deliver(&engine, &push, 10).await);
    let record = fake.record(&shop_release("1.0.0"));
    assert!(record.state.is_in_flight(), "not abandoned: {record:?}");
    assert!(record.interrupted.is_some(), "marked for the redelivery");

    let again = deliver(&engine, &push, 11)
        .await
        .expect("the redelivery resumes");
    assert!(
        matches!(again.outcome, Outcome::Migrating { .. }),
        "{again:?}"
    );
    let duplicate = deliver(&engine, &push, 12).await.expect("a duplicate");
    assert!(
        matches!(duplicate.outcome, Outcome::Duplicate { .. }),
        "{duplicate:?}"
    );

    migration_passes(&engine, &fake, "1.0.0").await;
    assert_eq!(
        every_service_completes(&engine, &fake).await.outcome,
        Outcome::Succeeded
    );
    assert_released(&fake, "1.0.0");
}

#[tokio::test]
async fn a_registration_failing_past_the_retries_is_resumed_by_the_redelivered_push() {
    fails_once_then_resumes("ecs:RegisterTaskDefinition", None).await;
}

#[tokio::test]
async fn an_image_tag_write_failing_past_the_retries_is_resumed_by_the_redelivered_push() {
    fails_once_then_resumes("ssm:PutParameter", None).await;
}

#[tokio::test]
async fn a_migration_that_could_not_start_is_started_by_the_redelivered_push() {
    fails_once_then_resumes("ecs:RunTask", None).await;
}

#[tokio::test]
async fn a_preflight_read_failing_past_the_retries_is_resumed_by_the_redelivered_push() {
    fails_once_then_resumes("secrets:DescribeSecret", None).await;
}

#[tokio::test]
async fn a_migration_started_while_the_image_tag_write_failed_is_stopped_before_it_counts() {
    let (fake, engine) = estate();
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    fake.fail_next("ssm:PutParameter", None, "InternalServerError", true);

    assert_retried(deliver(&engine, &push, 10).await);

    let first = fake.migration_task(&shop_release("1.0.0"));
    let stopped: Vec<String> = fake.stopped().into_iter().map(|s| s.task).collect();
    assert_eq!(
        stopped,
        [first.arn],
        "the migration of the interrupted attempt never counts"
    );
}

#[tokio::test]
async fn a_throttled_update_service_without_a_migration_is_finished_by_the_redelivered_push() {
    let (fake, engine) = estate_with(EstateOptions {
        migration: false,
        ..EstateOptions::default()
    });
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    fake.fail_next(
        "ecs:UpdateService",
        Some("worker"),
        "ThrottlingException",
        true,
    );

    assert_retried(deliver(&engine, &push, 10).await);
    let record = fake.record(&shop_release("1.0.0"));
    assert_eq!(record.state, ReleaseState::Deploying);
    assert!(!record.deployments.contains_key("worker"));

    let again = deliver(&engine, &push, 11)
        .await
        .expect("the redelivery resumes");
    assert!(
        matches!(again.outcome, Outcome::Deploying { .. }),
        "{again:?}"
    );
    assert_eq!(
        every_service_completes(&engine, &fake).await.outcome,
        Outcome::Succeeded
    );
    assert_released(&fake, "1.0.0");
}

/// A lane without a migration whose 1.0.0 is released and known-good, with
/// the revisions its services run (in `SHOP_SERVICES` order).
async fn released_without_a_migration() -> (FakeAws, FakeEngine, Vec<String>) {
    let (fake, engine) = estate_with(EstateOptions {
        migration: false,
        ..EstateOptions::default()
    });
    let good = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    deliver(&engine, &good, 10).await.expect("released");
    every_service_completes(&engine, &fake).await;
    let running = SHOP_SERVICES
        .iter()
        .map(|s| fake.service(SHOP_CLUSTER, s).task_definition)
        .collect();
    (fake, engine, running)
}

fn assert_services_on(fake: &FakeAws, revisions: &[String], tag: &str) {
    for (service, revision) in SHOP_SERVICES.iter().zip(revisions) {
        assert_eq!(
            &fake.service(SHOP_CLUSTER, service).task_definition,
            revision,
            "{service} back on {tag}"
        );
    }
}

#[tokio::test]
async fn a_resumed_rollout_adopts_the_deployments_its_killed_attempt_started() {
    let (fake, engine) = estate_with(EstateOptions {
        migration: false,
        ..EstateOptions::default()
    });
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    deliver(&engine, &push, 10).await.expect("rolled out");
    fake.killed_after_update_service(&shop_release("1.0.0"));

    let again = deliver(&engine, &push, 11).await.expect("resumed");

    assert!(
        matches!(again.outcome, Outcome::Deploying { .. }),
        "{again:?}"
    );
    assert_eq!(
        fake.count("ecs:UpdateService"),
        SHOP_SERVICES.len(),
        "no second forced deployment"
    );
    assert_eq!(
        every_service_completes(&engine, &fake).await.outcome,
        Outcome::Succeeded
    );
    assert_released(&fake, "1.0.0");
}

#[tokio::test]
async fn a_resumed_rollout_whose_deployment_ecs_rolled_back_rolls_the_release_back_instead_of_forcing_it_again(
) {
    let (fake, engine, good_tds) = released_without_a_migration().await;
    let good_api = fake.service(SHOP_CLUSTER, "api").task_definition;
    // 1.1.0 rolls out and its function is killed before it records the
    // deployments; api's fails and the circuit breaker puts 1.0.0 back.
    fake.set_clock(T0 + 100);
    let bad = fake.push(SHOP_REPOSITORY, "1.1.0", &at(100));
    deliver(&engine, &bad, 100).await.expect("rolled out");
    let bad_api = fake.service(SHOP_CLUSTER, "api").task_definition;
    fake.killed_after_update_service(&shop_release("1.1.0"));
    fake.set_clock(T0 + 160);
    let breaker = fake
        .circuit_breaker_rolls_back(SHOP_CLUSTER, "api")
        .expect("1.0.0's deployment completed");
    assert_eq!(fake.service(SHOP_CLUSTER, "api").task_definition, good_api);

    let again = deliver(&engine, &bad, 170).await.expect("resumed");

    assert!(
        matches!(&again.outcome, Outcome::RolledBack { reason, .. }
            if reason.contains("service api is on") && reason.contains(&breaker)),
        "{again:?}"
    );
    let forced_onto_bad = fake
        .updates()
        .into_iter()
        .filter(|u| u.service == "api" && u.task_definition == bad_api)
        .count();
    assert_eq!(forced_onto_bad, 1, "the failed deployment is not repeated");
    assert_services_on(&fake, &good_tds, "1.0.0");
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("1.0.0"));
    assert_eq!(
        fake.record(&shop_release("1.1.0")).state,
        ReleaseState::RolledBack
    );
}

#[tokio::test]
async fn a_rollout_without_a_migration_that_lands_after_a_rollback_is_undone() {
    let (fake, engine, good_tds) = released_without_a_migration().await;

    // 1.1.0's UpdateService calls are slow; an operator rolls it back meanwhile.
    let bad = fake.push(SHOP_REPOSITORY, "1.1.0", &at(100));
    fake.pause("ecs:UpdateService");
    let mut rollout = pin!(engine.on_push(&bad, T0 + 100));
    // (its tag write, beside the UpdateService calls, done)
    for _ in 0..1_000 {
        if fake.waiting("ecs:UpdateService") == 3 && !fake.tag_writes_claimed() {
            break;
        }
        assert!(futures_util::poll!(rollout.as_mut()).is_pending());
    }
    let request = RollbackRequest {
        app: "shop".into(),
        environment: "prod".into(),
        to: None,
        reason: "checkout errors".into(),
        repository: None,
    };
    let rolled = engine.rollback(&request).await.expect("rolled back");
    assert!(
        matches!(rolled[0].outcome, Outcome::RolledBack { .. }),
        "{rolled:?}"
    );
    fake.resume("ecs:UpdateService");
    let late = only(rollout.await.expect("the late rollout is handled"));

    assert_eq!(late.outcome, Outcome::Superseded);
    assert_services_on(&fake, &good_tds, "1.0.0");
    let history = fake.parameter_history(SHOP_PARAMETER);
    for pair in history.windows(2) {
        assert_ne!(
            pair[0].value, pair[1].value,
            "one SSM version per write of a new value: {history:?}"
        );
    }
    let current = history.last().expect("a version");
    assert_eq!(
        (
            current.value.as_str(),
            current.labels.contains("known-good")
        ),
        ("1.0.0", true)
    );
}

fn alarm() -> AlarmChange {
    AlarmChange {
        alarm: "shop-prod-5xx".into(),
        state: AlarmState::Alarm,
        previous_state: Some(AlarmState::Ok),
        reason: "Threshold Crossed".into(),
    }
}

/// 1.0.0 and 1.1.0 known-good, 1.2.0 rolling out.
async fn rolling_out_a_third_release(engine: &FakeEngine, fake: &FakeAws) -> ReleaseId {
    for (tag, at_s) in [("1.0.0", 10), ("1.1.0", 100)] {
        let push = fake.push(SHOP_REPOSITORY, tag, &at(at_s));
        deliver(engine, &push, at_s).await.expect("claimed");
        migration_passes(engine, fake, tag).await;
        every_service_completes(engine, fake).await;
    }
    let push = fake.push(SHOP_REPOSITORY, "1.2.0", &at(200));
    deliver(engine, &push, 200).await.expect("claimed");
    migration_passes(engine, fake, "1.2.0").await;
    shop_release("1.2.0")
}

#[tokio::test]
async fn an_alarm_rollback_interrupted_by_update_service_is_finished_by_the_redelivered_alarm() {
    let (fake, engine) = estate();
    let bad = rolling_out_a_third_release(&engine, &fake).await;
    let known_good = fake.record(&shop_release("1.1.0")).task_definitions;
    fake.fail_next(
        "ecs:RestoreService",
        Some("worker"),
        "InternalServerError",
        true,
    );

    assert_retried(engine.on_alarm(&alarm()).await);
    assert_eq!(
        fake.record(&bad).state,
        ReleaseState::RollingBack,
        "recorded with its target"
    );

    let again = only(
        engine
            .on_alarm(&alarm())
            .await
            .expect("the redelivery finishes it"),
    );
    let Outcome::RolledBack { from, to, .. } = &again.outcome else {
        panic!("expected the rollback to be finished: {again:?}");
    };
    assert_eq!((from.as_str(), to.as_str()), ("1.2.0", "1.1.0"));
    for service in SHOP_SERVICES {
        assert_eq!(
            fake.service(SHOP_CLUSTER, service).task_definition,
            known_good[service],
            "{service}"
        );
    }
    assert_eq!(fake.record(&bad).state, ReleaseState::RolledBack);
    let head = fake.lane_head(&shop_lane());
    assert!(head.frozen && head.rolling_back.is_none());
    let mut history = fake.parameter_history(SHOP_PARAMETER);
    assert_ne!(
        history[history.len() - 2].value,
        "1.1.0",
        "the finished rollback wrote 1.1.0 once: {history:?}"
    );
    let current = history.pop().expect("a version");
    assert_eq!(
        (
            current.value.as_str(),
            current.labels.contains("known-good")
        ),
        ("1.1.0", true)
    );

    // A third delivery finds the known-good release running: nothing more.
    let third = only(engine.on_alarm(&alarm()).await.expect("handled"));
    assert!(
        matches!(third.outcome, Outcome::Ignored { .. }),
        "{third:?}"
    );
}

#[tokio::test]
async fn a_retried_operator_rollback_finishes_the_same_rollback_and_goes_no_further_back() {
    let (fake, engine) = estate();
    rolling_out_a_third_release(&engine, &fake).await;
    let request = RollbackRequest {
        app: "shop".into(),
        environment: "prod".into(),
        to: None,
        reason: "errors".into(),
        repository: None,
    };
    fake.fail_next("ssm:PutParameter", None, "InternalServerError", true);

    assert_retried(engine.rollback(&request).await);
    let again = only(
        engine
            .rollback(&request)
            .await
            .expect("the retry finishes it"),
    );

    let Outcome::RolledBack { to, .. } = &again.outcome else {
        panic!("{again:?}");
    };
    assert_eq!(to, "1.1.0", "the same target, not the release before it");
    let head = fake.lane_head(&shop_lane());
    assert_eq!(head.history.first().map(|k| k.tag.as_str()), Some("1.1.0"));
    assert_eq!(
        fake.record(&shop_release("1.1.0")).state,
        ReleaseState::Succeeded
    );
}

#[tokio::test]
async fn a_duplicate_alarm_during_an_unfinished_rollback_does_nothing() {
    let (fake, engine) = estate();
    rolling_out_a_third_release(&engine, &fake).await;
    fake.pause("ecs:RestoreService");
    let raised = alarm();
    let mut first = pin!(engine.on_alarm(&raised));
    for _ in 0..1_000 {
        if fake.waiting("ecs:RestoreService") == 3 {
            break;
        }
        assert!(futures_util::poll!(first.as_mut()).is_pending());
    }

    let duplicate = only(engine.on_alarm(&alarm()).await.expect("handled"));
    fake.resume("ecs:RestoreService");
    let first = only(first.await.expect("the rollback"));

    assert!(
        matches!(duplicate.outcome, Outcome::Ignored { ref reason } if reason.contains("under way")),
        "{duplicate:?}"
    );
    assert!(
        matches!(first.outcome, Outcome::RolledBack { .. }),
        "{first:?}"
    );
    assert_eq!(
        fake.count("ssm:PutParameter"),
        3 + 1,
        "three releases, one rollback"
    );
}

#[tokio::test]
async fn the_rolled_back_event_names_the_digest_and_the_state_the_release_left() {
    let (fake, engine) = estate();
    let bad = rolling_out_a_third_release(&engine, &fake).await;

    engine.on_alarm(&alarm()).await.expect("rolled back");

    let event = fake
        .events()
        .into_iter()
        .find(|e| e.release_id == bad.as_str() && e.state == ReleaseState::RolledBack)
        .expect("a ROLLED_BACK event");
    assert_eq!(event.digest, digest_of(SHOP_REPOSITORY, "1.2.0"));
    assert_eq!(event.previous_state, Some(ReleaseState::Deploying));
    assert!(
        event
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("shop-prod-5xx")),
        "{event:?}"
    );
}

#[tokio::test]
async fn the_lane_head_keeps_ten_known_good_releases_however_many_succeed() {
    let (fake, engine) = estate_with(EstateOptions {
        migration: false,
        ..EstateOptions::default()
    });
    for n in 0..14u64 {
        let push = fake.push(SHOP_REPOSITORY, &format!("1.{n}.0"), &at(10 + n * 10));
        deliver(&engine, &push, 10 + n * 10)
            .await
            .expect("released");
        every_service_completes(&engine, &fake).await;
    }
    let head = fake.lane_head(&shop_lane());
    let tags: Vec<&str> = head.history.iter().map(|k| k.tag.as_str()).collect();
    assert_eq!(tags.len(), 10, "{tags:?}");
    assert_eq!(tags.first(), Some(&"1.13.0"));
    assert_eq!(tags.last(), Some(&"1.4.0"));
}

#[tokio::test]
async fn a_known_good_label_that_failed_is_applied_by_the_redelivered_completion() {
    let (fake, engine) = estate();
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    deliver(&engine, &push, 10).await.expect("claimed");
    migration_passes(&engine, &fake, "1.0.0").await;
    let mut changes = Vec::new();
    for service in SHOP_SERVICES {
        let id = fake.last_deployment(SHOP_CLUSTER, service);
        changes.push(deployment(
            SHOP_CLUSTER,
            service,
            &id,
            DeploymentOutcome::Completed,
        ));
    }
    for change in &changes[..2] {
        engine
            .on_deployment(change, T0 + 600)
            .await
            .expect("progress");
    }
    fake.fail_next(
        "ssm:LabelParameterVersion",
        None,
        "InternalServerError",
        true,
    );

    assert_retried(engine.on_deployment(&changes[2], T0 + 600).await);
    let again = engine
        .on_deployment(&changes[2], T0 + 601)
        .await
        .expect("the redelivery");

    assert_eq!(again.outcome, Outcome::Succeeded);
    assert_released(&fake, "1.0.0");
    let third = engine
        .on_deployment(&changes[2], T0 + 602)
        .await
        .expect("a duplicate");
    assert!(
        matches!(third.outcome, Outcome::Ignored { .. }),
        "{third:?}"
    );
}

#[tokio::test]
async fn an_image_tag_read_failing_past_the_retries_is_resumed_by_the_redelivered_push() {
    fails_once_then_resumes("ssm:GetParameter", None).await;
}

#[tokio::test]
async fn a_registration_failing_in_a_release_without_a_migration_is_registered_and_rolled_out_by_the_redelivered_push(
) {
    let (fake, engine) = estate_with(EstateOptions {
        migration: false,
        ..EstateOptions::default()
    });
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    fake.fail_next(
        "ecs:RegisterTaskDefinition",
        None,
        "InternalServerError",
        true,
    );
    assert_retried(deliver(&engine, &push, 10).await);
    let record = fake.record(&shop_release("1.0.0"));
    assert_eq!(record.state, ReleaseState::Deploying);
    assert!(record.task_definitions.is_empty(), "nothing registered yet");

    let again = deliver(&engine, &push, 11)
        .await
        .expect("the redelivery resumes");

    let Outcome::Deploying { deployments } = &again.outcome else {
        panic!("expected the rollout: {again:?}");
    };
    assert_eq!(deployments.len(), SHOP_SERVICES.len());
    assert_eq!(
        every_service_completes(&engine, &fake).await.outcome,
        Outcome::Succeeded
    );
    assert_released(&fake, "1.0.0");
}

#[tokio::test]
async fn a_release_resumed_after_one_registration_failed_registers_each_family_once() {
    let (fake, engine) = estate();
    fake.fail_next(
        "ecs:RegisterTaskDefinition",
        Some("shop-api"),
        "ThrottlingException",
        true,
    );
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));

    assert_retried(deliver(&engine, &push, 10).await);
    deliver(&engine, &push, 11).await.expect("resumed");

    let mut families: Vec<String> = fake.registrations().into_iter().map(|r| r.family).collect();
    families.sort();
    assert_eq!(
        families,
        ["shop-api", "shop-migrate", "shop-scheduler", "shop-worker"],
        "one revision per family"
    );
    migration_passes(&engine, &fake, "1.0.0").await;
    every_service_completes(&engine, &fake).await;
    assert_released(&fake, "1.0.0");
}

#[tokio::test]
async fn a_release_resumed_after_its_migration_failed_to_start_writes_its_tag_once() {
    let (fake, engine) = estate();
    fake.fail_next("ecs:RunTask", None, "ThrottlingException", true);
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));

    assert_retried(deliver(&engine, &push, 10).await);
    deliver(&engine, &push, 11).await.expect("resumed");

    let values: Vec<String> = fake
        .parameter_history(SHOP_PARAMETER)
        .into_iter()
        .map(|v| v.value)
        .collect();
    assert_eq!(
        values,
        ["0.9.0", "1.0.0"],
        "one SSM version for the release"
    );
}

#[tokio::test]
async fn a_first_release_that_fails_after_rewriting_the_tag_the_services_run_adds_no_ssm_version() {
    let (fake, engine) = estate();
    // 1.0.0 reaches the services, then fails on one of them: the tag stays
    // 1.0.0 (a first release has no known-good release to go back to).
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    deliver(&engine, &push, 10).await.expect("claimed");
    migration_passes(&engine, &fake, "1.0.0").await;
    let id = fake.last_deployment(SHOP_CLUSTER, "api");
    let failed = deployment(SHOP_CLUSTER, "api", &id, DeploymentOutcome::Failed);
    engine
        .on_deployment(&failed, T0 + 400)
        .await
        .expect("failed");
    let versions_before = fake.parameter_history(SHOP_PARAMETER).len();
    // Its retry reads 1.0.0 as the tag to restore (and finds it named: no
    // write), and its migration fails.
    engine
        .retry(
            &ferry_core::engine::RetryRequest {
                app: "shop".into(),
                environment: "prod".into(),
                repository: None,
                tag: None,
                digest: None,
                force: false,
            },
            REGION,
            T0 + 500,
        )
        .await
        .expect("retried");
    let task = fake.tasks().last().cloned().expect("the retry's migration");
    let stopped = migration_exited(&task, 1, T0 + 510, T0 + 520);
    engine
        .on_task_stopped(&stopped, T0 + 520)
        .await
        .expect("failed");

    let history = fake.parameter_history(SHOP_PARAMETER);
    assert_eq!(
        history.len(),
        versions_before,
        "the retry found 1.0.0 named already and restored nothing: {history:?}"
    );
}

#[tokio::test]
async fn a_claimed_release_interrupted_in_preflight_keeps_the_tag_to_restore_it_read_at_its_claim()
{
    let (fake, engine) = estate();
    // 1.0.0 migrates (it wrote its tag); 1.1.0 supersedes it and its secrets
    // check fails once; resumed, its migration fails.
    let first = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    deliver(&engine, &first, 10).await.expect("claimed");
    fake.fail_next("secrets:DescribeSecret", None, "ThrottlingException", true);
    let second = fake.push(SHOP_REPOSITORY, "1.1.0", &at(20));
    assert_retried(deliver(&engine, &second, 20).await);
    deliver(&engine, &second, 21).await.expect("resumed");
    let task = fake.migration_task(&shop_release("1.1.0"));
    let stopped = migration_exited(&task, 1, T0 + 30, T0 + 40);
    engine
        .on_task_stopped(&stopped, T0 + 40)
        .await
        .expect("failed");

    assert_eq!(
        fake.parameter(SHOP_PARAMETER).as_deref(),
        Some("0.9.0"),
        "the tag the services run, not the superseded release's"
    );
}

/// 1.0.0 is pushed and claimed; its migration exits 1 at T0 + 30 (the event
/// not yet delivered).
async fn migration_of_1_0_0_exits_1(engine: &FakeEngine, fake: &FakeAws) -> (Push, TaskStopped) {
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    deliver(engine, &push, 10).await.expect("claimed");
    let task = fake.migration_task(&shop_release("1.0.0"));
    (push, migration_exited(&task, 1, T0 + 20, T0 + 30))
}

#[tokio::test]
async fn a_failed_migration_whose_tag_restore_is_throttled_restores_it_when_the_event_is_redelivered(
) {
    let (fake, engine) = estate();
    let (_, stopped) = migration_of_1_0_0_exits_1(&engine, &fake).await;
    fake.fail_next("ssm:PutParameter", None, "ThrottlingException", true);

    assert_retried(engine.on_task_stopped(&stopped, T0 + 30).await);
    engine
        .on_task_stopped(&stopped, T0 + 31)
        .await
        .expect("redelivered");

    assert_eq!(
        fake.record(&shop_release("1.0.0")).state,
        ReleaseState::Failed
    );
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("0.9.0"));
}

#[tokio::test]
async fn a_redelivered_push_does_not_run_again_a_migration_whose_failure_was_interrupted() {
    let (fake, engine) = estate();
    let (push, stopped) = migration_of_1_0_0_exits_1(&engine, &fake).await;
    fake.fail_next("ssm:PutParameter", None, "ThrottlingException", true);
    assert_retried(engine.on_task_stopped(&stopped, T0 + 30).await);

    let again = deliver(&engine, &push, 31).await.expect("redelivered push");

    assert_eq!(
        again.outcome,
        Outcome::Duplicate {
            state: ReleaseState::Migrating
        }
    );
    assert_eq!(fake.count("ecs:RunTask"), 1, "the migration ran once");
    engine
        .on_task_stopped(&stopped, T0 + 32)
        .await
        .expect("the STOPPED event redelivered");
    assert_eq!(
        fake.record(&shop_release("1.0.0")).state,
        ReleaseState::Failed
    );
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("0.9.0"));
}

#[tokio::test]
async fn a_failed_release_whose_settle_is_throttled_restores_its_tag_once() {
    let (fake, engine) = estate();
    let (_, stopped) = migration_of_1_0_0_exits_1(&engine, &fake).await;
    fake.fail_next("ledger:Settle", None, "ThrottlingException", true);

    assert_retried(engine.on_task_stopped(&stopped, T0 + 30).await);
    engine
        .on_task_stopped(&stopped, T0 + 31)
        .await
        .expect("redelivered");

    let values: Vec<String> = fake
        .parameter_history(SHOP_PARAMETER)
        .into_iter()
        .map(|v| v.value)
        .collect();
    assert_eq!(values, ["0.9.0", "1.0.0", "0.9.0"]);
}

#[tokio::test]
async fn a_release_superseding_a_first_release_that_recorded_no_tag_to_restore_restores_the_tag_the_services_run(
) {
    let (fake, engine) = estate();
    // 1.0.0's claim-time read of the tag fails, and so does the mark that
    // would resume it: it stays CLAIMED with no tag to restore recorded.
    fake.fail_next("ssm:GetParameter", None, "ThrottlingException", true);
    fake.fail_next("ledger:Update", None, "ThrottlingException", true);
    let first = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    assert_retried(deliver(&engine, &first, 10).await);
    let _ = deliver(&engine, &first, 11).await;
    let second = fake.push(SHOP_REPOSITORY, "1.1.0", &at(20));
    deliver(&engine, &second, 20).await.expect("claimed");
    let task = fake.migration_task(&shop_release("1.1.0"));
    let stopped = migration_exited(&task, 1, T0 + 30, T0 + 40);
    engine
        .on_task_stopped(&stopped, T0 + 40)
        .await
        .expect("failed");

    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("0.9.0"));
}
