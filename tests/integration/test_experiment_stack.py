"""Experiments on the real stack: a third demo variant behind HAProxy, shares that move traffic."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

import devstack
from activities.routers.haproxy import HAProxyRuntime
from plans import HAProxyRouter
from plans.runtime.shares import VariantShares
from tests.integration.conftest import who_answers
from tests.stack.conftest import ANY_PORTS, missing_binaries

pytestmark = pytest.mark.integration

VARIANTS = ["stable", "canary", "canary-b"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.StackInfo]:
    """The dev stack with a third demo variant, canary-b, a server of the same backend."""
    missing = missing_binaries()
    if missing:
        message = f"the real stack needs {', '.join(missing)}: run scripts/bootstrap.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    directory = tmp_path_factory.mktemp("experiment")
    with devstack.running(
        directory, with_worker=True, ports=ANY_PORTS, variants=["canary-b"]
    ) as info:
        yield info


@pytest.fixture(scope="module")
async def client(stack: devstack.StackInfo) -> AsyncIterator[Client]:
    yield await Client.connect(
        stack.temporal_address, namespace=stack.namespace, data_converter=pydantic_data_converter
    )


@pytest.fixture
def router(stack: devstack.StackInfo) -> Iterator[HAProxyRuntime]:
    """HAProxy's runtime API; after each test every variant healthy and all on the stable."""
    runtime = HAProxyRuntime(
        HAProxyRouter(runtime_api=f"unix://{stack.haproxy_socket}", backend=stack.haproxy_backend)
    )
    yield runtime
    for version in VARIANTS:
        devstack.fault(Path(stack.dir), 0.0, 0, version=version)
    runtime.set_shares(VariantShares(shares={"stable": 100, "canary": 0, "canary-b": 0}))


async def prometheus_value(stack: devstack.StackInfo, query: str) -> float | None:
    async with httpx.AsyncClient(timeout=10.0) as http:
        answer = (
            await http.get(f"{stack.prometheus_url}/api/v1/query", params={"query": query})
        ).json()
    found = answer["data"]["result"]
    return float(found[0]["value"][1]) if found else None


async def test_shares_move_traffic_over_three_variants(
    stack: devstack.StackInfo, router: HAProxyRuntime
) -> None:
    assert stack.variants == ["canary-b"]
    shares = VariantShares(shares={"stable": 50, "canary": 30, "canary-b": 20})
    assert await asyncio.to_thread(router.set_shares, shares) == shares
    counts = await who_answers(stack, requests=100)
    # Weighted round robin, with the load generator's requests in between: near the shares.
    assert set(counts) == set(VARIANTS), counts
    assert 30 <= counts["stable"] <= 70 and 10 <= counts["canary"] <= 50, counts
    assert 5 <= counts["canary-b"] <= 40, counts
    out = VariantShares(shares={"stable": 60, "canary": 40, "canary-b": 0})
    assert await asyncio.to_thread(router.set_shares, out) == out
    assert "canary-b" not in await who_answers(stack, requests=30)


async def test_the_third_variant_is_faulted_and_scraped_on_its_own(
    stack: devstack.StackInfo, router: HAProxyRuntime
) -> None:
    shares = VariantShares(shares={"stable": 40, "canary": 30, "canary-b": 30})
    await asyncio.to_thread(router.set_shares, shares)
    fault = await asyncio.to_thread(devstack.fault, Path(stack.dir), 1.0, 0, version="canary-b")
    assert fault == {"error_rate": 1.0, "latency_ms": 0}
    with pytest.raises(devstack.StackError, match="no version 'canary-c'"):
        devstack.fault(Path(stack.dir), 1.0, 0, version="canary-c")
    # Prometheus scrapes canary-b's demo service: its 500s show under its own label.
    query = 'sum(demo_requests_total{version="canary-b",code="500"})'
    deadline = time.monotonic() + 30
    seen = None
    while time.monotonic() < deadline:
        seen = await prometheus_value(stack, query)
        if seen:
            break
        await asyncio.sleep(1)
    assert seen and seen > 0, seen
    healthy = await prometheus_value(stack, 'sum(demo_requests_total{version="canary",code="500"})')
    assert healthy == 0
