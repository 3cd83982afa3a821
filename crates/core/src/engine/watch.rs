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

pub use crate::decide::deployment::{DeploymentChange, DeploymentOutcome};

impl<P: Ports> Engine<P> {
    pub async fn on_deployment(
        &self,
        change: &DeploymentChange,
        now: u64,
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
                AfterMark::Complete => Box::pin(self.after_rollout(record, &head, now)).await?,
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
                Box::pin(self.failed_after_rollout(lane, &record, reason)).await
            }
        }
    }

    /// Succeed, atomically with the lane's known-good pointer and its (bounded)
    /// history; then label the SSM version ∥ the event (with `notes`, if any).
    pub(super) async fn succeed(
        &self,
        record: &ReleaseRecord,
        head: &LaneHead,
        notes: Option<String>,
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
                ReleaseUpdate {
                    reason: notes.clone(),
                    ..ReleaseUpdate::default()
                },
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
        let mut succeeded = record.clone();
        succeeded.reason = notes;
        let event = event_for(&succeeded, Some(record.state), ReleaseState::Succeeded);
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
        self.pay_owed_label(&record).await
    }

    /// Labels the SSM version of a succeeded release whose label failed, once:
    /// the redelivery that clears the release's mark does it.
    pub(super) async fn pay_owed_label(
        &self,
        record: &ReleaseRecord,
    ) -> Result<Option<Outcome>, EngineError> {
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
                return Err(self.interrupt_in(record, guard, e).await);
            }
        }
        Ok(Some(Outcome::Succeeded))
    }
}
