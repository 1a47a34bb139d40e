"""The worker dies by SIGKILL mid-rollout; a new one takes over and nothing is done twice."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

import devstack
from client import operations
from plans import RolloutResult, RolloutState
from tests.faults.chaos import (
    AdminGate,
    WeightRecorder,
    baking,
    eventually,
    expected_stage_events,
    haproxy,
    kill9,
    quick_plan,
    scheduled_shifts,
    stage_events,
    until,
)
from tests.faults.restart import restart

pytestmark = pytest.mark.integration


async def test_worker_killed_mid_bake_is_replaced_and_the_rollout_goes_on(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    plan = quick_plan(
        stack,
        [
            {"name": "a", "weight": 20, "bake": "4s", "check_every": "1s"},
            {"name": "b", "weight": 60, "bake": "5s", "check_every": "1s"},
            {"name": "c", "weight": 100, "bake": "3s", "check_every": "1s"},
        ],
    )
    directory = Path(stack.dir)
    with WeightRecorder(stack) as weights:
        handle = await operations.start_rollout(client, plan, stack.task_queue)
        launched.append(plan.workflow_id)
        await until(
            client,
            plan.service,
            lambda s: baking(1)(s) and s.bake_elapsed_s >= 1.0,
            what="the middle of stage b's bake",
        )
        old = await asyncio.to_thread(kill9, directory, "worker")
        # The bake's timers fire while no worker runs; the server keeps them.
        await asyncio.sleep(2.0)
        info = await asyncio.to_thread(restart, directory, "worker")
        assert info.pids["worker"] != old
        result = await asyncio.wait_for(handle.result(), timeout=60)
    assert isinstance(result, RolloutResult) and result.state == RolloutState.PROMOTED
    assert weights.canary_weights == [0, 20, 60, 100]
    assert weights.transients_between_neighbours(), weights.splits
    assert await scheduled_shifts(client, plan.workflow_id) == [20, 60, 100]
    status = await operations.status(client, plan.service)
    assert stage_events(status) == expected_stage_events(plan)
    # Each stage baked at least its full bake: none was cut short by the new worker.
    stamps: dict[str, datetime] = {}
    for event in status.events:
        if event.kind == "stage":
            stamps[event.text] = event.at
    for index, stage in enumerate(plan.stages):
        where = f"stage {index + 1}/{len(plan.stages)} {stage.name!r} ({stage.weight}%)"
        baked = stamps[f"{where} passed"] - stamps[f"{where} started"]
        assert baked >= stage.bake, f"{stage.name} baked only {baked}"
    assert status.events[-1].text == "promoted: all stages passed"
    assert status.canary_weight == 100


async def test_worker_killed_during_rollback_compensation_finishes_it_after_restart(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    gate = AdminGate(stack.ports["haproxy_admin"])
    gate.open()
    directory = Path(stack.dir)
    try:
        plan = quick_plan(
            stack,
            [{"name": "thirty", "weight": 30, "bake": "10m", "check_every": "1s"}],
            runtime_api=gate.runtime_api,
        )
        handle = await operations.start_rollout(client, plan, stack.task_queue)
        launched.append(plan.workflow_id)
        await until(client, plan.service, baking(0), what="baking at 30%")
        split = await asyncio.to_thread(haproxy(stack).get_split, "stable", "canary")
        assert (split.stable_weight, split.canary_weight) == (70, 30)

        # HAProxy's admin API goes away, so the restore keeps failing and retrying...
        gate.close()
        await handle.signal("rollback", {"by": "ana", "reason": "customer reports"})

        async def restore_retrying() -> bool:
            described = await handle.describe()
            pending = described.raw_description.pending_activities
            return any(p.activity_type.name == "shift_traffic" and p.attempt >= 2 for p in pending)

        await eventually(restore_retrying, 30, "the restore to fail and be retried")
        # ...and the worker running the compensation dies.
        await asyncio.to_thread(kill9, directory, "worker")
        split = await asyncio.to_thread(haproxy(stack).get_split, "stable", "canary")
        assert (split.stable_weight, split.canary_weight) == (70, 30)
        gate.open()
        await asyncio.to_thread(restart, directory, "worker")
        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), timeout=60)
    finally:
        gate.close()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "RolledBack"
    assert "customer reports" in cause.message
    split = await asyncio.to_thread(haproxy(stack).get_split, "stable", "canary")
    assert (split.stable_weight, split.canary_weight) == (100, 0)
    async with httpx.AsyncClient(timeout=5.0) as http:
        answers = [(await http.get(stack.haproxy_url)).headers.get("X-Version") for _ in range(40)]
    assert set(answers) == {"stable"}
    status = await operations.status(client, plan.service)
    assert status.state == RolloutState.ROLLED_BACK and status.canary_weight == 0
    assert [c.accepted for c in status.commands] == [True]
    assert [e.kind for e in status.events][-2:] == ["rollback", "end"]
    assert await scheduled_shifts(client, plan.workflow_id) == [30, 0]
