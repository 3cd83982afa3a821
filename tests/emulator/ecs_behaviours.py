"""ECS behaviour that ferry's local emulator adds on top of moto.

This module is THE one place where ferry's test harness changes how the local
AWS emulator (moto server) behaves. Everything here follows a documented AWS
behaviour that moto does not model, or models in a way that would make ferry's
end-to-end tests lie. Each addition names the AWS documentation page it follows.

``install()`` applies every addition by patching moto's ECS classes
(``moto.ecs.models`` / ``moto.ecs.responses``). It is idempotent and must run
before the emulator serves its first request. Because the patches are made on
the classes, they survive moto's ``/moto-api/reset``.

How moto 5.2 turns models into responses matters for every patch below: the
ECS response handlers return ``ActionResult`` objects that hold *model
objects*; moto serialises them by walking botocore's ECS output shapes and
picking, for each member, the attribute named ``memberName`` or its snake_case
form (``stopCode`` -> ``stop_code``). ``None`` values are left out. Timestamps
(``datetime``) become epoch seconds with millisecond precision, as ECS's
awsJson1_1 protocol sends them, so the AWS SDK for Rust parses them. So to add
a field to a response, set the attribute on the model object; to remove one,
set it to ``None``.

Test scenarios drive the additions through three inputs:

* ``StopTask`` with ``reason`` ``ferry-emulator:exit=<N>`` or
  ``ferry-emulator:failed-to-start`` (see :func:`stop_task_semantics`);
* ``finish_deployment()`` in this module, exposed by the launcher as
  ``POST /_ferry/deployments/finish`` (see :func:`finish_deployment`);
* ordinary ECS API calls, which now behave as listed below.
"""

from __future__ import annotations

import copy
import datetime as _dt
import functools
import json
import math
import re
import threading
import unicodedata
from typing import Any

from moto.core.utils import utcnow
from moto.ec2 import ec2_backends
from moto.ecs import models as ecs_models
from moto.ecs import responses as ecs_responses
from moto.ecs.exceptions import (
    EcsClientException,
    InvalidParameterException,
    TaskDefinitionNotFoundException,
)
from moto.moto_api._internal import mock_random

__all__ = [
    "EXIT_REASON_PREFIX",
    "FAILED_TO_START_REASON",
    "CIRCUIT_BREAKER_FAILED_REASON",
    "DeploymentNotFound",
    "DeploymentConflict",
    "install",
    "finish_deployment",
    "to_json",
    "subscribe",
    "unsubscribe",
    "Scenario",
    "scenario",
    "enable_scenario",
]

#: StopTask reason that stops a task as if its essential containers exited with N.
EXIT_REASON_PREFIX = "ferry-emulator:exit="
#: StopTask reason that stops a task as if its image could not be pulled.
FAILED_TO_START_REASON = "ferry-emulator:failed-to-start"
_DIRECTIVE_PREFIX = "ferry-emulator:"

#: rolloutStateReason of a deployment the circuit breaker failed.
CIRCUIT_BREAKER_FAILED_REASON = "ECS deployment circuit breaker: tasks failed to start."

#: ECS's default deploymentConfiguration for the rolling update (ECS) controller.
DEFAULT_DEPLOYMENT_CONFIGURATION: dict[str, Any] = {
    "deploymentCircuitBreaker": {"enable": False, "rollback": False},
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
}

# Every mutation of service deployments made here (and the moto calls it wraps)
# happens under this lock: the emulator serves requests on many threads and the
# control route runs beside them.
_LOCK = threading.RLock()
_INSTALLED = False


class DeploymentNotFound(LookupError):
    """No such cluster, service or deployment (control route answers 404)."""


class DeploymentConflict(Exception):
    """The deployment cannot be finished in its current state (409)."""


# --------------------------------------------------------------------------
# small helpers


def _now() -> _dt.datetime:
    # moto keeps naive UTC datetimes (moto.core.utils.utcnow); stay consistent
    # so every timestamp serialises the same way.
    return utcnow()


def _new_deployment_id() -> str:
    # ECS deployment ids look like ecs-svc/1234567890123456789 (19 digits).
    return f"ecs-svc/{mock_random.randint(10**18, 10**19 - 1)}"


