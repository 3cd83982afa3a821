//! The approval gate and promotion against in-memory AWS: a release in an
//! environment with `approval = true` is prepared and waits; an operator's
//! approve continues it, a reject or the expiry ends it with nothing changed;
//! a newer push supersedes it. Promotion deploys staging's known-good digest,
//! and `promote_from` refuses anything else.

mod fakes;

use fakes::*;
use ferry_core::engine::{
    ApprovalRequest, Decision, DeploymentOutcome, Outcome, PromoteRequest, ReconcileRequest,
    RejectRequest,
};
use ferry_core::release::ReleaseState;

fn gated() -> (FakeAws, FakeEngine) {
    estate_with(EstateOptions {
        approval: Some("1h"),
        ..EstateOptions::default()
    })
}

fn only(decisions: Vec<Decision>) -> Decision {
    assert_eq!(decisions.len(), 1, "decisions: {decisions:?}");
    decisions.into_iter().next().expect("one decision")
}

async fn push_shop(engine: &FakeEngine, fake: &FakeAws, tag: &str, seconds: u64) -> Decision {
    let push = fake.push(SHOP_REPOSITORY, tag, &at(seconds));
    only(engine.on_push(&push, T0 + seconds).await.expect("handled"))
}

fn approve_request() -> ApprovalRequest {
    ApprovalRequest {
        app: "shop".into(),
        environment: "prod".into(),
        repository: None,
        release_id: None,
    }
}

async fn approve(engine: &FakeEngine, seconds: u64) -> Decision {
    only(
        engine
            .approve(&approve_request(), T0 + seconds)
            .await
            .expect("handled"),
    )
}

async fn reject(engine: &FakeEngine, reason: &str, seconds: u64) -> Decision {
    let request = RejectRequest {
        app: "shop".into(),
        environment: "prod".into(),
        repository: None,
        release_id: None,
        reason: Some(reason.into()),
    };
    only(
        engine
            .reject(&request, T0 + seconds)
            .await
            .expect("handled"),
    )
}

fn assert_nothing_outside_the_ledger_changed(fake: &FakeAws) {
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("0.9.0"));
    assert_eq!(fake.count("ssm:PutParameter"), 0, "{:?}", fake.calls());
    assert_eq!(fake.count("ecs:RunTask"), 0, "{:?}", fake.calls());
    assert_eq!(fake.count("ecs:UpdateService"), 0, "{:?}", fake.calls());
}

#[tokio::test]
async fn a_gated_release_is_prepared_and_waits_with_its_plan_without_touching_ssm_or_services() {
    let (fake, engine) = gated();
    let decision = push_shop(&engine, &fake, "1.0.0", 10).await;
    let Outcome::AwaitingApproval { expires_at, plan } = decision.outcome else {
        panic!("expected to await approval: {decision:?}");
    };
    assert_eq!(expires_at, T0 + 10 + 3600);
    let id = shop_release("1.0.0");
    let record = fake.record(&id);
    assert_eq!(record.state, ReleaseState::AwaitingApproval);
    assert_eq!(record.approval_expires_at, Some(expires_at));
    assert_eq!(plan.task_definitions, record.task_definitions);
    assert_eq!(plan.task_definitions.len(), SHOP_SERVICES.len());
    assert_eq!(plan.migration, record.migration_task_definition);
    assert!(plan.migration.is_some());
    assert_eq!(plan.parameter.name, SHOP_PARAMETER);
    assert_eq!(
        (plan.parameter.from.as_deref(), plan.parameter.to.as_str()),
        (Some("0.9.0"), "1.0.0")
    );
    assert_nothing_outside_the_ledger_changed(&fake);
    let event = fake
        .events()
        .into_iter()
        .find(|e| e.state == ReleaseState::AwaitingApproval)
        .expect("an AWAITING_APPROVAL event");
    assert_eq!(event.plan, Some(plan));
    assert_eq!(event.previous_state, Some(ReleaseState::Claimed));
}

