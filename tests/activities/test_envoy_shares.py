"""An experiment's shares on a real Envoy: three clusters of one route, weighted by runtime
keys in one snapshot, read back, and routed (each cluster a named HTTP server)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from activities.errors import RouterError, RouterRefused
from activities.experiment import read_variant_shares, set_variant_shares
from activities.routers import EnvoyRuntime
from demo.configs import ENVOY_RUNTIME_PREFIX
from plans import EnvoyRouter
from plans.runtime.shares import SharesRequest, VariantShares

from .conftest import stop
from .test_envoy import Envoy
from .test_haproxy_shares import Named, Quiet

VARIANTS = ("stable", "canary", "canary-b")


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Envoy]:
    """Envoy splitting its route between three named servers; stable 100 as configured."""
    servers = {}
    for name in VARIANTS:
        server = Quiet(("127.0.0.1", 0), Named)
        server.name = name  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
        servers[name] = server
    addresses = {name: f"127.0.0.1:{s.server_address[1]}" for name, s in servers.items()}
    envoy = Envoy(tmp_path_factory.mktemp("envoy-shares"), servers=addresses)
    try:
        yield envoy
    finally:
        stop(envoy.proc)
        for server in servers.values():
            server.shutdown()
            server.server_close()


def shares(**by: int) -> VariantShares:
    return VariantShares(shares={name.replace("_", "-"): share for name, share in by.items()})


def answers(envoy: Envoy, requests: int) -> Counter[str]:
    with httpx.Client(timeout=10.0, trust_env=False) as http:
        return Counter(
            http.get(f"http://127.0.0.1:{envoy.app_port}/").text for _ in range(requests)
        )


def test_unset_keys_read_as_the_routes_weights(three: Envoy) -> None:
    router = three.router()
    assert router.get_shares(list(VARIANTS)) == shares(stable=100, canary=0, canary_b=0)


def test_three_variants_set_read_back_and_routed(three: Envoy) -> None:
    router = three.router()
    wanted = shares(stable=50, canary=25, canary_b=25)
    assert router.set_shares(wanted) == wanted
    assert router.get_shares(list(VARIANTS)) == wanted
    # One snapshot: every key at once, each the share itself.
    values = router.runtime_values()
    assert [values[f"{ENVOY_RUNTIME_PREFIX}.{n}"] for n in VARIANTS] == [50, 25, 25]
    counted = answers(three, 400)
    assert set(counted) == set(VARIANTS)
    # Envoy picks a cluster at random by weight: 200/100/100 expected, sd about 10.
    assert 150 <= counted["stable"] <= 250 and 60 <= counted["canary-b"] <= 140, counted
    # A variant taken out gets no request at all.
    out = shares(stable=75, canary=25, canary_b=0)
    assert router.set_shares(out) == out
    assert "canary-b" not in answers(three, 100)
    router.set_shares(shares(stable=100, canary=0, canary_b=0))
    assert set(answers(three, 30)) == {"stable"}


def test_the_activities_set_and_read_envoy_shares(three: Envoy) -> None:
    spec = EnvoyRouter(admin=three.admin, runtime_key_prefix=ENVOY_RUNTIME_PREFIX)
    wanted = shares(stable=34, canary=33, canary_b=33)
    request = SharesRequest(router=spec, shares=wanted)
    assert ActivityEnvironment().run(set_variant_shares, request) == wanted
    assert ActivityEnvironment().run(read_variant_shares, request) == wanted
    ActivityEnvironment().run(
        set_variant_shares,
        SharesRequest(router=spec, shares=shares(stable=100, canary=0, canary_b=0)),
    )


def test_a_variant_the_route_does_not_split_is_refused_by_name(three: Envoy) -> None:
    router = three.router()
    with pytest.raises(RouterRefused, match=r"has no cluster 'canary-c' \(it splits between"):
        router.set_shares(shares(stable=50, canary=25, canary_c=25))
    assert router.get_shares(list(VARIANTS)) == shares(stable=100, canary=0, canary_b=0)


def test_shares_that_do_not_add_up_are_refused_before_sending(three: Envoy) -> None:
    with pytest.raises(RouterRefused, match="add up to 90%"):
        three.router().set_shares(shares(stable=50, canary=40))


def test_a_layer_above_the_admin_layer_makes_the_read_back_fail(tmp_path: Path) -> None:
    # A static layer above the admin one pins a variant's key: set, yet not what Envoy routes.
    pinned = {"name": "pinned", "static_layer": {f"{ENVOY_RUNTIME_PREFIX}.canary": 0}}
    layers = [{"name": "static", "static_layer": {}}, {"name": "admin", "admin_layer": {}}, pinned]
    envoy = Envoy(tmp_path, layers=layers)
    try:
        router: EnvoyRuntime = envoy.router()
        with pytest.raises(RouterError, match="right after being set to stable 50% / canary 50%"):
            router.set_shares(shares(stable=50, canary=50))
    finally:
        stop(envoy.proc)
