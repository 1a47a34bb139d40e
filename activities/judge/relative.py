"""``kind: relative``: measure both versions now, judge the canary against the stable's bound."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from activities.judge.measurements import Measurements
from activities.judge.reader import Reader
from activities.judge.verdicts import pair, stable_of, value_of
from plans import GateOutcome, RelativeGate, Verdict


def measure(gate: RelativeGate, reader: Reader, at: datetime) -> Measurements:
    """Each version's value and request count, the canary's first."""
    canary, stable = reader.value("canary"), reader.value("stable")
    return Measurements(
        canary=reader.instant_side(gate, target=canary),
        stable=reader.instant_side(gate, target=stable),
    )


def judge(gate: RelativeGate, m: Measurements, base: dict[str, Any]) -> Verdict:
    """Fail past ``stable x factor + margin`` (or below, by direction)."""
    stable = stable_of(gate, m)
    c = value_of(gate, m.canary, "canary: ")
    base |= {"value": c, "canary": c}
    s = value_of(gate, stable, "stable: ")
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
        f" (limit {gate.describe_limit()} = {bound}){pair(m.canary.samples, stable.samples)}"
    )
    outcome = GateOutcome.FAIL if failed else GateOutcome.PASS
    return Verdict(outcome=outcome, reason=why, **base)
