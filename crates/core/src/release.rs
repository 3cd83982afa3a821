//! A release: its identity, the states it moves through, and the verdict on its
//! migration task.

use std::fmt;

pub use crate::names::{
    ReleaseError, ReleaseId, DIGEST_PREFIX_LEN, MAX_RELEASE_ID_LEN, MAX_STARTED_BY_LEN,
};

/// Where a release is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReleaseState {
    /// Recorded in the ledger; nothing in AWS changed yet.
    Claimed,
    /// Preflight passed and the task definitions are registered (an environment
    /// with `approval = true`): the release waits for an operator's approve
    /// before the SSM parameter, the migration or any service is touched.
    AwaitingApproval,
    /// The migration task runs.
    Migrating,
    /// Services are rolling out.
    Deploying,
    /// Every service completed; the smoke-test task runs against them.
    Verifying,
    /// Every service completed (and the smoke test passed): the guarding alarms
    /// are watched until a timer ends the bake.
    Baking,
    /// The bake ended with no guarding alarm raised since the rollout began;
    /// the release is known-good.
    Succeeded,
    Failed,
    /// A newer release took the environment before this one reached its services.
    Superseded,
    /// A rollback away from this release is recorded, with its target, and its
    /// services are being put back; a retry or a duplicate finishes it.
    RollingBack,
    RolledBack,
    /// An operator rejected the release awaiting approval, or its approval
    /// request expired: nothing outside the ledger and the registered revisions
    /// was touched. The reason says which.
    Rejected,
}

/// What happens to a release: every conditional ledger write names one of
/// these (or [`ReleaseState::stays`] for a write that keeps the state), and
/// takes the states it expects from [`TRANSITIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    AwaitApproval,
    ApproveMigration,
    ApproveRollout,
    Reject,
    StartMigration,
    SkipMigration,
    PassMigration,
    StartVerify,
    StartBake,
    Fail,
    Supersede,
    Complete,
    BeginRollback,
    FinishRollback,
}

use ReleaseState as S;

/// The states a release is in while it holds its lane.
pub const IN_FLIGHT: &[ReleaseState] = &[
    S::Claimed,
    S::AwaitingApproval,
    S::Migrating,
    S::Deploying,
    S::Verifying,
    S::Baking,
];

/// The release state machine, once: transition, the states it leaves, the state it takes.
pub const TRANSITIONS: [(Transition, &[ReleaseState], ReleaseState); 14] = [
    // The approval gate: prepared (registered), then an operator's verdict.
    (
        Transition::AwaitApproval,
        &[S::Claimed],
        S::AwaitingApproval,
    ),
    (
        Transition::ApproveMigration,
        &[S::AwaitingApproval],
        S::Migrating,
    ),
    (
        Transition::ApproveRollout,
        &[S::AwaitingApproval],
        S::Deploying,
    ),
    // Rejected by an operator, or the approval request expired.
    (Transition::Reject, &[S::AwaitingApproval], S::Rejected),
    (Transition::StartMigration, &[S::Claimed], S::Migrating),
    (Transition::SkipMigration, &[S::Claimed], S::Deploying),
    (Transition::PassMigration, &[S::Migrating], S::Deploying),
    (Transition::StartVerify, &[S::Deploying], S::Verifying),
    (
        Transition::StartBake,
        &[S::Deploying, S::Verifying],
        S::Baking,
    ),
    (Transition::Fail, IN_FLIGHT, S::Failed),
    // A newer claim takes the lane from a release still in flight.
    (Transition::Supersede, IN_FLIGHT, S::Superseded),
    // Known-good only once every service completed, the smoke test passed and
    // the bake ended (an environment without either goes straight on).
    (
        Transition::Complete,
        &[S::Deploying, S::Verifying, S::Baking],
        S::Succeeded,
    ),
    // A rollback also cancels a release that has not reached its services yet.
    (
        Transition::BeginRollback,
        &[
            S::Claimed,
            S::AwaitingApproval,
            S::Migrating,
            S::Deploying,
            S::Verifying,
            S::Baking,
            S::Succeeded,
        ],
        S::RollingBack,
    ),
    (Transition::FinishRollback, &[S::RollingBack], S::RolledBack),
];

impl Transition {
    pub const ALL: [Transition; 14] = [
        Transition::AwaitApproval,
        Transition::ApproveMigration,
        Transition::ApproveRollout,
        Transition::Reject,
        Transition::StartMigration,
        Transition::SkipMigration,
        Transition::PassMigration,
        Transition::StartVerify,
        Transition::StartBake,
        Transition::Fail,
        Transition::Supersede,
        Transition::Complete,
        Transition::BeginRollback,
        Transition::FinishRollback,
    ];

