//! A push or an operator's deploy: whether to claim a release, resume an
//! interrupted one, hold it, or refuse it; then what preflight found.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{Environment, Migration};
use crate::decide::retry::Retry;
use crate::image::{plan_image_changes, ImageChange, PushedImage};
use crate::names::PushTime;
use crate::ports::{
    HeldPush, Lane, LaneHead, PortError, ReleaseRecord, Retried, ServiceLookup, ServiceView,
    TaskDefinitionView,
};
use crate::release::{ReleaseId, ReleaseState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// An ECR push event: frozen lanes hold it, stale pushes are refused.
    Push,
    /// An operator's explicit deploy: always considered.
    Operator,
}

/// An image to release into one environment.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub env: &'a Environment,
    pub image: PushedImage,
    pub pushed_at: Option<PushTime>,
    pub origin: Origin,
    /// An operator's retry: the release is the digest's next generation.
    pub retry: Option<Retry>,
}

/// The repository an operator's request names, or the environment's only one;
/// the error says what to name (`flag`: how the caller spells the choice).
pub fn requested_repository(
    env: &Environment,
    requested: Option<&str>,
    flag: &str,
) -> Result<String, String> {
    let repositories = env.repositories();
    let listed = || repositories.iter().copied().collect::<Vec<_>>().join(", ");
    match requested {
        Some(r) if repositories.contains(r) => Ok(r.to_owned()),
        Some(r) => Err(format!(
            "environment {}/{} runs no repository `{r}` (it runs: {})",
            env.app,
            env.name,
            listed()
        )),
        None => match repositories.iter().collect::<Vec<_>>().as_slice() {
            [only] => Ok((**only).to_owned()),
            _ => Err(format!(
                "environment {}/{} runs several repositories ({}); name one with {flag}",
                env.app,
                env.name,
                listed()
            )),
        },
    }
}

/// Why an operator's image cannot be released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetRefusal {
    /// The digest carries no tag to record in the SSM parameter.
    Untagged(String),
    /// The tag or digest is not a valid image reference.
    BadImage(String),
}

impl std::fmt::Display for TargetRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetRefusal::Untagged(m) | TargetRefusal::BadImage(m) => f.write_str(m),
        }
    }
}

/// What an operator's deploy of a resolved image releases: its requested tag,
/// or the first tag ECR holds for the digest (the SSM parameter records a tag).
pub fn operator_target<'a>(
    env: &'a Environment,
    repository: &str,
    region: &str,
    requested_tag: Option<&str>,
    resolved: &crate::ports::ResolvedImage,
) -> Result<Target<'a>, TargetRefusal> {
    let Some(tag) = requested_tag.or(resolved.tags.first().map(String::as_str)) else {
        return Err(TargetRefusal::Untagged(format!(
            "digest {} carries no tag; ferry records a tag in the SSM parameter, tag the image first",
            resolved.digest
        )));
    };
    let image = PushedImage::new(
        &resolved.registry_id,
        region,
        repository,
        tag,
        &resolved.digest,
    )
    .map_err(|e| TargetRefusal::BadImage(format!("image: {e}")))?;
    Ok(Target {
        env,
        image,
        pushed_at: resolved.pushed_at,
        origin: Origin::Operator,
        retry: None,
    })
}

impl Target<'_> {
    pub fn lane(&self) -> Lane {
        Lane {
            app: self.env.app.clone(),
            env: self.env.name.clone(),
            repository: self.image.repository.clone(),
        }
    }

    pub fn id(&self) -> ReleaseId {
        match &self.retry {
            Some(retry) => retry.id.clone(),
            None => ReleaseId::derive(&self.env.app, &self.env.name, &self.image.digest),
        }
    }

    pub fn service_names(&self) -> Vec<String> {
        self.env
            .services_running(&self.image.repository)
            .into_iter()
            .map(|s| s.name.clone())
            .collect()
    }

    pub fn migration(&self) -> Option<&Migration> {
        self.env.migration_for(&self.image.repository)
    }

    /// The smoke test of the environment: it runs for every lane's release, and
    /// its image follows the release only where it runs the pushed repository.
    pub fn verify(&self) -> Option<&Migration> {
        self.env.verify.as_ref()
    }
}

