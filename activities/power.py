"""The power of a stage: the smallest regression a comparing gate's test shows in a stage.

Every answer here comes from the gate's own test, asked about counts at their expectation:
the stable at its rate (or its latency distribution), the canary at a regression of a given
size, with the stage's requests on each side. The smallest regression the test rejects is
the one a stage shows about half the time (larger ones more often): what the stage can see.
Nothing restates a test's formulas (``activities.anytime``, ``activities.anytime_latency``,
``activities.stats``), so the answers follow the tests as they are tuned.

- ``rate_ratio``: the sequential rate test (``kind: sequential``, ``test: rate``).
- ``latency_shift``: the sequential latency test, for a canary whose every request is
  ``r`` times slower, over a histogram's buckets (the stable's distribution as measured,
  or ``assumed_latency``, log-normal in buckets fine enough to see it).
- ``two_proportion_ratio``: the statistical gate's two-proportion test over its window.
- ``requests_needed``: how many canary requests a gate needs to show the excess its test
  is tuned to find beyond the allowance (``targeted``), at the split and rate it sees.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypedDict

from activities import anytime, anytime_latency, stats

# The assumed latency of a stage before it runs: log-normal with this spread of log latency
# (p95 about 2.3 x the median), in buckets 15% apart (finer than most histograms).
LOG_SPREAD = 0.5
BUCKET_STEP = 1.15
SEARCH_STEPS = 30


class Rule(TypedDict):
    """What a gate's test is asked with, as the functions here take it (``**rule``)."""

    factor: float
    margin: float
    direction: str
    alpha: float


def edge(shows: Callable[[float], bool], low: float, high: float) -> float | None:
    """The smallest ``x`` in ``(low, high]`` that ``shows``, on the log scale; None if none.

    ``shows`` must hold from some point on (a larger regression is easier to see).
    """
    if not shows(high):
        return None
    lo, hi = math.log(low), math.log(high)
    for _ in range(SEARCH_STEPS):
        middle = (lo + hi) / 2
        lo, hi = (lo, middle) if shows(math.exp(middle)) else (middle, hi)
    return math.exp(hi)


def _shown(shows: Callable[[float], bool], allowed: float, upward: bool) -> float | None:
    """The smallest ratio beyond ``allowed`` that shows: above it, or below it downwards."""
    if upward:
        return edge(shows, allowed, allowed * 100)
    found = edge(lambda x: shows(1 / x), 1 / allowed, 100 / allowed)
    return None if found is None else 1 / found


def rate_ratio(
    canary_requests: float,
    stable_requests: float,
    rate: float,
    *,
    factor: float = 1.0,
    margin: float = 0.0,
    direction: str = "increase",
    alpha: float = 0.02,
    elapsed: float | None = 1.0,
) -> float | None:
    """The smallest canary / stable rate ratio the sequential rate test shows; None if none.

    ``elapsed`` is the share of the bake at which it is shown (1: by its end; None: by
    the mixture alone, as a stage with no planned end). Upwards for ``increase`` (and
    ``either``, whose upward side runs at alpha / 2), the largest ratio below 1 for
    ``decrease``.
    """
    if canary_requests <= 0 or stable_requests <= 0 or not 0 < rate < 1:
        return None
    if direction != "decrease":
        found = anytime.detectable_rate_ratio(
            canary_requests,
            stable_requests,
            rate,
            factor=factor,
            margin=margin,
            alpha=alpha / 2 if direction == "either" else alpha,
            elapsed=elapsed,
        )
        return found if math.isfinite(found) else None

    def shows(ratio: float) -> bool:
        return rate_shown(
            ratio,
            canary_requests,
            stable_requests,
            rate,
            factor=factor,
            margin=margin,
            direction="decrease",
            alpha=alpha,
            elapsed=elapsed,
        )

    return _shown(shows, 1 / factor, upward=False)


def rate_shown(
    ratio: float,
    canary_requests: float,
    stable_requests: float,
    rate: float,
    *,
    factor: float = 1.0,
    margin: float = 0.0,
    direction: str = "increase",
    alpha: float = 0.02,
    elapsed: float | None = 1.0,
) -> bool:
    """Whether the sequential rate test rejects a canary at ``ratio`` x the stable's rate."""
    found = anytime.rate_test(
        [min(rate * ratio, 1.0) * canary_requests],
        [canary_requests],
        [rate * stable_requests],
        [stable_requests],
        factor=factor,
        margin=margin,
        direction=direction,
        alpha=alpha,
        prior=0.0,  # the stage as one step of binomial noise, as detectable_rate_ratio
        elapsed=elapsed,
        bounded=False,
    )
    return found.p_value < alpha


def assumed_latency(
    spread: float = LOG_SPREAD, step: float = BUCKET_STEP
) -> tuple[list[float], list[float]]:
    """Bucket bounds (seconds, the last +Inf) and shares of a log-normal latency of median 1s.

    The sequential latency test reads a shift as a ratio, so the median's value does not
    matter; the spread and the buckets' fineness do.
    """
    reach = 3 * spread / math.log(step)
    bounds = [step**k for k in range(-math.ceil(reach), math.ceil(reach) + 1)]
    below = [0.5 * math.erfc(-math.log(b) / spread / math.sqrt(2)) for b in bounds]
    shares = [b - a for a, b in zip([0.0, *below], below, strict=False)]
    return [*bounds, math.inf], [*shares, 1 - below[-1]]


