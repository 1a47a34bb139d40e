"""A run's history in words: its last events and its last gate check, read without a worker."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import temporalio.converter
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel, Field
from temporalio.api.common.v1 import Payload, WorkflowExecution
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client
from temporalio.converter import DataConverter

from client.runs import QUERY_TIMEOUT
from plans import Verdict, format_duration
from plans.runtime.checks import Observation
from plans.runtime.messages import CHECKS, LOOK

HISTORY_TAIL = 60
EVENTS_SHOWN = 8
QUIET_EVENTS = frozenset(
    {
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    }
)


class HistoryLine(BaseModel):
    """One event of the run's history, in words."""

    event_id: int
    at: datetime
    kind: str = Field(description="the event type in words, e.g. 'timer started'")
    text: str = ""


async def history_tail(
    client: Client, workflow: str, run_id: str
) -> tuple[list[HistoryLine], datetime | None, list[Verdict]]:
    """The run's last events in words (oldest first), and its last gate check if among them."""
    answer = await client.workflow_service.get_workflow_execution_history_reverse(
        GetWorkflowExecutionHistoryReverseRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(workflow_id=workflow, run_id=run_id),
            maximum_page_size=HISTORY_TAIL,
        ),
        timeout=QUERY_TIMEOUT,
    )
    events = list(reversed(answer.history.events))
    converter = client.data_converter
    summaries: dict[int, str] = {}
    timers: dict[str, str] = {}
    for event in events:
        if event.HasField("user_metadata") and event.user_metadata.HasField("summary"):
            summaries[event.event_id] = await _decode_text(converter, event.user_metadata.summary)
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            timers[event.timer_started_event_attributes.timer_id] = summaries.get(
                event.event_id, ""
            )
    lines = [
        HistoryLine(
            event_id=event.event_id,
            at=utc(event.event_time),
            kind=EventType.Name(event.event_type)
            .removeprefix("EVENT_TYPE_")
            .lower()
            .replace("_", " "),
            text=event_text(event, summaries, timers),
        )
        for event in events
        if event.event_type not in QUIET_EVENTS
    ]
    check_at, verdicts = None, []
    for event in reversed(events):
        found = await _gate_check(converter, event)
        if found is not None:
            check_at, verdicts = utc(event.event_time), found
            break
    return lines[-EVENTS_SHOWN:], check_at, verdicts


def event_text(event: HistoryEvent, summaries: dict[int, str], timers: dict[str, str]) -> str:
    """What an event says beyond its type: a summary, a name, a failure."""

    kind = event.event_type
    own = summaries.get(event.event_id, "")
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        name = event.activity_task_scheduled_event_attributes.activity_type.name
        return f"{name}: {own}" if own else name
    which = event.WhichOneof("attributes") or ""
    if which.startswith("activity_task_"):
        # Started, completed, failed, timed out: the summary is on the scheduled event.
        details = getattr(event, which)
        text = summaries.get(getattr(details, "scheduled_event_id", 0), "")
        failure = getattr(details, "failure", None)
        if failure is not None and failure.message:
            text = f"{text}: {failure.message}" if text else str(failure.message)
        attempt = getattr(details, "attempt", 0)
        if attempt > 1:
            text = f"{text} (attempt {attempt})".strip()
        return text
    if kind == EventType.EVENT_TYPE_TIMER_STARTED:
        fires = event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        return f"{own}, fires in {format_duration(fires)}" if own else format_duration(fires)
    if kind in (EventType.EVENT_TYPE_TIMER_FIRED, EventType.EVENT_TYPE_TIMER_CANCELED):
        attributes = (
            event.timer_fired_event_attributes
            if kind == EventType.EVENT_TYPE_TIMER_FIRED
            else event.timer_canceled_event_attributes
        )
        return timers.get(attributes.timer_id, "")
    if kind == EventType.EVENT_TYPE_MARKER_RECORDED:
        return own or event.marker_recorded_event_attributes.marker_name
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
        signal = event.workflow_execution_signaled_event_attributes
        return (
            f"{signal.signal_name} from {signal.identity}"
            if signal.identity
            else signal.signal_name
        )
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
        return event.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
    if kind == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
        upserted = event.upsert_workflow_search_attributes_event_attributes.search_attributes
        decoded = temporalio.converter.decode_typed_search_attributes(upserted)
        return ", ".join(f"{pair.key.name}={pair.value}" for pair in decoded)
    if which in (
        "workflow_task_failed_event_attributes",
        "workflow_execution_failed_event_attributes",
    ):
        return str(getattr(event, which).failure.message)
    if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
        timeout = event.workflow_task_timed_out_event_attributes.timeout_type
        return TimeoutType.Name(timeout).removeprefix("TIMEOUT_TYPE_").lower().replace("_", " ")
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
        return event.workflow_execution_terminated_event_attributes.reason
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
        return event.workflow_execution_cancel_requested_event_attributes.cause
    return own


async def _gate_check(converter: DataConverter, event: HistoryEvent) -> list[Verdict] | None:
    """The verdicts of a gate check recorded as a local activity's marker, if this is one."""
    if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
        return None
    details = event.marker_recorded_event_attributes.details
    try:
        data = json.loads(details["data"].payloads[0].data)
        kind = data.get("activity_type")
        if kind not in CHECKS or "result" not in details:
            return None
        # A look (one activity a check) carries the verdicts in its Observation; older runs
        # recorded the gate check alone.
        shape = Observation if kind == LOOK else list[Verdict]
        decoded = await converter.decode(list(details["result"].payloads), [shape])
    except (KeyError, IndexError, ValueError, TypeError, AttributeError):
        # Not a marker this project wrote, or one of an SDK that lays them out otherwise.
        return None
    found = decoded[0] if decoded else None
    if isinstance(found, Observation):
        # A look at a stage without gates judged nothing: an older check may have.
        return found.verdicts or None
    return found if isinstance(found, list) else None


async def _decode_text(converter: DataConverter, payload: Payload) -> str:
    try:
        decoded = await converter.decode([payload], [str])
    except (ValueError, TypeError):
        return ""
    return str(decoded[0]) if decoded else ""


def utc(stamp: Timestamp) -> datetime:
    """A protobuf timestamp as an aware datetime in UTC."""
    return stamp.ToDatetime(tzinfo=UTC)


async def run_events(
    client: Client, workflow_id: str, run_id: str, *, rpc_timeout: timedelta | None = None
) -> list[HistoryEvent]:
    """Every event of one run's history (``run_id`` '' for the latest run)."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id or None)
    return [e async for e in handle.fetch_history_events(rpc_timeout=rpc_timeout)]
