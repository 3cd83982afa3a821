#!/usr/bin/env python3
"""A local Lambda: ferry's function binaries behind the Lambda Runtime API.

Launch::

    .venv/bin/python tests/emulator/lambda_runtime.py --template template.yaml \\
        --bin-dir target/debug --ready-file .ferry/runtime.json \\
        --endpoint-url http://127.0.0.1:PORT --region eu-west-1 \\
        [--stack-file stack.json] [--parameter ConfigParameterName=/ferry/config]

For every ``AWS::Serverless::Function`` in the template it runs the binary
named by ``Metadata.BuildProperties.Binary`` (``<bin-dir>/<binary>``) the way
Lambda runs a ``provided.al2023`` function:

* **Execution environments.** Each instance of a function is one process of
  the binary with its own Runtime API endpoint (``AWS_LAMBDA_RUNTIME_API``,
  one loopback port per instance, as each Lambda execution environment has
  its own). One instance is started (and initialised) per function at launch;
  when an invocation arrives and no instance is idle, another one is started,
  up to ``--max-concurrency`` (Lambda scales the same way), so concurrent
  events really run concurrently.
* **Runtime API** (2018-06-01): ``GET /runtime/invocation/next`` (headers
  ``Lambda-Runtime-Aws-Request-Id``, ``Lambda-Runtime-Deadline-Ms``,
  ``Lambda-Runtime-Invoked-Function-Arn``, ``Lambda-Runtime-Trace-Id``),
  ``POST /runtime/invocation/{id}/response``, ``POST .../{id}/error``,
  ``POST /runtime/init/error``.
* **Invoke API** on the main port, as Lambda's: ``POST
  /2015-03-31/functions/{name}/invocations`` (name = binary, logical id or
  function name); ``X-Amz-Invocation-Type`` ``RequestResponse`` (default:
  200 with the reply; a function error adds ``X-Amz-Function-Error:
  Unhandled``), ``Event`` (202; retried twice on a function error, as
  Lambda's asynchronous invoke) or ``DryRun`` (204). A body that is not JSON
  is refused with 400 ``InvalidRequestContentException`` before any function
  runs, as Lambda does; an unknown function is 404 ``ResourceNotFoundException``.
* **Timeout**: an invocation still running at its deadline (``Timeout`` in
  the template) fails with ``Sandbox.Timedout`` and its process is killed.
  A process that exits while it holds an invocation fails it with
  ``Runtime.ExitError``.
* **Environment**: ``Globals.Function.Environment`` merged with the
  function's ``Environment``, intrinsics resolved (``Ref`` of a parameter ->
  its value or ``--parameter`` override; ``Ref`` of a resource -> its
  physical id from ``--stack-file``; ``Fn::GetAtt`` of a role's or queue's
  ``Arn`` the local stack did not create -> the ARN CloudFormation would
  give it, less its random suffix), plus what Lambda sets
  (``AWS_LAMBDA_FUNCTION_NAME``, ``..._MEMORY_SIZE``, ``..._VERSION``,
  ``AWS_LAMBDA_LOG_GROUP_NAME``, ``AWS_REGION``, ``_HANDLER``, ...) and the
  emulator's ``AWS_ENDPOINT_URL`` and dummy credentials.
  ``GET``/``PUT /2015-03-31/functions/{name}/configuration`` reads or
  replaces ``Environment.Variables`` (as ``UpdateFunctionConfiguration``
  does; the function's instances are recycled). ``GET /2015-03-31/functions``
  lists every function with the number of invocations it took.
* **Logs**: each function's stdout/stderr, with Lambda's ``START`` /
  ``END`` / ``REPORT`` lines, go to ``<log-dir>/<binary>.log``.

Like the emulator it exits when stdin reaches EOF (unless ``--ignore-stdin``)
or on SIGTERM/SIGINT, and takes every function process with it (they also
get SIGKILL from the kernel if this process dies: PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

ASYNC_RETRY_DELAYS = [1.0, 2.0]


def _set_pdeathsig() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Invocation:
    def __init__(self, payload: bytes, timeout: float):
        self.id = str(uuid.uuid4())
        self.payload = payload
        self.timeout = timeout
        self.deadline = time.time() + timeout
        self.done = threading.Event()
        self.error: str | None = None  # function error type, or None
        self.body = b""
        self.started = 0.0
        self.instance: "Instance | None" = None

    def finish(self, body: bytes, error: str | None) -> bool:
        if self.done.is_set():
            return False
        self.body, self.error = body, error
        self.done.set()
        return True


class Instance:
    """One execution environment: a process and its own Runtime API server."""

    def __init__(self, function: "Function"):
        self.function = function
        self.id = uuid.uuid4().hex[:12]
        self.current: Invocation | None = None
        self.idle = False
        self.ready = threading.Event()  # first /next call = init done
        self.retired = False
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _runtime_handler(self))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, name=f"rapi-{function.binary}", daemon=True).start()
        env = dict(function.environment())
        env["AWS_LAMBDA_RUNTIME_API"] = f"127.0.0.1:{self.port}"
        env["AWS_LAMBDA_LOG_STREAM_NAME"] = time.strftime("%Y/%m/%d/") + f"[$LATEST]{self.id}"
        self.log = open(function.log_path, "ab", buffering=0)
        self.process = subprocess.Popen(
            [function.path],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
            preexec_fn=_set_pdeathsig,
            cwd=os.path.dirname(function.path) or ".",
        )
        threading.Thread(target=self._watch, name=f"watch-{function.binary}", daemon=True).start()

    def _watch(self) -> None:
        code = self.process.wait()
        self.function.instance_exited(self, code)
        self.server.shutdown()
        self.server.server_close()
        self.log.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.kill()
            except OSError:
                pass


class Function:
    def __init__(self, runtime: "Runtime", logical_id: str, spec: dict[str, Any]):
        self.runtime = runtime
        self.logical_id = logical_id
        self.binary: str = spec["binary"]
        self.name: str = spec["name"]
        self.path: str = os.path.join(runtime.bin_dir, self.binary)
        self.timeout: float = float(spec["timeout"])
        self.memory: int = int(spec["memory"])
        self.variables: dict[str, str] = dict(spec["variables"])
        self.lambda_env: dict[str, str] = dict(spec["lambda_env"])
        self.retries: int = int(spec["retries"])
        self.log_path = os.path.join(runtime.log_dir, f"{self.binary}.log")
        self.arn = f"arn:aws:lambda:{runtime.region}:{runtime.account_id}:function:{self.name}"
        self.cond = threading.Condition()
        self.queue: collections.deque[Invocation] = collections.deque()
        self.instances: list[Instance] = []
        self.init_failures = 0
        self.stopping = False
        # every invocation taken, synchronous or asynchronous (a test checks that
        # a command invoked nothing)
        self.invocations = 0

    def environment(self) -> dict[str, str]:
        return {**self.runtime.base_env, **self.lambda_env, **self.variables}

    def describe(self) -> dict[str, Any]:
        with self.cond:
            return {
                "FunctionName": self.name,
                "FunctionArn": self.arn,
                "Runtime": "provided.al2023",
                "Handler": "bootstrap",
                "Timeout": int(self.timeout),
                "MemorySize": self.memory,
                "Environment": {"Variables": dict(self.variables)},
                "LogicalId": self.logical_id,
                "Binary": self.binary,
                "Instances": len(self.instances),
                "Invocations": self.invocations,
            }

    # -- instances

    def spawn(self) -> Instance:
        instance = Instance(self)
        with self.cond:
            self.instances.append(instance)
        return instance

    def instance_exited(self, instance: Instance, code: int) -> None:
        if not self.stopping:
            state = "retired" if instance.retired else ("during init" if not instance.ready.is_set() else "")
            self._log_line(f"EXIT environment {instance.id} ended with status {code} {state}".rstrip())
        with self.cond:
            if instance in self.instances:
                self.instances.remove(instance)
            current, instance.current = instance.current, None
            if not instance.ready.is_set() and not instance.retired and not self.stopping:
                self.init_failures += 1
            self.cond.notify_all()
        if current is not None and not current.done.is_set():
            message = f"RequestId: {current.id} Error: Runtime exited with error: exit status {code}"
            current.finish(json.dumps({"errorType": "Runtime.ExitError", "errorMessage": message}).encode(), "Unhandled")
            self._log_line(f"END RequestId: {current.id}\nREPORT RequestId: {current.id}\tStatus: error\tError Type: Runtime.ExitError")

    def recycle(self) -> None:
        """New configuration: idle instances go now, busy ones after their invocation."""
        with self.cond:
            instances = list(self.instances)
            for instance in instances:
                instance.retired = True
            self.cond.notify_all()
        for instance in instances:
            if instance.current is None:
                instance.kill()

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            instances = list(self.instances)
            self.cond.notify_all()
        for instance in instances:
            if instance.process.poll() is None:
                try:
                    instance.process.terminate()
                except OSError:
                    pass
        deadline = time.time() + 3
        for instance in instances:
            try:
                instance.process.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                instance.kill()
                instance.process.wait()

    # -- invoking

    def invoke(self, payload: bytes) -> Invocation:
        invocation = Invocation(payload, self.timeout)
        with self.cond:
            self.invocations += 1
            self.queue.append(invocation)
            self._scale()
            self.cond.notify_all()
        while not invocation.done.wait(0.2):
            with self.cond:
                if invocation in self.queue:
                    stuck = self.init_failures >= 3 and not any(
                        i.process.poll() is None and not i.retired for i in self.instances
                    )
                    if stuck or time.time() > invocation.deadline:
                        self.queue.remove(invocation)
                        invocation.finish(
                            json.dumps(
                                {
                                    "errorType": "Runtime.InitError" if self.init_failures else "Sandbox.Timedout",
                                    "errorMessage": f"no execution environment picked the invocation up within {self.timeout:.0f}s"
                                    + (f" ({self.init_failures} failed init(s); see {self.log_path})" if self.init_failures else ""),
                                }
                            ).encode(),
                            "Unhandled",
                        )
                        break
                    self._scale()
                    continue
            if invocation.instance is not None and time.time() > invocation.started + self.timeout:
                message = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {invocation.id} Task timed out after {self.timeout:.2f} seconds"
                if invocation.finish(json.dumps({"errorType": "Sandbox.Timedout", "errorMessage": message}).encode(), "Unhandled"):
                    self._log_line(message)
                    invocation.instance.kill()  # Lambda resets the environment
        return invocation

    def _scale(self) -> None:
        # under self.cond
        live = [i for i in self.instances if not i.retired and i.process.poll() is None]
        idle = [i for i in live if i.idle or not i.ready.is_set()]
        waiting = len(self.queue)
        if waiting > len(idle) and len(live) < self.runtime.max_concurrency and self.init_failures < 3:
            self.runtime.spawn_later(self)

    def next(self, instance: Instance) -> Invocation | None:
        """Block until an invocation is available for ``instance`` (None: shut down)."""
        instance.ready.set()
        with self.cond:
            self.init_failures = 0
            if instance.current is not None:
                instance.current = None
            instance.idle = True
            try:
                while not self.queue:
                    if self.stopping or instance.retired or self.runtime.stopping.is_set():
                        break
                    self.cond.wait(0.5)
                if self.stopping or instance.retired or not self.queue:
                    return None
                invocation = self.queue.popleft()
            finally:
                instance.idle = False
            invocation.instance = instance
            invocation.started = time.time()
            invocation.deadline = invocation.started + self.timeout
            instance.current = invocation
        self._log_line(f"START RequestId: {invocation.id} Version: $LATEST")
        return invocation

    def respond(self, instance: Instance, request_id: str, body: bytes, error: str | None) -> bool:
        with self.cond:
            invocation = instance.current
            if invocation is None or invocation.id != request_id:
                return False
            instance.current = None
        duration = (time.time() - invocation.started) * 1000
        invocation.finish(body, error)
        status = "" if error is None else "\tStatus: error"
        self._log_line(
            f"END RequestId: {request_id}\nREPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\t"
            f"Memory Size: {self.memory} MB{status}"
        )
        if instance.retired:
            instance.kill()
        return True

    def _log_line(self, text: str) -> None:
        with open(self.log_path, "a") as handle:
            handle.write(text + "\n")


def _runtime_handler(instance: Instance) -> type:
    function = instance.function

    class RuntimeApi(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
            data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_GET(self) -> None:  # noqa: N802
            if self.path.rstrip("/") != "/2018-06-01/runtime/invocation/next":
                self._reply(404, {"errorMessage": f"unknown runtime route {self.path}"})
                return
            invocation = function.next(instance)
            if invocation is None:
                # shutting down: hold the call so the runtime does not spin
                self.close_connection = True
                time.sleep(1)
                self._reply(410, {"errorMessage": "environment shutting down"})
                return
            trace = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"
            self._reply(
                200,
                invocation.payload,
                {
                    "Lambda-Runtime-Aws-Request-Id": invocation.id,
                    "Lambda-Runtime-Deadline-Ms": str(int(invocation.deadline * 1000)),
                    "Lambda-Runtime-Invoked-Function-Arn": function.arn,
                    "Lambda-Runtime-Trace-Id": trace,
                },
            )

        def do_POST(self) -> None:  # noqa: N802
            body = self._body()
            parts = self.path.strip("/").split("/")
            if parts[:3] == ["2018-06-01", "runtime", "init"] and parts[3:] == ["error"]:
                function._log_line(f"INIT_REPORT Status: error {body.decode(errors='replace')}")
                with function.cond:
                    function.init_failures += 1
                    invocation = function.queue.popleft() if function.queue else None
                if invocation is not None:
                    invocation.finish(body or b'{"errorType":"Runtime.InitError"}', "Unhandled")
                self._reply(202, {"status": "OK"})
                return
            if len(parts) == 5 and parts[:3] == ["2018-06-01", "runtime", "invocation"] and parts[4] in ("response", "error"):
                error = None
                if parts[4] == "error":
                    error = "Unhandled"
                if not function.respond(instance, parts[3], body, error):
                    self._reply(400, {"errorMessage": f"unknown or finished request id {parts[3]}", "errorType": "InvalidRequestID"})
                    return
                self._reply(202, {"status": "OK"})
                return
            self._reply(404, {"errorMessage": f"unknown runtime route {self.path}"})

    return RuntimeApi


class Runtime:
    def __init__(self, args: argparse.Namespace):
        from cfn import Resolver, load_template

        self.bin_dir = os.path.abspath(args.bin_dir)
        self.log_dir = os.path.abspath(args.log_dir)
        os.makedirs(self.log_dir, exist_ok=True)
        self.region = args.region
        self.account_id = args.account_id
        self.max_concurrency = args.max_concurrency
        self.stopping = threading.Event()
        # Processes are started by one long-lived thread: PR_SET_PDEATHSIG fires
        # when the *thread* that forked the child ends, not the process.
        self._spawns: "queue.Queue[Function]" = queue.Queue()
        self._spawning: set[str] = set()
        threading.Thread(target=self._spawner, name="spawner", daemon=True).start()
        self.base_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "AWS_REGION": args.region,
            "AWS_DEFAULT_REGION": args.region,
            "AWS_ENDPOINT_URL": args.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "_HANDLER": "bootstrap",
            "LAMBDA_TASK_ROOT": self.bin_dir,
            "LAMBDA_RUNTIME_DIR": self.bin_dir,
        }
        if "RUST_BACKTRACE" in os.environ:
            self.base_env["RUST_BACKTRACE"] = os.environ["RUST_BACKTRACE"]

        template = load_template(args.template)
        physical_ids: dict[str, Any] = {}
        parameters: dict[str, Any] = {}
        if args.stack_file:
            with open(args.stack_file) as handle:
                stack = json.load(handle)
            physical_ids = stack.get("physical_ids") or {}
            parameters = stack.get("parameters") or {}
        parameters.update(dict(p.split("=", 1) for p in args.parameter or []))
        resolver = Resolver(
            template,
            parameters,
            region=args.region,
            account_id=args.account_id,
            stack_name=args.stack_name,
            physical_ids=physical_ids,
            attributes=_unapplied_attributes(template, args.region, args.account_id, args.stack_name, physical_ids),
        )
        resources = template.get("Resources") or {}
        globals_fn = (template.get("Globals") or {}).get("Function") or {}
        self.functions: dict[str, Function] = {}
        for logical_id, resource in resources.items():
            if not isinstance(resource, dict) or resource.get("Type") != "AWS::Serverless::Function":
                continue
            props = resource.get("Properties") or {}
            binary = ((resource.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary") or logical_id
            variables: dict[str, str] = {}
            for source in (globals_fn, props):
                for key, value in (((source.get("Environment") or {}).get("Variables")) or {}).items():
                    variables[key] = str(resolver.resolve(value))
            logging_config = {**(globals_fn.get("LoggingConfig") or {}), **(props.get("LoggingConfig") or {})}
            log_group = f"/aws/lambda/{resolver.resolve(props.get('FunctionName')) or f'{args.stack_name}-{logical_id}'}"
            if "LogGroup" in logging_config:
                try:
                    log_group = str(resolver.resolve(logging_config["LogGroup"]))
                except ValueError:
                    group = resources.get((logging_config["LogGroup"] or {}).get("Ref", ""), {})
                    log_group = str(resolver.resolve((group.get("Properties") or {}).get("LogGroupName", log_group)))
            name = str(resolver.resolve(props.get("FunctionName")) or f"{args.stack_name}-{logical_id}")
            memory = int(props.get("MemorySize", globals_fn.get("MemorySize", 128)))
            lambda_env = {
                # each function its own credentials, as each has its own role on
                # AWS (the emulator's call log tells the functions apart by them)
                "AWS_ACCESS_KEY_ID": binary,
                "AWS_LAMBDA_FUNCTION_NAME": name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
                "AWS_LAMBDA_LOG_GROUP_NAME": log_group,
            }
            if logging_config.get("LogFormat") == "JSON":
                lambda_env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
                lambda_env["AWS_LAMBDA_LOG_LEVEL"] = str(logging_config.get("ApplicationLogLevel", "INFO"))
            invoke_config = {**(globals_fn.get("EventInvokeConfig") or {}), **(props.get("EventInvokeConfig") or {})}
            spec = {
                "binary": binary,
                "name": name,
                "timeout": props.get("Timeout", globals_fn.get("Timeout", 3)),
                "memory": memory,
                "variables": variables,
                "lambda_env": lambda_env,
                "retries": invoke_config.get("MaximumRetryAttempts", 2),
            }
            for override in args.env or []:
                key, value = override.split("=", 1)
                spec["variables"][key] = value
            self.functions[logical_id] = Function(self, logical_id, spec)
        if not self.functions:
            raise SystemExit(f"{args.template}: no AWS::Serverless::Function")
        missing = [f.path for f in self.functions.values() if not os.access(f.path, os.X_OK)]
        if missing:
            raise SystemExit(
                f"missing function binaries: {', '.join(missing)}; build them with "
                "`cargo build -p ferry-deploy -p ferry-gate -p ferry-watch`"
            )

    def spawn_later(self, function: Function) -> None:
        """Start one more instance of ``function`` (at most one start pending per function)."""
        if function.logical_id in self._spawning:
            return
        self._spawning.add(function.logical_id)
        self._spawns.put(function)

    def _spawner(self) -> None:
        while True:
            function = self._spawns.get()
            try:
                if not self.stopping.is_set():
                    function.spawn()
            except Exception as exc:  # noqa: BLE001
                function._log_line(f"could not start an environment: {exc}")
            finally:
                self._spawning.discard(function.logical_id)

    def find(self, name: str) -> Function | None:
        for function in self.functions.values():
            if name in (function.logical_id, function.binary, function.name, function.arn):
                return function
        return None

    def start(self, wait: float) -> None:
        # (the main thread lives as long as the runtime: safe to fork from)
        instances = [function.spawn() for function in self.functions.values()]
        deadline = time.time() + wait
        for instance in instances:
            while not instance.ready.wait(0.1):
                if instance.process.poll() is not None:
                    raise SystemExit(
                        f"{instance.function.binary} exited during init ({instance.process.returncode}); "
                        f"see {instance.function.log_path}"
                    )
                if time.time() > deadline:
                    raise SystemExit(f"{instance.function.binary} did not call the Runtime API within {wait:.0f}s")

    def stop(self) -> None:
        self.stopping.set()
        for function in self.functions.values():
            function.stop()

    def instance_on_port(self, port: int) -> "Instance | None":
        inodes = _socket_inodes(port)
        if not inodes:
            return None
        for function in self.functions.values():
            with function.cond:
                instances = list(function.instances)
            for instance in instances:
                if instance.process.poll() is None and _holds_socket(instance.process.pid, inodes):
                    return instance
        return None

    def invoke_async(self, function: Function, payload: bytes) -> None:
        def run() -> None:
            for attempt in range(1 + max(0, function.retries)):
                invocation = function.invoke(payload)
                if invocation.error is None:
                    return
                if attempt < function.retries:
                    time.sleep(ASYNC_RETRY_DELAYS[min(attempt, len(ASYNC_RETRY_DELAYS) - 1)])

        threading.Thread(target=run, daemon=True).start()


def _invoke_handler(runtime: Runtime) -> type:
    class InvokeApi(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
            data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Amzn-RequestId", str(uuid.uuid4()))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, kind: str, message: str) -> None:
            self._reply(status, {"Type": "User", "message": message}, {"X-Amzn-ErrorType": kind})

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _function(self, parts: list[str]) -> Function | None:
            function = runtime.find(parts[2]) if len(parts) >= 3 else None
            if function is None:
                name = parts[2] if len(parts) >= 3 else "?"
                self._error(
                    404,
                    "ResourceNotFoundException",
                    f"Function not found: arn:aws:lambda:{runtime.region}:{runtime.account_id}:function:{name}",
                )
            return function

        def do_GET(self) -> None:  # noqa: N802
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts == ["_runtime", "health"] or parts == ["2015-03-31", "functions"]:
                self._reply(200, {"Functions": [f.describe() for f in runtime.functions.values()]})
                return
            if len(parts) == 4 and parts[:2] == ["2015-03-31", "functions"] and parts[3] == "configuration":
                function = self._function(parts)
                if function:
                    self._reply(200, function.describe())
                return
            self._error(404, "ResourceNotFoundException", f"no route GET {self.path}")

        def do_PUT(self) -> None:  # noqa: N802
            parts = self.path.split("?")[0].strip("/").split("/")
            body = self._body()
            if len(parts) == 4 and parts[:2] == ["2015-03-31", "functions"] and parts[3] == "configuration":
                function = self._function(parts)
                if not function:
                    return
                try:
                    request = json.loads(body or b"{}")
                    variables = request["Environment"]["Variables"]
                    if not isinstance(variables, dict):
                        raise TypeError
                except (ValueError, KeyError, TypeError):
                    self._error(400, "InvalidParameterValueException", 'expected {"Environment": {"Variables": {...}}}')
                    return
                function.variables = {str(k): str(v) for k, v in variables.items()}
                function.recycle()
                self._reply(200, function.describe())
                return
            self._error(404, "ResourceNotFoundException", f"no route PUT {self.path}")

        def do_POST(self) -> None:  # noqa: N802
            parts = self.path.split("?")[0].strip("/").split("/")
            body = self._body()
            if parts == ["_ferry", "crash"]:
                self._crash(body)
                return
            if not (len(parts) == 4 and parts[:2] == ["2015-03-31", "functions"] and parts[3] == "invocations"):
                self._error(404, "ResourceNotFoundException", f"no route POST {self.path}")
                return
            function = self._function(parts)
            if function is None:
                return
            payload = body or b"{}"
            try:
                json.loads(payload)
            except (ValueError, UnicodeDecodeError):
                self._error(400, "InvalidRequestContentException", "Could not parse request body into json: the payload is not valid JSON")
                return
            kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
            if kind == "DryRun":
                self._reply(204)
                return
            if kind == "Event":
                runtime.invoke_async(function, payload)
                self._reply(202)
                return
            if kind != "RequestResponse":
                self._error(400, "InvalidParameterValueException", f"unknown X-Amz-Invocation-Type {kind}")
                return
            invocation = function.invoke(payload)
            headers = {"X-Amz-Executed-Version": "$LATEST"}
            if invocation.error:
                headers["X-Amz-Function-Error"] = invocation.error
            self._reply(200, invocation.body, headers)

        def _crash(self, body: bytes) -> None:
            """``POST /_ferry/crash {"port": N}``: kill the execution environment
            whose process holds the client end of a loopback connection from
            local port N (the emulator names the port of the AWS call it has
            just served). The invocation it was running fails with
            ``Runtime.ExitError`` and, if asynchronous, is retried."""
            try:
                port = int(json.loads(body or b"{}")["port"])
            except (ValueError, KeyError, TypeError):
                self._error(400, "InvalidRequestContentException", 'expected {"port": <client port>}')
                return
            instance = runtime.instance_on_port(port)
            if instance is None:
                self._error(404, "ResourceNotFoundException", f"no execution environment holds local port {port}")
                return
            function = instance.function
            function._log_line(f"CRASH environment {instance.id} killed after an AWS call (chaos)")
            instance.kill()
            self._reply(200, {"function": function.name, "instance": instance.id})

    return InvokeApi


def _socket_inodes(port: int) -> set[str]:
    """Inodes of the TCP sockets whose local port is ``port`` (/proc/net/tcp{,6})."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                next(handle, None)
                for line in handle:
                    fields = line.split()
                    if len(fields) > 9 and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(fields[9])
        except OSError:
            continue
    return inodes


