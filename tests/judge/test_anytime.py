"""The tests valid at every look: closed forms against numerical reference values, error rates
under repeated looks by simulation, and what the rate and latency tests find."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special, stats

from activities.anytime import (
    always_valid_p,
    detectable_rate_ratio,
    log_mixture_ratio,
    log_mixture_ratios,
    log_phi,
    radius,
    rate_test,
    robust_dispersion,
)
from activities.anytime_latency import OneBucket, distribution_test, log_density
from activities.dispersion import paired_spread
from activities.stats import dispersion

# -- the mixture ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("excess", "variance", "tau"),
    [(0.3, 0.01, 0.1), (0.0, 0.04, 0.2), (-0.1, 0.01, 0.05), (0.002, 1e-6, 0.005)],
)
def test_the_closed_form_is_the_mixture_integral(
    excess: float, variance: float, tau: float
) -> None:
    # Lambda = integral over t > 0 of the likelihood ratio N(d; t, V) / N(d; 0, V), weighed
    # by a half-normal prior of scale tau.
    def weighed(t: float) -> float:
        ratio = math.exp(t * excess / variance - t * t / (2 * variance))
        return ratio * 2 * float(stats.norm.pdf(t, 0, tau))

    reference, _ = integrate.quad(weighed, 0, 12 * tau, epsabs=1e-13, epsrel=1e-11)
    assert log_mixture_ratio(excess, variance, tau) == pytest.approx(math.log(reference), abs=1e-7)


def test_no_excess_gives_no_evidence() -> None:
    # At d = 0 the mixture is 2 sqrt(V / (V + tau^2)) Phi(0) = sqrt(V / (V + tau^2)) < 1.
    assert log_mixture_ratio(0.0, 1.0, 1.0) == pytest.approx(0.5 * math.log(0.5))
    assert always_valid_p(0.0, 1.0, 1.0) == 1.0


@pytest.mark.parametrize("x", [3.0, 0.0, -5.0, -29.9, -30.1, -40.0, -200.0])
def test_log_phi_matches_scipy_far_into_the_tail(x: float) -> None:
    assert log_phi(x) == pytest.approx(float(special.log_ndtr(x)), rel=1e-9)


def test_a_far_better_canary_is_no_evidence_at_all() -> None:
    # Numerically: the exponent and log Phi cancel, and nothing overflows.
    assert always_valid_p(-40.0, 1.0, 0.5) == 1.0
    assert always_valid_p(-1e4, 1.0, 0.5) == 1.0


def test_the_radius_is_where_the_two_sided_mixture_reaches_one_over_alpha() -> None:
    variance, tau, alpha = 0.02, 0.1, 0.05
    r = radius(variance, tau, alpha)
    total = variance + tau * tau
    two_sided = math.sqrt(variance / total) * math.exp(tau * tau * r * r / (2 * variance * total))
    assert two_sided == pytest.approx(1 / alpha)


def test_a_random_walk_under_the_null_crosses_the_boundary_at_most_alpha_of_the_time() -> None:
    # Ville's inequality: 1,000 looks per path, standard normal increments, no effect.
    rng = np.random.default_rng(3)
    paths, looks, alpha = 2000, 1000, 0.05
    sums = rng.normal(size=(paths, looks)).cumsum(axis=1)
    n = np.arange(1, looks + 1)
    crossed = 0
    for row in sums:
        estimates, variances = row / n, 1.0 / n
        if any(
            always_valid_p(float(d), float(v), 0.3) < alpha
            for d, v in zip(estimates[::5], variances[::5], strict=True)
        ):
            crossed += 1
    assert crossed / paths <= alpha
    # A fixed-sample z-test at each of the same looks would have failed far more often.
    z_fails = np.mean(np.any(sums[:, ::5] / np.sqrt(n[::5]) > stats.norm.isf(alpha), axis=1))
    assert z_fails > 3 * alpha


def test_the_array_mixture_is_the_scalar_one() -> None:
    excess = np.array([0.3, 0.0, -0.1, 0.002, -40.0])
    variance = np.array([0.01, 0.04, 0.01, 1e-6, 1.0])
    found = log_mixture_ratios(excess, variance, 0.1)
    expected = [
        log_mixture_ratio(float(d), float(v), 0.1) for d, v in zip(excess, variance, strict=True)
    ]
    assert found == pytest.approx(expected, rel=1e-9)


# -- overdispersion ---------------------------------------------------------------------------


def test_robust_dispersion_is_one_for_binomial_steps_and_ignores_one_incident() -> None:
    rng = np.random.default_rng(5)
    totals = np.full(60, 4000)
    hits = rng.binomial(totals, 0.01).astype(float)
    assert robust_dispersion(hits, totals) == pytest.approx(1.0, abs=0.35)
    hits[10:13] *= 5  # a shared incident: three steps of five times the errors
    assert dispersion(hits, totals) > 10
    assert robust_dispersion(hits, totals) < 1.6


def test_robust_dispersion_measures_gamma_poisson_bursts() -> None:
    # Counts with mean 40 and variance 40 + 40^2 / 20 = 120: dispersion 3.
    rng = np.random.default_rng(6)
    totals = np.full(400, 4000)
    hits = rng.poisson(rng.gamma(20, 40 / 20, 400)).astype(float)
    assert robust_dispersion(hits, totals) == pytest.approx(3.0, rel=0.25)


def _shares(
    rng: np.random.Generator, n: int, share: np.ndarray, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    totals = rng.poisson(n, steps).astype(float)
    return rng.binomial(totals.astype(int), share).astype(float), totals


def test_paired_spread_is_one_for_binomial_steps() -> None:
    rng = np.random.default_rng(20)
    c, c_n = _shares(rng, 1000, np.full(1000, 0.3), 1000)
    s, s_n = _shares(rng, 4000, np.full(1000, 0.3), 1000)
    found = paired_spread(c[None, :], c_n, s[None, :], s_n, np.array([0.21]))
    assert found[0] == pytest.approx(1.0, abs=0.3)


def test_paired_spread_cancels_a_load_both_versions_share() -> None:
    # Each step's share moves for both versions alike (sd 0.05): the stable alone looks
    # 1 + 0.05^2 / (0.21 / 4000) = 48 times over binomial, the pair not at all.
    rng = np.random.default_rng(21)
    load = np.clip(0.3 + rng.normal(0, 0.05, 200), 0.01, 0.99)
    c, c_n = _shares(rng, 1000, load, 200)
    s, s_n = _shares(rng, 4000, load, 200)
    assert robust_dispersion(s, s_n) > 20
    found = paired_spread(c[None, :], c_n, s[None, :], s_n, np.array([0.21]))
    assert found[0] == pytest.approx(1.0, abs=0.3)


def test_paired_spread_does_not_take_a_shift_that_starts_mid_stage_for_noise() -> None:
    # The canary's share steps from 0.3 to 0.33 halfway: around the average every step
    # would look off by 0.015 (a dispersion near 3); step to step it changed once.
    rng = np.random.default_rng(23)
    share = np.where(np.arange(200) < 100, 0.3, 0.33)
    c, c_n = _shares(rng, 1000, share, 200)
    s, s_n = _shares(rng, 4000, np.full(200, 0.3), 200)
    found = paired_spread(c[None, :], c_n, s[None, :], s_n, np.array([0.21]))
    assert found[0] == pytest.approx(1.0, abs=0.4)


def test_paired_spread_measures_each_versions_own_noise() -> None:
    # Each version's share has noise of its own, sd 0.02 per step: extra variance 0.0004,
    # in units of the stable's binomial variance 0.21 / 4000: spread 1 + 7.62 = 8.62.
    rng = np.random.default_rng(22)
    steps = 400
    c, c_n = _shares(rng, 1000, 0.3 + rng.normal(0, 0.02, steps), steps)
    s, s_n = _shares(rng, 4000, 0.3 + rng.normal(0, 0.02, steps), steps)
    found = paired_spread(c[None, :], c_n, s[None, :], s_n, np.array([0.21]))
    assert found[0] == pytest.approx(8.62, rel=0.25)
    # Too few steps say nothing.
    assert paired_spread(c[None, :4], c_n[:4], s[None, :4], s_n[:4], np.array([0.21]))[0] == 1


# -- rates ------------------------------------------------------------------------------------


def _steps(rng: np.random.Generator, n: int, p: float, steps: int) -> tuple[list[float], ...]:
    totals = rng.poisson(n, steps).astype(float)
    return list(rng.binomial(totals.astype(int), p).astype(float)), list(totals)


def test_rate_test_keeps_its_error_rate_over_sixty_looks() -> None:
    rng = np.random.default_rng(7)
    stages, fails = 300, 0
    for _ in range(stages):
        c_hits, c_n = _steps(rng, 1000, 0.01, 60)
        s_hits, s_n = _steps(rng, 4000, 0.01, 60)
        if any(
            rate_test(c_hits[:k], c_n[:k], s_hits[:k], s_n[:k], alpha=0.05).p_value < 0.05
            for k in range(6, 61, 6)
        ):
            fails += 1
    assert fails / stages <= 0.05


def test_rate_test_finds_a_doubled_rate_and_says_how_much() -> None:
    rng = np.random.default_rng(8)
    c_hits, c_n = _steps(rng, 1000, 0.02, 60)
    s_hits, s_n = _steps(rng, 4000, 0.01, 60)
    found = rate_test(c_hits, c_n, s_hits, s_n, factor=1.2, margin=0.0005)
    assert found.p_value < 1e-6
    assert found.low < 2.0 < found.high
    assert found.ratio == pytest.approx(2.0, rel=0.1)
    assert found.canary == pytest.approx(sum(c_hits) / sum(c_n))


def test_the_allowance_is_inside_the_null() -> None:
    rng = np.random.default_rng(9)
    c_hits, c_n = _steps(rng, 1000, 0.014, 60)
    s_hits, s_n = _steps(rng, 4000, 0.01, 60)
    assert rate_test(c_hits, c_n, s_hits, s_n, factor=1.5).p_value == 1.0
    assert rate_test(c_hits, c_n, s_hits, s_n).p_value < 0.02


def test_a_shared_incident_cancels_step_by_step() -> None:
    rng = np.random.default_rng(10)
    c_hits, c_n = _steps(rng, 1000, 0.01, 60)
    s_hits, s_n = _steps(rng, 4000, 0.01, 60)
    for k in range(20, 24):  # both versions fail a fifth of their requests for 40 s
        c_hits[k] = float(rng.binomial(int(c_n[k]), 0.2))
        s_hits[k] = float(rng.binomial(int(s_n[k]), 0.2))
    found = rate_test(c_hits, c_n, s_hits, s_n, factor=1.2)
    assert found.p_value == 1.0
    assert found.ratio == pytest.approx(1.0, abs=0.15)


def _bursty(rng: np.random.Generator, rps: int, rate: np.ndarray) -> tuple[list[float], ...]:
    """10 s steps of bursty errors: each second's rate times a Gamma(2, 0.5) burst."""
    requests = rng.poisson(rps, (len(rate), 10))
    errors = rng.binomial(
        requests, np.minimum(rate[:, None] * rng.gamma(2, 0.5, requests.shape), 1)
    )
    return list(errors.sum(axis=1).astype(float)), list(requests.sum(axis=1).astype(float))


