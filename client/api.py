"""The Python API: start, steer and watch rollouts and releases from a program.

A CI job, a chatops bot or a script does what the `rollout` CLI does (which uses this
module itself)::

    from client.api import Rollouts, load_plan

    rollouts = await Rollouts.connect()            # TEMPORAL_* variables, temporal.toml
    started = await rollouts.start(load_plan("checkout.yaml"))
    async for status in rollouts.follow(started.service):
        print(status.state, status.canary_weight)
    await rollouts.rollback("checkout", reason="errors in the logs", by="ci")

Every method raises the project's own errors, with a message that says what to fix:
``PlanError`` (an invalid plan), ``NoSuchRollout``, ``AlreadyRolling``, ``TargetOwned``,
``CommandRefused`` (taken or refused by the workflow, with why), all ``RolloutError``.
The types returned are the ones `rollout ... --json` prints (docs/json.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from temporalio.client import Client

from client import reading, releases, runs, signing, starting, steering
from client.connection import connect, end_process
from client.connection import task_queue as default_task_queue
from client.experiments import await_target as experiment_claimed
from client.experiments import experiment_status, is_experiment, start_experiment
from client.records import TemporalRecords
from client.releases import AlreadyReleasing
from client.runs import NoSuchRollout
from client.signing import user_name
from client.starting import AlreadyRolling, TargetOwned
from client.steering import CommandRefused
from plans.errors import PlanError, RolloutError
from plans.experiment import ExperimentPlan
from plans.loading import load_plan, parse_plan
from plans.plan import Plan
from plans.release_plan import ReleasePlan, load_any
from plans.runtime.experiment import ExperimentStatus
from plans.runtime.messages import EXPERIMENT
from plans.runtime.release import ReleaseCommand, ReleaseCommandRecord, ReleaseStatus
from plans.runtime.state import CommandKind, CommandRecord, OperatorCommand, RolloutStatus
from plans.runtime.visibility import ROLLOUT_WORKFLOW, SERVICE, STAGE, STATE, WEIGHT, service_of

__all__ = [
    "AlreadyReleasing",
    "AlreadyRolling",
    "CommandKind",
    "CommandRecord",
    "CommandRefused",
    "NoSuchRollout",
    "Plan",
    "PlanError",
    "ReleaseCommandRecord",
    "ReleasePlan",
    "ReleaseStatus",
    "RolloutError",
    "RolloutStatus",
    "RolloutSummary",
    "Rollouts",
    "Started",
    "TargetOwned",
    "TemporalRecords",
    "end_process",
    "load_any",
    "load_plan",
    "parse_plan",
]

CLAIM_WAIT_S = 15.0
"""How long `start` waits for a worker to claim the rollout's traffic target."""


@dataclass(frozen=True)
class Started:
    """A rollout or release just started."""

    kind: Literal["rollout", "release", "experiment"]
    service: str
    workflow_id: str
    run_id: str | None
    target_claimed: bool | None
    """A rollout: whether a worker claimed its traffic target within the wait (False: none
    picked it up yet; it claims it, or is refused, once one does). A release: None."""
    notes: tuple[str, ...] = ()
    """What a person should know: an unsigned start, search attributes missing."""


@dataclass(frozen=True)
class RolloutSummary:
    """One rollout `list` found, from its search attributes (no worker asked)."""

    service: str
    state: str
    stage: str | None
    weight: int | None
    started_at: datetime
    workflow_id: str
    run_id: str


