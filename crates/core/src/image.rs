//! Image references, and which containers of a task definition a push changes.
//!
//! Containers are matched by registry and repository, never by container name, so a
//! sidecar from another registry (a Datadog agent, an Envoy proxy) or from another ECR
//! repository is never touched.

use crate::names::ReleaseId;
use crate::tag_policy::validate_tag;

/// The most tags an ECS resource may carry (tags whose key starts with `aws:` do not
/// count, and ferry never sends one).
pub const MAX_RESOURCE_TAGS: usize = 50;

/// The prefix, in any case, of the tag keys AWS reserves for its own tags (such as
/// CloudFormation's `aws:cloudformation:stack-name`): ECS refuses a request that
/// carries one, so a copy never does.
pub const RESERVED_TAG_PREFIX: &str = "aws:";

/// The tag that names the release an ECS resource belongs to.
pub const RELEASE_TAG: &str = "ferry:release";
/// The tag that names the environment (`<app>/<env>`) an ECS resource belongs to.
pub const ENV_TAG: &str = "ferry:env";
const FERRY_TAG_PREFIX: &str = "ferry:";

/// A container image reference, as written in a task definition:
/// `[registry/]repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The registry host (with port, if any); `None` for Docker Hub shorthand like `nginx`.
    pub registry: Option<String>,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// An image that was pushed to ECR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// e.g. `123456789012.dkr.ecr.eu-west-1.amazonaws.com`
    pub registry: String,
    pub repository: String,
    pub tag: String,
    /// `sha256:<64 lowercase hex>`
    pub digest: String,
}

/// One container of a task definition and the image it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerImage {
    pub name: String,
    pub image: String,
}

/// A container whose image a release changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageChange {
    pub container: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("image reference `{reference}` is not valid: {why}")]
    InvalidReference { reference: String, why: String },
    #[error("registry id `{registry_id}` is not an AWS account id; expected 12 digits")]
    InvalidRegistryId { registry_id: String },
    #[error("region `{region}` is not an AWS region name (expected something like `eu-west-1`)")]
    InvalidRegion { region: String },
    #[error("repository `{repository}` is not a valid ECR repository name: {why}")]
    InvalidRepository { repository: String, why: String },
    #[error("tag `{tag}` is not a valid image tag: {why}")]
    InvalidTag { tag: String, why: String },
    #[error(
        "digest `{digest}` is not an image digest; expected `sha256:` followed by 64 hex characters"
    )]
    InvalidDigest { digest: String },
    #[error(
        "the resource would carry {count} tags with ferry's, over ECS's limit of {limit}; \
         remove {excess} of its own tags so ferry can add `ferry:release` and `ferry:env`",
        excess = count.saturating_sub(*limit)
    )]
    TooManyTags { count: usize, limit: usize },
}

