"""Hook signatures: the Standard Webhooks form, key rotation, freshness, and garbage refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from datetime import UTC, datetime, timedelta
from email.message import Message
from http.client import parse_headers
from io import BytesIO
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook

from plans.governance.hook_signing import (
    message_id,
    secret_key,
    sign,
    signature_headers,
    signing_secrets,
    verify_signature,
)
from tests.unit.test_plans import minimal, only_problem

BODY = b'{"hook":"cab","phase":"on_rollback","service":"shop"}'
AT = datetime(2026, 11, 22, 15, 0, 7, tzinfo=UTC)
ID = "rollout-shop/r1/migrate-down/on_rollback/2"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


OLD, NEW = new_secret(), new_secret()


def signed(*secrets: str, at: datetime = AT, body: bytes = BODY) -> dict[str, str]:
    return signature_headers(ID, body, list(secrets), at)


def test_the_signature_is_hmac_sha256_over_id_timestamp_and_body() -> None:
    headers = signed(NEW)
    assert headers["webhook-id"] == ID and headers["webhook-timestamp"] == "1795359607"
    key = base64.b64decode(NEW.removeprefix("whsec_"))
    mac = hmac.new(key, f"{ID}.1795359607.".encode() + BODY, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()
    # The reference library signs the same message to the same value.
    assert headers["webhook-signature"] == Webhook(NEW).sign(ID, AT, BODY)
    assert headers["X-Rollout-Signature"] == sign(BODY, NEW)  # deprecated, body only


def test_a_fresh_signature_verifies_and_any_change_breaks_it() -> None:
    headers = signed(NEW)
    assert verify_signature(BODY, headers, NEW, now=AT)
    assert not verify_signature(BODY + b" ", headers, NEW, now=AT)
    assert not verify_signature(BODY, headers, OLD, now=AT)
    assert not verify_signature(BODY, {**headers, "webhook-id": ID + "x"}, NEW, now=AT)
    later = str(int(AT.timestamp()) + 1)
    assert not verify_signature(BODY, {**headers, "webhook-timestamp": later}, NEW, now=AT)
    upper = {name.upper(): value for name, value in headers.items()}
    assert verify_signature(BODY, upper, NEW, now=AT)  # header names in any case


@pytest.mark.parametrize(
    ("age", "fresh"),
    [
        (timedelta(minutes=-5), True),  # the sender's clock a little ahead
        (timedelta(minutes=-5, seconds=-1), False),
        (timedelta(0), True),
        (timedelta(minutes=5), True),
        (timedelta(minutes=5, seconds=1), False),
        (timedelta(days=3), False),
    ],
)
def test_the_timestamp_must_be_within_the_tolerance(age: timedelta, fresh: bool) -> None:
    headers = signed(NEW)
    assert verify_signature(BODY, headers, NEW, now=AT + age) is fresh


def test_the_tolerance_is_the_receivers_to_choose() -> None:
    headers, later = signed(NEW), AT + timedelta(minutes=20)
    assert not verify_signature(BODY, headers, NEW, now=later)
    assert verify_signature(BODY, headers, NEW, now=later, tolerance=timedelta(minutes=30))


def test_during_a_rotation_each_key_verifies_and_after_it_only_the_new() -> None:
    overlap = signed(NEW, OLD)
    assert len(overlap["webhook-signature"].split(" ")) == 2
    for held in ([OLD], [NEW], [OLD, NEW], f"{OLD} {NEW}", f"{NEW},{OLD}"):
        assert verify_signature(BODY, overlap, held, now=AT), held
    after = signed(NEW)
    assert not verify_signature(BODY, after, [OLD], now=AT)
    assert verify_signature(BODY, after, [OLD, NEW], now=AT)


def test_the_reference_library_verifies_every_key_of_a_rotation() -> None:
    now = datetime.now(UTC)
    overlap = signed(NEW, OLD, at=now)
    for secret in (OLD, NEW):
        assert Webhook(secret).verify(BODY, overlap) == {
            "hook": "cab",
            "phase": "on_rollback",
            "service": "shop",
        }


def test_a_variable_holds_one_raw_secret_or_several_whsec_ones() -> None:
    assert signing_secrets("plain secret, with a comma") == ["plain secret, with a comma"]
    assert signing_secrets(f" {NEW},{OLD}\n") == [NEW, OLD]
    assert signing_secrets(f"{NEW} old-raw-secret") == [NEW, "old-raw-secret"]
    assert signing_secrets("") == []
    assert secret_key("plain") == b"plain"
    assert secret_key(NEW.rstrip("=")) == secret_key(NEW)  # unpadded base64 too


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        ("whsec_***", "not base64"),
        ("whsec_" + base64.b64encode(b"x" * 8).decode(), "holds 8 bytes, not 24 to 64"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "holds 65 bytes"),
        ("", "empty"),
        ("raw\udcff", "not UTF-8 text"),  # how os.environ holds bytes it cannot decode
    ],
)
def test_a_bad_secret_cannot_sign_and_the_error_says_how_to_make_one(secret: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as refused:
        signature_headers(ID, BODY, [secret], AT)
    if secret:
        assert secret not in str(refused.value)
        assert "os.urandom(32)" in str(refused.value)


def test_a_bad_secret_a_receiver_holds_is_skipped_not_raised() -> None:
    headers = signed(NEW)
    assert verify_signature(BODY, headers, ["whsec_***", NEW], now=AT)
    assert not verify_signature(BODY, headers, ["whsec_***", ""], now=AT)


def test_the_webhook_id_has_no_dot_and_keeps_keys_apart() -> None:
    keys = ["a.b/c", "a%2Eb/c", "a/b.c/20261122T150000.000001", "plain/key"]
    ids = [message_id(key) for key in keys]
    assert all("." not in one for one in ids) and len(set(ids)) == len(keys)
    assert message_id("plain/key") == "plain/key"


def http_server_headers(raw: bytes) -> Message:
    """Headers parsed the way http.server parses a request's (latin-1 decoded)."""
    return parse_headers(BytesIO(raw + b"\r\n"))


