//! Which image tags an environment accepts.
//!
//! A tag is deployed only if it is a valid ECR tag, is not mutable (`latest` is always
//! mutable, whatever the configuration says), matches the environment's policy as a
//! whole, and — for a semver policy — does not go below what the environment already
//! runs or is rolling out.

use std::cmp::Ordering;
use std::fmt;

/// The longest tag ECR accepts.
pub const MAX_TAG_LEN: usize = 128;

/// The tag every environment refuses, whatever its configuration.
pub const ALWAYS_MUTABLE: &str = "latest";

/// An environment's tag policy. Build it with [`TagPolicy::glob`], [`TagPolicy::regex`]
/// or [`TagPolicy::semver`], which validate the pattern (and anchor a regex).
#[derive(Debug, Clone)]
pub enum TagPolicy {
    /// `*` matches any run of characters, `?` exactly one; the whole tag must match.
    Glob(String),
    /// Anchored by [`TagPolicy::regex`]; the whole tag must match.
    Regex(regex_lite::Regex),
    /// The tag must be a semantic version inside this range.
    Semver(semver::VersionReq),
}

/// A tag policy pattern that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagPolicyError {
    #[error("glob pattern is empty; write one such as \"sha-*\" or \"v*\"")]
    EmptyGlob,
    #[error(
        "glob pattern `{pattern}` contains `{character}`, which no image tag can contain; \
         use only letters, digits, `_`, `.`, `-` and the wildcards `*` and `?`"
    )]
    GlobCharacter { pattern: String, character: char },
    #[error("regex pattern is empty; write one such as \"^v[0-9]+$\"")]
    EmptyRegex,
    #[error("regex pattern `{pattern}` does not compile: {error}")]
    Regex { pattern: String, error: String },
    #[error("semver range is empty; write one such as \">=1.0.0\" or \">=1.0.0, <2\"")]
    EmptySemver,
    #[error(
        "semver range `{pattern}` does not parse ({error}); write one such as \">=1.0.0, <2\""
    )]
    Semver { pattern: String, error: String },
}

/// Why a tag is not deployed to an environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "tag `{tag}` is mutable; ferry deploys only immutable tags (push a version or a commit SHA)"
    )]
    MutableTag { tag: String },
    #[error("tag `{tag}` does not match the environment's tag policy {policy}")]
    NoMatch { tag: String, policy: String },
    #[error(
        "tag `{tag}` is not a semantic version (MAJOR.MINOR.PATCH), which the policy {policy} requires"
    )]
    NotAVersion { tag: String, policy: String },
    #[error(
        "tag `{tag}` is lower than `{current}`, which the environment already runs or is rolling out; \
         ferry never downgrades a semver environment (roll back instead)"
    )]
    Downgrade { tag: String, current: String },
    #[error("tag `{tag}` is not a valid image tag: {why}")]
    InvalidTag { tag: String, why: String },
}

impl PartialEq for TagPolicy {
    /// Two policies are equal when they are of the same kind with the same pattern text.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (TagPolicy::Glob(a), TagPolicy::Glob(b)) => a == b,
            (TagPolicy::Regex(a), TagPolicy::Regex(b)) => a.as_str() == b.as_str(),
            (TagPolicy::Semver(a), TagPolicy::Semver(b)) => a.to_string() == b.to_string(),
            _ => false,
        }
    }
}

impl Eq for TagPolicy {}

impl fmt::Display for TagPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

const ANCHOR_START: &str = "^(?:";
const ANCHOR_END: &str = ")$";

impl TagPolicy {
    /// A glob policy: `*` and `?` wildcards, matched against the whole tag.
    pub fn glob(pattern: &str) -> Result<Self, TagPolicyError> {
        if pattern.is_empty() {
            return Err(TagPolicyError::EmptyGlob);
        }
        if let Some(character) = pattern
            .chars()
            .find(|&c| !(is_tag_char(c) || c == '*' || c == '?'))
        {
            return Err(TagPolicyError::GlobCharacter {
                pattern: pattern.to_owned(),
                character,
            });
        }
        Ok(TagPolicy::Glob(pattern.to_owned()))
    }

