//! The bake: how long the guarding alarms are watched once every service of a
//! release completed, and the verdict when the timer ends it.

use std::time::Duration;

use crate::config::Bake;
use crate::ports::{AlarmState, AlarmStatus, ReleaseRecord};
use crate::release::ReleaseState;

/// The shortest bake derived from alarms: metrics arrive late (a standard
/// CloudWatch metric is published about a minute after its period), so a
/// window shorter than this judges a rollout on data from before it.
pub const DERIVED_BAKE_FLOOR: Duration = Duration::from_secs(5 * 60);
/// The longest bake derived from alarms: a release holds its lane meanwhile.
pub const DERIVED_BAKE_CAP: Duration = Duration::from_secs(60 * 60);

/// The bake window of a release.
///
/// `bake = "…"` is taken as written (`"0s"`: no bake). Without the key, the
/// window is the time the slowest guarding alarm needs to evaluate a full window
/// of data from after the rollout — its period × evaluation periods — as ECS
/// derives the bake of its deployment alarms from their configuration, kept
/// between [`DERIVED_BAKE_FLOOR`] and [`DERIVED_BAKE_CAP`]. An environment with no
/// alarms does not bake; one whose alarms cannot be described (missing, or
/// composite) bakes for the floor.
pub fn bake_window(setting: Bake, configured_alarms: usize, alarms: &[AlarmStatus]) -> Duration {
    match setting {
        Bake::Fixed(window) => window,
        Bake::FromAlarms if configured_alarms == 0 => Duration::ZERO,
        Bake::FromAlarms => {
            let slowest = alarms
                .iter()
                .filter_map(|a| Some(a.period? * a.evaluation_periods?))
                .max()
                .unwrap_or(0);
            Duration::from_secs(slowest).clamp(DERIVED_BAKE_FLOOR, DERIVED_BAKE_CAP)
        }
    }
}

/// What the guarding alarms say at the end of the bake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BakeVerdict {
    /// No alarm went to ALARM since the rollout began. `notes` names alarms
    /// that were in ALARM already before it (not judged: the release may be the fix).
    Pass { notes: Vec<String> },
    /// An alarm is in ALARM and its state changed after the rollout began.
    RollBack { alarm: String, reason: String },
}

/// Judges the alarms read at the end of the bake.
///
/// The rule for an alarm already in ALARM before the release: it is not held
/// against the release by that fact alone — the release may be the fix, and a
/// rollback would put back the release that raised it. It counts only if its
/// state changed after the rollout began (it went OK → ALARM, or left ALARM and
/// came back), which is also exactly when CloudWatch sends an ALARM event.
pub fn judge_bake(alarms: &[AlarmStatus], rollout_started_at: u64) -> BakeVerdict {
    let mut notes = Vec::new();
    for alarm in alarms.iter().filter(|a| a.state == AlarmState::Alarm) {
        if alarm.state_updated_at >= rollout_started_at {
            return BakeVerdict::RollBack {
                alarm: alarm.name.clone(),
                reason: format!(
                    "in ALARM at the end of the bake (since {}, after the rollout began at {}): {}",
                    alarm.state_updated_at, rollout_started_at, alarm.reason
                ),
            };
        }
        notes.push(format!(
            "alarm {} was in ALARM before the rollout began (since {}); not held against the release",
            alarm.name, alarm.state_updated_at
        ));
    }
    BakeVerdict::Pass { notes }
}

/// What a timer (or an operator's bless) does to a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BakeEnd {
    /// The release is baking: read the alarms and judge.
    Judge,
    /// The release succeeded at an earlier delivery of the timer, whose
    /// `known-good` label then failed (the release is marked): label it now.
    LabelOwed,
    /// A timer that fired twice, late, or for a release no longer baking.
    NotBaking(ReleaseState),
}

