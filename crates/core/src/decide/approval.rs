//! The approval gate: an environment with `approval = true` prepares a release
//! (claim, preflight, registration) and parks it in AWAITING_APPROVAL; an
//! operator's approve continues it where an ungated release goes after
//! registration (the migration, or the rollout), a reject ends it (REJECTED).
//!
//! Expiry needs no timer: the request's expiry is recorded on the release
//! (`approval_expires_at`); an approve at or after it is refused and ends the
//! release, and the reconcile pass ends any expired request it finds.

use crate::ports::ReleaseRecord;
use crate::release::{ReleaseState, Transition};

/// What the operator said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Reject { reason: String },
}

/// What to do with one release on an operator's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalStep {
    /// The release is not awaiting approval (approved, rejected or superseded
    /// already: a duplicate verdict, or one that lost a race): nothing to do.
    NotAwaiting(ReleaseState),
    /// The request expired before the approve: the release is rejected with
    /// this reason instead (the same conditional write as a reject).
    Expired { reason: String },
    /// Approved: take this transition (to the migration or to the rollout).
    Approve(Transition),
    /// Rejected: the release ends with this reason.
    Reject { reason: String },
}

/// Whether the approval request of `record` expired by `now` (epoch seconds).
pub fn approval_expired(record: &ReleaseRecord, now: u64) -> bool {
    record.state == ReleaseState::AwaitingApproval
        && record.approval_expires_at.is_some_and(|at| now >= at)
}

/// The reason an expired request ends its release with.
pub fn expiry_reason(record: &ReleaseRecord) -> String {
    format!(
        "the approval request expired at {} (epoch seconds) without an approve; push or deploy again to ask again",
        record.approval_expires_at.unwrap_or_default()
    )
}

/// Decides an operator's verdict on a release read from the ledger.
pub fn decide_approval(record: &ReleaseRecord, verdict: &Verdict, now: u64) -> ApprovalStep {
    if record.state != ReleaseState::AwaitingApproval {
        return ApprovalStep::NotAwaiting(record.state);
    }
    match verdict {
        Verdict::Approve if approval_expired(record, now) => ApprovalStep::Expired {
            reason: expiry_reason(record),
        },
        Verdict::Approve => ApprovalStep::Approve(match record.migration_task_definition {
            Some(_) => Transition::ApproveMigration,
            None => Transition::ApproveRollout,
        }),
        // A reject of an expired request still rejects: the operator's words
        // are the better record.
        Verdict::Reject { reason } => ApprovalStep::Reject {
            reason: format!("rejected by an operator: {reason}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn awaiting(expires_at: u64, migration: bool) -> ReleaseRecord {
        let mut record = ReleaseRecord::example(ReleaseState::AwaitingApproval);
        record.approval_expires_at = Some(expires_at);
        if migration {
            record.migration_task_definition = Some("arn:shop-migrate:2".into());
        }
        record
    }

    #[test]
    fn an_approve_continues_to_the_migration_when_the_release_has_one() {
        assert_eq!(
            decide_approval(&awaiting(100, true), &Verdict::Approve, 99),
            ApprovalStep::Approve(Transition::ApproveMigration)
        );
        assert_eq!(
            decide_approval(&awaiting(100, false), &Verdict::Approve, 99),
            ApprovalStep::Approve(Transition::ApproveRollout)
        );
    }

    #[test]
    fn an_approve_at_or_after_the_expiry_rejects_the_release_naming_the_expiry() {
        let step = decide_approval(&awaiting(100, true), &Verdict::Approve, 100);
        let ApprovalStep::Expired { reason } = step else {
            panic!("expected expiry, got {step:?}");
        };
        assert!(reason.contains("expired at 100"), "{reason}");
    }

    #[test]
    fn a_reject_names_the_operators_reason_even_after_the_expiry() {
        let verdict = Verdict::Reject {
            reason: "change freeze".into(),
        };
        assert_eq!(
            decide_approval(&awaiting(100, false), &verdict, 500),
            ApprovalStep::Reject {
                reason: "rejected by an operator: change freeze".into()
            }
        );
    }

    #[test]
    fn a_verdict_on_a_release_that_no_longer_awaits_approval_does_nothing() {
        for state in [
            ReleaseState::Migrating,
            ReleaseState::Rejected,
            ReleaseState::Superseded,
        ] {
            let record = ReleaseRecord {
                state,
                ..awaiting(100, true)
            };
            assert_eq!(
                decide_approval(&record, &Verdict::Approve, 1),
                ApprovalStep::NotAwaiting(state)
            );
        }
    }

    #[test]
    fn only_a_release_awaiting_approval_past_its_expiry_is_expired() {
        assert!(approval_expired(&awaiting(100, false), 100));
        assert!(!approval_expired(&awaiting(100, false), 99));
        let approved = ReleaseRecord {
            state: ReleaseState::Deploying,
            ..awaiting(100, false)
        };
        assert!(!approval_expired(&approved, 1_000));
    }
}
