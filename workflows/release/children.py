"""A release's children: each target's rollout, and the rollouts that put promoted ones back.

The one writer of each ``TargetRun`` and of ``promoted_order``. A target's rollout runs as a
child with ParentClosePolicy.REQUEST_CANCEL, so a release that closes cancels it, and a
cancelled rollout puts its stable back; a restore runs with ABANDON, so it finishes even when
the release does not wait for it.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError, ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from plans import RolloutResult, RolloutState
    from plans.governance.approvals import ParentRelease
    from plans.release_plan import restore_plan
    from plans.runtime.inputs import RolloutInput
    from plans.runtime.release import (
        RESTORE_SUFFIX,
        ReleaseInput,
        ReleaseProgress,
        TargetRun,
        TargetState,
    )
    from plans.runtime.visibility import RELEASE, TARGET
    from workflows.failures import root_message
    from workflows.release.log import ReleaseLog
    from workflows.rollout import RolloutWorkflow


async def run_target(
    input: ReleaseInput, progress: ReleaseProgress, log: ReleaseLog, name: str
) -> TargetRun:
    """Run one target's rollout to its end and record how it ended (cancelled: re-raised)."""
    plan, run = input.fleet, progress.targets[name]
    run.state = TargetState.RUNNING
    run.started_at = workflow.now()
    log.audit("target", f"{name}: rollout started ({run.workflow_id})")
    log.publish()
    cancelled: asyncio.CancelledError | None = None
    try:
        result = await workflow.execute_child_workflow(
            RolloutWorkflow.run,
            RolloutInput(
                plan=plan.targets[name],
                visibility=input.visibility,
                release=ParentRelease(
                    workflow_id=plan.workflow_id,
                    run_id=workflow.info().first_execution_run_id,
                    target=name,
                    starter=progress.approvals.starter,
                ),
            ),
            id=run.workflow_id,
            parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
            search_attributes=child_attributes(input, name),
            static_summary=f"{plan.service} {plan.version} on {name} (release {plan.workflow_id})",
        )
        outcome = RolloutResult.model_validate(result)
        if outcome.state == RolloutState.PROMOTED:
            run.state = TargetState.PROMOTED
            progress.promoted_order.append(name)
        else:
            run.state = TargetState.ABORTED
        run.reason = outcome.reason
    except ChildWorkflowError as error:
        cause = error.cause
        rolled = isinstance(cause, ApplicationError) and cause.type == "RolledBack"
        gone = type(cause).__name__ == "CancelledError"
        run.state = TargetState.ROLLED_BACK if rolled or gone else TargetState.FAILED
        if gone:
            run.reason = "cancelled, stable restored"
        elif isinstance(cause, ApplicationError):
            run.reason = cause.message
        else:
            run.reason = root_message(error)
    except asyncio.CancelledError as error:
        run.state = TargetState.ROLLED_BACK
        run.reason = "cancelled, stable restored"
        cancelled = error
    run.ended_at = workflow.now()
    log.audit("target", f"{name}: {run.state.value}: {run.reason}")
    if cancelled is not None:
        raise cancelled
    return run


async def restore_promoted(input: ReleaseInput, progress: ReleaseProgress, log: ReleaseLog) -> None:
    """Put every promoted target back on stable, newest first, each through a rollout."""
    plan = input.fleet
    for name in reversed(progress.promoted_order):
        run = progress.targets[name]
        if run.state != TargetState.PROMOTED:
            continue
        restore_id = run.workflow_id + RESTORE_SUFFIX
        log.audit("restore", f"{name}: putting stable back ({restore_id})")
        try:
            await workflow.execute_child_workflow(
                RolloutWorkflow.run,
                RolloutInput(plan=restore_plan(plan.targets[name])),
                id=restore_id,
                parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=child_attributes(input, name),
                static_summary=f"{plan.service}: {name} back to stable",
            )
            run.state = TargetState.RESTORED
            run.reason = f"promoted, then put back on stable: {progress.reason}"
        except ChildWorkflowError as error:
            run.reason = f"putting stable back failed: {root_message(error)}"
        log.audit("restore", f"{name}: {run.state.value}: {run.reason}")
        log.publish()


def child_attributes(input: ReleaseInput, name: str) -> TypedSearchAttributes | None:
    """The target's and the release's search attributes, when the release sets them."""
    if not input.visibility:
        return None
    return TypedSearchAttributes(
        [SearchAttributePair(TARGET, name), SearchAttributePair(RELEASE, input.fleet.workflow_id)]
    )
