//! Which task-definition revisions of a lane may be deregistered (`keep = N`).
//!
//! Every release registers a revision per family, and nothing deregisters them:
//! families grow by one revision per push. The rule, per family of the lane's
//! known-good releases:
//!
//! - the *floor* is the oldest revision of that family among the last `keep`
//!   known-good releases (newest first, as the lane head keeps them);
//! - an ACTIVE revision older than the floor may go,
//! - unless it belongs to any known-good release the head remembers (a rollback
//!   target, even one older than the last `keep`) or to the release in flight.
//!
//! A family no known-good release runs has no floor: nothing of it goes. So do
//! revisions whose ARN does not end in `<family>:<revision>` (never guessed at).

use std::collections::{BTreeMap, BTreeSet};

use crate::ports::KnownGoodRelease;

/// `family` and revision number of a task-definition ARN
/// (`arn:aws:ecs:<region>:<account>:task-definition/<family>:<revision>`).
pub fn family_and_revision(arn: &str) -> Option<(&str, u64)> {
    let (_, name) = arn.rsplit_once("task-definition/")?;
    let (family, revision) = name.rsplit_once(':')?;
    let revision = revision.parse().ok()?;
    (!family.is_empty()).then_some((family, revision))
}

/// The families of the lane: those its known-good releases run, sorted.
pub fn lane_families(history: &[KnownGoodRelease]) -> BTreeSet<String> {
    history
        .iter()
        .flat_map(|release| release.task_definitions.values())
        .filter_map(|arn| family_and_revision(arn).map(|(family, _)| family.to_owned()))
        .collect()
}

