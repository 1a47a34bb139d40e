"""An experiment's shares on a real HAProxy: three variants' weights set, read back, routed."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.errors import RouterError
from activities.experiment import read_variant_shares, set_variant_shares
from activities.routers import HAProxyRuntime
from plans import HAProxyRouter
from plans.runtime.shares import SharesRequest, VariantShares

from .conftest import HAPROXY, free_port, stop, wait_for

CONFIG = """\
global
    stats socket {admin} mode 600 level admin

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s

frontend app
    bind 127.0.0.1:{app}
    default_backend exp

backend exp
    balance roundrobin
    server control 127.0.0.1:{control} weight 100
    server b 127.0.0.1:{b} weight 0
"""


class Named(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # HAProxy closing a kept-alive connection is no error here


@dataclass
class Backend:
    admin: Path
    app_url: str

    def runtime(self) -> HAProxyRuntime:
        return HAProxyRuntime(HAProxyRouter(runtime_api=f"unix://{self.admin}", backend="exp"))

    def request(self, shares: dict[str, int]) -> SharesRequest:
        router = HAProxyRouter(runtime_api=f"unix://{self.admin}", backend="exp")
        return SharesRequest(router=router, shares=VariantShares(shares=shares))


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """HAProxy in front of three variants: control and b in its config, c added at run time."""
    if not Path(HAPROXY).exists():
        pytest.skip(f"HAProxy is not installed at {HAPROXY}")
    tmp = tmp_path_factory.mktemp("shares")
    servers = {}
    for name in ("control", "b", "c"):
        server = Quiet(("127.0.0.1", 0), Named)
        server.name = name  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
        servers[name] = server
    ports = {name: server.server_address[1] for name, server in servers.items()}
    app = free_port()
    cfg = tmp / "haproxy.cfg"
    admin = tmp / "admin.sock"
    cfg.write_text(CONFIG.format(admin=admin, app=app, control=ports["control"], b=ports["b"]))
    log = tmp / "haproxy.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([HAPROXY, "-f", str(cfg), "-db"], stdout=out, stderr=out)
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"haproxy exited: {log.read_text(errors='replace')}")
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(admin))
            return True

        wait_for("haproxy", ready, 10, log)
        found = Backend(admin=admin, app_url=f"http://127.0.0.1:{app}/")
        runtime = found.runtime()
        # A variant's server added as a platform adds one per deploy: no reload.
        for command in (f"add server exp/c 127.0.0.1:{ports['c']} weight 0", "enable server exp/c"):
            answer = runtime.command(command)
            assert "New server registered" in answer or not answer, answer
        yield found
    finally:
        stop(proc)
        for server in servers.values():
            server.shutdown()
            server.server_close()


def answers(url: str, requests: int) -> Counter[str]:
    with httpx.Client(timeout=10.0) as http:
        return Counter(http.get(url).text for _ in range(requests))


def near(counted: Counter[str], expected: dict[str, int]) -> bool:
    """Weighted round robin is exact over whole turns, give or take where the last one ended."""
    return set(counted) == set(expected) and all(
        abs(counted[name] - count) <= 2 for name, count in expected.items()
    )


def test_three_variants_set_read_back_and_routed(backend: Backend) -> None:
    runtime = backend.runtime()
    shares = VariantShares(shares={"control": 50, "b": 30, "c": 20})
    assert runtime.set_shares(shares) == shares
    assert backend.runtime().get_shares(["control", "b", "c"]) == shares
    assert runtime.get_weights("control", "b", "c") == [50, 30, 20]
    # 200 requests are two whole turns of weighted round robin.
    counted = answers(backend.app_url, 200)
    assert near(counted, {"control": 100, "b": 60, "c": 40}), counted
    # A variant taken out: no request reaches it any more.
    out = VariantShares(shares={"control": 60, "b": 40, "c": 0})
    assert runtime.set_shares(out) == out
    counted = answers(backend.app_url, 100)
    assert near(counted, {"control": 60, "b": 40}), counted
    # The winner rolled forward.
    winner = VariantShares(shares={"control": 0, "b": 100, "c": 0})
    assert runtime.set_shares(winner) == winner
    assert answers(backend.app_url, 20) == {"b": 20}


def test_weights_set_by_someone_else_read_as_percents(backend: Backend) -> None:
    runtime = backend.runtime()
    for server, weight in (("control", 200), ("b", 100), ("c", 0)):
        runtime.set_weight(server, weight)
    assert runtime.get_shares(["control", "b", "c"]).shares == {"control": 67, "b": 33, "c": 0}
    for server in ("control", "b", "c"):
        runtime.set_weight(server, 0)
    assert runtime.get_shares(["control", "b", "c"]).shares == {"control": 0, "b": 0, "c": 0}
    runtime.set_weight("control", 100)


class Meddled(HAProxyRuntime):
    """Another controller puts b back to 5 right after ours sets it."""

    def set_weight(self, server: str, weight: int) -> None:
        super().set_weight(server, weight)
        if server == "b":
            super().set_weight(server, 5)


def test_read_back_mismatch_is_retryable(backend: Backend) -> None:
    meddled = Meddled(HAProxyRouter(runtime_api=f"unix://{backend.admin}", backend="exp"))
    with pytest.raises(RouterError) as caught:
        meddled.set_shares(VariantShares(shares={"control": 40, "b": 40, "c": 20}))
    assert type(caught.value) is RouterError and caught.value.retryable
    assert "right after being set to control 40% / b 40% / c 20%" in str(caught.value)


def test_activities_set_and_read(backend: Backend) -> None:
    env = ActivityEnvironment()
    wanted = {"control": 34, "b": 33, "c": 33}
    assert env.run(set_variant_shares, backend.request(wanted)).shares == wanted
    read = env.run(read_variant_shares, backend.request({"c": 0, "control": 0, "b": 0}))
    assert read.shares == {"c": 33, "control": 34, "b": 33}


@pytest.mark.parametrize(
    ("shares", "said"),
    [
        ({"control": 100}, "2 to 4 variants, not 1"),
        ({"a": 20, "b": 20, "c": 20, "d": 20, "e": 20}, "2 to 4 variants, not 5"),
        ({"control": 60, "b": 30}, "add up to 90%, not 100%"),
        ({"control": 120, "b": -20}, "from 0 to 100, not control 120, b -20"),
        ({"control": 50, "b;disable server exp/control": 50}, "cannot name a variant"),
    ],
)
def test_shares_an_experiment_cannot_route_are_refused(
    backend: Backend, shares: dict[str, int], said: str
) -> None:
    before = backend.runtime().get_weights("control", "b", "c")
    with pytest.raises(ApplicationError) as caught:
        ActivityEnvironment().run(set_variant_shares, backend.request(shares))
    assert caught.value.non_retryable and caught.value.type == "RouterRefused"
    assert said in str(caught.value)
    # Refused before any weight was set.
    assert backend.runtime().get_weights("control", "b", "c") == before


def test_a_variant_the_backend_lacks_is_refused_by_name(backend: Backend) -> None:
    with pytest.raises(ApplicationError) as caught:
        ActivityEnvironment().run(set_variant_shares, backend.request({"control": 50, "d": 50}))
    assert caught.value.non_retryable
    assert "has no server 'd'" in str(caught.value)


def test_an_unreachable_router_is_retryable(tmp_path: Path) -> None:
    router = HAProxyRouter(runtime_api=f"unix://{tmp_path}/none.sock", backend="exp")
    request = SharesRequest(router=router, shares=VariantShares(shares={"a": 50, "b": 50}))
    with pytest.raises(ApplicationError) as caught:
        ActivityEnvironment().run(read_variant_shares, request)
    assert not caught.value.non_retryable and caught.value.type == "RouterUnreachable"
