"""The router's EventBridge pattern matching and its reading of template.yaml
(no emulator needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import router  # noqa: E402

TEMPLATE = HERE.parent.parent / "template.yaml"

PUSH = {
    "source": "aws.ecr",
    "detail-type": "ECR Image Action",
    "detail": {"action-type": "PUSH", "result": "SUCCESS", "repository-name": "shop", "image-tag": "1.0.0"},
}
STOPPED = {
    "source": "aws.ecs",
    "detail-type": "ECS Task State Change",
    "detail": {"lastStatus": "STOPPED", "startedBy": "ferry/shop/prod/0123456789abcdef", "containers": [{"exitCode": 1}, {"exitCode": 0}]},
}


@pytest.mark.parametrize(
    "pattern, event, expected",
    [
        ({"source": ["aws.ecr"]}, PUSH, True),
        ({"source": ["aws.ecs"]}, PUSH, False),
        ({"detail": {"action-type": ["PUSH"], "result": ["SUCCESS"]}}, PUSH, True),
        ({"detail": {"result": ["FAILURE"]}}, PUSH, False),
        ({"detail": {"startedBy": [{"prefix": "ferry/"}]}}, STOPPED, True),
        ({"detail": {"startedBy": [{"prefix": "ecs-svc/"}]}}, STOPPED, False),
        ({"detail": {"image-tag": [{"anything-but": ["latest", "main"]}]}}, PUSH, True),
        ({"detail": {"image-tag": [{"anything-but": {"prefix": "1."}}]}}, PUSH, False),
        ({"detail": {"image-tag": [{"exists": True}]}}, PUSH, True),
        ({"detail": {"image-tag": [{"exists": False}]}}, PUSH, False),
        ({"detail": {"missing": [{"exists": False}]}}, PUSH, True),
        ({"detail": {"missing": [{"anything-but": "x"}]}}, PUSH, False),  # anything-but needs the field
        ({"detail": {"containers": {"exitCode": [{"numeric": [">", 0]}]}}}, STOPPED, True),  # arrays: any element
        ({"detail": {"containers": {"exitCode": [{"numeric": [">", 5]}]}}}, STOPPED, False),
        ({"detail": {"image-tag": [{"wildcard": "1.*.0"}]}}, PUSH, True),
        ({"detail-type": [{"equals-ignore-case": "ecr image action"}]}, PUSH, True),
        ({"$or": [{"source": ["aws.ecs"]}, {"detail": {"repository-name": ["shop"]}}]}, PUSH, True),
    ],
)
def test_matches(pattern, event, expected):
    router.check_pattern(pattern)
    assert router.matches(pattern, event) is expected


def test_a_leaf_that_is_not_an_array_is_rejected():
    with pytest.raises(ValueError, match="array"):
        router.check_pattern({"source": "aws.ecr"})


def test_rules_come_from_the_template():
    loaded = router.load_rules(str(TEMPLATE))
    rules = {f"{r.function}/{r.name}": r for r in loaded}
    assert {r.binary for r in loaded} >= {"ferry-deploy", "ferry-gate", "ferry-watch"}
    assert [name for name, r in rules.items() if router.matches(r.pattern, PUSH)] == ["DeployFunction/EcrPush"]
    assert [name for name, r in rules.items() if router.matches(r.pattern, STOPPED)] == ["GateFunction/MigrationStopped"]
    assert all(r.retries == 2 for r in loaded)


def test_cloudformation_short_tags_are_tolerated(tmp_path):
    template = tmp_path / "t.yaml"
    template.write_text(
        "Resources:\n"
        "  Fn:\n"
        "    Type: AWS::Serverless::Function\n"
        "    Metadata: {BuildProperties: {Binary: ferry-x}}\n"
        "    Properties:\n"
        "      Role: !GetAtt Role.Arn\n"
        "      Environment: {Variables: {TABLE: !Ref Table, NAME: !Sub '${AWS::StackName}-x'}}\n"
        "      Events:\n"
        "        E: {Type: EventBridgeRule, Properties: {Pattern: {source: [aws.ecr]}}}\n"
    )
    (rule,) = router.load_rules(str(template))
    assert rule.binary == "ferry-x" and rule.pattern == {"source": ["aws.ecr"]}


def _alarm(state: str) -> dict:
    return {
        "source": "aws.cloudwatch",
        "detail-type": "CloudWatch Alarm State Change",
        "detail": {"alarmName": "shop-prod-5xx", "state": {"value": state}, "previousState": {"value": "OK"}},
    }


def test_only_an_alarm_going_to_alarm_reaches_ferry_rollback():
    rules = {r.binary: r for r in router.load_rules(str(TEMPLATE))}
    assert router.matches(rules["ferry-rollback"].pattern, _alarm("ALARM"))
    for state in ("OK", "INSUFFICIENT_DATA"):
        assert not any(router.matches(r.pattern, _alarm(state)) for r in rules.values()), state


def test_redeliver_sends_the_same_event_again_to_the_matching_functions():
    import http.server
    import json
    import threading
    import time

    received = []

    class Functions(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, json.loads(body)))
            reply = b'{"ok": true, "decisions": []}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Functions)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        r = router.Router(str(TEMPLATE), f"http://127.0.0.1:{server.server_port}")
        event = r.emit(router.envelope("aws.ecr", "ECR Image Action", "123456789012", "eu-west-1", [], PUSH["detail"]), "test")
        answer = r.redeliver(event["id"])
        assert answer["targets"] == ["DeployFunction/EcrPush"]
        deadline = time.time() + 10
        while (len(received) < 2 or r.status()["in_flight"]) and time.time() < deadline:
            time.sleep(0.02)
        assert [p for p, _ in received] == ["/2015-03-31/functions/ferry-deploy/invocations"] * 2
        assert received[0][1] == received[1][1], "the same event, same id"
        assert [e["kind"] for e in r.entries()].count("redelivered") == 1
        with pytest.raises(ValueError, match="no event"):
            r.redeliver("not-an-event")
    finally:
        server.shutdown()


SCHEDULED = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-11-23T10:05:00Z",
    "region": "eu-west-1",
    "resources": ["arn:aws:events:eu-west-1:123456789012:rule/ferry-ReconcileFunctionSchedule-1A2B3C4D5E6F"],
    "detail": {},
}


def test_the_reconcile_schedule_is_no_rule_of_the_router_so_no_pass_runs_by_itself():
    rules = router.load_rules(str(TEMPLATE))
    assert "ferry-reconcile" not in {r.binary for r in rules}
    assert not [r for r in rules if router.matches(r.pattern, SCHEDULED)], "nothing receives a Scheduled Event"
    # ... while the template does schedule it, for AWS
    import cfn

    reconcile = cfn.load_template(str(TEMPLATE))["Resources"]["ReconcileFunction"]
    assert reconcile["Properties"]["Events"]["Schedule"]["Type"] == "Schedule"
