//! `ferry wait` and `--wait`: follow a release to where it comes to rest.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use ferry_core::config::Environment;
use ferry_core::ports::{ImageSelector, Lane, LaneHead, Ledger, Registry, ReleaseRecord};
use ferry_core::release::ReleaseId;
use serde::Serialize;

use crate::aws::Aws;
use crate::error::{CliError, Exit};
use crate::views::step;

/// How often the ledger is read.
const POLL: Duration = Duration::from_secs(1);
/// How often a digest with no release yet is looked for among the lane's
/// refusals (bad releases, the tag policy).
const REFUSAL_CHECK: Duration = Duration::from_secs(10);

/// How a followed release ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ending {
    pub release: Option<String>,
    pub state: Option<String>,
    pub message: String,
    #[serde(skip)]
    pub exit: Exit,
}

/// The verdict on a release's record: `None` while it is on its way; known-good
/// is 0, any other resting state 1 (generic over the states: a state added
/// later needs nothing here).
pub fn verdict(record: &ReleaseRecord) -> Option<Ending> {
    if !record.state.is_settled() {
        return None;
    }
    let (exit, message) = if record.state.is_known_good() {
        (
            Exit::Ok,
            format!(
                "{} is known-good ({} {})",
                record.id, record.lane.repository, record.tag
            ),
        )
    } else {
        let cause = record
            .reason
            .clone()
            .or_else(|| record.interrupted.clone())
            .map(|c| format!(": {c}"))
            .unwrap_or_default();
        (
            Exit::Bad,
            format!("{} ended {}{cause}", record.id, record.state),
        )
    };
    Some(Ending {
        release: Some(record.id.to_string()),
        state: Some(record.state.to_string()),
        message,
        exit,
    })
}

/// A digest with no release (yet): refused if the lane marked it bad or its
/// tags do not pass the environment's tag policy.
pub fn refusal(
    env: &Environment,
    first: &ReleaseId,
    heads: &[LaneHead],
    tags: &[String],
) -> Option<String> {
    if heads.iter().any(|h| h.bad_releases.contains(first)) {
        return Some(format!(
            "{first} was rolled back (marked bad): ferry refuses it again; `ferry retry {}/{} --digest ... --force` deploys it anyway",
            env.app, env.name
        ));
    }
    if tags.is_empty() {
        return None;
    }
    let refusals: Vec<String> = tags
        .iter()
        .filter_map(|tag| env.tag_policy.check(tag, &env.mutable_tags, None).err())
        .map(|r| r.to_string())
        .collect();
    (refusals.len() == tags.len()).then(|| format!("refused: {}", refusals.join("; ")))
}

/// The newest generation of a release: its record, following `retried_as`.
pub async fn newest<L: Ledger>(
    ledger: &L,
    first: &ReleaseId,
) -> Result<Option<ReleaseRecord>, CliError> {
    let mut id = first.clone();
    let mut found = None;
    for _ in 0..100 {
        let record = ledger
            .release(&id)
            .await
            .map_err(|e| CliError::aws(format!("reading release {id}"), e))?;
        match record {
            Some(r) => match r.retried_as.clone() {
                Some(next) if next != id => {
                    id = next;
                    found = Some(r);
                }
                _ => return Ok(Some(r)),
            },
            None => return Ok(found),
        }
    }
    Ok(found)
}

/// The live progress line: rewritten in place on a terminal, one line per
/// change otherwise (CI logs).
pub struct Progress {
    tty: bool,
    last: String,
    to_stderr: bool,
}

impl Progress {
    pub fn new(to_stderr: bool) -> Self {
        let tty = if to_stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        Progress {
            tty,
            last: String::new(),
            to_stderr,
        }
    }

