"""Small ECS estates for the end-to-end scenarios, created through the AWS APIs.

``infra/`` describes the sample estate (shop, blog) once, for the demo and for
a real account. The suite adds one app per scenario (see ``ferry-e2e.toml``)
so the scenarios share one stack without sharing an environment: each app has
an ECR repository with a first image, a cluster, Fargate services running it
(awsvpc, circuit breaker with rollback), an optional migration family and the
image-tag parameter, as an operator would have them before adopting ferry.
"""

from __future__ import annotations

from typing import Any

REGISTRY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
ACCOUNT = "123456789012"


def image(repository: str, tag: str) -> str:
    return f"{REGISTRY}/{repository}:{tag}"


def network(stack: Any) -> dict[str, Any]:
    emulator = stack.info["emulator"]
    return {
        "awsvpcConfiguration": {
            "subnets": emulator["subnets"][:2],
            "securityGroups": emulator["security_groups"],
            "assignPublicIp": "DISABLED",
        }
    }


def task_definition(family: str, container: str, image_uri: str, **extra: Any) -> dict[str, Any]:
    return {
        "family": family,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "256",
        "memory": "512",
        "executionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/sample-ecs-task-execution",
        "containerDefinitions": [
            {
                "name": container,
                "image": image_uri,
                "essential": True,
                "environment": [{"name": "APP_ROLE", "value": container}],
            }
        ],
        "tags": [{"key": "app", "value": family.split("-", 1)[0]}],
        **extra,
    }


