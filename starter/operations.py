"""What the operator CLI does against Temporal: start, status, commands. No printing here."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

import temporalio.converter
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel, Field
from temporalio.api.common.v1 import Payload, WorkflowExecution
from temporalio.api.enums.v1 import (
    EventType,
    IndexedValueType,
    PendingActivityState,
    PendingWorkflowTaskState,
    TaskQueueKind,
    TaskQueueType,
    TimeoutType,
)
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeTaskQueueRequest,
    GetWorkflowExecutionHistoryReverseRequest,
)
from temporalio.client import (
    Client,
    WorkflowContinuedAsNewError,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities import owners
from plans import (
    CommandRecord,
    OperatorCommand,
    Plan,
    RolloutError,
    RolloutResult,
    RolloutState,
    RolloutStatus,
    Verdict,
    format_duration,
)
from plans.inputs import CHECKS_PER_RUN, RolloutInput
from plans.state import RolloutProgress
from plans.visibility import ROLLOUT_ATTRIBUTES, rollout_workflow_id
from workflows.rollout import RolloutWorkflow

SEARCH_ATTRIBUTES: dict[str, IndexedValueType.ValueType] = {
    key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in ROLLOUT_ATTRIBUTES
}


class AlreadyRolling(RolloutError):
    """A rollout of this service is still running."""


class CommandRefused(RolloutError):
    """The workflow refused a command; the message says why."""


class NoSuchRollout(RolloutError):
    """No rollout of that service exists."""


def workflow_id(service: str) -> str:
    return rollout_workflow_id(service)


async def search_attributes_registered(client: Client) -> bool:
    """True when the server knows every Rollout* search attribute."""
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

    try:
        answer = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
    except RPCError:
        return False
    return all(name in answer.custom_attributes for name in SEARCH_ATTRIBUTES)


async def register_search_attributes(client: Client) -> list[str]:
    """Add the Rollout* search attributes the server lacks; return the ones added."""
    from temporalio.api.operatorservice.v1 import (
        AddSearchAttributesRequest,
        ListSearchAttributesRequest,
    )

    answer = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = {k: v for k, v in SEARCH_ATTRIBUTES.items() if k not in answer.custom_attributes}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    return sorted(missing)


def summary(plan: Plan) -> tuple[str, str]:
    """Static summary and details shown in the Temporal UI for the run."""
    stages = " -> ".join(f"{s.weight}%" for s in plan.stages)
    short = f"{plan.service}: {plan.stable} -> {plan.canary} ({plan.version}), {stages}"
    lines = [
        f"**Service** {plan.service}, version {plan.version}",
        f"**Traffic** {plan.router.describe()}: stable `{plan.stable}`, canary `{plan.canary}`",
        "**Stages**",
    ]
    for stage in plan.stages:
        gates = ", ".join(g.name for g in plan.gates_for(stage)) or "no gates"
        approval = ", then approval" if stage.approval else ""
        lines.append(
            f"- {stage.name}: {stage.weight}% for {format_duration(stage.bake)}, checks every"
            f" {format_duration(stage.check_every)} ({gates}){approval}"
        )
    return short, "\n".join(lines)


async def start_rollout(
    client: Client,
    plan: Plan,
    task_queue: str,
    *,
    progress: RolloutProgress | None = None,
    checks_per_run: int = CHECKS_PER_RUN,
) -> WorkflowHandle[RolloutWorkflow, RolloutResult]:
    """Start the rollout; refuse it while another rollout of the service is running.

    ``progress`` starts it from a given state (tests do); ``checks_per_run`` sets how many
    checks a run makes before it continues as new.
    """
    start = RolloutInput(
        plan=plan,
        progress=progress,
        checks_per_run=checks_per_run,
        visibility=await search_attributes_registered(client),
    )
    short, details = summary(plan)
    try:
        return await client.start_workflow(
            RolloutWorkflow.run,
            start,
            id=plan.workflow_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            static_summary=short,
            static_details=details,
        )
    except WorkflowAlreadyStartedError:
        running = client.get_workflow_handle(plan.workflow_id)
        described = await running.describe()
        raise AlreadyRolling(
            f"a rollout of {plan.service} is already running: workflow {plan.workflow_id}"
            f" (run {described.run_id}, started {described.start_time:%Y-%m-%d %H:%M:%S} UTC)."
            f" Wait for it to end, or stop it with `rollout rollback {plan.service}`."
        ) from None


class TargetOwned(RolloutError):
    """Another running rollout moves the plan's traffic target."""


