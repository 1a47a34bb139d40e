"""A release's commands, sent on to its targets' rollouts with what the operator signed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.fanout import signal_targets
    from plans import OperatorCommand
    from plans.runtime.release import TargetSignals
    from workflows.failures import root_message

FAN_OUT_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=5)
)
FAN_OUT_DEADLINE = timedelta(minutes=2)


def body(release_id: str, op: OperatorCommand) -> dict[str, Any]:
    """The signal's body: who and why, and the signature a target checks again."""
    via = f"via {release_id}"
    sent: dict[str, Any] = {"by": op.by, "reason": f"{op.reason} ({via})" if op.reason else via}
    if op.signed is not None:
        sent["signed"] = op.signed.model_dump()
    return sent


async def forward(release_id: str, workflow_ids: list[str], op: OperatorCommand) -> list[str]:
    """Send the command to these rollouts; per rollout, in order, '' when sent or why not.

    All at once: a rollback reaches the last target as soon as the first.
    """
    if not workflow_ids:
        return []
    request = TargetSignals(
        workflow_ids=workflow_ids, signal=op.kind.value, body=body(release_id, op)
    )
    try:
        answers: list[str] = await workflow.execute_activity(
            signal_targets,
            request,
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=FAN_OUT_DEADLINE,
            retry_policy=FAN_OUT_RETRY,
            summary=f"{op.kind.value} to {len(workflow_ids)} target(s)",
        )
    except ActivityError as error:
        return [f"could not be sent: {root_message(error)}"] * len(workflow_ids)
    return answers