def _epoch(value: _dt.datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    # millisecond precision, as moto's serialiser and ECS itself send them
    return math.floor(value.timestamp() * 1000) / 1000.0


def to_json(value: Any) -> Any:
    """Deep-copy ``value`` into JSON-ready data, datetimes as epoch seconds."""
    if isinstance(value, _dt.datetime):
        return _epoch(value)
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


def _backend(account_id: str, region: str) -> ecs_models.EC2ContainerServiceBackend:
    return ecs_models.ecs_backends[account_id][region]


def _service_event(service: Any, message: str) -> None:
    events = getattr(service, "events", None)
    if events is None:
        events = service.events = []
    events.insert(0, {"id": str(mock_random.uuid4()), "createdAt": _now(), "message": message})
    del events[100:]  # DescribeServices returns the 100 most recent events


def _recount_service(service: Any) -> None:
    """Service runningCount/pendingCount are the sums over its deployments."""
    if service.deployments:
        service.running_count = sum(int(d.get("runningCount") or 0) for d in service.deployments)
        service.pending_count = sum(int(d.get("pendingCount") or 0) for d in service.deployments)


def _patch(owner: type, name: str, make: Any) -> None:
    original = getattr(owner, name)
    replacement = make(original)
    functools.update_wrapper(replacement, original)
    replacement.__ferry_original__ = original  # type: ignore[attr-defined]
    setattr(owner, name, replacement)


# --------------------------------------------------------------------------
# 1. tasks


def tasks_stay_running_until_stopped() -> None:
    """A task stays RUNNING until it is stopped.

    AWS: "Amazon ECS task lifecycle" (Amazon ECS Developer Guide) -- a task
    moves towards STOPPED only when its essential container exits, it fails,
    or StopTask/UpdateService stops it.

    moto drives its ``Task`` through a ManagedState whose default progression
    advances one state (RUNNING -> DEACTIVATING -> STOPPING -> DEPROVISIONING
    -> STOPPED) on every DescribeTasks call, so a migration task would appear
    to stop by itself (with desiredStatus RUNNING and no exit code) after a
    few polls. The emulator freezes that progression; only StopTask (below)
    stops a task.
    """

    def make(_original: Any) -> Any:
        def advance(self: Any) -> None:
            return None

        return advance

    _patch(ecs_models.Task, "advance", make)


def _subnet_availability_zone(backend: Any, task: Any) -> str | None:
    subnets = (
        (getattr(task, "network_configuration", None) or {})
        .get("awsvpcConfiguration", {})
        .get("subnets")
    )
    if not subnets:
        return None
    try:
        ec2 = ec2_backends[backend.account_id][backend.region_name]
        return ec2.get_subnet(subnets[0]).availability_zone
    except Exception:  # an unknown subnet is moto's business, not ours
        return None


def _as_string(value: Any) -> str | None:
    return None if value is None else str(value)


def _dress_started_task(backend: Any, task: Any, task_definition: Any) -> None:
    """Give a task started by RunTask/StartTask the shape a running ECS task has."""
    now = _now()
    task.created_at = now
    task.pull_started_at = now
    task.pull_stopped_at = now
    task.started_at = now
    task.connectivity = "CONNECTED"
    task.connectivity_at = now
    task.last_status = "RUNNING"
    task.desired_status = "RUNNING"
    task.stopped_reason = None  # moto sends "" while running; ECS omits it
    task.stop_code = None
    task.stopping_at = None
    task.stopped_at = None
    task.execution_stopped_at = None
    task.version = 1
    task.cpu = _as_string(task_definition.cpu)
    task.memory = _as_string(task_definition.memory)
    task.availability_zone = _subnet_availability_zone(backend, task)
    if task.launch_type == "FARGATE":
        if not task.platform_version or task.platform_version == "LATEST":
            task.platform_version = "1.4.0"
        task.platform_family = "Linux"
        if task_definition.ephemeral_storage:
            task.ephemeral_storage = task_definition.ephemeral_storage
        else:
            task.ephemeral_storage = {"sizeInGiB": 20}
    task.enable_execute_command = False

    eni = next(
        (a for a in task.attachments if a.get("type") == "ElasticNetworkInterface"), None
    )
    private_ip = None
    if eni:
        private_ip = next(
            (d["value"] for d in eni.get("details", []) if d["name"] == "privateIPv4Address"),
            None,
        )

    containers = []
    any_health_check = False
    for definition in task_definition.container_definitions:
        container = ecs_models.Container(task_definition)
        container.container_arn = (
            f"arn:{task.task_arn.split(':')[1]}:ecs:{task.region_name}:{backend.account_id}:"
            f"container/{task.cluster_name}/{task.id}/{mock_random.uuid4()}"
        )
        container.task_arn = task.task_arn  # moto puts the task definition ARN here
        container.name = definition.get("name")
        container.image = definition.get("image")
        image = container.image or ""
        container.image_digest = image.split("@", 1)[1] if "@sha256:" in image else None
        container.runtime_id = f"{task.id.replace('-', '')[:32]}-{mock_random.randint(10**9, 10**10 - 1)}"
        container.last_status = "RUNNING"
        container.exitCode = None  # no exit code while running
        container.reason = None
        # Container.cpu/memory are *strings* in the ECS API; moto copies the
        # container definition's integers, which strict JSON clients (the AWS
        # SDK for Rust) reject.
        container.cpu = _as_string(definition.get("cpu", 0))
        container.memory = _as_string(definition.get("memory"))
        container.memory_reservation = _as_string(definition.get("memoryReservation"))
        container.environment = None
        container.command = None
        has_check = bool(definition.get("healthCheck"))
        any_health_check = any_health_check or has_check
        container.health_status = "HEALTHY" if has_check else "UNKNOWN"
        container.network_interfaces = (
            [{"attachmentId": eni["id"], "privateIpv4Address": private_ip}] if eni else []
        )
        container.essential = definition.get("essential", True)
        containers.append(container)
    task.containers = containers
    task.health_status = "HEALTHY" if any_health_check else "UNKNOWN"


def run_task_reports_every_container() -> None:
    """RunTask/StartTask return a started task with all of its containers.

    AWS: "Task" and "Container" data types (Amazon ECS API Reference); "Amazon
    ECS task lifecycle" (Amazon ECS Developer Guide).

    The emulated task is started at once: lastStatus RUNNING, createdAt,
    pullStartedAt, pullStoppedAt, startedAt, connectivityAt set, cpu/memory,
    availabilityZone, version, and one container entry for EVERY container
    definition (moto creates one, for the first definition only) with its name,
    image, lastStatus RUNNING and no exitCode. Container cpu/memory are sent as
    strings, as the API defines them. The container's taskArn is the task's ARN
    (moto puts the task definition's there).

    RunTask without launchType on a cluster with no container instances, for a
    task definition compatible with FARGATE, runs on Fargate (moto raises
    "No instances found" instead). AWS would use the capacityProviderStrategy
    or the cluster's default strategy; moto ignores both.
    """

    def make_run(original: Any) -> Any:
        def run_task(
            self: Any,
            cluster_str: str,
            task_definition_str: str,
            count: int,
            overrides: Any,
            started_by: str,
            tags: Any,
            launch_type: str | None,
            networking_configuration: Any = None,
            group: str | None = None,
            platform_version: str | None = None,
        ) -> list[Any]:
            cluster = self._get_cluster(cluster_str)
            task_definition = self.describe_task_definition(task_definition_str)
            if (
                not launch_type
                and "FARGATE" in (task_definition.compatibilities or [])
                and not self.container_instances.get(cluster.name)
            ):
                launch_type = "FARGATE"
            tasks = original(
                self,
                cluster_str,
                task_definition_str,
                count,
                overrides,
                started_by,
                tags,
                launch_type,
                networking_configuration,
                group,
                platform_version,
            )
            for task in tasks:
                _dress_started_task(self, task, task_definition)
            for task in tasks:
                _notify("task-started", backend=self, task=task)
            return tasks

        return run_task

    def make_start(original: Any) -> Any:
        def start_task(self: Any, cluster_str: str, task_definition_str: str, *args: Any, **kwargs: Any) -> list[Any]:
            tasks = original(self, cluster_str, task_definition_str, *args, **kwargs)
            task_definition = self.describe_task_definition(task_definition_str)
            for task in tasks:
                _dress_started_task(self, task, task_definition)
            for task in tasks:
                _notify("task-started", backend=self, task=task)
            return tasks

        return start_task

    _patch(ecs_models.EC2ContainerServiceBackend, "run_task", make_run)
    _patch(ecs_models.EC2ContainerServiceBackend, "start_task", make_start)


def container_memory_is_optional() -> None:
    """RunTask accepts task definitions whose containers set no memory.

    AWS: "ContainerDefinition" (Amazon ECS API Reference), ``memory``: "If
    using the Fargate launch type, this parameter is optional"; the task-level
    ``memory`` is what Fargate sizes the task by.

    moto adds up the containers' ``memory``/``memoryReservation`` to place a
    task and fails with a TypeError (HTTP 500) when a container has neither.
    The emulator counts such a container as 0 MiB (its share of the task-level
    memory), so RunTask works for the task definitions AWS accepts.
    """

    def make(original: Any) -> Any:
        def calculate(task_definition: Any) -> dict[str, Any]:
            sized = copy.copy(task_definition)
            sized.container_definitions = [
                c
                if any(k in c for k in ("memory", "memoryReservation", "Memory", "MemoryReservation"))
                else {**c, "memory": 0}
                for c in task_definition.container_definitions
            ]
            return original(sized)

        return calculate

    original = ecs_models.EC2ContainerServiceBackend.__dict__["_calculate_task_resource_requirements"].__func__
    replacement = make(original)
    functools.update_wrapper(replacement, original)
    replacement.__ferry_original__ = original  # type: ignore[attr-defined]
    ecs_models.EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(replacement)


def _find_task(backend: Any, cluster_str: str, task_str: str) -> Any:
    cluster = backend._get_cluster(cluster_str)
    task_id = task_str.split("/")[-1]
    for arn, task in backend.tasks.get(cluster.name, {}).items():
        if arn.endswith(task_id):
            return task
    raise InvalidParameterException("The referenced task was not found.")


def _cannot_pull_message(image: str | None) -> str:
    ref = image or "<unknown image>"
    return (
        "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
        f"failed to resolve ref {ref}: {ref}: not found"
    )


def _definition_image(backend: Any, arn: str) -> str | None:
    """The essential container's image of a registered task definition."""
    try:
        definition = backend.describe_task_definition(arn)
    except Exception:  # deregistered meanwhile, or not ours to read
        return None
    for container in definition.container_definitions:
        if container.get("essential", True):
            return container.get("image")
    return None


def _essential_image(task: Any) -> str | None:
    for container in task.containers:
        if getattr(container, "essential", True):
            return container.image
    return task.containers[0].image if task.containers else None


def _check_stop_reason(reason: str | None) -> str:
    """Return the stripped reason; reject malformed ``ferry-emulator:`` directives."""
    reason = (reason or "").strip()
    if reason.startswith(EXIT_REASON_PREFIX):
        if not re.fullmatch(r"-?\d+", reason[len(EXIT_REASON_PREFIX):]):
            raise InvalidParameterException(
                f"ferry emulator: '{reason}' needs an integer exit code, e.g. {EXIT_REASON_PREFIX}1"
            )
    elif reason.startswith(_DIRECTIVE_PREFIX) and reason != FAILED_TO_START_REASON:
        raise InvalidParameterException(
            f"ferry emulator: unknown StopTask directive '{reason}'; use "
            f"'{EXIT_REASON_PREFIX}<N>' or '{FAILED_TO_START_REASON}'"
        )
    return reason


def apply_stop(task: Any, reason: str | None) -> None:
    """Stop ``task`` the way ECS reports it; see :func:`stop_task_semantics`."""
    reason = _check_stop_reason(reason)
    now = _now()
    task.last_status = "STOPPED"
    task.desired_status = "STOPPED"
    task.stopping_at = now
    task.execution_stopped_at = now
    task.stopped_at = now
    task.version = int(getattr(task, "version", None) or 1) + 1

    if reason.startswith(EXIT_REASON_PREFIX):
        code = int(reason[len(EXIT_REASON_PREFIX):])
        task.stop_code = "EssentialContainerExited"
        task.stopped_reason = "Essential container in task exited"
        for container in task.containers:
            container.last_status = "STOPPED"
            container.exitCode = code
            container.reason = None
    elif reason == FAILED_TO_START_REASON:
        task.stop_code = "TaskFailedToStart"
        task.stopped_reason = _cannot_pull_message(_essential_image(task))
        # the task never started: no startedAt, the pull never finished
        task.started_at = None
        task.pull_stopped_at = None
        for container in task.containers:
            container.last_status = "STOPPED"
            container.exitCode = None
            container.reason = _cannot_pull_message(container.image)
            container.runtime_id = None
    else:
        task.stop_code = "UserInitiated"
        task.stopped_reason = reason or "Task stopped by user"
        for container in task.containers:
            container.last_status = "STOPPED"
            container.exitCode = 137  # SIGKILL after the stop timeout
            container.reason = None


def stop_task_semantics() -> None:
    """Stopped tasks carry stop codes, stopped reasons and exit codes.

    AWS: "Amazon ECS stopped tasks error codes" and "Viewing Amazon ECS stopped
    task errors" (Amazon ECS Developer Guide); "StopTask" and "Task" (Amazon
    ECS API Reference).

    moto's StopTask only flips lastStatus/desiredStatus and copies the reason;
    its containers always report exitCode 0 and never stop. The emulator uses
    the StopTask ``reason`` to choose how the task ended:

    * ``ferry-emulator:exit=<N>`` -- the essential containers exited with N:
      stopCode ``EssentialContainerExited``, stoppedReason
      ``Essential container in task exited``, every container lastStatus
      STOPPED with exitCode N.
    * ``ferry-emulator:failed-to-start`` -- the image could not be pulled:
      stopCode ``TaskFailedToStart``, stoppedReason ``CannotPullContainerError:
      pull image manifest has been retried 5 time(s): failed to resolve ref
      <image>: ...``, containers STOPPED with that ``reason`` and NO exitCode;
      startedAt and pullStoppedAt are removed (the task never started).
    * any other ``ferry-emulator:`` reason is rejected (InvalidParameterException),
      so a typo in a scenario fails loudly.
    * anything else -- stopCode ``UserInitiated``, stoppedReason = the reason
      (``Task stopped by user`` when none), containers exitCode 137.

    In every case lastStatus/desiredStatus become STOPPED and stoppingAt,
    executionStoppedAt and stoppedAt are set at once (ECS takes a little while;
    the emulator does not). Stopping an already stopped task returns it
    unchanged, as ECS does. An unknown task is InvalidParameterException
    "The referenced task was not found." (moto raises a bare Exception: 500).
    """

    def make(original: Any) -> Any:
        def stop_task(self: Any, cluster_str: str, task_str: str, reason: str) -> Any:
            task = _find_task(self, cluster_str, task_str)
            if task.desired_status == "STOPPED" and task.last_status == "STOPPED":
                return task
            _check_stop_reason(reason)  # reject a bad directive before moto changes anything
            stopped = original(self, cluster_str, task_str, reason)
            apply_stop(stopped, reason)
            _notify("task-stopped", backend=self, task=stopped)
            return stopped

        return stop_task

    _patch(ecs_models.EC2ContainerServiceBackend, "stop_task", make)


def describe_tasks_reports_missing() -> None:
    """DescribeTasks lists tasks it cannot find under ``failures``.

    AWS: "DescribeTasks" (Amazon ECS API Reference) -- each unknown task is a
    Failure ``{"arn": ..., "reason": "MISSING"}``. moto always returns an empty
    failures list.
    """

    def make(original: Any) -> Any:
        def describe_tasks(self: Any) -> Any:
            result = original(self)
            requested = self._get_param("tasks", []) or []
            found = result.result["tasks"]
            missing = []
            for wanted in requested:
                wanted_id = wanted.split("/")[-1]
                if not any(t.task_arn == wanted or t.id == wanted_id for t in found):
                    missing.append({"arn": wanted, "reason": "MISSING"})
            result.result["failures"] = missing
            return result

        return describe_tasks

    _patch(ecs_responses.EC2ContainerServiceResponse, "describe_tasks", make)


def list_tasks_defaults_to_running() -> None:
    """ListTasks without desiredStatus lists only tasks whose desired status is RUNNING.

    AWS: "ListTasks" (Amazon ECS API Reference): "The default status filter is
    RUNNING". moto lists every task it ever ran, stopped ones included.
    """

    def make(original: Any) -> Any:
        def list_tasks(
            self: Any,
            cluster_str: str | None = None,
            container_instance: str | None = None,
            family: str | None = None,
            started_by: str | None = None,
            service_name: str | None = None,
            desiredStatus: str | None = None,
        ) -> list[Any]:
            return original(
                self,
                cluster_str,
                container_instance,
                family,
                started_by,
                service_name,
                desiredStatus or "RUNNING",
            )

        return list_tasks

    _patch(ecs_models.EC2ContainerServiceBackend, "list_tasks", make)


# --------------------------------------------------------------------------
# 2. task definitions


_TASK_DEFINITION_SHAPE_MEMBERS: set[str] | None = None


def _task_definition_members() -> set[str]:
    global _TASK_DEFINITION_SHAPE_MEMBERS
    if _TASK_DEFINITION_SHAPE_MEMBERS is None:
        import botocore.session

        model = botocore.session.get_session().get_service_model("ecs")
        _TASK_DEFINITION_SHAPE_MEMBERS = set(model.shape_for("TaskDefinition").members)
    return _TASK_DEFINITION_SHAPE_MEMBERS


# RegisterTaskDefinition parameters moto itself stores on the TaskDefinition.
_REGISTER_HANDLED = {
    "family",
    "containerDefinitions",
    "volumes",
    "tags",
    "networkMode",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "taskRoleArn",
    "executionRoleArn",
    "proxyConfiguration",
    "inferenceAccelerators",
    "runtimePlatform",
    "ipcMode",
    "pidMode",
    "ephemeralStorage",
}


def register_task_definition_keeps_every_field() -> None:
    """RegisterTaskDefinition keeps every field the API accepts.

    AWS: "RegisterTaskDefinition" and "TaskDefinition" (Amazon ECS API
    Reference) -- every request field is part of the registered revision and
    DescribeTaskDefinition returns it; registeredAt is set.

    moto passes a fixed list of parameters to its model and silently drops the
    rest (e.g. ``enableFaultInjection``). ferry copies task definitions and must
    keep every field, so the emulator stores any other request parameter that
    the TaskDefinition output shape knows, and sets registeredAt.
    Container definitions are stored whole by moto already.
    """

    def make(original: Any) -> Any:
        def register_task_definition(self: Any) -> Any:
            result = original(self)
            task_definition = result.result["taskDefinition"]
            members = _task_definition_members()
            for key, value in (self._get_params() or {}).items():
                if key not in _REGISTER_HANDLED and key in members and value is not None:
                    setattr(task_definition, key, value)
            task_definition.registered_at = _now()
            return result

        return register_task_definition

    _patch(ecs_responses.EC2ContainerServiceResponse, "register_task_definition", make)


# --------------------------------------------------------------------------
# 3. services and deployments


def _deployment_configuration(service: Any) -> dict[str, Any]:
    config = getattr(service, "deployment_configuration", None)
    if not config:
        config = copy.deepcopy(DEFAULT_DEPLOYMENT_CONFIGURATION)
        service.deployment_configuration = config
    return config


def _merge_deployment_configuration(service: Any, given: dict[str, Any] | None) -> None:
    config = copy.deepcopy(getattr(service, "deployment_configuration", None) or DEFAULT_DEPLOYMENT_CONFIGURATION)
    if given:
        config.update(copy.deepcopy(given))
    service.deployment_configuration = config


def _new_deployment(service: Any, task_definition_arn: str, template: dict[str, Any] | None) -> dict[str, Any]:
    now = _now()
    deployment_id = _new_deployment_id()
    template = template or {}
    network_configuration = getattr(service, "network_configuration", None) or template.get(
        "networkConfiguration"
    )
    deployment = {
        "id": deployment_id,
        "status": "PRIMARY",
        "taskDefinition": task_definition_arn,
        "desiredCount": service.desired_count,
        "pendingCount": service.desired_count,
        "runningCount": 0,
        "failedTasks": 0,
        "createdAt": now,
        "updatedAt": now,
        "launchType": service.launch_type,
        "platformVersion": getattr(service, "platform_version", None) or template.get("platformVersion"),
        "platformFamily": template.get("platformFamily"),
        "networkConfiguration": copy.deepcopy(network_configuration) or None,
        "rolloutState": "IN_PROGRESS",
        "rolloutStateReason": f"ECS deployment {deployment_id} in progress.",
    }
    strategy = getattr(service, "capacity_provider_strategy", None)
    if strategy:
        deployment["capacityProviderStrategy"] = copy.deepcopy(strategy)
    return deployment


# CreateService parameters moto drops, with ECS's defaults where it has one.
_CREATE_SERVICE_EXTRAS: dict[str, Any] = {
    "healthCheckGracePeriodSeconds": None,
    "enableECSManagedTags": False,
    "enableExecuteCommand": False,
    "placementConstraints": None,
    "placementStrategy": None,
    "capacityProviderStrategy": None,
    "availabilityZoneRebalancing": None,
}


def create_service_keeps_its_configuration() -> None:
    """CreateService keeps deploymentConfiguration and the other settings it is given.

    AWS: "CreateService", "DeploymentConfiguration" and
    "DeploymentCircuitBreaker" (Amazon ECS API Reference).

    moto's CreateService drops ``deploymentConfiguration`` (so the circuit
    breaker and its rollback flag are lost), ``healthCheckGracePeriodSeconds``,
    ``enableECSManagedTags``, ``enableExecuteCommand``, placement settings and
    ``capacityProviderStrategy``, and sets no ``createdAt``. The emulator stores
    them (ECS defaults: maximumPercent 200, minimumHealthyPercent 100, circuit
    breaker off) and gives the first deployment an ECS-shaped 19-digit id.
    """

    def make(original: Any) -> Any:
        def create_service(self: Any) -> Any:
            with _LOCK:
                result = original(self)
                service = result.result["service"]
                _merge_deployment_configuration(service, self._get_param("deploymentConfiguration"))
                for key, default in _CREATE_SERVICE_EXTRAS.items():
                    value = self._get_param(key)
                    if value is None:
                        value = default
                    if value is not None:
                        setattr(service, key, value)
                service.created_at = _now()
                for deployment in service.deployments:
                    deployment["id"] = _new_deployment_id()
                    deployment["rolloutStateReason"] = (
                        f"ECS deployment {deployment['id']} "
                        + ("completed." if deployment.get("rolloutState") == "COMPLETED" else "in progress.")
                    )
                    if getattr(service, "capacity_provider_strategy", None):
                        deployment["capacityProviderStrategy"] = copy.deepcopy(
                            service.capacity_provider_strategy
                        )
                for deployment in service.deployments:
                    if deployment.get("rolloutState") == "IN_PROGRESS":
                        _notify("deployment-started", backend=self.ecs_backend, service=service, deployment=deployment)
                return result

        return create_service

    _patch(ecs_responses.EC2ContainerServiceResponse, "create_service", make)


def update_service_starts_a_deployment() -> None:
    """UpdateService with forceNewDeployment or a new task definition starts a deployment.

    AWS: "UpdateService" and "Deployment" (Amazon ECS API Reference);
    "Deploy Amazon ECS services by replacing tasks" (rolling update, Amazon
    ECS Developer Guide).

    moto rewrites the id of the existing deployment in place and stores the
    task definition string the caller passed (``family:rev`` stays short) on
    the service only. The emulator instead:

    * resolves ``taskDefinition`` to its full ARN and stores that on the service;
    * when ``forceNewDeployment`` is true or the task definition changed, turns
      the current PRIMARY deployment into ``ACTIVE`` (pendingCount 0: ECS
      starts no more tasks for it, its running tasks drain later) and inserts a new first
      deployment: id ``ecs-svc/<19 digits>``, status PRIMARY, the service's
      task definition ARN, rolloutState IN_PROGRESS, rolloutStateReason
      ``ECS deployment <id> in progress.``, desiredCount, runningCount 0,
      pendingCount = desiredCount, createdAt/updatedAt now, launchType,
      platform and networkConfiguration copied;
    * keeps ``deploymentConfiguration`` (merging the given keys over the
      stored ones) so DescribeServices returns the circuit breaker;
    * a desiredCount change alone updates the PRIMARY deployment's
      desiredCount (instantly scaled when that deployment has COMPLETED);
    * service runningCount/pendingCount are the sums over its deployments.

    Deployments stay IN_PROGRESS until a scenario ends them with
    :func:`finish_deployment`.
    """

    def make(original: Any) -> Any:
        def update_service(self: Any, service_properties: dict[str, Any]) -> Any:
            props = dict(service_properties)
            with _LOCK:
                cluster_str = props.get("cluster") or "default"
                service_name = (props.get("service") or "").split("/")[-1]
                service = self._get_service(cluster_str, service_name)
                # resolve first so an unknown task definition fails before any change
                new_td_arn = None
                if props.get("task_definition"):
                    new_td_arn = self.describe_task_definition(props["task_definition"]).arn
                saved_deployments = [dict(d) for d in service.deployments]
                saved_config = copy.deepcopy(getattr(service, "deployment_configuration", None))
                old_td_arn = service.task_definition

                result = original(self, service_properties)

                service.deployments = saved_deployments
                service.deployment_configuration = saved_config
                _merge_deployment_configuration(service, props.get("deployment_configuration"))
                if new_td_arn:
                    service.task_definition = new_td_arn
                force = bool(props.get("force_new_deployment"))
                changed = new_td_arn is not None and new_td_arn != old_td_arn
                controller = (getattr(service, "deployment_controller", None) or {}).get("type", "ECS")

                primary = next((d for d in service.deployments if d.get("status") == "PRIMARY"), None)
                if controller == "ECS" and (force or changed):
                    now = _now()
                    for deployment in service.deployments:
                        if deployment.get("status") == "PRIMARY":
                            # superseded: ECS starts no more tasks for it, only drains it
                            deployment["status"] = "ACTIVE"
                            deployment["pendingCount"] = 0
                            deployment["updatedAt"] = now
                    started = _new_deployment(service, service.task_definition, primary)
                    service.deployments.insert(0, started)
                    _notify("deployment-started", backend=self, service=service, deployment=started)
                elif primary is not None and props.get("desired_count") is not None:
                    primary["desiredCount"] = service.desired_count
                    primary["updatedAt"] = _now()
                    if primary.get("rolloutState") == "COMPLETED":
                        primary["runningCount"] = service.desired_count
                        primary["pendingCount"] = 0
                    else:
                        primary["pendingCount"] = max(
                            service.desired_count - int(primary.get("runningCount") or 0), 0
                        )
                _recount_service(service)
                return result

        return update_service

    _patch(ecs_models.EC2ContainerServiceBackend, "update_service", make)


def _failure_threshold(desired: int) -> int:
    # "ServiceDeploymentCircuitBreaker": 0.5 * desired task count, min 3, max 200
    return max(3, min(200, math.ceil(0.5 * desired)))


def finish_deployment(
    cluster: str,
    service: str,
    outcome: str,
    deployment_id: str | None = None,
    reason: str | None = None,
    account_id: str = "123456789012",
    region: str = "us-east-1",
) -> dict[str, Any]:
    """End an IN_PROGRESS deployment as the scenario says (ECS would end it by itself).

    AWS: "Deploy Amazon ECS services by replacing tasks" and "How the Amazon
    ECS deployment circuit breaker detects failures" (Amazon ECS Developer
    Guide); "Deployment", "DeploymentCircuitBreaker" (Amazon ECS API
    Reference); "Amazon ECS service deployment state change events".

    moto's deployments never progress. ``deployment_id`` defaults to the
    service's PRIMARY deployment; only a PRIMARY deployment whose rolloutState
    is IN_PROGRESS can be finished (else :class:`DeploymentConflict`).

    ``COMPLETED``: rolloutState COMPLETED, rolloutStateReason ``ECS deployment
    <id> completed.``, runningCount = desiredCount, pendingCount 0; every
    other deployment is removed (ECS drains the old tasks and drops the ACTIVE
    deployments once the new one is steady). Service events "deployment
    completed" and "has reached a steady state." are added.

    ``FAILED`` (the circuit breaker tripped): rolloutState FAILED,
    rolloutStateReason ``reason`` or ``ECS deployment circuit breaker: tasks
    failed to start.``, failedTasks = the breaker's threshold (0.5 x desired,
    min 3, max 200), runningCount and pendingCount 0. Then, if the service's
    ``deploymentCircuitBreaker`` has ``enable`` and ``rollback`` true and an
    ACTIVE deployment exists, ECS rolls back "to the last deployment that
    completed successfully": the emulator picks the newest ACTIVE deployment
    whose rolloutState is COMPLETED (else the newest ACTIVE one), makes the
    failed deployment ACTIVE, and inserts a NEW PRIMARY deployment (new id)
    running the target's task definition, IN_PROGRESS, with rolloutStateReason
    ``ECS deployment circuit breaker: rolling back to deploymentId <target id>.``;
    the service's taskDefinition becomes the target's. The target stays ACTIVE
    (its tasks still serve) until the rollback deployment is finished in turn.
    Without rollback the failed deployment stays PRIMARY and FAILED, and the
    old ACTIVE deployment keeps running.

    Returns ``{"deployment": <finished deployment>, "rollbackDeployment":
    <new PRIMARY or absent>, "service": {...}}`` in JSON form (timestamps as
    epoch seconds).
    """
    outcome = (outcome or "").upper()
    if outcome not in ("COMPLETED", "FAILED"):
        raise ValueError("outcome must be COMPLETED or FAILED")
    with _LOCK:
        try:
            backend = _backend(account_id, region)
            svc = backend._get_service(cluster, service.split("/")[-1])
        except Exception as exc:  # ClusterNotFound / ServiceNotFound
            raise DeploymentNotFound(f"service {service!r} not found in cluster {cluster!r} ({region})") from exc
        if deployment_id:
            target = next((d for d in svc.deployments if d.get("id") == deployment_id), None)
        else:
            target = next((d for d in svc.deployments if d.get("status") == "PRIMARY"), None)
        if target is None:
            raise DeploymentNotFound(
                f"deployment {deployment_id or 'PRIMARY'!r} not found on service {svc.name!r}"
            )
        if target.get("status") != "PRIMARY":
            raise DeploymentConflict(
                f"deployment {target['id']} is {target.get('status')}, not PRIMARY: "
                "ECS only finishes the newest deployment"
            )
        if target.get("rolloutState") != "IN_PROGRESS":
            raise DeploymentConflict(
                f"deployment {target['id']} already finished: rolloutState {target.get('rolloutState')}"
            )

        now = _now()
        rollback = None
        if outcome == "COMPLETED":
            target["rolloutState"] = "COMPLETED"
            target["rolloutStateReason"] = f"ECS deployment {target['id']} completed."
            target["runningCount"] = target.get("desiredCount", svc.desired_count)
            target["pendingCount"] = 0
            target["updatedAt"] = now
            svc.deployments = [target]
            _service_event(svc, f"(service {svc.name}) (deployment {target['id']}) deployment completed.")
            _service_event(svc, f"(service {svc.name}) has reached a steady state.")
        else:
            target["rolloutState"] = "FAILED"
            target["rolloutStateReason"] = reason or CIRCUIT_BREAKER_FAILED_REASON
            target["failedTasks"] = _failure_threshold(int(target.get("desiredCount") or 0))
            target["runningCount"] = 0
            target["pendingCount"] = 0
            target["updatedAt"] = now
            _service_event(
                svc,
                f"(service {svc.name}) (deployment {target['id']}) deployment failed: tasks failed to start.",
            )
            breaker = _deployment_configuration(svc).get("deploymentCircuitBreaker") or {}
            if breaker.get("enable") and breaker.get("rollback"):
                active = [d for d in svc.deployments if d.get("status") == "ACTIVE"]
                good = next((d for d in active if d.get("rolloutState") == "COMPLETED"), None)
                back_to = good or (active[0] if active else None)
                if back_to is not None:
                    target["status"] = "ACTIVE"
                    svc.task_definition = back_to["taskDefinition"]
                    rollback = _new_deployment(svc, back_to["taskDefinition"], target)
                    rollback["rolloutStateReason"] = (
                        f"ECS deployment circuit breaker: rolling back to deploymentId {back_to['id']}."
                    )
                    svc.deployments.insert(0, rollback)
                    _service_event(
                        svc, f"(service {svc.name}) rolling back to deployment {back_to['id']}."
                    )
        _recount_service(svc)
        _notify("deployment-finished", backend=backend, service=svc, deployment=target)
        if rollback is not None:
            _notify("deployment-started", backend=backend, service=svc, deployment=rollback)

        answer: dict[str, Any] = {
            "deployment": to_json(target),
            "service": {
                "serviceArn": svc.arn,
                "serviceName": svc.name,
                "clusterArn": svc.cluster_arn,
                "taskDefinition": svc.task_definition,
                "desiredCount": svc.desired_count,
                "runningCount": svc.running_count,
                "pendingCount": svc.pending_count,
                "deployments": to_json(svc.deployments),
            },
        }
        if rollback is not None:
            answer["rollbackDeployment"] = to_json(rollback)
        return answer


# --------------------------------------------------------------------------
# 4. state-change notifications (for the event router)


_OBSERVERS: list[Any] = []


def subscribe(callback: Any) -> None:
    """Call ``callback(kind, **data)`` after every ECS state change made here.

    ``kind`` is one of:

    * ``task-started`` (``backend``, ``task``) -- RunTask/StartTask started a task;
    * ``task-stopped`` (``backend``, ``task``) -- a task moved to STOPPED;
    * ``deployment-started`` (``backend``, ``service``, ``deployment``) -- a new
      PRIMARY deployment began (UpdateService, or a circuit-breaker rollback);
    * ``deployment-finished`` (``backend``, ``service``, ``deployment``) -- a
      deployment reached COMPLETED or FAILED.

    Observers only observe: the event router turns these into the EventBridge
    events ECS emits ("Amazon ECS events", Amazon ECS Developer Guide), and the
    scenario below schedules how tasks and deployments end. Callbacks run on
    the thread that made the change, sometimes under this module's lock: they
    must be quick and must not call back into the ECS backend synchronously.
    """
    if callback not in _OBSERVERS:
        _OBSERVERS.append(callback)


def unsubscribe(callback: Any) -> None:
    if callback in _OBSERVERS:
        _OBSERVERS.remove(callback)


def _notify(kind: str, **data: Any) -> None:
    for callback in list(_OBSERVERS):
        try:
            callback(kind, **data)
        except Exception:  # an observer bug must not break the AWS call
            import logging

            logging.getLogger("ferry-emulator").exception("observer failed on %s", kind)


# --------------------------------------------------------------------------
# 5. scenario: tasks and deployments that end by themselves


class _Scheduler:
    """One thread running delayed actions in time order; counts what is pending."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, Any, str]] = []
        self._seq = 0
        self._running = 0
        self._thread: threading.Thread | None = None

    def call_later(self, delay: float, action: Any, label: str) -> None:
        import heapq
        import time

        with self._cond:
            self._seq += 1
            heapq.heappush(self._queue, (time.monotonic() + max(0.0, delay), self._seq, action, label))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ferry-scenario", daemon=True)
                self._thread.start()
            self._cond.notify()

    def pending(self) -> list[str]:
        """Labels of the actions not yet done (running ones included)."""
        with self._cond:
            return [item[3] for item in sorted(self._queue)] + ["(running)"] * self._running

    def clear(self) -> None:
        with self._cond:
            self._queue.clear()

    def _run(self) -> None:
        import heapq
        import logging
        import time

        while True:
            with self._cond:
                while not self._queue or self._queue[0][0] > time.monotonic():
                    timeout = (self._queue[0][0] - time.monotonic()) if self._queue else None
                    self._cond.wait(timeout)
                _, _, action, label = heapq.heappop(self._queue)
                self._running += 1
            try:
                action()
            except Exception:
                logging.getLogger("ferry-emulator").exception("scenario action failed: %s", label)
            finally:
                # the action's own consequences (events, new timers) are registered
                # before it stops counting as pending: "nothing pending" means settled
                with self._cond:
                    self._running -= 1


_TASK_OUTCOMES = ("exit", "failed-to-start", "never")
_DEPLOYMENT_OUTCOMES = ("COMPLETED", "FAILED", "never")

DEFAULT_SCENARIO: dict[str, Any] = {
    # a standalone task (a migration) runs briefly, then its essential container exits 0
    "tasks": {"default": {"outcome": "exit", "exitCode": 0, "after": 0.5}},
    # a rolling deployment reaches steady state shortly after it starts
    "deployments": {"default": {"outcome": "COMPLETED", "after": 0.7}},
}


class Scenario:
    """How standalone tasks and service deployments end, by themselves, in time.

    AWS: "Amazon ECS task lifecycle" -- a task started with RunTask runs until
    its essential container exits, or stops before it started when its image
    cannot be pulled (stopCode TaskFailedToStart); "Deploy Amazon ECS services
    by replacing tasks" and "How the Amazon ECS deployment circuit breaker
    detects failures" -- a deployment started by UpdateService reaches
    COMPLETED once its tasks are steady, or FAILED when the circuit breaker
    trips, after which ECS rolls back if the breaker's rollback is on.

    moto has no clock for any of this. Off by default (the emulator's
    self-test drives every ending by hand); the local stack turns it on with
    ``--scenario`` and changes it with ``POST /_ferry/scenario``::

        {"tasks": {
            "default":        {"outcome": "exit", "exitCode": 0, "after": 0.5},
            "1.2.0":          {"exitCode": 1},                   # any repository's tag 1.2.0
            "shop:1.3.0":     {"outcome": "failed-to-start"},    # repository:tag
            "family:slow":    {"outcome": "never"}               # task definition family
         },
         "deployments": {
            "default":        {"outcome": "COMPLETED", "after": 0.7},
            "shop-prod/api":  {"outcome": "FAILED", "reason": "..."},  # cluster/service
            "worker":         {"after": 3}                              # service
         },
         "replace": false}

    A task's rule is ``default`` overlaid, field by field, with the rules that
    match it, from the least to the most specific: ``<tag>``, then
    ``<repository>:<tag>`` (for the tags ECR holds for the digest its essential
    container runs, an image given by tag counting as that tag; the first tag
    that has a rule), then ``family:<family>``. So a field a ``family:`` rule
    sets wins over the same field of a tag rule: a smoke-test task
    (``family:shop-smoke``) running the same image as a migration keyed by
    ``shop:1.2.0`` gets its own exit code, while a family rule that sets only
    ``after`` keeps the tag rule's outcome. ``exit`` stops the task
    after ``after`` seconds as if the essential containers exited with
    ``exitCode`` (StopTask reason ``ferry-emulator:exit=<N>``);
    ``failed-to-start`` stops it as an image pull failure
    (``ferry-emulator:failed-to-start``); ``never`` leaves it running (a
    migration that outlives its timeout, ended later by hand).

    A deployment's rule is looked up by ``<cluster>/<service>@<tag>`` (a tag
    ECR holds for the image its task definition runs: how a given release's
    deployment ends), then ``<cluster>/<service>``, then
    ``<service>``, then ``default``: ``COMPLETED`` or ``FAILED`` it through
    :func:`finish_deployment` after ``after`` seconds, when it is still the
    PRIMARY IN_PROGRESS deployment (a newer UpdateService makes ECS abandon
    it); ``never`` leaves it IN_PROGRESS. A circuit-breaker rollback
    deployment completes after the default delay.

    ``replace: true`` starts again from the defaults before applying the rest.
    """

    def __init__(self) -> None:
        self.enabled = False
        self.rules: dict[str, dict[str, dict[str, Any]]] = copy.deepcopy(DEFAULT_SCENARIO)
        self.scheduler = _Scheduler()

    # -- configuration

    def configure(self, update: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(update, dict):
            raise ValueError("expected a JSON object")
        unknown = set(update) - {"tasks", "deployments", "replace", "enabled"}
        if unknown:
            raise ValueError(f"unknown scenario key(s): {', '.join(sorted(unknown))}")
        rules = copy.deepcopy(DEFAULT_SCENARIO) if update.get("replace") else copy.deepcopy(self.rules)
        for section, outcomes in (("tasks", _TASK_OUTCOMES), ("deployments", _DEPLOYMENT_OUTCOMES)):
            given = update.get(section) or {}
            if not isinstance(given, dict):
                raise ValueError(f"`{section}` must be an object of selector -> rule")
            for selector, rule in given.items():
                if rule is None:
                    rules[section].pop(selector, None)
                    continue
                rules[section][selector] = self._check_rule(section, selector, rule, outcomes)
        self.rules = rules
        if "enabled" in update:
            self.enabled = bool(update["enabled"])
        return self.describe()

    @staticmethod
    def _check_rule(section: str, selector: str, rule: Any, outcomes: tuple[str, ...]) -> dict[str, Any]:
        where = f"{section}.{selector}"
        if not isinstance(rule, dict):
            raise ValueError(f"{where}: a rule is an object")
        allowed = {"outcome", "after"} | ({"exitCode"} if section == "tasks" else {"reason"})
        unknown = set(rule) - allowed
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}")
        rule = dict(rule)
        if "outcome" in rule:
            if section == "deployments" and isinstance(rule["outcome"], str) and rule["outcome"] != "never":
                rule["outcome"] = rule["outcome"].upper()
            if rule["outcome"] not in outcomes:
                raise ValueError(f"{where}.outcome must be one of {', '.join(outcomes)}")
        if "after" in rule and (not isinstance(rule["after"], (int, float)) or rule["after"] < 0):
            raise ValueError(f"{where}.after must be a number of seconds >= 0")
        if "exitCode" in rule:
            if not isinstance(rule["exitCode"], int) or isinstance(rule["exitCode"], bool):
                raise ValueError(f"{where}.exitCode must be an integer")
            rule.setdefault("outcome", "exit")
        return rule

    def describe(self) -> dict[str, Any]:
        return {"enabled": self.enabled, **copy.deepcopy(self.rules), "pending": self.scheduler.pending()}

    # -- rules

    def _rule(self, section: str, selectors: list[str]) -> tuple[str, dict[str, Any]]:
        table = self.rules[section]
        merged = dict(table.get("default") or DEFAULT_SCENARIO[section]["default"])
        for selector in selectors:
            if selector in table:
                merged.update(table[selector])
                return selector, merged
        return "default", merged

    def task_rule(self, backend: Any, task: Any) -> tuple[str, dict[str, Any]]:
        """(the selectors that matched, joined by ``+``; the merged rule): see the class doc."""
        table = self.rules["tasks"]
        tags = _image_tags(backend, _essential_image(task) or "")
        family = task.task_definition_arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]
        tiers = [[tag for _, tag in tags], [f"{repository}:{tag}" for repository, tag in tags], [f"family:{family}"]]
        merged = dict(table.get("default") or DEFAULT_SCENARIO["tasks"]["default"])
        used = []
        for tier in tiers:  # least specific first: a later tier's fields win
            selector = next((s for s in tier if s in table), None)
            if selector is not None:
                merged.update(table[selector])
                used.append(selector)
        return "+".join(used) or "default", merged

    def deployment_rule(self, service: Any, backend: Any = None, deployment: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        selectors = [f"{service.cluster_name}/{service.name}", service.name]
        if backend is not None and deployment is not None:
            tags = _image_tags(backend, _definition_image(backend, str(deployment.get("taskDefinition") or "")) or "")
            selectors = [f"{selectors[0]}@{tag}" for _, tag in tags] + selectors
        return self._rule("deployments", selectors)

    # -- observer

    def __call__(self, kind: str, **data: Any) -> None:
        if not self.enabled:
            return
        if kind == "task-started":
            self._task_started(data["backend"], data["task"])
        elif kind == "deployment-started":
            self._deployment_started(data["backend"], data["service"], data["deployment"])

    def _task_started(self, backend: Any, task: Any) -> None:
        selector, rule = self.task_rule(backend, task)
        outcome = rule.get("outcome", "exit")
        if outcome == "never":
            return
        reason = (
            FAILED_TO_START_REASON
            if outcome == "failed-to-start"
            else f"{EXIT_REASON_PREFIX}{int(rule.get('exitCode', 0))}"
        )
        cluster, arn = task.cluster_name, task.task_arn

        def stop() -> None:
            if task.last_status == "STOPPED":
                return  # stopped meanwhile (StopTask): ECS would not stop it twice
            backend.stop_task(cluster, arn, reason)

        self.scheduler.call_later(float(rule.get("after", 0.5)), stop, f"stop {arn} ({selector}: {reason})")

    def _deployment_started(self, backend: Any, service: Any, deployment: dict[str, Any]) -> None:
        rollback = str(deployment.get("rolloutStateReason", "")).startswith("ECS deployment circuit breaker: rolling back")
        if rollback:
            selector, rule = "default", dict(self.rules["deployments"].get("default") or {})
            rule["outcome"] = "COMPLETED"
        else:
            selector, rule = self.deployment_rule(service, backend, deployment)
        outcome = rule.get("outcome", "COMPLETED")
        if outcome == "never":
            return
        deployment_id = deployment["id"]
        cluster, name = service.cluster_name, service.name
        account_id, region = backend.account_id, backend.region_name

        def finish() -> None:
            with _LOCK:
                current = next((d for d in service.deployments if d.get("id") == deployment_id), None)
                if not current or current.get("status") != "PRIMARY" or current.get("rolloutState") != "IN_PROGRESS":
                    return  # replaced by a newer deployment, or ended by hand
                finish_deployment(
                    cluster=cluster,
                    service=name,
                    outcome=outcome,
                    deployment_id=deployment_id,
                    reason=rule.get("reason"),
                    account_id=account_id,
                    region=region,
                )

        self.scheduler.call_later(
            float(rule.get("after", 0.7)), finish, f"finish {cluster}/{name} {deployment_id} ({selector}: {outcome})"
        )


def _image_tags(backend: Any, image: str) -> list[tuple[str, str]]:
    """(repository, tag) pairs ECR holds for ``image`` (``registry/repo@digest`` or ``registry/repo:tag``)."""
    if not image:
        return []
    path = image.split("/", 1)[1] if "/" in image and "." in image.split("/", 1)[0] else image
    if "@" in path:
        repository, digest = path.split("@", 1)
        try:
            from moto.ecr.models import ecr_backends

            repo = ecr_backends[backend.account_id][backend.region_name].repositories.get(repository)
        except Exception:
            repo = None
        if repo is None:
            return []
        tags: list[tuple[str, str]] = []
        for candidate in list(repo.images):
            if candidate.get_image_digest() == digest:
                tags.extend((repository, t) for t in candidate.image_tags if t)
        return tags
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = path.rsplit(":", 1)
        return [(repository, tag)]
    return [(path, "latest")]


#: The emulator's one scenario (off until :func:`enable_scenario`).
scenario = Scenario()


def enable_scenario(update: dict[str, Any] | None = None) -> Scenario:
    """Turn the scenario on (with the defaults, or ``update`` applied)."""
    install()
    subscribe(scenario)
    scenario.configure({**(update or {}), "enabled": True})
    return scenario


# --------------------------------------------------------------------------
# 6. refusals: what ECS refuses, for the requests ferry (and the local stack) send
#
# moto accepts almost any request. ECS refuses, before it changes anything, the
# requests below; each refusal names the ECS API Reference page it follows.
# Where the reference names the limit but not ECS's exact words, the message is
# the emulator's (said so in the docstring); the error code and the HTTP status
# (400) are what ferry's error path reads.


#: "Tags with this prefix do not count against your tags per resource limit."
RESERVED_TAG_PREFIX = "aws:"
MAX_TAGS = 50
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
_TAG_PUNCTUATION = set("_.:/=+-@")


def _invalid(message: str) -> Exception:
    return InvalidParameterException(message)


def _client_error(message: str) -> Exception:
    return EcsClientException(message)


def is_reserved_tag_key(key: str) -> bool:
    """``aws:``, ``AWS:`` or any case of it: reserved for AWS's own tags."""
    return key[: len(RESERVED_TAG_PREFIX)].lower() == RESERVED_TAG_PREFIX


