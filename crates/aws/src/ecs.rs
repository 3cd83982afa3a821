//! ECS: describe, register a lossless copy, run the migration, roll out; list and
//! deregister revisions (`keep`).

use aws_sdk_ecs::types::{
    ContainerDefinition, Deployment, DeploymentControllerType, LaunchType, Service, Tag, Task,
    TaskDefinition, TaskDefinitionField, TaskDefinitionStatus,
};
use aws_sdk_ecs::Client;

use ferry_core::image::{ContainerImage, ImageChange, ReleaseTags};
use ferry_core::ports::{
    DeploymentStatus, Ecs, PortError, PortResult, RolloutState, ServiceLookup, ServiceView,
    TaskDefinitionView, TaskPhase, TaskStatus,
};

use crate::error::port_error;
use crate::inbound::{self, EcsContainer, EcsTaskStateChange};

/// DescribeTasks takes at most 100 tasks per call.
pub const DESCRIBE_TASKS_LIMIT: usize = 100;

#[derive(Clone)]
pub struct EcsAdapter {
    client: Client,
}

impl EcsAdapter {
    pub fn new(client: Client) -> Self {
        EcsAdapter { client }
    }
}

/// A task definition as DescribeTaskDefinition returned it, with its tags.
#[derive(Debug, Clone)]
pub struct EcsTaskDefinition {
    pub definition: TaskDefinition,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone)]
pub struct EcsService(pub Service);

impl ServiceView for EcsService {
    fn name(&self) -> &str {
        self.0.service_name().unwrap_or_default()
    }
    fn task_definition(&self) -> &str {
        self.0.task_definition().unwrap_or_default()
    }
    fn deployments(&self) -> Vec<DeploymentStatus> {
        let mut deployments: Vec<DeploymentStatus> =
            self.0.deployments().iter().map(deployment_status).collect();
        // PRIMARY first, the others in the order ECS listed them.
        deployments.sort_by_key(|d| !d.primary);
        deployments
    }
}

/// One entry of DescribeServices' `deployments[]`: `status` PRIMARY (the
/// deployment the service is moving to; ACTIVE and INACTIVE are older ones),
/// `taskDefinition`, and `rolloutState`, which ECS sets only for the ECS
/// deployment controller (an unknown spelling counts as none), and
/// `createdAt`.
pub fn deployment_status(deployment: &Deployment) -> DeploymentStatus {
    DeploymentStatus {
        id: deployment.id().unwrap_or_default().to_owned(),
        primary: deployment.status() == Some("PRIMARY"),
        task_definition: deployment.task_definition().unwrap_or_default().to_owned(),
        rollout: deployment
            .rollout_state()
            .and_then(|state| RolloutState::parse(state.as_str())),
        created_at: deployment
            .created_at()
            .and_then(|t| u64::try_from(t.secs()).ok()),
    }
}

/// A described task in the shape of the `ECS Task State Change` event's
/// detail, which is the task as DescribeTasks describes it (ECS Developer
/// Guide, "Amazon ECS task state change events"), so the gate's reading of a
/// stopped task ([`inbound::stopped_task`]) is the same for both.
pub fn task_state(task: &Task) -> EcsTaskStateChange {
    let time = |t: Option<&aws_smithy_types::DateTime>| {
        t.and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
    };
    EcsTaskStateChange {
        task_arn: task.task_arn().unwrap_or_default().to_owned(),
        cluster_arn: task.cluster_arn().map(str::to_owned),
        last_status: task.last_status().unwrap_or_default().to_owned(),
        started_by: task.started_by().map(str::to_owned),
        stop_code: task.stop_code().map(|c| c.as_str().to_owned()),
        stopped_reason: task.stopped_reason().map(str::to_owned),
        containers: task
            .containers()
            .iter()
            .map(|c| EcsContainer {
                name: c.name().map(str::to_owned),
                exit_code: c.exit_code(),
                reason: c.reason().map(str::to_owned),
            })
            .collect(),
        started_at: time(task.started_at()),
        stopped_at: time(task.stopped_at()),
    }
}

/// Whether a task is past running: STOPPED, or DELETED (after STOPPED, for
/// tasks with persisted storage). Every other `lastStatus` (PROVISIONING …
/// DEPROVISIONING) is a task ferry still waits for ("Amazon ECS task lifecycle").
fn has_stopped(last_status: &str) -> bool {
    matches!(last_status, "STOPPED" | "DELETED")
}

