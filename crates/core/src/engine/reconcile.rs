//! The reconcile pass: events are hints, the ledger converges. For each lane it
//! reads what AWS says (the lane head, the release in flight, the repository's
//! images, the services' deployments, the release's one-off task, the guarding
//! alarms), asks [`crate::decide::reconcile`] what the lost or late events would
//! have done, and does it through the same executors and conditional writes as
//! the event paths, so a pass racing a live event has one effect.
//!
//! Round trips per lane: 1. lane head ∥ ECR DescribeImages ∥ DescribeServices
//! ∥ the image-tag parameter (an idle lane in sync stops here: four calls);
//! 2. the release in flight;
//! 3. its one-off task (DescribeTasks) ∥ the guarding alarms, when it has them.

use serde::Deserialize;

use super::{fan_out, Decision, Engine, EngineError, Outcome, Ports};
use crate::config::Environment;
use crate::decide::push::{Origin, Target};
use crate::decide::reconcile::{judge_drift, reconcile_lane, Finding, LaneView};
use crate::decide::retry::Retry;
use crate::image::PushedImage;
use crate::ports::{
    Alarms, Ecs, EventSink, ImageSelector, Lane, LaneHead, Ledger, Notice, NoticeKind, Parameters,
    PortError, Registry, ReleaseRecord, ReleaseUpdate, ResolvedImage, RollbackLedger,
    TaskDefinitionView, TaskStatus,
};
use crate::release::{Guard, ReleaseId, ReleaseState, StoppedTask};
use crate::rollback::RollbackCause;

use super::{DeploymentChange, TaskStopped};

/// Lanes reconciled at once: each holds a few calls in flight.
const LANE_CONCURRENCY: usize = 10;

/// A direct invoke (`{"reconcile": {...}}`): reconcile the named lanes; every
/// field left out widens the pass (the schedule sends none: every lane).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileRequest {
    #[serde(default)]
    pub app: Option<String>,
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub repository: Option<String>,
}

/// What the pass read about one lane, owned.
struct LaneRead<P: Ports> {
    head: Option<LaneHead>,
    images: Vec<ResolvedImage>,
    services: Vec<<P::Ecs as Ecs>::Service>,
    release: Option<ReleaseRecord>,
    task: Option<TaskStatus>,
    alarms: Vec<crate::ports::AlarmStatus>,
    /// The image-tag parameter's value, read beside the head: a late write
    /// left on an idle lane is only seen here.
    parameter: Option<String>,
}

