//! Push → release: read, decide (claim, resume, hold, refuse), preflight,
//! register, SSM, migration (or the rollout).
//!
//! Round trips on the happy path, each a set of concurrent calls:
//! 1. read lane head + release ∥ DescribeServices ∥ describe migration family ∥
//!    ECR DescribeImages
//! 2. claim (one transaction) ∥ DescribeTaskDefinition of every service ∥
//!    GetParameter (a lane's first release only: what to restore)
//! 3. secrets exist (DescribeSecret ∥ GetParameters)
//! 4. RegisterTaskDefinition for every family ∥ ledger: Claimed → Migrating
//! 5. PutParameter ∥ RunTask (or the rollout of every service without migration)
//! 6. record ARNs, task, parameter version

use serde::Deserialize;

use super::{
    event_for, fan_out, Decision, Engine, EngineError, Outcome, Ports, DESCRIBE_CONCURRENCY,
    REGISTER_CONCURRENCY,
};
use crate::decide::promote::{promoted_only, source_refusal};
use crate::decide::push::{
    decide_claim, operator_target, parameter_after_losing, preflight, secrets_verdict, ClaimPlan,
    Origin, ParameterFix, Preflight, PreflightReads, ReleasePlan, Target,
};
use crate::image::{
    earlier_revisions, registered_for, release_tags, PushedImage, COPY_SEARCH_DEPTH,
};
use crate::names::PushTime;
use crate::ports::{
    ApprovalPlan, Claim, ClaimOutcome, Ecs, ImageSelector, Lane, LaneHead, Ledger, ParameterChange,
    Parameters, PortError, Registry, ReleaseEvent, ReleaseRecord, ReleaseUpdate, RollbackLedger,
    SecretsCheck, ServiceLookup, ServiceView, TaskDefinitionView,
};
use crate::release::{Guard, ReleaseState, Transition};

type TaskDefinitionOf<P> = <<P as Ports>::Ecs as Ecs>::TaskDefinition;
type ServiceOf<P> = <<P as Ports>::Ecs as Ecs>::Service;

/// An ECR push, as the ECR Image Action event reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub registry_id: String,
    pub region: String,
    pub repository: String,
    pub tag: String,
    pub digest: String,
    /// The event's time: a push older than one already acted on is stale.
    pub pushed_at: PushTime,
}

/// A direct invoke: deploy a tag or a digest to one environment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    pub app: String,
    pub environment: String,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub digest: Option<String>,
    /// Which repository of the environment, when it runs more than one.
    #[serde(default)]
    pub repository: Option<String>,
}

/// Round trip 1: everything read before deciding.
struct PushRead<P: Ports> {
    head: LaneHead,
    /// The `promote_from` environment's lane head, when the environment has one.
    source: Option<LaneHead>,
    existing: Option<ReleaseRecord>,
    services: Result<ServiceLookup<ServiceOf<P>>, PortError>,
    rest: RestRead<P>,
}

/// The reads preflight judges besides the services.
struct RestRead<P: Ports> {
    image_found: Result<bool, PortError>,
    migration: Option<Result<TaskDefinitionOf<P>, PortError>>,
    verify: Option<Result<TaskDefinitionOf<P>, PortError>>,
}

/// A release that holds its lane and goes on: claimed now, or resumed.
struct Holding {
    record: ReleaseRecord,
    events: Vec<ReleaseEvent>,
    /// The SSM value to restore, read for a lane's first release.
    value_before: Option<String>,
    now: u64,
    /// A release resumed after an interruption: its first attempt may have
    /// registered some copies already.
    resumed: bool,
}

