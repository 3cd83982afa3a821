//! The release engine against in-memory AWS (`fakes`): each test is one scenario an
//! operator cares about, asserting what they would check in the console — the
//! ledger, the services' task definitions, the SSM parameter's history, the audit
//! events, and which AWS calls were (not) made.

mod fakes;

use std::pin::pin;

use fakes::*;
use ferry_core::engine::{
    Decision, DeployRequest, DeploymentOutcome, EngineError, Outcome, Push, TaskStopped,
};
use ferry_core::ports::ReleasePointer;
use ferry_core::release::{ReleaseId, ReleaseState};

// ---------------------------------------------------------------------------
// Helpers: one event of each kind, as the functions would hand it to the engine.

/// The one decision of an invocation that concerns one environment.
fn only(decisions: Vec<Decision>) -> Decision {
    assert_eq!(decisions.len(), 1, "decisions: {decisions:?}");
    decisions.into_iter().next().unwrap()
}

/// An image `shop:<tag>` is pushed `seconds` after T0 and its event delivered then.
async fn push_shop(engine: &FakeEngine, fake: &FakeAws, tag: &str, seconds: u64) -> Decision {
    let push = fake.push(SHOP_REPOSITORY, tag, &at(seconds));
    deliver(engine, &push, seconds).await
}

async fn deliver(engine: &FakeEngine, push: &Push, seconds: u64) -> Decision {
    only(
        engine
            .on_push(push, T0 + seconds)
            .await
            .expect("the push is handled"),
    )
}

/// The migration of `shop:<tag>` stops after running from `started` to `stopped`
/// (seconds after T0) with `exit_code`.
fn migration_of(
    fake: &FakeAws,
    tag: &str,
    exit_code: i32,
    started: u64,
    stopped: u64,
) -> TaskStopped {
    let task = fake.migration_task(&shop_release(tag));
    migration_exited(&task, exit_code, T0 + started, T0 + stopped)
}

async fn stop(engine: &FakeEngine, stopped: &TaskStopped) -> Decision {
    let now = stopped.task.stopped_at.unwrap_or(T0);
    engine
        .on_task_stopped(stopped, now)
        .await
        .expect("the stopped task is handled")
}

/// The deployment ferry started on a shop service ends with `outcome`.
async fn shop_deployment(
    engine: &FakeEngine,
    fake: &FakeAws,
    service: &str,
    outcome: DeploymentOutcome,
) -> Decision {
    let id = fake.last_deployment(SHOP_CLUSTER, service);
    engine
        .on_deployment(&deployment(SHOP_CLUSTER, service, &id, outcome), T0 + 600)
        .await
        .expect("the deployment change is handled")
}

/// `shop:<tag>` pushed at `seconds`, migrated, and every service completed.
async fn release_shop(engine: &FakeEngine, fake: &FakeAws, tag: &str, seconds: u64) -> ReleaseId {
    let decision = push_shop(engine, fake, tag, seconds).await;
    assert!(
        matches!(decision.outcome, Outcome::Migrating { .. }),
        "{decision:?}"
    );
    let decision = stop(
        engine,
        &migration_of(fake, tag, 0, seconds + 5, seconds + 60),
    )
    .await;
    assert!(
        matches!(decision.outcome, Outcome::Deploying { .. }),
        "{decision:?}"
    );
    let mut last = None;
    for service in SHOP_SERVICES {
        last = Some(shop_deployment(engine, fake, service, DeploymentOutcome::Completed).await);
    }
    assert_eq!(last.unwrap().outcome, Outcome::Succeeded);
    shop_release(tag)
}

/// Polls `future` until `condition` holds, failing if it finishes first.
fn transitions(list: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
    list.iter()
        .map(|(s, p)| ((*s).to_owned(), p.map(str::to_owned)))
        .collect()
}

fn revision(service: &str, n: usize) -> String {
    task_definition_arn(&format!("shop-{service}"), n)
}

fn assert_services_untouched(fake: &FakeAws) {
    assert_eq!(fake.count("ecs:UpdateService"), 0, "{:?}", fake.calls());
    for service in SHOP_SERVICES {
        assert_eq!(
            fake.service(SHOP_CLUSTER, service).task_definition,
            revision(service, 1),
            "{service} still runs its original revision"
        );
    }
}

fn parameter_values(fake: &FakeAws, name: &str) -> Vec<String> {
    fake.parameter_history(name)
        .into_iter()
        .map(|v| v.value)
        .collect()
}

// ---------------------------------------------------------------------------
// The happy path

#[tokio::test]
async fn a_push_runs_the_migration_before_any_service_is_touched() {
    let (fake, engine) = estate();

    let decision = push_shop(&engine, &fake, "1.0.0", 10).await;

    let id = shop_release("1.0.0");
    let digest = digest_of(SHOP_REPOSITORY, "1.0.0");
    assert_eq!(decision.release_id.as_deref(), Some(id.as_str()));
    let Outcome::Migrating {
        task,
        task_definitions,
    } = decision.outcome
    else {
        panic!("expected the migration to run: {decision:?}");
    };
    assert_eq!(
        task_definitions,
        vec![
            revision("api", 2),
            revision("worker", 2),
            revision("scheduler", 2),
            task_definition_arn(MIGRATION_FAMILY, 2),
        ]
    );

    // The migration runs the new image, pinned by digest, launched like the first service.
    let migration = fake.migration_task(&id);
    assert_eq!(migration.arn, task);
    assert_eq!(migration.cluster, SHOP_CLUSTER);
    assert_eq!(migration.started_by, format!("ferry/{id}"));
    assert_eq!(migration.like, "api");
    assert_eq!(
        migration.task_definition,
        task_definition_arn(MIGRATION_FAMILY, 2)
    );
    assert!(migration
        .tags
        .contains(&("ferry:release".into(), id.to_string())));
    assert!(migration
        .tags
        .contains(&("ferry:env".into(), "shop/prod".into())));
    assert_eq!(
        fake.task_definition(&migration.task_definition)
            .container(MIGRATION_CONTAINER)
            .image,
        pinned(SHOP_REPOSITORY, &digest)
    );

    // Every service's new revision is registered, but no service is touched yet.
    assert_services_untouched(&fake);
    let api = fake.task_definition(&revision("api", 2));
    assert_eq!(api.container("app").image, pinned(SHOP_REPOSITORY, &digest));
    assert_eq!(
        api.container("datadog").image,
        SIDECAR_IMAGE,
        "sidecar untouched"
    );
    assert_eq!(
        api.tags,
        vec![
            ("team".to_owned(), "payments".to_owned()),
            ("ferry:release".to_owned(), id.to_string()),
            ("ferry:env".to_owned(), "shop/prod".to_owned()),
        ],
        "the revision keeps its own tags and carries ferry's"
    );
    assert_eq!(fake.count("ecs:RegisterTaskDefinition"), 4);

    // The public record says 1.0.0; the ledger knows everything the next step needs.
    assert_eq!(parameter_values(&fake, SHOP_PARAMETER), ["0.9.0", "1.0.0"]);
    let record = fake.record(&id);
    assert_eq!(record.state, ReleaseState::Migrating);
    assert_eq!(record.previous_tag.as_deref(), Some("0.9.0"));
    assert_eq!(record.migration_task.as_deref(), Some(task.as_str()));
    assert_eq!(record.migration_deadline, Some(T0 + 10 + MIGRATION_TIMEOUT));
    assert_eq!(record.migration_essential_containers, [MIGRATION_CONTAINER]);
    assert_eq!(record.parameter_version, Some(2));
    assert_eq!(record.task_definitions["api"], revision("api", 2));
    assert_eq!(
        record.task_definitions["scheduler"],
        revision("scheduler", 2)
    );
    let head = fake.lane_head(&shop_lane());
    assert_eq!(
        head.in_flight,
        Some(ReleasePointer {
            id: id.clone(),
            tag: "1.0.0".into(),
            digest: digest_of(SHOP_REPOSITORY, "1.0.0"),
        })
    );
    assert_eq!(head.known_good, None);
}

#[tokio::test]
async fn a_passing_migration_updates_every_service_at_once_with_its_new_revision() {
    let (fake, engine) = estate();
    push_shop(&engine, &fake, "1.0.0", 10).await;
    let stopped = migration_of(&fake, "1.0.0", 0, 15, 70);

    fake.pause("ecs:UpdateService");
    let mut gate = pin!(engine.on_task_stopped(&stopped, T0 + 70));
    drive_until(
        gate.as_mut(),
        "three UpdateService calls are in flight",
        || fake.waiting("ecs:UpdateService") == 3,
    )
    .await;
    fake.resume("ecs:UpdateService");
    let decision = gate.await.expect("the gate rolls out");

    let Outcome::Deploying { deployments } = decision.outcome else {
        panic!("expected the services to roll out: {decision:?}");
    };
    assert_eq!(deployments.len(), 3);
    let updates = fake.updates();
    assert_eq!(updates.len(), 3);
    for service in SHOP_SERVICES {
        let update = updates.iter().find(|u| u.service == service).unwrap();
        assert_eq!(update.cluster, SHOP_CLUSTER);
        assert_eq!(update.task_definition, revision(service, 2));
        assert_eq!(
            fake.service(SHOP_CLUSTER, service).task_definition,
            revision(service, 2)
        );
    }
    let record = fake.record(&shop_release("1.0.0"));
    assert_eq!(record.state, ReleaseState::Deploying);
    for service in SHOP_SERVICES {
        assert_eq!(
            record.deployments[service],
            fake.last_deployment(SHOP_CLUSTER, service),
            "the ledger maps {service}'s deployment back to the release"
        );
    }
}

