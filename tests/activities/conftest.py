"""Real HAProxy and Prometheus for the activity tests, on free 127.0.0.1 ports.

Every process started here is stopped by its pid at teardown, also when startup fails.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, ready: Callable[[], bool], timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} not ready after {timeout}s\n{tail}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@dataclass
class HAProxy:
    admin_socket: Path
    user_socket: Path
    tcp_port: int
    exporter_port: int
    pid: int

    @property
    def unix_api(self) -> str:
        return f"unix://{self.admin_socket}"

    @property
    def tcp_api(self) -> str:
        return f"tcp://127.0.0.1:{self.tcp_port}"


HAPROXY_CFG = """\
global
    stats socket {admin} mode 600 level admin
    stats socket {user} mode 600 level user
    stats socket ipv4@127.0.0.1:{tcp} level admin

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s

frontend exporter
    bind 127.0.0.1:{exporter}
    http-request use-service prometheus-exporter if {{ path /metrics }}

backend app
    balance roundrobin
    server stable 127.0.0.1:{dead_stable} weight 100
    server canary 127.0.0.1:{dead_canary} weight 0

backend fixed
    balance static-rr
    server stable 127.0.0.1:{dead_stable} weight 100
    server canary 127.0.0.1:{dead_canary} weight 0
"""


@pytest.fixture(scope="session")
def haproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HAProxy]:
    if not Path(HAPROXY).exists():
        pytest.skip(f"HAProxy is not installed at {HAPROXY}")
    tmp = tmp_path_factory.mktemp("haproxy")
    server = HAProxy(
        admin_socket=tmp / "admin.sock",
        user_socket=tmp / "user.sock",
        tcp_port=free_port(),
        exporter_port=free_port(),
        pid=0,
    )
    cfg = tmp / "haproxy.cfg"
    cfg.write_text(
        HAPROXY_CFG.format(
            admin=server.admin_socket,
            user=server.user_socket,
            tcp=server.tcp_port,
            exporter=server.exporter_port,
            dead_stable=free_port(),
            dead_canary=free_port(),
        )
    )
    log = tmp / "haproxy.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([HAPROXY, "-f", str(cfg), "-db"], stdout=out, stderr=out)
    server.pid = proc.pid
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"haproxy exited: {log.read_text(errors='replace')}")
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(server.admin_socket))
            socket.create_connection(("127.0.0.1", server.tcp_port), timeout=1).close()
            return True

        wait_for("haproxy", ready, 10, log)
        yield server
    finally:
        stop(proc)


@dataclass
class Prometheus:
    url: str
    pid: int

    def query(self, promql: str) -> list[Any]:
        q = urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{q}", timeout=5) as r:
            return list(json.load(r)["data"]["result"])


PROMETHEUS_CFG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
  - job_name: haproxy
    static_configs: [{{targets: ["127.0.0.1:{exporter}"]}}]
"""


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory, haproxy: HAProxy) -> Iterator[Prometheus]:
    if not Path(PROMETHEUS).exists():
        pytest.skip(f"Prometheus is not installed at {PROMETHEUS}")
    tmp = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    cfg = tmp / "prometheus.yml"
    cfg.write_text(PROMETHEUS_CFG.format(port=port, exporter=haproxy.exporter_port))
    log = tmp / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={cfg}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=out,
        )
    try:
        server = Prometheus(url=f"http://127.0.0.1:{port}", pid=proc.pid)

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {log.read_text(errors='replace')}")
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=1) as r:
                return bool(r.status == 200)

        wait_for("prometheus", ready, 15, log)
        # Service discovery hands targets over after a few seconds: wait for real samples.
        wait_for(
            "prometheus's first scrapes",
            lambda: (
                bool(server.query('up{job="prometheus"}'))
                and bool(server.query('up{job="haproxy"}'))
            ),
            20,
            log,
        )
        yield server
    finally:
        stop(proc)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HTTPRecorder:
    """A local HTTP server: records requests, answers by path (or forwards them)."""

    url: str
    received: list[Received] = field(default_factory=list)


def serve(answer: Callable[[BaseHTTPRequestHandler, Received], None]) -> Iterator[HTTPRecorder]:
    recorder: HTTPRecorder

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            got = Received(self.path, dict(self.headers.items()), self.rfile.read(length))
            recorder.received.append(got)
            answer(self, got)

        do_GET = _handle
        do_POST = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder = HTTPRecorder(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes, kind: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", kind)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture(scope="session")
def webhook() -> Iterator[HTTPRecorder]:
    """Slack-like receiver: /hook... 200 "ok", /gone 404 "no_service", /busy 503."""

    def answer(handler: BaseHTTPRequestHandler, got: Received) -> None:
        if got.path.startswith("/gone"):
            reply(handler, 404, b"no_service", "text/plain")
        elif got.path.startswith("/busy"):
            reply(handler, 503, b"try later", "text/plain")
        else:
            reply(handler, 200, b"ok", "text/plain")

    yield from serve(answer)


@pytest.fixture(scope="session")
def prometheus_proxy(prometheus: Prometheus) -> Iterator[HTTPRecorder]:
    """Forwards to the real Prometheus and records each request's headers."""

    def answer(handler: BaseHTTPRequestHandler, got: Received) -> None:
        try:
            with urllib.request.urlopen(prometheus.url + got.path, timeout=5) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        reply(handler, status, body, "application/json")

    yield from serve(answer)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) but never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])
