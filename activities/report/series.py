"""Each gate over the rollout: its checks from the history, its values from Prometheus ranges,
its limit, and what the tables make of them (performance vs baseline, the incident)."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from activities.errors import SideEffectError
from activities.metrics.ranges import PrometheusRanges
from activities.metrics.reading import Series
from activities.report.model import (
    BaselineRow,
    CheckMark,
    GateSeries,
    Incident,
    Point,
    Report,
)
from plans import Gate, Plan, Verdict
from plans.gates.comparing import ComparingGate
from plans.gates.threshold import ThresholdGate
from plans.sources.prometheus import PrometheusSource

if TYPE_CHECKING:
    from activities.report.model import Facts

# About this many points per series, whatever the rollout's length.
POINTS = 240


def gates(plan: Plan, checks: list[tuple[datetime, list[Verdict]]]) -> list[GateSeries]:
    """One series per gate of the plan, with every check's verdict of it."""
    found = []
    for gate in plan.gates:
        marks = [
            CheckMark(
                at=v.at or at,
                outcome=v.outcome.value,
                canary=v.canary if v.canary is not None else v.value,
                stable=v.stable,
                reason=v.reason,
                effect=v.effect,
                effect_low=v.effect_low,
                effect_high=v.effect_high,
            )
            for at, verdicts in checks
            for v in verdicts
            if v.gate == gate.name
        ]
        found.append(
            GateSeries(
                gate=gate.name,
                kind=gate.kind,
                query=gate.query,
                threshold=gate.describe_threshold(),
                unit=gate.unit,
                checks=marks,
            )
        )
    return found


def limit_of(gate: Gate, stable: float | None) -> float | None:
    """The bound the canary's value is held to (the upper one where there are two)."""
    if isinstance(gate, ThresholdGate):
        return gate.max if gate.max is not None else gate.min
    if isinstance(gate, ComparingGate):
        if stable is None:
            return None
        # A gate asking for a gain is drawn against the target the canary has to reach.
        gain = gate.improvement()
        direction, factor, margin = (
            gain[:3] if gain is not None else (gate.harm_direction, gate.factor, gate.margin)
        )
        if direction == "decrease":
            return stable / factor - margin
        return stable * factor + margin
    return None


def met(gate: Gate, canary: float | None, stable: float | None) -> bool | None:
    """Whether ``canary`` keeps within the gate's limit; None when it cannot be said."""
    if canary is None:
        return None
    if isinstance(gate, ThresholdGate):
        return (gate.max is None or canary <= gate.max) and (gate.min is None or canary >= gate.min)
    if isinstance(gate, ComparingGate) and stable is not None:
        up = stable * gate.factor + gate.margin
        down = stable / gate.factor - gate.margin
        if gate.harm_direction == "increase":
            return canary <= up
        if gate.harm_direction == "decrease":
            return canary >= down
        return down <= canary <= up
    return None


async def fill_ranges(plan: Plan, series: GateSeries, start: datetime, end: datetime) -> None:
    """The canary's and the stable's values over [start, end] from Prometheus."""
    gate = next(g for g in plan.gates if g.name == series.gate)
    source = plan.source_of(gate)
    if not isinstance(source, PrometheusSource):
        series.missing = f"a {source.kind} source has no ranges: only the checks are drawn"
        return
    values = plan.placeholders()
    as_stable = values | {"canary": plan.stable}
    queries = [
        source.render(gate.query, values, window=gate.window),
        source.render(gate.query, as_stable, window=gate.window, target=plan.stable),
    ]
    step = max((end - start).total_seconds() / POINTS, 1.0)
    try:
        canary, stable = await asyncio.to_thread(_ranges, source, queries, start, end, step)
    except SideEffectError as error:
        series.missing = f"Prometheus at {source.url} gave no ranges: {error}"
        return
    series.canary, series.stable = _points(canary), _points(stable)
    if canary.values is None:
        series.missing = f"no canary series: {canary.reason}"


def _ranges(
    source: PrometheusSource, queries: list[str], start: datetime, end: datetime, step: float
) -> list[Series]:
    ranges = PrometheusRanges(source)
    try:
        return [ranges.query_range(q, start, end, step) for q in queries]
    finally:
        ranges.close()


