"""A stage's match on a real HAProxy: set, read back and cleared through a runtime map.

HAProxy here fronts two live servers that answer their own name, so each test also checks
where requests really go, not only what the runtime API reports.
"""

from __future__ import annotations

import subprocess
import threading
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.errors import RouterError, RouterRefused
from activities.rollout import shift_traffic
from activities.routers import HAProxyRuntime
from activities.routers.haproxy_match import map_key
from plans import HAProxyRouter, RequestMatch, ShiftRequest, TrafficSplit

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
    bind 127.0.0.1:{port}
    default_backend app

backend app
    balance roundrobin
    use-server canary if {{ req.hdrs,map_reg({map}) -m found }}
    server stable 127.0.0.1:{stable} weight 100
    server canary 127.0.0.1:{canary} weight 0

backend plain
    balance roundrobin
    server stable 127.0.0.1:{stable} weight 100
    server canary 127.0.0.1:{canary} weight 0
"""


@dataclass
class MatchingHAProxy:
    admin_socket: Path
    match_map: Path
    port: int

    def router(self, backend: str = "app", match_map: str | None = "") -> HAProxyRuntime:
        spec = HAProxyRouter(
            runtime_api=f"unix://{self.admin_socket}",
            backend=backend,
            timeout="2s",
            match_map=str(self.match_map) if match_map == "" else match_map,
        )
        return HAProxyRuntime(spec)

    def versions(self, count: int, headers: dict[str, str] | None = None) -> Counter[str]:
        """Which server answered each of ``count`` requests through HAProxy."""
        seen: Counter[str] = Counter()
        for _ in range(count):
            request = urllib.request.Request(
                f"http://127.0.0.1:{self.port}/", headers=headers or {}
            )
            with urllib.request.urlopen(request, timeout=5) as answer:
                seen[answer.read().decode()] += 1
        return seen


def _named_server(name: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@pytest.fixture(scope="module")
def haproxy_with_map(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MatchingHAProxy]:
    if not Path(HAPROXY).exists():
        pytest.skip(f"HAProxy is not installed at {HAPROXY}")
    tmp = tmp_path_factory.mktemp("haproxy-match")
    servers = {name: _named_server(name) for name in ("stable", "canary")}
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers.values()]
    for thread in threads:
        thread.start()
    proxy = MatchingHAProxy(tmp / "admin.sock", tmp / "app-canary.map", free_port())
    proxy.match_map.write_text("")  # HAProxy loads the file at start; entries come at run time
    cfg = tmp / "haproxy.cfg"
    cfg.write_text(
        CONFIG.format(
            admin=proxy.admin_socket,
            port=proxy.port,
            map=proxy.match_map,
            stable=servers["stable"].server_address[1],
            canary=servers["canary"].server_address[1],
        )
    )
    log = tmp / "haproxy.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([HAPROXY, "-f", str(cfg), "-db"], stdout=out, stderr=out)
    try:
        wait_for("haproxy", lambda: proxy.versions(1)["stable"] == 1, 10, log)
        yield proxy
    finally:
        stop(proc)
        for server in servers.values():
            server.shutdown()
            server.server_close()


@pytest.fixture
def proxy(haproxy_with_map: MatchingHAProxy) -> Iterator[MatchingHAProxy]:
    yield haproxy_with_map
    haproxy_with_map.router().set_split("stable", "canary", split(0))


def split(percent: int, **match: str) -> TrafficSplit:
    return TrafficSplit.canary_percent(percent, RequestMatch(**match) if match else None)


@pytest.mark.parametrize(
    ("match", "matching", "not_matching"),
    [
        (
            {"header": "x-user-group", "exact": "internal"},
            [{"x-user-group": "internal"}, {"X-User-Group": "internal"}],
            [{"x-user-group": "internals"}, {"x-user-group": "Internal"}, {"x-other": "internal"}],
        ),
        (
            {"header": "x-user-group", "prefix": "staff-"},
            [{"x-user-group": "staff-paris"}, {"x-user-group": "staff-"}],
            [{"x-user-group": "ex-staff-paris"}, {"x-user-group": "staff"}],
        ),
        (
            {"header": "x-build", "regex": "beta-[0-9]+"},
            [{"x-build": "beta-12"}],
            [{"x-build": "beta-12x"}, {"x-build": "alpha-beta-1"}, {"x-build": "beta-"}],
        ),
        (
            {"cookie": "group", "exact": "internal"},
            [{"Cookie": "group=internal"}, {"Cookie": "a=1; group=internal; b=2"}],
            [{"Cookie": "group=internal2"}, {"Cookie": "mygroup=internal"}, {}],
        ),
        (
            {"cookie": "tier", "regex": "gold|platinum"},
            [{"Cookie": "tier=gold"}, {"Cookie": "x=1; tier=platinum"}],
            [{"Cookie": "tier=silver"}, {"Cookie": "tier=golden"}],
        ),
    ],
)
def test_a_match_sends_its_requests_to_the_canary_at_weight_zero(
    proxy: MatchingHAProxy,
    match: dict[str, str],
    matching: list[dict[str, str]],
    not_matching: list[dict[str, str]],
) -> None:
    router = proxy.router()
    wanted = split(0, **match)
    assert router.set_split("stable", "canary", wanted) == wanted
    assert router.get_split("stable", "canary") == wanted
    for headers in matching:
        assert proxy.versions(5, headers) == {"canary": 5}, headers
    for headers in not_matching:
        assert proxy.versions(5, headers) == {"stable": 5}, headers


def test_a_shift_without_match_clears_it(proxy: MatchingHAProxy) -> None:
    router = proxy.router()
    router.set_split("stable", "canary", split(0, header="x-user-group", exact="internal"))
    assert router.set_split("stable", "canary", split(0)) == split(0)
    assert router.get_split("stable", "canary").match is None
    assert proxy.match_map.read_text() == ""  # only HAProxy's memory changed
    assert proxy.versions(5, {"x-user-group": "internal"}) == {"stable": 5}


def test_a_new_match_replaces_the_old_one(proxy: MatchingHAProxy) -> None:
    router = proxy.router()
    router.set_split("stable", "canary", split(0, header="x-user-group", exact="internal"))
    router.set_split("stable", "canary", split(10, cookie="beta", exact="yes"))
    assert router.get_split("stable", "canary") == split(10, cookie="beta", exact="yes")
    assert proxy.versions(3, {"Cookie": "beta=yes"}) == {"canary": 3}
    assert "x-user-group" not in router.command(f"show map {proxy.match_map}")


def test_entries_lost_in_a_reload_read_back_as_no_match(proxy: MatchingHAProxy) -> None:
    router = proxy.router()
    wanted = split(0, header="x-user-group", exact="internal")
    router.set_split("stable", "canary", wanted)
    # A reload starts from the file, which is empty: as if someone ran `clear map`.
    assert router.command(f"clear map {proxy.match_map}") == ""
    now = router.get_split("stable", "canary")
    assert now.match is None and not now.routes_like(wanted)
    assert router.set_split("stable", "canary", wanted) == wanted  # what drift repair does


def test_entries_no_rollout_wrote_are_an_error_and_the_next_shift_replaces_them(
    proxy: MatchingHAProxy,
) -> None:
    router = proxy.router()
    assert router.command(f"add map {proxy.match_map} ^x-team:.* someone") == ""
    with pytest.raises(RouterError, match="holds 1 entry no rollout wrote"):
        router.get_split("stable", "canary")
    wanted = split(0, header="x-user-group", exact="internal")
    assert router.set_split("stable", "canary", wanted) == wanted
    assert proxy.versions(3, {"x-team": "a"}) == {"stable": 3}


def test_a_regex_and_its_backslashes_reach_haproxy_intact(proxy: MatchingHAProxy) -> None:
    router = proxy.router()
    wanted = split(0, header="x-build", regex=r"v\d+\.\d+")
    router.set_split("stable", "canary", wanted)
    assert router.get_split("stable", "canary") == wanted
    assert map_key(RequestMatch(header="x-build", regex=r"v\d+\.\d+")) in router.command(
        f"show map {proxy.match_map}"
    )
    assert proxy.versions(3, {"x-build": "v2.10"}) == {"canary": 3}
    assert proxy.versions(3, {"x-build": "v2x10"}) == {"stable": 3}


def test_weights_still_split_the_requests_that_do_not_match(proxy: MatchingHAProxy) -> None:
    router = proxy.router()
    router.set_split("stable", "canary", split(50, header="x-user-group", exact="internal"))
    assert proxy.versions(20, {"x-user-group": "internal"}) == {"canary": 20}
    # Round robin at equal weights alternates: exactly half of an even count each.
    assert proxy.versions(20) == {"stable": 10, "canary": 10}


def test_a_router_without_match_map_refuses_a_match(proxy: MatchingHAProxy) -> None:
    router = proxy.router(match_map=None)
    with pytest.raises(RouterRefused, match="has no match_map"):
        router.set_split("stable", "canary", split(0, header="x-user-group", exact="internal"))
    assert router.get_split("stable", "canary") == split(0)


def test_a_map_haproxy_does_not_have_is_refused_with_the_config_line(
    proxy: MatchingHAProxy, tmp_path: Path
) -> None:
    router = proxy.router(backend="plain", match_map=str(tmp_path / "nowhere.map"))
    with pytest.raises(RouterRefused) as refused:
        router.set_split("stable", "canary", split(0, header="x-user-group", exact="internal"))
    assert "HAProxy has no map" in str(refused.value)
    assert "use-server CANARY if { req.hdrs,map_reg(" in str(refused.value)


def test_the_shift_activity_refuses_a_match_its_router_cannot_route(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Nothing listens at this address: a command sent would fail as unreachable instead.
    request = ShiftRequest(
        router=HAProxyRouter(runtime_api=f"tcp://127.0.0.1:{free_port()}", backend="app"),
        stable="stable",
        canary="canary",
        split=split(0, header="x-user-group", exact="internal"),
    )
    with pytest.raises(ApplicationError) as caught:
        ActivityEnvironment().run(shift_traffic, request)
    assert caught.value.type == "RouterRefused" and caught.value.non_retryable
    assert "add match_map:" in caught.value.message
    monkeypatch.setattr(HAProxyRouter, "supports_match", False)
    with pytest.raises(ApplicationError) as caught:
        ActivityEnvironment().run(shift_traffic, request)
    assert "cannot send requests to the canary by header x-user-group" in caught.value.message