#[tokio::test]
async fn a_release_whose_deployments_all_complete_succeeds_and_becomes_known_good() {
    let (fake, engine) = estate();
    push_shop(&engine, &fake, "1.0.0", 10).await;
    stop(&engine, &migration_of(&fake, "1.0.0", 0, 15, 70)).await;
    let id = shop_release("1.0.0");

    let first = shop_deployment(&engine, &fake, "api", DeploymentOutcome::Completed).await;
    assert_eq!(
        first.outcome,
        Outcome::Progress {
            completed: vec!["api".into()],
            pending: vec!["worker".into(), "scheduler".into()],
        }
    );
    shop_deployment(&engine, &fake, "worker", DeploymentOutcome::Completed).await;
    assert_eq!(fake.record(&id).state, ReleaseState::Deploying);
    assert_eq!(
        fake.count("ssm:LabelParameterVersion"),
        0,
        "not known-good yet"
    );
    let last = shop_deployment(&engine, &fake, "scheduler", DeploymentOutcome::Completed).await;

    assert_eq!(last.outcome, Outcome::Succeeded);
    let record = fake.record(&id);
    assert_eq!(record.state, ReleaseState::Succeeded);
    assert_eq!(record.completed_services.len(), 3);
    let head = fake.lane_head(&shop_lane());
    assert_eq!(head.in_flight, None);
    assert_eq!(
        head.known_good,
        Some(ReleasePointer {
            id: id.clone(),
            tag: "1.0.0".into(),
            digest: digest_of(SHOP_REPOSITORY, "1.0.0"),
        })
    );
    let history = fake.parameter_history(SHOP_PARAMETER);
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].value, "1.0.0");
    assert!(history[1].labels.contains("known-good"));
    assert!(history[0].labels.is_empty());
    assert_eq!(
        fake.transitions(&id),
        transitions(&[
            ("CLAIMED", None),
            ("MIGRATING", Some("CLAIMED")),
            ("DEPLOYING", Some("MIGRATING")),
            ("SUCCEEDED", Some("DEPLOYING")),
        ])
    );
    let event = fake.events().pop().unwrap();
    assert_eq!(event.tag, "1.0.0");
    assert_eq!(event.digest, digest_of(SHOP_REPOSITORY, "1.0.0"));
    assert_eq!(event.services, ["api", "worker", "scheduler"]);
}

#[tokio::test]
async fn the_known_good_label_moves_to_the_newest_known_good_version() {
    let (fake, engine) = estate();
    release_shop(&engine, &fake, "1.0.0", 10).await;
    let id = release_shop(&engine, &fake, "1.1.0", 100).await;

    let history = fake.parameter_history(SHOP_PARAMETER);
    let labelled: Vec<&str> = history
        .iter()
        .filter(|v| v.labels.contains("known-good"))
        .map(|v| v.value.as_str())
        .collect();
    assert_eq!(labelled, ["1.1.0"]);
    assert_eq!(fake.lane_head(&shop_lane()).known_good.unwrap().id, id);
}

#[tokio::test]
async fn without_a_migration_the_push_goes_straight_to_update_service() {
    let (fake, engine) = estate_with(EstateOptions {
        migration: false,
        ..EstateOptions::default()
    });

    let decision = push_shop(&engine, &fake, "1.0.0", 10).await;

    let Outcome::Deploying { deployments } = decision.outcome else {
        panic!("expected the services to roll out: {decision:?}");
    };
    assert_eq!(deployments.len(), 3);
    assert_eq!(fake.count("ecs:RunTask"), 0);
    assert_eq!(
        fake.count("ecs:RegisterTaskDefinition"),
        3,
        "no migration family"
    );
    for service in SHOP_SERVICES {
        assert_eq!(
            fake.service(SHOP_CLUSTER, service).task_definition,
            revision(service, 2)
        );
    }
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("1.0.0"));
    let id = shop_release("1.0.0");
    assert_eq!(
        fake.transitions(&id),
        transitions(&[("CLAIMED", None), ("DEPLOYING", Some("CLAIMED"))])
    );

    for service in SHOP_SERVICES {
        shop_deployment(&engine, &fake, service, DeploymentOutcome::Completed).await;
    }
    assert_eq!(fake.record(&id).state, ReleaseState::Succeeded);
    assert_eq!(fake.lane_head(&shop_lane()).known_good.unwrap().id, id);
}

// ---------------------------------------------------------------------------
// At least once, out of order, concurrent

fn assert_one_release_of_everything(fake: &FakeAws) {
    assert_eq!(fake.release_count(), 1);
    assert_eq!(fake.state().claims_applied, 1);
    let mut families: Vec<String> = fake.registrations().into_iter().map(|r| r.family).collect();
    families.sort();
    assert_eq!(
        families,
        ["shop-api", "shop-migrate", "shop-scheduler", "shop-worker"],
        "one registration per family"
    );
    assert_eq!(fake.count("ssm:PutParameter"), 1);
    assert_eq!(fake.count("ecs:RunTask"), 1);
    assert_eq!(fake.tasks().len(), 1);
    assert_eq!(fake.count("ecs:UpdateService"), 0);
}

#[tokio::test]
async fn the_same_push_delivered_twice_makes_one_release() {
    let (fake, engine) = estate();
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));

    let first = deliver(&engine, &push, 10).await;
    let second = deliver(&engine, &push, 12).await;

    assert!(
        matches!(first.outcome, Outcome::Migrating { .. }),
        "{first:?}"
    );
    assert_eq!(
        second.outcome,
        Outcome::Duplicate {
            state: ReleaseState::parse("MIGRATING").expect("a state")
        }
    );
    assert_eq!(fake.count("ledger:Claim"), 1);
    assert_one_release_of_everything(&fake);
}

#[tokio::test]
async fn the_same_push_delivered_five_times_at_once_makes_one_release() {
    let (fake, engine) = estate();
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));

    let decisions =
        futures_util::future::join_all((0..5).map(|_| engine.on_push(&push, T0 + 10))).await;

    let outcomes: Vec<Outcome> = decisions
        .into_iter()
        .map(|d| only(d.expect("every delivery is handled")).outcome)
        .collect();
    let migrating = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Migrating { .. }))
        .count();
    let duplicates = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Duplicate { .. }))
        .count();
    assert_eq!((migrating, duplicates), (1, 4), "{outcomes:?}");
    assert!(
        fake.count("ledger:Claim") > 1,
        "the deliveries raced to the claim (else this test proves nothing)"
    );
    assert_one_release_of_everything(&fake);
}

#[tokio::test]
async fn the_same_migration_stopped_event_twice_rolls_out_once() {
    let (fake, engine) = estate();
    push_shop(&engine, &fake, "1.0.0", 10).await;
    let stopped = migration_of(&fake, "1.0.0", 0, 15, 70);

    let first = stop(&engine, &stopped).await;
    let second = stop(&engine, &stopped).await;

    assert!(
        matches!(first.outcome, Outcome::Deploying { .. }),
        "{first:?}"
    );
    assert_eq!(
        second.outcome,
        Outcome::Duplicate {
            state: ReleaseState::parse("DEPLOYING").expect("a state")
        }
    );
    assert_eq!(fake.count("ecs:UpdateService"), 3);
    for service in SHOP_SERVICES {
        assert_eq!(
            fake.updates()
                .iter()
                .filter(|u| u.service == service)
                .count(),
            1
        );
    }
}

#[tokio::test]
async fn the_same_migration_stopped_event_twice_at_once_rolls_out_once() {
    let (fake, engine) = estate();
    push_shop(&engine, &fake, "1.0.0", 10).await;
    let stopped = migration_of(&fake, "1.0.0", 0, 15, 70);

    let (a, b) = futures_util::join!(
        engine.on_task_stopped(&stopped, T0 + 70),
        engine.on_task_stopped(&stopped, T0 + 70)
    );

    let outcomes = [a.unwrap().outcome, b.unwrap().outcome];
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Deploying { .. }))
            .count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(fake.count("ecs:UpdateService"), 3);
    assert_eq!(fake.record(&shop_release("1.0.0")).deployments.len(), 3);
}

