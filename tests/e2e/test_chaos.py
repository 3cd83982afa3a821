"""A small chaos run with a fixed seed (``chaos.py``; ``scripts/chaos`` runs
hundreds): random histories on the chaos apps while 10 % of the functions' AWS
calls fail and some calls are followed by the death of the function that made
them. After each history settles, ferry's invariants hold; the run must have
injected failures and crashes, or it proved nothing."""

from __future__ import annotations

import os

import pytest

from chaos import Runner

# Off in the default suite until the violation classes `scripts/chaos` still
# finds in about one history in fifty are fixed (docs/DESIGN.md, "Open under
# chaos"): with them, four random histories would fail CI by chance.
pytestmark = pytest.mark.skipif(
    os.environ.get("FERRY_CHAOS_SUITE") != "1",
    reason="FERRY_CHAOS_SUITE=1 runs it; known violation classes are open (docs/DESIGN.md)",
)

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
