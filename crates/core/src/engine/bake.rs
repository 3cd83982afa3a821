//! After the rollout: the smoke test, then the bake, then known-good.
//!
//! Every service completed → (smoke test: RunTask, VERIFYING; its STOPPED event
//! judged like a migration) → the bake: the window from the config or the
//! guarding alarms (DescribeAlarms), a one-time timer for its end, BAKING →
//! the timer (or an operator's bless): DescribeAlarms again, judged by
//! `decide::bake::judge_bake` → SUCCEEDED and known-good, or rolled back.

use serde::Deserialize;

use super::{event_for, Decision, Engine, EngineError, Outcome, Ports};
use crate::config::Bake;
use crate::decide::bake::{bake_window, decide_bake_end, judge_bake, BakeEnd, BakeVerdict};
use crate::ports::{
    AlarmStatus, Alarms, Ecs, Lane, LaneHead, Ledger, ReleaseRecord, ReleaseUpdate, ServiceView,
    Timers,
};
use crate::release::{ReleaseId, ReleaseState, Transition};
use crate::rollback::RollbackCause;

/// A direct invoke: end the bake of the release in flight now, judged as the
/// timer would judge it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlessRequest {
    pub app: String,
    pub environment: String,
    #[serde(default)]
    pub repository: Option<String>,
}

impl<P: Ports> Engine<P> {
    /// Every service completed: the smoke test if the environment has one,
    /// else the bake (or known-good at once without one).
    pub(super) async fn after_rollout(
        &self,
        record: ReleaseRecord,
        head: &LaneHead,
        now: u64,
    ) -> Result<Outcome, EngineError> {
        match record.verify_task_definition.clone() {
            Some(task_definition) => self.start_verify(record, &task_definition, now).await,
            None => self.bake_or_succeed(record, Some(head), now).await,
        }
    }

    /// RunTask of the smoke test, launched like the first service; DEPLOYING →
    /// VERIFYING with its task. A duplicate that loses the transition stops its task.
    async fn start_verify(
        &self,
        record: ReleaseRecord,
        task_definition: &str,
        now: u64,
    ) -> Result<Outcome, EngineError> {
        let env = self.environment_of(&record.lane.app, &record.lane.env)?;
        let timeout = env
            .verify
            .as_ref()
            .map(|v| v.timeout.as_secs())
            .unwrap_or(0);
        let first = record.services.iter().take(1).cloned().collect::<Vec<_>>();
        let services = self.ecs.describe_services(&record.cluster, &first).await?;
        let Some(like) = services.found.first() else {
            let reason = "smoke test: no service to copy launch settings from".to_owned();
            return self.failed_after_rollout_outcome(&record, reason).await;
        };
        let task = match self.run_for_release(&record, task_definition, like).await {
            Ok(task) => task,
            Err(e) if e.retryable => return Err(self.interrupt(&record, e).await),
            Err(e) => {
                let reason = format!("starting the smoke test: {e}");
                return self.failed_after_rollout_outcome(&record, reason).await;
            }
        };
        tracing::info!(release = %record.id, %task, like = %like.name(), "smoke test started");
        let update = ReleaseUpdate {
            verify_task: Some(task.clone()),
            verify_deadline: Some(now + timeout),
            ..ReleaseUpdate::default()
        };
        let guard = Transition::StartVerify.guard();
        let Some(verifying) = self.ledger.update(&record.id, guard, update).await? else {
            let reason = "ferry: the release moved on before its smoke test could count";
            self.stop_quietly(&record.cluster, &task, reason).await;
            return Ok(Outcome::Duplicate {
                state: record.state,
            });
        };
        let event = event_for(&verifying, Some(record.state), ReleaseState::Verifying);
        self.emit(vec![event]).await;
        Ok(Outcome::Verifying { task })
    }

    /// The smoke test passed (or there is none): the bake.
    pub(super) async fn start_bake(
        &self,
        record: ReleaseRecord,
        now: u64,
    ) -> Result<Outcome, EngineError> {
        self.bake_or_succeed(record, None, now).await
    }

    /// The bake window; a timer for its end and BAKING, or known-good at once
    /// when the window is zero.
    async fn bake_or_succeed(
        &self,
        record: ReleaseRecord,
        head: Option<&LaneHead>,
        now: u64,
    ) -> Result<Outcome, EngineError> {
        let env = self.environment_of(&record.lane.app, &record.lane.env)?;
        let alarms = match env.bake {
            Bake::FromAlarms if !env.alarms.is_empty() => self.alarms.describe(&env.alarms).await?,
            _ => Vec::new(),
        };
        let window = bake_window(env.bake, env.alarms.len(), &alarms).as_secs();
        if window == 0 {
            let head = match head {
                Some(head) => head.clone(),
                None => self.ledger.head(&record.lane).await?.unwrap_or_default(),
            };
            return self.succeed(&record, &head, None).await;
        }
        let until = now + window;
        if let Err(e) = self.timers.end_bake_at(&record.id, until).await {
            return Err(self.interrupt(&record, e).await);
        }
        let update = ReleaseUpdate {
            bake_ends_at: Some(until),
            ..ReleaseUpdate::default()
        };
        let guard = Transition::StartBake.guard();
        let Some(baking) = self.ledger.update(&record.id, guard, update).await? else {
            return Ok(Outcome::Duplicate {
                state: record.state,
            });
        };
        tracing::info!(release = %record.id, window, until, "baking");
        let event = event_for(&baking, Some(record.state), ReleaseState::Baking);
        self.emit(vec![event]).await;
        Ok(Outcome::Baking { until })
    }

