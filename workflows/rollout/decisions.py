"""Pure decisions the workflow takes: what a command does in a state, when a stage is done.

Plain functions over the plan and the progress, so they are tested without Temporal and
replay identically.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from plans import (
    CommandKind,
    CommandRecord,
    Gate,
    GateAction,
    GateOutcome,
    OperatorCommand,
    Plan,
    RolloutState,
    Stage,
    Verdict,
    format_duration,
)
from plans.runtime.progress import RolloutProgress
from workflows.rollout import clock

MAX_COMMANDS_KEPT = 200
MAX_SHADOW_KEPT = 50


class RollBack(Exception):
    """The rollout must go back to stable; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Abort(RollBack):
    """An operator aborts: stable again, and the run ends aborted rather than failed."""


def stop_if_asked(progress: RolloutProgress) -> None:
    """A rollback or an abort asked for ends whatever the rollout was doing: raise it."""
    if progress.rollback_requested:
        raise RollBack(progress.reason)
    if progress.abort_requested:
        raise Abort(progress.reason)


def current_index(plan: Plan, progress: RolloutProgress) -> int:
    """Index of the stage the rollout is in; past the last one (promoting), the last one."""
    return min(progress.stage_index, len(plan.stages) - 1)


def current_stage(plan: Plan, progress: RolloutProgress) -> Stage:
    """The stage the rollout is in; past the last one (promoting), the last one."""
    return plan.stages[current_index(plan, progress)]


def bake_elapsed(progress: RolloutProgress, now: datetime) -> float:
    """Seconds the current stage has baked; the clock stops while paused."""
    return clock.elapsed(progress.clock, now)


def bake_remaining(plan: Plan, progress: RolloutProgress, now: datetime) -> float:
    stage = current_stage(plan, progress)
    return max(clock.bake_s(stage, progress.clock) - bake_elapsed(progress, now), 0.0)


# A check may start late by this much (a busy worker, a slow query) before the wait
# since the previous one counts as time nobody watched.
MIN_CHECK_GRACE = timedelta(seconds=5)


def check_grace(stage: Stage) -> timedelta:
    """How late a check may be: half the stage's check interval, at least 5 seconds."""
    return max(stage.check_every / 2, MIN_CHECK_GRACE)


def unobserved(stage: Stage, last_check_at: datetime | None, now: datetime) -> bool:
    """No check has looked at the stage for longer than its interval and grace."""
    if last_check_at is None:
        return False
    return now - last_check_at > stage.check_every + check_grace(stage)


def unobserved_excess(
    stage: Stage,
    last_check_at: datetime | None,
    clock_running_since: datetime | None,
    now: datetime,
) -> timedelta:
    """Bake time to take back because no check ran: the gap beyond interval and grace.

    Only time the bake clock was running counts (a paused stage accrued none), so the
    excess is capped at the running part of the gap. A worker, server or router that was
    away for longer than a check interval therefore lengthens the stage by about as long
    as it was away: a bake is time the rollout watched, not time that went by.
    """
    if last_check_at is None or clock_running_since is None:
        return timedelta(0)
    excess = now - last_check_at - stage.check_every - check_grace(stage)
    counted = now - max(last_check_at, clock_running_since)
    return max(min(excess, counted), timedelta(0))


def gates_pass(plan: Plan, progress: RolloutProgress, stage: Stage) -> bool:
    """Every gate of the stage passed its latest check in this stage (missing data never passes)."""
    gates = plan.gates_for(stage)
    if not gates:
        return True
    if progress.clock.checks == 0:
        return False
    return all(
        (v := progress.gates.verdicts.get(g.name)) is not None and v.outcome == GateOutcome.PASS
        for g in gates
    )


def baked(plan: Plan, progress: RolloutProgress, now: datetime) -> bool:
    return bake_remaining(plan, progress, now) <= 0


def awaiting_approval(plan: Plan, progress: RolloutProgress, now: datetime) -> bool:
    stage = current_stage(plan, progress)
    return (
        stage.approval
        and progress.approved_stage < progress.stage_index
        and baked(plan, progress, now)
        and gates_pass(plan, progress, stage)
    )


def bake_done(plan: Plan, progress: RolloutProgress, now: datetime) -> bool:
    """The stage's bake is over: baked, gates green on its latest check, not paused."""
    stage = current_stage(plan, progress)
    return not progress.paused and baked(plan, progress, now) and gates_pass(plan, progress, stage)


def stage_complete(plan: Plan, progress: RolloutProgress, now: datetime) -> bool:
    """The stage may hand over to the next: baked, gates green, approved if asked, not paused."""
    stage = current_stage(plan, progress)
    return bake_done(plan, progress, now) and (
        not stage.approval or progress.approved_stage >= progress.stage_index
    )