impl ImageRef {
    /// Parses `[registry/]repository[:tag][@digest]`. The first path component is a
    /// registry if it contains `.` or `:` or is `localhost`.
    pub fn parse(s: &str) -> Result<ImageRef, ImageError> {
        let invalid = |why: &str| ImageError::InvalidReference {
            reference: s.to_owned(),
            why: why.to_owned(),
        };
        if s.is_empty() {
            return Err(invalid("it is empty"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("it contains whitespace"));
        }
        let (name_and_tag, digest) = match s.split_once('@') {
            Some((rest, digest)) => {
                if !is_digest(digest) {
                    return Err(invalid(
                        "the part after `@` is not a digest like `sha256:<64 hex characters>`",
                    ));
                }
                (rest, Some(digest.to_owned()))
            }
            None => (s, None),
        };
        let (registry, path) = match name_and_tag.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                if !is_registry_host(first) {
                    return Err(invalid("the registry host is not a valid host[:port]"));
                }
                (Some(first.to_owned()), rest)
            }
            _ => (None, name_and_tag),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repository, tag)) => {
                validate_tag(tag).map_err(|why| invalid(&format!("tag `{tag}`: {why}")))?;
                (repository, Some(tag.to_owned()))
            }
            None => (path, None),
        };
        if repository.is_empty() {
            return Err(invalid("it names no repository"));
        }
        if let Some(component) = repository
            .split('/')
            .find(|c| !is_path_component(c, Grammar::Docker))
        {
            return Err(invalid(&format!(
                "repository path component `{component}` must be lowercase letters and digits \
                 joined by `.`, `_`, `__` or dashes"
            )));
        }
        Ok(ImageRef {
            registry,
            repository: repository.to_owned(),
            tag,
            digest,
        })
    }

    /// Whether this reference names `repository` in `registry` (registry compared
    /// case-insensitively).
    pub fn is_in(&self, registry: &str, repository: &str) -> bool {
        self.registry
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case(registry))
            && self.repository == repository
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(registry) = &self.registry {
            write!(f, "{registry}/")?;
        }
        f.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl PushedImage {
    /// An image pushed to the ECR registry of account `registry_id` in `region`.
    /// Validates every part; an upper-case digest is normalised to lower case.
    pub fn new(
        registry_id: &str,
        region: &str,
        repository: &str,
        tag: &str,
        digest: &str,
    ) -> Result<Self, ImageError> {
        if registry_id.len() != 12 || !registry_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ImageError::InvalidRegistryId {
                registry_id: registry_id.to_owned(),
            });
        }
        if !is_region(region) {
            return Err(ImageError::InvalidRegion {
                region: region.to_owned(),
            });
        }
        validate_repository_name(repository).map_err(|why| ImageError::InvalidRepository {
            repository: repository.to_owned(),
            why,
        })?;
        validate_tag(tag).map_err(|why| ImageError::InvalidTag {
            tag: tag.to_owned(),
            why,
        })?;
        let digest = normalise_sha256_digest(digest).ok_or_else(|| ImageError::InvalidDigest {
            digest: digest.to_owned(),
        })?;
        let suffix = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        Ok(PushedImage {
            registry: format!("{registry_id}.dkr.ecr.{region}.{suffix}"),
            repository: repository.to_owned(),
            tag: tag.to_owned(),
            digest,
        })
    }

    /// The image pinned by digest: `<registry>/<repository>@<digest>`.
    pub fn pinned(&self) -> String {
        format!("{}/{}@{}", self.registry, self.repository, self.digest)
    }

    /// The image by tag: `<registry>/<repository>:<tag>`.
    pub fn tagged(&self) -> String {
        format!("{}/{}:{}", self.registry, self.repository, self.tag)
    }
}

/// The containers that run `pushed`'s repository, each moved to the pinned digest.
///
/// Containers are matched by registry + repository (never by container name); a
/// container of another repository, of another registry, or of a public image like
/// `nginx:1.25` is untouched, and so is one whose image does not parse. A container
/// already pinned to the pushed digest is still listed (its change is a no-op), so an
/// empty result always means "this task definition does not run the repository".
pub fn plan_image_changes(containers: &[ContainerImage], pushed: &PushedImage) -> Vec<ImageChange> {
    let to = pushed.pinned();
    containers
        .iter()
        .filter(|c| {
            ImageRef::parse(&c.image).is_ok_and(|r| r.is_in(&pushed.registry, &pushed.repository))
        })
        .map(|c| ImageChange {
            container: c.name.clone(),
            from: c.image.clone(),
            to: to.clone(),
        })
        .collect()
}

/// The tags a release puts on what it registers or runs, and the reserved keys it left
/// out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReleaseTags {
    /// The tags to send: the resource's own, then `ferry:release` and `ferry:env`.
    pub tags: Vec<(String, String)>,
    /// The keys of the resource's tags that start with `aws:` (in any case), in their
    /// order: AWS's own tags, which ECS refuses from any caller, so they are not
    /// copied. The adapter logs them.
    pub dropped: Vec<String>,
}

