//! The release engine: every flow reads what it needs in one concurrent round
//! trip, asks a pure function in [`crate::decide`] what to do, and carries out
//! the plan it gets back with small executors. Each executor is a fixed
//! sequence of round trips whose independent calls run concurrently, so a
//! release costs the same number of sequential round trips at 3 services as at 50.

mod approval;
mod bake;
mod deploy;
mod gate;
mod prune;
mod reconcile;
mod restart;
mod retry;
mod rollback;
mod rollout;
mod watch;

use std::future::Future;
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use serde::Serialize;

use crate::config::{Config, Environment};
use crate::ports::{
    Alarms, Ecs, EventSink, HeadChange, Lane, Ledger, Metrics, Parameters, PortError, PortResult,
    Registry, ReleaseEvent, ReleaseRecord, ReleaseTiming, ReleaseUpdate, RollbackLedger,
    SecretsCheck, TagClaim, Timers,
};
use crate::release::{ReleaseState, Transition};

pub use approval::{ApprovalRequest, PromoteRequest, RejectRequest};
pub use bake::BlessRequest;
pub use deploy::{DeployRequest, Push};
pub use gate::TaskStopped;
pub use reconcile::ReconcileRequest;
pub use restart::SecretChange;
pub use retry::RetryRequest;
pub use rollback::{AlarmChange, AlarmState, RollbackRequest, UnfreezeRequest};
pub use watch::{DeploymentChange, DeploymentOutcome};

/// ECS accepts a burst of 20 RegisterTaskDefinition calls; stay inside it.
pub const REGISTER_CONCURRENCY: usize = 20;
/// ECS accepts a burst of 50 UpdateService calls; stay inside it.
pub const UPDATE_SERVICE_CONCURRENCY: usize = 50;
/// Describe calls are cheap and generously limited.
pub const DESCRIBE_CONCURRENCY: usize = 50;

/// The SSM label that marks the parameter version of the known-good release.
pub const KNOWN_GOOD_LABEL: &str = "known-good";

/// The adapters an engine drives, named once instead of in every where-clause.
pub trait Ports {
    type Ledger: Ledger + RollbackLedger;
    type Ecs: Ecs;
    type Parameters: Parameters;
    type Secrets: SecretsCheck;
    type Registry: Registry;
    type Events: EventSink;
    type Alarms: Alarms;
    type Timers: Timers;
    type Metrics: Metrics;
}

pub struct Engine<P: Ports> {
    pub config: Arc<Config>,
    pub ledger: P::Ledger,
    pub ecs: P::Ecs,
    pub params: P::Parameters,
    pub secrets: P::Secrets,
    pub registry: P::Registry,
    pub events: P::Events,
    pub alarms: P::Alarms,
    pub timers: P::Timers,
    pub metrics: P::Metrics,
}

/// Why an invocation failed. Retryable errors should make Lambda run the event
/// again; the others cannot succeed on a retry and are reported, not retried.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Aws(#[from] PortError),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("lane {0} changed under three consecutive attempts; another invocation is writing it concurrently, retry")]
    Contention(Lane),
    #[error("release {0} is not ready for this event yet (its previous step has not been recorded); retry")]
    NotReady(String),
}

impl EngineError {
    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::Aws(e) => e.retryable,
            EngineError::BadRequest(_) => false,
            EngineError::Contention(_) | EngineError::NotReady(_) => true,
        }
    }
}

/// What ferry decided, returned to the caller and logged: for one environment,
/// or (app and environment absent) for an event that concerns none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_id: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The event does not concern ferry, or not this environment (logged no-op).
    Ignored { reason: String },
    /// The tag policy or a guard refused the image (logged no-op).
    Refused { reason: String },
    /// The release exists already: a duplicate or re-delivered event.
    Duplicate { state: ReleaseState },
    /// Preflight found problems; the release is recorded failed, nothing was touched.
    PreflightFailed { problems: Vec<String> },
    /// Task definitions registered, SSM updated, migration running.
    Migrating {
        task: String,
        task_definitions: Vec<String>,
    },
    /// UpdateService issued for every service of the release.
    Deploying { deployments: Vec<String> },
    /// Every service completed; the smoke-test task runs.
    Verifying { task: String },
    /// The guarding alarms are watched until `until` (epoch seconds).
    Baking { until: u64 },
    /// Prepared (claimed, preflight passed, task definitions registered): the
    /// release waits for an operator's approve until `expires_at` (epoch seconds).
    AwaitingApproval {
        expires_at: u64,
        plan: crate::ports::ApprovalPlan,
    },
    /// An operator rejected the release awaiting approval, or its request
    /// expired; SSM and the services were never touched.
    Rejected { reason: String },
    /// The release was overtaken by a newer one before reaching its services.
    Superseded,
    /// The release failed; services untouched, SSM parameter restored.
    Failed { reason: String },
    /// One service finished; others are still rolling out.
    Progress {
        completed: Vec<String>,
        pending: Vec<String>,
    },
    /// The release is the known-good one now.
    Succeeded,
    /// The lane is frozen after a rollback: the push is recorded, not deployed.
    Held { tag: String },
    /// Every service went back to the known-good release's task definitions.
    RolledBack {
        from: String,
        to: String,
        reason: String,
    },
    /// The lane's freeze was lifted.
    Unfrozen,
    /// The reconcile pass found the lane where its events left it.
    InSync,
    /// The reconcile pass made good what lost or late events left undone:
    /// what it found and what it did, one line each.
    Reconciled { corrections: Vec<String> },
}

