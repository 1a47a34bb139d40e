"""The report's baseline table: each sequential gate's change with its interval, against its
allowance or, for a gate asking for a gain, its target."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from activities.report import series
from activities.report.model import Report
from activities.report.render import write
from plans import GateOutcome, Verdict, parse_plan

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PLAN = parse_plan(
    {
        "service": "shop",
        "stable": "web-1",
        "canary": "web-2",
        "router": {"kind": "haproxy", "runtime_api": "tcp://127.0.0.1:9999", "backend": "b"},
        "metrics": {"kind": "prometheus", "url": "http://p:9090"},
        "gates": [
            {
                "name": "errors-down",
                "preset": "demo-error-rate",
                "kind": "sequential",
                "direction": "improve",
                "by": "5%",
            },
            {"name": "latency", "preset": "demo-p95-latency", "kind": "sequential"},
            {"name": "old", "preset": "demo-error-rate", "kind": "relative"},
        ],
        "stages": [{"name": "one", "weight": 20, "bake": "30m"}],
    }
)


def verdict(gate: str, outcome: GateOutcome, **numbers: float) -> Verdict:
    return Verdict(gate=gate, outcome=outcome, at=AT, reason="...", **numbers)


CHECKS = [
    (
        AT,
        [
            verdict(
                "errors-down",
                GateOutcome.INCONCLUSIVE,
                canary=0.0097,
                stable=0.01,
                effect=0.97,
                effect_low=0.93,
                effect_high=1.01,
            ),
            verdict(
                "latency",
                GateOutcome.PASS,
                canary=0.2,
                stable=0.19,
                effect=1.02,
                effect_low=0.99,
                effect_high=1.05,
            ),
            verdict("old", GateOutcome.PASS, canary=0.01, stable=0.01),
        ],
    )
]


def test_the_baseline_shows_each_change_with_its_interval_and_target(tmp_path: Path) -> None:
    gates = series.gates(PLAN, CHECKS)
    rows = {row.metric: row for row in series.baseline(PLAN, gates)}
    assert (rows["errors-down"].effect, rows["errors-down"].target) == (
        "x0.97 [x0.93, x1.01]",
        "target x0.95",
    )
    assert rows["errors-down"].met is None  # the gain is not shown yet
    assert (rows["latency"].effect, rows["latency"].target) == (
        "+2.0% [-1.0%, +5.0%]",
        "allowed +7.0%",
    )
    assert (rows["old"].effect, rows["old"].target) == ("", "")
    # The plot's limit line is the target for a gain: the stable's 1% x0.95.
    assert series.limit_of(PLAN.gates[0], 0.01) == pytest.approx(0.0095)

    report = Report(
        service="shop",
        version="v2",
        workflow_id="rollout-shop",
        run_ids=["r1"],
        state="paused",
        started_at=AT,
        ended_at=AT + timedelta(minutes=30),
        gates=gates,
        baseline=list(rows.values()),
    )
    markdown = write(report, tmp_path, ("md",))["md"].read_text()
    assert "| x0.97 [x0.93, x1.01] vs target x0.95 |" in markdown
    assert "| +2.0% [-1.0%, +5.0%] vs allowed +7.0% |" in markdown
    assert "| n/a |" in markdown  # the relative gate has no interval