async def await_target(
    client: Client, plan: Plan, handle: WorkflowHandle[Any, Any], timeout: float
) -> bool:
    """Wait until the new run owns its traffic target; False if no worker decided in time.

    Raises TargetOwned, naming the owner, when the run was refused because another
    rollout moves the same target.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        held = await owners.holder(client, plan.target_lease_id)
        if held is not None and held[0].owner == plan.workflow_id:
            return True
        described = await handle.describe()
        if described.status != WorkflowExecutionStatus.RUNNING:
            try:
                await handle.result()
            except WorkflowFailureError as error:
                cause = error.cause
                if getattr(cause, "type", "") == "TargetOwned":
                    message = str(getattr(cause, "message", cause)).removeprefix("refused: ")
                    raise TargetOwned(f"{plan.service} not started: {message}") from None
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.2)


async def status(
    client: Client, service: str, *, rpc_timeout: timedelta = timedelta(seconds=10)
) -> RolloutStatus:
    """The rollout's status from its workflow's query (a worker answers it, on finished runs too).

    The bake clock is read at the moment of asking, not at the workflow's last task.
    """
    handle = client.get_workflow_handle(workflow_id(service))
    try:
        answer = await handle.query(RolloutWorkflow.status, rpc_timeout=rpc_timeout)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise _no_such_rollout(service) from None
        raise RolloutError(f"cannot read the status of {service!r}: {error.message}") from None
    except WorkflowQueryFailedError as error:
        raise RolloutError(f"cannot read the status of {service!r}: {error}") from None
    return answer.at(datetime.now(UTC))


# -- what Temporal knows without a worker -----------------------------------------------------

QUERY_TIMEOUT = timedelta(seconds=1.5)
"""How long `read_status` waits for a worker to answer; with Temporal's own calls the
answer stays within 2 s."""

POLL_FRESH = timedelta(seconds=75)
"""A live worker polls again within a long poll (about a minute); older last polls are gone."""

HISTORY_TAIL = 60
EVENTS_SHOWN = 8
QUIET_EVENTS = frozenset(
    {
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    }
)


class Poller(BaseModel):
    """A worker process Temporal saw polling the task queue, and when it last did."""

    identity: str
    last_access: datetime | None = None


class HistoryLine(BaseModel):
    """One event of the run's history, in words."""

    event_id: int
    at: datetime
    kind: str = Field(description="the event type in words, e.g. 'timer started'")
    text: str = ""


class PendingActivity(BaseModel):
    """An activity Temporal holds for the run that no worker has finished."""

    activity: str
    state: str
    attempt: int
    scheduled_at: datetime | None = None
    last_failure: str = ""


class Ending(NamedTuple):
    """How a closed run ended: the rollout's state when it says so, and a phrase for people."""

    state: RolloutState | None
    text: str


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
    state: str | None = Field(default=None, description="RolloutState, as last published")
    stage: str | None = Field(default=None, description="RolloutStage, as last published")
    canary_weight: int | None = Field(default=None, description="RolloutWeight")
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
            last_access=_time(poller.last_access_time)
            if poller.HasField("last_access_time")
            else None,
        )
        for poller in answer.pollers
    ]


