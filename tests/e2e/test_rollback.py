"""Rollback as AWS plays it: a guarding alarm goes to ALARM (SetAlarmState in
CloudWatch), ECS fails a deployment (the scenario), an operator invokes
ferry-rollback. The router derives every event from the emulator's state and
delivers it by the rules of template.yaml; the emulator's state is asserted
afterwards: every service back on the known-good release's recorded task
definitions, the SSM tag back and labelled, the release ROLLED_BACK with its
cause, the environment frozen -- once, however often the alarm arrives."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from conftest import ROLLBACK_APPS, Mark, release_id, snapshot
from estate import REGISTRY
from stack import manifest

ALARM_REASON = (
    "Threshold Crossed: 1 out of the last 1 datapoints [57.0 (23/11/26 10:00:00)] was greater than "
    "the threshold (10.0) (minimum 1 datapoint for OK -> ALARM transition)."
)
OK_REASON = "Threshold Crossed: 1 out of the last 1 datapoints [0.0 (23/11/26 10:05:00)] was not greater than the threshold (10.0)."
READS = ("Get", "Describe", "BatchGet", "List", "Query", "Scan")

# these apps' migrations and deployments end sooner than the stack's default
# (0.5 s, 0.7 s): the same events in the same order, a faster clock
APPS = {app: services for app, (services, _, _) in ROLLBACK_APPS.items()}
MIGRATION_SECONDS, DEPLOYMENT_SECONDS = 0.15, 0.25
DEPLOYS = {"after": DEPLOYMENT_SECONDS}


@pytest.fixture(scope="module", autouse=True)
def faster_clock(stack):
    rules = {
        "tasks": {f"family:{app}-migrate": {"after": MIGRATION_SECONDS} for app in APPS},
        "deployments": {f"{app}-prod/{s}": DEPLOYS for app, services in APPS.items() for s in services},
    }
    stack.scenario(rules)
    yield
    stack.scenario({section: {selector: None for selector in given} for section, given in rules.items()})


@pytest.fixture(scope="module")
def known_good(stack, faster_clock) -> dict[str, tuple[str, dict[str, str]]]:
    """Every app but `fresh` released 1.0.0 (all at once: they share nothing):
    app -> (digest, the task definition each service runs)."""
    stack.settle()
    digests = {app: stack.push(app, "1.0.0") for app in APPS if app != "fresh"}
    stack.settle()
    released = {}
    for app, digest in digests.items():
        item = stack.release(release_id(app, digest))
        assert item and item["state"] == "SUCCEEDED", item
        released[app] = (digest, running(stack, app, APPS[app]))
    return released


# ------------------------------------------------------------------- helpers


def parameter(app: str) -> str:
    return f"/{app}/prod/compute/currentImageTag"


def running(stack, app: str, services: list[str]) -> dict[str, str]:
    """What each service runs: its task definition ARN."""
    described = stack.services(f"{app}-prod", services)
    return {s: described[s]["taskDefinition"] for s in services}


def deployment_ids(stack, app: str, services: list[str]) -> dict[str, list[str]]:
    described = stack.services(f"{app}-prod", services)
    return {s: [d["id"] for d in described[s]["deployments"]] for s in services}


def head(stack, app: str) -> dict[str, Any]:
    """The lane head in the ledger (one repository per app here)."""
    items = [i for i in stack.ledger() if i.get("pk") == f"lane#{app}/prod#{app}" and i.get("sk") == "head"]
    assert len(items) == 1, items
    return items[0]


def history(stack, app: str) -> list[tuple[str, list[str]]]:
    return [(p["value"], p["labels"]) for p in stack.parameter_history(parameter(app))]


def release(stack, app: str, services: list[str], tag: str) -> tuple[str, dict[str, str]]:
    """Push app:tag and let it become a known-good release: (digest, task definitions)."""
    mark = Mark(stack)
    digest = stack.push(app, tag)
    stack.settle()
    item = stack.release(release_id(app, digest))
    assert item and item["state"] == "SUCCEEDED", (item, mark.decisions())
    return digest, running(stack, app, services)


def hold_rollout(stack, app: str, services: list[str]) -> None:
    """Deployments started from now on stay IN_PROGRESS (ECS still replacing tasks)."""
    stack.scenario({"deployments": {f"{app}-prod/{s}": {"outcome": "never"} for s in services}})


def end_hold(stack, app: str, services: list[str]) -> None:
    """Deployments started from now on complete as usual (the held ones stay IN_PROGRESS)."""
    stack.scenario({"deployments": {f"{app}-prod/{s}": DEPLOYS for s in services}})


def start_rollout(stack, mark: Mark, app: str, services: list[str], tag: str) -> str:
    """Push app:tag and wait until its deployments are under way and held there."""
    hold_rollout(stack, app, services)
    digest = stack.push(app, tag)
    rid = release_id(app, digest)
    mark.wait_for(
        lambda: any(d["outcome"] == "deploying" and d.get("release_id") == rid for d in mark.decisions()),
        what=f"{app}:{tag} deploying",
    )
    end_hold(stack, app, services)
    return digest


def set_alarm(stack, app: str, state: str, reason: str | None = None) -> None:
    stack.client("cloudwatch").set_alarm_state(
        AlarmName=f"{app}-prod-5xx", StateValue=state, StateReason=reason or (ALARM_REASON if state == "ALARM" else OK_REASON)
    )


def rollback_invoke(stack, payload: dict[str, Any]) -> dict[str, Any]:
    status, reply, function_error = stack.invoke("ferry-rollback", payload)
    assert status == 200 and function_error is None, (status, reply, function_error)
    return reply


def outcomes(decisions: list[dict[str, Any]]) -> list[str]:
    return [d["outcome"] for d in decisions]


def writes(mark: Mark) -> list[str]:
    return [
        c["operation"]
        for c in mark.calls()
        if c["caller"].startswith("ferry-") and not c["operation"].split(":", 1)[1].startswith(READS)
    ]


def assert_three_round_trips(calls: list[dict[str, Any]], services: list[str]) -> None:
    """From the event to the last UpdateService, ferry reads the lane head,
    writes one transaction (the rollback recorded with its target), then sends
    every UpdateService at once, beside the claim on the lane's tag writes and
    the read of the release left (for its event): each step only after the
    previous was answered (the emulator records when a call arrived and when it
    was answered). Under the claim the tag is written, then the claim given
    back; then the `known-good` label, the transaction that ends the rollback
    (once every UpdateService was answered), and the event."""
    read, begin, *rest = sorted(calls, key=lambda c: c["time"])
    assert (read["operation"], begin["operation"]) == ("dynamodb:GetItem", "dynamodb:TransactWriteItems"), timeline(calls)
    assert begin["time"] >= read["ended"] and all(c["time"] >= begin["ended"] for c in rest), timeline(calls)
    by_operation: dict[str, list[dict[str, Any]]] = {}
    for call in rest:
        by_operation.setdefault(call["operation"], []).append(call)
    counts = {operation: len(found) for operation, found in by_operation.items()}
    assert counts == {
        "ecs:UpdateService": len(services), "dynamodb:GetItem": 1, "dynamodb:UpdateItem": 2, "ssm:PutParameter": 1,
        "ssm:LabelParameterVersion": 1, "dynamodb:TransactWriteItems": 1, "events:PutEvents": 1,
    }, timeline(calls)
    updates = by_operation["ecs:UpdateService"]
    claim, give_back = by_operation["dynamodb:UpdateItem"]
    (put,), (label,) = by_operation["ssm:PutParameter"], by_operation["ssm:LabelParameterVersion"]
    (close,), (event,) = by_operation["dynamodb:TransactWriteItems"], by_operation["events:PutEvents"]
    # the third round trip: every UpdateService, the claim and the read of the
    # release left, each sent once the transaction was answered (above); the
    # tag write waits for the claim only
    assert put["time"] >= claim["ended"] and give_back["time"] >= put["ended"], timeline(calls)
    assert label["time"] >= give_back["ended"], timeline(calls)
    assert close["time"] >= max(c["ended"] for c in updates + [label]) and event["time"] >= close["ended"], timeline(calls)


def app_state(stack, app: str, services: list[str]) -> dict[str, Any]:
    """All of one app's state ferry could change (cheaper than a snapshot)."""
    families = [f"{app}-{s}" for s in services] + ([f"{app}-migrate"] if stack.revisions(f"{app}-migrate") else [])
    described = stack.services(f"{app}-prod", services)
    return {
        "revisions": {f: stack.revisions(f) for f in families},
        "services": {s: (d["taskDefinition"], [(x["id"], x["status"], x["rolloutState"]) for x in d["deployments"]]) for s, d in described.items()},
        "parameter": history(stack, app),
        "ledger": [i for i in stack.ledger() if f"{app}/prod" in str(i.get("pk"))],
    }


