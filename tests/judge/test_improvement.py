"""Improvement as a goal (``direction: improve``): the plan's words, the statistics, the verdict.

The gain test is the harm test the other way round ("canary <= stable x0.95, confidently"
is the rejection of "canary >= stable x0.95"), so its numbers are checked against that
test run directly, and its interval against its decision at the boundary.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from activities.anytime import rate_test
from activities.anytime_latency import distribution_test
from activities.judge import Side, judge_gate
from activities.judge.improvement import latency_improvement, rate_improvement
from plans import GateOutcome, SequentialGate, gate_from
from plans.gates.comparing import Improvement, improvement_of, parse_by

# -- the plan ---------------------------------------------------------------------------------

RATE = {"kind": "sequential", "test": "rate", "query": "q", "samples_query": "n"}


def gate(**fields: Any) -> SequentialGate:
    found = gate_from({"name": "g", **fields})
    assert isinstance(found, SequentialGate)
    return found


def test_by_reads_a_share_of_the_stable_or_points_of_a_rate() -> None:
    assert parse_by("5%") == (5.0, "%")
    assert parse_by(" 0.1pp ") == (0.1, "pp")
    assert parse_by(0.05) is None and parse_by("5") is None and parse_by("x0.95") is None
    # Lower is better: "canary <= stable x0.95" is the decrease test with room 1/0.95.
    assert improvement_of("lower", "5%") == Improvement("decrease", 1 / 0.95, 0.0, 0.95)
    assert improvement_of("higher", "5%") == Improvement("increase", 1.05, 0.0, 1.05)
    assert improvement_of("lower", "0.1pp") == Improvement("decrease", 1.0, 0.001, None)
    assert improvement_of("higher", "2pp") == Improvement("increase", 1.0, 0.02, None)
    with pytest.raises(ValueError, match="by: 5%"):
        improvement_of("lower", "5")


def test_presets_say_which_way_is_better() -> None:
    errors = gate(preset="demo-error-rate", kind="sequential", direction="improve", by="10%")
    success = gate(preset="demo-success-rate", kind="sequential", direction="improve", by="1pp")
    latency = gate(preset="demo-p95-latency", kind="sequential", direction="improve", by="5%")
    assert [g.better_way for g in (errors, success, latency)] == ["lower", "higher", "lower"]
    # The allowance for the worse is the preset's, in the other direction for a success rate.
    assert errors.harm_direction == "increase" and success.harm_direction == "decrease"
    assert errors.describe_threshold() == (
        "10% lower than stable, and <= stable x1.15+0.05% (rate, sequential, 98%)"
    )
    assert success.describe_goal(0.9) == "target +1pp (x1.01 at the stable's 90%)"
    assert latency.describe_goal() == "target -5.0%" and errors.describe_goal() == "target x0.9"


def test_old_plans_mean_the_same() -> None:
    old = gate(preset="demo-error-rate", kind="sequential")
    assert (old.direction, old.better, old.by, old.improvement()) == ("increase", None, None, None)
    assert old.describe_threshold() == "<= stable x1.15+0.05% (rate, sequential, 98%)"
    assert old.describe_goal() == "allowed x1.15+0.05%"


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        (
            {**RATE, "direction": "improve", "by": "5%"},
            "direction improve needs better: lower \\(error rates, latency\\) or higher",
        ),
        ({**RATE, "direction": "improve", "better": "lower"}, "direction improve needs by"),
        (
            {**RATE, "direction": "improve", "better": "lower", "by": 0.05},
            "by 0.05 is ambiguous .*write by: 5% for a change relative to the stable's value,"
            " or by: 0.1pp",
        ),
        (
            {**RATE, "direction": "improve", "better": "lower", "by": "5"},
            "by '5' cannot be read: write by: 5%",
        ),
        (
            {**RATE, "direction": "improve", "better": "lower", "by": "100%"},
            "cannot fall by 100% or more",
        ),
        ({**RATE, "direction": "improve", "better": "lower", "by": "0%"}, "must be more than 0"),
        ({**RATE, "by": "5%"}, "by applies to direction: improve"),
        (
            {**RATE, "better": "higher"},
            "better: higher says an increase is no regression, but direction increase",
        ),
        (
            {**RATE, "direction": "decrease", "better": "lower"},
            "better: lower says a decrease is no regression",
        ),
        (
            {"kind": "sequential", "test": "latency", "query": "q", "direction": "improve"}
            | {"better": "lower", "by": "0.1pp"},
            "percentage points apply to a rate \\(test: rate\\); write the gain relative",
        ),
        (
            {"preset": "demo-error-rate", "kind": "statistical", "direction": "improve"}
            | {"by": "5%"},
            "direction improve needs a test that is valid at every look: use kind: sequential",
        ),
        (
            {"preset": "demo-error-rate", "kind": "relative", "direction": "improve"}
            | {"by": "5%"},
            "use kind: sequential",
        ),
        (
            {"query": "q", "max": 1, "better": "lower"},
            "better applies to relative, statistical and sequential gates",
        ),
    ],
)
def test_ambiguous_or_missing_fields_say_what_to_write(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        gate_from({"name": "g", **fields})


# -- the statistics ---------------------------------------------------------------------------


def _rates(canary_errors: float, steps: int = 10, n: float = 10_000) -> dict[str, Any]:
    """Per-step counts: the canary's errors per step against the stable's 100 (1%)."""
    return {
        "canary_hits": [canary_errors] * steps,
        "canary_totals": [n] * steps,
        "stable_hits": [n / 100] * steps,
        "stable_totals": [n] * steps,
    }


def test_an_error_rate_a_fifth_lower_shows_a_gain_of_five_percent() -> None:
    found = rate_improvement(**_rates(80), better="lower", by="5%", factor=1.2)
    assert found.outcome == "shown"
    assert found.found.ratio == pytest.approx(0.8, rel=1e-3)
    assert found.found.high < 0.95 and found.target == pytest.approx(0.95)
    # It is the decrease test with room 1/0.95, run directly.
    direct = rate_test(*_rates(80).values(), factor=1 / 0.95, direction="decrease")
    assert found.found.p_value == pytest.approx(direct.p_value) and direct.p_value < 0.02


def test_an_error_rate_a_tenth_lower_does_not_show_it_yet() -> None:
    found = rate_improvement(**_rates(90), better="lower", by="5%", factor=1.2)
    assert found.outcome == "not shown"
    assert found.found.low < 0.9 < found.found.high and found.found.high > 0.95
    assert found.found.p_value == 1.0  # the estimate itself is inside the null


def test_a_canary_worse_than_its_allowance_is_worse_whatever_the_target() -> None:
    found = rate_improvement(**_rates(130), better="lower", by="5%")
    assert found.outcome == "worse" and found.found.low > 1.0 and found.found.p_value < 0.02
    # Within the allowance it is only not better.
    assert rate_improvement(**_rates(130), better="lower", by="5%", factor=1.5).outcome == (
        "not shown"
    )


def test_a_success_rate_in_points_and_as_a_share() -> None:
    counts = _rates(9600) | {"stable_hits": [9000.0] * 10}  # 96% against 90%
    assert rate_improvement(**counts, better="higher", by="5pp").outcome == "shown"
    assert rate_improvement(**counts, better="higher", by="7pp").outcome == "not shown"
    assert rate_improvement(**counts, better="higher", by="5%").outcome == "shown"
    assert rate_improvement(**counts, better="higher", by="8%").outcome == "not shown"
    fell = _rates(8500) | {"stable_hits": [9000.0] * 10}
    assert rate_improvement(**fell, better="higher", by="1%").outcome == "worse"


@pytest.mark.parametrize("canary", [70, 78, 80, 82, 84, 86, 88, 90, 95])
def test_the_rate_interval_clears_the_target_exactly_when_the_gain_is_shown(
    canary: float,
) -> None:
    rng = np.random.default_rng(int(canary))
    n = rng.poisson(8000, 12).astype(float)
    c_hits = rng.binomial(n.astype(int), canary / 10_000).astype(float)
    s_hits = rng.binomial(n.astype(int), 0.01).astype(float)
    found = rate_improvement(
        list(c_hits), list(n), list(s_hits), list(n), better="lower", by="5%", factor=1.2
    )
    assert found.outcome != "worse"
    assert (found.found.high < 0.95) == (found.outcome == "shown"), found
    assert found.found.low <= found.found.ratio <= found.found.high


BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, math.inf]


def _histogram(rng: np.random.Generator, rps: int, scale: float) -> list[list[float]]:
    """Bucket counts per step (30 steps) of a log-normal latency, median 60ms x scale."""
    out = []
    for _ in range(30):
        values = 0.06 * scale * np.exp(rng.normal(0, 0.5, rng.poisson(rps)))
        idx = np.searchsorted(np.array(BOUNDS), values, side="left")
        out.append(list(np.bincount(idx, minlength=len(BOUNDS)).astype(float)))
    return out


@pytest.mark.parametrize(
    ("scale", "outcome"), [(0.8, "shown"), (0.9, "shown"), (1.0, "not shown"), (1.25, "worse")]
)
def test_latency_gains_are_shown_in_the_distribution(scale: float, outcome: str) -> None:
    rng = np.random.default_rng(int(scale * 100))
    canary, stable = _histogram(rng, 100, scale), _histogram(rng, 400, 1.0)
    found = latency_improvement(canary, stable, BOUNDS, by="5%", factor=1.06)
    assert found.outcome == outcome, found
    if outcome == "shown":
        assert found.found.high < 0.95 and found.found.ratio == pytest.approx(scale, abs=0.05)
        direct = distribution_test(
            canary, stable, BOUNDS, factor=1 / 0.95, direction="decrease", alpha=0.02
        )
        assert found.found.p_value == pytest.approx(direct.p_value)


@pytest.mark.parametrize("scale", [0.85, 0.9, 0.93, 0.95, 0.97])
def test_the_latency_interval_clears_the_target_exactly_when_the_gain_is_shown(
    scale: float,
) -> None:
    rng = np.random.default_rng(int(scale * 1000))
    canary, stable = _histogram(rng, 60, scale), _histogram(rng, 240, 1.0)
    found = latency_improvement(canary, stable, BOUNDS, by="5%", factor=1.06)
    assert (found.found.high < 0.95) == (found.outcome == "shown"), found


# -- the verdict, through the judge the rollout runs ------------------------------------------


def _sides(canary_rate: float, steps: int = 20, n: float = 5000) -> tuple[Side, Side]:
    def side(rate: float) -> Side:
        return Side(points=(rate,) * steps, counts=(n,) * steps, samples=n * 12)

    return side(canary_rate), side(0.01)


def test_the_verdict_passes_only_once_the_gain_is_shown() -> None:
    improve = gate(preset="demo-error-rate", kind="sequential", direction="improve", by="5%")
    shown = judge_gate(improve, *_sides(0.008))
    assert shown.outcome is GateOutcome.PASS
    assert shown.reason.startswith("improvement of 5% shown: rate x0.8 [x0.")
    assert "vs target x0.95 (canary 0.8% vs stable 1%)" in shown.reason
    assert shown.effect_high is not None and shown.effect_high < 0.95

    waiting = judge_gate(improve, *_sides(0.0097))
    assert waiting.outcome is GateOutcome.INCONCLUSIVE
    assert waiting.reason.startswith("improvement of 5% not shown: rate x0.97 [x0.")
    assert "vs target x0.95" in waiting.reason and waiting.effect is not None

    worse = judge_gate(improve, *_sides(0.02))
    assert worse.outcome is GateOutcome.FAIL
    assert worse.reason.startswith("rate x2 [") and "vs allowed x1.15+0.05%" in worse.reason


def test_a_latency_verdict_says_the_gain_in_percent() -> None:
    improve = gate(preset="demo-p95-latency", kind="sequential", direction="improve", by="5%")
    rng = np.random.default_rng(3)
    bounds = tuple(BOUNDS)
    canary = Side(bounds=bounds, histogram=tuple(map(tuple, _histogram(rng, 100, 0.8))))
    stable = Side(bounds=bounds, histogram=tuple(map(tuple, _histogram(rng, 400, 1.0))))
    verdict = judge_gate(improve, canary, stable)
    assert verdict.outcome is GateOutcome.INCONCLUSIVE  # no request count: min_samples 100
    canary = Side(bounds=bounds, histogram=canary.histogram, samples=3000)
    stable = Side(bounds=bounds, histogram=stable.histogram, samples=12_000)
    verdict = judge_gate(improve, canary, stable)
    assert verdict.outcome is GateOutcome.PASS, verdict.reason
    assert verdict.reason.startswith("improvement of 5% shown: p")
    assert "% [-" in verdict.reason and "vs target -5.0%" in verdict.reason


def test_thin_data_is_inconclusive_without_an_effect() -> None:
    improve = gate(preset="demo-error-rate", kind="sequential", direction="improve", by="5%")
    thin = judge_gate(improve, Side(points=(0.01,), counts=(10.0,), samples=10), _sides(0.01)[1])
    assert thin.outcome is GateOutcome.INCONCLUSIVE and thin.effect is None
    assert "below min_samples" in thin.reason
