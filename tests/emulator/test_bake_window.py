"""Self-test of what the emulator gives ferry's bake window: EventBridge
Scheduler one-time schedules that fire into the local functions
(scheduler_behaviours.py + router.py), CloudWatch DescribeAlarms after
SetAlarmState (cloudwatch_behaviours.py) -- over awsJson and over Smithy RPC v2
CBOR, the Rust SDK's protocol --, a lost alarm event (router chaos), and the
scenario's exit code for a second one-off task family (smoke tests).

Schedules target ``ferry-local-watch``: template.yaml names the watch function
``${AWS::StackName}-watch`` and the local stack is ``ferry-local``.

Run with: .venv/bin/python -m pytest tests/emulator -q -p no:cacheprovider

The emulator runs with the router (template.yaml's functions) pointed at a
fake Lambda Invoke API in this process, which records what it receives.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import math
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cfn  # noqa: E402
from test_ecs_behaviours import control, launch, network, wait_ready  # noqa: E402

ROOT = HERE.parent.parent
TEMPLATE = ROOT / "template.yaml"
ACCOUNT = "123456789012"
WATCH_ARN = f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:ferry-local-watch"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/ferry-scheduler"


class FakeFunctions:
    """A Lambda Invoke API that records every invocation and answers ``{"ok": true}``;
    an input holding ``"fail": N`` gets a function error on its first N attempts."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.received.append({"time": time.time(), "path": self.path, "body": body})
                    attempts = sum(1 for r in fake.received if r["body"] == body)
                failing = isinstance(body, dict) and attempts <= int(body.get("fail", 0))
                reply = json.dumps({"errorMessage": "boom"} if failing else {"ok": True}).encode()
                self.send_response(200)
                if failing:
                    self.send_header("X-Amz-Function-Error", "Unhandled")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def with_marker(self, marker: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.received if isinstance(r["body"], dict) and r["body"].get("marker") == marker]


@pytest.fixture(scope="module")
def functions():
    fake = FakeFunctions()
    yield fake
    fake.server.shutdown()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, functions: FakeFunctions):
    ready_file = tmp_path_factory.mktemp("bake") / "ready.json"
    proc = launch(ready_file, "--router", str(TEMPLATE), "--scenario", "--functions-url", functions.url)
    try:
        info = wait_ready(proc, ready_file)
        status, _ = control(info, "/_ferry/router/config", {"retry_delays": [0.05, 0.05]})
        assert status == 200
        yield info
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except Exception:
            proc.kill()
            proc.wait()


