"""The end-to-end suite's stack: one per pytest session.

The real function binaries (built with cargo unless ``FERRY_BIN_DIR`` names
prebuilt ones) run under the local Lambda runtime; every event they get comes
from the router, which derives it from the emulator's state and matches it
against the rules in ``template.yaml``. Each scenario uses its own app (see
``ferry-e2e.toml``), so state does not leak between them.

Nothing outlives the session: the stack is stopped by the fixture's
finalizer, and its processes also exit by themselves when this process dies
(their stdin is a pipe from it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tests" / "emulator"))
sys.path.insert(0, str(HERE))

import estate  # noqa: E402
from stack import Stack, function_binaries  # noqa: E402

E2E_APPS = {
    "dup": ["api", "worker"],
    "race": ["api", "worker"],
    "late": ["api"],
    "mig": ["api", "worker"],
    "slow": ["api"],
    "flaky": ["api"],
    "again": ["api", "worker"],
}

# test_rollback.py: app -> (services, has a migration, guarded by alarm `<app>-prod-5xx`)
ROLLBACK_APPS = {
    "alarm": (["api", "worker", "scheduler"], True, True),
    "early": (["api", "worker"], True, True),
    "dfail": (["api", "worker", "scheduler"], True, False),
    "manual": (["api", "worker"], False, False),
    "dupalarm": (["api", "worker"], False, True),
    "flap": (["api", "worker"], False, True),
    "calm": (["api"], False, True),
    "fresh": (["api", "worker"], False, True),
    "racegate": (["api", "worker"], True, True),
    "racessm": (["api"], True, True),
}

# test_faults.py: app -> (services, has a migration, guarded by alarm `<app>-prod-5xx`,
# its services' containers reference a Secrets Manager secret)
FAULT_APPS = {
    "fault-register": (["api", "worker"], True, False, False),
    "fault-ssm": (["api", "worker"], True, False, False),
    "fault-runtask": (["api", "worker"], True, False, False),
    "fault-secret": (["api", "worker"], True, False, True),
    "fault-describe": (["api", "worker"], True, False, False),
    "fault-gate": (["api", "worker"], True, False, False),
    "fault-settle": (["api", "worker"], True, False, False),
    "fault-label": (["api", "worker"], True, False, False),
    "fault-direct": (["api", "worker"], False, False, False),
    "fault-directssm": (["api", "worker"], False, False, False),
    "fault-rbupdate": (["api", "worker"], False, True, False),
    "fault-rbssm": (["api", "worker"], False, True, False),
    "fault-rblabel": (["api", "worker"], False, True, False),
}

# test_bake.py: app -> (services, has a migration, guarded by alarm `<app>-prod-5xx`,
# has a smoke-test family `<app>-smoke`); each app's `bake`/`verify` is in ferry-e2e.toml
BAKE_APPS = {
    "bake-alarm": (["api", "worker", "scheduler"], True, True, False),  # no `bake` key: the 5-minute floor
    "bake-over": (["api"], False, True, False),
    "bake-lost": (["api", "worker"], False, True, False),
    "bake-before": (["api"], False, True, False),
    "smoke-fail": (["api", "worker"], False, False, True),
    "smoke-pass": (["api", "worker"], True, True, True),
    "bake-twice": (["api"], False, True, False),
}


def _binaries() -> Path:
    if os.environ.get("FERRY_BIN_DIR"):
        return Path(os.environ["FERRY_BIN_DIR"])
    packages = [arg for b in function_binaries() for arg in ("-p", b)]
    # fresh binaries, as `scripts/demo` builds them (a no-op when nothing changed)
    subprocess.run(["cargo", "build", "--quiet", *packages], cwd=ROOT, check=True)
    return ROOT / "target" / "debug"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Stack:
    bin_dir = _binaries()
    state_dir = tmp_path_factory.mktemp("ferry-stack")
    started = Stack(state_dir, bin_dir=bin_dir, config_extra=[str(HERE / "ferry-e2e.toml")], seed=_create_estates)
    request.addfinalizer(started.stop)
    try:
        started.start()
    except BaseException:
        started.stop()
        raise
    return started


def _create_estates(stack: Stack) -> None:
    """The scenarios' apps, in place before ferry's functions are attached."""
    secret_arn = stack.info["environment"]["outputs"]["ShopDatabaseSecretArn"]
    for app, services in E2E_APPS.items():
        estate.create_app(stack, app, services)
    for app, (services, migration, alarm) in ROLLBACK_APPS.items():
        estate.create_app(stack, app, services, migration=migration)
        if alarm:
            estate.create_alarm(stack, f"{app}-prod-5xx")
    for app, (services, migration, alarm, secret) in FAULT_APPS.items():
        definitions = None
        if secret:
            definitions = {s: estate.task_definition(f"{app}-{s}", s, estate.image(app, "0.9.0")) for s in services}
            for definition in definitions.values():
                definition["containerDefinitions"][0]["secrets"] = [{"name": "DATABASE_URL", "valueFrom": secret_arn}]
        estate.create_app(stack, app, services, migration=migration, definitions=definitions)
        if alarm:
            estate.create_alarm(stack, f"{app}-prod-5xx")
    for app, (services, migration, alarm, smoke) in BAKE_APPS.items():
        estate.create_app(stack, app, services, migration=migration)
        if alarm:
            estate.create_alarm(stack, f"{app}-prod-5xx")
        if smoke:
            estate.create_smoke_test(stack, app)
    estate.create_app(
        stack,
        "full",
        ["api"],
        migration=False,
        baseline="v0",
        definitions={"api": estate.every_field_task_definition("full-api", estate.image("full", "v0"), secret_arn)},
    )


@pytest.fixture
def mark(stack: Stack) -> "Mark":
    """Where the router log and the call log stand when a test starts."""
    stack.settle(60)
    return Mark(stack)


class Mark:
    def __init__(self, stack: Stack):
        self.stack = stack
        log = stack.router_log(0)
        calls = stack.calls(0)
        self.log_seq = log[-1]["seq"] if log else 0
        self.call_seq = calls[-1]["seq"] if calls else 0

    def entries(self) -> list[dict[str, Any]]:
        return self.stack.router_log(self.log_seq)

    def replies(self, binary: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.entries() if e["kind"] == "reply" and (binary is None or e["binary"] == binary)]

    def decisions(self, binary: str | None = None) -> list[dict[str, Any]]:
        found = []
        for reply in self.replies(binary):
            body = reply.get("reply")
            if isinstance(body, dict):
                for decision in body.get("decisions") or []:
                    found.append({**decision, "_binary": reply["binary"]})
        return found

    def events(self, detail_type: str | None = None, source: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.entries()
            if e["kind"] == "event"
            and (detail_type is None or e["event"]["detail-type"] == detail_type)
            and (source is None or e["event"]["source"] == source)
        ]

    def ferry_events(self, app: str | None = None) -> list[dict[str, Any]]:
        """ferry's own `Release State Change` events (PutEvents), oldest first."""
        details = [e["event"]["detail"] for e in self.events("Release State Change", "ferry")]
        return [d for d in details if app is None or d.get("app") == app]

    def calls(self, caller: str | None = None) -> list[dict[str, Any]]:
        return [c for c in self.stack.calls(self.call_seq) if caller is None or c["caller"] == caller]

    def operations(self, prefix: str = "ferry-") -> dict[str, int]:
        counts: dict[str, int] = {}
        for call in self.stack.calls(self.call_seq):
            if call["caller"].startswith(prefix):
                counts[call["operation"]] = counts.get(call["operation"], 0) + 1
        return counts

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; router log:\n" + dump(self.entries()))


