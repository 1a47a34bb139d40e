"""ScheduledStart: what a Temporal Schedule runs to start a rollout at its time.

A Schedule names its workflows by its own id and the start time, so it cannot start the
rollout itself under the rollout's id (``rollout-SERVICE``, which every command uses).
This small workflow starts it, through an activity, and ends saying what happened: the
rollout's run, or why the start was skipped (the service was still rolling out). The
skip is recorded in its result and details, in the UI, not queued.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.scheduling import ScheduledStarts
    from plans.runtime import messages
    from plans.runtime.inputs import ScheduledRollout
    from workflows.runs import record_history_version


@workflow.defn(name=messages.SCHEDULED_START.name)
class ScheduledStart:
    @workflow.run
    async def run(self, scheduled: ScheduledRollout) -> str:
        record_history_version()
        outcome = await workflow.execute_activity_method(
            ScheduledStarts.start_scheduled_rollout,
            scheduled,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=5, maximum_interval=timedelta(seconds=10)),
            summary=f"start the rollout of {scheduled.plan.service}",
        )
        workflow.set_current_details(outcome)
        return outcome
