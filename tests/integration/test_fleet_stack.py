"""A release across four targets on the real stack: one HAProxy backend per target."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError

import devstack
from activities.routers.haproxy import HAProxyRuntime
from client import releases
from devstack.fleet import DEFAULT_TARGETS, FleetStack, fleet_plan, load_fleet
from plans import HAProxyRouter, TrafficSplit
from plans.release_plan import parse_release_plan
from plans.runtime.release import ReleaseResult, ReleaseState, TargetState
from tests.stack.conftest import real_stack
from tests.status_cli import flat, rollout_status, status_json

pytestmark = pytest.mark.integration
RELEASE_WAIT_S = 300.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.StackInfo]:
    with real_stack(tmp_path_factory.mktemp("fleet"), targets=DEFAULT_TARGETS) as info:
        yield info


@pytest.fixture(scope="module")
def fleet(stack: devstack.StackInfo) -> FleetStack:
    return load_fleet(Path(stack.dir))


def runtime(fleet: FleetStack, target: str) -> HAProxyRuntime:
    return HAProxyRuntime(HAProxyRouter(runtime_api=fleet.haproxy_admin_tcp, backend=target))


@pytest.fixture
def healthy(fleet: FleetStack) -> Iterator[None]:
    """Every backend on stable and every canary healthy, before and after each test."""
    reset(fleet)
    yield
    reset(fleet)


def reset(fleet: FleetStack) -> None:
    for name, parts in fleet.targets.items():
        httpx.post(parts.canary_url + "fault", json={"error_rate": 0, "latency_ms": 0}, timeout=5)
        runtime(fleet, name).set_split("stable", "canary", TrafficSplit.canary_percent(0))


async def answered_by(parts_url: str, requests: int = 30) -> dict[str, int]:
    counts: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=5.0) as http:
        for _ in range(requests):
            version = (await http.get(parts_url)).headers.get("X-Version", "none")
            counts[version] = counts.get(version, 0) + 1
    return counts


async def run_release(client: Client, stack: devstack.StackInfo, plan: dict) -> ReleaseResult:
    fleet_plan_ = parse_release_plan(plan)
    handle = await releases.start_release(client, fleet_plan_, stack.task_queue)
    try:
        raw = await asyncio.wait_for(handle.result(), RELEASE_WAIT_S)
    except WorkflowFailureError as failure:
        details = getattr(failure.cause, "details", None)
        assert details, failure
        return ReleaseResult.model_validate(details[0])
    return ReleaseResult.model_validate(raw)


async def test_a_four_target_release_promotes_every_backend(
    client: Client, stack: devstack.StackInfo, fleet: FleetStack, healthy: None
) -> None:
    result = await run_release(client, stack, fleet_plan(fleet))
    assert result.state == ReleaseState.PROMOTED, result
    for name, parts in fleet.targets.items():
        split = runtime(fleet, name).get_split("stable", "canary")
        assert (split.canary_weight, split.stable_weight) == (100, 0), name
        assert await answered_by(parts.app_url) == {"canary": 30}, name
    status = await releases.release_status(client, "demo")
    started = {n: r.started_at for n, r in status.targets.items()}
    ended = {n: r.ended_at for n, r in status.targets.items()}
    assert ended["staging"] <= started["eu"]  # type: ignore[operator]
    assert ended["eu"] <= min(started["us-west"], started["us-east"])  # type: ignore[operator,type-var]


async def test_a_faulty_target_halts_the_release_and_leaves_the_others(
    client: Client, stack: devstack.StackInfo, fleet: FleetStack, healthy: None
) -> None:
    east = fleet.targets["us-east"]
    httpx.post(east.canary_url + "fault", json={"error_rate": 0.5, "latency_ms": 0}, timeout=5)
    result = await run_release(client, stack, fleet_plan(fleet))
    assert result.state == ReleaseState.HALTED, result
    assert result.failed_target == "us-east"
    assert result.targets["us-east"] == TargetState.ROLLED_BACK
    assert runtime(fleet, "us-east").get_split("stable", "canary").canary_weight == 0
    assert await answered_by(east.app_url) == {"stable": 30}
    for name in ("staging", "eu"):
        assert result.targets[name] == TargetState.PROMOTED
        assert runtime(fleet, name).get_split("stable", "canary").canary_weight == 100


async def test_rollback_all_puts_every_region_back_on_stable(
    client: Client,
    stack: devstack.StackInfo,
    fleet: FleetStack,
    healthy: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    east = fleet.targets["us-east"]
    httpx.post(east.canary_url + "fault", json={"error_rate": 0.5, "latency_ms": 0}, timeout=5)
    result = await run_release(client, stack, fleet_plan(fleet, on_target_failure="rollback_all"))
    assert result.state == ReleaseState.ROLLED_BACK, result
    assert result.failed_target == "us-east"
    for name, parts in fleet.targets.items():
        split = runtime(fleet, name).get_split("stable", "canary")
        assert (split.canary_weight, split.stable_weight) == (0, 100), name
        assert await answered_by(parts.app_url) == {"stable": 30}, name
    assert result.targets["staging"] == TargetState.RESTORED
    assert result.targets["eu"] == TargetState.RESTORED
    # The target's own rollout was promoted; its status shows the release's restore.
    code, shown = await status_json(stack, monkeypatch, capsys, "demo", "--target", "staging")
    assert code == 0 and shown["state"] == "promoted"
    assert shown["asked"]["split"]["canary_weight"] == 100
    assert shown["traffic"]["routes"]["canary_weight"] == 0, shown["traffic"]
    [restore] = shown["traffic"]["restores"]
    assert restore["workflow_id"] == "rollout-demo-staging-restore" and restore["done"] is True
    assert shown["traffic"]["todo"] == ""
    code, printed = await rollout_status(stack, monkeypatch, capsys, "demo", "--target", "staging")
    text = flat(printed)
    assert code == 0 and "promoted, then put back on stable" in text, text
    assert "Traffic: routes canary 0% now" in text and "| last asked canary 100%" in text
    assert "Restored: the release put stable back through rollout-demo-staging-restore" in text
