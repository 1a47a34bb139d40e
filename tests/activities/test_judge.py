from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from plans import GateOutcome, gate_from
from tests.verdict_words import judge

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ERRORS = gate_from(name="errors", query='rate(errors{server="$canary"}[1m])', max=0.05)
LATENCY = gate_from(name="p99", query="p99", min=0.1, max=0.5)
TRAFFIC = gate_from(name="traffic", query="rps", min=10)


def test_value_above_max_fails_with_the_numbers() -> None:
    v = judge(ERRORS, 0.31, "", "q", AT)
    assert v.outcome is GateOutcome.FAIL
    assert v.value == 0.31
    assert v.reason == "0.31 > max 0.05"
    assert v.threshold == "<= 0.05"
    assert (v.gate, v.query, v.at) == ("errors", "q", AT)


def test_value_below_min_fails() -> None:
    v = judge(TRAFFIC, 9.5, "", "rps", AT)
    assert v.outcome is GateOutcome.FAIL
    assert v.reason == "9.5 < min 10"
    assert v.threshold == ">= 10"


@pytest.mark.parametrize("value", [0.0, 0.049, 0.05])
def test_value_up_to_max_passes(value: float) -> None:
    v = judge(ERRORS, value, "", "q", AT)
    assert v.outcome is GateOutcome.PASS
    assert v.value == value


@pytest.mark.parametrize(
    ("value", "outcome", "reason"),
    [
        (0.1, GateOutcome.PASS, ""),
        (0.3, GateOutcome.PASS, ""),
        (0.5, GateOutcome.PASS, ""),
        (0.09, GateOutcome.FAIL, "0.09 < min 0.1"),
        (0.51, GateOutcome.FAIL, "0.51 > max 0.5"),
    ],
)
def test_band(value: float, outcome: GateOutcome, reason: str) -> None:
    v = judge(LATENCY, value, "", "p99", AT)
    assert (v.outcome, v.reason, v.threshold) == (outcome, reason, ">= 0.1 and <= 0.5")


def test_no_value_is_inconclusive_with_the_reason() -> None:
    v = judge(ERRORS, None, "no data: the query matched no series", "q", AT)
    assert v.outcome is GateOutcome.INCONCLUSIVE
    assert v.value is None
    assert v.reason == "no data: the query matched no series"


def test_no_value_without_a_reason_still_says_so() -> None:
    assert judge(TRAFFIC, None, "", "q", AT).reason == "no data"


def test_nan_is_inconclusive_never_a_pass() -> None:
    v = judge(ERRORS, math.nan, "", "q", AT)
    assert v.outcome is GateOutcome.INCONCLUSIVE
    assert v.value is None
    assert "NaN" in v.reason


@pytest.mark.parametrize(("value", "shown"), [(math.inf, "+Inf"), (-math.inf, "-Inf")])
def test_infinity_is_inconclusive(value: float, shown: str) -> None:
    v = judge(TRAFFIC, value, "", "q", AT)
    assert v.outcome is GateOutcome.INCONCLUSIVE
    assert v.value is None
    assert shown in v.reason


def test_verdict_survives_json() -> None:
    v = judge(ERRORS, 0.31, "", "q", AT)
    assert type(v).model_validate_json(v.model_dump_json()) == v
