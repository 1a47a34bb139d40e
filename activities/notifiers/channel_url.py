"""Where a channel delivers: a URL kept out of the plan, in the worker's environment."""

from __future__ import annotations

from activities.errors import NotifierRefused
from activities.plan_secrets import plan_secret


def channel_url(variable: str, field: str, fix: str) -> str:
    """The URL in ``variable`` (named by the plan's ``field``); NotifierRefused saying ``fix``
    if it is unset, SecretRefused if the worker does not give it to plans."""
    url = (plan_secret(variable, field) or "").strip()
    if not url:
        raise NotifierRefused(f"environment variable {variable} is not set or empty: {fix}")
    return url
