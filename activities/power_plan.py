"""What each stage of a plan can detect, before it runs: `rollout validate --traffic` / `--live`.

Per stage and comparing gate (``kind: sequential``; ``kind: statistical`` with
``two-proportion``), the smallest regression the gate's test shows with the requests the
stage gives it (``activities.power``), at the gate's confidence: within the bake for a
sequential gate, which reads everything since the stage began, within its window for a
statistical one. The canary's requests a second are given (``--traffic``) or read now from
Prometheus (``--live``, both versions' together, shared by each stage's weight); the stable
gets the rest of the traffic by the stage's weight. The stable's rate is assumed
(``--base-rate``) or read; its latency is assumed log-normal in buckets fine enough to see
a shift (``power.assumed_latency``), or read from its histogram with its real buckets.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from activities import power
from activities.judge.reader import Reader
from activities.metrics import provider_for
from plans import Gate, Plan, Stage, format_duration
from plans.gates.comparing import SteppedGate

LIVE_WINDOW = timedelta(minutes=5)
# A stage that cannot show these within its bake is warned about.
RATE_WARNING = 2.0
LATENCY_WARNING = 1.2


@dataclass
class Traffic:
    """What the stages' power is worked out from, and how it was found (``said``).

    ``canary_rps``: the canary's requests a second at every stage (``--traffic``); else
    ``total_rps`` per gate, both versions' together (``--live``), shared by weight.
    ``rates`` and ``latency`` hold what was read of the stable per gate; ``problems`` why a
    gate's traffic could not be read.
    """

    canary_rps: float | None = None
    base_rate: float = 0.01
    total_rps: dict[str, float] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)
    latency: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    said: str = ""


@dataclass(frozen=True)
class GateReach:
    """The smallest regression one gate shows in one stage, and a warning when it is too big.

    ``detectable`` is canary / stable: the rate ratio, or every request's latency ratio;
    None when nothing within a factor of 100 shows (or nothing was estimated: ``shown``
    says why).
    """

    gate: str
    test: str
    canary_requests: float | None
    stable_requests: float | None
    detectable: float | None
    shown: str
    warning: str = ""


def reach(plan: Plan, traffic: Traffic) -> list[list[GateReach]]:
    """Per stage, what each of its comparing gates can detect."""
    return [[r for g in plan.gates_for(s) if (r := _gate(s, g, traffic))] for s in plan.stages]


def _gate(stage: Stage, gate: Gate, traffic: Traffic) -> GateReach | None:
    kind = gate.kind
    test = str(getattr(gate, "test", ""))
    if not isinstance(gate, SteppedGate) or kind not in ("sequential", "statistical"):
        return None
    name = f"{kind} {test}" if kind == "sequential" else test
    direction = str(gate.direction)
    nothing = GateReach(gate.name, name, None, None, None, "")
    if direction not in ("increase", "decrease", "either"):
        return _with(nothing, f"not estimated for direction {direction}")
    if test == "mann-whitney":
        return _with(nothing, "not estimated: Mann-Whitney ranks one value per step")
    if gate.name in traffic.problems:
        return _with(nothing, f"not estimated: {traffic.problems[gate.name]}")
    rps = _rps(stage, gate, traffic)
    if rps is None:
        return _with(nothing, "not estimated: at weight 0 the canary gets matched requests only")
    span = stage.bake if kind == "sequential" else gate.window
    seconds = span.total_seconds()
    c_n, s_n = rps[0] * seconds, rps[1] * seconds
    alpha = 1 - gate.confidence
    # A sequential test is asked at the bake's end, a share of the span it is sharper in.
    elapsed = stage.bake / stage.test_span if kind == "sequential" else None
    rule = power.Rule(factor=gate.factor, margin=gate.margin, direction=direction, alpha=alpha)
    within = f"within {format_duration(span)}{'' if kind == 'sequential' else ' (its window)'}"
    level = f"at {1 - alpha:.0%}"
    if test == "latency":
        bounds, shares = traffic.latency.get(gate.name) or power.assumed_latency()
        found = power.latency_shift(c_n, s_n, bounds, shares, **rule, elapsed=elapsed)
        effect = "no shift" if found is None else f"{(found - 1) * 100:+.1f}%"
        warn = found is None or (
            found > LATENCY_WARNING if found >= 1 else found < 1 / LATENCY_WARNING
        )
        warning = (
            f"cannot detect latency {'+' if direction != 'decrease' else '-'}20% {within}"
            if warn
            else ""
        )
    else:
        rate = traffic.rates.get(gate.name, _base(traffic.base_rate, direction))
        if kind == "sequential":
            found = power.rate_ratio(c_n, s_n, rate, **rule, elapsed=elapsed)
        else:
            points = int(seconds // gate.step.total_seconds())
            found = power.two_proportion_ratio(c_n, s_n, rate, points, **rule)
        effect = "no ratio" if found is None else f"x{found:.3g}"
        errors = (
            None if found is None else (found if found >= 1 else (1 - rate * found) / (1 - rate))
        )
        warning = (
            f"cannot detect {gate.name} x2 {within}"
            if errors is None or errors > RATE_WARNING
            else ""
        )
        if direction == "decrease" and warning:
            warning = f"cannot detect {gate.name}'s misses x2 {within}"
    shown = f"{gate.name} {effect} {within} {level}"
    if found is None:
        shown = f"{gate.name}: no regression within x100 shows {within} {level}"
    return GateReach(gate.name, name, c_n, s_n, found, shown, warning)


def _with(reach: GateReach, shown: str) -> GateReach:
    return GateReach(reach.gate, reach.test, None, None, None, f"{reach.gate}: {shown}")


def _base(rate: float, direction: str) -> float:
    """The stable's rate assumed: ``--base-rate`` (an error rate); a success rate for decrease."""
    return 1 - rate if direction == "decrease" else rate