def _tag_text_allowed(text: str) -> bool:
    # The Tag shape's pattern: ^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$
    return all(unicodedata.category(ch)[0] in "LZN" or ch in _TAG_PUNCTUATION for ch in text)


def check_tags(tags: Any) -> None:
    """Refuse a request's ``tags`` as ECS does (see :func:`tags_follow_ecs_restrictions`)."""
    if not tags:
        return
    if len(tags) > MAX_TAGS:
        raise _invalid(
            f"1 validation error detected: Value at 'tags' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_TAGS} (got {len(tags)} tags)"
        )
    for index, tag in enumerate(tags, start=1):
        key = str((tag or {}).get("key") or "")
        value = (tag or {}).get("value")
        value = "" if value is None else str(value)
        where = f"tags.{index}.member"
        if not key or len(key) > MAX_TAG_KEY:
            raise _invalid(
                f"1 validation error detected: Value '{key}' at '{where}.key' failed to satisfy "
                f"constraint: Member must have length between 1 and {MAX_TAG_KEY}"
            )
        if len(value) > MAX_TAG_VALUE:
            raise _invalid(
                f"1 validation error detected: Value at '{where}.value' failed to satisfy "
                f"constraint: Member must have length less than or equal to {MAX_TAG_VALUE}"
            )
        for part, text in (("key", key), ("value", value)):
            if not _tag_text_allowed(text):
                raise _invalid(
                    f"1 validation error detected: Value '{text}' at '{where}.{part}' failed to satisfy "
                    "constraint: Member must satisfy regular expression pattern: "
                    r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$"
                )
        if is_reserved_tag_key(key):
            raise _invalid(f"Tag key must not start with aws: ('{key}')")


