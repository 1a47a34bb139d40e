"""Traffic over several variants at set shares: what an experiment asks of its router.

A rollout moves traffic between two servers (``ShiftRequest``); an experiment runs two to
four variants side by side, each at its share of the traffic. The router activities
``set_variant_shares`` and ``read_variant_shares`` (names in ``plans.runtime.messages``)
take a ``SharesRequest`` and answer the ``VariantShares`` the router routes once set.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from plans.routers import Router


class VariantShares(BaseModel):
    """Each variant's share of the traffic, in percent, by the variant's name."""

    shares: dict[str, int] = Field(description="variant name -> percent; they add up to 100")

    def describe(self) -> str:
        """``control 34% / b 33% / c 33%``."""
        return " / ".join(f"{name} {share}%" for name, share in self.shares.items())


class SharesRequest(BaseModel):
    """Set (or read) the shares of named variants on one router.

    For HAProxy each variant is a server of the router's backend, named as the variant;
    for flagd each is a variant of the router's flag. ``shares`` is ignored by a read,
    which reads the variants it names.
    """

    router: Router
    shares: VariantShares
