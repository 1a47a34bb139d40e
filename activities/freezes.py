"""Reading the freezes for a rollout: a query of the ``FreezeCalendar`` workflow.

A local activity, like the ownership activities it needs a client, so it is bound to one.
No calendar yet (nobody ever added a freeze) means no freezes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from plans.freezes import ALL_SERVICES, FREEZE_CALENDAR_ID, Freeze


class FreezeReader:
    def __init__(self, client: Client) -> None:
        self.client = client

    def activities(self) -> list[Callable[..., Any]]:
        return [self.freezes_for]

    @activity.defn(name="freezes_for")
    async def freezes_for(self, service: str) -> list[Freeze]:
        """The freezes now known that hold ``service`` (its own and those of all services)."""
        freezes = await calendar_freezes(self.client)
        return [f for f in freezes if f.service in (service, ALL_SERVICES)]


async def calendar_freezes(client: Client) -> list[Freeze]:
    """Every freeze the calendar holds; none when there is no calendar yet."""
    # Imported here: the calendar's module imports this activity (a cycle at the top).
    from workflows.freezes import FreezeCalendar

    handle = client.get_workflow_handle(FREEZE_CALENDAR_ID)
    try:
        freezes: list[Freeze] = await handle.query(FreezeCalendar.freezes)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return []
        raise
    return freezes
