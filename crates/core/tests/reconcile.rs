//! Self-healing: the reconcile pass reads what AWS says and brings each lane
//! to where its lost or late events would have. Scenarios on in-memory AWS: in
//! each, an event ferry relies on never arrives (or a step is left unfinished),
//! and one pass ends the lane where the event would have.

mod fakes;

use std::pin::pin;

use fakes::*;
use ferry_core::decide::reconcile::{STALLED_AFTER, TASK_GRACE, TIMER_GRACE};
use ferry_core::engine::{
    AlarmChange, AlarmState, Decision, DeploymentOutcome, Outcome, ReconcileRequest,
};
use ferry_core::ports::{NoticeKind, RolloutState};
use ferry_core::release::{ReleaseId, ReleaseState};

const ALARM: &str = "shop-prod-5xx";

/// One pass over the shop lane at `now`.
async fn reconcile_shop(engine: &FakeEngine, now: u64) -> Decision {
    let request = ReconcileRequest {
        app: Some("shop".into()),
        environment: Some("prod".into()),
        repository: None,
    };
    let mut decisions = engine
        .reconcile(&request, REGION, now)
        .await
        .expect("the pass");
    assert_eq!(decisions.len(), 1, "one lane: {decisions:?}");
    decisions.remove(0)
}

fn corrections(decision: &Decision) -> Vec<String> {
    match &decision.outcome {
        Outcome::Reconciled { corrections } => corrections.clone(),
        other => panic!("expected corrections, got {other:?}"),
    }
}

/// `tag` pushed at `t`, migrated (exit 0) at `t + 50`: services deploying.
async fn deploying(engine: &FakeEngine, fake: &FakeAws, tag: &str, t: u64) -> ReleaseId {
    let push = fake.push(SHOP_REPOSITORY, tag, &at(t));
    engine.on_push(&push, T0 + t).await.expect("claimed");
    let id = shop_release(tag);
    let task = fake.migration_task(&id);
    engine
        .on_task_stopped(
            &migration_exited(&task, 0, T0 + t + 5, T0 + t + 50),
            T0 + t + 50,
        )
        .await
        .expect("rolled out");
    id
}

/// `tag` released all the way (bake 0s): the lane's known-good release.
async fn known_good(engine: &FakeEngine, fake: &FakeAws, tag: &str, t: u64) -> ReleaseId {
    let id = deploying(engine, fake, tag, t).await;
    let last = every_shop_service_completes(engine, fake, T0 + t + 100).await;
    assert_eq!(last.outcome, Outcome::Succeeded);
    id
}

fn shop_services_run(fake: &FakeAws, arns: &std::collections::BTreeMap<String, String>) -> bool {
    SHOP_SERVICES
        .iter()
        .all(|s| arns.get(*s) == Some(&fake.service(SHOP_CLUSTER, s).task_definition))
}

#[tokio::test]
async fn a_push_whose_event_was_lost_is_released_with_the_id_its_event_would_have_had() {
    let (fake, engine) = estate();
    known_good(&engine, &fake, "1.0.0", 10).await;
    fake.add_image(SHOP_REPOSITORY, "1.1.0", &at(600));

    let decision = reconcile_shop(&engine, T0 + 700).await;

    let id = shop_release("1.1.0");
    assert_eq!(decision.release_id.as_deref(), None);
    assert!(
        corrections(&decision)[0].contains("was never released"),
        "{decision:?}"
    );
    assert_eq!(fake.record(&id).state, ReleaseState::Migrating);
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("1.1.0"));
    let notices = fake.notices();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].kind, NoticeKind::Reconciled);

    // The push event, arriving late, finds its release claimed already.
    let late = push_event(
        SHOP_REPOSITORY,
        "1.1.0",
        &digest_of(SHOP_REPOSITORY, "1.1.0"),
        &at(600),
    );
    let decisions = engine.on_push(&late, T0 + 800).await.expect("handled");
    assert_eq!(
        decisions[0].outcome,
        Outcome::Duplicate {
            state: ReleaseState::Migrating
        }
    );
    assert_eq!(fake.tasks().len(), 2, "one migration per release");
}

