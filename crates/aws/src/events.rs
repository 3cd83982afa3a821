//! The audit trail on EventBridge: `source: ferry`, `detail-type: Release State Change`.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use ferry_core::ports::{EventSink, PortError, PortResult, ReleaseEvent};

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

impl EventSink for EventBus {
    async fn emit(&self, events: &[ReleaseEvent]) -> PortResult<()> {
        // PutEvents takes at most 10 entries per call.
        for chunk in events.chunks(10) {
            let mut entries = Vec::with_capacity(chunk.len());
            for event in chunk {
                let detail = serde_json::to_string(event)
                    .map_err(|e| PortError::new("events:PutEvents", e.to_string()))?;
                entries.push(
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(SOURCE)
                        .detail_type(DETAIL_TYPE)
                        .detail(detail)
                        .build(),
                );
            }
            let out = self
                .client
                .put_events()
                .set_entries(Some(entries))
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
