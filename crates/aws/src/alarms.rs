//! The guarding alarms, read with CloudWatch `DescribeAlarms`.

use aws_sdk_cloudwatch::types::{AlarmType, CompositeAlarm, MetricAlarm, StateValue};
use aws_sdk_cloudwatch::Client;
use aws_smithy_types::DateTime;
use ferry_core::ports::{AlarmState, AlarmStatus, Alarms, PortError, PortResult};

use crate::error::port_error;

const OPERATION: &str = "cloudwatch:DescribeAlarms";

/// `DescribeAlarms` takes at most 100 names per call (`AlarmNames`), and
/// returns at most 100 alarms per page (`MaxRecords`).
pub const MAX_NAMES_PER_CALL: usize = 100;

#[derive(Clone)]
pub struct CloudWatchAlarms {
    client: Client,
}

impl CloudWatchAlarms {
    pub fn new(client: Client) -> Self {
        CloudWatchAlarms { client }
    }
}

impl Alarms for CloudWatchAlarms {
    async fn describe(&self, names: &[String]) -> PortResult<Vec<AlarmStatus>> {
        let mut found = Vec::new();
        // No names, no call: DescribeAlarms without AlarmNames lists every alarm.
        for chunk in names.chunks(MAX_NAMES_PER_CALL) {
            let mut next_token: Option<String> = None;
            loop {
                let out = self
                    .client
                    .describe_alarms()
                    .set_alarm_names(Some(chunk.to_vec()))
                    .alarm_types(AlarmType::MetricAlarm)
                    .alarm_types(AlarmType::CompositeAlarm)
                    .max_records(MAX_NAMES_PER_CALL as i32)
                    .set_next_token(next_token.take())
                    .send()
                    .await
                    .map_err(|e| port_error(OPERATION, e))?;
                for alarm in out.metric_alarms() {
                    found.push(metric_alarm(alarm)?);
                }
                for alarm in out.composite_alarms() {
                    found.push(composite_alarm(alarm)?);
                }
                match out.next_token() {
                    Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                    _ => break,
                }
            }
        }
        Ok(found)
    }
}

fn metric_alarm(alarm: &MetricAlarm) -> PortResult<AlarmStatus> {
    let name = alarm.alarm_name().unwrap_or_default();
    // A metric-math alarm has no period of its own: its queries carry them.
    let period = alarm.period().or_else(|| {
        alarm
            .metrics()
            .iter()
            .filter_map(|q| {
                q.period()
                    .or_else(|| q.metric_stat().and_then(|s| s.period()))
            })
            .max()
    });
    let mut status = status(
        name,
        alarm.state_value(),
        [
            alarm.state_transitioned_timestamp(),
            alarm.state_updated_timestamp(),
        ],
        alarm.state_reason(),
    )?;
    status.period = period.and_then(|p| u64::try_from(p).ok());
    status.evaluation_periods = alarm
        .evaluation_periods()
        .and_then(|n| u64::try_from(n).ok());
    Ok(status)
}

fn composite_alarm(alarm: &CompositeAlarm) -> PortResult<AlarmStatus> {
    let name = alarm.alarm_name().unwrap_or_default();
    status(
        name,
        alarm.state_value(),
        [
            alarm.state_transitioned_timestamp(),
            alarm.state_updated_timestamp(),
        ],
        alarm.state_reason(),
    )
}

/// What every kind of alarm reports: its state, when it last changed, why.
/// (`[transitioned, updated]`: see [`changed_at`].)
fn status(
    name: &str,
    value: Option<&StateValue>,
    [transitioned, updated]: [Option<&DateTime>; 2],
    reason: Option<&str>,
) -> PortResult<AlarmStatus> {
    Ok(AlarmStatus {
        name: name.to_owned(),
        state: state(name, value)?,
        state_updated_at: changed_at(name, transitioned, updated)?,
        reason: reason.unwrap_or_default().to_owned(),
        period: None,
        evaluation_periods: None,
    })
}

/// An alarm whose state ferry cannot read is an error, never a guess: taking
/// it for OK would let a bake end under an alarm ferry did not understand.
fn state(name: &str, value: Option<&StateValue>) -> PortResult<AlarmState> {
    let value = value.map(StateValue::as_str).unwrap_or_default();
    AlarmState::parse(value).ok_or_else(|| {
        PortError::new(
            OPERATION,
            format!("alarm {name} has state `{value}`, not OK, ALARM or INSUFFICIENT_DATA"),
        )
    })
}

/// When the alarm's state last *changed*: `StateTransitionedTimestamp` ("the
/// date and time that the alarm's StateValue most recently changed", DescribeAlarms
/// API reference). `StateUpdatedTimestamp` also moves when only the reason is
/// updated — an alarm that stayed in ALARM would look newly raised — so it is
/// only the fallback for an answer without the former.
fn changed_at(
    name: &str,
    transitioned: Option<&DateTime>,
    updated: Option<&DateTime>,
) -> PortResult<u64> {
    epoch_seconds(transitioned.or(updated)).ok_or_else(|| {
        PortError::new(
            OPERATION,
            format!("alarm {name} has no StateUpdatedTimestamp"),
        )
    })
}

