//! One ledger contract, run against both ledgers: the in-memory fake the engine's
//! scenario tests use (`crates/core/tests/fakes`) and `DynamoLedger` on a moto
//! server. Each contract is a generic function over the ledger traits, asserting
//! only what the traits' own read methods return; the `contracts!` macro runs
//! every contract once per implementation (`fake::…`, `dynamo::…`), so the fake
//! cannot drift from the real conditional writes.
//!
//! One moto server serves every `dynamo::` test of this file; each test gets a
//! fresh table (and its own SDK client, bound to its own runtime).
//!
//! `updated_at` is the one field the ledgers legitimately differ on: DynamoDB
//! stamps it with the wall clock on every write, the fake has no clock. The
//! contracts compare records without it ([`unstamped`]) and assert only that a
//! write never moves it backwards.

mod support;

#[path = "../../core/tests/fakes/mod.rs"]
mod fakes;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use ferry_aws::ledger::DynamoLedger;
use ferry_core::names::PushTime;
use ferry_core::ports::{
    Claim, ClaimOutcome, HeadChange, HeldPush, KnownGoodRelease, Lane, LaneHead, Ledger,
    PortResult, ReleasePointer, ReleaseRecord, ReleaseUpdate, Retried, RollbackInProgress,
    RollbackLedger, RollbackWrite, TagClaim,
};
use ferry_core::release::{Guard, ReleaseId, ReleaseState, Transition};

// ---------------------------------------------------------------------------
// The two ledgers

/// The moto server shared by the file's `dynamo::` tests. It lives as long as
/// the test process: its stdin is a pipe held here, and it exits at EOF.
fn emulator() -> &'static support::Emulator {
    static EMULATOR: OnceLock<support::Emulator> = OnceLock::new();
    EMULATOR.get_or_init(support::Emulator::start)
}

/// A `DynamoLedger` over a fresh table of the shared server, with an HTTP
/// client of its own (a pooled connection must not outlive its test's runtime).
async fn dynamo_ledger() -> DynamoLedger {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let sdk = emulator()
        .sdk
        .to_builder()
        .http_client(ferry_aws::clients::http_client())
        .build();
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = format!("ledger-contract-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute definition")
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key schema")
    };
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .send()
        .await
        .expect("create the ledger table");
    DynamoLedger::new(client, table)
}

/// Every contract, once against the fake and once against DynamoDB.
macro_rules! contracts {
    ($($name:ident),* $(,)?) => {
        mod fake {
            $(
                #[tokio::test]
                async fn $name() {
                    super::contract::$name(&super::fakes::FakeAws::default()).await;
                }
            )*
        }

        mod dynamo {
            $(
                #[tokio::test]
                async fn $name() {
                    super::contract::$name(&super::dynamo_ledger().await).await;
                }
            )*
        }
    };
}

contracts!(
    // claim
    a_new_release_is_claimed_and_the_head_points_at_it,
    the_same_release_claimed_again_is_already_claimed,
    a_claim_with_a_stale_head_version_is_head_moved,
    a_claim_that_supersedes_an_in_flight_release_marks_it_superseded,
    superseding_a_release_that_left_flight_is_head_moved,
    the_newest_push_time_round_trips_and_a_claim_without_one_keeps_it,
    a_claim_that_unfreezes_clears_frozen_and_held,
    a_retry_claim_links_the_release_it_retries_which_is_retried_once,
    a_retry_claim_fails_on_a_release_no_longer_in_the_state_read,
    a_forced_retry_claim_takes_the_release_off_the_bad_releases,
    // update
    a_transition_applies_only_from_its_from_states_and_sets_its_state,
    a_write_that_stays_keeps_the_state,
    an_update_whose_condition_fails_changes_nothing,
    the_deployment_condition_admits_only_the_recorded_deployment,
    an_interrupted_release_is_resumed_once,
    a_transition_clears_the_interrupted_mark,
    completed_services_accumulate,
    every_field_of_an_update_is_written,
    // approval
    an_approve_and_a_reject_of_one_awaiting_release_take_effect_once,
    // settle
    clearing_in_flight_frees_the_lane_only_while_the_head_points_at_the_release,
    a_settle_whose_release_condition_fails_changes_nothing,
    a_known_good_settle_writes_exactly_the_given_history,
    // rollback
    a_rollback_applies_only_at_the_expected_head_version_and_records_everything,
    a_rollback_waits_for_the_one_in_progress,
    an_interrupted_rollback_is_resumed_once,
    finishing_a_rollback_rolls_the_release_back_once,
    // hold / unfreeze
    a_push_is_held_only_at_the_head_version,
    unfreezing_applies_only_at_the_head_version_and_drops_the_held_push,
    // records
    a_release_record_round_trips_every_field,
    a_bare_release_record_round_trips,
    // the claim on the image-tag writes
    the_tag_writes_are_claimed_by_one_holder_at_a_time,
    only_the_holder_gives_the_claim_back,
    a_held_claim_is_waited_for_until_its_holder_gives_it_back,
);

// ---------------------------------------------------------------------------
// Fixtures

fn lane() -> Lane {
    fakes::shop_lane()
}

fn pushed_at(offset_ms: i64) -> PushTime {
    PushTime::from_epoch_millis(fakes::T0 as i64 * 1000 + offset_ms)
}

/// A release of `shop:<tag>` as a claim records it: CLAIMED, with the fields a
/// claim knows (no migration or deployment yet).
fn release(tag: &str) -> ReleaseRecord {
    let digest = fakes::digest_of(fakes::SHOP_REPOSITORY, tag);
    ReleaseRecord {
        previous_tag: Some("0.9.0".into()),
        pushed_at: Some(pushed_at(250)),
        ..ReleaseRecord::claimed(
            ReleaseId::derive("shop", "prod", &digest),
            lane(),
            tag.into(),
            digest,
            fakes::SHOP_CLUSTER.into(),
            fakes::SHOP_SERVICES.map(str::to_owned).to_vec(),
            fakes::T0,
        )
    }
}

fn pointer(r: &ReleaseRecord) -> ReleasePointer {
    ReleasePointer {
        id: r.id.clone(),
        tag: r.tag.clone(),
        digest: r.digest.clone(),
    }
}

fn known_good(r: &ReleaseRecord) -> KnownGoodRelease {
    KnownGoodRelease {
        id: r.id.clone(),
        tag: r.tag.clone(),
        digest: r.digest.clone(),
        task_definitions: task_definitions(7),
    }
}

/// service → `shop-<service>:<revision>`
fn task_definitions(revision: usize) -> BTreeMap<String, String> {
    fakes::SHOP_SERVICES
        .iter()
        .map(|s| {
            (
                (*s).to_owned(),
                fakes::task_definition_arn(&format!("shop-{s}"), revision),
            )
        })
        .collect()
}

/// A plain claim of `r` at `expected` head version.
fn claim_of(r: &ReleaseRecord, expected: Option<u64>) -> Claim<'_> {
    Claim {
        release: r,
        expected_head_version: expected,
        supersedes: None,
        latest_pushed_at: None,
        unfreeze: false,
        retries: None,
    }
}

/// The record without the write stamp DynamoDB sets from its clock.
fn unstamped(mut r: ReleaseRecord) -> ReleaseRecord {
    r.updated_at = 0;
    r
}

fn update_of(f: impl FnOnce(&mut ReleaseUpdate)) -> ReleaseUpdate {
    let mut update = ReleaseUpdate::default();
    f(&mut update);
    update
}

// ---------------------------------------------------------------------------
// Reading through the traits

async fn head_of<L: Ledger>(ledger: &L) -> Option<LaneHead> {
    ledger.head(&lane()).await.expect("read the head")
}

async fn head<L: Ledger>(ledger: &L) -> LaneHead {
    head_of(ledger).await.expect("the lane has a head")
}

async fn record_of<L: Ledger>(ledger: &L, id: &ReleaseId) -> Option<ReleaseRecord> {
    ledger.release(id).await.expect("read the release")
}

