//! Benchmarks, not tests: AWS calls and sequential round trips per release, and
//! time from the migration's STOPPED event to the last UpdateService, at 3 and
//! 50 services; the calls of one reconcile pass over an idle lane and over 50. Against the local emulator, so times are emulator times; calls
//! and round trips are what they would be against AWS.
//!
//!     cargo test -p ferry-aws --test bench -- --ignored --nocapture --test-threads 1

mod support;

use std::collections::BTreeMap;
use std::time::Instant;

use ferry_aws::handlers;
use support::*;

fn summarise(name: &str, calls: &[Call]) -> usize {
    let mut by_operation: BTreeMap<&str, usize> = BTreeMap::new();
    for call in calls {
        *by_operation.entry(call.operation.as_str()).or_default() += 1;
    }
    let rounds = CallLog::round_trips(calls);
    if std::env::var_os("FERRY_BENCH_TIMELINE").is_some() {
        let origin = calls.iter().map(|c| c.started).min();
        for c in calls {
            let at = |t: Instant| {
                origin
                    .map(|o| (t - o).as_secs_f64() * 1000.0)
                    .unwrap_or(0.0)
            };
            println!(
                "    {:>8.1} ms → {:>8.1} ms  {}",
                at(c.started),
                c.ended.map(at).unwrap_or(f64::NAN),
                c.operation
            );
        }
    }
    println!(
        "  {name:<28} {:>3} calls {:>2} round trips  {}",
        calls.len(),
        rounds,
        by_operation
            .iter()
            .map(|(op, n)| format!("{op}×{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    calls.len()
}

/// The calls made until the last UpdateService ended, and when that was.
fn up_to_last_update(calls: &[Call]) -> (Vec<Call>, Instant) {
    let last = calls
        .iter()
        .filter(|c| c.operation.ends_with("UpdateService"))
        .filter_map(|c| c.ended)
        .max()
        .expect("UpdateService calls");
    let before = calls
        .iter()
        .filter(|c| c.ended.is_some_and(|e| e <= last))
        .cloned()
        .collect();
    (before, last)
}

/// What the end-of-bake schedule delivers to ferry-watch.
fn bake_ended(release_id: &str) -> serde_json::Value {
    serde_json::json!({ "bake_ended": { "release_id": release_id } })
}

async fn measure(services: usize) {
    let shop = if services == 3 {
        Shop::start().await
    } else {
        Shop::start_sized(services).await
    };
    let log = CallLog::default();
    let engine = shop.engine_observed(&log);
    println!("release of {services} services with a migration:");

    let digest = shop.push("1.0.0").await;
    let reply = handlers::deploy(
        &engine,
        REGION,
        ecr_push_event("shop", "1.0.0", &digest),
        now(),
    )
    .await
    .expect("deploy");
    assert_eq!(reply["decisions"][0]["outcome"], "migrating", "{reply}");
    let mut total = summarise("deploy (push → migration)", &log.take());

    let task = reply["decisions"][0]["task"]
        .as_str()
        .expect("task")
        .to_owned();
    let stopped = shop.stop_task(&task, "ferry-emulator:exit=0").await;
    let received = Instant::now();
    let gate = handlers::gate(&engine, REGION, stopped, now())
        .await
        .expect("gate");
    assert_eq!(gate["decisions"][0]["outcome"], "deploying", "{gate}");
    let calls = log.take();
    let (to_update, last_update) = up_to_last_update(&calls);
    total += summarise("gate (stopped → rollout)", &calls);
    println!(
        "  {:<28} {:>2} round trips to the last UpdateService, {:.1} ms from event to last UpdateService (emulator)",
        "",
        CallLog::round_trips(&to_update),
        (last_update - received).as_secs_f64() * 1000.0
    );

    let mut watch_calls = Vec::new();
    let mut last = Vec::new();
    for service in shop.services.clone() {
        let event = shop.finish_deployment(&service, "COMPLETED").await;
        let reply = handlers::watch(&engine, REGION, event, now())
            .await
            .expect("watch");
        last = log.take();
        watch_calls.extend(last.iter().cloned());
        if reply["decisions"][0]["outcome"] == "baking" {
            break;
        }
    }
    total += summarise("watch (all events)", &watch_calls);
    summarise("watch (the final event → BAKING)", &last);
    let id = ferry_core::release::ReleaseId::derive("shop", "prod", &digest).to_string();
    let ended = handlers::watch(&engine, REGION, bake_ended(&id), now())
        .await
        .expect("end of bake");
    assert_eq!(ended["decisions"][0]["outcome"], "succeeded", "{ended}");
    total += summarise("bake ended (timer → known-good)", &log.take());
    println!("  total AWS calls for the release: {total}");

    // The next release is rolling out when its alarm fires.
    let (_, gate) = shop
        .push_and_migrate("1.1.0", "ferry-emulator:exit=0")
        .await;
    assert_eq!(gate["decisions"][0]["outcome"], "deploying", "{gate}");
    log.take();
    let alarm = shop.alarm_event("shop-prod-5xx", "ALARM", "OK");
    let received = Instant::now();
    let reply = handlers::rollback(&engine, REGION, alarm, now())
        .await
        .expect("rollback");
    assert_eq!(reply["decisions"][0]["outcome"], "rolled_back", "{reply}");
    let calls = log.take();
    summarise("rollback (ALARM → known-good)", &calls);
    let (to_update, last_update) = up_to_last_update(&calls);
    println!(
        "  {:<28} {:>2} round trips to the last UpdateService, {:.1} ms from event to last UpdateService (emulator)\n",
        "",
        CallLog::round_trips(&to_update),
        (last_update - received).as_secs_f64() * 1000.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn calls_and_round_trips_per_release() {
    // A fixed latency per AWS call (see ferry_emulator.py), so that sequential
    // round trips show in the timeline instead of the client's own CPU time.
    if std::env::var_os("FERRY_EMULATOR_LATENCY_MS").is_none() {
        std::env::set_var("FERRY_EMULATOR_LATENCY_MS", "40");
    }
    measure(3).await;
    measure(50).await;
}

/// EventBridge's `Scheduled Event`, as the reconcile schedule delivers it.
fn scheduled_event() -> serde_json::Value {
    serde_json::json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": "2026-11-23T10:05:00Z",
        "region": REGION,
        "resources": [format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/ferry-ReconcileFunctionSchedule")],
        "detail": {}
    })
}

/// The calls of one reconcile pass that finds nothing to do.
async fn reconcile_idle(shop: &Shop, log: &CallLog, lanes: usize) -> usize {
    let engine = shop.engine_observed(log);
    log.take();
    let started = Instant::now();
    let reply = handlers::reconcile(&engine, REGION, scheduled_event(), now())
        .await
        .expect("reconcile");
    let elapsed = started.elapsed();
    let decisions = reply["decisions"].as_array().cloned().unwrap_or_default();
    let in_sync = decisions
        .iter()
        .filter(|d| d["outcome"] == "in_sync")
        .count();
    let calls = log.take();
    let name = format!("reconcile, {lanes} idle lane(s)");
    summarise(&name, &calls);
    println!(
        "  {:<28} {in_sync}/{} decisions in_sync, {:.1} ms (emulator)",
        "",
        decisions.len(),
        elapsed.as_secs_f64() * 1000.0
    );
    calls.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn calls_of_a_reconcile_pass_over_idle_lanes() {
    if std::env::var_os("FERRY_EMULATOR_LATENCY_MS").is_none() {
        std::env::set_var("FERRY_EMULATOR_LATENCY_MS", "40");
    }
    println!("reconcile pass (the schedule's event, every lane):");
    // one lane, released and known-good (migration, three services, bake)
    let shop = Shop::start().await;
    shop.release("1.0.0").await;
    let log = CallLog::default();
    reconcile_idle(&shop, &log, 1).await;

    // 50 lanes of one service each, all released by one push and known-good
    let lanes = 50;
    let shop = Shop::start_lanes(lanes).await;
    let engine = shop.engine();
    let digest = shop.push("1.0.0").await;
    let reply = handlers::deploy(
        &engine,
        REGION,
        ecr_push_event("shop", "1.0.0", &digest),
        now(),
    )
    .await
    .expect("deploy");
    let deploying = reply["decisions"]
        .as_array()
        .map(|d| d.iter().filter(|d| d["outcome"] == "deploying").count())
        .unwrap_or_default();
    assert_eq!(deploying, lanes, "{reply}");
    for service in shop.services.clone() {
        let event = shop.finish_deployment(&service, "COMPLETED").await;
        let reply = handlers::watch(&engine, REGION, event, now())
            .await
            .expect("watch");
        assert_eq!(reply["decisions"][0]["outcome"], "succeeded", "{reply}");
    }
    reconcile_idle(&shop, &log, lanes).await;
}
