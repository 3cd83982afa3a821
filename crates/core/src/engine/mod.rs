//! The release engine: the three event flows (push → claim and migrate, migration
//! stopped → roll out, deployment finished → known-good) written against the
//! [`crate::ports`] traits. Each flow is a fixed sequence of round trips whose
//! independent calls run concurrently, so a release costs the same number of
//! sequential round trips at 3 services as at 50.

mod deploy;
mod gate;
mod rollback;
mod watch;

use std::future::Future;
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use serde::Serialize;

use crate::config::Config;
use crate::ports::{
    EventSink, HeadChange, Lane, Ledger, Parameters, PortError, Registry, ReleaseEvent,
    ReleaseRecord, ReleaseUpdate, SecretsCheck,
};
use crate::release::ReleaseState;

pub use deploy::{DeployRequest, Push};
pub use gate::TaskStopped;
pub use rollback::{AlarmChange, RollbackRequest, UnfreezeRequest};
pub use watch::{DeploymentChange, DeploymentOutcome};

/// ECS accepts a burst of 20 RegisterTaskDefinition calls; stay inside it.
pub const REGISTER_CONCURRENCY: usize = 20;
/// ECS accepts a burst of 50 UpdateService calls; stay inside it.
pub const UPDATE_SERVICE_CONCURRENCY: usize = 50;
/// Describe calls are cheap and generously limited.
pub const DESCRIBE_CONCURRENCY: usize = 50;

/// The SSM label that marks the parameter version of the known-good release.
pub const KNOWN_GOOD_LABEL: &str = "known-good";

pub struct Engine<L, E, P, S, R, V> {
    pub config: Arc<Config>,
    pub ledger: L,
    pub ecs: E,
    pub params: P,
    pub secrets: S,
    pub registry: R,
    pub events: V,
}

/// Why an invocation failed. Retryable errors should make Lambda run the event
/// again; the others cannot succeed on a retry and are reported, not retried.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Aws(#[from] PortError),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("lane {0} changed under three consecutive claims; another release is being claimed concurrently, retry")]
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

/// What ferry decided for one environment, returned to the caller and logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub app: String,
    pub environment: String,
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
    Duplicate { state: String },
    /// Preflight found problems; the release is recorded failed, nothing was touched.
    PreflightFailed { problems: Vec<String> },
    /// Task definitions registered, SSM updated, migration running.
    Migrating {
        task: String,
        task_definitions: Vec<String>,
    },
    /// UpdateService issued for every service of the release.
    Deploying { deployments: Vec<String> },
    /// The release was overtaken by a newer one before reaching its services.
    Superseded,
    /// The release failed; services untouched, SSM parameter restored.
    Failed { reason: String },
    /// One service finished; others are still rolling out.
    Progress {
        completed: Vec<String>,
        pending: Vec<String>,
    },
    /// Every service completed: the release is the known-good one now.
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
}

impl Decision {
    fn new(app: &str, env: &str, release_id: Option<&str>, outcome: Outcome) -> Self {
        Decision {
            app: app.to_owned(),
            environment: env.to_owned(),
            release_id: release_id.map(str::to_owned),
            outcome,
        }
    }
}

pub(crate) fn event_for(
    record: &ReleaseRecord,
    previous: Option<ReleaseState>,
    state: ReleaseState,
) -> ReleaseEvent {
    ReleaseEvent {
        release_id: record.id.to_string(),
        app: record.lane.app.clone(),
        environment: record.lane.env.clone(),
        repository: record.lane.repository.clone(),
        tag: record.tag.clone(),
        digest: record.digest.clone(),
        state: state.as_str().to_owned(),
        previous_state: previous.map(|s| s.as_str().to_owned()),
        reason: record.reason.clone(),
        services: record.services.clone(),
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

impl<L, E, P, S, R, V> Engine<L, E, P, S, R, V>
where
    L: Ledger,
    E: crate::ports::Ecs,
    P: Parameters,
    S: SecretsCheck,
    R: Registry,
    V: EventSink,
{
    /// Emits the audit events. A failed emit is logged by the adapter and does not
    /// fail the release: the ledger, not the event bus, is the record of truth.
    async fn emit(&self, events: Vec<ReleaseEvent>) {
        if events.is_empty() {
            return;
        }
        if let Err(error) = self.events.emit(&events).await {
            tracing::warn!(%error, "could not emit Release State Change events");
        }
    }

    /// Fails an in-flight release: records the reason, frees the lane and, if
    /// this release already wrote the SSM parameter, restores the previous tag.
    async fn fail_release(
        &self,
        record: &ReleaseRecord,
        expected: &[ReleaseState],
        reason: String,
        restore_parameter: bool,
    ) -> Result<Outcome, EngineError> {
        let update = ReleaseUpdate {
            state: Some(ReleaseState::Failed),
            reason: Some(reason.clone()),
            ..ReleaseUpdate::default()
        };
        let settled = self
            .ledger
            .settle(record, expected, update, HeadChange::ClearInFlight)
            .await?;
        if !settled {
            // Someone else moved the release on (superseded, or a duplicate event
            // already failed it): their transition owns the SSM parameter now.
            return Ok(Outcome::Superseded);
        }
        let mut failed = record.clone();
        failed.reason = Some(reason.clone());
        let event = event_for(&failed, Some(record.state), ReleaseState::Failed);
        let restore = async {
            match (&record.previous_tag, restore_parameter) {
                (Some(previous), true) => {
                    let parameter = self.parameter_of(&record.lane)?;
                    self.params.put(&parameter, previous).await.map(|_| ())
                }
                _ => Ok(()),
            }
        };
        let (restored, ()) = futures_util::join!(restore, self.emit(vec![event]));
        restored?;
        Ok(Outcome::Failed { reason })
    }

    fn parameter_of(&self, lane: &Lane) -> Result<String, PortError> {
        self.config
            .environment(&lane.app, &lane.env)
            .map(|env| env.image_tag_parameter.clone())
            .ok_or_else(|| {
                PortError::new(
                    "config",
                    format!(
                        "environment {}/{} is no longer configured",
                        lane.app, lane.env
                    ),
                )
            })
    }
}
