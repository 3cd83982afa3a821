//! The adapters' contract with AWS, through the handlers: the real SDK over HTTP
//! against moto, with ferry's ECS extensions and the sample `shop` estate. One
//! release end to end (DescribeTaskDefinition → lossless RegisterTaskDefinition →
//! RunTask → UpdateService → the SSM label) and the secrets existence check
//! (DescribeSecret / GetParameters without decryption); the bake's two adapters on
//! their own: the guarding alarms (DescribeAlarms, after PutMetricAlarm and
//! SetAlarmState) and the timer that ends a bake (CreateSchedule, idempotent);
//! the revisions `keep` prunes (ListTaskDefinitions, DeregisterTaskDefinition) and
//! the status a rollback reads from DescribeTaskDefinition.
//! The engine's scenarios are proved on fakes (`crates/core/tests`), the ledger
//! by its contract suite, and what needs the whole system end to end (`tests/e2e`).

mod support;

use ferry_aws::ecs::EcsAdapter;
use ferry_aws::handlers;
use ferry_core::ports::{Ecs, TaskDefinitionView};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_releases_three_services_after_a_passing_migration() {
    let shop = Shop::start().await;
    let before = shop.services_task_definitions().await;

    let (id, gate) = shop
        .push_and_migrate("1.0.0", "ferry-emulator:exit=0")
        .await;
    assert_eq!(outcome(&gate), "deploying", "{gate}");

    // Every service runs a new revision of its own family, pinned by digest.
    let after = shop.services_task_definitions().await;
    for service in SERVICES {
        assert_ne!(before[service], after[service], "{service} was not updated");
        assert_eq!(shop.revisions(&format!("shop-{service}")).await.len(), 2);
        let described = shop
            .emulator
            .ecs()
            .describe_task_definition()
            .task_definition(&after[service])
            .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
            .send()
            .await
            .expect("describe");
        let td = described.task_definition().expect("td");
        let image = td.container_definitions()[0].image().expect("image");
        assert!(
            image.starts_with(&format!("{}/shop@sha256:", registry())),
            "{image}"
        );
        let tags: Vec<(String, String)> = described
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().into(),
                    t.value().unwrap_or_default().into(),
                )
            })
            .collect();
        assert!(
            tags.contains(&("ferry:release".into(), id.clone())),
            "{tags:?}"
        );
        assert!(
            tags.contains(&("team".into(), "shop".into())),
            "user tags kept: {tags:?}"
        );
        // Secrets stay references; ferry copies them, never resolves them.
        assert_eq!(td.container_definitions()[0].secrets().len(), 2);
    }
    let history = shop.parameter_history().await;
    assert_eq!(history.last().map(|h| h.1.as_str()), Some("1.0.0"));

    let replies = shop.complete_all().await;
    assert_eq!(outcome(&replies[0]), "progress");
    // The environment has an alarm and no `bake` key: the window derives from it
    // (DescribeAlarms), and an EventBridge Scheduler schedule ends it.
    assert_eq!(outcome(&replies[2]), "baking", "{}", replies[2]);
    let history = shop.parameter_history().await;
    assert!(
        history.iter().all(|h| h.2.is_empty()),
        "not labelled while baking: {history:?}"
    );
    let schedules = shop
        .emulator
        .scheduler()
        .list_schedules()
        .send()
        .await
        .expect("schedules");
    let schedule = schedules
        .schedules()
        .first()
        .expect("the end-of-bake schedule");
    let named = ferry_aws::timers::schedule_name(
        &ferry_core::release::ReleaseId::parse(&id).expect("an id"),
    );
    assert_eq!(schedule.name(), Some(named.as_str()));
    let ended = shop.end_bake(&id).await;
    assert_eq!(outcome(&ended), "succeeded", "{ended}");
    let item = shop.release_item(&id).await.expect("release recorded");
    assert_eq!(item["state"], "SUCCEEDED");
    let history = shop.parameter_history().await;
    let last = history.last().expect("history");
    assert_eq!(last.1, "1.0.0");
    assert_eq!(
        last.2,
        vec!["known-good".to_owned()],
        "known-good label on the release's version"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_secret_fails_preflight_naming_the_secret_and_touches_nothing() {
    let shop = Shop::start().await;
    // The api's next revision references a secret that was never created.
    let ecs = shop.emulator.ecs();
    let current = shop.services_task_definitions().await["api"].clone();
    let image = ecs
        .describe_task_definition()
        .task_definition(&current)
        .send()
        .await
        .expect("describe")
        .task_definition()
        .and_then(|t| {
            t.container_definitions()
                .first()
                .and_then(|c| c.image().map(str::to_owned))
        })
        .expect("image");
    let broken = shop
        .task_definition("shop-api", "api", &image)
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("token-refresher")
                .image(&image)
                .essential(false)
                .memory(128)
                .secrets(
                    aws_sdk_ecs::types::Secret::builder()
                        .name("TOKEN")
                        .value_from(format!(
                        "arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:shop/prod/missing-AbCdEf"
                    ))
                        .build()
                        .expect("secret"),
                )
                .build(),
        );
    let arn = register(&ecs, broken).await;
    ecs.update_service()
        .cluster(CLUSTER)
        .service("api")
        .task_definition(&arn)
        .send()
        .await
        .expect("point api at the broken revision");
    let engine = shop.engine();
    let digest = shop.push("1.0.0").await;
    let before = shop.snapshot().await;

    let reply = handlers::deploy(
        &engine,
        REGION,
        ecr_push_event("shop", "1.0.0", &digest),
        now(),
    )
    .await
    .expect("deploy");
    assert_eq!(outcome(&reply), "preflight_failed", "{reply}");
    let problems = reply["decisions"][0]["problems"].to_string();
    assert!(problems.contains("shop/prod/missing-AbCdEf"), "{problems}");

    // Only the ledger records the failed release; ECS and SSM are as they were.
    let after = shop.snapshot().await;
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("ledger:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&after), strip(&before));
    let item = shop
        .release_item(&release_id(&reply))
        .await
        .expect("recorded");
    assert_eq!(item["state"], "FAILED");
}

/// A metric alarm on the shop api's 5xx count, as an environment's `alarms` name it.
async fn put_alarm(cloudwatch: &aws_sdk_cloudwatch::Client, name: &str, period: i32, periods: i32) {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Statistic};
    cloudwatch
        .put_metric_alarm()
        .alarm_name(name)
        .namespace("AWS/ApplicationELB")
        .metric_name("HTTPCode_Target_5XX_Count")
        .statistic(Statistic::Sum)
        .period(period)
        .evaluation_periods(periods)
        .threshold(5.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("PutMetricAlarm");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_alarms_reads_state_time_reason_period_and_evaluation_periods() {
    use aws_sdk_cloudwatch::types::StateValue;
    use ferry_aws::alarms::CloudWatchAlarms;
    use ferry_core::ports::{AlarmState, Alarms};

    let emulator = Emulator::start();
    let cloudwatch = emulator.cloudwatch();
    put_alarm(&cloudwatch, "shop-prod-5xx", 60, 3).await;
    put_alarm(&cloudwatch, "shop-prod-latency", 300, 2).await;
    let before = now();
    cloudwatch
        .set_alarm_state()
        .alarm_name("shop-prod-5xx")
        .state_value(StateValue::Alarm)
        .state_reason("Threshold Crossed: 1 datapoint [12.0] was greater than the threshold (5.0).")
        .send()
        .await
        .expect("SetAlarmState");
    let after = now();

    let alarms = CloudWatchAlarms::new(cloudwatch);
    let names = ["shop-prod-5xx", "shop-prod-latency", "never-created"].map(str::to_owned);
    let mut found = alarms.describe(&names).await.expect("DescribeAlarms");
    found.sort_by(|a, b| a.name.cmp(&b.name));

    assert_eq!(found.len(), 2, "a missing alarm is left out: {found:?}");
    let raised = &found[0];
    assert_eq!(raised.name, "shop-prod-5xx");
    assert_eq!(raised.state, AlarmState::Alarm);
    assert_eq!(
        raised.reason,
        "Threshold Crossed: 1 datapoint [12.0] was greater than the threshold (5.0)."
    );
    assert!(
        (before.saturating_sub(1)..=after + 1).contains(&raised.state_updated_at),
        "{} not within {before}..={after}",
        raised.state_updated_at
    );
    assert_eq!(raised.period, Some(60));
    assert_eq!(raised.evaluation_periods, Some(3));

    let quiet = &found[1];
    assert_eq!(quiet.name, "shop-prod-latency");
    assert_ne!(quiet.state, AlarmState::Alarm);
    assert_eq!(quiet.period, Some(300));
    assert_eq!(quiet.evaluation_periods, Some(2));

    assert_eq!(
        alarms.describe(&[]).await.expect("no names"),
        vec![],
        "no names is no alarms, never every alarm of the account"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_alarms_asks_for_at_most_100_names_per_call() {
    use ferry_aws::alarms::CloudWatchAlarms;
    use ferry_core::ports::Alarms;

    let emulator = Emulator::start();
    let cloudwatch = emulator.cloudwatch();
    let names: Vec<String> = (0..150).map(|i| format!("guard-{i:03}")).collect();
    for name in names.iter().step_by(10) {
        put_alarm(&cloudwatch, name, 60, 1).await;
    }
    let calls = CallLog::default();
    let observed = aws_sdk_cloudwatch::Client::from_conf(
        aws_sdk_cloudwatch::config::Builder::from(&emulator.sdk)
            .interceptor(calls.clone())
            .build(),
    );
    let mut found: Vec<String> = CloudWatchAlarms::new(observed)
        .describe(&names)
        .await
        .expect("DescribeAlarms")
        .into_iter()
        .map(|a| a.name)
        .collect();
    found.sort();
    let expected: Vec<String> = names.iter().step_by(10).cloned().collect();
    assert_eq!(found, expected);
    let operations: Vec<String> = calls.take().into_iter().map(|c| c.operation).collect();
    assert_eq!(
        operations,
        vec!["cloudwatch:DescribeAlarms", "cloudwatch:DescribeAlarms"],
        "150 names: 100, then 50"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_bake_at_creates_one_self_deleting_schedule_per_release_and_again_is_a_no_op() {
    use aws_sdk_scheduler::types::{ActionAfterCompletion, FlexibleTimeWindowMode};
    use ferry_aws::timers::{schedule_name, SchedulerTimers};
    use ferry_core::names::ReleaseId;
    use ferry_core::ports::Timers;

    let emulator = Emulator::start();
    let scheduler = emulator.scheduler();
    let target = timer_target();
    let timers = SchedulerTimers::new(scheduler.clone(), target.clone());
    let digest = "sha256:3f2a9c1b7e40d5a1c0ffee0000000000000000000000000000000000000000aa";
    let release = ReleaseId::derive("shop", "prod", digest);
    // 2026-12-01T09:30:05Z
    timers
        .end_bake_at(&release, 1_796_117_405)
        .await
        .expect("CreateSchedule");

    let name = schedule_name(&release);
    assert!(name.starts_with("ferry-bake-3f2a9c1b7e40d5a1-"), "{name}");
    let schedule = scheduler
        .get_schedule()
        .name(&name)
        .send()
        .await
        .expect("GetSchedule");
    assert_eq!(schedule.group_name(), Some("default"));
    assert_eq!(
        schedule.schedule_expression(),
        Some("at(2026-12-01T09:30:05)")
    );
    assert_eq!(schedule.schedule_expression_timezone(), Some("UTC"));
    assert_eq!(
        schedule.flexible_time_window().map(|w| w.mode()),
        Some(&FlexibleTimeWindowMode::Off)
    );
    assert_eq!(
        schedule.action_after_completion(),
        Some(&ActionAfterCompletion::Delete)
    );
    let sent = schedule.target().expect("target");
    assert_eq!(sent.arn(), target.target_arn);
    assert_eq!(sent.role_arn(), target.role_arn);
    assert_eq!(
        sent.input(),
        Some(r#"{"bake_ended":{"release_id":"shop/prod/3f2a9c1b7e40d5a1"}}"#)
    );
    let retry = sent.retry_policy().expect("retry policy");
    assert_eq!(retry.maximum_event_age_in_seconds(), Some(3600));
    assert_eq!(retry.maximum_retry_attempts(), Some(10));
    assert_eq!(
        sent.dead_letter_config().and_then(|d| d.arn()),
        target.dead_letter_arn.as_deref()
    );

    // A redelivery schedules the same release again: Ok, and nothing new.
    timers
        .end_bake_at(&release, 1_796_117_405)
        .await
        .expect("an existing schedule is not an error");
    timers
        .end_bake_at(&release, 1_796_117_999)
        .await
        .expect("the first schedule stands");
    let listed = scheduler
        .list_schedules()
        .name_prefix("ferry-bake-")
        .send()
        .await
        .expect("ListSchedules");
    let names: Vec<&str> = listed.schedules().iter().filter_map(|s| s.name()).collect();
    assert_eq!(names, vec![name.as_str()]);
    let again = scheduler
        .get_schedule()
        .name(&name)
        .send()
        .await
        .expect("GetSchedule");
    assert_eq!(again.schedule_expression(), Some("at(2026-12-01T09:30:05)"));

    // The same image in another environment is another schedule.
    timers
        .end_bake_at(&ReleaseId::derive("shop", "staging", digest), 1_796_117_405)
        .await
        .expect("CreateSchedule");
    let listed = scheduler
        .list_schedules()
        .name_prefix("ferry-bake-3f2a9c1b7e40d5a1-")
        .send()
        .await
        .expect("ListSchedules");
    assert_eq!(listed.schedules().len(), 2);
}

/// A one-off task of the migration family, as ferry starts one.
async fn run_migration_task(shop: &Shop, started_by: &str) -> String {
    shop.emulator
        .ecs()
        .run_task()
        .cluster(CLUSTER)
        .task_definition(MIGRATION_FAMILY)
        .started_by(started_by)
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .network_configuration(shop.network())
        .send()
        .await
        .expect("RunTask")
        .tasks()
        .first()
        .and_then(|t| t.task_arn())
        .expect("a task")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_tasks_tells_running_stopped_and_missing_tasks_apart_in_the_order_asked() {
    use ferry_aws::ecs::EcsAdapter;
    use ferry_core::ports::{Ecs, TaskPhase};

    let shop = Shop::start().await;
    let started_by = "ferry/shop/prod/3f2a9c1b7e40d5a1";
    let running = run_migration_task(&shop, started_by).await;
    let stopped = run_migration_task(&shop, started_by).await;
    // the event ECS emits for the stopped task, read by the STOPPED event parser
    let event = shop.stop_task(&stopped, "ferry-emulator:exit=1").await;
    let from_event = ferry_aws::inbound::task_stopped(event)
        .expect("a task state change")
        .expect("stopped");
    let missing =
        format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER}/00000000000000000000000000000000");

    let ecs = EcsAdapter::new(shop.emulator.ecs());
    let asked = [missing.clone(), stopped.clone(), running.clone()];
    let statuses = ecs
        .describe_tasks(CLUSTER, &asked)
        .await
        .expect("DescribeTasks");

    let arns: Vec<&str> = statuses.iter().map(|s| s.arn.as_str()).collect();
    assert_eq!(arns, asked.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(statuses[0].phase, TaskPhase::Missing);
    assert_eq!(statuses[0].started_by, None);
    assert_eq!(
        statuses[1].phase,
        TaskPhase::Stopped(from_event.task),
        "a described stopped task reads exactly as its STOPPED event"
    );
    assert_eq!(statuses[1].started_by.as_deref(), Some(started_by));
    let TaskPhase::Stopped(task) = &statuses[1].phase else {
        panic!("stopped");
    };
    assert_eq!(task.containers[0].exit_code, Some(1));
    assert_eq!(statuses[2].phase, TaskPhase::Running);
    assert_eq!(statuses[2].started_by.as_deref(), Some(started_by));

    // A task id (the ARN's last part) is found as its ARN.
    let id = running.rsplit('/').next().expect("an id").to_owned();
    let by_id = ecs
        .describe_tasks(CLUSTER, std::slice::from_ref(&id))
        .await
        .expect("DescribeTasks");
    assert_eq!(by_id[0].arn, running);
    assert_eq!(by_id[0].phase, TaskPhase::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_tasks_asks_for_at_most_100_tasks_per_call() {
    use ferry_aws::ecs::EcsAdapter;
    use ferry_core::ports::{Ecs, TaskPhase};

    let shop = Shop::start().await;
    let running = run_migration_task(&shop, "ferry/shop/prod/3f2a9c1b7e40d5a1").await;
    let mut asked: Vec<String> = (0..100)
        .map(|i| format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER}/{i:032x}"))
        .collect();
    asked.push(running.clone());
    let calls = CallLog::default();
    let observed = aws_sdk_ecs::Client::from_conf(
        aws_sdk_ecs::config::Builder::from(&shop.emulator.sdk)
            .interceptor(calls.clone())
            .build(),
    );
    let statuses = EcsAdapter::new(observed)
        .describe_tasks(CLUSTER, &asked)
        .await
        .expect("DescribeTasks");
    assert_eq!(statuses.len(), 101);
    assert!(statuses[..100]
        .iter()
        .all(|s| s.phase == TaskPhase::Missing));
    assert_eq!(statuses[100].phase, TaskPhase::Running);
    let operations: Vec<String> = calls.take().into_iter().map(|c| c.operation).collect();
    assert_eq!(
        operations,
        vec!["ecs:DescribeTasks", "ecs:DescribeTasks"],
        "101 tasks: 100, then 1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_lists_every_tagged_image_over_every_page() {
    use ferry_aws::ecr::EcrRegistry;
    use ferry_core::ports::Registry;

    let shop = Shop::start().await; // 0.9.0 pushed
    let mut pushed = vec![("0.9.0".to_owned(), shop.image_digest("0.9.0").await)];
    for tag in ["1.0.0", "1.1.0", "1.2.0", "1.3.0"] {
        pushed.push((tag.to_owned(), shop.push(tag).await));
    }
    // An untagged image (PutImage without a tag) is not a release candidate.
    shop.emulator
        .ecr()
        .put_image()
        .repository_name("shop")
        .image_manifest(
            serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1,
                           "digest": format!("sha256:{}", "ab".repeat(32))},
                "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 2,
                            "digest": format!("sha256:{}", "cd".repeat(32))}]
            })
            .to_string(),
        )
        .send()
        .await
        .expect("untagged push");

    let calls = CallLog::default();
    let observed = aws_sdk_ecr::Client::from_conf(
        aws_sdk_ecr::config::Builder::from(&shop.emulator.sdk)
            .interceptor(calls.clone())
            .build(),
    );
    let registry = EcrRegistry::new(observed).with_page_size(2);
    let mut images = registry.images("shop").await.expect("DescribeImages");
    images.sort_by(|a, b| a.tags.cmp(&b.tags));
    let found: Vec<(String, String)> = images
        .iter()
        .map(|i| (i.tags.join(","), i.digest.clone()))
        .collect();
    assert_eq!(
        found, pushed,
        "every tagged image, none twice, no untagged one"
    );
    assert!(images
        .iter()
        .all(|i| i.registry_id == ACCOUNT && i.pushed_at.is_some()));
    let operations: Vec<String> = calls.take().into_iter().map(|c| c.operation).collect();
    assert_eq!(
        operations,
        vec!["ecr:DescribeImages"; 3],
        "5 images, 2 a page"
    );

    assert_eq!(
        EcrRegistry::new(shop.emulator.ecr())
            .images("no-such-repository")
            .await
            .expect("a missing repository"),
        vec![],
        "a repository that does not exist has no images"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_lists_the_primary_first_with_its_revision_rollout_state_and_start() {
    use ferry_aws::ecs::EcsAdapter;
    use ferry_core::ports::{Ecs, RolloutState, ServiceView};

    let shop = Shop::start().await;
    let ecs = EcsAdapter::new(shop.emulator.ecs());
    let before = shop.services_task_definitions().await["api"].clone();
    let next = register(
        &shop.emulator.ecs(),
        shop.task_definition("shop-api", "api", &format!("{}/shop:0.9.1", registry())),
    )
    .await;
    let sent_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs();
    shop.emulator
        .ecs()
        .update_service()
        .cluster(CLUSTER)
        .service("api")
        .task_definition(&next)
        .send()
        .await
        .expect("UpdateService");

    let deployments = |lookup: ferry_core::ports::ServiceLookup<ferry_aws::ecs::EcsService>| {
        lookup
            .found
            .into_iter()
            .find(|s| s.name() == "api")
            .expect("api")
            .deployments()
    };
    let rolling = deployments(
        ecs.describe_services(CLUSTER, &["api".to_owned()])
            .await
            .expect("DescribeServices"),
    );
    assert!(rolling.len() >= 2, "{rolling:?}");
    assert!(rolling[0].primary && !rolling[1..].iter().any(|d| d.primary));
    assert_eq!(rolling[0].task_definition, next);
    assert_eq!(rolling[0].rollout, Some(RolloutState::InProgress));
    assert!(rolling[0].id.starts_with("ecs-svc/"), "{}", rolling[0].id);
    assert_eq!(
        rolling[1].task_definition, before,
        "the deployment it replaces"
    );
    let began = rolling[0]
        .created_at
        .expect("createdAt of the new deployment");
    assert!(
        began >= sent_at,
        "began {began}, UpdateService sent {sent_at}"
    );
    assert!(
        rolling[1]
            .created_at
            .is_some_and(|earlier| earlier <= began),
        "{rolling:?}"
    );

    shop.finish_deployment("api", "COMPLETED").await;
    let done = deployments(
        ecs.describe_services(CLUSTER, &["api".to_owned()])
            .await
            .expect("DescribeServices"),
    );
    assert_eq!(done[0].id, rolling[0].id);
    assert_eq!(done[0].rollout, Some(RolloutState::Completed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_revisions_lists_one_familys_active_revisions_and_deregister_retires_one() {
    let shop = Shop::start().await;
    let client = shop.emulator.ecs();
    let ecs = EcsAdapter::new(client.clone());
    let image = format!("{}/shop:0.9.0", registry());
    // shop-api:1 runs api; :2 and :3 follow, and a family whose name starts the same.
    for _ in 0..2 {
        register(&client, shop.task_definition("shop-api", "api", &image)).await;
    }
    let canary = register(
        &client,
        shop.task_definition("shop-api-canary", "api", &image),
    )
    .await;
    let api = |revision: u32| {
        format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/shop-api:{revision}")
    };

    let mut listed = ecs.list_revisions("shop-api").await.expect("listed");
    listed.sort();
    assert_eq!(listed, [api(1), api(2), api(3)]);
    assert!(!listed.contains(&canary));

    ecs.deregister(&api(2)).await.expect("deregistered");

    let mut listed = ecs.list_revisions("shop-api").await.expect("listed");
    listed.sort();
    assert_eq!(listed, [api(1), api(3)], "only ACTIVE revisions are listed");
    let retired = ecs
        .describe_task_definition(&api(2))
        .await
        .expect("described");
    assert!(!retired.is_active(), "a deregistered revision is INACTIVE");
    assert!(ecs
        .describe_task_definition(&api(3))
        .await
        .expect("described")
        .is_active());

    // What a rollback reads as "deregistered": UpdateService's refusal.
    let refused = ecs
        .restore_service(CLUSTER, "api", &api(2))
        .await
        .expect_err("ECS refuses an INACTIVE revision");
    assert_eq!(
        refused.code.as_deref(),
        Some("ClientException"),
        "{refused}"
    );
    assert!(refused.message.contains("inactive"), "{refused}");

    let unknown = ecs
        .deregister(&api(99))
        .await
        .expect_err("no such revision");
    assert_eq!(unknown.operation, "ecs:DeregisterTaskDefinition");
    assert!(!unknown.retryable, "{unknown}");
}
