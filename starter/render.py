"""How a rollout looks in the terminal: status tables and one-line progress."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from client.records import TemporalRecords
from plans import (
    GateOutcome,
    RolloutState,
    RolloutStatus,
    ShiftRequest,
    Verdict,
    format_duration,
)
from plans.governance.approvals import who
from plans.runtime.traffic import ObservedStatus, TrafficReading
from starter.console import err as err
from starter.console import out as out
from starter.traffic import share

WHEN = "%Y-%m-%d %H:%M:%S"
BAKING_STATES = (
    RolloutState.BAKING,
    RolloutState.PAUSED,
    RolloutState.AWAITING_APPROVAL,
    RolloutState.WAITING_FOR_WINDOW,
)

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
    RolloutState.WAITING_FOR_WINDOW: "magenta",
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
    text.append(status.state.value.replace("_", " "), style=STATE_STYLE.get(status.state, "bold"))
    restored = (
        status.traffic.restored if isinstance(status, ObservedStatus) and status.traffic else None
    )
    if restored is not None:
        text.append(", then put back on stable", style="bold red")
    text.append(f"  canary {status.canary_weight}%")
    if status.canary_match:
        text.append(f" + {status.canary_match}")
    if not status.state.final:
        text.append(f"  stage {status.stage_index + 1}/{status.stage_count} {status.stage_name!r}")
        # Only a stage that bakes has a clock; rolling back or shifting, it would mislead.
        unshifted = status.window_hold and status.stage_started_at is None  # a first shift
        if status.bake_total_s and status.state in BAKING_STATES and not unshifted:
            text.append(
                f"  bake {format_duration(status.bake_elapsed_s)}"
                f"/{format_duration(status.bake_total_s)}"
                f" ({format_duration(status.bake_remaining_s)} left)"
            )
        if status.paused:
            text.append("  (clock stopped while paused)", style="yellow")
        if status.awaiting_approval:
            text.append(f"  awaiting `rollout approve {status.service}`", style="cyan")
        if status.window_hold:
            text.append(f"\n{window_line(status)}", style="magenta")
    if status.reason and (status.state.final or status.state == RolloutState.ROLLING_BACK):
        text.append(f"\nreason: {status.reason}")
    return text


def window_line(status: RolloutStatus) -> str:
    """``next increase waits: outside every allow window; opens 2026-12-01 14:00 UTC (in
    2h 10m)``, from the status's own clock (``as_of``)."""
    opens = status.window_opens_at
    if opens is None:
        when = "no opening within a year (`rollout override` lets one increase through)"
    else:
        left = (opens - status.as_of).total_seconds() if status.as_of else 0.0
        when = f"opens {opens:%a %Y-%m-%d %H:%M} UTC (in {format_duration(max(left, 0.0))})"
    return f"next increase waits: {status.window_hold}; {when}"


def _table(title: str, *columns: str, names: int = 10) -> Table:
    """A table that wraps what does not fit instead of cutting it: the first column holds
    names (gates, commands, times) and keeps at least ``names`` characters."""
    table = Table(title=title, title_justify="left", expand=False)
    for index, column in enumerate(columns):
        table.add_column(column, overflow="fold", min_width=names if index == 0 else None)
    return table


def verdict_table(status: RolloutStatus) -> Table:
    columns = ["gate", "verdict", "value", "threshold", "fails in a row"]
    # Sequential gates say how much evidence the stage has against what it needs.
    weighed = any(v.evidence is not None for v in status.verdicts.values())
    table = _table("gates (last check)", *columns, *(["evidence"] if weighed else []), "why")
    for name, verdict in sorted(status.verdicts.items()):
        cells = [_value(verdict), verdict.threshold, str(status.failure_streaks.get(name, 0))]
        table.add_row(
            name,
            Text(verdict.outcome.value, style=OUTCOME_STYLE[verdict.outcome]),
            *cells,
            *([evidence_text(verdict)] if weighed else []),
            verdict.reason,
        )
    return table


def evidence_text(verdict: Verdict) -> str:
    """``1,200 of 6,000 requests to show x2.25``: the stage's evidence against what it needs."""
    have, need, target = verdict.evidence, verdict.evidence_needed, verdict.evidence_target
    if have is None:
        return "-"
    if need is None or target is None:
        return f"{have:,.0f} requests (no need known)"
    latency = verdict.test.endswith("latency")
    shown = f"{(target - 1) * 100:+.1f}%" if latency else f"x{target:.3g}"
    enough = " (enough)" if have >= need else ""
    return f"{have:,.0f} of {need:,.0f} requests to show {shown}{enough}"


