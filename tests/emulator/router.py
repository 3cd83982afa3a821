"""ferry's local EventBridge: state changes in the emulator become AWS events,
delivered to the functions whose rule in ``template.yaml`` matches them.

It runs inside the emulator process (``ferry_emulator.py --router template.yaml``)
so it sees moto's state directly, and it emits what AWS would emit, in the
shapes AWS documents (compare ``events/*.json``):

==============================  ===========================================================
AWS source / detail-type        emitted when
==============================  ===========================================================
``aws.ecr``                     ``PutImage`` succeeds: ``action-type`` PUSH, ``result``
``ECR Image Action``            SUCCESS, ``repository-name``, ``image-digest``,
                                ``image-tag`` ("Amazon ECR events and EventBridge")
``aws.ecs``                     a task starts (RunTask: RUNNING) or moves to STOPPED
``ECS Task State Change``       (StopTask, or the scenario in ``ecs_behaviours.py`` ending a
                                migration): ``detail`` is the described task with ISO-8601
                                timestamps ("Amazon ECS task state change events")
``aws.ecs``                     a deployment starts (``SERVICE_DEPLOYMENT_IN_PROGRESS``),
``ECS Deployment State Change`` completes (``..._COMPLETED``) or fails (``..._FAILED``);
                                ``resources[0]`` is the service ARN ("Amazon ECS service
                                deployment state change events")
``aws.secretsmanager``          a staging label other than AWSPENDING and AWSPREVIOUS moves
``Secret Label Updated``        to a new version (PutSecretValue, UpdateSecret with a value,
                                UpdateSecretVersionStage, RotateSecret): ``name``,
                                ``labelUpdated``, ``versionId``; ``resources`` the secret's
                                ARN ("Secret Label Updated event", Secrets Manager User
                                Guide)
``aws.cloudwatch``              ``SetAlarmState`` changes an alarm's state: ``state``,
``CloudWatch Alarm State        ``previousState``, ``configuration`` ("Alarm events and
Change``                        EventBridge", CloudWatch User Guide)
(any)                           ``PutEvents`` on the default bus (ferry's own ``Release
                                State Change`` events land here: logged, and routed like
                                any other event)
==============================  ===========================================================

**EventBridge Scheduler** (not an event: a schedule invokes its target
directly). The router polls moto's schedules every ``SCHEDULE_POLL_SECONDS``
(0.2 s; :mod:`scheduler_behaviours` reads them) and fires each ENABLED
one-time schedule when its ``at()`` time (in its ``ScheduleExpressionTimezone``)
has come -- at once if the time is already past: the target's ``Input``
(parsed JSON; ``{}`` if none) goes to the Lambda function the target ARN
names (``arn:aws:lambda:<region>:<account>:function:<name>`` -> the template
function whose ``FunctionName`` is ``<name>`` -- a ``Fn::Sub`` such as
``${AWS::StackName}-watch`` matches ``ferry-local-watch`` --, or whose logical
id ends it, as ``<stack>-<LogicalId>``; else ``<name>`` as it is) through the same
asynchronous delivery as events (Lambda's retries included); then
``ActionAfterCompletion: DELETE`` deletes the schedule. Log: ``schedule``
(``fire_id``, name, group, target, binary, input, copies, origin ``at`` or
``fire``), the ``invoke``/``reply`` entries with ``event_id`` = the
``fire_id``, then ``schedule-deleted``. ``rate()``/``cron()`` schedules never
fire here.

* ``GET /_ferry/scheduler`` -> ``{"schedules": [{name, group, arn, expression,
  timezone, at, in, state, status, action_after_completion, target, role,
  function, binary, input, ...}], "horizon"}`` (status ``pending`` / ``fired``
  / ``DISABLED`` / ``recurring ...``);
* ``POST /_ferry/scheduler/fire`` ``{"name", "group"?, "copies"?: N, "account"?,
  "region"?}`` -> fires it now as if its time came (N copies: Scheduler
  delivers at least once), then applies ``ActionAfterCompletion``; 404 when
  there is no such schedule (fired and deleted, or never created).

**Settled.** ``GET /_ferry/router/status`` has ``schedules``: ``{"pending": N,
"next": {"name", "group", "at", "in"} | null, "horizon": s}`` (ENABLED one-time
schedules not fired yet). A pending schedule due within ``schedule_horizon``
seconds (default 10; overdue ones included) is also listed in ``scheduled``,
so ``Stack.settle()`` waits for it to fire and its delivery to end; a later
one is not (a 10-minute bake does not keep the stack unsettled): fire it with
``/_ferry/scheduler/fire``, or wait until ``schedules.pending`` drops.

The ECS observations come from :func:`ecs_behaviours.subscribe`; ECR,
CloudWatch and EventBridge are observed by wrapping the moto backend method
that makes the change (observation only: the call and its result are
unchanged).

**Rules.** The rules are the ``Events`` of ``Type: EventBridgeRule`` of every
``AWS::Serverless::Function`` in ``template.yaml`` (read with a YAML loader that
tolerates CloudFormation tags such as ``!Ref``): there is no second copy of the
patterns. :func:`matches` implements EventBridge's content filtering (exact
values, nested ``detail``, arrays, ``prefix``, ``suffix``, ``anything-but``,
``exists``, ``numeric``, ``equals-ignore-case``, ``wildcard``, ``$or``).

**Delivery** is asynchronous, as EventBridge's asynchronous Lambda invoke is:
each matching function is invoked on its own thread through the Lambda Invoke
API of the local runtime (``POST {functions_url}/2015-03-31/functions/<binary>/invocations``).
A function error (``X-Amz-Function-Error``, or the runtime unreachable) is
retried up to the function's ``EventInvokeConfig.MaximumRetryAttempts``
(template; Lambda's default 2) after short delays (Lambda waits ~1 and ~2
minutes; here ``retry_delays``, default 0.5 s and 1 s). A reply
``{"ok": false, ...}`` is a handled answer, not an error, and is not retried.

**Chaos** (EventBridge delivers at least once, in no guaranteed order):
``POST /_ferry/router/config`` with ``{"chaos": [rule, ...]}``, each rule
``{"match": <event pattern>, "copies": N, "delay": s, "jitter": s, "stagger": s,
"hold": N, "spacing": s, "times": N, "drop": bool}``: deliver N copies at once
(or copy k ``(k-1) * stagger`` later), after a delay, each after a random
extra delay up to ``jitter``; hold matching events until N are held, then
deliver them newest first, ``spacing`` apart; apply to the next ``times``
matching events only; lose the event. ``POST /_ferry/router/redeliver``
``{"id": <event id>}`` delivers an event from the log once more, later (the
duplicate EventBridge may send after the original was handled).

A chaos rule applies only to an event that matched a function's rule
(``times`` counts those). ``{"match": {"source": ["aws.cloudwatch"], "detail":
{"alarmName": ["shop-prod-5xx"]}}, "drop": true, "times": 1}`` loses the next
ALARM event of that alarm while ``SetAlarmState`` still changes the alarm
(``DescribeAlarms`` tells the truth).

**Log** (``GET /_ferry/router/log?since=SEQ``): every event emitted (with the
functions it matched), every schedule fired, every invocation and every reply,
for the demo's timeline and the tests' assertions. ``GET /_ferry/router/status``
says whether anything is still in flight (deliveries, held events, scenario
timers, schedules due within the horizon).
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import logging
import random
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any, Callable, Iterator

log = logging.getLogger("ferry-router")

DEFAULT_RETRY_DELAYS = [0.5, 1.0]
INVOKE_TIMEOUT_SECONDS = 120.0
#: how often the router looks for due EventBridge Scheduler schedules
SCHEDULE_POLL_SECONDS = 0.2
#: a pending schedule that fires within this many seconds keeps the stack unsettled
DEFAULT_SCHEDULE_HORIZON = 10.0


# --------------------------------------------------------------------------
# template.yaml


def load_template(path: str) -> dict[str, Any]:
    """template.yaml, CloudFormation short-form tags tolerated (see cfn.py)."""
    from cfn import load_template as load

    return load(path)


class Rule:
    """One EventBridge rule of one function in the template."""

    def __init__(self, function: str, binary: str, name: str, pattern: dict[str, Any], retries: int):
        self.function = function  # logical id, e.g. DeployFunction
        self.binary = binary  # e.g. ferry-deploy
        self.name = name  # the event's key under Events, e.g. EcrPush
        self.pattern = pattern
        self.retries = retries

    def as_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "binary": self.binary,
            "rule": self.name,
            "pattern": self.pattern,
            "maximumRetryAttempts": self.retries,
        }


def _serverless_functions(template_path: str) -> Iterator[tuple[str, dict[str, Any], str, int]]:
    """Every ``AWS::Serverless::Function`` of the template: logical id, properties,
    binary, and Lambda's retries of an asynchronous invocation."""
    template = load_template(template_path)
    globals_fn = ((template.get("Globals") or {}).get("Function") or {})
    default_retries = ((globals_fn.get("EventInvokeConfig") or {}).get("MaximumRetryAttempts", 2))
    for logical_id, resource in (template.get("Resources") or {}).items():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.get("Properties") or {}
        binary = ((resource.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary") or logical_id
        retries = (properties.get("EventInvokeConfig") or {}).get("MaximumRetryAttempts", default_retries)
        yield logical_id, properties, binary, int(retries)


def load_rules(template_path: str) -> list[Rule]:
    """Every ``EventBridgeRule`` event of every function in the template."""
    rules = []
    for logical_id, properties, binary, retries in _serverless_functions(template_path):
        for name, event in (properties.get("Events") or {}).items():
            if not isinstance(event, dict) or event.get("Type") != "EventBridgeRule":
                continue
            pattern = (event.get("Properties") or {}).get("Pattern")
            if not isinstance(pattern, dict):
                raise ValueError(
                    f"{template_path}: {logical_id}.Events.{name}.Properties.Pattern must be a plain "
                    f"mapping (the router reads it), got {type(pattern).__name__}"
                )
            check_pattern(pattern, f"{logical_id}.Events.{name}.Pattern")
            rules.append(Rule(logical_id, binary, name, pattern, retries))
    return rules


class Function:
    """One function of the template, as a schedule's Lambda target resolves to it."""

    def __init__(self, logical_id: str, binary: str, function_name: Any, retries: int):
        self.logical_id = logical_id
        self.binary = binary
        # FunctionName: a plain string, or a ``Fn::Sub`` of pseudo parameters
        # (``{"Fn::Sub": "${AWS::StackName}-watch"}``): matched with each ``${...}``
        # standing for any name part, since the router is not told the stack name.
        self.function_name = function_name if isinstance(function_name, str) else None
        sub = function_name.get("Fn::Sub") if isinstance(function_name, dict) else None
        self.name_pattern = None
        if isinstance(sub, str) and "${" in sub:
            parts = re.split(r"\$\{[^}]+\}", sub)
            self.name_pattern = re.compile("[A-Za-z0-9_-]+".join(re.escape(part) for part in parts) + "$")
        self.retries = retries

    def named(self, name: str) -> bool:
        """Is ``name`` (from a function ARN) this function? The local runtime names a
        function ``FunctionName`` (resolved: ``${AWS::StackName}-watch`` ->
        ``ferry-local-watch``), else ``<stack name>-<logical id>``; it also answers
        to the logical id and the binary."""
        if name in (self.logical_id, self.binary, self.function_name) or name.endswith(f"-{self.logical_id}"):
            return True
        return bool(self.name_pattern and self.name_pattern.match(name))


def load_functions(template_path: str) -> list[Function]:
    """Every ``AWS::Serverless::Function`` of the template (binary, retries)."""
    return [
        Function(logical_id, binary, properties.get("FunctionName"), retries)
        for logical_id, properties, binary, retries in _serverless_functions(template_path)
    ]


# --------------------------------------------------------------------------
# EventBridge pattern matching

_MATCHER_KEYS = {"prefix", "suffix", "anything-but", "exists", "numeric", "equals-ignore-case", "wildcard", "cidr"}


def check_pattern(pattern: Any, where: str = "pattern") -> None:
    """Reject what EventBridge would reject: leaves must be arrays of matchers."""
    if not isinstance(pattern, dict):
        raise ValueError(f"{where}: an event pattern is a JSON object")
    for key, value in pattern.items():
        if key == "$or":
            if not isinstance(value, list) or not value:
                raise ValueError(f"{where}.$or: a non-empty array of patterns")
            for i, alternative in enumerate(value):
                check_pattern(alternative, f"{where}.$or[{i}]")
        elif isinstance(value, dict):
            check_pattern(value, f"{where}.{key}")
        elif isinstance(value, list):
            for matcher in value:
                if isinstance(matcher, dict):
                    unknown = set(matcher) - _MATCHER_KEYS
                    if len(matcher) != 1 or unknown:
                        raise ValueError(f"{where}.{key}: unsupported matcher {matcher}")
                    if "cidr" in matcher:
                        raise ValueError(f"{where}.{key}: cidr matching is not implemented by the local router")
                elif isinstance(matcher, list):
                    raise ValueError(f"{where}.{key}: nested arrays are not matchers")
        else:
            raise ValueError(f"{where}.{key}: a leaf must be an array of values or matchers, got {value!r}")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _scalar_equal(expected: Any, actual: Any) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    e, a = _number(expected), _number(actual)
    if e is not None or a is not None:
        return e is not None and a is not None and e == a
    return expected == actual


def _wildcard(pattern: str, value: str) -> bool:
    regex = "".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern))
    return re.fullmatch(regex, value, re.S) is not None