/// What DescribeTasks said about one requested task (an ARN or a task id).
pub fn task_status(
    requested: &str,
    tasks: &[Task],
    missing: &[String],
) -> Result<TaskStatus, PortError> {
    let is = |arn: &str| arn == requested || arn.rsplit('/').next() == Some(requested);
    if let Some(task) = tasks.iter().find(|t| t.task_arn().is_some_and(is)) {
        let state = task_state(task);
        let arn = state.task_arn.clone();
        let started_by = state.started_by.clone();
        let phase = if has_stopped(&state.last_status) {
            TaskPhase::Stopped(inbound::stopped_task(state))
        } else {
            TaskPhase::Running
        };
        return Ok(TaskStatus {
            arn,
            started_by,
            phase,
        });
    }
    if missing.iter().any(|arn| is(arn)) {
        return Ok(TaskStatus {
            arn: requested.to_owned(),
            started_by: None,
            phase: TaskPhase::Missing,
        });
    }
    Err(PortError::new(
        "ecs:DescribeTasks",
        format!("task {requested} is neither described nor reported missing"),
    ))
}

impl TaskDefinitionView for EcsTaskDefinition {
    fn arn(&self) -> &str {
        self.definition.task_definition_arn().unwrap_or_default()
    }
    fn family(&self) -> &str {
        self.definition.family().unwrap_or_default()
    }
    fn containers(&self) -> Vec<ContainerImage> {
        self.definition
            .container_definitions()
            .iter()
            .map(|c| ContainerImage {
                name: c.name().unwrap_or_default().to_owned(),
                image: c.image().unwrap_or_default().to_owned(),
            })
            .collect()
    }
    fn essential_containers(&self) -> Vec<String> {
        self.definition
            .container_definitions()
            .iter()
            // ECS treats a container without `essential` as essential.
            .filter(|c| c.essential().unwrap_or(true))
            .filter_map(|c| c.name().map(str::to_owned))
            .collect()
    }
    fn secret_refs(&self) -> Vec<String> {
        self.definition
            .container_definitions()
            .iter()
            .flat_map(|c| {
                c.secrets().iter().map(|s| s.value_from().to_owned()).chain(
                    c.repository_credentials()
                        .map(|r| r.credentials_parameter().to_owned()),
                )
            })
            .collect()
    }
    fn tags(&self) -> Vec<(String, String)> {
        self.tags
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
            .collect()
    }
    fn is_active(&self) -> bool {
        // A description without a status is taken as ACTIVE: ferry then treats
        // an UpdateService refusal as what it says, not as a deregistration.
        self.definition
            .status()
            .is_none_or(|s| s == &TaskDefinitionStatus::Active)
    }
}

/// Containers with only the planned image changes applied; every other field,
/// of every container, is carried over as ECS described it.
pub fn rewritten_containers(
    definition: &TaskDefinition,
    changes: &[ImageChange],
) -> Vec<ContainerDefinition> {
    definition
        .container_definitions()
        .iter()
        .map(|container| {
            let mut container = container.clone();
            if let Some(change) = changes
                .iter()
                .find(|c| Some(c.container.as_str()) == container.name())
            {
                container.image = Some(change.to.clone());
            }
            container
        })
        .collect()
}

/// Sets every field RegisterTaskDefinition accepts from a described task
/// definition. Used on both the request builder and the input builder, so the
/// unit test checks exactly what is sent. Read-only fields (ARN, revision,
/// status, requiresAttributes, compatibilities, registeredAt/By, deregisteredAt,
/// deleteRequestedAt) are the ones left out.
macro_rules! copy_task_definition {
    ($builder:expr, $definition:expr, $containers:expr, $tags:expr) => {{
        let d: &TaskDefinition = $definition;
        // Elastic Inference is retired, but a definition that still carries
        // accelerators is copied as it is: ferry changes images, nothing else.
        #[allow(deprecated)]
        $builder
            .set_family(d.family.clone())
            .set_task_role_arn(d.task_role_arn.clone())
            .set_execution_role_arn(d.execution_role_arn.clone())
            .set_network_mode(d.network_mode.clone())
            .set_container_definitions(Some($containers))
            .set_volumes(d.volumes.clone())
            .set_placement_constraints(d.placement_constraints.clone())
            .set_requires_compatibilities(d.requires_compatibilities.clone())
            .set_cpu(d.cpu.clone())
            .set_memory(d.memory.clone())
            .set_tags($tags)
            .set_pid_mode(d.pid_mode.clone())
            .set_ipc_mode(d.ipc_mode.clone())
            .set_proxy_configuration(d.proxy_configuration.clone())
            .set_inference_accelerators(d.inference_accelerators.clone())
            .set_ephemeral_storage(d.ephemeral_storage.clone())
            .set_runtime_platform(d.runtime_platform.clone())
            .set_enable_fault_injection(d.enable_fault_injection)
    }};
}

