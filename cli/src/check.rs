//! `ferry config check`: the TOML as the functions validate it, then the
//! account: every cluster, service, task-definition family, image-tag
//! parameter and alarm it names exists. Problems are worded as the functions
//! word them when a release meets them.

use std::collections::BTreeSet;

use ferry_core::config::Config;
use ferry_core::ports::{Alarms, Ecs, Parameters, ServiceView};

use crate::aws::Aws;
use crate::error::CliError;

/// What was checked in one environment, and what is wrong.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub checked: Vec<String>,
    pub problems: Vec<String>,
    /// Not wrong, worth knowing.
    pub warnings: Vec<String>,
}

pub async fn against_account(aws: &Aws, config: &Config) -> Result<Report, CliError> {
    let ecs = aws.ecs();
    let params = aws.parameters();
    let alarms = aws.alarms();
    let mut report = Report::default();
    for env in config.environments() {
        let lane = format!("{}/{}", env.app, env.name);
        let names: Vec<String> = env.services.iter().map(|s| s.name.clone()).collect();
        match ecs.describe_services(&env.cluster, &names).await {
            Ok(lookup) => {
                for missing in &lookup.missing {
                    report.problems.push(format!(
                        "{lane}: service `{missing}` is not an ACTIVE service of cluster `{}`",
                        env.cluster
                    ));
                }
                let revisions: BTreeSet<&str> =
                    lookup.found.iter().map(|s| s.task_definition()).collect();
                for arn in revisions {
                    if let Err(e) = ecs.describe_task_definition(arn).await {
                        report.problems.push(format!(
                            "{lane}: task definition {arn} cannot be described: {e}"
                        ));
                    }
                }
            }
            Err(e) if e.code.as_deref() == Some("ClusterNotFoundException") => {
                report.problems.push(format!(
                    "{lane}: cluster `{}` does not exist: {e}",
                    env.cluster
                ));
            }
            Err(e) => {
                return Err(CliError::aws(
                    format!("describing the services of {lane}"),
                    e,
                ))
            }
        }
        for (what, task) in [
            ("migration", env.migration.as_ref()),
            ("smoke-test", env.verify.as_ref()),
        ] {
            if let Some(task) = task {
                if let Err(e) = ecs.describe_task_definition(&task.task_family).await {
                    report.problems.push(format!(
                        "{lane}: {what} task family `{}` cannot be described: {e}",
                        task.task_family
                    ));
                }
            }
        }
        for (repository, parameter) in &env.image_tag_parameters {
            match params.get(parameter).await {
                Ok(Some(_)) => {}
                Ok(None) => report.warnings.push(format!(
                    "{lane}: image-tag parameter {parameter} ({repository}) does not exist yet; the lane's first release creates it"
                )),
                Err(e) => return Err(CliError::aws(format!("reading {parameter}"), e)),
            }
        }
        if !env.alarms.is_empty() {
            let found = alarms
                .describe(&env.alarms)
                .await
                .map_err(|e| CliError::aws(format!("describing the alarms of {lane}"), e))?;
            for alarm in &env.alarms {
                if !found.iter().any(|a| &a.name == alarm) {
                    report.problems.push(format!(
                        "{lane}: guarding alarm `{alarm}` does not exist in CloudWatch"
                    ));
                }
            }
        }
        report.checked.push(format!(
            "{lane}: cluster {}, {} service(s), {} parameter(s), {} alarm(s)",
            env.cluster,
            env.services.len(),
            env.image_tag_parameters.len(),
            env.alarms.len()
        ));
    }
    Ok(report)
}