#: Requests that carry ``tags`` (the local stack's CreateCluster/CreateService
#: included): each is checked by :func:`check_tags` before moto runs it.
_TAGGED_OPERATIONS = (
    "create_cluster",
    "create_service",
    "register_task_definition",
    "run_task",
    "start_task",
    "tag_resource",
)


def tags_follow_ecs_restrictions() -> None:
    """Tags ECS refuses are refused: reserved ``aws:`` keys, too many, too long, bad characters.

    AWS: "Tag" data type, and the ``tags`` parameter of "RegisterTaskDefinition",
    "RunTask" and "TagResource" (Amazon ECS API Reference); "Amazon ECS resource
    tagging" (Amazon ECS Developer Guide), tag restrictions:

    * "Do not use ``aws:``, ``AWS:``, or any upper or lowercase combination of
      such as a prefix for either keys or values as it is reserved for Amazon
      Web Services use." A key with that prefix, in any case, is
      ``InvalidParameterException`` "Tag key must not start with aws:" (ECS's
      own words, as the ECS agent reported them when it sent EC2's
      ``aws:cloudformation:*`` tags: amazon-ecs-agent issue #1704). The
      reference reserves the prefix for values too; the emulator refuses keys
      only, for want of evidence that ECS refuses a value.
    * "Maximum number of tags per resource - 50" (the request's list; the
      ``Tags`` shape's max 50), "Maximum key length - 128 Unicode characters",
      "Maximum value length - 256", a key at least 1 character, and the
      ``TagKey``/``TagValue`` pattern ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*``
      (letters, numbers, spaces and ``+ - = . _ : / @``): each is
      ``InvalidParameterException`` with an AWS-style "1 validation error
      detected" message (the wording is the emulator's).

    Checked on every request that carries tags: CreateCluster, CreateService,
    RegisterTaskDefinition, RunTask, StartTask, TagResource. moto accepts any
    tag. The ``aws:cloudformation:*`` tags CloudFormation itself puts on what it
    creates get there past this check: see :func:`apply_cloudformation_stack_tags`.
    """

    def make(original: Any) -> Any:
        def handler(self: Any) -> Any:
            check_tags(self._get_param("tags"))
            return original(self)

        return handler

    for operation in _TAGGED_OPERATIONS:
        _patch(ecs_responses.EC2ContainerServiceResponse, operation, make)


