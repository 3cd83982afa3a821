//! After a release failed: which services go back to the known-good revisions.
//!
//! A newer push supersedes a release whose services are already rolling out
//! (DEPLOYING, VERIFYING, BAKING). If the newer release then fails — its
//! migration exits non-zero, preflight finds a problem — it never touches a
//! service itself, and the superseded release's revisions would stay on the
//! services: unverified, and not what the image-tag parameter (restored to the
//! known-good tag) says. So a failed release puts back every service that runs
//! a revision ferry registered for a release other than the known-good one.
//! A revision without ferry's release tag was put there by hand: that is drift,
//! the reconcile pass's to report (and to heal only with `heal_drift`).

use crate::ports::{KnownGoodRelease, LaneHead, ReleaseRecord, ReleaseUpdate};
use crate::release::{ReleaseId, ReleaseState};

/// The known-good release to put services back on as `failing` fails (still
/// in flight, or settled already): none while a newer release is in flight,
/// which owns the services (its rollout replaces them).
pub fn put_back_target<'a>(
    head: &'a LaneHead,
    failing: &ReleaseId,
) -> Option<&'a KnownGoodRelease> {
    match &head.in_flight {
        Some(pointer) if pointer.id != *failing => None,
        _ => head.history.first(),
    }
}

/// The services (name, running revision) that run something other than the
/// known-good revision recorded for them.
pub fn off_known_good<'a>(
    good: &KnownGoodRelease,
    running: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, String)> {
    running
        .into_iter()
        .filter_map(|(service, arn)| {
            let wanted = good.task_definitions.get(service)?;
            (wanted != arn).then(|| (service.to_owned(), arn.to_owned()))
        })
        .collect()
}

/// Of the services off known-good, with the `ferry:release` tag of the
/// revision each runs: those ferry put there for another release, each with
/// the known-good revision to restore.
pub fn services_to_put_back(
    good: &KnownGoodRelease,
    off: &[(String, Option<String>)],
) -> Vec<(String, String)> {
    off.iter()
        .filter(|(_, release)| release.as_deref().is_some_and(|r| r != good.id.as_str()))
        .filter_map(|(service, _)| {
            let arn = good.task_definitions.get(service)?;
            Some((service.clone(), arn.clone()))
        })
        .collect()
}

/// A superseded release's UpdateService landed late, while `successor` is in
/// flight: of the services it `touched`, those the successor had already
/// rolled out go back on the successor's revisions (its rollout will not
/// deploy them again, and it would end known-good on the superseded
/// revision). A service the successor has not reached is left to its rollout.
pub fn successor_services_to_restore<'a>(
    successor: &ReleaseRecord,
    touched: impl IntoIterator<Item = &'a String>,
) -> Vec<(String, String)> {
    let rolled_out = matches!(
        successor.state,
        ReleaseState::Deploying | ReleaseState::Verifying | ReleaseState::Baking
    );
    if !rolled_out {
        return Vec::new();
    }
    touched
        .into_iter()
        .filter(|service| successor.deployments.contains_key(*service))
        .filter_map(|service| {
            let arn = successor.task_definitions.get(service)?;
            Some((service.clone(), arn.clone()))
        })
        .collect()
}

