//! Every sample event in `events/` parses to what `events/README.md` says it is,
//! through the function its rule in `template.yaml` (or a direct invoke) sends it
//! to. The directory is read, not listed here: a new fixture without an
//! expectation below fails [`every_fixture_has_an_expectation`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ferry_aws::inbound::{
    deploy_input, deployment_change, reconcile_input, rollback_input, task_stopped, watch_input,
    DeployInput, RollbackInput, WatchInput,
};
use ferry_core::engine::{AlarmState, DeploymentOutcome, Push, ReconcileRequest, TaskStopped};
use ferry_core::ports::{ApprovalPlan, ParameterChange, ReleaseEvent};
use ferry_core::release::ReleaseState;
use serde_json::Value;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "eu-west-1";
const TASK: &str =
    "arn:aws:ecs:eu-west-1:123456789012:task/shop-prod/a1b2c3d4e5f60718293a4b5c6d7e8f90";
const STARTED_BY: &str = "ferry/shop/prod/3f2a9c1b7e40d5a1";
const DEPLOYMENT: &str = "ecs-svc/0123456789012345678";

/// `sha256:` + `part` repeated to 64 hex digits, as the README describes the digests.
fn digest(part: &str) -> String {
    format!("sha256:{}", part.repeat(64 / part.len()))
}

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

/// Every `*.json` of `events/`, by file name.
fn fixtures() -> BTreeMap<String, Value> {
    let dir = events_dir();
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    let mut fixtures = BTreeMap::new();
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a UTF-8 file name")
            .to_owned();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"));
        fixtures.insert(name, value);
    }
    assert!(!fixtures.is_empty(), "no fixtures in {}", dir.display());
    fixtures
}

fn epoch_millis(rfc3339: &str) -> i64 {
    rfc3339
        .parse::<DateTime<Utc>>()
        .expect("an RFC 3339 time")
        .timestamp_millis()
}

fn epoch_secs(rfc3339: &str) -> u64 {
    let secs = rfc3339
        .parse::<DateTime<Utc>>()
        .expect("an RFC 3339 time")
        .timestamp();
    u64::try_from(secs).expect("after 1970")
}

// ------------------------------------------------------------ expectations

/// The function a fixture goes to, and what it must parse to there.
struct Expectation {
    function: &'static str,
    check: fn(Value),
}

