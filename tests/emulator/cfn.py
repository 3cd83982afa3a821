"""CloudFormation templates for the local stack: read them, resolve them, and
apply them to the emulator through the service APIs.

Why not moto's own CloudFormation (``CreateStack``)? moto 5.2 creates ECS
resources from a template with only a few of their properties: a task
definition keeps its family, containers, volumes and memory but loses
``NetworkMode``, ``RequiresCompatibilities``, ``Cpu``, the roles and the tags;
a service loses its name, ``LaunchType``, ``NetworkConfiguration`` and
``DeploymentConfiguration`` (the circuit breaker); a cluster is named after the
logical id. It also calls the ECS backend directly, past the emulator's ECS
behaviours (``ecs_behaviours.py``). So the local stack reads the same
template a real account deploys and makes, for each resource, the API call
CloudFormation's resource handler makes (``CreateCluster``,
``RegisterTaskDefinition``, ``CreateService``, ``PutMetricAlarm``, ...),
with every property converted to the API's member names. Only the resource
types and intrinsic functions the sample templates use are implemented; any
other one is an error that names it.

* :func:`load_template` -- YAML (short-form tags such as ``!Ref`` tolerated) or JSON;
* :class:`Resolver` -- ``Ref``, ``Fn::Sub``, ``Fn::GetAtt``, ``Fn::Join``,
  ``Fn::Split``, ``Fn::Select``, ``Fn::If``, ``Fn::Equals``/``Not``/``And``/``Or``,
  ``Condition``, ``Fn::FindInMap``, ``AWS::NoValue`` and the pseudo parameters;
* :func:`apply` -- creates the resources in dependency order; returns the
  physical ids, parameters, attributes and outputs.

CloudFormation's own tags. "In addition to any tags you define, CloudFormation
automatically creates the following stack-level tags with the ``aws:`` prefix:
``aws:cloudformation:logical-id``, ``aws:cloudformation:stack-id``,
``aws:cloudformation:stack-name``" and "the propagation of stack-level tags to
resources, including tags with the ``aws:`` prefix, varies by resource type"
("CloudFormation resource tagging", AWS CloudFormation Template Reference). No
caller may send an ``aws:`` tag (ECS refuses it); CloudFormation adds them
itself. Here: a call made for a resource whose type is in ``stack_tags_on``
(default :data:`STACK_TAGGED_TYPES`) carries the :data:`CLOUDFORMATION_HEADER`
header, and the emulator adds the three tags to what it creates
(``ecs_behaviours.apply_cloudformation_stack_tags``).
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import string
from typing import Any, Callable, Iterable, Iterator

NO_VALUE = object()

#: The header that marks an ECS call as CloudFormation's own, made for one
#: resource of one stack: ``{"stack-name", "stack-id", "logical-id"}`` as JSON.
#: The emulator then puts CloudFormation's ``aws:cloudformation:*`` tags on the
#: resource the call creates (``ecs_behaviours.cloudformation_creations_carry_stack_tags``).
CLOUDFORMATION_HEADER = "X-Ferry-Emulator-CloudFormation"

#: The resource types CloudFormation puts its stack-level ``aws:cloudformation:*``
#: tags on, of those the local stack creates through a call the emulator can mark.
#: ``AWS::ECS::Cluster`` gets them (since 2022: cloudformation-coverage-roadmap
#: issues #807, #1521). ``AWS::ECS::TaskDefinition`` and ``AWS::ECS::Service``
#: do not, as reported on AWS and still open (issues #2063 and #2062, re-tested
#: June 2024): the documentation only says propagation "varies by resource
#: type". A caller that wants a task definition or service as CloudFormation
#: would tag it if it did (ferry must not depend on which) passes its own
#: ``stack_tags_on`` to :func:`apply`.
STACK_TAGGED_TYPES: frozenset[str] = frozenset({"AWS::ECS::Cluster"})


# --------------------------------------------------------------------------
# loading


def _loader() -> type:
    import yaml

    class CloudFormationLoader(yaml.SafeLoader):
        """SafeLoader plus CloudFormation's short-form tags (``!Ref x`` -> ``{"Ref": x}``)."""

    def construct(loader: Any, tag_suffix: str, node: Any) -> Any:
        name = tag_suffix if tag_suffix in ("Ref", "Condition") else f"Fn::{tag_suffix}"
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "Fn::GetAtt" and isinstance(value, str):
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    CloudFormationLoader.add_multi_constructor("!", construct)
    return CloudFormationLoader


