//! A push or an operator's deploy: whether to claim a release, resume an
//! interrupted one, hold it, or refuse it; then what preflight found.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{Environment, Migration};
use crate::image::{plan_image_changes, ImageChange, PushedImage};
use crate::names::PushTime;
use crate::ports::{
    HeldPush, Lane, LaneHead, PortError, ReleaseRecord, ServiceLookup, ServiceView,
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
        ReleaseId::derive(&self.env.app, &self.env.name, &self.image.digest)
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
        if existing.interrupted.is_some() && existing.state.is_in_flight() && holds_lane {
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
        id: target.id(),
        lane: target.lane(),
        tag: target.image.tag.clone(),
        digest: target.image.digest.clone(),
        state: ReleaseState::Claimed,
        // What to restore if this release fails: the known-good tag, or for a
        // lane's first release the parameter's value before it (read after the claim).
        previous_tag: head.known_good.as_ref().map(|k| k.tag.clone()),
        pushed_at: target.pushed_at,
        cluster: target.env.cluster.clone(),
        services: target.service_names(),
        task_definitions: BTreeMap::new(),
        migration_task_definition: None,
        migration_essential_containers: Vec::new(),
        migration_task: None,
        migration_deadline: None,
        parameter_version: None,
        deployments: BTreeMap::new(),
        completed_services: BTreeSet::new(),
        reason: None,
        interrupted: None,
        rolled_back_from: None,
        created_at: now,
        updated_at: now,
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
}

impl<T: TaskDefinitionView> ReleasePlan<T> {
    /// Every secret the copies reference: each must exist (values are never read).
    pub fn secret_references(&self) -> Vec<String> {
        self.families
            .iter()
            .chain(self.migration.iter())
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
    let migration = match (target.migration(), reads.migration) {
        (_, Some(Err(e))) if e.retryable => return Preflight::Retry(e),
        (Some(m), Some(Err(e))) => {
            problems.push(format!(
                "migration task family `{}` cannot be described: {e}",
                m.task_family
            ));
            None
        }
        (_, Some(Ok(td))) => Some(td),
        (None, Some(Err(_))) | (_, None) => None,
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
    Preflight::Judged {
        plan: ReleasePlan {
            families,
            migration,
        },
        problems,
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
