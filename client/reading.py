"""Reading a rollout's status: from its workflow's query, else from Temporal's records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from client import calls
from client.records import (
    TemporalRecords,
    last_poll,
    last_poll_text,
    records,
    task_queue_pollers,
    worker_polls,
)
from client.runs import ENDED_QUERY_TIMEOUT, QUERY_TIMEOUT, no_such_rollout, workflow_id
from plans import RolloutError, RolloutStatus, format_duration
from plans.runtime.messages import ROLLOUT_STATUS


async def status(
    client: Client, service: str, *, rpc_timeout: timedelta = timedelta(seconds=10)
) -> RolloutStatus:
    """The rollout's status from its workflow's query (a worker answers it, on finished runs too).

    The bake clock is read at the moment of asking, not at the workflow's last task.
    """
    handle = client.get_workflow_handle(workflow_id(service))
    try:
        answer = await calls.ask(handle, ROLLOUT_STATUS, rpc_timeout=rpc_timeout)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise no_such_rollout(service) from None
        raise RolloutError(f"cannot read the status of {service!r}: {error.message}") from None
    except WorkflowQueryFailedError as error:
        raise RolloutError(f"cannot read the status of {service!r}: {error}") from None
    return answer.at(datetime.now(UTC))


async def read_status(client: Client, service: str) -> RolloutStatus | TemporalRecords:
    """The status from the workflow's query when a worker answers, else Temporal's records."""
    answer, _ = await read_run(client, service)
    return answer


async def read_run(
    client: Client, service: str
) -> tuple[RolloutStatus | TemporalRecords, WorkflowExecutionDescription]:
    """The status as ``read_status`` gives it, and the run's description beside it."""
    handle = client.get_workflow_handle(workflow_id(service))
    description = await _describe(handle, service)
    return await _answer(client, service, handle, description), description


async def _answer(
    client: Client,
    service: str,
    handle: WorkflowHandle[Any, Any],
    description: WorkflowExecutionDescription,
) -> RolloutStatus | TemporalRecords:
    """The workflow's own answer, or Temporal's records when no worker gives one.

    The pollers come first: with no worker polling the task queue the query is not sent at
    all (Temporal would hold it until its timeout); with one, the query gets QUERY_TIMEOUT,
    or ENDED_QUERY_TIMEOUT for a run that has ended (the worker replays it first).
    """
    queue = description.task_queue
    pollers = await task_queue_pollers(client, queue)
    now = datetime.now(UTC)
    last = last_poll(pollers)
    if not worker_polls(pollers, now):
        if last is None:
            why = f"no worker has polled task queue {queue!r}"
        else:
            why = f"no worker has polled task queue {queue!r} since {last_poll_text(last, now)}"
        return await records(client, service, description, pollers, why)
    running = description.status == WorkflowExecutionStatus.RUNNING
    bound = QUERY_TIMEOUT if running else ENDED_QUERY_TIMEOUT
    silent = f"no worker answered on task queue {queue!r} within {format_duration(bound)}"
    try:
        # The client retries some answers within the call, so the bound is kept here too.
        answer: RolloutStatus = await asyncio.wait_for(
            calls.ask(handle, ROLLOUT_STATUS, rpc_timeout=bound), bound.total_seconds()
        )
    except (RPCError, TimeoutError) as error:
        if isinstance(error, RPCError) and error.status == RPCStatusCode.NOT_FOUND:
            raise no_such_rollout(service) from None
        if isinstance(error, RPCError) and error.status == RPCStatusCode.FAILED_PRECONDITION:
            why = f"no worker answers on task queue {queue!r}: Temporal says {error.message}"
        else:
            why = silent
        if last is not None:
            why += f"; its last poll was at {last_poll_text(last, now)}"
    except WorkflowQueryFailedError as error:
        why = f"the worker on task queue {queue!r} could not answer the status query: {error}"
    else:
        if answer.state.final or running:
            return answer.at(datetime.now(UTC))
        # Terminated or timed out: the workflow's own state stopped where it was.
        why = f"the run ended outside the workflow while {answer.state.value}"
    return await records(client, service, description, pollers, why)


async def _describe(handle: WorkflowHandle[Any, Any], service: str) -> WorkflowExecutionDescription:
    try:
        return await handle.describe(rpc_timeout=QUERY_TIMEOUT)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise no_such_rollout(service) from None
        raise RolloutError(f"cannot read the status of {service!r}: {error.message}") from None


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
