"""A run's hold on its traffic target, seen from the workflow: the claim it makes, and the
claim and release activities, the same for a rollout and an experiment.

Inside the workflow: activities only (``activities.ownership``), no I/O of its own.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.ownership import TargetLeases
    from plans import ClaimAnswer, TargetClaim

CLAIM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)


def target_claim(lease_id: str, target: str, service: str) -> TargetClaim:
    """This run asking to own ``target`` through the lease ``lease_id``."""
    return TargetClaim(
        lease_id=lease_id, target=target, owner=workflow.info().workflow_id, service=service
    )


async def claim_target(claim: TargetClaim) -> ClaimAnswer:
    """Ask the target's lease for it; the answer says whether this run owns it now."""
    answer: ClaimAnswer = await workflow.execute_activity_method(
        TargetLeases.claim_target,
        claim,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=CLAIM_RETRY,
        summary=f"claim {claim.target}",
    )
    return answer


async def release_target(claim: TargetClaim) -> None:
    """Give the target back; raises ActivityError when the release fails."""
    await workflow.execute_activity_method(
        TargetLeases.release_target,
        claim,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=RetryPolicy(maximum_attempts=5),
        summary=f"release {claim.target}",
    )
