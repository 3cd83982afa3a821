//! Rollback as the operator and the alarms ask for it: which lanes go back,
//! which requests are refused, and what an alarm that concerns no release
//! does; a known-good revision another tool deregistered, and `keep`'s
//! pruning of revisions. Scenarios on in-memory AWS.

mod fakes;

use fakes::*;
use ferry_core::engine::{
    AlarmChange, AlarmState, Decision, DeploymentOutcome, EngineError, Outcome, RollbackRequest,
    UnfreezeRequest,
};
use ferry_core::image::{ENV_TAG, RELEASE_TAG};
use ferry_core::ports::TaskDefinitionView;
use ferry_core::release::ReleaseId;

fn only(decisions: Vec<Decision>) -> Decision {
    assert_eq!(decisions.len(), 1, "decisions: {decisions:?}");
    decisions.into_iter().next().unwrap()
}

/// `tag` of a blog repository pushed at `t`; its one service rolled out and,
/// when `complete`, its deployment completed (then it is known-good).
async fn blog_release(
    engine: &FakeEngine,
    fake: &FakeAws,
    repository: &str,
    tag: &str,
    t: u64,
    complete: bool,
) {
    let push = fake.push(repository, tag, &at(t));
    let decision = only(engine.on_push(&push, T0 + t).await.expect("claimed"));
    assert!(
        matches!(decision.outcome, Outcome::Deploying { .. }),
        "{decision:?}"
    );
    if complete {
        let service = repository.trim_start_matches("blog-");
        let id = fake.last_deployment(BLOG_CLUSTER, service);
        let change = deployment(BLOG_CLUSTER, service, &id, DeploymentOutcome::Completed);
        let done = engine
            .on_deployment(&change, T0 + t + 10)
            .await
            .expect("handled");
        assert_eq!(done.outcome, Outcome::Succeeded);
    }
}

/// Both blog lanes: a known-good release and a newer one rolling out.
async fn both_blog_lanes_rolling_out(engine: &FakeEngine, fake: &FakeAws) {
    blog_release(engine, fake, "blog-web", "sha-1111111", 10, true).await;
    blog_release(engine, fake, "blog-jobs", "sha-3333333", 20, true).await;
    blog_release(engine, fake, "blog-web", "sha-2222222", 30, false).await;
    blog_release(engine, fake, "blog-jobs", "sha-4444444", 40, false).await;
}

fn blog_rollback(repository: Option<&str>) -> RollbackRequest {
    RollbackRequest {
        app: "blog".into(),
        environment: "prod".into(),
        to: None,
        reason: "errors on the front page".into(),
        repository: repository.map(Into::into),
    }
}

#[tokio::test]
async fn an_operator_rollback_of_one_repository_leaves_the_other_lanes_alone() {
    let (fake, engine) = estate();
    both_blog_lanes_rolling_out(&engine, &fake).await;
    let web_before = fake
        .record(&blog_id("blog-web", "sha-1111111"))
        .task_definitions;
    let jobs_running = fake.service(BLOG_CLUSTER, "jobs").task_definition;

    let decision = only(
        engine
            .rollback(&blog_rollback(Some("blog-web")))
            .await
            .expect("rolled back"),
    );

    assert_eq!(
        decision.outcome,
        Outcome::RolledBack {
            from: "sha-2222222".into(),
            to: "sha-1111111".into(),
            reason: decision_reason(&decision),
        }
    );
    assert_eq!(
        fake.service(BLOG_CLUSTER, "web").task_definition,
        web_before["web"]
    );
    assert_eq!(
        fake.service(BLOG_CLUSTER, "jobs").task_definition,
        jobs_running,
        "jobs keeps rolling out"
    );
    assert!(fake.lane_head(&blog_lane("blog-web")).frozen);
    let jobs = fake.lane_head(&blog_lane("blog-jobs"));
    assert!(!jobs.frozen);
    assert_eq!(
        jobs.in_flight.map(|p| p.tag).as_deref(),
        Some("sha-4444444")
    );
}

