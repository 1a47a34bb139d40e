"""What people see of a run in Temporal: search attributes, summaries, the `rollout list` query."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError

import devstack
from activities.routers.haproxy import HAProxyRuntime
from client import operations
from plans import RolloutState
from starter.cli import main as rollout_main
from tests.integration.conftest import fast_plan

pytestmark = pytest.mark.integration


async def find(client: Client, query: str, workflow_id: str, tries: int = 40) -> bool:
    """Visibility is eventually consistent: look a few times."""
    for _ in range(tries):
        async for execution in client.list_workflows(query):
            if execution.id == workflow_id:
                return True
        await asyncio.sleep(0.25)
    return False


async def test_search_attributes_follow_the_run_and_summaries_are_in_history(
    stack: devstack.StackInfo, client: Client, router: HAProxyRuntime
) -> None:
    plan = fast_plan(stack, [{"name": "quarter", "weight": 25, "bake": "10m", "check_every": "2s"}])
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    baking = f'RolloutState="baking" AND RolloutService="{plan.service}"'
    assert await find(client, baking, plan.workflow_id)
    assert await find(client, 'RolloutWeight=25 AND RolloutStage="quarter"', plan.workflow_id)
    await handle.signal("rollback", {"by": "ana", "reason": "visibility test"})
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert await find(client, 'RolloutState="rolled_back" AND RolloutWeight=0', plan.workflow_id)

    described = await handle.describe()
    assert plan.service in (await described.static_summary() or "")
    assert "quarter" in (await described.static_details() or "")
    summaries = []
    async for event in handle.fetch_history_events():
        if event.user_metadata.HasField("summary"):
            summaries.append(
                (EventType.Name(event.event_type), event.user_metadata.summary.data.decode())
            )
    texts = " | ".join(text for _, text in summaries)
    assert "shift canary to 25% for stage 'quarter'" in texts
    assert "restore 100% stable" in texts
    assert any(kind == "EVENT_TYPE_TIMER_STARTED" for kind, _ in summaries)


async def test_rollout_list_passes_a_visibility_query(
    stack: devstack.StackInfo, client: Client, router: HAProxyRuntime, monkeypatch, capsys
) -> None:
    plan = fast_plan(stack, [{"name": "ten", "weight": 10, "bake": "10m", "check_every": "2s"}])
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    assert await find(client, f'RolloutService="{plan.service}"', plan.workflow_id)
    await handle.signal("pause", {"by": "ana", "reason": "list test"})
    assert await find(
        client, f'RolloutState="paused" AND RolloutService="{plan.service}"', plan.workflow_id
    )
    monkeypatch.setenv("TEMPORAL_ADDRESS", stack.temporal_address)
    monkeypatch.setenv("COLUMNS", "200")
    code = await asyncio.to_thread(_run_cli, ["list", "--query", 'RolloutState="paused"'])
    output = capsys.readouterr().out
    assert code == 0
    assert plan.service in output and "paused" in output
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    status = await operations.status(client, plan.service)
    assert status.state == RolloutState.ROLLED_BACK


def _run_cli(argv: list[str]) -> int:
    try:
        rollout_main(argv)
    except SystemExit as done:
        return int(done.code or 0)
    return 0
