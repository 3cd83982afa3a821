//! An operator's retry of a digest whose release did not succeed, on in-memory
//! AWS (`fakes`): the digest is deployed again as the next generation of its
//! release id, through the deploy's own claim, preflight, registration and
//! migration, and nothing else ever makes another release of it.

mod fakes;

use fakes::*;
use ferry_core::engine::{Decision, DeploymentOutcome, Outcome, RetryRequest, TaskStopped};
use ferry_core::release::{ReleaseId, ReleaseState};

async fn push_shop(engine: &FakeEngine, fake: &FakeAws, tag: &str, seconds: u64) -> Decision {
    let push = fake.push(SHOP_REPOSITORY, tag, &at(seconds));
    let decisions = engine.on_push(&push, T0 + seconds).await.expect("handled");
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    decisions.into_iter().next().expect("one decision")
}

/// The migration ferry started for `release` stops with `exit_code`.
async fn migration_exits(
    engine: &FakeEngine,
    fake: &FakeAws,
    release: &ReleaseId,
    exit_code: i32,
    seconds: u64,
) -> Decision {
    let task = fake.migration_task(release);
    let stopped: TaskStopped = migration_exited(&task, exit_code, T0 + seconds - 30, T0 + seconds);
    engine
        .on_task_stopped(&stopped, T0 + seconds)
        .await
        .expect("the stopped task is handled")
}

async fn complete_every_service(engine: &FakeEngine, fake: &FakeAws, seconds: u64) -> Decision {
    let mut last = None;
    for service in SHOP_SERVICES {
        let id = fake.last_deployment(SHOP_CLUSTER, service);
        let change = deployment(SHOP_CLUSTER, service, &id, DeploymentOutcome::Completed);
        last = Some(
            engine
                .on_deployment(&change, T0 + seconds)
                .await
                .expect("handled"),
        );
    }
    last.expect("shop has services")
}

fn retry(tag: Option<&str>, force: bool) -> RetryRequest {
    RetryRequest {
        app: "shop".into(),
        environment: "prod".into(),
        repository: None,
        tag: tag.map(str::to_owned),
        digest: None,
        force,
    }
}

async fn retry_shop(engine: &FakeEngine, request: &RetryRequest, seconds: u64) -> Decision {
    engine
        .retry(request, REGION, T0 + seconds)
        .await
        .expect("the retry is handled")
}

/// `shop:<tag>` pushed; its migration exits 1: the release FAILED.
async fn failed_migration(engine: &FakeEngine, fake: &FakeAws, tag: &str, seconds: u64) {
    push_shop(engine, fake, tag, seconds).await;
    let failed = migration_exits(engine, fake, &shop_release(tag), 1, seconds + 60).await;
    assert!(
        matches!(failed.outcome, Outcome::Failed { .. }),
        "{failed:?}"
    );
}

fn second_generation(tag: &str) -> ReleaseId {
    shop_release(tag).next_generation().expect("fits")
}

#[tokio::test]
async fn a_release_whose_migration_failed_is_retried_as_generation_2_and_succeeds() {
    let (fake, engine) = estate();
    failed_migration(&engine, &fake, "1.0.0", 10).await;
    let registered = fake.count("ecs:RegisterTaskDefinition");
    assert_eq!(
        fake.lane_head(&shop_lane()).last_failed.map(|p| p.id),
        Some(shop_release("1.0.0")),
        "the head remembers the failed release"
    );

    // No digest named: the lane's last failed release.
    let decision = retry_shop(&engine, &retry(None, false), 200).await;

    let second = second_generation("1.0.0");
    assert_eq!(second.as_str(), format!("{}-2", shop_release("1.0.0")));
    assert_eq!(decision.release_id.as_deref(), Some(second.as_str()));
    assert!(
        matches!(decision.outcome, Outcome::Migrating { .. }),
        "{decision:?}"
    );
    assert!(
        fake.count("ecs:RegisterTaskDefinition") > registered,
        "the copies are registered again for the new generation"
    );
    let first = fake.record(&shop_release("1.0.0"));
    assert_eq!(
        first.state,
        ReleaseState::Failed,
        "the failure stays recorded"
    );
    assert_eq!(first.retried_as.as_ref(), Some(&second));
    assert_eq!(fake.record(&second).tag, "1.0.0");

    // The migration, started by `ferry/<generation 2>`, exits 0 this time.
    let passed = migration_exits(&engine, &fake, &second, 0, 260).await;
    assert!(
        matches!(passed.outcome, Outcome::Deploying { .. }),
        "{passed:?}"
    );
    assert_eq!(
        complete_every_service(&engine, &fake, 300).await.outcome,
        Outcome::Succeeded
    );
    assert_eq!(fake.record(&second).state, ReleaseState::Succeeded);
    let head = fake.lane_head(&shop_lane());
    assert_eq!(head.known_good.map(|k| k.id), Some(second.clone()));
    assert_eq!(head.in_flight, None);
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("1.0.0"));
    assert_eq!(
        fake.transitions(&second).first(),
        Some(&("CLAIMED".to_owned(), None)),
        "the new generation has its own audit trail"
    );
}

