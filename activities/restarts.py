"""Tests that begin again part-way through the bake, for a regression that starts late.

A sequential test reads everything since the stage began. That is what makes it strong
against a canary that is worse from the start, and what makes it slow against one that
turns worse later (a leak, a cache that fills, a cron job, a dependency that degrades): by
the end of the bake a change that began half-way has moved the whole stage's numbers half
as far, and the first half's healthy data hides it.

So beside the test of the whole stage, the same test runs again on the data since each of
a few fixed points of the planned span (``RESTARTS``: a quarter, half and three quarters of
it). Each restarted test is valid at every look from its own start, as the whole-stage test
is from the stage's (its ``within_p`` runs over what remains of the span); the points are
fixed before the stage starts, and the level is split among the tests beforehand
(Bonferroni), so a healthy canary is rolled back at most at the gate's level whatever the
tests see.

The restarted tests' share (``RESTART_SHARE``, evenly among them) comes out of the whole
stage's mixture, the part valid for ever that catches large regressions at the first looks
and judges the looks after the span; the whole stage's test within the span keeps its 75%
of the level, so a canary worse from the start is judged at the bake's end as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from activities.anytime import Sequential
from activities.within_bake import WITHIN_SHARE

RESTARTS = (0.25, 0.5, 0.75)  # shares of the planned span at which a test begins again
RESTART_SHARE = 0.15  # of the level, for the restarted tests together
BEFORE_CONFIDENCE = 0.8  # of the bound on the canary's ratio before a restarted test's data


@dataclass(frozen=True)
class Window:
    """One test a look runs: its data from ``first`` (an index into the stage's steps), which
    is ``since`` (a share of the span) into the stage; ``elapsed``, the share of its own span
    that has passed; ``share``, its share of the level, and ``within``, the share of that
    its test within the span gets."""

    since: float
    first: int
    elapsed: float | None
    share: float
    within: float = WITHIN_SHARE


# The gate's test over ``part`` of the stage's steps, against ``factor`` and ``margin`` in
# ``direction``, at ``level``, its test within the span at ``elapsed`` (the share of its span
# that has passed) with ``within`` of the level; with its interval or (False) without.
Run = Callable[[slice, float, float, str, float, "float | None", float, bool], Sequential]


def windows(steps: int, elapsed: float | None) -> list[Window]:
    """The tests a look over ``steps`` steps at ``elapsed`` of the span runs, the whole
    stage's first. Without a planned span (``elapsed`` None) it is the only one, at the
    whole level."""
    if elapsed is None or elapsed <= 0:
        return [Window(0.0, 0, elapsed, 1.0)]
    whole = 1 - RESTART_SHARE
    found = [Window(0.0, 0, elapsed, whole, WITHIN_SHARE / whole)]
    share = RESTART_SHARE / len(RESTARTS)
    for since in RESTARTS:
        if elapsed <= since:
            break
        # Steps come at a steady pace from the stage's start: the last of them since ``since``.
        kept = math.ceil(steps * (elapsed - since) / elapsed - 1e-9)
        if 0 < kept < steps:
            found.append(Window(since, steps - kept, (elapsed - since) / (1 - since), share))
    return found


def judged(
    run: Run,
    steps: int,
    elapsed: float | None,
    alpha: float,
    *,
    factor: float,
    margin: float,
    direction: str,
) -> Sequential:
    """The stage's finding at level ``alpha``: the whole stage's test, or a restarted one
    that fails (the one with the smallest p-value), its p-value scaled to the whole level
    and ``since`` saying where its data began.

    A restarted test looks for a change, not a level: the canary's ratio to the stable
    before the window (its upper bound at ``BEFORE_CONFIDENCE``, on the side that hurts)
    is its allowance where that is above the gate's, so a canary as far from the stable as
    it always was is left to the whole stage's test. Each test runs at its share of
    ``alpha``, so its interval lies beyond the allowance exactly when it fails. A restarted
    test whose data cannot be judged (no requests since its start or before it) counts as
    passing; the whole stage's raises as it would alone. ``either`` tests the whole stage
    only.
    """
    found: list[Sequential] = []
    for window in windows(steps, elapsed if direction != "either" else None):
        part, level = slice(window.first, None), alpha * window.share
        try:
            if window.since == 0.0:
                one = run(
                    part, factor, margin, direction, level, window.elapsed, window.within, True
                )
            else:
                one = changed(run, window, level, factor, margin, direction)
        except ValueError:
            if window.since == 0.0:
                raise
            continue
        p = min(1.0, one.p_value / window.share)
        found.append(replace(one, p_value=p, since=window.since))
    failing = [f for f in found if f.p_value < alpha]
    return min(failing, key=lambda f: f.p_value) if failing else found[0]


def changed(
    run: Run, window: Window, level: float, factor: float, margin: float, direction: str
) -> Sequential:
    """The window's test against the gate's allowance or the canary's ratio before it,
    whichever is further from the stable.

    The window is tested against the allowance first, without the interval (a search):
    most windows pass there, and a higher bar would not fail them either.
    """
    since, at = slice(window.first, None), (direction, level, window.elapsed, window.within)
    found = run(since, factor, margin, *at, False)
    if found.p_value >= level:
        return found
    before = run(
        slice(0, window.first), 1.0, 0.0, direction, 1 - BEFORE_CONFIDENCE, 1.0, WITHIN_SHARE, True
    )
    bar = before.high if direction == "increase" else 1 / before.low
    if not math.isfinite(bar) or bar <= 0:
        raise ValueError("no ratio before the window")
    allowed = max(factor, bar)
    found = run(since, allowed, margin, *at, True)
    if allowed > factor:
        said = f"judged against x{allowed:.3g}, the canary's ratio to the stable before it"
        found = replace(found, note="; ".join(n for n in (said, found.note) if n))
    return found
