"""Each gate kind's pass, fail and inconclusive verdicts, with the numbers and the words."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from activities.judge import Side, judge_gate
from plans import Gate, GateOutcome, gate_from
from tests.verdict_words import judge

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ERRORS = 'sum(rate(errors{server="$target"}[$window])) / sum(rate(all{server="$target"}[$window]))'
COUNT = 'sum(increase(all{server="$target"}[$window]))'


def gate(**fields: Any) -> Gate:
    data: dict[str, Any] = {"name": "error-rate", "query": ERRORS, "unit": "ratio"}
    return gate_from(data | fields)


THRESHOLD = gate(max=0.05, samples_query=COUNT, min_samples=200)
RELATIVE = gate(kind="relative", factor=1.5, margin=0.001, samples_query=COUNT, min_samples=200)
PROPORTION = gate(
    kind="statistical", test="two-proportion", factor=1.2, margin=0.0005, samples_query=COUNT
)
LATENCY = gate_from(
    name="p95", kind="statistical", test="mann-whitney", query="p95{v='$target'}", unit="seconds"
)


# -- threshold --------------------------------------------------------------------------------


def test_threshold_pass_says_what_held() -> None:
    v = judge_gate(THRESHOLD, Side(value=0.041, samples=1234), query="q", at=AT)
    assert v.outcome is GateOutcome.PASS
    assert (v.value, v.canary, v.canary_samples, v.stable) == (0.041, 0.041, 1234, None)
    assert v.reason == "4.1% <= max 5%, 1,234 requests"
    assert (v.threshold, v.kind, v.query, v.at) == ("<= 5%", "threshold", "q", AT)


def test_threshold_fail() -> None:
    v = judge_gate(THRESHOLD, Side(value=0.062, samples=5000))
    assert v.outcome is GateOutcome.FAIL
    assert v.reason == "6.2% > max 5%, 5,000 requests"


def test_threshold_below_min_samples_is_inconclusive_even_when_the_value_is_fine() -> None:
    v = judge_gate(THRESHOLD, Side(value=0.0, samples=150))
    assert v.outcome is GateOutcome.INCONCLUSIVE
    assert v.reason == "150 requests in 1m, below min_samples 200"
    assert v.value is None and v.canary_samples == 150


def test_threshold_zero_requests_is_inconclusive_not_nan() -> None:
    v = judge_gate(THRESHOLD, Side(value=math.nan, samples=0))
    assert v.reason == "0 requests in 1m, below min_samples 200"


def test_threshold_unknown_request_count_is_inconclusive() -> None:
    v = judge_gate(
        THRESHOLD, Side(value=0.01, samples_reason="no data: the query matched no series")
    )
    assert v.outcome is GateOutcome.INCONCLUSIVE
    assert v.reason == "request count unknown (no data: the query matched no series)"


@pytest.mark.parametrize(
    ("side", "reason"),
    [
        (Side(reason="prometheus unreachable: boom"), "prometheus unreachable: boom"),
        (Side(value=math.nan, samples=900), "the query returned NaN"),
        (Side(value=math.inf, samples=900), "the query returned +Inf"),
    ],
)
def test_threshold_without_a_number_is_inconclusive(side: Side, reason: str) -> None:
    v = judge_gate(THRESHOLD, side)
    assert v.outcome is GateOutcome.INCONCLUSIVE
    assert v.reason.startswith(reason)


def test_first_version_judge_keeps_its_words() -> None:
    plain = gate_from(name="errors", query="q", max=0.05)
    assert judge(plain, 0.31, "", "q", AT).reason == "0.31 > max 0.05"
    assert judge(plain, 0.01, "", "q", AT).reason == ""
    assert judge(plain, None, "", "q", AT).reason == "no data"


# -- relative ---------------------------------------------------------------------------------


def test_relative_fail_quotes_both_versions_and_the_limit() -> None:
    v = judge_gate(
        RELATIVE, Side(value=0.041, samples=6000), Side(value=0.002, samples=24000), at=AT
    )
    assert v.outcome is GateOutcome.FAIL
    assert (v.canary, v.stable, v.canary_samples, v.stable_samples) == (0.041, 0.002, 6000, 24000)
    assert v.reason == (
        "canary 4.1% vs stable 0.2% (limit <= stable x1.5+0.1% = 0.4%), 6,000 vs 24,000 requests"
    )
    assert v.threshold == "<= stable x1.5+0.1%"


def test_relative_pass_at_the_limit() -> None:
    v = judge_gate(RELATIVE, Side(value=0.004, samples=6000), Side(value=0.002, samples=24000))
    assert v.outcome is GateOutcome.PASS


def test_relative_latency_with_an_absolute_margin() -> None:
    latency = gate_from(
        name="p95", kind="relative", query="p95{v='$target'}", margin=0.05, unit="seconds"
    )
    v = judge_gate(latency, Side(value=0.212), Side(value=0.151))
    assert v.outcome is GateOutcome.FAIL
    assert v.reason == "canary 212ms vs stable 151ms (limit <= stable+50ms = 201ms)"


def test_relative_decrease_and_either() -> None:
    success = gate(kind="relative", direction="decrease", margin=0.005)
    low = judge_gate(success, Side(value=0.98), Side(value=0.99))
    assert low.outcome is GateOutcome.FAIL
    assert low.reason == "canary 98% vs stable 99% (limit >= stable-0.5% = 98.5%)"
    band = gate_from(
        name="rps", kind="relative", query="r{v='$target'}", factor=2, direction="either"
    )
    assert judge_gate(band, Side(value=4.9), Side(value=10)).outcome is GateOutcome.FAIL
    assert judge_gate(band, Side(value=20), Side(value=10)).outcome is GateOutcome.PASS
    assert judge_gate(band, Side(value=20.1), Side(value=10)).reason == (
        "canary 20.1 vs stable 10 (limit >= stable /2 and <= stable x2 = 5..20)"
    )


def test_relative_stable_without_data_is_inconclusive_and_keeps_the_canary() -> None:
    v = judge_gate(RELATIVE, Side(value=0.01, samples=900), Side(value=math.nan, samples=900))
    assert v.outcome is GateOutcome.INCONCLUSIVE
    assert v.reason.startswith("stable: the query returned NaN")
    assert v.canary == 0.01 and v.stable is None


def test_relative_thin_canary_is_inconclusive() -> None:
    v = judge_gate(RELATIVE, Side(value=0.5, samples=12), Side(value=0.0, samples=24000))
    assert v.reason == "canary: 12 requests in 1m, below min_samples 200"


def test_relative_without_a_stable_side_is_inconclusive() -> None:
    v = judge_gate(RELATIVE, Side(value=0.01, samples=900))
    assert v.reason.startswith("stable: not measured")


# -- statistical: two-proportion ----------------------------------------------------------------


def steps(rates: list[float], count: float) -> Side:
    return Side(points=tuple(rates), counts=(count,) * len(rates), samples=count * len(rates))


def test_two_proportion_fail_carries_statistic_and_p_value() -> None:
    v = judge_gate(PROPORTION, steps([0.05] * 4, 1000), steps([0.01] * 4, 4000))
    assert v.outcome is GateOutcome.FAIL
    assert (v.canary, v.stable) == (pytest.approx(0.05), pytest.approx(0.01))
    assert v.canary_samples == 4000 and v.stable_samples == 16000
    assert v.test == "two-proportion" and v.kind == "statistical"
    # Canary (200+1)/(4000+2), stable (160+1)/(16000+2), tolerated stable x1.2 + 0.0005;
    # steady steps, so no dispersion: z = 0.037652 / 0.0035799.
    assert v.statistic == pytest.approx(10.5173, abs=1e-4)
    assert v.p_value is not None and v.p_value < 1e-20
    assert v.reason == (
        "canary 5% vs stable 1% (limit <= stable x1.2+0.05%): two-proportion z=10.5,"
        " p=3.6e-26 < 0.02, 4,000 vs 16,000 requests"
    )
    assert v.threshold == "<= stable x1.2+0.05% (two-proportion, 98% confidence)"


def test_two_proportion_pass_within_the_allowance() -> None:
    v = judge_gate(PROPORTION, steps([0.011] * 4, 1000), steps([0.01] * 4, 4000))
    assert v.outcome is GateOutcome.PASS
    assert v.p_value is not None and v.p_value > 0.5
    assert ">= 0.02" in v.reason


def test_two_proportion_steps_without_requests_are_left_out() -> None:
    canary = Side(points=(math.nan, 0.05, 0.05), counts=(0.0, 1000.0, 1000.0), samples=2000)
    v = judge_gate(PROPORTION, canary, steps([0.01] * 4, 4000))
    assert v.outcome is GateOutcome.INCONCLUSIVE
    assert v.reason == (
        "canary: 2 step(s) with requests, the two-proportion test needs 3 to measure burstiness"
    )


def test_two_proportion_needs_counts_and_a_ratio() -> None:
    no_counts = Side(points=(0.01,) * 4, samples_reason="prometheus unreachable: x")
    v = judge_gate(PROPORTION, no_counts, steps([0.01] * 4, 4000))
    assert v.reason == "canary: no request count per step (prometheus unreachable: x)"
    v = judge_gate(PROPORTION, steps([3.0] * 4, 100), steps([0.01] * 4, 4000))
    assert v.reason.startswith("canary: 3 is not a proportion between 0 and 1")


# -- statistical: Mann-Whitney ------------------------------------------------------------------


def test_mann_whitney_fail() -> None:
    canary, stable = Side(points=(0.25, 0.26, 0.27, 0.28)), Side(points=(0.1, 0.2, 0.15, 0.12))
    v = judge_gate(LATENCY, canary, stable)
    assert v.outcome is GateOutcome.FAIL
    assert (v.canary, v.stable, v.statistic) == (pytest.approx(0.265), pytest.approx(0.135), 16)
    assert v.p_value == pytest.approx(1 / 70)
    assert v.reason == (
        "canary median 265ms vs stable median 135ms (limit <= stable): mann-whitney U=16,"
        " p=0.014 < 0.02, 4 vs 4 points"
    )


def test_mann_whitney_pass_when_mixed() -> None:
    v = judge_gate(LATENCY, Side(points=(0.1, 0.3, 0.2, 0.4)), Side(points=(0.15, 0.25, 0.35, 0.2)))
    assert v.outcome is GateOutcome.PASS


def test_mann_whitney_drops_nan_points_and_wants_enough_of_them() -> None:
    v = judge_gate(LATENCY, Side(points=(0.2, math.nan, 0.3, 0.4)), Side(points=(0.1,) * 6))
    assert v.outcome is GateOutcome.INCONCLUSIVE
    assert v.reason == (
        "canary: 3 usable point(s) (1 NaN or Inf dropped), Mann-Whitney needs 4 to reach"
        " 98% confidence"
    )


def test_mann_whitney_without_points_is_inconclusive() -> None:
    v = judge_gate(LATENCY, Side(points=(0.1,) * 4), Side(reason="no data: the query matched"))
    assert v.reason == "stable: no data: the query matched"


def test_verdicts_survive_json() -> None:
    v = judge_gate(PROPORTION, steps([0.05] * 4, 1000), steps([0.01] * 4, 4000), at=AT)
    assert type(v).model_validate_json(v.model_dump_json()) == v
