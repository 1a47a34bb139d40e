"""Steering a running rollout: operator commands sent as updates."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol, TypeVar

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from client import calls, signing
from client.runs import NoSuchRollout, ended_how, workflow_id
from plans import CommandRecord, OperatorCommand, RolloutError, RolloutResult
from plans.runtime.messages import ROLLOUT_COMMAND, Update


class CommandRefused(RolloutError):
    """The workflow refused a command; the message says why."""


async def send_command(
    client: Client, service: str, command: OperatorCommand, *, key: str | None = None
) -> CommandRecord:
    """Send a command as an update: it is taken now, or refused with the reason.

    Forward commands are signed with the operator's SSH key when they have one (``key``
    names it; see ``client.signing``).
    """
    handle = client.get_workflow_handle(workflow_id(service), result_type=RolloutResult)
    try:
        description = await handle.describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise NoSuchRollout(f"no rollout of {service!r} found") from None
        raise
    if description.status != WorkflowExecutionStatus.RUNNING:
        ending = await ended_how(handle, description.status)
        raise CommandRefused(
            f"{command.kind.value}: rollout of {service} has ended ({ending.text})"
        )
    command, unsigned = await signing.signed(command, description, key)
    return await commanded(handle, ROLLOUT_COMMAND, command, unsigned)


class Answered(Protocol):
    """A command's record: taken, or refused with a note."""

    accepted: bool
    note: str


Record = TypeVar("Record", bound=Answered)


async def commanded(
    handle: WorkflowHandle[Any, Any], update: Update[Any, Record], command: Any, unsigned: str
) -> Record:
    """Send a command update; its record when taken, else CommandRefused saying why.

    ``unsigned`` says why the command went unsigned, for a refusal to quote.
    """
    try:
        record = await calls.update(handle, update, command, rpc_timeout=timedelta(seconds=30))
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        raise CommandRefused(refused(str(getattr(cause, "message", cause)), unsigned)) from None
    if not record.accepted:
        # Refused after the validator let it through: the worker found the signature wanting.
        raise CommandRefused(refused(record.note, unsigned))
    return record


def refused(why: str, unsigned: str) -> str:
    """A refusal, with why the command went unsigned when signing it failed."""
    return f"{why} ({unsigned})" if unsigned else why
