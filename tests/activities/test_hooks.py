"""call_hook and smoke_check against a local HTTP receiver: answers, signatures, secrets."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.hooks import call_hook, smoke_check
from plans.hooks import Hook, HookAnswer, HookCall, HookPayload, Smoke, verify_signature

from .conftest import HTTPRecorder, Received, reply, serve

SECRET_VAR = "ROLLOUT_TEST_HOOK_SECRET"
TOKEN_VAR = "ROLLOUT_TEST_HOOK_TOKEN"
SECRET = "s3cr3t-signing-key"
RELEASED = threading.Event()  # what /slow waits for: set once the caller gave up


@pytest.fixture(scope="module")
def receiver() -> Iterator[HTTPRecorder]:
    """/ok 200, /later 202 with retry_after, /nope 403, /boom 500, /slow: once released."""

    def answer(handler: BaseHTTPRequestHandler, got: Received) -> None:
        if got.path.startswith("/later"):
            reply(handler, 202, b'{"retry_after": 45, "ticket": "CHG-1"}', "application/json")
        elif got.path.startswith("/nope"):
            reply(handler, 403, b"change window closed", "text/plain")
        elif got.path.startswith("/boom"):
            reply(handler, 500, b"internal error", "text/plain")
        elif got.path.startswith("/slow"):
            RELEASED.wait(30)
            with contextlib.suppress(OSError):  # the caller is gone by now
                reply(handler, 200, b"late", "text/plain")
        else:
            reply(handler, 200, b"<h1>approved: version v2</h1>", "text/html")

    yield from serve(answer)


def call(url: str, **extra: Any) -> HookCall:
    hook = Hook(name="cab", on="before_stage", url=url, **extra)
    payload = HookPayload(
        hook="cab",
        mode=hook.mode,
        phase="before_stage",
        rollout_id="rollout-shop",
        run_id="run-1",
        service="shop",
        versions={"stable": "blue", "canary": "green", "version": "v2"},
        stage="ten",
        stage_index=0,
        current_weight=0,
        next_weight=10,
        idempotency_key="rollout-shop/run-1/cab/before_stage/0",
        at=datetime(2026, 11, 22, 15, 0, tzinfo=UTC),
    )
    return HookCall(hook=hook, payload=payload)


def ask(request: HookCall) -> HookAnswer:
    answer: HookAnswer = ActivityEnvironment().run(call_hook, request)
    return answer


def test_a_signed_call_verifies_and_carries_the_payload(
    receiver: HTTPRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_VAR, SECRET)
    monkeypatch.setenv(TOKEN_VAR, "Bearer t0ken")
    request = call(
        receiver.url + "/ok/$service/$stage",
        secret_env=SECRET_VAR,
        headers_env={"Authorization": TOKEN_VAR},
    )
    before = len(receiver.received)
    answer = ask(request)
    assert answer.ok and answer.status == 200 and answer.excerpt.startswith("<h1>approved")
    (got,) = receiver.received[before:]
    assert got.path == "/ok/shop/ten"
    assert got.headers["Authorization"] == "Bearer t0ken"
    assert got.headers["Idempotency-Key"] == "rollout-shop/run-1/cab/before_stage/0"
    assert verify_signature(got.body, got.headers["X-Rollout-Signature"], SECRET)
    assert not verify_signature(got.body, got.headers["X-Rollout-Signature"], "wrong")
    assert not verify_signature(got.body + b" ", got.headers["X-Rollout-Signature"], SECRET)
    body = json.loads(got.body)
    assert body["version"] == 1 and body["service"] == "shop" and body["next_weight"] == 10
    assert SECRET not in got.body.decode() and "t0ken" not in got.body.decode()


def test_an_unsigned_call_has_no_signature(receiver: HTTPRecorder) -> None:
    before = len(receiver.received)
    assert ask(call(receiver.url + "/ok")).ok
    (got,) = receiver.received[before:]
    assert "X-Rollout-Signature" not in got.headers


def test_202_brings_its_retry_after(receiver: HTTPRecorder) -> None:
    answer = ask(call(receiver.url + "/later"))
    assert answer.later and not answer.ok and answer.retry_after_s == 45
    assert "CHG-1" in answer.excerpt


def test_a_refusal_is_an_answer(receiver: HTTPRecorder) -> None:
    answer = ask(call(receiver.url + "/nope"))
    assert not answer.ok and answer.status == 403
    assert answer.describe() == "answered 403: change window closed"


def test_a_500_is_reported_as_answered_and_retried_like_no_answer(
    receiver: HTTPRecorder,
) -> None:
    with pytest.raises(ApplicationError) as failed:
        ask(call(receiver.url + "/boom"))
    assert failed.value.type == "HookServerError" and not failed.value.non_retryable
    assert failed.value.message == "hook cab answered 500 Internal Server Error: internal error"
    try:
        with pytest.raises(ApplicationError) as slow:
            ask(call(receiver.url + "/slow", timeout="300ms"))
    finally:
        RELEASED.set()
    assert slow.value.type == "HookUnreachable" and "no answer within 0.3s" in slow.value.message


def test_a_missing_secret_is_refused_and_named_not_shown(
    receiver: HTTPRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_VAR, raising=False)
    with pytest.raises(ApplicationError) as refused:
        ask(call(receiver.url + "/ok", secret_env=SECRET_VAR))
    assert refused.value.type == "HookRefused" and refused.value.non_retryable
    assert f"${SECRET_VAR}" in refused.value.message


def test_smoke_passes_on_the_expected_status_and_body(receiver: HTTPRecorder) -> None:
    smoke = Smoke(url=receiver.url + "/ok", expect_body="version v2", requests=3)
    before = len(receiver.received)
    answer: HookAnswer = ActivityEnvironment().run(smoke_check, smoke)
    assert not answer.error and answer.excerpt == "3 request(s) answered 200"
    assert len(receiver.received) - before == 3


def test_smoke_fails_on_a_wrong_status_or_a_missing_fragment(receiver: HTTPRecorder) -> None:
    wrong: HookAnswer = ActivityEnvironment().run(smoke_check, Smoke(url=receiver.url + "/nope"))
    assert wrong.error == "request 1 of 3 answered 403, not 200: change window closed"
    missing: HookAnswer = ActivityEnvironment().run(
        smoke_check, Smoke(url=receiver.url + "/ok", expect_body="version v3")
    )
    assert missing.error.startswith('request 1 of 3: the body lacks "version v3"')
