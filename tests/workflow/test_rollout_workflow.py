"""RolloutWorkflow on the time-skipping server: days of baking run in seconds."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client.operations import AlreadyRolling, CommandRefused, send_command, start_rollout
from plans import (
    CommandKind,
    Compensation,
    GateOutcome,
    OperatorCommand,
    RolloutResult,
    RolloutState,
    RolloutStatus,
    ShiftRequest,
    TrafficSplit,
)
from plans.runtime.progress import RolloutProgress, TargetHold
from tests.workflow.conftest import IGNORES_MISSING_DATA, Doubles, make_plan, skip, verdicts
from workflows.rollout import RolloutWorkflow


async def status_of(handle: WorkflowHandle[object, object]) -> RolloutStatus:
    answer: RolloutStatus = await handle.query("status", result_type=RolloutStatus)
    return answer


async def until(
    handle: WorkflowHandle[object, object],
    predicate,
    env: WorkflowEnvironment,
    step: timedelta = timedelta(minutes=1),
    limit: int = 2000,
) -> RolloutStatus:
    """Skip time in small steps until the status satisfies the predicate."""
    for _ in range(limit):
        current = await status_of(handle)
        if predicate(current):
            return current
        await skip(env, step)
    raise AssertionError(f"condition never met; last status {current}")


async def settle(
    env: WorkflowEnvironment,
    handle: WorkflowHandle[object, object],
    step: timedelta = timedelta(minutes=10),
) -> RolloutResult:
    """Skip time until the run closes, then return its result (or raise its failure).

    Explicit sleeps keep the test server's clock moving even after earlier tests locked
    and unlocked time skipping many times.
    """
    for _ in range(10_000):
        description = await env.client.get_workflow_handle(handle.id).describe()
        if description.status != WorkflowExecutionStatus.RUNNING:
            return await env.client.get_workflow_handle(
                handle.id, result_type=RolloutResult
            ).result()
        await skip(env, step)
    raise AssertionError("the rollout never ended")


async def finish(env: WorkflowEnvironment, handle: WorkflowHandle[object, object]) -> None:
    """Cancel and wait, so no rollback is left pending once this test's worker stops."""
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await settle(env, handle)


async def rolled_back(env: WorkflowEnvironment, handle: WorkflowHandle[object, object]) -> str:
    with pytest.raises(WorkflowFailureError) as failure:
        await settle(env, handle)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "RolledBack"
    return cause.message


async def test_multi_day_plan_completes_in_seconds(env, worker, doubles: Doubles) -> None:
    plan = make_plan(
        stages=[
            {"name": "alpha", "weight": 10, "bake": "2d", "check_every": "1h"},
            {"name": "beta", "weight": 50, "bake": "2d", "check_every": "1h"},
            {"name": "full", "weight": 100, "bake": "3d", "check_every": "1h"},
        ]
    )
    handle = await start_rollout(env.client, plan, worker)
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED
    assert doubles.shifts == [10, 50, 100]
    # One check per hour of every stage's bake, each at the weight of its stage.
    assert doubles.checks == [10] * 48 + [50] * 48 + [100] * 72
    final = await status_of(handle)
    assert final.state == RolloutState.PROMOTED and final.canary_weight == 100


async def test_stage_below_100_ends_with_promotion_to_full(env, worker, doubles) -> None:
    plan = make_plan(stages=[{"name": "a", "weight": 20, "bake": "30m", "check_every": "10m"}])
    handle = await start_rollout(env.client, plan, worker)
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED
    assert doubles.shifts == [20, 100]


async def test_failing_gate_rolls_back_after_failure_limit(env, worker, doubles) -> None:
    # Passes the first stage, then fails from the 8th check on (3 in a row = sustained).
    doubles.judge = lambda n, check: verdicts(
        check, GateOutcome.FAIL if n >= 8 else GateOutcome.PASS, 0.2 if n >= 8 else 0.01
    )
    handle = await start_rollout(env.client, make_plan(), worker)
    message = await rolled_back(env, handle)
    assert "error-rate" in message and "3 check(s) in a row" in message and "0.2" in message
    assert len(doubles.checks) == 10
    assert doubles.shifts == [5, 25, 0]
    final = await status_of(handle)
    assert final.state == RolloutState.ROLLED_BACK
    assert final.canary_weight == 0
    assert final.failure_streaks["error-rate"] == 3
    assert final.verdicts["error-rate"].outcome == GateOutcome.FAIL


