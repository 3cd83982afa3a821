#!/usr/bin/env python3
"""ferry's demo: a story of releases, played on the local AWS stack.

Run it with ``scripts/demo`` (which installs the emulator and builds the
functions first). Each chapter pushes an image with the ECR API, exactly as
``docker push`` would reach ECR; everything after that is ferry's real
binaries reacting to the events the router derives from the emulator's state.
The demo prints a timeline (events, ferry's decisions, the AWS calls ferry
made, task-definition revisions, SSM versions, each service's task
definition) and a closing table, and exits non-zero if any chapter did not
end as it should.

Chapters are data: :data:`CHAPTERS` is a list of :class:`Chapter`, each with
a ``play`` function that acts and returns its checks. Add a chapter by
appending one. What an operator does besides pushing (SetAlarmState on the
guarding alarm, ``ferry unfreeze`` with the CLI, which invokes
ferry-rollback) appears in the timeline marked ``operator``; the demo ends
with ``ferry status`` and ``ferry history`` of the lane.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from stack import FERRY_STACK, REGION, ROOT, Stack  # noqa: E402

APP, ENV, CLUSTER, REPOSITORY = "shop", "prod", "shop-prod", "shop"
SERVICES = ["api", "worker", "scheduler"]
FAMILIES = {"api": "shop-api", "worker": "shop-worker", "scheduler": "shop-scheduler"}
MIGRATION_FAMILY = "shop-migrate"
SMOKE_FAMILY = "shop-smoke"
PARAMETER = "/shop/prod/compute/currentImageTag"
FUNCTIONS = ("ferry-deploy", "ferry-gate", "ferry-watch", "ferry-rollback")
ALARM = "shop-prod-5xx"
LANE_KEY = f"lane#{APP}/{ENV}#{REPOSITORY}"

COLOR = sys.stdout.isatty() and os.environ.get("NO_COLOR") is None


def _c(code: str, text: str) -> str:
    return f"\033[{code}m{text}\033[0m" if COLOR else text


def bold(text: str) -> str:
    return _c("1", text)


def dim(text: str) -> str:
    return _c("2", text)


def green(text: str) -> str:
    return _c("32", text)


def red(text: str) -> str:
    return _c("31", text)


def short_digest(digest: str) -> str:
    return digest.replace("sha256:", "")[:12]


def revision(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


# --------------------------------------------------------------------- checks


@dataclass
class Check:
    what: str
    ok: bool
    detail: str = ""


@dataclass
class Outcome:
    checks: list[Check] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)
    summary: str = ""

    def check(self, what: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(what, bool(ok), detail))
        return bool(ok)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks) and bool(self.checks)


# ---------------------------------------------------------------------- story


class Story:
    """What chapters share: the stack, what was pushed, and the timeline."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.tags_by_digest: dict[str, str] = {}
        self.digests: dict[str, str] = {}
        self.log_seq = 0
        self.call_seq = 0
        self.started = time.time()
        self.seen_revisions: dict[str, int] = {}
        #: what an operator did (alarm state, direct invokes, scenario changes), merged into the timeline
        self.local: list[dict[str, Any]] = []
        #: the current chapter's router log and AWS calls (for its checks)
        self.chapter_entries: list[dict[str, Any]] = []
        self.chapter_calls: list[dict[str, Any]] = []
        #: tag -> the task definition each service ran once that release succeeded
        self.known_good: dict[str, dict[str, str]] = {}

    # -- acting

    def push(self, tag: str, repository: str = REPOSITORY) -> str:
        digest = self.stack.push(repository, tag)
        self.tags_by_digest[digest] = tag
        self.digests[tag] = digest
        return digest

    def settle(self) -> None:
        self.stack.settle(timeout=90)

    def note(self, text: str, who: str = "operator") -> None:
        self.local.append({"time": time.time(), "kind": "note", "text": text, "who": who})

    def set_scenario(self, update: dict[str, Any], why: str) -> None:
        self.stack.scenario(update)
        self.note(dim(why), who="scenario")

    def set_alarm(self, state: str, reason: str) -> None:
        """What CloudWatch does when the metric crosses the threshold (SetAlarmState)."""
        self.note(f"SetAlarmState {ALARM} → {state}")
        self.stack.client("cloudwatch").set_alarm_state(AlarmName=ALARM, StateValue=state, StateReason=reason)

    def invoke(self, function: str, payload: dict[str, Any]) -> Any:
        """An operator's direct invoke (Lambda Invoke, RequestResponse)."""
        self.note(f"invoke {function} {json.dumps(payload)}")
        status, reply, function_error = self.stack.invoke(function, payload)
        self.local.append(
            {"time": time.time(), "kind": "reply", "binary": function, "reply": reply, "error": function_error, "direct": True}
        )
        if status != 200 or function_error:
            raise RuntimeError(f"invoke {function} -> {status} {function_error}: {reply}")
        return reply

    def ferry(self, *args: str, function: str = "ferry-rollback") -> Any:
        """An operator's command with the ferry CLI (cli/, the `ferry` binary
        beside the functions'), which invokes `function`: shown in the timeline
        with the function's decisions; returns its reply (`--json`)."""
        self.note(f"$ ferry {' '.join(args)}")
        return self._reply_of(args, self._run_cli([*args, "--json"]), function)

    def _run_cli(self, args: list[str]) -> subprocess.CompletedProcess:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_ENDPOINT_URL": self.stack.endpoint,
            "AWS_ENDPOINT_URL_LAMBDA": self.stack.functions_url,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "operator",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "FERRY_STACK": FERRY_STACK,
        }
        return subprocess.run([str(self.stack.bin_dir / "ferry"), *args], env=env, capture_output=True, text=True, timeout=120)

    def _reply_of(self, args: tuple[str, ...], result: subprocess.CompletedProcess, function: str) -> Any:
        if result.returncode not in (0, 1):
            raise RuntimeError(f"ferry {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
        reply = json.loads(result.stdout)
        self.local.append({"time": time.time(), "kind": "reply", "binary": function, "reply": reply, "error": None, "direct": True})
        return reply

    def wait_for_decision(self, binary: str, outcome: str, release: str, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for entry in self.stack.router_log(self.log_seq):
                reply = entry.get("reply") if entry["kind"] == "reply" and entry["binary"] == binary else None
                if isinstance(reply, dict) and any(
                    d.get("outcome") == outcome and d.get("release_id") == release for d in reply.get("decisions") or []
                ):
                    return
            time.sleep(0.05)
        raise TimeoutError(f"no {binary} decision {outcome} for {release} within {timeout:.0f}s")

    def release_id(self, tag: str) -> str:
        return f"{APP}/{ENV}/{self.digests[tag].replace('sha256:', '')[:16]}"

    def lane(self) -> dict[str, Any]:
        """The lane head in the ledger: known-good, in flight, frozen, held, bad releases."""
        return next((i for i in self.stack.ledger() if i.get("pk") == LANE_KEY and i.get("sk") == "head"), {})

    # -- reading

    def state(self) -> dict[str, Any]:
        services = self.stack.services(CLUSTER, SERVICES)
        return {
            "services": {name: services[name]["taskDefinition"] for name in SERVICES},
            "deployments": {name: len(services[name]["deployments"]) for name in SERVICES},
            "parameter": self.stack.parameter_history(PARAMETER),
            "revisions": {f: self.stack.revisions(f) for f in [*FAMILIES.values(), MIGRATION_FAMILY, SMOKE_FAMILY]},
            "lane": self.lane(),
            "deployment_states": {
                name: [(d["taskDefinition"], d["status"], d.get("rolloutState")) for d in services[name]["deployments"]]
                for name in SERVICES
            },
        }

    def image_of(self, task_definition_arn: str) -> str:
        definition = self.stack.task_definition(task_definition_arn)
        image = definition["containerDefinitions"][0]["image"]
        path = image.split("/", 1)[1] if "/" in image else image
        if "@" in path:
            repository, digest = path.split("@", 1)
            tag = self.tags_by_digest.get(digest)
            return f"{repository}@{short_digest(digest)}" + (f" ({tag})" if tag else "")
        return path

    def new_entries(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        entries = self.stack.router_log(self.log_seq)
        if entries:
            self.log_seq = entries[-1]["seq"]
        calls = self.stack.calls(self.call_seq)
        if calls:
            self.call_seq = calls[-1]["seq"]
        merged = sorted(entries + self.local, key=lambda e: e["time"])
        self.local = []
        return merged, calls

    def skip_to_now(self) -> None:
        self.new_entries()

    # -- printing

    def clock(self, at: float) -> str:
        return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"

    def print_timeline(self, entries: list[dict[str, Any]], calls: list[dict[str, Any]], outcome: Outcome) -> None:
        for entry in entries:
            at = self.clock(entry["time"])
            if entry["kind"] == "event":
                event = entry["event"]
                source = {
                    "aws.ecr": "ECR",
                    "aws.ecs": "ECS",
                    "aws.cloudwatch": "CloudWatch",
                    "ferry": "ferry event",
                }.get(event.get("source"), event.get("source"))
                targets = entry.get("targets") or []
                arrow = " → " + ", ".join(self._binary(t) for t in targets) if targets else dim("  (no rule matches)")
                if event.get("source") == "ferry":
                    arrow = ""
                print(f"  {dim(at)}  {source:<14} {entry['summary']}{arrow}")
            elif entry["kind"] == "note":
                who = entry.get("who", "operator")
                label = _yellow(who) if who == "operator" else dim(who)
                print(f"  {dim(at)}  {label}{' ' * (14 - len(who))} {entry['text']}")
            elif entry["kind"] == "reply":
                reply = entry.get("reply")
                if entry.get("error"):
                    text = red(f"function error {entry['error']}: {str(reply)[:160]}")
                    if entry.get("will_retry"):
                        text += " (Lambda retries)"
                    print(f"  {dim(at)}  {entry['binary']:<14} {text}")
                    continue
                for line in self._decisions(reply):
                    outcome.decisions.append(f"{entry['binary']}: {line}")
                    print(f"  {dim(at)}  {entry['binary']:<14} {line}")
            elif entry["kind"] == "schedule":
                target = entry.get("binary") or entry.get("function") or entry.get("target", "?")
                print(f"  {dim(at)}  {'Scheduler':<14} {entry.get('name', '?')} fired: {json.dumps(entry.get('input'))} → {target}")
            elif entry["kind"] in ("held", "released", "dropped", "undeliverable"):
                print(f"  {dim(at)}  router         {entry['kind']}: {entry}")
        by_function: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        for call in calls:
            if call["caller"] in FUNCTIONS:
                label = call["operation"] + ("" if call["status"] < 400 else f" ({call['status']})")
                by_function[call["caller"]][label] += 1
        if by_function:
            print(f"  {bold('AWS calls made by ferry')}")
            for function in FUNCTIONS:
                if function in by_function:
                    counter = by_function[function]
                    listed = ", ".join(f"{op}" + (f" ×{n}" if n > 1 else "") for op, n in sorted(counter.items()))
                    print(f"    {function:<14} {sum(counter.values()):>3}  {dim(listed)}")

    def _binary(self, target: str) -> str:
        return {
            "DeployFunction": "ferry-deploy",
            "GateFunction": "ferry-gate",
            "WatchFunction": "ferry-watch",
            "RollbackFunction": "ferry-rollback",
        }.get(target.split("/", 1)[0], target)

    def _decisions(self, reply: Any) -> list[str]:
        if not isinstance(reply, dict):
            return [str(reply)[:200]]
        if not reply.get("ok", False):
            error = reply.get("error") or {}
            return [red(f"error {error.get('kind')}: {error.get('message')}")]
        lines = []
        for d in reply.get("decisions") or []:
            outcome = d.get("outcome", "?")
            color = {
                "succeeded": green,
                "failed": red,
                "preflight_failed": red,
                "refused": _yellow,
                "rolled_back": red,
                "held": _yellow,
            }.get(outcome, bold)
            parts = [color(outcome)]
            if d.get("release_id"):
                parts.append(f"release {d['release_id']}")
            if outcome == "rolled_back":
                parts.append(f"{d.get('from')} → {d.get('to')}")
            if outcome == "held" and d.get("tag"):
                parts.append(f"{d['tag']} held: the environment is frozen")
            if d.get("task"):
                what = "smoke-test task" if outcome == "verifying" else "migration task"
                parts.append(f"{what} {d['task'].rsplit('/', 1)[-1][:8]}")
            if outcome == "baking" and d.get("until"):
                parts.append(f"alarms watched until {time.strftime('%H:%M:%S', time.gmtime(d['until']))} (timer set)")
            if d.get("task_definitions"):
                parts.append("registered " + ", ".join(revision(a) for a in d["task_definitions"]))
            if d.get("deployments"):
                parts.append(f"{len(d['deployments'])} deployments started")
            if d.get("completed") is not None and d.get("pending") is not None:
                parts.append(f"completed {','.join(d['completed']) or '-'}; waiting for {','.join(d['pending']) or '-'}")
            for key in ("reason", "problems"):
                if d.get(key):
                    parts.append(f"{key}: {d[key]}")
            lines.append("  ".join(parts))
        return lines

    def print_state(self, state: dict[str, Any]) -> None:
        history = state["parameter"]
        versions = "  ".join(
            f"v{p['version']} {p['value']}" + (f" [{', '.join(p['labels'])}]" if p["labels"] else "") for p in history
        )
        print(f"  {bold('SSM')} {PARAMETER}: {versions}")
        revisions = []
        for family, arns in state["revisions"].items():
            last = int(arns[-1].rsplit(":", 1)[1]) if arns else 0
            new = last > self.seen_revisions.get(family, last)
            revisions.append(f"{family}:{last}" + (" (new)" if new else ""))
            self.seen_revisions[family] = last
        print(f"  {bold('task definitions')} {', '.join(revisions)}")
        print(f"  {bold('services')}")
        for name in SERVICES:
            arn = state["services"][name]
            print(f"    {name:<10} {revision(arn):<18} {self.image_of(arn)}")
        lane = state.get("lane") or {}
        if lane:
            tags = {self.release_id(t): t for t in self.digests}
            bad = sorted(tags.get(r, r) for r in lane.get("bad_releases") or [])
            parts = [f"known-good {lane.get('known_good_tag', '-')}"]
            if lane.get("in_flight_tag"):
                parts.append(f"in flight {lane['in_flight_tag']}")
            parts.append(red("frozen") if lane.get("frozen") else "not frozen")
            if lane.get("held_tag"):
                parts.append(f"holding {lane['held_tag']}")
            if bad:
                parts.append("bad: " + ", ".join(bad))
            print(f"  {bold('environment')} {APP}/{ENV}: " + "; ".join(parts))


def _yellow(text: str) -> str:
    return _c("33", text)


# ------------------------------------------------------------------- chapters


@dataclass
class Chapter:
    title: str
    push: str
    expected: str
    #: acts (pushes, waits until the stack settles) and returns the checks to run
    play: Callable[[Story, "Chapter"], Callable[[Outcome], None]]
    scenario: dict[str, Any] | None = None


def _release_checks(story: Story, chapter: Chapter, before: dict[str, Any], outcome: Outcome) -> None:
    """Checks of a push that should have become a full release."""
    stack = story.stack
    tag = chapter.push
    digest = story.digests[tag]
    after = story.state()
    release_id = f"{APP}/{ENV}/{digest.replace('sha256:', '')[:16]}"
    item = stack.release(release_id) or {}
    outcome.check("release recorded SUCCEEDED in the ledger", item.get("state") == "SUCCEEDED", str(item.get("state")))
    outcome.check(
        "ferry-deploy started the migration, ferry-gate rolled out, ferry-watch ran the smoke test, "
        "ferry-gate started the bake on its exit 0, the timer ended it: ferry-watch confirmed",
        any("ferry-deploy: " in d and "migrating" in d for d in outcome.decisions)
        and any("ferry-gate: " in d and "deploying" in d for d in outcome.decisions)
        and any("ferry-watch: " in d and "verifying" in d for d in outcome.decisions)
        and any("ferry-gate: " in d and "baking" in d for d in outcome.decisions)
        and any("ferry-watch: " in d and "succeeded" in d for d in outcome.decisions),
    )
    states = [e["state"] for e in _ferry_events(story, release_id)]
    outcome.check(
        "known-good only after the bake: " + " → ".join(states),
        states[-3:] == ["VERIFYING", "BAKING", "SUCCEEDED"],
    )
    last = after["parameter"][-1]
    outcome.check(
        f"SSM parameter at {tag}, labelled known-good",
        last["value"] == tag and "known-good" in last["labels"],
        f"v{last['version']} {last['value']} {last['labels']}",
    )
    for name in SERVICES:
        arn = after["services"][name]
        definition = stack.task_definition(arn)
        image = definition["containerDefinitions"][0]["image"]
        tags = {t["key"]: t["value"] for t in definition.get("tags", [])}
        outcome.check(
            f"{name} runs a new revision of {FAMILIES[name]} pinned to {tag}'s digest",
            arn != before["services"][name] and image.endswith(f"/{REPOSITORY}@{digest}") and tags.get("ferry:release") == release_id,
            f"{revision(arn)} {image.rsplit('/', 1)[-1][:30]}…",
        )
    outcome.check(
        "one new revision per service family, of the migration and of the smoke test",
        all(len(after["revisions"][f]) == len(before["revisions"][f]) + 1 for f in [*FAMILIES.values(), MIGRATION_FAMILY, SMOKE_FAMILY]),
    )
    if item.get("state") == "SUCCEEDED":
        story.known_good[tag] = dict(after["services"])
    outcome.summary = f"{tag} released, known-good (SSM v{last['version']})"


Verify = Callable[[Outcome], None]


def play_release(story: Story, chapter: Chapter) -> Verify:
    before = story.state()
    story.push(chapter.push)
    story.settle()
    return lambda outcome: _release_checks(story, chapter, before, outcome)


def play_refused(story: Story, chapter: Chapter) -> Verify:
    before = story.state()
    story.push(chapter.push)
    story.settle()

    def checks(outcome: Outcome) -> None:
        after = story.state()
        outcome.check(
            "ferry-deploy refused the mutable tag",
            any("ferry-deploy: " in d and "refused" in d for d in outcome.decisions),
            "; ".join(outcome.decisions),
        )
        outcome.check("no task definition registered", after["revisions"] == before["revisions"])
        outcome.check("SSM parameter unchanged", after["parameter"] == before["parameter"])
        outcome.check(
            "services untouched (same task definitions, no new deployment)",
            after["services"] == before["services"] and after["deployments"] == before["deployments"],
        )
        outcome.summary = f"{chapter.push} refused; nothing changed"

    return checks


def play_failed_migration(story: Story, chapter: Chapter) -> Verify:
    before = story.state()
    story.push(chapter.push)
    story.settle()

    def checks(outcome: Outcome) -> None:
        stack = story.stack
        after = story.state()
        digest = story.digests[chapter.push]
        release_id = f"{APP}/{ENV}/{digest.replace('sha256:', '')[:16]}"
        item = stack.release(release_id) or {}
        outcome.check(
            "release recorded FAILED with the migration's exit code",
            item.get("state") == "FAILED" and "exited with code 1" in str(item.get("reason")),
            str(item.get("reason")),
        )
        outcome.check(
            "ferry-gate failed the release",
            any("ferry-gate: " in d and "failed" in d for d in outcome.decisions),
        )
        outcome.check(
            "services untouched (same task definitions, no new deployment)",
            after["services"] == before["services"] and after["deployments"] == before["deployments"],
        )
        values = [p["value"] for p in after["parameter"]]
        previous = before["parameter"][-1]["value"]
        outcome.check(
            f"SSM parameter written ({chapter.push}) then restored ({previous})",
            values[-2:] == [chapter.push, previous] and len(values) == len(before["parameter"]) + 2,
            " → ".join(values),
        )
        outcome.summary = f"{chapter.push} failed in migration; services stay on {previous}, SSM restored"

    return checks


ALARM_REASON = (
    "Threshold Crossed: 1 out of the last 1 datapoints [57.0 (23/11/26 10:00:00)] was greater than "
    "the threshold (10.0) (minimum 1 datapoint for OK -> ALARM transition)."
)
OK_REASON = "Threshold Crossed: 1 out of the last 1 datapoints [0.0 (23/11/26 10:04:00)] was not greater than the threshold (10.0)."
SCHEDULER_FAILURE = "ECS deployment circuit breaker: tasks failed to start."


def rollback_path(calls: list[dict[str, Any]]) -> tuple[list[list[str]], bool]:
    """The AWS calls of one rollback up to its last UpdateService, as round trips
    (what follows — the SSM label, the transaction that ends the rollback, the
    event — left out).

    ferry reads the lane head, writes one transaction (the rollback recorded
    with its target), then issues every UpdateService, the SSM write and the
    read of the release it leaves together. The emulator sees when each call
    arrived and was answered: a call that arrived after another was answered may
    depend on it. Returns the round trips and whether the calls kept to that
    shape.
    """
    third_kinds = ("ecs:UpdateService", "ssm:PutParameter", "dynamodb:GetItem")
    ordered = sorted(calls, key=lambda c: c["time"])
    if len(ordered) < 3:
        return [[c["operation"] for c in ordered]], False
    read, transaction, rest = ordered[0], ordered[1], ordered[2:]
    third = [c for c in rest if c["operation"] in third_kinds]
    shaped = (
        read["operation"] == "dynamodb:GetItem"
        and transaction["operation"] == "dynamodb:TransactWriteItems"
        and transaction["time"] >= read["ended"]
        and all(c["time"] >= transaction["ended"] for c in rest)
        and sorted(c["operation"] for c in third)
        == sorted(["ecs:UpdateService"] * len(SERVICES) + ["dynamodb:GetItem", "ssm:PutParameter"])
    )
    return [[read["operation"]], [transaction["operation"]], [c["operation"] for c in third]], shaped


def _ferry_events(story: Story, rid: str) -> list[dict[str, Any]]:
    return [
        e["event"]["detail"]
        for e in story.stack.router_log(0)
        if e["kind"] == "event" and e["event"].get("source") == "ferry" and e["event"]["detail"].get("releaseId") == rid
    ]


def _rolled_back_checks(
    story: Story, tag: str, before: dict[str, Any], outcome: Outcome, *, by: str, cause: str, good_tag: str = "1.1.0"
) -> dict[str, Any]:
    """What every rollback must leave: checks shared by the rollback chapters."""
    stack = story.stack
    after = story.state()
    good = story.known_good.get(good_tag, {})
    rid = story.release_id(tag)
    outcome.check(
        f"{by} rolled {tag} back to {good_tag}",
        any(d.startswith(f"{by}: ") and "rolled_back" in d and f"{tag} → {good_tag}" in d for d in outcome.decisions),
        "; ".join(outcome.decisions[-3:]),
    )
    steady = all(after["deployment_states"][n] == [(good.get(n), "PRIMARY", "COMPLETED")] for n in SERVICES)
    outcome.check(
        f"every service back on {good_tag}'s task definitions ({', '.join(revision(good.get(n, '?')) for n in SERVICES)}), steady",
        bool(good) and after["services"] == good and steady,
        str(after["deployment_states"]),
    )
    new_revisions = all(
        len(after["revisions"][f]) == len(before["revisions"][f]) + 1 for f in [*FAMILIES.values(), MIGRATION_FAMILY, SMOKE_FAMILY]
    )
    outcome.check(
        f"nothing re-registered or deregistered: the only new revisions are {tag}'s; {good_tag}'s are still ACTIVE",
        new_revisions and all(good.get(n) in after["revisions"][FAMILIES[n]] for n in SERVICES),
    )
    last = after["parameter"][-1]
    outcome.check(
        f"SSM parameter back at {good_tag} (a new version), labelled known-good",
        last["value"] == good_tag and last["labels"] == ["known-good"] and len(after["parameter"]) > len(before["parameter"]),
        " ".join(f"v{p['version']} {p['value']}{p['labels'] or ''}" for p in after["parameter"][-3:]),
    )
    item = stack.release(rid) or {}
    outcome.check(
        f"release {tag} recorded ROLLED_BACK, cause: {cause}",
        item.get("state") == "ROLLED_BACK" and cause in str(item.get("reason")),
        f"{item.get('state')}: {item.get('reason')}",
    )
    events = _ferry_events(story, rid)
    outcome.check(
        "Release State Change ROLLED_BACK emitted with the cause",
        any(e.get("state") == "ROLLED_BACK" and cause in str(e.get("reason")) for e in events),
    )
    lane = after["lane"]
    outcome.check(
        f"environment frozen, {tag}'s digest marked bad",
        lane.get("frozen") is True and rid in (lane.get("bad_releases") or set()) and not lane.get("in_flight_id"),
        str({k: lane.get(k) for k in ("frozen", "bad_releases", "in_flight_tag")}),
    )
    return after


def play_alarm_rollback(story: Story, chapter: Chapter) -> Verify:
    """1.3.0's deployments stay IN_PROGRESS (the chapter's scenario); while they
    do, the guarding alarm goes to ALARM; later back to OK."""
    before = story.state()
    story.push(chapter.push)
    rid = story.release_id(chapter.push)
    story.wait_for_decision("ferry-gate", "deploying", rid)
    # deployments started from now on (the rollback's) complete as usual
    story.set_scenario({"deployments": {f"{CLUSTER}/{s}": None for s in SERVICES}}, "deployments started from now on complete")
    during = story.state()
    story.set_alarm("ALARM", ALARM_REASON)
    story.settle()
    rolled = story.state()
    story.set_alarm("OK", OK_REASON)
    story.settle()

    def checks(outcome: Outcome) -> None:
        stack = story.stack
        rolling = all(
            during["deployment_states"][n][0][1:] == ("PRIMARY", "IN_PROGRESS")
            and during["deployment_states"][n][0][0] != before["services"][n]
            for n in SERVICES
        )
        outcome.check(f"{chapter.push} was rolling out when the alarm fired (its three deployments IN_PROGRESS)", rolling)
        after = _rolled_back_checks(story, chapter.push, before, outcome, by="ferry-rollback", cause=f"alarm {ALARM}")
        # ferry-rollback's calls (a config read at cold start aside): the ALARM path
        calls = [c for c in story.chapter_calls if c["caller"] == "ferry-rollback" and c["operation"] != "ssm:GetParameter"]
        trips, shaped = rollback_path(calls)
        updates = [c for c in calls if c["operation"] == "ecs:UpdateService"]
        alarm_at = next((e["time"] for e in story.chapter_entries if e["kind"] == "event" and e["event"]["detail-type"] == "CloudWatch Alarm State Change"), 0.0)
        took = max((c["ended"] for c in updates), default=alarm_at) - alarm_at
        rest = collections.Counter(trips[-1])
        outcome.check(
            f"ALARM → last UpdateService: {sum(len(t) for t in trips)} AWS calls in {len(trips)} round trips "
            f"(GetItem → TransactWriteItems → "
            + " ∥ ".join(f"{op.split(':', 1)[1]}" + (f" ×{n}" if n > 1 else "") for op, n in sorted(rest.items(), key=lambda i: -i[1]))
            + f"); then the SSM label and the transaction that ends the rollback; {took * 1000:.0f} ms on the emulator",
            shaped and len(trips) == 3 and rest["ecs:UpdateService"] == len(SERVICES),
            " | ".join(", ".join(t) for t in trips),
        )
        alarm_events = [e for e in story.chapter_entries if e["kind"] == "event" and e["event"]["detail-type"] == "CloudWatch Alarm State Change"]
        ok_quiet = (
            [e["targets"] for e in alarm_events] == [["RollbackFunction/AlarmRaised"], []]
            and {k: after[k] for k in ("services", "parameter", "deployment_states")} == {k: rolled[k] for k in ("services", "parameter", "deployment_states")}
        )
        outcome.check("alarm back to OK: no rule matches it, nothing changes (the environment stays frozen)", ok_quiet and after["lane"].get("frozen"))
        outcome.summary = f"{chapter.push} rolled back to 1.1.0 on {ALARM}; frozen"

    return checks


def play_failed_deployment(story: Story, chapter: Chapter) -> Verify:
    """Pushed while frozen: held. The operator unfreezes; the held release goes
    out; its scheduler deployment fails (the chapter's scenario) after api and
    worker completed."""
    before = story.state()
    story.push(chapter.push)
    story.settle()
    held = story.state()
    reply = story.ferry("unfreeze", f"{APP}/{ENV}")
    rid = story.release_id(chapter.push)
    story.wait_for_decision("ferry-gate", "deploying", rid)
    story.set_scenario({"deployments": {f"{CLUSTER}/scheduler": None}}, "deployments started from now on complete")
    story.settle()

    def checks(outcome: Outcome) -> None:
        outcome.check(
            f"{chapter.push} pushed while frozen: held — nothing registered, SSM untouched, no deployment",
            any(d.startswith("ferry-deploy: ") and "held" in d for d in outcome.decisions)
            and all(held[k] == before[k] for k in ("services", "deployments", "parameter", "revisions"))
            and held["lane"].get("held_tag") == chapter.push,
        )
        outcomes = [d.get("outcome") for d in (reply or {}).get("decisions") or []]
        outcome.check(
            f"the operator's unfreeze lifted the freeze and released the held {chapter.push}",
            outcomes == ["unfrozen", "migrating"] and reply["decisions"][1].get("release_id") == rid,
            str(outcomes),
        )
        ended = [
            (e["event"]["resources"][0].rsplit("/", 1)[1], e["event"]["detail"]["eventName"].rsplit("_", 1)[1])
            for e in story.chapter_entries
            if e["kind"] == "event"
            and e["event"]["detail-type"] == "ECS Deployment State Change"
            and not e["event"]["detail"]["eventName"].endswith("IN_PROGRESS")
        ]
        outcome.check(
            f"api and worker completed {chapter.push}'s deployments, then scheduler's failed",
            sorted(ended[:2]) == [("api", "COMPLETED"), ("worker", "COMPLETED")] and ended[2:3] == [("scheduler", "FAILED")],
            str(ended),
        )
        _rolled_back_checks(story, chapter.push, before, outcome, by="ferry-watch", cause="service scheduler failed")
        updates = [c for c in story.chapter_calls if c["caller"] == "ferry-watch" and c["operation"] == "ecs:UpdateService"]
        outcome.check(
            "all three services sent back together, the two that had completed too (UpdateService ×3)",
            len(updates) == len(SERVICES),
        )
        outcome.summary = f"{chapter.push} held, unfrozen, scheduler failed → all three back on 1.1.0; frozen"

    return checks


def play_unfreeze_and_release(story: Story, chapter: Chapter) -> Verify:
    before = story.state()
    reply = story.ferry("unfreeze", f"{APP}/{ENV}")
    story.push(chapter.push)
    story.settle()

    def checks(outcome: Outcome) -> None:
        outcomes = [d.get("outcome") for d in (reply or {}).get("decisions") or []]
        outcome.check("the operator's unfreeze lifted the freeze (nothing was held)", outcomes == ["unfrozen"], str(outcomes))
        _release_checks(story, chapter, before, outcome)
        lane = story.lane()
        outcome.check(
            f"environment not frozen; {chapter.push} is the known-good release",
            lane.get("frozen") is False and lane.get("known_good_tag") == chapter.push,
            str({k: lane.get(k) for k in ("frozen", "known_good_tag")}),
        )

    return checks


def play_alarm_during_bake(story: Story, chapter: Chapter) -> Verify:
    """Every service completed and the smoke test passed: the release bakes.
    Two seconds in, the guarding alarm goes to ALARM — the new tasks take the
    traffic now — and the release goes back; its timer fires later, for nothing."""
    before = story.state()
    story.push(chapter.push)
    rid = story.release_id(chapter.push)
    story.wait_for_decision("ferry-gate", "baking", rid)
    time.sleep(2)
    story.note("2 s into the bake: the new tasks take all the traffic, 5xx climbs")
    story.set_alarm("ALARM", ALARM_REASON)
    story.settle()
    story.set_alarm("OK", OK_REASON)
    story.settle()

    def checks(outcome: Outcome) -> None:
        item = story.stack.release(rid) or {}
        outcome.check(
            f"{chapter.push} was baking when the alarm fired (every deployment had completed, the smoke test passed)",
            item.get("rolled_back_from") == "BAKING",
            str(item.get("rolled_back_from")),
        )
        _rolled_back_checks(story, chapter.push, before, outcome, by="ferry-rollback", cause=f"alarm {ALARM}", good_tag="1.5.0")
        fired = [e for e in story.chapter_entries if e["kind"] == "schedule"]
        outcome.check(
            "the bake's timer fired later and changed nothing (ferry-watch: duplicate, ROLLED_BACK)",
            bool(fired) and any(d.startswith("ferry-watch: ") and "duplicate" in d and rid in d for d in outcome.decisions),
        )
        outcome.summary = f"{chapter.push} rolled back to 1.5.0 during its bake; frozen"

    return checks


def play_smoke_test_fails(story: Story, chapter: Chapter) -> Verify:
    before = story.state()
    reply = story.ferry("unfreeze", f"{APP}/{ENV}")
    story.push(chapter.push)
    story.settle()

    def checks(outcome: Outcome) -> None:
        outcomes = [d.get("outcome") for d in (reply or {}).get("decisions") or []]
        outcome.check("the operator's unfreeze lifted the freeze (nothing was held)", outcomes == ["unfrozen"], str(outcomes))
        rid = story.release_id(chapter.push)
        outcome.check(
            "every service completed, then ferry-watch ran the smoke test",
            any(d.startswith("ferry-watch: ") and "verifying" in d and rid in d for d in outcome.decisions),
        )
        _rolled_back_checks(story, chapter.push, before, outcome, by="ferry-gate", cause="smoke test failed", good_tag="1.5.0")
        outcome.summary = f"{chapter.push}'s smoke test exited 1 → all three back on 1.5.0; frozen"

    return checks


CHAPTERS: list[Chapter] = [
    Chapter(
        "push shop:1.0.0 — the first release",
        "1.0.0",
        "migration, three services, known-good",
        play_release,
    ),
    Chapter("push shop:1.1.0 — the next release", "1.1.0", "released, known-good", play_release),
    Chapter("push shop:latest — a mutable tag", "latest", "refused, nothing changes", play_refused),
    Chapter(
        "push shop:1.2.0 — its migration exits 1",
        "1.2.0",
        "release failed, services untouched, SSM restored",
        play_failed_migration,
        scenario={"tasks": {"shop:1.2.0": {"outcome": "exit", "exitCode": 1}}},
    ),
    Chapter(
        "push shop:1.3.0 — its alarm fires mid-rollout",
        "1.3.0",
        "rolled back to 1.1.0 on the alarm; frozen",
        play_alarm_rollback,
        # ECS keeps replacing 1.3.0's tasks: the deployments stay IN_PROGRESS
        scenario={"deployments": {f"{CLUSTER}/{s}": {"outcome": "never"} for s in SERVICES}},
    ),
    Chapter(
        "push shop:1.4.0 while frozen; unfreeze — scheduler's deployment fails",
        "1.4.0",
        "held; unfrozen, released; all three back on 1.1.0",
        play_failed_deployment,
        # api and worker complete after 0.7 s; scheduler's circuit breaker trips after 1.5 s
        scenario={"deployments": {f"{CLUSTER}/scheduler": {"outcome": "FAILED", "after": 1.5, "reason": SCHEDULER_FAILURE}}},
    ),
    Chapter("unfreeze; push shop:1.5.0 — a good release", "1.5.0", "released, known-good", play_unfreeze_and_release),
    Chapter(
        "push shop:1.6.0 — its alarm fires 2 s after the rollout completed",
        "1.6.0",
        "rolled back to 1.5.0 during the bake; frozen",
        play_alarm_during_bake,
    ),
    Chapter(
        "unfreeze; push shop:1.7.0 — its smoke test exits 1",
        "1.7.0",
        "services out, smoke test fails: all back on 1.5.0",
        play_smoke_test_fails,
        scenario={"tasks": {"family:shop-smoke": {"exitCode": 1}}},
    ),
]


# ----------------------------------------------------------------------- main


def _port_open(url: str) -> bool:
    host, port = url.split("//", 1)[1].split(":")
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, int(port))) == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ferry's demo on the local AWS stack")
    parser.add_argument("--state-dir", default=str(ROOT / ".ferry" / "demo"))
    parser.add_argument("--bin-dir", default=None)
    args = parser.parse_args(argv)

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    print(bold("ferry demo") + dim(" — real function binaries, events from the emulator's state, rules from template.yaml"))
    stack = Stack(args.state_dir, bin_dir=args.bin_dir, say=lambda m: print(dim(f"  stack: {m}"), flush=True))
    results: list[tuple[Chapter, Outcome]] = []
    endpoints: list[str] = []
    try:
        started = time.time()
        stack.start()
        endpoints = [stack.endpoint, stack.functions_url]
        print(dim(f"  stack: up in {time.time() - started:.1f}s — emulator {stack.endpoint}, functions {stack.functions_url}"))
        story = Story(stack)
        for digest_tag in ("0.9.0",):
            image = stack.client("ecr").describe_images(repositoryName=REPOSITORY, imageIds=[{"imageTag": digest_tag}])
            digest = image["imageDetails"][0]["imageDigest"]
            story.tags_by_digest[digest] = digest_tag
        print()
        print(bold("before the story"))
        story.print_state(story.state())
        story.skip_to_now()
        for number, chapter in enumerate(CHAPTERS, 1):
            print()
            print(bold(f"── {number}. {chapter.title} ") + dim(f"(expect: {chapter.expected})"))
            if chapter.scenario:
                stack.scenario(chapter.scenario)
                print(dim(f"  scenario: {chapter.scenario}"))
            verify = chapter.play(story, chapter)
            outcome = Outcome()
            entries, calls = story.new_entries()
            story.chapter_entries, story.chapter_calls = entries, calls
            story.print_timeline(entries, calls, outcome)
            try:
                verify(outcome)
            except Exception as exc:  # noqa: BLE001 - a check that cannot run failed
                outcome.check("the chapter's checks ran", False, f"{type(exc).__name__}: {exc}")
            story.print_state(story.state())
            for check in outcome.checks:
                mark = green("✓") if check.ok else red("✗")
                print(f"  {mark} {check.what}" + ("" if check.ok or not check.detail else dim(f"  ({check.detail})")))
            results.append((chapter, outcome))
        print()
        print(bold("the lane, as an operator sees it"))
        for command in (["status", f"{APP}/{ENV}"], ["history", f"{APP}/{ENV}"]):
            result = story._run_cli(command)
            print(f"  {_yellow('$ ferry ' + ' '.join(command))}")
            for line in (result.stdout + result.stderr).rstrip().splitlines():
                print(f"  {line}")
    except KeyboardInterrupt:
        print(red("\ninterrupted"), file=sys.stderr)
        stack.stop()
        return 130
    except Exception as exc:  # noqa: BLE001
        print(red(f"\nthe demo broke: {type(exc).__name__}: {exc}"), file=sys.stderr)
        print(dim(f"logs: {stack.log_dir}"), file=sys.stderr)
        stack.stop()
        return 1
    finally:
        stack.stop()

    print()
    print(bold("summary"))
    width = max(len(c.title) for c, _ in results) if results else 10
    expected = max(len(c.expected) for c, _ in results) if results else 10
    print(f"  {'#':<2} {'chapter':<{width}}  {'expected':<{expected}}  result")
    for number, (chapter, outcome) in enumerate(results, 1):
        mark = green("✓") if outcome.ok else red("✗")
        print(f"  {number:<2} {chapter.title:<{width}}  {chapter.expected:<{expected}}  {mark} {outcome.summary}")
    failed = [c.title for c, o in results if not o.ok] + [c.title for c in CHAPTERS[len(results):]]
    left = [url for url in endpoints if _port_open(url)]
    print()
    print(dim(f"  stack stopped; ports {'still open: ' + ', '.join(left) if left else 'closed'}; logs in {stack.log_dir}"))
    if failed or left:
        print(red(f"  {len(failed)} chapter(s) did not end as they should: {', '.join(failed)}"))
        return 1
    print(green(f"  all {len(results)} chapters ended as they should"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
