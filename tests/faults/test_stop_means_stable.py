"""Stop means stable on the real stack: a terminate, a cancel during a failing restore."""

from __future__ import annotations

import asyncio
import time

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError

import devstack
from client import operations
from client.leases import holder
from plans import RolloutState
from starter.exits import EXIT_FROM_RECORDS
from tests.faults.chaos import (
    AdminGate,
    baking,
    eventually,
    haproxy,
    quick_plan,
    temporal_cli,
    until,
)
from tests.faults.test_router_outage import pending_shift
from tests.status_cli import flat, rollout_status, status_json

pytestmark = pytest.mark.integration

RESTORE_WITHIN_S = 30.0


async def canary_weight(stack: devstack.StackInfo) -> int:
    split = await asyncio.to_thread(haproxy(stack).get_split, "stable", "canary")
    return split.canary_weight


async def test_a_rollout_terminated_at_half_is_put_back_on_stable_by_its_lease(
    stack: devstack.StackInfo,
    client: Client,
    launched: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plan = quick_plan(stack, [{"name": "half", "weight": 50, "bake": "10m", "check_every": "1s"}])
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    launched.append(plan.workflow_id)
    await until(client, plan.service, baking(0), what="baking at 50%")
    assert await canary_weight(stack) == 50
    terminated = time.monotonic()
    await handle.terminate("operator removed it")

    async def restored() -> bool:
        return await canary_weight(stack) == 0

    await eventually(restored, RESTORE_WITHIN_S, "HAProxy back at 0% canary")
    took = time.monotonic() - terminated
    assert took < RESTORE_WITHIN_S, took

    async def freed() -> bool:
        return await holder(client, plan.target_lease_id) is None

    await eventually(freed, 30, "the lease to end")
    lease = client.get_workflow_handle(plan.target_lease_id)
    said = await lease.result()
    assert f"{plan.workflow_id} was terminated without a rollback" in said
    assert "stable put back" in said and "read back" in said
    described = await lease.describe()
    assert described.status == WorkflowExecutionStatus.COMPLETED
    # `rollout status` says the run was terminated, what HAProxy routes now, and who restored.
    code, shown = await status_json(stack, monkeypatch, capsys, plan.service)
    assert code == EXIT_FROM_RECORDS and shown["source"] == "records"
    assert shown["state"] == "terminated" and shown["published_state"] == "baking"
    assert shown["asked"]["split"]["canary_weight"] == 50
    assert shown["traffic"]["routes"]["canary_weight"] == 0, shown["traffic"]
    [restore] = shown["traffic"]["restores"]
    assert restore["workflow_id"] == plan.target_lease_id and restore["done"] is True
    assert restore["text"] == said and shown["traffic"]["todo"] == ""
    code, printed = await rollout_status(stack, monkeypatch, capsys, plan.service)
    assert code == EXIT_FROM_RECORDS
    text = flat(printed)
    assert f"{plan.service} v2 terminated from Temporal's records" in text
    assert "Traffic: routes canary 0% now (haproxy" in text and "| last asked canary 50%" in text
    assert f"Restored: {said}" in text and "Action needed" not in text
    # The next rollout of the target starts from stable, and is not held up by the last one.
    again = quick_plan(stack, [{"name": "a", "weight": 20, "bake": "5s", "check_every": "1s"}])
    assert await canary_weight(stack) == 0
    second = await operations.start_rollout(client, again, stack.task_queue)
    launched.append(again.workflow_id)
    result = await asyncio.wait_for(second.result(), timeout=60)
    assert result.state == RolloutState.PROMOTED


async def test_a_cancel_while_the_restore_fails_waits_for_stable_and_ends_cancelled(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    gate = AdminGate(stack.ports["haproxy_admin"])
    gate.open()
    try:
        plan = quick_plan(
            stack,
            [{"name": "quarter", "weight": 25, "bake": "10m", "check_every": "1s"}],
            runtime_api=gate.runtime_api,
        )
        handle = await operations.start_rollout(client, plan, stack.task_queue)
        launched.append(plan.workflow_id)
        await until(client, plan.service, baking(0), what="baking at 25%")
        gate.close()  # HAProxy's runtime API can no longer be reached
        await handle.signal("rollback", {"by": "ana", "reason": "pager"})

        async def failing() -> bool:
            attempt, _ = await pending_shift(client, plan.workflow_id)
            status = await operations.status(client, plan.service)
            return attempt >= 2 or status.restore_blocked != ""

        await eventually(failing, 60, "the restore to fail and be retried")
        # What a release closing its children sends: a cancel of the rolling-back run.
        await handle.cancel()
        await asyncio.sleep(2)
        status = await operations.status(client, plan.service)
        assert status.state == RolloutState.ROLLING_BACK
        assert await canary_weight(stack) == 25
        gate.open()  # the router is back
        with pytest.raises(WorkflowFailureError) as ended:
            await asyncio.wait_for(handle.result(), timeout=120)
    finally:
        gate.close()
    assert isinstance(ended.value.cause, CancelledError)
    assert await canary_weight(stack) == 0
    final = await operations.status(client, plan.service)
    assert final.state == RolloutState.ROLLED_BACK
    assert any(e.kind == "cancel" for e in final.events)


async def test_a_reset_rollout_goes_on_and_its_lease_watches_the_new_run(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    plan = quick_plan(stack, [{"name": "half", "weight": 50, "bake": "8s", "check_every": "1s"}])
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    launched.append(plan.workflow_id)
    await until(client, plan.service, baking(0), what="baking at 50%")
    first_run = (await handle.describe()).run_id
    code, _, err = await temporal_cli(
        stack,
        "workflow", "reset", "--workflow-id", plan.workflow_id,
        "--type", "FirstWorkflowTask", "--reason", "redo the rollout",
    )  # fmt: skip
    assert code == 0, err
    # The reset ends the old run as terminated; the new run goes on under the same id, and
    # the lease, seeing it run, does not pull the split out from under it.
    new_run = (await client.get_workflow_handle(plan.workflow_id).describe()).run_id
    assert new_run != first_run
    await asyncio.sleep(3)
    assert await canary_weight(stack) == 50
    held = await holder(client, plan.target_lease_id)
    assert held is not None and held[0].owner == plan.workflow_id
    result = await asyncio.wait_for(
        client.get_workflow_handle(plan.workflow_id).result(), timeout=60
    )
    assert result["state"] == RolloutState.PROMOTED
    assert await canary_weight(stack) == 100

    async def freed() -> bool:
        return await holder(client, plan.target_lease_id) is None

    await eventually(freed, 30, "the lease to end")
    said = await client.get_workflow_handle(plan.target_lease_id).result()
    assert said == f"released by {plan.workflow_id}"
