"""An experiment's variants as servers of one HAProxy backend, each weighted by its share.

Each variant is a server of the router's backend named as the variant (``server b
10.0.0.7:8080 weight 0``, or added at run time with ``add server``). A share of p% is the
weight p, so the weights read back are the percents that were set; weights someone else
set are read as percents of their total. Servers of the backend the experiment does not
name keep their weights: give them 0 for the shares to be the variants' shares of traffic.
"""

from __future__ import annotations

from typing import Protocol

from activities.errors import RouterError
from activities.routers.shares import check_names, check_shares, percents, write_order
from plans.runtime.shares import VariantShares


class Weights(Protocol):
    """The part of ``HAProxyRuntime`` the shares need: one backend's server weights."""

    backend: str

    def set_weight(self, server: str, weight: int) -> None: ...

    def get_weights(self, *servers: str) -> list[int]: ...


def set_shares(runtime: Weights, shares: VariantShares) -> VariantShares:
    """Weight each variant's server by its share and read back; RouterError if they differ."""
    where = f"HAProxy backend {runtime.backend!r}"
    check_shares(shares, where)
    wanted = dict(shares.shares)
    names = list(wanted)
    before = dict(zip(names, runtime.get_weights(*names), strict=True))
    for name in write_order(before, wanted):
        if before[name] != wanted[name]:
            runtime.set_weight(name, wanted[name])
    after = get_shares(runtime, names)
    if after != shares:
        raise RouterError(
            f"{where} routes {after.describe()} right after being set to {shares.describe()}:"
            " something else is changing these weights (another controller, an operator,"
            " or a reload)"
        )
    return after


def get_shares(runtime: Weights, names: list[str]) -> VariantShares:
    """Each named variant's share: its server's weight as a percent of theirs together."""
    check_names(names, f"HAProxy backend {runtime.backend!r}")
    weights = dict(zip(names, runtime.get_weights(*names), strict=True))
    return VariantShares(shares=percents(weights))