fn sdk_tags(tags: &[(String, String)]) -> Option<Vec<Tag>> {
    if tags.is_empty() {
        return None;
    }
    Some(
        tags.iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect(),
    )
}

/// The RegisterTaskDefinition input ferry sends for `base` (for tests and dry runs).
pub fn registration_input(
    base: &TaskDefinition,
    changes: &[ImageChange],
    tags: &[(String, String)],
) -> Result<
    aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionInput,
    aws_sdk_ecs::error::BuildError,
> {
    copy_task_definition!(
        aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionInput::builder(),
        base,
        rewritten_containers(base, changes),
        sdk_tags(tags)
    )
    .build()
}

impl Ecs for EcsAdapter {
    type TaskDefinition = EcsTaskDefinition;
    type Service = EcsService;

    async fn describe_services(
        &self,
        cluster: &str,
        services: &[String],
    ) -> PortResult<ServiceLookup<EcsService>> {
        // DescribeServices takes at most 10 services per call.
        let chunks: Vec<Vec<String>> = services.chunks(10).map(<[String]>::to_vec).collect();
        let results = futures_util::future::join_all(chunks.into_iter().map(|chunk| {
            self.client
                .describe_services()
                .cluster(cluster)
                .set_services(Some(chunk))
                .send()
        }))
        .await;
        let mut lookup = ServiceLookup {
            found: Vec::new(),
            missing: Vec::new(),
        };
        for result in results {
            let out = result.map_err(|e| port_error("ecs:DescribeServices", e))?;
            for service in out.services() {
                if service.status() == Some("ACTIVE") {
                    lookup.found.push(EcsService(service.clone()));
                } else {
                    lookup
                        .missing
                        .push(service.service_name().unwrap_or_default().to_owned());
                }
            }
            for failure in out.failures() {
                let name = failure
                    .arn()
                    .and_then(|a| a.rsplit('/').next())
                    .unwrap_or_default();
                lookup.missing.push(name.to_owned());
            }
        }
        // Keep the configured order: the first service lends its launch settings.
        lookup.found.sort_by_key(|s| {
            services
                .iter()
                .position(|n| n == s.name())
                .unwrap_or(usize::MAX)
        });
        Ok(lookup)
    }

    async fn describe_task_definition(&self, reference: &str) -> PortResult<EcsTaskDefinition> {
        let out = self
            .client
            .describe_task_definition()
            .task_definition(reference)
            .include(TaskDefinitionField::Tags)
            .send()
            .await
            .map_err(|e| port_error("ecs:DescribeTaskDefinition", e))?;
        let definition = out.task_definition.ok_or_else(|| {
            PortError::new(
                "ecs:DescribeTaskDefinition",
                format!("no task definition returned for {reference}"),
            )
        })?;
        Ok(EcsTaskDefinition {
            definition,
            tags: out.tags.unwrap_or_default(),
        })
    }

    async fn register_copy(
        &self,
        base: &EcsTaskDefinition,
        changes: &[ImageChange],
        tags: &ReleaseTags,
    ) -> PortResult<String> {
        if !tags.dropped.is_empty() {
            tracing::info!(
                task_definition = base.arn(),
                dropped = ?tags.dropped,
                "reserved `aws:` tags not copied: AWS's own (CloudFormation's), which RegisterTaskDefinition refuses from any caller"
            );
        }
        let request = copy_task_definition!(
            self.client.register_task_definition(),
            &base.definition,
            rewritten_containers(&base.definition, changes),
            sdk_tags(&tags.tags)
        );
        let out = request
            .send()
            .await
            .map_err(|e| port_error("ecs:RegisterTaskDefinition", e))?;
        out.task_definition()
            .and_then(|t| t.task_definition_arn())
            .map(str::to_owned)
            .ok_or_else(|| PortError::new("ecs:RegisterTaskDefinition", "no ARN returned"))
    }