async def test_a_pass_between_failures_resets_the_streak(env, worker, doubles) -> None:
    outcomes = [GateOutcome.FAIL, GateOutcome.FAIL, GateOutcome.PASS] * 100
    doubles.judge = lambda n, check: verdicts(check, outcomes[n - 1])
    plan = make_plan(
        stages=[
            {"name": "a", "weight": 10, "bake": "1h", "check_every": "10m"},
            {"name": "b", "weight": 100, "bake": "1h", "check_every": "10m"},
        ]
    )
    handle = await start_rollout(env.client, plan, worker)
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED


async def test_compensations_run_in_reverse_order(env, worker, doubles) -> None:
    """Records pushed earlier (another router) are undone after the later ones."""
    plan = make_plan()
    other = plan.router.model_copy(update={"runtime_api": "/tmp/other-haproxy.sock"})
    earlier = Compensation(
        shift=ShiftRequest(
            router=other, stable="stable", canary="canary", split=TrafficSplit.canary_percent(0)
        ),
        description="restore 100% stable on the other router",
    )
    progress = RolloutProgress(target=TargetHold(compensations=[earlier]))
    doubles.judge = lambda n, check: verdicts(check, GateOutcome.FAIL, 0.9)
    handle = await start_rollout(env.client, plan, worker, progress=progress)
    await rolled_back(env, handle)
    # Forward: the plan's router to 5%. Back: plan's router first, then the earlier record.
    assert doubles.routers == ["/tmp/haproxy.sock", "/tmp/haproxy.sock", "/tmp/other-haproxy.sock"]
    assert doubles.shifts == [5, 0, 0]


async def test_inconclusive_gate_never_advances(env, worker, doubles) -> None:
    doubles.judge = lambda n, check: verdicts(check, GateOutcome.INCONCLUSIVE, None)
    plan = make_plan(gates=[IGNORES_MISSING_DATA])
    handle = await start_rollout(env.client, plan, worker)
    current = await until(handle, lambda s: s.checks >= 30, env, step=timedelta(minutes=10))
    assert current.stage_index == 0 and current.canary_weight == 5
    assert current.state == RolloutState.BAKING
    assert doubles.shifts == [5]
    # Data returns: the stage advances on the next passing check.
    doubles.judge = lambda n, check: verdicts(check, GateOutcome.PASS)
    current = await until(handle, lambda s: s.stage_index >= 1, env, step=timedelta(minutes=10))
    assert doubles.shifts[:2] == [5, 25]
    await finish(env, handle)


async def test_inconclusive_limit_pauses_and_retry_rechecks(env, worker, doubles) -> None:
    doubles.judge = lambda n, check: verdicts(check, GateOutcome.INCONCLUSIVE, None)
    plan = make_plan(notify={"webhook_url_env": "ROLLOUT_TEST_WEBHOOK"})
    handle = await start_rollout(env.client, plan, worker)
    paused = await until(handle, lambda s: s.state == RolloutState.PAUSED, env)
    assert paused.checks == 3 and paused.pause_cause == "gates"
    assert any("inconclusive 3 check(s) in a row" in n for n in doubles.notes)
    await skip(env, timedelta(hours=2))
    assert (await status_of(handle)).state == RolloutState.PAUSED
    doubles.judge = lambda n, check: verdicts(check, GateOutcome.PASS)
    record = await send_command(
        env.client, plan.service, OperatorCommand(kind=CommandKind.RETRY, by="ana")
    )
    assert record.accepted
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED


