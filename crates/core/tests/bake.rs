//! Verified by traffic: after every service completed, the smoke test (when the
//! environment has one), then the bake — the guarding alarms watched until a
//! timer ends it — and only then known-good. Scenarios on in-memory AWS.

mod fakes;

use fakes::*;
use ferry_core::engine::{
    AlarmChange, AlarmState, BlessRequest, Decision, DeploymentOutcome, Outcome, TaskStopped,
};
use ferry_core::release::{ReleaseId, ReleaseState};

const ALARM: &str = "shop-prod-5xx";

fn only(decisions: Vec<Decision>) -> Decision {
    assert_eq!(decisions.len(), 1, "decisions: {decisions:?}");
    decisions.into_iter().next().unwrap()
}

fn baking_estate(bake: Option<&'static str>, verify: bool) -> (FakeAws, FakeEngine) {
    estate_with(EstateOptions {
        bake,
        verify,
        ..EstateOptions::default()
    })
}

/// `tag` pushed at `t`, migrated, and every service's deployment completed at
/// `t + 100`; the decision on the last completion.
async fn roll_out(engine: &FakeEngine, fake: &FakeAws, tag: &str, t: u64) -> Decision {
    let last = all_but_the_last_completed(engine, fake, tag, t).await;
    engine
        .on_deployment(&last, T0 + t + 100)
        .await
        .expect("handled")
}

fn raised() -> AlarmChange {
    AlarmChange {
        alarm: ALARM.into(),
        state: AlarmState::Alarm,
        previous_state: Some(AlarmState::Ok),
        reason: "Threshold Crossed: 5xx above 1%".into(),
    }
}

fn known_good_label_on(fake: &FakeAws, tag: &str) -> bool {
    fake.parameter_history(SHOP_PARAMETER)
        .iter()
        .any(|v| v.value == tag && v.labels.contains("known-good"))
}

fn states(fake: &FakeAws, id: &ReleaseId) -> Vec<String> {
    fake.transitions(id)
        .into_iter()
        .map(|(state, _)| state)
        .collect()
}

/// 1.0.0 rolled out at T0 + 10 and its bake ended at T0 + 900: known-good.
async fn first_release_known_good(engine: &FakeEngine, fake: &FakeAws) {
    roll_out(engine, fake, "1.0.0", 10).await;
    engine
        .on_bake_ended(&shop_release("1.0.0"), T0 + 900)
        .await
        .expect("ended");
}

/// 1.0.0 known-good (baked and ended), then `tag` rolled out and baking.
async fn baking_after_a_known_good(engine: &FakeEngine, fake: &FakeAws, tag: &str) -> ReleaseId {
    first_release_known_good(engine, fake).await;
    let decision = roll_out(engine, fake, tag, 1_000).await;
    assert!(
        matches!(decision.outcome, Outcome::Baking { .. }),
        "{decision:?}"
    );
    shop_release(tag)
}

#[tokio::test]
async fn a_release_bakes_after_its_rollout_and_is_known_good_only_when_the_timer_ends_it() {
    let (fake, engine) = baking_estate(Some("10m"), false);

    let last = roll_out(&engine, &fake, "1.0.0", 10).await;

    let id = shop_release("1.0.0");
    assert_eq!(
        last.outcome,
        Outcome::Baking {
            until: T0 + 110 + 600
        }
    );
    assert_eq!(
        fake.timer(&id),
        Some(T0 + 110 + 600),
        "one timer for the end of the bake"
    );
    assert_eq!(fake.record(&id).state, ReleaseState::Baking);
    assert!(
        !known_good_label_on(&fake, "1.0.0"),
        "the label moves only at the end of the bake"
    );
    assert_eq!(fake.lane_head(&shop_lane()).known_good, None);

    let ended = engine
        .on_bake_ended(&id, T0 + 710)
        .await
        .expect("the timer");

    assert_eq!(ended.outcome, Outcome::Succeeded);
    assert_eq!(fake.record(&id).state, ReleaseState::Succeeded);
    assert!(known_good_label_on(&fake, "1.0.0"));
    assert_eq!(
        fake.lane_head(&shop_lane()).known_good.map(|k| k.id),
        Some(id.clone())
    );
    assert_eq!(
        states(&fake, &id),
        ["CLAIMED", "MIGRATING", "DEPLOYING", "BAKING", "SUCCEEDED"]
    );
}