    /// The bake's timer fired (once, twice, or late): judge a release still baking.
    pub async fn on_bake_ended(&self, id: &ReleaseId, _now: u64) -> Result<Decision, EngineError> {
        let decision = |outcome| Decision::about(id.app(), id.env(), Some(id.as_str()), outcome);
        let Some(record) = self.ledger.release(id).await? else {
            return Ok(decision(Outcome::Ignored {
                reason: format!("release {id} is not in the ledger"),
            }));
        };
        let outcome = Box::pin(self.end_bake(record)).await?;
        Ok(decision(outcome))
    }

    /// An operator ends the bake of the release in flight now; the alarms are
    /// judged as at the timer.
    pub async fn bless(&self, request: &BlessRequest) -> Result<Vec<Decision>, EngineError> {
        let env = self.environment_of(&request.app, &request.environment)?;
        let mut decisions = Vec::new();
        for repository in env.repositories() {
            if request
                .repository
                .as_deref()
                .is_some_and(|r| r != repository)
            {
                continue;
            }
            let lane = Lane {
                app: env.app.clone(),
                env: env.name.clone(),
                repository: repository.to_owned(),
            };
            let head = self.ledger.head(&lane).await?.unwrap_or_default();
            let Some(in_flight) = head.in_flight else {
                continue;
            };
            let Some(record) = self.ledger.release(&in_flight.id).await? else {
                continue;
            };
            if record.state != ReleaseState::Baking {
                return Err(EngineError::BadRequest(format!(
                    "release {} in {lane} is {}, not baking; there is no bake to end",
                    record.id, record.state
                )));
            }
            let outcome = self.end_bake(record).await?;
            decisions.push(Decision::about(
                &lane.app,
                &lane.env,
                Some(in_flight.id.as_str()),
                outcome,
            ));
        }
        if decisions.is_empty() {
            return Err(EngineError::BadRequest(format!(
                "no release is baking in {}/{}",
                env.app, env.name
            )));
        }
        Ok(decisions)
    }

    /// Reads the guarding alarms and the lane head; known-good, or rolled back.
    async fn end_bake(&self, record: ReleaseRecord) -> Result<Outcome, EngineError> {
        if let BakeEnd::LabelOwed = decide_bake_end(&record) {
            // The release succeeded at an earlier delivery whose label failed.
            let paid = self.pay_owed_label(&record).await?;
            return Ok(paid.unwrap_or(Outcome::Duplicate {
                state: record.state,
            }));
        }
        if let BakeEnd::NotBaking(state) = decide_bake_end(&record) {
            tracing::info!(release = %record.id, %state, "bake timer for a release no longer baking; nothing to do");
            return Ok(Outcome::Duplicate { state });
        }
        let env = self.environment_of(&record.lane.app, &record.lane.env)?;
        let (alarms, head) = futures_util::join!(
            self.alarms.describe(&env.alarms),
            self.ledger.head(&record.lane),
        );
        let (alarms, head): (Vec<AlarmStatus>, _) = (alarms?, head?.unwrap_or_default());
        let started = record.rollout_started_at.unwrap_or(record.created_at);
        match judge_bake(&alarms, started) {
            BakeVerdict::Pass { notes } => {
                let notes = (!notes.is_empty()).then(|| notes.join("; "));
                self.succeed(&record, &head, notes).await
            }
            BakeVerdict::RollBack { alarm, reason } => {
                tracing::warn!(release = %record.id, %alarm, %reason, "alarm raised during the bake");
                let cause = RollbackCause::Alarm { alarm, reason };
                Ok(Box::pin(self.roll_back(&record.lane, &cause))
                    .await?
                    .outcome)
            }
        }
    }

    /// A deployment or the smoke test failed after the services were out: every
    /// service goes back to known-good; a lane's first release has none, and fails.
    pub(super) async fn failed_after_rollout(
        &self,
        lane: &Lane,
        record: &ReleaseRecord,
        reason: String,
    ) -> Result<Decision, EngineError> {
        let cause = RollbackCause::DeploymentFailed {
            release: record.id.clone(),
            reason: reason.clone(),
        };
        let rolled = Box::pin(self.roll_back(lane, &cause)).await?;
        let Outcome::Refused { reason: why } = &rolled.outcome else {
            return Ok(rolled);
        };
        tracing::error!(release = %record.id, %why, "no rollback possible; failing the release");
        let outcome = self.fail_release(record, reason, false).await?;
        Ok(Decision::about(
            &lane.app,
            &lane.env,
            Some(record.id.as_str()),
            outcome,
        ))
    }

    pub(super) async fn failed_after_rollout_outcome(
        &self,
        record: &ReleaseRecord,
        reason: String,
    ) -> Result<Outcome, EngineError> {
        let lane = record.lane.clone();
        Ok(self
            .failed_after_rollout(&lane, record, reason)
            .await?
            .outcome)
    }
}
