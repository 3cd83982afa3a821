"""Self-test of iam_behaviours.py: the policy evaluator (operators, set
operators, missing keys, explicit deny), the request-to-authorization mapping
of every operation ferry's functions make, the template's policies as the local
stack resolves them, the least-privilege report -- and, through a launched
emulator, denials answered as AWS answers them for each protocol (awsJson,
DynamoDB's, REST, CloudWatch's CBOR), recorded in ``/_ferry/calls`` and
``/_ferry/iam/decisions``.

Run with: .venv/bin/python -m pytest tests/emulator -q -p no:cacheprovider
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cfn  # noqa: E402
import iam_behaviours as iam  # noqa: E402
from iam_behaviours import Authorization, Call, evaluate  # noqa: E402

ROOT = HERE.parent.parent
ACCOUNT = "123456789012"
REGION = "eu-west-1"
PRINCIPAL = f"arn:aws:sts::{ACCOUNT}:assumed-role/r/f"


def allow(action: Any, resource: Any = "*", condition: dict[str, Any] | None = None, sid: str = "A", **extra: Any) -> dict[str, Any]:
    statement = {"Sid": sid, "Effect": "Allow", "Action": action, "Resource": resource, **extra}
    if condition:
        statement["Condition"] = condition
    return statement


def decide(statements: list[dict[str, Any]], action: str = "s3:GetObject", resource: str = "arn:aws:s3:::b/k", **context: Any) -> iam.Decision:
    values = {k.replace("__", ":").replace("_", "-"): v if isinstance(v, list) else [v] for k, v in context.items()}
    return evaluate(statements, Authorization(action, resource, values), PRINCIPAL)


def allowed(condition: dict[str, Any], context: dict[str, list[str]]) -> bool:
    return evaluate([allow("x:Y", "*", condition)], Authorization("x:Y", "r", context), PRINCIPAL).allowed


# --------------------------------------------------------------------------
# evaluation logic


def test_no_statement_is_an_implicit_deny_with_aws_message():
    decision = decide([allow("s3:PutObject")])
    assert (decision.allowed, decision.effect, decision.sid) == (False, "ImplicitDeny", None)
    assert decision.reason == (
        f"User: {PRINCIPAL} is not authorized to perform: s3:GetObject on resource: arn:aws:s3:::b/k "
        "because no identity-based policy allows the s3:GetObject action"
    )


def test_an_explicit_deny_wins_over_an_allow():
    statements = [allow("s3:*", sid="Everything"), {"Sid": "NotThat", "Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"}]
    decision = decide(statements)
    assert (decision.allowed, decision.effect, decision.sid) == (False, "Deny", "NotThat")
    assert decision.reason.endswith("with an explicit deny in an identity-based policy")
    assert decide(statements, action="s3:PutObject").allowed


def test_actions_match_case_insensitively_with_wildcards():
    assert decide([allow("S3:get*")]).allowed
    assert decide([allow("s3:Get?bject")]).allowed
    assert not decide([allow("s3:Get")]).allowed
    assert decide([allow(["ec2:*", "s3:GetObject"])]).sid == "A"


def test_not_action_matches_every_other_action():
    statements = [{"Sid": "AllButDelete", "Effect": "Allow", "NotAction": ["s3:Delete*"], "Resource": "*"}]
    assert decide(statements).allowed
    assert not decide(statements, action="s3:DeleteObject").allowed
    deny_others = [allow("*"), {"Sid": "OnlyS3", "Effect": "Deny", "NotAction": "s3:*", "Resource": "*"}]
    assert decide(deny_others).allowed and decide(deny_others, action="ecs:RunTask").effect == "Deny"


def test_resources_match_with_wildcards_case_sensitively_and_not_resource():
    assert decide([allow("s3:GetObject", "arn:aws:s3:::b/*")]).allowed
    assert not decide([allow("s3:GetObject", "arn:aws:s3:::B/*")]).allowed
    assert decide([allow("s3:GetObject", ["arn:aws:s3:::x/*", "arn:aws:s3:::b/?"])]).allowed
    not_resource = [{"Sid": "N", "Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::secret/*"}]
    assert decide(not_resource).allowed
    assert not decide(not_resource, resource="arn:aws:s3:::secret/k").allowed


def test_string_operators():
    assert allowed({"StringEquals": {"k:a": "v"}}, {"k:a": ["v"]})
    assert not allowed({"StringEquals": {"k:a": "v"}}, {"k:a": ["V"]})
    assert allowed({"StringEqualsIgnoreCase": {"k:a": "v"}}, {"k:a": ["V"]})
    assert allowed({"StringNotEquals": {"k:a": ["x", "y"]}}, {"k:a": ["v"]})
    assert not allowed({"StringNotEquals": {"k:a": ["x", "v"]}}, {"k:a": ["v"]})  # NOR over the values
    assert allowed({"StringLike": {"k:a": "ferry-*"}}, {"k:a": ["ferry-bake-1"]})
    assert not allowed({"StringLike": {"k:a": "ferry-*"}}, {"k:a": ["other"]})
    assert allowed({"StringNotLike": {"k:a": "ferry-*"}}, {"k:a": ["other"]})
    assert allowed({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": ["false"]})
    assert allowed({"Bool": {"aws:SecureTransport": False}}, {"aws:SecureTransport": ["false"]})


def test_several_values_are_or_several_keys_and_operators_are_and():
    condition = {"StringEquals": {"k:a": ["1", "2"], "k:b": "x"}, "StringLike": {"k:c": "z*"}}
    assert allowed(condition, {"k:a": ["2"], "k:b": ["x"], "k:c": ["zz"]})
    assert not allowed(condition, {"k:a": ["3"], "k:b": ["x"], "k:c": ["zz"]})
    assert not allowed(condition, {"k:a": ["1"], "k:b": ["x"], "k:c": ["a"]})


def test_condition_key_names_are_not_case_sensitive():
    assert allowed({"StringEquals": {"IAM:PassedToService": "ecs-tasks.amazonaws.com"}}, {"iam:PassedToService": ["ecs-tasks.amazonaws.com"]})


def test_a_missing_key_fails_a_condition_but_satisfies_a_negated_one_and_if_exists():
    assert not allowed({"StringEquals": {"k:a": "v"}}, {})
    assert allowed({"StringNotEquals": {"k:a": "v"}}, {})
    assert allowed({"ArnNotLike": {"k:a": "arn:*:ecs:*:*:cluster/x"}}, {})
    assert allowed({"StringEqualsIfExists": {"k:a": "v"}}, {})
    assert not allowed({"StringEqualsIfExists": {"k:a": "v"}}, {"k:a": ["w"]})


def test_arn_like_on_ecs_cluster_compares_each_component():
    condition = {"ArnLike": {"ecs:cluster": ["arn:*:ecs:*:*:cluster/shop-prod", "arn:*:ecs:*:*:cluster/blog-prod"]}}
    assert allowed(condition, {"ecs:cluster": [f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/blog-prod"]})
    assert not allowed(condition, {"ecs:cluster": [f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/shop-prod-2"]})
    assert not allowed(condition, {"ecs:cluster": ["shop-prod"]})  # not an ARN
    assert allowed({"ArnEquals": {"ecs:cluster": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/a"}}, {"ecs:cluster": [f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/a"]})
    assert allowed({"ArnNotLike": {"ecs:cluster": "arn:*:ecs:*:*:cluster/a"}}, {"ecs:cluster": [f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/b"]})


def test_null_tests_presence():
    assert allowed({"Null": {"aws:RequestTag/ferry:release": "false"}}, {"aws:RequestTag/ferry:release": ["shop/prod/1"]})
    assert not allowed({"Null": {"aws:RequestTag/ferry:release": "false"}}, {})
    assert allowed({"Null": {"aws:RequestTag/ferry:release": "true"}}, {})
    assert not allowed({"Null": {"aws:RequestTag/ferry:release": True}}, {"aws:RequestTag/ferry:release": ["x"]})


def test_for_all_values_and_for_any_value():
    condition = {"ForAllValues:StringEquals": {"events:source": "ferry"}}
    assert allowed(condition, {"events:source": ["ferry", "ferry"]})
    assert not allowed(condition, {"events:source": ["ferry", "intruder"]})
    any_value = {"ForAnyValue:StringLike": {"aws:TagKeys": "ferry:*"}}
    assert allowed(any_value, {"aws:TagKeys": ["app", "ferry:release"]})
    assert not allowed(any_value, {"aws:TagKeys": ["app"]})
    assert not allowed(any_value, {})  # ForAnyValue: no key, no match


def test_for_all_values_with_an_empty_set_is_true_and_the_null_guard_closes_it():
    """DOC_MULTIVALUED_EXAMPLES: ForAllValues "also returns true if there are no
    context keys in the request"; a Null "false" guard makes the key required."""
    condition = {"ForAllValues:StringEquals": {"events:source": "ferry"}}
    assert allowed(condition, {})
    assert allowed(condition, {"events:source": []})
    guarded = {**condition, "Null": {"events:source": "false"}}
    assert not allowed(guarded, {})
    assert not allowed(guarded, {"events:source": []})
    assert allowed(guarded, {"events:source": ["ferry"]})


