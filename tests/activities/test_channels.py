"""Apprise channels against real local receivers: HTTP (JSON, form, Slack-shaped) and SMTP.

The notify activity renders each event with its template and sends it once per event and
channel: the record of sent keys makes a second run of the same message send nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import rollout
from activities.notifiers.delivery import deliver
from activities.notifiers.messages import RunLink
from activities.notifiers.sent import SentRecord
from plans import (
    AppriseChannel,
    EventKind,
    GateOutcome,
    Notice,
    Notification,
    StageBrief,
    Verdict,
    WebhookChannel,
)

from .conftest import HTTPRecorder, free_port

LINK = RunLink("default", "rollout-checkout", "run-1")


@dataclass
class Mailbox:
    """A local SMTP server (aiosmtpd) that keeps every message it is handed."""

    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(port=free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SentRecord:
    """A fresh record of sent keys, also the one the activity uses."""
    sent = SentRecord(tmp_path / "sent")
    monkeypatch.setattr(rollout, "_sent", sent)
    return sent


def rolled_back(key: str = "rollout-checkout/run-1/rolled_back/1/7", **fields: Any) -> Notice:
    at = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    data: dict[str, Any] = {
        "kind": EventKind.ROLLED_BACK,
        "key": key,
        "service": "checkout",
        "version": "v2.4.1",
        "stage": "half",
        "stage_index": 1,
        "stage_count": 3,
        "weight": 0,
        "stages": [
            StageBrief(name="canary", weight=10, bake_s=600),
            StageBrief(name="half", weight=50, bake_s=3600),
            StageBrief(name="full", weight=100, bake_s=3600),
        ],
        "verdicts": [
            Verdict(
                gate="error-rate",
                outcome=GateOutcome.FAIL,
                value=0.262,
                threshold="<= stable x1.5+0.1%",
                canary=0.262,
                stable=0.0,
                kind="relative",
                at=at,
            )
        ],
        "reason": "error-rate: canary 26.2% vs stable 0%, failed 2 check(s) in a row",
        "restored": ["restore canary to 0% on haproxy backend app"],
        "at": at,
    }
    data.update(fields)
    return Notice(**data)


def to(*channels: AppriseChannel | WebhookChannel, notice: Notice | None = None) -> Notification:
    return Notification(
        channel=channels[0],
        channels=list(channels),
        text="Rollout of checkout v2.4.1 rolled back: error-rate",
        service="checkout",
        state="rolled_back",
        notice=notice or rolled_back(),
    )


def channel(name: str, variable: str, **fields: Any) -> AppriseChannel:
    return AppriseChannel(name=name, url_env=variable, **fields)


async def test_json_channel_gets_the_rendered_event(
    webhook: HTTPRecorder, record: SentRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLOUT_T_JSON", webhook.url.replace("http://", "json://") + "/hook/json")
    before = len(webhook.received)
    await deliver(to(channel("ops-json", "ROLLOUT_T_JSON")), LINK, record)
    (got,) = webhook.received[before:]
    assert got.path == "/hook/json"
    body = json.loads(got.body)
    assert body["title"] == "⛔ checkout v2.4.1 rolled back: stable has all traffic again"
    assert body["type"] == "failure"  # critical
    assert "Reason: error-rate: canary 26.2% vs stable 0%" in body["message"]
    assert "restore canary to 0% on haproxy backend app" in body["message"]
    assert "http://localhost:8233/namespaces/default/workflows/rollout-checkout" in body["message"]


async def test_slack_shaped_body_through_json_key_mapping(
    webhook: HTTPRecorder, record: SentRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    # apprise's slack:// only talks to Slack itself; json:// renames its keys to Slack's.
    host = webhook.url.removeprefix("http://")
    monkeypatch.setenv(
        "ROLLOUT_T_SLACKISH",
        f"json://{host}/hook/T000/B000/secretpart?:message=text&:title=&:version=&:type=&:attachments=",
    )
    monkeypatch.setenv("TEMPORAL_UI_URL", "https://temporal.example.com/")
    before = len(webhook.received)
    await deliver(to(channel("slack", "ROLLOUT_T_SLACKISH")), LINK, record)
    (got,) = webhook.received[before:]
    body = json.loads(got.body)
    assert set(body) == {"text"}
    assert body["text"].startswith("Reason: error-rate")
    assert (
        "https://temporal.example.com/namespaces/default/workflows/rollout-checkout"
        in (body["text"])
    )


async def test_form_channel(
    webhook: HTTPRecorder, record: SentRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLOUT_T_FORM", webhook.url.replace("http://", "form://") + "/hook/form")
    before = len(webhook.received)
    await deliver(to(channel("form", "ROLLOUT_T_FORM")), LINK, record)
    (got,) = webhook.received[before:]
    assert got.headers["Content-Type"] == "application/x-www-form-urlencoded"
    fields = parse_qs(got.body.decode())
    assert fields["title"] == ["⛔ checkout v2.4.1 rolled back: stable has all traffic again"]
    assert "Restored: restore canary to 0% on haproxy backend app" in fields["message"][0]
    assert fields["type"] == ["failure"]


async def test_email_reaches_a_local_smtp_server(
    mailbox: Mailbox, record: SentRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "ROLLOUT_T_MAIL",
        f"mailto://127.0.0.1:{mailbox.port}?from=rollouts@example.com&to=oncall@example.com",
    )
    before = len(mailbox.messages)
    await deliver(to(channel("oncall-mail", "ROLLOUT_T_MAIL")), LINK, record)
    (mail,) = mailbox.messages[before:]
    assert mailbox.envelopes[-1] == ("rollouts@example.com", ["oncall@example.com"])
    assert mail["Subject"] == "⛔ checkout v2.4.1 rolled back: stable has all traffic again"
    plain = mail.get_body(preferencelist=("plain",))
    assert plain is not None
    text = plain.get_content()
    assert "Reason: error-rate: canary 26.2% vs stable 0%" in text
    assert "error-rate" in text and "0.262" in text  # the metrics at rollback


async def test_the_same_key_is_sent_once(
    webhook: HTTPRecorder, record: SentRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLOUT_T_ONCE", webhook.url.replace("http://", "json://") + "/hook/once")
    message = to(channel("once", "ROLLOUT_T_ONCE"))
    before = len(webhook.received)
    await ActivityEnvironment().run(rollout.notify, message)
    await ActivityEnvironment().run(rollout.notify, message)  # a retry, or a second run
    assert len([r for r in webhook.received[before:] if r.path == "/hook/once"]) == 1
    assert record.delivered(f"{message.notice.key}/once")  # type: ignore[union-attr]
    # Another event (another key) goes out.
    other = to(channel("once", "ROLLOUT_T_ONCE"), notice=rolled_back(key="another"))
    await ActivityEnvironment().run(rollout.notify, other)
    assert len([r for r in webhook.received[before:] if r.path == "/hook/once"]) == 2


async def test_a_failed_channel_is_retried_alone(
    webhook: HTTPRecorder, record: SentRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = webhook.url.replace("http://", "json://")
    monkeypatch.setenv("ROLLOUT_T_GOOD", f"{base}/hook/good")
    monkeypatch.setenv("ROLLOUT_T_BUSY", f"{base}/busy/for-now")
    message = to(channel("good", "ROLLOUT_T_GOOD"), channel("busy", "ROLLOUT_T_BUSY"))
    before = len(webhook.received)
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(rollout.notify, message)
    assert caught.value.type == "NotifierUnreachable"
    assert not caught.value.non_retryable
    assert "channel 'busy'" in caught.value.message
    assert "for-now" not in caught.value.message
    # The receiver is back: the retry sends to the channel still owed its message only.
    monkeypatch.setenv("ROLLOUT_T_BUSY", f"{base}/hook/back")
    await ActivityEnvironment().run(rollout.notify, message)
    paths = [r.path for r in webhook.received[before:]]
    assert paths.count("/hook/good") == 1
    assert paths.count("/busy/for-now") == 1
    assert paths.count("/hook/back") == 1


async def test_bad_urls_and_unset_variables_are_refused(
    record: SentRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLOUT_T_BAD", "nonsense-scheme://whatever")
    monkeypatch.delenv("ROLLOUT_T_UNSET", raising=False)
    message = to(channel("bad", "ROLLOUT_T_BAD"), channel("unset", "ROLLOUT_T_UNSET"))
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(rollout.notify, message)
    assert caught.value.type == "NotifierRefused"
    assert caught.value.non_retryable
    assert "ROLLOUT_T_BAD does not hold a URL apprise can use" in caught.value.message
    assert "ROLLOUT_T_UNSET is not set" in caught.value.message
    assert "whatever" not in caught.value.message


async def test_the_url_never_reaches_the_logs(
    webhook: HTTPRecorder,
    record: SentRecord,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    base = webhook.url.replace("http://", "json://")
    monkeypatch.setenv("ROLLOUT_T_SECRET", f"{base}/busy/T000/B000/verysecretpart?token=hushhush")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(Exception, match="did not take the message"):
        await deliver(to(channel("secret", "ROLLOUT_T_SECRET")), LINK, record)
    assert caplog.records, "apprise and urllib3 log at DEBUG: the test must see their lines"
    assert "verysecretpart" not in caplog.text
    assert "hushhush" not in caplog.text
    assert "<from $ROLLOUT_T_SECRET>" in caplog.text  # the lines that had them say whence


async def test_legacy_webhook_keeps_its_body(
    webhook: HTTPRecorder, record: SentRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLOUT_T_HOOK", f"{webhook.url}/hook/legacy")
    before = len(webhook.received)
    await deliver(to(WebhookChannel(url_env="ROLLOUT_T_HOOK")), LINK, record)
    (got,) = webhook.received[before:]
    assert json.loads(got.body) == {
        "text": "Rollout of checkout v2.4.1 rolled back: error-rate",
        "service": "checkout",
        "state": "rolled_back",
    }
