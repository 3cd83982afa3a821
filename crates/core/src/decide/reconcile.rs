//! The reconcile pass's decision: from what AWS says about one lane, which
//! events were lost or which steps were left unfinished, and what the lost
//! event would have done. The executor (`engine::reconcile`) carries each
//! finding out through the event paths themselves, so their conditional
//! writes make a pass that races a live event harmless.

use crate::config::Environment;
use crate::decide::bake::{judge_bake, BakeVerdict};
use crate::decide::deployment::DeploymentOutcome;
use crate::image::{ContainerImage, ImageRef};
use crate::ports::{
    AlarmStatus, Lane, LaneHead, ReleaseRecord, ResolvedImage, RolloutState, ServiceView,
    TaskPhase, TaskStatus,
};
use crate::release::{ReleaseId, ReleaseState, StoppedTask};

/// Lambda's longest timeout (900 s) and a minute: a step with no progress for
/// this long has no invocation left working on it.
pub const STALLED_AFTER: u64 = LAMBDA_MAX_TIMEOUT + 60;
/// Lambda's longest invocation, in seconds (its `Timeout` setting's maximum).
pub const LAMBDA_MAX_TIMEOUT: u64 = 900;
const _: () = assert!(STALLED_AFTER > LAMBDA_MAX_TIMEOUT);
/// ECS sends a STOPPED event within seconds; a task this far past its
/// deadline is stuck, not late.
pub const TASK_GRACE: u64 = 60;
/// EventBridge Scheduler fires a one-time schedule up to a minute late, and
/// retries a failed delivery; a bake this far past its end lost its timer.
pub const TIMER_GRACE: u64 = 3 * 60;

/// What the pass read about one lane.
pub struct LaneView<'a, S> {
    pub env: &'a Environment,
    pub lane: &'a Lane,
    /// `None`: ferry never acted in this lane.
    pub head: Option<&'a LaneHead>,
    /// The release in flight, or the one an unfinished rollback leaves.
    pub release: Option<&'a ReleaseRecord>,
    /// Every tagged image of the lane's repository.
    pub images: &'a [ResolvedImage],
    /// The lane's services as DescribeServices reports them.
    pub services: &'a [S],
    /// The release's one-off task (migration or smoke test), when it has one.
    pub task: Option<&'a TaskStatus>,
    /// The guarding alarms, read when a rollout of the release has begun.
    pub alarms: &'a [AlarmStatus],
    /// The lane's SSM image-tag parameter as it reads now (`None`: no such parameter).
    pub parameter: Option<&'a str>,
    /// epoch seconds
    pub now: u64,
}

/// The release's one-off task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneOff {
    Migration,
    SmokeTest,
}

impl OneOff {
    pub fn describe(self) -> &'static str {
        match self {
            OneOff::Migration => "migration",
            OneOff::SmokeTest => "smoke test",
        }
    }
}

/// One thing the pass found, and so what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A push ferry never acted on: released as its event would have been.
    LostPush { tag: String, image: ResolvedImage },
    /// The release's step failed (or its invocation died) and no redelivery
    /// came: its push event, delivered again, resumes it.
    PushStepUnfinished { state: ReleaseState, stalled: bool },
    /// The release's task stopped and its STOPPED event never came: judged
    /// from DescribeTasks as the gate judges the event.
    TaskStoppedUnseen {
        kind: OneOff,
        task: String,
        stopped: StoppedTask,
    },
    /// The task runs past its deadline: stopped, then judged (it outlived its timeout).
    TaskOutlivedTimeout {
        kind: OneOff,
        task: String,
        deadline: u64,
    },
    /// A rollout interrupted after the migration passed: the migration's
    /// STOPPED event, delivered again, finishes it.
    RolloutUnfinished { task: String, stalled: bool },
    /// A deployment of the release ended and its event never came.
    DeploymentEndedUnseen {
        service: String,
        deployment: String,
        outcome: DeploymentOutcome,
    },
    /// Every deployment completed but the release did not go on (the step
    /// after the last COMPLETED event failed): that event, delivered again.
    CompletionUnfinished {
        service: String,
        deployment: String,
        stalled: bool,
    },
    /// The bake's timer never fired.
    BakeOverdue { ended_at: u64 },
    /// The approval request expired with nobody's verdict: the release is
    /// rejected, as an approve after the expiry would.
    ApprovalExpired { expired_at: u64 },
    /// A guarding alarm went to ALARM after the rollout began, and the
    /// release is still in flight: its ALARM event never came.
    AlarmUnseen { alarm: String, reason: String },
    /// A rollback recorded on the head whose invocation gave up (or died).
    RollbackUnfinished { release: ReleaseId, stalled: bool },
    /// A service runs a revision that is not the known-good release's: the
    /// executor describes it, and [`judge_drift`] says whether it is drift.
    UnknownRevision {
        service: String,
        expected: String,
        actual: String,
    },
    /// An idle lane's image-tag parameter names another tag than its
    /// known-good release: a late write (a superseded rollout's, a resumed
    /// one's) landed after the rollback or release that set it, and the undo
    /// that would have put it back was lost. Written back to the known-good tag.
    TagOffKnownGood { expected: String, actual: String },
}

