"""A web gate on the real stack: the demo's own task outcomes, read over HTTP with JSONPath."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from temporalio.client import Client

import devstack
from activities.routers.haproxy import HAProxyRuntime
from client import operations
from demo.example_plans import TASK_SUCCESS, TASKS_QUERY
from plans import Plan, RolloutState, parse_plan
from tests.integration.conftest import failed_with_faulty_canary
from tests.stack_plans import error_rate_plan

pytestmark = pytest.mark.integration


def web_plan(stack: devstack.StackInfo, stages: list[dict[str, Any]]) -> Plan:
    """A plan whose one gate is the demo plan's web gate, on a short window."""
    assert stack.tasks_url is not None
    data = error_rate_plan(stack, f"web-{uuid.uuid4().hex[:6]}", stages, window="5s")
    data["sources"] = {"tasks": {"kind": "web", "url": stack.tasks_url + TASKS_QUERY}}
    data["gates"] = [
        {
            **TASK_SUCCESS,
            "window": "5s",
            "min_samples": 10,
            "failure_limit": 2,
            "inconclusive_limit": 10,
        }
    ]
    return parse_plan(data)


async def test_the_demo_serves_task_outcomes_per_version(stack: devstack.StackInfo) -> None:
    assert stack.tasks_url is not None
    async with httpx.AsyncClient(timeout=5.0) as http:
        answer = (await http.get(stack.tasks_url, params={"version": "stable"})).json()
    assert answer["version"] == "stable" and answer["tasks"] > 0
    assert 0.0 <= answer["success_rate"] <= 1.0


async def test_a_healthy_canary_passes_its_web_gate_and_is_promoted(
    stack: devstack.StackInfo, client: Client, router: HAProxyRuntime
) -> None:
    plan = web_plan(stack, [{"name": "thirty", "weight": 30, "bake": "8s", "check_every": "2s"}])
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    result = await asyncio.wait_for(handle.result(), timeout=90)
    assert result.state == RolloutState.PROMOTED
    status = await operations.status(client, plan.service)
    verdict = status.verdicts["task-success"]
    assert verdict.outcome.value == "pass", verdict.reason
    assert verdict.canary == pytest.approx(1.0) and verdict.stable == pytest.approx(1.0)
    assert (verdict.canary_samples or 0) >= 10 and (verdict.stable_samples or 0) >= 10
    assert "version=canary" in verdict.query


async def test_a_canary_failing_tasks_is_rolled_back_by_its_web_gate(
    stack: devstack.StackInfo, client: Client, router: HAProxyRuntime
) -> None:
    plan = web_plan(stack, [{"name": "half", "weight": 50, "bake": "2m", "check_every": "2s"}])
    cause = await failed_with_faulty_canary(stack, client, plan, 0.5)
    assert cause.type == "RolledBack"
    assert "task-success" in cause.message and "2 check(s) in a row" in cause.message
    split = await asyncio.to_thread(router.get_split, "stable", "canary")
    assert (split.stable_weight, split.canary_weight) == (100, 0)
    status = await operations.status(client, plan.service)
    verdict = status.verdicts["task-success"]
    assert verdict.canary is not None and verdict.canary < 0.9
