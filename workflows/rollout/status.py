"""What people see of a rollout: the status query's answer, the one-line details, the result.

Plain functions over the plan and the progress, like `decisions`, so the workflow's
query handler and its ending stay one line each.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from plans import (
    Plan,
    RolloutResult,
    RolloutState,
    RolloutStatus,
    ShiftRequest,
    TrafficSplit,
    Verdict,
)
from plans.bluegreen import KEEP_BLUE, PREVIEW
from plans.durations import format_duration
from plans.governance.windows import opening_text
from plans.runtime.progress import RolloutProgress
from plans.runtime.visibility import SERVICE, STAGE, STATE, VERSION, WEIGHT
from workflows.rollout import clock, decisions


def status_of(plan: Plan, progress: RolloutProgress, now: datetime) -> RolloutStatus:
    """The answer to the ``status`` query, as of ``now`` (the last workflow task's time).

    The client carries a running bake clock on from ``as_of`` to the moment it asks
    (``RolloutStatus.at``).
    """
    p = progress
    stage = decisions.current_stage(plan, p)
    running = p.shifted_stage == p.stage_index and not p.state.final
    elapsed = decisions.bake_elapsed(p, now) if running else 0.0
    return RolloutStatus(
        service=plan.service,
        version=plan.version,
        state=p.state,
        stage_index=decisions.current_index(plan, p),
        stage_name=stage.name,
        stage_count=len(plan.stages),
        stages=[f"{s.name}:{s.weight}" for s in plan.stages],
        canary_weight=p.canary_weight,
        canary_match=p.canary_match.describe() if p.canary_match else "",
        paused=p.paused,
        bake_total_s=clock.bake_s(stage, p.clock),  # up to max_bake while extended
        bake_elapsed_s=elapsed,
        bake_remaining_s=max(clock.bake_s(stage, p.clock) - elapsed, 0.0) if running else 0.0,
        awaiting_approval=p.state == RolloutState.AWAITING_APPROVAL,
        verdicts=p.gates.verdicts,
        failure_streaks=p.gates.failure_streaks,
        inconclusive_streaks=p.gates.inconclusive_streaks,
        pause_cause=p.pause_cause,
        commands=p.commands,
        events=p.events,
        reason=p.reason,
        checks=p.checks,
        run_count=p.run_count,
        as_of=now,
        bake_clock_running=running and p.clock.running_since is not None,
        stage_started_at=p.clock.entered_at,
        window_hold=p.window.hold,
        window_opens_at=p.window.opens_at,
        restore_blocked=p.target.restore_blocked,
        asked=asked_of(plan, p),
    )


def asked_of(plan: Plan, progress: RolloutProgress) -> ShiftRequest | None:
    """What the run last asked its router for: stable while it rolls back, else the split it
    set (none yet is stable's 100%); None for a run refused its target, which asked nothing."""
    p = progress
    if p.state == RolloutState.REFUSED:
        return None
    if p.state == RolloutState.ROLLING_BACK:
        split = TrafficSplit.canary_percent(0)
    else:
        split = TrafficSplit.canary_percent(p.canary_weight, p.canary_match)
    return ShiftRequest(router=plan.router, stable=plan.stable, canary=plan.canary, split=split)


def sentence(plan: Plan, progress: RolloutProgress) -> str:
    """The run's current details in the Temporal UI: state, weight, stage and why it ended."""
    p = progress
    where = decisions.describe_stage(plan, decisions.current_index(plan, p))
    state = p.state.value.replace("_", " ")
    matched = f" and every request with {p.canary_match.describe()}" if p.canary_match else ""
    text = f"{plan.service} {plan.version}: {state}, canary at {p.canary_weight}%{matched}, {where}"
    if p.reason and (p.state.final or p.state == RolloutState.ROLLING_BACK):
        text += f". Reason: {p.reason}"
    elif p.window.hold and plan.windows is not None and not p.state.final:
        opens = p.window.opens_at
        when = opening_text(opens, plan.windows.zone_name()) if opens else "not within a year"
        text += f"; waiting for window: opens {when} ({p.window.hold})"
    elif plan.blue_green is not None and not p.state.final:
        stage = decisions.current_stage(plan, p).name
        if stage == PREVIEW and plan.blue_green.preview_url:
            text += f"; green on preview at {plan.blue_green.preview_url}"
        elif stage == KEEP_BLUE:
            text += "; blue kept ready: a rollback flips back at once"
    return text


def changed_verdicts(progress: RolloutProgress, verdicts: list[Verdict]) -> list[str]:
    """The verdicts whose outcome changed since the last check, for the audit trail (every
    check's detail is in the history)."""
    changed = []
    for verdict in verdicts:
        previous = progress.gates.verdicts.get(verdict.gate)
        if previous is None or previous.outcome != verdict.outcome:
            changed.append(verdict.explain())
    return changed


def keep_blue_text(plan: Plan) -> str:
    """What the audit says when blue-green's keep-blue stage starts."""
    assert plan.blue_green is not None and plan.blue_green.keep_previous_for is not None
    kept = format_duration(plan.blue_green.keep_previous_for)
    return f"green has all traffic; blue kept ready for {kept}: a rollback flips back at once"


def kept_blue(plan: Plan, progress: RolloutProgress) -> bool:
    """Blue-green's keep-blue stage ran to its end: blue may be retired."""
    last = plan.stages[-1]
    return (
        last.name == KEEP_BLUE
        and plan.blue_green is not None
        and progress.stage_index >= len(plan.stages)
    )


def result_of(plan: Plan, progress: RolloutProgress) -> RolloutResult:
    """The run's result (or a failure's details): how it ended and where."""
    return RolloutResult(
        service=plan.service,
        state=progress.state,
        reason=progress.reason,
        canary_weight=progress.canary_weight,
        stage_name=decisions.current_stage(plan, progress).name,
    )


def rolled_back(plan: Plan, progress: RolloutProgress) -> ApplicationError:
    """The failure a rolled-back run ends with: the reason, and the result as its details."""
    return ApplicationError(
        f"rolled back: {progress.reason}",
        result_of(plan, progress),
        type="RolledBack",
        non_retryable=True,
    )


def stages_line(plan: Plan) -> str:
    return " -> ".join(f"{s.name} {s.weight}%" for s in plan.stages)


def publish(
    plan: Plan, progress: RolloutProgress, visibility: bool, published: tuple[Any, ...]
) -> tuple[Any, ...]:
    """Set the run's details and search attributes when they changed since ``published``."""
    p = progress
    stage = decisions.current_stage(plan, p)
    snapshot = (p.state, stage.name, p.canary_weight, p.reason, p.window.hold, p.window.opens_at)
    if snapshot == published:
        return published
    workflow.set_current_details(sentence(plan, p))
    if visibility:
        workflow.upsert_search_attributes(
            [
                SERVICE.value_set(plan.service),
                VERSION.value_set(plan.version),
                STAGE.value_set(stage.name),
                WEIGHT.value_set(p.canary_weight),
                STATE.value_set(p.state.value),
            ]
        )
    return snapshot


class Board:
    """What people see of a run: the one writer of its state, and of its details and search
    attributes, upserted only when they change."""

    def __init__(self, plan: Plan, progress: RolloutProgress, visibility: bool) -> None:
        self._plan, self._progress, self._visibility = plan, progress, visibility
        self._published: tuple[Any, ...] = ()

    def set_state(self, state: RolloutState) -> None:
        """Where the rollout stands now; shown at the next ``show``."""
        self._progress.state = state

    def show(self, state: RolloutState | None = None) -> None:
        """Set ``state`` if given, and publish what changed."""
        if state is not None:
            self._progress.state = state
        self._published = publish(self._plan, self._progress, self._visibility, self._published)
