"""Verified by traffic: after every service of a release completed, the smoke
test (``verify``: RunTask, VERIFYING, its STOPPED event judged by ferry-gate)
and the bake (BAKING; a one-time EventBridge Scheduler schedule invokes
ferry-watch with ``{"bake_ended": ...}`` at its end, and ferry-watch reads the
alarms with DescribeAlarms) -- as AWS plays them: alarms change with
CloudWatch ``SetAlarmState``, the router delivers (or, on request, drops) the
ALARM events and fires the schedule at its time, or now on
``POST /_ferry/scheduler/fire``. Asserted: what an operator checks -- the
ledger, what each service runs, the SSM history and its labels, ferry's
``Release State Change`` events, the schedule.

Bakes here are short (``bake = "3s"`` in ferry-e2e.toml) so they end inside
``settle()``; the default window (no ``bake`` key: the alarm's 60 s x 1 ->
the 5-minute floor) and a 10-minute one are ended by firing their schedule now."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from typing import Any, Iterator

import pytest

from conftest import BAKE_APPS, Mark, release_id, snapshot
from estate import REGISTRY
from stack import StackError

ALARM_REASON = "Threshold Crossed: 1 out of the last 1 datapoints [57.0 (23/11/26 10:00:00)] was greater than the threshold (10.0)."
OK_REASON = "Threshold Crossed: 1 out of the last 1 datapoints [0.0 (23/11/26 10:05:00)] was not greater than the threshold (10.0)."
READS = ("Get", "Describe", "BatchGet", "List", "Query", "Scan")

# a faster clock than the stack's default (tasks 0.5 s, deployments 0.7 s):
# the same events in the same order
TASK_SECONDS, DEPLOYMENT_SECONDS = 0.15, 0.25
TASKS = {"after": TASK_SECONDS}
DEPLOYS = {"after": DEPLOYMENT_SECONDS}

SERVICES = {app: spec[0] for app, spec in BAKE_APPS.items()}
#: the apps with a known-good 1.0.0 before their scenario starts
KNOWN_GOOD = ["bake-alarm", "bake-over", "bake-lost", "bake-before", "smoke-fail"]
DEFAULT_BAKE = 300  # no `bake` key, one alarm of 60 s x 1: the 5-minute floor


@pytest.fixture(scope="module", autouse=True)
def faster_clock(stack):
    rules = {
        "tasks": {
            f"family:{app}-{family}": TASKS
            for app, (_, migration, _, smoke) in BAKE_APPS.items()
            for family, has in (("migrate", migration), ("smoke", smoke))
            if has
        },
        "deployments": {f"{app}-prod/{s}": DEPLOYS for app, services in SERVICES.items() for s in services},
    }
    stack.scenario(rules)
    yield
    stack.scenario({section: {selector: None for selector in given} for section, given in rules.items()})


@pytest.fixture(scope="module")
def known_good(stack, faster_clock) -> dict[str, tuple[str, dict[str, str]]]:
    """1.0.0 released and known-good in every app of KNOWN_GOOD, all at once
    (they share nothing); bake-alarm's 5-minute bake ended by firing its
    schedule now: app -> (digest, the task definition each service runs)."""
    settle(stack)
    digests = {app: stack.push(app, "1.0.0") for app in KNOWN_GOOD}
    settle(stack)  # the 3-second bakes end in here; the 5-minute one does not
    baking = release_id("bake-alarm", digests["bake-alarm"])
    assert stack.release(baking)["state"] == "BAKING", stack.release(baking)
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
    assert len(items) == 1, items
    return items[0]


def alarm_of(app: str) -> str:
    return f"{app}-prod-5xx"


def set_alarm(stack, app: str, state: str) -> None:
    stack.client("cloudwatch").set_alarm_state(
        AlarmName=alarm_of(app), StateValue=state, StateReason=ALARM_REASON if state == "ALARM" else OK_REASON
    )


def schedules(stack) -> list[dict[str, Any]]:
    return stack.control("/_ferry/scheduler")["schedules"]


def schedule_of(stack, rid: str) -> dict[str, Any] | None:
    """The end-of-bake schedule of release `rid` (its input names it), if it exists."""
    found = [s for s in schedules(stack) if s["input"] == {"bake_ended": {"release_id": rid}}]
    assert len(found) <= 1, found
    return found[0] if found else None


def fire(stack, name: str, copies: int = 1) -> dict[str, Any]:
    """EventBridge Scheduler fires the schedule now, as if its time came."""
    return stack.control("/_ferry/scheduler/fire", {"name": name, "copies": copies})


def wait_for_outcome(mark: Mark, rid: str, outcome: str) -> dict[str, Any]:
    return mark.wait_for(
        lambda: next((d for d in mark.decisions() if d["outcome"] == outcome and d.get("release_id") == rid), None),
        what=f"{rid} {outcome}",
    )


def outcomes(decisions: list[dict[str, Any]]) -> list[str]:
    return [d["outcome"] for d in decisions]


def states(mark: Mark, rid: str) -> list[str]:
    return [e["state"] for e in mark.ferry_events() if e["releaseId"] == rid]


def writes(mark: Mark) -> list[str]:
    return [
        c["operation"]
        for c in mark.calls()
        if c["caller"].startswith("ferry-") and not c["operation"].split(":", 1)[1].startswith(READS)
    ]


@contextlib.contextmanager
def alarm_event_dropped(stack, app: str) -> Iterator[None]:
    """EventBridge loses the next ALARM event of the app's alarm (the alarm changes all the same)."""
    match = {"source": ["aws.cloudwatch"], "detail": {"alarmName": [alarm_of(app)], "state": {"value": ["ALARM"]}}}
    stack.router({"chaos": [{"match": match, "drop": True, "times": 1}]})
    try:
        yield
    finally:
        stack.router({"chaos": []})


