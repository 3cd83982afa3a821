"""AWS failing the way it fails in production, at random: the emulator's one
place for chaos on ferry's AWS calls (``scripts/chaos``, ``tests/e2e/test_chaos.py``).

``POST /_ferry/chaos`` ``{"seed": 7, "fail": 0.1, "crash": 0.02, "kinds":
["throttle", "500", "503", "reset", "timeout"]}`` arms it (``{"fail": 0,
"crash": 0}`` disarms it); ``GET /_ferry/chaos`` reads the counters. Only the
functions' own calls are touched (the access key of a local-stack function is
its binary name, ``ferry-*``); the operator's, the seeder's and the router's
calls are served as they come.

What a failed call looks like, and what ferry may rely on:

* ``throttle``: 400 ``ThrottlingException``. AWS throttles every API per
  account and Region ("Request throttling for the Amazon ECS API", ECS
  Developer Guide; "Throttling" in the DynamoDB Developer Guide's error
  handling). The SDK retries it with backoff (standard retry mode: the
  throttling error codes, "Retry behavior" in the AWS SDKs and Tools
  Reference Guide).
* ``500`` / ``503``: ``InternalServerError`` / ``ServiceUnavailable``, transient
  server errors the SDK retries. The call is refused before it takes effect.
* ``reset``: the connection is reset before an answer (the request was not
  served): the SDK sees an I/O error and retries.
* ``timeout``: no answer within the client's attempt timeout
  (``crates/aws/src/clients.rs`` ``ATTEMPT_TIMEOUT``, 5 s), then reset; the
  request was not served.

A failed call never takes effect here. AWS does not promise that (a 500 or a
timeout may follow a write that happened); ferry's writes that matter are
conditional and its AWS effects are checked by the invariants after each
history, but an effect-then-error call is what ``crash`` produces instead:

* ``crash``: the call is served (its effect happens), then the local Lambda
  runtime kills the execution environment that made it before the answer
  arrives (``POST {functions_url}/_ferry/crash {"port": <client port>}``), as
  Lambda does when a function runs out of memory or time. The invocation
  fails with ``Runtime.ExitError``; an asynchronous one is retried by Lambda
  (``MaximumRetryAttempts``, "Asynchronous invocation" in the Lambda Developer
  Guide) and then goes to the failed-invocations queue.

The draws come from one ``random.Random(seed)``; calls arrive concurrently, so
which call draws which number varies from run to run (the histories'
own randomness, in ``chaos.py``, is what the seed fixes).
"""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
import time
import urllib.request
from typing import Any, Callable, Iterable

KINDS = ("throttle", "500", "503", "reset", "timeout")
#: crates/aws/src/clients.rs ATTEMPT_TIMEOUT, plus a margin
TIMEOUT_HOLD_SECONDS = 5.5

_ERRORS = {
    "throttle": (400, "ThrottlingException", "Rate exceeded"),
    "500": (500, "InternalServerError", "We encountered an internal error. Please try again."),
    "503": (503, "ServiceUnavailable", "Service Unavailable"),
}


class Chaos:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.fail = 0.0
        self.crash = 0.0
        self.kinds: tuple[str, ...] = KINDS
        self.random = random.Random(0)
        self.counters: dict[str, int] = {}

    @property
    def armed(self) -> bool:
        return self.fail > 0 or self.crash > 0

    def configure(self, request: dict[str, Any]) -> dict[str, Any]:
        unknown = set(request) - {"seed", "fail", "crash", "kinds", "reset_counters"}
        if unknown:
            raise ValueError(f"chaos: unknown field(s) {', '.join(sorted(unknown))}")
        fail, crash = float(request.get("fail", 0)), float(request.get("crash", 0))
        kinds = tuple(request.get("kinds") or KINDS)
        if not (0 <= fail <= 1 and 0 <= crash <= 1):
            raise ValueError("chaos: fail and crash are shares of calls, between 0 and 1")
        if set(kinds) - set(KINDS):
            raise ValueError(f"chaos: kinds are {', '.join(KINDS)}")
        with self._lock:
            self.fail, self.crash, self.kinds = fail, crash, kinds
            self.random = random.Random(request.get("seed", 0))
            if request.get("reset_counters", True):
                self.counters = {}
        return self.status()

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"fail": self.fail, "crash": self.crash, "kinds": list(self.kinds), "counters": dict(self.counters)}

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def draw(self, caller: str) -> str | None:
        """What happens to this call: a failure kind, ``crash`` or None."""
        if not caller.startswith("ferry-"):
            return None
        with self._lock:
            self._count("calls")
            roll = self.random.random()
            if roll < self.fail:
                kind = self.random.choice(self.kinds)
                self._count(kind)
                return kind
            if roll < self.fail + self.crash:
                self._count("crash")
                return "crash"
        return None

    def serve(
        self,
        verdict: str,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        serve: Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]],
        functions_url: str | None,
        record: Callable[[str, str, int], None] | None,
        caller: str,
        operation: str,
    ) -> Iterable[bytes]:
        if verdict == "crash":
            answer = list(serve(environ, start_response))
            port = environ.get("REMOTE_PORT")
            if functions_url and port:
                try:
                    request = urllib.request.Request(
                        f"{functions_url.rstrip('/')}/_ferry/crash",
                        data=json.dumps({"port": int(port)}).encode(),
                        method="POST",
                        headers={"Content-Type": "application/json"},
                    )
                    urllib.request.urlopen(request, timeout=5).read()
                except Exception:  # the environment was gone already: nothing to kill
                    with self._lock:
                        self._count("crash_missed")
            if record is not None:
                record(caller, f"chaos:crash-after:{operation}", 0)
            return answer
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > 0:
            environ["wsgi.input"].read(length)
        if record is not None:
            record(caller, operation, {"reset": 0, "timeout": 0}.get(verdict, _ERRORS.get(verdict, (0,))[0]))
        if verdict in ("reset", "timeout"):
            if verdict == "timeout":
                time.sleep(TIMEOUT_HOLD_SECONDS)
            _reset(environ)
            start_response("500 Internal Server Error", [("Content-Length", "0")])
            return []
        status, code, message = _ERRORS[verdict]
        body = json.dumps({"__type": code, "message": message}).encode()
        start_response(
            f"{status} {code}",
            [
                ("Content-Type", "application/x-amz-json-1.0"),
                ("Content-Length", str(len(body))),
                ("x-amzn-ErrorType", code),
            ],
        )
        return [body]


def _reset(environ: dict[str, Any]) -> None:
    """An RST instead of an answer: linger 0, then shut the connection."""
    connection = environ.get("werkzeug.socket")
    if connection is None:
        return
    try:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


CHAOS = Chaos()