def client(info: dict[str, Any], service: str, **config: Any):
    return boto3.client(
        service,
        endpoint_url=info["endpoint"],
        region_name=info["region"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(**config) if config else None,
    )


def bake_name() -> str:
    """ferry's schedule name: ferry-bake-<16 hex>-<16 hex> (44 characters)."""
    return f"ferry-bake-{uuid.uuid4().hex[:16]}-{uuid.uuid4().hex[:16]}"


def at(epoch: float) -> str:
    return "at(" + dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + ")"


def create(info, name: str, when: float, payload: dict[str, Any], scheduler: Any = None, **extra: Any) -> dict[str, Any]:
    args = {
        "Name": name,
        "ScheduleExpression": at(when),
        "ScheduleExpressionTimezone": "UTC",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "ActionAfterCompletion": "DELETE",
        "Target": {"Arn": WATCH_ARN, "RoleArn": ROLE_ARN, "Input": json.dumps(payload)},
        **extra,
    }
    return (scheduler or client(info, "scheduler")).create_schedule(**args)


def listed(info, name: str) -> dict[str, Any] | None:
    status, body = control(info, "/_ferry/scheduler")
    assert status == 200
    return next((s for s in body["schedules"] if s["name"] == name), None)


def wait_until(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def router_log(info, since: int = 0) -> list[dict[str, Any]]:
    return control(info, f"/_ferry/router/log?since={since}")[1]["entries"]


def log_mark(info) -> int:
    return control(info, "/_ferry/router/status")[1]["seq"]


# --------------------------------------------------------------------------
# EventBridge Scheduler


def test_a_schedule_fires_its_input_into_the_function_at_its_time_then_is_deleted(stack, functions):
    scheduler = client(stack, "scheduler")
    name = bake_name()
    when = math.floor(time.time()) + 2  # at() has whole seconds
    payload = {"bake_ended": {"release_id": "shop/prod/0123456789abcdef"}, "marker": name}
    create(stack, name, when, payload)

    got = scheduler.get_schedule(Name=name)
    assert got["ActionAfterCompletion"] == "DELETE" and got["GroupName"] == "default"
    assert got["ScheduleExpression"] == at(when) and got["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert json.loads(got["Target"]["Input"]) == payload
    seen = listed(stack, name)
    assert seen["status"] == "pending" and seen["binary"] == "ferry-watch" and seen["function"] == "ferry-local-watch"
    assert seen["input"] == payload and seen["at"] == dt.datetime.fromtimestamp(when, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    # it fires within the horizon: the stack is not settled until it has
    _, status = control(stack, "/_ferry/router/status")
    assert any(name in label for label in status["scheduled"]), status["scheduled"]
    assert status["schedules"]["pending"] >= 1 and status["schedules"]["next"]["in"] <= 2.5

    mark = log_mark(stack)
    (received,) = wait_until(lambda: functions.with_marker(name), 6, "the schedule to fire")
    assert received["time"] >= when, "not before its time"
    assert received["time"] < when + 1.5
    assert received["path"] == "/2015-03-31/functions/ferry-watch/invocations"
    assert received["body"] == payload  # the Input, as JSON, nothing around it

    wait_until(lambda: not listed(stack, name), 3, "DELETE after completion")
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name=name)
    fired = next(e for e in router_log(stack, mark) if e["kind"] == "schedule" and e["name"] == name)
    assert fired["origin"] == "at" and fired["binary"] == "ferry-watch" and fired["input"] == payload
    assert fired["target"] == WATCH_ARN and fired["copies"] == 1
    replies = wait_until(
        lambda: [e for e in router_log(stack, mark) if e["kind"] == "reply" and e["event_id"] == fired["fire_id"]], 3, "the reply"
    )
    assert replies[0]["binary"] == "ferry-watch" and replies[0]["error"] is None
    deleted = [e for e in router_log(stack, mark) if e["kind"] == "schedule-deleted"]
    assert [e["fire_id"] for e in deleted if e["name"] == name] == [fired["fire_id"]]
    _, status = control(stack, "/_ferry/router/status")
    assert not any(name in label for label in status["scheduled"])


def test_a_far_future_schedule_is_pending_but_does_not_unsettle_the_stack_and_fires_on_request(stack, functions):
    name = bake_name()
    payload = {"bake_ended": {"release_id": "shop/prod/far"}, "marker": name}
    create(stack, name, time.time() + 600, payload)  # a 10-minute bake
    _, status = control(stack, "/_ferry/router/status")
    assert not any(name in label for label in status["scheduled"]), "settle() must not wait 10 minutes"
    assert status["schedules"]["pending"] >= 1 and status["schedules"]["horizon"] == 10.0
    assert listed(stack, name)["status"] == "pending"

    code, answer = control(stack, "/_ferry/scheduler/fire", {"name": name})
    assert code == 200, answer
    assert answer["deleted"] is True and answer["copies"] == 1 and answer["binary"] == "ferry-watch"
    (received,) = wait_until(lambda: functions.with_marker(name), 5, "the fired schedule")
    assert received["body"] == payload
    assert listed(stack, name) is None
    code, answer = control(stack, "/_ferry/scheduler/fire", {"name": name})
    assert code == 404, answer
    code, answer = control(stack, "/_ferry/scheduler/fire", {"name": name, "copies": 0})
    assert code == 400, answer


def test_copies_deliver_the_same_input_twice_and_a_kept_schedule_does_not_fire_again(stack, functions):
    name = bake_name()
    payload = {"bake_ended": {"release_id": "shop/prod/twice"}, "marker": name}
    create(stack, name, time.time() + 600, payload, ActionAfterCompletion="NONE")
    code, answer = control(stack, "/_ferry/scheduler/fire", {"name": name, "copies": 2})
    assert code == 200 and answer["deleted"] is False, answer
    received = wait_until(lambda: len(functions.with_marker(name)) == 2 and functions.with_marker(name), 5, "two copies")
    assert [r["body"] for r in received] == [payload, payload]
    seen = listed(stack, name)
    assert seen["status"] == "fired" and seen["action_after_completion"] == "NONE"
    time.sleep(0.5)
    assert len(functions.with_marker(name)) == 2
    assert client(stack, "scheduler").get_schedule(Name=name)["State"] == "ENABLED"


def test_a_schedule_whose_time_is_past_fires_at_once(stack, functions):
    name = bake_name()
    create(stack, name, time.time() - 120, {"marker": name})
    wait_until(lambda: functions.with_marker(name), 3, "the overdue schedule")
    wait_until(lambda: listed(stack, name) is None, 3, "its deletion")


def test_a_function_error_is_retried_as_lambda_retries_an_asynchronous_invoke(stack, functions):
    name = bake_name()
    payload = {"marker": name, "fail": 1}
    create(stack, name, time.time() + 600, payload)
    mark = log_mark(stack)
    control(stack, "/_ferry/scheduler/fire", {"name": name})
    wait_until(lambda: len(functions.with_marker(name)) == 2, 5, "the retry")
    replies = wait_until(lambda: [e for e in router_log(stack, mark) if e["kind"] == "reply"][:2] or None, 3, "replies")
    assert [(r["attempt"], r["error"]) for r in replies] == [(1, "Unhandled"), (2, None)]


def test_a_disabled_schedule_does_not_fire(stack, functions):
    name = bake_name()
    create(stack, name, time.time() - 5, {"marker": name}, State="DISABLED")
    time.sleep(0.6)
    assert functions.with_marker(name) == []
    assert listed(stack, name)["status"] == "DISABLED"


def test_a_duplicate_name_is_a_conflict_unless_it_is_the_same_client_token(stack):
    scheduler = client(stack, "scheduler", retries={"total_max_attempts": 1})
    name = bake_name()
    first = create(stack, name, time.time() + 600, {"marker": name}, ClientToken="token-1")
    with pytest.raises(scheduler.exceptions.ConflictException) as conflict:
        create(stack, name, time.time() + 600, {"marker": name}, ClientToken="token-2")
    response = conflict.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert response["Error"]["Code"] == "ConflictException"
    assert response["Error"]["Message"] == f"Schedule {name} already exists."
    # the SDK retrying its own call (same ClientToken) gets the schedule, not a conflict
    again = create(stack, name, time.time() + 600, {"marker": name}, ClientToken="token-1")
    assert again["ScheduleArn"] == first["ScheduleArn"]
    assert first["ScheduleArn"] == f"arn:aws:scheduler:eu-west-1:{ACCOUNT}:schedule/default/{name}"


@pytest.mark.parametrize(
    "change, error",
    [
        ({"Name": "x" * 65}, "ValidationException"),
        ({"Name": "ferry-bake@shop"}, "ValidationException"),
        ({"ScheduleExpression": "at(2026-12-01T06:15:00Z)"}, "ValidationException"),
        ({"ScheduleExpression": "at(2026-13-01T06:15:00)"}, "ValidationException"),
        ({"ScheduleExpressionTimezone": "Mars/Olympus"}, "ValidationException"),
        ({"ActionAfterCompletion": "ARCHIVE"}, "ValidationException"),
        ({"FlexibleTimeWindow": {"Mode": "FLEXIBLE"}}, "ValidationException"),
        ({"GroupName": "no-such-group"}, "ResourceNotFoundException"),
    ],
)
def test_create_schedule_refuses_what_aws_refuses(stack, change, error):
    args = {
        "Name": bake_name(),
        "ScheduleExpression": "at(2026-12-01T06:15:00)",
        "ScheduleExpressionTimezone": "UTC",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {"Arn": WATCH_ARN, "RoleArn": ROLE_ARN, "Input": "{}"},
        **change,
    }
    with pytest.raises(ClientError) as refused:
        client(stack, "scheduler", retries={"total_max_attempts": 1}).create_schedule(**args)
    assert refused.value.response["Error"]["Code"] == error


def test_action_after_completion_defaults_to_none(stack):
    name = bake_name()
    scheduler = client(stack, "scheduler")
    scheduler.create_schedule(
        Name=name,
        ScheduleExpression="at(2099-01-01T00:00:00)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": WATCH_ARN, "RoleArn": ROLE_ARN},
    )
    got = scheduler.get_schedule(Name=name)
    assert got["ActionAfterCompletion"] == "NONE" and got["ScheduleExpressionTimezone"] == "UTC"
    scheduler.delete_schedule(Name=name)  # as ferry would cancel a bake
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.delete_schedule(Name=name)


def test_at_is_read_in_the_schedule_time_zone():
    import scheduler_behaviours

    def utc(expression: str, zone: str | None) -> str:
        return scheduler_behaviours.parse_at(expression, zone).strftime("%Y-%m-%dT%H:%M:%SZ")

    assert utc("at(2026-12-01T06:15:00)", "UTC") == "2026-12-01T06:15:00Z"
    assert utc("at(2026-12-01T06:15:00)", None) == "2026-12-01T06:15:00Z"
    assert utc("at(2026-12-01T06:15:00)", "Europe/Berlin") == "2026-12-01T05:15:00Z"  # CET
    assert utc("at(2026-07-01T06:15:00)", "Europe/Berlin") == "2026-07-01T04:15:00Z"  # CEST
    assert scheduler_behaviours.parse_at("rate(5 minutes)", "UTC") is None
    assert scheduler_behaviours.lambda_function_name(WATCH_ARN) == "ferry-local-watch"
    assert scheduler_behaviours.lambda_function_name(WATCH_ARN + ":live") == "ferry-local-watch"
    assert scheduler_behaviours.lambda_function_name("arn:aws:sqs:eu-west-1:123456789012:q") is None


def test_a_fault_can_be_injected_into_create_schedule_and_the_call_log_names_it(stack):
    name = bake_name()
    since = control(stack, "/_ferry/calls")[1]["next"]
    code, _ = control(
        stack,
        "/_ferry/faults",
        {"faults": [{"operation": "scheduler:CreateSchedule", "times": 1, "status": 500, "code": "InternalServerException"}]},
    )
    assert code == 200
    scheduler = client(stack, "scheduler", retries={"total_max_attempts": 1})
    with pytest.raises(ClientError) as failed:
        create(stack, name, time.time() + 600, {"marker": name}, scheduler)
    assert failed.value.response["Error"]["Code"] == "InternalServerException"
    create(stack, name, time.time() + 600, {"marker": name})
    scheduler.get_schedule(Name=name)
    calls = [(c["operation"], c["status"]) for c in control(stack, f"/_ferry/calls?since={since}")[1]["calls"]]
    assert calls == [("scheduler:CreateSchedule", 500), ("scheduler:CreateSchedule", 200), ("scheduler:GetSchedule", 200)]
    scheduler.delete_schedule(Name=name)


# --------------------------------------------------------------------------
# CloudWatch alarms


def alarm(info, name: str) -> dict[str, Any]:
    (found,) = client(info, "cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"]
    return found


def test_describe_alarms_after_set_alarm_state(stack):
    cloudwatch = client(stack, "cloudwatch")
    name = f"bake-{uuid.uuid4().hex[:8]}"
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/ApplicationELB",
        MetricName="HTTPCode_Target_5XX_Count",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=3,
        Threshold=10.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    created = alarm(stack, name)
    assert created["StateValue"] == "OK"
    assert created["Period"] == 60 and created["EvaluationPeriods"] == 3 and created["AlarmName"] == name
    assert created["StateTransitionedTimestamp"] == created["StateUpdatedTimestamp"]

    release_began = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.01)
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="Threshold Crossed")
    raised = alarm(stack, name)
    assert raised["StateValue"] == "ALARM"
    assert raised["StateUpdatedTimestamp"] > release_began, "a change after the release began reads as later"
    assert raised["StateTransitionedTimestamp"] == raised["StateUpdatedTimestamp"]
    assert raised["Period"] == 60 and raised["EvaluationPeriods"] == 3

    time.sleep(0.01)
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="still breaching")
    again = alarm(stack, name)
    assert again["StateUpdatedTimestamp"] > raised["StateUpdatedTimestamp"], "any state update moves it (as in AWS)"
    assert again["StateTransitionedTimestamp"] == raised["StateTransitionedTimestamp"], "no transition: it stays"


