"""Self-test of ferry's local AWS emulator (ferry_emulator.py + ecs_behaviours.py).

Run with: .venv/bin/python -m pytest tests/emulator -q

Every test talks to a real launched emulator over HTTP with boto3, as ferry's
end-to-end tests do with the AWS SDK for Rust. ``test_wire_types_match_the_ecs_model``
checks the raw JSON against botocore's ECS model so that a strict client (the
Rust SDK rejects a number where the model says string, or an ISO date where
awsJson1_1 sends epoch seconds) can parse what the emulator sends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest

HERE = Path(__file__).resolve().parent
LAUNCHER = HERE / "ferry_emulator.py"
REGION = "eu-west-1"
STARTED_BY = "ferry/shop/prod/0123456789abcdef"


def launch(ready_file: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(LAUNCHER), "--port", "0", "--ready-file", str(ready_file), "--region", REGION, *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_ready(proc: subprocess.Popen, ready_file: Path, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready_file.exists():
            return json.loads(ready_file.read_text())
        if proc.poll() is not None:
            raise AssertionError(f"emulator exited early: {proc.stderr.read().decode()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("emulator did not become ready")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory):
    ready_file = tmp_path_factory.mktemp("emulator") / "ready.json"
    proc = launch(ready_file)
    try:
        info = wait_ready(proc, ready_file)
        yield info
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def client(info: dict[str, Any], service: str):
    return boto3.client(
        service,
        endpoint_url=info["endpoint"],
        region_name=info["region"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def control(info: dict[str, Any], path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        info["endpoint"] + path,
        data=data,
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def raw_ecs(info: dict[str, Any], action: str, body: dict[str, Any]) -> dict[str, Any]:
    """One ECS call as raw awsJson1_1, returning the JSON exactly as sent."""
    request = urllib.request.Request(
        info["endpoint"] + "/",
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"AmazonEC2ContainerServiceV20141113.{action}",
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential=testing/20250101/{info['region']}/ecs/aws4_request, "
                "SignedHeaders=host;x-amz-target, Signature=0"
            ),
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


_counter = iter(range(10**6))


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}-{os.getpid()}"


def network(info: dict[str, Any]) -> dict[str, Any]:
    return {
        "awsvpcConfiguration": {
            "subnets": info["subnets"][:1],
            "securityGroups": info["security_groups"],
            "assignPublicIp": "DISABLED",
        }
    }


def register(ecs, family: str, image: str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:1.0.0", **extra):
    return ecs.register_task_definition(
        family=family,
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        containerDefinitions=[
            {"name": "app", "image": image, "cpu": 128, "memory": 256, "essential": True},
            {"name": "log-router", "image": "public.ecr.aws/aws-observability/aws-for-fluent-bit:2", "cpu": 128, "memory": 256, "essential": False},
        ],
        **extra,
    )["taskDefinition"]


def start_migration(info, ecs, cluster: str, family: str) -> dict[str, Any]:
    task = ecs.run_task(
        cluster=cluster,
        taskDefinition=family,
        launchType="FARGATE",
        startedBy=STARTED_BY,
        networkConfiguration=network(info),
    )["tasks"][0]
    return task


# --------------------------------------------------------------------------
# launcher


def test_ready_file_describes_the_default_vpc(emulator):
    assert emulator["endpoint"].startswith("http://127.0.0.1:")
    assert emulator["region"] == REGION
    assert emulator["account_id"] == "123456789012"
    assert emulator["subnets"] and all(s.startswith("subnet-") for s in emulator["subnets"])
    assert len(emulator["security_groups"]) == 1 and emulator["security_groups"][0].startswith("sg-")
    ec2 = client(emulator, "ec2")
    vpc = ec2.describe_vpcs(VpcIds=[emulator["vpc_id"]])["Vpcs"][0]
    assert vpc["IsDefault"]
    dns = ec2.describe_vpc_attribute(VpcId=emulator["vpc_id"], Attribute="enableDnsHostnames")
    assert dns["EnableDnsHostnames"]["Value"] is True
    subnets = ec2.describe_subnets(SubnetIds=emulator["subnets"])["Subnets"]
    assert {s["VpcId"] for s in subnets} == {emulator["vpc_id"]}


def test_health_route(emulator):
    status, body = control(emulator, "/_ferry/health")
    assert status == 200 and body["status"] == "ok"
    status, _ = control(emulator, "/_ferry/nothing-here")
    assert status == 404


def test_exits_when_stdin_closes(tmp_path):
    ready_file = tmp_path / "ready.json"
    proc = launch(ready_file)
    try:
        wait_ready(proc, ready_file)
        proc.stdin.close()
        assert proc.wait(timeout=15) == 0
        assert b"ferry-emulator ready" in proc.stderr.read()
        assert not ready_file.exists()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_exits_on_sigterm(tmp_path):
    ready_file = tmp_path / "ready.json"
    proc = launch(ready_file)
    try:
        wait_ready(proc, ready_file)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


# --------------------------------------------------------------------------
# tasks


def test_run_task_reports_every_container_running(emulator):
    ecs = client(emulator, "ecs")
    cluster = unique("cluster")
    ecs.create_cluster(clusterName=cluster)
    td = register(ecs, unique("migrate"))
    task = start_migration(emulator, ecs, cluster, td["family"])

    described = ecs.describe_tasks(cluster=cluster, tasks=[task["taskArn"]])["tasks"][0]
    for t in (task, described):
        assert t["lastStatus"] == "RUNNING" and t["desiredStatus"] == "RUNNING"
        assert t["startedBy"] == STARTED_BY
        assert t["taskDefinitionArn"] == td["taskDefinitionArn"]
        for key in ("createdAt", "pullStartedAt", "startedAt"):
            assert key in t, key
        assert "stopCode" not in t and "stoppedAt" not in t
        assert [c["name"] for c in t["containers"]] == ["app", "log-router"]
        for c, d in zip(t["containers"], td["containerDefinitions"]):
            assert c["image"] == d["image"]
            assert c["lastStatus"] == "RUNNING"
            assert "exitCode" not in c
            assert c["taskArn"] == t["taskArn"]
    # polling does not make the task stop by itself (moto's ManagedState would)
    for _ in range(6):
        again = ecs.describe_tasks(cluster=cluster, tasks=[task["taskArn"]])["tasks"][0]
    assert again["lastStatus"] == "RUNNING"
    assert ecs.list_tasks(cluster=cluster, startedBy=STARTED_BY)["taskArns"] == [task["taskArn"]]


def test_stop_with_exit_code(emulator):
    ecs = client(emulator, "ecs")
    cluster = unique("cluster")
    ecs.create_cluster(clusterName=cluster)
    td = register(ecs, unique("migrate"))
    task = start_migration(emulator, ecs, cluster, td["family"])

    stopped = ecs.stop_task(cluster=cluster, task=task["taskArn"], reason="ferry-emulator:exit=1")["task"]
    described = ecs.describe_tasks(cluster=cluster, tasks=[task["taskArn"]])["tasks"][0]
    for t in (stopped, described):
        assert t["lastStatus"] == "STOPPED" and t["desiredStatus"] == "STOPPED"
        assert t["stopCode"] == "EssentialContainerExited"
        assert t["stoppedReason"] == "Essential container in task exited"
        for key in ("stoppedAt", "stoppingAt", "executionStoppedAt", "startedAt"):
            assert key in t, key
        assert [c["exitCode"] for c in t["containers"]] == [1, 1]
        assert {c["lastStatus"] for c in t["containers"]} == {"STOPPED"}
    # stopped tasks leave the default (RUNNING) ListTasks, stay under STOPPED
    assert ecs.list_tasks(cluster=cluster)["taskArns"] == []
    assert ecs.list_tasks(cluster=cluster, desiredStatus="STOPPED")["taskArns"] == [task["taskArn"]]
    # a second StopTask changes nothing, as in ECS
    again = ecs.stop_task(cluster=cluster, task=task["taskArn"], reason="ferry-emulator:exit=0")["task"]
    assert [c["exitCode"] for c in again["containers"]] == [1, 1]


def test_stop_with_exit_zero(emulator):
    ecs = client(emulator, "ecs")
    cluster = unique("cluster")
    ecs.create_cluster(clusterName=cluster)
    td = register(ecs, unique("migrate"))
    task = start_migration(emulator, ecs, cluster, td["family"])
    ecs.stop_task(cluster=cluster, task=task["taskArn"].split("/")[-1], reason="ferry-emulator:exit=0")
    t = ecs.describe_tasks(cluster=cluster, tasks=[task["taskArn"]])["tasks"][0]
    assert t["stopCode"] == "EssentialContainerExited"
    assert [c["exitCode"] for c in t["containers"]] == [0, 0]


def test_stop_failed_to_start_has_no_exit_code(emulator):
    ecs = client(emulator, "ecs")
    cluster = unique("cluster")
    ecs.create_cluster(clusterName=cluster)
    td = register(ecs, unique("migrate"))
    task = start_migration(emulator, ecs, cluster, td["family"])
    ecs.stop_task(cluster=cluster, task=task["taskArn"], reason="ferry-emulator:failed-to-start")
    t = ecs.describe_tasks(cluster=cluster, tasks=[task["taskArn"]])["tasks"][0]
    assert t["lastStatus"] == "STOPPED"
    assert t["stopCode"] == "TaskFailedToStart"
    assert t["stoppedReason"].startswith("CannotPullContainerError: pull image manifest has been retried 5 time(s)")
    assert td["containerDefinitions"][0]["image"] in t["stoppedReason"]
    assert "startedAt" not in t
    for c in t["containers"]:
        assert "exitCode" not in c
        assert c["reason"].startswith("CannotPullContainerError:")
        assert c["lastStatus"] == "STOPPED"


def test_plain_stop_is_user_initiated(emulator):
    ecs = client(emulator, "ecs")
    cluster = unique("cluster")
    ecs.create_cluster(clusterName=cluster)
    td = register(ecs, unique("migrate"))
    task = start_migration(emulator, ecs, cluster, td["family"])
    ecs.stop_task(cluster=cluster, task=task["taskArn"], reason="ferry: migration timed out")
    t = ecs.describe_tasks(cluster=cluster, tasks=[task["taskArn"]])["tasks"][0]
    assert t["stopCode"] == "UserInitiated"
    assert t["stoppedReason"] == "ferry: migration timed out"
    assert [c["exitCode"] for c in t["containers"]] == [137, 137]


def test_bad_directive_and_unknown_task_are_client_errors(emulator):
    ecs = client(emulator, "ecs")
    cluster = unique("cluster")
    ecs.create_cluster(clusterName=cluster)
    td = register(ecs, unique("migrate"))
    task = start_migration(emulator, ecs, cluster, td["family"])
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.stop_task(cluster=cluster, task=task["taskArn"], reason="ferry-emulator:exit=one")
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.stop_task(cluster=cluster, task=task["taskArn"], reason="ferry-emulator:explode")
    assert ecs.describe_tasks(cluster=cluster, tasks=[task["taskArn"]])["tasks"][0]["lastStatus"] == "RUNNING"
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.stop_task(cluster=cluster, task="0123456789abcdef0123456789abcdef", reason="x")
    missing = f"arn:aws:ecs:{REGION}:123456789012:task/{cluster}/ffffffffffffffffffffffffffffffff"
    out = ecs.describe_tasks(cluster=cluster, tasks=[task["taskArn"], missing])
    assert [t["taskArn"] for t in out["tasks"]] == [task["taskArn"]]
    assert out["failures"] == [{"arn": missing, "reason": "MISSING"}]


def test_register_task_definition_keeps_every_field(emulator):
    ecs = client(emulator, "ecs")
    family = unique("api")
    td = register(
        ecs,
        family,
        runtimePlatform={"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
        ephemeralStorage={"sizeInGiB": 30},
        enableFaultInjection=True,
        tags=[{"key": "ferry:release", "value": "r1"}],
    )
    described = ecs.describe_task_definition(taskDefinition=td["taskDefinitionArn"], include=["TAGS"])
    got = described["taskDefinition"]
    assert got["enableFaultInjection"] is True
    assert got["runtimePlatform"]["cpuArchitecture"] == "ARM64"
    assert got["ephemeralStorage"] == {"sizeInGiB": 30}
    assert "registeredAt" in got
    assert described["tags"] == [{"key": "ferry:release", "value": "r1"}]


# --------------------------------------------------------------------------
# services and deployments


def make_service(emulator, ecs, rollback: bool = True) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    cluster = unique("cluster")
    name = unique("web")
    ecs.create_cluster(clusterName=cluster)
    family = unique("web")
    v1 = register(ecs, family, image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:1.0.0")
    service = ecs.create_service(
        cluster=cluster,
        serviceName=name,
        taskDefinition=v1["taskDefinitionArn"],
        desiredCount=2,
        launchType="FARGATE",
        networkConfiguration=network(emulator),
        deploymentConfiguration={
            "deploymentCircuitBreaker": {"enable": True, "rollback": rollback},
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
        },
    )["service"]
    # let the first deployment settle, as it would in ECS
    status, _ = control(emulator, "/_ferry/deployments/finish", {"cluster": cluster, "service": name, "outcome": "COMPLETED"})
    assert status == 200
    return cluster, name, v1, service


def describe_service(ecs, cluster: str, name: str) -> dict[str, Any]:
    return ecs.describe_services(cluster=cluster, services=[name])["services"][0]


def test_create_service_keeps_deployment_configuration(emulator):
    ecs = client(emulator, "ecs")
    cluster, name, v1, created = make_service(emulator, ecs)
    for svc in (created, describe_service(ecs, cluster, name)):
        assert svc["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
        assert svc["deploymentConfiguration"]["maximumPercent"] == 200
        assert svc["taskDefinition"] == v1["taskDefinitionArn"]
        assert "createdAt" in svc
    svc = describe_service(ecs, cluster, name)
    assert len(svc["deployments"]) == 1
    assert svc["deployments"][0]["rolloutState"] == "COMPLETED"
    assert svc["runningCount"] == 2 and svc["pendingCount"] == 0


def test_force_new_deployment_then_complete(emulator):
    ecs = client(emulator, "ecs")
    cluster, name, v1, _ = make_service(emulator, ecs)
    old_id = describe_service(ecs, cluster, name)["deployments"][0]["id"]
    v2 = register(ecs, v1["family"], image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:1.1.0")

    updated = ecs.update_service(
        cluster=cluster,
        service=name,
        taskDefinition=f"{v2['family']}:{v2['revision']}",  # short form: stored as the full ARN
        forceNewDeployment=True,
    )["service"]
    svc = describe_service(ecs, cluster, name)
    for s in (updated, svc):
        assert s["taskDefinition"] == v2["taskDefinitionArn"]
        primary, old = s["deployments"]
        assert primary["status"] == "PRIMARY" and old["status"] == "ACTIVE"
        assert old["id"] == old_id and old["taskDefinition"] == v1["taskDefinitionArn"]
        assert primary["id"] != old_id
        assert primary["id"].startswith("ecs-svc/") and len(primary["id"].split("/")[1]) == 19
        assert primary["taskDefinition"] == v2["taskDefinitionArn"]
        assert primary["rolloutState"] == "IN_PROGRESS"
        assert primary["rolloutStateReason"] == f"ECS deployment {primary['id']} in progress."
        assert primary["desiredCount"] == 2 and primary["runningCount"] == 0 and primary["pendingCount"] == 2
        assert primary["launchType"] == "FARGATE"
        assert primary["networkConfiguration"] == network(emulator)
        assert s["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    new_id = svc["deployments"][0]["id"]

    status, body = control(
        emulator,
        "/_ferry/deployments/finish",
        {"cluster": cluster, "service": name, "deploymentId": new_id, "outcome": "COMPLETED"},
    )
    assert status == 200, body
    assert body["deployment"]["id"] == new_id and body["deployment"]["rolloutState"] == "COMPLETED"
    assert isinstance(body["deployment"]["updatedAt"], float)
    svc = describe_service(ecs, cluster, name)
    assert [d["id"] for d in svc["deployments"]] == [new_id]
    done = svc["deployments"][0]
    assert done["rolloutState"] == "COMPLETED"
    assert done["rolloutStateReason"] == f"ECS deployment {new_id} completed."
    assert done["runningCount"] == 2 and done["pendingCount"] == 0
    assert svc["runningCount"] == 2
    assert any("steady state" in e["message"] for e in svc["events"])

    # finishing it again is a conflict; unknown ids are 404
    status, _ = control(emulator, "/_ferry/deployments/finish", {"cluster": cluster, "service": name, "deploymentId": new_id, "outcome": "FAILED"})
    assert status == 409
    status, _ = control(emulator, "/_ferry/deployments/finish", {"cluster": cluster, "service": name, "deploymentId": "ecs-svc/1", "outcome": "COMPLETED"})
    assert status == 404
    status, _ = control(emulator, "/_ferry/deployments/finish", {"cluster": cluster, "service": name, "outcome": "MAYBE"})
    assert status == 400


def test_update_with_same_task_definition_and_no_force_starts_nothing(emulator):
    ecs = client(emulator, "ecs")
    cluster, name, v1, _ = make_service(emulator, ecs)
    before = describe_service(ecs, cluster, name)["deployments"]
    ecs.update_service(cluster=cluster, service=name, taskDefinition=v1["taskDefinitionArn"])
    after = describe_service(ecs, cluster, name)["deployments"]
    assert [d["id"] for d in after] == [d["id"] for d in before]
    ecs.update_service(cluster=cluster, service=name, desiredCount=3)
    svc = describe_service(ecs, cluster, name)
    assert svc["desiredCount"] == 3 and svc["deployments"][0]["desiredCount"] == 3
    assert len(svc["deployments"]) == 1


def test_failed_deployment_rolls_back(emulator):
    ecs = client(emulator, "ecs")
    cluster, name, v1, _ = make_service(emulator, ecs, rollback=True)
    old_id = describe_service(ecs, cluster, name)["deployments"][0]["id"]
    v2 = register(ecs, v1["family"], image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:2.0.0")
    ecs.update_service(cluster=cluster, service=name, taskDefinition=v2["taskDefinitionArn"], forceNewDeployment=True)
    new_id = describe_service(ecs, cluster, name)["deployments"][0]["id"]

    status, body = control(
        emulator,
        "/_ferry/deployments/finish",
        {"cluster": cluster, "service": name, "deploymentId": new_id, "outcome": "FAILED"},
    )
    assert status == 200, body
    assert body["deployment"]["rolloutState"] == "FAILED"
    assert body["rollbackDeployment"]["taskDefinition"] == v1["taskDefinitionArn"]

    svc = describe_service(ecs, cluster, name)
    assert svc["taskDefinition"] == v1["taskDefinitionArn"]
    by_id = {d["id"]: d for d in svc["deployments"]}
    failed = by_id[new_id]
    assert failed["status"] == "ACTIVE"
    assert failed["rolloutState"] == "FAILED"
    assert failed["rolloutStateReason"] == "ECS deployment circuit breaker: tasks failed to start."
    assert failed["failedTasks"] > 0
    rollback = svc["deployments"][0]
    assert rollback["status"] == "PRIMARY" and rollback["id"] not in (old_id, new_id)
    assert rollback["taskDefinition"] == v1["taskDefinitionArn"]
    assert rollback["rolloutState"] == "IN_PROGRESS"
    assert old_id in rollback["rolloutStateReason"]
    # a deployment of its own, begun after the one that failed (a resumed rollout reads this)
    assert rollback["createdAt"] > failed["createdAt"]

    # the rollback deployment completes like any other
    status, _ = control(emulator, "/_ferry/deployments/finish", {"cluster": cluster, "service": name, "outcome": "COMPLETED"})
    assert status == 200
    svc = describe_service(ecs, cluster, name)
    assert [d["id"] for d in svc["deployments"]] == [rollback["id"]]
    assert svc["deployments"][0]["taskDefinition"] == v1["taskDefinitionArn"]


def test_failed_deployment_without_rollback_stays_failed(emulator):
    ecs = client(emulator, "ecs")
    cluster, name, v1, _ = make_service(emulator, ecs, rollback=False)
    v2 = register(ecs, v1["family"], image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:2.0.0")
    ecs.update_service(cluster=cluster, service=name, taskDefinition=v2["taskDefinitionArn"])
    status, body = control(
        emulator,
        "/_ferry/deployments/finish",
        {"cluster": cluster, "service": name, "outcome": "FAILED", "reason": "ECS deployment circuit breaker: tasks failed to start."},
    )
    assert status == 200 and "rollbackDeployment" not in body
    svc = describe_service(ecs, cluster, name)
    assert svc["taskDefinition"] == v2["taskDefinitionArn"]
    primary, old = svc["deployments"]
    assert primary["status"] == "PRIMARY" and primary["rolloutState"] == "FAILED"
    assert old["status"] == "ACTIVE" and old["taskDefinition"] == v1["taskDefinitionArn"]


# --------------------------------------------------------------------------
# refusals: what ECS refuses (ecs_behaviours section 6) and CloudFormation's tags


def refused(info: dict[str, Any], action: str, body: dict[str, Any]) -> tuple[int, str, str]:
    """One raw awsJson1_1 ECS call that must fail: (HTTP status, error code, message).

    Raw, because botocore refuses some of these requests before sending them
    (an empty tag key is below the model's minimum length)."""
    try:
        answer = raw_ecs(info, action, body)
    except urllib.error.HTTPError as err:
        error = json.loads(err.read())
        return err.code, error.get("__type", "").rsplit("#", 1)[-1], error.get("message") or error.get("Message") or ""
    raise AssertionError(f"{action} was accepted: {json.dumps(answer)[:300]}")


def run_body(info: dict[str, Any], cluster: str, task_definition: str, **extra: Any) -> dict[str, Any]:
    return {
        "cluster": cluster,
        "taskDefinition": task_definition,
        "launchType": "FARGATE",
        "networkConfiguration": network(info),
        "startedBy": STARTED_BY,
        **extra,
    }


def register_body(family: str, **extra: Any) -> dict[str, Any]:
    return {
        "family": family,
        "requiresCompatibilities": ["FARGATE"],
        "networkMode": "awsvpc",
        "cpu": "256",
        "memory": "512",
        "containerDefinitions": [{"name": "app", "image": "nginx:1.25", "essential": True}],
        **extra,
    }


def test_reserved_aws_tag_keys_are_refused_in_any_case_on_register_run_and_tag_resource(emulator):
    ecs = client(emulator, "ecs")
    cluster = unique("cluster")
    ecs.create_cluster(clusterName=cluster)
    td = register(ecs, unique("api"), tags=[{"key": "team", "value": "shop"}])
    for key in ("aws:cloudformation:stack-name", "AWS:x", "Aws:owner", "aWs:"):
        tags = [{"key": "team", "value": "shop"}, {"key": key, "value": "x"}]
        for action, body in (
            ("RegisterTaskDefinition", register_body(unique("api"), tags=tags)),
            ("RunTask", run_body(emulator, cluster, td["taskDefinitionArn"], tags=tags)),
            ("TagResource", {"resourceArn": td["taskDefinitionArn"], "tags": tags}),
        ):
            status, code, message = refused(emulator, action, body)
            assert (status, code) == (400, "InvalidParameterException"), (action, key)
            assert "Tag key must not start with aws:" in message, message
    # nothing changed, and keys that merely look alike are anyone's
    assert ecs.list_tags_for_resource(resourceArn=td["taskDefinitionArn"])["tags"] == [{"key": "team", "value": "shop"}]
    assert not ecs.list_tasks(cluster=cluster)["taskArns"]
    alike = [{"key": k, "value": "v"} for k in ("awsome", "aws-team", "aws_cost", "team:aws:x")]
    ecs.tag_resource(resourceArn=td["taskDefinitionArn"], tags=alike)
    assert register(ecs, unique("api"), tags=alike)["taskDefinitionArn"]


def test_tags_over_the_ecs_limits_or_with_other_characters_are_refused(emulator):
    ecs = client(emulator, "ecs")
    family = unique("api")
    bad = {
        "51 tags": [{"key": f"k{i}", "value": "v"} for i in range(51)],
        "key of 129": [{"key": "k" * 129, "value": "v"}],
        "empty key": [{"key": "", "value": "v"}],
        "value of 257": [{"key": "k", "value": "v" * 257}],
        "key with !": [{"key": "team!", "value": "v"}],
        "value with ;": [{"key": "k", "value": "a;b"}],
    }
    for what, tags in bad.items():
        status, code, message = refused(emulator, "RegisterTaskDefinition", register_body(family, tags=tags))
        assert (status, code) == (400, "InvalidParameterException"), what
        assert "validation error" in message, (what, message)
    assert ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"] == [], "nothing registered"
    edge = [{"key": f"k{i}", "value": "v"} for i in range(47)] + [
        {"key": "k" * 128, "value": "v" * 256},
        {"key": "Ünïcode key with spaces", "value": "+-=._:/@ ok"},
        {"key": "empty", "value": ""},
    ]
    td = register(ecs, family, tags=edge)
    assert len(ecs.list_tags_for_resource(resourceArn=td["taskDefinitionArn"])["tags"]) == 50


def test_an_inactive_revision_runs_no_task_and_no_service_moves_to_it(emulator):
    ecs = client(emulator, "ecs")
    cluster, name, v1, _ = make_service(emulator, ecs)
    v2 = register(ecs, v1["family"])
    ecs.deregister_task_definition(taskDefinition=v2["taskDefinitionArn"])

    status, code, message = refused(
        emulator, "UpdateService", {"cluster": cluster, "service": name, "taskDefinition": v2["taskDefinitionArn"]}
    )
    assert (status, code, message) == (400, "ClientException", "TaskDefinition is inactive")
    assert describe_service(ecs, cluster, name)["taskDefinition"] == v1["taskDefinitionArn"]
    assert len(describe_service(ecs, cluster, name)["deployments"]) == 1, "no deployment started"

    status, code, message = refused(emulator, "RunTask", run_body(emulator, cluster, v2["taskDefinitionArn"]))
    assert (status, code, message) == (400, "InvalidParameterException", "TaskDefinition is inactive")
    status, code, _ = refused(
        emulator,
        "CreateService",
        {"cluster": cluster, "serviceName": unique("web"), "taskDefinition": v2["taskDefinitionArn"], "desiredCount": 1},
    )
    assert code == "ClientException"

    # the family alone is its latest ACTIVE revision: v1, not the deregistered v2
    assert ecs.describe_task_definition(taskDefinition=v1["family"])["taskDefinition"]["revision"] == v1["revision"]
    task = ecs.run_task(**run_body(emulator, cluster, v1["family"]))["tasks"][0]
    assert task["taskDefinitionArn"] == v1["taskDefinitionArn"]
    # a service on an INACTIVE revision may still scale
    ecs.deregister_task_definition(taskDefinition=v1["taskDefinitionArn"])
    assert ecs.update_service(cluster=cluster, service=name, desiredCount=3)["service"]["desiredCount"] == 3
    with pytest.raises(ecs.exceptions.ClientException):
        ecs.describe_task_definition(taskDefinition=v1["family"])  # no ACTIVE revision left


def test_run_task_refuses_a_bad_count_started_by_overrides_or_propagate_tags(emulator):
    ecs = client(emulator, "ecs")
    cluster = unique("cluster")
    ecs.create_cluster(clusterName=cluster)
    td = register(ecs, unique("migrate"))["taskDefinitionArn"]
    big = {"containerOverrides": [{"name": "app", "environment": [{"name": "BLOB", "value": "x" * 8200}]}]}
    cases = {
        "count 0": ({"count": 0}, "count must be between 1 and 10"),
        "count 11": ({"count": 11}, "count must be between 1 and 10"),
        "startedBy of 129": ({"startedBy": "ferry/" + "a" * 123}, "startedBy longer than 128."),
        "startedBy with a space": ({"startedBy": "ferry shop"}, "startedBy may contain only"),
        "startedBy with a colon": ({"startedBy": "ferry:shop"}, "startedBy may contain only"),
        "overrides over 8192": ({"overrides": big}, "Container Overrides length must be at most 8192"),
        "propagateTags SERVICE": ({"propagateTags": "SERVICE"}, "propagateTags SERVICE"),
    }
    for what, (extra, words) in cases.items():
        status, code, message = refused(emulator, "RunTask", run_body(emulator, cluster, td, **extra))
        assert (status, code) == (400, "InvalidParameterException"), what
        assert words in message, (what, message)
    assert not ecs.list_tasks(cluster=cluster)["taskArns"], "no task started"
    # ferry's own startedBy, `ferry/<app>/<env>/<16 hex>`, at the 128 limit: `/` is allowed
    longest = "ferry/" + "a" * 64 + "/" + "b" * 40 + "/0123456789abcdef"
    assert len(longest) == 128
    tasks = ecs.run_task(**run_body(emulator, cluster, td, startedBy=longest, count=10))["tasks"]
    assert len(tasks) == 10 and {t["startedBy"] for t in tasks} == {longest}


def test_register_task_definition_refuses_a_bad_family_or_container_name(emulator):
    for body in (
        register_body("shop/api"),
        register_body("a" * 256),
        register_body(unique("api"), containerDefinitions=[{"name": "app.web", "image": "nginx", "memory": 128}]),
    ):
        status, code, message = refused(emulator, "RegisterTaskDefinition", body)
        assert (status, code) == (400, "ClientException"), body["family"]
        assert "are allowed" in message, message
    assert client(emulator, "ecs").register_task_definition(**register_body("A_" + "b" * 253))["taskDefinition"]


def cloudformation_template() -> dict[str, Any]:
    family = unique("cfn-api")
    return {
        "Resources": {
            "Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {"ClusterName": unique("cfn"), "Tags": [{"Key": "app", "Value": "shop"}]}},
            "Api": {
                "Type": "AWS::ECS::TaskDefinition",
                "Properties": {
                    "Family": family,
                    "NetworkMode": "awsvpc",
                    "RequiresCompatibilities": ["FARGATE"],
                    "Cpu": "256",
                    "Memory": "512",
                    "ContainerDefinitions": [{"Name": "api", "Image": "nginx:1.25", "Essential": True}],
                    "Tags": [{"Key": "team", "Value": "shop"}],
                },
            },
            "Service": {
                "Type": "AWS::ECS::Service",
                "Properties": {
                    "ServiceName": unique("api"),
                    "Cluster": {"Ref": "Cluster"},
                    "TaskDefinition": {"Ref": "Api"},
                    "DesiredCount": 1,
                    "LaunchType": "FARGATE",
                    "Tags": [{"Key": "team", "Value": "shop"}],
                },
            },
        }
    }


def test_cloudformation_tags_what_it_creates_though_no_caller_may(emulator):
    import cfn

    ecs = client(emulator, "ecs")
    stack_id = f"arn:aws:cloudformation:{REGION}:123456789012:stack/sample/00000000-0000-4000-8000-000000000000"

    def system(logical_id: str) -> list[dict[str, str]]:
        return [
            {"key": "aws:cloudformation:stack-name", "value": "sample"},
            {"key": "aws:cloudformation:stack-id", "value": stack_id},
            {"key": "aws:cloudformation:logical-id", "value": logical_id},
        ]

    every_type = {"AWS::ECS::Cluster", "AWS::ECS::TaskDefinition", "AWS::ECS::Service"}
    for tagged in (cfn.STACK_TAGGED_TYPES, every_type):
        created = cfn.apply(
            cloudformation_template(),
            lambda service: client(emulator, service),
            region=REGION,
            account_id="123456789012",
            stack_name="sample",
            stack_tags_on=tagged,
        )["physical_ids"]
        cluster_arn = ecs.describe_clusters(clusters=[created["Cluster"]])["clusters"][0]["clusterArn"]
        tags = {
            "Cluster": ecs.list_tags_for_resource(resourceArn=cluster_arn)["tags"],
            "Api": ecs.describe_task_definition(taskDefinition=created["Api"], include=["TAGS"])["tags"],
            "Service": ecs.list_tags_for_resource(resourceArn=created["Service"])["tags"],
        }
        own = {"Cluster": [{"key": "app", "value": "shop"}], "Api": [{"key": "team", "value": "shop"}], "Service": [{"key": "team", "value": "shop"}]}
        for logical_id, kind in (("Cluster", "AWS::ECS::Cluster"), ("Api", "AWS::ECS::TaskDefinition"), ("Service", "AWS::ECS::Service")):
            expected = own[logical_id] + (system(logical_id) if kind in tagged else [])
            assert tags[logical_id] == expected, (tagged, logical_id)
    # the caller itself still may not add them, nor copy them onto a new revision
    status, code, _ = refused(emulator, "RegisterTaskDefinition", register_body(unique("copy"), tags=system("Api")))
    assert (status, code) == (400, "InvalidParameterException")


# --------------------------------------------------------------------------
# wire format: what a strict awsJson1_1 client (the AWS SDK for Rust) sees

_ECS_MODEL = botocore.session.get_session().get_service_model("ecs")


def check_shape(value: Any, shape, path: str, problems: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected object, got {value!r}")
            return
        for key, item in value.items():
            if key not in shape.members:
                continue  # unknown members are ignored by SDKs
            check_shape(item, shape.members[key], f"{path}.{key}", problems)
    elif kind == "list":
        if not isinstance(value, list):
            problems.append(f"{path}: expected array, got {value!r}")
            return
        for i, item in enumerate(value):
            check_shape(item, shape.member, f"{path}[{i}]", problems)
    elif kind == "map":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected object, got {value!r}")
            return
        for key, item in value.items():
            check_shape(item, shape.value, f"{path}.{key}", problems)
    elif kind == "string":
        if not isinstance(value, str):
            problems.append(f"{path}: expected string, got {value!r}")
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{path}: expected integer, got {value!r}")
    elif kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{path}: expected number, got {value!r}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{path}: expected boolean, got {value!r}")
    elif kind == "timestamp":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{path}: expected epoch seconds, got {value!r}")


def assert_wire_ok(info, action: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = raw_ecs(info, action, body)
    problems: list[str] = []
    check_shape(answer, _ECS_MODEL.operation_model(action).output_shape, action, problems)
    assert not problems, "\n".join(problems)
    return answer


def test_wire_types_match_the_ecs_model(emulator):
    cluster = unique("wire")
    assert_wire_ok(emulator, "CreateCluster", {"clusterName": cluster})
    family = unique("wire")
    td = assert_wire_ok(
        emulator,
        "RegisterTaskDefinition",
        {
            "family": family,
            "requiresCompatibilities": ["FARGATE"],
            "networkMode": "awsvpc",
            "cpu": "256",
            "memory": "512",
            "containerDefinitions": [
                {"name": "app", "image": "repo/app@sha256:" + "a" * 64, "cpu": 128, "memory": 256, "memoryReservation": 128},
                {"name": "side", "image": "repo/side:1", "memory": 256},
            ],
        },
    )["taskDefinition"]
    assert isinstance(td["registeredAt"], (int, float))
    assert_wire_ok(emulator, "DescribeTaskDefinition", {"taskDefinition": family, "include": ["TAGS"]})
    assert_wire_ok(emulator, "ListTaskDefinitions", {"familyPrefix": family})
    assert_wire_ok(emulator, "DescribeClusters", {"clusters": [cluster]})
    nc = network(emulator)
    run = assert_wire_ok(
        emulator,
        "RunTask",
        {
            "cluster": cluster,
            "taskDefinition": family,
            "launchType": "FARGATE",
            "startedBy": STARTED_BY,
            "networkConfiguration": nc,
            "tags": [{"key": "ferry:release", "value": "r1"}],
            "overrides": {"containerOverrides": [{"name": "app", "command": ["migrate"], "environment": [{"name": "A", "value": "1"}]}]},
        },
    )
    task = run["tasks"][0]
    assert isinstance(task["createdAt"], (int, float)) and isinstance(task["startedAt"], (int, float))
    assert task["containers"][0]["cpu"] == "128" and task["containers"][0]["memory"] == "256"
    assert task["containers"][0]["imageDigest"] == "sha256:" + "a" * 64
    arn = task["taskArn"]
    assert_wire_ok(emulator, "DescribeTasks", {"cluster": cluster, "tasks": [arn], "include": ["TAGS"]})
    assert_wire_ok(emulator, "ListTasks", {"cluster": cluster, "startedBy": STARTED_BY})
    stopped = assert_wire_ok(emulator, "StopTask", {"cluster": cluster, "task": arn, "reason": "ferry-emulator:exit=3"})["task"]
    assert isinstance(stopped["stoppedAt"], (int, float))
    described = assert_wire_ok(emulator, "DescribeTasks", {"cluster": cluster, "tasks": [arn]})["tasks"][0]
    assert [c["exitCode"] for c in described["containers"]] == [3, 3]

    service = unique("wire")
    assert_wire_ok(
        emulator,
        "CreateService",
        {
            "cluster": cluster,
            "serviceName": service,
            "taskDefinition": family,
            "desiredCount": 1,
            "launchType": "FARGATE",
            "networkConfiguration": nc,
            "deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
        },
    )
    assert_wire_ok(emulator, "UpdateService", {"cluster": cluster, "service": service, "forceNewDeployment": True})
    assert_wire_ok(emulator, "ListServices", {"cluster": cluster})
    assert_wire_ok(emulator, "ListTagsForResource", {"resourceArn": td["taskDefinitionArn"]})
    status, _ = control(emulator, "/_ferry/deployments/finish", {"cluster": cluster, "service": service, "outcome": "FAILED"})
    assert status == 200
    described = assert_wire_ok(emulator, "DescribeServices", {"cluster": cluster, "services": [service]})
    svc = described["services"][0]
    assert all(isinstance(d["createdAt"], (int, float)) for d in svc["deployments"])
    assert isinstance(svc["createdAt"], (int, float))
    assert all(isinstance(e["createdAt"], (int, float)) for e in svc["events"])
    assert_wire_ok(emulator, "DeregisterTaskDefinition", {"taskDefinition": td["taskDefinitionArn"]})
