"""How a rollout stops: stable back first, with nothing cancelling it, then the end told.

Mixed into ``RolloutWorkflow``: these steps drive the run's own parts (its target, its
notices, its hooks) and write its progress, so they live beside it rather than behind
callbacks. Deterministic workflow code, like the rest of ``workflows/``.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from plans import Plan, RolloutResult, RolloutState
    from plans.runtime.inputs import RolloutInput
    from plans.runtime.progress import RolloutProgress
    from workflows.rollout.ending import write_report
    from workflows.rollout.hooks import Hooks
    from workflows.rollout.notices import Notices
    from workflows.rollout.status import Board, result_of, rolled_back
    from workflows.rollout.target import Target
    from workflows.runs import continue_in_new_run


class Stopping:
    """The rollout's stop: the compensation stack run to its end, then the run's end."""

    _input: RolloutInput
    _plan: Plan
    _progress: RolloutProgress
    _target: Target
    _notices: Notices
    _hooks: Hooks
    _board: Board

    def _audit(self, kind: str, text: str) -> None:
        raise NotImplementedError  # the workflow's audit trail

    async def _go_on_restoring(self) -> RolloutResult:
        """A new run of a rollback whose restore the router kept refusing: carry on with it."""
        progress = self._progress
        final = progress.stopping_as or RolloutState.ROLLED_BACK
        await self._stop(progress.reason, final)
        if final == RolloutState.ROLLED_BACK:
            raise rolled_back(self._plan, progress)
        return result_of(self._plan, progress)

    async def _stop(self, reason: str, final: RolloutState = RolloutState.ROLLED_BACK) -> None:
        """Put stable back and end ``final``; nothing cancels the restore once it has begun.

        A cancel that arrives meanwhile (``temporal workflow cancel``, a release closing its
        children) is recorded, and honoured once stable is back and read back.
        """
        if self._progress.state == RolloutState.PROMOTED:
            return  # cancelled while telling of the promotion: the new version is stable now
        stopping = asyncio.ensure_future(self._restore_first(reason, final))
        cancelled = False
        while not stopping.done():
            try:
                await asyncio.shield(stopping)
            except asyncio.CancelledError:
                if not stopping.done() and not cancelled:
                    self._audit("cancel", "cancel asked while stable is put back: after it")
                cancelled = True
        stopping.result()
        if cancelled:
            raise asyncio.CancelledError()

    async def _restore_first(self, reason: str, final: RolloutState) -> None:
        """The router first: people, hooks and the report are told while it is put back."""
        progress = self._progress
        begins = progress.stopping_as is None  # not a run carrying on a restore the router refused
        if begins:
            progress.reason = reason
            progress.stopping_as = final
            self._audit("rollback", f"restoring stable: {reason}")
            self._board.show(RolloutState.ROLLING_BACK)
        # Started first, so the restore's shift is the first thing the run schedules.
        restoring = asyncio.ensure_future(self._target.restore())
        if begins:
            # Told once the router has answered the restore: nothing goes ahead of it.
            self._notices.rollback_starting(
                reason, lambda: restoring.done() or progress.target.restore_rounds > 0
            )
        if not await restoring:
            await continue_in_new_run(self._input, progress)
        await self._hooks.run_point("on_rollback", reason=reason)
        await self._end_restored(reason, final)

    async def _end_restored(self, reason: str, final: RolloutState) -> None:
        progress = self._progress
        self._board.set_state(final)
        self._audit("end", f"{final.value.replace('_', ' ')}: {reason}")
        self._board.show()
        await write_report(progress)
        await self._notices.drain()
        await self._notices.ended(final.value.replace("_", " "), reason)
        await self._target.release()
