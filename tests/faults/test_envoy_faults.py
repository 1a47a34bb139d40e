"""Envoy's bad day: its admin API away during a shift and a rollback, and a restart mid-bake.

Envoy's admin runtime layer lives in memory, so a restarted Envoy routes by its config again
(100% stable); the rollout's read-back at every check must see that and put the split back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError

import devstack
from activities.routers.envoy import EnvoyRuntime
from client import operations
from demo.configs import ENVOY_RUNTIME_PREFIX
from plans import EnvoyRouter, Plan, RolloutResult, RolloutState, TrafficSplit, parse_plan
from tests.faults.chaos import AdminGate, Webhook, baking, eventually, own_worker, until
from tests.faults.restart import restart
from tests.faults.test_router_outage import pending_shift
from tests.stack.conftest import real_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(stack_dir: Path) -> Iterator[devstack.StackInfo]:
    """The real stack with Envoy as its router."""
    with real_stack(stack_dir, router="envoy") as info:
        yield info


def envoy(stack: devstack.StackInfo) -> EnvoyRuntime:
    assert stack.envoy_admin is not None
    spec = EnvoyRouter(admin=stack.envoy_admin, runtime_key_prefix=ENVOY_RUNTIME_PREFIX)
    return EnvoyRuntime(spec)


@pytest.fixture(autouse=True)
def envoy_back_to_stable(stack: devstack.StackInfo) -> Iterator[None]:
    yield
    envoy(stack).set_split("stable", "canary", TrafficSplit.canary_percent(0))


def envoy_plan(
    stack: devstack.StackInfo, stages: list[dict[str, Any]], admin: str = "", **extra: Any
) -> Plan:
    """A plan on the stack's Envoy with a real gate on the demo service's 5xx share (3 s)."""
    data: dict[str, Any] = {
        "service": f"fault-envoy-{uuid.uuid4().hex[:8]}",
        "version": "v2",
        "stable": "stable",
        "canary": "canary",
        "router": {
            "kind": "envoy",
            "admin": admin or stack.envoy_admin,
            "runtime_key_prefix": ENVOY_RUNTIME_PREFIX,
            "timeout": "1s",
        },
        "metrics": {"kind": "prometheus", "url": stack.prometheus_url, "timeout": "2s"},
        "gates": [
            {
                "name": "error-rate",
                "preset": "demo-error-rate",
                "max": 0.05,
                "window": "3s",
                "min_samples": 5,
                "failure_limit": 2,
                # Right after a shift a 3 s rate has no data for a check or two.
                "inconclusive_limit": 20,
            }
        ],
        "stages": stages,
    }
    data.update(extra)
    return parse_plan(data)


async def canary_at(stack: devstack.StackInfo, percent: int) -> bool:
    split = await asyncio.to_thread(envoy(stack).get_split, "stable", "canary")
    return split == TrafficSplit.canary_percent(percent)


async def test_shift_retries_while_envoys_admin_is_away_and_goes_on_when_it_is_back(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    gate = AdminGate(stack.ports["envoy_admin"])
    admin = f"http://127.0.0.1:{gate.port}"
    plan = envoy_plan(
        stack,
        [
            {"name": "a", "weight": 20, "bake": "3s", "check_every": "1s"},
            {"name": "b", "weight": 60, "bake": "3s", "check_every": "1s"},
        ],
        admin=admin,
    )
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    launched.append(plan.workflow_id)

    async def retried() -> bool:
        attempt, _ = await pending_shift(client, plan.workflow_id)
        return attempt >= 3

    try:
        await eventually(retried, 30, "the first shift to be retried twice")
        _, failure = await pending_shift(client, plan.workflow_id)
        assert f"nothing answers at {admin}" in failure, failure
        status = await operations.status(client, plan.service)
        assert status.state == RolloutState.SHIFTING and status.canary_weight == 0
        assert await canary_at(stack, 0)
        gate.open()
        result = await asyncio.wait_for(handle.result(), timeout=90)
    finally:
        gate.close()
    assert isinstance(result, RolloutResult) and result.state == RolloutState.PROMOTED
    assert await canary_at(stack, 100)


async def test_restore_keeps_retrying_while_envoys_admin_is_away_and_restores_once_back(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    gate = AdminGate(stack.ports["envoy_admin"])
    gate.open()
    webhook = Webhook()
    try:
        with webhook.serving():
            env = {
                "FAULTS_WEBHOOK_URL": webhook.url("/hooks/rollouts"),
                "ROLLOUT_PLAN_SECRETS": "FAULTS_WEBHOOK_URL",
            }
            with own_worker(stack, Path(stack.dir) / "logs", env) as worker:
                plan = envoy_plan(
                    stack,
                    [{"name": "a", "weight": 30, "bake": "10m", "check_every": "1s"}],
                    admin=f"http://127.0.0.1:{gate.port}",
                    notify={"webhook_url_env": "FAULTS_WEBHOOK_URL"},
                )
                handle = await operations.start_rollout(client, plan, worker.task_queue)
                launched.append(plan.workflow_id)
                await until(client, plan.service, baking(0), what="baking at 30%")
                gate.close()
                await handle.signal("rollback", {"by": "ana", "reason": "pager"})

                async def alerted() -> bool:
                    return any("still retrying" in text for text in webhook.texts())

                await eventually(alerted, 60, "a notification that the restore keeps failing")
                alert = next(t for t in webhook.texts() if "still retrying" in t)
                assert "after 5 attempts" in alert and plan.service in alert
                status = await operations.status(client, plan.service)
                assert status.state == RolloutState.ROLLING_BACK
                # Envoy itself still routes the stage's split while its admin is away.
                assert await canary_at(stack, 30)
                gate.open()
                with pytest.raises(WorkflowFailureError):
                    await asyncio.wait_for(handle.result(), timeout=120)
                final = await operations.status(client, plan.service)
    finally:
        gate.close()
    assert await canary_at(stack, 0)
    assert final.state == RolloutState.ROLLED_BACK


async def test_a_restarted_envoy_is_put_back_within_one_check_and_the_rollout_promotes(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    plan = envoy_plan(
        stack,
        [
            {"name": "ten", "weight": 10, "bake": "12s", "check_every": "1s"},
            {"name": "full", "weight": 100, "bake": "3s", "check_every": "1s"},
        ],
    )
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    launched.append(plan.workflow_id)
    await until(client, plan.service, lambda s: baking(0)(s) and s.checks >= 2)
    assert await canary_at(stack, 10)
    # Envoy's admin runtime layer is memory only: it comes back routing 100% stable.
    await asyncio.to_thread(restart, Path(stack.dir), "envoy")
    checks_at_restart = (await operations.status(client, plan.service)).checks

    async def back_at_ten() -> bool:
        return await canary_at(stack, 10)

    await eventually(back_at_ten, 30, "Envoy back at the stage's 10%")
    repaired = await operations.status(client, plan.service)
    result = await asyncio.wait_for(handle.result(), timeout=90)
    # Put back at the first check after the restart (one more may have been in flight).
    assert repaired.checks - checks_at_restart <= 2, (checks_at_restart, repaired.checks)
    assert isinstance(result, RolloutResult) and result.state == RolloutState.PROMOTED
    assert await canary_at(stack, 100)
    final = await operations.status(client, plan.service)
    drift = [e.text for e in final.events if e.kind == "drift"]
    assert drift and "routes canary 0%" in drift[0] and "set canary 10%" in drift[0], drift
    assert "envoy routing.app" in drift[0], drift
