"""The one way activities read an environment variable a plan names: through the allowlist.

Which variables the worker gives plans is ``plans.variables``'s rule, set by
``ROLLOUT_PLAN_SECRETS``; a variable outside it is refused as if it held nothing a plan
may see, with the way to allow it, and its value is never read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from activities.errors import SideEffectError
from plans.variables import ALLOWLIST_ENV, VariableAllowlist


class SecretRefused(SideEffectError):
    """A plan names a variable this worker does not give plans: allow it, or name another."""

    retryable = False


_allowlists: dict[str | None, VariableAllowlist] = {}


def allowlist() -> VariableAllowlist:
    """The variables this worker gives plans, as ``ROLLOUT_PLAN_SECRETS`` says now."""
    setting = os.environ.get(ALLOWLIST_ENV)
    found = _allowlists.get(setting)
    if found is None:
        found = _allowlists[setting] = VariableAllowlist.parse(setting)
    return found


def plan_secret(variable: str, field: str) -> str | None:
    """The value of ``variable``, which the plan's ``field`` names; None when it is unset.

    Raises SecretRefused, without reading it, when the worker does not give it to plans.
    """
    refused = allowlist().refusal(variable, field)
    if refused is not None:
        raise SecretRefused(refused)
    return os.environ.get(variable)


def refusals(named: Iterable[tuple[str, str]]) -> list[str]:
    """Why each (field, variable) a plan names is refused on this worker; none when all pass."""
    rules = allowlist()
    return [why for field, name in named if (why := rules.refusal(name, field)) is not None]
