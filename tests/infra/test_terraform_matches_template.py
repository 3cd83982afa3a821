"""The Terraform module (infra/terraform/modules/ferry) deploys what template.yaml deploys.

Terraform cannot run here, so the module's HCL is parsed (python-hcl2) and
compared with template.yaml, the source of truth, read as YAML with
CloudFormation's short-form tags accepted. Both sides are put in one notation
before comparing: a template parameter ``FooBar`` is ``var.foo_bar``,
``AWS::Partition``/``Region``/``AccountId``/``StackName`` are
``local.partition``/``local.region``/``local.account_id``/``var.name``, a
``Fn::GetAtt`` is the module resource's attribute, a ``Fn::If`` on an "Any..."
condition is the module's ``var.x == "" ? ... : var.x``; on the module side
``local.*``, ``each.key`` and ``each.value.*`` are substituted.

Compared:

* the functions: the same set (the template's ``<stack>-<name>`` are the
  module's ``<name>-<key>``), and per function runtime, handler, architecture,
  memory, timeout, X-Ray tracing, log format, log group name and retention,
  description, every environment variable (name and value);
* the asynchronous invoke config: retries, maximum event age, the on-failure
  destination;
* the EventBridge rules: the same set, the same function, event patterns equal
  as JSON, the same retry policy, a dead-letter queue that is the function's
  own events queue, a Lambda permission for events.amazonaws.com scoped to the
  rule; the reconcile schedule (expression, description, retry policy, queue);
* IAM: per function role, the statements of the template's ``Policies`` by
  Sid: the same Sids, effect, actions (as sets), resources and conditions
  (operator, key and values); the policies SAM adds to a function's role
  (AWSLambdaBasicExecutionRole, AWSXrayWriteOnlyAccess for ``Tracing:
  Active``, sqs:SendMessage on the on-failure destination); the scheduler
  role's trust and policy;
* the ledger table: keys and their types, billing mode, point-in-time
  recovery, encryption at rest, TTL (absent from both today);
* the config parameter: name, type, tier, and that it is created only when a
  configuration is given;
* every template parameter has a variable with the same default and the same
  AllowedPattern / AllowedValues;
* ferry's own alarms: the same set, metric, namespace, statistic, period,
  threshold, comparison and missing-data treatment;
* release notifications: which
  resources exist only when enabled (and with an e-mail), the rule's pattern,
  target, input paths and input template (the rendered text itself is tested
  against the template in tests/emulator), the topic's name and policy, the
  e-mail subscription.

Not compared (read the module for these):

* names CloudFormation generates (rules, queues, alarms, roles, table): the
  module names them ``<name>-...``;
* a template parameter's description and the module's extra variables
  (package_dir, s3_*, name);
* the dead-letter queues' settings and their queue policies (who may send:
  the rules of the queue's function; TLS only), the alarms' descriptions,
  dimensions and actions;
* the conditions' semantics beyond their text (the ``ecs:cluster`` values are
  compared as the same list comprehension over ``cluster_names``);
* anything only Terraform itself would check: types, references to
  resources that exist, provider argument names, plan-time values.
  ``terraform validate`` is not run: no Terraform binary is available here.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import hcl2
import pytest

ROOT = Path(__file__).resolve().parents[2]
# the local stack's CloudFormation helpers (tests/emulator/cfn.py): one reader of template.yaml
sys.path.insert(0, str(ROOT / "tests" / "emulator"))
import cfn  # noqa: E402
TEMPLATE = ROOT / "template.yaml"
MODULE = ROOT / "infra" / "terraform" / "modules" / "ferry"

# Module locals that stand for CloudFormation pseudo parameters: never expanded.
PSEUDO_LOCALS = {"partition", "region", "account_id"}
PSEUDO_PARAMETERS = {
    "AWS::Partition": "${local.partition}",
    "AWS::Region": "${local.region}",
    "AWS::AccountId": "${local.account_id}",
    "AWS::StackName": "${var.name}",
}
# template.yaml resources a function references, and their module addresses.
ADDRESSES = {
    "LedgerTable": "aws_dynamodb_table.ledger",
    "SchedulerRole": "aws_iam_role.scheduler",
    "FailedInvocationsQueue": "aws_sqs_queue.failed_invocations",
    "NotificationTopic": "aws_sns_topic.notifications[0]",
    "ReleaseNotificationRule": "aws_cloudwatch_event_rule.release_notifications[0]",
}
# What `Ref` returns for those resources, as module attributes.
REF_ATTRIBUTES = {"LedgerTable": "name", "FailedInvocationsQueue": "url", "NotificationTopic": "arn"}


# --------------------------------------------------------------------- loading


def load_template() -> dict[str, Any]:
    """template.yaml with CloudFormation's short-form tags, by the local stack's own loader."""
    return cfn.load_template(str(TEMPLATE))


class Module:
    """Every block of the module's .tf files, merged: ``resource[type][name]``,
    ``data[type][name]``, ``variable[name]``, ``locals[name]``."""

    def __init__(self, directory: Path) -> None:
        options = hcl2.SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
        self.resource: dict[str, dict[str, Any]] = {}
        self.data: dict[str, dict[str, Any]] = {}
        self.variable: dict[str, Any] = {}
        self.locals: dict[str, Any] = {}
        for path in sorted(directory.glob("*.tf")):
            with path.open() as file:
                parsed = hcl2.load(file, serialization_options=options)
            for kind in ("resource", "data"):
                for block in parsed.get(kind, []):
                    for type_, named in block.items():
                        for name, body in named.items():
                            getattr(self, kind).setdefault(type_, {})[name] = body
            for block in parsed.get("variable", []):
                self.variable.update(block)
            for block in parsed.get("locals", []):
                self.locals.update(block)

    def resolve(self, value: Any, key: str | None = None, each: Any = None) -> Any:
        """``value`` with ``local.*`` (but the pseudo parameters'), ``each.key`` and
        ``each.value.*`` substituted, as far as they are plain values."""
        if isinstance(value, list):
            return [self.resolve(item, key, each) for item in value]
        if isinstance(value, dict):
            return {k: self.resolve(v, key, each) for k, v in value.items()}
        if not isinstance(value, str):
            return value
        whole = re.fullmatch(r"\$\{(local|each)\.([\w.]+)\}", value)
        if whole:
            scope, path = whole.groups()
            found = self._lookup(scope, path, key, each)
            if found is not None:
                return self.resolve(found, key, each)
        return re.sub(r"\$\{(local|each)\.([\w.]+)\}", lambda m: self._embed(m, key, each), self._index(value, key, each))

    def _lookup(self, scope: str, path: str, key: str | None, each: Any) -> Any:
        parts = path.split(".")
        if scope == "local":
            if parts[0] in PSEUDO_LOCALS:
                return None
            node: Any = self.locals
        elif parts == ["key"]:
            return key
        elif parts[0] == "value" and each is not None:
            node, parts = each, parts[1:]
        else:
            return None
        for part in parts:
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def _embed(self, match: re.Match[str], key: str | None, each: Any) -> str:
        found = self._lookup(match.group(1), match.group(2), key, each)
        return self.resolve(found, key, each) if isinstance(found, (str, int)) and not isinstance(found, bool) else match.group(0)

    @staticmethod
    def _index(value: str, key: str | None, each: Any) -> str:
        """``[each.key]`` and ``[each.value.x]`` inside an expression, as the literal index."""
        if key is not None:
            value = value.replace("[each.key]", f'["{key}"]')
        if isinstance(each, dict):
            value = re.sub(r"\[each\.value\.(\w+)\]", lambda m: f'["{each[m.group(1)]}"]' if m.group(1) in each else m.group(0), value)
        return value


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def kebab(name: str) -> str:
    return snake(name).replace("_", "-")


TEMPLATE_DOC = load_template()
RESOURCES = TEMPLATE_DOC["Resources"]
PARAMETERS = TEMPLATE_DOC["Parameters"]
CONDITIONS = TEMPLATE_DOC["Conditions"]
MODULE_DOC = Module(MODULE)


def merged(globals_: Any, own: Any) -> Any:
    """A function's properties over the Globals section: maps merge key by key
    (as SAM merges them), anything else is the function's own."""
    if isinstance(globals_, dict) and isinstance(own, dict):
        return {k: merged(globals_[k], own[k]) if k in globals_ and k in own else own.get(k, globals_.get(k)) for k in globals_ | own}
    return own


def template_functions() -> dict[str, dict[str, Any]]:
    """The template's functions by module key (``deploy``...), Globals merged in."""
    globals_ = TEMPLATE_DOC["Globals"]["Function"]
    functions = {}
    for logical_id, resource in RESOURCES.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        properties = merged(globals_, resource["Properties"])
        name = properties["FunctionName"]["Fn::Sub"]
        assert name.startswith("${AWS::StackName}-"), f"{logical_id}: FunctionName {name}"
        properties["LogicalId"] = logical_id
        functions[name.removeprefix("${AWS::StackName}-")] = properties
    return functions


FUNCTIONS = template_functions()


def function_key_of(logical_id: str, suffix: str) -> str:
    """``DeployEventsDeadLetterQueue`` -> ``deploy`` for suffix ``EventsDeadLetterQueue``."""
    assert logical_id.endswith(suffix), logical_id
    key = logical_id.removesuffix(suffix).lower()
    assert key in FUNCTIONS, logical_id
    return key


def cfn(value: Any) -> Any:
    """A template value in the module's notation."""
    if isinstance(value, list):
        return [cfn(item) for item in value]
    if not isinstance(value, dict):
        return value
    if "Ref" in value:
        name = value["Ref"]
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if name in PARAMETERS:
            return f"${{var.{snake(name)}}}"
        if name in REF_ATTRIBUTES:
            return f"${{{ADDRESSES[name]}.{REF_ATTRIBUTES[name]}}}"
        raise AssertionError(f"no module equivalent for Ref {name}")
    if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        return re.sub(
            r"\$\{([\w:]+)\}",
            lambda m: PSEUDO_PARAMETERS.get(m.group(1)) or f"${{var.{snake(m.group(1))}}}",
            value["Fn::Sub"],
        )
    if "Fn::GetAtt" in value:
        resource, attribute = value["Fn::GetAtt"]
        assert attribute == "Arn", value
        if resource.endswith("EventsDeadLetterQueue"):
            return f'${{aws_sqs_queue.events_dead_letter["{function_key_of(resource, "EventsDeadLetterQueue")}"].arn}}'
        return f"${{{ADDRESSES[resource]}.arn}}"
    if "Fn::If" in value:
        condition, then, otherwise = value["Fn::If"]
        left, right = CONDITIONS[condition]["Fn::Equals"]
        assert right == "" and otherwise == left, value
        variable = snake(left["Ref"])
        return f'${{var.{variable} == "" ? "{cfn(then)}" : var.{variable}}}'
    if "Fn::Split" in value:
        # The ecs:cluster values: "arn:*:ecs:*:*:cluster/<name>" for each name
        # of a list parameter (Split of a Sub of a Join).
        delimiter, (template, variables) = value["Fn::Split"][0], value["Fn::Split"][1]["Fn::Sub"]
        (placeholder, joined), = variables.items()
        join_delimiter, listed = joined["Fn::Join"]
        prefix = template.removesuffix(f"${{{placeholder}}}")
        assert template.endswith(f"${{{placeholder}}}") and join_delimiter == delimiter + prefix, value
        return f'${{[for each in var.{snake(listed["Ref"])} : "{prefix}${{each}}"]}}'
    raise AssertionError(f"no module equivalent for {value}")


def tf(value: Any, key: str | None = None, each: Any = None) -> Any:
    """A module value, resolved, with a list comprehension's variable named ``each``."""
    resolved = MODULE_DOC.resolve(value, key, each)
    if isinstance(resolved, str):
        loop = re.fullmatch(r'\$\{\[for (\w+) in (var\.\w+) : "(.*)\$\{\1\}"\]\}', resolved)
        if loop:
            return f'${{[for each in {loop.group(2)} : "{loop.group(3)}${{each}}"]}}'
    return resolved


def as_set(value: Any) -> frozenset[str]:
    return frozenset(value if isinstance(value, list) else [value])


def only(blocks: Any) -> dict[str, Any]:
    """The single block of a nested block list (``tracing_config { ... }``)."""
    assert isinstance(blocks, list) and len(blocks) == 1, blocks
    return blocks[0]


# --------------------------------------------------------------- functions


def module_function(key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return MODULE_DOC.resource["aws_lambda_function"]["function"], MODULE_DOC.locals["functions"][key]


def test_the_module_deploys_the_same_five_functions_under_the_same_names():
    resource = MODULE_DOC.resource["aws_lambda_function"]["function"]
    assert resource["for_each"] == "${local.functions}"
    assert set(MODULE_DOC.locals["functions"]) == set(FUNCTIONS)
    assert resource["function_name"] == "${var.name}-${each.key}"


@pytest.mark.parametrize("key", sorted(FUNCTIONS))
def test_each_function_has_the_templates_runtime_architecture_memory_timeout_and_logging(key):
    template = FUNCTIONS[key]
    resource, each = module_function(key)
    assert tf(resource["runtime"]) == template["Runtime"]
    assert tf(resource["handler"]) == template["Handler"]
    assert tf(resource["architectures"]) == template["Architectures"] == ["arm64"]
    assert tf(resource["memory_size"], key, each) == template["MemorySize"]
    assert tf(resource["timeout"], key, each) == template["Timeout"]
    assert tf(resource["description"], key, each) == template["Description"]
    assert tf(only(resource["tracing_config"])["mode"]) == template["Tracing"]
    logging = only(resource["logging_config"])
    assert tf(logging["log_format"]) == template["LoggingConfig"]["LogFormat"]
    log_group = RESOURCES[template["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"]
    module_log_group = MODULE_DOC.resource["aws_cloudwatch_log_group"]["function"]
    assert tf(logging["log_group"], key, each) == f'${{aws_cloudwatch_log_group.function["{key}"].name}}'
    assert tf(module_log_group["name"], key) == cfn(log_group["LogGroupName"])
    assert tf(module_log_group["retention_in_days"]) == cfn(log_group["RetentionInDays"])
    # Neither sets what the other leaves out.
    for (template_part, template_name), (module_part, module_name) in (
        ((template, "ReservedConcurrentExecutions"), (resource, "reserved_concurrent_executions")),
        ((template, "DeadLetterQueue"), (resource, "dead_letter_config")),
        ((template, "KmsKeyArn"), (resource, "kms_key_arn")),
        ((template, "VpcConfig"), (resource, "vpc_config")),
        ((log_group, "KmsKeyId"), (module_log_group, "kms_key_id")),
    ):
        assert (template_name in template_part) == (module_name in module_part), f"{key}: {template_name} / {module_name}"


@pytest.mark.parametrize("key", sorted(FUNCTIONS))
def test_each_function_has_the_templates_environment_variables_with_the_same_values(key):
    resource, each = module_function(key)
    module_variables = tf(only(resource["environment"])["variables"], key, each)
    template_variables = {name: cfn(value) for name, value in FUNCTIONS[key]["Environment"]["Variables"].items()}
    assert set(module_variables) == set(template_variables)
    assert module_variables == template_variables


def test_failed_asynchronous_invocations_are_retried_and_kept_as_in_the_template():
    template = TEMPLATE_DOC["Globals"]["Function"]["EventInvokeConfig"]
    module = MODULE_DOC.resource["aws_lambda_function_event_invoke_config"]["function"]
    assert module["for_each"] == "${local.functions}"
    assert module["maximum_retry_attempts"] == template["MaximumRetryAttempts"]
    assert module["maximum_event_age_in_seconds"] == template["MaximumEventAgeInSeconds"]
    on_failure = template["DestinationConfig"]["OnFailure"]
    assert on_failure["Type"] == "SQS"
    assert only(only(module["destination_config"])["on_failure"])["destination"] == cfn(on_failure["Destination"])
    assert all("EventInvokeConfig" not in f or f["EventInvokeConfig"] == template for f in FUNCTIONS.values())


# ------------------------------------------------------------------- rules


def template_rules() -> dict[str, tuple[str, dict[str, Any]]]:
    """The template's EventBridgeRule events by module key (``deploy-ecr-push``)."""
    rules = {}
    for key, function in FUNCTIONS.items():
        for event_name, event in function.get("Events", {}).items():
            if event["Type"] == "EventBridgeRule":
                rules[f"{key}-{kebab(event_name)}"] = (key, event["Properties"])
    return rules


RULES = template_rules()


def test_the_module_has_the_templates_eventbridge_rules():
    assert set(MODULE_DOC.locals["event_rules"]) == set(RULES)
    for type_ in ("aws_cloudwatch_event_rule", "aws_cloudwatch_event_target", "aws_lambda_permission"):
        assert MODULE_DOC.resource[type_]["event"]["for_each"] == "${local.event_rules}", type_


@pytest.mark.parametrize("key", sorted(RULES))
def test_each_rule_has_the_templates_pattern_retry_policy_and_dead_letter_queue(key):
    function, template = RULES[key]
    each = MODULE_DOC.locals["event_rules"][key]
    assert each["function"] == function
    rule = MODULE_DOC.resource["aws_cloudwatch_event_rule"]["event"]
    assert rule["event_pattern"] == "${jsonencode(each.value.pattern)}"
    assert json.dumps(each["pattern"], sort_keys=True) == json.dumps(template["Pattern"], sort_keys=True)

    target = MODULE_DOC.resource["aws_cloudwatch_event_target"]["event"]
    assert tf(target["arn"], key, each) == f'${{aws_lambda_function.function["{function}"].arn}}'
    retry = tf(only(target["retry_policy"]), key, each)
    assert retry == {
        "maximum_retry_attempts": template["RetryPolicy"]["MaximumRetryAttempts"],
        "maximum_event_age_in_seconds": template["RetryPolicy"]["MaximumEventAgeInSeconds"],
    }
    dead_letter = tf(only(target["dead_letter_config"])["arn"], key, each)
    assert dead_letter == cfn(template["DeadLetterConfig"]["Arn"])
    assert dead_letter == f'${{aws_sqs_queue.events_dead_letter["{function}"].arn}}'

    permission = tf(MODULE_DOC.resource["aws_lambda_permission"]["event"], key, each)
    assert permission["principal"] == "events.amazonaws.com"
    assert permission["action"] == "lambda:InvokeFunction"
    assert permission["function_name"] == f'${{aws_lambda_function.function["{function}"].function_name}}'
    assert permission["source_arn"] == f'${{aws_cloudwatch_event_rule.event["{key}"].arn}}'


def test_reconcile_runs_on_the_templates_schedule_with_its_retry_policy_and_queue():
    (event,) = [e["Properties"] for e in FUNCTIONS["reconcile"]["Events"].values() if e["Type"] == "Schedule"]
    rule = tf(MODULE_DOC.resource["aws_cloudwatch_event_rule"]["reconcile_schedule"])
    assert rule["schedule_expression"] == cfn(event["Schedule"]) == "${var.reconcile_schedule}"
    assert rule["description"] == event["Description"]
    assert "event_pattern" not in rule
    target = tf(MODULE_DOC.resource["aws_cloudwatch_event_target"]["reconcile_schedule"])
    assert target["arn"] == '${aws_lambda_function.function["reconcile"].arn}'
    assert only(target["retry_policy"]) == {
        "maximum_retry_attempts": event["RetryPolicy"]["MaximumRetryAttempts"],
        "maximum_event_age_in_seconds": event["RetryPolicy"]["MaximumEventAgeInSeconds"],
    }
    assert only(target["dead_letter_config"])["arn"] == cfn(event["DeadLetterConfig"]["Arn"])
    permission = tf(MODULE_DOC.resource["aws_lambda_permission"]["reconcile_schedule"])
    assert permission["principal"] == "events.amazonaws.com"
    assert permission["source_arn"] == "${aws_cloudwatch_event_rule.reconcile_schedule.arn}"
    assert MODULE_DOC.variable["reconcile_schedule"]["default"] == PARAMETERS["ReconcileSchedule"]["Default"]


def test_every_function_with_events_has_its_own_dead_letter_queue():
    queues = {function_key_of(r, "EventsDeadLetterQueue") for r, v in RESOURCES.items() if r.endswith("EventsDeadLetterQueue") and v["Type"] == "AWS::SQS::Queue"}
    assert queues == set(FUNCTIONS)
    assert MODULE_DOC.resource["aws_sqs_queue"]["events_dead_letter"]["for_each"] == "${local.functions}"
    assert MODULE_DOC.resource["aws_sqs_queue_policy"]["events_dead_letter"]["for_each"] == "${local.functions}"


# --------------------------------------------------------------------- IAM


def normalized_template_statement(statement: dict[str, Any]) -> dict[str, Any]:
    actions = statement["Action"]
    conditions = {}
    for operator, keys in statement.get("Condition", {}).items():
        for condition_key, values in keys.items():
            conditions[(operator, condition_key)] = as_set(cfn(values))
    return {
        "effect": statement["Effect"],
        "actions": as_set(actions),
        "resources": as_set(cfn(statement["Resource"])),
        "conditions": conditions,
    }


def normalized_module_statement(statement: dict[str, Any]) -> dict[str, Any]:
    conditions = {}
    for condition in statement.get("condition", []):
        conditions[(condition["test"], condition["variable"])] = as_set(tf(condition["values"]))
    return {
        "effect": statement.get("effect", "Allow"),
        "actions": as_set(statement["actions"]),
        "resources": as_set(tf(statement["resources"])),
        "conditions": conditions,
    }


def template_statements(key: str) -> dict[str, dict[str, Any]]:
    (policy,) = FUNCTIONS[key]["Policies"]
    statements = policy["Statement"]
    assert len({s["Sid"] for s in statements}) == len(statements), f"{key}: Sids repeat"
    return {s["Sid"]: normalized_template_statement(s) for s in statements}


def module_statements(key: str) -> dict[str, dict[str, Any]]:
    statements = MODULE_DOC.data["aws_iam_policy_document"][key]["statement"]
    assert len({s["sid"] for s in statements}) == len(statements), f"{key}: Sids repeat"
    return {s["sid"]: normalized_module_statement(s) for s in statements}


@pytest.mark.parametrize("key", sorted(FUNCTIONS))
def test_each_role_grants_and_denies_the_same_actions_as_the_template(key):
    def actions(statements: dict[str, dict[str, Any]], effect: str) -> set[str]:
        return {a for s in statements.values() if s["effect"] == effect for a in s["actions"]}

    template, module = template_statements(key), module_statements(key)
    for effect in ("Allow", "Deny"):
        missing, extra = actions(template, effect) - actions(module, effect), actions(module, effect) - actions(template, effect)
        assert not missing and not extra, f"{key} {effect}: missing from the module {sorted(missing)}, not in the template {sorted(extra)}"


@pytest.mark.parametrize("key", sorted(FUNCTIONS))
def test_each_roles_statements_have_the_templates_sids_resources_and_conditions(key):
    template, module = template_statements(key), module_statements(key)
    assert list(module) == list(template), f"{key}: Sids (in order)"
    for sid, statement in template.items():
        assert module[sid] == statement, f"{key} {sid}"


def test_each_role_is_the_functions_own_with_the_policies_sam_adds():
    assert MODULE_DOC.locals["function_policies"] == {key: f"${{data.aws_iam_policy_document.{key}.json}}" for key in FUNCTIONS}
    role = MODULE_DOC.resource["aws_iam_role"]["function"]
    assert role["for_each"] == "${local.functions}"
    trust = MODULE_DOC.data["aws_iam_policy_document"]["lambda_assume_role"]["statement"]
    assert [(s["actions"], only(s["principals"])["identifiers"]) for s in trust] == [(["sts:AssumeRole"], ["lambda.amazonaws.com"])]
    inline = MODULE_DOC.resource["aws_iam_role_policy"]["function"]
    assert inline["policy"] == "${local.function_policies[each.key]}"
    assert inline["role"] == "${aws_iam_role.function[each.key].id}"
    function = MODULE_DOC.resource["aws_lambda_function"]["function"]
    assert function["role"] == "${aws_iam_role.function[each.key].arn}"

    # SAM attaches AWSLambdaBasicExecutionRole to every function's role, and
    # AWSXrayWriteOnlyAccess when Tracing is Active.
    attachments = {
        tf(a["policy_arn"]) for a in MODULE_DOC.resource["aws_iam_role_policy_attachment"].values() if a["role"] == "${aws_iam_role.function[each.key].name}" and a["for_each"] == "${local.functions}"
    }
    assert TEMPLATE_DOC["Globals"]["Function"]["Tracing"] == "Active"
    assert attachments == {
        "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:${local.partition}:iam::aws:policy/AWSXrayWriteOnlyAccess",
    }

    # SAM grants sqs:SendMessage on an SQS on-failure destination.
    destination = cfn(TEMPLATE_DOC["Globals"]["Function"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"])
    on_failure = MODULE_DOC.resource["aws_iam_role_policy"]["on_failure_destination"]
    assert on_failure["for_each"] == "${local.functions}"
    assert on_failure["policy"] == "${data.aws_iam_policy_document.on_failure_destination.json}"
    (statement,) = MODULE_DOC.data["aws_iam_policy_document"]["on_failure_destination"]["statement"]
    assert (statement["effect"], statement["actions"], tf(statement["resources"])) == ("Allow", ["sqs:SendMessage"], [destination])


def test_the_scheduler_role_is_trusted_and_scoped_as_in_the_template():
    template = RESOURCES["SchedulerRole"]["Properties"]
    (trust,) = template["AssumeRolePolicyDocument"]["Statement"]
    (module_trust,) = MODULE_DOC.data["aws_iam_policy_document"]["scheduler_assume_role"]["statement"]
    principal = only(module_trust["principals"])
    assert (principal["type"], principal["identifiers"]) == ("Service", [trust["Principal"]["Service"]])
    assert module_trust["sid"] == trust["Sid"]
    assert normalized_module_statement({**module_trust, "resources": []}) == normalized_template_statement({**trust, "Resource": []})
    (policy,) = template["Policies"]
    module_policy = {s["sid"]: normalized_module_statement(s) for s in MODULE_DOC.data["aws_iam_policy_document"]["scheduler"]["statement"]}
    template_policy = {s["Sid"]: normalized_template_statement(s) for s in policy["PolicyDocument"]["Statement"]}
    assert module_policy == template_policy
    assert MODULE_DOC.resource["aws_iam_role_policy"]["scheduler"]["name"] == policy["PolicyName"]


# ------------------------------------------------------------------- state


def test_the_ledger_table_has_the_templates_keys_billing_recovery_encryption_and_ttl():
    template = RESOURCES["LedgerTable"]
    properties = template["Properties"]
    table = MODULE_DOC.resource["aws_dynamodb_table"]["ledger"]
    keys = {k["KeyType"]: k["AttributeName"] for k in properties["KeySchema"]}
    assert (table["hash_key"], table.get("range_key")) == (keys["HASH"], keys.get("RANGE"))
    assert {a["name"]: a["type"] for a in table["attribute"]} == {a["AttributeName"]: a["AttributeType"] for a in properties["AttributeDefinitions"]}
    assert table["billing_mode"] == properties["BillingMode"]
    assert only(table["point_in_time_recovery"])["enabled"] is properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]
    sse = only(table["server_side_encryption"])
    assert sse["enabled"] is properties["SSESpecification"]["SSEEnabled"]
    assert ("kms_key_arn" in sse) == ("KMSMasterKeyId" in properties["SSESpecification"])
    ttl = properties.get("TimeToLiveSpecification")
    if ttl is None:
        assert "ttl" not in table
    else:
        assert only(table["ttl"]) == {"attribute_name": ttl["AttributeName"], "enabled": ttl["Enabled"]}
    # DeletionPolicy: Retain -> a destroy must not delete the release history.
    assert template["DeletionPolicy"] == "Retain"
    assert only(table["lifecycle"])["prevent_destroy"] is True


def test_the_config_parameter_is_created_as_in_the_template_and_only_with_a_config():
    template = RESOURCES["ConfigParameter"]
    parameter = MODULE_DOC.resource["aws_ssm_parameter"]["config"]
    assert (parameter["name"], parameter["type"], parameter["tier"], parameter["value"]) == tuple(
        cfn(template["Properties"][p]) for p in ("Name", "Type", "Tier", "Value")
    )
    assert CONDITIONS[template["Condition"]] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ConfigToml"}, ""]}]}
    assert parameter["count"] == '${var.config_toml == "" ? 0 : 1}'


# -------------------------------------------------------------- parameters


def hcl_unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_every_template_parameter_is_a_variable_with_the_same_default_and_constraint(name):
    parameter, variable = PARAMETERS[name], MODULE_DOC.variable.get(snake(name))
    assert variable is not None, f"no variable {snake(name)} for parameter {name}"
    if parameter.get("AllowedValues") == ["true", "false"]:
        # A CloudFormation switch is a String; Terraform has bool.
        assert variable["type"] == "bool"
        assert variable["default"] is (parameter["Default"] == "true")
        return
    expected_type = {"String": "string", "Number": "number", "CommaDelimitedList": "${list(string)}"}[parameter["Type"]]
    assert variable["type"] == expected_type
    # ConfigToml's default is the template's sample configuration; the module
    # asks for one (file("ferry.toml")) and takes "" as "manage it yourself".
    if "Default" in parameter and name != "ConfigToml":
        assert variable.get("default") == parameter["Default"], name
    conditions = " ".join(v["condition"] for v in variable.get("validation", []))
    if "AllowedPattern" in parameter:
        patterns = [hcl_unescape(p) for p in re.findall(r'regex\("((?:[^"\\]|\\.)*)"', conditions)]
        assert parameter["AllowedPattern"] in patterns, name
    if "AllowedValues" in parameter:
        assert f"contains([{', '.join(str(v) for v in parameter['AllowedValues'])}]" in conditions, name


# ------------------------------------------------------------------ alarms


def module_alarm(logical_id: str) -> tuple[dict[str, Any], str | None]:
    alarms = MODULE_DOC.resource["aws_cloudwatch_metric_alarm"]
    if logical_id.endswith("EventsDeadLetterAlarm"):
        return alarms["events_dead_letter"], function_key_of(logical_id, "EventsDeadLetterAlarm")
    if logical_id.endswith("ErrorsAlarm"):
        return alarms["errors"], function_key_of(logical_id, "ErrorsAlarm")
    assert logical_id == "FailedInvocationsAlarm", logical_id
    return alarms["failed_invocations"], None


def test_the_module_has_the_templates_alarms_with_the_same_metric_and_threshold():
    template = {k: v["Properties"] for k, v in RESOURCES.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    covered = {("errors", k) for k in FUNCTIONS} | {("events_dead_letter", k) for k in FUNCTIONS} | {("failed_invocations", None)}
    seen = set()
    for logical_id, properties in template.items():
        alarm, key = module_alarm(logical_id)
        seen.add(next((n, key) for n, a in MODULE_DOC.resource["aws_cloudwatch_metric_alarm"].items() if a is alarm))
        fields = ("namespace", "metric_name", "statistic", "period", "evaluation_periods", "threshold", "comparison_operator", "treat_missing_data")
        expected = ("Namespace", "MetricName", "Statistic", "Period", "EvaluationPeriods", "Threshold", "ComparisonOperator", "TreatMissingData")
        assert tuple(alarm[f] for f in fields) == tuple(properties[e] for e in expected), logical_id
    assert seen == covered


# ----------------------------------------------------------- notifications

NOTIFICATION_RESOURCES = {
    "NotificationTopic": ("aws_sns_topic", "notifications"),
    "NotificationTopicPolicy": ("aws_sns_topic_policy", "notifications"),
    "NotificationEmailSubscription": ("aws_sns_topic_subscription", "notification_email"),
    "ReleaseNotificationRule": ("aws_cloudwatch_event_rule", "release_notifications"),
}


def test_release_notifications_exist_only_when_enabled_as_in_the_template():
    assert CONDITIONS["NotificationsEnabled"] == {"Fn::Equals": [{"Ref": "EnableNotifications"}, "true"]}
    enabled = "${var.enable_notifications ? 1 : 0}"
    for logical_id, (type_, name) in NOTIFICATION_RESOURCES.items():
        condition = RESOURCES[logical_id]["Condition"]
        expected = enabled if condition == "NotificationsEnabled" else None
        if condition == "HasNotificationEmail":
            assert CONDITIONS[condition] == {
                "Fn::And": [{"Condition": "NotificationsEnabled"}, {"Fn::Not": [{"Fn::Equals": [{"Ref": "NotificationEmail"}, ""]}]}]
            }
            expected = '${var.enable_notifications && var.notification_email != "" ? 1 : 0}'
        assert MODULE_DOC.resource[type_][name]["count"] == expected, logical_id
    assert MODULE_DOC.resource["aws_cloudwatch_event_target"]["release_notifications"]["count"] == enabled
    notification_resources = {(t, n) for t, named in MODULE_DOC.resource.items() for n, body in named.items() if str(body.get("count", "")).startswith("${var.enable_notifications")}
    assert notification_resources == set(NOTIFICATION_RESOURCES.values()) | {("aws_cloudwatch_event_target", "release_notifications")}


def test_the_release_notification_rule_has_the_templates_pattern_and_input_transformer():
    template = RESOURCES["ReleaseNotificationRule"]["Properties"]
    local = MODULE_DOC.locals["release_notification"]
    rule = tf(MODULE_DOC.resource["aws_cloudwatch_event_rule"]["release_notifications"])
    assert rule["event_pattern"] == "${jsonencode(local.release_notification.pattern)}"
    assert json.dumps(local["pattern"], sort_keys=True) == json.dumps(template["EventPattern"], sort_keys=True)
    assert rule["description"] == template["Description"]
    assert rule["event_bus_name"] == template["EventBusName"]
    assert template.get("State", "ENABLED") == "ENABLED" and rule.get("state", "ENABLED") == "ENABLED"

    (template_target,) = template["Targets"]
    target = tf(MODULE_DOC.resource["aws_cloudwatch_event_target"]["release_notifications"])
    assert target["target_id"] == template_target["Id"]
    assert target["arn"] == cfn(template_target["Arn"])
    transformer = only(target["input_transformer"])
    assert transformer["input_paths"] == template_target["InputTransformer"]["InputPathsMap"]
    assert hcl_unescape(transformer["input_template"]) == cfn(template_target["InputTransformer"]["InputTemplate"])


def test_the_notification_topic_takes_only_the_rules_events_and_the_optional_email():
    topic = RESOURCES["NotificationTopic"]["Properties"]
    module_topic = tf(MODULE_DOC.resource["aws_sns_topic"]["notifications"])
    assert (module_topic["name"], module_topic["display_name"]) == (cfn(topic["TopicName"]), topic["DisplayName"])
    assert ("KmsMasterKeyId" in topic) == ("kms_master_key_id" in module_topic)

    (statement,) = RESOURCES["NotificationTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (module_statement,) = MODULE_DOC.data["aws_iam_policy_document"]["notifications"]["statement"]
    principal = only(module_statement["principals"])
    assert (principal["type"], principal["identifiers"]) == ("Service", [statement["Principal"]["Service"]])
    assert module_statement["sid"] == statement["Sid"]
    assert normalized_module_statement(module_statement) == normalized_template_statement(statement)

    subscription = RESOURCES["NotificationEmailSubscription"]["Properties"]
    module_subscription = tf(MODULE_DOC.resource["aws_sns_topic_subscription"]["notification_email"])
    assert (module_subscription["topic_arn"], module_subscription["protocol"], module_subscription["endpoint"]) == (
        cfn(subscription["TopicArn"]),
        subscription["Protocol"],
        cfn(subscription["Endpoint"]),
    )