#[tokio::test]
async fn a_lost_push_of_a_tag_the_policy_refuses_or_of_a_rolled_back_digest_is_not_released() {
    let (fake, engine) = estate();
    known_good(&engine, &fake, "1.0.0", 10).await;
    fake.add_image(SHOP_REPOSITORY, "latest", &at(600));
    fake.add_image(SHOP_REPOSITORY, "0.9.0", &at(610));

    let decision = reconcile_shop(&engine, T0 + 700).await;

    assert_eq!(decision.outcome, Outcome::InSync);
    assert_eq!(fake.release_count(), 1);
}

#[tokio::test]
async fn a_lane_ferry_never_released_is_left_alone_whatever_its_repository_holds() {
    let (fake, engine) = estate();
    fake.add_image(SHOP_REPOSITORY, "1.0.0", &at(10));

    let decision = reconcile_shop(&engine, T0 + 700).await;

    assert_eq!(decision.outcome, Outcome::InSync);
    assert_eq!(fake.release_count(), 0);
}

#[tokio::test]
async fn a_migration_whose_stopped_event_was_lost_is_judged_from_describe_tasks_and_rolls_out() {
    let (fake, engine) = estate();
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    engine.on_push(&push, T0 + 10).await.expect("claimed");
    let id = shop_release("1.0.0");
    let task = fake.migration_task(&id);
    fake.task_stops_unseen(&migration_exited(&task, 0, T0 + 15, T0 + 60));

    let decision = reconcile_shop(&engine, T0 + 300).await;

    assert!(
        corrections(&decision)[0].contains("STOPPED event never arrived"),
        "{decision:?}"
    );
    assert_eq!(fake.record(&id).state, ReleaseState::Deploying);
    assert_eq!(fake.updates().len(), 3, "every service rolled out once");
}

#[tokio::test]
async fn a_failed_migration_whose_stopped_event_was_lost_fails_the_release_and_restores_the_tag() {
    let (fake, engine) = estate();
    known_good(&engine, &fake, "1.0.0", 10).await;
    let push = fake.push(SHOP_REPOSITORY, "1.1.0", &at(600));
    engine.on_push(&push, T0 + 600).await.expect("claimed");
    let id = shop_release("1.1.0");
    fake.task_stops_unseen(&migration_exited(
        &fake.migration_task(&id),
        1,
        T0 + 605,
        T0 + 650,
    ));

    reconcile_shop(&engine, T0 + 700).await;

    let record = fake.record(&id);
    assert_eq!(record.state, ReleaseState::Failed);
    assert!(record
        .reason
        .unwrap_or_default()
        .contains("exited with code 1"));
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("1.0.0"));
}

#[tokio::test]
async fn a_migration_that_never_stops_is_stopped_and_failed_and_its_late_event_changes_nothing() {
    let (fake, engine) = estate();
    known_good(&engine, &fake, "1.0.0", 10).await;
    let push = fake.push(SHOP_REPOSITORY, "1.1.0", &at(600));
    engine.on_push(&push, T0 + 600).await.expect("claimed");
    let id = shop_release("1.1.0");
    let task = fake.migration_task(&id);
    let deadline = T0 + 600 + MIGRATION_TIMEOUT;

    let early = reconcile_shop(&engine, deadline + TASK_GRACE).await;
    assert_eq!(early.outcome, Outcome::InSync, "within its grace");
    assert!(fake.stopped().is_empty());

    reconcile_shop(&engine, deadline + TASK_GRACE + 1).await;

    let stopped = fake.stopped();
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0].task, task.arn);
    assert!(stopped[0].reason.starts_with("ferry:"), "{stopped:?}");
    let record = fake.record(&id);
    assert_eq!(record.state, ReleaseState::Failed);
    assert!(
        record
            .reason
            .unwrap_or_default()
            .contains("outlived its timeout"),
        "the reason says why"
    );
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("1.0.0"));

    let late = migration_exited(&task, 137, T0 + 605, deadline + 70);
    let decision = engine
        .on_task_stopped(&late, deadline + 70)
        .await
        .expect("handled");
    assert_eq!(
        decision.outcome,
        Outcome::Duplicate {
            state: ReleaseState::Failed
        }
    );
    assert!(fake.updates().iter().all(|u| !u.task_definition.is_empty()));
    assert_eq!(
        fake.parameter(SHOP_PARAMETER).as_deref(),
        Some("1.0.0"),
        "the late event restores nothing twice"
    );
}

