//! The release metrics the engine records beside its events (the `Metrics` port,
//! in memory here; CloudWatch embedded metric format in `ferry-aws`): durations
//! and outcomes per app and environment, from the transitions it announces.

mod fakes;

use fakes::*;
use ferry_core::engine::{AlarmChange, AlarmState, Decision, Outcome};
use ferry_core::metrics::{Measurement, Metric};
use ferry_core::release::ReleaseState;

fn only(decisions: Vec<Decision>) -> Decision {
    assert_eq!(decisions.len(), 1, "decisions: {decisions:?}");
    decisions.into_iter().next().unwrap()
}

fn shop(value: Metric) -> Measurement {
    Measurement {
        app: "shop".into(),
        environment: "prod".into(),
        value,
    }
}

fn recorded(fake: &FakeAws) -> Vec<Measurement> {
    fake.state().metrics.clone()
}

/// `shop:<tag>` pushed at `seconds` after T0, its migration run 5 s later for
/// 55 s (metrics clock at its stop), then every service completed at `done`.
async fn release_shop(engine: &FakeEngine, fake: &FakeAws, tag: &str, seconds: u64, done: u64) {
    let push = fake.push(SHOP_REPOSITORY, tag, &at(seconds));
    engine.on_push(&push, T0 + seconds).await.expect("claimed");
    let task = fake.migration_task(&shop_release(tag));
    fake.state().metrics_clock = Some(T0 + seconds + 60);
    let stopped = migration_exited(&task, 0, T0 + seconds + 5, T0 + seconds + 60);
    engine
        .on_task_stopped(&stopped, T0 + seconds + 60)
        .await
        .expect("rolled out");
    fake.state().metrics_clock = Some(T0 + done);
    let last = every_shop_service_completes(engine, fake, T0 + done).await;
    assert_eq!(last.outcome, Outcome::Succeeded);
}

#[tokio::test]
async fn a_successful_release_records_its_duration_from_the_claim_its_migration_and_one_success() {
    let (fake, engine) = estate();
    release_shop(&engine, &fake, "1.0.0", 10, 400).await;

    assert_eq!(
        recorded(&fake),
        [
            // the migration ran from its RunTask (the claim's invocation, at 10)
            // to the verdict on its stop (70)
            shop(Metric::MigrationDuration(60)),
            shop(Metric::ReleaseDuration(390)),
            shop(Metric::Outcome(ReleaseState::Succeeded)),
        ]
    );
}

#[tokio::test]
async fn a_failed_migration_records_its_duration_and_one_failure() {
    let (fake, engine) = estate();
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    engine.on_push(&push, T0 + 10).await.expect("claimed");
    let task = fake.migration_task(&shop_release("1.0.0"));
    fake.state().metrics_clock = Some(T0 + 130);
    let decision = engine
        .on_task_stopped(&migration_exited(&task, 1, T0 + 15, T0 + 130), T0 + 130)
        .await
        .expect("judged");
    assert!(
        matches!(decision.outcome, Outcome::Failed { .. }),
        "{decision:?}"
    );

    assert_eq!(
        recorded(&fake),
        [
            shop(Metric::MigrationDuration(120)),
            shop(Metric::ReleaseDuration(120)),
            shop(Metric::Outcome(ReleaseState::Failed)),
        ]
    );
}

#[tokio::test]
async fn a_rollback_records_the_time_from_its_start_to_rolled_back_and_one_rollback() {
    let (fake, engine) = estate();
    release_shop(&engine, &fake, "1.0.0", 10, 400).await;
    let push = fake.push(SHOP_REPOSITORY, "1.1.0", &at(500));
    engine.on_push(&push, T0 + 500).await.expect("claimed");
    let task = fake.migration_task(&shop_release("1.1.0"));
    engine
        .on_task_stopped(&migration_exited(&task, 0, T0 + 505, T0 + 560), T0 + 560)
        .await
        .expect("rolled out");
    let id = shop_release("1.1.0");
    let began = fake.record(&id).updated_at;
    fake.state().metrics.clear();
    fake.state().metrics_clock = Some(began + 42);

    let raised = AlarmChange {
        alarm: "shop-prod-5xx".into(),
        state: AlarmState::Alarm,
        previous_state: Some(AlarmState::Ok),
        reason: "Threshold Crossed".into(),
    };
    let decision = only(engine.on_alarm(&raised).await.expect("rolled back"));
    assert!(
        matches!(decision.outcome, Outcome::RolledBack { .. }),
        "{decision:?}"
    );
    assert_eq!(fake.record(&id).state, ReleaseState::RolledBack);

    let claimed = fake.record(&id).created_at;
    assert_eq!(
        recorded(&fake),
        [
            shop(Metric::TimeToRollback(42)),
            shop(Metric::ReleaseDuration(began + 42 - claimed)),
            shop(Metric::Outcome(ReleaseState::RolledBack)),
        ]
    );
}

#[tokio::test]
async fn states_on_the_way_record_nothing() {
    let (fake, engine) = estate();
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    engine.on_push(&push, T0 + 10).await.expect("claimed");
    assert_eq!(
        fake.record(&shop_release("1.0.0")).state,
        ReleaseState::Migrating
    );
    assert_eq!(recorded(&fake), []);
}
