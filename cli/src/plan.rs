//! `ferry plan`: what a deploy would do, with every read a release makes and
//! none of its writes. The verdicts are core's own: the tag policy,
//! `decide_claim`, `preflight` and `secrets_verdict`; the copies are the ECS
//! adapter's `registration_input`.

use ferry_aws::ecs::{registration_input, EcsTaskDefinition};
use ferry_core::config::Environment;
use ferry_core::decide::push::{
    decide_claim, operator_target, preflight, requested_repository, secrets_verdict, ClaimPlan,
    FamilyCopy, Preflight, PreflightReads, TargetRefusal,
};
use ferry_core::image::release_tags;
use ferry_core::ports::{
    Ecs, ImageSelector, Ledger, Parameters, Registry, SecretsCheck, ServiceView, TaskDefinitionView,
};
use serde::Serialize;

use crate::args::PlanArgs;
use crate::aws::Aws;
use crate::diff::{diff, render, FieldChange};
use crate::error::{CliError, Exit};

#[derive(Debug, Serialize)]
pub struct FamilyPlan {
    pub family: String,
    /// The revision it is copied from.
    pub base: String,
    /// The services that run it (empty for the migration and the smoke test).
    pub services: Vec<String>,
    pub role: &'static str,
    pub changes: Vec<FieldChange>,
}

