//! What ferry measures about releases, derived from the transitions it already
//! announces: durations and outcomes per app and environment. Pure: the
//! [`crate::ports::Metrics`] adapter writes them (CloudWatch embedded metric
//! format on stdout, no API call) and supplies the clock.

use crate::ports::{ReleaseEvent, ReleaseTiming};
use crate::release::ReleaseState;

/// One value of one metric of one app and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measurement {
    pub app: String,
    pub environment: String,
    pub value: Metric,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Seconds from the claim to the state the release came to rest in.
    ReleaseDuration(u64),
    /// Seconds the migration task ran: from its RunTask to the verdict on its stop.
    MigrationDuration(u64),
    /// Seconds from the rollback's start (the release taking ROLLING_BACK) to ROLLED_BACK.
    TimeToRollback(u64),
    /// One release came to rest in this state (SUCCEEDED, FAILED, ROLLED_BACK,
    /// REJECTED or SUPERSEDED).
    Outcome(ReleaseState),
}

impl Metric {
    /// The CloudWatch metric name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::ReleaseDuration(_) => "ReleaseDuration",
            Metric::MigrationDuration(_) => "MigrationDuration",
            Metric::TimeToRollback(_) => "TimeToRollback",
            Metric::Outcome(_) => "Releases",
        }
    }
}

/// The measurements of one announced transition, `now` its time (epoch seconds).
/// `migration_timeout` is the lane's configured migration timeout, which dates
/// the migration's start from its recorded deadline.
pub fn measurements(
    event: &ReleaseEvent,
    migration_timeout: Option<u64>,
    now: u64,
) -> Vec<Measurement> {
    let Some(timing) = event.timing else {
        return Vec::new();
    };
    let ReleaseTiming {
        claimed_at,
        updated_at,
        migration_deadline,
    } = timing;
    let mut values = Vec::new();
    // The verdict on a migration: it passed (on to the rollout) or failed.
    if event.previous_state == Some(ReleaseState::Migrating)
        && matches!(event.state, ReleaseState::Deploying | ReleaseState::Failed)
    {
        if let (Some(deadline), Some(timeout)) = (migration_deadline, migration_timeout) {
            let started = deadline.saturating_sub(timeout);
            values.push(Metric::MigrationDuration(now.saturating_sub(started)));
        }
    }
    if event.state == ReleaseState::RolledBack {
        // the record was last written when the rollback began
        values.push(Metric::TimeToRollback(now.saturating_sub(updated_at)));
    }
    // A release comes to rest once; a rollback of a release that had
    // succeeded already is not a second end of that release.
    if event.state.is_settled() && event.previous_state != Some(ReleaseState::Succeeded) {
        values.push(Metric::ReleaseDuration(now.saturating_sub(claimed_at)));
        values.push(Metric::Outcome(event.state));
    }
    values
        .into_iter()
        .map(|value| Measurement {
            app: event.app.clone(),
            environment: event.environment.clone(),
            value,
        })
        .collect()
}
