"""A release as the CLI shows it: a tree of waves and targets, and the exit code of its end."""

from __future__ import annotations

from datetime import timedelta

from rich.markup import escape
from rich.tree import Tree

from plans import RolloutStatus, format_duration
from plans.runtime.release import ReleaseCommandRecord, ReleaseState, ReleaseStatus, TargetState
from starter.exits import EXIT_ABORTED, EXIT_PROMOTED, EXIT_ROLLED_BACK


def release_exit_code(state: ReleaseState) -> int:
    """0 promoted, 3 halted or rolled back, 4 aborted (as for one rollout)."""
    if state == ReleaseState.PROMOTED:
        return EXIT_PROMOTED
    if state in (ReleaseState.HALTED, ReleaseState.ROLLED_BACK):
        return EXIT_ROLLED_BACK
    return EXIT_ABORTED


_COLOURS = {
    TargetState.PROMOTED: "green",
    TargetState.RUNNING: "cyan",
    TargetState.ROLLED_BACK: "red",
    TargetState.FAILED: "red",
    TargetState.ABORTED: "yellow",
    TargetState.RESTORED: "yellow",
}


def release_tree(status: ReleaseStatus, targets: dict[str, RolloutStatus]) -> Tree:
    """The release, each wave, each target with its stage, weight, state and last verdicts."""
    head = f"[bold]release {escape(status.service)} {escape(status.version)}[/]: {status.state}"
    if status.paused and status.state != ReleaseState.PAUSED:
        head += " (paused: no new target starts)"
    tree = Tree(head + f"  (on failure: {status.on_target_failure})")
    for wave in status.waves:
        extras = []
        if wave.approval:
            extras.append("approval")
        if wave.max_parallel:
            extras.append(f"max_parallel {wave.max_parallel}")
        if wave.bake_between_s:
            extras.append(f"bake_between {format_duration(timedelta(seconds=wave.bake_between_s))}")
        more = f" ({', '.join(extras)})" if extras else ""
        branch = tree.add(f"wave {wave.index + 1}{more}: {wave.state}")
        for name in wave.targets:
            branch.add(_target_line(name, status, targets.get(name)))
    if status.failed_target or (status.reason and status.state.final):
        tree.add(f"[bold]{escape(status.reason)}[/]")
    return tree


def _target_line(name: str, status: ReleaseStatus, child: RolloutStatus | None) -> str:
    run = status.targets[name]
    colour = _COLOURS.get(run.state, "dim")
    line = f"[{colour}]{escape(name)}[/] {run.state}"
    if child is not None:
        shown = "" if child.state.value == run.state.value else f" | {child.state}"
        line += (
            f"{shown} | stage {child.stage_index + 1}/{child.stage_count}"
            f" {escape(child.stage_name)} | canary {child.canary_weight}%"
        )
        verdicts = ", ".join(f"{g}={v.outcome}" for g, v in child.verdicts.items())
        if verdicts:
            line += f" | {escape(verdicts)}"
    if run.reason and run.state != TargetState.PROMOTED:
        line += f" | {escape(run.reason)}"
    return line


def command_lines(record: ReleaseCommandRecord) -> list[str]:
    """What a taken command reached, and where it did not go and why."""
    where = f" on {record.target}" if record.target else ""
    lines = [f"[green]{record.kind}[/] taken for the release{where} (by {escape(record.by)})"]
    if record.sent_to:
        lines.append(f"  sent to: {', '.join(record.sent_to)}")
    for name, why in record.not_sent.items():
        lines.append(f"  not sent to {name}: {escape(why)}")
    return lines
