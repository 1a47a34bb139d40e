"""Evaluating a stage's gates: query each, judge each, and keep one bad query from hiding the rest.

Retry policy: a query that could not reach the source is retried here a few times with
a short backoff (a restarting Prometheus, a proxy's 502). If the source stays down, that
gate and every later gate in the same check are reported INCONCLUSIVE with the reason,
without waiting on the source again. The activity itself then succeeds, so the workflow
sees the outage as data and applies its own policy at the next check; Temporal retries
would only delay that. Timeouts are not retried: the source has had its full budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from activities.errors import MetricsError, MetricsTimeout, MetricsUnavailable
from activities.judge import judge
from activities.metrics import MetricProvider, Reading
from plans import Gate, GateCheck, Verdict

ATTEMPTS = 3
BACKOFF_S: tuple[float, ...] = (0.25, 0.75)


def evaluate(
    gates: Sequence[Gate],
    provider: MetricProvider,
    placeholders: dict[str, str],
    *,
    source: str = "prometheus",
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[], None] = lambda: None,
) -> list[Verdict]:
    """One verdict per gate, in order; ``progress`` is called after each (for heartbeats)."""
    verdicts: list[Verdict] = []
    down = ""  # set once the source is found unreachable: later gates do not wait on it
    for gate in gates:
        try:
            query = gate.render(placeholders)
        except KeyError as missing:
            query, reading = (
                gate.query,
                Reading(None, f"placeholder ${missing.args[0]} has no value"),
            )
        else:
            if down:
                reading = Reading(None, down)
            else:
                try:
                    reading = _query(provider, query, sleep)
                except MetricsUnavailable as error:
                    down = f"{source} unreachable: {error}"
                    reading = Reading(None, down)
                except MetricsError as error:
                    reading = Reading(None, str(error))
        verdicts.append(judge(gate, reading.value, reading.reason, query, _now()))
        progress()
    return verdicts


def inconclusive(gates: Sequence[Gate], placeholders: dict[str, str], reason: str) -> list[Verdict]:
    """Every gate INCONCLUSIVE for one reason (the source could not even be set up)."""
    verdicts = []
    for gate in gates:
        try:
            query = gate.render(placeholders)
        except KeyError:
            query = gate.query
        verdicts.append(judge(gate, None, reason, query, _now()))
    return verdicts


def time_budget(check: GateCheck) -> timedelta:
    """An upper bound on one check: every gate slow, plus one gate's retries and backoff."""
    backoff = sum(BACKOFF_S[: ATTEMPTS - 1])
    per_query = check.source.timeout.total_seconds()
    return timedelta(seconds=(len(check.gates) + ATTEMPTS) * per_query + backoff)


def _query(provider: MetricProvider, query: str, sleep: Callable[[float], None]) -> Reading:
    attempt = 1
    while True:
        try:
            return provider.query(query)
        except MetricsTimeout:
            raise
        except MetricsUnavailable:
            if attempt >= ATTEMPTS:
                raise
            sleep(BACKOFF_S[min(attempt, len(BACKOFF_S)) - 1])
            attempt += 1


def _now() -> datetime:
    return datetime.now(UTC)
