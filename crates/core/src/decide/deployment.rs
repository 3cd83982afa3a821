//! An ECS deployment finished: count the service, succeed the release, or roll
//! the whole release back.

use std::collections::BTreeMap;

use crate::ports::{DeploymentStatus, ReleaseRecord};
use crate::release::ReleaseState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentOutcome {
    Completed,
    Failed,
}

/// An ECS Deployment State Change that ends a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentChange {
    pub cluster: String,
    pub service: String,
    pub deployment_id: String,
    pub outcome: DeploymentOutcome,
    pub reason: Option<String>,
}

/// After the service was marked completed (conditional on the release
/// deploying and having started this very deployment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterMark {
    Progress {
        completed: Vec<String>,
        pending: Vec<String>,
    },
    /// Every service completed: the release succeeds and becomes known-good.
    Complete,
}

pub fn after_mark(record: &ReleaseRecord) -> AfterMark {
    let pending: Vec<String> = record
        .services
        .iter()
        .filter(|s| !record.completed_services.contains(*s))
        .cloned()
        .collect();
    if pending.is_empty() {
        AfterMark::Complete
    } else {
        AfterMark::Progress {
            completed: record.completed_services.iter().cloned().collect(),
            pending,
        }
    }
}

/// Why the mark did not apply (or a failed deployment), from the release record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmarked {
    Ignore(String),
    /// The release has not recorded this service's deployment yet; retry.
    NotReady,
    /// A deployment of the release failed: every service of it goes back.
    RollBack(String),
}

pub fn why_unmarked(change: &DeploymentChange, record: &ReleaseRecord) -> Unmarked {
    let id = &record.id;
    if record.state != ReleaseState::Deploying {
        return Unmarked::Ignore(format!("release {id} is {}, not deploying", record.state));
    }
    match record.deployments.get(&change.service) {
        None => Unmarked::NotReady,
        Some(d) if d != &change.deployment_id => Unmarked::Ignore(format!(
            "deployment {} of {} is not the one release {id} started ({d})",
            change.deployment_id, change.service
        )),
        // The record changed between the mark and this read; the redelivery decides.
        Some(_) if change.outcome == DeploymentOutcome::Completed => Unmarked::NotReady,
        Some(_) => Unmarked::RollBack(format!(
            "deployment {} of service {} failed: {}",
            change.deployment_id,
            change.service,
            change.reason.as_deref().unwrap_or("no reason given")
        )),
    }
}

/// With no release in flight, a redelivered COMPLETED event may belong to the
/// known-good release whose success was recorded but whose `known-good` label
/// on the SSM version failed (the invocation failed for a retry): label it now.
pub fn label_still_owed(change: &DeploymentChange, known_good: &ReleaseRecord) -> bool {
    change.outcome == DeploymentOutcome::Completed
        && known_good.state == ReleaseState::Succeeded
        && known_good.interrupted.is_some()
        && known_good.deployments.get(&change.service) == Some(&change.deployment_id)
}

/// What a resumed rollout found on the services it has no deployment recorded
/// for: the interrupted attempt's UpdateService may have landed, and its
/// deployment may even have failed and been rolled back by ECS since.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResumedRollout {
    /// service → the deployment of the release's revision ECS began since the
    /// rollout began: adopted, not forced a second time (UpdateService takes
    /// no idempotency token).
    pub adopted: BTreeMap<String, String>,
    /// Services ECS moved to another revision since the rollout began: the
    /// circuit breaker rolled the release's deployment back, or another
    /// deployer took the service. Forcing the release again would repeat a
    /// deployment that failed; the release fails instead.
    pub overtaken: Vec<Overtaken>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overtaken {
    pub service: String,
    pub deployment: String,
    pub task_definition: String,
}

impl ResumedRollout {
    /// Why the release fails, when a service was overtaken.
    pub fn overtaken_reason(&self) -> Option<String> {
        if self.overtaken.is_empty() {
            return None;
        }
        let all: Vec<String> = self
            .overtaken
            .iter()
            .map(|o| {
                format!(
                    "service {} is on {} (deployment {})",
                    o.service, o.task_definition, o.deployment
                )
            })
            .collect();
        Some(format!(
            "{}, begun after the release's rollout began: ECS's circuit breaker rolled the release's deployment back, or another deployer took the service",
            all.join("; ")
        ))
    }
}

