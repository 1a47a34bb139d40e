"""Going forward takes a verified person: a workflow's side of signed commands.

The worker checks a signature in a local activity (``activities.identity``), since workflow
code may not run ssh-keygen; the rules (``plans.governance.approvals``) decide on what it
found. Only forward commands take this path: the worker may require a signature of every
one, even where the plan names no approvers. Rollouts and releases share it, each with its
own ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.identity import verify_command
    from plans import CommandRecord, OperatorCommand
    from plans.governance.approvals import (
        COUNTED,
        FORWARD,
        START,
        ApprovalLedger,
        ApprovalRule,
        Judgement,
        Origin,
        ParentRelease,
        ProofAnswer,
        ProofRequest,
        SignedCommand,
        Signer,
        claim_refusal,
        count_approval,
        judge,
        needs_signature,
        who,
    )

VERIFY_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=200))
VERIFY_TIMEOUT = timedelta(seconds=30)


@dataclass
class Vetted:
    """What became of a command: refused (and why), held for more approvals, or taken."""

    refusal: str = ""
    signer: Signer | None = None
    enough: bool = True
    note: str = ""
    asked: bool = False  # it took the verifying path, so the audit tells who sent it

    @property
    def takes(self) -> bool:
        return not self.refusal and self.enough

    def by(self, claimed: str) -> str:
        return self.signer.name if self.signer is not None else claimed

    @property
    def verified(self) -> str:
        return self.signer.fingerprint if self.signer is not None else ""

    def audit_line(self, kind: str, claimed: str) -> str:
        """The command as the audit tells it: who (verified or claimed), what became of it."""
        if self.refusal:
            fate = f"refused: {self.refusal}"
        elif not self.enough:
            fate = f"counted: {self.note}"
        else:
            fate = "taken" + (f" ({self.note})" if self.note else "")
        return f"{kind} by {who(self.by(claimed), self.verified)}: {fate}"

    def record(self, command: OperatorCommand, via: str, at: datetime) -> CommandRecord:
        """The command's record: who sent it (verified or claimed), what became of it."""
        return CommandRecord(
            kind=command.kind.value,
            by=self.by(command.by),
            reason=command.reason,
            at=at,
            accepted=not self.refusal,
            note=self.refusal or self.note,
            via=via,
            verified=self.verified,
        )


