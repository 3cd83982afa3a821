//! The AWS events ferry consumes, in their documented shapes, turned into the
//! engine's inputs. Anything that does not fit is a [`BadEvent`] naming the
//! field, and the handler answers it without touching AWS.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use ferry_core::engine::BlessRequest;
use ferry_core::engine::{
    AlarmChange, ApprovalRequest, DeployRequest, DeploymentChange, DeploymentOutcome,
    PromoteRequest, Push, ReconcileRequest, RejectRequest, RetryRequest, RollbackRequest,
    SecretChange, TaskStopped, UnfreezeRequest,
};
use ferry_core::names::PushTime;
use ferry_core::release::ReleaseId;
use ferry_core::release::{StoppedContainer, StoppedTask};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadEvent(pub String);

fn bad(message: impl Into<String>) -> BadEvent {
    BadEvent(message.into())
}

/// What a direct invoke of ferry-deploy looks like.
const DEPLOY_LIKE: &str = r#"{"app": "shop", "environment": "prod", "tag": "1.1.0"}"#;
/// What an operator's retry looks like (every field but app and environment optional).
const RETRY_LIKE: &str =
    r#"{"app": "shop", "environment": "prod", "tag": "1.1.0", "force": false}"#;
/// What a direct invoke of ferry-rollback looks like.
/// What a promotion looks like.
const PROMOTE_LIKE: &str = r#"{"app": "shop", "from": "staging", "to": "prod"}"#;
/// What an approve looks like ("repository" and "release_id" optional).
const APPROVE_LIKE: &str = r#"{"app": "shop", "environment": "prod"}"#;
/// What a reject looks like ("reason", "repository" and "release_id" optional).
const REJECT_LIKE: &str = r#"{"app": "shop", "environment": "prod", "reason": "change freeze"}"#;
const ROLLBACK_LIKE: &str =
    r#"{"app": "shop", "environment": "prod", "reason": "checkout errors", "to": "1.0.0"}"#;
const UNFREEZE_LIKE: &str = r#"{"app": "shop", "environment": "prod"}"#;
const BLESS_LIKE: &str = r#"{"app": "shop", "environment": "prod"}"#;
const BAKE_ENDED_LIKE: &str = r#"{"release_id": "shop/prod/3f2a9c1b7e40d5a1"}"#;

const RECONCILE_LIKE: &str = r#"{"app": "shop", "environment": "prod", "repository": "shop"}"#;

fn reconcile_expected() -> String {
    format!(
        "ferry-reconcile takes its schedule's EventBridge Scheduled Event (every lane) or {{\"reconcile\": {RECONCILE_LIKE}}} (each field optional: left out, every app, environment or repository)"
    )
}

fn watch_expected() -> String {
    format!(
        "ferry-watch takes an ECS Deployment State Change event, its bake timer's {{\"bake_ended\": {BAKE_ENDED_LIKE}}} or {{\"bless\": {BLESS_LIKE}}}"
    )
}

fn deploy_expected() -> String {
    format!(
        "ferry-deploy takes an ECR Image Action event, a Secrets Manager Secret Label Updated event, {{\"deploy\": {DEPLOY_LIKE}}} (\"digest\" instead of \"tag\" also works) or {{\"retry\": {RETRY_LIKE}}} (without \"tag\" or \"digest\": the lane's last failed release), {{\"promote\": {PROMOTE_LIKE}}}, {{\"approve\": {APPROVE_LIKE}}} or {{\"reject\": {REJECT_LIKE}}} (\"release_id\" or \"repository\" narrow either to one release)"
    )
}

fn rollback_expected() -> String {
    format!(
        "ferry-rollback takes a CloudWatch Alarm State Change event, {{\"rollback\": {ROLLBACK_LIKE}}} (\"to\" is optional) or {{\"unfreeze\": {UNFREEZE_LIKE}}}"
    )
}

/// The kind of a JSON value, for messages: "an array", "a string", ...
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `value` as a JSON object, or a [`BadEvent`] saying that `what` must be one.
///
/// Checked before deserialising: serde's derive also takes a JSON array for a
/// struct, field by field in declaration order, so `{"unfreeze": ["shop", "prod"]}`
/// would otherwise unfreeze `shop/prod`.
fn require_object<'a>(
    value: &'a Value,
    what: &str,
    like: Option<&str>,
) -> Result<&'a Map<String, Value>, BadEvent> {
    value.as_object().ok_or_else(|| {
        let like = like.map(|l| format!(" like {l}")).unwrap_or_default();
        bad(format!(
            "{what} must be a JSON object{like}, got {}",
            kind(value)
        ))
    })
}

/// The payload as a JSON object, or a [`BadEvent`] saying what the function takes.
fn payload_object<'a>(
    payload: &'a Value,
    expected: &str,
) -> Result<&'a Map<String, Value>, BadEvent> {
    payload.as_object().ok_or_else(|| {
        bad(format!(
            "the payload must be a JSON object, got {}; {expected}",
            kind(payload)
        ))
    })
}

/// `value` as a `T`. A failure says where in `value` it is
/// (`detail.containers[0].exitCode`), under `prefix`: serde's own message names
/// a missing or unknown field, but not the field whose value has the wrong type.
fn parse<T: DeserializeOwned>(value: &Value, what: &str, prefix: &str) -> Result<T, BadEvent> {
    T::deserialize(value).map_err(|error| match locate::<T>(value) {
        Some((path, message)) => {
            let path = match (prefix, path.as_str()) {
                (p, "") => p.to_owned(),
                ("", p) => p.to_owned(),
                (p, q) if q.starts_with('[') => format!("{p}{q}"),
                (p, q) => format!("{p}.{q}"),
            };
            if path.is_empty() {
                bad(format!("{what}: {message}"))
            } else {
                bad(format!("{what}: {message} (at `{path}`)"))
            }
        }
        None => bad(format!("{what}: {error}")),
    })
}

/// Where deserialising `value` as a `T` fails: the path of the failing field and
/// serde's message. `value` is pretty-printed (one field per line) and parsed
/// again, and the line of the error is turned into a path.
fn locate<T: DeserializeOwned>(value: &Value) -> Option<(String, String)> {
    let text = serde_json::to_string_pretty(value).ok()?;
    let error = serde_json::from_str::<T>(&text).err()?;
    let message = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    let message = message
        .strip_suffix(&position)
        .unwrap_or(&message)
        .to_owned();
    Some((path_at(&text, error.line()), message))
}

/// The path (`detail.containers[0].exitCode`) of the value on line `line`
/// (1-based) of serde_json's pretty-printed `text`; a closing bracket stands for
/// the object or array it closes, so a missing field points at its object.
fn path_at(text: &str, line: usize) -> String {
    struct Frame {
        name: String,
        array: bool,
        next: usize,
    }
    fn render<'a>(names: impl Iterator<Item = &'a str>) -> String {
        let mut path = String::new();
        for name in names.filter(|n| !n.is_empty()) {
            if !path.is_empty() && !name.starts_with('[') {
                path.push('.');
            }
            path.push_str(name);
        }
        path
    }
    let mut stack: Vec<Frame> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.starts_with('}') || trimmed.starts_with(']') {
            if index + 1 == line {
                return render(stack.iter().map(|f| f.name.as_str()));
            }
            stack.pop();
            continue;
        }
        let (key, rest) = split_key(trimmed);
        let name = match (key, stack.last_mut()) {
            (Some(key), _) => key,
            (None, Some(frame)) if frame.array => {
                frame.next += 1;
                format!("[{}]", frame.next - 1)
            }
            (None, _) => String::new(),
        };
        if index + 1 == line {
            return render(
                stack
                    .iter()
                    .map(|f| f.name.as_str())
                    .chain(std::iter::once(name.as_str())),
            );
        }
        let rest = rest.trim_end_matches(',');
        if rest == "{" || rest == "[" {
            stack.push(Frame {
                name,
                array: rest == "[",
                next: 0,
            });
        }
    }
    render(stack.iter().map(|f| f.name.as_str()))
}

