"""``kind: threshold``: measure the canary's value now, judge it against max and min."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from activities.judge.measurements import Measurements
from activities.judge.reader import Reader
from activities.judge.verdicts import requests, value_of
from plans import GateOutcome, ThresholdGate, Verdict


def measure(gate: ThresholdGate, reader: Reader, at: datetime) -> Measurements:
    """The canary's value and request count (``$target`` is the canary)."""
    return Measurements(canary=reader.instant_side(gate))


def judge(gate: ThresholdGate, m: Measurements, base: dict[str, Any]) -> Verdict:
    """Fail above max or below min; ``base`` gets the numbers as they are found."""
    value = value_of(gate, m.canary, "")
    base |= {"value": value, "canary": value}
    shown = gate.show(value)
    counted = requests(m.canary.samples)
    if gate.max is not None and value > gate.max:
        why = f"{shown} > max {gate.show(gate.max)}{counted}"
        return Verdict(outcome=GateOutcome.FAIL, reason=why, **base)
    if gate.min is not None and value < gate.min:
        why = f"{shown} < min {gate.show(gate.min)}{counted}"
        return Verdict(outcome=GateOutcome.FAIL, reason=why, **base)
    if gate.max is not None and gate.min is not None:
        held = f"within min {gate.show(gate.min)} and max {gate.show(gate.max)}"
    elif gate.max is not None:
        held = f"<= max {gate.show(gate.max)}"
    else:
        held = f">= min {gate.show(gate.min or 0.0)}"
    return Verdict(outcome=GateOutcome.PASS, reason=f"{shown} {held}{counted}", **base)
