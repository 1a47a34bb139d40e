"""How much evidence a sequential gate has in a stage, against how much it needs.

A sequential gate passes while its test has not shown the canary worse than allowed: early
in a stage, or at low traffic, that is a pass with little behind it. Each verdict therefore
says how many canary requests the stage has so far (``evidence``) and how many its test
needs to show the regression it is tuned to find beyond the allowance (``evidence_needed``,
``evidence_target``; ``activities.power``), at the split between the versions and the
stable's rate (or latency distribution) the check measured; for ``direction: improve``,
what its gain test needs to show the gain it is tuned to find. `rollout status` shows both,
and a stage with ``max_bake`` bakes on while a gate has less than it needs.
"""

from __future__ import annotations

import math

from activities import power
from activities.judge.measurements import Measurements, Side
from plans import ComparingGate, GateBase, Verdict

Found = tuple[float, float | None, float | None]  # evidence, needed, target


def with_evidence(gate: GateBase, measured: Measurements, verdict: Verdict) -> Verdict:
    """The verdict with its evidence, for a sequential gate whose data allows it; else as is.

    Never fails a check: data too thin to say how much is needed leaves the fields unset.
    """
    test = getattr(gate, "test", None)
    if gate.kind != "sequential" or measured.stable is None:
        return verdict
    rule = _rule(gate)
    if rule is None:
        return verdict
    try:
        if test == "latency":
            found = _latency(rule, measured.canary, measured.stable)
        else:
            found = _rate(rule, measured.canary, measured.stable)
    except Exception:  # advisory: whatever the data, the verdict stands without it
        return verdict
    if found is None:
        return verdict
    evidence, needed, target = found
    return verdict.model_copy(
        update={"evidence": evidence, "evidence_needed": needed, "evidence_target": target}
    )


def _rate(rule: power.Rule, canary: Side, stable: Side) -> Found | None:
    c_n = _total(canary.counts)
    if stable.points is None or stable.counts is None:
        return None
    pairs = [
        (r, n)
        for r, n in zip(stable.points, stable.counts, strict=False)
        if math.isfinite(r) and math.isfinite(n) and n > 0 and 0 <= r <= 1
    ]
    s_n = sum(n for _, n in pairs)
    if c_n <= 0 or s_n <= 0:
        return c_n, None, None
    rate = max(sum(r * n for r, n in pairs) / s_n, 0.5 / (s_n + 1))
    target = power.targeted("rate", rule["factor"], rule["direction"], rule["margin"] / rate)
    if target <= 0:
        return c_n, None, None  # a fall to nothing is all the allowance leaves: no target
    share = s_n / c_n

    def shows(n: float) -> bool:
        return power.rate_shown(target, n, n * share, rate, **rule)

    return c_n, power.requests_needed(shows), target


def _latency(rule: power.Rule, canary: Side, stable: Side) -> Found | None:
    if canary.histogram is None or stable.histogram is None or stable.bounds is None:
        return None
    c_n = sum(sum(step) for step in canary.histogram)
    shares = [sum(column) for column in zip(*stable.histogram, strict=True)]
    s_n = sum(shares)
    if c_n <= 0 or s_n <= 0 or len(shares) != len(stable.bounds):
        return c_n, None, None
    target = power.targeted("latency", rule["factor"], rule["direction"])
    bounds, share = list(stable.bounds), s_n / c_n

    def shows(n: float) -> bool:
        return power.latency_shown(target, n, n * share, bounds, shares, **rule)

    return c_n, power.requests_needed(shows), target


def _rule(gate: GateBase) -> power.Rule | None:
    """What the gate's test is asked with: its allowance, direction and level; for
    ``direction: improve`` the test that shows the gain. None for any other direction."""
    alpha = 1 - float(getattr(gate, "confidence", 0.98))
    direction = str(getattr(gate, "direction", ""))
    if direction == "improve":
        gain = gate.improvement() if isinstance(gate, ComparingGate) else None
        if gain is None:
            return None
        return power.Rule(
            factor=gain.factor, margin=gain.margin, direction=gain.direction, alpha=alpha
        )
    if direction not in ("increase", "decrease", "either"):
        return None
    return power.Rule(
        factor=float(getattr(gate, "factor", 1.0)),
        margin=float(getattr(gate, "margin", 0.0)),
        direction=direction,
        alpha=alpha,
    )


def _total(counts: tuple[float, ...] | None) -> float:
    return sum(c for c in counts or () if math.isfinite(c) and c > 0)