#[tokio::test]
async fn a_deployment_whose_completed_event_was_lost_completes_the_release() {
    let (fake, engine) = estate();
    let id = deploying(&engine, &fake, "1.0.0", 10).await;
    let (last, first) = SHOP_SERVICES.split_last().expect("three");
    for service in first {
        let deployment_id = fake.last_deployment(SHOP_CLUSTER, service);
        let change = deployment(
            SHOP_CLUSTER,
            service,
            &deployment_id,
            DeploymentOutcome::Completed,
        );
        engine.on_deployment(&change, T0 + 100).await.expect("one");
    }
    fake.deployment_ends_unseen(SHOP_CLUSTER, last, RolloutState::Completed);

    let decision = reconcile_shop(&engine, T0 + 200).await;

    assert!(
        corrections(&decision)[0].contains("COMPLETED; its event never arrived"),
        "{decision:?}"
    );
    assert_eq!(fake.record(&id).state, ReleaseState::Succeeded);
    assert_eq!(
        fake.lane_head(&shop_lane()).known_good.map(|k| k.id),
        Some(id)
    );
}

#[tokio::test]
async fn a_deployment_whose_failed_event_was_lost_rolls_the_release_back() {
    let (fake, engine) = estate();
    let good = known_good(&engine, &fake, "1.0.0", 10).await;
    let id = deploying(&engine, &fake, "1.1.0", 600).await;
    fake.deployment_ends_unseen(SHOP_CLUSTER, "worker", RolloutState::Failed);

    let decision = reconcile_shop(&engine, T0 + 800).await;

    assert!(
        matches!(decision.outcome, Outcome::Reconciled { .. }),
        "{decision:?}"
    );
    assert_eq!(fake.record(&id).state, ReleaseState::RolledBack);
    let head = fake.lane_head(&shop_lane());
    assert_eq!(head.known_good.map(|k| k.id), Some(good.clone()));
    assert!(shop_services_run(
        &fake,
        &fake.record(&good).task_definitions
    ));
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("1.0.0"));
}

#[tokio::test]
async fn a_bake_whose_timer_was_lost_ends_at_the_first_pass_after_its_grace() {
    let (fake, engine) = estate_with(EstateOptions {
        bake: Some("10m"),
        ..EstateOptions::default()
    });
    let id = deploying(&engine, &fake, "1.0.0", 10).await;
    let last = every_shop_service_completes(&engine, &fake, T0 + 100).await;
    let Outcome::Baking { until } = last.outcome else {
        panic!("baking: {last:?}")
    };

    let early = reconcile_shop(&engine, until + TIMER_GRACE).await;
    assert_eq!(early.outcome, Outcome::InSync, "the timer may still fire");

    reconcile_shop(&engine, until + TIMER_GRACE + 1).await;

    assert_eq!(fake.record(&id).state, ReleaseState::Succeeded);
    // The timer, firing after all, changes nothing.
    let late = engine.on_bake_ended(&id, until + 400).await.expect("late");
    assert!(
        matches!(late.outcome, Outcome::Duplicate { .. }),
        "{late:?}"
    );
}

#[tokio::test]
async fn an_alarm_whose_event_was_lost_during_the_bake_rolls_the_release_back_at_the_next_pass() {
    let (fake, engine) = estate_with(EstateOptions {
        bake: Some("30m"),
        ..EstateOptions::default()
    });
    let good = deploying(&engine, &fake, "1.0.0", 10).await;
    every_shop_service_completes(&engine, &fake, T0 + 100).await;
    engine
        .on_bake_ended(&good, T0 + 2000)
        .await
        .expect("known-good");
    let id = deploying(&engine, &fake, "1.1.0", 2100).await;
    every_shop_service_completes(&engine, &fake, T0 + 2200).await;
    fake.set_alarm(ALARM, AlarmState::Alarm, T0 + 2300, 3);

    let decision = reconcile_shop(&engine, T0 + 2400).await;

    assert!(
        corrections(&decision)[0].contains("alarm shop-prod-5xx went to ALARM"),
        "{decision:?}"
    );
    assert_eq!(fake.record(&id).state, ReleaseState::RolledBack);
    assert!(fake.lane_head(&shop_lane()).frozen);
}

