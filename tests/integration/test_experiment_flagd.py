"""An experiment on a feature flag: three variants of the dev stack's flag, both demo services
evaluating it per user through flagd's OpenFeature provider, under the load generator's users."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

import devstack
from activities.routers import FlagdFile
from client.experiments import experiment_status, start_experiment
from plans import FlagdRouter
from plans.experiment import ExperimentPlan, parse_experiment_plan
from plans.runtime.experiment import ExperimentState
from plans.runtime.shares import VariantShares
from tests.flag_stack import answers_for_users
from tests.stack.conftest import real_stack

pytestmark = pytest.mark.integration

VARIANTS = ["stable", "canary", "canary-b"]
USERS = 1000


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.StackInfo]:
    """The flagd dev stack whose flag has a third variant, canary-b."""
    with real_stack(
        tmp_path_factory.mktemp("experiment-flagd"), router="flagd", variants=["canary-b"]
    ) as info:
        yield info


@pytest.fixture
def flag(stack: devstack.StackInfo) -> Iterator[FlagdFile]:
    """The stack's flag file; after each test every variant healthy and all on the stable."""
    assert stack.flag_file is not None and stack.flag_key is not None
    file = FlagdFile(FlagdRouter(file=stack.flag_file, flag=stack.flag_key))
    yield file
    for version in VARIANTS:
        devstack.fault(Path(stack.dir), 0.0, 0, version=version)
    file.set_shares(VariantShares(shares={"stable": 100, "canary": 0, "canary-b": 0}))


async def split_near(stack: devstack.StackInfo, wanted: dict[str, int], within: float) -> bool:
    """Wait until both demo services split the load generator's users about as ``wanted``."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=10.0) as http:
        while time.monotonic() < deadline:
            splits = [
                (await http.get(f"{base}split?users={USERS}")).json()
                for base in (stack.stable_url, stack.canary_url)
            ]
            # 1,000 fixed users: each share within a few points of what was set.
            if all(
                abs(100 * split[name] / USERS - share) <= 5
                for split in splits
                for name, share in wanted.items()
            ):
                return True
            await asyncio.sleep(0.2)
    return False


async def test_the_flag_splits_users_over_three_variants(
    stack: devstack.StackInfo, flag: FlagdFile
) -> None:
    assert stack.variants == ["canary-b"]
    shares = VariantShares(shares={"stable": 50, "canary": 25, "canary-b": 25})
    assert await asyncio.to_thread(flag.set_shares, shares) == shares
    assert await split_near(stack, shares.shares, within=30)
    counts = await answers_for_users(stack, users=200)
    assert set(counts) == set(VARIANTS), counts
    assert 60 <= counts["stable"] <= 140 and 20 <= counts["canary-b"] <= 80, counts


def experiment_plan(stack: devstack.StackInfo) -> ExperimentPlan:
    """The flag's three variants: fewer errors wins, a slow one goes out."""
    return parse_experiment_plan(
        {
            "service": f"flag-exp-{uuid.uuid4().hex[:6]}",
            "version": "v2",
            "router": {"kind": "flagd", "file": stack.flag_file, "flag": stack.flag_key},
            "metrics": {"kind": "prometheus", "url": stack.prometheus_url, "timeout": "2s"},
            "gates": [
                {
                    "name": "errors",
                    "preset": "demo-error-rate",
                    "kind": "sequential",
                    "step": "5s",
                    "window": "10s",
                    "min_samples": 20,
                },
                {
                    "name": "latency",
                    "preset": "demo-p95-latency",
                    "max": 0.15,
                    "window": "10s",
                    "min_samples": 10,
                    "failure_limit": 1,
                    "inconclusive_limit": 100,
                },
            ],
            "experiment": {
                "control": "stable",
                "variants": [
                    {"name": "stable", "share": 34},
                    {"name": "canary", "share": 33},
                    {"name": "canary-b", "share": 33},
                ],
                "primary": "errors",
                "guardrails": ["latency"],
                "check_every": "2s",
                "max_duration": "3m",
            },
        }
    )


async def test_an_experiment_on_the_flag_rolls_the_better_variant_forward(
    stack: devstack.StackInfo, client: Client, flag: FlagdFile
) -> None:
    directory = Path(stack.dir)
    await asyncio.to_thread(devstack.fault, directory, 0.2, 0, version="stable")
    await asyncio.to_thread(devstack.fault, directory, 0.2, 300, version="canary-b")
    plan = experiment_plan(stack)
    handle = await start_experiment(client, plan, stack.task_queue)
    try:
        result = await asyncio.wait_for(handle.result(), timeout=180)
    finally:
        with contextlib.suppress(Exception):
            await handle.cancel()
    status = await experiment_status(client, plan.service)
    events = [(e.kind, e.text) for e in status.events]
    assert result.state == ExperimentState.ROLLED_FORWARD, (result, events)
    assert result.winner == "canary", (result, events)
    out = [i for i, (kind, text) in enumerate(events) if kind == "out"]
    end = [i for i, (kind, _) in enumerate(events) if kind == "end"]
    assert out and end and out[0] < end[0], events
    assert "canary-b taken out" in events[out[0]][1]
    # The flag gives every user the winner, and both services evaluate it so.
    read = await asyncio.to_thread(flag.get_shares, VARIANTS)
    assert read.shares == {"stable": 0, "canary": 100, "canary-b": 0}
    assert await split_near(stack, read.shares, within=30)
