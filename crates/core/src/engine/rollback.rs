//! Rollback: on an alarm, on a failed deployment, on an operator's request —
//! always to a known-good release, every service of the lane together, once.
//!
//! Round trips to the last UpdateService, at any number of services:
//! 1. read the lane head (it carries the known-good releases' task definitions);
//! 2. one transaction: head (conditional on its version) frozen, pointing at
//!    the target and recording the rollback in progress; the release left
//!    ROLLING_BACK;
//! 3. UpdateService of every service to the target's recorded revision ∥ the
//!    SSM image tag back to the target's ∥ read the release left (for its event).
//!
//! Then the `known-good` label on the new SSM version ∥ one transaction that
//! ends the rollback (ROLLED_BACK), and the event. A failure in 3 leaves the
//! rollback recorded and marked interrupted: the redelivered event finishes it,
//! to the same target.
//!
//! A target revision another tool deregistered (ecs-deploy does by default) is
//! refused by UpdateService (`ClientException` "TaskDefinition is inactive"). Only
//! then, for the services refused: DescribeTaskDefinition of their targets, a copy
//! of each registered (nothing changed but ferry's tags, naming the target
//! release), and UpdateService again onto the copy — three more round trips on
//! that path, none on the usual one. The lane head keeps recording the target's
//! original revisions: they are what was verified known-good, the copy is the same
//! definition under a new number, and a later rollback to that release copies
//! again if the original is still INACTIVE then (docs/DESIGN.md, "Rollback").

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{
    event_for, fan_out, Decision, Engine, EngineError, Outcome, Ports, DESCRIBE_CONCURRENCY,
    KNOWN_GOOD_LABEL, REGISTER_CONCURRENCY, UPDATE_SERVICE_CONCURRENCY,
};
use crate::config::Environment;
use crate::decide::unfreeze::{decide_unfreeze, UnfreezePlan};
pub use crate::ports::AlarmState;
use crate::ports::{
    Ecs, KnownGoodRelease, Lane, Ledger, Parameters, PortError, RollbackInProgress, RollbackLedger,
    RollbackWrite, TaskDefinitionView,
};
use crate::release::{ReleaseState, Transition};
use crate::rollback::{choose_rollback, RollbackCause, RollbackChoice};

/// A CloudWatch Alarm State Change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmChange {
    pub alarm: String,
    pub state: AlarmState,
    pub previous_state: Option<AlarmState>,
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

