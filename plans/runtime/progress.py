"""A rollout's progress: what carries a run into the next one, in parts by concern.

Each part has one writer in ``workflows/``, named in its docstring; other modules read it.
What is left at the top level is the rollout's own: where it stands (its stage and state,
written by the workflow), what the operator asked (``workflows.rollout.decisions``, through the
command log), and where traffic is (``workflows.rollout.target``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from plans.governance.approvals import ApprovalLedger
from plans.governance.freezes import Freeze
from plans.match import RequestMatch
from plans.runtime.state import (
    AuditEvent,
    CommandRecord,
    Compensation,
    GateAction,
    RolloutState,
    Verdict,
)


class BakeClock(BaseModel):
    """The stage's bake clock and its checks' schedule; written by ``workflows.rollout.clock``."""

    entered_at: datetime | None = Field(
        default=None, description="when the current stage's weight was set"
    )
    elapsed_s: float = 0.0
    running_since: datetime | None = None
    next_check_at: datetime | None = None
    checks: int = Field(default=0, description="checks made in this stage")
    last_check_at: datetime | None = Field(
        default=None, description="when the router and gates were last looked at in this stage"
    )
    deadline_acted_stage: int = -1
    extension: Literal["", "extended", "over"] = Field(
        default="",
        description="the stage's bake past its end, up to max_bake: extended, or over",
    )


class GateRecord(BaseModel):
    """The gates' last verdicts and streaks; written by ``workflows.rollout.decisions``."""

    verdicts: dict[str, Verdict] = Field(default_factory=dict)
    failure_streaks: dict[str, int] = Field(default_factory=dict)
    inconclusive_streaks: dict[str, int] = Field(default_factory=dict)
    shadow_actions: list[GateAction] = Field(
        default_factory=list, description="what dry-run gates would have done, latest last"
    )


class TargetHold(BaseModel):
    """The rollout's hold on its traffic target; written by ``workflows.rollout.target``."""

    owned: bool = Field(
        default=False, description="this rollout holds the lease on its traffic target"
    )
    compensations: list[Compensation] = Field(default_factory=list)
    router_unreadable: bool = Field(
        default=False, description="the last read of the router's split failed"
    )
    restore_rounds: int = Field(default=0, description="rounds of restore attempts that failed")
    restore_blocked: str = Field(
        default="", description="why stable is not back yet and what a person must do"
    )


class WindowHold(BaseModel):
    """What holds the next increase (a window, a freeze).

    Written by ``workflows.rollout.windows``.
    """

    hold: str = Field(default="", description="why the next increase waits, if it does")
    opens_at: datetime | None = Field(
        default=None, description="when the window the rollout waits for opens"
    )
    freezes: list[Freeze] = Field(
        default_factory=list, description="the freezes of this service read before an increase"
    )


class HookRecord(BaseModel):
    """The hooks asked so far and their failures; written by ``workflows.rollout.hooks``."""

    done: list[str] = Field(
        default_factory=list, description="hook points passed, so a new run does not ask again"
    )
    streaks: dict[str, int] = Field(
        default_factory=dict, description="check hooks' failures in a row, by hook name"
    )


class RolloutProgress(BaseModel):
    """The workflow's whole state: enough to carry a run into the next one (continue-as-new)."""

    state: RolloutState = RolloutState.WAITING
    stage_index: int = 0
    shifted_stage: int = Field(default=-1, description="index of the stage whose weight is set")
    canary_weight: int = 0
    canary_match: RequestMatch | None = Field(
        default=None, description="the requests the last shift sent to the canary by match"
    )
    clock: BakeClock = Field(default_factory=BakeClock)
    gates: GateRecord = Field(default_factory=GateRecord)
    target: TargetHold = Field(default_factory=TargetHold)
    window: WindowHold = Field(default_factory=WindowHold)
    hooks: HookRecord = Field(default_factory=HookRecord)
    paused: bool = False
    pause_cause: str = Field(default="", description="operator, gates or deadline")
    abort_requested: bool = False
    approved_stage: int = -1
    promote_requested: bool = False
    rollback_requested: bool = False
    overrides: int = Field(
        default=0, description="increases an override lets through a window or freeze"
    )
    commands: list[CommandRecord] = Field(default_factory=list)
    events: list[AuditEvent] = Field(default_factory=list)
    reason: str = ""
    checks: int = 0
    checks_this_run: int = 0
    run_count: int = 1
    notices: int = Field(default=0, description="events told so far: part of each one's key")
    approval_noticed_stage: int = Field(
        default=-1, description="the stage whose wait for approval people were told of"
    )
    report_url: str = Field(default="", description="the report written when the rollout ended")
    stopping_as: RolloutState | None = Field(
        default=None, description="the end a rollback under way leads to (rolled back, aborted)"
    )
    approvals: ApprovalLedger = Field(default_factory=ApprovalLedger)  # signed commands' record

    def start_next_run(self) -> None:
        """Count the new run; its checks start from none."""
        self.checks_this_run = 0
        self.run_count += 1