class Rollouts:
    """Rollouts and releases on one Temporal server: start, steer, watch.

    Build it from a connected ``temporalio`` client (one that speaks pydantic, as
    ``client.connection.connect`` makes it), or with ``Rollouts.connect()``.
    """

    def __init__(self, client: Client, *, task_queue: str | None = None) -> None:
        self.client = client
        self.task_queue = task_queue or default_task_queue()

    @classmethod
    async def connect(cls, *, task_queue: str | None = None) -> Rollouts:
        """Connect as the environment says: TEMPORAL_* variables, else the temporal.toml
        profile, else localhost:7233; the workers' queue from ROLLOUT_TASK_QUEUE."""
        return cls(await connect(), task_queue=task_queue)

    # -- starting -----------------------------------------------------------------------------

    async def start(
        self,
        plan: Plan | ReleasePlan | ExperimentPlan,
        *,
        key: str | None = None,
        claim_wait_s: float = CLAIM_WAIT_S,
    ) -> Started:
        """Start a rollout (or a release, for a ReleasePlan); refused while one runs.

        A plan with approvers is claimed as started by the SSH key ``key`` (see `rollout
        start --key`). A rollout is waited on until a worker claimed its traffic target, up
        to ``claim_wait_s``: TargetOwned when another running rollout moves it.
        """
        notes: list[str] = []
        if isinstance(plan, ReleasePlan):
            handle = await releases.start_release(self.client, plan, self.task_queue)
            if plan.approval_rule.named and (note := await signing.claim_start(handle, key)):
                notes.append(note)
            return Started(
                "release", plan.service, plan.workflow_id, handle.result_run_id, None, tuple(notes)
            )
        if isinstance(plan, ExperimentPlan):
            run = await start_experiment(self.client, plan, self.task_queue)
            owned = await experiment_claimed(self.client, plan, run, timeout=claim_wait_s)
            if plan.plan.approvers and (note := await signing.claim_start(run, key)):
                notes.append(note)
            return Started(
                "experiment", plan.service, plan.workflow_id, run.result_run_id, owned, tuple(notes)
            )
        handle = await starting.start_rollout(self.client, plan, self.task_queue)
        claimed = await starting.await_target(self.client, plan, handle, timeout=claim_wait_s)
        if plan.approvers and (note := await signing.claim_start(handle, key)):
            notes.append(note)
        if not claimed:
            notes.append(
                f"note: no worker has picked the rollout up within {claim_wait_s:g}s; it claims"
                f" {plan.router.target_key()} (or is refused) once one does:"
                f" `rollout status {plan.service}` shows which"
            )
        if not await starting.search_attributes_registered(self.client):
            notes.append(
                "note: this cluster lacks the Rollout* search attributes, so the run cannot be"
                " filtered by state in the UI or `rollout list`; register them with"
                " `rollout setup`"
            )
        return Started(
            "rollout",
            plan.service,
            plan.workflow_id,
            handle.result_run_id,
            claimed,
            tuple(notes),
        )

    # -- watching -----------------------------------------------------------------------------

    async def status(self, service: str) -> RolloutStatus | TemporalRecords:
        """The rollout's status from its workflow, or Temporal's records when no worker
        answers within 2 s (``TemporalRecords``: run state, search attributes, last events)."""
        return await reading.read_status(self.client, service)

    async def experiment(self, service: str) -> ExperimentStatus:
        """A running (or ended) experiment's status: each variant's share, primary effect with
        its interval and guardrails, the winner (a worker must answer)."""
        return await experiment_status(self.client, service)

    async def follow(self, service: str, every: float = 1.0) -> AsyncIterator[RolloutStatus]:
        """Yield the status each time it changes, until the rollout ends (its last status has
        ``state.final``); nothing while no worker answers."""
        async for status in reading.follow(self.client, service, every):
            yield status

    async def wait(self, service: str, every: float = 1.0) -> RolloutStatus:
        """Wait until the rollout ends; its last status (``state``: promoted, rolled back...)."""
        last: RolloutStatus | None = None
        async for status in self.follow(service, every):
            last = status
        if last is None:
            raise RolloutError(f"rollout of {service} ended before any status was read")
        return last

    async def list(self, query: str | None = None) -> list[RolloutSummary]:
        """The running rollouts, or the workflows a Temporal visibility ``query`` matches."""
        found = []
        async for execution in runs.executions(self.client, query or running_rollouts()):
            attributes = execution.typed_search_attributes
            status = execution.status
            found.append(
                RolloutSummary(
                    service=attributes.get(SERVICE) or service_of(execution.id),
                    state=attributes.get(STATE) or (status.name.lower() if status else "-"),
                    stage=attributes.get(STAGE),
                    weight=attributes.get(WEIGHT),
                    started_at=execution.start_time,
                    workflow_id=execution.id,
                    run_id=execution.run_id,
                )
            )
        return found

    # -- steering -----------------------------------------------------------------------------

    async def command(
        self,
        service: str,
        kind: CommandKind | str,
        *,
        reason: str = "",
        by: str | None = None,
        key: str | None = None,
        target: str | None = None,
        variant: str = "",
    ) -> CommandRecord | ReleaseCommandRecord:
        """Send an operator command; its record when taken, CommandRefused saying why if not.

        A service with a running release gets the command as the release's (``target``: one
        target's rollout only). Forward commands (approve, promote, resume, retry, override)
        are signed with the SSH key ``key``, else as `rollout approve --key` finds one.
        """
        command = OperatorCommand(
            kind=CommandKind(kind), by=by or user_name(), reason=reason, variant=variant
        )
        if await releases.release_exists(self.client, service, running_only=True):
            release_command = ReleaseCommand(command=command, target=target)
            return await releases.send_release_command(
                self.client, service, release_command, key=key
            )
        if target:
            raise RolloutError(
                f"--target {target}: no release of {service!r} is running; without a release,"
                f" `rollout status {service}-{target}` reads that rollout on its own"
            )
        if variant and not await is_experiment(self.client, service):
            raise RolloutError(
                f"--variant {variant}: {service!r} runs no experiment; a rollout's promote"
                " sends all traffic to its canary, without --variant"
            )
        return await steering.send_command(self.client, service, command, key=key)

    async def pause(self, service: str, **options: Any) -> CommandRecord | ReleaseCommandRecord:
        """Stop the bake clock and the progression (gates are still checked)."""
        return await self.command(service, CommandKind.PAUSE, **options)

    async def resume(self, service: str, **options: Any) -> CommandRecord | ReleaseCommandRecord:
        """Continue a paused rollout where it stopped."""
        return await self.command(service, CommandKind.RESUME, **options)

    async def approve(self, service: str, **options: Any) -> CommandRecord | ReleaseCommandRecord:
        """Let a stage that waits for approval go on (a release: its next wave)."""
        return await self.command(service, CommandKind.APPROVE, **options)

    async def promote(self, service: str, **options: Any) -> CommandRecord | ReleaseCommandRecord:
        """Skip the remaining stages and send all traffic to the canary."""
        return await self.command(service, CommandKind.PROMOTE, **options)

    async def rollback(self, service: str, **options: Any) -> CommandRecord | ReleaseCommandRecord:
        """Put all traffic back on stable; the run ends rolled back."""
        return await self.command(service, CommandKind.ROLLBACK, **options)

    async def abort(self, service: str, **options: Any) -> CommandRecord | ReleaseCommandRecord:
        """Put all traffic back on stable; the run ends aborted, not failed."""
        return await self.command(service, CommandKind.ABORT, **options)

    async def retry(self, service: str, **options: Any) -> CommandRecord | ReleaseCommandRecord:
        """Check the gates again at once after a pause by the gates or by a deadline."""
        return await self.command(service, CommandKind.RETRY, **options)

    async def override(self, service: str, **options: Any) -> CommandRecord | ReleaseCommandRecord:
        """Let the next traffic increase through a closed release window or a freeze."""
        return await self.command(service, CommandKind.OVERRIDE, **options)

    # -- releases -----------------------------------------------------------------------------

    async def release_status(self, service: str) -> ReleaseStatus:
        """A release's status: its waves and each target's run."""
        return await releases.release_status(self.client, service)

    async def target_statuses(self, status: ReleaseStatus) -> dict[str, RolloutStatus]:
        """Each started target's own rollout status (those whose rollout answers)."""
        return await releases.target_statuses(self.client, status)


def running_rollouts() -> str:
    """The visibility query of the running rollouts and experiments."""
    return (
        f'WorkflowType IN ("{ROLLOUT_WORKFLOW}", "{EXPERIMENT.name}") AND ExecutionStatus="Running"'
    )
