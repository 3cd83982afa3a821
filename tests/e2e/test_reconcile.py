"""The reconcile pass: events are hints, the ledger converges. For each kind of
event EventBridge may lose -- a push, a migration's STOPPED, a deployment's
COMPLETED or FAILED, an ALARM during a bake -- the router drops it (chaos
``drop``), and a direct invoke of ferry-reconcile (``Stack.reconcile``; the
local stack never fires its schedule) brings the lane to the end state the
event would have: asserted on the ledger, the SSM history and what each service
runs, as the other scenarios assert. Beside them: a migration that never stops
(stopped after its timeout, with a reason naming ferry), a service moved behind
ferry's back (``Drift Detected``; healed with ``heal_drift``), an idle lane
(``in_sync``) and a pass racing the live event (one effect)."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Iterator

import pytest

from conftest import RECONCILE_APPS, Mark, release_id
from estate import image, task_definition
from stack import StackError

SERVICES = {app: spec[0] for app, spec in RECONCILE_APPS.items()}
TASK_SECONDS, DEPLOYMENT_SECONDS = 0.15, 0.25
#: decide::reconcile::TASK_GRACE: a one-off task is stopped this long after its timeout
TASK_GRACE = 60
ALARM_REASON = "Threshold Crossed: 1 out of the last 1 datapoints [57.0 (23/11/26 10:00:00)] was greater than the threshold (10.0)."


@pytest.fixture(scope="module", autouse=True)
def faster_clock(stack):
    rules = {
        "tasks": {f"family:{app}-migrate": {"after": TASK_SECONDS} for app, (_, migration, _) in RECONCILE_APPS.items() if migration},
        "deployments": {f"{app}-prod/{s}": {"after": DEPLOYMENT_SECONDS} for app, services in SERVICES.items() for s in services},
    }
    stack.scenario(rules)
    yield
    stack.scenario({section: {selector: None for selector in given} for section, given in rules.items()})


@pytest.fixture(scope="module")
def known_good(stack, faster_clock) -> dict[str, tuple[str, dict[str, str]]]:
    """1.0.0 released and known-good, through the live events, in every app
    whose scenario starts from one: app -> (digest, what each service runs)."""
    apps = ["rec-push", "rec-fail", "rec-alarm", "rec-drift", "rec-heal"]
    settle(stack)
    digests = {app: stack.push(app, "1.0.0") for app in apps}
    settle(stack)
    baking = release_id("rec-alarm", digests["rec-alarm"])  # bake = "10m": end it now
    fire(stack, schedule_of(stack, baking)["name"])
    settle(stack)
    released = {}
    for app, digest in digests.items():
        item = stack.release(release_id(app, digest))
        assert item and item["state"] == "SUCCEEDED", item
        assert history(stack, app)[-1] == ("1.0.0", ["known-good"]), history(stack, app)
        released[app] = (digest, running(stack, app))
    return released


# ------------------------------------------------------------------- helpers


def settle(stack) -> None:
    stack.settle(60, quiet=0.1)


def running(stack, app: str) -> dict[str, str]:
    described = stack.services(f"{app}-prod", SERVICES[app])
    return {s: described[s]["taskDefinition"] for s in SERVICES[app]}


def history(stack, app: str) -> list[tuple[str, list[str]]]:
    return [(p["value"], p["labels"]) for p in stack.parameter_history(f"/{app}/prod/compute/currentImageTag")]


def lane_head(stack, app: str) -> dict[str, Any]:
    items = [i for i in stack.ledger() if i.get("pk") == f"lane#{app}/prod#{app}" and i.get("sk") == "head"]
    assert len(items) <= 1, items
    return items[0] if items else {}


def schedule_of(stack, rid: str) -> dict[str, Any] | None:
    found = [s for s in stack.control("/_ferry/scheduler")["schedules"] if s["input"] == {"bake_ended": {"release_id": rid}}]
    assert len(found) <= 1, found
    return found[0] if found else None


def fire(stack, name: str) -> dict[str, Any]:
    return stack.control("/_ferry/scheduler/fire", {"name": name})


@contextlib.contextmanager
def lost(stack, match: dict[str, Any], times: int = 1) -> Iterator[None]:
    """EventBridge loses the next ``times`` events matching ``match`` (AWS's
    state changes all the same)."""
    stack.router({"chaos": [{"match": match, "drop": True, "times": times}]})
    try:
        yield
    finally:
        stack.router({"chaos": []})


def push_of(app: str) -> dict[str, Any]:
    return {"source": ["aws.ecr"], "detail-type": ["ECR Image Action"], "detail": {"repository-name": [app]}}


def migration_stopped(app: str) -> dict[str, Any]:
    return {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {"lastStatus": ["STOPPED"], "startedBy": [{"prefix": f"ferry/{app}/"}]},
    }


def deployment_ended(app: str, service: str, name: str) -> dict[str, Any]:
    return {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Deployment State Change"],
        "resources": [{"suffix": f":service/{app}-prod/{service}"}],
        "detail": {"eventName": [name]},
    }


def dropped(mark: Mark, match_source: str) -> list[dict[str, Any]]:
    ids = {e["event"]["id"] for e in mark.events(source=match_source)}
    return [e for e in mark.entries() if e["kind"] == "dropped" and e.get("event_id") in ids]


def reconciled_events(mark: Mark, app: str, detail_type: str = "Reconciled") -> list[dict[str, Any]]:
    return [e["event"]["detail"] for e in mark.events(detail_type, "ferry") if e["event"]["detail"].get("app") == app]


def lane_decision(decisions: list[dict[str, Any]], app: str) -> dict[str, Any]:
    (decision,) = [d for d in decisions if d.get("app") == app and d.get("environment") == "prod"]
    return decision


def assert_reconciled(mark: Mark, app: str, rid: str | None) -> None:
    """A `Reconciled` event from ferry for the lane (naming the release in
    flight when there was one), saying what was found and done."""
    events = [e for e in reconciled_events(mark, app) if rid is None or e.get("releaseId") == rid]
    assert events, f"no Reconciled event for {rid or app}: {reconciled_events(mark, app)}"
    for event in events:
        assert (event["environment"], event["repository"]) == ("prod", app), event
        assert event["found"] and event["done"], event


def assert_released(stack, app: str, rid: str, tag: str, before: dict[str, str]) -> None:
    """What an operator checks after a release: SUCCEEDED, known-good on the
    lane head, every service on a new revision pinned to the digest, the tag
    in SSM labelled known-good."""
    item = stack.release(rid)
    assert item and item["state"] == "SUCCEEDED", item
    assert lane_head(stack, app).get("known_good_id") == rid, lane_head(stack, app)
    after = running(stack, app)
    for service in SERVICES[app]:
        assert after[service] != before[service], f"{service} still runs {before[service]}"
        containers = stack.task_definition(after[service])["containerDefinitions"]
        assert containers[0]["image"].endswith(f"/{app}@{item['digest']}"), containers[0]["image"]
    assert history(stack, app)[-1] == (tag, ["known-good"]), history(stack, app)


# ------------------------------------------------------------- idle lanes


def test_an_idle_lane_is_in_sync_and_the_pass_changes_nothing(stack, known_good, mark):
    app = "rec-push"
    before = (running(stack, app), history(stack, app), lane_head(stack, app))
    decision = lane_decision(stack.reconcile(app, "prod"), app)
    assert decision["outcome"] == "in_sync", decision
    assert (running(stack, app), history(stack, app), lane_head(stack, app)) == before
    writes = {op for op in mark.operations() if not op.split(":")[1].startswith(("Get", "Describe", "BatchGet", "List"))}
    assert writes == set(), f"an idle lane is only read: {writes}"
    assert reconciled_events(mark, app) == []


def test_a_push_to_a_lane_ferry_never_released_is_left_alone(stack, mark):
    app = "rec-fresh"
    before = (running(stack, app), history(stack, app))
    with lost(stack, push_of(app)):
        stack.push(app, "1.0.0")
        settle(stack)
    assert mark.decisions("ferry-deploy") == [], "the push event was lost"
    stack.reconcile(app, "prod")
    settle(stack)
    assert (running(stack, app), history(stack, app)) == before
    assert lane_head(stack, app).get("in_flight_id") is None, lane_head(stack, app)
    assert "ecs:RegisterTaskDefinition" not in mark.operations()


# ------------------------------------------------------------- lost events


def test_a_lost_push_is_released_with_the_release_id_of_its_event(stack, known_good, mark):
    app = "rec-push"
    before = known_good[app][1]
    time.sleep(1.1)  # ECR's push times here are whole seconds: newer than 1.0.0's
    with lost(stack, push_of(app)):
        digest = stack.push(app, "1.1.0")
        settle(stack)
    assert dropped(mark, "aws.ecr"), "the push event was lost"
    assert mark.decisions("ferry-deploy") == []
    rid = release_id(app, digest)
    assert stack.release(rid) is None

    decision = lane_decision(stack.reconcile(app, "prod"), app)
    assert decision["outcome"] == "reconciled", decision
    assert any("1.1.0" in c for c in decision["corrections"]), decision
    assert stack.release(rid) is not None, "claimed under the id its event would have given it"
    settle(stack)  # migration, rollout: the live events from here on
    assert_released(stack, app, rid, "1.1.0", before)
    assert_reconciled(mark, app, rid)


def test_a_lost_migration_stop_rolls_the_release_out(stack, mark):
    app = "rec-stop"
    before = running(stack, app)
    with lost(stack, migration_stopped(app)):
        digest = stack.push(app, "1.0.0")
        settle(stack)
    rid = release_id(app, digest)
    assert stack.release(rid)["state"] == "MIGRATING", stack.release(rid)
    assert mark.decisions("ferry-gate") == []

    stack.reconcile(app, "prod")
    settle(stack)
    assert_released(stack, app, rid, "1.0.0", before)
    assert mark.operations().get("ecs:UpdateService") == len(SERVICES[app])
    assert_reconciled(mark, app, rid)


def test_a_lost_deployment_completed_makes_the_release_known_good(stack, mark):
    app = "rec-done"
    before = running(stack, app)
    with lost(stack, deployment_ended(app, "worker", "SERVICE_DEPLOYMENT_COMPLETED")):
        digest = stack.push(app, "1.0.0")
        settle(stack)
    rid = release_id(app, digest)
    assert stack.release(rid)["state"] == "DEPLOYING", stack.release(rid)

    stack.reconcile(app, "prod")
    assert stack.release(rid)["state"] == "BAKING", stack.release(rid)
    assert [c["operation"] for c in mark.calls("ferry-reconcile") if c["operation"].startswith("scheduler:")] == ["scheduler:CreateSchedule"]
    settle(stack)  # the 3-second bake ends by its timer
    assert_released(stack, app, rid, "1.0.0", before)
    assert mark.operations().get("ecs:UpdateService") == len(SERVICES[app]), "no service rolled out twice"
    assert_reconciled(mark, app, rid)


def test_a_lost_deployment_failed_rolls_every_service_back(stack, known_good, mark):
    app = "rec-fail"
    good_tds = known_good[app][1]
    stack.scenario({"deployments": {f"{app}-prod/worker": {"outcome": "FAILED", "after": DEPLOYMENT_SECONDS}}})
    try:
        with lost(stack, deployment_ended(app, "worker", "SERVICE_DEPLOYMENT_FAILED")):
            bad = stack.push(app, "1.1.0")
            settle(stack)
    finally:
        stack.scenario({"deployments": {f"{app}-prod/worker": {"after": DEPLOYMENT_SECONDS}}})
    rid = release_id(app, bad)
    assert stack.release(rid)["state"] == "DEPLOYING", stack.release(rid)

    decisions = stack.reconcile(app, "prod")
    settle(stack)
    worker = stack.services(f"{app}-prod", ["worker"])["worker"]["deployments"]
    assert stack.release(rid)["state"] == "ROLLED_BACK", (decisions, worker, stack.release(rid))
    assert_rolled_back(stack, app, rid, good_tds)
    assert_reconciled(mark, app, rid)


def test_a_lost_alarm_during_the_bake_rolls_the_release_back(stack, known_good, mark):
    app = "rec-alarm"
    good_tds = known_good[app][1]
    bad = stack.push(app, "1.1.0")
    settle(stack)
    rid = release_id(app, bad)
    assert stack.release(rid)["state"] == "BAKING", stack.release(rid)
    match = {"source": ["aws.cloudwatch"], "detail": {"alarmName": [f"{app}-prod-5xx"], "state": {"value": ["ALARM"]}}}
    with lost(stack, match):
        stack.client("cloudwatch").set_alarm_state(AlarmName=f"{app}-prod-5xx", StateValue="ALARM", StateReason=ALARM_REASON)
        settle(stack)
    assert dropped(mark, "aws.cloudwatch"), "the ALARM event was lost"
    assert stack.release(rid)["state"] == "BAKING", "nothing heard of the alarm"

    stack.reconcile(app, "prod")
    settle(stack)
    assert_rolled_back(stack, app, rid, good_tds)
    assert_reconciled(mark, app, rid)
    stack.client("cloudwatch").set_alarm_state(AlarmName=f"{app}-prod-5xx", StateValue="OK", StateReason="recovered")


def assert_rolled_back(stack, app: str, rid: str, good_tds: dict[str, str]) -> None:
    item = stack.release(rid)
    assert item["state"] == "ROLLED_BACK", f"{rid} is {item['state']}: {item.get('reason')}"
    assert running(stack, app) == good_tds, running(stack, app)
    assert history(stack, app)[-1] == ("1.0.0", ["known-good"]), history(stack, app)
    lane = lane_head(stack, app)
    assert lane["frozen"] is True and "in_flight_id" not in lane, lane
    assert rid in lane["bad_releases"], lane


# ------------------------------------------------------------ stuck tasks


def test_a_migration_that_never_stops_is_stopped_after_its_timeout_and_fails_the_release(stack, mark):
    app = "rec-stuck"
    before = running(stack, app)
    stack.scenario({"tasks": {f"family:{app}-migrate": {"outcome": "never"}}})
    try:
        digest = stack.push(app, "1.0.0")
        settle(stack)
    finally:
        stack.scenario({"tasks": {f"family:{app}-migrate": {"after": TASK_SECONDS}}})
    rid = release_id(app, digest)
    item = stack.release(rid)
    assert item["state"] == "MIGRATING", item
    task = item["migration_task"]
    ecs = stack.client("ecs")
    assert ecs.describe_tasks(cluster=f"{app}-prod", tasks=[task])["tasks"][0]["lastStatus"] == "RUNNING"

    assert lane_decision(stack.reconcile(app, "prod"), app)["outcome"] == "in_sync", "still within its time"
    started = ecs.describe_tasks(cluster=f"{app}-prod", tasks=[task])["tasks"][0]["startedAt"].timestamp()
    time.sleep(max(0.0, started + 2 + TASK_GRACE + 1 - time.time()))  # its timeout is 2s
    stack.reconcile(app, "prod")
    settle(stack)  # its STOPPED event reaches ferry-gate

    stopped = ecs.describe_tasks(cluster=f"{app}-prod", tasks=[task])["tasks"][0]
    assert stopped["lastStatus"] == "STOPPED", stopped
    assert "ferry" in stopped["stoppedReason"], stopped["stoppedReason"]
    item = stack.release(rid)
    assert item["state"] == "FAILED" and "timeout" in item["reason"], item
    assert running(stack, app) == before, "no service touched"
    assert "ecs:UpdateService" not in mark.operations()
    assert [v for v, _ in history(stack, app)][-2:] == ["1.0.0", "0.9.0"], history(stack, app)
    gate = [d["outcome"] for d in mark.decisions("ferry-gate")]
    # The STOPPED event that StopTask causes races the pass's own judgement of
    # the stopped task: whichever settles first fails the release (the same
    # verdict: it outlived its timeout), the other finds it failed and writes
    # nothing. One FAILED, one restore of the tag, whoever wins.
    assert gate in ([], ["duplicate"], ["ignored"], ["superseded"], ["failed"]), gate
    assert [e["state"] for e in mark.ferry_events(app)].count("FAILED") == 1
    assert_reconciled(mark, app, rid)


# ------------------------------------------------------------------ drift


def drift(stack, app: str, service: str) -> str:
    """An operator points the service at a revision of another image, behind ferry's back."""
    definition = task_definition(f"{app}-{service}", service, image(app, "hotfix"))
    arn = stack.client("ecs").register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
    stack.client("ecs").update_service(cluster=f"{app}-prod", service=service, taskDefinition=arn)
    settle(stack)  # its deployment completes; ferry-watch knows no release of it
    return arn