impl Finding {
    /// One line: what was found.
    pub fn describe(&self) -> String {
        match self {
            Finding::LostPush { tag, image } => format!(
                "image {tag} ({}) pushed at {} was never released; its push event was lost",
                image.digest,
                image
                    .pushed_at
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "an unknown time".into())
            ),
            Finding::PushStepUnfinished { state, stalled } => format!(
                "release {} {}",
                state,
                unfinished(*stalled)
            ),
            Finding::TaskStoppedUnseen { kind, task, .. } => format!(
                "{} task {task} stopped; its STOPPED event never arrived",
                kind.describe()
            ),
            Finding::TaskOutlivedTimeout {
                kind,
                task,
                deadline,
            } => format!(
                "{} task {task} still runs past its deadline {deadline} (epoch seconds)",
                kind.describe()
            ),
            Finding::RolloutUnfinished { stalled, .. } => {
                format!("rollout {}", unfinished(*stalled))
            }
            Finding::DeploymentEndedUnseen {
                service,
                deployment,
                outcome,
            } => format!(
                "deployment {deployment} of {service} {}; its event never arrived",
                match outcome {
                    DeploymentOutcome::Completed => "COMPLETED",
                    DeploymentOutcome::Failed => "FAILED",
                }
            ),
            Finding::CompletionUnfinished { stalled, .. } => format!(
                "every deployment completed but the release did not go on: the step after the last one {}",
                unfinished(*stalled)
            ),
            Finding::BakeOverdue { ended_at } => format!(
                "the bake ended at {ended_at} (epoch seconds) and its timer never fired"
            ),
            Finding::ApprovalExpired { expired_at } => format!(
                "the approval request expired at {expired_at} (epoch seconds) unanswered"
            ),
            Finding::AlarmUnseen { alarm, reason } => {
                format!("alarm {alarm} went to ALARM during the release ({reason}); its event never arrived")
            }
            Finding::RollbackUnfinished { release, stalled } => {
                format!("the rollback of {release} {}", unfinished(*stalled))
            }
            Finding::UnknownRevision {
                service,
                expected,
                actual,
            } => format!("service {service} runs {actual}, not the known-good {expected}"),
            Finding::TagOffKnownGood { expected, actual } => format!(
                "the image-tag parameter names {actual}, not the known-good {expected}"
            ),
        }
    }
}

fn unfinished(stalled: bool) -> &'static str {
    if stalled {
        "made no progress for longer than any invocation runs"
    } else {
        "was interrupted by a failure and no redelivery finished it"
    }
}

/// What the lost or late events would have done in this lane, most urgent
/// first. An empty list: the lane is where its events left it.
pub fn reconcile_lane<S: ServiceView>(view: &LaneView<'_, S>) -> Vec<Finding> {
    let Some(head) = view.head else {
        // ferry starts from the first push it sees: installing it into an
        // estate never releases the newest image of every repository.
        return Vec::new();
    };
    if let Some(rollback) = &head.rolling_back {
        let stalled = view
            .release
            .filter(|r| r.id == rollback.release.id)
            .is_some_and(|r| stalled(r, view.now));
        if rollback.interrupted || stalled {
            return vec![Finding::RollbackUnfinished {
                release: rollback.release.id.clone(),
                stalled: !rollback.interrupted,
            }];
        }
        return Vec::new();
    }
    if let Some(push) = lost_push(view, head) {
        return vec![push];
    }
    match (&head.in_flight, view.release) {
        (Some(pointer), Some(record)) if pointer.id == record.id => in_flight(view, record),
        (None, _) => idle(view, head),
        _ => Vec::new(),
    }
}

fn stalled(record: &ReleaseRecord, now: u64) -> bool {
    now.saturating_sub(record.updated_at) > STALLED_AFTER
}