def test_the_sample_alarm_keeps_period_and_evaluation_periods(stack):
    ssm = client(stack, "ssm")
    # the template reads each lane's image tag from its SSM parameter
    for name, value in (
        ("/shop/prod/compute/currentImageTag", "0.9.0"),
        ("/blog/prod/blog-web/currentImageTag", "sha-0000001"),
        ("/blog/prod/blog-jobs/currentImageTag", "sha-0000001"),
    ):
        ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
    cfn.apply(
        cfn.load_template(str(ROOT / "infra" / "sample-environment.yaml")),
        lambda service: client(stack, service),
        region=stack["region"],
        account_id=ACCOUNT,
        stack_name="bake-window-alarm",
        parameters={"Subnets": stack["subnets"], "SecurityGroups": stack["security_groups"]},
        only=["ShopFiveXxAlarm"],
    )
    shop = alarm(stack, "shop-prod-5xx")
    assert (shop["Period"], shop["EvaluationPeriods"], shop["StateValue"]) == (60, 1, "OK")


def test_an_alarm_event_can_be_lost_while_the_alarm_state_changes(stack, functions):
    name = f"lost-{uuid.uuid4().hex[:8]}"  # ferry-rollback's rule matches every alarm going to ALARM
    client(stack, "cloudwatch").put_metric_alarm(
        AlarmName=name, Namespace="AWS/X", MetricName="m", Statistic="Sum", Period=60,
        EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanThreshold",
    )
    lose = {"match": {"source": ["aws.cloudwatch"], "detail": {"alarmName": [name]}}, "drop": True, "times": 1}
    code, _ = control(stack, "/_ferry/router/config", {"chaos": [lose]})
    assert code == 200
    try:
        mark = log_mark(stack)
        client(stack, "cloudwatch").set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="lost")
        entries = wait_until(lambda: [e for e in router_log(stack, mark) if e["kind"] in ("event", "dropped")], 3, "the event")
        event = next(e for e in entries if e["kind"] == "event")
        assert event["targets"] == ["RollbackFunction/AlarmRaised"]
        assert any(e["kind"] == "dropped" and e["event_id"] == event["event"]["id"] for e in router_log(stack, mark))
        time.sleep(0.3)
        assert not [e for e in router_log(stack, mark) if e["kind"] == "invoke"], "nothing reached ferry-rollback"
        assert alarm(stack, name)["StateValue"] == "ALARM"  # DescribeAlarms still tells the truth
    finally:
        control(stack, "/_ferry/router/config", {"chaos": []})
        client(stack, "cloudwatch").set_alarm_state(AlarmName=name, StateValue="OK", StateReason="back")


