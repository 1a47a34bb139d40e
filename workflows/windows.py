"""Holding a traffic increase until a release window opens (rollbacks never wait).

The arithmetic is ``plans.windows``; this module keeps the rollout's side of it: whether
the next increase may happen now, what the rollout says while it waits, the durable timer
to the opening (with the plan's jitter, drawn from the workflow's deterministic random),
and an operator's override, which lets one increase through.

Only plans with ``windows`` take any of this, and only runs started since the
``release-windows`` patch: earlier runs replay the commands they recorded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from plans import CommandRecord, Plan, RolloutState
    from plans.state import RolloutProgress
    from plans.windows import opening_text

WINDOWS_PATCH = "release-windows"


class Windows:
    """The rollout's window keeper: one per run, over the run's plan and progress."""

    def __init__(
        self,
        plan: Plan,
        progress: RolloutProgress,
        audit: Callable[[str, str], None],
        notify: Callable[[str], Awaitable[None]],
        publish: Callable[[], None],
    ) -> None:
        self._plan, self._p = plan, progress
        self._audit, self._notify, self._publish = audit, notify, publish
        self._on: bool | None = None
        # The rollout's own: raises its rollback or abort when one was asked for.
        self.stop_if_asked: Callable[[], None] = lambda: None

    def applies(self) -> bool:
        """Windows hold this run: the plan has them and the run is new enough to keep them."""
        if self._plan.windows is None:
            return False
        if self._on is None:
            self._on = workflow.patched(WINDOWS_PATCH)
        return self._on

    @property
    def waiting(self) -> bool:
        return bool(self._p.window_hold)

    def wake_at(self) -> datetime | None:
        """When a waiting rollout should look again (the opening plus jitter), if it waits."""
        return self._p.window_opens_at if self.waiting else None

    def timer_summary(self) -> str:
        return f"waiting for window: {self.opens_text()}"

    def opens_text(self) -> str:
        opens = self._p.window_opens_at
        if opens is None:
            return "no opening within a year"
        assert self._plan.windows is not None
        return f"opens {opening_text(opens, self._plan.windows.zone_name())}"

    def is_open(self, now: datetime) -> bool:
        """Whether the next increase may happen at ``now``; if not, note why and until when."""
        p, windows = self._p, self._plan.windows
        if windows is None or p.overrides > 0:
            self._clear()
            return True
        hold = windows.denial(now)
        opens = p.window_opens_at
        if not hold and p.window_hold and opens is not None and now < opens:
            return False  # open, but the jitter drawn for this opening is not over
        if not hold:
            self._clear()
            return True
        if hold != p.window_hold:
            opens = windows.next_opening(now)
            if opens is not None and windows.jitter > timedelta(0):
                opens += timedelta(seconds=workflow.random().uniform(0, windows.jitter.seconds))
            p.window_opens_at = opens
            p.window_hold = hold
            self._audit("window", f"next increase waits: {hold}; {self.opens_text()}")
        return False

    def _clear(self) -> None:
        if self._p.window_hold:
            self._audit("window", "window open: traffic may increase")
        self._p.window_hold = ""
        self._p.window_opens_at = None

    def until_open(self, plan: Plan, p: RolloutProgress, now: datetime) -> bool:
        """For the rollout's watch loop: the stage may end once the window is open."""
        return self.is_open(now)

    def increases_after(self, index: int) -> bool:
        """Whether what follows stage ``index`` adds traffic (a later stage or the promotion)."""
        p, stages = self._p, self._plan.stages
        if index + 1 >= len(stages):
            return p.canary_weight < 100
        after = stages[index + 1]
        return after.weight > p.canary_weight or (
            after.match is not None and after.match != p.canary_match
        )

    async def before(
        self, what: str, last: Callable[[], CommandRecord | None], hold: bool = True
    ) -> None:
        """Before an increase: with ``hold``, wait with nothing to check meanwhile (the first
        shift, a promote); then use up an override that let it through."""
        if hold and self.applies():
            await self.hold(last)
        await self.passed(what)

    async def passed(self, what: str) -> None:
        """Before an increase: use up an override that let it through, and say so."""
        p = self._p
        if p.overrides <= 0 or self._plan.windows is None:
            return
        if not self._plan.windows.denial(workflow.now()):
            return  # open anyway: the override waits for an increase that needs it
        p.overrides -= 1
        who = next((c for c in reversed(p.commands) if c.kind == "override" and c.accepted), None)
        by = f" by {who.by}" + (f": {who.reason}" if who and who.reason else "") if who else ""
        self._audit("override", f"{what} let through a closed window{by}")
        await self._notify(
            f"Rollout of {self._plan.service} {self._plan.version}: {what} overrides its"
            f" release window{by}"
        )

    async def hold(self, last: Callable[[], CommandRecord | None]) -> None:
        """Wait, without checks (nothing to check yet), until the window opens.

        A rollback or abort asked for ends the wait at once (``stop_if_asked`` raises).
        """
        p = self._p
        while not self.is_open(workflow.now()):
            self.stop_if_asked()
            p.state = RolloutState.PAUSED if p.paused else RolloutState.WAITING_FOR_WINDOW
            self._publish()
            opens = p.window_opens_at
            timeout = None if opens is None else max((opens - workflow.now()).total_seconds(), 1)
            seen = last()
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda seen=seen: last() is not seen,  # type: ignore[misc]
                    timeout=None if timeout is None else timedelta(seconds=timeout),
                    timeout_summary=self.timer_summary(),
                )
        self.stop_if_asked()
