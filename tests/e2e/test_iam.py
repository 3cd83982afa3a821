"""IAM in the loop, end to end: the running stack authorises every call of
ferry's functions against its role's policy in template.yaml
(tests/emulator/iam_behaviours.py). These tests change what a role may do,
through the same route the stack loads the template's policies by
(``POST /_ferry/iam``), and put it back afterwards:

* a role without ``kms:Decrypt``'s explicit Deny could read a SecureString
  value -- the AWS managed key ``aws/ssm`` lets every principal of the account
  decrypt -- and with it cannot;
* a gate whose role lost ``ecs:UpdateService`` cannot roll out a release: the
  release does not succeed, and the call log and the decisions name the
  action and the service.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import cfn
from conftest import IAM_APPS, release_id
from stack import REGION, TEMPLATE, Stack

API_KEY = "/shop/prod/api-key"  # the sample estate's SecureString (stack.py)


def signing_as(stack: Stack, binary: str, service: str) -> Any:
    """A client with the function's own credentials: its calls are authorised as its role's."""
    return boto3.client(
        service, endpoint_url=stack.endpoint, region_name=REGION, aws_access_key_id=binary,
        aws_secret_access_key="testing", config=Config(retries={"total_max_attempts": 1}),
    )


def without(template: dict[str, Any], function: str, sid: str, action: str | None = None) -> dict[str, Any]:
    """A copy of the template whose ``function`` lost statement ``sid`` (with
    ``action``: only that action of it; the statement goes with its last one)."""
    changed = copy.deepcopy(template)
    found = False
    for policy in changed["Resources"][function]["Properties"]["Policies"]:
        kept = []
        for statement in policy["Statement"]:
            if statement.get("Sid") != sid:
                kept.append(statement)
                continue
            found = True
            if action is None:
                continue
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert action in actions, f"{function} {sid} does not grant {action}"
            if len(actions) > 1:
                kept.append({**statement, "Action": [a for a in actions if a != action]})
        policy["Statement"] = kept
    assert found, f"{function} has no statement {sid}"
    return changed


@pytest.fixture
def template_policies(stack: Stack) -> Iterator[dict[str, dict[str, Any]]]:
    """template.yaml's policies as loaded; loaded again after the test, whatever it changed."""
    loaded = stack.iam_principals()
    yield loaded
    stack.load_iam(loaded)


@pytest.mark.expect_denials
def test_the_explicit_kms_deny_is_what_keeps_a_secure_string_unread(stack, template_policies):
    ssm = signing_as(stack, "ferry-deploy", "ssm")
    # what ferry does: existence, without decryption
    assert ssm.get_parameters(Names=[API_KEY], WithDecryption=False)["Parameters"][0]["Name"] == API_KEY
    with pytest.raises(ClientError) as denied:
        ssm.get_parameters(Names=[API_KEY], WithDecryption=True)
    error = denied.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert "is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:" in error["Message"], error
    assert "with an explicit deny in an identity-based policy" in error["Message"], error
    decision = [d for d in stack.iam_decisions() if d["caller"] == "ferry-deploy" and d["action"] == "kms:Decrypt"][-1]
    assert (decision["allowed"], decision["sid"]) == (False, "NeverDecrypt")

    # the same role without NeverDecrypt: the aws/ssm key policy lets it decrypt
    loosened = stack.iam_principals(without(cfn.load_template(str(TEMPLATE)), "DeployFunction", "NeverDecrypt"))
    stack.load_iam({"ferry-deploy": loosened["ferry-deploy"]}, replace=False)
    (parameter,) = ssm.get_parameters(Names=[API_KEY], WithDecryption=True)["Parameters"]
    assert parameter["Value"] == "sk-local-not-read-by-ferry"
    decision = [d for d in stack.iam_decisions() if d["caller"] == "ferry-deploy" and d["action"] == "kms:Decrypt"][-1]
    assert (decision["allowed"], decision["sid"]) == (True, "aws/ssm key policy")


@pytest.mark.expect_denials
def test_a_gate_whose_role_lost_update_service_cannot_roll_a_release_out(stack, mark, template_policies):
    app = "iam-gate"
    services = IAM_APPS[app]
    before = {s: d["taskDefinition"] for s, d in stack.services(f"{app}-prod", services).items()}
    crippled = stack.iam_principals(without(cfn.load_template(str(TEMPLATE)), "GateFunction", "ServicesInManagedClusters", "ecs:UpdateService"))
    stack.load_iam({"ferry-gate": crippled["ferry-gate"]}, replace=False)
    since = stack.control("/_ferry/iam")["decisions"]

    digest = stack.push(app, "1.0.0")
    stack.settle()  # the gate's invocation and Lambda's two retries, all denied

    record = stack.release(release_id(app, digest))
    assert record and record["state"] != "SUCCEEDED", record
    after = {s: d["taskDefinition"] for s, d in stack.services(f"{app}-prod", services).items()}
    assert after == before, "no service was rolled out"
    # the call log: the gate's UpdateService answered AccessDeniedException (400)
    updates = [c for c in mark.calls("ferry-gate") if c["operation"] == "ecs:UpdateService"]
    assert updates and {c["status"] for c in updates} == {400}, updates
    # the decisions: ecs:UpdateService on the service's ARN, no statement allows it
    denied = [d for d in stack.iam_decisions(since) if d["caller"] == "ferry-gate" and not d["allowed"]]
    service_arns = {f"arn:aws:ecs:{REGION}:123456789012:service/{app}-prod/{s}" for s in services}
    assert denied and {d["action"] for d in denied} == {"ecs:UpdateService"}, denied
    assert {d["resource"] for d in denied} <= service_arns and {d["effect"] for d in denied} == {"ImplicitDeny"}
    assert "because no identity-based policy allows the ecs:UpdateService action" in denied[0]["reason"]
    # and the gate said so: its answer names the error, the action and the service
    answers = [r.get("reply") or {} for r in mark.replies("ferry-gate")]
    refused = [a["error"]["message"] for a in answers if a.get("ok") is False and isinstance(a.get("error"), dict)]
    assert any("ecs:UpdateService failed (AccessDeniedException)" in m and f"service/{app}-prod/" in m for m in refused), json.dumps(answers)
