"""The web metric source against a local HTTP server: values, and every way of having none."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from activities import gates as gate_checks
from activities.errors import MetricsRefused
from activities.metrics import provider_for
from activities.metrics.web import WebProvider
from plans import GateOutcome, gate_from
from plans.sources import WebSource


class Endpoint(ThreadingHTTPServer):
    """Answers GET/POST /stats?version=NAME from ``answers``; records each request."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers: dict[str, Any] = {}
        self.status = 200
        self.delay_s = 0.0
        self.raw: bytes | None = None
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class _Handler(BaseHTTPRequestHandler):
    server: Endpoint

    def do_GET(self) -> None:
        self._answer(b"")

    def do_POST(self) -> None:
        self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _answer(self, body: bytes) -> None:
        server = self.server
        server.seen.append((self.command, self.path, dict(self.headers), body))
        time.sleep(server.delay_s)
        version = parse_qs(urlsplit(self.path).query).get("version", [""])[0]
        content = (
            server.raw
            if server.raw is not None
            else json.dumps(server.answers.get(version, {})).encode()
        )
        self.send_response(server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


PLACEHOLDERS = {"canary": "canary", "stable": "stable", "service": "shop"}


def source(endpoint: Endpoint, **extra: Any) -> WebSource:
    fields = {"url": f"{endpoint.url}/stats?version=$target&window=$window", **extra}
    return WebSource.model_validate({"kind": "web", "timeout": "2s", **fields})


def check(src: WebSource, *gates: dict[str, Any]) -> list[Any]:
    provider = provider_for(src)
    try:
        return gate_checks.evaluate(
            [gate_from(g) for g in gates], provider, PLACEHOLDERS, source=src, sleep=lambda _: None
        )
    finally:
        provider.close()


SUCCESS = {"name": "task-success", "query": "$.success_rate", "min": 0.95}


def test_a_threshold_gate_reads_the_canarys_value_with_its_window(endpoint: Endpoint) -> None:
    endpoint.answers["canary"] = {"success_rate": 0.99, "tasks": 400}
    (verdict,) = check(source(endpoint), {**SUCCESS, "window": "45s"})
    assert verdict.outcome == GateOutcome.PASS
    assert verdict.value == pytest.approx(0.99)
    assert endpoint.seen[-1][1] == "/stats?version=canary&window=45"


def test_a_relative_gate_asks_the_same_url_for_each_version_with_samples(
    endpoint: Endpoint,
) -> None:
    endpoint.answers["canary"] = {"error_rate": 0.08, "tasks": 300}
    endpoint.answers["stable"] = {"error_rate": 0.01, "tasks": 900}
    gate = {
        "name": "errors",
        "kind": "relative",
        "query": "$.error_rate",
        "samples_query": "$.tasks",
        "min_samples": 100,
        "factor": 1.5,
        "margin": 0.01,
    }
    (verdict,) = check(source(endpoint), gate)
    assert verdict.outcome == GateOutcome.FAIL
    assert (verdict.canary, verdict.stable) == (pytest.approx(0.08), pytest.approx(0.01))
    assert (verdict.canary_samples, verdict.stable_samples) == (300, 900)
    asked = sorted(path for _, path, _, _ in endpoint.seen)
    assert asked == [
        "/stats?version=canary&window=60",
        "/stats?version=canary&window=60",
        "/stats?version=stable&window=60",
        "/stats?version=stable&window=60",
    ]


def test_a_statistical_gate_reads_one_point_per_step_from_a_list(endpoint: Endpoint) -> None:
    endpoint.answers["canary"] = {"steps": [{"ms": v} for v in (200, 210, 190, 205, 220, 215)]}
    endpoint.answers["stable"] = {"steps": [{"ms": v} for v in (100, 105, 98, 102, 99, None)]}
    gate = {
        "name": "latency",
        "kind": "statistical",
        "test": "mann-whitney",
        "query": "$.steps[*].ms",
        "factor": 1.2,
        "window": "60s",
        "step": "10s",
        "confidence": 0.95,
    }
    (verdict,) = check(source(endpoint), gate)
    assert verdict.outcome == GateOutcome.FAIL, verdict.reason


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ({"tasks": 3}, "no field at $.success_rate"),
        ({"success_rate": "high"}, "was not a number at $.success_rate"),
        ({"success_rate": None}, "was not a number at $.success_rate"),
        ({"success_rate": [0.9, 0.8]}, "picks 2 values"),
    ],
)
def test_no_number_is_inconclusive_with_the_reason(
    endpoint: Endpoint, answer: dict[str, Any], why: str
) -> None:
    endpoint.answers["canary"] = answer
    (verdict,) = check(source(endpoint), SUCCESS)
    assert verdict.outcome == GateOutcome.INCONCLUSIVE
    assert why in verdict.reason
    assert "high" not in verdict.reason  # what stood there instead is never echoed


