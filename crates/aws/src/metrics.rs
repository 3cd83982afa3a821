//! ferry's release metrics as CloudWatch embedded metric format (EMF): one JSON
//! line per measurement on stdout, which Lambda sends to the function's log group
//! and CloudWatch turns into metrics. No API call, no permission beyond the
//! logs the functions write already.
//!
//! The shape is the EMF specification's (CloudWatch User Guide, "Specification:
//! Embedded metric format"): a root object with `_aws` holding `Timestamp`
//! (epoch milliseconds) and `CloudWatchMetrics`, an array of directives each
//! with `Namespace`, `Dimensions` (an array of dimension sets, each an array of
//! member names) and `Metrics` (`Name`, `Unit`); every dimension and metric
//! named there is a member of the root object ("target members"), a dimension's
//! value a string, a metric's a number.
//!
//! Namespace `ferry`; durations in `Seconds` with the dimensions
//! `[App, Environment]`, outcomes as `Releases` (`Count`, 1) with
//! `[App, Environment, Outcome]`. App and environment names are ferry's
//! validated names (letters, digits, `_`, `-`) and the outcome a state's
//! spelling: no free text reaches a dimension.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use ferry_core::metrics::{Measurement, Metric};
use ferry_core::ports::Metrics;
use serde_json::{json, Value};

pub const NAMESPACE: &str = "ferry";

/// Writes the measurements to stdout, one EMF line each.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmfMetrics;

fn epoch_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// The EMF document of one measurement taken at `timestamp_ms`.
pub fn emf(measurement: &Measurement, timestamp_ms: u64) -> Value {
    let metric = measurement.value;
    let (value, unit, dimensions) = match metric {
        Metric::ReleaseDuration(s) | Metric::MigrationDuration(s) | Metric::TimeToRollback(s) => {
            (s, "Seconds", vec!["App", "Environment"])
        }
        Metric::Outcome(_) => (1, "Count", vec!["App", "Environment", "Outcome"]),
    };
    let mut doc = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions],
                "Metrics": [{"Name": metric.name(), "Unit": unit}],
            }],
        },
        "App": measurement.app,
        "Environment": measurement.environment,
        metric.name(): value,
    });
    if let Metric::Outcome(state) = metric {
        doc["Outcome"] = Value::from(state.as_str());
    }
    doc
}

impl Metrics for EmfMetrics {
    fn now(&self) -> u64 {
        epoch_millis() / 1000
    }

    fn record(&self, measurements: &[Measurement]) {
        let at = epoch_millis();
        // Each line goes out in one write under the stdout lock, as the log
        // layer's lines do, so the two never interleave within a line.
        let mut out = std::io::stdout().lock();
        for measurement in measurements {
            let mut line = emf(measurement, at).to_string();
            line.push('\n');
            if let Err(error) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
                tracing::warn!(%error, metric = measurement.value.name(), "could not write a metric");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::release::ReleaseState;

    fn measured(value: Metric) -> Measurement {
        Measurement {
            app: "shop".into(),
            environment: "prod".into(),
            value,
        }
    }

    /// The `_aws` metadata's one directive, checked against the specification.
    fn directive(doc: &Value) -> &Value {
        let aws = &doc["_aws"];
        assert_eq!(
            aws["Timestamp"], 1_767_225_600_000_u64,
            "epoch milliseconds"
        );
        let directives = aws["CloudWatchMetrics"].as_array().expect("an array");
        assert_eq!(directives.len(), 1);
        let directive = &directives[0];
        assert_eq!(directive["Namespace"], "ferry");
        // every dimension and metric named is a member of the root object
        for set in directive["Dimensions"].as_array().expect("dimension sets") {
            for name in set.as_array().expect("a dimension set") {
                let member = &doc[name.as_str().expect("a member name")];
                assert!(member.is_string(), "dimension {name} is a string member");
            }
        }
        for metric in directive["Metrics"].as_array().expect("metrics") {
            assert!(doc[metric["Name"].as_str().expect("a name")].is_number());
        }
        directive
    }

    #[test]
    fn a_duration_is_seconds_by_app_and_environment_in_the_ferry_namespace() {
        let doc = emf(&measured(Metric::ReleaseDuration(754)), 1_767_225_600_000);
        let directive = directive(&doc);
        assert_eq!(directive["Dimensions"], json!([["App", "Environment"]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "ReleaseDuration", "Unit": "Seconds"}])
        );
        assert_eq!(doc["ReleaseDuration"], 754);
        assert_eq!(doc["App"], "shop");
        assert_eq!(doc["Environment"], "prod");
        let mut keys: Vec<&str> = doc
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort_unstable();
        assert_eq!(keys, ["App", "Environment", "ReleaseDuration", "_aws"]);
    }

    #[test]
    fn migration_and_rollback_durations_are_seconds_under_their_own_names() {
        for (metric, name) in [
            (Metric::MigrationDuration(42), "MigrationDuration"),
            (Metric::TimeToRollback(9), "TimeToRollback"),
        ] {
            let doc = emf(&measured(metric), 1_767_225_600_000);
            assert_eq!(
                directive(&doc)["Metrics"],
                json!([{"Name": name, "Unit": "Seconds"}])
            );
        }
    }

    #[test]
    fn an_outcome_counts_one_release_by_its_state_spelling() {
        let doc = emf(
            &measured(Metric::Outcome(ReleaseState::RolledBack)),
            1_767_225_600_000,
        );
        let directive = directive(&doc);
        assert_eq!(
            directive["Dimensions"],
            json!([["App", "Environment", "Outcome"]])
        );
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "Releases", "Unit": "Count"}])
        );
        assert_eq!(doc["Releases"], 1);
        assert_eq!(doc["Outcome"], "ROLLED_BACK");
    }

    #[test]
    fn a_line_is_one_line_of_json_of_a_few_hundred_bytes() {
        let line = emf(
            &measured(Metric::Outcome(ReleaseState::Succeeded)),
            1_767_225_600_000,
        )
        .to_string();
        assert!(!line.contains('\n'));
        assert!(line.len() < 300, "{} bytes", line.len());
        let parsed: Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(parsed["Outcome"], "SUCCEEDED");
    }
}