async def read_status(client: Client, service: str) -> RolloutStatus | TemporalRecords:
    """The status from the workflow's query when a worker answers, else Temporal's records.

    The pollers come first: with no worker polling the task queue the query is not sent at
    all (Temporal would hold it until its timeout); with one, the query gets QUERY_TIMEOUT.
    """
    handle = client.get_workflow_handle(workflow_id(service))
    description = await _describe(handle, service)
    queue = description.task_queue
    pollers = await task_queue_pollers(client, queue)
    now = datetime.now(UTC)
    last = _last_poll(pollers)
    if not worker_polls(pollers, now):
        if last is None:
            why = f"no worker has polled task queue {queue!r}"
        else:
            why = f"no worker has polled task queue {queue!r} since {_last_poll_text(last, now)}"
        return await records(client, service, description, pollers, why)
    silent = f"no worker answered on task queue {queue!r} within {format_duration(QUERY_TIMEOUT)}"
    try:
        # The client retries some answers within the call, so the bound is kept here too.
        answer: RolloutStatus = await asyncio.wait_for(
            handle.query(RolloutWorkflow.status, rpc_timeout=QUERY_TIMEOUT),
            QUERY_TIMEOUT.total_seconds(),
        )
    except (RPCError, TimeoutError) as error:
        if isinstance(error, RPCError) and error.status == RPCStatusCode.NOT_FOUND:
            raise _no_such_rollout(service) from None
        if isinstance(error, RPCError) and error.status == RPCStatusCode.FAILED_PRECONDITION:
            why = f"no worker answers on task queue {queue!r}: Temporal says {error.message}"
        else:
            why = silent
        if last is not None:
            why += f"; its last poll was at {_last_poll_text(last, now)}"
    except WorkflowQueryFailedError as error:
        why = f"the worker on task queue {queue!r} could not answer the status query: {error}"
    else:
        if answer.state.final or description.status == WorkflowExecutionStatus.RUNNING:
            return answer.at(datetime.now(UTC))
        # Terminated or timed out: the workflow's own state stopped where it was.
        why = f"the run ended outside the workflow while {answer.state.value}"
    return await records(client, service, description, pollers, why)


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
        if pair.key.name in SEARCH_ATTRIBUTES and isinstance(pair.value, str | int):
            attributes[pair.key.name] = pair.value
    raw = description.raw_description
    pending_task = raw.pending_workflow_task if raw.HasField("pending_workflow_task") else None
    waiting = (
        _time(pending_task.scheduled_time)
        if pending_task is not None
        and pending_task.state == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED
        else None
    )
    status_name = description.status.name.lower() if description.status else "unknown"
    ending = Ending(None, "")
    if description.status not in (None, WorkflowExecutionStatus.RUNNING):
        handle = client.get_workflow_handle(workflow_id(service), result_type=RolloutResult)
        ending = await ended_how(handle, description.status)
    lines, check_at, verdicts = await history_tail(client, description.id, description.run_id)
    last = _last_poll(pollers)
    weight = attributes.get("RolloutWeight")
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
        state=_text(attributes.get("RolloutState")),
        stage=_text(attributes.get("RolloutStage")),
        canary_weight=weight if isinstance(weight, int) else None,
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
                scheduled_at=_time(activity.scheduled_time)
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
            at=_time(event.event_time),
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
            check_at, verdicts = _time(event.event_time), found
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
        if data.get("activity_type") != "check_gates" or "result" not in details:
            return None
        decoded = await converter.decode(list(details["result"].payloads), [list[Verdict]])
    except (KeyError, IndexError, ValueError, TypeError, AttributeError):
        # Not a marker this project wrote, or one of an SDK that lays them out otherwise.
        return None
    verdicts = decoded[0] if decoded else None
    return verdicts if isinstance(verdicts, list) else None


async def _decode_text(converter: DataConverter, payload: Payload) -> str:
    try:
        decoded = await converter.decode([payload], [str])
    except (ValueError, TypeError):
        return ""
    return str(decoded[0]) if decoded else ""


def _last_poll(pollers: list[Poller]) -> Poller | None:
    seen = [p for p in pollers if p.last_access is not None]
    return max(seen, key=lambda p: p.last_access or datetime.min.replace(tzinfo=UTC), default=None)


def _last_poll_text(poller: Poller, now: datetime) -> str:
    moment = poller.last_access or now
    ago = format_duration(max((now - moment).total_seconds(), 0.0))
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC ({ago} ago, by {poller.identity})"


