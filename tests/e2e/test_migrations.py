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
