"""Internal users first on the real stack: a stage's match, as HAProxy routes it.

Every request carrying the header reaches the canary whatever the stage's weight; the rest
are split by the weight. A later stage without match clears it, a reload that loses the
map's entry is repaired by the next check, and a rollback clears it too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError

import devstack
from activities.routers.haproxy import HAProxyRuntime
from client import operations
from plans import (
    CommandKind,
    HAProxyRouter,
    OperatorCommand,
    Plan,
    RequestMatch,
    RolloutState,
    TrafficSplit,
)
from tests.integration.conftest import fast_plan

pytestmark = pytest.mark.integration

INTERNAL = {"x-user-group": "internal"}
MATCH = {"header": "x-user-group", "exact": "internal"}


@pytest.fixture
def matching_router(stack: devstack.StackInfo) -> Iterator[HAProxyRuntime]:
    """The stack's HAProxy with its match map; 100% stable and no match after each test."""
    runtime = HAProxyRuntime(
        HAProxyRouter(
            runtime_api=f"unix://{stack.haproxy_socket}",
            backend=stack.haproxy_backend,
            match_map=stack.haproxy_match_map,
        )
    )
    yield runtime
    runtime.set_split("stable", "canary", TrafficSplit.canary_percent(0))


async def versions(
    stack: devstack.StackInfo, count: int, headers: dict[str, str]
) -> dict[str, int]:
    """Send ``count`` requests through HAProxy with ``headers``; count who answered."""
    seen: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=5.0) as http:
        for _ in range(count):
            response = await http.get(stack.haproxy_url, headers=headers)
            version = response.headers.get("X-Version", "none")
            seen[version] = seen.get(version, 0) + 1
    return seen


async def until(what: str, check: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    """Wait for ``check`` to hold, at most ``timeout`` seconds (a bound, not a measure)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        await asyncio.sleep(0.3)


async def holding(client: Client, service: str, index: int) -> None:
    """Wait until stage ``index`` has baked and waits for approval, traffic held still."""

    async def waiting() -> bool:
        status = await operations.status(client, service)
        assert not status.state.final, status.reason
        return status.stage_index == index and status.state == RolloutState.AWAITING_APPROVAL

    await until(f"stage {index} awaiting approval", waiting)


async def approve(client: Client, service: str) -> None:
    command = OperatorCommand(kind=CommandKind.APPROVE, by="test", reason="next stage")
    await operations.send_command(client, service, command)


def match_plan(stack: devstack.StackInfo, stages: list[dict[str, Any]]) -> Plan:
    """A plan on the stack's HAProxy with its match map; every stage waits for approval."""
    held = [{"bake": "3s", "check_every": "1s", "approval": True, **stage} for stage in stages]
    router = {
        "kind": "haproxy",
        "runtime_api": stack.haproxy_admin_tcp,
        "backend": stack.haproxy_backend,
        "match_map": stack.haproxy_match_map,
    }
    return fast_plan(stack, held, gates=[], router=router)


async def test_matching_requests_reach_the_canary_and_the_rest_go_by_weight(
    stack: devstack.StackInfo, client: Client, matching_router: HAProxyRuntime
) -> None:
    plan = match_plan(
        stack,
        [
            {"name": "internal", "weight": 0, "match": MATCH},
            {"name": "early", "weight": 20, "match": MATCH},
            {"name": "half", "weight": 50},
        ],
    )
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    internal = RequestMatch(**MATCH)

    async def read() -> TrafficSplit:
        return await asyncio.to_thread(matching_router.get_split, "stable", "canary")

    # Alpha: internal users only.
    await holding(client, plan.service, 0)
    assert await read() == TrafficSplit.canary_percent(0, internal)
    assert await versions(stack, 200, INTERNAL) == {"canary": 200}
    assert await versions(stack, 200, {}) == {"stable": 200}

    # A reload loses the map's entries (it starts from the empty file): the next check
    # puts the match back and says so in the audit trail.
    assert matching_router.command(f"clear map {stack.haproxy_match_map}") == ""

    async def repaired() -> bool:
        return (await read()).match == internal

    await until("the match re-asserted after drift", repaired)
    status = await operations.status(client, plan.service)
    assert any(e.kind == "drift" and "x-user-group" in e.text for e in status.events)
    assert await versions(stack, 20, INTERNAL) == {"canary": 20}

    # Beta: 20% of everyone else, and still every internal request.
    await approve(client, plan.service)
    await holding(client, plan.service, 1)
    assert await read() == TrafficSplit.canary_percent(20, internal)
    assert await versions(stack, 200, INTERNAL) == {"canary": 200}
    rest = await versions(stack, 200, {})
    # Round robin at 20/80, with the stack's load generator sending requests in between.
    assert set(rest) == {"stable", "canary"} and 20 <= rest["canary"] <= 60, rest

    # A stage without match clears it: internal users go by the weight like everyone.
    await approve(client, plan.service)
    await holding(client, plan.service, 2)
    assert await read() == TrafficSplit.canary_percent(50)
    assert set(await versions(stack, 40, INTERNAL)) == {"stable", "canary"}

    rollback = OperatorCommand(kind=CommandKind.ROLLBACK, by="test", reason="done")
    await operations.send_command(client, plan.service, rollback)
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), timeout=60)
    assert await read() == TrafficSplit.canary_percent(0)
    assert await versions(stack, 40, INTERNAL) == {"stable": 40}


async def test_a_rollback_clears_the_match(
    stack: devstack.StackInfo, client: Client, matching_router: HAProxyRuntime
) -> None:
    plan = match_plan(stack, [{"name": "internal", "weight": 0, "match": MATCH}])
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    await holding(client, plan.service, 0)
    assert await versions(stack, 20, INTERNAL) == {"canary": 20}
    rollback = OperatorCommand(kind=CommandKind.ROLLBACK, by="test", reason="stop")
    await operations.send_command(client, plan.service, rollback)
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), timeout=60)
    split = await asyncio.to_thread(matching_router.get_split, "stable", "canary")
    assert split == TrafficSplit.canary_percent(0)
    assert await versions(stack, 40, INTERNAL) == {"stable": 40}
