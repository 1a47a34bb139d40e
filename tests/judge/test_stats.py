"""The statistical tests, with numbers worked out by hand."""

from __future__ import annotations

import math
import random

import pytest

from activities.stats import dispersion, mann_whitney, median, two_proportion


def test_equal_sides_sit_at_the_middle() -> None:
    result = two_proportion([10], [1000], [10], [1000])
    assert result.statistic == pytest.approx(0.0)
    assert result.p_value == pytest.approx(0.5)


def test_a_worse_canary_has_the_z_of_the_adjusted_proportions() -> None:
    # Agresti-Caffo: canary (48+1)/(98+2) = 0.49, stable (8+1)/(98+2) = 0.09.
    result = two_proportion([48], [98], [8], [98])
    spread = math.sqrt(0.49 * 0.51 / 100 + 0.09 * 0.91 / 100)
    assert result.statistic == pytest.approx((0.49 - 0.09) / spread)
    assert result.statistic == pytest.approx(6.9442, abs=1e-4)
    assert result.p_value < 1e-11


def test_the_allowance_moves_the_null_hypothesis() -> None:
    # Tolerated: 0.09 x 2 + 0.3 = 0.48, just under the canary's 0.49.
    result = two_proportion([48], [98], [8], [98], factor=2.0, margin=0.3)
    spread = math.sqrt(0.49 * 0.51 / 100 + 4 * 0.09 * 0.91 / 100)
    assert result.statistic == pytest.approx((0.49 - 0.48) / spread)
    assert result.p_value == pytest.approx(0.4477, abs=1e-4)


def test_a_better_canary_never_fails_an_increase_test() -> None:
    assert two_proportion([0], [998], [48], [998]).p_value > 0.999


def test_decrease_and_either() -> None:
    down = two_proportion([8], [98], [48], [98], direction="decrease")
    assert down.statistic == pytest.approx(-6.9442, abs=1e-4)
    assert down.p_value < 1e-11
    either = two_proportion([48], [98], [8], [98], direction="either")
    up = two_proportion([48], [98], [8], [98])
    assert either.p_value == pytest.approx(2 * up.p_value)


def test_dispersion_is_chi_square_over_degrees_of_freedom() -> None:
    # p = 10/200 = 0.05: each step is 5 hits from its expectation, n p (1-p) = 4.75.
    assert dispersion([0, 10], [100, 100]) == pytest.approx(50 / 4.75)
    assert dispersion([5, 5], [100, 100]) == 1.0
    assert dispersion([3], [100]) == 1.0
    assert dispersion([0, 0], [100, 100]) == 1.0


def test_the_stables_bursts_widen_both_sides() -> None:
    steady = two_proportion([6, 6], [100, 100], [5, 5], [100, 100])
    bursty = two_proportion([6, 6], [100, 100], [0, 10], [100, 100])
    assert 0 < bursty.statistic < steady.statistic
    # Stable dispersion 50/4.75; the canary's is scaled to its own traffic (equal here).
    phi = 50 / 4.75
    p_c, p_s = 13 / 202, 11 / 202
    spread = math.sqrt(phi * p_c * (1 - p_c) / 202 + phi * p_s * (1 - p_s) / 202)
    assert bursty.statistic == pytest.approx((p_c - p_s) / spread)


def test_a_canary_that_breaks_mid_window_does_not_hide_behind_its_own_spread() -> None:
    sudden = two_proportion([0, 0, 0, 30], [100] * 4, [1, 1, 1, 1], [400] * 4)
    assert sudden.p_value < 0.001


def test_two_proportion_needs_requests() -> None:
    with pytest.raises(ValueError, match="requests"):
        two_proportion([0], [0], [1], [10])


def test_mann_whitney_exact_for_separated_samples() -> None:
    result = mann_whitney([5, 6, 7, 8], [1, 2, 3, 4])
    assert result.statistic == 16
    assert result.p_value == pytest.approx(1 / 70)


def test_mann_whitney_with_an_allowance() -> None:
    # Stable x1 + 0.5 is still below every canary value; + 10 is above all of them.
    assert mann_whitney([5, 6, 7, 8], [1, 2, 3, 4], margin=0.5).p_value == pytest.approx(1 / 70)
    assert mann_whitney([5, 6, 7, 8], [1, 2, 3, 4], margin=10).p_value == pytest.approx(1.0)


def test_mann_whitney_directions() -> None:
    down = mann_whitney([1, 2, 3, 4], [5, 6, 7, 8], direction="decrease")
    assert (down.statistic, down.p_value) == (0, pytest.approx(1 / 70))
    either = mann_whitney([5, 6, 7, 8], [1, 2, 3, 4], direction="either")
    assert either.p_value == pytest.approx(2 / 70)


def test_mann_whitney_normal_approximation_with_ties() -> None:
    # Canary [2, 3], stable [1, 2]: ranks 2.5, 4 and 1, 2.5 (a tie, so not exact).
    # U1 = 2.5 + 4 - 3 = 3.5; ties [2]: sigma^2 = 4/12 * (5 - 6/12) = 1.5.
    result = mann_whitney([2, 3], [1, 2])
    z = (3.5 - 2 - 0.5) / math.sqrt(1.5)
    assert result.statistic == 3.5
    assert result.p_value == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)))


def test_mann_whitney_exact_with_one_small_side() -> None:
    # One canary value above 20 stable ones: U = 20 of 21 equally likely ranks, p = 1/21.
    result = mann_whitney([100.0], [float(v) for v in range(20)])
    assert (result.statistic, result.p_value) == (20, pytest.approx(1 / 21))


@pytest.mark.parametrize("seed", range(4))
def test_mann_whitney_agrees_with_scipy(seed: int) -> None:
    # The reference implementation (scipy, in the dev extra), exact and normal cases alike.
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = random.Random(seed)
    for _ in range(200):
        pool = rng.choice([3, 10, 10**6])
        canary = [float(rng.randint(0, pool)) for _ in range(rng.randint(1, 15))]
        stable = [float(rng.randint(0, pool)) for _ in range(rng.randint(1, 15))]
        if len(set(canary) | set(stable)) == 1:
            continue
        for direction, alternative in (("increase", "greater"), ("decrease", "less")):
            ours = mann_whitney(canary, stable, direction=direction)
            theirs = scipy_stats.mannwhitneyu(canary, stable, alternative=alternative)
            assert ours.statistic == theirs.statistic
            assert ours.p_value == pytest.approx(float(theirs.pvalue), abs=1e-12)


def test_two_proportion_tails_agree_with_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    up = two_proportion([30], [1000], [10], [1000])
    down = two_proportion([30], [1000], [10], [1000], direction="decrease")
    assert up.p_value == pytest.approx(float(scipy_stats.norm.sf(up.statistic)), rel=1e-12)
    assert down.p_value == pytest.approx(float(scipy_stats.norm.cdf(down.statistic)), rel=1e-12)


def test_identical_values_are_no_evidence() -> None:
    result = mann_whitney([3.0, 3.0, 3.0], [3.0, 3.0])
    assert result.p_value == 1.0


def test_median() -> None:
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 3, 2]) == 2.5
