//! The approval gate's verdicts and promotion, on an operator's direct invoke
//! of ferry-deploy.
//!
//! - `{"approve": {"app", "environment", "repository"?, "release_id"?}}`: every
//!   lane of the environment whose release awaits approval (or the one lane
//!   `repository` names, or the one release `release_id` names) goes on where an
//!   ungated release goes after registration: the migration (SSM ∥ RunTask), or
//!   the rollout. One conditional write (AWAITING_APPROVAL → MIGRATING or
//!   DEPLOYING) per release: a duplicate approve, or one racing a reject, has
//!   one effect.
//! - `{"reject": {..., "reason"?}}`: the release ends REJECTED (the same
//!   transaction that fails a release: the lane is free again).
//! - `{"promote": {"app", "from", "to"}}`: FROM's known-good digest of each
//!   lane, deployed to TO as `{"deploy": {"digest": …}}` would be.

use serde::Deserialize;

use super::deploy::StartMigration;
use super::{event_for, Decision, Engine, EngineError, Outcome, Ports};
use crate::decide::approval::{decide_approval, ApprovalStep, Verdict};
use crate::decide::promote::{decide_promote, promotion, PromotePlan};
use crate::decide::push::{Origin, Target};
use crate::image::PushedImage;
use crate::ports::{
    Ecs, HeadChange, ImageSelector, Lane, Ledger, Registry, ReleaseRecord, ReleaseUpdate,
    ServiceLookup,
};
use crate::release::{ReleaseId, ReleaseState, Transition};

/// `{"approve": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    pub app: String,
    pub environment: String,
    /// Only this lane of the environment (default: every lane awaiting approval).
    #[serde(default)]
    pub repository: Option<String>,
    /// Only this release (default: the lanes' releases awaiting approval).
    #[serde(default)]
    pub release_id: Option<String>,
}

/// `{"reject": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    pub app: String,
    pub environment: String,
    #[serde(default)]
    pub repository: Option<String>,
    #[serde(default)]
    pub release_id: Option<String>,
    /// Recorded as the release's cause (default: "no reason given").
    #[serde(default)]
    pub reason: Option<String>,
}

/// `{"promote": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    pub app: String,
    pub from: String,
    pub to: String,
}

impl<P: Ports> Engine<P> {
    /// An operator approves the release(s) awaiting approval in an environment.
    pub async fn approve(
        &self,
        request: &ApprovalRequest,
        now: u64,
    ) -> Result<Vec<Decision>, EngineError> {
        let scope = Scope {
            app: &request.app,
            environment: &request.environment,
            repository: request.repository.as_deref(),
            release_id: request.release_id.as_deref(),
        };
        self.give_verdict(scope, &Verdict::Approve, now).await
    }

    /// An operator rejects the release(s) awaiting approval in an environment.
    pub async fn reject(
        &self,
        request: &RejectRequest,
        now: u64,
    ) -> Result<Vec<Decision>, EngineError> {
        let scope = Scope {
            app: &request.app,
            environment: &request.environment,
            repository: request.repository.as_deref(),
            release_id: request.release_id.as_deref(),
        };
        let reason = request
            .reason
            .clone()
            .unwrap_or_else(|| "no reason given".to_owned());
        self.give_verdict(scope, &Verdict::Reject { reason }, now)
            .await
    }

    async fn give_verdict(
        &self,
        scope: Scope<'_>,
        verdict: &Verdict,
        now: u64,
    ) -> Result<Vec<Decision>, EngineError> {
        let env = self.environment_of(scope.app, scope.environment)?;
        let refused = |id: Option<&ReleaseId>, reason: String| {
            Decision::about(
                &env.app,
                &env.name,
                id.map(ReleaseId::as_str),
                Outcome::Refused { reason },
            )
        };
        let records = match scope.release_id {
            Some(id) => {
                let id = ReleaseId::parse(id)
                    .map_err(|e| EngineError::BadRequest(format!("`release_id` `{id}`: {e}")))?;
                if id.app() != env.app || id.env() != env.name {
                    return Err(EngineError::BadRequest(format!(
                        "release {id} is not a release of {}/{}",
                        env.app, env.name
                    )));
                }
                match self.ledger.release(&id).await? {
                    Some(record) => vec![record],
                    None => {
                        return Ok(vec![refused(
                            Some(&id),
                            format!("release {id} does not exist"),
                        )])
                    }
                }
            }
            None => self.awaiting_in(env, scope.repository).await?,
        };
        if records.is_empty() {
            let reason = format!(
                "no release of {}/{} awaits approval{}",
                env.app,
                env.name,
                scope
                    .repository
                    .map(|r| format!(" in repository `{r}`"))
                    .unwrap_or_default()
            );
            return Ok(vec![refused(None, reason)]);
        }
        let decisions = futures_util::future::join_all(records.into_iter().map(|record| {
            let id = record.id.to_string();
            async move {
                let outcome = self.verdict_on(record, verdict, now).await?;
                Ok(Decision::about(&env.app, &env.name, Some(&id), outcome))
            }
        }))
        .await;
        decisions.into_iter().collect()
    }

