"""A release's pure decisions: what a command does to it, and which targets it reaches."""

from __future__ import annotations

from datetime import datetime

from plans.release_plan import ReleasePlan
from plans.runtime.release import (
    RELEASE_WIDE,
    ReleaseCommand,
    ReleaseProgress,
    ReleaseState,
    TargetState,
    WaveStatus,
)
from plans.runtime.state import CommandKind

# Commands a target's own rollout takes, when the release forwards them with --target.
FORWARDED = frozenset(
    {
        CommandKind.PAUSE,
        CommandKind.RESUME,
        CommandKind.APPROVE,
        CommandKind.PROMOTE,
        CommandKind.ROLLBACK,
        CommandKind.ABORT,
        CommandKind.RETRY,
    }
)


def refusal(plan: ReleasePlan, p: ReleaseProgress, command: ReleaseCommand) -> str:
    """Why the release cannot take this command now, or '' when it can."""
    kind = command.command.kind
    if p.state.final:
        return f"{kind.value}: the release has ended ({p.state.value})"
    if command.target is not None:
        if command.target not in plan.targets:
            known = ", ".join(plan.targets)
            return f"{kind.value}: no target {command.target!r} in this release (targets: {known})"
        run = p.targets.get(command.target)
        if run is None or run.state != TargetState.RUNNING:
            state = run.state.value if run is not None else TargetState.PENDING.value
            return f"{kind.value}: target {command.target} is not running ({state})"
        return ""
    if p.rollback_requested or p.abort_requested:
        return f"{kind.value}: the release is already going back to stable"
    if kind == CommandKind.APPROVE:
        if p.state != ReleaseState.AWAITING_APPROVAL:
            return (
                "approve: no wave awaits approval; to approve a target's stage, name it"
                " with --target"
            )
        return ""
    if kind == CommandKind.PAUSE and p.paused:
        return "pause: the release is paused already"
    if kind == CommandKind.RESUME and not p.paused:
        return "resume: the release is not paused"
    if kind not in RELEASE_WIDE:
        return f"{kind.value}: acts on one target's rollout: name it with --target"
    return ""


def reach(p: ReleaseProgress, command: ReleaseCommand) -> tuple[list[str], dict[str, str]]:
    """The targets a command is sent to, and the others with why it is not sent there."""
    kind = command.command.kind
    if command.target is not None:
        return [command.target], {}
    if kind == CommandKind.APPROVE:
        return [], {}
    sent: list[str] = []
    not_sent: dict[str, str] = {}
    for name, run in p.targets.items():
        if run.state == TargetState.RUNNING:
            sent.append(name)
        elif kind in (CommandKind.ROLLBACK, CommandKind.ABORT) and run.state == (
            TargetState.PROMOTED
        ):
            not_sent[name] = "promoted: the release puts it back on stable once the others end"
        elif run.state == TargetState.PENDING:
            not_sent[name] = (
                "not started: its wave will not start"
                if kind
                in (
                    CommandKind.ROLLBACK,
                    CommandKind.ABORT,
                )
                else "not started yet"
            )
        else:
            not_sent[name] = f"ended ({run.state.value})"
    return sent, not_sent


def apply(p: ReleaseProgress, command: ReleaseCommand, now: datetime) -> None:
    """What a taken command changes in the release itself (the targets get it as a signal)."""
    kind = command.command.kind
    who = command.command.by + (f": {command.command.reason}" if command.command.reason else "")
    if command.target is not None:
        return
    if kind == CommandKind.PAUSE:
        p.paused = True
    elif kind == CommandKind.RESUME:
        p.paused = False
    elif kind == CommandKind.APPROVE:
        p.approved_waves.append(p.wave_index)
    elif kind == CommandKind.ROLLBACK:
        p.rollback_requested = True
        p.reason = f"rolled back by {who}"
    elif kind == CommandKind.ABORT:
        p.abort_requested = True
        p.reason = f"aborted by {who}"


def wave_statuses(plan: ReleasePlan, p: ReleaseProgress) -> list[WaveStatus]:
    """Each wave with where it stands, for the status tree."""
    waves = []
    for i, wave in enumerate(plan.waves):
        if i < p.wave_index or (i == p.wave_index and p.state == ReleaseState.PROMOTED):
            state = "done"
        elif i > p.wave_index or not p.wave_started:
            state = "not started"
        elif p.state.final:
            state = p.state.value.replace("_", " ")
        elif p.state == ReleaseState.AWAITING_APPROVAL:
            state = "approval"
        elif p.state == ReleaseState.BETWEEN_WAVES:
            state = "waiting"
        else:
            state = "running" if p.wave_started else "not started"
        waves.append(
            WaveStatus(
                index=i,
                targets=list(wave.targets),
                approval=wave.approval,
                max_parallel=wave.max_parallel,
                bake_between_s=wave.bake_between.total_seconds(),
                state=state,
            )
        )
    return waves
