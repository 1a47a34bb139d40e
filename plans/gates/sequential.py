"""``kind: sequential``: the relative bound, tested on all the data since the stage began.

Its test is valid at every look (``activities.anytime``): however often the gate is checked,
a canary within its allowance fails it with a chance of at most ``1 - confidence`` over
the whole stage, so ``failure_limit`` can stay at 1. ``test: rate`` reads a ratio query and
``samples_query`` per ``step`` (like ``two-proportion``); ``test: latency`` reads a
histogram's bucket counts per ``step``, ``query`` answering one series per ``le`` (e.g.
``sum by (le) (increase(..._bucket{...}[$window]))``), and judges its quantiles from p50
to p99. ``window`` is how far back ``min_samples`` counts: a canary with fewer requests
than that in its last window is inconclusive. With ``direction: improve`` the gate passes
only once the canary is shown better ``by`` its target (``plans.gates.comparing``), and is
inconclusive until then.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from plans.gates.comparing import SteppedGate

SequentialTest = Literal["rate", "latency"]


class SequentialGate(SteppedGate):
    """The canary must not be shown, at any look, to be worse than the stable allows."""

    kind: Literal["sequential"] = "sequential"
    test: SequentialTest | None = None

    improves: ClassVar[bool] = True

    def _problems(self) -> list[str]:
        problems = super()._problems()
        if self.test is None:
            problems.append(
                "a sequential gate needs test: rate (a ratio query, with samples_query"
                " counting requests) or latency (a histogram's bucket counts by le)"
            )
        elif self.test == "rate" and self.samples_query is None:
            problems.append(
                "test rate needs samples_query: the request count that turns each step's"
                " rate into counts"
            )
        return problems

    @property
    def counts_a_rate(self) -> bool:
        return self.test == "rate"

    @property
    def queries_per_check(self) -> int:
        return (1 + (self.samples_query is not None and self.test == "rate")) * 2

    def describe_threshold(self) -> str:
        return f"{self.describe_limit()} ({self.test}, sequential, {self.confidence:.0%})"
