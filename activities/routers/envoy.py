"""Envoy through its admin API: weighted clusters whose weights are runtime keys.

The route's ``weighted_clusters`` names a ``runtime_key_prefix``; Envoy takes each cluster's
weight from the runtime key ``<prefix>.<cluster>`` when a runtime layer sets it, else from
the static config. A shift sets both keys in one ``POST /runtime_modify`` (one new runtime
snapshot, so no request sees half a shift) and reads them back from ``GET /runtime``.

The admin layer lives in memory: a restarted Envoy routes by its config's weights again.
A key that no layer sets is therefore read as the route's configured weight, found in
``/config_dump``, so what this module reports is what Envoy routes.

An experiment's variants are clusters of the same route (two to four), each weighted by its
share, all keys in one snapshot too. Clusters of the route the experiment does not name
keep their weights: give them 0 for the shares to be the variants' shares of traffic.
"""

from __future__ import annotations

from typing import Any

import httpx

from activities.errors import RouterError, RouterRefused, RouterUnreachable
from activities.routers.shares import check_names, check_shares, percents
from plans import EnvoyRouter, TrafficSplit
from plans.runtime.shares import VariantShares
from plans.text import SAFE_NAME

_MAX_ANSWER = 8 << 20  # a config dump of a large Envoy is a few megabytes
# Where routes live in a config dump: inline in a listener or from RDS.
_ROUTE_RESOURCES = ("static_route_configs", "dynamic_route_configs")
_NO_ADMIN_LAYER = "No admin layer"


