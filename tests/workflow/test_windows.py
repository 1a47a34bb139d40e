"""Release windows on the time-skipping server: waiting, days, zones, DST, rollback, override."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.api.sdk.v1 import WorkflowMetadata

from plans import CommandKind, GateOutcome, OperatorCommand, Plan, RolloutState
from plans.windows import zone
from starter.operations import CommandRefused, send_command, start_rollout
from tests.workflow.conftest import Doubles, make_plan, skip, verdicts
from tests.workflow.test_rollout_workflow import finish, rolled_back, settle, status_of, until

TWO_STAGES = [
    {"name": "canary", "weight": 10, "bake": "1h", "check_every": "10m"},
    {"name": "full", "weight": 100, "bake": "30m", "check_every": "10m"},
]


REPLAY = """
import json, sys
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from workflows.rollout import RolloutWorkflow
import asyncio
history = WorkflowHistory.from_json("elsewhere", json.load(open(sys.argv[1])))
replayer = Replayer(workflows=[RolloutWorkflow], data_converter=pydantic_data_converter)
result = asyncio.run(replayer.replay_workflow(history, raise_on_replay_failure=False))
print("REPLAYED" if result.replay_failure is None else f"FAILED {result.replay_failure}")
"""


async def replays_elsewhere(handle: Any, folder: Path) -> None:
    """Replay the run's history in another process whose machine zone and zone path differ:
    the window arithmetic must come out the same, from the pinned tzdata alone."""
    history = await handle.fetch_history()
    path = folder / "history.json"
    path.write_text(history.to_json())
    machine = {**os.environ, "TZ": "Pacific/Chatham", "PYTHONTZPATH": str(folder)}
    done = subprocess.run(
        [sys.executable, "-c", REPLAY, str(path)],
        env=machine,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent.parent.parent,
    )
    assert done.stdout.strip() == "REPLAYED", done.stdout + done.stderr


def starts(final: Any) -> list[datetime]:
    """When each stage's weight was set, from the audit trail."""
    return [e.at for e in final.events if e.kind == "stage" and e.text.endswith("started")]


def daily_window(now: datetime, hours_ahead: int, zone: str = "UTC") -> dict[str, Any]:
    """A window every day at ``now + hours_ahead`` (whole hours, in UTC), open for 2h."""
    at = (now + timedelta(hours=hours_ahead)).astimezone(UTC)
    return {
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "start": f"{at.hour:02d}:00",
        "duration": "2h",
        "timezone": zone,
        "reason": "daily slot",
    }


async def test_increases_wait_for_allow_windows_across_days(
    env, worker, doubles: Doubles, tmp_path: Path
) -> None:
    now = await env.get_current_time()
    plan = make_plan(
        stages=[
            {"name": "canary", "weight": 10, "bake": "3h", "check_every": "10m"},
            {"name": "full", "weight": 100, "bake": "30m", "check_every": "10m"},
        ],
        windows={"allow": [daily_window(now, 3)]},
    )
    handle = await start_rollout(env.client, plan, worker)
    waiting = await until(handle, lambda s: s.state == RolloutState.WAITING_FOR_WINDOW, env)
    assert doubles.shifts == []
    assert waiting.window_hold == "outside every allow window"
    assert waiting.window_opens_at is not None and waiting.window_opens_at > now
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED
    assert doubles.shifts == [10, 100]
    final = await status_of(handle)
    assert plan.windows is not None
    times = starts(final)
    assert len(times) == 2
    for at in times:
        assert plan.windows.denial(at) == "", at
    # The first stage bakes past its window's end: the second increase waits a day.
    assert times[1] - times[0] > timedelta(hours=20)
    # Checks went on while it waited at 10% (every 10 minutes, about a day of them).
    assert doubles.checks.count(10) > 100
    await replays_elsewhere(handle, tmp_path)


async def test_details_say_what_the_rollout_waits_for(env, worker, doubles: Doubles) -> None:
    now = await env.get_current_time()
    plan = make_plan(stages=TWO_STAGES, windows={"allow": [daily_window(now, 5, "Europe/Berlin")]})
    handle = await start_rollout(env.client, plan, worker)
    waiting = await until(handle, lambda s: s.state == RolloutState.WAITING_FOR_WINDOW, env)
    assert waiting.window_opens_at is not None
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    local = waiting.window_opens_at.astimezone(zone("Europe/Berlin"))
    assert f"waiting for window: opens {local:%a %Y-%m-%d %H:%M} Europe/Berlin" in (
        metadata.current_details
    )
    await finish(env, handle)


