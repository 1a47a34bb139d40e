"""What each workflow answers to, by name and type: the one definition both sides read.

The workflows register their handlers under these names (``@workflow.query(name=...)``);
the client layer (``client.calls``) sends, asks and starts through them, so a caller gets
the answer's type without importing a workflow class. The names are part of the product's
surface: the Temporal CLI and UI send the signals below by name (``temporal workflow signal
--name pause``), and recorded histories hold them, so they never change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from plans.governance.approvals import SignedCommand
from plans.governance.freezes import Freeze, FreezeRequest, RemovedFreeze
from plans.runtime.experiment import ExperimentInput, ExperimentResult, ExperimentStatus
from plans.runtime.inputs import RolloutInput, ScheduledRollout
from plans.runtime.leases import TargetClaim
from plans.runtime.release import (
    ReleaseCommand,
    ReleaseCommandRecord,
    ReleaseInput,
    ReleaseResult,
    ReleaseStatus,
)
from plans.runtime.state import CommandRecord, OperatorCommand, RolloutResult, RolloutStatus
from plans.runtime.visibility import RELEASE_WORKFLOW, ROLLOUT_WORKFLOW

Arg = TypeVar("Arg")
Result = TypeVar("Result")


@dataclass(frozen=True)
class WorkflowType(Generic[Arg, Result]):
    """A workflow's registered name, the argument it starts with and what it returns."""

    name: str
    result: Any


@dataclass(frozen=True)
class Signal(Generic[Arg]):
    """A signal's name and the one argument it carries."""

    name: str


@dataclass(frozen=True)
class Query(Generic[Result]):
    """A query's name and the type of its answer."""

    name: str
    result: Any


@dataclass(frozen=True)
class Update(Generic[Arg, Result]):
    """An update's name, its one argument and the type of its answer."""

    name: str
    result: Any


# A rollout of one service (workflows/rollout/workflow.py).
ROLLOUT = WorkflowType[RolloutInput, RolloutResult](ROLLOUT_WORKFLOW, RolloutResult)
ROLLOUT_STATUS = Query[RolloutStatus]("status", RolloutStatus)
# Every operator command, answered with its record or refused (the CLI sends this).
ROLLOUT_COMMAND = Update[OperatorCommand, CommandRecord]("command", CommandRecord)
# The same commands as signals, for the Temporal CLI and UI; each takes an optional body.
COMMAND_SIGNALS = (
    "pause",
    "resume",
    "approve",
    "promote",
    "rollback",
    "abort",
    "retry",
    "override",
)
# Who started a rollout or release, signed (``rollout start`` sends it right after).
STARTED_BY = Signal[SignedCommand]("started_by")

# A release across a fleet (workflows/release/workflow.py).
RELEASE = WorkflowType[ReleaseInput, ReleaseResult](RELEASE_WORKFLOW, ReleaseResult)
RELEASE_STATUS = Query[ReleaseStatus]("status", ReleaseStatus)
RELEASE_COMMAND = Update[ReleaseCommand, ReleaseCommandRecord]("command", ReleaseCommandRecord)
# The release's commands as a signal with a JSON body, for the Temporal CLI and UI.
RELEASE_COMMAND_SIGNAL = Signal[Any]("release_command")

# An experiment (workflows/experiment/): its variants side by side, the winner rolled forward.
# It runs under its service's rollout id (one rollout or experiment at a time) and takes the
# rollout's commands through the same update (``promote`` names the variant).
EXPERIMENT = WorkflowType[ExperimentInput, ExperimentResult]("Experiment", ExperimentResult)
EXPERIMENT_STATUS = Query[ExperimentStatus]("status", ExperimentStatus)

# A traffic target's lease (workflows/lease.py): held by one rollout at a time.
LEASE = WorkflowType[TargetClaim, str]("TargetLease", str)
LEASE_OWNER = Query[TargetClaim]("owner", TargetClaim)
# The owner frees the target: its workflow id, or a claim naming it.
LEASE_RELEASE = Signal[Any]("release")

# The freeze calendar (workflows/freezes.py): one per namespace.
FREEZE_CALENDAR = WorkflowType[Any, None]("FreezeCalendar", None)
FREEZE_ADD = Update[FreezeRequest, Freeze]("add", Freeze)
FREEZE_REMOVE = Update[Any, Freeze]("remove", Freeze)
FREEZE_LIST = Query[list[Freeze]]("list", list[Freeze])
FREEZE_REMOVALS = Query[list[RemovedFreeze]]("removals", list[RemovedFreeze])

# What a Temporal Schedule starts at its time: it starts the rollout (workflows/scheduled.py).
SCHEDULED_START = WorkflowType[ScheduledRollout, str]("ScheduledStart", str)

# The activities' registered names, as histories record them: the readers of a history
# (the report, and `rollout status` when no worker answers) meet them there as names.
SHIFT_TRAFFIC = "shift_traffic"
READ_TRAFFIC = "read_traffic"
# An experiment's variants at set shares (plans/runtime/shares.py).
SET_VARIANT_SHARES = "set_variant_shares"
READ_VARIANT_SHARES = "read_variant_shares"
CHECK_GATES = "check_gates"
LOOK = "look"
NOTIFY = "notify"
# An ended experiment's report: its input (status and trail) is what `rollout report` reads.
WRITE_EXPERIMENT_REPORT = "write_experiment_report"
# The local activities whose markers hold a check's verdicts.
CHECKS = (CHECK_GATES, LOOK)
