"""Abort, retry, deadlines, the audit trail and bounded history, on the time-skipping server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from client.operations import CommandRefused, send_command, start_rollout
from plans import CommandKind, GateOutcome, OperatorCommand, RolloutState
from tests.workflow.conftest import IGNORES_MISSING_DATA, Doubles, make_plan, skip, verdicts
from tests.workflow.test_rollout_workflow import rolled_back, settle, status_of, until


async def test_abort_restores_stable_and_ends_as_aborted(env, worker, doubles: Doubles) -> None:
    plan = make_plan()
    handle = await start_rollout(env.client, plan, worker)
    await until(handle, lambda s: s.stage_index == 1 and s.state == RolloutState.BAKING, env)
    record = await send_command(
        env.client, plan.service, OperatorCommand(kind=CommandKind.ABORT, by="kim", reason="freeze")
    )
    assert record.accepted
    result = await settle(env, handle)
    assert result.state == RolloutState.ABORTED
    assert result.reason == "aborted by kim: freeze"
    assert doubles.shifts == [5, 25, 0]


async def test_deadline_pauses_a_stage_that_cannot_progress_and_retry_rechecks(
    env, worker, doubles: Doubles
) -> None:
    doubles.judge = lambda n, check: verdicts(check, GateOutcome.INCONCLUSIVE, None)
    plan = make_plan(
        stages=[
            {
                "name": "a",
                "weight": 10,
                "bake": "1h",
                "check_every": "10m",
                "progress_deadline": "2h",
            },
            {"name": "b", "weight": 100, "bake": "10m", "check_every": "10m"},
        ],
        notify={"webhook_url_env": "ROLLOUT_TEST_WEBHOOK"},
        gates=[IGNORES_MISSING_DATA],
    )
    handle = await start_rollout(env.client, plan, worker)
    with pytest.raises(CommandRefused, match="retry: only a rollout paused by its gates"):
        await send_command(env.client, plan.service, OperatorCommand(kind=CommandKind.RETRY))
    paused = await until(
        handle, lambda s: s.state == RolloutState.PAUSED, env, step=timedelta(minutes=10)
    )
    assert 2 * 3600 <= paused.bake_elapsed_s <= 2 * 3600 + 600
    assert any("deadline" in e.text for e in paused.events)
    assert any("made no progress within its deadline 2h" in n for n in doubles.notes)
    # Data is back; retry checks at once and the stage finishes.
    doubles.judge = lambda n, check: verdicts(check, GateOutcome.PASS)
    checks = len(doubles.checks)
    record = await send_command(
        env.client, plan.service, OperatorCommand(kind=CommandKind.RETRY, by="ana")
    )
    assert record.accepted
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED
    assert doubles.checks[checks] == 10  # the retried check ran at the stage's weight


async def test_deadline_can_roll_back(env, worker, doubles: Doubles) -> None:
    doubles.judge = lambda n, check: verdicts(check, GateOutcome.INCONCLUSIVE, None)
    plan = make_plan(
        stages=[
            {
                "name": "a",
                "weight": 10,
                "bake": "1h",
                "check_every": "10m",
                "progress_deadline": "90m",
                "on_deadline": "rollback",
            },
        ],
        gates=[IGNORES_MISSING_DATA],
    )
    handle = await start_rollout(env.client, plan, worker)
    message = await rolled_back(env, handle)
    assert "deadline 1h30m" in message
    assert doubles.shifts == [10, 0]


async def test_paused_time_does_not_count_toward_the_deadline(env, worker, doubles) -> None:
    plan = make_plan(
        stages=[
            {
                "name": "a",
                "weight": 10,
                "bake": "1h",
                "check_every": "10m",
                "progress_deadline": "90m",
                "on_deadline": "rollback",
            },
            {"name": "b", "weight": 100, "bake": "10m", "check_every": "10m"},
        ]
    )
    handle = await start_rollout(env.client, plan, worker)
    await skip(env, timedelta(minutes=20))
    await handle.signal("pause", {"by": "ana", "reason": "lunch"})
    await skip(env, timedelta(hours=3))
    await handle.signal("resume", {"by": "ana", "reason": "back"})
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED


async def test_audit_trail_has_stages_verdict_changes_and_commands(env, worker, doubles) -> None:
    outcomes = {3: GateOutcome.FAIL}
    doubles.judge = lambda n, check: verdicts(check, outcomes.get(n, GateOutcome.PASS), 0.01)
    plan = make_plan(
        stages=[
            {"name": "a", "weight": 10, "bake": "1h", "check_every": "10m"},
            {"name": "b", "weight": 100, "bake": "10m", "check_every": "10m"},
        ]
    )
    handle = await start_rollout(env.client, plan, worker)
    await skip(env, timedelta(minutes=15))
    await handle.signal("resume", {"by": "x", "reason": "nothing to resume"})
    await settle(env, handle)
    final = await status_of(handle)
    kinds = [e.kind for e in final.events]
    texts = [e.text for e in final.events]
    assert kinds.count("stage") == 4  # two stages, each started and passed
    assert [t.split(":")[1].split()[0] for t in texts if t.startswith("error-rate")] == [
        "pass",
        "fail",
        "pass",
    ]
    assert texts[-1] == "promoted: all stages passed"
    assert final.commands[0].accepted is False and final.commands[0].kind == "resume"


async def test_no_command_is_lost_around_continue_as_new(env, worker, doubles) -> None:
    plan = make_plan(
        stages=[
            {"name": "a", "weight": 10, "bake": "6h", "check_every": "10m"},
            {"name": "b", "weight": 100, "bake": "10m", "check_every": "10m"},
        ]
    )
    handle = await start_rollout(env.client, plan, worker, checks_per_run=1)
    for i in range(12):
        kind = "pause" if i % 2 == 0 else "resume"
        await handle.signal(kind, {"by": f"op{i}", "reason": f"step {i}"})
        await skip(env, timedelta(minutes=7))
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED
    final = await status_of(handle)
    assert [c.by for c in final.commands] == [f"op{i}" for i in range(12)]
    assert all(c.accepted for c in final.commands)
    assert final.run_count > 5


async def run_chain(client: Client, workflow_id: str, first_run: str) -> list[int]:
    """Event counts of every run of a continued-as-new chain, oldest first."""
    counts = []
    run_id: str | None = first_run
    while run_id:
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
        events = [e async for e in handle.fetch_history_events()]
        counts.append(len(events))
        last = events[-1]
        run_id = None
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return counts


SAFE_STAGES = [
    {"name": "canary-5", "weight": 5, "bake": "1d", "check_every": "5m"},
    {"name": "canary-10", "weight": 10, "bake": "1d", "check_every": "5m"},
    {"name": "canary-25", "weight": 25, "bake": "1d", "check_every": "5m"},
    {"name": "canary-50", "weight": 50, "bake": "1d", "check_every": "5m"},
    {"name": "canary-75", "weight": 75, "bake": "1d", "check_every": "5m"},
    {"name": "full", "weight": 100, "bake": "2d", "check_every": "5m"},
]


async def test_safe_seven_day_plan_keeps_every_run_under_10000_events(env, worker, doubles):
    plan = make_plan(stages=SAFE_STAGES)
    handle = await start_rollout(env.client, plan, worker)
    result = await settle(env, handle, step=timedelta(hours=6))
    assert result.state == RolloutState.PROMOTED
    assert len(doubles.checks) == 7 * 288
    assert doubles.shifts == [5, 10, 25, 50, 75, 100]
    counts = await run_chain(env.client, handle.id, handle.first_execution_run_id or "")
    assert len(counts) >= 2 and max(counts) < 10_000
    assert sum(counts) / len(doubles.checks) <= 8
