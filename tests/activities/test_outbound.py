"""What plans name, end to end against real loopback servers: the variables a worker gives
plans, the addresses it refuses, and answers that never end or never finish."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import gates as gate_checks
from activities.errors import MetricsRefused, MetricsTimeout, NotifierRefused
from activities.hooks import call_hook
from activities.metrics import provider_for
from activities.metrics.prometheus import PrometheusProvider
from activities.notifiers import WebhookNotifier
from activities.notifiers.apprise_channel import AppriseNotifier
from activities.notifiers.messages import RunLink, render
from activities.outbound import OutboundPolicy, OutboundRefused, Session
from activities.plan_secrets import SecretRefused
from plans import AppriseChannel, GateOutcome, Notification, PrometheusSource, gate_from
from plans.hooks import Hook, HookCall, HookPayload
from plans.sources import WebSource

GIGABYTE = 1024**3


@dataclass
class RawServer:
    """A TCP server on loopback that answers each connection with ``answer(connection)``."""

    answer: Callable[[socket.socket, RawServer], None]
    connections: int = 0
    sent: int = 0
    requests: list[bytes] = field(default_factory=list)
    listener: socket.socket = field(default_factory=socket.socket)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            try:
                self.requests.append(conn.recv(65536))  # small requests come in one piece
                self.answer(conn, self)
            except OSError:
                pass  # the worker hung up: what these tests want


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket, RawServer], None]], RawServer]]:
    started: list[RawServer] = []

    def start(answer: Callable[[socket.socket, RawServer], None]) -> RawServer:
        server = RawServer(answer)
        server.listener.bind(("127.0.0.1", 0))
        server.listener.listen(16)
        threading.Thread(target=server.serve, daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.listener.close()


def endless(conn: socket.socket, server: RawServer) -> None:
    """A 200 that says a gigabyte follows, and sends it until the other side hangs up."""
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {GIGABYTE}\r\n\r\n".encode()
    )
    chunk = b"[" * 65536
    while server.sent < GIGABYTE:
        conn.sendall(chunk)
        server.sent += len(chunk)


def dribbling(conn: socket.socket, server: RawServer) -> None:
    """A 200 whose body comes one byte a second: every read is quick, the whole never ends."""
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 600\r\n\r\n"
    )
    for _ in range(600):
        conn.sendall(b" ")
        server.sent += 1
        time.sleep(1.0)


SUCCESS = {"name": "task-success", "query": "$.success_rate", "min": 0.95}
PLACEHOLDERS = {"canary": "canary", "stable": "stable", "service": "shop"}


def web_check(url: str, timeout: str = "5s") -> Any:
    src = WebSource.model_validate({"kind": "web", "url": url + "/s?v=$target", "timeout": timeout})
    provider = provider_for(src)
    try:
        (verdict,) = gate_checks.evaluate(
            [gate_from(SUCCESS)], provider, PLACEHOLDERS, source=src, sleep=lambda _: None
        )
    finally:
        provider.close()
    return verdict


def hook_call(url: str, **extra: Any) -> HookCall:
    hook = Hook(name="cab", on="before_rollout", url=url, **extra)
    payload = HookPayload(
        hook="cab",
        mode=hook.mode,
        phase="before_rollout",
        rollout_id="rollout-shop",
        run_id="run-1",
        service="shop",
        versions={"stable": "blue", "canary": "green", "version": "v2"},
        stage="ten",
        stage_index=0,
        current_weight=0,
        next_weight=10,
        idempotency_key="rollout-shop/run-1/cab/before_rollout/0",
        at=datetime(2026, 11, 22, 15, 0, tzinfo=UTC),
    )
    return HookCall(hook=hook, payload=payload)


def ask_hook(request: HookCall) -> Any:
    return ActivityEnvironment().run(call_hook, request)


# -- a gigabyte that never stops coming ------------------------------------------------------


def test_an_endless_body_is_cut_at_the_web_gates_cap(raw_server: Any) -> None:
    server = raw_server(endless)
    started = time.monotonic()
    verdict = web_check(server.url)
    assert verdict.outcome is GateOutcome.INCONCLUSIVE
    assert "answered more than 1,048,576 bytes" in verdict.reason
    assert time.monotonic() - started < 3
    time.sleep(0.2)  # the server notices the hang-up
    # Cut at the cap: what was sent is the cap and what the sockets' buffers held, no more.
    assert server.sent < 16 * 1024 * 1024


def test_an_endless_body_is_cut_at_the_prometheus_cap(raw_server: Any) -> None:
    server = raw_server(endless)
    provider = PrometheusProvider(PrometheusSource(url=server.url, timeout=timedelta(seconds=20)))
    with pytest.raises(MetricsRefused, match="answered more than 16,777,216 bytes") as caught:
        provider.query("up")
    assert not caught.value.retryable
    time.sleep(0.2)
    assert server.sent < 48 * 1024 * 1024


def test_a_hook_reads_only_the_start_of_an_endless_answer(raw_server: Any) -> None:
    server = raw_server(endless)
    started = time.monotonic()
    answer = ask_hook(hook_call(server.url + "/cab"))
    assert answer.ok and answer.status == 200 and answer.excerpt == ""
    assert time.monotonic() - started < 3
    time.sleep(0.2)
    assert server.sent < 16 * 1024 * 1024


# -- one byte a second ------------------------------------------------------------------------


def test_a_dribbling_web_gate_is_cut_at_its_deadline(raw_server: Any) -> None:
    server = raw_server(dribbling)
    started = time.monotonic()
    verdict = web_check(server.url, timeout="2s")
    took = time.monotonic() - started
    assert verdict.outcome is GateOutcome.INCONCLUSIVE
    assert "did not answer within 2s" in verdict.reason
    # Each byte came well within the timeout; the deadline covers the whole answer.
    assert 1.9 < took < 3.5, took
    assert server.connections == 1  # a timeout is not retried


def test_a_dribbling_hook_is_cut_at_its_deadline(raw_server: Any) -> None:
    server = raw_server(dribbling)
    started = time.monotonic()
    with pytest.raises(ApplicationError) as caught:
        ask_hook(hook_call(server.url + "/cab", timeout="1s"))
    took = time.monotonic() - started
    assert caught.value.type == "HookUnreachable"
    assert "no answer within 1s" in caught.value.message
    assert 0.9 < took < 2.5, took


def test_a_dribbling_prometheus_is_cut_at_its_deadline(raw_server: Any) -> None:
    server = raw_server(dribbling)
    provider = PrometheusProvider(PrometheusSource(url=server.url, timeout=timedelta(seconds=1)))
    started = time.monotonic()
    with pytest.raises(MetricsTimeout, match=r"within 1s"):
        provider.query("up")
    assert time.monotonic() - started < 2.5


# -- addresses no plan may reach ---------------------------------------------------------------


def test_a_canary_named_like_a_metadata_address_is_never_asked(raw_server: Any) -> None:
    # A safe name may look like an address; the web source's host is $target, filled in by
    # the worker, so only the worker can refuse it.
    src = WebSource(url="http://$target:80/latest/meta-data/", timeout=timedelta(seconds=2))
    provider = provider_for(src)
    (verdict,) = gate_checks.evaluate(
        [gate_from(SUCCESS)],
        provider,
        {**PLACEHOLDERS, "canary": "169.254.169.254"},
        source=src,
        sleep=lambda _: None,
    )
    assert verdict.outcome is GateOutcome.INCONCLUSIVE
    assert (
        "169.254.169.254 is a cloud instance metadata address: the worker sends no request"
        in verdict.reason
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/hook",
        "http://[::ffff:169.254.169.254]/hook",
        "http://[fd00:ec2::254]/hook",
        "http://2852039166/hook",
        "http://metadata.google.internal/hook",
    ],
)
async def test_a_webhook_url_at_a_metadata_address_is_refused(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLOUT_TEST_WEBHOOK", url)
    note = Notification(webhook_url_env="ROLLOUT_TEST_WEBHOOK", text="hi", service="shop")
    assert note.channel is not None
    message = render(note, RunLink("default", "rollout-shop"))
    with pytest.raises(NotifierRefused, match="the worker sends no request there") as caught:
        await WebhookNotifier(timeout=2).send(note.channel, message)
    assert not caught.value.retryable


async def test_an_apprise_json_url_at_a_metadata_address_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROLLOUT_TEST_TEAM", "json://169.254.169.254/steal")
    channel = AppriseChannel(name="team", url_env="ROLLOUT_TEST_TEAM")
    note = Notification(channels=[channel], text="hi", service="shop")
    message = render(note, RunLink("default", "rollout-shop"))
    with pytest.raises(NotifierRefused) as caught:
        await AppriseNotifier().send(channel, message)
    said = str(caught.value)
    assert said.startswith("the URL in ROLLOUT_TEST_TEAM: ")
    assert "is a cloud instance metadata address: the worker sends no request there" in said
    assert "steal" not in said  # the URL is a secret: not quoted, not even its host


def test_the_address_checked_is_the_address_connected_to(raw_server: Any) -> None:
    server = raw_server(lambda conn, _: conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n"))
    port = int(server.url.rsplit(":", 1)[1])
    # A name this test resolves itself: to loopback it is reached, to metadata it never is.
    safe = Session(OutboundPolicy(resolve=lambda host, _: ["127.0.0.1"]))
    assert safe.fetch("GET", f"http://gates.test:{port}/", deadline_s=2).status_code == 204
    hostile = Session(OutboundPolicy(resolve=lambda host, _: ["169.254.169.254", "127.0.0.1"]))
    before = server.connections
    with pytest.raises(OutboundRefused) as caught:
        hostile.fetch("GET", f"http://gates.test:{port}/", deadline_s=2)
    assert "gates.test resolves where the worker sends no request" in str(caught.value)
    assert server.connections == before


def test_an_outbound_allowlist_keeps_the_worker_to_its_hosts(
    raw_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = raw_server(lambda conn, _: conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n"))
    monkeypatch.setenv("ROLLOUT_OUTBOUND_HOSTS", "prometheus.internal")
    with pytest.raises(ApplicationError) as caught:
        ask_hook(hook_call(server.url + "/cab"))
    assert caught.value.type == "HookRefused"
    assert "127.0.0.1 is not among the hosts this worker sends requests to" in str(caught.value)
    assert server.connections == 0
    monkeypatch.setenv("ROLLOUT_OUTBOUND_HOSTS", "prometheus.internal,127.0.0.0/8")
    assert ask_hook(hook_call(server.url + "/cab")).status == 204


# -- variables the worker does not give plans --------------------------------------------------

WORKER_SECRETS = ("HOME", "AWS_SECRET_ACCESS_KEY")


@pytest.mark.parametrize("variable", WORKER_SECRETS)
def test_a_bearer_token_variable_outside_the_allowlist_is_refused(
    variable: str, raw_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = raw_server(endless)
    monkeypatch.setenv(variable, "worker-secret")
    monkeypatch.delenv("ROLLOUT_PLAN_SECRETS", raising=False)
    with pytest.raises(SecretRefused) as caught:
        provider_for(PrometheusSource(url=server.url, bearer_token_env=variable))
    said = str(caught.value)
    assert said.startswith(f"bearer_token_env names the environment variable {variable},")
    assert f"ROLLOUT_PLAN_SECRETS=ROLLOUT_*,{variable}" in said
    assert "worker-secret" not in said and server.connections == 0


@pytest.mark.parametrize("variable", WORKER_SECRETS)
def test_a_secret_header_variable_outside_the_allowlist_is_refused(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLOUT_PLAN_SECRETS", "TASKS_*")
    src = WebSource(url="http://127.0.0.1:9/s?v=$target", secret_headers={"X-Key": variable})
    with pytest.raises(
        SecretRefused, match=f"secret_headers.X-Key names the environment variable {variable}"
    ):
        provider_for(src)


@pytest.mark.parametrize("variable", WORKER_SECRETS)
def test_a_hook_header_variable_outside_the_allowlist_is_refused_before_any_request(
    variable: str, raw_server: Any
) -> None:
    server = raw_server(lambda conn, _: conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n"))
    with pytest.raises(ApplicationError) as caught:
        ask_hook(hook_call(server.url + "/cab", headers_env={"Authorization": variable}))
    assert caught.value.type == "HookRefused" and caught.value.non_retryable
    assert f"hook cab: headers_env.Authorization names the environment variable {variable}" in (
        caught.value.message
    )
    assert server.connections == 0


@pytest.mark.parametrize("variable", WORKER_SECRETS)
async def test_a_notification_url_variable_outside_the_allowlist_is_refused(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROLLOUT_PLAN_SECRETS", raising=False)
    note = Notification(webhook_url_env=variable, text="hi", service="shop")
    assert note.channel is not None
    message = render(note, RunLink("default", "rollout-shop"))
    with pytest.raises(
        SecretRefused, match=f"notify.webhook_url_env names the environment variable {variable}"
    ):
        await WebhookNotifier(timeout=2).send(note.channel, message)


def test_a_variable_the_worker_allows_is_read(
    raw_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = raw_server(lambda conn, _: conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n"))
    monkeypatch.setenv("ROLLOUT_PLAN_SECRETS", "CAB_*")
    monkeypatch.setenv("CAB_TOKEN", "Bearer t0ken")
    answer = ask_hook(hook_call(server.url + "/cab", headers_env={"Authorization": "CAB_TOKEN"}))
    assert answer.status == 204
    (request,) = server.requests
    assert b"\r\nAuthorization: Bearer t0ken\r\n" in request


def test_a_refusals_body_reaches_the_history_only_as_a_short_clean_excerpt(
    raw_server: Any,
) -> None:
    body = b"\x1b[31mCAB says no\x1b[0m\r\n\x07" + b"because " * 2000

    def refuse(conn: socket.socket, _: RawServer) -> None:
        head = f"HTTP/1.1 403 Forbidden\r\nContent-Length: {len(body)}\r\n\r\n"
        conn.sendall(head.encode() + body)

    server = raw_server(refuse)
    answer = ask_hook(hook_call(server.url + "/cab"))
    assert answer.status == 403 and not answer.ok
    assert answer.excerpt.startswith("[31mCAB says no [0m because because")
    assert len(answer.excerpt) <= 200
    assert not any(ord(c) < 32 or ord(c) == 127 for c in answer.excerpt)
