//! Push → release: policy, claim, preflight, registration, SSM, migration.
//!
//! Round trips on the happy path, each a set of concurrent calls:
//! 1. read lane head + release ∥ DescribeServices ∥ describe migration family ∥
//!    ECR DescribeImages ∥ GetParameter (current tag)
//! 2. claim (one transaction) ∥ DescribeTaskDefinition of every service
//! 3. secrets exist (DescribeSecret ∥ GetParameters)
//! 4. RegisterTaskDefinition for every family ∥ ledger: Claimed → Migrating
//! 5. PutParameter ∥ RunTask (or UpdateService of every service without migration)
//! 6. record ARNs, task, parameter version

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::{
    event_for, fan_out, Decision, Engine, EngineError, Outcome, DESCRIBE_CONCURRENCY,
    REGISTER_CONCURRENCY, UPDATE_SERVICE_CONCURRENCY,
};
use crate::config::Environment;
use crate::image::{plan_image_changes, release_tags, ImageChange, PushedImage};
use crate::ports::{
    Claim, ClaimOutcome, Ecs, EventSink, HeldPush, ImageSelector, Lane, LaneHead, Ledger,
    Parameters, PortError, Registry, ReleaseRecord, ReleaseUpdate, RollbackLedger, SecretsCheck,
    ServiceView, TaskDefinitionView,
};
use crate::release::{ReleaseId, ReleaseState};

/// An ECR push, as the ECR Image Action event reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub registry_id: String,
    pub region: String,
    pub repository: String,
    pub tag: String,
    pub digest: String,
    /// The event's time (RFC 3339): a push older than one already acted on is stale.
    pub pushed_at: String,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Push,
    Operator,
}

struct Target<'a> {
    env: &'a Environment,
    image: PushedImage,
    pushed_at: Option<String>,
    origin: Origin,
}

