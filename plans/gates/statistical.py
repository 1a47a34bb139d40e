"""``kind: statistical``: the relative bound, tested with ``confidence`` over the window's data.

The data is read as a range query with one point per ``step`` (``$window`` in the queries
then stands for the step): ``two-proportion`` for rates (the rate times the request count
of ``samples_query`` gives each step's counts), ``mann-whitney`` for latency-like values.
"""

from __future__ import annotations

import math
from typing import Literal

from plans.durations import format_duration
from plans.gates.comparing import SteppedGate

StatTest = Literal["mann-whitney", "two-proportion"]
TWO_PROPORTION_MIN_POINTS = 3


def mann_whitney_min_points(confidence: float, direction: str) -> int:
    """Fewest points per side with which a one-sided exact test can reach ``confidence``."""
    alpha = (1 - confidence) / (2 if direction == "either" else 1)
    n = 1
    while 1 / math.comb(2 * n, n) >= alpha:
        n += 1
    return n


class StatisticalGate(SteppedGate):
    """The canary must not be confidently worse than the stable allows."""

    kind: Literal["statistical"] = "statistical"
    test: StatTest | None = None

    def _problems(self) -> list[str]:
        problems = super()._problems()
        if self.test is None:
            problems.append(
                "a statistical gate needs test: mann-whitney (latency-like values) or"
                " two-proportion (rates, with samples_query counting requests)"
            )
            return problems
        if self.test == "two-proportion" and self.samples_query is None:
            problems.append(
                "test two-proportion needs samples_query: the request count that turns each"
                " side's rate into counts"
            )
        points, needed = self.points_per_side, self.min_points
        if points < needed:
            why = (
                f"Mann-Whitney needs {needed} to reach {self.confidence:.0%} confidence"
                if self.test == "mann-whitney"
                else f"the two-proportion test needs {needed} to measure burstiness"
            )
            problems.append(
                f"window {format_duration(self.window)} / step {format_duration(self.step)}"
                f" gives {points} point(s) per side, and {why}: lengthen window or"
                " shorten step"
            )
        return problems

    @property
    def points_per_side(self) -> int:
        """How many steps the range query has (window / step)."""
        return int(self.window.total_seconds() // self.step.total_seconds())

    @property
    def min_points(self) -> int:
        """Fewest usable steps per side the gate judges on."""
        if self.test == "mann-whitney":
            return mann_whitney_min_points(self.confidence, self.direction)
        return TWO_PROPORTION_MIN_POINTS

    def describe_threshold(self) -> str:
        return f"{self.describe_limit()} ({self.test}, {self.confidence:.0%} confidence)"

    def windows(self) -> list[tuple[str, str, float]]:
        # The range query reaches back the whole window, whatever the queries' own ranges.
        return [("window", format_duration(self.window), self.window.total_seconds())]