    async fn run_migration(
        &self,
        cluster: &str,
        task_definition: &str,
        like: &EcsService,
        started_by: &str,
        tags: &[(String, String)],
    ) -> PortResult<String> {
        let service = &like.0;
        let mut request = self
            .client
            .run_task()
            .cluster(cluster)
            .task_definition(task_definition)
            .count(1)
            .started_by(started_by)
            .set_tags(sdk_tags(tags))
            .set_network_configuration(service.network_configuration().cloned())
            .set_platform_version(service.platform_version().map(str::to_owned));
        if service.capacity_provider_strategy().is_empty() {
            request = request.launch_type(
                service
                    .launch_type()
                    .cloned()
                    .unwrap_or(LaunchType::Fargate),
            );
        } else {
            request = request.set_capacity_provider_strategy(Some(
                service.capacity_provider_strategy().to_vec(),
            ));
        }
        let out = request
            .send()
            .await
            .map_err(|e| port_error("ecs:RunTask", e))?;
        if let Some(task) = out.tasks().first().and_then(|t| t.task_arn()) {
            return Ok(task.to_owned());
        }
        let reasons: Vec<String> = out
            .failures()
            .iter()
            .map(|f| {
                format!(
                    "{}{}",
                    f.reason().unwrap_or("unknown"),
                    f.detail().map(|d| format!(": {d}")).unwrap_or_default()
                )
            })
            .collect();
        Err(PortError::new(
            "ecs:RunTask",
            format!("the migration task was not started: {}", reasons.join("; ")),
        ))
    }

    async fn update_service(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> PortResult<String> {
        self.update(cluster, service, task_definition, true).await
    }

    async fn restore_service(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> PortResult<String> {
        self.update(cluster, service, task_definition, false).await
    }

    async fn stop_task(&self, cluster: &str, task: &str, reason: &str) -> PortResult<()> {
        self.client
            .stop_task()
            .cluster(cluster)
            .task(task)
            .reason(reason)
            .send()
            .await
            .map_err(|e| port_error("ecs:StopTask", e))?;
        Ok(())
    }

    async fn describe_tasks(&self, cluster: &str, tasks: &[String]) -> PortResult<Vec<TaskStatus>> {
        let chunks: Vec<Vec<String>> = tasks
            .chunks(DESCRIBE_TASKS_LIMIT)
            .map(<[String]>::to_vec)
            .collect();
        let results = futures_util::future::join_all(chunks.into_iter().map(|chunk| {
            self.client
                .describe_tasks()
                .cluster(cluster)
                .set_tasks(Some(chunk))
                .send()
        }))
        .await;
        let mut described = Vec::new();
        let mut missing = Vec::new();
        for result in results {
            let out = result.map_err(|e| port_error("ecs:DescribeTasks", e))?;
            described.extend(out.tasks().iter().cloned());
            for failure in out.failures() {
                let arn = failure.arn().unwrap_or_default();
                match failure.reason() {
                    Some("MISSING") => missing.push(arn.to_owned()),
                    reason => {
                        return Err(PortError::new(
                            "ecs:DescribeTasks",
                            format!(
                                "task {arn} was not described: {}{}",
                                reason.unwrap_or("no reason given"),
                                failure
                                    .detail()
                                    .map(|d| format!(" ({d})"))
                                    .unwrap_or_default()
                            ),
                        ))
                    }
                }
            }
        }
        tasks
            .iter()
            .map(|task| task_status(task, &described, &missing))
            .collect()
    }

    async fn list_revisions(&self, family: &str) -> PortResult<Vec<String>> {
        // `familyPrefix` is documented as "the full family name"; its name says
        // prefix, so the family of every ARN is checked too (`shop-api` must not
        // take `shop-api-canary`'s revisions).
        let mut pages = self
            .client
            .list_task_definitions()
            .family_prefix(family)
            .status(TaskDefinitionStatus::Active)
            .into_paginator()
            .send();
        let mut revisions = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| port_error("ecs:ListTaskDefinitions", e))?;
            revisions.extend(
                page.task_definition_arns()
                    .iter()
                    .filter(|arn| {
                        ferry_core::decide::prune::family_and_revision(arn)
                            .is_some_and(|(f, _)| f == family)
                    })
                    .cloned(),
            );
        }
        Ok(revisions)
    }

