"""A rollout's state and what moves with it between the workflow, its activities and the
operator: commands, traffic splits, verdicts, the status and the result."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from plans.governance.approvals import SignedCommand
from plans.match import RequestMatch
from plans.routers import Router


class RolloutState(StrEnum):
    """Where a rollout stands; the last three are final."""

    WAITING = "waiting"
    SHIFTING = "shifting"
    BAKING = "baking"
    PAUSED = "paused"
    AWAITING_APPROVAL = "awaiting_approval"
    WAITING_FOR_WINDOW = "waiting_for_window"
    ROLLING_BACK = "rolling_back"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"
    REFUSED = "refused"

    @property
    def final(self) -> bool:
        return self in (
            RolloutState.PROMOTED,
            RolloutState.ROLLED_BACK,
            RolloutState.ABORTED,
            RolloutState.REFUSED,
        )


class CommandKind(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    APPROVE = "approve"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    ABORT = "abort"
    RETRY = "retry"
    OVERRIDE = "override"


class OperatorCommand(BaseModel):
    """A person steering the rollout; ``by`` and ``reason`` end up in the audit trail."""

    model_config = ConfigDict(extra="forbid")

    kind: CommandKind
    by: str = Field(default="unknown", max_length=200)
    reason: str = Field(default="", max_length=2000)
    signed: SignedCommand | None = None  # with the sender's SSH key (plans.governance.approvals)
    variant: str = Field(
        default="", max_length=200, description="an experiment's variant that promote rolls forward"
    )


class CommandRecord(BaseModel):
    """A command as received: when, whether it was taken, and why not if it was refused."""

    kind: str
    by: str
    reason: str
    at: datetime
    accepted: bool
    note: str = ""
    via: str = "signal"
    verified: str = Field(default="", description="the sender's key fingerprint, if verified")


class TrafficSplit(BaseModel):
    """Relative weights of the two servers; canary p% means canary p, stable 100-p.

    How large a weight may be is the router's to say (``max_weight`` of its model).
    """

    stable_weight: int = Field(ge=0)
    canary_weight: int = Field(ge=0)
    match: RequestMatch | None = Field(
        default=None, description="requests sent to the canary whatever the weights"
    )

    @classmethod
    def canary_percent(cls, percent: int, match: RequestMatch | None = None) -> TrafficSplit:
        return cls(stable_weight=100 - percent, canary_weight=percent, match=match)

    @property
    def percent(self) -> float:
        total = self.stable_weight + self.canary_weight
        return 0.0 if total == 0 else 100.0 * self.canary_weight / total

    def routes_like(self, other: TrafficSplit) -> bool:
        """Both send the same share and the same matched requests to the canary.

        Weights 10/90 and 20/180 route alike.
        """
        if self.match != other.match:
            return False
        if (self.stable_weight + self.canary_weight == 0) != (
            other.stable_weight + other.canary_weight == 0
        ):
            return False
        return abs(self.percent - other.percent) < 0.5

    def __str__(self) -> str:
        weights = f"weights stable {self.stable_weight}, canary {self.canary_weight}"
        matched = f" and every request with {self.match.describe()}" if self.match else ""
        return f"canary {self.percent:g}% ({weights}){matched}"


class ShiftRequest(BaseModel):
    """Set both servers' weights on one router."""

    router: Router
    stable: str
    canary: str
    split: TrafficSplit


class Compensation(BaseModel):
    """An undo record pushed when a side effect happens; rollback runs them in reverse."""

    kind: str = "restore_split"
    shift: ShiftRequest
    description: str


class GateOutcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class Verdict(BaseModel):
    """One gate's judgement of one check, with the numbers behind it.

    ``value`` is the canary's value (the median of its points for Mann-Whitney);
    ``canary``/``stable`` and the request counts are filled as far as they were measured,
    ``test``, ``statistic`` and ``p_value`` for statistical gates. Sequential gates add
    ``effect``, the canary's value over the stable's (the rate ratio, or a quantile's), and
    its confidence interval ``effect_low``..``effect_high``. ``reason`` says it in words.
    """

    gate: str
    outcome: GateOutcome
    value: float | None = None
    threshold: str = ""
    query: str = ""
    reason: str = ""
    at: datetime | None = None
    kind: str = "threshold"
    canary: float | None = None
    stable: float | None = None
    canary_samples: float | None = None
    stable_samples: float | None = None
    test: str = ""
    statistic: float | None = None
    p_value: float | None = None
    effect: float | None = None
    effect_low: float | None = None
    effect_high: float | None = None
    evidence: float | None = Field(
        default=None, description="sequential gates: the canary's requests since the stage began"
    )
    evidence_needed: float | None = Field(
        default=None,
        description="the canary requests the test needs to show the regression it is tuned to"
        " find (evidence_target), at this split and rate; None when unknown or out of reach",
    )
    evidence_target: float | None = Field(
        default=None, description="that regression, as canary / stable (a rate or a latency ratio)"
    )

    def explain(self) -> str:
        shown = "no value" if self.value is None else f"{self.value:.6g}"
        text = f"{self.gate}: {self.outcome.value} ({shown}, wants {self.threshold})"
        return f"{text} {self.reason}".strip()