def create_app(
    stack: Any,
    app: str,
    services: list[str],
    *,
    migration: bool = True,
    baseline: str = "0.9.0",
    definitions: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Repository ``app`` with ``app:baseline``, cluster ``<app>-prod``, the services, the parameter."""
    ecr, ecs, ssm = stack.client("ecr"), stack.client("ecs"), stack.client("ssm")
    cluster = f"{app}-prod"
    ecr.create_repository(repositoryName=app)
    stack.push(app, baseline)
    ssm.put_parameter(Name=f"/{app}/prod/compute/currentImageTag", Value=baseline, Type="String")
    ecs.create_cluster(clusterName=cluster)
    created: dict[str, Any] = {"cluster": cluster, "services": {}}
    for service in services:
        definition = (definitions or {}).get(service) or task_definition(f"{app}-{service}", service, image(app, baseline))
        arn = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(
            cluster=cluster,
            serviceName=service,
            taskDefinition=arn,
            desiredCount=1,
            launchType="FARGATE",
            networkConfiguration=network(stack),
            deploymentConfiguration={
                "deploymentCircuitBreaker": {"enable": True, "rollback": True},
                "maximumPercent": 200,
                "minimumHealthyPercent": 100,
            },
        )
        created["services"][service] = arn
    if migration:
        definition = task_definition(f"{app}-migrate", "migrate", image(app, baseline))
        created["migration"] = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
    return created


def create_environment(stack: Any, app: str, env: str, services: list[str], baseline: str = "0.9.0") -> None:
    """A second environment of an app made by :func:`create_app`: cluster ``<app>-<env>``,
    the same services on the app's task-definition families, its own image-tag parameter."""
    ecs, ssm = stack.client("ecs"), stack.client("ssm")
    cluster = f"{app}-{env}"
    ssm.put_parameter(Name=f"/{app}/{env}/compute/currentImageTag", Value=baseline, Type="String")
    ecs.create_cluster(clusterName=cluster)
    for service in services:
        arn = ecs.register_task_definition(**task_definition(f"{app}-{service}", service, image(app, baseline)))["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(
            cluster=cluster,
            serviceName=service,
            taskDefinition=arn,
            desiredCount=1,
            launchType="FARGATE",
            networkConfiguration=network(stack),
            deploymentConfiguration={
                "deploymentCircuitBreaker": {"enable": True, "rollback": True},
                "maximumPercent": 200,
                "minimumHealthyPercent": 100,
            },
        )


def create_app_with_cloudformation(
    stack: Any,
    app: str,
    services: list[str],
    *,
    stack_tags_on: frozenset[str],
    baseline: str = "0.9.0",
) -> dict[str, Any]:
    """Like :func:`create_app` (with a migration), but the cluster, task definitions and
    services come from a CloudFormation template (stack ``<app>-estate``, ``cfn.py``)
    whose resources of the types in ``stack_tags_on`` carry CloudFormation's own
    ``aws:cloudformation:*`` tags. Returns ``{"cluster", "services": {name: arn},
    "migration": arn}``."""
    import cfn

    ecr, ssm = stack.client("ecr"), stack.client("ssm")
    ecr.create_repository(repositoryName=app)
    stack.push(app, baseline)
    ssm.put_parameter(Name=f"/{app}/prod/compute/currentImageTag", Value=baseline, Type="String")
    emulator = stack.info["emulator"]

    def definition(family: str, container: str) -> dict[str, Any]:
        return {
            "Type": "AWS::ECS::TaskDefinition",
            "Properties": {
                "Family": family,
                "NetworkMode": "awsvpc",
                "RequiresCompatibilities": ["FARGATE"],
                "Cpu": "256",
                "Memory": "512",
                "ExecutionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/sample-ecs-task-execution",
                "ContainerDefinitions": [
                    {
                        "Name": container,
                        "Image": image(app, baseline),
                        "Essential": True,
                        "Environment": [{"Name": "APP_ROLE", "Value": container}],
                    }
                ],
                "Tags": [{"Key": "app", "Value": app}],
            },
        }

    resources: dict[str, Any] = {
        "Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {"ClusterName": f"{app}-prod"}},
        "MigrationTaskDefinition": definition(f"{app}-migrate", "migrate"),
    }
    for service in services:
        logical = service.capitalize()
        resources[f"{logical}TaskDefinition"] = definition(f"{app}-{service}", service)
        resources[f"{logical}Service"] = {
            "Type": "AWS::ECS::Service",
            "Properties": {
                "ServiceName": service,
                "Cluster": {"Ref": "Cluster"},
                "TaskDefinition": {"Ref": f"{logical}TaskDefinition"},
                "DesiredCount": 1,
                "LaunchType": "FARGATE",
                "NetworkConfiguration": {
                    "AwsvpcConfiguration": {
                        "Subnets": emulator["subnets"][:2],
                        "SecurityGroups": emulator["security_groups"],
                        "AssignPublicIp": "DISABLED",
                    }
                },
                "DeploymentConfiguration": {
                    "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True},
                    "MaximumPercent": 200,
                    "MinimumHealthyPercent": 100,
                },
            },
        }
    ids = cfn.apply(
        {"Resources": resources},
        lambda service: stack.client(service),
        region=stack.info["emulator"]["region"],
        account_id=ACCOUNT,
        stack_name=f"{app}-estate",
        stack_tags_on=stack_tags_on,
    )["physical_ids"]
    return {
        "cluster": f"{app}-prod",
        "services": {s: ids[f"{s.capitalize()}TaskDefinition"] for s in services},
        "migration": ids["MigrationTaskDefinition"],
    }


def create_smoke_test(stack: Any, app: str, baseline: str = "0.9.0") -> str:
    """The smoke-test family ``<app>-smoke`` (the config's ``verify``), like
    infra/'s ``shop-smoke``: the app's own image, run once against the new tasks."""
    definition = task_definition(f"{app}-smoke", "smoke", image(app, baseline))
    definition["containerDefinitions"][0]["command"] = ["./app", "smoke-test", "--against", f"http://api.{app}.internal"]
    return stack.client("ecs").register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]


