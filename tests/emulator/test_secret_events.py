"""Self-test of Secrets Manager's ``Secret Label Updated`` event in the router
(router.py): emitted when a staging label other than AWSPENDING and AWSPREVIOUS
moves to a new version, in the shape the Secrets Manager User Guide documents
("Secret Label Updated event"), and delivered to ferry-deploy by its rule in
template.yaml only for AWSCURRENT.

Run with: .venv/bin/python -m pytest tests/emulator -q -p no:cacheprovider

The emulator runs with the router pointed at a fake Lambda Invoke API in this
process (test_bake_window.FakeFunctions), which records what it receives.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import router  # noqa: E402
from test_bake_window import FakeFunctions, client, router_log  # noqa: E402
from test_ecs_behaviours import control, launch, wait_ready  # noqa: E402

ROOT = HERE.parent.parent
TEMPLATE = ROOT / "template.yaml"
DEPLOY = "/2015-03-31/functions/ferry-deploy/invocations"


@pytest.fixture(scope="module")
def functions():
    fake = FakeFunctions()
    yield fake
    fake.server.shutdown()


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory, functions: FakeFunctions):
    ready_file = tmp_path_factory.mktemp("secrets") / "ready.json"
    proc = launch(ready_file, "--router", str(TEMPLATE), "--functions-url", functions.url)
    try:
        yield wait_ready(proc, ready_file)
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except Exception:
            proc.kill()
            proc.wait()


def secret_events(info: dict[str, Any], since: int, name: str) -> list[dict[str, Any]]:
    return [
        e
        for e in router_log(info, since)
        if e["kind"] == "event" and e["event"]["detail-type"] == "Secret Label Updated" and e["event"]["detail"]["name"] == name
    ]


def mark(info: dict[str, Any]) -> int:
    return control(info, "/_ferry/router/status")[1]["seq"]


def settled(info: dict[str, Any]) -> None:
    deadline = time.time() + 10
    while time.time() < deadline:
        if not control(info, "/_ferry/router/status")[1]["in_flight"]:
            return
        time.sleep(0.02)
    raise AssertionError("the router did not settle")


def delivered(functions: FakeFunctions, name: str) -> list[dict[str, Any]]:
    with functions.lock:
        return [
            r["body"]
            for r in functions.received
            if r["path"] == DEPLOY and isinstance(r["body"], dict) and r["body"].get("detail", {}).get("name") == name
        ]


# ----------------------------------------------------------- without an emulator


def test_only_announced_labels_that_moved_are_reported():
    before = {"AWSCURRENT": "v1", "AWSPREVIOUS": "v0", "blue": "v1"}
    after = {"AWSCURRENT": "v2", "AWSPREVIOUS": "v1", "AWSPENDING": "v2", "blue": "v1", "green": "v2"}
    assert router.moved_secret_labels(before, after) == [("AWSCURRENT", "v2"), ("green", "v2")]
    assert router.moved_secret_labels(after, after) == []


def test_the_event_has_the_documented_shape():
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop/prod/db-AbC123"
    event = router.secret_label_updated("123456789012", "eu-west-1", arn, "shop/prod/db", "AWSCURRENT", "v2")
    fixture = json.loads((ROOT / "events" / "secret-label-updated.json").read_text())
    assert set(event) == set(fixture)
    assert set(event["detail"]) == set(fixture["detail"]) == {"name", "labelUpdated", "versionId"}
    assert (event["source"], event["detail-type"], event["resources"]) == ("aws.secretsmanager", "Secret Label Updated", [arn])
    assert event["detail"] == {"name": "shop/prod/db", "labelUpdated": "AWSCURRENT", "versionId": "v2"}


def test_ferry_deploy_takes_only_a_new_current_value():
    rules = [r for r in router.load_rules(str(TEMPLATE)) if r.binary == "ferry-deploy"]
    fixture = json.loads((ROOT / "events" / "secret-label-updated.json").read_text())
    assert [r.name for r in rules if router.matches(r.pattern, fixture)] == ["SecretValueChanged"]
    custom = {**fixture, "detail": {**fixture["detail"], "labelUpdated": "blue"}}
    assert not any(router.matches(r.pattern, custom) for r in router.load_rules(str(TEMPLATE)))


# -------------------------------------------------------------- through the emulator


def test_put_secret_value_moves_awscurrent_and_ferry_deploy_gets_the_event(emulator, functions):
    sm = client(emulator, "secretsmanager")
    name = f"selftest/{uuid.uuid4().hex[:8]}"
    created = sm.create_secret(Name=name, SecretString='{"url": "postgres://one"}')
    since = mark(emulator)
    put = sm.put_secret_value(SecretId=name, SecretString='{"url": "postgres://two"}')
    settled(emulator)

    (entry,) = secret_events(emulator, since, name)
    event = entry["event"]
    assert event["resources"] == [created["ARN"]]
    assert event["detail"] == {"name": name, "labelUpdated": "AWSCURRENT", "versionId": put["VersionId"]}
    assert (event["account"], event["region"]) == (emulator["account_id"], emulator["region"])
    assert entry["origin"] == "secretsmanager:PutSecretValue"
    assert entry["targets"] == ["DeployFunction/SecretValueChanged"]
    assert [b["detail"]["versionId"] for b in delivered(functions, name)] == [put["VersionId"]]


def test_update_secret_with_a_value_moves_awscurrent_without_one_nothing_moves(emulator):
    sm = client(emulator, "secretsmanager")
    name = f"selftest/{uuid.uuid4().hex[:8]}"
    sm.create_secret(Name=name, SecretString="one")
    since = mark(emulator)
    sm.update_secret(SecretId=name, Description="metadata only")
    updated = sm.update_secret(SecretId=name, SecretString="two")
    settled(emulator)
    assert [(e["event"]["detail"]["labelUpdated"], e["event"]["detail"]["versionId"], e["origin"]) for e in secret_events(emulator, since, name)] == [
        ("AWSCURRENT", updated["VersionId"], "secretsmanager:UpdateSecret")
    ]


def test_a_pending_version_is_announced_when_awscurrent_moves_to_it(emulator, functions):
    sm = client(emulator, "secretsmanager")
    name = f"selftest/{uuid.uuid4().hex[:8]}"
    created = sm.create_secret(Name=name, SecretString="one")
    since = mark(emulator)
    # a rotation's steps: the new value as AWSPENDING (no event), then finishSecret
    pending = sm.put_secret_value(SecretId=name, SecretString="two", VersionStages=["AWSPENDING"])
    settled(emulator)
    assert secret_events(emulator, since, name) == []
    sm.update_secret_version_stage(
        SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=pending["VersionId"], RemoveFromVersionId=created["VersionId"]
    )
    settled(emulator)
    assert [e["event"]["detail"]["versionId"] for e in secret_events(emulator, since, name)] == [pending["VersionId"]]
    assert len(delivered(functions, name)) == 1


def test_a_custom_label_is_announced_but_not_delivered_to_ferry(emulator, functions):
    sm = client(emulator, "secretsmanager")
    name = f"selftest/{uuid.uuid4().hex[:8]}"
    sm.create_secret(Name=name, SecretString="one")
    since = mark(emulator)
    blue = sm.put_secret_value(SecretId=name, SecretString="two", VersionStages=["blue"])
    settled(emulator)
    (entry,) = secret_events(emulator, since, name)
    assert entry["event"]["detail"] == {"name": name, "labelUpdated": "blue", "versionId": blue["VersionId"]}
    assert entry["targets"] == []
    assert delivered(functions, name) == []


def test_the_same_value_put_again_with_its_token_moves_nothing(emulator):
    sm = client(emulator, "secretsmanager")
    name = f"selftest/{uuid.uuid4().hex[:8]}"
    sm.create_secret(Name=name, SecretString="one")
    token = str(uuid.uuid4())
    since = mark(emulator)
    sm.put_secret_value(SecretId=name, SecretString="two", ClientRequestToken=token)
    sm.put_secret_value(SecretId=name, SecretString="two", ClientRequestToken=token)  # idempotent
    settled(emulator)
    assert [e["event"]["detail"]["versionId"] for e in secret_events(emulator, since, name)] == [token]
