"""What a release across a fleet carries and shows: its input, its progress, its status."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from plans.governance.approvals import ApprovalLedger
from plans.governance.approvals import who as sender
from plans.release_plan import ReleasePlan
from plans.runtime.state import AuditEvent, CommandKind, OperatorCommand

WAVES_PER_RUN = 10


class ReleaseState(StrEnum):
    """Where a release stands; the last four are final."""

    RUNNING = "releasing"
    BETWEEN_WAVES = "between_waves"
    AWAITING_APPROVAL = "awaiting_wave_approval"
    PAUSED = "release_paused"
    ROLLING_BACK = "rolling_back"
    PROMOTED = "promoted"
    HALTED = "halted"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"

    @property
    def final(self) -> bool:
        return self in (
            ReleaseState.PROMOTED,
            ReleaseState.HALTED,
            ReleaseState.ROLLED_BACK,
            ReleaseState.ABORTED,
        )


class TargetState(StrEnum):
    """One target's rollout as the release sees it."""

    PENDING = "pending"
    RUNNING = "running"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"
    FAILED = "failed"
    RESTORED = "restored"  # promoted, then put back on stable by the release
    SKIPPED = "skipped"  # its wave never started


class TargetRun(BaseModel):
    """A target's rollout: its state, why it ended so, and when."""

    state: TargetState = TargetState.PENDING
    workflow_id: str = ""
    reason: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None


class ReleaseCommand(BaseModel):
    """A command to the release; ``target`` narrows it to one target's rollout."""

    command: OperatorCommand
    target: str | None = Field(default=None, max_length=63)


class TargetSignals(BaseModel):
    """One operator command for several targets' rollouts, sent to all of them at once."""

    workflow_ids: list[str]
    signal: str = Field(description="the rollout's signal: the command's kind")
    body: dict[str, Any] = Field(description="the signal's body: by, reason and what was signed")


class ReleaseCommandRecord(BaseModel):
    """A command as the release took it: which targets it reached, which not and why."""

    kind: str
    by: str
    reason: str
    at: datetime
    target: str | None = None
    accepted: bool
    note: str = ""
    sent_to: list[str] = Field(default_factory=list)
    not_sent: dict[str, str] = Field(default_factory=dict, description="target -> why not")
    verified: str = Field(default="", description="the sender's key fingerprint, if verified")

    def who(self) -> str:
        """``verified ana (SHA256:...)`` or ``claimed ana``: what the audit shows of the sender."""
        return sender(self.by, self.verified)


class ReleaseProgress(BaseModel):
    """The release's whole state, carried across continue-as-new."""

    state: ReleaseState = ReleaseState.RUNNING
    wave_index: int = 0
    wave_started: bool = Field(default=False, description="the current wave's targets began")
    approved_waves: list[int] = Field(default_factory=list)
    wave_ready_at: datetime | None = Field(default=None, description="end of bake_between")
    paused: bool = False
    targets: dict[str, TargetRun] = Field(default_factory=dict)
    promoted_order: list[str] = Field(default_factory=list, description="oldest first")
    failed_target: str = ""
    reason: str = ""
    rollback_requested: bool = False
    abort_requested: bool = False
    commands: list[ReleaseCommandRecord] = Field(default_factory=list)
    events: list[AuditEvent] = Field(default_factory=list)
    run_count: int = 1
    waves_this_run: int = 0
    approvals: ApprovalLedger = Field(
        default_factory=ApprovalLedger, description="signed commands: nonces used, who approved"
    )

    def start_next_run(self) -> None:
        """Count the new run; its waves start from none."""
        self.waves_this_run = 0
        self.run_count += 1


class ReleaseInput(BaseModel):
    """The one argument of ReleaseWorkflow; continue-as-new passes it on with the progress."""

    fleet: ReleasePlan = Field(description="the release plan (its serialized name is kept)")
    progress: ReleaseProgress | None = None
    visibility: bool = Field(default=False, description="upsert and set the search attributes")
    waves_per_run: int = Field(default=WAVES_PER_RUN, ge=1, description="waves before a new run")


class WaveStatus(BaseModel):
    index: int
    targets: list[str]
    approval: bool
    max_parallel: int | None
    bake_between_s: float
    state: str = Field(description="done, running, waiting, approval, or not started")


# The rollout a release starts to put a promoted target back: its id is the target's plus this.
RESTORE_SUFFIX = "-restore"


class ReleaseStatus(BaseModel):
    """What `rollout status` shows of a release; each target's own status comes from its run."""

    service: str
    version: str
    state: ReleaseState
    wave_index: int
    waves: list[WaveStatus]
    targets: dict[str, TargetRun]
    on_target_failure: str
    paused: bool
    failed_target: str = ""
    reason: str = ""
    wave_ready_at: datetime | None = None
    commands: list[ReleaseCommandRecord] = Field(default_factory=list)
    events: list[AuditEvent] = Field(default_factory=list)
    run_count: int = 1


class ReleaseResult(BaseModel):
    """How a release ended."""

    service: str
    state: ReleaseState
    reason: str
    failed_target: str = ""
    targets: dict[str, TargetState] = Field(default_factory=dict)


# Commands that act on the whole release without --target, and the ones that need it.
RELEASE_WIDE = frozenset(
    {CommandKind.PAUSE, CommandKind.RESUME, CommandKind.ROLLBACK, CommandKind.ABORT}
)
