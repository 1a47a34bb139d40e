"""Steering a running rollout: operator commands sent as updates."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from client import signing
from client.runs import NoSuchRollout, ended_how, workflow_id
from plans import CommandRecord, OperatorCommand, RolloutError, RolloutResult


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
    try:
        # By name: the typed reference does not fit an async update handler in mypy.
        record: CommandRecord = await handle.execute_update(
            "command", command, result_type=CommandRecord, rpc_timeout=timedelta(seconds=30)
        )
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