fn expectations() -> BTreeMap<&'static str, Expectation> {
    let mut map = BTreeMap::new();
    let mut expect = |name: &'static str, function: &'static str, check: fn(Value)| {
        assert!(
            map.insert(name, Expectation { function, check }).is_none(),
            "{name} is expected twice"
        );
    };
    expect("ecr-push-1.0.0.json", "ferry-deploy", |e| {
        push_of(
            e,
            "shop",
            "1.0.0",
            &digest("3f2a9c1b7e40d5a1"),
            "2026-11-23T10:00:00Z",
        )
    });
    expect("ecr-push-1.1.0.json", "ferry-deploy", |e| {
        push_of(
            e,
            "shop",
            "1.1.0",
            &digest("8b7c6d5e4f3a2b1c"),
            "2026-11-23T11:00:00Z",
        )
    });
    expect("ecr-push-latest.json", "ferry-deploy", |e| {
        // refusing `latest` is the tag policy's job, not the parser's
        push_of(
            e,
            "shop",
            "latest",
            &digest("c0ffee00"),
            "2026-11-23T11:05:00Z",
        )
    });
    expect("ecr-push-unknown-repository.json", "ferry-deploy", |e| {
        push_of(
            e,
            "unknown-app",
            "1.0.0",
            &digest("deadbeef"),
            "2026-11-23T10:30:00Z",
        )
    });
    expect("ecs-task-stopped-exit-0.json", "ferry-gate", |e| {
        let stopped = stopped(e);
        assert_eq!(
            stopped.task.stop_code.as_deref(),
            Some("EssentialContainerExited")
        );
        assert_eq!(
            stopped.task.stopped_reason.as_deref(),
            Some("Essential container in task exited")
        );
        assert_eq!(stopped.task.containers.len(), 1);
        assert_eq!(stopped.task.containers[0].name, "migrate");
        assert_eq!(stopped.task.containers[0].exit_code, Some(0));
        assert_eq!(stopped.task.containers[0].reason, None);
        assert_eq!(
            stopped.task.started_at,
            Some(epoch_secs("2026-11-23T10:00:33Z"))
        );
        assert_eq!(
            stopped.task.stopped_at,
            Some(epoch_secs("2026-11-23T10:02:31Z"))
        );
    });
    expect("ecs-task-stopped-exit-1.json", "ferry-gate", |e| {
        let stopped = stopped(e);
        assert_eq!(
            stopped.task.stop_code.as_deref(),
            Some("EssentialContainerExited")
        );
        assert_eq!(stopped.task.containers.len(), 1);
        assert_eq!(stopped.task.containers[0].name, "migrate");
        assert_eq!(stopped.task.containers[0].exit_code, Some(1));
        assert_eq!(
            stopped.task.started_at,
            Some(epoch_secs("2026-11-23T10:00:33Z"))
        );
        assert_eq!(
            stopped.task.stopped_at,
            Some(epoch_secs("2026-11-23T10:02:31Z"))
        );
    });
    expect("ecs-task-failed-to-start.json", "ferry-gate", |e| {
        let stopped = stopped(e);
        assert_eq!(stopped.task.stop_code.as_deref(), Some("TaskFailedToStart"));
        assert!(stopped
            .task
            .stopped_reason
            .as_deref()
            .is_some_and(|r| r.starts_with("CannotPullContainerError")));
        assert_eq!(stopped.task.containers.len(), 1);
        let migrate = &stopped.task.containers[0];
        assert_eq!(migrate.name, "migrate");
        assert_eq!(migrate.exit_code, None, "it never ran");
        assert!(migrate
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("CannotPullContainerError")));
        assert_eq!(stopped.task.started_at, None, "it never started");
        assert_eq!(
            stopped.task.stopped_at,
            Some(epoch_secs("2026-11-23T10:01:24Z"))
        );
    });
    expect("ecs-deployment-completed.json", "ferry-watch", |e| {
        let change = deployment_change(e)
            .expect("a deployment change")
            .expect("a finished deployment");
        assert_eq!(change.cluster, "shop-prod");
        assert_eq!(change.service, "api");
        assert_eq!(change.deployment_id, DEPLOYMENT);
        assert_eq!(change.outcome, DeploymentOutcome::Completed);
        assert_eq!(
            change.reason.as_deref(),
            Some("ECS deployment ecs-svc/0123456789012345678 completed.")
        );
    });
    expect("ecs-deployment-failed.json", "ferry-watch", |e| {
        let change = deployment_change(e)
            .expect("a deployment change")
            .expect("a finished deployment");
        assert_eq!(change.cluster, "shop-prod");
        assert_eq!(change.service, "api");
        assert_eq!(change.deployment_id, DEPLOYMENT);
        assert_eq!(change.outcome, DeploymentOutcome::Failed);
        assert_eq!(
            change.reason.as_deref(),
            Some("ECS deployment circuit breaker: tasks failed to start.")
        );
    });
    expect(
        "cloudwatch-alarm-state-change-alarm.json",
        "ferry-rollback",
        |e| {
            let RollbackInput::Alarm(alarm) = rollback_input(e).expect("an alarm change") else {
                panic!("an alarm change");
            };
            assert_eq!(alarm.alarm, "shop-prod-5xx");
            assert_eq!(alarm.state, AlarmState::Alarm);
            assert_eq!(alarm.previous_state, Some(AlarmState::Ok));
            assert!(
                alarm.reason.starts_with("Threshold Crossed") && alarm.reason.contains("[57.0"),
                "{}",
                alarm.reason
            );
        },
    );
    expect(
        "cloudwatch-alarm-state-change-ok.json",
        "ferry-rollback",
        |e| {
            let RollbackInput::Alarm(alarm) = rollback_input(e).expect("an alarm change") else {
                panic!("an alarm change");
            };
            assert_eq!(alarm.alarm, "shop-prod-5xx");
            assert_eq!(alarm.state, AlarmState::Ok);
            assert_eq!(alarm.previous_state, Some(AlarmState::Alarm));
            assert!(alarm.reason.contains("[0.0"), "{}", alarm.reason);
        },
    );
    expect("secret-label-updated.json", "ferry-deploy", |e| {
        let input = deploy_input(e).expect("a secret's new current value");
        let DeployInput::SecretChanged(change) = input else {
            panic!("a secret change, got {input:?}");
        };
        assert_eq!(
            change.secret, "shop/prod/db",
            "the friendly name, not the ARN"
        );
        assert_eq!(change.version, "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111");
    });
    expect("invoke-deploy-tag.json", "ferry-deploy", |e| {
        let DeployInput::Deploy(request) = deploy_input(e).expect("a deploy request") else {
            panic!("a deploy request");
        };
        assert_eq!(request.app, "shop");
        assert_eq!(request.environment, "prod");
        assert_eq!(request.tag.as_deref(), Some("1.1.0"));
        assert_eq!(request.digest, None);
        assert_eq!(request.repository, None);
    });
    expect("invoke-deploy-digest.json", "ferry-deploy", |e| {
        let DeployInput::Deploy(request) = deploy_input(e).expect("a deploy request") else {
            panic!("a deploy request");
        };
        assert_eq!(request.app, "shop");
        assert_eq!(request.environment, "prod");
        assert_eq!(request.tag, None);
        assert_eq!(
            request.digest.as_deref(),
            Some(digest("8b7c6d5e4f3a2b1c").as_str()),
            "the digest pushed as 1.1.0"
        );
        assert_eq!(request.repository, None);
    });
    expect("invoke-retry.json", "ferry-deploy", |e| {
        let DeployInput::Retry(request) = deploy_input(e).expect("a retry request") else {
            panic!("a retry request");
        };
        assert_eq!(
            (request.app.as_str(), request.environment.as_str()),
            ("shop", "prod")
        );
        assert_eq!(request.tag.as_deref(), Some("1.0.0"));
        assert_eq!((request.digest, request.repository), (None, None));
        assert!(!request.force);
    });
    expect("invoke-promote.json", "ferry-deploy", |e| {
        let DeployInput::Promote(request) = deploy_input(e).expect("a promote request") else {
            panic!("a promote request");
        };
        assert_eq!(
            (
                request.app.as_str(),
                request.from.as_str(),
                request.to.as_str()
            ),
            ("shop", "staging", "prod")
        );
    });
    expect("invoke-approve.json", "ferry-deploy", |e| {
        let DeployInput::Approve(request) = deploy_input(e).expect("an approve request") else {
            panic!("an approve request");
        };
        assert_eq!(
            (request.app.as_str(), request.environment.as_str()),
            ("shop", "prod")
        );
        assert_eq!((request.repository, request.release_id), (None, None));
    });
    expect("invoke-reject.json", "ferry-deploy", |e| {
        let DeployInput::Reject(request) = deploy_input(e).expect("a reject request") else {
            panic!("a reject request");
        };
        assert_eq!(
            (request.app.as_str(), request.environment.as_str()),
            ("shop", "prod")
        );
        assert_eq!(
            request.reason.as_deref(),
            Some("change freeze until Monday")
        );
        assert_eq!((request.repository, request.release_id), (None, None));
    });
    expect("invoke-rollback-previous.json", "ferry-rollback", |e| {
        let RollbackInput::Rollback(request) = rollback_input(e).expect("a rollback request")
        else {
            panic!("a rollback request");
        };
        assert_eq!(request.app, "shop");
        assert_eq!(request.environment, "prod");
        assert_eq!(request.to, None, "the known-good release before");
        assert_eq!(request.reason, "checkout errors after 1.1.0");
        assert_eq!(request.repository, None);
    });
    expect("invoke-rollback-to-tag.json", "ferry-rollback", |e| {
        let RollbackInput::Rollback(request) = rollback_input(e).expect("a rollback request")
        else {
            panic!("a rollback request");
        };
        assert_eq!(request.app, "shop");
        assert_eq!(request.environment, "prod");
        assert_eq!(request.to.as_deref(), Some("1.0.0"));
        assert_eq!(
            request.reason,
            "back to 1.0.0 while checkout errors after 1.1.0 are investigated"
        );
        assert_eq!(request.repository, None);
    });
    expect("invoke-bake-ended.json", "ferry-watch", |e| {
        let input = watch_input(e).expect("the end-of-bake timer's input");
        let WatchInput::BakeEnded(release) = input else {
            panic!("the end of a bake, got {input:?}");
        };
        assert_eq!(release.as_str(), "shop/prod/3f2a9c1b7e40d5a1");
    });
    expect("invoke-bless.json", "ferry-watch", |e| {
        let input = watch_input(e).expect("a bless request");
        let WatchInput::Bless(request) = input else {
            panic!("a bless request, got {input:?}");
        };
        assert_eq!(
            (request.app.as_str(), request.environment.as_str()),
            ("shop", "prod")
        );
        assert_eq!(request.repository, None);
    });
    expect("invoke-unfreeze.json", "ferry-rollback", |e| {
        let RollbackInput::Unfreeze(request) = rollback_input(e).expect("an unfreeze request")
        else {
            panic!("an unfreeze request");
        };
        assert_eq!(request.app, "shop");
        assert_eq!(request.environment, "prod");
    });
    expect("scheduled-event.json", "ferry-reconcile", |e| {
        assert_eq!(
            reconcile_input(e).expect("the schedule's event"),
            ReconcileRequest::default(),
            "the schedule reconciles every lane"
        );
    });
    expect("invoke-reconcile.json", "ferry-reconcile", |e| {
        assert_eq!(
            reconcile_input(e).expect("a reconcile request"),
            ReconcileRequest {
                app: Some("shop".into()),
                environment: Some("prod".into()),
                repository: Some("shop".into()),
            }
        );
    });
    // ferry's own events, as EventBridge delivers them to the notification rule
    expect(
        "ferry-release-state-change-failed.json",
        RELEASE_NOTIFICATIONS,
        |e| {
            let event = release_event(
                "1.0.0",
                ReleaseState::Failed,
                Some(ReleaseState::Migrating),
                Some("migration container \"migrate\" exited with code 1 (stop code EssentialContainerExited: Essential container in task exited)"),
            );
            delivered(e, &event);
        },
    );
    expect(
        "ferry-release-state-change-rolled-back.json",
        RELEASE_NOTIFICATIONS,
        |e| {
            let event = release_event(
                "1.1.0",
                ReleaseState::RolledBack,
                Some(ReleaseState::RollingBack),
                Some("alarm shop-prod-5xx: Threshold Crossed: 1 out of the last 1 datapoints [57.0 (23/11/26 10:10:00)] was greater than the threshold (10.0) (minimum 1 datapoint for OK -> ALARM transition)."),
            );
            delivered(e, &event);
        },
    );
    expect(
        "ferry-release-state-change-awaiting-approval.json",
        RELEASE_NOTIFICATIONS,
        |e| {
            let revision = |family: &str| {
                format!("arn:aws:ecs:eu-west-1:{ACCOUNT}:task-definition/{family}:8")
            };
            let event = ReleaseEvent {
                plan: Some(ApprovalPlan {
                    task_definitions: ["api", "scheduler", "worker"]
                        .into_iter()
                        .map(|s| (s.to_owned(), revision(&format!("shop-{s}"))))
                        .collect(),
                    parameter: ParameterChange {
                        name: "/shop/prod/compute/currentImageTag".into(),
                        from: Some("1.0.0".into()),
                        to: "1.1.0".into(),
                    },
                    migration: Some(revision("shop-migrate")),
                    expires_at: epoch_secs("2026-11-24T11:00:09Z"),
                }),
                ..release_event(
                    "1.1.0",
                    ReleaseState::AwaitingApproval,
                    Some(ReleaseState::Claimed),
                    None,
                )
            };
            delivered(e, &event);
        },
    );
    expect(
        "ferry-release-state-change-succeeded.json",
        RELEASE_NOTIFICATIONS,
        |e| {
            let event = release_event(
                "1.0.0",
                ReleaseState::Succeeded,
                Some(ReleaseState::Baking),
                None,
            );
            delivered(e, &event);
        },
    );
    expect(
        "ferry-release-state-change-deploying.json",
        RELEASE_NOTIFICATIONS,
        |e| {
            let event = release_event(
                "1.0.0",
                ReleaseState::Deploying,
                Some(ReleaseState::Migrating),
                None,
            );
            delivered(e, &event);
        },
    );
    map
}