/// `"key": rest` → (Some(key), rest); anything else → (None, line).
fn split_key(line: &str) -> (Option<String>, &str) {
    if !line.starts_with('"') {
        return (None, line);
    }
    let mut escaped = false;
    for (i, c) in line.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => {
                let (quoted, after) = line.split_at(i + 1);
                return match (
                    after.strip_prefix(": "),
                    serde_json::from_str::<String>(quoted),
                ) {
                    (Some(rest), Ok(key)) => (Some(key), rest),
                    _ => (None, line),
                };
            }
            _ => {}
        }
    }
    (None, line)
}

/// Whether a payload is (meant as) an EventBridge event rather than a direct invoke.
fn is_event(payload: &Map<String, Value>) -> bool {
    ["detail-type", "source", "detail"]
        .iter()
        .any(|k| payload.contains_key(*k))
}

/// The one request of a direct invoke, `{"<name>": {...}}` with `name` one of
/// `requests` (name, example); its body must be an object.
fn request<'a>(
    payload: &'a Map<String, Value>,
    requests: &[(&str, &str)],
    expected: &str,
) -> Result<(&'a str, &'a Value), BadEvent> {
    let mut entries = payload.iter();
    let (Some((name, body)), None) = (entries.next(), entries.next()) else {
        let names: Vec<String> = payload.keys().map(|k| format!("`{k}`")).collect();
        return Err(bad(if names.is_empty() {
            format!("the payload is an empty object; {expected}")
        } else {
            format!(
                "a direct invoke carries exactly one request, got {}; {expected}",
                names.join(", ")
            )
        }));
    };
    let Some((_, like)) = requests.iter().find(|(n, _)| *n == name.as_str()) else {
        return Err(bad(format!("unknown request `{name}`; {expected}")));
    };
    require_object(body, &format!("`{name}`"), Some(like))?;
    Ok((name.as_str(), body))
}

/// A detail field that holds a structure (checked to be an object first, as
/// serde's derive would take an array for it).
#[derive(Debug, Clone, Copy)]
enum Nested {
    /// An object, when present and not null.
    Object(&'static str),
    /// An array of objects, when present.
    Objects(&'static str),
}

fn envelope<T: DeserializeOwned + serde::Serialize>(
    payload: Value,
    source: &str,
    detail_type: &str,
    nested: &[Nested],
) -> Result<EventBridgeEvent<T>, BadEvent> {
    let event = payload.as_object().ok_or_else(|| {
        bad(format!(
            "expected an EventBridge event (a JSON object) with source `{source}` and detail-type `{detail_type}`, got {}",
            kind(&payload)
        ))
    })?;
    let seen_type = event
        .get("detail-type")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let seen_source = event
        .get("source")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if seen_source.as_deref() != Some(source) || seen_type.as_deref() != Some(detail_type) {
        return Err(bad(format!(
            "expected an EventBridge event with source `{source}` and detail-type `{detail_type}`, got source {seen_source:?} and detail-type {seen_type:?}"
        )));
    }
    if let Some(detail) = event.get("detail") {
        let detail = require_object(
            detail,
            &format!("`detail` of the `{detail_type}` event"),
            None,
        )?;
        for field in nested {
            match *field {
                Nested::Object(name) => {
                    if let Some(value) = detail.get(name).filter(|v| !v.is_null()) {
                        require_object(
                            value,
                            &format!("`detail.{name}` of the `{detail_type}` event"),
                            None,
                        )?;
                    }
                }
                Nested::Objects(name) => {
                    if let Some(Value::Array(items)) = detail.get(name) {
                        for (i, item) in items.iter().enumerate() {
                            require_object(
                                item,
                                &format!("`detail.{name}[{i}]` of the `{detail_type}` event"),
                                None,
                            )?;
                        }
                    }
                }
            }
        }
    }
    parse(&payload, &format!("malformed `{detail_type}` event"), "")
}

/// `ECR Image Action` detail.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct EcrImageAction {
    pub action_type: String,
    pub result: String,
    pub repository_name: String,
    pub image_digest: String,
    #[serde(default)]
    pub image_tag: Option<String>,
}

/// `Secret Label Updated` detail: Secrets Manager's native event when a staging
/// label moves to a new version of a secret ("Secret Label Updated event",
/// Secrets Manager User Guide).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretLabelUpdated {
    /// The secret's friendly name.
    pub name: String,
    /// The staging label attached to the new version.
    pub label_updated: String,
    /// The version the label moved to.
    pub version_id: String,
}

/// The staging label that marks a secret's current value.
const CURRENT_LABEL: &str = "AWSCURRENT";

/// A `Secret Label Updated` event: for `AWSCURRENT`, the secret has a new
/// current value; another label (a custom one: Secrets Manager sends none for
/// `AWSPENDING` or `AWSPREVIOUS`) is skipped.
fn secret_input(payload: Value) -> Result<DeployInput, BadEvent> {
    let event: EventBridgeEvent<SecretLabelUpdated> =
        envelope(payload, "aws.secretsmanager", "Secret Label Updated", &[])?;
    let d = event.detail;
    for (field, value) in [("name", &d.name), ("versionId", &d.version_id)] {
        if value.is_empty() {
            return Err(bad(format!(
                "Secret Label Updated event has an empty `detail.{field}`"
            )));
        }
    }
    if d.label_updated != CURRENT_LABEL {
        return Ok(DeployInput::Skip(format!(
            "label {:?} of secret {} moved to version {}; only {CURRENT_LABEL} (a new current value) restarts services",
            d.label_updated, d.name, d.version_id
        )));
    }
    Ok(DeployInput::SecretChanged(SecretChange {
        secret: d.name,
        version: d.version_id,
    }))
}

/// What the deploy function was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployInput {
    Push(Push),
    /// An event ferry deliberately does nothing with (logged).
    Skip(String),
    Deploy(DeployRequest),
    /// An operator's retry of a digest whose release did not succeed.
    Retry(RetryRequest),
    /// A secret has a new current value: restart the lanes that read it.
    SecretChanged(SecretChange),
    /// An operator promotes one environment's known-good digest to another.
    Promote(PromoteRequest),
    /// An operator approves the release(s) awaiting approval.
    Approve(ApprovalRequest),
    /// An operator rejects the release(s) awaiting approval.
    Reject(RejectRequest),
}

