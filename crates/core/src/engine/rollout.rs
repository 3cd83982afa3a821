//! The rollout, once for both paths that reach it (ferry-gate after a passing
//! migration, ferry-deploy when the lane has none): UpdateService on every
//! service without a deployment yet, the image tag if not yet written, then one
//! conditional record. A rollout that lost its release to a rollback is undone.

use std::collections::BTreeMap;

use super::{
    fan_out, Engine, EngineError, Outcome, Ports, DESCRIBE_CONCURRENCY, UPDATE_SERVICE_CONCURRENCY,
};
use crate::decide::deployment::resumed_rollout;
use crate::decide::put_back::{
    follow_restored_deployments, off_known_good, put_back_target, services_to_put_back,
    successor_services_to_restore,
};
use crate::image::RELEASE_TAG;
use crate::ports::{
    Ecs, Ledger, PortError, ReleaseEvent, ReleaseRecord, ReleaseUpdate, ServiceView,
    TaskDefinitionView,
};
use crate::release::ReleaseState;

impl<P: Ports> Engine<P> {
    /// Rolls out every service of a DEPLOYING release that has no deployment
    /// yet. Any failure marks the release interrupted and fails the invocation,
    /// so the redelivered event finishes the rollout (`resumed`: without writing
    /// the image tag a second time).
    pub(super) async fn roll_out(
        &self,
        record: ReleaseRecord,
        events: Vec<ReleaseEvent>,
        now: u64,
        resumed: bool,
    ) -> Result<Outcome, EngineError> {
        let id = &record.id;
        let mut pending: Vec<(String, String)> = record
            .task_definitions
            .iter()
            .filter(|(s, _)| !record.deployments.contains_key(*s))
            .map(|(s, a)| (s.clone(), a.clone()))
            .collect();
        let cluster = &record.cluster;
        let mut started = record.deployments.clone();
        if resumed && !pending.is_empty() {
            // UpdateService takes no idempotency token: what the interrupted
            // attempt started is read back, not started a second time; a
            // deployment of it that ECS rolled back is not repeated either.
            let names: Vec<String> = pending.iter().map(|(s, _)| s.clone()).collect();
            let services = match self.ecs.describe_services(cluster, &names).await {
                Ok(services) => services,
                Err(e) => return Err(self.interrupt(&record, e).await),
            };
            let found = resumed_rollout(
                &pending,
                services.found.iter().map(|s| (s.name(), s.deployments())),
                record.rollout_started_at,
            );
            if let Some(reason) = found.overtaken_reason() {
                tracing::error!(release = %id, %reason, "a service moved on since the rollout began; rolling the release back");
                return Box::pin(self.failed_after_rollout_outcome(&record, reason)).await;
            }
            pending.retain(|(s, _)| !found.adopted.contains_key(s));
            started.extend(found.adopted);
        }
        let put_parameter = async {
            match record.parameter_version {
                Some(_) => None,
                None => Some(self.write_tag_once(&record.lane, &record.tag).await),
            }
        };
        let (updated, put) = futures_util::join!(
            fan_out(
                pending,
                UPDATE_SERVICE_CONCURRENCY,
                |(service, arn)| async move {
                    let result = self.ecs.update_service(cluster, &service, &arn).await;
                    result.map(|deployment| (service, deployment))
                }
            ),
            put_parameter,
        );
        let wrote_parameter = matches!(put, Some(Ok(_)));
        let (deployments, parameter_version, failures) = fold_rollout(started, updated, put);
        let update = ReleaseUpdate {
            task_definitions: Some(record.task_definitions.clone()),
            verify_task_definition: record.verify_task_definition.clone(),
            verify_essential_containers: Some(record.verify_essential_containers.clone()),
            rollout_started_at: Some(record.rollout_started_at.unwrap_or(now)),
            deployments: Some(deployments.clone()),
            parameter_version,
            interrupted: (!failures.is_empty()).then(|| describe(&failures)),
            ..ReleaseUpdate::default()
        };
        let (recorded, ()) = futures_util::join!(
            self.ledger
                .update(id, ReleaseState::Deploying.stays(), update),
            self.emit(events),
        );
        if recorded?.is_none() {
            // The release left DEPLOYING while its calls were on their way (a
            // rollback or a newer release landed in between): put back what they changed.
            self.undo_rollout(&record, &deployments, wrote_parameter)
                .await?;
            return Ok(Outcome::Superseded);
        }
        if let Some(first) = failures.into_iter().next() {
            tracing::error!(release = %id, error = %first, "the rollout left services behind; the redelivered event finishes it");
            return Err(first.into());
        }
        tracing::info!(release = %id, ?deployments, "services updated");
        Ok(Outcome::Deploying {
            deployments: deployments.into_values().collect(),
        })
    }

