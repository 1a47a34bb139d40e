"""Closing a release never orphans a target with traffic split: on the real dev server.

The time-skipping test server does not apply a parent-close policy, and now and then it
refuses a cancelled release's last workflow task ("invalid history builder state"), so
this runs the release and its targets' rollouts (activities stood in for by doubles) on
the dev server.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from plans import RolloutStatus
from tests.workflow.fleet_doubles import FleetDoubles, fleet_worker, make_fleet, start

pytestmark = pytest.mark.integration
TEMPORAL = Path(sys.executable).parent / "temporal"
WAIT_S = 60.0
REGIONS = ("staging", "eu", "us-west", "us-east")


async def eventually(check, what: str) -> None:
    """Poll ``check`` until it holds, at most WAIT_S seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[WorkflowEnvironment]:
    """One dev server for the module; each test has a task queue of its own."""
    async with await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter, dev_server_existing_path=str(TEMPORAL), ui=False
    ) as env:
        yield env


async def weights(env: WorkflowEnvironment, workflow_ids: list[str]) -> list[int] | None:
    """Each rollout's canary weight, or None while one of them does not answer yet."""
    try:
        answers = [
            await env.client.get_workflow_handle(w).query("status", result_type=RolloutStatus)
            for w in workflow_ids
        ]
    except Exception:
        return None
    return [a.canary_weight for a in answers]


async def all_closed(env: WorkflowEnvironment, workflow_ids: list[str]) -> bool:
    found = [(await env.client.get_workflow_handle(w).describe()).status for w in workflow_ids]
    return all(s != WorkflowExecutionStatus.RUNNING for s in found)


async def statuses(env: WorkflowEnvironment, workflow_ids: list[str]) -> list[Any]:
    return [(await env.client.get_workflow_handle(w).describe()).status for w in workflow_ids]


async def test_terminating_the_release_cancels_its_targets_which_restore_stable(server) -> None:
    doubles = FleetDoubles()
    fleet = make_fleet(
        waves=[{"targets": ["staging", "eu"]}, {"targets": ["us-west", "us-east"]}],
    )
    children = [fleet.child_id(r) for r in ("staging", "eu")]
    async with fleet_worker(server, doubles) as queue:
        handle = await start(server.client, fleet, queue)

        async def both_at_ten() -> bool:
            return await weights(server, children) == [10, 10]

        await eventually(both_at_ten, "both first-wave targets at 10%")
        await handle.terminate(reason="closing the release")
        await eventually(lambda: all_closed(server, children), "the first-wave targets closed")
        found = await statuses(server, children)
    assert found == [WorkflowExecutionStatus.CANCELED] * 2
    for region in ("staging", "eu"):
        assert doubles.weights_of(region) == [10, 0]
        assert doubles.new_weight(region) == 0
    assert doubles.weights_of("us-west") == []


async def test_cancelling_the_release_rolls_its_running_targets_back(server) -> None:
    doubles = FleetDoubles()
    fleet = make_fleet(waves=[{"targets": list(REGIONS)}])
    children = [fleet.child_id(r) for r in REGIONS]
    async with fleet_worker(server, doubles) as queue:
        handle = await start(server.client, fleet, queue)

        async def all_at_ten() -> bool:
            return await weights(server, children) == [10] * len(children)

        await eventually(all_at_ten, "every target at 10%")
        await handle.cancel()
        await eventually(lambda: all_closed(server, [fleet.workflow_id]), "the release closed")
        await eventually(lambda: all_closed(server, children), "every target closed")
        release = await statuses(server, [fleet.workflow_id])
        found = await statuses(server, children)
    assert release == [WorkflowExecutionStatus.CANCELED]
    assert found == [WorkflowExecutionStatus.CANCELED] * len(children)
    for region in REGIONS:
        assert doubles.weights_of(region) == [10, 0]
        assert doubles.new_weight(region) == 0


async def test_a_release_closing_while_a_target_restores_waits_for_its_stable(server) -> None:
    doubles = FleetDoubles()
    fleet = make_fleet(
        waves=[{"targets": ["staging"]}],
        targets={"staging": {"placeholders": {"region": "staging"}}},
    )
    child = fleet.child_id("staging")
    async with fleet_worker(server, doubles) as queue:
        handle = await start(server.client, fleet, queue)

        async def at_ten() -> bool:
            return await weights(server, [child]) == [10]

        await eventually(at_ten, "staging at 10%")
        doubles.restore_refusals["staging"] = 3  # the router refuses the first restores
        await server.client.get_workflow_handle(child).signal(
            "rollback", {"by": "ana", "reason": "pager"}
        )

        async def refused_once() -> bool:
            return "staging" in doubles.refused

        await eventually(refused_once, "a restore refused")
        # Closing the release cancels its children: mid-restore, that must not end it.
        await handle.terminate(reason="closing the release")
        await eventually(lambda: all_closed(server, [child]), "the target closed")
        found = await statuses(server, [child])
        status = await server.client.get_workflow_handle(child).query(
            "status", result_type=RolloutStatus
        )
    assert found == [WorkflowExecutionStatus.CANCELED]
    assert doubles.refused == ["staging"] * 3
    assert doubles.weights_of("staging") == [10, 0] and doubles.new_weight("staging") == 0
    assert status.canary_weight == 0
    assert any(e.kind == "cancel" for e in status.events)
