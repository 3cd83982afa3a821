//! An ECS deployment finished: count the service, succeed the release, or roll
//! the whole release back.

use crate::ports::ReleaseRecord;
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

/// A resumed rollout's services that ECS already moves to the release's
/// revision (the interrupted attempt's UpdateService landed, its record did
/// not): service → that PRIMARY deployment's id, adopted instead of a second
/// forced deployment. `pending`: service → the release's revision.
pub fn deployments_already_started<'a>(
    pending: &[(String, String)],
    services: impl IntoIterator<Item = (&'a str, Vec<crate::ports::DeploymentStatus>)>,
) -> std::collections::BTreeMap<String, String> {
    let wanted: std::collections::BTreeMap<&str, &str> = pending
        .iter()
        .map(|(s, a)| (s.as_str(), a.as_str()))
        .collect();
    services
        .into_iter()
        .filter_map(|(service, deployments)| {
            let arn = wanted.get(service)?;
            let primary = deployments
                .into_iter()
                .find(|d| d.primary && d.task_definition == *arn)?;
            Some((service.to_owned(), primary.id))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_rollout_adopts_a_primary_deployment_of_the_releases_revision() {
        use crate::ports::DeploymentStatus;
        let pending = [
            ("api".to_owned(), "api:3".to_owned()),
            ("worker".to_owned(), "worker:3".to_owned()),
        ];
        let deployment = |id: &str, primary: bool, arn: &str| DeploymentStatus {
            id: id.into(),
            primary,
            task_definition: arn.into(),
            rollout: None,
        };
        let adopted = deployments_already_started(
            &pending,
            [
                (
                    "api",
                    vec![
                        deployment("d-new", true, "api:3"),
                        deployment("d-old", false, "api:2"),
                    ],
                ),
                (
                    "worker",
                    vec![
                        deployment("d-w", true, "worker:2"),
                        deployment("d-x", false, "worker:3"),
                    ],
                ),
            ],
        );
        assert_eq!(
            adopted,
            std::collections::BTreeMap::from([("api".to_owned(), "d-new".to_owned())]),
            "only a PRIMARY deployment of the release's own revision counts"
        );
    }
    use std::collections::{BTreeMap, BTreeSet};

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