def _points(found: Series) -> list[Point]:
    """A series' finite values as points (NaN and infinities left out)."""
    return [
        Point(at=datetime.fromtimestamp(at, tz=UTC), value=value)
        for at, value in zip(found.times, found.values or (), strict=False)
        if math.isfinite(value)
    ]


def fill_limit(plan: Plan, series: GateSeries, start: datetime, end: datetime) -> None:
    """The gate's bound over [start, end]: fixed, or following the stable's value."""
    gate = next(g for g in plan.gates if g.name == series.gate)
    series.limit = _limit_series(gate, series, start, end)


def _limit_series(gate: Gate, series: GateSeries, start: datetime, end: datetime) -> list[Point]:
    if isinstance(gate, ThresholdGate):
        bound = limit_of(gate, None)
        return [] if bound is None else [Point(at=start, value=bound), Point(at=end, value=bound)]
    stable = series.stable or [
        Point(at=c.at, value=c.stable) for c in series.checks if c.stable is not None
    ]
    return [
        Point(at=p.at, value=bound)
        for p in stable
        if (bound := limit_of(gate, p.value)) is not None
    ]


def baseline(
    plan: Plan, all_series: list[GateSeries], at: datetime | None = None
) -> list[BaselineRow]:
    """Per gate, the canary against the stable at its last check (up to ``at``).

    A gate whose verdicts carry an effect (sequential ones) shows it with its interval
    against what it is held to: its allowance, or its target for a gain.
    """
    by_name = {g.name: g for g in plan.gates}
    rows = []
    for series in all_series:
        marks = [c for c in series.checks if at is None or c.at <= at]
        judged = [c for c in marks if c.canary is not None]
        last = judged[-1] if judged else (marks[-1] if marks else None)
        canary = last.canary if last else None
        stable = last.stable if last else None
        if stable is None and last is not None:
            stable = _nearest(series.stable, last.at)
        change = None
        if canary is not None and stable not in (None, 0.0):
            assert stable is not None
            change = (canary - stable) / abs(stable)
        rows.append(
            BaselineRow(
                metric=series.gate,
                stable=stable,
                canary=canary,
                change=change,
                limit=series.threshold,
                met=None
                if last is None or last.outcome == "inconclusive"
                else last.outcome == "pass",
                unit=series.unit,
                **_effect(by_name.get(series.gate), last, stable),
            )
        )
    return rows


def _effect(gate: Gate | None, last: CheckMark | None, stable: float | None) -> dict[str, str]:
    """The row's effect with its interval, and its allowance or target, when measured."""
    if not isinstance(gate, ComparingGate) or last is None or last.effect is None:
        return {}
    low, high = last.effect_low, last.effect_high
    if low is None or high is None or not math.isfinite(low + high):
        return {}
    return {
        "effect": gate.describe_change(last.effect, low, high),
        "target": gate.describe_goal(stable),
    }


def _nearest(points: list[Point], at: datetime) -> float | None:
    if not points:
        return None
    return min(points, key=lambda p: abs((p.at - at).total_seconds())).value


def incident(plan: Plan, report: Report, facts: Facts) -> Incident:
    """The rollback: when, why, the numbers at its last check, how long until stable was back."""
    # The audit trail says when the rollback began; without it (no worker to ask), the
    # restoring shift does.
    restoring = [s.at for s in facts.shifts if s.summary.startswith("restore")]
    fallback = restoring[0] if restoring else report.ended_at or report.started_at
    rollback_at = next((e.at for e in report.timeline if e.kind == "rollback"), fallback)
    failing = [at for at, verdicts in facts.checks if at <= rollback_at and _fails(verdicts)]
    first = None
    if failing:
        # The first check of the failing run that ended in the rollback.
        passing_after = [
            at for at, verdicts in facts.checks if at <= rollback_at and not _fails(verdicts)
        ]
        last_pass = max(passing_after) if passing_after else None
        streak = [at for at in failing if last_pass is None or at > last_pass]
        first = min(streak) if streak else min(failing)
    restores = [
        s.done_at for s in facts.shifts if s.at >= rollback_at - timedelta(seconds=1) and s.done_at
    ]
    return Incident(
        at=rollback_at,
        reason=report.reason,
        metrics=baseline(plan, report.gates, at=rollback_at),
        first_failing_at=first,
        restored_at=max(restores) if restores else None,
    )


def _fails(verdicts: list[Verdict]) -> bool:
    return any(v.outcome.value == "fail" for v in verdicts)
