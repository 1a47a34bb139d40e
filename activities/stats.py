"""The statistical tests behind ``kind: statistical`` gates: pure functions over numbers.

Both tests ask one question with a tolerance built in: is the canary worse than the
stable by more than the gate allows? For ``direction: increase`` the tolerated canary is
``stable x factor + margin``; the test is one-sided, so the p-value is the chance of
seeing a canary this far above the tolerated value if it were not above it at all.
``either`` runs both one-sided tests and doubles the smaller p-value (Bonferroni).

How this differs from Kayenta's NetflixACAJudge, and why:

- Kayenta runs a two-sided Mann-Whitney test at 98% confidence and calls a metric high
  when the confidence interval of the shift lies beyond a fraction of the Hodges-Lehmann
  estimate; the allowed effect size is checked on the ratio of means. Here the allowance
  (factor, margin) is part of the null hypothesis, so "fail" means "confidently worse
  than allowed", in the metric's own units, and the test is one-sided in the direction
  that hurts users (a faster canary is never a regression for ``increase``).
- Rates use a two-proportion test on request counts instead of Mann-Whitney over the
  rate's time series: counts carry the sample size, a handful of per-step ratios throw
  it away (six points of 0/12 errors look as sure as six points of 0/12000). The counts
  come per step of the window, so the test can widen itself by how bursty the stable's
  errors are: a plain binomial test fails healthy canaries whenever errors come in bursts.
- Kayenta drops outliers (IQR) before testing. Mann-Whitney is rank-based, so one spike
  moves it by one rank at most; a canary's spikes are evidence, so they stay.
- Kayenta judges a finished interval once and blends metrics into a weighted score.
  Here every gate is judged at every check and acts alone; the false positives that
  repeated looks add are held down by the gate's ``failure_limit`` (consecutive fails),
  whose effect ``benchmarks/judge_quality.py`` measures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Significance:
    """A test's statistic (z or U) and its one-sided p-value against the tolerated canary."""

    statistic: float
    p_value: float


def _tolerated(value: float, factor: float, margin: float, upward: bool) -> float:
    return value * factor + margin if upward else value / factor - margin


def two_proportion(
    canary_hits: Sequence[float],
    canary_totals: Sequence[float],
    stable_hits: Sequence[float],
    stable_totals: Sequence[float],
    *,
    factor: float = 1.0,
    margin: float = 0.0,
    direction: str = "increase",
) -> Significance:
    """Is the canary's proportion beyond the tolerated one? A z-test over per-step counts.

    Each side comes as hits and totals per step of the window. The proportions are the
    window's totals with the Agresti-Caffo adjustment (one hit and one miss added per
    side), which keeps the test honest with zero or few hits.

    Errors come in bursts, so binomial variances are too small. The stable shows how
    bursty they are right now: its dispersion (Pearson's chi-square over the steps'
    degrees of freedom, never below 1) widens its own variance, and the canary's after
    scaling to the canary's traffic (in a gamma-Poisson model the excess grows with the
    count per step). The canary's own step-to-step spread is not used: a canary that
    starts failing mid-window would otherwise widen its own test and hide.
    """
    c_hits, c_total = _totals(canary_hits, canary_totals)
    s_hits, s_total = _totals(stable_hits, stable_totals)
    s_spread = dispersion(stable_hits, stable_totals)
    c_spread = 1 + (s_spread - 1) * c_total / s_total
    p_c = (c_hits + 1) / (c_total + 2)
    p_s = (s_hits + 1) / (s_total + 2)
    var_c = c_spread * p_c * (1 - p_c) / (c_total + 2)
    var_s = s_spread * p_s * (1 - p_s) / (s_total + 2)

    def one_side(upward: bool) -> Significance:
        scale = factor if upward else 1 / factor
        spread = math.sqrt(var_c + scale * scale * var_s)
        z = (p_c - _tolerated(p_s, factor, margin, upward)) / spread
        return Significance(statistic=z, p_value=normal_sf(z if upward else -z))

    return _directed(one_side, direction)


def dispersion(hits: Sequence[float], totals: Sequence[float]) -> float:
    """How much more the steps' proportions vary than binomial noise explains (at least 1)."""
    used = [(h, n) for h, n in zip(hits, totals, strict=True) if n > 0]
    total = sum(n for _, n in used)
    if len(used) < 2 or total <= 0:
        return 1.0
    p = sum(h for h, _ in used) / total
    if p <= 0 or p >= 1:
        return 1.0
    chi2 = sum((h - n * p) ** 2 / (n * p * (1 - p)) for h, n in used)
    return max(1.0, chi2 / (len(used) - 1))


