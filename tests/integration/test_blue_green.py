"""Blue-green on the real stack: preview on HAProxy's preview route, one flip, blue kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

import devstack
from activities.routers.haproxy import HAProxyRuntime
from client import operations
from demo import loadgen
from plans import CommandKind, OperatorCommand, Plan, RolloutResult, RolloutState
from tests.integration.conftest import fast_plan, who_answers

pytestmark = pytest.mark.integration


def blue_green_plan(stack: devstack.StackInfo, **section: Any) -> Plan:
    """The stack's error-rate gate judging green on preview traffic, then on all of it."""
    assert stack.preview_url is not None
    return fast_plan(
        stack,
        [],
        strategy="blue_green",
        blue_green={
            "preview": "6s",
            "auto_promote_after": "6s",
            "post_promotion_for": "6s",
            "check_every": "2s",
            "preview_url": stack.preview_url,
            **section,
        },
    )


@pytest.fixture
async def preview_traffic(stack: devstack.StackInfo) -> AsyncIterator[None]:
    """Testers on the preview route, so the pre-promotion gate has green's requests to judge."""
    stop = asyncio.Event()
    task = asyncio.create_task(loadgen.run(stack.preview_url or "", rps=10, stop=stop))
    yield
    stop.set()
    await task


async def preview_answers(stack: devstack.StackInfo, requests: int = 20) -> set[str]:
    assert stack.preview_url is not None
    return set(await who_answers(stack, requests, url=stack.preview_url))


async def test_green_is_previewed_then_gets_everything_in_one_flip_without_failed_requests(
    stack: devstack.StackInfo, client: Client, router: HAProxyRuntime
) -> None:
    plan = blue_green_plan(stack, keep_previous_for="4s")
    stop = asyncio.Event()
    # Steady load on the live route and the preview route for the whole run.
    live = asyncio.create_task(loadgen.run(stack.haproxy_url, rps=30, stop=stop))
    preview = asyncio.create_task(loadgen.run(stack.preview_url or "", rps=10, stop=stop))
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    seen: dict[str, tuple[int, int]] = {}
    while True:
        status = await operations.status(client, plan.service)
        if status.state == RolloutState.BAKING:
            split = await asyncio.to_thread(router.get_split, "stable", "canary")
            seen.setdefault(status.stage_name, (split.stable_weight, split.canary_weight))
        if status.state.final:
            break
        await asyncio.sleep(0.3)
    stop.set()
    live_tally, preview_tally = await live, await preview
    result = await handle.result()
    assert isinstance(result, RolloutResult) and result.state == RolloutState.PROMOTED
    assert seen == {"preview": (100, 0), "post-promotion": (0, 100), "keep-blue": (0, 100)}
    assert "may be retired" in result.reason
    # The preview route only ever reached green; the flip itself failed no request.
    assert {v for v, _ in preview_tally.answers} == {"canary"}
    assert not live_tally.failures and not preview_tally.failures
    assert all(code == 200 for _, code in live_tally.answers)
    assert {v for v, _ in live_tally.answers} == {"stable", "canary"}
    assert (await who_answers(stack, 20)) == {"canary": 20}


async def test_operator_rollback_inside_keep_previous_for_is_one_flip(
    stack: devstack.StackInfo, client: Client, router: HAProxyRuntime, preview_traffic: None
) -> None:
    plan = blue_green_plan(stack, keep_previous_for="10m")
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    await until_stage(client, plan, "keep-blue")
    record = await operations.send_command(
        client,
        plan.service,
        OperatorCommand(kind=CommandKind.ROLLBACK, by="sre", reason="refunds look wrong"),
    )
    assert record.accepted
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), timeout=60)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "RolledBack"
    assert "rollback requested by sre: refunds look wrong" in cause.message
    ended = await operations.status(client, plan.service)
    # No gate was asked after the command: keep-blue has none, and the flip asks none.
    assert ended.verdicts and all(v.at <= record.at for v in ended.verdicts.values())
    assert any("blue kept ready for 10m" in e.text for e in ended.events)
    assert (await who_answers(stack)) == {"stable": 60}


# Last in the module: the faulty canary's errors stay in the gates' windows for a while.
async def test_failing_post_promotion_gate_flips_back_to_blue(
    stack: devstack.StackInfo, client: Client, router: HAProxyRuntime, preview_traffic: None
) -> None:
    plan = blue_green_plan(stack, post_promotion_for="2m", keep_previous_for="2m")
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    await until_stage(client, plan, "post-promotion")
    assert await preview_answers(stack) == {"canary"}
    await asyncio.to_thread(devstack.fault, Path(stack.dir), 0.5, 0)
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), timeout=90)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "RolledBack"
    assert "error-rate" in cause.message
    split = await asyncio.to_thread(router.get_split, "stable", "canary")
    assert (split.stable_weight, split.canary_weight) == (100, 0)
    assert (await who_answers(stack)) == {"stable": 60}


async def until_stage(client: Client, plan: Plan, stage: str) -> Any:
    """The status once the rollout bakes in ``stage`` (within a generous bound)."""
    for _ in range(600):
        status = await operations.status(client, plan.service)
        if status.stage_name == stage and status.state == RolloutState.BAKING:
            return status
        assert not status.state.final, f"ended {status.state} before {stage}: {status.reason}"
        await asyncio.sleep(0.2)
    raise AssertionError(f"never reached {stage}: {status}")
