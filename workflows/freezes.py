"""FreezeCalendar: the one durable list of freezes, a workflow that runs for as long as needed.

``rollout freeze add|remove`` are updates (validated, answered with the freeze), ``list``
a query. Freezes that have ended are dropped; the history stays bounded by continuing as
new, carrying the list. Removing a freeze lets traffic increase again, so it records who
and why, and takes a verified person where the worker requires signed commands.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.identity import verify_command
    from plans.governance.approvals import FREEZE_REMOVE, ApprovalRule, Origin, ProofRequest, judge
    from plans.governance.freezes import (
        FREEZE_CALENDAR_ID,
        MAX_FREEZES,
        CalendarRecord,
        Freeze,
        FreezeRemoval,
        FreezeRequest,
        RemovedFreeze,
    )
    from plans.runtime import messages
    from workflows.runs import record_history_version

UPDATES_PER_RUN = 500
MAX_REMOVALS_KEPT = 50


@workflow.defn(name=messages.FREEZE_CALENDAR.name)
class FreezeCalendar:
    """Holds the freezes; rollouts read them before each increase."""

    @workflow.init
    def __init__(
        self, freezes: list[Freeze] | None = None, record: CalendarRecord | None = None
    ) -> None:
        self._freezes = list(freezes or [])
        self._record = record or CalendarRecord()
        self._updates = 0

    @workflow.run
    async def run(
        self, freezes: list[Freeze] | None = None, record: CalendarRecord | None = None
    ) -> None:
        """``record``: the removals and used nonces, from the previous run."""
        record_history_version()
        while True:
            await self._idle()
            if self._updates >= UPDATES_PER_RUN or workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(args=[self._current(), self._record])

    async def _idle(self) -> None:
        try:
            await workflow.wait_condition(
                lambda: (
                    self._updates >= UPDATES_PER_RUN
                    or workflow.info().is_continue_as_new_suggested()
                ),
                timeout=timedelta(days=1),
                timeout_summary="drop ended freezes",
            )
        except TimeoutError:
            self._freezes = self._current()

    def _current(self) -> list[Freeze]:
        now = workflow.now()
        return [f for f in self._freezes if f.end > now]

    @workflow.update(name=messages.FREEZE_ADD.name)
    def add(self, request: FreezeRequest) -> Freeze:
        self._updates += 1
        self._freezes = self._current()
        freeze = Freeze(
            **request.model_dump(),
            id=f"f{workflow.info().run_id[:4]}{self._updates:03d}",
            added_at=workflow.now(),
        )
        self._freezes.append(freeze)
        return freeze

    @add.validator
    def _validate_add(self, request: FreezeRequest) -> None:
        if request.end <= workflow.now():
            raise ApplicationError("the freeze has already ended: give a later --until")
        if len(self._current()) >= MAX_FREEZES:
            raise ApplicationError(f"at most {MAX_FREEZES} freezes: remove some first")

    @workflow.update(name=messages.FREEZE_REMOVE.name)
    async def remove(self, body: Any) -> Freeze:
        """Remove a freeze: a FreezeRemoval (who, why, signed), or its id alone (older CLIs)."""
        self._updates += 1
        removal = _removal(body)
        by, verified = await self._judge(removal)
        removal = removal.model_copy(update={"by": by})
        found = next((f for f in self._freezes if f.id == removal.id), None)
        if found is None:
            raise ApplicationError(f"no freeze {removal.id!r}: it was removed meanwhile")
        self._freezes.remove(found)
        removed = RemovedFreeze(
            freeze=found, by=removal.by, verified=verified, reason=removal.reason, at=workflow.now()
        )
        removals = self._record.removals
        removals.append(removed)
        del removals[: max(len(removals) - MAX_REMOVALS_KEPT, 0)]
        workflow.logger.info("Freeze %s", removed.describe())
        return found

    @remove.validator
    def _validate_remove(self, body: Any) -> None:
        freeze_id = _removal(body).id
        if not any(f.id == freeze_id for f in self._freezes):
            known = ", ".join(f.id for f in self._current()) or "none"
            raise ApplicationError(f"no freeze {freeze_id!r} (freezes: {known})")

    async def _judge(self, removal: FreezeRemoval) -> tuple[str, str]:
        """Who removes the freeze: (name, key fingerprint) when verified, (name, '') claimed."""
        answer = await workflow.execute_local_activity(
            verify_command,
            ProofRequest(signed=removal.signed),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary=f"who removes freeze {removal.id}?",
        )
        info = workflow.info()
        how = f"rollout freeze remove {removal.id} --reason ..."
        judged = judge(
            ApprovalRule(),
            answer,
            removal.signed,
            kind=FREEZE_REMOVE,
            origins=[
                Origin(
                    workflow_id=FREEZE_CALENDAR_ID,
                    run_ids=[info.first_execution_run_id, info.run_id],
                )
            ],
            now=workflow.now(),
            ledger=self._record.ledger,
            how=how,
            what="removing a freeze",
        )
        claim, signer = judged.claim, judged.signer
        if signer is not None and claim is not None:
            self._record.ledger.remember(claim, workflow.now())
        why = judged.refusal
        if not why and claim is not None and signer is not None and claim.subject != removal.id:
            signed_for = claim.subject
            why = f"{FREEZE_REMOVE}: the signature is for freeze {signed_for!r}, not {removal.id!r}"
        if why:
            raise ApplicationError(why, type="CommandRefused", non_retryable=True)
        return (signer.name, signer.fingerprint) if signer is not None else (removal.by, "")

    @workflow.query(name=messages.FREEZE_LIST.name)
    def freezes(self) -> list[Freeze]:
        return self._current()

    @workflow.query(name=messages.FREEZE_REMOVALS.name)
    def removals(self) -> list[RemovedFreeze]:
        """The freezes removed lately, latest last, with who removed them and why."""
        return list(self._record.removals)


def _removal(body: Any) -> FreezeRemoval:
    """What a remove update carries; a bare id (from older CLIs) removes as 'unknown'."""
    if isinstance(body, str):
        return FreezeRemoval(id=body)
    try:
        return FreezeRemoval.model_validate(body)
    except ValidationError as error:
        first = str(error).splitlines()[0]
        raise ApplicationError(
            f"the removal must be like {{'id': 'f1a2b001', 'by': 'ana', 'reason': '...'}}: {first}",
            type="CommandRefused",
            non_retryable=True,
        ) from None
