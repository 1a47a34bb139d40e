"""Channels through apprise: Slack, Teams (``workflows://``), Discord, Google Chat, email
(``mailto://``, ``mailtos://``), JSON or form webhooks (``json://``, ``form://``), ntfy...

The apprise URL is a secret: it is read from the variable the channel names, and kept out
of logs (apprise's and urllib3's, which print URLs and paths) and of error messages.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import apprise

from activities.errors import NotifierRefused, NotifierUnreachable
from activities.notifiers.channel_url import channel_url
from activities.notifiers.messages import Message
from plans import AppriseChannel, Channel, Severity

# While messages are being sent: each one's secret parts, to the variable they came from.
# Not a context variable: apprise sends from threads of its own, which do not inherit one.
_SENDING: dict[str, str] = {}
_LOCK = threading.Lock()
LOGGERS = ("apprise", "urllib3.connectionpool", "requests")
MIN_SECRET_CHARS = 6


def secret_parts(url: str) -> tuple[str, ...]:
    """The URL and the parts of it that may be secrets, longest first."""
    parts = urlsplit(url)
    found = {url, parts.netloc, parts.path, parts.query}
    if parts.password:
        found.add(parts.password)
    found.update(p for p in parts.path.split("/"))
    found.update(v for _, v in parse_qsl(parts.query))
    return tuple(sorted((p for p in found if len(p) >= MIN_SECRET_CHARS), key=len, reverse=True))


def hide(text: str) -> str:
    """``text`` with the URL being sent, and its secret parts, replaced by the variable's name."""
    with _LOCK:
        secrets = sorted(_SENDING.items(), key=lambda item: len(item[0]), reverse=True)
    for secret, variable in secrets:
        text = text.replace(secret, f"<from ${variable}>")
    return text


@contextlib.contextmanager
def _hidden(variable: str, url: str) -> Iterator[None]:
    parts = secret_parts(url)
    with _LOCK:
        _SENDING.update(dict.fromkeys(parts, variable))
    try:
        yield
    finally:
        with _LOCK:
            for part in parts:
                _SENDING.pop(part, None)


class _HideURL(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _SENDING:
            try:
                text = record.getMessage()
            except (TypeError, ValueError):  # a malformed record: keep only its format
                text = str(record.msg)
            record.msg, record.args = hide(text), ()
        return True


for _name in LOGGERS:
    logging.getLogger(_name).addFilter(_HideURL())

NOTIFY_TYPES = {
    Severity.INFO: apprise.NotifyType.INFO,
    Severity.WARNING: apprise.NotifyType.WARNING,
    Severity.CRITICAL: apprise.NotifyType.FAILURE,
}


class AppriseNotifier:
    """Sends a rendered message to the apprise URL in the channel's environment variable."""

    async def send(self, channel: Channel, message: Message) -> None:
        """Deliver, or raise NotifierRefused (bad URL) or NotifierUnreachable (try again)."""
        if not isinstance(channel, AppriseChannel):
            raise NotifierRefused(f"apprise cannot deliver to a {channel.kind} channel")
        variable = channel.url_env
        url = channel_url(
            variable,
            f"put the apprise URL of channel {channel.name!r} there in the worker's environment",
        )
        with _hidden(variable, url):
            sender = apprise.Apprise(asset=apprise.AppriseAsset(secure_logging=True))
            if not sender.add(url):
                raise NotifierRefused(
                    f"environment variable {variable} does not hold a URL apprise can use"
                    " (e.g. slack://..., workflows://..., mailto://..., json://...): check it"
                )
            notify_type = NOTIFY_TYPES[message.severity]
            if message.kind == "promoted":
                notify_type = apprise.NotifyType.SUCCESS
            result = await sender.async_notify(
                body=message.body,
                title=message.title,
                notify_type=notify_type,
                body_format=apprise.NotifyFormat.TEXT,
            )
            if not result:
                said = "; ".join(hide(e.message) for e in result.logs() if e.level != "DEBUG")
                raise NotifierUnreachable(
                    f"{channel.describe()} did not take the message" + (f": {said}" if said else "")
                )