def test_bursty_errors_keep_the_level_through_an_incident_both_versions_share() -> None:
    # At 1,000 requests a second bursts make a step's errors six times as variable as
    # binomial; an incident multiplies the rate by 5 for 30 s in both versions, its bursts
    # with it. Looked at every minute from the third, the test keeps its level.
    rng = np.random.default_rng(18)
    stages, fails, alpha = 200, 0, 0.05
    for _ in range(stages):
        rate = np.full(60, 0.01)
        start = int(rng.integers(18, 54))
        rate[start : start + 3] *= 5
        c_hits, c_n = _bursty(rng, 1000, rate)
        s_hits, s_n = _bursty(rng, 4000, rate)
        if any(
            rate_test(c_hits[:k], c_n[:k], s_hits[:k], s_n[:k], alpha=alpha).p_value < alpha
            for k in range(18, 61, 6)
        ):
            fails += 1
    assert fails / stages <= alpha


def test_decrease_and_either_directions() -> None:
    rng = np.random.default_rng(11)
    good, n = _steps(rng, 1000, 0.95, 30)  # a success rate that fell
    s_good, s_n = _steps(rng, 4000, 0.99, 30)
    assert rate_test(good, n, s_good, s_n, direction="decrease").p_value < 1e-6
    assert rate_test(good, n, s_good, s_n, direction="increase").p_value == 1.0
    either = rate_test(good, n, s_good, s_n, direction="either").p_value
    assert either < 1e-6


