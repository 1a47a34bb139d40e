"""``kind: sequential`` gates: their plans, what they ask Prometheus, and their verdicts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from activities import gates
from activities.judge import Side, judge_gate
from activities.metrics import Reading, Series
from activities.metrics.prometheus import labelled_series_of
from plans import GateOutcome, PrometheusSource, SequentialGate, Verdict, gate_from, parse_plan
from workflows.rollout.checking import gate_check

VALUES = {"canary": "web-2", "stable": "web-1", "service": "shop", "backend": "shop"}
PROMETHEUS = PrometheusSource(url="http://p:9090")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BOUNDS = ("0.05", "0.1", "0.25", "+Inf")


def error_gate(**extra: Any) -> SequentialGate:
    gate = gate_from(name="errors", preset="demo-error-rate", kind="sequential", **extra)
    assert isinstance(gate, SequentialGate)
    return gate


def latency_gate(**extra: Any) -> SequentialGate:
    gate = gate_from(name="latency", preset="demo-p95-latency", kind="sequential", **extra)
    assert isinstance(gate, SequentialGate)
    return gate


# -- the plan ---------------------------------------------------------------------------------


def test_presets_fill_the_sequential_tests_and_act_on_the_first_fail() -> None:
    errors, latency = error_gate(), latency_gate()
    assert (errors.test, errors.factor, errors.failure_limit) == ("rate", 1.15, 1)
    assert latency.test == "latency"
    assert latency.query.startswith("sum by (le) (increase(demo_request_duration_seconds_bucket")
    assert latency.describe_threshold() == "<= stable x1.07 (latency, sequential, 98%)"


def test_old_kinds_keep_their_preset_defaults() -> None:
    statistical = gate_from(name="e", preset="demo-error-rate", kind="statistical")
    assert (statistical.kind, statistical.failure_limit) == ("statistical", 2)
    assert statistical.test == "two-proportion"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"query": "q"}, "a sequential gate needs test: rate"),
        ({"query": "q", "test": "rate"}, "test rate needs samples_query"),
        ({"query": "q", "test": "mann-whitney"}, "Input should be 'rate' or 'latency'"),
    ],
)
def test_validation_says_what_a_sequential_gate_needs(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        gate_from({"name": "g", "kind": "sequential", **fields})


def test_the_check_carries_the_stage_start_only_for_sequential_gates() -> None:
    plan = parse_plan(
        {
            "service": "shop",
            "stable": "web-1",
            "canary": "web-2",
            "router": {"kind": "haproxy", "runtime_api": "tcp://127.0.0.1:9999", "backend": "b"},
            "metrics": {"kind": "prometheus", "url": "http://p:9090"},
            "gates": [
                {"name": "errors", "preset": "demo-error-rate", "kind": "sequential"},
                {"name": "old", "preset": "demo-error-rate", "kind": "statistical"},
            ],
            "stages": [{"name": "one", "weight": 20, "bake": "10m"}],
        }
    )
    sequential, statistical = plan.gates
    assert gate_check(plan, [sequential], NOW).stage_started_at == NOW
    assert gate_check(plan, [statistical], NOW).stage_started_at is None
    # And the stage's planned span, within which the test is sharper.
    span = timedelta(minutes=10)
    assert gate_check(plan, [sequential], NOW, span).stage_span == span
    assert gate_check(plan, [statistical], NOW, span).stage_span is None


# -- what it asks -----------------------------------------------------------------------------


@dataclass
class Scripted:
    """Answers range queries by the version the query names; records the spans asked."""

    ranges: dict[str, list[float | None]] = field(default_factory=dict)  # None: no value
    buckets: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    spans: list[tuple[datetime, datetime, float]] = field(default_factory=list)

    def query(self, promql: str) -> Reading:
        return Reading(None, "no instant queries here")

    def query_range(self, promql: str, start: datetime, end: datetime, step_s: float) -> Series:
        self.spans.append((start, end, step_s))
        for key, values in self.ranges.items():
            if key in promql:
                # A range query leaves out the steps that have no value.
                kept = [(float(i), v) for i, v in enumerate(values) if v is not None]
                return Series(tuple(v for _, v in kept), times=tuple(t for t, _ in kept))
        return Series(None, "no data: the query matched no series")

    def query_range_by(
        self, promql: str, label: str, start: datetime, end: datetime, step_s: float
    ) -> Series:
        self.spans.append((start, end, step_s))
        for key, by_le in self.buckets.items():
            if key in promql:
                steps = len(next(iter(by_le.values())))
                return Series((), times=tuple(map(float, range(steps))), labelled=by_le)
        return Series(None, "no data: the query matched no series")

    def close(self) -> None:
        pass


def test_a_rate_gate_reads_everything_since_the_stage_began() -> None:
    steps = 30
    source = Scripted(
        ranges={
            'version="web-2",code=~"5..': [0.05] * steps,
            'increase(demo_requests_total{version="web-2"}': [1000.0] * steps,
            'version="web-1",code=~"5..': [0.01] * steps,
            'increase(demo_requests_total{version="web-1"}': [4000.0] * steps,
        }
    )
    started = datetime.now(UTC) - timedelta(minutes=5)
    (verdict,) = gates.evaluate(
        [error_gate()], source, VALUES, source=PROMETHEUS, started_at=started
    )
    first, last, step = source.spans[0]
    assert first == started + timedelta(seconds=10) and step == 10.0
    assert last - first > timedelta(minutes=4)
    assert verdict.outcome is GateOutcome.FAIL
    assert verdict.test == "sequential rate"
    assert verdict.effect == pytest.approx(5.0, rel=0.05)
    assert verdict.reason.startswith("rate x5")
    assert "since the stage began" in verdict.reason
    # min_samples counts the last window (2m = 12 steps of 1,000).
    assert verdict.canary_samples == 12_000


def test_steps_one_version_lacks_are_left_out_of_both() -> None:
    # The canary's first three steps have no value (it had not started to serve), and its
    # tenth had no request: the test compares the steps both versions have, by their time.
    steps = 30
    gap: list[float | None] = [None] * 3 + [1000.0] * (steps - 3)
    gap[10] = 0.0

    def judged(canary_counts: list[float | None], stable_counts: list[float | None]) -> Verdict:
        source = Scripted(
            ranges={
                'version="web-2",code=~"5..': [0.05 if c else None for c in canary_counts],
                'increase(demo_requests_total{version="web-2"}': canary_counts,
                'version="web-1",code=~"5..': [0.01 if c else None for c in stable_counts],
                'increase(demo_requests_total{version="web-1"}': stable_counts,
            }
        )
        started = datetime.now(UTC) - timedelta(minutes=5)
        (verdict,) = gates.evaluate(
            [error_gate()], source, VALUES, source=PROMETHEUS, started_at=started
        )
        return verdict

    uneven = judged(gap, [4000.0] * steps)
    assert uneven.outcome is GateOutcome.FAIL, uneven.reason
    # The same as if the stable had lacked those steps too.
    even = judged(gap, [None if c is None or c == 0 else 4000.0 for c in gap])
    assert uneven.effect == pytest.approx(even.effect)
    assert (uneven.effect_low, uneven.effect_high) == pytest.approx(
        (even.effect_low, even.effect_high)
    )
    # A latency test too: the canary's histogram lacks the stage's first step.
    histogram = (100.0, 300.0, 500.0, 100.0)
    bounds = (0.05, 0.1, 0.25, math.inf)
    canary = Side(
        bounds=bounds,
        histogram=(histogram,) * 19,
        times=tuple(float(t) for t in range(1, 20)),
        samples=12_000,
    )
    stable = Side(
        bounds=bounds,
        histogram=((400.0, 1200.0, 1500.0, 100.0),) * 20,
        times=tuple(float(t) for t in range(20)),
        samples=40_000,
    )
    verdict = judge_gate(latency_gate(), canary, stable)
    assert verdict.outcome is GateOutcome.FAIL, verdict.reason


def test_a_rate_gate_tests_the_looks_within_the_stages_span_more_sharply() -> None:
    steps = 30

    def judged(**stage: Any) -> Verdict:
        source = Scripted(
            ranges={
                'version="web-2",code=~"5..': [0.0144] * steps,
                'increase(demo_requests_total{version="web-2"}': [1000.0] * steps,
                'version="web-1",code=~"5..': [0.01] * steps,
                'increase(demo_requests_total{version="web-1"}': [4000.0] * steps,
            }
        )
        (verdict,) = gates.evaluate([error_gate()], source, VALUES, source=PROMETHEUS, **stage)
        return verdict

    started = datetime.now(UTC) - timedelta(minutes=5)
    at_its_end = judged(started_at=started, span=timedelta(minutes=6))
    early = judged(started_at=started, span=timedelta(minutes=50))
    open_ended = judged(started_at=started)
    assert at_its_end.p_value is not None and early.p_value is not None
    assert open_ended.p_value is not None
    assert at_its_end.p_value < open_ended.p_value < early.p_value


def test_a_long_stage_widens_the_step_to_stay_under_prometheus_points() -> None:
    source = Scripted()
    gates.evaluate(
        [error_gate()], source, VALUES, source=PROMETHEUS, started_at=NOW - timedelta(days=7)
    )
    assert all(step >= 70 for _, _, step in source.spans)


def _cumulative(per_bucket: list[float], steps: int) -> dict[str, list[float]]:
    running, out = 0.0, {}
    for le, count in zip(BOUNDS, per_bucket, strict=True):
        running += count
        out[le] = [running] * steps
    return out


def test_a_latency_gate_reads_buckets_by_le_and_judges_the_distribution() -> None:
    steps = 30
    source = Scripted(
        buckets={
            'version="web-2"': _cumulative([300, 400, 250, 50], steps),
            'version="web-1"': _cumulative([2000, 1500, 450, 50], steps),
        }
    )
    (verdict,) = gates.evaluate(
        [latency_gate()], source, VALUES, source=PROMETHEUS, started_at=NOW - timedelta(minutes=5)
    )
    assert verdict.outcome is GateOutcome.FAIL, verdict.reason
    assert verdict.effect is not None and verdict.effect > 1.06
    assert verdict.effect_low is not None and verdict.effect_low > 1.0
    assert "vs allowed +7.0%" in verdict.reason
    assert "bucket bound(s)" in verdict.reason


def test_a_source_without_bucket_reading_is_inconclusive() -> None:
    class NoBuckets:
        def query(self, promql: str) -> Reading:
            return Reading(None, "no data")

        def query_range(self, promql: str, start: datetime, end: datetime, step: float) -> Series:
            return Series(None, "no data")

        def close(self) -> None:
            pass

    (verdict,) = gates.evaluate([latency_gate()], NoBuckets(), VALUES, source=PROMETHEUS)
    assert verdict.outcome is GateOutcome.INCONCLUSIVE
    assert "cannot read a histogram's buckets" in verdict.reason


def test_prometheus_answers_are_keyed_by_le() -> None:
    result = [
        {"metric": {"le": "0.1"}, "values": [[1, "3"], [2, "5"]]},
        {"metric": {"le": "+Inf"}, "values": [[1, "4"], [3, "9"]]},
    ]
    found = labelled_series_of(result, "le")
    assert found.times == (1.0, 2.0, 3.0)
    assert found.labelled is not None
    assert found.labelled["0.1"][:2] == (3.0, 5.0) and math.isnan(found.labelled["0.1"][2])
    unlabelled = labelled_series_of([{"metric": {}, "values": [[1, "3"]]}], "le")
    assert unlabelled.labelled is None and "sum by (le)" in unlabelled.reason


# -- the verdict ------------------------------------------------------------------------------


def test_the_verdict_reads_in_the_metrics_units_with_an_interval() -> None:
    canary = Side(
        bounds=(0.05, 0.1, 0.25, math.inf),
        histogram=tuple((100.0, 300.0, 500.0, 100.0) for _ in range(20)),
        samples=12_000,
    )
    stable = Side(
        bounds=(0.05, 0.1, 0.25, math.inf),
        histogram=tuple((400.0, 1200.0, 1500.0, 100.0) for _ in range(20)),
        samples=40_000,
    )
    verdict = judge_gate(latency_gate(), canary, stable)
    assert verdict.outcome is GateOutcome.FAIL
    words = verdict.reason
    # "p53.1 +x% [+a%, +b%] vs allowed +7.0% (canary ... vs stable 100ms)"
    assert words.startswith("p") and "% [" in words and "vs allowed +7.0%" in words
    assert verdict.effect_low is not None and verdict.effect_high is not None
    assert verdict.effect_low < verdict.effect < verdict.effect_high  # type: ignore[operator]


def test_thin_data_is_inconclusive_never_a_pass() -> None:
    thin = Side(bounds=(0.1, math.inf), histogram=((1.0, 0.0),), samples=1)
    verdict = judge_gate(latency_gate(), thin, thin)
    assert verdict.outcome is GateOutcome.INCONCLUSIVE
    assert "below min_samples 100" in verdict.reason
    no_counts = judge_gate(error_gate(), Side(points=(0.1,), samples=500), Side(points=(0.1,)))
    assert no_counts.outcome is GateOutcome.INCONCLUSIVE


# -- native histograms ------------------------------------------------------------------------


def _native(at: float, buckets: list[tuple[float, float, float]]) -> list[object]:
    """One point of a native histogram as Prometheus' API answers it."""
    total = sum(count for _, _, count in buckets)
    shown = [[0, repr(low), repr(high), repr(count)] for low, high, count in buckets]
    return [at, {"count": repr(total), "sum": "1.0", "buckets": shown}]


