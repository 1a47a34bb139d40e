"""The gate judge: measure first, then judge what was measured. Missing data never passes.

Each kind of gate owns both halves in its module (``threshold``, ``relative``,
``statistical``): ``measure`` reads everything the kind needs from the source, as data
(``Measurements``); ``judge`` is a pure function of the gate and those measurements. The
activity measures and judges each gate in turn; the benchmark judges synthetic
measurements through ``judge_gate``, so both judge alike. Every verdict carries the
numbers behind it and a reason that reads on its own, e.g. ``canary 4.1% vs stable 0.2%
(limit <= stable x1.5+0.1% = 0.4%), 6,000 vs 24,000 requests``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from activities.judge import relative, sequential, statistical, threshold
from activities.judge.measurements import Measurements, Side
from activities.judge.reader import MissingPlaceholder, Reader
from activities.judge.verdicts import Inconclusive, fields
from plans import Gate, GateOutcome, Verdict


@dataclass(frozen=True)
class GateKind:
    """The two halves of one kind of gate; Any because each takes its own gate model."""

    measure: Callable[[Any, Reader, datetime], Measurements]
    judge: Callable[[Any, Measurements, dict[str, Any]], Verdict]


KINDS: dict[str, GateKind] = {
    "threshold": GateKind(threshold.measure, threshold.judge),
    "relative": GateKind(relative.measure, relative.judge),
    "statistical": GateKind(statistical.measure, statistical.judge),
    "sequential": GateKind(sequential.measure, sequential.judge),
}


def measure(gate: Gate, reader: Reader, at: datetime) -> Measurements:
    """What the gate's kind reads for one check at ``at``; a missing placeholder is data too."""
    try:
        shown = reader.query(gate)
        measured = KINDS[gate.kind].measure(gate, reader, at)
    except MissingPlaceholder as missing:
        nothing = Side(reason=f"placeholder ${missing.name} has no value")
        return Measurements(canary=nothing, stable=nothing, query=gate.query, at=at)
    return replace(measured, query=shown, at=at)


def judge(gate: Gate, measured: Measurements) -> Verdict:
    """Pass, fail or inconclusive for one check of ``gate``, with the numbers behind it."""
    base = fields(gate, measured)
    try:
        return KINDS[gate.kind].judge(gate, measured, base)
    except Inconclusive as why:
        return Verdict(outcome=GateOutcome.INCONCLUSIVE, reason=str(why), **base)


def judge_gate(
    gate: Gate,
    canary: Side,
    stable: Side | None = None,
    *,
    query: str = "",
    at: datetime | None = None,
    elapsed: float | None = None,
) -> Verdict:
    """``judge`` for measurements given side by side (synthetic ones, in the benchmark)."""
    measured = Measurements(canary=canary, stable=stable, query=query, at=at, elapsed=elapsed)
    return judge(gate, measured)


__all__ = ["KINDS", "GateKind", "Measurements", "Side", "judge", "judge_gate", "measure"]
