"""How a rollout looks in the terminal: status tables and one-line progress."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from plans import GateOutcome, RolloutState, RolloutStatus, format_duration

OUTCOME_STYLE = {
    GateOutcome.PASS: "green",
    GateOutcome.FAIL: "bold red",
    GateOutcome.INCONCLUSIVE: "yellow",
}
STATE_STYLE = {
    RolloutState.PROMOTED: "bold green",
    RolloutState.ROLLED_BACK: "bold red",
    RolloutState.ROLLING_BACK: "red",
    RolloutState.ABORTED: "bold yellow",
    RolloutState.PAUSED: "yellow",
    RolloutState.AWAITING_APPROVAL: "cyan",
}


def stage_line(status: RolloutStatus) -> Text:
    """The stages as a progress line, the current one marked."""
    line = Text()
    for index, stage in enumerate(status.stages):
        name, _, weight = stage.rpartition(":")
        if index:
            line.append(" -> ", style="dim")
        if index < status.stage_index or status.state == RolloutState.PROMOTED:
            line.append(f"{name} {weight}%", style="green")
        elif index == status.stage_index and not status.state.final:
            line.append(f"[{name} {weight}%]", style="bold")
        else:
            line.append(f"{name} {weight}%", style="dim")
    return line


def headline(status: RolloutStatus) -> Text:
    text = Text()
    text.append(f"{status.service} {status.version}  ")
    text.append(status.state.value, style=STATE_STYLE.get(status.state, "bold"))
    text.append(f"  canary {status.canary_weight}%")
    if not status.state.final:
        text.append(f"  stage {status.stage_index + 1}/{status.stage_count} {status.stage_name!r}")
        if status.bake_total_s:
            text.append(
                f"  bake {format_duration(status.bake_elapsed_s)}"
                f"/{format_duration(status.bake_total_s)}"
                f" ({format_duration(status.bake_remaining_s)} left)"
            )
        if status.paused:
            text.append("  (clock stopped while paused)", style="yellow")
        if status.awaiting_approval:
            text.append(f"  awaiting `rollout approve {status.service}`", style="cyan")
    if status.reason and (status.state.final or status.state == RolloutState.ROLLING_BACK):
        text.append(f"\nreason: {status.reason}")
    return text


def verdict_table(status: RolloutStatus) -> Table:
    table = Table(title="gates (last check)", title_justify="left", expand=False)
    for column in ("gate", "verdict", "value", "threshold", "fails in a row", "why"):
        table.add_column(column)
    for name, verdict in sorted(status.verdicts.items()):
        value = "-" if verdict.value is None else f"{verdict.value:.6g}"
        table.add_row(
            name,
            Text(verdict.outcome.value, style=OUTCOME_STYLE[verdict.outcome]),
            value,
            verdict.threshold,
            str(status.failure_streaks.get(name, 0)),
            verdict.reason,
        )
    return table


def command_table(status: RolloutStatus, last: int = 10) -> Table:
    table = Table(title="commands received", title_justify="left")
    for column in ("when (UTC)", "command", "by", "why", "via", "taken"):
        table.add_column(column)
    for record in status.commands[-last:]:
        taken = Text("yes", style="green") if record.accepted else Text(f"no: {record.note}", "red")
        table.add_row(
            f"{record.at:%Y-%m-%d %H:%M:%S}",
            record.kind,
            record.by,
            record.reason,
            record.via,
            taken,
        )
    return table


def status_view(status: RolloutStatus) -> Group:
    parts: list[Table | Text] = [headline(status), stage_line(status)]
    if status.verdicts:
        parts.append(verdict_table(status))
    if status.commands:
        parts.append(command_table(status))
    return Group(*parts)


def progress_line(status: RolloutStatus) -> str:
    """One plain line per change, for `start --follow` in logs and CI."""
    gates = ", ".join(
        f"{name}={'-' if v.value is None else f'{v.value:.4g}'} {v.outcome.value}"
        for name, v in sorted(status.verdicts.items())
    )
    parts = [
        f"{status.state.value:<17}",
        f"stage {status.stage_index + 1}/{status.stage_count} {status.stage_name}",
        f"canary {status.canary_weight}%",
    ]
    if status.state in (RolloutState.BAKING, RolloutState.PAUSED) and status.bake_total_s:
        parts.append(f"bake left {format_duration(status.bake_remaining_s)}")
    if gates:
        parts.append(gates)
    if status.reason and status.state.final:
        parts.append(f"reason: {status.reason}")
    return " | ".join(parts)