#[tokio::test]
async fn without_a_bake_key_the_window_is_the_slowest_alarms_evaluation_time() {
    let (fake, engine) = baking_estate(None, false);
    fake.set_alarm(ALARM, AlarmState::Ok, T0, 15); // 60 s × 15

    let last = roll_out(&engine, &fake, "1.0.0", 10).await;

    assert_eq!(
        last.outcome,
        Outcome::Baking {
            until: T0 + 110 + 900
        }
    );
}

#[tokio::test]
async fn an_alarm_seconds_after_the_rollout_rolls_the_baking_release_back_and_its_timer_then_does_nothing(
) {
    let (fake, engine) = baking_estate(Some("10m"), false);
    let bad = baking_after_a_known_good(&engine, &fake, "1.1.0").await;
    let good = fake.record(&shop_release("1.0.0")).task_definitions;

    let rolled = only(engine.on_alarm(&raised()).await.expect("handled"));

    assert!(
        matches!(rolled.outcome, Outcome::RolledBack { ref to, .. } if to == "1.0.0"),
        "{rolled:?}"
    );
    for service in SHOP_SERVICES {
        assert_eq!(
            fake.service(SHOP_CLUSTER, service).task_definition,
            good[service],
            "{service}"
        );
    }
    assert_eq!(fake.record(&bad).state, ReleaseState::RolledBack);
    assert_eq!(
        fake.record(&bad).rolled_back_from,
        Some(ReleaseState::Baking)
    );
    assert!(fake.lane_head(&shop_lane()).frozen);

    let late = engine
        .on_bake_ended(&bad, T0 + 1_700)
        .await
        .expect("the timer");
    assert_eq!(
        late.outcome,
        Outcome::Duplicate {
            state: ReleaseState::RolledBack
        }
    );
    assert_eq!(fake.record(&bad).state, ReleaseState::RolledBack);
}

#[tokio::test]
async fn an_alarm_whose_event_was_lost_but_is_in_alarm_at_the_end_of_the_bake_rolls_back() {
    let (fake, engine) = baking_estate(Some("10m"), false);
    fake.set_alarm(ALARM, AlarmState::Ok, T0, 1);
    let bad = baking_after_a_known_good(&engine, &fake, "1.1.0").await;
    // Raised after the rollout began; its event never reached ferry.
    fake.set_alarm(ALARM, AlarmState::Alarm, T0 + 1_200, 1);

    let ended = engine
        .on_bake_ended(&bad, T0 + 1_700)
        .await
        .expect("the timer");

    assert!(
        matches!(ended.outcome, Outcome::RolledBack { ref reason, .. } if reason.contains(ALARM) && reason.contains("end of the bake")),
        "{ended:?}"
    );
    assert_eq!(fake.record(&bad).state, ReleaseState::RolledBack);
    assert!(known_good_label_on(&fake, "1.0.0"));
}

#[tokio::test]
async fn an_alarm_already_in_alarm_before_the_release_does_not_roll_it_back_by_itself() {
    let (fake, engine) = baking_estate(Some("10m"), false);
    first_release_known_good(&engine, &fake).await;
    // In ALARM since before 1.1.0 (the release that may fix it) began its rollout.
    fake.set_alarm(ALARM, AlarmState::Alarm, T0 + 950, 1);
    let fix = {
        roll_out(&engine, &fake, "1.1.0", 1_000).await;
        shop_release("1.1.0")
    };

    let ended = engine
        .on_bake_ended(&fix, T0 + 1_700)
        .await
        .expect("the timer");

    assert_eq!(ended.outcome, Outcome::Succeeded);
    let record = fake.record(&fix);
    assert!(
        record
            .reason
            .as_deref()
            .is_some_and(|r| r.contains(ALARM) && r.contains("before the rollout")),
        "{record:?}"
    );
}

