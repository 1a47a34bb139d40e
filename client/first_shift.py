"""When a rollout first shifted traffic, read from its Temporal history (for the alert receiver).

An alert acts when it started after the rollout first shifted traffic, in whatever stage
that was. The status query says when the current stage began, not the first one, and the
audit trail it carries is trimmed on long rollouts, so the history of the rollout's first
run is the record: the first ``shift_traffic`` activity that completed. That moment never
changes, so the receiver reads it once per rollout.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from plans.runtime.messages import SHIFT_TRAFFIC

# A rollout continues as new every few thousand events; its first shift comes within the
# first run unless that run waited long for a window. Past this many runs, it is not looked for.
MAX_RUNS = 20


async def first_shift(
    client: Client, workflow_id: str, first_run_id: str, *, rpc_timeout: timedelta
) -> datetime | None:
    """When the rollout's first traffic shift completed, from run ``first_run_id`` on.

    None when no run up to the current one holds a completed shift. Raises what the client
    raises (RPCError) when a history cannot be read.
    """
    run_id = first_run_id
    for _ in range(MAX_RUNS):
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
        shifts: set[int] = set()
        next_run = ""
        async for event in handle.fetch_history_events(rpc_timeout=rpc_timeout):
            kind = event.event_type
            if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                scheduled = event.activity_task_scheduled_event_attributes
                if scheduled.activity_type.name == SHIFT_TRAFFIC:
                    shifts.add(event.event_id)
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                completed = event.activity_task_completed_event_attributes
                if completed.scheduled_event_id in shifts:
                    return event.event_time.ToDatetime(tzinfo=UTC)
            elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                continued = event.workflow_execution_continued_as_new_event_attributes
                next_run = continued.new_execution_run_id
        if not next_run:
            return None
        run_id = next_run
    return None
