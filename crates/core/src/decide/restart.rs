//! A secret got a new current value: which lanes restart. Tasks read their
//! secrets when they start, so a service keeps the old value until its tasks
//! are replaced; a restart force-deploys the known-good revisions as a release
//! of its own (watched, baked, rolled back like any other).

use crate::ports::LaneHead;

/// The Secrets Manager secret named by a `secrets[].valueFrom` reference, if
/// it is one: `arn:aws:secretsmanager:<region>:<account>:secret:<name>[-<6 chars>][:<json key>:<stage>:<version>]`.
/// (A parameter-store reference is not, and a bare name cannot be matched to an ARN.)
pub fn secret_of(reference: &str) -> Option<&str> {
    let rest = reference.strip_prefix("arn:")?;
    let mut parts = rest.splitn(6, ':');
    let (_partition, service, _region, _account, kind) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if service != "secretsmanager" || kind != "secret" {
        return None;
    }
    parts.next()?.split(':').next().filter(|n| !n.is_empty())
}

/// Whether `reference` names the secret `name` (its friendly name, as the
/// `Secret Label Updated` event gives it): the ARN's name part is the name, or
/// the name followed by the six random characters Secrets Manager appends.
pub fn references_secret(reference: &str, name: &str) -> bool {
    let Some(in_arn) = secret_of(reference) else {
        return false;
    };
    in_arn == name
        || in_arn
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|suffix| {
                suffix.len() == 6 && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
            })
}

/// Whether a lane can restart now, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartPlan {
    /// Restart the known-good release's revisions.
    Restart,
    /// Nothing to restart, or a release in flight will start new tasks anyway.
    Skip(String),
}

pub fn decide_restart(head: &LaneHead) -> RestartPlan {
    if head.rolling_back.is_some() {
        return RestartPlan::Skip(
            "a rollback is under way; its tasks start with the new value".into(),
        );
    }
    if let Some(in_flight) = &head.in_flight {
        return RestartPlan::Skip(format!(
            "release {} is in flight; its new tasks start with the new value",
            in_flight.id
        ));
    }
    if head.history.is_empty() {
        return RestartPlan::Skip("no known-good release to restart".into());
    }
    RestartPlan::Restart
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{KnownGoodRelease, ReleasePointer};
    use crate::release::ReleaseId;

    const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop/db-AbC123";

    #[test]
    fn a_reference_names_a_secret_by_full_or_partial_arn_with_or_without_a_json_key() {
        assert!(references_secret(ARN, "shop/db"));
        assert!(references_secret(&format!("{ARN}:password::"), "shop/db"));
        assert!(references_secret(
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop/db",
            "shop/db"
        ));
        assert!(!references_secret(ARN, "shop/db-AbC"));
        assert!(!references_secret(ARN, "shop"));
        assert!(!references_secret(
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop/dbx-AbC123",
            "shop/db"
        ));
        assert!(!references_secret(
            "arn:aws:ssm:eu-west-1:123456789012:parameter/shop/db",
            "shop/db"
        ));
        assert!(!references_secret("shop/db", "shop/db"));
    }

    #[test]
    fn only_an_idle_lane_with_a_known_good_release_restarts() {
        let pointer = ReleasePointer {
            id: ReleaseId::derive("shop", "prod", "sha256:ab"),
            tag: "1.0.0".into(),
            digest: "sha256:ab".into(),
        };
        let mut head = LaneHead::default();
        assert!(matches!(decide_restart(&head), RestartPlan::Skip(_)));
        head.history.push(KnownGoodRelease {
            id: pointer.id.clone(),
            tag: pointer.tag.clone(),
            digest: pointer.digest.clone(),
            task_definitions: Default::default(),
        });
        assert_eq!(decide_restart(&head), RestartPlan::Restart);
        head.in_flight = Some(pointer);
        assert!(matches!(decide_restart(&head), RestartPlan::Skip(r) if r.contains("in flight")));
    }
}