/// The newest image pushed after the newest push ferry acted on, that the tag
/// policy accepts and that is not the lane's bad, held, current or in-flight digest.
fn lost_push<S>(view: &LaneView<'_, S>, head: &LaneHead) -> Option<Finding> {
    // An environment that takes only promoted digests never acts on a push.
    if view.env.promote_from.is_some() {
        return None;
    }
    let latest = head.latest_pushed_at?;
    let floor = head
        .in_flight
        .as_ref()
        .or(head.known_good.as_ref())
        .map(|p| p.tag.as_str());
    let known = |digest: &str| {
        head.in_flight.iter().any(|p| p.digest == digest)
            || head.known_good.iter().any(|p| p.digest == digest)
            || head.held.iter().any(|h| h.digest == digest)
            || head.bad_releases.contains(&ReleaseId::derive(
                &view.lane.app,
                &view.lane.env,
                digest,
            ))
    };
    view.images
        .iter()
        .filter(|i| i.pushed_at.is_some_and(|p| p > latest) && !known(&i.digest))
        .filter_map(|i| {
            let tag = i.tags.iter().find(|t| {
                view.env
                    .tag_policy
                    .check(t, &view.env.mutable_tags, floor)
                    .is_ok()
            })?;
            Some((i, tag))
        })
        .max_by_key(|(i, _)| i.pushed_at)
        .map(|(image, tag)| Finding::LostPush {
            tag: tag.clone(),
            image: image.clone(),
        })
}

