"""The Temporal dev server dies by SIGKILL mid-bake and comes back on the same SQLite file."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from temporalio.client import Client

import devstack
from client import operations
from devstack.processes import tcp_open
from plans import RolloutResult, RolloutState
from tests.faults.chaos import (
    WeightRecorder,
    baking,
    expected_stage_events,
    kill9,
    quick_plan,
    scheduled_shifts,
    stage_events,
    until,
)
from tests.faults.restart import restart

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_server_killed_mid_bake_comes_back_and_the_rollout_finishes(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    plan = quick_plan(
        stack,
        [
            {"name": "a", "weight": 25, "bake": "4s", "check_every": "1s"},
            {"name": "b", "weight": 50, "bake": "6s", "check_every": "1s"},
            {"name": "c", "weight": 100, "bake": "3s", "check_every": "1s"},
        ],
    )
    directory = Path(stack.dir)
    database = directory / "temporal.db"
    with WeightRecorder(stack) as weights:
        handle = await operations.start_rollout(client, plan, stack.task_queue)
        launched.append(plan.workflow_id)
        await until(
            client,
            plan.service,
            lambda s: baking(1)(s) and s.bake_elapsed_s >= 1.0,
            what="the middle of stage b's bake",
        )
        # Commits go to the write-ahead log, which the restart must replay.
        assert (directory / "temporal.db-wal").stat().st_size > 0
        size = database.stat().st_size
        await asyncio.to_thread(kill9, directory, "temporal")
        assert not tcp_open(stack.ports["temporal"])
        down_since = time.monotonic()
        await asyncio.sleep(3.0)
        # Nothing moves traffic while the server is away: the worker only holds state.
        assert weights.canary_weights[-1] == 50
        info = await asyncio.to_thread(restart, directory, "temporal")
        assert info.ports["temporal"] == stack.ports["temporal"]
        assert database.stat().st_size >= size
        result = await asyncio.wait_for(handle.result(), timeout=90)
        outage = time.monotonic() - down_since
    assert isinstance(result, RolloutResult) and result.state == RolloutState.PROMOTED
    assert weights.canary_weights == [0, 25, 50, 100]
    assert weights.transients_between_neighbours(), weights.splits
    assert await scheduled_shifts(client, plan.workflow_id) == [25, 50, 100]
    status = await operations.status(client, plan.service)
    assert stage_events(status) == expected_stage_events(plan)
    assert status.run_count == 1
    assert outage < 80