def dump(entries: list[dict[str, Any]]) -> str:
    lines = []
    for e in entries:
        if e["kind"] == "event":
            lines.append(f"{e['seq']:>5} event  {e['summary']} -> {e['targets']}")
        elif e["kind"] == "redelivered":
            lines.append(f"{e['seq']:>5} redelivered  {e['summary']} -> {e['targets']}")
        elif e["kind"] == "reply":
            lines.append(f"{e['seq']:>5} reply  {e['binary']} error={e.get('error')} {json.dumps(e.get('reply'))[:300]}")
        else:
            lines.append(f"{e['seq']:>5} {e['kind']}")
    return "\n".join(lines)


def release_id(app: str, digest: str, env: str = "prod") -> str:
    return f"{app}/{env}/{digest.replace('sha256:', '')[:16]}"


def snapshot(stack: Stack, app: str | None = None) -> str:
    """Everything ferry could change, rendered for a byte-for-byte comparison.

    ECS (every task definition revision with its full description and tags,
    every service with its task definition and deployments, every task),
    SSM (every parameter's full history and labels), the ledger table, and
    ferry's own events. ECR is left out: pushing is how a test gives input.

    With ``app``, the same for one of the suite's apps only (its families
    ``<app>-*``, cluster ``<app>-prod``, parameters ``/<app>/``, ledger items
    and events): cheaper, and enough beside a check that ferry made no write
    call at all.
    """
    ecs, ssm = stack.client("ecs"), stack.client("ssm")
    state: dict[str, Any] = {"task_definitions": {}, "clusters": {}, "parameters": {}}
    token = None
    arns: list[str] = []
    while True:
        page = ecs.list_task_definitions(**({"nextToken": token} if token else {}))
        arns.extend(page["taskDefinitionArns"])
        token = page.get("nextToken")
        if not token:
            break
    if app:  # (familyPrefix names one whole family)
        arns = [a for a in arns if a.rsplit("/", 1)[1].startswith(f"{app}-")]
    for arn in sorted(arns):
        state["task_definitions"][arn] = stack.task_definition(arn)
    clusters = ecs.list_clusters()["clusterArns"]
    if app:
        clusters = [c for c in clusters if c.endswith(f":cluster/{app}-prod")]
    for cluster in sorted(clusters):
        services = ecs.list_services(cluster=cluster)["serviceArns"]
        described = ecs.describe_services(cluster=cluster, services=services)["services"] if services else []
        tasks = sorted(
            ecs.list_tasks(cluster=cluster, desiredStatus="RUNNING")["taskArns"]
            + ecs.list_tasks(cluster=cluster, desiredStatus="STOPPED")["taskArns"]
        )
        state["clusters"][cluster] = {
            "services": {
                s["serviceName"]: {
                    "taskDefinition": s["taskDefinition"],
                    "deployments": [(d["id"], d["status"], d["taskDefinition"], d.get("rolloutState")) for d in s["deployments"]],
                }
                for s in described
            },
            "tasks": tasks,
        }
    names: list[str] = []
    token = None
    while True:
        page = ssm.describe_parameters(**({"NextToken": token} if token else {}))
        names.extend(p["Name"] for p in page["Parameters"])
        token = page.get("NextToken")
        if not token:
            break
    for name in sorted(n for n in names if not app or n.startswith(f"/{app}/")):
        state["parameters"][name] = stack.parameter_history(name)
    state["ledger"] = [i for i in stack.ledger() if not app or str(i.get("pk")).startswith((f"lane#{app}/", f"release#{app}/"))]
    state["ferry_events"] = [
        e["event"]["detail"]
        for e in stack.router_log(0)
        if e["kind"] == "event" and e["event"]["source"] == "ferry" and (not app or e["event"]["detail"].get("app") == app)
    ]
    return json.dumps(state, sort_keys=True, indent=1, default=str)
