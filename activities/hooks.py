"""Calling hooks and the smoke check over HTTP.

The worker reads each hook's headers and signing secrets from its own environment at call
time, so neither enters the workflow's history. A receiver that cannot be reached or times
out (``HookUnreachable``) or that answers 5xx (``HookServerError``) is retried; a hook whose
variables are missing or malformed is refused (``HookRefused``: no retry cures it); any
other answer is returned for the workflow to judge.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from plans import text
from plans.hook_signing import message_id, signature_headers, signing_secrets
from plans.hooks import (
    EXCERPT_CHARS,
    IDEMPOTENCY_HEADER,
    Hook,
    HookAnswer,
    HookCall,
    Smoke,
    payload_body,
)


def _refused(message: str) -> ApplicationError:
    return ApplicationError(message, type="HookRefused", non_retryable=True)


def _unreachable(message: str) -> ApplicationError:
    return ApplicationError(message, type="HookUnreachable")


def _server_error(what: str, response: httpx.Response) -> ApplicationError:
    """A 5xx is an answer, retried like no answer but told apart from one."""
    # The standard reason phrase, not the server's own: nothing it chose beyond the excerpt.
    status = f"{response.status_code} {httpx.codes.get_reason_phrase(response.status_code)}"
    excerpt = _excerpt(response)
    message = f"{what} answered {status.strip()}" + (f": {excerpt}" if excerpt else "")
    return ApplicationError(message, type="HookServerError")


def _signed(hook: Hook, key: str, body: bytes, what: str) -> dict[str, str]:
    """The signature headers for exactly ``body``, with every secret the hook's variable holds."""
    if hook.secret_env is None:
        return {}
    value = os.environ.get(hook.secret_env)
    if not value or not value.strip():
        raise _refused(f"{what}: its secret ${hook.secret_env} is not set in the worker")
    try:
        # Signed now, not when the workflow scheduled the call: each retry is freshly dated.
        return signature_headers(message_id(key), body, signing_secrets(value), datetime.now(UTC))
    except ValueError as error:
        raise _refused(f"{what}: its secret ${hook.secret_env}: {error}") from None


def _from_env(variables: dict[str, str], what: str) -> dict[str, str]:
    """Header values from the worker's environment; a missing variable is named, never its value."""
    values = {}
    for header, variable in variables.items():
        value = os.environ.get(variable)
        if value is None:
            raise _refused(f"{what}: header {header} reads ${variable}, which the worker lacks")
        values[header] = value
    return values


def _excerpt(response: httpx.Response) -> str:
    return " ".join(response.text[:EXCERPT_CHARS].split())


def _retry_after(response: httpx.Response) -> float | None:
    """A 202's ``{"retry_after": N}``, else its Retry-After header in seconds, else None."""
    try:
        data = response.json()
    except ValueError:
        data = None
    value = data.get("retry_after") if isinstance(data, dict) else None
    if value is None:
        value = response.headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None
    return seconds if seconds is not None and seconds == seconds else None


@activity.defn(name="call_hook")
def call_hook(call: HookCall) -> HookAnswer:
    """Send the signed payload to the hook and return its answer (status, retry_after, excerpt)."""
    hook, payload = call.hook, call.payload
    what = f"hook {hook.name}"
    headers = _from_env(hook.headers_env, what)
    # A GET carries no body, so what it signs (and sends) is the empty body.
    body = payload_body(payload) if hook.method != "GET" else b""
    headers[IDEMPOTENCY_HEADER] = payload.idempotency_key
    if body:
        headers["Content-Type"] = "application/json"
    headers |= _signed(hook, payload.idempotency_key, body, what)
    values = {
        "service": payload.service,
        "version": payload.versions.get("version", ""),
        "stage": payload.next_stage or payload.stage,
        "rollout_id": payload.rollout_id,
        "hook": hook.name,
    }
    url = text.fill(hook.url, {k: quote(v, safe="") for k, v in values.items()})
    sent = {"content": body} if hook.method != "GET" else {}
    try:
        with httpx.Client(timeout=hook.timeout.total_seconds()) as http:
            response = http.request(hook.method, url, headers=headers, **sent)  # type: ignore[arg-type]
    except httpx.TimeoutException:
        raise _unreachable(f"{what}: no answer within {hook.timeout.total_seconds():g}s") from None
    except httpx.HTTPError as error:
        raise _unreachable(f"{what}: {type(error).__name__}: {error}") from None
    if response.status_code >= 500:
        raise _server_error(what, response)
    excerpt = _excerpt(response)
    activity.logger.info("%s answered %s", what, response.status_code)
    retry_after = _retry_after(response) if response.status_code == 202 else None
    return HookAnswer(status=response.status_code, retry_after_s=retry_after, excerpt=excerpt)


@activity.defn(name="smoke_check")
def smoke_check(smoke: Smoke) -> HookAnswer:
    """Send the smoke requests; the first that misses its status or body fragment fails it."""
    headers = _from_env(smoke.headers_env, "smoke")
    last: httpx.Response | None = None
    try:
        with httpx.Client(timeout=smoke.timeout.total_seconds()) as http:
            for n in range(1, smoke.requests + 1):
                last = http.get(smoke.url, headers=headers)
                if last.status_code != smoke.expect_status:
                    why = f"request {n} of {smoke.requests} answered {last.status_code},"
                    why += f" not {smoke.expect_status}: {_excerpt(last)}"
                    return HookAnswer(status=last.status_code, error=why.strip(": "))
                if smoke.expect_body and smoke.expect_body not in last.text:
                    why = f"request {n} of {smoke.requests}: the body lacks"
                    why += f" {json.dumps(smoke.expect_body)}: {_excerpt(last)}"
                    return HookAnswer(status=last.status_code, error=why)
    except httpx.HTTPError as error:
        raise _unreachable(f"smoke: {smoke.url}: {type(error).__name__}: {error}") from None
    assert last is not None
    excerpt = f"{smoke.requests} request(s) answered {smoke.expect_status}"
    return HookAnswer(status=last.status_code, excerpt=excerpt)


HOOK_ACTIVITIES: list[Callable[..., Any]] = [call_hook, smoke_check]
