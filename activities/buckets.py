"""A histogram's buckets read as a density, for the tests that judge latency from them."""

from __future__ import annotations

import math
from collections.abc import Sequence


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
