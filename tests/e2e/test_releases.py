"""Releases as AWS plays them: pushes become events, duplicated and reordered as
EventBridge may, delivered to the real functions; the emulator's state is
asserted afterwards."""

from __future__ import annotations

import copy
import json

from conftest import release_id
from estate import REGISTRY, create_app_with_cloudformation, every_field_task_definition

PUSH = "ECR Image Action"


def family_revisions(stack, app, services, migration=True):
    families = [f"{app}-{s}" for s in services] + ([f"{app}-migrate"] if migration else [])
    return {f: stack.revisions(f) for f in families}


def max_overlap(mark, binary):
    """The most invocations of ``binary`` that were running at the same moment."""
    edges = []
    for entry in mark.entries():
        if entry.get("binary") == binary and entry["kind"] in ("invoke", "reply"):
            edges.append((entry["time"], 1 if entry["kind"] == "invoke" else -1))
    running = most = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        running += step
        most = max(most, running)
    return most


def test_the_same_push_delivered_ten_times_at_once_is_one_release(stack, mark):
    app, services = "dup", ["api", "worker"]
    before = family_revisions(stack, app, services)
    stack.router(
        {
            "chaos": [
                # ten copies of the push, delivered concurrently...
                {"match": {"source": ["aws.ecr"], "detail": {"repository-name": [app]}}, "copies": 10, "times": 1},
                # ...and ten of the migration's stop
                {"match": {"detail-type": ["ECS Task State Change"], "detail": {"startedBy": [{"prefix": f"ferry/{app}/"}]}}, "copies": 10, "times": 1},
            ]
        }
    )
    try:
        digest = stack.push(app, "1.0.0")
        stack.settle()
    finally:
        stack.router({"chaos": []})
    rid = release_id(app, digest)

    deploys = [d["outcome"] for d in mark.decisions("ferry-deploy")]
    assert len(mark.replies("ferry-deploy")) == 10, "EventBridge delivered ten copies"
    assert max_overlap(mark, "ferry-deploy") >= 2, "the copies ran concurrently (several execution environments)"
    assert deploys.count("migrating") == 1, deploys
    assert set(deploys) <= {"migrating", "duplicate"}, deploys
    gates = [d["outcome"] for d in mark.decisions("ferry-gate")]
    ops = mark.operations()
    assert len(gates) == 10 and gates.count("deploying") == 1, (gates, "UpdateService calls:", ops.get("ecs:UpdateService"))
    assert [d["outcome"] for d in mark.decisions("ferry-watch")][-1] == "succeeded"

    # one registration per family, one SSM version, one migration, one rollout
    after = family_revisions(stack, app, services)
    for family, arns in after.items():
        assert len(arns) == len(before[family]) + 1, family
    assert ops.get("ecs:RegisterTaskDefinition") == 3, ops
    assert ops.get("ssm:PutParameter") == 1, ops
    assert ops.get("ecs:RunTask") == 1, ops
    assert ops.get("ecs:UpdateService") == len(services), ops
    history = stack.parameter_history(f"/{app}/prod/compute/currentImageTag")
    assert [(p["value"], p["labels"]) for p in history] == [("0.9.0", []), ("1.0.0", ["known-good"])]
    migrations = stack.client("ecs").list_tasks(cluster=f"{app}-prod", desiredStatus="STOPPED")["taskArns"]
    assert len(migrations) == 1

    described = stack.services(f"{app}-prod", services)
    for service in services:
        assert described[service]["taskDefinition"] == after[f"{app}-{service}"][-1]
    item = stack.release(rid)
    assert item["state"] == "SUCCEEDED", item
    states = [e["state"] for e in mark.ferry_events(app)]
    assert states == ["CLAIMED", "MIGRATING", "DEPLOYING", "SUCCEEDED"], states


def test_a_newer_push_supersedes_an_older_release_still_migrating(stack, mark):
    app, services = "race", ["api", "worker"]
    # 2.0.0's migration is slow: it stops after 2.1.0 has been claimed
    stack.scenario({"tasks": {f"{app}:2.0.0": {"after": 3.0}, f"{app}:2.1.0": {"after": 0.5}}})
    old = stack.push(app, "2.0.0")
    mark.wait_for(
        lambda: any(d["outcome"] == "migrating" and d.get("release_id") == release_id(app, old) for d in mark.decisions("ferry-deploy")),
        what="2.0.0 migrating",
    )
    new = stack.push(app, "2.1.0")
    stack.settle()

    old_id, new_id = release_id(app, old), release_id(app, new)
    assert stack.release(old_id)["state"] == "SUPERSEDED"
    assert stack.release(new_id)["state"] == "SUCCEEDED"
    gate = {d.get("release_id"): d["outcome"] for d in mark.decisions("ferry-gate")}
    assert gate == {old_id: "superseded", new_id: "deploying"}, gate

    # the services run 2.1.0; 2.0.0 never reached UpdateService
    described = stack.services(f"{app}-prod", services)
    for service in services:
        definition = stack.task_definition(described[service]["taskDefinition"])
        assert definition["containerDefinitions"][0]["image"] == f"{REGISTRY}/{app}@{new}"
    assert mark.operations().get("ecs:UpdateService") == len(services)
    history = [p["value"] for p in stack.parameter_history(f"/{app}/prod/compute/currentImageTag")]
    assert history[-1] == "2.1.0", history
    assert "SUCCEEDED" not in [e["state"] for e in mark.ferry_events(app) if e["releaseId"] == old_id]