#[tokio::test]
async fn an_alarm_in_alarm_since_before_the_release_is_not_held_against_it() {
    let (fake, engine) = estate_with(EstateOptions {
        bake: Some("30m"),
        ..EstateOptions::default()
    });
    fake.set_alarm(ALARM, AlarmState::Alarm, T0, 3);
    let id = deploying(&engine, &fake, "1.0.0", 10).await;

    let decision = reconcile_shop(&engine, T0 + 200).await;

    assert_eq!(decision.outcome, Outcome::InSync);
    assert_eq!(fake.record(&id).state, ReleaseState::Deploying);
}

#[tokio::test]
async fn a_release_interrupted_with_no_redelivery_is_resumed_by_the_next_pass() {
    let (fake, engine) = estate();
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    fake.fail_next("ssm:PutParameter", None, "InternalServerError", true);
    engine
        .on_push(&push, T0 + 10)
        .await
        .expect_err("the invocation fails");
    let id = shop_release("1.0.0");
    assert!(fake.record(&id).interrupted.is_some());

    reconcile_shop(&engine, T0 + 60).await;

    let record = fake.record(&id);
    assert_eq!(record.state, ReleaseState::Migrating);
    assert_eq!(record.interrupted, None);
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("1.0.0"));
}

#[tokio::test]
async fn a_release_whose_invocation_died_unmarked_is_resumed_only_once_no_invocation_can_still_run()
{
    let (fake, engine) = estate();
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    fake.fail_next("ssm:PutParameter", None, "InternalServerError", true);
    engine.on_push(&push, T0 + 10).await.expect_err("fails");
    let id = shop_release("1.0.0");
    // As if the process died before it could mark the release.
    let updated_at = {
        let mut state = fake.state();
        let record = state.releases.get_mut(&id).expect("claimed");
        record.interrupted = None;
        record.updated_at
    };

    let early = reconcile_shop(&engine, updated_at + STALLED_AFTER).await;
    assert_eq!(
        early.outcome,
        Outcome::InSync,
        "an invocation may still run"
    );

    reconcile_shop(&engine, updated_at + STALLED_AFTER + 1).await;

    let record = fake.record(&id);
    assert_eq!(record.state, ReleaseState::Migrating);
    // The dead attempt's migration had started: stopped before the new one.
    let stopped: Vec<String> = fake.stopped().into_iter().map(|s| s.task).collect();
    assert_eq!(stopped.len(), 1);
    assert_ne!(record.migration_task.as_ref(), Some(&stopped[0]));
}

#[tokio::test]
async fn an_interrupted_rollback_is_finished_by_the_next_pass_to_the_same_target() {
    let (fake, engine) = estate();
    let good = known_good(&engine, &fake, "1.0.0", 10).await;
    let id = deploying(&engine, &fake, "1.1.0", 600).await;
    fake.fail_next("ssm:PutParameter", None, "InternalServerError", true);
    let alarm = AlarmChange {
        alarm: ALARM.into(),
        state: AlarmState::Alarm,
        previous_state: Some(AlarmState::Ok),
        reason: "Threshold Crossed".into(),
    };
    engine.on_alarm(&alarm).await.expect_err("interrupted");
    assert!(fake.lane_head(&shop_lane()).rolling_back.is_some());

    let decision = reconcile_shop(&engine, T0 + 700).await;

    assert!(
        matches!(decision.outcome, Outcome::Reconciled { .. }),
        "{decision:?}"
    );
    let head = fake.lane_head(&shop_lane());
    assert_eq!(head.rolling_back, None);
    assert_eq!(fake.record(&id).state, ReleaseState::RolledBack);
    assert_eq!(head.known_good.map(|k| k.id), Some(good));
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("1.0.0"));
}

/// A revision of `shop-api` that runs `image` (registered by hand).
fn api_revision_running(fake: &FakeAws, image: &str) -> String {
    let api = fake.service(SHOP_CLUSTER, "api");
    let mut containers = fake.task_definition(&api.task_definition).containers;
    containers[0].image = image.to_owned();
    fake.add_task_definition("shop-api", containers)
}