def _rps(stage: Stage, gate: Gate, traffic: Traffic) -> tuple[float, float] | None:
    """The canary's and the stable's requests a second in this stage, for this gate."""
    weight = stage.weight
    if weight <= 0 or weight >= 100:
        return None
    if traffic.canary_rps is not None:
        return traffic.canary_rps, traffic.canary_rps * (100 - weight) / weight
    total = traffic.total_rps.get(gate.name, 0.0)
    return total * weight / 100, total * (100 - weight) / 100


def live(plan: Plan, base_rate: float) -> Traffic:
    """The traffic each comparing gate sees now, from its source: requests, rate, buckets.

    Requests come from the gate's ``samples_query`` (a rate test) or its histogram's count
    (a latency test) over the last ``LIVE_WINDOW``, both versions' together; the stable's
    rate from the gate's query, its latency distribution from its histogram.
    """
    traffic = Traffic(base_rate=base_rate)
    values = plan.placeholders()
    now = datetime.now(UTC)
    window_s = LIVE_WINDOW.total_seconds()
    for gate in plan.gates:
        if not gate.compares or gate.kind not in ("sequential", "statistical"):
            continue
        source = plan.source_of(gate)
        if source.kind != "prometheus":
            traffic.problems[gate.name] = f"--live reads Prometheus sources, not {source.kind}"
            continue
        provider = provider_for(source)
        reader = Reader(provider, source, values, time.sleep)
        try:
            why = _read(gate, reader, plan, traffic, now, window_s)
        finally:
            provider.close()
        if why:
            traffic.problems[gate.name] = why
    window = format_duration(LIVE_WINDOW)
    traffic.said = (
        f"live: each gate's requests over the last {window}, shared by each stage's weight"
    )
    return traffic


def _read(
    gate: Gate, reader: Reader, plan: Plan, traffic: Traffic, now: datetime, window_s: float
) -> str:
    """Read one gate's traffic into ``traffic``; why not, or ''."""
    total = 0.0
    if getattr(gate, "test", "") == "latency":
        for version in (plan.canary, plan.stable):
            query = reader.query(gate, target=version, window=LIVE_WINDOW)
            series = reader.series_by(query, "le", now, now, window_s)
            if series.labelled is None:
                return series.reason or "the histogram has no buckets"
            bounds = sorted(series.labelled, key=float)
            cumulative = [series.labelled[b][-1] for b in bounds]
            total += max(cumulative, default=0.0)
            if version == plan.stable:
                own = [
                    max(c - p, 0.0)
                    for c, p in zip(cumulative, [0.0, *cumulative[:-1]], strict=True)
                ]
                traffic.latency[gate.name] = ([float(b) for b in bounds], own)
    else:
        for version in (plan.canary, plan.stable):
            counted = reader.samples_query(gate, target=version, window=LIVE_WINDOW)
            if counted is None:
                return "the gate has no samples_query to count requests with"
            reading = reader.instant(counted)
            if reading.value is None or not math.isfinite(reading.value):
                return reading.reason or "no request count"
            total += reading.value
        rate = reader.instant(reader.query(gate, target=plan.stable, window=LIVE_WINDOW))
        if rate.value is not None and 0 < rate.value < 1:
            traffic.rates[gate.name] = rate.value
    if total <= 0:
        return "no requests in the last 5m"
    traffic.total_rps[gate.name] = total / window_s
    return ""
