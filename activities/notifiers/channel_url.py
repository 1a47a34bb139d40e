"""Where a channel delivers: a URL kept out of the plan, in the worker's environment."""

from __future__ import annotations

import os

from activities.errors import NotifierRefused


def channel_url(variable: str, fix: str) -> str:
    """The URL in environment variable ``variable``; NotifierRefused saying ``fix`` if unset."""
    url = os.environ.get(variable, "").strip()
    if not url:
        raise NotifierRefused(f"environment variable {variable} is not set or empty: {fix}")
    return url
