"""What Temporal itself knows of a rollout's run, read without any worker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import (
    PendingActivityState,
    PendingWorkflowTaskState,
    TaskQueueKind,
    TaskQueueType,
)
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeTaskQueueRequest,
    GetWorkflowExecutionHistoryRequest,
)
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus

from client.history import HistoryLine, history_tail, utc
from client.runs import QUERY_TIMEOUT, Ending, ended_how, workflow_id
from plans import (
    RolloutResult,
    RolloutState,
    ShiftRequest,
    TrafficSplit,
    Verdict,
    format_duration,
)
from plans.runtime.inputs import RolloutInput
from plans.runtime.traffic import TrafficReading
from plans.runtime.visibility import ROLLOUT_ATTRIBUTES

ROLLOUT_ATTRIBUTE_NAMES = frozenset(key.name for key in ROLLOUT_ATTRIBUTES)

POLL_FRESH = timedelta(seconds=75)
"""A live worker polls again within a long poll (about a minute); older last polls are gone."""


class Poller(BaseModel):
    """A worker process Temporal saw polling the task queue, and when it last did."""

    identity: str
    last_access: datetime | None = None


class PendingActivity(BaseModel):
    """An activity Temporal holds for the run that no worker has finished."""

    activity: str
    state: str
    attempt: int
    scheduled_at: datetime | None = None
    last_failure: str = ""


class TemporalRecords(BaseModel):
    """What Temporal itself knows of a rollout's latest run, read without any worker.

    Run state from describing the workflow, the search attributes the workflow published,
    the last gate check and the last events from its history, and the task queue's pollers.
    """

    source: Literal["records"] = "records"
    service: str
    workflow_id: str
    run_id: str
    execution_status: str = Field(description="running, completed, failed, canceled, ...")
    started_at: datetime
    closed_at: datetime | None = None
    history_length: int = 0
    task_queue: str
    worker: str = Field(description="why no worker answered, in a sentence")
    last_poll_at: datetime | None = None
    pollers: list[Poller] = Field(default_factory=list)
    state: str | None = Field(
        default=None,
        description="while the run runs, RolloutState as last published; once it has ended,"
        " how: its final state, else Temporal's (terminated, timed_out, canceled, ...)",
    )
    published_state: str | None = Field(default=None, description="RolloutState, as last published")
    stage: str | None = Field(default=None, description="RolloutStage, as last published")
    canary_weight: int | None = Field(
        default=None, description="RolloutWeight: the canary weight the run last set"
    )
    asked: ShiftRequest | None = Field(
        default=None, description="what the run last asked its router for (from its plan)"
    )
    traffic: TrafficReading | None = Field(
        default=None, description="what the router routes now, read by `rollout status`"
    )
    version: str | None = Field(default=None, description="RolloutVersion")
    search_attributes: dict[str, str | int] = Field(default_factory=dict)
    summary: str = Field(default="", description="the run's static summary")
    ended: str = Field(default="", description="how a closed run ended, in words")
    final_state: RolloutState | None = Field(
        default=None, description="the rollout's final state when the run's end says it"
    )
    workflow_task_waiting_since: datetime | None = Field(
        default=None, description="a workflow task has waited for a worker since then"
    )
    pending_activities: list[PendingActivity] = Field(default_factory=list)
    last_check_at: datetime | None = None
    last_verdicts: list[Verdict] = Field(
        default_factory=list, description="the last gate check's verdicts found in the history"
    )
    events: list[HistoryLine] = Field(default_factory=list, description="oldest first")
    as_of: datetime

    @property
    def closed(self) -> bool:
        return self.closed_at is not None


def worker_polls(pollers: list[Poller], now: datetime) -> bool:
    """Whether some worker polled the task queue recently enough to be alive."""
    return any(p.last_access is not None and now - p.last_access <= POLL_FRESH for p in pollers)


async def task_queue_pollers(client: Client, task_queue: str) -> list[Poller]:
    """The workflow pollers Temporal remembers on the task queue (for a few minutes)."""
    answer = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        ),
        timeout=QUERY_TIMEOUT,
    )
    return [
        Poller(
            identity=poller.identity,
            last_access=utc(poller.last_access_time)
            if poller.HasField("last_access_time")
            else None,
        )
        for poller in answer.pollers
    ]


async def records(
    client: Client,
    service: str,
    description: WorkflowExecutionDescription,
    pollers: list[Poller],
    worker: str,
) -> TemporalRecords:
    """Temporal's records of the run: describe, search attributes, pending work, history tail."""
    attributes: dict[str, str | int] = {}
    for pair in description.typed_search_attributes:
        if pair.key.name in ROLLOUT_ATTRIBUTE_NAMES and isinstance(pair.value, str | int):
            attributes[pair.key.name] = pair.value
    raw = description.raw_description
    pending_task = raw.pending_workflow_task if raw.HasField("pending_workflow_task") else None
    waiting = (
        utc(pending_task.scheduled_time)
        if pending_task is not None
        and pending_task.state == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED
        else None
    )
    status_name = description.status.name.lower() if description.status else "unknown"
    ending = Ending(None, "")
    if description.status not in (None, WorkflowExecutionStatus.RUNNING):
        handle = client.get_workflow_handle(workflow_id(service), result_type=RolloutResult)
        ending = await ended_how(handle, description.status)
    (lines, check_at, verdicts), start = await asyncio.gather(
        history_tail(client, description.id, description.run_id),
        run_input(client, description.id, description.run_id),
    )
    last = last_poll(pollers)
    weight = attributes.get("RolloutWeight")
    published = _text(attributes.get("RolloutState"))
    if description.status in (None, WorkflowExecutionStatus.RUNNING):
        state = published
    else:
        # The published state stopped where the run was: a terminated run is not "baking".
        state = ending.state.value if ending.state is not None else status_name
    return TemporalRecords(
        service=service,
        workflow_id=description.id,
        run_id=description.run_id,
        execution_status=status_name,
        started_at=description.start_time,
        closed_at=description.close_time,
        history_length=description.history_length,
        task_queue=description.task_queue,
        worker=worker,
        last_poll_at=last.last_access if last is not None else None,
        pollers=pollers,
        state=state,
        published_state=published,
        stage=_text(attributes.get("RolloutStage")),
        canary_weight=weight if isinstance(weight, int) else None,
        asked=asked_of(start, weight if isinstance(weight, int) else None),
        version=_text(attributes.get("RolloutVersion")),
        search_attributes=attributes,
        summary=await description.static_summary() or "",
        ended=ending.text,
        final_state=ending.state,
        workflow_task_waiting_since=waiting,
        pending_activities=[
            PendingActivity(
                activity=activity.activity_type.name,
                state=PendingActivityState.Name(activity.state)
                .removeprefix("PENDING_ACTIVITY_STATE_")
                .lower(),
                attempt=activity.attempt,
                scheduled_at=utc(activity.scheduled_time)
                if activity.HasField("scheduled_time")
                else None,
                last_failure=activity.last_failure.message
                if activity.HasField("last_failure")
                else "",
            )
            for activity in raw.pending_activities
        ],
        last_check_at=check_at,
        last_verdicts=verdicts,
        events=lines,
        as_of=datetime.now(UTC),
    )