# -- latency from buckets ---------------------------------------------------------------------

BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, math.inf]


def _histogram(
    rng: np.random.Generator, rps: int, scale: float, steps: int = 60, tail: float = 1.0
) -> list[list[float]]:
    """Bucket counts per step of a log-normal latency (median 60ms), optionally its tail slower."""
    out = []
    for _ in range(steps):
        values = 0.06 * scale * np.exp(rng.normal(0, 0.5, rng.poisson(rps)))
        values = np.where(values > 0.15, values * tail, values)
        idx = np.searchsorted(np.array(BOUNDS), values, side="left")
        out.append(list(np.bincount(idx, minlength=len(BOUNDS)).astype(float)))
    return out


def test_log_density_is_exact_for_latency_uniform_in_log() -> None:
    # Uniform in log latency over [1ms, 10s]: density 1 / ln(10^4) everywhere.
    bounds = [0.001, 0.01, 0.1, 1.0, 10.0, math.inf]
    counts = [0.0, 1000.0, 1000.0, 1000.0, 1000.0, 0.0]
    for k in (1, 2, 3):
        assert log_density(k, counts, bounds) == pytest.approx(1 / math.log(1e4))
    # A bound between a bucket from 0 and the next: only the next has a width in log.
    assert log_density(0, counts, bounds) == pytest.approx(1000 / 4000 / math.log(10))


