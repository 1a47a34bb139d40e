"""Traffic routers: one Protocol, one module per router, a registry keyed by the plan's ``kind``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from activities.errors import RouterRefused
from activities.registry import of_kind
from activities.routers.envoy import EnvoyRuntime
from activities.routers.flagd import FlagdFile
from activities.routers.haproxy import HAProxyRuntime
from plans import Router, TrafficSplit
from plans.runtime.shares import VariantShares


class TrafficRouter(Protocol):
    """Moves traffic between a stable and a canary server, or over an experiment's variants."""

    def set_split(self, stable: str, canary: str, split: TrafficSplit) -> TrafficSplit:
        """Set both servers' weights, read them back and return what the router now has."""
        ...

    def get_split(self, stable: str, canary: str) -> TrafficSplit:
        """Read both servers' current weights."""
        ...

    def set_shares(self, shares: VariantShares) -> VariantShares:
        """Route each variant its share (2-4 variants), read back and return what it routes."""
        ...

    def get_shares(self, names: list[str]) -> VariantShares:
        """The named variants' current shares, in percent."""
        ...


# Each entry builds a router from its own plan model; Any because every kind has its own.
ROUTERS: dict[str, Callable[[Any], TrafficRouter]] = {
    "haproxy": HAProxyRuntime,
    "envoy": EnvoyRuntime,
    "flagd": FlagdFile,
}


def router_for(spec: Router) -> TrafficRouter:
    """The router implementation for a plan's ``router`` section."""
    return of_kind(ROUTERS, spec.kind, "traffic router", RouterRefused)(spec)


__all__ = ["ROUTERS", "EnvoyRuntime", "FlagdFile", "HAProxyRuntime", "TrafficRouter", "router_for"]
