"""A web metric: an HTTP request to an application's own JSON endpoint, a JSONPath into it.

The source's language (``plans.sources.web``) renders each gate's query into a request:
the URL (and body) with ``$target`` filled in for the side being measured, and the
JSONPath that picks the value. Whatever does not give a number is no number, with the
reason: a missing field, a string, an HTTP error, a timeout. The judge makes that
inconclusive, never a pass.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import httpx

from activities.errors import MetricsRefused, MetricsTimeout, MetricsUnavailable
from activities.metrics.reading import Reading, Series
from plans.sources.web import WebRequest, WebSource, compiled_path

MAX_ANSWER_BYTES = 1024 * 1024
SHOWN_CHARS = 80


class WebProvider:
    """Asks one web source; one HTTP connection pool per provider."""

    def __init__(self, spec: WebSource) -> None:
        self.spec = spec
        headers = dict(spec.headers)
        for header, env in spec.secret_headers.items():
            value = os.environ.get(env, "").strip()
            if not value:
                raise MetricsRefused(
                    f"environment variable {env} is not set or empty: put the value of the"
                    f" {header} header there in the worker's environment"
                )
            headers[header] = value
        self._client = httpx.Client(
            headers=headers,
            timeout=spec.timeout.total_seconds(),
            follow_redirects=False,
        )

    def query(self, request: str) -> Reading:
        """The one number the request's JSONPath picks from the answer."""
        asked = WebRequest.parse(request)
        values, why = self._values(asked)
        if values is None:
            return Reading(None, why)
        if len(values) != 1:
            return Reading(
                None,
                f"{asked.path} picks {len(values)} values from {asked.url}: pick exactly one",
            )
        return _number(values[0], asked)

    def query_range(self, request: str, start: datetime, end: datetime, step_s: float) -> Series:
        """The numbers the JSONPath picks (a list, oldest first), one per step of the answer.

        The endpoint chooses its own steps (``$window`` in the URL says over how long);
        ``start`` and ``end`` are not sent. A step whose value is null (no data in
        it) is left out, and its place is kept in ``times`` so that paired series align.
        """
        asked = WebRequest.parse(request)
        values, why = self._values(asked)
        if values is None:
            return Series(None, why)
        numbers: list[float] = []
        times: list[float] = []
        for index, value in enumerate(values):
            if value is None:
                continue
            reading = _number(value, asked)
            if reading.value is None:
                return Series(None, reading.reason)
            numbers.append(reading.value)
            times.append(float(index))
        if not numbers:
            return Series(None, f"{asked.path} picks no number from {asked.url}")
        return Series(tuple(numbers), times=tuple(times))

    def _values(self, asked: WebRequest) -> tuple[list[Any] | None, str]:
        """What the JSONPath picks, or None and why."""
        try:
            path = compiled_path(asked.path)
        except Exception as error:  # the parser raises plain Exceptions, with the position
            raise MetricsRefused(f"{asked.path} is not a JSONPath: {error}") from None
        answer = self._answer(asked)
        try:
            data = answer.json()
        except ValueError:
            return None, f"{asked.url} answered {_shown(answer.text)!r}, not JSON"
        found = [match.value for match in path.find(data)]
        if not found:
            return None, f"no field at {asked.path} in the answer of {asked.url}"
        if len(found) == 1 and isinstance(found[0], list):
            return list(found[0]), ""
        return found, ""

    def _answer(self, asked: WebRequest) -> httpx.Response:
        try:
            answer = self._client.request(
                asked.method, asked.url, content=asked.body.encode() if asked.body else None
            )
        except httpx.TimeoutException:
            raise MetricsTimeout(
                f"{asked.url} did not answer within {self.spec.timeout.total_seconds():g}s"
            ) from None
        except httpx.HTTPError as error:
            raise MetricsUnavailable(f"{asked.url} cannot be reached: {error}") from None
        if answer.status_code >= 500:
            raise MetricsUnavailable(f"{asked.url} answered HTTP {answer.status_code}")
        if answer.status_code >= 400:
            raise MetricsRefused(
                f"{asked.url} answered HTTP {answer.status_code}: check the URL, the method"
                " and the headers of the web source"
            )
        if answer.status_code >= 300:
            raise MetricsRefused(
                f"{asked.url} answered HTTP {answer.status_code} (a redirect): write the URL"
                " it points to"
            )
        if len(answer.content) > MAX_ANSWER_BYTES:
            raise MetricsRefused(f"{asked.url} answered more than {MAX_ANSWER_BYTES:,} bytes")
        return answer

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def _number(value: Any, asked: WebRequest) -> Reading:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return Reading(
            None, f"{asked.path} in the answer of {asked.url} is {_shown(value)!r}, not a number"
        )
    return Reading(float(value))


def _shown(value: Any) -> str:
    text = str(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "\u2026"