impl<L, E, P, S, R, V> Engine<L, E, P, S, R, V>
where
    L: Ledger + RollbackLedger,
    E: Ecs,
    P: Parameters,
    S: SecretsCheck,
    R: Registry,
    V: EventSink,
{
    /// Every environment that tracks the pushed repository gets its own decision.
    pub async fn on_push(&self, push: &Push, now: u64) -> Result<Vec<Decision>, EngineError> {
        let environments = self.config.environments_tracking(&push.repository);
        if environments.is_empty() {
            tracing::info!(repository = %push.repository, "no environment tracks this repository; ignored");
            return Ok(vec![Decision::new(
                "",
                "",
                None,
                Outcome::Ignored {
                    reason: format!(
                        "no environment in ferry's config tracks repository `{}`",
                        push.repository
                    ),
                },
            )]);
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
                pushed_at: Some(push.pushed_at.clone()),
                origin: Origin::Push,
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
        let env = self
            .config
            .environment(&request.app, &request.environment)
            .ok_or_else(|| {
                EngineError::BadRequest(format!(
                    "no environment `{}` in app `{}` in ferry's config",
                    request.environment, request.app
                ))
            })?;
        let repositories = env.repositories();
        let repository = match (&request.repository, repositories.len()) {
            (Some(r), _) if repositories.contains(r.as_str()) => r.clone(),
            (Some(r), _) => {
                return Err(EngineError::BadRequest(format!(
                    "environment {}/{} runs no repository `{r}` (it runs: {})",
                    env.app,
                    env.name,
                    repositories.iter().copied().collect::<Vec<_>>().join(", ")
                )))
            }
            (None, 1) => repositories
                .iter()
                .next()
                .map(|r| r.to_string())
                .unwrap_or_default(),
            (None, _) => {
                return Err(EngineError::BadRequest(format!(
                    "environment {}/{} runs several repositories; say which with `repository`",
                    env.app, env.name
                )))
            }
        };
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
        let tag = match (&request.tag, resolved.tags.first()) {
            (Some(tag), _) => tag.clone(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => {
                return Err(EngineError::BadRequest(format!(
                    "digest {} carries no tag; ferry records a tag in the SSM parameter, tag the image first",
                    resolved.digest
                )))
            }
        };
        let image = PushedImage::new(
            &resolved.registry_id,
            region,
            &repository,
            &tag,
            &resolved.digest,
        )
        .map_err(|e| EngineError::BadRequest(format!("image: {e}")))?;
        let target = Target {
            env,
            image,
            pushed_at: resolved.pushed_at.clone(),
            origin: Origin::Operator,
        };
        self.release_environment(&target, now).await
    }

    async fn release_environment(
        &self,
        target: &Target<'_>,
        now: u64,
    ) -> Result<Decision, EngineError> {
        let env = target.env;
        let image = &target.image;
        let id = ReleaseId::derive(&env.app, &env.name, &image.digest);
        let decision = |outcome| Decision::new(&env.app, &env.name, Some(id.as_str()), outcome);

        // Refusals that need no state cost no AWS call at all.
        if let Err(refusal) = env.tag_policy.check(&image.tag, &env.mutable_tags, None) {
            tracing::info!(release = %id, %refusal, "tag refused");
            return Ok(decision(Outcome::Refused {
                reason: refusal.to_string(),
            }));
        }
        for _attempt in 0..3 {
            match self.try_release(target, &id, now).await? {
                Some(outcome) => return Ok(decision(outcome)),
                None => continue,
            }
        }
        Err(EngineError::Contention(Lane {
            app: env.app.clone(),
            env: env.name.clone(),
            repository: image.repository.clone(),
        }))
    }

    /// One attempt; `None` means the lane head moved under the claim: read again.
    async fn try_release(
        &self,
        target: &Target<'_>,
        id: &ReleaseId,
        now: u64,
    ) -> Result<Option<Outcome>, EngineError> {
        let env = target.env;
        let image = &target.image;
        let lane = Lane {
            app: env.app.clone(),
            env: env.name.clone(),
            repository: image.repository.clone(),
        };
        let service_names: Vec<String> = env
            .services_running(&image.repository)
            .into_iter()
            .map(|s| s.name.clone())
            .collect();
        let migration = env.migration_for(&image.repository);

        // Round trip 1: everything that can be read before deciding.
        let by_digest = ImageSelector::Digest(image.digest.clone());
        let (read, services, migration_td, resolved) = futures_util::join!(
            self.ledger.read(&lane, id),
            self.ecs.describe_services(&env.cluster, &service_names),
            async {
                match migration {
                    Some(m) => Some(self.ecs.describe_task_definition(&m.task_family).await),
                    None => None,
                }
            },
            self.registry.resolve(&image.repository, &by_digest),
        );
        let (head, existing) = read?;
        if existing
            .as_ref()
            .is_some_and(|e| e.state == ReleaseState::RolledBack)
        {
            let reason = format!(
                "{}@{} was rolled back in {}/{} and is marked bad; it is not deployed again",
                image.repository, image.digest, env.app, env.name
            );
            tracing::info!(release = %id, %reason, "refused");
            return Ok(Some(Outcome::Refused { reason }));
        }
        if let Some(existing) = existing {
            tracing::info!(release = %id, state = existing.state.as_str(), "release exists already; duplicate event ignored");
            return Ok(Some(Outcome::Duplicate {
                state: existing.state.as_str().to_owned(),
            }));
        }
        let head = head.unwrap_or_default();
        if let Some(refusal) = self.guard(target, &head) {
            tracing::info!(release = %id, reason = %refusal, "release refused");
            return Ok(Some(Outcome::Refused { reason: refusal }));
        }
        // A rolled-back lane is frozen for automatic deploys: a new push is held
        // until an operator unfreezes, unless the config lets a new digest through.
        let unfreeze = head.frozen && target.origin == Origin::Push && env.unfreeze_on_new_digest;
        if head.frozen && target.origin == Origin::Push && !unfreeze {
            let held = HeldPush {
                tag: image.tag.clone(),
                digest: image.digest.clone(),
                pushed_at: target.pushed_at.clone(),
            };
            if !self.ledger.hold(&lane, head.version, &held).await? {
                return Ok(None);
            }
            tracing::info!(release = %id, tag = %image.tag, "lane frozen after a rollback; push held");
            return Ok(Some(Outcome::Held {
                tag: image.tag.clone(),
            }));
        }

        let mut problems = Vec::new();
        let services = services?;
        for missing in &services.missing {
            problems.push(format!(
                "service `{missing}` is not an ACTIVE service of cluster `{}`",
                env.cluster
            ));
        }
        match resolved {
            Ok(Some(_)) => {}
            Ok(None) => problems.push(format!(
                "image {}@{} does not exist in ECR",
                image.repository, image.digest
            )),
            Err(e) if e.retryable => return Err(e.into()),
            Err(e) => problems.push(format!("image {}@{}: {e}", image.repository, image.digest)),
        }
        let migration_td = match (migration, migration_td) {
            (Some(m), Some(Err(e))) if !e.retryable => {
                problems.push(format!(
                    "migration task family `{}` cannot be described: {e}",
                    m.task_family
                ));
                None
            }
            (_, Some(Err(e))) => return Err(e.into()),
            (_, Some(Ok(td))) => Some(td),
            (_, None) => None,
        };
        let record = ReleaseRecord {
            id: id.clone(),
            lane: lane.clone(),
            tag: image.tag.clone(),
            digest: image.digest.clone(),
            state: ReleaseState::Claimed,
            // What to restore if this release fails: the known-good tag, or for a
            // lane's first release the parameter's value before it (read below).
            previous_tag: head.known_good.as_ref().map(|k| k.tag.clone()),
            pushed_at: target.pushed_at.clone(),
            cluster: env.cluster.clone(),
            services: service_names.clone(),
            task_definitions: BTreeMap::new(),
            migration_task_definition: None,
            migration_essential_containers: Vec::new(),
            migration_task: None,
            migration_deadline: None,
            parameter_version: None,
            deployments: BTreeMap::new(),
            completed_services: BTreeSet::new(),
            reason: None,
            created_at: now,
            updated_at: now,
        };

        // Round trip 2: claim ∥ describe what every service runs now.
        let current_arns: Vec<String> = services
            .found
            .iter()
            .map(|s| s.task_definition().to_owned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let supersedes = head.in_flight.as_ref().map(|p| p.id.clone());
        let latest_pushed_at = match (&head.latest_pushed_at, &target.pushed_at) {
            (Some(latest), Some(pushed)) => Some(latest.max(pushed).clone()),
            (latest, pushed) => latest.clone().or(pushed.clone()),
        };
        let (claimed, described, value_before) = futures_util::join!(
            self.ledger.claim(Claim {
                release: &record,
                expected_head_version: Some(head.version),
                supersedes: supersedes.as_ref(),
                latest_pushed_at: latest_pushed_at.as_deref(),
                unfreeze,
            }),
            fan_out(
                current_arns.clone(),
                DESCRIBE_CONCURRENCY,
                |arn| async move { self.ecs.describe_task_definition(&arn).await }
            ),
            async {
                match (&record.previous_tag, &supersedes) {
                    (Some(_), _) => Ok(None),
                    // The superseded release may have written its own tag already:
                    // what to restore is what it would have restored.
                    (None, Some(old)) => self
                        .ledger
                        .release(old)
                        .await
                        .map(|r| r.and_then(|r| r.previous_tag)),
                    (None, None) => self.params.get(&env.image_tag_parameter).await,
                }
            },
        );
        match claimed? {
            ClaimOutcome::Claimed => {}
            ClaimOutcome::AlreadyClaimed => {
                return Ok(Some(Outcome::Duplicate {
                    state: ReleaseState::Claimed.as_str().to_owned(),
                }))
            }
            ClaimOutcome::HeadMoved => return Ok(None),
        }
        tracing::info!(release = %id, tag = %image.tag, supersedes = ?supersedes, "release claimed");
        let mut events = vec![event_for(&record, None, ReleaseState::Claimed)];
        let value_before = match value_before {
            Ok(value) => value,
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
        if let Some(old) = &supersedes {
            tracing::info!(release = %old, by = %id, "release superseded");
        }

        let mut by_arn = BTreeMap::new();
        for (arn, result) in current_arns.iter().zip(described) {
            match result {
                Ok(td) => {
                    by_arn.insert(arn.clone(), td);
                }
                Err(e) if e.retryable => {
                    return self
                        .abandon(&record, events, format!("describing {arn}: {e}"), false)
                        .await
                }
                Err(e) => problems.push(format!("task definition {arn} cannot be described: {e}")),
            }
        }

        // Plan: which containers change in every family, before touching anything.
        let mut plans: Vec<(Vec<String>, E::TaskDefinition, Vec<ImageChange>)> = Vec::new();
        for service in &services.found {
            let Some(td) = by_arn.get(service.task_definition()) else {
                continue;
            };
            if let Some(plan) = plans.iter_mut().find(|(_, t, _)| t.arn() == td.arn()) {
                plan.0.push(service.name().to_owned());
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
            plans.push((vec![service.name().to_owned()], td.clone(), changes));
        }
        let migration_plan = migration_td.map(|td| {
            let changes = plan_image_changes(&td.containers(), image);
            if changes.is_empty() {
                problems.push(format!(
                    "migration task definition {} has no container from repository `{}`",
                    td.arn(),
                    image.repository
                ));
            }
            (td, changes)
        });

        // Round trip 3: every referenced secret must exist (values are never read).
        let references: Vec<String> = plans
            .iter()
            .map(|(_, td, _)| td)
            .chain(migration_plan.iter().map(|(td, _)| td))
            .flat_map(|td| td.secret_refs())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !references.is_empty() {
            match self.secrets.missing(&references).await {
                Ok(missing) => {
                    for reference in missing {
                        problems.push(format!("secret `{reference}` does not exist"));
                    }
                }
                Err(e) if e.retryable => {
                    return self
                        .abandon(&record, events, format!("checking secrets: {e}"), false)
                        .await
                }
                Err(e) => problems.push(format!("secrets cannot be checked: {e}")),
            }
        }
        if !problems.is_empty() {
            tracing::warn!(release = %id, ?problems, "preflight failed; nothing was changed");
            let reason = format!("preflight failed: {}", problems.join("; "));
            self.emit(events).await;
            self.fail_release(&record, &[ReleaseState::Claimed], reason, false)
                .await?;
            return Ok(Some(Outcome::PreflightFailed { problems }));
        }

        // Round trip 4: register every family ∥ move the release on (this is
        // where a newer release superseding this one is noticed).
        let tags_for = |td: &E::TaskDefinition| {
            release_tags(&td.tags(), id.as_str(), &env.app, &env.name)
                .map_err(|e| PortError::new("ecs:RegisterTaskDefinition", e.to_string()))
        };
        let next = if migration_plan.is_some() {
            ReleaseState::Migrating
        } else {
            ReleaseState::Deploying
        };
        let deadline = migration.map(|m| now + m.timeout.as_secs());
        let registrations: Vec<(&E::TaskDefinition, &[ImageChange])> = plans
            .iter()
            .map(|(_, td, changes)| (td, changes.as_slice()))
            .chain(migration_plan.iter().map(|(td, c)| (td, c.as_slice())))
            .collect();
        let (registered, moved) = futures_util::join!(
            fan_out(registrations, REGISTER_CONCURRENCY, |(td, changes)| {
                let tags = tags_for(td);
                async move { self.ecs.register_copy(td, changes, &tags?).await }
            }),
            self.ledger.update(
                id,
                &[ReleaseState::Claimed],
                ReleaseUpdate {
                    state: Some(next),
                    migration_deadline: deadline,
                    previous_tag: value_before,
                    ..ReleaseUpdate::default()
                },
            ),
        );
        let Some(mut record) = moved? else {
            tracing::info!(release = %id, "superseded before reaching SSM or ECS; stopping");
            return Ok(Some(Outcome::Superseded));
        };
        let mut arns = Vec::with_capacity(registered.len());
        for result in registered {
            match result {
                Ok(arn) => arns.push(arn),
                Err(e) => {
                    return self
                        .abandon(
                            &record,
                            events,
                            format!("registering task definitions: {e}"),
                            false,
                        )
                        .await
                }
            }
        }
        let mut task_definitions = BTreeMap::new();
        for ((services, _, _), arn) in plans.iter().zip(&arns) {
            for service in services {
                task_definitions.insert(service.clone(), arn.clone());
            }
        }
        let migration_arn = migration_plan.as_ref().and_then(|_| arns.last().cloned());
        record.task_definitions = task_definitions.clone();
        events.push(event_for(&record, Some(ReleaseState::Claimed), next));

        // Round trip 5: the public record ∥ the migration (or the rollout).
        match (&migration_arn, &migration_plan) {
            (Some(migration_arn), Some((migration_td, _))) => {
                let Some(like) = services.found.first() else {
                    return self
                        .abandon(
                            &record,
                            events,
                            "no service to copy launch settings from".into(),
                            false,
                        )
                        .await;
                };
                let tags = release_tags(&[], id.as_str(), &env.app, &env.name)
                    .map_err(|e| PortError::new("ecs:RunTask", e.to_string()))?;
                let started_by = id.started_by();
                let (put, run) = futures_util::join!(
                    self.params.put(&env.image_tag_parameter, &image.tag),
                    self.ecs
                        .run_migration(&env.cluster, migration_arn, like, &started_by, &tags),
                );
                let version = match put {
                    Ok(version) => Some(version),
                    Err(e) => {
                        if let Ok(task) = &run {
                            let _ = self
                                .ecs
                                .stop_task(
                                    &env.cluster,
                                    task,
                                    "ferry: release failed before its migration could count",
                                )
                                .await;
                        }
                        return self
                            .abandon(
                                &record,
                                events,
                                format!("writing the image tag: {e}"),
                                false,
                            )
                            .await;
                    }
                };
                let task = match run {
                    Ok(task) => task,
                    Err(e) => {
                        return self
                            .abandon(
                                &record,
                                events,
                                format!("starting the migration: {e}"),
                                true,
                            )
                            .await
                    }
                };
                // Round trip 6: record what was created.
                let (recorded, ()) = futures_util::join!(
                    self.ledger.update(
                        id,
                        &[ReleaseState::Migrating],
                        ReleaseUpdate {
                            task_definitions: Some(task_definitions),
                            migration_task_definition: Some(migration_arn.clone()),
                            migration_essential_containers: Some(
                                migration_td.essential_containers(),
                            ),
                            migration_task: Some(task.clone()),
                            parameter_version: version,
                            ..ReleaseUpdate::default()
                        },
                    ),
                    self.emit(events),
                );
                if recorded?.is_none() {
                    // Superseded while starting: its successor runs its own
                    // migration, and the image tag must name the successor even
                    // if this release's write landed after the successor's.
                    let (stopped, head) = futures_util::join!(
                        self.ecs
                            .stop_task(&env.cluster, &task, "ferry: release superseded"),
                        self.ledger.head(&lane),
                    );
                    if let Err(error) = stopped {
                        tracing::warn!(release = %id, %error, "could not stop the superseded migration");
                    }
                    // …or the known-good release's, when a rollback cancelled it.
                    let head = head?.unwrap_or_default();
                    match (&head.in_flight, head.history.first()) {
                        (Some(successor), _) => {
                            self.params
                                .put(&env.image_tag_parameter, &successor.tag)
                                .await?;
                        }
                        (None, Some(good)) => {
                            let version =
                                self.params.put(&env.image_tag_parameter, &good.tag).await?;
                            self.params
                                .label(&env.image_tag_parameter, version, super::KNOWN_GOOD_LABEL)
                                .await?;
                        }
                        (None, None) => {}
                    }
                    return Ok(Some(Outcome::Superseded));
                }
                tracing::info!(release = %id, %task, "migration started");
                Ok(Some(Outcome::Migrating {
                    task,
                    task_definitions: arns,
                }))
            }
            _ => {
                let rollout: Vec<(String, String)> = task_definitions
                    .iter()
                    .map(|(s, a)| (s.clone(), a.clone()))
                    .collect();
                let (put, updated) = futures_util::join!(
                    self.params.put(&env.image_tag_parameter, &image.tag),
                    fan_out(
                        rollout,
                        UPDATE_SERVICE_CONCURRENCY,
                        |(service, arn)| async move {
                            self.ecs
                                .update_service(&env.cluster, &service, &arn)
                                .await
                                .map(|deployment| (service, deployment))
                        }
                    ),
                );
                let mut deployments = BTreeMap::new();
                let mut failures = Vec::new();
                for result in updated {
                    match result {
                        Ok((service, deployment)) => {
                            deployments.insert(service, deployment);
                        }
                        Err(e) => failures.push(e.to_string()),
                    }
                }
                let (recorded, ()) = futures_util::join!(
                    self.ledger.update(
                        id,
                        &[ReleaseState::Deploying],
                        ReleaseUpdate {
                            task_definitions: Some(task_definitions),
                            deployments: Some(deployments.clone()),
                            parameter_version: put.as_ref().ok().copied(),
                            reason: (!failures.is_empty()).then(|| failures.join("; ")),
                            ..ReleaseUpdate::default()
                        },
                    ),
                    self.emit(events),
                );
                put?;
                recorded?;
                if !failures.is_empty() {
                    tracing::error!(release = %id, ?failures, "some services could not be updated");
                }
                Ok(Some(Outcome::Deploying {
                    deployments: deployments.into_values().collect(),
                }))
            }
        }
    }

    /// The guards that need the lane's state: tag policy against what runs or
    /// rolls out, stale pushes, frozen lanes.
    fn guard(&self, target: &Target<'_>, head: &LaneHead) -> Option<String> {
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
            if let (Some(latest), Some(pushed)) = (&head.latest_pushed_at, &target.pushed_at) {
                if pushed < latest {
                    return Some(format!(
                        "push at {pushed} is older than the newest push ferry acted on ({latest}); a late event never moves an environment backwards"
                    ));
                }
            }
        }
        None
    }

    /// Fails a claimed release that could not go on; `restore_parameter` when
    /// it had already written the SSM image tag.
    async fn abandon(
        &self,
        record: &ReleaseRecord,
        events: Vec<super::ReleaseEvent>,
        reason: String,
        restore_parameter: bool,
    ) -> Result<Option<Outcome>, EngineError> {
        self.emit(events).await;
        tracing::error!(release = %record.id, %reason, "release abandoned");
        let outcome = self
            .fail_release(
                record,
                &[
                    ReleaseState::Claimed,
                    ReleaseState::Migrating,
                    ReleaseState::Deploying,
                ],
                reason,
                restore_parameter,
            )
            .await?;
        Ok(Some(outcome))
    }
}
