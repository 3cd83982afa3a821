//! Which release a rollback leaves, and which known-good release it returns to.
//! Pure: the engine reads the lane head, asks here, and writes what it is told.

use crate::ports::{KnownGoodRelease, LaneHead, ReleasePointer, RollbackInProgress};
use crate::release::ReleaseId;

/// Why a rollback was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackCause {
    /// A CloudWatch alarm that guards the environment went to ALARM.
    Alarm { alarm: String, reason: String },
    /// ECS reported a service deployment of this release failed, or its smoke
    /// test failed: either way its services are out, and go back.
    DeploymentFailed { release: ReleaseId, reason: String },
    /// An operator asked, optionally naming a tag or release id to return to.
    Operator { to: Option<String>, reason: String },
}

impl RollbackCause {
    pub fn describe(&self) -> String {
        match self {
            RollbackCause::Alarm { alarm, reason } => format!("alarm {alarm}: {reason}"),
            RollbackCause::DeploymentFailed { reason, .. } => reason.clone(),
            RollbackCause::Operator { reason, .. } => format!("operator: {reason}"),
        }
    }
}

/// What the rollback leaves: the in-flight release, or the current known-good one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaving {
    pub release: ReleasePointer,
    /// The in-flight release (not yet known-good) rather than a succeeded one.
    pub in_flight: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackChoice {
    /// Go back to `to`; `history` is the lane's known-good list afterwards.
    Roll {
        leaving: Leaving,
        to: KnownGoodRelease,
        history: Vec<KnownGoodRelease>,
    },
    /// A rollback recorded earlier has not put every service back yet (its
    /// invocation failed part-way): finish it, to the same target, whatever
    /// asked now. Never a second choice.
    Finish {
        rollback: RollbackInProgress,
        to: KnownGoodRelease,
    },
    /// Nothing to do (logged and reported, nothing mutated).
    Nothing { reason: String },
    /// The request cannot be honoured (reported as an error, nothing mutated).
    Refused { reason: String },
}

/// Decides a rollback from the lane head.
///
/// - Automatic causes (alarm, failed deployment) act only on a release in
///   flight: when the environment already runs its known-good release there is
///   nothing to go back to, which is also what makes a duplicate or flapping
///   alarm roll back once.
/// - An operator without a target leaves the release in flight, or else the
///   current known-good one, for the known-good release before it.
/// - An operator's named target must be a known-good release, by tag or id,
///   whose digest was never rolled back.
pub fn choose_rollback(head: &LaneHead, cause: &RollbackCause) -> RollbackChoice {
    if let Some(rollback) = &head.rolling_back {
        return finish(head, rollback);
    }
    let Some(current) = head.history.first() else {
        return RollbackChoice::Refused {
            reason: "no known-good release recorded for this environment: nothing to roll back to (a release becomes known-good when every service completed its deployment)".to_owned(),
        };
    };
    let in_flight = head.in_flight.as_ref().map(|p| Leaving {
        release: p.clone(),
        in_flight: true,
    });
    match cause {
        RollbackCause::DeploymentFailed { release, .. }
            if in_flight.as_ref().map(|l| &l.release.id) != Some(release) =>
        {
            RollbackChoice::Nothing {
                reason: format!("release {release} is no longer in flight"),
            }
        }
        RollbackCause::Alarm { .. } | RollbackCause::DeploymentFailed { .. } => match in_flight {
            Some(leaving) => RollbackChoice::Roll {
                leaving,
                to: current.clone(),
                history: head.history.clone(),
            },
            None => RollbackChoice::Nothing {
                reason: format!(
                    "the environment already runs its known-good release {} ({}); nothing to roll back to",
                    current.id, current.tag
                ),
            },
        },
        RollbackCause::Operator { to: None, .. } => to_previous(head, current, in_flight),
        RollbackCause::Operator { to: Some(wanted), .. } => to_named(head, current, in_flight, wanted),
    }
}

