//! Deployment finished → when every service of the release has completed, the
//! release succeeds and becomes the lane's known-good release; a failed
//! deployment rolls the whole release back.

use super::{event_for, Decision, Engine, EngineError, Outcome, Ports, KNOWN_GOOD_LABEL};
use crate::decide::deployment::{after_mark, label_still_owed, why_unmarked, AfterMark, Unmarked};
use crate::decide::known_good_history;
use crate::ports::{
    HeadChange, KnownGoodRelease, Lane, LaneHead, Ledger, Parameters, ReleasePointer,
    ReleaseRecord, ReleaseUpdate,
};
use crate::release::{ReleaseId, ReleaseState, Transition};
use crate::rollback::RollbackCause;

pub use crate::decide::deployment::{DeploymentChange, DeploymentOutcome};

impl<P: Ports> Engine<P> {
    pub async fn on_deployment(
        &self,
        change: &DeploymentChange,
        _now: u64,
    ) -> Result<Decision, EngineError> {
        let Some(lane) = self.lane_of_service(&change.cluster, &change.service) else {
            return Ok(Decision::ignored(format!(
                "service {}/{} is not managed by ferry",
                change.cluster, change.service
            )));
        };

        // Round trip 1: the lane's in-flight release.
        let head = self.ledger.head(&lane).await?.unwrap_or_default();
        let Some(in_flight) = head.in_flight.clone() else {
            if let Some(outcome) = self.owed_label(change, &head).await? {
                return Ok(Decision::about(
                    &lane.app,
                    &lane.env,
                    head.known_good.as_ref().map(|k| k.id.as_str()),
                    outcome,
                ));
            }
            return Ok(Decision::about(
                &lane.app,
                &lane.env,
                None,
                Outcome::Ignored {
                    reason: format!(
                        "no release in flight in {lane}; deployment {} is not ferry's",
                        change.deployment_id
                    ),
                },
            ));
        };
        let id = in_flight.id;
        let decision = |outcome| Decision::about(&lane.app, &lane.env, Some(id.as_str()), outcome);

        // Round trip 2 (the common case): mark the service completed, conditional
        // on the release deploying and having started exactly this deployment.
        let marked = match change.outcome {
            DeploymentOutcome::Completed => {
                let update = ReleaseUpdate {
                    completed_service: Some(change.service.clone()),
                    if_deployment: Some((change.service.clone(), change.deployment_id.clone())),
                    ..ReleaseUpdate::default()
                };
                self.ledger
                    .update(&id, ReleaseState::Deploying.stays(), update)
                    .await?
            }
            DeploymentOutcome::Failed => None,
        };
        let outcome = match marked {
            Some(record) => match after_mark(&record) {
                AfterMark::Progress { completed, pending } => {
                    Outcome::Progress { completed, pending }
                }
                AfterMark::Complete => self.succeed(&record, &head).await?,
            },
            None => return self.unmarked(change, &lane, &id).await,
        };
        Ok(decision(outcome))
    }

    fn lane_of_service(&self, cluster: &str, service: &str) -> Option<Lane> {
        self.config.environments().find_map(|env| {
            (env.cluster == cluster)
                .then(|| env.services.iter().find(|s| s.name == service))
                .flatten()
                .map(|s| Lane {
                    app: env.app.clone(),
                    env: env.name.clone(),
                    repository: s.repository.clone(),
                })
        })
    }

