"""The errors' dispersion the sequential rate test widens by: known values, and the level
of the test on bursty healthy stages at early looks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from activities.anytime import RATE_TAU, always_valid_p, paired_excess, rate_test
from activities.anytime_latency import distribution_test
from activities.dispersion import (
    PAIRED_STEPS,
    bound_confidence,
    dispersion_bound,
    median_rank,
    robust_dispersion,
)

LATENCY_BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, math.inf]


def test_median_rank_is_the_binomial_quantile_above_the_median() -> None:
    # Binomial(4, 1/2): P(B <= 1) = 5/16, P(B <= 2) = 11/16: the 3rd of 4 at 60%.
    assert median_rank(4, 0.6) == 3
    # Binomial(6, 1/2): P(B <= 3) = 42/64, P(B <= 4) = 57/64: the 5th of 6 at 80%.
    assert median_rank(6, 0.8) == 5
    # Binomial(12, 1/2): P(B <= 5) = 0.387, P(B <= 6) = 0.613: the 7th at 50%.
    assert median_rank(12, 0.5) == 7
    assert median_rank(3, 0.99) == 3  # never beyond the largest
    assert median_rank(1, 0.6) == 1


def test_the_bound_is_surer_with_fewer_residuals() -> None:
    assert bound_confidence(0) == 1.0
    assert bound_confidence(16) == pytest.approx(0.8)
    assert bound_confidence(32) == pytest.approx(0.6)
    assert bound_confidence(500) == pytest.approx(0.6)


def test_dispersion_bound_known_value() -> None:
    # Stable: 10, 30, 20 errors of 1,000: around the median share 0.02 the squared
    # residuals are 100 / 19.6, 100 / 19.6 and 0, times 3 / 2 for the centre. Canary:
    # 4 and 6 of 250 (a quarter of the stable's traffic): around 0.02 each is
    # 1 / 4.9, times 2. The dispersions they name, 1 + (r / 0.45494 - 1) / w:
    chi = 0.4549364231195724
    stable = 1 + (100 / 19.6 * 1.5 / chi - 1)
    canary = 1 + (1 / 4.9 * 2 / chi - 1) / 0.25
    named = sorted([stable, stable, 1 + (0 / chi - 1), canary, canary])
    # Five residuals: confidence 1 - 0.4 x 5 / 32 = 0.9375; P(B <= 3) = 26/32 < 0.9375
    # <= P(B <= 4) = 31/32 for Binomial(5, 1/2): the 5th of 5.
    found = dispersion_bound(
        np.array([4.0, 6.0, math.nan]),
        np.array([250.0, 250.0, 0.0]),
        np.array([10.0, 30.0, 20.0]),
        np.array([1000.0, 1000.0, 1000.0]),
    )
    assert found == pytest.approx(named[4])
    assert found == pytest.approx(16.822, abs=0.001)


def test_a_single_step_assumes_bursts_unless_told_not_to() -> None:
    # 400 errors of 40,000: 1 + 0.25 x 40,000 x 0.01 / 0.99 = 102.01.
    one = (np.array([100.0]), np.array([10_000.0]), np.array([400.0]), np.array([40_000.0]))
    assert dispersion_bound(*one) == pytest.approx(102.0101, abs=0.001)
    assert dispersion_bound(*one, prior=0.0) == 1.0


def test_two_calm_steps_do_not_pass_for_steady_ones() -> None:
    # Each step exactly at 1% shows no residual; until each version has 3 steps the bursts
    # are assumed all the same: 1 + 0.25 x 4,000 x 0.01 / 0.99 = 11.10 for a step of the
    # stable's 4,000 requests. From the third step on, the steps speak for themselves.
    c_n, s_n = np.full(3, 1000.0), np.full(3, 4000.0)
    c, s = c_n * 0.01, s_n * 0.01
    assumed = 1 + 0.25 * 4000 * 0.01 / 0.99
    assert dispersion_bound(c[:2], c_n[:2], s[:2], s_n[:2]) == pytest.approx(assumed)
    assert dispersion_bound(c[:1], c_n[:1], s[:1], s_n[:1]) == pytest.approx(assumed)
    assert dispersion_bound(c, c_n, s, s_n) == 1.0


def test_binomial_steps_leave_the_bound_near_one() -> None:
    rng = np.random.default_rng(31)
    c_n, s_n = np.full(60, 1000.0), np.full(60, 4000.0)
    c, s = rng.binomial(1000, 0.01, 60).astype(float), rng.binomial(4000, 0.01, 60)
    assert dispersion_bound(c, c_n, s.astype(float), s_n) < 1.6


def _bursty_stage(rng: np.random.Generator, rps: int) -> list[np.ndarray]:
    """A healthy canary (20%) and its stable, 60 steps of 10 s: each version's errors at
    1% times a Gamma(1, 1) burst of its own per second, times 5 in incidents both share
    (one every 30 minutes on average, 30 s on average)."""
    seconds = 600
    shared = np.ones(seconds)
    t = int(rng.exponential(1800))
    while t < seconds:
        length = max(1, int(rng.exponential(30)))
        shared[t : t + length] = 5.0
        t += length + int(rng.exponential(1800))
    out = []
    for r in (rps, 4 * rps):
        requests = rng.poisson(r, seconds)
        errors = rng.binomial(requests, np.minimum(0.01 * shared * rng.gamma(1, 1, seconds), 1))
        out += [errors.reshape(-1, 10).sum(1).astype(float)]
        out += [requests.reshape(-1, 10).sum(1).astype(float)]
    return out


def _point_estimate_p(steps: np.ndarray, alpha: float) -> float:
    """The rate test as it was: the stable's median dispersion, none under 5 steps."""
    spread = robust_dispersion(steps[:, 2], steps[:, 3])
    typical = float(np.median(steps[:, 2] / steps[:, 3]))
    excess, var, expected = paired_excess(steps, spread, 1.0, 0.0, typical)
    c_n = steps[:, 1].sum()
    tau = RATE_TAU * max(expected / c_n, 0.5 / (c_n + 1))
    return always_valid_p(excess / c_n, var / c_n**2, tau)