impl<P: Ports> Engine<P> {
    /// Every environment that tracks the pushed repository gets its own decision.
    pub async fn on_push(&self, push: &Push, now: u64) -> Result<Vec<Decision>, EngineError> {
        let environments = self.config.environments_tracking(&push.repository);
        if environments.is_empty() {
            tracing::info!(repository = %push.repository, "no environment tracks this repository; ignored");
            return Ok(vec![Decision::ignored(format!(
                "no environment in ferry's config tracks repository `{}`",
                push.repository
            ))]);
        }
        let image = PushedImage::new(
            &push.registry_id,
            &push.region,
            &push.repository,
            &push.tag,
            &push.digest,
        )
        .map_err(|e| EngineError::BadRequest(format!("pushed image: {e}")))?;
        let targets: Vec<Target<'_>> = environments
            .into_iter()
            .map(|env| Target {
                env,
                image: image.clone(),
                pushed_at: Some(push.pushed_at),
                origin: Origin::Push,
                retry: None,
            })
            .collect();
        let results = futures_util::future::join_all(
            targets
                .iter()
                .map(|target| self.release_environment(target, now)),
        )
        .await;
        results.into_iter().collect()
    }

    /// Deploys a tag or digest to one environment on an operator's request.
    pub async fn deploy(
        &self,
        request: &DeployRequest,
        region: &str,
        now: u64,
    ) -> Result<Decision, EngineError> {
        let env = self.environment_of(&request.app, &request.environment)?;
        let repository = requested_repository(env, request.repository.as_deref())?;
        let selector = match (&request.tag, &request.digest) {
            (Some(tag), None) => ImageSelector::Tag(tag.clone()),
            (None, Some(digest)) => ImageSelector::Digest(digest.clone()),
            _ => {
                return Err(EngineError::BadRequest(
                    "give exactly one of `tag` or `digest`".to_owned(),
                ))
            }
        };
        let Some(resolved) = self.registry.resolve(&repository, &selector).await? else {
            return Err(EngineError::BadRequest(format!(
                "image {selector:?} does not exist in ECR repository `{repository}`"
            )));
        };
        let target = operator_target(env, &repository, region, request.tag.as_deref(), &resolved)
            .map_err(|refusal| EngineError::BadRequest(refusal.to_string()))?;
        self.release_environment(&target, now).await
    }

    pub(super) async fn release_environment(
        &self,
        target: &Target<'_>,
        now: u64,
    ) -> Result<Decision, EngineError> {
        let env = target.env;
        let id = target.id();
        let decision = |outcome| Decision::about(&env.app, &env.name, Some(id.as_str()), outcome);

        // Refusals that need no state cost no AWS call at all.
        if let Err(refusal) = env
            .tag_policy
            .check(&target.image.tag, &env.mutable_tags, None)
        {
            tracing::info!(release = %id, %refusal, "tag refused");
            return Ok(decision(Outcome::Refused {
                reason: refusal.to_string(),
            }));
        }
        for _attempt in 0..3 {
            if let Some(outcome) = self.try_release(target, now).await? {
                return Ok(decision(outcome));
            }
        }
        Err(EngineError::Contention(target.lane()))
    }

    /// One attempt; `None` means the lane head moved under a write: read again.
    async fn try_release(
        &self,
        target: &Target<'_>,
        now: u64,
    ) -> Result<Option<Outcome>, EngineError> {
        let read = self.read_push(target).await?;
        let id = target.id();
        let plan = promoted_only(
            decide_claim(target, &read.head, read.existing.as_ref(), now),
            source_refusal(target, read.source.as_ref()),
        );
        match plan {
            ClaimPlan::Refuse(reason) => {
                tracing::info!(release = %id, %reason, "release refused");
                Ok(Some(Outcome::Refused { reason }))
            }
            ClaimPlan::Duplicate(state) => {
                tracing::info!(release = %id, %state, "release exists already; duplicate event ignored");
                Ok(Some(Outcome::Duplicate { state }))
            }
            ClaimPlan::Hold(held) => {
                if !self
                    .ledger
                    .hold(&target.lane(), read.head.version, &held)
                    .await?
                {
                    return Ok(None);
                }
                tracing::info!(release = %id, tag = %held.tag, "lane frozen after a rollback; push held");
                Ok(Some(Outcome::Held { tag: held.tag }))
            }
            ClaimPlan::Claim {
                record,
                supersedes,
                latest_pushed_at,
                unfreeze,
                retries,
            } => {
                let claim = Claim {
                    release: &record,
                    expected_head_version: Some(read.head.version),
                    supersedes: supersedes.as_ref(),
                    latest_pushed_at,
                    unfreeze,
                    retries: retries.as_ref(),
                };
                self.claim_and_release(target, *record.clone(), claim, read, now)
                    .await
            }
            ClaimPlan::Resume(record) => self.resume_release(target, *record, read, now).await,
        }
    }