/// Where ferry's own Release State Change events go: no function, the
/// notification rule (rendered by tests/emulator/test_notifications.py).
const RELEASE_NOTIFICATIONS: &str = "ReleaseNotificationRule";

/// The event ferry emits for the README's 1.0.0 (or 1.1.0) release of shop/prod.
fn release_event(
    tag: &str,
    state: ReleaseState,
    previous_state: Option<ReleaseState>,
    reason: Option<&str>,
) -> ReleaseEvent {
    let (id, digest) = match tag {
        "1.0.0" => ("shop/prod/3f2a9c1b7e40d5a1", digest("3f2a9c1b7e40d5a1")),
        _ => ("shop/prod/8b7c6d5e4f3a2b1c", digest("8b7c6d5e4f3a2b1c")),
    };
    ReleaseEvent {
        release_id: id.into(),
        app: "shop".into(),
        environment: "prod".into(),
        repository: "shop".into(),
        tag: tag.into(),
        digest,
        state,
        previous_state,
        reason: reason.map(str::to_owned),
        services: vec!["api".into(), "worker".into(), "scheduler".into()],
        plan: None,
        timing: None,
    }
}

/// `event` is `emitted` as EventBridge delivers a PutEvents entry of ferry's:
/// the envelope, the source and detail-type ferry puts, the detail exactly as
/// `ReleaseEvent` serializes (no entry resources: an empty list).
fn delivered(event: Value, emitted: &ReleaseEvent) {
    assert_eq!(event["version"], "0");
    assert_eq!(event["source"], ferry_aws::events::SOURCE);
    assert_eq!(event["detail-type"], ferry_aws::events::DETAIL_TYPE);
    assert_eq!(event["account"], ACCOUNT);
    assert_eq!(event["region"], REGION);
    assert_eq!(event["resources"], Value::Array(Vec::new()));
    assert!(event["id"].as_str().is_some_and(|id| !id.is_empty()));
    epoch_secs(event["time"].as_str().expect("a time"));
    assert_eq!(
        event["detail"],
        serde_json::to_value(emitted).expect("a ReleaseEvent serializes")
    );
}

