"""call_hook and smoke_check against a local HTTP receiver: answers, signatures, secrets.

The signing receiver checks each call with the Standard Webhooks reference library, as a
receiver of ours in another service would, and answers 204 when it verifies, 401 when not.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.hooks import call_hook, smoke_check
from plans.governance.hook_signing import signature_headers
from plans.hooks import Hook, HookAnswer, HookCall, HookPayload, Smoke, verify_signature

from .conftest import HTTPRecorder, Received, free_port, reply, serve

SECRET_VAR = "ROLLOUT_TEST_HOOK_SECRET"
TOKEN_VAR = "ROLLOUT_TEST_HOOK_TOKEN"
SECRET = "s3cr3t-signing-key"
RELEASED = threading.Event()  # what /slow waits for: set once the caller gave up


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


OLD, NEW = new_secret(), new_secret()
# What each receiver holds: /accepts/<name> verifies with the secrets named.
HELD = {"old": Webhook(OLD), "new": Webhook(NEW), "raw": Webhook(SECRET.encode())}


def verified_by_reference(path: str, got: Received) -> bool:
    """The reference library's verdict, for any of the secrets the path names."""
    for name in path.split("/")[2].split("+"):
        try:
            HELD[name].verify(got.body, got.headers, json_parse=False)
        except WebhookVerificationError:
            continue
        return True
    return False


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
        elif got.path.startswith("/accepts/"):
            if verified_by_reference(got.path, got):
                reply(handler, 204, b"", "text/plain")
            else:
                reply(handler, 401, b"bad signature", "text/plain")
        elif got.path.startswith("/slow"):
            RELEASED.wait(30)
            with contextlib.suppress(OSError):  # the caller is gone by now
                reply(handler, 200, b"late", "text/plain")
        else:
            reply(handler, 200, b"<h1>approved: version v2</h1>", "text/html")

    yield from serve(answer)


def call(url: str, key: str = "rollout-shop/run-1/cab/before_stage/0", **extra: Any) -> HookCall:
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
        idempotency_key=key,
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
    assert answer.ok and answer.status == 200
    assert answer.excerpt == ""  # a 2xx body is the receiver's, never copied into history
    (got,) = receiver.received[before:]
    assert got.path == "/ok/shop/ten"
    assert got.headers["Authorization"] == "Bearer t0ken"
    assert got.headers["Idempotency-Key"] == "rollout-shop/run-1/cab/before_stage/0"
    assert got.headers["webhook-id"] == "rollout-shop/run-1/cab/before_stage/0"
    assert verify_signature(got.body, got.headers, SECRET)
    HELD["raw"].verify(got.body, got.headers)  # raises unless it verifies
    assert not verify_signature(got.body, got.headers, "wrong")
    assert not verify_signature(got.body + b" ", got.headers, SECRET)
    # The deprecated body-only header is still sent, and still checks out, for one release.
    assert verify_signature(got.body, got.headers["X-Rollout-Signature"], SECRET)
    assert not verify_signature(got.body + b" ", got.headers["X-Rollout-Signature"], SECRET)
    body = json.loads(got.body)
    assert body["version"] == 1 and body["service"] == "shop" and body["next_weight"] == 10
    assert SECRET not in got.body.decode() and "t0ken" not in got.body.decode()


def test_an_unsigned_call_has_no_signature(receiver: HTTPRecorder) -> None:
    before = len(receiver.received)
    assert ask(call(receiver.url + "/ok")).ok
    (got,) = receiver.received[before:]
    assert not {"X-Rollout-Signature", "webhook-signature"} & set(got.headers)


def test_202_brings_its_retry_after(receiver: HTTPRecorder) -> None:
    answer = ask(call(receiver.url + "/later"))
    assert answer.later and not answer.ok and answer.retry_after_s == 45
    assert answer.excerpt == ""  # its body is read for retry_after only


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
    with pytest.raises(ApplicationError) as refused:
        ask(call(f"http://127.0.0.1:{free_port()}/"))  # nothing listens there
    assert refused.value.type == "HookUnreachable" and "cannot be reached" in refused.value.message


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


def test_a_receiver_using_the_reference_library_verifies_what_the_hook_sends(
    receiver: HTTPRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_VAR, NEW)
    before = len(receiver.received)
    assert ask(call(receiver.url + "/accepts/new", secret_env=SECRET_VAR)).status == 204
    assert ask(call(receiver.url + "/accepts/old", secret_env=SECRET_VAR)).status == 401
    got = receiver.received[before]
    stamp = int(got.headers["webhook-timestamp"])
    assert abs(stamp - datetime.now(UTC).timestamp()) < 60  # signed when sent
    assert got.headers["webhook-signature"].startswith("v1,")
    assert got.headers["webhook-id"] == got.headers["Idempotency-Key"]
    assert verify_signature(got.body, got.headers, NEW)
    assert not verify_signature(got.body, got.headers, OLD)


