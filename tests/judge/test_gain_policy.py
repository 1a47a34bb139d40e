"""The policy for a gate that asks for a gain: waited for while the stage bakes, then acted on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from plans import GateOutcome, Verdict, gate_from, parse_plan
from plans.runtime.progress import RolloutProgress
from workflows.rollout import clock
from workflows.rollout.gains import awaits_gain, judge_checks

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PLAN = parse_plan(
    {
        "service": "shop",
        "stable": "web-1",
        "canary": "web-2",
        "router": {"kind": "haproxy", "runtime_api": "tcp://127.0.0.1:9999", "backend": "b"},
        "metrics": {"kind": "prometheus", "url": "http://p:9090"},
        "gates": [
            {
                "name": "faster",
                "preset": "demo-p95-latency",
                "kind": "sequential",
                "direction": "improve",
                "by": "5%",
            }
        ],
        "stages": [{"name": "one", "weight": 20, "bake": "30m", "check_every": "5m"}],
    }
)
GATES = PLAN.gates
WAITING = "improvement of 5% not shown: p95 -3.0% [-7.0%, +1.0%] vs target -5.0%"


def verdict(effect: float | None) -> Verdict:
    reason = WAITING if effect is not None else "canary: 12 requests in 2m, below min_samples 100"
    return Verdict(gate="faster", outcome=GateOutcome.INCONCLUSIVE, reason=reason, effect=effect)


def progress() -> RolloutProgress:
    found = RolloutProgress(shifted_stage=0)
    clock.enter(found.clock, START, False, timedelta(minutes=5))
    return found


def test_a_gain_not_shown_waits_while_baking_and_pauses_at_once_after() -> None:
    p = progress()
    assert awaits_gain(GATES[0], verdict(0.97)) and not awaits_gain(GATES[0], verdict(None))
    for minute in (5, 10, 15, 20, 25):
        assert (
            judge_checks(PLAN, p, GATES, [verdict(0.97)], START + timedelta(minutes=minute)) == []
        )
    assert p.gates.inconclusive_streaks["faster"] == 0
    (action,) = judge_checks(PLAN, p, GATES, [verdict(0.97)], START + timedelta(minutes=31))
    assert (action.action, action.trigger) == ("pause", "inconclusive")
    assert action.reason == f"faster: {WAITING}, when the bake ended"
    # Asked again every inconclusive_limit checks while it goes on, as any inconclusive gate.
    later = [
        judge_checks(PLAN, p, GATES, [verdict(0.97)], START + timedelta(minutes=31 + 5 * k))
        for k in (1, 2, 3)
    ]
    assert [len(a) for a in later] == [0, 0, 1]


def test_a_gain_gate_without_data_is_inconclusive_as_any_other() -> None:
    p = progress()
    found = [
        judge_checks(PLAN, p, GATES, [verdict(None)], START + timedelta(minutes=m))
        for m in (5, 10, 15)
    ]
    assert [len(a) for a in found] == [0, 0, 1]
    assert "inconclusive 3 check(s) in a row" in found[-1][0].reason


def test_other_gates_keep_their_policy() -> None:
    other = [gate_from({"name": "faster", "preset": "demo-p95-latency", "kind": "sequential"})]
    p = progress()
    found = [
        judge_checks(PLAN, p, other, [verdict(0.97)], START + timedelta(minutes=m))
        for m in (5, 10, 15)
    ]
    assert [len(a) for a in found] == [0, 0, 1]