def load_template(path: str) -> dict[str, Any]:
    import yaml

    with open(path) as handle:
        text = handle.read()
    if text.lstrip().startswith("{"):
        return json.loads(text)
    return yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass


# --------------------------------------------------------------------------
# resolving


class TemplateError(ValueError):
    pass


class Resolver:
    def __init__(
        self,
        template: dict[str, Any],
        parameters: dict[str, Any] | None = None,
        *,
        region: str,
        account_id: str,
        stack_name: str,
        ssm_lookup: Callable[[str], str] | None = None,
        physical_ids: dict[str, Any] | None = None,
        attributes: dict[tuple[str, str], Any] | None = None,
    ):
        self.template = template
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/00000000-0000-4000-8000-000000000000",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
        }
        self.physical_ids: dict[str, Any] = dict(physical_ids or {})
        self.attributes: dict[tuple[str, str], Any] = dict(attributes or {})
        self.parameters = self._parameters(parameters or {}, ssm_lookup)
        self._conditions: dict[str, bool] = {}

    def _parameters(self, given: dict[str, Any], ssm_lookup: Callable[[str], str] | None) -> dict[str, Any]:
        declared = self.template.get("Parameters") or {}
        unknown = set(given) - set(declared)
        if unknown:
            raise TemplateError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            if name in given:
                value = given[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise TemplateError(f"parameter {name} has no default: give it a value")
            kind = str(spec.get("Type", "String"))
            if kind.startswith("AWS::SSM::Parameter::Value<"):
                if ssm_lookup is None:
                    raise TemplateError(f"parameter {name} reads SSM parameter {value}: no SSM lookup given")
                value = ssm_lookup(str(value))
                kind = kind[len("AWS::SSM::Parameter::Value<"):-1]
            if kind == "CommaDelimitedList" or kind.startswith("List<"):
                if isinstance(value, str):
                    value = [v.strip() for v in value.split(",")] if value else []
                value = [str(v) for v in value]
            elif kind == "Number":
                value = str(value)
            else:
                value = "" if value is None else str(value)
            allowed = spec.get("AllowedValues")
            if allowed and value not in [str(a) for a in allowed]:
                raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
            pattern = spec.get("AllowedPattern")
            if pattern and isinstance(value, str) and not re.fullmatch(pattern, value):
                raise TemplateError(f"parameter {name}={value!r} does not match {pattern}")
            values[name] = value
        return values

    # -- conditions

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.template.get("Conditions") or {}
            if name not in conditions:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self.resolve(conditions[name]))
        return self._conditions[name]

    def included(self, logical_id: str) -> bool:
        resource = (self.template.get("Resources") or {})[logical_id]
        return "Condition" not in resource or self.condition(resource["Condition"])

    # -- values

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            out = [self.resolve(v) for v in value]
            return [v for v in out if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition":
                return self.condition(arg)
            if key.startswith("Fn::"):
                return self.function(key, arg)
        out = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical_ids:
            return self.physical_ids[name]
        if name in (self.template.get("Resources") or {}):
            raise TemplateError(f"Ref {name}: the resource is not created yet (or not by the local stack)")
        raise TemplateError(f"Ref {name}: no such parameter or resource")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        key = (logical_id, attribute)
        if key not in self.attributes:
            raise TemplateError(f"Fn::GetAtt {logical_id}.{attribute}: not available locally")
        return self.attributes[key]

    def function(self, name: str, arg: Any) -> Any:
        if name == "Fn::Sub":
            if isinstance(arg, list):
                text, variables = arg[0], {k: self.resolve(v) for k, v in (arg[1] or {}).items()}
            else:
                text, variables = arg, {}

            def replace(match: re.Match[str]) -> str:
                token = match.group(1)
                if token.startswith("!"):
                    return "${" + token[1:] + "}"
                if token in variables:
                    return str(variables[token])
                if "." in token and token.split(".", 1)[0] in (self.template.get("Resources") or {}):
                    logical_id, attribute = token.split(".", 1)
                    return str(self.get_att(logical_id, attribute))
                value = self.ref(token)
                if isinstance(value, list):
                    raise TemplateError(f"Fn::Sub ${{{token}}} is a list")
                return str(value)

            return re.sub(r"\$\{([^}]+)\}", replace, text)
        if name == "Fn::GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return self.get_att(logical_id, self.resolve(attribute))
        if name == "Fn::Join":
            delimiter, items = arg
            return str(delimiter).join(str(v) for v in self.resolve(items))
        if name == "Fn::Split":
            delimiter, text = arg
            return str(self.resolve(text)).split(delimiter)
        if name == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if name == "Fn::If":
            condition, when_true, when_false = arg
            return self.resolve(when_true if self.condition(condition) else when_false)
        if name == "Fn::Equals":
            left, right = (self.resolve(v) for v in arg)
            return str(left) == str(right) if not isinstance(left, list) else left == right
        if name == "Fn::Not":
            return not self.resolve(arg[0])
        if name == "Fn::And":
            return all(self.resolve(v) for v in arg)
        if name == "Fn::Or":
            return any(self.resolve(v) for v in arg)
        if name == "Fn::FindInMap":
            mapping, first, second = (self.resolve(v) for v in arg)
            return (self.template.get("Mappings") or {})[mapping][first][second]
        if name == "Fn::Base64":
            import base64

            return base64.b64encode(str(self.resolve(arg)).encode()).decode()
        raise TemplateError(f"{name} is not supported by the local stack")


def references(value: Any) -> set[str]:
    """Logical ids a value refers to (Ref, Fn::GetAtt, ${X} in Fn::Sub)."""
    found: set[str] = set()
    if isinstance(value, list):
        for v in value:
            found |= references(v)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add((arg if isinstance(arg, list) else str(arg).split("."))[0])
            elif key == "Fn::Sub":
                text = arg[0] if isinstance(arg, list) else arg
                for token in re.findall(r"\$\{([^}!][^}]*)\}", str(text)):
                    found.add(token.split(".", 1)[0])
                if isinstance(arg, list) and len(arg) > 1:
                    found |= references(arg[1])
            else:
                found |= references(arg)
    return found


def creation_order(template: dict[str, Any], logical_ids: Iterable[str]) -> list[str]:
    resources = template.get("Resources") or {}
    wanted = list(logical_ids)
    order: list[str] = []
    visiting: set[str] = set()

    def visit(logical_id: str) -> None:
        if logical_id in order:
            return
        if logical_id in visiting:
            raise TemplateError(f"circular dependency at {logical_id}")
        visiting.add(logical_id)
        resource = resources[logical_id]
        depends = resource.get("DependsOn") or []
        depends = [depends] if isinstance(depends, str) else depends
        for dependency in sorted(set(depends) | references(resource.get("Properties") or {})):
            if dependency in resources and dependency in wanted:
                visit(dependency)
        visiting.discard(logical_id)
        order.append(logical_id)

    for logical_id in wanted:
        visit(logical_id)
    return order


# --------------------------------------------------------------------------
# property names: CloudFormation (PascalCase) -> API (camelCase)

# maps whose keys are data, not property names
_OPAQUE_KEYS = {"Options", "DockerLabels", "DriverOpts", "Labels", "SecretOptions"}


def camel(value: Any, opaque: bool = False) -> Any:
    """CloudFormation property names -> the JSON API's member names (first letter lowered)."""
    if isinstance(value, list):
        return [camel(v) for v in value]
    if not isinstance(value, dict) or opaque:
        return value
    out = {}
    for key, item in value.items():
        name = key[:1].lower() + key[1:]
        out[name] = camel(item, opaque=key in _OPAQUE_KEYS)
    return out


def _tags(tags: Any, key: str = "key", value: str = "value") -> list[dict[str, str]]:
    return [{key: str(t["Key"]), value: str(t["Value"])} for t in (tags or [])]


# --------------------------------------------------------------------------
# resource handlers: the API calls CloudFormation makes


class Clients:
    def __init__(self, factory: Callable[[str], Any]):
        self._factory = factory
        self._cache: dict[str, Any] = {}

    def __getattr__(self, service: str) -> Any:
        if service.startswith("_"):
            raise AttributeError(service)
        if service not in self._cache:
            self._cache[service] = self._factory(service.replace("_", "-"))
        return self._cache[service]


def _require(properties: dict[str, Any], *names: str, resource: str) -> None:
    missing = [n for n in names if n not in properties]
    if missing:
        raise TemplateError(f"{resource}: missing {', '.join(missing)} (the local stack needs explicit names)")


def _ecr_repository(c: Clients, logical_id: str, p: dict[str, Any], env: dict[str, str]) -> tuple[str, dict[str, Any]]:
    _require(p, "RepositoryName", resource=logical_id)
    args: dict[str, Any] = {"repositoryName": p["RepositoryName"]}
    if "ImageTagMutability" in p:
        args["imageTagMutability"] = p["ImageTagMutability"]
    if "ImageScanningConfiguration" in p:
        args["imageScanningConfiguration"] = camel(p["ImageScanningConfiguration"])
    if "EncryptionConfiguration" in p:
        args["encryptionConfiguration"] = camel(p["EncryptionConfiguration"])
    if "Tags" in p:
        args["tags"] = _tags(p["Tags"], "Key", "Value")
    repo = c.ecr.create_repository(**args)["repository"]
    if "LifecyclePolicy" in p and p["LifecyclePolicy"].get("LifecyclePolicyText"):
        c.ecr.put_lifecycle_policy(
            repositoryName=p["RepositoryName"], lifecyclePolicyText=p["LifecyclePolicy"]["LifecyclePolicyText"]
        )
    return repo["repositoryName"], {"Arn": repo["repositoryArn"], "RepositoryUri": repo["repositoryUri"]}


@contextlib.contextmanager
def _as_cloudformation(client: Any, resource_type: str, logical_id: str, env: dict[str, Any]) -> Iterator[None]:
    """Mark the calls made with ``client`` in this block as CloudFormation's own for
    ``logical_id`` when its type is one CloudFormation tags (see :data:`STACK_TAGGED_TYPES`)."""
    if resource_type not in env["stack_tags_on"]:
        yield
        return
    header = json.dumps(
        {"stack-name": env["stack_name"], "stack-id": env["stack_id"], "logical-id": logical_id}
    )

    def mark(request: Any, **_: Any) -> None:
        request.headers[CLOUDFORMATION_HEADER] = header

    client.meta.events.register_first("before-sign.ecs", mark)
    try:
        yield
    finally:
        client.meta.events.unregister("before-sign.ecs", mark)


def _ecs_cluster(c: Clients, logical_id: str, p: dict[str, Any], env: dict[str, str]) -> tuple[str, dict[str, Any]]:
    _require(p, "ClusterName", resource=logical_id)
    args: dict[str, Any] = {"clusterName": p["ClusterName"]}
    if "ClusterSettings" in p:
        args["settings"] = camel(p["ClusterSettings"])
    if "CapacityProviders" in p:
        args["capacityProviders"] = p["CapacityProviders"]
    if "DefaultCapacityProviderStrategy" in p:
        args["defaultCapacityProviderStrategy"] = camel(p["DefaultCapacityProviderStrategy"])
    if "Tags" in p:
        args["tags"] = _tags(p["Tags"])
    with _as_cloudformation(c.ecs, "AWS::ECS::Cluster", logical_id, env):
        cluster = c.ecs.create_cluster(**args)["cluster"]
    return cluster["clusterName"], {"Arn": cluster["clusterArn"]}


def _ecs_task_definition(c: Clients, logical_id: str, p: dict[str, Any], env: dict[str, str]) -> tuple[str, dict[str, Any]]:
    _require(p, "Family", "ContainerDefinitions", resource=logical_id)
    args = {k: v for k, v in camel({k: v for k, v in p.items() if k != "Tags"}).items()}
    if "Tags" in p:
        args["tags"] = _tags(p["Tags"])
    with _as_cloudformation(c.ecs, "AWS::ECS::TaskDefinition", logical_id, env):
        arn = c.ecs.register_task_definition(**args)["taskDefinition"]["taskDefinitionArn"]
    return arn, {"TaskDefinitionArn": arn}


def _ecs_service(c: Clients, logical_id: str, p: dict[str, Any], env: dict[str, str]) -> tuple[str, dict[str, Any]]:
    _require(p, "ServiceName", "Cluster", "TaskDefinition", resource=logical_id)
    args = camel({k: v for k, v in p.items() if k not in ("Tags", "Cluster", "ServiceName")})
    args["cluster"] = p["Cluster"]
    args["serviceName"] = p["ServiceName"]
    if "Tags" in p:
        args["tags"] = _tags(p["Tags"])
    with _as_cloudformation(c.ecs, "AWS::ECS::Service", logical_id, env):
        service = c.ecs.create_service(**args)["service"]
    return service["serviceArn"], {"Name": service["serviceName"], "ServiceArn": service["serviceArn"]}


def _iam_role(c: Clients, logical_id: str, p: dict[str, Any], env: dict[str, str]) -> tuple[str, dict[str, Any]]:
    _require(p, "RoleName", "AssumeRolePolicyDocument", resource=logical_id)
    args: dict[str, Any] = {
        "RoleName": p["RoleName"],
        "AssumeRolePolicyDocument": json.dumps(p["AssumeRolePolicyDocument"]),
    }
    for key in ("Path", "Description", "MaxSessionDuration"):
        if key in p:
            args[key] = p[key]
    if "Tags" in p:
        args["Tags"] = _tags(p["Tags"], "Key", "Value")
    role = c.iam.create_role(**args)["Role"]
    for policy in p.get("Policies") or []:
        c.iam.put_role_policy(
            RoleName=p["RoleName"], PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(policy["PolicyDocument"])
        )
    for arn in p.get("ManagedPolicyArns") or []:
        c.iam.attach_role_policy(RoleName=p["RoleName"], PolicyArn=arn)
    return role["RoleName"], {"Arn": role["Arn"], "RoleId": role["RoleId"]}


def _secret(c: Clients, logical_id: str, p: dict[str, Any], env: dict[str, str]) -> tuple[str, dict[str, Any]]:
    _require(p, "Name", resource=logical_id)
    args: dict[str, Any] = {"Name": p["Name"]}
    if "Description" in p:
        args["Description"] = p["Description"]
    if "KmsKeyId" in p:
        args["KmsKeyId"] = p["KmsKeyId"]
    if "SecretString" in p:
        args["SecretString"] = p["SecretString"]
    else:
        spec = p.get("GenerateSecretString") or {}
        length = int(spec.get("PasswordLength", 32))
        alphabet = string.ascii_letters + string.digits
        excluded = set(spec.get("ExcludeCharacters", ""))
        alphabet = "".join(ch for ch in alphabet if ch not in excluded)
        value = "".join(secrets.choice(alphabet) for _ in range(length))
        if spec.get("SecretStringTemplate") and spec.get("GenerateStringKey"):
            document = json.loads(spec["SecretStringTemplate"])
            document[spec["GenerateStringKey"]] = value
            value = json.dumps(document)
        args["SecretString"] = value
    if "Tags" in p:
        args["Tags"] = _tags(p["Tags"], "Key", "Value")
    arn = c.secretsmanager.create_secret(**args)["ARN"]
    return arn, {"Id": arn}


def _ssm_parameter(c: Clients, logical_id: str, p: dict[str, Any], env: dict[str, str]) -> tuple[str, dict[str, Any]]:
    _require(p, "Name", "Type", "Value", resource=logical_id)
    if p["Type"] not in ("String", "StringList"):
        raise TemplateError(f"{logical_id}: CloudFormation creates String and StringList parameters only")
    args: dict[str, Any] = {"Name": p["Name"], "Type": p["Type"], "Value": str(p["Value"]), "Overwrite": False}
    for key in ("Description", "AllowedPattern", "Tier", "DataType"):
        if key in p:
            args[key] = p[key]
    if "Tags" in p:  # a map in CloudFormation
        args["Tags"] = [{"Key": k, "Value": str(v)} for k, v in p["Tags"].items()]
    c.ssm.put_parameter(**args)
    return p["Name"], {"Type": p["Type"], "Value": str(p["Value"])}


def _alarm(c: Clients, logical_id: str, p: dict[str, Any], env: dict[str, str]) -> tuple[str, dict[str, Any]]:
    _require(p, "AlarmName", resource=logical_id)
    args = {k: v for k, v in p.items()}
    if "Dimensions" in args:
        args["Dimensions"] = [{"Name": d["Name"], "Value": str(d["Value"])} for d in args["Dimensions"]]
    for key in ("Threshold",):
        if key in args:
            args[key] = float(args[key])
    for key in ("EvaluationPeriods", "Period", "DatapointsToAlarm"):
        if key in args:
            args[key] = int(args[key])
    if "Tags" in args:
        args["Tags"] = _tags(args["Tags"], "Key", "Value")
    c.cloudwatch.put_metric_alarm(**args)
    arn = f"arn:aws:cloudwatch:{env['region']}:{env['account_id']}:alarm:{p['AlarmName']}"
    return p["AlarmName"], {"Arn": arn}


def _log_group(c: Clients, logical_id: str, p: dict[str, Any], env: dict[str, str]) -> tuple[str, dict[str, Any]]:
    _require(p, "LogGroupName", resource=logical_id)
    c.logs.create_log_group(logGroupName=p["LogGroupName"])
    if "RetentionInDays" in p:
        c.logs.put_retention_policy(logGroupName=p["LogGroupName"], retentionInDays=int(p["RetentionInDays"]))
    arn = f"arn:aws:logs:{env['region']}:{env['account_id']}:log-group:{p['LogGroupName']}:*"
    return p["LogGroupName"], {"Arn": arn}


def _dynamodb_table(c: Clients, logical_id: str, p: dict[str, Any], env: dict[str, str]) -> tuple[str, dict[str, Any]]:
    name = p.get("TableName") or f"{env['stack_name']}-{logical_id}"
    args: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": p["AttributeDefinitions"],
        "KeySchema": p["KeySchema"],
        "BillingMode": p.get("BillingMode", "PROVISIONED"),
    }
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "ProvisionedThroughput", "StreamSpecification"):
        if key in p:
            args[key] = p[key]
    if "SSESpecification" in p:
        args["SSESpecification"] = {"Enabled": bool(p["SSESpecification"].get("SSEEnabled"))}
    if "Tags" in p:
        args["Tags"] = _tags(p["Tags"], "Key", "Value")
    table = c.dynamodb.create_table(**args)["TableDescription"]
    if (p.get("TimeToLiveSpecification") or {}).get("Enabled"):
        c.dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": p["TimeToLiveSpecification"]["AttributeName"]},
        )
    return name, {"Arn": table["TableArn"]}