/// What to do with a push, decided from the lane head and the release record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimPlan {
    Refuse(String),
    Duplicate(ReleaseState),
    Hold(HeldPush),
    /// Claim a new release (one transaction), superseding the one in flight.
    Claim {
        record: Box<ReleaseRecord>,
        supersedes: Option<ReleaseId>,
        latest_pushed_at: Option<PushTime>,
        unfreeze: bool,
        /// An operator's retry: the release it deploys again.
        retries: Option<Retried>,
    },
    /// An earlier delivery was interrupted by a retryable failure: this one
    /// takes the resumption (one conditional write) and goes on from its state.
    Resume(Box<ReleaseRecord>),
}

/// Decides a push from the consistent read of the lane head and the release.
pub fn decide_claim(
    target: &Target<'_>,
    head: &LaneHead,
    existing: Option<&ReleaseRecord>,
    now: u64,
) -> ClaimPlan {
    let env = target.env;
    let image = &target.image;
    let id = target.id();
    // An operator retried this release: the digest lives on as a later
    // generation, and a late or redelivered push of it changes nothing.
    if let Some(retried) = existing.filter(|e| e.retried_as.is_some()) {
        return ClaimPlan::Duplicate(retried.state);
    }
    if head.bad_releases.contains(&id)
        || existing.is_some_and(|e| {
            matches!(
                e.state,
                ReleaseState::RolledBack | ReleaseState::RollingBack
            )
        })
    {
        return ClaimPlan::Refuse(format!(
            "{}@{} was rolled back in {}/{} and is marked bad; it is not deployed again",
            image.repository, image.digest, env.app, env.name
        ));
    }
    if let Some(existing) = existing {
        let holds_lane = head.in_flight.as_ref().is_some_and(|p| p.id == existing.id);
        if existing.interrupted.is_some() && push_step_interrupted(existing) && holds_lane {
            return ClaimPlan::Resume(Box::new(existing.clone()));
        }
        return ClaimPlan::Duplicate(existing.state);
    }
    if let Some(rollback) = &head.rolling_back {
        if target.origin == Origin::Operator {
            return ClaimPlan::Refuse(format!(
                "the rollback of {} ({}) has not finished putting every service back; deploy again once it has",
                rollback.release.id, rollback.release.tag
            ));
        }
    }
    if let Some(refusal) = guard(target, head) {
        return ClaimPlan::Refuse(refusal);
    }
    // A rolled-back lane is frozen for automatic deploys: a new push is held
    // until an operator unfreezes, unless the config lets a new digest through.
    let automatic = target.origin == Origin::Push;
    let unfreeze = head.frozen && automatic && env.unfreeze_on_new_digest;
    if head.frozen && automatic && !unfreeze {
        return ClaimPlan::Hold(HeldPush {
            tag: image.tag.clone(),
            digest: image.digest.clone(),
            pushed_at: target.pushed_at,
        });
    }
    let latest_pushed_at = match (head.latest_pushed_at, target.pushed_at) {
        (Some(latest), Some(pushed)) => Some(latest.max(pushed)),
        (latest, pushed) => latest.or(pushed),
    };
    ClaimPlan::Claim {
        record: Box::new(new_record(target, head, now)),
        supersedes: head.in_flight.as_ref().map(|p| p.id.clone()),
        latest_pushed_at,
        unfreeze,
        retries: target.retry.as_ref().and_then(|r| r.of.clone()),
    }
}

/// Whether the release was interrupted in a step a push takes: the claim and
/// registration, the migration's start, the rollout. A migration that started
/// is the gate's to judge (its STOPPED event, or the reconcile pass): a push
/// resuming it would run it again, and over a failure the gate was recording.
/// The smoke test, the bake and an approval are not a push's either.
fn push_step_interrupted(record: &ReleaseRecord) -> bool {
    match record.state {
        ReleaseState::Claimed | ReleaseState::Deploying => true,
        ReleaseState::Migrating => record.migration_task.is_none(),
        _ => false,
    }
}

/// The guards that need the lane's state: tag policy against what runs or
/// rolls out, stale pushes.
fn guard(target: &Target<'_>, head: &LaneHead) -> Option<String> {
    let env = target.env;
    let floor = head
        .in_flight
        .as_ref()
        .or(head.known_good.as_ref())
        .map(|p| p.tag.as_str());
    if let Err(refusal) = env
        .tag_policy
        .check(&target.image.tag, &env.mutable_tags, floor)
    {
        return Some(refusal.to_string());
    }
    if target.origin == Origin::Push {
        if let (Some(latest), Some(pushed)) = (head.latest_pushed_at, target.pushed_at) {
            if pushed < latest {
                return Some(format!(
                    "push at {pushed} is older than the newest push ferry acted on ({latest}); a late event never moves an environment backwards"
                ));
            }
        }
    }
    None
}