    /// The release in flight of every lane of `env` (or of `repository`'s lane)
    /// that awaits approval: one read per lane head, then one per release.
    async fn awaiting_in(
        &self,
        env: &crate::config::Environment,
        repository: Option<&str>,
    ) -> Result<Vec<ReleaseRecord>, EngineError> {
        let repositories: Vec<String> = match repository {
            Some(r) => vec![super::deploy::requested_repository(env, Some(r))?],
            None => env.repositories().into_iter().map(str::to_owned).collect(),
        };
        let found = futures_util::future::join_all(repositories.into_iter().map(|repository| {
            let lane = Lane {
                app: env.app.clone(),
                env: env.name.clone(),
                repository,
            };
            async move {
                let Some(pointer) = self.ledger.head(&lane).await?.and_then(|h| h.in_flight) else {
                    return Ok(None);
                };
                let record = self.ledger.release(&pointer.id).await?;
                Ok::<_, EngineError>(record.filter(|r| r.state == ReleaseState::AwaitingApproval))
            }
        }))
        .await;
        found
            .into_iter()
            .filter_map(Result::transpose)
            .collect::<Result<Vec<_>, _>>()
    }

    async fn verdict_on(
        &self,
        record: ReleaseRecord,
        verdict: &Verdict,
        now: u64,
    ) -> Result<Outcome, EngineError> {
        match decide_approval(&record, verdict, now) {
            ApprovalStep::NotAwaiting(state) => Ok(Outcome::Duplicate { state }),
            ApprovalStep::Expired { reason } => {
                match self.reject_release(&record, reason.clone()).await? {
                    Outcome::Rejected { .. } => Ok(Outcome::Refused { reason }),
                    other => Ok(other),
                }
            }
            ApprovalStep::Reject { reason } => self.reject_release(&record, reason).await,
            ApprovalStep::Approve(transition) => self.go_on(record, transition, now).await,
        }
    }

    /// AWAITING_APPROVAL → REJECTED, freeing the lane (one transaction,
    /// conditional on the state and on the lane still holding the release).
    pub(super) async fn reject_release(
        &self,
        record: &ReleaseRecord,
        reason: String,
    ) -> Result<Outcome, EngineError> {
        let update = ReleaseUpdate {
            reason: Some(reason.clone()),
            ..ReleaseUpdate::default()
        };
        let settled = self
            .ledger
            .settle(
                record,
                Transition::Reject.guard(),
                update,
                HeadChange::ClearInFlight,
            )
            .await?;
        if !settled {
            return self.state_now(record).await;
        }
        let mut rejected = record.clone();
        rejected.reason = Some(reason.clone());
        let event = event_for(&rejected, Some(record.state), ReleaseState::Rejected);
        self.emit(vec![event]).await;
        tracing::info!(release = %record.id, %reason, "rejected");
        Ok(Outcome::Rejected { reason })
    }

    /// A verdict lost its conditional write: the release moved on meanwhile.
    async fn state_now(&self, record: &ReleaseRecord) -> Result<Outcome, EngineError> {
        let state = self
            .ledger
            .release(&record.id)
            .await?
            .map_or(record.state, |r| r.state);
        Ok(Outcome::Duplicate { state })
    }

