"""Rollouts through Envoy on the real stack: what Envoy routes is the truth the tests assert on."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

import devstack
from activities.routers.envoy import EnvoyRuntime
from client import operations
from demo.configs import ENVOY_RUNTIME_PREFIX
from plans import EnvoyRouter, Plan, RolloutResult, RolloutState, TrafficSplit, parse_plan
from tests.integration.conftest import failed_with_faulty_canary
from tests.stack.conftest import real_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ENVOY_ALL = 'envoy_cluster_upstream_rq_xx{envoy_cluster_name="$canary"}'
ENVOY_5XX = (
    'envoy_cluster_upstream_rq_xx{envoy_cluster_name="$canary",envoy_response_code_class="5"}'
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.StackInfo]:
    """The real stack with Envoy as its router: the load goes through Envoy."""
    with real_stack(tmp_path_factory.mktemp("envoy"), router="envoy") as info:
        yield info


@pytest.fixture
async def envoy(stack: devstack.StackInfo, client: Client) -> AsyncIterator[EnvoyRuntime]:
    """Envoy's admin API, put back to 100% stable and a healthy canary after each test.

    A rollout a failed test left running is terminated first, so it releases the target.
    """
    assert stack.envoy_admin is not None
    runtime = EnvoyRuntime(
        EnvoyRouter(admin=stack.envoy_admin, runtime_key_prefix=ENVOY_RUNTIME_PREFIX)
    )
    yield runtime
    async for execution in client.list_workflows("ExecutionStatus='Running'"):
        if execution.id.startswith("rollout-envoy-"):
            await client.get_workflow_handle(execution.id).terminate("the test ended")
    devstack.fault(Path(stack.dir), 0.0, 0)
    runtime.set_split("stable", "canary", TrafficSplit.canary_percent(0))


def envoy_plan(stack: devstack.StackInfo, stages: list[dict[str, Any]]) -> Plan:
    """A plan moving the stack's Envoy, with a real gate on the demo service's own 5xx share."""
    return parse_plan(
        {
            "service": f"envoy-{uuid.uuid4().hex[:6]}",
            "version": "v2",
            "stable": "stable",
            "canary": "canary",
            "router": {
                "kind": "envoy",
                "admin": stack.envoy_admin,
                "runtime_key_prefix": ENVOY_RUNTIME_PREFIX,
            },
            "metrics": {"kind": "prometheus", "url": stack.prometheus_url},
            "gates": [
                {
                    "name": "error-rate",
                    "preset": "demo-error-rate",
                    "max": 0.05,
                    "window": "5s",
                    # The preset asks 100 requests; the canary gets ~8 a second at 20%.
                    "min_samples": 10,
                    "failure_limit": 2,
                    # The first checks after a shift may see no canary requests in 5s yet.
                    "inconclusive_limit": 10,
                },
                # Envoy's own counters for the canary's cluster, scraped from its admin API.
                {
                    "name": "envoy-error-rate",
                    # Envoy has no 5xx series before the first 5xx: count that as 0.
                    "query": f"(sum(rate({ENVOY_5XX}[5s])) or vector(0))"
                    f" / sum(rate({ENVOY_ALL}[5s]))",
                    "max": 0.05,
                    "failure_limit": 2,
                    "inconclusive_limit": 10,
                },
            ],
            "stages": stages,
        }
    )


async def who_answers(stack: devstack.StackInfo, requests: int = 60) -> Counter[str]:
    """Send requests through Envoy and count the versions that answer."""
    assert stack.envoy_url is not None
    counts: Counter[str] = Counter()
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as http:
        for _ in range(requests):
            response = await http.get(stack.envoy_url)
            counts[response.headers.get("X-Version", "none")] += 1
    return counts


def test_the_stack_sends_its_load_through_envoy(stack: devstack.StackInfo) -> None:
    assert stack.router == "envoy"
    plan_text = Path(stack.plan_file).read_text()
    assert "kind: envoy" in plan_text and stack.envoy_admin in plan_text
    # The load generator's log starts with its command line.
    loadgen = Path(stack.logs["loadgen"]).read_text()
    assert stack.envoy_url is not None and stack.envoy_url in loadgen


async def test_healthy_canary_is_promoted_with_envoy_weights_at_every_stage(
    stack: devstack.StackInfo, client: Client, envoy: EnvoyRuntime
) -> None:
    plan = envoy_plan(
        stack,
        [
            {"name": "twenty", "weight": 20, "bake": "6s", "check_every": "2s"},
            {"name": "sixty", "weight": 60, "bake": "6s", "check_every": "2s"},
            {"name": "full", "weight": 100, "bake": "5s", "check_every": "2s"},
        ],
    )
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    seen: dict[int, tuple[int, int]] = {}
    while True:
        status = await operations.status(client, plan.service)
        if status.state == RolloutState.BAKING:
            split = await asyncio.to_thread(envoy.get_split, "stable", "canary")
            seen.setdefault(status.stage_index, (split.stable_weight, split.canary_weight))
        assert status.state != RolloutState.PAUSED, status.reason
        if status.state.final:
            break
        await asyncio.sleep(0.5)
    result = await handle.result()
    assert isinstance(result, RolloutResult) and result.state == RolloutState.PROMOTED
    assert seen == {0: (80, 20), 1: (40, 60), 2: (0, 100)}
    assert status.verdicts["error-rate"].outcome.value == "pass"
    assert status.verdicts["envoy-error-rate"].outcome.value == "pass"
    assert (await who_answers(stack, 20)) == {"canary": 20}


async def test_faulty_canary_is_rolled_back_and_every_request_goes_to_stable(
    stack: devstack.StackInfo, client: Client, envoy: EnvoyRuntime
) -> None:
    plan = envoy_plan(stack, [{"name": "half", "weight": 50, "bake": "2m", "check_every": "2s"}])
    cause = await failed_with_faulty_canary(stack, client, plan, 0.5)
    assert cause.type == "RolledBack"
    assert "error-rate" in cause.message and "2 check(s) in a row" in cause.message
    split = await asyncio.to_thread(envoy.get_split, "stable", "canary")
    assert (split.stable_weight, split.canary_weight) == (100, 0)
    # Every request through Envoy is now answered by the stable version.
    assert (await who_answers(stack)) == {"stable": 60}
    status = await operations.status(client, plan.service)
    assert status.state == RolloutState.ROLLED_BACK and status.canary_weight == 0
    value = status.verdicts["error-rate"].value
    assert value is not None and value > 0.05
    # Envoy counted the canary's 500s too.
    seen_by_envoy = status.verdicts["envoy-error-rate"].value
    assert seen_by_envoy is not None and seen_by_envoy > 0.05
