"""`rollout validate --traffic` / `--live` and the evidence `rollout status` shows per gate."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console

from activities import power, power_plan
from activities.judge.evidence import with_evidence
from activities.judge.measurements import Measurements, Side
from plans import GateOutcome, RolloutState, RolloutStatus, Verdict, gate_from, parse_plan
from starter.render import evidence_text, verdict_table
from tests.json_schemas import check
from tests.unit.test_cli import VALID_PLAN, no_temporal, run, write_plan  # noqa: F401

LATENCY_QUERY = 'sum by (le) (increase(latency_bucket{server="$target"}[$window]))'
PLAN: dict[str, Any] = {
    **copy.deepcopy(VALID_PLAN),
    "gates": [
        {"name": "errors", "preset": "demo-error-rate", "kind": "sequential"},
        {"name": "latency", "kind": "sequential", "test": "latency", "query": LATENCY_QUERY},
        {"name": "ranks", "preset": "demo-error-rate", "kind": "statistical"},
    ],
    "stages": [
        {"name": "five", "weight": 5, "bake": "10m", "max_bake": "30m"},
        {"name": "half", "weight": 50, "bake": "10m", "gates": ["errors", "latency"]},
        {"name": "all", "weight": 100, "bake": "5m", "gates": []},
    ],
}


def test_validate_with_traffic_says_what_each_stage_can_detect(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["validate", write_plan(PLAN), "--traffic", "100"]) == 0
    out = capsys.readouterr().out
    assert "can detect errors x" in out and "within 10m at 98% (60,000 vs 1,140,000" in out
    assert "can detect latency +" in out
    assert "(its window)" in out  # the statistical gate judges its window, not the bake
    assert "warning" not in out
    assert "power: 100 canary requests a second at every stage" in out


def test_validate_warns_where_a_stage_cannot_see_errors_x2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["validate", write_plan(PLAN), "--traffic", "0.1", "--base-rate", "0.001"]) == 0
    out = capsys.readouterr().out
    assert "warning: cannot detect errors x2 within 10m" in out
    assert "warning: cannot detect latency +20% within 10m" in out


def test_validate_power_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["validate", write_plan(PLAN), "--traffic", "10", "--json"]) == 0
    shown = check("validate", capsys.readouterr().out)
    first = {g["gate"]: g for g in shown["stages"][0]["power"]}
    assert first["errors"]["test"] == "sequential rate"
    assert (
        first["errors"]["canary_requests"] == 6000 and first["errors"]["stable_requests"] == 114000
    )
    assert first["errors"]["detectable"] > 1.5  # beyond the preset's allowance
    assert first["latency"]["detectable"] > 1
    assert shown["stages"][2]["power"] == [] and "10 canary requests" in shown["traffic"]
    # Without the flags the answer is what it was.
    assert run(["validate", write_plan(PLAN), "--json"]) == 0
    plain = check("validate", capsys.readouterr().out)
    assert plain["traffic"] is None and plain["stages"][0]["power"] == []


def test_traffic_and_live_are_one_or_the_other(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["validate", write_plan(PLAN), "--traffic", "1", "--live"]) == 2


def test_live_without_prometheus_says_why_per_gate() -> None:
    plan = parse_plan({**PLAN, "metrics": {"kind": "prometheus", "url": "http://127.0.0.1:9"}})
    traffic = power_plan.live(plan, 0.01)
    assert set(traffic.problems) == {"errors", "latency", "ranks"}
    found = power_plan.reach(plan, traffic)
    assert all(g.detectable is None and "not estimated" in g.shown for g in found[0])


def test_the_stable_gets_the_rest_by_weight() -> None:
    plan = parse_plan(PLAN)
    given = power_plan.reach(plan, power_plan.Traffic(canary_rps=10))
    errors = next(g for g in given[1] if g.gate == "errors")
    assert (errors.canary_requests, errors.stable_requests) == (6000, 6000)
    live = power_plan.Traffic(total_rps={"errors": 200.0, "latency": 200.0, "ranks": 200.0})
    errors = next(g for g in power_plan.reach(plan, live)[0] if g.gate == "errors")
    assert (errors.canary_requests, errors.stable_requests) == (6000, 114000)


def sequential_rate_side(rate: float, per_step: float, steps: int) -> Side:
    return Side(points=(rate,) * steps, counts=(per_step,) * steps, samples=per_step * steps)


def test_a_sequential_verdict_carries_its_evidence() -> None:
    gate = gate_from(name="errors", preset="demo-error-rate", kind="sequential")
    measured = Measurements(
        canary=sequential_rate_side(0.01, 100, 10), stable=sequential_rate_side(0.01, 1900, 10)
    )
    verdict = Verdict(gate="errors", outcome=GateOutcome.PASS, test="sequential rate")
    weighed = with_evidence(gate, measured, verdict)
    assert weighed.evidence == 1000
    target = power.targeted("rate", gate.factor, "increase", gate.margin / 0.01)
    assert weighed.evidence_target == pytest.approx(target)
    assert weighed.evidence_needed is not None
    needed = weighed.evidence_needed
    shown = power.rate_shown(
        target,
        needed,
        19 * needed,
        0.01,
        factor=gate.factor,
        margin=gate.margin,
        alpha=1 - gate.confidence,
    )
    assert shown
    # A threshold gate, and a sequential gate without a stable's data, carry none.
    threshold = gate_from(name="t", query="x", max=1.0)
    assert with_evidence(threshold, measured, verdict).evidence is None


def test_an_improvement_gate_carries_the_evidence_its_gain_test_needs() -> None:
    gate = gate_from(
        name="errors", preset="demo-error-rate", kind="sequential", direction="improve", by="10%"
    )
    measured = Measurements(
        canary=sequential_rate_side(0.01, 100, 10), stable=sequential_rate_side(0.01, 1900, 10)
    )
    verdict = Verdict(gate="errors", outcome=GateOutcome.INCONCLUSIVE, test="sequential rate")
    weighed = with_evidence(gate, measured, verdict)
    gain = gate.improvement()
    assert gain is not None and gain.direction == "decrease"
    # The gain test's own target: 10% fewer errors, and as far again as its mixture's tuning.
    target = power.targeted("rate", gain.factor, "decrease", gain.margin / 0.01)
    assert weighed.evidence == 1000 and weighed.evidence_target == pytest.approx(target)
    assert target < 0.9 and weighed.evidence_needed is not None
    needed = weighed.evidence_needed

    def shown(n: float) -> bool:
        return power.rate_shown(
            target, n, 19 * n, 0.01, factor=gain.factor, margin=gain.margin, direction="decrease"
        )

    assert shown(needed) and not shown(needed * 0.9)


def test_status_shows_evidence_against_need() -> None:
    verdict = Verdict(
        gate="errors",
        outcome=GateOutcome.PASS,
        test="sequential rate",
        evidence=1200,
        evidence_needed=6000,
        evidence_target=2.25,
    )
    assert evidence_text(verdict) == "1,200 of 6,000 requests to show x2.25"
    latency = verdict.model_copy(
        update={"test": "sequential latency", "evidence": 7000, "evidence_target": 1.105}
    )
    assert evidence_text(latency) == "7,000 of 6,000 requests to show +10.5% (enough)"
    status = RolloutStatus.model_construct(
        verdicts={"errors": verdict}, failure_streaks={}, state=RolloutState.BAKING
    )
    console = Console(width=200, record=True)
    console.print(verdict_table(status))
    text = console.export_text()
    assert "evidence" in text and "1,200 of 6,000 requests" in text
    # Without evidence the table has no such column.
    plain = RolloutStatus.model_construct(
        verdicts={"errors": Verdict(gate="errors", outcome=GateOutcome.PASS, at=datetime.now(UTC))},
        failure_streaks={},
    )
    console = Console(width=200, record=True)
    console.print(verdict_table(plain))
    assert "evidence" not in console.export_text()


def test_max_bake_must_be_longer_than_the_bake(capsys: pytest.CaptureFixture[str]) -> None:
    short = copy.deepcopy(PLAN)
    short["stages"][0]["max_bake"] = "10m"
    assert run(["validate", write_plan(short)]) == 2
    err = capsys.readouterr().err
    assert "max_bake 10m is not longer than the bake 10m" in err
    assert parse_plan(PLAN).stages[0].max_bake is not None
    assert parse_plan(PLAN).stages[1].max_bake is None


def test_evidence_never_breaks_a_check() -> None:
    gate = gate_from(name="latency", kind="sequential", test="latency", query=LATENCY_QUERY)
    verdict = Verdict(gate="latency", outcome=GateOutcome.INCONCLUSIVE)
    odd = Side(bounds=(0.1, 0.05), histogram=((float("nan"), 1.0),))
    assert with_evidence(gate, Measurements(canary=odd, stable=odd), verdict) == verdict
    ragged = Side(bounds=(0.1,), histogram=((1.0, 2.0), (1.0,)))
    assert with_evidence(gate, Measurements(canary=ragged, stable=ragged), verdict) == verdict
