#!/usr/bin/env python3
"""Cold start of a ferry function binary: time from exec to its first
``GET /runtime/invocation/next`` (SDK clients built, config read from SSM),
and to the answer of a first invocation. Runs against the local emulator on
loopback with a minimal Lambda Runtime API; repeats and prints the median.

    .venv/bin/python scripts/startup.py target/release/ferry-deploy [runs]
"""

from __future__ import annotations

import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
CONFIG = (ROOT / "infra" / "ferry.toml").read_text()


class Runtime(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.first_next = threading.Event()
        self.answered = threading.Event()
        self.next_at = 0.0
        self.answer_at = 0.0
        self.served = False


class Handler(http.server.BaseHTTPRequestHandler):
    server: Runtime

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        if not self.server.first_next.is_set():
            self.server.next_at = time.perf_counter()
            self.server.first_next.set()
        if self.server.served:
            time.sleep(5)  # no second invocation; the process is killed
        self.server.served = True
        body = json.dumps({"detail-type": "ECR Image Action", "source": "aws.ecr", "detail": {}}).encode()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", "startup-1")
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60_000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:eu-west-1:123456789012:function:ferry")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.answer_at = time.perf_counter()
        self.server.answered.set()
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


def main() -> int:
    binary = Path(sys.argv[1]).resolve()
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    with tempfile.TemporaryDirectory() as tmp:
        ready = Path(tmp) / "ready.json"
        emulator = subprocess.Popen(
            [sys.executable, str(ROOT / "tests/emulator/ferry_emulator.py"), "--port", "0", "--ready-file", str(ready)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.time() + 60
            while not ready.exists():
                if time.time() > deadline or emulator.poll() is not None:
                    raise SystemExit("the emulator did not start")
                time.sleep(0.05)
            endpoint = json.loads(ready.read_text())["endpoint"]
            boto3.client("ssm", endpoint_url=endpoint, region_name="eu-west-1",
                         aws_access_key_id="testing", aws_secret_access_key="testing").put_parameter(
                Name="/ferry/config", Value=CONFIG, Type="String", Overwrite=True)
            to_next, to_answer = [], []
            for _ in range(runs):
                runtime = Runtime()
                threading.Thread(target=runtime.serve_forever, daemon=True).start()
                env = {
                    "PATH": os.environ.get("PATH", ""),
                    "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{runtime.server_address[1]}",
                    "AWS_LAMBDA_FUNCTION_NAME": binary.name,
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
                    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                    "AWS_REGION": "eu-west-1",
                    "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_ENDPOINT_URL": endpoint,
                    "FERRY_CONFIG_PARAMETER": "/ferry/config",
                    "FERRY_LEDGER_TABLE": "ferry-ledger",
                    "FERRY_EVENT_BUS": "default",
                    "FERRY_BAKE_TARGET_ARN": "arn:aws:lambda:eu-west-1:123456789012:function:ferry-local-watch",
                    "FERRY_SCHEDULER_ROLE_ARN": "arn:aws:iam::123456789012:role/ferry-local-SchedulerRole",
                    "RUST_LOG": "error",
                }
                started = time.perf_counter()
                process = subprocess.Popen([str(binary)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                ok = runtime.first_next.wait(30) and runtime.answered.wait(30)
                process.kill()
                process.wait()
                runtime.shutdown()
                if not ok:
                    raise SystemExit(f"{binary.name} never asked for an invocation")
                to_next.append((runtime.next_at - started) * 1000)
                to_answer.append((runtime.answer_at - started) * 1000)
            print(
                f"{binary.name}: start-up to first /next {statistics.median(to_next):.1f} ms (median of {runs}), "
                f"to the first answer {statistics.median(to_answer):.1f} ms; "
                f"binary {binary.stat().st_size / 1e6:.1f} MB ({os.uname().machine})"
            )
        finally:
            emulator.kill()
            emulator.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
