//! What each Lambda function does with its payload: parse, call the engine, and
//! classify failures. Retryable failures become function errors, so Lambda (and
//! EventBridge) run the event again; the rest are answered with a structured
//! error body and logged, because running them again cannot help.

use serde::Serialize;
use serde_json::{json, Value};

use crate::inbound::{self, BadEvent, DeployInput, RollbackInput, WatchInput};
use crate::AwsEngine;
use ferry_core::engine::{Decision, EngineError};

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("bad input: {0}")]
    BadInput(#[from] BadEvent),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{message}")]
    ConfigUnavailable { message: String, retryable: bool },
}

impl HandlerError {
    pub fn is_retryable(&self) -> bool {
        match self {
            HandlerError::BadInput(_) => false,
            HandlerError::Engine(e) => e.is_retryable(),
            HandlerError::ConfigUnavailable { retryable, .. } => *retryable,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            HandlerError::BadInput(_) => "bad_input",
            HandlerError::Engine(EngineError::BadRequest(_)) => "bad_request",
            HandlerError::Engine(_) => "aws",
            HandlerError::ConfigUnavailable { .. } => "config",
        }
    }
}

/// The function's answer: retryable errors stay errors (Lambda retries them),
/// the others become `{"ok": false, "error": {...}}` and are not retried.
pub fn respond(result: Result<Value, HandlerError>) -> Result<Value, HandlerError> {
    match result {
        Ok(value) => Ok(value),
        Err(error) if error.is_retryable() => {
            tracing::warn!(%error, "retryable failure; the event will be delivered again");
            Err(error)
        }
        Err(error) => {
            tracing::error!(%error, kind = error.kind(), "rejected; retrying cannot help");
            Ok(json!({
                "ok": false,
                "error": { "kind": error.kind(), "message": error.to_string() },
            }))
        }
    }
}

fn reply<T: Serialize>(decisions: T) -> Value {
    json!({ "ok": true, "decisions": decisions })
}

fn ignored(reason: String) -> Value {
    tracing::info!(%reason, "ignored");
    reply(vec![json!({ "outcome": "ignored", "reason": reason })])
}

fn log(decisions: &[Decision]) {
    for d in decisions {
        tracing::info!(
            app = d.app.as_deref().unwrap_or("-"),
            environment = d.environment.as_deref().unwrap_or("-"),
            release = d.release_id.as_deref().unwrap_or("-"),
            decision = %serde_json::to_string(&d.outcome).unwrap_or_default(),
            "decision"
        );
    }
}

// Every engine call is boxed: a flow's future holds each step it may take,
// and unboxed in a debug build it outgrew a 2 MiB thread stack (the test
// threads'; Lambda's runtime thread is larger, but not by design).
pub async fn deploy(
    engine: &AwsEngine,
    region: &str,
    payload: Value,
    now: u64,
) -> Result<Value, HandlerError> {
    let decisions = match inbound::deploy_input(payload)? {
        DeployInput::Skip(reason) => return Ok(ignored(reason)),
        DeployInput::Push(push) => Box::pin(engine.on_push(&push, now)).await?,
        DeployInput::Deploy(request) => vec![Box::pin(engine.deploy(&request, region, now)).await?],
        DeployInput::Retry(request) => vec![Box::pin(engine.retry(&request, region, now)).await?],
        DeployInput::SecretChanged(change) => {
            Box::pin(engine.on_secret_changed(&change, now)).await?
        }
        DeployInput::Promote(request) => Box::pin(engine.promote(&request, region, now)).await?,
        DeployInput::Approve(request) => Box::pin(engine.approve(&request, now)).await?,
        DeployInput::Reject(request) => Box::pin(engine.reject(&request, now)).await?,
    };
    log(&decisions);
    Ok(reply(decisions))
}

pub async fn gate(
    engine: &AwsEngine,
    _region: &str,
    payload: Value,
    now: u64,
) -> Result<Value, HandlerError> {
    let Some(stopped) = inbound::task_stopped(payload)? else {
        return Ok(ignored("task has not stopped".to_owned()));
    };
    let decision = Box::pin(engine.on_task_stopped(&stopped, now)).await?;
    log(std::slice::from_ref(&decision));
    Ok(reply(vec![decision]))
}

pub async fn watch(
    engine: &AwsEngine,
    _region: &str,
    payload: Value,
    now: u64,
) -> Result<Value, HandlerError> {
    let decisions = match inbound::watch_input(payload)? {
        WatchInput::Deployment(None) => {
            return Ok(ignored("deployment has not finished".to_owned()))
        }
        WatchInput::Deployment(Some(change)) => {
            vec![Box::pin(engine.on_deployment(&change, now)).await?]
        }
        WatchInput::BakeEnded(release) => {
            vec![Box::pin(engine.on_bake_ended(&release, now)).await?]
        }
        WatchInput::Bless(request) => Box::pin(engine.bless(&request)).await?,
    };
    log(&decisions);
    Ok(reply(decisions))
}

pub async fn rollback(
    engine: &AwsEngine,
    region: &str,
    payload: Value,
    now: u64,
) -> Result<Value, HandlerError> {
    let decisions = match inbound::rollback_input(payload)? {
        RollbackInput::Alarm(alarm) => Box::pin(engine.on_alarm(&alarm)).await?,
        RollbackInput::Rollback(request) => Box::pin(engine.rollback(&request)).await?,
        RollbackInput::Unfreeze(request) => {
            Box::pin(engine.unfreeze(&request, region, now)).await?
        }
    };
    log(&decisions);
    Ok(reply(decisions))
}

pub async fn reconcile(
    engine: &AwsEngine,
    region: &str,
    payload: Value,
    now: u64,
) -> Result<Value, HandlerError> {
    let request = inbound::reconcile_input(payload)?;
    let decisions = Box::pin(engine.reconcile(&request, region, now)).await?;
    log(&decisions);
    Ok(reply(decisions))
}
