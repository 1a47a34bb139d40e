"""A stage of a rollout: the canary's share of traffic, how long it bakes, what it checks."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from plans import text
from plans.durations import Duration, format_duration
from plans.match import RequestMatch
from plans.text import Strict


def _gate_count(v: Any) -> Any:
    return text.at_most(
        v, text.MAX_GATES, "gate names", "a stage may list", "name each gate it checks once"
    )


class Stage(Strict):
    """One step of the rollout: the canary's share of traffic and how long it bakes there."""

    name: Annotated[str, text.safe_name("stage name")]
    weight: int = Field(description="percent of traffic sent to the canary, 0-100")
    bake: Duration = timedelta(minutes=10)
    check_every: Duration = timedelta(minutes=1)
    approval: bool = Field(default=False, description="wait for `rollout approve` after baking")
    gates: Annotated[list[str] | None, BeforeValidator(_gate_count)] = Field(
        default=None, description="names of the plan's gates checked here (default: all)"
    )
    progress_deadline: Duration | None = Field(
        default=None,
        description="longest the stage may run (paused time excluded) before on_deadline acts",
    )
    on_deadline: Literal["pause", "rollback", "notify"] = "pause"
    max_bake: Duration | None = Field(
        default=None,
        description="how long the bake may run on while its gates lack the samples to judge"
        " (inconclusive, or short of the requests their test needs); then the stage pauses",
    )
    abort_after: Duration | None = Field(
        default=None,
        description="end the rollout aborted when the stage has not completed this long after"
        " it started, approval and paused time included (blue-green's auto_abort_after)",
    )
    match: RequestMatch | None = Field(
        default=None,
        description="requests sent to the canary whatever the weight (internal users first)",
    )

    @field_validator("weight", mode="before")
    @classmethod
    def _weight_type(cls, v: object) -> object:
        if isinstance(v, bool):
            raise ValueError(f"weight {v} is not a number: use a percentage from 0 to 100")
        return v

    @field_validator("weight")
    @classmethod
    def _weight(cls, v: int) -> int:
        if not 0 <= v <= 100:
            raise ValueError(
                f"weight {text.quote(v)} is out of range: use a percentage from 0 to 100"
            )
        return v

    @field_validator("check_every")
    @classmethod
    def _check_every(cls, v: timedelta) -> timedelta:
        if v < timedelta(seconds=1):
            raise ValueError(f"check_every {format_duration(v)} is too short: use 1s or more")
        return v

    @model_validator(mode="after")
    def _match(self) -> Stage:
        if self.match is not None and self.weight == 100:
            raise ValueError(
                "match: a stage at weight 100 already sends every request to the canary:"
                " remove match there"
            )
        return self

    @model_validator(mode="after")
    def _deadline(self) -> Stage:
        if self.max_bake is not None and self.max_bake <= self.bake:
            raise ValueError(
                f"max_bake {format_duration(self.max_bake)} is not longer than the bake"
                f" {format_duration(self.bake)}: set it above the bake, or remove it"
            )
        if self.abort_after is not None and self.abort_after <= self.bake:
            raise ValueError(
                f"abort_after {format_duration(self.abort_after)} is not longer than the bake"
                f" {format_duration(self.bake)}: the stage would be aborted before it could end"
            )
        if self.progress_deadline is not None and self.progress_deadline <= self.bake:
            raise ValueError(
                f"progress_deadline {format_duration(self.progress_deadline)} is not longer than"
                f" the bake {format_duration(self.bake)}: the stage could never finish in time"
            )
        return self

    @property
    def test_span(self) -> timedelta:
        """The span a sequential gate's sharper test covers: the planned bake (``max_bake``
        when set) and one check more, for the check that ends it a moment after."""
        return (self.max_bake or self.bake) + self.check_every
