"""HAProxy's admin API goes away: shifts retry until it is back, restores never give up."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError

import devstack
from client import operations
from plans import RolloutResult, RolloutState
from tests.faults.chaos import (
    AdminGate,
    Webhook,
    WeightRecorder,
    baking,
    eventually,
    haproxy,
    own_worker,
    quick_plan,
    until,
)

pytestmark = pytest.mark.integration


async def pending_shift(client: Client, workflow_id: str) -> tuple[int, str]:
    """(attempt, last failure) of the shift_traffic activity in flight, or (0, '')."""
    described = await client.get_workflow_handle(workflow_id).describe()
    for pending in described.raw_description.pending_activities:
        if pending.activity_type.name == "shift_traffic":
            return pending.attempt, pending.last_failure.message
    return 0, ""


async def test_shift_retries_while_the_admin_api_is_away_and_goes_on_when_it_is_back(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    gate = AdminGate(stack.ports["haproxy_admin"])
    plan = quick_plan(
        stack,
        [
            {"name": "a", "weight": 20, "bake": "3s", "check_every": "1s"},
            {"name": "b", "weight": 60, "bake": "3s", "check_every": "1s"},
        ],
        runtime_api=gate.runtime_api,
    )
    with WeightRecorder(stack) as weights:
        handle = await operations.start_rollout(client, plan, stack.task_queue)
        launched.append(plan.workflow_id)

        async def retried() -> bool:
            attempt, _ = await pending_shift(client, plan.workflow_id)
            return attempt >= 3

        await eventually(retried, 20, "the first shift to be retried twice")
        _, failure = await pending_shift(client, plan.workflow_id)
        assert "nothing listens" in failure, failure
        status = await operations.status(client, plan.service)
        assert status.state == RolloutState.SHIFTING and status.canary_weight == 0
        assert weights.canary_weights == [0]
        gate.open()
        try:
            result = await asyncio.wait_for(handle.result(), timeout=60)
        finally:
            gate.close()
    assert isinstance(result, RolloutResult) and result.state == RolloutState.PROMOTED
    assert weights.canary_weights == [0, 20, 60, 100]
    final = await operations.status(client, plan.service)
    assert next(e.text for e in final.events if e.kind == "stage") == "stage 1/2 'a' (20%) started"


@pytest.mark.slow
async def test_restore_keeps_retrying_tells_people_and_restores_once_the_api_is_back(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    gate = AdminGate(stack.ports["haproxy_admin"])
    gate.open()
    webhook = Webhook()
    try:
        with webhook.serving():
            env = {
                "FAULTS_WEBHOOK_URL": webhook.url("/hooks/rollouts"),
                "ROLLOUT_PLAN_SECRETS": "FAULTS_WEBHOOK_URL",
            }
            with own_worker(stack, Path(stack.dir) / "logs", env) as worker:
                plan = quick_plan(
                    stack,
                    [{"name": "a", "weight": 30, "bake": "10m", "check_every": "1s"}],
                    runtime_api=gate.runtime_api,
                    notify={"webhook_url_env": "FAULTS_WEBHOOK_URL"},
                )
                handle = await operations.start_rollout(client, plan, worker.task_queue)
                launched.append(plan.workflow_id)
                await until(client, plan.service, baking(0), what="baking at 30%")
                gate.close()
                await handle.signal("rollback", {"by": "ana", "reason": "pager"})

                async def alerted() -> bool:
                    return any("still retrying" in text for text in webhook.texts())

                await eventually(alerted, 45, "a notification that the restore keeps failing")
                alert = next(t for t in webhook.texts() if "still retrying" in t)
                assert "after 5 attempts" in alert and plan.service in alert
                status = await operations.status(client, plan.service)
                assert status.state == RolloutState.ROLLING_BACK
                split = await asyncio.to_thread(haproxy(stack).get_split, "stable", "canary")
                assert split.canary_weight == 30
                gate.open()
                with pytest.raises(WorkflowFailureError):
                    await asyncio.wait_for(handle.result(), timeout=90)
                # The status query needs a worker, even on a finished run.
                final = await operations.status(client, plan.service)
    finally:
        gate.close()
    split = await asyncio.to_thread(haproxy(stack).get_split, "stable", "canary")
    assert (split.stable_weight, split.canary_weight) == (100, 0)
    assert final.state == RolloutState.ROLLED_BACK
    texts = webhook.texts()
    assert texts[0].startswith(f"Rollout of {plan.service} v2 started")
    assert texts[-1].startswith(f"Rollout of {plan.service} v2 rolled back")


async def test_an_admin_api_that_hangs_up_is_retried_like_one_that_is_away(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    with AdminGate(stack.ports["haproxy_admin"]) as gate:
        gate.hang_up = True
        plan = quick_plan(
            stack,
            [{"name": "a", "weight": 20, "bake": "3s", "check_every": "1s"}],
            runtime_api=gate.runtime_api,
        )
        handle = await operations.start_rollout(client, plan, stack.task_queue)
        launched.append(plan.workflow_id)
        await asyncio.sleep(2.5)
        status = await operations.status(client, plan.service)
        assert status.state == RolloutState.SHIFTING, f"{status.state}: {status.reason}"
        gate.hang_up = False
        result = await asyncio.wait_for(handle.result(), timeout=60)
    assert isinstance(result, RolloutResult) and result.state == RolloutState.PROMOTED