def family_resolves_to_the_latest_active_revision() -> None:
    """A task definition named by family alone is its latest ACTIVE revision.

    AWS: "DescribeTaskDefinition", "RunTask" and "UpdateService" (Amazon ECS API
    Reference): ``taskDefinition`` -- "The family for the latest ACTIVE
    revision", "If a revision isn't specified, the latest ACTIVE revision is
    used." moto takes the highest revision, deregistered or not. With no ACTIVE
    revision left the family is not found (ClientException "Unable to describe
    task definition.", moto's answer for an unknown family).
    """

    def make(original: Any) -> Any:
        def describe_task_definition(self: Any, task_definition_str: str) -> Any:
            name = (task_definition_str or "").split("/")[-1]
            if ":" in name:
                return original(self, task_definition_str)
            revisions = self.task_definitions.get(name) or {}
            active = [r for r, td in revisions.items() if getattr(td, "status", "ACTIVE") == "ACTIVE"]
            if not active:
                raise TaskDefinitionNotFoundException()
            return revisions[max(active)]

        return describe_task_definition

    _patch(ecs_models.EC2ContainerServiceBackend, "describe_task_definition", make)


def _inactive(backend: Any, reference: str | None) -> bool:
    if not reference:
        return False
    return getattr(backend.describe_task_definition(reference), "status", "ACTIVE") == "INACTIVE"


