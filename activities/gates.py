"""Evaluating a stage's gates: query each version, judge each gate, isolate bad queries.

A threshold gate reads the canary; relative and statistical gates read the canary and the
stable through the same query, ``$target`` filled with each in turn, and every gate with a
``samples_query`` also counts each side's requests. Mann-Whitney gates read a range: the
gate's window, one point per step.

Retry policy: a query that could not reach the source is retried here a few times with
a short backoff (a restarting Prometheus, a proxy's 502). If the source stays down, that
gate and every later gate in the same check are reported INCONCLUSIVE with the reason,
without waiting on the source again. The activity itself then succeeds, so the workflow
sees the outage as data and applies its own policy at the next check; Temporal retries
would only delay that. Timeouts are not retried: the source has had its full budget.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from activities.errors import MetricsError, MetricsTimeout, MetricsUnavailable
from activities.judge import Side, judge_gate
from activities.metrics import MetricProvider, Reading, Series
from plans import Gate, GateCheck, MetricsSource, StatisticalGate, Verdict

ATTEMPTS = 3
BACKOFF_S: tuple[float, ...] = (0.25, 0.75)
T = TypeVar("T")


def evaluate(
    gates: Sequence[Gate],
    provider: MetricProvider,
    placeholders: dict[str, str],
    *,
    source: MetricsSource,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[], None] = lambda: None,
) -> list[Verdict]:
    """One verdict per gate, in order; ``progress`` is called after each (for heartbeats)."""
    reader = _Reader(provider, source, sleep)
    verdicts: list[Verdict] = []
    for gate in gates:
        verdicts.append(_check(gate, reader, placeholders, _now()))
        progress()
    return verdicts


def inconclusive(
    gates: Sequence[Gate], source: MetricsSource, placeholders: dict[str, str], reason: str
) -> list[Verdict]:
    """Every gate INCONCLUSIVE for one reason (the source could not even be set up)."""
    nothing = Side(reason=reason)
    return [
        judge_gate(
            gate, nothing, nothing, query=_shown_query(gate, source, placeholders), at=_now()
        )
        for gate in gates
    ]


def time_budget(check: GateCheck) -> timedelta:
    """An upper bound on one check: every query slow, plus one query's retries and backoff."""
    backoff = sum(BACKOFF_S[: ATTEMPTS - 1])
    per_query = check.source.timeout.total_seconds()
    queries = sum(gate.queries_per_check for gate in check.gates)
    return timedelta(seconds=(queries + ATTEMPTS) * per_query + backoff)


def _check(gate: Gate, reader: _Reader, placeholders: dict[str, str], at: datetime) -> Verdict:
    try:
        query = reader.spec.render(gate, placeholders)
        targets = [placeholders["canary"]] if "canary" in placeholders else [""]
        if gate.compares:
            targets.append(placeholders["stable"])
    except KeyError as missing:
        nothing = Side(reason=f"placeholder ${missing.args[0]} has no value")
        return judge_gate(gate, nothing, nothing, query=gate.query, at=at)
    sides = [_measure(gate, reader, placeholders, target or None, at) for target in targets]
    return judge_gate(gate, sides[0], sides[1] if gate.compares else None, query=query, at=at)


def _measure(
    gate: Gate, reader: _Reader, placeholders: dict[str, str], target: str | None, at: datetime
) -> Side:
    """One version's data for one gate: its value (or points per step) and its requests."""
    if isinstance(gate, StatisticalGate):
        return _measure_steps(gate, reader, placeholders, target, at)
    reading = reader.instant(reader.spec.render(gate, placeholders, target=target))
    samples_query = reader.spec.render_samples(gate, placeholders, target=target)
    if samples_query is None:
        return Side(value=reading.value, reason=reading.reason)
    counted = reader.instant(samples_query)
    return Side(
        value=reading.value,
        reason=reading.reason,
        samples=counted.value,
        samples_reason=counted.reason,
    )


def _measure_steps(
    gate: StatisticalGate,
    reader: _Reader,
    placeholders: dict[str, str],
    target: str | None,
    at: datetime,
) -> Side:
    """A statistical gate's range: the gate's window up to now, one point per step."""
    step = gate.step
    start = at - gate.window + step
    query = reader.spec.render(gate, placeholders, target=target, window=step)
    series = reader.series(query, start, at, step.total_seconds())
    samples_query = reader.spec.render_samples(gate, placeholders, target=target, window=step)
    if samples_query is None:
        return Side(points=series.values, reason=series.reason)
    counted = reader.series(samples_query, start, at, step.total_seconds())
    if counted.values is None:
        return Side(points=series.values, reason=series.reason, samples_reason=counted.reason)
    samples = sum(v for v in counted.values if math.isfinite(v))
    if series.values is None or gate.test != "two-proportion":
        return Side(points=series.values, reason=series.reason, samples=samples)
    # Each rate is weighed by the request count of its own step.
    per_step = dict(zip(counted.times, counted.values, strict=True))
    pairs = [
        (value, per_step[time])
        for time, value in zip(series.times, series.values, strict=True)
        if time in per_step
    ]
    return Side(
        points=tuple(value for value, _ in pairs),
        counts=tuple(count for _, count in pairs),
        reason=series.reason,
        samples=samples,
    )


class _Reader:
    """Queries with the retry policy; once the source is found down, answers that at once."""

    def __init__(
        self, provider: MetricProvider, spec: MetricsSource, sleep: Callable[[float], None]
    ) -> None:
        self.provider = provider
        self.spec = spec
        self.source = spec.kind
        self.sleep = sleep
        self.down = ""

    def instant(self, promql: str) -> Reading:
        if self.down:
            return Reading(None, self.down)
        try:
            return self._retried(lambda: self.provider.query(promql))
        except MetricsUnavailable as error:
            self.down = f"{self.source} unreachable: {error}"
            return Reading(None, self.down)
        except MetricsError as error:
            return Reading(None, str(error))

    def series(self, promql: str, start: datetime, end: datetime, step_s: float) -> Series:
        if self.down:
            return Series(None, self.down)
        try:
            return self._retried(lambda: self.provider.query_range(promql, start, end, step_s))
        except MetricsUnavailable as error:
            self.down = f"{self.source} unreachable: {error}"
            return Series(None, self.down)
        except MetricsError as error:
            return Series(None, str(error))

    def _retried(self, run: Callable[[], T]) -> T:
        attempt = 1
        while True:
            try:
                return run()
            except MetricsTimeout:
                raise
            except MetricsUnavailable:
                if attempt >= ATTEMPTS:
                    raise
                self.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S)) - 1])
                attempt += 1


def _shown_query(gate: Gate, source: MetricsSource, placeholders: dict[str, str]) -> str:
    try:
        return source.render(gate, placeholders)
    except KeyError:
        return gate.query


def _now() -> datetime:
    return datetime.now(UTC)