/// A rollback recorded earlier: finish it if its invocation gave up, else let it work.
fn finish(head: &LaneHead, rollback: &RollbackInProgress) -> RollbackChoice {
    if !rollback.interrupted {
        return RollbackChoice::Nothing {
            reason: format!(
                "the rollback of {} ({}) is under way",
                rollback.release.id, rollback.release.tag
            ),
        };
    }
    match head.history.iter().find(|k| k.id == rollback.target) {
        Some(to) => RollbackChoice::Finish {
            rollback: rollback.clone(),
            to: to.clone(),
        },
        None => RollbackChoice::Refused {
            reason: format!(
                "the unfinished rollback of {} names target {}, which is no longer a known-good release of this lane",
                rollback.release.id, rollback.target
            ),
        },
    }
}

fn leaving_current(current: &KnownGoodRelease) -> Leaving {
    Leaving {
        release: ReleasePointer {
            id: current.id.clone(),
            tag: current.tag.clone(),
            digest: current.digest.clone(),
        },
        in_flight: false,
    }
}

/// An operator without a target: the release in flight, or else the current
/// known-good one, goes; the known-good release before it returns.
fn to_previous(
    head: &LaneHead,
    current: &KnownGoodRelease,
    in_flight: Option<Leaving>,
) -> RollbackChoice {
    if let Some(leaving) = in_flight {
        return RollbackChoice::Roll {
            leaving,
            to: current.clone(),
            history: head.history.clone(),
        };
    }
    match head.history.get(1) {
        Some(previous) => RollbackChoice::Roll {
            leaving: leaving_current(current),
            to: previous.clone(),
            history: head.history[1..].to_vec(),
        },
        None => RollbackChoice::Refused {
            reason: format!(
                "{} ({}) is the only known-good release; there is no earlier one to roll back to",
                current.id, current.tag
            ),
        },
    }
}

