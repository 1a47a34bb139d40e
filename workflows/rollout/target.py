"""The rollout's traffic target, seen from the workflow: owned, moved, read back, restored.

Every side effect on the router and on the target's lease is here, so the workflow's stage
steps say what they do ("shift", "read", "restore") and this module says how. It runs
inside the workflow: activities only, no I/O of its own.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.rollout import read_traffic, shift_traffic
    from plans import (
        Compensation,
        EventKind,
        Notification,
        Plan,
        RequestMatch,
        RolloutState,
        ShiftRequest,
        TargetClaim,
        TrafficSplit,
    )
    from plans.plan import written_hosts
    from plans.runtime.progress import RolloutProgress
    from plans.runtime.visibility import service_of
    from plans.variables import named_variables
    from workflows.failures import CANARY_GONE, error_type, root_message
    from workflows.ownership import claim_target, release_target, target_claim
    from workflows.rollout import metering
    from workflows.rollout.commands import CommandLog
    from workflows.rollout.notices import Notices
    from workflows.rollout.status import Board

SHIFT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=["RouterRefused"],
)
SHIFT_DEADLINE = timedelta(minutes=10)
RESTORE_ATTEMPTS_BEFORE_ALERT = 5
RESTORE_WAIT_CAP_S = 300  # a router refusing for good is tried again every 5 minutes at most
RESTORE_ROUNDS_PER_RUN = 100  # failed rounds a run keeps in its history before a new run
READ_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=2)


class TargetRefused(Exception):
    """Another rollout owns the target; the message names it and says what to do."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Target:
    """One run's hold on its router: the lease, the weights, the undo stack."""

    def __init__(
        self, plan: Plan, progress: RolloutProgress, log: CommandLog, notices: Notices, board: Board
    ) -> None:
        self._plan = plan
        self._progress = progress
        self._log, self._notices, self._board = log, notices, board

    # -- ownership ----------------------------------------------------------------------------

    async def claim(self, notice: Notification | None = None) -> None:
        """Own the router's target, or raise TargetRefused naming the rollout that owns it.

        The claim carries what puts stable back, and ``notice`` to tell people, so the lease
        can restore the target itself if this rollout ends without doing so (terminated);
        and the variables and hosts the plan names, which the worker refuses right there,
        before any request, when its policy does not give them to plans.
        """
        progress, plan = self._progress, self._plan
        claim = self._claim().model_copy(
            update={
                "owner_run_id": workflow.info().run_id,
                "restore": self.request(0),
                "notice": notice,
                "variables": named_variables(plan),
                "hosts": written_hosts(plan),
            }
        )
        answer = await claim_target(claim)
        if answer.claimed:
            progress.target.owned = True
            self._log.audit("target", f"owns {plan.router.target_key()}")
            return
        if answer.refused:
            raise TargetRefused(f"this worker does not run the plan as written: {answer.refused}")
        since = f", started {answer.since:%Y-%m-%d %H:%M:%S} UTC" if answer.since else ""
        raise TargetRefused(
            f"{plan.router.describe()} is being moved by {answer.owner}"
            f" (run {answer.owner_run_id}{since}); one rollout at a time may move a target:"
            f" wait for it to end, or stop it with `rollout rollback {service_of(answer.owner)}`"
        )

    async def release(self) -> None:
        """Give the target back; a lost release is mended by the lease itself."""
        progress = self._progress
        if not progress.target.owned:
            return
        try:
            await release_target(self._claim())
        except ActivityError as error:
            # The lease looks at its owner now and then and ends itself once the run has ended.
            workflow.logger.warning("Releasing the target failed: %s", root_message(error))
        progress.target.owned = False

    def _claim(self) -> TargetClaim:
        plan = self._plan
        return target_claim(plan.target_lease_id, plan.router.target_key(), plan.service)

    # -- moving and reading the split ---------------------------------------------------------

    async def shift(self, weight: int, summary: str, match: RequestMatch | None = None) -> None:
        """Move traffic; the undo record is pushed first so a crash mid-shift still restores.

        ``match`` names requests sent to the canary whatever the weight; a shift without one
        clears the last one.
        """
        progress, plan = self._progress, self._plan
        if not any(c.shift.router == plan.router for c in progress.target.compensations):
            progress.target.compensations.append(
                Compensation(
                    shift=self.request(0),
                    description=f"restore 100% stable on {plan.router.describe()}",
                )
            )
        self._board.show(RolloutState.SHIFTING)
        if match is not None:
            summary += f", and every request with {match.describe()}"
        await self._set(self.request(weight, match), summary)
        progress.canary_weight = weight
        progress.canary_match = match
        _raise_if_cancelled()

    async def read(self, request: ShiftRequest) -> TrafficSplit | None:
        """What the router routes now, or None (recorded once) when it cannot be read."""
        try:
            split: TrafficSplit = await workflow.execute_local_activity(
                read_traffic,
                request,
                start_to_close_timeout=request.router.read_timeout,
                retry_policy=READ_RETRY,
                summary=f"read the split on {request.router.describe()}",
            )
        except ActivityError as error:
            return self.observed(None, root_message(error))
        return self.observed(split, "")

    def observed(self, split: TrafficSplit | None, unreadable: str) -> TrafficSplit | None:
        """Keep what a read found: the router going unreadable, and back, is recorded once."""
        progress = self._progress
        if split is None:
            if not progress.target.router_unreadable:
                self._log.audit("router", f"cannot read the split: {unreadable}")
            progress.target.router_unreadable = True
            return None
        if progress.target.router_unreadable:
            self._log.audit("router", "the split can be read again")
        progress.target.router_unreadable = False
        return split

    async def repair_drift(self, split: TrafficSplit | None) -> None:
        """Put the wanted split back when the router routes something else (a reload, a person)."""
        progress, plan = self._progress, self._plan
        wanted = TrafficSplit.canary_percent(progress.canary_weight, progress.canary_match)
        if split is None or split.routes_like(wanted):
            return
        text = (
            f"{plan.router.describe()} routes {split}, but the rollout set {wanted}:"
            " putting it back"
        )
        self._log.audit("drift", text)
        await self._notices.send_line(
            EventKind.DRIFT, f"Rollout of {plan.service} {plan.version}: drift: {text}"
        )
        await self._set(
            self.request(progress.canary_weight, progress.canary_match),
            f"re-assert canary at {progress.canary_weight}% after drift",
        )
        _raise_if_cancelled()

    async def _set(self, request: ShiftRequest, summary: str) -> None:
        await workflow.execute_activity(
            shift_traffic,
            request,
            start_to_close_timeout=self._plan.router.shift_timeout,
            schedule_to_close_timeout=SHIFT_DEADLINE,
            retry_policy=SHIFT_RETRY,
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=summary,
        )

    def request(self, weight: int, match: RequestMatch | None = None) -> ShiftRequest:
        """Canary at ``weight`` percent on the plan's router, and the requests ``match`` names."""
        plan = self._plan
        return ShiftRequest(
            router=plan.router,
            stable=plan.stable,
            canary=plan.canary,
            split=TrafficSplit.canary_percent(weight, match),
        )

    def promoted(self) -> None:
        """The new version is stable now: nothing is left to undo."""
        self._progress.target.compensations.clear()

    # -- putting stable back --------------------------------------------------------------------

    async def restore(self) -> bool:
        """Run the compensation stack in reverse; restoring traffic never gives up.

        Each restore is read back once the stack is empty, and one that a reload undid is
        asserted again until it holds. A failing restore is told in the background, without
        holding it up.
        A canary server the router no longer has counts as restored; people are paged at
        rounds 1, 2, 4, 8... rather than at every round, and after ``RESTORE_ROUNDS_PER_RUN``
        failed rounds this returns False, for the run to go on restoring in a new one; True
        once stable is back.
        """
        progress, plan = self._progress, self._plan
        failures = 0
        restored: list[Compensation] = []
        while progress.target.compensations:
            compensation = progress.target.compensations[-1]
            try:
                await workflow.execute_activity(
                    shift_traffic,
                    compensation.shift,
                    start_to_close_timeout=plan.router.shift_timeout,
                    retry_policy=RetryPolicy(
                        initial_interval=timedelta(seconds=1),
                        maximum_interval=timedelta(seconds=10),
                        maximum_attempts=RESTORE_ATTEMPTS_BEFORE_ALERT,
                    ),
                    summary=compensation.description,
                )
            except ActivityError as error:
                if error_type(error) == CANARY_GONE:
                    self._log.audit("restore", f"{root_message(error)}: counted as restored")
                    progress.target.compensations.pop()
                    continue
                failures += 1
                progress.target.restore_rounds += 1
                metering.restore_failing(plan)
                wait = timedelta(
                    seconds=min(30 * progress.target.restore_rounds, RESTORE_WAIT_CAP_S)
                )
                if _pages_at(progress.target.restore_rounds):
                    await self._notices.send_line_later(
                        EventKind.RESTORE_FAILING,
                        f"Rollback of {plan.service} cannot {compensation.description} after"
                        f" {failures * RESTORE_ATTEMPTS_BEFORE_ALERT} attempts"
                        f" ({root_message(error)}); still retrying",
                    )
                progress.target.restore_blocked = blocked_text(plan, compensation, error, wait)
                self._board.show()
                if progress.target.restore_rounds % RESTORE_ROUNDS_PER_RUN == 0:
                    return False
                await workflow.sleep(wait, summary="retry restore")
                continue
            restored.append(progress.target.compensations.pop())
            if not progress.target.compensations:
                drifted = [c for c in restored if not await self._holds(c)]
                restored = []
                if drifted:
                    failures += 1
                    progress.target.compensations.extend(reversed(drifted))
                    await workflow.sleep(
                        timedelta(seconds=min(2 * failures, 60)), summary="re-assert restore"
                    )
        progress.canary_weight = 0
        progress.canary_match = None
        progress.target.restore_blocked = ""
        return True

    async def _holds(self, compensation: Compensation) -> bool:
        """Whether the router still routes what this compensation restored."""
        split = await self.read(compensation.shift)
        if split is None or split.routes_like(compensation.shift.split):
            return True
        self._log.audit(
            "drift",
            f"{compensation.shift.router.describe()} routes {split} after"
            f" the restore to {compensation.shift.split}: restoring again",
        )
        return False


def _pages_at(rounds: int) -> bool:
    """Page at the 1st, 2nd, 4th, 8th... failed round: loud at first, then rarer."""
    return rounds & (rounds - 1) == 0


def blocked_text(
    plan: Plan, compensation: Compensation, error: BaseException, wait: timedelta
) -> str:
    """What stops stable from coming back, and what a person must do about it."""
    return (
        f"stable is not back: {plan.router.describe()} refuses to"
        f" {compensation.description} ({root_message(error)}). Make the router accept the"
        f" change (fix its runtime API, its config or the server names), or put stable back"
        f" by hand; the rollout tries again every {int(wait.total_seconds())} s and ends"
        " once the router routes all traffic to stable"
    )


def _raise_if_cancelled() -> None:
    """Surface a cancellation that arrived while a shift we wait for completed anyway.

    A shift awaited with WAIT_CANCELLATION_COMPLETED that finishes normally returns its
    result, and the cancellation request would otherwise be forgotten.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()
