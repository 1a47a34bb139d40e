"""Owning a traffic target: claim and release its lease, a ``TargetLease`` workflow.

The lease's workflow id is the target's (``Plan.target_lease_id``), so Temporal's
one-running-workflow-per-id rule decides a race between two claims. The lease's memo
names its owner, so anyone can read who holds it without a worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from activities import admission
from activities.owners import Owners
from client import leases
from client.leases import holder, is_running
from plans import ClaimAnswer, TargetClaim

_CLAIM_ROUNDS = 5
# How long a release waits for the lease to end (it ends itself later when this runs out).
RELEASE_POLLS = 50
RELEASE_POLL_S = 0.2


class TargetLeases:
    """The ownership activities; they need a client, so they are bound to one."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def activities(self) -> list[Callable[..., Any]]:
        """The ownership activities, bound to this client, for a worker to register."""
        owners = Owners(self.client)
        return [
            self.claim_target,
            self.release_target,
            owners.owner_running,
            owners.owner_ended,
            owners.owner_closing,
        ]

    @activity.defn(name="claim_target")
    async def claim_target(self, claim: TargetClaim) -> ClaimAnswer:
        """Start the target's lease for ``claim.owner``, or say which running rollout has it.

        A lease held by the claimant's own workflow id (an earlier run that was
        terminated, say) is taken over as it is; one whose owner has ended is ended. A
        plan this worker refuses (``activities.admission``) is answered so, and holds nothing.
        """
        refused = admission.refusals(claim)
        if refused:
            return ClaimAnswer(claimed=False, owner=claim.owner, refused="; ".join(refused))
        queue = activity.info().task_queue
        for _ in range(_CLAIM_ROUNDS):
            try:
                await leases.start_lease(self.client, claim, queue)
                return ClaimAnswer(claimed=True, owner=claim.owner)
            except WorkflowAlreadyStartedError:
                pass
            held = await holder(self.client, claim.lease_id)
            if held is None:
                continue  # it ended between the two calls: claim again
            current, lease_run = held
            if current.owner == claim.owner:
                return ClaimAnswer(claimed=True, owner=claim.owner)
            running, owner_run = await is_running(self.client, current.owner)
            if running:
                return ClaimAnswer(
                    claimed=False,
                    owner=current.owner,
                    owner_run_id=owner_run,
                    since=await leases.started_at(self.client, current.owner),
                )
            # Its owner ended without a release (terminated): end that lease run only.
            await leases.end_lease_run(
                self.client,
                claim.lease_id,
                lease_run,
                f"{current.owner} has ended; {claim.owner} takes the target over",
            )
        raise ApplicationError(
            f"could not claim {claim.target}: the lease changed hands {_CLAIM_ROUNDS} times"
            " while claiming; trying again"
        )

    @activity.defn(name="release_target")
    async def release_target(self, claim: TargetClaim) -> bool:
        """Release the lease if ``claim.owner`` holds it; True when it did.

        The release names this run; the lease frees the target once it has seen this
        activity under way in that run (``owner_closing``), so the wait here is short.
        """
        held = await holder(self.client, claim.lease_id)
        if held is None or held[0].owner != claim.owner:
            return False
        asked = {"owner": claim.owner, "run_id": activity.info().workflow_run_id}
        if not await leases.ask_release(self.client, claim.lease_id, held[1], asked):
            return False
        for _ in range(RELEASE_POLLS):
            if not (await is_running(self.client, claim.lease_id))[0]:
                break
            activity.heartbeat()
            await asyncio.sleep(RELEASE_POLL_S)
        return True
