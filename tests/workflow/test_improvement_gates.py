"""A stage whose gate asks for a gain (``direction: improve``): it waits for the gain while it
bakes, moves on once it is shown, and pauses when the bake ends without it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from client.operations import start_rollout
from plans import GateCheck, GateOutcome, Plan, RolloutState, Verdict
from tests.workflow.conftest import Doubles, make_plan, verdicts
from tests.workflow.test_rollout_workflow import finish, settle, status_of, until

GATES = [
    {
        "name": "errors-down",
        "preset": "demo-error-rate",
        "kind": "sequential",
        "direction": "improve",
        "by": "5%",
    }
]
STAGES = [
    {"name": "canary", "weight": 10, "bake": "30m", "check_every": "5m", "gates": ["errors-down"]},
    {"name": "full", "weight": 100, "bake": "10m", "check_every": "5m", "gates": []},
]
NOT_SHOWN = "improvement of 5% not shown: rate x0.97 [x0.93, x1.01] vs target x0.95"


def not_shown(check: GateCheck) -> list[Verdict]:
    """What the judge says of a gain it cannot show yet: inconclusive, its effect measured."""
    return [
        Verdict(
            gate=g.name,
            outcome=GateOutcome.INCONCLUSIVE,
            value=0.0097,
            threshold=g.describe_threshold(),
            reason=NOT_SHOWN,
            at=datetime.now(UTC),
            kind="sequential",
            effect=0.97,
            effect_low=0.93,
            effect_high=1.01,
        )
        for g in check.gates
    ]


def plan(**overrides: Any) -> Plan:
    fields: dict[str, Any] = {"gates": GATES, "stages": STAGES}
    return make_plan(notify={"webhook_url_env": "ROLLOUT_TEST_WEBHOOK"}, **(fields | overrides))


async def test_the_stage_waits_for_the_gain_past_the_inconclusive_limit(
    env, worker, doubles: Doubles
) -> None:
    # Not shown for the first five checks (25 minutes, past the limit of 3), then shown.
    doubles.judge = lambda n, check: (
        not_shown(check) if n <= 5 else verdicts(check, GateOutcome.PASS)
    )
    handle = await start_rollout(env.client, plan(), worker)
    waiting = await until(handle, lambda s: s.checks >= 5, env)
    assert waiting.state == RolloutState.BAKING and not waiting.paused
    assert waiting.stage_index == 0 and waiting.inconclusive_streaks["errors-down"] == 0
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED
    assert doubles.shifts == [10, 100]
    assert not any("not shown" in note for note in doubles.notes)


async def test_the_stage_pauses_when_its_bake_ends_without_the_gain(
    env, worker, doubles: Doubles
) -> None:
    doubles.judge = lambda n, check: not_shown(check)
    handle = await start_rollout(env.client, plan(), worker)
    paused = await until(handle, lambda s: s.state == RolloutState.PAUSED, env)
    assert paused.pause_cause == "gates" and paused.stage_index == 0
    # Paused by the check at the end of the 30-minute bake (every 5 minutes from its start:
    # the sixth), not by the third check, where an inconclusive gate's limit would.
    assert paused.checks == 6, paused.checks
    said = [note for note in doubles.notes if "not shown" in note]
    assert said and f"errors-down: {NOT_SHOWN}, when the bake ended" in said[0]
    await env.sleep(timedelta(hours=1))
    assert (await status_of(handle)).state == RolloutState.PAUSED
    assert doubles.shifts == [10]
    await finish(env, handle)


async def test_with_max_bake_the_stage_bakes_on_for_the_gain(env, worker, doubles: Doubles) -> None:
    # Not shown at the end of the 30-minute bake (6 checks), shown at the ninth (45m).
    doubles.judge = lambda n, check: (
        not_shown(check) if n <= 8 else verdicts(check, GateOutcome.PASS)
    )
    stages = [{**STAGES[0], "max_bake": "1h"}, STAGES[1]]
    handle = await start_rollout(env.client, plan(stages=stages), worker)
    extended = await until(
        handle, lambda s: any(e.kind == "bake" for e in s.events), env, step=timedelta(minutes=5)
    )
    assert extended.state == RolloutState.BAKING and not extended.paused
    assert any("errors-down is inconclusive" in e.text for e in extended.events)
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED and doubles.shifts == [10, 100]
    assert not any("not shown" in note for note in doubles.notes)


async def test_with_max_bake_a_gain_never_shown_pauses_at_max_bake(
    env, worker, doubles: Doubles
) -> None:
    doubles.judge = lambda n, check: not_shown(check)
    stages = [{**STAGES[0], "max_bake": "1h"}, STAGES[1]]
    handle = await start_rollout(env.client, plan(stages=stages), worker)
    paused = await until(handle, lambda s: s.state == RolloutState.PAUSED, env)
    assert paused.checks >= 12 and paused.stage_index == 0  # 1 hour of checks every 5m
    assert any("max_bake 1h" in note for note in doubles.notes)
    await finish(env, handle)