/// Whole seconds since the Unix epoch (a time before it counts as the epoch).
pub fn epoch_seconds(timestamp: Option<&DateTime>) -> Option<u64> {
    timestamp.map(|t| u64::try_from(t.secs()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatch::types::{Metric, MetricDataQuery, MetricStat};

    fn at(secs: i64) -> DateTime {
        DateTime::from_secs(secs)
    }

    #[test]
    fn a_metric_alarm_maps_state_time_reason_period_and_evaluation_periods() {
        let alarm = MetricAlarm::builder()
            .alarm_name("shop-prod-5xx")
            .state_value(StateValue::Alarm)
            .state_updated_timestamp(DateTime::from_fractional_secs(1_767_225_600, 0.75))
            .state_reason("Threshold Crossed: 1 datapoint [12.0] was greater than 5.0")
            .period(60)
            .evaluation_periods(3)
            .build();
        assert_eq!(
            metric_alarm(&alarm).expect("mapped"),
            AlarmStatus {
                name: "shop-prod-5xx".to_owned(),
                state: AlarmState::Alarm,
                state_updated_at: 1_767_225_600,
                reason: "Threshold Crossed: 1 datapoint [12.0] was greater than 5.0".to_owned(),
                period: Some(60),
                evaluation_periods: Some(3),
            }
        );
    }

    #[test]
    fn an_alarm_still_in_alarm_whose_reason_was_updated_keeps_its_transition_time() {
        // In ALARM since 1000; CloudWatch re-evaluated it at 5000 (reason updated):
        // it was not raised anew at 5000.
        let alarm = MetricAlarm::builder()
            .alarm_name("shop-prod-5xx")
            .state_value(StateValue::Alarm)
            .state_transitioned_timestamp(at(1_000))
            .state_updated_timestamp(at(5_000))
            .build();
        assert_eq!(
            metric_alarm(&alarm).expect("mapped").state_updated_at,
            1_000
        );
    }

    #[test]
    fn a_metric_math_alarm_takes_the_longest_period_of_its_queries() {
        let stat = |period| {
            MetricDataQuery::builder()
                .id(format!("m{period}"))
                .metric_stat(
                    MetricStat::builder()
                        .metric(Metric::builder().metric_name("5XXError").build())
                        .period(period)
                        .stat("Sum")
                        .build(),
                )
                .build()
        };
        let alarm = MetricAlarm::builder()
            .alarm_name("error-rate")
            .state_value(StateValue::Ok)
            .state_updated_timestamp(at(10))
            .metrics(stat(60))
            .metrics(stat(300))
            .metrics(
                MetricDataQuery::builder()
                    .id("rate")
                    .expression("m60 / m300")
                    .build(),
            )
            .evaluation_periods(2)
            .build();
        let status = metric_alarm(&alarm).expect("mapped");
        assert_eq!(status.period, Some(300));
        assert_eq!(status.evaluation_periods, Some(2));
    }

    #[test]
    fn a_composite_alarm_has_no_period() {
        let alarm = CompositeAlarm::builder()
            .alarm_name("shop-prod-any")
            .state_value(StateValue::InsufficientData)
            .state_updated_timestamp(at(1_700_000_000))
            .state_reason("Unchecked: Initial alarm creation")
            .build();
        assert_eq!(
            composite_alarm(&alarm).expect("mapped"),
            AlarmStatus {
                name: "shop-prod-any".to_owned(),
                state: AlarmState::InsufficientData,
                state_updated_at: 1_700_000_000,
                reason: "Unchecked: Initial alarm creation".to_owned(),
                period: None,
                evaluation_periods: None,
            }
        );
    }

    #[test]
    fn an_unknown_or_missing_state_is_an_error_naming_the_alarm() {
        for value in [Some(StateValue::from("MAYBE")), None] {
            let mut builder = MetricAlarm::builder()
                .alarm_name("shop-prod-5xx")
                .state_updated_timestamp(at(10));
            if let Some(value) = value {
                builder = builder.state_value(value);
            }
            let error = metric_alarm(&builder.build()).expect_err("not a state");
            assert_eq!(error.operation, "cloudwatch:DescribeAlarms");
            assert!(!error.retryable);
            assert!(error.message.contains("shop-prod-5xx"), "{error}");
        }
    }

    #[test]
    fn a_missing_state_time_is_an_error() {
        let alarm = MetricAlarm::builder()
            .alarm_name("shop-prod-5xx")
            .state_value(StateValue::Ok)
            .build();
        let error = metric_alarm(&alarm).expect_err("no time");
        assert!(error.message.contains("StateUpdatedTimestamp"), "{error}");
    }

    #[test]
    fn epoch_seconds_truncate_and_never_go_below_zero() {
        assert_eq!(epoch_seconds(Some(&at(1_767_225_600))), Some(1_767_225_600));
        assert_eq!(
            epoch_seconds(Some(&DateTime::from_fractional_secs(5, 0.999))),
            Some(5)
        );
        assert_eq!(epoch_seconds(Some(&at(-5))), Some(0));
        assert_eq!(epoch_seconds(None), None);
    }
}