fn new_record(target: &Target<'_>, head: &LaneHead, now: u64) -> ReleaseRecord {
    ReleaseRecord {
        // What to restore if this release fails: the known-good tag, or for a
        // lane's first release the parameter's value before it (read after the claim).
        previous_tag: head.known_good.as_ref().map(|k| k.tag.clone()),
        pushed_at: target.pushed_at,
        ..ReleaseRecord::claimed(
            target.id(),
            target.lane(),
            target.image.tag.clone(),
            target.image.digest.clone(),
            target.env.cluster.clone(),
            target.service_names(),
            now,
        )
    }
}

/// One task-definition family to copy: the services that run it, the revision
/// they run, and the containers whose image changes.
#[derive(Debug, Clone)]
pub struct FamilyCopy<T> {
    pub services: Vec<String>,
    pub base: T,
    pub changes: Vec<ImageChange>,
}

/// What a release registers and runs, once preflight has passed.
#[derive(Debug, Clone)]
pub struct ReleasePlan<T> {
    pub families: Vec<FamilyCopy<T>>,
    pub migration: Option<FamilyCopy<T>>,
    /// The smoke test: copied when it runs the pushed repository (`changes`
    /// not empty), else run as described.
    pub verify: Option<FamilyCopy<T>>,
}

impl<T: TaskDefinitionView> ReleasePlan<T> {
    /// Every secret the copies reference: each must exist (values are never read).
    pub fn secret_references(&self) -> Vec<String> {
        self.families
            .iter()
            .chain(self.migration.iter())
            .chain(self.verify.iter())
            .flat_map(|f| f.base.secret_refs())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }
}

/// Preflight's verdict on what round trips 1 and 2 read: the plan, and the
/// problems found (any problem fails the release before anything changes).
#[derive(Debug)]
pub enum Preflight<T> {
    Judged {
        plan: ReleasePlan<T>,
        problems: Vec<String>,
    },
    /// A read failed in a way a retry can fix.
    Retry(PortError),
}

/// What the preflight reads returned.
pub struct PreflightReads<'a, S, T> {
    pub services: &'a ServiceLookup<S>,
    pub image_found: Result<bool, PortError>,
    /// The migration family's latest revision, when the lane has a migration.
    pub migration: Option<Result<T, PortError>>,
    /// The smoke-test family's latest revision, when the environment has one.
    pub verify: Option<Result<T, PortError>>,
    /// Every revision the services run, by ARN.
    pub described: Vec<(String, Result<T, PortError>)>,
}

/// Judges the reads: every service ACTIVE, the digest in ECR, every revision
/// describable and running the repository. Lists every problem at once.
pub fn preflight<S: ServiceView, T: TaskDefinitionView + Clone>(
    target: &Target<'_>,
    reads: PreflightReads<'_, S, T>,
) -> Preflight<T> {
    let image = &target.image;
    let mut problems = Vec::new();
    for missing in &reads.services.missing {
        problems.push(format!(
            "service `{missing}` is not an ACTIVE service of cluster `{}`",
            target.env.cluster
        ));
    }
    match reads.image_found {
        Ok(true) => {}
        Ok(false) => problems.push(format!(
            "image {}@{} does not exist in ECR",
            image.repository, image.digest
        )),
        Err(e) if e.retryable => return Preflight::Retry(e),
        Err(e) => problems.push(format!("image {}@{}: {e}", image.repository, image.digest)),
    }
    let mut by_arn = BTreeMap::new();
    for (arn, result) in reads.described {
        match result {
            Ok(td) => {
                by_arn.insert(arn, td);
            }
            Err(e) if e.retryable => return Preflight::Retry(e),
            Err(e) => problems.push(format!("task definition {arn} cannot be described: {e}")),
        }
    }
    let migration = match one_off(
        target.migration(),
        reads.migration,
        "migration",
        &mut problems,
    ) {
        Ok(td) => td,
        Err(e) => return Preflight::Retry(e),
    };
    let verify = match one_off(target.verify(), reads.verify, "smoke-test", &mut problems) {
        Ok(td) => td,
        Err(e) => return Preflight::Retry(e),
    };
    let families = family_copies(target, reads.services, &by_arn, &mut problems);
    let migration = migration.map(|td| {
        let changes = plan_image_changes(&td.containers(), image);
        if changes.is_empty() {
            problems.push(format!(
                "migration task definition {} has no container from repository `{}`",
                td.arn(),
                image.repository
            ));
        }
        FamilyCopy {
            services: Vec::new(),
            base: td,
            changes,
        }
    });
    // The smoke test may run another image: then it runs as described.
    let verify = verify.map(|td| FamilyCopy {
        services: Vec::new(),
        changes: plan_image_changes(&td.containers(), image),
        base: td,
    });
    Preflight::Judged {
        plan: ReleasePlan {
            families,
            migration,
            verify,
        },
        problems,
    }
}

