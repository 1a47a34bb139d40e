"""Starting a scheduled rollout: the activity behind ``ScheduledStart``; it needs a client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.client import Client

from plans.runtime.inputs import ScheduledRollout


class ScheduledStarts:
    def __init__(self, client: Client) -> None:
        self.client = client

    def activities(self) -> list[Callable[..., Any]]:
        return [self.start_scheduled_rollout]

    @activity.defn(name="start_scheduled_rollout")
    async def start_scheduled_rollout(self, scheduled: ScheduledRollout) -> str:
        """Start the rollout as `rollout start` does; a service still rolling out is skipped."""
        from client.starting import AlreadyRolling, start_rollout

        plan = scheduled.plan
        try:
            handle = await start_rollout(self.client, plan, scheduled.task_queue)
        except AlreadyRolling as running:
            activity.logger.info("scheduled start of %s skipped", plan.service)
            return f"skipped: {running}"
        return f"started {handle.id} run {handle.result_run_id or handle.first_execution_run_id}"