/// Reads the PRIMARY deployment of each pending service (`pending`: service →
/// the release's revision) against when the rollout began (`None` for a
/// release recorded before ferry marked it: then only the revision counts):
/// begun before the rollout → the interrupted UpdateService never landed;
/// on the release's revision → adopted; on another, begun since → overtaken.
pub fn resumed_rollout<'a>(
    pending: &[(String, String)],
    services: impl IntoIterator<Item = (&'a str, Vec<DeploymentStatus>)>,
    rollout_started_at: Option<u64>,
) -> ResumedRollout {
    let wanted: BTreeMap<&str, &str> = pending
        .iter()
        .map(|(s, a)| (s.as_str(), a.as_str()))
        .collect();
    let mut found = ResumedRollout::default();
    for (service, deployments) in services {
        let Some(arn) = wanted.get(service) else {
            continue;
        };
        let Some(primary) = deployments.into_iter().find(|d| d.primary) else {
            continue;
        };
        // Same second counts as since: ferry marks the rollout in whole seconds.
        let since_rollout = rollout_started_at
            .zip(primary.created_at)
            .map(|(started, created)| created >= started);
        match (primary.task_definition == *arn, since_rollout) {
            // Begun before the rollout, or another revision with no mark: start it.
            (_, Some(false)) | (false, None) => {}
            (true, _) => {
                found.adopted.insert(service.to_owned(), primary.id);
            }
            (false, Some(true)) => found.overtaken.push(Overtaken {
                service: service.to_owned(),
                deployment: primary.id,
                task_definition: primary.task_definition,
            }),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const STARTED: u64 = 1_000;

    fn pending() -> Vec<(String, String)> {
        vec![
            ("api".to_owned(), "api:3".to_owned()),
            ("worker".to_owned(), "worker:3".to_owned()),
        ]
    }

    fn deployment(id: &str, primary: bool, arn: &str, created_at: u64) -> DeploymentStatus {
        DeploymentStatus {
            id: id.into(),
            primary,
            task_definition: arn.into(),
            rollout: None,
            created_at: Some(created_at),
        }
    }

    fn adopting_api(deployment: &str) -> ResumedRollout {
        ResumedRollout {
            adopted: BTreeMap::from([("api".to_owned(), deployment.to_owned())]),
            overtaken: vec![],
        }
    }

    #[test]
    fn a_resumed_rollout_adopts_a_primary_deployment_of_the_releases_revision() {
        let found = resumed_rollout(
            &pending(),
            [
                (
                    "api",
                    vec![
                        deployment("d-new", true, "api:3", STARTED + 1),
                        deployment("d-old", false, "api:2", STARTED - 60),
                    ],
                ),
                (
                    "worker",
                    vec![
                        deployment("d-w", true, "worker:2", STARTED - 60),
                        deployment("d-x", false, "worker:3", STARTED - 90),
                    ],
                ),
            ],
            Some(STARTED),
        );
        assert_eq!(
            found,
            adopting_api("d-new"),
            "only a PRIMARY deployment of the release's own revision counts; worker is started"
        );
    }

    #[test]
    fn a_deployment_rolled_back_by_ecs_after_the_rollout_began_overtakes_the_release() {
        let found = resumed_rollout(
            &pending(),
            [(
                "api",
                vec![
                    deployment("d-back", true, "api:2", STARTED + 40),
                    deployment("d-failed", false, "api:3", STARTED),
                ],
            )],
            Some(STARTED),
        );
        assert!(found.adopted.is_empty());
        assert_eq!(
            found.overtaken,
            vec![Overtaken {
                service: "api".into(),
                deployment: "d-back".into(),
                task_definition: "api:2".into(),
            }]
        );
        let reason = found.overtaken_reason().expect("a reason");
        assert!(
            reason.contains("service api is on api:2 (deployment d-back)")
                && reason.contains("circuit breaker"),
            "{reason}"
        );
    }

    #[test]
    fn a_deployment_begun_before_the_rollout_is_neither_adopted_nor_overtaking() {
        // A restart forces the revision the service already runs: the deployment
        // found there is the one before the restart, not the restart's.
        let restart = [("api".to_owned(), "api:2".to_owned())];
        let found = resumed_rollout(
            &restart,
            [(
                "api",
                vec![deployment("d-before", true, "api:2", STARTED - 1)],
            )],
            Some(STARTED),
        );
        assert_eq!(found, ResumedRollout::default());
        let found = resumed_rollout(
            &pending(),
            [(
                "api",
                vec![deployment("d-before", true, "api:2", STARTED - 1)],
            )],
            Some(STARTED),
        );
        assert_eq!(found, ResumedRollout::default(), "api is started");
    }

    #[test]
    fn without_a_rollout_mark_only_the_revision_counts() {
        let found = resumed_rollout(
            &pending(),
            [
                ("api", vec![deployment("d-new", true, "api:3", STARTED)]),
                ("worker", vec![deployment("d-w", true, "worker:2", STARTED)]),
            ],
            None,
        );
        assert_eq!(found, adopting_api("d-new"));
    }

    use std::collections::BTreeSet;

    fn deploying(completed: &[&str]) -> ReleaseRecord {
        ReleaseRecord {
            services: vec!["api".into(), "worker".into()],
            parameter_version: Some(2),
            deployments: BTreeMap::from([("api".into(), "ecs-svc/1".into())]),
            completed_services: completed
                .iter()
                .map(|s| s.to_string())
                .collect::<BTreeSet<_>>(),
            ..ReleaseRecord::example(ReleaseState::Deploying)
        }
    }

    fn change(service: &str, id: &str, outcome: DeploymentOutcome) -> DeploymentChange {
        DeploymentChange {
            cluster: "shop-prod".into(),
            service: service.into(),
            deployment_id: id.into(),
            outcome,
            reason: Some("tasks failed to start".into()),
        }
    }

    #[test]
    fn a_release_succeeds_only_when_every_service_completed() {
        assert_eq!(
            after_mark(&deploying(&["api"])),
            AfterMark::Progress {
                completed: vec!["api".into()],
                pending: vec!["worker".into()]
            }
        );
        assert_eq!(
            after_mark(&deploying(&["api", "worker"])),
            AfterMark::Complete
        );
    }

    #[test]
    fn a_failed_deployment_the_release_started_rolls_it_back_with_the_reason() {
        let plan = why_unmarked(
            &change("api", "ecs-svc/1", DeploymentOutcome::Failed),
            &deploying(&[]),
        );
        assert_eq!(
            plan,
            Unmarked::RollBack(
                "deployment ecs-svc/1 of service api failed: tasks failed to start".into()
            )
        );
    }

    #[test]
    fn a_deployment_the_release_did_not_start_is_ignored() {
        let plan = why_unmarked(
            &change("api", "ecs-svc/9", DeploymentOutcome::Failed),
            &deploying(&[]),
        );
        assert!(
            matches!(plan, Unmarked::Ignore(r) if r.contains("ecs-svc/9") && r.contains("ecs-svc/1"))
        );
    }

    #[test]
    fn a_deployment_not_yet_recorded_is_not_ready() {
        let plan = why_unmarked(
            &change("worker", "ecs-svc/2", DeploymentOutcome::Failed),
            &deploying(&[]),
        );
        assert_eq!(plan, Unmarked::NotReady);
    }

    #[test]
    fn a_completed_deployment_that_lost_the_conditional_write_race_is_not_taken_as_a_failure() {
        let plan = why_unmarked(
            &change("api", "ecs-svc/1", DeploymentOutcome::Completed),
            &deploying(&[]),
        );
        assert_eq!(plan, Unmarked::NotReady);
    }

    #[test]
    fn a_redelivered_completion_labels_a_succeeded_release_only_if_its_label_failed() {
        let mut record = deploying(&["api", "worker"]);
        record.state = ReleaseState::Succeeded;
        let completed = change("api", "ecs-svc/1", DeploymentOutcome::Completed);
        assert!(!label_still_owed(&completed, &record), "labelled already");
        record.interrupted = Some("ssm:LabelParameterVersion failed".into());
        assert!(label_still_owed(&completed, &record));
        let other = change("api", "ecs-svc/7", DeploymentOutcome::Completed);
        assert!(
            !label_still_owed(&other, &record),
            "not a deployment of this release"
        );
    }

    #[test]
    fn a_deployment_event_for_a_release_no_longer_deploying_is_ignored() {
        let mut record = deploying(&[]);
        record.state = ReleaseState::RolledBack;
        let plan = why_unmarked(
            &change("api", "ecs-svc/1", DeploymentOutcome::Failed),
            &record,
        );
        assert!(matches!(plan, Unmarked::Ignore(r) if r.contains("ROLLED_BACK")));
    }
}
