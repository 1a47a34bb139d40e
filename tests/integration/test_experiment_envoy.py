"""An experiment through Envoy on the real stack: the three demo variants are clusters of the
route, weighted by runtime keys, and what Envoy routes is what the test asserts on."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

import devstack
from activities.routers.envoy import EnvoyRuntime
from demo.configs import ENVOY_RUNTIME_PREFIX
from plans import EnvoyRouter
from plans.runtime.experiment import ExperimentState
from plans.runtime.shares import VariantShares
from tests.integration.conftest import who_answers
from tests.integration.test_experiment_stack import VARIANTS, experiment_plan, faulted_run
from tests.stack.conftest import real_stack

# An experiment is waited for up to 180 s (a loaded machine), the stack started first.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.StackInfo]:
    """The dev stack with Envoy as its router (the load goes through it) and canary-b."""
    with real_stack(
        tmp_path_factory.mktemp("experiment-envoy"), router="envoy", variants=["canary-b"]
    ) as info:
        yield info


async def test_an_experiment_through_envoy_rolls_the_better_variant_forward(
    stack: devstack.StackInfo, client: Client
) -> None:
    assert stack.envoy_admin is not None and stack.envoy_url is not None
    envoy = EnvoyRuntime(
        EnvoyRouter(admin=stack.envoy_admin, runtime_key_prefix=ENVOY_RUNTIME_PREFIX)
    )
    router = {
        "kind": "envoy",
        "admin": stack.envoy_admin,
        "runtime_key_prefix": ENVOY_RUNTIME_PREFIX,
    }
    try:
        # As on HAProxy: the control fails a fifth of its requests, canary-b is slow.
        result = await faulted_run(stack, client, experiment_plan(stack, router=router))
    finally:
        for version in VARIANTS:
            await asyncio.to_thread(devstack.fault, Path(stack.dir), 0.0, 0, version=version)
    assert result.state == ExperimentState.ROLLED_FORWARD, result
    assert result.winner == "canary", result
    assert "canary-b" in result.shares and result.shares["canary"] == 100
    # Envoy's runtime keys say it, and Envoy routes it: every request to the winner.
    assert await asyncio.to_thread(envoy.get_shares, list(VARIANTS)) == VariantShares(
        shares={"stable": 0, "canary": 100, "canary-b": 0}
    )
    assert set(await who_answers(stack, requests=20, url=stack.envoy_url)) == {"canary"}
