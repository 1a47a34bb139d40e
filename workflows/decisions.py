"""Pure decisions the workflow takes: what a command does in a state, when a stage is done.

Plain functions over the plan and the progress, so they are tested without Temporal and
replay identically.
"""

from __future__ import annotations

from datetime import datetime

from plans import (
    CommandKind,
    Gate,
    GateOutcome,
    OperatorCommand,
    Plan,
    RolloutState,
    Stage,
    Verdict,
    format_duration,
)
from plans.state import RolloutProgress

MAX_COMMANDS_KEPT = 200


def bake_elapsed(progress: RolloutProgress, now: datetime) -> float:
    """Seconds the current stage has baked; the clock stops while paused."""
    running = progress.clock_running_since
    extra = (now - running).total_seconds() if running is not None else 0.0
    return progress.bake_elapsed_s + max(extra, 0.0)


def bake_remaining(plan: Plan, progress: RolloutProgress, now: datetime) -> float:
    stage = plan.stages[progress.stage_index]
    return max(stage.bake.total_seconds() - bake_elapsed(progress, now), 0.0)


def gates_pass(plan: Plan, progress: RolloutProgress, stage: Stage) -> bool:
    """Every gate of the stage passed its latest check in this stage (missing data never passes)."""
    gates = plan.gates_for(stage)
    if not gates:
        return True
    if progress.stage_checks == 0:
        return False
    return all(
        (v := progress.verdicts.get(g.name)) is not None and v.outcome == GateOutcome.PASS
        for g in gates
    )


def baked(plan: Plan, progress: RolloutProgress, now: datetime) -> bool:
    return bake_remaining(plan, progress, now) <= 0


def awaiting_approval(plan: Plan, progress: RolloutProgress, now: datetime) -> bool:
    stage = plan.stages[progress.stage_index]
    return (
        stage.approval
        and progress.approved_stage < progress.stage_index
        and baked(plan, progress, now)
        and gates_pass(plan, progress, stage)
    )


def stage_complete(plan: Plan, progress: RolloutProgress, now: datetime) -> bool:
    """The stage may hand over to the next: baked, gates green, approved if asked, not paused."""
    stage = plan.stages[progress.stage_index]
    return (
        not progress.paused
        and baked(plan, progress, now)
        and gates_pass(plan, progress, stage)
        and (not stage.approval or progress.approved_stage >= progress.stage_index)
    )


def refusal(plan: Plan, progress: RolloutProgress, command: OperatorCommand, now: datetime) -> str:
    """Why this command cannot be taken now, or '' when it can."""
    kind = command.kind
    if progress.state.final:
        return f"{kind.value}: rollout was {progress.state.value.replace('_', ' ')}"
    if progress.state == RolloutState.ROLLING_BACK or progress.rollback_requested:
        return f"{kind.value}: rollout is rolling back"
    stage = plan.stages[progress.stage_index]
    if kind == CommandKind.PAUSE and progress.paused:
        return "pause: rollout is already paused"
    if kind == CommandKind.RESUME and not progress.paused:
        return "resume: rollout is not paused"
    if kind == CommandKind.PROMOTE and progress.promote_requested:
        return "promote: rollout is already being promoted"
    if kind == CommandKind.APPROVE:
        if not stage.approval:
            return f"approve: stage {stage.name!r} does not ask for approval"
        if progress.approved_stage >= progress.stage_index:
            return f"approve: stage {stage.name!r} is already approved"
        left = bake_remaining(plan, progress, now)
        if left > 0:
            return f"approve: stage {stage.name!r} is still baking, {format_duration(left)} left"
        if not gates_pass(plan, progress, stage):
            return f"approve: stage {stage.name!r} has gates that have not passed yet"
    return ""


def apply_command(progress: RolloutProgress, command: OperatorCommand, now: datetime) -> None:
    """Change the progress as an accepted command asks."""
    kind = command.kind
    if kind == CommandKind.PAUSE:
        progress.bake_elapsed_s = bake_elapsed(progress, now)
        progress.clock_running_since = None
        progress.paused = True
    elif kind == CommandKind.RESUME:
        progress.paused = False
        if progress.shifted_stage == progress.stage_index:
            progress.clock_running_since = now
    elif kind == CommandKind.APPROVE:
        progress.approved_stage = progress.stage_index
    elif kind == CommandKind.PROMOTE:
        progress.promote_requested = True
    elif kind == CommandKind.ROLLBACK:
        progress.rollback_requested = True
        who = f" by {command.by}" if command.by else ""
        why = f": {command.reason}" if command.reason else ""
        progress.reason = f"rollback requested{who}{why}"


def record_verdicts(
    progress: RolloutProgress, gates: list[Gate], verdicts: list[Verdict]
) -> list[str]:
    """Keep the latest verdicts and failure streaks; return why to roll back, if a limit is hit.

    A pass resets a gate's streak, a fail extends it; an inconclusive check does neither,
    so missing data can neither hide a failure nor count as one.
    """
    limits = {g.name: g.failure_limit for g in gates}
    sustained = []
    for verdict in verdicts:
        progress.verdicts[verdict.gate] = verdict
        if verdict.outcome == GateOutcome.PASS:
            progress.failure_streaks[verdict.gate] = 0
        elif verdict.outcome == GateOutcome.FAIL:
            streak = progress.failure_streaks.get(verdict.gate, 0) + 1
            progress.failure_streaks[verdict.gate] = streak
            limit = limits.get(verdict.gate, 1)
            if streak >= limit:
                value = "no value" if verdict.value is None else f"{verdict.value:.6g}"
                detail = verdict.reason or f"{value}, wants {verdict.threshold}"
                sustained.append(
                    f"gate {verdict.gate!r} failed {streak} check(s) in a row"
                    f" (limit {limit}): {detail}"
                )
    return sustained


def describe_stage(plan: Plan, index: int) -> str:
    stage = plan.stages[index]
    return f"stage {index + 1}/{len(plan.stages)} {stage.name!r} ({stage.weight}%)"
