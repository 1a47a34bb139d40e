"""Freezes: spans of time in which no rollout of a service (or of any) may add traffic.

They live in one long-running workflow, ``FreezeCalendar`` (``workflows/freezes.py``),
so every worker and every operator reads the same list; a rollout reads it before each
increase. These are the shapes that cross that boundary, and the pure arithmetic.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, model_validator

from plans import text
from plans.governance.approvals import ApprovalLedger, SignedCommand, who

FREEZE_CALENDAR_ID = "rollout-freezes"
ALL_SERVICES = "*"
MAX_FREEZES = 500


class FreezeRequest(BaseModel):
    """``rollout freeze add``: a service (or ``*`` for all), a span and a reason."""

    service: str = Field(min_length=1, max_length=100)
    start: datetime
    end: datetime
    reason: str = Field(min_length=1, max_length=500)
    by: str = Field(default="unknown", max_length=200)

    @model_validator(mode="after")
    def _span(self) -> FreezeRequest:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("give --from and --until with a zone (or --tz)")
        if self.end <= self.start:
            raise ValueError("--until must be after --from")
        if self.service != ALL_SERVICES:
            text.check_name(self.service, "service")
        return self


class Freeze(FreezeRequest):
    """A freeze as kept: with its id and when it was added."""

    id: str
    added_at: datetime

    def covers(self, service: str, at: datetime) -> bool:
        return self.service in (service, ALL_SERVICES) and self.start <= at < self.end

    def describe(self) -> str:
        who = "all services" if self.service == ALL_SERVICES else self.service
        return f"freeze {self.id} of {who} until {self.end:%Y-%m-%d %H:%M} UTC ({self.reason})"


class FreezeRemoval(BaseModel):
    """``rollout freeze remove``: which freeze, who and why; signed where the worker requires."""

    id: str = Field(min_length=1, max_length=40)
    by: str = Field(default="unknown", max_length=200)
    reason: str = Field(default="", max_length=500)
    signed: SignedCommand | None = None


class RemovedFreeze(BaseModel):
    """A freeze that was removed: who removed it (verified or claimed), why and when."""

    freeze: Freeze
    by: str
    verified: str = Field(default="", description="the remover's key fingerprint, if verified")
    reason: str = ""
    at: datetime

    def describe(self) -> str:
        why = f": {self.reason}" if self.reason else " (no reason given)"
        return f"{self.freeze.describe()} removed by {who(self.by, self.verified)}{why}"


class CalendarRecord(BaseModel):
    """What the calendar carries into its next run beside the freezes: removals, nonces."""

    removals: list[RemovedFreeze] = Field(default_factory=list)
    ledger: ApprovalLedger = Field(default_factory=ApprovalLedger)


def freeze_holding(freezes: list[Freeze], service: str, at: datetime) -> Freeze | None:
    """The freeze that holds ``service`` at ``at`` and ends last, if any."""
    holding = [f for f in freezes if f.covers(service, at)]
    return max(holding, key=lambda f: f.end, default=None)