def test_an_answer_that_is_not_json_is_inconclusive(endpoint: Endpoint) -> None:
    endpoint.raw = b"<html>maintenance</html>"
    (verdict,) = check(source(endpoint), SUCCESS)
    assert verdict.outcome == GateOutcome.INCONCLUSIVE
    assert "not JSON" in verdict.reason and "maintenance" not in verdict.reason


def test_http_errors_are_inconclusive_and_say_the_status(endpoint: Endpoint) -> None:
    endpoint.status = 503
    (verdict,) = check(source(endpoint), SUCCESS)
    assert verdict.outcome == GateOutcome.INCONCLUSIVE
    assert "web unreachable" in verdict.reason and "HTTP 503" in verdict.reason
    attempts = len(endpoint.seen)
    assert attempts == gate_checks.ATTEMPTS  # a server error is retried, then given up
    endpoint.status = 404
    (verdict,) = check(source(endpoint), SUCCESS)
    assert verdict.outcome == GateOutcome.INCONCLUSIVE
    assert "HTTP 404" in verdict.reason and "check the URL" in verdict.reason
    assert len(endpoint.seen) == attempts + 1  # a refusal is not retried


def test_a_slow_endpoint_times_out_inconclusive(endpoint: Endpoint) -> None:
    endpoint.delay_s = 1.5
    (verdict,) = check(source(endpoint, timeout="1s"), SUCCESS)
    assert verdict.outcome == GateOutcome.INCONCLUSIVE
    assert "did not answer within 1s" in verdict.reason


def test_a_closed_port_is_unreachable() -> None:
    closed = WebSource(url="http://127.0.0.1:9/stats?version=$target", timeout=timedelta(seconds=1))
    (verdict,) = gate_checks.evaluate(
        [gate_from(SUCCESS)],
        provider_for(closed),
        PLACEHOLDERS,
        source=closed,
        sleep=lambda _: None,
    )
    assert verdict.outcome == GateOutcome.INCONCLUSIVE
    assert "cannot be reached" in verdict.reason


def test_post_sends_the_body_and_secret_headers_come_from_the_environment(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLOUT_PLAN_SECRETS", "TASKS_*")
    monkeypatch.setenv("TASKS_TOKEN", "s3cret")
    endpoint.answers[""] = {"success_rate": 1.0}
    src = source(
        endpoint,
        url=f"{endpoint.url}/stats",
        method="POST",
        body='{"version": "$target", "service": "$service"}',
        headers={"Accept": "application/json"},
        secret_headers={"Authorization": "TASKS_TOKEN"},
    )
    (verdict,) = check(src, SUCCESS)
    assert verdict.outcome == GateOutcome.PASS
    method, _, headers, body = endpoint.seen[-1]
    assert method == "POST"
    assert json.loads(body) == {"version": "canary", "service": "shop"}
    assert headers["Authorization"] == "s3cret" and headers["Accept"] == "application/json"
    assert "s3cret" not in src.model_dump_json()


def test_a_missing_secret_is_refused_by_name(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLOUT_PLAN_SECRETS", "TASKS_TOKEN")
    monkeypatch.delenv("TASKS_TOKEN", raising=False)
    src = source(endpoint, secret_headers={"Authorization": "TASKS_TOKEN"})
    with pytest.raises(MetricsRefused, match="TASKS_TOKEN is not set"):
        WebProvider(src)
