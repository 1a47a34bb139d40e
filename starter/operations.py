"""What the operator CLI does against Temporal: start, status, commands. No printing here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from plans import (
    CommandRecord,
    OperatorCommand,
    Plan,
    RolloutError,
    RolloutResult,
    RolloutStatus,
    format_duration,
)
from plans.state import RolloutProgress

SEARCH_ATTRIBUTES: dict[str, IndexedValueType.ValueType] = {
    "RolloutService": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "RolloutVersion": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "RolloutStage": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "RolloutWeight": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "RolloutState": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
}


class AlreadyRolling(RolloutError):
    """A rollout of this service is still running."""


class CommandRefused(RolloutError):
    """The workflow refused a command; the message says why."""


class NoSuchRollout(RolloutError):
    """No rollout of that service exists."""


def workflow_id(service: str) -> str:
    return f"rollout-{service}"


async def search_attributes_registered(client: Client) -> bool:
    """True when the server knows every Rollout* search attribute."""
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

    try:
        answer = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
    except RPCError:
        return False
    return all(name in answer.custom_attributes for name in SEARCH_ATTRIBUTES)


async def register_search_attributes(client: Client) -> list[str]:
    """Add the Rollout* search attributes the server lacks; return the ones added."""
    from temporalio.api.operatorservice.v1 import (
        AddSearchAttributesRequest,
        ListSearchAttributesRequest,
    )

    answer = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = {k: v for k, v in SEARCH_ATTRIBUTES.items() if k not in answer.custom_attributes}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    return sorted(missing)


def summary(plan: Plan) -> tuple[str, str]:
    """Static summary and details shown in the Temporal UI for the run."""
    stages = " -> ".join(f"{s.weight}%" for s in plan.stages)
    short = f"{plan.service}: {plan.stable} -> {plan.canary} ({plan.version}), {stages}"
    lines = [
        f"**Service** {plan.service}, version {plan.version}",
        f"**Traffic** {plan.router.describe()}: stable `{plan.stable}`, canary `{plan.canary}`",
        "**Stages**",
    ]
    for stage in plan.stages:
        gates = ", ".join(g.name for g in plan.gates_for(stage)) or "no gates"
        approval = ", then approval" if stage.approval else ""
        lines.append(
            f"- {stage.name}: {stage.weight}% for {format_duration(stage.bake)}, checks every"
            f" {format_duration(stage.check_every)} ({gates}){approval}"
        )
    return short, "\n".join(lines)


async def start_rollout(
    client: Client,
    plan: Plan,
    task_queue: str,
    *,
    progress: RolloutProgress | None = None,
) -> WorkflowHandle[object, object]:
    """Start the rollout; refuse it while another rollout of the service is running."""
    progress = progress or RolloutProgress()
    if not progress.visibility:
        progress.visibility = await search_attributes_registered(client)
    short, details = summary(plan)
    try:
        return await client.start_workflow(
            "RolloutWorkflow",
            args=[plan, progress],
            id=plan.workflow_id,
            task_queue=task_queue,
            result_type=RolloutResult,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            static_summary=short,
            static_details=details,
        )
    except WorkflowAlreadyStartedError:
        running = client.get_workflow_handle(plan.workflow_id)
        described = await running.describe()
        raise AlreadyRolling(
            f"a rollout of {plan.service} is already running: workflow {plan.workflow_id}"
            f" (run {described.run_id}, started {described.start_time:%Y-%m-%d %H:%M:%S} UTC)."
            f" Wait for it to end, or stop it with `rollout rollback {plan.service}`."
        ) from None


async def status(client: Client, service: str) -> RolloutStatus:
    """The rollout's status from its workflow's query (works on finished runs too)."""
    handle = client.get_workflow_handle(workflow_id(service))
    try:
        answer: RolloutStatus = await handle.query(
            "status", result_type=RolloutStatus, rpc_timeout=timedelta(seconds=10)
        )
        return answer
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise NoSuchRollout(
                f"no rollout of {service!r} found (workflow {workflow_id(service)});"
                " `rollout list` shows the running ones"
            ) from None
        raise RolloutError(f"cannot read the status of {service!r}: {error.message}") from None
    except WorkflowQueryFailedError as error:
        raise RolloutError(f"cannot read the status of {service!r}: {error}") from None


async def send_command(client: Client, service: str, command: OperatorCommand) -> CommandRecord:
    """Send a command as an update: it is taken now, or refused with the reason."""
    handle = client.get_workflow_handle(workflow_id(service))
    try:
        description = await handle.describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise NoSuchRollout(f"no rollout of {service!r} found") from None
        raise
    if description.status != WorkflowExecutionStatus.RUNNING:
        state = description.status.name.lower() if description.status else "closed"
        raise CommandRefused(f"{command.kind.value}: rollout of {service} has ended ({state})")
    try:
        record: CommandRecord = await handle.execute_update(
            "command", command, result_type=CommandRecord, rpc_timeout=timedelta(seconds=30)
        )
        return record
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        raise CommandRefused(str(getattr(cause, "message", cause))) from None


async def result_reason(client: Client, service: str) -> tuple[WorkflowExecutionStatus | None, str]:
    """How the latest run ended: its status and the failure or result text."""
    handle = client.get_workflow_handle(workflow_id(service))
    description = await handle.describe()
    if description.status == WorkflowExecutionStatus.RUNNING:
        return description.status, ""
    try:
        await handle.result()
    except WorkflowFailureError as error:
        return description.status, str(getattr(error.cause, "message", error.cause))
    return description.status, ""


async def follow(client: Client, service: str, every: float = 1.0) -> AsyncIterator[RolloutStatus]:
    """Yield the status whenever it changes, until the rollout ends."""
    last = None
    while True:
        current = await status(client, service)
        key = current.model_dump_json(exclude={"bake_elapsed_s", "bake_remaining_s"})
        if key != last:
            last = key
            yield current
        if current.state.final:
            return
        await asyncio.sleep(every)
