"""A rollout's commands and audit trail: what people asked of it, what it did with each ask,
and the lines they read of it. The one writer of ``progress.commands`` and ``progress.events``.

A forward command may wait for the worker to say who signed it (``workflows.consent``).
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from plans import CommandKind, CommandRecord, OperatorCommand, Plan
    from plans.governance.approvals import ParentRelease
    from plans.runtime.progress import RolloutProgress
    from plans.runtime.state import AuditEvent
    from workflows.consent import Consent
    from workflows.rollout import decisions, metering

MAX_EVENTS_KEPT = 300


class CommandLog:
    """Takes or refuses each command, keeps it, and keeps the audit trail."""

    def __init__(self, plan: Plan, progress: RolloutProgress, release: ParentRelease | None):
        self._plan, self._progress, self._release = plan, progress, release

    @property
    def consent(self) -> Consent:
        plan = self._plan
        return Consent(plan.approval_rule, self._progress.approvals, plan.service, self._release)

    def last(self) -> CommandRecord | None:
        """The last command received: a new one is what wakes a waiting stage."""
        commands = self._progress.commands
        return commands[-1] if commands else None

    def refusal(self, command: OperatorCommand) -> str:
        """Why the command is refused at once (the update's validator), or ''."""
        why = decisions.refusal(self._plan, self._progress, command, workflow.now())
        return why or self.consent.unsigned_refusal(command)

    async def on_signal(self, kind: CommandKind, inputs: tuple[Any, ...]) -> None:
        """A command sent as a signal; a body that is no command is recorded as refused."""
        command = decisions.signal_command(kind, inputs, workflow.now())
        if isinstance(command, CommandRecord):
            self.record(command)
        else:
            await self.take(command, via="signal")

    async def take(self, command: OperatorCommand, via: str) -> CommandRecord:
        """Vet the command, apply it to the progress if it holds, and keep its record."""
        progress = self._progress

        def refusal() -> str:
            return decisions.refusal(self._plan, progress, command, workflow.now())

        vetted = await self.consent.vet(command, refusal, progress.stage_index)
        now = workflow.now()
        if vetted.takes:
            decisions.apply_command(progress, command, now)
        record = vetted.record(command, via, now)
        self.record(record)
        if vetted.asked:
            self.audit("command", vetted.audit_line(record.kind, command.by))
        return record

    async def started_by(self, inputs: tuple[Any, ...]) -> None:
        """Who started the rollout, as `rollout start` signed it."""
        self.audit("start", await self.consent.started_by(inputs))

    def record(self, record: CommandRecord) -> None:
        """Keep the command (the latest ``MAX_COMMANDS_KEPT``) and count it."""
        commands = self._progress.commands
        commands.append(record)
        del commands[: max(len(commands) - decisions.MAX_COMMANDS_KEPT, 0)]
        metering.command(self._plan, record)
        if record.accepted:
            workflow.logger.info("Command %s by %s accepted", record.kind, record.by)

    def audit(self, kind: str, text: str) -> None:
        """One line of the audit trail (the latest ``MAX_EVENTS_KEPT`` are kept)."""
        events = self._progress.events
        events.append(AuditEvent(at=workflow.now(), kind=kind, text=text))
        del events[: max(len(events) - MAX_EVENTS_KEPT, 0)]
        metering.audited(self._plan, self._progress, kind)
