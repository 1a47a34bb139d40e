"""Who holds a traffic target's lease, and whether that rollout still runs.

Apart from claiming and releasing (``activities.ownership``) because the lease workflow
itself asks ``owner_running``, and the claim starts that workflow.
"""

from __future__ import annotations

import asyncio
import builtins
from datetime import timedelta

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError, TerminatedError, TimeoutError
from temporalio.service import RPCError, RPCStatusCode

from plans import OwnerEnd, TargetClaim

WATCH_FOR = timedelta(hours=1)  # one watch's length; the lease then watches again
HEARTBEAT_EVERY = timedelta(seconds=10)
STILL_RUNNING = "OwnerStillRunning"
RELEASE_TARGET = "release_target"
ENDED_BY_ITSELF = (
    WorkflowExecutionStatus.COMPLETED,
    WorkflowExecutionStatus.FAILED,
    WorkflowExecutionStatus.CANCELED,
)


async def holder(client: Client, lease_id: str) -> tuple[TargetClaim, str] | None:
    """The running lease's claim and run id, or None when no lease on the target runs."""
    try:
        described = await client.get_workflow_handle(lease_id).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    if described.status != WorkflowExecutionStatus.RUNNING:
        return None
    memo = await described.memo()
    return TargetClaim.model_validate(memo), described.run_id or ""


async def is_running(client: Client, workflow_id: str) -> tuple[bool, str]:
    """Whether the workflow's latest run is still running, and that run's id."""
    try:
        described = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return False, ""
        raise
    return described.status == WorkflowExecutionStatus.RUNNING, described.run_id or ""


class Owners:
    """The lease's look at its owner; bound to a client."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name="owner_running")
    async def owner_running(self, owner: str) -> bool:
        """Whether the rollout holding a lease still runs (the lease ends itself if not)."""
        running, _ = await is_running(self.client, owner)
        return running

    @activity.defn(name="owner_closing")
    async def owner_closing(self, claim: TargetClaim) -> bool:
        """Whether the owner's run (``claim.owner_run_id``) is ending by itself.

        Closed on its own (completed, failed, cancelled), or running with its
        ``release_target`` under way: only then is a release the owner's. Anyone may send
        the lease a signal; nobody else can make the owner's run release.
        """
        handle = self.client.get_workflow_handle(claim.owner, run_id=claim.owner_run_id or None)
        try:
            described = await handle.describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        if described.status in ENDED_BY_ITSELF:
            return True
        pending = described.raw_description.pending_activities
        running = described.status == WorkflowExecutionStatus.RUNNING
        return running and any(a.activity_type.name == RELEASE_TARGET for a in pending)

    @activity.defn(name="owner_ended")
    async def owner_ended(self, claim: TargetClaim) -> OwnerEnd:
        """Wait until the rollout holding the lease ends (up to ``WATCH_FOR``), and say how.

        The wait is one long poll on the owner's close event, following its new runs, so the
        lease learns of a terminate at once without asking again and again. An owner still
        running after the watch fails it with ``STILL_RUNNING``, for a retry to watch again.
        """
        beating = asyncio.create_task(_heartbeat())
        try:
            how = await _wait_for_end(self.client, claim)
            if not how:
                # Retried by the lease's retry policy: a new watch, with no history written.
                raise ApplicationError(f"{claim.owner} still runs", type=STILL_RUNNING)
            running, run_id = await is_running(self.client, claim.owner)
        finally:
            beating.cancel()
        return OwnerEnd(how=how, running=running, run_id=run_id)


async def _wait_for_end(client: Client, claim: TargetClaim) -> str:
    """How the owner's run (and the runs it continued as) ended; '' when still running."""
    handle = client.get_workflow_handle(claim.owner, run_id=claim.owner_run_id or None)
    try:
        await asyncio.wait_for(handle.result(follow_runs=True), WATCH_FOR.total_seconds())
    except builtins.TimeoutError:
        return ""
    except WorkflowFailureError as failure:
        return _how(failure.cause)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        return "gone"
    return "completed"


def _how(cause: BaseException) -> str:
    if isinstance(cause, TerminatedError):
        return "terminated"
    if isinstance(cause, CancelledError):
        return "cancelled"
    if isinstance(cause, TimeoutError):
        return "timed out"
    return "failed"


async def _heartbeat() -> None:
    """Beat while the watch waits: a lost worker is noticed, and a cancel reaches the wait."""
    while True:
        activity.heartbeat()
        await asyncio.sleep(HEARTBEAT_EVERY.total_seconds())