def inactive_task_definitions_run_nothing() -> None:
    """An INACTIVE (deregistered) revision starts no task and no deployment.

    AWS: "DeregisterTaskDefinition" (Amazon ECS API Reference): "You can't use
    an INACTIVE task definition to run new tasks or create new services, and
    you can't update an existing service to reference an INACTIVE task
    definition." ECS answers:

    * RunTask/StartTask -- ``InvalidParameterException`` "TaskDefinition is
      inactive" (as ECS answered it, DefangLabs/defang pull request #775);
    * UpdateService/CreateService -- ``ClientException`` "TaskDefinition is
      inactive" (as ECS answered UpdateService, aws/aws-cdk issue #33195; the
      same for CreateService).

    moto runs and deploys deregistered revisions. The reference allows "up to a
    10-minute window following deregistration where these restrictions have not
    yet taken effect"; the emulator refuses at once (the strict end of it).
    Existing tasks and services on the revision go on, and a service on it may
    still change its desiredCount (UpdateService without ``taskDefinition``).
    """

    def make_run(original: Any) -> Any:
        def handler(self: Any) -> Any:
            if _inactive(self.ecs_backend, self._get_param("taskDefinition")):
                raise _invalid("TaskDefinition is inactive")
            return original(self)

        return handler

    def make_deploy(original: Any) -> Any:
        def handler(self: Any) -> Any:
            if _inactive(self.ecs_backend, self._get_param("taskDefinition")):
                raise _client_error("TaskDefinition is inactive")
            return original(self)

        return handler

    for operation in ("run_task", "start_task"):
        _patch(ecs_responses.EC2ContainerServiceResponse, operation, make_run)
    for operation in ("update_service", "create_service"):
        _patch(ecs_responses.EC2ContainerServiceResponse, operation, make_deploy)


