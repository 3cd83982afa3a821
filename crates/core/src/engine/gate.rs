//! Migration stopped → roll out, or fail the release and restore the SSM tag.
//!
//! Round trips on the happy path: 1. read the release; 2. conditional
//! Migrating → Deploying (the supersede guard: exactly one event or release wins);
//! 3. UpdateService on every service concurrently; 4. record deployment ids.

use super::{event_for, Decision, Engine, EngineError, Outcome, Ports};
use crate::decide::stopped::{decide_stopped, StoppedPlan};
use crate::ports::{Ledger, ReleaseRecord, ReleaseUpdate};
use crate::release::{ReleaseId, ReleaseState, StoppedTask, Transition};

/// An ECS Task State Change with `lastStatus` STOPPED.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStopped {
    pub task_arn: String,
    pub started_by: Option<String>,
    pub task: StoppedTask,
}

impl<P: Ports> Engine<P> {
    pub async fn on_task_stopped(
        &self,
        stopped: &TaskStopped,
        now: u64,
    ) -> Result<Decision, EngineError> {
        let Some(id) = stopped
            .started_by
            .as_deref()
            .and_then(ReleaseId::from_started_by)
        else {
            return Ok(Decision::ignored(format!(
                "task {} was not started by ferry",
                stopped.task_arn
            )));
        };
        let decision = |outcome| Decision::about(id.app(), id.env(), Some(id.as_str()), outcome);

        // Round trip 1.
        let Some(record) = self.ledger.release(&id).await? else {
            tracing::warn!(release = %id, task = %stopped.task_arn, "task names a release the ledger does not know; ignored");
            return Ok(decision(Outcome::Ignored {
                reason: format!("release {id} is not in the ledger"),
            }));
        };
        let outcome = match decide_stopped(&stopped.task_arn, &stopped.task, &record) {
            StoppedPlan::Ignore(reason) => Outcome::Ignored { reason },
            StoppedPlan::NotReady => return Err(EngineError::NotReady(id.to_string())),
            StoppedPlan::AlreadyDone(ReleaseState::Superseded) => Outcome::Superseded,
            StoppedPlan::AlreadyDone(state) => {
                tracing::info!(release = %id, %state, "migration stopped after the release moved on; nothing to do");
                Outcome::Duplicate { state }
            }
            StoppedPlan::Fail(reason) => {
                tracing::warn!(release = %id, %reason, "migration failed; services untouched, restoring the image tag");
                self.fail_release(&record, reason, true).await?
            }
            StoppedPlan::RollOut => Box::pin(self.pass_migration(record, now)).await?,
            StoppedPlan::ResumeRollout => self.resume_rollout(record, now).await?,
            StoppedPlan::PassVerify => Box::pin(self.start_bake(record, now)).await?,
            StoppedPlan::FailVerify(reason) => {
                let lane = record.lane.clone();
                return Box::pin(self.failed_after_rollout(&lane, &record, reason)).await;
            }
        };
        Ok(decision(outcome))
    }

    /// Round trip 2: the guard. A superseding claim or a duplicate event makes
    /// this condition fail, and then no service is touched. Round trips 3–4: the rollout.
    async fn pass_migration(
        &self,
        record: ReleaseRecord,
        now: u64,
    ) -> Result<Outcome, EngineError> {
        let transition = Transition::PassMigration;
        let update = ReleaseUpdate::default().entering(transition, now);
        let Some(record) = self
            .ledger
            .update(&record.id, transition.guard(), update)
            .await?
        else {
            tracing::info!(release = %record.id, "release moved on while its migration stopped; not rolling out");
            return Ok(Outcome::Superseded);
        };
        let event = event_for(
            &record,
            Some(ReleaseState::Migrating),
            ReleaseState::Deploying,
        );
        self.roll_out(record, vec![event], now, false).await
    }

    /// A redelivery after some UpdateService calls failed: the one delivery that
    /// takes the resumption finishes the rollout.
    async fn resume_rollout(
        &self,
        record: ReleaseRecord,
        now: u64,
    ) -> Result<Outcome, EngineError> {
        let resume = ReleaseUpdate {
            resume: true,
            ..ReleaseUpdate::default()
        };
        let Some(record) = self
            .ledger
            .update(&record.id, ReleaseState::Deploying.stays(), resume)
            .await?
        else {
            return Ok(Outcome::Duplicate {
                state: record.state,
            });
        };
        tracing::warn!(release = %record.id, "resuming a rollout that left services behind");
        self.roll_out(record, Vec::new(), now, true).await
    }
}
