"""HAProxyRuntime against a real HAProxy: exact weights in, exact weights out."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from activities.errors import RouterError, RouterRefused, RouterUnreachable
from activities.routers import HAProxyRuntime, TrafficRouter, router_for
from plans import HAProxyRouter, TrafficSplit

from .conftest import HAProxy, free_port


def runtime(api: str, backend: str = "app", timeout: str = "2s") -> TrafficRouter:
    return router_for(HAProxyRouter(runtime_api=api, backend=backend, timeout=timeout))


def split(stable: int, canary: int) -> TrafficSplit:
    return TrafficSplit(stable_weight=stable, canary_weight=canary)


@pytest.mark.parametrize("via", ["unix", "path", "tcp"])
def test_round_trip_exact_weights(haproxy: HAProxy, via: str) -> None:
    api = {
        "unix": haproxy.unix_api,
        "path": str(haproxy.admin_socket),
        "tcp": haproxy.tcp_api,
    }[via]
    router = runtime(api)
    assert router.set_split("stable", "canary", split(75, 25)) == split(75, 25)
    assert router.get_split("stable", "canary") == split(75, 25)
    assert router.set_split("stable", "canary", split(0, 100)) == split(0, 100)
    assert runtime(haproxy.unix_api).get_split("stable", "canary") == split(0, 100)
    assert router.set_split("stable", "canary", split(100, 0)) == split(100, 0)


def test_canary_percent_lands_as_weights(haproxy: HAProxy) -> None:
    got = runtime(haproxy.unix_api).set_split("stable", "canary", TrafficSplit.canary_percent(5))
    assert (got.stable_weight, got.canary_weight, got.percent) == (95, 5, 5.0)


def test_registry_builds_haproxy() -> None:
    spec = HAProxyRouter(runtime_api="/run/haproxy.sock", backend="app")
    assert isinstance(router_for(spec), HAProxyRuntime)


class Recording(HAProxyRuntime):
    def __init__(self, spec: HAProxyRouter) -> None:
        super().__init__(spec)
        self.sent: list[str] = []

    def command(self, line: str) -> str:
        self.sent.append(line)
        return super().command(line)


def test_raises_one_weight_before_lowering_the_other(haproxy: HAProxy) -> None:
    router = Recording(HAProxyRouter(runtime_api=haproxy.unix_api, backend="app"))
    router.set_split("stable", "canary", split(0, 100))
    router.sent.clear()
    # Back to stable: stable goes up first, so the backend never has both at 0.
    router.set_split("stable", "canary", split(100, 0))
    sets = [c for c in router.sent if c.startswith("set")]
    assert sets == ["set weight app/stable 100", "set weight app/canary 0"]
    router.sent.clear()
    router.set_split("stable", "canary", split(50, 50))
    sets = [c for c in router.sent if c.startswith("set")]
    assert sets == ["set weight app/canary 50", "set weight app/stable 50"]


class Meddled(HAProxyRuntime):
    """Another controller changes the canary's weight right after ours."""

    def set_weight(self, server: str, weight: int) -> None:
        super().set_weight(server, weight)
        if server == "canary":
            super().set_weight(server, 7)


def test_read_back_mismatch_is_a_retryable_router_error(haproxy: HAProxy) -> None:
    router = Meddled(HAProxyRouter(runtime_api=haproxy.unix_api, backend="app"))
    with pytest.raises(RouterError) as caught:
        router.set_split("stable", "canary", split(80, 20))
    assert type(caught.value) is RouterError
    assert caught.value.retryable
    assert "canary 7" in str(caught.value)
    runtime(haproxy.unix_api).set_split("stable", "canary", split(100, 0))


def test_unknown_server_is_refused_by_name(haproxy: HAProxy) -> None:
    with pytest.raises(RouterRefused) as caught:
        runtime(haproxy.unix_api).set_split("stable", "canary-v2", split(90, 10))
    message = str(caught.value)
    assert "'canary-v2'" in message
    assert "No such server" in message
    assert not caught.value.retryable


def test_unknown_backend_is_refused_by_name(haproxy: HAProxy) -> None:
    with pytest.raises(RouterRefused, match=r"no backend 'shop'.*router\.backend"):
        runtime(haproxy.tcp_api, backend="shop").get_split("stable", "canary")


def test_user_level_socket_is_refused(haproxy: HAProxy) -> None:
    with pytest.raises(RouterRefused, match="level admin"):
        runtime(str(haproxy.user_socket)).set_split("stable", "canary", split(90, 10))


def test_static_backend_is_refused(haproxy: HAProxy) -> None:
    with pytest.raises(RouterRefused, match="roundrobin"):
        runtime(haproxy.unix_api, backend="fixed").set_split("stable", "canary", split(90, 10))


def test_unsafe_server_name_is_refused_before_sending(haproxy: HAProxy) -> None:
    with pytest.raises(RouterRefused, match="not a valid HAProxy server name"):
        runtime(haproxy.unix_api).get_split("stable", "canary;disable server app/stable")


def test_missing_socket_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(RouterUnreachable, match="no HAProxy runtime socket at") as caught:
        runtime(f"unix://{tmp_path / 'gone.sock'}").get_split("stable", "canary")
    assert caught.value.retryable


def test_stale_socket_file_is_unreachable(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))  # bound, never listening: like a crashed HAProxy's leftover
    with pytest.raises(RouterUnreachable, match="nothing listens"):
        runtime(str(path)).get_split("stable", "canary")


def test_closed_tcp_port_is_unreachable() -> None:
    port = free_port()
    with pytest.raises(RouterUnreachable, match=f"127.0.0.1:{port}"):
        runtime(f"tcp://127.0.0.1:{port}").get_split("stable", "canary")


def test_silent_runtime_api_times_out(silent_port: int) -> None:
    with pytest.raises(RouterUnreachable, match=r"did not answer .* within 0\.2s"):
        runtime(f"tcp://127.0.0.1:{silent_port}", timeout="200ms").get_split("stable", "canary")


def test_a_split_is_read_on_one_connection_and_a_cut_answer_is_unreachable() -> None:
    # A runtime API that answers the first command only, then closes: as if cut mid-answer.
    received: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]

        def answer_once() -> None:
            conn, _ = server.accept()
            with conn:
                received.append(conn.recv(4096))
                conn.sendall(b"100 (initial 100)\n\n")

        thread = threading.Thread(target=answer_once, daemon=True)
        thread.start()
        with pytest.raises(RouterUnreachable, match="without answering `get weight app/canary`"):
            runtime(f"tcp://127.0.0.1:{port}").get_split("stable", "canary")
        thread.join(timeout=5)
    assert received == [b"get weight app/stable; get weight app/canary\n"]


def test_each_weight_of_one_read_is_its_servers(haproxy: HAProxy) -> None:
    router = runtime(haproxy.tcp_api)
    router.set_split("stable", "canary", split(70, 30))
    assert isinstance(router, HAProxyRuntime)
    assert router.get_weights("canary", "stable", "canary") == [30, 70, 30]
    with pytest.raises(RouterRefused, match="No such server"):
        router.get_weights("stable", "nope")
    router.set_split("stable", "canary", split(100, 0))
