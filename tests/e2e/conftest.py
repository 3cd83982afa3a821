"""The end-to-end suite's stack: one per pytest session.

The real function binaries (built with cargo unless ``FERRY_BIN_DIR`` names
prebuilt ones) run under the local Lambda runtime; every event they get comes
from the router, which derives it from the emulator's state and matches it
against the rules in ``template.yaml``. Each scenario uses its own app (see
``ferry-e2e.toml``), so state does not leak between them.

Nothing outlives the session: the stack is stopped by the fixture's
finalizer, and its processes also exit by themselves when this process dies
(their stdin is a pipe from it).

IAM is in the loop (``tests/emulator/iam_behaviours.py``): every call a function
makes is authorised against its role's policy in ``template.yaml``. After each
test, no call of a ferry function may have been denied (a test that denies on
purpose says so with ``@pytest.mark.expect_denials``); every decision is kept in
``<state dir>/iam-decisions.jsonl``, and a session that ran the whole directory
ends with the least-privilege report (granted, used, unused per role; also in
``.ferry/iam-report.txt``): an unused grant that ``JUSTIFIED_UNUSED`` does not
justify fails the session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tests" / "emulator"))
sys.path.insert(0, str(HERE))

import chaos  # noqa: E402
import estate  # noqa: E402
import iam_behaviours  # noqa: E402
from stack import Stack, StackError, function_binaries  # noqa: E402

IAM_REPORT = ROOT / ".ferry" / "iam-report.txt"
_IAM = pytest.StashKey[dict]()

E2E_APPS = {
    "dup": ["api", "worker"],
    "race": ["api", "worker"],
    "late": ["api"],
    "mig": ["api", "worker"],
    "slow": ["api"],
    "flaky": ["api"],
    "again": ["api", "worker"],
    "retry": ["api", "worker"],  # test_migrations.py: an operator's retry
    "redrive": ["api", "worker"],  # test_redrive.py: dead letters redriven
    "appr": ["api"],  # test_approval.py: approve, and a newer push superseding
    "apprj": ["api"],  # test_approval.py: reject
    "apprx": ["api"],  # test_approval.py: an approval request that expires
    "promo": ["api"],  # test_approval.py: promotion (and promo/staging below)
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
    "dereg": (["api", "worker"], False, True),
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

# test_restart.py: app -> (services, has a migration); every service reads RESTART_SECRET,
# and only `restart` has restart_on_secret_change (ferry-e2e.toml)
RESTART_APPS = {"restart": (["api", "worker"], True), "restart-off": (["api"], False)}
RESTART_SECRET = "restart/prod/db"

# test_iam.py: app -> services (each with a migration)
IAM_APPS = {"iam-gate": ["api", "worker"]}

# test_reconcile.py: app -> (services, has a migration, guarded by alarm `<app>-prod-5xx`);
# rec-push's containers reference a Secrets Manager secret and a SecureString
# parameter (the preflight of a lost push checks both exist)
RECONCILE_APPS = {
    "rec-push": (["api", "worker"], True, False),
    "rec-fresh": (["api"], False, False),
    "rec-stop": (["api", "worker"], True, False),
    "rec-done": (["api", "worker"], False, True),
    "rec-fail": (["api", "worker"], False, False),
    "rec-alarm": (["api"], False, True),
    "rec-stuck": (["api"], True, False),
    "rec-drift": (["api", "worker"], False, False),
    "rec-heal": (["api", "worker"], False, False),
    "rec-race": (["api", "worker"], True, False),
    "rec-keep": (["api"], False, False),
}


# test_cli.py: app -> (services, has a migration, guarded by alarm `<app>-prod-5xx`)
CLI_APPS = {"cli": (["api", "worker"], True, True), "cli-wait": (["api", "worker"], True, False)}


def _binaries() -> Path:
    if os.environ.get("FERRY_BIN_DIR"):
        return Path(os.environ["FERRY_BIN_DIR"])
    packages = [arg for b in [*function_binaries(), "ferry-cli"] for arg in ("-p", b)]
    # fresh binaries, as `scripts/demo` builds them (a no-op when nothing changed)
    subprocess.run(["cargo", "build", "--quiet", *packages], cwd=ROOT, check=True)
    return ROOT / "target" / "debug"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Stack:
    bin_dir = _binaries()
    state_dir = tmp_path_factory.mktemp("ferry-stack")
    started = Stack(
        state_dir, bin_dir=bin_dir, config_extra=[str(HERE / "ferry-e2e.toml"), str(HERE / "ferry-chaos.toml")], seed=_create_estates
    )
    request.addfinalizer(started.stop)
    try:
        started.start()
    except BaseException:
        started.stop()
        raise
    # the policies every decision of the session is measured against
    (state_dir / "iam-principals.json").write_text(json.dumps(started.control("/_ferry/iam")["principals"], indent=1))
    request.config.stash[_IAM]["state_dir"] = state_dir
    return started


# ------------------------------------------------------------------- IAM


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "expect_denials: the test makes IAM deny calls of ferry's functions on purpose "
        "(the after-test check lets those denials pass)",
    )
    config.stash[_IAM] = {"state_dir": None, "last": 0, "deselected": 0, "files": set(), "report": None}


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        items[0].config.stash[_IAM]["deselected"] += len(items)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    config.stash[_IAM]["files"] = {Path(str(item.fspath)).name for item in items}


def _collect_decisions(stack: Stack, config: pytest.Config, test: str) -> list[dict[str, Any]]:
    """The decisions since the last collection, appended to the session's file."""
    state = config.stash[_IAM]
    found = stack.iam_decisions(state["last"])
    if not found:
        return []
    state["last"] = found[-1]["seq"]
    kept = [
        {
            "test": test,
            **{k: d[k] for k in ("seq", "caller", "operation", "action", "resource", "allowed", "effect", "sid", "sids")},
            **({} if d["allowed"] else {"reason": d["reason"]}),
        }
        for d in found
    ]
    if state["state_dir"] is not None:
        with open(Path(state["state_dir"]) / "iam-decisions.jsonl", "a") as handle:
            for decision in kept:
                handle.write(json.dumps(decision) + "\n")
    return kept


