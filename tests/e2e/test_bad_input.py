"""Bad input -- missing fields, the wrong detail-type, an unknown
repository, a refused tag, a broken config -- gets a clear error or a logged
no-op, and the emulator's state is byte-for-byte what it was."""

from __future__ import annotations

import json

import pytest

from conftest import snapshot

READS = ("Get", "Describe", "BatchGet", "List", "Query", "Scan")


def assert_nothing_changed(stack, mark, before):
    stack.settle()
    assert snapshot(stack) == before, "the emulator's state changed"
    writes = [c["operation"] for c in mark.calls() if c["caller"].startswith("ferry-") and not c["operation"].split(":", 1)[1].startswith(READS)]
    assert writes == [], f"ferry made write calls: {writes}"
    assert mark.ferry_events() == []


@pytest.fixture
def before(stack, mark):
    return snapshot(stack)


# A body that is not JSON never reaches a function: Lambda's Invoke API refuses it
# (InvalidRequestContentException) and EventBridge only sends JSON. That is the
# emulated Lambda's behaviour (lambda_runtime.py), not ferry's, so it is not
# asserted here; what ferry does with JSON that lacks what it needs follows.


MISSING_FIELDS = [
    ("ferry-deploy", {"version": "0", "detail-type": "ECR Image Action", "source": "aws.ecr", "account": "123456789012",
                      "region": "eu-west-1", "time": "2026-11-23T10:00:00Z", "detail": {"result": "SUCCESS"}}, "action-type"),
    ("ferry-gate", {"version": "0", "detail-type": "ECS Task State Change", "source": "aws.ecs",
                    "detail": {"lastStatus": "STOPPED", "startedBy": "ferry/shop/prod/0123456789abcdef"}}, "taskArn"),
    ("ferry-watch", {"version": "0", "detail-type": "ECS Deployment State Change", "source": "aws.ecs",
                     "resources": ["arn:aws:ecs:eu-west-1:123456789012:service/shop-prod/api"],
                     "detail": {"eventName": "SERVICE_DEPLOYMENT_COMPLETED"}}, "deploymentId"),
    ("ferry-deploy", {"deploy": {"app": "shop"}}, "deploy"),
]


@pytest.mark.parametrize("function, payload, names", MISSING_FIELDS)
def test_missing_fields_get_a_bad_input_error_naming_the_field(stack, mark, before, function, payload, names):
    status, reply, function_error = stack.invoke(function, payload)
    assert status == 200 and function_error is None, "answered, not retried"
    assert reply["ok"] is False, reply
    assert reply["error"]["kind"] in ("bad_input", "bad_request"), reply
    assert names in reply["error"]["message"], reply
    assert_nothing_changed(stack, mark, before)


def test_the_wrong_detail_type_matches_no_rule_and_is_refused_when_invoked_directly(stack, mark, before):
    push = {
        "version": "0",
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": "123456789012",
        "region": "eu-west-1",
        "time": "2026-11-23T10:00:00Z",
        "resources": [],
        "detail": {"result": "SUCCESS", "repository-name": "shop", "image-digest": "sha256:" + "ab" * 32,
                   "action-type": "PUSH", "image-tag": "9.9.9"},
    }
    # invoked directly, ferry-gate says what it expected
    status, reply, function_error = stack.invoke("ferry-gate", push)
    assert status == 200 and function_error is None
    assert reply["ok"] is False and reply["error"]["kind"] == "bad_input", reply
    assert "ECS Task State Change" in reply["error"]["message"], reply

    # through EventBridge: a running task and a scan event match no rule of the template
    running = {"source": "aws.ecs", "detail-type": "ECS Task State Change",
               "detail": {"lastStatus": "RUNNING", "startedBy": "ferry/shop/prod/0123456789abcdef",
                          "taskArn": "arn:aws:ecs:eu-west-1:123456789012:task/shop-prod/0123"}}
    scan = {**push, "detail-type": "ECR Image Scan", "detail": {**push["detail"], "scan-status": "COMPLETE"}}
    scan.pop("id", None)
    for event in (running, scan):
        stack.control("/_ferry/router/emit", event)
    stack.settle()
    routed = [e for e in mark.events() if e["origin"] == "router:emit"]
    assert len(routed) == 2 and all(e["targets"] == [] for e in routed), routed
    assert not mark.replies(), "the router delivered neither event"
    assert_nothing_changed(stack, mark, before)


def test_a_push_to_an_unknown_repository_is_a_logged_no_op(stack, mark, before):
    stack.client("ecr").create_repository(repositoryName="unknown-app")
    stack.push("unknown-app", "1.0.0")
    stack.settle()
    decisions = mark.decisions("ferry-deploy")
    assert [d["outcome"] for d in decisions] == ["ignored"], decisions
    assert "unknown-app" in decisions[0]["reason"]
    assert_nothing_changed(stack, mark, before)


@pytest.mark.parametrize(
    "tag, says",
    [("latest", "mutable"), ("main-build", "semver"), ("0.8.0", "0.8.0")],
    ids=["mutable-latest", "not-semver", "below-range"],
)
def test_a_refused_tag_changes_nothing(stack, mark, before, tag, says):
    stack.push("shop", tag)
    stack.settle()
    decisions = mark.decisions("ferry-deploy")
    assert [d["outcome"] for d in decisions] == ["refused"], decisions
    assert says in decisions[0]["reason"], decisions[0]["reason"]
    assert_nothing_changed(stack, mark, before)


def test_a_broken_config_is_a_clear_error_and_changes_nothing(stack, mark):
    before = snapshot(stack)
    stack.client("ssm").put_parameter(
        Name="/ferry/broken-config", Type="String", Value='[apps.shop]\nrepository = "shop"\n[apps.shop.environments.prod]\ncluster = 7\n'
    )
    original = stack.function_configuration("ferry-deploy")["Environment"]["Variables"]
    stack.function_configuration("ferry-deploy", {**original, "FERRY_CONFIG_PARAMETER": "/ferry/broken-config"})
    try:
        stack.push("shop", "7.0.0")
        stack.settle()
    finally:
        stack.function_configuration("ferry-deploy", original)
    replies = mark.replies("ferry-deploy")
    assert len(replies) == 1 and replies[0]["error"] is None, "a config error is answered, not retried"
    reply = replies[0]["reply"]
    assert reply["ok"] is False and reply["error"]["kind"] == "config", reply
    assert "/ferry/broken-config" in reply["error"]["message"] and "cluster" in reply["error"]["message"], reply
    # only the push's image and the broken parameter (made by the test) are new
    after = json.loads(snapshot(stack))
    after["parameters"].pop("/ferry/broken-config")
    assert json.dumps(after, sort_keys=True, indent=1, default=str) == before
    writes = [c for c in mark.calls() if c["caller"].startswith("ferry-") and not c["operation"].split(":", 1)[1].startswith(READS)]
    assert writes == []
