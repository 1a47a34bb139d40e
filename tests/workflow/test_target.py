"""The rollout owns its traffic target, reads it back at every check and repairs drift."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from client.leases import holder
from client.operations import start_rollout
from plans import RolloutState, TrafficSplit
from tests.workflow.conftest import Doubles, make_plan, skip
from tests.workflow.test_rollout_workflow import settle, status_of, until

WEBHOOK = {"webhook_url_env": "ROLLOUT_TEST_WEBHOOK"}


async def test_drift_is_put_back_recorded_and_told(env, worker, doubles: Doubles) -> None:
    # The router is found at 0% at the first check of the 5% stage (a reload, say).
    doubles.router_reads = [TrafficSplit.canary_percent(0)]
    plan = make_plan(
        notify=WEBHOOK,
        stages=[
            {"name": "a", "weight": 5, "bake": "30m", "check_every": "10m"},
            {"name": "b", "weight": 100, "bake": "10m", "check_every": "10m"},
        ],
    )
    handle = await start_rollout(env.client, plan, worker)
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED
    assert doubles.shifts == [5, 5, 100]
    final = await status_of(handle)
    drift = [e.text for e in final.events if e.kind == "drift"]
    assert len(drift) == 1 and "routes canary 0%" in drift[0] and "set canary 5%" in drift[0]
    assert any("drift" in note and "putting it back" in note for note in doubles.notes)
    assert doubles.reads >= 4


async def test_every_stage_reads_the_router_even_without_gates(env, worker, doubles) -> None:
    doubles.router_reads = [TrafficSplit.canary_percent(0)] * 2
    plan = make_plan(
        gates=[],
        stages=[{"name": "a", "weight": 30, "bake": "30m", "check_every": "10m"}],
    )
    handle = await start_rollout(env.client, plan, worker)
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED
    assert doubles.shifts == [30, 30, 30, 100]


async def test_a_restore_is_asserted_again_until_it_holds(env, worker, doubles) -> None:
    plan = make_plan(stages=[{"name": "a", "weight": 20, "bake": "1h", "check_every": "10m"}])
    handle = await start_rollout(env.client, plan, worker)
    await until(handle, lambda s: s.state == RolloutState.BAKING, env)
    # The first read after the restore finds the canary back at 20% (a reload undid it).
    doubles.router_reads = [TrafficSplit.canary_percent(20)]
    await handle.signal("rollback", {"by": "ops", "reason": "bad build"})
    with pytest.raises(WorkflowFailureError):
        await settle(env, handle)
    assert doubles.shifts == [20, 0, 0]
    final = await status_of(handle)
    assert final.state == RolloutState.ROLLED_BACK
    assert any(e.kind == "drift" and "restoring again" in e.text for e in final.events)


# -- ownership, with the real lease workflow and activities ---------------------------------


async def refusal(env: WorkflowEnvironment, handle) -> str:
    with pytest.raises(WorkflowFailureError) as failure:
        await settle(env, handle)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "TargetOwned"
    return cause.message


async def test_a_second_rollout_on_the_same_target_is_refused(env, leased, doubles) -> None:
    first = make_plan(service="checkout")
    handle = await start_rollout(env.client, first, leased)
    await until(handle, lambda s: s.state == RolloutState.BAKING, env)
    other = make_plan(service="payments")  # another service, the same backend
    assert other.target_lease_id == first.target_lease_id
    refused = await start_rollout(env.client, other, leased)
    message = await refusal(env, refused)
    assert "rollout-checkout" in message and "rollout rollback checkout" in message
    status = await status_of(refused)
    assert status.state == RolloutState.REFUSED
    assert doubles.shifts == [5]  # the refused one moved nothing
    held = await holder(env.client, first.target_lease_id)
    assert held is not None and held[0].owner == "rollout-checkout"
    # Once the owner ends, the target is free again.
    assert (await settle(env, handle)).state == RolloutState.PROMOTED
    assert await holder(env.client, first.target_lease_id) is None
    again = await start_rollout(env.client, make_plan(service="payments"), leased)
    assert (await settle(env, again)).state == RolloutState.PROMOTED


async def test_two_starts_at_the_same_moment_one_wins(env, leased, doubles) -> None:
    plans = [make_plan(service=f"race-{i}") for i in range(2)]
    handles = await asyncio.gather(*(start_rollout(env.client, p, leased) for p in plans))
    outcomes = []
    for handle in handles:
        try:
            outcomes.append((await settle(env, handle)).state)
        except WorkflowFailureError as error:
            assert isinstance(error.cause, ApplicationError)
            outcomes.append(error.cause.type)
    assert sorted(map(str, outcomes)) == ["TargetOwned", "promoted"]


async def lease_result(env: WorkflowEnvironment, lease_id: str) -> str:
    """Skip time until the target's lease ends; what it says of its end."""
    for _ in range(30):
        if await holder(env.client, lease_id) is None:
            result: str = await env.client.get_workflow_handle(lease_id).result()
            return result
        await skip(env, timedelta(seconds=10))
    raise AssertionError("the lease never ended")


async def test_a_terminated_owner_does_not_keep_the_target(env, leased, doubles) -> None:
    first = make_plan(service="gone")
    handle = await start_rollout(env.client, first, leased)
    await until(handle, lambda s: s.state == RolloutState.BAKING, env)
    await handle.terminate("operator removed it")
    # The lease puts stable back for the rollout that could not, then frees the target.
    said = await lease_result(env, first.target_lease_id)
    assert "rollout-gone was terminated without a rollback" in said
    assert "stable put back" in said and "read back" in said
    assert doubles.shifts == [5, 0]
    second = await start_rollout(env.client, make_plan(service="next"), leased)
    assert (await settle(env, second)).state == RolloutState.PROMOTED
    lease = await env.client.get_workflow_handle(first.target_lease_id).describe()
    assert lease.status != WorkflowExecutionStatus.RUNNING


async def test_an_unreleased_lease_ends_itself_once_its_owner_is_gone(env, leased) -> None:
    plan = make_plan(service="orphan")
    handle = await start_rollout(env.client, plan, leased)
    await until(handle, lambda s: s.state == RolloutState.BAKING, env)
    await handle.terminate("operator removed it")
    await skip(env, timedelta(minutes=15))
    for _ in range(50):
        if await holder(env.client, plan.target_lease_id) is None:
            break
        await skip(env, timedelta(minutes=5))
    assert await holder(env.client, plan.target_lease_id) is None