async fn record<L: Ledger>(ledger: &L, id: &ReleaseId) -> ReleaseRecord {
    record_of(ledger, id)
        .await
        .unwrap_or_else(|| panic!("release {id} is in the ledger"))
}

async fn state<L: Ledger>(ledger: &L, id: &ReleaseId) -> ReleaseState {
    record(ledger, id).await.state
}

// ---------------------------------------------------------------------------
// Getting a lane into shape through the traits

/// Claims `tag` at the head's current version.
async fn claimed<L: Ledger>(ledger: &L, tag: &str) -> ReleaseRecord {
    let r = release(tag);
    let expected = head_of(ledger).await.map(|h| h.version);
    let outcome = ledger.claim(claim_of(&r, expected)).await.expect("claim");
    assert_eq!(outcome, ClaimOutcome::Claimed, "claiming {tag}");
    record(ledger, &r.id).await
}

/// Claims `tag` and moves it to DEPLOYING (no migration).
async fn deploying<L: Ledger>(ledger: &L, tag: &str) -> ReleaseRecord {
    let r = claimed(ledger, tag).await;
    ledger
        .update(
            &r.id,
            Transition::SkipMigration.guard(),
            ReleaseUpdate::default(),
        )
        .await
        .expect("update")
        .expect("a claimed release skips its migration")
}

/// Releases `tag` to SUCCEEDED: the lane's known-good release, first in its history.
async fn succeeded<L: Ledger>(ledger: &L, tag: &str) -> ReleaseRecord {
    let r = deploying(ledger, tag).await;
    let mut history = vec![known_good(&r)];
    history.extend(head(ledger).await.history);
    history.truncate(10);
    let settled = ledger
        .settle(
            &r,
            Transition::Complete.guard(),
            ReleaseUpdate::default(),
            HeadChange::KnownGood {
                pointer: pointer(&r),
                history,
            },
        )
        .await
        .expect("settle");
    assert!(settled, "{tag} completes");
    record(ledger, &r.id).await
}

/// 1.0.0 known-good, 1.1.0 deploying and rolled back to it: the lane is frozen
/// with a rollback in progress. Returns (good, bad, the rollback recorded).
async fn rolling_back<L: Ledger + RollbackLedger>(
    ledger: &L,
) -> (ReleaseRecord, ReleaseRecord, RollbackInProgress) {
    let good = succeeded(ledger, "1.0.0").await;
    let bad = deploying(ledger, "1.1.0").await;
    let rollback = RollbackInProgress {
        release: pointer(&bad),
        target: good.id.clone(),
        reason: "alarm shop-prod-5xx".into(),
        interrupted: false,
    };
    let version = head(ledger).await.version;
    let applied = ledger
        .roll_back(RollbackWrite {
            lane: &lane(),
            expected_head_version: version,
            target: &known_good(&good),
            history: vec![known_good(&good)],
            rolling_back: &rollback,
            guard: Transition::BeginRollback.guard(),
        })
        .await
        .expect("roll back");
    assert!(applied, "the rollback applies");
    (good, bad, rollback)
}

// ---------------------------------------------------------------------------
// The contracts

mod contract {
    use super::*;

    // -- claim ------------------------------------------------------------

    pub async fn a_new_release_is_claimed_and_the_head_points_at_it<L: Ledger + RollbackLedger>(
        ledger: &L,
    ) {
        let a = release("1.0.0");
        assert_eq!(
            head_of(ledger).await,
            None,
            "no head before the first claim"
        );
        assert_eq!(record_of(ledger, &a.id).await, None);
        assert_eq!(
            ledger.read(&lane(), &a.id).await.expect("read"),
            (None, None)
        );

        let outcome = ledger
            .claim(Claim {
                latest_pushed_at: a.pushed_at,
                ..claim_of(&a, None)
            })
            .await
            .expect("claim");
        assert_eq!(outcome, ClaimOutcome::Claimed);
        let expected = LaneHead {
            version: 1,
            in_flight: Some(pointer(&a)),
            latest_pushed_at: a.pushed_at,
            ..LaneHead::default()
        };
        assert_eq!(head(ledger).await, expected);
        assert_eq!(record(ledger, &a.id).await, a, "the record as claimed");
        assert_eq!(
            ledger.read(&lane(), &a.id).await.expect("read"),
            (Some(expected), Some(a.clone())),
            "read gives the head and the release together"
        );

        // The next claim moves the version and the in-flight pointer; without
        // `supersedes`, the first release is left as it was.
        let b = release("1.1.0");
        let outcome = ledger.claim(claim_of(&b, Some(1))).await.expect("claim");
        assert_eq!(outcome, ClaimOutcome::Claimed);
        let now = head(ledger).await;
        assert_eq!(now.version, 2);
        assert_eq!(now.in_flight, Some(pointer(&b)));
        assert_eq!(state(ledger, &a.id).await, ReleaseState::Claimed);
    }

    pub async fn the_same_release_claimed_again_is_already_claimed<L: Ledger + RollbackLedger>(
        ledger: &L,
    ) {
        let a = claimed(ledger, "1.0.0").await;
        let before = head(ledger).await;
        // A redelivery, whether it read the head before or after the first claim,
        // and even if it would record something else: the release is not rewritten.
        let mut again = release("1.0.0");
        again.previous_tag = Some("0.8.0".into());
        for expected in [
            None,
            Some(0),
            Some(before.version),
            Some(before.version + 1),
        ] {
            let outcome = ledger
                .claim(claim_of(&again, expected))
                .await
                .expect("claim");
            assert_eq!(
                outcome,
                ClaimOutcome::AlreadyClaimed,
                "expected head version {expected:?}"
            );
        }
        assert_eq!(head(ledger).await, before, "the head is untouched");
        assert_eq!(record(ledger, &a.id).await, a, "the record is untouched");
    }

    pub async fn a_claim_with_a_stale_head_version_is_head_moved<L: Ledger + RollbackLedger>(
        ledger: &L,
    ) {
        claimed(ledger, "1.0.0").await;
        let before = head(ledger).await;
        assert_eq!(before.version, 1);
        let b = release("1.1.0");
        for expected in [None, Some(0), Some(2)] {
            let outcome = ledger.claim(claim_of(&b, expected)).await.expect("claim");
            assert_eq!(
                outcome,
                ClaimOutcome::HeadMoved,
                "expected head version {expected:?} against version 1"
            );
        }
        assert_eq!(head(ledger).await, before, "the head is untouched");
        assert_eq!(record_of(ledger, &b.id).await, None, "no release recorded");
    }

    pub async fn a_claim_that_supersedes_an_in_flight_release_marks_it_superseded<
        L: Ledger + RollbackLedger,
    >(
        ledger: &L,
    ) {
        let a = claimed(ledger, "1.0.0").await;
        let a = ledger
            .update(
                &a.id,
                Transition::StartMigration.guard(),
                ReleaseUpdate::default(),
            )
            .await
            .expect("update")
            .expect("migrating");
        let b = release("1.1.0");
        let outcome = ledger
            .claim(Claim {
                supersedes: Some(&a.id),
                ..claim_of(&b, Some(1))
            })
            .await
            .expect("claim");
        assert_eq!(outcome, ClaimOutcome::Claimed);
        let now = head(ledger).await;
        assert_eq!((now.version, now.in_flight), (2, Some(pointer(&b))));
        let superseded = record(ledger, &a.id).await;
        assert_eq!(superseded.state, ReleaseState::Superseded);
        assert!(superseded.updated_at >= a.updated_at);
        assert_eq!(
            unstamped(superseded),
            unstamped(ReleaseRecord {
                state: ReleaseState::Superseded,
                reason: Some(ferry_core::ports::superseded_reason(&b.id)),
                ..a
            }),
            "only the state changes, with the cause naming the newer release"
        );
        assert_eq!(record(ledger, &b.id).await, b);
    }