def test_bursty_healthy_stages_keep_the_level_at_early_looks() -> None:
    # 200 healthy stages at 1,000 requests a second, looked at after 1, 2, 3, 4 and 6
    # steps and then every minute: a dispersion read as a point estimate from a few
    # steps (or assumed away) rolls back about a third of them; the bound keeps alpha.
    rng = np.random.default_rng(2026)
    stages, alpha = 200, 0.05
    looks = (1, 2, 3, 4, 6, 12, 24, 36, 60)
    before = after = within = 0
    for _ in range(stages):
        c, c_n, s, s_n = _bursty_stage(rng, 1000)
        steps = np.stack([c, c_n, s, s_n], axis=1)
        before += any(_point_estimate_p(steps[:k], alpha) < alpha for k in looks)
        after += any(
            rate_test(c[:k], c_n[:k], s[:k], s_n[:k], alpha=alpha).p_value < alpha for k in looks
        )
        # With the stage's span known (60 steps and a check more), as the workflow asks.
        within = within + any(
            rate_test(c[:k], c_n[:k], s[:k], s_n[:k], alpha=alpha, elapsed=k / 66).p_value < alpha
            for k in looks
        )
    se = math.sqrt(alpha * (1 - alpha) / stages)
    assert before / stages > alpha + 3 * se
    assert after / stages <= alpha + 3 * se
    assert within / stages <= alpha + 3 * se


def _minute(rng: np.random.Generator, requests: int, scale: float) -> list[float]:
    """One step's bucket counts of a log-normal latency (median 60ms) ``scale`` times slower."""
    values = 0.06 * scale * np.exp(rng.normal(0, 0.5, requests))
    index = np.searchsorted(np.array(LATENCY_BOUNDS), values, side="left")
    return list(np.bincount(index, minlength=len(LATENCY_BOUNDS)).astype(float))


def test_one_step_of_latency_is_not_measured_to_a_fraction_of_a_percent() -> None:
    # A canary 12% slower in a single step of 30,000 requests: as exact samples (no wander)
    # that is far beyond the +7% allowed; but a version's own minute runs a few percent
    # slow or fast, and one step cannot show by how much, so the wander assumed holds it.
    rng = np.random.default_rng(5)
    canary, stable = [_minute(rng, 30_000, 1.12)], [_minute(rng, 120_000, 1.0)]
    exact = distribution_test(canary, stable, LATENCY_BOUNDS, factor=1.07, wander=0.0)
    assert exact.p_value < 1e-4
    assumed = distribution_test(canary, stable, LATENCY_BOUNDS, factor=1.07)
    assert assumed.p_value > 0.02
    # Six steps show how the versions' steps vary (here by chance alone): the wander is
    # no longer assumed, and the same shift is plain.
    canary = [_minute(rng, 5_000, 1.12) for _ in range(PAIRED_STEPS)]
    stable = [_minute(rng, 20_000, 1.0) for _ in range(PAIRED_STEPS)]
    assert distribution_test(canary, stable, LATENCY_BOUNDS, factor=1.07).p_value < 1e-4
