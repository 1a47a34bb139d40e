"""What the gates that compare the canary with the stable share: the allowed room, the direction.

A comparing gate guards against harm: the canary may be worse than the stable by its
allowance (``factor``, ``margin``) and no more. With ``direction: improve`` it also asks for a
gain: the canary must be shown better than the stable ``by`` a relative amount (``5%``: the
stable's value x0.95 when lower is better, x1.05 when higher is) or, for a rate, by
percentage points (``0.1pp``: the stable's rate -0.001 or +0.001). ``better`` says which way
is better (``lower`` for error rates and latency, ``higher`` for success rates and
conversions); a preset says it for its metric. A bare number is refused, as it could mean
either.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import ClassVar, Literal, NamedTuple

from pydantic import Field, field_validator

from plans.durations import Duration
from plans.gates.base import GateBase, whole_seconds
from plans.sources import PRESETS

Direction = Literal["increase", "decrease", "either", "improve"]
Better = Literal["lower", "higher"]

_BY = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(%|pp)\s*")
_BY_EXAMPLE = (
    "write by: 5% for a change relative to the stable's value, or by: 0.1pp (percentage"
    " points) for an absolute change of a rate"
)


class Improvement(NamedTuple):
    """The test that shows a gain: rejecting its null (``direction`` beyond the bound) shows it.

    ``direction``, ``factor`` and ``margin`` are as a harm test takes them: for a value where
    lower is better, "canary <= stable x0.95" is shown by rejecting "canary >= stable /
    (1/0.95)", the ``decrease`` test with factor 1/0.95. ``ratio`` is the target as canary /
    stable when the gain is relative (None for percentage points).
    """

    direction: Literal["increase", "decrease"]
    factor: float
    margin: float
    ratio: float | None


def parse_by(by: str | float | None) -> tuple[float, Literal["%", "pp"]] | None:
    """``5%`` as (5.0, "%"), ``0.1pp`` as (0.1, "pp"); None when it is neither."""
    if not isinstance(by, str):
        return None
    found = _BY.fullmatch(by)
    if found is None:
        return None
    unit: Literal["%", "pp"] = "%" if found.group(2) == "%" else "pp"
    return float(found.group(1)), unit


def improvement_of(better: str, by: str | float) -> Improvement:
    """The test that shows a gain of ``by`` (``5%``, ``0.1pp``) where ``better`` is the way.

    ValueError when ``by`` is neither form or ``better`` is neither ``lower`` nor ``higher``.
    """
    parsed = parse_by(by)
    if parsed is None or better not in ("lower", "higher"):
        raise ValueError(f"by {by!r} with better {better!r}: {_BY_EXAMPLE}; better: lower|higher")
    amount, unit = parsed
    lower = better == "lower"
    if unit == "pp":
        return Improvement("decrease" if lower else "increase", 1.0, amount / 100, None)
    ratio = 1 - amount / 100 if lower else 1 + amount / 100
    if ratio <= 0:
        raise ValueError(f"by {by}: a value where lower is better cannot fall by 100% or more")
    if lower:
        return Improvement("decrease", 1 / ratio, 0.0, ratio)
    return Improvement("increase", ratio, 0.0, ratio)


def times(ratio: float) -> str:
    """A ratio of canary to stable as a factor: ``x0.97``."""
    return f"x{ratio:.3g}"


def percent(ratio: float) -> str:
    """A ratio of canary to stable as a change: ``-3.0%``."""
    return f"{(ratio - 1) * 100:+.1f}%"


class ComparingGate(GateBase):
    """A gate that measures the canary and the stable with one query (``$target`` filled twice).

    For ``direction: increase`` the canary must stay at or below ``stable x factor + margin``.
    """

    # Whether the kind can show a gain at a confidence (direction: improve).
    improves: ClassVar[bool] = False

    factor: float = Field(default=1.0, ge=1.0, description="relative room: stable x factor")
    margin: float = Field(default=0.0, ge=0.0, description="absolute room: stable + margin")
    direction: Direction = Field(
        default="increase",
        description="which change is a regression; improve: the canary must be shown better",
    )
    better: Better | None = Field(
        default=None,
        description="which way is better (lower: errors, latency; higher: successes);"
        " a preset says it for its metric",
    )
    by: str | float | None = Field(
        default=None,
        description="with direction improve, the gain to show: 5% (relative to the stable)"
        " or 0.1pp (percentage points of a rate)",
    )

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
        return problems + self._improvement_problems()

    def _improvement_problems(self) -> list[str]:
        if self.direction != "improve":
            worse = {"increase": "higher", "decrease": "lower"}.get(self.direction)
            if self.better is not None and self.better == worse:
                return [
                    f"better: {self.better} says {'an' if worse == 'higher' else 'a'}"
                    f" {self.direction} is no regression, but"
                    f" direction {self.direction} treats it as one: fix one of them, or ask"
                    " for a gain with direction: improve"
                ]
            if self.by is not None:
                return ["by applies to direction: improve (the gain the canary must show)"]
            return []
        if not self.improves:
            return [
                "direction improve needs a test that is valid at every look: use kind:"
                " sequential (test: rate or latency)"
            ]
        problems = []
        if self.better_way is None:
            problems.append(
                "direction improve needs better: lower (error rates, latency) or higher"
                " (success rates, conversions), which way is an improvement"
            )
        if self.by is None:
            problems.append(f"direction improve needs by, the gain to show: {_BY_EXAMPLE}")
            return problems
        parsed = parse_by(self.by)
        if parsed is None:
            if isinstance(self.by, str):
                return [*problems, f"by {self.by!r} cannot be read: {_BY_EXAMPLE}"]
            return [
                *problems,
                f"by {self.by:g} is ambiguous (a share of the stable's value, or points of a"
                f" rate?): {_BY_EXAMPLE}",
            ]
        amount, unit = parsed
        if not amount > 0 or not math.isfinite(amount):
            problems.append(f"by {self.by} shows no gain: it must be more than 0")
        elif unit == "%" and self.better_way == "lower" and amount >= 100:
            problems.append(
                f"by {self.by}: a value where lower is better cannot fall by 100% or more"
            )
        elif unit == "pp" and amount >= 100:
            problems.append(f"by {self.by}: a rate cannot change by 100 points or more")
        if unit == "pp" and not self.counts_a_rate:
            problems.append(
                f"by {self.by}: percentage points apply to a rate (test: rate); write the"
                " gain relative to the stable, e.g. by: 5%"
            )
        return problems

    @property
    def counts_a_rate(self) -> bool:
        """Whether the gate's values are proportions, so percentage points mean something."""
        return False

    @property
    def compares(self) -> bool:
        return True

    @property
    def better_way(self) -> Better | None:
        """Which way is better: ``better``, else what the gate's preset says of its metric."""
        if self.better is not None:
            return self.better
        preset = PRESETS.get(self.preset) if self.preset is not None else None
        if preset is None:
            return None
        return "lower" if preset.direction == "increase" else "higher"

    @property
    def harm_direction(self) -> Literal["increase", "decrease", "either"]:
        """The change the allowance bounds: for direction improve, the change for the worse."""
        if self.direction != "improve":
            return self.direction
        return "decrease" if self.better_way == "higher" else "increase"

    def improvement(self) -> Improvement | None:
        """The test that shows the gain ``by`` asks for; None unless direction is improve."""
        if self.direction != "improve" or self.better_way is None or self.by is None:
            return None
        return improvement_of(self.better_way, self.by)

    def describe_target(self) -> str:
        """The improvement asked for, as the plan says it: ``5% lower``, ``0.1pp higher``."""
        parsed = parse_by(self.by)
        if parsed is None:
            return ""
        amount, unit = parsed
        return f"{amount:g}{unit} {self.better_way}"

    def describe_change(self, ratio: float, low: float, high: float) -> str:
        """A measured effect with its interval: ``x0.97 [x0.93, x1.01]`` for a rate, else
        the change of the quantile, ``-3.0% [-7.0%, +1.0%]``."""
        shown = times if self.counts_a_rate else percent
        return f"{shown(ratio)} [{shown(low)}, {shown(high)}]"

    def describe_goal(self, stable: float | None = None) -> str:
        """What the effect is held to, in the same terms: ``allowed x1.2+0.05%``, ``target
        x0.95``, ``target -0.1pp (x0.8 at the stable's 0.5%)``."""
        shown = times if self.counts_a_rate else percent
        gain = self.improvement()
        if gain is not None:
            if gain.ratio is not None:
                return f"target {shown(gain.ratio)}"
            sign = "-" if gain.direction == "decrease" else "+"
            goal = f"target {sign}{gain.margin * 100:g}pp"
            if stable:
                at = (stable - gain.margin if sign == "-" else stable + gain.margin) / stable
                goal += f" ({times(at)} at the stable's {self.show(stable)})"
            return goal
        up = shown(self.factor) + (f"+{self.show(self.margin)}" if self.margin else "")
        down = shown(1 / self.factor) + (f"-{self.show(self.margin)}" if self.margin else "")
        if self.direction == "increase":
            return f"allowed {up}"
        if self.direction == "decrease":
            return f"allowed {down}"
        return f"allowed {down} to {up}"

    def describe_limit(self) -> str:
        """The bound against the stable: ``<= stable x1.5+0.1%``."""
        up = f"stable{f' x{self.factor:g}' if self.factor != 1 else ''}"
        up += f"+{self.show(self.margin)}" if self.margin else ""
        down = f"stable{f' /{self.factor:g}' if self.factor != 1 else ''}"
        down += f"-{self.show(self.margin)}" if self.margin else ""
        if self.direction == "improve":
            bound = f"<= {up}" if self.harm_direction == "increase" else f">= {down}"
            return f"{self.describe_target()} than stable, and {bound}"
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