pub fn deploy_input(payload: Value) -> Result<DeployInput, BadEvent> {
    let expected = deploy_expected();
    let object = payload_object(&payload, &expected)?;
    if object.get("source").and_then(Value::as_str) == Some("aws.secretsmanager") {
        return secret_input(payload);
    }
    if is_event(object) {
        let event: EventBridgeEvent<EcrImageAction> =
            envelope(payload, "aws.ecr", "ECR Image Action", &[])?;
        let d = &event.detail;
        if d.action_type != "PUSH" || d.result != "SUCCESS" {
            return Ok(DeployInput::Skip(format!(
                "ECR {} with result {} is not a successful push",
                d.action_type, d.result
            )));
        }
        let Some(tag) = d.image_tag.clone().filter(|t| !t.is_empty()) else {
            return Ok(DeployInput::Skip(format!(
                "push of {}@{} carries no tag",
                d.repository_name, d.image_digest
            )));
        };
        let registry_id = event
            .account
            .clone()
            .ok_or_else(|| bad("ECR Image Action event has no `account`"))?;
        let region = event
            .region
            .clone()
            .ok_or_else(|| bad("ECR Image Action event has no `region`"))?;
        let time = event
            .time
            .as_ref()
            .ok_or_else(|| bad("ECR Image Action event has no `time`"))?;
        return Ok(DeployInput::Push(Push {
            registry_id,
            region,
            repository: d.repository_name.clone(),
            tag,
            digest: d.image_digest.clone(),
            pushed_at: PushTime::from_epoch_millis(time.timestamp_millis()),
        }));
    }
    let requests = [
        ("deploy", DEPLOY_LIKE),
        ("retry", RETRY_LIKE),
        ("promote", PROMOTE_LIKE),
        ("approve", APPROVE_LIKE),
        ("reject", REJECT_LIKE),
    ];
    match request(object, &requests, &expected)? {
        ("promote", body) => Ok(DeployInput::Promote(parse(
            body,
            "malformed `promote` request",
            "promote",
        )?)),
        ("approve", body) => Ok(DeployInput::Approve(parse(
            body,
            "malformed `approve` request",
            "approve",
        )?)),
        ("reject", body) => Ok(DeployInput::Reject(parse(
            body,
            "malformed `reject` request",
            "reject",
        )?)),
        ("retry", body) => Ok(DeployInput::Retry(parse(
            body,
            "malformed `retry` request",
            "retry",
        )?)),
        (_, body) => Ok(DeployInput::Deploy(parse(
            body,
            "malformed `deploy` request",
            "deploy",
        )?)),
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EcsContainer {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `ECS Task State Change` detail (the fields ferry reads).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EcsTaskStateChange {
    pub task_arn: String,
    #[serde(default)]
    pub cluster_arn: Option<String>,
    pub last_status: String,
    #[serde(default)]
    pub started_by: Option<String>,
    #[serde(default)]
    pub stop_code: Option<String>,
    #[serde(default)]
    pub stopped_reason: Option<String>,
    #[serde(default)]
    pub containers: Vec<EcsContainer>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub stopped_at: Option<DateTime<Utc>>,
}

pub fn task_stopped(payload: Value) -> Result<Option<TaskStopped>, BadEvent> {
    let event: EventBridgeEvent<EcsTaskStateChange> = envelope(
        payload,
        "aws.ecs",
        "ECS Task State Change",
        &[Nested::Objects("containers")],
    )?;
    let d = event.detail;
    if d.last_status != "STOPPED" {
        return Ok(None);
    }
    Ok(Some(TaskStopped {
        task_arn: d.task_arn.clone(),
        started_by: d.started_by.clone(),
        task: stopped_task(d),
    }))
}

/// What the gate judges of a stopped task: its stop code and reason, each
/// container's exit code and reason, when it started and stopped (epoch
/// seconds). The one reading of a stopped task, for the STOPPED event and for
/// DescribeTasks alike (`crate::ecs::task_state` gives a described task this shape).
pub fn stopped_task(d: EcsTaskStateChange) -> StoppedTask {
    let epoch = |t: Option<DateTime<Utc>>| t.and_then(|t| u64::try_from(t.timestamp()).ok());
    StoppedTask {
        stop_code: d.stop_code,
        stopped_reason: d.stopped_reason,
        containers: d
            .containers
            .into_iter()
            .map(|c| StoppedContainer {
                name: c.name.unwrap_or_default(),
                exit_code: c.exit_code,
                reason: c.reason,
            })
            .collect(),
        started_at: epoch(d.started_at),
        stopped_at: epoch(d.stopped_at),
    }
}

/// `ECS Deployment State Change` detail.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EcsDeploymentStateChange {
    pub event_name: String,
    pub deployment_id: String,
    #[serde(default)]
    pub reason: Option<String>,
}

pub fn deployment_change(payload: Value) -> Result<Option<DeploymentChange>, BadEvent> {
    let event: EventBridgeEvent<EcsDeploymentStateChange> =
        envelope(payload, "aws.ecs", "ECS Deployment State Change", &[])?;
    let outcome = match event.detail.event_name.as_str() {
        "SERVICE_DEPLOYMENT_COMPLETED" => DeploymentOutcome::Completed,
        "SERVICE_DEPLOYMENT_FAILED" => DeploymentOutcome::Failed,
        _ => return Ok(None),
    };
    let service_arn = event
        .resources
        .as_ref()
        .and_then(|r| r.first())
        .ok_or_else(|| {
            bad("ECS Deployment State Change event has no service ARN in `resources`")
        })?;
    // arn:aws:ecs:region:account:service/<cluster>/<service>
    let resource = service_arn.splitn(6, ':').nth(5).unwrap_or_default();
    let mut parts = resource.split('/');
    let (Some("service"), Some(cluster), Some(service)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(format!(
            "`resources[0]` is not a service ARN with a cluster (arn:aws:ecs:<region>:<account>:service/<cluster>/<service>): {service_arn}"
        )));
    };
    Ok(Some(DeploymentChange {
        cluster: cluster.to_owned(),
        service: service.to_owned(),
        deployment_id: event.detail.deployment_id,
        outcome,
        reason: event.detail.reason,
    }))
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmState {
    pub value: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `CloudWatch Alarm State Change` detail (the fields ferry reads).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmStateChange {
    pub alarm_name: String,
    pub state: AlarmState,
    #[serde(default)]
    pub previous_state: Option<AlarmState>,
}

/// What the watch function was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchInput {
    /// A deployment ended (`None`: the event is not an ending).
    Deployment(Option<DeploymentChange>),
    /// The bake timer of a release fired (EventBridge Scheduler's input).
    BakeEnded(ReleaseId),
    /// An operator ends a bake early.
    Bless(BlessRequest),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BakeEnded {
    release_id: String,
}

pub fn watch_input(payload: Value) -> Result<WatchInput, BadEvent> {
    let expected = watch_expected();
    let object = payload_object(&payload, &expected)?;
    if is_event(object) {
        return deployment_change(payload).map(WatchInput::Deployment);
    }
    let requests = [("bake_ended", BAKE_ENDED_LIKE), ("bless", BLESS_LIKE)];
    match request(object, &requests, &expected)? {
        ("bake_ended", body) => {
            let ended: BakeEnded = parse(body, "malformed `bake_ended` input", "bake_ended")?;
            ReleaseId::parse(&ended.release_id)
                .map(WatchInput::BakeEnded)
                .map_err(|e| bad(format!("`bake_ended.release_id`: {e}")))
        }
        (_, body) => Ok(WatchInput::Bless(parse(
            body,
            "malformed `bless` request",
            "bless",
        )?)),
    }
}

/// What the rollback function was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackInput {
    Alarm(AlarmChange),
    Rollback(RollbackRequest),
    Unfreeze(UnfreezeRequest),
}

pub fn rollback_input(payload: Value) -> Result<RollbackInput, BadEvent> {
    let expected = rollback_expected();
    let object = payload_object(&payload, &expected)?;
    if is_event(object) {
        let event: EventBridgeEvent<AlarmStateChange> = envelope(
            payload,
            "aws.cloudwatch",
            "CloudWatch Alarm State Change",
            &[Nested::Object("state"), Nested::Object("previousState")],
        )?;
        let d = event.detail;
        let state_of = |value: &str, field: &str| {
            ferry_core::engine::AlarmState::parse(value).ok_or_else(|| {
                bad(format!(
                    "CloudWatch Alarm State Change `{field}` is `{value}`; expected OK, ALARM or INSUFFICIENT_DATA"
                ))
            })
        };
        let state = state_of(&d.state.value, "detail.state.value")?;
        let previous_state = match &d.previous_state {
            Some(p) => Some(state_of(&p.value, "detail.previousState.value")?),
            None => None,
        };
        return Ok(RollbackInput::Alarm(AlarmChange {
            alarm: d.alarm_name,
            state,
            previous_state,
            reason: d.state.reason.unwrap_or_default(),
        }));
    }
    let requests = [("rollback", ROLLBACK_LIKE), ("unfreeze", UNFREEZE_LIKE)];
    match request(object, &requests, &expected)? {
        ("rollback", body) => Ok(RollbackInput::Rollback(parse(
            body,
            "malformed `rollback` request",
            "rollback",
        )?)),
        (_, body) => Ok(RollbackInput::Unfreeze(parse(
            body,
            "malformed `unfreeze` request",
            "unfreeze",
        )?)),
    }
}

/// What the reconcile function was asked to do: the lanes to reconcile.
///
/// Its schedule delivers EventBridge's `Scheduled Event` (source `aws.events`,
/// detail-type `Scheduled Event`, the rule's ARN in `resources`, `detail` `{}`:
/// EventBridge User Guide, "Creating a rule that runs on a schedule" and the
/// event structure reference), which reconciles every lane; a direct invoke
/// `{"reconcile": {...}}` names the lanes.
pub fn reconcile_input(payload: Value) -> Result<ReconcileRequest, BadEvent> {
    let expected = reconcile_expected();
    let object = payload_object(&payload, &expected)?;
    if is_event(object) {
        let _: EventBridgeEvent<Map<String, Value>> =
            envelope(payload, "aws.events", "Scheduled Event", &[])?;
        return Ok(ReconcileRequest::default());
    }
    let (_, body) = request(object, &[("reconcile", RECONCILE_LIKE)], &expected)?;
    parse(body, "malformed `reconcile` request", "reconcile")
}

#[cfg(test)]
mod reconcile_tests {
    use super::*;
    use serde_json::json;

    fn scheduled_event() -> Value {
        json!({
            "version": "0",
            "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": "2026-11-23T10:05:00Z",
            "region": "eu-west-1",
            "resources": ["arn:aws:events:eu-west-1:123456789012:rule/ferry-ReconcileFunctionSchedule-1A2B3C"],
            "detail": {}
        })
    }

    #[track_caller]
    fn refused(payload: Value, parts: &[&str]) {
        match reconcile_input(payload) {
            Ok(request) => panic!("expected bad input mentioning {parts:?}, got {request:?}"),
            Err(BadEvent(message)) => {
                for part in parts {
                    assert!(message.contains(part), "{part:?} not in: {message}");
                }
            }
        }
    }

    #[test]
    fn the_schedules_event_reconciles_every_lane() {
        assert_eq!(
            reconcile_input(scheduled_event()),
            Ok(ReconcileRequest::default())
        );
    }

    #[test]
    fn a_reconcile_request_names_the_lane() {
        let request = reconcile_input(
            json!({"reconcile": {"app": "shop", "environment": "prod", "repository": "shop"}}),
        );
        assert_eq!(
            request,
            Ok(ReconcileRequest {
                app: Some("shop".into()),
                environment: Some("prod".into()),
                repository: Some("shop".into()),
            })
        );
    }

    #[test]
    fn a_reconcile_request_without_fields_reconciles_every_lane() {
        assert_eq!(
            reconcile_input(json!({"reconcile": {}})),
            Ok(ReconcileRequest::default())
        );
        assert_eq!(
            reconcile_input(json!({"reconcile": {"app": "shop"}})),
            Ok(ReconcileRequest {
                app: Some("shop".into()),
                ..ReconcileRequest::default()
            })
        );
    }

    #[test]
    fn a_reconcile_request_with_an_unknown_field_is_bad_input_naming_it() {
        refused(
            json!({"reconcile": {"app": "shop", "env": "prod"}}),
            &["malformed `reconcile` request", "`env`"],
        );
    }

    #[test]
    fn a_reconcile_request_whose_app_is_a_number_is_bad_input_naming_the_field() {
        refused(json!({"reconcile": {"app": 7}}), &["reconcile.app"]);
    }

    #[test]
    fn a_reconcile_request_given_as_an_array_or_a_string_is_bad_input() {
        refused(
            json!({"reconcile": ["shop", "prod"]}),
            &["`reconcile` must be a JSON object", "an array"],
        );
        refused(json!({"reconcile": "shop"}), &["a string"]);
    }

    #[test]
    fn another_request_or_payload_is_bad_input_saying_what_ferry_reconcile_takes() {
        refused(
            json!({"deploy": {"app": "shop", "environment": "prod", "tag": "1.0.0"}}),
            &["unknown request `deploy`", "ferry-reconcile takes"],
        );
        refused(
            json!([]),
            &["the payload must be a JSON object", "an array"],
        );
        refused(json!({}), &["empty object"]);
        refused(
            json!({"reconcile": {}, "bless": {}}),
            &["exactly one request"],
        );
    }

    #[test]
    fn an_event_that_is_not_the_schedules_is_bad_input_naming_source_and_detail_type() {
        let mut event = scheduled_event();
        event["source"] = json!("aws.ecr");
        event["detail-type"] = json!("ECR Image Action");
        refused(event, &["`aws.events`", "`Scheduled Event`", "aws.ecr"]);
    }

    #[test]
    fn a_scheduled_event_whose_detail_is_not_an_object_is_bad_input() {
        let mut event = scheduled_event();
        event["detail"] = json!([]);
        refused(event, &["`detail`", "must be a JSON object"]);
    }
}

#[cfg(test)]
mod watch_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_bake_timers_input_names_the_release() {
        let input =
            watch_input(json!({"bake_ended": {"release_id": "shop/prod/3f2a9c1b7e40d5a1"}}));
        let expected = ReleaseId::parse("shop/prod/3f2a9c1b7e40d5a1").expect("an id");
        assert_eq!(input, Ok(WatchInput::BakeEnded(expected)));
    }

    #[test]
    fn a_bake_timer_naming_no_release_is_bad_input() {
        let input = watch_input(json!({"bake_ended": {"release_id": "shop"}}));
        assert!(
            matches!(input, Err(BadEvent(ref m)) if m.contains("bake_ended.release_id")),
            "{input:?}"
        );
        let input = watch_input(json!({"bake_ended": ["shop/prod/3f2a9c1b7e40d5a1"]}));
        assert!(input.is_err(), "{input:?}");
    }

    #[test]
    fn an_operators_bless_names_the_environment() {
        let input = watch_input(json!({"bless": {"app": "shop", "environment": "prod"}}));
        assert_eq!(
            input,
            Ok(WatchInput::Bless(BlessRequest {
                app: "shop".into(),
                environment: "prod".into(),
                repository: None
            }))
        );
        let unknown = watch_input(json!({"promote": {}}));
        assert!(
            matches!(unknown, Err(BadEvent(ref m)) if m.contains("bake_ended")),
            "{unknown:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::engine::AlarmState as State;
    use serde_json::json;

    const DIGEST: &str = "sha256:3f2a9c1b7e40d5a13f2a9c1b7e40d5a13f2a9c1b7e40d5a13f2a9c1b7e40d5a1";
    const TASK: &str =
        "arn:aws:ecs:eu-west-1:123456789012:task/shop-prod/a1b2c3d4e5f60718293a4b5c6d7e8f90";

    fn event(source: &str, detail_type: &str, detail: Value) -> Value {
        json!({
            "version": "0",
            "id": "6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e01",
            "detail-type": detail_type,
            "source": source,
            "account": "123456789012",
            "time": "2026-11-23T10:00:00Z",
            "region": "eu-west-1",
            "resources": [],
            "detail": detail,
        })
    }

    fn push_event() -> Value {
        event(
            "aws.ecr",
            "ECR Image Action",
            json!({
                "result": "SUCCESS",
                "repository-name": "shop",
                "image-digest": DIGEST,
                "action-type": "PUSH",
                "image-tag": "1.0.0",
            }),
        )
    }

    fn task_event() -> Value {
        event(
            "aws.ecs",
            "ECS Task State Change",
            json!({
                "taskArn": TASK,
                "clusterArn": "arn:aws:ecs:eu-west-1:123456789012:cluster/shop-prod",
                "lastStatus": "STOPPED",
                "startedBy": "ferry/shop/prod/3f2a9c1b7e40d5a1",
                "stopCode": "EssentialContainerExited",
                "stoppedReason": "Essential container in task exited",
                "containers": [
                    { "name": "migrate", "exitCode": 1, "lastStatus": "STOPPED" },
                    { "name": "sidecar", "reason": "OutOfMemoryError" },
                ],
                "startedAt": "2026-11-23T10:00:33.120Z",
                "stoppedAt": "2026-11-23T10:02:31.406Z",
            }),
        )
    }

    fn deployment_event(event_name: &str) -> Value {
        let mut e = event(
            "aws.ecs",
            "ECS Deployment State Change",
            json!({
                "eventType": "INFO",
                "eventName": event_name,
                "deploymentId": "ecs-svc/0123456789012345678",
                "reason": "ECS deployment ecs-svc/0123456789012345678 completed.",
            }),
        );
        e["resources"] = json!(["arn:aws:ecs:eu-west-1:123456789012:service/shop-prod/api"]);
        e
    }

    fn alarm_event(value: &str, previous: &str) -> Value {
        event(
            "aws.cloudwatch",
            "CloudWatch Alarm State Change",
            json!({
                "alarmName": "shop-prod-5xx",
                "state": { "value": value, "reason": "Threshold Crossed" },
                "previousState": { "value": previous, "reason": "back to normal" },
            }),
        )
    }

    fn epoch_millis(rfc3339: &str) -> i64 {
        rfc3339
            .parse::<DateTime<Utc>>()
            .map(|t| t.timestamp_millis())
            .unwrap_or(i64::MIN)
    }

    fn epoch_secs(rfc3339: &str) -> u64 {
        rfc3339
            .parse::<DateTime<Utc>>()
            .ok()
            .and_then(|t| u64::try_from(t.timestamp()).ok())
            .unwrap_or(u64::MAX)
    }

    /// The error's message, which must mention every one of `parts`.
    #[track_caller]
    fn refused<T: std::fmt::Debug>(result: Result<T, BadEvent>, parts: &[&str]) -> String {
        let message = match result {
            Ok(value) => panic!("expected bad input mentioning {parts:?}, got {value:?}"),
            Err(BadEvent(message)) => message,
        };
        for part in parts {
            assert!(
                message.contains(part),
                "expected the message to mention {part:?}: {message}"
            );
        }
        message
    }

    // ---------------------------------------------------------- deploy_input

    #[test]
    fn a_tagged_ecr_push_becomes_a_push_with_every_field_from_the_event() {
        assert_eq!(
            deploy_input(push_event()),
            Ok(DeployInput::Push(Push {
                registry_id: "123456789012".to_owned(),
                region: "eu-west-1".to_owned(),
                repository: "shop".to_owned(),
                tag: "1.0.0".to_owned(),
                digest: DIGEST.to_owned(),
                pushed_at: PushTime::from_epoch_millis(epoch_millis("2026-11-23T10:00:00Z")),
            }))
        );
    }

    #[test]
    fn an_ecr_action_that_is_not_a_push_is_skipped() {
        let mut e = push_event();
        e["detail"]["action-type"] = json!("DELETE");
        let Ok(DeployInput::Skip(reason)) = deploy_input(e) else {
            panic!("a DELETE is skipped");
        };
        assert!(reason.contains("DELETE"), "{reason}");
    }

    #[test]
    fn a_push_that_did_not_succeed_is_skipped() {
        let mut e = push_event();
        e["detail"]["result"] = json!("FAILURE");
        let Ok(DeployInput::Skip(reason)) = deploy_input(e) else {
            panic!("a failed push is skipped");
        };
        assert!(reason.contains("FAILURE"), "{reason}");
    }

    #[test]
    fn a_push_without_a_tag_or_with_an_empty_one_is_skipped() {
        let mut untagged = push_event();
        untagged["detail"]
            .as_object_mut()
            .map(|d| d.remove("image-tag"));
        let mut empty = push_event();
        empty["detail"]["image-tag"] = json!("");
        for e in [untagged, empty] {
            let Ok(DeployInput::Skip(reason)) = deploy_input(e) else {
                panic!("an untagged push is skipped");
            };
            assert!(
                reason.contains("no tag") && reason.contains(DIGEST),
                "{reason}"
            );
        }
    }

    #[test]
    fn an_ecr_push_without_account_region_or_time_is_bad_input_naming_the_field() {
        for field in ["account", "region", "time"] {
            let mut e = push_event();
            e.as_object_mut().map(|o| o.remove(field));
            refused(deploy_input(e), &[&format!("`{field}`")]);
        }
    }

    #[test]
    fn an_ecr_push_missing_a_detail_field_is_bad_input_naming_it() {
        for field in ["action-type", "result", "repository-name", "image-digest"] {
            let mut e = push_event();
            e["detail"].as_object_mut().map(|d| d.remove(field));
            refused(deploy_input(e), &[field, "ECR Image Action"]);
        }
    }

    #[test]
    fn an_ecr_push_whose_tag_is_a_number_is_bad_input_naming_the_field() {
        let mut e = push_event();
        e["detail"]["image-tag"] = json!(100);
        refused(
            deploy_input(e),
            &["`detail.image-tag`", "expected a string"],
        );
    }

    #[test]
    fn an_ecr_push_with_an_unreadable_time_is_bad_input_naming_the_field() {
        let mut e = push_event();
        e["time"] = json!("yesterday");
        refused(deploy_input(e), &["`time`"]);
    }

    #[test]
    fn an_ecr_push_whose_detail_is_an_array_is_bad_input() {
        let mut e = push_event();
        e["detail"] = json!(["PUSH", "SUCCESS", "shop", DIGEST, "1.0.0"]);
        refused(
            deploy_input(e),
            &["`detail`", "must be a JSON object", "got an array"],
        );
    }

    #[test]
    fn an_ecr_push_whose_detail_is_null_is_bad_input() {
        let mut e = push_event();
        e["detail"] = Value::Null;
        refused(deploy_input(e), &["`detail`", "got null"]);
    }

    #[test]
    fn an_event_from_another_source_or_of_another_detail_type_is_bad_input_for_ferry_deploy() {
        let mut scan = push_event();
        scan["detail-type"] = json!("ECR Image Scan");
        refused(deploy_input(scan), &["ECR Image Action", "ECR Image Scan"]);
        let mut elsewhere = push_event();
        elsewhere["source"] = json!("my.ecr");
        refused(deploy_input(elsewhere), &["aws.ecr", "my.ecr"]);
        let mut no_type = push_event();
        no_type.as_object_mut().map(|o| o.remove("detail-type"));
        refused(deploy_input(no_type), &["detail-type `ECR Image Action`"]);
    }

    #[test]
    fn a_deploy_request_by_tag_becomes_a_deploy_request() {
        let payload = json!({ "deploy": { "app": "shop", "environment": "prod", "tag": "1.1.0" } });
        assert_eq!(
            deploy_input(payload),
            Ok(DeployInput::Deploy(DeployRequest {
                app: "shop".to_owned(),
                environment: "prod".to_owned(),
                tag: Some("1.1.0".to_owned()),
                digest: None,
                repository: None,
            }))
        );
    }

    #[test]
    fn a_deploy_request_by_digest_for_one_repository_becomes_a_deploy_request() {
        let payload = json!({ "deploy": {
            "app": "shop", "environment": "prod", "digest": DIGEST, "repository": "shop-worker",
        } });
        assert_eq!(
            deploy_input(payload),
            Ok(DeployInput::Deploy(DeployRequest {
                app: "shop".to_owned(),
                environment: "prod".to_owned(),
                tag: None,
                digest: Some(DIGEST.to_owned()),
                repository: Some("shop-worker".to_owned()),
            }))
        );
    }

    #[test]
    fn a_retry_request_naming_only_the_environment_retries_the_last_failed_release() {
        let payload = json!({ "retry": { "app": "shop", "environment": "prod" } });
        assert_eq!(
            deploy_input(payload),
            Ok(DeployInput::Retry(RetryRequest {
                app: "shop".to_owned(),
                environment: "prod".to_owned(),
                repository: None,
                tag: None,
                digest: None,
                force: false,
            }))
        );
    }

    #[test]
    fn a_forced_retry_of_a_digest_in_one_repository_becomes_a_retry_request() {
        let payload = json!({ "retry": {
            "app": "shop", "environment": "prod", "repository": "shop-worker",
            "digest": DIGEST, "force": true,
        } });
        assert_eq!(
            deploy_input(payload),
            Ok(DeployInput::Retry(RetryRequest {
                app: "shop".to_owned(),
                environment: "prod".to_owned(),
                repository: Some("shop-worker".to_owned()),
                tag: None,
                digest: Some(DIGEST.to_owned()),
                force: true,
            }))
        );
    }

    #[test]
    fn a_retry_request_whose_force_is_not_a_boolean_is_bad_input_naming_the_field() {
        let payload = json!({ "retry": { "app": "shop", "environment": "prod", "force": "yes" } });
        refused(
            deploy_input(payload),
            &[
                "malformed `retry` request",
                "`retry.force`",
                "expected a boolean",
            ],
        );
    }

    #[test]
    fn a_retry_request_with_an_unknown_field_or_missing_its_app_is_bad_input_naming_it() {
        let unknown = json!({ "retry": { "app": "shop", "environment": "prod", "generation": 2 } });
        refused(
            deploy_input(unknown),
            &["`retry`", "unknown field `generation`"],
        );
        let no_app = json!({ "retry": { "environment": "prod" } });
        refused(deploy_input(no_app), &["`retry`", "missing field `app`"]);
        let array = json!({ "retry": ["shop", "prod"] });
        let message = refused(
            deploy_input(array),
            &["`retry` must be a JSON object like", "got an array"],
        );
        assert!(message.contains(RETRY_LIKE), "{message}");
    }

    #[test]
    fn a_deploy_request_given_as_an_array_is_bad_input() {
        let payload = json!({ "deploy": ["shop", "prod", "1.1.0"] });
        let message = refused(
            deploy_input(payload),
            &["`deploy` must be a JSON object like", "got an array"],
        );
        assert!(message.contains(DEPLOY_LIKE), "{message}");
    }

    #[test]
    fn a_deploy_request_given_as_a_string_or_null_is_bad_input() {
        refused(
            deploy_input(json!({ "deploy": "shop/prod/1.1.0" })),
            &["`deploy` must be a JSON object", "got a string"],
        );
        refused(
            deploy_input(json!({ "deploy": null })),
            &["`deploy` must be a JSON object", "got null"],
        );
    }

    #[test]
    fn a_deploy_payload_given_as_an_array_is_bad_input() {
        let payload = json!([{ "app": "shop", "environment": "prod", "tag": "1.1.0" }]);
        refused(
            deploy_input(payload),
            &["payload must be a JSON object", "got an array"],
        );
        refused(deploy_input(json!("deploy")), &["got a string"]);
        refused(deploy_input(json!(7)), &["got a number"]);
        refused(deploy_input(json!(true)), &["got a boolean"]);
        refused(deploy_input(Value::Null), &["got null"]);
    }

    #[test]
    fn a_deploy_request_missing_its_environment_is_bad_input_naming_it() {
        let payload = json!({ "deploy": { "app": "shop", "tag": "1.1.0" } });
        refused(deploy_input(payload), &["`deploy`", "environment"]);
    }

    #[test]
    fn a_deploy_request_with_an_unknown_field_is_bad_input_naming_it() {
        let payload = json!({ "deploy": { "app": "shop", "environment": "prod", "tag": "1.1.0", "force": true } });
        refused(deploy_input(payload), &["unknown field `force`"]);
    }

    #[test]
    fn a_deploy_request_whose_tag_is_a_number_is_bad_input_naming_the_field() {
        let payload = json!({ "deploy": { "app": "shop", "environment": "prod", "tag": 110 } });
        refused(
            deploy_input(payload),
            &["`deploy.tag`", "expected a string"],
        );
    }

    #[test]
    fn an_unknown_request_to_ferry_deploy_is_bad_input_naming_it() {
        let payload = json!({ "ship": { "app": "shop", "environment": "prod" } });
        refused(
            deploy_input(payload),
            &[
                "unknown request `ship`",
                "\"deploy\"",
                "\"promote\"",
                "\"approve\"",
            ],
        );
    }

    #[test]
    fn a_promote_request_becomes_a_promotion_of_one_app_between_two_environments() {
        let payload = json!({ "promote": { "app": "shop", "from": "staging", "to": "prod" } });
        assert_eq!(
            deploy_input(payload),
            Ok(DeployInput::Promote(PromoteRequest {
                app: "shop".into(),
                from: "staging".into(),
                to: "prod".into(),
            }))
        );
    }

    #[test]
    fn a_promote_request_missing_its_target_or_naming_an_environment_is_bad_input_naming_the_field()
    {
        let no_to = json!({ "promote": { "app": "shop", "from": "staging" } });
        refused(
            deploy_input(no_to),
            &["malformed `promote` request", "missing field `to`"],
        );
        let env = json!({ "promote": { "app": "shop", "from": "staging", "to": "prod", "environment": "prod" } });
        refused(
            deploy_input(env),
            &["`promote`", "unknown field `environment`"],
        );
        let number = json!({ "promote": { "app": "shop", "from": 1, "to": "prod" } });
        refused(
            deploy_input(number),
            &["`promote.from`", "expected a string"],
        );
    }

    #[test]
    fn an_approve_request_may_pin_a_release_or_a_repository() {
        let payload = json!({ "approve": { "app": "shop", "environment": "prod" } });
        assert_eq!(
            deploy_input(payload),
            Ok(DeployInput::Approve(ApprovalRequest {
                app: "shop".into(),
                environment: "prod".into(),
                repository: None,
                release_id: None,
            }))
        );
        let pinned = json!({ "approve": {
            "app": "blog", "environment": "prod", "repository": "blog-web",
            "release_id": "blog/prod/3f2a9c1b7e40d5a1"
        } });
        assert_eq!(
            deploy_input(pinned),
            Ok(DeployInput::Approve(ApprovalRequest {
                app: "blog".into(),
                environment: "prod".into(),
                repository: Some("blog-web".into()),
                release_id: Some("blog/prod/3f2a9c1b7e40d5a1".into()),
            }))
        );
    }

    #[test]
    fn a_reject_request_carries_its_reason_and_a_bad_one_is_bad_input_naming_the_field() {
        let payload = json!({ "reject": { "app": "shop", "environment": "prod", "reason": "change freeze" } });
        assert_eq!(
            deploy_input(payload),
            Ok(DeployInput::Reject(RejectRequest {
                app: "shop".into(),
                environment: "prod".into(),
                repository: None,
                release_id: None,
                reason: Some("change freeze".into()),
            }))
        );
        let number = json!({ "reject": { "app": "shop", "environment": "prod", "reason": 3 } });
        refused(
            deploy_input(number),
            &[
                "malformed `reject` request",
                "`reject.reason`",
                "expected a string",
            ],
        );
        let no_env = json!({ "approve": { "app": "shop" } });
        refused(
            deploy_input(no_env),
            &["malformed `approve` request", "missing field `environment`"],
        );
        let array = json!({ "approve": ["shop", "prod"] });
        refused(
            deploy_input(array),
            &["`approve` must be a JSON object like", "got an array"],
        );
    }

    #[test]
    fn a_deploy_payload_with_a_second_request_or_none_is_bad_input() {
        let payload = json!({
            "deploy": { "app": "shop", "environment": "prod", "tag": "1.1.0" },
            "rollback": { "app": "shop", "environment": "prod", "reason": "no" },
        });
        refused(
            deploy_input(payload),
            &["exactly one request", "`deploy`", "`rollback`"],
        );
        refused(deploy_input(json!({})), &["empty object", "\"deploy\""]);
    }

    // ----------------------------------------------------- secret changes

    const SECRET_VERSION: &str = "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111";

    fn secret_event(label: &str) -> Value {
        let mut e = event(
            "aws.secretsmanager",
            "Secret Label Updated",
            json!({ "name": "shop/prod/db", "labelUpdated": label, "versionId": SECRET_VERSION }),
        );
        e["resources"] =
            json!(["arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop/prod/db-AbC123"]);
        e
    }

    #[test]
    fn a_secrets_current_label_moving_becomes_a_change_of_that_secret_to_that_version() {
        assert_eq!(
            deploy_input(secret_event("AWSCURRENT")),
            Ok(DeployInput::SecretChanged(SecretChange {
                secret: "shop/prod/db".to_owned(),
                version: SECRET_VERSION.to_owned(),
            }))
        );
    }

    #[test]
    fn another_label_moving_is_skipped_naming_the_label_and_the_secret() {
        for label in ["blue", "AWSPENDING", "awscurrent"] {
            let Ok(DeployInput::Skip(reason)) = deploy_input(secret_event(label)) else {
                panic!("label {label} is skipped");
            };
            assert!(
                reason.contains(label) && reason.contains("shop/prod/db"),
                "{reason}"
            );
        }
    }

    #[test]
    fn a_secret_event_missing_a_detail_field_is_bad_input_naming_it() {
        for field in ["name", "labelUpdated", "versionId"] {
            let mut e = secret_event("AWSCURRENT");
            e["detail"].as_object_mut().map(|d| d.remove(field));
            refused(deploy_input(e), &[field, "Secret Label Updated"]);
        }
    }

    #[test]
    fn a_secret_event_whose_field_is_not_a_string_is_bad_input_naming_the_field() {
        for (field, value) in [
            ("name", json!(["shop/prod/db"])),
            ("labelUpdated", json!(null)),
            ("versionId", json!(7)),
        ] {
            let mut e = secret_event("AWSCURRENT");
            e["detail"][field] = value;
            refused(deploy_input(e), &[&format!("`detail.{field}`")]);
        }
    }

    #[test]
    fn a_secret_event_with_an_empty_name_or_version_is_bad_input_naming_the_field() {
        for field in ["name", "versionId"] {
            let mut e = secret_event("AWSCURRENT");
            e["detail"][field] = json!("");
            refused(deploy_input(e), &[&format!("`detail.{field}`"), "empty"]);
        }
    }

    #[test]
    fn a_secret_event_whose_detail_is_an_array_is_bad_input() {
        let mut e = secret_event("AWSCURRENT");
        e["detail"] = json!(["shop/prod/db", "AWSCURRENT", SECRET_VERSION]);
        refused(
            deploy_input(e),
            &["`detail`", "Secret Label Updated", "got an array"],
        );
    }

    #[test]
    fn another_secrets_manager_event_is_bad_input_naming_the_expected_detail_type() {
        let mut e = secret_event("AWSCURRENT");
        e["detail-type"] = json!("AWS API Call via CloudTrail");
        refused(
            deploy_input(e),
            &["Secret Label Updated", "AWS API Call via CloudTrail"],
        );
    }

    // ---------------------------------------------------------- task_stopped

    #[test]
    fn a_stopped_task_becomes_task_stopped_with_its_containers_exit_codes_and_times() {
        assert_eq!(
            task_stopped(task_event()),
            Ok(Some(TaskStopped {
                task_arn: TASK.to_owned(),
                started_by: Some("ferry/shop/prod/3f2a9c1b7e40d5a1".to_owned()),
                task: StoppedTask {
                    stop_code: Some("EssentialContainerExited".to_owned()),
                    stopped_reason: Some("Essential container in task exited".to_owned()),
                    containers: vec![
                        StoppedContainer {
                            name: "migrate".to_owned(),
                            exit_code: Some(1),
                            reason: None,
                        },
                        StoppedContainer {
                            name: "sidecar".to_owned(),
                            exit_code: None,
                            reason: Some("OutOfMemoryError".to_owned()),
                        },
                    ],
                    started_at: Some(epoch_secs("2026-11-23T10:00:33Z")),
                    stopped_at: Some(epoch_secs("2026-11-23T10:02:31Z")),
                },
            }))
        );
    }

    #[test]
    fn a_task_that_never_started_has_no_start_time_and_no_containers() {
        let mut e = task_event();
        let detail = &mut e["detail"];
        detail["stopCode"] = json!("TaskFailedToStart");
        detail.as_object_mut().map(|d| {
            d.remove("startedAt");
            d.remove("containers");
            d.remove("startedBy")
        });
        let Ok(Some(stopped)) = task_stopped(e) else {
            panic!("a stopped task");
        };
        assert_eq!(stopped.started_by, None);
        assert_eq!(stopped.task.stop_code.as_deref(), Some("TaskFailedToStart"));
        assert_eq!(stopped.task.started_at, None);
        assert!(stopped.task.containers.is_empty());
    }

    #[test]
    fn a_task_that_has_not_stopped_is_nothing_to_gate() {
        for status in ["PROVISIONING", "PENDING", "RUNNING", "DEPROVISIONING"] {
            let mut e = task_event();
            e["detail"]["lastStatus"] = json!(status);
            assert_eq!(task_stopped(e), Ok(None), "{status}");
        }
    }

    #[test]
    fn a_task_event_missing_its_task_arn_or_status_is_bad_input_naming_it() {
        for field in ["taskArn", "lastStatus"] {
            let mut e = task_event();
            e["detail"].as_object_mut().map(|d| d.remove(field));
            refused(task_stopped(e), &[field, "ECS Task State Change"]);
        }
    }

    #[test]
    fn a_task_event_whose_exit_code_is_text_is_bad_input_naming_the_container_field() {
        let mut e = task_event();
        e["detail"]["containers"][0]["exitCode"] = json!("1");
        refused(task_stopped(e), &["`detail.containers[0].exitCode`"]);
    }

    #[test]
    fn a_task_event_with_an_unreadable_stop_time_is_bad_input_naming_the_field() {
        let mut e = task_event();
        e["detail"]["stoppedAt"] = json!("after lunch");
        refused(task_stopped(e), &["`detail.stoppedAt`"]);
    }

    #[test]
    fn a_task_event_whose_container_is_an_array_is_bad_input() {
        let mut e = task_event();
        e["detail"]["containers"] = json!([["migrate", 0, null]]);
        refused(
            task_stopped(e),
            &[
                "`detail.containers[0]`",
                "must be a JSON object",
                "got an array",
            ],
        );
    }

    #[test]
    fn a_task_event_whose_detail_is_an_array_is_bad_input() {
        let mut e = task_event();
        e["detail"] = json!([TASK, null, "STOPPED"]);
        refused(task_stopped(e), &["`detail`", "got an array"]);
    }

    #[test]
    fn a_task_event_that_is_not_an_object_is_bad_input() {
        refused(
            task_stopped(json!([task_event()])),
            &["ECS Task State Change", "got an array"],
        );
    }

    #[test]
    fn an_ecr_push_sent_to_the_gate_is_bad_input_naming_the_expected_detail_type() {
        refused(
            task_stopped(push_event()),
            &["ECS Task State Change", "ECR Image Action"],
        );
    }

    // ----------------------------------------------------- deployment_change

    #[test]
    fn a_completed_deployment_becomes_a_completed_change_of_its_service() {
        assert_eq!(
            deployment_change(deployment_event("SERVICE_DEPLOYMENT_COMPLETED")),
            Ok(Some(DeploymentChange {
                cluster: "shop-prod".to_owned(),
                service: "api".to_owned(),
                deployment_id: "ecs-svc/0123456789012345678".to_owned(),
                outcome: DeploymentOutcome::Completed,
                reason: Some("ECS deployment ecs-svc/0123456789012345678 completed.".to_owned()),
            }))
        );
    }

    #[test]
    fn a_failed_deployment_becomes_a_failed_change() {
        let mut e = deployment_event("SERVICE_DEPLOYMENT_FAILED");
        e["detail"].as_object_mut().map(|d| d.remove("reason"));
        let Ok(Some(change)) = deployment_change(e) else {
            panic!("a finished deployment");
        };
        assert_eq!(change.outcome, DeploymentOutcome::Failed);
        assert_eq!(change.reason, None);
    }

    #[test]
    fn a_deployment_that_has_not_finished_is_nothing_to_watch() {
        assert_eq!(
            deployment_change(deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS")),
            Ok(None)
        );
    }

    #[test]
    fn a_deployment_event_without_a_service_arn_is_bad_input_naming_resources() {
        for resources in [json!([]), Value::Null] {
            let mut e = deployment_event("SERVICE_DEPLOYMENT_COMPLETED");
            e["resources"] = resources;
            refused(deployment_change(e), &["`resources`"]);
        }
    }

    #[test]
    fn a_deployment_event_whose_resource_is_not_a_service_arn_with_a_cluster_is_bad_input() {
        for arn in [
            "arn:aws:ecs:eu-west-1:123456789012:service/api",
            "arn:aws:ecs:eu-west-1:123456789012:task/shop-prod/abc",
            "api",
        ] {
            let mut e = deployment_event("SERVICE_DEPLOYMENT_COMPLETED");
            e["resources"] = json!([arn]);
            refused(deployment_change(e), &["`resources[0]`", arn]);
        }
    }

    #[test]
    fn a_deployment_event_missing_its_deployment_id_is_bad_input_naming_it() {
        let mut e = deployment_event("SERVICE_DEPLOYMENT_COMPLETED");
        e["detail"]
            .as_object_mut()
            .map(|d| d.remove("deploymentId"));
        refused(deployment_change(e), &["deploymentId"]);
    }

    #[test]
    fn a_deployment_event_whose_detail_is_an_array_is_bad_input() {
        let mut e = deployment_event("SERVICE_DEPLOYMENT_COMPLETED");
        e["detail"] = json!(["SERVICE_DEPLOYMENT_COMPLETED", "ecs-svc/1"]);
        refused(deployment_change(e), &["`detail`", "got an array"]);
    }

    #[test]
    fn a_task_event_sent_to_the_watch_is_bad_input_naming_the_expected_detail_type() {
        refused(
            deployment_change(task_event()),
            &["ECS Deployment State Change", "ECS Task State Change"],
        );
    }

    // -------------------------------------------------------- rollback_input

    #[test]
    fn an_alarm_going_to_alarm_becomes_an_alarm_change() {
        assert_eq!(
            rollback_input(alarm_event("ALARM", "OK")),
            Ok(RollbackInput::Alarm(AlarmChange {
                alarm: "shop-prod-5xx".to_owned(),
                state: State::Alarm,
                previous_state: Some(State::Ok),
                reason: "Threshold Crossed".to_owned(),
            }))
        );
    }

    #[test]
    fn an_alarm_without_a_previous_state_or_reason_still_parses() {
        let mut e = alarm_event("INSUFFICIENT_DATA", "OK");
        e["detail"]
            .as_object_mut()
            .map(|d| d.remove("previousState"));
        e["detail"]["state"]
            .as_object_mut()
            .map(|s| s.remove("reason"));
        let Ok(RollbackInput::Alarm(change)) = rollback_input(e) else {
            panic!("an alarm change");
        };
        assert_eq!(change.state, State::InsufficientData);
        assert_eq!(change.previous_state, None);
        assert_eq!(change.reason, "");
    }

    #[test]
    fn an_alarm_in_an_unknown_state_is_bad_input_naming_the_field() {
        refused(
            rollback_input(alarm_event("ON_FIRE", "OK")),
            &["detail.state.value", "ON_FIRE"],
        );
    }

    #[test]
    fn an_alarm_event_missing_its_alarm_name_is_bad_input_naming_it() {
        let mut e = alarm_event("ALARM", "OK");
        e["detail"].as_object_mut().map(|d| d.remove("alarmName"));
        refused(rollback_input(e), &["alarmName"]);
    }

    #[test]
    fn an_alarm_state_given_as_an_array_is_bad_input() {
        let mut e = alarm_event("ALARM", "OK");
        e["detail"]["state"] = json!(["ALARM", "Threshold Crossed"]);
        refused(
            rollback_input(e),
            &["`detail.state`", "must be a JSON object", "got an array"],
        );
        let mut e = alarm_event("ALARM", "OK");
        e["detail"]["previousState"] = json!(["OK"]);
        refused(
            rollback_input(e),
            &["`detail.previousState`", "got an array"],
        );
    }

    #[test]
    fn an_alarm_event_whose_detail_is_an_array_is_bad_input() {
        let mut e = alarm_event("ALARM", "OK");
        e["detail"] = json!(["shop-prod-5xx", { "value": "ALARM" }]);
        refused(rollback_input(e), &["`detail`", "got an array"]);
    }

    #[test]
    fn an_event_that_is_not_an_alarm_is_bad_input_for_ferry_rollback() {
        refused(
            rollback_input(push_event()),
            &["CloudWatch Alarm State Change", "ECR Image Action"],
        );
    }

    #[test]
    fn a_rollback_request_to_a_tag_becomes_a_rollback_request() {
        let payload = json!({ "rollback": {
            "app": "shop", "environment": "prod", "to": "1.0.0", "reason": "checkout errors",
            "repository": "shop",
        } });
        assert_eq!(
            rollback_input(payload),
            Ok(RollbackInput::Rollback(RollbackRequest {
                app: "shop".to_owned(),
                environment: "prod".to_owned(),
                to: Some("1.0.0".to_owned()),
                reason: "checkout errors".to_owned(),
                repository: Some("shop".to_owned()),
            }))
        );
    }

    #[test]
    fn a_rollback_request_without_a_target_goes_to_the_previous_known_good_release() {
        let payload =
            json!({ "rollback": { "app": "shop", "environment": "prod", "reason": "errors" } });
        let Ok(RollbackInput::Rollback(request)) = rollback_input(payload) else {
            panic!("a rollback request");
        };
        assert_eq!(request.to, None);
        assert_eq!(request.repository, None);
    }

    #[test]
    fn a_rollback_request_without_a_reason_is_bad_input_naming_it() {
        let payload = json!({ "rollback": { "app": "shop", "environment": "prod" } });
        refused(rollback_input(payload), &["`rollback`", "reason"]);
    }

    #[test]
    fn a_rollback_request_given_as_an_array_is_bad_input() {
        let payload = json!({ "rollback": ["shop", "prod", null, "checkout errors"] });
        refused(
            rollback_input(payload),
            &["`rollback` must be a JSON object like", "got an array"],
        );
    }

    #[test]
    fn a_rollback_request_whose_reason_is_a_number_is_bad_input_naming_the_field() {
        let payload = json!({ "rollback": { "app": "shop", "environment": "prod", "reason": 5 } });
        refused(rollback_input(payload), &["`rollback.reason`"]);
    }

    #[test]
    fn an_unfreeze_request_becomes_an_unfreeze_request() {
        let payload = json!({ "unfreeze": { "app": "shop", "environment": "prod" } });
        assert_eq!(
            rollback_input(payload),
            Ok(RollbackInput::Unfreeze(UnfreezeRequest {
                app: "shop".to_owned(),
                environment: "prod".to_owned(),
            }))
        );
    }

    #[test]
    fn an_unfreeze_request_given_as_an_array_is_bad_input() {
        let payload = json!({ "unfreeze": ["shop", "prod"] });
        let message = refused(
            rollback_input(payload),
            &["`unfreeze` must be a JSON object like", "got an array"],
        );
        assert!(message.contains(UNFREEZE_LIKE), "{message}");
    }

    #[test]
    fn an_unfreeze_request_with_an_unknown_field_is_bad_input_naming_it() {
        let payload =
            json!({ "unfreeze": { "app": "shop", "environment": "prod", "reason": "done" } });
        refused(rollback_input(payload), &["unknown field `reason`"]);
    }

    #[test]
    fn an_unfreeze_request_missing_its_app_is_bad_input_naming_it() {
        let payload = json!({ "unfreeze": { "environment": "prod" } });
        refused(rollback_input(payload), &["`unfreeze`", "app"]);
    }

    #[test]
    fn an_unknown_request_to_ferry_rollback_is_bad_input_naming_it() {
        let payload = json!({ "deploy": { "app": "shop", "environment": "prod", "tag": "1.0.0" } });
        refused(
            rollback_input(payload),
            &["unknown request `deploy`", "\"rollback\"", "\"unfreeze\""],
        );
    }

    #[test]
    fn a_rollback_payload_with_two_requests_is_bad_input() {
        let payload = json!({
            "rollback": { "app": "shop", "environment": "prod", "reason": "errors" },
            "unfreeze": { "app": "shop", "environment": "prod" },
        });
        refused(rollback_input(payload), &["exactly one request"]);
    }

    #[test]
    fn a_rollback_payload_given_as_an_array_is_bad_input() {
        refused(
            rollback_input(json!([{ "app": "shop", "environment": "prod" }])),
            &["payload must be a JSON object", "got an array"],
        );
    }

    // ------------------------------------------------------------ locating

    #[test]
    fn a_failing_field_is_located_by_its_path_through_objects_and_arrays() {
        let value = json!({
            "resources": ["a\": {", "b"],
            "detail": { "containers": [{ "name": "x" }, { "name": "y", "exitCode": "z" }] },
        });
        let text = serde_json::to_string_pretty(&value).unwrap_or_default();
        let line = text
            .lines()
            .position(|l| l.contains("\"exitCode\""))
            .map(|i| i + 1)
            .unwrap_or(0);
        assert_eq!(path_at(&text, line), "detail.containers[1].exitCode");
        let line = text
            .lines()
            .position(|l| l.contains("\"b\""))
            .map(|i| i + 1)
            .unwrap_or(0);
        assert_eq!(path_at(&text, line), "resources[1]");
    }

    #[test]
    fn a_key_with_escaped_quotes_is_read_whole() {
        assert_eq!(split_key(r#""a\"b": 1,"#), (Some("a\"b".to_owned()), "1,"));
        assert_eq!(split_key(r#""a: b","#), (None, r#""a: b","#));
    }
}
