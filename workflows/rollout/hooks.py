"""The plan's hooks and smoke check, from the rollout's side: when to ask, and what answers do.

A ``gate`` hook holds the rollout until it answers 2xx; a 202 is asked again after its
``retry_after`` on a durable timer (a rollback or an abort asked for ends the wait at once).
A ``check`` counts its failures in a row like a metric gate and acts with ``on_fail``; a
``notify`` hook is told and never stops anything. After promotion and during a rollback a
failing hook is recorded and told, but changes nothing: stable is already back (or the new
version is). Every call and its answer is an audit event. Plans without hooks or smoke
schedule nothing here, so their histories are as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.hooks import call_hook, smoke_check
    from plans import EventKind, Plan, RolloutState, Stage, format_duration
    from plans.hooks import (
        MAX_RETRY_AFTER,
        MIN_RETRY_AFTER,
        Hook,
        HookAnswer,
        HookCall,
        HookPayload,
        HookPoint,
        VerdictBrief,
    )
    from plans.runtime.progress import RolloutProgress
    from workflows.failures import root_message
    from workflows.rollout import decisions
    from workflows.rollout.commands import CommandLog
    from workflows.rollout.notices import Notices
    from workflows.rollout.status import Board

DEFAULT_RETRY_AFTER = timedelta(seconds=30)
WAIT_SHARE = 100  # asks again after at least 1/100 of the time already waited

# The rollout's watch of the stage it is in, until a condition on its plan, progress and now.
Watch = Callable[[Callable[[Plan, RolloutProgress, datetime], bool]], Awaitable[None]]


@dataclass(frozen=True)
class Step:
    """What a hook is asked about: the point (or event), what it leads to, and why."""

    phase: str
    next_weight: int | None
    reason: str
    stage: str  # the stage a before_stage hook's step starts


# Points past which a failing hook can change nothing: it is recorded and told.
TOO_LATE: frozenset[str] = frozenset({"after_promote", "on_rollback", "event"})
SMOKED = "smoke"


class HookStop(Exception):
    """A hook asks for a rollback (or an abort was asked while a hook held the rollout).

    Raised for the rollout to stop; it is the hooks' own, so the rollout catches the very
    class this module raises, however the workflow sandbox loads the modules around it.
    """

    def __init__(self, reason: str, abort: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.abort = reason, abort


class Hooks:
    """The rollout's hook caller: one per run, over the run's plan and progress."""

    def __init__(
        self, plan: Plan, progress: RolloutProgress, log: CommandLog, notices: Notices, board: Board
    ) -> None:
        self._plan, self._progress = plan, progress
        self._log, self._notices, self._board = log, notices, board
        self._watch: Watch | None = None
        self._ask_at: datetime | None = None
        if any(h.on == "event" for h in plan.hooks):
            notices.also = self.event

    async def before_stage(self, stage: Stage) -> None:
        """As a stage starts: the smoke check before the canary's first user traffic, then the
        stage's gates if they were not asked at the end of the stage before (the first)."""
        progress = self._progress
        first_users = progress.canary_weight == 0 and progress.canary_match is None
        if self._plan.smoke and first_users and (stage.weight > 0 or stage.match is not None):
            await self._smoke()
        await self._ahead_of(progress.stage_index)

    async def before_next(self, watch: Watch) -> None:
        """At the end of a stage: ask what comes next (the next stage's hooks, or the
        promotion's), with ``watch`` keeping the stage checked while an answer is 202."""
        if self._progress.promote_requested:
            return  # the promotion asks its own hooks
        self._watch = watch
        try:
            await self._ahead_of(self._progress.stage_index + 1)
        finally:
            self._watch = None

    def wake_at(self) -> datetime | None:
        """When a hook waiting on a 202 asks again, for the rollout's timer while it watches."""
        return self._ask_at

    async def _ahead_of(self, index: int) -> None:
        plan, progress = self._plan, self._progress
        if index >= len(plan.stages):
            await self.run_point("before_promote", next_weight=100)
            return
        stage = plan.stages[index]
        if plan.strategy == "blue_green" and stage.weight == 100 and progress.canary_weight < 100:
            await self.run_point("before_promote", next_weight=100)  # the flip is the promotion
        await self.run_point(
            "before_stage", next_weight=stage.weight, stage=stage.name, index=index
        )

    async def run_point(
        self,
        point: HookPoint,
        next_weight: int | None = None,
        reason: str = "",
        stage: str = "",
        index: int = -1,
    ) -> None:
        """Run the hooks of ``point`` in the plan's order, once a rollout (before_stage: once
        per stage ``index``)."""
        hooks = [
            h for h in self._plan.hooks if h.on == point and (not stage or h.runs_before(stage))
        ]
        where = f"{point}/{index}" if point == "before_stage" else point
        step = Step(point, next_weight, reason, stage)
        for hook in hooks:
            # Kept per hook across continue-as-new: a gate that said yes is not asked again.
            done = f"{where}/{hook.name}"
            if done in self._progress.hooks.done:
                continue
            if not await self._run(hook, step):
                return  # a promotion asked for meanwhile: its own hooks come next
            self._progress.hooks.done.append(done)

    async def event(self, kind: EventKind, reason: str) -> None:
        """Tell the ``on: event`` hooks that hear ``kind``."""
        for hook in self._plan.hooks:
            if hook.on == "event" and kind in hook.events:
                await self._run(hook, Step(kind.value, None, reason, ""))

    async def _run(self, hook: Hook, step: Step) -> bool:
        """Ask until the hook's answer is final; False when a promotion cut the wait short."""
        start, attempt, phase = workflow.now(), 1, step.phase
        key = self._key(hook, step)
        while True:
            payload = self._payload(hook, step, attempt, key)
            answer = await self._ask(hook, payload)
            said = f"{hook.mode} hook {hook.name} at {phase} (ask {attempt}): {answer.describe()}"
            self._log.audit("hook", said)
            if hook.mode == "notify":
                return True
            if answer.ok:
                self._progress.hooks.streaks.pop(hook.name, None)
                return True
            if answer.later and phase not in TOO_LATE:
                wait = next_wait(answer, workflow.now() - start)
                if workflow.now() + wait - start <= hook.max_wait:
                    if not await self._wait(hook, wait):
                        return False
                    attempt += 1
                    continue
                answer = answer.model_copy(
                    update={"error": f"still 202 after max_wait {format_duration(hook.max_wait)}"}
                )
            await self._failed(hook, phase, answer)
            return True

    async def _failed(self, hook: Hook, phase: str, answer: HookAnswer) -> None:
        """A gate refused or a check failed: act as the hook's policy says."""
        progress = self._progress
        why = f"{hook.mode} hook {hook.name} at {phase} {answer.describe()}"
        if phase in TOO_LATE:
            await self._notices.send_line(EventKind.HOOK_FAILED, why)
            return
        if hook.mode == "gate":
            await self._notices.send_line(EventKind.HOOK_FAILED, why)
            raise HookStop(why)
        streak = progress.hooks.streaks[hook.name] = progress.hooks.streaks.get(hook.name, 0) + 1
        if streak < hook.failure_limit:
            self._log.audit("hook", f"{why}: failure {streak} of {hook.failure_limit} in a row")
            return
        why += f", failed {streak} time(s) in a row"
        if hook.on_fail == "rollback":
            await self._notices.send_line(EventKind.HOOK_FAILED, why)
            raise HookStop(why)
        if hook.on_fail == "pause":
            await self._pause(why)
        else:
            await self._notices.send_line(EventKind.HOOK_FAILED, why)

    async def _pause(self, why: str) -> None:
        """Pause, and hold here until resumed: a failing check lets nothing go on by itself.

        Between stages the stage it is in goes on being checked; a rollback ends it.
        """
        progress = self._progress
        decisions.pause(progress, workflow.now(), "hooks")
        self._board.set_state(RolloutState.PAUSED)
        self._log.audit("pause", f"paused by {why}")
        self._board.show()
        await self._notices.gate_action("pause", why)
        if self._watch is not None:  # between stages: the stage stays checked meanwhile
            await self._watch(lambda plan, progress, now: not progress.paused)
            return
        await workflow.wait_condition(
            lambda: not progress.paused or progress.rollback_requested or progress.abort_requested
        )
        _stop_if_asked(progress)

    async def _wait(self, hook: Hook, wait: timedelta) -> bool:
        """A durable timer to the next ask; a rollback or abort asked for ends it at once.

        Between stages the stage goes on being watched (checks, commands) until then;
        False when a promotion was asked for meanwhile.
        """
        progress = self._progress
        if self._watch is not None:
            ask_at = self._ask_at = workflow.now() + wait
            try:
                await self._watch(lambda plan, progress, now: now >= ask_at)
            finally:
                self._ask_at = None
            return not progress.promote_requested
        try:
            await workflow.wait_condition(
                lambda: progress.rollback_requested or progress.abort_requested,
                timeout=wait,
                timeout_summary=f"hook {hook.name} asks again",
            )
        except TimeoutError:
            return True
        _stop_if_asked(progress)
        return True

    async def _ask(self, hook: Hook, payload: HookPayload) -> HookAnswer:
        """Call the hook; no answer at all (after its retries) is an answer too."""
        try:
            return await workflow.execute_activity(
                call_hook,
                HookCall(hook=hook, payload=payload),
                start_to_close_timeout=hook.timeout + timedelta(seconds=5),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=1),
                    maximum_interval=timedelta(seconds=30),
                    maximum_attempts=hook.retries + 1,
                    non_retryable_error_types=["HookRefused"],
                ),
                summary=f"{hook.mode} hook {hook.name} ({payload.phase})",
            )
        except ActivityError as error:
            return HookAnswer(status=0, error=root_message(error))

    async def _smoke(self) -> None:
        """Requests straight to the canary; a failure rolls back before users meet it."""
        smoke = self._plan.smoke
        assert smoke is not None
        if SMOKED in self._progress.hooks.done:
            return
        try:
            answer = await workflow.execute_activity(
                smoke_check,
                smoke,
                start_to_close_timeout=smoke.timeout * smoke.requests + timedelta(seconds=5),
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3),
                summary=f"smoke check: {smoke.requests} request(s)",
            )
        except ActivityError as error:
            answer = HookAnswer(status=0, error=root_message(error))
        self._log.audit("smoke", f"smoke check of {smoke.url}: {answer.error or answer.excerpt}")
        if answer.error:
            raise HookStop(f"smoke check failed: {answer.error}")
        self._progress.hooks.done.append(SMOKED)

    def _key(self, hook: Hook, step: Step) -> str:
        """One key per call of a hook, the same for every retry and every ask after a 202."""
        info = workflow.info()
        where = f"{hook.name}/{step.phase}/{step.stage or self._progress.stage_index}"
        if hook.on == "event":  # an event may come again in a stage: each telling is one call
            where += f"/{workflow.now():%Y%m%dT%H%M%S.%f}"
        return f"{info.workflow_id}/{info.first_execution_run_id}/{where}"

    def _payload(self, hook: Hook, step: Step, attempt: int, key: str) -> HookPayload:
        plan, progress = self._plan, self._progress
        info = workflow.info()
        index = decisions.current_index(plan, progress)
        stage = plan.stages[index]
        gates = {g.name for g in plan.gates_for(stage)}
        return HookPayload(
            hook=hook.name,
            mode=hook.mode,
            phase=step.phase,
            rollout_id=info.workflow_id,
            run_id=info.first_execution_run_id,
            service=plan.service,
            versions={"stable": plan.stable, "canary": plan.canary, "version": plan.version},
            stage=stage.name,
            stage_index=index,
            current_weight=progress.canary_weight,
            next_weight=step.next_weight,
            next_stage=step.stage,
            verdicts=[
                VerdictBrief(gate=v.gate, outcome=v.outcome.value, value=v.value, reason=v.reason)
                for name, v in sorted(progress.gates.verdicts.items())
                if name in gates
            ],
            reason=step.reason or progress.reason,
            attempt=attempt,
            idempotency_key=key,
            at=workflow.now(),
        )


def _stop_if_asked(progress: RolloutProgress) -> None:
    if progress.rollback_requested:
        raise HookStop(progress.reason)
    if progress.abort_requested:
        raise HookStop(progress.reason, abort=True)


def next_wait(answer: HookAnswer, waited: timedelta) -> timedelta:
    """How long until a 202 is asked again: its retry_after (30 s if none), at least 1 s and
    at most 1 h, and at least a hundredth of the time already waited, so that a receiver
    that keeps saying 202 is asked less and less often and the history stays small."""
    least, most = MIN_RETRY_AFTER.total_seconds(), MAX_RETRY_AFTER.total_seconds()
    asked = DEFAULT_RETRY_AFTER.total_seconds()
    if answer.retry_after_s is not None:
        asked = answer.retry_after_s
    seconds = max(asked, least, waited.total_seconds() / WAIT_SHARE)
    return timedelta(seconds=min(seconds, most))