#[tokio::test]
async fn an_operator_rollback_without_a_repository_rolls_back_every_lane_of_the_environment() {
    let (fake, engine) = estate();
    both_blog_lanes_rolling_out(&engine, &fake).await;

    let decisions = engine
        .rollback(&blog_rollback(None))
        .await
        .expect("rolled back");

    let to: Vec<String> = decisions
        .iter()
        .map(|d| match &d.outcome {
            Outcome::RolledBack { to, .. } => to.clone(),
            other => panic!("expected a rollback: {other:?}"),
        })
        .collect();
    assert_eq!(to.len(), 2);
    assert!(to.contains(&"sha-1111111".to_owned()) && to.contains(&"sha-3333333".to_owned()));
    assert!(fake.lane_head(&blog_lane("blog-web")).frozen);
    assert!(fake.lane_head(&blog_lane("blog-jobs")).frozen);
}

#[tokio::test]
async fn an_operator_rollback_of_a_repository_the_environment_does_not_run_is_a_bad_request() {
    let (fake, engine) = estate();
    both_blog_lanes_rolling_out(&engine, &fake).await;
    let before = fake.mutation_calls();

    let refused = engine.rollback(&blog_rollback(Some("shop"))).await;

    assert!(
        matches!(refused, Err(EngineError::BadRequest(ref m)) if m.contains("runs no repository")),
        "{refused:?}"
    );
    assert_eq!(fake.mutation_calls(), before, "nothing changed");
}

#[tokio::test]
async fn a_refused_operator_rollback_is_a_bad_request_naming_the_reason_and_changes_nothing() {
    let (fake, engine) = estate();
    both_blog_lanes_rolling_out(&engine, &fake).await;
    let before = fake.mutation_calls();
    let mut request = blog_rollback(Some("blog-web"));
    request.to = Some("sha-9999999".into());

    let refused = engine.rollback(&request).await;

    assert!(
        matches!(refused, Err(EngineError::BadRequest(ref m)) if m.contains("not a known-good release")),
        "{refused:?}"
    );
    assert!(!refused.unwrap_err().is_retryable());
    assert_eq!(fake.mutation_calls(), before, "nothing changed");
}

fn alarm(name: &str, state: AlarmState) -> AlarmChange {
    AlarmChange {
        alarm: name.into(),
        state,
        previous_state: Some(AlarmState::Ok),
        reason: "Threshold Crossed".into(),
    }
}

#[tokio::test]
async fn an_alarm_that_leaves_alarm_or_guards_no_environment_rolls_back_nothing() {
    let (fake, engine) = estate();
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    engine.on_push(&push, T0 + 10).await.expect("claimed");
    let before = fake.mutation_calls();
    let heads_read = fake.count("ledger:Head");

    for change in [
        alarm("shop-prod-5xx", AlarmState::Ok),
        alarm("shop-prod-5xx", AlarmState::InsufficientData),
        alarm("someone-elses-alarm", AlarmState::Alarm),
    ] {
        let decision = only(engine.on_alarm(&change).await.expect("handled"));
        assert!(
            matches!(decision.outcome, Outcome::Ignored { .. }),
            "{change:?}: {decision:?}"
        );
    }
    assert_eq!(fake.mutation_calls(), before, "nothing changed");
    assert_eq!(
        fake.count("ledger:Head"),
        heads_read,
        "no lane was even read"
    );
}

#[tokio::test]
async fn unfreezing_a_lane_that_is_not_frozen_changes_nothing() {
    let (fake, engine) = estate();
    let before = fake.mutation_calls();
    let request = UnfreezeRequest {
        app: "shop".into(),
        environment: "prod".into(),
    };

    let decision = only(
        engine
            .unfreeze(&request, REGION, T0)
            .await
            .expect("handled"),
    );

    assert!(
        matches!(decision.outcome, Outcome::Ignored { ref reason } if reason.contains("not frozen")),
        "{decision:?}"
    );
    assert_eq!(fake.mutation_calls(), before);
    assert_eq!(
        fake.lane_head(&shop_lane()).in_flight.map(|p| p.id),
        None::<ReleaseId>
    );
}

fn blog_id(repository: &str, tag: &str) -> ReleaseId {
    ReleaseId::derive("blog", "prod", &digest_of(repository, tag))
}

fn decision_reason(decision: &Decision) -> String {
    match &decision.outcome {
        Outcome::RolledBack { reason, .. } => reason.clone(),
        other => panic!("expected a rollback: {other:?}"),
    }
}

