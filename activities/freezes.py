"""Reading the freezes for a rollout: a query of the ``FreezeCalendar`` workflow.

A local activity, like the ownership activities it needs a client, so it is bound to one.
No calendar yet (nobody ever added a freeze) means no freezes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.client import Client

from client.freezes import calendar_freezes
from plans.governance.freezes import ALL_SERVICES, Freeze


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