def shifted(bounds: Sequence[float], shares: Sequence[float], ratio: float) -> list[float]:
    """The bucket shares of the same distribution with every request ``ratio`` times slower.

    Within a bucket the share is spread evenly over log latency (over latency in the
    first bucket, from 0); what lies past the last finite bound stays past it.
    """
    finite = [b for b in bounds if math.isfinite(b)]
    cumulative, total = [], 0.0
    for share in shares[: len(finite)]:
        total += share
        cumulative.append(total)

    def below(x: float) -> float:
        if x <= 0:
            return 0.0
        if x <= finite[0]:
            return cumulative[0] * x / finite[0]
        for k in range(1, len(finite)):
            if x <= finite[k]:
                part = math.log(x / finite[k - 1]) / math.log(finite[k] / finite[k - 1])
                return cumulative[k - 1] + part * (cumulative[k] - cumulative[k - 1])
        return cumulative[-1]

    moved = [below(b / ratio) for b in finite]
    out = [b - a for a, b in zip([0.0, *moved], moved, strict=False)]
    if len(bounds) > len(finite):
        out.append(max(sum(shares) - moved[-1], 0.0))
    return out


def latency_shift(
    canary_requests: float,
    stable_requests: float,
    bounds: Sequence[float],
    shares: Sequence[float],
    *,
    factor: float = 1.0,
    margin: float = 0.0,
    direction: str = "increase",
    alpha: float = 0.02,
    elapsed: float | None = 1.0,
) -> float | None:
    """The smallest slowdown ratio (every request ``r`` times slower) the latency test shows.

    ``bounds`` and ``shares`` are the stable's histogram (its buckets' upper bounds, the
    last may be +Inf, and the share of requests in each); None when no shift within a
    factor of 100 shows (too few requests, or every request in one bucket).
    """
    if canary_requests <= 0 or stable_requests <= 0 or sum(shares) <= 0:
        return None

    def shows(ratio: float) -> bool:
        return latency_shown(
            ratio,
            canary_requests,
            stable_requests,
            bounds,
            shares,
            factor=factor,
            margin=margin,
            direction=direction,
            alpha=alpha,
            elapsed=elapsed,
        )

    return _shown(shows, factor, upward=direction != "decrease")


def latency_shown(
    ratio: float,
    canary_requests: float,
    stable_requests: float,
    bounds: Sequence[float],
    shares: Sequence[float],
    *,
    factor: float = 1.0,
    margin: float = 0.0,
    direction: str = "increase",
    alpha: float = 0.02,
    elapsed: float | None = 1.0,
) -> bool:
    """Whether the latency test rejects a canary ``ratio`` times slower, counts as expected."""
    total = sum(shares)
    stable = [[s / total * stable_requests for s in shares]]
    canary = [[s / total * canary_requests for s in shifted(bounds, shares, ratio)]]
    try:
        found = anytime_latency.distribution_test(
            canary,
            stable,
            bounds,
            factor=factor,
            margin=margin,
            direction=direction,
            alpha=alpha,
            elapsed=elapsed,
            bounded=False,
            wander=0.0,  # the stage as one step of exact samples, as the rate's prior=0
        )
    except (ValueError, ArithmeticError):  # OneBucket too: nothing these buckets can show
        return False
    return found.p_value < alpha


def two_proportion_ratio(
    canary_requests: float,
    stable_requests: float,
    rate: float,
    points: int,
    *,
    factor: float = 1.0,
    margin: float = 0.0,
    direction: str = "increase",
    alpha: float = 0.02,
) -> float | None:
    """The smallest rate ratio the two-proportion test shows over ``points`` steps of a window."""
    if canary_requests <= 0 or stable_requests <= 0 or not 0 < rate < 1 or points < 1:
        return None
    c_n, s_n = [canary_requests / points] * points, [stable_requests / points] * points

    def shows(ratio: float) -> bool:
        p = min(rate * ratio, 1.0)
        found = stats.two_proportion(
            [p * n for n in c_n],
            c_n,
            [rate * n for n in s_n],
            s_n,
            factor=factor,
            margin=margin,
            direction=direction,
        )
        return found.p_value < alpha

    return _shown(shows, factor, upward=direction != "decrease")


def targeted(kind: str, factor: float, direction: str, margin_share: float = 0.0) -> float:
    """The ratio a sequential test is tuned to find: its mixture's excess beyond the allowance.

    ``rate``: the tolerated rate and half again (``RATE_TAU``; ``margin_share`` is the
    margin over the stable's rate); ``latency``: a further ``LOG_TAU`` of log latency.
    Downwards for ``decrease``.
    """
    if kind == "latency":
        beyond = math.exp(anytime.LOG_TAU)
        return factor * beyond if direction != "decrease" else 1 / (factor * beyond)
    if direction == "decrease":
        return max(1 / factor - margin_share, 0.0) * (1 - anytime.RATE_TAU)
    return (factor + margin_share) * (1 + anytime.RATE_TAU)


def requests_needed(shows: Callable[[float], bool], most: float = 1e10) -> float | None:
    """The fewest canary requests with which ``shows(requests)`` holds; None past ``most``.

    ``shows`` asks the gate's test about its targeted regression with that many canary
    requests (the stable's following the split); more requests must never show less.
    """
    if not shows(most):
        return None
    # Halving in log requests until within 1% (12 halvings from 1e10): each halving asks the
    # test once, and the worker asks this at every check of every sequential gate.
    lo, hi = 0.0, math.log(most)
    while hi - lo > 0.01:
        middle = (lo + hi) / 2
        lo, hi = (lo, middle) if shows(math.exp(middle)) else (middle, hi)
    return float(math.ceil(math.exp(hi)))
