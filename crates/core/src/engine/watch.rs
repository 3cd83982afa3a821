//! Deployment finished → when every service of the release has completed, the
//! release succeeds and becomes the lane's known-good release.

use super::{event_for, Decision, Engine, EngineError, Outcome, KNOWN_GOOD_LABEL};
use crate::ports::{
    Ecs, EventSink, HeadChange, Lane, Ledger, Parameters, Registry, ReleasePointer, ReleaseUpdate,
    RollbackLedger, SecretsCheck,
};
use crate::release::ReleaseState;
use crate::rollback::RollbackCause;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentOutcome {
    Completed,
    Failed,
}

/// An ECS Deployment State Change that ends a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentChange {
    pub cluster: String,
    pub service: String,
    pub deployment_id: String,
    pub outcome: DeploymentOutcome,
    pub reason: Option<String>,
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
    pub async fn on_deployment(
        &self,
        change: &DeploymentChange,
        _now: u64,
    ) -> Result<Decision, EngineError> {
        let ignored = |reason: String| Decision::new("", "", None, Outcome::Ignored { reason });
        let Some((env, service)) = self
            .config
            .apps
            .values()
            .flat_map(|a| a.environments.values())
            .find_map(|env| {
                (env.cluster == change.cluster)
                    .then(|| env.services.iter().find(|s| s.name == change.service))
                    .flatten()
                    .map(|s| (env, s))
            })
        else {
            return Ok(ignored(format!(
                "service {}/{} is not managed by ferry",
                change.cluster, change.service
            )));
        };
        let lane = Lane {
            app: env.app.clone(),
            env: env.name.clone(),
            repository: service.repository.clone(),
        };

        // Round trip 1: the lane's in-flight release.
        let head = self.ledger.head(&lane).await?.unwrap_or_default();
        let Some(in_flight) = head.in_flight else {
            return Ok(ignored(format!(
                "no release in flight in {lane}; deployment {} is not ferry's",
                change.deployment_id
            )));
        };
        let id = in_flight.id;
        let decision = |outcome| Decision::new(&env.app, &env.name, Some(id.as_str()), outcome);

        // Round trip 2 (the common case): mark the service completed, conditional
        // on the release deploying and having started exactly this deployment.
        let marked = match change.outcome {
            DeploymentOutcome::Completed => {
                self.ledger
                    .update(
                        &id,
                        &[ReleaseState::Deploying],
                        ReleaseUpdate {
                            completed_service: Some(change.service.clone()),
                            if_deployment: Some((
                                change.service.clone(),
                                change.deployment_id.clone(),
                            )),
                            ..ReleaseUpdate::default()
                        },
                    )
                    .await?
            }
            DeploymentOutcome::Failed => None,
        };
        let record = match marked {
            Some(record) => record,
            None => {
                // Why not: read the release and say.
                let Some(record) = self.ledger.release(&id).await? else {
                    return Err(EngineError::NotReady(id.to_string()));
                };
                if record.state != ReleaseState::Deploying {
                    return Ok(decision(Outcome::Ignored {
                        reason: format!("release {id} is {}, not deploying", record.state.as_str()),
                    }));
                }
                match record.deployments.get(&change.service) {
                    None => return Err(EngineError::NotReady(id.to_string())),
                    Some(d) if d != &change.deployment_id => {
                        return Ok(decision(Outcome::Ignored {
                            reason: format!(
                                "deployment {} of {} is not the one release {id} started ({d})",
                                change.deployment_id, change.service
                            ),
                        }))
                    }
                    Some(_) if change.outcome == DeploymentOutcome::Completed => {
                        // Changed between the two calls; the redelivery decides.
                        return Err(EngineError::NotReady(id.to_string()));
                    }
                    Some(_) => {}
                }
                let reason = format!(
                    "deployment {} of service {} failed: {}",
                    change.deployment_id,
                    change.service,
                    change.reason.as_deref().unwrap_or("no reason given")
                );
                tracing::error!(release = %id, %reason, "deployment failed; rolling the whole release back");
                // Every service of the release goes back, the ones that completed too.
                let rolled = self
                    .roll_back(
                        &lane,
                        &RollbackCause::DeploymentFailed {
                            release: id.clone(),
                            reason: reason.clone(),
                        },
                    )
                    .await?;
                if let Outcome::Refused { reason: why } = &rolled.outcome {
                    // Nothing known-good to go back to (a lane's first release): the
                    // release fails, frees the lane, and never becomes known-good.
                    tracing::error!(release = %id, %why, "no rollback possible; failing the release");
                    let outcome = self
                        .fail_release(&record, &[ReleaseState::Deploying], reason, false)
                        .await?;
                    return Ok(decision(outcome));
                }
                return Ok(rolled);
            }
        };
        let pending: Vec<String> = record
            .services
            .iter()
            .filter(|s| !record.completed_services.contains(*s))
            .cloned()
            .collect();
        if !pending.is_empty() {
            return Ok(decision(Outcome::Progress {
                completed: record.completed_services.iter().cloned().collect(),
                pending,
            }));
        }

        // Round trip 3: succeed, atomically with the lane's known-good pointer.
        let settled = self
            .ledger
            .settle(
                &record,
                &[ReleaseState::Deploying],
                ReleaseUpdate {
                    state: Some(ReleaseState::Succeeded),
                    ..ReleaseUpdate::default()
                },
                HeadChange::KnownGood(ReleasePointer {
                    id: id.clone(),
                    tag: record.tag.clone(),
                }),
            )
            .await?;
        if !settled {
            return Ok(decision(Outcome::Duplicate {
                state: ReleaseState::Succeeded.as_str().to_owned(),
            }));
        }
        tracing::info!(release = %id, tag = %record.tag, "release succeeded; known-good");
        // Round trip 4: label the SSM version ∥ tell the world.
        let label = async {
            match record.parameter_version {
                Some(version) => {
                    self.params
                        .label(&env.image_tag_parameter, version, KNOWN_GOOD_LABEL)
                        .await
                }
                None => Ok(()),
            }
        };
        let (labelled, ()) = futures_util::join!(
            label,
            self.emit(vec![event_for(
                &record,
                Some(ReleaseState::Deploying),
                ReleaseState::Succeeded
            )])
        );
        labelled?;
        Ok(decision(Outcome::Succeeded))
    }
}
