"""IAM in the loop: the emulator authorises ferry's AWS calls as AWS's IAM does.

This module is THE one place where ferry's test harness adds identity-based
authorization to the emulator. moto enforces almost nothing; on AWS every call
a ferry function makes is authorised against its Lambda execution role, and a
template whose role lacks one action fails in production only. Here:

1. **Policies from the template** (:func:`template_principals`): each
   function's inline ``Policies`` statements (SAM's ``Policies: - Statement:
   [...]`` form) are resolved with ``cfn.Resolver`` exactly as
   ``lambda_runtime.py`` resolves the functions' environment (same parameters,
   physical ids and ``_unapplied_attributes``), keyed by the function's binary
   (``Metadata.BuildProperties.Binary``): the access key id it signs with. The
   template's ``AWS::IAM::Role`` resources (``SchedulerRole``) are loaded too,
   keyed by role name, for the calls a service makes as that role (the router
   invoking a schedule's target). ``stack.py`` loads them after seeding
   (``POST /_ferry/iam``); only callers with a loaded policy are evaluated (the
   harness's own credentials stay unrestricted, like an administrator).
2. **Every call a loaded principal makes** is turned into the authorizations
   AWS makes for it (:func:`authorizations`: action, resource ARN, request
   context keys, and the dependent actions -- ``iam:PassRole``, tag-on-create
   ``ecs:TagResource``, ``kms:Decrypt``), each evaluated as the IAM User Guide's
   policy evaluation logic says (:func:`evaluate`), before faults and before
   moto. A denial is answered as AWS answers it for the protocol
   (:func:`denial_response`), recorded in ``/_ferry/calls`` with its status, and
   every decision is kept for ``GET /_ferry/iam/decisions?since=SEQ``. A call
   whose authorization this module does not model is denied, saying so: nothing
   slips through unchecked.

What is modelled (identity-based policies only) and what is not is listed in
``tests/emulator/README.md`` ("IAM (iam_behaviours.py)"). The pages followed:
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol
from urllib.parse import parse_qs, unquote

# --------------------------------------------------------------------------
# the AWS pages this module follows (cited by the docstrings below)

IAM_GUIDE = "https://docs.aws.amazon.com/IAM/latest/UserGuide"
SAR = "https://docs.aws.amazon.com/service-authorization/latest/reference"
DOC_EVALUATION = f"{IAM_GUIDE}/reference_policies_evaluation-logic.html"
DOC_EVALUATION_SINGLE_ACCOUNT = f"{IAM_GUIDE}/reference_policies_evaluation-logic_policy-eval-basics.html"
DOC_EXPLICIT_IMPLICIT = f"{IAM_GUIDE}/reference_policies_evaluation-logic_AccessPolicyLanguage_Interplay.html"
DOC_ACTION = f"{IAM_GUIDE}/reference_policies_elements_action.html"
DOC_NOTACTION = f"{IAM_GUIDE}/reference_policies_elements_notaction.html"
DOC_RESOURCE = f"{IAM_GUIDE}/reference_policies_elements_resource.html"
DOC_NOTRESOURCE = f"{IAM_GUIDE}/reference_policies_elements_notresource.html"
DOC_CONDITION = f"{IAM_GUIDE}/reference_policies_elements_condition.html"
DOC_CONDITION_OPERATORS = f"{IAM_GUIDE}/reference_policies_elements_condition_operators.html"
DOC_CONDITION_LOGIC = f"{IAM_GUIDE}/reference_policies_condition-logic-multiple-context-keys-or-values.html"
DOC_MULTIVALUED = f"{IAM_GUIDE}/reference_policies_condition-single-vs-multi-valued-context-keys.html"
DOC_MULTIVALUED_EXAMPLES = f"{IAM_GUIDE}/reference_policies_condition_examples-multi-valued-context-keys.html"
DOC_GLOBAL_KEYS = f"{IAM_GUIDE}/reference_policies_condition-keys.html"
DOC_PASSROLE = f"{IAM_GUIDE}/id_roles_use_passrole.html"
DOC_PASSED_TO_SERVICE = f"{IAM_GUIDE}/reference_policies_iam-condition-keys.html#ck_PassedToService"
DOC_ECS = f"{SAR}/list_amazonelasticcontainerservice.html"
DOC_ECS_TAG_ON_CREATE = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/supported-iam-actions-tagging.html"
DOC_DYNAMODB = f"{SAR}/list_amazondynamodb.html"
DOC_DYNAMODB_TRANSACTIONS = "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html"
DOC_SSM = f"{SAR}/list_awssystemsmanager.html"
DOC_SSM_DECRYPT = "https://docs.aws.amazon.com/systems-manager/latest/userguide/ps-restrict-decryption.html"
DOC_KMS = f"{SAR}/list_awskeymanagementservice.html"
DOC_SECRETS = f"{SAR}/list_awssecretsmanager.html"
DOC_ECR = f"{SAR}/list_amazonelasticcontainerregistry.html"
DOC_EVENTS = f"{SAR}/list_amazoneventbridge.html"
DOC_EVENTS_CONDITIONS = "https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-conditions.html"
DOC_SCHEDULER = f"{SAR}/list_amazoneventbridgescheduler.html"
DOC_CLOUDWATCH = f"{SAR}/list_amazoncloudwatch.html"
DOC_DESCRIBE_ALARMS = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_DescribeAlarms.html"
DOC_LAMBDA = f"{SAR}/list_awslambda.html"

__doc__ += "\n".join(
    f"* {url}"
    for url in (
        DOC_EVALUATION,
        DOC_CONDITION_OPERATORS,
        DOC_CONDITION_LOGIC,
        DOC_MULTIVALUED,
        DOC_PASSROLE,
        DOC_ECS,
        DOC_ECS_TAG_ON_CREATE,
        DOC_DYNAMODB,
        DOC_DYNAMODB_TRANSACTIONS,
        DOC_SSM,
        DOC_SSM_DECRYPT,
        DOC_SECRETS,
        DOC_ECR,
        DOC_EVENTS,
        DOC_SCHEDULER,
        DOC_CLOUDWATCH,
    )
)

__all__ = [
    "Authorization",
    "Decision",
    "NotModelled",
    "evaluate",
    "authorizations",
    "template_principals",
    "least_privilege_report",
    "JUSTIFIED_UNUSED",
    "IAM",
]

#: Context keys with more than one value in a request context: the Service
#: Authorization Reference types them ``ArrayOf...`` (``events:source`` and
#: ``events:detail-type`` for ``PutEvents``, one value per entry;
#: ``aws:TagKeys``: every tag key of the request). "Multivalued context keys
#: require a condition set operator" (DOC_MULTIVALUED).
MULTIVALUED_KEYS = frozenset(
    {"aws:tagkeys", "events:source", "events:detail-type", "aws:principalservicenameslist", "aws:calledvia"}
)
#: The name the decisions give the AWS managed key aws/ssm's key policy.
SSM_KEY_POLICY = "aws/ssm key policy"


# ==========================================================================
# evaluation


@dataclass
class Authorization:
    """One authorization AWS makes for a request: an action on a resource with
    the request context (key -> values; a single-valued key has one value).

    ``key_policy`` names a resource-based policy the emulator models that
    allows the action to every principal of the account (only the AWS managed
    key ``aws/ssm``'s: DOC_SSM_DECRYPT); such an action is allowed unless an
    identity-based policy denies it explicitly."""

    action: str
    resource: str
    context: dict[str, list[str]] = field(default_factory=dict)
    why: str = ""
    key_policy: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"action": self.action, "resource": self.resource, "context": self.context, "why": self.why}


@dataclass
class Decision:
    """The outcome of one :class:`Authorization`: ``effect`` is ``Allow``,
    ``Deny`` (an explicit deny), ``ImplicitDeny`` (no statement allows) or
    ``NotModelled``; ``sid`` the deciding statement (the explicit deny, or the
    first allow), ``sids`` every statement that allowed it."""

    action: str
    resource: str
    allowed: bool
    effect: str
    sid: str | None
    sids: list[str]
    reason: str
    context: dict[str, list[str]] = field(default_factory=dict)
    why: str = ""


class NotModelled(Exception):
    """The emulator does not know which authorizations AWS makes for a call."""


class ConditionMisuse(Exception):
    """A condition the IAM guide says not to write (a single-valued operator on
    a multivalued key), or one this module does not implement."""


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _wildcard_regex(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    """``*`` any run of characters (``/`` and ``:`` included), ``?`` one
    character; everything else literal (DOC_ACTION, DOC_RESOURCE)."""
    out = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{out}$", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def wildcard_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return bool(_wildcard_regex(str(pattern), ignore_case).match(str(value)))


def action_matches(patterns: Any, action: str) -> bool:
    """``Action``: "action names are case insensitive" and may use ``*``/``?``
    (DOC_ACTION)."""
    return any(wildcard_match(p, action, ignore_case=True) for p in _as_list(patterns))


def resource_matches(patterns: Any, resource: str) -> bool:
    """``Resource``: ARNs with ``*``/``?`` wildcards, case-sensitive; ``"*"`` is
    every resource (DOC_RESOURCE)."""
    return any(p == "*" or wildcard_match(p, resource) for p in _as_list(patterns))


def arn_like(pattern: str, value: str) -> bool:
    """ArnEquals/ArnLike: "each of the six colon-delimited components of the ARN
    is checked separately and each can include multi-character match wildcards
    (*) or single-character match wildcards (?)" (DOC_CONDITION_OPERATORS)."""
    left, right = str(pattern).split(":", 5), str(value).split(":", 5)
    if len(left) != 6 or len(right) != 6:
        return False
    return all(wildcard_match(p, v) for p, v in zip(left, right))


_POSITIVE: dict[str, Callable[[str, str], bool]] = {
    "stringequals": lambda p, v: p == v,
    "stringequalsignorecase": lambda p, v: p.lower() == v.lower(),
    "stringlike": lambda p, v: wildcard_match(p, v),
    "arnequals": arn_like,
    "arnlike": arn_like,
    "bool": lambda p, v: p.lower() == v.lower(),
}
_NEGATED = {
    "stringnotequals": "stringequals",
    "stringnotequalsignorecase": "stringequalsignorecase",
    "stringnotlike": "stringlike",
    "arnnotequals": "arnequals",
    "arnnotlike": "arnlike",
}


def _policy_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _match_value(operator: str, request_value: str, policy_values: list[Any]) -> bool:
    """One request value against the condition's values: a positive operator
    matches if any value matches (OR); a negated one ("StringNotEquals") if none
    does (DOC_CONDITION_LOGIC: "...the condition returns true if the request
    value does not match any of the values")."""
    if operator in _POSITIVE:
        return any(_POSITIVE[operator](_policy_string(p), request_value) for p in policy_values)
    return not any(_POSITIVE[_NEGATED[operator]](_policy_string(p), request_value) for p in policy_values)


def _lookup(context: dict[str, list[str]], key: str) -> list[str] | None:
    """Condition key names are not case-sensitive (DOC_CONDITION)."""
    wanted = key.lower()
    for name, values in context.items():
        if name.lower() == wanted:
            return list(values)
    return None


def condition_matches(condition: dict[str, Any], context: dict[str, list[str]]) -> bool:
    """A statement's ``Condition`` block against the request context.

    * every operator and every key in it must match (AND); the values of one
      key are alternatives (OR) (DOC_CONDITION_LOGIC);
    * a key absent from the request context: the condition is false, but true
      for a negated operator (``StringNotLike``, ``ArnNotLike``...);
      ``...IfExists`` is true; ``Null`` tests presence ("true": absent,
      "false": present) (DOC_CONDITION_OPERATORS);
    * ``ForAllValues:`` -- every request value matches one of the condition's
      values, and "also returns true if there are no context keys in the
      request" (an empty set too); ``ForAnyValue:`` -- at least one request
      value matches, false when the key is absent (DOC_MULTIVALUED);
    * a multivalued key (:data:`MULTIVALUED_KEYS`) under a single-valued
      operator raises :class:`ConditionMisuse`: the IAM guide says
      "multivalued context keys require a condition set operator" and does not
      say what AWS makes of anything else, so the emulator refuses to guess
      (the statement fails closed; the denial message says why).
    """
    for operator_name, keys in (condition or {}).items():
        name = str(operator_name)
        prefix = None
        if ":" in name:
            prefix, name = name.split(":", 1)
            if prefix.lower() not in ("forallvalues", "foranyvalue"):
                raise ConditionMisuse(f"condition operator {operator_name} is not modelled (see {DOC_CONDITION_OPERATORS})")
            prefix = prefix.lower()
        base = name.lower()
        if_exists = base.endswith("ifexists") and base != "null"
        if if_exists:
            base = base[: -len("ifexists")]
        if base != "null" and base not in _POSITIVE and base not in _NEGATED:
            raise ConditionMisuse(f"condition operator {operator_name} is not modelled by the emulator (see {DOC_CONDITION_OPERATORS})")
        if not isinstance(keys, dict):
            raise ConditionMisuse(f"condition operator {operator_name} must map keys to values")
        for key, raw_values in keys.items():
            policy_values = _as_list(raw_values)
            request = _lookup(context, key)
            if base == "null":
                wants_absent = _policy_string(policy_values[0]).lower() == "true" if policy_values else True
                present = bool(request)
                if present == wants_absent:
                    return False
                continue
            if prefix is None and str(key).lower() in MULTIVALUED_KEYS:
                raise ConditionMisuse(
                    f"{operator_name} on the multivalued key {key}: the IAM User Guide says multivalued context keys "
                    f"require a condition set operator (ForAllValues:/ForAnyValue:), see {DOC_MULTIVALUED}; "
                    "the emulator does not let such a statement match"
                )
            negated = base in _NEGATED
            if prefix == "forallvalues":
                result = all(_match_value(base, v, policy_values) for v in (request or []))
            elif prefix == "foranyvalue":
                result = any(_match_value(base, v, policy_values) for v in (request or []))
            elif request is None:
                result = if_exists or negated
            else:
                result = all(_match_value(base, v, policy_values) for v in request)
            if not result:
                return False
    return True


def statement_sid(statement: dict[str, Any], index: int) -> str:
    return str(statement.get("Sid") or f"statement #{index + 1}")


def _statement_applies(statement: dict[str, Any], auth: Authorization) -> bool:
    if "Action" in statement:
        if not action_matches(statement["Action"], auth.action):
            return False
    elif "NotAction" in statement:
        # "matches everything except the specified list of actions" (DOC_NOTACTION)
        if action_matches(statement["NotAction"], auth.action):
            return False
    else:
        return False
    if "Resource" in statement:
        return resource_matches(statement["Resource"], auth.resource)
    if "NotResource" in statement:
        # "matches every resource except those specified" (DOC_NOTRESOURCE)
        return not resource_matches(statement["NotResource"], auth.resource)
    return False


def evaluate(statements: list[dict[str, Any]], auth: Authorization, principal: str = "") -> Decision:
    """The IAM guide's policy evaluation logic for identity-based policies
    within one account (DOC_EVALUATION, DOC_EXPLICIT_IMPLICIT): a matching
    ``Deny`` statement wins; else a matching ``Allow`` allows; else the request
    is implicitly denied -- unless a modelled resource-based policy
    (``auth.key_policy``: the aws/ssm key's) allows it, which within one account
    is enough (DOC_EVALUATION_SINGLE_ACCOUNT). A statement whose condition is a
    :class:`ConditionMisuse` fails closed: an ``Allow`` does not allow, a ``Deny``
    denies."""
    allows: list[str] = []
    denies: list[str] = []
    misuses: list[str] = []
    for index, statement in enumerate(statements):
        if not isinstance(statement, dict) or not _statement_applies(statement, auth):
            continue
        effect = str(statement.get("Effect", "")).capitalize()
        sid = statement_sid(statement, index)
        try:
            matched = condition_matches(statement.get("Condition") or {}, auth.context)
        except ConditionMisuse as misuse:
            misuses.append(f"statement {sid}: {misuse}")
            matched = effect == "Deny"
        if not matched:
            continue
        (denies if effect == "Deny" else allows if effect == "Allow" else misuses).append(sid)
    note = ("; " + "; ".join(misuses)) if misuses else ""
    base = f"User: {principal} is not authorized to perform: {auth.action} on resource: {auth.resource}"
    if denies:
        return Decision(auth.action, auth.resource, False, "Deny", denies[0], allows,
                        f"{base} with an explicit deny in an identity-based policy{note}", auth.context, auth.why)
    if allows:
        return Decision(auth.action, auth.resource, True, "Allow", allows[0], allows,
                        f"allowed by {', '.join(allows)}{note}", auth.context, auth.why)
    if auth.key_policy:
        return Decision(auth.action, auth.resource, True, "Allow", auth.key_policy, [auth.key_policy],
                        f"allowed by the {auth.key_policy} (every principal of the account, through the service; "
                        f"{DOC_SSM_DECRYPT}); no identity-based policy denies it{note}", auth.context, auth.why)
    return Decision(auth.action, auth.resource, False, "ImplicitDeny", None, [],
                    f"{base} because no identity-based policy allows the {auth.action} action{note}", auth.context, auth.why)


# ==========================================================================
# requests -> authorizations


@dataclass
class Call:
    """An AWS request as IAM sees it: the signing name of its credential scope
    (``ecs``, ``monitoring``...), the operation, the parsed input."""

    service: str
    operation: str
    body: dict[str, Any]
    region: str
    account: str
    path: str = "/"
    query: dict[str, list[str]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        prefix = {"monitoring": "cloudwatch"}.get(self.service, self.service)
        return f"{prefix}:{self.operation}"


class Estate(Protocol):
    """What the authorization of a request needs to know about existing
    resources (moto's state, in the emulator; a fake in the self-tests)."""

    def task_definition_roles(self, account: str, region: str, reference: str) -> list[str]: ...

    def next_task_definition_arn(self, account: str, region: str, family: str) -> str: ...

    def secret_arn(self, account: str, region: str, secret_id: str) -> str | None: ...

    def parameter(self, account: str, region: str, name: str) -> tuple[str, str] | None: ...


def _tags_context(tags: Iterable[dict[str, Any]], key: str = "key", value: str = "value") -> dict[str, list[str]]:
    """``aws:RequestTag/<key>`` (single-valued, one per tag) and ``aws:TagKeys``
    (multivalued) (DOC_GLOBAL_KEYS)."""
    context: dict[str, list[str]] = {}
    keys: list[str] = []
    for tag in tags or []:
        k = str(tag.get(key) if key in tag else tag.get(key.capitalize(), ""))
        v = str(tag.get(value) if value in tag else tag.get(value.capitalize(), ""))
        context[f"aws:RequestTag/{k}"] = [v]
        keys.append(k)
    if keys:
        context["aws:TagKeys"] = keys
    return context


def _passrole(role_arn: str, service: str, why: str) -> Authorization:
    """``iam:PassRole`` on the role, with ``iam:PassedToService`` the service
    principal that will assume it (DOC_PASSROLE, DOC_PASSED_TO_SERVICE)."""
    return Authorization("iam:PassRole", role_arn, {"iam:PassedToService": [service]}, why)


# ---- DynamoDB


def _table_arn(call: Call, table: str) -> str:
    if str(table).startswith("arn:"):
        return str(table)
    return f"arn:aws:dynamodb:{call.region}:{call.account}:table/{table}"


_TRANSACT_WRITE = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}


def _dynamodb(call: Call, estate: Estate) -> list[Authorization]:
    """DynamoDB (DOC_DYNAMODB): the table's ARN ``arn:aws:dynamodb:<region>:
    <account>:table/<name>`` (an index: ``.../index/<name>``). A transaction is
    authorised item by item -- "permissions for each of the actions in the
    transaction" -- as ``PutItem``/``UpdateItem``/``DeleteItem``/
    ``ConditionCheckItem`` (writes) or ``GetItem`` (reads) on the item's table
    (DOC_DYNAMODB_TRANSACTIONS); ``BatchGetItem``/``BatchWriteItem`` on every
    table the batch names."""
    op, body = call.operation, call.body
    if op == "TransactWriteItems":
        out = []
        for number, item in enumerate(body.get("TransactItems") or []):
            for kind, action in _TRANSACT_WRITE.items():
                if kind in item:
                    out.append(Authorization(f"dynamodb:{action}", _table_arn(call, item[kind].get("TableName", "")),
                                             why=f"TransactWriteItems item {number + 1} ({kind})"))
        return out
    if op == "TransactGetItems":
        return [Authorization("dynamodb:GetItem", _table_arn(call, item["Get"].get("TableName", "")),
                              why=f"TransactGetItems item {number + 1}")
                for number, item in enumerate(body.get("TransactItems") or []) if "Get" in item]
    if op in ("BatchGetItem", "BatchWriteItem"):
        return [Authorization(f"dynamodb:{op}", _table_arn(call, table)) for table in (body.get("RequestItems") or {})]
    if op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "DescribeTable", "DescribeTimeToLive"):
        arn = _table_arn(call, body.get("TableName", ""))
        if op in ("Query", "Scan") and body.get("IndexName"):
            arn = f"{arn}/index/{body['IndexName']}"
        return [Authorization(f"dynamodb:{op}", arn)]
    raise NotModelled(call.name)


