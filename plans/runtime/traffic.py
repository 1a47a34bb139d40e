"""What `rollout status` read of the router, beside the run's own answer."""

from __future__ import annotations

from pydantic import BaseModel, Field

from plans.runtime.state import AuditEvent, RolloutStatus, TrafficSplit


class Restore(BaseModel):
    """Stable put back on a run's behalf: by its target's lease or by its release."""

    workflow_id: str = Field(description="the workflow that restores: the lease or the restore")
    running: bool = Field(description="still at it")
    done: bool = Field(description="ended having put stable back")
    text: str = Field(description="what it says of itself: its result, or what it does now")


class TrafficReading(BaseModel):
    """What the router routes now, read by `rollout status`, and who else put stable back."""

    router: str = Field(description="the router in words")
    routes: TrafficSplit | None = Field(default=None, description="the split read just now")
    unreadable: str = Field(default="", description="why the router could not be read from here")
    restores: list[Restore] = Field(default_factory=list)
    todo: str = Field(
        default="",
        description="what a person must do: the canary still gets traffic and"
        " nothing puts stable back",
    )

    @property
    def restored(self) -> Restore | None:
        """The restore that put stable back on the run's behalf, if one did."""
        return next((r for r in self.restores if r.done), None)


class ObservedStatus(RolloutStatus):
    """The workflow's status answer with what `rollout status` read of the router beside it."""

    traffic: TrafficReading | None = None


# RolloutStatus names AuditEvent before plans.runtime.state defines it; the subclass
# resolves it here.
ObservedStatus.model_rebuild(_types_namespace={"AuditEvent": AuditEvent})