    pub async fn an_approve_and_a_reject_of_one_awaiting_release_take_effect_once<
        L: Ledger + RollbackLedger,
    >(
        ledger: &L,
    ) {
        let a = claimed(ledger, "1.0.0").await;
        let awaiting = ledger
            .update(
                &a.id,
                Transition::AwaitApproval.guard(),
                update_of(|u| u.approval_expires_at = Some(fakes::T0 + 3_600)),
            )
            .await
            .expect("update")
            .expect("claimed → awaiting approval");
        assert_eq!(awaiting.state, ReleaseState::AwaitingApproval);
        assert_eq!(awaiting.approval_expires_at, Some(fakes::T0 + 3_600));
        let approved = ledger
            .update(
                &a.id,
                Transition::ApproveRollout.guard(),
                ReleaseUpdate::default(),
            )
            .await
            .expect("update");
        assert_eq!(approved.map(|r| r.state), Some(ReleaseState::Deploying));
        let again = ledger
            .update(
                &a.id,
                Transition::ApproveRollout.guard(),
                ReleaseUpdate::default(),
            )
            .await
            .expect("update");
        assert_eq!(again, None, "a second approve takes no effect");
        let rejected = ledger
            .settle(
                &awaiting,
                Transition::Reject.guard(),
                update_of(|u| u.reason = Some("too late".into())),
                HeadChange::ClearInFlight,
            )
            .await
            .expect("settle");
        assert!(!rejected, "a reject after the approve takes no effect");
        let now = record(ledger, &a.id).await;
        assert_eq!((now.state, now.reason), (ReleaseState::Deploying, None));
        assert_eq!(head(ledger).await.in_flight, Some(pointer(&a)));
    }

    pub async fn superseding_a_release_that_left_flight_is_head_moved<
        L: Ledger + RollbackLedger,
    >(
        ledger: &L,
    ) {
        let a = claimed(ledger, "1.0.0").await;
        let failed = ledger
            .settle(
                &a,
                Transition::Fail.guard(),
                ReleaseUpdate::default(),
                HeadChange::ClearInFlight,
            )
            .await
            .expect("settle");
        assert!(failed);
        let a = record(ledger, &a.id).await;
        assert_eq!(a.state, ReleaseState::Failed);
        let before = head(ledger).await;

        let b = release("1.1.0");
        let gone = ReleaseId::derive("shop", "prod", &fakes::digest_of("shop", "0.1.0"));
        for old in [&a.id, &gone] {
            let outcome = ledger
                .claim(Claim {
                    supersedes: Some(old),
                    ..claim_of(&b, Some(before.version))
                })
                .await
                .expect("claim");
            assert_eq!(outcome, ClaimOutcome::HeadMoved, "superseding {old}");
        }
        assert_eq!(head(ledger).await, before, "the head is untouched");
        assert_eq!(record_of(ledger, &b.id).await, None, "no release recorded");
        assert_eq!(
            record(ledger, &a.id).await,
            a,
            "the old release is untouched"
        );
        assert_eq!(record_of(ledger, &gone).await, None);
    }

    pub async fn the_newest_push_time_round_trips_and_a_claim_without_one_keeps_it<
        L: Ledger + RollbackLedger,
    >(
        ledger: &L,
    ) {
        let first = pushed_at(123);
        let a = release("1.0.0");
        ledger
            .claim(Claim {
                latest_pushed_at: Some(first),
                ..claim_of(&a, None)
            })
            .await
            .expect("claim");
        assert_eq!(head(ledger).await.latest_pushed_at, Some(first));

        let b = release("1.1.0");
        ledger.claim(claim_of(&b, Some(1))).await.expect("claim");
        assert_eq!(
            head(ledger).await.latest_pushed_at,
            Some(first),
            "kept by a claim that names none"
        );

        let later = pushed_at(61_999);
        let c = release("1.2.0");
        ledger
            .claim(Claim {
                latest_pushed_at: Some(later),
                ..claim_of(&c, Some(2))
            })
            .await
            .expect("claim");
        let now = head(ledger).await;
        assert_eq!(now.latest_pushed_at, Some(later));
        assert_eq!(
            now.latest_pushed_at.map(PushTime::epoch_millis),
            Some(later.epoch_millis())
        );
    }

    pub async fn a_claim_that_unfreezes_clears_frozen_and_held<L: Ledger + RollbackLedger>(
        ledger: &L,
    ) {
        let (_, _, rollback) = rolling_back(ledger).await;
        assert!(ledger
            .finish_rollback(&lane(), &rollback, Transition::FinishRollback.guard())
            .await
            .expect("finish"));
        let held = HeldPush {
            tag: "1.2.0".into(),
            digest: fakes::digest_of("shop", "1.2.0"),
            pushed_at: Some(pushed_at(5_000)),
        };
        let version = head(ledger).await.version;
        assert!(ledger.hold(&lane(), version, &held).await.expect("hold"));
        let before = head(ledger).await;
        assert!(before.frozen);

        // A claim that does not unfreeze leaves the freeze and the held push.
        let c = release("1.3.0");
        assert_eq!(
            ledger
                .claim(claim_of(&c, Some(before.version)))
                .await
                .expect("claim"),
            ClaimOutcome::Claimed
        );
        let after = head(ledger).await;
        assert!(after.frozen, "still frozen");
        assert_eq!(after.held, Some(held.clone()), "still held");

        let d = release("1.4.0");
        assert_eq!(
            ledger
                .claim(Claim {
                    unfreeze: true,
                    ..claim_of(&d, Some(after.version))
                })
                .await
                .expect("claim"),
            ClaimOutcome::Claimed
        );
        let unfrozen = head(ledger).await;
        assert!(!unfrozen.frozen, "the claim lifted the freeze");
        assert_eq!(unfrozen.held, None, "and dropped the held push");
        assert_eq!(unfrozen.in_flight, Some(pointer(&d)));
        assert_eq!(
            (unfrozen.known_good, unfrozen.history, unfrozen.bad_releases),
            (after.known_good, after.history, after.bad_releases),
            "known-good, history and bad releases are kept"
        );
    }

    /// Claims the first generation of `tag` and fails it (its migration exited 1).
    async fn failed<L: Ledger + RollbackLedger>(ledger: &L, tag: &str) -> ReleaseRecord {
        let r = claimed(ledger, tag).await;
        let settled = ledger
            .settle(
                &r,
                Transition::Fail.guard(),
                update_of(|u| u.reason = Some("migration exited 1".into())),
                HeadChange::ClearInFlight,
            )
            .await
            .expect("settle");
        assert!(settled, "{tag} fails");
        record(ledger, &r.id).await
    }

    /// `of`'s next generation, as a retry's claim records it.
    fn next_generation(of: &ReleaseRecord) -> ReleaseRecord {
        ReleaseRecord {
            id: of.id.next_generation().expect("fits"),
            ..release(&of.tag)
        }
    }

    fn retried(of: &ReleaseRecord, unmark_bad: bool) -> Retried {
        Retried {
            id: of.id.clone(),
            state: of.state,
            unmark_bad,
        }
    }

    pub async fn a_retry_claim_links_the_release_it_retries_which_is_retried_once<
        L: Ledger + RollbackLedger,
    >(
        ledger: &L,
    ) {
        let first = failed(ledger, "1.0.0").await;
        assert_eq!(head(ledger).await.last_failed, Some(pointer(&first)));
        let second = next_generation(&first);
        let retry = retried(&first, false);
        let version = head(ledger).await.version;
        let outcome = ledger
            .claim(Claim {
                retries: Some(&retry),
                ..claim_of(&second, Some(version))
            })
            .await
            .expect("claim");
        assert_eq!(outcome, ClaimOutcome::Claimed);
        let linked = record(ledger, &first.id).await;
        assert_eq!(linked.retried_as.as_ref(), Some(&second.id));
        assert_eq!(
            unstamped(ReleaseRecord {
                retried_as: None,
                ..linked
            }),
            unstamped(first.clone()),
            "only the link is written to the retried release"
        );
        assert_eq!(record(ledger, &second.id).await, second);
        assert_eq!(head(ledger).await.in_flight, Some(pointer(&second)));

        // Another retry of the same release, at the head's current version: refused.
        let other = ReleaseRecord {
            id: second.id.next_generation().expect("fits"),
            ..release("1.0.0")
        };
        let before = head(ledger).await;
        let outcome = ledger
            .claim(Claim {
                retries: Some(&retry),
                ..claim_of(&other, Some(before.version))
            })
            .await
            .expect("claim");
        assert_eq!(outcome, ClaimOutcome::HeadMoved);
        assert_eq!(record_of(ledger, &other.id).await, None);
        assert_eq!(head(ledger).await, before, "the head is untouched");
        assert_eq!(
            record(ledger, &first.id).await.retried_as,
            Some(second.id.clone())
        );
    }