    /// Round trip 1.
    async fn read_push(&self, target: &Target<'_>) -> Result<PushRead<P>, EngineError> {
        let image = &target.image;
        let by_digest = ImageSelector::Digest(image.digest.clone());
        let (lane, id, names) = (target.lane(), target.id(), target.service_names());
        let latest = |task: Option<&crate::config::Migration>| {
            let family = task.map(|t| t.task_family.clone());
            async move {
                match family {
                    Some(family) => Some(self.ecs.describe_task_definition(&family).await),
                    None => None,
                }
            }
        };
        let source_lane = target.env.promote_from.as_ref().map(|from| Lane {
            env: from.clone(),
            ..lane.clone()
        });
        let source = async {
            match &source_lane {
                Some(source) => self.ledger.head(source).await,
                None => Ok(None),
            }
        };
        let (read, source, services, migration, verify, resolved) = futures_util::join!(
            self.ledger.read(&lane, &id),
            source,
            self.ecs.describe_services(&target.env.cluster, &names),
            latest(target.migration()),
            latest(target.verify()),
            self.registry.resolve(&image.repository, &by_digest),
        );
        let (head, existing) = read?;
        Ok(PushRead {
            head: head.unwrap_or_default(),
            source: source?,
            existing,
            services,
            rest: RestRead {
                image_found: resolved.map(|r| r.is_some()),
                migration,
                verify,
            },
        })
    }

    /// Round trip 2 for a new release: the claim ∥ describe what every service runs.
    async fn claim_and_release(
        &self,
        target: &Target<'_>,
        record: ReleaseRecord,
        claim: Claim<'_>,
        read: PushRead<P>,
        now: u64,
    ) -> Result<Option<Outcome>, EngineError> {
        let services = read.services?;
        let supersedes = claim.supersedes.cloned();
        let (claimed, described, value_before) = futures_util::join!(
            self.ledger.claim(claim),
            self.describe_running(&services),
            self.value_to_restore(target, &record, supersedes.as_ref()),
        );
        match claimed? {
            ClaimOutcome::Claimed => {}
            ClaimOutcome::AlreadyClaimed => {
                return Ok(Some(Outcome::Duplicate {
                    state: ReleaseState::Claimed,
                }))
            }
            ClaimOutcome::HeadMoved => return Ok(None),
        }
        tracing::info!(release = %record.id, tag = %record.tag, supersedes = ?supersedes, "release claimed");
        let events = vec![event_for(&record, None, ReleaseState::Claimed)];
        let value_before = match value_before {
            Ok(value) => value,
            Err(e) if e.retryable => return Err(self.interrupt(&record, e).await),
            Err(e) => {
                return self
                    .abandon(
                        &record,
                        events,
                        format!("reading the image tag: {e}"),
                        false,
                    )
                    .await
            }
        };
        let holding = Holding {
            record,
            events,
            value_before,
            now,
            resumed: false,
        };
        self.preflight_and_go(target, holding, &services, read.rest, described)
            .await
    }

    /// Round trip 2 for an interrupted release: take the resumption ∥ describe.
    async fn resume_release(
        &self,
        target: &Target<'_>,
        record: ReleaseRecord,
        read: PushRead<P>,
        now: u64,
    ) -> Result<Option<Outcome>, EngineError> {
        let services = read.services?;
        let resume = ReleaseUpdate {
            resume: true,
            ..ReleaseUpdate::default()
        };
        let (resumed, described, value_before) = futures_util::join!(
            self.ledger.update(&record.id, record.state.stays(), resume),
            self.describe_running(&services),
            async {
                match record.state {
                    ReleaseState::Claimed => self.value_to_restore(target, &record, None).await,
                    _ => Ok(None),
                }
            },
        );
        let Some(record) = resumed? else {
            // Another delivery took the resumption, or the release moved on.
            return Ok(Some(Outcome::Duplicate {
                state: record.state,
            }));
        };
        tracing::warn!(release = %record.id, state = %record.state, interrupted = ?record.interrupted, "resuming an interrupted release");
        if record.state == ReleaseState::Deploying && !record.task_definitions.is_empty() {
            return self.roll_out(record, Vec::new(), now, true).await.map(Some);
        }
        let holding = Holding {
            record,
            events: Vec::new(),
            value_before: value_before.map_err(EngineError::from)?,
            now,
            resumed: true,
        };
        self.preflight_and_go(target, holding, &services, read.rest, described)
            .await
    }