def _numeric(conditions: list[Any], value: Any) -> bool:
    number = _number(value)
    if number is None:
        return False
    ops = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        "=": lambda a, b: a == b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    for i in range(0, len(conditions) - 1, 2):
        op, bound = conditions[i], _number(conditions[i + 1])
        if op not in ops or bound is None or not ops[op](number, bound):
            return False
    return True


def _matcher(matcher: Any, value: Any) -> bool:
    """One matcher against one (non-array) present value."""
    if not isinstance(matcher, dict):
        return _scalar_equal(matcher, value)
    (kind, arg), = matcher.items()
    if kind == "prefix":
        if isinstance(arg, dict) and "equals-ignore-case" in arg:
            return isinstance(value, str) and value.lower().startswith(str(arg["equals-ignore-case"]).lower())
        return isinstance(value, str) and value.startswith(arg)
    if kind == "suffix":
        if isinstance(arg, dict) and "equals-ignore-case" in arg:
            return isinstance(value, str) and value.lower().endswith(str(arg["equals-ignore-case"]).lower())
        return isinstance(value, str) and value.endswith(arg)
    if kind == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == str(arg).lower()
    if kind == "wildcard":
        return isinstance(value, str) and _wildcard(arg, value)
    if kind == "numeric":
        return _numeric(arg, value)
    if kind == "anything-but":
        if isinstance(arg, list):
            return not any(_scalar_equal(a, value) for a in arg)
        if isinstance(arg, dict):
            return not _matcher(arg, value)
        return not _scalar_equal(arg, value)
    if kind == "exists":
        return bool(arg)  # the value is present
    return False


