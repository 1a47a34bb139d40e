"""The HTTP receiver Alertmanager's webhook posts to, and what it asks of Temporal.

aiohttp serves it: one small, maintained package whose server runs on the same asyncio loop
as the Temporal client, so a handler awaits the rollout's status and the command directly
(no thread hand-off as with http.server), and it caps request bodies and stops cleanly.

Answers, every one as JSON: 401 without the right bearer token and 400 for a body that is
not a notification, both before anything reaches Temporal; 200 with one report per alert
once each was handled on its own (a service without a running rollout is skipped, and an
alert that cannot be handled is reported as failed: Alertmanager must not retry those
forever); 503 with the same reports when Temporal could not be asked about some alert, so
that Alertmanager tries again (what was sent before stays remembered, and is not sent twice).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from aiohttp import web
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.notifiers.messages import Message
from client import reading, runs
from client.first_shift import first_shift
from client.operations import CommandRefused, NoSuchRollout, send_command, workflow_id
from plans import Channel, RolloutError, RolloutStatus, WebhookChannel
from receiver.decide import (
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
from receiver.payload import Alert, MalformedNotification, parse_notification
from receiver.replies import (
    HEALTH_PATH,
    MAX_BODY_BYTES,
    PATHS,
    TemporalUnavailable,
    deferred,
    errors_as_json,
    failed,
    healthy,
    log_report,
)
from receiver.rules import AlertAction, Rules

log = logging.getLogger("rollout.alerts")

STATUS_TIMEOUT = timedelta(seconds=5)
# First shifts remembered, one per rollout (a rollout's chain of runs): far more rollouts
# than run at once.
FIRST_SHIFTS_REMEMBERED = 1_000
HOW_TO_SEND = (
    "send Authorization: Bearer <token> (Alertmanager: the webhook's"
    " http_config.authorization.credentials_file)"
)


class Notifier(Protocol):
    """Where ``notify`` alerts are posted (the worker's Slack-compatible webhook notifier)."""

    async def send(self, channel: Channel, message: Message) -> None: ...


@dataclass(frozen=True)
class Rollout:
    """A running rollout as the receiver sees it: its status and the first of its runs."""

    status: RolloutStatus
    first_run_id: str


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
        self._first_shifts: OrderedDict[str, datetime] = OrderedDict()

    def app(self) -> web.Application:
        """The aiohttp application: the webhook on PATHS, a health check on HEALTH_PATH."""
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[errors_as_json])
        for path in PATHS:
            app.router.add_post(path, self.receive)
        app.router.add_get(HEALTH_PATH, healthy)
        return app

    async def receive(self, request: web.Request) -> web.Response:
        """One notification: check the token, read the body, then handle each alert."""
        refused = self.refusal(request.headers.get("Authorization"))
        if refused is not None:
            log.warning("refused a request from %s: %s", request.remote, refused)
            challenge = 'Bearer realm="rollout alerts"'
            if request.headers.get("Authorization") is not None:
                challenge += ', error="invalid_token"'
            return web.json_response(
                {"error": refused}, status=401, headers={"WWW-Authenticate": challenge}
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
        reports = await self.handle(group.alerts)
        answer = {
            "truncated_alerts": group.truncated_alerts,
            "alerts": [r.as_json() for r in reports],
        }
        deferred = [r for r in reports if r.outcome == Outcome.DEFERRED]
        if deferred:
            why = (
                f"Temporal could not be asked about {len(deferred)} of {len(reports)} alert(s)"
                f" ({deferred[0].detail}); Alertmanager retries the notification, and what"
                " was sent is not sent twice"
            )
            log.error("%s", why)
            return web.json_response({"error": why, **answer}, status=503)
        return web.json_response(answer)

    def refusal(self, header: str | None) -> str | None:
        """None for the right bearer token, else what is wrong with the Authorization header."""
        if header is None or not header.strip():
            return f"no bearer token came with the request: {HOW_TO_SEND}"
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return f"the Authorization header does not hold a bearer token: {HOW_TO_SEND}"
        try:
            given = credentials.strip().encode()
        except UnicodeEncodeError:  # bytes that are not UTF-8 arrive as lone surrogates
            return f"the bearer token is not UTF-8 text: {HOW_TO_SEND}"
        if not given:
            return f"the bearer token is empty: {HOW_TO_SEND}"
        if not hmac.compare_digest(given, self._token):
            return (
                "the bearer token is wrong: send the one in the receiver's --token-env variable"
                " (the same as Alertmanager's credentials_file)"
            )
        return None

    async def handle(self, alerts: list[Alert]) -> list[Report]:
        """A report per alert, in the notification's order; each alert is handled on its own.

        Services are handled side by side; one service's alerts one at a time, the heaviest
        action first. An alert that fails is reported and never stops the others.
        """
        reports: dict[int, Report] = {}
        by_service: dict[str, list[tuple[int, Screened]]] = defaultdict(list)
        for index, alert in enumerate(alerts):
            try:
                found = screen(alert, self.rules, self.service_label, self.handled)
            except Exception as error:  # one alert's fault never blocks the others
                found = failed(alert, error)
            if isinstance(found, Report):
                log_report(found)
                reports[index] = found
            else:
                by_service[found.service].append((index, found))
        done = await asyncio.gather(
            *(self._service(service, items) for service, items in by_service.items())
        )
        for answers in done:
            reports.update(answers)
        return [reports[index] for index in sorted(reports)]

    async def _service(self, service: str, items: list[tuple[int, Screened]]) -> dict[int, Report]:
        async with self.handled.one_at_a_time(service):
            try:
                return await self._act_on(service, items)
            except Exception as error:
                return {index: failed(item.alert, error, item) for index, item in items}

    async def _act_on(self, service: str, items: list[tuple[int, Screened]]) -> dict[int, Report]:
        # Another delivery of the same alerts may have been handled while this one waited.
        fresh: list[tuple[int, Screened]] = []
        reports: dict[int, Report] = {}
        for index, item in items:
            again = screen(item.alert, self.rules, self.service_label, self.handled)
            if isinstance(again, Report):
                reports[index] = again
                log_report(again)
            else:
                fresh.append((index, again))
        if not fresh:
            return reports
        rollout: Rollout | str | TemporalUnavailable
        try:
            rollout = await self._running(service)
        except TemporalUnavailable as error:
            rollout = error
        taken: Report | None = None
        for index, item in sorted(fresh, key=lambda pair: -pair[1].action.weight):
            try:
                found = await self._one(item, rollout, taken)
            except TemporalUnavailable as error:
                found = deferred(item, error)
            except Exception as error:  # one alert's fault never blocks the others
                found = failed(item.alert, error, item)
            if found.outcome == Outcome.SENT:
                taken = found
            log_report(found)
            reports[index] = found
        return reports

    async def _one(
        self, item: Screened, rollout: Rollout | str | TemporalUnavailable, taken: Report | None
    ) -> Report:
        """What becomes of one alert of a service whose rollout was looked up."""
        if isinstance(rollout, TemporalUnavailable):
            return deferred(item, rollout)
        if isinstance(rollout, str):
            return report(
                item.alert, Outcome.SKIPPED, rollout, service=item.service, action=item.action
            )
        found = judge(item, rollout.status, await self._first_shift_for(item, rollout))
        if found is not None:
            return found
        if taken is not None and item.action != AlertAction.NOTIFY:
            # The heavier command just taken stands for this alert too.
            found = report(
                item.alert,
                Outcome.SKIPPED,
                f"covered by the {taken.action} just sent for alert {taken.alert}",
                service=item.service,
                action=item.action,
            )
            self.handled.remember(item.alert.key, found.detail)
            return found
        return await self._act(item, rollout.status)

    async def _running(self, service: str) -> Rollout | str:
        """The running rollout, or why there is none to act on."""
        try:
            description = await runs.describe(
                self.client, workflow_id(service), rpc_timeout=STATUS_TIMEOUT
            )
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
            status = await reading.status(self.client, service, rpc_timeout=STATUS_TIMEOUT)
        except NoSuchRollout:
            return f"no rollout of {service} ({workflow_id(service)}) found"
        except (RolloutError, RPCError) as error:
            raise TemporalUnavailable(str(error)) from None
        info = description.raw_description.workflow_execution_info
        return Rollout(status, info.first_run_id or description.run_id)

    async def _first_shift_for(self, item: Screened, rollout: Rollout) -> datetime | None:
        """When the rollout first shifted traffic, read only when the alert needs it."""
        status = rollout.status
        started = status.stage_started_at
        if started is None or status.state.final or item.alert.starts_at > started:
            return None  # judge decides without it
        if status.stage_index == 0:
            return started  # the first stage's shift is the first shift
        key = f"{workflow_id(item.service)}/{rollout.first_run_id}"
        known = self._first_shifts.get(key)
        if known is not None:
            return known
        try:
            found = await first_shift(
                self.client,
                workflow_id(item.service),
                rollout.first_run_id,
                rpc_timeout=STATUS_TIMEOUT,
            )
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise TemporalUnavailable(
                    f"cannot read the history of {workflow_id(item.service)}: {error}"
                ) from None
            # Past the namespace's retention: the current stage's start is all there is.
            log.warning("the first run of %s is gone: %s", workflow_id(item.service), error)
            return None
        if found is not None:
            self._first_shifts[key] = found
            while len(self._first_shifts) > FIRST_SHIFTS_REMEMBERED:
                self._first_shifts.popitem(last=False)
        return found

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