def test_a_single_valued_operator_on_a_multivalued_key_never_matches_and_says_why():
    statements = [allow("events:PutEvents", "*", {"StringEquals": {"events:source": "ferry"}}, sid="AuditEvents")]
    decision = decide(statements, action="events:PutEvents", resource="bus", events__source="ferry")
    assert not decision.allowed and decision.effect == "ImplicitDeny"
    assert "StringEquals on the multivalued key events:source" in decision.reason
    assert "require a condition set operator" in decision.reason and iam.DOC_MULTIVALUED in decision.reason
    # in a Deny statement it fails closed too: the deny applies
    deny = [allow("events:PutEvents"), {"Sid": "D", "Effect": "Deny", "Action": "events:PutEvents", "Resource": "*",
                                         "Condition": {"StringNotEquals": {"aws:TagKeys": "x"}}}]
    assert decide(deny, action="events:PutEvents", resource="bus").effect == "Deny"


def test_an_unknown_operator_fails_closed():
    decision = decide([allow("s3:GetObject", "*", {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}})])
    assert not decision.allowed and "not modelled" in decision.reason


def test_a_key_policy_allows_unless_an_identity_policy_denies():
    auth = Authorization("kms:Decrypt", "arn:aws:kms:eu-west-1:1:key/k", {}, key_policy=iam.SSM_KEY_POLICY)
    assert evaluate([], auth, PRINCIPAL).allowed and evaluate([], auth, PRINCIPAL).sid == iam.SSM_KEY_POLICY
    deny = [{"Sid": "NeverDecrypt", "Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}]
    assert evaluate(deny, auth, PRINCIPAL).effect == "Deny"


# --------------------------------------------------------------------------
# requests -> authorizations


class FakeEstate:
    def __init__(self) -> None:
        self.roles = {"api:3": ["arn:aws:iam::123456789012:role/task", "arn:aws:iam::123456789012:role/exec"]}
        self.parameters = {"/shop/prod/api-key": ("SecureString", "alias/aws/ssm"), "/p": ("String", "")}

    def task_definition_roles(self, account: str, region: str, reference: str) -> list[str]:
        return self.roles.get(reference.rsplit("/", 1)[-1], [])

    def next_task_definition_arn(self, account: str, region: str, family: str) -> str:
        return f"arn:aws:ecs:{region}:{account}:task-definition/{family}:7"

    def secret_arn(self, account: str, region: str, secret_id: str) -> str | None:
        return f"arn:aws:secretsmanager:{region}:{account}:secret:db-AbCdEf" if secret_id in ("db", "db-AbCdEf") else None

    def parameter(self, account: str, region: str, name: str) -> tuple[str, str] | None:
        return self.parameters.get(name)


def needed(service: str, operation: str, body: dict[str, Any], **extra: Any) -> list[tuple[str, str, dict[str, list[str]]]]:
    call = Call(service, operation, body, REGION, ACCOUNT, **extra)
    return [(a.action, a.resource, a.context) for a in iam.authorizations(call, FakeEstate())]


TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/ledger"
ECS = f"arn:aws:ecs:{REGION}:{ACCOUNT}"
CLUSTER = {"ecs:cluster": [f"{ECS}:cluster/shop-prod"]}


def test_dynamodb_items_and_transactions():
    assert needed("dynamodb", "GetItem", {"TableName": "ledger"}) == [("dynamodb:GetItem", TABLE, {})]
    assert needed("dynamodb", "UpdateItem", {"TableName": "ledger"}) == [("dynamodb:UpdateItem", TABLE, {})]
    assert needed("dynamodb", "Query", {"TableName": "ledger", "IndexName": "by-state"}) == [("dynamodb:Query", f"{TABLE}/index/by-state", {})]
    assert needed("dynamodb", "BatchGetItem", {"RequestItems": {"ledger": {}, "other": {}}}) == [
        ("dynamodb:BatchGetItem", TABLE, {}),
        ("dynamodb:BatchGetItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/other", {}),
    ]
    items = [{"Put": {"TableName": "ledger"}}, {"Update": {"TableName": "ledger"}}, {"ConditionCheck": {"TableName": "ledger"}}, {"Delete": {"TableName": "ledger"}}]
    assert [a for a, _, _ in needed("dynamodb", "TransactWriteItems", {"TransactItems": items})] == [
        "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem", "dynamodb:DeleteItem",
    ]
    assert needed("dynamodb", "TransactGetItems", {"TransactItems": [{"Get": {"TableName": "ledger"}}]}) == [("dynamodb:GetItem", TABLE, {})]


def test_ecs_task_definitions():
    assert needed("ecs", "DescribeTaskDefinition", {"taskDefinition": "api:3"}) == [("ecs:DescribeTaskDefinition", "*", {})]
    registered = needed("ecs", "RegisterTaskDefinition", {
        "family": "api", "taskRoleArn": "arn:aws:iam::123456789012:role/task", "executionRoleArn": "arn:aws:iam::123456789012:role/exec",
        "tags": [{"key": "ferry:release", "value": "shop/prod/1"}, {"key": "app", "value": "shop"}],
    })
    tags = {"aws:RequestTag/ferry:release": ["shop/prod/1"], "aws:RequestTag/app": ["shop"], "aws:TagKeys": ["ferry:release", "app"]}
    assert registered == [
        ("ecs:RegisterTaskDefinition", "*", tags),
        ("ecs:TagResource", f"{ECS}:task-definition/api:7", {**tags, "ecs:CreateAction": ["RegisterTaskDefinition"]}),
        ("iam:PassRole", "arn:aws:iam::123456789012:role/task", {"iam:PassedToService": ["ecs-tasks.amazonaws.com"]}),
        ("iam:PassRole", "arn:aws:iam::123456789012:role/exec", {"iam:PassedToService": ["ecs-tasks.amazonaws.com"]}),
    ]
    untagged = needed("ecs", "RegisterTaskDefinition", {"family": "api"})
    assert untagged == [("ecs:RegisterTaskDefinition", "*", {})]  # no tags: no ecs:TagResource
    assert needed("ecs", "ListTagsForResource", {"resourceArn": f"{ECS}:task-definition/api:3"}) == [
        ("ecs:ListTagsForResource", f"{ECS}:task-definition/api:3", {})
    ]


def test_ecs_run_task_with_tags_and_roles():
    run = needed("ecs", "RunTask", {"cluster": "shop-prod", "taskDefinition": f"{ECS}:task-definition/api:3",
                                    "tags": [{"key": "ferry:release", "value": "r"}]})
    tags = {"aws:RequestTag/ferry:release": ["r"], "aws:TagKeys": ["ferry:release"]}
    assert run == [
        ("ecs:RunTask", f"{ECS}:task-definition/api:3", {**CLUSTER, **tags}),
        ("ecs:TagResource", f"{ECS}:task/shop-prod/(new)", {**CLUSTER, **tags, "ecs:CreateAction": ["RunTask"]}),
        ("iam:PassRole", "arn:aws:iam::123456789012:role/task", {"iam:PassedToService": ["ecs-tasks.amazonaws.com"]}),
        ("iam:PassRole", "arn:aws:iam::123456789012:role/exec", {"iam:PassedToService": ["ecs-tasks.amazonaws.com"]}),
    ]
    # a cluster given by ARN, a family:revision, no tags, an override role
    other = needed("ecs", "RunTask", {"cluster": f"{ECS}:cluster/blog-prod", "taskDefinition": "web:1",
                                      "overrides": {"taskRoleArn": "arn:aws:iam::123456789012:role/o"}})
    assert other == [
        ("ecs:RunTask", f"{ECS}:task-definition/web:1", {"ecs:cluster": [f"{ECS}:cluster/blog-prod"]}),
        ("iam:PassRole", "arn:aws:iam::123456789012:role/o", {"iam:PassedToService": ["ecs-tasks.amazonaws.com"]}),
    ]


def test_ecs_services_and_tasks():
    assert needed("ecs", "DescribeServices", {"cluster": "shop-prod", "services": ["api", "worker"]}) == [
        ("ecs:DescribeServices", f"{ECS}:service/shop-prod/api", CLUSTER),
        ("ecs:DescribeServices", f"{ECS}:service/shop-prod/worker", CLUSTER),
    ]
    assert needed("ecs", "UpdateService", {"cluster": "shop-prod", "service": "api", "taskDefinition": "api:3"}) == [
        ("ecs:UpdateService", f"{ECS}:service/shop-prod/api", {**CLUSTER, "ecs:task-definition": [f"{ECS}:task-definition/api:3"]}),
        ("iam:PassRole", "arn:aws:iam::123456789012:role/task", {"iam:PassedToService": ["ecs-tasks.amazonaws.com"]}),
        ("iam:PassRole", "arn:aws:iam::123456789012:role/exec", {"iam:PassedToService": ["ecs-tasks.amazonaws.com"]}),
    ]
    assert needed("ecs", "UpdateService", {"cluster": "shop-prod", "service": "api", "desiredCount": 2}) == [
        ("ecs:UpdateService", f"{ECS}:service/shop-prod/api", CLUSTER)
    ]
    assert needed("ecs", "StopTask", {"cluster": "shop-prod", "task": "abc"}) == [("ecs:StopTask", f"{ECS}:task/shop-prod/abc", CLUSTER)]
    assert needed("ecs", "DescribeTasks", {"cluster": "shop-prod", "tasks": [f"{ECS}:task/shop-prod/abc"]}) == [
        ("ecs:DescribeTasks", f"{ECS}:task/shop-prod/abc", CLUSTER)
    ]


def test_ssm_parameters_and_decryption_through_the_aws_ssm_key():
    parameter = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter"
    assert needed("ssm", "GetParameter", {"Name": "/ferry/config"}) == [("ssm:GetParameter", f"{parameter}/ferry/config", {})]
    assert needed("ssm", "GetParameter", {"Name": "plain"}) == [("ssm:GetParameter", f"{parameter}/plain", {})]
    assert needed("ssm", "PutParameter", {"Name": "/p", "Type": "String"}) == [("ssm:PutParameter", f"{parameter}/p", {})]
    assert needed("ssm", "LabelParameterVersion", {"Name": "/p", "Labels": ["known-good"]}) == [
        ("ssm:LabelParameterVersion", f"{parameter}/p", {})
    ]
    assert needed("ssm", "GetParameterHistory", {"Name": "/p:3"}) == [("ssm:GetParameterHistory", f"{parameter}/p", {})]
    # without decryption: one authorization per name, no key
    assert needed("ssm", "GetParameters", {"Names": ["/p", "/shop/prod/api-key"], "WithDecryption": False}) == [
        ("ssm:GetParameters", f"{parameter}/p", {}),
        ("ssm:GetParameters", f"{parameter}/shop/prod/api-key", {}),
    ]
    decrypted = Call("ssm", "GetParameters", {"Names": ["/p", "/shop/prod/api-key"], "WithDecryption": True}, REGION, ACCOUNT)
    found = iam.authorizations(decrypted, FakeEstate())
    assert [(a.action, a.key_policy) for a in found] == [
        ("ssm:GetParameters", None), ("ssm:GetParameters", None), ("kms:Decrypt", iam.SSM_KEY_POLICY),
    ]
    assert found[2].resource.startswith(f"arn:aws:kms:{REGION}:{ACCOUNT}:key/")
    assert found[2].context["kms:ViaService"] == [f"ssm.{REGION}.amazonaws.com"]


def test_secrets_ecr_events_scheduler_cloudwatch():
    assert needed("secretsmanager", "DescribeSecret", {"SecretId": "db"}) == [
        ("secretsmanager:DescribeSecret", f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:db-AbCdEf", {})
    ]
    assert needed("secretsmanager", "DescribeSecret", {"SecretId": "gone"}) == [
        ("secretsmanager:DescribeSecret", f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:gone", {})
    ]
    assert needed("ecr", "DescribeImages", {"repositoryName": "shop"}) == [
        ("ecr:DescribeImages", f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/shop", {})
    ]
    entries = [{"Source": "ferry", "DetailType": "Release State Change"}, {"Source": "ferry", "DetailType": "Other", "EventBusName": "b"},
               {"Source": "x", "DetailType": "Release State Change"}]
    assert needed("events", "PutEvents", {"Entries": entries}) == [
        ("events:PutEvents", f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default",
         {"events:source": ["ferry", "x"], "events:detail-type": ["Release State Change", "Release State Change"]}),
        ("events:PutEvents", f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/b", {"events:source": ["ferry"], "events:detail-type": ["Other"]}),
    ]
    role = f"arn:aws:iam::{ACCOUNT}:role/ferry-local-SchedulerRole"
    assert needed("scheduler", "CreateSchedule", {"Target": {"RoleArn": role, "Arn": "f"}}, path="/schedules/ferry-bake-1") == [
        ("scheduler:CreateSchedule", f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/ferry-bake-1", {}),
        ("iam:PassRole", role, {"iam:PassedToService": ["scheduler.amazonaws.com"]}),
    ]
    assert needed("scheduler", "DeleteSchedule", {}, path="/schedules/x", query={"groupName": ["g"]}) == [
        ("scheduler:DeleteSchedule", f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/g/x", {})
    ]
    assert needed("monitoring", "DescribeAlarms", {"AlarmNames": ["a"]}) == [("cloudwatch:DescribeAlarms", "*", {})]


def test_an_operation_not_modelled_is_refused():
    for service, operation in (("ecs", "DeleteCluster"), ("sqs", "SendMessage"), ("ssm", "SendCommand"), ("dynamodb", "DeleteTable")):
        with pytest.raises(iam.NotModelled):
            iam.authorizations(Call(service, operation, {}, REGION, ACCOUNT), FakeEstate())


# --------------------------------------------------------------------------
# template.yaml's policies, the least-privilege report


def principals(template: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    return iam.template_principals(
        template or cfn.load_template(str(ROOT / "template.yaml")),
        region=REGION, account_id=ACCOUNT, stack_name="ferry-local",
        physical_ids={"LedgerTable": "ferry-local-LedgerTable", "ConfigParameter": "/ferry/config"},
        parameters={"ClusterNames": ["shop-prod", "blog-prod"], "TaskRoleArns": [f"arn:aws:iam::{ACCOUNT}:role/sample-ecs-task-execution"], "ConfigToml": "x"},
        attributes={"LedgerTable.Arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/ferry-local-LedgerTable"},
    )


def test_the_template_resolves_to_one_principal_per_function_and_the_scheduler_role():
    found = principals()
    assert {"ferry-deploy", "ferry-gate", "ferry-watch", "ferry-rollback", "ferry-local-SchedulerRole"} <= set(found)
    gate = found["ferry-gate"]
    assert gate["role_arn"] == f"arn:aws:iam::{ACCOUNT}:role/ferry-local-GateFunctionRole"
    assert gate["session_name"] == "ferry-local-gate" and found["ferry-watch"]["session_name"] == "ferry-local-watch"
    assert found["ferry-local-SchedulerRole"]["service_role"] == ["scheduler.amazonaws.com"]
    text = json.dumps(found)
    assert "Fn::" not in text and "Ref" not in text  # every intrinsic resolved
    update = evaluate(gate["statements"], Authorization("ecs:UpdateService", f"{ECS}:service/shop-prod/api", CLUSTER), PRINCIPAL)
    assert update.allowed and update.sid == "ServicesInManagedClusters"
    elsewhere = Authorization("ecs:UpdateService", f"{ECS}:service/other/api", {"ecs:cluster": [f"{ECS}:cluster/other"]})
    assert not evaluate(gate["statements"], elsewhere, PRINCIPAL).allowed


def test_every_role_may_put_ferrys_events_only_and_never_decrypt():
    for name, spec in principals().items():
        if spec.get("service_role"):
            continue
        bus = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"
        ours = Authorization("events:PutEvents", bus, {"events:source": ["ferry"], "events:detail-type": ["Release State Change"]})
        theirs = Authorization("events:PutEvents", bus, {"events:source": ["ferry", "aws.ecs"], "events:detail-type": ["Release State Change"] * 2})
        bare = Authorization("events:PutEvents", bus, {})
        assert evaluate(spec["statements"], ours, PRINCIPAL).allowed, name
        assert not evaluate(spec["statements"], theirs, PRINCIPAL).allowed, name
        assert not evaluate(spec["statements"], bare, PRINCIPAL).allowed, name
        decrypt = Authorization("kms:Decrypt", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k", {}, key_policy=iam.SSM_KEY_POLICY)
        assert evaluate(spec["statements"], decrypt, PRINCIPAL).effect == "Deny", name


def test_a_policies_entry_that_is_not_an_inline_document_is_an_error():
    template = cfn.load_template(str(ROOT / "template.yaml"))
    template["Resources"]["GateFunction"]["Properties"]["Policies"].append("AmazonS3ReadOnlyAccess")
    with pytest.raises(cfn.TemplateError, match="not an inline policy document"):
        principals(template)


def test_the_least_privilege_report_fails_on_unused_unjustified_and_stale_justifications():
    found = {"f": {"role_arn": "arn:aws:iam::1:role/f", "statements": [
        allow(["s3:GetObject", "s3:PutObject"], sid="Objects"), allow("sqs:SendMessage", sid="Queue"),
        {"Sid": "D", "Effect": "Deny", "Action": "kms:*", "Resource": "*"},
    ]}}
    decisions = [{"caller": "f", "action": "s3:GetObject", "allowed": True, "sids": ["Objects"]},
                 {"caller": "f", "action": "s3:PutObject", "allowed": False, "sids": []},
                 {"caller": "g", "action": "sqs:SendMessage", "allowed": True, "sids": ["Queue"]}]
    text, failures = iam.least_privilege_report(found, decisions, {})
    assert "granted 3, used 1, unused 2" in text
    assert failures == ["f Objects s3:PutObject: granted, never used, not justified", "f Queue sqs:SendMessage: granted, never used, not justified"]
    justified = {("f", "Objects", "s3:PutObject"): "why", ("f", "Queue", "sqs:SendMessage"): "why",
                 ("f", "Objects", "s3:GetObject"): "stale", ("f", "Gone", "s3:X"): "stale"}
    text, failures = iam.least_privilege_report(found, decisions, justified)
    assert "justified: why" in text
    assert failures == ["f Objects s3:GetObject is used now: remove its JUSTIFIED_UNUSED entry",
                        "f Gone s3:X: JUSTIFIED_UNUSED names a grant the template no longer has"]


# --------------------------------------------------------------------------
# through the emulator


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory):
    from test_ecs_behaviours import launch, wait_ready

    ready_file = tmp_path_factory.mktemp("iam") / "ready.json"
    proc = launch(ready_file, "--router", str(ROOT / "template.yaml"))
    try:
        yield wait_ready(proc, ready_file)
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except Exception:
            proc.kill()
            proc.wait()


def control(info: dict[str, Any], path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        info["endpoint"] + path, data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST", headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def as_key(info: dict[str, Any], service: str, key: str = "testing") -> Any:
    return boto3.client(service, endpoint_url=info["endpoint"], region_name=info["region"], aws_access_key_id=key,
                        aws_secret_access_key="testing", config=Config(retries={"total_max_attempts": 1}))


@pytest.fixture(scope="module")
def loaded(emulator):
    """`tester` may read /iam/* and write nothing, put ferry's events only, never decrypt."""
    statements = [
        {"Sid": "Read", "Effect": "Allow", "Action": ["ssm:GetParameter", "ssm:GetParameters"], "Resource": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/iam/*"},
        {"Sid": "Items", "Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/iam-*"},
        {"Sid": "Events", "Effect": "Allow", "Action": "events:PutEvents", "Resource": "*",
         "Condition": {"ForAllValues:StringEquals": {"events:source": "ferry"}, "Null": {"events:source": "false"}}},
        {"Sid": "NoDecrypt", "Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"},
    ]
    role = f"arn:aws:iam::{ACCOUNT}:role/iam-test-role"
    answer = control(emulator, "/_ferry/iam", {"principals": {"tester": {"role_arn": role, "session_name": "tester-fn", "statements": statements}}})
    assert set(answer["principals"]) == {"tester"} and answer["enabled"] is True
    ssm = as_key(emulator, "ssm")
    ssm.put_parameter(Name="/iam/plain", Value="v", Type="String")
    ssm.put_parameter(Name="/iam/secret", Value="s3cret", Type="SecureString")
    ssm.put_parameter(Name="/other/plain", Value="v", Type="String")
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/iam-test-role/tester-fn"


def test_a_caller_without_a_policy_is_unrestricted(emulator, loaded):
    assert as_key(emulator, "ssm").get_parameter(Name="/other/plain")["Parameter"]["Value"] == "v"


def test_an_allowed_call_is_served_and_a_denied_one_answered_as_aws(emulator, loaded):
    ssm = as_key(emulator, "ssm", "tester")
    assert ssm.get_parameter(Name="/iam/plain")["Parameter"]["Value"] == "v"
    since = control(emulator, "/_ferry/iam")["decisions"]
    with pytest.raises(ClientError) as denied:
        ssm.get_parameter(Name="/other/plain")
    error = denied.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400 and error["Error"]["Code"] == "AccessDeniedException"
    assert error["Error"]["Message"] == (
        f"User: {loaded} is not authorized to perform: ssm:GetParameter on resource: "
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/other/plain because no identity-based policy allows the ssm:GetParameter action"
    )
    (decision,) = control(emulator, f"/_ferry/iam/decisions?since={since}")["decisions"]
    assert (decision["caller"], decision["action"], decision["allowed"], decision["sid"]) == ("tester", "ssm:GetParameter", False, None)
    calls = [c for c in control(emulator, "/_ferry/calls")["calls"] if c["caller"] == "tester"]
    assert (calls[-1]["operation"], calls[-1]["status"]) == ("ssm:GetParameter", 400)


def test_dynamodb_denies_with_its_own_error_type(emulator, loaded):
    dynamodb = as_key(emulator, "dynamodb", "tester")
    with pytest.raises(ClientError) as denied:
        dynamodb.get_item(TableName="ledger", Key={"pk": {"S": "x"}})
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "dynamodb:GetItem on resource: arn:aws:dynamodb:eu-west-1:123456789012:table/ledger" in denied.value.response["Error"]["Message"]
    raw = urllib.request.Request(
        emulator["endpoint"], data=json.dumps({"TableName": "ledger", "Key": {"pk": {"S": "x"}}}).encode(), method="POST",
        headers={"X-Amz-Target": "DynamoDB_20120810.GetItem", "Content-Type": "application/x-amz-json-1.0",
                 "Authorization": f"AWS4-HMAC-SHA256 Credential=tester/20250101/{REGION}/dynamodb/aws4_request, SignedHeaders=host, Signature=0"},
    )
    with pytest.raises(urllib.error.HTTPError) as http:
        urllib.request.urlopen(raw, timeout=10)
    body = json.loads(http.value.read())
    assert http.value.code == 400 and body["__type"] == "com.amazon.coral.service#AccessDeniedException" and "Message" in body


def test_put_events_needs_every_source_to_be_ferrys(emulator, loaded):
    events = as_key(emulator, "events", "tester")
    ok = events.put_events(Entries=[{"Source": "ferry", "DetailType": "Release State Change", "Detail": "{}"}] * 2)
    assert ok["FailedEntryCount"] == 0
    with pytest.raises(ClientError, match="AccessDeniedException"):
        events.put_events(Entries=[{"Source": "ferry", "DetailType": "d", "Detail": "{}"}, {"Source": "aws.ecs", "DetailType": "d", "Detail": "{}"}])


def test_decryption_is_refused_by_an_explicit_deny_and_allowed_by_the_aws_ssm_key_without_it(emulator, loaded):
    ssm = as_key(emulator, "ssm", "tester")
    assert ssm.get_parameters(Names=["/iam/secret"], WithDecryption=False)["Parameters"][0]["Name"] == "/iam/secret"
    with pytest.raises(ClientError) as denied:
        ssm.get_parameters(Names=["/iam/secret"], WithDecryption=True)
    message = denied.value.response["Error"]["Message"]
    assert "kms:Decrypt on resource: arn:aws:kms:eu-west-1:123456789012:key/" in message and "explicit deny" in message
    spec = control(emulator, "/_ferry/iam")["principals"]["tester"]
    without = [s for s in spec["statements"] if s["Sid"] != "NoDecrypt"]
    control(emulator, "/_ferry/iam", {"principals": {"tester": {**spec, "statements": without}}})
    try:
        since = control(emulator, "/_ferry/iam")["decisions"]
        assert ssm.get_parameters(Names=["/iam/secret"], WithDecryption=True)["Parameters"][0]["Value"] == "s3cret"
        decisions = control(emulator, f"/_ferry/iam/decisions?since={since}")["decisions"]
        assert [(d["action"], d["sid"]) for d in decisions] == [("ssm:GetParameters", "Read"), ("kms:Decrypt", iam.SSM_KEY_POLICY)]
    finally:
        control(emulator, "/_ferry/iam", {"principals": {"tester": spec}})


def test_scheduler_denies_over_rest_with_403(emulator, loaded):
    scheduler = as_key(emulator, "scheduler", "tester")
    with pytest.raises(ClientError) as denied:
        scheduler.delete_schedule(Name="ferry-bake-x")
    response = denied.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403 and response["Error"]["Code"] == "AccessDeniedException"
    assert f"scheduler:DeleteSchedule on resource: arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/ferry-bake-x" in response["Error"]["Message"]


def test_cloudwatch_over_cbor_denies_through_its_error_path(emulator, loaded):
    from test_bake_window import cbor_call

    spec = control(emulator, "/_ferry/iam")["principals"]["tester"]
    control(emulator, "/_ferry/iam", {"principals": {"ferry-watch": spec}})  # cbor_call signs as ferry-watch
    try:
        status, headers, body = cbor_call(emulator, "DescribeAlarms", bytes([0xA0]))
    finally:
        control(emulator, "/_ferry/iam", {"principals": {"ferry-watch": None}})
    assert status == 400 and headers["smithy-protocol"] == "rpc-v2-cbor"
    assert body["__type"] == "com.amazon.coral.service#AccessDeniedException"
    assert "cloudwatch:DescribeAlarms on resource: *" in body["message"]


def test_an_operation_the_emulator_does_not_model_is_denied_saying_so(emulator, loaded):
    with pytest.raises(ClientError) as denied:
        as_key(emulator, "ecs", "tester").delete_cluster(cluster="anything")
    assert "the ferry emulator does not model the authorization of ecs:DeleteCluster" in denied.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as denied:  # a service the module has no mapping for
        as_key(emulator, "sqs", "tester").list_queues()
    assert "the ferry emulator does not model the authorization of sqs:" in denied.value.response["Error"]["Message"]
    decisions = control(emulator, "/_ferry/iam/decisions")["decisions"]
    assert {d["effect"] for d in decisions if d["action"].startswith(("ecs:DeleteCluster", "sqs:"))} == {"NotModelled"}


def test_enforcement_can_be_switched_off_and_a_principal_removed(emulator, loaded):
    control(emulator, "/_ferry/iam", {"enabled": False})
    try:
        assert as_key(emulator, "ssm", "tester").get_parameter(Name="/other/plain")["Parameter"]["Value"] == "v"
    finally:
        control(emulator, "/_ferry/iam", {"enabled": True})
    bad = urllib.request.Request(emulator["endpoint"] + "/_ferry/iam", data=json.dumps({"principals": {"x": {"statements": []}}}).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bad, timeout=10)
    assert refused.value.code == 400


def test_a_schedule_is_invoked_only_if_its_role_may_invoke_the_target(emulator):
    role = f"arn:aws:iam::{ACCOUNT}:role/ferry-local-SchedulerRole"
    watch = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ferry-local-watch"
    control(emulator, "/_ferry/iam", {"principals": {"ferry-local-SchedulerRole": {
        "role_arn": role, "service_role": ["scheduler.amazonaws.com"],
        "statements": [{"Sid": "InvokeWatchOnly", "Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": watch}]}}})
    scheduler = as_key(emulator, "scheduler")
    names = {}
    for target in (watch, f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:elsewhere"):
        name = f"iam-{uuid.uuid4().hex[:8]}"
        scheduler.create_schedule(Name=name, ScheduleExpression="at(2099-01-01T00:00:00)", FlexibleTimeWindow={"Mode": "OFF"},
                                  Target={"Arn": target, "RoleArn": role, "Input": "{}"})
        names[target] = name
    since = control(emulator, "/_ferry/iam")["decisions"]
    fired = {t: control(emulator, "/_ferry/scheduler/fire", {"name": n}) for t, n in names.items()}
    control(emulator, "/_ferry/iam", {"principals": {"ferry-local-SchedulerRole": None}})
    assert fired[watch]["binary"] == "ferry-watch"
    assert fired[f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:elsewhere"]["binary"] is None
    decisions = control(emulator, f"/_ferry/iam/decisions?since={since}")["decisions"]
    assert [(d["action"], d["allowed"]) for d in decisions] == [("lambda:InvokeFunction", True), ("lambda:InvokeFunction", False)]