def timeline(calls: list[dict[str, Any]]) -> str:
    t0 = min(c["time"] for c in calls)
    return "\n".join(f"{c['operation']:<28} {1000 * (c['time'] - t0):7.1f} ms .. {1000 * (c['ended'] - t0):7.1f} ms" for c in calls)


def rolled_back_view(stack, app: str, services: list[str], bad_digest: str) -> dict[str, Any]:
    """What an operator looks at after a rollback."""
    return {
        "services": stack.services(f"{app}-prod", services),
        "history": history(stack, app),
        "release": stack.release(release_id(app, bad_digest)),
        "lane": head(stack, app),
    }


def assert_rolled_back(view: dict[str, Any], app: str, *, bad_digest: str, good_tds: dict[str, str], good_tag: str, cause: str) -> None:
    """The state every rollback leaves: services on the recorded revisions,
    steady; SSM back and labelled; the release ROLLED_BACK; the lane frozen."""
    for name, service in view["services"].items():
        assert service["taskDefinition"] == good_tds[name], f"{name} back on the known-good task definition"
        assert [(d["taskDefinition"], d["rolloutState"]) for d in service["deployments"]] == [(good_tds[name], "COMPLETED")], service["deployments"]
    assert view["history"][-1] == (good_tag, ["known-good"]), view["history"]
    item = view["release"]
    assert item["state"] == "ROLLED_BACK", item
    assert cause in item["reason"] and f"rolled back to {good_tag}" in item["reason"], item["reason"]
    lane = view["lane"]
    assert lane["frozen"] is True, lane
    assert release_id(app, bad_digest) in lane["bad_releases"], lane
    assert "in_flight_id" not in lane and lane["known_good_tag"] == good_tag, lane