def refusal(plan: Plan, progress: RolloutProgress, command: OperatorCommand, now: datetime) -> str:
    """Why this command cannot be taken now, or '' when it can."""
    kind = command.kind
    if progress.state.final:
        return f"{kind.value}: rollout was {progress.state.value.replace('_', ' ')}"
    if progress.state == RolloutState.ROLLING_BACK or progress.rollback_requested:
        return f"{kind.value}: rollout is rolling back"
    if progress.abort_requested:
        return f"{kind.value}: rollout is being aborted"
    if kind == CommandKind.PROMOTE and progress.promote_requested:
        return "promote: rollout is already being promoted"
    if (progress.stage_index >= len(plan.stages) or progress.promote_requested) and kind not in (
        CommandKind.ROLLBACK,
        CommandKind.ABORT,
    ):
        return f"{kind.value}: rollout is being promoted to 100%"
    stage = current_stage(plan, progress)
    if kind == CommandKind.PAUSE and progress.paused:
        return "pause: rollout is already paused"
    if kind == CommandKind.RESUME and not progress.paused:
        return "resume: rollout is not paused"
    if kind == CommandKind.PROMOTE and progress.promote_requested:
        return "promote: rollout is already being promoted"
    if kind == CommandKind.RETRY and not (progress.paused and progress.pause_cause != "operator"):
        return "retry: only a rollout paused by its gates or its deadline can be retried"
    if kind == CommandKind.OVERRIDE:
        if plan.windows is None and not progress.window.freezes:
            return "override: no release window or freeze holds this rollout"
        if progress.overrides > 0:
            return "override: the next increase is already let through"
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
        pause(progress, now, "operator")
    elif kind == CommandKind.RESUME:
        resume(progress, now)
    elif kind == CommandKind.RETRY:
        resume(progress, now)
        progress.gates.inconclusive_streaks.clear()
        clock.check_now(progress.clock, now)
    elif kind == CommandKind.ABORT:
        progress.abort_requested = True
        progress.reason = f"aborted by {command.by}" + (
            f": {command.reason}" if command.reason else ""
        )
    elif kind == CommandKind.APPROVE:
        progress.approved_stage = progress.stage_index
    elif kind == CommandKind.PROMOTE:
        progress.promote_requested = True
    elif kind == CommandKind.OVERRIDE:
        progress.overrides = 1  # the next increase only: each further one asks again
    elif kind == CommandKind.ROLLBACK:
        progress.rollback_requested = True
        who = f" by {command.by}" if command.by else ""
        why = f": {command.reason}" if command.reason else ""
        progress.reason = f"rollback requested{who}{why}"


def pause(progress: RolloutProgress, now: datetime, cause: str) -> None:
    """Stop the progression and the bake clock; checks go on."""
    clock.stop(progress.clock, now)
    progress.paused = True
    progress.pause_cause = cause


def resume(progress: RolloutProgress, now: datetime) -> None:
    progress.paused = False
    progress.pause_cause = ""
    if progress.shifted_stage == progress.stage_index:
        clock.start(progress.clock, now)


def deadline_passed(plan: Plan, progress: RolloutProgress, now: datetime) -> bool:
    """The stage has run (paused time excluded) past its progress deadline without finishing.

    Waiting for a person's approval is not a lack of progress, so it never counts.
    """
    stage = current_stage(plan, progress)
    if (
        stage.progress_deadline is None
        or progress.clock.deadline_acted_stage >= progress.stage_index
    ):
        return False
    if awaiting_approval(plan, progress, now):
        return False
    return bake_elapsed(progress, now) >= stage.progress_deadline.total_seconds()


def abort_due(plan: Plan, progress: RolloutProgress, now: datetime) -> datetime | None:
    """When the current stage is to be aborted unfinished (``abort_after``), if it is."""
    stage = current_stage(plan, progress)
    entered = progress.clock.entered_at
    if stage.abort_after is None or entered is None:
        return None
    if progress.shifted_stage < progress.stage_index:
        return None
    return entered + stage.abort_after


def abort_reason(plan: Plan, progress: RolloutProgress, now: datetime) -> str:
    """Why the current stage ends aborted now (its ``abort_after`` passed), or ''."""
    due = abort_due(plan, progress, now)
    if due is None or now < due:
        return ""
    stage = current_stage(plan, progress)
    assert stage.abort_after is not None
    return (
        f"stage {stage.name!r} did not complete within {format_duration(stage.abort_after)}:"
        " nobody promoted it"
    )


