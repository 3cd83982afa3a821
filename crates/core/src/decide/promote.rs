//! Promotion: an environment's known-good digest, deployed to another
//! environment of the same app exactly as a deploy by digest would be; and
//! `promote_from`, which makes an environment take only such digests.

use crate::config::{Config, Environment};
use crate::decide::push::{ClaimPlan, Target};
use crate::ports::{LaneHead, ReleasePointer};

/// The two environments of a promotion, once the request names them well.
#[derive(Debug, Clone, Copy)]
pub struct Promotion<'a> {
    pub from: &'a Environment,
    pub to: &'a Environment,
}

/// Checks a promotion request against the config: both environments exist in
/// the app, they differ, and they share a repository. `Err` is the refusal.
pub fn promotion<'a>(
    config: &'a Config,
    app: &str,
    from: &str,
    to: &str,
) -> Result<Promotion<'a>, String> {
    if from == to {
        return Err(format!(
            "promoting {app}/{from} to itself does nothing; name the environment to promote to"
        ));
    }
    let find = |name: &str| {
        config.environment(app, name).ok_or_else(|| {
            format!("no environment `{name}` in app `{app}` in ferry's config; promotion happens between two environments of one app")
        })
    };
    let (from_env, to_env) = (find(from)?, find(to)?);
    if from_env.repositories().is_disjoint(&to_env.repositories()) {
        return Err(format!(
            "{app}/{from} and {app}/{to} run no repository in common; there is nothing to promote"
        ));
    }
    Ok(Promotion {
        from: from_env,
        to: to_env,
    })
}

/// What a promotion deploys: per lane of TO whose repository has a known-good
/// release in FROM, that release's digest (and tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromotePlan {
    /// FROM has no known-good release in any lane TO shares.
    Refuse(String),
    /// repository → FROM's known-good release; each is deployed to TO.
    Deploy(Vec<(String, ReleasePointer)>),
}

/// Decides a promotion from FROM's lane heads, one per repository TO runs
/// (`None`: ferry never released that lane of FROM).
pub fn decide_promote(
    promotion: Promotion<'_>,
    from_heads: &[(String, Option<LaneHead>)],
) -> PromotePlan {
    let deploy: Vec<(String, ReleasePointer)> = from_heads
        .iter()
        .filter(|(repository, _)| promotion.to.repositories().contains(repository.as_str()))
        .filter_map(|(repository, head)| {
            let known_good = head.as_ref()?.known_good.clone()?;
            Some((repository.clone(), known_good))
        })
        .collect();
    if deploy.is_empty() {
        let (from, to) = (promotion.from, promotion.to);
        return PromotePlan::Refuse(format!(
            "{}/{} has no known-good release to promote to {}: release one there first",
            from.app, from.name, to.name
        ));
    }
    PromotePlan::Deploy(deploy)
}

/// Whether `digest` is known-good in a lane (its known-good release, or one
/// of the releases its history remembers; a rolled-back one is not).
pub fn known_good_in(head: &LaneHead, digest: &str) -> bool {
    head.known_good.iter().any(|p| p.digest == digest)
        || head.history.iter().any(|k| k.digest == digest)
}

/// The refusal of an image an environment with `promote_from` does not take:
/// one not known-good in the source environment's lane (`source`, read with
/// the lane head; `None`: ferry never released that lane).
pub fn source_refusal(target: &Target<'_>, source: Option<&LaneHead>) -> Option<String> {
    let from = target.env.promote_from.as_deref()?;
    if source.is_some_and(|head| known_good_in(head, &target.image.digest)) {
        return None;
    }
    let (env, image) = (target.env, &target.image);
    Some(format!(
        "{}/{} takes only digests known-good in {}/{} (promote_from); {}@{} is not known-good there: \
         release it in {from} first, then promote it",
        env.app, env.name, env.app, from, image.repository, image.digest
    ))
}