def _totals(hits: Sequence[float], totals: Sequence[float]) -> tuple[float, float]:
    if len(hits) != len(totals) or sum(totals) <= 0:
        raise ValueError("each side needs requests in at least one step")
    return sum(hits), sum(totals)


def mann_whitney(
    canary: Sequence[float],
    stable: Sequence[float],
    *,
    factor: float = 1.0,
    margin: float = 0.0,
    direction: str = "increase",
) -> Significance:
    """Are the canary's values stochastically beyond the stable's tolerated ones?

    The stable's values are moved to their tolerated level first (x factor + margin for
    an increase), then a one-sided Mann-Whitney U test compares the two sets; U is the
    canary's statistic. Exact p-values for small samples without ties, normal otherwise.
    """
    if not canary or not stable:
        raise ValueError("both sides need at least one value")

    def one_side(upward: bool) -> Significance:
        tolerated = [_tolerated(v, factor, margin, upward) for v in stable]
        if len(set(canary) | set(tolerated)) == 1:
            return Significance(statistic=len(canary) * len(stable) / 2, p_value=1.0)
        u, p = _u_test(list(canary), tolerated, greater=upward)
        return Significance(statistic=u, p_value=p)

    return _directed(one_side, direction)


def normal_sf(z: float) -> float:
    """P(Z >= z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def _u_test(x: list[float], y: list[float], *, greater: bool) -> tuple[float, float]:
    """One-sided Mann-Whitney U test: x's U, and the chance of a U this far out by luck.

    Exact when either side has at most 8 values and no value repeats (the distribution of
    U under the null hypothesis, counted); otherwise the normal approximation with the tie
    correction and a continuity correction of one half.
    """
    n1, n2 = len(x), len(y)
    ranks, ties = _average_ranks(x + y)
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    u = u1 if greater else n1 * n2 - u1  # the null distribution is symmetric
    if min(n1, n2) <= 8 and not ties:
        counts = _u_counts(n1, n2)
        at_least = sum(counts[math.ceil(u) :])
        return u1, min(1.0, at_least / sum(counts))
    n = n1 + n2
    tie_term = sum(t**3 - t for t in ties)
    spread = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
    return u1, min(1.0, normal_sf((u - n1 * n2 / 2 - 0.5) / spread))


def _average_ranks(values: list[float]) -> tuple[list[float], list[int]]:
    """1-based ranks, tied values sharing their mean rank; and the size of each tie group."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties: list[int] = []
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start : end + 1]:
            ranks[i] = (start + end) / 2 + 1
        if end > start:
            ties.append(end - start + 1)
        start = end + 1
    return ranks, ties


def _u_counts(n1: int, n2: int) -> list[int]:
    """How many orderings of n1 + n2 distinct values give each U from 0 to n1 x n2.

    The coefficients of the Gaussian binomial [n1 + n2 choose n1] in q: the product over
    i = 1..k of (1 - q^(m + i)) / (1 - q^i), with k the smaller side, m the larger.
    """
    k, m = min(n1, n2), max(n1, n2)
    size = k * m + 1
    poly = [1] + [0] * (size - 1)
    for i in range(1, k + 1):
        shift = m + i
        for j in range(size - 1, shift - 1, -1):  # times (1 - q^(m + i))
            poly[j] -= poly[j - shift]
        for j in range(i, size):  # divided by (1 - q^i): a running sum with stride i
            poly[j] += poly[j - i]
    return poly


def _directed(one_side: Callable[[bool], Significance], direction: str) -> Significance:
    if direction == "increase":
        return one_side(True)
    if direction == "decrease":
        return one_side(False)
    up, down = one_side(True), one_side(False)
    worst = up if up.p_value <= down.p_value else down
    return Significance(statistic=worst.statistic, p_value=min(1.0, 2 * worst.p_value))


def median(values: Sequence[float]) -> float:
    """The middle value (mean of the two middle ones for an even count)."""
    ordered = sorted(values)
    half = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[half]
    return (ordered[half - 1] + ordered[half]) / 2
