"""The real stack: Temporal dev server, HAProxy, Prometheus, the demo service and a worker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError

import devstack
from activities.routers.haproxy import HAProxyRuntime
from client import operations
from plans import HAProxyRouter, Plan, TrafficSplit, parse_plan
from tests.stack.conftest import real_stack
from tests.stack_plans import error_rate_plan

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.StackInfo]:
    with real_stack(tmp_path_factory.mktemp("integration")) as info:
        yield info


@pytest.fixture(scope="module")
async def client(stack: devstack.StackInfo) -> AsyncIterator[Client]:
    yield await Client.connect(
        stack.temporal_address, namespace=stack.namespace, data_converter=pydantic_data_converter
    )


@pytest.fixture
def router(stack: devstack.StackInfo) -> Iterator[HAProxyRuntime]:
    """HAProxy's runtime API, put back to 100% stable and a healthy canary after each test."""
    runtime = HAProxyRuntime(
        HAProxyRouter(runtime_api=f"unix://{stack.haproxy_socket}", backend=stack.haproxy_backend)
    )
    yield runtime
    devstack.fault(Path(stack.dir), 0.0, 0)
    runtime.set_split("stable", "canary", TrafficSplit.canary_percent(0))


def fast_plan(stack: devstack.StackInfo, stages: list[dict[str, Any]], **extra: Any) -> Plan:
    """A plan on the stack with a real error-rate gate on HAProxy's counters for the canary."""
    data = error_rate_plan(
        stack,
        f"it-{uuid.uuid4().hex[:6]}",
        stages,
        window="5s",
        failure_limit=2,
        # The first checks after a shift may see no canary requests in a 5s window yet.
        inconclusive_limit=10,
    )
    data.update(extra)
    return parse_plan(data)


async def failed_with_faulty_canary(
    stack: devstack.StackInfo, client: Client, plan: Plan, error_rate: float
) -> ApplicationError:
    """Start ``plan`` with the canary failing ``error_rate`` of its requests; its failure."""
    await asyncio.to_thread(devstack.fault, Path(stack.dir), error_rate, 0)
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), timeout=90)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


async def who_answers(
    stack: devstack.StackInfo, requests: int = 60, url: str | None = None
) -> dict[str, int]:
    """Send requests through HAProxy (its live route, or ``url``) and count who answers.

    One after another, each given 30 s: a busy machine can hold a request for seconds, and
    a request that fails raises, so a route that does not answer is never an empty count.
    """
    counts: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=30.0) as http:
        for _ in range(requests):
            response = await http.get(url or stack.haproxy_url)
            version = response.headers.get("X-Version", "none")
            counts[version] = counts.get(version, 0) + 1
    return counts
