"""The power of a stage (activities.power) against the tests it asks, and by simulation.

Each smallest detectable regression is checked against the gate's own test on the
expected counts (just above it is rejected, just below it is not), and by drawing stages
at that regression: one at the edge is detected about half the time, as a regression
"shown about half the time" must be.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from activities import anytime, anytime_latency, power, stats

ALPHA = 0.02


def test_the_rate_ratio_is_the_edge_of_the_rate_test() -> None:
    n_c, n_s, rate = 6_000.0, 114_000.0, 0.01
    found = power.rate_ratio(n_c, n_s, rate, alpha=ALPHA)
    assert found is not None and 1.3 < found < 1.6
    assert power.rate_shown(found * 1.01, n_c, n_s, rate, alpha=ALPHA)
    assert not power.rate_shown(found * 0.99, n_c, n_s, rate, alpha=ALPHA)
    # With an allowance of x1.5 the edge moves beyond it.
    allowed = power.rate_ratio(n_c, n_s, rate, factor=1.5, alpha=ALPHA)
    assert allowed is not None and allowed > 1.5 and allowed > found


def test_more_requests_show_smaller_regressions() -> None:
    found = [power.rate_ratio(rps * 600, rps * 600 * 19, 0.01) for rps in (1, 10, 100, 1000)]
    assert all(f is not None for f in found)
    assert found == sorted(found, reverse=True)  # type: ignore[type-var]
    # Quadrupling the requests about halves the excess a test of counts can see.
    excess = [f - 1 for f in found if f is not None]
    assert 1.6 < excess[2] / excess[3] < 4.5


def test_a_decrease_is_found_below_one_and_matches_the_test() -> None:
    found = power.rate_ratio(60_000, 60_000, 0.99, direction="decrease", alpha=ALPHA)
    assert found is not None and 0.99 < found < 1
    common = {"direction": "decrease", "alpha": ALPHA}
    assert power.rate_shown(found * 0.999, 60_000, 60_000, 0.99, **common)  # type: ignore[arg-type]
    assert not power.rate_shown(found * 1.001, 60_000, 60_000, 0.99, **common)  # type: ignore[arg-type]


def test_no_traffic_shows_nothing() -> None:
    assert power.rate_ratio(0, 1000, 0.01) is None
    # Not even every request failing shows: 5 tolerate too few hits for the bake's test,
    # and the mixture alone needs more.
    assert power.rate_ratio(5, 95, 0.0001) is None
    assert power.rate_ratio(5, 95, 0.0001, elapsed=None) is None


def test_a_rate_regression_at_the_edge_is_detected_about_half_the_time() -> None:
    n_c, n_s, rate = 3_000, 57_000, 0.02
    edge = power.rate_ratio(n_c, n_s, rate, alpha=ALPHA)
    assert edge is not None
    rng = np.random.default_rng(7)
    runs = 400
    hits = 0
    for _ in range(runs):
        c = rng.binomial(n_c, rate * edge)
        s = rng.binomial(n_s, rate)
        # One binomial step at the bake's end, no bursts assumed: the power computation's.
        found = anytime.rate_test([c], [n_c], [s], [n_s], alpha=ALPHA, prior=0.0, elapsed=1)
        hits += found.p_value < ALPHA
    assert 0.38 < hits / runs < 0.62
    # And a regression well past the edge almost always.
    past = sum(
        anytime.rate_test(
            [rng.binomial(n_c, rate * edge * 1.4)],
            [n_c],
            [rng.binomial(n_s, rate)],
            [n_s],
            prior=0.0,
            elapsed=1,
        ).p_value
        < ALPHA
        for _ in range(100)
    )
    assert past >= 90


def test_the_assumed_latency_is_log_normal_in_fine_buckets() -> None:
    bounds, shares = power.assumed_latency()
    assert math.isinf(bounds[-1]) and len(bounds) == len(shares)
    assert sum(shares) == pytest.approx(1.0)
    finite = bounds[:-1]
    assert all(b / a == pytest.approx(power.BUCKET_STEP) for a, b in itertools.pairwise(finite))
    median = next(i for i in range(len(shares)) if sum(shares[: i + 1]) >= 0.5)
    assert finite[median] == pytest.approx(1.0, rel=0.2)


def test_a_shift_by_one_bucket_moves_each_share_one_bucket_up() -> None:
    bounds, shares = power.assumed_latency()
    moved = power.shifted(bounds, shares, power.BUCKET_STEP)
    assert sum(moved) == pytest.approx(sum(shares))
    for k in range(2, len(bounds) - 1):
        assert moved[k] == pytest.approx(shares[k - 1], abs=1e-12)
    assert power.shifted(bounds, shares, 1.0) == pytest.approx(shares)


def test_the_latency_shift_is_the_edge_of_the_latency_test() -> None:
    bounds, shares = power.assumed_latency()
    found = power.latency_shift(60_000, 1_140_000, bounds, shares, factor=1.1, alpha=ALPHA)
    assert found is not None and 1.1 < found < 1.2
    assert power.latency_shown(found * 1.003, 60_000, 1_140_000, bounds, shares, factor=1.1)
    assert not power.latency_shown(found * 0.997, 60_000, 1_140_000, bounds, shares, factor=1.1)


def test_one_bucket_shows_no_shift() -> None:
    # Every request below 1s: no bound has requests on both sides, nothing shows.
    assert power.latency_shift(1e6, 1e6, [1.0, math.inf], [1.0, 0.0]) is None


def test_a_latency_shift_at_the_edge_is_detected_about_half_the_time() -> None:
    bounds, shares = power.assumed_latency()
    n_c, n_s = 2_000, 38_000
    edge = power.latency_shift(n_c, n_s, bounds, shares, alpha=ALPHA)
    assert edge is not None and 1.02 < edge < 1.15
    slower = power.shifted(bounds, shares, edge)
    rng = np.random.default_rng(11)
    runs = 200
    hits = 0
    for _ in range(runs):
        canary = rng.multinomial(n_c, np.asarray(slower) / sum(slower)).astype(float)
        stable = rng.multinomial(n_s, np.asarray(shares) / sum(shares)).astype(float)
        found = anytime_latency.distribution_test(
            [canary], [stable], bounds, alpha=ALPHA, elapsed=1, wander=0.0
        )
        hits += found.p_value < ALPHA
    # The edge's counts at their expectation sit at the test's threshold; draws fall on
    # either side of it (the test takes the best of its bounds, so a little more often).
    assert 0.35 < hits / runs < 0.75


def test_the_two_proportion_edge_matches_its_test() -> None:
    found = power.two_proportion_ratio(3_000, 3_000, 0.01, 6, alpha=ALPHA)
    assert found is not None and 1.5 < found < 3
    per = [500.0] * 6

    def p(ratio: float) -> float:
        return stats.two_proportion(
            [0.01 * ratio * n for n in per], per, [0.01 * n for n in per], per
        ).p_value

    assert p(found * 1.01) < ALPHA <= p(found * 0.99)


def test_requests_needed_is_the_fewest_that_show_the_target() -> None:
    target = power.targeted("rate", 1.5, "increase")
    assert target == pytest.approx(1.5 * (1 + anytime.RATE_TAU))

    def shows(n: float) -> bool:
        return power.rate_shown(target, n, 19 * n, 0.01, factor=1.5, alpha=ALPHA)

    needed = power.requests_needed(shows)
    assert needed is not None
    assert shows(needed) and not shows(needed * 0.97)
    # The same number read the other way: with that many requests the edge is the target.
    edge = power.rate_ratio(needed, 19 * needed, 0.01, factor=1.5, alpha=ALPHA)
    assert edge == pytest.approx(target, rel=0.02)
    assert power.targeted("latency", 1.0, "increase") == pytest.approx(math.exp(anytime.LOG_TAU))
    assert power.targeted("rate", 1.0, "decrease") < 1


def test_a_shift_read_through_an_empty_bucket_neither_overflows_nor_shows() -> None:
    # Nearly every request in one bucket, its neighbours all but empty: the density there
    # is nearly nil, and a part's estimate of the shift is enormous. The power search asks
    # such shifts of the test (x50 here) and must get an answer, not an overflow.
    bounds = [0.001, 0.005, 0.1, 0.25, 5.0, math.inf]
    shares = [0.0098, 0.0275, 0.0009, 0.9596, 0.0002, 0.002]
    canary = [[s * 1e5 for s in power.shifted(bounds, shares, 50)]]
    stable = [[s * 1.9e6 for s in shares]]
    found = anytime_latency.distribution_test(
        canary, stable, bounds, factor=1.07, elapsed=1.0, bounded=False
    )
    assert math.isfinite(found.ratio) and found.p_value < ALPHA
    shown = power.latency_shift(1e5, 1.9e6, bounds, shares, factor=1.07)
    assert shown is not None and 1.07 < shown < 100
