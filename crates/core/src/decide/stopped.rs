//! A migration task stopped: roll out, fail the release, resume an interrupted
//! rollout, or nothing.

use crate::ports::ReleaseRecord;
use crate::release::{judge_migration, MigrationVerdict, ReleaseState, StoppedTask};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoppedPlan {
    /// Not this release's migration task, or no release: a logged no-op.
    Ignore(String),
    /// The release has not recorded its task yet; the redelivery decides.
    NotReady,
    /// The release moved on already (a duplicate or late event).
    AlreadyDone(ReleaseState),
    /// The migration passed: Migrating → Deploying, then every service.
    RollOut,
    /// A rollout interrupted by a retryable failure: finish it.
    ResumeRollout,
    /// The migration failed: no service is touched, the image tag restored.
    Fail(String),
    /// The smoke test passed: the bake begins.
    PassVerify,
    /// The smoke test failed: the services are out already, so they go back.
    FailVerify(String),
}

/// Decides what a stopped task means for the release its `startedBy` names.
pub fn decide_stopped(task_arn: &str, task: &StoppedTask, record: &ReleaseRecord) -> StoppedPlan {
    let is_its_migration = record.migration_task.as_deref() == Some(task_arn);
    match record.state {
        ReleaseState::Claimed => StoppedPlan::NotReady,
        ReleaseState::Migrating => match &record.migration_task {
            None => StoppedPlan::NotReady,
            Some(recorded) if !is_its_migration => StoppedPlan::Ignore(format!(
                "task {task_arn} is not the release's migration task {recorded}"
            )),
            Some(_) => match judge_migration(
                task,
                &record.migration_essential_containers,
                record.migration_deadline,
            ) {
                MigrationVerdict::Passed => StoppedPlan::RollOut,
                MigrationVerdict::Failed { reason } => StoppedPlan::Fail(reason),
            },
        },
        ReleaseState::Verifying => match &record.verify_task {
            None => StoppedPlan::NotReady,
            Some(recorded) if recorded != task_arn => StoppedPlan::Ignore(format!(
                "task {task_arn} is not the release's smoke-test task {recorded}"
            )),
            Some(_) => match judge_migration(
                task,
                &record.verify_essential_containers,
                record.verify_deadline,
            ) {
                MigrationVerdict::Passed => StoppedPlan::PassVerify,
                MigrationVerdict::Failed { reason } => StoppedPlan::FailVerify(format!(
                    "smoke test failed: {}",
                    reason.replacen("migration", "smoke-test", 1)
                )),
            },
        },
        // A redelivery after some UpdateService calls failed; a duplicate
        // arriving while the first rollout is under way finds no mark and waits.
        ReleaseState::Deploying if is_its_migration && record.interrupted.is_some() => {
            StoppedPlan::ResumeRollout
        }
        other => StoppedPlan::AlreadyDone(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::StoppedContainer;

    const TASK: &str = "arn:aws:ecs:eu-west-1:123456789012:task/shop-prod/aaaa";

    fn record(state: ReleaseState, task: Option<&str>) -> ReleaseRecord {
        ReleaseRecord {
            migration_essential_containers: vec!["migrate".into()],
            migration_task: task.map(str::to_owned),
            migration_deadline: Some(2_000),
            parameter_version: Some(2),
            ..ReleaseRecord::example(state)
        }
    }

    fn exited(code: i32, stopped_at: u64) -> StoppedTask {
        StoppedTask {
            stop_code: Some("EssentialContainerExited".into()),
            stopped_reason: None,
            containers: vec![StoppedContainer {
                name: "migrate".into(),
                exit_code: Some(code),
                reason: None,
            }],
            started_at: Some(1_100),
            stopped_at: Some(stopped_at),
        }
    }

    #[test]
    fn a_migration_that_exits_0_in_time_rolls_out() {
        let plan = decide_stopped(
            TASK,
            &exited(0, 1_500),
            &record(ReleaseState::Migrating, Some(TASK)),
        );
        assert_eq!(plan, StoppedPlan::RollOut);
    }

    #[test]
    fn a_migration_that_exits_1_fails_the_release_with_the_exit_code() {
        let plan = decide_stopped(
            TASK,
            &exited(1, 1_500),
            &record(ReleaseState::Migrating, Some(TASK)),
        );
        let StoppedPlan::Fail(reason) = plan else {
            panic!("expected a failure, got {plan:?}")
        };
        assert!(reason.contains("exited with code 1"), "{reason}");
    }

    #[test]
    fn a_migration_past_its_deadline_fails_even_with_exit_0() {
        let plan = decide_stopped(
            TASK,
            &exited(0, 2_001),
            &record(ReleaseState::Migrating, Some(TASK)),
        );
        assert!(matches!(plan, StoppedPlan::Fail(r) if r.contains("outlived its timeout")));
    }

    #[test]
    fn a_stop_before_the_task_was_recorded_is_not_ready() {
        assert_eq!(
            decide_stopped(
                TASK,
                &exited(0, 1_500),
                &record(ReleaseState::Claimed, None)
            ),
            StoppedPlan::NotReady
        );
        assert_eq!(
            decide_stopped(
                TASK,
                &exited(0, 1_500),
                &record(ReleaseState::Migrating, None)
            ),
            StoppedPlan::NotReady
        );
    }

    #[test]
    fn a_task_naming_the_release_that_is_not_its_migration_is_ignored() {
        let plan = decide_stopped(
            "arn:other",
            &exited(1, 1_500),
            &record(ReleaseState::Migrating, Some(TASK)),
        );
        assert!(
            matches!(plan, StoppedPlan::Ignore(r) if r.contains("arn:other") && r.contains(TASK))
        );
    }

    #[test]
    fn a_redelivered_stop_resumes_only_an_interrupted_rollout_of_the_same_task() {
        let mut deploying = record(ReleaseState::Deploying, Some(TASK));
        assert_eq!(
            decide_stopped(TASK, &exited(0, 1_500), &deploying),
            StoppedPlan::AlreadyDone(ReleaseState::Deploying),
            "a duplicate while the first rollout is under way must not roll out twice"
        );
        deploying.interrupted = Some("ecs:UpdateService failed".into());
        assert_eq!(
            decide_stopped(TASK, &exited(0, 1_500), &deploying),
            StoppedPlan::ResumeRollout
        );
        assert_eq!(
            decide_stopped("arn:other", &exited(0, 1_500), &deploying),
            StoppedPlan::AlreadyDone(ReleaseState::Deploying)
        );
    }

    #[test]
    fn a_smoke_test_is_judged_like_a_migration_against_its_own_task() {
        let mut verifying = record(ReleaseState::Verifying, Some("arn:migration"));
        verifying.verify_task = Some(TASK.into());
        verifying.verify_essential_containers = vec!["migrate".into()];
        verifying.verify_deadline = Some(2_000);
        assert_eq!(
            decide_stopped(TASK, &exited(0, 1_500), &verifying),
            StoppedPlan::PassVerify
        );
        let failed = decide_stopped(TASK, &exited(1, 1_500), &verifying);
        assert!(
            matches!(failed, StoppedPlan::FailVerify(ref r) if r.contains("exited with code 1")),
            "{failed:?}"
        );
        let late = decide_stopped(TASK, &exited(0, 2_500), &verifying);
        assert!(
            matches!(late, StoppedPlan::FailVerify(ref r) if r.contains("outlived its timeout")),
            "{late:?}"
        );
        // The migration's own late STOPPED event is not the smoke test's.
        assert!(matches!(
            decide_stopped("arn:migration", &exited(0, 1_500), &verifying),
            StoppedPlan::Ignore(_)
        ));
        verifying.verify_task = None;
        assert_eq!(
            decide_stopped(TASK, &exited(0, 1_500), &verifying),
            StoppedPlan::NotReady
        );
    }

    #[test]
    fn a_stop_after_the_release_moved_on_changes_nothing() {
        for state in [
            ReleaseState::Superseded,
            ReleaseState::Failed,
            ReleaseState::Succeeded,
            ReleaseState::RolledBack,
        ] {
            assert_eq!(
                decide_stopped(TASK, &exited(0, 1_500), &record(state, Some(TASK))),
                StoppedPlan::AlreadyDone(state)
            );
        }
    }
}
