//! Migration stopped → roll out, or fail the release and restore the SSM tag.
//!
//! Round trips on the happy path: 1. read the release; 2. conditional
//! Migrating → Deploying (the supersede guard: exactly one event or release wins);
//! 3. UpdateService on every service concurrently; 4. record deployment ids.

use super::{
    event_for, fan_out, Decision, Engine, EngineError, Outcome, UPDATE_SERVICE_CONCURRENCY,
};
use crate::ports::{
    Ecs, EventSink, Ledger, Parameters, Registry, ReleaseRecord, ReleaseUpdate, SecretsCheck,
};
use crate::release::{judge_migration, MigrationVerdict, ReleaseId, ReleaseState, StoppedTask};

/// An ECS Task State Change with `lastStatus` STOPPED.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStopped {
    pub task_arn: String,
    pub started_by: Option<String>,
    pub task: StoppedTask,
}

impl<L, E, P, S, R, V> Engine<L, E, P, S, R, V>
where
    L: Ledger,
    E: Ecs,
    P: Parameters,
    S: SecretsCheck,
    R: Registry,
    V: EventSink,
{
    pub async fn on_task_stopped(
        &self,
        stopped: &TaskStopped,
        _now: u64,
    ) -> Result<Decision, EngineError> {
        let Some(id) = stopped
            .started_by
            .as_deref()
            .and_then(ReleaseId::from_started_by)
        else {
            return Ok(Decision::new(
                "",
                "",
                None,
                Outcome::Ignored {
                    reason: format!("task {} was not started by ferry", stopped.task_arn),
                },
            ));
        };
        let decision = |outcome| Decision::new(id.app(), id.env(), Some(id.as_str()), outcome);

        // Round trip 1.
        let Some(record) = self.ledger.release(&id).await? else {
            tracing::warn!(release = %id, task = %stopped.task_arn, "task names a release the ledger does not know; ignored");
            return Ok(decision(Outcome::Ignored {
                reason: format!("release {id} is not in the ledger"),
            }));
        };
        match record.state {
            ReleaseState::Migrating => {}
            ReleaseState::Claimed => return Err(EngineError::NotReady(id.to_string())),
            ReleaseState::Deploying
                if stopped.task_arn.as_str()
                    == record.migration_task.as_deref().unwrap_or_default()
                    // The first rollout finished and recorded its failures; a
                    // duplicate arriving while it is under way finds no reason yet.
                    && record.reason.is_some()
                    && record
                        .task_definitions
                        .keys()
                        .any(|s| !record.deployments.contains_key(s)) =>
            {
                // A redelivery after some UpdateService calls failed: finish the rollout.
                tracing::warn!(release = %id, "resuming a rollout that left services behind");
                return self.roll_out(record).await.map(decision);
            }
            other => {
                tracing::info!(release = %id, state = other.as_str(), "migration stopped after the release moved on; nothing to do");
                let outcome = match other {
                    ReleaseState::Superseded => Outcome::Superseded,
                    _ => Outcome::Duplicate {
                        state: other.as_str().to_owned(),
                    },
                };
                return Ok(decision(outcome));
            }
        }
        match &record.migration_task {
            None => return Err(EngineError::NotReady(id.to_string())),
            Some(task) if task != &stopped.task_arn => {
                return Ok(decision(Outcome::Ignored {
                    reason: format!(
                        "task {} is not the release's migration task {task}",
                        stopped.task_arn
                    ),
                }))
            }
            Some(_) => {}
        }

        let verdict = judge_migration(
            &stopped.task,
            &record.migration_essential_containers,
            record.migration_deadline,
        );
        if let MigrationVerdict::Failed { reason } = verdict {
            tracing::warn!(release = %id, %reason, "migration failed; services untouched, restoring the image tag");
            let outcome = self
                .fail_release(&record, &[ReleaseState::Migrating], reason, true)
                .await?;
            return Ok(decision(outcome));
        }

        // Round trip 2: the guard. A superseding claim or a duplicate event makes
        // this condition fail, and then no service is touched.
        let Some(record) = self
            .ledger
            .update(
                &id,
                &[ReleaseState::Migrating],
                ReleaseUpdate {
                    state: Some(ReleaseState::Deploying),
                    ..ReleaseUpdate::default()
                },
            )
            .await?
        else {
            tracing::info!(release = %id, "release moved on while its migration stopped; not rolling out");
            return Ok(decision(Outcome::Superseded));
        };

        // Round trips 3–4: every service at once, then record the deployments.
        let event = event_for(
            &record,
            Some(ReleaseState::Migrating),
            ReleaseState::Deploying,
        );
        let (outcome, ()) = futures_util::join!(self.roll_out(record), self.emit(vec![event]));
        outcome.map(decision)
    }

    /// UpdateService on every service of the release that has no deployment
    /// yet, concurrently; records the deployment ids (merged with earlier ones).
    async fn roll_out(&self, record: ReleaseRecord) -> Result<Outcome, EngineError> {
        let id = &record.id;
        let rollout: Vec<(String, String)> = record
            .task_definitions
            .iter()
            .filter(|(s, _)| !record.deployments.contains_key(*s))
            .map(|(s, a)| (s.clone(), a.clone()))
            .collect();
        let cluster = &record.cluster;
        let updated = fan_out(
            rollout,
            UPDATE_SERVICE_CONCURRENCY,
            |(service, arn)| async move {
                self.ecs
                    .update_service(cluster, &service, &arn)
                    .await
                    .map(|deployment| (service, deployment))
            },
        )
        .await;
        let mut deployments = record.deployments.clone();
        let mut failures = Vec::new();
        for result in updated {
            match result {
                Ok((service, deployment)) => {
                    deployments.insert(service, deployment);
                }
                Err(e) => failures.push(e),
            }
        }
        let recorded = self
            .ledger
            .update(
                id,
                &[ReleaseState::Deploying],
                ReleaseUpdate {
                    deployments: Some(deployments.clone()),
                    reason: (!failures.is_empty()).then(|| {
                        failures
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    }),
                    ..ReleaseUpdate::default()
                },
            )
            .await?;
        if recorded.is_none() {
            // The release left DEPLOYING while its UpdateService calls were on
            // their way (a rollback landed in between): put back what they changed.
            self.undo_rollout(&record, &deployments).await?;
            return Ok(Outcome::Superseded);
        }
        if let Some(first) = failures.into_iter().next() {
            // Retryable: the redelivered event resumes the rollout (see above).
            tracing::error!(release = %id, error = %first, "UpdateService failed for some services");
            return Err(first.into());
        }
        tracing::info!(release = %id, ?deployments, "services updated");
        Ok(Outcome::Deploying {
            deployments: deployments.into_values().collect(),
        })
    }

    /// Puts the services a late rollout touched back on the lane's known-good
    /// revisions, unless a newer release is in flight (its rollout owns them).
    async fn undo_rollout(
        &self,
        record: &ReleaseRecord,
        touched: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        let head = self.ledger.head(&record.lane).await?.unwrap_or_default();
        let (None, Some(good)) = (&head.in_flight, head.history.first()) else {
            return Ok(());
        };
        tracing::warn!(release = %record.id, to = %good.id, "undoing a rollout that landed after a rollback");
        let restore: Vec<(String, String)> = touched
            .keys()
            .filter_map(|s| good.task_definitions.get(s).map(|a| (s.clone(), a.clone())))
            .collect();
        let cluster = &record.cluster;
        let restored = fan_out(
            restore,
            UPDATE_SERVICE_CONCURRENCY,
            |(service, arn)| async move { self.ecs.restore_service(cluster, &service, &arn).await },
        )
        .await;
        for result in restored {
            result?;
        }
        Ok(())
    }
}
