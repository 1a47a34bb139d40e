"""Checking a stage's gates: for each gate in turn, measure what its kind needs, then judge it.

A threshold gate reads the canary; relative and statistical gates read the canary and the
stable through the same query, ``$target`` filled with each in turn, and every gate with a
``samples_query`` also counts each side's requests (``activities.judge``). The retry
policy, and the rule that a source found down makes every later gate of the check
inconclusive at once, live in ``activities.judge.reader``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from activities import judge
from activities.judge.evidence import with_evidence
from activities.judge.measurements import Measurements, Side
from activities.judge.reader import ATTEMPTS, BACKOFF_S, Reader, time_budget
from activities.metrics import MetricProvider
from plans import Gate, MetricsSource, Verdict


def evaluate(
    gates: Sequence[Gate],
    provider: MetricProvider,
    placeholders: dict[str, str],
    *,
    source: MetricsSource,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[], None] = lambda: None,
    started_at: datetime | None = None,
    span: timedelta | None = None,
) -> list[Verdict]:
    """One verdict per gate, in order; ``progress`` is called after each (for heartbeats).

    ``started_at`` is when the stage began: sequential gates read everything since, and
    test the looks within ``span``, its planned bake, at most of their level.
    """
    reader = Reader(provider, source, placeholders, sleep, started_at, span)
    verdicts: list[Verdict] = []
    for gate in gates:
        measured = judge.measure(gate, reader, _now())
        # What the stage has against what it needs: for the rollout, not for the benchmark.
        verdicts.append(with_evidence(gate, measured, judge.judge(gate, measured)))
        progress()
    return verdicts


def inconclusive(
    gates: Sequence[Gate], source: MetricsSource, placeholders: dict[str, str], reason: str
) -> list[Verdict]:
    """Every gate INCONCLUSIVE for one reason (the source could not even be set up)."""
    nothing = Side(reason=reason)
    return [
        judge.judge(
            gate,
            Measurements(
                canary=nothing, stable=nothing, query=_shown(gate, source, placeholders), at=_now()
            ),
        )
        for gate in gates
    ]


def _shown(gate: Gate, source: MetricsSource, placeholders: dict[str, str]) -> str:
    try:
        return source.render(gate.query, placeholders, window=gate.window)
    except KeyError:
        return gate.query


def _now() -> datetime:
    return datetime.now(UTC)


__all__ = ["ATTEMPTS", "BACKOFF_S", "evaluate", "inconclusive", "time_budget"]
