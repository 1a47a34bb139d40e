"""Calling hooks and the smoke check over HTTP.

The worker reads each hook's headers and signing secrets from its own environment at call
time, so neither enters the workflow's history, and only variables it gives plans
(``activities.plan_secrets``); requests go out under the outbound policy
(``activities.outbound``), and a 2xx answer's body is never shown. A receiver that cannot
be reached or times out (``HookUnreachable``) or that answers 5xx (``HookServerError``) is
retried; a hook whose variables are missing, malformed or not given to plans, or whose
address the policy refuses, is refused (``HookRefused``: no retry cures it); any other
answer is returned for the workflow to judge.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.outbound import (
    Answer,
    OutboundError,
    OutboundRefused,
    OutboundTimeout,
    shared_session,
)
from activities.plan_secrets import SecretRefused, plan_secret
from plans import text
from plans.governance.hook_signing import message_id, signature_headers, signing_secrets
from plans.hooks import (
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


def _server_error(what: str, response: Answer) -> ApplicationError:
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
    try:
        value = plan_secret(hook.secret_env, f"{what}: secret_env")
    except SecretRefused as error:
        raise _refused(str(error)) from None
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
        try:
            value = plan_secret(variable, f"{what}: headers_env.{header}")
        except SecretRefused as error:
            raise _refused(str(error)) from None
        if value is None:
            raise _refused(f"{what}: header {header} reads ${variable}, which the worker lacks")
        values[header] = value
    return values


def _excerpt(response: Answer) -> str:
    """The start of a refusal's body, cleaned; a 2xx's body is the receiver's, never shown."""
    return "" if 200 <= response.status_code < 300 else response.excerpt()


# A hook is asked for its status (and a 202's retry_after); more of its body is not read.
HOOK_MAX_BYTES = 64 * 1024


def _retry_after(response: Answer) -> float | None:
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
    try:
        response = shared_session().fetch(
            hook.method,
            url,
            headers=list(headers.items()),
            content=body if hook.method != "GET" else None,
            deadline_s=hook.timeout.total_seconds(),
            max_bytes=HOOK_MAX_BYTES,
            truncate=True,
        )
    except OutboundRefused as error:
        raise _refused(f"{what}: {error}") from None
    except OutboundTimeout:
        raise _unreachable(f"{what}: no answer within {hook.timeout.total_seconds():g}s") from None
    except OutboundError as error:
        raise _unreachable(f"{what}: {error}") from None
    if response.status_code >= 500:
        raise _server_error(what, response)
    excerpt = _excerpt(response)
    activity.logger.info("%s answered %s", what, response.status_code)
    retry_after = _retry_after(response) if response.status_code == 202 else None
    return HookAnswer(status=response.status_code, retry_after_s=retry_after, excerpt=excerpt)


@activity.defn(name="smoke_check")
def smoke_check(smoke: Smoke) -> HookAnswer:
    """Send the smoke requests; the first that misses its status or body fragment fails it."""
    headers = list(_from_env(smoke.headers_env, "smoke").items())
    last: Answer | None = None
    try:
        for n in range(1, smoke.requests + 1):
            last = shared_session().fetch(
                "GET",
                smoke.url,
                headers=headers,
                deadline_s=smoke.timeout.total_seconds(),
                truncate=True,  # the fragment is looked for in the first megabyte
            )
            if last.status_code != smoke.expect_status:
                why = f"request {n} of {smoke.requests} answered {last.status_code},"
                why += f" not {smoke.expect_status}: {_excerpt(last)}"
                return HookAnswer(status=last.status_code, error=why.strip(": "))
            if smoke.expect_body and smoke.expect_body not in last.text:
                why = f"request {n} of {smoke.requests}: the body lacks"
                why += f" {json.dumps(smoke.expect_body)}"
                return HookAnswer(status=last.status_code, error=why)
    except OutboundRefused as error:
        raise _refused(f"smoke: {smoke.url}: {error}") from None
    except OutboundError as error:
        raise _unreachable(f"smoke: {smoke.url}: {error}") from None
    assert last is not None
    excerpt = f"{smoke.requests} request(s) answered {smoke.expect_status}"
    return HookAnswer(status=last.status_code, excerpt=excerpt)


HOOK_ACTIVITIES: list[Callable[..., Any]] = [call_hook, smoke_check]