    fn write(&self, text: &str) {
        if self.to_stderr {
            let _ = std::io::stderr().write_all(text.as_bytes());
        } else {
            let mut out = std::io::stdout();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }

    pub fn show(&mut self, line: &str, elapsed: Duration) {
        if self.tty {
            self.write(&format!(
                "\r\x1b[2K{line} ({})",
                crate::render::duration(elapsed.as_secs())
            ));
        } else if line != self.last {
            self.write(&format!("{line}\n"));
        }
        self.last = line.to_owned();
    }

    pub fn done(&self) {
        if self.tty && !self.last.is_empty() {
            self.write("\n");
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Follows the release of `digest` in `env` (its newest generation) until it
/// comes to rest, is refused, or `timeout` passes.
pub async fn follow(
    aws: &Aws,
    env: &Environment,
    digest: &str,
    timeout: Duration,
    progress: &mut Progress,
) -> Result<Ending, CliError> {
    let table = aws.table().await?;
    let ledger = aws.ledger(&table);
    let registry = aws.registry();
    let first = ReleaseId::derive(&env.app, &env.name, digest);
    let lanes: Vec<Lane> = env
        .repositories()
        .into_iter()
        .map(|r| Lane {
            app: env.app.clone(),
            env: env.name.clone(),
            repository: r.to_owned(),
        })
        .collect();
    let started = Instant::now();
    let mut last_refusal_check: Option<Instant> = None;
    let mut tags: Option<Vec<String>> = None;
    let mut last_line = format!("{first}: waiting for its release");
    loop {
        let record = newest(&ledger, &first).await?;
        match &record {
            Some(r) => {
                if let Some(ending) = verdict(r) {
                    progress.show(&format!("{} {}", r.id, r.state), started.elapsed());
                    progress.done();
                    return Ok(ending);
                }
                let step = step(r, now());
                last_line = format!(
                    "{} {} {}{}",
                    r.id,
                    r.tag,
                    r.state,
                    if step.is_empty() {
                        String::new()
                    } else {
                        format!(", {step}")
                    }
                );
            }
            None if last_refusal_check.is_none_or(|t| t.elapsed() >= REFUSAL_CHECK) => {
                last_refusal_check = Some(Instant::now());
                let mut heads = Vec::new();
                for lane in &lanes {
                    if let Some(head) = ledger
                        .head(lane)
                        .await
                        .map_err(|e| CliError::aws(format!("reading lane {lane}"), e))?
                    {
                        heads.push(head);
                    }
                }
                if tags.is_none() {
                    let mut found = Vec::new();
                    for lane in &lanes {
                        let resolved = registry
                            .resolve(&lane.repository, &ImageSelector::Digest(digest.to_owned()))
                            .await
                            .map_err(|e| CliError::aws(format!("looking up {digest} in ECR"), e))?;
                        if let Some(image) = resolved {
                            found.extend(image.tags);
                        }
                    }
                    if !found.is_empty() {
                        tags = Some(found);
                    }
                }
                if let Some(held) = heads
                    .iter()
                    .find_map(|h| h.held.as_ref().filter(|h| h.digest == digest))
                {
                    last_line = format!(
                        "{first}: {} held, the lane is frozen after a rollback (`ferry unfreeze {}/{}`)",
                        held.tag, env.app, env.name
                    );
                }
                if let Some(reason) = refusal(env, &first, &heads, tags.as_deref().unwrap_or(&[])) {
                    progress.done();
                    return Ok(Ending {
                        release: Some(first.to_string()),
                        state: None,
                        message: reason,
                        exit: Exit::Bad,
                    });
                }
            }
            None => {}
        }
        progress.show(&last_line, started.elapsed());
        if started.elapsed() >= timeout {
            progress.done();
            let state = record.as_ref().map(|r| r.state.to_string());
            let message = match &record {
                Some(r) => format!(
                    "timed out after {}: {} is still {}",
                    crate::render::duration(timeout.as_secs()),
                    r.id,
                    r.state
                ),
                None => format!(
                    "timed out after {}: no release of {digest} in {}/{} (was it pushed to the environment's repository? see `ferry status {}/{}`)",
                    crate::render::duration(timeout.as_secs()),
                    env.app,
                    env.name,
                    env.app,
                    env.name
                ),
            };
            return Ok(Ending {
                release: record.map(|r| r.id.to_string()),
                state,
                message,
                exit: Exit::Timeout,
            });
        }
        tokio::time::sleep(POLL.min(timeout.saturating_sub(started.elapsed()))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::config::Config;
    use ferry_core::release::ReleaseState;

    const CONFIG: &str = r#"
[apps.shop]
repository = "shop"
[apps.shop.environments.prod]
cluster = "shop-prod"
services = ["api"]
tags = { semver = ">=1.0.0" }
image_tag_parameter = "/shop/prod/currentImageTag"
"#;

    fn record(state: ReleaseState) -> ReleaseRecord {
        let mut r = ReleaseRecord::claimed(
            ReleaseId::derive("shop", "prod", "sha256:8b7c6d5e4f3a2b1c"),
            Lane {
                app: "shop".into(),
                env: "prod".into(),
                repository: "shop".into(),
            },
            "1.1.0".into(),
            "sha256:8b7c6d5e4f3a2b1c".into(),
            "shop-prod".into(),
            vec!["api".into()],
            1,
        );
        r.state = state;
        r
    }

    #[test]
    fn a_known_good_release_ends_the_wait_with_0() {
        let ending = verdict(&record(ReleaseState::Succeeded)).unwrap();
        assert_eq!(ending.exit, Exit::Ok);
        assert_eq!(
            ending.message,
            "shop/prod/8b7c6d5e4f3a2b1c is known-good (shop 1.1.0)"
        );
    }

    #[test]
    fn a_failed_or_rolled_back_release_ends_the_wait_with_1_and_its_cause() {
        let mut failed = record(ReleaseState::Failed);
        failed.reason = Some("migration container \"migrate\" exited with code 1".into());
        let ending = verdict(&failed).unwrap();
        assert_eq!(ending.exit, Exit::Bad);
        assert_eq!(
            ending.message,
            "shop/prod/8b7c6d5e4f3a2b1c ended FAILED: migration container \"migrate\" exited with code 1"
        );
        assert_eq!(
            verdict(&record(ReleaseState::RolledBack)).unwrap().exit,
            Exit::Bad
        );
        assert_eq!(
            verdict(&record(ReleaseState::Superseded)).unwrap().exit,
            Exit::Bad
        );
    }

    #[test]
    fn a_release_on_its_way_does_not_end_the_wait() {
        for state in ReleaseState::ALL {
            let settled = verdict(&record(state)).is_some();
            assert_eq!(
                settled,
                state.is_known_good() || state.is_terminal(),
                "{state}"
            );
        }
        assert!(verdict(&record(ReleaseState::Deploying)).is_none());
        assert!(verdict(&record(ReleaseState::RollingBack)).is_none());
    }

    #[test]
    fn a_digest_whose_every_tag_the_policy_refuses_is_refused() {
        let config = Config::from_toml(CONFIG).unwrap();
        let env = config.environment("shop", "prod").unwrap();
        let first = ReleaseId::derive("shop", "prod", "sha256:8b7c6d5e4f3a2b1c");
        let why = refusal(env, &first, &[], &["latest".into()]).unwrap();
        assert!(why.starts_with("refused: "), "{why}");
        assert!(why.contains("latest"), "{why}");
        assert_eq!(
            refusal(env, &first, &[], &["latest".into(), "1.2.0".into()]),
            None
        );
        assert_eq!(refusal(env, &first, &[], &[]), None);
    }

    #[test]
    fn a_digest_the_lane_marked_bad_is_refused_and_says_how_to_force_it() {
        let config = Config::from_toml(CONFIG).unwrap();
        let env = config.environment("shop", "prod").unwrap();
        let first = ReleaseId::derive("shop", "prod", "sha256:8b7c6d5e4f3a2b1c");
        let head = LaneHead {
            bad_releases: [first.clone()].into(),
            ..LaneHead::default()
        };
        let why = refusal(env, &first, &[head], &["1.2.0".into()]).unwrap();
        assert!(why.contains("--force"), "{why}");
    }
}