# ---- ECS


def _cluster(call: Call, value: Any) -> tuple[str, str]:
    """(name, ARN) of a ``cluster`` parameter (name or ARN; default ``default``)."""
    text = str(value or "default")
    if text.startswith("arn:"):
        return text.rsplit("/", 1)[-1], text
    return text, f"arn:aws:ecs:{call.region}:{call.account}:cluster/{text}"


def _task_definition_arn(call: Call, reference: str) -> str:
    """``family``, ``family:revision`` or an ARN -> the ARN IAM is asked about
    (a bare family stays revision-less, as AWS authorises it)."""
    text = str(reference)
    if text.startswith("arn:"):
        return text
    return f"arn:aws:ecs:{call.region}:{call.account}:task-definition/{text}"


def _service_arn(call: Call, cluster: str, service: str) -> str:
    if str(service).startswith("arn:"):
        return str(service)
    return f"arn:aws:ecs:{call.region}:{call.account}:service/{cluster}/{service}"


def _task_arn(call: Call, cluster: str, task: str) -> str:
    if str(task).startswith("arn:"):
        return str(task)
    return f"arn:aws:ecs:{call.region}:{call.account}:task/{cluster}/{task}"


def _roles_passed(roles: Iterable[str | None], why: str) -> list[Authorization]:
    seen: list[str] = []
    for role in roles:
        if role and role not in seen:
            seen.append(role)
    return [_passrole(role, "ecs-tasks.amazonaws.com", why) for role in seen]