def _field_matches(matchers: list[Any], present: bool, value: Any) -> bool:
    if not present:
        return any(isinstance(m, dict) and m.get("exists") is False for m in matchers)
    values = value if isinstance(value, list) else [value]
    for matcher in matchers:
        if isinstance(matcher, dict) and "exists" in matcher:
            if matcher["exists"]:
                return True
            continue
        if isinstance(matcher, dict) and "anything-but" in matcher and isinstance(value, list):
            # every element must avoid the excluded values
            if values and all(_matcher(matcher, v) for v in values):
                return True
            continue
        if any(_matcher(matcher, v) for v in values):
            return True
    return False


def matches(pattern: dict[str, Any], event: Any) -> bool:
    """EventBridge content filtering: does ``event`` match ``pattern``?"""
    if not isinstance(event, dict):
        return False
    for key, expected in pattern.items():
        if key == "$or":
            if not any(matches(alternative, event) for alternative in expected):
                return False
            continue
        present = key in event
        value = event.get(key)
        if isinstance(expected, dict):
            if not present:
                # a nested pattern on a missing object matches only if every
                # leaf below accepts a missing field (exists: false)
                if not _only_absent(expected):
                    return False
                continue
            if isinstance(value, list):
                if not any(matches(expected, v) for v in value):
                    return False
            elif not matches(expected, value):
                return False
            continue
        if not _field_matches(expected, present, value):
            return False
    return True


def _only_absent(pattern: dict[str, Any]) -> bool:
    for key, expected in pattern.items():
        if key == "$or":
            if not any(_only_absent(p) for p in expected):
                return False
        elif isinstance(expected, dict):
            if not _only_absent(expected):
                return False
        elif not _field_matches(expected, False, None):
            return False
    return True


# --------------------------------------------------------------------------
# event shapes


def _iso(value: Any, millis: bool = True) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        value = _dt.datetime.fromtimestamp(value, tz=_dt.timezone.utc)
    if value.tzinfo is not None:
        value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    if millis:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)


