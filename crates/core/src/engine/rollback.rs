//! Rollback: on an alarm, on a failed deployment, on an operator's request —
//! always to a known-good release, every service of the lane together, once.
//!
//! Round trips to the last UpdateService, at any number of services:
//! 1. read the lane head (it carries the known-good releases' task definitions);
//! 2. one transaction: head (conditional on its version) frozen and pointing at
//!    the target, the release left marked rolled back;
//! 3. UpdateService of every service to the target's recorded revision ∥ the
//!    SSM image tag back to the target's ∥ the audit event.
//!
//! Then the new SSM version gets the `known-good` label.

use serde::Deserialize;

use super::{
    fan_out, Decision, Engine, EngineError, Outcome, KNOWN_GOOD_LABEL, UPDATE_SERVICE_CONCURRENCY,
};
use crate::config::Environment;
use crate::ports::{
    Ecs, EventSink, Lane, Ledger, Parameters, Registry, ReleaseEvent, RollbackLedger,
    RollbackWrite, SecretsCheck,
};
use crate::release::ReleaseState;
use crate::rollback::{choose_rollback, RollbackCause, RollbackChoice};

/// A CloudWatch Alarm State Change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmChange {
    pub alarm: String,
    pub state: String,
    pub previous_state: Option<String>,
    pub reason: String,
}

/// A direct invoke: roll an environment back, to its previous known-good
/// release or to a named tag or release id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    pub app: String,
    pub environment: String,
    #[serde(default)]
    pub to: Option<String>,
    pub reason: String,
    #[serde(default)]
    pub repository: Option<String>,
}

/// A direct invoke: lift an environment's freeze; a held push is deployed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnfreezeRequest {
    pub app: String,
    pub environment: String,
}

fn lanes(env: &Environment) -> Vec<Lane> {
    env.repositories()
        .into_iter()
        .map(|repository| Lane {
            app: env.app.clone(),
            env: env.name.clone(),
            repository: repository.to_owned(),
        })
        .collect()
}

