"""``kind: sequential``: everything since the stage began, tested so every look is valid.

``test: rate`` reads the ratio query and the request count per step (as two-proportion
does); ``test: latency`` reads the histogram's bucket counts per step, one series per
``le``. Both read from the stage's start (``Reader.started_at``; without one, the gate's
window), with the step widened on long stages so a range query stays under Prometheus'
11,000 points. The verdict says the effect in the metric's units with its interval:
``p95 +11.8% [+7.2%, +16.4%] vs allowed +5%``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from activities import anytime, anytime_latency, restarts
from activities.judge import improvement
from activities.judge.measurements import Measurements, Side, rates_with_counts
from activities.judge.reader import Reader
from activities.judge.verdicts import (
    Inconclusive,
    enough_samples,
    stable_of,
    steps_of_hits,
)
from plans import GateOutcome, SequentialGate, Verdict

MAX_POINTS = 10_000

T = TypeVar("T")


def measure(gate: SequentialGate, reader: Reader, at: datetime) -> Measurements:
    """Each version's steps since the stage began, the canary's first."""
    start = reader.started_at or at - gate.window
    step_s = gate.step.total_seconds()
    step_s = max(step_s, math.ceil((at - start).total_seconds() / MAX_POINTS / step_s) * step_s)
    canary, stable = reader.value("canary"), reader.value("stable")
    read = _histogram if gate.test == "latency" else _rates
    elapsed = None
    if reader.started_at is not None and reader.span:
        elapsed = (at - reader.started_at) / reader.span
    return Measurements(
        canary=read(gate, reader, canary, start, at, step_s),
        stable=read(gate, reader, stable, start, at, step_s),
        elapsed=elapsed,
    )


def _rates(
    gate: SequentialGate, reader: Reader, target: str, start: datetime, at: datetime, step_s: float
) -> Side:
    step = timedelta(seconds=step_s)
    first = min(start + step, at)  # a stage younger than a step: one point, now
    series = reader.series(reader.query(gate, target=target, window=step), first, at, step_s)
    samples_query = reader.samples_query(gate, target=target, window=step)
    assert samples_query is not None  # validation asks a rate test for one
    counted = reader.series(samples_query, first, at, step_s)
    if series.values is None or counted.values is None:
        return Side(reason=series.reason, samples_reason=counted.reason)
    stepped = rates_with_counts(series, counted)
    counts = stepped.counts or ()
    return Side(
        points=stepped.points,
        counts=counts,
        times=stepped.times,
        samples=_recent(gate, list(counts), step_s),
    )


def _histogram(
    gate: SequentialGate, reader: Reader, target: str, start: datetime, at: datetime, step_s: float
) -> Side:
    step = timedelta(seconds=step_s)
    query = reader.query(gate, target=target, window=step)
    series = reader.series_by(query, "le", min(start + step, at), at, step_s)
    if series.labelled is None:
        return Side(reason=series.reason)
    try:
        bounds = sorted(series.labelled, key=float)
    except ValueError:
        return Side(reason="the le labels are not numbers")
    # Prometheus' buckets are cumulative: each bucket's own count is the difference.
    steps, times = [], []
    for i, time in enumerate(series.times):
        cumulative = [series.labelled[b][i] for b in bounds]
        if not all(math.isfinite(c) for c in cumulative):
            continue
        own = [max(c - p, 0.0) for c, p in zip(cumulative, [0.0, *cumulative[:-1]], strict=True)]
        steps.append(tuple(own))
        times.append(time)
    edges = tuple(float(b) for b in bounds)
    return Side(
        bounds=edges,
        histogram=tuple(steps),
        times=tuple(times),
        samples=_recent(gate, [sum(s) for s in steps], step_s),
    )


def _recent(gate: SequentialGate, per_step: list[float], step_s: float) -> float:
    """The requests of the last window (what ``min_samples`` is held against)."""
    last = max(1, int(gate.window.total_seconds() // step_s))
    return float(sum(c for c in per_step[-last:] if math.isfinite(c)))


def judge(gate: SequentialGate, m: Measurements, base: dict[str, Any]) -> Verdict:
    """Fail when the always-valid p-value is below 1 - confidence.

    With ``direction: improve``, pass only once the gain is shown at that confidence
    (``activities.judge.improvement``), inconclusive until then; fail as ever when the
    canary is confidently worse than its allowance.
    """
    base["test"] = f"sequential {gate.test}"
    stable = stable_of(gate, m)
    alpha = 1 - gate.confidence
    gain = gate.improvement()
    if gate.test == "latency":
        c_steps, bounds = _steps(gate, m.canary, "canary: ")
        s_steps, s_bounds = _steps(gate, stable, "stable: ")
        c_steps, s_steps = paired(m.canary.times, c_steps, stable.times, s_steps)
        if bounds != s_bounds:
            # Native histograms leave empty buckets out: read both at every bound either has.
            bounds = tuple(sorted(set(bounds) | set(s_bounds)))
            c_steps = _rebinned(c_steps, m.canary.bounds or (), bounds)
            s_steps = _rebinned(s_steps, stable.bounds or (), bounds)

        tested: Callable[..., anytime.Sequential] = anytime_latency.distribution_test

        def data(part: slice) -> tuple[Any, ...]:
            return c_steps[part], s_steps[part], bounds

        def counted(first: int) -> tuple[float, float]:
            return sum(map(sum, c_steps[first:])), sum(map(sum, s_steps[first:]))

        steps = len(c_steps)
    else:
        c_hits, c_n, s_hits, s_n = _paired_hits(gate, m.canary, stable)
        tested = anytime.rate_test

        def data(part: slice) -> tuple[Any, ...]:
            return c_hits[part], c_n[part], s_hits[part], s_n[part]

        def counted(first: int) -> tuple[float, float]:
            return sum(c_n[first:]), sum(s_n[first:])

        steps = len(c_n)

    def run(
        part: slice,
        factor: float,
        margin: float,
        direction: str,
        level: float,
        elapsed: float | None,
        within: float = anytime.WITHIN_SHARE,
        bounded: bool = True,
    ) -> anytime.Sequential:
        """The gate's test over ``part`` of the steps (``restarts.Run``)."""
        return tested(
            *data(part),
            factor=factor,
            margin=margin,
            direction=direction,
            alpha=level,
            elapsed=elapsed,
            within_share=within,
            bounded=bounded,
        )

    n_c, n_s = counted(0)

    def test(direction: str, factor: float, margin: float) -> anytime.Sequential:
        return run(slice(None), factor, margin, direction, alpha, m.elapsed)

    try:
        if gain is not None:
            found = improvement.judged(
                test,
                gain,
                harm=gate.harm_direction,
                factor=gate.factor,
                margin=gate.margin,
                alpha=alpha,
            )
            return improvement_verdict(gate, found, base, n_c, n_s)
        harm = restarts.judged(
            run,
            steps,
            m.elapsed,
            alpha,
            factor=gate.factor,
            margin=gate.margin,
            direction=gate.direction,
        )
        return verdict_of(gate, harm, base, *counted(_first_of(harm, steps, m.elapsed)))
    except anytime_latency.OneBucket as why:
        if n_c + n_s < 2 * anytime.TAIL_COUNT or gain is not None:
            # Nothing the buckets can show moved: no harm, and no gain either.
            raise Inconclusive(str(why)) from None
        # Plenty of requests, all in one bucket: nothing the buckets can show moved.
        return Verdict(outcome=GateOutcome.PASS, reason=str(why), **base)
    except ValueError as why:
        raise Inconclusive(str(why)) from None