def judge_checks(
    progress: RolloutProgress, gates: list[Gate], verdicts: list[Verdict]
) -> list[GateAction]:
    """Keep the check's verdicts and streaks; return what the gates' policies ask for now.

    Per gate: a pass resets both streaks; a fail extends the failure streak and resets
    the inconclusive one; an inconclusive check extends the inconclusive streak and
    leaves the failure streak alone, so missing data can neither hide a failure nor
    count as one. A streak that reaches the gate's limit (``failure_limit``,
    ``inconclusive_limit``) triggers its action (``on_fail`` / ``on_inconclusive``, else
    what its severity says): ``rollback`` from then on, ``pause`` and ``notify`` each
    time the streak reaches another multiple of the limit (a person who resumes is asked
    again if it goes on), ``ignore`` never. A dry-run gate's actions are kept in
    ``progress.gates.shadow_actions`` (``check`` tells this check's apart) and never returned.
    Rollbacks come first.
    """
    by_name = {g.name: g for g in gates}
    actions: list[GateAction] = []
    for verdict in verdicts:
        name = verdict.gate
        progress.gates.verdicts[name] = verdict
        gate = by_name.get(name)
        failures = progress.gates.failure_streaks.get(name, 0)
        unknown = progress.gates.inconclusive_streaks.get(name, 0)
        if verdict.outcome == GateOutcome.PASS:
            failures, unknown = 0, 0
        elif verdict.outcome == GateOutcome.FAIL:
            failures, unknown = failures + 1, 0
        else:
            unknown += 1
        if verdict.outcome != GateOutcome.INCONCLUSIVE:
            progress.gates.failure_streaks[name] = failures
        progress.gates.inconclusive_streaks[name] = unknown
        action = _triggered(gate, verdict, failures, unknown, progress.checks)
        if action is None:
            continue
        if gate is not None and gate.dry_run:
            progress.gates.shadow_actions.append(action)
            del progress.gates.shadow_actions[
                : max(len(progress.gates.shadow_actions) - MAX_SHADOW_KEPT, 0)
            ]
        else:
            actions.append(action)
    order = {"rollback": 0, "pause": 1, "notify": 2}
    return sorted(actions, key=lambda a: order[a.action])


def _triggered(
    gate: Gate | None, verdict: Verdict, failures: int, unknown: int, check: int
) -> GateAction | None:
    """The action a gate's streak calls for after this verdict, if any."""
    if verdict.outcome == GateOutcome.PASS:
        return None
    failed = verdict.outcome == GateOutcome.FAIL
    if gate is None:
        # A verdict for a gate the stage does not list: the first version's rule.
        action, limit = ("rollback", 1) if failed else ("ignore", 1)
        severity = "critical"
    elif failed:
        action, limit, severity = gate.fail_action, gate.failure_limit, gate.severity
    else:
        action, limit, severity = gate.inconclusive_action, gate.inconclusive_limit, gate.severity
    streak = failures if failed else unknown
    if action == "ignore" or streak < limit:
        return None
    if action != "rollback" and streak % limit:
        return None
    value = "no value" if verdict.value is None else f"{verdict.value:.6g}"
    detail = verdict.reason or f"{value}, wants {verdict.threshold}"
    if failed:
        reason = f"{verdict.gate}: {detail}, failed {streak} check(s) in a row"
    else:
        reason = f"{verdict.gate}: inconclusive {streak} check(s) in a row: {detail}"
    return GateAction(
        action=action,
        gate=verdict.gate,
        reason=reason,
        trigger="fail" if failed else "inconclusive",
        streak=streak,
        limit=limit,
        severity=severity,
        check=check,
    )


def describe_stage(plan: Plan, index: int) -> str:
    stage = plan.stages[index]
    return f"stage {index + 1}/{len(plan.stages)} {stage.name!r} ({stage.weight}%)"


def signal_command(
    kind: CommandKind, inputs: tuple[Any, ...], now: datetime
) -> OperatorCommand | CommandRecord:
    """The command a signal carries, or the refusal to record when its body is not one.

    Signals take any number of inputs so that a wrong count is refused and recorded
    instead of failing every workflow task of the run.
    """
    body: Any = inputs[0] if len(inputs) == 1 else (inputs or {})
    if body is None:
        body = {}
    try:
        if not isinstance(body, dict):
            raise TypeError(type(body).__name__)
        return OperatorCommand.model_validate({**body, "kind": kind})
    except (TypeError, ValidationError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        return CommandRecord(
            kind=kind.value,
            by=str(body.get("by", "unknown"))[:200] if isinstance(body, dict) else "unknown",
            reason="",
            at=now,
            accepted=False,
            note=f"{kind.value}: body must be a JSON object like"
            f' {{"by": "ana", "reason": "..."}} ({first[:200]})',
            via="signal",
        )
