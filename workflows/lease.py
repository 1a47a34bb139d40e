"""TargetLease: one running workflow per traffic target, so one rollout moves it at a time.

Temporal runs at most one workflow per id, which makes the claim race-free: of two
rollouts that start on one target at the same moment, one starts the lease and the
other finds it. The owner releases the lease when it ends.

A rollout that is terminated (or times out) runs no code of its own at its end, so it
cannot put stable back. Its lease watches it (one long poll on its close event) and does:
within seconds of the terminate it sets the split the claim names (100% stable), reads it
back, tells the owner's channels, and ends saying so in its result and details (an
experiment's claim names its shares instead: the control at 100%). A reset
owner runs on under the same id and is watched on. A canary server the router no longer
has counts as restored; any other refusal is tried again (every 5 minutes at most) with
the lease held, so no other rollout moves the target meanwhile.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.owners import WATCH_FOR, Owners
    from activities.rollout import notify, read_traffic, shift_traffic
    from plans import OwnerEnd, ShiftRequest, TargetClaim
    from plans.runtime import messages
    from plans.runtime.shares import SharesRequest, VariantShares
    from workflows.failures import CANARY_GONE, error_type, root_message
    from workflows.runs import record_history_version

RESTORE_WAIT_CAP = 300  # seconds between tries of a restore the router refuses, at most
Restore = Callable[[], Awaitable[str]]  # one try: what it put back and read back, or ''


@workflow.defn(name=messages.LEASE.name)
class TargetLease:
    """Held by one rollout; ends when that rollout releases it or is found to have ended."""

    @workflow.init
    def __init__(self, claim: TargetClaim) -> None:
        self._claim = claim
        self._released = False

    @workflow.run
    async def run(self, claim: TargetClaim) -> str:
        record_history_version()
        while True:
            watching = workflow.start_activity_method(
                Owners.owner_ended,
                claim,
                start_to_close_timeout=WATCH_FOR + timedelta(minutes=1),
                heartbeat_timeout=timedelta(seconds=30),
                # A watch that ends with the owner running fails, and its retry watches on.
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
                summary=f"wait for {claim.owner} to end",
            )
            await workflow.wait_condition(lambda: self._released or watching.done())  # noqa: B023
            if self._released:
                watching.cancel()
                return f"released by {claim.owner}"
            ended: OwnerEnd = await watching
            if self._released:
                return f"released by {claim.owner}"
            if ended.left_traffic and claim.restore is not None:
                return await self._restore(claim, claim.restore, ended.how)
            if ended.left_traffic and claim.restore_shares is not None:
                return await self._restore_shares(claim, claim.restore_shares, ended.how)
            if not ended.running:
                return f"{claim.owner} ended ({ended.how}) without releasing it"
            # Running again after a reset: watch the run there is now.
            claim = claim.model_copy(update={"owner_run_id": ended.run_id})
            self._claim = claim
            if workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(claim)

    async def _restore(self, claim: TargetClaim, restore: ShiftRequest, how: str) -> str:
        """Put stable back for an owner that ended without doing so; tell; say so."""

        async def attempt() -> str:
            try:
                await workflow.execute_activity(
                    shift_traffic,
                    restore,
                    start_to_close_timeout=restore.router.shift_timeout,
                    retry_policy=RetryPolicy(
                        maximum_interval=timedelta(seconds=10), maximum_attempts=5
                    ),
                    summary=f"{claim.owner} was {how}: restore 100% stable",
                )
                split = await workflow.execute_local_activity(
                    read_traffic,
                    restore,
                    start_to_close_timeout=restore.router.read_timeout,
                    retry_policy=RetryPolicy(maximum_attempts=3),
                    summary="read the split back",
                )
            except ActivityError as error:
                if error_type(error) == CANARY_GONE:
                    return f"stable has {claim.target} alone: {root_message(error)}"
                raise
            if split.routes_like(restore.split):
                return f"stable put back on {claim.target} and read back: {split}"
            return ""

        fix = "put stable back by hand; this lease tries again and ends once stable is read back"
        return await self._until_restored(claim, how, "stable", fix, attempt)

    async def _restore_shares(self, claim: TargetClaim, restore: SharesRequest, how: str) -> str:
        """An experiment's: its control back at 100% and read back, then told, as above."""

        async def attempt() -> str:
            await workflow.execute_activity(
                messages.SET_VARIANT_SHARES,
                restore,
                result_type=VariantShares,
                start_to_close_timeout=restore.router.shift_timeout,
                retry_policy=RetryPolicy(
                    maximum_interval=timedelta(seconds=10), maximum_attempts=5
                ),
                summary=f"{claim.owner} was {how}: restore {restore.shares.describe()}",
            )
            read = await workflow.execute_local_activity(
                messages.READ_VARIANT_SHARES,
                restore,
                result_type=VariantShares,
                start_to_close_timeout=restore.router.read_timeout,
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary="read the shares back",
            )
            if read.shares == restore.shares.shares:
                return f"{restore.shares.describe()} on {claim.target}, read back"
            return ""

        fix = "set the shares by hand; this lease tries again and ends once they are read back"
        return await self._until_restored(claim, how, "the control", fix, attempt)

    async def _until_restored(
        self, claim: TargetClaim, how: str, what: str, fix: str, attempt: Restore
    ) -> str:
        """Try ``attempt`` until it says what it put back, waiting longer after each failed
        try (a run that grows long continues as new); then tell, and say so."""
        workflow.set_current_details(f"{claim.owner} was {how}: putting {what} back")
        rounds = 0
        while True:
            try:
                done = await attempt()
                if done:
                    break
            except ActivityError as error:
                rounds += 1
                workflow.set_current_details(
                    f"{claim.owner} was {how}; {what} is not back: {root_message(error)}."
                    f" Make the router accept the change, or {fix}"
                )
                if workflow.info().is_continue_as_new_suggested():
                    workflow.continue_as_new(claim)
            await workflow.sleep(
                timedelta(seconds=min(10 * 2**rounds, RESTORE_WAIT_CAP)),
                summary="try the restore again",
            )
        said = f"{claim.owner} was {how} without a rollback; its lease restored: {done}"
        workflow.set_current_details(said)
        await self._tell(claim, said)
        return said

    async def _tell(self, claim: TargetClaim, said: str) -> None:
        """The owner's channels hear it as a rollback; a lost message stops nothing."""
        if claim.notice is None:
            return
        message = claim.notice.model_copy(update={"text": said})
        if message.notice is not None:
            message.notice = message.notice.model_copy(
                update={"reason": said, "at": workflow.now(), "weight": 0}
            )
        with contextlib.suppress(ActivityError):
            await workflow.execute_activity(
                notify,
                message,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary="tell the owner's channels",
            )

    @workflow.signal(name=messages.LEASE_RELEASE.name)
    async def release(self, asked: Any) -> None:
        """Only the owner's release counts: a stray signal must not free the target.

        Anyone can send this signal and type the owner's id, so the lease first sees for
        itself that the owner's run is ending by itself: its release under way, or its run
        closed on its own (``Owners.owner_closing``).
        """
        body = asked if isinstance(asked, dict) else {"owner": asked}
        if body.get("owner") != self._claim.owner:
            return
        run = self._claim.model_copy(update={"owner_run_id": str(body.get("run_id", ""))})
        closing = await workflow.execute_activity_method(
            Owners.owner_closing,
            run,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=5),
            summary=f"is {run.owner} releasing?",
        )
        if not closing:
            workflow.logger.warning("A release not from %s's ending run: ignored", run.owner)
            return
        self._released = True

    @workflow.query(name=messages.LEASE_OWNER.name)
    def owner(self) -> TargetClaim:
        return self._claim
