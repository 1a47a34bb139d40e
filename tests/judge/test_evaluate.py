"""What the gate check asks the metrics source, and what it makes of the answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from activities import gates
from activities.errors import MetricsUnavailable
from activities.metrics import Reading, Series
from plans import Gate, GateCheck, GateOutcome, PrometheusSource, gate_from

VALUES = {"canary": "web-2", "stable": "web-1", "service": "shop", "backend": "shop"}
RATIO = 'sum(rate(e{s="$target"}[$window])) / sum(rate(a{s="$target"}[$window]))'
COUNT = 'sum(increase(a{s="$target"}[$window]))'
PROMETHEUS = PrometheusSource(url="http://p:9090")


@dataclass
class Scripted:
    """A metrics source that answers from a table and records every question."""

    instant: dict[str, float] = field(default_factory=dict)
    ranges: dict[str, list[float]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)
    spans: list[tuple[float, float]] = field(default_factory=list)
    down: bool = False

    def query(self, promql: str) -> Reading:
        self.asked.append(promql)
        if self.down:
            raise MetricsUnavailable("cannot connect to http://p:9090: Connection refused")
        if promql not in self.instant:
            return Reading(None, "no data: the query matched no series")
        return Reading(self.instant[promql])

    def query_range(self, promql: str, start: datetime, end: datetime, step_s: float) -> Series:
        self.asked.append(promql)
        self.spans.append(((end - start).total_seconds(), step_s))
        values = self.ranges.get(promql)
        if values is None:
            return Series(None, "no data: the query matched no series")
        return Series(tuple(values), times=tuple(float(i) for i in range(len(values))))

    def close(self) -> None:
        pass


def ratio(server: str, window: str) -> str:
    return f'sum(rate(e{{s="{server}"}}[{window}])) / sum(rate(a{{s="{server}"}}[{window}]))'


def count(server: str, window: str) -> str:
    return f'sum(increase(a{{s="{server}"}}[{window}]))'


def relative(**extra: Any) -> Gate:
    data = {"name": "r", "kind": "relative", "query": RATIO, "samples_query": COUNT}
    return gate_from(data | {"factor": 1.5, "margin": 0.001, "min_samples": 200} | extra)


def test_a_relative_gate_asks_for_both_versions_with_their_counts() -> None:
    source = Scripted(
        instant={
            ratio("web-2", "1m"): 0.041,
            count("web-2", "1m"): 6000,
            ratio("web-1", "1m"): 0.002,
            count("web-1", "1m"): 24000,
        }
    )
    (verdict,) = gates.evaluate([relative()], source, VALUES, source=PROMETHEUS)
    assert source.asked == [
        ratio("web-2", "1m"),
        count("web-2", "1m"),
        ratio("web-1", "1m"),
        count("web-1", "1m"),
    ]
    assert verdict.outcome is GateOutcome.FAIL
    assert verdict.query == ratio("web-2", "1m")
    assert (verdict.canary, verdict.stable, verdict.stable_samples) == (0.041, 0.002, 24000)


def test_a_stable_without_series_makes_the_relative_gate_inconclusive() -> None:
    source = Scripted(instant={ratio("web-2", "1m"): 0.0, count("web-2", "1m"): 6000})
    (verdict,) = gates.evaluate([relative()], source, VALUES, source=PROMETHEUS)
    assert verdict.outcome is GateOutcome.INCONCLUSIVE
    assert verdict.reason == "stable: no data: the query matched no series"


def test_a_statistical_gate_reads_the_window_in_steps() -> None:
    gate = gate_from(
        {
            "name": "s",
            "kind": "statistical",
            "test": "two-proportion",
            "query": RATIO,
            "samples_query": COUNT,
            "window": "1m",
            "step": "15s",
        }
    )
    source = Scripted(
        ranges={
            ratio("web-2", "15s"): [0.05, 0.05, 0.05, 0.05],
            count("web-2", "15s"): [1000, 1000, 1000, 1000],
            ratio("web-1", "15s"): [0.01, 0.01, 0.01, 0.01],
            count("web-1", "15s"): [4000, 4000, 4000, 4000],
        }
    )
    (verdict,) = gates.evaluate([gate], source, VALUES, source=PROMETHEUS)
    # Four points of 15s each: the range starts three steps before its end.
    assert source.spans == [(45.0, 15.0)] * 4
    assert verdict.outcome is GateOutcome.FAIL
    assert (verdict.canary_samples, verdict.stable_samples) == (4000, 16000)
    assert verdict.p_value is not None and verdict.p_value < 1e-20


def test_a_mann_whitney_gate_reads_its_points() -> None:
    gate = gate_from(name="m", kind="statistical", test="mann-whitney", query="p95{v='$target'}")
    source = Scripted(
        ranges={
            "p95{v='web-2'}": [0.3, 0.31, 0.32, 0.33, 0.34, 0.35],
            "p95{v='web-1'}": [0.1, 0.11, 0.12, 0.13, 0.14, 0.15],
        }
    )
    (verdict,) = gates.evaluate([gate], source, VALUES, source=PROMETHEUS)
    assert source.spans == [(50.0, 10.0)] * 2
    assert verdict.outcome is GateOutcome.FAIL
    assert verdict.statistic == 36


def test_an_unreachable_source_is_asked_once_per_attempt_then_never_again() -> None:
    source = Scripted(down=True)
    slept: list[float] = []
    verdicts = gates.evaluate(
        [relative(), relative(name="again")], source, VALUES, source=PROMETHEUS, sleep=slept.append
    )
    assert len(source.asked) == gates.ATTEMPTS
    assert [v.outcome for v in verdicts] == [GateOutcome.INCONCLUSIVE] * 2
    assert verdicts[1].reason.startswith("canary: prometheus unreachable: cannot connect")


def test_a_missing_stable_name_is_inconclusive_with_the_placeholder() -> None:
    (verdict,) = gates.evaluate([relative()], Scripted(), {"canary": "web-2"}, source=PROMETHEUS)
    assert verdict.reason == "canary: placeholder $stable has no value"


def test_the_time_budget_counts_every_query() -> None:
    check = GateCheck(
        source=PrometheusSource(url="http://p:9090", timeout=timedelta(seconds=10)),
        gates=[relative(), gate_from(name="t", query="up", max=1)],
        placeholders=VALUES,
    )
    assert gates.time_budget(check).total_seconds() == (4 + 1 + gates.ATTEMPTS) * 10 + 1.0
