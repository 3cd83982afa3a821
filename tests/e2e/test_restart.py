"""Restart on a secret's new value, as AWS plays it: PutSecretValue moves the
secret's AWSCURRENT label, Secrets Manager sends ``Secret Label Updated``
(router.py), ferry-deploy's rule in template.yaml takes it, and the lanes with
``restart_on_secret_change`` whose known-good revisions read the secret are
force-deployed on those revisions as a release of their own."""

from __future__ import annotations

from conftest import RESTART_SECRET, release_id

SECRET_EVENT = "Secret Label Updated"
#: calls that change AWS (ferry-deploy, ferry-gate, ferry-watch alike)
WRITES = {
    "ecs:RegisterTaskDefinition",
    "ecs:RunTask",
    "ecs:UpdateService",
    "ssm:PutParameter",
    "ssm:LabelParameterVersion",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:TransactWriteItems",
    "scheduler:CreateSchedule",
}


def known_good(stack, app, services, tag="1.0.0"):
    digest = stack.push(app, tag)
    stack.settle()
    rid = release_id(app, digest)
    assert stack.release(rid)["state"] == "SUCCEEDED"
    return digest, rid


def test_a_new_value_of_a_secret_the_services_read_restarts_them_once_on_their_known_good_revisions(stack, mark):
    app, services = "restart", ["api", "worker"]
    digest, good = known_good(stack, app, services)
    known_good(stack, "restart-off", ["api"])  # reads the same secret, not opted in
    before = stack.services(f"{app}-prod", services)
    off_before = stack.services("restart-off-prod", ["api"])["api"]
    revisions = {f: stack.revisions(f) for f in (f"{app}-api", f"{app}-worker", f"{app}-migrate")}
    history_before = stack.parameter_history(f"/{app}/prod/compute/currentImageTag")
    since = type(mark)(stack)  # where the logs stand once the release is known-good

    # the change delivered twice at once (EventBridge delivers at least once)
    stack.router({"chaos": [{"match": {"source": ["aws.secretsmanager"]}, "copies": 2, "times": 1}]})
    try:
        put = stack.client("secretsmanager").put_secret_value(SecretId=RESTART_SECRET, SecretString='{"url": "postgres://two"}')
        stack.settle()
    finally:
        stack.router({"chaos": []})

    (event,) = since.events(SECRET_EVENT)
    assert event["event"]["detail"] == {"name": RESTART_SECRET, "labelUpdated": "AWSCURRENT", "versionId": put["VersionId"]}
    assert event["targets"] == ["DeployFunction/SecretValueChanged"]
    assert len(since.replies("ferry-deploy")) == 2, "both copies delivered"
    ours = [d for d in since.decisions("ferry-deploy") if d.get("app") == app]
    outcomes = sorted(d["outcome"] for d in ours)
    assert outcomes.count("deploying") == 1 and set(outcomes) <= {"deploying", "duplicate", "ignored"}, ours
    assert not [d for d in since.decisions("ferry-deploy") if d.get("app") == "restart-off"], "not opted in: not even looked at"

    # a release of its own: a new id, the known-good digest and tag, SUCCEEDED
    restart = next(d["release_id"] for d in ours if d["outcome"] == "deploying")
    assert restart != good and restart.startswith(f"{app}/prod/")
    item = stack.release(restart)
    assert item["state"] == "SUCCEEDED", item
    assert (item["digest"], item["tag"]) == (digest, "1.0.0"), item
    states = [e["state"] for e in since.ferry_events(app) if e["releaseId"] == restart]
    assert states == ["CLAIMED", "DEPLOYING", "SUCCEEDED"], states

    # every service force-deployed on the same revision; nothing registered, no migration
    after = stack.services(f"{app}-prod", services)
    for service in services:
        assert after[service]["taskDefinition"] == before[service]["taskDefinition"], service
        old = {d["id"] for d in before[service]["deployments"]}
        primary = next(d for d in after[service]["deployments"] if d["status"] == "PRIMARY")
        assert primary["id"] not in old, f"{service}: a new deployment, new tasks reading the new value"
        assert primary["taskDefinition"] == before[service]["taskDefinition"]
    assert {f: stack.revisions(f) for f in revisions} == revisions
    ops = since.operations()
    assert "ecs:RegisterTaskDefinition" not in ops and "ecs:RunTask" not in ops, ops
    assert ops.get("ecs:UpdateService") == len(services), ops
    # the parameter names 1.0.0 already: no second version of it
    assert "ssm:PutParameter" not in ops, ops
    history = stack.parameter_history(f"/{app}/prod/compute/currentImageTag")
    assert [p["value"] for p in history] == [p["value"] for p in history_before]
    assert history[-1]["value"] == "1.0.0" and history[-1]["labels"] == ["known-good"], history

    # the lane that did not opt in is untouched
    off_after = stack.services("restart-off-prod", ["api"])["api"]
    assert [d["id"] for d in off_after["deployments"]] == [d["id"] for d in off_before["deployments"]]
    print("restart calls:", dict(sorted(ops.items())))


def test_a_label_other_than_awscurrent_or_a_secret_no_service_reads_changes_nothing(stack, mark):
    sm = stack.client("secretsmanager")
    unread = sm.create_secret(Name="restart/prod/unread", SecretString="one")["Name"]
    sm.put_secret_value(SecretId=RESTART_SECRET, SecretString='{"url": "postgres://blue"}', VersionStages=["blue"])
    sm.put_secret_value(SecretId=unread, SecretString="two")
    stack.settle()

    labels = [(e["event"]["detail"]["name"], e["event"]["detail"]["labelUpdated"], e["targets"]) for e in mark.events(SECRET_EVENT)]
    assert labels == [
        (RESTART_SECRET, "blue", []),
        (unread, "AWSCURRENT", ["DeployFunction/SecretValueChanged"]),
    ], labels
    decisions = mark.decisions("ferry-deploy")
    assert decisions and all(d["outcome"] == "ignored" for d in decisions), decisions
    assert not WRITES & set(mark.operations()), mark.operations()