/// [`crate::decide::push::decide_claim`]'s plan, refused when it would claim
/// or hold an image the environment's `promote_from` does not take. Duplicates
/// and resumptions stay what they are.
pub fn promoted_only(plan: ClaimPlan, refusal: Option<String>) -> ClaimPlan {
    match (plan, refusal) {
        (ClaimPlan::Claim { .. } | ClaimPlan::Hold(_), Some(reason)) => ClaimPlan::Refuse(reason),
        (plan, _) => plan,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::push::Origin;
    use crate::image::PushedImage;
    use crate::ports::KnownGoodRelease;
    use crate::release::ReleaseId;
    use std::collections::BTreeMap;

    const CONFIG: &str = r#"
[apps.shop]
repository = "shop"

[apps.shop.environments.staging]
cluster = "shop-staging"
services = ["api"]
tags = { semver = ">=0.1.0" }
image_tag_parameter = "/shop/staging/image"

[apps.shop.environments.prod]
cluster = "shop-prod"
services = ["api"]
tags = { semver = ">=0.1.0" }
image_tag_parameter = "/shop/prod/image"
promote_from = "staging"

[apps.blog.environments.prod]
cluster = "blog-prod"
services = [{ name = "web", repository = "blog-web" }]
tags = { glob = "*" }
image_tag_parameter = "/blog/prod/image"
"#;

    fn config() -> Config {
        Config::from_toml(CONFIG).expect("valid")
    }

    fn pointer(digest: &str) -> ReleasePointer {
        ReleasePointer {
            id: ReleaseId::derive("shop", "staging", digest),
            tag: "1.2.0".into(),
            digest: digest.into(),
        }
    }

    fn head_with(known_good: Option<&str>, history: &[&str]) -> LaneHead {
        LaneHead {
            known_good: known_good.map(pointer),
            history: history
                .iter()
                .map(|d| KnownGoodRelease {
                    id: ReleaseId::derive("shop", "staging", d),
                    tag: "1.0.0".into(),
                    digest: (*d).into(),
                    task_definitions: BTreeMap::new(),
                })
                .collect(),
            ..LaneHead::default()
        }
    }

    #[test]
    fn a_promotion_to_the_same_environment_or_an_unknown_one_is_refused_naming_why() {
        let config = config();
        let same = promotion(&config, "shop", "prod", "prod").expect_err("same");
        assert!(same.contains("to itself"), "{same}");
        let unknown = promotion(&config, "shop", "staging", "qa").expect_err("unknown");
        assert!(
            unknown.contains("no environment `qa` in app `shop`"),
            "{unknown}"
        );
        let other_app = promotion(&config, "blog", "staging", "prod").expect_err("no staging");
        assert!(other_app.contains("`staging`"), "{other_app}");
    }

    #[test]
    fn a_promotion_deploys_the_known_good_digest_of_each_shared_lane() {
        let config = config();
        let p = promotion(&config, "shop", "staging", "prod").expect("valid");
        let heads = vec![("shop".to_owned(), Some(head_with(Some("sha256:aa"), &[])))];
        assert_eq!(
            decide_promote(p, &heads),
            PromotePlan::Deploy(vec![("shop".to_owned(), pointer("sha256:aa"))])
        );
    }

    #[test]
    fn a_promotion_from_an_environment_without_a_known_good_release_is_refused() {
        let config = config();
        let p = promotion(&config, "shop", "staging", "prod").expect("valid");
        for head in [None, Some(LaneHead::default())] {
            let plan = decide_promote(p, &[("shop".to_owned(), head)]);
            let PromotePlan::Refuse(reason) = plan else {
                panic!("expected a refusal, got {plan:?}");
            };
            assert!(
                reason.contains("shop/staging has no known-good release"),
                "{reason}"
            );
        }
    }

    #[test]
    fn promote_from_takes_a_digest_known_good_in_the_source_lane_or_its_history_only() {
        let config = config();
        let prod = config.environment("shop", "prod").expect("prod");
        let target = |digest: &str| Target {
            env: prod,
            image: PushedImage::new("123456789012", "eu-west-1", "shop", "1.2.0", digest)
                .expect("image"),
            pushed_at: None,
            origin: Origin::Push,
            retry: None,
        };
        let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let (current, older, other) = (digest('a'), digest('b'), digest('c'));
        let staging = head_with(Some(&current), &[&current, &older]);
        assert_eq!(source_refusal(&target(&current), Some(&staging)), None);
        assert_eq!(source_refusal(&target(&older), Some(&staging)), None);
        let refusal = source_refusal(&target(&other), Some(&staging)).expect("refused");
        assert!(
            refusal.contains("known-good in shop/staging (promote_from)"),
            "{refusal}"
        );
        assert!(source_refusal(&target(&current), None).is_some());
    }

    #[test]
    fn a_refusal_turns_a_claim_or_hold_into_a_refusal_and_leaves_duplicates_alone() {
        let duplicate = ClaimPlan::Duplicate(crate::release::ReleaseState::Succeeded);
        assert_eq!(
            promoted_only(duplicate.clone(), Some("no".into())),
            duplicate
        );
        let hold = ClaimPlan::Hold(crate::ports::HeldPush {
            tag: "1.0.0".into(),
            digest: "sha256:aa".into(),
            pushed_at: None,
        });
        assert_eq!(
            promoted_only(hold.clone(), Some("no".into())),
            ClaimPlan::Refuse("no".into())
        );
        assert_eq!(promoted_only(hold.clone(), None), hold);
    }
}
