"""Where a channel delivers: a URL kept out of the plan, in the worker's environment."""

from __future__ import annotations

import os

from activities.errors import NotifierRefused
from activities.plan_secrets import plan_secret


def channel_url(variable: str, field: str, fix: str, *, from_plan: bool = True) -> str:
    """The URL in ``variable`` (named by the plan's ``field``); NotifierRefused saying ``fix``
    if it is unset, SecretRefused if the worker does not give it to plans.

    ``from_plan`` False: the variable is the operator's own setting (the alert receiver's
    ``--notify-webhook-env``), which no plan names, so the plans' allowlist does not apply.
    """
    value = plan_secret(variable, field) if from_plan else os.environ.get(variable)
    url = (value or "").strip()
    if not url:
        raise NotifierRefused(f"environment variable {variable} is not set or empty: {fix}")
    return url
