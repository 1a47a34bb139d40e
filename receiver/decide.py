"""What an alert does: plain decisions over the alert, the rules and the rollout's status.

Nothing here talks to Temporal or the network, so every decision is tested as data.
An alert acts on its service's rollout only when it fires, a rule matches its labels, it
was not handled before, and it started after the rollout first shifted traffic: an alert
that was already firing before the canary had any says nothing about the rollout, while one
that started in an earlier stage still does (Alertmanager may send it late, or again).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from plans import CommandKind, OperatorCommand, RolloutStatus
from plans.text import SAFE_NAME, quote
from receiver.payload import Alert
from receiver.rules import AlertAction, Rule, Rules

BY = "alertmanager"
# OperatorCommand.reason's max_length: the whole reason fits it, whatever the alert carries.
REASON_CHARS = 2_000
# The name and the link are clipped first; the summary gets the room that is left.
NAME_CHARS = 200
URL_CHARS = 600
# How many handled alerts are remembered; an alert group repeats every repeat_interval (4h
# by default), and a busy receiver sees far fewer distinct alerts than this in that time.
REMEMBERED = 10_000


class Outcome(StrEnum):
    """What became of one alert of a notification."""

    SENT = "sent"  # the rollout took the command
    REFUSED = "refused"  # the rollout refused it (already rolling back, paused, ...)
    NOTIFIED = "notified"  # notify: logged, and posted when a webhook is set
    DUPLICATE = "duplicate"  # handled before: a repeated notification of the same alert
    SKIPPED = "skipped"  # nothing to do, and why
    DEFERRED = "deferred"  # Temporal could not be asked: the answer is 503, Alertmanager retries
    FAILED = "failed"  # this alert could not be handled (a retry would fail the same way)


@dataclass(frozen=True)
class Screened:
    """An alert that may act, once the rollout's status says its stage started before it."""

    alert: Alert
    service: str
    action: AlertAction
    rule: Rule


@dataclass(frozen=True)
class Report:
    """One alert's outcome, as logged and returned in the response."""

    alert: str
    fingerprint: str
    service: str | None
    action: AlertAction | None
    outcome: Outcome
    detail: str

    def as_json(self) -> dict[str, str | None]:
        return {
            "alert": self.alert,
            "fingerprint": self.fingerprint,
            "service": self.service,
            "action": self.action.value if self.action else None,
            "outcome": self.outcome.value,
            "detail": self.detail,
        }

    def line(self) -> str:
        what = self.action.value if self.action else "-"
        service = self.service or "-"
        return f"{self.outcome.value} {what} {service} alert={self.alert or '?'}: {self.detail}"


def report(
    alert: Alert,
    outcome: Outcome,
    detail: str,
    *,
    service: str | None = None,
    action: AlertAction | None = None,
) -> Report:
    return Report(alert.name, alert.fingerprint, service, action, outcome, detail)


def screen(alert: Alert, rules: Rules, service_label: str, handled: Handled) -> Screened | Report:
    """The first, offline look: is this alert for a service, wanted by a rule, and new?"""
    if alert.status != "firing":
        return report(alert, Outcome.SKIPPED, "resolved: a resolved alert undoes nothing")
    service = alert.labels.get(service_label)
    if not service:
        return report(
            alert,
            Outcome.SKIPPED,
            f"no {service_label!r} label: add it to the alerting rule to name the rollout",
        )
    if not SAFE_NAME.fullmatch(service):
        return report(
            alert,
            Outcome.SKIPPED,
            f"{service_label}={quote(service)} cannot name a rollout (a plan's service is 1-63"
            " letters, digits, '_', '.', ':' or '-')",
        )
    matched = rules.action_for(alert.labels)
    if matched is None:
        return report(alert, Outcome.SKIPPED, "no rule matches its labels", service=service)
    action, rule = matched
    earlier = handled.get(alert.key)
    if earlier is not None:
        return report(
            alert, Outcome.DUPLICATE, f"handled before: {earlier}", service=service, action=action
        )
    return Screened(alert, service, action, rule)


