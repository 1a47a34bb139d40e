"""What the rollout tells people: one structured event per moment, to the channels that hear it.

The workflow sends data (what happened, at which stage and weight, the verdicts, the
reason); the notify activity renders it with templates and delivers it, so history stays
small and templates can change under a running rollout. Each event carries a key that
names it once for the whole rollout, so neither a retried activity nor a later run sends it
twice. A lost message stops nothing: not a rollout, and never a rollback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.rollout import notify
    from plans import (
        EventKind,
        Notice,
        Notification,
        Plan,
        RolloutState,
        StageBrief,
        Verdict,
    )
    from plans.runtime.progress import RolloutProgress
    from workflows.failures import root_message
    from workflows.rollout.status import stages_line

NOTIFY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=3)
NOTIFY_TIMEOUT = timedelta(seconds=30)


def start_telling(message: Notification, kind: EventKind) -> workflow.ActivityHandle[None]:
    """Hand ``message`` to the notify activity; ``settled`` waits for it."""
    return workflow.start_activity(
        notify,
        message,
        start_to_close_timeout=NOTIFY_TIMEOUT,
        retry_policy=NOTIFY_RETRY,
        summary=f"notify {kind.value}",
    )


async def settled(pending: workflow.ActivityHandle[None] | None) -> None:
    """Wait for a message under way, if any; its failure is only logged."""
    if pending is None:
        return
    try:
        await pending
    except ActivityError as error:
        # A lost message must not stop a rollout, nor a rollback.
        workflow.logger.warning("Notification failed: %s", root_message(error))


class Notices:
    """The rollout's voice: builds each event and hands it to the notify activity."""

    def __init__(self, plan: Plan, progress: RolloutProgress) -> None:
        self._plan = plan
        self._progress = progress
        self._restoring: list[str] = []
        self._pending: workflow.ActivityHandle[None] | None = None
        self._background: list[asyncio.Future[None]] = []
        # Also told of every event: the plan's ``on: event`` hooks, when it has any.
        self.also: Callable[[EventKind, str], Awaitable[None]] | None = None

    async def started(self) -> None:
        plan = self._plan
        text = f"Rollout of {plan.service} {plan.version} started: " + stages_line(plan)
        await self.send(EventKind.STARTED, text)

    async def stage_passed(self) -> None:
        progress = self._progress
        stage = self._plan.stages[progress.stage_index]
        await self.send(
            EventKind.STAGE_PASSED,
            f"Rollout of {self._plan.service} {self._plan.version}: stage {stage.name!r}"
            f" ({stage.weight}%) passed",
        )

    async def awaiting_approval(self) -> None:
        progress = self._progress
        if progress.approval_noticed_stage == progress.stage_index:
            return  # told once per stage, not again after each pause and resume
        progress.approval_noticed_stage = progress.stage_index
        plan = self._plan
        await self.send(
            EventKind.AWAITING_APPROVAL,
            f"Rollout of {plan.service} {plan.version} awaits approval:"
            f" `rollout approve {plan.service}`",
        )

    async def gate_action(self, action: str, reason: str) -> None:
        """A gate's policy paused the rollout or asks for a look."""
        plan = self._plan
        paused = action == "pause"
        verb = "paused" if paused else "needs a look"
        retry = f" (`rollout retry {plan.service}` re-checks)" if paused else ""
        await self.send(
            EventKind.PAUSED if paused else EventKind.GATE_FAILING,
            f"Rollout of {plan.service} {plan.version} {verb}: {reason}{retry}",
            reason=reason,
        )

    async def deadline_missed(self, why: str, action: str) -> None:
        await self.send(
            EventKind.DEADLINE_MISSED,
            f"Rollout of {self._plan.service}: {why}; action: {action}",
            reason=f"{why}; action: {action}",
        )

    async def promoted(self) -> None:
        plan, progress = self._plan, self._progress
        await self.send(
            EventKind.PROMOTED,
            f"Rollout of {plan.service} {plan.version} promoted: {progress.reason}",
            reason=progress.reason,
        )

    async def ended(self, word: str, reason: str) -> None:
        """The run ended rolled back or aborted (``word``), with stable restored."""
        plan = self._plan
        kind = EventKind.ABORTED if word == "aborted" else EventKind.ROLLED_BACK
        await self.send(
            kind,
            f"Rollout of {plan.service} {plan.version} {word}: {reason}",
            reason=reason,
            restored=self._restoring,
        )

    def for_the_lease(self) -> Notification | None:
        """The message the target's lease sends should it put stable back itself (this run
        ended without a restore: terminated or reset), or None when no channel hears it."""
        plan = self._plan
        kind = EventKind.ROLLED_BACK
        channels = plan.notify.channels_for(kind)
        if not channels:
            return None
        text = (
            f"Rollout of {plan.service} {plan.version} ended without a rollback (terminated);"
            " its target's lease put stable back"
        )
        notice = self._notice(kind, text, [])
        return Notification.to(
            channels,
            text,
            plan.service,
            RolloutState.ROLLED_BACK.value,
            notice.model_copy(update={"key": f"{notice.key}/lease"}),
        )

    def rollback_starting(self, reason: str, asked: Callable[[], bool]) -> None:
        """Tell people stable is being put back once ``asked`` holds (the router has answered
        the restore, yes or no), without holding the restore up."""
        self._restoring = [c.description for c in reversed(self._progress.target.compensations)]
        self.in_background(self._rollback_told(reason, asked, self._progress.canary_weight))

    async def _rollback_told(self, reason: str, asked: Callable[[], bool], weight: int) -> None:
        await workflow.wait_condition(asked)
        await self.send(
            EventKind.ROLLBACK_STARTED,
            f"Rollback of {self._plan.service} {self._plan.version} started: {reason}",
            reason=reason,
            restored=self._restoring,
            wait=False,
            weight=weight,
        )

    async def send_line_later(self, kind: EventKind, text: str) -> None:
        """``say``, started but not waited for (while stable is being put back)."""
        self.in_background(self.send_line(kind, text))

    def in_background(self, telling: Coroutine[Any, Any, None]) -> None:
        """Tell while the workflow goes on; ``drain`` waits for what is still being told."""
        self._background.append(asyncio.ensure_future(telling))

    async def drain(self) -> None:
        """Wait for everything told in the background, and the message under way."""
        while self._background:
            await self._background.pop(0)
        await self._settle()

    async def send_line(self, kind: EventKind, text: str) -> None:
        """An event whose one line says it all (drift, a restore that fails)."""
        await self.send(kind, text, reason=text)

    async def send(
        self,
        kind: EventKind,
        text: str,
        reason: str = "",
        restored: list[str] | None = None,
        wait: bool = True,
        weight: int | None = None,
    ) -> None:
        """Send the event to every channel that hears it; a lost message stops nothing.

        Without ``wait`` the message goes out while the workflow goes on (a rollback does
        not wait for a slow receiver); it is waited for before the next event is told.
        ``weight``: the canary's when the event happened, if not its weight now.
        """
        plan, progress = self._plan, self._progress
        await self._settle()
        if self.also is not None:
            await self.also(kind, reason or text)
        channels = plan.notify.channels_for(kind)
        if not channels:
            return
        progress.notices += 1
        notice = self._notice(kind, reason, restored or [], weight)
        message = Notification.to(channels, text, plan.service, progress.state.value, notice)
        self._pending = start_telling(message, kind)
        if wait:
            await self._settle()

    async def _settle(self) -> None:
        """Wait for the message under way, if any; its failure is only logged."""
        pending, self._pending = self._pending, None
        await settled(pending)

    def _notice(
        self, kind: EventKind, reason: str, restored: list[str], weight: int | None = None
    ) -> Notice:
        plan, progress = self._plan, self._progress
        info = workflow.info()
        index = min(progress.stage_index, len(plan.stages) - 1)
        stage = plan.stages[index]
        gates = {g.name for g in plan.gates_for(stage)}
        verdicts: list[Verdict] = [
            v for name, v in progress.gates.verdicts.items() if name in gates
        ]
        return Notice(
            kind=kind,
            key=f"{info.workflow_id}/{info.first_execution_run_id}/{kind.value}/{index}/{progress.notices}",
            service=plan.service,
            version=plan.version,
            strategy=plan.strategy.replace("_", "-"),
            stage=stage.name,
            stage_index=index,
            stage_count=len(plan.stages),
            weight=progress.canary_weight if weight is None else weight,
            stages=[
                StageBrief(
                    name=s.name,
                    weight=s.weight,
                    bake_s=s.bake.total_seconds(),
                    approval=s.approval,
                )
                for s in plan.stages
            ],
            verdicts=verdicts,
            reason=reason,
            restored=restored,
            at=workflow.now(),
            report_url=progress.report_url or None,
            templates_dir=plan.notify.templates.dir if plan.notify.templates else None,
        )
