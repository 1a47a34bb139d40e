"""WebhookNotifier against a local HTTP receiver."""

from __future__ import annotations

import json
import logging

import pytest

from activities.errors import NotifierRefused, NotifierUnreachable
from activities.notifiers import WebhookNotifier, notifier_for
from activities.notifiers.messages import Message, RunLink, render
from plans import Notification, WebhookChannel

from .conftest import HTTPRecorder, free_port

VAR = "ROLLOUT_TEST_WEBHOOK"


def message(text: str = "shop: canary at 25%") -> tuple[WebhookChannel, Message]:
    note = Notification(webhook_url_env=VAR, text=text, service="shop", state="baking")
    assert isinstance(note.channel, WebhookChannel)
    return note.channel, render(note, RunLink("default", "rollout-shop"))


async def test_posts_slack_compatible_json(
    webhook: HTTPRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VAR, f"{webhook.url}/hook/T000/B000/secretpart")
    before = len(webhook.received)
    await notifier_for("webhook").send(*message())
    (got,) = webhook.received[before:]
    assert got.path == "/hook/T000/B000/secretpart"
    assert got.headers["Content-Type"] == "application/json"
    assert json.loads(got.body) == {
        "text": "shop: canary at 25%",
        "service": "shop",
        "state": "baking",
    }


async def test_the_url_never_reaches_the_logs(
    webhook: HTTPRecorder, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(VAR, f"{webhook.url}/hook/secretpart")
    caplog.set_level(logging.DEBUG)
    await WebhookNotifier().send(*message())
    assert "secretpart" not in caplog.text
    assert f"<webhook URL from ${VAR}>" in caplog.text


async def test_unset_variable_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VAR, raising=False)
    with pytest.raises(NotifierRefused, match=f"{VAR} is not set") as caught:
        await WebhookNotifier().send(*message())
    assert not caught.value.retryable


async def test_empty_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VAR, "  ")
    with pytest.raises(NotifierRefused, match=VAR):
        await WebhookNotifier().send(*message())


async def test_not_a_url_is_refused_without_quoting_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VAR, "ftp://example.invalid/secretpart")
    with pytest.raises(NotifierRefused) as caught:
        await WebhookNotifier().send(*message())
    assert "secretpart" not in str(caught.value)


async def test_client_error_is_refused(
    webhook: HTTPRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VAR, f"{webhook.url}/gone/secretpart")
    with pytest.raises(NotifierRefused, match=r"HTTP 404: check the URL in") as caught:
        await WebhookNotifier().send(*message())
    assert "secretpart" not in str(caught.value)


async def test_server_error_is_retryable(
    webhook: HTTPRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VAR, f"{webhook.url}/busy")
    with pytest.raises(NotifierUnreachable, match="HTTP 503") as caught:
        await WebhookNotifier().send(*message())
    assert caught.value.retryable


async def test_closed_port_is_retryable_and_does_not_quote_the_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(VAR, f"http://127.0.0.1:{free_port()}/secretpart")
    with pytest.raises(NotifierUnreachable) as caught:
        await WebhookNotifier().send(*message())
    assert "secretpart" not in str(caught.value)
    assert "127.0.0.1" not in str(caught.value)
