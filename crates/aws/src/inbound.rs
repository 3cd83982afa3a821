//! The AWS events ferry consumes, in their documented shapes, turned into the
//! engine's inputs. Anything that does not fit is a [`BadEvent`] naming the
//! field, and the handler answers it without touching AWS.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, SecondsFormat, Utc};
use ferry_core::engine::{
    AlarmChange, DeployRequest, DeploymentChange, DeploymentOutcome, Push, RollbackRequest,
    TaskStopped, UnfreezeRequest,
};
use ferry_core::release::{StoppedContainer, StoppedTask};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadEvent(pub String);

fn bad(message: impl Into<String>) -> BadEvent {
    BadEvent(message.into())
}

/// Second precision, `Z`: push times compare correctly as strings.
pub fn rfc3339(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn envelope<T: serde::de::DeserializeOwned + serde::Serialize>(
    payload: Value,
    source: &str,
    detail_type: &str,
) -> Result<EventBridgeEvent<T>, BadEvent> {
    let seen_type = payload
        .get("detail-type")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let seen_source = payload
        .get("source")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if seen_source.as_deref() != Some(source) || seen_type.as_deref() != Some(detail_type) {
        return Err(bad(format!(
            "expected an EventBridge event with source `{source}` and detail-type `{detail_type}`, got source {seen_source:?} and detail-type {seen_type:?}"
        )));
    }
    serde_json::from_value(payload)
        .map_err(|e| bad(format!("malformed `{detail_type}` event: {e}")))
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

/// What the deploy function was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployInput {
    Push(Push),
    /// A push event ferry deliberately does nothing with (logged).
    Skip(String),
    Deploy(DeployRequest),
}

pub fn deploy_input(payload: Value) -> Result<DeployInput, BadEvent> {
    if payload.get("detail-type").is_some() {
        let event: EventBridgeEvent<EcrImageAction> =
            envelope(payload, "aws.ecr", "ECR Image Action")?;
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
            pushed_at: rfc3339(time),
        }));
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Invoke {
        deploy: DeployRequest,
    }
    match serde_json::from_value::<Invoke>(payload) {
        Ok(invoke) => Ok(DeployInput::Deploy(invoke.deploy)),
        Err(e) => Err(bad(format!(
            "expected an ECR Image Action event or {{\"deploy\": {{\"app\", \"environment\", \"tag\" | \"digest\"}}}}: {e}"
        ))),
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
    let event: EventBridgeEvent<EcsTaskStateChange> =
        envelope(payload, "aws.ecs", "ECS Task State Change")?;
    let d = event.detail;
    if d.last_status != "STOPPED" {
        return Ok(None);
    }
    let epoch = |t: Option<DateTime<Utc>>| t.and_then(|t| u64::try_from(t.timestamp()).ok());
    Ok(Some(TaskStopped {
        task_arn: d.task_arn,
        started_by: d.started_by,
        task: StoppedTask {
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
        },
    }))
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
        envelope(payload, "aws.ecs", "ECS Deployment State Change")?;
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

/// What the rollback function was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackInput {
    Alarm(AlarmChange),
    Rollback(RollbackRequest),
    Unfreeze(UnfreezeRequest),
}

pub fn rollback_input(payload: Value) -> Result<RollbackInput, BadEvent> {
    if payload.get("detail-type").is_some() {
        let event: EventBridgeEvent<AlarmStateChange> =
            envelope(payload, "aws.cloudwatch", "CloudWatch Alarm State Change")?;
        let d = event.detail;
        return Ok(RollbackInput::Alarm(AlarmChange {
            alarm: d.alarm_name,
            state: d.state.value,
            previous_state: d.previous_state.map(|p| p.value),
            reason: d.state.reason.unwrap_or_default(),
        }));
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "snake_case")]
    enum Invoke {
        Rollback(RollbackRequest),
        Unfreeze(UnfreezeRequest),
    }
    match serde_json::from_value::<Invoke>(payload) {
        Ok(Invoke::Rollback(r)) => Ok(RollbackInput::Rollback(r)),
        Ok(Invoke::Unfreeze(u)) => Ok(RollbackInput::Unfreeze(u)),
        Err(e) => Err(bad(format!(
            "expected a CloudWatch Alarm State Change event, {{\"rollback\": {{\"app\", \"environment\", \"reason\", \"to\"?}}}} or {{\"unfreeze\": {{\"app\", \"environment\"}}}}: {e}"
        ))),
    }
}
