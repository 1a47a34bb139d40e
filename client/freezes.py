"""The freeze calendar as clients see it: start it, add, list and remove freezes.

Freezes live in one ``FreezeCalendar`` workflow (id ``rollout-freezes``), started by the first
``rollout freeze add``; a rollout's worker reads them (``activities.freezes``).
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from client import calls, signing
from plans import RolloutError
from plans.governance.approvals import FREEZE_REMOVE as REMOVE_CLAIM
from plans.governance.freezes import (
    FREEZE_CALENDAR_ID,
    Freeze,
    FreezeRemoval,
    FreezeRequest,
    RemovedFreeze,
)
from plans.runtime.messages import (
    FREEZE_ADD,
    FREEZE_CALENDAR,
    FREEZE_LIST,
    FREEZE_REMOVALS,
    FREEZE_REMOVE,
)


async def calendar(client: Client, queue: str) -> WorkflowHandle[Any, None]:
    """The freeze calendar's handle, started if it was not running."""
    return await calls.start(
        client,
        FREEZE_CALENDAR,
        None,
        id=FREEZE_CALENDAR_ID,
        task_queue=queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary="rollout freezes: `rollout freeze list`",
    )


async def add_freeze(client: Client, request: FreezeRequest, queue: str) -> Freeze:
    handle = await calendar(client, queue)
    try:
        freeze = await calls.update(handle, FREEZE_ADD, request)
    except WorkflowUpdateFailedError as error:
        raise RolloutError(f"freeze refused: {getattr(error.cause, 'message', error)}") from None
    return freeze


async def remove_freeze(
    client: Client, removal: FreezeRemoval | str, queue: str, key: str | None = None
) -> Freeze:
    """Remove a freeze (by id, or saying who and why), signed with the operator's SSH key."""
    if isinstance(removal, str):
        removal = FreezeRemoval(id=removal)
    handle = await calendar(client, queue)
    if removal.signed is None:
        described = await handle.describe()
        text = signing.claim(
            REMOVE_CLAIM,
            FREEZE_CALENDAR_ID,
            signing.first_run_id(described),
            by=removal.by,
            reason=removal.reason,
            subject=removal.id,
        )
        removal = removal.model_copy(update={"signed": await signing.maybe_sign(text, key)})
    try:
        freeze = await calls.update(handle, FREEZE_REMOVE, removal)
    except WorkflowUpdateFailedError as error:
        raise RolloutError(str(getattr(error.cause, "message", error))) from None
    return freeze


async def recent_removals(client: Client) -> list[RemovedFreeze]:
    """The freezes removed lately (by whom, why); none when there is no calendar."""
    try:
        removed = await calls.ask(client.get_workflow_handle(FREEZE_CALENDAR_ID), FREEZE_REMOVALS)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return []
        raise
    return removed


async def calendar_freezes(client: Client) -> list[Freeze]:
    """Every freeze the calendar holds; none when there is no calendar yet."""
    handle = client.get_workflow_handle(FREEZE_CALENDAR_ID)
    try:
        freezes = await calls.ask(handle, FREEZE_LIST)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return []
        raise
    return freezes