def _holds_socket(pid: int, inodes: set[str]) -> bool:
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return True
    except OSError:
        return False
    return False


def _write_atomically(path: str, data: dict[str, Any]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".lambda-runtime-", suffix=".tmp", dir=directory)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)


def _watch_stdin(stop: threading.Event) -> None:
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    stop.set()


def _unapplied_attributes(
    template: dict[str, Any], region: str, account_id: str, stack_name: str, physical_ids: dict[str, Any]
) -> dict[tuple[str, str], str]:
    """``Fn::GetAtt`` values of the template's roles and queues that the local
    stack does not create, named as CloudFormation names them (less its random
    suffix; queues as ``cfn._sqs_queue`` names them): the functions'
    environment refers to ``SchedulerRole.Arn`` and ``FailedInvocationsQueue.Arn``."""
    attributes: dict[tuple[str, str], str] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        if not isinstance(resource, dict) or logical_id in physical_ids:
            continue
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::IAM::Role":
            name = props.get("RoleName") if isinstance(props.get("RoleName"), str) else f"{stack_name}-{logical_id}"
            path = props.get("Path") if isinstance(props.get("Path"), str) else "/"
            attributes[(logical_id, "Arn")] = f"arn:aws:iam::{account_id}:role{path}{name}"
        elif resource.get("Type") == "AWS::SQS::Queue":
            name = props.get("QueueName") if isinstance(props.get("QueueName"), str) else f"{stack_name}-{logical_id}"
            attributes[(logical_id, "Arn")] = f"arn:aws:sqs:{region}:{account_id}:{name}"
            attributes[(logical_id, "QueueName")] = name
    return attributes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--template", required=True, help="the SAM template (template.yaml)")
    parser.add_argument("--bin-dir", required=True, help="where the function binaries are (target/debug)")
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--endpoint-url", required=True, help="AWS_ENDPOINT_URL for the functions (the emulator)")
    parser.add_argument("--region", default="eu-west-1")
    parser.add_argument("--account-id", default="123456789012")
    parser.add_argument("--stack-name", default="ferry-local")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log-dir", default=".ferry/logs")
    parser.add_argument(
        "--stack-file",
        help='JSON file {"physical_ids": {logical id: physical id}, "parameters": {name: value}} of the deployed template',
    )
    parser.add_argument("--parameter", action="append", help="template parameter override Name=Value")
    parser.add_argument("--env", action="append", help="extra environment variable for every function KEY=VALUE")
    parser.add_argument("--max-concurrency", type=int, default=10, help="instances per function (default 10)")
    parser.add_argument("--init-timeout", type=float, default=60.0)
    parser.add_argument("--ignore-stdin", action="store_true")
    args = parser.parse_args(argv)

    try:
        os.unlink(args.ready_file)
    except OSError:
        pass
    runtime = Runtime(args)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if not args.ignore_stdin:
        threading.Thread(target=_watch_stdin, args=(stop,), daemon=True).start()

    server = ThreadingHTTPServer(("127.0.0.1", args.port), _invoke_handler(runtime))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="invoke-api", daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        runtime.start(args.init_timeout)
        _write_atomically(
            args.ready_file,
            {
                "endpoint": endpoint,
                "pid": os.getpid(),
                "functions": {
                    f.logical_id: {
                        "binary": f.binary,
                        "name": f.name,
                        "invoke_url": f"{endpoint}/2015-03-31/functions/{f.binary}/invocations",
                        "log": f.log_path,
                        "environment": f.variables,
                    }
                    for f in runtime.functions.values()
                },
            },
        )
        print(f"lambda-runtime ready {endpoint} ({', '.join(f.binary for f in runtime.functions.values())})", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
        runtime.stop()
        server.server_close()
        try:
            os.unlink(args.ready_file)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
