"""The gate judge: what was measured for each version, against the gate. Missing data never passes.

``judge_gate`` is the one entry: the activity calls it with what Prometheus answered, the
benchmark with synthetic measurements, so both judge alike. Every verdict carries the
numbers behind it and a reason that reads on its own, e.g. ``canary 4.1% vs stable 0.2%
(limit <= stable x1.5+0.1% = 0.4%), 6,000 vs 24,000 requests``.

Order of checks, per side: the query must have answered; the request count must reach
``min_samples``; the value must be a number (NaN and infinities are inconclusive). Only
then is the gate's rule applied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from activities import stats
from plans import (
    Gate,
    GateBase,
    GateOutcome,
    RelativeGate,
    StatisticalGate,
    ThresholdGate,
    Verdict,
    format_duration,
)


@dataclass(frozen=True)
class Side:
    """What one version's queries gave in one check.

    ``value`` is the instant query's number (None when there is none, and ``reason`` says
    why); statistical gates have ``points`` instead, the range query's value per step, and
    for rates ``counts``, the requests per step aligned with them. ``samples`` is the
    request count of the window (None when unknown, and ``samples_reason`` says why).
    """

    value: float | None = None
    reason: str = ""
    samples: float | None = None
    samples_reason: str = ""
    points: tuple[float, ...] | None = None
    counts: tuple[float, ...] | None = None


class _Inconclusive(Exception):
    """A side's data cannot be judged; the message says why."""


def judge_gate(
    gate: Gate,
    canary: Side,
    stable: Side | None = None,
    *,
    query: str = "",
    at: datetime | None = None,
) -> Verdict:
    """Pass, fail or inconclusive for one check of ``gate``, with the numbers behind it."""
    base: dict[str, Any] = {
        "gate": gate.name,
        "threshold": gate.describe_threshold(),
        "query": query,
        "at": at,
        "kind": gate.kind,
        "test": (gate.test or "") if isinstance(gate, StatisticalGate) else "",
        "canary_samples": _finite(canary.samples),
        "stable_samples": _finite(stable.samples) if stable else None,
    }
    try:
        if isinstance(gate, ThresholdGate):
            return _threshold(gate, canary, base)
        if stable is None:
            raise _Inconclusive(f"stable: not measured (a {gate.kind} gate needs both versions)")
        if isinstance(gate, RelativeGate):
            return _relative(gate, canary, stable, base)
        if gate.test == "two-proportion":
            return _two_proportion(gate, canary, stable, base)
        return _mann_whitney(gate, canary, stable, base)
    except _Inconclusive as why:
        return Verdict(outcome=GateOutcome.INCONCLUSIVE, reason=str(why), **base)


def judge(gate: Gate, value: float | None, reason: str, query: str, at: datetime | None) -> Verdict:
    """One reading of a threshold gate; on a pass the given ``reason`` is kept as it is."""
    verdict = judge_gate(gate, Side(value=value, reason=reason), query=query, at=at)
    if verdict.outcome is GateOutcome.PASS:
        return verdict.model_copy(update={"reason": reason})
    return verdict


# -- the kinds -------------------------------------------------------------------------------


def _threshold(gate: ThresholdGate, canary: Side, base: dict[str, Any]) -> Verdict:
    value = _value(gate, canary, "")
    base |= {"value": value, "canary": value}
    shown = gate.show(value)
    requests = _requests(canary.samples)
    if gate.max is not None and value > gate.max:
        why = f"{shown} > max {gate.show(gate.max)}{requests}"
        return Verdict(outcome=GateOutcome.FAIL, reason=why, **base)
    if gate.min is not None and value < gate.min:
        why = f"{shown} < min {gate.show(gate.min)}{requests}"
        return Verdict(outcome=GateOutcome.FAIL, reason=why, **base)
    if gate.max is not None and gate.min is not None:
        held = f"within min {gate.show(gate.min)} and max {gate.show(gate.max)}"
    elif gate.max is not None:
        held = f"<= max {gate.show(gate.max)}"
    else:
        held = f">= min {gate.show(gate.min or 0.0)}"
    return Verdict(outcome=GateOutcome.PASS, reason=f"{shown} {held}{requests}", **base)