    /// Approved: the step an ungated release takes after registration.
    async fn go_on(
        &self,
        record: ReleaseRecord,
        transition: Transition,
        now: u64,
    ) -> Result<Outcome, EngineError> {
        let env = self
            .config
            .environment(&record.lane.app, &record.lane.env)
            .ok_or_else(|| {
                EngineError::BadRequest(format!(
                    "lane {} is no longer configured; put it back in ferry's config to approve its release",
                    record.lane
                ))
            })?;
        let update = ReleaseUpdate {
            migration_deadline: env
                .migration_for(&record.lane.repository)
                .filter(|_| transition == Transition::ApproveMigration)
                .map(|m| now + m.timeout.as_secs()),
            ..ReleaseUpdate::default()
        }
        .entering(transition, now);
        let describe = async {
            match transition {
                // RunTask copies the launch settings of one of the services.
                Transition::ApproveMigration => Some(
                    self.ecs
                        .describe_services(&record.cluster, &record.services)
                        .await,
                ),
                _ => None,
            }
        };
        let (moved, services) = futures_util::join!(
            self.ledger.update(&record.id, transition.guard(), update),
            describe,
        );
        let Some(moved) = moved? else {
            return self.state_now(&record).await;
        };
        tracing::info!(release = %moved.id, state = %moved.state, "approved");
        let events = vec![event_for(&moved, Some(record.state), moved.state)];
        match (
            transition,
            moved.migration_task_definition.clone(),
            services,
        ) {
            (Transition::ApproveMigration, Some(migration_arn), Some(services)) => {
                let like = services.map(|s: ServiceLookup<_>| s.found.into_iter().next());
                let like = match like {
                    Ok(Some(like)) => like,
                    Ok(None) => {
                        let reason = "no service to copy launch settings from".to_owned();
                        self.emit(events).await;
                        return self.fail_release(&moved, reason, false).await;
                    }
                    Err(e) => return Err(self.interrupt(&moved, e).await),
                };
                let started = StartMigration {
                    migration_arn,
                    essential: moved.migration_essential_containers.clone(),
                    like,
                    registered: moved.task_definitions.values().cloned().collect(),
                    // An approve that Lambda retries reaches here again: one
                    // SSM version however often (a read per approval).
                };
                Ok(self
                    .start_migration(moved, events, started)
                    .await?
                    .unwrap_or(Outcome::Superseded))
            }
            _ => self.roll_out(moved, events, now, true).await,
        }
    }

    /// Deploys FROM's known-good digest of each lane TO shares, as a deploy
    /// by digest would (same release id, same claim: a repeat is a duplicate).
    pub async fn promote(
        &self,
        request: &PromoteRequest,
        region: &str,
        now: u64,
    ) -> Result<Vec<Decision>, EngineError> {
        let refused = |reason: String| {
            tracing::info!(app = %request.app, from = %request.from, to = %request.to, %reason, "promotion refused");
            vec![Decision::about(
                &request.app,
                &request.to,
                None,
                Outcome::Refused { reason },
            )]
        };
        let promoted = match promotion(&self.config, &request.app, &request.from, &request.to) {
            Ok(p) => p,
            Err(reason) => return Ok(refused(reason)),
        };
        let repositories: Vec<String> = promoted
            .to
            .repositories()
            .into_iter()
            .filter(|r| promoted.from.repositories().contains(r))
            .map(str::to_owned)
            .collect();
        let heads = futures_util::future::join_all(repositories.into_iter().map(|repository| {
            let lane = Lane {
                app: promoted.from.app.clone(),
                env: promoted.from.name.clone(),
                repository: repository.clone(),
            };
            async move { self.ledger.head(&lane).await.map(|h| (repository, h)) }
        }))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
        let lanes = match decide_promote(promoted, &heads) {
            PromotePlan::Refuse(reason) => return Ok(refused(reason)),
            PromotePlan::Deploy(lanes) => lanes,
        };
        let deploys = lanes
            .into_iter()
            .map(|(repository, known_good)| async move {
                let selector = ImageSelector::Digest(known_good.digest.clone());
                let Some(resolved) = self.registry.resolve(&repository, &selector).await? else {
                    return Ok(Decision::about(
                        &promoted.to.app,
                        &promoted.to.name,
                        None,
                        Outcome::Refused {
                            reason: format!(
                                "{repository}@{} (known-good in {}) is no longer in ECR",
                                known_good.digest, promoted.from.name
                            ),
                        },
                    ));
                };
                let image = PushedImage::new(
                    &resolved.registry_id,
                    region,
                    &repository,
                    &known_good.tag,
                    &known_good.digest,
                )
                .map_err(|e| EngineError::BadRequest(format!("image: {e}")))?;
                tracing::info!(from = %known_good.id, to = %promoted.to.name, "promoting");
                let target = Target {
                    env: promoted.to,
                    image,
                    pushed_at: resolved.pushed_at,
                    origin: Origin::Operator,
                    retry: None,
                };
                self.release_environment(&target, now).await
            });
        futures_util::future::join_all(deploys)
            .await
            .into_iter()
            .collect()
    }
}

/// Which releases a verdict is about.
#[derive(Debug, Clone, Copy)]
struct Scope<'a> {
    app: &'a str,
    environment: &'a str,
    repository: Option<&'a str>,
    release_id: Option<&'a str>,
}
