//! The timer that ends a bake: one EventBridge Scheduler one-time schedule per
//! release, which invokes ferry-watch with `{"bake_ended":{"release_id":…}}` at
//! the end of the bake and then deletes itself.

use aws_sdk_scheduler::types::{
    ActionAfterCompletion, DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode,
    RetryPolicy, Target,
};
use aws_sdk_scheduler::Client;
use ferry_core::names::ReleaseId;
use ferry_core::ports::{PortError, PortResult, Timers};

use crate::error::port_error;

const OPERATION: &str = "scheduler:CreateSchedule";

/// Every schedule ferry creates starts with this (template.yaml grants
/// `scheduler:CreateSchedule` on `schedule/default/ferry-bake-*` only).
pub const SCHEDULE_PREFIX: &str = "ferry-bake-";

/// How long, and how often, Scheduler retries invoking the target when the
/// invocation itself fails (throttling, the function unavailable); what still
/// fails goes to the dead-letter queue, when there is one.
pub const RETRY_MAX_EVENT_AGE_SECONDS: i32 = 3600;
pub const RETRY_MAX_ATTEMPTS: i32 = 10;

/// What every bake timer invokes, and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerTarget {
    /// The function that ends the bake (ferry-watch): `FERRY_BAKE_TARGET_ARN`.
    pub target_arn: String,
    /// The role Scheduler assumes to invoke it: `FERRY_SCHEDULER_ROLE_ARN`.
    pub role_arn: String,
    /// The SQS queue Scheduler sends an event to when it could not invoke the
    /// target after its retries: `FERRY_BAKE_DEAD_LETTER_ARN`, optional.
    pub dead_letter_arn: Option<String>,
}

#[derive(Clone)]
pub struct SchedulerTimers {
    client: Client,
    target: TimerTarget,
}

impl SchedulerTimers {
    pub fn new(client: Client, target: TimerTarget) -> Self {
        SchedulerTimers { client, target }
    }
}

impl Timers for SchedulerTimers {
    async fn end_bake_at(&self, release: &ReleaseId, at: u64) -> PortResult<()> {
        let expression = at_expression(at)?;
        let target = Target::builder()
            .arn(&self.target.target_arn)
            .role_arn(&self.target.role_arn)
            .input(input(release))
            .retry_policy(
                RetryPolicy::builder()
                    .maximum_event_age_in_seconds(RETRY_MAX_EVENT_AGE_SECONDS)
                    .maximum_retry_attempts(RETRY_MAX_ATTEMPTS)
                    .build(),
            )
            .set_dead_letter_config(
                self.target
                    .dead_letter_arn
                    .as_ref()
                    .map(|arn| DeadLetterConfig::builder().arn(arn).build()),
            )
            .build()
            .map_err(|e| PortError::new(OPERATION, e.to_string()))?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| PortError::new(OPERATION, e.to_string()))?;
        let sent = self
            .client
            .create_schedule()
            .name(schedule_name(release))
            .description(format!("ferry: the bake of {release} ends"))
            .schedule_expression(expression)
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window)
            .action_after_completion(ActionAfterCompletion::Delete)
            .target(target)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            // The schedule exists: an earlier delivery created it.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conflict_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(port_error(OPERATION, err)),
        }
    }
}

/// `ferry-bake-<the release id's 16 hex>-<16 hex of FNV-1a 64 of "<app>/<env>">`:
/// 44 characters of `[0-9a-z-]`, within Scheduler's 64 of `[0-9a-zA-Z-_.]+`.
/// The digest part alone would collide for one image released to two
/// environments, hence the environment's hash.
pub fn schedule_name(release: &ReleaseId) -> String {
    let digest = release.as_str().rsplit('/').next().unwrap_or_default();
    let lane = format!("{}/{}", release.app(), release.env());
    format!(
        "{SCHEDULE_PREFIX}{digest}-{:016x}",
        fnv1a64(lane.as_bytes())
    )
}