    async fn deregister(&self, task_definition: &str) -> PortResult<()> {
        self.client
            .deregister_task_definition()
            .task_definition(task_definition)
            .send()
            .await
            .map_err(|e| port_error("ecs:DeregisterTaskDefinition", e))?;
        Ok(())
    }
}

impl EcsAdapter {
    async fn update(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
        force: bool,
    ) -> PortResult<String> {
        let out = self
            .client
            .update_service()
            .cluster(cluster)
            .service(service)
            .task_definition(task_definition)
            .force_new_deployment(force)
            .send()
            .await
            .map_err(|e| port_error("ecs:UpdateService", e))?;
        let service = out.service();
        let is_ecs_controller = service
            .and_then(|s| s.deployment_controller())
            .is_none_or(|c| c.r#type() == &DeploymentControllerType::Ecs);
        service
            .into_iter()
            .flat_map(|s| s.deployments())
            .find(|d| d.status() == Some("PRIMARY"))
            .and_then(|d| d.id())
            .map(str::to_owned)
            .ok_or_else(|| {
                PortError::new(
                    "ecs:UpdateService",
                    if is_ecs_controller {
                        format!("service {service:?} returned no PRIMARY deployment")
                    } else {
                        "service does not use the ECS deployment controller; ferry drives only ECS rolling deployments".to_owned()
                    },
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::*;

    const APP_IMAGE: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:1.0.0";
    const PINNED: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop@sha256:1111111111111111111111111111111111111111111111111111111111111111";

    /// A container with every optional field set.
    fn full_container(name: &str, image: &str) -> ContainerDefinition {
        ContainerDefinition::builder()
            .name(name)
            .image(image)
            .repository_credentials(
                RepositoryCredentials::builder()
                    .credentials_parameter(
                        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:registry-AbCdEf",
                    )
                    .build()
                    .unwrap(),
            )
            .cpu(256)
            .memory(512)
            .memory_reservation(256)
            .links("db")
            .port_mappings(
                PortMapping::builder()
                    .container_port(8080)
                    .host_port(8080)
                    .protocol(TransportProtocol::Tcp)
                    .name("http")
                    .app_protocol(ApplicationProtocol::Http2)
                    .container_port_range("9000-9010")
                    .build(),
            )
            .essential(true)
            .restart_policy(
                ContainerRestartPolicy::builder()
                    .enabled(true)
                    .ignored_exit_codes(0)
                    .restart_attempt_period(60)
                    .build()
                    .unwrap(),
            )
            .entry_point("/bin/sh")
            .command("serve")
            .environment(KeyValuePair::builder().name("MODE").value("prod").build())
            .environment_files(
                EnvironmentFile::builder()
                    .value("arn:aws:s3:::shop-config/prod.env")
                    .r#type(EnvironmentFileType::S3)
                    .build()
                    .unwrap(),
            )
            .mount_points(
                MountPoint::builder()
                    .source_volume("data")
                    .container_path("/data")
                    .read_only(false)
                    .build(),
            )
            .volumes_from(
                VolumeFrom::builder()
                    .source_container("init")
                    .read_only(true)
                    .build(),
            )
            .linux_parameters(
                LinuxParameters::builder()
                    .init_process_enabled(true)
                    .shared_memory_size(64)
                    .build(),
            )
            .secrets(
                Secret::builder()
                    .name("DB")
                    .value_from("arn:aws:ssm:eu-west-1:123456789012:parameter/shop/db")
                    .build()
                    .unwrap(),
            )
            .depends_on(
                ContainerDependency::builder()
                    .container_name("init")
                    .condition(ContainerCondition::Success)
                    .build()
                    .unwrap(),
            )
            .start_timeout(30)
            .stop_timeout(60)
            .version_consistency(VersionConsistency::Disabled)
            .hostname("app")
            .user("1000:1000")
            .working_directory("/srv")
            .disable_networking(false)
            .privileged(false)
            .readonly_root_filesystem(true)
            .dns_servers("10.0.0.2")
            .dns_search_domains("shop.internal")
            .extra_hosts(
                HostEntry::builder()
                    .hostname("db")
                    .ip_address("10.0.0.9")
                    .build()
                    .unwrap(),
            )
            .docker_security_options("no-new-privileges")
            .interactive(false)
            .pseudo_terminal(false)
            .docker_labels("team", "shop")
            .ulimits(
                Ulimit::builder()
                    .name(UlimitName::Nofile)
                    .soft_limit(1024)
                    .hard_limit(4096)
                    .build()
                    .unwrap(),
            )
            .log_configuration(
                LogConfiguration::builder()
                    .log_driver(LogDriver::Awslogs)
                    .options("awslogs-group", "/shop/prod")
                    .build()
                    .unwrap(),
            )
            .health_check(
                HealthCheck::builder()
                    .command("CMD-SHELL")
                    .command("curl -f http://localhost:8080/health")
                    .interval(30)
                    .timeout(5)
                    .retries(3)
                    .start_period(10)
                    .build()
                    .unwrap(),
            )
            .system_controls(
                SystemControl::builder()
                    .namespace("net.core.somaxconn")
                    .value("1024")
                    .build(),
            )
            .resource_requirements(
                ResourceRequirement::builder()
                    .value("1")
                    .r#type(ResourceType::Gpu)
                    .build()
                    .unwrap(),
            )
            .firelens_configuration(
                FirelensConfiguration::builder()
                    .r#type(FirelensConfigurationType::Fluentbit)
                    .build()
                    .unwrap(),
            )
            .credential_specs("credentialspec:arn:aws:s3:::bucket/spec.json")
            .build()
    }

    /// A task definition as DescribeTaskDefinition returns it, every field set.
    #[allow(deprecated)]
    fn full_task_definition() -> TaskDefinition {
        TaskDefinition::builder()
            .task_definition_arn("arn:aws:ecs:eu-west-1:123456789012:task-definition/shop-api:41")
            .container_definitions(full_container("api", APP_IMAGE))
            .container_definitions(full_container(
                "datadog-agent",
                "public.ecr.aws/datadog/agent:7",
            ))
            .container_definitions(full_container(
                "auth-proxy",
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com/auth-proxy:2.1.0",
            ))
            .family("shop-api")
            .task_role_arn("arn:aws:iam::123456789012:role/shop-task")
            .execution_role_arn("arn:aws:iam::123456789012:role/shop-execution")
            .network_mode(NetworkMode::Awsvpc)
            .revision(41)
            .volumes(Volume::builder().name("data").build())
            .status(TaskDefinitionStatus::Active)
            .requires_attributes(
                Attribute::builder()
                    .name("ecs.capability.secrets.ssm.environment-variables")
                    .build()
                    .unwrap(),
            )
            .placement_constraints(
                TaskDefinitionPlacementConstraint::builder()
                    .r#type(TaskDefinitionPlacementConstraintType::MemberOf)
                    .expression("attribute:ecs.availability-zone in [eu-west-1a]")
                    .build(),
            )
            .compatibilities(Compatibility::Fargate)
            .runtime_platform(
                RuntimePlatform::builder()
                    .cpu_architecture(CpuArchitecture::Arm64)
                    .operating_system_family(OsFamily::Linux)
                    .build(),
            )
            .requires_compatibilities(Compatibility::Fargate)
            .cpu("1024")
            .memory("2048")
            .inference_accelerators(
                InferenceAccelerator::builder()
                    .device_name("eia")
                    .device_type("eia2.medium")
                    .build()
                    .unwrap(),
            )
            .pid_mode(PidMode::Task)
            .ipc_mode(IpcMode::None)
            .proxy_configuration(
                ProxyConfiguration::builder()
                    .r#type(ProxyConfigurationType::Appmesh)
                    .container_name("envoy")
                    .properties(
                        KeyValuePair::builder()
                            .name("AppPorts")
                            .value("8080")
                            .build(),
                    )
                    .build()
                    .unwrap(),
            )
            .registered_at(aws_smithy_types::DateTime::from_secs(1_700_000_000))
            .registered_by("arn:aws:iam::123456789012:role/deployer")
            .ephemeral_storage(EphemeralStorage::builder().size_in_gib(50).build())
            .enable_fault_injection(true)
            .build()
    }

    fn unset_fields(debug: &str, indent: usize) -> Vec<String> {
        let prefix = " ".repeat(indent);
        debug
            .lines()
            .filter(|l| l.starts_with(&prefix) && !l[indent..].starts_with(' '))
            .filter(|l| l.trim_end().ends_with(": None,"))
            .map(|l| l.trim().to_owned())
            .collect()
    }

    fn change() -> Vec<ImageChange> {
        vec![ImageChange {
            container: "api".into(),
            from: APP_IMAGE.into(),
            to: PINNED.into(),
        }]
    }

    #[test]
    fn the_fixtures_set_every_field_the_sdk_knows() {
        // If the SDK grows a field, these fixtures (and the copy) must learn it.
        let container = format!("{:#?}", full_container("api", APP_IMAGE));
        assert_eq!(unset_fields(&container, 4), Vec::<String>::new());
        let definition = format!("{:#?}", full_task_definition());
        let unset = unset_fields(&definition, 4);
        // Only read-only fields a fresh description may lack.
        assert!(
            unset
                .iter()
                .all(|f| f.starts_with("deregistered_at") || f.starts_with("delete_requested_at")),
            "{unset:?}"
        );
    }

    #[test]
    fn registration_copies_every_accepted_field_and_changes_only_the_matching_image() {
        let base = full_task_definition();
        let tags = vec![
            ("team".to_owned(), "shop".to_owned()),
            (
                "ferry:release".to_owned(),
                "shop/prod/1111111111111111".to_owned(),
            ),
        ];
        let input = registration_input(&base, &change(), &tags).unwrap();

        // Nothing RegisterTaskDefinition accepts is left unset.
        assert_eq!(
            unset_fields(&format!("{input:#?}"), 4),
            Vec::<String>::new()
        );

        assert_eq!(input.family(), base.family());
        assert_eq!(input.task_role_arn(), base.task_role_arn());
        assert_eq!(input.execution_role_arn(), base.execution_role_arn());
        assert_eq!(input.network_mode(), base.network_mode());
        assert_eq!(input.volumes(), base.volumes());
        assert_eq!(input.placement_constraints(), base.placement_constraints());
        assert_eq!(
            input.requires_compatibilities(),
            base.requires_compatibilities()
        );
        assert_eq!(input.cpu(), base.cpu());
        assert_eq!(input.memory(), base.memory());
        assert_eq!(input.pid_mode(), base.pid_mode());
        assert_eq!(input.ipc_mode(), base.ipc_mode());
        assert_eq!(input.proxy_configuration(), base.proxy_configuration());
        #[allow(deprecated)]
        {
            assert_eq!(
                input.inference_accelerators(),
                base.inference_accelerators()
            );
        }
        assert_eq!(input.ephemeral_storage(), base.ephemeral_storage());
        assert_eq!(input.runtime_platform(), base.runtime_platform());
        assert_eq!(
            input.enable_fault_injection(),
            base.enable_fault_injection()
        );
        let sent_tags: Vec<(&str, &str)> = input
            .tags()
            .iter()
            .map(|t| (t.key().unwrap(), t.value().unwrap()))
            .collect();
        assert_eq!(
            sent_tags,
            [
                ("team", "shop"),
                ("ferry:release", "shop/prod/1111111111111111")
            ]
        );

        let containers = input.container_definitions();
        assert_eq!(containers.len(), 3);
        let mut expected_app = full_container("api", APP_IMAGE);
        expected_app.image = Some(PINNED.into());
        assert_eq!(
            containers[0], expected_app,
            "only the image of the app changed"
        );
        assert_eq!(
            containers[1],
            base.container_definitions()[1],
            "sidecar untouched"
        );
        assert_eq!(
            containers[2],
            base.container_definitions()[2],
            "other repository untouched"
        );
    }

    #[test]
    fn secret_references_include_registry_credentials() {
        let td = EcsTaskDefinition {
            definition: full_task_definition(),
            tags: vec![],
        };
        let refs = td.secret_refs();
        assert!(refs.contains(&"arn:aws:ssm:eu-west-1:123456789012:parameter/shop/db".to_owned()));
        assert!(refs.contains(
            &"arn:aws:secretsmanager:eu-west-1:123456789012:secret:registry-AbCdEf".to_owned()
        ));
    }
}