def _value(verdict: Verdict) -> str:
    return "-" if verdict.value is None else f"{verdict.value:.6g}"


def audit_table(status: RolloutStatus, last: int = 10) -> Table:
    """The last entries of the audit trail: stage starts and passes, verdict changes, the end."""
    shown = status.events[-last:]
    title = "audit trail" if len(shown) == len(status.events) else f"audit trail (last {last})"
    table = _table(title, "when (UTC)", "kind", "what")
    for event in shown:
        # As text, not markup: a hook's answer or a reason may hold "[...]" of its own.
        table.add_row(f"{event.at:{WHEN}}", event.kind, Text(event.text))
    return table


def command_table(status: RolloutStatus, last: int = 10) -> Table:
    table = _table("commands received", "when (UTC)", "command", "by", "why", "via", "taken")
    for record in status.commands[-last:]:
        taken = Text("yes", style="green") if record.accepted else Text(f"no: {record.note}", "red")
        table.add_row(
            f"{record.at:{WHEN}}",
            record.kind,
            # As text: who sent it, verified by their key's fingerprint or only claimed.
            Text(who(record.by, record.verified)),
            record.reason,
            record.via,
            taken,
        )
    return table


def traffic_view(asked: ShiftRequest | None, traffic: TrafficReading | None) -> Text | None:
    """``Traffic:`` what the router routes now and what the run last asked for; then the
    restores done on the run's behalf, and what a person must do if anything is left."""
    if asked is None:
        return None
    text = Text("Traffic: ", style="bold")
    if traffic is None:
        text.append(f"the run last asked {asked.router.describe()} for {share(asked.split)}")
        return text
    if traffic.routes is not None:
        text.append(f"routes {share(traffic.routes)} now", style="bold")
        text.append(f" ({traffic.router})")
    else:
        text.append(traffic.unreadable, style="yellow")
    text.append(f" | last asked {share(asked.split)}")
    explained = traffic.restored is not None  # a restore made it differ, said just below
    if traffic.routes is not None and not traffic.routes.routes_like(asked.split) and not explained:
        text.append(" (not what the run asked for)", style="yellow")
    for restore in traffic.restores:
        if restore.done:
            text.append("\nRestored: ", style="bold green")
        elif restore.running:
            text.append("\nRestoring: ", style="bold yellow")
        else:
            text.append("\nRestore failed: ", style="bold red")
        text.append(restore.text)
    if traffic.todo:
        text.append("\nAction needed: ", style="bold red")
        text.append(traffic.todo, style="red")
    return text


def blocked_view(status: RolloutStatus) -> Text | None:
    """A rollback the router refuses for good: why, and what a person must do, in red."""
    if not status.restore_blocked:
        return None
    text = Text("RESTORE BLOCKED: ", style="bold red")
    text.append(status.restore_blocked, style="red")
    return text


def status_view(status: RolloutStatus) -> Group:
    parts: list[Table | Text] = [headline(status)]
    if (blocked := blocked_view(status)) is not None:
        parts.append(blocked)
    traffic = status.traffic if isinstance(status, ObservedStatus) else None
    if (lines := traffic_view(status.asked, traffic)) is not None:
        parts.append(lines)
    parts.append(stage_line(status))
    if status.verdicts:
        parts.append(verdict_table(status))
    if status.events:
        parts.append(audit_table(status))
    if status.commands:
        parts.append(command_table(status))
    return Group(*parts)


