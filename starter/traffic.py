"""What users get now: the router read from the CLI, and restores done on a run's behalf.

A run's own status says what it asked its router for; once it has ended outside its own
code (a terminate) or a release put its target back through another workflow, that is
no longer what users get. `rollout status` reads the router itself, once and bounded, and
looks up who else put stable back: the target's lease for a terminated run, the release's
``-restore`` rollout for a promoted target.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
)

from activities.routers import router_for
from client import reading
from client.records import TemporalRecords
from client.restores import lease_restore, release_restore
from plans import (
    HAProxyRouter,
    RolloutState,
    RolloutStatus,
    ShiftRequest,
    TrafficSplit,
)
from plans.runtime.traffic import ObservedStatus, TrafficReading

ROUTER_READ_BOUND = timedelta(seconds=2)
"""How long `rollout status` waits for the router: a status stays quick when one is away."""

# Statuses of a run that ended without running its own end: its lease may have restored.
LEFT_TRAFFIC = (WorkflowExecutionStatus.TERMINATED, WorkflowExecutionStatus.TIMED_OUT)


async def read_status(client: Client, service: str) -> RolloutStatus | TemporalRecords:
    """The status `rollout status` shows: the run's answer and what its router routes now.

    The router is read once and bounded, with the restores done on the run's behalf.
    """
    answer, run = await reading.read_run(client, service)
    if answer.asked is None:
        return answer  # a worker older than `asked`, or a run that never asked for a split
    if isinstance(answer, TemporalRecords):
        promoted = answer.final_state == RolloutState.PROMOTED
        found = await read_traffic(client, answer.asked, run, promoted)
        return answer.model_copy(update={"traffic": found})
    promoted = answer.state == RolloutState.PROMOTED
    found = await read_traffic(client, answer.asked, run, promoted)
    return ObservedStatus(**dict(answer), traffic=found)


async def read_traffic(
    client: Client, asked: ShiftRequest, run: WorkflowExecutionDescription, promoted: bool
) -> TrafficReading:
    """The router's split now and the restores done for the run ``run`` (when it has ended).

    ``promoted``: the run ended with the canary as the new stable, so a canary with all the
    traffic is what it meant to leave.
    """
    lookups: list[Any] = [read_router(asked)]
    if run.close_time is not None and run.status in LEFT_TRAFFIC:
        lookups.append(lease_restore(client, asked, run))
    if run.close_time is not None and run.status == WorkflowExecutionStatus.COMPLETED:
        lookups.append(release_restore(client, run))
    split, *found = await asyncio.gather(*lookups)
    reading = TrafficReading(
        router=asked.router.describe(),
        routes=split if isinstance(split, TrafficSplit) else None,
        unreadable=split if isinstance(split, str) else "",
        restores=[r for r in found if r is not None],
    )
    if run.close_time is not None:
        reading.todo = todo(asked, reading, promoted)
    return reading


def todo(asked: ShiftRequest, reading: TrafficReading, promoted: bool) -> str:
    """What a person must do for a run that has ended, or '' when nothing is left to do.

    Something is left when the router still sends traffic to the canary, nobody is putting
    stable back, and the canary is not there as the promoted version (or a restore was
    meant to take it away).
    """
    routes = reading.routes
    if routes is None or not (routes.percent > 0 or routes.match is not None):
        return ""
    if any(r.running for r in reading.restores):
        return ""
    if promoted and not reading.restores:
        return ""
    request = asked
    text = (
        f"the run has ended and nothing is putting stable back: {reading.router} still sends"
        f" {share(routes)} to {request.canary!r}. Put stable back by hand: {request.canary!r}"
        f" weight 0, {request.stable!r} weight 100"
    )
    if isinstance(request.router, HAProxyRouter):
        backend = request.router.backend
        text += (
            f" (on HAProxy's runtime API {request.router.runtime_api}: `set weight"
            f" {backend}/{request.canary} 0` and `set weight {backend}/{request.stable} 100`)"
        )
    return text


def share(split: TrafficSplit) -> str:
    """``canary 50%``, with the requests a match sends, for one line of text."""
    matched = f" and every request with {split.match.describe()}" if split.match else ""
    return f"canary {split.percent:g}%{matched}"


# -- the router, from here ---------------------------------------------------------------------


async def read_router(asked: ShiftRequest) -> TrafficSplit | str:
    """The split the router has now, or why it cannot be read from this machine."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[TrafficSplit] = loop.create_future()

    def read() -> None:
        try:
            split = router_for(asked.router).get_split(asked.stable, asked.canary)
        except Exception as error:  # any failure is the answer: it is shown, not raised
            _settle(loop, answer, error)
        else:
            _settle(loop, answer, split)

    # A daemon thread, not the loop's executor: a router that never answers must not hold
    # the CLI's exit (asyncio.run waits for the executor's threads).
    threading.Thread(target=read, name="read-router", daemon=True).start()
    where = asked.router.describe()
    bound = ROUTER_READ_BOUND.total_seconds()
    try:
        return await asyncio.wait_for(answer, bound)
    except TimeoutError:
        return f"cannot read {where} from here: no answer within {bound:g}s"
    except Exception as error:
        return f"cannot read {where} from here: {error}"


def _settle(
    loop: asyncio.AbstractEventLoop,
    answer: asyncio.Future[TrafficSplit],
    outcome: TrafficSplit | Exception,
) -> None:
    """Hand the thread's outcome to the loop, unless the wait is over or the loop is gone."""

    def settle() -> None:
        if answer.done():  # the wait gave up already
            return
        if isinstance(outcome, Exception):
            answer.set_exception(outcome)
        else:
            answer.set_result(outcome)

    with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
        loop.call_soon_threadsafe(settle)
