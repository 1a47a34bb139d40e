"""Starting an experiment and reading its status.

An experiment runs under its service's rollout id (``rollout-SERVICE``), so the rollout's
commands reach it as they are (``client.steering``); `rollout status` asks it by its own
query once the run's type says it is one.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from client import calls, leases
from client.runs import workflow_id
from client.starting import AlreadyRolling, search_attributes_registered
from plans.errors import RolloutError
from plans.experiment import ExperimentPlan
from plans.runtime.experiment import ExperimentInput, ExperimentResult, ExperimentStatus
from plans.runtime.messages import EXPERIMENT, EXPERIMENT_STATUS
from plans.runtime.versions import HISTORY_MEMO_KEY, HISTORY_VERSION

QUERY_TIMEOUT = timedelta(seconds=5)


def summary(plan: ExperimentPlan) -> tuple[str, str]:
    """Static summary and details shown in the Temporal UI for the run."""
    ex = plan.experiment
    shares = " / ".join(f"{v.name} {v.share}%" for v in ex.variants)
    short = f"{plan.service}: experiment {shares}, control {ex.control}"
    guardrails = ", ".join(g.name for g in plan.guardrails) or "none"
    details = "\n".join(
        [
            f"**Service** {plan.service}, experiment on {plan.router.describe()}",
            f"**Variants** {shares}; control `{ex.control}`",
            f"**Primary** {ex.primary} ({plan.primary.describe_threshold()})",
            f"**Guardrails** {guardrails}",
        ]
    )
    return short, details


async def start_experiment(
    client: Client, plan: ExperimentPlan, task_queue: str, *, checks_per_run: int = 500
) -> WorkflowHandle[Any, ExperimentResult]:
    """Start the experiment; refused while a rollout or experiment of the service runs."""
    start = ExperimentInput(
        plan=plan,
        checks_per_run=checks_per_run,
        visibility=await search_attributes_registered(client),
    )
    short, details = summary(plan)
    try:
        return await calls.start(
            client,
            EXPERIMENT,
            start,
            id=plan.workflow_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            memo={HISTORY_MEMO_KEY: HISTORY_VERSION},
            static_summary=short,
            static_details=details,
        )
    except WorkflowAlreadyStartedError:
        raise AlreadyRolling(
            f"a rollout or experiment of {plan.service} is already running: workflow"
            f" {plan.workflow_id}. Wait for it to end, or stop it with"
            f" `rollout rollback {plan.service}`."
        ) from None


async def await_target(
    client: Client, plan: ExperimentPlan, handle: WorkflowHandle[Any, Any], timeout: float
) -> bool:
    """Whether the run owns its traffic target within ``timeout`` (or has ended meanwhile)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        held = await leases.holder(client, plan.target_lease_id)
        if held is not None and held[0].owner == plan.workflow_id:
            return True
        if (await handle.describe()).close_time is not None:
            return True
        await asyncio.sleep(0.2)
    return False


async def is_experiment(client: Client, service: str) -> bool:
    """Whether the service's latest run (under ``rollout-SERVICE``) is an experiment."""
    try:
        described = await client.get_workflow_handle(workflow_id(service)).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return described.workflow_type == EXPERIMENT.name


async def experiment_status(client: Client, service: str) -> ExperimentStatus:
    """The experiment's answer to its status query; RolloutError when no worker answers."""
    handle = client.get_workflow_handle(workflow_id(service))
    try:
        return await asyncio.wait_for(
            calls.ask(handle, EXPERIMENT_STATUS, rpc_timeout=QUERY_TIMEOUT),
            QUERY_TIMEOUT.total_seconds() * 2,
        )
    except (RPCError, TimeoutError) as error:
        said = error.message if isinstance(error, RPCError) else "no answer"
        raise RolloutError(
            f"the experiment of {service} did not answer its status query ({said}): is a"
            " rollout-worker running on its task queue? `temporal workflow describe -w"
            f" {workflow_id(service)}` shows what Temporal holds of it"
        ) from None