def _time(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def _text(value: str | int | None) -> str | None:
    return None if value is None else str(value)


def _no_such_rollout(service: str) -> NoSuchRollout:
    return NoSuchRollout(
        f"no rollout of {service!r} found (workflow {workflow_id(service)});"
        " `rollout list` shows the running ones"
    )


async def _describe(handle: WorkflowHandle[Any, Any], service: str) -> WorkflowExecutionDescription:
    try:
        return await handle.describe(rpc_timeout=QUERY_TIMEOUT)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise _no_such_rollout(service) from None
        raise RolloutError(f"cannot read the status of {service!r}: {error.message}") from None


# -- commands and endings ---------------------------------------------------------------------


async def send_command(client: Client, service: str, command: OperatorCommand) -> CommandRecord:
    """Send a command as an update: it is taken now, or refused with the reason."""
    handle = client.get_workflow_handle(workflow_id(service), result_type=RolloutResult)
    try:
        description = await handle.describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise NoSuchRollout(f"no rollout of {service!r} found") from None
        raise
    if description.status != WorkflowExecutionStatus.RUNNING:
        ending = await ended_how(handle, description.status)
        raise CommandRefused(
            f"{command.kind.value}: rollout of {service} has ended ({ending.text})"
        )
    try:
        return await handle.execute_update(
            RolloutWorkflow.command, command, rpc_timeout=timedelta(seconds=30)
        )
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        raise CommandRefused(str(getattr(cause, "message", cause))) from None


async def ended_how(
    handle: WorkflowHandle[Any, RolloutResult], status: WorkflowExecutionStatus | None
) -> Ending:
    """How a closed run ended, from its result or failure in the history (no worker needed)."""
    if status == WorkflowExecutionStatus.CANCELED:
        return Ending(None, "cancelled")
    if status == WorkflowExecutionStatus.TERMINATED:
        text = "terminated, so no rollback ran"
        try:
            await handle.result(follow_runs=False)
        except WorkflowFailureError as error:
            reason = str(getattr(error.cause, "message", "") or "")
            if reason:
                text += f": {reason}"
        return Ending(None, text)
    if status == WorkflowExecutionStatus.TIMED_OUT:
        return Ending(None, "timed out, so no rollback ran")
    try:
        result = await handle.result(follow_runs=False)
    except WorkflowFailureError as error:
        cause = error.cause
        message = str(getattr(cause, "message", cause))
        if isinstance(cause, ApplicationError) and cause.type == "RolledBack":
            return Ending(RolloutState.ROLLED_BACK, message)
        return Ending(None, f"failed: {message}")
    except WorkflowContinuedAsNewError:
        return Ending(None, "continued as a new run")
    if not isinstance(result, RolloutResult):
        return Ending(None, status.name.lower() if status else "closed")
    text = result.state.value.replace("_", " ")
    return Ending(result.state, f"{text}: {result.reason}" if result.reason else text)


# -- following a rollout ----------------------------------------------------------------------


async def watch(
    client: Client, service: str, every: float = 1.0
) -> AsyncIterator[RolloutStatus | TemporalRecords]:
    """Yield the status every ``every`` seconds, or Temporal's records while no worker answers.

    A worker outage does not end the watch; the run's end does.
    """
    while True:
        answer = await read_status(client, service)
        yield answer
        if answer.closed if isinstance(answer, TemporalRecords) else answer.state.final:
            return
        await asyncio.sleep(every)


async def follow(client: Client, service: str, every: float = 1.0) -> AsyncIterator[RolloutStatus]:
    """Yield the status whenever it changes, until the rollout ends.

    While no worker answers, nothing is yielded; a run that ended meanwhile ends the follow.
    """
    last = None
    async for current in watch(client, service, every):
        if isinstance(current, TemporalRecords):
            if current.closed:
                raise RolloutError(
                    f"rollout of {service} has ended ({current.ended}); {current.worker}"
                )
            continue
        key = current.model_dump_json(exclude={"bake_elapsed_s", "bake_remaining_s", "as_of"})
        if key != last:
            last = key
            yield current