    /// A regex policy. The pattern is anchored (`^(?:pattern)$`), so it must match the
    /// whole tag even if it was written without `^` and `$`.
    pub fn regex(pattern: &str) -> Result<Self, TagPolicyError> {
        if pattern.is_empty() {
            return Err(TagPolicyError::EmptyRegex);
        }
        // Compile the pattern on its own first so an error points at the user's text,
        // not at the anchoring wrapper.
        regex_lite::Regex::new(pattern).map_err(|e| TagPolicyError::Regex {
            pattern: pattern.to_owned(),
            error: e.to_string(),
        })?;
        let anchored = format!("{ANCHOR_START}{pattern}{ANCHOR_END}");
        regex_lite::Regex::new(&anchored)
            .map(TagPolicy::Regex)
            .map_err(|e| TagPolicyError::Regex {
                pattern: pattern.to_owned(),
                error: e.to_string(),
            })
    }

    /// A semver range policy, e.g. `>=1.0.0, <2`.
    pub fn semver(pattern: &str) -> Result<Self, TagPolicyError> {
        if pattern.trim().is_empty() {
            return Err(TagPolicyError::EmptySemver);
        }
        semver::VersionReq::parse(pattern)
            .map(TagPolicy::Semver)
            .map_err(|e| TagPolicyError::Semver {
                pattern: pattern.to_owned(),
                error: e.to_string(),
            })
    }

    /// The policy as a person would write it, e.g. `semver ">=1.0.0"`.
    pub fn describe(&self) -> String {
        match self {
            TagPolicy::Glob(pattern) => format!("glob \"{pattern}\""),
            TagPolicy::Regex(regex) => {
                let text = regex.as_str();
                let shown = text
                    .strip_prefix(ANCHOR_START)
                    .and_then(|t| t.strip_suffix(ANCHOR_END))
                    .unwrap_or(text);
                format!("regex \"{shown}\"")
            }
            TagPolicy::Semver(req) => format!("semver \"{req}\""),
        }
    }

    /// Whether `tag` may be deployed.
    ///
    /// `mutable_tags` are refused case-insensitively (`latest` is refused even when the
    /// list omits it). `floor` is the tag the environment runs or is rolling out now
    /// (`None` for a first release); under a semver policy a tag below it is a
    /// downgrade. A floor that is not a version is ignored.
    pub fn check(
        &self,
        tag: &str,
        mutable_tags: &[String],
        floor: Option<&str>,
    ) -> Result<(), Refusal> {
        validate_tag(tag).map_err(|why| Refusal::InvalidTag {
            tag: tag.to_owned(),
            why,
        })?;
        if is_mutable(tag, mutable_tags) {
            return Err(Refusal::MutableTag {
                tag: tag.to_owned(),
            });
        }
        let no_match = || Refusal::NoMatch {
            tag: tag.to_owned(),
            policy: self.describe(),
        };
        match self {
            TagPolicy::Glob(pattern) => {
                if glob_matches(pattern, tag) {
                    Ok(())
                } else {
                    Err(no_match())
                }
            }
            TagPolicy::Regex(regex) => {
                // Whole-tag match only, even for a regex built without the anchoring
                // constructor: a partial match is never enough.
                match regex.find(tag) {
                    Some(m) if m.start() == 0 && m.end() == tag.len() => Ok(()),
                    _ => Err(no_match()),
                }
            }
            TagPolicy::Semver(req) => {
                let Some(version) = parse_version(tag) else {
                    return Err(Refusal::NotAVersion {
                        tag: tag.to_owned(),
                        policy: self.describe(),
                    });
                };
                if !req.matches(&version) {
                    return Err(no_match());
                }
                if let Some((current, current_version)) =
                    floor.and_then(|f| parse_version(f).map(|v| (f, v)))
                {
                    if precedence(&version, &current_version) == Ordering::Less {
                        return Err(Refusal::Downgrade {
                            tag: tag.to_owned(),
                            current: current.to_owned(),
                        });
                    }
                }
                Ok(())
            }
        }
    }
}

