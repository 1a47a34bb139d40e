"""A stage's bake clock: the one writer of ``RolloutProgress.clock``, and the pure decisions
around it (what a waiting stage waits for, when it wakes).

The clock runs while the stage's weight is set and the rollout is not paused; time with no
check is taken off it (``discount``); checks keep the cadence of their schedule.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from plans import RolloutState, Stage
from plans.runtime.progress import BakeClock, RolloutProgress


def elapsed(clock: BakeClock, now: datetime) -> float:
    """Seconds the stage has baked by ``now``; the clock stops while paused."""
    running = clock.running_since
    extra = (now - running).total_seconds() if running is not None else 0.0
    return clock.elapsed_s + max(extra, 0.0)


def enter(clock: BakeClock, now: datetime, paused: bool, check_every: timedelta) -> None:
    """A stage's weight is set at ``now``: its clock starts (stopped while paused), its
    first check is one ``check_every`` away, and the shift read the split back."""
    clock.entered_at = now
    clock.elapsed_s = 0.0
    clock.running_since = None if paused else now
    clock.next_check_at = now + check_every
    clock.checks = 0
    clock.last_check_at = now
    clock.extension = ""


def next_stage(progress: RolloutProgress) -> None:
    """On to the next stage: its bake clock starts from nothing once its weight is set."""
    progress.stage_index += 1
    progress.clock.elapsed_s = 0.0
    progress.clock.running_since = None
    progress.clock.checks = 0
    progress.clock.extension = ""


def bake_s(stage: Stage, clock: BakeClock) -> float:
    """The stage's bake in seconds: up to its ``max_bake`` while the bake is extended."""
    if clock.extension == "extended" and stage.max_bake is not None:
        return stage.max_bake.total_seconds()
    return stage.bake.total_seconds()


def extend(clock: BakeClock) -> None:
    """The bake runs on past its end, up to the stage's ``max_bake``."""
    clock.extension = "extended"


def end_extension(clock: BakeClock) -> None:
    """The extended bake is over (its gates have their samples, or ``max_bake`` came)."""
    clock.extension = "over"


def stop(clock: BakeClock, now: datetime) -> None:
    """Stop the clock (a pause), keeping what it counted."""
    clock.elapsed_s = elapsed(clock, now)
    clock.running_since = None


def start(clock: BakeClock, now: datetime) -> None:
    clock.running_since = now


def check_now(clock: BakeClock, now: datetime) -> None:
    """The next check is due at once (a retry, a stage that needs a fresh look)."""
    clock.next_check_at = now


def looking(clock: BakeClock, now: datetime) -> None:
    """A check starts: the router and the gates are looked at now."""
    clock.last_check_at = now


def checked(clock: BakeClock, now: datetime, check_every: timedelta) -> None:
    """A check ended: count it, and keep the cadence of the schedule, not of when each check
    happened to finish."""
    clock.checks += 1
    due = (clock.next_check_at or now) + check_every
    clock.next_check_at = due if due > now else now + check_every


def discount(clock: BakeClock, excess: timedelta) -> None:
    """Take ``excess`` (time nobody watched) off the running clock."""
    assert clock.running_since is not None
    clock.running_since += excess


def deadline_acted(clock: BakeClock, stage_index: int) -> None:
    """The stage's missed deadline was acted on: once a stage."""
    clock.deadline_acted_stage = stage_index


def waiting_state(paused: bool, awaiting_approval: bool, window: bool) -> RolloutState:
    """What a stage that waits is waiting for; ``window``: a window or freeze holds it."""
    if paused:
        return RolloutState.PAUSED
    if awaiting_approval:
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