#[derive(Debug, Serialize)]
pub struct Plan {
    pub app: String,
    pub environment: String,
    pub repository: String,
    pub release: String,
    pub tag: String,
    pub digest: String,
    /// `accepted`, or the refusal.
    pub tag_policy: String,
    /// What ferry-deploy would do with the request: claim, hold, refuse, ...
    pub decision: String,
    pub services: Vec<String>,
    pub secret_references: Vec<String>,
    pub problems: Vec<String>,
    pub families: Vec<FamilyPlan>,
    pub parameter: ParameterPlan,
    pub migration: Option<String>,
    pub smoke_test: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ParameterPlan {
    pub name: String,
    pub from: Option<String>,
    pub to: String,
}

impl Plan {
    pub fn exit(&self) -> Exit {
        let goes = self.problems.is_empty()
            && self.tag_policy == "accepted"
            && self.decision.starts_with("claim");
        if goes {
            Exit::Ok
        } else {
            Exit::Bad
        }
    }
}

fn claim_summary(plan: &ClaimPlan) -> String {
    match plan {
        ClaimPlan::Refuse(reason) => format!("refuse: {reason}"),
        ClaimPlan::Duplicate(state) => format!("nothing to do: the release is {state} already"),
        ClaimPlan::Hold(held) => format!("hold {}: the lane is frozen after a rollback", held.tag),
        ClaimPlan::Claim { supersedes, .. } => match supersedes {
            Some(old) => format!("claim a new release, superseding {old}"),
            None => "claim a new release".to_owned(),
        },
        ClaimPlan::Resume(record) => {
            format!("resume the interrupted release (it is {})", record.state)
        }
    }
}

fn repository_of(env: &Environment, requested: Option<&str>) -> Result<String, CliError> {
    requested_repository(env, requested, "--repository").map_err(CliError::Usage)
}

fn family_plan(
    copy: &FamilyCopy<EcsTaskDefinition>,
    role: &'static str,
    release: &str,
    env: &Environment,
) -> Result<FamilyPlan, CliError> {
    let own = copy.base.tags();
    let tags = release_tags(&own, release, &env.app, &env.name)
        .map_err(|e| CliError::Usage(format!("{}: {e}", copy.base.arn())))?;
    let render_input = |changes, tags: &[(String, String)]| {
        registration_input(&copy.base.definition, changes, tags)
            .map(|input| format!("{input:#?}"))
            .map_err(|e| CliError::Usage(format!("{} cannot be copied: {e}", copy.base.arn())))
    };
    let before = render_input(&[], &own)?;
    let after = render_input(&copy.changes, &tags.tags)?;
    Ok(FamilyPlan {
        family: copy.base.family().to_owned(),
        base: copy.base.arn().to_owned(),
        services: copy.services.clone(),
        role,
        changes: diff(&before, &after),
    })
}

pub async fn plan(aws: &Aws, args: &PlanArgs) -> Result<Plan, CliError> {
    let config = aws.config().await?;
    let env = config
        .environment(&args.lane.app, &args.lane.env)
        .ok_or_else(|| {
            CliError::NotFound(format!("ferry's config has no environment {}", args.lane))
        })?;
    let repository = repository_of(env, args.repository.as_deref())?;
    let registry = aws.registry();
    let selector = match (&args.image.tag, &args.image.digest) {
        (Some(tag), _) => ImageSelector::Tag(tag.clone()),
        (None, Some(digest)) => ImageSelector::Digest(digest.clone()),
        (None, None) => return Err(CliError::Usage("give --tag or --digest".to_owned())),
    };
    let resolved = registry
        .resolve(&repository, &selector)
        .await
        .map_err(|e| {
            CliError::aws(
                format!("looking up the image in ECR repository {repository}"),
                e,
            )
        })?
        .ok_or_else(|| {
            CliError::NotFound(format!(
                "image {selector:?} does not exist in ECR repository `{repository}`"
            ))
        })?;
    let target = operator_target(
        env,
        &repository,
        &aws.region(),
        args.image.tag.as_deref(),
        &resolved,
    )
    .map_err(|refusal| match refusal {
        TargetRefusal::Untagged(m) => CliError::NotFound(m),
        TargetRefusal::BadImage(m) => CliError::Usage(m),
    })?;
    let tag = target.image.tag.clone();
    let tag_policy = match env.tag_policy.check(&tag, &env.mutable_tags, None) {
        Ok(()) => "accepted".to_owned(),
        Err(refusal) => refusal.to_string(),
    };

    // Round trip 1 of a release: ledger, services, one-off families, the image.
    let table = aws.table().await?;
    let ledger = aws.ledger(&table);
    let ecs = aws.ecs();
    let names = target.service_names();
    let latest = |family: Option<String>| {
        let ecs = &ecs;
        async move {
            match family {
                Some(family) => Some(ecs.describe_task_definition(&family).await),
                None => None,
            }
        }
    };
    let id = target.id();
    let lane = target.lane();
    let by_digest = ImageSelector::Digest(resolved.digest.clone());
    let (read, services, migration, verify, by_digest) = futures_util::join!(
        ledger.read(&lane, &id),
        ecs.describe_services(&env.cluster, &names),
        latest(target.migration().map(|m| m.task_family.clone())),
        latest(target.verify().map(|m| m.task_family.clone())),
        registry.resolve(&repository, &by_digest),
    );
    let (head, existing) =
        read.map_err(|e| CliError::aws(format!("reading lane {}", target.lane()), e))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let decision = claim_summary(&decide_claim(
        &target,
        &head.unwrap_or_default(),
        existing.as_ref(),
        now,
    ));
    let services = services.map_err(|e| {
        CliError::aws(
            format!("describing the services of cluster {}", env.cluster),
            e,
        )
    })?;
    // Round trip 2: what every service runs.
    let arns: std::collections::BTreeSet<String> = services
        .found
        .iter()
        .map(|s| s.task_definition().to_owned())
        .collect();
    let described = futures_util::future::join_all(arns.into_iter().map(|arn| {
        let ecs = &ecs;
        async move {
            let described = ecs.describe_task_definition(&arn).await;
            (arn, described)
        }
    }))
    .await;
    let reads = PreflightReads {
        services: &services,
        image_found: by_digest.map(|r| r.is_some()),
        migration,
        verify,
        described,
    };
    let (release_plan, mut problems) = match preflight(&target, reads) {
        Preflight::Judged { plan, problems } => (plan, problems),
        Preflight::Retry(e) => return Err(CliError::aws("preflight's reads", e)),
    };
    // Round trip 3: every secret reference exists.
    let references = release_plan.secret_references();
    if !references.is_empty() {
        let missing = secrets_verdict(aws.secrets().missing(&references).await)
            .map_err(|e| CliError::aws("checking the secret references", e))?;
        problems.extend(missing);
    }
    let mut families = Vec::new();
    for copy in &release_plan.families {
        families.push(family_plan(copy, "service", id.as_str(), env)?);
    }
    if let Some(copy) = &release_plan.migration {
        families.push(family_plan(copy, "migration", id.as_str(), env)?);
    }
    if let Some(copy) = release_plan
        .verify
        .as_ref()
        .filter(|v| !v.changes.is_empty())
    {
        families.push(family_plan(copy, "smoke test", id.as_str(), env)?);
    }
    let parameter = env
        .image_tag_parameter(&repository)
        .unwrap_or_default()
        .to_owned();
    let current = aws
        .parameters()
        .get(&parameter)
        .await
        .map_err(|e| CliError::aws(format!("reading {parameter}"), e))?;
    let migration = target.migration().map(|m| {
        format!(
            "{} (a copy of {}, on {}), timeout {}s, before the services; a non-zero exit fails the release",
            m.task_family,
            release_plan
                .migration
                .as_ref()
                .map(|c| c.base.arn().to_owned())
                .unwrap_or_else(|| "its latest revision".into()),
            target.image.pinned(),
            m.timeout.as_secs()
        )
    });
    let smoke_test = target.verify().map(|v| {
        format!(
            "{} after every service completed, timeout {}s",
            v.task_family,
            v.timeout.as_secs()
        )
    });
    Ok(Plan {
        app: env.app.clone(),
        environment: env.name.clone(),
        repository,
        release: id.to_string(),
        tag,
        digest: target.image.digest.clone(),
        tag_policy,
        decision,
        services: names,
        secret_references: references,
        problems,
        families,
        parameter: ParameterPlan {
            name: parameter,
            from: current,
            to: target.image.tag.clone(),
        },
        migration,
        smoke_test,
    })
}

pub fn text(plan: &Plan) -> String {
    let mut out = vec![
        format!(
            "plan for {}/{} ({}): {} {} -> release {}",
            plan.app, plan.environment, plan.repository, plan.tag, plan.digest, plan.release
        ),
        format!("tag policy: {}", plan.tag_policy),
        format!("ferry-deploy would: {}", plan.decision),
        format!("services: {}", plan.services.join(", ")),
    ];
    if plan.secret_references.is_empty() {
        out.push("secrets: none referenced".to_owned());
    } else {
        out.push("secrets (each must exist):".to_owned());
        out.extend(plan.secret_references.iter().map(|s| format!("  {s}")));
    }
    if plan.problems.is_empty() {
        out.push("preflight: passed".to_owned());
    } else {
        out.push("preflight: FAILED, the release would fail before anything changes:".to_owned());
        out.extend(plan.problems.iter().map(|p| format!("  {p}")));
    }
    for f in &plan.families {
        let who = if f.services.is_empty() {
            f.role.to_owned()
        } else {
            format!("{} {}", f.role, f.services.join(", "))
        };
        out.push(format!(
            "task definition {} ({who}), copy of {}:",
            f.family, f.base
        ));
        if f.changes.is_empty() {
            out.push("  (no change)".to_owned());
        }
        out.extend(render(&f.changes).into_iter().map(|l| format!("  {l}")));
    }
    out.push(format!(
        "SSM {}: {} -> {}",
        plan.parameter.name,
        plan.parameter.from.as_deref().unwrap_or("(absent)"),
        plan.parameter.to
    ));
    out.push(format!(
        "migration: {}",
        plan.migration.as_deref().unwrap_or("none")
    ));
    if let Some(smoke) = &plan.smoke_test {
        out.push(format!("smoke test: {smoke}"));
    }
    out.push("nothing was changed".to_owned());
    out.join("\n")
}
