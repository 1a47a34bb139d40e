"""Tests begun again part-way through the bake: a late change is seen, the level kept."""

from __future__ import annotations

import numpy as np
import pytest

from activities import anytime, restarts
from activities.anytime import Sequential
from activities.judge import Side, judge_gate
from activities.restarts import Window
from activities.within_bake import WITHIN_SHARE
from plans import GateOutcome
from tests.judge.test_sequential import error_gate, latency_gate

WHOLE = 1 - restarts.RESTART_SHARE
SHARE = restarts.RESTART_SHARE / len(restarts.RESTARTS)


def test_the_windows_are_fixed_shares_of_the_span_and_split_the_level() -> None:
    # Without a planned span only the whole stage is tested, at the whole level.
    assert restarts.windows(12, None) == [Window(0.0, 0, None, 1.0)]
    # Before a quarter of the span, the whole stage only. Its test within the span keeps
    # its 75% of the level; the restarts' share comes out of its mixture's.
    (whole,) = restarts.windows(12, 0.2)
    assert (whole.since, whole.first, whole.elapsed, whole.share) == (0.0, 0, 0.2, WHOLE)
    assert whole.share * whole.within == pytest.approx(WITHIN_SHARE)
    # At 60%: the steps since a quarter (7 of 12) and since half (2 of 12), each judged
    # within what remains of the span from its start.
    _, quarter, half = restarts.windows(12, 0.6)
    assert (quarter.since, quarter.first) == (0.25, 5)
    assert quarter.elapsed == pytest.approx(0.35 / 0.75) and quarter.share == SHARE
    assert (half.since, half.first, half.share) == (0.5, 10, SHARE)
    assert half.elapsed == pytest.approx(0.2)
    # At the span's end all four, from fixed points; their shares make the whole level.
    found = restarts.windows(40, 1.0)
    assert [(w.since, w.first) for w in found] == [(0.0, 0), (0.25, 10), (0.5, 20), (0.75, 30)]
    assert [w.elapsed for w in found] == pytest.approx([1.0] * 4)
    assert sum(w.share for w in found) == pytest.approx(1.0)


def rate_sides(late: float, early: float = 0.01, since: int = 30) -> tuple[Side, Side]:
    """40 steps: a canary failing ``early`` of its requests, ``late`` from step ``since``;
    the stable 1%."""
    times = tuple(float(t) for t in range(40))
    canary = Side(
        points=(early,) * since + (late,) * (40 - since),
        counts=(1000.0,) * 40,
        times=times,
        samples=12_000,
    )
    stable = Side(points=(0.01,) * 40, counts=(4000.0,) * 40, times=times, samples=48_000)
    return canary, stable


def test_a_regression_in_the_last_quarter_fails_the_test_begun_there() -> None:
    # Errors x2.5 in the last quarter: over the whole stage x1.38, within the x1.15
    # allowance's reach of doubt; since three quarters of the bake, plain.
    canary, stable = rate_sides(0.025)
    late = judge_gate(error_gate(), canary, stable, elapsed=1.0)
    assert late.outcome is GateOutcome.FAIL, late.reason
    assert late.effect == pytest.approx(2.5, rel=0.02)
    assert late.effect_low is not None and late.effect_low > 1.15
    assert "10,000 vs 40,000 requests since 75% of the planned bake" in late.reason
    # Without a planned span there is nowhere to begin again: the whole stage only.
    whole = judge_gate(error_gate(), canary, stable, elapsed=None)
    assert whole.outcome is GateOutcome.PASS, whole.reason
    assert whole.effect == pytest.approx(1.375, rel=0.02)
    assert "since the stage began" in whole.reason


def rate_run(steps: np.ndarray, end: int | None = None) -> restarts.Run:
    """The rate test over ``steps`` (rows of canary hits and requests, stable hits and
    requests), as the judge runs it; read up to ``end`` (a look part-way through)."""

    def run(
        part: slice,
        factor: float,
        margin: float,
        direction: str,
        level: float,
        elapsed: float | None,
        within: float,
        bounded: bool,
    ) -> Sequential:
        hc, nc, hs, ns = steps[: end or len(steps)][part].T
        return anytime.rate_test(
            hc, nc, hs, ns, factor=factor, margin=margin, direction=direction, alpha=level,
            elapsed=elapsed, within_share=within, bounded=bounded,
        )  # fmt: skip

    return run


