"""The demo service: one version of an app, with Prometheus metrics and injectable faults.

Run ``python -m demo.service --port 8001 --version stable``. ``GET /`` answers with the
version, ``GET /metrics`` serves Prometheus metrics, ``POST /fault`` with
``{"error_rate": 0.3, "latency_ms": 200}`` changes its behaviour live.

With ``--flag-file PATH`` it serves both versions as a feature flag decides: each ``GET /``
evaluates the flag (flagd's OpenFeature provider, file mode) with the user id of its
``X-User-Id`` header or ``?user=`` as the targeting key, answers as the variant it got, and
counts it under that variant's ``version`` label (the variants ``--variants`` names, by
default stable and canary). Faults are then per variant
(``/fault?version=canary``); ``GET /variant?user=ID`` says what a user gets now and
``GET /split?users=N`` how the users ``user-0`` ... ``user-N-1`` (the load generator's
population) are split.

A version is any name of letters, digits, '_', '.', ':' or '-': an experiment's third
variant runs as ``--version canary-b``, a server of the same HAProxy backend.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

try:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.exposition import generate_latest
except ImportError as missing:  # a production install: the demo service is an extra
    raise ImportError(
        f"{missing.name} is not installed: the demo service needs the demo extra:"
        " pip install 'durable-rollouts[demo]'"
    ) from missing

if TYPE_CHECKING:
    from demo.flags import FlagReader

MAX_LATENCY_MS = 60_000
MAX_SPLIT_USERS = 100_000
VERSIONS = ("stable", "canary")
# A version's name, as a server of an HAProxy backend or a variant of a flag may be named.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")


@dataclass(frozen=True)
class Fault:
    """What the service does wrong on purpose: a share of 500s and added latency."""

    error_rate: float = 0.0
    latency_ms: int = 0

    def changed(self, data: Any) -> Fault:
        """A copy with the fields given in data (a JSON object); ValueError names a bad field."""
        if not isinstance(data, dict):
            raise ValueError('send a JSON object like {"error_rate": 0.3, "latency_ms": 200}')
        unknown = sorted(set(data) - {"error_rate", "latency_ms"})
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}: use error_rate, latency_ms")
        rate = data.get("error_rate", self.error_rate)
        latency = data.get("latency_ms", self.latency_ms)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ValueError(f"error_rate {rate!r}: use a number from 0 to 1")
        if isinstance(latency, bool) or not isinstance(latency, int | float):
            raise ValueError(f"latency_ms {latency!r}: use a whole number of milliseconds")
        if not 0 <= latency <= MAX_LATENCY_MS:
            raise ValueError(f"latency_ms {latency!r}: use 0 to {MAX_LATENCY_MS}")
        return Fault(error_rate=float(rate), latency_ms=int(latency))


class DemoMetrics:
    """The service's Prometheus metrics, in a registry of its own."""

    def __init__(self, version: str, *others: str) -> None:
        self.version = version
        self.versions = (version, *others)
        self.registry = CollectorRegistry()
        self.duration = Histogram(
            "demo_request_duration_seconds",
            "Time to answer GET /, fault latency included.",
            ["version"],
            registry=self.registry,
        )
        self.requests = Counter(
            "demo_requests_total",
            "Requests to GET / by status code.",
            ["version", "code"],
            registry=self.registry,
        )
        self.error_rate = Gauge(
            "demo_fault_error_rate", "Injected share of 500s.", ["version"], registry=self.registry
        )
        self.latency = Gauge(
            "demo_fault_latency_seconds",
            "Injected latency.",
            ["version"],
            registry=self.registry,
        )
        # Zero series from the start, so rates exist before the first error happens.
        for each in self.versions:
            for code in ("200", "500"):
                self.requests.labels(each, code)
            self.show(Fault(), each)

    def show(self, fault: Fault, version: str | None = None) -> None:
        """Publish the current fault of ``version`` (default: the service's own) as gauges."""
        self.error_rate.labels(version or self.version).set(fault.error_rate)
        self.latency.labels(version or self.version).set(fault.latency_ms / 1000)

    def observe(self, code: int, seconds: float, version: str | None = None) -> None:
        """Count one answered request of ``version`` (default: the service's own)."""
        self.requests.labels(version or self.version, str(code)).inc()
        self.duration.labels(version or self.version).observe(seconds)


