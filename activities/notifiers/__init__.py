"""Notifiers: one Protocol, one module per channel, a registry keyed by the channel's kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from activities.errors import NotifierRefused
from activities.notifiers.apprise_channel import AppriseNotifier
from activities.notifiers.messages import Message
from activities.notifiers.webhook import WebhookNotifier
from activities.registry import of_kind
from plans import Channel


class Notifier(Protocol):
    """Delivers a message to people."""

    async def send(self, channel: Channel, message: Message) -> None:
        """Deliver ``message`` to ``channel``; raise NotifierRefused or NotifierUnreachable."""
        ...


NOTIFIERS: dict[str, Callable[[], Notifier]] = {
    "webhook": WebhookNotifier,
    "apprise": AppriseNotifier,
}


def notifier_for(kind: str) -> Notifier:
    """The notifier for channels of ``kind`` (a ``Channel``'s ``kind``)."""
    return of_kind(NOTIFIERS, kind, "notifier", NotifierRefused)()


__all__ = ["NOTIFIERS", "AppriseNotifier", "Message", "Notifier", "WebhookNotifier", "notifier_for"]