/// The successor's record after its services were put back: a deploying
/// successor follows the new deployments (the ones it started were replaced
/// and will never complete), conditional on the first one it replaces still
/// being recorded. A successor past its deployments needs no write.
pub fn follow_restored_deployments(
    successor: &ReleaseRecord,
    restored: &[(String, String)],
) -> Option<ReleaseUpdate> {
    if successor.state != ReleaseState::Deploying {
        return None;
    }
    let mut deployments = successor.deployments.clone();
    let mut replaced = None;
    for (service, deployment) in restored {
        let Some(previous) = deployments.insert(service.clone(), deployment.clone()) else {
            continue;
        };
        if &previous != deployment && replaced.is_none() {
            replaced = Some((service.clone(), previous));
        }
    }
    let replaced = replaced?;
    Some(ReleaseUpdate {
        deployments: Some(deployments),
        if_deployment: Some(replaced),
        ..ReleaseUpdate::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::ReleasePointer;
    use crate::release::ReleaseId;
    use std::collections::BTreeMap;

    fn good() -> KnownGoodRelease {
        KnownGoodRelease {
            id: ReleaseId::parse("shop/prod/00000000000000a1").expect("id"),
            tag: "1.0.0".into(),
            digest: "sha256:a1".into(),
            task_definitions: BTreeMap::from([
                ("api".to_owned(), "api:2".to_owned()),
                ("worker".to_owned(), "worker:2".to_owned()),
            ]),
        }
    }

    #[test]
    fn an_idle_lane_puts_services_back_on_its_newest_known_good_release() {
        let failing = ReleaseId::parse("shop/prod/00000000000000b2").expect("id");
        let mut head = LaneHead {
            history: vec![good()],
            ..LaneHead::default()
        };
        assert_eq!(put_back_target(&head, &failing), Some(&good()));
        // Before its failure is settled, the failing release still holds the lane.
        head.in_flight = Some(ReleasePointer {
            id: failing.clone(),
            tag: "1.1.0".into(),
            digest: "sha256:b2".into(),
        });
        assert_eq!(put_back_target(&head, &failing), Some(&good()));
    }

    #[test]
    fn a_lane_with_a_newer_release_in_flight_leaves_the_services_to_it() {
        let head = LaneHead {
            history: vec![good()],
            in_flight: Some(ReleasePointer {
                id: ReleaseId::parse("shop/prod/00000000000000c3").expect("id"),
                tag: "1.2.0".into(),
                digest: "sha256:c3".into(),
            }),
            ..LaneHead::default()
        };
        let failing = ReleaseId::parse("shop/prod/00000000000000b2").expect("id");
        assert_eq!(put_back_target(&head, &failing), None);
    }

    #[test]
    fn a_lane_that_never_succeeded_has_nothing_to_put_back() {
        let failing = ReleaseId::parse("shop/prod/00000000000000b2").expect("id");
        assert_eq!(put_back_target(&LaneHead::default(), &failing), None);
    }

    #[test]
    fn only_services_off_their_known_good_revision_are_considered() {
        let off = off_known_good(
            &good(),
            [("api", "api:3"), ("worker", "worker:2"), ("unknown", "x:1")],
        );
        assert_eq!(off, [("api".to_owned(), "api:3".to_owned())]);
    }

    #[test]
    fn a_revision_ferry_registered_for_another_release_goes_back_and_one_set_by_hand_stays() {
        let off = [
            (
                "api".to_owned(),
                Some("shop/prod/00000000000000b2".to_owned()),
            ),
            ("worker".to_owned(), None),
        ];
        assert_eq!(
            services_to_put_back(&good(), &off),
            [("api".to_owned(), "api:2".to_owned())]
        );
    }

    #[test]
    fn a_copy_of_the_known_good_release_itself_is_left_alone() {
        let off = [(
            "api".to_owned(),
            Some("shop/prod/00000000000000a1".to_owned()),
        )];
        assert!(services_to_put_back(&good(), &off).is_empty());
    }

    fn successor(state: ReleaseState) -> ReleaseRecord {
        ReleaseRecord {
            task_definitions: BTreeMap::from([
                ("api".to_owned(), "api:4".to_owned()),
                ("worker".to_owned(), "worker:4".to_owned()),
            ]),
            deployments: BTreeMap::from([("api".to_owned(), "ecs-svc/b-api".to_owned())]),
            ..ReleaseRecord::example(state)
        }
    }

    fn touched() -> Vec<String> {
        vec!["api".to_owned(), "worker".to_owned()]
    }

    #[test]
    fn a_late_rollout_puts_back_only_the_services_the_successor_already_rolled_out() {
        assert_eq!(
            successor_services_to_restore(&successor(ReleaseState::Deploying), &touched()),
            vec![("api".to_owned(), "api:4".to_owned())],
            "worker has no deployment of the successor yet: its rollout replaces it"
        );
        assert_eq!(
            successor_services_to_restore(&successor(ReleaseState::Baking), &touched()),
            vec![("api".to_owned(), "api:4".to_owned())]
        );
    }

    #[test]
    fn a_successor_that_has_not_begun_its_rollout_is_left_to_roll_out() {
        assert!(
            successor_services_to_restore(&successor(ReleaseState::Migrating), &touched())
                .is_empty()
        );
        assert!(successor_services_to_restore(
            &successor(ReleaseState::AwaitingApproval),
            &touched()
        )
        .is_empty());
    }

    #[test]
    fn a_deploying_successor_follows_the_deployments_that_replaced_its_own() {
        let restored = vec![("api".to_owned(), "ecs-svc/restore".to_owned())];
        let update = follow_restored_deployments(&successor(ReleaseState::Deploying), &restored)
            .expect("an update");
        assert_eq!(
            update.deployments,
            Some(BTreeMap::from([(
                "api".to_owned(),
                "ecs-svc/restore".to_owned()
            )]))
        );
        assert_eq!(
            update.if_deployment,
            Some(("api".to_owned(), "ecs-svc/b-api".to_owned())),
            "conditional on the deployment it replaces"
        );
    }

    #[test]
    fn a_restore_that_found_the_successor_deployment_still_primary_writes_nothing() {
        let unchanged = vec![("api".to_owned(), "ecs-svc/b-api".to_owned())];
        assert_eq!(
            follow_restored_deployments(&successor(ReleaseState::Deploying), &unchanged),
            None
        );
        let restored = vec![("api".to_owned(), "ecs-svc/restore".to_owned())];
        assert_eq!(
            follow_restored_deployments(&successor(ReleaseState::Baking), &restored),
            None,
            "past its deployments nothing follows them"
        );
    }
}
