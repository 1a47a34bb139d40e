"""Is the canary confidently better than the stable, by a target? Valid at every look.

A gain is shown by the test a harm is: "canary <= stable x0.95, confidently" is the
rejection of "canary >= stable x0.95", which is ``activities.anytime``'s ``decrease`` test
with the allowance 1/0.95 (``plans.gates.comparing.improvement_of`` maps a target to it).
So the improvement inherits what makes that test valid at every look: a canary that is
not better by the target is shown so at some look with a chance of at most ``alpha``.

Each look runs two tests on the same data, each at ``alpha``: the harm test of the gate's
allowance first (a canary confidently worse than allowed is ``worse``, whatever else),
then the gain test (``shown``, else ``not shown``). The two guard different mistakes (a
false rollback, a false claim of a gain), each at its own level.

``rate_improvement`` and ``latency_improvement`` take counts as the harm tests do and are
plain functions, for any caller with two sides' counts (an experiment's primary metric).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

from activities import anytime, anytime_latency
from plans.gates.comparing import Improvement, improvement_of

Outcome = Literal["shown", "not shown", "worse"]
# One test of the data: (direction, factor, margin) -> its finding.
Test = Callable[[str, float, float], anytime.Sequential]


@dataclass(frozen=True)
class Improved:
    """What the data shows of a gain: ``outcome``, and the finding behind it.

    ``found`` is the gain test's (its ``ratio``, ``low``, ``high`` are canary / stable with
    the confidence interval at the same level; ``p_value`` is against "no gain of the
    target"), or the harm test's when ``worse``. ``target`` is the gain asked for as a
    ratio (None for percentage points of a rate: then ``target_margin`` holds them).
    """

    outcome: Outcome
    found: anytime.Sequential
    target: float | None
    target_margin: float


def judged(
    test: Test,
    gain: Improvement,
    *,
    harm: str,
    factor: float = 1.0,
    margin: float = 0.0,
    alpha: float = 0.02,
) -> Improved:
    """The harm test (``harm``, ``factor``, ``margin``), then the test of ``gain``."""
    worse = test(harm, factor, margin)
    if worse.p_value < alpha:
        return Improved("worse", worse, gain.ratio, gain.margin)
    found = test(gain.direction, gain.factor, gain.margin)
    outcome: Outcome = "shown" if found.p_value < alpha else "not shown"
    return Improved(outcome, found, gain.ratio, gain.margin)


def harm_direction(better: str) -> str:
    """The change for the worse where ``better`` (``lower``, ``higher``) is the way."""
    return "increase" if better == "lower" else "decrease"


def rate_improvement(
    canary_hits: Sequence[float],
    canary_totals: Sequence[float],
    stable_hits: Sequence[float],
    stable_totals: Sequence[float],
    *,
    better: str,
    by: str,
    factor: float = 1.0,
    margin: float = 0.0,
    alpha: float = 0.02,
) -> Improved:
    """Is the canary's proportion better than the stable's ``by`` (``5%``, ``0.1pp``)?

    Counts per step for each side, as ``anytime.rate_test`` takes them; ``better`` says
    which way is better; ``factor`` and ``margin`` are the allowance for the worse.
    """
    run = partial(anytime.rate_test, canary_hits, canary_totals, stable_hits, stable_totals)
    return _improvement(run, by, better, factor, margin, alpha)


def latency_improvement(
    canary_steps: Sequence[Sequence[float]],
    stable_steps: Sequence[Sequence[float]],
    bounds: Sequence[float],
    *,
    by: str,
    better: str = "lower",
    factor: float = 1.0,
    margin: float = 0.0,
    alpha: float = 0.02,
) -> Improved:
    """Is the canary faster than the stable ``by`` (``5%``), somewhere in its distribution?

    Bucket counts per step, as ``anytime_latency.distribution_test`` takes them (lower is
    better, unless ``better`` says otherwise); raises what it raises (``OneBucket`` when no
    bound can show a shift).
    """
    run = partial(anytime_latency.distribution_test, canary_steps, stable_steps, bounds)
    return _improvement(run, by, better, factor, margin, alpha)


def _improvement(
    run: Callable[..., anytime.Sequential],
    by: str,
    better: str,
    factor: float,
    margin: float,
    alpha: float,
) -> Improved:
    """``judged`` with ``run`` (a test given its counts) asked each direction and allowance."""

    def test(direction: str, f: float, m: float) -> anytime.Sequential:
        return run(factor=f, margin=m, direction=direction, alpha=alpha)

    gain = improvement_of(better, by)
    harm = harm_direction(better)
    return judged(test, gain, harm=harm, factor=factor, margin=margin, alpha=alpha)
