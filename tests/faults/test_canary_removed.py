"""The canary server is removed from HAProxy mid-incident: the restore counts it as done."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client, WorkflowFailureError

import devstack
from client import operations
from plans import RolloutState
from tests.faults.chaos import baking, haproxy, quick_plan, until

pytestmark = pytest.mark.integration

CANARY = "canary-v2"


async def test_a_restore_finds_the_canary_server_gone_and_counts_stable_as_back(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    runtime = haproxy(stack)
    # A canary server added at run time (as a platform adds one per deploy) can be deleted
    # at run time too, which is how it disappears here mid-incident.
    target = f"{stack.haproxy_backend}/{CANARY}"
    address = f"127.0.0.1:{stack.ports['canary']}"
    for command in (f"add server {target} {address} weight 0", f"enable server {target}"):
        answer = await asyncio.to_thread(runtime.command, command)
        assert "New server registered" in answer or not answer, answer
    plan = quick_plan(
        stack,
        [{"name": "quarter", "weight": 25, "bake": "10m", "check_every": "1s"}],
        canary=CANARY,
    )
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    launched.append(plan.workflow_id)
    await until(client, plan.service, baking(0), what="baking at 25%")
    for command in (f"set server {target} state maint", f"del server {target}"):
        answer = await asyncio.to_thread(runtime.command, command)
        assert not answer or "deleted" in answer.lower(), answer
    await handle.signal("rollback", {"by": "ana", "reason": "canary host gone"})
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), timeout=60)
    final = await operations.status(client, plan.service)
    assert final.state == RolloutState.ROLLED_BACK and final.canary_weight == 0
    said = [e.text for e in final.events if e.kind == "restore"]
    assert said and f"no longer has the canary server {CANARY!r}" in said[0], said
    assert "counted as restored" in said[0]
    assert await asyncio.to_thread(runtime.get_weight, "stable") == 100
