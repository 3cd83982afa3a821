//! Every parser of an inbound event or direct-invoke payload under arbitrary
//! input: JSON values of any shape, and the fixtures of `events/` with a field
//! dropped, retyped or replaced. No input panics (a release build aborts on a
//! panic, so a panic here is a lost event in production), and every input
//! refused is refused with a message that says what is wrong.
//!
//! `FERRY_FUZZ_CASES` sets the cases per target (400 by default); millions:
//! `FERRY_FUZZ_CASES=1000000 cargo test --release -p ferry-aws --test fuzz_inbound -- --nocapture`.

use std::path::Path;
use std::time::Instant;

use ferry_aws::inbound::{
    deploy_input, deployment_change, reconcile_input, rollback_input, task_stopped, watch_input,
    BadEvent,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value};

type Parser = fn(Value) -> Result<(), BadEvent>;

/// Every parser, by the function that calls it.
const PARSERS: [(&str, Parser); 6] = [
    ("deploy_input", |v| deploy_input(v).map(drop)),
    ("task_stopped", |v| task_stopped(v).map(drop)),
    ("deployment_change", |v| deployment_change(v).map(drop)),
    ("watch_input", |v| watch_input(v).map(drop)),
    ("rollback_input", |v| rollback_input(v).map(drop)),
    ("reconcile_input", |v| reconcile_input(v).map(drop)),
];

/// Keys the parsers look for, so arbitrary objects reach past the first check.
const KEYS: [&str; 40] = [
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
    "action-type",
    "result",
    "repository-name",
    "image-digest",
    "image-tag",
    "deploy",
    "retry",
    "rollback",
    "unfreeze",
    "bless",
    "bake_ended",
    "reconcile",
    "release_id",
    "app",
    "environment",
    "tag",
    "digest",
    "repository",
    "force",
    "to",
    "reason",
    "lastStatus",
    "startedBy",
    "taskArn",
    "containers",
    "exitCode",
    "eventName",
    "deploymentId",
    "alarmName",
    "state",
    "value",
];

fn cases() -> u32 {
    std::env::var("FERRY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(KEYS.to_vec()).prop_map(|k| Value::String(k.to_owned())),
        prop::sample::select(vec![
            "aws.ecr",
            "aws.ecs",
            "aws.cloudwatch",
            "aws.events",
            "aws.secretsmanager",
            "ECR Image Action",
            "ECS Task State Change",
            "ECS Deployment State Change",
            "CloudWatch Alarm State Change",
            "Scheduled Event",
            "PUSH",
            "SUCCESS",
            "STOPPED",
            "ALARM",
            "OK",
            "2026-01-01T00:00:00Z",
            "shop",
            "prod",
            "1.0.0",
            "SERVICE_DEPLOYMENT_COMPLETED",
            "SERVICE_DEPLOYMENT_FAILED",
            "ferry/shop/prod/x",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        4 => prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned),
                        1 => ".{0,8}",
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn fixtures() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events");
    let mut fixtures: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .expect("events/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("a fixture");
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_owned();
            (name, serde_json::from_str(&text).expect("a JSON fixture"))
        })
        .collect();
    fixtures.sort_by(|a, b| a.0.cmp(&b.0));
    fixtures
}

/// What happens to the field a walk reaches.
#[derive(Debug, Clone)]
enum Mutation {
    Drop,
    Replace(Value),
    /// The same content as another JSON type.
    Retype,
}

fn retyped(value: &Value) -> Value {
    match value {
        Value::String(s) => s
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::Array(vec![Value::String(s.clone())])),
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Null => Value::Object(Map::new()),
        Value::Array(items) => items.first().cloned().unwrap_or(Value::Null),
        Value::Object(map) => Value::Array(map.values().cloned().collect()),
    }
}