/// Whether `tag` is mutable: `latest` or one of `mutable_tags`, ignoring case.
pub fn is_mutable(tag: &str, mutable_tags: &[String]) -> bool {
    tag.eq_ignore_ascii_case(ALWAYS_MUTABLE)
        || mutable_tags.iter().any(|m| tag.eq_ignore_ascii_case(m))
}

/// A strict semantic version: `MAJOR.MINOR.PATCH[-pre][+build]`, with an optional
/// leading `v`. `1.2`, `1234567` (a numeric commit SHA), `deadbeef` and `01.2.3`
/// (leading zero) are not versions.
pub fn parse_version(tag: &str) -> Option<semver::Version> {
    let text = tag.strip_prefix('v').unwrap_or(tag);
    semver::Version::parse(text).ok()
}

/// Checks that `tag` is a valid ECR image tag: 1 to 128 characters of letters, digits,
/// `_`, `.` and `-`, starting with a letter, a digit or `_`. The error says what is wrong.
pub fn validate_tag(tag: &str) -> Result<(), String> {
    let Some(first) = tag.chars().next() else {
        return Err("it is empty".to_owned());
    };
    if tag.len() > MAX_TAG_LEN {
        return Err(format!(
            "it is {} characters long; ECR allows at most {MAX_TAG_LEN}",
            tag.len()
        ));
    }
    if let Some(c) = tag.chars().find(|&c| !is_tag_char(c)) {
        return Err(format!(
            "it contains `{c}`; a tag may contain only letters, digits, `_`, `.` and `-`"
        ));
    }
    if !(first.is_ascii_alphanumeric() || first == '_') {
        return Err(format!(
            "it starts with `{first}`; a tag must start with a letter, a digit or `_`"
        ));
    }
    Ok(())
}

fn is_tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Semver precedence: build metadata does not order versions.
fn precedence(a: &semver::Version, b: &semver::Version) -> Ordering {
    (a.major, a.minor, a.patch, &a.pre).cmp(&(b.major, b.minor, b.patch, &b.pre))
}

