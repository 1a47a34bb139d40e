"""Releases across a fleet from the command line: start one, read it as a tree, steer it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rich.markup import escape
from rich.tree import Tree
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from client.steering import CommandRefused, refused
from plans import RolloutError, RolloutStatus, format_duration
from plans.approvals import FORWARD
from plans.fleet import FleetPlan, release_workflow_id
from plans.release import (
    ReleaseCommand,
    ReleaseCommandRecord,
    ReleaseInput,
    ReleaseState,
    ReleaseStatus,
    TargetState,
)
from plans.visibility import rollout_workflow_id
from starter import signing
from starter.exits import EXIT_ABORTED, EXIT_PROMOTED, EXIT_ROLLED_BACK
from workflows.release import ReleaseWorkflow
from workflows.rollout import RolloutWorkflow

QUERY_TIMEOUT = timedelta(seconds=5)


class AlreadyReleasing(RolloutError):
    """A release of this service is still running."""


async def start_release(
    client: Client, fleet: FleetPlan, queue: str, *, visibility: bool = True
) -> WorkflowHandle[Any, Any]:
    """Start ``release-<service>``; a second one while the first runs is refused by name."""
    try:
        return await client.start_workflow(
            ReleaseWorkflow.run,
            ReleaseInput(fleet=fleet, visibility=visibility),
            id=fleet.workflow_id,
            task_queue=queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            static_summary=f"release {fleet.service} {fleet.version} to"
            f" {len(fleet.targets)} targets in {len(fleet.waves)} waves",
        )
    except WorkflowAlreadyStartedError:
        raise AlreadyReleasing(
            f"a release of {fleet.service} is already running: workflow {fleet.workflow_id};"
            f" `rollout status {fleet.service}` shows it"
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
        answer: ReleaseStatus = await handle.query(
            ReleaseWorkflow.status, rpc_timeout=QUERY_TIMEOUT
        )
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
            found[name] = await handle.query(RolloutWorkflow.status, rpc_timeout=QUERY_TIMEOUT)
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
    try:
        # By name: the typed reference does not fit an async update handler in mypy.
        record: ReleaseCommandRecord = await handle.execute_update(
            "command",
            command,
            result_type=ReleaseCommandRecord,
            rpc_timeout=timedelta(seconds=30),
        )
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        raise CommandRefused(refused(str(getattr(cause, "message", cause)), unsigned)) from None
    if not record.accepted:
        # Refused after the validator let it through: the worker found the signature wanting.
        raise CommandRefused(refused(record.note, unsigned))
    return record


def release_exit_code(state: ReleaseState) -> int:
    """0 promoted, 3 halted or rolled back, 4 aborted (as for one rollout)."""
    if state == ReleaseState.PROMOTED:
        return EXIT_PROMOTED
    if state in (ReleaseState.HALTED, ReleaseState.ROLLED_BACK):
        return EXIT_ROLLED_BACK
    return EXIT_ABORTED


_COLOURS = {
    TargetState.PROMOTED: "green",
    TargetState.RUNNING: "cyan",
    TargetState.ROLLED_BACK: "red",
    TargetState.FAILED: "red",
    TargetState.ABORTED: "yellow",
    TargetState.RESTORED: "yellow",
}


def release_tree(status: ReleaseStatus, targets: dict[str, RolloutStatus]) -> Tree:
    """The release, each wave, each target with its stage, weight, state and last verdicts."""
    head = f"[bold]release {escape(status.service)} {escape(status.version)}[/]: {status.state}"
    if status.paused and status.state != ReleaseState.PAUSED:
        head += " (paused: no new target starts)"
    tree = Tree(head + f"  (on failure: {status.on_target_failure})")
    for wave in status.waves:
        extras = []
        if wave.approval:
            extras.append("approval")
        if wave.max_parallel:
            extras.append(f"max_parallel {wave.max_parallel}")
        if wave.bake_between_s:
            extras.append(f"bake_between {format_duration(timedelta(seconds=wave.bake_between_s))}")
        more = f" ({', '.join(extras)})" if extras else ""
        branch = tree.add(f"wave {wave.index + 1}{more}: {wave.state}")
        for name in wave.targets:
            branch.add(_target_line(name, status, targets.get(name)))
    if status.failed_target or (status.reason and status.state.final):
        tree.add(f"[bold]{escape(status.reason)}[/]")
    return tree


def _target_line(name: str, status: ReleaseStatus, child: RolloutStatus | None) -> str:
    run = status.targets[name]
    colour = _COLOURS.get(run.state, "dim")
    line = f"[{colour}]{escape(name)}[/] {run.state}"
    if child is not None:
        shown = "" if child.state.value == run.state.value else f" | {child.state}"
        line += (
            f"{shown} | stage {child.stage_index + 1}/{child.stage_count}"
            f" {escape(child.stage_name)} | canary {child.canary_weight}%"
        )
        verdicts = ", ".join(f"{g}={v.outcome}" for g, v in child.verdicts.items())
        if verdicts:
            line += f" | {escape(verdicts)}"
    if run.reason and run.state != TargetState.PROMOTED:
        line += f" | {escape(run.reason)}"
    return line


def command_lines(record: ReleaseCommandRecord) -> list[str]:
    """What a taken command reached, and where it did not go and why."""
    where = f" on {record.target}" if record.target else ""
    lines = [f"[green]{record.kind}[/] taken for the release{where} (by {escape(record.by)})"]
    if record.sent_to:
        lines.append(f"  sent to: {', '.join(record.sent_to)}")
    for name, why in record.not_sent.items():
        lines.append(f"  not sent to {name}: {escape(why)}")
    return lines