class GateAction(BaseModel):
    """What the gate policy asks of the workflow after a check: roll back, pause or tell people.

    ``trigger`` says whether failures or inconclusive checks reached the gate's limit;
    ``reason`` quotes the verdict, e.g. "error-rate: canary 4.1% vs stable 0.2% (limit
    <= stable x1.5+0.1%), failed 3 check(s) in a row".
    """

    action: Literal["rollback", "pause", "notify"]
    gate: str
    reason: str
    trigger: Literal["fail", "inconclusive"] = "fail"
    streak: int = 1
    limit: int = 1
    severity: str = "critical"
    check: int = Field(default=0, description="the rollout's check count when it was asked for")


class AuditEvent(BaseModel):
    """One line of the audit trail: a stage change, a verdict that changed, a command."""

    at: datetime
    kind: str
    text: str


class RolloutStatus(BaseModel):
    """What `rollout status` shows: a query answer built from workflow state."""

    service: str
    version: str
    state: RolloutState
    stage_index: int
    stage_name: str
    stage_count: int
    stages: list[str] = Field(default_factory=list)
    canary_weight: int
    canary_match: str = Field(
        default="", description="the requests sent to the canary by match, in words, if any"
    )
    paused: bool
    bake_total_s: float
    bake_elapsed_s: float
    bake_remaining_s: float
    awaiting_approval: bool
    verdicts: dict[str, Verdict] = Field(default_factory=dict)
    failure_streaks: dict[str, int] = Field(default_factory=dict)
    inconclusive_streaks: dict[str, int] = Field(default_factory=dict)
    pause_cause: str = ""
    commands: list[CommandRecord] = Field(default_factory=list)
    events: list[AuditEvent] = Field(default_factory=list)
    reason: str = ""
    checks: int = 0
    run_count: int = 1
    as_of: datetime | None = Field(
        default=None, description="the moment the bake numbers are valid for (the workflow's now)"
    )
    bake_clock_running: bool = Field(
        default=False, description="the bake clock was running at as_of (not paused, not done)"
    )
    stage_started_at: datetime | None = Field(
        default=None,
        description="when the weight now set was set: the current stage's start (None before"
        " the first shift, and from workers older than this field)",
    )

    window_hold: str = Field(default="", description="why the next increase waits, if it does")
    window_opens_at: datetime | None = Field(
        default=None, description="when the next increase may happen, while it waits"
    )
    restore_blocked: str = Field(
        default="", description="why stable is not back yet and what a person must do"
    )
    asked: ShiftRequest | None = None  # the split the run last set or now sets (None: old worker)

    def at(self, now: datetime) -> RolloutStatus:
        """The same status with the bake clock read at ``now`` instead of at ``as_of``.

        A query answers with the workflow's time, which is the time of its last workflow
        task: up to a whole ``check_every`` ago. A running clock has gone on since then,
        up to the bake's length; a stopped one has not.
        """
        if self.as_of is None:
            return self
        elapsed = self.bake_elapsed_s
        if self.bake_clock_running:
            since = max((now - self.as_of).total_seconds(), 0.0)
            elapsed = max(elapsed, min(elapsed + since, self.bake_total_s))
        return self.model_copy(
            update={
                "as_of": max(now, self.as_of),
                "bake_elapsed_s": elapsed,
                "bake_remaining_s": max(self.bake_total_s - elapsed, 0.0),
            }
        )


class RolloutResult(BaseModel):
    """How a rollout ended."""

    service: str
    state: RolloutState
    reason: str
    canary_weight: int
    stage_name: str


class ReportRequest(BaseModel):
    """Write the report of this rollout's run (it reads the history and the status itself)."""

    workflow_id: str
    run_id: str