#[tokio::test]
async fn a_service_updated_by_hand_is_reported_as_drift_and_left_where_it_is() {
    let (fake, engine) = estate();
    let good = known_good(&engine, &fake, "1.0.0", 10).await;
    let expected = fake.record(&good).task_definitions["api"].clone();
    let by_hand = api_revision_running(&fake, &image(SHOP_REPOSITORY, "hotfix"));
    fake.update_service_by_hand(SHOP_CLUSTER, "api", &by_hand);

    let decision = reconcile_shop(&engine, T0 + 700).await;

    assert!(matches!(decision.outcome, Outcome::Reconciled { .. }));
    let notices = fake.notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].kind, NoticeKind::DriftDetected);
    assert_eq!(notices[0].service.as_deref(), Some("api"));
    assert_eq!(notices[0].expected.as_deref(), Some(expected.as_str()));
    assert_eq!(notices[0].actual.as_deref(), Some(by_hand.as_str()));
    assert_eq!(fake.service(SHOP_CLUSTER, "api").task_definition, by_hand);
}

#[tokio::test]
async fn with_heal_drift_a_service_updated_by_hand_goes_back_to_the_known_good_revision() {
    let (fake, engine) = estate_with(EstateOptions {
        heal_drift: true,
        ..EstateOptions::default()
    });
    let good = known_good(&engine, &fake, "1.0.0", 10).await;
    let expected = fake.record(&good).task_definitions["api"].clone();
    let by_hand = api_revision_running(&fake, &image(SHOP_REPOSITORY, "hotfix"));
    fake.update_service_by_hand(SHOP_CLUSTER, "api", &by_hand);

    reconcile_shop(&engine, T0 + 700).await;

    assert_eq!(fake.service(SHOP_CLUSTER, "api").task_definition, expected);
    assert_eq!(fake.notices()[0].kind, NoticeKind::DriftDetected);
    let again = reconcile_shop(&engine, T0 + 1000).await;
    assert_eq!(again.outcome, Outcome::InSync);
}

#[tokio::test]
async fn a_revision_infrastructure_registered_with_the_known_good_image_is_not_drift() {
    let (fake, engine) = estate_with(EstateOptions {
        heal_drift: true,
        ..EstateOptions::default()
    });
    let good = known_good(&engine, &fake, "1.0.0", 10).await;
    let digest = fake.record(&good).digest;
    let bumped = api_revision_running(&fake, &pinned(SHOP_REPOSITORY, &digest));
    fake.update_service_by_hand(SHOP_CLUSTER, "api", &bumped);

    let decision = reconcile_shop(&engine, T0 + 700).await;

    assert_eq!(decision.outcome, Outcome::InSync);
    assert_eq!(fake.service(SHOP_CLUSTER, "api").task_definition, bumped);
    assert!(fake.notices().is_empty());
}

#[tokio::test]
async fn a_pass_racing_the_live_stopped_event_rolls_out_once() {
    let (fake, engine) = estate();
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    engine.on_push(&push, T0 + 10).await.expect("claimed");
    let id = shop_release("1.0.0");
    let stopped = migration_exited(&fake.migration_task(&id), 0, T0 + 15, T0 + 60);
    fake.task_stops_unseen(&stopped);

    let versions = fake.parameter_history(SHOP_PARAMETER).len();
    // Both read the release MIGRATING and reach its transition together.
    fake.pause("ledger:Update");
    let mut both = pin!(futures_util::future::join(
        engine.on_task_stopped(&stopped, T0 + 61),
        reconcile_shop(&engine, T0 + 61),
    ));
    drive_until(both.as_mut(), "both at the transition", || {
        fake.waiting("ledger:Update") == 2
    })
    .await;
    fake.resume("ledger:Update");
    let (live, pass) = both.await;

    live.expect("the live event");
    assert!(
        matches!(pass.outcome, Outcome::Reconciled { .. }),
        "the pass acted on the stopped task too: {pass:?}"
    );
    assert_eq!(fake.record(&id).state, ReleaseState::Deploying);
    assert_eq!(fake.updates().len(), 3, "one UpdateService per service");
    assert_eq!(fake.parameter_history(SHOP_PARAMETER).len(), versions);
}

#[tokio::test]
async fn a_pass_over_an_idle_lane_reads_four_things_and_writes_nothing() {
    let (fake, engine) = estate();
    known_good(&engine, &fake, "1.0.0", 10).await;
    let before = fake.total_calls();

    let decision = reconcile_shop(&engine, T0 + 700).await;

    assert_eq!(decision.outcome, Outcome::InSync);
    assert_eq!(
        fake.total_calls() - before,
        4,
        "lane head, DescribeImages, DescribeServices, the image-tag parameter"
    );
}