impl<P: Ports> Engine<P> {
    /// One pass over the lanes `request` names: one decision per lane. A lane
    /// whose reads or corrections fail does not stop the others; the pass then
    /// fails with the first error (retryable ones make the next pass try again).
    pub async fn reconcile(
        &self,
        request: &ReconcileRequest,
        region: &str,
        now: u64,
    ) -> Result<Vec<Decision>, EngineError> {
        let lanes = self.lanes_named(request)?;
        let results = fan_out(lanes, LANE_CONCURRENCY, |(env, lane)| async move {
            let result = self.reconcile_one(env, &lane, region, now).await;
            if let Err(error) = &result {
                tracing::error!(%lane, %error, "reconcile of the lane failed");
            }
            result
        })
        .await;
        let mut decisions = Vec::new();
        let mut first_error = None;
        for result in results {
            match result {
                Ok(decision) => decisions.push(decision),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(decisions),
        }
    }

    fn lanes_named(
        &self,
        request: &ReconcileRequest,
    ) -> Result<Vec<(&Environment, Lane)>, EngineError> {
        if request.app.is_none() && request.environment.is_some() {
            return Err(EngineError::BadRequest(
                "`environment` needs `app`: name the app whose environment to reconcile".into(),
            ));
        }
        let mut lanes = Vec::new();
        for env in self.config.environments() {
            let named = request.app.as_ref().is_none_or(|a| a == &env.app)
                && request.environment.as_ref().is_none_or(|e| e == &env.name);
            if !named {
                continue;
            }
            for repository in env.repositories() {
                if request
                    .repository
                    .as_deref()
                    .is_some_and(|r| r != repository)
                {
                    continue;
                }
                let lane = Lane {
                    app: env.app.clone(),
                    env: env.name.clone(),
                    repository: repository.to_owned(),
                };
                lanes.push((env, lane));
            }
        }
        if lanes.is_empty() && request != &ReconcileRequest::default() {
            return Err(EngineError::BadRequest(format!(
                "no lane of ferry's config matches app {:?}, environment {:?}, repository {:?}",
                request.app, request.environment, request.repository
            )));
        }
        Ok(lanes)
    }

    async fn reconcile_one(
        &self,
        env: &Environment,
        lane: &Lane,
        region: &str,
        now: u64,
    ) -> Result<Decision, EngineError> {
        let read = self.read_lane(env, lane).await?;
        let view = LaneView {
            env,
            lane,
            head: read.head.as_ref(),
            release: read.release.as_ref(),
            images: &read.images,
            services: &read.services,
            task: read.task.as_ref(),
            alarms: &read.alarms,
            parameter: read.parameter.as_deref(),
            now,
        };
        let findings = reconcile_lane(&view);
        let release_id = read.release.as_ref().map(|r| r.id.to_string());
        let mut corrections = Vec::new();
        let mut notices = Vec::new();
        for finding in findings {
            let found = finding.describe();
            let done = self
                .correct(env, lane, &read, &finding, region, now)
                .await?;
            let Some((kind, done)) = done else { continue };
            tracing::warn!(%lane, %found, %done, "reconciled");
            let (service, expected, actual) = match &finding {
                Finding::UnknownRevision {
                    service,
                    expected,
                    actual,
                } => (
                    Some(service.clone()),
                    Some(expected.clone()),
                    Some(actual.clone()),
                ),
                _ => (None, None, None),
            };
            corrections.push(format!("{found} → {done}"));
            notices.push(Notice {
                kind,
                app: lane.app.clone(),
                environment: lane.env.clone(),
                repository: lane.repository.clone(),
                release_id: match &finding {
                    // The release the lost push claimed, under its event's id.
                    Finding::LostPush { image, .. } => {
                        Some(ReleaseId::derive(&lane.app, &lane.env, &image.digest).to_string())
                    }
                    _ => release_id.clone(),
                },
                found,
                done,
                service,
                expected,
                actual,
            });
        }
        // Only a lane the pass left as it found it is idle for certain.
        let pruned = match corrections.is_empty() {
            true => self.prune_idle(env, lane, &read).await?,
            false => None,
        };
        if let Some((found, done)) = pruned {
            corrections.push(format!("{found} → {done}"));
            notices.push(Notice {
                kind: NoticeKind::Reconciled,
                app: lane.app.clone(),
                environment: lane.env.clone(),
                repository: lane.repository.clone(),
                release_id: None,
                found,
                done,
                service: None,
                expected: None,
                actual: None,
            });
        }
        if corrections.is_empty() {
            return Ok(Decision::about(
                &lane.app,
                &lane.env,
                release_id.as_deref(),
                Outcome::InSync,
            ));
        }
        if let Err(error) = self.events.notify(&notices).await {
            tracing::warn!(%error, "could not emit the reconcile pass's events");
        }
        Ok(Decision::about(
            &lane.app,
            &lane.env,
            release_id.as_deref(),
            Outcome::Reconciled { corrections },
        ))
    }

    /// Round trips 1–3.
    async fn read_lane(&self, env: &Environment, lane: &Lane) -> Result<LaneRead<P>, EngineError> {
        let names: Vec<String> = env
            .services_running(&lane.repository)
            .iter()
            .map(|s| s.name.clone())
            .collect();
        let parameter = self.parameter_of(lane)?;
        let (head, images, services, parameter) = futures_util::join!(
            self.ledger.head(lane),
            self.registry.images(&lane.repository),
            self.ecs.describe_services(&env.cluster, &names),
            self.params.get(&parameter),
        );
        let (head, images, services, parameter) = (head?, images?, services?.found, parameter?);
        let release_id = head.as_ref().and_then(|h| {
            h.rolling_back
                .as_ref()
                .map(|r| r.release.id.clone())
                .or(h.in_flight.as_ref().map(|p| p.id.clone()))
        });
        let release = match release_id {
            Some(id) => self.ledger.release(&id).await?,
            None => None,
        };
        let in_flight = release.as_ref().filter(|r| r.state.is_in_flight());
        let task = in_flight.and_then(|r| match r.state {
            ReleaseState::Migrating => r.migration_task.clone(),
            ReleaseState::Verifying => r.verify_task.clone(),
            _ => None,
        });
        let watch_alarms =
            in_flight.is_some_and(|r| r.rollout_started_at.is_some()) && !env.alarms.is_empty();
        let (task, alarms) = futures_util::join!(
            async {
                match &task {
                    Some(arn) => self
                        .ecs
                        .describe_tasks(&env.cluster, std::slice::from_ref(arn))
                        .await
                        .map(|mut found| found.pop()),
                    None => Ok(None),
                }
            },
            async {
                if watch_alarms {
                    self.alarms.describe(&env.alarms).await
                } else {
                    Ok(Vec::new())
                }
            },
        );
        Ok(LaneRead {
            head,
            images,
            services,
            release,
            task: task?,
            alarms: alarms?,
            parameter,
        })
    }

    /// Carries out one finding through the event path it stands in for.
    /// Returns the notice's kind and what was done, or `None` when there was
    /// nothing to do after all (a revision that is not drift).
    async fn correct(
        &self,
        env: &Environment,
        lane: &Lane,
        read: &LaneRead<P>,
        finding: &Finding,
        region: &str,
        now: u64,
    ) -> Result<Option<(NoticeKind, String)>, EngineError> {
        let reconciled = |outcome: Outcome| Ok(Some((NoticeKind::Reconciled, outcome.summary())));
        let record = read.release.as_ref();
        match finding {
            Finding::LostPush { tag, image } => {
                let outcome = self
                    .push_again(lane, image, tag, image.pushed_at, None, (region, now))
                    .await?;
                reconciled(outcome)
            }
            Finding::PushStepUnfinished { stalled, .. } => {
                let Some(record) = record else {
                    return Ok(None);
                };
                if *stalled && !self.mark_stalled(record).await? {
                    return reconciled(Outcome::Duplicate {
                        state: record.state,
                    });
                }
                let image = match read.images.iter().find(|i| i.digest == record.digest) {
                    Some(image) => Some(image.clone()),
                    None => {
                        let digest = ImageSelector::Digest(record.digest.clone());
                        self.registry.resolve(&lane.repository, &digest).await?
                    }
                };
                let Some(image) = image else {
                    let reason = format!(
                        "image {} is no longer in ECR repository `{}`; the release cannot resume",
                        record.digest, lane.repository
                    );
                    return reconciled(self.fail_release(record, reason, true).await?);
                };
                let outcome = self
                    .push_again(
                        lane,
                        &image,
                        &record.tag,
                        record.pushed_at,
                        Some(&record.id),
                        (region, now),
                    )
                    .await?;
                reconciled(outcome)
            }
            Finding::TaskStoppedUnseen { task, stopped, .. } => {
                let Some(record) = record else {
                    return Ok(None);
                };
                reconciled(
                    self.stopped_again(record, task, stopped.clone(), now)
                        .await?,
                )
            }
            Finding::TaskOutlivedTimeout {
                kind,
                task,
                deadline,
            } => {
                let Some(record) = record else {
                    return Ok(None);
                };
                let reason = format!(
                    "ferry: the {} outlived its timeout (deadline {deadline}, epoch seconds); stopped by the reconcile pass",
                    kind.describe()
                );
                self.ecs.stop_task(&env.cluster, task, &reason).await?;
                let stopped = StoppedTask {
                    stop_code: Some("UserInitiated".into()),
                    stopped_reason: Some(reason),
                    containers: Vec::new(),
                    started_at: None,
                    stopped_at: Some(now),
                };
                let outcome = self.stopped_again(record, task, stopped, now).await?;
                reconciled(outcome)
            }
            Finding::RolloutUnfinished { task, stalled } => {
                let Some(record) = record else {
                    return Ok(None);
                };
                if *stalled && !self.mark_stalled(record).await? {
                    return reconciled(Outcome::Duplicate {
                        state: record.state,
                    });
                }
                let unknown = StoppedTask {
                    stop_code: None,
                    stopped_reason: None,
                    containers: Vec::new(),
                    started_at: None,
                    stopped_at: None,
                };
                reconciled(self.stopped_again(record, task, unknown, now).await?)
            }
            Finding::DeploymentEndedUnseen {
                service,
                deployment,
                outcome,
            } => {
                let change = DeploymentChange {
                    cluster: env.cluster.clone(),
                    service: service.clone(),
                    deployment_id: deployment.clone(),
                    outcome: *outcome,
                    reason: Some(format!(
                        "ECS reports deployment {deployment} of {service} ended (seen by the reconcile pass)"
                    )),
                };
                reconciled(Box::pin(self.on_deployment(&change, now)).await?.outcome)
            }
            Finding::CompletionUnfinished {
                service,
                deployment,
                ..
            } => {
                let change = DeploymentChange {
                    cluster: env.cluster.clone(),
                    service: service.clone(),
                    deployment_id: deployment.clone(),
                    outcome: crate::decide::deployment::DeploymentOutcome::Completed,
                    reason: None,
                };
                reconciled(Box::pin(self.on_deployment(&change, now)).await?.outcome)
            }
            Finding::BakeOverdue { .. } => {
                let Some(record) = record else {
                    return Ok(None);
                };
                reconciled(Box::pin(self.on_bake_ended(&record.id, now)).await?.outcome)
            }
            Finding::ApprovalExpired { .. } => {
                let Some(record) = record else {
                    return Ok(None);
                };
                let reason = crate::decide::approval::expiry_reason(record);
                reconciled(self.reject_release(record, reason).await?)
            }
            Finding::AlarmUnseen { alarm, reason } => {
                let cause = RollbackCause::Alarm {
                    alarm: alarm.clone(),
                    reason: reason.clone(),
                };
                reconciled(Box::pin(self.roll_back(lane, &cause)).await?.outcome)
            }
            Finding::RollbackUnfinished { release, stalled } => {
                if *stalled && !self.ledger.mark_rollback(lane, release, true).await? {
                    return reconciled(Outcome::Ignored {
                        reason: "another invocation finished the rollback meanwhile".into(),
                    });
                }
                let cause = RollbackCause::Operator {
                    to: None,
                    reason: "the reconcile pass finishes an unfinished rollback".into(),
                };
                reconciled(Box::pin(self.roll_back(lane, &cause)).await?.outcome)
            }
            Finding::UnknownRevision {
                service,
                expected,
                actual,
            } => {
                self.judge_revision(env, lane, read, service, expected, actual)
                    .await
            }
            Finding::TagOffKnownGood { expected, .. } => {
                let written = self.write_known_good_back(lane, expected).await?;
                Ok(written.then(|| {
                    (
                        NoticeKind::Reconciled,
                        format!("wrote {expected} back and labelled it known-good"),
                    )
                }))
            }
        }
    }

    /// Writes the known-good tag `expected` back to an idle lane's parameter.
    /// The head is read again: a release claimed since the pass read it owns
    /// the parameter (it writes it only after its claim). False: not idle now.
    async fn write_known_good_back(
        &self,
        lane: &Lane,
        expected: &str,
    ) -> Result<bool, EngineError> {
        let head = self.ledger.head(lane).await?.unwrap_or_default();
        let idle = head.in_flight.is_none() && head.rolling_back.is_none();
        if !idle || head.history.first().map(|good| good.tag.as_str()) != Some(expected) {
            return Ok(false);
        }
        self.correct_parameter(lane, &head).await?;
        Ok(true)
    }

    /// A push, delivered again: the same release id as its event, so a late
    /// event (or a racing one) is a duplicate of this.
    async fn push_again(
        &self,
        lane: &Lane,
        image: &ResolvedImage,
        tag: &str,
        pushed_at: Option<crate::names::PushTime>,
        release: Option<&ReleaseId>,
        (region, now): (&str, u64),
    ) -> Result<Outcome, EngineError> {
        let pushed = PushedImage::new(
            &image.registry_id,
            region,
            &lane.repository,
            tag,
            &image.digest,
        )
        .map_err(|e| EngineError::BadRequest(format!("image in ECR: {e}")))?;
        let env = self.environment_of(&lane.app, &lane.env)?;
        let target = Target {
            env,
            image: pushed,
            pushed_at,
            origin: Origin::Push,
            // A later generation (an operator's retry) or a restart resumes
            // under its own id; the push's own id is the digest's first generation.
            retry: release
                .filter(|id| **id != ReleaseId::derive(&lane.app, &lane.env, &image.digest))
                .map(|id| Retry {
                    id: id.clone(),
                    of: None,
                }),
        };
        Ok(self.release_environment(&target, now).await?.outcome)
    }

    /// The task's STOPPED event, delivered again with what DescribeTasks says.
    async fn stopped_again(
        &self,
        record: &ReleaseRecord,
        task: &str,
        stopped: StoppedTask,
        now: u64,
    ) -> Result<Outcome, EngineError> {
        let event = TaskStopped {
            task_arn: task.to_owned(),
            started_by: Some(record.id.started_by()),
            task: stopped,
        };
        Ok(Box::pin(self.on_task_stopped(&event, now)).await?.outcome)
    }

    /// `keep = N`: on an idle lane, the revisions no known-good release needs
    /// are deregistered (an environment without `keep` costs no call).
    async fn prune_idle(
        &self,
        env: &Environment,
        lane: &Lane,
        read: &LaneRead<P>,
    ) -> Result<Option<(String, String)>, EngineError> {
        let Some(keep) = env.keep else {
            return Ok(None);
        };
        let Some(head) = read.head.as_ref() else {
            return Ok(None);
        };
        if head.in_flight.is_some() || head.rolling_back.is_some() {
            return Ok(None);
        }
        let retired = self.prune_revisions(lane, head).await?;
        if retired.is_empty() {
            return Ok(None);
        }
        Ok(Some((
            format!(
                "{} task-definition revision(s) older than the last {keep} known-good releases",
                retired.len()
            ),
            format!("deregistered {}", retired.join(", ")),
        )))
    }

    /// Marks a release whose invocation died without marking it, so the
    /// resumption (one conditional write) can take it. False if it moved.
    async fn mark_stalled(&self, record: &ReleaseRecord) -> Result<bool, PortError> {
        let update = ReleaseUpdate {
            interrupted: Some(format!(
                "no progress since {} (epoch seconds); resumed by the reconcile pass",
                record.updated_at
            )),
            ..ReleaseUpdate::default()
        };
        let guard: Guard = record.state.stays();
        Ok(self
            .ledger
            .update(&record.id, guard, update)
            .await?
            .is_some())
    }

    /// A service on a revision that is not the known-good one: drift, unless
    /// the revision runs the known-good image (infrastructure changed its shape).
    async fn judge_revision(
        &self,
        env: &Environment,
        lane: &Lane,
        read: &LaneRead<P>,
        service: &str,
        expected: &str,
        actual: &str,
    ) -> Result<Option<(NoticeKind, String)>, EngineError> {
        let Some(known_good) = read.head.as_ref().and_then(|h| h.history.first()) else {
            return Ok(None);
        };
        let described = self.ecs.describe_task_definition(actual).await?;
        if !judge_drift(
            &described.containers(),
            &lane.repository,
            &known_good.digest,
        ) {
            return Ok(None);
        }
        let done = if env.heal_drift {
            self.ecs
                .restore_service(&env.cluster, service, expected)
                .await?;
            format!("put {service} back on {expected} (heal_drift)")
        } else {
            "reported; `heal_drift = true` puts it back".to_owned()
        };
        Ok(Some((NoticeKind::DriftDetected, done)))
    }
}
