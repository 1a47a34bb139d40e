"""Who holds a traffic target's lease, and whether that rollout still runs.

Apart from claiming and releasing (``activities.ownership``) because the lease workflow
itself asks ``owner_running``, and the claim starts that workflow.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from client import leases
from plans import OwnerEnd, TargetClaim

WATCH_FOR = timedelta(hours=1)  # one watch's length; the lease then watches again
HEARTBEAT_EVERY = timedelta(seconds=10)
STILL_RUNNING = "OwnerStillRunning"
RELEASE_TARGET = "release_target"


class Owners:
    """The lease's look at its owner; bound to a client."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name="owner_running")
    async def owner_running(self, owner: str) -> bool:
        """Whether the rollout holding a lease still runs (the lease ends itself if not)."""
        running, _ = await leases.is_running(self.client, owner)
        return running

    @activity.defn(name="owner_closing")
    async def owner_closing(self, claim: TargetClaim) -> bool:
        """Whether the owner's run (``claim.owner_run_id``) is ending by itself.

        Closed on its own (completed, failed, cancelled), or running with its
        ``release_target`` under way: only then is a release the owner's. Anyone may send
        the lease a signal; nobody else can make the owner's run release.
        """
        return await leases.ending_by_itself(self.client, claim, RELEASE_TARGET)

    @activity.defn(name="owner_ended")
    async def owner_ended(self, claim: TargetClaim) -> OwnerEnd:
        """Wait until the rollout holding the lease ends (up to ``WATCH_FOR``), and say how.

        The wait is one long poll on the owner's close event, following its new runs, so the
        lease learns of a terminate at once without asking again and again. An owner still
        running after the watch fails it with ``STILL_RUNNING``, for a retry to watch again.
        """
        beating = asyncio.create_task(_heartbeat())
        try:
            how = await leases.wait_for_end(self.client, claim, WATCH_FOR)
            if not how:
                # Retried by the lease's retry policy: a new watch, with no history written.
                raise ApplicationError(f"{claim.owner} still runs", type=STILL_RUNNING)
            running, run_id = await leases.is_running(self.client, claim.owner)
        finally:
            beating.cancel()
        return OwnerEnd(how=how, running=running, run_id=run_id)


async def _heartbeat() -> None:
    """Beat while the watch waits: a lost worker is noticed, and a cancel reaches the wait."""
    while True:
        activity.heartbeat()
        await asyncio.sleep(HEARTBEAT_EVERY.total_seconds())
