"""Traffic routers a plan can name: the ``Router`` union is the registry, keyed by ``kind``.

Adding a router: its model in a module here (a ``RouterModel`` with a ``kind`` literal), one
line in ``Router`` below, and its implementation in ``activities/routers``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from plans.routers.base import RouterModel
from plans.routers.envoy import EnvoyRouter
from plans.routers.flagd import FlagdRouter
from plans.routers.haproxy import HAProxyRouter
from plans.text import kinds_of

Router = Annotated[
    HAProxyRouter | EnvoyRouter | FlagdRouter,  # one line per kind
    Field(discriminator="kind"),
]
ROUTER_KINDS = kinds_of(Router)

__all__ = ["ROUTER_KINDS", "EnvoyRouter", "FlagdRouter", "HAProxyRouter", "Router", "RouterModel"]
