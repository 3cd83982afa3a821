"""A small chaos run with a fixed seed (``chaos.py``; ``scripts/chaos`` runs
hundreds): random histories on the chaos apps while 10 % of the functions' AWS
calls fail and some calls are followed by the death of the function that made
them. After each history settles, ferry's invariants hold; the run must have
injected failures and crashes, or it proved nothing."""

from __future__ import annotations

import pytest

from chaos import Runner, resent_write

HISTORIES, STEPS, SEED = 4, 6, 20261202


@pytest.fixture
def runner(stack):
    stack.settle(60)
    chaos = Runner(stack, SEED, fail=0.10, crash=0.03)
    chaos.explain = True
    chaos.prepare()
    yield chaos
    chaos.finish()


def test_invariants_hold_through_failing_calls_and_crashed_functions(runner):
    for _ in range(HISTORIES):
        runner.run_history(steps=STEPS)
    figures = runner.figures()
    assert runner.violations == [], "\n".join(runner.violations)
    assert figures["histories"] == HISTORIES
    failed = sum(n for kind, n in figures["faults"].items() if kind not in ("calls", "crash", "crash_missed"))
    assert failed > 0 and figures["faults"].get("crash", 0) > 0, figures


def _put(seq, caller, value, start, end, invocation):
    return {"seq": seq, "caller": caller, "operation": "ssm:PutParameter", "status": 200, "time": start, "ended": end,
            "detail": {"name": "/p", "value": value, "invocation": invocation}}


def test_a_put_parameter_the_sdk_sent_again_is_one_call():
    calls = [_put(1, "ferry-gate", "1.1.0", 1.0, 1.1, "same"), _put(2, "ferry-gate", "1.1.0", 6.0, 6.1, "same")]
    assert resent_write(calls, "/p", "1.1.0")


def test_two_writers_of_one_value_are_a_violation_even_when_they_raced():
    # Both read before either wrote: the claim in the ledger lets only one write.
    calls = [_put(3, "ferry-gate", "1.1.0", 1.2, 1.3, "a"), _put(4, "ferry-reconcile", "1.1.0", 1.2, 1.35, "b")]
    assert not resent_write(calls, "/p", "1.1.0")


def test_a_resent_write_of_another_value_does_not_excuse_a_duplicate():
    calls = [
        _put(1, "ferry-deploy", "1.0.0", 1.0, 1.1, "a"), _put(2, "ferry-deploy", "1.1.0", 2.0, 2.1, "b"),
        _put(3, "ferry-deploy", "1.1.0", 3.0, 3.1, "c"), _put(4, "ferry-deploy", "1.1.0", 4.0, 4.1, "c"),
    ]
    assert resent_write(calls, "/p", "1.1.0"), "3 and 4 are one call"
    assert not resent_write(calls[:3], "/p", "1.1.0"), "2 and 3 are two"