def test_a_restarted_test_looks_for_a_change_not_for_the_level_the_canary_always_had() -> None:
    # A canary at x2 from the start, its last quarter x2.2: beyond the allowance all along,
    # which is the whole stage's test to judge, and only a little worse late. The window is
    # held to the canary's own ratio before it, and passes.
    steps = np.array([(20.0, 1000.0, 40.0, 4000.0)] * 30 + [(22.0, 1000.0, 40.0, 4000.0)] * 10)
    run = rate_run(steps)

    window = restarts.windows(40, 1.0)[-1]
    assert window.since == 0.75
    level = 0.02 * window.share
    # Against the gate's allowance alone the window fails; against the ratio before it, not.
    assert run(slice(30, None), 1.15, 0.0005, "increase", level, 1.0, 0.75, False).p_value < level
    held = restarts.changed(run, window, level, 1.15, 0.0005, "increase")
    assert held.p_value >= level
    # The stage fails all the same, on the whole stage's test.
    whole = restarts.judged(run, 40, 1.0, 0.02, factor=1.15, margin=0.0005, direction="increase")
    assert whole.since == 0.0 and whole.p_value < 0.02
    # A change that is plain against that ratio too fails the window, which says its bar.
    steps[30:] = (40.0, 1000.0, 40.0, 4000.0)
    changed = restarts.changed(run, window, level, 1.15, 0.0005, "increase")
    assert changed.p_value < level and changed.ratio == pytest.approx(4.0, rel=0.05)
    assert changed.note.startswith("judged against x2.")


def test_a_passing_stage_reads_the_whole_stage_at_its_share_of_the_level() -> None:
    canary, stable = rate_sides(0.01)
    verdict = judge_gate(error_gate(), canary, stable, elapsed=1.0)
    assert verdict.outcome is GateOutcome.PASS
    assert "40,000 vs 160,000 requests since the stage began" in verdict.reason
    # The whole stage's test at its share of the level, its within-span part at 75% of it.
    alone = anytime.rate_test(
        [10.0] * 40, [1000.0] * 40, [40.0] * 40, [4000.0] * 40, factor=1.15, margin=0.0005,
        alpha=0.02 * WHOLE, elapsed=1.0, within_share=WITHIN_SHARE / WHOLE,
    )  # fmt: skip
    assert verdict.p_value == pytest.approx(min(1.0, alone.p_value / WHOLE))


def test_a_late_latency_regression_fails_the_test_begun_there() -> None:
    bounds = (0.05, 0.1, 0.25, float("inf"))
    healthy, slow = (400.0, 1200.0, 1500.0, 100.0), (300.0, 900.0, 1700.0, 300.0)
    times = tuple(float(t) for t in range(40))
    canary = Side(
        bounds=bounds, histogram=(healthy,) * 30 + (slow,) * 10, times=times, samples=12_000
    )
    stable = Side(bounds=bounds, histogram=(healthy,) * 40, times=times, samples=48_000)
    late = judge_gate(latency_gate(), canary, stable, elapsed=1.0)
    assert late.outcome is GateOutcome.FAIL, late.reason
    assert "since 75% of the planned bake" in late.reason
    assert judge_gate(latency_gate(), canary, stable).outcome is GateOutcome.PASS


def test_an_empty_window_counts_as_passing_and_the_whole_stage_still_judges() -> None:
    def run(part: slice, *_: object) -> Sequential:
        if part.start:
            raise ValueError("each side needs requests in the same steps")
        return Sequential("rate", 0.01, 0.01, 1.0, 0.9, 1.1, 0.5, 0.0)

    found = restarts.judged(run, 40, 1.0, 0.02, factor=1.15, margin=0.0, direction="increase")
    assert found.since == 0.0 and found.p_value == pytest.approx(0.5 / WHOLE)
    # ``either`` judges the whole stage only, at the whole level.
    found = restarts.judged(run, 40, 1.0, 0.02, factor=1.15, margin=0.0, direction="either")
    assert found.p_value == 0.5


def healthy_stage_fails(rng: np.random.Generator, steps: int = 40, every: int = 4) -> bool:
    """One healthy stage looked at every ``every`` steps with all its tests: failed at any?"""
    n_c, n_s = rng.poisson(1000, steps).astype(float), rng.poisson(4000, steps).astype(float)
    rate = 0.01 * np.exp(rng.normal(0.0, 0.2, steps))
    h_c, h_s = rng.binomial(n_c.astype(int), rate), rng.binomial(n_s.astype(int), rate)
    stage = np.column_stack([h_c, n_c, h_s, n_s]).astype(float)
    for end in range(every, steps + 1, every):
        found = restarts.judged(
            rate_run(stage, end), end, end / steps, 0.02, factor=1.0, margin=0.0,
            direction="increase",
        )  # fmt: skip
        if found.p_value < 0.02:
            return True
    return False


def test_healthy_stages_fail_at_most_at_the_level_over_every_look() -> None:
    # 300 healthy stages of 40 steps, looked at every 4 steps with all four tests, the
    # errors bursty as real ones are: the share failed at any look stays within the level.
    rng = np.random.default_rng(20261206)
    failed = sum(healthy_stage_fails(rng) for _ in range(300))
    assert failed / 300 <= 0.02