/// Walks `path` (indices modulo each level's size) and mutates where it ends;
/// the name of the field mutated, if it was an object's.
fn mutate(value: &mut Value, path: &[usize], mutation: &Mutation) -> Option<String> {
    let (first, rest) = match path.split_first() {
        Some(split) => split,
        None => {
            *value = match mutation {
                Mutation::Drop => Value::Null,
                Mutation::Replace(v) => v.clone(),
                Mutation::Retype => retyped(value),
            };
            return None;
        }
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            let key = map.keys().nth(first % map.len()).cloned()?;
            let child = map.get_mut(&key)?;
            let descend = !rest.is_empty() && matches!(child, Value::Object(_) | Value::Array(_));
            if descend {
                return mutate(child, rest, mutation);
            }
            match mutation {
                Mutation::Drop => {
                    map.remove(&key);
                }
                Mutation::Replace(v) => *child = v.clone(),
                Mutation::Retype => *child = retyped(child),
            }
            Some(key)
        }
        Value::Array(items) if !items.is_empty() => {
            let i = first % items.len();
            if rest.is_empty() {
                match mutation {
                    Mutation::Drop => {
                        items.remove(i);
                    }
                    Mutation::Replace(v) => items[i] = v.clone(),
                    Mutation::Retype => items[i] = retyped(&items[i]),
                }
                None
            } else {
                mutate(&mut items[i], rest, mutation)
            }
        }
        _ => {
            mutate(value, &[], mutation);
            None
        }
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::Drop),
        Just(Mutation::Retype),
        leaf().prop_map(Mutation::Replace),
        json().prop_map(Mutation::Replace),
    ]
}

/// Runs every parser on `value`: none panics, and a refusal says something.
fn every_parser_answers(value: &Value) -> Result<(), TestCaseError> {
    for (name, parser) in PARSERS {
        let outcome = std::panic::catch_unwind(|| parser(value.clone()));
        match outcome {
            Err(_) => return Err(TestCaseError::fail(format!("{name} panicked on {value}"))),
            Ok(Err(BadEvent(message))) if message.trim().is_empty() => {
                return Err(TestCaseError::fail(format!(
                    "{name} refused {value} without a message"
                )))
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

fn run<S: Strategy>(
    target: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let cases = cases();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let started = Instant::now();
    let result = runner.run(&strategy, test);
    println!(
        "fuzz {target}: {cases} cases × {} parsers, {} panics or silent refusals, {:.2}s",
        PARSERS.len(),
        u32::from(result.is_err()),
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn no_parser_panics_on_arbitrary_json_and_every_refusal_says_why() {
    run("arbitrary JSON", json(), |value| {
        every_parser_answers(&value)
    });
}

#[test]
fn no_parser_panics_on_a_fixture_with_a_field_dropped_retyped_or_replaced() {
    let fixtures = fixtures();
    let count = fixtures.len();
    let strategy = (
        0..count,
        prop::collection::vec(any::<usize>(), 0..6),
        mutation(),
    );
    run("mutated fixtures", strategy, |(i, path, mutation)| {
        let (name, fixture) = &fixtures[i];
        let mut value = fixture.clone();
        let field = mutate(&mut value, &path, &mutation);
        every_parser_answers(&value)
            .map_err(|e| TestCaseError::fail(format!("{name} with {field:?} {mutation:?}: {e}")))
    });
}

#[test]
fn a_fixture_whose_detail_field_is_retyped_is_refused_naming_the_field() {
    // Each ECR/ECS/CloudWatch fixture, each field of its detail retyped in turn:
    // the refusal names the field (or the event is ignored as not ferry's).
    for (name, fixture) in fixtures() {
        let Some(detail) = fixture.get("detail").and_then(Value::as_object) else {
            continue;
        };
        for key in detail.keys() {
            let mut value = fixture.clone();
            let field = &mut value["detail"][key];
            if !matches!(field, Value::String(_) | Value::Number(_)) {
                continue;
            }
            *field = Value::Array(vec![]);
            for (parser, parse) in PARSERS {
                if let Err(BadEvent(message)) = parse(value.clone()) {
                    assert!(!message.is_empty(), "{parser} on {name}: empty message");
                    if !message.contains("detail-type") && !message.contains("must be") {
                        assert!(
                            message.contains(key.as_str()) || !message.contains("detail"),
                            "{parser} on {name} with detail.{key} retyped: {message}"
                        );
                    }
                }
            }
        }
    }
}