impl Outcome {
    /// One line for logs and the reconcile pass's events.
    pub fn summary(&self) -> String {
        match self {
            Outcome::Ignored { reason } => format!("nothing to do: {reason}"),
            Outcome::Refused { reason } => format!("refused: {reason}"),
            Outcome::Duplicate { state } => {
                format!("nothing to do: the release is {state} already")
            }
            Outcome::PreflightFailed { problems } => {
                format!("preflight failed: {}", problems.join("; "))
            }
            Outcome::Migrating { task, .. } => format!("migration {task} started"),
            Outcome::Deploying { deployments } => {
                format!("rolled out ({})", deployments.join(", "))
            }
            Outcome::Verifying { task } => format!("smoke test {task} started"),
            Outcome::Baking { until } => format!("baking until {until} (epoch seconds)"),
            Outcome::AwaitingApproval { expires_at, .. } => {
                format!("awaiting approval until {expires_at} (epoch seconds)")
            }
            Outcome::Rejected { reason } => format!("release rejected: {reason}"),
            Outcome::Superseded => "the release was superseded".to_owned(),
            Outcome::Failed { reason } => format!("release failed: {reason}"),
            Outcome::Progress { completed, pending } => format!(
                "completed {}; waiting for {}",
                completed.join(", "),
                pending.join(", ")
            ),
            Outcome::Succeeded => "the release succeeded".to_owned(),
            Outcome::Held { tag } => format!("{tag} held: the lane is frozen"),
            Outcome::RolledBack { from, to, .. } => format!("rolled back from {from} to {to}"),
            Outcome::Unfrozen => "unfrozen".to_owned(),
            Outcome::InSync => "in sync".to_owned(),
            Outcome::Reconciled { corrections } => corrections.join("; "),
        }
    }
}

impl Decision {
    /// A decision about one environment.
    pub fn about(lane_app: &str, env: &str, release_id: Option<&str>, outcome: Outcome) -> Self {
        Decision {
            app: Some(lane_app.to_owned()),
            environment: Some(env.to_owned()),
            release_id: release_id.map(str::to_owned),
            outcome,
        }
    }

    /// An event that concerns no environment ferry manages.
    pub fn ignored(reason: String) -> Self {
        Decision {
            app: None,
            environment: None,
            release_id: None,
            outcome: Outcome::Ignored { reason },
        }
    }
}

/// The `Release State Change` event of `record` taking `to` from `from`.
pub(crate) fn event_for(
    record: &ReleaseRecord,
    from: Option<ReleaseState>,
    to: ReleaseState,
) -> ReleaseEvent {
    ReleaseEvent {
        release_id: record.id.to_string(),
        app: record.lane.app.clone(),
        environment: record.lane.env.clone(),
        repository: record.lane.repository.clone(),
        tag: record.tag.clone(),
        digest: record.digest.clone(),
        state: to,
        previous_state: from,
        reason: record.reason.clone(),
        services: record.services.clone(),
        plan: None,
        timing: Some(ReleaseTiming {
            claimed_at: record.created_at,
            updated_at: record.updated_at,
            migration_deadline: record.migration_deadline,
        }),
    }
}

/// Runs `f` over `items` with at most `limit` calls in flight, keeping order.
pub(crate) async fn fan_out<T, O, F, Fut>(items: Vec<T>, limit: usize, f: F) -> Vec<O>
where
    F: FnMut(T) -> Fut,
    Fut: Future<Output = O>,
{
    stream::iter(items)
        .map(f)
        .buffered(limit.max(1))
        .collect()
        .await
}

