#!/usr/bin/env python3
"""ferry's local AWS emulator: moto server plus ferry's ECS behaviours.

Launch::

    .venv/bin/python tests/emulator/ferry_emulator.py --port 0 \\
        --ready-file /tmp/ferry-emulator.json [--region eu-west-1]

1. applies :mod:`ecs_behaviours`, :mod:`ecr_behaviours`, :mod:`scheduler_behaviours`
   and :mod:`cloudwatch_behaviours` (the one place, per service, where ferry's
   harness adds behaviour moto lacks); :mod:`iam_behaviours` authorises the
   calls of every principal whose policy is loaded (``POST /_ferry/iam``);
2. serves moto on 127.0.0.1 (``--port 0`` picks a free port), wrapped in a
   small WSGI middleware that answers ferry's control routes under ``/_ferry/``;
3. reads the default VPC moto creates and writes the ready file atomically
   (temp file + rename) as JSON::

       {"endpoint": "http://127.0.0.1:PORT", "region": "eu-west-1",
        "account_id": "123456789012", "vpc_id": "vpc-...",
        "subnets": ["subnet-...", ...], "security_groups": ["sg-..."],
        "pid": 1234}

   then prints one line to stderr: ``ferry-emulator ready <endpoint>``;
4. runs until its stdin reaches EOF (so it dies with the test process that
   holds the other end of the pipe, even if that process is killed), or until
   SIGTERM/SIGINT; then stops the server, removes the ready file and exits 0.
   Pass ``--ignore-stdin`` to run detached (stdin at /dev/null is at EOF at
   once: a shell's ``cmd &`` does that in scripts).

Control routes (JSON in, JSON out):

* ``GET  /_ferry/health`` -> 200 ``{"status": "ok", ...ready-file fields}``
* ``GET|POST /_ferry/scenario`` -> how tasks and deployments end by themselves
  (``--scenario``; see ``ecs_behaviours.Scenario``)
* ``GET /_ferry/calls?since=SEQ`` -> the AWS calls served (caller, operation, status, time, ended)
* ``GET|POST /_ferry/faults`` -> answer chosen calls with an AWS error (``Faults``)
* ``GET|POST /_ferry/iam``, ``GET /_ferry/iam/decisions?since=SEQ`` -> the IAM
  policies the calls of loaded principals are authorised against, and every
  authorization decision (``iam_behaviours``)
* ``/_ferry/router/{log,status,config,emit,redeliver}`` -> the event router
  (``--router template.yaml``; see ``router.py``)
* ``GET /_ferry/scheduler``, ``POST /_ferry/scheduler/fire`` -> EventBridge
  Scheduler schedules, fired by the router (``--router``; see ``router.py``)
* ``POST /_ferry/deployments/finish`` with ``{"cluster", "service",
  "deploymentId" (optional: the PRIMARY one), "outcome": "COMPLETED"|"FAILED",
  "reason" (optional), "region" (optional)}`` -> 200 ``{"deployment",
  "service", "rollbackDeployment"?}``; 400 bad request; 404 unknown
  cluster/service/deployment; 409 deployment not PRIMARY/IN_PROGRESS.
  See ``ecs_behaviours.finish_deployment``.

CloudWatch in Smithy RPC v2 CBOR (``smithy-protocol: rpc-v2-cbor``, ``POST
/service/GraniteServiceVersion20100801/operation/<Op>``: the Rust SDK's only
protocol for CloudWatch; moto answers it 404) is served by moto as the same
awsJson 1.0 call and answered in CBOR: see
``cloudwatch_behaviours.serve_rpc_v2_cbor``. Every other request goes to moto
unchanged.
"""

from __future__ import annotations

import argparse
import time
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import uuid
from typing import Any, Callable, Iterable

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

DEFAULT_ACCOUNT_ID = "123456789012"
CONTROL_PREFIX = "/_ferry/"
DYNAMODB_LOCK = threading.Lock()
LATENCY_SECONDS = float(os.environ.get("FERRY_EMULATOR_LATENCY_MS", "0")) / 1000.0

StartResponse = Callable[..., Any]