MAX_RUN_TASK_COUNT = 10
MAX_STARTED_BY = {"run_task": 128, "start_task": 36}
MAX_OVERRIDES = 8192
_STARTED_BY_CHARACTERS = re.compile(r"[A-Za-z0-9_/-]*")


def run_task_checks_its_parameters() -> None:
    """RunTask refuses a bad count, startedBy, overrides or propagateTags.

    AWS: "RunTask" (Amazon ECS API Reference), request parameters:

    * ``count`` -- "You can specify up to 10 tasks for each call": a count
      outside 1..10 is ``InvalidParameterException`` (the emulator's wording);
    * ``startedBy`` -- "Up to 128 letters (uppercase and lowercase), numbers,
      hyphens (-), forward slash (/), and underscores (_) are allowed"
      (StartTask: up to 36). Longer is ``InvalidParameterException``
      "startedBy longer than 128." (ECS's wording, as StartTask answers it for
      36: convox/rack issue #1727); another character is
      ``InvalidParameterException`` (the emulator's wording). ferry's
      ``ferry/<release id>`` fits: ``/`` is allowed;
    * ``overrides`` -- "A total of 8192 characters are allowed for overrides.
      This limit includes the JSON formatting characters of the override
      structure": more is ``InvalidParameterException`` "Container Overrides
      length must be at most 8192" (ECS's wording, e.g. convox/rack issue
      #1906), counted on the compact JSON;
    * ``propagateTags`` -- "An error will be received if you specify the
      SERVICE option when running a task": ``InvalidParameterException``
      (the emulator's wording).

    moto accepts all of these (and runs ``count`` tasks, however many).
    """

    def make(original: Any) -> Any:
        operation = original.__name__
        limit = MAX_STARTED_BY[operation]

        def handler(self: Any) -> Any:
            if operation == "run_task":
                count = self._get_param("count")
                if count is not None and (not isinstance(count, int) or not 1 <= count <= MAX_RUN_TASK_COUNT):
                    raise _invalid(f"count must be between 1 and {MAX_RUN_TASK_COUNT}; got {count}")
            started_by = self._get_param("startedBy")
            if started_by is not None:
                if len(started_by) > limit:
                    raise _invalid(f"startedBy longer than {limit}.")
                if not _STARTED_BY_CHARACTERS.fullmatch(started_by):
                    raise _invalid(
                        "startedBy may contain only letters (uppercase and lowercase), numbers, "
                        f"hyphens (-), forward slash (/), and underscores (_); got '{started_by}'"
                    )
            overrides = self._get_param("overrides")
            if overrides is not None and len(json.dumps(overrides, separators=(",", ":"))) > MAX_OVERRIDES:
                raise _invalid(f"Container Overrides length must be at most {MAX_OVERRIDES}")
            if self._get_param("propagateTags") == "SERVICE":
                raise _invalid(
                    "propagateTags SERVICE is not valid for a standalone task; use TASK_DEFINITION or NONE"
                )
            return original(self)

        return handler

    for operation in ("run_task", "start_task"):
        _patch(ecs_responses.EC2ContainerServiceResponse, operation, make)


