"""Release windows on the time-skipping server: waiting, days, zones, DST, rollback, override."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.worker import Worker

from activities.freezes import FreezeReader
from activities.identity import verify_command
from client.freezes import calendar_freezes
from client.operations import CommandRefused, send_command, start_rollout
from plans import CommandKind, GateOutcome, OperatorCommand, Plan, RolloutError, RolloutState
from plans.governance.freezes import Freeze, FreezeRequest
from plans.governance.windows import zone
from starter import governance
from tests.workflow.conftest import Doubles, make_plan, skip, verdicts
from tests.workflow.test_rollout_workflow import finish, rolled_back, settle, status_of, until
from workflows.freezes import FreezeCalendar

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


async def replays_elsewhere(handle: Any, folder: Path, keep_as: str = "") -> None:
    """Replay the run's history in another process whose machine zone and zone path differ:
    the window arithmetic must come out the same, from the pinned tzdata alone.

    With ROLLOUT_CAPTURE_HISTORIES=1 the history is also kept in tests/histories/ as
    ``keep_as``.json, for the replay test of every later version of the workflow.
    """
    history = await handle.fetch_history()
    path = folder / "history.json"
    path.write_text(history.to_json())
    if keep_as and os.environ.get("ROLLOUT_CAPTURE_HISTORIES") == "1":
        kept = Path(__file__).parent.parent / "histories" / f"{keep_as}.json"
        kept.write_text(history.to_json())
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
    await replays_elsewhere(handle, tmp_path, "windows_dst")


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
    first = await status_of(handle)
    (line,) = [e.text for e in first.events if e.kind == "override"]
    assert line == "shift to 'canary' let through its release window by lee: security fix"
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


def freeze(service: str, start: datetime, end: datetime, reason: str = "change freeze") -> Freeze:
    return Freeze(
        id=f"f{int(start.timestamp())}",
        service=service,
        start=start,
        end=end,
        reason=reason,
        by="ops",
        added_at=start,
    )


async def test_a_freeze_that_starts_mid_rollout_holds_the_next_increase(
    env, worker, doubles: Doubles, tmp_path: Path
) -> None:
    now = await env.get_current_time()
    plan = make_plan(stages=TWO_STAGES)  # no windows: freezes hold every plan
    # The first stage bakes an hour; the freeze starts after the rollout did, before that.
    frozen = freeze(plan.service, now + timedelta(minutes=30), now + timedelta(hours=5))
    doubles.freezes.append(frozen)
    handle = await start_rollout(env.client, plan, worker)
    waiting = await until(
        handle,
        lambda s: s.state == RolloutState.WAITING_FOR_WINDOW,
        env,
        step=timedelta(minutes=10),
    )
    assert doubles.shifts == [10]
    assert "change freeze" in waiting.window_hold
    assert waiting.window_opens_at == frozen.end
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED
    times = starts(await status_of(handle))
    assert times[0] < frozen.start and times[1] >= frozen.end
    # Checks went on at 10% while frozen.
    assert doubles.checks.count(10) >= 24
    await replays_elsewhere(handle, tmp_path, "windows_freeze")


async def test_a_freeze_added_while_waiting_for_a_window_holds_after_it_opens(
    env, worker, doubles: Doubles
) -> None:
    now = await env.get_current_time()
    plan = make_plan(stages=TWO_STAGES, windows={"allow": [daily_window(now, 3)]})
    handle = await start_rollout(env.client, plan, worker)
    waiting = await until(handle, lambda s: s.state == RolloutState.WAITING_FOR_WINDOW, env)
    assert waiting.window_opens_at is not None
    # All services frozen from before the opening until a day later.
    frozen = freeze("*", now, waiting.window_opens_at + timedelta(days=1))
    doubles.freezes.append(frozen)
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED
    times = starts(await status_of(handle))
    assert times[0] >= frozen.end
    assert plan.windows is not None and plan.windows.denial(times[0]) == ""


async def test_override_lets_one_increase_through_a_freeze(env, worker, doubles) -> None:
    now = await env.get_current_time()
    plan = make_plan(stages=TWO_STAGES)
    doubles.freezes.append(freeze(plan.service, now, now + timedelta(days=3)))
    handle = await start_rollout(env.client, plan, worker)
    await until(handle, lambda s: s.state == RolloutState.WAITING_FOR_WINDOW, env)
    await send_command(
        env.client,
        plan.service,
        OperatorCommand(kind=CommandKind.OVERRIDE, by="sam", reason="incident fix"),
    )
    await until(
        handle,
        lambda s: s.canary_weight == 10 and s.state == RolloutState.WAITING_FOR_WINDOW,
        env,
        step=timedelta(minutes=10),
    )
    assert doubles.shifts == [10]
    result = await settle(env, handle, step=timedelta(hours=2))
    assert result.state == RolloutState.PROMOTED
    final = await status_of(handle)
    # The audit names the freeze that held the rollout, not a window.
    (line,) = [e.text for e in final.events if e.kind == "override"]
    held = f"shift to 'canary' let through a freeze (freeze {doubles.freezes[0].id} "
    assert line.startswith(held)
    assert line.endswith("by sam: incident fix") and "window" not in line


async def test_the_freeze_calendar_adds_lists_and_removes(env) -> None:
    queue = f"freezes-{uuid.uuid4().hex[:6]}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[FreezeCalendar],
        activities=[*FreezeReader(env.client).activities(), verify_command],
    ):
        now = await env.get_current_time()
        request = FreezeRequest(
            service="checkout",
            start=now,
            end=now + timedelta(days=2),
            reason="year end",
            by="kim",
        )
        added = await governance.add_freeze(env.client, request, queue)
        everyone = await governance.add_freeze(
            env.client, request.model_copy(update={"service": "*"}), queue
        )
        listed = await calendar_freezes(env.client)
        assert [f.id for f in listed] == [added.id, everyone.id]
        read = await FreezeReader(env.client).freezes_for("payments")
        assert [f.id for f in read] == [everyone.id]
        with pytest.raises(RolloutError, match="already ended"):
            await governance.add_freeze(
                env.client,
                request.model_copy(
                    update={"end": now - timedelta(hours=1), "start": now - timedelta(hours=2)}
                ),
                queue,
            )
        with pytest.raises(RolloutError, match="no freeze 'nope'"):
            await governance.remove_freeze(env.client, "nope", queue)
        removed = await governance.remove_freeze(env.client, added.id, queue)
        assert removed.reason == "year end"
        assert [f.id for f in await calendar_freezes(env.client)] == [everyone.id]
        # Ended freezes are dropped.
        await skip(env, timedelta(days=3))
        assert await calendar_freezes(env.client) == []


async def test_jitter_delays_the_increase_within_its_bound(env, worker, doubles) -> None:
    now = await env.get_current_time()
    plan = make_plan(stages=TWO_STAGES, windows={"allow": [daily_window(now, 4)], "jitter": "30m"})
    handle = await start_rollout(env.client, plan, worker)
    waiting = await until(handle, lambda s: s.state == RolloutState.WAITING_FOR_WINDOW, env)
    assert plan.windows is not None and waiting.window_opens_at is not None
    opening = plan.windows.next_opening(now)
    assert opening is not None
    assert opening <= waiting.window_opens_at <= opening + timedelta(minutes=30)
    result = await settle(env, handle, step=timedelta(minutes=5))
    assert result.state == RolloutState.PROMOTED
    first = starts(await status_of(handle))[0]
    assert waiting.window_opens_at <= first <= opening + timedelta(minutes=31)


async def test_a_blue_green_flip_waits_for_its_window_and_the_preview_does_not(
    env, worker, doubles
) -> None:
    now = await env.get_current_time()
    plan = make_plan(
        stages=[],
        strategy="blue_green",
        gates=[],
        blue_green={
            "preview": "10m",
            "post_promotion_for": "30m",
            "check_every": "5m",
            "auto_promote_after": "20m",
        },
        windows={"allow": [daily_window(now, 4)]},
    )
    handle = await start_rollout(env.client, plan, worker)
    waiting = await until(
        handle,
        lambda s: s.state == RolloutState.WAITING_FOR_WINDOW,
        env,
        step=timedelta(minutes=5),
    )
    assert doubles.shifts == [0]  # green previewed at once
    result = await settle(env, handle, step=timedelta(minutes=5))
    assert result.state == RolloutState.PROMOTED
    assert doubles.shifts == [0, 100]
    times = starts(await status_of(handle))
    assert plan.windows is not None and waiting.window_opens_at is not None
    assert times[0] < waiting.window_opens_at <= times[1]
    assert plan.windows.denial(times[1]) == ""


async def test_removing_a_freeze_lets_the_increase_go_at_once(env, worker, doubles) -> None:
    now = await env.get_current_time()
    plan = make_plan(stages=TWO_STAGES)
    doubles.freezes.append(freeze(plan.service, now, now + timedelta(days=10)))
    handle = await start_rollout(env.client, plan, worker)
    await until(handle, lambda s: s.state == RolloutState.WAITING_FOR_WINDOW, env)
    doubles.freezes.clear()  # removed: the next hourly read of the calendar finds none
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED
    times = starts(await status_of(handle))
    assert times[0] <= now + timedelta(hours=1, minutes=11)


async def test_a_freeze_removed_between_stages_lets_the_next_shift_go(env, worker, doubles) -> None:
    now = await env.get_current_time()
    plan = make_plan(stages=TWO_STAGES)
    doubles.freezes.append(
        freeze(plan.service, now + timedelta(minutes=20), now + timedelta(days=9))
    )
    handle = await start_rollout(env.client, plan, worker)
    waiting = await until(
        handle,
        lambda s: s.state == RolloutState.WAITING_FOR_WINDOW,
        env,
        step=timedelta(minutes=10),
    )
    assert waiting.canary_weight == 10
    doubles.freezes.clear()
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED
    times = starts(await status_of(handle))
    assert times[1] <= waiting.as_of + timedelta(hours=1, minutes=11)


async def test_the_promotion_after_a_last_stage_below_100_waits_too(env, worker, doubles) -> None:
    now = await env.get_current_time()
    plan = make_plan(
        stages=[{"name": "half", "weight": 50, "bake": "3h", "check_every": "10m"}],
        windows={"allow": [daily_window(now, 1)]},
    )
    handle = await start_rollout(env.client, plan, worker)
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED
    assert doubles.shifts == [50, 100]
    final = await status_of(handle)
    promoted = next(e.at for e in final.events if e.kind == "end")
    times = starts(final)
    assert plan.windows is not None
    assert plan.windows.denial(times[0]) == "" and plan.windows.denial(promoted) == ""
    assert promoted - times[0] > timedelta(hours=20)  # the 3h bake outlasts the 2h window


async def test_a_promote_command_waits_for_the_window(env, worker, doubles) -> None:
    now = await env.get_current_time()
    plan = make_plan(stages=TWO_STAGES, windows={"allow": [daily_window(now, -1)]})
    handle = await start_rollout(env.client, plan, worker)
    await until(handle, lambda s: s.canary_weight == 10, env)
    await skip(env, timedelta(hours=2))  # the window has closed
    await send_command(env.client, plan.service, OperatorCommand(kind=CommandKind.PROMOTE))
    waiting = await until(handle, lambda s: s.state == RolloutState.WAITING_FOR_WINDOW, env)
    assert doubles.shifts == [10]
    assert waiting.window_opens_at is not None
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED and doubles.shifts == [10, 100]


async def test_override_as_a_signal_is_recorded_with_who_and_why(env, worker, doubles) -> None:
    now = await env.get_current_time()
    plan = make_plan(stages=TWO_STAGES, windows={"allow": [daily_window(now, 6)]})
    handle = await start_rollout(env.client, plan, worker)
    await until(handle, lambda s: s.state == RolloutState.WAITING_FOR_WINDOW, env)
    await handle.signal("override", {"by": "lee", "reason": "from the UI"})
    shifted = await until(handle, lambda s: s.canary_weight == 10, env)
    record = shifted.commands[-1]
    assert (record.kind, record.by, record.reason, record.via) == (
        "override",
        "lee",
        "from the UI",
        "signal",
    )
    assert any(e.kind == "override" and "lee: from the UI" in e.text for e in shifted.events)
    await finish(env, handle)
