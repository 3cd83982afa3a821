"""AWS calls that fail past the SDK's own retries, as AWS fails them: 500
InternalServerError on every attempt of a call, scoped to the function under
test (the emulator's ``POST /_ferry/faults``). The SDK gives up after
``MAX_ATTEMPTS`` attempts, the invocation fails, and Lambda's asynchronous
invoke runs the event again (the router: ``MaximumRetryAttempts`` 2). Each
fault is used up by the first invocation, so the retried one meets a healthy
AWS and must finish the job: the release ends SUCCEEDED on every service with
the SSM tag labelled known-good, the rollback ends with every service back on
known-good -- never a release abandoned, stuck or half rolled back.

Every test also checks that its fault fired (the call log records each
faulted attempt with status 500) and that the invocation failed and was
retried (the router log): a test whose fault never fired proves nothing.

The emulator matches faults by operation and caller only, not by request
content: where one invocation sends several calls of the faulted operation
at once (RegisterTaskDefinition of every family, UpdateService of every
service), the fault covers every attempt of every one of them
(``MAX_ATTEMPTS`` x calls), so each of them fails for good in the first
invocation and none in the retry."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any, Iterator

import pytest

from conftest import FAULT_APPS, Mark, release_id
from estate import REGISTRY

# attempts the SDK makes per call, the first included (crates/aws/src/clients.rs MAX_ATTEMPTS)
MAX_ATTEMPTS = 4
SERVICES = ["api", "worker"]  # every app here (conftest.FAULT_APPS)
ALARM_REASON = "Threshold Crossed: 1 out of the last 1 datapoints [57.0 (23/11/26 10:00:00)] was greater than the threshold (10.0)."

# a faster clock than the stack's default (migrations 0.5 s, deployments 0.7 s,
# Lambda's retries after 0.5 s and 1 s): the same events in the same order
MIGRATION_SECONDS, DEPLOYMENT_SECONDS, RETRY_DELAYS = 0.15, 0.25, [0.1, 0.2]
DEPLOYS = {"after": DEPLOYMENT_SECONDS}


@dataclass(frozen=True)
class Fault:
    """Every attempt of `calls` concurrent calls of `operation` by `function` fails.

    `hold`: the ECS work the function starts alongside the faulted call (the
    migration task, the deployments) ends only once the function has given
    up and been retried. Migrations and deployments take minutes and Lambda
    retries after one, so that is the order AWS delivers in; here the clock
    is compressed (0.15 s migrations, 0.1 s retries) below the SDK's own
    backoff (up to 1 + 2 + 4 s), which would otherwise deliver the task's
    stop or the deployment's end while the function still backs off."""

    app: str
    function: str
    operation: str
    calls: int = 1
    hold: bool = False

    @property
    def times(self) -> int:
        return MAX_ATTEMPTS * self.calls

    def rule(self) -> dict[str, Any]:
        return {"operation": self.operation, "caller": self.function, "times": self.times, "status": 500, "code": "InternalServerError"}


def step(app: str, function: str, operation: str, calls: int = 1, hold: bool = False) -> Any:
    return pytest.param(Fault(app, function, operation, calls, hold), id=f"{function} {operation}")


# a release with a migration: two services, so ferry-deploy registers three
# families (api, worker, migrate) and the gate updates two services at once
RELEASE_STEPS = [
    step("fault-register", "ferry-deploy", "ecs:RegisterTaskDefinition", calls=3),
    step("fault-ssm", "ferry-deploy", "ssm:PutParameter", hold=True),  # alongside RunTask
    step("fault-runtask", "ferry-deploy", "ecs:RunTask"),
    step("fault-secret", "ferry-deploy", "secretsmanager:DescribeSecret"),  # preflight: one secret, referenced by both services
    step("fault-describe", "ferry-deploy", "ecs:DescribeServices"),
    step("fault-gate", "ferry-gate", "ecs:UpdateService", calls=2),
    step("fault-settle", "ferry-watch", "dynamodb:TransactWriteItems"),  # the last deployment: SUCCEEDED + known-good pointer
    step("fault-label", "ferry-watch", "ssm:LabelParameterVersion"),  # then the known-good label
]

# no migration: ferry-deploy registers, writes SSM and updates both services itself
DIRECT_STEPS = [
    step("fault-direct", "ferry-deploy", "ecs:UpdateService", calls=2),
    step("fault-directssm", "ferry-deploy", "ssm:PutParameter", hold=True),  # alongside UpdateService
]

