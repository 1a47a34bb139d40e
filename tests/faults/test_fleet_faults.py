"""Faults during a release across four targets on the real stack.

- the worker is killed (SIGKILL) mid-wave and replaced: no wave repeated or skipped, no
  target's rollout started twice, and the release promotes;
- an operator rolls the release back while its last wave is shifting: every region ends
  on stable;
- one target's router is down: that target retries its shift, the others go on, and the
  release waits for it and promotes once the router is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter

import devstack
from activities.routers.haproxy import HAProxyRuntime
from client import releases
from devstack.fleet import DEFAULT_TARGETS, FleetStack, fleet_plan, load_fleet
from plans import CommandKind, HAProxyRouter, OperatorCommand, TrafficSplit
from plans.release_plan import parse_release_plan
from plans.runtime.release import ReleaseCommand, ReleaseResult, ReleaseState, TargetState
from tests.faults.chaos import AdminGate, kill9
from tests.faults.restart import restart
from tests.stack.conftest import real_stack

pytestmark = pytest.mark.integration
WAIT_S = 300.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.StackInfo]:
    with real_stack(tmp_path_factory.mktemp("fleet-faults"), targets=DEFAULT_TARGETS) as info:
        yield info


@pytest.fixture(scope="module")
async def client(stack: devstack.StackInfo) -> AsyncIterator[Client]:
    yield await Client.connect(
        stack.temporal_address, namespace=stack.namespace, data_converter=pydantic_data_converter
    )


@pytest.fixture
def fleet(stack: devstack.StackInfo) -> FleetStack:
    found = load_fleet(Path(stack.dir))
    for name in found.targets:
        runtime(found, name).set_split("stable", "canary", TrafficSplit.canary_percent(0))
    return found


def runtime(fleet: FleetStack, target: str) -> HAProxyRuntime:
    return HAProxyRuntime(HAProxyRouter(runtime_api=fleet.haproxy_admin_tcp, backend=target))


async def until_target(client: Client, target: str, state: TargetState) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while loop.time() < deadline:
        status = await releases.release_status(client, "demo")
        if status.targets[target].state == state:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{target} never became {state}")


async def outcome(handle) -> ReleaseResult:
    try:
        return ReleaseResult.model_validate(await asyncio.wait_for(handle.result(), WAIT_S))
    except WorkflowFailureError as failure:
        return ReleaseResult.model_validate(failure.cause.details[0])  # type: ignore[union-attr]


async def child_starts(client: Client, release_id: str) -> list[str]:
    """Every child start the release's runs recorded, across continue-as-new."""
    started = []
    handle = client.get_workflow_handle(release_id)
    description = await handle.describe()
    first = description.raw_description.workflow_execution_info.first_run_id or None
    handle = client.get_workflow_handle(release_id, run_id=first)
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            started.append(
                event.start_child_workflow_execution_initiated_event_attributes.workflow_id
            )
    return started


async def test_worker_killed_mid_wave_neither_repeats_nor_skips(
    stack: devstack.StackInfo, client: Client, fleet: FleetStack
) -> None:
    plan = parse_release_plan(fleet_plan(fleet))
    handle = await releases.start_release(client, plan, stack.task_queue)
    await until_target(client, "eu", TargetState.RUNNING)
    directory = Path(stack.dir)
    old = await asyncio.to_thread(kill9, directory, "worker")
    await asyncio.sleep(2.0)
    info = await asyncio.to_thread(restart, directory, "worker")
    assert info.pids["worker"] != old
    result = await outcome(handle)
    assert result.state == ReleaseState.PROMOTED, result
    starts = await child_starts(client, plan.workflow_id)
    assert sorted(starts) == sorted(plan.child_id(t) for t in DEFAULT_TARGETS)
    for name in DEFAULT_TARGETS:
        assert runtime(fleet, name).get_split("stable", "canary").canary_weight == 100


async def test_operator_rollback_while_the_last_wave_shifts(
    stack: devstack.StackInfo, client: Client, fleet: FleetStack
) -> None:
    plan = parse_release_plan(fleet_plan(fleet))
    handle = await releases.start_release(client, plan, stack.task_queue)
    await until_target(client, "us-east", TargetState.RUNNING)
    record = await releases.send_release_command(
        client,
        plan.service,
        ReleaseCommand(
            command=OperatorCommand(kind=CommandKind.ROLLBACK, by="ops", reason="incident")
        ),
    )
    assert record.accepted
    result = await outcome(handle)
    assert result.state == ReleaseState.ROLLED_BACK, result
    for name in DEFAULT_TARGETS:
        split = runtime(fleet, name).get_split("stable", "canary")
        assert (split.canary_weight, split.stable_weight) == (0, 100), name
    assert result.targets["staging"] == TargetState.RESTORED
    assert result.targets["eu"] == TargetState.RESTORED


async def test_one_targets_router_down_waits_for_it_while_the_others_go_on(
    stack: devstack.StackInfo, client: Client, fleet: FleetStack
) -> None:
    admin_port = int(fleet.haproxy_admin_tcp.rsplit(":", 1)[1])
    data = fleet_plan(fleet)
    with AdminGate(admin_port) as gate:
        gate.close()  # us-west's admin API is away from the start
        data["targets"]["us-west"]["router"] = {
            "kind": "haproxy",
            "runtime_api": gate.runtime_api,
            "backend": "us-west",
        }
        plan = parse_release_plan(data)
        handle = await releases.start_release(client, plan, stack.task_queue)
        await until_target(client, "us-east", TargetState.PROMOTED)
        status = await releases.release_status(client, plan.service)
        assert status.state == ReleaseState.RUNNING, status
        assert status.targets["us-west"].state == TargetState.RUNNING
        assert runtime(fleet, "us-west").get_split("stable", "canary").canary_weight == 0
        child = client.get_workflow_handle(plan.child_id("us-west"))
        pending = (await child.describe()).raw_description.pending_activities
        assert any(a.attempt > 1 for a in pending), pending  # the shift is being retried
        gate.open()
        result = await outcome(handle)
    assert result.state == ReleaseState.PROMOTED, result
    for name in DEFAULT_TARGETS:
        assert runtime(fleet, name).get_split("stable", "canary").canary_weight == 100, name
