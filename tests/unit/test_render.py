"""The terminal views of a rollout: what `status`, `--watch` and `--follow` print."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from client.operations import HistoryLine, PendingActivity, TemporalRecords
from plans import CommandRecord, GateOutcome, RolloutState, RolloutStatus, Verdict
from plans.runtime.state import AuditEvent
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
    assert "rolled back" in text and "reason: gate failed" in text


def test_progress_line_is_one_line_with_the_numbers() -> None:
    line = render.progress_line(status(state=RolloutState.BAKING, paused=False))
    assert "\n" not in line
    assert line.startswith("baking")
    assert "stage 2/3 early" in line and "canary 25%" in line and "bake left 30m" in line
    assert "error-rate=0.041 fail" in line


def column(text: str, index: int) -> str:
    """One table column's cells joined: what a reader sees of it across wrapped lines."""
    return "".join(
        line.split("│")[index + 1].strip() for line in text.splitlines() if line.startswith("│")
    )


def test_gate_names_wrap_at_80_columns_instead_of_being_cut() -> None:
    long_name = "error-rate-statistical-vs-stable-checkout-eu-west"
    verdicts = {
        name: Verdict(
            gate=name,
            outcome=GateOutcome.FAIL,
            value=0.041,
            threshold="<= stable x1.5+0.1%",
            reason="canary 4.1% vs stable 0.2% (limit <= stable x1.5+0.1% = 0.4%), 435 vs 764"
            " requests, failed 2 check(s) in a row",
            at=AT,
        )
        for name in ("error-rate", long_name)
    }
    console = Console(width=80, record=True, color_system=None)
    console.print(render.verdict_table(status(verdicts=verdicts)))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    assert column(text, 0) == "error-rate" + long_name
    reasons = column(text, 5).replace(" ", "")
    assert reasons.count("failed2check(s)inarow") == 2


def test_status_view_shows_the_recent_audit_trail_with_times() -> None:
    events = [
        AuditEvent(at=AT + timedelta(minutes=i), kind="verdict", text=f"error-rate: change {i}")
        for i in range(12)
    ]
    events.insert(0, AuditEvent(at=AT, kind="stage", text="stage 1/3 'canary' (5%) started"))
    text = text_of(render.status_view(status(events=events)))
    assert "audit trail (last 10)" in text
    assert "2026-11-22 10:11:00" in text and "error-rate: change 11" in text
    assert "error-rate: change 1 " not in text and "'canary' (5%) started" not in text
    assert text.index("audit trail") < text.index("commands received")


def test_a_short_audit_trail_is_shown_whole() -> None:
    events = [
        AuditEvent(at=AT, kind="stage", text="stage 1/3 'canary' (5%) started"),
        AuditEvent(at=AT + timedelta(hours=1), kind="stage", text="stage 1/3 'canary' (5%) passed"),
    ]
    text = text_of(render.status_view(status(events=events)))
    assert "audit trail" in text and "audit trail (last" not in text
    assert "2026-11-22 10:00:00" in text and "2026-11-22 11:00:00" in text
    assert "(5%) started" in text and "(5%) passed" in text


@pytest.mark.parametrize(
    "state", [RolloutState.ROLLED_BACK, RolloutState.ROLLING_BACK, RolloutState.SHIFTING]
)
def test_no_bake_clock_where_no_stage_bakes(state: RolloutState) -> None:
    line = status(
        state=state, paused=False, reason="operator", bake_elapsed_s=0.0, bake_remaining_s=180
    )
    assert "bake" not in text_of(render.headline(line))


def test_a_baking_stage_shows_its_clock() -> None:
    line = status(state=RolloutState.AWAITING_APPROVAL, paused=False, bake_remaining_s=0.0)
    assert "bake 30m/1h (0s left)" in text_of(render.headline(line))


def records(**changes: object) -> TemporalRecords:
    base = TemporalRecords(
        service="checkout",
        workflow_id="rollout-checkout",
        run_id="run-1",
        execution_status="running",
        started_at=AT,
        history_length=120,
        task_queue="rollouts",
        worker="no worker has polled task queue 'rollouts' since 2026-11-22 10:20:00 UTC"
        " (10m ago, by 4242@host)",
        state="baking",
        published_state="baking",
        stage="early",
        canary_weight=25,
        version="v2",
        search_attributes={"RolloutState": "baking", "RolloutStage": "early"},
        workflow_task_waiting_since=AT + timedelta(minutes=21),
        pending_activities=[
            PendingActivity(
                activity="shift_traffic", state="scheduled", attempt=4, last_failure="refused"
            )
        ],
        last_check_at=AT + timedelta(minutes=20),
        last_verdicts=[status().verdicts["error-rate"]],
        events=[
            HistoryLine(
                event_id=99,
                at=AT + timedelta(minutes=20),
                kind="timer started",
                text="next check of stage 'early', fires in 5m",
            )
        ],
        as_of=AT + timedelta(minutes=30),
    )
    return base.model_copy(update=changes)


def test_records_view_says_what_temporal_knows_and_that_no_worker_polls() -> None:
    text = text_of(render.answer_view(records()))
    assert "checkout v2  from Temporal's records" in text
    assert "no worker has polled task queue 'rollouts' since" in text
    assert "last published: baking  stage 'early'  canary 25%" in text
    assert "a workflow task has waited for a worker since 2026-11-22 10:21:00 UTC (9m ago)" in text
    assert "pending activity shift_traffic (scheduled, attempt 4): last failure refused" in text
    assert "gates (last check at 10:20:00)" in text and "0.041 > max 0.01" in text
    assert "2026-11-22 10:20:00" in text and "next check of stage 'early', fires in 5m" in text
    assert "start one with `rollout-worker`" in text


def test_records_view_of_an_ended_run_says_how_it_ended() -> None:
    ended = records(
        execution_status="failed",
        closed_at=AT + timedelta(minutes=25),
        ended="rolled back: gate 'error-rate' failed 3 check(s) in a row",
        final_state=RolloutState.ROLLED_BACK,
    )
    text = text_of(render.answer_view(ended))
    assert "ended: rolled back: gate 'error-rate' failed 3 check(s) in a row" in text
    assert "rollout-worker" not in text


def test_json_names_its_source() -> None:
    assert render.as_json(status())["source"] == "query"
    shown = render.as_json(records())
    assert shown["source"] == "records"
    assert shown["state"] == "baking" and shown["canary_weight"] == 25
    assert json.loads(json.dumps(shown)) == shown