def _sqs_queue(c: Clients, logical_id: str, p: dict[str, Any], env: dict[str, str]) -> tuple[str, dict[str, Any]]:
    name = p.get("QueueName") or f"{env['stack_name']}-{logical_id}"
    attributes = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in p.items() if k not in ("QueueName", "Tags")}
    url = c.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = f"arn:aws:sqs:{env['region']}:{env['account_id']}:{name}"
    return url, {"Arn": arn, "QueueName": name, "QueueUrl": url}


HANDLERS: dict[str, Callable[..., tuple[str, dict[str, Any]]]] = {
    "AWS::ECR::Repository": _ecr_repository,
    "AWS::ECS::Cluster": _ecs_cluster,
    "AWS::ECS::TaskDefinition": _ecs_task_definition,
    "AWS::ECS::Service": _ecs_service,
    "AWS::IAM::Role": _iam_role,
    "AWS::SecretsManager::Secret": _secret,
    "AWS::SSM::Parameter": _ssm_parameter,
    "AWS::CloudWatch::Alarm": _alarm,
    "AWS::Logs::LogGroup": _log_group,
    "AWS::DynamoDB::Table": _dynamodb_table,
    "AWS::SQS::Queue": _sqs_queue,
}


def apply(
    template: dict[str, Any],
    client_factory: Callable[[str], Any],
    *,
    region: str,
    account_id: str,
    stack_name: str,
    parameters: dict[str, Any] | None = None,
    only: Iterable[str] | None = None,
    on_resource: Callable[[str, str, str], None] | None = None,
    stack_tags_on: Iterable[str] = STACK_TAGGED_TYPES,
) -> dict[str, Any]:
    """Create the template's resources through the APIs; returns ids, attributes, outputs.

    ``only`` restricts creation to these logical ids (and is how the local
    stack takes the ledger table and config parameter from ferry's SAM
    template without its functions). Every other resource must have a
    handler in :data:`HANDLERS`. The resources whose type is in
    ``stack_tags_on`` get CloudFormation's ``aws:cloudformation:*`` tags (see the
    module's doc).
    """
    clients = Clients(client_factory)

    def ssm_lookup(name: str) -> str:
        return clients.ssm.get_parameter(Name=name)["Parameter"]["Value"]

    resolver = Resolver(
        template,
        parameters,
        region=region,
        account_id=account_id,
        stack_name=stack_name,
        ssm_lookup=ssm_lookup,
    )
    resources = template.get("Resources") or {}
    wanted = [r for r in (only if only is not None else resources) if r in resources and resolver.included(r)]
    unsupported = sorted({resources[r]["Type"] for r in wanted if resources[r]["Type"] not in HANDLERS})
    if unsupported:
        raise TemplateError(f"resource type(s) the local stack cannot create: {', '.join(unsupported)}")
    env = {
        "region": region,
        "account_id": account_id,
        "stack_name": stack_name,
        "stack_id": resolver.pseudo["AWS::StackId"],
        "stack_tags_on": frozenset(stack_tags_on),
    }
    for logical_id in creation_order(template, wanted):
        resource = resources[logical_id]
        properties = resolver.resolve(resource.get("Properties") or {})
        physical_id, attributes = HANDLERS[resource["Type"]](clients, logical_id, properties, env)
        resolver.physical_ids[logical_id] = physical_id
        for name, value in attributes.items():
            resolver.attributes[(logical_id, name)] = value
        if on_resource:
            on_resource(logical_id, resource["Type"], physical_id)
    outputs = {}
    for name, output in (template.get("Outputs") or {}).items():
        if "Condition" in output and not resolver.condition(output["Condition"]):
            continue
        try:
            outputs[name] = resolver.resolve(output["Value"])
        except TemplateError:
            continue  # refers to something the local stack did not create
    return {
        "physical_ids": dict(resolver.physical_ids),
        "parameters": resolver.parameters,
        # the created resources' Fn::GetAtt values, "LogicalId.Attribute" -> value
        # (iam_behaviours resolves the functions' policies with them)
        "attributes": {f"{logical_id}.{name}": value for (logical_id, name), value in resolver.attributes.items()},
        "outputs": outputs,
    }
