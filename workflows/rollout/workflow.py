"""RolloutWorkflow: carries a plan out stage by stage, durably, and puts stable back on failure."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from plans import (
        CommandKind,
        CommandRecord,
        Gate,
        OperatorCommand,
        Plan,
        RolloutResult,
        RolloutState,
        RolloutStatus,
        Stage,
        Verdict,
        format_duration,
    )
    from plans.runtime import messages
    from plans.runtime.inputs import RolloutInput
    from plans.runtime.progress import RolloutProgress
    from workflows.failures import root_message
    from workflows.rollout import clock, decisions, extension, gains, metering
    from workflows.rollout.checking import discount_unobserved, observe_and_judge
    from workflows.rollout.commands import CommandLog
    from workflows.rollout.decisions import Abort as _Abort
    from workflows.rollout.decisions import RollBack as _RollBack
    from workflows.rollout.ending import write_report
    from workflows.rollout.hooks import Hooks, HookStop
    from workflows.rollout.notices import Notices
    from workflows.rollout.status import (
        Board,
        changed_verdicts,
        keep_blue_text,
        kept_blue,
        result_of,
        rolled_back,
        status_of,
    )
    from workflows.rollout.stopping import Stopping
    from workflows.rollout.target import Target, TargetRefused
    from workflows.rollout.windows import Windows
    from workflows.runs import continue_in_new_run, record_history_version, run_is_full


Until = Callable[[Plan, RolloutProgress, datetime], bool]


@workflow.defn(name=messages.ROLLOUT.name)
class RolloutWorkflow(Stopping):
    """Shift, bake while checking, wait for approval where asked, stage after stage."""

    @workflow.init
    def __init__(self, input: RolloutInput) -> None:
        self._input = input
        self._plan = plan = input.plan
        self._progress = progress = input.progress or RolloutProgress()
        self._commands = CommandLog(plan, progress, input.release)
        self._board = Board(plan, progress, input.visibility)
        self._notices = Notices(plan, progress)
        # The run's parts, each writing its own part of the progress (plans/runtime/progress.py).
        parts = (plan, progress, self._commands, self._notices, self._board)
        self._target = Target(*parts)
        self._windows = Windows(*parts)
        self._hooks = Hooks(*parts)

    @workflow.run
    async def run(self, input: RolloutInput) -> RolloutResult:
        progress, plan = self._progress, self._plan
        record_history_version()
        if not progress.target.owned:
            await self._claim_target()
        if progress.stopping_as is not None:  # a restore the router refused, carried into this run
            return await self._go_on_restoring()
        try:
            if progress.run_count == 1 and progress.shifted_stage < 0:
                metering.started(plan)
                await self._notices.started()
                await self._hooks.run_point("before_rollout", next_weight=plan.stages[0].weight)
            while progress.stage_index < len(plan.stages) and not progress.promote_requested:
                await self._run_stage(plan.stages[progress.stage_index])
                if progress.promote_requested:
                    break
                clock.next_stage(progress)
            await self._promote()
        except HookStop as stop:
            if stop.abort:
                await self._stop(stop.reason, final=RolloutState.ABORTED)
            else:
                await self._stop(stop.reason)
                raise rolled_back(plan, progress) from None
        except _Abort as abort:
            await self._stop(abort.reason, final=RolloutState.ABORTED)
        except _RollBack as rollback:
            await self._stop(rollback.reason)
            raise rolled_back(plan, progress) from None
        except ActivityError as error:
            await self._stop(f"{self._failed_step()} failed: {root_message(error)}")
            raise rolled_back(plan, progress) from None
        except asyncio.CancelledError:
            # Cancelling the workflow is a rollback too; activities started here still run.
            await self._stop("rollout was cancelled")
            raise
        return result_of(plan, progress)

    # -- a stage, as the runbook has it -------------------------------------------------------

    async def _run_stage(self, stage: Stage) -> None:
        """Shift, bake while checking, then wait for approval if the stage asks for it."""
        if self._progress.shifted_stage < self._progress.stage_index:
            first = self._progress.shifted_stage < 0 and (
                stage.weight > 0 or stage.match is not None
            )
            if not await self._windows.before(
                f"shift to {stage.name!r}", self._commands.last, first
            ):
                self._stop_if_asked()
            await self._hooks.before_stage(stage)
            await self._enter(stage)
        await self._watch(stage, until=decisions.bake_done)
        if stage.approval:
            await self._watch(stage, until=decisions.stage_complete)
        if self._windows.increases_after(self._progress.stage_index):
            await self._windows.watch(lambda: self._watch(stage, until=self._windows.until_open))
        await self._hooks.before_next(lambda until: self._watch(stage, until=until))
        if not self._progress.promote_requested:
            where = decisions.describe_stage(self._plan, self._progress.stage_index)
            self._audit("stage", f"{where} passed")
            await self._notices.stage_passed()

    async def _enter(self, stage: Stage) -> None:
        """Shift the canary to the stage's weight and start its bake clock."""
        progress = self._progress
        if progress.stage_index == 0 or stage.weight != progress.canary_weight:
            summary = f"shift canary to {stage.weight}% for stage {stage.name!r}"
            await self._target.shift(stage.weight, summary, stage.match)
        else:
            # Blue-green's keep-blue stage: green already has it all, blue stays ready.
            self._audit("keep", keep_blue_text(self._plan))
        progress.shifted_stage = progress.stage_index
        clock.enter(progress.clock, workflow.now(), progress.paused, stage.check_every)
        where = decisions.describe_stage(self._plan, progress.stage_index)
        self._audit("stage", f"{where} started")

    async def _watch(self, stage: Stage, until: Until) -> None:
        """Check on schedule and follow commands until ``until`` holds or a promote comes.

        A rollback or an abort asked for ends the stage with an exception.
        """
        progress = self._progress
        while True:
            self._stop_if_asked()
            if progress.promote_requested:
                return
            now = workflow.now()
            # Every stage looks at the router at every check, even one without gates.
            if self._needs_fresh_look(stage, now):
                clock.check_now(progress.clock, now)
            assert progress.clock.next_check_at is not None
            if now >= progress.clock.next_check_at:
                await self._check(stage)
                continue
            await extension.watch(self._plan, progress, now, until, self._audit, self._notices)
            if until(self._plan, progress, now):
                return
            if decisions.deadline_passed(self._plan, progress, now):
                await self._missed_deadline(stage, now)
                continue
            if unfinished := decisions.abort_reason(self._plan, progress, now):
                raise _Abort(unfinished)
            if self._set_waiting_state(now) == RolloutState.AWAITING_APPROVAL:
                await self._notices.awaiting_approval()
            if run_is_full(progress.checks_this_run, self._input.checks_per_run):
                await continue_in_new_run(self._input, progress)
            await self._wait(stage, now)

    def _stop_if_asked(self) -> None:
        """A rollback or an abort asked for ends whatever the rollout was doing."""
        decisions.stop_if_asked(self._progress)

    def _needs_fresh_look(self, stage: Stage, now: datetime) -> bool:
        """A stage passes on a fresh look, never on a bake nobody watched the end of."""
        progress = self._progress
        return decisions.baked(self._plan, progress, now) and (
            progress.clock.checks == 0
            or decisions.unobserved(stage, progress.clock.last_check_at, now)
        )

    async def _wait(self, stage: Stage, now: datetime) -> None:
        """Sleep until the next check or the end of the bake; a command wakes it at once."""
        progress = self._progress
        assert progress.clock.next_check_at is not None
        remaining = decisions.bake_remaining(self._plan, progress, now)
        timeout, summary = clock.first_wake(
            now,
            (progress.clock.next_check_at, f"next check of stage {stage.name!r}"),
            [
                (
                    remaining if progress.clock.running_since else None,
                    f"bake {stage.name!r} {format_duration(stage.bake)}",
                ),
                (
                    decisions.abort_due(self._plan, progress, now),
                    f"abort {stage.name!r} unfinished",
                ),
                (self._windows.wake_at(), self._windows.timer_summary()),
                (self._hooks.wake_at(), "a hook asks again"),
            ],
        )
        seen = self._commands.last()
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._commands.last() is not seen,
                timeout=timedelta(seconds=max(timeout, 0.001)),
                timeout_summary=summary,
            )

    async def _missed_deadline(self, stage: Stage, now: datetime) -> None:
        progress = self._progress
        clock.deadline_acted(progress.clock, progress.stage_index)
        assert stage.progress_deadline is not None
        why = (
            f"stage {stage.name!r} made no progress within its deadline"
            f" {format_duration(stage.progress_deadline)}"
        )
        self._audit("deadline", f"{why}: {stage.on_deadline}")
        if stage.on_deadline == "rollback":
            raise _RollBack(why)
        if stage.on_deadline == "pause" and not progress.paused:
            decisions.pause(progress, now, "deadline")
        await self._notices.deadline_missed(why, stage.on_deadline)

    def _set_waiting_state(self, now: datetime) -> RolloutState:
        progress = self._progress
        approval = decisions.awaiting_approval(self._plan, progress, now)
        state = clock.waiting_state(progress.paused, approval, self._windows.waiting)
        if state != progress.state and state == RolloutState.AWAITING_APPROVAL:
            workflow.logger.info("Stage awaits approval")
        self._board.show(state)
        return state

    # -- a check: read the router back, judge the gates, act ----------------------------------

    async def _check(self, stage: Stage) -> None:
        """Read the router back and judge the gates; repair drift, act on the verdicts."""
        progress, plan = self._progress, self._plan
        gates = plan.gates_for(stage)
        progress.checks += 1
        progress.checks_this_run += 1
        discount_unobserved(stage, progress, workflow.now(), self._audit)
        clock.looking(progress.clock, workflow.now())
        split, verdicts = await observe_and_judge(
            plan, stage, gates, self._target, progress.canary_weight, progress.clock.entered_at
        )
        await self._target.repair_drift(split)
        clock.checked(progress.clock, workflow.now(), stage.check_every)
        metering.checked(plan, progress, verdicts)
        if gates:
            await self._act_on(verdicts, gates)

    async def _act_on(self, verdicts: list[Verdict], gates: list[Gate]) -> None:
        """Keep the verdicts; roll back, pause or notify as the gates' policies ask."""
        progress = self._progress
        for changed in changed_verdicts(progress, verdicts):
            self._audit("verdict", changed)
        actions = gains.judge_checks(self._plan, progress, gates, verdicts, workflow.now())
        for shadow in progress.gates.shadow_actions:
            if shadow.check == progress.checks:
                self._audit("dry-run", f"gate {shadow.gate} would {shadow.action}: {shadow.reason}")
        rollbacks = [a.reason for a in actions if a.action == "rollback"]
        if rollbacks:
            raise _RollBack("; ".join(rollbacks))
        for action in actions:
            if action.action == "pause" and not progress.paused:
                decisions.pause(progress, workflow.now(), "gates")
                self._audit("pause", f"paused by gate {action.gate}: {action.reason}")
                self._board.show()
            await self._notices.gate_action(action.action, action.reason)

    # -- how a run ends -------------------------------------------------------------------------

    async def _claim_target(self) -> None:
        """Own the router's target, or end refused, naming the rollout that owns it."""
        progress = self._progress
        try:
            await self._target.claim(self._notices.for_the_lease())
        except TargetRefused as refused:
            progress.reason = refused.reason
            self._board.set_state(RolloutState.REFUSED)
            self._audit("end", f"refused: {progress.reason}")
            self._board.show()
            raise ApplicationError(
                f"refused: {progress.reason}",
                result_of(self._plan, progress),
                type="TargetOwned",
                non_retryable=True,
            ) from None

    async def _promote(self) -> None:
        progress = self._progress
        await self._hooks.run_point("before_promote", next_weight=100)
        if progress.canary_weight != 100:
            if not await self._windows.before("promotion", self._commands.last):
                self._stop_if_asked()
            await self._target.shift(100, "promote: shift canary to 100%")
        if progress.rollback_requested:
            raise _RollBack(progress.reason)
        self._target.promoted()
        self._board.set_state(RolloutState.PROMOTED)
        progress.reason = progress.reason or "all stages passed"
        if kept_blue(self._plan, progress):
            progress.reason += "; blue was kept ready until now and may be retired"
        if progress.promote_requested and progress.stage_index < len(self._plan.stages):
            who = next(
                (c for c in reversed(progress.commands) if c.kind == "promote" and c.accepted), None
            )
            if who is not None:
                progress.reason = f"promoted by {who.by}" + (
                    f": {who.reason}" if who.reason else ""
                )
        self._audit("end", f"promoted: {progress.reason}")
        self._board.show()
        await write_report(progress)
        await self._notices.promoted()
        await self._hooks.run_point("after_promote")
        await self._target.release()

    def _failed_step(self) -> str:
        return "shift" if self._progress.state == RolloutState.SHIFTING else "step"

    # -- operator commands --------------------------------------------------------------------
    # One method per signal, alike on purpose: Temporal binds each signal name to a method,
    # and these names are what the Temporal CLI and UI and a release fanning out send.
    # Each hands its command to the command log (workflows.rollout.commands), which takes or
    # refuses it.

    @workflow.signal(name="pause")
    async def pause(self, *inputs: Any) -> None:
        await self._commands.on_signal(CommandKind.PAUSE, inputs)

    @workflow.signal(name="resume")
    async def resume(self, *inputs: Any) -> None:
        await self._commands.on_signal(CommandKind.RESUME, inputs)

    @workflow.signal(name="approve")
    async def approve(self, *inputs: Any) -> None:
        await self._commands.on_signal(CommandKind.APPROVE, inputs)

    @workflow.signal(name="promote")
    async def promote(self, *inputs: Any) -> None:
        await self._commands.on_signal(CommandKind.PROMOTE, inputs)

    @workflow.signal(name="rollback")
    async def rollback(self, *inputs: Any) -> None:
        await self._commands.on_signal(CommandKind.ROLLBACK, inputs)

    @workflow.signal(name="abort")
    async def abort(self, *inputs: Any) -> None:
        await self._commands.on_signal(CommandKind.ABORT, inputs)

    @workflow.signal(name="retry")
    async def retry(self, *inputs: Any) -> None:
        await self._commands.on_signal(CommandKind.RETRY, inputs)

    @workflow.signal(name="override")
    async def override(self, *inputs: Any) -> None:
        await self._commands.on_signal(CommandKind.OVERRIDE, inputs)

    @workflow.signal(name=messages.STARTED_BY.name)
    async def started_by(self, *inputs: Any) -> None:
        """Who started the rollout, signed by `rollout start`: what not_by_starter goes by."""
        await self._commands.started_by(inputs)

    @workflow.update(name=messages.ROLLOUT_COMMAND.name)
    async def command(self, command: OperatorCommand) -> CommandRecord:
        """The CLI's way in: refused commands are rejected by the validator and say why."""
        return await self._commands.take(command, via="update")

    @command.validator
    def _validate_command(self, command: OperatorCommand) -> None:
        if why := self._commands.refusal(command):
            raise ApplicationError(why, type="CommandRefused", non_retryable=True)

    @workflow.query(name=messages.ROLLOUT_STATUS.name)
    def status(self) -> RolloutStatus:
        return status_of(self._plan, self._progress, workflow.now())

    # -- what people see ----------------------------------------------------------------------

    def _audit(self, kind: str, text: str) -> None:
        self._commands.audit(kind, text)