GARBAGE: list[Any] = [
    {},
    None,
    "",
    "sha256=\u00e9\u00e9",  # the deprecated header's check used to raise on this
    "sha256=\udcff",
    {"webhook-id": ID, "webhook-timestamp": "1795359607"},
    {"webhook-id": "", "webhook-timestamp": "1795359607", "webhook-signature": "v1,x"},
    {"webhook-id": "\u00e9", "webhook-timestamp": "1795359607", "webhook-signature": "v1,x"},
    {
        "webhook-id": ID,
        "webhook-timestamp": "\u0661\u0667\u0669\u0665",
        "webhook-signature": "v1,x",
    },
    {"webhook-id": ID, "webhook-timestamp": "1e9", "webhook-signature": "v1,x"},
    {"webhook-id": ID, "webhook-timestamp": "-1795359607", "webhook-signature": "v1,x"},
    {"webhook-id": ID, "webhook-timestamp": "9" * 400, "webhook-signature": "v1,x"},
    {"webhook-id": ID, "webhook-timestamp": "1795359607", "webhook-signature": "v1,\u00e9 \udcff"},
    {"webhook-id": ID, "webhook-timestamp": "1795359607", "webhook-signature": " "},
    {"webhook-id": b"id", "webhook-timestamp": b"1795359607", "webhook-signature": b"v1,x"},
    {"webhook-id": None, "webhook-timestamp": 1795359607, "webhook-signature": ["v1,x"]},
    {1: 2, None: "x", b"webhook-id": "y"},
    ["webhook-id", ID],
    b"\xff\xfe",
    http_server_headers(
        b"webhook-id: \xe9\xff\r\nwebhook-timestamp: 1795359607\r\nwebhook-signature: v1,\xe9\r\n"
    ),
]


@pytest.mark.parametrize("headers", GARBAGE)
def test_garbage_headers_are_false_never_an_exception(headers: Any) -> None:
    assert verify_signature(BODY, headers, NEW, now=AT) is False
    assert verify_signature(BODY, headers, [NEW, "whsec_***", "k3y"], now=AT) is False


def test_garbage_bodies_and_secrets_are_false_too() -> None:
    headers = signed(NEW)
    for body in ("text", None, 7):
        assert verify_signature(body, headers, NEW, now=AT) is False  # type: ignore[arg-type]
    for secret in (b"raw", None, 7, ["\udcff"]):
        assert verify_signature(BODY, headers, secret, now=AT) is False  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(
    msg_id=st.text(max_size=40),
    timestamp=st.text(max_size=20) | st.integers(0, 10**12).map(str),
    signature=st.text(max_size=80),
    legacy=st.text(max_size=80),
)
def test_any_text_in_the_headers_is_an_answer(
    msg_id: str, timestamp: str, signature: str, legacy: str
) -> None:
    headers = {"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": signature}
    assert verify_signature(BODY, headers, [NEW, "k3y"]) is False
    assert verify_signature(BODY, legacy, [NEW, "k3y"]) is False


def test_headers_as_http_server_reads_them_verify() -> None:
    headers = signed(NEW)
    raw = "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode()
    assert verify_signature(BODY, http_server_headers(raw), NEW, now=AT)


def test_the_deprecated_header_still_verifies_as_before() -> None:
    value = signed("k3y")["X-Rollout-Signature"]
    expected = hmac.new(b"k3y", BODY, hashlib.sha256).hexdigest()
    assert value == f"sha256={expected}"
    assert verify_signature(BODY, value, "k3y") and verify_signature(BODY, f" {value} ", "k3y")
    assert not verify_signature(BODY, value, "other") and not verify_signature(BODY, value, "")
    assert not verify_signature(BODY, expected, "k3y")  # the prefix is part of it


@pytest.mark.parametrize("header", ["webhook-id", "Webhook-Signature", "webhook-timestamp"])
def test_a_plan_cannot_set_the_signing_headers(header: str) -> None:
    data = minimal()
    hook = {"name": "cab", "on": "before_stage", "url": "https://cab.example/approve"}
    data["hooks"] = [{**hook, "headers_env": {header: "ROLLOUT_CAB_TOKEN"}}]
    problem = only_problem(data)
    assert f"header {header!r} is set by the rollout itself: remove it" in problem
