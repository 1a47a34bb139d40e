"""The HTTP receiver Alertmanager's webhook posts to, and what it asks of Temporal.

aiohttp serves it: one small, maintained package whose server runs on the same asyncio loop
as the Temporal client, so a handler awaits the rollout's status and the command directly
(no thread hand-off as with http.server), and it caps request bodies and stops cleanly.

Answers: 401 without the right bearer token and 400 for a body that is not a notification,
both before anything reaches Temporal; 200 with one report per alert once each was handled
or skipped (a service without a running rollout is skipped: Alertmanager must not retry
it forever); 503 when Temporal could not be asked, so that Alertmanager tries again (what
was sent before stays remembered, and is not sent twice).
"""

from __future__ import annotations

import hmac
import logging
from collections import defaultdict
from datetime import timedelta
from typing import Protocol

from aiohttp import web
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.notifiers.messages import Message
from plans import Channel, RolloutError, RolloutStatus, WebhookChannel
from starter import reading
from starter.alerts.decide import (
    Handled,
    Outcome,
    Report,
    Screened,
    command,
    judge,
    reason,
    report,
    screen,
)
from starter.alerts.payload import Alert, MalformedNotification, parse_notification
from starter.alerts.rules import AlertAction, Rules
from starter.operations import CommandRefused, NoSuchRollout, send_command, workflow_id

log = logging.getLogger("rollout.alerts")

PATHS = ("/alerts", "/")
HEALTH_PATH = "/-/healthy"
MAX_BODY_BYTES = 4 * 1024 * 1024
STATUS_TIMEOUT = timedelta(seconds=5)


class Notifier(Protocol):
    """Where ``notify`` alerts are posted (the worker's Slack-compatible webhook notifier)."""

    async def send(self, channel: Channel, message: Message) -> None: ...


class TemporalUnavailable(RolloutError):
    """Temporal could not be asked about a rollout; Alertmanager should try again."""