def test_a_drifted_service_is_reported_with_the_expected_and_the_actual_revision(stack, known_good, mark):
    app = "rec-drift"
    good_tds = known_good[app][1]
    actual = drift(stack, app, "api")
    stack.reconcile(app, "prod")
    settle(stack)
    (event,) = reconciled_events(mark, app, "Drift Detected")
    assert (event["service"], event["expected"], event["actual"]) == ("api", good_tds["api"], actual), event
    assert running(stack, app)["api"] == actual, "reported, not healed (heal_drift is off)"
    assert "ecs:UpdateService" not in mark.operations()


def test_a_drifted_service_is_put_back_on_known_good_with_heal_drift(stack, known_good, mark):
    app = "rec-heal"
    good_tds = known_good[app][1]
    actual = drift(stack, app, "worker")
    stack.reconcile(app, "prod")
    settle(stack)
    (event,) = reconciled_events(mark, app, "Drift Detected")
    assert (event["service"], event["expected"], event["actual"]) == ("worker", good_tds["worker"], actual), event
    assert running(stack, app) == good_tds
    assert mark.operations().get("ecs:UpdateService") == 1, "only the drifted service"


# ------------------------------------------------------------------- races


def test_a_pass_racing_the_live_event_has_one_effect(stack, mark):
    app = "rec-race"
    before = running(stack, app)
    versions = len(history(stack, app))
    stack.router({"chaos": [{"match": migration_stopped(app), "delay": 1.0, "times": 1}]})
    try:
        digest = stack.push(app, "1.0.0")
        rid = release_id(app, digest)
        item = mark.wait_for(lambda: (stack.release(rid) or {}).get("migration_task") and stack.release(rid), what="the migration")
        ecs = stack.client("ecs")
        mark.wait_for(
            lambda: ecs.describe_tasks(cluster=f"{app}-prod", tasks=[item["migration_task"]])["tasks"][0]["lastStatus"] == "STOPPED",
            what="the migration to stop",
        )
        # the STOPPED event is on its way (1 s late): a pass and the event at once
        errors: list[BaseException] = []

        def run() -> None:
            try:
                stack.reconcile(app, "prod")
            except (StackError, AssertionError) as error:  # noqa: PERF203
                errors.append(error)

        passes = [threading.Thread(target=run) for _ in range(2)]
        for p in passes:
            p.start()
        for p in passes:
            p.join(60)
        assert not errors, errors
        settle(stack)
    finally:
        stack.router({"chaos": []})
    assert_released(stack, app, rid, "1.0.0", before)
    # every service on the release's revision and as many UpdateService calls as services: one each
    assert mark.operations().get("ecs:UpdateService") == len(SERVICES[app]), mark.operations()
    values = [v for v, _ in history(stack, app)[versions:]]
    assert values == ["1.0.0"], f"one SSM version: {history(stack, app)}"


# ------------------------------------------------------------- keep = N


def test_with_keep_the_pass_deregisters_the_revisions_no_known_good_release_needs(stack, mark):
    app = "rec-keep"
    settle(stack)
    seeded = stack.revisions(f"{app}-api")
    stack.push(app, "1.0.0")
    settle(stack)
    released = running(stack, app)["api"]
    assert released not in seeded, "1.0.0 registered a copy"

    decision = lane_decision(stack.reconcile(app, "prod"), app)

    assert decision["outcome"] == "reconciled", decision
    assert stack.revisions(f"{app}-api") == [released], "only the known-good revision stays ACTIVE"
    (event,) = reconciled_events(mark, app)
    assert all(arn in event["done"] for arn in seeded), event
    assert running(stack, app)["api"] == released
