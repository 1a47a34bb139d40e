"""ReleaseWorkflow: one release of a service across a fleet of targets, wave after wave.

Each target runs today's RolloutWorkflow as a child (``rollout-<service>-<target>``), with its
own gates, commands, compensation and history. The release holds the wave state, waits for
approval and ``bake_between`` between waves, fans commands out to the running targets, and
halts (or rolls every promoted target back, newest first) when one target fails.

Children are started with ParentClosePolicy.REQUEST_CANCEL: however the release closes
(cancelled, terminated, timed out), a target still rolling out is cancelled, and a cancelled
RolloutWorkflow puts its stable back. A child never depends on the release to keep traffic
safe. The release continues-as-new only between waves, when no child is running, so no child
is ever started twice or left to a run that no longer watches it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from plans.runtime import messages
    from plans.runtime.release import (
        ReleaseCommand,
        ReleaseCommandRecord,
        ReleaseInput,
        ReleaseProgress,
        ReleaseResult,
        ReleaseState,
        ReleaseStatus,
        TargetRun,
        TargetState,
    )
    from workflows.consent import Consent
    from workflows.release import children, forwarding
    from workflows.release import decisions as decide
    from workflows.release.log import ReleaseLog
    from workflows.runs import continue_in_new_run, record_history_version, run_is_full

# With not_by_starter, targets learn who started the release when they start: the first wave
# waits this long at most for `rollout start`'s signed claim.
STARTER_WAIT = timedelta(minutes=1)


@workflow.defn(name=messages.RELEASE.name)
class ReleaseWorkflow:
    """Wait for the wave's turn, run its targets, judge the wave; halt on a failure."""

    @workflow.init
    def __init__(self, input: ReleaseInput) -> None:
        self._input = input
        self._plan = input.fleet
        self._p = input.progress or ReleaseProgress()
        for name in self._plan.targets:
            self._p.targets.setdefault(name, TargetRun(workflow_id=self._plan.child_id(name)))
        self._active: dict[str, asyncio.Task[None]] = {}
        self._log = ReleaseLog(input, self._p)

    @workflow.run
    async def run(self, input: ReleaseInput) -> ReleaseResult:
        p, plan = self._p, self._plan
        record_history_version()
        if plan.approval_rule.not_by_starter and not p.approvals.start_claimed:
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: p.approvals.start_claimed,
                    timeout=STARTER_WAIT,
                    timeout_summary="who started the release?",
                )
        try:
            while p.wave_index < len(plan.waves) and not self._stopped():
                await self._wait_for_turn()
                if self._stopped():
                    break
                await self._run_wave()
                if self._stopped():
                    break
                self._log.audit("wave", f"wave {p.wave_index + 1} promoted")
                p.wave_index += 1
                p.wave_started = False
                p.waves_this_run += 1
                if p.wave_index < len(plan.waves) and run_is_full(
                    p.waves_this_run, self._input.waves_per_run
                ):
                    await continue_in_new_run(self._input, p)
        except asyncio.CancelledError:
            # Each running target is cancelled, which rolls it back; the release waits for it.
            for task in self._active.values():
                task.cancel()
            await asyncio.gather(*self._active.values(), return_exceptions=True)
            self._log.end(ReleaseState.ROLLED_BACK, "the release was cancelled")
            raise
        return await self._end()

    # -- before a wave: bake_between, approval, pause ---------------------------------------

    async def _wait_for_turn(self) -> None:
        p, wave = self._p, self._plan.waves[self._p.wave_index]
        if p.wave_started:
            return
        if p.wave_index > 0 and wave.bake_between > timedelta(0):
            if p.wave_ready_at is None:
                p.wave_ready_at = workflow.now() + wave.bake_between
            while not self._stopped() and workflow.now() < p.wave_ready_at:
                self._log.set_state(ReleaseState.BETWEEN_WAVES)
                left = p.wave_ready_at - workflow.now()
                await self._wait_command(left, f"bake between waves before wave {p.wave_index + 1}")
        while wave.approval and p.wave_index not in p.approved_waves and not self._stopped():
            self._log.set_state(ReleaseState.AWAITING_APPROVAL)
            await self._wait_command(None, "")
        while p.paused and not self._stopped():
            self._log.set_state(ReleaseState.PAUSED)
            await self._wait_command(None, "")

    async def _wait_command(self, timeout: timedelta | None, summary: str) -> None:
        """Sleep until a command arrives (or ``timeout``): every command changes the list."""
        seen = self._log.last_command()
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._log.last_command() is not seen,
                timeout=timeout,
                timeout_summary=summary or None,
            )

    # -- a wave: its targets, at most max_parallel at once ----------------------------------

    async def _run_wave(self) -> None:
        p, wave = self._p, self._plan.waves[self._p.wave_index]
        if not p.wave_started:
            p.wave_started = True
            p.wave_ready_at = None
            self._log.audit("wave", f"wave {p.wave_index + 1} started: {', '.join(wave.targets)}")
        limit = wave.max_parallel or len(wave.targets)
        pending = [t for t in wave.targets if p.targets[t].state == TargetState.PENDING]

        cancelled: set[str] = set()

        def can_start() -> bool:
            return bool(pending) and len(self._active) < limit and not p.paused

        while True:
            while can_start() and not self._stopped():
                name = pending.pop(0)
                self._active[name] = asyncio.create_task(self._run_target(name))
            self._log.set_state(ReleaseState.PAUSED if p.paused else ReleaseState.RUNNING)
            if not self._active and (not pending or self._stopped()):
                return
            await self._next_change(can_start)
            for name in [n for n, t in self._active.items() if t.done()]:
                del self._active[name]
            if p.failed_target and self._plan.on_target_failure == "rollback_all":
                # Cancelled, a target's rollout puts its stable back by itself.
                for name, task in self._active.items():
                    if name not in cancelled:
                        cancelled.add(name)
                        task.cancel()

    async def _next_change(self, can_start: Callable[[], bool]) -> None:
        """Wait until a target ends, a command arrives, or another target may start."""
        seen = self._log.last_command()
        await workflow.wait_condition(
            lambda: (
                any(t.done() for t in self._active.values())
                or self._log.last_command() is not seen
                or (can_start() and not self._stopped())
            )
        )

    async def _run_target(self, name: str) -> None:
        """Run one target; a target that did not promote fails the release, unless it goes back."""
        try:
            await children.run_target(self._input, self._p, self._log, name)
        except asyncio.CancelledError:
            self._target_ended(name)
            raise
        self._target_ended(name)

    def _target_ended(self, name: str) -> None:
        run = self._p.targets[name]
        if run.state != TargetState.PROMOTED and not self._going_back():
            self._fail(name, run)
        self._log.publish()

    def _fail(self, name: str, run: TargetRun) -> None:
        p = self._p
        if p.failed_target:
            return
        p.failed_target = name
        p.reason = f"target {name} {run.state.value.replace('_', ' ')}: {run.reason}"
        policy = self._plan.on_target_failure
        self._log.audit("halt", f"{p.reason}; no further wave starts ({policy})")

    # -- how a release ends -------------------------------------------------------------------

    async def _end(self) -> ReleaseResult:
        p, plan = self._p, self._plan
        for run in p.targets.values():
            if run.state == TargetState.PENDING:
                run.state = TargetState.SKIPPED
        back = self._going_back() or (p.failed_target and plan.on_target_failure == "rollback_all")
        if back:
            self._log.set_state(ReleaseState.ROLLING_BACK)
            await children.restore_promoted(self._input, p, self._log)
        if p.abort_requested:
            final = ReleaseState.ABORTED
        elif back:
            final = ReleaseState.ROLLED_BACK
        elif p.failed_target:
            final = ReleaseState.HALTED
        else:
            final = ReleaseState.PROMOTED
            p.reason = f"all {len(plan.targets)} targets promoted"
        self._log.end(final, p.reason)
        await workflow.wait_condition(workflow.all_handlers_finished)
        result = self._result()
        if final in (ReleaseState.HALTED, ReleaseState.ROLLED_BACK):
            raise ApplicationError(
                f"{final.value.replace('_', ' ')}: {p.reason}",
                result,
                type="ReleaseHalted" if final == ReleaseState.HALTED else "ReleaseRolledBack",
                non_retryable=True,
            )
        return result

    def _result(self) -> ReleaseResult:
        p = self._p
        return ReleaseResult(
            service=self._plan.service,
            state=p.state,
            reason=p.reason,
            failed_target=p.failed_target,
            targets={name: run.state for name, run in p.targets.items()},
        )

    def _stopped(self) -> bool:
        """No new wave or target starts: a target failed, or the release goes back."""
        return bool(self._p.failed_target) or self._going_back()

    def _going_back(self) -> bool:
        return self._p.rollback_requested or self._p.abort_requested

    # -- commands: taken by the release, fanned out to its running targets ---------------------

    @workflow.update(name=messages.RELEASE_COMMAND.name)
    async def command(self, command: ReleaseCommand) -> ReleaseCommandRecord:
        """The CLI's way in: refused commands are rejected by the validator and say why."""
        return await self._take(command)

    @command.validator
    def _validate_command(self, command: ReleaseCommand) -> None:
        why = decide.refusal(self._plan, self._p, command)
        why = why or self._consent.unsigned_refusal(command.command, command.target or "")
        if why:
            raise ApplicationError(why, type="CommandRefused", non_retryable=True)

    @workflow.signal(name=messages.RELEASE_COMMAND_SIGNAL.name)
    async def release_command(self, body: Any) -> None:
        """The Temporal UI's way in: {"command": {"kind": "pause", "by": ...}, "target": ...}."""
        try:
            command = ReleaseCommand.model_validate(body)
        except ValidationError as error:
            note = f"the body must be like {{'command': {{'kind': 'pause', 'by': 'ana'}}}}: {error}"
            self._log.command(
                ReleaseCommandRecord(
                    kind="?", by="unknown", reason="", at=workflow.now(), accepted=False, note=note
                )
            )
            return
        await self._take(command)

    @workflow.signal(name=messages.STARTED_BY.name)
    async def started_by(self, *inputs: Any) -> None:
        """Who started the release, signed by `rollout start`: its targets' starter too."""
        self._log.audit("start", await self._consent.started_by(inputs))

    @property
    def _consent(self) -> Consent:
        plan = self._plan
        return Consent(plan.approval_rule, self._p.approvals, plan.service)

    @workflow.query(name=messages.RELEASE_STATUS.name)
    def status(self) -> ReleaseStatus:
        p, plan = self._p, self._plan
        return ReleaseStatus(
            service=plan.service,
            version=plan.version,
            state=p.state,
            wave_index=p.wave_index,
            waves=decide.wave_statuses(plan, p),
            targets=p.targets,
            on_target_failure=plan.on_target_failure,
            paused=p.paused,
            failed_target=p.failed_target,
            reason=p.reason,
            wave_ready_at=p.wave_ready_at,
            commands=p.commands,
            events=p.events,
            run_count=p.run_count,
        )

    async def _take(self, command: ReleaseCommand) -> ReleaseCommandRecord:
        op, p = command.command, self._p
        # The release verifies a forward command; each target it forwards it to checks the
        # same signature (made for the release, and for it or all targets) before taking it.
        vetted = await self._consent.vet(
            op, lambda: decide.refusal(self._plan, p, command), p.wave_index, command.target or ""
        )
        record = ReleaseCommandRecord(
            kind=op.kind.value,
            by=vetted.by(op.by),
            reason=op.reason,
            at=workflow.now(),
            target=command.target,
            accepted=not vetted.refusal,
            note=vetted.refusal or vetted.note,
            verified=vetted.verified,
        )
        if vetted.takes:
            sent, record.not_sent = decide.reach(self._p, command)
            decide.apply(self._p, command, workflow.now())
            ids = [p.targets[name].workflow_id for name in sent]
            answers = await forwarding.forward(self._plan.workflow_id, ids, op)
            for name, why_not in zip(sent, answers, strict=True):
                if why_not:
                    record.not_sent[name] = why_not
                else:
                    record.sent_to.append(name)
        self._log.command(record)
        return record
