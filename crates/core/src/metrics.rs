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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(state: ReleaseState, previous: Option<ReleaseState>) -> ReleaseEvent {
        ReleaseEvent {
            release_id: "shop/prod/3f2a9c1b7e40d5a1".into(),
            app: "shop".into(),
            environment: "prod".into(),
            repository: "shop".into(),
            tag: "1.0.0".into(),
            digest: "sha256:ab".into(),
            state,
            previous_state: previous,
            reason: None,
            services: vec!["api".into()],
            plan: None,
            timing: Some(ReleaseTiming {
                claimed_at: 100,
                updated_at: 1_000,
                migration_deadline: Some(1_000),
            }),
        }
    }

    fn values(event: &ReleaseEvent) -> Vec<Metric> {
        measurements(event, Some(900), 1_060)
            .into_iter()
            .map(|m| m.value)
            .collect()
    }

    #[test]
    fn rolling_back_a_release_that_had_succeeded_measures_the_rollback_only() {
        let rolled_back = event(ReleaseState::RolledBack, Some(ReleaseState::Succeeded));
        assert_eq!(values(&rolled_back), [Metric::TimeToRollback(60)]);
    }

    #[test]
    fn a_migration_is_timed_from_its_deadline_less_the_configured_timeout() {
        let passed = event(ReleaseState::Deploying, Some(ReleaseState::Migrating));
        assert_eq!(values(&passed), [Metric::MigrationDuration(960)]);
        // without the lane's timeout (config changed), no guess is recorded
        assert_eq!(measurements(&passed, None, 1_060), []);
    }

    #[test]
    fn an_event_without_the_ledgers_timestamps_measures_nothing() {
        let settled = ReleaseEvent {
            timing: None,
            ..event(ReleaseState::Succeeded, Some(ReleaseState::Baking))
        };
        assert_eq!(measurements(&settled, Some(900), 1_060), []);
    }

    #[test]
    fn a_superseded_or_rejected_release_counts_as_an_outcome_with_its_duration() {
        for state in [ReleaseState::Superseded, ReleaseState::Rejected] {
            let ended = event(state, Some(ReleaseState::Claimed));
            assert_eq!(
                values(&ended),
                [Metric::ReleaseDuration(960), Metric::Outcome(state)]
            );
        }
    }
}