    /// Puts the services a late rollout touched back: on the lane's known-good
    /// revisions when the lane is idle; on the in-flight successor's revisions
    /// where the successor had already rolled them out (its rollout will not
    /// come back to them). The image tag goes where the head says it belongs
    /// if this rollout wrote it.
    async fn undo_rollout(
        &self,
        record: &ReleaseRecord,
        touched: &BTreeMap<String, String>,
        wrote_parameter: bool,
    ) -> Result<(), EngineError> {
        let head = self.ledger.head(&record.lane).await?.unwrap_or_default();
        if wrote_parameter {
            self.correct_parameter(&record.lane, &head).await?;
        }
        if let Some(successor) = &head.in_flight {
            return self
                .undo_under_successor(record, &successor.id, touched)
                .await;
        }
        let Some(good) = head.history.first() else {
            return Ok(());
        };
        tracing::warn!(release = %record.id, to = %good.id, "undoing a rollout that landed after a rollback");
        let restore: Vec<(String, String)> = touched
            .keys()
            .filter_map(|s| good.task_definitions.get(s).map(|a| (s.clone(), a.clone())))
            .collect();
        self.restore_services(&record.cluster, restore).await?;
        Ok(())
    }

    /// The late rollout of `record` landed while `successor` is in flight.
    async fn undo_under_successor(
        &self,
        record: &ReleaseRecord,
        successor: &crate::release::ReleaseId,
        touched: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        let Some(successor) = self.ledger.release(successor).await? else {
            return Ok(());
        };
        let restore = successor_services_to_restore(&successor, touched.keys());
        if restore.is_empty() {
            return Ok(());
        }
        tracing::warn!(release = %record.id, to = %successor.id, ?restore, "putting back services a late rollout took from the release in flight");
        let services: Vec<String> = restore.iter().map(|(s, _)| s.clone()).collect();
        let deployments = self.restore_services(&record.cluster, restore).await?;
        let restored: Vec<(String, String)> = services.into_iter().zip(deployments).collect();
        if let Some(update) = follow_restored_deployments(&successor, &restored) {
            let followed = self
                .ledger
                .update(&successor.id, ReleaseState::Deploying.stays(), update)
                .await?;
            if followed.is_none() {
                tracing::warn!(release = %successor.id, "the release moved on before it could follow its restored deployments");
            }
        }
        Ok(())
    }

    /// RestoreService on each (service, revision); the deployment ids, in order.
    async fn restore_services(
        &self,
        cluster: &str,
        restore: Vec<(String, String)>,
    ) -> Result<Vec<String>, PortError> {
        fan_out(
            restore,
            UPDATE_SERVICE_CONCURRENCY,
            |(service, arn)| async move { self.ecs.restore_service(cluster, &service, &arn).await },
        )
        .await
        .into_iter()
        .collect()
    }

    /// As `record` fails: the services a release it superseded had rolled
    /// out go back to the known-good revisions (`decide::put_back`). Reads the
    /// head and the services; a service off known-good costs one
    /// DescribeTaskDefinition, and one UpdateService if ferry put it there.
    /// Idempotent: a service already back is left alone.
    pub(super) async fn put_services_back(&self, record: &ReleaseRecord) -> Result<(), PortError> {
        let head = self.ledger.head(&record.lane).await?.unwrap_or_default();
        let Some(good) = put_back_target(&head, &record.id) else {
            return Ok(());
        };
        let services = self
            .ecs
            .describe_services(&record.cluster, &record.services)
            .await?;
        let off = off_known_good(
            good,
            services
                .found
                .iter()
                .map(|s| (s.name(), s.task_definition())),
        );
        if off.is_empty() {
            return Ok(());
        }
        let described = fan_out(off, DESCRIBE_CONCURRENCY, |(service, running)| async move {
            let described = self.ecs.describe_task_definition(&running).await;
            described.map(|d| {
                let release = d.tags().into_iter().find(|(k, _)| k == RELEASE_TAG);
                (service, release.map(|(_, v)| v))
            })
        })
        .await
        .into_iter()
        .collect::<Result<Vec<_>, PortError>>()?;
        let restore = services_to_put_back(good, &described);
        if restore.is_empty() {
            return Ok(());
        }
        tracing::warn!(release = %record.id, to = %good.id, ?restore, "putting back services a superseded release rolled out");
        self.restore_services(&record.cluster, restore).await?;
        Ok(())
    }
}

/// The deployments started (merged with earlier ones), the parameter version
/// written, and every failure, from the rollout's concurrent calls.
type Folded = (BTreeMap<String, String>, Option<i64>, Vec<PortError>);

fn fold_rollout(
    mut deployments: BTreeMap<String, String>,
    updated: Vec<Result<(String, String), PortError>>,
    put: Option<Result<i64, PortError>>,
) -> Folded {
    let mut failures = Vec::new();
    for result in updated {
        match result {
            Ok((service, deployment)) => {
                deployments.insert(service, deployment);
            }
            Err(e) => failures.push(e),
        }
    }
    let parameter_version = match put {
        Some(Ok(version)) => Some(version),
        Some(Err(e)) => {
            failures.push(e);
            None
        }
        None => None,
    };
    (deployments, parameter_version, failures)
}

fn describe(failures: &[PortError]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
