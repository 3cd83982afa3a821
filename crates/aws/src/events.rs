//! The audit trail on EventBridge: `source: ferry`, `detail-type: Release State Change`;
//! the reconcile pass's `Reconciled` and `Drift Detected` on the same source and bus.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use ferry_core::ports::{EventSink, Notice, PortError, PortResult, ReleaseEvent};
use serde::Serialize;

use crate::error::port_error;

pub const SOURCE: &str = "ferry";
pub const DETAIL_TYPE: &str = "Release State Change";

#[derive(Clone)]
pub struct EventBus {
    client: Client,
    bus: String,
}

impl EventBus {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        EventBus {
            client,
            bus: bus.into(),
        }
    }
}

/// PutEvents takes at most 10 entries per call.
pub const PUT_EVENTS_LIMIT: usize = 10;

/// One PutEvents entry on `bus` from ferry: the detail-type and the detail as JSON.
pub fn entry<T: Serialize>(
    bus: &str,
    detail_type: &str,
    detail: &T,
) -> Result<PutEventsRequestEntry, PortError> {
    let detail = serde_json::to_string(detail)
        .map_err(|e| PortError::new("events:PutEvents", e.to_string()))?;
    Ok(PutEventsRequestEntry::builder()
        .event_bus_name(bus)
        .source(SOURCE)
        .detail_type(detail_type)
        .detail(detail)
        .build())
}

impl EventBus {
    /// Puts `entries`, ten per call, in order; an entry EventBridge did not
    /// accept fails the call as retryable.
    async fn put(&self, entries: Vec<PutEventsRequestEntry>) -> PortResult<()> {
        for chunk in entries.chunks(PUT_EVENTS_LIMIT) {
            let out = self
                .client
                .put_events()
                .set_entries(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| port_error("events:PutEvents", e))?;
            if out.failed_entry_count() > 0 {
                return Err(PortError::new(
                    "events:PutEvents",
                    format!("{} event(s) were not accepted", out.failed_entry_count()),
                )
                .retryable());
            }
        }
        Ok(())
    }
}

impl EventSink for EventBus {
    async fn emit(&self, events: &[ReleaseEvent]) -> PortResult<()> {
        let entries = events
            .iter()
            .map(|event| entry(&self.bus, DETAIL_TYPE, event))
            .collect::<Result<Vec<_>, _>>()?;
        self.put(entries).await
    }

    async fn notify(&self, notices: &[Notice]) -> PortResult<()> {
        let entries = notices
            .iter()
            .map(|notice| entry(&self.bus, notice.kind.detail_type(), notice))
            .collect::<Result<Vec<_>, _>>()?;
        self.put(entries).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::ports::NoticeKind;

    fn drift() -> Notice {
        Notice {
            kind: NoticeKind::DriftDetected,
            app: "shop".into(),
            environment: "prod".into(),
            repository: "shop".into(),
            release_id: Some("shop/prod/3f2a9c1b7e40d5a1".into()),
            found: "api runs shop-api:7, not shop-api:5".into(),
            done: "reported".into(),
            service: Some("api".into()),
            expected: Some("arn:aws:ecs:eu-west-1:123456789012:task-definition/shop-api:5".into()),
            actual: Some("arn:aws:ecs:eu-west-1:123456789012:task-definition/shop-api:7".into()),
        }
    }

    #[test]
    fn a_drift_notice_is_a_drift_detected_event_from_ferry_naming_service_and_revisions() {
        let entry = entry("default", drift().kind.detail_type(), &drift()).expect("entry");
        assert_eq!(entry.source(), Some("ferry"));
        assert_eq!(entry.event_bus_name(), Some("default"));
        assert_eq!(entry.detail_type(), Some("Drift Detected"));
        let detail: serde_json::Value =
            serde_json::from_str(entry.detail().unwrap_or_default()).expect("JSON");
        assert_eq!(
            detail,
            serde_json::json!({
                "app": "shop",
                "environment": "prod",
                "repository": "shop",
                "releaseId": "shop/prod/3f2a9c1b7e40d5a1",
                "found": "api runs shop-api:7, not shop-api:5",
                "done": "reported",
                "service": "api",
                "expected": "arn:aws:ecs:eu-west-1:123456789012:task-definition/shop-api:5",
                "actual": "arn:aws:ecs:eu-west-1:123456789012:task-definition/shop-api:7",
            })
        );
    }

    #[test]
    fn a_reconciled_notice_carries_what_was_found_and_done_and_no_drift_fields() {
        let notice = Notice {
            kind: NoticeKind::Reconciled,
            service: None,
            expected: None,
            actual: None,
            found: "deployment of api COMPLETED, its event never arrived".into(),
            done: "marked api completed".into(),
            ..drift()
        };
        let entry = entry("ferry-bus", notice.kind.detail_type(), &notice).expect("entry");
        assert_eq!(entry.detail_type(), Some("Reconciled"));
        assert_eq!(entry.event_bus_name(), Some("ferry-bus"));
        let detail: serde_json::Value =
            serde_json::from_str(entry.detail().unwrap_or_default()).expect("JSON");
        let mut keys: Vec<&str> = detail
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "app",
                "done",
                "environment",
                "found",
                "releaseId",
                "repository"
            ]
        );
    }
}