#[tokio::test]
async fn a_newer_push_during_a_migration_supersedes_the_older_release_which_never_reaches_its_services(
) {
    let (fake, engine) = estate();
    push_shop(&engine, &fake, "1.0.0", 10).await;
    let old = shop_release("1.0.0");
    let new = shop_release("1.1.0");

    let decision = push_shop(&engine, &fake, "1.1.0", 20).await;

    assert!(
        matches!(decision.outcome, Outcome::Migrating { .. }),
        "{decision:?}"
    );
    assert_eq!(fake.record(&old).state, ReleaseState::Superseded);
    assert_eq!(
        fake.lane_head(&shop_lane()).in_flight,
        Some(ReleasePointer {
            id: new.clone(),
            tag: "1.1.0".into(),
            digest: digest_of(SHOP_REPOSITORY, "1.1.0"),
        })
    );

    // 1.0.0's migration, still running, passes: nothing rolls out.
    let late = stop(&engine, &migration_of(&fake, "1.0.0", 0, 15, 80)).await;
    assert_eq!(late.outcome, Outcome::Superseded);
    assert_services_untouched(&fake);
    assert_eq!(fake.record(&old).state, ReleaseState::Superseded);
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("1.1.0"));

    // 1.1.0's migration passes: 1.1.0 rolls out.
    let decision = stop(&engine, &migration_of(&fake, "1.1.0", 0, 25, 90)).await;
    assert!(
        matches!(decision.outcome, Outcome::Deploying { .. }),
        "{decision:?}"
    );
    let record = fake.record(&new);
    let digest = digest_of(SHOP_REPOSITORY, "1.1.0");
    for service in SHOP_SERVICES {
        let running = fake.service(SHOP_CLUSTER, service).task_definition;
        assert_eq!(running, record.task_definitions[service]);
        assert_eq!(running, revision(service, 3), "1.0.0 registered revision 2");
        let app = fake.task_definition(&running).container("app").clone();
        assert_eq!(app.image, pinned(SHOP_REPOSITORY, &digest));
    }
    assert_eq!(fake.count("ecs:UpdateService"), 3);
}

#[tokio::test]
async fn a_late_push_of_an_older_version_after_a_newer_one_was_claimed_is_refused_and_changes_nothing(
) {
    let (fake, engine) = estate();
    push_shop(&engine, &fake, "2.1.0", 20).await;
    let mutations = fake.mutation_calls();
    let before = fake.lane_head(&shop_lane());

    // ECR delivers the 2.0.0 push (made at 10s) late, after 2.1.0 was claimed.
    let push = fake.push(SHOP_REPOSITORY, "2.0.0", &at(10));
    let decision = deliver(&engine, &push, 30).await;

    let Outcome::Refused { reason } = decision.outcome else {
        panic!("expected a refusal: {decision:?}");
    };
    assert!(reason.contains("lower than `2.1.0`"), "{reason}");
    assert_eq!(fake.mutation_calls(), mutations, "no mutation");
    assert!(!fake.has_release(&shop_release("2.0.0")));
    assert_eq!(fake.lane_head(&shop_lane()), before);
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("2.1.0"));
}

#[tokio::test]
async fn a_glob_lane_refuses_a_push_older_than_the_newest_push_it_acted_on() {
    let (fake, engine) = estate();
    let newer = fake.push("blog-web", "sha-bbbbbbb", &at(20));
    let decision = deliver(&engine, &newer, 20).await;
    assert!(
        matches!(decision.outcome, Outcome::Deploying { .. }),
        "{decision:?}"
    );
    let mutations = fake.mutation_calls();

    let older = fake.push("blog-web", "sha-aaaaaaa", &at(10));
    let decision = deliver(&engine, &older, 25).await;

    let Outcome::Refused { reason } = decision.outcome else {
        panic!("expected a refusal: {decision:?}");
    };
    assert!(reason.contains("older than the newest push"), "{reason}");
    assert_eq!(fake.mutation_calls(), mutations, "no mutation");
    assert_eq!(
        fake.parameter(BLOG_WEB_PARAMETER).as_deref(),
        Some("sha-bbbbbbb")
    );

    // Staleness is per lane: blog-jobs has not acted on a newer push.
    let jobs = fake.push("blog-jobs", "sha-ccccccc", &at(5));
    let decision = deliver(&engine, &jobs, 26).await;
    assert!(
        matches!(decision.outcome, Outcome::Deploying { .. }),
        "{decision:?}"
    );
}

// ---------------------------------------------------------------------------
// Tag policy

#[tokio::test]
async fn a_semver_downgrade_below_the_known_good_release_is_refused() {
    let (fake, engine) = estate();
    release_shop(&engine, &fake, "1.0.0", 10).await;
    let mutations = fake.mutation_calls();

    let decision = push_shop(&engine, &fake, "0.9.5", 200).await;

    let Outcome::Refused { reason } = decision.outcome else {
        panic!("expected a refusal: {decision:?}");
    };
    assert!(reason.contains("`0.9.5` is lower than `1.0.0`"), "{reason}");
    assert_eq!(fake.mutation_calls(), mutations, "no mutation");
    assert!(!fake.has_release(&shop_release("0.9.5")));
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("1.0.0"));
}

#[tokio::test]
async fn latest_is_refused_without_a_single_aws_call() {
    let (fake, engine) = estate();
    for tag in ["latest", "LATEST"] {
        let decision = push_shop(&engine, &fake, tag, 10).await;
        let Outcome::Refused { reason } = decision.outcome else {
            panic!("expected a refusal: {decision:?}");
        };
        assert!(reason.contains("is mutable"), "{reason}");
    }
    assert_eq!(fake.total_calls(), 0, "{:?}", fake.calls());
}

#[tokio::test]
async fn a_tag_the_policy_does_not_match_is_refused_without_touching_aws() {
    let (fake, engine) = estate();

    let not_a_version = push_shop(&engine, &fake, "feature-login", 10).await;
    let below_range = push_shop(&engine, &fake, "0.0.9", 11).await;
    let glob = deliver(&engine, &fake.push("blog-web", "v1", &at(12)), 12).await;

    for decision in [&not_a_version, &below_range, &glob] {
        assert!(
            matches!(decision.outcome, Outcome::Refused { .. }),
            "{decision:?}"
        );
    }
    let reason = |d: &Decision| match &d.outcome {
        Outcome::Refused { reason } => reason.clone(),
        _ => unreachable!(),
    };
    assert!(reason(&not_a_version).contains("is not a semantic version"));
    assert!(reason(&below_range).contains("does not match"));
    assert!(reason(&glob).contains("glob \"sha-*\""));
    assert_eq!(fake.total_calls(), 0, "{:?}", fake.calls());
}

#[tokio::test]
async fn a_push_to_a_repository_no_environment_tracks_is_ignored_without_aws_calls() {
    let (fake, engine) = estate();

    let decision = deliver(&engine, &fake.push("billing", "1.0.0", &at(10)), 10).await;

    assert!(
        matches!(decision.outcome, Outcome::Ignored { .. }),
        "{decision:?}"
    );
    assert_eq!(fake.total_calls(), 0);
}

// ---------------------------------------------------------------------------
// Failed migrations

/// The release failed at its migration: no service touched, SSM back at
/// `restored`, the lane free, the reason recorded and announced.
fn assert_failed_at_migration(fake: &FakeAws, id: &ReleaseId, restored: &str, reason: &str) {
    assert_services_untouched(fake);
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some(restored));
    let record = fake.record(id);
    assert_eq!(record.state, ReleaseState::Failed);
    let recorded = record.reason.unwrap_or_default();
    assert!(recorded.contains(reason), "{recorded}");
    assert_eq!(fake.lane_head(&shop_lane()).in_flight, None);
    assert_eq!(
        fake.transitions(id),
        transitions(&[
            ("CLAIMED", None),
            ("MIGRATING", Some("CLAIMED")),
            ("FAILED", Some("MIGRATING")),
        ])
    );
    let event = fake.events().pop().unwrap();
    assert!(event.reason.unwrap_or_default().contains(reason));
}

#[tokio::test]
async fn a_failing_migration_touches_no_service_restores_ssm_and_frees_the_lane() {
    let (fake, engine) = estate();
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    deliver(&engine, &push, 10).await;

    let decision = stop(&engine, &migration_of(&fake, "1.0.0", 1, 15, 70)).await;

    let Outcome::Failed { reason } = decision.outcome else {
        panic!("expected the release to fail: {decision:?}");
    };
    assert!(reason.contains("exited with code 1"), "{reason}");
    let id = shop_release("1.0.0");
    assert_failed_at_migration(&fake, &id, "0.9.0", "exited with code 1");
    assert_eq!(
        parameter_values(&fake, SHOP_PARAMETER),
        ["0.9.0", "1.0.0", "0.9.0"]
    );
    assert_eq!(fake.lane_head(&shop_lane()).known_good, None);

    // The same push re-delivered does not try again...
    assert_eq!(
        deliver(&engine, &push, 80).await.outcome,
        Outcome::Duplicate {
            state: ReleaseState::parse("FAILED").expect("a state")
        }
    );
    // ...and the next push proceeds.
    let next = push_shop(&engine, &fake, "1.0.1", 90).await;
    assert!(
        matches!(next.outcome, Outcome::Migrating { .. }),
        "{next:?}"
    );
}

