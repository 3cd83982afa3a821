"""A failed migration -- non-zero exit, failed to start, outlived its timeout --
fails the release: no service is touched, the SSM image tag is restored, the
reason is recorded."""

from __future__ import annotations

import pytest

from conftest import release_id

CASES = [
    # app, tag, how the migration ends (ecs_behaviours.Scenario), what the reason says
    pytest.param("mig", "1.0.1", {"outcome": "exit", "exitCode": 1}, 'exited with code 1', id="exits-1"),
    pytest.param("mig", "1.0.2", {"outcome": "failed-to-start"}, "TaskFailedToStart", id="fails-to-start"),
    # the app's migration timeout is 2s; this one stops after 4s, exit 0
    pytest.param("slow", "1.0.1", {"outcome": "exit", "exitCode": 0, "after": 4.0}, "outlived its timeout", id="outlives-timeout"),
]


@pytest.mark.parametrize("app, tag, ending, reason", CASES)
def test_failed_migration_touches_no_service_and_restores_the_tag(stack, mark, app, tag, ending, reason):
    cluster = f"{app}-prod"
    parameter = f"/{app}/prod/compute/currentImageTag"
    names = [s for s in ("api", "worker") if stack.revisions(f"{app}-{s}")]
    before_services = stack.services(cluster, names)
    before_history = stack.parameter_history(parameter)
    stack.scenario({"tasks": {f"{app}:{tag}": ending}})

    digest = stack.push(app, tag)
    stack.settle()

    rid = release_id(app, digest)
    assert [d["outcome"] for d in mark.decisions("ferry-deploy")] == ["migrating"]
    gate = mark.decisions("ferry-gate")
    assert [d["outcome"] for d in gate] == ["failed"], gate
    assert reason in gate[0]["reason"], gate[0]["reason"]

    item = stack.release(rid)
    assert item["state"] == "FAILED"
    assert reason in item["reason"], item

    # no service touched: same task definitions, same deployments, no UpdateService
    after_services = stack.services(cluster, names)
    for name in names:
        assert after_services[name]["taskDefinition"] == before_services[name]["taskDefinition"]
        assert [d["id"] for d in after_services[name]["deployments"]] == [d["id"] for d in before_services[name]["deployments"]]
    assert "ecs:UpdateService" not in mark.operations()
    assert not mark.events("ECS Deployment State Change")

    # the tag was written for the migration, then restored
    history = stack.parameter_history(parameter)
    previous = before_history[-1]["value"]
    assert [p["value"] for p in history] == [p["value"] for p in before_history] + [tag, previous]
    assert not any("known-good" in p["labels"] for p in history[len(before_history):])

    states = [e["state"] for e in mark.ferry_events(app)]
    assert states[-1] == "FAILED" and "DEPLOYING" not in states, states


def deploy_invoke(stack, payload):
    status, reply, function_error = stack.invoke("ferry-deploy", payload)
    assert status == 200 and function_error is None, (status, reply, function_error)
    return reply


def test_a_failed_digest_is_retried_by_an_operator_as_generation_2_and_succeeds(stack, mark):
    """The migration of retry:1.1.0 exits 1 (a transient lock, say); the digest
    is now a duplicate for every push and deploy. The operator's retry deploys
    it again as `<release id>-2`, through the same claim, preflight, copies and
    migration; the migration exits 0 this time and the release succeeds."""
    app, tag = "retry", "1.1.0"
    parameter = f"/{app}/prod/compute/currentImageTag"
    stack.scenario({"tasks": {f"{app}:{tag}": {"outcome": "exit", "exitCode": 1}}})
    digest = stack.push(app, tag)
    stack.settle()
    rid = release_id(app, digest)
    assert stack.release(rid)["state"] == "FAILED"
    assert [d["outcome"] for d in deploy_invoke(stack, {"deploy": {"app": app, "environment": "prod", "tag": tag}})["decisions"]] == ["duplicate"]
    registered = len(stack.revisions(f"{app}-api"))

    stack.scenario({"tasks": {f"{app}:{tag}": {"outcome": "exit", "exitCode": 0}}})
    calls = len(mark.calls("ferry-deploy"))
    reply = deploy_invoke(stack, {"retry": {"app": app, "environment": "prod"}})

    second = f"{rid}-2"
    [decision] = reply["decisions"]
    assert (decision["outcome"], decision["release_id"]) == ("migrating", second), reply
    retry_calls = mark.calls("ferry-deploy")[calls:]
    print(f"\nthe retry's AWS calls ({len(retry_calls)}): " + ", ".join(c["operation"] for c in retry_calls))
    stack.settle()

    assert stack.release(rid)["state"] == "FAILED", "the failure stays recorded"
    assert stack.release(rid)["retried_as"] == second
    item = stack.release(second)
    assert item["state"] == "SUCCEEDED", item
    gate = [d for d in mark.decisions("ferry-gate") if d.get("release_id") == second]
    assert [d["outcome"] for d in gate] == ["deploying"], gate
    assert len(stack.revisions(f"{app}-api")) == registered + 1, "the copies registered again, once"
    assert stack.services(f"{app}-prod", ["api"])["api"]["taskDefinition"] == stack.revisions(f"{app}-api")[-1]
    history = stack.parameter_history(parameter)
    assert history[-1]["value"] == tag and "known-good" in history[-1]["labels"], history
    states = [(e["releaseId"], e["state"]) for e in mark.ferry_events(app)]
    assert (second, "CLAIMED") in states and (second, "SUCCEEDED") in states, states

    # The push delivered again, late: a duplicate, never a third release.
    pushes = [e for e in mark.events("ECR Image Action") if e["event"]["detail"].get("image-tag") == tag]
    before = app_items(stack, app)
    stack.control("/_ferry/router/redeliver", {"id": pushes[0]["event"]["id"]})
    stack.settle()
    late = [d for d in mark.decisions("ferry-deploy") if d.get("release_id") == rid]
    assert [d["outcome"] for d in late][-1] == "duplicate", late
    assert app_items(stack, app) == before


def app_items(stack, app):
    return [i for i in stack.ledger() if f"{app}/prod" in str(i.get("pk"))]