    pub async fn a_retry_claim_fails_on_a_release_no_longer_in_the_state_read<
        L: Ledger + RollbackLedger,
    >(
        ledger: &L,
    ) {
        let first = failed(ledger, "1.0.0").await;
        let second = next_generation(&first);
        let stale = Retried {
            state: ReleaseState::Superseded,
            ..retried(&first, false)
        };
        let before = head(ledger).await;
        let outcome = ledger
            .claim(Claim {
                retries: Some(&stale),
                ..claim_of(&second, Some(before.version))
            })
            .await
            .expect("claim");
        assert_eq!(outcome, ClaimOutcome::HeadMoved);
        assert_eq!(record_of(ledger, &second.id).await, None);
        assert_eq!(head(ledger).await, before);
        assert_eq!(record(ledger, &first.id).await.retried_as, None);
    }

    pub async fn a_forced_retry_claim_takes_the_release_off_the_bad_releases<
        L: Ledger + RollbackLedger,
    >(
        ledger: &L,
    ) {
        let (_, bad, rollback) = rolling_back(ledger).await;
        let finished = ledger
            .finish_rollback(&lane(), &rollback, Transition::FinishRollback.guard())
            .await
            .expect("finish");
        assert!(finished);
        let bad = record(ledger, &bad.id).await;
        assert_eq!(bad.state, ReleaseState::RolledBack);
        let before = head(ledger).await;
        assert!(before.bad_releases.contains(&bad.id));

        let second = next_generation(&bad);
        let retry = retried(&bad, true);
        let outcome = ledger
            .claim(Claim {
                retries: Some(&retry),
                ..claim_of(&second, Some(before.version))
            })
            .await
            .expect("claim");

        assert_eq!(outcome, ClaimOutcome::Claimed);
        let after = head(ledger).await;
        assert_eq!(
            after,
            LaneHead {
                version: before.version + 1,
                in_flight: Some(pointer(&second)),
                bad_releases: BTreeSet::new(),
                ..before
            },
            "off the bad releases, still frozen; nothing else moved"
        );
        let linked = record(ledger, &bad.id).await;
        assert_eq!(linked.state, ReleaseState::RolledBack);
        assert_eq!(linked.retried_as, Some(second.id));
    }

    // -- update -----------------------------------------------------------

    pub async fn a_transition_applies_only_from_its_from_states_and_sets_its_state<
        L: Ledger + RollbackLedger,
    >(
        ledger: &L,
    ) {
        let mut current = claimed(ledger, "1.0.0").await;
        // Claimed → Migrating → Deploying → Succeeded, trying every transition
        // the table does not allow at each step first.
        for step in [
            Transition::StartMigration,
            Transition::PassMigration,
            Transition::Complete,
        ] {
            for other in Transition::ALL
                .into_iter()
                .filter(|t| !t.from_states().contains(&current.state))
            {
                let refused = ledger
                    .update(
                        &current.id,
                        other.guard(),
                        update_of(|u| u.reason = Some("x".into())),
                    )
                    .await
                    .expect("update");
                assert_eq!(refused, None, "{other:?} from {:?}", current.state);
                assert_eq!(
                    record(ledger, &current.id).await,
                    current,
                    "{other:?} from {:?} changed nothing",
                    current.state
                );
            }
            let moved = ledger
                .update(&current.id, step.guard(), ReleaseUpdate::default())
                .await
                .expect("update")
                .unwrap_or_else(|| panic!("{step:?} from {:?}", current.state));
            assert_eq!(moved.state, step.to(), "{step:?}");
            assert!(moved.updated_at >= current.updated_at);
            assert_eq!(
                unstamped(moved.clone()),
                unstamped(ReleaseRecord {
                    state: step.to(),
                    ..current.clone()
                }),
                "{step:?} changes only the state"
            );
            assert_eq!(
                record(ledger, &moved.id).await,
                moved,
                "the update returns the record as stored"
            );
            current = moved;
        }
        assert_eq!(current.state, ReleaseState::Succeeded);
    }

    pub async fn a_write_that_stays_keeps_the_state<L: Ledger + RollbackLedger>(ledger: &L) {
        let a = claimed(ledger, "1.0.0").await;
        ledger
            .update(
                &a.id,
                Transition::StartMigration.guard(),
                ReleaseUpdate::default(),
            )
            .await
            .expect("update")
            .expect("migrating");

        let task = "arn:aws:ecs:eu-west-1:123456789012:task/shop-prod/0123";
        let written = ledger
            .update(
                &a.id,
                ReleaseState::Migrating.stays(),
                update_of(|u| u.migration_task = Some(task.into())),
            )
            .await
            .expect("update")
            .expect("stays admits its own state");
        assert_eq!(written.state, ReleaseState::Migrating);
        assert_eq!(written.migration_task.as_deref(), Some(task));

        let written = ledger
            .update(
                &a.id,
                Guard::IN_FLIGHT,
                update_of(|u| u.parameter_version = Some(7)),
            )
            .await
            .expect("update")
            .expect("IN_FLIGHT admits a migrating release");
        assert_eq!(written.state, ReleaseState::Migrating);
        assert_eq!(written.parameter_version, Some(7));

        let before = record(ledger, &a.id).await;
        for other in ReleaseState::ALL
            .into_iter()
            .filter(|s| *s != ReleaseState::Migrating)
        {
            let refused = ledger
                .update(
                    &a.id,
                    other.stays(),
                    update_of(|u| u.reason = Some("x".into())),
                )
                .await
                .expect("update");
            assert_eq!(refused, None, "{other:?}.stays() on a migrating release");
        }
        assert_eq!(record(ledger, &a.id).await, before, "nothing changed");
    }

    pub async fn an_update_whose_condition_fails_changes_nothing<L: Ledger + RollbackLedger>(
        ledger: &L,
    ) {
        let a = claimed(ledger, "1.0.0").await;
        let everything = full_update();
        for guard in [
            Transition::PassMigration.guard(),
            Transition::Complete.guard(),
            Transition::FinishRollback.guard(),
            ReleaseState::Deploying.stays(),
        ] {
            let refused = ledger
                .update(&a.id, guard, everything.clone())
                .await
                .expect("update");
            assert_eq!(refused, None, "{guard:?}");
        }
        assert_eq!(record(ledger, &a.id).await, a, "nothing changed");

        // A release that does not exist is not created by an update.
        let missing = release("2.0.0");
        for guard in [Guard::IN_FLIGHT, Transition::StartMigration.guard()] {
            let refused = ledger
                .update(&missing.id, guard, everything.clone())
                .await
                .expect("update");
            assert_eq!(refused, None);
        }
        assert_eq!(record_of(ledger, &missing.id).await, None);
    }