/// An operator naming a known-good tag or release id that was never rolled back.
fn to_named(
    head: &LaneHead,
    current: &KnownGoodRelease,
    in_flight: Option<Leaving>,
    wanted: &str,
) -> RollbackChoice {
    let Some(target) = head
        .history
        .iter()
        .find(|k| k.tag == wanted || k.id.as_str() == wanted)
    else {
        let known: Vec<&str> = head.history.iter().map(|k| k.tag.as_str()).collect();
        return RollbackChoice::Refused {
            reason: format!(
                "`{wanted}` is not a known-good release of this environment (known-good: {})",
                known.join(", ")
            ),
        };
    };
    if head.bad_releases.contains(&target.id) {
        return RollbackChoice::Refused {
            reason: format!(
                "`{wanted}` ({}) was rolled back before and is marked bad",
                target.digest
            ),
        };
    }
    let leaving = match in_flight {
        Some(leaving) => leaving,
        None if target.id == current.id => {
            return RollbackChoice::Nothing {
                reason: format!(
                    "the environment already runs {} ({})",
                    current.id, current.tag
                ),
            }
        }
        None => leaving_current(current),
    };
    let mut history = vec![target.clone()];
    history.extend(
        head.history
            .iter()
            .filter(|k| k.id != target.id && k.id != leaving.release.id)
            .cloned(),
    );
    RollbackChoice::Roll {
        leaving,
        to: target.clone(),
        history,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::ReleasePointer;
    use std::collections::BTreeMap;

    fn known_good(tag: &str, hex: char) -> KnownGoodRelease {
        let digest = format!("sha256:{}", hex.to_string().repeat(64));
        KnownGoodRelease {
            id: ReleaseId::derive("shop", "prod", &digest),
            tag: tag.to_owned(),
            digest,
            task_definitions: BTreeMap::from([(
                "api".to_owned(),
                format!("arn:aws:ecs:eu-west-1:123456789012:task-definition/shop-api:{tag}"),
            )]),
        }
    }

    fn head(history: &[KnownGoodRelease], in_flight: Option<(&str, char)>) -> LaneHead {
        LaneHead {
            version: 7,
            history: history.to_vec(),
            known_good: history.first().map(|k| ReleasePointer {
                id: k.id.clone(),
                tag: k.tag.clone(),
                digest: k.digest.clone(),
            }),
            in_flight: in_flight.map(|(tag, hex)| ReleasePointer {
                id: ReleaseId::derive(
                    "shop",
                    "prod",
                    &format!("sha256:{}", hex.to_string().repeat(64)),
                ),
                tag: tag.to_owned(),
                digest: format!("sha256:{}", hex.to_string().repeat(64)),
            }),
            ..LaneHead::default()
        }
    }

    fn alarm() -> RollbackCause {
        RollbackCause::Alarm {
            alarm: "shop-prod-5xx".into(),
            reason: "Threshold Crossed".into(),
        }
    }

    fn operator(to: Option<&str>) -> RollbackCause {
        RollbackCause::Operator {
            to: to.map(str::to_owned),
            reason: "bad checkout".into(),
        }
    }

    #[test]
    fn alarm_during_a_rollout_returns_to_the_known_good_release() {
        let good = known_good("1.0.0", 'a');
        let choice = choose_rollback(
            &head(std::slice::from_ref(&good), Some(("1.1.0", 'b'))),
            &alarm(),
        );
        let RollbackChoice::Roll {
            leaving,
            to,
            history,
        } = choice
        else {
            panic!("expected a rollback, got {choice:?}");
        };
        assert_eq!(leaving.release.tag, "1.1.0");
        assert!(leaving.in_flight);
        assert_eq!(to, good);
        assert_eq!(history, vec![good]);
    }

    #[test]
    fn alarm_when_the_known_good_release_runs_has_nothing_to_roll_back_to() {
        let choice = choose_rollback(&head(&[known_good("1.0.0", 'a')], None), &alarm());
        assert!(
            matches!(choice, RollbackChoice::Nothing { ref reason } if reason.contains("nothing to roll back to")),
            "{choice:?}"
        );
    }

    #[test]
    fn an_unfinished_rollback_is_finished_to_its_recorded_target_whatever_asks_next() {
        // The first invocation recorded the rollback (history now starts at the
        // target) and failed part-way. A redelivered alarm, an operator asking
        // for "the previous release", or a failed deployment: all finish it,
        // none goes a release further back.
        let (good, older) = (known_good("1.0.0", 'a'), known_good("0.9.0", '9'));
        let mut after = head(&[good.clone(), older], None);
        let rollback = RollbackInProgress {
            release: ReleasePointer {
                id: ReleaseId::derive("shop", "prod", &format!("sha256:{}", "b".repeat(64))),
                tag: "1.1.0".into(),
                digest: format!("sha256:{}", "b".repeat(64)),
            },
            target: good.id.clone(),
            reason: "alarm".into(),
            interrupted: true,
        };
        after.rolling_back = Some(rollback.clone());
        for cause in [alarm(), operator(None), operator(Some("0.9.0"))] {
            assert_eq!(
                choose_rollback(&after, &cause),
                RollbackChoice::Finish {
                    rollback: rollback.clone(),
                    to: good.clone()
                },
                "{cause:?}"
            );
        }
        // While its own invocation is still at it, a duplicate does nothing.
        let mut under_way = after.clone();
        if let Some(r) = under_way.rolling_back.as_mut() {
            r.interrupted = false;
        }
        assert!(matches!(
            choose_rollback(&under_way, &alarm()),
            RollbackChoice::Nothing { reason } if reason.contains("under way")
        ));
    }

    #[test]
    fn no_known_good_release_is_a_clear_refusal() {
        let choice = choose_rollback(&head(&[], Some(("1.0.0", 'a'))), &alarm());
        assert!(
            matches!(choice, RollbackChoice::Refused { ref reason } if reason.contains("no known-good release")),
            "{choice:?}"
        );
    }

    #[test]
    fn failed_deployment_of_a_release_no_longer_in_flight_is_ignored() {
        let stale = RollbackCause::DeploymentFailed {
            release: ReleaseId::derive("shop", "prod", &format!("sha256:{}", "c".repeat(64))),
            reason: "circuit breaker".into(),
        };
        let choice = choose_rollback(
            &head(&[known_good("1.0.0", 'a')], Some(("1.1.0", 'b'))),
            &stale,
        );
        assert!(
            matches!(choice, RollbackChoice::Nothing { .. }),
            "{choice:?}"
        );
    }

    #[test]
    fn operator_rollback_without_a_target_goes_to_the_previous_known_good_release() {
        let (new, old) = (known_good("1.1.0", 'b'), known_good("1.0.0", 'a'));
        let choice = choose_rollback(&head(&[new.clone(), old.clone()], None), &operator(None));
        let RollbackChoice::Roll {
            leaving,
            to,
            history,
        } = choice
        else {
            panic!("expected a rollback, got {choice:?}");
        };
        assert_eq!(leaving.release.id, new.id);
        assert!(!leaving.in_flight);
        assert_eq!(to, old);
        assert_eq!(history, vec![old]);
    }

    #[test]
    fn operator_rollback_with_one_known_good_release_and_nothing_in_flight_is_refused() {
        let choice = choose_rollback(&head(&[known_good("1.0.0", 'a')], None), &operator(None));
        assert!(
            matches!(choice, RollbackChoice::Refused { .. }),
            "{choice:?}"
        );
    }

    #[test]
    fn operator_rollback_to_a_named_tag_or_release_id() {
        let history = [
            known_good("1.2.0", 'c'),
            known_good("1.1.0", 'b'),
            known_good("1.0.0", 'a'),
        ];
        for wanted in ["1.0.0".to_owned(), history[2].id.to_string()] {
            let choice = choose_rollback(&head(&history, None), &operator(Some(&wanted)));
            let RollbackChoice::Roll {
                leaving,
                to,
                history: after,
            } = choice
            else {
                panic!("expected a rollback, got {choice:?}");
            };
            assert_eq!(leaving.release.tag, "1.2.0");
            assert_eq!(to.tag, "1.0.0");
            let tags: Vec<&str> = after.iter().map(|k| k.tag.as_str()).collect();
            assert_eq!(
                tags,
                ["1.0.0", "1.1.0"],
                "the rolled-back release leaves the history"
            );
        }
    }

    #[test]
    fn operator_rollback_naming_the_release_that_already_runs_does_nothing() {
        let history = [known_good("1.1.0", 'b'), known_good("1.0.0", 'a')];
        let choice = choose_rollback(&head(&history, None), &operator(Some("1.1.0")));
        assert!(
            matches!(choice, RollbackChoice::Nothing { ref reason } if reason.contains("already runs")),
            "the running known-good release must not be marked bad and the lane frozen: {choice:?}"
        );
    }

    #[test]
    fn operator_rollback_naming_the_running_release_while_another_is_in_flight_leaves_the_one_in_flight(
    ) {
        let history = [known_good("1.1.0", 'b'), known_good("1.0.0", 'a')];
        let choice = choose_rollback(
            &head(&history, Some(("1.2.0", 'c'))),
            &operator(Some("1.1.0")),
        );
        let RollbackChoice::Roll { leaving, to, .. } = choice else {
            panic!("expected a rollback, got {choice:?}");
        };
        assert!(leaving.in_flight);
        assert_eq!(
            (leaving.release.tag.as_str(), to.tag.as_str()),
            ("1.2.0", "1.1.0")
        );
    }

    #[test]
    fn a_rollback_target_that_is_unknown_or_marked_bad_is_refused_with_the_reason() {
        let history = [known_good("1.1.0", 'b'), known_good("1.0.0", 'a')];
        let unknown = choose_rollback(&head(&history, None), &operator(Some("0.1.0")));
        assert!(
            matches!(unknown, RollbackChoice::Refused { ref reason } if reason.contains("not a known-good release")),
            "{unknown:?}"
        );
        let mut marked = head(&history, None);
        marked.bad_releases.insert(history[1].id.clone());
        let bad = choose_rollback(&marked, &operator(Some("1.0.0")));
        assert!(
            matches!(bad, RollbackChoice::Refused { ref reason } if reason.contains("marked bad")),
            "{bad:?}"
        );
    }
}
