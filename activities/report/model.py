"""What a rollout's report holds, as data: the JSON format is this model, dumped."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, Field

from plans import Plan, Verdict


class Point(BaseModel):
    """One value of a series at one moment."""

    at: datetime
    value: float


class CheckMark(BaseModel):
    """One gate's verdict at one check, as the workflow recorded it."""

    at: datetime
    outcome: str
    canary: float | None = None
    stable: float | None = None
    reason: str = ""
    effect: float | None = Field(default=None, description="canary / stable, sequential gates")
    effect_low: float | None = None
    effect_high: float | None = None


class StageSpan(BaseModel):
    """A stage as it ran: when its weight was set and read back, and until when it held."""

    name: str
    weight: int
    start: datetime
    end: datetime | None = None
    read_back: int | None = Field(default=None, description="the canary weight the router showed")


class TimelineEntry(BaseModel):
    at: datetime
    kind: str
    text: str


class GateSeries(BaseModel):
    """Everything about one gate over the whole rollout, for its plot and its table row."""

    gate: str
    kind: str
    query: str = ""
    threshold: str = ""
    unit: str = ""
    canary: list[Point] = Field(default_factory=list)
    stable: list[Point] = Field(default_factory=list)
    limit: list[Point] = Field(default_factory=list, description="the bound over time")
    checks: list[CheckMark] = Field(default_factory=list)
    missing: str = Field(default="", description="why the Prometheus series are absent, if so")


class BaselineRow(BaseModel):
    """A "performance vs baseline" line: the canary against the stable and the gate's limit."""

    metric: str
    stable: float | None = None
    canary: float | None = None
    change: float | None = Field(default=None, description="(canary - stable) / stable")
    limit: str = ""
    met: bool | None = None
    unit: str = ""
    effect: str = Field(
        default="", description="the change with its interval: x0.97 [x0.93, x1.01], -3.0% [..]"
    )
    target: str = Field(
        default="", description="what the change is held to: allowed x1.2, target x0.95"
    )


class Incident(BaseModel):
    """What a rollback was about: the numbers then, why, and how long users met it."""

    at: datetime
    reason: str
    metrics: list[BaselineRow] = Field(default_factory=list)
    first_failing_at: datetime | None = None
    restored_at: datetime | None = None

    @property
    def seconds_to_restore(self) -> float | None:
        if self.first_failing_at is None or self.restored_at is None:
            return None
        return (self.restored_at - self.first_failing_at).total_seconds()


class Report(BaseModel):
    """A rollout's report: timeline, gates over time, baseline table, incident."""

    service: str
    version: str
    workflow_id: str
    run_ids: list[str]
    stable: str = ""
    canary: str = ""
    state: str
    reason: str = ""
    started_at: datetime
    ended_at: datetime | None = None
    stages: list[StageSpan] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    gates: list[GateSeries] = Field(default_factory=list)
    baseline: list[BaselineRow] = Field(default_factory=list)
    incident: Incident | None = None
    ui_url: str = ""


@dataclass
class Shift:
    at: datetime
    weight: int
    summary: str
    done_at: datetime | None = None
    read_back: int | None = None


@dataclass
class Facts:
    """What the histories of a rollout's runs say, event by event."""

    plan: Plan | None = None
    run_ids: list[str] = field(default_factory=list)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    end_state: str = ""
    end_reason: str = ""
    shifts: list[Shift] = field(default_factory=list)
    checks: list[tuple[datetime, list[Verdict]]] = field(default_factory=list)
    signals: list[TimelineEntry] = field(default_factory=list)