def assert_rolled_back(stack, mark: Mark, app: str, *, bad: str, good_tds: dict[str, str], left: str, cause: str) -> None:
    """What an operator checks after a rollback: every service back on the
    known-good release's recorded revisions, steady; SSM back on 1.0.0 and
    labelled; the release ROLLED_BACK from the state it left, with its cause,
    in the ledger and in its event; the lane frozen."""
    rid = release_id(app, bad)
    for name, service in stack.services(f"{app}-prod", SERVICES[app]).items():
        deployments = [(d["taskDefinition"], d["rolloutState"]) for d in service["deployments"]]
        assert deployments == [(good_tds[name], "COMPLETED")], f"{name} is not back on known-good {good_tds[name]}: {deployments}"
    assert history(stack, app)[-1] == ("1.0.0", ["known-good"]), history(stack, app)
    assert [labels for _, labels in history(stack, app)].count(["known-good"]) == 1, history(stack, app)
    item = stack.release(rid)
    assert item["state"] == "ROLLED_BACK", f"{rid} is {item['state']}: {item.get('reason')}"
    assert item["rolled_back_from"] == left, item
    assert cause in item["reason"] and "rolled back to 1.0.0" in item["reason"], item["reason"]
    lane = lane_head(stack, app)
    assert lane["frozen"] is True and lane["known_good_tag"] == "1.0.0" and "in_flight_id" not in lane, lane
    assert rid in lane["bad_releases"], lane
    (event,) = [e for e in mark.ferry_events(app) if e["state"] == "ROLLED_BACK"]
    assert (event["releaseId"], event["digest"], event.get("previousState")) == (rid, bad, left), event
    assert cause in event["reason"], event


# ---------------------------------------------------- an alarm during the bake


