"""Releases across a fleet: start one, read its status and its targets', steer it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from client import calls, signing
from client.steering import commanded
from plans import RolloutError, RolloutStatus
from plans.governance.approvals import FORWARD
from plans.release_plan import ReleasePlan, release_workflow_id
from plans.runtime.messages import RELEASE, RELEASE_COMMAND, RELEASE_STATUS, ROLLOUT_STATUS
from plans.runtime.release import (
    ReleaseCommand,
    ReleaseCommandRecord,
    ReleaseInput,
    ReleaseStatus,
    TargetState,
)
from plans.runtime.visibility import rollout_workflow_id

QUERY_TIMEOUT = timedelta(seconds=5)


class AlreadyReleasing(RolloutError):
    """A release of this service is still running."""


async def start_release(
    client: Client, plan: ReleasePlan, queue: str, *, visibility: bool = True
) -> WorkflowHandle[Any, Any]:
    """Start ``release-<service>``; a second one while the first runs is refused by name."""
    try:
        return await calls.start(
            client,
            RELEASE,
            ReleaseInput(fleet=plan, visibility=visibility),
            id=plan.workflow_id,
            task_queue=queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            static_summary=f"release {plan.service} {plan.version} to"
            f" {len(plan.targets)} targets in {len(plan.waves)} waves",
        )
    except WorkflowAlreadyStartedError:
        raise AlreadyReleasing(
            f"a release of {plan.service} is already running: workflow {plan.workflow_id};"
            f" `rollout status {plan.service}` shows it"
        ) from None


async def release_exists(client: Client, service: str, *, running_only: bool = False) -> bool:
    """Whether ``release-<service>`` exists (and runs, with ``running_only``)."""
    try:
        described = await client.get_workflow_handle(release_workflow_id(service)).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return not running_only or described.status == WorkflowExecutionStatus.RUNNING


async def shows_release(client: Client, service: str) -> bool:
    """Whether `rollout status SERVICE` means the release: it runs, or it is all there is."""
    if await release_exists(client, service, running_only=True):
        return True
    if not await release_exists(client, service):
        return False
    try:
        await client.get_workflow_handle(rollout_workflow_id(service)).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return True
        raise
    return False


async def release_status(client: Client, service: str) -> ReleaseStatus:
    handle = client.get_workflow_handle(release_workflow_id(service))
    try:
        answer = await calls.ask(handle, RELEASE_STATUS, rpc_timeout=QUERY_TIMEOUT)
    except RPCError as error:
        raise RolloutError(f"cannot read the release of {service!r}: {error.message}") from None
    return answer


async def target_statuses(client: Client, status: ReleaseStatus) -> dict[str, RolloutStatus]:
    """Each started target's own status, read from its rollout (those that answer)."""
    found: dict[str, RolloutStatus] = {}
    for name, run in status.targets.items():
        if run.started_at is None or run.state == TargetState.RESTORED:
            continue  # a restored target's rollout shows the promotion it no longer has
        handle = client.get_workflow_handle(run.workflow_id)
        try:
            found[name] = await calls.ask(handle, ROLLOUT_STATUS, rpc_timeout=QUERY_TIMEOUT)
        except Exception:  # a target whose rollout cannot answer is shown from the release
            continue
    return found


async def send_release_command(
    client: Client, service: str, command: ReleaseCommand, key: str | None = None
) -> ReleaseCommandRecord:
    """Send a command to the release: taken (with where it went), or refused with why.

    Forward commands are signed for the release (and the target they name) with the
    operator's SSH key when they have one; the release checks the signature, and each
    target it forwards the command to checks it again.
    """
    handle = client.get_workflow_handle(release_workflow_id(service))
    unsigned = ""
    if command.command.kind.value in FORWARD:
        op, unsigned = await signing.signed(
            command.command, await handle.describe(), key, target=command.target or ""
        )
        command = command.model_copy(update={"command": op})
    return await commanded(handle, RELEASE_COMMAND, command, unsigned)