class AlertReceiver:
    """Turns Alertmanager's notifications into operator commands on the alerts' rollouts."""

    def __init__(
        self,
        client: Client,
        token: str,
        *,
        rules: Rules,
        service_label: str = "service",
        notifier: Notifier | None = None,
        notify_channel: WebhookChannel | None = None,
        handled: Handled | None = None,
    ) -> None:
        if not token:
            raise ValueError("the receiver needs a token")
        self.client = client
        self._token = token.encode()
        self.rules = rules
        self.service_label = service_label
        self.notifier = notifier
        self.notify_channel = notify_channel
        self.handled = handled or Handled()

    def app(self) -> web.Application:
        """The aiohttp application: the webhook on PATHS, a health check on HEALTH_PATH."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        for path in PATHS:
            app.router.add_post(path, self.receive)
        app.router.add_get(HEALTH_PATH, _healthy)
        return app

    async def receive(self, request: web.Request) -> web.Response:
        """One notification: check the token, read the body, then handle each alert."""
        if not self._authorized(request.headers.get("Authorization", "")):
            log.warning("refused a request from %s: no valid bearer token", request.remote)
            return web.json_response(
                {"error": "a bearer token is required: Authorization: Bearer <token>"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="rollout alerts"'},
            )
        body = await request.read()
        try:
            group = parse_notification(body)
        except MalformedNotification as error:
            log.warning("refused a malformed notification from %s: %s", request.remote, error)
            return web.json_response({"error": str(error)}, status=400)
        if group.truncated_alerts > 0:
            log.warning(
                "Alertmanager left %d alert(s) of group %s out of this notification"
                " (its max_alerts): they are not seen here",
                group.truncated_alerts,
                group.group_key,
            )
        try:
            reports = await self.handle(group.alerts)
        except TemporalUnavailable as error:
            log.error("could not handle a notification, Alertmanager will retry: %s", error)
            return web.json_response({"error": str(error)}, status=503)
        return web.json_response(
            {"truncated_alerts": group.truncated_alerts, "alerts": [r.as_json() for r in reports]}
        )

    def _authorized(self, header: str) -> bool:
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credentials.strip().encode(), self._token)

    async def handle(self, alerts: list[Alert]) -> list[Report]:
        """Screen every alert, then act per service, the heaviest action first."""
        reports: list[Report] = []
        by_service: dict[str, list[Screened]] = defaultdict(list)
        for alert in alerts:
            found = screen(alert, self.rules, self.service_label, self.handled)
            if isinstance(found, Report):
                _log(found)
                reports.append(found)
            else:
                by_service[found.service].append(found)
        for service, screened in by_service.items():
            async with self.handled.one_at_a_time(service):
                reports += await self._act_on(service, screened)
        return reports

    async def _act_on(self, service: str, screened: list[Screened]) -> list[Report]:
        # Another delivery of the same alerts may have been handled while this one waited.
        fresh = []
        reports: list[Report] = []
        for item in screened:
            again = screen(item.alert, self.rules, self.service_label, self.handled)
            if isinstance(again, Report):
                reports.append(again)
                _log(again)
            else:
                fresh.append(again)
        if not fresh:
            return reports
        status = await self._running_status(service)
        taken: Report | None = None
        for item in sorted(fresh, key=lambda s: -s.action.weight):
            found: Report | None
            if isinstance(status, str):
                found = report(
                    item.alert, Outcome.SKIPPED, status, service=service, action=item.action
                )
            else:
                found = judge(item, status)
                if found is None and taken is not None and item.action != AlertAction.NOTIFY:
                    # The heavier command just taken stands for this alert too.
                    found = report(
                        item.alert,
                        Outcome.SKIPPED,
                        f"covered by the {taken.action} just sent for alert {taken.alert}",
                        service=service,
                        action=item.action,
                    )
                    self.handled.remember(item.alert.key, found.detail)
                elif found is None:
                    found = await self._act(item, status)
                    if found.outcome == Outcome.SENT:
                        taken = found
            _log(found)
            reports.append(found)
        return reports

    async def _running_status(self, service: str) -> RolloutStatus | str:
        """The rollout's status, or why there is no running rollout to act on."""
        handle = self.client.get_workflow_handle(workflow_id(service))
        try:
            description = await handle.describe(rpc_timeout=STATUS_TIMEOUT)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return f"no rollout of {service} ({workflow_id(service)}) found"
            raise TemporalUnavailable(f"cannot look up {workflow_id(service)}: {error}") from None
        except RuntimeError as error:  # a lazy client that cannot connect
            raise TemporalUnavailable(f"cannot reach Temporal: {error}") from None
        if description.status != WorkflowExecutionStatus.RUNNING:
            state = description.status.name.lower() if description.status else "closed"
            return f"the rollout of {service} is not running ({state})"
        try:
            return await reading.status(self.client, service, rpc_timeout=STATUS_TIMEOUT)
        except NoSuchRollout:
            return f"no rollout of {service} ({workflow_id(service)}) found"
        except (RolloutError, RPCError) as error:
            raise TemporalUnavailable(str(error)) from None

    async def _act(self, item: Screened, status: RolloutStatus) -> Report:
        """Send the action's command (or notify) and remember the alert as handled."""
        alert, service, action = item.alert, item.service, item.action
        operator_command = command(item)
        if operator_command is None:
            found = await self._notify(item, status)
        else:
            try:
                record = await send_command(self.client, service, operator_command)
            except CommandRefused as error:
                found = report(alert, Outcome.REFUSED, str(error), service=service, action=action)
            except NoSuchRollout as error:
                return report(alert, Outcome.SKIPPED, str(error), service=service, action=action)
            except (RolloutError, RPCError, RuntimeError) as error:
                raise TemporalUnavailable(f"cannot send {action} to {service}: {error}") from None
            else:
                found = report(
                    alert,
                    Outcome.SENT,
                    f"{record.kind} taken by the rollout of {service}: {operator_command.reason}",
                    service=service,
                    action=action,
                )
        self.handled.remember(alert.key, f"{found.outcome.value} {action.value}")
        return found

    async def _notify(self, item: Screened, status: RolloutStatus) -> Report:
        alert, service = item.alert, item.service
        text = (
            f"{reason(alert)} fired for {service} during stage {status.stage_name!r}"
            f" (canary {status.canary_weight}%)"
        )
        detail = text
        if self.notifier is not None and self.notify_channel is not None:
            message = Message(
                title=f"{reason(alert)}: {service}",
                body=text,
                text=text,
                service=service,
                state=status.state.value,
                kind="alert",
            )
            try:
                await self.notifier.send(self.notify_channel, message)
                detail += f"; posted to {self.notify_channel.describe()}"
            except RolloutError as error:
                detail += f"; could not post it: {error}"
        return report(alert, Outcome.NOTIFIED, detail, service=service, action=AlertAction.NOTIFY)


async def _healthy(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def _log(found: Report) -> None:
    level = logging.INFO if found.outcome != Outcome.REFUSED else logging.WARNING
    log.log(level, "%s", found.line())