def assert_rolled_back_now(stack, app: str, services: list[str], **expected: Any) -> None:
    assert_rolled_back(rolled_back_view(stack, app, services, expected["bad_digest"]), app, **expected)


# ----------------------------------------------- an alarm during a rollout


ALARM_APP, ALARM_SERVICES = "alarm", ["api", "worker", "scheduler"]


@pytest.fixture(scope="module")
def alarm_rollback(stack, known_good) -> dict[str, Any]:
    """`alarm`: 1.0.0 known-good; 1.1.0's three deployments IN_PROGRESS when
    alarm-prod-5xx goes to ALARM. What it left, captured at once."""
    app, services = ALARM_APP, ALARM_SERVICES
    stack.settle()
    good, good_tds = known_good[app]
    revisions = {s: stack.revisions(f"{app}-{s}") for s in services}
    mark = Mark(stack)
    bad = start_rollout(stack, mark, app, services, "1.1.0")
    during = stack.services(f"{app}-prod", services)
    set_alarm(stack, app, "ALARM")
    stack.settle()
    captured = {
        "good": good,
        "bad": bad,
        "good_tds": good_tds,
        "revisions_before": revisions,
        "during": during,
        "entries": mark.entries(),
        "calls": mark.calls(),
        "ferry_events": mark.ferry_events(app),
        "revisions_after": {s: stack.revisions(f"{app}-{s}") for s in services},
        "view": rolled_back_view(stack, app, services, bad),
    }
    set_alarm(stack, app, "OK")
    stack.settle()
    return captured


def test_an_alarm_during_a_rollout_rolls_every_service_back(stack, alarm_rollback):
    app, services, r = ALARM_APP, ALARM_SERVICES, alarm_rollback
    bad_id = release_id(app, r["bad"])
    # the rollout was under way: 1.1.0's deployments were IN_PROGRESS
    for name, service in r["during"].items():
        assert service["deployments"][0]["rolloutState"] == "IN_PROGRESS", name
        assert service["deployments"][0]["taskDefinition"] != r["good_tds"][name]

    alarm_events = [e for e in r["entries"] if e["kind"] == "event" and e["event"]["detail-type"] == "CloudWatch Alarm State Change"]
    assert [e["targets"] for e in alarm_events] == [["RollbackFunction/AlarmRaised"]]
    replies = [e for e in r["entries"] if e["kind"] == "reply" and e["binary"] == "ferry-rollback"]
    assert len(replies) == 1 and replies[0]["error"] is None, replies
    (decision,) = replies[0]["reply"]["decisions"]
    assert decision["outcome"] == "rolled_back" and decision["release_id"] == bad_id, decision
    assert (decision["from"], decision["to"]) == ("1.1.0", "1.0.0")
    assert "alarm alarm-prod-5xx" in decision["reason"] and ALARM_REASON in decision["reason"], decision

    # nothing registered, nothing deregistered: the recorded revisions, one UpdateService each
    rollback_ops = [c["operation"] for c in r["calls"] if c["caller"] == "ferry-rollback"]
    assert rollback_ops.count("ecs:UpdateService") == len(services), rollback_ops
    assert not [op for op in rollback_ops if "TaskDefinition" in op], rollback_ops
    for s in services:
        # 1.1.0's revision is the only new one; 1.0.0's is still ACTIVE, as every earlier one
        assert r["revisions_after"][s][:-1] == r["revisions_before"][s] and r["good_tds"][s] in r["revisions_before"][s]
    # one read of the lane head, one transaction, every UpdateService at once
    assert_three_round_trips([c for c in r["calls"] if c["caller"] == "ferry-rollback" and c["operation"] != "ssm:GetParameter"], services)

    assert r["view"]["history"] == [("0.9.0", []), ("1.0.0", []), ("1.1.0", []), ("1.0.0", ["known-good"])]
    assert_rolled_back(r["view"], app, bad_digest=r["bad"], good_tds=r["good_tds"], good_tag="1.0.0", cause="alarm alarm-prod-5xx")
    rolled = [e for e in r["ferry_events"] if e["state"] == "ROLLED_BACK"]
    assert len(rolled) == 1 and rolled[0]["releaseId"] == bad_id and "alarm alarm-prod-5xx" in rolled[0]["reason"], rolled