def test_an_alarm_two_seconds_into_a_default_bake_rolls_every_service_back(stack, known_good, mark):
    app = "bake-alarm"
    good, good_tds = known_good[app]
    bad = stack.push(app, "1.1.0")
    rid = release_id(app, bad)
    baking = wait_for_outcome(mark, rid, "baking")
    # every deployment completed; no `bake` key: the alarm's 60 s x 1 -> the 5-minute floor
    assert DEFAULT_BAKE - 5 <= baking["until"] - time.time() <= DEFAULT_BAKE + 1, baking
    assert stack.release(rid)["bake_ends_at"] == baking["until"]
    for name, service in stack.services(f"{app}-prod", SERVICES[app]).items():
        assert [d["rolloutState"] for d in service["deployments"]] == ["COMPLETED"], (name, service["deployments"])
        assert service["taskDefinition"] != good_tds[name]
    timer = schedule_of(stack, rid)
    assert timer and timer["status"] == "pending" and DEFAULT_BAKE - 10 <= timer["in"] <= DEFAULT_BAKE, timer

    time.sleep(2)  # the new tasks take all the traffic; 5xx climbs
    set_alarm(stack, app, "ALARM")
    settle(stack)

    (decision,) = mark.decisions("ferry-rollback")
    assert decision["outcome"] == "rolled_back" and decision["release_id"] == rid, decision
    assert (decision["from"], decision["to"]) == ("1.1.0", "1.0.0"), decision
    assert_rolled_back(stack, mark, app, bad=bad, good_tds=good_tds, left="BAKING", cause=f"alarm {alarm_of(app)}")
    assert states(mark, rid) == ["CLAIMED", "MIGRATING", "DEPLOYING", "BAKING", "ROLLED_BACK"], states(mark, rid)
    assert [v for v, _ in history(stack, app)] == ["0.9.0", "1.0.0", "1.1.0", "1.0.0"], history(stack, app)

    # the bake's timer, when it comes, finds the release rolled back: nothing changes
    before = snapshot(stack, app)
    m = Mark(stack)
    fire(stack, timer["name"])
    settle(stack)
    assert [(d["outcome"], d.get("state")) for d in m.decisions("ferry-watch")] == [("duplicate", "ROLLED_BACK")], m.decisions()
    assert writes(m) == []
    assert snapshot(stack, app) == before
    set_alarm(stack, app, "OK")


def test_an_alarm_after_the_bake_ended_rolls_nothing_back(stack, known_good, mark):
    app = "bake-over"
    _, good_tds = known_good[app]
    digest = stack.push(app, "1.1.0")
    rid = release_id(app, digest)
    settle(stack)  # the 3-second bake ends in here
    item = stack.release(rid)
    assert item["state"] == "SUCCEEDED" and "reason" not in item, item
    assert states(mark, rid) == ["CLAIMED", "DEPLOYING", "BAKING", "SUCCEEDED"], states(mark, rid)
    assert history(stack, app)[-2:] == [("1.0.0", []), ("1.1.0", ["known-good"])], history(stack, app)
    assert lane_head(stack, app)["known_good_tag"] == "1.1.0"
    assert schedule_of(stack, rid) is None, "the schedule deleted itself"
    released = running(stack, app)
    assert all(released[s] != good_tds[s] for s in SERVICES[app]), released

    before = snapshot(stack, app)
    m = Mark(stack)
    set_alarm(stack, app, "ALARM")
    settle(stack)
    set_alarm(stack, app, "OK")
    decisions = m.decisions("ferry-rollback")
    assert outcomes(decisions) == ["ignored"], decisions
    assert writes(m) == []
    assert snapshot(stack, app) == before, "the emulator's state changed"
    assert running(stack, app) == released


def test_an_alarm_whose_event_was_lost_rolls_the_release_back_at_the_end_of_the_bake(stack, known_good, mark):
    app = "bake-lost"
    _, good_tds = known_good[app]
    bad = stack.push(app, "1.1.0")
    rid = release_id(app, bad)
    wait_for_outcome(mark, rid, "baking")
    with alarm_event_dropped(stack, app):
        set_alarm(stack, app, "ALARM")
        settle(stack)  # the 3-second bake ends in here
    set_alarm(stack, app, "OK")

    (event,) = [e for e in mark.events("CloudWatch Alarm State Change") if e["event"]["detail"]["state"]["value"] == "ALARM"]
    assert [e["kind"] for e in mark.entries() if e.get("event_id") == event["event"]["id"]] == ["dropped"], "the ALARM event was lost"
    assert mark.replies("ferry-rollback") == [], "ferry-rollback never heard of it"
    (decision,) = [d for d in mark.decisions("ferry-watch") if d["outcome"] == "rolled_back"]
    assert decision["release_id"] == rid and (decision["from"], decision["to"]) == ("1.1.0", "1.0.0"), decision
    assert f"alarm {alarm_of(app)}" in decision["reason"] and "end of the bake" in decision["reason"], decision
    assert_rolled_back(stack, mark, app, bad=bad, good_tds=good_tds, left="BAKING", cause=f"alarm {alarm_of(app)}: in ALARM at the end of the bake")
    assert schedule_of(stack, rid) is None


