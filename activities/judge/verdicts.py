"""What every kind's judge does with a side's data before its rule: missing data never passes.

Order of checks, per side: the query must have answered; the request count must reach
``min_samples``; the value must be a number (NaN and infinities are inconclusive). Only
then is the gate's rule applied.
"""

from __future__ import annotations

import math
from typing import Any

from activities.judge.measurements import Measurements, Side
from plans import ComparingGate, GateBase, format_duration


class Inconclusive(Exception):
    """A side's data cannot be judged; the message says why."""


def fields(gate: GateBase, m: Measurements) -> dict[str, Any]:
    """The verdict's fields every kind fills alike."""
    return {
        "gate": gate.name,
        "threshold": gate.describe_threshold(),
        "query": m.query,
        "at": m.at,
        "kind": gate.kind,
        "canary_samples": _finite(m.canary.samples),
        "stable_samples": _finite(m.stable.samples) if m.stable else None,
    }


def stable_of(gate: ComparingGate, m: Measurements) -> Side:
    """The stable's side, which a comparing gate cannot do without."""
    if m.stable is None:
        raise Inconclusive(f"stable: not measured (a {gate.kind} gate needs both versions)")
    return m.stable


def value_of(gate: GateBase, side: Side, who: str) -> float:
    """The side's number, after the answer and the sample count are checked."""
    if side.value is None:
        raise Inconclusive(f"{who}{side.reason or 'no data'}")
    enough_samples(gate, side, who)
    value = side.value
    if math.isnan(value):
        why = "the query returned NaN (often a ratio over zero requests)"
        raise Inconclusive(f"{who}{_join(why, side.reason)}")
    if math.isinf(value):
        sign = "+" if value > 0 else "-"
        why = f"the query returned {sign}Inf (often a division by zero)"
        raise Inconclusive(f"{who}{_join(why, side.reason)}")
    return value


def enough_samples(gate: GateBase, side: Side, who: str) -> None:
    """Raise Inconclusive when the side's request count is unknown or below min_samples."""
    if gate.min_samples <= 0:
        return
    if side.samples is None or not math.isfinite(side.samples):
        raise Inconclusive(f"{who}request count unknown{because(side.samples_reason)}")
    if side.samples < gate.min_samples:
        raise Inconclusive(
            f"{who}{side.samples:,.0f} requests in {format_duration(gate.window)},"
            f" below min_samples {gate.min_samples:,}"
        )


def hits_per_step(
    gate: GateBase, side: Side, who: str, test: str
) -> tuple[list[float], list[float]]:
    """Hits and requests per usable step (a rate times its step's request count).

    Inconclusive as ``steps_of_hits`` says.
    """
    usable = [step for step in steps_of_hits(gate, side, who, test) if step is not None]
    return [h for h, _ in usable], [n for _, n in usable]


def steps_of_hits(
    gate: GateBase, side: Side, who: str, test: str
) -> list[tuple[float, float] | None]:
    """Per step, its hits and requests, or None for a step without requests or rate.

    Inconclusive without points, without counts, below min_samples, or when a rate is no
    proportion (``test`` names what needs a ratio query, for the message).
    """
    if side.points is None:
        raise Inconclusive(f"{who}{side.reason or 'no data'}")
    if side.counts is None:
        raise Inconclusive(f"{who}no request count per step{because(side.samples_reason)}")
    enough_samples(gate, side, who)
    steps: list[tuple[float, float] | None] = []
    for rate, count in zip(side.points, side.counts, strict=True):
        if not math.isfinite(count) or count <= 0 or not math.isfinite(rate):
            steps.append(None)
            continue
        if not 0 <= rate <= 1:
            raise Inconclusive(
                f"{who}{rate:g} is not a proportion between 0 and 1: {test} needs a"
                " ratio query (bad / all requests)"
            )
        steps.append((rate * count, count))
    return steps


def requests(samples: float | None) -> str:
    """``, 1,234 requests`` when the count is known."""
    return f", {samples:,.0f} requests" if samples is not None and math.isfinite(samples) else ""


def pair(canary: float | None, stable: float | None) -> str:
    """``, 6,000 vs 24,000 requests`` when both counts are known."""
    if canary is None or stable is None or not math.isfinite(canary + stable):
        return ""
    return f", {canary:,.0f} vs {stable:,.0f} requests"


def because(reason: str) -> str:
    """`` (reason)``, or nothing."""
    return f" ({reason})" if reason else ""


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _join(first: str, second: str) -> str:
    return f"{first}; {second}" if second else first