    pub async fn the_deployment_condition_admits_only_the_recorded_deployment<
        L: Ledger + RollbackLedger,
    >(
        ledger: &L,
    ) {
        let a = deploying(ledger, "1.0.0").await;
        let deployments: BTreeMap<String, String> = [
            ("api".to_owned(), "ecs-svc/1111".to_owned()),
            ("worker".to_owned(), "ecs-svc/2222".to_owned()),
        ]
        .into();
        let a = ledger
            .update(
                &a.id,
                ReleaseState::Deploying.stays(),
                update_of(|u| u.deployments = Some(deployments.clone())),
            )
            .await
            .expect("update")
            .expect("deployments recorded");
        assert_eq!(a.deployments, deployments);

        for (service, deployment) in [
            ("api", "ecs-svc/2222"),
            ("worker", "ecs-svc/1111"),
            ("scheduler", "ecs-svc/1111"),
            ("api", ""),
        ] {
            let refused = ledger
                .update(
                    &a.id,
                    ReleaseState::Deploying.stays(),
                    update_of(|u| {
                        u.if_deployment = Some((service.into(), deployment.into()));
                        u.completed_service = Some(service.into());
                    }),
                )
                .await
                .expect("update");
            assert_eq!(refused, None, "{service} is not on {deployment}");
        }
        assert_eq!(record(ledger, &a.id).await, a, "nothing changed");

        let done = ledger
            .update(
                &a.id,
                ReleaseState::Deploying.stays(),
                update_of(|u| {
                    u.if_deployment = Some(("api".into(), "ecs-svc/1111".into()));
                    u.completed_service = Some("api".into());
                }),
            )
            .await
            .expect("update")
            .expect("api is on ecs-svc/1111");
        assert_eq!(done.completed_services, BTreeSet::from(["api".to_owned()]));
    }

    pub async fn a_transition_clears_the_interrupted_mark<L: Ledger + RollbackLedger>(ledger: &L) {
        let a = deploying(ledger, "1.0.0").await;
        let mark = update_of(|u| u.interrupted = Some("RunTask failed".into()));
        ledger
            .update(&a.id, Guard::IN_FLIGHT, mark)
            .await
            .expect("update")
            .expect("marked");
        let baking = ledger
            .update(
                &a.id,
                Transition::StartBake.guard(),
                ReleaseUpdate::default(),
            )
            .await
            .expect("update")
            .expect("deploying → baking");
        assert_eq!(baking.state, ReleaseState::Baking);
        assert_eq!(baking.interrupted, None, "the interrupted step got done");
        assert_eq!(record(ledger, &a.id).await.interrupted, None);
    }

    pub async fn an_interrupted_release_is_resumed_once<L: Ledger + RollbackLedger>(ledger: &L) {
        let a = deploying(ledger, "1.0.0").await;
        let resume = || update_of(|u| u.resume = true);
        assert_eq!(
            ledger
                .update(&a.id, ReleaseState::Deploying.stays(), resume())
                .await
                .expect("update"),
            None,
            "a release never interrupted is not resumed"
        );

        let marked = ledger
            .update(
                &a.id,
                Guard::IN_FLIGHT,
                update_of(|u| u.interrupted = Some("ThrottlingException".into())),
            )
            .await
            .expect("update")
            .expect("marked");
        assert_eq!(marked.interrupted.as_deref(), Some("ThrottlingException"));
        assert_eq!(
            record(ledger, &a.id).await.interrupted.as_deref(),
            Some("ThrottlingException")
        );

        // The resumption must still pass the guard.
        assert_eq!(
            ledger
                .update(&a.id, ReleaseState::Migrating.stays(), resume())
                .await
                .expect("update"),
            None
        );
        let resumed = ledger
            .update(&a.id, ReleaseState::Deploying.stays(), resume())
            .await
            .expect("update")
            .expect("the first resumption wins");
        assert_eq!(resumed.interrupted, None, "the mark is cleared");
        assert_eq!(resumed.state, ReleaseState::Deploying);
        assert_eq!(
            ledger
                .update(&a.id, ReleaseState::Deploying.stays(), resume())
                .await
                .expect("update"),
            None,
            "the second resumption loses"
        );
        assert_eq!(record(ledger, &a.id).await, resumed);
    }

    pub async fn completed_services_accumulate<L: Ledger + RollbackLedger>(ledger: &L) {
        let a = deploying(ledger, "1.0.0").await;
        assert!(a.completed_services.is_empty());
        let mut last = a;
        for service in ["api", "worker", "api"] {
            last = ledger
                .update(
                    &last.id,
                    ReleaseState::Deploying.stays(),
                    update_of(|u| u.completed_service = Some(service.into())),
                )
                .await
                .expect("update")
                .expect("deploying");
        }
        let expected = BTreeSet::from(["api".to_owned(), "worker".to_owned()]);
        assert_eq!(last.completed_services, expected);
        assert_eq!(record(ledger, &last.id).await.completed_services, expected);
    }

    pub async fn every_field_of_an_update_is_written<L: Ledger + RollbackLedger>(ledger: &L) {
        let a = claimed(ledger, "1.0.0").await;
        let written = ledger
            .update(&a.id, Transition::StartMigration.guard(), full_update())
            .await
            .expect("update")
            .expect("claimed → migrating");
        let expected = ReleaseRecord {
            state: ReleaseState::Migrating,
            previous_tag: Some("0.9.1".into()),
            task_definitions: task_definitions(2),
            migration_task_definition: Some(fakes::task_definition_arn("shop-migrate", 2)),
            migration_essential_containers: vec!["migrate".into(), "seed".into()],
            migration_task: Some("arn:aws:ecs:eu-west-1:123456789012:task/shop-prod/abc".into()),
            migration_deadline: Some(fakes::T0 + 900),
            verify_task_definition: Some(fakes::task_definition_arn("shop-smoke", 2)),
            verify_essential_containers: vec!["smoke".into()],
            verify_task: Some("arn:aws:ecs:eu-west-1:123456789012:task/shop-prod/def".into()),
            verify_deadline: Some(fakes::T0 + 1_200),
            rollout_started_at: Some(fakes::T0 + 100),
            bake_ends_at: Some(fakes::T0 + 1_800),
            parameter_version: Some(12),
            deployments: [("api".to_owned(), "ecs-svc/9".to_owned())].into(),
            completed_services: BTreeSet::from(["api".to_owned()]),
            reason: Some("because".into()),
            interrupted: Some("RequestTimeout".into()),
            approval_expires_at: Some(fakes::T0 + 86_400),
            ..a.clone()
        };
        assert_eq!(unstamped(written.clone()), unstamped(expected));
        assert!(written.updated_at >= a.updated_at);
        assert_eq!(record(ledger, &a.id).await, written);

        // Fields an update leaves out are kept; a collection given replaces.
        let smaller: BTreeMap<String, String> =
            [("worker".to_owned(), "ecs-svc/10".to_owned())].into();
        let rewritten = ledger
            .update(
                &a.id,
                Guard::IN_FLIGHT,
                update_of(|u| u.deployments = Some(smaller.clone())),
            )
            .await
            .expect("update")
            .expect("in flight");
        assert_eq!(
            unstamped(rewritten),
            unstamped(ReleaseRecord {
                deployments: smaller,
                ..written
            })
        );
    }

    // -- settle -----------------------------------------------------------

    pub async fn clearing_in_flight_frees_the_lane_only_while_the_head_points_at_the_release<
        L: Ledger + RollbackLedger,
    >(
        ledger: &L,
    ) {
        let a = claimed(ledger, "1.0.0").await;
        // b takes the lane without superseding a: the head no longer points at a.
        let b = claimed(ledger, "1.1.0").await;
        let before = head(ledger).await;
        async fn fail<L: Ledger>(ledger: &L, r: &ReleaseRecord) -> PortResult<bool> {
            ledger
                .settle(
                    r,
                    Transition::Fail.guard(),
                    update_of(|u| u.reason = Some("migration exited 1".into())),
                    HeadChange::ClearInFlight,
                )
                .await
        }
        assert!(
            !fail(ledger, &a).await.expect("settle"),
            "the head points at b"
        );
        assert_eq!(head(ledger).await, before, "the head is untouched");
        assert_eq!(record(ledger, &a.id).await, a, "a is untouched");

        assert!(
            fail(ledger, &b).await.expect("settle"),
            "the head points at b"
        );
        let after = head(ledger).await;
        assert_eq!(
            after,
            LaneHead {
                version: before.version + 1,
                in_flight: None,
                last_failed: Some(pointer(&b)),
                ..before.clone()
            },
            "the lane is free and remembers its failed release; nothing else moved"
        );
        let failed = record(ledger, &b.id).await;
        assert_eq!(failed.state, ReleaseState::Failed);
        assert_eq!(failed.reason.as_deref(), Some("migration exited 1"));

        assert!(
            !fail(ledger, &b).await.expect("settle"),
            "settled once: the head no longer points at it"
        );
        assert_eq!(head(ledger).await, after);
    }