#[tokio::test]
async fn a_redelivered_push_after_a_retry_is_a_duplicate_and_never_a_third_release() {
    let (fake, engine) = estate();
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    engine.on_push(&push, T0 + 10).await.expect("handled");
    migration_exits(&engine, &fake, &shop_release("1.0.0"), 1, 70).await;
    retry_shop(&engine, &retry(Some("1.0.0"), false), 200).await;
    let claims = fake.count("ledger:Claim");
    let mutations = fake.mutation_calls();

    // The original push event, delivered late, and an operator's deploy of the digest.
    let late = engine.on_push(&push, T0 + 210).await.expect("handled");
    assert_eq!(
        late.iter().map(|d| &d.outcome).collect::<Vec<_>>(),
        [&Outcome::Duplicate {
            state: ReleaseState::Failed
        }]
    );
    let deployed = engine
        .deploy(
            &ferry_core::engine::DeployRequest {
                app: "shop".into(),
                environment: "prod".into(),
                tag: Some("1.0.0".into()),
                digest: None,
                repository: None,
            },
            REGION,
            T0 + 220,
        )
        .await
        .expect("handled");
    assert!(
        matches!(deployed.outcome, Outcome::Duplicate { .. }),
        "{deployed:?}"
    );

    assert_eq!(fake.count("ledger:Claim"), claims, "nothing claimed");
    assert_eq!(fake.mutation_calls(), mutations, "nothing changed");
    assert_eq!(
        fake.lane_head(&shop_lane()).in_flight.map(|p| p.id),
        Some(second_generation("1.0.0")),
        "generation 2 still holds the lane"
    );
}

#[tokio::test]
async fn a_retry_of_a_failed_retry_is_generation_3() {
    let (fake, engine) = estate();
    failed_migration(&engine, &fake, "1.0.0", 10).await;
    retry_shop(&engine, &retry(None, false), 200).await;
    let second = second_generation("1.0.0");
    let failed = migration_exits(&engine, &fake, &second, 1, 260).await;
    assert!(
        matches!(failed.outcome, Outcome::Failed { .. }),
        "{failed:?}"
    );

    // Named by tag: the chain is followed from generation 1 to generation 2.
    let decision = retry_shop(&engine, &retry(Some("1.0.0"), false), 300).await;

    let third = second.next_generation().expect("fits");
    assert_eq!(third.generation(), 3);
    assert_eq!(decision.release_id.as_deref(), Some(third.as_str()));
    assert!(
        matches!(decision.outcome, Outcome::Migrating { .. }),
        "{decision:?}"
    );
    assert_eq!(fake.record(&second).retried_as.as_ref(), Some(&third));
    assert_eq!(fake.record(&shop_release("1.0.0")).retried_as, Some(second));
    migration_exits(&engine, &fake, &third, 0, 360).await;
    assert_eq!(
        complete_every_service(&engine, &fake, 400).await.outcome,
        Outcome::Succeeded
    );

    // And once it succeeded, there is nothing left to retry.
    let again = retry_shop(&engine, &retry(None, false), 500).await;
    let Outcome::Refused { reason } = again.outcome else {
        panic!("expected a refusal: {again:?}");
    };
    assert!(reason.contains("succeeded"), "{reason}");
    assert_eq!(again.release_id.as_deref(), Some(third.as_str()));
}