    fn row(self) -> (&'static [ReleaseState], ReleaseState) {
        TRANSITIONS
            .iter()
            .find(|(t, _, _)| *t == self)
            .map(|(_, from, to)| (*from, *to))
            .unwrap_or((&[], S::Failed))
    }

    /// The states a release may be in to take this transition.
    pub fn from_states(self) -> &'static [ReleaseState] {
        self.row().0
    }

    pub fn to(self) -> ReleaseState {
        self.row().1
    }

    /// The condition and effect of the ledger write that makes this transition.
    pub fn guard(self) -> Guard {
        Guard {
            from: self.from_states(),
            to: Some(self.to()),
        }
    }
}

/// What a conditional write of a release expects and makes of it: the states
/// it may be in, and the state it takes (`None`: it keeps its state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    pub from: &'static [ReleaseState],
    pub to: Option<ReleaseState>,
}

impl Guard {
    /// A write that records something about a release still holding its lane.
    pub const IN_FLIGHT: Guard = Guard {
        from: IN_FLIGHT,
        to: None,
    };

    pub fn admits(&self, state: ReleaseState) -> bool {
        self.from.contains(&state)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("release in state {from:?} cannot take transition {transition:?}")]
pub struct IllegalTransition {
    pub from: ReleaseState,
    pub transition: Transition,
}

impl ReleaseState {
    pub const ALL: [ReleaseState; 12] = [
        S::Claimed,
        S::AwaitingApproval,
        S::Migrating,
        S::Deploying,
        S::Verifying,
        S::Baking,
        S::Succeeded,
        S::Failed,
        S::Superseded,
        S::RollingBack,
        S::RolledBack,
        S::Rejected,
    ];

    /// The ledger's spelling: `CLAIMED`, `AWAITING_APPROVAL`, `MIGRATING`, `DEPLOYING`, `VERIFYING`,
    /// `BAKING`, `SUCCEEDED`, `FAILED`, `SUPERSEDED`, `ROLLING_BACK`, `ROLLED_BACK`, `REJECTED`.
    pub fn as_str(&self) -> &'static str {
        match self {
            S::Claimed => "CLAIMED",
            S::AwaitingApproval => "AWAITING_APPROVAL",
            S::Migrating => "MIGRATING",
            S::Deploying => "DEPLOYING",
            S::Verifying => "VERIFYING",
            S::Baking => "BAKING",
            S::Succeeded => "SUCCEEDED",
            S::Failed => "FAILED",
            S::Superseded => "SUPERSEDED",
            S::RollingBack => "ROLLING_BACK",
            S::RolledBack => "ROLLED_BACK",
            S::Rejected => "REJECTED",
        }
    }

    /// The inverse of [`ReleaseState::as_str`] (exact spelling only).
    pub fn parse(s: &str) -> Option<Self> {
        ReleaseState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
    }

    /// A terminal release takes no further transition.
    pub fn is_terminal(&self) -> bool {
        Transition::ALL
            .iter()
            .all(|t| !t.from_states().contains(self))
    }

    /// Whether the release is known-good: what a lane may run and roll back to.
    pub fn is_known_good(&self) -> bool {
        matches!(self, S::Succeeded)
    }

    /// Whether the release has come to rest: known-good, or terminal. What an
    /// operator waiting for a release (`ferry wait`) waits for.
    pub fn is_settled(&self) -> bool {
        self.is_known_good() || self.is_terminal()
    }

    /// Whether the release still holds its lane.
    pub fn is_in_flight(&self) -> bool {
        IN_FLIGHT.contains(self)
    }

    /// Whether the release got as far as updating services.
    pub fn reached_services(&self) -> bool {
        matches!(
            self,
            S::Deploying | S::Verifying | S::Baking | S::Succeeded | S::RollingBack | S::RolledBack
        )
    }

    /// A write that records something about a release and keeps its state.
    pub fn stays(self) -> Guard {
        let from: &'static [ReleaseState] = match self {
            S::Claimed => &[S::Claimed],
            S::AwaitingApproval => &[S::AwaitingApproval],
            S::Migrating => &[S::Migrating],
            S::Deploying => &[S::Deploying],
            S::Verifying => &[S::Verifying],
            S::Baking => &[S::Baking],
            S::Succeeded => &[S::Succeeded],
            S::Failed => &[S::Failed],
            S::Superseded => &[S::Superseded],
            S::RollingBack => &[S::RollingBack],
            S::RolledBack => &[S::RolledBack],
            S::Rejected => &[S::Rejected],
        };
        Guard { from, to: None }
    }

    /// The state after `t`, or an error if the release cannot take it from here.
    pub fn apply(self, t: Transition) -> Result<ReleaseState, IllegalTransition> {
        if t.from_states().contains(&self) {
            Ok(t.to())
        } else {
            Err(IllegalTransition {
                from: self,
                transition: t,
            })
        }
    }
}

