"""What the gates that compare the canary with the stable share: the allowed room, the direction."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator

from plans.durations import Duration
from plans.gates.base import GateBase, whole_seconds

Direction = Literal["increase", "decrease", "either"]


class ComparingGate(GateBase):
    """A gate that measures the canary and the stable with one query (``$target`` filled twice).

    For ``direction: increase`` the canary must stay at or below ``stable x factor + margin``.
    """

    factor: float = Field(default=1.0, ge=1.0, description="relative room: stable x factor")
    margin: float = Field(default=0.0, ge=0.0, description="absolute room: stable + margin")
    direction: Direction = Field(default="increase", description="which change is a regression")

    @classmethod
    def _fields_elsewhere(cls, names: list[str]) -> list[str]:
        problems = []
        if "max" in names or "min" in names:
            problems.append(
                f"max and min apply to threshold gates: a {cls.model_fields['kind'].default}"
                " gate compares the canary with the stable using factor and margin"
            )
        return problems

    def _problems(self) -> list[str]:
        problems = []
        if self.factor != self.factor or self.margin != self.margin:
            problems.append("factor and margin cannot be NaN")
        # Whether each query selects the version with $target is the source's to say
        # (SourceModel.version_problems): a web source selects it in its URL.
        return problems

    @property
    def compares(self) -> bool:
        return True

    def describe_limit(self) -> str:
        """The bound against the stable: ``<= stable x1.5+0.1%``."""
        up = f"stable{f' x{self.factor:g}' if self.factor != 1 else ''}"
        up += f"+{self.show(self.margin)}" if self.margin else ""
        down = f"stable{f' /{self.factor:g}' if self.factor != 1 else ''}"
        down += f"-{self.show(self.margin)}" if self.margin else ""
        if self.direction == "increase":
            return f"<= {up}"
        if self.direction == "decrease":
            return f">= {down}"
        return f">= {down} and <= {up}"


class SteppedGate(ComparingGate):
    """A comparing gate judged by a test over one point per step, at a confidence."""

    confidence: float = Field(default=0.98, gt=0.5, lt=1.0)
    step: Duration = Field(
        default=timedelta(seconds=10), description="one point per step ($window in it)"
    )

    @field_validator("step")
    @classmethod
    def _whole_seconds(cls, v: timedelta) -> timedelta:
        return whole_seconds(v)