#[tokio::test]
async fn the_end_of_bake_timer_delivered_twice_has_one_outcome() {
    let (fake, engine) = baking_estate(Some("10m"), false);
    roll_out(&engine, &fake, "1.0.0", 10).await;
    let id = shop_release("1.0.0");

    let first = engine
        .on_bake_ended(&id, T0 + 710)
        .await
        .expect("the timer");
    let second = engine.on_bake_ended(&id, T0 + 711).await.expect("again");

    assert_eq!(first.outcome, Outcome::Succeeded);
    assert_eq!(
        second.outcome,
        Outcome::Duplicate {
            state: ReleaseState::Succeeded
        }
    );
    assert_eq!(fake.count("ssm:LabelParameterVersion"), 1);
}

#[tokio::test]
async fn a_newer_push_during_the_bake_supersedes_the_baking_release() {
    let (fake, engine) = baking_estate(Some("10m"), false);
    let old = baking_after_a_known_good(&engine, &fake, "1.1.0").await;

    let newer = fake.push(SHOP_REPOSITORY, "1.2.0", &at(1_200));
    let decision = only(engine.on_push(&newer, T0 + 1_200).await.expect("handled"));

    assert!(
        matches!(decision.outcome, Outcome::Migrating { .. }),
        "{decision:?}"
    );
    assert_eq!(fake.record(&old).state, ReleaseState::Superseded);
    let late = engine
        .on_bake_ended(&old, T0 + 1_700)
        .await
        .expect("the timer");
    assert_eq!(
        late.outcome,
        Outcome::Duplicate {
            state: ReleaseState::Superseded
        }
    );
}

#[tokio::test]
async fn an_operator_can_end_a_bake_early_and_the_alarms_are_still_judged() {
    let (fake, engine) = baking_estate(Some("1h"), false);
    roll_out(&engine, &fake, "1.0.0", 10).await;
    let request = BlessRequest {
        app: "shop".into(),
        environment: "prod".into(),
        repository: None,
    };

    let blessed = only(engine.bless(&request).await.expect("blessed"));

    assert_eq!(blessed.outcome, Outcome::Succeeded);
    assert_eq!(fake.count("cloudwatch:DescribeAlarms"), 1);
    let again = engine.bless(&request).await;
    assert!(
        matches!(again, Err(ref e) if !e.is_retryable()),
        "nothing is baking: {again:?}"
    );
}

fn smoke_stopped(fake: &FakeAws, tag: &str, exit_code: i32, at_seconds: u64) -> TaskStopped {
    let record = fake.record(&shop_release(tag));
    let task_arn = record.verify_task.clone().expect("a smoke-test task");
    let task = fake
        .tasks()
        .into_iter()
        .find(|t| t.arn == task_arn)
        .expect("the task ECS ran");
    let mut stopped = migration_exited(&task, exit_code, T0 + at_seconds - 20, T0 + at_seconds);
    for container in &mut stopped.task.containers {
        container.name = "smoke".into();
    }
    stopped
}

/// The same stop with a non-essential sidecar that ECS killed with the task.
fn with_a_sidecar_killed(mut stopped: TaskStopped) -> TaskStopped {
    stopped
        .task
        .containers
        .push(ferry_core::release::StoppedContainer {
            name: "log-router".into(),
            exit_code: Some(137),
            reason: None,
        });
    stopped
}

#[tokio::test]
async fn a_smoke_test_runs_the_release_digest_after_the_rollout_and_its_pass_starts_the_bake() {
    let (fake, engine) = baking_estate(Some("10m"), true);

    let last = roll_out(&engine, &fake, "1.0.0", 10).await;

    let Outcome::Verifying { task } = &last.outcome else {
        panic!("expected the smoke test to run: {last:?}");
    };
    let smoke = fake
        .tasks()
        .into_iter()
        .find(|t| &t.arn == task)
        .expect("RunTask");
    assert_eq!(smoke.started_by, shop_release("1.0.0").started_by());
    let registered = fake
        .registrations()
        .into_iter()
        .find(|r| r.family == SMOKE_FAMILY)
        .expect("a smoke-test revision pinned to the digest");
    assert_eq!(smoke.task_definition, registered.arn);
    assert_eq!(
        fake.record(&shop_release("1.0.0")).state,
        ReleaseState::Verifying
    );

    let passed = engine
        .on_task_stopped(&smoke_stopped(&fake, "1.0.0", 0, 200), T0 + 200)
        .await
        .expect("the gate");

    assert_eq!(
        passed.outcome,
        Outcome::Baking {
            until: T0 + 200 + 600
        }
    );
    let id = shop_release("1.0.0");
    assert_eq!(
        states(&fake, &id),
        ["CLAIMED", "MIGRATING", "DEPLOYING", "VERIFYING", "BAKING"]
    );
}