class DemoServer(ThreadingHTTPServer):
    """An HTTP server that knows its version, its metrics and its current fault."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        version: str,
        fault: Fault,
        flags: FlagReader | None = None,
        variants: tuple[str, ...] = VERSIONS,
    ) -> None:
        super().__init__(address, DemoHandler)
        self.version = version
        self.flags = flags
        # With a flag, one process serves every variant and each has its own fault.
        self.versions = variants if flags is not None else (version,)
        if version not in self.versions:
            self.versions = (version, *self.versions)
        others = [v for v in self.versions if v != version]
        self.metrics = DemoMetrics(version, *others)
        self._faults = dict.fromkeys(self.versions, Fault()) | {version: fault}
        self._lock = threading.Lock()
        self.metrics.show(fault)

    @property
    def fault(self) -> Fault:
        return self.fault_of(self.version)

    def fault_of(self, version: str) -> Fault:
        with self._lock:
            return self._faults[version]

    def variant_for(self, user: str | None, attributes: dict[str, Any] | None = None) -> str:
        """The version a request of ``user`` gets: the flag's variant, or the service's own."""
        if self.flags is None:
            return self.version
        variant = self.flags.variant(user, default=self.version, attributes=attributes)
        return variant if variant in self._faults else self.version

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore peers that hang up (HAProxy's health checks reset their connections)."""
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError):
            super().handle_error(request, client_address)

    def set_fault(self, fault: Fault, version: str | None = None) -> None:
        """Replace the fault of ``version`` (default: the service's own) from now on."""
        version = version or self.version
        with self._lock:
            self._faults[version] = fault
        self.metrics.show(fault, version)
        print(f"fault of {version} now {asdict(fault)}", flush=True)