async def test_pause_stops_the_bake_clock_but_not_the_checks(env, worker, doubles) -> None:
    plan = make_plan(
        stages=[
            {"name": "a", "weight": 10, "bake": "1h", "check_every": "10m"},
            {"name": "b", "weight": 100, "bake": "10m", "check_every": "10m"},
        ]
    )
    handle = await start_rollout(env.client, plan, worker)
    await skip(env, timedelta(minutes=30))
    await handle.signal("pause", {"by": "ana", "reason": "db load"})
    paused = await until(handle, lambda s: s.state == RolloutState.PAUSED, env)
    assert 29 * 60 <= paused.bake_elapsed_s <= 32 * 60
    checks_before = paused.checks
    await skip(env, timedelta(hours=5))
    still = await status_of(handle)
    assert still.state == RolloutState.PAUSED and still.stage_index == 0
    assert still.bake_elapsed_s == paused.bake_elapsed_s
    assert still.checks >= checks_before + 25  # gates still checked while paused
    record = next(c for c in still.commands if c.kind == "pause")
    assert (record.by, record.reason, record.accepted) == ("ana", "db load", True)
    await handle.signal("resume", {"by": "ana", "reason": "load is fine"})
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED
    assert doubles.shifts == [10, 100]


async def test_failing_gate_while_paused_still_rolls_back(env, worker, doubles) -> None:
    handle = await start_rollout(env.client, make_plan(), worker)
    await skip(env, timedelta(minutes=5))
    await handle.signal("pause", {"by": "ana", "reason": "watch"})
    await until(handle, lambda s: s.state == RolloutState.PAUSED, env)
    doubles.judge = lambda n, check: verdicts(check, GateOutcome.FAIL, 0.5)
    message = await rolled_back(env, handle)
    assert "error-rate" in message
    assert doubles.weight == 0


async def test_approval_waits_for_a_person(env, worker, doubles) -> None:
    plan = make_plan(
        stages=[
            {"name": "canary", "weight": 10, "bake": "1h", "check_every": "10m", "approval": True},
            {"name": "full", "weight": 100, "bake": "10m", "check_every": "10m"},
        ]
    )
    handle = await start_rollout(env.client, plan, worker)
    await skip(env, timedelta(minutes=20))
    with pytest.raises(CommandRefused, match=r"approve: stage 'canary' is still baking, 4\dm"):
        await send_command(env.client, plan.service, OperatorCommand(kind=CommandKind.APPROVE))
    waiting = await until(handle, lambda s: s.state == RolloutState.AWAITING_APPROVAL, env)
    await skip(env, timedelta(days=2))
    assert (await status_of(handle)).state == RolloutState.AWAITING_APPROVAL
    assert doubles.shifts == [10]
    assert waiting.awaiting_approval
    record = await send_command(
        env.client, plan.service, OperatorCommand(kind=CommandKind.APPROVE, by="lee", reason="ok")
    )
    assert record.accepted and record.by == "lee"
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED and doubles.shifts == [10, 100]


async def test_promote_skips_remaining_stages(env, worker, doubles) -> None:
    plan = make_plan()
    handle = await start_rollout(env.client, plan, worker)
    await skip(env, timedelta(minutes=15))
    await handle.signal("promote", {"by": "sam", "reason": "hotfix"})
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED
    assert result.reason == "promoted by sam: hotfix"
    assert doubles.shifts == [5, 100]


async def test_rollback_command_restores_stable(env, worker, doubles) -> None:
    plan = make_plan()
    handle = await start_rollout(env.client, plan, worker)
    await until(handle, lambda s: s.stage_index == 1 and s.canary_weight == 25, env)
    await handle.signal("rollback", {"by": "kim", "reason": "customer reports"})
    message = await rolled_back(env, handle)
    assert "kim" in message and "customer reports" in message
    assert doubles.shifts == [5, 25, 0]
    final = await status_of(handle)
    assert final.state == RolloutState.ROLLED_BACK and final.canary_weight == 0


async def test_cancellation_still_restores_traffic(env, worker, doubles) -> None:
    handle = await start_rollout(env.client, make_plan(), worker)
    await until(handle, lambda s: s.canary_weight == 25, env)
    await finish(env, handle)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    assert doubles.shifts == [5, 25, 0]


async def test_shift_retries_until_router_answers(env, worker, doubles) -> None:
    doubles.shift_failures = 3
    plan = make_plan(stages=[{"name": "all", "weight": 100, "bake": "10m", "check_every": "5m"}])
    handle = await start_rollout(env.client, plan, worker)
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED and doubles.shifts == [100]