class Consent:
    """Judges who sends forward commands; keeps the nonces and approvals in ``ledger``."""

    def __init__(
        self,
        rule: ApprovalRule,
        ledger: ApprovalLedger,
        service: str,
        release: ParentRelease | None = None,
    ) -> None:
        self._rule = rule
        self.ledger = ledger
        self._service = service
        self._release = release

    def asks(self, command: OperatorCommand) -> bool:
        """Whether this command takes the verifying path: every forward command does, since the
        worker may require signatures where the plan names no approvers."""
        return command.kind.value in FORWARD

    def unsigned_refusal(self, command: OperatorCommand, target: str = "") -> str:
        """The refusal the CLI gets at once for an unsigned forward command the plan forbids."""
        kind = command.kind.value
        if kind in FORWARD and self._rule.named and command.signed is None:
            return needs_signature(kind, self._rule, self.how(kind, target))
        return ""

    def how(self, kind: str, target: str = "") -> str:
        """The command line that sends ``kind`` here."""
        parent = self._parent()
        target = target or (parent.target if parent is not None else "")
        return f"rollout {kind} {self._service}" + (f" --target {target}" if target else "")

    async def judge(self, command: OperatorCommand, target: str = "") -> Judgement:
        """Ask the worker who signed the command, then apply the plan's rule to the answer.

        ``target`` is the release's target a command to a release names.
        """
        kind = command.kind.value
        answer = await self._ask(command.signed, kind)
        judged = judge(
            self._rule,
            answer,
            command.signed,
            kind=kind,
            origins=self._origins(target),
            now=workflow.now(),
            ledger=self._with_starter(),
            how=self.how(kind, target),
        )
        if judged.signer is not None and judged.claim is not None:
            # A verified claim is used up whatever became of it: it cannot be sent again later.
            self.ledger.remember(judged.claim, workflow.now())
        return judged

    async def vet(
        self, command: OperatorCommand, refusal: Callable[[], str], step: int, target: str = ""
    ) -> Vetted:
        """Refused by the state (``refusal``), by its signature, or taken (perhaps counted).

        ``step`` is what an approve or promote is counted for (a stage, a wave): ``approvals``
        asks for that many distinct verified people at one step. A release leaves the
        counting of what it forwards to one ``target`` to that target's rollout.
        """
        why = refusal()
        if why or not self.asks(command):
            return Vetted(refusal=why)
        judged = await self.judge(command, target)
        # The workflow may have moved on while the worker checked the signature.
        why = judged.refusal or refusal()
        kind = command.kind.value
        enough, note = True, ""
        if not why and kind in COUNTED and not target:
            key = f"{kind}:{step}"
            enough, note = count_approval(self._rule, self.ledger, key, judged.signer)
        return Vetted(refusal=why, signer=judged.signer, enough=enough, note=note, asked=True)

    async def started_by(self, inputs: tuple[Any, ...]) -> str:
        """Take a signed claim of who started this workflow; an audit line that says how it went."""
        ledger = self.ledger
        try:
            signed = SignedCommand.model_validate(inputs[0] if len(inputs) == 1 else None)
        except ValidationError:
            return "start claim refused: the body must be a signed command from `rollout start`"
        if ledger.starter is not None:
            return f"start claim refused: the start was claimed by {ledger.starter.describe()}"
        answer = await self._ask(signed, START)
        ledger.start_claimed = True
        claim = signed.claim()
        if claim is None or answer.signer is None:
            why = answer.problem or answer.setup or "the signed text is not a start claim"
            return f"start claim refused: {why}"
        now = workflow.now()
        why = claim_refusal(
            claim, kind=START, origins=self._origins()[:1], now=now, ledger=ledger, how="rollout"
        )
        ledger.remember(claim, now)
        if why or ledger.starter is not None:
            return f"start claim refused: {why or 'the start was claimed meanwhile'}"
        ledger.starter = answer.signer
        return f"started by {answer.signer.describe()}"

    async def _ask(self, signed: SignedCommand | None, kind: str) -> ProofAnswer:
        answer: ProofAnswer = await workflow.execute_local_activity(
            verify_command,
            ProofRequest(signed=signed),
            start_to_close_timeout=VERIFY_TIMEOUT,
            retry_policy=VERIFY_RETRY,
            summary=f"who signed {kind}?" if signed is not None else f"may {kind} go unsigned?",
        )
        return answer

    def _parent(self) -> ParentRelease | None:
        """The release this rollout runs under, if Temporal says it is the parent."""
        parent = workflow.info().parent
        release = self._release
        if release is None or parent is None or parent.workflow_id != release.workflow_id:
            return None
        return release

    def _origins(self, target: str = "") -> list[Origin]:
        """Where claims may come from: this workflow's runs, and the release it runs under."""
        info = workflow.info()
        runs = [info.first_execution_run_id, info.run_id]
        origins = [Origin(workflow_id=info.workflow_id, run_ids=runs, targets=[target])]
        release = self._parent()
        if release is not None:
            # Signed for the release: for all its targets, or for this one by name.
            targets = ["", release.target]
            origins.append(
                Origin(workflow_id=release.workflow_id, run_ids=[release.run_id], targets=targets)
            )
        return origins

    def _with_starter(self) -> ApprovalLedger:
        """The ledger, with the release's verified starter for a target that has none."""
        release = self._parent()
        ledger = self.ledger
        if ledger.starter is None and release is not None and release.starter is not None:
            ledger.starter = release.starter
        return ledger