impl<L, E, P, S, R, V> Engine<L, E, P, S, R, V>
where
    L: Ledger + RollbackLedger,
    E: Ecs,
    P: Parameters,
    S: SecretsCheck,
    R: Registry,
    V: EventSink,
{
    pub async fn on_alarm(&self, alarm: &AlarmChange) -> Result<Vec<Decision>, EngineError> {
        let ignored = |reason: String| {
            tracing::info!(alarm = %alarm.alarm, %reason, "alarm ignored");
            Ok(vec![Decision::new(
                "",
                "",
                None,
                Outcome::Ignored { reason },
            )])
        };
        if alarm.state != "ALARM" {
            return ignored(format!(
                "alarm {} went to {}; only ALARM rolls back",
                alarm.alarm, alarm.state
            ));
        }
        let Some(env) = self.config.environment_guarded_by(&alarm.alarm) else {
            return ignored(format!(
                "alarm {} guards no environment in ferry's config",
                alarm.alarm
            ));
        };
        let cause = RollbackCause::Alarm {
            alarm: alarm.alarm.clone(),
            reason: alarm.reason.clone(),
        };
        let results = futures_util::future::join_all(
            lanes(env).iter().map(|lane| self.roll_back(lane, &cause)),
        )
        .await;
        results.into_iter().collect()
    }

    pub async fn rollback(&self, request: &RollbackRequest) -> Result<Vec<Decision>, EngineError> {
        let env = self.environment_of(&request.app, &request.environment)?;
        let cause = RollbackCause::Operator {
            to: request.to.clone(),
            reason: request.reason.clone(),
        };
        let chosen: Vec<Lane> = lanes(env)
            .into_iter()
            .filter(|l| {
                request
                    .repository
                    .as_ref()
                    .is_none_or(|r| r == &l.repository)
            })
            .collect();
        if chosen.is_empty() {
            return Err(EngineError::BadRequest(format!(
                "environment {}/{} runs no repository {:?}",
                env.app, env.name, request.repository
            )));
        }
        let mut decisions = Vec::new();
        for lane in &chosen {
            let decision = self.roll_back(lane, &cause).await?;
            if let Outcome::Refused { reason } = &decision.outcome {
                return Err(EngineError::BadRequest(format!(
                    "rollback of {lane} refused: {reason}"
                )));
            }
            decisions.push(decision);
        }
        Ok(decisions)
    }

    pub async fn unfreeze(
        &self,
        request: &UnfreezeRequest,
        region: &str,
        now: u64,
    ) -> Result<Vec<Decision>, EngineError> {
        let env = self.environment_of(&request.app, &request.environment)?;
        let mut decisions = Vec::new();
        for lane in lanes(env) {
            let head = self.ledger.head(&lane).await?.unwrap_or_default();
            if !head.frozen {
                decisions.push(Decision::new(
                    &lane.app,
                    &lane.env,
                    None,
                    Outcome::Ignored {
                        reason: format!("{lane} is not frozen"),
                    },
                ));
                continue;
            }
            if !self.ledger.unfreeze(&lane, head.version).await? {
                return Err(EngineError::Contention(lane));
            }
            tracing::info!(%lane, "unfrozen");
            decisions.push(Decision::new(&lane.app, &lane.env, None, Outcome::Unfrozen));
            if let Some(held) = head.held {
                let request = super::DeployRequest {
                    app: lane.app.clone(),
                    environment: lane.env.clone(),
                    tag: None,
                    digest: Some(held.digest.clone()),
                    repository: Some(lane.repository.clone()),
                };
                decisions.push(self.deploy(&request, region, now).await?);
            }
        }
        Ok(decisions)
    }

    fn environment_of(&self, app: &str, env: &str) -> Result<&Environment, EngineError> {
        self.config.environment(app, env).ok_or_else(|| {
            EngineError::BadRequest(format!(
                "no environment `{env}` in app `{app}` in ferry's config"
            ))
        })
    }

    /// Rolls one lane back for `cause`.
    pub(crate) async fn roll_back(
        &self,
        lane: &Lane,
        cause: &RollbackCause,
    ) -> Result<Decision, EngineError> {
        let decide = |id: Option<&str>, outcome| Decision::new(&lane.app, &lane.env, id, outcome);
        for _attempt in 0..3 {
            // Round trip 1.
            let head = self.ledger.head(lane).await?.unwrap_or_default();
            let (leaving, to, history) = match choose_rollback(&head, cause) {
                RollbackChoice::Roll {
                    leaving,
                    to,
                    history,
                } => (leaving, to, history),
                RollbackChoice::Nothing { reason } => {
                    tracing::info!(%lane, %reason, cause = %cause.describe(), "nothing to roll back");
                    if let Some(current) = head.history.first() {
                        self.emit(vec![ReleaseEvent {
                            release_id: current.id.to_string(),
                            app: lane.app.clone(),
                            environment: lane.env.clone(),
                            repository: lane.repository.clone(),
                            tag: current.tag.clone(),
                            digest: current.digest.clone(),
                            state: "ROLLBACK_NOT_NEEDED".to_owned(),
                            previous_state: None,
                            reason: Some(format!("{}: {reason}", cause.describe())),
                            services: current.task_definitions.keys().cloned().collect(),
                        }])
                        .await;
                    }
                    return Ok(decide(None, Outcome::Ignored { reason }));
                }
                RollbackChoice::Refused { reason } => {
                    tracing::warn!(%lane, %reason, "rollback refused");
                    return Ok(decide(None, Outcome::Refused { reason }));
                }
            };
            let reason = format!(
                "rolled back to {} ({}): {}",
                to.tag,
                to.id,
                cause.describe()
            );
            let expected: &[ReleaseState] = if leaving.in_flight {
                &[
                    ReleaseState::Claimed,
                    ReleaseState::Migrating,
                    ReleaseState::Deploying,
                ]
            } else {
                &[ReleaseState::Succeeded]
            };
            // Round trip 2: the decision, atomically.
            let written = self
                .ledger
                .roll_back(RollbackWrite {
                    lane,
                    expected_head_version: head.version,
                    target: &to,
                    history,
                    left: Some((&leaving.id, expected, ReleaseState::RolledBack)),
                    reason: &reason,
                })
                .await?;
            if !written {
                continue;
            }
            tracing::warn!(%lane, from = %leaving.id, to = %to.id, %reason, "rolling back");

            // Round trip 3: every service at once ∥ the public record ∥ the audit event.
            let cluster = self
                .config
                .environment(&lane.app, &lane.env)
                .map(|e| e.cluster.clone())
                .unwrap_or_default();
            let parameter = self.parameter_of(lane)?;
            let services: Vec<(String, String)> = to
                .task_definitions
                .iter()
                .map(|(s, a)| (s.clone(), a.clone()))
                .collect();
            let event = ReleaseEvent {
                release_id: leaving.id.to_string(),
                app: lane.app.clone(),
                environment: lane.env.clone(),
                repository: lane.repository.clone(),
                tag: leaving.tag.clone(),
                digest: String::new(),
                state: ReleaseState::RolledBack.as_str().to_owned(),
                previous_state: None,
                reason: Some(reason.clone()),
                services: services.iter().map(|(s, _)| s.clone()).collect(),
            };
            let (updated, put, ()) = futures_util::join!(
                fan_out(services, UPDATE_SERVICE_CONCURRENCY, |(service, arn)| {
                    let cluster = &cluster;
                    async move { self.ecs.restore_service(cluster, &service, &arn).await }
                }),
                self.params.put(&parameter, &to.tag),
                self.emit(vec![event]),
            );
            let version = put?;
            let failures: Vec<String> = updated
                .into_iter()
                .filter_map(Result::err)
                .map(|e| e.to_string())
                .collect();
            // Round trip 4: the restored version is the known-good one.
            self.params
                .label(&parameter, version, KNOWN_GOOD_LABEL)
                .await?;
            if !failures.is_empty() {
                tracing::error!(%lane, ?failures, "some services could not be rolled back");
                return Err(EngineError::Aws(
                    crate::ports::PortError::new(
                        "ecs:UpdateService",
                        format!(
                            "rollback of {lane} left services behind: {}",
                            failures.join("; ")
                        ),
                    )
                    .retryable(),
                ));
            }
            return Ok(decide(
                Some(leaving.id.as_str()),
                Outcome::RolledBack {
                    from: leaving.tag,
                    to: to.tag,
                    reason,
                },
            ));
        }
        Err(EngineError::Contention(lane.clone()))
    }
}
