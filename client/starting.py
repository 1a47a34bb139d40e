"""Starting a rollout: the search attributes it publishes, its UI summary, its target."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from client import calls, leases
from plans import Plan, RolloutError, RolloutResult, format_duration
from plans.runtime.inputs import CHECKS_PER_RUN, RolloutInput
from plans.runtime.messages import ROLLOUT
from plans.runtime.progress import RolloutProgress
from plans.runtime.visibility import ROLLOUT_ATTRIBUTES

SEARCH_ATTRIBUTES: dict[str, IndexedValueType.ValueType] = {
    key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in ROLLOUT_ATTRIBUTES
}


class AlreadyRolling(RolloutError):
    """A rollout of this service is still running."""


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
    checks_per_run: int = CHECKS_PER_RUN,
) -> WorkflowHandle[Any, RolloutResult]:
    """Start the rollout; refuse it while another rollout of the service is running.

    ``progress`` starts it from a given state (tests do); ``checks_per_run`` sets how many
    checks a run makes before it continues as new.
    """
    start = RolloutInput(
        plan=plan,
        progress=progress,
        checks_per_run=checks_per_run,
        visibility=await search_attributes_registered(client),
    )
    short, details = summary(plan)
    try:
        return await calls.start(
            client,
            ROLLOUT,
            start,
            id=plan.workflow_id,
            task_queue=task_queue,
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


class TargetOwned(RolloutError):
    """Another running rollout moves the plan's traffic target."""


async def await_target(
    client: Client, plan: Plan, handle: WorkflowHandle[Any, Any], timeout: float
) -> bool:
    """Wait until the new run owns its traffic target; False if no worker decided in time.

    Raises TargetOwned, naming the owner, when the run was refused because another
    rollout moves the same target.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        held = await leases.holder(client, plan.target_lease_id)
        if held is not None and held[0].owner == plan.workflow_id:
            return True
        described = await handle.describe()
        if described.status != WorkflowExecutionStatus.RUNNING:
            try:
                await handle.result()
            except WorkflowFailureError as error:
                cause = error.cause
                if getattr(cause, "type", "") == "TargetOwned":
                    message = str(getattr(cause, "message", cause)).removeprefix("refused: ")
                    raise TargetOwned(f"{plan.service} not started: {message}") from None
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.2)