def test_the_rolled_back_event_names_the_bad_digest_and_the_state_it_left(alarm_rollback):
    (event,) = [e for e in alarm_rollback["ferry_events"] if e["state"] == "ROLLED_BACK"]
    assert (event["digest"], event.get("previousState")) == (alarm_rollback["bad"], "DEPLOYING"), event


def test_a_redelivered_push_of_the_rolled_back_digest_changes_nothing(stack, mark, alarm_rollback):
    app, bad = ALARM_APP, alarm_rollback["bad"]
    before = snapshot(stack, app)
    (push,) = [
        e["event"]
        for e in alarm_rollback["entries"]
        if e["kind"] == "event" and e["event"]["detail-type"] == "ECR Image Action" and e["event"]["detail"]["image-digest"] == bad
    ]
    # EventBridge delivers the push again, late; and the same image is pushed under another tag
    stack.control("/_ferry/router/redeliver", {"id": push["id"]})
    stack.client("ecr").put_image(repositoryName=app, imageManifest=manifest(app, "1.1.0"), imageTag="1.1.1")
    stack.settle()

    decisions = mark.decisions("ferry-deploy")
    assert outcomes(decisions) == ["refused", "refused"], decisions
    assert all("marked bad" in d["reason"] and bad in d["reason"] for d in decisions), decisions
    assert writes(mark) == []
    assert mark.ferry_events() == []
    assert snapshot(stack, app) == before, "the emulator's state changed"


def test_a_new_digest_while_frozen_is_held_and_unfreeze_deploys_it(stack, mark, alarm_rollback):
    app, services = ALARM_APP, ALARM_SERVICES
    tds_before = running(stack, app, services)
    deployments_before = deployment_ids(stack, app, services)
    families = [f"{app}-{s}" for s in services] + [f"{app}-migrate"]
    revisions_before = {f: stack.revisions(f) for f in families}
    history_before = history(stack, app)
    digest = stack.push(app, "1.2.0")
    stack.settle()
    rid = release_id(app, digest)

    assert outcomes(mark.decisions("ferry-deploy")) == ["held"], mark.decisions()
    lane = head(stack, app)
    assert lane["frozen"] is True and (lane.get("held_tag"), lane.get("held_digest")) == ("1.2.0", digest), lane
    assert stack.release(rid) is None, "held on the lane head, no release yet"
    ops = mark.operations()
    assert not [op for op in ops if op.startswith(("ecs:Register", "ecs:RunTask", "ecs:UpdateService", "ssm:Put"))], ops
    assert {f: stack.revisions(f) for f in families} == revisions_before
    assert deployment_ids(stack, app, services) == deployments_before and running(stack, app, services) == tds_before
    assert history(stack, app) == history_before

    reply = rollback_invoke(stack, {"unfreeze": {"app": app, "environment": "prod"}})
    assert reply["ok"] is True, reply
    assert outcomes(reply["decisions"]) == ["unfrozen", "migrating"], reply
    assert reply["decisions"][1]["release_id"] == rid
    stack.settle()

    assert stack.release(rid)["state"] == "SUCCEEDED"
    tds = running(stack, app, services)
    for s in services:
        assert tds[s] != tds_before[s]
        assert stack.task_definition(tds[s])["containerDefinitions"][0]["image"] == f"{REGISTRY}/{app}@{digest}"
    assert history(stack, app)[-1] == ("1.2.0", ["known-good"])
    lane = head(stack, app)
    assert lane["frozen"] is False and "held_tag" not in lane and lane["known_good_tag"] == "1.2.0", lane


# ------------------------------------------- an alarm while still migrating