fn push_of(event: Value, repository: &str, tag: &str, digest: &str, time: &str) {
    let DeployInput::Push(push) = deploy_input(event).expect("a push") else {
        panic!("a push, not a skip or a deploy request");
    };
    let Push {
        registry_id,
        region,
        repository: seen_repository,
        tag: seen_tag,
        digest: seen_digest,
        pushed_at,
    } = push;
    assert_eq!(registry_id, ACCOUNT);
    assert_eq!(region, REGION);
    assert_eq!(seen_repository, repository);
    assert_eq!(seen_tag, tag);
    assert_eq!(seen_digest, digest);
    assert_eq!(pushed_at.epoch_millis(), epoch_millis(time));
}

/// The migration task of the README, stopped.
fn stopped(event: Value) -> TaskStopped {
    let stopped = task_stopped(event)
        .expect("a task state change")
        .expect("a stopped task");
    assert_eq!(stopped.task_arn, TASK);
    assert_eq!(stopped.started_by.as_deref(), Some(STARTED_BY));
    stopped
}

// ------------------------------------------------------------------- tests

#[test]
fn every_fixture_has_an_expectation() {
    let expectations = expectations();
    let fixtures = fixtures();
    let unmapped: Vec<&String> = fixtures
        .keys()
        .filter(|name| !expectations.contains_key(name.as_str()))
        .collect();
    assert!(
        unmapped.is_empty(),
        "fixtures with no expectation in crates/aws/tests/fixtures.rs: {unmapped:?}"
    );
    let missing: Vec<&&str> = expectations
        .keys()
        .filter(|name| !fixtures.contains_key(**name))
        .collect();
    assert!(
        missing.is_empty(),
        "expectations for fixtures that are not in events/: {missing:?}"
    );
}