#[tokio::test]
async fn unfreezing_a_frozen_lane_lets_the_next_push_release() {
    let (fake, engine) = estate();
    fake.freeze(&shop_lane());
    let request = UnfreezeRequest {
        app: "shop".into(),
        environment: "prod".into(),
    };

    let decision = only(
        engine
            .unfreeze(&request, REGION, T0)
            .await
            .expect("handled"),
    );

    assert_eq!(decision.outcome, Outcome::Unfrozen);
    assert!(!fake.lane_head(&shop_lane()).frozen);
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    let released = only(engine.on_push(&push, T0 + 10).await.expect("claimed"));
    assert!(
        matches!(released.outcome, Outcome::Migrating { .. }),
        "{released:?}"
    );
}

// ---------------------------------------------------------------------------
// Known-good revisions stay usable

#[tokio::test]
async fn a_rollback_to_a_deregistered_revision_registers_a_copy_and_the_service_runs_it() {
    let (fake, engine) = estate();
    blog_release(&engine, &fake, "blog-web", "sha-1111111", 10, true).await;
    blog_release(&engine, &fake, "blog-web", "sha-2222222", 30, false).await;
    let good = blog_id("blog-web", "sha-1111111");
    let good_revision = fake.record(&good).task_definitions["web"].clone();
    // Another tool (ecs-deploy, by default) deregistered the known-good revision.
    fake.deregister_outside(&good_revision);
    let before = fake.calls();

    let decision = only(
        engine
            .rollback(&blog_rollback(Some("blog-web")))
            .await
            .expect("rolled back onto a copy"),
    );

    assert!(
        matches!(&decision.outcome, Outcome::RolledBack { to, .. } if to == "sha-1111111"),
        "{decision:?}"
    );
    let running = fake.service(BLOG_CLUSTER, "web").task_definition;
    assert_ne!(running, good_revision, "ECS refuses the INACTIVE revision");
    let copy = fake.task_definition(&running);
    let original = fake.task_definition(&good_revision);
    assert!(copy.is_active());
    assert_eq!(copy.family, "blog-web");
    assert_eq!(
        copy.containers, original.containers,
        "the same definition: the known-good digest, nothing changed"
    );
    assert_eq!(
        copy.containers[0].image,
        pinned("blog-web", &digest_of("blog-web", "sha-1111111"))
    );
    assert!(copy
        .tags
        .contains(&(RELEASE_TAG.to_owned(), good.to_string())));
    assert!(copy
        .tags
        .contains(&(ENV_TAG.to_owned(), "blog/prod".to_owned())));
    assert!(copy
        .tags
        .contains(&("team".to_owned(), "payments".to_owned())));
    let registration = fake.registrations().pop().expect("the copy's registration");
    assert_eq!(
        (registration.base.as_str(), registration.changes.len()),
        (good_revision.as_str(), 0)
    );
    // The rare path's price: the refused UpdateService, one describe, one
    // registration, the UpdateService onto the copy.
    let made = |op: &str| fake.count(op) - before.get(op).copied().unwrap_or(0);
    assert_eq!(made("ecs:RestoreService"), 2);
    assert_eq!(made("ecs:DescribeTaskDefinition"), 1);
    assert_eq!(made("ecs:RegisterTaskDefinition"), 1);
    // The lane still records the release's original revision as known-good.
    let head = fake.lane_head(&blog_lane("blog-web"));
    assert_eq!(head.history[0].id, good);
    assert_eq!(head.history[0].task_definitions["web"], good_revision);
    assert!(head.rolling_back.is_none() && head.frozen);
    assert_eq!(
        fake.parameter(BLOG_WEB_PARAMETER).as_deref(),
        Some("sha-1111111")
    );
}

#[tokio::test]
async fn a_rollback_to_active_revisions_describes_and_registers_nothing() {
    let (fake, engine) = estate();
    blog_release(&engine, &fake, "blog-web", "sha-1111111", 10, true).await;
    blog_release(&engine, &fake, "blog-web", "sha-2222222", 30, false).await;
    let good_revision = fake
        .record(&blog_id("blog-web", "sha-1111111"))
        .task_definitions["web"]
        .clone();
    let before = fake.calls();

    engine
        .rollback(&blog_rollback(Some("blog-web")))
        .await
        .expect("rolled back");

    assert_eq!(
        fake.service(BLOG_CLUSTER, "web").task_definition,
        good_revision
    );
    let made = |op: &str| fake.count(op) - before.get(op).copied().unwrap_or(0);
    assert_eq!(made("ecs:RestoreService"), 1);
    assert_eq!(made("ecs:DescribeTaskDefinition"), 0);
    assert_eq!(made("ecs:RegisterTaskDefinition"), 0);
}