def _ecs(call: Call, estate: Estate) -> list[Authorization]:
    """ECS (DOC_ECS). Services and tasks are authorised on their ARNs
    (``service/<cluster>/<service>``, ``task/<cluster>/<id>``) with
    ``ecs:cluster`` the cluster's ARN; ``RunTask`` on the task definition's ARN;
    ``DescribeTaskDefinition``, ``RegisterTaskDefinition``,
    ``ListTaskDefinitions`` and ``DeregisterTaskDefinition`` support no
    resource-level permissions (``"*"``).

    Dependent authorizations:

    * tags given to a creating call (``RegisterTaskDefinition``, ``RunTask``)
      are also authorised as ``ecs:TagResource`` on the new resource with
      ``ecs:CreateAction`` the creating action -- "only evaluated if tags are
      applied during the resource-creating action" (DOC_ECS_TAG_ON_CREATE); the
      new revision's ARN is moto's next one, the new task's id is not known
      before the call (``task/<cluster>/(new)``);
    * ``iam:PassRole`` (``iam:PassedToService`` ``ecs-tasks.amazonaws.com``) on
      the task role and execution role a call hands to ECS: the roles of the
      registered definition (``RegisterTaskDefinition``), of the definition a
      task runs plus its overrides (``RunTask``), of the definition a service is
      pointed at (``UpdateService`` with ``taskDefinition``). DOC_PASSROLE: a
      principal "must have permissions to pass the role to the service"; the
      Service Authorization Reference's operations table for ECS lists
      ``iam:PassRole`` with ``iam:PassedToService`` ``ecs-tasks.amazonaws.com``
      for the operations that take task roles, and AWS's AccessDeniedException
      names ``iam:PassRole`` for all three operations (reported, e.g., in
      github.com/aws/serverless-application-model/issues/2247 for RunTask,
      github.com/wellcomecollection/platform/issues/374 for
      RegisterTaskDefinition, github.com/keidarcy/e1s/issues/429 for
      UpdateService).
    """
    op, body = call.operation, call.body
    name, cluster_arn = _cluster(call, body.get("cluster"))
    in_cluster = {"ecs:cluster": [cluster_arn]}
    if op in ("DescribeTaskDefinition", "ListTaskDefinitions", "DeregisterTaskDefinition"):
        # None of the three supports resource-level permissions.
        return [Authorization(f"ecs:{op}", "*")]
    if op == "ListTagsForResource":
        return [Authorization("ecs:ListTagsForResource", str(body.get("resourceArn", "")))]
    if op == "RegisterTaskDefinition":
        tags = _tags_context(body.get("tags") or [])
        out = [Authorization("ecs:RegisterTaskDefinition", "*", dict(tags))]
        if body.get("tags"):
            arn = estate.next_task_definition_arn(call.account, call.region, str(body.get("family", "")))
            out.append(Authorization("ecs:TagResource", arn, {**tags, "ecs:CreateAction": ["RegisterTaskDefinition"]},
                                     "tags given to RegisterTaskDefinition"))
        out += _roles_passed([body.get("taskRoleArn"), body.get("executionRoleArn")], "roles of the registered task definition")
        return out
    if op == "RunTask":
        definition = str(body.get("taskDefinition", ""))
        tags = _tags_context(body.get("tags") or [])
        out = [Authorization("ecs:RunTask", _task_definition_arn(call, definition), {**in_cluster, **tags})]
        if body.get("tags"):
            out.append(Authorization("ecs:TagResource", f"arn:aws:ecs:{call.region}:{call.account}:task/{name}/(new)",
                                     {**in_cluster, **tags, "ecs:CreateAction": ["RunTask"]}, "tags given to RunTask"))
        overrides = body.get("overrides") or {}
        roles = [overrides.get("taskRoleArn"), overrides.get("executionRoleArn")]
        roles += estate.task_definition_roles(call.account, call.region, definition)
        return out + _roles_passed(roles, "roles of the task definition the task runs")
    if op in ("StopTask", "DescribeTasks"):
        tasks = [body.get("task")] if op == "StopTask" else list(body.get("tasks") or [])
        return [Authorization(f"ecs:{op}", _task_arn(call, name, str(t)), dict(in_cluster)) for t in tasks]
    if op == "DescribeServices":
        return [Authorization("ecs:DescribeServices", _service_arn(call, name, str(s)), dict(in_cluster))
                for s in body.get("services") or []]
    if op == "UpdateService":
        context = dict(in_cluster)
        definition = body.get("taskDefinition")
        if definition:
            context["ecs:task-definition"] = [_task_definition_arn(call, str(definition))]
        out = [Authorization("ecs:UpdateService", _service_arn(call, name, str(body.get("service", ""))), context)]
        if definition:
            out += _roles_passed(estate.task_definition_roles(call.account, call.region, str(definition)),
                                 "roles of the task definition the service is pointed at")
        return out
    raise NotModelled(call.name)