#[test]
fn every_fixture_parses_to_what_the_readme_says_it_is() {
    let expectations = expectations();
    let mut failed = Vec::new();
    for (name, event) in fixtures() {
        let Some(expectation) = expectations.get(name.as_str()) else {
            continue; // every_fixture_has_an_expectation reports it
        };
        let check = expectation.check;
        if std::panic::catch_unwind(move || check(event)).is_err() {
            failed.push(name);
        }
    }
    assert!(
        failed.is_empty(),
        "fixtures that did not parse as expected: {failed:?}"
    );
}

/// The envelope fields EventBridge puts on every event it delivers.
const ENVELOPE: [&str; 9] = [
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
];

/// An AWS event claims to be one by any envelope field; direct invokes carry none.
fn claims_to_be_an_event(name: &str, fixture: &Value) -> bool {
    !name.starts_with("invoke-") || ENVELOPE.iter().any(|k| fixture.get(k).is_some())
}

#[test]
fn every_aws_event_fixture_has_the_eventbridge_envelope() {
    let mut events = 0;
    for (name, fixture) in fixtures() {
        if !claims_to_be_an_event(&name, &fixture) {
            continue;
        }
        events += 1;
        let object = fixture
            .as_object()
            .unwrap_or_else(|| panic!("{name} is not a JSON object"));
        let missing: Vec<&str> = ENVELOPE
            .iter()
            .copied()
            .filter(|k| !object.contains_key(*k))
            .collect();
        assert!(
            missing.is_empty(),
            "{name} lacks envelope fields {missing:?}"
        );
        let text = |k: &str| {
            object[k]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: `{k}` is not a string"))
        };
        assert_eq!(text("version"), "0", "{name}: `version`");
        assert!(!text("id").is_empty(), "{name}: `id`");
        assert!(!text("detail-type").is_empty(), "{name}: `detail-type`");
        // AWS services' events, or ferry's own (PutEvents with source `ferry`)
        assert!(
            text("source").starts_with("aws.") || text("source") == ferry_aws::events::SOURCE,
            "{name}: `source`"
        );
        assert_eq!(text("account"), ACCOUNT, "{name}: `account` (one estate)");
        assert_eq!(text("region"), REGION, "{name}: `region` (one estate)");
        assert!(
            text("time").parse::<DateTime<Utc>>().is_ok(),
            "{name}: `time` is not RFC 3339"
        );
        let resources = object["resources"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: `resources` is not an array"));
        assert!(
            resources.iter().all(Value::is_string),
            "{name}: `resources` holds ARNs"
        );
        assert!(
            object["detail"].is_object(),
            "{name}: `detail` is not an object"
        );
        let unknown: Vec<&String> = object
            .keys()
            .filter(|k| !ENVELOPE.contains(&k.as_str()))
            .collect();
        assert!(
            unknown.is_empty(),
            "{name}: fields beyond the envelope {unknown:?}"
        );
    }
    assert!(events > 0, "no AWS event fixtures");
}

#[test]
fn every_direct_invoke_fixture_is_one_request_object() {
    for (name, fixture) in fixtures() {
        if claims_to_be_an_event(&name, &fixture) {
            continue;
        }
        let object = fixture
            .as_object()
            .unwrap_or_else(|| panic!("{name} is not a JSON object"));
        assert_eq!(object.len(), 1, "{name}: one request");
        assert!(
            object.values().all(Value::is_object),
            "{name}: the request is an object"
        );
    }
}

/// The `events/README.md` row of each fixture: `| \`file\` | function (rule) | ... |`.
fn readme_rows() -> BTreeMap<String, String> {
    let path = events_dir().join("README.md");
    let readme = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    readme
        .lines()
        .filter_map(|line| {
            let mut cells = line.split('|').map(str::trim).skip(1);
            let file = cells.next()?.strip_prefix('`')?.strip_suffix(".json`")?;
            let function = cells.next()?;
            Some((format!("{file}.json"), function.to_owned()))
        })
        .collect()
}

#[test]
fn every_fixture_is_checked_against_the_function_the_readme_names() {
    let rows = readme_rows();
    for (name, expectation) in expectations() {
        let row = rows
            .get(name)
            .unwrap_or_else(|| panic!("{name} has no row in events/README.md"));
        assert!(
            row.contains(expectation.function),
            "{name}: README sends it to `{row}`, the test to {}",
            expectation.function
        );
    }
    for name in fixtures().keys() {
        assert!(
            rows.contains_key(name),
            "{name} has no row in events/README.md"
        );
    }
}

#[test]
fn a_malformed_approve_invoke_is_answered_as_bad_input_naming_the_field_and_not_retried() {
    let mut fixture = fixtures()
        .remove("invoke-approve.json")
        .expect("events/invoke-approve.json");
    fixture["approve"]["release_id"] = Value::Bool(true);
    let error = deploy_input(fixture).expect_err("a boolean release id is refused");
    let handler_error = ferry_aws::handlers::HandlerError::from(error);
    assert!(!handler_error.is_retryable());
    let reply = ferry_aws::handlers::respond(Err(handler_error)).expect("answered, not an error");
    assert_eq!(reply["ok"], Value::Bool(false));
    assert_eq!(reply["error"]["kind"], "bad_input");
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("`approve.release_id`"), "{message}");
}

