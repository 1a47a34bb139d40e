"""How bursty a rate's steps are: the overdispersion the sequential rate test widens by.

Errors come in bursts (a pod restarting, a retry storm), so a step's count varies more
than binomial noise. The rate test needs that dispersion, and reads it from the steps
themselves; with few steps the estimate is a guess, and a guess that is too low makes a
bursty but healthy canary look guilty. ``dispersion_bound`` therefore gives an upper
confidence bound that tightens as the steps accumulate, and assumes bursts
(``BURST_PRIOR``) when a single step cannot show any.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

CHI2_1_MEDIAN = 0.4549364231195724
# The bound's confidence once there are STEADY_RESIDUALS residuals or more (the two
# versions' steps together); below that it rises towards 1, a median of a few being a guess.
DISPERSION_CONFIDENCE = 0.6
STEADY_RESIDUALS = 32
# With a single step: the error rate's variance from step to step relative to its square
# (a standard deviation of about 30% of the rate), the bursts assumed when none can be seen.
BURST_PRIOR = 0.1


def robust_dispersion(
    hits: Sequence[float] | np.ndarray, totals: Sequence[float] | np.ndarray
) -> float:
    """How much more the steps' proportions vary than binomial noise, at least 1.

    The median of the squared Pearson residuals over its value for pure noise (0.455,
    the median of chi-square with one degree of freedom): a few steps of a shared
    incident do not move it, steady bursts do. Fewer than 5 steps say nothing (1). A point
    estimate; the rate test uses ``dispersion_bound``.
    """
    h, n = np.asarray(hits, dtype=float), np.asarray(totals, dtype=float)
    used = n > 0
    h, n = h[used], n[used]
    if len(n) < 5:
        return 1.0
    # Around the typical step's rate: a shared incident raises the pooled rate, and every
    # quiet step would then look far off.
    p = float(np.median(h / n))
    if p <= 0 or p >= 1:
        p = float(h.sum() / n.sum())
    if p <= 0 or p >= 1:
        return 1.0
    middle = float(np.median((h - n * p) ** 2 / (n * p * (1 - p))))
    return max(1.0, middle / CHI2_1_MEDIAN)


def median_rank(count: int, confidence: float) -> int:
    """The smallest rank ``j`` (1-based, at most ``count``) with P(B < j) >= ``confidence``
    for B ~ Binomial(count, 1/2): the order statistic of ``count`` draws that lies above
    their median with that confidence."""
    total, rank = 0.0, 0
    while rank < count:
        total += math.exp(
            math.lgamma(count + 1)
            - math.lgamma(rank + 1)
            - math.lgamma(count - rank + 1)
            + count * math.log(0.5)
        )
        rank += 1
        if total >= confidence:
            break
    return rank


def bound_confidence(residuals: int, floor: float = DISPERSION_CONFIDENCE) -> float:
    """The bound's confidence for this many residuals: ``floor`` from ``STEADY_RESIDUALS``
    on, rising linearly to 1 as they fall to none."""
    return 1 - (1 - floor) * min(1.0, residuals / STEADY_RESIDUALS)


def dispersion_bound(
    canary_hits: np.ndarray,
    canary_totals: np.ndarray,
    stable_hits: np.ndarray,
    stable_totals: np.ndarray,
    prior: float = BURST_PRIOR,
) -> float:
    """An upper confidence bound of the stable's dispersion, from both versions' steps.

    Each version's ``k`` steps give squared Pearson residuals around its typical step's
    rate (the median, which a shared incident does not move), times ``k / (k - 1)`` for
    the centre read from those steps. In the model ``anytime.paired_excess`` uses, a
    canary step's dispersion is ``1 + (spread - 1) w``, ``w`` its requests over the
    stable's (1 for the stable), so a residual ``r`` names the dispersion
    ``1 + (r / 0.455 - 1) / w`` at which it sits at chi-square's median: at the true
    dispersion each lies above it with probability 1/2, and the order statistic
    ``median_rank`` picks lies above the truth with ``bound_confidence``. Pooling the
    versions doubles the residuals; a canary's regression that lasts moves its centre,
    not its residuals. At least 1.

    When neither version has 2 steps, nothing can be seen, and bursts are assumed:
    ``1 + prior x n p / (1 - p)`` for the stable's ``n`` requests at share ``p`` (a rate
    whose variance from step to step is ``prior`` times its square); ``prior=0`` takes
    the step as binomial (``activities.power`` reads a whole stage as one step of known
    noise).
    """
    found = []
    for hits, totals, share in (
        (stable_hits, stable_totals, np.ones_like(stable_totals)),
        (canary_hits, canary_totals, canary_totals / np.maximum(stable_totals, 1e-300)),
    ):
        use = (totals > 0) & (share > 0)
        h, n, w = hits[use], totals[use], share[use]
        k = len(n)
        p = float(np.median(h / n)) if k else 0.0
        if p <= 0 or p >= 1:
            p = float(h.sum() / n.sum()) if k else 0.0
        if k < 2 or p <= 0 or p >= 1:
            continue
        residual = (h - n * p) ** 2 / (n * p * (1 - p)) * k / (k - 1)
        found.append(1 + (residual / CHI2_1_MEDIAN - 1) / w)
    if not found:
        errors, requests = float(np.sum(stable_hits)), float(np.sum(stable_totals))
        return 1 + prior * errors * requests / max(requests - errors, 1.0)
    named = np.sort(np.concatenate(found))
    rank = median_rank(len(named), bound_confidence(len(named)))
    return max(1.0, float(named[rank - 1]))