# ---- SSM (+ KMS through SSM)


def _parameter_arn(call: Call, name: str) -> str:
    """``arn:aws:ssm:<region>:<account>:parameter/<name without its leading
    slash>`` (DOC_SSM); a version or label selector (``name:3``) is not part of it."""
    text = str(name)
    if text.startswith("arn:"):
        return text
    text = text.split(":", 1)[0]
    return f"arn:aws:ssm:{call.region}:{call.account}:parameter/{text.lstrip('/')}"


def _decrypt(call: Call, estate: Estate, name: str, action: str = "kms:Decrypt") -> list[Authorization]:
    """Reading a SecureString with decryption (writing one: encryption) is also
    ``kms:Decrypt`` (``kms:Encrypt``) on its key, "whichever Parameter Store
    operation they call" (DOC_SSM_DECRYPT). The AWS managed key ``aws/ssm``
    "grants Decrypt permission to all IAM principals in the AWS account": the
    emulator models its key policy as allowing, so only an explicit deny in an
    identity-based policy stops it (a customer managed key's policy is taken to
    delegate to IAM: the identity policies must allow)."""
    found = estate.parameter(call.account, call.region, str(name).split(":", 1)[0] if not str(name).startswith("arn:") else str(name))
    if found is None or found[0] != "SecureString":
        return []
    key = found[1] or "alias/aws/ssm"
    managed = key in ("alias/aws/ssm", "aws/ssm")
    key_arn = (
        f"arn:aws:kms:{call.region}:{call.account}:key/{uuid.uuid5(uuid.NAMESPACE_URL, f'aws/ssm/{call.account}/{call.region}')}"
        if managed
        else (key if key.startswith("arn:") else f"arn:aws:kms:{call.region}:{call.account}:{key if key.startswith('alias/') else 'key/' + key}")
    )
    context = {
        "kms:ViaService": [f"ssm.{call.region}.amazonaws.com"],
        "kms:CallerAccount": [call.account],
        "kms:EncryptionContext:PARAMETER_ARN": [_parameter_arn(call, name)],
    }
    why = f"SecureString {str(name).split(':', 1)[0]} (key {'aws/ssm' if managed else key})"
    return [Authorization(action, key_arn, context, why, SSM_KEY_POLICY if managed else None)]