def test_a_native_histogram_reads_as_buckets_at_its_bounds() -> None:
    points = [
        _native(1, [(0.0625, 0.125, 5), (0.25, 0.5, 2)]),
        _native(2, [(0.125, 0.25, 4)]),  # an empty bucket is left out
    ]
    found = labelled_series_of([{"metric": {}, "histograms": points}], "le")
    assert found.times == (1.0, 2.0)
    assert found.labelled == {
        "0.125": (5.0, 0.0),
        "0.25": (5.0, 4.0),
        "0.5": (7.0, 4.0),
        "+Inf": (7.0, 4.0),
    }


def test_sides_with_different_sparse_buckets_are_judged_on_their_union() -> None:
    canary = Side(
        bounds=(0.125, 0.25, 0.5, math.inf),
        histogram=tuple((100.0, 300.0, 600.0, 0.0) for _ in range(20)),
        samples=20_000,
    )
    stable = Side(
        bounds=(0.0625, 0.125, 0.25, math.inf),
        histogram=tuple((500.0, 1500.0, 2000.0, 0.0) for _ in range(20)),
        samples=80_000,
    )
    verdict = judge_gate(latency_gate(), canary, stable)
    assert verdict.outcome is GateOutcome.FAIL, verdict.reason
    assert "bucket bound(s)" in verdict.reason
