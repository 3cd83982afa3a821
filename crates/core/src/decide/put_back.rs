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

use crate::ports::{KnownGoodRelease, LaneHead};

/// The known-good release to put services back on, if the lane is idle: a
/// newer release in flight owns the services (its rollout replaces them).
pub fn put_back_target(head: &LaneHead) -> Option<&KnownGoodRelease> {
    match &head.in_flight {
        Some(_) => None,
        None => head.history.first(),
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
        let head = LaneHead {
            history: vec![good()],
            ..LaneHead::default()
        };
        assert_eq!(put_back_target(&head), Some(&good()));
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
        assert_eq!(put_back_target(&head), None);
    }

    #[test]
    fn a_lane_that_never_succeeded_has_nothing_to_put_back() {
        assert_eq!(put_back_target(&LaneHead::default()), None);
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
}
