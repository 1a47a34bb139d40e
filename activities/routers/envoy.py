"""Envoy through its admin API: weighted clusters whose weights are runtime keys.

The route's ``weighted_clusters`` names a ``runtime_key_prefix``; Envoy takes each cluster's
weight from the runtime key ``<prefix>.<cluster>`` when a runtime layer sets it, else from
the static config. A shift sets both keys in one ``POST /runtime_modify`` (one new runtime
snapshot, so no request sees half a shift) and reads them back from ``GET /runtime``.

The admin layer lives in memory: a restarted Envoy routes by its config's weights again.
A key that no layer sets is therefore read as the route's configured weight, found in
``/config_dump``, so what this module reports is what Envoy routes.
"""

from __future__ import annotations

from typing import Any

import httpx

from activities.errors import RouterError, RouterRefused, RouterUnreachable
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
        """Refused: an experiment's variants run behind HAProxy or a flagd flag."""
        raise self._no_experiments()

    def get_shares(self, names: list[str]) -> VariantShares:
        """Refused, as ``set_shares``."""
        raise self._no_experiments()

    def _no_experiments(self) -> RouterRefused:
        return RouterRefused(
            f"{self.spec.describe()}: experiments need an haproxy router (each variant a"
            " server of one backend) or a flagd router (each variant a variant of one flag)"
        )

    def _split(self, stable: str, canary: str, defaults: TrafficSplit | None) -> TrafficSplit:
        values = self.runtime_values()
        stable_weight = values.get(self.spec.runtime_key(stable))
        canary_weight = values.get(self.spec.runtime_key(canary))
        if stable_weight is None or canary_weight is None:
            defaults = defaults or self.configured_split(stable, canary)
            stable_weight = defaults.stable_weight if stable_weight is None else stable_weight
            canary_weight = defaults.canary_weight if canary_weight is None else canary_weight
        return TrafficSplit(stable_weight=stable_weight, canary_weight=canary_weight)

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
            missing = [name for name in (stable, canary) if name not in clusters]
            if missing:
                names = ", ".join(sorted(clusters)) or "none"
                raise RouterRefused(
                    f"the route with runtime_key_prefix {self.prefix!r} on Envoy at"
                    f" {self.admin} has no cluster {' or '.join(map(repr, missing))} (it"
                    f" splits between {names}): make the plan's stable and canary names"
                    " match the route's weighted clusters"
                )
            splits.add((clusters[stable], clusters[canary]))
        if len(splits) > 1:
            raise RouterRefused(
                f"routes with runtime_key_prefix {self.prefix!r} on Envoy at {self.admin}"
                " configure different weights for the two clusters, so they route differently"
                " while no key is set: give them the same weights"
            )
        stable_weight, canary_weight = splits.pop()
        return TrafficSplit(stable_weight=stable_weight, canary_weight=canary_weight)

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