#[tokio::test]
async fn a_failing_migration_after_a_known_good_release_restores_the_known_good_tag() {
    let (fake, engine) = estate();
    let good = release_shop(&engine, &fake, "1.0.0", 10).await;
    push_shop(&engine, &fake, "1.1.0", 100).await;
    let updates = fake.count("ecs:UpdateService");

    let decision = stop(&engine, &migration_of(&fake, "1.1.0", 2, 105, 160)).await;

    assert!(
        matches!(decision.outcome, Outcome::Failed { .. }),
        "{decision:?}"
    );
    assert_eq!(
        fake.count("ecs:UpdateService"),
        updates,
        "no service touched"
    );
    assert_eq!(
        parameter_values(&fake, SHOP_PARAMETER),
        ["0.9.0", "1.0.0", "1.1.0", "1.0.0"]
    );
    let record = fake.record(&shop_release("1.1.0"));
    assert_eq!(record.state, ReleaseState::Failed);
    assert!(record.reason.unwrap().contains("exited with code 2"));
    let head = fake.lane_head(&shop_lane());
    assert_eq!(head.in_flight, None);
    assert_eq!(head.known_good.unwrap().id, good);
    for service in SHOP_SERVICES {
        assert_eq!(
            fake.service(SHOP_CLUSTER, service).task_definition,
            revision(service, 2),
            "{service} still runs 1.0.0"
        );
    }
}

#[tokio::test]
async fn a_migration_that_failed_to_start_fails_the_release() {
    let (fake, engine) = estate();
    push_shop(&engine, &fake, "1.0.0", 10).await;
    let id = shop_release("1.0.0");
    let task = fake.migration_task(&id);

    let decision = stop(&engine, &migration_failed_to_start(&task, T0 + 40)).await;

    let Outcome::Failed { reason } = decision.outcome else {
        panic!("expected the release to fail: {decision:?}");
    };
    assert!(
        reason.contains("failed to start (TaskFailedToStart"),
        "{reason}"
    );
    assert!(reason.contains("CannotPullContainerError"), "{reason}");
    assert_failed_at_migration(&fake, &id, "0.9.0", "TaskFailedToStart");
}

#[tokio::test]
async fn a_migration_that_stopped_after_its_deadline_fails_the_release_even_with_exit_0() {
    let (fake, engine) = estate();
    push_shop(&engine, &fake, "1.0.0", 10).await;
    let id = shop_release("1.0.0");
    let deadline = 10 + MIGRATION_TIMEOUT;

    let decision = stop(&engine, &migration_of(&fake, "1.0.0", 0, 15, deadline + 1)).await;

    let Outcome::Failed { reason } = decision.outcome else {
        panic!("expected the release to fail: {decision:?}");
    };
    assert!(reason.contains("outlived its timeout"), "{reason}");
    assert_failed_at_migration(&fake, &id, "0.9.0", "outlived its timeout");
}

#[tokio::test]
async fn a_migration_stopping_exactly_at_its_deadline_passes() {
    let (fake, engine) = estate();
    push_shop(&engine, &fake, "1.0.0", 10).await;

    let decision = stop(
        &engine,
        &migration_of(&fake, "1.0.0", 0, 15, 10 + MIGRATION_TIMEOUT),
    )
    .await;

    assert!(
        matches!(decision.outcome, Outcome::Deploying { .. }),
        "{decision:?}"
    );
}

#[tokio::test]
async fn a_migration_stopped_event_before_the_task_was_recorded_is_not_ready_and_retryable() {
    let (fake, engine) = estate();
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    let id = shop_release("1.0.0");
    // Hold the ledger write that records the migration task (the second update).
    fake.pause_after("ledger:Update", 1);
    let mut pushing = pin!(engine.on_push(&push, T0 + 10));
    drive_until(
        pushing.as_mut(),
        "the task is started but not recorded",
        || fake.waiting("ledger:Update") == 1,
    )
    .await;

    let task = fake.migration_task(&id);
    let early = engine
        .on_task_stopped(&migration_exited(&task, 0, T0 + 11, T0 + 12), T0 + 12)
        .await;

    let Err(error) = early else {
        panic!("expected NotReady: {early:?}");
    };
    assert!(matches!(error, EngineError::NotReady(_)), "{error}");
    assert!(error.is_retryable());
    assert_eq!(fake.count("ecs:UpdateService"), 0);

    fake.resume("ledger:Update");
    let pushed = pushing.await.unwrap();
    assert!(matches!(only(pushed).outcome, Outcome::Migrating { .. }));
    // The retried event rolls out.
    let retried = stop(&engine, &migration_exited(&task, 0, T0 + 11, T0 + 12)).await;
    assert!(
        matches!(retried.outcome, Outcome::Deploying { .. }),
        "{retried:?}"
    );
}

#[tokio::test]
async fn a_task_not_started_by_ferry_is_ignored() {
    let (fake, engine) = estate();
    push_shop(&engine, &fake, "1.0.0", 10).await;
    let mut stopped = migration_of(&fake, "1.0.0", 0, 15, 70);
    stopped.started_by = Some("ecs-svc/1234567890".into());
    let calls = fake.total_calls();

    let decision = stop(&engine, &stopped).await;

    assert!(
        matches!(decision.outcome, Outcome::Ignored { .. }),
        "{decision:?}"
    );
    assert_eq!(fake.total_calls(), calls);
}

// ---------------------------------------------------------------------------
// Preflight

/// Pushes `shop:1.0.0` after `break_estate` and returns the preflight's problems,
/// checking that the release is recorded failed and nothing was changed.
async fn preflight_problems(break_estate: impl FnOnce(&FakeAws) -> Push) -> Vec<String> {
    let (fake, engine) = estate();
    let push = break_estate(&fake);

    let decision = deliver(&engine, &push, 10).await;

    let Outcome::PreflightFailed { problems } = decision.outcome else {
        panic!("expected preflight to fail: {decision:?}");
    };
    for operation in [
        "ecs:RegisterTaskDefinition",
        "ssm:PutParameter",
        "ecs:RunTask",
        "ecs:UpdateService",
    ] {
        assert_eq!(fake.count(operation), 0, "{operation}: {:?}", fake.calls());
    }
    assert_eq!(fake.parameter_history(SHOP_PARAMETER).len(), 1);
    let id = ReleaseId::derive("shop", "prod", &push.digest);
    let record = fake.record(&id);
    assert_eq!(record.state, ReleaseState::Failed);
    assert!(record
        .reason
        .unwrap_or_default()
        .starts_with("preflight failed: "));
    assert_eq!(fake.lane_head(&shop_lane()).in_flight, None);
    assert_eq!(
        fake.transitions(&id),
        transitions(&[("CLAIMED", None), ("FAILED", Some("CLAIMED"))])
    );
    problems
}

fn shop_push(fake: &FakeAws) -> Push {
    fake.push(SHOP_REPOSITORY, "1.0.0", &at(10))
}

#[tokio::test]
async fn preflight_fails_on_a_missing_secret_and_names_it() {
    let problems = preflight_problems(|fake| {
        fake.delete_secret(&secret_arn("shop/prod/worker"));
        shop_push(fake)
    })
    .await;

    assert_eq!(
        problems,
        [format!(
            "secret `{}` does not exist",
            secret_arn("shop/prod/worker")
        )]
    );
}

#[tokio::test]
async fn preflight_fails_on_a_service_that_does_not_exist() {
    let problems = preflight_problems(|fake| {
        fake.delete_service(SHOP_CLUSTER, "scheduler");
        shop_push(fake)
    })
    .await;

    assert_eq!(
        problems,
        ["service `scheduler` is not an ACTIVE service of cluster `shop-prod`"]
    );
}

#[tokio::test]
async fn preflight_fails_on_a_digest_that_is_not_in_ecr() {
    let problems = preflight_problems(|_| {
        push_event(
            SHOP_REPOSITORY,
            "1.0.0",
            &digest_of(SHOP_REPOSITORY, "gone"),
            &at(10),
        )
    })
    .await;

    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("does not exist in ECR"),
        "{problems:?}"
    );
}

#[tokio::test]
async fn preflight_fails_on_a_service_whose_task_definition_runs_no_container_from_the_repository()
{
    let problems = preflight_problems(|fake| {
        let other = fake.add_task_definition(
            "shop-worker",
            vec![FakeContainer::new("app", &image("billing", "3.0.0"))],
        );
        fake.add_service(SHOP_CLUSTER, "worker", &other);
        shop_push(fake)
    })
    .await;

    assert_eq!(
        problems,
        [format!(
            "service `worker` runs task definition {} which has no container from repository `shop`",
            revision("worker", 2)
        )]
    );
}

