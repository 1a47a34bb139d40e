"""Slack-compatible incoming webhooks: a JSON POST with a ``text`` field.

The URL is a secret (whoever has it can post): it is read from the environment
variable the channel names, and kept out of logs, error messages and workflow history.
The request goes out under the outbound policy (``activities.outbound``); the answer's
body is never read beyond a little and never shown (error pages often quote the URL).
"""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import urlsplit

from activities.errors import NotifierRefused, NotifierUnreachable
from activities.notifiers.channel_url import channel_url
from activities.notifiers.messages import Message
from activities.outbound import (
    OutboundError,
    OutboundRefused,
    OutboundTimeout,
    shared_session,
)
from plans import Channel, WebhookChannel

log = logging.getLogger(__name__)
ANSWER_BYTES = 16 * 1024


class WebhookNotifier:
    """Posts ``{"text", "service", "state"}`` to the URL in the channel's environment variable."""

    def __init__(self, timeout: float = 10.0, *, for_plans: bool = True) -> None:
        self.timeout = timeout
        # False for a channel the operator configures (the alert receiver's): see channel_url.
        self.for_plans = for_plans

    async def send(self, channel: Channel, message: Message) -> None:
        """POST the message; 2xx is delivered, 4xx is refused, anything else may be retried."""
        if not isinstance(channel, WebhookChannel):
            raise NotifierRefused(f"a webhook cannot deliver to a {channel.kind} channel")
        variable = channel.url_env
        url = channel_url(
            variable,
            "notify.webhook_url_env",
            "put the webhook URL there in the worker's environment, or remove"
            " notify.webhook_url_env from the plan",
            from_plan=self.for_plans,
        )
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise NotifierRefused(
                f"environment variable {variable} does not hold an http(s) URL: put the"
                " webhook URL there"
            )
        body = {"text": message.text, "service": message.service, "state": message.state}
        try:
            answer = await asyncio.to_thread(
                shared_session().fetch,
                "POST",
                url,
                headers=[("Content-Type", "application/json")],
                content=json.dumps(body).encode(),
                deadline_s=self.timeout,
                max_bytes=ANSWER_BYTES,
                truncate=True,
            )
        except OutboundRefused as error:
            raise NotifierRefused(f"the webhook from ${variable}: {error}") from None
        except OutboundTimeout:
            raise NotifierUnreachable(
                f"the webhook from ${variable} did not answer within {self.timeout:g}s"
            ) from None
        except OutboundError as error:
            # Only the reason: the message names the host, which is part of the secret URL.
            raise NotifierUnreachable(
                f"cannot post to the webhook from ${variable}: {error.reason}"
            ) from None
        status = answer.status_code
        log.info("POST <webhook URL from $%s>: HTTP %s", variable, status)
        if 200 <= status < 300:
            return
        if status in (408, 429) or status >= 500:
            raise NotifierUnreachable(
                f"the webhook from ${variable} answered HTTP {status}: try again later"
            )
        raise NotifierRefused(
            f"the webhook from ${variable} answered HTTP {status}: check the URL in {variable}"
            # The answer's body is left out: error pages often quote the URL, a secret.
        )
