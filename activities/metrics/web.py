"""A web metric: an HTTP request to an application's own JSON endpoint, a JSONPath into it.

The source's language (``plans.sources.web``) renders each gate's query into a request:
the URL (and body) with ``$target`` filled in for the side being measured, and the
JSONPath that picks the value. Whatever does not give a number is no number, with the
reason: a missing field, a string, an HTTP error, a timeout. The judge makes that
inconclusive, never a pass. Requests go out under the outbound policy
(``activities.outbound``), and the reason never quotes the answer: whatever an endpoint
says instead of a number stays out of the verdict, and so out of the history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from activities.errors import MetricsRefused, MetricsTimeout, MetricsUnavailable
from activities.metrics.reading import Reading, Series
from activities.outbound import (
    Answer,
    OutboundError,
    OutboundRefused,
    OutboundTimeout,
    OutboundTooLarge,
    Session,
)
from activities.plan_secrets import plan_secret
from plans.sources.web import WebRequest, WebSource, compiled_path

MAX_ANSWER_BYTES = 1024 * 1024


class WebProvider:
    """Asks one web source; one HTTP connection pool per provider."""

    def __init__(self, spec: WebSource) -> None:
        self.spec = spec
        headers = dict(spec.headers)
        for header, env in spec.secret_headers.items():
            value = (plan_secret(env, f"secret_headers.{header}") or "").strip()
            if not value:
                raise MetricsRefused(
                    f"environment variable {env} is not set or empty: put the value of the"
                    f" {header} header there in the worker's environment"
                )
            headers[header] = value
        self._headers = list(headers.items())
        self._session = Session()

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
            return None, f"{asked.url} answered something that is not JSON"
        found = [match.value for match in path.find(data)]
        if not found:
            return None, f"no field at {asked.path} in the answer of {asked.url}"
        if len(found) == 1 and isinstance(found[0], list):
            return list(found[0]), ""
        return found, ""

    def _answer(self, asked: WebRequest) -> Answer:
        try:
            answer = self._session.fetch(
                asked.method,
                asked.url,
                headers=self._headers,
                content=asked.body.encode() if asked.body else None,
                deadline_s=self.spec.timeout.total_seconds(),
                max_bytes=MAX_ANSWER_BYTES,
            )
        except OutboundTimeout:
            raise MetricsTimeout(
                f"{asked.url} did not answer within {self.spec.timeout.total_seconds():g}s"
            ) from None
        except (OutboundRefused, OutboundTooLarge) as error:
            raise MetricsRefused(f"{asked.url}: {error}") from None
        except OutboundError as error:
            raise MetricsUnavailable(f"{asked.url}: {error}") from None
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
        return answer

    def close(self) -> None:
        """Close the connection pool."""
        self._session.close()


def _number(value: Any, asked: WebRequest) -> Reading:
    if isinstance(value, bool) or not isinstance(value, int | float):
        # What stood there instead is the endpoint's text: not shown (see the module's doc).
        return Reading(None, f"the answer of {asked.url} was not a number at {asked.path}")
    return Reading(float(value))