def _denials(decisions: list[dict[str, Any]]) -> str:
    return "\n".join(f"  {d['caller']} {d['operation']}: {d['reason']}" for d in decisions if not d["allowed"])


@pytest.fixture(autouse=True)
def no_call_of_ferry_denied(request: pytest.FixtureRequest, stack: Stack) -> Iterator[None]:
    """After the test (settled), no call of a ferry function was denied by IAM --
    unless the test is marked ``expect_denials``. A denial between two tests (a
    late delivery of the previous one) fails the next one at its start, naming it."""
    earlier = _denials(_collect_decisions(stack, request.config, f"(before {request.node.nodeid})"))
    if earlier:
        pytest.fail(f"IAM denied calls of ferry's functions before this test began:\n{earlier}", pytrace=False)
    yield
    try:
        stack.settle(60)
    except StackError:
        pass  # the test's own assertions say what did not settle
    denied = _denials(_collect_decisions(stack, request.config, request.node.nodeid))
    if denied and request.node.get_closest_marker("expect_denials") is None:
        pytest.fail(f"IAM denied calls of ferry's functions (template.yaml's policies):\n{denied}", pytrace=False)


def _whole_suite_ran(session: pytest.Session) -> bool:
    state = session.config.stash[_IAM]
    option = session.config.option
    every_file = {p.name for p in HERE.glob("test_*.py")}
    return (
        state["state_dir"] is not None
        and not state["deselected"]
        and not getattr(option, "keyword", "")
        and not getattr(option, "markexpr", "")
        and every_file <= state["files"]
        and not session.shouldstop
        and not session.shouldfail
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The least-privilege report of a session that ran every test file."""
    if _IAM not in session.config.stash or not _whole_suite_ran(session):
        return
    state = session.config.stash[_IAM]
    state_dir = Path(state["state_dir"])
    principals = json.loads((state_dir / "iam-principals.json").read_text())
    decisions_file = state_dir / "iam-decisions.jsonl"
    decisions = [json.loads(line) for line in decisions_file.read_text().splitlines()] if decisions_file.exists() else []
    text, failures = iam_behaviours.least_privilege_report(principals, decisions)
    denied = sum(1 for d in decisions if not d["allowed"])
    report = (
        f"least privilege, measured by tests/e2e ({len(decisions)} authorization decisions, {denied} denied)\n"
        f"unused grants are removed from template.yaml or justified in iam_behaviours.JUSTIFIED_UNUSED\n\n{text}\n"
    )
    if failures:
        report += "\nFAILED:\n" + "\n".join(f"  {f}" for f in failures) + "\n"
    IAM_REPORT.parent.mkdir(parents=True, exist_ok=True)
    IAM_REPORT.write_text(report)
    (state_dir / "iam-report.txt").write_text(report)
    state["report"] = report
    if failures and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    report = config.stash[_IAM]["report"] if _IAM in config.stash else None
    if report:
        terminalreporter.write_sep("=", "IAM: least privilege")
        terminalreporter.write(report)
        terminalreporter.write_line(f"(also in {IAM_REPORT})")


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
    for app, services in IAM_APPS.items():
        estate.create_app(stack, app, services)
    restart_secret = stack.client("secretsmanager").create_secret(Name=RESTART_SECRET, SecretString='{"url": "postgres://one"}')["ARN"]
    for app, (services, migration) in RESTART_APPS.items():
        definitions = {s: estate.task_definition(f"{app}-{s}", s, estate.image(app, "0.9.0")) for s in services}
        for definition in definitions.values():
            definition["containerDefinitions"][0]["secrets"] = [{"name": "DATABASE_URL", "valueFrom": f"{restart_secret}:url::"}]
        estate.create_app(stack, app, services, migration=migration, definitions=definitions)
    api_key = f"arn:aws:ssm:{stack.info['emulator']['region']}:{estate.ACCOUNT}:parameter/shop/prod/api-key"
    for app, (services, migration, alarm) in RECONCILE_APPS.items():
        definitions = None
        if app == "rec-push":
            definitions = {s: estate.task_definition(f"{app}-{s}", s, estate.image(app, "0.9.0")) for s in services}
            for definition in definitions.values():
                definition["containerDefinitions"][0]["secrets"] = [
                    {"name": "DATABASE_URL", "valueFrom": secret_arn},
                    {"name": "API_KEY", "valueFrom": api_key},
                ]
        estate.create_app(stack, app, services, migration=migration, definitions=definitions)
        if alarm:
            estate.create_alarm(stack, f"{app}-prod-5xx")
    estate.create_environment(stack, "promo", "staging", E2E_APPS["promo"])
    chaos.create_estate(stack)
    for app, (services, migration, alarm) in CLI_APPS.items():
        estate.create_app(stack, app, services, migration=migration)
        if alarm:
            estate.create_alarm(stack, f"{app}-prod-5xx")
    # the CLI's plan of a task definition with every optional field set
    estate.create_app(
        stack,
        "cli-plan",
        ["api"],
        migration=False,
        baseline="v0",
        definitions={"api": estate.every_field_task_definition("cli-plan-api", estate.image("cli-plan", "v0"), secret_arn)},
    )
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