impl<P: Ports> Engine<P> {
    /// Emits the audit events. A failed emit is logged by the adapter and does not
    /// fail the release: the ledger, not the event bus, is the record of truth.
    /// The transitions' metrics are recorded first, whatever becomes of the events.
    async fn emit(&self, events: Vec<ReleaseEvent>) {
        if events.is_empty() {
            return;
        }
        self.record_metrics(&events);
        if let Err(error) = self.events.emit(&events).await {
            tracing::warn!(%error, "could not emit Release State Change events");
        }
    }

    fn record_metrics(&self, events: &[ReleaseEvent]) {
        let now = self.metrics.now();
        let measured: Vec<_> = events
            .iter()
            .flat_map(|event| {
                let timeout = self
                    .config
                    .environment(&event.app, &event.environment)
                    .and_then(|env| env.migration_for(&event.repository))
                    .map(|m| m.timeout.as_secs());
                crate::metrics::measurements(event, timeout, now)
            })
            .collect();
        if !measured.is_empty() {
            self.metrics.record(&measured);
        }
    }

    /// Writes the image tag unless the parameter holds it already — as it does
    /// when an interrupted attempt (or the rollback being undone around) wrote
    /// it: one SSM version per value written. Returns the version naming it.
    ///
    /// Two invocations can both read another value (a duplicate STOPPED event
    /// and the reconcile pass failing one release; a superseded rollout's undo
    /// and its successor writing the successor's tag), and PutParameter has no
    /// condition: the writes of a lane's parameter are claimed in the ledger,
    /// one invocation at a time. The read goes beside the claim; if a holder
    /// wrote after it began (the claim names the version written last), it is
    /// made again.
    pub(super) async fn write_tag_once(&self, lane: &Lane, tag: &str) -> Result<i64, PortError> {
        let parameter = self.parameter_of(lane)?;
        let (claim, current) = futures_util::join!(
            self.ledger.claim_tag_writes(lane),
            self.params.current(&parameter),
        );
        let Some(claim) = claim? else {
            return Err(PortError::new(
                "ssm:PutParameter",
                format!(
                    "another invocation holds the writes of {parameter} past their lease; retry"
                ),
            )
            .with_code("TagWritesClaimed")
            .retryable());
        };
        let written = self.write_claimed(&parameter, tag, &claim, current).await;
        let version = written
            .as_ref()
            .ok()
            .and_then(|&(version, wrote)| wrote.then_some(version));
        if let Err(error) = self.ledger.release_tag_claim(lane, &claim, version).await {
            tracing::warn!(%lane, %error, "could not give back the claim on the tag writes; it lapses");
        }
        written.map(|(version, _)| version)
    }

    /// The version naming `tag`, and whether this call wrote it.
    async fn write_claimed(
        &self,
        parameter: &str,
        tag: &str,
        claim: &TagClaim,
        read: PortResult<Option<(String, i64)>>,
    ) -> Result<(i64, bool), PortError> {
        let mut current = read?;
        let version_read = current.as_ref().map(|(_, version)| *version);
        if claim.last_written > version_read {
            // A holder wrote after this read began.
            current = self.params.current(parameter).await?;
        }
        match current {
            Some((value, version)) if value == tag => Ok((version, false)),
            _ => Ok((self.params.put(parameter, tag).await?, true)),
        }
    }