impl serde::Serialize for ReleaseState {
    fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for ReleaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The ECS stop code of a task that never started.
pub const TASK_FAILED_TO_START: &str = "TaskFailedToStart";

/// One container of a stopped task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedContainer {
    pub name: String,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}

/// A stopped ECS task, as the task state change event reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedTask {
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
    pub containers: Vec<StoppedContainer>,
    /// epoch seconds
    pub started_at: Option<u64>,
    /// epoch seconds
    pub stopped_at: Option<u64>,
}

/// Whether a migration let its release go on to the services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationVerdict {
    Passed,
    Failed { reason: String },
}

/// Judges a stopped migration task.
///
/// It passed only if the task started (stop code is not `TaskFailedToStart`), stopped
/// no later than `deadline` (epoch seconds, when both are known), and every essential
/// container is present with exit code 0. `essential` names the migration's essential
/// containers; if it is empty, every container of the task is held to that rule (and a
/// task with no container at all fails), so a lost list never waves a migration through.
pub fn judge_migration(
    task: &StoppedTask,
    essential: &[String],
    deadline: Option<u64>,
) -> MigrationVerdict {
    let context = stop_context(task);
    if task.stop_code.as_deref() == Some(TASK_FAILED_TO_START) {
        let mut reason = format!(
            "migration task failed to start ({TASK_FAILED_TO_START}{})",
            task.stopped_reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
        let container_reasons: Vec<String> = task
            .containers
            .iter()
            .filter_map(|c| {
                c.reason
                    .as_ref()
                    .map(|r| format!("container \"{}\": {r}", c.name))
            })
            .collect();
        if !container_reasons.is_empty() {
            reason.push_str("; ");
            reason.push_str(&container_reasons.join("; "));
        }
        return MigrationVerdict::Failed { reason };
    }
    if let (Some(stopped_at), Some(deadline)) = (task.stopped_at, deadline) {
        if stopped_at > deadline {
            let ran = task
                .started_at
                .map(|s| format!(" after running {}s", stopped_at.saturating_sub(s)))
                .unwrap_or_default();
            return MigrationVerdict::Failed {
                reason: format!(
                    "migration outlived its timeout: stopped at {stopped_at}{ran}, {}s past its deadline {deadline} (epoch seconds){}",
                    stopped_at - deadline,
                    context.as_deref().map(|c| format!(" ({c})")).unwrap_or_default()
                ),
            };
        }
    }

    let judged: Vec<&str> = if essential.is_empty() {
        task.containers.iter().map(|c| c.name.as_str()).collect()
    } else {
        essential.iter().map(String::as_str).collect()
    };
    if judged.is_empty() {
        return MigrationVerdict::Failed {
            reason: format!(
                "migration task reported no container, so its success cannot be confirmed{}",
                context
                    .as_deref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            ),
        };
    }

    let mut failures = Vec::new();
    for name in judged {
        let Some(container) = task.containers.iter().find(|c| c.name == name) else {
            failures.push(format!(
                "essential migration container \"{name}\" is missing from the stopped task"
            ));
            continue;
        };
        let detail = container
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        match container.exit_code {
            Some(0) => {}
            Some(code) => failures.push(format!(
                "migration container \"{name}\" exited with code {code}{detail}"
            )),
            None => failures.push(format!(
                "migration container \"{name}\" stopped without an exit code{detail}"
            )),
        }
    }
    if failures.is_empty() {
        MigrationVerdict::Passed
    } else {
        let mut reason = failures.join("; ");
        if let Some(context) = context {
            reason.push_str(&format!(" ({context})"));
        }
        MigrationVerdict::Failed { reason }
    }
}

/// `stop code X: reason`, `stop code X`, or the bare reason.
fn stop_context(task: &StoppedTask) -> Option<String> {
    match (task.stop_code.as_deref(), task.stopped_reason.as_deref()) {
        (Some(code), Some(reason)) => Some(format!("stop code {code}: {reason}")),
        (Some(code), None) => Some(format!("stop code {code}")),
        (None, Some(reason)) => Some(reason.to_owned()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:3f2a9c1b7e40d5a1c0ffee00112233445566778899aabbccddeeff0011223344";

    #[test]
    fn release_id_is_app_env_and_sixteen_hex_of_the_digest() {
        let id = ReleaseId::derive("shop", "prod", DIGEST);
        assert_eq!(id.as_str(), "shop/prod/3f2a9c1b7e40d5a1");
        assert_eq!(id.to_string(), "shop/prod/3f2a9c1b7e40d5a1");
        assert_eq!(id.app(), "shop");
        assert_eq!(id.env(), "prod");
    }

    #[test]
    fn release_id_changes_with_app_environment_and_digest_only() {
        let other_digest = DIGEST.replace("3f2a9c1b", "3f2a9c1c");
        let ids = [
            ReleaseId::derive("shop", "prod", DIGEST),
            ReleaseId::derive("shop", "staging", DIGEST),
            ReleaseId::derive("shoe", "prod", DIGEST),
            ReleaseId::derive("shop", "prod", &other_digest),
        ];
        assert_eq!(
            ids.iter().map(ReleaseId::as_str).collect::<Vec<_>>(),
            [
                "shop/prod/3f2a9c1b7e40d5a1",
                "shop/staging/3f2a9c1b7e40d5a1",
                "shoe/prod/3f2a9c1b7e40d5a1",
                "shop/prod/3f2a9c1c7e40d5a1",
            ]
        );
    }

    #[test]
    fn release_id_ignores_digest_case() {
        assert_eq!(
            ReleaseId::derive(
                "shop",
                "prod",
                &DIGEST.to_ascii_uppercase().replace("SHA256", "sha256")
            ),
            ReleaseId::derive("shop", "prod", DIGEST)
        );
    }

    #[test]
    fn derived_release_id_parses_back() {
        let id = ReleaseId::derive("shop", "prod", DIGEST);
        assert_eq!(ReleaseId::parse(id.as_str()), Ok(id));
    }

    #[test]
    fn malformed_release_ids_are_rejected_with_an_example() {
        for bad in [
            "",
            "shop/prod",
            "shop/prod/3f2a9c1b7e40d5a1/x",
            "shop/prod/3f2a9c1b7e40d5a",
            "shop/prod/3F2A9C1B7E40D5A1",
            "shop/prod/3f2a9c1b7e40d5ag",
            "sh op/prod/3f2a9c1b7e40d5a1",
            "shop//3f2a9c1b7e40d5a1",
        ] {
            let err = ReleaseId::parse(bad).expect_err(bad);
            assert!(
                err.to_string().contains("shop/prod/3f2a9c1b7e40d5a1"),
                "{err}"
            );
        }
    }

    #[test]
    fn release_id_too_long_for_started_by_is_rejected() {
        let long = format!("{}/{}/3f2a9c1b7e40d5a1", "a".repeat(64), "b".repeat(64));
        let err = ReleaseId::parse(&long).unwrap_err();
        assert!(err.to_string().contains("startedBy"), "{err}");
        let fits = format!("{}/{}/3f2a9c1b7e40d5a1", "a".repeat(64), "b".repeat(40));
        assert_eq!(ReleaseId::parse(&fits).unwrap().started_by().len(), 128);
    }

    #[test]
    fn a_retry_is_the_next_generation_of_the_same_digest_and_parses_back() {
        let first = ReleaseId::derive("shop", "prod", DIGEST);
        assert_eq!(first.generation(), 1);
        let second = first.next_generation().expect("fits");
        assert_eq!(second.as_str(), "shop/prod/3f2a9c1b7e40d5a1-2");
        assert_eq!(second.generation(), 2);
        assert_eq!(second.first_generation(), first);
        let third = second.next_generation().expect("fits");
        assert_eq!(third.as_str(), "shop/prod/3f2a9c1b7e40d5a1-3");
        assert_eq!(third.first_generation(), first);
        assert_eq!((third.app(), third.env()), ("shop", "prod"));
        for id in [&second, &third] {
            assert_eq!(ReleaseId::parse(id.as_str()).as_ref(), Ok(id));
            assert_eq!(
                ReleaseId::from_started_by(&id.started_by()).as_ref(),
                Some(id)
            );
            assert!(id
                .started_by()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/')));
        }
        let tenth = ReleaseId::parse("shop/prod/3f2a9c1b7e40d5a1-10").expect("an id");
        assert_eq!(tenth.next_generation().expect("fits").generation(), 11);
    }

    #[test]
    fn hyphens_in_app_and_environment_names_are_not_generations() {
        let id = ReleaseId::derive("my-shop", "prod-2", DIGEST);
        assert_eq!(id.generation(), 1);
        assert_eq!(id.first_generation(), id);
        assert_eq!(
            id.next_generation().expect("fits").as_str(),
            "my-shop/prod-2/3f2a9c1b7e40d5a1-2"
        );
    }

    #[test]
    fn a_generation_has_one_spelling() {
        for bad in [
            "shop/prod/3f2a9c1b7e40d5a1-1",
            "shop/prod/3f2a9c1b7e40d5a1-0",
            "shop/prod/3f2a9c1b7e40d5a1-02",
            "shop/prod/3f2a9c1b7e40d5a1-",
            "shop/prod/3f2a9c1b7e40d5a1-x",
            "shop/prod/3f2a9c1b7e40d5a1-2-3",
            "shop/prod/3f2a9c1b7e40d5a1.2",
            "shop/prod/3f2a9c1b7e40d5a1-1234567890",
        ] {
            let err = ReleaseId::parse(bad).expect_err(bad);
            assert!(
                err.to_string().contains("shop/prod/3f2a9c1b7e40d5a1-2"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_retry_that_would_not_fit_started_by_is_refused() {
        let fits = ReleaseId::parse(&format!(
            "{}/{}/3f2a9c1b7e40d5a1",
            "a".repeat(64),
            "b".repeat(40)
        ))
        .expect("fits at generation 1");
        let err = fits.next_generation().expect_err("one character too many");
        assert!(err.to_string().contains("startedBy"), "{err}");
        let room = ReleaseId::parse(&format!(
            "{}/{}/3f2a9c1b7e40d5a1",
            "a".repeat(64),
            "b".repeat(38)
        ))
        .expect("an id");
        assert_eq!(
            room.next_generation().expect("fits").started_by().len(),
            MAX_STARTED_BY_LEN
        );
    }

    #[test]
    fn started_by_round_trips_to_the_release() {
        let id = ReleaseId::derive("shop", "prod", DIGEST);
        assert_eq!(id.started_by(), "ferry/shop/prod/3f2a9c1b7e40d5a1");
        assert_eq!(ReleaseId::from_started_by(&id.started_by()), Some(id));
    }

    #[test]
    fn started_by_uses_only_characters_ecs_accepts() {
        let id = ReleaseId::derive("My_Shop-2", "prod-eu", DIGEST);
        let started_by = id.started_by();
        assert!(started_by.len() <= MAX_STARTED_BY_LEN);
        assert!(started_by
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/')));
    }

    #[test]
    fn tasks_not_started_by_ferry_map_to_no_release() {
        for other in [
            "ecs-svc/1234567890123456789",
            "shop/prod/3f2a9c1b7e40d5a1",
            "ferry/",
            "ferry/not-a-release",
            "",
        ] {
            assert_eq!(ReleaseId::from_started_by(other), None, "{other}");
        }
    }

    #[test]
    fn release_state_names_round_trip() {
        let names: Vec<&str> = ReleaseState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "CLAIMED",
                "AWAITING_APPROVAL",
                "MIGRATING",
                "DEPLOYING",
                "VERIFYING",
                "BAKING",
                "SUCCEEDED",
                "FAILED",
                "SUPERSEDED",
                "ROLLING_BACK",
                "ROLLED_BACK",
                "REJECTED"
            ]
        );
        for state in ReleaseState::ALL {
            assert_eq!(ReleaseState::parse(state.as_str()), Some(state));
            assert_eq!(state.to_string(), state.as_str());
        }
        assert_eq!(ReleaseState::parse("claimed"), None);
        assert_eq!(ReleaseState::parse("DONE"), None);
    }

    #[test]
    fn failed_superseded_rolled_back_and_rejected_are_terminal() {
        let terminal: Vec<ReleaseState> = ReleaseState::ALL
            .into_iter()
            .filter(ReleaseState::is_terminal)
            .collect();
        assert_eq!(
            terminal,
            [
                ReleaseState::Failed,
                ReleaseState::Superseded,
                ReleaseState::RolledBack,
                ReleaseState::Rejected
            ]
        );
    }

    #[test]
    fn a_release_holds_its_lane_from_its_claim_until_it_ends() {
        let in_flight: Vec<ReleaseState> = ReleaseState::ALL
            .into_iter()
            .filter(ReleaseState::is_in_flight)
            .collect();
        assert_eq!(
            in_flight,
            [
                ReleaseState::Claimed,
                ReleaseState::AwaitingApproval,
                ReleaseState::Migrating,
                ReleaseState::Deploying,
                ReleaseState::Verifying,
                ReleaseState::Baking
            ]
        );
    }

    #[test]
    fn only_deploying_succeeded_and_rolling_or_rolled_back_reached_services() {
        let reached: Vec<ReleaseState> = ReleaseState::ALL
            .into_iter()
            .filter(ReleaseState::reached_services)
            .collect();
        assert_eq!(
            reached,
            [
                ReleaseState::Deploying,
                ReleaseState::Verifying,
                ReleaseState::Baking,
                ReleaseState::Succeeded,
                ReleaseState::RollingBack,
                ReleaseState::RolledBack
            ]
        );
    }

    fn legal_moves() -> Vec<(ReleaseState, Transition, ReleaseState)> {
        use ReleaseState as S;
        use Transition as T;
        vec![
            (S::Claimed, T::StartMigration, S::Migrating),
            (S::Claimed, T::SkipMigration, S::Deploying),
            (S::Migrating, T::PassMigration, S::Deploying),
            (S::Claimed, T::Fail, S::Failed),
            (S::Migrating, T::Fail, S::Failed),
            (S::Deploying, T::Fail, S::Failed),
            (S::Claimed, T::Supersede, S::Superseded),
            (S::Migrating, T::Supersede, S::Superseded),
            (S::Deploying, T::Supersede, S::Superseded),
            (S::Deploying, T::StartVerify, S::Verifying),
            (S::Deploying, T::StartBake, S::Baking),
            (S::Verifying, T::StartBake, S::Baking),
            (S::Verifying, T::Fail, S::Failed),
            (S::Baking, T::Fail, S::Failed),
            (S::Verifying, T::Supersede, S::Superseded),
            (S::Baking, T::Supersede, S::Superseded),
            (S::Deploying, T::Complete, S::Succeeded),
            (S::Verifying, T::Complete, S::Succeeded),
            (S::Baking, T::Complete, S::Succeeded),
            (S::Claimed, T::BeginRollback, S::RollingBack),
            (S::Migrating, T::BeginRollback, S::RollingBack),
            (S::Deploying, T::BeginRollback, S::RollingBack),
            (S::Verifying, T::BeginRollback, S::RollingBack),
            (S::Baking, T::BeginRollback, S::RollingBack),
            (S::Succeeded, T::BeginRollback, S::RollingBack),
            (S::RollingBack, T::FinishRollback, S::RolledBack),
            (S::Claimed, T::AwaitApproval, S::AwaitingApproval),
            (S::AwaitingApproval, T::ApproveMigration, S::Migrating),
            (S::AwaitingApproval, T::ApproveRollout, S::Deploying),
            (S::AwaitingApproval, T::Reject, S::Rejected),
            (S::AwaitingApproval, T::Fail, S::Failed),
            (S::AwaitingApproval, T::Supersede, S::Superseded),
            (S::AwaitingApproval, T::BeginRollback, S::RollingBack),
        ]
    }

    #[test]
    fn every_legal_move_lands_in_its_state() {
        for (from, t, to) in legal_moves() {
            assert_eq!(from.apply(t), Ok(to), "{from:?} --{t:?}-->");
        }
    }

    #[test]
    fn every_move_outside_the_table_is_illegal() {
        let table = legal_moves();
        for from in ReleaseState::ALL {
            for t in Transition::ALL {
                if table.iter().any(|(f, tr, _)| *f == from && *tr == t) {
                    continue;
                }
                assert_eq!(
                    from.apply(t),
                    Err(IllegalTransition {
                        from,
                        transition: t
                    }),
                    "{from:?} --{t:?}--> should be illegal"
                );
            }
        }
    }

    #[test]
    fn terminal_states_take_no_transition() {
        for from in ReleaseState::ALL
            .into_iter()
            .filter(ReleaseState::is_terminal)
        {
            for t in Transition::ALL {
                assert!(from.apply(t).is_err(), "{from:?} took {t:?}");
            }
        }
    }

    #[test]
    fn a_release_comes_to_rest_known_good_or_terminal_and_only_succeeded_is_known_good() {
        let settled: Vec<ReleaseState> = ReleaseState::ALL
            .into_iter()
            .filter(ReleaseState::is_settled)
            .collect();
        assert_eq!(
            settled,
            [
                ReleaseState::Succeeded,
                ReleaseState::Failed,
                ReleaseState::Superseded,
                ReleaseState::RolledBack,
                ReleaseState::Rejected
            ]
        );
        // known-good is not terminal: a rollback can still leave it
        assert!(ReleaseState::Succeeded.is_known_good() && !ReleaseState::Succeeded.is_terminal());
        for state in ReleaseState::ALL {
            assert_eq!(
                state.is_known_good(),
                state == ReleaseState::Succeeded,
                "{state}"
            );
            assert!(!(state.is_settled() && state.is_in_flight()), "{state}");
        }
    }

    #[test]
    fn a_superseded_release_can_never_reach_its_services() {
        // Walk every path from Superseded: none may lead to Deploying.
        let mut frontier = vec![ReleaseState::Superseded];
        while let Some(state) = frontier.pop() {
            assert!(!state.reached_services(), "{state:?}");
            frontier.extend(
                Transition::ALL
                    .into_iter()
                    .filter_map(|t| state.apply(t).ok()),
            );
        }
    }

    #[test]
    fn a_release_awaiting_approval_reaches_its_services_only_through_an_approve() {
        for t in Transition::ALL {
            if let Ok(to) = ReleaseState::AwaitingApproval.apply(t) {
                let approved =
                    matches!(t, Transition::ApproveMigration | Transition::ApproveRollout);
                assert_eq!(
                    matches!(to, S::Migrating | S::Deploying),
                    approved,
                    "AWAITING_APPROVAL --{t:?}--> {to:?}"
                );
            }
        }
        assert!(ReleaseState::Rejected.is_terminal());
        assert!(!ReleaseState::Rejected.reached_services());
    }

    #[test]
    fn illegal_transition_names_state_and_transition() {
        let err = ReleaseState::Failed
            .apply(Transition::Complete)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "release in state Failed cannot take transition Complete"
        );
    }

    fn container(name: &str, exit_code: Option<i32>, reason: Option<&str>) -> StoppedContainer {
        StoppedContainer {
            name: name.into(),
            exit_code,
            reason: reason.map(Into::into),
        }
    }

    fn task(
        stop_code: &str,
        stopped_reason: &str,
        containers: Vec<StoppedContainer>,
    ) -> StoppedTask {
        StoppedTask {
            stop_code: Some(stop_code.into()),
            stopped_reason: Some(stopped_reason.into()),
            containers,
            started_at: Some(1_000),
            stopped_at: Some(1_060),
        }
    }

    fn essential(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn reason(verdict: MigrationVerdict) -> String {
        match verdict {
            MigrationVerdict::Failed { reason } => reason,
            MigrationVerdict::Passed => panic!("expected the migration to fail"),
        }
    }

    #[test]
    fn migration_that_exited_zero_in_time_passes() {
        let t = task(
            "EssentialContainerExited",
            "Essential container in task exited",
            vec![
                container("migrate", Some(0), None),
                container("log-router", Some(0), None),
            ],
        );
        assert_eq!(
            judge_migration(&t, &essential(&["migrate"]), Some(1_900)),
            MigrationVerdict::Passed
        );
    }

    #[test]
    fn non_essential_sidecar_failure_does_not_fail_the_migration() {
        let t = task(
            "EssentialContainerExited",
            "Essential container in task exited",
            vec![
                container("migrate", Some(0), None),
                container("xray", Some(137), None),
            ],
        );
        assert_eq!(
            judge_migration(&t, &essential(&["migrate"]), None),
            MigrationVerdict::Passed
        );
    }

    #[test]
    fn non_zero_exit_fails_with_container_code_and_stop_code() {
        let t = task(
            "EssentialContainerExited",
            "Essential container in task exited",
            vec![container("migrate", Some(1), None)],
        );
        assert_eq!(
            reason(judge_migration(&t, &essential(&["migrate"]), None)),
            "migration container \"migrate\" exited with code 1 (stop code EssentialContainerExited: Essential container in task exited)"
        );
    }

    #[test]
    fn container_reason_such_as_out_of_memory_is_reported() {
        let t = task(
            "EssentialContainerExited",
            "Essential container in task exited",
            vec![container(
                "migrate",
                Some(137),
                Some("OutOfMemoryError: Container killed due to memory usage"),
            )],
        );
        let text = reason(judge_migration(&t, &essential(&["migrate"]), None));
        assert!(
            text.contains("exited with code 137: OutOfMemoryError"),
            "{text}"
        );
    }

    #[test]
    fn task_that_failed_to_start_fails_with_its_reason() {
        let t = StoppedTask {
            stop_code: Some("TaskFailedToStart".into()),
            stopped_reason: Some(
                "CannotPullContainerError: pull image manifest has been retried 5 times".into(),
            ),
            containers: vec![container(
                "migrate",
                None,
                Some("CannotPullContainerError: not found"),
            )],
            started_at: None,
            stopped_at: Some(1_010),
        };
        let text = reason(judge_migration(&t, &essential(&["migrate"]), Some(2_000)));
        assert!(
            text.starts_with(
                "migration task failed to start (TaskFailedToStart: CannotPullContainerError: pull image manifest"
            ),
            "{text}"
        );
        assert!(
            text.contains("container \"migrate\": CannotPullContainerError: not found"),
            "{text}"
        );
    }

    #[test]
    fn task_that_failed_to_start_fails_even_if_containers_report_zero() {
        let t = task(
            "TaskFailedToStart",
            "ResourceInitializationError",
            vec![container("migrate", Some(0), None)],
        );
        assert!(
            reason(judge_migration(&t, &essential(&["migrate"]), None)).contains("failed to start")
        );
    }

    #[test]
    fn migration_that_outlived_its_timeout_fails_even_with_exit_zero() {
        let mut t = task(
            "UserInitiated",
            "ferry: migration timed out",
            vec![container("migrate", Some(0), None)],
        );
        t.stopped_at = Some(2_000);
        let text = reason(judge_migration(&t, &essential(&["migrate"]), Some(1_900)));
        assert!(
            text.starts_with("migration outlived its timeout: stopped at 2000"),
            "{text}"
        );
        assert!(text.contains("deadline 1900"), "{text}");
        assert!(text.contains("100s past"), "{text}");
    }

    #[test]
    fn migration_stopping_exactly_at_its_deadline_passes() {
        let mut t = task(
            "EssentialContainerExited",
            "done",
            vec![container("migrate", Some(0), None)],
        );
        t.stopped_at = Some(1_900);
        assert_eq!(
            judge_migration(&t, &essential(&["migrate"]), Some(1_900)),
            MigrationVerdict::Passed
        );
    }

    #[test]
    fn unknown_stop_time_does_not_count_as_a_timeout() {
        let mut t = task(
            "EssentialContainerExited",
            "done",
            vec![container("migrate", Some(0), None)],
        );
        t.stopped_at = None;
        assert_eq!(
            judge_migration(&t, &essential(&["migrate"]), Some(1)),
            MigrationVerdict::Passed
        );
    }

    #[test]
    fn missing_exit_code_on_essential_container_fails() {
        let t = task(
            "SpotInterruption",
            "Your Spot Task was interrupted.",
            vec![container("migrate", None, None)],
        );
        assert_eq!(
            reason(judge_migration(&t, &essential(&["migrate"]), None)),
            "migration container \"migrate\" stopped without an exit code (stop code SpotInterruption: Your Spot Task was interrupted.)"
        );
    }

    #[test]
    fn essential_container_missing_from_the_task_fails() {
        let t = task(
            "EssentialContainerExited",
            "done",
            vec![container("sidecar", Some(0), None)],
        );
        let text = reason(judge_migration(&t, &essential(&["migrate"]), None));
        assert!(text.contains("\"migrate\" is missing"), "{text}");
    }

    #[test]
    fn every_failing_essential_container_is_named() {
        let t = task(
            "EssentialContainerExited",
            "Essential container in task exited",
            vec![
                container("schema", Some(2), None),
                container("data", Some(3), None),
            ],
        );
        let text = reason(judge_migration(&t, &essential(&["schema", "data"]), None));
        assert!(text.contains("\"schema\" exited with code 2"), "{text}");
        assert!(text.contains("\"data\" exited with code 3"), "{text}");
    }

    #[test]
    fn without_an_essential_list_every_container_must_exit_zero() {
        let t = task(
            "EssentialContainerExited",
            "done",
            vec![
                container("migrate", Some(0), None),
                container("other", Some(1), None),
            ],
        );
        assert!(reason(judge_migration(&t, &[], None)).contains("\"other\" exited with code 1"));
        let ok = task(
            "EssentialContainerExited",
            "done",
            vec![container("migrate", Some(0), None)],
        );
        assert_eq!(judge_migration(&ok, &[], None), MigrationVerdict::Passed);
    }

    #[test]
    fn task_with_no_container_and_no_essential_list_fails() {
        let t = task("EssentialContainerExited", "done", vec![]);
        assert!(reason(judge_migration(&t, &[], None)).contains("no container"));
    }

    #[test]
    fn failure_without_stop_code_still_explains_itself() {
        let t = StoppedTask {
            stop_code: None,
            stopped_reason: None,
            containers: vec![container("migrate", Some(1), None)],
            started_at: None,
            stopped_at: None,
        };
        assert_eq!(
            reason(judge_migration(&t, &essential(&["migrate"]), None)),
            "migration container \"migrate\" exited with code 1"
        );
    }
}