# an alarm during the rollout of 1.1.0: ferry-rollback puts both services back
# on 1.0.0's revisions, writes the tag back, then labels it
ROLLBACK_STEPS = [
    step("fault-rbupdate", "ferry-rollback", "ecs:UpdateService", calls=2),
    step("fault-rbssm", "ferry-rollback", "ssm:PutParameter"),
    step("fault-rblabel", "ferry-rollback", "ssm:LabelParameterVersion"),
]
ROLLBACK_FAULT_APPS = [p.values[0].app for p in ROLLBACK_STEPS]


@pytest.fixture(scope="module", autouse=True)
def faster_clock(stack):
    rules = {
        "tasks": {f"family:{app}-migrate": {"after": MIGRATION_SECONDS} for app, spec in FAULT_APPS.items() if spec[1]},
        "deployments": {f"{app}-prod/{s}": DEPLOYS for app, spec in FAULT_APPS.items() for s in spec[0]},
    }
    delays = stack.status()["retry_delays"]
    stack.scenario(rules)
    stack.router({"retry_delays": RETRY_DELAYS})
    yield
    stack.router({"retry_delays": delays})
    stack.scenario({section: {selector: None for selector in given} for section, given in rules.items()})


@pytest.fixture(scope="module")
def rollouts(stack, faster_clock) -> dict[str, dict[str, Any]]:
    """Each rollback app released 1.0.0 without a fault, then has 1.1.0's
    deployments under way (held IN_PROGRESS), all apps at once (they share
    nothing): app -> the known-good task definitions, 1.1.0's digest and
    task definitions."""
    settle(stack)
    good = {app: stack.push(app, "1.0.0") for app in ROLLBACK_FAULT_APPS}
    settle(stack)
    for app, digest in good.items():
        item = stack.release(release_id(app, digest))
        assert item and item["state"] == "SUCCEEDED", item
    good_tds = {app: running(stack, app) for app in ROLLBACK_FAULT_APPS}
    m = Mark(stack)
    with contextlib.ExitStack() as holds:
        for app in ROLLBACK_FAULT_APPS:
            holds.enter_context(held(stack, app, "deployments", True))
        bad = {app: stack.push(app, "1.1.0") for app in ROLLBACK_FAULT_APPS}
        deploying = {release_id(app, digest) for app, digest in bad.items()}
        m.wait_for(lambda: deploying <= {d.get("release_id") for d in m.decisions() if d["outcome"] == "deploying"}, what="1.1.0 deploying")
    settle(stack)
    prepared = {}
    for app in ROLLBACK_FAULT_APPS:
        tds = running(stack, app)
        assert all(tds[s] != good_tds[app][s] for s in SERVICES), (app, tds)
        prepared[app] = {"good_tds": good_tds[app], "bad": bad[app], "rollout_tds": tds}
    return prepared


# ------------------------------------------------------------------- helpers


def settle(stack) -> None:
    """Nothing in flight, held or scheduled (a shorter quiet spell than the
    stack's default: the router counts a delivery before the AWS call that
    caused it returns, and the scenario counts its timers until their events
    are out)."""
    stack.settle(60, quiet=0.1)


@contextlib.contextmanager
def faulted(stack, fault: Fault) -> Iterator[None]:
    stack.control("/_ferry/faults", {"faults": [fault.rule()]})
    try:
        yield
    finally:
        stack.control("/_ferry/faults", {"faults": []})


@contextlib.contextmanager
def held(stack, app: str, section: str, hold: bool) -> Iterator[None]:
    """With `hold`, the app's migration tasks ("tasks") or deployments
    ("deployments") started meanwhile run until the test ends them."""
    selectors = [f"family:{app}-migrate"] if section == "tasks" else [f"{app}-prod/{s}" for s in SERVICES]
    usual = {"after": MIGRATION_SECONDS} if section == "tasks" else DEPLOYS
    if hold:
        stack.scenario({section: {selector: {"outcome": "never"} for selector in selectors}})
    try:
        yield
    finally:
        if hold:
            stack.scenario({section: {selector: usual for selector in selectors}})


def running(stack, app: str) -> dict[str, str]:
    described = stack.services(f"{app}-prod", SERVICES)
    return {s: described[s]["taskDefinition"] for s in SERVICES}


def history(stack, app: str) -> list[tuple[str, list[str]]]:
    return [(p["value"], p["labels"]) for p in stack.parameter_history(f"/{app}/prod/compute/currentImageTag")]


