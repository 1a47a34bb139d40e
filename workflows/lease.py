"""TargetLease: one running workflow per traffic target, so one rollout moves it at a time.

Temporal runs at most one workflow per id, which makes the claim race-free: of two
rollouts that start on one target at the same moment, one starts the lease and the
other finds it. The owner releases the lease when it ends; a lease whose owner ended
without releasing it (terminated) ends itself at its next look at the owner, and a
claimant that meets it first takes it over (``activities.ownership``, ``activities.owners``).
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.owners import Owners
    from plans import TargetClaim

OWNER_LOOK_EVERY = timedelta(minutes=10)


@workflow.defn(name="TargetLease")
class TargetLease:
    """Held by one rollout; ends when that rollout releases it or is found to have ended."""

    @workflow.init
    def __init__(self, claim: TargetClaim) -> None:
        self._claim = claim
        self._released = False

    @workflow.run
    async def run(self, claim: TargetClaim) -> str:
        while True:
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._released,
                    timeout=OWNER_LOOK_EVERY,
                    timeout_summary=f"held by {claim.owner}",
                )
            if self._released:
                return f"released by {claim.owner}"
            alive = await workflow.execute_activity_method(
                Owners.owner_running,
                claim.owner,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
                summary=f"is {claim.owner} still running?",
            )
            if not alive:
                return f"{claim.owner} ended without releasing it"
            if workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(claim)

    @workflow.signal(name="release")
    def release(self, owner: str) -> None:
        """Only the owner's release counts: a stray signal must not free the target."""
        if owner == self._claim.owner:
            self._released = True

    @workflow.query(name="owner")
    def owner(self) -> TargetClaim:
        return self._claim
