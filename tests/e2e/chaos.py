"""Chaos runs: randomized histories on the local stack while AWS fails and
functions crash, then ferry's invariants, checked on what AWS and the ledger say.

A *history* is a short random sequence of what production does to one lane
(``generate``): pushes of new versions whose migration (or, in the lane without
one, smoke test) passes, exits 1 or fails to start and whose deployments
complete or trip the circuit breaker;
pushes delivered twice, late or never (EventBridge delivers at least once and
not in order; a lost push is the reconcile pass's to find); a version older
than the lane's known-good release pushed late; an alarm that fires and clears; an operator's rollback or
unfreeze. Every ECS event is delivered twice with jitter. Meanwhile a share of
the functions' AWS calls fail (throttling, 500, 503, connection reset,
timeout) and some calls are followed by the death of the function that made
them, after the call took effect (``tests/emulator/chaos_behaviours.py``);
Lambda retries the invocation.

*Settling* a history: wait until the router has nothing in flight, then stop
the faults and let the reconcile pass converge the lane, as its schedule
would. A function killed between a step and its next ledger write leaves the
release in flight with no write for a while; the pass resumes such a step only
once no write happened for longer than a function can run (``STALLED_AFTER``,
17 minutes with its grace). Instead of waiting, the harness moves the
ledger's clock: every release record's ``updated_at`` goes back by that much
(``age_ledger``; claims on tag writes age with them), the one place where
the chaos runs bend time. Passes are run
until one finds nothing to do.

*Invariants*, per lane, after settling (``check``): no release in flight and
the head pointing nowhere in flight; the image-tag parameter names the
known-good release's tag; every service runs the known-good digest, on one
completed deployment; no service on a rolled-back (bad) digest; the known-good
history only ever goes up in version; per release, at most one registration
per family, at most one forced UpdateService per service and revision, no two
consecutive SSM versions with the same value, concurrent writers included (but
for one PutParameter the SDK sent again after losing its answer: one
``amz-sdk-invocation-id``, one call);
every pointer of the head names
a release record in the matching state.

``scripts/chaos`` runs N histories and prints the figures; ``test_chaos.py``
runs a few with a fixed seed in the suite.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import estate

#: app -> (services, migration; without one, a smoke test)
CHAOS_APPS: dict[str, tuple[list[str], bool]] = {
    "chaos-a": (["api", "worker"], True),
    "chaos-b": (["api"], False),
}
ENVIRONMENT = "prod"
BASELINE = "0.9.0"
TASK_SECONDS, DEPLOYMENT_SECONDS = 0.15, 0.25
RETRY_DELAYS = [0.1, 0.2]
#: decide::reconcile::STALLED_AFTER (Lambda's longest timeout + 60 s) and a margin
STALL_SECONDS = 15 * 60 + 60 + 60
TERMINAL = {"SUCCEEDED", "FAILED", "SUPERSEDED", "ROLLED_BACK"}
ALARM_REASON = "Threshold Crossed: 1 out of the last 1 datapoints [57.0 (23/11/26 10:00:00)] was greater than the threshold (10.0)."


def create_estate(stack: Any) -> None:
    """The chaos apps, as ``conftest._create_estates`` creates the others."""
    for app, (services, migration) in CHAOS_APPS.items():
        estate.create_app(stack, app, services, migration=migration, baseline=BASELINE)
        estate.create_alarm(stack, f"{app}-prod-5xx")
        if not migration:
            estate.create_smoke_test(stack, app, baseline=BASELINE)


# ------------------------------------------------------------------ histories


@dataclass
class Step:
    kind: str
    args: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.kind}({', '.join(f'{k}={v}' for k, v in self.args.items())})"


@dataclass
class Lane:
    app: str
    services: list[str]
    migration: bool
    pushed: list[str] = field(default_factory=list)  # tags pushed so far, in order
    minor: int = 0
    patch: int = 0

    def next_tag(self) -> str:
        self.minor += 1
        return f"1.{self.minor}.0"


def generate(rng: random.Random, lane: Lane, steps: int) -> list[Step]:
    history: list[Step] = []
    for _ in range(steps):
        roll = rng.random()
        if roll < 0.45 or not lane.pushed:
            tag = lane.next_tag()
            lane.pushed.append(tag)
            # the migration's outcome, or the smoke test's in a lane without one
            migration = rng.choices(["pass", "exit-1", "failed-to-start"], [0.75, 0.17, 0.08])[0]
            failing = rng.choice(lane.services) if rng.random() < 0.15 else None
            delivery = rng.choices(["once", "twice", "late", "lost"], [0.55, 0.2, 0.17, 0.08])[0]
            history.append(Step("push", {"tag": tag, "migration": migration, "failing": failing, "delivery": delivery}))
        elif roll < 0.55:
            # an older version than any ferry released here (every lane starts
            # known-good at 1.1.0): the policy accepts it, the floor must not
            lane.patch += 1
            history.append(Step("repush", {"tag": f"1.0.{lane.patch}"}))
        elif roll < 0.68:
            history.append(Step("alarm", {"for": round(rng.uniform(0.2, 1.0), 2)}))
        elif roll < 0.76:
            history.append(Step("rollback", {}))
        elif roll < 0.86:
            history.append(Step("unfreeze", {}))
        else:
            history.append(Step("wait", {"seconds": round(rng.uniform(0.1, 1.2), 2)}))
        if rng.random() < 0.5:
            history.append(Step("wait", {"seconds": round(rng.uniform(0.05, 0.8), 2)}))
    return history


def resent_write(calls: list[dict[str, Any]], name: str, value: str) -> bool:
    """Whether two consecutive writes of ``value`` to ``name`` are one call the
    SDK sent again after losing its answer, rather than ferry writing twice.

    PutParameter takes no idempotency token and SSM no condition. Every path
    that writes the image tag reads it and claims the write in the ledger
    first (``Engine::write_tag_once``, ``Ledger::claim_tag_write``): a writer
    that finds the value there does not write, and of two writers that both
    read another value only the claim's holder writes. One call the SDK resent
    after it took effect is not ferry's second write: both carry one
    ``amz-sdk-invocation-id`` (the SDK keeps it across retries:
    aws_runtime::invocation_id), and AWS would take both the same way. Any
    other same-value pair is a violation, a race between two writers
    included."""
    writes = [c for c in calls if c["operation"] == "ssm:PutParameter" and c["detail"].get("name") == name]
    for first, second in zip(writes, writes[1:]):
        if first["detail"].get("value") != value or second["detail"].get("value") != value:
            continue
        invocation = first["detail"].get("invocation")
        if invocation and invocation == second["detail"].get("invocation"):
            return True
    return False


# ------------------------------------------------------------------ running


class Runner:
    def __init__(self, stack: Any, seed: int, fail: float, crash: float, kinds: list[str] | None = None):
        self.stack = stack
        self.rng = random.Random(seed)
        self.seed = seed
        self.fail = fail
        self.crash = crash
        self.kinds = kinds
        self.lanes = {app: Lane(app, services, migration) for app, (services, migration) in CHAOS_APPS.items()}
        self.router_rules: list[dict[str, Any]] = []
        self.settle_seconds: list[float] = []
        self.histories = 0
        self.steps = 0
        self.violations: list[str] = []  # what each violating history broke, with its diagnostics
        self.violating_histories = 0
        self.faults: dict[str, int] = {}
        self.passes = 0
        self.explain = False
        # same-value SSM versions from one PutParameter the SDK resent
        # (resent_write): reported, not violations
        self.resent_ssm_writes = 0

    # -- setup

    def prepare(self) -> None:
        tasks = {
            f"family:{app}-{'migrate' if migration else 'smoke'}": {"after": TASK_SECONDS}
            for app, (_, migration) in CHAOS_APPS.items()
        }
        deployments = {f"{app}-prod/{s}": {"after": DEPLOYMENT_SECONDS} for app, (services, _) in CHAOS_APPS.items() for s in services}
        self.stack.scenario({"tasks": tasks, "deployments": deployments})
        self.stack.router({"retry_delays": RETRY_DELAYS})
        # Each lane starts known-good, as a lane does once ferry released it:
        # a lane's very first release has nothing to roll back to (covered by
        # the scenario tests), and would make every later check vacuous.
        for lane in self.lanes.values():
            if lane.pushed:
                continue
            tag = lane.next_tag()
            lane.pushed.append(tag)
            self.stack.push(lane.app, tag)
        self.stack.settle(120)

    def finish(self) -> None:
        self.stack.control("/_ferry/chaos", {"fail": 0, "crash": 0, "reset_counters": False})
        self.stack.router({"chaos": [], "retry_delays": [0.5, 1.0]})

    def _router(self, rule: dict[str, Any] | None = None) -> None:
        if rule is not None:
            self.router_rules.append(rule)
        ecs_twice = {"match": {"source": ["aws.ecs"]}, "copies": 2, "jitter": 0.3}
        self.stack.router({"chaos": [ecs_twice, *self.router_rules]})

    # -- one history

    def run_history(self, app: str | None = None, steps: int = 6) -> list[str]:
        lane = self.lanes[app or self.rng.choice(sorted(self.lanes))]
        history = generate(self.rng, lane, steps)
        before = self._marks(lane)
        self.router_rules = []
        self._router()
        self.stack.control("/_ferry/chaos", {"seed": self.rng.randrange(1 << 30), "fail": self.fail, "crash": self.crash, "reset_counters": False, **({"kinds": self.kinds} if self.kinds else {})})
        for step in history:
            self._act(lane, step)
        last_step = time.time()
        self._settle(lane)
        self.settle_seconds.append(time.time() - last_step)
        found = self.check(lane, before)
        if found:
            found = [f"{lane.app} history {self.histories + 1}: {'; '.join(map(str, history))}", *found]
        self.violations.extend(found)
        self.violating_histories += bool(found)
        self.histories += 1
        self.steps += len(history)
        return found

    def _act(self, lane: Lane, step: Step) -> None:
        stack, app = self.stack, lane.app
        if step.kind == "push":
            tag = step.args["tag"]
            rules: dict[str, Any] = {}
            if step.args["migration"] == "exit-1":
                rules["tasks"] = {f"{app}:{tag}": {"exitCode": 1}}
            elif step.args["migration"] == "failed-to-start":
                rules["tasks"] = {f"{app}:{tag}": {"outcome": "failed-to-start"}}
            if step.args["failing"]:
                rules["deployments"] = {
                    f"{app}-prod/{step.args['failing']}@{tag}": {
                        "outcome": "FAILED",
                        "after": DEPLOYMENT_SECONDS,
                        "reason": "ECS deployment circuit breaker: tasks failed to start.",
                    }
                }
            if rules:
                stack.scenario(rules)
            delivery = step.args["delivery"]
            if delivery != "once":
                match = {"source": ["aws.ecr"], "detail": {"repository-name": [app], "image-tag": [tag]}}
                rule = {"twice": {"copies": 2, "stagger": 0.2}, "late": {"delay": 1.0}, "lost": {"drop": True}}[delivery]
                self._router({"match": match, "times": 1, **rule})
            stack.push(app, tag)
        elif step.kind == "repush":
            stack.push(app, step.args["tag"])
        elif step.kind == "alarm":
            cloudwatch = stack.client("cloudwatch")
            name = f"{app}-prod-5xx"
            cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason=ALARM_REASON)
            time.sleep(step.args["for"])
            cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="Threshold Crossed: no datapoints were greater than the threshold (10.0).")
        elif step.kind == "rollback":
            stack.invoke("ferry-rollback", {"rollback": {"app": app, "environment": ENVIRONMENT, "reason": "chaos: operator rollback"}})
        elif step.kind == "unfreeze":
            stack.invoke("ferry-rollback", {"unfreeze": {"app": app, "environment": ENVIRONMENT}})
        elif step.kind == "wait":
            time.sleep(step.args["seconds"])

    def _settle(self, lane: Lane) -> None:
        self.stack.settle(180)
        status = self.stack.control("/_ferry/chaos", {"fail": 0, "crash": 0, "reset_counters": False})
        self.faults = status["counters"]
        for _ in range(6):
            age_ledger(self.stack, lane.app)
            self.passes += 1
            try:
                decisions = self.stack.reconcile(lane.app, ENVIRONMENT)
            except Exception:  # noqa: BLE001 - a pass that failed is run again, as the schedule would
                decisions = [{"outcome": "failed"}]
            self.stack.settle(180)
            if all(d.get("outcome") == "in_sync" for d in decisions):
                return

    # -- invariants

    def _marks(self, lane: Lane) -> dict[str, Any]:
        calls = self.stack.calls(0)
        return {"call_seq": calls[-1]["seq"] if calls else 0, "ssm_versions": len(self.stack.parameter_history(parameter(lane.app)))}

    def check(self, lane: Lane, before: dict[str, Any]) -> list[str]:
        stack, app = self.stack, lane.app
        found: list[str] = []
        ledger = stack.ledger()
        head = next((i for i in ledger if i.get("pk") == f"lane#{app}/{ENVIRONMENT}#{app}" and i.get("sk") == "head"), None)
        releases = {i["pk"].removeprefix("release#"): i for i in ledger if str(i.get("pk", "")).startswith(f"release#{app}/")}
        in_flight = sorted(r for r, item in releases.items() if item.get("state") not in TERMINAL)
        if in_flight:
            states = ", ".join(f"{r} ({releases[r].get('state')})" for r in in_flight)
            found.append(f"releases left in flight: {states}")
        if head is None:
            return found + ["no lane head"] if releases else found
        if head.get("in_flight_id"):
            found.append(f"head still points at {head['in_flight_id']} in flight")
        good_id, good_tag, good_digest = head.get("known_good_id"), head.get("known_good_tag"), head.get("known_good_digest")
        if good_id and releases.get(good_id, {}).get("state") != "SUCCEEDED":
            found.append(f"known-good {good_id} is {releases.get(good_id, {}).get('state')}")
        bad = set(head.get("bad_releases") or [])
        for release in sorted(bad):
            if releases.get(release, {}).get("state") != "ROLLED_BACK":
                found.append(f"bad release {release} is {releases.get(release, {}).get('state')}")
        history = [h.get("tag") for h in head.get("history") or []]
        versions = [tuple(int(p) for p in tag.split(".")) for tag in history]
        if any(newer <= older for newer, older in zip(versions, versions[1:])):
            found.append(f"known-good history goes backwards: {history}")
        for entry in head.get("history") or []:
            if releases.get(entry.get("id"), {}).get("state") != "SUCCEEDED":
                found.append(f"history names {entry.get('id')} in state {releases.get(entry.get('id'), {}).get('state')}")
        # what runs, and what the parameter says
        expected_tag = good_tag or BASELINE
        value = stack.client("ssm").get_parameter(Name=parameter(app))["Parameter"]["Value"]
        if value != expected_tag:
            found.append(f"{parameter(app)} is {value}, the known-good release is {expected_tag}")
        bad_digests = {releases[r].get("digest") for r in bad if r in releases}
        services = stack.services(f"{app}-prod", lane.services)
        for name, service in services.items():
            definition = stack.task_definition(service["taskDefinition"])
            image = definition["containerDefinitions"][0]["image"]
            digest = image.split("@", 1)[1] if "@" in image else None
            if good_digest and digest != good_digest:
                found.append(f"{name} runs {image}, the known-good release is {good_tag} ({good_digest[:19]})")
            if not good_digest and not image.endswith(f":{BASELINE}"):
                found.append(f"{name} runs {image} though nothing ever succeeded")
            if digest and digest in bad_digests:
                found.append(f"{name} runs the rolled-back digest {digest[:19]}")
            deployments = service.get("deployments") or []
            if len(deployments) != 1 or deployments[0].get("rolloutState") not in (None, "COMPLETED"):
                found.append(f"{name} deployments not settled: {[(d.get('status'), d.get('rolloutState')) for d in deployments]}")
        # duplicate effects in this history
        calls = [c for c in stack.calls(before["call_seq"]) if c["caller"].startswith("ferry-") and c["status"] == 200 and c.get("detail")]
        registrations: dict[tuple[str, str], int] = {}
        updates: dict[tuple[str, str], int] = {}
        for call in calls:
            detail = call["detail"]
            if call["operation"] == "ecs:RegisterTaskDefinition" and detail.get("release", "").startswith(f"{app}/"):
                key = (detail["family"], detail["release"])
                registrations[key] = registrations.get(key, 0) + 1
            if call["operation"] == "ecs:UpdateService" and detail.get("force") and detail.get("cluster", "").endswith(f"{app}-prod"):
                key = (detail["service"], detail["taskDefinition"])
                updates[key] = updates.get(key, 0) + 1
        found += [f"{family} registered {n} times for {release}" for (family, release), n in registrations.items() if n > 1]
        found += [f"{service} force-deployed {n} times to {definition}" for (service, definition), n in updates.items() if n > 1]
        values = [v["value"] for v in stack.parameter_history(parameter(app))]
        fresh = values[max(0, before["ssm_versions"] - 1):]
        duplicates = [a for a, b in zip(fresh, fresh[1:]) if a == b]
        for value in duplicates:
            if resent_write(calls, parameter(app), value):
                self.resent_ssm_writes += 1
            else:
                found.append(f"{parameter(app)} written twice with {value}")
        if found and self.explain:
            for call in stack.calls(before["call_seq"]):
                if call["caller"].startswith("ferry-") and (call.get("detail") or call["status"] != 200):
                    found.append(f"    call {call['seq']} {call['caller']} {call['operation']} {call['status']} {json.dumps(call.get('detail'))}")
        return found

    # -- figures

    def outcomes(self) -> dict[str, Any]:
        """What the histories made: releases by end state, one-off tasks run."""
        states: dict[str, int] = {}
        for item in self.stack.ledger():
            if str(item.get("pk", "")).startswith("release#chaos-"):
                states[str(item.get("state"))] = states.get(str(item.get("state")), 0) + 1
        tasks = {"migrations": 0, "smoke_tests": 0}
        for call in self.stack.calls(0):
            if call["operation"] == "ecs:RunTask" and call["status"] == 200:
                if call["caller"] == "ferry-deploy":
                    tasks["migrations"] += 1
                elif call["caller"] == "ferry-watch":
                    tasks["smoke_tests"] += 1
        return {"releases": states, "one_off_tasks": tasks}

    def figures(self) -> dict[str, Any]:
        settle = sorted(self.settle_seconds)
        return {
            "seed": self.seed,
            "histories": self.histories,
            "steps": self.steps,
            "fail_share": self.fail,
            "crash_share": self.crash,
            "faults": self.faults,
            "reconcile_passes": self.passes,
            "violating_histories": self.violating_histories,
            "resent_ssm_writes": self.resent_ssm_writes,
            "settle_p50_s": round(statistics.median(settle), 2) if settle else None,
            "settle_p99_s": round(settle[min(len(settle) - 1, int(len(settle) * 0.99))], 2) if settle else None,
        }


def parameter(app: str) -> str:
    return f"/{app}/{ENVIRONMENT}/compute/currentImageTag"


def age_ledger(stack: Any, app: str, seconds: int = STALL_SECONDS) -> None:
    """Time passes for the ledger: every release record of ``app`` was last
    written, and every claim on its tag writes taken, ``seconds`` earlier than
    it says (see the module doc)."""
    dynamodb = stack.client("dynamodb")
    for item in stack.ledger():
        if str(item.get("pk", "")).startswith(f"release#{app}/") and item.get("state") not in TERMINAL and "updated_at" in item:
            field = "updated_at"
        elif str(item.get("pk", "")).startswith(f"lane#{app}/") and item.get("sk") == "tag-claim" and "claimed_at" in item:
            field = "claimed_at"  # a claim on a tag write whose writer died lapses too
        else:
            continue
        dynamodb.update_item(
            TableName=stack.ledger_table,
            Key={"pk": {"S": item["pk"]}, "sk": {"S": item["sk"]}},
            UpdateExpression=f"SET {field} = :aged",
            ExpressionAttributeValues={":aged": {"N": str(int(item[field]) - seconds)}},
        )


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys
    import tempfile
    from pathlib import Path

    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here.parent / "emulator"))
    from stack import Stack

    parser = argparse.ArgumentParser(description="ferry chaos runs on the local stack")
    parser.add_argument("--histories", type=int, default=200)
    parser.add_argument("--steps", type=int, default=6, help="steps per history")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fail", type=float, default=0.10, help="share of the functions' AWS calls that fail")
    parser.add_argument("--crash", type=float, default=0.02, help="share of calls after which the function is killed")
    parser.add_argument("--bin-dir", default=str(here.parent.parent / "target" / "debug"))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--explain", action="store_true", help="list the history's failed calls and effects with each violation")
    args = parser.parse_args(argv)

    state_dir = Path(tempfile.mkdtemp(prefix="ferry-chaos-"))
    stack = Stack(state_dir, bin_dir=args.bin_dir, config_extra=[str(here / "ferry-chaos.toml")], seed=create_estate)
    started = time.time()
    outcomes: dict[str, Any] = {}
    try:
        stack.start()
        runner = Runner(stack, args.seed, args.fail, args.crash)
        runner.explain = args.explain
        runner.prepare()
        for n in range(args.histories):
            found = runner.run_history(steps=args.steps)
            marker = "VIOLATION" if found else "ok"
            print(f"history {n + 1}/{args.histories}: {marker} ({runner.settle_seconds[-1]:.1f} s to settle)", flush=True)
            for line in found:
                print(f"  {line}", flush=True)
        runner.finish()
        outcomes = runner.outcomes()
    finally:
        stack.stop()
    figures = {**runner.figures(), **outcomes, "wall_s": round(time.time() - started, 1)}
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        for key, value in figures.items():
            print(f"{key:>18}  {value}")
    return 1 if runner.violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