def test_the_same_latency_passes() -> None:
    rng = np.random.default_rng(12)
    found = distribution_test(
        _histogram(rng, 100, 1.0), _histogram(rng, 400, 1.0), BOUNDS, factor=1.05
    )
    assert found.p_value == 1.0
    assert found.low < 1.0 < found.high
    # A pass reads the whole distribution's shift, narrow with 24,000 vs 6,000 requests.
    assert "whole distribution's shift" in found.note
    assert found.high / found.low < 1.1


def test_a_body_shift_is_found_with_its_size() -> None:
    rng = np.random.default_rng(13)
    canary, stable = _histogram(rng, 100, 1.2), _histogram(rng, 400, 1.0)
    found = distribution_test(canary, stable, BOUNDS, factor=1.05)
    assert found.p_value < 1e-4
    assert 1.1 < found.ratio < 1.35
    assert found.low > 1.05
    # The whole distribution moved: its score is the most telling part of the test.
    assert found.name.startswith("p")
    assert "whole distribution's shift" in found.note
    assert "bucket bound(s)" in found.note


def test_a_tail_only_shift_is_found_at_the_tail() -> None:
    rng = np.random.default_rng(14)
    canary, stable = _histogram(rng, 1000, 1.0, tail=1.5), _histogram(rng, 4000, 1.0)
    found = distribution_test(canary, stable, BOUNDS, factor=1.05)
    assert found.p_value < 0.02
    assert float(found.name[1:]) > 90  # found above the stable's p90
    assert found.stable >= 0.1


def test_a_small_shift_of_the_whole_body_is_found_as_a_whole() -> None:
    rng = np.random.default_rng(16)
    canary, stable = _histogram(rng, 1000, 1.1), _histogram(rng, 4000, 1.0)
    found = distribution_test(canary, stable, BOUNDS, factor=1.05)
    assert found.p_value < 0.02
    assert "whole distribution's shift" in found.note
    assert found.low > 1.05 and 1.05 < found.ratio < 1.15
    assert "as a whole" in found.note


def _loaded(rng: np.random.Generator, rps: int, load: np.ndarray) -> list[list[float]]:
    """Log-normal latency histograms per step, each step slowed by ``load`` (its factor)."""
    out = []
    for factor in load:
        values = 0.06 * factor * np.exp(rng.normal(0, 0.5, rng.poisson(rps)))
        idx = np.searchsorted(np.array(BOUNDS), values, side="left")
        out.append(list(np.bincount(idx, minlength=len(BOUNDS)).astype(float)))
    return out


@pytest.mark.parametrize("span", [None, 66])
def test_latency_test_keeps_its_error_rate_over_ten_looks_under_a_shared_load(
    span: int | None,
) -> None:
    # A canary exactly at its allowance (x1.05), every step slowed by a load both versions
    # share and a little noise of each version's own; looked at ten times a stage. With a
    # span (60 steps and a check more), the test within it joins the mixture.
    rng = np.random.default_rng(17)
    stages, fails, alpha = 150, 0, 0.05
    for _ in range(stages):
        load = np.exp(rng.normal(0, 0.05, 60))
        canary = _loaded(rng, 300, 1.05 * load * np.exp(rng.normal(0, 0.02, 60)))
        stable = _loaded(rng, 1200, load * np.exp(rng.normal(0, 0.02, 60)))
        if any(
            distribution_test(
                canary[:k],
                stable[:k],
                BOUNDS,
                factor=1.05,
                alpha=alpha,
                elapsed=None if span is None else k / span,
            ).p_value
            < alpha
            for k in range(6, 61, 6)
        ):
            fails += 1
    assert fails / stages <= alpha


