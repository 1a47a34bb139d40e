"""The latency test of ``kind: sequential`` gates: a histogram's buckets, judged as a whole.

See ``distribution_test``; the mixture, the paired comparison and the interval it uses are
``activities.anytime``'s, shared with the rate test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from activities.anytime import (
    LOG_TAU,
    RATE_TAU,
    TAIL_COUNT,
    Sequential,
    directed,
    log_mixture_ratios,
)
from activities.buckets import log_density as log_density
from activities.dispersion import WANDER, latency_spread
from activities.within_bake import WITHIN_SHARE, joined_p, within_p

# The share of the test's evidence (its mixture weight) given to the whole distribution's
# scale; the rest is shared by the bucket bounds, so a shift of the tail alone is seen too.
BODY_WEIGHT = 0.5


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


@dataclass(frozen=True)
class _Evidence:
    """What the test reads, per judged part (each bucket bound, and the body's score).

    Per part and step: the canary's and the stable's sums (``c_sum``, ``s_sum``; requests
    slower than the bound, or the score), with ``slope``, how much a request's mean moves
    per unit of log latency shift, and ``unit``, a request's variance.
    """

    c_sum: np.ndarray
    s_sum: np.ndarray
    c_n: np.ndarray
    s_n: np.ndarray
    slope: np.ndarray
    unit: np.ndarray
    spread: np.ndarray
    weight: np.ndarray
    tau: np.ndarray  # per part, in log latency
    binary: np.ndarray  # parts that count requests (bounds), not scores
    within_share: float = WITHIN_SHARE  # of the level, to the test within the bake

    def log_lambda(self, theta: np.ndarray, upward: bool) -> tuple[np.ndarray, np.ndarray]:
        """Each part's log mixture ratio against "shifted by at most ``theta``" (``upward``)
        or "by at least ``theta``", and its z."""
        c_total = float(self.c_n.sum())
        p = self.stable_shares()
        sign = 1.0 if upward else -1.0
        tolerated = p + (self.slope * theta)[:, None]
        binary = self.binary[:, None]
        tolerated = np.where(binary, np.clip(tolerated, 0.5 / (c_total + 1), 1.0), tolerated)
        c_unit = np.where(binary, tolerated * (1 - tolerated), self.unit[:, None])
        s_unit = np.where(binary, p * (1 - p), self.unit[:, None])
        spread = self.spread[:, None]
        c_spread = 1 + (spread - 1) * self.c_n / self.s_n
        var = (c_spread * self.c_n * c_unit + spread * self.c_n**2 * s_unit / self.s_n).sum(axis=1)
        excess = sign * (self.c_sum - self.c_n * tolerated).sum(axis=1)
        scale = c_total * self.slope
        est, v = excess / scale, np.maximum(var, 1e-12) / scale**2
        return log_mixture_ratios(est, v, self.tau), est / np.sqrt(v)

    def combined(self, theta: np.ndarray, upward: bool) -> float:
        """log of the weighted average of the parts' mixture ratios: itself a mixture."""
        return self._average(self.log_lambda(theta, upward)[0])

    def _average(self, logs: np.ndarray) -> float:
        weighed = logs + np.log(self.weight)
        top = float(np.max(weighed))
        return top + math.log(float(np.exp(weighed - top).sum()))

    def p_value(
        self, theta: np.ndarray, upward: bool, elapsed: float | None, part: int | None = None
    ) -> float:
        """The mixture's p-value (of every part, or of ``part`` at its weight's share),
        joined with the whole distribution's ``within_p`` when the bake's span is known.

        Only the whole distribution's score is tested within the bake: it averages every
        request, so its z is near normal from the first look, where a tail bound's few
        requests are not; the bounds are left to the mixture.
        """
        logs, zs = self.log_lambda(theta, upward)
        if part is None:
            mixture = math.exp(-self._average(logs))
        else:
            mixture = math.exp(-float(logs[part])) / float(self.weight[part])
        if elapsed is None:
            return min(1.0, mixture)
        body = [i for i in range(len(zs)) if not self.binary[i] and part in (None, i)]
        within = within_p(float(zs[body[0]]), elapsed) if body else 1.0
        return joined_p(min(1.0, mixture), within, self.within_share)

    def estimates(self) -> np.ndarray:
        """Each part's estimate of the log latency shift."""
        c_total = float(self.c_n.sum())
        p = self.stable_shares()
        found: np.ndarray = (self.c_sum - self.c_n * p).sum(axis=1) / (c_total * self.slope)
        return found

    def stable_shares(self) -> np.ndarray:
        """The stable's mean per step, shrunk a little towards its mean over the steps."""
        prior = np.where(self.binary, 0.5, 0.0)[:, None]
        pooled = (self.s_sum.sum(axis=1, keepdims=True) + prior) / (self.s_n.sum() + 1)
        shares: np.ndarray = (self.s_sum + pooled) / (self.s_n + 1)
        return shares


def distribution_test(
    canary_steps: Sequence[Sequence[float]],
    stable_steps: Sequence[Sequence[float]],
    bounds: Sequence[float],
    *,
    factor: float = 1.0,
    margin: float = 0.0,
    direction: str = "increase",
    alpha: float = 0.02,
    elapsed: float | None = None,
    bounded: bool = True,
    wander: float = WANDER,
    within_share: float = WITHIN_SHARE,
) -> Sequential:
    """Is the canary's latency, anywhere in its distribution, beyond the stable's tolerated?

    Each side comes as bucket counts per step since the stage's start (per bucket, not
    cumulative), over ``bounds``, the buckets' upper bounds ascending (the last may be
    +Inf); both sides' steps at the same times.

    The test has parts, each compared step by step with the stable as the rate test
    compares error shares, and each a mixture ratio of its own (``activities.anytime``):

    - the whole distribution: every request scored by its bucket with the score that a
      slower latency (every request ``r`` times slower) moves most against its noise (the
      efficient score of a shift in log latency, from the two versions' buckets
      together), the canary's mean score against the stable's;
    - each bucket bound ``b``: the share of requests slower than ``b``, so a shift of the
      tail alone (the p99 region) is seen at the bounds there.

    A canary ``r`` times slower has ``g(b) ln r`` more of its requests beyond ``b``, where
    ``g`` is the density per unit of log latency at ``b`` (``log_density``): the allowance
    (``factor``; ``margin`` as its share of ``b``) enters each part's null that way, and
    each part's excess converts back to a shift, ``+x%``. The counts are exact; only ``g``
    is estimated, so coarse buckets blur the size of a shift, not whether there is one.
    The test's ratio is the parts' weighted average (``BODY_WEIGHT`` to the whole
    distribution, the rest shared by the bounds): an average of supermartingales is one,
    so the p-value stays valid at every look, and it is never weaker than testing each
    bound at ``alpha / k``. Each part's variance is widened by the overdispersion of the
    canary's steps against the stable's (``paired_spread``), which a load both share does
    not inflate; while the steps are too few to show it, by ``wander`` at least, each
    version's own step-to-step wander in log latency (``latency_spread``; 0 takes the
    steps as exact samples, as ``activities.power`` does a whole stage). Bounds with at
    least ``TAIL_COUNT`` requests on each side of them (the two versions together) are
    judged; the finding reported is the most telling part, its interval the shifts
    common to every part that no look rejects. ``within_share`` of the level goes to the
    test within the bake (``joined_p``), the rest to the mixture. When no bound can be
    judged (every request in one bucket, or too few requests), ``OneBucket`` says so.
    """
    c_steps, s_steps = np.asarray(canary_steps, float), np.asarray(stable_steps, float)
    if c_steps.ndim != 2 or s_steps.ndim != 2 or len(c_steps) != len(s_steps):
        raise ValueError("each side needs the same steps, each with one count per bucket")
    if c_steps.shape[1] != len(bounds) or s_steps.shape[1] != len(bounds):
        raise ValueError("each step needs one count per bucket")
    canary, stable = c_steps.sum(axis=0), s_steps.sum(axis=0)
    n_c, n_s = float(canary.sum()), float(stable.sum())
    if n_c <= 0 or n_s <= 0:
        raise ValueError("each side needs requests")
    pooled = [float(c + s) for c, s in zip(canary, stable, strict=True)]
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
    keep = s_steps.sum(axis=1) > 0
    c_steps, s_steps = c_steps[keep], s_steps[keep]
    if c_steps.sum() <= 0:
        raise ValueError("the canary has no requests in the stable's steps")
    evidence, refs = _evidence(c_steps, s_steps, bounds, pooled, judged, wander)
    evidence = replace(evidence, within_share=within_share)
    null = np.log(factor + margin / refs)
    telling: dict[bool, int] = {}

    def one_side(upward: bool, level: float) -> tuple[float, float]:
        theta = null if upward else -null
        logs, zs = evidence.log_lambda(theta, upward)
        telling[upward] = int(np.argmax(logs + np.log(evidence.weight)))
        return evidence.p_value(theta, upward, elapsed), float(zs[telling[upward]])

    p, z = directed(one_side, direction, alpha)
    side = direction != "decrease"
    if direction == "either":
        side = evidence.combined(null, True) >= evidence.combined(-null, False)
    part = telling[side]
    if p >= alpha and not evidence.binary[-1]:
        # Nothing beyond the allowance: the whole distribution's shift, read from every
        # request, says best how close it came, where the bound whose ratio happened to be
        # highest may be a tail with an interval as wide as its few requests' noise.
        part = len(judged)
    # A part whose density is all but nil reads an enormous shift: held to a factor of e^50.
    centre = min(max(float(evidence.estimates()[part]), -50.0), 50.0)

    def p_at(r: float, upward: bool) -> float:
        theta = np.full(len(refs), math.log(r))
        return evidence.p_value(theta, upward, elapsed)

    found = (part, judged, bounds, stable, refs, math.exp(centre))
    if not bounded:  # the p-value only: no interval (nan)
        return _finding(*found, math.nan, math.nan, p, z)
    low, high = _interval(p_at, centre, alpha)
    if not low < math.exp(centre) < high:
        # No one shift fits every part (the shape moved, not only the scale): the reported
        # part's own interval, at its share of the level.

        def p_part(r: float, upward: bool) -> float:
            return evidence.p_value(np.full(len(refs), math.log(r)), upward, elapsed, part)

        low, high = _interval(p_part, centre, alpha)
    return _finding(*found, low, high, p, z)


def _evidence(
    c_steps: np.ndarray,
    s_steps: np.ndarray,
    bounds: Sequence[float],
    pooled: Sequence[float],
    judged: list[int],
    wander: float,
) -> tuple[_Evidence, np.ndarray]:
    """The parts of the test: each judged bound, then the whole distribution's score.

    Also each part's reference latency: its bound, and for the whole distribution the
    judged bound nearest the two versions' median.
    """
    c_n, s_n = c_steps.sum(axis=1), s_steps.sum(axis=1)
    where = np.array(judged)
    c_slower = (c_n[:, None] - np.cumsum(c_steps, axis=1)[:, where]).T
    s_slower = (s_n[:, None] - np.cumsum(s_steps, axis=1)[:, where]).T
    counts = np.asarray(pooled, float)
    total = float(counts.sum())
    beyond = 1 - np.cumsum(counts)[where] / total
    g = np.array([log_density(k, pooled, bounds) for k in judged])
    # Each request scored by its bucket's mid-rank among both versions' requests (the
    # Wilcoxon-Mann-Whitney score, ties shared): bounded, and it needs no density but for
    # its slope, how far a shift in log latency moves the mean score: a bucket's share
    # moves by the density at its lower bound less that at its upper.
    density = np.array(
        [log_density(k, pooled, bounds) if 0 < b < math.inf else 0.0 for k, b in enumerate(bounds)]
    )
    moves = np.concatenate([[0.0], density[:-1]]) - density
    share = counts / total
    score = np.cumsum(share) - share / 2 - 0.5
    slope = float((score * moves).sum())
    unit = float((share * score**2).sum())
    middle = judged[int(np.argmin(np.abs(beyond - 0.5)))]
    refs = [bounds[k] for k in judged]
    parts = len(judged)
    rows = [c_slower, s_slower]
    slopes, units = list(g), list(beyond * (1 - beyond))
    # A bound's share slower than it is a rate: its mixture is tuned, as the rate test's,
    # to an excess of half that share (a tail's shifts are large in log latency); the
    # whole distribution's to LOG_TAU.
    taus = list(RATE_TAU * beyond / g)
    if slope > 0 and unit > 0:
        rows = [
            np.vstack([c_slower, c_steps @ score]),
            np.vstack([s_slower, s_steps @ score]),
        ]
        slopes.append(slope)
        units.append(unit)
        refs.append(bounds[middle])
        taus.append(LOG_TAU)
        weight = [(1 - BODY_WEIGHT) / parts] * parts + [BODY_WEIGHT]
    else:
        weight = [1 / parts] * parts
    c_sum, s_sum = rows
    unit_of = np.array(units)
    evidence = _Evidence(
        c_sum=c_sum,
        s_sum=s_sum,
        c_n=c_n,
        s_n=s_n,
        slope=np.array(slopes),
        unit=unit_of,
        spread=latency_spread(c_sum, c_n, s_sum, s_n, np.array(slopes), unit_of, wander),
        weight=np.array(weight),
        tau=np.array(taus),
        binary=np.arange(len(slopes)) < parts,
    )
    return evidence, np.array(refs, float)


def _interval(
    p_at: Callable[[float, bool], float], centre: float, alpha: float
) -> tuple[float, float]:
    """The shifts no look rejects, searched a factor of 20 either way of ``exp(centre)``.

    ``p_at(r, True)`` grows with ``r`` (against "at most r"), ``p_at(r, False)`` falls.
    """

    def edge(upward: bool) -> float:
        low, high = centre - 3.0, centre + 3.0
        if upward:
            if p_at(math.exp(low), True) >= alpha:
                return math.exp(low)
            if p_at(math.exp(high), True) < alpha:
                return math.exp(high)
        else:
            if p_at(math.exp(high), False) >= alpha:
                return math.exp(high)
            if p_at(math.exp(low), False) < alpha:
                return math.exp(low)
        for _ in range(30):
            middle = (low + high) / 2
            kept = p_at(math.exp(middle), upward) >= alpha
            if kept == upward:
                high = middle
            else:
                low = middle
        return math.exp(high if upward else low)

    return edge(True), edge(False)


def _finding(
    part: int,
    judged: list[int],
    bounds: Sequence[float],
    stable: np.ndarray,
    refs: np.ndarray,
    ratio: float,
    low: float,
    high: float,
    p: float,
    z: float,
) -> Sequential:
    counts = [float(c) for c in stable]
    first, last = judged[0], judged[-1]
    seen = (
        f"judged as a whole and at {len(judged)} bucket bound(s), {_ms(bounds[first])} (the"
        f" stable's p{_level(counts, first):g}) to {_ms(bounds[last])}"
        f" (p{_level(counts, last):g})"
    )
    reference = float(refs[part])
    k = list(bounds).index(reference)
    level = _level(counts, k)
    name = f"p{level:g}"
    if part == len(judged):
        note = (
            f"the whole distribution's shift (each request by its bucket's mid-rank),"
            f" shown at {_ms(reference)}, the stable's p{level:g}"
        )
    else:
        below = bounds[k - 1] if k else 0.0
        above = bounds[k + 1] if k + 1 < len(bounds) else math.inf
        note = (
            f"p{level:g} is the stable's share at or below {_ms(reference)}; its neighbouring"
            f" bounds {_ms(below)} and {_ms(above)} set how closely its size is read"
        )
    return Sequential(
        name=name,
        canary=reference * ratio,
        stable=reference,
        ratio=ratio,
        low=low,
        high=high,
        p_value=p,
        statistic=z,
        note=f"{seen}; {note}",
    )


def _level(counts: Sequence[float], k: int) -> float:
    """The share at or below bound ``k``, in percent, rounded to read as a percentile."""
    level = 100 * sum(counts[: k + 1]) / sum(counts)
    return round(level, 2 if level >= 99 or level < 1 else 1)


def _ms(seconds: float) -> str:
    if math.isinf(seconds):
        return "+Inf"
    return f"{seconds * 1000:.4g}ms" if seconds < 1 else f"{seconds:.4g}s"