def test_during_a_rotation_both_secrets_verify_and_after_it_only_the_new(
    receiver: HTTPRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_VAR, f"{NEW}, {OLD}")  # the overlap: both keys sign
    before = len(receiver.received)
    assert ask(call(receiver.url + "/accepts/old", secret_env=SECRET_VAR)).status == 204
    assert ask(call(receiver.url + "/accepts/new", secret_env=SECRET_VAR)).status == 204
    got = receiver.received[before]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert verify_signature(got.body, got.headers, [OLD])
    assert verify_signature(got.body, got.headers, [NEW, OLD])
    monkeypatch.setenv(SECRET_VAR, NEW)  # the old key retired
    assert ask(call(receiver.url + "/accepts/old", secret_env=SECRET_VAR)).status == 401
    assert ask(call(receiver.url + "/accepts/new", secret_env=SECRET_VAR)).status == 204
    assert ask(call(receiver.url + "/accepts/old+new", secret_env=SECRET_VAR)).status == 204


def test_a_retry_carries_the_same_webhook_id_with_no_dot_in_it(
    receiver: HTTPRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_VAR, NEW)
    key = "rollout-shop.eu/run-1/cab/event/20261122T150000.000001"  # dots: a service, a time
    request = call(receiver.url + "/accepts/new", key=key, secret_env=SECRET_VAR)
    before = len(receiver.received)
    assert ask(request).status == 204 and ask(request).status == 204  # a first try, a retry
    first, retry = receiver.received[before:]
    assert first.headers["webhook-id"] == retry.headers["webhook-id"]
    assert (
        first.headers["webhook-id"] == "rollout-shop%2Eeu/run-1/cab/event/20261122T150000%2E000001"
    )
    assert first.headers["Idempotency-Key"] == key


def test_a_call_replayed_after_the_tolerance_is_refused(
    receiver: HTTPRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_VAR, NEW)
    before = len(receiver.received)
    assert ask(call(receiver.url + "/accepts/new", secret_env=SECRET_VAR)).status == 204
    captured = receiver.received[before]
    sent_at = datetime.fromtimestamp(int(captured.headers["webhook-timestamp"]), UTC)
    assert verify_signature(
        captured.body, captured.headers, NEW, now=sent_at + timedelta(minutes=4)
    )
    later = sent_at + timedelta(minutes=6)
    assert not verify_signature(captured.body, captured.headers, NEW, now=later)
    assert verify_signature(
        captured.body, captured.headers, NEW, now=later, tolerance=timedelta(minutes=10)
    )
    # What a replay six minutes on looks like to the reference library: signed six minutes ago.
    key = captured.headers["webhook-id"]
    for age, status in ((timedelta(minutes=6), 401), (timedelta(minutes=4), 204)):
        headers = signature_headers(key, captured.body, [NEW], datetime.now(UTC) - age)
        replayed = httpx.post(receiver.url + "/accepts/new", content=captured.body, headers=headers)
        assert replayed.status_code == status, age


def test_a_get_hook_signs_the_empty_body_it_sends(
    receiver: HTTPRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_VAR, NEW)
    before = len(receiver.received)
    answer = ask(call(receiver.url + "/accepts/new", method="GET", secret_env=SECRET_VAR))
    assert answer.status == 204
    (got,) = receiver.received[before:]
    assert got.body == b"" and "Content-Type" not in got.headers
    assert verify_signature(b"", got.headers, NEW)
    assert not verify_signature(json.dumps({"hook": "cab"}).encode(), got.headers, NEW)


def test_a_malformed_secret_is_refused_without_showing_it(
    receiver: HTTPRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    for value, why in (
        ("whsec_not*base64", "not base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "holds 5 bytes, not 24 to 64"),
        (" ", "is not set in the worker"),
    ):
        monkeypatch.setenv(SECRET_VAR, value)
        with pytest.raises(ApplicationError) as refused:
            ask(call(receiver.url + "/accepts/new", secret_env=SECRET_VAR))
        assert refused.value.type == "HookRefused" and refused.value.non_retryable
        assert f"${SECRET_VAR}" in refused.value.message and why in refused.value.message
        if value.strip():
            assert value not in refused.value.message