def test_push_events_delivered_newest_first_never_move_backwards(stack, mark):
    app = "late"
    # hold both pushes, then deliver them newest first
    stack.router({"chaos": [{"match": {"source": ["aws.ecr"], "detail": {"repository-name": [app]}}, "hold": 2, "times": 2}]})
    try:
        old = stack.push(app, "2.0.0")
        new = stack.push(app, "2.1.0")
        stack.settle()
    finally:
        stack.router({"chaos": []})

    invoked = [e for e in mark.entries() if e["kind"] == "invoke" and e["binary"] == "ferry-deploy"]
    pushes = {e["event"]["id"]: e["event"]["detail"]["image-tag"] for e in mark.events(PUSH)}
    assert [pushes[e["event_id"]] for e in invoked] == ["2.1.0", "2.0.0"], "delivered newest first"
    outcomes = {d.get("release_id"): d["outcome"] for d in mark.decisions("ferry-deploy")}
    assert outcomes.get(release_id(app, new)) == "migrating", outcomes
    late = [d for d in mark.decisions("ferry-deploy") if d.get("release_id") != release_id(app, new)]
    assert late and all(d["outcome"] in ("refused", "ignored") for d in late), late
    assert stack.release(release_id(app, new))["state"] == "SUCCEEDED"
    old_item = stack.release(release_id(app, old))
    assert old_item is None or old_item["state"] not in ("SUCCEEDED", "DEPLOYING", "MIGRATING"), old_item
    definition = stack.task_definition(stack.services(f"{app}-prod", ["api"])["api"]["taskDefinition"])
    assert definition["containerDefinitions"][0]["image"].endswith(f"@{new}")
    assert [p["value"] for p in stack.parameter_history(f"/{app}/prod/compute/currentImageTag")] == ["0.9.0", "2.1.0"]


# fields DescribeTaskDefinition sets on every revision: not part of what is copied
REGISTRATION_METADATA = {"taskDefinitionArn", "revision", "registeredAt", "registeredBy", "status", "deregisteredAt"}


def test_a_task_definition_with_every_optional_field_survives_unchanged_but_for_the_image(stack, mark):
    app = "full"
    before_arn = stack.services(f"{app}-prod", ["api"])["api"]["taskDefinition"]
    before = stack.task_definition(before_arn)
    # the emulator kept every field the estate registered (else this test would prove nothing)
    request = every_field_task_definition("full-api", "-", stack.info["environment"]["outputs"]["ShopDatabaseSecretArn"])
    assert set(request) <= set(before), set(request) - set(before)
    for sent, kept in zip(request["containerDefinitions"], before["containerDefinitions"]):
        assert set(sent) <= set(kept), set(sent) - set(kept)
    digest = stack.push(app, "v2")
    stack.settle()

    assert [d["outcome"] for d in mark.decisions("ferry-deploy")] == ["deploying"], "no migration: straight to the services"
    after_arn = stack.services(f"{app}-prod", ["api"])["api"]["taskDefinition"]
    assert after_arn != before_arn
    after = stack.task_definition(after_arn)

    expected = {k: v for k, v in copy.deepcopy(before).items() if k not in REGISTRATION_METADATA}
    got = {k: v for k, v in copy.deepcopy(after).items() if k not in REGISTRATION_METADATA}
    # only the container running repository `full` changes, to the pushed digest
    expected["containerDefinitions"][0]["image"] = f"{REGISTRY}/{app}@{digest}"
    # ferry tags its revisions; the user's tags stay
    rid = release_id(app, digest)
    expected["tags"] = expected["tags"] + [{"key": "ferry:release", "value": rid}, {"key": "ferry:env", "value": f"{app}/prod"}]
    got["tags"] = sorted(got["tags"], key=lambda t: t["key"])
    expected["tags"] = sorted(expected["tags"], key=lambda t: t["key"])
    assert got == expected
    # the sidecars (another registry, another ECR repository) are untouched
    assert [c["image"] for c in after["containerDefinitions"][1:]] == [c["image"] for c in before["containerDefinitions"][1:]]
    assert stack.release(rid)["state"] == "SUCCEEDED"


