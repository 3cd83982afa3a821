//! A secret got a new current value → every opted-in lane whose known-good
//! task definitions reference it restarts: its services force-deployed on the
//! known-good revisions, as a release of its own with the same watch, smoke
//! test, bake and rollback as a release of a push.
//!
//! Round trips: 1. lane head; 2. DescribeTaskDefinition of the known-good
//! revisions (∥ the smoke-test family); 3. claim (one transaction); 4. CLAIMED →
//! DEPLOYING; 5. UpdateService of every service ∥ the image tag written again
//! (a version of the parameter per release, labelled known-good at the end).

use std::collections::BTreeSet;

use super::{
    event_for, fan_out, Decision, Engine, EngineError, Outcome, Ports, DESCRIBE_CONCURRENCY,
};
use crate::config::Environment;
use crate::decide::restart::{decide_restart, references_secret, RestartPlan};
use crate::ports::{
    Claim, ClaimOutcome, Ecs, Lane, Ledger, ReleaseRecord, ReleaseUpdate, TaskDefinitionView,
};
use crate::release::{ReleaseId, ReleaseState, Transition};

/// Secrets Manager's `Secret Label Updated` event for the `AWSCURRENT` label:
/// the secret has a new current value (a rotation finished, or PutSecretValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretChange {
    /// The secret's friendly name (`detail.name`).
    pub secret: String,
    /// The version that became current (`detail.versionId`).
    pub version: String,
}

impl<P: Ports> Engine<P> {
    pub async fn on_secret_changed(
        &self,
        change: &SecretChange,
        now: u64,
    ) -> Result<Vec<Decision>, EngineError> {
        let lanes: Vec<(&Environment, Lane)> = self
            .config
            .environments()
            .filter(|env| env.restart_on_secret_change)
            .flat_map(|env| {
                env.repositories().into_iter().map(move |repository| {
                    let lane = Lane {
                        app: env.app.clone(),
                        env: env.name.clone(),
                        repository: repository.to_owned(),
                    };
                    (env, lane)
                })
            })
            .collect();
        if lanes.is_empty() {
            return Ok(vec![Decision::ignored(
                "no environment in ferry's config restarts on secret changes (restart_on_secret_change)"
                    .into(),
            )]);
        }
        let results = futures_util::future::join_all(
            lanes
                .iter()
                .map(|(env, lane)| self.restart_lane(env, lane, change, now)),
        )
        .await;
        results.into_iter().collect()
    }

    async fn restart_lane(
        &self,
        env: &Environment,
        lane: &Lane,
        change: &SecretChange,
        now: u64,
    ) -> Result<Decision, EngineError> {
        let about = |id: Option<&ReleaseId>, outcome| {
            Decision::about(&lane.app, &lane.env, id.map(ReleaseId::as_str), outcome)
        };
        for _attempt in 0..3 {
            // Round trip 1.
            let head = self.ledger.head(lane).await?.unwrap_or_default();
            if let RestartPlan::Skip(reason) = decide_restart(&head) {
                return Ok(about(None, Outcome::Ignored { reason }));
            }
            let Some(known) = head.history.first().cloned() else {
                return Ok(about(
                    None,
                    Outcome::Ignored {
                        reason: "no known-good release".into(),
                    },
                ));
            };
            // Round trip 2: does the known-good release read this secret?
            let arns: Vec<String> = known
                .task_definitions
                .values()
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let verify_family = env.verify.as_ref().map(|v| v.task_family.clone());
            let (described, verify) = futures_util::join!(
                fan_out(arns, DESCRIBE_CONCURRENCY, |arn| async move {
                    self.ecs.describe_task_definition(&arn).await
                }),
                async {
                    match &verify_family {
                        Some(family) => Some(self.ecs.describe_task_definition(family).await),
                        None => None,
                    }
                },
            );
            let mut reads = false;
            for definition in described {
                reads |= definition?
                    .secret_refs()
                    .iter()
                    .any(|r| references_secret(r, &change.secret));
            }
            if !reads {
                return Ok(about(
                    None,
                    Outcome::Ignored {
                        reason: format!(
                            "the known-good release {} does not read secret {}",
                            known.id, change.secret
                        ),
                    },
                ));
            }
            let verify = verify.transpose()?;
            let cause = format!("{}@{}", change.secret, change.version);
            let id = ReleaseId::restart(&lane.app, &lane.env, &known.digest, &cause);
            let services: Vec<String> = env
                .services_running(&lane.repository)
                .iter()
                .map(|s| s.name.clone())
                .collect();
            let mut record = ReleaseRecord::claimed(
                id.clone(),
                lane.clone(),
                known.tag.clone(),
                known.digest.clone(),
                env.cluster.clone(),
                services,
                now,
            );
            record.previous_tag = Some(known.tag.clone());
            record.reason = Some(format!(
                "restart of {} ({}): secret {} has a new current value (version {})",
                known.id, known.tag, change.secret, change.version
            ));
            // Round trip 3.
            let claim = Claim {
                release: &record,
                expected_head_version: Some(head.version),
                supersedes: None,
                latest_pushed_at: head.latest_pushed_at,
                unfreeze: false,
                retries: None,
            };
            match self.ledger.claim(claim).await? {
                ClaimOutcome::Claimed => {}
                ClaimOutcome::AlreadyClaimed => {
                    return Ok(about(
                        Some(&id),
                        Outcome::Duplicate {
                            state: ReleaseState::Claimed,
                        },
                    ))
                }
                ClaimOutcome::HeadMoved => continue,
            }
            tracing::info!(release = %id, secret = %change.secret, "restart claimed");
            // Round trip 4: straight to the services, on the known-good revisions.
            let update = ReleaseUpdate {
                task_definitions: Some(known.task_definitions.clone()),
                verify_task_definition: verify.as_ref().map(|v| v.arn().to_owned()),
                verify_essential_containers: verify.as_ref().map(|v| v.essential_containers()),
                reason: record.reason.clone(),
                ..ReleaseUpdate::default()
            }
            .entering(Transition::SkipMigration, now);
            let Some(deploying) = self
                .ledger
                .update(&id, Transition::SkipMigration.guard(), update)
                .await?
            else {
                return Ok(about(Some(&id), Outcome::Superseded));
            };
            let events = vec![
                event_for(&record, None, ReleaseState::Claimed),
                event_for(
                    &deploying,
                    Some(ReleaseState::Claimed),
                    ReleaseState::Deploying,
                ),
            ];
            // Round trip 5.
            let outcome = self.roll_out(deploying, events, now, false).await?;
            return Ok(about(Some(&id), outcome));
        }
        Err(EngineError::Contention(lane.clone()))
    }
}