async def test_the_same_local_hour_before_and_after_a_dst_change(
    env, worker, doubles: Doubles, tmp_path: Path
) -> None:
    now = await env.get_current_time()
    year = now.year + 1 if now.month > 3 or (now.month == 3 and now.day > 20) else now.year
    plan = make_plan(
        stages=TWO_STAGES,
        windows={
            "allow": [
                {
                    "rrule": "FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=27,28;BYHOUR=12",
                    "duration": "1h",
                    "timezone": "Europe/Berlin",
                    "reason": "around summer time",
                }
            ]
        },
    )
    handle = await start_rollout(env.client, plan, worker)
    result = await settle(env, handle, step=timedelta(days=5))
    assert result.state == RolloutState.PROMOTED
    times = starts(await status_of(handle))
    # 12:00 in Berlin is 11:00 UTC in winter time and 10:00 UTC in summer time.
    expected = {
        datetime(year, 3, 27, 11, tzinfo=UTC),
        datetime(year, 3, 28, 10, tzinfo=UTC),
    }
    assert plan.windows is not None
    assert all(plan.windows.denial(t) == "" for t in times)
    # Each stage started within the window's first minutes on one of the two days.
    dst = datetime(year, 3, 28, 1, tzinfo=UTC)
    assert sorted(t.replace(minute=0, second=0, microsecond=0) for t in times) == sorted(expected)
    assert times[0] < dst < times[1]
    await replays_elsewhere(handle, tmp_path)


async def test_rollback_is_never_held_by_a_deny_window(env, worker, doubles: Doubles) -> None:
    now = await env.get_current_time()
    deny = {**daily_window(now, -1), "duration": "20h", "reason": "change freeze"}
    plan = make_plan(stages=TWO_STAGES, windows={"deny": [deny]})
    # The deny window covers now, so the first shift waits; open it by override.
    handle = await start_rollout(env.client, plan, worker)
    await until(handle, lambda s: s.state == RolloutState.WAITING_FOR_WINDOW, env)
    await send_command(
        env.client,
        plan.service,
        OperatorCommand(kind=CommandKind.OVERRIDE, by="kim", reason="hotfix"),
    )
    await until(handle, lambda s: s.state == RolloutState.BAKING, env)
    assert doubles.shifts == [10]
    # Inside the deny window a failing gate still rolls back at once.
    doubles.judge = lambda n, check: verdicts(check, GateOutcome.FAIL, 1.0)
    message = await rolled_back(env, handle)
    assert "error-rate" in message
    assert doubles.shifts == [10, 0]
    final = await status_of(handle)
    assert any(e.kind == "override" and "kim: hotfix" in e.text for e in final.events)


async def test_an_operator_rollback_ends_a_wait_for_a_window(env, worker, doubles: Doubles) -> None:
    now = await env.get_current_time()
    plan = make_plan(stages=TWO_STAGES, windows={"allow": [daily_window(now, 6)]})
    handle = await start_rollout(env.client, plan, worker)
    await until(handle, lambda s: s.state == RolloutState.WAITING_FOR_WINDOW, env)
    # As a signal: nothing was shifted yet, so the run ends in the task that takes it.
    await handle.signal("rollback", {"by": "ana", "reason": ""})
    message = await rolled_back(env, handle)
    assert "rollback requested by ana" in message
    assert 10 not in doubles.shifts


async def test_override_lets_one_increase_through_and_is_told(env, worker, doubles) -> None:
    now = await env.get_current_time()
    plan = _override_plan(now)
    handle = await start_rollout(env.client, plan, worker)
    await until(handle, lambda s: s.state == RolloutState.WAITING_FOR_WINDOW, env)
    record = await send_command(
        env.client,
        plan.service,
        OperatorCommand(kind=CommandKind.OVERRIDE, by="lee", reason="security fix"),
    )
    assert record.accepted
    # The first shift goes now; the second waits for the window again.
    second = await until(
        handle,
        lambda s: (
            s.state == RolloutState.WAITING_FOR_WINDOW
            and s.stage_index == 0
            and s.canary_weight == 10
        ),
        env,
        step=timedelta(minutes=10),
    )
    assert doubles.shifts == [10]
    assert second.window_opens_at is not None
    assert any("overrides its release window by lee: security fix" in n for n in doubles.notes)
    await skip(env, timedelta(minutes=1))
    assert doubles.shifts == [10]
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED
    assert doubles.shifts == [10, 100]


def _override_plan(now: datetime) -> Plan:
    return make_plan(
        stages=TWO_STAGES,
        windows={"allow": [daily_window(now, 6)]},
        notify={"webhook_url_env": "ROLLOUT_TEST_WEBHOOK"},
    )


async def test_plans_without_windows_refuse_an_override(env, worker, doubles) -> None:
    plan = make_plan(stages=TWO_STAGES)
    await start_rollout(env.client, plan, worker)
    try:
        await send_command(env.client, plan.service, OperatorCommand(kind=CommandKind.OVERRIDE))
    except CommandRefused as refused:
        assert "no release window or freeze holds this rollout" in str(refused)
    else:
        raise AssertionError("an override without windows was taken")