async def run_input(client: Client, workflow: str, run_id: str) -> RolloutInput | None:
    """The input the run started with (its first event), or None when it cannot be read."""
    answer = await client.workflow_service.get_workflow_execution_history(
        GetWorkflowExecutionHistoryRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(workflow_id=workflow, run_id=run_id),
            maximum_page_size=1,
        ),
        timeout=QUERY_TIMEOUT,
    )
    events = answer.history.events
    if not events or not events[0].HasField("workflow_execution_started_event_attributes"):
        return None
    payloads = events[0].workflow_execution_started_event_attributes.input.payloads
    if not payloads:
        return None
    try:
        [value] = await client.data_converter.decode([payloads[0]], [RolloutInput])
    except (ValueError, TypeError):
        return None  # an input this CLI cannot read: the records do without it
    return value if isinstance(value, RolloutInput) else None


def asked_of(start: RolloutInput | None, weight: int | None) -> ShiftRequest | None:
    """What the run last asked for: its plan's router at the weight it last published (or
    carried into this run when it publishes none)."""
    if start is None:
        return None
    plan, progress = start.plan, start.progress
    match = None
    if weight is None and progress is not None:
        weight, match = progress.canary_weight, progress.canary_match
    elif progress is not None and progress.canary_weight == weight:
        match = progress.canary_match
    if weight is None:
        return None
    split = TrafficSplit.canary_percent(weight, match)
    return ShiftRequest(router=plan.router, stable=plan.stable, canary=plan.canary, split=split)


def last_poll(pollers: list[Poller]) -> Poller | None:
    seen = [p for p in pollers if p.last_access is not None]
    return max(seen, key=lambda p: p.last_access or datetime.min.replace(tzinfo=UTC), default=None)


def last_poll_text(poller: Poller, now: datetime) -> str:
    moment = poller.last_access or now
    ago = format_duration(max((now - moment).total_seconds(), 0.0))
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC ({ago} ago, by {poller.identity})"


def _text(value: str | int | None) -> str | None:
    return None if value is None else str(value)
