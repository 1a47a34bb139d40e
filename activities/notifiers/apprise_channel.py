"""Channels through apprise: Slack, Teams (``workflows://``), Discord, Google Chat, email
(``mailto://``, ``mailtos://``), JSON or form webhooks (``json://``, ``form://``), ntfy...

The apprise URL is a secret: it is read from the variable the channel names, and kept out
of logs (apprise's and urllib3's, which print URLs and paths) and of error messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import apprise

from activities.errors import NotifierRefused, NotifierUnreachable
from activities.notifiers.channel_url import channel_url
from activities.notifiers.messages import Message
from activities.outbound import OutboundError, OutboundRefused, current_policy, excerpt
from plans import AppriseChannel, Channel, Severity
from plans.addresses import host_refusal

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


# Apprise's generic web kinds, whose host is where the message goes; other kinds reach
# their service's own host, and what stands in the host place is often a token.
WEB_SCHEMES = frozenset({"json", "jsons", "form", "forms", "xml", "xmls"})


async def _within_policy(url: str, variable: str) -> None:
    """Refuse a URL the outbound policy does not let the worker reach.

    A generic web URL's host is checked as every request's is, resolved; apprise then
    connects by itself. Any other kind's host is checked only as written: looking up a
    token in DNS would tell the resolver a secret.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        if parts.scheme.lower() in WEB_SCHEMES:
            policy = current_policy()
            port = parts.port or (443 if parts.scheme.lower().endswith("s") else 80)
            await asyncio.to_thread(policy.addresses, host, port)
        elif host and (refused := host_refusal(host)) is not None:
            raise OutboundRefused(refused)
    except OutboundRefused as error:
        raise NotifierRefused(f"the URL in {variable}: {hide(str(error))}") from None
    except (OutboundError, ValueError):
        return  # apprise says what it cannot reach, as before


class AppriseNotifier:
    """Sends a rendered message to the apprise URL in the channel's environment variable."""

    async def send(self, channel: Channel, message: Message) -> None:
        """Deliver, or raise NotifierRefused (bad URL) or NotifierUnreachable (try again)."""
        if not isinstance(channel, AppriseChannel):
            raise NotifierRefused(f"apprise cannot deliver to a {channel.kind} channel")
        variable = channel.url_env
        url = channel_url(
            variable,
            f"notify.channels ({channel.name}).url_env",
            f"put the apprise URL of channel {channel.name!r} there in the worker's environment",
        )
        with _hidden(variable, url):
            await _within_policy(url, variable)
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
                said = excerpt(
                    "; ".join(hide(e.message) for e in result.logs() if e.level != "DEBUG")
                )
                raise NotifierUnreachable(
                    f"{channel.describe()} did not take the message" + (f": {said}" if said else "")
                )