def test_an_alarm_in_alarm_before_the_release_began_is_not_held_against_it(stack, known_good, mark):
    app = "bake-before"
    set_alarm(stack, app, "ALARM")  # raised under 1.0.0, before the push
    settle(stack)
    assert outcomes(mark.decisions("ferry-rollback")) == ["ignored"], mark.decisions()
    time.sleep(1.1)  # CloudWatch and ferry count alarm changes in whole seconds
    fix = stack.push(app, "1.1.0")
    rid = release_id(app, fix)
    settle(stack)  # the 3-second bake ends in here

    item = stack.release(rid)
    assert item["state"] == "SUCCEEDED", item
    note = f"alarm {alarm_of(app)} was in ALARM before the rollout began"
    assert note in item["reason"] and "not held against the release" in item["reason"], item
    assert states(mark, rid) == ["CLAIMED", "DEPLOYING", "BAKING", "SUCCEEDED"], states(mark, rid)
    (succeeded,) = [e for e in mark.ferry_events(app) if e["state"] == "SUCCEEDED"]
    assert note in succeeded["reason"], succeeded
    assert history(stack, app)[-1] == ("1.1.0", ["known-good"]), history(stack, app)
    lane = lane_head(stack, app)
    assert lane["known_good_tag"] == "1.1.0" and lane["frozen"] is False, lane
    fixed_tds = running(stack, app)

    # the same alarm going OK -> ALARM during a later release's bake rolls that one back
    m = Mark(stack)
    bad = stack.push(app, "1.2.0")
    bad_id = release_id(app, bad)
    wait_for_outcome(m, bad_id, "baking")
    set_alarm(stack, app, "OK")
    set_alarm(stack, app, "ALARM")
    settle(stack)
    set_alarm(stack, app, "OK")
    (decision,) = [d for d in m.decisions("ferry-rollback") if d["outcome"] == "rolled_back"]
    assert decision["release_id"] == bad_id and (decision["from"], decision["to"]) == ("1.2.0", "1.1.0"), decision
    item = stack.release(bad_id)
    assert item["state"] == "ROLLED_BACK" and item["rolled_back_from"] == "BAKING", item
    assert f"alarm {alarm_of(app)}" in item["reason"], item
    assert running(stack, app) == fixed_tds
    assert history(stack, app)[-1] == ("1.1.0", ["known-good"]), history(stack, app)
    assert lane_head(stack, app)["frozen"] is True


# ------------------------------------------------------------- the smoke test


def test_a_smoke_test_that_exits_1_rolls_every_service_back(stack, known_good, mark):
    app = "smoke-fail"
    _, good_tds = known_good[app]
    stack.scenario({"tasks": {f"family:{app}-smoke": {**TASKS, "exitCode": 1}}})
    try:
        bad = stack.push(app, "1.1.0")
        rid = release_id(app, bad)
        settle(stack)
    finally:
        stack.scenario({"tasks": {f"family:{app}-smoke": TASKS}})

    # the services were out: every deployment of 1.1.0 completed before the smoke test ran
    verifying = [d for d in mark.decisions("ferry-watch") if d["outcome"] == "verifying"]
    assert [d["release_id"] for d in verifying] == [rid], mark.decisions()
    (decision,) = [d for d in mark.decisions("ferry-gate") if d["outcome"] == "rolled_back"]
    assert decision["release_id"] == rid and (decision["from"], decision["to"]) == ("1.1.0", "1.0.0"), decision
    assert "smoke test failed" in decision["reason"], decision
    assert_rolled_back(stack, mark, app, bad=bad, good_tds=good_tds, left="VERIFYING", cause="smoke test failed")
    assert states(mark, rid) == ["CLAIMED", "DEPLOYING", "VERIFYING", "ROLLED_BACK"], states(mark, rid)
    assert schedule_of(stack, rid) is None, "no bake, no timer"