impl<P: Ports> Engine<P> {
    pub async fn on_alarm(&self, alarm: &AlarmChange) -> Result<Vec<Decision>, EngineError> {
        let ignored = |reason: String| {
            tracing::info!(alarm = %alarm.alarm, %reason, "alarm ignored");
            Ok(vec![Decision::ignored(reason)])
        };
        if alarm.state != AlarmState::Alarm {
            return ignored(format!(
                "alarm {} went to {}; only ALARM rolls back",
                alarm.alarm,
                alarm.state.as_str()
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
        let wanted = |lane: &Lane| {
            request
                .repository
                .as_ref()
                .is_none_or(|r| r == &lane.repository)
        };
        let chosen: Vec<Lane> = lanes(env).into_iter().filter(wanted).collect();
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
            let about = |outcome| Decision::about(&lane.app, &lane.env, None, outcome);
            let head = self.ledger.head(&lane).await?.unwrap_or_default();
            let held = match decide_unfreeze(&head) {
                UnfreezePlan::NotFrozen => {
                    decisions.push(about(Outcome::Ignored {
                        reason: format!("{lane} is not frozen"),
                    }));
                    continue;
                }
                UnfreezePlan::Refuse(reason) => {
                    return Err(EngineError::BadRequest(format!(
                        "unfreeze of {lane} refused: {reason}"
                    )))
                }
                UnfreezePlan::Unfreeze { held } => held,
            };
            if !self.ledger.unfreeze(&lane, head.version).await? {
                return Err(EngineError::Contention(lane));
            }
            tracing::info!(%lane, "unfrozen");
            decisions.push(about(Outcome::Unfrozen));
            if let Some(held) = held {
                let request = super::DeployRequest {
                    app: lane.app.clone(),
                    environment: lane.env.clone(),
                    tag: None,
                    digest: Some(held.digest.clone()),
                    repository: Some(lane.repository.clone()),
                };
                decisions.push(Box::pin(self.deploy(&request, region, now)).await?);
            }
        }
        Ok(decisions)
    }

    /// Rolls one lane back for `cause`.
    pub(crate) async fn roll_back(
        &self,
        lane: &Lane,
        cause: &RollbackCause,
    ) -> Result<Decision, EngineError> {
        let decide = |id: Option<&str>, outcome| Decision::about(&lane.app, &lane.env, id, outcome);
        for _attempt in 0..3 {
            // Round trip 1.
            let head = self.ledger.head(lane).await?.unwrap_or_default();
            let (rollback, to) = match choose_rollback(&head, cause) {
                RollbackChoice::Roll {
                    leaving,
                    to,
                    history,
                } => {
                    let rollback = RollbackInProgress {
                        release: leaving.release,
                        target: to.id.clone(),
                        reason: format!(
                            "rolled back to {} ({}): {}",
                            to.tag,
                            to.id,
                            cause.describe()
                        ),
                        interrupted: false,
                    };
                    // Round trip 2: the decision, atomically.
                    let write = RollbackWrite {
                        lane,
                        expected_head_version: head.version,
                        target: &to,
                        history,
                        rolling_back: &rollback,
                        guard: Transition::BeginRollback.guard(),
                    };
                    if !self.ledger.roll_back(write).await? {
                        continue;
                    }
                    (rollback, to)
                }
                RollbackChoice::Finish { rollback, to } => {
                    if !self
                        .ledger
                        .mark_rollback(lane, &rollback.release.id, false)
                        .await?
                    {
                        continue;
                    }
                    tracing::warn!(%lane, release = %rollback.release.id, "finishing an interrupted rollback");
                    (rollback, to)
                }
                RollbackChoice::Nothing { reason } => {
                    tracing::info!(%lane, %reason, cause = %cause.describe(), "nothing to roll back");
                    return Ok(decide(None, Outcome::Ignored { reason }));
                }
                RollbackChoice::Refused { reason } => {
                    tracing::warn!(%lane, %reason, "rollback refused");
                    return Ok(decide(None, Outcome::Refused { reason }));
                }
            };
            let outcome = Box::pin(self.put_back(lane, &rollback, &to)).await?;
            return Ok(decide(Some(rollback.release.id.as_str()), outcome));
        }
        Err(EngineError::Contention(lane.clone()))
    }

    /// Round trip 3 and on: every service back ∥ the public record (written
    /// only if it does not name the target already: a rollback of a release
    /// that never wrote its tag, or one finished after its first attempt wrote
    /// it, adds no SSM version), then the rollback's end. A failure marks it
    /// interrupted for the redelivery.
    async fn put_back(
        &self,
        lane: &Lane,
        rollback: &RollbackInProgress,
        to: &KnownGoodRelease,
    ) -> Result<Outcome, EngineError> {
        tracing::warn!(%lane, from = %rollback.release.id, to = %to.id, reason = %rollback.reason, "rolling back");
        let cluster = self.environment_of(&lane.app, &lane.env)?.cluster.clone();
        let parameter = self.parameter_of(lane)?;
        let services: Vec<(String, String)> = to
            .task_definitions
            .iter()
            .map(|(s, a)| (s.clone(), a.clone()))
            .collect();
        let (updated, put, left) = futures_util::join!(
            fan_out(services, UPDATE_SERVICE_CONCURRENCY, |(service, arn)| {
                let cluster = &cluster;
                async move {
                    let result = self.ecs.restore_service(cluster, &service, &arn).await;
                    (service, arn, result)
                }
            }),
            self.write_tag_once(lane, &to.tag),
            self.ledger.release(&rollback.release.id),
        );
        let mut inactive = Vec::new();
        let mut first_failure = None;
        for (service, arn, result) in updated {
            match result {
                Ok(_) => {}
                Err(e) if refuses_inactive_revision(&e) => inactive.push((service, arn, e)),
                Err(e) => {
                    first_failure.get_or_insert(e);
                }
            }
        }
        if first_failure.is_none() && !inactive.is_empty() {
            if let Err(e) = self.restore_onto_copies(lane, to, &cluster, inactive).await {
                first_failure = Some(e);
            }
        }
        let version = match (put, first_failure) {
            (Ok(version), None) => version,
            (Err(e), _) | (Ok(_), Some(e)) => {
                return Err(self.rollback_interrupted(lane, rollback, e).await)
            }
        };
        // Round trips 4–5: the restored version is the known-good one, then the
        // end (in this order: a failed label leaves the rollback to finish).
        if let Err(e) = self
            .params
            .label(&parameter, version, KNOWN_GOOD_LABEL)
            .await
        {
            return Err(self.rollback_interrupted(lane, rollback, e).await);
        }
        let guard = Transition::FinishRollback.guard();
        let finished = match self.ledger.finish_rollback(lane, rollback, guard).await {
            Ok(finished) => finished,
            Err(e) => return Err(self.rollback_interrupted(lane, rollback, e).await),
        };
        if finished {
            if let Ok(Some(mut record)) = left {
                record.reason = Some(rollback.reason.clone());
                let previous = record.rolled_back_from.or(Some(ReleaseState::RollingBack));
                self.emit(vec![event_for(&record, previous, ReleaseState::RolledBack)])
                    .await;
            }
        }
        Ok(Outcome::RolledBack {
            from: rollback.release.tag.clone(),
            to: to.tag.clone(),
            reason: rollback.reason.clone(),
        })
    }

    /// The services whose target revision ECS refused as INACTIVE go back on a
    /// copy of it: DescribeTaskDefinition ×(distinct targets) → RegisterTaskDefinition
    /// of each, unchanged but for ferry's tags naming the target release →
    /// UpdateService onto the copy. A target ECS describes as ACTIVE was refused
    /// for another reason: that refusal is the error.
    async fn restore_onto_copies(
        &self,
        lane: &Lane,
        to: &KnownGoodRelease,
        cluster: &str,
        refused: Vec<(String, String, PortError)>,
    ) -> Result<(), PortError> {
        let mut refusals: BTreeMap<String, PortError> = BTreeMap::new();
        let mut services = Vec::with_capacity(refused.len());
        for (service, arn, error) in refused {
            services.push((service, arn.clone()));
            refusals.entry(arn).or_insert(error);
        }
        let targets: Vec<String> = refusals.keys().cloned().collect();
        let described = fan_out(targets, DESCRIBE_CONCURRENCY, |arn| async move {
            let description = self.ecs.describe_task_definition(&arn).await;
            (arn, description)
        })
        .await;
        let mut bases = Vec::with_capacity(described.len());
        for (arn, description) in described {
            let base = description?;
            if base.is_active() {
                return Err(refusals.remove(&arn).unwrap_or_else(|| {
                    PortError::new("ecs:UpdateService", format!("{arn} was refused"))
                }));
            }
            bases.push((arn, base));
        }
        let registered = fan_out(bases, REGISTER_CONCURRENCY, |(arn, base)| async move {
            let tags =
                crate::image::release_tags(&base.tags(), to.id.as_str(), &lane.app, &lane.env)
                    .map_err(|e| PortError::new("ecs:RegisterTaskDefinition", e.to_string()))?;
            let copy = self.ecs.register_copy(&base, &[], &tags).await?;
            Ok::<_, PortError>((arn, copy))
        })
        .await;
        let mut copies = BTreeMap::new();
        for result in registered {
            let (arn, copy) = result?;
            copies.insert(arn, copy);
        }
        tracing::warn!(%lane, target = %to.id, ?copies, "target revisions were deregistered (INACTIVE): rolling back onto copies");
        let restored = fan_out(services, UPDATE_SERVICE_CONCURRENCY, |(service, arn)| {
            let copy = copies.get(&arn).cloned().unwrap_or(arn);
            async move { self.ecs.restore_service(cluster, &service, &copy).await }
        })
        .await;
        restored
            .into_iter()
            .find_map(Result::err)
            .map_or(Ok(()), Err)
    }

    async fn rollback_interrupted(
        &self,
        lane: &Lane,
        rollback: &RollbackInProgress,
        error: PortError,
    ) -> EngineError {
        tracing::error!(%lane, release = %rollback.release.id, %error, "rollback interrupted; the redelivered event finishes it");
        if let Err(mark_error) = self
            .ledger
            .mark_rollback(lane, &rollback.release.id, true)
            .await
        {
            tracing::error!(%lane, %mark_error, "could not mark the rollback interrupted; the reconcile pass must finish it");
        }
        EngineError::Aws(error)
    }
}

/// ECS's refusal of a deregistered revision: UpdateService answers
/// `ClientException` "TaskDefinition is inactive" ("DeregisterTaskDefinition",
/// Amazon ECS API Reference: "you can't update an existing service to reference
/// an INACTIVE task definition").
fn refuses_inactive_revision(error: &PortError) -> bool {
    error.code.as_deref() == Some("ClientException")
        && error.message.to_ascii_lowercase().contains("inactive")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_client_exception_about_an_inactive_revision_is_the_deregistered_refusal() {
        let refusal = |code: &str, message: &str| {
            PortError::new("ecs:UpdateService", message).with_code(code)
        };
        assert!(refuses_inactive_revision(&refusal(
            "ClientException",
            "TaskDefinition is inactive"
        )));
        assert!(!refuses_inactive_revision(&refusal(
            "ClientException",
            "Unable to describe task definition."
        )));
        assert!(!refuses_inactive_revision(&refusal(
            "InvalidParameterException",
            "TaskDefinition is inactive"
        )));
        assert!(!refuses_inactive_revision(&PortError::new(
            "ecs:UpdateService",
            "TaskDefinition is inactive"
        )));
    }
}
