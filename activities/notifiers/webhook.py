"""Slack-compatible incoming webhooks: a JSON POST with a ``text`` field.

The URL is a secret (whoever has it can post): it is read from the environment
variable the channel names, and kept out of logs, error messages and workflow history.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

import httpx

from activities.errors import NotifierRefused, NotifierUnreachable
from activities.notifiers.channel_url import channel_url
from activities.notifiers.messages import Message
from plans import Channel, WebhookChannel

# While a webhook is being posted, the name of the variable holding its URL.
_POSTING: ContextVar[str | None] = ContextVar("posting_webhook", default=None)


class _HideWebhookURL(logging.Filter):
    """httpx logs every request's URL at INFO; show the variable's name instead of ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        variable = _POSTING.get()
        if variable is not None and isinstance(record.args, tuple):
            record.args = tuple(
                f"<webhook URL from ${variable}>" if isinstance(arg, httpx.URL) else arg
                for arg in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_HideWebhookURL())


class WebhookNotifier:
    """Posts ``{"text", "service", "state"}`` to the URL in the channel's environment variable."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout

    async def send(self, channel: Channel, message: Message) -> None:
        """POST the message; 2xx is delivered, 4xx is refused, anything else may be retried."""
        if not isinstance(channel, WebhookChannel):
            raise NotifierRefused(f"a webhook cannot deliver to a {channel.kind} channel")
        variable = channel.url_env
        url = channel_url(
            variable,
            "put the webhook URL there in the worker's environment, or remove"
            " notify.webhook_url_env from the plan",
        )
        body = {"text": message.text, "service": message.service, "state": message.state}
        token = _POSTING.set(variable)
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(url, json=body)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol):
            raise NotifierRefused(
                f"environment variable {variable} does not hold an http(s) URL: put the"
                " webhook URL there"
            ) from None
        except httpx.TimeoutException:
            raise NotifierUnreachable(
                f"the webhook from ${variable} did not answer within {self.timeout:g}s"
            ) from None
        except httpx.HTTPError as error:
            # httpx's messages can quote the URL; name only the kind of failure.
            raise NotifierUnreachable(
                f"cannot post to the webhook from ${variable}: {type(error).__name__}"
            ) from None
        finally:
            _POSTING.reset(token)
        status = response.status_code
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