# --------------------------------------------------------------------------
# CloudWatch in Smithy RPC v2 CBOR (what the Rust SDK speaks): cloudwatch_behaviours.serve_rpc_v2_cbor
#
# The CBOR here is written and read by the small codec below, not by the
# emulator's (botocore's), so the test checks the bytes on the wire.


class Tag:
    """A CBOR tag as read off the wire, with how its content was encoded."""

    def __init__(self, tag: int, value: Any, encoding: str):
        self.tag, self.value, self.encoding = tag, value, encoding

    def __repr__(self) -> str:
        return f"Tag({self.tag}, {self.value!r}, {self.encoding})"


def cbor(value: Any) -> bytes:
    """Encode maps, arrays, text, integers and booleans (all a request needs)."""

    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
            if n < 1 << (8 * size):
                return bytes([major << 5 | info]) + n.to_bytes(size, "big")
        raise ValueError(n)

    if value is True or value is False:
        return bytes([0xF5 if value else 0xF4])
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, str):
        data = value.encode()
        return head(3, len(data)) + data
    if isinstance(value, list):
        return head(4, len(value)) + b"".join(cbor(v) for v in value)
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(type(value))


def uncbor(data: bytes) -> Any:
    """Decode one data item (definite lengths); a tag stays a :class:`Tag`."""
    import struct

    def item(at: int) -> tuple[Any, int, str]:
        major, info = data[at] >> 5, data[at] & 31
        at += 1
        if major == 7:
            simple = {20: False, 21: True, 22: None}
            if info in simple:
                return simple[info], at, "simple"
            fmt, size, kind = {25: (">e", 2, "half"), 26: (">f", 4, "float"), 27: (">d", 8, "double")}[info]
            return struct.unpack(fmt, data[at : at + size])[0], at + size, kind
        if info < 24:
            n = info
        else:
            size = {24: 1, 25: 2, 26: 4, 27: 8}[info]
            n, at = int.from_bytes(data[at : at + size], "big"), at + size
        if major == 0:
            return n, at, "int"
        if major == 1:
            return -1 - n, at, "int"
        if major in (2, 3):
            raw = data[at : at + n]
            return (raw if major == 2 else raw.decode()), at + n, "string"
        if major == 4:
            out = []
            for _ in range(n):
                v, at, _k = item(at)
                out.append(v)
            return out, at, "array"
        if major == 5:
            out_map = {}
            for _ in range(n):
                k, at, _k = item(at)
                v, at, _k = item(at)
                out_map[k] = v
            return out_map, at, "map"
        v, at, kind = item(at)  # major 6: a tag
        return Tag(n, v, kind), at, "tag"

    value, end, _ = item(0)
    assert end == len(data), "one data item, nothing after it"
    return value