class EnvoyRuntime:
    """Sets and reads the two clusters' weights under one runtime key prefix of one Envoy."""

    def __init__(self, spec: EnvoyRouter) -> None:
        self.spec = spec
        self.admin = spec.admin
        self.prefix = spec.runtime_key_prefix
        self.timeout = spec.timeout.total_seconds()

    def set_split(self, stable: str, canary: str, split: TrafficSplit) -> TrafficSplit:
        """Set both keys in one request and read them back; RouterError if Envoy disagrees."""
        self._check_clusters(stable, canary)
        if split.stable_weight + split.canary_weight == 0:
            raise RouterRefused(
                f"{split} gives both clusters weight 0: Envoy would route no request;"
                " give one of them a weight above 0"
            )
        # A key no route reads would be taken and change nothing: check the route first.
        defaults = self.configured_split(stable, canary)
        self.modify(
            {
                self.spec.runtime_key(stable): split.stable_weight,
                self.spec.runtime_key(canary): split.canary_weight,
            }
        )
        after = self._split(stable, canary, defaults)
        if after != split:
            raise RouterError(
                f"Envoy at {self.admin} reports {after} under {self.prefix!r} right after"
                f" being set to {split}: a runtime layer above the admin layer overrides these"
                " keys, or something else is changing them"
            )
        return after

    def get_split(self, stable: str, canary: str) -> TrafficSplit:
        """The two clusters' weights as Envoy routes now (runtime keys, else the config's)."""
        self._check_clusters(stable, canary)
        return self._split(stable, canary, None)

    def set_shares(self, shares: VariantShares) -> VariantShares:
        """Weight each variant's cluster by its share, every key in one runtime snapshot,
        and read back; RouterError if Envoy routes otherwise."""
        check_shares(shares, self._where)
        names = list(shares.shares)
        # A key no route reads would be taken and change nothing: check the route first.
        defaults = self.configured_weights(names)
        self.modify({self.spec.runtime_key(n): share for n, share in shares.shares.items()})
        after = VariantShares(shares=percents(self._weights(names, defaults)))
        if after != shares:
            raise RouterError(
                f"{self._where} routes {after.describe()} right after being set to"
                f" {shares.describe()}: a runtime layer above the admin layer overrides these"
                " keys, or something else is changing them"
            )
        return after

    def get_shares(self, names: list[str]) -> VariantShares:
        """Each named variant's share: its cluster's weight as a percent of theirs together."""
        check_names(names, self._where)
        return VariantShares(shares=percents(self._weights(names, None)))

    @property
    def _where(self) -> str:
        return f"Envoy at {self.admin} (runtime_key_prefix {self.prefix!r})"

    def _split(self, stable: str, canary: str, defaults: TrafficSplit | None) -> TrafficSplit:
        configured = (
            None
            if defaults is None
            else {stable: defaults.stable_weight, canary: defaults.canary_weight}
        )
        weights = self._weights([stable, canary], configured)
        return TrafficSplit(stable_weight=weights[stable], canary_weight=weights[canary])

    def _weights(self, names: list[str], defaults: dict[str, int] | None) -> dict[str, int]:
        """The clusters' weights as Envoy routes now: runtime keys, else the route's config."""
        values = self.runtime_values()
        found = {n: values.get(self.spec.runtime_key(n)) for n in names}
        if any(w is None for w in found.values()):
            defaults = defaults or self.configured_weights(names)
        return {n: defaults[n] if w is None and defaults else w or 0 for n, w in found.items()}

    # -- the admin API ------------------------------------------------------------------------

    def runtime_values(self) -> dict[str, int]:
        """``GET /runtime``: each key's final value that Envoy can read as a weight."""
        body = self._json("GET", "/runtime")
        entries = body.get("entries") if isinstance(body, dict) else None
        if not isinstance(entries, dict):
            raise RouterRefused(
                f"{self.admin}/runtime answered without runtime entries: is router.admin"
                " Envoy's admin address?"
            )
        values: dict[str, int] = {}
        for key, entry in entries.items():
            final = entry.get("final_value") if isinstance(entry, dict) else None
            # Envoy reads a weight that is not a whole number as unset: so do we.
            if isinstance(final, str) and final.isdigit():
                values[key] = int(final)
        return values

    def modify(self, values: dict[str, int]) -> None:
        """``POST /runtime_modify?key=value&...``: all keys in one new runtime snapshot."""
        params = {key: str(int(value)) for key, value in values.items()}
        response = self._request("POST", "/runtime_modify", params=params)
        if response.status_code == 503 and _NO_ADMIN_LAYER in response.text:
            raise RouterRefused(
                f"Envoy at {self.admin} has no admin runtime layer, so its weights cannot be"
                " changed at run time: add a layer with 'admin_layer: {}' to layered_runtime"
                f" in its bootstrap config (Envoy said: {response.text.strip()})"
            )
        self._raise_for_status(response, "/runtime_modify")

    def configured_split(self, stable: str, canary: str) -> TrafficSplit:
        """The weights the route's config gives the two clusters, used while no key is set."""
        weights = self.configured_weights([stable, canary])
        return TrafficSplit(stable_weight=weights[stable], canary_weight=weights[canary])

    def configured_weights(self, names: list[str]) -> dict[str, int]:
        """The weights the route's config gives these clusters, used while no key is set."""
        found: list[dict[str, int]] = []
        for resource in _ROUTE_RESOURCES:
            dump = self._json("GET", "/config_dump", params={"resource": resource})
            found += _weighted_clusters(dump, self.prefix)
            if found:
                break
        if not found:
            raise RouterRefused(
                f"no route of Envoy at {self.admin} has weighted_clusters with"
                f" runtime_key_prefix {self.prefix!r}: set router.runtime_key_prefix to the"
                " route's, or add it to the route that splits the two clusters"
            )
        splits = set()
        for clusters in found:
            missing = [name for name in names if name not in clusters]
            if missing:
                routed = ", ".join(sorted(clusters)) or "none"
                raise RouterRefused(
                    f"the route with runtime_key_prefix {self.prefix!r} on Envoy at"
                    f" {self.admin} has no cluster {' or '.join(map(repr, missing))} (it"
                    f" splits between {routed}): make the plan's names (stable and canary, or"
                    " the experiment's variants) match the route's weighted clusters"
                )
            splits.add(tuple(clusters[name] for name in names))
        if len(splits) > 1:
            raise RouterRefused(
                f"routes with runtime_key_prefix {self.prefix!r} on Envoy at {self.admin}"
                f" configure different weights for {', '.join(names)}, so they route"
                " differently while no key is set: give them the same weights"
            )
        return dict(zip(names, splits.pop(), strict=True))

    def _json(self, method: str, path: str, params: dict[str, str] | None = None) -> Any:
        response = self._request(method, path, params=params)
        self._raise_for_status(response, path)
        try:
            return response.json()
        except ValueError:
            raise RouterRefused(
                f"{self.admin}{path} did not answer JSON: is router.admin Envoy's admin address?"
            ) from None

    def _request(
        self, method: str, path: str, params: dict[str, str] | None = None
    ) -> httpx.Response:
        url = self.admin + path
        try:
            # trust_env off: a proxy set for the machine must not sit between us and loopback.
            # verify off: the admin API is plain http on loopback (the plan allows nothing
            # else), and loading the CA bundle for each client would cost ~25 ms a request.
            with httpx.Client(timeout=self.timeout, trust_env=False, verify=False) as client:
                response = client.request(method, url, params=params)
        except httpx.ConnectError as error:
            raise RouterUnreachable(
                f"nothing answers at {self.admin} ({error}): is Envoy running, with its admin"
                " address there?"
            ) from None
        except httpx.TimeoutException:
            raise RouterUnreachable(
                f"Envoy at {self.admin} did not answer {method} {path} within {self.timeout:g}s"
            ) from None
        except httpx.HTTPError as error:
            raise RouterUnreachable(
                f"the request {method} {path} to Envoy at {self.admin} failed: {error}"
            ) from None
        if len(response.content) > _MAX_ANSWER:
            raise RouterRefused(f"{url} answered more than {_MAX_ANSWER:,} bytes")
        return response

    def _raise_for_status(self, response: httpx.Response, path: str) -> None:
        if response.is_success:
            return
        said = response.text.strip().splitlines()[0] if response.text.strip() else "(no text)"
        message = f"Envoy at {self.admin} answered {path} with HTTP {response.status_code}: {said}"
        if response.status_code >= 500:
            raise RouterUnreachable(message)
        raise RouterRefused(f"{message}: is router.admin Envoy's admin address?")

    def _check_clusters(self, stable: str, canary: str) -> None:
        for name in (stable, canary):
            if not SAFE_NAME.match(name):
                raise RouterRefused(
                    f"{name!r} is not a valid Envoy cluster name for a runtime key: use letters,"
                    " digits, '_', '.', ':' or '-'"
                )


def _weighted_clusters(dump: Any, prefix: str) -> list[dict[str, int]]:
    """Each ``weighted_clusters`` under this ``runtime_key_prefix`` in a dump: name -> weight."""
    found: list[dict[str, int]] = []
    stack = [dump]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        weighted = node.get("weighted_clusters")
        if isinstance(weighted, dict) and weighted.get("runtime_key_prefix") == prefix:
            clusters = weighted.get("clusters")
            found.append(
                {
                    str(c.get("name")): int(c.get("weight") or 0)
                    for c in clusters or []
                    if isinstance(c, dict)
                }
            )
        stack.extend(node.values())
    return found