def records_view(records: TemporalRecords) -> Group:
    """What Temporal knows of the run while no worker answers: run, attributes, history tail."""
    now = records.as_of
    header = Text()
    header.append(f"{records.service}")
    if records.version:
        header.append(f" {records.version}")
    if records.closed and records.state:
        header.append(f"  {records.state.replace('_', ' ')}", style=_state_style(records.state))
    header.append("  from Temporal's records", style="bold yellow")
    lines = Text()
    lines.append(records.worker, style="yellow")
    run = f"\nrun {records.run_id} {records.execution_status}"
    run += f", started {_ago(records.started_at, now)}"
    if records.closed_at is not None:
        run += f", closed {_ago(records.closed_at, now)}"
    lines.append(f"{run}, {records.history_length} events in history")
    if records.ended:
        lines.append("\nended: ")
        lines.append(records.ended, style=_ending_style(records))
    if (traffic := traffic_view(records.asked, records.traffic)) is not None:
        lines.append("\n")
        lines.append(traffic)
    if records.published_state or records.stage or records.canary_weight is not None:
        lines.append("\nlast published: ")
        if records.published_state:
            lines.append(records.published_state, style=_state_style(records.published_state))
        if records.stage:
            lines.append(f"  stage {records.stage!r}")
        if records.canary_weight is not None:
            lines.append(f"  canary {records.canary_weight}%")
    elif records.summary:
        lines.append(f"\n{records.summary}")
    if records.workflow_task_waiting_since is not None:
        lines.append(
            "\na workflow task has waited for a worker since"
            f" {_ago(records.workflow_task_waiting_since, now)}",
            style="yellow",
        )
    for activity in records.pending_activities:
        lines.append(
            f"\npending activity {activity.activity} ({activity.state}, attempt {activity.attempt})"
        )
        if activity.last_failure:
            lines.append(f": last failure {activity.last_failure}")
    parts: list[RenderableType] = [header, lines]
    if records.last_verdicts:
        when = f" at {records.last_check_at:%H:%M:%S}" if records.last_check_at else ""
        table = _table(f"gates (last check{when})", "gate", "verdict", "value", "why")
        for verdict in records.last_verdicts:
            table.add_row(
                verdict.gate,
                Text(verdict.outcome.value, style=OUTCOME_STYLE[verdict.outcome]),
                _value(verdict),
                verdict.reason,
            )
        parts.append(table)
    if records.events:
        table = _table("last events in history", "when (UTC)", "event", "detail")
        for line in records.events:
            table.add_row(f"{line.at:{WHEN}}", line.kind, line.text)
        parts.append(table)
    if not records.closed:
        parts.append(
            Text(
                "The bake clock, commands and audit trail come from the workflow's status query,"
                " which a worker answers: start one with `rollout-worker`.",
                style="dim",
            )
        )
    return Group(*parts)


def answer_view(answer: RolloutStatus | TemporalRecords) -> Group:
    """The status view from the query, or the records view when no worker answered."""
    if isinstance(answer, TemporalRecords):
        return records_view(answer)
    return status_view(answer)


def watch_view(answer: RolloutStatus | TemporalRecords, note: str) -> Group:
    """`status --watch`: the view under a line saying whether the worker is away or back."""
    if not note:
        return answer_view(answer)
    return Group(Text(note, style="yellow"), answer_view(answer))


def as_json(answer: RolloutStatus | TemporalRecords) -> dict[str, Any]:
    """`status --json`: either view, with ``source`` saying which (query or records)."""
    if isinstance(answer, TemporalRecords):
        return answer.model_dump(mode="json")
    return {"source": "query", **answer.model_dump(mode="json")}


def _ago(moment: datetime, now: datetime) -> str:
    ago = format_duration(max((now - moment).total_seconds(), 0.0))
    return f"{moment:{WHEN}} UTC ({ago} ago)"


def _state_style(value: str) -> str:
    try:
        return STATE_STYLE.get(RolloutState(value), "bold")
    except ValueError:
        return "bold"


def _ending_style(records: TemporalRecords) -> str:
    if records.final_state is not None:
        return STATE_STYLE.get(records.final_state, "bold")
    return "bold red"


def progress_line(status: RolloutStatus) -> str:
    """One plain line per change, for `start --follow` in logs and CI."""
    gates = ", ".join(
        f"{name}={'-' if v.value is None else f'{v.value:.4g}'} {v.outcome.value}"
        for name, v in sorted(status.verdicts.items())
    )
    parts = [
        f"{status.state.value:<17}",
        f"stage {status.stage_index + 1}/{status.stage_count} {status.stage_name}",
        f"canary {status.canary_weight}%"
        + (f" + {status.canary_match}" if status.canary_match else ""),
    ]
    if status.state in (RolloutState.BAKING, RolloutState.PAUSED) and status.bake_total_s:
        parts.append(f"bake left {format_duration(status.bake_remaining_s)}")
    if gates:
        parts.append(gates)
    if status.reason and status.state.final:
        parts.append(f"reason: {status.reason}")
    if status.restore_blocked:
        parts.append(f"RESTORE BLOCKED: {status.restore_blocked}")
    return " | ".join(parts)
