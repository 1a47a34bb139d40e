"""FreezeCalendar: the one durable list of freezes, a workflow that runs for as long as needed.

``rollout freeze add|remove`` are updates (validated, answered with the freeze), ``list``
a query. Freezes that have ended are dropped; the history stays bounded by continuing as
new, carrying the list.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from plans.freezes import MAX_FREEZES, Freeze, FreezeRequest

UPDATES_PER_RUN = 500


@workflow.defn(name="FreezeCalendar")
class FreezeCalendar:
    """Holds the freezes; rollouts read them before each increase."""

    @workflow.init
    def __init__(self, freezes: list[Freeze] | None = None) -> None:
        self._freezes = list(freezes or [])
        self._updates = 0

    @workflow.run
    async def run(self, freezes: list[Freeze] | None = None) -> None:
        while True:
            await self._idle()
            if self._updates >= UPDATES_PER_RUN or workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._current())

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

    @workflow.update(name="add")
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

    @workflow.update(name="remove")
    def remove(self, freeze_id: str) -> Freeze:
        self._updates += 1
        found = next(f for f in self._freezes if f.id == freeze_id)
        self._freezes.remove(found)
        return found

    @remove.validator
    def _validate_remove(self, freeze_id: str) -> None:
        if not any(f.id == freeze_id for f in self._freezes):
            known = ", ".join(f.id for f in self._current()) or "none"
            raise ApplicationError(f"no freeze {freeze_id!r} (freezes: {known})")

    @workflow.query(name="list")
    def freezes(self) -> list[Freeze]:
        return self._current()
