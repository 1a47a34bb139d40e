"""A check's request and what it found: the router's split read back and the gates' verdicts."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from plans.gates import Gate, GateBase
from plans.runtime.state import ShiftRequest, TrafficSplit, Verdict
from plans.sources import MetricsSource


class GateCheck(BaseModel):
    """Evaluate these gates, each against its source, with the plan's placeholders."""

    source: MetricsSource = Field(description="the plan's metrics: gates that name no source")
    sources: dict[str, MetricsSource] = Field(
        default_factory=dict, description="the named sources these gates read"
    )
    gates: list[Gate]
    placeholders: dict[str, str]
    stage_started_at: datetime | None = Field(
        default=None, description="when the stage began: sequential gates read all since"
    )
    stage_span: timedelta | None = Field(
        default=None,
        description="the span of the stage's planned bake (its max_bake when set) and one"
        " check more, for the check that ends it: sequential gates test the looks within it"
        " at most of their level",
    )

    def source_for(self, gate: GateBase) -> MetricsSource:
        return self.source if gate.source is None else self.sources[gate.source]


class CheckRequest(BaseModel):
    """One check: read the router back, then judge the gates (when there are any)."""

    read: ShiftRequest
    check: GateCheck | None = None


class Observation(BaseModel):
    """What a check found: the split (or why it could not be read) and the gates' verdicts."""

    split: TrafficSplit | None = None
    unreadable: str = Field(default="", description="why the split could not be read, if not")
    verdicts: list[Verdict] = Field(default_factory=list)