/// The resource block of `template.yaml` that builds `binary` (`Binary: ferry-deploy`).
fn template_function(binary: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
    let template = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut blocks = Vec::new();
    let mut block = String::new();
    for line in template.lines() {
        // a resource starts at two spaces of indent: `  DeployFunction:`
        let starts = line.len() > 2
            && line.starts_with("  ")
            && !line[2..].starts_with(' ')
            && line.trim_end().ends_with(':');
        if starts || !line.starts_with(' ') {
            blocks.push(std::mem::take(&mut block));
        }
        block.push_str(line);
        block.push('\n');
    }
    blocks.push(block);
    let wanted = format!("Binary: {binary}\n");
    blocks
        .into_iter()
        .find(|b| b.contains(&wanted))
        .unwrap_or_else(|| panic!("no function in template.yaml builds {binary}"))
}

#[test]
fn every_event_fixture_has_the_source_and_detail_type_of_its_functions_rule() {
    let rows = readme_rows();
    let expectations = expectations();
    for (name, fixture) in fixtures() {
        if !claims_to_be_an_event(&name, &fixture) {
            continue;
        }
        let row = &rows[&name];
        if row.starts_with("none") {
            continue; // matches no rule on purpose (README)
        }
        let function = template_function(expectations[name.as_str()].function);
        let rule = row
            .split('`')
            .nth(1)
            .unwrap_or_else(|| panic!("{name}: the README names no rule in `{row}`"));
        assert!(
            function.contains(&format!("        {rule}:\n")),
            "{name}: rule {rule} is not an event of the function in template.yaml"
        );
        let event = function
            .split(&format!("        {rule}:\n"))
            .nth(1)
            .unwrap_or_default();
        if event.trim_start().starts_with("Type: Schedule\n") {
            // A schedule rule has no pattern: what it delivers is EventBridge's
            // Scheduled Event ("Amazon EventBridge events", EventBridge User Guide).
            assert_eq!(fixture["source"], "aws.events", "{name}: `source`");
            assert_eq!(
                fixture["detail-type"], "Scheduled Event",
                "{name}: `detail-type`"
            );
            continue;
        }
        for (key, field) in [("source", "source"), ("detail-type", "detail-type")] {
            let value = fixture[field].as_str().unwrap_or_default();
            assert!(
                function.contains(&format!("{key}: [\"{value}\"]")),
                "{name}: template.yaml's {rule} rule does not match {key} {value:?}"
            );
        }
    }
}