#[tokio::test]
async fn preflight_lists_every_problem_at_once() {
    let problems = preflight_problems(|fake| {
        fake.delete_secret(&secret_arn("shop/prod/api"));
        fake.delete_service(SHOP_CLUSTER, "scheduler");
        let other = fake.add_task_definition(
            "shop-worker",
            vec![FakeContainer::new("app", &image("billing", "3.0.0"))],
        );
        fake.add_service(SHOP_CLUSTER, "worker", &other);
        push_event(
            SHOP_REPOSITORY,
            "1.0.0",
            &digest_of(SHOP_REPOSITORY, "gone"),
            &at(10),
        )
    })
    .await;

    assert_eq!(problems.len(), 4, "{problems:?}");
    let mentions = |text: &str| problems.iter().any(|p| p.contains(text));
    assert!(mentions("service `scheduler` is not an ACTIVE service"));
    assert!(mentions("does not exist in ECR"));
    assert!(mentions("service `worker` runs task definition"));
    assert!(mentions(&format!(
        "secret `{}` does not exist",
        secret_arn("shop/prod/api")
    )));
}

// ---------------------------------------------------------------------------
// One repository per service

#[tokio::test]
async fn a_push_to_one_repository_of_a_per_service_app_releases_only_its_service() {
    let (fake, engine) = estate();

    let decision = deliver(&engine, &fake.push("blog-web", "sha-1111111", &at(10)), 10).await;

    assert_eq!(decision.app.as_deref(), Some("blog"));
    let Outcome::Deploying { deployments } = decision.outcome else {
        panic!("expected web to roll out: {decision:?}");
    };
    assert_eq!(deployments.len(), 1);
    let families: Vec<String> = fake.registrations().into_iter().map(|r| r.family).collect();
    assert_eq!(families, ["blog-web"]);
    let updates = fake.updates();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].service, "web");
    assert_eq!(
        updates[0].task_definition,
        task_definition_arn("blog-web", 2)
    );
    assert_eq!(
        fake.service(BLOG_CLUSTER, "jobs").task_definition,
        task_definition_arn("blog-jobs", 1),
        "jobs untouched"
    );
    assert_eq!(
        fake.task_definition(&task_definition_arn("blog-web", 2))
            .container("web")
            .image,
        pinned("blog-web", &digest_of("blog-web", "sha-1111111"))
    );
    assert!(fake.lane_head(&blog_lane("blog-jobs")).in_flight.is_none());

    // Completing web's deployment completes the web lane's release.
    let id = fake.last_deployment(BLOG_CLUSTER, "web");
    let done = engine
        .on_deployment(
            &deployment(BLOG_CLUSTER, "web", &id, DeploymentOutcome::Completed),
            T0 + 100,
        )
        .await
        .unwrap();
    assert_eq!(done.outcome, Outcome::Succeeded);
    assert_eq!(
        fake.lane_head(&blog_lane("blog-web"))
            .known_good
            .unwrap()
            .tag,
        "sha-1111111"
    );
}

#[tokio::test]
async fn a_blog_web_push_and_a_blog_jobs_push_each_write_only_their_own_parameter() {
    let (fake, engine) = estate();
    let web_before = fake.parameter_history(BLOG_WEB_PARAMETER);
    let jobs_before = fake.parameter_history(BLOG_JOBS_PARAMETER);

    deliver(&engine, &fake.push("blog-web", "sha-1111111", &at(10)), 10).await;

    assert_eq!(
        fake.parameter(BLOG_WEB_PARAMETER).as_deref(),
        Some("sha-1111111")
    );
    assert_eq!(
        fake.parameter_history(BLOG_JOBS_PARAMETER),
        jobs_before,
        "the jobs lane's parameter is not written by a web release"
    );

    deliver(&engine, &fake.push("blog-jobs", "sha-2222222", &at(20)), 20).await;

    assert_eq!(
        fake.parameter(BLOG_JOBS_PARAMETER).as_deref(),
        Some("sha-2222222")
    );
    let web: Vec<String> = fake
        .parameter_history(BLOG_WEB_PARAMETER)
        .into_iter()
        .map(|v| v.value)
        .collect();
    assert_eq!(web.len(), web_before.len() + 1, "{web:?}");
    assert_eq!(
        web.last().map(String::as_str),
        Some("sha-1111111"),
        "the web lane still records its own tag"
    );
    let blog_parameters: Vec<String> = fake
        .state()
        .parameters
        .keys()
        .filter(|name| name.starts_with("/blog/"))
        .cloned()
        .collect();
    assert_eq!(
        blog_parameters,
        [BLOG_JOBS_PARAMETER, BLOG_WEB_PARAMETER],
        "no parameter but the two lanes' own"
    );
}

// ---------------------------------------------------------------------------
// Deployments

async fn deploying_shop(engine: &FakeEngine, fake: &FakeAws) -> ReleaseId {
    push_shop(engine, fake, "1.0.0", 10).await;
    stop(engine, &migration_of(fake, "1.0.0", 0, 15, 70)).await;
    shop_release("1.0.0")
}

#[tokio::test]
async fn a_failed_deployment_rolls_every_service_back_to_the_known_good_release() {
    let (fake, engine) = estate();
    let good = release_shop(&engine, &fake, "1.0.0", 10).await;
    push_shop(&engine, &fake, "1.1.0", 100).await;
    stop(&engine, &migration_of(&fake, "1.1.0", 0, 105, 160)).await;
    let bad = shop_release("1.1.0");
    shop_deployment(&engine, &fake, "api", DeploymentOutcome::Completed).await;

    let decision = shop_deployment(&engine, &fake, "worker", DeploymentOutcome::Failed).await;

    let Outcome::RolledBack { from, to, reason } = decision.outcome else {
        panic!("expected the release to be rolled back: {decision:?}");
    };
    assert_eq!((from.as_str(), to.as_str()), ("1.1.0", "1.0.0"));
    assert!(reason.contains("service worker failed"), "{reason}");
    assert!(reason.contains("circuit breaker"), "{reason}");
    // Every service goes back, api (which completed) too: the release is atomic.
    for service in SHOP_SERVICES {
        assert_eq!(
            fake.service(SHOP_CLUSTER, service).task_definition,
            revision(service, 2),
            "{service} runs 1.0.0 again"
        );
    }
    assert_eq!(fake.record(&bad).state, ReleaseState::RolledBack);
    let head = fake.lane_head(&shop_lane());
    assert_eq!(head.in_flight, None);
    assert_eq!(head.known_good.as_ref().map(|k| &k.id), Some(&good));
    assert!(head.frozen, "frozen for automatic deploys after a rollback");
    let history = fake.parameter_history(SHOP_PARAMETER);
    let current = history.last().unwrap();
    assert_eq!(current.value, "1.0.0");
    assert!(current.labels.contains("known-good"));

    // The last service completing later does not make 1.1.0 known-good.
    let late = shop_deployment(&engine, &fake, "scheduler", DeploymentOutcome::Completed).await;
    assert!(matches!(late.outcome, Outcome::Ignored { .. }), "{late:?}");
    assert_eq!(fake.record(&bad).state, ReleaseState::RolledBack);
    assert_eq!(
        fake.lane_head(&shop_lane()).known_good.map(|k| k.id),
        Some(good)
    );
}

#[tokio::test]
async fn a_failed_deployment_of_a_first_release_fails_it_and_it_never_becomes_known_good() {
    let (fake, engine) = estate();
    let id = deploying_shop(&engine, &fake).await;
    shop_deployment(&engine, &fake, "api", DeploymentOutcome::Completed).await;

    let decision = shop_deployment(&engine, &fake, "worker", DeploymentOutcome::Failed).await;

    assert!(
        matches!(decision.outcome, Outcome::Failed { .. }),
        "{decision:?}"
    );
    let record = fake.record(&id);
    assert_eq!(record.state, ReleaseState::Failed);
    let recorded = record.reason.unwrap_or_default();
    assert!(recorded.contains("service worker failed"), "{recorded}");
    let head = fake.lane_head(&shop_lane());
    assert_eq!(head.in_flight, None);
    assert_eq!(head.known_good, None);

    // The last service completing later does not make it known-good.
    let late = shop_deployment(&engine, &fake, "scheduler", DeploymentOutcome::Completed).await;
    assert!(matches!(late.outcome, Outcome::Ignored { .. }), "{late:?}");
    assert_eq!(fake.lane_head(&shop_lane()).known_good, None);
    assert_eq!(fake.count("ssm:LabelParameterVersion"), 0);
    assert_eq!(
        fake.transitions(&id).last().unwrap(),
        &("FAILED".to_owned(), Some("DEPLOYING".to_owned()))
    );
}

#[tokio::test]
async fn a_deployment_event_for_a_deployment_the_release_did_not_start_is_ignored() {
    let (fake, engine) = estate();
    let id = deploying_shop(&engine, &fake).await;
    let mutations = fake.mutation_calls();

    let decision = engine
        .on_deployment(
            &deployment(
                SHOP_CLUSTER,
                "api",
                "ecs-svc/someone-elses",
                DeploymentOutcome::Failed,
            ),
            T0 + 100,
        )
        .await
        .unwrap();

    assert!(
        matches!(decision.outcome, Outcome::Ignored { .. }),
        "{decision:?}"
    );
    assert_eq!(fake.mutation_calls(), mutations);
    let record = fake.record(&id);
    assert_eq!(record.state, ReleaseState::Deploying);
    assert!(record.completed_services.is_empty());
}

