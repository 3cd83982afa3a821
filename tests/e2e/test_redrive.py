"""Dead letters redriven (README, "Dead letters"): `scripts/redrive` takes each
message of a queue -- an EventBridge rule's dead letter (the body is the event)
or Lambda's on-failure record (the event in `requestPayload`) -- and invokes the
function with the event asynchronously, deleting the message once Lambda took
it. An event that was processed in the end changes nothing when it comes back."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from typing import Any

from conftest import ROOT, Mark, release_id

APP = "redrive"
SERVICES = ["api", "worker"]
ACCOUNT = "123456789012"


def redrive(stack, *args: str) -> str:
    """scripts/redrive as an operator runs it, pointed at the local stack."""
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": stack.endpoint,
        "AWS_ENDPOINT_URL_LAMBDA": stack.functions_url,
        "AWS_ACCESS_KEY_ID": "operator",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": stack.info["emulator"]["region"],
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "redrive"), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def log_of(stack, binary: str) -> str:
    path = stack.log_dir / f"{binary}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def invocations_after(stack, binary: str, offset: int, count: int = 1, timeout: float = 30) -> str:
    """The function's log from `offset` once `count` more invocations ended (REPORT lines)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = log_of(stack, binary)[offset:]
        if text.count("REPORT RequestId:") >= count:
            return text
        time.sleep(0.05)
    raise AssertionError(f"{binary} was not invoked {count} time(s) in {timeout}s:\n{log_of(stack, binary)[offset:][-3000:]}")


def outcomes_logged(text: str) -> list[str]:
    return re.findall(r'outcome\\*"\s*:\s*\\*"([a-z_]+)', text)


def app_state(stack) -> dict[str, Any]:
    families = [f"{APP}-{s}" for s in SERVICES] + [f"{APP}-migrate"]
    described = stack.services(f"{APP}-prod", SERVICES)
    return {
        "revisions": {f: stack.revisions(f) for f in families},
        "services": {s: (d["taskDefinition"], [x["id"] for x in d["deployments"]]) for s, d in described.items()},
        "parameter": stack.parameter_history(f"/{APP}/prod/compute/currentImageTag"),
        "ledger": [i for i in stack.ledger() if f"{APP}/prod" in str(i.get("pk"))],
    }


def dead_letter(sqs, queue: str, event: dict[str, Any], rule: str) -> None:
    """What EventBridge sends to a target's dead-letter queue: the event as the
    body, why it was not delivered in the message attributes."""
    attribute = lambda value: {"DataType": "String", "StringValue": value}  # noqa: E731
    sqs.send_message(
        QueueUrl=queue,
        MessageBody=json.dumps(event),
        MessageAttributes={
            "RULE_ARN": attribute(f"arn:aws:events:eu-west-1:{ACCOUNT}:rule/{rule}"),
            "TARGET_ARN": attribute(f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:ferry-deploy"),
            "ERROR_CODE": attribute("SDK_CLIENT_ERROR"),
            "ERROR_MESSAGE": attribute("Lambda returned TooManyRequestsException"),
            "EXHAUSTED_RETRY_CONDITION": attribute("MaximumRetryAttempts"),
            "RETRY_ATTEMPTS": attribute("4"),
        },
    )


def failed_invocation(function: str, event: dict[str, Any]) -> dict[str, Any]:
    """What Lambda's on-failure destination receives for an asynchronous
    invocation that failed every attempt: an invocation record around the event."""
    return {
        "version": "1.0",
        "timestamp": "2026-12-02T10:00:00.000Z",
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:{function}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "&ferry_aws::handlers::HandlerError", "errorMessage": "dynamodb:TransactWriteItems failed (ThrottlingException)"},
    }


def messages_in(sqs, queue: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_a_redriven_push_and_a_redriven_stopped_event_change_nothing(stack, mark: Mark):
    # 1.0.0 is released as usual; the events it took are what a dead-letter queue would hold.
    first = stack.push(APP, "1.0.0")
    stack.settle()
    rid = release_id(APP, first)
    assert stack.release(rid)["state"] == "SUCCEEDED"
    [push] = [e["event"] for e in mark.events("ECR Image Action") if e["event"]["detail"]["repository-name"] == APP]
    [stopped] = [
        e["event"]
        for e in mark.events("ECS Task State Change")
        if e["event"]["detail"].get("lastStatus") == "STOPPED" and e["event"]["detail"].get("startedBy") == f"ferry/{rid}"
    ]
    # The lane moves on: 1.1.0 is the release now.
    stack.push(APP, "1.1.0")
    stack.settle()

    sqs = stack.client("sqs")
    deploy_dlq = sqs.create_queue(QueueName="ferry-local-DeployEventsDeadLetterQueue")["QueueUrl"]
    failed_queue = sqs.create_queue(QueueName="ferry-local-FailedInvocationsQueue")["QueueUrl"]
    dead_letter(sqs, deploy_dlq, push, "ferry-local-DeployFunctionEcrPush")
    sqs.send_message(QueueUrl=failed_queue, MessageBody=json.dumps(failed_invocation("ferry-gate", stopped)))
    # a failed invocation of another function: not for --function ferry-gate, left in the queue
    sqs.send_message(QueueUrl=failed_queue, MessageBody=json.dumps(failed_invocation("ferry-watch", {"bake_ended": {"release_id": rid}})))
    before = app_state(stack)
    later = Mark(stack)
    deploy_log = len(log_of(stack, "ferry-deploy"))

    # A dry run says what it would do and does nothing.
    dry = redrive(stack, "--queue", deploy_dlq, "--function", "ferry-deploy", "--dry-run")
    assert "would invoke ferry-deploy" in dry and "ECR Image Action" in dry, dry
    assert "SDK_CLIENT_ERROR" in dry, dry
    assert messages_in(sqs, deploy_dlq) == 1
    time.sleep(0.5)
    assert "START RequestId" not in log_of(stack, "ferry-deploy")[deploy_log:]

    # The push, redriven: ferry-deploy finds its release and answers duplicate.
    out = redrive(stack, "--queue", deploy_dlq, "--function", "ferry-deploy")
    assert "redriven: 1, skipped: 0, failed: 0" in out, out
    assert outcomes_logged(invocations_after(stack, "ferry-deploy", deploy_log)) == ["duplicate"]
    assert messages_in(sqs, deploy_dlq) == 0, "deleted once Lambda took the invoke"

    # The 1.0.0 migration's STOPPED event, redriven after 1.1.0 took the lane: a no-op.
    gate_log = len(log_of(stack, "ferry-gate"))
    out = redrive(stack, "--queue", failed_queue, "--function", "ferry-gate")
    assert "redriven: 1, skipped: 1, failed: 0" in out, out
    assert "--function ferry-watch" in out, out
    assert outcomes_logged(invocations_after(stack, "ferry-gate", gate_log)) == ["duplicate"]
    assert messages_in(sqs, failed_queue) == 1, "the other function's record stays"
    stack.settle()

    assert app_state(stack) == before, "no registration, no SSM version, no UpdateService, no ledger write"
    written = [c["operation"] for c in later.calls() if c["caller"].startswith("ferry-")]
    for operation in ("ecs:RegisterTaskDefinition", "ssm:PutParameter", "ecs:UpdateService", "ecs:RunTask", "dynamodb:TransactWriteItems", "dynamodb:UpdateItem"):
        assert operation not in written, written
