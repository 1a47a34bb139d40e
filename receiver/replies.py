"""What the receiver answers besides an alert's outcome: errors as JSON, health, failures."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from plans import RolloutError
from plans.text import clip
from receiver.decide import (
    Outcome,
    Report,
    Screened,
    report,
)
from receiver.payload import Alert

# Alertmanager posts to /alerts (or /); the health check is GET /-/healthy.
PATHS = ("/alerts", "/")
HEALTH_PATH = "/-/healthy"
MAX_BODY_BYTES = 4 * 1024 * 1024
log = logging.getLogger("rollout.alerts")

# Alertmanager posts to /alerts (or /); the health check is GET /-/healthy.
PATHS = ("/alerts", "/")
HEALTH_PATH = "/-/healthy"
MAX_BODY_BYTES = 4 * 1024 * 1024
log = logging.getLogger("rollout.alerts")


class TemporalUnavailable(RolloutError):
    """Temporal could not be asked about a rollout; Alertmanager should try again."""


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error the receiver answers is JSON with an ``error`` that says what to fix."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
        return web.json_response(
            {"error": _http_error(request, error)}, status=error.status, headers=headers
        )
    except Exception:
        log.exception("failed on %s %s from %s", request.method, request.path, request.remote)
        return web.json_response(
            {"error": "the receiver failed on this request: its log says why"}, status=500
        )


def _http_error(request: web.Request, error: web.HTTPException) -> str:
    if error.status == 413:
        return (
            f"the body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB: lower the webhook's"
            " max_alerts in Alertmanager"
        )
    if error.status == 404:
        return f"nothing at {clip(request.path, 100)}: Alertmanager posts to {PATHS[0]}"
    if error.status == 405:
        return (
            f"{clip(request.method, 20)} is not answered here: Alertmanager POSTs to"
            f" {PATHS[0]}; GET {HEALTH_PATH} is the health check"
        )
    return error.reason


async def healthy(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def deferred(item: Screened, error: TemporalUnavailable) -> Report:
    return report(
        item.alert, Outcome.DEFERRED, str(error), service=item.service, action=item.action
    )


def failed(alert: Alert, error: Exception, item: Screened | None = None) -> Report:
    log.exception("could not handle alert %s (%s)", alert.name or "?", alert.fingerprint or "-")
    return report(
        alert,
        Outcome.FAILED,
        f"could not be handled ({type(error).__name__}: {clip(str(error), 300)}); the"
        " receiver's log has the details",
        service=item.service if item else None,
        action=item.action if item else None,
    )


def log_report(found: Report) -> None:
    level = logging.INFO if found.outcome != Outcome.REFUSED else logging.WARNING
    log.log(level, "%s", found.line())