def test_an_alarm_while_the_release_migrates_cancels_it_before_its_services(stack, known_good, mark):
    app, services = "early", ["api", "worker"]
    _, good_tds = known_good[app]
    deployments = deployment_ids(stack, app, services)
    stack.scenario({"tasks": {f"{app}:1.1.0": {"outcome": "never"}}})
    m = Mark(stack)
    bad = stack.push(app, "1.1.0")
    m.wait_for(lambda: "migrating" in outcomes(m.decisions("ferry-deploy")), what="1.1.0 migrating")
    stack.scenario({"tasks": {f"{app}:1.1.0": None}})  # (read when the task started)
    set_alarm(stack, app, "ALARM")
    stack.settle()
    set_alarm(stack, app, "OK")

    assert outcomes(m.decisions("ferry-rollback")) == ["rolled_back"], m.decisions()
    # the migration ends afterwards, successfully: the gate must not roll 1.1.0 out
    ecs = stack.client("ecs")
    tasks = ecs.list_tasks(cluster=f"{app}-prod", startedBy=f"ferry/{app}/prod/{release_id(app, bad).rsplit('/', 1)[1]}", desiredStatus="RUNNING")["taskArns"]
    for task in tasks:
        ecs.stop_task(cluster=f"{app}-prod", task=task, reason="ferry-emulator:exit=0")
    stack.settle()
    gate = m.decisions("ferry-gate")
    assert len(gate) == 1 and gate[0]["outcome"] in ("ignored", "duplicate") and "ROLLED_BACK" in json.dumps(gate), gate
    assert "ecs:UpdateService" not in [c["operation"] for c in m.calls("ferry-gate")]
    assert deployment_ids(stack, app, services) == deployments, "no service was deployed"
    assert_rolled_back_now(stack, app, services, bad_digest=bad, good_tds=good_tds, good_tag="1.0.0", cause="alarm early-prod-5xx")


# ------------------------------------------------ a failed deployment


def test_a_failed_deployment_rolls_back_all_three_services_also_the_two_that_completed(stack, known_good, mark):
    app, services = "dfail", ["api", "worker", "scheduler"]
    _, good_tds = known_good[app]
    # api and worker complete (after 0.25 s); then scheduler's circuit breaker trips (after 1 s)
    failure = "ECS deployment circuit breaker: tasks failed to start."
    stack.scenario({"deployments": {f"{app}-prod/scheduler": {"outcome": "FAILED", "after": 1.0, "reason": failure}}})
    m = Mark(stack)
    bad = stack.push(app, "1.1.0")
    rid = release_id(app, bad)
    m.wait_for(lambda: any(d["outcome"] == "deploying" for d in m.decisions("ferry-gate")), what="1.1.0 deploying")
    stack.scenario({"deployments": {f"{app}-prod/scheduler": DEPLOYS}})
    stack.settle()

    ended = [
        (e["event"]["resources"][0].rsplit("/", 1)[1], e["event"]["detail"]["eventName"].rsplit("_", 1)[1])
        for e in m.events("ECS Deployment State Change")
        if not e["event"]["detail"]["eventName"].endswith("IN_PROGRESS")
    ]
    # ECS: api and worker completed 1.1.0, then scheduler failed (and the breaker rolled it back)
    assert sorted(ended[:2]) == [("api", "COMPLETED"), ("worker", "COMPLETED")] and ended[2] == ("scheduler", "FAILED"), ended
    watch = m.decisions("ferry-watch")
    assert outcomes(watch).count("progress") == 2 and outcomes(watch).count("rolled_back") == 1, watch
    (rolled,) = [d for d in watch if d["outcome"] == "rolled_back"]
    assert rolled["release_id"] == rid and (rolled["from"], rolled["to"]) == ("1.1.0", "1.0.0")
    assert "service scheduler failed" in rolled["reason"] and failure in rolled["reason"], rolled
    ops = [c["operation"] for c in m.calls("ferry-watch")]
    assert ops.count("ecs:UpdateService") == len(services), ops
    assert_rolled_back_now(stack, app, services, bad_digest=bad, good_tds=good_tds, good_tag="1.0.0", cause="service scheduler failed")
    assert [(e["releaseId"], e["state"]) for e in m.ferry_events(app)][-1] == (rid, "ROLLED_BACK")


# ----------------------------------------------------- the operator


