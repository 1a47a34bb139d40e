"""Blue-green on the time-skipping server: preview, one flip, post-promotion, blue kept ready."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from client.operations import send_command, start_rollout
from plans import CommandKind, GateOutcome, OperatorCommand, RolloutState
from tests.workflow.conftest import Doubles, make_plan, verdicts
from tests.workflow.test_rollout_workflow import rolled_back, settle, until

PREVIEW_GATE = {
    "name": "preview-errors",
    "query": 'sum(rate(errors{server="$canary"}[1m]))',
    "max": 0.05,
    "failure_limit": 2,
}


def blue_green(**section: Any) -> Any:
    """A blue-green plan: 10 minutes of preview, 30 of post-promotion, checks every 5."""
    return make_plan(
        stages=[],
        strategy="blue_green",
        gates=[PREVIEW_GATE],
        blue_green={
            "preview": "10m",
            "post_promotion_for": "30m",
            "check_every": "5m",
            **section,
        },
    )


async def test_auto_promoted_green_gets_everything_in_one_flip(env, worker, doubles) -> None:
    plan = blue_green(auto_promote_after="20m", keep_previous_for="1h")
    handle = await start_rollout(env.client, plan, worker)
    result = await settle(env, handle, step=timedelta(minutes=5))
    assert result.state == RolloutState.PROMOTED
    # 0% during the preview, then 100% at once: no step in between, none for keep-blue.
    assert doubles.shifts == [0, 100]
    assert 0 in doubles.checks and 100 in doubles.checks
    assert "blue was kept ready until now and may be retired" in result.reason


async def test_preview_waits_for_approval_then_post_promotion_gates_judge(
    env, worker, doubles: Doubles
) -> None:
    plan = blue_green()
    handle = await start_rollout(env.client, plan, worker)
    waiting = await until(handle, lambda s: s.state == RolloutState.AWAITING_APPROVAL, env)
    assert waiting.stage_name == "preview" and waiting.canary_weight == 0
    assert doubles.shifts == [0]
    record = await send_command(
        env.client, plan.service, OperatorCommand(kind=CommandKind.APPROVE, by="ana")
    )
    assert record.accepted
    result = await settle(env, handle, step=timedelta(minutes=5))
    assert result.state == RolloutState.PROMOTED
    assert doubles.shifts == [0, 100]
    # No keep_previous_for: the run ends when post-promotion passes, with no retire note.
    assert "retired" not in result.reason


async def test_failing_post_promotion_gate_flips_back_to_blue(env, worker, doubles) -> None:
    def judge(n: int, check: Any) -> Any:
        failing = doubles.weight == 100
        return verdicts(check, GateOutcome.FAIL if failing else GateOutcome.PASS, 0.2)

    doubles.judge = judge
    plan = blue_green(auto_promote_after="10m", keep_previous_for="1h")
    handle = await start_rollout(env.client, plan, worker)
    failure = await rolled_back(env, handle)
    assert doubles.shifts == [0, 100, 0]
    assert "preview-errors" in failure


async def test_rollback_inside_keep_previous_for_is_one_flip_without_analysis(
    env, worker, doubles: Doubles
) -> None:
    plan = blue_green(auto_promote_after="10m", keep_previous_for="1d")
    handle = await start_rollout(env.client, plan, worker)
    kept = await until(handle, lambda s: s.stage_name == "keep-blue", env)
    assert kept.canary_weight == 100
    assert any("blue kept ready for 1d" in e.text for e in kept.events)
    checks = len(doubles.checks)
    record = await send_command(
        env.client,
        plan.service,
        OperatorCommand(kind=CommandKind.ROLLBACK, by="sam", reason="orders look wrong"),
    )
    assert record.accepted
    failure = await rolled_back(env, handle)
    assert doubles.shifts == [0, 100, 0]
    assert len(doubles.checks) == checks  # the flip back asked no gate
    assert "rollback requested by sam: orders look wrong" in failure


async def test_preview_nobody_promoted_ends_aborted(env, worker, doubles: Doubles) -> None:
    plan = blue_green(auto_abort_after="2h")
    handle = await start_rollout(env.client, plan, worker)
    result = await settle(env, handle, step=timedelta(minutes=10))
    assert result.state == RolloutState.ABORTED
    assert "did not complete within 2h: nobody promoted it" in result.reason
    assert doubles.shifts == [0, 0]  # green never had live traffic; blue re-asserted
    assert 100 not in doubles.checks