#[tokio::test]
async fn an_approve_starts_the_migration_once_and_the_release_completes_as_an_ungated_one() {
    let (fake, engine) = gated();
    push_shop(&engine, &fake, "1.0.0", 10).await;
    let approved = approve(&engine, 60).await;
    assert!(
        matches!(approved.outcome, Outcome::Migrating { .. }),
        "{approved:?}"
    );
    let again = approve(&engine, 61).await;
    assert_eq!(
        again.outcome,
        Outcome::Refused {
            reason: "no release of shop/prod awaits approval".into()
        },
        "a second approve finds nothing awaiting"
    );
    assert_eq!(fake.count("ecs:RunTask"), 1);
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("1.0.0"));
    let id = shop_release("1.0.0");
    let record = fake.record(&id);
    assert_eq!(record.migration_deadline, Some(T0 + 60 + 15 * 60));
    let task = fake.migration_task(&id);
    let stopped = engine
        .on_task_stopped(&migration_exited(&task, 0, T0 + 65, T0 + 120), T0 + 120)
        .await
        .expect("handled");
    assert!(
        matches!(stopped.outcome, Outcome::Deploying { .. }),
        "{stopped:?}"
    );
    let mut last = None;
    for service in SHOP_SERVICES {
        let deployment_id = fake.last_deployment(SHOP_CLUSTER, service);
        let change = deployment(
            SHOP_CLUSTER,
            service,
            &deployment_id,
            DeploymentOutcome::Completed,
        );
        last = Some(
            engine
                .on_deployment(&change, T0 + 600)
                .await
                .expect("handled"),
        );
    }
    assert_eq!(last.expect("three services").outcome, Outcome::Succeeded);
    let states: Vec<String> = fake.transitions(&id).into_iter().map(|(s, _)| s).collect();
    assert_eq!(
        states,
        [
            "CLAIMED",
            "AWAITING_APPROVAL",
            "MIGRATING",
            "DEPLOYING",
            "SUCCEEDED"
        ]
    );
}

#[tokio::test]
async fn an_approve_pinned_to_the_release_id_of_a_release_already_approved_is_a_duplicate() {
    let (fake, engine) = gated();
    push_shop(&engine, &fake, "1.0.0", 10).await;
    approve(&engine, 60).await;
    let pinned = ApprovalRequest {
        release_id: Some(shop_release("1.0.0").to_string()),
        ..approve_request()
    };
    let again = only(engine.approve(&pinned, T0 + 61).await.expect("handled"));
    assert_eq!(
        again.outcome,
        Outcome::Duplicate {
            state: ReleaseState::Migrating
        }
    );
    let late_reject = reject(&engine, "too late", 62).await;
    assert!(
        matches!(late_reject.outcome, Outcome::Refused { .. }),
        "a reject after the approve finds nothing awaiting: {late_reject:?}"
    );
    assert_eq!(fake.count("ecs:RunTask"), 1);
}

#[tokio::test]
async fn a_reject_ends_the_release_with_its_reason_and_frees_the_lane_with_nothing_changed() {
    let (fake, engine) = gated();
    push_shop(&engine, &fake, "1.0.0", 10).await;
    let decision = reject(&engine, "change freeze", 60).await;
    assert_eq!(
        decision.outcome,
        Outcome::Rejected {
            reason: "rejected by an operator: change freeze".into()
        }
    );
    let record = fake.record(&shop_release("1.0.0"));
    assert_eq!(record.state, ReleaseState::Rejected);
    assert_eq!(
        record.reason.as_deref(),
        Some("rejected by an operator: change freeze")
    );
    assert_eq!(fake.lane_head(&shop_lane()).in_flight, None);
    assert_nothing_outside_the_ledger_changed(&fake);
    let approved = approve(&engine, 61).await;
    assert!(
        matches!(approved.outcome, Outcome::Refused { .. }),
        "nothing awaits approval any more: {approved:?}"
    );
    assert_nothing_outside_the_ledger_changed(&fake);
}

#[tokio::test]
async fn an_approve_after_the_expiry_is_refused_and_ends_the_release() {
    let (fake, engine) = gated();
    push_shop(&engine, &fake, "1.0.0", 10).await;
    let decision = approve(&engine, 10 + 3600).await;
    let Outcome::Refused { reason } = decision.outcome else {
        panic!("expected a refusal: {decision:?}");
    };
    assert!(reason.contains("approval request expired"), "{reason}");
    let record = fake.record(&shop_release("1.0.0"));
    assert_eq!(record.state, ReleaseState::Rejected);
    assert_eq!(record.reason.as_deref(), Some(reason.as_str()));
    assert_nothing_outside_the_ledger_changed(&fake);
}

#[tokio::test]
async fn the_reconcile_pass_ends_an_expired_approval_request_and_leaves_a_fresh_one_waiting() {
    let (fake, engine) = gated();
    push_shop(&engine, &fake, "1.0.0", 10).await;
    let id = shop_release("1.0.0");
    let request = ReconcileRequest {
        app: Some("shop".into()),
        environment: Some("prod".into()),
        repository: None,
    };
    // Long after any invocation could still be at it, but before the expiry.
    engine
        .reconcile(&request, REGION, T0 + 3000)
        .await
        .expect("a pass");
    assert_eq!(fake.record(&id).state, ReleaseState::AwaitingApproval);
    engine
        .reconcile(&request, REGION, T0 + 10 + 3600)
        .await
        .expect("a pass");
    let record = fake.record(&id);
    assert_eq!(record.state, ReleaseState::Rejected);
    assert!(
        record
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("expired")),
        "{record:?}"
    );
    assert_nothing_outside_the_ledger_changed(&fake);
}