def test_an_operator_rolls_back_to_the_previous_known_good_then_to_a_named_tag(stack, known_good, mark):
    app, services = "manual", ["api", "worker"]
    tds, digests = {}, {}
    digests["1.0.0"], tds["1.0.0"] = known_good[app]
    for tag in ("1.1.0", "1.2.0"):
        digests[tag], tds[tag] = release(stack, app, services, tag)

    m = Mark(stack)
    reply = rollback_invoke(stack, {"rollback": {"app": app, "environment": "prod", "reason": "checkout errors since 1.2.0"}})
    assert reply["ok"] is True and outcomes(reply["decisions"]) == ["rolled_back"], reply
    decision = reply["decisions"][0]
    assert (decision["from"], decision["to"]) == ("1.2.0", "1.1.0") and decision["release_id"] == release_id(app, digests["1.2.0"])
    stack.settle()
    assert_rolled_back_now(stack, app, services, bad_digest=digests["1.2.0"], good_tds=tds["1.1.0"], good_tag="1.1.0", cause="operator: checkout errors since 1.2.0")
    assert [c["operation"] for c in m.calls("ferry-rollback")].count("ecs:UpdateService") == len(services)

    m = Mark(stack)
    reply = rollback_invoke(stack, {"rollback": {"app": app, "environment": "prod", "to": "1.0.0", "reason": "1.1.0 corrupts carts too"}})
    assert reply["ok"] is True and outcomes(reply["decisions"]) == ["rolled_back"], reply
    assert (reply["decisions"][0]["from"], reply["decisions"][0]["to"]) == ("1.1.0", "1.0.0")
    stack.settle()
    assert_rolled_back_now(stack, app, services, bad_digest=digests["1.1.0"], good_tds=tds["1.0.0"], good_tag="1.0.0", cause="operator: 1.1.0 corrupts carts too")
    assert [c["operation"] for c in m.calls("ferry-rollback")].count("ecs:UpdateService") == len(services)
    assert [v for v, _ in history(stack, app)] == ["0.9.0", "1.0.0", "1.1.0", "1.2.0", "1.1.0", "1.0.0"]
    assert [labels for _, labels in history(stack, app)].count(["known-good"]) == 1

    # refused: a rolled-back release, a tag ferry never released; nothing changes
    before = app_state(stack, app, services)
    m = Mark(stack)
    for to, says in (("1.2.0", "1.2.0"), (release_id(app, digests["1.1.0"]), "1.1.0"), ("9.9.9", "9.9.9")):
        reply = rollback_invoke(stack, {"rollback": {"app": app, "environment": "prod", "to": to, "reason": "try"}})
        assert reply["ok"] is False and reply["error"]["kind"] == "bad_request", reply
        assert says in reply["error"]["message"] or to in reply["error"]["message"], reply
    stack.settle()
    assert writes(m) == []
    assert app_state(stack, app, services) == before


# ------------------------------------------------------- once, however often


def _one_rollback(stack, m: Mark, app: str, services: list[str], bad: str, good_tds: dict[str, str]) -> None:
    rollback = m.decisions("ferry-rollback")
    assert outcomes(rollback).count("rolled_back") == 1, rollback
    assert set(outcomes(rollback)) <= {"rolled_back", "ignored"}, rollback
    ops = [c["operation"] for c in m.calls("ferry-rollback")]
    assert ops.count("ecs:UpdateService") == len(services), ops
    # concurrent rollbacks are serialised by a conditional write: one succeeds
    done = [c["operation"] for c in m.calls("ferry-rollback") if c["status"] < 400]
    # (two transactions: the rollback recorded with its target, then its end)
    assert done.count("ssm:PutParameter") == 1 and done.count("dynamodb:TransactWriteItems") == 2, m.calls("ferry-rollback")
    # one new deployment per service: 1.1.0's, then the rollback's
    started = [e["event"]["resources"][0].rsplit("/", 1)[1] for e in m.events("ECS Deployment State Change")
               if e["event"]["detail"]["eventName"] == "SERVICE_DEPLOYMENT_IN_PROGRESS"]
    assert sorted(started) == sorted(services * 2), started
    assert [v for v, _ in history(stack, app)] == ["0.9.0", "1.0.0", "1.1.0", "1.0.0"]
    assert_rolled_back_now(stack, app, services, bad_digest=bad, good_tds=good_tds, good_tag="1.0.0", cause=f"alarm {app}-prod-5xx")
    # every delivery that found nothing to roll back said so in its decision; one event
    states = [e["state"] for e in m.ferry_events(app) if e["state"].startswith("ROLL")]
    assert states == ["ROLLED_BACK"], states


def test_the_same_alarm_delivered_five_times_at_once_rolls_back_once(stack, known_good, mark):
    app, services = "dupalarm", ["api", "worker"]
    _, good_tds = known_good[app]
    m = Mark(stack)
    bad = start_rollout(stack, m, app, services, "1.1.0")
    stack.router({"chaos": [{"match": {"source": ["aws.cloudwatch"], "detail": {"alarmName": [f"{app}-prod-5xx"]}}, "copies": 5, "times": 1}]})
    try:
        set_alarm(stack, app, "ALARM")
        stack.settle()
    finally:
        stack.router({"chaos": []})
    set_alarm(stack, app, "OK")
    assert len([r for r in m.replies("ferry-rollback") if r["error"] is None]) == 5, "five deliveries answered"
    _one_rollback(stack, m, app, services, bad, good_tds)


def test_an_alarm_flapping_alarm_ok_alarm_rolls_back_once(stack, known_good, mark):
    app, services = "flap", ["api", "worker"]
    _, good_tds = known_good[app]
    m = Mark(stack)
    bad = start_rollout(stack, m, app, services, "1.1.0")
    for state in ("ALARM", "OK", "ALARM"):
        set_alarm(stack, app, state)
    stack.settle()
    set_alarm(stack, app, "OK")
    alarms = [(e["event"]["detail"]["state"]["value"], e["targets"]) for e in m.events("CloudWatch Alarm State Change")]
    assert alarms[:3] == [("ALARM", ["RollbackFunction/AlarmRaised"]), ("OK", []), ("ALARM", ["RollbackFunction/AlarmRaised"])], alarms
    _one_rollback(stack, m, app, services, bad, good_tds)