def test_a_smoke_test_that_exits_0_leads_to_the_bake_and_then_to_known_good(stack, mark):
    app = "smoke-pass"
    smoke_before = stack.revisions(f"{app}-smoke")
    digest = stack.push(app, "1.0.0")
    rid = release_id(app, digest)
    settle(stack)

    item = stack.release(rid)
    assert item["state"] == "SUCCEEDED", item
    assert states(mark, rid) == ["CLAIMED", "MIGRATING", "DEPLOYING", "VERIFYING", "BAKING", "SUCCEEDED"], states(mark, rid)
    assert history(stack, app)[-1] == ("1.0.0", ["known-good"]), history(stack, app)
    for name, arn in running(stack, app).items():
        assert stack.task_definition(arn)["containerDefinitions"][0]["image"] == f"{REGISTRY}/{app}@{digest}", name

    # the smoke test ran once, a new revision of its family pinned to the release digest
    ecs = stack.client("ecs")
    arns = ecs.list_tasks(cluster=f"{app}-prod", startedBy=f"ferry/{rid}", desiredStatus="STOPPED")["taskArns"]
    tasks = ecs.describe_tasks(cluster=f"{app}-prod", tasks=arns)["tasks"]
    smoke = [t for t in tasks if t["taskDefinitionArn"].rsplit("/", 1)[1].startswith(f"{app}-smoke:")]
    assert len(smoke) == 1, [t["taskDefinitionArn"] for t in tasks]
    (task,) = smoke
    assert task["taskArn"] == item["verify_task"] and task["startedBy"] == f"ferry/{rid}", task
    assert [c.get("exitCode") for c in task["containers"]] == [0], task["containers"]
    assert stack.revisions(f"{app}-smoke") == [*smoke_before, task["taskDefinitionArn"]]
    definition = stack.task_definition(task["taskDefinitionArn"])
    assert definition["containerDefinitions"][0]["image"] == f"{REGISTRY}/{app}@{digest}", definition["containerDefinitions"]
    assert {"key": "ferry:release", "value": rid} in definition["tags"], definition["tags"]
    # ... and the bake began only after it: ferry-gate judged its STOPPED event
    baking = [d for d in mark.decisions() if d["outcome"] == "baking"]
    assert [(d["_binary"], d["release_id"]) for d in baking] == [("ferry-gate", rid)], baking


# ---------------------------------------------------------------- the timer


def test_the_end_of_bake_timer_delivered_twice_ends_the_bake_once(stack, mark):
    app = "bake-twice"
    digest = stack.push(app, "1.0.0")
    rid = release_id(app, digest)
    wait_for_outcome(mark, rid, "baking")
    settle(stack)  # a 10-minute bake does not keep the stack unsettled

    # while baking: one schedule, named after the release, that invokes ferry-watch with the release id
    assert stack.release(rid)["state"] == "BAKING"
    timer = schedule_of(stack, rid)
    assert timer is not None, schedules(stack)
    assert timer["name"].startswith(f"ferry-bake-{rid.rsplit('/', 1)[1]}-"), timer
    assert (timer["binary"], timer["status"], timer["action_after_completion"]) == ("ferry-watch", "pending", "DELETE"), timer
    assert timer["expression"].startswith("at(") and timer["timezone"] == "UTC", timer
    ends = int(stack.release(rid)["bake_ends_at"])
    assert timer["at"] == dt.datetime.fromtimestamp(ends, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), (timer, ends)
    assert 590 <= timer["in"] <= 600, timer
    assert history(stack, app)[-1] == ("1.0.0", []), "not known-good while baking"

    m = Mark(stack)
    fired = fire(stack, timer["name"], copies=2)
    settle(stack)

    assert fired["copies"] == 2 and fired["deleted"] is True, fired
    replies = [r for r in m.replies("ferry-watch") if r["event_id"] == fired["fire_id"]]
    assert len(replies) == 2 and all(r["error"] is None for r in replies), replies
    assert sorted(outcomes(m.decisions("ferry-watch"))) == ["duplicate", "succeeded"], m.decisions()
    assert stack.release(rid)["state"] == "SUCCEEDED"
    assert states(m, rid) == ["SUCCEEDED"], states(m, rid)
    labels = [c for c in m.calls("ferry-watch") if c["operation"] == "ssm:LabelParameterVersion"]
    assert len(labels) == 1, labels
    assert history(stack, app)[-1] == ("1.0.0", ["known-good"]), history(stack, app)
    assert lane_head(stack, app)["known_good_tag"] == "1.0.0"
    # the schedule deleted itself after it fired
    assert schedule_of(stack, rid) is None
    with pytest.raises(StackError, match="404"):
        fire(stack, timer["name"])