#[tokio::test]
async fn a_deployment_event_before_the_gate_recorded_deployment_ids_is_not_ready_and_retryable() {
    let (fake, engine) = estate();
    push_shop(&engine, &fake, "1.0.0", 10).await;
    let stopped = migration_of(&fake, "1.0.0", 0, 15, 70);
    // Hold the write that records the deployment ids (the gate's second update).
    let updates_so_far = fake.count("ledger:Update");
    fake.pause_call("ledger:Update", updates_so_far + 2);
    let mut gate = pin!(engine.on_task_stopped(&stopped, T0 + 70));
    drive_until(gate.as_mut(), "services updated, ids not recorded", || {
        fake.waiting("ledger:Update") == 1
    })
    .await;
    assert_eq!(fake.count("ecs:UpdateService"), 3);
    let api = fake.last_deployment(SHOP_CLUSTER, "api");
    let change = deployment(SHOP_CLUSTER, "api", &api, DeploymentOutcome::Completed);

    let early = engine.on_deployment(&change, T0 + 80).await;

    let Err(error) = early else {
        panic!("expected NotReady: {early:?}");
    };
    assert!(matches!(error, EngineError::NotReady(_)), "{error}");
    assert!(error.is_retryable());

    fake.resume("ledger:Update");
    gate.await.unwrap();
    let retried = engine.on_deployment(&change, T0 + 90).await.unwrap();
    assert!(
        matches!(retried.outcome, Outcome::Progress { .. }),
        "{retried:?}"
    );
}

// ---------------------------------------------------------------------------
// Operators

fn deploy_request(tag: Option<&str>, digest: Option<&str>) -> DeployRequest {
    DeployRequest {
        app: "shop".into(),
        environment: "prod".into(),
        tag: tag.map(str::to_owned),
        digest: digest.map(str::to_owned),
        repository: None,
    }
}

#[tokio::test]
async fn an_operator_deploys_a_tag() {
    let (fake, engine) = estate();
    let digest = fake.add_image(SHOP_REPOSITORY, "1.2.0", &at(30));

    let decision = engine
        .deploy(&deploy_request(Some("1.2.0"), None), REGION, T0 + 40)
        .await
        .unwrap();

    let id = shop_release("1.2.0");
    assert_eq!(decision.release_id.as_deref(), Some(id.as_str()));
    assert!(
        matches!(decision.outcome, Outcome::Migrating { .. }),
        "{decision:?}"
    );
    let record = fake.record(&id);
    assert_eq!(record.tag, "1.2.0");
    assert_eq!(record.digest, digest);
    assert_eq!(record.pushed_at.map(|t| t.to_string()), Some(at(30)));
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("1.2.0"));
    assert_eq!(
        record.migration_task_definition.as_deref(),
        Some(fake.migration_task(&id).task_definition.as_str()),
        "the ledger names the revision the migration ran"
    );
    assert_eq!(
        fake.task_definition(&fake.migration_task(&id).task_definition)
            .container(MIGRATION_CONTAINER)
            .image,
        pinned(SHOP_REPOSITORY, &digest)
    );
}

#[tokio::test]
async fn an_operators_deploy_names_the_repository_of_an_app_with_several() {
    let (fake, engine) = estate();
    fake.add_image("blog-jobs", "sha-5555555", &at(30));
    let request = |repository: Option<&str>| DeployRequest {
        app: "blog".into(),
        environment: "prod".into(),
        tag: Some("sha-5555555".into()),
        digest: None,
        repository: repository.map(str::to_owned),
    };

    for (repository, complaint) in [
        (None, "several repositories"),
        (Some("shop"), "runs no repository `shop`"),
    ] {
        let refused = engine.deploy(&request(repository), REGION, T0 + 40).await;
        assert!(
            matches!(refused, Err(EngineError::BadRequest(ref m)) if m.contains(complaint)),
            "{repository:?}: {refused:?}"
        );
    }
    assert_eq!(fake.release_count(), 0, "nothing claimed");

    let decision = engine
        .deploy(&request(Some("blog-jobs")), REGION, T0 + 40)
        .await
        .expect("deployed");
    assert!(
        matches!(decision.outcome, Outcome::Deploying { .. }),
        "{decision:?}"
    );
    assert_eq!(fake.updates()[0].service, "jobs");
}

#[tokio::test]
async fn an_operator_deploys_a_digest_under_its_tag() {
    let (fake, engine) = estate();
    let digest = fake.add_image(SHOP_REPOSITORY, "1.3.0", &at(30));

    let decision = engine
        .deploy(&deploy_request(None, Some(&digest)), REGION, T0 + 40)
        .await
        .unwrap();

    assert!(
        matches!(decision.outcome, Outcome::Migrating { .. }),
        "{decision:?}"
    );
    let record = fake.record(&shop_release("1.3.0"));
    assert_eq!(record.tag, "1.3.0");
    assert_eq!(record.digest, digest);
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("1.3.0"));
}

#[tokio::test]
async fn a_deploy_to_an_unknown_environment_is_a_bad_request_that_is_not_retried() {
    let (fake, engine) = estate();
    fake.add_image(SHOP_REPOSITORY, "1.2.0", &at(30));
    let mut request = deploy_request(Some("1.2.0"), None);
    request.environment = "staging".into();

    let result = engine.deploy(&request, REGION, T0 + 40).await;

    let Err(error) = result else {
        panic!("expected a bad request: {result:?}");
    };
    assert!(matches!(error, EngineError::BadRequest(_)), "{error}");
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("staging"), "{error}");
    assert_eq!(fake.total_calls(), 0);
}

#[tokio::test]
async fn a_deploy_of_an_image_not_in_ecr_is_a_bad_request() {
    let (fake, engine) = estate();

    let result = engine
        .deploy(&deploy_request(Some("9.9.9"), None), REGION, T0 + 40)
        .await;

    let Err(error) = result else {
        panic!("expected a bad request: {result:?}");
    };
    assert!(matches!(error, EngineError::BadRequest(_)), "{error}");
    assert!(!error.is_retryable());
    assert!(fake.mutation_calls().is_empty(), "{:?}", fake.calls());
}

#[tokio::test]
async fn a_frozen_lane_holds_pushes_but_accepts_an_operators_deploy() {
    let (fake, engine) = estate();
    release_shop(&engine, &fake, "1.0.0", 10).await;
    fake.freeze(&shop_lane());
    let before = fake.calls();

    let pushed = push_shop(&engine, &fake, "1.1.0", 200).await;

    assert_eq!(
        pushed.outcome,
        Outcome::Held {
            tag: "1.1.0".into()
        }
    );
    let changed: Vec<&str> = MUTATIONS
        .into_iter()
        .filter(|op| fake.count(op) != before.get(op).copied().unwrap_or(0))
        .collect();
    assert_eq!(
        changed,
        ["ledger:Hold"],
        "the push is recorded, nothing deployed"
    );
    assert!(!fake.has_release(&shop_release("1.1.0")));
    let head = fake.lane_head(&shop_lane());
    assert!(head.frozen);
    assert_eq!(head.held.map(|h| h.tag).as_deref(), Some("1.1.0"));
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("1.0.0"));

    let deployed = engine
        .deploy(&deploy_request(Some("1.1.0"), None), REGION, T0 + 210)
        .await
        .unwrap();
    assert!(
        matches!(deployed.outcome, Outcome::Migrating { .. }),
        "{deployed:?}"
    );
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("1.1.0"));
    assert!(
        fake.lane_head(&shop_lane()).frozen,
        "still frozen for pushes"
    );
}

#[tokio::test]
async fn a_new_digest_unfreezes_a_lane_whose_policy_says_so() {
    let (fake, engine) = estate_with(EstateOptions {
        unfreeze_on_new_digest: true,
        ..EstateOptions::default()
    });
    release_shop(&engine, &fake, "1.0.0", 10).await;
    fake.freeze(&shop_lane());

    let decision = push_shop(&engine, &fake, "1.1.0", 200).await;

    assert!(
        matches!(decision.outcome, Outcome::Migrating { .. }),
        "{decision:?}"
    );
    assert!(!fake.lane_head(&shop_lane()).frozen);
}

// ---------------------------------------------------------------------------
// Regressions: bugs found earlier, each fixed and kept as a scenario

#[tokio::test]
async fn a_failing_migration_after_superseding_a_first_release_restores_the_tag_the_services_run() {
    let (fake, engine) = estate();
    push_shop(&engine, &fake, "1.0.0", 10).await;
    push_shop(&engine, &fake, "1.1.0", 20).await;

    let decision = stop(&engine, &migration_of(&fake, "1.1.0", 1, 25, 80)).await;

    assert!(
        matches!(decision.outcome, Outcome::Failed { .. }),
        "{decision:?}"
    );
    assert_services_untouched(&fake);
    // Every service still runs 0.9.0; 1.0.0 never reached a service.
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("0.9.0"));
}

