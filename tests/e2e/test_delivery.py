"""Delivery as EventBridge and Lambda do it: a function error (here an AWS
error that outlasted the SDK's own retries) fails the invocation, and the
asynchronous invoke runs the event again; the release still happens once."""

from __future__ import annotations

from conftest import release_id


def test_a_function_error_is_retried_and_the_release_happens_once(stack, mark):
    app = "flaky"
    # DynamoDB fails every attempt of ferry-deploy's first ledger read (the SDK
    # makes 4), then recovers
    stack.control(
        "/_ferry/faults",
        {"faults": [{"operation": "dynamodb:BatchGetItem", "caller": "ferry-deploy", "times": 4, "status": 500, "code": "InternalServerError"}]},
    )
    try:
        digest = stack.push(app, "1.0.0")
        stack.settle()
    finally:
        stack.control("/_ferry/faults", {"faults": []})

    replies = mark.replies("ferry-deploy")
    assert [r["attempt"] for r in replies] == [1, 2], replies
    assert replies[0]["error"] == "Unhandled" and replies[0]["will_retry"], replies[0]
    assert replies[1]["error"] is None and replies[1]["reply"]["decisions"][0]["outcome"] == "migrating"
    failed = [c for c in mark.calls("ferry-deploy") if c["status"] >= 500]
    assert len(failed) == 4, failed
    assert stack.release(release_id(app, digest))["state"] == "SUCCEEDED"
    assert mark.operations().get("ecs:RegisterTaskDefinition") == 2  # api + migration, once


def test_a_stop_event_redelivered_during_the_rollout_does_not_roll_out_again(stack, mark):
    app, services = "again", ["api", "worker"]
    # UpdateService is slow (0.6 s) and the migration's stop event arrives
    # twice, 0.3 s apart: the copy lands while the first is rolling out
    stack.control("/_ferry/faults", {"faults": [{"operation": "ecs:UpdateService", "delay": 0.6, "status": 0, "times": 10}]})
    stack.router(
        {"chaos": [{"match": {"detail-type": ["ECS Task State Change"], "detail": {"startedBy": [{"prefix": f"ferry/{app}/"}]}},
                    "copies": 2, "stagger": 0.3, "times": 1}]}
    )
    try:
        digest = stack.push(app, "1.0.0")
        stack.settle()
    finally:
        stack.control("/_ferry/faults", {"faults": []})
        stack.router({"chaos": []})

    gates = [d["outcome"] for d in mark.decisions("ferry-gate")]
    assert len(gates) == 2, gates
    # the race took place: the copy was invoked while the first gate's UpdateService calls were on their way
    invoked = sorted(e["time"] for e in mark.entries() if e.get("binary") == "ferry-gate" and e["kind"] == "invoke")
    rollout = [c for c in mark.calls("ferry-gate") if c["operation"] == "ecs:UpdateService"]
    assert len(invoked) == 2 and rollout, (invoked, rollout)
    assert rollout[0]["time"] < invoked[1] < rollout[0]["ended"], f"no race: the copy came at {invoked[1]}, the rollout ran {rollout[0]}"
    assert mark.operations().get("ecs:UpdateService") == len(services), "one rollout: one UpdateService per service"
    assert gates.count("deploying") == 1, gates
    assert stack.release(release_id(app, digest))["state"] == "SUCCEEDED"
