"""An experiment's router activities: set and read its variants' shares of the traffic.

Registered under ``set_variant_shares`` and ``read_variant_shares`` (``plans.runtime.messages``).
Errors come back as the rollout's activities report them: a refusal (shares that are not
2-4 variants of 0-100% adding up to 100, a variant the router lacks, a router that cannot
run experiments) is non-retryable, an outage is retryable. Plain functions: the worker
runs them in its ``activity_executor`` thread pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.rollout import _reported
from activities.routers import router_for
from activities.routers.shares import check_names, check_shares
from plans.runtime import messages
from plans.runtime.shares import SharesRequest, VariantShares


@activity.defn(name=messages.SET_VARIANT_SHARES)
def set_variant_shares(req: SharesRequest) -> VariantShares:
    """Route each variant its share on the router; return the shares it routes once set."""
    activity.logger.info("setting %s on %s", req.shares.describe(), req.router.describe())
    with _reported():
        check_shares(req.shares, req.router.describe())
        now = router_for(req.router).set_shares(req.shares)
    activity.logger.info("router now routes %s", now.describe())
    return now


@activity.defn(name=messages.READ_VARIANT_SHARES)
def read_variant_shares(req: SharesRequest) -> VariantShares:
    """The shares the router routes now to the variants ``req.shares`` names (values ignored)."""
    names = list(req.shares.shares)
    with _reported():
        check_names(names, req.router.describe())
        return router_for(req.router).get_shares(names)


EXPERIMENT_ACTIVITIES: list[Callable[..., Any]] = [set_variant_shares, read_variant_shares]
