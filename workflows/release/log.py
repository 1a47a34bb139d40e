"""What a release shows and keeps: its state, audit trail, commands and current details.

The one writer of ``ReleaseProgress.state``, ``events`` and ``commands``: the release and its
children's runner tell it what happened; it trims what it keeps and upserts what people see
(the workflow's current details and search attributes) only when that changed.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from plans.runtime.release import (
        ReleaseCommandRecord,
        ReleaseInput,
        ReleaseProgress,
        ReleaseState,
    )
    from plans.runtime.state import AuditEvent
    from plans.runtime.visibility import RELEASE, SERVICE, STATE, VERSION

MAX_EVENTS_KEPT = 300
MAX_COMMANDS_KEPT = 100


class ReleaseLog:
    """The release's audit trail, its commands and what it publishes."""

    def __init__(self, input: ReleaseInput, progress: ReleaseProgress) -> None:
        self._input = input
        self._plan = input.fleet
        self._progress = progress
        self._published: tuple[Any, ...] = ()

    def audit(self, kind: str, text: str) -> None:
        events = self._progress.events
        events.append(AuditEvent(at=workflow.now(), kind=kind, text=text))
        del events[: max(len(events) - MAX_EVENTS_KEPT, 0)]

    def command(self, record: ReleaseCommandRecord) -> None:
        """Keep a command, taken or refused, and write its audit line."""
        commands = self._progress.commands
        commands.append(record)
        del commands[: max(len(commands) - MAX_COMMANDS_KEPT, 0)]
        where = f" on {record.target}" if record.target else ""
        verdict = "taken" if record.accepted else f"refused: {record.note}"
        if record.accepted and record.note:
            verdict += f" ({record.note})"
        self.audit("command", f"{record.kind}{where} by {record.who()}: {verdict}")

    def last_command(self) -> ReleaseCommandRecord | None:
        commands = self._progress.commands
        return commands[-1] if commands else None

    def set_state(self, state: ReleaseState) -> None:
        if state != self._progress.state:
            self._progress.state = state
        self.publish()

    def end(self, final: ReleaseState, reason: str) -> None:
        """The release's last state, with the reason it ended."""
        self._progress.reason = reason
        self.audit("end", f"{final.value.replace('_', ' ')}: {reason}")
        self.set_state(final)

    def publish(self) -> None:
        """Current details and search attributes; upserted only when they change."""
        p, plan = self._progress, self._plan
        shown = tuple((n, r.state.value) for n, r in p.targets.items())
        now = (p.state.value, p.wave_index, shown)
        if now == self._published:
            return
        self._published = now
        lines = [f"release {plan.service} {plan.version}: {p.state.value}"]
        for i, wave in enumerate(plan.waves):
            states = ", ".join(f"{t} {p.targets[t].state.value}" for t in wave.targets)
            lines.append(f"wave {i + 1}: {states}")
        if p.reason:
            lines.append(p.reason)
        workflow.set_current_details("\n".join(lines))
        if self._input.visibility:
            workflow.upsert_search_attributes(
                [
                    SERVICE.value_set(plan.service),
                    VERSION.value_set(plan.version),
                    STATE.value_set(p.state.value),
                    RELEASE.value_set(plan.workflow_id),
                ]
            )
