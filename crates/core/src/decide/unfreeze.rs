//! An operator lifts a lane's freeze.

use crate::ports::{HeldPush, LaneHead};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnfreezePlan {
    NotFrozen,
    /// A rollback is still putting services back: lifting the freeze now would
    /// let a held push race it.
    Refuse(String),
    /// Lift the freeze (conditional on the head version), then deploy the held push.
    Unfreeze {
        held: Option<HeldPush>,
    },
}

pub fn decide_unfreeze(head: &LaneHead) -> UnfreezePlan {
    if let Some(rollback) = &head.rolling_back {
        return UnfreezePlan::Refuse(format!(
            "the rollback of {} ({}) has not finished putting every service back; unfreeze once it has",
            rollback.release.id, rollback.release.tag
        ));
    }
    if !head.frozen {
        return UnfreezePlan::NotFrozen;
    }
    UnfreezePlan::Unfreeze {
        held: head.held.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{ReleasePointer, RollbackInProgress};
    use crate::release::ReleaseId;

    #[test]
    fn unfreezing_a_lane_that_is_not_frozen_does_nothing() {
        assert_eq!(
            decide_unfreeze(&LaneHead::default()),
            UnfreezePlan::NotFrozen
        );
    }

    #[test]
    fn unfreezing_deploys_the_held_push() {
        let held = HeldPush {
            tag: "1.4.0".into(),
            digest: "sha256:cd".into(),
            pushed_at: None,
        };
        let head = LaneHead {
            frozen: true,
            held: Some(held.clone()),
            ..LaneHead::default()
        };
        assert_eq!(
            decide_unfreeze(&head),
            UnfreezePlan::Unfreeze { held: Some(held) }
        );
    }

    #[test]
    fn a_lane_whose_rollback_is_unfinished_is_not_unfrozen() {
        let head = LaneHead {
            frozen: true,
            rolling_back: Some(RollbackInProgress {
                release: ReleasePointer {
                    id: ReleaseId::derive("shop", "prod", "sha256:ab"),
                    tag: "1.3.0".into(),
                    digest: "sha256:ab".into(),
                },
                target: ReleaseId::derive("shop", "prod", "sha256:cd"),
                reason: "alarm".into(),
                interrupted: false,
            }),
            ..LaneHead::default()
        };
        assert!(matches!(decide_unfreeze(&head), UnfreezePlan::Refuse(r) if r.contains("1.3.0")));
    }
}