def _relative(gate: RelativeGate, canary: Side, stable: Side, base: dict[str, Any]) -> Verdict:
    c = _value(gate, canary, "canary: ")
    base |= {"value": c, "canary": c}
    s = _value(gate, stable, "stable: ")
    base["stable"] = s
    high = s * gate.factor + gate.margin
    low = s / gate.factor - gate.margin
    up, down = gate.direction in ("increase", "either"), gate.direction in ("decrease", "either")
    failed = (up and c > high) or (down and c < low)
    if gate.direction == "increase":
        bound = gate.show(high)
    elif gate.direction == "decrease":
        bound = gate.show(low)
    else:
        bound = f"{gate.show(low)}..{gate.show(high)}"
    why = (
        f"canary {gate.show(c)} vs stable {gate.show(s)}"
        f" (limit {gate.describe_limit()} = {bound}){_pair(canary.samples, stable.samples)}"
    )
    outcome = GateOutcome.FAIL if failed else GateOutcome.PASS
    return Verdict(outcome=outcome, reason=why, **base)


def _two_proportion(
    gate: StatisticalGate, canary: Side, stable: Side, base: dict[str, Any]
) -> Verdict:
    c_hits, c_totals = _steps(gate, canary, "canary: ")
    c = sum(c_hits) / sum(c_totals)
    base |= {"value": c, "canary": c}
    s_hits, s_totals = _steps(gate, stable, "stable: ")
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
    counts = _pair(sum(c_totals), sum(s_totals))
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


# -- the checks on each side's data ---------------------------------------------------------------


def _value(gate: GateBase, side: Side, who: str) -> float:
    """The side's number, after the answer and the sample count are checked."""
    if side.value is None:
        raise _Inconclusive(f"{who}{side.reason or 'no data'}")
    _enough_samples(gate, side, who)
    value = side.value
    if math.isnan(value):
        why = "the query returned NaN (often a ratio over zero requests)"
        raise _Inconclusive(f"{who}{_join(why, side.reason)}")
    if math.isinf(value):
        sign = "+" if value > 0 else "-"
        why = f"the query returned {sign}Inf (often a division by zero)"
        raise _Inconclusive(f"{who}{_join(why, side.reason)}")
    return value


def _points(gate: StatisticalGate, side: Side, who: str) -> list[float]:
    """The side's usable points (NaN and infinities dropped), if there are enough of them."""
    if side.points is None:
        raise _Inconclusive(f"{who}{side.reason or 'no data'}")
    _enough_samples(gate, side, who)
    usable = [v for v in side.points if math.isfinite(v)]
    needed = gate.min_points
    if len(usable) < needed:
        dropped = len(side.points) - len(usable)
        note = f" ({dropped} NaN or Inf dropped)" if dropped else ""
        raise _Inconclusive(
            f"{who}{len(usable)} usable point(s){note}, Mann-Whitney needs {needed} to reach"
            f" {gate.confidence:.0%} confidence"
        )
    return usable


def _steps(gate: StatisticalGate, side: Side, who: str) -> tuple[list[float], list[float]]:
    """Hits and requests per usable step (a rate times its step's request count)."""
    if side.points is None:
        raise _Inconclusive(f"{who}{side.reason or 'no data'}")
    if side.counts is None:
        raise _Inconclusive(f"{who}no request count per step{_because(side.samples_reason)}")
    _enough_samples(gate, side, who)
    hits, totals = [], []
    for rate, count in zip(side.points, side.counts, strict=True):
        if not math.isfinite(count) or count <= 0 or not math.isfinite(rate):
            continue
        if not 0 <= rate <= 1:
            raise _Inconclusive(
                f"{who}{rate:g} is not a proportion between 0 and 1: the two-proportion"
                " test needs a ratio query (bad / all requests)"
            )
        hits.append(rate * count)
        totals.append(count)
    if len(totals) < gate.min_points:
        raise _Inconclusive(
            f"{who}{len(totals)} step(s) with requests, the two-proportion test needs"
            f" {gate.min_points} to measure burstiness"
        )
    return hits, totals


def _enough_samples(gate: GateBase, side: Side, who: str) -> None:
    if gate.min_samples <= 0:
        return
    if side.samples is None or not math.isfinite(side.samples):
        raise _Inconclusive(f"{who}request count unknown{_because(side.samples_reason)}")
    if side.samples < gate.min_samples:
        raise _Inconclusive(
            f"{who}{side.samples:,.0f} requests in {format_duration(gate.window)},"
            f" below min_samples {gate.min_samples:,}"
        )


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _requests(samples: float | None) -> str:
    return f", {samples:,.0f} requests" if samples is not None and math.isfinite(samples) else ""


def _pair(canary: float | None, stable: float | None) -> str:
    if canary is None or stable is None or not math.isfinite(canary + stable):
        return ""
    return f", {canary:,.0f} vs {stable:,.0f} requests"


def _because(reason: str) -> str:
    return f" ({reason})" if reason else ""


def _join(first: str, second: str) -> str:
    return f"{first}; {second}" if second else first
