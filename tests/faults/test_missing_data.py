"""No data is never a pass: Prometheus down, or no traffic reaching the canary at all."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from temporalio.client import Client

import devstack
from client import operations
from plans import CommandKind, GateOutcome, OperatorCommand, RolloutResult, RolloutState
from tests.faults.chaos import (
    WeightRecorder,
    baking,
    expected_stage_events,
    quick_plan,
    stage_events,
    stop,
    until,
)
from tests.faults.restart import restart

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_prometheus_down_holds_the_stage_and_its_return_lets_it_finish(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    plan = quick_plan(
        stack,
        [
            {"name": "a", "weight": 20, "bake": "3s", "check_every": "1s"},
            {"name": "b", "weight": 100, "bake": "3s", "check_every": "1s"},
        ],
        # Missing data must hold the stage here, not pause it for a person.
        gate={"inconclusive_limit": 1000},
    )
    directory = Path(stack.dir)
    with WeightRecorder(stack) as weights:
        handle = await operations.start_rollout(client, plan, stack.task_queue)
        launched.append(plan.workflow_id)
        await until(client, plan.service, baking(0), what="stage a baking")
        await asyncio.to_thread(stop, directory, "prometheus")
        down_at = time.monotonic()
        seen = []
        # Well past the bake: stage a would have passed long ago with data.
        while time.monotonic() - down_at < 9.0:
            status = await operations.status(client, plan.service)
            seen.append(status)
            assert status.stage_index == 0 and status.canary_weight == 20
            assert not status.state.final
            await asyncio.sleep(0.5)
        assert weights.canary_weights == [0, 20]
        verdict = seen[-1].verdicts["error-rate"]
        assert verdict.outcome == GateOutcome.INCONCLUSIVE
        assert stack.prometheus_url in verdict.reason, verdict.reason
        assert seen[-1].bake_remaining_s == 0
        await asyncio.to_thread(restart, directory, "prometheus")
        result = await asyncio.wait_for(handle.result(), timeout=60)
    assert isinstance(result, RolloutResult) and result.state == RolloutState.PROMOTED
    assert weights.canary_weights == [0, 20, 100]
    final = await operations.status(client, plan.service)
    assert stage_events(final) == expected_stage_events(plan)
    verdicts = [e.text for e in final.events if e.kind == "verdict"]
    assert any(text.startswith("error-rate: inconclusive") for text in verdicts), verdicts
    assert verdicts[-1].startswith("error-rate: pass"), verdicts


async def test_no_traffic_to_the_canary_is_never_promoted(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    directory = Path(stack.dir)
    await asyncio.to_thread(stop, directory, "loadgen")
    try:
        # Let the gate's 3 s window forget the traffic of earlier tests.
        await asyncio.sleep(4.0)
        plan = quick_plan(
            stack,
            [
                {"name": "a", "weight": 20, "bake": "3s", "check_every": "1s"},
                {"name": "b", "weight": 100, "bake": "3s", "check_every": "1s"},
            ],
        )
        with WeightRecorder(stack) as weights:
            await operations.start_rollout(client, plan, stack.task_queue)
            launched.append(plan.workflow_id)
            await until(client, plan.service, baking(0), what="stage a baking")
            started = time.monotonic()
            while time.monotonic() - started < 10.0:
                status = await operations.status(client, plan.service)
                assert status.stage_index == 0 and status.canary_weight == 20, status.state
                assert status.state != RolloutState.PROMOTED
                await asyncio.sleep(0.5)
            assert weights.canary_weights == [0, 20]
        assert status.checks >= 5
        verdict = status.verdicts["error-rate"]
        assert verdict.outcome == GateOutcome.INCONCLUSIVE and verdict.value is None
        assert verdict.reason
        assert not [e for e in status.events if e.text.startswith("error-rate: pass")]
        record = await operations.send_command(
            client, plan.service, OperatorCommand(kind=CommandKind.ROLLBACK, by="test")
        )
        assert record.accepted
        await until(
            client, plan.service, lambda s: s.state == RolloutState.ROLLED_BACK, what="rolled back"
        )
    finally:
        await asyncio.to_thread(restart, directory, "loadgen")