#[tokio::test]
async fn a_smoke_test_that_exits_1_rolls_the_release_back() {
    let (fake, engine) = baking_estate(Some("0s"), true);
    roll_out(&engine, &fake, "1.0.0", 10).await;
    engine
        .on_task_stopped(&smoke_stopped(&fake, "1.0.0", 0, 200), T0 + 200)
        .await
        .expect("1.0.0 passes");
    assert_eq!(
        fake.record(&shop_release("1.0.0")).state,
        ReleaseState::Succeeded
    );
    roll_out(&engine, &fake, "1.1.0", 1_000).await;
    let good = fake.record(&shop_release("1.0.0")).task_definitions;

    let failed = engine
        .on_task_stopped(&smoke_stopped(&fake, "1.1.0", 1, 1_200), T0 + 1_200)
        .await
        .expect("the gate");

    let Outcome::RolledBack { to, reason, .. } = &failed.outcome else {
        panic!("expected a rollback: {failed:?}");
    };
    assert_eq!(to, "1.0.0");
    assert!(
        reason.contains("smoke test failed") && reason.contains("exited with code 1"),
        "{reason}"
    );
    for service in SHOP_SERVICES {
        assert_eq!(
            fake.service(SHOP_CLUSTER, service).task_definition,
            good[service],
            "{service}"
        );
    }
    assert_eq!(
        fake.record(&shop_release("1.1.0")).rolled_back_from,
        Some(ReleaseState::Verifying)
    );
}

#[tokio::test]
async fn a_smoke_test_failing_a_first_release_fails_it() {
    let (fake, engine) = baking_estate(Some("0s"), true);
    roll_out(&engine, &fake, "1.0.0", 10).await;

    let failed = engine
        .on_task_stopped(&smoke_stopped(&fake, "1.0.0", 2, 200), T0 + 200)
        .await
        .expect("the gate");

    assert!(
        matches!(failed.outcome, Outcome::Failed { .. }),
        "{failed:?}"
    );
    assert_eq!(
        fake.lane_head(&shop_lane()).in_flight,
        None,
        "the lane is free"
    );
}

#[tokio::test]
async fn a_known_good_label_that_failed_at_the_end_of_the_bake_is_applied_by_the_redelivered_timer()
{
    let (fake, engine) = baking_estate(Some("10m"), false);
    roll_out(&engine, &fake, "1.0.0", 10).await;
    let id = shop_release("1.0.0");
    fake.fail_next(
        "ssm:LabelParameterVersion",
        None,
        "InternalServerError",
        true,
    );

    let first = engine.on_bake_ended(&id, T0 + 710).await;
    assert!(matches!(first, Err(ref e) if e.is_retryable()), "{first:?}");
    assert!(!known_good_label_on(&fake, "1.0.0"));

    let again = engine
        .on_bake_ended(&id, T0 + 711)
        .await
        .expect("the redelivery");

    assert_eq!(again.outcome, Outcome::Succeeded);
    assert!(known_good_label_on(&fake, "1.0.0"));
    let third = engine
        .on_bake_ended(&id, T0 + 712)
        .await
        .expect("a duplicate");
    assert_eq!(
        third.outcome,
        Outcome::Duplicate {
            state: ReleaseState::Succeeded
        }
    );
}