    /// DescribeTaskDefinition of every revision the services run.
    async fn describe_running(
        &self,
        services: &ServiceLookup<ServiceOf<P>>,
    ) -> Vec<(String, Result<TaskDefinitionOf<P>, PortError>)> {
        let arns: Vec<String> = services
            .found
            .iter()
            .map(|s| s.task_definition().to_owned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        fan_out(arns, DESCRIBE_CONCURRENCY, |arn| async move {
            let described = self.ecs.describe_task_definition(&arn).await;
            (arn, described)
        })
        .await
    }

    /// What a failure of this release restores in the SSM parameter, when the
    /// lane has no known-good release to name.
    async fn value_to_restore(
        &self,
        target: &Target<'_>,
        record: &ReleaseRecord,
        supersedes: Option<&crate::release::ReleaseId>,
    ) -> Result<Option<String>, PortError> {
        match (&record.previous_tag, supersedes) {
            // The lane has a known-good release: a failure restores its tag and
            // puts back any service a superseded release rolled out
            // (`decide::put_back`), so parameter and services agree.
            (Some(_), _) => Ok(None),
            // A lane's first releases: a superseded release that reached its
            // services left them on its image, and nothing can put them back;
            // a failure of this one restores the tag they run.
            (None, Some(old)) => match self.ledger.release(old).await? {
                Some(old) if !old.deployments.is_empty() => Ok(Some(old.tag)),
                // The superseded release may have written its own tag already:
                // what to restore is what it would have restored.
                Some(old) if old.previous_tag.is_some() => Ok(old.previous_tag),
                // It recorded none: it never wrote the tag, which is the one to restore.
                _ => {
                    let parameter = self.parameter_of(&target.lane())?;
                    self.params.get(&parameter).await
                }
            },
            (None, None) => {
                let parameter = self.parameter_of(&target.lane())?;
                self.params.get(&parameter).await
            }
        }
    }

    /// Round trip 3 and on: preflight's verdict, then registration and the rest.
    async fn preflight_and_go(
        &self,
        target: &Target<'_>,
        holding: Holding,
        services: &ServiceLookup<ServiceOf<P>>,
        rest: RestRead<P>,
        described: Vec<(String, Result<TaskDefinitionOf<P>, PortError>)>,
    ) -> Result<Option<Outcome>, EngineError> {
        let reads = PreflightReads {
            services,
            image_found: rest.image_found,
            migration: rest.migration,
            verify: rest.verify,
            described,
        };
        // A claimed release interrupted here keeps the tag to restore it read
        // (its resumption no longer knows which release it superseded).
        let done = ReleaseUpdate {
            previous_tag: holding.value_before.clone(),
            ..ReleaseUpdate::default()
        };
        let (plan, mut problems) = match preflight(target, reads) {
            Preflight::Judged { plan, problems } => (plan, problems),
            Preflight::Retry(e) => {
                return Err(self
                    .interrupt_recording(&holding.record, Guard::IN_FLIGHT, done, e)
                    .await)
            }
        };
        let references = plan.secret_references();
        if !references.is_empty() {
            match secrets_verdict(self.secrets.missing(&references).await) {
                Ok(missing) => problems.extend(missing),
                Err(e) => {
                    return Err(self
                        .interrupt_recording(&holding.record, Guard::IN_FLIGHT, done, e)
                        .await)
                }
            }
        }
        if !problems.is_empty() {
            return self.preflight_failed(holding, problems).await;
        }
        let first_like = services.found.first().cloned();
        self.register_and_go(target, holding, plan, first_like)
            .await
    }

    async fn preflight_failed(
        &self,
        holding: Holding,
        problems: Vec<String>,
    ) -> Result<Option<Outcome>, EngineError> {
        tracing::warn!(release = %holding.record.id, ?problems, "preflight failed; nothing was changed");
        let reason = format!("preflight failed: {}", problems.join("; "));
        self.emit(holding.events).await;
        self.fail_release(&holding.record, reason, false).await?;
        Ok(Some(Outcome::PreflightFailed { problems }))
    }

    /// Round trip 4: register every family ∥ move the release on (this is
    /// where a newer release superseding this one is noticed).
    async fn register_and_go(
        &self,
        target: &Target<'_>,
        holding: Holding,
        plan: ReleasePlan<TaskDefinitionOf<P>>,
        like: Option<ServiceOf<P>>,
    ) -> Result<Option<Outcome>, EngineError> {
        if let (Some(approval), ReleaseState::Claimed) = (target.env.approval, holding.record.state)
        {
            return self.await_approval(target, holding, plan, approval).await;
        }
        let Holding {
            record,
            mut events,
            value_before,
            now,
            resumed,
        } = holding;
        let was = record.state;
        let transition = match plan.migration {
            Some(_) => Transition::StartMigration,
            None => Transition::SkipMigration,
        };
        let update = ReleaseUpdate {
            migration_deadline: target.migration().map(|m| now + m.timeout.as_secs()),
            previous_tag: value_before.clone(),
            ..ReleaseUpdate::default()
        }
        .entering(transition, now);
        let (registered, moved) = futures_util::join!(
            self.register_copies(target, &record, &plan, resumed),
            self.move_on(&record, transition, update),
        );
        let moved = match moved {
            Ok(moved) => moved,
            // Still CLAIMED: its resumption needs the tag to restore read at the claim.
            Err(e) if e.retryable => {
                let done = ReleaseUpdate {
                    previous_tag: value_before,
                    ..ReleaseUpdate::default()
                };
                return Err(self
                    .interrupt_recording(&record, Guard::IN_FLIGHT, done, e)
                    .await);
            }
            Err(e) => return Err(e.into()),
        };
        let Some(mut record) = moved else {
            tracing::info!(release = %record.id, "superseded before reaching SSM or ECS; stopping");
            return Ok(Some(Outcome::Superseded));
        };
        let arns = match registered {
            Ok(arns) => arns,
            Err(e) if e.retryable => return Err(self.interrupt(&record, e).await),
            Err(e) => {
                let reason = format!("registering task definitions: {e}");
                return self.abandon(&record, events, reason, false).await;
            }
        };
        let migration_arn = record_registered(&mut record, &plan, &arns);
        if was != record.state {
            events.push(event_for(&record, Some(was), record.state));
        }
        match (plan.migration, migration_arn, like) {
            (Some(migration), Some(migration_arn), Some(like)) => {
                let started = StartMigration {
                    migration_arn,
                    essential: migration.base.essential_containers(),
                    like,
                    registered: arns,
                };
                self.start_migration(record, events, started).await
            }
            (Some(_), _, _) => {
                let reason = "no service to copy launch settings from".to_owned();
                self.abandon(&record, events, reason, false).await
            }
            (None, _, _) => self.roll_out(record, events, now, resumed).await.map(Some),
        }
    }

    /// An environment with `approval = true`: register every copy, then park
    /// the release in AWAITING_APPROVAL with what it registered (one conditional
    /// write: Claimed → AwaitingApproval). Nothing outside the ledger and the
    /// new revisions is touched; the event carries the plan summary.
    async fn await_approval(
        &self,
        target: &Target<'_>,
        holding: Holding,
        plan: ReleasePlan<TaskDefinitionOf<P>>,
        approval: crate::config::Approval,
    ) -> Result<Option<Outcome>, EngineError> {
        let Holding {
            mut record,
            mut events,
            value_before,
            now,
            resumed,
        } = holding;
        let arns = match self.register_copies(target, &record, &plan, resumed).await {
            Ok(arns) => arns,
            Err(e) if e.retryable => return Err(self.interrupt(&record, e).await),
            Err(e) => {
                let reason = format!("registering task definitions: {e}");
                return self.abandon(&record, events, reason, false).await;
            }
        };
        let migration_arn = record_registered(&mut record, &plan, &arns);
        let expires_at = now + approval.expires_after.as_secs();
        let previous_tag = record.previous_tag.clone().or(value_before);
        let update = ReleaseUpdate {
            previous_tag: previous_tag.clone(),
            task_definitions: Some(record.task_definitions.clone()),
            migration_task_definition: migration_arn.clone(),
            migration_essential_containers: plan
                .migration
                .as_ref()
                .map(|m| m.base.essential_containers()),
            verify_task_definition: record.verify_task_definition.clone(),
            verify_essential_containers: Some(record.verify_essential_containers.clone()),
            approval_expires_at: Some(expires_at),
            ..ReleaseUpdate::default()
        };
        let moved = match self
            .ledger
            .update(&record.id, Transition::AwaitApproval.guard(), update)
            .await
        {
            Ok(moved) => moved,
            Err(e) => return Err(self.interrupt(&record, e).await),
        };
        let Some(mut awaiting) = moved else {
            tracing::info!(release = %record.id, "superseded before its approval was asked for; stopping");
            self.emit(events).await;
            return Ok(Some(Outcome::Superseded));
        };
        awaiting.previous_tag = previous_tag;
        let summary = ApprovalPlan {
            task_definitions: awaiting.task_definitions.clone(),
            parameter: ParameterChange {
                name: self.parameter_of(&awaiting.lane)?,
                from: awaiting.previous_tag.clone(),
                to: awaiting.tag.clone(),
            },
            migration: awaiting.migration_task_definition.clone(),
            expires_at,
        };
        let mut event = event_for(&awaiting, Some(ReleaseState::Claimed), awaiting.state);
        event.plan = Some(summary.clone());
        events.push(event);
        self.emit(events).await;
        tracing::info!(release = %awaiting.id, expires_at, "prepared; awaiting approval");
        Ok(Some(Outcome::AwaitingApproval {
            expires_at,
            plan: summary,
        }))
    }

    /// RegisterTaskDefinition of every copy — the services' families, then the
    /// migration, then the smoke test when it runs the pushed repository — in
    /// ECS's burst. A resumed release first looks for the copies its interrupted
    /// attempt registered ([`Engine::registered_before`]) and registers only the
    /// missing ones.
    async fn register_copies(
        &self,
        target: &Target<'_>,
        record: &ReleaseRecord,
        plan: &ReleasePlan<TaskDefinitionOf<P>>,
        resumed: bool,
    ) -> Result<Vec<String>, PortError> {
        let env = target.env;
        let verify = plan.verify.iter().filter(|v| !v.changes.is_empty());
        let copies: Vec<_> = plan
            .families
            .iter()
            .chain(plan.migration.iter())
            .chain(verify)
            .collect();
        let registered = fan_out(copies, REGISTER_CONCURRENCY, |copy| {
            // The base's reserved `aws:` tags (CloudFormation's) are left out: ECS
            // refuses them from any caller. The adapter logs which.
            let tags = release_tags(&copy.base.tags(), record.id.as_str(), &env.app, &env.name)
                .map_err(|e| PortError::new("ecs:RegisterTaskDefinition", e.to_string()));
            async move {
                if resumed {
                    if let Some(arn) = self
                        .registered_before(copy.base.family(), &record.id)
                        .await?
                    {
                        return Ok(arn);
                    }
                }
                self.ecs
                    .register_copy(&copy.base, &copy.changes, &tags?)
                    .await
            }
        })
        .await;
        registered.into_iter().collect()
    }

    /// The copy of `family` an interrupted attempt of `release` registered: the
    /// family's latest ACTIVE revision or one of the few before it, when it
    /// carries the release's tag (on resume only: one describe when the copy is
    /// the latest, up to four when it is not there).
    /// RegisterTaskDefinition takes no idempotency token, so this read is what
    /// keeps a resumed release at one revision per family.
    async fn registered_before(
        &self,
        family: &str,
        release: &crate::release::ReleaseId,
    ) -> Result<Option<String>, PortError> {
        let latest = self.ecs.describe_task_definition(family).await?;
        if registered_for(&latest.tags(), release, latest.is_active()) {
            return Ok(Some(latest.arn().to_owned()));
        }
        for earlier in earlier_revisions(latest.arn(), COPY_SEARCH_DEPTH) {
            let described = self.ecs.describe_task_definition(&earlier).await?;
            if registered_for(&described.tags(), release, described.is_active()) {
                return Ok(Some(described.arn().to_owned()));
            }
        }
        Ok(None)
    }

    /// Claimed → Migrating or Deploying; a resumed release has moved already.
    /// This is where a newer release superseding this one is noticed.
    async fn move_on(
        &self,
        record: &ReleaseRecord,
        transition: Transition,
        update: ReleaseUpdate,
    ) -> Result<Option<ReleaseRecord>, PortError> {
        if record.state != ReleaseState::Claimed {
            return Ok(Some(record.clone()));
        }
        self.ledger
            .update(&record.id, transition.guard(), update)
            .await
    }

    /// Round trips 5–6: the public record ∥ the migration, then record both.
    pub(super) async fn start_migration(
        &self,
        record: ReleaseRecord,
        events: Vec<ReleaseEvent>,
        started: StartMigration<ServiceOf<P>>,
    ) -> Result<Option<Outcome>, EngineError> {
        let StartMigration {
            migration_arn,
            essential,
            like,
            registered,
        } = started;
        let id = &record.id;
        let write_tag = async {
            match record.parameter_version {
                // An interrupted attempt that wrote the tag recorded its version.
                Some(version) => Ok(version),
                None => self.write_tag_once(&record.lane, &record.tag).await,
            }
        };
        let (put, run) = futures_util::join!(
            write_tag,
            self.run_for_release(&record, &migration_arn, &like),
        );
        let (version, task) = match (put, run) {
            (Ok(version), Ok(task)) => (version, task),
            (put, run) => return self.migration_not_started(&record, events, put, run).await,
        };
        let update = ReleaseUpdate {
            task_definitions: Some(record.task_definitions.clone()),
            migration_task_definition: Some(migration_arn),
            migration_essential_containers: Some(essential),
            migration_task: Some(task.clone()),
            verify_task_definition: record.verify_task_definition.clone(),
            verify_essential_containers: Some(record.verify_essential_containers.clone()),
            parameter_version: Some(version),
            ..ReleaseUpdate::default()
        };
        let (recorded, ()) = futures_util::join!(
            self.ledger
                .update(id, ReleaseState::Migrating.stays(), update),
            self.emit(events),
        );
        match recorded {
            Ok(Some(_)) => {}
            Ok(None) => return self.lost_after_migration_started(&record, &task).await,
            Err(e) => {
                // Without the task on record its STOPPED event cannot be judged:
                // stop it, and let the redelivered push start the migration again.
                self.stop_quietly(
                    &record.cluster,
                    &task,
                    "ferry: the release could not record its migration; its retry starts it again",
                )
                .await;
                let done = ReleaseUpdate {
                    parameter_version: Some(version),
                    ..ReleaseUpdate::default()
                };
                return Err(self
                    .interrupt_recording(&record, Guard::IN_FLIGHT, done, e)
                    .await);
            }
        }
        tracing::info!(release = %id, %task, "migration started");
        Ok(Some(Outcome::Migrating {
            task,
            task_definitions: registered,
        }))
    }

    /// The image tag or the migration did not start: a migration that did is
    /// stopped before it counts; a retry resumes the release, anything else fails it.
    async fn migration_not_started(
        &self,
        record: &ReleaseRecord,
        events: Vec<ReleaseEvent>,
        put: Result<i64, PortError>,
        run: Result<String, PortError>,
    ) -> Result<Option<Outcome>, EngineError> {
        if let Ok(task) = &run {
            let reason = "ferry: the release was interrupted before its migration could count; its retry starts it again";
            self.stop_quietly(&record.cluster, task, reason).await;
        }
        let version = put.as_ref().ok().copied();
        let wrote_tag = version.is_some();
        let error = match (put, run) {
            (Err(e), _) | (_, Err(e)) => e,
            (Ok(_), Ok(_)) => return Err(EngineError::NotReady(record.id.to_string())),
        };
        if error.retryable {
            let done = ReleaseUpdate {
                parameter_version: version,
                ..ReleaseUpdate::default()
            };
            return Err(self
                .interrupt_recording(record, Guard::IN_FLIGHT, done, error)
                .await);
        }
        let reason = format!("starting the migration: {error}");
        self.abandon(record, events, reason, wrote_tag).await
    }

    /// Superseded (or cancelled by a rollback) while starting: its successor
    /// runs its own migration, and the image tag must name the successor — or
    /// the known-good release — even if this release's write landed after theirs.
    async fn lost_after_migration_started(
        &self,
        record: &ReleaseRecord,
        task: &str,
    ) -> Result<Option<Outcome>, EngineError> {
        let (_, head) = futures_util::join!(
            self.stop_quietly(&record.cluster, task, "ferry: release superseded"),
            self.ledger.head(&record.lane),
        );
        self.correct_parameter(&record.lane, &head?.unwrap_or_default())
            .await?;
        Ok(Some(Outcome::Superseded))
    }

    /// Puts the image tag where the lane head says it belongs.
    pub(super) async fn correct_parameter(
        &self,
        lane: &Lane,
        head: &LaneHead,
    ) -> Result<(), EngineError> {
        match parameter_after_losing(head) {
            ParameterFix::Successor(tag) => {
                self.write_tag_once(lane, &tag).await?;
            }
            ParameterFix::KnownGood(tag) => {
                let parameter = self.parameter_of(lane)?;
                let version = self.write_tag_once(lane, &tag).await?;
                self.params
                    .label(&parameter, version, super::KNOWN_GOOD_LABEL)
                    .await?;
            }
            ParameterFix::Nothing => {}
        }
        Ok(())
    }

    pub(super) async fn stop_quietly(&self, cluster: &str, task: &str, reason: &str) {
        if let Err(error) = self.ecs.stop_task(cluster, task, reason).await {
            tracing::warn!(%task, %error, "could not stop the migration task");
        }
    }

    /// Fails a claimed release that cannot go on (a failure no retry can fix);
    /// `restore_parameter` when it had already written the SSM image tag.
    async fn abandon(
        &self,
        record: &ReleaseRecord,
        events: Vec<ReleaseEvent>,
        reason: String,
        restore_parameter: bool,
    ) -> Result<Option<Outcome>, EngineError> {
        self.emit(events).await;
        tracing::error!(release = %record.id, %reason, "release abandoned");
        let outcome = self.fail_release(record, reason, restore_parameter).await?;
        Ok(Some(outcome))
    }
}

/// Records what registration returned on the release (`arns` in the order
/// [`Engine::register_copies`] registers): each service's revision and the
/// smoke test's; returns the migration's revision.
fn record_registered<T: TaskDefinitionView>(
    record: &mut ReleaseRecord,
    plan: &ReleasePlan<T>,
    arns: &[String],
) -> Option<String> {
    let mut registered = arns.iter();
    for family in &plan.families {
        let Some(arn) = registered.next() else { break };
        for service in &family.services {
            record.task_definitions.insert(service.clone(), arn.clone());
        }
    }
    let migration_arn = plan
        .migration
        .as_ref()
        .and_then(|_| registered.next().cloned());
    if let Some(verify) = &plan.verify {
        // Copied when it runs the pushed repository; else run as it is.
        let copied = (!verify.changes.is_empty()).then(|| registered.next().cloned());
        record.verify_task_definition = copied.flatten().or(Some(verify.base.arn().to_owned()));
        record.verify_essential_containers = verify.base.essential_containers();
    }
    migration_arn
}

/// What the migration step needs from registration.
pub(super) struct StartMigration<S> {
    pub(super) migration_arn: String,
    pub(super) essential: Vec<String>,
    pub(super) like: S,
    /// Every ARN registered for the release, the migration's last.
    pub(super) registered: Vec<String>,
}

/// The repository an operator's deploy names, or the environment's only one.
pub(super) fn requested_repository(
    env: &crate::config::Environment,
    requested: Option<&str>,
) -> Result<String, EngineError> {
    crate::decide::push::requested_repository(env, requested, "`repository`")
        .map_err(EngineError::BadRequest)
}
