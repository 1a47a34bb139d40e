"""Who else put stable back for a run that has ended: its target's lease, or its release.

A run's own status says what it asked its router for; once it has ended outside its own
code (a terminate) or a release put its target back through another workflow, that is no
longer what users get. `rollout status` looks those up here (``starter.traffic``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError

from client.runs import QUERY_TIMEOUT, ended_how
from plans import RolloutResult, RolloutState, ShiftRequest, TargetClaim
from plans.plan import target_lease_id
from plans.runtime.release import RESTORE_SUFFIX
from plans.runtime.traffic import Restore

# The lease's result names a restore it made for a terminated owner (workflows/lease.py).
LEASE_RESTORED = "; its lease restored: "


async def lease_restore(
    client: Client, asked: ShiftRequest, run: WorkflowExecutionDescription
) -> Restore | None:
    """The target lease's restore for this run, ended without a rollback: done or under way."""
    lease_id = target_lease_id(asked.router)
    handle = client.get_workflow_handle(lease_id)
    try:
        lease = await handle.describe(rpc_timeout=QUERY_TIMEOUT)
        claim = TargetClaim.model_validate(await lease.memo())
    except (RPCError, ValueError):
        return None
    if claim.owner != run.id:
        return None
    if lease.status == WorkflowExecutionStatus.RUNNING:
        details = await current_details(handle)
        return Restore(
            workflow_id=lease_id,
            running=True,
            done=False,
            text=details or f"the target's lease notices {run.id} ended and puts stable back",
        )
    # A lease that closed before this run did belongs to an earlier run of the same id.
    if lease.close_time is None or run.close_time is None or lease.close_time < run.close_time:
        return None
    try:
        said = await client.get_workflow_handle(lease_id, run_id=lease.run_id).result(
            follow_runs=False, rpc_timeout=QUERY_TIMEOUT
        )
    except (RPCError, WorkflowFailureError):
        return None
    if not isinstance(said, str) or LEASE_RESTORED not in said:
        return None
    return Restore(workflow_id=lease_id, running=False, done=True, text=said)


async def current_details(handle: WorkflowHandle[Any, Any]) -> str:
    """A running workflow's current details (what the UI shows), or '' when none answers."""
    bound = QUERY_TIMEOUT.total_seconds()
    try:
        metadata = await asyncio.wait_for(
            handle.query(
                "__temporal_workflow_metadata",
                result_type=WorkflowMetadata,
                rpc_timeout=QUERY_TIMEOUT,
            ),
            bound,
        )
    except (RPCError, WorkflowQueryFailedError, TimeoutError):
        return ""
    return metadata.current_details if isinstance(metadata, WorkflowMetadata) else ""


async def release_restore(client: Client, run: WorkflowExecutionDescription) -> Restore | None:
    """The release's rollout that put this promoted target back on stable, if one ran since."""
    restore_id = run.id + RESTORE_SUFFIX
    handle = client.get_workflow_handle(restore_id, result_type=RolloutResult)
    try:
        restore = await handle.describe(rpc_timeout=QUERY_TIMEOUT)
    except RPCError:
        return None
    if run.close_time is None or restore.start_time < run.close_time:
        return None  # an earlier release's restore
    said = f"the release puts stable back through {restore_id}"
    if restore.status == WorkflowExecutionStatus.RUNNING:
        return Restore(workflow_id=restore_id, running=True, done=False, text=said)
    ending = await ended_how(handle, restore.status)
    # The restore is a rollout to stable: its promotion is stable back.
    if ending.state == RolloutState.PROMOTED:
        said = f"the release put stable back through {restore_id}"
        return Restore(workflow_id=restore_id, running=False, done=True, text=said)
    said = f"the release's restore {restore_id} did not put stable back: {ending.text}"
    return Restore(workflow_id=restore_id, running=False, done=False, text=said)