def judge(
    screened: Screened, status: RolloutStatus, first_shift_at: datetime | None = None
) -> Report | None:
    """None when the alert acts on this running rollout, else the report of why it does not.

    ``first_shift_at`` is when the rollout first shifted traffic; unknown (None), the current
    stage's start stands in for it, which may turn away an alert of an earlier stage.
    """
    alert, service, action = screened.alert, screened.service, screened.action
    if status.state.final:
        return report(
            alert,
            Outcome.SKIPPED,
            f"the rollout of {service} has ended ({status.state.value})",
            service=service,
            action=action,
        )
    started = status.stage_started_at
    if started is None:
        return report(
            alert,
            Outcome.SKIPPED,
            f"the rollout of {service} has not started a stage yet (state {status.state.value})",
            service=service,
            action=action,
        )
    if first_shift_at is not None:
        if alert.starts_at <= first_shift_at:
            return report(
                alert,
                Outcome.SKIPPED,
                f"it started at {alert.starts_at.isoformat()}, before the rollout first shifted"
                f" traffic at {first_shift_at.isoformat()}: it is not about this rollout",
                service=service,
                action=action,
            )
    elif alert.starts_at <= started:
        return report(
            alert,
            Outcome.SKIPPED,
            f"it started at {alert.starts_at.isoformat()}, before stage {status.stage_name!r}"
            f" did at {started.isoformat()}, and when the rollout first shifted traffic is not"
            " known: it is not about this stage",
            service=service,
            action=action,
        )
    return None


def reason(alert: Alert) -> str:
    """The command's reason: the alert's name, its summary and where it came from.

    At most REASON_CHARS long, however long the alert's fields are.
    """
    summary = alert.annotations.get("summary") or alert.annotations.get("description") or ""
    text = f"alert {within(alert.name or 'unnamed', NAME_CHARS)}"
    link = f" ({within(alert.generator_url, URL_CHARS)})" if alert.generator_url else ""
    if summary.strip():
        room = REASON_CHARS - len(text) - len(": ") - len(link)
        text += f": {within(summary.strip(), room)}"
    return within(text + link, REASON_CHARS)


def within(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, saying how long it was when it is cut."""
    if len(text) <= limit:
        return text
    said = f"\u2026 ({len(text):,} characters)"
    if limit <= len(said):
        return text[: max(limit, 0)]
    return text[: limit - len(said)] + said


COMMANDS = {AlertAction.ROLLBACK: CommandKind.ROLLBACK, AlertAction.PAUSE: CommandKind.PAUSE}


def command(screened: Screened) -> OperatorCommand | None:
    """The operator command the action sends as ``alertmanager``, or None for notify."""
    kind = COMMANDS.get(screened.action)
    if kind is None:
        return None
    return OperatorCommand(kind=kind, by=BY, reason=reason(screened.alert))


class Handled:
    """Alerts already acted on, by fingerprint and start, so a repeat sends nothing twice.

    Kept in memory, the newest REMEMBERED of them. Deliveries of the same service's alerts
    are taken one at a time (``one_at_a_time``), so two copies of one notification arriving
    together (two Alertmanagers of a cluster, a retry) find each other here.
    """

    def __init__(self, remembered: int = REMEMBERED) -> None:
        self._done: OrderedDict[str, str] = OrderedDict()
        self._remembered = remembered
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}

    def get(self, key: str) -> str | None:
        return self._done.get(key)

    def remember(self, key: str, what: str) -> None:
        self._done[key] = what
        self._done.move_to_end(key)
        while len(self._done) > self._remembered:
            self._done.popitem(last=False)

    @asynccontextmanager
    async def one_at_a_time(self, service: str) -> AsyncIterator[None]:
        """Hold the service's turn; locks of services nobody waits for are dropped."""
        lock = self._locks.setdefault(service, asyncio.Lock())
        self._waiting[service] = self._waiting.get(service, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiting[service] -= 1
            if self._waiting[service] == 0:
                del self._waiting[service]
                del self._locks[service]

    def __len__(self) -> int:
        return len(self._done)
