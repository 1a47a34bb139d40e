"""Schedules and freezes on the real dev server: a Temporal Schedule starts a rollout, a
second start while it runs is skipped and says so; a freeze holds a real rollout's shift."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.client import (
    Client,
    ScheduleIntervalSpec,
    ScheduleSpec,
    WorkflowExecutionStatus,
)

import devstack
from activities.routers.haproxy import HAProxyRuntime
from client import operations, schedules
from client.freezes import calendar_freezes
from plans import RolloutState
from plans.governance.freezes import FreezeRequest
from plans.governance.windows import zone
from plans.runtime.inputs import ScheduledRollout
from starter import governance
from tests.integration.conftest import fast_plan
from tests.integration.test_status import rollout

pytestmark = pytest.mark.integration

STAGES = [
    {"name": "twenty", "weight": 20, "bake": "6s", "check_every": "2s"},
    {"name": "full", "weight": 100, "bake": "6s", "check_every": "2s"},
]


async def eventually(check: Callable[[], Awaitable[Any]], what: str, limit_s: float = 90) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what`` after the bound."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while loop.time() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.5)
    raise AssertionError(f"never happened: {what}")


async def test_a_schedule_starts_a_rollout_and_skips_while_it_runs(
    stack: devstack.StackInfo, client: Client, router: HAProxyRuntime
) -> None:
    plan = fast_plan(
        stack,
        [{"name": "twenty", "weight": 20, "bake": "1h", "check_every": "2s"}],
    )
    scheduled = ScheduledRollout(plan=plan, task_queue=stack.task_queue)
    # Every 20 s: the first start begins the rollout, the next finds it still running.
    spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=20))])
    schedule_id = await schedules.create(client, scheduled, spec, once=False)
    handle = client.get_schedule_handle(schedule_id)
    try:
        listed = [e.id async for e in await client.list_schedules()]
        assert schedule_id in listed or listed == []  # visibility may lag behind the create

        async def rolling() -> bool:
            try:
                status = await operations.status(client, plan.service)
            except Exception:
                return False
            return status.state == RolloutState.BAKING

        await eventually(rolling, "the scheduled rollout bakes at 20%")

        async def skipped() -> str:
            described = await handle.describe()
            for action in described.info.recent_actions:
                run = client.get_workflow_handle(
                    action.action.workflow_id, run_id=action.action.first_execution_run_id
                )
                if (await run.describe()).status != WorkflowExecutionStatus.COMPLETED:
                    continue
                outcome = await run.result()
                if outcome.startswith("skipped"):
                    return str(outcome)
            return ""

        outcome = await eventually(skipped, "a second scheduled start is skipped", 120)
        assert f"a rollout of {plan.service} is already running" in outcome
    finally:
        await handle.delete()
        await client.get_workflow_handle(plan.workflow_id).signal(
            "rollback", {"by": "test", "reason": "done"}
        )
        with pytest.raises(Exception):  # noqa: B017 - it ends rolled back, as asked
            await asyncio.wait_for(
                client.get_workflow_handle(plan.workflow_id).result(), timeout=60
            )


async def test_a_freeze_holds_a_running_rollouts_next_shift(
    stack: devstack.StackInfo, client: Client, router: HAProxyRuntime
) -> None:
    plan = fast_plan(stack, STAGES)
    now = datetime.now(UTC)
    freeze = await governance.add_freeze(
        client,
        FreezeRequest(
            service=plan.service,
            start=now + timedelta(seconds=3),
            end=now + timedelta(seconds=25),
            reason="integration freeze",
            by="test",
        ),
        stack.task_queue,
    )
    try:
        assert freeze.id in [f.id for f in await calendar_freezes(client)]
        handle = await operations.start_rollout(client, plan, stack.task_queue)

        async def held() -> Any:
            status = await operations.status(client, plan.service)
            return status if status.state == RolloutState.WAITING_FOR_WINDOW else None

        waiting = await eventually(held, "the rollout waits for the freeze to end")
        assert "integration freeze" in waiting.window_hold
        assert waiting.canary_weight == 20
        result = await asyncio.wait_for(handle.result(), timeout=120)
        assert result.state == RolloutState.PROMOTED
        final = await operations.status(client, plan.service)
        full = next(
            e.at for e in final.events if e.text.startswith("stage 2/2") and "started" in e.text
        )
        assert full >= freeze.end
    finally:
        await governance.remove_freeze(client, freeze.id, stack.task_queue)
    assert freeze.id not in [f.id for f in await calendar_freezes(client)]


async def test_the_cli_adds_lists_and_removes_freezes_and_schedules(
    stack: devstack.StackInfo, client: Client, tmp_path: Path
) -> None:
    service = f"cli-{uuid.uuid4().hex[:6]}"
    code, out, err, _ = await rollout(
        stack,
        "freeze", "add", "--service", service, "--until", "2030-01-01T00:00",
        "--tz", "Europe/Berlin", "--reason", "cli freeze",
    )  # fmt: skip
    assert code == 0, err
    freeze_id = out.split()[2]
    code, out, err, _ = await rollout(stack, "freeze", "list")
    assert code == 0 and freeze_id in out and "cli freeze" in out, out + err
    code, out, err, _ = await rollout(stack, "freeze", "remove", freeze_id)
    assert code == 0 and "removed" in out, err
    code, out, err, _ = await rollout(stack, "freeze", "remove", freeze_id)
    assert code == 1 and f"no freeze {freeze_id!r}" in err

    plan = fast_plan(stack, STAGES).model_copy(update={"service": service})
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan.model_dump(mode="json", exclude_none=True)))
    code, out, err, _ = await rollout(
        stack, "schedule", str(path), "--cron", "0 15 * * TUE", "--tz", "Europe/Berlin"
    )
    assert code == 0 and "first start" in out, err
    schedule_id = out.split()[1].rstrip(";")
    described = await client.get_schedule_handle(schedule_id).describe()
    assert described.schedule.spec.time_zone_name == "Europe/Berlin"
    upcoming = described.info.next_action_times[0].astimezone(zone("Europe/Berlin"))
    assert (upcoming.weekday(), upcoming.hour, upcoming.minute) == (1, 15, 0)

    async def listed() -> bool:
        code, out, _, _ = await rollout(stack, "schedule", "list")
        return code == 0 and schedule_id in out

    await eventually(listed, "the schedule is listed", 60)
    code, out, err, _ = await rollout(stack, "schedule", "delete", schedule_id)
    assert code == 0 and "deleted" in out, err
    code, out, err, _ = await rollout(stack, "schedule", str(path), "--cron", "0 15 * *")
    assert code == 1 and "five fields" in err
