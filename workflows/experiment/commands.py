"""An experiment's commands and audit trail: what people asked, what became of each ask.

The rollout's commands, through the same update and signals: pause and resume, rollback
(or abort), and promote naming the variant to roll forward. A forward command (promote,
resume) is judged by who signed it, as a rollout's is (``workflows.consent``). The one
writer of ``progress.commands`` and ``progress.events``.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from plans import CommandKind, CommandRecord, OperatorCommand
    from plans.experiment import ExperimentPlan
    from plans.runtime.experiment import ExperimentProgress, ExperimentState
    from plans.runtime.state import AuditEvent
    from workflows.consent import Consent
    from workflows.experiment import board, decisions
    from workflows.rollout.decisions import signal_command

MAX_KEPT = 300


class Commands:
    """Takes or refuses each command, keeps it, and keeps the audit trail."""

    def __init__(
        self, plan: ExperimentPlan, progress: ExperimentProgress, shown: board.Board
    ) -> None:
        self._plan, self._progress, self._board = plan, progress, shown

    def consent(self) -> Consent:
        return Consent(self._plan.approval_rule, self._progress.approvals, self._plan.service)

    def refusal(self, command: OperatorCommand) -> str:
        why = decisions.refusal(self._plan, self._progress, command.kind.value, command.variant)
        return why or self.consent().unsigned_refusal(command)

    async def on_signal(self, kind: CommandKind, inputs: tuple[Any, ...]) -> None:
        command = signal_command(kind, inputs, workflow.now())
        if isinstance(command, CommandRecord):
            self.record(command)
        else:
            await self.take(command, via="signal")

    async def take(self, command: OperatorCommand, via: str) -> CommandRecord:
        """Vet the command (a forward one by who signed it), apply it, keep its record."""
        p = self._progress

        def refusal() -> str:
            why = decisions.refusal(self._plan, p, command.kind.value, command.variant)
            claim = command.signed.claim() if command.signed is not None else None
            if not why and claim is not None and claim.subject != command.variant:
                why = f"{command.kind.value}: the signature names variant {claim.subject!r}"
            return why

        vetted = await self.consent().vet(command, refusal, 0)
        now = workflow.now()
        if vetted.takes:
            self._apply(command, vetted.by(command.by))
        record = vetted.record(command, via, now)
        self.record(record)
        if vetted.asked:
            self.audit("command", vetted.audit_line(record.kind, command.by))
        self._board.show()
        return record

    def _apply(self, command: OperatorCommand, by: str) -> None:
        p, now = self._progress, workflow.now()
        said = f" ({command.reason})" if command.reason else ""
        if command.kind == CommandKind.PAUSE:
            p.paused, p.paused_since = True, now
            p.state = ExperimentState.PAUSED
        elif command.kind == CommandKind.RESUME:
            if p.paused_since is not None:
                p.paused_for_s += (now - p.paused_since).total_seconds()
            p.paused, p.paused_since = False, None
            p.state = ExperimentState.RUNNING
        elif command.kind == CommandKind.PROMOTE:
            p.winner, p.chosen_by = command.variant, by
        else:
            p.stop_asked = f"{command.kind.value} by {by}{said}"
        if not self.consent().asks(command):  # a forward command is audited as vetted
            self.audit("command", f"{command.kind.value} by {by}{said}")

    def pause_for(self, why: str) -> None:
        """Pause on the experiment's own account (a guardrail that cannot judge): a person
        resumes it, or rolls it back."""
        p = self._progress
        p.paused, p.paused_since = True, workflow.now()
        p.state = ExperimentState.PAUSED
        self.audit("pause", f"paused: {why}")

    def record(self, record: CommandRecord) -> None:
        p = self._progress
        p.commands.append(record)
        del p.commands[: max(len(p.commands) - MAX_KEPT, 0)]

    def audit(self, kind: str, text: str) -> None:
        p = self._progress
        p.events.append(AuditEvent(at=workflow.now(), kind=kind, text=text))
        del p.events[: max(len(p.events) - MAX_KEPT, 0)]