#[tokio::test]
async fn a_throttled_update_service_is_finished_when_the_migration_event_is_redelivered() {
    let (fake, engine) = estate();
    push_shop(&engine, &fake, "1.0.0", 10).await;
    let stopped = migration_of(&fake, "1.0.0", 0, 15, 70);
    fake.fail_next(
        "ecs:UpdateService",
        Some("worker"),
        "ThrottlingException",
        true,
    );

    let first = engine.on_task_stopped(&stopped, T0 + 70).await;
    let Err(error) = first else {
        panic!("expected the throttling to surface: {first:?}");
    };
    assert!(error.is_retryable(), "Lambda will deliver the event again");

    // Lambda delivers the event again, as the retryable error asks.
    let _ = engine.on_task_stopped(&stopped, T0 + 75).await;

    let record = fake.record(&shop_release("1.0.0"));
    assert_eq!(
        record.deployments.keys().collect::<Vec<_>>(),
        ["api", "scheduler", "worker"],
        "every service has a deployment of this release"
    );
    assert_eq!(
        fake.service(SHOP_CLUSTER, "worker").task_definition,
        revision("worker", 2)
    );
}

#[tokio::test]
async fn two_copies_of_the_redelivered_migration_event_finish_an_interrupted_rollout_once() {
    let (fake, engine) = estate();
    push_shop(&engine, &fake, "1.0.0", 10).await;
    let stopped = migration_of(&fake, "1.0.0", 0, 15, 70);
    fake.fail_next(
        "ecs:UpdateService",
        Some("worker"),
        "ThrottlingException",
        true,
    );
    let first = engine.on_task_stopped(&stopped, T0 + 70).await;
    assert!(matches!(first, Err(ref e) if e.is_retryable()), "{first:?}");
    let mark = fake.record(&shop_release("1.0.0")).interrupted;
    assert!(
        mark.as_deref()
            .is_some_and(|m| m.contains("ecs:UpdateService") && m.contains("ThrottlingException")),
        "the mark names what failed: {mark:?}"
    );
    let worker_updates = || {
        fake.updates()
            .iter()
            .filter(|u| u.service == "worker")
            .count()
    };
    let before = worker_updates();

    // EventBridge delivers the event twice, at the same moment.
    let (a, b) = futures_util::join!(
        engine.on_task_stopped(&stopped, T0 + 75),
        engine.on_task_stopped(&stopped, T0 + 75)
    );

    let outcomes = [a.expect("handled").outcome, b.expect("handled").outcome];
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Deploying { .. }))
            .count(),
        1,
        "one copy takes the resumption: {outcomes:?}"
    );
    assert_eq!(worker_updates(), before + 1, "worker rolled out once more");
    assert_eq!(fake.record(&shop_release("1.0.0")).interrupted, None);
}

#[tokio::test]
async fn a_superseded_releases_late_ssm_write_does_not_overwrite_its_successors_tag() {
    let (fake, engine) = estate();
    let older = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    let newer = fake.push(SHOP_REPOSITORY, "1.1.0", &at(11));
    // 1.0.0's PutParameter is slow; 1.1.0 arrives and runs to its migration meanwhile.
    fake.pause_call("ssm:PutParameter", 1);
    let mut first = pin!(engine.on_push(&older, T0 + 10));
    drive_until(first.as_mut(), "1.0.0 is writing the image tag", || {
        fake.waiting("ssm:PutParameter") == 1
    })
    .await;
    // 1.1.0 waits for the claim on the tag writes that 1.0.0 holds.
    let mut second = pin!(engine.on_push(&newer, T0 + 11));
    drive_until(second.as_mut(), "1.1.0 waits to write its tag", || {
        fake.awaiting_claim() == 1
    })
    .await;
    fake.resume("ssm:PutParameter");
    let (first, second) = futures_util::join!(first, second);
    let second = only(second.expect("1.1.0 is handled"));
    assert!(
        matches!(second.outcome, Outcome::Migrating { .. }),
        "{second:?}"
    );
    let first = only(first.unwrap());
    assert_eq!(first.outcome, Outcome::Superseded);
    assert_eq!(
        fake.stopped().len(),
        1,
        "1.0.0's migration is stopped: it never counts"
    );

    assert_eq!(
        fake.parameter(SHOP_PARAMETER).as_deref(),
        Some("1.1.0"),
        "SSM names the release in flight, not the superseded one"
    );
}

/// ECS delivers a failing migration's STOPPED event twice: the first delivery
/// is held in its restore of 0.9.0 (its second PutParameter) while the second
/// runs until `second_waits`; then both finish.
async fn failed_migration_delivered_twice_at_once(
    fake: &FakeAws,
    engine: &FakeEngine,
    second_waits: (&str, impl Fn() -> bool),
) -> [Decision; 2] {
    push_shop(engine, fake, "1.0.0", 10).await;
    let failed = migration_of(fake, "1.0.0", 1, 15, 50);
    fake.pause_call("ssm:PutParameter", 2);
    let mut first = pin!(engine.on_task_stopped(&failed, T0 + 50));
    drive_until(
        first.as_mut(),
        "the first delivery is restoring 0.9.0",
        || fake.waiting("ssm:PutParameter") == 1,
    )
    .await;
    let mut second = pin!(engine.on_task_stopped(&failed, T0 + 51));
    let (what, condition) = second_waits;
    drive_until(second.as_mut(), what, condition).await;
    fake.resume("ssm:PutParameter");
    let (first, second) = futures_util::join!(first, second);
    [first.expect("handled"), second.expect("handled")]
}

#[tokio::test]
async fn two_deliveries_of_a_failed_migration_at_once_restore_the_previous_tag_once() {
    let (fake, engine) = estate();
    // The second delivery reads 1.0.0 as well, and waits for the first's claim.
    let decisions = failed_migration_delivered_twice_at_once(
        &fake,
        &engine,
        (
            "the second delivery waits for the claim on the tag writes",
            || fake.awaiting_claim() == 1,
        ),
    )
    .await;

    assert_eq!(
        parameter_values(&fake, SHOP_PARAMETER),
        ["0.9.0", "1.0.0", "0.9.0"],
        "one SSM version for the restore"
    );
    let failed = decisions
        .iter()
        .filter(|d| matches!(d.outcome, Outcome::Failed { .. }))
        .count();
    assert_eq!(failed, 1, "one delivery fails the release");
}

#[tokio::test]
async fn a_tag_write_whose_claimer_died_waits_for_its_lease_then_is_made_once() {
    let (fake, engine) = estate();
    // The first attempt claims the writes and loses its PutParameter, then the
    // release of its claim: the claim stays, with no write behind it.
    fake.fail_next("ssm:PutParameter", None, "InternalServerError", true);
    fake.fail_next("ledger:ReleaseTagClaim", None, "InternalServerError", true);
    let push = fake.push(SHOP_REPOSITORY, "1.0.0", &at(10));
    let first = engine.on_push(&push, T0 + 10).await;
    assert!(matches!(first, Err(ref e) if e.is_retryable()), "{first:?}");

    let held = engine.on_push(&push, T0 + 11).await;
    assert!(
        matches!(held, Err(ref e) if e.is_retryable() && e.to_string().contains("holds the writes")),
        "within the lease the redelivery waits, then retries: {held:?}"
    );
    assert_eq!(parameter_values(&fake, SHOP_PARAMETER), ["0.9.0"]);

    fake.advance_clock(ferry_core::ports::TAG_CLAIM_LEASE);
    deliver(&engine, &push, 40).await;
    assert_eq!(
        parameter_values(&fake, SHOP_PARAMETER),
        ["0.9.0", "1.0.0"],
        "the lapsed claim is taken and the tag written once"
    );
}

#[tokio::test]
async fn a_tag_write_that_ended_after_the_read_beside_the_claim_is_not_made_again() {
    let (fake, engine) = estate();
    // The duplicate's read goes out before the first delivery's restore lands,
    // and its claim is taken only once that restore gave the claim back.
    failed_migration_delivered_twice_at_once(
        &fake,
        &engine,
        ("the duplicate read 1.0.0 and waits", || {
            fake.awaiting_claim() == 1 && fake.count("ssm:GetParameter") >= 2
        }),
    )
    .await;

    assert_eq!(
        parameter_values(&fake, SHOP_PARAMETER),
        ["0.9.0", "1.0.0", "0.9.0"],
        "the duplicate read again and found 0.9.0"
    );
}

