#!/usr/bin/env python3
"""The local AWS stack: emulator + event router + ferry's functions + the sample estate.

    python tests/emulator/stack.py start|run|stop|status [--state-dir .ferry]

``start`` brings up, in order:

1. the emulator (``ferry_emulator.py``: moto, ferry's ECS behaviours with the
   scenario on, the event router reading the rules of ``template.yaml``);
2. the sample estate, from the CloudFormation templates in ``infra/``, the way
   an operator bootstraps a real account (see ``infra/README.md``):
   ``sample-registry.yaml``; a first image in every repository; the image-tag
   parameters and the SecureString API key; ``sample-environment.yaml``;
3. ferry's own state from ``template.yaml``: the ledger table and the config
   parameter holding ``infra/ferry.toml`` (plus ``--config-extra`` files);
   ``ClusterNames`` is every cluster the config names (and the sample's);
4. the functions' IAM policies from ``template.yaml``, resolved as the runtime
   resolves their environment, loaded into the emulator (``iam_behaviours``;
   ``--no-iam`` leaves every call unchecked): from here on each function's
   calls are authorised as AWS would authorise its role's;
5. the functions (``lambda_runtime.py``: the real binaries from
   ``target/debug`` under a Lambda Runtime API, with the environment the
   template sets), and tells the router where to invoke them.

It writes ``<state-dir>/stack.json`` (endpoints, pids, ports) and logs under
``<state-dir>/logs/``. ``start`` leaves the stack running detached (``stop``
ends it); ``run`` keeps it in the foreground until Ctrl-C/SIGTERM. If
anything fails or is interrupted half-way, what was started is stopped.

The demo and the end-to-end tests use :class:`Stack` directly; started that
way, the processes also exit by themselves when the Python process that
started them goes away (their stdin is a pipe from it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import cfn  # noqa: E402

REGION = "eu-west-1"
ACCOUNT = "123456789012"
TEMPLATE = ROOT / "template.yaml"
INFRA = ROOT / "infra"
FERRY_STACK = "ferry-local"
# the resources of template.yaml the local stack creates (the functions run in lambda_runtime.py)
FERRY_RESOURCES = ["LedgerTable", "ConfigParameter"]
FIRST_IMAGES = {"shop": "0.9.0", "blog-web": "sha-0000001", "blog-jobs": "sha-0000001"}
IMAGE_TAG_PARAMETERS = {
    "/shop/prod/compute/currentImageTag": "0.9.0",
    # one parameter per lane: infra/ferry.toml's `/blog/prod/{repository}/currentImageTag`
    "/blog/prod/blog-web/currentImageTag": "sha-0000001",
    "/blog/prod/blog-jobs/currentImageTag": "sha-0000001",
}
OPERATOR_KEY = "operator"


class StackError(RuntimeError):
    pass


def function_binaries(template: Path = TEMPLATE) -> list[str]:
    """The binary of every function in template.yaml (Metadata.BuildProperties.Binary)."""
    resources = cfn.load_template(str(template)).get("Resources") or {}
    return [
        ((r.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary") or name
        for name, r in resources.items()
        if isinstance(r, dict) and r.get("Type") == "AWS::Serverless::Function"
    ]


def manifest(repository: str, tag: str, salt: str = "") -> str:
    """A Docker image manifest unique to (repository, tag, salt), as `docker push` uploads."""
    seed = hashlib.sha256(f"{repository}:{tag}:{salt}".encode()).hexdigest()
    layer = hashlib.sha256(f"layer:{repository}:{tag}:{salt}".encode()).hexdigest()
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 7023,
                "digest": f"sha256:{seed}",
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 32654 + int(seed[:4], 16),
                    "digest": f"sha256:{layer}",
                }
            ],
        },
        separators=(",", ":"),
    )


def managed_clusters(config_text: str, also: list[str] | None = None) -> list[str]:
    """template.yaml's ``ClusterNames``: every cluster an environment of the
    config names (``[apps.<app>.environments.<env>] cluster``), plus ``also``,
    in order, once each -- what an operator passes for the config they deploy."""
    import tomllib

    names = [n.strip() for n in (also or []) if n.strip()]
    for app in (tomllib.loads(config_text).get("apps") or {}).values():
        for environment in ((app or {}).get("environments") or {}).values():
            cluster = (environment or {}).get("cluster")
            if cluster and cluster not in names:
                names.append(str(cluster))
    return names


def _pid_alive(pid: int, marker: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return marker.encode() in handle.read()
    except OSError:
        return False


class Stack:
    def __init__(
        self,
        state_dir: str | Path = ROOT / ".ferry",
        *,
        bin_dir: str | Path | None = None,
        config_extra: list[str] | None = None,
        detached: bool = False,
        python: str = sys.executable,
        say: Callable[[str], None] | None = None,
        seed: Callable[["Stack"], None] | None = None,
        iam: bool = True,
    ):
        self.state_dir = Path(state_dir).resolve()
        self.log_dir = self.state_dir / "logs"
        self.bin_dir = Path(bin_dir or os.environ.get("FERRY_BIN_DIR") or ROOT / "target" / "debug").resolve()
        self.config_extra = list(config_extra or [])
        self.detached = detached
        self.python = python
        self.say = say or (lambda message: None)
        # more estate, created after infra/ and before the functions are attached
        # (so its first pushes reach no function, as before ferry was deployed)
        self.extra_seed = seed
        # enforce the template's IAM policies on the functions' calls
        self.iam = iam
        self.processes: dict[str, subprocess.Popen] = {}
        self.info: dict[str, Any] = {}
        self._clients: dict[tuple[str, str], Any] = {}

    # ------------------------------------------------------------ lifecycle

    @property
    def state_file(self) -> Path:
        return self.state_dir / "stack.json"

    def config_text(self) -> str:
        parts = [(INFRA / "ferry.toml").read_text()]
        for extra in self.config_extra:
            parts.append(Path(extra).read_text() if os.path.exists(extra) else extra)
        return "\n".join(parts)

    def start(self) -> "Stack":
        if self.state_file.exists():
            previous = json.loads(self.state_file.read_text())
            if any(_pid_alive(p["pid"], p["marker"]) for p in previous.get("processes", {}).values()):
                raise StackError(f"a stack is already running from {self.state_dir} (scripts/stack stop)")
            self.state_file.unlink()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for old_log in self.log_dir.glob("*.log"):  # this run's logs only
            old_log.unlink()
        binaries = function_binaries()
        missing = [b for b in binaries if not (self.bin_dir / b).exists()]
        if missing:
            raise StackError(
                f"no {', '.join(missing)} in {self.bin_dir}: build them with "
                f"`cargo build {' '.join('-p ' + b for b in binaries)}`"
            )
        try:
            self._start_emulator()
            self._seed()
            if self.extra_seed:
                self.extra_seed(self)
            if self.iam:
                self.load_iam()
            self._start_runtime()
            self.control("/_ferry/router/config", {"functions_url": self.info["runtime"]["endpoint"]})
            self.settle(60)  # the services' first deployments reach steady state
            self._write_state()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, args: list[str], ready_file: Path, marker: str, timeout: float) -> dict[str, Any]:
        log = open(self.log_dir / f"{name}.log", "ab")
        command = [self.python, *args, "--ready-file", str(ready_file)]
        if self.detached:
            command.append("--ignore-stdin")
        env = dict(os.environ)
        # AWS managed policies (AmazonECSTaskExecutionRolePolicy) exist in IAM
        env["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL if self.detached else subprocess.PIPE,
            stdout=log,
            stderr=log,
            cwd=str(ROOT),
            # own session: a terminal's Ctrl-C reaches only whoever started the
            # stack, which then stops it in order (runtime first). Attached
            # children still exit by themselves when their stdin pipe closes.
            start_new_session=True,
        )
        log.close()
        self.processes[name] = process
        deadline = time.time() + timeout
        while True:
            if ready_file.exists():
                try:
                    info = json.loads(ready_file.read_text())
                    break
                except ValueError:
                    pass
            if process.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise StackError(f"{name} exited ({process.returncode}) while starting:\n{tail}")
            if time.time() > deadline:
                raise StackError(f"{name} not ready after {timeout:.0f}s; see {self.log_dir / (name + '.log')}")
            time.sleep(0.05)
        info["pid"] = process.pid
        info["marker"] = marker
        return info

    def _start_emulator(self) -> None:
        self.say("starting the emulator (moto + ECS behaviours + event router)")
        info = self._spawn(
            "emulator",
            [
                str(HERE / "ferry_emulator.py"),
                "--port",
                "0",
                "--region",
                REGION,
                "--router",
                str(TEMPLATE),
                "--scenario",
            ],
            self.state_dir / "emulator.json",
            "ferry_emulator.py",
            90,
        )
        self.info["emulator"] = info

    def _start_runtime(self) -> None:
        self.say(f"starting {', '.join(function_binaries())} under the local Lambda runtime")
        ids = self.state_dir / "ferry-stack.json"
        ferry = self.info["ferry"]
        ids.write_text(json.dumps({"physical_ids": ferry["physical_ids"], "parameters": ferry["parameters"]}, indent=2))
        info = self._spawn(
            "runtime",
            [
                str(HERE / "lambda_runtime.py"),
                "--template",
                str(TEMPLATE),
                "--bin-dir",
                str(self.bin_dir),
                "--endpoint-url",
                self.endpoint,
                "--region",
                REGION,
                "--account-id",
                ACCOUNT,
                "--stack-name",
                FERRY_STACK,
                "--log-dir",
                str(self.log_dir),
                "--stack-file",
                str(ids),
            ],
            self.state_dir / "runtime.json",
            "lambda_runtime.py",
            120,
        )
        self.info["runtime"] = info

    def _seed(self) -> None:
        emulator = self.info["emulator"]
        factory = lambda service: self.client(service)  # noqa: E731
        created: list[str] = []

        def note(logical_id: str, kind: str, physical_id: str) -> None:
            created.append(f"{kind} {physical_id}")

        self.say("infra/sample-registry.yaml: ECR repositories")
        registry = cfn.apply(
            cfn.load_template(str(INFRA / "sample-registry.yaml")),
            factory,
            region=REGION,
            account_id=ACCOUNT,
            stack_name="ferry-sample-registry",
            on_resource=note,
        )
        self.say("first images: " + ", ".join(f"{r}:{t}" for r, t in FIRST_IMAGES.items()))
        for repository, tag in FIRST_IMAGES.items():
            self.push(repository, tag)
        ssm = self.client("ssm")
        for name, value in IMAGE_TAG_PARAMETERS.items():
            ssm.put_parameter(Name=name, Value=value, Type="String", Description="current image tag (ferry writes it)")
        ssm.put_parameter(
            Name="/shop/prod/api-key", Value="sk-local-not-read-by-ferry", Type="SecureString", Description="payments API key"
        )
        self.say("infra/sample-environment.yaml: clusters, roles, secrets, task definitions, services, alarm")
        environment = cfn.apply(
            cfn.load_template(str(INFRA / "sample-environment.yaml")),
            factory,
            region=REGION,
            account_id=ACCOUNT,
            stack_name="ferry-sample-environment",
            parameters={"Subnets": emulator["subnets"], "SecurityGroups": emulator["security_groups"]},
            on_resource=note,
        )
        self.say("template.yaml: ledger table and config parameter (infra/ferry.toml)")
        ferry = cfn.apply(
            cfn.load_template(str(TEMPLATE)),
            factory,
            region=REGION,
            account_id=ACCOUNT,
            stack_name=FERRY_STACK,
            parameters={
                "ConfigToml": self.config_text(),
                "ClusterNames": ",".join(
                    managed_clusters(self.config_text(), str(environment["outputs"]["ClusterNames"]).split(","))
                ),
                "TaskRoleArns": environment["outputs"]["TaskRoleArns"],
            },
            only=FERRY_RESOURCES,
            on_resource=note,
        )
        self.info["registry"] = registry
        self.info["environment"] = environment
        self.info["ferry"] = ferry
        self.info["created"] = created

    def _write_state(self) -> None:
        state = {
            "state_dir": str(self.state_dir),
            "started_at": time.time(),
            "detached": self.detached,
            "endpoint": self.endpoint,
            "functions_url": self.info["runtime"]["endpoint"],
            "region": REGION,
            "account_id": ACCOUNT,
            "processes": {
                name: {"pid": self.info[name]["pid"], "marker": self.info[name]["marker"]} for name in ("emulator", "runtime")
            },
            "emulator": self.info["emulator"],
            "runtime": self.info["runtime"],
            "ferry": self.info["ferry"],
            "environment_outputs": self.info["environment"]["outputs"],
            "logs": str(self.log_dir),
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(tmp, self.state_file)

    def stop(self) -> None:
        """Stop every process this stack started (runtime first), wait for them."""
        for name in ("runtime", "emulator"):
            process = self.processes.pop(name, None)
            if process is None:
                continue
            if process.stdin:
                try:
                    process.stdin.close()
                except OSError:
                    pass
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for name in ("emulator.json", "runtime.json", "stack.json", "ferry-stack.json"):
            try:
                (self.state_dir / name).unlink()
            except OSError:
                pass

    @classmethod
    def attach(cls, state_dir: str | Path = ROOT / ".ferry") -> "Stack":
        stack = cls(state_dir)
        if not stack.state_file.exists():
            raise StackError(f"no stack running from {stack.state_dir} (no {stack.state_file})")
        state = json.loads(stack.state_file.read_text())
        stack.info = {
            "emulator": state["emulator"],
            "runtime": state["runtime"],
            "ferry": state["ferry"],
            "environment": {"outputs": state.get("environment_outputs", {})},
        }
        return stack

    @classmethod
    def stop_detached(cls, state_dir: str | Path = ROOT / ".ferry") -> list[str]:
        """Stop a stack started by `start` (another process) from its state file."""
        state_dir = Path(state_dir).resolve()
        state_file = state_dir / "stack.json"
        stopped = []
        candidates: dict[str, dict[str, Any]] = {}
        if state_file.exists():
            candidates.update(json.loads(state_file.read_text()).get("processes", {}))
        for name, marker in (("runtime", "lambda_runtime.py"), ("emulator", "ferry_emulator.py")):
            ready = state_dir / f"{name}.json"
            if name not in candidates and ready.exists():
                try:
                    candidates[name] = {"pid": json.loads(ready.read_text())["pid"], "marker": marker}
                except (ValueError, KeyError):
                    pass
        for name in ("runtime", "emulator"):
            process = candidates.get(name)
            if not process or not _pid_alive(process["pid"], process["marker"]):
                continue
            os.kill(process["pid"], signal.SIGTERM)
            deadline = time.time() + 15
            while _pid_alive(process["pid"], process["marker"]) and time.time() < deadline:
                time.sleep(0.1)
            if _pid_alive(process["pid"], process["marker"]):
                os.kill(process["pid"], signal.SIGKILL)
            stopped.append(f"{name} (pid {process['pid']})")
        for name in ("emulator.json", "runtime.json", "stack.json", "ferry-stack.json"):
            try:
                (state_dir / name).unlink()
            except OSError:
                pass
        return stopped

    # ------------------------------------------------------------------- IAM

    def iam_principals(self, template: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """The IAM principals of ``template`` (default: ``template.yaml``), resolved
        with this stack's parameters, physical ids and attributes: what
        ``load_iam`` loads (a test may load a changed copy)."""
        import iam_behaviours

        ferry = self.info["ferry"]
        return iam_behaviours.template_principals(
            template if template is not None else cfn.load_template(str(TEMPLATE)),
            region=REGION,
            account_id=ACCOUNT,
            stack_name=FERRY_STACK,
            physical_ids=ferry["physical_ids"],
            parameters=ferry["parameters"],
            attributes=ferry.get("attributes"),
        )

    def load_iam(self, principals: dict[str, dict[str, Any]] | None = None, replace: bool = True) -> dict[str, Any]:
        """``POST /_ferry/iam``: these principals (default: the template's); with
        ``replace``, only these."""
        loaded = self.iam_principals() if principals is None else principals
        self.say(f"IAM: {', '.join(sorted(loaded))} authorised as template.yaml's policies allow")
        return self.control("/_ferry/iam", {"principals": loaded, "replace": replace})

    def iam_decisions(self, since: int = 0) -> list[dict[str, Any]]:
        return self.control(f"/_ferry/iam/decisions?since={since}")["decisions"]

    # ---------------------------------------------------------------- access

    @property
    def endpoint(self) -> str:
        return self.info["emulator"]["endpoint"]

    @property
    def functions_url(self) -> str:
        return self.info["runtime"]["endpoint"]

    def client(self, service: str, key: str = OPERATOR_KEY) -> Any:
        import boto3
        from botocore.config import Config

        cache_key = (service, key)
        if cache_key not in self._clients:
            self._clients[cache_key] = boto3.client(
                service,
                endpoint_url=self.endpoint,
                region_name=REGION,
                aws_access_key_id=key,
                aws_secret_access_key="testing",
                config=Config(retries={"max_attempts": 2, "mode": "standard"}, read_timeout=60),
            )
        return self._clients[cache_key]

    def _http(self, base: str, path: str, body: Any = None, method: str | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        request = urllib.request.Request(
            base + path,
            data=data,
            method=method or ("POST" if data is not None else "GET"),
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                raw, status, response_headers = response.read(), response.status, dict(response.headers)
        except urllib.error.HTTPError as exc:
            raw, status, response_headers = exc.read(), exc.code, dict(exc.headers)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return status, parsed, response_headers

    def control(self, path: str, body: Any = None, method: str | None = None) -> Any:
        status, parsed, _ = self._http(self.endpoint, path, body, method)
        if status != 200:
            raise StackError(f"{method or ('POST' if body is not None else 'GET')} {path} -> {status}: {parsed}")
        return parsed

    def invoke(self, function: str, payload: Any, raw: bool = False) -> tuple[int, Any, str | None]:
        """Lambda Invoke (RequestResponse): (HTTP status, reply, X-Amz-Function-Error)."""
        body = payload if raw else json.dumps(payload).encode()
        status, parsed, headers = self._http(self.functions_url, f"/2015-03-31/functions/{function}/invocations", body)
        return status, parsed, headers.get("X-Amz-Function-Error")

    def reconcile(self, app: str | None = None, environment: str | None = None, repository: str | None = None) -> list[dict[str, Any]]:
        """Invokes ferry-reconcile synchronously, as an operator would (the
        local stack never fires its schedule: template.yaml's ``Schedule``
        event has no pattern for the router to match), for the lanes named
        (none: every lane); returns its decisions. A function error or an
        ``{"ok": false}`` answer is a :class:`StackError` carrying the reply."""
        request = {k: v for k, v in (("app", app), ("environment", environment), ("repository", repository)) if v is not None}
        status, reply, error = self.invoke("ferry-reconcile", {"reconcile": request})
        if status != 200 or error or not isinstance(reply, dict) or reply.get("ok") is not True:
            raise StackError(f"ferry-reconcile {request} -> {status} {error or ''}: {reply}")
        return list(reply.get("decisions") or [])

    def function_configuration(self, function: str, variables: dict[str, str] | None = None) -> dict[str, Any]:
        path = f"/2015-03-31/functions/{function}/configuration"
        if variables is None:
            status, parsed, _ = self._http(self.functions_url, path)
        else:
            status, parsed, _ = self._http(self.functions_url, path, {"Environment": {"Variables": variables}}, "PUT")
        if status != 200:
            raise StackError(f"{path} -> {status}: {parsed}")
        return parsed

    def scenario(self, update: dict[str, Any]) -> dict[str, Any]:
        return self.control("/_ferry/scenario", update)

    def router(self, update: dict[str, Any]) -> dict[str, Any]:
        return self.control("/_ferry/router/config", update)

    def router_log(self, since: int = 0) -> list[dict[str, Any]]:
        return self.control(f"/_ferry/router/log?since={since}")["entries"]

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        return self.control(f"/_ferry/calls?since={since}")["calls"]

    def status(self) -> dict[str, Any]:
        return self.control("/_ferry/router/status")

    def settle(self, timeout: float = 60.0, quiet: float = 0.3) -> dict[str, Any]:
        """Wait until no delivery, held event or scenario timer is pending."""
        deadline = time.time() + timeout
        calm_since = None
        while True:
            status = self.status()
            calm = status["in_flight"] == 0 and status["held"] == 0 and not status["scheduled"]
            now = time.time()
            if calm:
                calm_since = calm_since or now
                if now - calm_since >= quiet:
                    return status
            else:
                calm_since = None
            if now > deadline:
                raise StackError(f"the stack did not settle in {timeout:.0f}s: {json.dumps(status)[:2000]}")
            time.sleep(0.05)

    # ---------------------------------------------------------------- estate

    def push(self, repository: str, tag: str, salt: str = "") -> str:
        """`docker push repository:tag` as ECR sees it: PutImage; returns the digest."""
        image = self.client("ecr").put_image(
            repositoryName=repository, imageManifest=manifest(repository, tag, salt), imageTag=tag
        )["image"]
        return image["imageId"]["imageDigest"]

    def revisions(self, family: str) -> list[str]:
        ecs = self.client("ecs")
        arns: list[str] = []
        token = None
        while True:
            kwargs: dict[str, Any] = {"familyPrefix": family, "sort": "ASC"}
            if token:
                kwargs["nextToken"] = token
            page = ecs.list_task_definitions(**kwargs)
            arns.extend(a for a in page["taskDefinitionArns"] if a.rsplit("/", 1)[1].rsplit(":", 1)[0] == family)
            token = page.get("nextToken")
            if not token:
                break
        return sorted(arns, key=lambda a: int(a.rsplit(":", 1)[1]))

    def services(self, cluster: str, names: list[str]) -> dict[str, dict[str, Any]]:
        described = self.client("ecs").describe_services(cluster=cluster, services=names)["services"]
        return {s["serviceName"]: s for s in described}

    def task_definition(self, arn: str) -> dict[str, Any]:
        out = self.client("ecs").describe_task_definition(taskDefinition=arn, include=["TAGS"])
        return {**out["taskDefinition"], "tags": out.get("tags", [])}

    def parameter_history(self, name: str) -> list[dict[str, Any]]:
        ssm = self.client("ssm")
        history: list[dict[str, Any]] = []
        token = None
        while True:
            kwargs: dict[str, Any] = {"Name": name, "WithDecryption": False}
            if token:
                kwargs["NextToken"] = token
            page = ssm.get_parameter_history(**kwargs)
            history.extend(
                {"version": p["Version"], "value": p["Value"], "labels": p.get("Labels", [])} for p in page["Parameters"]
            )
            token = page.get("NextToken")
            if not token:
                break
        return history

    @property
    def ledger_table(self) -> str:
        return self.info["ferry"]["physical_ids"]["LedgerTable"]

    def ledger(self) -> list[dict[str, Any]]:
        from boto3.dynamodb.types import TypeDeserializer

        deserializer = TypeDeserializer()
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.ledger_table}
        while True:
            page = self.client("dynamodb").scan(**kwargs)
            items.extend({k: deserializer.deserialize(v) for k, v in item.items()} for item in page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(items, key=lambda i: (str(i.get("pk")), str(i.get("sk"))))

    def release(self, release_id: str) -> dict[str, Any] | None:
        """One release record (a consistent GetItem: tests poll it)."""
        from boto3.dynamodb.types import TypeDeserializer

        item = self.client("dynamodb").get_item(
            TableName=self.ledger_table,
            Key={"pk": {"S": f"release#{release_id}"}, "sk": {"S": "release"}},
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            return None
        deserializer = TypeDeserializer()
        return {k: deserializer.deserialize(v) for k, v in item.items()}


# -------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ferry's local AWS stack")
    parser.add_argument("command", choices=["start", "run", "stop", "status", "cargo-args"])
    parser.add_argument("--state-dir", default=str(ROOT / ".ferry"))
    parser.add_argument("--bin-dir", default=None, help="function binaries (default target/debug)")
    parser.add_argument("--config-extra", action="append", help="more ferry config (TOML file) appended to infra/ferry.toml")
    parser.add_argument("--no-iam", action="store_true", help="do not enforce template.yaml's IAM policies on the functions' calls")
    args = parser.parse_args(argv)

    if args.command == "cargo-args":
        # the packages to build: one per function in template.yaml, and the
        # operator's CLI (`ferry`, tests/e2e/test_cli.py and the demo use it)
        print(" ".join(f"-p {b}" for b in [*function_binaries(), "ferry-cli"]))
        return 0
    if args.command == "stop":
        stopped = Stack.stop_detached(args.state_dir)
        print("stopped " + ", ".join(stopped) if stopped else "nothing was running")
        return 0
    if args.command == "status":
        try:
            stack = Stack.attach(args.state_dir)
            state = json.loads(stack.state_file.read_text())
            alive = {n: _pid_alive(p["pid"], p["marker"]) for n, p in state["processes"].items()}
            status = stack.status() if all(alive.values()) else None
        except (StackError, OSError, urllib.error.URLError) as exc:
            print(f"not running ({exc})")
            return 1
        print(f"emulator  {state['endpoint']}  pid {state['processes']['emulator']['pid']}  {'up' if alive['emulator'] else 'DOWN'}")
        print(f"functions {state['functions_url']}  pid {state['processes']['runtime']['pid']}  {'up' if alive['runtime'] else 'DOWN'}")
        for name, function in state["runtime"]["functions"].items():
            print(f"  {name:<15} {function['invoke_url']}")
        if status:
            print(f"router    {len(status['rules'])} rules, {status['in_flight']} deliveries in flight, {status['seq']} log entries")
            iam = stack.control("/_ferry/iam")
            print(f"iam       {'enforced' if iam['enabled'] and iam['principals'] else 'off'} for {', '.join(sorted(iam['principals'])) or 'nobody'}; {iam['decisions']} decisions (GET /_ferry/iam/decisions)")
        print(f"logs      {state['logs']}")
        print(f"env       export AWS_ENDPOINT_URL={state['endpoint']} AWS_REGION={state['region']} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing")
        return 0 if all(alive.values()) else 1

    stack = Stack(
        args.state_dir,
        bin_dir=args.bin_dir,
        config_extra=args.config_extra,
        detached=args.command == "start",
        iam=not args.no_iam,
        say=lambda message: print(f"stack: {message}", file=sys.stderr, flush=True),
    )
    interrupted = []

    def on_signal(signum: int, _frame: Any) -> None:
        interrupted.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
    except KeyboardInterrupt:
        print("stack: interrupted; stopped what had started", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - say what failed, after stopping what started
        print(f"stack: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"stack: up. emulator {stack.endpoint}, functions {stack.functions_url}, state {stack.state_file}", file=sys.stderr)
    if args.command == "start":
        return 0
    print("stack: running; Ctrl-C stops it", file=sys.stderr)
    try:
        while all(p.poll() is None for p in stack.processes.values()):
            time.sleep(0.5)
        print("stack: a process exited; stopping", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()
        print("stack: stopped", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