fn in_flight<S: ServiceView>(view: &LaneView<'_, S>, record: &ReleaseRecord) -> Vec<Finding> {
    let stuck = record.interrupted.is_some() || stalled(record, view.now);
    let stalled = record.interrupted.is_none();
    if let Some(alarm) = unseen_alarm(view, record) {
        return vec![alarm];
    }
    match record.state {
        ReleaseState::Claimed => push_step(stuck, record.state, stalled),
        ReleaseState::Migrating => match (&record.migration_task, view.task) {
            (Some(task), Some(status)) if status.arn == *task && record.interrupted.is_none() => {
                one_off(view, OneOff::Migration, status, record.migration_deadline)
            }
            _ => push_step(stuck, record.state, stalled),
        },
        ReleaseState::Deploying => deploying(view, record, stuck, stalled),
        ReleaseState::Verifying => match (&record.verify_task, view.task) {
            (Some(task), Some(status)) if status.arn == *task => {
                one_off(view, OneOff::SmokeTest, status, record.verify_deadline)
            }
            _ => Vec::new(),
        },
        // Waiting for a person is not stalling: only the expiry ends it.
        ReleaseState::AwaitingApproval => match record.approval_expires_at {
            Some(at) if view.now >= at => vec![Finding::ApprovalExpired { expired_at: at }],
            _ => Vec::new(),
        },
        ReleaseState::Baking => match record.bake_ends_at {
            Some(end) if view.now > end + TIMER_GRACE => {
                vec![Finding::BakeOverdue { ended_at: end }]
            }
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn push_step(stuck: bool, state: ReleaseState, stalled: bool) -> Vec<Finding> {
    if stuck {
        vec![Finding::PushStepUnfinished { state, stalled }]
    } else {
        Vec::new()
    }
}

/// A guarding alarm in ALARM whose state changed after the rollout began.
fn unseen_alarm<S>(view: &LaneView<'_, S>, record: &ReleaseRecord) -> Option<Finding> {
    let started = record.rollout_started_at?;
    match judge_bake(view.alarms, started) {
        BakeVerdict::RollBack { alarm, .. } => {
            let status = view.alarms.iter().find(|a| a.name == alarm)?;
            Some(Finding::AlarmUnseen {
                alarm,
                reason: status.reason.clone(),
            })
        }
        BakeVerdict::Pass { .. } => None,
    }
}

fn one_off<S>(
    view: &LaneView<'_, S>,
    kind: OneOff,
    status: &TaskStatus,
    deadline: Option<u64>,
) -> Vec<Finding> {
    match &status.phase {
        TaskPhase::Stopped(stopped) => vec![Finding::TaskStoppedUnseen {
            kind,
            task: status.arn.clone(),
            stopped: stopped.clone(),
        }],
        TaskPhase::Missing => vec![Finding::TaskStoppedUnseen {
            kind,
            task: status.arn.clone(),
            stopped: StoppedTask {
                stop_code: None,
                stopped_reason: Some(
                    "ECS no longer describes the task, and its STOPPED event never reached ferry: its outcome is unknown".into(),
                ),
                containers: Vec::new(),
                started_at: None,
                stopped_at: None,
            },
        }],
        TaskPhase::Running => match deadline {
            Some(deadline) if view.now > deadline + TASK_GRACE => {
                vec![Finding::TaskOutlivedTimeout {
                    kind,
                    task: status.arn.clone(),
                    deadline,
                }]
            }
            _ => Vec::new(),
        },
    }
}

fn deploying<S: ServiceView>(
    view: &LaneView<'_, S>,
    record: &ReleaseRecord,
    stuck: bool,
    stalled: bool,
) -> Vec<Finding> {
    let rolled_out = record
        .services
        .iter()
        .all(|s| record.deployments.contains_key(s));
    if !rolled_out {
        if !stuck {
            return Vec::new();
        }
        return match &record.migration_task {
            Some(task) => vec![Finding::RolloutUnfinished {
                task: task.clone(),
                stalled,
            }],
            None => push_step(true, record.state, stalled),
        };
    }
    let pending: Vec<&String> = record
        .services
        .iter()
        .filter(|s| !record.completed_services.contains(*s))
        .collect();
    if pending.is_empty() {
        if !stuck {
            return Vec::new();
        }
        return record
            .services
            .last()
            .and_then(|s| Some((s, record.deployments.get(s)?)))
            .map(|(service, deployment)| {
                vec![Finding::CompletionUnfinished {
                    service: service.clone(),
                    deployment: deployment.clone(),
                    stalled,
                }]
            })
            .unwrap_or_default();
    }
    let mut findings = Vec::new();
    for service in pending {
        let Some(deployment) = record.deployments.get(service) else {
            continue;
        };
        let Some(running) = view.services.iter().find(|s| s.name() == service) else {
            continue;
        };
        if let Some(outcome) = ended(running, deployment, record.task_definitions.get(service)) {
            findings.push(Finding::DeploymentEndedUnseen {
                service: service.clone(),
                deployment: deployment.clone(),
                outcome,
            });
        }
    }
    // A failure rolls the whole release back: it alone decides.
    if let Some(failed) = findings.iter().find(|f| {
        matches!(
            f,
            Finding::DeploymentEndedUnseen {
                outcome: DeploymentOutcome::Failed,
                ..
            }
        )
    }) {
        return vec![failed.clone()];
    }
    findings
}

/// How the release's deployment of a service ended, if it did. A deployment
/// ECS no longer lists ended: completed if the service's PRIMARY deployment
/// runs the release's revision and completed; failed if the PRIMARY runs
/// another revision — the deployment circuit breaker rolled it back (ECS then
/// lists only the rollback's deployment), or something else replaced it.
fn ended<S: ServiceView>(
    service: &S,
    deployment: &str,
    revision: Option<&String>,
) -> Option<DeploymentOutcome> {
    let deployments = service.deployments();
    let rollout = match deployments.iter().find(|d| d.id == deployment) {
        Some(listed) => listed.rollout?,
        None => {
            let primary = deployments.iter().find(|d| d.primary)?;
            if Some(&primary.task_definition) != revision {
                return Some(DeploymentOutcome::Failed);
            }
            primary.rollout?
        }
    };
    match rollout {
        RolloutState::Completed => Some(DeploymentOutcome::Completed),
        RolloutState::Failed => Some(DeploymentOutcome::Failed),
        RolloutState::InProgress => None,
    }
}

/// No release in flight: does every service run the known-good release?
fn idle<S: ServiceView>(view: &LaneView<'_, S>, head: &LaneHead) -> Vec<Finding> {
    let Some(known_good) = head.history.first() else {
        return Vec::new();
    };
    let tag = view
        .parameter
        .filter(|value| *value != known_good.tag)
        .map(|value| Finding::TagOffKnownGood {
            expected: known_good.tag.clone(),
            actual: value.to_owned(),
        });
    tag.into_iter()
        .chain(view.services.iter().filter_map(|service| {
            let expected = known_good.task_definitions.get(service.name())?;
            (service.task_definition() != expected).then(|| Finding::UnknownRevision {
                service: service.name().to_owned(),
                expected: expected.clone(),
                actual: service.task_definition().to_owned(),
            })
        }))
        .collect()
}

/// Whether a service's revision that is not the known-good one is drift.
/// Infrastructure owns the task definition's shape and ferry the image: a
/// revision whose containers of the lane's repository run the known-good
/// digest (a memory bump, a new variable) is not drift, and the next release
/// copies it. Anything else running there is.
pub fn judge_drift(
    containers: &[ContainerImage],
    repository: &str,
    known_good_digest: &str,
) -> bool {
    let ours: Vec<ImageRef> = containers
        .iter()
        .filter_map(|c| ImageRef::parse(&c.image).ok())
        .filter(|i| i.repository == repository)
        .collect();
    ours.is_empty()
        || ours
            .iter()
            .any(|i| i.digest.as_deref() != Some(known_good_digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::DeploymentStatus;

    struct Svc {
        revision: &'static str,
        deployments: Vec<DeploymentStatus>,
    }

    impl ServiceView for Svc {
        fn name(&self) -> &str {
            "api"
        }
        fn task_definition(&self) -> &str {
            self.revision
        }
        fn deployments(&self) -> Vec<DeploymentStatus> {
            self.deployments.clone()
        }
    }

    fn primary(id: &str, revision: &str, rollout: RolloutState) -> DeploymentStatus {
        DeploymentStatus {
            id: id.into(),
            primary: true,
            task_definition: revision.into(),
            rollout: Some(rollout),
            created_at: None,
        }
    }

    #[test]
    fn a_listed_deployment_ends_as_its_rollout_state_says() {
        let release = "td/shop-api:7".to_string();
        let svc = |rollout| Svc {
            revision: "td/shop-api:7",
            deployments: vec![primary("ecs-svc/1", "td/shop-api:7", rollout)],
        };
        assert_eq!(
            ended(&svc(RolloutState::Completed), "ecs-svc/1", Some(&release)),
            Some(DeploymentOutcome::Completed)
        );
        assert_eq!(
            ended(&svc(RolloutState::Failed), "ecs-svc/1", Some(&release)),
            Some(DeploymentOutcome::Failed)
        );
        assert_eq!(
            ended(&svc(RolloutState::InProgress), "ecs-svc/1", Some(&release)),
            None
        );
    }

    #[test]
    fn a_deployment_ecs_no_longer_lists_completed_on_the_release_revision_or_failed_off_it() {
        let release = "td/shop-api:7".to_string();
        let on_release = Svc {
            revision: "td/shop-api:7",
            deployments: vec![primary(
                "ecs-svc/2",
                "td/shop-api:7",
                RolloutState::Completed,
            )],
        };
        assert_eq!(
            ended(&on_release, "ecs-svc/1", Some(&release)),
            Some(DeploymentOutcome::Completed)
        );
        let elsewhere = Svc {
            revision: "td/shop-api:6",
            deployments: vec![primary(
                "ecs-svc/2",
                "td/shop-api:6",
                RolloutState::Completed,
            )],
        };
        assert_eq!(
            ended(&elsewhere, "ecs-svc/1", Some(&release)),
            Some(DeploymentOutcome::Failed),
            "the circuit breaker put the service back on the revision before"
        );
        let no_state = Svc {
            revision: "td/shop-api:7",
            deployments: vec![DeploymentStatus {
                rollout: None,
                ..primary("ecs-svc/1", "td/shop-api:7", RolloutState::Completed)
            }],
        };
        assert_eq!(ended(&no_state, "ecs-svc/1", Some(&release)), None);
    }

    #[test]
    fn drift_is_judged_on_the_image_of_the_lanes_repository() {
        let digest = &format!("sha256:{}", "a".repeat(64));
        let other = format!("sha256:{}", "b".repeat(64));
        let container = |image: &str| ContainerImage {
            name: "app".into(),
            image: image.into(),
        };
        let registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
        let known = container(&format!("{registry}/shop@{digest}"));
        let sidecar = container("public.ecr.aws/datadog/agent:7");
        assert!(!judge_drift(
            &[known.clone(), sidecar.clone()],
            "shop",
            digest
        ));
        assert!(judge_drift(
            &[
                container(&format!("{registry}/shop:hotfix")),
                sidecar.clone()
            ],
            "shop",
            digest
        ));
        assert!(judge_drift(
            &[container(&format!("{registry}/shop@{other}"))],
            "shop",
            digest
        ));
        assert!(
            judge_drift(&[sidecar], "shop", digest),
            "a revision that no longer runs the repository at all is drift"
        );
    }

    #[test]
    fn a_release_is_stalled_only_after_the_longest_invocation_could_have_ended() {
        let mut record = ReleaseRecord::example(ReleaseState::Claimed);
        record.updated_at = 1_000;
        assert!(!stalled(&record, 1_000 + STALLED_AFTER));
        assert!(stalled(&record, 1_000 + STALLED_AFTER + 1));
    }
}
