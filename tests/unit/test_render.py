"""The terminal views of a rollout: what `status`, `--watch` and `--follow` print."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console

from plans import CommandRecord, GateOutcome, RolloutState, RolloutStatus, Verdict
from starter import render

AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def status(**changes: object) -> RolloutStatus:
    base = RolloutStatus(
        service="checkout",
        version="v2",
        state=RolloutState.PAUSED,
        stage_index=1,
        stage_name="early",
        stage_count=3,
        stages=["canary:5", "early:25", "full:100"],
        canary_weight=25,
        paused=True,
        bake_total_s=3600,
        bake_elapsed_s=1800,
        bake_remaining_s=1800,
        awaiting_approval=False,
        verdicts={
            "error-rate": Verdict(
                gate="error-rate",
                outcome=GateOutcome.FAIL,
                value=0.041,
                threshold="<= 0.01",
                reason="0.041 > max 0.01",
                at=AT,
            )
        },
        failure_streaks={"error-rate": 2},
        commands=[
            CommandRecord(
                kind="pause", by="ana", reason="db load", at=AT, accepted=True, via="update"
            )
        ],
    )
    return base.model_copy(update=changes)


def text_of(renderable: object) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_status_view_shows_stage_weight_bake_verdicts_and_commands() -> None:
    text = text_of(render.status_view(status()))
    assert "checkout v2  paused  canary 25%  stage 2/3 'early'" in text
    assert "bake 30m/1h (30m left)" in text and "clock stopped while paused" in text
    assert "canary 5% -> [early 25%] -> full 100%" in text
    assert "error-rate" in text and "0.041" in text and "<= 0.01" in text
    assert "ana" in text and "db load" in text


def test_finished_rollout_shows_its_reason() -> None:
    done = status(
        state=RolloutState.ROLLED_BACK, paused=False, reason="gate failed", canary_weight=0
    )
    text = text_of(render.headline(done))
    assert "rolled_back" in text and "reason: gate failed" in text


def test_progress_line_is_one_line_with_the_numbers() -> None:
    line = render.progress_line(status(state=RolloutState.BAKING, paused=False))
    assert "\n" not in line
    assert line.startswith("baking")
    assert "stage 2/3 early" in line and "canary 25%" in line and "bake left 30m" in line
    assert "error-rate=0.041 fail" in line