def improvement_verdict(
    gate: SequentialGate,
    found: improvement.Improved,
    base: dict[str, Any],
    n_c: float,
    n_s: float,
) -> Verdict:
    """Pass when the gain is shown, inconclusive until it is, fail when the canary is worse.

    ``improvement of 5% not shown: rate x0.97 [x0.93, x1.01] vs target x0.95 (...)``.
    """
    if found.outcome == "worse":
        return verdict_of(gate, found.found, base, n_c, n_s)
    shown = found.outcome == "shown"
    f = found.found
    base |= {"value": f.canary, "canary": f.canary, "stable": f.stable}
    change = gate.describe_change(f.ratio, f.low, f.high)
    said = f"improvement of {gate.by} {found.outcome}: {f.name} {change}"
    said += f" vs {gate.describe_goal(f.stable)}"
    outcome = GateOutcome.PASS if shown else GateOutcome.INCONCLUSIVE
    return _verdict(gate, f, outcome, said, shown, base, n_c, n_s)


def _first_of(found: anytime.Sequential, steps: int, elapsed: float | None) -> int:
    """The index of the first step ``found`` read (0 for the whole stage)."""
    return next(w.first for w in restarts.windows(steps, elapsed) if w.since == found.since)


def verdict_of(
    gate: SequentialGate, found: anytime.Sequential, base: dict[str, Any], n_c: float, n_s: float
) -> Verdict:
    """The verdict of a sequential test, its effect in words and numbers."""
    alpha = 1 - gate.confidence
    failed = found.p_value < alpha
    base |= {"value": found.canary, "canary": found.canary, "stable": found.stable}
    outcome = GateOutcome.FAIL if failed else GateOutcome.PASS
    return _verdict(gate, found, outcome, describe(gate, found), failed, base, n_c, n_s)


