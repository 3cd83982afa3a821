//! An operator's retry: deploy a digest again whose release did not succeed.
//!
//! A release id derives from (app, environment, digest), so a failed digest
//! would stay a duplicate forever. A retry deploys it as the next generation of
//! that id (`…/<16 hex>-2`, `-3`, …) through the same claim, preflight,
//! registration and migration as a deploy; the claim links the retried release
//! to the new one (`retried_as`), so the latest generation is found by
//! following the links and a release is retried at most once.

use crate::ports::{LaneHead, ReleaseRecord, Retried};
use crate::release::{ReleaseId, ReleaseState};

/// What a retry releases: the id of the new generation (or of the interrupted
/// one it resumes), and the release it deploys again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub id: ReleaseId,
    /// `None` when the retry resumes the latest generation instead.
    pub of: Option<Retried>,
}

/// The verdict on a retry, from the lane head and the digest's latest generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryPlan {
    Retry(Retry),
    Refuse(String),
}

/// Decides a retry of `latest`, the newest generation of the digest in the lane
/// (`None`: the digest was never released there).
///
/// FAILED, SUPERSEDED and REJECTED (never reached its services) retry as they are;
/// ROLLED_BACK (the digest is bad) only with `force`, which takes it off the
/// lane's bad releases; SUCCEEDED, ROLLING_BACK and anything in flight are
/// refused with the reason, except an in-flight generation that an AWS failure
/// interrupted, which the retry resumes as a repeated deploy would.
pub fn decide_retry(head: &LaneHead, latest: Option<&ReleaseRecord>, force: bool) -> RetryPlan {
    let Some(latest) = latest else {
        return RetryPlan::Refuse(
            "this digest has no release in the lane to retry; deploy it with {\"deploy\": …}"
                .to_owned(),
        );
    };
    let what = format!(
        "{} ({}@{})",
        latest.id, latest.lane.repository, latest.digest
    );
    let unmark_bad = match latest.state {
        ReleaseState::Failed | ReleaseState::Superseded | ReleaseState::Rejected => false,
        ReleaseState::RolledBack if force => true,
        ReleaseState::RolledBack => {
            return RetryPlan::Refuse(format!(
                "{what} was rolled back ({}) and is marked bad; retry with \"force\": true to deploy it again",
                latest.reason.as_deref().unwrap_or("no reason recorded")
            ))
        }
        ReleaseState::RollingBack => {
            return RetryPlan::Refuse(format!(
                "{what} is being rolled back; retry once the rollback has finished"
            ))
        }
        ReleaseState::Succeeded => {
            return RetryPlan::Refuse(format!(
                "{what} succeeded; there is nothing to retry (roll back to it to run it again)"
            ))
        }
        state => {
            let holds_lane = head.in_flight.as_ref().is_some_and(|p| p.id == latest.id);
            if latest.interrupted.is_some() && holds_lane {
                return RetryPlan::Retry(Retry {
                    id: latest.id.clone(),
                    of: None,
                });
            }
            return RetryPlan::Refuse(format!(
                "{what} is in flight ({state}); there is nothing to retry yet"
            ));
        }
    };
    match latest.id.next_generation() {
        Ok(id) => RetryPlan::Retry(Retry {
            id,
            of: Some(Retried {
                id: latest.id.clone(),
                state: latest.state,
                unmark_bad,
            }),
        }),
        Err(e) => RetryPlan::Refuse(format!("{what} cannot be retried: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::ReleasePointer;

    const DIGEST: &str = "sha256:3f2a9c1b7e40d5a1c0ffee00112233445566778899aabbccddeeff0011223344";

    fn release(state: ReleaseState) -> ReleaseRecord {
        ReleaseRecord {
            id: ReleaseId::derive("shop", "prod", DIGEST),
            digest: DIGEST.into(),
            reason: Some("migration exited 1".into()),
            ..ReleaseRecord::example(state)
        }
    }

    fn refusal(plan: RetryPlan) -> String {
        match plan {
            RetryPlan::Refuse(reason) => reason,
            other => panic!("expected a refusal: {other:?}"),
        }
    }

    #[test]
    fn a_failed_release_is_retried_as_the_next_generation_without_force() {
        let failed = release(ReleaseState::Failed);
        let plan = decide_retry(&LaneHead::default(), Some(&failed), false);
        assert_eq!(
            plan,
            RetryPlan::Retry(Retry {
                id: failed.id.next_generation().expect("fits"),
                of: Some(Retried {
                    id: failed.id.clone(),
                    state: ReleaseState::Failed,
                    unmark_bad: false,
                }),
            })
        );
    }

    #[test]
    fn a_retry_of_a_retry_is_the_generation_after_it() {
        let second = ReleaseRecord {
            id: release(ReleaseState::Failed)
                .id
                .next_generation()
                .expect("fits"),
            ..release(ReleaseState::Failed)
        };
        let RetryPlan::Retry(retry) = decide_retry(&LaneHead::default(), Some(&second), false)
        else {
            panic!("expected a retry");
        };
        assert_eq!(retry.id.generation(), 3);
        assert_eq!(retry.id.first_generation(), second.id.first_generation());
        assert_eq!(retry.of.map(|r| r.id), Some(second.id));
    }

    #[test]
    fn a_rolled_back_release_is_refused_without_force_naming_the_way_out() {
        let bad = release(ReleaseState::RolledBack);
        let reason = refusal(decide_retry(&LaneHead::default(), Some(&bad), false));
        assert!(reason.contains("marked bad"), "{reason}");
        assert!(reason.contains("\"force\": true"), "{reason}");
        assert!(reason.contains("migration exited 1"), "{reason}");
    }

    #[test]
    fn a_forced_retry_of_a_rolled_back_release_takes_it_off_the_bad_releases() {
        let bad = release(ReleaseState::RolledBack);
        let RetryPlan::Retry(retry) = decide_retry(&LaneHead::default(), Some(&bad), true) else {
            panic!("expected a retry");
        };
        assert_eq!(
            retry.of,
            Some(Retried {
                id: bad.id.clone(),
                state: ReleaseState::RolledBack,
                unmark_bad: true,
            })
        );
    }

    #[test]
    fn a_superseded_release_is_retried_like_a_failed_one() {
        let superseded = release(ReleaseState::Superseded);
        let plan = decide_retry(&LaneHead::default(), Some(&superseded), false);
        assert!(
            matches!(&plan, RetryPlan::Retry(Retry { of: Some(of), .. }) if !of.unmark_bad),
            "{plan:?}"
        );
    }

    #[test]
    fn succeeded_rolling_back_and_in_flight_releases_are_refused_with_the_reason() {
        for (state, words) in [
            (ReleaseState::Succeeded, "succeeded"),
            (ReleaseState::RollingBack, "being rolled back"),
            (ReleaseState::Claimed, "in flight (CLAIMED)"),
            (ReleaseState::Migrating, "in flight (MIGRATING)"),
            (ReleaseState::Baking, "in flight (BAKING)"),
        ] {
            for force in [false, true] {
                let reason = refusal(decide_retry(
                    &LaneHead::default(),
                    Some(&release(state)),
                    force,
                ));
                assert!(reason.contains(words), "{state:?}: {reason}");
                assert!(reason.contains("shop/prod/"), "names the release: {reason}");
            }
        }
    }

    #[test]
    fn an_interrupted_generation_that_holds_its_lane_is_resumed_not_retried() {
        let interrupted = ReleaseRecord {
            interrupted: Some("ThrottlingException".into()),
            ..release(ReleaseState::Migrating)
        };
        let head = LaneHead {
            in_flight: Some(ReleasePointer {
                id: interrupted.id.clone(),
                tag: interrupted.tag.clone(),
                digest: interrupted.digest.clone(),
            }),
            ..LaneHead::default()
        };
        assert_eq!(
            decide_retry(&head, Some(&interrupted), false),
            RetryPlan::Retry(Retry {
                id: interrupted.id.clone(),
                of: None,
            })
        );
        // Not holding the lane, it is not resumable: refused.
        let reason = refusal(decide_retry(
            &LaneHead::default(),
            Some(&interrupted),
            false,
        ));
        assert!(reason.contains("in flight"), "{reason}");
    }

    #[test]
    fn a_digest_never_released_in_the_lane_is_refused_pointing_at_deploy() {
        let reason = refusal(decide_retry(&LaneHead::default(), None, false));
        assert!(reason.contains("\"deploy\""), "{reason}");
    }
}