def _ssm(call: Call, estate: Estate) -> list[Authorization]:
    """Systems Manager Parameter Store (DOC_SSM): every parameter-named action on
    the parameter's ARN; ``GetParameters``/``DeleteParameters`` once per name;
    with ``WithDecryption`` a SecureString also needs its key (:func:`_decrypt`)."""
    op, body = call.operation, call.body
    if op in ("GetParameter", "GetParameterHistory"):
        out = [Authorization(f"ssm:{op}", _parameter_arn(call, body.get("Name", "")))]
        if body.get("WithDecryption"):
            out += _decrypt(call, estate, body.get("Name", ""))
        return out
    if op in ("GetParameters", "DeleteParameters"):
        out = []
        for parameter in body.get("Names") or []:
            out.append(Authorization(f"ssm:{op}", _parameter_arn(call, parameter)))
            if op == "GetParameters" and body.get("WithDecryption"):
                out += _decrypt(call, estate, parameter)
        return out
    if op in ("PutParameter", "LabelParameterVersion", "UnlabelParameterVersion", "DeleteParameter", "AddTagsToResource"):
        context = _tags_context(body.get("Tags") or [], "Key", "Value") if op == "PutParameter" else {}
        out = [Authorization(f"ssm:{op}", _parameter_arn(call, body.get("Name", "")), context)]
        if op == "PutParameter" and body.get("Type") == "SecureString":
            out += _decrypt(call, estate, body.get("Name", ""), "kms:Encrypt")
        return out
    if op == "DescribeParameters":
        return [Authorization("ssm:DescribeParameters", "*")]
    raise NotModelled(call.name)


# ---- Secrets Manager, ECR, EventBridge, Scheduler, CloudWatch


def _secretsmanager(call: Call, estate: Estate) -> list[Authorization]:
    """Secrets Manager (DOC_SECRETS): the secret's ARN (with its random suffix);
    a name or partial ARN resolves to it. A secret that does not exist is
    authorised on ``secret:<name>`` (AWS then answers ResourceNotFound to a
    principal allowed on ``secret:*``)."""
    if call.operation in ("DescribeSecret", "GetSecretValue", "GetResourcePolicy", "ListSecretVersionIds"):
        secret_id = str(call.body.get("SecretId", ""))
        arn = estate.secret_arn(call.account, call.region, secret_id) or (
            secret_id if secret_id.startswith("arn:") else f"arn:aws:secretsmanager:{call.region}:{call.account}:secret:{secret_id}"
        )
        return [Authorization(f"secretsmanager:{call.operation}", arn)]
    raise NotModelled(call.name)


def _ecr(call: Call, estate: Estate) -> list[Authorization]:
    """ECR (DOC_ECR): ``arn:aws:ecr:<region>:<registry id>:repository/<name>``."""
    if call.operation in ("DescribeImages", "BatchGetImage", "ListImages", "DescribeRepositories"):
        names = call.body.get("repositoryNames") if call.operation == "DescribeRepositories" else [call.body.get("repositoryName")]
        registry = call.body.get("registryId") or call.account
        return [Authorization(f"ecr:{call.operation}", f"arn:aws:ecr:{call.region}:{registry}:repository/{n}")
                for n in names or ["*"]]
    raise NotModelled(call.name)


def _events(call: Call, estate: Estate) -> list[Authorization]:
    """EventBridge ``PutEvents`` (DOC_EVENTS): authorised on each event bus the
    entries name (``event-bus/default`` when none), with ``events:source`` and
    ``events:detail-type`` -- multivalued keys, one value per entry to that bus
    (DOC_EVENTS_CONDITIONS, DOC_MULTIVALUED)."""
    if call.operation != "PutEvents":
        raise NotModelled(call.name)
    buses: dict[str, dict[str, list[str]]] = {}
    for entry in call.body.get("Entries") or []:
        bus = str(entry.get("EventBusName") or "default")
        arn = bus if bus.startswith("arn:") else f"arn:aws:events:{call.region}:{call.account}:event-bus/{bus}"
        context = buses.setdefault(arn, {"events:source": [], "events:detail-type": []})
        if entry.get("Source") is not None:
            context["events:source"].append(str(entry["Source"]))
        if entry.get("DetailType") is not None:
            context["events:detail-type"].append(str(entry["DetailType"]))
    return [Authorization("events:PutEvents", arn, {k: v for k, v in context.items() if v}) for arn, context in buses.items()]


def _scheduler(call: Call, estate: Estate) -> list[Authorization]:
    """EventBridge Scheduler (DOC_SCHEDULER): ``arn:aws:scheduler:<region>:
    <account>:schedule/<group>/<name>`` (group ``default`` unless given);
    creating or updating a schedule also passes its ``Target.RoleArn`` to
    ``scheduler.amazonaws.com`` (``iam:PassRole``, DOC_PASSROLE)."""
    op = call.operation
    if op not in ("CreateSchedule", "UpdateSchedule", "DeleteSchedule", "GetSchedule"):
        raise NotModelled(call.name)
    name = unquote(call.path.rstrip("/").rsplit("/", 1)[-1])
    group = call.body.get("GroupName") or (call.query.get("groupName") or ["default"])[0] or "default"
    out = [Authorization(f"scheduler:{op}", f"arn:aws:scheduler:{call.region}:{call.account}:schedule/{group}/{name}",
                         _tags_context(call.body.get("Tags") or [], "Key", "Value"))]
    role = (call.body.get("Target") or {}).get("RoleArn")
    if op in ("CreateSchedule", "UpdateSchedule") and role:
        out.append(_passrole(role, "scheduler.amazonaws.com", "the schedule's execution role"))
    return out


def _cloudwatch(call: Call, estate: Estate) -> list[Authorization]:
    """CloudWatch (DOC_CLOUDWATCH). ``DescribeAlarms`` is authorised on ``"*"``:
    the API reference says composite alarms are returned only "if you are
    signed on with the cloudwatch:DescribeAlarms permission that is scoped to
    *" (DOC_DESCRIBE_ALARMS), and ferry asks for both alarm types."""
    if call.operation == "DescribeAlarms":
        return [Authorization("cloudwatch:DescribeAlarms", "*")]
    if call.operation in ("SetAlarmState", "PutMetricAlarm"):
        name = call.body.get("AlarmName", "")
        return [Authorization(f"cloudwatch:{call.operation}", f"arn:aws:cloudwatch:{call.region}:{call.account}:alarm:{name}")]
    raise NotModelled(call.name)


