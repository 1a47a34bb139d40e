"""Holding a traffic increase until a release window opens and no freeze holds it.

Rollbacks never wait.

The arithmetic is ``plans.governance.windows``; this module keeps the rollout's side of it: whether
the next increase may happen now, what the rollout says while it waits, the durable timer
to the opening (with the plan's jitter, drawn from the workflow's deterministic random),
and an operator's override, which lets one increase through.

Freezes are read (a local activity querying the ``FreezeCalendar``) before each increase
and again when a wait for an opening ends, so a freeze added while a rollout bakes or
waits holds its next increase.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.freezes import FreezeReader
    from plans import CommandRecord, EventKind, Plan, RolloutState
    from plans.governance.freezes import Freeze, freeze_holding
    from plans.governance.windows import opening_text
    from plans.runtime.progress import RolloutProgress
    from workflows.rollout.commands import CommandLog
    from workflows.rollout.notices import Notices
    from workflows.rollout.status import Board

UNREADABLE_RETRY = timedelta(minutes=1)
# While a freeze holds the rollout, the calendar is read again this often: a freeze removed
# (or shortened) lets the increase go within the hour.
FREEZE_LOOK_EVERY = timedelta(hours=1)


class Windows:
    """The rollout's window keeper: one per run, over the run's plan and progress."""

    def __init__(
        self, plan: Plan, progress: RolloutProgress, log: CommandLog, notices: Notices, board: Board
    ) -> None:
        self._plan, self._progress = plan, progress
        self._log, self._notices, self._board = log, notices, board
        self._unreadable_until: datetime | None = None
        self._look_again_at: datetime | None = None

    @property
    def waiting(self) -> bool:
        return bool(self._progress.window.hold)

    def wake_at(self) -> datetime | None:
        """When a waiting rollout should look again (the opening plus jitter, or the next
        read of the calendar while freezes are known), if it waits."""
        if not self.waiting:
            return None
        moments = [
            self._progress.window.opens_at,
            self._look_again_at if self._progress.window.freezes else None,
        ]
        return min((m for m in moments if m is not None), default=None)

    def look_again(self, now: datetime) -> bool:
        """Time to read the calendar again (only while some freeze is known)."""
        due = self._look_again_at
        return bool(self._progress.window.freezes) and due is not None and now >= due

    def timer_summary(self) -> str:
        return f"waiting for window: {self.opens_text()}"

    def opens_text(self) -> str:
        opens = self._progress.window.opens_at
        if opens is None:
            return "no opening within a year"
        zone = self._plan.windows.zone_name() if self._plan.windows else "UTC"
        return f"opens {opening_text(opens, zone)}"

    async def refresh(self) -> None:
        """Read this service's freezes; when they cannot be read, hold for a minute."""
        try:
            freezes: list[Freeze] = await workflow.execute_local_activity_method(
                FreezeReader.freezes_for,
                self._plan.service,
                start_to_close_timeout=timedelta(seconds=10),
                schedule_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=5)),
                summary="freezes of " + self._plan.service,
            )
        except ActivityError:
            self._unreadable_until = workflow.now() + UNREADABLE_RETRY
            return
        finally:
            self._look_again_at = workflow.now() + FREEZE_LOOK_EVERY
        self._unreadable_until = None
        if [f.id for f in freezes] != [f.id for f in self._progress.window.freezes]:
            # Another set of freezes: the opening waited for is worked out again.
            self._progress.window.freezes = freezes
            self._progress.window.hold = ""
            self._progress.window.opens_at = None

    def denial(self, now: datetime) -> str:
        """Why an increase may not happen at ``now``: an unreadable calendar, a freeze, a
        window ('' when it may)."""
        if self._unreadable_until is not None and now < self._unreadable_until:
            return "the freeze calendar could not be read"
        freeze = freeze_holding(self._progress.window.freezes, self._plan.service, now)
        if freeze is not None:
            return freeze.describe()
        return self._plan.windows.denial(now) if self._plan.windows else ""

    def next_opening(self, now: datetime) -> datetime | None:
        """The first moment from ``now`` when no freeze nor window holds an increase."""
        at: datetime | None = now
        for _ in range(100):
            if at is None or not self.denial(at):
                return at
            freeze = freeze_holding(self._progress.window.freezes, self._plan.service, at)
            if freeze is not None:
                at = freeze.end
            elif self._unreadable_until is not None and at < self._unreadable_until:
                at = self._unreadable_until
            else:
                assert self._plan.windows is not None
                at = self._plan.windows.next_opening(at)
        return None

    def is_open(self, now: datetime) -> bool:
        """Whether the next increase may happen at ``now``; if not, note why and until when."""
        progress = self._progress
        if progress.overrides > 0:
            self._clear()
            return True
        hold = self.denial(now)
        opens = progress.window.opens_at
        if not hold and progress.window.hold and opens is not None and now < opens:
            return False  # open, but the jitter drawn for this opening is not over
        if not hold:
            self._clear()
            return True
        if hold != progress.window.hold:
            opens = self.next_opening(now)
            jitter = self._plan.windows.jitter if self._plan.windows else timedelta(0)
            if opens is not None and jitter > timedelta(0):
                opens += timedelta(seconds=workflow.random().uniform(0, jitter.total_seconds()))
            progress.window.opens_at = opens
            progress.window.hold = hold
            self._log.audit("window", f"next increase waits: {hold}; {self.opens_text()}")
        return False

    def _clear(self) -> None:
        if self._progress.window.hold:
            self._log.audit("window", "window open: traffic may increase")
        self._progress.window.hold = ""
        self._progress.window.opens_at = None

    def until_open(self, plan: Plan, progress: RolloutProgress, now: datetime) -> bool:
        """For the rollout's watch loop: the stage may end once the window is open (or, to
        read the freezes again, when that is due)."""
        return self.is_open(now) or self.look_again(now)

    def increases_after(self, index: int) -> bool:
        """Whether what follows stage ``index`` adds traffic (a later stage or the promotion)."""
        progress, stages = self._progress, self._plan.stages
        if index + 1 >= len(stages):
            return progress.canary_weight < 100
        after = stages[index + 1]
        return after.weight > progress.canary_weight or (
            after.match is not None and after.match != progress.canary_match
        )

    async def before(
        self, what: str, last: Callable[[], CommandRecord | None], hold: bool = True
    ) -> bool:
        """Before a shift: with ``hold``, wait with nothing to check meanwhile (the first shift
        when it sends the canary traffic, not a blue-green preview at 0%; a promotion); later
        shifts waited at the end of their stage. Then use up an override that let it through.

        False when a rollback or an abort was asked meanwhile: the rollout stops."""
        if hold and not await self.hold(last):
            return False
        await self.passed(what)
        return True

    async def watch(self, watch: Callable[[], Awaitable[None]]) -> None:
        """Between stages: ``watch`` (the stage's checks, until the window opens) as long as
        a fresh read of the freezes still finds the next increase held."""
        await self.refresh()
        while not self.is_open(workflow.now()) and not self._progress.promote_requested:
            await watch()
            await self.refresh()

    async def passed(self, what: str) -> None:
        """Before an increase: use up an override that let it through, and say so."""
        progress = self._progress
        if progress.overrides <= 0:
            return
        if not self.denial(workflow.now()):
            return  # open anyway: the override waits for an increase that needs it
        progress.overrides -= 1
        who = next(
            (c for c in reversed(progress.commands) if c.kind == "override" and c.accepted), None
        )
        by = f" by {who.by}" + (f": {who.reason}" if who and who.reason else "") if who else ""
        held = self.holder(workflow.now())
        self._log.audit("override", f"{what} let through {held}{by}")
        await self._notices.send_line(
            EventKind.OVERRIDDEN,
            f"Rollout of {self._plan.service} {self._plan.version}: {what} overrides {held}{by}",
        )

    def holder(self, now: datetime) -> str:
        """What holds an increase at ``now``, in words: a freeze, the calendar, or the window."""
        freeze = freeze_holding(self._progress.window.freezes, self._plan.service, now)
        if freeze is not None:
            return f"a freeze ({freeze.describe()})"
        if self._unreadable_until is not None and now < self._unreadable_until:
            return "a freeze calendar that could not be read"
        return "its release window"

    async def hold(self, last: Callable[[], CommandRecord | None]) -> bool:
        """Wait, without checks (nothing to check yet), until the window opens and a fresh
        read of the freezes finds none holding the increase.

        A rollback or abort asked for ends the wait at once: False, for the rollout to stop.
        """
        progress = self._progress
        while True:
            await self.refresh()
            if self.is_open(workflow.now()):
                return True  # a rollback asked for meanwhile is taken where it always was
            if progress.rollback_requested or progress.abort_requested:
                return False
            self._board.show(
                RolloutState.PAUSED if progress.paused else RolloutState.WAITING_FOR_WINDOW
            )
            wake = self.wake_at()
            timeout = None if wake is None else max((wake - workflow.now()).total_seconds(), 1)
            seen = last()
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda seen=seen: last() is not seen,  # type: ignore[misc]
                    timeout=None if timeout is None else timedelta(seconds=timeout),
                    timeout_summary=self.timer_summary(),
                )
