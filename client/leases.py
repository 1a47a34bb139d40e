"""A traffic target's lease as a client sees it: who holds it, starting it, ending it.

The lease is a ``TargetLease`` workflow whose id is the target's (``Plan.target_lease_id``),
so Temporal's one-running-workflow-per-id rule decides a race between two claims; its memo
names its owner, so anyone reads who holds it without a worker. The ownership activities
(``activities.ownership``, ``activities.owners``) and `rollout start` call these.
"""

from __future__ import annotations

import asyncio
import builtins
from datetime import datetime, timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import CancelledError, TerminatedError, TimeoutError
from temporalio.service import RPCError, RPCStatusCode

from client import calls
from plans import TargetClaim
from plans.runtime.messages import LEASE, LEASE_RELEASE

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


async def started_at(client: Client, workflow_id: str) -> datetime | None:
    """When the workflow's latest run started."""
    return (await client.get_workflow_handle(workflow_id).describe()).start_time


async def start_lease(client: Client, claim: TargetClaim, queue: str) -> None:
    """Start the target's lease for ``claim.owner``; WorkflowAlreadyStartedError if one runs."""
    await calls.start(
        client,
        LEASE,
        claim,
        id=claim.lease_id,
        task_queue=queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        memo=claim.model_dump(mode="json"),
        static_summary=f"{claim.target}: moved by {claim.owner}",
    )


async def end_lease_run(client: Client, lease_id: str, run_id: str, reason: str) -> None:
    """Terminate one run of a lease (whose owner has ended); one already gone is fine."""
    try:
        await client.get_workflow_handle(lease_id, run_id=run_id).terminate(reason=reason)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise


async def ask_release(client: Client, lease_id: str, run_id: str, asked: dict[str, Any]) -> bool:
    """Ask that lease run to free the target; False when the run is gone."""
    try:
        await calls.tell(client.get_workflow_handle(lease_id, run_id=run_id), LEASE_RELEASE, asked)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        return False
    return True


async def ending_by_itself(client: Client, claim: TargetClaim, releasing: str) -> bool:
    """Whether the owner's run has closed on its own, or runs the ``releasing`` activity."""
    handle = client.get_workflow_handle(claim.owner, run_id=claim.owner_run_id or None)
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
    return running and any(a.activity_type.name == releasing for a in pending)


async def wait_for_end(client: Client, claim: TargetClaim, wait: timedelta) -> str:
    """How the owner's run (and the runs it continued as) ended; '' when still running."""
    handle = client.get_workflow_handle(claim.owner, run_id=claim.owner_run_id or None)
    try:
        await asyncio.wait_for(handle.result(follow_runs=True), wait.total_seconds())
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