# ------------------------------------------------------------ no rollback


def test_ok_and_insufficient_data_during_a_rollout_change_nothing(stack, known_good, mark):
    app, services = "calm", ["api"]
    assert app in known_good  # 1.0.0 is its known-good release
    m = Mark(stack)
    digest = start_rollout(stack, m, app, services, "1.1.0")
    stack.settle()
    before = snapshot(stack, app)
    m = Mark(stack)
    set_alarm(stack, app, "INSUFFICIENT_DATA", "Insufficient Data: 1 datapoint was unknown.")
    set_alarm(stack, app, "OK")
    stack.settle()

    derived = m.events("CloudWatch Alarm State Change")
    assert [(e["event"]["detail"]["state"]["value"], e["targets"]) for e in derived] == [("INSUFFICIENT_DATA", []), ("OK", [])]
    assert not m.replies(), "no rule matched: no function ran"
    # were they delivered anyway, ferry-rollback would ignore them
    for entry in derived:
        reply = rollback_invoke(stack, entry["event"])
        assert reply["ok"] is True and outcomes(reply["decisions"]) == ["ignored"], reply
        assert "only ALARM rolls back" in reply["decisions"][0]["reason"], reply
    stack.settle()
    assert writes(m) == []
    assert snapshot(stack, app) == before, "the emulator's state changed"

    # the rollout finishes and 1.1.0 becomes known-good, as if nothing happened
    for service in services:
        stack.control("/_ferry/deployments/finish", {"cluster": f"{app}-prod", "service": service, "outcome": "COMPLETED", "region": "eu-west-1"})
    stack.settle()
    assert stack.release(release_id(app, digest))["state"] == "SUCCEEDED"


def test_without_a_known_good_release_rollback_is_a_clear_error_and_changes_nothing(stack, mark):
    app = "fresh"
    before = snapshot(stack, app)
    for payload in (
        {"rollback": {"app": app, "environment": "prod", "reason": "errors"}},
        {"rollback": {"app": app, "environment": "prod", "to": "0.9.0", "reason": "errors"}},
    ):
        reply = rollback_invoke(stack, payload)
        assert reply["ok"] is False and reply["error"]["kind"] == "bad_request", reply
        assert "no known-good release" in reply["error"]["message"], reply
    set_alarm(stack, app, "ALARM")
    stack.settle()
    set_alarm(stack, app, "OK")
    decisions = mark.decisions("ferry-rollback")
    assert outcomes(decisions) == ["refused"] and "no known-good release" in decisions[0]["reason"], decisions
    reply = rollback_invoke(stack, {"unfreeze": {"app": app, "environment": "prod"}})
    assert reply["ok"] is True and outcomes(reply["decisions"]) == ["ignored"] and "not frozen" in reply["decisions"][0]["reason"], reply
    stack.settle()
    assert writes(mark) == []
    assert mark.ferry_events() == []
    assert snapshot(stack, app) == before, "the emulator's state changed"


# ------------------------------------------- an alarm racing the release's own writes


class Precondition(Exception):
    """The scenario did not unfold as set up: the test fails, naming the step that did not happen."""


def require(condition: Any, message: str) -> None:
    if not condition:
        raise Precondition(message)


