"""An experiment's router and lease, seen from the workflow: the shares set, read back,
put back after drift; the target owned as a rollout owns it, and given back.

Inside the workflow: activities only, called by their registered names
(``plans.runtime.messages``), no I/O of its own.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from plans import Notification, TargetClaim
    from plans.experiment import ExperimentPlan
    from plans.plan import written_hosts
    from plans.runtime import messages
    from plans.runtime.experiment import ExperimentProgress, ExperimentState
    from plans.runtime.shares import SharesRequest, VariantShares
    from plans.variables import named_variables
    from workflows.experiment import board, decisions
    from workflows.experiment.commands import Commands
    from workflows.failures import root_message
    from workflows.ownership import claim_target, release_target, target_claim

# A change of shares is retried for SET_DEADLINE, then fails the step (the control comes
# back); a restore is retried until the router takes it.
SHIFT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=["RouterRefused"],
)
SET_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)
SET_DEADLINE = timedelta(minutes=10)
READ_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=2)


class Target:
    """One run's hold on its router: the lease and the shares."""

    def __init__(
        self, plan: ExperimentPlan, progress: ExperimentProgress, log: Commands, shown: board.Board
    ) -> None:
        self._plan, self._progress, self._log, self._board = plan, progress, log, shown

    async def repair_drift(self) -> None:
        """Put the shares back when the router routes others (a reload, a person)."""
        p = self._progress
        try:
            read: VariantShares = await workflow.execute_local_activity(
                messages.READ_VARIANT_SHARES,
                self.request(p.shares),
                result_type=VariantShares,
                start_to_close_timeout=self._plan.router.read_timeout,
                retry_policy=READ_RETRY,
                summary="read the shares back",
            )
        except ActivityError as error:
            self._log.audit("router", f"cannot read the shares: {root_message(error)}")
            return
        if read.shares != p.shares:
            wanted = VariantShares(shares=p.shares).describe()
            self._log.audit(
                "drift", f"the router routes {read.describe()}, not {wanted}: putting back"
            )
            await self.set(p.shares, f"re-assert {wanted} after drift")

    async def set(self, shares: dict[str, int], summary: str, *, restore: bool = False) -> None:
        """Set the router's shares. A restore is tried until the router takes it; any other
        change fails after ``SET_DEADLINE``, and the experiment then restores the control."""
        await workflow.execute_activity(
            messages.SET_VARIANT_SHARES,
            self.request(shares),
            result_type=VariantShares,
            start_to_close_timeout=self._plan.router.shift_timeout,
            schedule_to_close_timeout=None if restore else SET_DEADLINE,
            retry_policy=SET_RETRY if restore else SHIFT_RETRY,
            summary=summary,
        )
        self._progress.shares = dict(shares)

    def request(self, shares: dict[str, int]) -> SharesRequest:
        names = {v.name: 0 for v in self._plan.experiment.variants}
        return SharesRequest(router=self._plan.router, shares=VariantShares(shares=names | shares))

    def claim_of(self) -> TargetClaim:
        plan = self._plan
        return target_claim(plan.target_lease_id, plan.router.target_key(), plan.service)

    async def claim(self, notice: Notification | None) -> None:
        """Own the router's target as a rollout does, or end refused naming its owner.

        The claim carries the control at 100%, so the lease puts it back itself should this
        run be terminated, and ``notice`` for the channels it tells then.
        """
        p, plan = self._progress, self._plan
        ex = plan.experiment
        names = [v.name for v in ex.variants]
        claim = self.claim_of().model_copy(
            update={
                "owner_run_id": workflow.info().run_id,
                "restore_shares": self.request(decisions.only(ex.control, names)),
                "notice": notice,
                "variables": named_variables(plan.plan),
                "hosts": written_hosts(plan.plan),
            }
        )
        answer = await claim_target(claim)
        if answer.claimed:
            p.owned = True
            self._log.audit("target", f"owns {plan.router.target_key()}")
            return
        why = answer.refused or f"{plan.router.describe()} is being moved by {answer.owner}"
        p.reason = f"refused: {why}"
        self._log.audit("end", p.reason)
        self._board.show(ExperimentState.REFUSED)
        raise ApplicationError(
            p.reason, board.result_of(plan, p), type="TargetOwned", non_retryable=True
        )

    async def release(self) -> None:
        p = self._progress
        if not p.owned:
            return
        with contextlib.suppress(ActivityError):
            await release_target(self.claim_of())
        p.owned = False
