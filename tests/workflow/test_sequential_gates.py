"""A rollout with sequential gates: each check carries the stage's start, and one fail acts."""

from __future__ import annotations

from datetime import datetime

from client.operations import start_rollout
from plans import GateCheck, GateOutcome, RolloutState
from tests.workflow.conftest import Doubles, make_plan, verdicts
from tests.workflow.test_rollout_workflow import rolled_back, settle, status_of

GATES = [
    {"name": "errors", "preset": "demo-error-rate", "kind": "sequential"},
    {"name": "error-max", "query": "sum(rate(errors[1m]))", "max": 0.05},
]
STAGES = [
    {"name": "canary", "weight": 5, "bake": "30m", "check_every": "10m", "gates": ["errors"]},
    {"name": "half", "weight": 50, "bake": "30m", "check_every": "10m", "gates": ["errors"]},
    {"name": "full", "weight": 100, "bake": "20m", "check_every": "10m", "gates": ["error-max"]},
]


async def test_each_check_carries_its_stages_start(env, worker, doubles: Doubles) -> None:
    seen: list[tuple[int, datetime | None]] = []

    def judge(n: int, check: GateCheck) -> list:
        seen.append((doubles.weight, check.stage_started_at))
        return verdicts(check, GateOutcome.PASS)

    doubles.judge = judge
    handle = await start_rollout(env.client, make_plan(gates=GATES, stages=STAGES), worker)
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED
    starts = {weight: {at for w, at in seen if w == weight} for weight in (5, 50, 100)}
    # One start per stage with a sequential gate, the later stage's after the earlier's;
    # the stage of threshold gates only is asked as before, without one.
    (first,), (second,) = starts[5], starts[50]
    assert first is not None and second is not None and second > first
    assert starts[100] == {None}


async def test_a_sequential_gate_rolls_back_on_its_first_fail(env, worker, doubles) -> None:
    doubles.judge = lambda n, check: verdicts(
        check, GateOutcome.FAIL if n == 2 else GateOutcome.PASS, 0.03
    )
    handle = await start_rollout(env.client, make_plan(gates=GATES, stages=STAGES), worker)
    message = await rolled_back(env, handle)
    assert "errors" in message and "1 check(s) in a row" in message
    assert doubles.shifts == [5, 0]
    final = await status_of(handle)
    assert final.state == RolloutState.ROLLED_BACK and final.failure_streaks["errors"] == 1