    pub async fn a_settle_whose_release_condition_fails_changes_nothing<
        L: Ledger + RollbackLedger,
    >(
        ledger: &L,
    ) {
        let a = deploying(ledger, "1.0.0").await;
        let a = ledger
            .update(
                &a.id,
                ReleaseState::Deploying.stays(),
                update_of(|u| {
                    u.deployments = Some([("api".to_owned(), "ecs-svc/1".to_owned())].into())
                }),
            )
            .await
            .expect("update")
            .expect("deploying");
        let before = head(ledger).await;
        let known_good = || HeadChange::KnownGood {
            pointer: pointer(&a),
            history: vec![known_good(&a)],
        };
        let refusals = [
            (
                "the guard does not admit DEPLOYING",
                Transition::PassMigration.guard(),
                ReleaseUpdate::default(),
            ),
            (
                "the deployment is not the recorded one",
                Transition::Complete.guard(),
                update_of(|u| {
                    u.if_deployment = Some(("api".into(), "ecs-svc/2".into()));
                    u.completed_service = Some("api".into());
                }),
            ),
            (
                "the release is not interrupted",
                Transition::Complete.guard(),
                update_of(|u| u.resume = true),
            ),
        ];
        for (why, guard, update) in refusals {
            for change in [HeadChange::ClearInFlight, known_good()] {
                let settled = ledger
                    .settle(&a, guard, update.clone(), change)
                    .await
                    .expect("settle");
                assert!(!settled, "{why}");
                assert_eq!(head(ledger).await, before, "{why}: the head is untouched");
                assert_eq!(
                    record(ledger, &a.id).await,
                    a,
                    "{why}: the release is untouched"
                );
            }
        }
    }

    pub async fn a_known_good_settle_writes_exactly_the_given_history<
        L: Ledger + RollbackLedger,
    >(
        ledger: &L,
    ) {
        // Earlier releases the history names (never claimed here: the ledger
        // writes the list it is given, the retention rule is the domain's).
        let older: Vec<KnownGoodRelease> = (0..12)
            .map(|i| known_good(&release(&format!("0.{i}.0"))))
            .collect();
        let a = deploying(ledger, "1.0.0").await;
        let before = head(ledger).await;
        let mut history = vec![known_good(&a)];
        history.extend(older[..9].iter().cloned());
        assert_eq!(history.len(), 10);
        let settled = ledger
            .settle(
                &a,
                Transition::Complete.guard(),
                update_of(|u| u.completed_service = Some("scheduler".into())),
                HeadChange::KnownGood {
                    pointer: pointer(&a),
                    history: history.clone(),
                },
            )
            .await
            .expect("settle");
        assert!(settled);
        let after = head(ledger).await;
        assert_eq!(
            after,
            LaneHead {
                version: before.version + 1,
                in_flight: None,
                known_good: Some(pointer(&a)),
                history: history.clone(),
                ..before
            }
        );
        let succeeded = record(ledger, &a.id).await;
        assert_eq!(succeeded.state, ReleaseState::Succeeded);
        assert_eq!(
            succeeded.completed_services,
            BTreeSet::from(["scheduler".to_owned()]),
            "the release update is part of the settle"
        );

        // The next release writes its own ten: the list is replaced, never appended to.
        let b = deploying(ledger, "1.1.0").await;
        let mut next = vec![known_good(&b)];
        next.extend(history[..9].iter().cloned());
        assert!(ledger
            .settle(
                &b,
                Transition::Complete.guard(),
                ReleaseUpdate::default(),
                HeadChange::KnownGood {
                    pointer: pointer(&b),
                    history: next.clone(),
                },
            )
            .await
            .expect("settle"));
        let after = head(ledger).await;
        assert_eq!(after.history, next);
        assert_eq!(after.history.len(), 10);
        assert_eq!(after.known_good, Some(pointer(&b)));

        // A shorter list is written as given too.
        let c = deploying(ledger, "1.2.0").await;
        assert!(ledger
            .settle(
                &c,
                Transition::Complete.guard(),
                ReleaseUpdate::default(),
                HeadChange::KnownGood {
                    pointer: pointer(&c),
                    history: vec![known_good(&c), older[11].clone()],
                },
            )
            .await
            .expect("settle"));
        assert_eq!(
            head(ledger).await.history,
            vec![known_good(&c), older[11].clone()]
        );
    }

    // -- rollback ---------------------------------------------------------

    pub async fn a_rollback_applies_only_at_the_expected_head_version_and_records_everything<
        L: Ledger + RollbackLedger,
    >(
        ledger: &L,
    ) {
        let good = succeeded(ledger, "1.0.0").await;
        let bad = deploying(ledger, "1.1.0").await;
        // An interruption recorded before the rollback is the rollback's to clear.
        let bad = ledger
            .update(
                &bad.id,
                Guard::IN_FLIGHT,
                update_of(|u| u.interrupted = Some("ThrottlingException".into())),
            )
            .await
            .expect("update")
            .expect("in flight");
        let before = head(ledger).await;
        let rollback = RollbackInProgress {
            release: pointer(&bad),
            target: good.id.clone(),
            reason: "alarm shop-prod-5xx entered ALARM".into(),
            interrupted: false,
        };
        let target = known_good(&good);
        let the_lane = lane();
        let write = |expected, guard| RollbackWrite {
            lane: &the_lane,
            expected_head_version: expected,
            target: &target,
            history: vec![target.clone()],
            rolling_back: &rollback,
            guard,
        };

        for (expected, guard, why) in [
            (
                before.version - 1,
                Transition::BeginRollback.guard(),
                "a stale head version",
            ),
            (
                before.version + 1,
                Transition::BeginRollback.guard(),
                "a future head version",
            ),
            (
                before.version,
                Transition::FinishRollback.guard(),
                "a guard that does not admit DEPLOYING",
            ),
        ] {
            let applied = ledger
                .roll_back(write(expected, guard))
                .await
                .expect("roll back");
            assert!(!applied, "{why}");
            assert_eq!(head(ledger).await, before, "{why}: the head is untouched");
            assert_eq!(
                record(ledger, &bad.id).await,
                bad,
                "{why}: the release is untouched"
            );
        }

        let applied = ledger
            .roll_back(write(before.version, Transition::BeginRollback.guard()))
            .await
            .expect("roll back");
        assert!(applied);
        let after = head(ledger).await;
        assert_eq!(
            after,
            LaneHead {
                version: before.version + 1,
                in_flight: None,
                known_good: Some(pointer(&good)),
                latest_pushed_at: before.latest_pushed_at,
                frozen: true,
                history: vec![target.clone()],
                bad_releases: BTreeSet::from([bad.id.clone()]),
                held: None,
                rolling_back: Some(rollback.clone()),
                last_failed: None,
            }
        );
        let left = record(ledger, &bad.id).await;
        assert!(left.updated_at >= bad.updated_at);
        assert_eq!(
            unstamped(left),
            unstamped(ReleaseRecord {
                state: ReleaseState::RollingBack,
                rolled_back_from: Some(ReleaseState::Deploying),
                reason: Some(rollback.reason.clone()),
                interrupted: None,
                ..bad.clone()
            }),
            "ROLLING_BACK from DEPLOYING, with the reason; the interruption is cleared"
        );
        assert_eq!(
            state(ledger, &good.id).await,
            ReleaseState::Succeeded,
            "the target is untouched"
        );
    }

