"""``kind: statistical``: measure both versions over the window, one point per step; test them.

Two-proportion gates read rates and each step's request count, so that each rate is
weighed by the requests of its own step; Mann-Whitney gates read the values alone.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from activities import stats
from activities.judge.measurements import Measurements, Side, rates_with_counts
from activities.judge.reader import Reader
from activities.judge.verdicts import (
    Inconclusive,
    enough_samples,
    hits_per_step,
    pair,
    stable_of,
)
from plans import GateOutcome, StatisticalGate, Verdict


def measure(gate: StatisticalGate, reader: Reader, at: datetime) -> Measurements:
    """Each version's points over the window up to ``at``, the canary's first."""
    canary, stable = reader.value("canary"), reader.value("stable")
    return Measurements(
        canary=_steps(gate, reader, canary, at), stable=_steps(gate, reader, stable, at)
    )


def _steps(gate: StatisticalGate, reader: Reader, target: str, at: datetime) -> Side:
    """One version's range: the gate's window up to ``at``, one point per step."""
    step = gate.step
    start, step_s = at - gate.window + step, step.total_seconds()
    series = reader.series(reader.query(gate, target=target, window=step), start, at, step_s)
    samples_query = reader.samples_query(gate, target=target, window=step)
    if samples_query is None:
        return Side(points=series.values, reason=series.reason)
    counted = reader.series(samples_query, start, at, step_s)
    if counted.values is None:
        return Side(points=series.values, reason=series.reason, samples_reason=counted.reason)
    samples = sum(v for v in counted.values if math.isfinite(v))
    if series.values is None or gate.test != "two-proportion":
        return Side(points=series.values, reason=series.reason, samples=samples)
    # Each rate is weighed by the request count of its own step.
    stepped = rates_with_counts(series, counted)
    return Side(points=stepped.points, counts=stepped.counts, reason=series.reason, samples=samples)


def judge(gate: StatisticalGate, m: Measurements, base: dict[str, Any]) -> Verdict:
    """Fail when the test is confident the canary is past the stable's bound."""
    base["test"] = gate.test or ""
    stable = stable_of(gate, m)
    if gate.test == "two-proportion":
        return _two_proportion(gate, m.canary, stable, base)
    return _mann_whitney(gate, m.canary, stable, base)


def _two_proportion(
    gate: StatisticalGate, canary: Side, stable: Side, base: dict[str, Any]
) -> Verdict:
    c_hits, c_totals = _hits(gate, canary, "canary: ")
    c = sum(c_hits) / sum(c_totals)
    base |= {"value": c, "canary": c}
    s_hits, s_totals = _hits(gate, stable, "stable: ")
    s = sum(s_hits) / sum(s_totals)
    base["stable"] = s
    result = stats.two_proportion(
        c_hits,
        c_totals,
        s_hits,
        s_totals,
        factor=gate.factor,
        margin=gate.margin,
        direction=gate.direction,
    )
    counts = pair(sum(c_totals), sum(s_totals))
    return _tested(gate, base, result, f"canary {gate.show(c)} vs stable {gate.show(s)}", counts)


def _mann_whitney(
    gate: StatisticalGate, canary: Side, stable: Side, base: dict[str, Any]
) -> Verdict:
    c_points = _points(gate, canary, "canary: ")
    s_points = _points(gate, stable, "stable: ")
    c, s = stats.median(c_points), stats.median(s_points)
    base |= {"value": c, "canary": c, "stable": s}
    result = stats.mann_whitney(
        c_points, s_points, factor=gate.factor, margin=gate.margin, direction=gate.direction
    )
    compared = f"canary median {gate.show(c)} vs stable median {gate.show(s)}"
    return _tested(gate, base, result, compared, f", {len(c_points)} vs {len(s_points)} points")


def _tested(
    gate: StatisticalGate,
    base: dict[str, Any],
    result: stats.Significance,
    compared: str,
    counts: str,
) -> Verdict:
    alpha = 1 - gate.confidence
    failed = result.p_value < alpha
    name = "z" if gate.test == "two-proportion" else "U"
    why = (
        f"{compared} (limit {gate.describe_limit()}): {gate.test} {name}={result.statistic:.3g},"
        f" p={result.p_value:.2g} {'<' if failed else '>='} {alpha:.2g}{counts}"
    )
    return Verdict(
        outcome=GateOutcome.FAIL if failed else GateOutcome.PASS,
        reason=why,
        statistic=result.statistic,
        p_value=result.p_value,
        **base,
    )


def _points(gate: StatisticalGate, side: Side, who: str) -> list[float]:
    """The side's usable points (NaN and infinities dropped), if there are enough of them."""
    if side.points is None:
        raise Inconclusive(f"{who}{side.reason or 'no data'}")
    enough_samples(gate, side, who)
    usable = [v for v in side.points if math.isfinite(v)]
    needed = gate.min_points
    if len(usable) < needed:
        dropped = len(side.points) - len(usable)
        note = f" ({dropped} NaN or Inf dropped)" if dropped else ""
        raise Inconclusive(
            f"{who}{len(usable)} usable point(s){note}, Mann-Whitney needs {needed} to reach"
            f" {gate.confidence:.0%} confidence"
        )
    return usable


def _hits(gate: StatisticalGate, side: Side, who: str) -> tuple[list[float], list[float]]:
    """Hits and requests per usable step (a rate times its step's request count)."""
    hits, totals = hits_per_step(gate, side, who, "the two-proportion test")
    if len(totals) < gate.min_points:
        raise Inconclusive(
            f"{who}{len(totals)} step(s) with requests, the two-proportion test needs"
            f" {gate.min_points} to measure burstiness"
        )
    return hits, totals