class FerryControlMiddleware:
    """WSGI middleware: ``/_ferry/...`` is ferry's; everything else is moto's."""

    def __init__(self, app: Any, info: dict[str, Any]):
        self.app = app
        self.info = info  # filled in once the server is up

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or ""
        if not path.startswith(CONTROL_PREFIX):
            if environ.get("HTTP_SMITHY_PROTOCOL"):
                import cloudwatch_behaviours

                if cloudwatch_behaviours.rpc_v2_cbor_operation(environ) is not None:
                    # CloudWatch in Smithy RPC v2 CBOR (the Rust SDK's only protocol
                    # for it): served by moto as awsJson 1.0, through serve_aws.
                    return cloudwatch_behaviours.serve_rpc_v2_cbor(
                        environ, start_response, self.serve_aws, refused=CALLS.refused
                    )
            return self.serve_aws(environ, start_response)
        try:
            status, body = self.route(environ, path)
        except Exception as exc:  # never let a control-route bug kill the request thread silently
            logging.getLogger("ferry-emulator").exception("control route failed")
            status, body = 500, {"error": f"{type(exc).__name__}: {exc}"}
        payload = json.dumps(body).encode()
        start_response(
            f"{status} {_REASONS.get(status, 'Error')}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    def serve_aws(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """An AWS call: IAM (a caller with a loaded policy), injected faults,
        latency, the call log, then moto."""
        import iam_behaviours

        # the call log's `time` is when the call arrived, before any injected delay
        environ.setdefault("ferry.received", time.time())

        if iam_behaviours.IAM.principals:
            denied = iam_behaviours.IAM.intercept(
                environ,
                start_response,
                rest_operation,
                self.info.get("account_id", DEFAULT_ACCOUNT_ID),
                CALLS.record if CALLS.enabled else None,
            )
            if denied is not None:
                return denied
        if FAULTS.rules:
            fault = FAULTS.take(environ)
            if fault is not None and fault["delay"]:
                time.sleep(fault["delay"])
            if fault is not None and fault["status"]:
                return FAULTS.respond(fault, environ, start_response)
        import chaos_behaviours

        if chaos_behaviours.CHAOS.armed:
            caller, operation = _caller_and_operation(environ)
            verdict = chaos_behaviours.CHAOS.draw(caller)
            if verdict is not None:
                import router as router_module

                functions_url = router_module.router.functions_url if router_module.router else None
                return chaos_behaviours.CHAOS.serve(
                    verdict,
                    environ,
                    start_response,
                    self._serve_moto,
                    functions_url,
                    CALLS.record if CALLS.enabled else None,
                    caller,
                    operation,
                )
        return self._serve_moto(environ, start_response)

    def _serve_moto(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if LATENCY_SECONDS:
            # Benchmarks: a fixed network latency per AWS call, so round trips
            # show as round trips and not as client CPU time.
            time.sleep(LATENCY_SECONDS)
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            # DynamoDB applies each write and each transaction atomically. moto
            # does not under concurrent requests (a cancelled transaction
            # restores a snapshot taken before a concurrent one committed), so
            # DynamoDB requests are served one at a time, as if atomic.
            with DYNAMODB_LOCK:
                if CALLS.enabled:
                    return list(CALLS.observe(self.app, environ, start_response))
                return list(self.app(environ, start_response))
        if CALLS.enabled:
            return CALLS.observe(self.app, environ, start_response)
        return self.app(environ, start_response)

    def route(self, environ: dict[str, Any], path: str) -> tuple[int, Any]:
        import ecs_behaviours

        method = environ.get("REQUEST_METHOD", "GET").upper()
        if path == "/_ferry/health":
            if method not in ("GET", "HEAD"):
                return 405, {"error": "use GET"}
            return 200, {"status": "ok", **self.info}
        if path == "/_ferry/deployments/finish":
            if method != "POST":
                return 405, {"error": "use POST"}
            try:
                request = _read_json(environ)
            except ValueError as exc:
                return 400, {"error": str(exc)}
            missing = [k for k in ("cluster", "service", "outcome") if not request.get(k)]
            if missing:
                return 400, {"error": f"missing field(s): {', '.join(missing)}"}
            try:
                answer = ecs_behaviours.finish_deployment(
                    cluster=request["cluster"],
                    service=request["service"],
                    outcome=request["outcome"],
                    deployment_id=request.get("deploymentId"),
                    reason=request.get("reason"),
                    account_id=request.get("accountId") or self.info.get("account_id", DEFAULT_ACCOUNT_ID),
                    region=request.get("region") or self.info["region"],
                )
            except ValueError as exc:
                return 400, {"error": str(exc)}
            except ecs_behaviours.DeploymentNotFound as exc:
                return 404, {"error": str(exc)}
            except ecs_behaviours.DeploymentConflict as exc:
                return 409, {"error": str(exc)}
            return 200, answer
        if path == "/_ferry/scenario":
            if method == "GET":
                return 200, ecs_behaviours.scenario.describe()
            if method != "POST":
                return 405, {"error": "use GET or POST"}
            try:
                return 200, ecs_behaviours.scenario.configure(_read_json(environ))
            except ValueError as exc:
                return 400, {"error": str(exc)}
        if path == "/_ferry/faults":
            if method == "GET":
                return 200, {"faults": FAULTS.rules}
            if method != "POST":
                return 405, {"error": "use GET or POST"}
            try:
                return 200, {"faults": FAULTS.configure(_read_json(environ))}
            except ValueError as exc:
                return 400, {"error": str(exc)}
        if path == "/_ferry/chaos":
            import chaos_behaviours

            if method == "GET":
                return 200, chaos_behaviours.CHAOS.status()
            try:
                return 200, chaos_behaviours.CHAOS.configure(_read_json(environ))
            except (ValueError, TypeError) as exc:
                return 400, {"error": str(exc)}
        if path == "/_ferry/calls":
            from urllib.parse import parse_qs

            since = int((parse_qs(environ.get("QUERY_STRING", "") or "").get("since") or ["0"])[0] or 0)
            calls = CALLS.since(since)
            return 200, {"calls": calls, "next": calls[-1]["seq"] if calls else since}
        if path == "/_ferry/iam" or path.startswith("/_ferry/iam/"):
            import iam_behaviours
            from urllib.parse import parse_qs

            query = parse_qs(environ.get("QUERY_STRING", "") or "")
            try:
                return iam_behaviours.IAM.route(method, path, query, lambda: _read_json(environ))
            except ValueError as exc:
                return 400, {"error": str(exc)}
        if path.startswith("/_ferry/router/") or path == "/_ferry/scheduler" or path.startswith("/_ferry/scheduler/"):
            import router

            if router.router is None:
                return 404, {"error": "the event router is off: start the emulator with --router template.yaml"}
            from urllib.parse import parse_qs

            query = parse_qs(environ.get("QUERY_STRING", "") or "")
            try:
                return router.router.route(method, path, query, lambda: _read_json(environ))
            except ValueError as exc:
                return 400, {"error": str(exc)}
        return 404, {"error": f"no control route {method} {path}"}


_REST_OPERATIONS: dict[str, list[tuple[str, Any, int, str]]] = {}
_REST_LOCK = threading.Lock()


def rest_operation(service: str, method: str, path: str) -> str | None:
    """The operation a REST-protocol call (restJson1, e.g. ``scheduler``) is, from
    its method and path, by botocore's model of the service (``requestUri``
    ``/schedules/{Name}``): ``POST /schedules/x`` -> ``CreateSchedule``. Such calls
    carry neither ``X-Amz-Target`` nor ``Action``. ``None`` if nothing matches."""
    import re

    with _REST_LOCK:
        routes = _REST_OPERATIONS.get(service)
        if routes is None:
            routes = []
            try:
                import botocore.session

                model = botocore.session.get_session().get_service_model(service)
                if model.protocol in ("rest-json", "rest-xml"):
                    for name in model.operation_names:
                        http = model.operation_model(name).http
                        uri = http.get("requestUri", "/").split("?", 1)[0]
                        pattern = ""
                        for part in re.split(r"(\{[^}]+\})", uri):
                            if part.startswith("{"):
                                pattern += ".+" if part.endswith("+}") else "[^/]+"
                            else:
                                pattern += re.escape(part)
                        literal = len(re.sub(r"\{[^}]+\}", "", uri))
                        routes.append((http.get("method", "GET"), re.compile(pattern.rstrip("/") + "/?$"), literal, name))
            except Exception:  # not a botocore service name: no REST names for it
                routes = []
            _REST_OPERATIONS[service] = routes
    matching = [(literal, name) for m, regex, literal, name in routes if m == method and regex.match(path)]
    return max(matching)[1] if matching else None


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _register_detail(body: bytes) -> dict[str, Any]:
    request = _json_body(body)
    tags = {t.get("key"): t.get("value") for t in request.get("tags") or [] if isinstance(t, dict)}
    return {"family": request.get("family"), "release": tags.get("ferry:release")}


def _update_service_detail(body: bytes) -> dict[str, Any]:
    request = _json_body(body)
    return {
        "cluster": request.get("cluster"),
        "service": request.get("service"),
        "taskDefinition": request.get("taskDefinition"),
        "force": bool(request.get("forceNewDeployment")),
    }


def _put_parameter_detail(body: bytes) -> dict[str, Any]:
    request = _json_body(body)
    return {"name": request.get("Name"), "value": request.get("Value")}


def _get_parameter_detail(body: bytes) -> dict[str, Any]:
    return {"name": _json_body(body).get("Name")}


#: calls whose log entry carries what they changed, or read before a change
#: (the chaos runs count duplicate effects per release from it, and tell a
#: write that raced another from one made after it): operation -> request
#: body -> detail
_DETAILED = {
    "RegisterTaskDefinition": _register_detail,
    "UpdateService": _update_service_detail,
    "PutParameter": _put_parameter_detail,
    "GetParameter": _get_parameter_detail,
}


def _caller_and_operation(environ: dict[str, Any]) -> tuple[str, str]:
    """The access key id of a SigV4-signed call, and ``<scope service>:<target>``."""
    auth = environ.get("HTTP_AUTHORIZATION") or ""
    scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/") if "Credential=" in auth else []
    caller = scope[0] if scope else "-"
    service = scope[3] if len(scope) > 3 else "?"
    target = (environ.get("HTTP_X_AMZ_TARGET") or "").rpartition(".")[2]
    return caller, f"{service}:{target or environ.get('PATH_INFO', '')}"


class CallLog:
    """Every AWS call made to the emulator: who (the access key id of its
    SigV4 credentials; the local stack gives each function its own),
    which operation (``ecs:RunTask``) and the HTTP status. ``GET
    /_ferry/calls?since=SEQ`` lists them (the demo shows them per step)."""

    def __init__(self) -> None:
        import collections

        self.enabled = False
        self._lock = threading.Lock()
        self._calls: "collections.deque[dict[str, Any]]" = collections.deque(maxlen=50000)
        self._seq = 0

    def observe(self, app: Any, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        auth = environ.get("HTTP_AUTHORIZATION") or ""
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/") if "Credential=" in auth else []
        caller = scope[0] if scope else "-"
        service = scope[3] if len(scope) > 3 else "?"
        service = {"monitoring": "cloudwatch"}.get(service, service)
        target = environ.get("HTTP_X_AMZ_TARGET") or ""
        detail = None
        if target:
            operation = target.rpartition(".")[2]
            if operation in _DETAILED:
                import io

                length = int(environ.get("CONTENT_LENGTH") or 0)
                body = environ["wsgi.input"].read(length) if length > 0 else b""
                environ["wsgi.input"] = io.BytesIO(body)
                detail = _DETAILED[operation](body)
        else:
            from urllib.parse import parse_qs

            query = parse_qs(environ.get("QUERY_STRING", ""))
            if "Action" not in query and "form-urlencoded" in (environ.get("CONTENT_TYPE") or ""):
                import io

                length = int(environ.get("CONTENT_LENGTH") or 0)
                body = environ["wsgi.input"].read(length) if length > 0 else b""
                environ["wsgi.input"] = io.BytesIO(body)
                query = parse_qs(body.decode(errors="replace"))
            operation = (query.get("Action") or [None])[0] or rest_operation(
                service, environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")
            ) or f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}"
        started = environ.get("ferry.received") or time.time()
        status_holder: list[str] = []

        def capture(status: str, headers: Any, *rest: Any) -> Any:
            status_holder.append(status)
            return start_response(status, headers, *rest)

        if detail is not None:
            # The AWS SDK for Rust sends one `amz-sdk-invocation-id` (a UUID) on
            # every attempt of one operation call (aws_runtime::invocation_id:
            # "a consistent ID across retries"): two entries with one id are the
            # SDK resending a call whose answer it did not get, not two calls.
            detail["invocation"] = environ.get("HTTP_AMZ_SDK_INVOCATION_ID")
        result = app(environ, capture)
        self.record(caller, f"{service}:{operation}", int((status_holder or ["0"])[0].split(" ", 1)[0]), started, detail)
        return result

    def refused(self, environ: dict[str, Any], operation: str, status: int) -> None:
        """A call answered before it reached moto (an rpcv2Cbor request the
        emulator refused: cloudwatch_behaviours.serve_rpc_v2_cbor)."""
        if not self.enabled:
            return
        auth = environ.get("HTTP_AUTHORIZATION") or ""
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/") if "Credential=" in auth else []
        self.record(scope[0] if scope else "-", f"cloudwatch:{operation or '?'}", status)

    def record(self, caller: str, operation: str, status: int, started: float | None = None, detail: dict[str, Any] | None = None) -> None:
        with self._lock:
            self._seq += 1
            self._calls.append(
                {
                    "seq": self._seq,
                    "time": started or time.time(),
                    "caller": caller,
                    "operation": operation,
                    "status": status,
                    # when the answer was ready: calls that overlap in time ran
                    # concurrently (the demo counts sequential round trips)
                    "ended": time.time(),
                    **({"detail": detail} if detail else {}),
                }
            )

    def since(self, seq: int) -> list[dict[str, Any]]:
        with self._lock:
            return [c for c in self._calls if c["seq"] > seq]


CALLS = CallLog()


class Faults:
    """AWS errors on request, for the retry paths: ``POST /_ferry/faults``
    ``{"faults": [{"operation": "dynamodb:BatchGetItem", "caller":
    "ferry-deploy", "times": 4, "status": 500, "code": "InternalServerError"}]}``
    answers the next ``times`` matching calls (``caller`` optional: the access
    key id) with that error instead of serving them, in the awsJson shape
    (``__type``, ``message``, ``X-Amzn-ErrorType``). The operation is
    ``<signing name>:<Operation>``: from ``X-Amz-Target`` for awsJson
    services, from the method and path for REST ones
    (``scheduler:CreateSchedule``; :func:`rest_operation`). AWS answers this way when it throttles or has
    an internal error; the SDK retries, and a function that still fails is
    retried by Lambda's asynchronous invoke. ``"delay": s`` holds the call
    that long first; with ``"status": 0`` the call is then served normally
    (a slow call, not a failed one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rules: list[dict[str, Any]] = []

    def configure(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        rules = request.get("faults")
        if not isinstance(rules, list):
            raise ValueError('expected {"faults": [{"operation", "times", "status", "code", "caller"?}]}')
        checked = []
        for rule in rules:
            if not isinstance(rule, dict) or ":" not in str(rule.get("operation", "")):
                raise ValueError("each fault needs an operation like dynamodb:BatchGetItem")
            checked.append(
                {
                    "operation": rule["operation"],
                    "caller": rule.get("caller"),
                    "times": int(rule.get("times", 1)),
                    "status": int(rule.get("status", 500)),
                    "delay": float(rule.get("delay", 0)),
                    "code": str(rule.get("code", "InternalServerError")),
                    "message": str(rule.get("message", "injected by the ferry emulator")),
                }
            )
        with self._lock:
            self.rules = checked
        return checked

    def take(self, environ: dict[str, Any]) -> dict[str, Any] | None:
        target = environ.get("HTTP_X_AMZ_TARGET") or ""
        auth = environ.get("HTTP_AUTHORIZATION") or ""
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/") if "Credential=" in auth else []
        if len(scope) < 4:
            return None
        if target:
            name = target.rpartition(".")[2]
        else:  # a REST call (scheduler:CreateSchedule): named by its method and path
            name = rest_operation(scope[3], environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")) or ""
            if not name:
                return None
        operation = f"{scope[3]}:{name}"
        with self._lock:
            for rule in self.rules:
                if rule["times"] > 0 and rule["operation"] == operation and rule["caller"] in (None, scope[0]):
                    rule["times"] -= 1
                    return {**rule, "operation": operation, "caller": scope[0]}
        return None

    def respond(self, fault: dict[str, Any], environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > 0:
            environ["wsgi.input"].read(length)
        body = json.dumps({"__type": fault["code"], "message": fault["message"]}).encode()
        start_response(
            f"{fault['status']} {_REASONS.get(fault['status'], 'Error')}",
            [
                ("Content-Type", "application/x-amz-json-1.0"),
                ("Content-Length", str(len(body))),
                ("x-amzn-ErrorType", fault["code"]),
                ("x-amzn-RequestId", str(uuid.uuid4())),
            ],
        )
        if CALLS.enabled:
            CALLS.record(fault["caller"], fault["operation"], fault["status"])
        return [body]


FAULTS = Faults()


_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _read_json(environ: dict[str, Any]) -> dict[str, Any]:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    raw = environ["wsgi.input"].read(length) if length > 0 else b""
    if not raw:
        raise ValueError("expected a JSON object body")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"body is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object body")
    return value


def _default_network(endpoint: str, region: str) -> dict[str, Any]:
    """Read moto's default VPC over the API, as a client would see it."""
    import boto3

    ec2 = boto3.client(
        "ec2",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise RuntimeError(f"moto created no default VPC in {region}")
    vpc_id = vpcs[0]["VpcId"]
    # awsvpc tasks get an ENI with a private DNS name: the VPC must have DNS
    # hostnames on (moto's default VPC does, as AWS's does).
    attr = ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")
    if not attr["EnableDnsHostnames"]["Value"]:
        ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    subnets.sort(key=lambda s: s["AvailabilityZone"])
    groups = ec2.describe_security_groups(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "group-name", "Values": ["default"]},
        ]
    )["SecurityGroups"]
    return {
        "vpc_id": vpc_id,
        "subnets": [s["SubnetId"] for s in subnets],
        "security_groups": [g["GroupId"] for g in groups],
    }


def _write_atomically(path: str, data: dict[str, Any]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ferry-emulator-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _watch_stdin(stop: threading.Event) -> None:
    """Set ``stop`` when stdin reaches EOF (the parent closed or died)."""
    # os.read on the raw descriptor, not sys.stdin: a daemon thread blocked
    # inside a buffered reader aborts the interpreter at exit (SIGABRT).
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    stop.set()


def build_app(info: dict[str, Any]) -> Any:
    """moto's server app (DomainDispatcherApplication) behind ferry's middleware."""
    from moto.server import DomainDispatcherApplication, create_backend_app

    return FerryControlMiddleware(DomainDispatcherApplication(create_backend_app), info)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    parser.add_argument("--ready-file", required=True, help="where to write the ready JSON")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or "eu-west-1")
    parser.add_argument(
        "--ignore-stdin",
        action="store_true",
        help="do not exit on stdin EOF (run detached; stop with SIGTERM)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    parser.add_argument(
        "--router",
        metavar="TEMPLATE",
        help="run the event router (router.py) with the EventBridge rules of this SAM template",
    )
    parser.add_argument(
        "--functions-url",
        help="base URL of the local Lambda runtime the router invokes (also settable later: POST /_ferry/router/config)",
    )
    parser.add_argument(
        "--scenario",
        action="store_true",
        help="tasks and deployments end by themselves (ecs_behaviours.Scenario; POST /_ferry/scenario)",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="ferry-emulator: %(message)s")
    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

    try:  # a stale file from an earlier run must not look like this run's
        os.unlink(args.ready_file)
    except OSError:
        pass

    import ecs_behaviours

    ecs_behaviours.install()
    import cloudwatch_behaviours
    import ecr_behaviours
    import scheduler_behaviours

    ecr_behaviours.install()
    scheduler_behaviours.install()
    cloudwatch_behaviours.install()
    if args.scenario:
        ecs_behaviours.enable_scenario()
    if args.router:
        import router

        router.start(args.router, args.functions_url)
        CALLS.enabled = True

    from werkzeug.serving import make_server

    account_id = os.environ.get("MOTO_ACCOUNT_ID", DEFAULT_ACCOUNT_ID)
    info: dict[str, Any] = {"region": args.region, "account_id": account_id}
    server = make_server(args.host, args.port, build_app(info), threaded=True)
    port = server.server_port
    endpoint = f"http://{args.host}:{port}"
    serving = threading.Thread(target=server.serve_forever, name="moto-server", daemon=True)
    serving.start()

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not args.ignore_stdin:
        threading.Thread(target=_watch_stdin, args=(stop,), name="stdin-watch", daemon=True).start()

    try:
        network = _default_network(endpoint, args.region)
        info.update(
            {
                "endpoint": endpoint,
                "region": args.region,
                "account_id": account_id,
                **network,
                "pid": os.getpid(),
            }
        )
        _write_atomically(args.ready_file, info)
        print(f"ferry-emulator ready {endpoint} (region {args.region})", file=sys.stderr, flush=True)

        # wait in short slices so signals are handled promptly
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
        serving.join(timeout=10)
        server.server_close()
        try:
            os.unlink(args.ready_file)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