#[tokio::test]
async fn a_rolled_back_digest_is_refused_without_force_and_deployed_again_with_it() {
    let (fake, engine) = estate();
    // 1.0.0 known-good; 1.1.0 migrates, then a deployment fails: rolled back.
    push_shop(&engine, &fake, "1.0.0", 10).await;
    migration_exits(&engine, &fake, &shop_release("1.0.0"), 0, 70).await;
    complete_every_service(&engine, &fake, 100).await;
    push_shop(&engine, &fake, "1.1.0", 200).await;
    migration_exits(&engine, &fake, &shop_release("1.1.0"), 0, 260).await;
    let id = fake.last_deployment(SHOP_CLUSTER, "worker");
    engine
        .on_deployment(
            &deployment(SHOP_CLUSTER, "worker", &id, DeploymentOutcome::Failed),
            T0 + 300,
        )
        .await
        .expect("handled");
    let bad = shop_release("1.1.0");
    assert_eq!(fake.record(&bad).state, ReleaseState::RolledBack);
    assert!(fake.lane_head(&shop_lane()).bad_releases.contains(&bad));
    let mutations = fake.mutation_calls();

    let refused = retry_shop(&engine, &retry(Some("1.1.0"), false), 400).await;

    let Outcome::Refused { reason } = refused.outcome else {
        panic!("expected a refusal: {refused:?}");
    };
    assert!(reason.contains("\"force\": true"), "{reason}");
    assert_eq!(fake.mutation_calls(), mutations, "nothing changed");

    let forced = retry_shop(&engine, &retry(Some("1.1.0"), true), 500).await;

    let second = bad.next_generation().expect("fits");
    assert_eq!(forced.release_id.as_deref(), Some(second.as_str()));
    assert!(
        matches!(forced.outcome, Outcome::Migrating { .. }),
        "{forced:?}"
    );
    let head = fake.lane_head(&shop_lane());
    assert!(
        !head.bad_releases.contains(&bad),
        "the forced claim took it off the bad releases"
    );
    assert!(
        head.frozen,
        "an operator's retry does not unfreeze the lane"
    );
    assert_eq!(fake.record(&bad).state, ReleaseState::RolledBack);
    assert_eq!(fake.record(&bad).retried_as, Some(second));
}

#[tokio::test]
async fn a_retry_of_a_release_in_flight_or_of_a_digest_never_released_is_refused() {
    let (fake, engine) = estate();
    push_shop(&engine, &fake, "1.0.0", 10).await;
    let mutations = fake.mutation_calls();

    let in_flight = retry_shop(&engine, &retry(Some("1.0.0"), true), 20).await;
    let Outcome::Refused { reason } = in_flight.outcome else {
        panic!("expected a refusal: {in_flight:?}");
    };
    assert!(reason.contains("in flight (MIGRATING)"), "{reason}");

    fake.add_image(SHOP_REPOSITORY, "1.1.0", &at(30));
    let never = retry_shop(&engine, &retry(Some("1.1.0"), false), 40).await;
    let Outcome::Refused { reason } = never.outcome else {
        panic!("expected a refusal: {never:?}");
    };
    assert!(reason.contains("\"deploy\""), "{reason}");

    let nothing_failed = retry_shop(&engine, &retry(None, false), 50).await;
    let Outcome::Refused { reason } = nothing_failed.outcome else {
        panic!("expected a refusal: {nothing_failed:?}");
    };
    assert!(reason.contains("no failed release"), "{reason}");
    assert_eq!(fake.mutation_calls(), mutations, "nothing changed");
}

#[tokio::test]
async fn two_retries_of_one_failed_release_at_once_make_one_new_generation() {
    let (fake, engine) = estate();
    failed_migration(&engine, &fake, "1.0.0", 10).await;

    let request = retry(None, false);
    let (a, b) = futures_util::join!(
        retry_shop(&engine, &request, 200),
        retry_shop(&engine, &request, 200)
    );

    let migrating = [&a, &b]
        .iter()
        .filter(|d| matches!(d.outcome, Outcome::Migrating { .. }))
        .count();
    assert_eq!(migrating, 1, "{a:?} {b:?}");
    let other = if matches!(a.outcome, Outcome::Migrating { .. }) {
        &b
    } else {
        &a
    };
    assert!(
        matches!(
            other.outcome,
            Outcome::Duplicate { .. } | Outcome::Refused { .. }
        ),
        "{other:?}"
    );
    assert_eq!(
        fake.tasks()
            .iter()
            .filter(|t| t.started_by == second_generation("1.0.0").started_by())
            .count(),
        1,
        "one migration"
    );
}