/// `tag` pushed at `t` and migrated; every deployment but the last completed.
/// The last completion's event, to deliver.
async fn all_but_the_last_completed(
    engine: &FakeEngine,
    fake: &FakeAws,
    tag: &str,
    t: u64,
) -> ferry_core::engine::DeploymentChange {
    let push = fake.push(SHOP_REPOSITORY, tag, &at(t));
    engine.on_push(&push, T0 + t).await.expect("claimed");
    let task = fake.migration_task(&shop_release(tag));
    let stopped = migration_exited(&task, 0, T0 + t + 5, T0 + t + 50);
    engine
        .on_task_stopped(&stopped, T0 + t + 50)
        .await
        .expect("rolled out");
    let (last, first) = SHOP_SERVICES.split_last().expect("three services");
    for service in first {
        let id = fake.last_deployment(SHOP_CLUSTER, service);
        let change = deployment(SHOP_CLUSTER, service, &id, DeploymentOutcome::Completed);
        engine
            .on_deployment(&change, T0 + t + 100)
            .await
            .expect("handled");
    }
    let id = fake.last_deployment(SHOP_CLUSTER, last);
    deployment(SHOP_CLUSTER, last, &id, DeploymentOutcome::Completed)
}

#[tokio::test]
async fn a_smoke_test_ecs_cannot_start_for_now_fails_the_invocation_and_starts_on_the_redelivery() {
    let (fake, engine) = baking_estate(Some("0s"), true);
    let last = all_but_the_last_completed(&engine, &fake, "1.0.0", 10).await;
    fake.fail_next("ecs:RunTask", None, "ThrottlingException", true);

    let error = engine
        .on_deployment(&last, T0 + 110)
        .await
        .expect_err("the invocation fails, for Lambda to retry");

    assert!(error.is_retryable(), "{error}");
    let record = fake.record(&shop_release("1.0.0"));
    assert_eq!(record.state, ReleaseState::Deploying);
    assert!(record.interrupted.is_some(), "marked for the redelivery");

    let again = engine
        .on_deployment(&last, T0 + 120)
        .await
        .expect("the redelivered event");
    assert!(
        matches!(again.outcome, Outcome::Verifying { .. }),
        "{again:?}"
    );
    assert_eq!(
        fake.count("ecs:RunTask"),
        3,
        "migration, refused, smoke test"
    );
}

#[tokio::test]
async fn a_smoke_test_ecs_refuses_to_start_fails_the_release_without_retrying() {
    let (fake, engine) = baking_estate(Some("0s"), true);
    let last = all_but_the_last_completed(&engine, &fake, "1.0.0", 10).await;
    fake.fail_next("ecs:RunTask", None, "ClientException", false);

    let decision = engine
        .on_deployment(&last, T0 + 110)
        .await
        .expect("a verdict, not a retry");

    let Outcome::Failed { reason } = &decision.outcome else {
        panic!("expected the first release to fail: {decision:?}");
    };
    assert!(
        reason.contains("starting the smoke test") && reason.contains("ClientException"),
        "{reason}"
    );
    assert_eq!(fake.lane_head(&shop_lane()).in_flight, None);
}

#[tokio::test]
async fn a_smoke_test_that_outlives_its_timeout_fails_even_with_exit_zero() {
    let (fake, engine) = baking_estate(Some("0s"), true);
    let last = roll_out(&engine, &fake, "1.0.0", 10).await;
    assert!(
        matches!(last.outcome, Outcome::Verifying { .. }),
        "{last:?}"
    );
    // started at T0 + 110; the estate's smoke-test timeout is 5 minutes
    assert_eq!(
        fake.record(&shop_release("1.0.0")).verify_deadline,
        Some(T0 + 110 + 300)
    );

    let late = engine
        .on_task_stopped(&smoke_stopped(&fake, "1.0.0", 0, 111 + 300), T0 + 411)
        .await
        .expect("the gate");

    let Outcome::Failed { reason } = &late.outcome else {
        panic!("a smoke test past its deadline fails: {late:?}");
    };
    assert!(reason.contains("outlived its timeout"), "{reason}");
}