/// Whole-string glob match with `*` (any run, possibly empty) and `?` (one character).
fn glob_matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    // Where the last `*` was, and how much of the text it has swallowed so far.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> Vec<String> {
        Vec::new()
    }

    fn semver(range: &str) -> TagPolicy {
        TagPolicy::semver(range).unwrap()
    }

    #[test]
    fn mutable_tag_latest_is_always_refused() {
        for policy in [
            TagPolicy::glob("*").unwrap(),
            TagPolicy::regex(".*").unwrap(),
        ] {
            assert_eq!(
                policy.check("latest", &none(), None),
                Err(Refusal::MutableTag {
                    tag: "latest".into()
                })
            );
        }
    }

    #[test]
    fn mutable_tags_are_refused_whatever_their_case() {
        let policy = TagPolicy::glob("*").unwrap();
        for tag in ["LATEST", "Latest", "laTeSt"] {
            assert!(matches!(
                policy.check(tag, &none(), None),
                Err(Refusal::MutableTag { .. })
            ));
        }
        let extras = vec!["main".to_owned()];
        assert!(matches!(
            policy.check("MAIN", &extras, None),
            Err(Refusal::MutableTag { .. })
        ));
    }

    #[test]
    fn configured_extra_mutable_tag_is_refused() {
        let policy = TagPolicy::glob("*").unwrap();
        let extras = vec!["stable".to_owned(), "main".to_owned()];
        assert_eq!(
            policy.check("stable", &extras, None),
            Err(Refusal::MutableTag {
                tag: "stable".into()
            })
        );
        assert_eq!(policy.check("stable-2", &extras, None), Ok(()));
    }

    #[test]
    fn mutable_refusal_tells_the_user_to_push_a_version_or_sha() {
        let err = TagPolicy::glob("*")
            .unwrap()
            .check("latest", &none(), None)
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`latest` is mutable"), "{text}");
        assert!(text.contains("push a version or a commit SHA"), "{text}");
    }

    #[test]
    fn glob_matches_whole_tag_only() {
        let policy = TagPolicy::glob("sha-*").unwrap();
        assert_eq!(policy.check("sha-3f2a9c1", &none(), None), Ok(()));
        assert_eq!(
            policy.check("feature-sha-3f2a9c1", &none(), None),
            Err(Refusal::NoMatch {
                tag: "feature-sha-3f2a9c1".into(),
                policy: "glob \"sha-*\"".into()
            })
        );
        let exact = TagPolicy::glob("release").unwrap();
        assert!(exact.check("release-1", &none(), None).is_err());
        assert!(exact.check("pre-release", &none(), None).is_err());
        assert_eq!(exact.check("release", &none(), None), Ok(()));
    }

    #[test]
    fn glob_question_mark_matches_exactly_one_character() {
        let policy = TagPolicy::glob("v?").unwrap();
        assert_eq!(policy.check("v1", &none(), None), Ok(()));
        assert!(policy.check("v12", &none(), None).is_err());
        assert!(policy.check("v", &none(), None).is_err());
    }

    #[test]
    fn glob_star_backtracks_across_repeated_text() {
        let policy = TagPolicy::glob("*-rc-*-final").unwrap();
        assert_eq!(policy.check("a-rc-b-rc-c-final", &none(), None), Ok(()));
        assert!(policy.check("a-rc-b-final-x", &none(), None).is_err());
        assert!(glob_matches("**", ""));
        assert!(glob_matches("a*b*c", "aXXbYYc"));
        assert!(!glob_matches("a*b*c", "aXXbYY"));
    }

    #[test]
    fn empty_glob_is_rejected() {
        assert_eq!(TagPolicy::glob(""), Err(TagPolicyError::EmptyGlob));
    }

    #[test]
    fn glob_with_a_character_no_tag_can_hold_is_rejected() {
        let err = TagPolicy::glob("release/*").unwrap_err();
        assert!(matches!(
            err,
            TagPolicyError::GlobCharacter { character: '/', .. }
        ));
        assert!(err.to_string().contains("release/*"));
    }

    #[test]
    fn regex_unanchored_input_is_still_anchored() {
        let policy = TagPolicy::regex("v[0-9]+").unwrap();
        assert_eq!(policy.check("v12", &none(), None), Ok(()));
        assert!(policy.check("v12-hotfix", &none(), None).is_err());
        assert!(policy.check("xv12", &none(), None).is_err());
    }

    #[test]
    fn regex_alternation_is_anchored_as_a_whole() {
        // Naive `^a|b$` anchoring would accept "b-anything" via the first branch.
        let policy = TagPolicy::regex("main-.*|v[0-9]+").unwrap();
        assert_eq!(policy.check("v3", &none(), None), Ok(()));
        assert_eq!(policy.check("main-abc", &none(), None), Ok(()));
        assert!(policy.check("v3-main-abc", &none(), None).is_err());
        assert!(policy.check("xmain-abc", &none(), None).is_err());
    }

    #[test]
    fn regex_already_anchored_still_works() {
        let policy = TagPolicy::regex("^v[0-9]+$").unwrap();
        assert_eq!(policy.check("v7", &none(), None), Ok(()));
        assert!(policy.check("v7a", &none(), None).is_err());
    }

    #[test]
    fn regex_built_without_the_constructor_still_needs_a_whole_match() {
        let policy = TagPolicy::Regex(regex_lite::Regex::new("v[0-9]+").unwrap());
        assert_eq!(policy.check("v12", &none(), None), Ok(()));
        assert!(policy.check("v12-hotfix", &none(), None).is_err());
    }

    #[test]
    fn regex_that_does_not_compile_is_rejected_with_its_pattern() {
        let err = TagPolicy::regex("v[0-9").unwrap_err();
        assert!(matches!(err, TagPolicyError::Regex { .. }));
        assert!(err.to_string().contains("v[0-9"));
        assert_eq!(TagPolicy::regex(""), Err(TagPolicyError::EmptyRegex));
    }

    #[test]
    fn describe_shows_the_pattern_as_written() {
        assert_eq!(semver(">=1.0.0").describe(), "semver \">=1.0.0\"");
        assert_eq!(
            TagPolicy::regex("^v[0-9]+$").unwrap().describe(),
            "regex \"^v[0-9]+$\""
        );
        assert_eq!(
            TagPolicy::glob("sha-*").unwrap().describe(),
            "glob \"sha-*\""
        );
    }

    #[test]
    fn policies_are_equal_by_kind_and_pattern_text() {
        assert_eq!(
            TagPolicy::regex("v.*").unwrap(),
            TagPolicy::regex("v.*").unwrap()
        );
        assert_ne!(
            TagPolicy::regex("v.*").unwrap(),
            TagPolicy::regex("w.*").unwrap()
        );
        assert_eq!(semver(">=1.0.0, <2"), semver(">=1.0.0, <2"));
        assert_ne!(
            TagPolicy::glob("v*").unwrap(),
            TagPolicy::regex("v*").unwrap()
        );
    }

    #[test]
    fn semver_tag_inside_range_is_accepted() {
        assert_eq!(semver(">=1.0.0, <2").check("1.4.2", &none(), None), Ok(()));
    }

    #[test]
    fn semver_tag_outside_range_is_refused() {
        assert_eq!(
            semver(">=1.0.0, <2").check("2.0.0", &none(), None),
            Err(Refusal::NoMatch {
                tag: "2.0.0".into(),
                policy: "semver \">=1.0.0, <2\"".into()
            })
        );
    }

    #[test]
    fn semver_leading_v_is_accepted() {
        assert_eq!(semver(">=1.0.0").check("v1.2.3", &none(), None), Ok(()));
        assert_eq!(parse_version("v1.2.3"), Some(semver::Version::new(1, 2, 3)));
    }

    #[test]
    fn semver_downgrade_is_refused() {
        let err = semver(">=1.0.0")
            .check("1.2.3", &none(), Some("1.3.0"))
            .unwrap_err();
        assert_eq!(
            err,
            Refusal::Downgrade {
                tag: "1.2.3".into(),
                current: "1.3.0".into()
            }
        );
        assert!(err.to_string().contains("roll back instead"));
    }

    #[test]
    fn semver_downgrade_is_refused_across_v_prefix_spellings() {
        assert!(matches!(
            semver("*").check("1.9.9", &none(), Some("v2.0.0")),
            Err(Refusal::Downgrade { .. })
        ));
    }

    #[test]
    fn semver_release_is_not_a_downgrade_from_its_own_prerelease() {
        assert_eq!(
            semver(">=1.2.0-0").check("1.2.0", &none(), Some("1.2.0-rc.1")),
            Ok(())
        );
        assert!(matches!(
            semver(">=1.2.0-0").check("1.2.0-rc.1", &none(), Some("1.2.0")),
            Err(Refusal::Downgrade { .. })
        ));
    }

    #[test]
    fn semver_equal_to_floor_is_allowed() {
        assert_eq!(
            semver(">=1.0.0").check("1.3.0", &none(), Some("1.3.0")),
            Ok(())
        );
        assert_eq!(
            semver(">=1.0.0").check("v1.3.0", &none(), Some("1.3.0")),
            Ok(())
        );
    }

    #[test]
    fn semver_upgrade_over_floor_is_allowed() {
        assert_eq!(
            semver(">=1.0.0").check("1.10.0", &none(), Some("1.9.0")),
            Ok(())
        );
    }

    #[test]
    fn floor_that_is_not_a_version_is_ignored() {
        assert_eq!(
            semver(">=1.0.0").check("1.0.0", &none(), Some("sha-3f2a9c1")),
            Ok(())
        );
    }

    #[test]
    fn floor_does_not_apply_to_glob_or_regex_policies() {
        assert_eq!(
            TagPolicy::glob("*")
                .unwrap()
                .check("1.0.0", &none(), Some("2.0.0")),
            Ok(())
        );
        assert_eq!(
            TagPolicy::regex(".*")
                .unwrap()
                .check("1.0.0", &none(), Some("2.0.0")),
            Ok(())
        );
    }

    #[test]
    fn numeric_git_sha_is_not_a_version() {
        for sha in ["1234567", "12345678901234567890", "0123456"] {
            assert_eq!(parse_version(sha), None, "{sha}");
            assert_eq!(
                semver("*").check(sha, &none(), None),
                Err(Refusal::NotAVersion {
                    tag: sha.into(),
                    policy: "semver \"*\"".into()
                })
            );
        }
    }

    #[test]
    fn incomplete_or_zero_padded_versions_are_not_versions() {
        for tag in ["1.2", "1", "01.2.3", "1.02.3", "deadbeef", "v", "V1.2.3"] {
            assert_eq!(parse_version(tag), None, "{tag}");
        }
        assert!(matches!(
            semver(">=1.0.0").check("01.2.3", &none(), None),
            Err(Refusal::NotAVersion { .. })
        ));
    }

    #[test]
    fn prerelease_matches_a_range_only_when_the_range_names_that_prerelease_line() {
        assert!(matches!(
            semver(">=1.0.0").check("1.1.0-rc.1", &none(), None),
            Err(Refusal::NoMatch { .. })
        ));
        assert_eq!(
            semver(">=1.1.0-rc.0").check("1.1.0-rc.1", &none(), None),
            Ok(())
        );
        assert!(matches!(
            semver(">=1.1.0-rc.0").check("1.2.0-rc.1", &none(), None),
            Err(Refusal::NoMatch { .. })
        ));
    }

    #[test]
    fn semver_range_that_does_not_parse_is_rejected() {
        let err = TagPolicy::semver(">=one").unwrap_err();
        assert!(matches!(err, TagPolicyError::Semver { .. }));
        assert!(err.to_string().contains(">=one"));
        assert_eq!(TagPolicy::semver(" "), Err(TagPolicyError::EmptySemver));
    }

    #[test]
    fn tag_with_invalid_characters_is_refused() {
        let policy = TagPolicy::glob("*").unwrap();
        for tag in ["v1/2", "v1:2", "v1 2", "v1+build", "é"] {
            assert!(
                matches!(
                    policy.check(tag, &none(), None),
                    Err(Refusal::InvalidTag { .. })
                ),
                "{tag}"
            );
        }
    }

    #[test]
    fn tag_starting_with_dot_or_dash_is_refused() {
        let policy = TagPolicy::glob("*").unwrap();
        let err = policy.check("-v1", &none(), None).unwrap_err();
        assert!(err.to_string().contains("must start with"), "{err}");
        assert!(policy.check(".v1", &none(), None).is_err());
        assert_eq!(policy.check("_v1", &none(), None), Ok(()));
    }

    #[test]
    fn empty_and_overlong_tags_are_refused() {
        let policy = TagPolicy::glob("*").unwrap();
        assert!(matches!(
            policy.check("", &none(), None),
            Err(Refusal::InvalidTag { .. })
        ));
        let longest = "a".repeat(128);
        assert_eq!(policy.check(&longest, &none(), None), Ok(()));
        let err = policy.check(&"a".repeat(129), &none(), None).unwrap_err();
        assert!(err.to_string().contains("at most 128"), "{err}");
    }

    #[test]
    fn invalid_tag_is_reported_before_policy_mismatch() {
        assert!(matches!(
            semver(">=1.0.0").check("1.0.0/evil", &none(), None),
            Err(Refusal::InvalidTag { .. })
        ));
    }

    #[test]
    fn policies_are_equal_when_kind_and_pattern_are() {
        let glob = |p: &str| TagPolicy::glob(p).expect("a glob");
        assert_eq!(glob("sha-*"), glob("sha-*"));
        assert_ne!(glob("sha-*"), glob("v*"));
        assert_ne!(glob("v1"), TagPolicy::regex("v1").expect("a regex"));
        assert_eq!(semver(">=1.0.0"), semver(">=1.0.0"));
        assert_ne!(semver(">=1.0.0"), semver(">=2.0.0"));
    }

    #[test]
    fn a_policy_displays_as_it_describes_itself() {
        let policy = TagPolicy::glob("sha-*").expect("a glob");
        assert_eq!(policy.to_string(), "glob \"sha-*\"");
    }
}