MAX_NAME = 255
_NAME_CHARACTERS = re.compile(r"[A-Za-z0-9_-]+")


def register_task_definition_checks_names() -> None:
    """RegisterTaskDefinition refuses a family or container name ECS does not accept.

    AWS: "RegisterTaskDefinition" (``family``: "Up to 255 letters (uppercase
    and lowercase), numbers, underscores, and hyphens are allowed") and
    "ContainerDefinition" (``name``: the same rule) in the Amazon ECS API
    Reference. Either broken is ``ClientException`` (the wording is the
    emulator's). moto accepts any family and any name.
    """

    def make(original: Any) -> Any:
        def handler(self: Any) -> Any:
            family = self._get_param("family")
            if family is not None and not (len(family) <= MAX_NAME and _NAME_CHARACTERS.fullmatch(family)):
                raise _client_error(
                    f"Family '{family}' is not valid: up to {MAX_NAME} letters (uppercase and lowercase), "
                    "numbers, underscores, and hyphens are allowed."
                )
            for container in self._get_param("containerDefinitions") or []:
                name = (container or {}).get("name")
                if name is not None and not (len(name) <= MAX_NAME and _NAME_CHARACTERS.fullmatch(name)):
                    raise _client_error(
                        f"Container name '{name}' is not valid: up to {MAX_NAME} letters (uppercase and "
                        "lowercase), numbers, underscores, and hyphens are allowed."
                    )
            return original(self)

        return handler

    _patch(ecs_responses.EC2ContainerServiceResponse, "register_task_definition", make)


# --------------------------------------------------------------------------
# 7. CloudFormation's own tags


def cloudformation_stack_tags(stack_name: str, stack_id: str, logical_id: str) -> list[dict[str, str]]:
    """The tags CloudFormation puts on a resource it creates, in ECS's shape."""
    return [
        {"key": "aws:cloudformation:stack-name", "value": stack_name},
        {"key": "aws:cloudformation:stack-id", "value": stack_id},
        {"key": "aws:cloudformation:logical-id", "value": logical_id},
    ]


def apply_cloudformation_stack_tags(resource: Any, stack_name: str, stack_id: str, logical_id: str) -> None:
    """THE one place where the emulator puts ``aws:`` tags on an ECS resource.

    AWS: "CloudFormation resource tagging" (AWS CloudFormation Template
    Reference, "Resource tag"): "In addition to any tags you define,
    CloudFormation automatically creates the following stack-level tags with
    the ``aws:`` prefix: ``aws:cloudformation:logical-id``,
    ``aws:cloudformation:stack-id``, ``aws:cloudformation:stack-name``", and
    "The propagation of stack-level tags to resources, including tags with the
    ``aws:`` prefix, varies by resource type."

    A caller cannot send these tags (:func:`tags_follow_ecs_restrictions`
    refuses them); AWS adds them itself. So does this helper: straight onto
    moto's model, past the refusals, replacing any earlier value of the three
    keys. Only :func:`cloudformation_creations_carry_stack_tags` calls it, for
    the requests the local stack's CloudFormation (``cfn.py``) marks as its own.
    """
    ours = cloudformation_stack_tags(stack_name, stack_id, logical_id)
    keys = {t["key"] for t in ours}
    kept = [t for t in (getattr(resource, "tags", None) or []) if t.get("key") not in keys]
    resource.tags = kept + ours


def _cloudformation_request(handler: Any) -> dict[str, str] | None:
    from cfn import CLOUDFORMATION_HEADER

    raw = None
    for name, value in (getattr(handler, "headers", None) or {}).items():
        if name.lower() == CLOUDFORMATION_HEADER.lower():
            raw = value
    if not raw:
        return None
    try:
        stack = json.loads(raw)
        return {k: str(stack[k]) for k in ("stack-name", "stack-id", "logical-id")}
    except (ValueError, KeyError, TypeError) as exc:
        raise _invalid(f"ferry emulator: malformed {CLOUDFORMATION_HEADER} header: {exc}") from exc


_CREATED = {"create_cluster": "cluster", "create_service": "service", "register_task_definition": "taskDefinition"}


def cloudformation_creations_carry_stack_tags() -> None:
    """What the local stack's CloudFormation creates carries CloudFormation's tags.

    AWS: "CloudFormation resource tagging" (see
    :func:`apply_cloudformation_stack_tags`). ``cfn.py`` applies templates
    through the service APIs and marks the CreateCluster, CreateService and
    RegisterTaskDefinition calls it makes for a resource type CloudFormation
    tags with the ``X-Ferry-Emulator-CloudFormation`` header
    (``{"stack-name", "stack-id", "logical-id"}``); the resource it creates then
    gets the three ``aws:cloudformation:*`` tags, after the request's own tags.
    Which types are marked is ``cfn.STACK_TAGGED_TYPES`` (CloudFormation's
    propagation "varies by resource type").
    """

    def make(original: Any) -> Any:
        member = _CREATED[original.__name__]

        def handler(self: Any) -> Any:
            stack = _cloudformation_request(self)
            result = original(self)
            if stack is not None:
                apply_cloudformation_stack_tags(
                    result.result[member], stack["stack-name"], stack["stack-id"], stack["logical-id"]
                )
            return result

        return handler

    for operation in _CREATED:
        _patch(ecs_responses.EC2ContainerServiceResponse, operation, make)


# --------------------------------------------------------------------------


def install() -> None:
    """Apply every behaviour in this module to moto (idempotent)."""
    global _INSTALLED
    with _LOCK:
        if _INSTALLED:
            return
        tasks_stay_running_until_stopped()
        run_task_reports_every_container()
        container_memory_is_optional()
        stop_task_semantics()
        describe_tasks_reports_missing()
        list_tasks_defaults_to_running()
        register_task_definition_keeps_every_field()
        create_service_keeps_its_configuration()
        update_service_starts_a_deployment()
        family_resolves_to_the_latest_active_revision()
        # refusals wrap the handlers above: ECS refuses before anything changes
        cloudformation_creations_carry_stack_tags()
        tags_follow_ecs_restrictions()
        inactive_task_definitions_run_nothing()
        run_task_checks_its_parameters()
        register_task_definition_checks_names()
        _INSTALLED = True