    /// Fails an in-flight release: records the reason, frees the lane and, if
    /// this release already wrote the SSM parameter, restores the previous tag.
    async fn fail_release(
        &self,
        record: &ReleaseRecord,
        reason: String,
        restore_parameter: bool,
    ) -> Result<Outcome, EngineError> {
        // The previous tag and the services a superseded release rolled out go
        // back before the release is settled FAILED: a restore that fails (or
        // an invocation killed half-way) leaves the release in flight, so the
        // redelivered event or the reconcile pass judges it again and finishes
        // the restore, where a FAILED release's redelivery finds nothing left to do.
        let previous = match (&record.previous_tag, restore_parameter) {
            // The release wrote the tag it would restore: nothing to put back.
            (Some(previous), true) if *previous != record.tag => Some(previous),
            _ => None,
        };
        let restore_tag = async {
            match previous {
                // Once: an earlier delivery may have restored it already.
                Some(previous) => Some(self.write_tag_once(&record.lane, previous).await),
                None => None,
            }
        };
        let (restored, put_back) = futures_util::join!(restore_tag, self.put_services_back(record));
        let mut failures = Vec::new();
        let tag_restored = match restored {
            Some(Ok(_)) => true,
            Some(Err(e)) => {
                failures.push(e);
                false
            }
            None => false,
        };
        failures.extend(put_back.err());
        if let Some(i) = failures.iter().position(|e| e.retryable) {
            return Err(self.interrupt(record, failures.swap_remove(i)).await);
        }
        let restore_error = failures.into_iter().next();
        let update = ReleaseUpdate {
            reason: Some(reason.clone()),
            ..ReleaseUpdate::default()
        };
        let settled = self
            .ledger
            .settle(
                record,
                Transition::Fail.guard(),
                update,
                HeadChange::ClearInFlight,
            )
            .await?;
        if !settled {
            // Someone else moved the release on (superseded, or a duplicate event
            // already failed it): their transition owns the SSM parameter now,
            // and a tag restored here goes where the lane head says it belongs.
            if tag_restored {
                let head = self.ledger.head(&record.lane).await?.unwrap_or_default();
                self.correct_parameter(&record.lane, &head).await?;
            }
            return Ok(Outcome::Superseded);
        }
        let mut failed = record.clone();
        failed.reason = Some(reason.clone());
        let event = event_for(&failed, Some(record.state), ReleaseState::Failed);
        self.emit(vec![event]).await;
        if let Some(e) = restore_error {
            return Err(e.into());
        }
        Ok(Outcome::Failed { reason })
    }

    /// Marks a release interrupted by a retryable failure, so the redelivered
    /// event resumes it, and hands the failure back to fail the invocation.
    async fn interrupt(&self, record: &ReleaseRecord, error: PortError) -> EngineError {
        self.interrupt_in(record, crate::release::Guard::IN_FLIGHT, error)
            .await
    }

    /// Like [`Engine::interrupt`], for a release in a state `guard` admits.
    async fn interrupt_in(
        &self,
        record: &ReleaseRecord,
        guard: crate::release::Guard,
        error: PortError,
    ) -> EngineError {
        self.interrupt_recording(record, guard, ReleaseUpdate::default(), error)
            .await
    }

    /// Like [`Engine::interrupt_in`], recording with the mark what the
    /// interrupted step did get done (`done`), so its retry does not do it twice.
    async fn interrupt_recording(
        &self,
        record: &ReleaseRecord,
        guard: crate::release::Guard,
        done: ReleaseUpdate,
        error: PortError,
    ) -> EngineError {
        tracing::warn!(release = %record.id, %error, "step failed; the release waits for the redelivered event");
        let marked = self
            .ledger
            .update(
                &record.id,
                guard,
                ReleaseUpdate {
                    interrupted: Some(error.to_string()),
                    ..done
                },
            )
            .await;
        if let Err(mark_error) = marked {
            tracing::error!(release = %record.id, %mark_error, "could not mark the release interrupted; the reconcile pass must resume it");
        }
        EngineError::Aws(error)
    }

    /// RunTask of a one-off task of the release (its migration or smoke test),
    /// launched like `like`, tagged with and `startedBy` naming the release.
    async fn run_for_release(
        &self,
        record: &ReleaseRecord,
        task_definition: &str,
        like: &<P::Ecs as Ecs>::Service,
    ) -> Result<String, PortError> {
        let lane = &record.lane;
        // Only ferry's own tags: nothing of the task definition's (no `aws:` key).
        let tags = crate::image::release_tags(&[], record.id.as_str(), &lane.app, &lane.env)
            .map_err(|e| PortError::new("ecs:RunTask", e.to_string()))?;
        let started_by = record.id.started_by();
        self.ecs
            .run_migration(
                &record.cluster,
                task_definition,
                like,
                &started_by,
                &tags.tags,
            )
            .await
    }

    fn environment_of(&self, app: &str, env: &str) -> Result<&Environment, EngineError> {
        self.config.environment(app, env).ok_or_else(|| {
            EngineError::BadRequest(format!(
                "no environment `{env}` in app `{app}` in ferry's config"
            ))
        })
    }

    /// The lane's own SSM image-tag parameter (`image_tag_parameter` with
    /// `{repository}` filled in): lanes of one environment never share one.
    fn parameter_of(&self, lane: &Lane) -> Result<String, PortError> {
        self.config
            .environment(&lane.app, &lane.env)
            .and_then(|env| env.image_tag_parameter(&lane.repository))
            .map(str::to_owned)
            .ok_or_else(|| {
                PortError::new(
                    "config",
                    format!(
                        "lane {lane} is no longer configured: its environment is gone or no longer runs \
                         repository {}; put it back in ferry's config to finish what the lane started",
                        lane.repository
                    ),
                )
            })
    }
}
