"""The gate judge: one number against one gate's thresholds. Missing data never passes."""

from __future__ import annotations

import math
from datetime import datetime

from plans import Gate, GateOutcome, Verdict


def judge(gate: Gate, value: float | None, reason: str, query: str, at: datetime | None) -> Verdict:
    """Pass, fail or inconclusive for one reading of ``gate``, with the numbers behind it."""

    def verdict(outcome: GateOutcome, shown: float | None, why: str) -> Verdict:
        return Verdict(
            gate=gate.name,
            outcome=outcome,
            value=shown,
            threshold=gate.describe_threshold(),
            query=query,
            reason=why,
            at=at,
        )

    if value is None:
        return verdict(GateOutcome.INCONCLUSIVE, None, reason or "no data")
    if math.isnan(value):
        why = "the query returned NaN (often a ratio over zero requests)"
        return verdict(GateOutcome.INCONCLUSIVE, None, _join(why, reason))
    if math.isinf(value):
        sign = "+" if value > 0 else "-"
        why = f"the query returned {sign}Inf (often a division by zero)"
        return verdict(GateOutcome.INCONCLUSIVE, None, _join(why, reason))
    if gate.max is not None and value > gate.max:
        return verdict(GateOutcome.FAIL, value, f"{value:g} > max {gate.max:g}")
    if gate.min is not None and value < gate.min:
        return verdict(GateOutcome.FAIL, value, f"{value:g} < min {gate.min:g}")
    return verdict(GateOutcome.PASS, value, reason)


def _join(first: str, second: str) -> str:
    return f"{first}; {second}" if second else first
