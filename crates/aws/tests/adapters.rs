//! The adapters' contract with AWS, through the handlers: the real SDK over HTTP
//! against moto, with ferry's ECS extensions and the sample `shop` estate. One
//! release end to end (DescribeTaskDefinition → lossless RegisterTaskDefinition →
//! RunTask → UpdateService → the SSM label) and the secrets existence check
//! (DescribeSecret / GetParameters without decryption). The engine's scenarios are
//! proved on fakes (`crates/core/tests`), the ledger by its contract suite, and
//! what needs the whole system end to end (`tests/e2e`).

mod support;

use ferry_aws::handlers;
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
    assert_eq!(outcome(&replies[2]), "succeeded", "{}", replies[2]);
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
