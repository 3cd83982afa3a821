//! Decisions: pure functions from what a flow read to the plan it carries out.
//! No I/O and no AWS type; the engine's executors do what these say, in order.
//! Each flow's decisions live in one file and are tested there without fakes.

pub mod approval;
pub mod bake;
pub mod deployment;
pub mod promote;
pub mod prune;
pub mod push;
pub mod put_back;
pub mod reconcile;
pub mod restart;
pub mod retry;
pub mod stopped;
pub mod unfreeze;

use crate::ports::KnownGoodRelease;

/// How many known-good releases a lane head keeps: the rollback targets. The
/// head is one DynamoDB item (400 KB at most) and each entry carries a
/// task-definition ARN per service, so the list is cut in the write.
pub const HISTORY_KEPT: usize = 10;

/// The lane's known-good list after `newest` succeeded: newest first, without
/// an older entry of the same release, at most [`HISTORY_KEPT`] entries.
pub fn known_good_history(
    history: &[KnownGoodRelease],
    newest: KnownGoodRelease,
) -> Vec<KnownGoodRelease> {
    let mut kept = Vec::with_capacity(HISTORY_KEPT);
    let id = newest.id.clone();
    kept.push(newest);
    kept.extend(history.iter().filter(|k| k.id != id).cloned());
    kept.truncate(HISTORY_KEPT);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::ReleaseId;
    use std::collections::BTreeMap;

    fn release(n: usize) -> KnownGoodRelease {
        let digest = format!("sha256:{n:016x}{}", "0".repeat(48));
        KnownGoodRelease {
            id: ReleaseId::derive("shop", "prod", &digest),
            tag: format!("1.{n}.0"),
            digest,
            task_definitions: BTreeMap::new(),
        }
    }

    #[test]
    fn the_known_good_history_keeps_the_newest_ten_newest_first() {
        let mut history = Vec::new();
        for n in 0..25 {
            history = known_good_history(&history, release(n));
        }
        let tags: Vec<&str> = history.iter().map(|k| k.tag.as_str()).collect();
        assert_eq!(
            tags,
            [
                "1.24.0", "1.23.0", "1.22.0", "1.21.0", "1.20.0", "1.19.0", "1.18.0", "1.17.0",
                "1.16.0", "1.15.0"
            ]
        );
    }

    #[test]
    fn a_release_that_succeeds_again_moves_to_the_front_once() {
        let history = known_good_history(&[release(2), release(1)], release(1));
        let tags: Vec<&str> = history.iter().map(|k| k.tag.as_str()).collect();
        assert_eq!(tags, ["1.1.0", "1.2.0"]);
    }
}
