"""Sending one operator command to many targets' rollouts at once, from the worker.

A workflow's signals to other workflows go out one after another (each is a task the
server works through in turn); at a dozen targets that took seconds, and a rollback is
exactly what must not wait. One activity signals every target through the worker's
client in parallel instead. An attempt that is retried skips the targets an earlier
attempt already reached (they are kept in its heartbeat), so none gets a command twice.
"""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.service import RPCError, RPCStatusCode

from client import calls
from plans.runtime.messages import Signal
from plans.runtime.release import TargetSignals

# A target that has ended (or never started) cannot be told anything: no retry helps.
ENDED = (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION)


@activity.defn
async def signal_targets(request: TargetSignals) -> list[str]:
    """Signal each rollout; per rollout, in order, '' when sent or why it could not be."""
    client = activity.client()
    details = activity.info().heartbeat_details
    reached: set[str] = set(details[0]) if details else set()

    async def one(workflow_id: str) -> str:
        if workflow_id in reached:
            return ""
        try:
            await calls.tell(
                client.get_workflow_handle(workflow_id), Signal(request.signal), request.body
            )
        except RPCError as error:
            if error.status in ENDED:
                return f"could not be sent: {error.message}"
            raise
        reached.add(workflow_id)
        activity.heartbeat(sorted(reached))
        return ""

    answers = await asyncio.gather(*(one(w) for w in request.workflow_ids), return_exceptions=True)
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer  # retried; the targets reached so far are in the heartbeat
    return [str(a) for a in answers]
