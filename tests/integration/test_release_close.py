"""Closing a release never orphans a target with traffic split: on the real dev server.

The time-skipping test server does not apply a parent-close policy, so this runs the
release and its targets' rollouts (activities stood in for by doubles) on the dev server.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from plans import RolloutStatus
from tests.workflow.fleet_doubles import FleetDoubles, make_fleet, start
from workflows.release import ReleaseWorkflow
from workflows.rollout import RolloutWorkflow

pytestmark = pytest.mark.integration
TEMPORAL = Path(sys.executable).parent / "temporal"
WAIT_S = 60.0


async def eventually(check, what: str) -> None:
    """Poll ``check`` until it holds, at most WAIT_S seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.2)


async def test_terminating_the_release_cancels_its_targets_which_restore_stable() -> None:
    doubles = FleetDoubles()
    fleet = make_fleet(
        waves=[{"targets": ["staging", "eu"]}, {"targets": ["us-west", "us-east"]}],
    )
    async with await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter, dev_server_existing_path=str(TEMPORAL), ui=False
    ) as env:
        queue = f"close-{uuid.uuid4().hex[:6]}"
        with ThreadPoolExecutor(8) as executor:
            async with Worker(
                env.client,
                task_queue=queue,
                workflows=[RolloutWorkflow, ReleaseWorkflow],
                activities=doubles.activities(),
                activity_executor=executor,
            ):
                handle = await start(env.client, fleet, queue)
                children = [
                    env.client.get_workflow_handle(fleet.child_id(r)) for r in ("staging", "eu")
                ]

                async def both_at_ten() -> bool:
                    try:
                        answers = [
                            await c.query("status", result_type=RolloutStatus) for c in children
                        ]
                    except Exception:
                        return False
                    return all(a.canary_weight == 10 for a in answers)

                await eventually(both_at_ten, "both first-wave targets at 10%")
                await handle.terminate(reason="closing the release")

                async def both_closed() -> bool:
                    found = [(await c.describe()).status for c in children]
                    return all(s != WorkflowExecutionStatus.RUNNING for s in found)

                await eventually(both_closed, "the first-wave targets closed")
                statuses = [(await c.describe()).status for c in children]
    assert statuses == [WorkflowExecutionStatus.CANCELED] * 2
    for region in ("staging", "eu"):
        assert doubles.weights_of(region) == [10, 0]
        assert doubles.new_weight(region) == 0
    assert doubles.weights_of("us-west") == []
