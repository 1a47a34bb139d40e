"""What a check measured for one gate, as data: values, points, counts and reasons per version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from activities.metrics.reading import Series


@dataclass(frozen=True)
class Side:
    """What one version's queries gave in one check.

    ``value`` is the instant query's number (None when there is none, and ``reason`` says
    why); statistical gates have ``points`` instead, the range query's value per step, and
    for rates ``counts``, the requests per step aligned with them. ``samples`` is the
    request count of the window (None when unknown, and ``samples_reason`` says why).
    Latency tests read a histogram: ``bounds``, its buckets' upper bounds (the last may be
    +Inf), and ``histogram``, per step the count in each bucket (not cumulative). ``times``
    are the steps' timestamps (of ``points`` or ``histogram``) when a range query gave them:
    a step with no value is left out of its answer, so two versions' steps are matched by
    time, not by position.
    """

    value: float | None = None
    reason: str = ""
    samples: float | None = None
    samples_reason: str = ""
    points: tuple[float, ...] | None = None
    counts: tuple[float, ...] | None = None
    bounds: tuple[float, ...] | None = None
    histogram: tuple[tuple[float, ...], ...] | None = None
    times: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Measurements:
    """Everything a gate's judge reads: the canary's side, the stable's when the gate compares.

    ``query`` is the canary's query as it was run, shown beside the verdict; ``elapsed``
    the share of the stage's planned bake that had passed at the check (None without a
    planned end), which sequential tests use.
    """

    canary: Side
    stable: Side | None = None
    query: str = ""
    at: datetime | None = None
    elapsed: float | None = None


def rates_with_counts(rates: Series, counts: Series) -> Side:
    """Each step's rate and the request count of that same step (``points``, ``counts``,
    ``times``), for the steps both have."""
    per_step = dict(zip(counts.times, counts.values or (), strict=True))
    steps = [
        (time, value, per_step[time])
        for time, value in zip(rates.times, rates.values or (), strict=True)
        if time in per_step
    ]
    return Side(
        points=tuple(v for _, v, _ in steps),
        counts=tuple(c for _, _, c in steps),
        times=tuple(t for t, _, _ in steps),
    )