def _verdict(
    gate: SequentialGate,
    found: anytime.Sequential,
    outcome: GateOutcome,
    said: str,
    below: bool,
    base: dict[str, Any],
    n_c: float,
    n_s: float,
) -> Verdict:
    """A verdict from a test's finding, its numbers and ``said`` of it, then in words both
    sides, the p-value against alpha (``below`` it or not) and the requests."""
    why = (
        f"{said} (canary {gate.show(found.canary)} vs stable {gate.show(found.stable)}):"
        f" p={found.p_value:.2g} {'<' if below else '>='} {1 - gate.confidence:.2g}"
        f" at any look, {n_c:,.0f} vs {n_s:,.0f} requests since {_began(found)}"
    )
    if found.note:
        why += f"; {found.note}"
    return Verdict(
        outcome=outcome,
        reason=why,
        statistic=found.statistic,
        p_value=found.p_value,
        effect=found.ratio,
        effect_low=found.low,
        effect_high=found.high,
        **base,
    )


def _began(found: anytime.Sequential) -> str:
    """Where the test's data began: the stage's start, or where a test began again."""
    if not found.since:
        return "the stage began"
    return f"{found.since:.0%} of the planned bake, where the test began again"


def describe(gate: SequentialGate, found: anytime.Sequential) -> str:
    """``p95 +11.8% [+7.2%, +16.4%] vs allowed +5%`` or ``error rate x1.5 [x1.3, x1.7] ...``."""
    if found.name == "rate":
        shown = f"x{found.ratio:.3g} [x{found.low:.3g}, x{found.high:.3g}]"
        allowed = f"x{gate.factor:g}" + (f"+{gate.show(gate.margin)}" if gate.margin else "")
        return f"rate {shown} vs allowed {allowed}"

    def pct(r: float) -> str:
        return f"{(r - 1) * 100:+.1f}%"

    allowed = pct(gate.factor) + (f"+{gate.show(gate.margin)}" if gate.margin else "")
    if gate.direction == "decrease":
        allowed = pct(1 / gate.factor)
    interval = f"[{pct(found.low)}, {pct(found.high)}]"
    return f"{found.name} {pct(found.ratio)} {interval} vs allowed {allowed}"


def _steps(
    gate: SequentialGate, side: Side, who: str
) -> tuple[list[tuple[float, ...]], tuple[float, ...]]:
    if side.histogram is None or side.bounds is None:
        raise Inconclusive(f"{who}{side.reason or 'no histogram'}")
    enough_samples(gate, side, who)
    if not side.histogram or sum(map(sum, side.histogram)) <= 0:
        raise Inconclusive(f"{who}no requests since the stage began")
    return list(side.histogram), side.bounds


def _rebinned(
    steps: list[tuple[float, ...]], own: tuple[float, ...], bounds: tuple[float, ...]
) -> list[tuple[float, ...]]:
    """Counts per step over ``bounds``: each own bucket's count at its own upper bound."""
    where = [bounds.index(b) for b in own]
    out = []
    for step in steps:
        counts = [0.0] * len(bounds)
        for index, count in zip(where, step, strict=True):
            counts[index] += count
        out.append(tuple(counts))
    return out


def paired(
    c_times: tuple[float, ...] | None,
    canary: list[T],
    s_times: tuple[float, ...] | None,
    stable: list[T],
) -> tuple[list[T], list[T]]:
    """The two versions' steps at the same times, in order: the tests compare them step by
    step. A range query leaves out a step with no value (a version that had not started,
    a scrape that was missed), so steps are matched by their times when both sides have
    them; otherwise the latest steps of each are matched from the end."""
    if c_times is not None and s_times is not None:
        at = dict(zip(s_times, stable, strict=True))
        both = [(step, at[time]) for time, step in zip(c_times, canary, strict=True) if time in at]
        return [c for c, _ in both], [s for _, s in both]
    n = min(len(canary), len(stable))
    return canary[len(canary) - n :], stable[len(stable) - n :]


def _paired_hits(
    gate: SequentialGate, canary: Side, stable: Side
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Hits and requests per step of both versions, in the steps where both had requests."""
    c_steps = _usable(gate, canary, "canary: ")
    s_steps = _usable(gate, stable, "stable: ")
    c_pairs, s_pairs = paired(canary.times, c_steps, stable.times, s_steps)
    both = [(c, s) for c, s in zip(c_pairs, s_pairs, strict=True) if c and s]
    if not both:
        raise Inconclusive("no step where both versions had requests since the stage began")
    return (
        [c[0] for c, _ in both],
        [c[1] for c, _ in both],
        [s[0] for _, s in both],
        [s[1] for _, s in both],
    )


def _usable(gate: SequentialGate, side: Side, who: str) -> list[tuple[float, float] | None]:
    """Per step (as ``side.times`` has them), its hits and requests, or None when it had no
    requests or no rate; inconclusive as ``steps_of_hits`` says."""
    steps = steps_of_hits(gate, side, who, "a rate test")
    if not any(steps):
        raise Inconclusive(f"{who}no step with requests since the stage began")
    return steps
