"""Tests that stay valid at every look: the statistics behind ``kind: sequential`` gates.

A check every minute for a week is ten thousand looks. A fixed-sample test at 2% fails a
healthy canary at some look almost surely; ``failure_limit`` only thins that out. The tests
here are mixture sequential probability ratio tests (mSPRT, Robbins' normal mixture): an
estimate ``d`` of the excess over the allowance, with variance ``V``, read from all the data
since the stage started, gives the mixture likelihood ratio

    Lambda = integral of exp(t d / V - t^2 / (2 V)) over a prior on the excess t,

a nonnegative supermartingale while the canary is within its allowance. By Ville's
inequality the chance that it ever reaches ``1 / alpha`` is at most ``alpha``, so
``p = min(1, 1 / Lambda)`` is a p-value valid at every look, however many and whenever
they come; the same bound inverted gives a confidence sequence for the effect.

The prior is a half-normal of scale ``tau`` on the side that hurts (one-sided, like the
gates), in closed form:

    Lambda = 2 sqrt(V / T) exp(tau^2 d^2 / (2 V T)) Phi(tau d / sqrt(V T)),  T = V + tau^2

``tau`` is the size of excess the test is most sensitive to; any ``tau`` keeps the error
rate, a fitting one detects sooner. The data are counts, so ``d`` is asymptotically normal
(the asymptotic confidence sequences of Waudby-Smith et al., 2021); the variance is
widened by the overdispersion the steps show (``activities.dispersion``: an upper
confidence bound, which few steps leave wide).

- Rates (``rate_test``): the canary's proportion against ``stable x factor + margin``,
  compared step by step with the stable (``paired_excess``), the allowance inside the null
  as for the other gates; the interval (``interval``) is for the rate ratio.
- Latency (``activities.anytime_latency``): the same comparison for the whole
  distribution's mid-rank score and for the share of requests slower than each bucket
  bound of a histogram, their mixture ratios averaged (an average of test
  supermartingales is one), the variance widened by the canary's steps against the
  stable's (``paired_spread``), so a load both versions share is not counted as noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from activities.dispersion import BURST_PRIOR, dispersion_bound
from activities.dispersion import CHI2_1_MEDIAN as CHI2_1_MEDIAN
from activities.dispersion import robust_dispersion as robust_dispersion
from activities.within_bake import WITHIN_SHARE as WITHIN_SHARE
from activities.within_bake import joined_p, rate_within
from activities.within_bake import within_p as within_p

# The excess each test is tuned to find: half the allowed rate, 5% in latency beyond the
# allowance (the mixture is most sensitive to excesses near tau; any tau keeps the level).
RATE_TAU = 0.5
LOG_TAU = 0.05
TAIL_COUNT = 10  # requests each side of a bucket bound, in each version, to judge it


def log_phi(x: float) -> float:
    """log of the standard normal distribution function, accurate far into the left tail."""
    if x > -30:
        return math.log(0.5 * math.erfc(-x / math.sqrt(2)))
    # Mills' ratio: Phi(x) ~ phi(x) / -x (1 - 1/x^2 + 3/x^4) for large negative x.
    return (
        -x * x / 2 - math.log(-x) - 0.5 * math.log(2 * math.pi) + math.log1p(-1 / x**2 + 3 / x**4)
    )


def log_phis(x: np.ndarray) -> np.ndarray:
    """``log_phi`` of each element (the arrays here hold a few dozen bucket bounds)."""
    flat = np.asarray(x, dtype=float)
    return np.fromiter((log_phi(float(v)) for v in flat.ravel()), float, flat.size).reshape(
        flat.shape
    )


def log_mixture_ratio(excess: float, variance: float, tau: float) -> float:
    """log Lambda of the half-normal mixture for an estimated ``excess`` with ``variance``."""
    if variance <= 0 or tau <= 0:
        raise ValueError("variance and tau must be positive")
    total = variance + tau * tau
    return (
        math.log(2)
        + 0.5 * math.log(variance / total)
        + tau * tau * excess * excess / (2 * variance * total)
        + log_phi(tau * excess / math.sqrt(variance * total))
    )


def always_valid_p(excess: float, variance: float, tau: float) -> float:
    """min(1, 1 / Lambda): a p-value valid at every look."""
    return min(1.0, math.exp(-log_mixture_ratio(excess, variance, tau)))


def log_mixture_ratios(
    excess: np.ndarray, variance: np.ndarray, tau: float | np.ndarray
) -> np.ndarray:
    """``anytime.log_mixture_ratio`` over arrays (the same half-normal mixture)."""
    total = variance + tau * tau
    found: np.ndarray = (
        math.log(2)
        + 0.5 * np.log(variance / total)
        + tau * tau * excess * excess / (2 * variance * total)
        + log_phis(tau * excess / np.sqrt(variance * total))
    )
    return found


def radius(variance: float, tau: float, alpha: float) -> float:
    """Half-width of the two-sided normal-mixture confidence sequence at level ``alpha``."""
    total = variance + tau * tau
    return math.sqrt(
        2
        * variance
        * total
        / (tau * tau)
        * (math.log(1 / alpha) + 0.5 * math.log(total / variance))
    )


@dataclass(frozen=True)
class Sequential:
    """One sequential test's finding: the metric on each side, the effect with its interval.

    ``ratio`` is canary / stable, ``low`` and ``high`` its confidence sequence at the gate's
    level; ``p_value`` is always valid; ``name`` says which quantity (``rate``, ``p95``);
    ``note`` says how coarse the data made it, when it matters; ``since`` is the share of
    the planned span at which the test's data begins (0: the stage's start;
    ``activities.restarts``).
    """

    name: str
    canary: float
    stable: float
    ratio: float
    low: float
    high: float
    p_value: float
    statistic: float
    note: str = ""
    since: float = 0.0


Step = tuple[float, float, float, float]  # canary hits, canary requests, stable hits, stable's


def paired_excess(
    steps: Sequence[Step] | np.ndarray,
    spread: float,
    scale: float,
    shift: float,
    typical: float = 0.0,
) -> tuple[float, float, float]:
    """The canary's hits beyond its tolerated share, step by step, with their variance.

    In each step the canary may reach ``stable's share x scale + shift``; returns the
    summed excess of hits, its variance (binomial widened by ``spread``, the stable's
    dispersion, the canary's scaled by its traffic) and the hits the stable's shares
    predict for the canary's requests. With ``typical``, the share at which ``spread``
    was measured, each step's extra variance is in proportion to its share (bursts of
    errors grow with their rate, as for gamma-Poisson counts): an incident both versions
    share is noisier than the quiet steps that measured the spread.
    """
    hc, nc, hs, ns = np.asarray(steps, dtype=float).reshape(-1, 4).T
    c_n = nc.sum()
    pooled = (hs.sum() + 0.5) / (ns.sum() + 1)
    p = (hs + pooled) / (ns + 1)  # shrunk a little towards the pooled share
    tolerated = np.clip(p * scale + shift, 0.5 / (c_n + 1), 1.0)
    widen = p / typical if typical > 0 else 1.0
    spread_of = 1 + (spread - 1) * widen
    c_spread = 1 + (spread_of - 1) * nc / ns
    var = (
        c_spread * nc * tolerated * (1 - tolerated)
        + spread_of * scale**2 * nc**2 * p * (1 - p) / ns
    )
    return float((hc - nc * tolerated).sum()), float(var.sum()), float((nc * p).sum())


def _aligned(
    c_hits: Sequence[float], c_n: Sequence[float], s_hits: Sequence[float], s_n: Sequence[float]
) -> list[Step]:
    steps = [
        (hc, nc, hs, ns)
        for hc, nc, hs, ns in zip(c_hits, c_n, s_hits, s_n, strict=True)
        if ns > 0 and nc >= 0
    ]
    if sum(s[1] for s in steps) <= 0 or sum(s[3] for s in steps) <= 0:
        raise ValueError("each side needs requests in the same steps")
    return steps


def rate_test(
    canary_hits: Sequence[float],
    canary_totals: Sequence[float],
    stable_hits: Sequence[float],
    stable_totals: Sequence[float],
    *,
    factor: float = 1.0,
    margin: float = 0.0,
    direction: str = "increase",
    alpha: float = 0.02,
    prior: float = BURST_PRIOR,
    elapsed: float | None = None,
    bounded: bool = True,
    within_share: float = WITHIN_SHARE,
) -> Sequential:
    """Is the canary's proportion, since the stage began, beyond the tolerated one?

    Per-step hits and totals for each side, every step since the stage's start, the two
    sides' steps at the same times. The null is ``p_c <= p_s x factor + margin`` in every
    step (``increase``), ``p_c >= p_s / factor - margin`` (``decrease``); ``either`` tests
    both at alpha / 2 each.

    The canary is compared with the stable step by step: its expected hits are its
    requests times the stable's tolerated rate in the same step, so an incident both
    versions share (a database down for a minute) moves both sides alike and cancels,
    where pooled totals would count it as noise. Bursts that hit one version only are
    overdispersion: both versions' steps measure it (``dispersion_bound``, an upper
    confidence bound of a robust estimate, which one shared incident does not inflate,
    so a few steps do not pass for calm ones; with a single step the bursts ``prior``
    assumes), and it widens both sides, the canary's by its traffic.

    ``elapsed``, the share of the stage's planned bake that has passed, adds the test
    valid within the bake (``joined_p``, with ``within_share`` of the level); None leaves
    the mixture alone. ``bounded=False`` skips the interval (nan), for callers that need
    the p-value only.
    """
    steps = _aligned(canary_hits, canary_totals, stable_hits, stable_totals)
    c_hits, c_n = sum(s[0] for s in steps), sum(s[1] for s in steps)
    s_hits, s_n = sum(s[2] for s in steps), sum(s[3] for s in steps)
    hc, nc, hs, ns = np.asarray(steps, dtype=float).T
    spread = dispersion_bound(hc, nc, hs, ns, prior=prior)
    typical = float(np.median([s[2] / s[3] for s in steps]))

    def one_side(upward: bool, level: float) -> tuple[float, float]:
        scale, shift = (factor, margin) if upward else (1 / factor, -margin)
        excess, var, expected = paired_excess(steps, spread, scale, shift, typical)
        if not upward:
            excess = -excess
        tau = RATE_TAU * max((expected * scale + shift * c_n) / c_n, 0.5 / (c_n + 1))
        est, v = excess / c_n, var / (c_n * c_n)
        z = est / math.sqrt(v)
        within = rate_within(z, expected * scale + shift * c_n, elapsed)
        return joined_p(always_valid_p(est, v, tau), within, within_share), z

    p, z = directed(one_side, direction, alpha)
    # The rate ratio, the canary against the stable in the same steps, on the log scale.
    expected = paired_excess(steps, spread, 1.0, 0.0, typical)[2]
    c_rate = (c_hits + 0.5) / (c_n + 1)
    s_rate = max(expected / c_n, 0.5 / (s_n + 1))
    ratio = c_rate / s_rate

    def p_at(r: float, upward: bool) -> float:
        excess, var, expected = paired_excess(steps, spread, r, 0.0, typical)
        tau = RATE_TAU * max(expected * r / c_n, 0.5 / (c_n + 1))
        est, v = (excess if upward else -excess) / c_n, var / (c_n * c_n)
        within = rate_within(est / math.sqrt(v), expected * r, elapsed)
        return joined_p(always_valid_p(est, v, tau), within, within_share)

    low, high = interval(p_at, ratio, alpha, most=0.999 / s_rate) if bounded else (math.nan,) * 2
    return Sequential(
        name="rate",
        canary=c_hits / c_n,
        stable=s_hits / s_n,
        ratio=ratio,
        low=low,
        high=high,
        p_value=p,
        statistic=z,
    )


def interval(
    p_at: Callable[[float, bool], float], estimate: float, alpha: float, most: float = math.inf
) -> tuple[float, float]:
    """The ratios no look of the test rejects: the confidence interval the test implies.

    ``p_at(r, True)`` is the always-valid p-value against "the ratio is at most r",
    ``p_at(r, False)`` against "at least r"; the interval runs from the smallest ``r`` the
    first does not reject at ``alpha`` to the largest the second does not, so a verdict's
    interval lies beyond the allowance exactly when the test fails. The search spans a
    factor of 20 either way, and upwards at most ``most``.
    """

    def edge(upward: bool) -> float:
        inside = math.log(estimate)
        outside = inside - 3.0 if upward else min(inside + 3.0, math.log(most))
        if outside <= inside and not upward:
            return estimate
        if p_at(math.exp(outside), upward) >= alpha:
            return math.exp(outside)
        for _ in range(40):
            middle = (inside + outside) / 2
            if p_at(math.exp(middle), upward) >= alpha:
                inside = middle
            else:
                outside = middle
        return math.exp(inside)

    return edge(True), edge(False)


def directed(
    one_side: Callable[[bool, float], tuple[float, float]], direction: str, alpha: float
) -> tuple[float, float]:
    """(p, z) for the direction; ``either`` runs both sides at alpha / 2 and doubles the p."""
    if direction == "increase":
        return one_side(True, alpha)
    if direction == "decrease":
        return one_side(False, alpha)
    up, down = one_side(True, alpha / 2), one_side(False, alpha / 2)
    worst = up if up[0] <= down[0] else down
    return min(1.0, 2 * worst[0]), worst[1]


def detectable_rate_ratio(
    canary_requests: float,
    stable_requests: float,
    rate: float,
    *,
    factor: float = 1.0,
    margin: float = 0.0,
    alpha: float = 0.02,
    spread: float = 1.0,
    elapsed: float | None = 1.0,
) -> float:
    """The smallest canary / stable rate ratio the rate test rejects with these requests.

    The counts are taken at their expectation (the stable at ``rate``, the canary at the
    ratio times it), so this is the effect that is shown about half the time: what a stage
    with this traffic can see. ``inf`` when not even a canary failing every request is.
    """
    n_c, n_s = max(canary_requests, 0.0), max(stable_requests, 0.0)
    if n_c <= 0 or n_s <= 0 or rate <= 0:
        return math.inf

    def rejected(ratio: float) -> bool:
        canary_rate = min(rate * ratio, 1.0)
        steps = [(canary_rate * n_c, n_c, rate * n_s, n_s)]
        excess, var, expected = paired_excess(steps, spread, factor, margin)
        tau = RATE_TAU * max((expected * factor + margin * n_c) / n_c, 0.5 / (n_c + 1))
        est, v = excess / n_c, var / (n_c * n_c)
        within = rate_within(est / math.sqrt(v), expected * factor + margin * n_c, elapsed)
        return joined_p(always_valid_p(est, v, tau), within) < alpha

    most = 1 / rate
    if not rejected(most):
        return math.inf
    low, high = math.log(factor), math.log(most)
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (low, middle) if rejected(math.exp(middle)) else (middle, high)
    return math.exp(high)