def envelope(source: str, detail_type: str, account: str, region: str, resources: list[str], detail: Any) -> dict[str, Any]:
    """The EventBridge envelope every AWS service event has."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": _iso(_now(), millis=False),
        "region": region,
        "resources": resources,
        "detail": detail,
    }


def ecr_push_event(account: str, region: str, repository: str, digest: str, tag: str | None) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "result": "SUCCESS",
        "repository-name": repository,
        "image-digest": digest,
        "action-type": "PUSH",
    }
    if tag:
        detail["image-tag"] = tag
    return envelope("aws.ecr", "ECR Image Action", account, region, [], detail)


#: labels Secrets Manager sends no ``Secret Label Updated`` for: "for all labels
#: except AWSPENDING and AWSPREVIOUS" (Secret Label Updated event, Secrets Manager
#: User Guide,
#: https://docs.aws.amazon.com/secretsmanager/latest/userguide/event-detail-secret-label-updated-secretsmanager.html)
UNANNOUNCED_SECRET_LABELS = frozenset({"AWSPENDING", "AWSPREVIOUS"})


def secret_label_updated(account: str, region: str, secret_arn: str, name: str, label: str, version_id: str) -> dict[str, Any]:
    """Secrets Manager's native event (no CloudTrail trail needed): ``label`` of
    the secret ``name`` moved to ``version_id``; ``resources`` is the secret's ARN
    ("Secret event notifications", Secrets Manager User Guide)."""
    detail = {"name": name, "labelUpdated": label, "versionId": version_id}
    return envelope("aws.secretsmanager", "Secret Label Updated", account, region, [secret_arn], detail)


def secret_labels(secret: Any) -> dict[str, str]:
    """Each staging label of a moto secret -> the version it is attached to."""
    versions = getattr(secret, "versions", None) or {}
    return {label: version_id for version_id, version in versions.items() for label in version.get("version_stages") or []}


def moved_secret_labels(before: dict[str, str], after: dict[str, str]) -> list[tuple[str, str]]:
    """The announced labels now on another version than before (a label attached
    for the first time included): (label, version), sorted."""
    return sorted(
        (label, version) for label, version in after.items() if label not in UNANNOUNCED_SECRET_LABELS and before.get(label) != version
    )


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def task_detail(task: Any) -> dict[str, Any]:
    """The ``detail`` of an ECS Task State Change: the described task, ISO timestamps."""
    stopped = task.last_status == "STOPPED"
    containers = []
    for c in getattr(task, "containers", []) or []:
        containers.append(
            {
                "containerArn": getattr(c, "container_arn", None),
                "exitCode": getattr(c, "exitCode", None),
                "lastStatus": getattr(c, "last_status", None),
                "name": getattr(c, "name", None),
                "image": getattr(c, "image", None),
                "imageDigest": getattr(c, "image_digest", None),
                "runtimeId": getattr(c, "runtime_id", None),
                "taskArn": task.task_arn,
                "networkInterfaces": getattr(c, "network_interfaces", None) or None,
                "cpu": getattr(c, "cpu", None),
                "memory": getattr(c, "memory", None),
                "memoryReservation": getattr(c, "memory_reservation", None),
                "reason": getattr(c, "reason", None),
                "healthStatus": getattr(c, "health_status", None),
            }
        )
    attachments = []
    for a in getattr(task, "attachments", []) or []:
        attachments.append(
            {
                "id": a.get("id"),
                "type": "eni" if a.get("type") == "ElasticNetworkInterface" else a.get("type"),
                "status": "DELETED" if stopped else a.get("status"),
                "details": a.get("details"),
            }
        )
    detail = {
        "attachments": attachments or None,
        "availabilityZone": getattr(task, "availability_zone", None),
        "clusterArn": task.cluster_arn,
        "connectivity": getattr(task, "connectivity", None),
        "connectivityAt": _iso(getattr(task, "connectivity_at", None)),
        "containers": containers,
        "cpu": getattr(task, "cpu", None),
        "createdAt": _iso(getattr(task, "created_at", None)),
        "desiredStatus": task.desired_status,
        "executionStoppedAt": _iso(getattr(task, "execution_stopped_at", None)),
        "group": getattr(task, "group", None),
        "healthStatus": getattr(task, "health_status", None),
        "launchType": getattr(task, "launch_type", None) or None,
        "lastStatus": task.last_status,
        "memory": getattr(task, "memory", None),
        "overrides": getattr(task, "overrides", None) or {"containerOverrides": []},
        "platformVersion": getattr(task, "platform_version", None),
        "platformFamily": getattr(task, "platform_family", None),
        "pullStartedAt": _iso(getattr(task, "pull_started_at", None)),
        "pullStoppedAt": _iso(getattr(task, "pull_stopped_at", None)),
        "startedAt": _iso(getattr(task, "started_at", None)),
        "startedBy": getattr(task, "started_by", None) or None,
        "stopCode": getattr(task, "stop_code", None),
        "stoppedAt": _iso(getattr(task, "stopped_at", None)),
        "stoppedReason": getattr(task, "stopped_reason", None) or None,
        "stoppingAt": _iso(getattr(task, "stopping_at", None)),
        "taskArn": task.task_arn,
        "taskDefinitionArn": task.task_definition_arn,
        "updatedAt": _iso(getattr(task, "stopped_at", None) or getattr(task, "started_at", None) or _now()),
        "version": getattr(task, "version", None),
    }
    return _drop_none(detail)


def task_state_change(account: str, region: str, task: Any) -> dict[str, Any]:
    return envelope("aws.ecs", "ECS Task State Change", account, region, [task.task_arn], task_detail(task))


def deployment_state_change(account: str, region: str, service: Any, deployment: dict[str, Any]) -> dict[str, Any]:
    state = deployment.get("rolloutState")
    name, kind = {
        "COMPLETED": ("SERVICE_DEPLOYMENT_COMPLETED", "INFO"),
        "FAILED": ("SERVICE_DEPLOYMENT_FAILED", "ERROR"),
    }.get(state, ("SERVICE_DEPLOYMENT_IN_PROGRESS", "INFO"))
    reason = deployment.get("rolloutStateReason") or f"ECS deployment {deployment['id']} {state or 'IN_PROGRESS'}."
    detail = {
        "eventType": kind,
        "eventName": name,
        "deploymentId": deployment["id"],
        "updatedAt": _iso(deployment.get("updatedAt") or _now()),
        "reason": reason,
    }
    return envelope("aws.ecs", "ECS Deployment State Change", account, region, [service.arn], detail)


def _alarm_time(value: Any) -> str:
    if value is None:
        value = _now()
    if value.tzinfo is not None:
        value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def alarm_state_change(account: str, region: str, alarm: Any, previous: dict[str, Any]) -> dict[str, Any]:
    dimensions = {d.name: d.value for d in getattr(alarm, "dimensions", []) or []}
    metric: dict[str, Any] = {
        "id": "m1",
        "metricStat": {
            "metric": {"dimensions": dimensions, "name": alarm.metric_name, "namespace": alarm.namespace},
            "period": alarm.period,
            "stat": alarm.statistic or alarm.extended_statistic,
        },
        "returnData": True,
    }
    detail = {
        "alarmName": alarm.name,
        "state": {
            "value": alarm.state_value,
            "reason": alarm.state_reason,
            "reasonData": alarm.state_reason_data,
            "timestamp": _alarm_time(alarm.state_updated_timestamp),
        },
        "previousState": {
            "value": previous["value"],
            "reason": previous["reason"],
            "reasonData": previous["reasonData"],
            "timestamp": _alarm_time(previous["timestamp"]),
        },
        "configuration": {"description": alarm.description, "metrics": [metric]},
    }
    return envelope("aws.cloudwatch", "CloudWatch Alarm State Change", account, region, [alarm.alarm_arn], _drop_none(detail))


def summarize(event: dict[str, Any]) -> str:
    """One line a person reads in a timeline."""
    detail = event.get("detail") or {}
    kind = event.get("detail-type")
    if kind == "ECR Image Action":
        return f"{detail.get('action-type')} {detail.get('repository-name')}:{detail.get('image-tag', '<untagged>')} ({str(detail.get('image-digest', ''))[:19]}…) {detail.get('result')}"
    if kind == "ECS Task State Change":
        codes = ",".join(
            f"{c.get('name')}={c.get('exitCode', '-')}" for c in detail.get("containers", [])
        )
        task = str(detail.get("taskArn", "")).rsplit("/", 1)[-1][:8]
        family = str(detail.get("taskDefinitionArn", "")).rsplit("/", 1)[-1]
        if detail.get("lastStatus") != "STOPPED":
            return f"task {task} ({family}) {detail.get('lastStatus')} startedBy {detail.get('startedBy', '-')}"
        return f"task {task} ({family}) STOPPED {detail.get('stopCode', '')} exit {codes} startedBy {detail.get('startedBy', '-')}"
    if kind == "ECS Deployment State Change":
        service = "/".join(str((event.get("resources") or [""])[0]).split("/")[-2:])
        return f"{service} {detail.get('eventName')} {detail.get('deploymentId')}"
    if kind == "Secret Label Updated":
        return f"secret {detail.get('name')} {detail.get('labelUpdated')} -> version {detail.get('versionId')}"
    if kind == "CloudWatch Alarm State Change":
        return f"alarm {detail.get('alarmName')} {detail.get('previousState', {}).get('value')} -> {detail.get('state', {}).get('value')}"
    if event.get("source") == "ferry":
        before = detail.get("previousState")
        text = f"release {detail.get('releaseId')} ({detail.get('repository')}:{detail.get('tag')}) "
        text += f"{before} -> {detail.get('state')}" if before else f"{detail.get('state')}"
        if detail.get("reason"):
            text += f": {detail['reason']}"
        return text
    return f"{event.get('source')} {kind}"


# --------------------------------------------------------------------------
# the router


class ChaosRule:
    def __init__(self, spec: dict[str, Any]):
        allowed = {"match", "copies", "delay", "jitter", "hold", "times", "drop", "spacing", "stagger"}
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"chaos rule: unknown field(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}")
        self.match = spec.get("match") or {}
        check_pattern(self.match, "chaos.match")
        self.copies = int(spec.get("copies", 1))
        self.delay = float(spec.get("delay", 0))
        self.jitter = float(spec.get("jitter", 0))
        self.hold = int(spec.get("hold", 0))
        self.spacing = float(spec.get("spacing", 0.3))
        self.stagger = float(spec.get("stagger", 0))
        self.times = spec.get("times")
        self.drop = bool(spec.get("drop", False))
        if self.copies < 1 or self.delay < 0 or self.jitter < 0 or self.hold < 0:
            raise ValueError("chaos rule: copies >= 1, delay/jitter/hold >= 0")
        self.held: list[tuple[dict[str, Any], list[Rule]]] = []
        self.spec = spec

    def as_json(self) -> dict[str, Any]:
        return {**self.spec, "remaining": self.times, "holding": len(self.held)}


class Router:
    def __init__(self, template_path: str | None, functions_url: str | None = None):
        self.template_path = template_path
        self.rules: list[Rule] = load_rules(template_path) if template_path else []
        self.functions_url = functions_url
        self.retry_delays = list(DEFAULT_RETRY_DELAYS)
        self.chaos: list[ChaosRule] = []
        self._lock = threading.RLock()
        self._log: list[dict[str, Any]] = []
        self._seq = 0
        self._in_flight = 0
        self._installed = False
        self.scheduled: Callable[[], list[str]] = lambda: []
        self.functions: list[Function] = load_functions(template_path) if template_path else []
        self.schedule_horizon = DEFAULT_SCHEDULE_HORIZON
        self._schedule_lock = threading.RLock()
        self._clock: threading.Thread | None = None

    # -- log

    def record(self, kind: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            self._seq += 1
            entry = {"seq": self._seq, "time": time.time(), "kind": kind, **fields}
            self._log.append(entry)
        return entry

    def entries(self, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self._log if e["seq"] > since]

    def status(self) -> dict[str, Any]:
        schedules = self.schedule_status()
        with self._lock:
            held = sum(len(c.held) for c in self.chaos)
            return {
                "in_flight": self._in_flight,
                "held": held,
                # scenario timers, and EventBridge Scheduler schedules firing within the horizon
                "scheduled": self.scheduled() + schedules.pop("soon"),
                "schedules": schedules,
                "seq": self._seq,
                "functions_url": self.functions_url,
                "rules": [r.as_json() for r in self.rules],
                "chaos": [c.as_json() for c in self.chaos],
                "retry_delays": self.retry_delays,
            }

    # -- configuration

    def configure(self, request: dict[str, Any]) -> dict[str, Any]:
        unknown = set(request) - {"functions_url", "chaos", "retry_delays", "reload", "flush", "schedule_horizon"}
        if unknown:
            raise ValueError(f"unknown router setting(s): {', '.join(sorted(unknown))}")
        with self._lock:
            if "functions_url" in request:
                self.functions_url = (request["functions_url"] or "").rstrip("/") or None
            if "retry_delays" in request:
                delays = request["retry_delays"]
                if not isinstance(delays, list) or not all(isinstance(d, (int, float)) and d >= 0 for d in delays):
                    raise ValueError("retry_delays: a list of seconds")
                self.retry_delays = [float(d) for d in delays]
            if "schedule_horizon" in request:
                horizon = request["schedule_horizon"]
                if isinstance(horizon, bool) or not isinstance(horizon, (int, float)) or horizon < 0:
                    raise ValueError("schedule_horizon: seconds >= 0")
                self.schedule_horizon = float(horizon)
            if request.get("reload") and self.template_path:
                self.rules = load_rules(self.template_path)
                self.functions = load_functions(self.template_path)
            if "chaos" in request:
                specs = request["chaos"] or []
                if not isinstance(specs, list):
                    raise ValueError("chaos: a list of rules")
                new = [ChaosRule(s) for s in specs]
                released = [h for c in self.chaos for h in c.held]
                self.chaos = new
            else:
                released = []
            if request.get("flush"):
                for c in self.chaos:
                    released.extend(reversed(c.held))
                    c.held = []
        for event, rules in released:
            self._deliver_all(event, rules, None)
        return self.status()

    # -- emitting

    def emit(self, event: dict[str, Any], origin: str) -> dict[str, Any]:
        """An AWS event happened: log it and deliver it to every matching function."""
        targets = [r for r in self.rules if matches(r.pattern, event)]
        note = None
        if targets and not self.functions_url:
            # the functions are not deployed yet (the local stack seeds the
            # estate before it starts them): EventBridge has no target to call
            note = f"matches {', '.join(r.function for r in targets)}, but no function runtime is attached yet"
            targets = []
        self.record(
            "event",
            origin=origin,
            event=event,
            summary=summarize(event),
            targets=[f"{r.function}/{r.name}" for r in targets],
            **({"note": note} if note else {}),
        )
        log.info("event %s %s -> %s", event.get("detail-type"), summarize(event), [r.binary for r in targets] or "no rule")
        if not targets:
            return event
        chaos = self._chaos_for(event)
        if chaos is None:
            self._deliver_all(event, targets, None)
            return event
        if chaos.drop:
            self.record("dropped", event_id=event["id"], reason="chaos: drop")
            return event
        if chaos.hold:
            with self._lock:
                chaos.held.append((event, targets))
                if len(chaos.held) < chaos.hold:
                    self.record("held", event_id=event["id"], holding=len(chaos.held), of=chaos.hold)
                    return event
                batch, chaos.held = list(reversed(chaos.held)), []
            self.record("released", event_ids=[e["id"] for e, _ in batch], order="newest first")
            for i, (held_event, held_targets) in enumerate(batch):
                self._deliver_all(held_event, held_targets, chaos, extra_delay=i * chaos.spacing)
            return event
        self._deliver_all(event, targets, chaos)
        return event

    def redeliver(self, event_id: str) -> dict[str, Any]:
        """Deliver an event emitted earlier once more, to the functions whose rule
        matches it, as EventBridge's at-least-once delivery may: the same event
        (same ``id``), late. Raises ``ValueError`` for an id the log does not hold."""
        with self._lock:
            event = next(
                (e["event"] for e in self._log if e["kind"] == "event" and e["event"].get("id") == event_id), None
            )
        if event is None:
            raise ValueError(f"no event {event_id!r} in the router log")
        targets = [r for r in self.rules if matches(r.pattern, event)]
        if not self.functions_url:
            targets = []
        self.record(
            "redelivered",
            event_id=event_id,
            summary=summarize(event),
            targets=[f"{r.function}/{r.name}" for r in targets],
        )
        log.info("redelivered %s %s -> %s", event.get("detail-type"), summarize(event), [r.binary for r in targets] or "no rule")
        self._deliver_all(event, targets, None)
        return {"id": event_id, "targets": [f"{r.function}/{r.name}" for r in targets]}

    def _chaos_for(self, event: dict[str, Any]) -> ChaosRule | None:
        with self._lock:
            for rule in self.chaos:
                if rule.times is not None and rule.times <= 0:
                    continue
                if matches(rule.match, event):
                    if rule.times is not None:
                        rule.times -= 1
                    return rule
        return None

    def _deliver_all(
        self,
        event: Any,
        targets: list[Rule],
        chaos: ChaosRule | None,
        extra_delay: float = 0.0,
        copies: int | None = None,
        delivery_id: str | None = None,
    ) -> None:
        """Invoke every target asynchronously (``copies`` times each), on its own
        thread; ``delivery_id`` names the delivery in the log (default: the event's id)."""
        copies = copies or (chaos.copies if chaos else 1)
        delivery_id = delivery_id or event["id"]
        for rule in targets:
            for copy_no in range(1, copies + 1):
                delay = extra_delay + (chaos.delay + (copy_no - 1) * chaos.stagger if chaos else 0.0)
                if chaos and chaos.jitter:
                    delay += random.uniform(0, chaos.jitter)
                with self._lock:
                    self._in_flight += 1
                threading.Thread(
                    target=self._deliver,
                    args=(rule, event, copy_no, copies, delay, delivery_id),
                    name=f"deliver-{rule.binary}",
                    daemon=True,
                ).start()

    def _deliver(self, rule: Rule, event: Any, copy_no: int, copies: int, delay: float, event_id: str) -> None:
        try:
            if delay:
                time.sleep(delay)
            attempts = 1 + max(0, rule.retries)
            for attempt in range(1, attempts + 1):
                started = time.time()
                self.record(
                    "invoke",
                    event_id=event_id,
                    function=rule.function,
                    binary=rule.binary,
                    attempt=attempt,
                    copy=copy_no,
                    copies=copies,
                )
                error, reply = self._invoke(rule.binary, event)
                will_retry = error is not None and attempt < attempts
                self.record(
                    "reply",
                    event_id=event_id,
                    function=rule.function,
                    binary=rule.binary,
                    attempt=attempt,
                    copy=copy_no,
                    duration=round(time.time() - started, 3),
                    error=error,
                    reply=reply,
                    will_retry=will_retry,
                )
                if error is None:
                    return
                log.warning("%s failed (%s), attempt %d of %d", rule.binary, error, attempt, attempts)
                if will_retry:
                    time.sleep(self.retry_delays[min(attempt - 1, len(self.retry_delays) - 1)] if self.retry_delays else 0)
            self.record("undeliverable", event_id=event_id, function=rule.function, attempts=attempts)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _invoke(self, binary: str, event: Any) -> tuple[str | None, Any]:
        """Invoke the function with ``event`` (JSON; ``bytes`` are sent as they
        are); (None, reply) or (error type, error payload)."""
        if not self.functions_url:
            return "NoRuntime", {"errorMessage": "router has no functions_url: the local Lambda runtime is not running"}
        url = f"{self.functions_url}/2015-03-31/functions/{binary}/invocations"
        request = urllib.request.Request(
            url,
            data=event if isinstance(event, bytes) else json.dumps(event).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "X-Amz-Invocation-Type": "RequestResponse"},
        )
        try:
            with urllib.request.urlopen(request, timeout=INVOKE_TIMEOUT_SECONDS) as response:
                body = response.read()
                function_error = response.headers.get("X-Amz-Function-Error")
        except urllib.error.HTTPError as exc:
            return f"Lambda{exc.code}", _json_or_text(exc.read())
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            return "ServiceUnavailable", {"errorMessage": str(exc)}
        reply = _json_or_text(body)
        if function_error:
            return function_error, reply
        return None, reply

    # -- EventBridge Scheduler

    def schedule_status(self) -> dict[str, Any]:
        """The pending one-time schedules: how many, the next one, and (``soon``)
        labels of those firing within ``schedule_horizon`` seconds (overdue ones
        included), which :meth:`status` adds to ``scheduled``."""
        if not self._installed:
            return {"pending": 0, "next": None, "horizon": self.schedule_horizon, "soon": []}
        import scheduler_behaviours

        now = time.time()
        waiting = scheduler_behaviours.pending()
        soon = [
            f"schedule {s.group_name}/{s.name} at {_iso(at, millis=False)} (in {max(0.0, at - now):.1f}s)"
            for at, (_, _, s) in waiting
            if at - now <= self.schedule_horizon
        ]
        upcoming = None
        if waiting:
            at, found = waiting[0]
            upcoming = {"name": found[2].name, "group": found[2].group_name, "at": _iso(at, millis=False), "in": round(at - now, 3)}
        return {"pending": len(waiting), "next": upcoming, "horizon": self.schedule_horizon, "soon": soon}

    def schedules(self) -> list[dict[str, Any]]:
        """Every schedule moto holds, as ``GET /_ferry/scheduler`` lists it."""
        import scheduler_behaviours

        now = time.time()
        listed = [scheduler_behaviours.describe(found, now) for found in scheduler_behaviours.schedules()]
        for entry in listed:
            target = self._schedule_target(entry["target"] or "")
            entry["binary"] = target.binary if target else None
        return sorted(listed, key=lambda e: (e["at"] is None, e["at"] or "", e["group"], e["name"]))

    def _schedule_target(self, arn: str) -> Rule | None:
        """The local function a Lambda target ARN names (``None``: not a Lambda ARN).
        A name that no function of the template answers to is invoked as it is
        (the local runtime answers 404 if it does not know it either)."""
        import scheduler_behaviours

        name = scheduler_behaviours.lambda_function_name(arn)
        if name is None:
            return None
        for function in self.functions:
            if function.named(name):
                return Rule(function.logical_id, function.binary, f"schedule:{name}", {}, function.retries)
        return Rule(name, name, f"schedule:{name}", {}, 2)

    def fire_schedule(self, found: Any, copies: int = 1, origin: str = "scheduler") -> dict[str, Any]:
        """The schedule's time came: invoke its target asynchronously with its
        ``Input`` (``copies`` times: Scheduler delivers at least once), then
        apply ``ActionAfterCompletion`` (``DELETE``: the schedule is deleted)."""
        import scheduler_behaviours

        account, region, schedule = found
        with self._schedule_lock:
            now = time.time()
            view = scheduler_behaviours.describe(found, now)
            fire_id = str(uuid.uuid4())
            raw = (schedule.target or {}).get("Input")
            try:
                payload: Any = json.loads(raw) if raw is not None else {}
            except ValueError:
                payload = raw.encode()  # Lambda refuses it (InvalidRequestContentException)
            target = self._schedule_target(view["target"] or "")
            note = None
            if target is None:
                note = "the target is not a Lambda function: the emulator invokes Lambda targets only"
            elif not self.functions_url:
                note = "no function runtime is attached yet"
            if target is not None and view.get("role"):
                # Scheduler invokes the target as the schedule's execution role:
                # lambda:InvokeFunction on the function, if that role's policy is
                # loaded (iam_behaviours; the template's SchedulerRole)
                import iam_behaviours

                decision = iam_behaviours.IAM.authorize_service_role(view["role"], "lambda:InvokeFunction", view["target"] or "")
                if decision is not None and not decision.allowed:
                    note = f"not invoked: {decision.reason}"
                    target = None
            self.record(
                "schedule",
                fire_id=fire_id,
                origin=origin,
                name=view["name"],
                group=view["group"],
                schedule_arn=view["arn"],
                expression=view["expression"],
                timezone=view["timezone"],
                at=view["at"],
                target=view["target"],
                function=target.function if target else None,
                binary=target.binary if target else None,
                input=view["input"],
                copies=copies,
                action_after_completion=view["action_after_completion"],
                summary=f"schedule {view['group']}/{view['name']} ({view['expression']}) -> {target.binary if target else view['target']}",
                **({"note": note} if note else {}),
            )
            log.info("schedule %s/%s fired (%s) -> %s x%d", view["group"], view["name"], origin, target.binary if target else view["target"], copies)
            if target is not None:
                self._deliver_all(payload, [target], None, copies=copies, delivery_id=fire_id)
            deleted = scheduler_behaviours.complete(found)
            if deleted:
                self.record(
                    "schedule-deleted",
                    fire_id=fire_id,
                    name=view["name"],
                    group=view["group"],
                    reason="ActionAfterCompletion DELETE",
                )
        return {
            "fire_id": fire_id,
            "name": view["name"],
            "group": view["group"],
            "copies": copies,
            "binary": target.binary if target else None,
            "deleted": deleted,
        }

    def _schedule_tick(self) -> None:
        import scheduler_behaviours

        with self._schedule_lock:
            for found in scheduler_behaviours.due(time.time()):
                _, _, schedule = found
                again = scheduler_behaviours.find(schedule.name, schedule.group_name, found[0], found[1])
                if again is not None and again[2] is schedule:  # not deleted meanwhile
                    self.fire_schedule(found, origin="at")

    def _run_clock(self) -> None:
        while True:
            time.sleep(SCHEDULE_POLL_SECONDS)
            try:
                self._schedule_tick()
            except Exception:  # never let one bad schedule stop the clock
                log.exception("schedule clock")

    def start_schedule_clock(self) -> None:
        if self._clock is None:
            self._clock = threading.Thread(target=self._run_clock, name="ferry-scheduler", daemon=True)
            self._clock.start()

    # -- observing moto

    def on_ecs(self, kind: str, **data: Any) -> None:
        backend = data["backend"]
        account, region = backend.account_id, backend.region_name
        if kind == "task-started":
            # ECS emits a Task State Change for every transition; emulated tasks
            # start RUNNING at once, so there is one event before the STOPPED one
            self.emit(task_state_change(account, region, data["task"]), "ecs:task started")
        elif kind == "task-stopped":
            self.emit(task_state_change(account, region, data["task"]), "ecs:task stopped")
        elif kind in ("deployment-started", "deployment-finished"):
            self.emit(
                deployment_state_change(account, region, data["service"], data["deployment"]),
                f"ecs:{kind.replace('-', ' ')}",
            )

    def install(self) -> None:
        """Observe ECS (ecs_behaviours), ECR PutImage, Secrets Manager's staging
        labels, CloudWatch SetAlarmState, PutEvents; fire EventBridge Scheduler
        schedules (scheduler_behaviours)."""
        if self._installed:
            return
        import cloudwatch_behaviours
        import ecs_behaviours
        import scheduler_behaviours

        scheduler_behaviours.install()
        cloudwatch_behaviours.install()
        from moto.cloudwatch import models as cw_models
        from moto.ecr import models as ecr_models
        from moto.events import models as events_models
        from moto.secretsmanager import models as secrets_models

        ecs_behaviours.install()
        ecs_behaviours.subscribe(self.on_ecs)
        self.scheduled = lambda: ecs_behaviours.scenario.scheduler.pending()
        router = self

        def put_image(original: Any) -> Any:
            def wrapper(backend: Any, repository_name: str, image_manifest: str, image_tag: str, *args: Any, **kwargs: Any) -> Any:
                image = original(backend, repository_name, image_manifest, image_tag, *args, **kwargs)
                router.emit(
                    ecr_push_event(backend.account_id, backend.region_name, repository_name, image.get_image_digest(), image_tag),
                    "ecr:PutImage",
                )
                return image

            return wrapper

        def moving_secret_labels(operation: str) -> Any:
            # Secrets Manager sends Secret Label Updated when a staging label
            # moves to a new version: AWSCURRENT on PutSecretValue (no
            # VersionStages, or with AWSCURRENT), UpdateSecret with a value,
            # UpdateSecretVersionStage, a rotation's last step (RotateSecret)
            def make(original: Any) -> Any:
                def wrapper(backend: Any, *args: Any, **kwargs: Any) -> Any:
                    secret_id = kwargs["secret_id"] if "secret_id" in kwargs else args[0]
                    before = secret_labels(backend.secrets.get(secret_id))
                    result = original(backend, *args, **kwargs)
                    secret = backend.secrets.get(secret_id)
                    if secret is not None:
                        for label, version in moved_secret_labels(before, secret_labels(secret)):
                            router.emit(
                                secret_label_updated(backend.account_id, backend.region_name, secret.arn, secret.name, label, version),
                                f"secretsmanager:{operation}",
                            )
                    return result

                return wrapper

            return make

        def set_alarm_state(original: Any) -> Any:
            def wrapper(backend: Any, alarm_name: str, reason: str, reason_data: str, state_value: str) -> Any:
                alarm = backend.alarms.get(alarm_name)
                previous = (
                    {
                        "value": alarm.state_value,
                        "reason": alarm.state_reason,
                        "reasonData": alarm.state_reason_data,
                        "timestamp": alarm.state_updated_timestamp,
                    }
                    if alarm
                    else None
                )
                result = original(backend, alarm_name, reason, reason_data, state_value)
                alarm = backend.alarms.get(alarm_name)
                if alarm is not None and previous is not None and previous["value"] != alarm.state_value:
                    router.emit(alarm_state_change(backend.account_id, backend.region_name, alarm, previous), "cloudwatch:SetAlarmState")
                return result

            return wrapper

        def put_events(original: Any) -> Any:
            def wrapper(backend: Any, events: list[dict[str, Any]]) -> Any:
                entries = original(backend, events)
                for given, entry in zip(events, entries):
                    if "EventId" not in entry:
                        continue
                    bus = str(given.get("EventBusName") or "default").rsplit("/", 1)[-1]
                    try:
                        detail = json.loads(given["Detail"])
                    except ValueError:
                        continue
                    event = envelope(
                        given["Source"],
                        given["DetailType"],
                        backend.account_id,
                        backend.region_name,
                        list(given.get("Resources") or []),
                        detail,
                    )
                    event["id"] = entry["EventId"]
                    if bus != "default":
                        router.record("event", origin=f"events:PutEvents ({bus})", event=event, summary=summarize(event), targets=[])
                        continue
                    router.emit(event, "events:PutEvents")
                return entries

            return wrapper

        _wrap(ecr_models.ECRBackend, "put_image", put_image)
        for method, operation in (
            ("put_secret_value", "PutSecretValue"),
            ("update_secret", "UpdateSecret"),
            ("update_secret_version_stage", "UpdateSecretVersionStage"),
            ("rotate_secret", "RotateSecret"),
        ):
            _wrap(secrets_models.SecretsManagerBackend, method, moving_secret_labels(operation))
        _wrap(cw_models.CloudWatchBackend, "set_alarm_state", set_alarm_state)
        _wrap(events_models.EventsBackend, "put_events", put_events)
        self._installed = True
        self.start_schedule_clock()

    # -- control routes

    def route(self, method: str, path: str, query: dict[str, list[str]], body: Callable[[], dict[str, Any]]) -> tuple[int, Any]:
        if path == "/_ferry/router/log":
            since = int((query.get("since") or ["0"])[0] or 0)
            entries = self.entries(since)
            return 200, {"entries": entries, "next": entries[-1]["seq"] if entries else since}
        if path == "/_ferry/router/status":
            return 200, self.status()
        if path == "/_ferry/router/config":
            if method != "POST":
                return 405, {"error": "use POST"}
            return 200, self.configure(body())
        if path == "/_ferry/router/redeliver":
            # EventBridge delivers at least once: an event delivered earlier may
            # arrive again, any time later (the duplicate of a push after the
            # release it started was rolled back, say)
            if method != "POST":
                return 405, {"error": "use POST"}
            request = body()
            if not isinstance(request.get("id"), str):
                raise ValueError("redeliver needs the `id` of an event in the router log")
            return 200, self.redeliver(request["id"])
        if path == "/_ferry/scheduler":
            if method != "GET":
                return 405, {"error": "use GET"}
            return 200, {"schedules": self.schedules(), "horizon": self.schedule_horizon}
        if path == "/_ferry/scheduler/fire":
            # the schedule's time came now (its own time is not waited for)
            if method != "POST":
                return 405, {"error": "use POST"}
            request = body()
            unknown = set(request) - {"name", "group", "copies", "account", "region"}
            if unknown:
                raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}; allowed: name, group, copies, account, region")
            if not isinstance(request.get("name"), str) or not request["name"]:
                raise ValueError("fire needs the `name` of a schedule")
            copies = request.get("copies", 1)
            if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
                raise ValueError("copies: an integer >= 1")
            import scheduler_behaviours

            with self._schedule_lock:
                found = scheduler_behaviours.find(request["name"], request.get("group"), request.get("account"), request.get("region"))
                if found is None:
                    return 404, {"error": f"no schedule {request.get('group') or 'default'}/{request['name']} (fired and deleted, or never created)"}
                return 200, self.fire_schedule(found, copies=copies, origin="fire")
        if path == "/_ferry/router/emit":
            # deliver a raw event as EventBridge would (PutEvents is the AWS way;
            # this one keeps the envelope's source "aws.*", which PutEvents refuses)
            if method != "POST":
                return 405, {"error": "use POST"}
            event = body()
            for key in ("source", "detail-type", "detail"):
                if key not in event:
                    raise ValueError(f"event needs `{key}`")
            event.setdefault("version", "0")
            event.setdefault("id", str(uuid.uuid4()))
            event.setdefault("time", _iso(_now(), millis=False))
            event.setdefault("resources", [])
            self.emit(event, "router:emit")
            return 200, {"id": event["id"]}
        return 404, {"error": f"no router route {method} {path}"}


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw.decode(errors="replace")


def _wrap(owner: type, name: str, make: Any) -> None:
    original = getattr(owner, name)
    if getattr(original, "__ferry_router__", False):
        return
    replacement = make(original)
    functools.update_wrapper(replacement, original)
    replacement.__ferry_router__ = True  # type: ignore[attr-defined]
    setattr(owner, name, replacement)


#: the emulator's router (created by ferry_emulator.py --router)
router: Router | None = None


def start(template_path: str, functions_url: str | None = None) -> Router:
    global router
    if router is None:
        router = Router(template_path, functions_url)
        router.install()
    return router