def cbor_call(info, operation: str, body: bytes | None, **headers: str) -> tuple[int, dict[str, str], Any]:
    """POST one rpcv2Cbor request as the Rust SDK sends it."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{info['endpoint']}/service/GraniteServiceVersion20100801/operation/{operation}",
        data=body if body is not None else b"",
        method="POST",
        headers={
            "smithy-protocol": "rpc-v2-cbor",
            "Content-Type": "application/cbor",
            "Accept": "application/cbor",
            "x-amzn-query-mode": "true",
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential=ferry-watch/20250101/{info['region']}/monitoring/aws4_request, "
                "SignedHeaders=host;smithy-protocol, Signature=0"
            ),
            **headers,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, got, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        status, got, raw = err.code, dict(err.headers), err.read()
    got = {k.lower(): v for k, v in got.items()}
    return status, got, (uncbor(raw) if raw else None)


def test_describe_alarms_over_rpc_v2_cbor(stack):
    cloudwatch = client(stack, "cloudwatch")
    plain, maths = f"cbor-{uuid.uuid4().hex[:8]}", f"cbor-math-{uuid.uuid4().hex[:8]}"
    cloudwatch.put_metric_alarm(
        AlarmName=plain, Namespace="AWS/ApplicationELB", MetricName="HTTPCode_Target_5XX_Count", Statistic="Sum",
        Period=60, EvaluationPeriods=3, Threshold=10.0, ComparisonOperator="GreaterThanThreshold",
    )
    cloudwatch.put_metric_alarm(  # a metric-math alarm: no Period of its own, its queries carry it
        AlarmName=maths, EvaluationPeriods=2, Threshold=0.05, ComparisonOperator="GreaterThanThreshold",
        Metrics=[
            {"Id": "rate", "Expression": "errors / requests", "ReturnData": True},
            {"Id": "errors", "ReturnData": False, "MetricStat": {"Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": "HTTPCode_Target_5XX_Count"}, "Period": 300, "Stat": "Sum"}},
            {"Id": "requests", "ReturnData": False, "MetricStat": {"Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": "RequestCount"}, "Period": 300, "Stat": "Sum"}},
        ],
    )
    cloudwatch.set_alarm_state(AlarmName=plain, StateValue="ALARM", StateReason="Threshold Crossed")
    since = control(stack, "/_ferry/calls")[1]["next"]

    request = {"AlarmNames": [plain, maths], "AlarmTypes": ["CompositeAlarm", "MetricAlarm"], "MaxRecords": 100}
    status, headers, answer = cbor_call(stack, "DescribeAlarms", cbor(request))
    assert status == 200, answer
    assert headers["smithy-protocol"] == "rpc-v2-cbor" and headers["content-type"] == "application/cbor"
    assert "x-amzn-errortype" not in headers
    assert answer["CompositeAlarms"] == [] and "NextToken" not in answer
    alarms = {a["AlarmName"]: a for a in answer["MetricAlarms"]}
    assert set(alarms) == {plain, maths}

    raised, as_json = alarms[plain], alarm(stack, plain)
    assert raised["AlarmArn"] == f"arn:aws:cloudwatch:eu-west-1:{ACCOUNT}:alarm:{plain}"
    assert (raised["StateValue"], raised["StateReason"]) == ("ALARM", "Threshold Crossed")
    assert (raised["Period"], raised["EvaluationPeriods"], raised["Threshold"]) == (60, 3, 10.0)
    for field in ("StateUpdatedTimestamp", "StateTransitionedTimestamp", "AlarmConfigurationUpdatedTimestamp"):
        stamp = raised[field]
        assert isinstance(stamp, Tag) and stamp.tag == 1 and stamp.encoding == "double", (field, stamp)
        assert stamp.value == pytest.approx(as_json[field].timestamp(), abs=0.001), field  # the JSON answer's time
    assert raised["StateTransitionedTimestamp"].value == raised["StateUpdatedTimestamp"].value
    assert abs(raised["StateUpdatedTimestamp"].value - time.time()) < 60

    quiet = alarms[maths]
    assert quiet["StateValue"] == "OK" and "Period" not in quiet and quiet["EvaluationPeriods"] == 2
    assert quiet["StateTransitionedTimestamp"].tag == 1
    assert [m["Id"] for m in quiet["Metrics"]] == ["rate", "errors", "requests"]
    assert [m.get("MetricStat", {}).get("Period") for m in quiet["Metrics"]] == [None, 300, 300]
    assert quiet["Metrics"][0] == {"Id": "rate", "Expression": "errors / requests", "ReturnData": True}

    # MaxRecords and NextToken: a page at a time, the token passed back as it came
    status, _, first = cbor_call(stack, "DescribeAlarms", cbor({**request, "MaxRecords": 1}))
    assert status == 200 and len(first["MetricAlarms"]) == 1 and isinstance(first["NextToken"], str)
    status, _, second = cbor_call(stack, "DescribeAlarms", cbor({**request, "MaxRecords": 1, "NextToken": first["NextToken"]}))
    assert status == 200 and "NextToken" not in second
    assert {first["MetricAlarms"][0]["AlarmName"], second["MetricAlarms"][0]["AlarmName"]} == {plain, maths}

    # an operation without output answers 200 with no body; the state is moto's
    status, headers, nothing = cbor_call(stack, "SetAlarmState", cbor({"AlarmName": maths, "StateValue": "ALARM", "StateReason": "over cbor"}))
    assert (status, nothing, headers["smithy-protocol"]) == (200, None, "rpc-v2-cbor") and "content-type" not in headers
    assert alarm(stack, maths)["StateValue"] == "ALARM"

    calls = control(stack, f"/_ferry/calls?since={since}")[1]["calls"]
    assert [(c["operation"], c["status"]) for c in calls if c["caller"] == "ferry-watch"] == [
        ("cloudwatch:DescribeAlarms", 200)
    ] * 3 + [("cloudwatch:SetAlarmState", 200)]


def test_rpc_v2_cbor_errors_are_cbor(stack):
    status, headers, error = cbor_call(stack, "NoSuchOperation", cbor({}))
    assert status == 404 and headers["content-type"] == "application/cbor" and headers["smithy-protocol"] == "rpc-v2-cbor"
    assert error["__type"] == "com.amazon.coral.service#UnknownOperationException" and "NoSuchOperation" in error["message"]

    for malformed in (b"\xa1", b"\xff", b"\x80", cbor({}) + b"\x00"):  # truncated, no item, not a map, trailing bytes
        status, headers, error = cbor_call(stack, "DescribeAlarms", malformed)
        assert status == 400 and headers["content-type"] == "application/cbor", malformed
        assert error["__type"] == "com.amazon.coral.service#SerializationException" and error["message"], malformed

    status, headers, error = cbor_call(stack, "DescribeAlarms", cbor({"NextToken": "not-a-token"}))
    assert status == 400 and error["__type"] == "com.amazonaws.cloudwatch#InvalidNextToken"
    assert headers["x-amzn-query-error"] == "InvalidNextToken;Sender" and "not-a-token" in error["message"]
    status, headers, error = cbor_call(stack, "DescribeAlarms", cbor({"MaxRecords": 101}))
    assert status == 400 and error["__type"] == "com.amazonaws.cloudwatch#ValidationException"
    assert headers["x-amzn-query-error"] == "ValidationError;Sender"

    code, _ = control(stack, "/_ferry/faults", {"faults": [{"operation": "monitoring:DescribeAlarms", "times": 1, "status": 500, "code": "InternalServiceError", "message": "injected"}]})
    assert code == 200
    status, headers, error = cbor_call(stack, "DescribeAlarms", cbor({"AlarmNames": ["x"]}))
    assert status == 500 and error == {"__type": "com.amazonaws.cloudwatch#InternalServiceFault", "message": "injected"}
    assert headers["x-amzn-query-error"] == "InternalServiceError;Receiver"
    assert cbor_call(stack, "DescribeAlarms", cbor({"AlarmNames": ["x"]}))[0] == 200


def test_botocore_speaking_rpc_v2_cbor_reads_the_answers(stack, tmp_path):
    """botocore's own rpcv2Cbor client (CloudWatch's model, told to use only that
    protocol) reads what the emulator answers: typed members, datetimes, errors."""
    import botocore.session

    session = botocore.session.get_session()
    model = session.get_component("data_loader").load_service_model("cloudwatch", "service-2")
    model = json.loads(json.dumps(model))
    model["metadata"]["protocols"] = ["smithy-rpc-v2-cbor"]
    folder = tmp_path / "cloudwatch" / model["metadata"]["apiVersion"]
    folder.mkdir(parents=True)
    (folder / "service-2.json").write_text(json.dumps(model))
    cbor_session = botocore.session.get_session()
    cbor_session.get_component("data_loader").search_paths.insert(0, str(tmp_path))
    speaking = boto3.Session(botocore_session=cbor_session).client(
        "cloudwatch", endpoint_url=stack["endpoint"], region_name=stack["region"],
        aws_access_key_id="testing", aws_secret_access_key="testing", config=Config(retries={"total_max_attempts": 1}),
    )
    assert speaking.meta.service_model.resolved_protocol == "smithy-rpc-v2-cbor"

    name = f"botocore-cbor-{uuid.uuid4().hex[:8]}"
    speaking.put_metric_alarm(
        AlarmName=name, Namespace="AWS/X", MetricName="m", Statistic="Sum", Period=60,
        EvaluationPeriods=4, Threshold=1.0, ComparisonOperator="GreaterThanThreshold",
    )
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    speaking.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="via cbor")
    (found,) = speaking.describe_alarms(AlarmNames=[name], AlarmTypes=["MetricAlarm", "CompositeAlarm"])["MetricAlarms"]
    assert (found["StateValue"], found["Period"], found["EvaluationPeriods"]) == ("ALARM", 60, 4)
    assert isinstance(found["StateTransitionedTimestamp"], dt.datetime) and found["StateTransitionedTimestamp"] > before
    assert found == alarm(stack, name)  # the same answer as over awsJson
    with pytest.raises(speaking.exceptions.InvalidNextToken):
        speaking.describe_alarms(NextToken="nope")


# --------------------------------------------------------------------------
# scenario: a smoke-test task beside the migration


def run(info, family: str, image: str) -> str:
    ecs = client(info, "ecs")
    ecs.register_task_definition(
        family=family,
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        containerDefinitions=[{"name": "app", "image": image, "essential": True}],
    )
    return ecs.run_task(
        cluster="bake", taskDefinition=family, launchType="FARGATE", startedBy="ferry/bake/prod/0123456789abcdef", networkConfiguration=network(info)
    )["tasks"][0]["taskArn"]


def test_a_family_rule_decides_a_smoke_task_running_the_migration_image(stack):
    client(stack, "ecs").create_cluster(clusterName="bake")
    suffix = uuid.uuid4().hex[:6]
    migrate, smoke, held = f"bake{suffix}-migrate", f"bake{suffix}-smoke", f"bake{suffix}-held"
    image = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/bake{suffix}:1.2.0"
    rules = {
        f"bake{suffix}:1.2.0": {"exitCode": 1},  # the migration of 1.2.0 fails ...
        f"family:{smoke}": {"exitCode": 0, "after": 0.1},  # ... the smoke test of the same image passes
        f"family:{held}": {"after": 0.1},  # a family rule with only `after` keeps the tag's outcome
    }
    code, _ = control(stack, "/_ferry/scenario", {"tasks": rules})
    assert code == 200
    try:
        arns = {f: run(stack, f, image) for f in (migrate, smoke)}
        ecs = client(stack, "ecs")

        def stopped():
            tasks = ecs.describe_tasks(cluster="bake", tasks=list(arns.values()))["tasks"]
            return tasks if all(t["lastStatus"] == "STOPPED" for t in tasks) else None

        tasks = {t["taskArn"]: t for t in wait_until(stopped, 5, "both tasks to stop")}
        assert [c["exitCode"] for c in tasks[arns[migrate]]["containers"]] == [1]
        assert [c["exitCode"] for c in tasks[arns[smoke]]["containers"]] == [0]

        control(stack, "/_ferry/scenario", {"tasks": {f"bake{suffix}:1.2.0": {"outcome": "never"}}})
        never = run(stack, held, image)
        time.sleep(0.4)
        assert ecs.describe_tasks(cluster="bake", tasks=[never])["tasks"][0]["lastStatus"] == "RUNNING"
        ecs.stop_task(cluster="bake", task=never, reason="ferry-emulator:exit=0")
    finally:
        control(stack, "/_ferry/scenario", {"tasks": {selector: None for selector in rules}})
