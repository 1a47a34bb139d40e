"""Rollouts of a feature flag on the real stack: what the demo services evaluate is the truth.

The stack runs with ``--router flagd``: both demo services evaluate the flag file per user
id with flagd's OpenFeature provider, and Prometheus reads their counters per variant.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

import devstack
from client import operations
from plans import RolloutResult, RolloutState
from tests.flag_stack import (
    answers_for_users,
    evaluated,
    evaluated_near,
    file_percent,
    flag_plan,
    flag_stack,
    reset_flag,
)
from tests.integration.conftest import failed_with_faulty_canary

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.StackInfo]:
    with flag_stack(tmp_path_factory.mktemp("flagd")) as info:
        yield info


@pytest.fixture(autouse=True)
def clean_flag(stack: devstack.StackInfo) -> Iterator[None]:
    yield
    reset_flag(stack)


def test_the_stack_describes_its_flag(stack: devstack.StackInfo) -> None:
    assert stack.router == "flagd"
    assert stack.flag_file == str(Path(stack.dir) / "flags.json")
    assert stack.flag_poll_ms == 500
    plan = Path(stack.plan_file).read_text()
    assert "kind: flagd" in plan and "demo-error-rate" in plan


async def test_healthy_canary_is_promoted_with_the_split_evaluated_at_every_stage(
    stack: devstack.StackInfo, client: Client
) -> None:
    plan = flag_plan(
        stack,
        [
            {"name": "twenty", "weight": 20, "bake": "8s", "check_every": "2s"},
            {"name": "sixty", "weight": 60, "bake": "8s", "check_every": "2s"},
            {"name": "full", "weight": 100, "bake": "5s", "check_every": "2s"},
        ],
    )
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    in_file: dict[int, float] = {}
    in_effect: dict[int, bool] = {}
    while True:
        status = await operations.status(client, plan.service)
        if status.state == RolloutState.BAKING and status.stage_index not in in_file:
            weight = plan.stages[status.stage_index].weight
            in_file[status.stage_index] = await asyncio.to_thread(file_percent, stack)
            # The services take the file within their poll: wait for it, then compare.
            in_effect[status.stage_index] = await evaluated_near(stack, weight)
        if status.state.final:
            break
        await asyncio.sleep(0.3)
    result = await handle.result()
    assert isinstance(result, RolloutResult) and result.state == RolloutState.PROMOTED
    assert in_file == {0: 20.0, 1: 60.0, 2: 100.0}
    assert in_effect == {0: True, 1: True, 2: True}
    assert status.verdicts["error-rate"].outcome.value == "pass"
    assert await answers_for_users(stack, 50) == {"canary": 50}


async def test_faulty_canary_is_rolled_back_and_every_user_gets_the_stable(
    stack: devstack.StackInfo, client: Client
) -> None:
    plan = flag_plan(stack, [{"name": "half", "weight": 50, "bake": "2m", "check_every": "2s"}])
    cause = await failed_with_faulty_canary(stack, client, plan, 0.5)
    assert cause.type == "RolledBack"
    assert "error-rate" in cause.message and "2 check(s) in a row" in cause.message
    assert await asyncio.to_thread(file_percent, stack) == 0.0
    # Rollback put the canary at 0%: once the services reloaded, every evaluation is stable.
    assert await evaluated_near(stack, 0), await evaluated(stack)
    assert await answers_for_users(stack) == {"stable": 100}
    status = await operations.status(client, plan.service)
    assert status.state == RolloutState.ROLLED_BACK and status.canary_weight == 0


async def test_internal_users_first_get_the_new_variant_by_header_the_rest_by_weight(
    stack: devstack.StackInfo, client: Client
) -> None:
    plan = flag_plan(
        stack,
        [
            {
                "name": "alpha",
                "weight": 20,
                "bake": "5m",
                "check_every": "2s",
                "match": {"header": "x-user-group", "exact": "internal"},
            },
            {"name": "full", "weight": 100, "bake": "5s", "check_every": "2s"},
        ],
    )
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    await until_baking(client, plan.service)
    assert await evaluated_near(stack, 20)
    internal = await answers_for_users(stack, 200, {"x-user-group": "internal"})
    assert internal == {"canary": 200}
    customers = await answers_for_users(stack, 200, {"x-user-group": "customers"})
    assert 20 <= customers.get("canary", 0) <= 60, customers
    await handle.terminate("test over")


async def until_baking(client: Client, service: str) -> None:
    for _ in range(300):
        status = await operations.status(client, service)
        if status.state == RolloutState.BAKING:
            return
        assert not status.state.final, status.reason
        await asyncio.sleep(0.2)
    raise AssertionError(f"never baking: {status}")