    /// The mark did not apply, or the deployment failed: read the release and say why.
    async fn unmarked(
        &self,
        change: &DeploymentChange,
        lane: &Lane,
        id: &ReleaseId,
    ) -> Result<Decision, EngineError> {
        let decision = |outcome| Decision::about(&lane.app, &lane.env, Some(id.as_str()), outcome);
        let Some(record) = self.ledger.release(id).await? else {
            return Err(EngineError::NotReady(id.to_string()));
        };
        match why_unmarked(change, &record) {
            Unmarked::Ignore(reason) => Ok(decision(Outcome::Ignored { reason })),
            Unmarked::NotReady => Err(EngineError::NotReady(id.to_string())),
            Unmarked::RollBack(reason) => {
                tracing::error!(release = %id, %reason, "deployment failed; rolling the whole release back");
                // Every service of the release goes back, the ones that completed too.
                let cause = RollbackCause::DeploymentFailed {
                    release: id.clone(),
                    reason: reason.clone(),
                };
                let rolled = self.roll_back(lane, &cause).await?;
                let Outcome::Refused { reason: why } = &rolled.outcome else {
                    return Ok(rolled);
                };
                // Nothing known-good to go back to (a lane's first release): the
                // release fails, frees the lane, and never becomes known-good.
                tracing::error!(release = %id, %why, "no rollback possible; failing the release");
                let outcome = self.fail_release(&record, reason, false).await?;
                Ok(decision(outcome))
            }
        }
    }

    /// Round trip 3: succeed, atomically with the lane's known-good pointer and
    /// its (bounded) history; round trip 4: label the SSM version ∥ the event.
    async fn succeed(
        &self,
        record: &ReleaseRecord,
        head: &LaneHead,
    ) -> Result<Outcome, EngineError> {
        let newest = KnownGoodRelease {
            id: record.id.clone(),
            tag: record.tag.clone(),
            digest: record.digest.clone(),
            task_definitions: record.task_definitions.clone(),
        };
        let change = HeadChange::KnownGood {
            pointer: ReleasePointer {
                id: record.id.clone(),
                tag: record.tag.clone(),
                digest: record.digest.clone(),
            },
            history: known_good_history(&head.history, newest),
        };
        let settled = self
            .ledger
            .settle(
                record,
                Transition::Complete.guard(),
                ReleaseUpdate::default(),
                change,
            )
            .await?;
        if !settled {
            return Ok(Outcome::Duplicate {
                state: ReleaseState::Succeeded,
            });
        }
        tracing::info!(release = %record.id, tag = %record.tag, "release succeeded; known-good");
        let label = async {
            match record.parameter_version {
                Some(version) => {
                    let parameter = self.parameter_of(&record.lane)?;
                    self.params
                        .label(&parameter, version, KNOWN_GOOD_LABEL)
                        .await
                }
                None => Ok(()),
            }
        };
        let event = event_for(
            record,
            Some(ReleaseState::Deploying),
            ReleaseState::Succeeded,
        );
        let (labelled, ()) = futures_util::join!(label, self.emit(vec![event]));
        if let Err(e) = labelled {
            let guard = ReleaseState::Succeeded.stays();
            return Err(self.interrupt_in(record, guard, e).await);
        }
        Ok(Outcome::Succeeded)
    }

    /// The label a succeeded release still owes its SSM version, when its
    /// invocation failed after the success was recorded.
    async fn owed_label(
        &self,
        change: &DeploymentChange,
        head: &LaneHead,
    ) -> Result<Option<Outcome>, EngineError> {
        let (Some(good), DeploymentOutcome::Completed) = (&head.known_good, change.outcome) else {
            return Ok(None);
        };
        let Some(record) = self.ledger.release(&good.id).await? else {
            return Ok(None);
        };
        if !label_still_owed(change, &record) {
            return Ok(None);
        }
        let resume = ReleaseUpdate {
            resume: true,
            ..ReleaseUpdate::default()
        };
        let guard = ReleaseState::Succeeded.stays();
        if self
            .ledger
            .update(&record.id, guard, resume)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        if let Some(version) = record.parameter_version {
            let parameter = self.parameter_of(&record.lane)?;
            if let Err(e) = self
                .params
                .label(&parameter, version, KNOWN_GOOD_LABEL)
                .await
            {
                return Err(self.interrupt_in(&record, guard, e).await);
            }
        }
        Ok(Some(Outcome::Succeeded))
    }
}