_SERVICES: dict[str, Callable[[Call, Estate], list[Authorization]]] = {
    "dynamodb": _dynamodb,
    "ecs": _ecs,
    "ssm": _ssm,
    "secretsmanager": _secretsmanager,
    "ecr": _ecr,
    "events": _events,
    "scheduler": _scheduler,
    "monitoring": _cloudwatch,
}


def authorizations(call: Call, estate: Estate) -> list[Authorization]:
    """Every authorization AWS makes for ``call``, the operation's own first;
    :class:`NotModelled` for an operation this module does not know."""
    handler = _SERVICES.get(call.service)
    if handler is None:
        raise NotModelled(call.name)
    return handler(call, estate)


# ==========================================================================
# moto's state


class MotoEstate:
    """:class:`Estate` read from moto's backends, in the emulator's process."""

    def task_definition_roles(self, account: str, region: str, reference: str) -> list[str]:
        from moto.ecs import models as ecs_models

        try:
            definition = ecs_models.ecs_backends[account][region].describe_task_definition(reference)
        except Exception:  # no such definition: ECS refuses the call itself
            return []
        return [r for r in (getattr(definition, "task_role_arn", None), getattr(definition, "execution_role_arn", None)) if r]

    def next_task_definition_arn(self, account: str, region: str, family: str) -> str:
        from moto.ecs import models as ecs_models

        backend = ecs_models.ecs_backends[account][region]
        last = backend._get_last_task_definition_revision_id(family) if family in backend.task_definitions else 0
        return f"arn:aws:ecs:{region}:{account}:task-definition/{family}:{(last or 0) + 1}"

    def secret_arn(self, account: str, region: str, secret_id: str) -> str | None:
        from moto.secretsmanager import models as sm_models

        secret = sm_models.secretsmanager_backends[account][region].secrets.get(secret_id)
        return getattr(secret, "arn", None) if secret is not None else None

    def parameter(self, account: str, region: str, name: str) -> tuple[str, str] | None:
        from moto.ssm import models as ssm_models

        backend = ssm_models.ssm_backends[account][region]
        if name.startswith("arn:"):
            name = "/" + name.split(":parameter/", 1)[-1]
        try:
            found = backend.get_parameter(name)
        except Exception:
            return None
        if found is None:
            return None
        return str(found.parameter_type), str(getattr(found, "keyid", None) or "alias/aws/ssm")


# ==========================================================================
# policies from the template


def _role_name(stack_name: str, logical_id: str, props: dict[str, Any]) -> str:
    name = props.get("RoleName")
    return name if isinstance(name, str) else f"{stack_name}-{logical_id}"


