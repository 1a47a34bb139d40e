"""Rollouts started later by Temporal Schedules (`rollout schedule`): create, list, delete.

Each schedule starts a ``ScheduledStart`` workflow at its time, which starts the rollout.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)

from plans.runtime.inputs import ScheduledRollout
from plans.runtime.messages import SCHEDULED_START

SCHEDULE_PREFIX = "rollout-schedule-"


async def create(
    client: Client, scheduled: ScheduledRollout, spec: ScheduleSpec, once: bool
) -> str:
    plan = scheduled.plan
    digest = hashlib.sha256(repr(spec).encode()).hexdigest()[:8]
    schedule_id = scheduled.schedule_id or f"{SCHEDULE_PREFIX}{plan.service}-{digest}"
    scheduled = scheduled.model_copy(update={"schedule_id": schedule_id})
    action = ScheduleActionStartWorkflow(
        SCHEDULED_START.name,
        scheduled,
        id=f"{schedule_id}-start",
        task_queue=scheduled.task_queue,
        static_summary=f"start the rollout of {plan.service} {plan.version}",
    )
    state = ScheduleState(
        note=f"rollout of {plan.service} {plan.version}",
        limited_actions=once,
        remaining_actions=1 if once else 0,
    )
    policy = SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP)
    await client.create_schedule(
        schedule_id, Schedule(action=action, spec=spec, policy=policy, state=state)
    )
    return schedule_id


async def listed(client: Client) -> list[tuple[str, datetime | None]]:
    """Each rollout schedule's id and its next start (None when it starts no more)."""
    found: list[tuple[str, datetime | None]] = []
    async for entry in await client.list_schedules():
        if not entry.id.startswith(SCHEDULE_PREFIX):
            continue
        info = entry.info
        found.append(
            (entry.id, info.next_action_times[0] if info and info.next_action_times else None)
        )
    return found


async def delete(client: Client, schedule_id: str) -> None:
    await client.get_schedule_handle(schedule_id).delete()


async def first_start(client: Client, schedule_id: str) -> datetime | None:
    """When the schedule starts its rollout next."""
    starts = (await client.get_schedule_handle(schedule_id).describe()).info.next_action_times
    return starts[0] if starts else None
