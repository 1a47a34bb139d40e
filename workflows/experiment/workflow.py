"""ExperimentWorkflow: variants side by side at set shares, the winner rolled forward.

It owns the router's target (the lease, as a rollout does), sets the plan's shares, and at
every check judges each variant still in against the control: the primary gate at the
confidence split over the variants, the guardrails as the plan writes them. A guardrail
failing on a variant takes it out at once (its share goes to the control). It stops when a
variant is shown better than the control, or at ``max_duration``, or when a person promotes
a variant; then the winner gets 100% (or the control keeps it). A rollback, a cancel or a
failure puts the control back at 100% first, and nothing cancels that restore.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.rollout import check_gates_timeout
    from plans import CommandKind, CommandRecord, GateCheck, OperatorCommand, Verdict
    from plans.durations import format_duration
    from plans.runtime import messages
    from plans.runtime.experiment import (
        ExperimentInput,
        ExperimentProgress,
        ExperimentReportRequest,
        ExperimentResult,
        ExperimentState,
        ExperimentStatus,
    )
    from plans.runtime.shares import VariantShares
    from workflows.experiment import board, decisions
    from workflows.experiment.commands import Commands
    from workflows.experiment.notices import Notices
    from workflows.experiment.target import Target
    from workflows.failures import root_message
    from workflows.runs import continue_in_new_run, record_history_version, run_is_full

CHECK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)


class _Stop(Exception):
    """A person asked to stop: the control goes back to 100%."""


@workflow.defn(name=messages.EXPERIMENT.name)
class ExperimentWorkflow:
    """Set the shares, judge each variant against the control, roll the winner forward."""

    @workflow.init
    def __init__(self, input: ExperimentInput) -> None:
        self._input = input
        self._plan = input.plan
        self._progress = input.progress or ExperimentProgress()
        self._board = board.Board(self._plan, self._progress, input.visibility)
        self._commands = Commands(self._plan, self._progress, self._board)
        self._target = Target(self._plan, self._progress, self._commands, self._board)
        self._notices = Notices(self._plan, self._progress)

    @workflow.run
    async def run(self, input: ExperimentInput) -> ExperimentResult:
        p, plan = self._progress, self._plan
        record_history_version()
        if not p.owned:
            await self._target.claim(self._notices.for_the_lease())
        try:
            if p.state == ExperimentState.RESTORING:
                raise _Stop(p.reason)
            if not p.shifted:
                p.started_at = workflow.now()
                p.next_check_at = workflow.now() + plan.experiment.check_every
                shares = plan.experiment.shares
                await self._target.set(
                    shares, f"set the shares: {VariantShares(shares=shares).describe()}"
                )
                p.shifted = True
                self._commands.audit(
                    "start", f"experiment started: {VariantShares(shares=shares).describe()}"
                )
                self._board.show(ExperimentState.PAUSED if p.paused else ExperimentState.RUNNING)
                await self._notices.started()
            winner = await self._watch()
            await self._conclude(winner)
        except _Stop as stop:
            await self._restore(str(stop))
            raise board.rolled_back(plan, p) from None
        except ActivityError as error:
            await self._restore(f"a step failed: {root_message(error)}")
            raise board.rolled_back(plan, p) from None
        except asyncio.CancelledError:
            await self._restore("the experiment was cancelled")
            raise
        return board.result_of(plan, p)

    # -- the checks -----------------------------------------------------------------------------

    async def _watch(self) -> str:
        """Check on schedule until a winner is clear, a person picks one, or time is up."""
        p, ex = self._progress, self._plan.experiment
        while True:
            if p.stop_asked:
                raise _Stop(p.stop_asked)
            if p.winner:
                return p.winner
            now = workflow.now()
            left = ex.max_duration - decisions.elapsed(p, now)
            if not p.paused and left <= timedelta(0):
                return ""
            if not decisions.active(self._plan, p):
                return ""
            assert p.next_check_at is not None
            if now >= p.next_check_at:
                found = await self._check()
                p.next_check_at = workflow.now() + ex.check_every
                if found and not (p.paused or p.stop_asked or p.winner):
                    p.winner = found
                continue
            if run_is_full(p.checks_this_run, self._input.checks_per_run):
                await continue_in_new_run(self._input, p)
            wake = p.next_check_at - now
            if not p.paused:
                wake = min(wake, left)
            seen = len(p.commands)
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: len(p.commands) != seen,  # noqa: B023
                    timeout=max(wake, timedelta(milliseconds=1)),
                    timeout_summary="next check",
                )

    async def _check(self) -> str:
        """Read the shares back, judge every variant still in; the winner found, or ''."""
        p, plan = self._progress, self._plan
        p.checks += 1
        p.checks_this_run += 1
        await self._target.repair_drift()
        challengers = plan.experiment.challengers
        primary = decisions.split_confidence(plan.primary, len(challengers))
        gates = [primary, *plan.guardrails]
        found: dict[str, Verdict] = {}
        for variant in decisions.active(plan, p):
            verdicts = await self._judge(variant, gates)
            before = {v.gate: v.outcome for v in p.verdicts.get(variant, [])}
            for v in verdicts:
                if before.get(v.gate) != v.outcome:
                    self._commands.audit("verdict", f"{variant}: {v.explain()}")
            p.verdicts[variant] = verdicts
            failing = decisions.failing_guardrails(
                verdicts, plan.guardrails, p.streaks.setdefault(variant, {})
            )
            if failing:
                await self._take_out(variant, "; ".join(failing))
                continue
            starved = decisions.starved_guardrails(
                verdicts, plan.guardrails, p.unsure.setdefault(variant, {})
            )
            if starved and not p.paused:
                why = f"{variant}: {'; '.join(starved)}"
                self._commands.pause_for(why)
                await self._notices.paused(why)
            first = next((v for v in verdicts if v.gate == primary.name), None)
            if first is not None:
                found[variant] = first
                decisions.trace(p, variant, first, workflow.now())
        self._board.show()
        improve = primary.direction == "improve"
        return decisions.winner_of(found, decisions.lower_is_better(primary), improve)

    async def _judge(self, variant: str, gates: list[Any]) -> list[Verdict]:
        """The gates' verdicts on ``variant`` as the canary, the control as the stable."""
        plan, p = self._plan, self._progress
        named = {g.source for g in gates if g.source is not None}
        request = GateCheck(
            source=plan.plan.metrics,
            sources={name: plan.plan.sources[name] for name in sorted(named)},
            gates=gates,
            placeholders=plan.placeholders(variant),
            stage_started_at=p.started_at,
            stage_span=plan.experiment.test_span,
        )
        try:
            verdicts: list[Verdict] = await workflow.execute_local_activity(
                messages.CHECK_GATES,
                request,
                result_type=list[Verdict],
                start_to_close_timeout=check_gates_timeout(request),
                retry_policy=CHECK_RETRY,
                summary=f"judge {variant} against {plan.experiment.control}",
            )
        except ActivityError as error:
            self._commands.audit("check", f"{variant}: the check failed: {root_message(error)}")
            return []
        return verdicts

    async def _take_out(self, variant: str, why: str) -> None:
        """A guardrail failed on ``variant``: its share goes to the control at once."""
        p, plan = self._progress, self._plan
        p.out[variant] = why
        shares = decisions.without(p.shares, variant, plan.experiment.control)
        self._commands.audit("out", f"{variant} taken out: {why}")
        await self._target.set(shares, f"take {variant} out ({why[:80]})")
        await self._notices.variant_out(variant, why)

    # -- the end --------------------------------------------------------------------------------

    async def _conclude(self, winner: str) -> None:
        """Roll the winner forward to 100%, or keep the control there; say why."""
        p, plan = self._progress, self._plan
        ex = plan.experiment
        names = [v.name for v in ex.variants]
        if winner:
            if p.chosen_by:
                why = f"{winner} promoted by {p.chosen_by}"
            else:
                verdict = next(v for v in p.verdicts[winner] if v.gate == ex.primary)
                why = f"{winner} shown better than {ex.control}: {verdict.reason}"
            self._board.show(ExperimentState.ROLLING_FORWARD)
            await self._target.set(decisions.only(winner, names), f"roll {winner} forward to 100%")
            p.reason = why
            final = ExperimentState.ROLLED_FORWARD
        else:
            left = decisions.active(plan, p)
            p.reason = (
                f"no variant was shown better than {ex.control} within"
                f" {format_duration(ex.max_duration)}"
                if left
                else "every variant was taken out by its guardrails"
            )
            await self._target.set(decisions.only(ex.control, names), f"keep {ex.control} at 100%")
            final = ExperimentState.KEPT_CONTROL
        if p.stop_asked:  # a rollback taken while the shares were being set
            raise _Stop(p.stop_asked)
        self._commands.audit("end", f"{final.value.replace('_', ' ')}: {p.reason}")
        self._board.show(final)
        await self._notices.ended(await self._report())
        await self._target.release()

    async def _restore(self, reason: str) -> None:
        """The control back at 100% first; a cancel meanwhile is honoured after it."""
        p = self._progress
        restoring = asyncio.ensure_future(self._restore_control(reason))
        cancelled = False
        while not restoring.done():
            try:
                await asyncio.shield(restoring)
            except asyncio.CancelledError:
                cancelled = True
        restoring.result()
        if cancelled:
            raise asyncio.CancelledError()
        p.state = ExperimentState.ROLLED_BACK

    async def _restore_control(self, reason: str) -> None:
        p, plan = self._progress, self._plan
        ex = plan.experiment
        p.reason = reason
        p.winner = ""
        self._commands.audit("rollback", f"restoring {ex.control} to 100%: {reason}")
        self._board.show(ExperimentState.RESTORING)
        names = [v.name for v in ex.variants]
        await self._target.set(
            decisions.only(ex.control, names), f"restore {ex.control} to 100%", restore=True
        )
        self._commands.audit("end", f"rolled back: {reason}")
        self._board.show(ExperimentState.ROLLED_BACK)
        await self._notices.ended(await self._report())
        await self._target.release()

    async def _report(self) -> str | None:
        """Write the report and say where; a report store that refuses is said in the audit,
        nothing more (None)."""
        request = ExperimentReportRequest(
            status=self.status(),
            run_id=workflow.info().first_execution_run_id,
            trail=self._progress.trail,
        )
        try:
            url: str = await workflow.execute_activity(
                messages.WRITE_EXPERIMENT_REPORT,
                request,
                result_type=str,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary="write the experiment's report",
            )
        except ActivityError as error:
            self._commands.audit("report", f"no report: {root_message(error)}")
            return None
        self._commands.audit("report", f"report written: {url}")
        return url

    # -- commands ---------------------------------------------------------------------------------

    @workflow.update(name=messages.ROLLOUT_COMMAND.name)
    async def command(self, command: OperatorCommand) -> CommandRecord:
        """The CLI's way in, as for a rollout: refused commands are rejected and say why."""
        return await self._commands.take(command, via="update")

    @command.validator
    def _validate_command(self, command: OperatorCommand) -> None:
        if why := self._commands.refusal(command):
            raise ApplicationError(why, type="CommandRefused", non_retryable=True)

    @workflow.signal(name="pause")
    async def pause(self, *inputs: Any) -> None:
        await self._commands.on_signal(CommandKind.PAUSE, inputs)

    @workflow.signal(name="resume")
    async def resume(self, *inputs: Any) -> None:
        await self._commands.on_signal(CommandKind.RESUME, inputs)

    @workflow.signal(name="promote")
    async def promote(self, *inputs: Any) -> None:
        await self._commands.on_signal(CommandKind.PROMOTE, inputs)

    @workflow.signal(name="rollback")
    async def rollback(self, *inputs: Any) -> None:
        await self._commands.on_signal(CommandKind.ROLLBACK, inputs)

    @workflow.signal(name="abort")
    async def abort(self, *inputs: Any) -> None:
        await self._commands.on_signal(CommandKind.ABORT, inputs)

    @workflow.signal(name=messages.STARTED_BY.name)
    async def started_by(self, *inputs: Any) -> None:
        self._commands.audit("start", await self._commands.consent().started_by(inputs))

    @workflow.query(name=messages.EXPERIMENT_STATUS.name)
    def status(self) -> ExperimentStatus:
        return board.status_of(self._plan, self._progress, workflow.now())