/// Whether `key` starts with `aws:` in any case (`AWS:`, `Aws:`, …): a key AWS
/// reserves for its own tags.
pub fn is_reserved_tag_key(key: &str) -> bool {
    key.get(..RESERVED_TAG_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(RESERVED_TAG_PREFIX))
}

/// How far back from a family's latest revision a resumed release looks for the
/// copy its interrupted attempt registered: a newer release of the lane, or
/// the infrastructure, may have registered revisions since.
pub const COPY_SEARCH_DEPTH: u64 = 3;

/// The ARNs of the `depth` revisions before `latest` (newest first).
pub fn earlier_revisions(latest: &str, depth: u64) -> Vec<String> {
    let Some((prefix, revision)) = latest.rsplit_once(':') else {
        return Vec::new();
    };
    let Ok(revision) = revision.parse::<u64>() else {
        return Vec::new();
    };
    (1..=depth)
        .filter_map(|back| revision.checked_sub(back).filter(|r| *r > 0))
        .map(|r| format!("{prefix}:{r}"))
        .collect()
}

/// Whether a revision with these tags is the copy ferry registered for
/// `release` and can still run (an INACTIVE one cannot be deployed).
pub fn registered_for(tags: &[(String, String)], release: &ReleaseId, active: bool) -> bool {
    active
        && tags
            .iter()
            .any(|(k, v)| k == RELEASE_TAG && v == release.as_str())
}

/// Merges ferry's tags into a resource's tags: keeps every other tag in its order,
/// drops any existing `ferry:*` tag and every tag whose key starts with `aws:` (in any
/// case; reported in [`ReleaseTags::dropped`]), and adds `ferry:release` = `release_id`
/// and `ferry:env` = `<app>/<env>`. Fails if the result exceeds ECS's 50-tag limit.
pub fn release_tags(
    existing: &[(String, String)],
    release_id: &str,
    app: &str,
    env: &str,
) -> Result<ReleaseTags, ImageError> {
    let (reserved, own): (Vec<_>, Vec<_>) = existing
        .iter()
        .partition(|(key, _)| is_reserved_tag_key(key));
    let mut tags: Vec<(String, String)> = own
        .into_iter()
        .filter(|(key, _)| !key.starts_with(FERRY_TAG_PREFIX))
        .cloned()
        .collect();
    tags.push((RELEASE_TAG.to_owned(), release_id.to_owned()));
    tags.push((ENV_TAG.to_owned(), format!("{app}/{env}")));
    if tags.len() > MAX_RESOURCE_TAGS {
        return Err(ImageError::TooManyTags {
            count: tags.len(),
            limit: MAX_RESOURCE_TAGS,
        });
    }
    Ok(ReleaseTags {
        tags,
        dropped: reserved.into_iter().map(|(key, _)| key.clone()).collect(),
    })
}

/// Checks an ECR repository name: 2 to 256 characters, `/`-separated components of
/// lowercase letters and digits joined by single `.`, `_` or `-`.
pub fn validate_repository_name(name: &str) -> Result<(), String> {
    if name.len() < 2 || name.len() > 256 {
        return Err(format!(
            "it is {} characters long; ECR repository names are 2 to 256 characters",
            name.len()
        ));
    }
    if let Some(c) = name.chars().find(|&c| {
        !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '/'))
    }) {
        return Err(format!(
            "it contains `{c}`; use only lowercase letters, digits, `.`, `_`, `-` and `/`"
        ));
    }
    if let Some(component) = name
        .split('/')
        .find(|c| !is_path_component(c, Grammar::Ecr))
    {
        let shown = if component.is_empty() {
            "an empty path component (a leading, trailing or doubled `/`)".to_owned()
        } else {
            format!("path component `{component}`, which must start and end with a letter or digit and not repeat `.`, `_` or `-`")
        };
        return Err(format!("it has {shown}"));
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Grammar {
    /// ECR: `[a-z0-9]+([._-][a-z0-9]+)*`
    Ecr,
    /// Docker/OCI references: `[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*`
    Docker,
}

/// Whether `c` is one component of a repository path under `grammar`.
fn is_path_component(c: &str, grammar: Grammar) -> bool {
    let mut separator = String::new();
    let mut started = false;
    for ch in c.chars() {
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            if !separator.is_empty() && !separator_allowed(&separator, grammar) {
                return false;
            }
            separator.clear();
            started = true;
        } else if matches!(ch, '.' | '_' | '-') && started {
            separator.push(ch);
        } else {
            return false;
        }
    }
    started && separator.is_empty()
}

