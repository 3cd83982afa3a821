//! A secret the services read gets a new current value: the lane restarts on
//! its known-good revisions, as a release watched like any other. Scenarios on
//! in-memory AWS.

mod fakes;

use fakes::*;
use ferry_core::engine::{Decision, Outcome, SecretChange};
use ferry_core::release::{ReleaseId, ReleaseState};

fn restarting_estate() -> (FakeAws, FakeEngine) {
    estate_with(EstateOptions {
        restart_on_secret_change: true,
        ..EstateOptions::default()
    })
}

fn new_value_of(secret: &str, version: &str) -> SecretChange {
    SecretChange {
        secret: secret.into(),
        version: version.into(),
    }
}

/// 1.0.0 pushed at `T0 + 10`, migrated and completed: known-good.
async fn known_good(engine: &FakeEngine, fake: &FakeAws) -> ReleaseId {
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    engine.on_push(&push, T0 + 10).await.expect("claimed");
    let id = shop_release("1.0.0");
    let task = fake.migration_task(&id);
    engine
        .on_task_stopped(&migration_exited(&task, 0, T0 + 15, T0 + 50), T0 + 50)
        .await
        .expect("rolled out");
    every_shop_service_completes(engine, fake, T0 + 100).await;
    id
}

fn shop_decision(decisions: Vec<Decision>) -> Decision {
    decisions
        .into_iter()
        .find(|d| d.app.as_deref() == Some("shop"))
        .expect("a decision about shop")
}

#[tokio::test]
async fn a_new_value_of_a_secret_the_services_read_restarts_them_on_their_known_good_revisions() {
    let (fake, engine) = restarting_estate();
    let good = known_good(&engine, &fake).await;
    let revisions = fake.record(&good).task_definitions;
    let updates_before = fake.updates().len();
    let registrations_before = fake.registrations().len();

    let decision = shop_decision(
        engine
            .on_secret_changed(&new_value_of("shop/prod/api", "v2"), T0 + 500)
            .await
            .expect("handled"),
    );

    assert!(
        matches!(decision.outcome, Outcome::Deploying { .. }),
        "{decision:?}"
    );
    let restart = ReleaseId::parse(decision.release_id.as_deref().expect("an id")).expect("valid");
    assert_ne!(restart, good);
    let updates = fake.updates()[updates_before..].to_vec();
    assert_eq!(updates.len(), 3, "every service of the lane");
    for update in &updates {
        assert!(
            update.forced,
            "a new deployment: new tasks read the new value"
        );
        assert_eq!(
            Some(&update.task_definition),
            revisions.get(&update.service)
        );
    }
    assert_eq!(
        fake.registrations().len(),
        registrations_before,
        "nothing registered"
    );
    assert_eq!(fake.tasks().len(), 1, "no migration");

    let last = every_shop_service_completes(&engine, &fake, T0 + 600).await;

    assert_eq!(last.outcome, Outcome::Succeeded);
    let record = fake.record(&restart);
    assert_eq!(record.state, ReleaseState::Succeeded);
    assert_eq!(record.digest, fake.record(&good).digest);
    assert!(record
        .reason
        .unwrap_or_default()
        .contains("secret shop/prod/api"));
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("1.0.0"));
    let head = fake.lane_head(&shop_lane());
    assert_eq!(head.known_good.map(|k| k.id), Some(restart));
    assert_eq!(head.history[0].task_definitions, revisions);
}

#[tokio::test]
async fn the_same_new_value_announced_twice_restarts_once() {
    let (fake, engine) = restarting_estate();
    known_good(&engine, &fake).await;
    let updates_before = fake.updates().len();
    let change = new_value_of("shop/prod/worker", "v2");

    engine
        .on_secret_changed(&change, T0 + 500)
        .await
        .expect("first");
    let again = shop_decision(
        engine
            .on_secret_changed(&change, T0 + 501)
            .await
            .expect("again"),
    );

    assert!(
        matches!(again.outcome, Outcome::Ignored { ref reason } if reason.contains("in flight")),
        "{again:?}"
    );
    assert_eq!(fake.updates().len() - updates_before, 3);
}

#[tokio::test]
async fn a_secret_only_the_migration_reads_restarts_no_service() {
    let (fake, engine) = restarting_estate();
    known_good(&engine, &fake).await;
    let updates_before = fake.updates().len();

    let decision = shop_decision(
        engine
            .on_secret_changed(&new_value_of("shop/prod/db", "v2"), T0 + 500)
            .await
            .expect("handled"),
    );

    assert!(
        matches!(decision.outcome, Outcome::Ignored { ref reason } if reason.contains("does not read")),
        "{decision:?}"
    );
    assert_eq!(fake.updates().len(), updates_before);
}

#[tokio::test]
async fn an_environment_that_did_not_opt_in_is_not_restarted() {
    let (fake, engine) = estate();
    known_good(&engine, &fake).await;
    let updates_before = fake.updates().len();

    let decisions = engine
        .on_secret_changed(&new_value_of("shop/prod/api", "v2"), T0 + 500)
        .await
        .expect("handled");

    assert!(matches!(decisions[0].outcome, Outcome::Ignored { .. }));
    assert_eq!(fake.updates().len(), updates_before);
}

#[tokio::test]
async fn a_lane_with_no_known_good_release_has_nothing_to_restart() {
    let (fake, engine) = restarting_estate();

    let decision = shop_decision(
        engine
            .on_secret_changed(&new_value_of("shop/prod/api", "v2"), T0 + 500)
            .await
            .expect("handled"),
    );

    assert!(
        matches!(decision.outcome, Outcome::Ignored { .. }),
        "{decision:?}"
    );
    assert!(fake.updates().is_empty());
}
