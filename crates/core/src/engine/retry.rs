//! An operator's retry: find the digest's newest generation, decide
//! ([`decide_retry`]), and release the next generation through the deploy's own
//! claim, preflight, registration and migration.
//!
//! Round trips before the deploy's own: the image in ECR (or, naming no image,
//! the lane head for its last failed release), then the lane head with the
//! digest's first generation, plus one read per later generation.

use serde::Deserialize;

use super::deploy::requested_repository;
use super::{Decision, Engine, EngineError, Outcome, Ports};
use crate::decide::push::{Origin, Target};
use crate::decide::retry::{decide_retry, RetryPlan};
use crate::image::PushedImage;
use crate::ports::{
    ImageSelector, Lane, LaneHead, Ledger, PortError, Registry, ReleaseRecord, ResolvedImage,
};
use crate::release::ReleaseId;

/// A direct invoke: deploy again a digest whose release did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    pub app: String,
    pub environment: String,
    /// Which repository of the environment, when it runs more than one.
    #[serde(default)]
    pub repository: Option<String>,
    /// The image to retry by tag; with neither `tag` nor `digest`, the lane's
    /// last failed release.
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub digest: Option<String>,
    /// Deploy a rolled-back (bad) digest again.
    #[serde(default)]
    pub force: bool,
}

impl<P: Ports> Engine<P> {
    /// Retries a digest in one environment on an operator's request.
    pub async fn retry(
        &self,
        request: &RetryRequest,
        region: &str,
        now: u64,
    ) -> Result<Decision, EngineError> {
        let env = self.environment_of(&request.app, &request.environment)?;
        let repository = requested_repository(env, request.repository.as_deref())?;
        let lane = Lane {
            app: env.app.clone(),
            env: env.name.clone(),
            repository: repository.clone(),
        };
        let refused = |id: Option<&ReleaseId>, reason: String| {
            tracing::info!(lane = %lane, release = ?id, %reason, "retry refused");
            Decision::about(
                &env.app,
                &env.name,
                id.map(ReleaseId::as_str),
                Outcome::Refused { reason },
            )
        };
        let selector = match (&request.tag, &request.digest) {
            (Some(tag), None) => Some(ImageSelector::Tag(tag.clone())),
            (None, Some(digest)) => Some(ImageSelector::Digest(digest.clone())),
            (None, None) => None,
            (Some(_), Some(_)) => return Err(EngineError::BadRequest(
                "give at most one of `tag` or `digest` (neither: the lane's last failed release)"
                    .to_owned(),
            )),
        };
        let (start, mut resolved) = match &selector {
            Some(selector) => {
                let resolved = self.resolve_in(&repository, selector).await?;
                let first = ReleaseId::derive(&env.app, &env.name, &resolved.digest);
                (first, Some(resolved))
            }
            None => match self.ledger.head(&lane).await?.and_then(|h| h.last_failed) {
                Some(failed) => (failed.id, None),
                None => {
                    return Ok(refused(
                        None,
                        format!("lane {lane} has no failed release to retry; name the `digest` or `tag` to retry"),
                    ))
                }
            },
        };
        let (head, latest) = self.latest_generation(&lane, &start).await?;
        let (retry, latest) = match (decide_retry(&head, latest.as_ref(), request.force), latest) {
            (RetryPlan::Retry(retry), Some(latest)) => (retry, latest),
            (RetryPlan::Refuse(reason), latest) => {
                return Ok(refused(latest.as_ref().map(|r| &r.id), reason))
            }
            (RetryPlan::Retry(_), None) => {
                return Ok(refused(Some(&start), "nothing to retry".to_owned()))
            }
        };
        let resolved = match resolved.take() {
            Some(resolved) => resolved,
            None => {
                self.resolve_in(&repository, &ImageSelector::Digest(latest.digest.clone()))
                    .await?
            }
        };
        let tag = request.tag.clone().unwrap_or_else(|| latest.tag.clone());
        let image = PushedImage::new(
            &resolved.registry_id,
            region,
            &repository,
            &tag,
            &latest.digest,
        )
        .map_err(|e| EngineError::BadRequest(format!("image: {e}")))?;
        tracing::info!(release = %retry.id, retries = ?retry.of.as_ref().map(|r| &r.id), force = request.force, "retrying");
        let target = Target {
            env,
            image,
            pushed_at: resolved.pushed_at,
            origin: Origin::Operator,
            retry: Some(retry),
        };
        self.release_environment(&target, now).await
    }

    async fn resolve_in(
        &self,
        repository: &str,
        selector: &ImageSelector,
    ) -> Result<ResolvedImage, EngineError> {
        self.registry
            .resolve(repository, selector)
            .await?
            .ok_or_else(|| {
                EngineError::BadRequest(format!(
                    "image {selector:?} does not exist in ECR repository `{repository}`"
                ))
            })
    }

    /// The lane head and the digest's newest generation in the lane, following
    /// `retried_as` from `start`: one read of both, then one per later generation.
    async fn latest_generation(
        &self,
        lane: &Lane,
        start: &ReleaseId,
    ) -> Result<(LaneHead, Option<ReleaseRecord>), EngineError> {
        let (head, first) = self.ledger.read(lane, start).await?;
        let Some(mut latest) = first else {
            return Ok((head.unwrap_or_default(), None));
        };
        while let Some(next) = latest.retried_as.clone() {
            let corrupt = |why: &str| {
                EngineError::Aws(PortError::new(
                    "ledger",
                    format!(
                        "release {} names {next} as its retry, which {why}; the ledger needs an operator's look",
                        latest.id
                    ),
                ))
            };
            if next.generation() <= latest.id.generation()
                || next.first_generation() != latest.id.first_generation()
            {
                return Err(corrupt("is not a later generation of the same digest"));
            }
            latest = self
                .ledger
                .release(&next)
                .await?
                .ok_or_else(|| corrupt("does not exist"))?;
        }
        Ok((head.unwrap_or_default(), Some(latest)))
    }
}
