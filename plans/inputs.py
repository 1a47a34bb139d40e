"""What starts a rollout run: the plan, the progress a previous run carried over, settings."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

from plans.approvals import ParentRelease
from plans.plan import Plan
from plans.state import RolloutProgress

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

    @model_validator(mode="before")
    @classmethod
    def _plan_alone(cls, data: Any) -> Any:
        # Runs started before this input existed passed the plan itself as the first argument.
        if isinstance(data, dict) and "plan" not in data and "service" in data:
            return {"plan": data}
        return data

    def carrying(self, legacy_progress: dict[str, Any] | None) -> RolloutInput:
        """This input with the progress such an earlier run passed as its second argument.

        That progress held the run's settings too; they are taken out of it here.
        """
        if legacy_progress is None:
            return self
        return RolloutInput(
            plan=self.plan,
            progress=RolloutProgress.model_validate(legacy_progress),
            checks_per_run=legacy_progress.get("checks_per_run", CHECKS_PER_RUN),
            visibility=legacy_progress.get("visibility", False),
        )


class ScheduledRollout(BaseModel):
    """What a Temporal Schedule starts a rollout with (``rollout schedule``)."""

    plan: Plan
    task_queue: str = Field(description="the task queue the rollout runs on")
    schedule_id: str = ""
