//! `ferry status` and `ferry history`: the ledger, read.

use ferry_core::config::Config;
use ferry_core::ports::{Lane, LaneHead, Ledger, ReleaseRecord};
use ferry_core::release::ReleaseState;
use serde::Serialize;

use crate::args::Scope;
use crate::error::CliError;
use crate::render::{duration, short_digest, table, time};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleaseRef {
    pub release: String,
    pub tag: String,
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InFlight {
    pub release: String,
    pub tag: String,
    pub digest: String,
    pub state: Option<ReleaseState>,
    /// Where the release is within its state: migration, services completed, bake end.
    pub step: String,
    pub since: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LaneStatus {
    pub app: String,
    pub environment: String,
    pub repository: String,
    /// The known-good release: what runs.
    pub running: Option<ReleaseRef>,
    /// When it became known-good (epoch seconds).
    pub since: Option<u64>,
    pub in_flight: Option<InFlight>,
    pub known_good_history: Vec<ReleaseRef>,
    pub frozen: bool,
    pub held: Option<ReleaseRef>,
    pub bad_releases: Vec<String>,
    pub rolling_back: Option<ReleaseRef>,
    pub last_failed: Option<ReleaseRef>,
}

/// Every lane of the config in `scope` (app, environment, repository), in order.
pub fn lanes(config: &Config, scope: Option<&Scope>) -> Result<Vec<Lane>, CliError> {
    let mut lanes = Vec::new();
    for env in config.environments() {
        if let Some(scope) = scope {
            if env.app != scope.app || scope.env.as_ref().is_some_and(|e| *e != env.name) {
                continue;
            }
        }
        for repository in env.repositories() {
            lanes.push(Lane {
                app: env.app.clone(),
                env: env.name.clone(),
                repository: repository.to_owned(),
            });
        }
    }
    if lanes.is_empty() {
        let what = match scope {
            Some(Scope {
                app,
                env: Some(env),
            }) => format!("environment {app}/{env}"),
            Some(Scope { app, env: None }) => format!("app {app}"),
            None => "environment".to_owned(),
        };
        let known: Vec<String> = config
            .environments()
            .map(|e| format!("{}/{}", e.app, e.name))
            .collect();
        return Err(CliError::NotFound(format!(
            "ferry's config has no {what}; it has: {}",
            known.join(", ")
        )));
    }
    Ok(lanes)
}

/// Where a release is within its state, from what its record holds (no state
/// is named: a state added later shows what its record has).
pub fn step(r: &ReleaseRecord, now: u64) -> String {
    if let Some(ends) = r.bake_ends_at {
        // the end's time, not a countdown: a progress line in a CI log changes
        // only when the release moves
        return if ends > now {
            format!("baking until {}", time(Some(ends)))
        } else {
            "bake ended".to_owned()
        };
    }
    if !r.deployments.is_empty() {
        return format!(
            "{}/{} services completed",
            r.completed_services.len(),
            r.services.len()
        );
    }
    if r.verify_task.is_some() {
        return "smoke test running".to_owned();
    }
    if r.migration_task.is_some() {
        return "migration running".to_owned();
    }
    if !r.task_definitions.is_empty() {
        return "task definitions registered".to_owned();
    }
    String::new()
}

pub fn lane_status(
    lane: &Lane,
    head: Option<&LaneHead>,
    in_flight: Option<&ReleaseRecord>,
    known_good: Option<&ReleaseRecord>,
    now: u64,
) -> LaneStatus {
    let pointer = |p: &ferry_core::ports::ReleasePointer| ReleaseRef {
        release: p.id.to_string(),
        tag: p.tag.clone(),
        digest: p.digest.clone(),
    };
    let head = head.cloned().unwrap_or_default();
    LaneStatus {
        app: lane.app.clone(),
        environment: lane.env.clone(),
        repository: lane.repository.clone(),
        running: head.known_good.as_ref().map(pointer),
        since: known_good.map(|r| r.updated_at),
        in_flight: head.in_flight.as_ref().map(|p| InFlight {
            release: p.id.to_string(),
            tag: p.tag.clone(),
            digest: p.digest.clone(),
            state: in_flight.map(|r| r.state),
            step: in_flight.map(|r| step(r, now)).unwrap_or_default(),
            since: in_flight.map(|r| r.created_at),
        }),
        known_good_history: head
            .history
            .iter()
            .map(|k| ReleaseRef {
                release: k.id.to_string(),
                tag: k.tag.clone(),
                digest: k.digest.clone(),
            })
            .collect(),
        frozen: head.frozen,
        held: head.held.as_ref().map(|h| ReleaseRef {
            release: String::new(),
            tag: h.tag.clone(),
            digest: h.digest.clone(),
        }),
        bad_releases: head.bad_releases.iter().map(|id| id.to_string()).collect(),
        rolling_back: head.rolling_back.as_ref().map(|r| pointer(&r.release)),
        last_failed: head.last_failed.as_ref().map(pointer),
    }
}

pub async fn read_status<L: Ledger>(
    ledger: &L,
    lanes: &[Lane],
    now: u64,
) -> Result<Vec<LaneStatus>, CliError> {
    let reads = lanes.iter().map(|lane| async move {
        let head = ledger
            .head(lane)
            .await
            .map_err(|e| CliError::aws(format!("reading lane {lane}"), e))?;
        let release = |id: Option<ferry_core::release::ReleaseId>| async move {
            match id {
                Some(id) => ledger
                    .release(&id)
                    .await
                    .map_err(|e| CliError::aws(format!("reading release {id}"), e)),
                None => Ok(None),
            }
        };
        let (in_flight, known_good) = futures_util::join!(
            release(
                head.as_ref()
                    .and_then(|h| h.in_flight.as_ref().map(|p| p.id.clone()))
            ),
            release(
                head.as_ref()
                    .and_then(|h| h.known_good.as_ref().map(|p| p.id.clone()))
            ),
        );
        Ok::<_, CliError>(lane_status(
            lane,
            head.as_ref(),
            in_flight?.as_ref(),
            known_good?.as_ref(),
            now,
        ))
    });
    futures_util::future::join_all(reads)
        .await
        .into_iter()
        .collect()
}

pub fn status_table(lanes: &[LaneStatus]) -> String {
    let rows: Vec<Vec<String>> = lanes
        .iter()
        .map(|l| {
            let running = l.running.as_ref();
            let in_flight = l
                .in_flight
                .as_ref()
                .map(|f| {
                    let state = f.state.map(|s| s.to_string()).unwrap_or_else(|| "?".into());
                    [format!("{} {state}", f.tag), f.step.clone()]
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_else(|| "-".into());
            let mut flags = Vec::new();
            if l.frozen {
                flags.push("FROZEN".to_owned());
            }
            if let Some(held) = &l.held {
                flags.push(format!("held {}", held.tag));
            }
            if let Some(r) = &l.rolling_back {
                flags.push(format!("rolling back {}", r.tag));
            }
            if !l.bad_releases.is_empty() {
                flags.push(format!("{} bad", l.bad_releases.len()));
            }
            vec![
                format!("{}/{}", l.app, l.environment),
                l.repository.clone(),
                running.map(|r| r.tag.clone()).unwrap_or_else(|| "-".into()),
                running
                    .map(|r| short_digest(&r.digest))
                    .unwrap_or_else(|| "-".into()),
                if running.is_some() {
                    time(l.since)
                } else {
                    "-".into()
                },
                in_flight,
                flags.join(", "),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "LANE",
            "REPOSITORY",
            "TAG",
            "DIGEST",
            "SINCE",
            "IN FLIGHT",
            "FLAGS",
        ],
        &rows,
    );
    for l in lanes {
        let mut details = Vec::new();
        if l.known_good_history.len() > 1 {
            let tags: Vec<&str> = l
                .known_good_history
                .iter()
                .map(|k| k.tag.as_str())
                .collect();
            details.push(format!("known-good history: {}", tags.join(", ")));
        }
        if let Some(f) = &l.in_flight {
            details.push(format!("in flight: {} since {}", f.release, time(f.since)));
        }
        if let Some(h) = &l.held {
            details.push(format!(
                "held push: {} ({}); `ferry unfreeze {}/{}` deploys it",
                h.tag,
                short_digest(&h.digest),
                l.app,
                l.environment
            ));
        } else if l.frozen {
            details.push(format!(
                "frozen after a rollback; `ferry unfreeze {}/{}` lifts it",
                l.app, l.environment
            ));
        }
        if !l.bad_releases.is_empty() {
            details.push(format!("bad (rolled back): {}", l.bad_releases.join(", ")));
        }
        if let Some(f) = &l.last_failed {
            details.push(format!("last failed: {} ({})", f.tag, f.release));
        }
        if !details.is_empty() {
            out.push_str(&format!(
                "\n\n{}/{} ({}):",
                l.app, l.environment, l.repository
            ));
            for d in details {
                out.push_str(&format!("\n  {d}"));
            }
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub release: String,
    pub repository: String,
    pub tag: String,
    pub digest: String,
    pub state: ReleaseState,
    pub created_at: u64,
    pub updated_at: u64,
    /// Seconds from claim to the last change, once the release has come to rest.
    pub duration: Option<u64>,
    /// Why it failed or was rolled back, or what interrupted it.
    pub cause: Option<String>,
    pub retried_as: Option<String>,
}

pub fn history(mut releases: Vec<ReleaseRecord>, limit: usize) -> Vec<HistoryEntry> {
    releases.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| b.id.generation().cmp(&a.id.generation()))
    });
    releases
        .into_iter()
        .take(limit)
        .map(|r| {
            let cause = r
                .reason
                .clone()
                .or_else(|| r.interrupted.clone())
                .or_else(|| r.rolled_back_from.map(|s| format!("rolled back from {s}")));
            HistoryEntry {
                release: r.id.to_string(),
                repository: r.lane.repository.clone(),
                tag: r.tag.clone(),
                digest: r.digest.clone(),
                duration: r
                    .state
                    .is_settled()
                    .then(|| r.updated_at.saturating_sub(r.created_at)),
                state: r.state,
                created_at: r.created_at,
                updated_at: r.updated_at,
                cause,
                retried_as: r.retried_as.map(|id| id.to_string()),
            }
        })
        .collect()
}

pub fn history_table(entries: &[HistoryEntry], now: u64) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let took = match e.duration {
                Some(d) => duration(d),
                None => format!("{} so far", duration(now.saturating_sub(e.created_at))),
            };
            let mut cause = e.cause.clone().unwrap_or_default();
            if let Some(next) = &e.retried_as {
                cause = format!("{cause} (retried as {next})").trim().to_owned();
            }
            vec![
                e.release.clone(),
                e.tag.clone(),
                e.state.to_string(),
                time(Some(e.created_at)),
                took,
                cause,
            ]
        })
        .collect();
    table(
        &["RELEASE", "TAG", "STATE", "STARTED", "TOOK", "CAUSE"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::ports::{KnownGoodRelease, ReleasePointer};
    use ferry_core::release::ReleaseId;
    use std::collections::BTreeSet;

    fn id(hash: &str) -> ReleaseId {
        ReleaseId::parse(&format!("shop/prod/{hash}")).unwrap()
    }

    fn lane() -> Lane {
        Lane {
            app: "shop".into(),
            env: "prod".into(),
            repository: "shop".into(),
        }
    }

    fn record(
        hash: &str,
        tag: &str,
        state: ReleaseState,
        created: u64,
        updated: u64,
    ) -> ReleaseRecord {
        let mut r = ReleaseRecord::claimed(
            id(hash),
            lane(),
            tag.into(),
            format!("sha256:{hash}{}", "0".repeat(48)),
            "shop-prod".into(),
            vec!["api".into(), "worker".into()],
            created,
        );
        r.state = state;
        r.updated_at = updated;
        r
    }

    #[test]
    fn history_is_newest_first_with_durations_of_settled_releases_and_causes() {
        let mut failed = record("1111111111111111", "1.2.0", ReleaseState::Failed, 200, 230);
        failed.reason = Some("migration container \"migrate\" exited with code 1".into());
        let good = record(
            "2222222222222222",
            "1.1.0",
            ReleaseState::Succeeded,
            100,
            160,
        );
        let running = record(
            "3333333333333333",
            "1.3.0",
            ReleaseState::Deploying,
            300,
            310,
        );
        let entries = history(vec![good, failed, running], 10);
        let tags: Vec<&str> = entries.iter().map(|e| e.tag.as_str()).collect();
        assert_eq!(tags, ["1.3.0", "1.2.0", "1.1.0"]);
        assert_eq!(entries[0].duration, None);
        assert_eq!(entries[1].duration, Some(30));
        assert_eq!(entries[2].duration, Some(60));
        let text = history_table(&entries, 400);
        assert!(text.contains("1m40s so far"), "{text}");
        assert!(
            text.contains("1.2.0  FAILED     1970-01-01 00:03:20Z  30s           migration container \"migrate\" exited with code 1"),
            "{text}"
        );
    }

    #[test]
    fn history_keeps_at_most_the_limit() {
        let releases = (0..5)
            .map(|i| {
                record(
                    &format!("{i}{}", "0".repeat(15)),
                    "1.0.0",
                    ReleaseState::Failed,
                    i,
                    i,
                )
            })
            .collect();
        assert_eq!(history(releases, 2).len(), 2);
    }

    #[test]
    fn a_frozen_lane_with_a_held_push_says_how_to_unfreeze() {
        let good = ReleasePointer {
            id: id("2222222222222222"),
            tag: "1.1.0".into(),
            digest: format!("sha256:2222222222222222{}", "0".repeat(48)),
        };
        let head = LaneHead {
            known_good: Some(good.clone()),
            frozen: true,
            held: Some(ferry_core::ports::HeldPush {
                tag: "1.4.0".into(),
                digest: format!("sha256:4444444444444444{}", "0".repeat(48)),
                pushed_at: None,
            }),
            bad_releases: BTreeSet::from([id("3333333333333333")]),
            history: vec![
                KnownGoodRelease {
                    id: good.id.clone(),
                    tag: "1.1.0".into(),
                    digest: good.digest.clone(),
                    task_definitions: Default::default(),
                },
                KnownGoodRelease {
                    id: id("1111111111111111"),
                    tag: "1.0.0".into(),
                    digest: String::new(),
                    task_definitions: Default::default(),
                },
            ],
            ..LaneHead::default()
        };
        let known = record(
            "2222222222222222",
            "1.1.0",
            ReleaseState::Succeeded,
            100,
            160,
        );
        let status = lane_status(&lane(), Some(&head), None, Some(&known), 1000);
        let text = status_table(&[status]);
        assert_eq!(
            text.lines().take(2).collect::<Vec<_>>(),
            [
                "LANE       REPOSITORY  TAG    DIGEST        SINCE                 IN FLIGHT  FLAGS",
                "shop/prod  shop        1.1.0  222222222222  1970-01-01 00:02:40Z  -          FROZEN, held 1.4.0, 1 bad",
            ]
        );
        assert!(text.contains("known-good history: 1.1.0, 1.0.0"), "{text}");
        assert!(
            text.contains("`ferry unfreeze shop/prod` deploys it"),
            "{text}"
        );
        assert!(
            text.contains("bad (rolled back): shop/prod/3333333333333333"),
            "{text}"
        );
    }

    #[test]
    fn a_release_in_flight_shows_its_state_and_step() {
        let mut r = record(
            "3333333333333333",
            "1.3.0",
            ReleaseState::Deploying,
            300,
            310,
        );
        r.deployments.insert("api".into(), "ecs-svc/1".into());
        r.completed_services.insert("api".into());
        let head = LaneHead {
            in_flight: Some(ReleasePointer {
                id: r.id.clone(),
                tag: r.tag.clone(),
                digest: r.digest.clone(),
            }),
            ..LaneHead::default()
        };
        let status = lane_status(&lane(), Some(&head), Some(&r), None, 400);
        let f = status.in_flight.as_ref().unwrap();
        assert_eq!(f.state, Some(ReleaseState::Deploying));
        assert_eq!(f.step, "1/2 services completed");
        assert!(status_table(&[status]).contains("1.3.0 DEPLOYING, 1/2 services completed"));
    }

    #[test]
    fn a_bake_shows_when_it_ends_not_a_countdown() {
        let mut r = record("3333333333333333", "1.3.0", ReleaseState::Baking, 300, 310);
        r.bake_ends_at = Some(700);
        assert_eq!(step(&r, 400), "baking until 1970-01-01 00:11:40Z");
        assert_eq!(step(&r, 700), "bake ended");
    }
}
