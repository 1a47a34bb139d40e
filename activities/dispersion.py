"""How bursty a rate's steps are: the overdispersion the sequential rate test widens by.

Errors come in bursts (a pod restarting, a retry storm), so a step's count varies more
than binomial noise. The rate test needs that dispersion, and reads it from the steps
themselves; with few steps the estimate is a guess, and a guess that is too low makes a
bursty but healthy canary look guilty. ``dispersion_bound`` therefore gives an upper
confidence bound that tightens as the steps accumulate, and assumes bursts
(``BURST_PRIOR``) at least while too few steps can show them.

The latency test's variance is how much the canary's steps vary against the stable's
(``paired_spread``), with a wander of each version's own assumed while the steps are few
(``latency_spread``).
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
# While each version has fewer than BURST_STEPS steps: the error rate's variance from step
# to step relative to its square (a standard deviation of half the rate), the bursts assumed
# at least, since so few steps cannot show how bursty the errors are.
BURST_PRIOR = 0.25
BURST_STEPS = 3
# The steps from which ``paired_spread`` reads how the canary's steps vary against the
# stable's. With fewer, the latency test assumes at least that each version's latency
# wanders on its own by WANDER (log scale, one standard deviation) from one step to the
# next, as a garbage collection or a noisy host makes it.
PAIRED_STEPS = 6
WANDER = 0.03


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

    While a version has fewer than ``BURST_STEPS`` steps, bursts are assumed at least:
    ``1 + prior x n p / (1 - p)`` for the stable's ``n`` requests a step at share ``p`` (a
    rate whose variance from step to step is ``prior`` times its square). Two steps show
    one residual each, which a calm pair of minutes makes look steady; with a single step
    nothing can be seen. ``prior=0`` takes the steps as binomial (``activities.power``
    reads a whole stage as one step of known noise).
    """
    found, fewest = [], min(int(np.sum(canary_totals > 0)), int(np.sum(stable_totals > 0)))
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
    assumed = _assumed_bursts(stable_hits, stable_totals, prior)
    if not found:
        return assumed
    named = np.sort(np.concatenate(found))
    rank = median_rank(len(named), bound_confidence(len(named)))
    return max(1.0, assumed if fewest < BURST_STEPS else 1.0, float(named[rank - 1]))


def _assumed_bursts(hits: np.ndarray, totals: np.ndarray, prior: float) -> float:
    """The dispersion of a rate whose variance from step to step is ``prior`` times its
    square, for a step of the stable's typical requests at its rate over all the steps."""
    used = totals > 0
    if not used.any():
        return 1.0
    requests, errors = float(np.sum(totals)), float(np.sum(hits))
    typical = float(np.median(totals[used]))
    return 1 + prior * typical * errors / max(requests - errors, 1.0)


def paired_spread(
    canary: np.ndarray, c_n: np.ndarray, stable: np.ndarray, s_n: np.ndarray, unit: np.ndarray
) -> np.ndarray:
    """Per row, the overdispersion of the canary's steps against the stable's, at least 1.

    ``canary`` and ``stable`` hold per step the sum of a per-request quantity (requests
    slower than a bound, or a score), one row per quantity; ``unit`` is its variance for
    one request. The steps' differences in mean, ``canary / c_n - stable / s_n``, change
    from one step to the next by chance alone with a known variance; the median of those
    changes squared, over that variance, against chi-square's (``CHI2_1_MEDIAN``) says
    how much more they vary. A load both versions share (a busy minute slows both)
    cancels in the difference, so it is not counted as noise, as it would be in the
    stable's steps alone; a shift that lasts, or starts during the stage, moves the
    difference once and is not counted either. Returned as the dispersion
    ``paired_excess`` takes: extra variance of each version's share per step, in units of
    the stable's binomial variance. Fewer than ``PAIRED_STEPS`` steps say nothing (1).
    """
    use = (c_n > 0) & (s_n > 0)
    rows = canary.shape[0]
    if use.sum() < PAIRED_STEPS:
        return np.ones(rows)
    c, n_c, s, n_s = canary[:, use], c_n[use], stable[:, use], s_n[use]
    chance = 1 / n_c + 1 / n_s  # the variance of a step's difference, per unit
    gap = c / n_c - s / n_s
    safe = np.where(unit > 0, unit, 1.0)[:, None]
    residual = np.diff(gap, axis=1) ** 2 / ((chance[1:] + chance[:-1]) * safe)
    ratio = np.median(residual, axis=1) / CHI2_1_MEDIAN
    spread = 1 + np.maximum(ratio - 1, 0) * (1 + float(np.median(n_s) / np.median(n_c))) / 2
    return np.where(unit > 0, spread, 1.0)


def latency_spread(
    c_sum: np.ndarray,
    c_n: np.ndarray,
    s_sum: np.ndarray,
    s_n: np.ndarray,
    slope: np.ndarray,
    unit: np.ndarray,
    wander: float = WANDER,
) -> np.ndarray:
    """The latency test's ``paired_spread`` per part; while fewer than ``PAIRED_STEPS``
    steps can show it (``paired_spread`` would say 1), the spread of versions that each
    wander by ``wander``.

    A wander of ``w`` in log latency moves a part's mean per request by ``slope w``, so a
    step's mean varies by ``(slope wander)^2`` beyond chance: in units of the stable's
    variance for its typical step, ``1 + n (slope wander)^2 / unit``. Without it one step
    of a minute each, where a version's own minute runs a few percent slow, would read as
    a shift measured to a fraction of a percent.
    """
    if int(np.sum((c_n > 0) & (s_n > 0))) >= PAIRED_STEPS:
        return paired_spread(c_sum, c_n, s_sum, s_n, unit)
    typical = float(np.median(s_n[s_n > 0])) if np.any(s_n > 0) else 0.0
    safe = np.where(unit > 0, unit, 1.0)
    assumed: np.ndarray = np.where(unit > 0, 1 + typical * (slope * wander) ** 2 / safe, 1.0)
    return assumed