/// FNV-1a, 64 bits: stable across builds and platforms (unlike `std`'s hasher).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// A one-time schedule expression, `at(YYYY-MM-DDTHH:MM:SS)`, for `epoch`
/// seconds in UTC (the schedule's timezone is set to UTC alongside it).
pub fn at_expression(epoch: u64) -> PortResult<String> {
    i64::try_from(epoch)
        .ok()
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .filter(|t| chrono::Datelike::year(t) <= 9999)
        .map(|t| format!("at({})", t.format("%Y-%m-%dT%H:%M:%S")))
        .ok_or_else(|| {
            PortError::new(
                OPERATION,
                format!("{epoch} is not a time a schedule can be set for"),
            )
        })
}

/// What the schedule passes to ferry-watch.
pub fn input(release: &ReleaseId) -> String {
    serde_json::json!({ "bake_ended": { "release_id": release.as_str() } }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:3f2a9c1b7e40d5a1c0ffee0000000000000000000000000000000000000000aa";

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn the_schedule_name_is_the_digest_part_and_a_hash_of_the_environment() {
        let id = ReleaseId::derive("shop", "prod", DIGEST);
        let name = schedule_name(&id);
        assert_eq!(
            name,
            format!("ferry-bake-3f2a9c1b7e40d5a1-{:016x}", fnv1a64(b"shop/prod"))
        );
        assert_eq!(name.len(), 44);
        assert_eq!(name, schedule_name(&id), "stable");
    }

    #[test]
    fn one_image_in_two_environments_gets_two_schedules() {
        let prod = schedule_name(&ReleaseId::derive("shop", "prod", DIGEST));
        let staging = schedule_name(&ReleaseId::derive("shop", "staging", DIGEST));
        let other_app = schedule_name(&ReleaseId::derive("blog", "prod", DIGEST));
        assert_ne!(prod, staging);
        assert_ne!(prod, other_app);
        assert!(prod.starts_with("ferry-bake-3f2a9c1b7e40d5a1-"));
        assert!(staging.starts_with("ferry-bake-3f2a9c1b7e40d5a1-"));
    }

    #[test]
    fn schedule_names_fit_schedulers_limits_at_the_longest_release_id() {
        let long = ReleaseId::parse(&format!(
            "{}/{}/3f2a9c1b7e40d5a1",
            "A_b-9".repeat(12),
            "z".repeat(40)
        ))
        .expect("a valid release id");
        let name = schedule_name(&long);
        assert!(name.len() <= 64, "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')),
            "{name}"
        );
        assert!(name.starts_with(SCHEDULE_PREFIX));
    }

    #[test]
    fn at_expressions_are_utc_wall_clock_times_to_the_second() {
        assert_eq!(at_expression(0).unwrap(), "at(1970-01-01T00:00:00)");
        // 2026-12-01T09:30:05Z
        assert_eq!(
            at_expression(1_796_117_405).unwrap(),
            "at(2026-12-01T09:30:05)"
        );
        // a leap day, just before midnight
        assert_eq!(
            at_expression(1_709_251_199).unwrap(),
            "at(2024-02-29T23:59:59)"
        );
    }

    #[test]
    fn a_time_past_year_9999_is_an_error() {
        assert!(
            at_expression(253_402_300_799).is_ok(),
            "9999-12-31T23:59:59"
        );
        for bad in [253_402_300_800, u64::MAX] {
            let error = at_expression(bad).expect_err("too far");
            assert_eq!(error.operation, "scheduler:CreateSchedule");
            assert!(!error.retryable);
        }
    }

    #[test]
    fn the_input_names_the_release_for_ferry_watch() {
        let id = ReleaseId::derive("shop", "prod", DIGEST);
        assert_eq!(
            input(&id),
            r#"{"bake_ended":{"release_id":"shop/prod/3f2a9c1b7e40d5a1"}}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&input(&id)).unwrap();
        assert_eq!(
            parsed["bake_ended"]["release_id"],
            "shop/prod/3f2a9c1b7e40d5a1"
        );
    }
}