    pub async fn a_rollback_waits_for_the_one_in_progress<L: Ledger + RollbackLedger>(ledger: &L) {
        let (good, bad, rollback) = rolling_back(ledger).await;
        // Another rollback (of another release) at the current version is refused
        // while one is in progress.
        let other = deploying(ledger, "1.2.0").await;
        let before = head(ledger).await;
        let second = RollbackInProgress {
            release: pointer(&other),
            target: good.id.clone(),
            reason: "second".into(),
            interrupted: false,
        };
        let applied = ledger
            .roll_back(RollbackWrite {
                lane: &lane(),
                expected_head_version: before.version,
                target: &known_good(&good),
                history: vec![known_good(&good)],
                rolling_back: &second,
                guard: Transition::BeginRollback.guard(),
            })
            .await
            .expect("roll back");
        assert!(!applied, "a rollback is in progress");
        assert_eq!(head(ledger).await, before);
        assert_eq!(head(ledger).await.rolling_back, Some(rollback));
        assert_eq!(state(ledger, &other.id).await, ReleaseState::Deploying);
        assert_eq!(state(ledger, &bad.id).await, ReleaseState::RollingBack);
    }

    pub async fn an_interrupted_rollback_is_resumed_once<L: Ledger + RollbackLedger>(ledger: &L) {
        // No head, no rollback: nothing to mark, and nothing is created.
        let stranger = release("9.9.9").id;
        assert!(!ledger
            .mark_rollback(&lane(), &stranger, true)
            .await
            .expect("mark"));
        assert!(!ledger
            .mark_rollback(&lane(), &stranger, false)
            .await
            .expect("mark"));
        assert_eq!(head_of(ledger).await, None);

        let (good, bad, rollback) = rolling_back(ledger).await;
        let v = head(ledger).await.version;
        assert!(
            !ledger
                .mark_rollback(&lane(), &good.id, true)
                .await
                .expect("mark"),
            "the rollback in progress is another release's"
        );
        assert!(
            !ledger
                .mark_rollback(&lane(), &bad.id, false)
                .await
                .expect("mark"),
            "not interrupted: nothing to resume"
        );
        assert_eq!(head(ledger).await.version, v, "refusals change nothing");

        assert!(ledger
            .mark_rollback(&lane(), &bad.id, true)
            .await
            .expect("mark"));
        let marked = head(ledger).await;
        assert_eq!(marked.version, v + 1);
        assert_eq!(
            marked.rolling_back,
            Some(RollbackInProgress {
                interrupted: true,
                ..rollback.clone()
            })
        );
        assert!(
            ledger
                .mark_rollback(&lane(), &bad.id, true)
                .await
                .expect("mark"),
            "marking again is harmless"
        );
        assert_eq!(head(ledger).await.version, v + 2);

        assert!(
            ledger
                .mark_rollback(&lane(), &bad.id, false)
                .await
                .expect("mark"),
            "the first resumption wins"
        );
        let resumed = head(ledger).await;
        assert_eq!(resumed.version, v + 3);
        assert_eq!(resumed.rolling_back, Some(rollback));
        assert!(
            !ledger
                .mark_rollback(&lane(), &bad.id, false)
                .await
                .expect("mark"),
            "the second resumption loses"
        );
        assert_eq!(head(ledger).await, resumed);
    }

    pub async fn finishing_a_rollback_rolls_the_release_back_once<L: Ledger + RollbackLedger>(
        ledger: &L,
    ) {
        let (good, bad, rollback) = rolling_back(ledger).await;
        let before = head(ledger).await;
        let rolling = record(ledger, &bad.id).await;

        // Not the rollback in progress, or a guard that does not admit ROLLING_BACK.
        let other = RollbackInProgress {
            release: pointer(&good),
            ..rollback.clone()
        };
        assert!(!ledger
            .finish_rollback(&lane(), &other, Transition::FinishRollback.guard())
            .await
            .expect("finish"));
        assert!(!ledger
            .finish_rollback(&lane(), &rollback, Transition::Complete.guard())
            .await
            .expect("finish"));
        assert_eq!(head(ledger).await, before);
        assert_eq!(record(ledger, &bad.id).await, rolling);

        assert!(ledger
            .finish_rollback(&lane(), &rollback, Transition::FinishRollback.guard())
            .await
            .expect("finish"));
        assert_eq!(
            head(ledger).await,
            LaneHead {
                version: before.version + 1,
                rolling_back: None,
                ..before.clone()
            },
            "the head forgets the rollback and stays frozen on the target"
        );
        let done = record(ledger, &bad.id).await;
        assert_eq!(
            unstamped(done.clone()),
            unstamped(ReleaseRecord {
                state: ReleaseState::RolledBack,
                ..rolling
            }),
            "ROLLED_BACK, still naming the state it was rolled back from"
        );
        assert_eq!(done.rolled_back_from, Some(ReleaseState::Deploying));

        let after = head(ledger).await;
        assert!(
            !ledger
                .finish_rollback(&lane(), &rollback, Transition::FinishRollback.guard())
                .await
                .expect("finish"),
            "finished once"
        );
        assert_eq!(head(ledger).await, after);
        assert_eq!(record(ledger, &bad.id).await, done);
    }

    // -- hold / unfreeze --------------------------------------------------

    pub async fn a_push_is_held_only_at_the_head_version<L: Ledger + RollbackLedger>(ledger: &L) {
        let push = HeldPush {
            tag: "1.2.0".into(),
            digest: fakes::digest_of("shop", "1.2.0"),
            pushed_at: Some(pushed_at(42_001)),
        };
        assert!(
            !ledger.hold(&lane(), 0, &push).await.expect("hold"),
            "a lane without a head holds nothing"
        );
        assert_eq!(head_of(ledger).await, None, "and no head is created");

        rolling_back(ledger).await;
        let before = head(ledger).await;
        for stale in [before.version - 1, before.version + 1] {
            assert!(!ledger.hold(&lane(), stale, &push).await.expect("hold"));
        }
        assert_eq!(head(ledger).await, before);

        assert!(ledger
            .hold(&lane(), before.version, &push)
            .await
            .expect("hold"));
        let held = head(ledger).await;
        assert_eq!(
            held,
            LaneHead {
                version: before.version + 1,
                held: Some(push.clone()),
                ..before
            }
        );

        // A newer push replaces it, push time included (here: none known).
        let newer = HeldPush {
            tag: "1.3.0".into(),
            digest: fakes::digest_of("shop", "1.3.0"),
            pushed_at: None,
        };
        assert!(ledger
            .hold(&lane(), held.version, &newer)
            .await
            .expect("hold"));
        assert_eq!(head(ledger).await.held, Some(newer));
    }

    pub async fn unfreezing_applies_only_at_the_head_version_and_drops_the_held_push<
        L: Ledger + RollbackLedger,
    >(
        ledger: &L,
    ) {
        assert!(
            !ledger.unfreeze(&lane(), 0).await.expect("unfreeze"),
            "a lane without a head"
        );
        assert_eq!(head_of(ledger).await, None);

        rolling_back(ledger).await;
        let push = HeldPush {
            tag: "1.2.0".into(),
            digest: fakes::digest_of("shop", "1.2.0"),
            pushed_at: Some(pushed_at(1)),
        };
        let v = head(ledger).await.version;
        assert!(ledger.hold(&lane(), v, &push).await.expect("hold"));
        let before = head(ledger).await;
        assert!(before.frozen);

        assert!(!ledger
            .unfreeze(&lane(), before.version - 1)
            .await
            .expect("unfreeze"));
        assert_eq!(head(ledger).await, before);

        assert!(ledger
            .unfreeze(&lane(), before.version)
            .await
            .expect("unfreeze"));
        assert_eq!(
            head(ledger).await,
            LaneHead {
                version: before.version + 1,
                frozen: false,
                held: None,
                ..before.clone()
            },
            "unfrozen, the held push dropped, the rollback in progress kept"
        );
        assert!(
            !ledger
                .unfreeze(&lane(), before.version)
                .await
                .expect("unfreeze"),
            "the version moved"
        );
    }

    // -- records ----------------------------------------------------------