def lane_head(stack, app: str) -> dict[str, Any]:
    items = [i for i in stack.ledger() if i.get("pk") == f"lane#{app}/prod#{app}" and i.get("sk") == "head"]
    assert len(items) == 1, items
    return items[0]


def set_alarm(stack, app: str, state: str) -> None:
    stack.client("cloudwatch").set_alarm_state(
        AlarmName=f"{app}-prod-5xx", StateValue=state, StateReason=ALARM_REASON if state == "ALARM" else "Threshold Crossed: back to normal."
    )


def replies_told(replies: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"  event {r['event_id'][:8]} attempt {r['attempt']}: "
        + (f"error {r['error']} {json.dumps(r.get('reply'))[:300]}" if r["error"] else json.dumps(r.get("reply"))[:300])
        for r in replies
    )


def assert_fault_fired(mark: Mark, fault: Fault) -> None:
    """Every faulted attempt reached the emulator and was answered 500."""
    failed = [c for c in mark.calls(fault.function) if c["operation"] == fault.operation and c["status"] == 500]
    assert len(failed) == fault.times, (
        f"the fault on {fault.operation} for {fault.function} fired {len(failed)} times, not {fault.times} "
        f"({MAX_ATTEMPTS} attempts x {fault.calls} calls): the scenario did not unfold as set up"
    )


def assert_failed_and_retried(mark: Mark, function: str) -> None:
    """One invocation of `function` failed (the SDK gave up) and Lambda ran
    the same event again, successfully."""
    replies = mark.replies(function)
    failed = [r for r in replies if r["error"] is not None]
    assert failed, (
        f"no invocation of {function} failed: the AWS error was answered as a decision and "
        f"Lambda never retried the event:\n{replies_told(replies)}"
    )
    for reply in failed:
        later = [r for r in replies if r["event_id"] == reply["event_id"] and r["copy"] == reply["copy"] and r["attempt"] > reply["attempt"]]
        assert reply["will_retry"] and later, f"{function} failed and was not retried:\n{replies_told(replies)}"
        assert later[-1]["error"] is None, f"{function} failed on every retry:\n{replies_told(replies)}"


def deployments_started(mark: Mark, app: str) -> list[str]:
    """The services of `app` ECS started a deployment of (SERVICE_DEPLOYMENT_IN_PROGRESS)."""
    return sorted(
        e["event"]["resources"][0].rsplit("/", 1)[1]
        for e in mark.events("ECS Deployment State Change")
        if e["event"]["detail"]["eventName"] == "SERVICE_DEPLOYMENT_IN_PROGRESS" and f"/{app}-prod/" in e["event"]["resources"][0]
    )


def assert_one_update_per_service(mark: Mark, app: str) -> None:
    """ECS accepted one UpdateService per service from ferry and started one
    deployment per service: a resumed rollout does not deploy twice."""
    accepted = [c for c in mark.calls() if c["caller"].startswith("ferry-") and c["operation"] == "ecs:UpdateService" and c["status"] == 200]
    assert len(accepted) == len(SERVICES), f"ECS accepted {len(accepted)} UpdateService calls for {len(SERVICES)} services"
    assert deployments_started(mark, app) == sorted(SERVICES), f"deployments started: {deployments_started(mark, app)}"


def assert_released(stack, app: str, digest: str, tag: str) -> None:
    """What an operator checks after a release: the ledger says SUCCEEDED;
    every service runs a new revision with the pushed digest, its deployment
    completed; the SSM parameter names the tag, labelled known-good."""
    rid = release_id(app, digest)
    item = stack.release(rid)
    assert item is not None, f"release {rid} is not in the ledger"
    assert item["state"] == "SUCCEEDED", f"release {rid} is {item['state']}, not SUCCEEDED; reason: {item.get('reason')}"
    for name, service in stack.services(f"{app}-prod", SERVICES).items():
        arn = service["taskDefinition"]
        image = stack.task_definition(arn)["containerDefinitions"][0]["image"]
        assert image == f"{REGISTRY}/{app}@{digest}", f"{name} runs {arn} with image {image}, not the pushed {app}@{digest}"
        deployments = [(d["taskDefinition"], d["rolloutState"]) for d in service["deployments"]]
        assert deployments == [(arn, "COMPLETED")], f"{name}'s deployments: {deployments}"
    assert history(stack, app)[-1] == (tag, ["known-good"]), f"SSM parameter history (value, labels): {history(stack, app)}"