def wait_for_state(stack, rid: str, state: str, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        item = stack.release(rid)
        if item and item["state"] == state:
            return
        time.sleep(0.02)
    raise Precondition(f"release {rid} never reached {state}: {stack.release(rid)}")


def test_an_alarm_as_the_rollout_starts_keeps_the_rolled_back_release_off_the_services(stack, known_good, mark):
    app, services = "racegate", ["api", "worker"]
    _, good_tds = known_good[app]
    # the gate's UpdateService calls take three seconds to reach ECS (a slow API, a
    # cold connection): time for the alarm to land first even on a loaded machine
    stack.control("/_ferry/faults", {"faults": [{"operation": "ecs:UpdateService", "caller": "ferry-gate", "delay": 3.0, "status": 0, "times": len(services)}]})
    try:
        bad = stack.push(app, "1.1.0")
        rid = release_id(app, bad)
        wait_for_state(stack, rid, "DEPLOYING")  # the gate moved it on; its UpdateService calls are on their way
        set_alarm(stack, app, "ALARM")
        stack.settle()
    finally:
        stack.control("/_ferry/faults", {"faults": []})
        set_alarm(stack, app, "OK")
    require(outcomes(mark.decisions("ferry-rollback")) == ["rolled_back"], mark.decisions())
    require(stack.release(rid)["state"] == "ROLLED_BACK", stack.release(rid))
    require(head(stack, app)["frozen"] is True, head(stack, app))
    # the race took place: the rollback was recorded while the gate's UpdateService calls were on their way
    rollout = [c for c in mark.calls("ferry-gate") if c["operation"] == "ecs:UpdateService"][: len(services)]
    decided = [c for c in mark.calls("ferry-rollback") if c["operation"] == "dynamodb:TransactWriteItems"]
    require(len(rollout) == len(services) and decided, (rollout, decided))
    require(decided[0]["ended"] < max(c["ended"] for c in rollout), f"no race: the rollback was recorded at {decided[0]['ended']}, after the rollout landed: {rollout}")
    # the environment was rolled back: the bad release must not run
    assert running(stack, app, services) == good_tds, f"services run {running(stack, app, services)} after the rollback to {good_tds}"


def test_an_alarm_as_the_migration_starts_leaves_the_known_good_tag_in_ssm(stack, known_good, mark):
    app, services = "racessm", ["api"]
    _, good_tds = known_good[app]
    # ferry-deploy's SSM write takes three seconds to land (see above)
    stack.control("/_ferry/faults", {"faults": [{"operation": "ssm:PutParameter", "caller": "ferry-deploy", "delay": 3.0, "status": 0, "times": 1}]})
    try:
        bad = stack.push(app, "1.1.0")
        rid = release_id(app, bad)
        wait_for_state(stack, rid, "MIGRATING")  # registered, moved on; its SSM write is on its way
        set_alarm(stack, app, "ALARM")
        stack.settle()
    finally:
        stack.control("/_ferry/faults", {"faults": []})
        set_alarm(stack, app, "OK")
    require(outcomes(mark.decisions("ferry-rollback")) == ["rolled_back"], mark.decisions())
    require(stack.release(rid)["state"] == "ROLLED_BACK", stack.release(rid))
    require(running(stack, app, services) == good_tds, running(stack, app, services))
    # the race took place: the rollback was recorded while ferry-deploy's SSM write was on its way
    writes = [c for c in mark.calls("ferry-deploy") if c["operation"] == "ssm:PutParameter"]
    decided = [c for c in mark.calls("ferry-rollback") if c["operation"] == "dynamodb:TransactWriteItems"]
    require(writes and decided, (writes, decided))
    require(decided[0]["ended"] < writes[0]["ended"], f"no race: the rollback was recorded at {decided[0]['ended']}, after the SSM write landed: {writes[0]}")
    # the parameter's current value is the known-good tag
    assert history(stack, app)[-1] == ("1.0.0", ["known-good"]), history(stack, app)


# ------------------------------------- a known-good revision deregistered


def test_an_alarm_rollback_to_deregistered_revisions_runs_re_registered_copies(stack, known_good, mark):
    """Another tool (ecs-deploy does by default) deregistered 1.0.0's revisions:
    ECS refuses them to UpdateService, so ferry copies each from its description
    (nothing changed but its ferry tags) and puts the services on the copies."""
    app, services = "dereg", ["api", "worker"]
    good, good_tds = known_good[app]
    ecs = stack.client("ecs")
    for arn in good_tds.values():
        ecs.deregister_task_definition(taskDefinition=arn)
    m = Mark(stack)
    bad = start_rollout(stack, m, app, services, "1.1.0")
    set_alarm(stack, app, "ALARM")
    stack.settle()
    set_alarm(stack, app, "OK")

    assert outcomes(m.decisions("ferry-rollback")) == ["rolled_back"], m.decisions()
    now = running(stack, app, services)
    for s in services:
        copy = stack.task_definition(now[s])
        assert now[s] != good_tds[s] and copy["status"] == "ACTIVE", (now[s], good_tds[s])
        assert copy["family"] == f"{app}-{s}"
        assert copy["containerDefinitions"][0]["image"] == f"{REGISTRY}/{app}@{good}"
        original = stack.task_definition(good_tds[s])
        assert original["status"] == "INACTIVE"
        assert copy["containerDefinitions"] == original["containerDefinitions"], "the same definition"
        assert {"key": "ferry:release", "value": release_id(app, good)} in copy["tags"], copy["tags"]
    ops = [c["operation"] for c in m.calls("ferry-rollback")]
    # refused once per service, described, copied, then UpdateService onto the copy
    assert ops.count("ecs:UpdateService") == 2 * len(services), ops
    assert ops.count("ecs:DescribeTaskDefinition") == len(services), ops
    assert ops.count("ecs:RegisterTaskDefinition") == len(services), ops
    refused = [c for c in m.calls("ferry-rollback") if c["operation"] == "ecs:UpdateService" and c["status"] >= 400]
    assert len(refused) == len(services), refused
    assert_rolled_back_now(stack, app, services, bad_digest=bad, good_tds=now, good_tag="1.0.0", cause=f"alarm {app}-prod-5xx")
    # the lane still records 1.0.0's own revisions as its known-good release
    history_tds = head(stack, app)["history"][0]
    assert release_id(app, good) in json.dumps(history_tds) and all(arn in json.dumps(history_tds) for arn in good_tds.values()), history_tds
