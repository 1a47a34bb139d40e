"""A rollout's hold on its traffic target: the claim, its answer, and how the owner ended.

A target (a router's backend) is moved by one rollout at a time; its lease workflow holds
the claim. The claim is also where the worker admits the plan before any request (the
variables it names, the hosts it writes out), and the answer says why when it does not.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from plans.runtime.notices import Notification
from plans.runtime.shares import SharesRequest
from plans.runtime.state import ShiftRequest


class TargetClaim(BaseModel):
    """A rollout asking to own its traffic target (a router's backend) for as long as it runs."""

    lease_id: str = Field(description="workflow id of the target's lease")
    target: str = Field(description="the target in words, e.g. haproxy backend app via ...")
    owner: str = Field(description="workflow id of the rollout asking")
    service: str
    owner_run_id: str = Field(default="", description="the owner's run when it claimed")
    restore: ShiftRequest | None = Field(
        default=None, description="what puts stable back, should the owner end without a restore"
    )
    restore_shares: SharesRequest | None = Field(
        default=None,
        description="an experiment's: its control at 100%, should the owner end without a restore",
    )
    notice: Notification | None = Field(
        default=None, description="the message the owner's channels get if the lease restores"
    )
    # What the worker admits before any request: the plan's variables and written hosts.
    variables: list[tuple[str, str]] = Field(
        default_factory=list, description="(field, variable) the plan names for its secrets"
    )
    hosts: list[tuple[str, str]] = Field(
        default_factory=list, description="(field, host) of each URL the plan writes out"
    )


class OwnerEnd(BaseModel):
    """How the rollout holding a lease ended, seen by the lease, and whether its id runs again."""

    how: str = Field(description="completed, failed, cancelled, terminated, timed out, or ''")
    running: bool = Field(description="a run of the owner's workflow id runs now (a reset)")
    run_id: str = ""

    @property
    def left_traffic(self) -> bool:
        """Ended without running its own end (its restore or its promotion): terminated, or
        timed out by a workflow timeout."""
        return not self.running and self.how in ("terminated", "timed out")


class ClaimAnswer(BaseModel):
    """Whether the claim was granted; if not, which rollout owns the target."""

    claimed: bool
    owner: str
    owner_run_id: str = ""
    since: datetime | None = None
    refused: str = Field(default="", description="why this worker refuses the plan, if it does")