#[tokio::test]
async fn a_newer_push_supersedes_the_release_awaiting_approval_and_waits_for_its_own() {
    let (fake, engine) = gated();
    push_shop(&engine, &fake, "1.0.0", 10).await;
    let newer = push_shop(&engine, &fake, "1.1.0", 20).await;
    assert!(
        matches!(newer.outcome, Outcome::AwaitingApproval { .. }),
        "{newer:?}"
    );
    let old = fake.record(&shop_release("1.0.0"));
    assert_eq!(old.state, ReleaseState::Superseded);
    let cause = old.reason.unwrap_or_default();
    assert!(
        cause.contains(shop_release("1.1.0").as_str()),
        "the cause names the newer release: {cause}"
    );
    let approved = approve(&engine, 30).await;
    assert_eq!(
        approved.release_id.as_deref(),
        Some(shop_release("1.1.0").as_str())
    );
    assert!(
        matches!(approved.outcome, Outcome::Migrating { .. }),
        "{approved:?}"
    );
}

// ---------------------------------------------------------------------------
// Promotion

fn staged() -> (FakeAws, FakeEngine) {
    estate_with(EstateOptions {
        staging: true,
        ..EstateOptions::default()
    })
}

fn promote_request() -> PromoteRequest {
    PromoteRequest {
        app: "shop".into(),
        from: "staging".into(),
        to: "prod".into(),
    }
}

/// `shop:<tag>` pushed: staging rolls it out (prod refuses it) and every
/// staging service completes.
async fn release_in_staging(engine: &FakeEngine, fake: &FakeAws, tag: &str, seconds: u64) {
    let push = fake.push(SHOP_REPOSITORY, tag, &at(seconds));
    let decisions = engine.on_push(&push, T0 + seconds).await.expect("handled");
    let by_env = |env: &str| {
        decisions
            .iter()
            .find(|d| d.environment.as_deref() == Some(env))
            .cloned()
            .expect("a decision per environment")
    };
    let prod = by_env("prod");
    let Outcome::Refused { reason } = prod.outcome else {
        panic!("prod takes only promoted digests: {prod:?}");
    };
    assert!(reason.contains("promote_from"), "{reason}");
    let staging = by_env("staging");
    assert!(
        matches!(staging.outcome, Outcome::Deploying { .. }),
        "{staging:?}"
    );
    for service in SHOP_SERVICES {
        let id = fake.last_deployment(SHOP_STAGING_CLUSTER, service);
        let change = deployment(
            SHOP_STAGING_CLUSTER,
            service,
            &id,
            DeploymentOutcome::Completed,
        );
        engine
            .on_deployment(&change, T0 + seconds + 100)
            .await
            .expect("handled");
    }
}

#[tokio::test]
async fn a_promotion_deploys_stagings_known_good_digest_to_prod_as_a_deploy_would() {
    let (fake, engine) = staged();
    release_in_staging(&engine, &fake, "1.0.0", 10).await;
    let decision = only(
        engine
            .promote(&promote_request(), REGION, T0 + 200)
            .await
            .expect("handled"),
    );
    assert_eq!(
        decision.release_id.as_deref(),
        Some(shop_release("1.0.0").as_str()),
        "the release id a deploy of the digest derives"
    );
    assert!(
        matches!(decision.outcome, Outcome::Migrating { .. }),
        "{decision:?}"
    );
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("1.0.0"));
    let again = only(
        engine
            .promote(&promote_request(), REGION, T0 + 201)
            .await
            .expect("handled"),
    );
    assert_eq!(
        again.outcome,
        Outcome::Duplicate {
            state: ReleaseState::Migrating
        }
    );
}

#[tokio::test]
async fn a_promotion_from_an_environment_with_nothing_known_good_is_refused_and_changes_nothing() {
    let (fake, engine) = staged();
    let decision = only(
        engine
            .promote(&promote_request(), REGION, T0)
            .await
            .expect("handled"),
    );
    let Outcome::Refused { reason } = decision.outcome else {
        panic!("refused: {decision:?}");
    };
    assert!(
        reason.contains("shop/staging has no known-good release"),
        "{reason}"
    );
    let to_itself = only(
        engine
            .promote(
                &PromoteRequest {
                    to: "staging".into(),
                    ..promote_request()
                },
                REGION,
                T0,
            )
            .await
            .expect("handled"),
    );
    assert!(
        matches!(&to_itself.outcome, Outcome::Refused { reason } if reason.contains("to itself")),
        "{to_itself:?}"
    );
    assert_eq!(fake.release_count(), 0);
}