pub fn decide_bake_end(record: &ReleaseRecord) -> BakeEnd {
    match record.state {
        ReleaseState::Baking => BakeEnd::Judge,
        ReleaseState::Succeeded if record.interrupted.is_some() => BakeEnd::LabelOwed,
        other => BakeEnd::NotBaking(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(
        name: &str,
        state: AlarmState,
        since: u64,
        period: u64,
        evaluations: u64,
    ) -> AlarmStatus {
        AlarmStatus {
            name: name.into(),
            state,
            state_updated_at: since,
            reason: "Threshold Crossed".into(),
            period: Some(period),
            evaluation_periods: Some(evaluations),
        }
    }

    #[test]
    fn a_configured_bake_is_taken_as_written_and_zero_opts_out() {
        let alarms = [alarm("5xx", AlarmState::Ok, 0, 60, 30)];
        assert_eq!(
            bake_window(Bake::Fixed(Duration::from_secs(600)), 1, &alarms),
            Duration::from_secs(600)
        );
        assert_eq!(
            bake_window(Bake::Fixed(Duration::ZERO), 1, &alarms),
            Duration::ZERO
        );
    }

    #[test]
    fn the_derived_bake_is_the_slowest_alarms_period_times_evaluation_periods() {
        let alarms = [
            alarm("5xx", AlarmState::Ok, 0, 60, 10),
            alarm("latency", AlarmState::Ok, 0, 300, 3),
        ];
        assert_eq!(
            bake_window(Bake::FromAlarms, 2, &alarms),
            Duration::from_secs(900)
        );
    }

    #[test]
    fn the_derived_bake_stays_between_five_minutes_and_an_hour() {
        let fast = [alarm("5xx", AlarmState::Ok, 0, 10, 1)];
        assert_eq!(
            bake_window(Bake::FromAlarms, 1, &fast),
            Duration::from_secs(300)
        );
        let slow = [alarm("daily", AlarmState::Ok, 0, 86_400, 1)];
        assert_eq!(
            bake_window(Bake::FromAlarms, 1, &slow),
            Duration::from_secs(3_600)
        );
        // Configured but not described (deleted, or composite): the floor.
        assert_eq!(
            bake_window(Bake::FromAlarms, 1, &[]),
            Duration::from_secs(300)
        );
    }

    #[test]
    fn an_environment_without_alarms_does_not_bake_by_default() {
        assert_eq!(bake_window(Bake::FromAlarms, 0, &[]), Duration::ZERO);
    }

    #[test]
    fn an_alarm_raised_after_the_rollout_began_rolls_the_release_back() {
        let alarms = [
            alarm("5xx", AlarmState::Ok, 50, 60, 1),
            alarm("latency", AlarmState::Alarm, 1_000, 60, 1),
        ];
        let verdict = judge_bake(&alarms, 1_000);
        assert!(
            matches!(verdict, BakeVerdict::RollBack { ref alarm, .. } if alarm == "latency"),
            "{verdict:?}"
        );
    }

    #[test]
    fn an_alarm_already_in_alarm_before_the_rollout_is_not_held_against_the_release() {
        let alarms = [alarm("5xx", AlarmState::Alarm, 999, 60, 1)];
        let BakeVerdict::Pass { notes } = judge_bake(&alarms, 1_000) else {
            panic!("the release may be the fix");
        };
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].contains("5xx") && notes[0].contains("before the rollout"),
            "{notes:?}"
        );
    }

    #[test]
    fn alarms_in_ok_or_insufficient_data_pass_the_bake() {
        let alarms = [
            alarm("5xx", AlarmState::Ok, 2_000, 60, 1),
            alarm("new", AlarmState::InsufficientData, 2_000, 60, 1),
        ];
        assert_eq!(
            judge_bake(&alarms, 1_000),
            BakeVerdict::Pass { notes: Vec::new() }
        );
    }

    #[test]
    fn the_end_of_the_bake_judges_only_a_baking_release() {
        assert_eq!(
            decide_bake_end(&ReleaseRecord::example(ReleaseState::Baking)),
            BakeEnd::Judge
        );
        for state in [
            ReleaseState::Succeeded,
            ReleaseState::RolledBack,
            ReleaseState::RollingBack,
            ReleaseState::Superseded,
            ReleaseState::Failed,
        ] {
            assert_eq!(
                decide_bake_end(&ReleaseRecord::example(state)),
                BakeEnd::NotBaking(state),
                "a timer delivered again, or late, for a release in {state:?}"
            );
        }
    }

    #[test]
    fn a_succeeded_release_whose_label_failed_is_labelled_at_the_next_delivery() {
        let mut record = ReleaseRecord::example(ReleaseState::Succeeded);
        record.interrupted = Some("the known-good label failed".into());
        assert_eq!(decide_bake_end(&record), BakeEnd::LabelOwed);
    }
}
