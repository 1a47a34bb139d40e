"""RolloutWorkflow: carries a plan out stage by stage, durably, and puts stable back on failure."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.ownership import TargetLeases
    from activities.rollout import (
        check_gates,
        check_gates_timeout,
        notify,
        read_traffic,
        shift_traffic,
    )
    from plans import (
        ClaimAnswer,
        CommandKind,
        CommandRecord,
        Compensation,
        Gate,
        GateCheck,
        GateOutcome,
        Notification,
        OperatorCommand,
        Plan,
        RolloutResult,
        RolloutState,
        RolloutStatus,
        ShiftRequest,
        Stage,
        TargetClaim,
        TrafficSplit,
        Verdict,
        format_duration,
    )
    from plans.state import AuditEvent, RolloutProgress
    from plans.visibility import SERVICE, STAGE, STATE, VERSION, WEIGHT, service_of
    from workflows import decisions


SHIFT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=["RouterRefused"],
)
SHIFT_DEADLINE = timedelta(minutes=10)
RESTORE_ATTEMPTS_BEFORE_ALERT = 5
CHECK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)
NOTIFY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=3)


MAX_EVENTS_KEPT = 300
READ_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=2)
CLAIM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)

# Runs recorded before rollouts owned their target and read it back at every check
# replay without either; every run started since takes the newer path.
OWN_AND_OBSERVE = "own-and-observe-target"


class _RollBack(Exception):
    """Raised inside the stage loop when the rollout must go back to stable."""


class _Abort(Exception):
    """Raised inside the stage loop when an operator aborts: stable again, not a failure."""


@workflow.defn(name="RolloutWorkflow")
class RolloutWorkflow:
    """Shift, bake, judge, maybe wait for approval, stage after stage; compensate on failure."""

    @workflow.init
    def __init__(self, plan: Plan, progress: RolloutProgress | None = None) -> None:
        self._plan = plan
        self._p = progress or RolloutProgress()
        self._wakeups = 0
        self._published: tuple[Any, ...] = ()
        self._observes = False

    @workflow.run
    async def run(self, plan: Plan, progress: RolloutProgress | None = None) -> RolloutResult:
        p = self._p
        self._observes = workflow.patched(OWN_AND_OBSERVE)
        if self._observes and not p.owns_target:
            await self._claim_target()
        try:
            if p.run_count == 1 and p.shifted_stage < 0:
                await self._notify(
                    f"Rollout of {plan.service} {plan.version} started: " + self._stages_line()
                )
            while p.stage_index < len(plan.stages) and not p.promote_requested:
                await self._run_stage(plan.stages[p.stage_index])
                if p.promote_requested:
                    break
                self._next_stage()
            await self._promote()
        except _Abort:
            await self._roll_back(p.reason, final=RolloutState.ABORTED)
        except _RollBack:
            await self._roll_back(p.reason)
            raise ApplicationError(
                f"rolled back: {p.reason}", self._result(), type="RolledBack", non_retryable=True
            ) from None
        except ActivityError as error:
            await self._roll_back(f"{self._failed_step()} failed: {_root_message(error)}")
            raise ApplicationError(
                f"rolled back: {p.reason}", self._result(), type="RolledBack", non_retryable=True
            ) from None
        except asyncio.CancelledError:
            # Cancelling the workflow is a rollback too; activities started here still run.
            await self._roll_back(p.cancel_reason or "rollout was cancelled")
            raise
        return self._result()

    # -- the stage loop -------------------------------------------------------------------

    async def _run_stage(self, stage: Stage) -> None:
        p = self._p
        if p.shifted_stage < p.stage_index:
            await self._shift(
                stage.weight, f"shift canary to {stage.weight}% for stage {stage.name!r}"
            )
            now = workflow.now()
            p.shifted_stage = p.stage_index
            p.bake_elapsed_s = 0.0
            p.clock_running_since = None if p.paused else now
            p.next_check_at = now + stage.check_every
            p.stage_checks = 0
            p.last_check_at = now  # the shift read the split back
            self._audit("stage", f"{decisions.describe_stage(self._plan, p.stage_index)} started")
        # Observed stages look at the router at every check even when they have no gates.
        checked = self._observes or bool(self._plan.gates_for(stage))
        while True:
            if p.rollback_requested:
                raise _RollBack()
            if p.abort_requested:
                raise _Abort()
            if p.promote_requested:
                return
            now = workflow.now()
            assert p.next_check_at is not None
            if (
                checked
                and decisions.baked(self._plan, p, now)
                and (
                    p.stage_checks == 0
                    or (self._observes and decisions.unobserved(stage, p.last_check_at, now))
                )
            ):
                # A stage passes on a fresh look, never on a bake nobody watched the end of.
                p.next_check_at = now
            if checked and now >= p.next_check_at:
                await self._check(stage)
                continue
            if decisions.stage_complete(self._plan, p, now):
                self._audit(
                    "stage", f"{decisions.describe_stage(self._plan, p.stage_index)} passed"
                )
                return
            if decisions.deadline_passed(self._plan, p, now):
                await self._missed_deadline(stage, now)
                continue
            self._set_waiting_state(now)
            if not checked:
                p.next_check_at = now + stage.check_every
            if self._should_continue_as_new():
                await self._continue_as_new()
            await self._wait(stage, now)

    async def _wait(self, stage: Stage, now: Any) -> None:
        """Sleep until the next check or the end of the bake; any command wakes it at once."""
        p = self._p
        assert p.next_check_at is not None
        timeout = (p.next_check_at - now).total_seconds()
        summary = f"next check of stage {stage.name!r}"
        remaining = decisions.bake_remaining(self._plan, p, now)
        if p.clock_running_since is not None and 0 < remaining < timeout:
            timeout, summary = remaining, f"bake {stage.name!r} {format_duration(stage.bake)}"
        seen = self._wakeups
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._wakeups != seen,
                timeout=timedelta(seconds=max(timeout, 0.001)),
                timeout_summary=summary,
            )

    async def _missed_deadline(self, stage: Stage, now: Any) -> None:
        p = self._p
        p.deadline_acted_stage = p.stage_index
        assert stage.progress_deadline is not None
        why = (
            f"stage {stage.name!r} made no progress within its deadline"
            f" {format_duration(stage.progress_deadline)}"
        )
        self._audit("deadline", f"{why}: {stage.on_deadline}")
        if stage.on_deadline == "rollback":
            p.reason = why
            raise _RollBack()
        if stage.on_deadline == "pause" and not p.paused:
            decisions.pause(p, now, "deadline")
            self._wakeups += 1
        await self._notify(f"Rollout of {self._plan.service}: {why}; action: {stage.on_deadline}")

    def _next_stage(self) -> None:
        p = self._p
        p.stage_index += 1
        p.bake_elapsed_s = 0.0
        p.clock_running_since = None
        p.stage_checks = 0

    def _set_waiting_state(self, now: Any) -> None:
        p = self._p
        if p.paused:
            state = RolloutState.PAUSED
        elif decisions.awaiting_approval(self._plan, p, now):
            state = RolloutState.AWAITING_APPROVAL
        else:
            state = RolloutState.BAKING
        if state != p.state:
            if state == RolloutState.AWAITING_APPROVAL:
                workflow.logger.info("Stage awaits approval")
            p.state = state
        self._publish()

    # -- side effects ---------------------------------------------------------------------

    async def _shift(self, weight: int, summary: str) -> None:
        """Move traffic; the undo record is pushed first so a crash mid-shift still restores."""
        p, plan = self._p, self._plan
        if not any(c.shift.router == plan.router for c in p.compensations):
            p.compensations.append(
                Compensation(
                    shift=self._shift_request(0),
                    description=f"restore 100% stable on {plan.router.describe()}",
                )
            )
        p.state = RolloutState.SHIFTING
        self._publish()
        await workflow.execute_activity(
            shift_traffic,
            self._shift_request(weight),
            start_to_close_timeout=plan.router.shift_timeout,
            schedule_to_close_timeout=SHIFT_DEADLINE,
            retry_policy=SHIFT_RETRY,
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=summary,
        )
        p.canary_weight = weight
        _raise_if_cancelled()

    async def _check(self, stage: Stage) -> None:
        """Read the router back and judge the gates; repair drift, act on the verdicts."""
        p, plan = self._p, self._plan
        gates = plan.gates_for(stage)
        p.checks += 1
        p.checks_this_run += 1
        if self._observes:
            self._discount_unobserved(stage, workflow.now())
            p.last_check_at = workflow.now()
            split, verdicts = await asyncio.gather(
                self._read_split(self._shift_request(p.canary_weight)), self._judge(stage, gates)
            )
            await self._repair_drift(split)
        else:
            verdicts = await self._judge(stage, gates)
        p.stage_checks += 1
        # Keep the cadence of the schedule, not of when each check happened to finish.
        due = (p.next_check_at or workflow.now()) + stage.check_every
        p.next_check_at = due if due > workflow.now() else workflow.now() + stage.check_every
        if not gates:
            return
        self._audit_verdicts(verdicts)
        actions = decisions.judge_checks(p, gates, verdicts)
        for shadow in p.shadow_actions:
            if shadow.check == p.checks:
                self._audit("dry-run", f"gate {shadow.gate} would {shadow.action}: {shadow.reason}")
        rollbacks = [a.reason for a in actions if a.action == "rollback"]
        if rollbacks:
            p.reason = "; ".join(rollbacks)
            raise _RollBack()
        for action in actions:
            if action.action == "pause" and not p.paused:
                decisions.pause(p, workflow.now(), "gates")
                self._wakeups += 1
                self._audit("pause", f"paused by gate {action.gate}: {action.reason}")
                self._publish()
            verb = "paused" if action.action == "pause" else "needs a look"
            await self._notify(
                f"Rollout of {plan.service} {plan.version} {verb}: {action.reason}"
                + (
                    f" (`rollout retry {plan.service}` re-checks)"
                    if action.action == "pause"
                    else ""
                )
            )

    async def _judge(self, stage: Stage, gates: list[Gate]) -> list[Verdict]:
        """One verdict per gate; a check that cannot run makes every gate inconclusive."""
        if not gates:
            return []
        plan = self._plan
        try:
            # A local activity: its result is one marker in history instead of an activity's
            # three events and a workflow task of its own, which keeps week-long runs small.
            request = GateCheck(source=plan.metrics, gates=gates, placeholders=plan.placeholders())
            verdicts: list[Verdict] = await workflow.execute_local_activity(
                check_gates,
                request,
                start_to_close_timeout=check_gates_timeout(request),
                retry_policy=CHECK_RETRY,
                summary=f"check {len(gates)} gate(s) at {stage.weight}%",
            )
        except ActivityError as error:
            reason = f"gate check failed: {_root_message(error)}"
            verdicts = [
                Verdict(
                    gate=g.name, outcome=GateOutcome.INCONCLUSIVE, reason=reason, at=workflow.now()
                )
                for g in gates
            ]
        return verdicts

    # -- the target: owned for the whole run, read back at every check ---------------------

    async def _claim_target(self) -> None:
        """Own the router's target, or end refused, naming the rollout that owns it."""
        p, plan = self._p, self._plan
        answer: ClaimAnswer = await workflow.execute_activity_method(
            TargetLeases.claim_target,
            self._target_claim(),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=CLAIM_RETRY,
            summary=f"claim {plan.router.target_key()}",
        )
        if answer.claimed:
            p.owns_target = True
            self._audit("target", f"owns {plan.router.target_key()}")
            return
        since = f", started {answer.since:%Y-%m-%d %H:%M:%S} UTC" if answer.since else ""
        owner_service = service_of(answer.owner)
        p.reason = (
            f"{plan.router.describe()} is being moved by {answer.owner}"
            f" (run {answer.owner_run_id}{since}); one rollout at a time may move a target:"
            f" wait for it to end, or stop it with `rollout rollback {owner_service}`"
        )
        p.state = RolloutState.REFUSED
        self._audit("end", f"refused: {p.reason}")
        self._publish()
        raise ApplicationError(
            f"refused: {p.reason}", self._result(), type="TargetOwned", non_retryable=True
        )

    async def _release_target(self) -> None:
        """Give the target back; a lost release is mended by the lease itself."""
        p = self._p
        if not p.owns_target:
            return
        try:
            await workflow.execute_activity_method(
                TargetLeases.release_target,
                self._target_claim(),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=5),
                summary=f"release {self._plan.router.target_key()}",
            )
        except ActivityError as error:
            # The lease looks at its owner now and then and ends itself once the run has ended.
            workflow.logger.warning("Releasing the target failed: %s", _root_message(error))
        p.owns_target = False

    def _target_claim(self) -> TargetClaim:
        plan = self._plan
        return TargetClaim(
            lease_id=plan.target_lease_id,
            target=plan.router.target_key(),
            owner=workflow.info().workflow_id,
            service=plan.service,
        )

    async def _read_split(self, request: ShiftRequest) -> TrafficSplit | None:
        """What the router routes now, or None (recorded once) when it cannot be read."""
        p = self._p
        try:
            split: TrafficSplit = await workflow.execute_local_activity(
                read_traffic,
                request,
                start_to_close_timeout=request.router.read_timeout,
                retry_policy=READ_RETRY,
                summary=f"read the split on {request.router.describe()}",
            )
        except ActivityError as error:
            if not p.router_unreadable:
                self._audit("router", f"cannot read the split: {_root_message(error)}")
            p.router_unreadable = True
            return None
        if p.router_unreadable:
            self._audit("router", "the split can be read again")
        p.router_unreadable = False
        return split

    async def _repair_drift(self, split: TrafficSplit | None) -> None:
        """Put the wanted split back when the router routes something else (a reload, a person)."""
        p, plan = self._p, self._plan
        wanted = TrafficSplit.canary_percent(p.canary_weight)
        if split is None or split.routes_like(wanted):
            return
        text = (
            f"{plan.router.describe()} routes {split}, but the rollout set {wanted}:"
            " putting it back"
        )
        self._audit("drift", text)
        await self._notify(f"Rollout of {plan.service} {plan.version}: drift: {text}")
        await workflow.execute_activity(
            shift_traffic,
            self._shift_request(p.canary_weight),
            start_to_close_timeout=plan.router.shift_timeout,
            schedule_to_close_timeout=SHIFT_DEADLINE,
            retry_policy=SHIFT_RETRY,
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"re-assert canary at {p.canary_weight}% after drift",
        )
        _raise_if_cancelled()

    def _discount_unobserved(self, stage: Stage, now: datetime) -> None:
        """Time with no check (worker, server or router away) is not counted as baked."""
        p = self._p
        excess = decisions.unobserved_excess(stage, p.last_check_at, p.clock_running_since, now)
        if excess <= timedelta(0):
            return
        assert p.clock_running_since is not None and p.last_check_at is not None
        p.clock_running_since += excess
        self._audit(
            "gap",
            f"no check for {format_duration(now - p.last_check_at)}:"
            f" {format_duration(excess)} of it not counted as bake time",
        )

    async def _promote(self) -> None:
        p = self._p
        if p.canary_weight != 100:
            await self._shift(100, "promote: shift canary to 100%")
        if p.rollback_requested:
            raise _RollBack()
        p.compensations.clear()
        p.state = RolloutState.PROMOTED
        p.reason = p.reason or "all stages passed"
        if p.promote_requested and p.stage_index < len(self._plan.stages):
            who = next(
                (c for c in reversed(p.commands) if c.kind == "promote" and c.accepted), None
            )
            if who is not None:
                p.reason = f"promoted by {who.by}" + (f": {who.reason}" if who.reason else "")
        self._audit("end", f"promoted: {p.reason}")
        self._publish()
        await self._notify(
            f"Rollout of {self._plan.service} {self._plan.version} promoted: {p.reason}"
        )
        await self._release_target()

    async def _roll_back(self, reason: str, final: RolloutState = RolloutState.ROLLED_BACK) -> None:
        """Run the compensation stack in reverse; restoring traffic never gives up."""
        p = self._p
        p.reason = reason
        self._audit("rollback", f"restoring stable: {reason}")
        p.state = RolloutState.ROLLING_BACK
        self._publish()
        failures = 0
        restored: list[Compensation] = []
        while p.compensations:
            compensation = p.compensations[-1]
            try:
                await workflow.execute_activity(
                    shift_traffic,
                    compensation.shift,
                    start_to_close_timeout=self._plan.router.shift_timeout,
                    retry_policy=RetryPolicy(
                        initial_interval=timedelta(seconds=1),
                        maximum_interval=timedelta(seconds=10),
                        maximum_attempts=RESTORE_ATTEMPTS_BEFORE_ALERT,
                    ),
                    summary=compensation.description,
                )
            except ActivityError as error:
                failures += 1
                await self._notify(
                    f"Rollback of {self._plan.service} cannot {compensation.description} after"
                    f" {failures * RESTORE_ATTEMPTS_BEFORE_ALERT} attempts"
                    f" ({_root_message(error)}); still retrying"
                )
                await workflow.sleep(
                    timedelta(seconds=min(30 * failures, 300)), summary="retry restore"
                )
                continue
            restored.append(p.compensations.pop())
            if not p.compensations and self._observes:
                # Read each restore back: one a reload undid is asserted again until it holds.
                drifted = [c for c in restored if not await self._holds(c)]
                restored = []
                if drifted:
                    failures += 1
                    p.compensations.extend(reversed(drifted))
                    await workflow.sleep(
                        timedelta(seconds=min(2 * failures, 60)), summary="re-assert restore"
                    )
        p.canary_weight = 0
        p.state = final
        self._audit("end", f"{final.value.replace('_', ' ')}: {reason}")
        self._publish()
        word = final.value.replace("_", " ")
        await self._notify(f"Rollout of {self._plan.service} {self._plan.version} {word}: {reason}")
        await self._release_target()

    async def _holds(self, compensation: Compensation) -> bool:
        """Whether the router still routes what this compensation restored."""
        split = await self._read_split(compensation.shift)
        if split is None or split.routes_like(compensation.shift.split):
            return True
        self._audit(
            "drift",
            f"{compensation.shift.router.describe()} routes {split} after"
            f" the restore to {compensation.shift.split}: restoring again",
        )
        return False

    async def _notify(self, text: str) -> None:
        channel = self._plan.notify.channel
        if channel is None:
            return
        try:
            await workflow.execute_activity(
                notify,
                Notification(
                    channel=channel,
                    text=text,
                    service=self._plan.service,
                    state=self._p.state.value,
                ),
                start_to_close_timeout=timedelta(seconds=15),
                retry_policy=NOTIFY_RETRY,
                summary="notify",
            )
        except ActivityError as error:
            # A lost message must not stop a rollout, nor a rollback.
            workflow.logger.warning("Notification failed: %s", _root_message(error))

    # -- history stays bounded --------------------------------------------------------------

    def _should_continue_as_new(self) -> bool:
        p = self._p
        return (
            p.checks_this_run >= p.checks_per_run or workflow.info().is_continue_as_new_suggested()
        )

    async def _continue_as_new(self) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._p.checks_this_run = 0
        self._p.run_count += 1
        workflow.continue_as_new(args=[self._plan, self._p])

    # -- operator commands --------------------------------------------------------------------

    @workflow.signal(name="pause")
    def pause(self, *inputs: Any) -> None:
        self._on_signal(CommandKind.PAUSE, inputs)

    @workflow.signal(name="resume")
    def resume(self, *inputs: Any) -> None:
        self._on_signal(CommandKind.RESUME, inputs)

    @workflow.signal(name="approve")
    def approve(self, *inputs: Any) -> None:
        self._on_signal(CommandKind.APPROVE, inputs)

    @workflow.signal(name="promote")
    def promote(self, *inputs: Any) -> None:
        self._on_signal(CommandKind.PROMOTE, inputs)

    @workflow.signal(name="rollback")
    def rollback(self, *inputs: Any) -> None:
        self._on_signal(CommandKind.ROLLBACK, inputs)

    @workflow.signal(name="abort")
    def abort(self, *inputs: Any) -> None:
        self._on_signal(CommandKind.ABORT, inputs)

    @workflow.signal(name="retry")
    def retry(self, *inputs: Any) -> None:
        self._on_signal(CommandKind.RETRY, inputs)

    @workflow.update(name="command")
    def command(self, command: OperatorCommand) -> CommandRecord:
        """The CLI's way in: refused commands are rejected by the validator and say why."""
        return self._handle(command, via="update")

    @command.validator
    def _validate_command(self, command: OperatorCommand) -> None:
        why = decisions.refusal(self._plan, self._p, command, workflow.now())
        if why:
            raise ApplicationError(why, type="CommandRefused", non_retryable=True)

    @workflow.query(name="status")
    def status(self) -> RolloutStatus:
        p, plan = self._p, self._plan
        now = workflow.now()
        stage = decisions.current_stage(plan, p)
        running = p.shifted_stage == p.stage_index and not p.state.final
        elapsed = decisions.bake_elapsed(p, now) if running else 0.0
        # `now` is the time of the last workflow task; the client carries a running clock
        # on from `as_of` to the moment it asks (RolloutStatus.at).
        return RolloutStatus(
            service=plan.service,
            version=plan.version,
            state=p.state,
            stage_index=decisions.current_index(plan, p),
            stage_name=stage.name,
            stage_count=len(plan.stages),
            stages=[f"{s.name}:{s.weight}" for s in plan.stages],
            canary_weight=p.canary_weight,
            paused=p.paused,
            bake_total_s=stage.bake.total_seconds(),
            bake_elapsed_s=elapsed,
            bake_remaining_s=max(stage.bake.total_seconds() - elapsed, 0.0) if running else 0.0,
            awaiting_approval=p.state == RolloutState.AWAITING_APPROVAL,
            verdicts=p.verdicts,
            failure_streaks=p.failure_streaks,
            inconclusive_streaks=p.inconclusive_streaks,
            pause_cause=p.pause_cause,
            commands=p.commands,
            events=p.events,
            reason=p.reason,
            checks=p.checks,
            run_count=p.run_count,
            as_of=now,
            bake_clock_running=running and p.clock_running_since is not None,
        )

    def _on_signal(self, kind: CommandKind, inputs: tuple[Any, ...]) -> None:
        # Signals take any number of inputs so that a wrong count is refused and recorded
        # instead of failing every workflow task of the run.
        body: Any = inputs[0] if len(inputs) == 1 else (inputs or {})
        if body is None:
            body = {}
        try:
            if not isinstance(body, dict):
                raise TypeError(type(body).__name__)
            command = OperatorCommand.model_validate({**body, "kind": kind})
        except (TypeError, ValidationError) as error:
            self._record(
                CommandRecord(
                    kind=kind.value,
                    by=str(body.get("by", "unknown"))[:200]
                    if isinstance(body, dict)
                    else "unknown",
                    reason="",
                    at=workflow.now(),
                    accepted=False,
                    note=f"{kind.value}: body must be a JSON object like"
                    f' {{"by": "ana", "reason": "..."}} ({_short(error)})',
                    via="signal",
                )
            )
            return
        self._handle(command, via="signal")

    def _handle(self, command: OperatorCommand, via: str) -> CommandRecord:
        now = workflow.now()
        why = decisions.refusal(self._plan, self._p, command, now)
        if not why:
            decisions.apply_command(self._p, command, now)
        record = CommandRecord(
            kind=command.kind.value,
            by=command.by,
            reason=command.reason,
            at=now,
            accepted=not why,
            note=why,
            via=via,
        )
        self._record(record)
        return record

    def _record(self, record: CommandRecord) -> None:
        commands = self._p.commands
        commands.append(record)
        del commands[: max(len(commands) - decisions.MAX_COMMANDS_KEPT, 0)]
        if record.accepted:
            workflow.logger.info("Command %s by %s accepted", record.kind, record.by)
        self._wakeups += 1

    # -- what people see ----------------------------------------------------------------------

    def _audit(self, kind: str, text: str) -> None:
        events = self._p.events
        events.append(AuditEvent(at=workflow.now(), kind=kind, text=text))
        del events[: max(len(events) - MAX_EVENTS_KEPT, 0)]

    def _audit_verdicts(self, verdicts: list[Verdict]) -> None:
        """Record a gate's verdict when its outcome changes; every check's detail is in history."""
        for verdict in verdicts:
            previous = self._p.verdicts.get(verdict.gate)
            if previous is None or previous.outcome != verdict.outcome:
                self._audit("verdict", verdict.explain())

    def _publish(self) -> None:
        """Current details and search attributes; upserted only when they change."""
        p, plan = self._p, self._plan
        stage = decisions.current_stage(plan, p)
        snapshot = (p.state, stage.name, p.canary_weight, p.reason)
        if snapshot == self._published:
            return
        self._published = snapshot
        workflow.set_current_details(self._sentence())
        if p.visibility:
            workflow.upsert_search_attributes(
                [
                    SERVICE.value_set(plan.service),
                    VERSION.value_set(plan.version),
                    STAGE.value_set(stage.name),
                    WEIGHT.value_set(p.canary_weight),
                    STATE.value_set(p.state.value),
                ]
            )

    def _sentence(self) -> str:
        p, plan = self._p, self._plan
        where = decisions.describe_stage(plan, decisions.current_index(plan, p))
        state = p.state.value.replace("_", " ")
        text = f"{plan.service} {plan.version}: {state}, canary at {p.canary_weight}%, {where}"
        if p.reason and (p.state.final or p.state == RolloutState.ROLLING_BACK):
            text += f". Reason: {p.reason}"
        return text

    def _stages_line(self) -> str:
        return " -> ".join(f"{s.name} {s.weight}%" for s in self._plan.stages)

    def _failed_step(self) -> str:
        return "shift" if self._p.state == RolloutState.SHIFTING else "step"

    def _shift_request(self, weight: int) -> ShiftRequest:
        plan = self._plan
        return ShiftRequest(
            router=plan.router,
            stable=plan.stable,
            canary=plan.canary,
            split=TrafficSplit.canary_percent(weight),
        )

    def _result(self) -> RolloutResult:
        p, plan = self._p, self._plan
        return RolloutResult(
            service=plan.service,
            state=p.state,
            reason=p.reason,
            canary_weight=p.canary_weight,
            stage_name=decisions.current_stage(plan, p).name,
        )


def _raise_if_cancelled() -> None:
    """Surface a cancellation that arrived while a shift we wait for completed anyway.

    A shift awaited with WAIT_CANCELLATION_COMPLETED that finishes normally returns its
    result, and the cancellation request would otherwise be forgotten.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()


def _root_message(error: BaseException) -> str:
    """The innermost cause's message: what actually went wrong under the activity wrapper."""
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error) or type(error).__name__


def _short(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:200]
