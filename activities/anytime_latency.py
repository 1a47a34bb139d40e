"""The latency test of ``kind: sequential`` gates: a histogram's buckets, judged at each bound.

See ``distribution_test``; the mixture, the paired comparison and the interval it uses are
``activities.anytime``'s, shared with the rate test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from activities.anytime import (
    LOG_TAU,
    TAIL_COUNT,
    Sequential,
    always_valid_p,
    directed,
    interval,
    paired_excess,
    robust_dispersion,
)


class OneBucket(ValueError):
    """No bucket bound has enough requests on each side to show a shift; the message says why."""


def _one_bucket(pooled: Sequence[float], bounds: Sequence[float], n_c: float, n_s: float) -> str:
    counted = f"{n_c:,.0f} vs {n_s:,.0f} requests"
    if n_c + n_s < 2 * TAIL_COUNT:
        return f"too few requests to judge at any bucket bound ({counted})"
    k = max(range(len(pooled)), key=lambda i: pooled[i])
    lower = _ms(bounds[k - 1]) if k else "0"
    return (
        f"nearly every request of both versions lies in the {lower}-{_ms(bounds[k])} bucket"
        f" ({counted}): a shift inside it cannot be seen at these buckets"
    )


def log_density(bound: int, counts: Sequence[float], bounds: Sequence[float]) -> float:
    """The share of requests per unit of log latency at ``bounds[bound]``.

    Each neighbouring bucket gives its average (its share over its width in log
    latency); the two are interpolated between the buckets' middles, which follows a
    density that rises or falls across the bound. A first bucket from 0 or a last one to
    +Inf has no width in log latency: the other neighbour alone then.
    """
    total = sum(counts)
    edge = bounds[bound]
    widths, heights = [], []
    for index in (bound, bound + 1):
        lower = bounds[index - 1] if index else 0.0
        upper = bounds[index]
        if lower <= 0 or math.isinf(upper):
            continue
        width = math.log(upper / lower)
        widths.append(width)
        heights.append(counts[index] / total / width)
    if not heights:
        return 0.0
    if len(heights) == 1:
        return heights[0]
    left, right = widths
    return (heights[0] * right + heights[1] * left) / (left + right) if edge > 0 else 0.0


def distribution_test(
    canary_steps: Sequence[Sequence[float]],
    stable_steps: Sequence[Sequence[float]],
    bounds: Sequence[float],
    *,
    factor: float = 1.0,
    margin: float = 0.0,
    direction: str = "increase",
    alpha: float = 0.02,
) -> Sequential:
    """Is the canary's latency, anywhere in its distribution, beyond the stable's tolerated?

    Each side comes as bucket counts per step since the stage's start (per bucket, not
    cumulative), over ``bounds``, the buckets' upper bounds ascending (the last may be
    +Inf); both sides' steps at the same times.

    At each finite bound ``b`` the share of requests slower than ``b`` is compared, step
    by step, as the rate test compares error shares. A canary ``r`` times slower has
    ``g(b) ln r`` more of its requests beyond ``b``, where ``g`` is the density per unit
    of log latency at ``b`` (``log_density``): the allowance (``factor``; ``margin`` as
    its share of ``b``) enters the null that way, and the excess converts back to a
    shift of that quantile, ``+x%``. The counts at each bound are exact; only ``g`` is
    estimated, so coarse buckets blur the size of a shift, not whether there is one.
    Bounds with at least ``TAIL_COUNT`` requests on each side of them (the two versions
    together) are judged, each at ``alpha / k`` for the ``k`` judged; the finding is the
    most telling. When there is none (every request in one bucket, or too few requests),
    ``OneBucket`` says so: no shift is visible at these buckets.
    """
    canary = [sum(col) for col in zip(*canary_steps, strict=True)]
    stable = [sum(col) for col in zip(*stable_steps, strict=True)]
    if len(canary) != len(bounds) or len(stable) != len(bounds):
        raise ValueError("each step needs one count per bucket")
    n_c, n_s = sum(canary), sum(stable)
    if n_c <= 0 or n_s <= 0:
        raise ValueError("each side needs requests")
    pooled = [c + s for c, s in zip(canary, stable, strict=True)]
    judged = []
    for k, bound in enumerate(bounds):
        if math.isinf(bound) or bound <= 0:
            continue
        below = sum(pooled[: k + 1])
        if min(below, n_c + n_s - below) < TAIL_COUNT:
            continue
        if log_density(k, pooled, bounds) > 0:
            judged.append(k)
    if not judged:
        raise OneBucket(_one_bucket(pooled, bounds, n_c, n_s))
    level = alpha / len(judged)
    found = [
        _at_bound(k, canary_steps, stable_steps, bounds, pooled, factor, margin, direction, level)
        for k in judged
    ]
    index = min(range(len(found)), key=lambda i: (found[i].p_value, -found[i].statistic))
    best = _at_bound(
        judged[index],
        canary_steps,
        stable_steps,
        bounds,
        pooled,
        factor,
        margin,
        direction,
        level,
        with_interval=True,
    )
    first, last = judged[0], judged[-1]
    seen = (
        f"judged at {len(judged)} bucket bound(s), {_ms(bounds[first])} (the stable's"
        f" p{_level(stable, first):g}) to {_ms(bounds[last])} (p{_level(stable, last):g})"
    )
    return Sequential(
        name=best.name,
        canary=best.canary,
        stable=best.stable,
        ratio=best.ratio,
        low=best.low,
        high=best.high,
        p_value=min(1.0, best.p_value * len(judged)),
        statistic=best.statistic,
        note=f"{seen}; {best.note}",
    )


def _level(counts: Sequence[float], k: int) -> float:
    """The share at or below bound ``k``, in percent, rounded to read as a percentile."""
    level = 100 * sum(counts[: k + 1]) / sum(counts)
    return round(level, 2 if level >= 99 or level < 1 else 1)


def _at_bound(
    k: int,
    canary_steps: Sequence[Sequence[float]],
    stable_steps: Sequence[Sequence[float]],
    bounds: Sequence[float],
    pooled: Sequence[float],
    factor: float,
    margin: float,
    direction: str,
    alpha: float,
    with_interval: bool = False,
) -> Sequential:
    """The test at one bound: the canary's share slower than it against the stable's.

    ``with_interval`` also finds its confidence interval (the reported bound's only).
    """
    c_steps, s_steps = np.asarray(canary_steps, float), np.asarray(stable_steps, float)
    c_all, s_all = c_steps.sum(axis=1), s_steps.sum(axis=1)
    slower_c = c_all - c_steps[:, : k + 1].sum(axis=1)
    slower_s = s_all - s_steps[:, : k + 1].sum(axis=1)
    steps = np.column_stack([slower_c, c_all, slower_s, s_all])[s_all > 0]
    bound, g = bounds[k], log_density(k, pooled, bounds)
    c_n = float(steps[:, 1].sum())
    if c_n <= 0:
        raise ValueError("the canary has no requests in the stable's steps")
    spread = robust_dispersion(steps[:, 2], steps[:, 3])

    def one_side(upward: bool, level: float) -> tuple[float, float]:
        allowed = g * math.log(factor + margin / bound)
        excess, var, _ = paired_excess(steps, spread, 1.0, allowed if upward else -allowed)
        if not upward:
            excess = -excess
        est, v = excess / c_n / g, var / (c_n * c_n * g * g)
        return always_valid_p(est, v, LOG_TAU), est / math.sqrt(v)

    p, z = directed(one_side, direction, alpha)
    shift = paired_excess(steps, spread, 1.0, 0.0)[0] / c_n / g
    low = high = math.nan
    if with_interval:

        def p_at(r: float, upward: bool) -> float:
            excess, var, _ = paired_excess(steps, spread, 1.0, g * math.log(r))
            est = (excess if upward else -excess) / c_n / g
            return always_valid_p(est, var / (c_n * c_n * g * g), LOG_TAU)

        low, high = interval(p_at, math.exp(shift), alpha)
    level = _level([sum(col) for col in zip(*stable_steps, strict=True)], k)
    below = bounds[k - 1] if k else 0.0
    above = bounds[k + 1] if k + 1 < len(bounds) else math.inf
    return Sequential(
        name=f"p{level:g}",
        canary=bound * math.exp(shift),
        stable=bound,
        ratio=math.exp(shift),
        low=low,
        high=high,
        p_value=p,
        statistic=z,
        note=(
            f"p{level:g} is the stable's share at or below {_ms(bound)}; its neighbouring"
            f" bounds {_ms(below)} and {_ms(above)} set how closely its size is read"
        ),
    )


def _ms(seconds: float) -> str:
    if math.isinf(seconds):
        return "+Inf"
    return f"{seconds * 1000:.4g}ms" if seconds < 1 else f"{seconds:.4g}s"
