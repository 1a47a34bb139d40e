"""What starts a rollout run: the plan, the progress a previous run carried over, settings."""

from __future__ import annotations

from pydantic import BaseModel, Field

from plans.governance.approvals import ParentRelease
from plans.plan import Plan
from plans.runtime.progress import RolloutProgress

CHECKS_PER_RUN = 500


class RolloutInput(BaseModel):
    """The one argument of RolloutWorkflow; continue-as-new passes it on with the progress.

    ``checks_per_run`` and ``visibility`` are how the run behaves, chosen by whoever starts
    it; they are not progress, and the next run keeps them as they were.
    """

    plan: Plan
    progress: RolloutProgress | None = Field(
        default=None, description="state carried over from the previous run; none at the start"
    )
    checks_per_run: int = Field(
        default=CHECKS_PER_RUN, ge=1, description="continue-as-new after this many checks"
    )
    visibility: bool = Field(default=False, description="upsert the Rollout* search attributes")
    release: ParentRelease | None = Field(
        default=None, description="the release this target's rollout runs under, if any"
    )


class ScheduledRollout(BaseModel):
    """What a Temporal Schedule starts a rollout with (``rollout schedule``)."""

    plan: Plan
    task_queue: str = Field(description="the task queue the rollout runs on")
    schedule_id: str = ""
