"""The test valid within the stage's planned bake: its closed form against the normal
distribution, its level under looks as frequent as a path allows, and what it adds to the
rate and latency tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from activities.anytime import WITHIN_SHARE, joined_p, rate_test, within_p
from activities.anytime_latency import distribution_test
from activities.power import rate_ratio
from tests.judge.test_anytime import BOUNDS, _loaded, _steps


@pytest.mark.parametrize(("z", "elapsed"), [(2.326, 1.0), (3.0, 0.5), (6.0, 0.1), (0.5, 0.9)])
def test_within_p_is_twice_the_normal_tail_of_the_evidence_so_far(z: float, elapsed: float) -> None:
    assert within_p(z, elapsed) == pytest.approx(2 * stats.norm.sf(z * math.sqrt(elapsed)))


def test_within_p_at_the_end_of_the_bake_asks_little_more_than_one_look() -> None:
    assert within_p(float(stats.norm.isf(0.01)), 1.0) == pytest.approx(0.02)
    # Early in the bake the same z is far weaker evidence.
    assert within_p(2.326, 0.1) > 0.4


@pytest.mark.parametrize("elapsed", [None, 0.0, -0.2, 1.01, 5.0])
def test_within_p_says_nothing_outside_the_bake(elapsed: float | None) -> None:
    assert within_p(10.0, elapsed) == 1.0


def test_a_canary_better_than_its_allowance_is_no_evidence() -> None:
    assert within_p(-3.0, 1.0) == 1.0


def test_the_join_gives_each_test_its_share_of_the_level() -> None:
    assert joined_p(0.01, None) == 0.01  # no planned end: the mixture alone, as ever
    assert joined_p(0.004, 1.0) == pytest.approx(0.004 / (1 - WITHIN_SHARE))
    assert joined_p(0.9, 0.0075) == pytest.approx(0.0075 / WITHIN_SHARE)
    assert joined_p(0.9, 0.9) == 1.0


def test_a_brownian_path_looked_at_600_times_crosses_at_most_alpha_of_the_time() -> None:
    # The reflection principle bounds every look up to the bake's end, however many there
    # are; with 600 looks the bound is nearly reached (continuous looking reaches it).
    rng = np.random.default_rng(11)
    paths, looks, alpha = 2000, 600, 0.05
    walk = rng.normal(size=(paths, looks)).cumsum(axis=1)
    elapsed = np.arange(1, looks + 1) / looks
    z = walk / np.sqrt(np.arange(1, looks + 1))
    crossed = np.mean(
        [
            any(within_p(float(zi), float(e)) < alpha for zi, e in zip(row, elapsed, strict=True))
            for row in z
        ]
    )
    margin = 3 * math.sqrt(alpha * (1 - alpha) / paths)
    assert crossed <= alpha + margin
    assert crossed > alpha / 2
    # A z-test at each of those looks fails far more often.
    assert np.mean(np.any(z > stats.norm.isf(alpha), axis=1)) > 3 * alpha


@pytest.mark.parametrize("traffic", ["flat", "rising x10", "falling x3", "x10 at the end"])
def test_the_level_holds_when_traffic_changes_during_the_bake(traffic: str) -> None:
    # The span is read as time, the evidence grows with the requests: traffic that rises
    # during the stage puts less evidence early than the time says. Ten looks, one a
    # minute, in a span of 66 steps (a 10-minute bake of 10 s steps and a check more).
    steps = np.arange(60)
    rate = {
        "flat": np.ones(60),
        "rising x10": 1 + 9 * steps / 60,
        "falling x3": 3 - 2 * steps / 60,
        "x10 at the end": np.where(steps >= 50, 10.0, 1.0),
    }[traffic]
    rng = np.random.default_rng(13)
    paths, level = 20_000, 0.05
    walk = (rng.normal(size=(paths, 60)) * np.sqrt(rate)).cumsum(axis=1)
    looks = np.arange(6, 61, 6)
    z = walk[:, looks - 1] / np.sqrt(np.cumsum(rate)[looks - 1])
    crossed = np.mean(
        [
            any(within_p(float(zi), k / 66) < level for zi, k in zip(row, looks, strict=True))
            for row in z
        ]
    )
    assert crossed <= level


def test_the_rate_test_keeps_its_level_over_ten_looks_through_the_bake() -> None:
    rng = np.random.default_rng(5)
    stages, fails, alpha = 300, 0, 0.05
    for _ in range(stages):
        c_hits, c_n = _steps(rng, 1000, 0.012, 60)  # exactly at its allowance, x1.2
        s_hits, s_n = _steps(rng, 4000, 0.01, 60)
        if any(
            rate_test(
                c_hits[:k], c_n[:k], s_hits[:k], s_n[:k], factor=1.2, alpha=alpha, elapsed=k / 60
            ).p_value
            < alpha
            for k in range(6, 61, 6)
        ):
            fails += 1
    assert fails / stages <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / stages)


def test_the_rate_test_sees_more_by_the_end_of_the_bake_than_the_mixture_alone() -> None:
    rng = np.random.default_rng(9)
    alone = joined = 0
    for _ in range(40):
        c_hits, c_n = _steps(rng, 1000, 0.0135, 60)  # x1.35 against an allowance of x1.2
        s_hits, s_n = _steps(rng, 4000, 0.01, 60)
        mixture = rate_test(c_hits, c_n, s_hits, s_n, factor=1.2)
        by_end = rate_test(c_hits, c_n, s_hits, s_n, factor=1.2, elapsed=1.0)
        early = rate_test(c_hits, c_n, s_hits, s_n, factor=1.2, elapsed=0.2)
        alone += mixture.p_value < 0.02
        joined += by_end.p_value < 0.02
        # Its interval is the test's: beyond the allowance exactly when it fails.
        assert (by_end.low > 1.2) == (by_end.p_value < 0.02)
        # The same data early in the bake are weaker evidence.
        assert early.p_value >= by_end.p_value
    assert joined >= alone + 8


def test_the_power_of_a_bake_counts_the_test_within_it() -> None:
    by_end = rate_ratio(60_000, 240_000, 0.01, factor=1.2)
    forever = rate_ratio(60_000, 240_000, 0.01, factor=1.2, elapsed=None)
    assert by_end is not None and forever is not None
    assert 1.2 < by_end < forever


def test_the_latency_test_sees_a_small_shift_by_the_end_of_the_bake() -> None:
    rng = np.random.default_rng(23)
    load = np.ones(60)
    canary = _loaded(rng, 100, 1.12 * load)
    stable = _loaded(rng, 400, load)
    alone = distribution_test(canary, stable, BOUNDS, factor=1.05)
    joined = distribution_test(canary, stable, BOUNDS, factor=1.05, elapsed=1.0)
    assert joined.p_value < alone.p_value
    assert joined.p_value < 0.02


def test_the_p_value_alone_is_the_same_without_the_interval() -> None:
    # The power and evidence figures ask only for the p-value: the interval is skipped.
    rng = np.random.default_rng(4)
    c_hits, c_n = _steps(rng, 1000, 0.014, 30)
    s_hits, s_n = _steps(rng, 4000, 0.01, 30)
    full = rate_test(c_hits, c_n, s_hits, s_n, factor=1.2, elapsed=0.5)
    alone = rate_test(c_hits, c_n, s_hits, s_n, factor=1.2, elapsed=0.5, bounded=False)
    assert alone.p_value == full.p_value and alone.ratio == full.ratio
    assert math.isnan(alone.low) and math.isnan(alone.high) and not math.isnan(full.low)
    canary = _loaded(rng, 100, np.full(30, 1.1))
    stable = _loaded(rng, 400, np.ones(30))
    whole = distribution_test(canary, stable, BOUNDS, factor=1.05, elapsed=0.5)
    bare = distribution_test(canary, stable, BOUNDS, factor=1.05, elapsed=0.5, bounded=False)
    assert bare.p_value == whole.p_value and bare.name == whole.name
    assert math.isnan(bare.low) and not math.isnan(whole.low)
