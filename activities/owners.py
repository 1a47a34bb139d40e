"""Who holds a traffic target's lease, and whether that rollout still runs.

Apart from claiming and releasing (``activities.ownership``) because the lease workflow
itself asks ``owner_running``, and the claim starts that workflow.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from plans import TargetClaim


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