#[tokio::test]
async fn a_superseded_releases_late_service_update_is_put_back_on_its_successors_revision() {
    let (fake, engine) = estate();
    push_shop(&engine, &fake, "1.0.0", 10).await;
    // 1.0.0's migration passes; its UpdateService of the first service is slow.
    fake.pause_call("ecs:UpdateService", 1);
    let passed = migration_of(&fake, "1.0.0", 0, 15, 50);
    let mut first = pin!(engine.on_task_stopped(&passed, T0 + 50));
    drive_until(
        first.as_mut(),
        "1.0.0 is updating its first service",
        || fake.waiting("ecs:UpdateService") == 1,
    )
    .await;
    // 1.1.0 supersedes it, migrates and rolls every service out meanwhile.
    push_shop(&engine, &fake, "1.1.0", 60).await;
    let rolled_out = stop(&engine, &migration_of(&fake, "1.1.0", 0, 65, 100)).await;
    assert!(
        matches!(rolled_out.outcome, Outcome::Deploying { .. }),
        "{rolled_out:?}"
    );
    let successor = fake.record(&shop_release("1.1.0"));
    // Then 1.0.0's held call lands: that service runs 1.0.0's revision.
    fake.resume("ecs:UpdateService");
    let late = first.await.expect("handled");
    assert_eq!(late.outcome, Outcome::Superseded);

    assert!(
        SHOP_SERVICES.iter().all(
            |s| fake.service(SHOP_CLUSTER, s).task_definition == successor.task_definitions[*s]
        ),
        "every service runs 1.1.0's revision again"
    );
    let last = every_shop_service_completes(&engine, &fake, T0 + 600).await;
    assert_eq!(
        last.outcome,
        Outcome::Succeeded,
        "1.1.0 follows the deployment that put its service back"
    );
    assert!(SHOP_SERVICES
        .iter()
        .all(|s| fake.service(SHOP_CLUSTER, s).task_definition == successor.task_definitions[*s]));
}

// ---------------------------------------------------------------------------
// A failure no retry can fix, after the claim: the release fails, naming the
// step; no service is touched; the image tag is what it was; the lane is free.

async fn fails_for_good(operation: &'static str, step: &str) {
    let (fake, engine) = estate();
    let services_before: Vec<String> = SHOP_SERVICES
        .iter()
        .map(|s| fake.service(SHOP_CLUSTER, s).task_definition)
        .collect();
    fake.fail_next(operation, None, "AccessDeniedException", false);

    let decision = push_shop(&engine, &fake, "1.0.0", 10).await;

    let Outcome::Failed { reason } = &decision.outcome else {
        panic!("{operation}: expected the release to fail: {decision:?}");
    };
    assert!(
        reason.contains(step) && reason.contains("AccessDeniedException"),
        "{operation}: {reason}"
    );
    let record = fake.record(&shop_release("1.0.0"));
    assert_eq!(record.state, ReleaseState::Failed);
    assert_eq!(record.interrupted, None, "nothing left to resume");
    let services_after: Vec<String> = SHOP_SERVICES
        .iter()
        .map(|s| fake.service(SHOP_CLUSTER, s).task_definition)
        .collect();
    assert_eq!(
        services_after, services_before,
        "{operation}: no service touched"
    );
    assert_eq!(fake.count("ecs:UpdateService"), 0);
    assert_eq!(
        fake.parameter(SHOP_PARAMETER).as_deref(),
        Some("0.9.0"),
        "{operation}: the image tag is what it was"
    );
    assert_eq!(fake.lane_head(&shop_lane()).in_flight, None);
}

#[tokio::test]
async fn a_registration_ecs_refuses_fails_the_release() {
    fails_for_good("ecs:RegisterTaskDefinition", "registering").await;
}

#[tokio::test]
async fn an_image_tag_write_ssm_refuses_fails_the_release() {
    fails_for_good("ssm:PutParameter", "ssm:PutParameter").await;
}

#[tokio::test]
async fn a_migration_ecs_refuses_to_run_fails_the_release() {
    fails_for_good("ecs:RunTask", "migration").await;
}

#[tokio::test]
async fn an_image_tag_ssm_refuses_to_read_fails_the_release() {
    fails_for_good("ssm:GetParameter", "reading the image tag").await;
}

// ---------------------------------------------------------------------------
// A failure after superseding a rollout

/// 1.0.0 known-good; 1.1.0 migrated and rolling out when 1.2.0 is pushed.
async fn rolling_out_when_a_newer_push_arrives(engine: &FakeEngine, fake: &FakeAws) -> ReleaseId {
    let good = release_shop(engine, fake, "1.0.0", 10).await;
    push_shop(engine, fake, "1.1.0", 100).await;
    let decision = stop(engine, &migration_of(fake, "1.1.0", 0, 105, 160)).await;
    assert!(
        matches!(decision.outcome, Outcome::Deploying { .. }),
        "{decision:?}"
    );
    let decision = push_shop(engine, fake, "1.2.0", 200).await;
    assert!(
        matches!(decision.outcome, Outcome::Migrating { .. }),
        "{decision:?}"
    );
    assert_eq!(
        fake.record(&shop_release("1.1.0")).state,
        ReleaseState::Superseded
    );
    good
}

/// Every service runs 1.0.0 (`good`) again, not the superseded 1.1.0, and
/// the parameter names it.
fn assert_back_on_known_good(fake: &FakeAws, good: &ReleaseId) {
    let known_good = fake.record(good);
    for service in SHOP_SERVICES {
        assert_eq!(
            fake.service(SHOP_CLUSTER, service).task_definition,
            known_good.task_definitions[service],
            "{service} runs 1.0.0 again, not the superseded 1.1.0"
        );
    }
    assert_eq!(fake.parameter(SHOP_PARAMETER).as_deref(), Some("1.0.0"));
}

#[tokio::test]
async fn a_release_failing_after_it_superseded_a_rollout_puts_the_services_back_on_known_good() {
    let (fake, engine) = estate();
    let good = rolling_out_when_a_newer_push_arrives(&engine, &fake).await;

    let failed = stop(&engine, &migration_of(&fake, "1.2.0", 1, 205, 260)).await;

    assert!(
        matches!(failed.outcome, Outcome::Failed { .. }),
        "{failed:?}"
    );
    assert_back_on_known_good(&fake, &good);
}

#[tokio::test]
async fn a_put_back_that_failed_is_finished_by_the_redelivered_event_before_the_release_is_failed()
{
    let (fake, engine) = estate();
    let good = rolling_out_when_a_newer_push_arrives(&engine, &fake).await;
    let stopped = migration_of(&fake, "1.2.0", 1, 205, 260);
    fake.fail_next(
        "ecs:RestoreService",
        Some("api"),
        "ThrottlingException",
        true,
    );

    let first = engine.on_task_stopped(&stopped, T0 + 260).await;

    assert!(first.is_err_and(|e| e.is_retryable()));
    assert_eq!(
        fake.record(&shop_release("1.2.0")).state,
        ReleaseState::Migrating,
        "still in flight, so the redelivery judges it again"
    );
    let again = stop(&engine, &stopped).await;
    assert!(matches!(again.outcome, Outcome::Failed { .. }), "{again:?}");
    assert_back_on_known_good(&fake, &good);
}

#[tokio::test]
async fn a_failing_release_leaves_a_service_set_by_hand_to_the_drift_report() {
    let (fake, engine) = estate();
    release_shop(&engine, &fake, "1.0.0", 10).await;
    let by_hand = fake.add_task_definition(
        "shop-api",
        vec![FakeContainer::new("app", &image(SHOP_REPOSITORY, "0.9.0"))],
    );
    fake.update_service_by_hand(SHOP_CLUSTER, "api", &by_hand);
    push_shop(&engine, &fake, "1.1.0", 100).await;
    let updates = fake.count("ecs:UpdateService");

    let failed = stop(&engine, &migration_of(&fake, "1.1.0", 1, 105, 160)).await;

    assert!(
        matches!(failed.outcome, Outcome::Failed { .. }),
        "{failed:?}"
    );
    assert_eq!(fake.service(SHOP_CLUSTER, "api").task_definition, by_hand);
    assert_eq!(
        fake.count("ecs:UpdateService"),
        updates,
        "no service touched"
    );
}

#[tokio::test]
async fn a_failing_migration_after_superseding_a_release_that_reached_its_services_restores_its_tag(
) {
    let (fake, engine) = estate();
    push_shop(&engine, &fake, "1.0.0", 10).await;
    stop(&engine, &migration_of(&fake, "1.0.0", 0, 15, 70)).await;
    let running = fake.service(SHOP_CLUSTER, "api").task_definition;
    // 1.0.0 is rolling out (every service runs it) when 1.1.0 supersedes it.
    push_shop(&engine, &fake, "1.1.0", 80).await;

    let decision = stop(&engine, &migration_of(&fake, "1.1.0", 1, 85, 140)).await;

    assert!(
        matches!(decision.outcome, Outcome::Failed { .. }),
        "{decision:?}"
    );
    assert_eq!(fake.service(SHOP_CLUSTER, "api").task_definition, running);
    assert_eq!(
        fake.parameter(SHOP_PARAMETER).as_deref(),
        Some("1.0.0"),
        "the tag the services run"
    );
}
