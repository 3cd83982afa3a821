//! Rollback on the emulator: on alarm, on a failed deployment, on demand —
//! once, every service together, to a known-good release.

mod support;

use ferry_aws::handlers;
use serde_json::{json, Value};
use support::*;

async fn rollback(shop: &Shop, payload: Value) -> Value {
    handlers::respond(handlers::rollback(&shop.engine(), REGION, payload, now()).await)
        .expect("answered")
}

fn outcomes(reply: &Value) -> Vec<String> {
    reply["decisions"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|d| d["outcome"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarm_during_a_rollout_rolls_every_service_back_to_the_known_good_release() {
    let shop = Shop::start().await;
    let (_, good) = shop.release("1.0.0").await;
    let (bad, gate) = shop
        .push_and_migrate("1.1.0", "ferry-emulator:exit=0")
        .await;
    assert_eq!(outcome(&gate), "deploying");
    assert_ne!(shop.services_task_definitions().await, good);

    let reply = rollback(&shop, shop.alarm_event("shop-prod-5xx", "ALARM", "OK")).await;
    assert_eq!(outcomes(&reply), ["rolled_back"], "{reply}");
    assert!(
        reply.to_string().contains("shop-prod-5xx"),
        "the cause is recorded: {reply}"
    );

    assert_eq!(
        shop.services_task_definitions().await,
        good,
        "every service on 1.0.0's revisions"
    );
    let history = shop.parameter_history().await;
    let last = history.last().expect("history");
    assert_eq!(
        (last.1.as_str(), last.2.clone()),
        ("1.0.0", vec!["known-good".to_owned()])
    );
    let item = shop.release_item(&bad).await.expect("release");
    assert_eq!(item["state"], "ROLLED_BACK");
    assert!(item["reason"].contains("alarm shop-prod-5xx"), "{item:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deployment_rolls_back_all_three_services_including_the_two_that_completed() {
    let shop = Shop::start().await;
    let (_, good) = shop.release("1.0.0").await;
    let (bad, _) = shop
        .push_and_migrate("1.1.0", "ferry-emulator:exit=0")
        .await;
    let engine = shop.engine();
    for service in ["api", "worker"] {
        let event = shop.finish_deployment(service, "COMPLETED").await;
        let reply = handlers::watch(&engine, REGION, event, now())
            .await
            .expect("watch");
        assert_eq!(outcome(&reply), "progress", "{reply}");
    }
    let failed = shop.finish_deployment("scheduler", "FAILED").await;
    let reply = handlers::watch(&engine, REGION, failed, now())
        .await
        .expect("watch");
    assert_eq!(outcome(&reply), "rolled_back", "{reply}");

    assert_eq!(
        shop.services_task_definitions().await,
        good,
        "api and worker went back too"
    );
    let item = shop.release_item(&bad).await.expect("release");
    assert_eq!(item["state"], "ROLLED_BACK");
    assert!(item["reason"].contains("scheduler"), "{item:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_rollback_goes_to_the_previous_known_good_release_or_to_a_named_tag() {
    let shop = Shop::start().await;
    let (_, on_100) = shop.release("1.0.0").await;
    let (_, on_110) = shop.release("1.1.0").await;
    shop.release("1.2.0").await;

    let previous = rollback(
        &shop,
        json!({"rollback": {"app": "shop", "environment": "prod", "reason": "checkout errors"}}),
    )
    .await;
    assert_eq!(outcomes(&previous), ["rolled_back"], "{previous}");
    assert_eq!(shop.services_task_definitions().await, on_110);

    // Frozen after a rollback; the operator names an older known-good tag.
    let named = rollback(
        &shop,
        json!({"rollback": {"app": "shop", "environment": "prod", "to": "1.0.0", "reason": "1.1.0 too"}}),
    )
    .await;
    assert_eq!(outcomes(&named), ["rolled_back"], "{named}");
    assert_eq!(shop.services_task_definitions().await, on_100);
    assert_eq!(
        shop.parameter_history().await.last().map(|h| h.1.clone()),
        Some("1.0.0".into())
    );

    // 1.2.0 was rolled back: it is no target any more.
    let refused = rollback(
        &shop,
        json!({"rollback": {"app": "shop", "environment": "prod", "to": "1.2.0", "reason": "x"}}),
    )
    .await;
    assert_eq!(refused["ok"], false, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not a known-good release"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_flapping_alarms_roll_back_once() {
    let shop = Shop::start().await;
    let (_, good) = shop.release("1.0.0").await;
    shop.push_and_migrate("1.1.0", "ferry-emulator:exit=0")
        .await;
    let engine = shop.engine();
    let alarm = shop.alarm_event("shop-prod-5xx", "ALARM", "OK");

    let replies = futures_util::future::join_all(
        (0..5).map(|_| handlers::rollback(&engine, REGION, alarm.clone(), now())),
    )
    .await;
    let rolled = replies
        .iter()
        .filter(|r| {
            r.as_ref()
                .map(|r| outcome(r) == "rolled_back")
                .unwrap_or(false)
        })
        .count();
    assert_eq!(rolled, 1, "{replies:?}");
    let deployments_after_one = shop.deployments().await;
    let versions_after_one = shop.parameter_history().await.len();

    // Flapping: OK, then ALARM again.
    let ok = rollback(&shop, shop.alarm_event("shop-prod-5xx", "OK", "ALARM")).await;
    assert_eq!(outcomes(&ok), ["ignored"]);
    let again = rollback(&shop, shop.alarm_event("shop-prod-5xx", "ALARM", "OK")).await;
    assert_eq!(outcomes(&again), ["ignored"], "{again}");
    assert!(
        again.to_string().contains("nothing to roll back to"),
        "{again}"
    );

    assert_eq!(
        shop.deployments().await,
        deployments_after_one,
        "no second rollout"
    );
    assert_eq!(
        shop.parameter_history().await.len(),
        versions_after_one,
        "no second SSM write"
    );
    assert_eq!(shop.services_task_definitions().await, good);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ok_and_insufficient_data_change_nothing() {
    let shop = Shop::start().await;
    shop.release("1.0.0").await;
    shop.push_and_migrate("1.1.0", "ferry-emulator:exit=0")
        .await;
    let before = shop.snapshot().await;
    for (state, previous) in [("OK", "ALARM"), ("INSUFFICIENT_DATA", "OK")] {
        let reply = rollback(&shop, shop.alarm_event("shop-prod-5xx", state, previous)).await;
        assert_eq!(outcomes(&reply), ["ignored"], "{reply}");
    }
    assert_eq!(shop.snapshot().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_rollback_the_bad_digest_is_ignored_a_new_push_is_held_and_unfreeze_deploys_it() {
    let shop = Shop::start().await;
    shop.release("1.0.0").await;
    let engine = shop.engine();
    let digest = shop.push("1.1.0").await;
    let bad_push = ecr_push_event("shop", "1.1.0", &digest);
    let reply = handlers::deploy(&engine, REGION, bad_push.clone(), now())
        .await
        .expect("deploy");
    assert_eq!(outcome(&reply), "migrating");
    rollback(&shop, shop.alarm_event("shop-prod-5xx", "ALARM", "OK")).await;

    // The bad digest, delivered again: nothing.
    let before = shop.snapshot().await;
    let again = handlers::deploy(&engine, REGION, bad_push, now())
        .await
        .expect("deploy");
    assert_eq!(outcome(&again), "refused", "{again}");
    assert!(again.to_string().contains("marked bad"), "{again}");
    assert_eq!(shop.snapshot().await, before);

    // A new digest while frozen: held, not deployed.
    let tasks = shop.migration_tasks().await.len();
    let fixed = shop.push("1.1.1").await;
    let held = handlers::deploy(
        &engine,
        REGION,
        ecr_push_event("shop", "1.1.1", &fixed),
        now(),
    )
    .await
    .expect("deploy");
    assert_eq!(outcome(&held), "held", "{held}");
    assert_eq!(
        shop.migration_tasks().await.len(),
        tasks,
        "no migration for the held push"
    );

    // Unfreeze: the held push proceeds.
    let unfrozen = rollback(
        &shop,
        json!({"unfreeze": {"app": "shop", "environment": "prod"}}),
    )
    .await;
    assert_eq!(outcomes(&unfrozen), ["unfrozen", "migrating"], "{unfrozen}");
    assert_eq!(shop.migration_tasks().await.len(), tasks + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_without_a_known_good_release_is_a_clear_error_and_changes_nothing() {
    let shop = Shop::start().await;
    let engine = shop.engine();
    let digest = shop.push("1.0.0").await;
    handlers::deploy(
        &engine,
        REGION,
        ecr_push_event("shop", "1.0.0", &digest),
        now(),
    )
    .await
    .expect("deploy");
    let before = shop.snapshot().await;

    let alarm = rollback(&shop, shop.alarm_event("shop-prod-5xx", "ALARM", "OK")).await;
    assert_eq!(outcomes(&alarm), ["refused"], "{alarm}");
    assert!(
        alarm.to_string().contains("no known-good release"),
        "{alarm}"
    );
    let manual = rollback(
        &shop,
        json!({"rollback": {"app": "shop", "environment": "prod", "reason": "test"}}),
    )
    .await;
    assert_eq!(manual["ok"], false, "{manual}");
    assert!(manual["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("no known-good release"));
    assert_eq!(shop.snapshot().await, before);
}
