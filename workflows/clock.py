"""A stage's clock, as pure decisions: moving on to the next stage, what a waiting stage
waits for, and when it wakes."""

from __future__ import annotations

from datetime import datetime

from plans import Plan, RolloutState
from plans.progress import RolloutProgress
from workflows import decisions


def next_stage(progress: RolloutProgress) -> None:
    """On to the next stage: its bake clock starts from nothing once its weight is set."""
    progress.stage_index += 1
    progress.clock.elapsed_s = 0.0
    progress.clock.running_since = None
    progress.clock.checks = 0


def waiting_state(
    plan: Plan, progress: RolloutProgress, now: datetime, window: bool
) -> RolloutState:
    """What a stage that waits is waiting for; ``window``: a window or freeze holds it."""
    if progress.paused:
        return RolloutState.PAUSED
    if decisions.awaiting_approval(plan, progress, now):
        return RolloutState.AWAITING_APPROVAL
    return RolloutState.WAITING_FOR_WINDOW if window else RolloutState.BAKING


Wake = tuple[datetime | float | None, str]


def first_wake(now: datetime, check: Wake, others: list[Wake]) -> tuple[float, str]:
    """Seconds until a waiting stage wakes, and why: the next check, or whichever of ``others``
    comes sooner (a moment, or seconds from ``now``; None for none)."""

    def seconds(at: datetime | float | None) -> float | None:
        return (at - now).total_seconds() if isinstance(at, datetime) else at

    timeout, summary = seconds(check[0]) or 0.0, check[1]
    for at, why in others:
        left = seconds(at)
        if left is not None and 0 < left < timeout:
            timeout, summary = left, why
    return timeout, summary
