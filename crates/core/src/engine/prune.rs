//! Deregisters the task-definition revisions a lane no longer needs (`keep = N`;
//! the rule is [`crate::decide::prune`]). Not wired into any function: the
//! reconcile pass calls it with a lane head it read.
//!
//! Round trips: ListTaskDefinitions of every family of the lane (all pages) ∥ the
//! release in flight (its revisions are never deregistered); then every
//! DeregisterTaskDefinition at once. A failure part-way leaves the rest ACTIVE;
//! the next call lists again and finishes (a deregistered revision is no longer
//! listed).

use std::collections::BTreeSet;

use super::{fan_out, Engine, EngineError, Ports, DESCRIBE_CONCURRENCY, REGISTER_CONCURRENCY};
use crate::decide::prune::{lane_families, revisions_to_deregister};
use crate::ports::{Ecs, Lane, LaneHead, Ledger};

impl<P: Ports> Engine<P> {
    /// Deregisters the revisions of `lane`'s families older than those of its
    /// last `keep` known-good releases, never one of a known-good release on
    /// `head` or of the release in flight. Returns the ARNs deregistered (none
    /// when the environment sets no `keep`).
    pub async fn prune_revisions(
        &self,
        lane: &Lane,
        head: &LaneHead,
    ) -> Result<Vec<String>, EngineError> {
        let env = self.environment_of(&lane.app, &lane.env)?;
        let Some(keep) = env.keep else {
            return Ok(Vec::new());
        };
        let families: Vec<String> = lane_families(&head.history).into_iter().collect();
        if families.is_empty() {
            return Ok(Vec::new());
        }
        // Round trip 1.
        let in_flight = async {
            match &head.in_flight {
                Some(pointer) => self.ledger.release(&pointer.id).await,
                None => Ok(None),
            }
        };
        let (listed, in_flight) = futures_util::join!(
            fan_out(families, DESCRIBE_CONCURRENCY, |family| async move {
                self.ecs.list_revisions(&family).await
            }),
            in_flight,
        );
        let in_flight: BTreeSet<String> = in_flight?
            .map(|record| {
                record
                    .task_definitions
                    .into_values()
                    .chain(record.migration_task_definition)
                    .chain(record.verify_task_definition)
                    .collect()
            })
            .unwrap_or_default();
        let mut active = Vec::new();
        for revisions in listed {
            active.extend(revisions?);
        }
        let doomed = revisions_to_deregister(keep, &head.history, &in_flight, &active);
        if doomed.is_empty() {
            return Ok(doomed);
        }
        // Round trip 2.
        tracing::info!(%lane, keep, revisions = ?doomed, "deregistering revisions no known-good release needs");
        let results = fan_out(doomed, REGISTER_CONCURRENCY, |arn| async move {
            self.ecs.deregister(&arn).await.map(|()| arn)
        })
        .await;
        let mut deregistered = Vec::with_capacity(results.len());
        for result in results {
            deregistered.push(result?);
        }
        Ok(deregistered)
    }
}