/// The revisions of `active` to deregister, sorted: older than the floor of their
/// family, never one of `history` or of `in_flight`. `keep` below 1 counts as 1.
pub fn revisions_to_deregister(
    keep: usize,
    history: &[KnownGoodRelease],
    in_flight: &BTreeSet<String>,
    active: &[String],
) -> Vec<String> {
    let mut floors: BTreeMap<&str, u64> = BTreeMap::new();
    for release in history.iter().take(keep.max(1)) {
        for arn in release.task_definitions.values() {
            if let Some((family, revision)) = family_and_revision(arn) {
                let floor = floors.entry(family).or_insert(revision);
                *floor = (*floor).min(revision);
            }
        }
    }
    let remembered: BTreeSet<&str> = history
        .iter()
        .flat_map(|release| release.task_definitions.values())
        .map(String::as_str)
        .collect();
    let mut doomed: Vec<String> = active
        .iter()
        .filter(|arn| !remembered.contains(arn.as_str()) && !in_flight.contains(*arn))
        .filter(|arn| {
            family_and_revision(arn).is_some_and(|(family, revision)| {
                floors.get(family).is_some_and(|floor| revision < *floor)
            })
        })
        .cloned()
        .collect();
    doomed.sort();
    doomed.dedup();
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::ReleaseId;

    fn arn(family: &str, revision: u64) -> String {
        format!("arn:aws:ecs:eu-west-1:123456789012:task-definition/{family}:{revision}")
    }

    /// A known-good release running `api` and `worker` at these revisions.
    fn good(tag: &str, api: u64, worker: u64) -> KnownGoodRelease {
        KnownGoodRelease {
            id: ReleaseId::derive("shop", "prod", &format!("sha256:{tag}")),
            tag: tag.into(),
            digest: format!("sha256:{tag}"),
            task_definitions: BTreeMap::from([
                ("api".to_owned(), arn("shop-api", api)),
                ("worker".to_owned(), arn("shop-worker", worker)),
            ]),
        }
    }

    fn all(family: &str, revisions: std::ops::RangeInclusive<u64>) -> Vec<String> {
        revisions.map(|r| arn(family, r)).collect()
    }

    #[test]
    fn a_task_definition_arn_gives_its_family_and_revision() {
        assert_eq!(
            family_and_revision(&arn("shop-api", 41)),
            Some(("shop-api", 41))
        );
        assert_eq!(
            family_and_revision("arn:aws:ecs:eu-west-1:1:task-definition/a:b:7"),
            Some(("a:b", 7))
        );
        for unusable in [
            "shop-api:41",
            "arn:aws:ecs:eu-west-1:1:task-definition/shop-api",
            "arn:aws:ecs:eu-west-1:1:task-definition/shop-api:latest",
            "arn:aws:ecs:eu-west-1:1:task-definition/:3",
        ] {
            assert_eq!(family_and_revision(unusable), None, "{unusable}");
        }
    }

    #[test]
    fn revisions_older_than_the_last_n_known_good_releases_go_and_theirs_stay() {
        // Newest first: 1.2.0 on api:9, 1.1.0 on api:7, 1.0.0 on api:4.
        let history = [
            good("1.2.0", 9, 6),
            good("1.1.0", 7, 5),
            good("1.0.0", 4, 3),
        ];
        let active = [all("shop-api", 1..=10), all("shop-worker", 1..=6)].concat();

        let doomed = revisions_to_deregister(2, &history, &BTreeSet::new(), &active);

        // api: floor 7 (1.1.0's); 1.0.0's api:4 is remembered, so it stays.
        // worker: floor 5; 1.0.0's worker:3 stays.
        let mut expected = vec![
            arn("shop-api", 1),
            arn("shop-api", 2),
            arn("shop-api", 3),
            arn("shop-api", 5),
            arn("shop-api", 6),
            arn("shop-worker", 1),
            arn("shop-worker", 2),
            arn("shop-worker", 4),
        ];
        expected.sort();
        assert_eq!(doomed, expected);
    }

    #[test]
    fn no_revision_of_a_remembered_known_good_release_is_ever_deregistered() {
        let history = [
            good("1.2.0", 9, 6),
            good("1.1.0", 7, 5),
            good("1.0.0", 4, 3),
        ];
        let active = [all("shop-api", 1..=10), all("shop-worker", 1..=6)].concat();
        for keep in 1..=4 {
            let doomed = revisions_to_deregister(keep, &history, &BTreeSet::new(), &active);
            for release in &history {
                for kept in release.task_definitions.values() {
                    assert!(!doomed.contains(kept), "keep {keep} deregisters {kept}");
                }
            }
        }
    }

    #[test]
    fn the_release_in_flight_keeps_its_revisions_whatever_their_number() {
        let history = [good("1.2.0", 9, 6)];
        let in_flight = BTreeSet::from([arn("shop-api", 2)]);
        let active = all("shop-api", 1..=9);

        let doomed = revisions_to_deregister(1, &history, &in_flight, &active);

        assert!(!doomed.contains(&arn("shop-api", 2)), "{doomed:?}");
        assert!(doomed.contains(&arn("shop-api", 1)), "{doomed:?}");
    }

    #[test]
    fn revisions_newer_than_the_floor_stay_even_when_no_release_ran_them() {
        // api:10 (a release that failed, or one registered by hand) is newer.
        let history = [good("1.2.0", 9, 6)];
        let doomed =
            revisions_to_deregister(1, &history, &BTreeSet::new(), &all("shop-api", 8..=12));
        assert_eq!(doomed, [arn("shop-api", 8)]);
    }

    #[test]
    fn a_family_no_known_good_release_runs_loses_nothing() {
        let history = [good("1.2.0", 9, 6)];
        let active = [all("shop-migrate", 1..=20), all("shop-api-canary", 1..=3)].concat();
        assert!(revisions_to_deregister(1, &history, &BTreeSet::new(), &active).is_empty());
    }

    #[test]
    fn without_known_good_releases_nothing_goes() {
        assert!(
            revisions_to_deregister(3, &[], &BTreeSet::new(), &all("shop-api", 1..=5)).is_empty()
        );
    }

    #[test]
    fn an_unparseable_arn_is_never_deregistered() {
        let history = [good("1.2.0", 9, 6)];
        let active = vec!["arn:aws:ecs:eu-west-1:1:task-definition/shop-api".to_owned()];
        assert!(revisions_to_deregister(1, &history, &BTreeSet::new(), &active).is_empty());
    }

    #[test]
    fn the_lanes_families_are_those_its_known_good_releases_run() {
        let history = [good("1.2.0", 9, 6), good("1.1.0", 7, 5)];
        assert_eq!(
            lane_families(&history),
            BTreeSet::from(["shop-api".to_owned(), "shop-worker".to_owned()])
        );
    }
}
