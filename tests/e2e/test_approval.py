"""The approval gate and promotion on the local stack, driven as an operator
drives them, with the `ferry` CLI (`ferry approve`, `reject`, `promote`: Invokes
of ferry-deploy): a gated release waits with SSM and services untouched until an
operator's approve (it then completes), reject (REJECTED, nothing changed) or
the request's expiry; a newer push supersedes it. Promotion deploys staging's
known-good digest to prod, which refuses a direct push. Scenario variety is in
crates/core/tests/approval.rs."""

from __future__ import annotations

import json
import time

from conftest import release_id
from test_cli import ferry


def operator(stack, *args: str, code: int = 0) -> list[dict]:
    """`ferry <args> --json`: the function's decisions, and the CLI's exit code checked."""
    result = ferry(stack, *args, "--json")
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    reply = json.loads(result.stdout)
    assert reply["ok"], reply
    return reply["decisions"]


def untouched(stack, app):
    return (
        [p["value"] for p in stack.parameter_history(f"/{app}/prod/compute/currentImageTag")],
        stack.services(f"{app}-prod", ["api"])["api"]["taskDefinition"],
    )


def test_an_approved_release_completes_and_a_newer_push_supersedes_the_waiting_one(stack, mark):
    app = "appr"
    before = untouched(stack, app)
    first = stack.push(app, "1.0.1")
    stack.settle()
    [waiting] = mark.decisions("ferry-deploy")
    assert waiting["outcome"] == "awaiting_approval", waiting
    assert waiting["plan"]["parameter"] == {"name": f"/{app}/prod/compute/currentImageTag", "from": "0.9.0", "to": "1.0.1"}, waiting
    assert set(waiting["plan"]["task_definitions"]) == {"api"}, waiting
    assert untouched(stack, app) == before, "SSM and the service wait for the approve"
    event = [e for e in mark.ferry_events(app) if e["state"] == "AWAITING_APPROVAL"]
    assert event and event[-1]["plan"] == waiting["plan"], event

    second = stack.push(app, "1.0.2")
    stack.settle()
    old = stack.release(release_id(app, first))
    assert old["state"] == "SUPERSEDED" and release_id(app, second) in old["reason"], old
    assert untouched(stack, app) == before

    [approved] = operator(stack, "approve", f"{app}/prod")
    assert (approved["outcome"], approved["release_id"]) == ("deploying", release_id(app, second)), approved
    [again] = operator(stack, "approve", f"{app}/prod", code=1)
    assert again["outcome"] == "refused", again
    stack.settle()
    assert stack.release(release_id(app, second))["state"] == "SUCCEEDED"
    history = stack.parameter_history(f"/{app}/prod/compute/currentImageTag")
    assert history[-1]["value"] == "1.0.2" and "known-good" in history[-1]["labels"], history


def test_a_rejected_release_ends_rejected_with_nothing_changed(stack, mark):
    app = "apprj"
    before = untouched(stack, app)
    digest = stack.push(app, "1.0.1")
    stack.settle()
    [rejected] = operator(stack, "reject", f"{app}/prod", "--reason", "change freeze")
    assert rejected["outcome"] == "rejected" and "change freeze" in rejected["reason"], rejected
    stack.settle()
    item = stack.release(release_id(app, digest))
    assert item["state"] == "REJECTED" and "change freeze" in item["reason"], item
    assert untouched(stack, app) == before
    assert "ecs:UpdateService" not in mark.operations() and "ssm:PutParameter" not in mark.operations()


def test_an_approval_request_past_its_expiry_is_refused_and_ends_rejected(stack, mark):
    app = "apprx"
    before = untouched(stack, app)
    digest = stack.push(app, "1.0.1")
    stack.settle()
    assert [d["outcome"] for d in mark.decisions("ferry-deploy")] == ["awaiting_approval"]
    time.sleep(3)  # approval_expires_after = "2s"
    [late] = operator(stack, "approve", f"{app}/prod", code=1)
    assert late["outcome"] == "refused" and "expired" in late["reason"], late
    item = stack.release(release_id(app, digest))
    assert item["state"] == "REJECTED" and "expired" in item["reason"], item
    assert untouched(stack, app) == before


def test_staging_known_good_is_promoted_to_prod_which_refuses_a_direct_push(stack, mark):
    app = "promo"
    digest = stack.push(app, "1.0.1")
    stack.settle()
    by_env = {d["environment"]: d for d in mark.decisions("ferry-deploy")}
    assert by_env["prod"]["outcome"] == "refused" and "promote_from" in by_env["prod"]["reason"], by_env
    assert stack.release(release_id(app, digest, "staging"))["state"] == "SUCCEEDED"
    assert stack.release(release_id(app, digest)) is None

    [promoted] = operator(stack, "promote", app, "staging", "prod")
    assert (promoted["outcome"], promoted["release_id"]) == ("deploying", release_id(app, digest)), promoted
    stack.settle()
    assert stack.release(release_id(app, digest))["state"] == "SUCCEEDED"
    assert stack.parameter_history(f"/{app}/prod/compute/currentImageTag")[-1]["value"] == "1.0.1"
    running = stack.services(f"{app}-prod", ["api"])["api"]["taskDefinition"]
    assert running == stack.release(release_id(app, digest))["task_definitions"]["api"]
    [again] = operator(stack, "promote", app, "staging", "prod")
    assert again["outcome"] == "duplicate", again