/// The latest revision of a one-off task's family, when the lane has the task:
/// a read retrying can fix is a retry, any other failure a problem.
fn one_off<T>(
    configured: Option<&Migration>,
    read: Option<Result<T, PortError>>,
    what: &str,
    problems: &mut Vec<String>,
) -> Result<Option<T>, PortError> {
    match (configured, read) {
        (_, Some(Err(e))) if e.retryable => Err(e),
        (Some(task), Some(Err(e))) => {
            problems.push(format!(
                "{what} task family `{}` cannot be described: {e}",
                task.task_family
            ));
            Ok(None)
        }
        (_, Some(Ok(td))) => Ok(Some(td)),
        (None, Some(Err(_))) | (_, None) => Ok(None),
    }
}

/// Groups services by the revision they run; services sharing a revision share a copy.
fn family_copies<S: ServiceView, T: TaskDefinitionView + Clone>(
    target: &Target<'_>,
    services: &ServiceLookup<S>,
    by_arn: &BTreeMap<String, T>,
    problems: &mut Vec<String>,
) -> Vec<FamilyCopy<T>> {
    let image = &target.image;
    let mut families: Vec<FamilyCopy<T>> = Vec::new();
    for service in &services.found {
        let Some(td) = by_arn.get(service.task_definition()) else {
            continue;
        };
        if let Some(family) = families.iter_mut().find(|f| f.base.arn() == td.arn()) {
            family.services.push(service.name().to_owned());
            continue;
        }
        let changes = plan_image_changes(&td.containers(), image);
        if changes.is_empty() {
            problems.push(format!(
                "service `{}` runs task definition {} which has no container from repository `{}`",
                service.name(),
                td.arn(),
                image.repository
            ));
        }
        families.push(FamilyCopy {
            services: vec![service.name().to_owned()],
            base: td.clone(),
            changes,
        });
    }
    families
}

/// The secrets check's answer, folded into preflight's verdict.
pub fn secrets_verdict(missing: Result<Vec<String>, PortError>) -> Result<Vec<String>, PortError> {
    match missing {
        Ok(missing) => Ok(missing
            .into_iter()
            .map(|reference| format!("secret `{reference}` does not exist"))
            .collect()),
        Err(e) if e.retryable => Err(e),
        Err(e) => Ok(vec![format!("secrets cannot be checked: {e}")]),
    }
}

/// Where a release whose own write lost to a newer one leaves the image tag:
/// the successor's tag, or the known-good one (labelled) after a rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParameterFix {
    Successor(String),
    KnownGood(String),
    Nothing,
}

