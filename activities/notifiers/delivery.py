"""One event to every channel that hears it: rendered, sent once per key, failures told apart."""

from __future__ import annotations

import asyncio
import logging

from activities.errors import NotifierRefused, NotifierUnreachable, SideEffectError
from activities.notifiers import notifier_for
from activities.notifiers.messages import RunLink, render
from activities.notifiers.sent import SentRecord
from plans import Channel, Notification

log = logging.getLogger(__name__)


async def deliver(message: Notification, link: RunLink, record: SentRecord) -> int:
    """Send ``message`` to each of its channels not yet sent to; return how many were sent.

    Channels are sent to at once and each on its own: one that fails does not keep the
    others from their message, and the retry that follows sends only to those still owed
    one (each channel's key is recorded as it is delivered).
    """
    try:
        rendered = render(message, link)
    except Exception:
        # Even the default templates failing (a bug) must not lose the message: its line.
        log.exception("rendering the message failed: sending its one line")
        rendered = render(message.model_copy(update={"notice": None}), link)
    notice = message.notice

    async def one(channel: Channel) -> bool:
        notifier = notifier_for(channel.kind)

        async def send() -> None:
            await notifier.send(channel, rendered)

        if notice is None:  # runs recorded before keys: as before, no record
            await send()
            return True
        key = f"{notice.key}/{channel.name}"
        sent = await record.once(key, send)
        if not sent:
            log.info("not sending %s again to %s: it went already", notice.kind, channel.name)
        return sent

    targets = message.targets()
    outcomes = await asyncio.gather(*(one(c) for c in targets), return_exceptions=True)
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    for failure in failures:
        if not isinstance(failure, SideEffectError):
            raise failure
    if failures:
        said = "; ".join(str(f) for f in failures)
        if any(isinstance(f, SideEffectError) and f.retryable for f in failures):
            raise NotifierUnreachable(said)
        raise NotifierRefused(said)
    return sum(1 for o in outcomes if o is True)