/// blog-web's revisions: `:1` seeded; `sha-1111111` → `:2`; `:3` registered by
/// another tool; `sha-2222222` → `:4`; `sha-3333333` → `:5` (all known-good);
/// `sha-4444444` → `:6`, in flight.
async fn blog_web_with_history(engine: &FakeEngine, fake: &FakeAws) {
    blog_release(engine, fake, "blog-web", "sha-1111111", 10, true).await;
    fake.add_task_definition(
        "blog-web",
        vec![fakes::FakeContainer::new(
            "web",
            &image("blog-web", "sha-hand"),
        )],
    );
    blog_release(engine, fake, "blog-web", "sha-2222222", 20, true).await;
    blog_release(engine, fake, "blog-web", "sha-3333333", 30, true).await;
    blog_release(engine, fake, "blog-web", "sha-4444444", 40, false).await;
}

#[tokio::test]
async fn prune_keeps_the_last_known_good_and_never_deregisters_a_known_good_revision() {
    let (fake, engine) = estate_with(EstateOptions {
        keep: Some(1),
        ..EstateOptions::default()
    });
    blog_web_with_history(&engine, &fake).await;
    let lane = blog_lane("blog-web");
    let head = fake.lane_head(&lane);
    let web = |revision| task_definition_arn("blog-web", revision);
    assert_eq!(
        fake.active_revisions("blog-web"),
        (1..=6).map(web).collect::<Vec<_>>()
    );

    let deregistered = engine.prune_revisions(&lane, &head).await.expect("pruned");

    // Older than the last known-good (:5): :1 and :3 go; :2 and :4 belong to
    // known-good releases the lane remembers, :6 to the release in flight.
    assert_eq!(deregistered, [web(1), web(3)]);
    assert_eq!(
        fake.active_revisions("blog-web"),
        [web(2), web(4), web(5), web(6)]
    );
    for release in &head.history {
        for arn in release.task_definitions.values() {
            assert!(fake.task_definition(arn).is_active(), "{arn} is known-good");
        }
    }
    assert_eq!(
        fake.active_revisions("blog-jobs"),
        [task_definition_arn("blog-jobs", 1)]
    );
    assert_eq!(
        fake.count("ecs:ListTaskDefinitions"),
        1,
        "one family in the lane"
    );
    assert_eq!(fake.count("ecs:DeregisterTaskDefinition"), 2);

    // Pruning again finds nothing more to deregister.
    let again = engine.prune_revisions(&lane, &head).await.expect("pruned");
    assert!(again.is_empty(), "{again:?}");
}

#[tokio::test]
async fn prune_keeps_every_revision_of_the_last_n_known_good_releases() {
    let (fake, engine) = estate_with(EstateOptions {
        keep: Some(3),
        ..EstateOptions::default()
    });
    blog_web_with_history(&engine, &fake).await;
    let lane = blog_lane("blog-web");
    let head = fake.lane_head(&lane);

    let deregistered = engine.prune_revisions(&lane, &head).await.expect("pruned");

    // The last three known-good run :2, :4 and :5: the floor is :2, so only :1 goes
    // (the hand-registered :3 is newer than the floor).
    assert_eq!(deregistered, [task_definition_arn("blog-web", 1)]);
}

#[tokio::test]
async fn prune_without_keep_deregisters_nothing_and_calls_nothing() {
    let (fake, engine) = estate();
    blog_web_with_history(&engine, &fake).await;
    let lane = blog_lane("blog-web");
    let head = fake.lane_head(&lane);
    let before = fake.total_calls();

    let deregistered = engine.prune_revisions(&lane, &head).await.expect("nothing");

    assert!(deregistered.is_empty());
    assert_eq!(fake.total_calls(), before);
    assert_eq!(fake.active_revisions("blog-web").len(), 6);
}
