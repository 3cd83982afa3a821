//! ECS: describe, register a lossless copy, run the migration, roll out.

use aws_sdk_ecs::types::{
    ContainerDefinition, DeploymentControllerType, LaunchType, Service, Tag, TaskDefinition,
    TaskDefinitionField,
};
use aws_sdk_ecs::Client;

use ferry_core::image::{ContainerImage, ImageChange};
use ferry_core::ports::{
    Ecs, PortError, PortResult, ServiceLookup, ServiceView, TaskDefinitionView,
};

use crate::error::port_error;

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
                c.secrets()
                    .iter()
                    .map(|s| s.value_from().to_owned())
                    .chain(
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
        tags: &[(String, String)],
    ) -> PortResult<String> {
        let request = copy_task_definition!(
            self.client.register_task_definition(),
            &base.definition,
            rewritten_containers(&base.definition, changes),
            sdk_tags(tags)
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
            request = request
                .set_capacity_provider_strategy(Some(service.capacity_provider_strategy().to_vec()));
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
        let out = self
            .client
            .update_service()
            .cluster(cluster)
            .service(service)
            .task_definition(task_definition)
            .force_new_deployment(true)
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
}