#[tokio::test]
async fn an_operator_ends_the_bake_of_the_repository_named_and_no_other() {
    let (fake, engine) = baking_estate(Some("1h"), false);
    roll_out(&engine, &fake, "1.0.0", 10).await;
    let request = |repository: &str| BlessRequest {
        app: "shop".into(),
        environment: "prod".into(),
        repository: Some(repository.into()),
    };

    let other = engine.bless(&request("shop-assets")).await;
    assert!(
        matches!(other, Err(ref e) if !e.is_retryable() && e.to_string().contains("no release is baking")),
        "{other:?}"
    );
    assert_eq!(
        fake.record(&shop_release("1.0.0")).state,
        ReleaseState::Baking
    );

    let blessed = only(engine.bless(&request("shop")).await.expect("blessed"));
    assert_eq!(blessed.outcome, Outcome::Succeeded);
}

#[tokio::test]
async fn the_end_of_the_bake_is_recorded_on_the_release() {
    let (fake, engine) = baking_estate(Some("10m"), false);
    roll_out(&engine, &fake, "1.0.0", 10).await;
    assert_eq!(
        fake.record(&shop_release("1.0.0")).bake_ends_at,
        Some(T0 + 110 + 600)
    );
}

#[tokio::test]
async fn an_environment_without_alarms_is_known_good_at_its_rollout_without_reading_alarms() {
    let (fake, engine) = estate();
    let push = fake.push("blog-web", "sha-1111111", &at(10));
    engine.on_push(&push, T0 + 10).await.expect("rolled out");
    let id = fake.last_deployment(BLOG_CLUSTER, "web");
    let change = deployment(BLOG_CLUSTER, "web", &id, DeploymentOutcome::Completed);

    let done = engine
        .on_deployment(&change, T0 + 20)
        .await
        .expect("handled");

    assert_eq!(done.outcome, Outcome::Succeeded);
    assert_eq!(fake.count("cloudwatch:DescribeAlarms"), 0);
    assert_eq!(fake.count("scheduler:CreateSchedule"), 0, "no timer");
}

#[tokio::test]
async fn a_smoke_test_is_judged_on_its_essential_containers_only() {
    let (fake, engine) = baking_estate(Some("10m"), true);
    roll_out(&engine, &fake, "1.0.0", 10).await;
    let stopped = with_a_sidecar_killed(smoke_stopped(&fake, "1.0.0", 0, 200));

    let passed = engine
        .on_task_stopped(&stopped, T0 + 200)
        .await
        .expect("the gate");

    assert!(
        matches!(passed.outcome, Outcome::Baking { .. }),
        "{passed:?}"
    );
}

#[tokio::test]
async fn a_release_without_a_migration_runs_its_smoke_test_after_the_rollout() {
    let (fake, engine) = estate_with(EstateOptions {
        migration: false,
        verify: true,
        bake: Some("0s"),
        ..EstateOptions::default()
    });
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    engine.on_push(&push, T0 + 10).await.expect("rolled out");

    let last = every_shop_service_completes(&engine, &fake, T0 + 100).await;
    assert!(
        matches!(last.outcome, Outcome::Verifying { .. }),
        "{last:?}"
    );
    let stopped = with_a_sidecar_killed(smoke_stopped(&fake, "1.0.0", 0, 200));
    let passed = engine
        .on_task_stopped(&stopped, T0 + 200)
        .await
        .expect("the gate");
    assert_eq!(
        passed.outcome,
        Outcome::Succeeded,
        "judged on its essential container only"
    );
}

#[tokio::test]
async fn the_bake_holds_against_a_release_only_what_changed_since_its_rollout_began() {
    let (fake, engine) = baking_estate(Some("10m"), false);
    first_release_known_good(&engine, &fake).await;
    // 1.1.0 is claimed at T0 + 1_000 and rolls out at T0 + 1_050, when its
    // migration passes; the alarm went to ALARM in between (its event lost).
    fake.set_alarm(ALARM, AlarmState::Alarm, T0 + 1_020, 1);
    roll_out(&engine, &fake, "1.1.0", 1_000).await;
    assert_eq!(
        fake.record(&shop_release("1.1.0")).rollout_started_at,
        Some(T0 + 1_050)
    );

    let ended = engine
        .on_bake_ended(&shop_release("1.1.0"), T0 + 1_700)
        .await
        .expect("the timer");

    assert_eq!(ended.outcome, Outcome::Succeeded);
}
