"""Where a rollout tells people about itself: the plan's ``notify`` section and its channels."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from plans import text
from plans.text import Strict, kinds_of


class WebhookChannel(Strict):
    """A Slack-compatible incoming webhook; the worker reads its URL (a secret) from ``url_env``."""

    kind: Literal["webhook"] = "webhook"
    url_env: text.EnvName

    def describe(self) -> str:
        return f"the webhook from ${self.url_env}"


Channel = Annotated[
    WebhookChannel,  # one line per kind: `WebhookChannel | EmailChannel`
    Field(discriminator="kind"),
]
CHANNEL_KINDS = kinds_of(Channel)


class Notify(Strict):
    """Where progress and rollbacks are announced."""

    webhook_url_env: text.EnvName | None = Field(
        default=None, description="environment variable holding a Slack-compatible webhook URL"
    )

    @property
    def channel(self) -> Channel | None:
        """The channel messages go to, or None when the plan asks for none."""
        if self.webhook_url_env is None:
            return None
        return WebhookChannel(url_env=self.webhook_url_env)