def template_principals(
    template: dict[str, Any],
    *,
    region: str,
    account_id: str,
    stack_name: str,
    physical_ids: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
    attributes: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """The IAM principals of a SAM template, resolved as the local runtime
    resolves the functions' environment (``lambda_runtime.Runtime.__init__``:
    ``cfn.Resolver`` with the same parameters, physical ids and
    ``_unapplied_attributes``; ``attributes`` adds the created resources'
    ``Fn::GetAtt`` values, ``{"LedgerTable.Arn": ...}``).

    * each ``AWS::Serverless::Function`` -> key = its binary (the access key id
      the local runtime gives it), ``role_arn`` = the role SAM creates for it
      (``<stack>-<LogicalId>Role``, less CloudFormation's random suffix),
      ``session_name`` = its function name (Lambda's session name), and the
      statements of every inline ``Policies`` document;
    * each ``AWS::IAM::Role`` -> key = its role name, ``service_role`` the
      service principals its trust policy names, and its inline policies'
      statements.

    Any other ``Policies`` entry (a managed policy name, a SAM policy template)
    is an error: the emulator would not know what it grants."""
    import cfn
    from lambda_runtime import _unapplied_attributes

    ids = dict(physical_ids or {})
    attrs: dict[tuple[str, str], Any] = dict(_unapplied_attributes(template, region, account_id, stack_name, ids))
    for key, value in (attributes or {}).items():
        logical_id, name = key.split(".", 1)
        attrs[(logical_id, name)] = value
    resolver = cfn.Resolver(
        template, dict(parameters or {}), region=region, account_id=account_id, stack_name=stack_name,
        physical_ids=ids, attributes=attrs,
    )
    principals: dict[str, dict[str, Any]] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        if not isinstance(resource, dict):
            continue
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function":
            binary = ((resource.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary") or logical_id
            statements: list[dict[str, Any]] = []
            for policy in props.get("Policies") or []:
                if not isinstance(policy, dict) or "Statement" not in policy:
                    raise cfn.TemplateError(f"{logical_id}: Policies entry {policy!r} is not an inline policy document")
                statements += _as_list(resolver.resolve(policy["Statement"]))
            function_name = str(resolver.resolve(props.get("FunctionName")) or f"{stack_name}-{logical_id}")
            principals[binary] = {
                "logical_id": logical_id,
                "role_arn": f"arn:aws:iam::{account_id}:role/{stack_name}-{logical_id}Role",
                "session_name": function_name,
                "statements": statements,
            }
        elif resource.get("Type") == "AWS::IAM::Role":
            role = _role_name(stack_name, logical_id, props)
            trust = resolver.resolve(props.get("AssumeRolePolicyDocument") or {})
            services = sorted(
                {str(s) for st in _as_list(trust.get("Statement")) for s in _as_list((st.get("Principal") or {}).get("Service"))}
            )
            statements = []
            for policy in props.get("Policies") or []:
                statements += _as_list(resolver.resolve((policy.get("PolicyDocument") or {}).get("Statement")))
            principals[role] = {
                "logical_id": logical_id,
                "role_arn": f"arn:aws:iam::{account_id}:role/{role}",
                "session_name": None,
                "service_role": services,
                "statements": statements,
            }
    return principals


# ==========================================================================
# least privilege, measured

#: Granted but never exercised by the end-to-end suite, kept on purpose:
#: (principal, statement Sid, action) -> why, one line each. The report of a
#: full ``tests/e2e`` session fails on any other unused grant (remove it from
#: template.yaml, or justify it here), and on a justification that went stale
#: (the grant is used now, or no longer granted).
JUSTIFIED_UNUSED: dict[tuple[str, str, str], str] = {
    ("ferry-gate", "ReadGuardingAlarms", "cloudwatch:DescribeAlarms"):
        "a passed smoke test starts the bake, whose window without a `bake` key derives from the alarms "
        "(engine/bake.rs bake_or_succeed); the suite's smoke-pass bakes a fixed 3s",
    ("ferry-watch", "StopSmokeTestInManagedClusters", "ecs:StopTask"):
        "a duplicate delivery that loses the race to VERIFYING stops the smoke task it started "
        "(engine/bake.rs start_verify); the suite never lands one in that gap",
    ("ferry-rollback", "StopMigrationInManagedClusters", "ecs:StopTask"):
        "unfreeze deploys a held push through ferry-deploy's path, which stops the migration it started when the "
        "release is lost or cannot be recorded (engine/deploy.rs stop_quietly); the suite's unfreeze meets neither",
    ("ferry-rollback", "SecretsExistMetadataOnly", "secretsmanager:DescribeSecret"):
        "unfreeze preflights the held push like ferry-deploy: every Secrets Manager secret its task definitions "
        "reference must exist; the suite's unfrozen app (alarm) references none",
    ("ferry-rollback", "SecretParametersExistWithoutDecryption", "ssm:GetParameters"):
        "unfreeze preflights the held push like ferry-deploy: every SSM parameter its task definitions reference "
        "as a secret must exist; the suite's unfrozen app (alarm) references none",
    ("ferry-local-SchedulerRole", "UndeliveredTimersToTheFailedInvocationsQueue", "sqs:SendMessage"):
        "Scheduler sends a bake timer it could not deliver to FailedInvocationsQueue (the schedule's DeadLetterConfig); "
        "the local router does not model Scheduler's dead-lettering",
    ("ferry-gate", "ReadTaskDefinitions", "ecs:DescribeTaskDefinition"):
        "a release failing at its migration after superseding a rollout reads the ferry:release tag of each revision "
        "a service runs off known-good (engine/rollout.rs put_services_back); the suite's deterministic gate failures "
        "meet services on known-good, and test_chaos.py reaches it only when its draws supersede a rollout",
}

#: Justified grants that a session may also use: the paths behind them are
#: reached only when a race lands or a chaos draw falls that way
#: (tests/e2e/test_chaos.py), so "used now" is no sign of a stale justification.
USED_BY_CHANCE: frozenset[tuple[str, str, str]] = frozenset(
    {
        ("ferry-watch", "StopSmokeTestInManagedClusters", "ecs:StopTask"),
        ("ferry-rollback", "StopMigrationInManagedClusters", "ecs:StopTask"),
        ("ferry-gate", "ReadTaskDefinitions", "ecs:DescribeTaskDefinition"),
    }
)


def granted(principal: dict[str, Any]) -> list[tuple[str, str]]:
    """(Sid, action) for every action an ``Allow`` statement grants (a
    ``NotAction`` statement: ``NotAction:<patterns>``)."""
    out: list[tuple[str, str]] = []
    for index, statement in enumerate(principal.get("statements") or []):
        if str(statement.get("Effect", "")).capitalize() != "Allow":
            continue
        sid = statement_sid(statement, index)
        if "Action" in statement:
            out += [(sid, str(a)) for a in _as_list(statement["Action"])]
        else:
            out.append((sid, "NotAction:" + ",".join(str(a) for a in _as_list(statement.get("NotAction")))))
    return out


def least_privilege_report(
    principals: dict[str, dict[str, Any]],
    decisions: list[dict[str, Any]],
    justified: dict[tuple[str, str, str], str] | None = None,
) -> tuple[str, list[str]]:
    """Per principal: every granted (Sid, action), how often the suite's
    decisions were allowed by it, and the unused ones with their justification.
    Returns the report and its failures (unused and unjustified; justified but
    used, or no longer granted)."""
    justified = JUSTIFIED_UNUSED if justified is None else justified
    lines: list[str] = []
    failures: list[str] = []
    seen_justified: set[tuple[str, str, str]] = set()
    for name in sorted(principals):
        grants = granted(principals[name])
        uses: dict[tuple[str, str], int] = {g: 0 for g in grants}
        for decision in decisions:
            if decision.get("caller") != name or not decision.get("allowed"):
                continue
            for sid, action in grants:
                if sid in (decision.get("sids") or []) and (
                    action.startswith("NotAction:") or wildcard_match(action, decision["action"], ignore_case=True)
                ):
                    uses[(sid, action)] += 1
        used = [g for g in grants if uses[g]]
        unused = [g for g in grants if not uses[g]]
        lines.append(f"{name} ({principals[name].get('role_arn')})")
        lines.append(f"  granted {len(grants)}, used {len(used)}, unused {len(unused)}")
        for sid, action in grants:
            key = (name, sid, action)
            if uses[(sid, action)]:
                lines.append(f"    used     {action:<34} {sid} ({uses[(sid, action)]} allowed)")
                if key in justified:
                    if key not in USED_BY_CHANCE:
                        failures.append(f"{name} {sid} {action} is used now: remove its JUSTIFIED_UNUSED entry")
                    seen_justified.add(key)
            elif key in justified:
                lines.append(f"    unused   {action:<34} {sid} -- justified: {justified[key]}")
                seen_justified.add(key)
            else:
                lines.append(f"    UNUSED   {action:<34} {sid} -- neither used by the suite nor justified")
                failures.append(f"{name} {sid} {action}: granted, never used, not justified")
    for key in sorted(set(justified) - seen_justified):
        if key[0] in principals:
            failures.append(f"{key[0]} {key[1]} {key[2]}: JUSTIFIED_UNUSED names a grant the template no longer has")
    return "\n".join(lines), failures


# ==========================================================================
# in the emulator: principals, decisions, denials


@dataclass
class Denial:
    call: Call
    caller: str
    decision: Decision
    message: str


def _scope(environ: dict[str, Any]) -> list[str]:
    auth = environ.get("HTTP_AUTHORIZATION") or ""
    return auth.split("Credential=", 1)[1].split(",", 1)[0].split("/") if "Credential=" in auth else []


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request body, put back for whoever serves the request next."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > 0:
        raw = environ["wsgi.input"].read(length)
    elif environ.get("wsgi.input_terminated"):
        raw = environ["wsgi.input"].read()
    else:
        raw = b""
    environ["wsgi.input"] = io.BytesIO(raw)
    environ["CONTENT_LENGTH"] = str(len(raw))
    return raw


class Iam:
    """The loaded principals, the switch, and every decision made."""

    def __init__(self, estate: Estate | None = None) -> None:
        import collections

        self.enabled = True
        self.estate: Estate = estate or MotoEstate()
        self.principals: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._decisions: "collections.deque[dict[str, Any]]" = collections.deque(maxlen=200000)
        self._seq = 0

    # -- control routes

    def configure(self, request: dict[str, Any]) -> dict[str, Any]:
        """``POST /_ferry/iam`` ``{"principals": {name: {"role_arn",
        "session_name"?, "statements": [...]}}, "replace"?: bool, "enabled"?:
        bool}``: add or replace those principals (``replace``: drop every other
        one first); ``null`` removes one."""
        principals = request.get("principals")
        if principals is not None and not isinstance(principals, dict):
            raise ValueError('expected {"principals": {name: {"role_arn", "statements"}}}')
        checked: dict[str, dict[str, Any] | None] = {}
        for name, spec in (principals or {}).items():
            if spec is None:
                checked[name] = None
                continue
            if not isinstance(spec, dict) or not isinstance(spec.get("statements"), list) or not spec.get("role_arn"):
                raise ValueError(f"principal {name}: needs role_arn and a list of statements")
            for statement in spec["statements"]:
                if not isinstance(statement, dict) or str(statement.get("Effect", "")).capitalize() not in ("Allow", "Deny"):
                    raise ValueError(f"principal {name}: every statement needs Effect Allow or Deny: {statement!r}")
            checked[name] = dict(spec)
        with self._lock:
            if request.get("replace"):
                self.principals = {}
            for name, spec in checked.items():
                if spec is None:
                    self.principals.pop(name, None)
                else:
                    self.principals[name] = spec
            if "enabled" in request:
                self.enabled = bool(request["enabled"])
        return self.describe()

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {"enabled": self.enabled, "principals": json.loads(json.dumps(self.principals)), "decisions": self._seq}

    def decisions(self, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [d for d in self._decisions if d["seq"] > since]

    def route(self, method: str, path: str, query: dict[str, list[str]], body: Callable[[], dict[str, Any]]) -> tuple[int, Any]:
        if path == "/_ferry/iam":
            if method == "GET":
                return 200, self.describe()
            if method == "POST":
                return 200, self.configure(body())
            return 405, {"error": "use GET or POST"}
        if path == "/_ferry/iam/decisions":
            if method != "GET":
                return 405, {"error": "use GET"}
            since = int((query.get("since") or ["0"])[0] or 0)
            found = self.decisions(since)
            return 200, {"decisions": found, "next": found[-1]["seq"] if found else since}
        return 404, {"error": f"no control route {method} {path}"}

    # -- deciding

    def principal_arn(self, name: str, spec: dict[str, Any]) -> str:
        """How AWS names a role session in its messages:
        ``arn:aws:sts::<account>:assumed-role/<role name>/<session name>``."""
        role_arn = str(spec.get("role_arn"))
        account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
        role = role_arn.rsplit("/", 1)[-1]
        return f"arn:aws:sts::{account}:assumed-role/{role}/{spec.get('session_name') or name}"

    def _record(self, caller: str, operation: str, decision: Decision) -> None:
        with self._lock:
            self._seq += 1
            self._decisions.append(
                {
                    "seq": self._seq,
                    "time": time.time(),
                    "caller": caller,
                    "operation": operation,
                    "action": decision.action,
                    "resource": decision.resource,
                    "allowed": decision.allowed,
                    "effect": decision.effect,
                    "sid": decision.sid,
                    "sids": list(decision.sids),
                    "reason": decision.reason,
                    "context": decision.context,
                    "why": decision.why,
                }
            )

    def authorize(self, caller: str, call: Call) -> Decision | None:
        """Evaluate every authorization of ``call`` for ``caller`` in order,
        recording each decision; the first denial (AWS stops there), else
        ``None``. ``None`` too for a caller without a loaded policy."""
        with self._lock:
            spec = self.principals.get(caller) if self.enabled else None
        if spec is None:
            return None
        principal = self.principal_arn(caller, spec)
        try:
            needed = authorizations(call, self.estate)
        except Exception as exc:  # not modelled, or a bug here: never let the call through unchecked
            why = (
                f"the ferry emulator does not model the authorization of {call.name} "
                "(tests/emulator/iam_behaviours.py), so it refuses it"
                if isinstance(exc, NotModelled)
                else f"the ferry emulator could not work out its authorization ({type(exc).__name__}: {exc})"
            )
            decision = Decision(
                call.name, "-", False, "NotModelled", None, [],
                f"User: {principal} is not authorized to perform: {call.name}: {why}",
            )
            self._record(caller, call.name, decision)
            return decision
        for auth in needed:
            decision = evaluate(spec["statements"], auth, principal)
            self._record(caller, call.name, decision)
            if not decision.allowed:
                return decision
        return None

    def authorize_service_role(self, role_arn: str, action: str, resource: str) -> Decision | None:
        """A call a service makes as a loaded role (the router invoking a
        schedule's target as its ``RoleArn``): the decision (recorded), or
        ``None`` when no loaded principal has that role ARN."""
        with self._lock:
            found = [(n, s) for n, s in self.principals.items() if s.get("role_arn") == role_arn and s.get("service_role")]
            enabled = self.enabled
        if not found or not enabled:
            return None
        name, spec = found[0]
        decision = evaluate(spec["statements"], Authorization(action, resource), f"arn:aws:sts::{role_arn.split(':')[4]}:assumed-role/{role_arn.rsplit('/', 1)[-1]}/{(spec.get('service_role') or ['service'])[0]}")
        self._record(name, action, decision)
        return decision

    def intercept(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        operation_of: Callable[[str, str, str], str | None],
        account: str,
        record_call: Callable[[str, str, int], None] | None = None,
    ) -> Iterable[bytes] | None:
        """The WSGI hook (``FerryControlMiddleware.serve_aws``, before faults and
        moto): ``None`` to serve the request, or AWS's AccessDeniedException."""
        scope = _scope(environ)
        if len(scope) < 4:
            return None
        caller, region, service = scope[0], scope[2], scope[3]
        with self._lock:
            if not self.enabled or caller not in self.principals:
                return None
        target = environ.get("HTTP_X_AMZ_TARGET") or ""
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        query = parse_qs(environ.get("QUERY_STRING", "") or "")
        raw = _read_body(environ)
        if target:
            operation = target.rpartition(".")[2]
        else:
            form = parse_qs(raw.decode(errors="replace")) if "form-urlencoded" in (environ.get("CONTENT_TYPE") or "") else {}
            operation = (query.get("Action") or form.get("Action") or [None])[0] or operation_of(service, method, path) or f"{method} {path}"
        try:
            body = json.loads(raw) if raw.strip() and (target or "json" in (environ.get("CONTENT_TYPE") or "")) else {}
        except ValueError:
            body = {}
        call = Call(service, operation, body if isinstance(body, dict) else {}, region, account, path, query)
        decision = self.authorize(caller, call)
        if decision is None:
            return None
        status, headers, payload = denial_response(environ, call, decision)
        if record_call is not None:
            record_call(caller, call.name, status)
        start_response(f"{status} {'Forbidden' if status == 403 else 'Bad Request'}", headers)
        return [payload]


def denial_response(environ: dict[str, Any], call: Call, decision: Decision) -> tuple[int, list[tuple[str, str]], bytes]:
    """AccessDeniedException as the service's protocol answers it:

    * awsJson (``X-Amz-Target``): HTTP 400, ``{"__type": "AccessDeniedException",
      "message": ...}``; DynamoDB sends ``{"__type":
      "com.amazon.coral.service#AccessDeniedException", "Message": ...}``;
      CloudWatch's CBOR requests reach here as awsJson 1.0 and
      ``cloudwatch_behaviours.serve_rpc_v2_cbor`` turns this answer into its
      CBOR error (``com.amazon.coral.service#AccessDeniedException``);
    * REST (EventBridge Scheduler): HTTP 403, ``x-amzn-ErrorType:
      AccessDeniedException``, ``{"Message": ...}``;
    * query: HTTP 403, an ``ErrorResponse`` with code ``AccessDenied``."""
    message = decision.reason
    request_id = str(uuid.uuid4())
    if environ.get("HTTP_X_AMZ_TARGET"):
        content_type = environ.get("CONTENT_TYPE") or "application/x-amz-json-1.1"
        if not content_type.startswith("application/x-amz-json"):
            content_type = "application/x-amz-json-1.1"
        if call.service == "dynamodb":
            document = {"__type": "com.amazon.coral.service#AccessDeniedException", "Message": message}
        else:
            document = {"__type": "AccessDeniedException", "message": message}
        body = json.dumps(document).encode()
        return 400, [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("x-amzn-ErrorType", "AccessDeniedException"),
            ("x-amzn-RequestId", request_id),
        ], body
    if "form-urlencoded" in (environ.get("CONTENT_TYPE") or "") or environ.get("QUERY_STRING", "").find("Action=") >= 0:
        from xml.sax.saxutils import escape

        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>{escape(message)}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        return 403, [("Content-Type", "text/xml"), ("Content-Length", str(len(body))), ("x-amzn-RequestId", request_id)], body
    body = json.dumps({"Message": message}).encode()
    return 403, [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("x-amzn-ErrorType", "AccessDeniedException"),
        ("x-amzn-RequestId", request_id),
    ], body


IAM = Iam()