class DemoHandler(BaseHTTPRequestHandler):
    """Routes: GET /, /metrics, /healthz, /fault; POST /fault."""

    # HTTP/1.1 keeps connections open, so HAProxy and the load generator reuse them.
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: with Nagle's algorithm on, the body waits
    # for the peer's delayed ACK, adding 40 ms to every answer on a kept-alive connection.
    disable_nagle_algorithm = True
    server: DemoServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._answer_app()
        elif path == "/metrics":
            self._send(200, generate_latest(self.server.metrics.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._send(200, b"ok\n")
        elif path == "/fault":
            version = self._version()
            if version is not None:
                self._send_json(200, asdict(self.server.fault_of(version)))
        elif path == "/variant" and self.server.flags is not None:
            user = self._query("user")
            self._send_json(200, {"user": user, "version": self.server.variant_for(user)})
        elif path == "/split" and self.server.flags is not None:
            self._answer_split()
        else:
            self._send(404, b"not found\n")

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/fault":
            self._send(404, b"not found\n")
            return
        version = self._version()
        if version is None:
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            fault = self.server.fault_of(version).changed(
                json.loads(self.rfile.read(length) or b"{}")
            )
        except (ValueError, json.JSONDecodeError) as error:
            self._send_json(400, {"error": str(error)})
            return
        self.server.set_fault(fault, version)
        self._send_json(200, asdict(fault))

    def _context(self) -> dict[str, Any]:
        """The request as a flag's rules read it: headers (lower-case names) and cookies."""
        cookies = SimpleCookie()
        with contextlib.suppress(CookieError):
            cookies.load(self.headers.get("Cookie", ""))
        return {
            "header": {name.lower(): value for name, value in self.headers.items()},
            "cookie": {name: morsel.value for name, morsel in cookies.items()},
        }

    def _answer_app(self) -> None:
        began = time.perf_counter()
        user = self.headers.get("X-User-Id") or self._query("user")
        version = self.server.variant_for(user, self._context())
        fault = self.server.fault_of(version)
        if fault.latency_ms:
            time.sleep(fault.latency_ms / 1000)
        failed = random.random() < fault.error_rate
        code = 500 if failed else 200
        body = f"{'error from ' if failed else ''}{version}\n".encode()
        self._send(code, body, version=version)
        self.server.metrics.observe(code, time.perf_counter() - began, version)

    def _answer_split(self) -> None:
        """How the load generator's users split now: ``{"users": N, "stable": .., ...}``."""
        text = self._query("users") or "1000"
        if not text.isdigit() or not 0 < int(text) <= MAX_SPLIT_USERS:
            self._send_json(400, {"error": f"users: use 1 to {MAX_SPLIT_USERS}"})
            return
        users = int(text)
        counts = dict.fromkeys(self.server.versions, 0)
        for i in range(users):
            counts[self.server.variant_for(f"user-{i}")] += 1
        percent = 100.0 * counts.get("canary", 0) / users
        self._send_json(200, {"users": users, **counts, "canary_percent": percent})

    def _query(self, name: str) -> str | None:
        values = parse_qs(self.path.partition("?")[2]).get(name)
        return values[0] if values else None

    def _version(self) -> str | None:
        """The version a /fault request names (default: the service's own), or None if sent 400."""
        version = self._query("version") or self.server.version
        if version not in self.server.versions:
            known = ", ".join(self.server.versions)
            self._send_json(400, {"error": f"version {version!r}: this service serves {known}"})
            return None
        return version

    def _send_json(self, code: int, data: dict[str, Any]) -> None:
        self._send(code, (json.dumps(data) + "\n").encode(), "application/json")

    def _send(
        self, code: int, body: bytes, content_type: str = "text/plain", version: str = ""
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Version", version or self.server.version)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Per-request lines at 50 requests a second would only bury the useful ones.
        pass


def serve(server: DemoServer) -> None:
    """Serve until SIGTERM or Ctrl-C, then close the socket."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    host, port = server.server_address[:2]
    print(f"demo {server.version} listening on http://{host!s}:{port}/", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> None:
    """Command line entry: ``python -m demo.service --port P --version stable|canary|NAME``."""
    parser = argparse.ArgumentParser(prog="python -m demo.service", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--version", type=_version, required=True, help="stable, canary, or another name"
    )
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument(
        "--flag-file",
        default=os.environ.get("DEMO_FLAG_FILE") or None,
        help=(
            "serve both versions as this flagd flag file decides, per user (see above;"
            " default: $DEMO_FLAG_FILE, else none)"
        ),
    )
    parser.add_argument(
        "--variants",
        type=_variants,
        default=VERSIONS,
        help="with a flag file: the flag's variants it serves, comma-separated"
        f" (default: {','.join(VERSIONS)})",
    )
    parser.add_argument("--flag", default=None, help="the flag's key (default: demo-version)")
    parser.add_argument(
        "--poll-ms", type=int, default=None, help="how often to look at the flag file (ms)"
    )
    args = parser.parse_args(argv)
    try:
        fault = Fault().changed({"error_rate": args.error_rate, "latency_ms": args.latency_ms})
    except ValueError as error:
        parser.error(str(error))
    flags = None
    if args.flag_file is not None:
        # Imported here: the HAProxy demo needs no OpenFeature.
        from demo.flags import FLAG, POLL_MS, FlagReader

        flags = FlagReader(args.flag_file, args.flag or FLAG, poll_ms=args.poll_ms or POLL_MS)
        print(f"evaluating flag {flags.flag} from {args.flag_file} every {flags.poll_ms} ms")
    serve(DemoServer((args.host, args.port), args.version, fault, flags, args.variants))


def _version(text: str) -> str:
    if not SAFE_NAME.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: name a version with letters, digits, '_', '.', ':' or '-'"
        )
    return text


def _variants(text: str) -> tuple[str, ...]:
    names = tuple(_version(name.strip()) for name in text.split(",") if name.strip())
    if len(set(names)) != len(names) or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: name each variant once, comma-separated")
    return names


if __name__ == "__main__":
    main()