#[tokio::test]
async fn a_late_tag_write_left_on_an_idle_lane_is_written_back_to_the_known_good_tag() {
    let (fake, engine) = estate();
    known_good(&engine, &fake, "1.0.0", 10).await;
    // A superseded rollout's PutParameter landed after the lane settled, and
    // the undo that would have put the tag back was lost with its invocation.
    fake.set_parameter(SHOP_PARAMETER, "1.1.0");

    let decision = reconcile_shop(&engine, T0 + 700).await;

    assert_eq!(
        corrections(&decision),
        vec![
            "the image-tag parameter names 1.1.0, not the known-good 1.0.0 → wrote 1.0.0 back and labelled it known-good"
                .to_owned()
        ]
    );
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("1.0.0"));
    let newest = fake
        .parameter_history(SHOP_PARAMETER)
        .pop()
        .expect("versions");
    assert!(newest.labels.contains("known-good"), "{newest:?}");
    let again = reconcile_shop(&engine, T0 + 1000).await;
    assert_eq!(again.outcome, Outcome::InSync);
}

#[tokio::test]
async fn a_lane_with_a_release_in_flight_keeps_the_tag_its_release_wrote() {
    let (fake, engine) = estate();
    known_good(&engine, &fake, "1.0.0", 10).await;
    deploying(&engine, &fake, "1.1.0", 300).await;

    let decision = reconcile_shop(&engine, T0 + 400).await;

    assert_eq!(decision.outcome, Outcome::InSync);
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("1.1.0"));
}

#[tokio::test]
async fn a_pass_over_every_lane_names_each_and_a_request_for_an_unknown_lane_is_bad() {
    let (_fake, engine) = estate();

    let all = engine
        .reconcile(&ReconcileRequest::default(), REGION, T0)
        .await
        .expect("the pass");
    assert_eq!(all.len(), 3, "shop, blog-web, blog-jobs: {all:?}");

    let unknown = ReconcileRequest {
        app: Some("nope".into()),
        ..ReconcileRequest::default()
    };
    let error = engine
        .reconcile(&unknown, REGION, T0)
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("no lane"), "{error}");
    assert!(!error.is_retryable());
}

/// `tag` of blog-web pushed at `t` and its deployment completed: known-good.
async fn blog_web_known_good(engine: &FakeEngine, fake: &FakeAws, tag: &str, t: u64) {
    let push = fake.push("blog-web", tag, &at(t));
    engine.on_push(&push, T0 + t).await.expect("claimed");
    let id = fake.last_deployment(BLOG_CLUSTER, "web");
    let change = deployment(BLOG_CLUSTER, "web", &id, DeploymentOutcome::Completed);
    engine
        .on_deployment(&change, T0 + t + 5)
        .await
        .expect("done");
}

#[tokio::test]
async fn with_keep_an_idle_lane_pass_deregisters_the_revisions_no_known_good_release_needs() {
    let (fake, engine) = estate_with(EstateOptions {
        keep: Some(1),
        ..EstateOptions::default()
    });
    for (tag, t) in [
        ("sha-1111111", 10),
        ("sha-2222222", 20),
        ("sha-3333333", 30),
    ] {
        blog_web_known_good(&engine, &fake, tag, t).await;
    }
    let web = |revision| task_definition_arn("blog-web", revision);
    let request = ReconcileRequest {
        app: Some("blog".into()),
        environment: Some("prod".into()),
        repository: Some("blog-web".into()),
    };

    let decisions = engine
        .reconcile(&request, REGION, T0 + 100)
        .await
        .expect("pass");

    // :1 is the seeded revision no release of ferry's ran; :2–:4 are known-good.
    assert!(
        corrections(&decisions[0])[0].contains(&format!("deregistered {}", web(1))),
        "{decisions:?}"
    );
    assert_eq!(fake.active_revisions("blog-web"), [web(2), web(3), web(4)]);
    let again = engine
        .reconcile(&request, REGION, T0 + 400)
        .await
        .expect("pass");
    assert_eq!(again[0].outcome, Outcome::InSync);
}
