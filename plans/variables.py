"""Which of the worker's environment variables a plan may name for its secrets.

A plan names variables (``bearer_token_env``, ``secret_headers``, ``headers_env``,
``secret_env``, ``url_env``, ``webhook_url_env``) and the worker reads them, so that secrets
stay out of the plan and its history. Unlimited, that would let a plan name the worker's
own credentials (``TEMPORAL_API_KEY``) and send them to a URL it also names. So the worker
gives plans only what it allows: the names and prefixes in ``ROLLOUT_PLAN_SECRETS``
(``PROMETHEUS_TOKEN,SLACK_*``), or without it the names starting with ``ROLLOUT_``. The
worker's own settings and ``TEMPORAL_*`` never: plan validation refuses those already.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

ALLOWLIST_ENV = "ROLLOUT_PLAN_SECRETS"
DEFAULT_PREFIX = "ROLLOUT_"
NEVER_PREFIXES = ("TEMPORAL_",)
# The worker's and the alert receiver's own settings: some are secrets (the alert token, TLS
# keys, the signing key), and none is a plan's to read.
WORKER_SETTINGS = frozenset(
    {
        ALLOWLIST_ENV,
        "ROLLOUT_OUTBOUND_HOSTS",
        "ROLLOUT_ALERT_TOKEN",
        "ROLLOUT_ALERT_TLS_CERT",
        "ROLLOUT_ALERT_TLS_KEY",
        "ROLLOUT_SIGNING_KEY",
        "ROLLOUT_ALLOWED_SIGNERS",
        "ROLLOUT_REQUIRE_SIGNED",
        "ROLLOUT_APPROVER_GROUPS",
        "ROLLOUT_DIR",
        "ROLLOUT_REPORT_DIR",
        "ROLLOUT_NOTIFY_DIR",
        "ROLLOUT_TEMPLATE_DIR",
        "ROLLOUT_TASK_QUEUE",
        "ROLLOUT_WORKFLOW_SANDBOX",
        "ROLLOUT_WORKER_METRICS",
        "ROLLOUT_STICKY_TIMEOUT",
    }
)
_ENTRY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\*?|\*")
# Plan fields holding variable names that do not end in ``_env``.
_SECRET_MAPS = frozenset({"secret_headers"})


def refused_everywhere(name: str) -> str | None:
    """Why no worker gives ``name`` to a plan, or None when a worker may allow it."""
    if name.startswith(NEVER_PREFIXES):
        return (
            f"{name} belongs to the worker's own Temporal connection, which no plan may read:"
            " name a variable that holds only this plan's secret"
        )
    if name in WORKER_SETTINGS:
        return (
            f"{name} is one of the worker's own settings, not a secret for plans: name a"
            " variable that holds only this plan's secret"
        )
    return None


@dataclass(frozen=True)
class VariableAllowlist:
    """The variables a worker gives plans: exact names and prefixes (``SLACK_*``)."""

    names: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = (DEFAULT_PREFIX,)
    setting: str | None = None

    @classmethod
    def parse(cls, setting: str | None) -> VariableAllowlist:
        """The allowlist ``ROLLOUT_PLAN_SECRETS`` sets; unset or blank means ``ROLLOUT_*``."""
        entries = [e.strip() for e in (setting or "").split(",") if e.strip()]
        if not entries:
            return cls()
        for entry in entries:
            if not _ENTRY.fullmatch(entry):
                raise ValueError(
                    f"{ALLOWLIST_ENV} holds {entry!r}: list variable names (PROMETHEUS_TOKEN)"
                    " and prefixes ending in * (SLACK_*), separated by commas"
                )
        names = frozenset(e for e in entries if not e.endswith("*"))
        prefixes = tuple(e.removesuffix("*") for e in entries if e.endswith("*"))
        return cls(names=names, prefixes=prefixes, setting=",".join(entries))

    def allows(self, name: str) -> bool:
        """Whether a plan may name ``name``."""
        if refused_everywhere(name) is not None:
            return False
        return name in self.names or name.startswith(self.prefixes)

    def refusal(self, name: str, field: str) -> str | None:
        """Why a plan's ``field`` may not name ``name`` on this worker, and how to allow it."""
        never = refused_everywhere(name)
        if never is not None:
            return f"{field} names {never}"
        if self.allows(name):
            return None
        given = (
            f"{ALLOWLIST_ENV}={self.setting}"
            if self.setting
            else f"{ALLOWLIST_ENV} is unset, so only {DEFAULT_PREFIX}* variables"
        )
        return (
            f"{field} names the environment variable {name}, which this worker does not give"
            f" plans ({given}): put the secret in a variable the worker allows, or allow this"
            f" one by adding it to {ALLOWLIST_ENV} in the worker's environment"
            f" ({ALLOWLIST_ENV}={_added(self.setting, name)})"
        )


def _added(setting: str | None, name: str) -> str:
    return f"{setting},{name}" if setting else f"{DEFAULT_PREFIX}*,{name}"


def named_variables(model: BaseModel, at: str = "") -> list[tuple[str, str]]:
    """(field, variable) for each environment variable a plan (or part of one) names.

    Fields ending in ``_env`` (a name, or header -> name) and ``secret_headers`` name
    variables; every other field is searched for more.
    """
    found: list[tuple[str, str]] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        path = f"{at}{name}"
        if name.endswith("_env") or name in _SECRET_MAPS:
            if isinstance(value, str):
                found.append((path, value))
            elif isinstance(value, dict):
                found.extend((f"{path}.{key}", str(v)) for key, v in value.items())
            continue
        found.extend(_within(value, path))
    return found


def _within(value: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(value, BaseModel):
        return named_variables(value, f"{path}.")
    if isinstance(value, list | tuple):
        return [f for i, item in enumerate(value) for f in _within(item, f"{path}.{i}")]
    if isinstance(value, dict):
        return [f for key, item in value.items() for f in _within(item, f"{path}.{key}")]
    return []
