"""An experiment through Envoy on the real stack: the three demo variants are clusters of the
route, weighted by runtime keys, and what Envoy routes is what the test asserts on."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

import devstack
from activities.routers.envoy import EnvoyRuntime
from client.experiments import start_experiment
from demo.configs import ENVOY_RUNTIME_PREFIX
from plans import EnvoyRouter
from plans.runtime.experiment import ExperimentState
from plans.runtime.shares import VariantShares
from tests.integration.conftest import who_answers
from tests.integration.test_experiment_stack import VARIANTS, experiment_plan
from tests.stack.conftest import ANY_PORTS, missing_binaries

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.StackInfo]:
    """The dev stack with Envoy as its router (the load goes through it) and canary-b."""
    missing = missing_binaries()
    if missing:
        message = f"the real stack needs {', '.join(missing)}: run scripts/bootstrap.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    directory = tmp_path_factory.mktemp("experiment-envoy")
    with devstack.running(
        directory, with_worker=True, router="envoy", ports=ANY_PORTS, variants=["canary-b"]
    ) as info:
        yield info


@pytest.fixture(scope="module")
async def client(stack: devstack.StackInfo) -> AsyncIterator[Client]:
    yield await Client.connect(
        stack.temporal_address, namespace=stack.namespace, data_converter=pydantic_data_converter
    )


async def test_an_experiment_through_envoy_rolls_the_better_variant_forward(
    stack: devstack.StackInfo, client: Client
) -> None:
    assert stack.envoy_admin is not None and stack.envoy_url is not None
    envoy = EnvoyRuntime(
        EnvoyRouter(admin=stack.envoy_admin, runtime_key_prefix=ENVOY_RUNTIME_PREFIX)
    )
    directory = Path(stack.dir)
    # As on HAProxy: the control fails a fifth of its requests, canary-b answers 300 ms late.
    await asyncio.to_thread(devstack.fault, directory, 0.2, 0, version="stable")
    await asyncio.to_thread(devstack.fault, directory, 0.2, 300, version="canary-b")
    router = {
        "kind": "envoy",
        "admin": stack.envoy_admin,
        "runtime_key_prefix": ENVOY_RUNTIME_PREFIX,
    }
    plan = experiment_plan(stack, router=router)
    handle = await start_experiment(client, plan, stack.task_queue)
    try:
        result = await asyncio.wait_for(handle.result(), timeout=180)
    finally:
        with contextlib.suppress(Exception):
            await handle.cancel()
        for version in VARIANTS:
            await asyncio.to_thread(devstack.fault, directory, 0.0, 0, version=version)
    assert result.state == ExperimentState.ROLLED_FORWARD, result
    assert result.winner == "canary", result
    assert "canary-b" in result.shares and result.shares["canary"] == 100
    # Envoy's runtime keys say it, and Envoy routes it: every request to the winner.
    assert await asyncio.to_thread(envoy.get_shares, list(VARIANTS)) == VariantShares(
        shares={"stable": 0, "canary": 100, "canary-b": 0}
    )
    assert set(await who_answers(stack, requests=20, url=stack.envoy_url)) == {"canary"}