def test_a_tail_only_shift_from_mid_stage_is_found() -> None:
    rng = np.random.default_rng(19)
    stable = _histogram(rng, 400, 1.0)
    canary = _histogram(rng, 100, 1.0, steps=30) + _histogram(rng, 100, 1.0, steps=30, tail=2)
    found = distribution_test(canary, stable, BOUNDS, factor=1.07)
    assert found.p_value < 0.02
    assert float(found.name[1:]) > 90


def test_too_few_requests_for_any_bound() -> None:
    rng = np.random.default_rng(15)
    with pytest.raises(ValueError, match="too few requests"):
        distribution_test(
            _histogram(rng, 1, 1.0, steps=2), _histogram(rng, 4, 1.0, steps=2), BOUNDS
        )


# -- the interval the verdict shows -----------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_the_rate_interval_clears_the_allowance_exactly_when_the_test_fails(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    c_hits, c_n = _steps(rng, 300, 0.01 * (1.1 + 0.1 * seed), 30)
    s_hits, s_n = _steps(rng, 1200, 0.01, 30)
    found = rate_test(c_hits, c_n, s_hits, s_n, factor=1.2)
    assert (found.low > 1.2) == (found.p_value < 0.02), found
    assert found.low <= found.ratio <= found.high


@pytest.mark.parametrize("scale", [1.0, 1.05, 1.1, 1.15, 1.3])
def test_the_latency_interval_clears_the_allowance_exactly_when_the_test_fails(
    scale: float,
) -> None:
    rng = np.random.default_rng(int(scale * 100))
    canary, stable = _histogram(rng, 60, scale, steps=30), _histogram(rng, 240, 1.0, steps=30)
    found = distribution_test(canary, stable, BOUNDS, factor=1.06)
    assert (found.low > 1.06) == (found.p_value < 0.02), found
    assert found.low <= found.ratio <= found.high


def test_every_request_in_one_bucket_shows_no_shift_and_says_so() -> None:
    fast = [[50.0] + [0.0] * (len(BOUNDS) - 1) for _ in range(10)]
    with pytest.raises(OneBucket, match=r"in the 0-5ms bucket .*cannot be seen"):
        distribution_test(fast, fast, BOUNDS)


def test_a_shift_across_a_bucket_is_seen_though_neither_side_straddles_it() -> None:
    # The stable all at or below 5ms, the canary all in 25-50ms: no bound has requests on
    # both of its sides in each version, yet the two together show the canary moved.
    stable = [[400.0] + [0.0] * (len(BOUNDS) - 1) for _ in range(10)]
    canary = [[0.0, 0.0, 0.0, 100.0] + [0.0] * (len(BOUNDS) - 4) for _ in range(10)]
    found = distribution_test(canary, stable, BOUNDS, factor=1.06)
    assert found.p_value < 1e-6 and found.low > 1.06


# -- what a stage can detect ------------------------------------------------------------------


def test_more_traffic_detects_smaller_regressions_and_never_inside_the_allowance() -> None:
    found = [
        detectable_rate_ratio(n, 4 * n, 0.01, factor=1.2, margin=0.0005)
        for n in (1_000, 6_000, 60_000, 600_000)
    ]
    assert found == sorted(found, reverse=True)
    assert all(r > 1.25 for r in found)  # the allowance: x1.2 + 0.05 point at 1%
    assert found[-1] < 1.35
    # The test itself agrees at the found effect: just rejected there, not just below it.
    ratio = detectable_rate_ratio(60_000, 240_000, 0.01, factor=1.2, margin=0.0005)
    # One step of binomial noise at the bake's end, as the power computation takes a stage
    # (no bursts assumed).
    at = rate_test(
        [600 * ratio], [60_000], [2400], [240_000], factor=1.2, margin=0.0005, prior=0.0, elapsed=1
    )
    assert at.p_value < 0.02 * 1.01
    assert detectable_rate_ratio(10, 40, 0.001) > 100  # only a canary failing nearly all
    assert detectable_rate_ratio(0, 40, 0.001) == math.inf
