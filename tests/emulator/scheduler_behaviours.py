"""EventBridge Scheduler behaviour that ferry's local emulator adds on top of moto.

This module is THE one place where ferry's test harness changes how moto's
EventBridge Scheduler (``moto.scheduler``) behaves, and where it reads moto's
schedules to know which one is due. The event router (``router.py``) fires
them: it delivers a due schedule's ``Input`` to its Lambda target through the
local Lambda runtime and then calls :func:`complete`.

AWS pages followed:

* EventBridge Scheduler API Reference, **CreateSchedule**: ``Name`` is 1-64
  characters of ``[0-9a-zA-Z-_.]``; ``ActionAfterCompletion`` is ``NONE``
  (the default) or ``DELETE``; ``ClientToken`` makes the call idempotent;
  ``ConflictException`` (HTTP 409) when a schedule of that name exists in the
  group; ``ResourceNotFoundException`` (404) for an unknown ``GroupName``;
  ``ValidationException`` (400) for an invalid expression or time zone.
* EventBridge Scheduler User Guide, **"Schedule types on EventBridge
  Scheduler"** (one-time schedules): ``at(yyyy-mm-ddThh:mm:ss)`` invokes the
  target once, at that time *in* ``ScheduleExpressionTimezone`` (default
  UTC); ``StartDate``/``EndDate`` are ignored for one-time schedules; targets
  are invoked "with 60 second precision" (the emulator fires at the second
  named).
* **ActionAfterCompletion** ``DELETE``: "EventBridge Scheduler deletes the
  schedule after it completes invoking the target" -- for a one-time
  schedule, after its one invocation. With ``NONE`` the schedule stays.
* Lambda targets are invoked asynchronously (``InvocationType: Event``):
  Lambda's own asynchronous retries (``MaximumRetryAttempts``) apply to a
  function error. Scheduler delivers at least once.

What moto 5.2.1 already does as AWS does (``test_bake_window.py`` checks it):
stores every CreateSchedule field the SDK sends (``ActionAfterCompletion``
included) and returns them from GetSchedule; refuses a duplicate name with
error code ``ConflictException``; DeleteSchedule of an unknown name is
``ResourceNotFoundException``.

What this module adds (:func:`install`):

* :func:`create_schedule_checks_like_aws` -- the duplicate is HTTP 409 (moto
  sends 400) with AWS's ``{"Message": ...}`` body; a repeated call with the
  same ``ClientToken`` (the SDK's own retry) returns the schedule instead of
  a conflict; ``Name``, ``at()``, ``ScheduleExpressionTimezone``,
  ``FlexibleTimeWindow``, ``ActionAfterCompletion`` and ``State`` are
  validated (moto accepts anything); an unknown group is a 404 (moto: a 500);
  ``ActionAfterCompletion`` reads back ``NONE`` when not given (moto: null).

The clock (used by the router): :func:`schedules`, :func:`pending`,
:func:`due`, :func:`find`, :func:`complete`. Only one-time (``at()``)
schedules in state ENABLED fire; ``rate()``/``cron()`` schedules are stored
and listed but never fired by the emulator.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import re
import threading
import zoneinfo
from typing import Any, Iterator

from moto.core.exceptions import JsonRESTError
from moto.scheduler import models as scheduler_models
from moto.scheduler import responses as scheduler_responses

__all__ = [
    "install",
    "fire_time",
    "schedules",
    "pending",
    "due",
    "find",
    "complete",
    "describe",
    "lambda_function_name",
]

_LOCK = threading.RLock()
_INSTALLED = False

NAME_PATTERN = re.compile(r"^[0-9a-zA-Z\-_.]+$")
AT_PATTERN = re.compile(r"^at\((\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\)$")
RECURRING_PATTERN = re.compile(r"^(rate|cron)\(.+\)$")
LAMBDA_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:([^:]+):(\d{12}):function:([^:]+)(?::([^:]+))?$")


class SchedulerError(JsonRESTError):
    """An EventBridge Scheduler error as AWS sends it (restJson1): the HTTP
    status of the error shape, ``X-Amzn-ErrorType``, body ``{"Message": ...}``."""

    def __init__(self, error_type: str, message: str, status: int):
        super().__init__(error_type, message)
        self.code = status
        self.description = json.dumps({"Message": message})


def _conflict(name: str) -> SchedulerError:
    return SchedulerError("ConflictException", f"Schedule {name} already exists.", 409)


def _invalid(message: str) -> SchedulerError:
    return SchedulerError("ValidationException", message, 400)


def _not_found(message: str) -> SchedulerError:
    return SchedulerError("ResourceNotFoundException", message, 404)


def _patch(owner: type, name: str, make: Any) -> None:
    original = getattr(owner, name)
    if getattr(original, "__ferry_scheduler__", False):
        return
    replacement = make(original)
    functools.update_wrapper(replacement, original)
    replacement.__ferry_scheduler__ = True  # type: ignore[attr-defined]
    setattr(owner, name, replacement)


# --------------------------------------------------------------------------
# expressions


def _zone(name: str | None) -> _dt.tzinfo:
    if not name or name in ("UTC", "Etc/UTC"):
        return _dt.timezone.utc
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise _invalid(f"Invalid time zone {name}.") from exc


def parse_at(expression: str, timezone: str | None) -> _dt.datetime | None:
    """The UTC time of a one-time ``at(yyyy-mm-ddThh:mm:ss)`` expression read in
    ``timezone``; ``None`` for a recurring expression. Raises
    :class:`SchedulerError` (ValidationException) for anything else."""
    expression = (expression or "").strip()
    match = AT_PATTERN.match(expression)
    if match is None:
        if RECURRING_PATTERN.match(expression):
            return None
        raise _invalid(f"Invalid Schedule Expression {expression}.")
    try:
        local = _dt.datetime(*(int(part) for part in match.groups()))
    except ValueError as exc:
        raise _invalid(f"Invalid Schedule Expression {expression}.") from exc
    zone = _zone(timezone)
    return local.replace(tzinfo=zone).astimezone(_dt.timezone.utc)


def fire_time(schedule: Any) -> float | None:
    """When a one-time schedule fires (epoch seconds), ``None`` if recurring."""
    try:
        at = parse_at(schedule.schedule_expression, schedule.schedule_expression_timezone)
    except SchedulerError:
        return None
    return at.timestamp() if at else None


def lambda_function_name(arn: str) -> str | None:
    """``arn:aws:lambda:<region>:<account>:function:<name>[:qualifier]`` -> name."""
    match = LAMBDA_ARN.match(arn or "")
    return match.group(3) if match else None


# --------------------------------------------------------------------------
# CreateSchedule


def _constraint(value: str, field: str, constraint: str) -> SchedulerError:
    return _invalid(
        f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
    )


def create_schedule_checks_like_aws() -> None:
    """CreateSchedule answers as the EventBridge Scheduler API Reference says.

    * ``Name``: 1-64 characters matching ``[0-9a-zA-Z-_.]+`` (ValidationException).
    * ``GroupName`` that does not exist: ResourceNotFoundException (404).
    * A name that exists in the group: ``ConflictException``, HTTP 409, unless
      the request carries the ``ClientToken`` the schedule was created with
      (the SDK retrying a call whose answer it lost): then the same
      ``ScheduleArn`` comes back, as an idempotent call.
    * ``ScheduleExpression``: ``at(yyyy-mm-ddThh:mm:ss)`` (a real date and
      time, no zone suffix), ``rate(...)`` or ``cron(...)``; else
      ``Invalid Schedule Expression <expression>.``
    * ``ScheduleExpressionTimezone``: an IANA time zone.
    * ``FlexibleTimeWindow``: required; ``Mode`` ``OFF`` or ``FLEXIBLE`` (with
      ``MaximumWindowInMinutes`` 1-1440).
    * ``ActionAfterCompletion``: ``NONE`` (default, stored as such) or ``DELETE``.
    * ``State``: ``ENABLED`` (default) or ``DISABLED``.
    * ``Target``: ``Arn`` and ``RoleArn`` required.
    """

    def make(original: Any) -> Any:
        def create_schedule(self: Any) -> str:
            name = self.uri.split("?")[0].split("/")[-1]
            if not 1 <= len(name) <= 64:
                raise _constraint(name, "name", "Member must have length less than or equal to 64")
            if not NAME_PATTERN.match(name):
                raise _constraint(name, "name", "Member must satisfy regular expression pattern: [0-9a-zA-Z-_.]+")
            backend = self.scheduler_backend
            group_name = self._get_param("GroupName") or "default"
            group = backend.schedule_groups.get(group_name)
            if group is None:
                raise _not_found(f"Schedule group {group_name} does not exist.")
            token = self._get_param("ClientToken")
            existing = group.schedules.get(name)
            if existing is not None:
                if token and getattr(existing, "_ferry_client_token", None) == token:
                    return json.dumps({"ScheduleArn": existing.arn})
                raise _conflict(name)
            expression = self._get_param("ScheduleExpression") or ""
            parse_at(expression, self._get_param("ScheduleExpressionTimezone"))
            window = self._get_param("FlexibleTimeWindow")
            if not isinstance(window, dict) or window.get("Mode") not in ("OFF", "FLEXIBLE"):
                raise _invalid("FlexibleTimeWindow.Mode must be OFF or FLEXIBLE.")
            if window["Mode"] == "FLEXIBLE" and not 1 <= int(window.get("MaximumWindowInMinutes") or 0) <= 1440:
                raise _invalid("MaximumWindowInMinutes is required with Mode FLEXIBLE (1-1440).")
            action = self._get_param("ActionAfterCompletion")
            if action not in (None, "NONE", "DELETE"):
                raise _constraint(str(action), "actionAfterCompletion", "Member must satisfy enum value set: [NONE, DELETE]")
            state = self._get_param("State")
            if state not in (None, "ENABLED", "DISABLED"):
                raise _constraint(str(state), "state", "Member must satisfy enum value set: [ENABLED, DISABLED]")
            target = self._get_param("Target")
            if not isinstance(target, dict) or not target.get("Arn") or not target.get("RoleArn"):
                raise _invalid("Target.Arn and Target.RoleArn are required.")
            answer = original(self)
            created = group.schedules.get(name)
            if created is not None:
                created._ferry_client_token = token
                created.action_after_completion = action or "NONE"
            return answer

        return create_schedule

    _patch(scheduler_responses.EventBridgeSchedulerResponse, "create_schedule", make)


def install() -> None:
    """Apply every behaviour in this module to moto (idempotent)."""
    global _INSTALLED
    with _LOCK:
        if _INSTALLED:
            return
        create_schedule_checks_like_aws()
        _INSTALLED = True


# --------------------------------------------------------------------------
# the clock's view of moto's schedules

#: one schedule in moto: (account id, region, moto ``Schedule``)
Found = tuple[str, str, Any]


def _backends() -> Iterator[tuple[str, str, Any]]:
    for _ in range(5):  # moto may add an account or region while we look
        try:
            return iter(list(scheduler_models.scheduler_backends.iter_backends()))
        except RuntimeError:
            continue
    return iter([])


def schedules() -> list[Found]:
    """Every schedule moto holds, in every account, region and group."""
    found: list[Found] = []
    for account, region, backend in _backends():
        for group in list(backend.schedule_groups.values()):
            for _ in range(5):
                try:
                    found.extend((account, region, s) for s in list(group.schedules.values()))
                    break
                except RuntimeError:
                    continue
    return found


def _fingerprint(schedule: Any) -> tuple[Any, ...]:
    return (schedule.schedule_expression, schedule.schedule_expression_timezone, schedule.last_modified_date)


def fired(schedule: Any) -> bool:
    """Has this schedule, as it now reads, fired already? (UpdateSchedule re-arms it.)"""
    return getattr(schedule, "_ferry_fired", None) == _fingerprint(schedule)


def pending() -> list[tuple[float, Found]]:
    """ENABLED one-time schedules that have not fired, soonest first, with their time."""
    waiting = []
    for account, region, schedule in schedules():
        if schedule.state != "ENABLED" or fired(schedule):
            continue
        at = fire_time(schedule)
        if at is not None:
            waiting.append((at, (account, region, schedule)))
    waiting.sort(key=lambda item: item[0])
    return waiting


def due(now: float) -> list[Found]:
    """The pending schedules whose time has come (a time already past fires at once)."""
    return [found for at, found in pending() if at <= now]


def find(name: str, group: str | None = None, account: str | None = None, region: str | None = None) -> Found | None:
    group = group or "default"
    for found in schedules():
        a, r, schedule = found
        if schedule.name == name and schedule.group_name == group and account in (None, a) and region in (None, r):
            return found
    return None


def complete(found: Found) -> bool:
    """The schedule invoked its target: mark it fired and, with
    ``ActionAfterCompletion: DELETE``, delete it. True if deleted."""
    account, region, schedule = found
    schedule._ferry_fired = _fingerprint(schedule)
    if (schedule.action_after_completion or "NONE") != "DELETE":
        return False
    backend = scheduler_models.scheduler_backends[account][region]
    group = backend.schedule_groups.get(schedule.group_name)
    if group is not None and group.schedules.get(schedule.name) is schedule:
        group.schedules.pop(schedule.name, None)
        return True
    return False


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return _dt.datetime.fromtimestamp(epoch, tz=_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(found: Found, now: float) -> dict[str, Any]:
    """One schedule as ``GET /_ferry/scheduler`` lists it."""
    account, region, schedule = found
    at = fire_time(schedule)
    target = schedule.target or {}
    raw = target.get("Input")
    try:
        parsed = json.loads(raw) if raw is not None else None
    except ValueError:
        parsed = raw
    if at is None:
        status = "recurring (not fired by the emulator)"
    elif schedule.state != "ENABLED":
        status = schedule.state
    elif fired(schedule):
        status = "fired"
    else:
        status = "pending"
    return {
        "name": schedule.name,
        "group": schedule.group_name,
        "arn": schedule.arn,
        "account": account,
        "region": region,
        "expression": schedule.schedule_expression,
        "timezone": schedule.schedule_expression_timezone,
        "at": _iso(at),
        "in": None if at is None else round(at - now, 3),
        "state": schedule.state,
        "status": status,
        "action_after_completion": schedule.action_after_completion or "NONE",
        "target": target.get("Arn"),
        "role": target.get("RoleArn"),
        "function": lambda_function_name(target.get("Arn", "")),
        "input": parsed,
    }
