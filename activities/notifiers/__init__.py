"""Notifiers: one Protocol, one module per channel, a registry keyed by the channel's kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from activities.errors import NotifierRefused
from activities.notifiers.webhook import WebhookNotifier
from plans import Notification


class Notifier(Protocol):
    """Delivers a message to people."""

    async def send(self, message: Notification) -> None:
        """Deliver ``message`` to its channel; raise NotifierRefused or NotifierUnreachable."""
        ...


NOTIFIERS: dict[str, Callable[[], Notifier]] = {
    "webhook": WebhookNotifier,
}


def notifier_for(kind: str) -> Notifier:
    """The notifier for channels of ``kind`` (a ``Notification``'s ``channel.kind``)."""
    try:
        return NOTIFIERS[kind]()
    except KeyError:
        known = ", ".join(sorted(NOTIFIERS))
        raise NotifierRefused(f"no notifier of kind {kind!r}: use one of {known}") from None


__all__ = ["NOTIFIERS", "Notifier", "WebhookNotifier", "notifier_for"]
