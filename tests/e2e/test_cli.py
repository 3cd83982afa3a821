"""The operator's CLI (`ferry`, cli/) against the local stack, as an operator
runs it: the real binary, the emulator's endpoint for AWS and the local Lambda
runtime's for Invoke (AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_LAMBDA), the stack's
functions found by name (`ferry-local-deploy`, ...) and the ledger table and
config parameter discovered from ferry-local-deploy's configuration.

Reads go to AWS with the CLI's own credentials (caller `ferry-cli` in the
emulator's call log); every change is an Invoke of a function."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from typing import Any

import pytest

from conftest import Mark, release_id, snapshot
from stack import FERRY_STACK, REGION

CLI_KEY = "ferry-cli"


def ferry(stack, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_ENDPOINT_URL": stack.endpoint,
        "AWS_ENDPOINT_URL_LAMBDA": stack.functions_url,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": CLI_KEY,
        "AWS_SECRET_ACCESS_KEY": "testing",
        "FERRY_STACK": FERRY_STACK,
    }
    return subprocess.run(
        [str(stack.bin_dir / "ferry"), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def ok(result: subprocess.CompletedProcess, code: int = 0) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def invocations(stack) -> dict[str, int]:
    with urllib.request.urlopen(f"{stack.functions_url}/2015-03-31/functions", timeout=10) as response:
        return {f["FunctionName"]: f["Invocations"] for f in json.load(response)["Functions"]}


def state(stack, rid: str) -> str | None:
    item = stack.release(rid)
    return item["state"] if item else None


# ------------------------------------------------------------- status, history


def test_status_and_history_show_releases_a_rollback_and_the_freeze(stack, mark):
    app = "cli"
    first = stack.push(app, "1.0.0")
    stack.settle()
    second = stack.push(app, "1.1.0")
    stack.settle()
    assert state(stack, release_id(app, second)) == "SUCCEEDED"

    out = ok(ferry(stack, "status", f"{app}/prod"))
    assert re.search(r"^cli/prod\s+cli\s+1\.1\.0\s+" + second[7:19], out, re.M), out

    out = ok(ferry(stack, "rollback", f"{app}/prod", "--reason", "checkout errors after 1.1.0"))
    assert "rolled back from" in out and "1.0.0" in out, out
    stack.settle()
    held = stack.push(app, "1.2.0")  # frozen: held
    stack.settle()

    out = ok(ferry(stack, "status", f"{app}/prod"))
    row = next(line for line in out.splitlines() if line.startswith("cli/prod"))
    assert re.search(r"cli\s+1\.0\.0\s+" + first[7:19], row), out
    assert "FROZEN, held 1.2.0, 1 bad" in row, out
    assert "`ferry unfreeze cli/prod` deploys it" in out, out
    assert f"bad (rolled back): {release_id(app, second)}" in out, out

    (lane,) = json.loads(ok(ferry(stack, "status", app, "--json")))
    assert lane["running"]["tag"] == "1.0.0" and lane["running"]["digest"] == first
    assert lane["frozen"] is True and lane["held"]["tag"] == "1.2.0" and lane["held"]["digest"] == held
    assert lane["bad_releases"] == [release_id(app, second)]
    assert lane["in_flight"] is None

    entries = json.loads(ok(ferry(stack, "history", f"{app}/prod", "--json")))
    assert [(e["tag"], e["state"]) for e in entries] == [("1.1.0", "ROLLED_BACK"), ("1.0.0", "SUCCEEDED")], entries
    assert "checkout errors after 1.1.0" in entries[0]["cause"], entries[0]
    assert all(e["duration"] is not None for e in entries), entries
    text = ok(ferry(stack, "history", f"{app}/prod", "--limit", "1"))
    assert text.splitlines()[0].split() == ["RELEASE", "TAG", "STATE", "STARTED", "TOOK", "CAUSE"], text
    assert len(text.splitlines()) == 2 and "ROLLED_BACK" in text, text

    # the operator lifts the freeze and follows the held push to known-good
    result = ferry(stack, "unfreeze", f"{app}/prod", "--wait", "--timeout", "60s")
    out = ok(result)
    assert "unfrozen" in out, out
    assert f"{release_id(app, held)} is known-good (cli 1.2.0)" in out, out
    (lane,) = json.loads(ok(ferry(stack, "status", f"{app}/prod", "--json")))
    assert lane["running"]["tag"] == "1.2.0" and lane["frozen"] is False and lane["held"] is None


def test_status_reads_with_the_operators_credentials_and_writes_nothing(stack, mark):
    before = invocations(stack)
    out = ok(ferry(stack, "status"))
    assert out.splitlines()[0].split()[:3] == ["LANE", "REPOSITORY", "TAG"], out
    assert invocations(stack) == before
    operations = {c["operation"] for c in mark.calls(CLI_KEY)}
    assert operations and all(op.split(":", 1)[1].startswith(("Get", "Describe", "BatchGet", "List", "Query", "Scan")) for op in operations), operations


# ------------------------------------------------------------------------ plan


def test_plan_of_a_task_definition_with_every_optional_field_shows_only_the_image_changing(stack, mark):
    """cli-plan's service runs a task definition with every optional field set
    (estate.every_field_task_definition) on `cli-plan:v0` by tag; the plan of
    v0's digest pins the image: that line changes, and ferry's tags are added.
    Nothing is registered, written or invoked."""
    app = "cli-plan"
    before, calls_before = snapshot(stack, app), invocations(stack)
    result = ferry(stack, "plan", f"{app}/prod", "--tag", "v0", "--json")
    plan = json.loads(ok(result))
    assert plan["tag_policy"] == "accepted" and plan["problems"] == [], plan
    assert plan["decision"] == "claim a new release", plan
    (family,) = plan["families"]
    assert family["family"] == "cli-plan-api" and family["services"] == ["api"]
    changed = [c["path"] for c in family["changes"]]
    images = [p for p in changed if not p.startswith("tags")]
    assert images == ["container_definitions[0].image"], family["changes"]
    assert all(re.fullmatch(r"tags\[\d+\]\.(key|value)", p) for p in changed if p.startswith("tags")), changed
    (image,) = [c for c in family["changes"] if c["path"] == images[0]]
    assert image["before"] == '"123456789012.dkr.ecr.eu-west-1.amazonaws.com/cli-plan:v0"'
    assert image["after"] == f'"123456789012.dkr.ecr.eu-west-1.amazonaws.com/cli-plan@{plan["digest"]}"'
    assert len(plan["secret_references"]) >= 2, plan["secret_references"]
    assert plan["parameter"] == {"name": "/cli-plan/prod/compute/currentImageTag", "from": "v0", "to": "v0"}

    text = ok(ferry(stack, "plan", f"{app}/prod", "--tag", "v0"))
    assert "preflight: passed" in text and "nothing was changed" in text, text
    assert "~ container_definitions[0].image:" in text, text

    assert snapshot(stack, app) == before
    assert invocations(stack) == calls_before
    writes = [c["operation"] for c in mark.calls(CLI_KEY) if not c["operation"].split(":", 1)[1].startswith(("Get", "Describe", "BatchGet", "List", "Scan", "Query"))]
    assert writes == [], writes


# ------------------------------------------------------------------------ wait


def test_wait_exits_0_when_the_release_is_known_good(stack, mark):
    digest = stack.push("cli-wait", "1.0.0")
    result = ferry(stack, "wait", "cli-wait/prod", "--digest", digest, "--timeout", "60s")
    out = ok(result)
    assert f"{release_id('cli-wait', digest)} is known-good (cli-wait 1.0.0)" in out, out
    # not a terminal: plain lines, one per change
    assert "\r" not in out


def test_wait_exits_1_with_the_reason_when_the_migration_fails(stack, mark):
    stack.scenario({"tasks": {"cli-wait:1.0.1": {"outcome": "exit", "exitCode": 1}}})
    digest = stack.push("cli-wait", "1.0.1")
    result = ferry(stack, "wait", "cli-wait/prod", "--digest", digest, "--timeout", "60s")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "ended FAILED" in result.stderr and "exited with code 1" in result.stderr, result.stderr


def test_wait_exits_1_when_the_release_is_rolled_back(stack, mark):
    """worker's deployment fails (the circuit breaker): ferry-watch rolls the
    release back; the wait ends with ROLLED_BACK."""
    stack.settle()
    # only 1.0.2's deployment of worker fails; the rollback's own deployment completes
    failing = {"outcome": "FAILED", "after": 1.0, "reason": "circuit breaker: tasks failed to start"}
    stack.scenario({"deployments": {"cli-wait-prod/worker@1.0.2": failing}})
    digest = stack.push("cli-wait", "1.0.2")
    result = ferry(stack, "wait", "cli-wait/prod", "--digest", digest, "--timeout", "60s", "--json")
    assert result.returncode == 1, (result.stdout, result.stderr)
    ending = json.loads(result.stdout)
    assert ending["state"] == "ROLLED_BACK" and ending["exit"] == 1, ending
    stack.settle()
    assert ok(ferry(stack, "unfreeze", "cli-wait/prod"))


def test_wait_exits_1_for_a_refused_tag_and_3_on_timeout(stack, mark):
    digest = stack.push("cli-wait", "latest")
    result = ferry(stack, "wait", "cli-wait/prod", "--digest", digest, "--timeout", "30s")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "refused" in result.stderr and "latest" in result.stderr, result.stderr

    never = "sha256:" + "0" * 64
    started = time.time()
    result = ferry(stack, "wait", "cli-wait/prod", "--digest", never, "--timeout", "2s")
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "timed out after 2s" in result.stderr, result.stderr
    assert time.time() - started < 20


# --------------------------------------------------------- verbs and arguments


def test_a_refused_deploy_prints_the_functions_decision_and_exits_1(stack, mark):
    stack.push("cli-wait", "0.5.0")  # below the semver floor: refused on push as well
    stack.settle()
    result = ferry(stack, "deploy", "cli-wait/prod", "--tag", "0.5.0")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout.startswith("cli-wait/prod") and "refused:" in result.stdout, result.stdout


def test_an_unknown_environment_is_the_functions_refusal(stack, mark):
    result = ferry(stack, "unfreeze", "cli/qa")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "ferry-local-rollback refused the request" in result.stderr, result.stderr


BAD = [
    ["deploy", "cli/prod"],  # neither --tag nor --digest
    ["deploy", "cli", "--tag", "1.0.0"],  # no environment
    ["deploy", "cli/prod", "--tag", "1.0.0", "--digest", "sha256:" + "a" * 64],
    ["rollback", "cli/prod", "--frobnicate"],
    ["wait", "cli/prod", "--digest", "abc"],
    ["wait", "cli/prod", "--digest", "sha256:" + "a" * 64, "--timeout", "soon"],
    ["promote", "cli", "staging"],
    ["approve"],
    ["reject", "cli/prod/x"],
    ["history", "cli/prod", "--limit", "0"],
]


@pytest.mark.parametrize("args", BAD, ids=[" ".join(a) for a in BAD])
def test_bad_arguments_are_a_usage_error_and_invoke_nothing(stack, args):
    before = invocations(stack)
    mark = Mark(stack)
    result = ferry(stack, *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and "--help" in result.stderr, result.stderr
    assert result.stdout == ""
    assert invocations(stack) == before
    assert mark.calls(CLI_KEY) == []


def test_every_command_has_help(stack):
    for command in ["status", "history", "plan", "deploy", "rollback", "unfreeze", "retry", "promote", "approve", "reject", "wait", "reconcile", "config"]:
        out = ok(ferry(stack, command, "--help"))
        assert "Usage: ferry " + command in out, out
    assert "Exit codes:" in ok(ferry(stack, "--help"))


# ---------------------------------------------------------------- config check


def test_config_check_names_what_the_account_lacks_in_the_functions_words(stack, tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(
        '[apps.cli]\nrepository = "cli"\n[apps.cli.environments.prod]\ncluster = "cli-prod"\nservices = ["api", "worker"]\n'
        'tags = { semver = ">=1.0.0" }\nimage_tag_parameter = "/cli/prod/compute/currentImageTag"\n'
        'migration = { task_family = "cli-migrate" }\nalarms = ["cli-prod-5xx"]\n'
    )
    out = ok(ferry(stack, "config", "check", str(good)))
    assert "valid (1 environment(s))" in out and "the account has everything the config names" in out, out

    bad = tmp_path / "bad.toml"
    bad.write_text(
        good.read_text()
        .replace('"api", "worker"', '"api", "payments"')
        .replace("cli-migrate", "cli-migrations")
        .replace("cli-prod-5xx", "cli-prod-latency")
    )
    result = ferry(stack, "config", "check", str(bad))
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert "service `payments` is not an ACTIVE service of cluster `cli-prod`" in result.stderr, result.stderr
    assert "migration task family `cli-migrations` cannot be described" in result.stderr, result.stderr
    assert "guarding alarm `cli-prod-latency` does not exist" in result.stderr, result.stderr

    invalid = tmp_path / "invalid.toml"
    invalid.write_text(good.read_text().replace('cluster = "cli-prod"\n', ""))
    result = ferry(stack, "config", "check", str(invalid))
    assert result.returncode == 4 and "apps.cli.environments.prod" in result.stderr, result.stderr

    # the deployed config, from the parameter ferry-local-deploy names
    result = ferry(stack, "config", "check", "--offline")
    assert result.returncode == 0 and "SSM parameter" in result.stdout, (result.stdout, result.stderr)