pub fn parameter_after_losing(head: &LaneHead) -> ParameterFix {
    match (&head.in_flight, head.history.first()) {
        (Some(successor), _) => ParameterFix::Successor(successor.tag.clone()),
        (None, Some(good)) => ParameterFix::KnownGood(good.tag.clone()),
        (None, None) => ParameterFix::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::ports::{ReleasePointer, RollbackInProgress};

    const TOML: &str = r#"
[apps.shop]
repository = "shop"

[apps.shop.environments.prod]
cluster = "shop-prod"
services = ["api", "worker"]
tags = { semver = ">=1.0.0" }
image_tag_parameter = "/shop/prod/compute/currentImageTag"
"#;

    fn config() -> Config {
        Config::from_toml(TOML).expect("a valid config")
    }

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn target<'a>(
        config: &'a Config,
        tag: &str,
        c: char,
        origin: Origin,
        second: i64,
    ) -> Target<'a> {
        let env = config.environment("shop", "prod").expect("shop/prod");
        Target {
            env,
            image: PushedImage::new("123456789012", "eu-west-1", "shop", tag, &digest(c))
                .expect("an image"),
            pushed_at: Some(PushTime::from_epoch_millis(second * 1_000)),
            origin,
            retry: None,
        }
    }

    fn pointer(tag: &str, c: char) -> ReleasePointer {
        ReleasePointer {
            id: ReleaseId::derive("shop", "prod", &digest(c)),
            tag: tag.into(),
            digest: digest(c),
        }
    }

    #[test]
    fn a_first_push_is_claimed_with_the_services_of_its_repository() {
        let config = config();
        let plan = decide_claim(
            &target(&config, "1.0.0", 'a', Origin::Push, 10),
            &LaneHead::default(),
            None,
            77,
        );
        let ClaimPlan::Claim {
            record,
            supersedes,
            latest_pushed_at,
            unfreeze,
            retries,
        } = plan
        else {
            panic!("expected a claim: {plan:?}");
        };
        assert_eq!(record.state, ReleaseState::Claimed);
        assert_eq!(record.services, ["api", "worker"]);
        assert_eq!((record.tag.as_str(), record.created_at), ("1.0.0", 77));
        assert_eq!(record.previous_tag, None, "read from SSM after the claim");
        assert_eq!(supersedes, None);
        assert_eq!(latest_pushed_at, Some(PushTime::from_epoch_millis(10_000)));
        assert_eq!(retries, None, "a push retries nothing");
        assert!(!unfreeze);
    }

    #[test]
    fn a_newer_push_supersedes_the_release_in_flight_and_restores_the_known_good_tag_on_failure() {
        let config = config();
        let head = LaneHead {
            version: 4,
            in_flight: Some(pointer("1.1.0", 'b')),
            known_good: Some(pointer("1.0.0", 'a')),
            ..LaneHead::default()
        };
        let plan = decide_claim(
            &target(&config, "1.2.0", 'c', Origin::Push, 30),
            &head,
            None,
            0,
        );
        let ClaimPlan::Claim {
            record, supersedes, ..
        } = plan
        else {
            panic!("expected a claim: {plan:?}");
        };
        assert_eq!(supersedes, Some(pointer("1.1.0", 'b').id));
        assert_eq!(record.previous_tag.as_deref(), Some("1.0.0"));
    }

    #[test]
    fn a_push_older_than_the_newest_push_acted_on_is_refused() {
        let config = config();
        let head = LaneHead {
            latest_pushed_at: Some(PushTime::from_epoch_millis(20_000)),
            ..LaneHead::default()
        };
        let plan = decide_claim(
            &target(&config, "1.5.0", 'e', Origin::Push, 19),
            &head,
            None,
            0,
        );
        assert!(
            matches!(plan, ClaimPlan::Refuse(ref r) if r.contains("older than the newest push")),
            "{plan:?}"
        );
        // An operator's deploy is not a late event: it is considered.
        let plan = decide_claim(
            &target(&config, "1.5.0", 'e', Origin::Operator, 19),
            &head,
            None,
            0,
        );
        assert!(matches!(plan, ClaimPlan::Claim { .. }), "{plan:?}");
    }

    #[test]
    fn a_push_at_the_same_moment_as_the_newest_push_acted_on_is_not_stale() {
        let config = config();
        let head = LaneHead {
            latest_pushed_at: Some(PushTime::from_epoch_millis(20_000)),
            ..LaneHead::default()
        };
        let plan = decide_claim(
            &target(&config, "1.5.0", 'e', Origin::Push, 20),
            &head,
            None,
            0,
        );
        assert!(matches!(plan, ClaimPlan::Claim { .. }), "{plan:?}");
    }

    #[test]
    fn a_semver_downgrade_below_the_release_in_flight_is_refused() {
        let config = config();
        let head = LaneHead {
            in_flight: Some(pointer("1.3.0", 'b')),
            ..LaneHead::default()
        };
        let plan = decide_claim(
            &target(&config, "1.2.9", 'c', Origin::Push, 30),
            &head,
            None,
            0,
        );
        assert!(matches!(plan, ClaimPlan::Refuse(_)), "{plan:?}");
    }

    #[test]
    fn a_frozen_lane_holds_a_push_but_claims_an_operators_deploy() {
        let config = config();
        let head = LaneHead {
            frozen: true,
            ..LaneHead::default()
        };
        let plan = decide_claim(
            &target(&config, "1.4.0", 'd', Origin::Push, 30),
            &head,
            None,
            0,
        );
        assert_eq!(
            plan,
            ClaimPlan::Hold(HeldPush {
                tag: "1.4.0".into(),
                digest: digest('d'),
                pushed_at: Some(PushTime::from_epoch_millis(30_000)),
            })
        );
        let plan = decide_claim(
            &target(&config, "1.4.0", 'd', Origin::Operator, 30),
            &head,
            None,
            0,
        );
        assert!(
            matches!(
                plan,
                ClaimPlan::Claim {
                    unfreeze: false,
                    ..
                }
            ),
            "{plan:?}"
        );
    }

    #[test]
    fn a_rolled_back_digest_is_refused_as_bad() {
        let config = config();
        let mut head = LaneHead::default();
        head.bad_releases.insert(pointer("1.3.0", 'b').id);
        let plan = decide_claim(
            &target(&config, "1.3.0", 'b', Origin::Operator, 30),
            &head,
            None,
            0,
        );
        assert!(
            matches!(plan, ClaimPlan::Refuse(ref r) if r.contains("marked bad")),
            "{plan:?}"
        );
    }

    #[test]
    fn a_push_of_a_digest_an_operator_retried_is_a_duplicate_whatever_its_state() {
        let config = config();
        for state in [ReleaseState::Failed, ReleaseState::RolledBack] {
            let mut retried = existing(state, false);
            retried.retried_as = Some(retried.id.next_generation().expect("fits"));
            let head = LaneHead {
                bad_releases: [retried.id.clone()].into(),
                ..LaneHead::default()
            };
            let plan = decide_claim(
                &target(&config, "1.0.0", 'a', Origin::Push, 10),
                &head,
                Some(&retried),
                0,
            );
            assert_eq!(plan, ClaimPlan::Duplicate(state));
        }
    }

    #[test]
    fn a_retry_claims_the_next_generation_and_names_the_release_it_retries() {
        let config = config();
        let failed = existing(ReleaseState::Failed, false);
        let retried = Retried {
            id: failed.id.clone(),
            state: ReleaseState::Failed,
            unmark_bad: false,
        };
        let second = failed.id.next_generation().expect("fits");
        let retry = Target {
            retry: Some(Retry {
                id: second.clone(),
                of: Some(retried.clone()),
            }),
            ..target(&config, "1.0.0", 'a', Origin::Operator, 10)
        };
        let ClaimPlan::Claim {
            record, retries, ..
        } = decide_claim(&retry, &LaneHead::default(), None, 5)
        else {
            panic!("expected a claim");
        };
        assert_eq!(record.id, second);
        assert_eq!(record.digest, failed.digest);
        assert_eq!(retries, Some(retried));
    }

    fn existing(state: ReleaseState, interrupted: bool) -> ReleaseRecord {
        let config = config();
        let mut record = new_record(
            &target(&config, "1.0.0", 'a', Origin::Push, 10),
            &LaneHead::default(),
            1,
        );
        record.state = state;
        record.interrupted = interrupted.then(|| "ecs:RegisterTaskDefinition failed".into());
        record
    }

    /// A lane head whose release in flight is `tag` (digest `c`).
    fn held_by(tag: &str, c: char) -> LaneHead {
        LaneHead {
            in_flight: Some(pointer(tag, c)),
            ..LaneHead::default()
        }
    }

    #[test]
    fn a_redelivered_push_resumes_only_an_interrupted_release_that_still_holds_its_lane() {
        let config = config();
        let push = target(&config, "1.0.0", 'a', Origin::Push, 10);
        let holding = held_by("1.0.0", 'a');
        let interrupted = existing(ReleaseState::Migrating, true);
        assert_eq!(
            decide_claim(&push, &holding, Some(&interrupted), 0),
            ClaimPlan::Resume(Box::new(interrupted.clone()))
        );
        // Not interrupted: another delivery is at work; a plain duplicate.
        let working = existing(ReleaseState::Migrating, false);
        assert_eq!(
            decide_claim(&push, &holding, Some(&working), 0),
            ClaimPlan::Duplicate(ReleaseState::Migrating)
        );
        // Superseded meanwhile: the lane is someone else's.
        let elsewhere = held_by("1.1.0", 'b');
        assert_eq!(
            decide_claim(&push, &elsewhere, Some(&interrupted), 0),
            ClaimPlan::Duplicate(ReleaseState::Migrating)
        );
    }

    #[test]
    fn a_redelivered_push_leaves_a_started_migration_and_later_steps_to_their_handlers() {
        let config = config();
        let push = target(&config, "1.0.0", 'a', Origin::Push, 10);
        let holding = held_by("1.0.0", 'a');
        // The gate was recording the migration's failure when it was interrupted.
        let mut judged = existing(ReleaseState::Migrating, true);
        judged.migration_task = Some("arn:aws:ecs:eu-west-1:123456789012:task/shop-prod/1".into());
        assert_eq!(
            decide_claim(&push, &holding, Some(&judged), 0),
            ClaimPlan::Duplicate(ReleaseState::Migrating)
        );
        for state in [
            ReleaseState::AwaitingApproval,
            ReleaseState::Verifying,
            ReleaseState::Baking,
        ] {
            assert_eq!(
                decide_claim(&push, &holding, Some(&existing(state, true)), 0),
                ClaimPlan::Duplicate(state)
            );
        }
        for state in [ReleaseState::Claimed, ReleaseState::Deploying] {
            assert!(matches!(
                decide_claim(&push, &holding, Some(&existing(state, true)), 0),
                ClaimPlan::Resume(_)
            ));
        }
    }

    #[test]
    fn an_operators_deploy_waits_for_an_unfinished_rollback() {
        let config = config();
        let head = LaneHead {
            frozen: true,
            rolling_back: Some(RollbackInProgress {
                release: pointer("1.3.0", 'b'),
                target: pointer("1.0.0", 'a').id,
                reason: "alarm".into(),
                interrupted: true,
            }),
            ..LaneHead::default()
        };
        let plan = decide_claim(
            &target(&config, "1.4.0", 'd', Origin::Operator, 30),
            &head,
            None,
            0,
        );
        assert!(
            matches!(plan, ClaimPlan::Refuse(ref r) if r.contains("has not finished")),
            "{plan:?}"
        );
    }

    #[test]
    fn after_losing_its_lane_a_release_leaves_the_tag_to_the_successor_or_the_known_good_release() {
        let known_good = crate::ports::KnownGoodRelease {
            id: pointer("1.0.0", 'a').id,
            tag: "1.0.0".into(),
            digest: digest('a'),
            task_definitions: BTreeMap::new(),
        };
        let successor = LaneHead {
            in_flight: Some(pointer("1.2.0", 'c')),
            history: vec![known_good.clone()],
            ..LaneHead::default()
        };
        assert_eq!(
            parameter_after_losing(&successor),
            ParameterFix::Successor("1.2.0".into())
        );
        let rolled_back = LaneHead {
            history: vec![known_good],
            ..LaneHead::default()
        };
        assert_eq!(
            parameter_after_losing(&rolled_back),
            ParameterFix::KnownGood("1.0.0".into())
        );
        assert_eq!(
            parameter_after_losing(&LaneHead::default()),
            ParameterFix::Nothing
        );
    }

    #[test]
    fn a_secrets_check_that_cannot_be_retried_is_a_preflight_problem_and_one_that_can_is_a_retry() {
        let throttled = PortError::new("secretsmanager:DescribeSecret", "slow down").retryable();
        assert!(secrets_verdict(Err(throttled)).is_err());
        let denied = PortError::new("secretsmanager:DescribeSecret", "AccessDenied");
        let problems = secrets_verdict(Err(denied)).expect("a verdict");
        assert!(
            problems[0].contains("secrets cannot be checked"),
            "{problems:?}"
        );
        let missing = secrets_verdict(Ok(vec!["arn:db".into()])).expect("a verdict");
        assert_eq!(missing, ["secret `arn:db` does not exist"]);
    }

    const WITH_MIGRATION: &str = r#"
