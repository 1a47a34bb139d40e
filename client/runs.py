"""A rollout's workflow run: its id, and how a closed run ended."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, NamedTuple

from temporalio.client import (
    Client,
    WorkflowContinuedAsNewError,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.exceptions import ApplicationError

from plans import RolloutError, RolloutResult, RolloutState
from plans.runtime.visibility import rollout_workflow_id


class NoSuchRollout(RolloutError):
    """No rollout of that service exists."""


def workflow_id(service: str) -> str:
    """The workflow id of the rollouts of ``service``."""
    return rollout_workflow_id(service)


QUERY_TIMEOUT = timedelta(seconds=1.5)
"""How long `read_status` waits for a worker to answer; with Temporal's own calls the
answer stays within 2 s."""

ENDED_QUERY_TIMEOUT = timedelta(seconds=5)
"""How long `read_status` waits for the answer about a run that has ended: the worker replays
the run's whole history before it answers, and a busy worker takes longer than 1.5 s."""


class Ending(NamedTuple):
    """How a closed run ended: the rollout's state when it says so, and a phrase for people."""

    state: RolloutState | None
    text: str


def no_such_rollout(service: str) -> NoSuchRollout:
    return NoSuchRollout(
        f"no rollout of {service!r} found (workflow {workflow_id(service)});"
        " `rollout list` shows the running ones"
    )


async def ended_how(
    handle: WorkflowHandle[Any, RolloutResult], status: WorkflowExecutionStatus | None
) -> Ending:
    """How a closed run ended, from its result or failure in the history (no worker needed)."""
    if status == WorkflowExecutionStatus.CANCELED:
        return Ending(None, "cancelled")
    if status == WorkflowExecutionStatus.TERMINATED:
        text = "terminated, so no rollback ran"
        try:
            await handle.result(follow_runs=False)
        except WorkflowFailureError as error:
            reason = str(getattr(error.cause, "message", "") or "")
            if reason:
                text += f": {reason}"
        return Ending(None, text)
    if status == WorkflowExecutionStatus.TIMED_OUT:
        return Ending(None, "timed out, so no rollback ran")
    try:
        result = await handle.result(follow_runs=False)
    except WorkflowFailureError as error:
        cause = error.cause
        message = str(getattr(cause, "message", cause))
        if isinstance(cause, ApplicationError) and cause.type == "RolledBack":
            return Ending(RolloutState.ROLLED_BACK, message)
        return Ending(None, f"failed: {message}")
    except WorkflowContinuedAsNewError:
        return Ending(None, "continued as a new run")
    if not isinstance(result, RolloutResult):
        return Ending(None, status.name.lower() if status else "closed")
    text = result.state.value.replace("_", " ")
    return Ending(result.state, f"{text}: {result.reason}" if result.reason else text)


async def executions(
    client: Client, query: str, *, limit: int | None = None
) -> AsyncIterator[WorkflowExecution]:
    """The runs a visibility query finds (``WorkflowType="RolloutWorkflow" AND ...``)."""
    async for execution in client.list_workflows(query, limit=limit):
        yield execution


async def describe(
    client: Client, workflow_id: str, *, rpc_timeout: timedelta | None = None
) -> WorkflowExecutionDescription:
    """The workflow's latest run as Temporal describes it; RPCError NOT_FOUND when none."""
    return await client.get_workflow_handle(workflow_id).describe(rpc_timeout=rpc_timeout)


async def report_link(client: Client, workflow_id: str, wait_s: float = 120.0) -> str | None:
    """The report the worker wrote when the rollout ended (from the run's memo), once closed."""
    handle = client.get_workflow_handle(workflow_id)
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        described = await handle.describe()
        if described.status != WorkflowExecutionStatus.RUNNING:
            found = await described.memo_value("report", None)
            return str(found) if found else None
        if asyncio.get_running_loop().time() > deadline:
            return None
        await asyncio.sleep(0.5)