# ------------------------------------------------------------------ releases


@pytest.mark.parametrize("fault", RELEASE_STEPS)
def test_a_release_resumes_after_an_aws_call_fails_past_the_sdk_retries(stack, mark, fault):
    app = fault.app
    with held(stack, app, "tasks", fault.hold), faulted(stack, fault):
        digest = stack.push(app, "1.0.0")
        settle(stack)
    if fault.hold:  # the migration ends (exit 0) after ferry-deploy is done
        ecs = stack.client("ecs")
        started_by = f"ferry/{release_id(app, digest)}"
        for task in ecs.list_tasks(cluster=f"{app}-prod", startedBy=started_by, desiredStatus="RUNNING")["taskArns"]:
            ecs.stop_task(cluster=f"{app}-prod", task=task, reason="ferry-emulator:exit=0")
        settle(stack)

    assert_fault_fired(mark, fault)
    assert_released(stack, fault.app, digest, "1.0.0")
    assert_one_update_per_service(mark, fault.app)
    assert_failed_and_retried(mark, fault.function)


@pytest.mark.parametrize("fault", DIRECT_STEPS)
def test_a_release_without_a_migration_resumes_after_an_aws_call_fails_past_the_sdk_retries(stack, mark, fault):
    app = fault.app
    with held(stack, app, "deployments", fault.hold), faulted(stack, fault):
        digest = stack.push(app, "1.0.0")
        settle(stack)
    if fault.hold:  # the deployments complete after ferry-deploy is done
        for name, service in stack.services(f"{app}-prod", SERVICES).items():
            if service["deployments"][0]["rolloutState"] == "IN_PROGRESS":
                stack.control("/_ferry/deployments/finish", {"cluster": f"{app}-prod", "service": name, "outcome": "COMPLETED", "region": "eu-west-1"})
        settle(stack)

    assert_fault_fired(mark, fault)
    assert not [c for c in mark.calls() if c["operation"] == "ecs:RunTask"], "no migration in this environment"
    assert_released(stack, fault.app, digest, "1.0.0")
    assert_one_update_per_service(mark, fault.app)
    assert_failed_and_retried(mark, fault.function)


# ----------------------------------------------------------------- rollbacks


@pytest.mark.parametrize("fault", ROLLBACK_STEPS)
def test_a_rollback_completes_after_an_aws_call_fails_past_the_sdk_retries(stack, rollouts, mark, fault):
    app = fault.app
    good_tds, bad, rollout = rollouts[app]["good_tds"], rollouts[app]["bad"], rollouts[app]["rollout_tds"]
    bad_id = release_id(app, bad)
    try:
        with faulted(stack, fault):
            set_alarm(stack, app, "ALARM")
            settle(stack)
    finally:
        set_alarm(stack, app, "OK")

    assert_fault_fired(mark, fault)
    # every service back on the known-good release's recorded revision, steady
    for name, service in stack.services(f"{app}-prod", SERVICES).items():
        deployments = [(d["taskDefinition"], d["rolloutState"]) for d in service["deployments"]]
        assert service["taskDefinition"] == good_tds[name], (
            f"{name} runs {service['taskDefinition']} (1.1.0's is {rollout[name]}), not the known-good {good_tds[name]}; deployments: {deployments}"
        )
        assert deployments == [(good_tds[name], "COMPLETED")], f"{name}'s deployments: {deployments}"
    assert history(stack, app)[-1] == ("1.0.0", ["known-good"]), f"SSM parameter history (value, labels): {history(stack, app)}"
    item = stack.release(bad_id)
    assert item["state"] == "ROLLED_BACK", f"release {bad_id} is {item['state']}, not ROLLED_BACK; reason: {item.get('reason')}"
    assert f"alarm {app}-prod-5xx" in item["reason"] and "rolled back to 1.0.0" in item["reason"], item["reason"]
    lane = lane_head(stack, app)
    assert lane["frozen"] is True and lane["known_good_tag"] == "1.0.0" and "in_flight_id" not in lane, lane
    assert bad_id in lane["bad_releases"], lane
    # one deployment back per service (an UpdateService repeated to the revision
    # a service already runs starts none, as in ECS)
    assert deployments_started(mark, app) == sorted(SERVICES), f"deployments started: {deployments_started(mark, app)}"
    assert_failed_and_retried(mark, "ferry-rollback")
