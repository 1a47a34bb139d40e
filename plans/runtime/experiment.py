"""What a running experiment carries, answers and ends with (workflows/experiment/)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from plans.experiment import ExperimentPlan
from plans.governance.approvals import ApprovalLedger
from plans.runtime.state import AuditEvent, CommandRecord, Verdict


class ExperimentState(StrEnum):
    """Where an experiment stands; the last four are final."""

    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    ROLLING_FORWARD = "rolling_forward"
    RESTORING = "restoring"
    ROLLED_FORWARD = "rolled_forward"  # a variant won and has all the traffic
    KEPT_CONTROL = "kept_control"  # no variant won: the control has all the traffic
    ROLLED_BACK = "rolled_back"  # stopped by a person, a cancel or a failure: control at 100%
    REFUSED = "refused"

    @property
    def final(self) -> bool:
        return self in (
            ExperimentState.ROLLED_FORWARD,
            ExperimentState.KEPT_CONTROL,
            ExperimentState.ROLLED_BACK,
            ExperimentState.REFUSED,
        )


class EffectPoint(BaseModel):
    """A variant's primary effect at one check: its metric over the control's, the interval."""

    at: datetime
    effect: float
    low: float
    high: float


class VariantStatus(BaseModel):
    """One variant: its share now, its primary effect against the control, its guardrails."""

    name: str
    control: bool = False
    share: int = Field(description="percent of the traffic it gets now")
    planned_share: int = Field(description="the share the plan gives it")
    out: str = Field(default="", description="why it was taken out, if it was")
    better: bool = Field(default=False, description="shown better than the control")
    primary: Verdict | None = Field(default=None, description="its primary gate's last verdict")
    guardrails: dict[str, Verdict] = Field(default_factory=dict)
    failure_streaks: dict[str, int] = Field(default_factory=dict)

    def effect_text(self) -> str:
        """``x0.82 [x0.71, x0.94]`` (its metric over the control's, with its interval)."""
        v = self.primary
        if v is None or v.effect is None or v.effect_low is None or v.effect_high is None:
            return ""
        return f"x{v.effect:.3g} [x{v.effect_low:.3g}, x{v.effect_high:.3g}]"


class ExperimentProgress(BaseModel):
    """Everything a run knows; carried whole into the next run."""

    state: ExperimentState = ExperimentState.STARTING
    started_at: datetime | None = None
    ended_at: datetime | None = None
    shares: dict[str, int] = Field(default_factory=dict, description="what the router was set to")
    out: dict[str, str] = Field(default_factory=dict, description="variant -> why taken out")
    verdicts: dict[str, list[Verdict]] = Field(default_factory=dict, description="per variant")
    streaks: dict[str, dict[str, int]] = Field(default_factory=dict)
    unsure: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="variant -> guardrail -> inconclusive checks in a row"
    )
    paused: bool = False
    paused_for_s: float = Field(default=0.0, description="paused time, not counted to max")
    paused_since: datetime | None = None
    next_check_at: datetime | None = None
    checks: int = 0
    checks_this_run: int = 0
    run_count: int = 1
    owned: bool = False
    shifted: bool = Field(default=False, description="the router was set to the shares once")
    winner: str = ""
    chosen_by: str = Field(default="", description="who picked the winner by hand, if anyone")
    stop_asked: str = Field(default="", description="a rollback's reason, once asked")
    reason: str = ""
    commands: list[CommandRecord] = Field(default_factory=list)
    events: list[AuditEvent] = Field(default_factory=list)
    approvals: ApprovalLedger = Field(default_factory=ApprovalLedger)
    notices: int = Field(default=0, description="events told, for their keys")
    trail: dict[str, list[EffectPoint]] = Field(
        default_factory=dict,
        description="variant -> its primary effect at the checks (thinned: the report's plot)",
    )

    def start_next_run(self) -> None:
        self.run_count += 1
        self.checks_this_run = 0


class ExperimentInput(BaseModel):
    """The one argument of ExperimentWorkflow; continue-as-new passes it on with the progress."""

    plan: ExperimentPlan
    progress: ExperimentProgress | None = None
    checks_per_run: int = Field(default=500, ge=1)
    visibility: bool = Field(default=False, description="upsert the Rollout* search attributes")


class ExperimentStatus(BaseModel):
    """What `rollout status` shows of an experiment."""

    kind: str = "experiment"
    service: str
    state: ExperimentState
    control: str
    primary: str
    confidence: float = Field(description="the primary's confidence per variant (split)")
    better: str = Field(description="higher or lower: which way the primary gets better")
    variants: list[VariantStatus]
    winner: str = ""
    reason: str = ""
    checks: int = 0
    started_at: datetime | None = None
    elapsed_s: float = 0.0
    max_duration_s: float = 0.0
    paused: bool = False
    commands: list[CommandRecord] = Field(default_factory=list)
    events: list[AuditEvent] = Field(default_factory=list)
    as_of: datetime | None = None


class ExperimentResult(BaseModel):
    """How an experiment ended: the winner (or none), the shares left, why."""

    service: str
    state: ExperimentState
    winner: str
    shares: dict[str, int]
    reason: str


class ExperimentReportRequest(BaseModel):
    """Write an ended experiment's report (``activities.reports``, ``write_experiment_report``)."""

    status: ExperimentStatus
    run_id: str = Field(description="the experiment's first run: the report's folder")
    trail: dict[str, list[EffectPoint]] = Field(
        default_factory=dict, description="variant -> its primary effect over the checks"
    )