async def test_duplicate_start_is_refused_naming_the_running_one(env, worker, doubles) -> None:
    plan = make_plan()
    handle = await start_rollout(env.client, plan, worker)
    with pytest.raises(AlreadyRolling, match=f"rollout-{plan.service}"):
        await start_rollout(env.client, plan, worker)
    # The test server cannot cancel a shift still in flight; the dev server can (integration).
    await until(handle, lambda s: s.state == RolloutState.BAKING, env)
    await finish(env, handle)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (CommandKind.RESUME, "resume: rollout is not paused"),
        (CommandKind.APPROVE, "approve: stage 'canary' does not ask for approval"),
    ],
)
async def test_commands_that_make_no_sense_are_refused(env, worker, doubles, kind, expected):
    plan = make_plan()
    handle = await start_rollout(env.client, plan, worker)
    await skip(env, timedelta(minutes=1))
    with pytest.raises(CommandRefused, match=expected):
        await send_command(env.client, plan.service, OperatorCommand(kind=kind, by="x"))
    # The same command as a signal is recorded as refused and changes nothing.
    await handle.signal(kind.value, {"by": "x", "reason": "try"})
    current = await until(handle, lambda s: len(s.commands) >= 1, env)
    assert current.commands[-1].accepted is False and current.commands[-1].note == expected
    assert current.state == RolloutState.BAKING
    await finish(env, handle)


async def test_commands_after_the_end_are_refused(env, worker, doubles) -> None:
    plan = make_plan(stages=[{"name": "all", "weight": 100, "bake": "10m", "check_every": "5m"}])
    handle = await start_rollout(env.client, plan, worker)
    await settle(env, handle)
    with pytest.raises(CommandRefused, match="has ended"):
        await send_command(env.client, plan.service, OperatorCommand(kind=CommandKind.ROLLBACK))


async def test_malformed_signal_body_is_recorded_and_ignored(env, worker, doubles) -> None:
    plan = make_plan()
    handle = await start_rollout(env.client, plan, worker)
    await until(handle, lambda s: s.state == RolloutState.BAKING, env)
    await handle.signal("pause", "not an object")
    await handle.signal("pause", {"by": ["list"], "reason": 3})
    await handle.signal("pause", {"who": "x", "why": "wrong fields"})
    current = await until(handle, lambda s: len(s.commands) >= 3, env)
    assert [c.accepted for c in current.commands] == [False, False, False]
    assert "JSON object" in current.commands[0].note
    assert current.state == RolloutState.BAKING
    await finish(env, handle)


async def test_continue_as_new_carries_the_whole_state(env, worker, doubles) -> None:
    plan = make_plan(
        stages=[
            {"name": "a", "weight": 10, "bake": "3h", "check_every": "10m"},
            {"name": "b", "weight": 100, "bake": "1h", "check_every": "10m"},
        ]
    )
    handle = await start_rollout(env.client, plan, worker, checks_per_run=4)
    await skip(env, timedelta(minutes=25))
    await handle.signal("pause", {"by": "ana", "reason": "overnight"})
    await skip(env, timedelta(hours=2))
    current = await status_of(handle)
    assert current.state == RolloutState.PAUSED and current.checks >= 12
    assert 24 * 60 <= current.bake_elapsed_s <= 26 * 60
    await handle.signal("resume", {"by": "ana", "reason": "morning"})
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED
    assert doubles.shifts == [10, 100]
    final = await status_of(handle)
    assert [c.kind for c in final.commands] == ["pause", "resume"]
    # The runs chained: the first run's id differs from the last one's.
    assert handle.result_run_id is not None
    latest = await env.client.get_workflow_handle(handle.id).describe()
    assert latest.run_id != handle.first_execution_run_id


async def test_signals_arrive_while_no_worker_runs(env, doubles) -> None:
    """Signals are accepted with no worker; the rollout acts on them once one runs."""
    plan = make_plan()
    handle = await start_rollout(env.client, plan, "no-worker-yet")
    await handle.signal("rollback", {"by": "ops", "reason": "abort early"})
    with ThreadPoolExecutor(4) as executor:
        async with Worker(
            env.client,
            task_queue="no-worker-yet",
            workflows=[RolloutWorkflow],
            activities=doubles.activities(),
            activity_executor=executor,
        ):
            message = await rolled_back(env, handle)
    assert "abort early" in message
    assert doubles.shifts == [5, 0]
    await asyncio.sleep(0)