def test_one_repository_per_service_releases_only_the_matching_service(stack, mark):
    cluster, services = "blog-prod", ["web", "jobs"]
    before = stack.services(cluster, services)
    jobs_revisions = stack.revisions("blog-jobs")
    digest = stack.push("blog-web", "sha-1111111")
    stack.settle()

    after = stack.services(cluster, services)
    web = stack.task_definition(after["web"]["taskDefinition"])
    assert after["web"]["taskDefinition"] != before["web"]["taskDefinition"]
    assert web["containerDefinitions"][0]["image"] == f"{REGISTRY}/blog-web@{digest}"
    assert after["jobs"]["taskDefinition"] == before["jobs"]["taskDefinition"], "jobs untouched"
    assert [d["id"] for d in after["jobs"]["deployments"]] == [d["id"] for d in before["jobs"]["deployments"]]
    assert stack.revisions("blog-jobs") == jobs_revisions, "no jobs revision registered"
    assert mark.operations().get("ecs:UpdateService") == 1
    assert stack.release(release_id("blog", digest))["state"] == "SUCCEEDED"
    # each lane records its own tag: web's parameter moved, jobs' did not
    assert stack.parameter_history("/blog/prod/blog-web/currentImageTag")[-1]["value"] == "sha-1111111"
    assert [p["value"] for p in stack.parameter_history("/blog/prod/blog-jobs/currentImageTag")] == ["sha-0000001"]


CLOUDFORMATION_KEYS = ["aws:cloudformation:stack-name", "aws:cloudformation:stack-id", "aws:cloudformation:logical-id"]


def test_task_definitions_cloudformation_tagged_are_copied_without_its_reserved_tags(stack, mark):
    """CloudFormation's ``aws:cloudformation:*`` tags on the source revisions (put there
    as CloudFormation puts them; ECS refuses them from any caller): the release
    registers every copy with the source's other tags and ferry's, and says which
    keys it left out."""
    app, services = "cfntags", ["api", "worker"]
    every_type = frozenset({"AWS::ECS::Cluster", "AWS::ECS::TaskDefinition", "AWS::ECS::Service"})
    created = create_app_with_cloudformation(stack, app, services, stack_tags_on=every_type)
    stack.settle()
    sources = {**{f"{app}-{s}": arn for s, arn in created["services"].items()}, f"{app}-migrate": created["migration"]}
    for family, arn in sources.items():
        keys = [t["key"] for t in stack.task_definition(arn)["tags"]]
        assert keys == ["app", *CLOUDFORMATION_KEYS], f"CloudFormation tagged {family}: {keys}"

    digest = stack.push(app, "1.0.0")
    stack.settle()

    rid = release_id(app, digest)
    record = stack.release(rid)
    assert record["state"] == "SUCCEEDED", json.dumps(record, default=str)
    ferry_tags = [{"key": "ferry:release", "value": rid}, {"key": "ferry:env", "value": f"{app}/prod"}]
    after = stack.services(f"{app}-prod", services)
    copies = {f"{app}-{s}": after[s]["taskDefinition"] for s in services}
    copies[f"{app}-migrate"] = stack.revisions(f"{app}-migrate")[-1]
    for family, arn in copies.items():
        assert arn != sources[family], f"{family} was copied"
        assert stack.task_definition(arn)["tags"] == [{"key": "app", "value": app}, *ferry_tags], family

    # the migration task: ferry's tags only, nothing propagated from the task definition
    ecs = stack.client("ecs")
    started = ecs.list_tasks(cluster=f"{app}-prod", startedBy=f"ferry/{rid}", desiredStatus="STOPPED")["taskArns"]
    assert len(started) == 1
    task = ecs.describe_tasks(cluster=f"{app}-prod", tasks=started, include=["TAGS"])["tasks"][0]
    assert task["tags"] == ferry_tags
    # no AWS call was refused, and the log names the keys left out, per copy
    assert not [c for c in mark.calls("ferry-deploy") if c["status"] >= 400]
    logged = []
    for line in (stack.log_dir / "ferry-deploy.log").read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        fields = entry.get("fields") or {}
        if fields.get("task_definition") in sources.values():
            logged.append((fields["task_definition"], fields.get("dropped")))
    assert sorted(logged) == sorted((arn, json.dumps(CLOUDFORMATION_KEYS)) for arn in sources.values())