def every_field_task_definition(family: str, image_uri: str, secret_arn: str) -> dict[str, Any]:
    """A RegisterTaskDefinition request with every optional field set that a
    Fargate (awsvpc) task definition accepts.

    Left out because AWS refuses them for Fargate/awsvpc: ``ipcMode``,
    placement constraints other than none, container ``links``, ``hostname``
    and GPU ``resourceRequirements``; and ``inferenceAccelerators`` (Elastic
    Inference no longer takes new users). Two sidecars run images from
    elsewhere (another registry, another ECR repository): ferry must leave
    them alone.
    """
    ssm_secret = f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/shop/prod/api-key"

    def container(name: str, image_value: str, essential: bool) -> dict[str, Any]:
        return {
            "name": name,
            "image": image_value,
            "repositoryCredentials": {"credentialsParameter": secret_arn},
            "cpu": 128,
            "memory": 512,
            "memoryReservation": 256,
            "portMappings": [
                {"containerPort": 8080, "hostPort": 8080, "protocol": "tcp", "name": f"{name}-http", "appProtocol": "http"}
            ]
            if essential
            else [],
            "essential": essential,
            "restartPolicy": {"enabled": True, "ignoredExitCodes": [0], "restartAttemptPeriod": 180},
            "entryPoint": ["/bin/sh", "-c"],
            "command": [f"exec ./{name} --serve"],
            "environment": [{"name": "APP_ROLE", "value": name}, {"name": "LOG_LEVEL", "value": "info"}],
            "environmentFiles": [{"value": "arn:aws:s3:::full-config/prod.env", "type": "s3"}],
            "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/scratch", "readOnly": False}],
            "volumesFrom": [],
            "linuxParameters": {
                "capabilities": {"add": ["SYS_PTRACE"], "drop": ["NET_RAW"]},
                "initProcessEnabled": True,
                "tmpfs": [],
            },
            "secrets": [
                {"name": "DATABASE_URL", "valueFrom": f"{secret_arn}:url::"},
                {"name": "API_KEY", "valueFrom": ssm_secret},
            ],
            "dependsOn": [] if essential else [{"containerName": "api", "condition": "START"}],
            "startTimeout": 60,
            "stopTimeout": 30,
            "versionConsistency": "enabled",
            "user": "1000:1000",
            "workingDirectory": "/app",
            "disableNetworking": False,
            "privileged": False,
            "readonlyRootFilesystem": True,
            "dnsServers": [],
            "dnsSearchDomains": [],
            "extraHosts": [],
            "dockerSecurityOptions": [],
            "interactive": False,
            "pseudoTerminal": False,
            "dockerLabels": {"com.example.team": "full", "com.example.tier": "web"},
            "ulimits": [{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}],
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {"awslogs-group": "/ecs/full-prod", "awslogs-region": "eu-west-1", "awslogs-stream-prefix": name},
                "secretOptions": [],
            },
            "healthCheck": {
                "command": ["CMD-SHELL", "curl -f http://localhost:8080/healthz || exit 1"],
                "interval": 10,
                "timeout": 5,
                "retries": 3,
                "startPeriod": 15,
            },
            "systemControls": [{"namespace": "net.core.somaxconn", "value": "1024"}],
            "resourceRequirements": [],
            "credentialSpecs": [],
        }

    log_router = container("log-router", f"{REGISTRY}/aws-for-fluent-bit:2.32.0", False)
    log_router.pop("logConfiguration")
    log_router["firelensConfiguration"] = {"type": "fluentbit", "options": {"enable-ecs-log-metadata": "true"}}

    return {
        "family": family,
        "taskRoleArn": f"arn:aws:iam::{ACCOUNT}:role/shop-task",
        "executionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/sample-ecs-task-execution",
        "networkMode": "awsvpc",
        "containerDefinitions": [
            container("api", image_uri, True),
            container("datadog-agent", "public.ecr.aws/datadog/agent:7", False),
            log_router,
        ],
        "volumes": [
            {"name": "scratch"},
            {
                "name": "shared",
                "efsVolumeConfiguration": {
                    "fileSystemId": "fs-0123456789abcdef0",
                    "rootDirectory": "/",
                    "transitEncryption": "ENABLED",
                    "authorizationConfig": {"accessPointId": "fsap-0123456789abcdef0", "iam": "ENABLED"},
                },
            },
        ],
        "placementConstraints": [],
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "1024",
        "memory": "2048",
        "tags": [{"key": "app", "value": "full"}, {"key": "cost-center", "value": "cc-42"}],
        "pidMode": "task",
        "proxyConfiguration": {
            "type": "APPMESH",
            "containerName": "api",
            "properties": [{"name": "AppPorts", "value": "8080"}, {"name": "ProxyIngressPort", "value": "15000"}],
        },
        "ephemeralStorage": {"sizeInGiB": 50},
        "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
        "enableFaultInjection": True,
    }


def create_alarm(stack: Any, name: str) -> str:
    """A 5xx alarm like infra/'s shop-prod-5xx (the config lists it under `alarms`)."""
    cloudwatch = stack.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        AlarmDescription=f"5xx responses from the {name.rsplit('-', 1)[0]} api targets",
        Namespace="AWS/ApplicationELB",
        MetricName="HTTPCode_Target_5XX_Count",
        Dimensions=[{"Name": "TargetGroup", "Value": f"targetgroup/{name}/0123456789abcdef"}],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=10,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
    )
    return cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["AlarmArn"]
