"""``kind: threshold``: the canary's value against ``max`` / ``min``."""

from __future__ import annotations

from typing import Literal

from plans.gates.base import GateBase


class ThresholdGate(GateBase):
    """The canary's value must stay at or below ``max`` and at or above ``min``."""

    kind: Literal["threshold"] = "threshold"
    max: float | None = None
    min: float | None = None

    @classmethod
    def _fields_elsewhere(cls, names: list[str]) -> list[str]:
        problems = []
        compared = [n for n in names if n != "step"]
        if compared:
            verb = "applies" if len(compared) == 1 else "apply"
            problems.append(
                f"{', '.join(compared)} {verb} to relative, statistical and sequential gates:"
                " a threshold gate uses max and min (or set kind)"
            )
        if "step" in names:
            problems.append("step applies to statistical and sequential gates")
        return problems

    def _problems(self) -> list[str]:
        if self.max is None and self.min is None:
            return ["needs a threshold: set max, min or both"]
        for bound in (self.max, self.min):
            if bound is not None and bound != bound:
                return ["a threshold cannot be NaN"]
        if self.max is not None and self.min is not None and self.min > self.max:
            return [f"min {self.min:g} is above max {self.max:g}"]
        return []

    def describe_threshold(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f">= {self.show(self.min)}")
        if self.max is not None:
            parts.append(f"<= {self.show(self.max)}")
        return " and ".join(parts)