fn separator_allowed(separator: &str, grammar: Grammar) -> bool {
    match grammar {
        Grammar::Ecr => separator.len() == 1,
        Grammar::Docker => {
            matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-')
        }
    }
}

fn is_registry_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let name_ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    name_ok && port_ok
}

/// `algorithm:hex`, the general OCI digest shape.
fn is_digest(digest: &str) -> bool {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return false;
    };
    !algorithm.is_empty()
        && algorithm.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '.' | '_' | '-')
        })
        && encoded.len() >= 32
        && encoded.bytes().all(|b| b.is_ascii_hexdigit())
}

fn normalise_sha256_digest(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("sha256:{}", hex.to_ascii_lowercase()))
}

/// `xx-name-N`, e.g. `eu-west-1`, `us-gov-west-1`, `ap-southeast-5`.
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty())
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_release_looks_back_a_few_revisions_from_the_latest() {
        assert_eq!(
            earlier_revisions("arn:aws:ecs:eu-west-1:1:task-definition/shop-api:5", 3),
            [
                "arn:aws:ecs:eu-west-1:1:task-definition/shop-api:4",
                "arn:aws:ecs:eu-west-1:1:task-definition/shop-api:3",
                "arn:aws:ecs:eu-west-1:1:task-definition/shop-api:2"
            ]
        );
        assert_eq!(
            earlier_revisions("arn:aws:ecs:eu-west-1:1:task-definition/shop-api:2", 3),
            ["arn:aws:ecs:eu-west-1:1:task-definition/shop-api:1"]
        );
        assert!(earlier_revisions("not-an-arn", 3).is_empty());
    }

    #[test]
    fn only_an_active_revision_tagged_for_the_release_is_its_copy() {
        let id = ReleaseId::parse("shop/prod/3f2a9c1b7e40d5a1").expect("id");
        let tagged = vec![("ferry:release".to_owned(), id.as_str().to_owned())];
        let other = vec![(
            "ferry:release".to_owned(),
            "shop/prod/0000000000000001".to_owned(),
        )];
        assert!(registered_for(&tagged, &id, true));
        assert!(
            !registered_for(&tagged, &id, false),
            "an INACTIVE copy cannot run"
        );
        assert!(!registered_for(&other, &id, true));
        assert!(!registered_for(&[], &id, true));
    }

    const DIGEST: &str = "sha256:3f2a9c1b7e40d5a1c0ffee00112233445566778899aabbccddeeff0011223344";
    const OLD_DIGEST: &str =
        "sha256:0000000000000000000000000000000000000000000000000000000000000001";
    const REGISTRY: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

    fn pushed() -> PushedImage {
        PushedImage::new("123456789012", "eu-west-1", "shop", "1.4.0", DIGEST).unwrap()
    }

    fn container(name: &str, image: &str) -> ContainerImage {
        ContainerImage {
            name: name.into(),
            image: image.into(),
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn bare_docker_hub_name_has_no_registry_tag_or_digest() {
        assert_eq!(
            ImageRef::parse("nginx").unwrap(),
            ImageRef {
                registry: None,
                repository: "nginx".into(),
                tag: None,
                digest: None
            }
        );
    }

    #[test]
    fn docker_hub_name_with_tag_is_parsed() {
        let r = ImageRef::parse("nginx:1.25").unwrap();
        assert_eq!(r.registry, None);
        assert_eq!(r.repository, "nginx");
        assert_eq!(r.tag.as_deref(), Some("1.25"));
    }

    #[test]
    fn docker_hub_namespace_is_part_of_the_repository_not_a_registry() {
        let r = ImageRef::parse("datadog/agent:7").unwrap();
        assert_eq!(r.registry, None);
        assert_eq!(r.repository, "datadog/agent");
    }

    #[test]
    fn public_ecr_reference_is_parsed() {
        let r = ImageRef::parse("public.ecr.aws/docker/library/nginx:1").unwrap();
        assert_eq!(r.registry.as_deref(), Some("public.ecr.aws"));
        assert_eq!(r.repository, "docker/library/nginx");
        assert_eq!(r.tag.as_deref(), Some("1"));
    }

    #[test]
    fn private_ecr_reference_with_namespace_is_parsed() {
        let r = ImageRef::parse("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/shop:1.0.0")
            .unwrap();
        assert_eq!(
            r.registry.as_deref(),
            Some("123456789012.dkr.ecr.us-east-1.amazonaws.com")
        );
        assert_eq!(r.repository, "team/shop");
        assert_eq!(r.tag.as_deref(), Some("1.0.0"));
        assert_eq!(r.digest, None);
    }

    #[test]
    fn digest_reference_is_parsed() {
        let r = ImageRef::parse(&format!("{REGISTRY}/shop@{DIGEST}")).unwrap();
        assert_eq!(r.repository, "shop");
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(DIGEST));
    }

    #[test]
    fn tag_and_digest_reference_is_parsed() {
        let text = format!("{REGISTRY}/shop:1.0.0@{DIGEST}");
        let r = ImageRef::parse(&text).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1.0.0"));
        assert_eq!(r.digest.as_deref(), Some(DIGEST));
        assert_eq!(r.to_string(), text);
    }

    #[test]
    fn registry_with_port_is_not_mistaken_for_a_tag() {
        let r = ImageRef::parse("localhost:5000/shop:1").unwrap();
        assert_eq!(r.registry.as_deref(), Some("localhost:5000"));
        assert_eq!(r.repository, "shop");
        assert_eq!(r.tag.as_deref(), Some("1"));
        let r = ImageRef::parse("localhost/shop").unwrap();
        assert_eq!(r.registry.as_deref(), Some("localhost"));
        let r = ImageRef::parse("registry:5000/shop").unwrap();
        assert_eq!(r.registry.as_deref(), Some("registry:5000"));
        assert_eq!(r.tag, None);
    }

    #[test]
    fn malformed_references_are_rejected_with_the_reference_named() {
        for bad in [
            "",
            "shop:",
            "shop@sha256:abc",
            "Shop:1",
            "shop//x",
            "/shop",
            "shop/",
            "shop:1 ",
            "registry.example.com/",
            "shop:v1/x",
        ] {
            let err = ImageRef::parse(bad).expect_err(bad);
            assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn pushed_image_builds_the_ecr_registry_host() {
        let image = pushed();
        assert_eq!(image.registry, REGISTRY);
        assert_eq!(image.pinned(), format!("{REGISTRY}/shop@{DIGEST}"));
        assert_eq!(image.tagged(), format!("{REGISTRY}/shop:1.4.0"));
    }

    #[test]
    fn pushed_image_in_china_uses_the_china_domain() {
        let image = PushedImage::new("123456789012", "cn-north-1", "shop", "1", DIGEST).unwrap();
        assert_eq!(
            image.registry,
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"
        );
    }

    #[test]
    fn pushed_image_rejects_a_malformed_digest() {
        for bad in [
            "sha256:abc",
            "3f2a9c1b",
            "md5:00",
            &DIGEST.replace('3', "g"),
            "",
        ] {
            assert_eq!(
                PushedImage::new("123456789012", "eu-west-1", "shop", "1", bad),
                Err(ImageError::InvalidDigest { digest: bad.into() })
            );
        }
    }

    #[test]
    fn pushed_image_lowercases_an_uppercase_digest() {
        let upper = format!("sha256:{}", DIGEST["sha256:".len()..].to_ascii_uppercase());
        let image = PushedImage::new("123456789012", "eu-west-1", "shop", "1", &upper).unwrap();
        assert_eq!(image.digest, DIGEST);
    }

    #[test]
    fn pushed_image_rejects_bad_account_region_repository_and_tag() {
        assert!(matches!(
            PushedImage::new("12345", "eu-west-1", "shop", "1", DIGEST),
            Err(ImageError::InvalidRegistryId { .. })
        ));
        assert!(matches!(
            PushedImage::new("123456789012", "Europe", "shop", "1", DIGEST),
            Err(ImageError::InvalidRegion { .. })
        ));
        assert!(matches!(
            PushedImage::new("123456789012", "eu-west-1", "Shop", "1", DIGEST),
            Err(ImageError::InvalidRepository { .. })
        ));
        assert!(matches!(
            PushedImage::new("123456789012", "eu-west-1", "shop", "latest:1", DIGEST),
            Err(ImageError::InvalidTag { .. })
        ));
    }

    #[test]
    fn only_the_app_container_changes_and_to_the_pinned_digest() {
        let containers = vec![
            container("app", &format!("{REGISTRY}/shop:1.3.0")),
            container("datadog-agent", "public.ecr.aws/datadog/agent:7"),
            container("envoy", &format!("{REGISTRY}/envoy-proxy:1.29")),
            container("nginx", "nginx:1.25"),
        ];
        assert_eq!(
            plan_image_changes(&containers, &pushed()),
            vec![ImageChange {
                container: "app".into(),
                from: format!("{REGISTRY}/shop:1.3.0"),
                to: format!("{REGISTRY}/shop@{DIGEST}"),
            }]
        );
    }

    #[test]
    fn containers_are_matched_by_repository_not_by_name() {
        let containers = vec![
            container("shop", "nginx:1.25"),
            container("web", &format!("{REGISTRY}/shop:1")),
            container("worker", &format!("{REGISTRY}/shop:1")),
        ];
        let changed: Vec<String> = plan_image_changes(&containers, &pushed())
            .into_iter()
            .map(|c| c.container)
            .collect();
        assert_eq!(changed, vec!["web", "worker"]);
    }

    #[test]
    fn already_pinned_image_gets_re_pinned() {
        let from = format!("{REGISTRY}/shop:1.3.0@{OLD_DIGEST}");
        let changes = plan_image_changes(&[container("app", &from)], &pushed());
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].from, from);
        assert_eq!(changes[0].to, format!("{REGISTRY}/shop@{DIGEST}"));
    }

    #[test]
    fn registry_is_compared_case_insensitively() {
        let upper = format!("{}/shop:1", REGISTRY.to_ascii_uppercase());
        assert_eq!(
            plan_image_changes(&[container("app", &upper)], &pushed()).len(),
            1
        );
    }

    #[test]
    fn same_repository_in_another_account_or_region_is_untouched() {
        let containers = vec![
            container("a", "210987654321.dkr.ecr.eu-west-1.amazonaws.com/shop:1"),
            container("b", "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:1"),
            container("c", "shop:1"),
            container("d", &format!("{REGISTRY}/team/shop:1")),
        ];
        assert!(plan_image_changes(&containers, &pushed()).is_empty());
    }

    #[test]
    fn no_matching_container_means_no_change() {
        assert!(plan_image_changes(&[container("nginx", "nginx:1.25")], &pushed()).is_empty());
        assert!(plan_image_changes(&[], &pushed()).is_empty());
    }

    #[test]
    fn release_tags_keep_user_tags_and_add_ferry_tags() {
        let merged = release_tags(
            &tags(&[("team", "payments"), ("cost-center", "42")]),
            "shop/prod/3f2a9c1b7e40d5a1",
            "shop",
            "prod",
        )
        .unwrap();
        assert_eq!(merged.dropped, Vec::<String>::new());
        assert_eq!(
            merged.tags,
            tags(&[
                ("team", "payments"),
                ("cost-center", "42"),
                ("ferry:release", "shop/prod/3f2a9c1b7e40d5a1"),
                ("ferry:env", "shop/prod"),
            ])
        );
    }

    #[test]
    fn release_tags_replace_stale_ferry_tags() {
        let merged = release_tags(
            &tags(&[
                ("ferry:release", "shop/prod/0000000000000001"),
                ("team", "payments"),
                ("ferry:env", "shop/staging"),
                ("ferry:something-old", "x"),
            ]),
            "shop/prod/3f2a9c1b7e40d5a1",
            "shop",
            "prod",
        )
        .unwrap();
        assert_eq!(
            merged.tags,
            tags(&[
                ("team", "payments"),
                ("ferry:release", "shop/prod/3f2a9c1b7e40d5a1"),
                ("ferry:env", "shop/prod"),
            ])
        );
    }

    #[test]
    fn release_tags_fit_exactly_fifty() {
        let existing: Vec<(String, String)> =
            (0..48).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert_eq!(
            release_tags(&existing, "shop/prod/3f2a9c1b7e40d5a1", "shop", "prod")
                .unwrap()
                .tags
                .len(),
            50
        );
    }

    #[test]
    fn release_tags_over_fifty_are_refused_with_what_to_remove() {
        let existing: Vec<(String, String)> =
            (0..49).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        let err =
            release_tags(&existing, "shop/prod/3f2a9c1b7e40d5a1", "shop", "prod").unwrap_err();
        assert_eq!(
            err,
            ImageError::TooManyTags {
                count: 51,
                limit: 50
            }
        );
        assert!(
            err.to_string().contains("remove 1 of its own tags"),
            "{err}"
        );
    }

    #[test]
    fn release_tags_do_not_count_dropped_aws_tags_or_replaced_ferry_tags_against_the_limit() {
        let mut existing: Vec<(String, String)> =
            (0..48).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        existing.push(("aws:cloudformation:stack-name".into(), "shop".into()));
        existing.push(("ferry:release".into(), "old".into()));
        existing.push(("ferry:env".into(), "old".into()));
        let merged = release_tags(&existing, "shop/prod/3f2a9c1b7e40d5a1", "shop", "prod").unwrap();
        assert_eq!(merged.tags.len(), 50);
        assert_eq!(merged.dropped, ["aws:cloudformation:stack-name"]);
    }

    #[test]
    fn copy_drops_reserved_aws_tag_keys() {
        let merged = release_tags(
            &tags(&[
                ("aws:cloudformation:stack-name", "shop-prod"),
                ("team", "payments"),
                (
                    "aws:cloudformation:stack-id",
                    "arn:aws:cloudformation:eu-west-1:123456789012:stack/shop-prod/1",
                ),
                ("aws:cloudformation:logical-id", "ApiTaskDefinition"),
            ]),
            "shop/prod/3f2a9c1b7e40d5a1",
            "shop",
            "prod",
        )
        .unwrap();
        assert_eq!(
            merged.tags,
            tags(&[
                ("team", "payments"),
                ("ferry:release", "shop/prod/3f2a9c1b7e40d5a1"),
                ("ferry:env", "shop/prod"),
            ])
        );
        assert_eq!(
            merged.dropped,
            [
                "aws:cloudformation:stack-name",
                "aws:cloudformation:stack-id",
                "aws:cloudformation:logical-id"
            ]
        );
    }

    #[test]
    fn reserved_tag_keys_are_recognised_in_any_case() {
        let merged = release_tags(
            &tags(&[
                ("AWS:owner", "x"),
                ("Aws:Team", "x"),
                ("aWs:", "x"),
                ("team", "payments"),
            ]),
            "shop/prod/3f2a9c1b7e40d5a1",
            "shop",
            "prod",
        )
        .unwrap();
        assert_eq!(merged.dropped, ["AWS:owner", "Aws:Team", "aWs:"]);
        assert_eq!(merged.tags.len(), 3);
        assert!(!merged.tags.iter().any(|(k, _)| is_reserved_tag_key(k)));
    }

    #[test]
    fn keys_that_only_look_reserved_are_kept() {
        let own = tags(&[
            ("awsome", "1"),
            ("aws-team", "2"),
            ("aws_cost", "3"),
            ("aws", "4"),
            ("team:aws:x", "5"),
            ("ａｗｓ:wide", "6"),
            ("é:", "7"),
        ]);
        let merged = release_tags(&own, "shop/prod/3f2a9c1b7e40d5a1", "shop", "prod").unwrap();
        assert_eq!(merged.dropped, Vec::<String>::new());
        assert_eq!(merged.tags[..own.len()], own[..]);
    }

    #[test]
    fn docker_references_may_use_double_underscores_and_dash_runs() {
        assert_eq!(
            ImageRef::parse("my__image--x:1").unwrap().repository,
            "my__image--x"
        );
        assert!(ImageRef::parse("my___image").is_err());
        assert!(ImageRef::parse("my._image").is_err());
    }

    #[test]
    fn repository_names_follow_ecr_rules() {
        for good in ["shop", "team/shop", "my-app.web_1", "a1"] {
            assert_eq!(validate_repository_name(good), Ok(()), "{good}");
        }
        for bad in [
            "s",
            "Shop",
            "shop/",
            "/shop",
            "team//shop",
            "shop--x",
            "-shop",
            "shop!",
            &"a".repeat(257),
        ] {
            assert!(validate_repository_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn registry_hosts_are_dns_names_with_an_optional_port() {
        for good in [
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "registry.example.com:5000",
            "localhost:5000",
            "my-registry.local",
        ] {
            assert!(is_registry_host(good), "{good}");
        }
        for bad in [
            "",
            ":5000",
            "registry..example.com",
            "-registry.example.com",
            "registry-.example.com",
            "regis_try.example.com",
            "registry.example.com:",
            "registry.example.com:123456",
            "registry.example.com:50a0",
        ] {
            assert!(!is_registry_host(bad), "{bad}");
        }
    }

    #[test]
    fn regions_are_lowercase_words_and_a_number() {
        for good in [
            "eu-west-1",
            "us-gov-west-1",
            "cn-north-1",
            "ap-southeast-12",
        ] {
            assert!(is_region(good), "{good}");
        }
        for bad in [
            "",
            "eu-west",
            "eu--1",
            "EU-west-1",
            "eu-west-x",
            "eu-west-1-",
            "euwest1",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }

    #[test]
    fn repository_names_of_256_characters_are_accepted_and_257_refused() {
        assert!(validate_repository_name(&"r".repeat(256)).is_ok());
        assert!(validate_repository_name(&"r".repeat(257))
            .is_err_and(|why| why.contains("2 to 256 characters")));
        assert!(validate_repository_name("r").is_err());
    }

    #[test]
    fn an_image_reference_with_whitespace_or_a_control_character_is_refused() {
        for bad in ["shop :1.0.0", "shop:1.0.0\n", "sh\u{7}op:1.0.0"] {
            let err = ImageRef::parse(bad).expect_err(bad);
            assert!(err.to_string().contains("whitespace"), "{err}");
        }
    }
}