[apps.shop]
repository = "shop"

[apps.shop.environments.prod]
cluster = "shop-prod"
services = ["api"]
tags = { semver = ">=1.0.0" }
image_tag_parameter = "/shop/prod/compute/currentImageTag"
migration = { task_family = "shop-migrate", timeout = "15m" }
"#;

    #[derive(Debug, Clone)]
    struct Revision(String);

    impl TaskDefinitionView for Revision {
        fn arn(&self) -> &str {
            &self.0
        }
        fn family(&self) -> &str {
            self.0
                .rsplit('/')
                .next()
                .and_then(|f| f.split(':').next())
                .unwrap_or("")
        }
        fn containers(&self) -> Vec<crate::image::ContainerImage> {
            vec![crate::image::ContainerImage {
                name: "app".into(),
                image: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:0.9.0".into(),
            }]
        }
        fn essential_containers(&self) -> Vec<String> {
            vec!["app".into()]
        }
        fn secret_refs(&self) -> Vec<String> {
            Vec::new()
        }
        fn tags(&self) -> Vec<(String, String)> {
            Vec::new()
        }
        fn is_active(&self) -> bool {
            true
        }
    }

    struct Running;

    impl ServiceView for Running {
        fn name(&self) -> &str {
            "api"
        }
        fn task_definition(&self) -> &str {
            API_REVISION
        }
        fn deployments(&self) -> Vec<crate::ports::DeploymentStatus> {
            Vec::new()
        }
    }

    const API_REVISION: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition/shop-api:3";
    const MIGRATION_REVISION: &str =
        "arn:aws:ecs:eu-west-1:123456789012:task-definition/shop-migrate:2";

    /// Preflight of `shop:1.0.0` with every read answered except the one `broken` replaces.
    fn preflight_with(broken: Option<(&str, PortError)>) -> Preflight<Revision> {
        let config = Config::from_toml(WITH_MIGRATION).expect("a valid config");
        let target = target(&config, "1.0.0", 'a', Origin::Push, 10);
        let services = ServiceLookup {
            found: vec![Running],
            missing: Vec::new(),
        };
        let (which, mut error) = match broken {
            Some((which, error)) => (Some(which), Some(error)),
            None => (None, None),
        };
        let mut failing = |read: &str| {
            if which == Some(read) {
                error.take()
            } else {
                None
            }
        };
        let reads = PreflightReads {
            services: &services,
            image_found: failing("image").map_or(Ok(true), Err),
            migration: Some(
                failing("migration").map_or(Ok(Revision(MIGRATION_REVISION.into())), Err),
            ),
            verify: None,
            described: vec![(
                API_REVISION.into(),
                failing("described").map_or(Ok(Revision(API_REVISION.into())), Err),
            )],
        };
        preflight(&target, reads)
    }

    fn problems(verdict: Preflight<Revision>) -> Vec<String> {
        match verdict {
            Preflight::Judged { problems, .. } => problems,
            Preflight::Retry(e) => panic!("expected a verdict, got a retry: {e}"),
        }
    }

    #[test]
    fn a_preflight_whose_reads_all_answer_plans_a_copy_of_the_service_and_the_migration() {
        let Preflight::Judged { plan, problems } = preflight_with(None) else {
            panic!("expected a verdict");
        };
        assert_eq!(problems, Vec::<String>::new());
        assert_eq!(plan.families.len(), 1);
        assert_eq!(plan.families[0].base.arn(), API_REVISION);
        assert_eq!(
            plan.migration.as_ref().map(|m| m.base.arn()),
            Some(MIGRATION_REVISION)
        );
    }

    #[test]
    fn a_preflight_read_that_a_retry_can_fix_is_a_retry_and_changes_nothing() {
        for read in ["image", "described", "migration"] {
            let throttled = PortError::new("ecs:DescribeTaskDefinition", "Throttling").retryable();
            assert!(
                matches!(preflight_with(Some((read, throttled))), Preflight::Retry(_)),
                "a throttled {read} read is retried, not a failed release"
            );
        }
    }

    #[test]
    fn a_preflight_read_that_no_retry_can_fix_is_a_problem_naming_what_was_read() {
        for (read, names) in [
            ("image", "image shop@"),
            ("described", "task definition arn:aws:ecs:eu-west-1:123456789012:task-definition/shop-api:3 cannot be described"),
            ("migration", "migration task family `shop-migrate` cannot be described"),
        ] {
            let denied = PortError::new("ecs:DescribeTaskDefinition", "AccessDeniedException");
            let problems = problems(preflight_with(Some((read, denied))));
            assert!(
                problems.iter().any(|p| p.contains(names) && p.contains("AccessDeniedException")),
                "{read}: {problems:?}"
            );
        }
    }
}