    pub async fn a_release_record_round_trips_every_field<L: Ledger + RollbackLedger>(ledger: &L) {
        let full = ReleaseRecord {
            state: ReleaseState::RollingBack,
            previous_tag: Some("0.9.0".into()),
            pushed_at: Some(pushed_at(987)),
            task_definitions: task_definitions(5),
            migration_task_definition: Some(fakes::task_definition_arn("shop-migrate", 5)),
            migration_essential_containers: vec!["migrate".into(), "seed".into()],
            migration_task: Some("arn:aws:ecs:eu-west-1:123456789012:task/shop-prod/f00".into()),
            migration_deadline: Some(fakes::T0 + 15 * 60),
            verify_task_definition: Some(fakes::task_definition_arn("shop-smoke", 5)),
            verify_essential_containers: vec!["smoke".into()],
            verify_task: Some("arn:aws:ecs:eu-west-1:123456789012:task/shop-prod/5a1".into()),
            verify_deadline: Some(fakes::T0 + 20 * 60),
            rollout_started_at: Some(fakes::T0 + 60),
            bake_ends_at: Some(fakes::T0 + 30 * 60),
            parameter_version: Some(3),
            deployments: [
                ("api".to_owned(), "ecs-svc/1".to_owned()),
                ("scheduler".to_owned(), "ecs-svc/3".to_owned()),
                ("worker".to_owned(), "ecs-svc/2".to_owned()),
            ]
            .into(),
            completed_services: BTreeSet::from(["api".to_owned(), "worker".to_owned()]),
            reason: Some("alarm shop-prod-5xx".into()),
            interrupted: Some("ThrottlingException: slow down".into()),
            rolled_back_from: Some(ReleaseState::Deploying),
            retried_as: Some(
                ReleaseId::parse("shop/prod/3f2a9c1b7e40d5a1-2").expect("a retry's id"),
            ),
            approval_expires_at: Some(fakes::T0 + 3_600),
            created_at: fakes::T0 + 1,
            updated_at: fakes::T0 + 2,
            // Services in an order that is not sorted: a list keeps its order.
            services: vec!["worker".into(), "api".into(), "scheduler".into()],
            ..release("1.0.0")
        };
        assert_eq!(
            ledger.claim(claim_of(&full, None)).await.expect("claim"),
            ClaimOutcome::Claimed
        );
        assert_eq!(record(ledger, &full.id).await, full);
        let (_, read) = ledger.read(&lane(), &full.id).await.expect("read");
        assert_eq!(read, Some(full.clone()));

        // Every state is spelled and read back.
        for (i, s) in ReleaseState::ALL.into_iter().enumerate() {
            let r = ReleaseRecord {
                state: s,
                rolled_back_from: Some(ReleaseState::ALL[(i + 3) % 8]),
                ..release(&format!("2.{i}.0"))
            };
            let v = head(ledger).await.version;
            assert_eq!(
                ledger.claim(claim_of(&r, Some(v))).await.expect("claim"),
                ClaimOutcome::Claimed
            );
            assert_eq!(record(ledger, &r.id).await, r, "{s:?}");
        }
    }

    pub async fn a_bare_release_record_round_trips<L: Ledger + RollbackLedger>(ledger: &L) {
        let bare = ReleaseRecord {
            previous_tag: None,
            pushed_at: None,
            services: Vec::new(),
            created_at: 0,
            updated_at: 0,
            ..release("1.0.0")
        };
        assert_eq!(
            ledger.claim(claim_of(&bare, None)).await.expect("claim"),
            ClaimOutcome::Claimed
        );
        assert_eq!(record(ledger, &bare.id).await, bare);
        assert_eq!(
            head(ledger).await,
            LaneHead {
                version: 1,
                in_flight: Some(pointer(&bare)),
                ..LaneHead::default()
            }
        );
    }

    // -- the claim on the image-tag writes --------------------------------

    /// The claim on the lane's tag writes, which must be free.
    async fn take_claim<L: Ledger>(ledger: &L, what: &str) -> TagClaim {
        ledger
            .claim_tag_writes(&lane())
            .await
            .expect("claim")
            .unwrap_or_else(|| panic!("{what}"))
    }

    async fn give_back<L: Ledger>(ledger: &L, claim: &TagClaim, written: Option<i64>, what: &str) {
        ledger
            .release_tag_claim(&lane(), claim, written)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }

    pub async fn the_tag_writes_are_claimed_by_one_holder_at_a_time<L: Ledger + RollbackLedger>(
        ledger: &L,
    ) {
        let a = claimed(ledger, "1.0.0").await;
        let before = head(ledger).await;
        let first = take_claim(ledger, "nobody holds them: taken").await;
        assert_eq!(
            first.last_written, None,
            "nothing written under a claim yet"
        );
        give_back(ledger, &first, Some(7), "give back").await;
        let second = take_claim(ledger, "given back: taken again").await;
        assert_ne!(first.token, second.token, "each claim is its own");
        assert_eq!(
            second.last_written,
            Some(7),
            "the next holder learns what was written"
        );
        // A holder that wrote nothing leaves the last written version as it was.
        give_back(ledger, &second, None, "give back").await;
        let third = take_claim(ledger, "taken").await;
        assert_eq!(third.last_written, Some(7));

        assert_eq!(head(ledger).await, before, "a claim leaves the head alone");
        assert_eq!(state(ledger, &a.id).await, ReleaseState::Claimed);
        let (read_head, read_record) = ledger.read(&lane(), &a.id).await.expect("read");
        assert_eq!(
            (read_head, read_record.map(|r| r.id)),
            (Some(before), Some(a.id))
        );
    }

    pub async fn a_held_claim_is_waited_for_until_its_holder_gives_it_back<
        L: Ledger + RollbackLedger,
    >(
        ledger: &L,
    ) {
        let lane = lane();
        let holder = take_claim(ledger, "taken").await;
        let (waiter, ()) = futures_util::join!(
            ledger.claim_tag_writes(&lane),
            give_back(ledger, &holder, Some(5), "give back"),
        );
        let waiter = waiter.expect("claim").expect("taken once given back");
        assert_eq!(
            waiter.last_written,
            Some(5),
            "it learns what the holder wrote"
        );
    }

    pub async fn only_the_holder_gives_the_claim_back<L: Ledger + RollbackLedger>(ledger: &L) {
        let first = take_claim(ledger, "taken").await;
        give_back(ledger, &first, Some(3), "give back").await;
        let second = take_claim(ledger, "taken").await;
        // The first holder gives back again (a late retry): nothing changes.
        give_back(ledger, &first, Some(4), "no-op").await;
        give_back(ledger, &second, None, "give back").await;
        let third = take_claim(ledger, "taken").await;
        assert_eq!(
            third.last_written,
            Some(3),
            "the stale holder wrote nothing down"
        );
    }

    // -- shared -----------------------------------------------------------

    /// An update that sets every field (its conditions left out).
    fn full_update() -> ReleaseUpdate {
        ReleaseUpdate {
            previous_tag: Some("0.9.1".into()),
            task_definitions: Some(task_definitions(2)),
            migration_task_definition: Some(fakes::task_definition_arn("shop-migrate", 2)),
            migration_essential_containers: Some(vec!["migrate".into(), "seed".into()]),
            migration_task: Some("arn:aws:ecs:eu-west-1:123456789012:task/shop-prod/abc".into()),
            migration_deadline: Some(fakes::T0 + 900),
            verify_task_definition: Some(fakes::task_definition_arn("shop-smoke", 2)),
            verify_essential_containers: Some(vec!["smoke".into()]),
            verify_task: Some("arn:aws:ecs:eu-west-1:123456789012:task/shop-prod/def".into()),
            verify_deadline: Some(fakes::T0 + 1_200),
            rollout_started_at: Some(fakes::T0 + 100),
            bake_ends_at: Some(fakes::T0 + 1_800),
            parameter_version: Some(12),
            deployments: Some([("api".to_owned(), "ecs-svc/9".to_owned())].into()),
            completed_service: Some("api".into()),
            reason: Some("because".into()),
            if_deployment: None,
            interrupted: Some("RequestTimeout".into()),
            resume: false,
            approval_expires_at: Some(fakes::T0 + 86_400),
        }
    }
}
